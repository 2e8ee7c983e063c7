//! Container networking: persistent network namespaces, Linux bridges and
//! veth pairs (netlink), address management, nftables rules for NAT, port
//! publishing and isolation, host port reservations, and the embedded DNS
//! server of user-defined networks. Synchronous; knows nothing of the engine.
//!
//! Module map: `netns` makes persistent network namespaces (bind-mounted
//! nsfs files); `link` speaks rtnetlink (bridges, veth pairs, addresses,
//! routes); `ipam` is pure address management; `ports` reserves host ports
//! with bound sockets; `firewall` replaces the cais nftables table in one
//! transaction; `dns` is the embedded DNS server at 127.0.0.11 in each
//! served namespace (`wire`, `answer`, `forward`, `server`), asking a
//! `Resolver` the engine implements.

pub mod dns;
pub mod firewall;
pub mod ipam;
pub mod link;
pub mod netns;
pub mod ports;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Conflict(String),
    #[error("bind for {addr} failed: port is already allocated")]
    PortInUse { addr: String },
    #[error("no free address in {subnet}")]
    PoolExhausted { subnet: String },
    #[error("netlink: {op}")]
    Netlink {
        op: String,
        #[source]
        source: std::io::Error,
    },
    #[error("nftables: {0}")]
    Nftables(String),
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
