//! The synchronisation channel between the runtime and the processes it forks.
//!
//! A SOCK_SEQPACKET socketpair keeps message boundaries, so every message is
//! one `send` and one `recv` with no framing. A closed peer reads as an error:
//! a child that dies never leaves the parent waiting forever.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

/// One message of the create/exec protocol.
#[derive(Debug, PartialEq, Eq)]
pub enum Msg {
    /// Parent to child: cgroups are set up, go on.
    Go,
    /// Child to parent: I unshared a user namespace, write my id maps.
    MapIds,
    /// Parent to child: done what you asked.
    Ack,
    /// Bootstrap child to parent: the container process's pid, in the parent's namespace.
    Pid(i32),
    /// Init to parent: mounts are ready, run prestart and createRuntime hooks.
    Hooks,
    /// Child to parent: set up and waiting (init) or about to exec (exec).
    Ready,
    /// Child to parent: set-up failed, with the reason.
    Error(String),
}

const MAX: usize = 4096;

impl Msg {
    fn encode(&self, buf: &mut [u8; MAX]) -> usize {
        match self {
            Msg::Go => tag(buf, b'g'),
            Msg::MapIds => tag(buf, b'm'),
            Msg::Ack => tag(buf, b'a'),
            Msg::Hooks => tag(buf, b'h'),
            Msg::Ready => tag(buf, b'r'),
            Msg::Pid(pid) => {
                buf[0] = b'p';
                buf[1..5].copy_from_slice(&pid.to_le_bytes());
                5
            }
            Msg::Error(text) => {
                buf[0] = b'e';
                let n = text.len().min(MAX - 1);
                buf[1..1 + n].copy_from_slice(&text.as_bytes()[..n]);
                1 + n
            }
        }
    }

    fn decode(buf: &[u8]) -> Option<Msg> {
        Some(match *buf.first()? {
            b'g' => Msg::Go,
            b'm' => Msg::MapIds,
            b'a' => Msg::Ack,
            b'h' => Msg::Hooks,
            b'r' => Msg::Ready,
            b'p' => Msg::Pid(i32::from_le_bytes(buf.get(1..5)?.try_into().ok()?)),
            b'e' => Msg::Error(String::from_utf8_lossy(&buf[1..]).into_owned()),
            _ => return None,
        })
    }
}

fn tag(buf: &mut [u8; MAX], t: u8) -> usize {
    buf[0] = t;
    1
}

/// One end of the channel.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

/// Creates both ends (close-on-exec, so neither ever reaches a container).
pub fn pair() -> Result<(Channel, Channel), Errno> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    /// Sends without allocating: safe between fork and exec.
    pub fn send(&self, msg: &Msg) -> Result<(), Errno> {
        let mut buf = [0u8; MAX];
        let n = msg.encode(&mut buf);
        // SAFETY: buf is valid for n bytes.
        let r = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                buf.as_ptr().cast(),
                n,
                libc::MSG_NOSIGNAL,
            )
        };
        Errno::result(r).map(drop)
    }

    /// Receives one message; a closed peer is `EPIPE`.
    pub fn recv(&self) -> Result<Msg, Errno> {
        let mut buf = [0u8; MAX];
        loop {
            // SAFETY: buf is valid for MAX bytes.
            let r = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), MAX, 0) };
            match Errno::result(r) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
                Ok(0) => return Err(Errno::EPIPE),
                Ok(n) => return Msg::decode(&buf[..n as usize]).ok_or(Errno::EPROTO),
            }
        }
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_a_closed_peer_is_an_error() {
        let (a, b) = pair().expect("socketpair");
        for msg in [
            Msg::Go,
            Msg::MapIds,
            Msg::Ack,
            Msg::Pid(4242),
            Msg::Hooks,
            Msg::Ready,
            Msg::Error("mount /proc: EPERM".into()),
        ] {
            a.send(&msg).expect("send");
            assert_eq!(b.recv().expect("recv"), msg);
        }
        drop(a);
        assert_eq!(b.recv(), Err(Errno::EPIPE));
    }
}
