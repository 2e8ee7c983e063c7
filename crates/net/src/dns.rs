//! The embedded DNS server of user-defined networks: answers at
//! 127.0.0.11:53 inside each attached container's namespace (sockets bound
//! there, served from the daemon's threads), resolves container names and
//! aliases through the engine, forwards everything else upstream.
//!
//! Per container: one UDP socket and one TCP listener, no thread. Per
//! server: one thread polling all of them; queries for foreign names and
//! TCP connections get a short-lived thread each, within fixed limits.
//! `wire` is the message format, `answer` the decision for one query,
//! `forward` the upstream round trip, `server` sockets and threads.

mod answer;
mod forward;
mod server;
mod wire;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV6};
use std::path::Path;
use std::sync::Arc;

use crate::Result;

/// Name lookups the server asks of the engine.
pub trait Resolver: Send + Sync {
    /// Addresses of `name` (a container name, id prefix or network alias,
    /// without trailing dot, lowercase) as seen by container `client`
    /// (the key given to [`DnsServer::add`]): only names on networks
    /// `client` shares. `None`: not a container name, forward upstream.
    ///
    /// Called on the serving thread for every query, so it must be quick
    /// (an in-memory table), must not block on I/O, and must not call
    /// back into [`DnsServer`] nor wait for a lock held across calls to
    /// it (`remove` waits for the serving thread; see there).
    fn lookup(&self, client: &str, name: &str) -> Option<Vec<Ipv4Addr>>;
    /// Reverse lookup of a container address (PTR), as `name`.
    fn reverse(&self, client: &str, ip: Ipv4Addr) -> Option<String>;
}

/// The running server. Dropping it stops its thread and closes every
/// client's listening sockets; helper threads still serving a TCP
/// connection or waiting on an upstream end within a few seconds.
pub struct DnsServer {
    inner: server::Server,
}

impl DnsServer {
    /// Starts the serving thread(s). `upstreams`: the host's resolvers.
    pub fn start(resolver: Arc<dyn Resolver>, upstreams: Vec<SocketAddr>) -> Result<DnsServer> {
        Ok(DnsServer {
            inner: server::Server::start(resolver, upstreams)?,
        })
    }

    /// Listens at 127.0.0.11:53 (UDP and TCP) in the namespace at `netns`
    /// on behalf of `client`. Idempotent per client.
    ///
    /// Adding a client again with a path that now holds a different
    /// namespace (a restarted container) moves its sockets there.
    pub fn add(&self, client: &str, netns: &Path) -> Result<()> {
        self.inner.add(client, netns)
    }

    /// Stops serving `client` and closes its sockets.
    ///
    /// When this returns the sockets are closed: a new query from the
    /// container is refused (TCP) or unanswered (UDP). It waits for the
    /// serving thread to close them, at most two seconds (should that
    /// thread be held up in [`Resolver`], they close right after). TCP
    /// connections already accepted and upstream round trips already
    /// under way finish on their own threads (a few seconds at most).
    pub fn remove(&self, client: &str) {
        self.inner.remove(client)
    }
}

/// How many `nameserver` lines the resolver uses (MAXNS in resolv.conf(5));
/// the server does the same, so containers see what host processes see.
const MAX_NAMESERVERS: usize = 3;

/// The upstream resolvers in a resolv.conf text (nameserver lines, port 53).
///
/// Follows resolv.conf(5): keywords start a line, `#` and `;` start a
/// comment, the first three nameservers count. An IPv6 address may carry a
/// zone (`fe80::1%eth0` or `%2`); a line that does not parse is skipped.
pub fn upstreams_from_resolv_conf(text: &str) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(addr) = words.next().and_then(parse_nameserver) else {
            continue;
        };
        if !out.contains(&addr) {
            out.push(addr);
        }
        if out.len() == MAX_NAMESERVERS {
            break;
        }
    }
    out
}

fn parse_nameserver(word: &str) -> Option<SocketAddr> {
    if let Ok(ip) = word.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 53));
    }
    let (ip, zone) = word.split_once('%')?;
    let ip = ip.parse().ok()?;
    let scope = match zone.parse::<u32>() {
        Ok(n) => n,
        Err(_) => interface_index(zone)?,
    };
    Some(SocketAddr::V6(SocketAddrV6::new(ip, 53, 0, scope)))
}

fn interface_index(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the
    // call; if_nametoindex(3) only reads it.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

/// Fuzz entry point (`fuzz/` and the corpus tests): `msg` as a query from
/// a container. A query that parses gets a response (with an A and a PTR
/// answer) that must parse back and echo its question; one that does not
/// parse gets at most an error response with the rcode asked for. Panics
/// only when one of these properties breaks.
#[doc(hidden)]
pub fn fuzz_query(msg: &[u8]) {
    match wire::parse_query(msg) {
        Ok(query) => {
            let _ = query.question.name.lookup_key();
            let _ = query.question.name.in_addr_arpa();
            let mut response = wire::Response::new(&query, 0, 512);
            response.push_a(Ipv4Addr::new(172, 17, 0, 2));
            response.push_ptr(&query.question.name);
            let bytes = response.finish();
            let header = wire::Header::parse(&bytes).expect("our response has a header");
            assert!(header.is_response(), "QR set in our response");
            assert!(
                wire::answers(&bytes, msg, query.question_end),
                "our response echoes the question"
            );
            assert_eq!(wire::rcode_of(&bytes), Some(0));
        }
        Err(_) => {
            if let Some(refusal) = wire::error_response(msg, 2) {
                assert_eq!(wire::rcode_of(&refusal), Some(2), "the rcode asked for");
            }
        }
    }
}

#[cfg(test)]
mod tests;
