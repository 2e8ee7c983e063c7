//! Host ports: protocols and reservations. A published port is reserved by
//! a bound socket the daemon holds, so a port in use is an error at `run`
//! and no other program takes it while the container lives.

use std::net::Ipv4Addr;

use crate::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
}

// FromStr/Display as "tcp"/"udp" (also sctp refused with a clear error).

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
pub fn reserve(_proto: Proto, _host_ip: Option<Ipv4Addr>, _port: u16) -> Result<Reservation> {
    todo!()
}
