//! Host ports: protocols and reservations. A published port is reserved by
//! a bound socket the daemon holds, so a port in use is an error at `run`
//! and no other program takes it while the container lives.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::str::FromStr;

use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Proto {
    type Err = Error;

    /// `tcp` or `udp`, in any case (docker accepts `8080/TCP`).
    fn from_str(s: &str) -> Result<Proto> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            "sctp" => Err(Error::InvalidArgument(
                "publishing sctp ports is not supported (only tcp and udp)".into(),
            )),
            _ => Err(Error::InvalidArgument(format!(
                "invalid protocol {s:?}: expected tcp or udp"
            ))),
        }
    }
}

impl serde::Serialize for Proto {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Proto {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Proto, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A held host port.
#[derive(Debug)]
pub struct Reservation {
    pub proto: Proto,
    pub host_ip: Option<Ipv4Addr>,
    pub port: u16,
    _socket: std::os::fd::OwnedFd,
}

/// Reserves `port` (0: a free port from the ephemeral range) on `host_ip`
/// (`None`: 0.0.0.0). `Error::PortInUse` when taken.
///
/// The socket is bound, never listened on: the kernel DNATs published
/// traffic before it could reach a local socket, and a bound socket alone
/// already makes every other `bind` of that address fail. SO_REUSEADDR is
/// left off: on Linux two sockets may share a port only if *both* set it
/// (socket(7)), so a server that sets it still gets EADDRINUSE. A bound TCP
/// socket that does not listen answers stray SYNs with RST, as a closed
/// port would.
pub fn reserve(proto: Proto, host_ip: Option<Ipv4Addr>, port: u16) -> Result<Reservation> {
    let ip = host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let addr = SocketAddrV4::new(ip, port);
    let kind = match proto {
        Proto::Tcp => libc::SOCK_STREAM,
        Proto::Udp => libc::SOCK_DGRAM,
    };
    let io = |op: &'static str, source: std::io::Error| Error::Io {
        op,
        path: format!("{proto} {addr}").into(),
        source,
    };
    // SAFETY: socket(2) takes integers only; the result is checked for -1 before it is
    // wrapped as an owned descriptor.
    let fd = unsafe { libc::socket(libc::AF_INET, kind | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io("create socket for", std::io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh descriptor nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };

    let sa = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: sa is a valid sockaddr_in of `len` bytes.
    let rc = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&sa as *const libc::sockaddr_in).cast(),
            len,
        )
    };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EADDRINUSE) => Error::PortInUse {
                addr: addr.to_string(),
            },
            Some(libc::EADDRNOTAVAIL) => Error::InvalidArgument(format!(
                "cannot publish on {ip}: not an address of this host"
            )),
            _ => io("bind", e),
        });
    }

    let mut got: libc::sockaddr_in = sa;
    let mut got_len = len;
    // SAFETY: got is writable for got_len bytes.
    let rc = unsafe {
        libc::getsockname(
            socket.as_raw_fd(),
            (&mut got as *mut libc::sockaddr_in).cast(),
            &mut got_len,
        )
    };
    if rc != 0 {
        return Err(io(
            "read the bound port of",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(Reservation {
        proto,
        host_ip,
        port: u16::from_be(got.sin_port),
        _socket: socket,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols() {
        for (s, p) in [
            ("tcp", Proto::Tcp),
            ("udp", Proto::Udp),
            ("TCP", Proto::Tcp),
        ] {
            assert_eq!(s.parse::<Proto>().expect(s), p);
        }
        assert_eq!(Proto::Udp.to_string(), "udp");
        let err = "sctp".parse::<Proto>().expect_err("sctp").to_string();
        assert!(
            err.contains("sctp") && err.contains("not supported"),
            "{err}"
        );
        for bad in ["", "icmp", "tcp ", "tc"] {
            let err = bad.parse::<Proto>().expect_err(bad).to_string();
            assert!(err.contains("expected tcp or udp"), "{bad:?}: {err}");
        }
        assert_eq!(
            serde_json::to_string(&Proto::Tcp).expect("serialize"),
            r#""tcp""#
        );
    }

    #[test]
    fn port_zero_is_chosen_by_the_kernel() {
        for proto in [Proto::Tcp, Proto::Udp] {
            let r = reserve(proto, Some(Ipv4Addr::LOCALHOST), 0).expect("reserve");
            assert_ne!(r.port, 0, "{proto}");
            assert_eq!(r.proto, proto);
        }
    }

    #[test]
    fn a_port_is_reserved_once() {
        for proto in [Proto::Tcp, Proto::Udp] {
            let first = reserve(proto, None, 0).expect("first");
            let again = reserve(proto, None, first.port).expect_err("second");
            let want = format!("0.0.0.0:{}", first.port);
            assert!(
                matches!(&again, Error::PortInUse { addr } if *addr == want),
                "{proto}: {again}"
            );
            // A specific address inside the held wildcard is taken too.
            let lo = reserve(proto, Some(Ipv4Addr::LOCALHOST), first.port);
            assert!(
                matches!(lo, Err(Error::PortInUse { .. })),
                "{proto}: {lo:?}"
            );
            // And so is it for a server that sets SO_REUSEADDR.
            if proto == Proto::Tcp {
                let l = std::net::TcpListener::bind(("127.0.0.1", first.port));
                assert!(l.is_err(), "std listener got a reserved port");
            } else {
                let u = std::net::UdpSocket::bind(("127.0.0.1", first.port));
                assert!(u.is_err(), "std udp socket got a reserved port");
            }
            drop(first);
        }
    }

    #[test]
    fn released_on_drop() {
        let r = reserve(Proto::Tcp, Some(Ipv4Addr::LOCALHOST), 0).expect("reserve");
        let port = r.port;
        drop(r);
        reserve(Proto::Tcp, Some(Ipv4Addr::LOCALHOST), port).expect("again after drop");
    }

    #[test]
    fn foreign_address_is_invalid() {
        // TEST-NET-3 (RFC 5737) is never a local address.
        let err = reserve(Proto::Tcp, Some(Ipv4Addr::new(203, 0, 113, 7)), 0).expect_err("foreign");
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    }
}
