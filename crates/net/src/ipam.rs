//! Address management. Pure: the engine keeps the allocations in its
//! network records and passes them in.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use crate::Result;

/// An IPv4 network, `172.18.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subnet {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

// FromStr (refuses host bits set and prefixes > 30 with a clear message),
// Display, serde as the string form, contains(ip), overlaps(&Subnet),
// first_host() (the default gateway), broadcast().

/// A subnet for a new network that overlaps none of `taken` nor the host's
/// routes: the first free /16 of 172.17–172.31, then /20s of 192.168/16,
/// as docker does.
pub fn choose_subnet(_taken: &[Subnet]) -> Result<Subnet> {
    todo!()
}

/// An address in `subnet` that is not the network, broadcast, `gateway` or
/// in `used`: `requested` if given (error if taken or outside), else the
/// lowest free one.
pub fn allocate(
    _subnet: Subnet,
    _gateway: Ipv4Addr,
    _used: &BTreeSet<Ipv4Addr>,
    _requested: Option<Ipv4Addr>,
) -> Result<Ipv4Addr> {
    todo!()
}

/// The MAC address docker derives from an IPv4 address: 02:42:a:b:c:d.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}
