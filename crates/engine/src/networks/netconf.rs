//! Pure parts of container networking: published-port specs, the
//! container's /etc/hosts and /etc/resolv.conf, the firewall ruleset built
//! from engine state, name resolution for the embedded DNS, network modes,
//! and what a running container holds (`NetState`, kept in its record). No
//! I/O, so all of it is tested here.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use cais_api::{EndpointSettings, HostConfig, PortBinding};
use cais_net::firewall::{NetworkRules, PortRule, Ruleset};
use cais_net::ipam::{self, Subnet};
use cais_net::ports::Proto;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One published port the engine asked for: container port and protocol,
/// host address (`None`: all) and host port range (`0..=0`: any free one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRequest {
    pub container_port: u16,
    pub proto: Proto,
    pub host_ip: Option<Ipv4Addr>,
    pub host_ports: (u16, u16),
}

/// A published port as reserved: what inspect, ps and the firewall show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMap {
    pub container_port: u16,
    /// "tcp" or "udp".
    pub proto: String,
    /// "" for every host address.
    #[serde(default)]
    pub host_ip: String,
    pub host_port: u16,
}

/// "80/tcp", "53/udp" or "80" (tcp).
pub fn parse_port_key(key: &str) -> Result<(u16, Proto)> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto: Proto = proto.parse()?;
    let port: u16 =
        port.parse().ok().filter(|p| *p != 0).ok_or_else(|| {
            Error::InvalidArgument(format!("invalid port specification: {key:?}"))
        })?;
    Ok((port, proto))
}

/// A binding's host port: "" any, "8080", or a range "8000-8010".
fn parse_host_ports(s: &str) -> Result<(u16, u16)> {
    let bad = || Error::InvalidArgument(format!("invalid host port: {s:?}"));
    let s = s.trim();
    if s.is_empty() {
        return Ok((0, 0));
    }
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u16 = a.parse().map_err(|_| bad())?;
    let b: u16 = b.parse().map_err(|_| bad())?;
    if a > b || (a == 0 && b != 0) {
        return Err(bad());
    }
    Ok((a, b))
}

/// The ports a container publishes: its `PortBindings`, and with
/// `PublishAllPorts` every exposed port without a binding on a free port.
/// IPv6 host addresses are skipped (networks are IPv4 only).
pub fn port_requests(
    host: &HostConfig,
    exposed: Option<&BTreeMap<String, serde_json::Value>>,
) -> Result<Vec<PortRequest>> {
    let mut out = Vec::new();
    for (key, bindings) in &host.port_bindings {
        let (container_port, proto) = parse_port_key(key)?;
        for b in bindings {
            let host_ip = match b.host_ip.trim() {
                "" | "0.0.0.0" => None,
                ip if ip.contains(':') => continue,
                ip => Some(ip.parse::<Ipv4Addr>().map_err(|_| {
                    Error::InvalidArgument(format!("invalid host IP address: {ip:?}"))
                })?),
            };
            out.push(PortRequest {
                container_port,
                proto,
                host_ip,
                host_ports: parse_host_ports(&b.host_port)?,
            });
        }
    }
    if host.publish_all_ports {
        for key in exposed.into_iter().flat_map(|e| e.keys()) {
            let (container_port, proto) = parse_port_key(key)?;
            let bound = out
                .iter()
                .any(|r| r.container_port == container_port && r.proto == proto);
            if !bound {
                out.push(PortRequest {
                    container_port,
                    proto,
                    host_ip: None,
                    host_ports: (0, 0),
                });
            }
        }
    }
    Ok(out)
}

/// `NetworkSettings.Ports`: every exposed or published port, with its
/// bindings or `null`.
pub fn ports_view(
    exposed: Option<&BTreeMap<String, serde_json::Value>>,
    maps: &[PortMap],
) -> BTreeMap<String, Option<Vec<PortBinding>>> {
    let mut out: BTreeMap<String, Option<Vec<PortBinding>>> = BTreeMap::new();
    for key in exposed.into_iter().flat_map(|e| e.keys()) {
        let key = if key.contains('/') {
            key.clone()
        } else {
            format!("{key}/tcp")
        };
        out.insert(key, None);
    }
    for m in maps {
        out.entry(format!("{}/{}", m.container_port, m.proto))
            .or_insert(None)
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: if m.host_ip.is_empty() {
                    "0.0.0.0".into()
                } else {
                    m.host_ip.clone()
                },
                host_port: m.host_port.to_string(),
            });
    }
    out
}

/// The `Ports` of a `docker ps` row.
pub fn ps_ports(
    exposed: Option<&BTreeMap<String, serde_json::Value>>,
    maps: &[PortMap],
) -> Vec<cais_api::Port> {
    let mut out = Vec::new();
    for (key, bindings) in ports_view(exposed, maps) {
        let Ok((port, proto)) = parse_port_key(&key) else {
            continue;
        };
        match bindings {
            None => out.push(cais_api::Port {
                private_port: port,
                kind: proto.to_string(),
                ..Default::default()
            }),
            Some(bs) => out.extend(bs.into_iter().map(|b| cais_api::Port {
                ip: b.host_ip,
                private_port: port,
                public_port: b.host_port.parse().ok(),
                kind: proto.to_string(),
            })),
        }
    }
    out
}

/// A linked container as /etc/hosts shows it (`--link name:alias`).
pub struct HostsLink {
    pub ip: Ipv4Addr,
    pub alias: String,
    pub name: String,
    pub hostname: String,
}

/// The container's /etc/hosts: localhost, links, `--add-host` entries,
/// then its own address (or 127.0.1.1 without one).
pub fn hosts_file(
    hostname: &str,
    own_ip: Option<Ipv4Addr>,
    links: &[HostsLink],
    extra_hosts: &[String],
    host_gateway: Option<Ipv4Addr>,
) -> Result<String> {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for l in links {
        let mut names = vec![l.alias.as_str()];
        for n in [l.hostname.as_str(), l.name.as_str()] {
            if !names.contains(&n) {
                names.push(n);
            }
        }
        s.push_str(&format!("{}\t{}\n", l.ip, names.join(" ")));
    }
    s.push_str(&extra_host_lines(extra_hosts, host_gateway)?);
    match own_ip {
        Some(ip) => s.push_str(&format!("{ip}\t{hostname}\n")),
        None => s.push_str(&format!("127.0.1.1\t{hostname}\n")),
    }
    Ok(s)
}

/// `--add-host` entries (`name:ip`, as the docker CLI sends them, or
/// `name=ip`) as /etc/hosts lines; `host-gateway` is `host_gateway`.
pub fn extra_host_lines(extra_hosts: &[String], host_gateway: Option<Ipv4Addr>) -> Result<String> {
    let mut s = String::new();
    for e in extra_hosts {
        // IPv6 addresses hold colons: the name ends at the first one.
        let (name, ip) = e
            .split_once('=')
            .or_else(|| e.split_once(':'))
            .filter(|(n, i)| !n.is_empty() && !i.is_empty())
            .ok_or_else(|| Error::InvalidArgument(format!("invalid extra host: {e:?}")))?;
        let ip = if ip == "host-gateway" {
            host_gateway.map(|g| g.to_string()).ok_or_else(|| {
                Error::InvalidArgument(
                    "host-gateway needs the container on a bridge network".into(),
                )
            })?
        } else if ip.parse::<std::net::IpAddr>().is_ok() {
            ip.to_string()
        } else {
            return Err(Error::InvalidArgument(format!(
                "invalid IP address in add-host: {ip:?}"
            )));
        };
        s.push_str(&format!("{ip}\t{name}\n"));
    }
    Ok(s)
}

/// The embedded DNS server's address inside each container.
pub const EMBEDDED_DNS: &str = "127.0.0.11";

/// The container's /etc/resolv.conf from the host's. On a user-defined
/// network it points at the embedded server; otherwise the host's servers
/// without loopback ones (unreachable from another namespace), falling back
/// to Google's public servers as docker does. `--dns`, `--dns-search` and
/// `--dns-option` replace the corresponding lines.
pub fn resolv_conf(
    host_text: &str,
    embedded: bool,
    dns: &[String],
    search: &[String],
    options: &[String],
) -> String {
    let mut servers = Vec::new();
    let mut host_search = Vec::new();
    let mut host_options = Vec::new();
    for line in host_text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => servers.extend(words.next().map(str::to_string)),
            Some("search" | "domain") => {
                host_search = words.map(str::to_string).collect();
            }
            Some("options") => host_options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    let servers: Vec<String> = if embedded {
        vec![EMBEDDED_DNS.to_string()]
    } else if !dns.is_empty() {
        dns.to_vec()
    } else {
        let kept: Vec<String> = servers
            .into_iter()
            .filter(|s| {
                // Loopback servers answer only in the host's namespace; IPv6
                // ones are unreachable on IPv4-only networks.
                s.parse::<Ipv4Addr>().is_ok_and(|ip| !ip.is_loopback())
            })
            .collect();
        if kept.is_empty() {
            vec!["8.8.8.8".into(), "8.8.4.4".into()]
        } else {
            kept
        }
    };
    let search = if search.is_empty() {
        host_search
    } else {
        search.to_vec()
    };
    let mut options = if options.is_empty() {
        host_options
    } else {
        options.to_vec()
    };
    if embedded && !options.iter().any(|o| o.starts_with("ndots:")) {
        options.push("ndots:0".into());
    }
    let mut s = String::new();
    for n in &servers {
        s.push_str(&format!("nameserver {n}\n"));
    }
    if !search.is_empty() && search != ["."] {
        s.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        s.push_str(&format!("options {}\n", options.join(" ")));
    }
    s
}

/// What the firewall needs to know of one bridge network.
#[derive(Debug, Clone)]
pub struct FwNetwork {
    pub id: String,
    pub bridge: String,
    pub subnet: Subnet,
    pub internal: bool,
}

/// What the firewall needs to know of one attached container.
#[derive(Debug, Clone)]
pub struct FwContainer {
    /// Networks the container is attached to (ids), the primary first.
    pub networks: Vec<(String, Ipv4Addr)>,
    pub ports: Vec<PortMap>,
}

/// The whole desired ruleset: NAT and isolation for every network with an
/// attached container, DNAT for every published port (to the container's
/// address on its primary network; none on internal networks). A network
/// whose rules `previous` (the ruleset in force) holds keeps them when its
/// last container leaves, while the network exists: containers that come
/// and go one at a time (`run --rm` after `run --rm`) then change nothing,
/// and no start or exit rebuilds the firewall.
pub fn ruleset(
    networks: &[FwNetwork],
    containers: &[FwContainer],
    previous: Option<&Ruleset>,
) -> Ruleset {
    let mut rules = Ruleset::default();
    for n in networks {
        let used = containers
            .iter()
            .any(|c| c.networks.iter().any(|(id, _)| id == &n.id));
        let had_rules = previous.is_some_and(|p| p.networks.iter().any(|r| r.bridge == n.bridge));
        if !used && !had_rules {
            continue;
        }
        rules.networks.push(NetworkRules {
            bridge: n.bridge.clone(),
            subnet: n.subnet,
            masquerade: !n.internal,
            internal: n.internal,
        });
    }
    for c in containers {
        let Some((net_id, ip)) = c.networks.first() else {
            continue;
        };
        let Some(net) = networks.iter().find(|n| &n.id == net_id) else {
            continue;
        };
        if net.internal {
            continue;
        }
        for p in &c.ports {
            let Ok(proto) = p.proto.parse::<Proto>() else {
                continue;
            };
            rules.ports.push(PortRule {
                proto,
                host_ip: p.host_ip.parse().ok(),
                host_port: p.host_port,
                container_ip: *ip,
                container_port: p.container_port,
                bridge: net.bridge.clone(),
            });
        }
    }
    rules
}

/// One running container as the embedded DNS sees it.
#[derive(Debug, Clone)]
pub struct DnsEntry {
    pub id: String,
    pub name: String,
    pub hostname: String,
    /// Network id → (address, aliases) of its endpoint there.
    pub endpoints: BTreeMap<String, (Ipv4Addr, Vec<String>)>,
    /// `--link name:alias` on a user network: alias → name, for this
    /// container's own lookups only.
    pub links: Vec<(String, String)>,
}

/// Addresses of `name` as seen by container `client`: containers sharing a
/// network with it, matched by name, alias, short id or hostname, on the
/// shared networks only. `None`: not a container name.
pub fn resolve(entries: &[DnsEntry], client: &str, name: &str) -> Option<Vec<Ipv4Addr>> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let me = entries.iter().find(|e| e.id == client)?;
    let name = me
        .links
        .iter()
        .find(|(alias, _)| alias.eq_ignore_ascii_case(&name))
        .map(|(_, target)| target.to_ascii_lowercase())
        .unwrap_or(name);
    let mut out = Vec::new();
    for (net, _) in me.endpoints.iter() {
        for e in entries {
            let Some((ip, aliases)) = e.endpoints.get(net) else {
                continue;
            };
            let matches = e.name.eq_ignore_ascii_case(&name)
                || aliases.iter().any(|a| a.eq_ignore_ascii_case(&name))
                || (name.len() >= 12 && e.id.starts_with(&name))
                || e.hostname.eq_ignore_ascii_case(&name);
            if matches && !out.contains(ip) {
                out.push(*ip);
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The container name behind `ip` on a network `client` shares.
pub fn reverse(entries: &[DnsEntry], client: &str, ip: Ipv4Addr) -> Option<String> {
    let me = entries.iter().find(|e| e.id == client)?;
    entries
        .iter()
        .find(|e| {
            e.endpoints
                .iter()
                .any(|(net, (a, _))| *a == ip && me.endpoints.contains_key(net))
        })
        .map(|e| e.name.clone())
}

/// The names an endpoint answers to (`DNSNames` in inspect).
pub fn dns_names(name: &str, id: &str, ep: &EndpointSettings) -> Vec<String> {
    let mut out = vec![name.to_string()];
    for a in &ep.aliases {
        if !out.contains(a) {
            out.push(a.clone());
        }
    }
    out.push(id.chars().take(12).collect());
    out
}

/// Rx/tx counters per interface from a `/proc/<pid>/net/dev` text, as the
/// `networks` object of docker stats.
pub fn net_dev_stats(text: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let v: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if v.len() < 16 {
            continue;
        }
        out.insert(
            name.to_string(),
            serde_json::json!({
                "rx_bytes": v[0], "rx_packets": v[1], "rx_errors": v[2], "rx_dropped": v[3],
                "tx_bytes": v[8], "tx_packets": v[9], "tx_errors": v[10], "tx_dropped": v[11],
            }),
        );
    }
    out
}

/// What a container with its own network namespace holds, persisted in its
/// record while it runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NetState {
    pub netns: PathBuf,
    /// One interface per network, the primary (default route) first.
    #[serde(default)]
    pub links: Vec<LinkState>,
    #[serde(default)]
    pub ports: Vec<PortMap>,
    /// Served by the embedded DNS.
    #[serde(default)]
    pub dns: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkState {
    pub network_id: String,
    pub host_ifname: String,
    pub ifname: String,
    pub ip: Ipv4Addr,
}

/// How a container is networked, from its `NetworkMode`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Mode {
    Host,
    None,
    /// Joins another container's namespace.
    Container(String),
    /// Its own namespace on bridge networks; the name of the primary one.
    Bridge(String),
}

pub(crate) fn mode_of(network_mode: &str) -> Mode {
    match network_mode {
        "host" => Mode::Host,
        "none" => Mode::None,
        "" | "default" | "bridge" => Mode::Bridge("bridge".into()),
        m => match m.strip_prefix("container:") {
            Some(c) => Mode::Container(c.to_string()),
            None => Mode::Bridge(m.to_string()),
        },
    }
}

/// An /etc file of the container: written from text, or another
/// container's (`--network container:`).
pub(crate) enum EtcFile {
    Text(String),
    Shared(PathBuf),
}

/// What `start` needs from networking.
pub(crate) struct NetPlan {
    pub host_network: bool,
    pub netns: Option<PathBuf>,
    pub hostname: String,
    /// hostname, hosts, resolv.conf.
    pub etc: Vec<(&'static str, EtcFile)>,
    /// The variables legacy links give the process (see `link_env`).
    pub link_env: Vec<String>,
}

/// The environment a legacy link (`--link name:alias` on the default
/// bridge) gives the container, as docker names it: for alias `db` of
/// container `/web`, `DB_NAME=/web/db`, `DB_PORT=tcp://IP:PORT` for the
/// lowest exposed port, `DB_PORT_5432_TCP=...` with `_ADDR`, `_PORT`,
/// `_PROTO` for each, `_START`/`_END` for runs of consecutive ports, and
/// `DB_ENV_X=...` for the linked container's variables (HOME and PATH
/// left out).
pub fn link_env(
    parent: &str,
    alias: &str,
    ip: Ipv4Addr,
    exposed: &[String],
    child_env: &[String],
) -> Vec<String> {
    let var = alias.to_ascii_uppercase().replace('-', "_");
    let mut ports: Vec<(u16, String)> = exposed
        .iter()
        .filter_map(|p| {
            let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            Some((port.parse().ok()?, proto.to_ascii_lowercase()))
        })
        .collect();
    ports.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| (a.1 != "tcp").cmp(&(b.1 != "tcp")))
    });
    ports.dedup();
    let mut env = Vec::new();
    if let Some((port, proto)) = ports.first() {
        env.push(format!("{var}_PORT={proto}://{ip}:{port}"));
    }
    let mut i = 0;
    while i < ports.len() {
        let (start, proto) = &ports[i];
        let mut j = i;
        while j + 1 < ports.len() && ports[j + 1].1 == *proto && ports[j + 1].0 == ports[j].0 + 1 {
            j += 1;
        }
        if j > i {
            let up = proto.to_ascii_uppercase();
            let end = ports[j].0;
            env.push(format!(
                "{var}_PORT_{start}_{up}_START={proto}://{ip}:{start}"
            ));
            env.push(format!("{var}_PORT_{start}_{up}_ADDR={ip}"));
            env.push(format!("{var}_PORT_{start}_{up}_PROTO={proto}"));
            env.push(format!("{var}_PORT_{start}_{up}_PORT_START={start}"));
            env.push(format!("{var}_PORT_{start}_{up}_END={proto}://{ip}:{end}"));
            env.push(format!("{var}_PORT_{start}_{up}_PORT_END={end}"));
            i = j + 1;
        } else {
            i += 1;
        }
    }
    for (port, proto) in &ports {
        let up = proto.to_ascii_uppercase();
        env.push(format!("{var}_PORT_{port}_{up}={proto}://{ip}:{port}"));
        env.push(format!("{var}_PORT_{port}_{up}_ADDR={ip}"));
        env.push(format!("{var}_PORT_{port}_{up}_PORT={port}"));
        env.push(format!("{var}_PORT_{port}_{up}_PROTO={proto}"));
    }
    env.push(format!(
        "{var}_NAME=/{}/{alias}",
        parent.trim_start_matches('/')
    ));
    for kv in child_env {
        if let Some((k, v)) = kv.split_once('=') {
            if k != "HOME" && k != "PATH" {
                env.push(format!("{var}_ENV_{k}={v}"));
            }
        }
    }
    env
}

pub(crate) fn mac_text(ip: Ipv4Addr) -> String {
    mac_string(&ipam::mac_for(ip))
}

fn mac_string(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A MAC address an endpoint asks for (`--mac-address`): six hex bytes
/// separated by colons or dashes, unicast.
pub(crate) fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let bad = || Error::InvalidArgument(format!("invalid MAC address: {s}"));
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return Err(bad());
        }
        mac[i] = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if mac[0] & 1 == 1 {
        return Err(Error::InvalidArgument(format!(
            "invalid MAC address: {s}: a multicast address"
        )));
    }
    Ok(mac)
}

/// The MAC address an endpoint gets: the one it asks for, or one made
/// from its address; as inspect shows it.
pub(crate) fn endpoint_mac(asked: &str, ip: Ipv4Addr) -> Result<([u8; 6], String)> {
    let mac = if asked.is_empty() {
        ipam::mac_for(ip)
    } else {
        parse_mac(asked)?
    };
    Ok((mac, mac_string(&mac)))
}

/// The endpoint driver options of the bridge driver cais applies: the
/// interface's name in the container.
pub(crate) const ENDPOINT_IFNAME: &str = "com.docker.network.endpoint.ifname";

/// FNV-1a: a hash that stays the same across builds (a table name derived
/// from it must survive a daemon upgrade).
pub(crate) fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

pub(crate) fn etc_texts(
    hostname: &str,
    hosts: String,
    resolv: String,
) -> Vec<(&'static str, EtcFile)> {
    vec![
        ("hostname", EtcFile::Text(format!("{hostname}\n"))),
        ("hosts", EtcFile::Text(hosts)),
        ("resolv.conf", EtcFile::Text(resolv)),
    ]
}

/// Forgets what a stopped container's endpoint held (inspect shows the
/// request only).
pub(crate) fn clear_runtime(ep: &mut EndpointSettings) {
    ep.endpoint_id.clear();
    ep.gateway.clear();
    ep.ip_address.clear();
    ep.ip_prefix_len = 0;
    ep.mac_address.clear();
    ep.dns_names.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_modes_parse() {
        assert_eq!(mode_of(""), Mode::Bridge("bridge".into()));
        assert_eq!(mode_of("default"), Mode::Bridge("bridge".into()));
        assert_eq!(mode_of("n1"), Mode::Bridge("n1".into()));
        assert_eq!(mode_of("host"), Mode::Host);
        assert_eq!(mode_of("none"), Mode::None);
        assert_eq!(mode_of("container:web"), Mode::Container("web".into()));
    }

    fn binding(ip: &str, port: &str) -> PortBinding {
        PortBinding {
            host_ip: ip.into(),
            host_port: port.into(),
        }
    }

    #[test]
    fn port_bindings_parse() {
        let mut h = HostConfig::default();
        h.port_bindings
            .insert("80/tcp".into(), vec![binding("", "8080")]);
        h.port_bindings
            .insert("53/udp".into(), vec![binding("127.0.0.1", "")]);
        h.port_bindings
            .insert("443".into(), vec![binding("0.0.0.0", "8000-8010")]);
        h.port_bindings
            .insert("22/tcp".into(), vec![binding("::", "22")]);
        let mut r = port_requests(&h, None).expect("parses");
        r.sort_by_key(|r| r.container_port);
        assert_eq!(
            r,
            vec![
                PortRequest {
                    container_port: 53,
                    proto: Proto::Udp,
                    host_ip: Some(Ipv4Addr::LOCALHOST),
                    host_ports: (0, 0)
                },
                PortRequest {
                    container_port: 80,
                    proto: Proto::Tcp,
                    host_ip: None,
                    host_ports: (8080, 8080)
                },
                PortRequest {
                    container_port: 443,
                    proto: Proto::Tcp,
                    host_ip: None,
                    host_ports: (8000, 8010)
                },
            ]
        );
    }

    #[test]
    fn bad_port_bindings_are_refused() {
        for (key, ip, port) in [
            ("x/tcp", "", "80"),
            ("0/tcp", "", "80"),
            ("80/sctp", "", "80"),
            ("80/icmp", "", "80"),
            ("80/tcp", "", "http"),
            ("80/tcp", "", "90-80"),
            ("80/tcp", "", "70000"),
            ("80/tcp", "1.2.3", "80"),
        ] {
            let mut h = HostConfig::default();
            h.port_bindings.insert(key.into(), vec![binding(ip, port)]);
            assert!(
                port_requests(&h, None).is_err(),
                "{key} {ip} {port} should fail"
            );
        }
    }

    #[test]
    fn publish_all_covers_exposed_ports_once() {
        let mut h = HostConfig {
            publish_all_ports: true,
            ..Default::default()
        };
        h.port_bindings
            .insert("80/tcp".into(), vec![binding("", "8080")]);
        let exposed: BTreeMap<String, serde_json::Value> = [
            ("80/tcp".to_string(), serde_json::json!({})),
            ("9000/udp".to_string(), serde_json::json!({})),
        ]
        .into();
        let r = port_requests(&h, Some(&exposed)).expect("parses");
        assert_eq!(r.len(), 2);
        assert!(r
            .iter()
            .any(|r| r.container_port == 9000 && r.proto == Proto::Udp && r.host_ports == (0, 0)));
    }

    #[test]
    fn ports_show_like_docker() {
        let exposed: BTreeMap<String, serde_json::Value> = [
            ("80/tcp".to_string(), serde_json::json!({})),
            ("81/tcp".to_string(), serde_json::json!({})),
        ]
        .into();
        let maps = vec![PortMap {
            container_port: 80,
            proto: "tcp".into(),
            host_ip: String::new(),
            host_port: 8080,
        }];
        let v = ports_view(Some(&exposed), &maps);
        assert_eq!(v["80/tcp"], Some(vec![binding("0.0.0.0", "8080")]));
        assert_eq!(v["81/tcp"], None);
        let ps = ps_ports(Some(&exposed), &maps);
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].public_port, Some(8080));
        assert_eq!(ps[0].ip, "0.0.0.0");
        assert_eq!(ps[1].public_port, None);
    }

    #[test]
    fn legacy_links_give_dockers_variables() {
        let ip: Ipv4Addr = "172.17.0.5".parse().expect("ip");
        let env = link_env(
            "/web",
            "my-db",
            ip,
            &[
                "5432/tcp".into(),
                "80/tcp".into(),
                "81/tcp".into(),
                "53/udp".into(),
            ],
            &[
                "PATH=/bin".into(),
                "POSTGRES_DB=app".into(),
                "HOME=/root".into(),
            ],
        );
        for want in [
            "MY_DB_PORT=udp://172.17.0.5:53",
            "MY_DB_PORT_80_TCP_START=tcp://172.17.0.5:80",
            "MY_DB_PORT_80_TCP_END=tcp://172.17.0.5:81",
            "MY_DB_PORT_80_TCP_PORT_END=81",
            "MY_DB_PORT_5432_TCP=tcp://172.17.0.5:5432",
            "MY_DB_PORT_5432_TCP_ADDR=172.17.0.5",
            "MY_DB_PORT_5432_TCP_PORT=5432",
            "MY_DB_PORT_5432_TCP_PROTO=tcp",
            "MY_DB_PORT_53_UDP_PROTO=udp",
            "MY_DB_NAME=/web/my-db",
            "MY_DB_ENV_POSTGRES_DB=app",
        ] {
            assert!(env.iter().any(|e| e == want), "{want} in {env:?}");
        }
        assert!(!env
            .iter()
            .any(|e| e.contains("_ENV_PATH") || e.contains("_ENV_HOME")));
    }

    #[test]
    fn hosts_files_hold_links_extra_hosts_and_self() {
        let links = [HostsLink {
            ip: "172.17.0.2".parse().expect("ip"),
            alias: "db".into(),
            name: "mydb".into(),
            hostname: "0123456789ab".into(),
        }];
        let text = hosts_file(
            "web",
            Some("172.17.0.3".parse().expect("ip")),
            &links,
            &["gw:host-gateway".into(), "x.example:10.1.2.3".into()],
            Some("172.17.0.1".parse().expect("ip")),
        )
        .expect("builds");
        assert!(text.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(text.contains("172.17.0.2\tdb 0123456789ab mydb\n"));
        assert!(text.contains("172.17.0.1\tgw\n"));
        assert!(text.contains("10.1.2.3\tx.example\n"));
        assert!(text.ends_with("172.17.0.3\tweb\n"));
        assert!(hosts_file("web", None, &[], &[], None)
            .expect("builds")
            .ends_with("127.0.1.1\tweb\n"));
        for bad in ["nohost", "a:notanip", ":1.2.3.4"] {
            assert!(hosts_file("web", None, &[], &[bad.into()], None).is_err());
        }
        assert!(hosts_file("web", None, &[], &["gw:host-gateway".into()], None).is_err());
    }

    #[test]
    fn resolv_conf_follows_docker() {
        let host = "# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver fe80::1\nsearch corp.example\noptions edns0\n";
        assert_eq!(
            resolv_conf(host, false, &[], &[], &[]),
            "nameserver 10.0.0.2\nsearch corp.example\noptions edns0\n"
        );
        assert_eq!(
            resolv_conf("nameserver 127.0.0.53\n", false, &[], &[], &[]),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        assert_eq!(
            resolv_conf(host, true, &[], &[], &[]),
            "nameserver 127.0.0.11\nsearch corp.example\noptions edns0 ndots:0\n"
        );
        assert_eq!(
            resolv_conf(
                host,
                false,
                &["1.1.1.1".into()],
                &["a.example".into()],
                &["ndots:2".into()]
            ),
            "nameserver 1.1.1.1\nsearch a.example\noptions ndots:2\n"
        );
    }

    fn net(id: &str, subnet: &str, internal: bool) -> FwNetwork {
        FwNetwork {
            id: id.into(),
            bridge: format!("br-{id}"),
            subnet: subnet.parse().expect("subnet"),
            internal,
        }
    }

    #[test]
    fn the_ruleset_covers_used_networks_and_published_ports() {
        let nets = [
            net("a", "172.17.0.0/16", false),
            net("b", "172.18.0.0/16", true),
            net("c", "172.19.0.0/16", false),
        ];
        let ip = |s: &str| s.parse::<Ipv4Addr>().expect("ip");
        let containers = [
            FwContainer {
                networks: vec![
                    ("a".into(), ip("172.17.0.2")),
                    ("b".into(), ip("172.18.0.2")),
                ],
                ports: vec![PortMap {
                    container_port: 80,
                    proto: "tcp".into(),
                    host_ip: "127.0.0.1".into(),
                    host_port: 8080,
                }],
            },
            FwContainer {
                networks: vec![("b".into(), ip("172.18.0.3"))],
                ports: vec![PortMap {
                    container_port: 80,
                    proto: "tcp".into(),
                    host_ip: String::new(),
                    host_port: 8081,
                }],
            },
        ];
        let r = ruleset(&nets, &containers, None);
        assert_eq!(r.networks.len(), 2, "c has no container");
        assert!(r.networks[0].masquerade && !r.networks[0].internal);
        assert!(!r.networks[1].masquerade && r.networks[1].internal);
        assert_eq!(
            r.ports,
            vec![PortRule {
                proto: Proto::Tcp,
                host_ip: Some(Ipv4Addr::LOCALHOST),
                host_port: 8080,
                container_ip: ip("172.17.0.2"),
                container_port: 80,
                bridge: "br-a".into(),
            }],
            "no publishing from an internal network"
        );
        assert_eq!(ruleset(&nets, &[], None), Ruleset::default());
        // The last container of a network leaves: its rules stay (nothing to
        // apply), its ports go; a network that is gone takes its rules along.
        let kept = ruleset(&nets, &[], Some(&r));
        assert_eq!(kept.networks, r.networks);
        assert!(kept.ports.is_empty());
        assert_eq!(ruleset(&nets[2..], &[], Some(&r)), Ruleset::default());
        assert_eq!(ruleset(&nets, &containers, Some(&kept)), r);
    }

    fn entry(id: &str, name: &str, eps: &[(&str, &str, &[&str])]) -> DnsEntry {
        DnsEntry {
            id: id.into(),
            name: name.into(),
            hostname: id[..12].into(),
            links: Vec::new(),
            endpoints: eps
                .iter()
                .map(|(n, ip, al)| {
                    (
                        n.to_string(),
                        (
                            ip.parse().expect("ip"),
                            al.iter().map(|a| a.to_string()).collect(),
                        ),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn names_resolve_on_shared_networks_only() {
        let web = entry("aaaaaaaaaaaa1111", "web", &[("n1", "10.1.0.2", &[])]);
        let db = entry(
            "bbbbbbbbbbbb2222",
            "db1",
            &[("n1", "10.1.0.3", &["db"]), ("n2", "10.2.0.3", &[])],
        );
        let mut other = entry("cccccccccccc3333", "other", &[("n2", "10.2.0.4", &[])]);
        other.links.push(("database".into(), "db1".into()));
        let all = [web, db, other];
        let ip = |s: &str| vec![s.parse::<Ipv4Addr>().expect("ip")];
        assert_eq!(
            resolve(&all, "aaaaaaaaaaaa1111", "db1"),
            Some(ip("10.1.0.3"))
        );
        assert_eq!(
            resolve(&all, "aaaaaaaaaaaa1111", "DB."),
            Some(ip("10.1.0.3"))
        );
        assert_eq!(
            resolve(&all, "aaaaaaaaaaaa1111", "bbbbbbbbbbbb"),
            Some(ip("10.1.0.3"))
        );
        assert_eq!(resolve(&all, "aaaaaaaaaaaa1111", "other"), None);
        assert_eq!(resolve(&all, "aaaaaaaaaaaa1111", "example.com"), None);
        assert_eq!(
            resolve(&all, "cccccccccccc3333", "db1"),
            Some(ip("10.2.0.3"))
        );
        assert_eq!(
            resolve(&all, "cccccccccccc3333", "db"),
            None,
            "alias is per network"
        );
        assert_eq!(resolve(&all, "cccccccccccc3333", "web"), None);
        assert_eq!(
            resolve(&all, "cccccccccccc3333", "database"),
            Some(ip("10.2.0.3")),
            "a link alias, for the linking container"
        );
        assert_eq!(resolve(&all, "aaaaaaaaaaaa1111", "database"), None);
        assert_eq!(resolve(&all, "unknown", "web"), None);
        assert_eq!(
            reverse(&all, "aaaaaaaaaaaa1111", "10.1.0.3".parse().expect("ip")),
            Some("db1".into())
        );
        assert_eq!(
            reverse(&all, "aaaaaaaaaaaa1111", "10.2.0.4".parse().expect("ip")),
            None
        );
    }

    #[test]
    fn net_dev_counters_parse() {
        let text = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n  eth0:    1296      16    0    0    0     0          0         0      516       6    0    0    0     0       0          0\n";
        let s = net_dev_stats(text);
        assert_eq!(s.len(), 1);
        assert_eq!(s["eth0"]["rx_bytes"], 1296);
        assert_eq!(s["eth0"]["tx_packets"], 6);
    }
}
