//! The serving side: sockets bound inside containers' namespaces, one
//! poll(2) thread over all of them, and short-lived threads for the slow
//! work (upstream round trips, TCP connections).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, Weak};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::CloneFlags;

use super::answer::{self, Outcome, TCP_LIMIT, UDP_LIMIT};
use super::forward::{self, UPSTREAM_TIMEOUT};
use super::Resolver;
use crate::{Error, Result};

/// Where Docker's embedded DNS listens: inside 127.0.0.0/8, which Linux
/// routes to `lo` as a whole, so no address needs adding to the namespace.
pub(crate) const DNS_ADDR: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 11), 53);

/// Upstream round trips in flight across all containers; beyond this a
/// foreign name gets SERVFAIL at once instead of another thread.
const MAX_FORWARDS: usize = 64;
/// TCP connections served at once across all containers.
const MAX_TCP: usize = 32;
/// An idle TCP connection is closed after this (RFC 7766 §6.2.3 leaves the
/// value to the server; a few seconds suffices for stub resolvers).
const TCP_IDLE: Duration = Duration::from_secs(5);
/// Datagrams read from one socket per wake-up, so one busy container
/// cannot starve the others.
const UDP_BATCH: usize = 32;
/// The longest `remove` waits for the loop to close a client's sockets.
const REMOVE_WAIT: Duration = Duration::from_secs(2);
/// Stack of the helper threads: they hold a few small buffers (the large
/// ones are on the heap) and call the engine's resolver.
const HELPER_STACK: usize = 256 * 1024;

/// What the serving thread and its helpers share.
struct Shared {
    resolver: Arc<dyn Resolver>,
    upstreams: Vec<SocketAddr>,
    forwards: Arc<AtomicUsize>,
    tcp_conns: Arc<AtomicUsize>,
}

enum Command {
    Add {
        client: String,
        udp: UdpSocket,
        tcp: TcpListener,
    },
    /// `done` is dropped once the client's sockets are closed.
    Remove {
        client: String,
        done: mpsc::Sender<()>,
    },
}

/// Identity of a network namespace: the nsfs inode its path refers to.
type NsId = (u64, u64);

pub(crate) struct Server {
    commands: Option<mpsc::Sender<Command>>,
    waker: UnixStream,
    thread: Option<JoinHandle<()>>,
    /// The namespace each client's sockets live in, to make `add`
    /// idempotent (and to rebind when a container got a new namespace
    /// under the same path). The lock also serialises add and remove.
    clients: Mutex<HashMap<String, NsId>>,
}

impl Server {
    pub(crate) fn start(resolver: Arc<dyn Resolver>, upstreams: Vec<SocketAddr>) -> Result<Server> {
        let (waker, wakee) = UnixStream::pair().map_err(|e| io_err("create dns wake socket", e))?;
        for s in [&waker, &wakee] {
            s.set_nonblocking(true)
                .map_err(|e| io_err("create dns wake socket", e))?;
        }
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            resolver,
            upstreams,
            forwards: Arc::new(AtomicUsize::new(0)),
            tcp_conns: Arc::new(AtomicUsize::new(0)),
        });
        let thread = thread::Builder::new()
            .name("cais-dns".into())
            .spawn(move || serve(&shared, &rx, &wakee))
            .map_err(|e| io_err("spawn dns server thread", e))?;
        Ok(Server {
            commands: Some(tx),
            waker,
            thread: Some(thread),
            clients: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn add(&self, client: &str, netns: &Path) -> Result<()> {
        let file = File::open(netns).map_err(|e| Error::Io {
            op: "open network namespace",
            path: netns.to_path_buf(),
            source: e,
        })?;
        let meta = file.metadata().map_err(|e| Error::Io {
            op: "stat network namespace",
            path: netns.to_path_buf(),
            source: e,
        })?;
        let id = (meta.dev(), meta.ino());
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if clients.get(client) == Some(&id) {
            return Ok(());
        }
        let (udp, tcp) = bind_in(file, netns)?;
        // Replacing an entry closes the old sockets in the loop.
        self.send(Command::Add {
            client: client.to_owned(),
            udp,
            tcp,
        })?;
        clients.insert(client.to_owned(), id);
        Ok(())
    }

    pub(crate) fn remove(&self, client: &str) {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if clients.remove(client).is_none() {
            return;
        }
        let (done, wait) = mpsc::channel();
        let sent = self.send(Command::Remove {
            client: client.to_owned(),
            done,
        });
        if sent.is_ok() {
            // Returns when the loop dropped `done` after closing the
            // sockets, or at once if the loop is gone (and with it the
            // sockets). Bounded: should the loop be stuck in a resolver
            // call that waits for a lock our caller holds, this turns a
            // deadlock into a delay, and the sockets close right after.
            let _ = wait.recv_timeout(REMOVE_WAIT);
        }
    }

    fn send(&self, cmd: Command) -> Result<()> {
        let gone = || {
            io_err(
                "send to the dns server thread",
                io::Error::new(io::ErrorKind::BrokenPipe, "the server thread has exited"),
            )
        };
        self.commands
            .as_ref()
            .ok_or_else(gone)?
            .send(cmd)
            .map_err(|_| gone())?;
        self.wake();
        Ok(())
    }

    fn wake(&self) {
        // A full buffer means a wake-up is already pending.
        let _ = (&self.waker).write(&[1]);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The loop exits when it finds the command channel closed.
        self.commands = None;
        self.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn io_err(op: &'static str, source: io::Error) -> Error {
    Error::Io {
        op,
        path: PathBuf::from(DNS_ADDR.to_string()),
        source,
    }
}

/// Creates the UDP socket and TCP listener at 127.0.0.11:53 inside the
/// namespace `ns` (opened from `path`). A socket stays in the namespace it
/// was created in (network_namespaces(7)), so a short-lived thread joins
/// the namespace with setns(2), creates them and exits; the daemon's own
/// threads never change namespace.
fn bind_in(ns: File, path: &Path) -> Result<(UdpSocket, TcpListener)> {
    let p = path.to_path_buf();
    let io = move |op, source| Error::Io {
        op,
        path: p.clone(),
        source,
    };
    let io2 = io.clone();
    let thread = thread::Builder::new()
        .name("cais-dns-setns".into())
        .stack_size(HELPER_STACK)
        .spawn(move || -> Result<(UdpSocket, TcpListener)> {
            nix::sched::setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)
                .map_err(|e| io("join network namespace", e.into()))?;
            let udp = UdpSocket::bind(DNS_ADDR)
                .map_err(|e| io("bind udp 127.0.0.11:53 in network namespace", e))?;
            // std sets SO_REUSEADDR on listeners, so a container that
            // gets its DNS re-added does not wait out TIME_WAIT.
            let tcp = TcpListener::bind(DNS_ADDR)
                .map_err(|e| io("bind tcp 127.0.0.11:53 in network namespace", e))?;
            for r in [udp.set_nonblocking(true), tcp.set_nonblocking(true)] {
                r.map_err(|e| io("set dns socket non-blocking", e))?;
            }
            Ok((udp, tcp))
        })
        .map_err(|e| io2("spawn thread to join network namespace", e))?;
    thread.join().map_err(|_| {
        io2(
            "bind dns sockets in network namespace",
            io::Error::other("the thread panicked"),
        )
    })?
}

/// One container's sockets, as the loop holds them. The UDP socket is
/// shared with forwarding threads only weakly, so removing the client
/// closes it at once even while an upstream answer is pending.
struct ClientSockets {
    client: Arc<str>,
    udp: Arc<UdpSocket>,
    tcp: TcpListener,
}

/// The serving loop: poll over the wake socket and every client's UDP
/// socket and TCP listener.
fn serve(shared: &Arc<Shared>, commands: &mpsc::Receiver<Command>, wakee: &UnixStream) {
    let mut clients: Vec<ClientSockets> = Vec::new();
    let mut buf = vec![0u8; 65535];
    loop {
        let ready: Vec<usize> = {
            let mut fds = Vec::with_capacity(1 + 2 * clients.len());
            fds.push(PollFd::new(wakee.as_fd(), PollFlags::POLLIN));
            for c in &clients {
                fds.push(PollFd::new(c.udp.as_fd(), PollFlags::POLLIN));
                fds.push(PollFd::new(c.tcp.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                // Cannot happen with valid descriptors; back off rather
                // than spin.
                Err(_) => {
                    thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
            // Any event counts, errors included: the read or accept
            // that follows consumes a pending socket error.
            fds.iter()
                .enumerate()
                .filter(|(_, f)| f.revents().is_some_and(|r| !r.is_empty()))
                .map(|(i, _)| i)
                .collect()
        };
        // Index 0 is the wake socket, then each client's UDP socket and
        // TCP listener.
        for i in ready.into_iter().filter(|&i| i > 0) {
            let Some(c) = clients.get((i - 1) / 2) else {
                continue;
            };
            if (i - 1) % 2 == 0 {
                serve_udp(shared, c, &mut buf);
            } else {
                accept_tcp(shared, c);
            }
        }
        // Commands last: removing a client shifts the indices above.
        let mut drain = [0u8; 64];
        while matches!((&*wakee).read(&mut drain), Ok(n) if n > 0) {}
        loop {
            match commands.try_recv() {
                Ok(Command::Add { client, udp, tcp }) => {
                    clients.retain(|c| *c.client != *client);
                    clients.push(ClientSockets {
                        client: client.into(),
                        udp: Arc::new(udp),
                        tcp,
                    });
                }
                Ok(Command::Remove { client, done }) => {
                    clients.retain(|c| *c.client != *client);
                    drop(done);
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => return,
            }
        }
    }
}

fn serve_udp(shared: &Arc<Shared>, c: &ClientSockets, buf: &mut [u8]) {
    for _ in 0..UDP_BATCH {
        let (n, peer) = match c.udp.recv_from(buf) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // WouldBlock: drained. Other errors are per-datagram
            // (e.g. a pending ICMP error) and not worth more.
            Err(_) => return,
        };
        let msg = &buf[..n];
        match answer::handle(msg, &c.client, shared.resolver.as_ref(), UDP_LIMIT) {
            Outcome::Reply(resp) => {
                // A full socket buffer drops the reply; the client retries.
                let _ = c.udp.send_to(&resp, peer);
            }
            Outcome::Forward {
                servfail,
                question_end,
            } => forward_udp(shared, c, msg.to_vec(), question_end, servfail, peer),
            Outcome::Drop => {}
        }
    }
}

/// A place for one helper thread among at most `max`, given back when
/// dropped (with the thread's closure, whether it ran or failed to spawn).
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(counter: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(Arc::clone(counter)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn forward_udp(
    shared: &Arc<Shared>,
    c: &ClientSockets,
    query: Vec<u8>,
    question_end: usize,
    servfail: Vec<u8>,
    peer: SocketAddr,
) {
    // RFC 1035 §4.1.1 SERVFAIL: no upstream, too many round trips pending,
    // or no thread to be had.
    let slot = match Slot::take(&shared.forwards, MAX_FORWARDS) {
        Some(slot) if !shared.upstreams.is_empty() => slot,
        _ => {
            let _ = c.udp.send_to(&servfail, peer);
            return;
        }
    };
    let sh = Arc::clone(shared);
    let sock: Weak<UdpSocket> = Arc::downgrade(&c.udp);
    let fallback = servfail.clone();
    let spawned = thread::Builder::new()
        .name("cais-dns-fwd".into())
        .stack_size(HELPER_STACK)
        .spawn(move || {
            let _slot = slot;
            let resp = forward::udp(&query, question_end, &sh.upstreams, UPSTREAM_TIMEOUT)
                .unwrap_or(servfail);
            if let Some(sock) = sock.upgrade() {
                let _ = sock.send_to(&resp, peer);
            }
        });
    if spawned.is_err() {
        let _ = c.udp.send_to(&fallback, peer);
    }
}

fn accept_tcp(shared: &Arc<Shared>, c: &ClientSockets) {
    loop {
        let stream = match c.tcp.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        // Over the limit the connection is closed at once, the overload
        // signal RFC 7766 §6.2.3 allows.
        let Some(slot) = Slot::take(&shared.tcp_conns, MAX_TCP) else {
            continue;
        };
        let sh = Arc::clone(shared);
        let client = Arc::clone(&c.client);
        // A failed spawn drops the closure, and with it stream and slot.
        let _ = thread::Builder::new()
            .name("cais-dns-tcp".into())
            .stack_size(HELPER_STACK)
            .spawn(move || {
                let _slot = slot;
                let _ = serve_tcp(&sh, &client, stream);
            });
    }
}

/// Serves the queries of one TCP connection in order (RFC 7766 §6.2.1.1
/// allows answering in order), each length-prefixed (RFC 1035 §4.2.2).
fn serve_tcp(shared: &Shared, client: &str, mut stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(TCP_IDLE))?;
    stream.set_write_timeout(Some(UPSTREAM_TIMEOUT))?;
    loop {
        let mut prefix = [0u8; 2];
        stream.read_exact(&mut prefix)?;
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        stream.read_exact(&mut msg)?;
        let resp = match answer::handle(&msg, client, shared.resolver.as_ref(), TCP_LIMIT) {
            Outcome::Reply(resp) => resp,
            Outcome::Forward {
                servfail,
                question_end,
            } => forward::tcp(&msg, question_end, &shared.upstreams, UPSTREAM_TIMEOUT)
                .unwrap_or(servfail),
            // Nothing to answer to on a stream: close it.
            Outcome::Drop => return Ok(()),
        };
        let Ok(len) = u16::try_from(resp.len()) else {
            return Ok(());
        };
        let mut out = Vec::with_capacity(2 + resp.len());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&resp);
        stream.write_all(&out)?;
    }
}
