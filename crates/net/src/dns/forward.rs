//! Relaying queries for foreign names to the host's resolvers. Runs in the
//! daemon's (host) network namespace, so loopback resolvers such as
//! systemd-resolved's 127.0.0.53 are reachable. Blocking: callers run it
//! on a thread of its own.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use super::wire::{self, rcode};

/// How long one upstream gets to answer before the next is tried; like
/// glibc's default `timeout:` (resolv.conf(5)) minus a little, since the
/// client behind us is waiting too.
pub(crate) const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// Sends `query` over UDP to each upstream in turn until one answers it.
/// The answer is relayed as it is, truncated (TC) or not: a client that
/// gets TC asks again over TCP, which goes upstream over TCP too.
pub(crate) fn udp(
    query: &[u8],
    question_end: usize,
    upstreams: &[SocketAddr],
    timeout: Duration,
) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 65535];
    first_good(
        upstreams.iter().map(|u| {
            udp_one(query, question_end, *u, timeout, &mut buf).map(|n| buf[..n].to_vec())
        }),
    )
}

/// The first answer that is not SERVFAIL or REFUSED, trying upstreams
/// lazily in order; failing that the last such failure. Like the glibc
/// stub resolver, a server that cannot or will not answer is a reason to
/// ask the next one, while NXDOMAIN and NOERROR are final.
pub(super) fn first_good(answers: impl Iterator<Item = Option<Vec<u8>>>) -> Option<Vec<u8>> {
    let mut failure = None;
    for resp in answers.flatten() {
        match wire::rcode_of(&resp) {
            Some(rcode::SERVFAIL | rcode::REFUSED) => failure = Some(resp),
            _ => return Some(resp),
        }
    }
    failure
}

fn udp_one(
    query: &[u8],
    question_end: usize,
    upstream: SocketAddr,
    timeout: Duration,
    buf: &mut [u8],
) -> Option<usize> {
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    // A fresh socket per query: a random source port from the kernel, and
    // connect() makes the kernel drop datagrams from anyone but the
    // upstream (RFC 5452 §9.1 and §9.2).
    let sock = UdpSocket::bind(local).ok()?;
    sock.connect(upstream).ok()?;
    sock.send(query).ok()?;
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        if left.is_zero() {
            return None;
        }
        sock.set_read_timeout(Some(left)).ok()?;
        match sock.recv(buf) {
            // Stray or spoofed datagrams are skipped, not fatal.
            Ok(n) if wire::answers(&buf[..n], query, question_end) => return Some(n),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // Timeout, or ICMP port unreachable reported as ECONNREFUSED
            // on a connected socket: next upstream.
            Err(_) => return None,
        }
    }
}

/// Sends `query` over TCP (RFC 1035 §4.2.2: a two-octet length before each
/// message) to each upstream in turn until one answers it.
pub(crate) fn tcp(
    query: &[u8],
    question_end: usize,
    upstreams: &[SocketAddr],
    timeout: Duration,
) -> Option<Vec<u8>> {
    first_good(
        upstreams
            .iter()
            .map(|u| tcp_one(query, question_end, *u, timeout).ok().flatten()),
    )
}

fn tcp_one(
    query: &[u8],
    question_end: usize,
    upstream: SocketAddr,
    timeout: Duration,
) -> io::Result<Option<Vec<u8>>> {
    let len = u16::try_from(query.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
    let mut stream = TcpStream::connect_timeout(&upstream, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    // One write for prefix and message, so they leave in one segment
    // (RFC 7766 §8).
    let mut out = Vec::with_capacity(2 + query.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(query);
    stream.write_all(&out)?;
    let mut prefix = [0u8; 2];
    stream.read_exact(&mut prefix)?;
    let mut resp = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
    stream.read_exact(&mut resp)?;
    Ok(wire::answers(&resp, query, question_end).then_some(resp))
}
