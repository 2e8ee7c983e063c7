//! The embedded DNS server of user-defined networks: answers at
//! 127.0.0.11:53 inside each attached container's namespace (sockets bound
//! there, served from the daemon's threads), resolves container names and
//! aliases through the engine, forwards everything else upstream.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use crate::Result;

/// Name lookups the server asks of the engine.
pub trait Resolver: Send + Sync {
    /// Addresses of `name` (a container name, id prefix or network alias,
    /// without trailing dot, lowercase) as seen by container `client`
    /// (the key given to [`DnsServer::add`]): only names on networks
    /// `client` shares. `None`: not a container name, forward upstream.
    fn lookup(&self, client: &str, name: &str) -> Option<Vec<Ipv4Addr>>;
    /// Reverse lookup of a container address (PTR), as `name`.
    fn reverse(&self, client: &str, ip: Ipv4Addr) -> Option<String>;
}

pub struct DnsServer {
    _private: (),
}

impl DnsServer {
    /// Starts the serving thread(s). `upstreams`: the host's resolvers.
    pub fn start(_resolver: Arc<dyn Resolver>, _upstreams: Vec<SocketAddr>) -> Result<DnsServer> {
        todo!()
    }

    /// Listens at 127.0.0.11:53 (UDP and TCP) in the namespace at `netns`
    /// on behalf of `client`. Idempotent per client.
    pub fn add(&self, _client: &str, _netns: &Path) -> Result<()> {
        todo!()
    }

    /// Stops serving `client` and closes its sockets.
    pub fn remove(&self, _client: &str) {
        todo!()
    }
}

/// The upstream resolvers in a resolv.conf text (nameserver lines, port 53).
pub fn upstreams_from_resolv_conf(_text: &str) -> Vec<SocketAddr> {
    todo!()
}
