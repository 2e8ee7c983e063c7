//! Address management. Pure: the engine keeps the allocations in its
//! network records and passes them in.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use crate::{Error, Result};

/// An IPv4 network, `172.18.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subnet {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

/// The longest prefix a network may have: a /31 or /32 has no room for a
/// gateway and a container besides the network and broadcast addresses.
pub const MAX_PREFIX: u8 = 30;

impl Subnet {
    /// Checks the invariants `FromStr` checks (prefix ≤ 30, no host bits).
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Subnet> {
        if prefix > MAX_PREFIX {
            return Err(Error::InvalidArgument(format!(
                "subnet {addr}/{prefix}: prefix must be at most /{MAX_PREFIX} \
                 (room for a gateway and one address)"
            )));
        }
        let s = Subnet { addr, prefix };
        if u32::from(addr) & !s.mask() != 0 {
            return Err(Error::InvalidArgument(format!(
                "subnet {addr}/{prefix} has host bits set (did you mean {}/{prefix}?)",
                Ipv4Addr::from(u32::from(addr) & s.mask())
            )));
        }
        Ok(s)
    }

    /// The netmask as a number, `/16` → `0xffff0000`.
    pub fn mask(&self) -> u32 {
        mask(self.prefix)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr) & self.mask()
    }

    /// True when the two networks share at least one address: for CIDR
    /// blocks that means one contains the other's network address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let m = mask(self.prefix.min(other.prefix));
        u32::from(self.addr) & m == u32::from(other.addr) & m
    }

    /// The first usable address, which the engine gives the bridge (the
    /// containers' default gateway).
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network() + 1)
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network() | !self.mask())
    }

    fn network(&self) -> u32 {
        u32::from(self.addr) & self.mask()
    }
}

fn mask(prefix: u8) -> u32 {
    // A shift by 32 overflows, so /0 is spelled out.
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Subnet {
    type Err = Error;

    fn from_str(s: &str) -> Result<Subnet> {
        let invalid = |why: &str| Error::InvalidArgument(format!("invalid subnet {s:?}: {why}"));
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| invalid("expected an IPv4 CIDR like 172.18.0.0/16"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| invalid("the address is not an IPv4 address"))?;
        // u8::from_str accepts a leading '+', which no CIDR has.
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("the prefix length is not a number"));
        }
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| invalid("the prefix length is out of range"))?;
        if prefix > 32 {
            return Err(invalid("the prefix length is more than 32"));
        }
        Subnet::new(addr, prefix)
    }
}

impl serde::Serialize for Subnet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Subnet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Subnet, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The pools docker draws default networks from, in order: /16s of
/// 172.17–172.31, then /20s of 192.168/16.
fn candidates() -> impl Iterator<Item = Subnet> {
    let big = (17..=31u8).map(|b| Subnet {
        addr: Ipv4Addr::new(172, b, 0, 0),
        prefix: 16,
    });
    let small = (0..16u8).map(|i| Subnet {
        addr: Ipv4Addr::new(192, 168, i * 16, 0),
        prefix: 20,
    });
    big.chain(small)
}

/// A subnet for a new network that overlaps none of `taken` nor the host's
/// routes: the first free /16 of 172.17–172.31, then /20s of 192.168/16,
/// as docker does.
pub fn choose_subnet(taken: &[Subnet]) -> Result<Subnet> {
    let routes = match std::fs::read_to_string("/proc/net/route") {
        Ok(text) => routes_from_proc(&text),
        Err(e) => {
            return Err(Error::Io {
                op: "read host routes",
                path: "/proc/net/route".into(),
                source: e,
            })
        }
    };
    choose_subnet_avoiding(taken, &routes)
}

/// [`choose_subnet`] with the host routes given.
pub fn choose_subnet_avoiding(taken: &[Subnet], routes: &[Subnet]) -> Result<Subnet> {
    candidates()
        .find(|c| !taken.iter().chain(routes).any(|t| t.overlaps(c)))
        .ok_or_else(|| {
            Error::Conflict(
                "all predefined address pools (172.17-31.0.0/16, 192.168.0.0/16 in /20s) \
                 overlap existing networks or host routes"
                    .into(),
            )
        })
}

/// The destinations of the routes in a `/proc/net/route` text, except the
/// default route (which overlaps everything). The kernel prints addresses
/// as hexadecimal `__be32` in host byte order (proc(5), `/proc/net/route`),
/// so on little-endian hosts `0011AC` is 172.17.0.0.
pub fn routes_from_proc(text: &str) -> Vec<Subnet> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let (Ok(dst), Ok(mask)) = (u32::from_str_radix(f[1], 16), u32::from_str_radix(f[7], 16))
        else {
            continue;
        };
        // The number is the network-order word read natively: its native
        // bytes are the address octets.
        let dst = Ipv4Addr::from(dst.to_ne_bytes());
        let mask = u32::from_be_bytes(mask.to_ne_bytes());
        let prefix = mask.count_ones() as u8;
        if prefix == 0 {
            continue;
        }
        out.push(Subnet {
            addr: Ipv4Addr::from(u32::from(dst) & self::mask(prefix)),
            prefix,
        });
    }
    out
}

/// An address in `subnet` that is not the network, broadcast, `gateway` or
/// in `used`: `requested` if given (error if taken or outside), else the
/// lowest free one.
pub fn allocate(
    subnet: Subnet,
    gateway: Ipv4Addr,
    used: &BTreeSet<Ipv4Addr>,
    requested: Option<Ipv4Addr>,
) -> Result<Ipv4Addr> {
    let reserved = |ip: Ipv4Addr| {
        ip == Ipv4Addr::from(subnet.network()) || ip == subnet.broadcast() || ip == gateway
    };
    if let Some(ip) = requested {
        if !subnet.contains(ip) {
            return Err(Error::InvalidArgument(format!(
                "address {ip} is not in subnet {subnet}"
            )));
        }
        if reserved(ip) {
            return Err(Error::InvalidArgument(format!(
                "address {ip} is reserved in subnet {subnet} (network, broadcast or gateway)"
            )));
        }
        if used.contains(&ip) {
            return Err(Error::Conflict(format!("address {ip} is already in use")));
        }
        return Ok(ip);
    }
    let first = subnet.network() + 1;
    let last = u32::from(subnet.broadcast()) - 1;
    (first..=last)
        .map(Ipv4Addr::from)
        .find(|ip| !reserved(*ip) && !used.contains(ip))
        .ok_or(Error::PoolExhausted {
            subnet: subnet.to_string(),
        })
}

/// The MAC address docker derives from an IPv4 address: 02:42:a:b:c:d.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Subnet {
        s.parse().expect("test subnet")
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("test address")
    }

    #[test]
    fn parses_and_prints() {
        for s in [
            "172.18.0.0/16",
            "10.0.0.0/8",
            "192.168.16.0/20",
            "10.1.2.4/30",
            "0.0.0.0/0",
        ] {
            assert_eq!(net(s).to_string(), s);
        }
    }

    #[test]
    fn refuses_bad_subnets() {
        let cases = [
            ("", "expected an IPv4 CIDR"),
            ("172.18.0.0", "expected an IPv4 CIDR"),
            ("172.18.0.0/", "not a number"),
            ("172.18.0.0/+16", "not a number"),
            ("172.18.0.0/-1", "not a number"),
            ("172.18.0.0/1a", "not a number"),
            ("172.18.0.0/33", "more than 32"),
            ("172.18.0.0/300", "out of range"),
            ("172.18.0/16", "not an IPv4 address"),
            ("172.18.0.256/16", "not an IPv4 address"),
            ("fd00::/64", "not an IPv4 address"),
            (" 172.18.0.0/16", "not an IPv4 address"),
            (
                "172.18.0.1/16",
                "host bits set (did you mean 172.18.0.0/16?)",
            ),
            ("10.0.0.4/29", "host bits set"),
            ("10.0.0.0/31", "at most /30"),
            ("10.0.0.0/32", "at most /30"),
        ];
        for (input, want) in cases {
            let err = input.parse::<Subnet>().expect_err(input).to_string();
            assert!(err.contains(want), "{input:?}: {err:?} lacks {want:?}");
        }
    }

    #[test]
    fn serde_is_the_string_form() {
        let s = net("172.20.0.0/16");
        let j = serde_json::to_string(&s).expect("serialize");
        assert_eq!(j, r#""172.20.0.0/16""#);
        assert_eq!(serde_json::from_str::<Subnet>(&j).expect("deserialize"), s);
        assert!(serde_json::from_str::<Subnet>(r#""172.20.0.1/16""#).is_err());
        assert!(serde_json::from_str::<Subnet>("5").is_err());
    }

    #[test]
    fn geometry() {
        let cases = [
            ("172.17.0.0/16", "172.17.0.1", "172.17.255.255"),
            ("10.1.2.0/24", "10.1.2.1", "10.1.2.255"),
            ("192.168.16.0/20", "192.168.16.1", "192.168.31.255"),
            ("10.0.0.4/30", "10.0.0.5", "10.0.0.7"),
        ];
        for (s, first, bcast) in cases {
            assert_eq!(net(s).first_host(), ip(first), "{s}");
            assert_eq!(net(s).broadcast(), ip(bcast), "{s}");
        }
        let s = net("10.1.2.0/24");
        assert!(s.contains(ip("10.1.2.0")));
        assert!(s.contains(ip("10.1.2.255")));
        assert!(!s.contains(ip("10.1.3.0")));
        assert!(net("0.0.0.0/0").contains(ip("1.2.3.4")));
    }

    #[test]
    fn overlaps() {
        let cases = [
            ("172.17.0.0/16", "172.17.5.0/24", true),
            ("172.17.5.0/24", "172.17.0.0/16", true),
            ("172.17.0.0/16", "172.18.0.0/16", false),
            ("10.0.0.0/8", "10.255.0.0/16", true),
            ("192.168.0.0/20", "192.168.16.0/20", false),
            ("192.168.0.0/16", "192.168.16.0/20", true),
            ("10.0.0.0/30", "10.0.0.4/30", false),
            ("0.0.0.0/0", "8.8.8.0/24", true),
        ];
        for (a, b, want) in cases {
            assert_eq!(net(a).overlaps(&net(b)), want, "{a} vs {b}");
        }
    }

    #[test]
    fn chooses_like_docker() {
        let cases: &[(&[&str], &[&str], &str)] = &[
            (&[], &[], "172.17.0.0/16"),
            (&["172.17.0.0/16"], &[], "172.18.0.0/16"),
            (&[], &["172.17.0.0/16"], "172.18.0.0/16"),
            (&["172.17.0.0/16"], &["172.18.3.0/24"], "172.19.0.0/16"),
            // A wide route covers the whole 172.16/12 pool.
            (&[], &["172.16.0.0/12"], "192.168.0.0/20"),
            (&["172.16.0.0/12"], &["192.168.0.0/24"], "192.168.16.0/20"),
        ];
        for (taken, routes, want) in cases {
            let taken: Vec<Subnet> = taken.iter().map(|s| net(s)).collect();
            let routes: Vec<Subnet> = routes.iter().map(|s| net(s)).collect();
            let got = choose_subnet_avoiding(&taken, &routes).expect("a free subnet");
            assert_eq!(got, net(want), "taken {taken:?} routes {routes:?}");
        }
        let all = [net("172.16.0.0/12"), net("192.168.0.0/16")];
        let err = choose_subnet_avoiding(&all, &[]).expect_err("pools exhausted");
        assert!(err.to_string().contains("overlap"), "{err}");
    }

    #[test]
    fn reads_proc_net_route() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
            docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
            eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let routes = routes_from_proc(text);
        if cfg!(target_endian = "little") {
            assert_eq!(routes, vec![net("172.17.0.0/16"), net("192.0.2.0/24")]);
        } else {
            assert_eq!(routes.len(), 2);
        }
        // The host's real table parses (whatever it holds) and the choice
        // avoids it.
        let chosen = choose_subnet(&[]).expect("choose on this host");
        let host = routes_from_proc(&std::fs::read_to_string("/proc/net/route").expect("read"));
        assert!(!host.iter().any(|r| r.overlaps(&chosen)));
    }

    #[test]
    fn allocates() {
        let s = net("10.0.0.0/29");
        let gw = s.first_host();
        let mut used = BTreeSet::new();
        let mut got = Vec::new();
        // .0 network, .1 gateway, .7 broadcast: .2-.6 are free.
        while let Ok(a) = allocate(s, gw, &used, None) {
            used.insert(a);
            got.push(a.to_string());
        }
        assert_eq!(
            got,
            ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
        );
        assert!(matches!(
            allocate(s, gw, &used, None),
            Err(Error::PoolExhausted { .. })
        ));

        used.remove(&ip("10.0.0.4"));
        assert_eq!(allocate(s, gw, &used, None).expect("gap"), ip("10.0.0.4"));

        let empty = BTreeSet::new();
        assert_eq!(
            allocate(s, gw, &empty, Some(ip("10.0.0.6"))).expect("requested"),
            ip("10.0.0.6")
        );
        let bad = [
            ("10.0.0.9", "not in subnet"),
            ("10.0.0.0", "reserved"),
            ("10.0.0.1", "reserved"),
            ("10.0.0.7", "reserved"),
        ];
        for (req, want) in bad {
            let err = allocate(s, gw, &empty, Some(ip(req))).expect_err(req);
            assert!(err.to_string().contains(want), "{req}: {err}");
        }
        let err = allocate(s, gw, &used, Some(ip("10.0.0.3"))).expect_err("in use");
        assert!(matches!(err, Error::Conflict(_)), "{err}");
        // A gateway other than the first host is skipped, not the first host.
        let gw = ip("10.0.0.6");
        assert_eq!(
            allocate(s, gw, &empty, None).expect("first"),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn docker_mac() {
        assert_eq!(mac_for(ip("172.17.0.2")), [2, 0x42, 172, 17, 0, 2]);
    }
}
