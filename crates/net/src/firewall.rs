//! nftables rules in cais-owned tables, rebuilt as a whole from the desired
//! state in one atomic transaction; nothing outside those tables is touched.

use std::net::Ipv4Addr;

use crate::ipam::Subnet;
use crate::ports::Proto;
use crate::Result;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRules {
    pub bridge: String,
    pub subnet: Subnet,
    /// Masquerade traffic leaving the host (false for `--internal`).
    pub masquerade: bool,
    /// No traffic to or from outside the bridge.
    pub internal: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRule {
    pub proto: Proto,
    /// `None`: every host address.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_ip: Ipv4Addr,
    pub container_port: u16,
    pub bridge: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub networks: Vec<NetworkRules>,
    pub ports: Vec<PortRule>,
}

/// Replaces the cais tables with `rules` (one `nft -f` transaction), turns
/// on IPv4 forwarding and what localhost publishing needs.
pub fn apply(_rules: &Ruleset) -> Result<()> {
    todo!()
}

/// Deletes the cais tables (shutdown); missing tables are not an error.
pub fn remove() -> Result<()> {
    todo!()
}
