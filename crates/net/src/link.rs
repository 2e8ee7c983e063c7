//! Links, addresses and routes over rtnetlink: bridges, veth pairs moved
//! into a container's namespace.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::Result;

/// Creates bridge `name` with `gateway/prefix` if missing (or fixes its
/// address), brings it up. Idempotent.
pub fn ensure_bridge(_name: &str, _gateway: Ipv4Addr, _prefix: u8) -> Result<()> {
    todo!()
}

/// Deletes a link by name; a missing link is not an error.
pub fn delete_link(_name: &str) -> Result<()> {
    todo!()
}

pub fn link_exists(_name: &str) -> bool {
    todo!()
}

/// One container interface on one bridge.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// The container's network namespace (a bind-mounted nsfs file).
    pub netns: PathBuf,
    pub bridge: String,
    /// Host end of the veth pair, e.g. `veth1a2b3c4` (≤ 15 bytes).
    pub host_ifname: String,
    /// Name inside the container: `eth0`, `eth1`, ...
    pub ifname: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub mac: [u8; 6],
    /// Default route via this gateway (only the first network has one).
    pub gateway: Option<Ipv4Addr>,
}

/// Creates the veth pair, enslaves the host end to the bridge, moves the
/// other end into the namespace, renames it, sets address, MAC and route
/// and brings both up. On error nothing is left behind.
pub fn attach(_a: &Attachment) -> Result<()> {
    todo!()
}

/// Removes the host end of a veth pair (which removes its peer).
pub fn detach(_host_ifname: &str) -> Result<()> {
    todo!()
}
