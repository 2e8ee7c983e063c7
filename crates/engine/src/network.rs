//! Networks and container networking in the engine.
//!
//! Networks are records under `<root>/engine/networks/<id>.json`, which also
//! hold the addresses allocated to running containers. A container on a
//! bridge network gets a persistent network namespace at
//! `<exec_root>/netns/<id>` before its shim starts, one veth per network
//! (eth0 first, with the default route), its published ports reserved by
//! sockets the daemon holds, and — on user-defined networks — the embedded
//! DNS server. What a running container holds is persisted in its record
//! (`Record::net`), so teardown works the same after a daemon restart. The
//! firewall is level-triggered: `sync_firewall` rebuilds the whole ruleset
//! from the records after every change. Kernel calls are blocking; like the
//! rest of the engine they run on the HTTP layer's blocking threads.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, MutexGuard, Weak};

use cais_api::{
    EndpointIpamConfig, EndpointSettings, HostConfig, Network, NetworkConnectRequest,
    NetworkContainer, NetworkCreateRequest, NetworkCreateResponse, NetworkDisconnectRequest,
    NetworkSettings, NetworkingConfig,
};
use cais_net::ipam::{self, Subnet};
use cais_net::ports::{Proto, Reservation};
use cais_net::{dns, firewall, link, netns, ports};
use serde::{Deserialize, Serialize};

use crate::engine::{random_hex, Engine, Record};
use crate::error::{Error, Result};
use crate::filters::Filters;
use crate::netconf::{self, DnsEntry, FwContainer, FwNetwork, HostsLink, PortMap};

/// The predefined networks docker lists.
const BUILTIN: [&str; 3] = ["bridge", "host", "none"];
/// The default bridge's interface name for the default data root.
const DEFAULT_BRIDGE: &str = "cais0";
const DEFAULT_ROOT: &str = "/var/lib/cais";
const BRIDGE_NAME_OPTION: &str = "com.docker.network.bridge.name";

/// One network's persisted record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetRecord {
    pub id: String,
    pub name: String,
    /// "bridge", "host" or "null".
    pub driver: String,
    pub created: String,
    #[serde(default)]
    pub subnet: Option<Subnet>,
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    /// `--ip-range`: where addresses are allocated unless one is asked for.
    #[serde(default)]
    pub ip_range: Option<Subnet>,
    /// The bridge's interface name.
    #[serde(default)]
    pub bridge: String,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Addresses held by running containers, by container id.
    #[serde(default)]
    pub allocated: BTreeMap<String, Ipv4Addr>,
}

impl NetRecord {
    fn builtin(&self) -> bool {
        BUILTIN.contains(&self.name.as_str())
    }
    /// A user-defined network: served by the embedded DNS.
    fn user_defined(&self) -> bool {
        self.driver == "bridge" && self.name != "bridge"
    }
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

/// The network records, in memory and on disk.
pub(crate) struct Networks {
    dir: PathBuf,
    by_id: BTreeMap<String, NetRecord>,
}

impl Networks {
    pub(crate) fn load(dir: PathBuf) -> Result<Networks> {
        fs::create_dir_all(&dir).map_err(|e| Error::internal("creating the networks dir", e))?;
        let mut by_id = BTreeMap::new();
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.extension().is_some_and(|x| x == "json") {
                if let Ok(n) = fs::read(&p).map_err(|e| e.to_string()).and_then(|d| {
                    serde_json::from_slice::<NetRecord>(&d).map_err(|e| e.to_string())
                }) {
                    by_id.insert(n.id.clone(), n);
                }
            }
        }
        Ok(Networks { dir, by_id })
    }

    fn save(&mut self, n: NetRecord) -> Result<()> {
        let tmp = self.dir.join(format!(".{}.json.tmp", n.id));
        fs::write(
            &tmp,
            serde_json::to_vec_pretty(&n).expect("records serialize"),
        )
        .and_then(|_| fs::rename(&tmp, self.dir.join(format!("{}.json", n.id))))
        .map_err(|e| Error::internal("saving the network record", e))?;
        self.by_id.insert(n.id.clone(), n);
        Ok(())
    }

    fn delete(&mut self, id: &str) -> Result<()> {
        match fs::remove_file(self.dir.join(format!("{id}.json"))) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::internal("removing the network record", e)),
        }
        self.by_id.remove(id);
        Ok(())
    }

    /// By full id, name, then unique id prefix (docker's order).
    pub(crate) fn find(&self, key: &str) -> Result<&NetRecord> {
        if let Some(n) = self.by_id.get(key) {
            return Ok(n);
        }
        if let Some(n) = self.by_id.values().find(|n| n.name == key) {
            return Ok(n);
        }
        let matches: Vec<&NetRecord> = self
            .by_id
            .values()
            .filter(|n| !key.is_empty() && n.id.starts_with(key))
            .collect();
        match matches.as_slice() {
            [one] => Ok(one),
            [] => Err(Error::NotFound(format!("network {key} not found"))),
            _ => Err(Error::InvalidArgument(format!(
                "network {key} is ambiguous ({} matches found based on ID prefix)",
                matches.len()
            ))),
        }
    }

    fn by_name(&self, name: &str) -> Option<&NetRecord> {
        self.by_id.values().find(|n| n.name == name)
    }
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
}

fn mac_text(ip: Ipv4Addr) -> String {
    ipam::mac_for(ip)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The host's resolv.conf (systemd-resolved's upstream list when the stub
/// at 127.0.0.53 is all /etc/resolv.conf names).
fn host_resolv_conf() -> String {
    let text = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let only_stub = text
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .all(|s| s.trim().starts_with("127."));
    if only_stub {
        if let Ok(t) = fs::read_to_string("/run/systemd/resolve/resolv.conf") {
            return t;
        }
    }
    text
}

/// The embedded DNS server's view of the engine.
struct EngineResolver(Weak<Engine>);

impl EngineResolver {
    fn entries(&self) -> Vec<DnsEntry> {
        let Some(engine) = self.0.upgrade() else {
            return Vec::new();
        };
        let user_nets: BTreeSet<String> = engine
            .nets()
            .by_id
            .values()
            .filter(|n| n.user_defined())
            .map(|n| n.id.clone())
            .collect();
        let table = engine.lock();
        let entries = table
            .containers
            .values()
            .filter_map(|r| {
                let net = r.net.as_ref()?;
                let endpoints = net
                    .links
                    .iter()
                    .filter(|l| user_nets.contains(&l.network_id))
                    .map(|l| {
                        let aliases = r
                            .networks
                            .values()
                            .find(|e| e.network_id == l.network_id)
                            .map(|e| e.aliases.clone())
                            .unwrap_or_default();
                        (l.network_id.clone(), (l.ip, aliases))
                    })
                    .collect();
                let links = r
                    .host_config
                    .links
                    .iter()
                    .map(|l| {
                        let (name, alias) = l.split_once(':').unwrap_or((l, l));
                        let alias = alias.rsplit('/').next().unwrap_or(alias);
                        (alias.to_string(), name.trim_start_matches('/').to_string())
                    })
                    .collect();
                Some(DnsEntry {
                    id: r.id.clone(),
                    name: r.name.clone(),
                    hostname: r.config.hostname.clone(),
                    endpoints,
                    links,
                })
            })
            .collect();
        entries
    }
}

impl dns::Resolver for EngineResolver {
    fn lookup(&self, client: &str, name: &str) -> Option<Vec<Ipv4Addr>> {
        netconf::resolve(&self.entries(), client, name)
    }
    fn reverse(&self, client: &str, ip: Ipv4Addr) -> Option<String> {
        netconf::reverse(&self.entries(), client, ip)
    }
}

impl Engine {
    pub(crate) fn nets(&self) -> MutexGuard<'_, Networks> {
        self.networks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn holds(&self) -> MutexGuard<'_, HashMap<String, Vec<Reservation>>> {
        self.port_holds.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn netns_path(&self, id: &str) -> PathBuf {
        self.cfg.exec_root.join("netns").join(id)
    }

    /// At daemon start, before containers are restored: the predefined
    /// networks, the default bridge and the embedded DNS server.
    pub(crate) fn net_init(self: &Arc<Self>) -> Result<()> {
        {
            let mut nets = self.nets();
            for (name, driver) in [("bridge", "bridge"), ("host", "host"), ("none", "null")] {
                if nets.by_name(name).is_some() {
                    continue;
                }
                let mut n = NetRecord {
                    id: random_hex(32),
                    name: name.into(),
                    driver: driver.into(),
                    created: crate::engine::now(),
                    subnet: None,
                    gateway: None,
                    ip_range: None,
                    bridge: String::new(),
                    internal: false,
                    attachable: false,
                    labels: BTreeMap::new(),
                    options: BTreeMap::new(),
                    allocated: BTreeMap::new(),
                };
                if name == "bridge" {
                    n.bridge = self.default_bridge_name();
                    n.options
                        .insert(BRIDGE_NAME_OPTION.into(), n.bridge.clone());
                    n.options.insert(
                        "com.docker.network.bridge.default_bridge".into(),
                        "true".into(),
                    );
                }
                nets.save(n)?;
            }
            // The default bridge's subnet: chosen once, retried at each
            // start while every pool is taken (the daemon still serves).
            if let Some(mut b) = nets
                .by_name("bridge")
                .filter(|b| b.subnet.is_none())
                .cloned()
            {
                let taken: Vec<Subnet> = nets.by_id.values().filter_map(|n| n.subnet).collect();
                match ipam::choose_subnet(&taken) {
                    Ok(subnet) => {
                        b.subnet = Some(subnet);
                        b.gateway = Some(subnet.first_host());
                        nets.save(b)?;
                    }
                    Err(e) => tracing::warn!(
                        error = %crate::error::chain(&e),
                        "no subnet for the default bridge network"
                    ),
                }
            }
        }
        let upstreams = dns::upstreams_from_resolv_conf(
            &fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        );
        let resolver: Arc<dyn dns::Resolver> = Arc::new(EngineResolver(Arc::downgrade(self)));
        match dns::DnsServer::start(resolver, upstreams) {
            Ok(server) => {
                let _ = self.dns.set(server);
            }
            Err(e) => tracing::warn!(
                error = %crate::error::chain(&e),
                "the embedded DNS server did not start"
            ),
        }
        Ok(())
    }

    /// `cais0` for the daemon of the default data root; a daemon with
    /// another root on the same host (tests) gets a name of its own, so
    /// their bridges and address plans never mix.
    fn default_bridge_name(&self) -> String {
        if self.cfg.root == Path::new(DEFAULT_ROOT) {
            return DEFAULT_BRIDGE.into();
        }
        format!("{DEFAULT_BRIDGE}-{}", &random_hex(3))
    }

    /// The daemon's nftables table: `cais` for the default data root, one
    /// named after its default bridge for any other daemon on the host, so
    /// each rebuilds only its own rules.
    fn fw_table(&self) -> String {
        if self.cfg.root == Path::new(DEFAULT_ROOT) {
            return firewall::TABLE.to_string();
        }
        let bridge = self
            .nets()
            .by_name("bridge")
            .map(|b| b.bridge.clone())
            .unwrap_or_default();
        match bridge
            .strip_prefix(DEFAULT_BRIDGE)
            .and_then(|s| s.strip_prefix('-'))
        {
            Some(suffix) if !suffix.is_empty() => format!("{}-{suffix}", firewall::TABLE),
            // Never `cais` for another root, whatever its bridge is called.
            _ => format!(
                "{}-{:06x}",
                firewall::TABLE,
                fnv1a(self.cfg.root.as_os_str().as_encoded_bytes()) & 0xff_ffff
            ),
        }
    }

    /// After containers were restored: running ones get their port
    /// reservations and DNS back, bridges that vanished are re-created;
    /// what containers that died while the daemon was down held is
    /// released; then the firewall is rebuilt.
    pub(crate) fn net_restore(&self) {
        let ids: Vec<String> = self.lock().containers.keys().cloned().collect();
        for id in &ids {
            match self.record(id) {
                Ok(r) if r.net.is_some() && !r.state.running => self.net_teardown(id),
                _ => {}
            }
        }
        for id in &ids {
            // Serialized with teardown: a monitor thread may be reporting
            // this container's exit right now.
            let _ops = self.net_ops.lock().unwrap_or_else(|p| p.into_inner());
            let Ok(r) = self.record(id) else { continue };
            let Some(st) = &r.net else { continue };
            if !r.state.running {
                continue;
            }
            for l in &st.links {
                if let Ok(n) = self.nets().find(&l.network_id).cloned() {
                    if let (Some(s), Some(g)) = (n.subnet, n.gateway) {
                        let _ = link::ensure_bridge(&n.bridge, g, s.prefix);
                    }
                }
            }
            let mut held = Vec::new();
            for p in &st.ports {
                let Ok(proto) = p.proto.parse::<Proto>() else {
                    continue;
                };
                match ports::reserve(proto, p.host_ip.parse().ok(), p.host_port) {
                    Ok(res) => held.push(res),
                    Err(e) => tracing::warn!(
                        container = &r.id[..12],
                        port = p.host_port,
                        error = %crate::error::chain(&e),
                        "re-reserving a published port"
                    ),
                }
            }
            self.holds().insert(r.id.clone(), held);
            if st.dns {
                if let Some(d) = self.dns.get() {
                    if let Err(e) = d.add(&r.id, &st.netns) {
                        tracing::warn!(
                            container = &r.id[..12],
                            error = %crate::error::chain(&e),
                            "restoring the container's DNS"
                        );
                    }
                }
            }
        }
        // Addresses and namespaces nobody holds any more (containers that
        // vanished with their records), checked against the live records.
        let _ops = self.net_ops.lock().unwrap_or_else(|p| p.into_inner());
        let holds_net = |id: &str| self.record(id).is_ok_and(|r| r.net.is_some());
        let stale: Vec<NetRecord> = self
            .nets()
            .by_id
            .values()
            .filter(|n| n.allocated.keys().any(|c| !holds_net(c)))
            .cloned()
            .collect();
        for mut n in stale {
            n.allocated.retain(|c, _| holds_net(c));
            let _ = self.nets().save(n);
        }
        for entry in fs::read_dir(self.cfg.exec_root.join("netns"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !holds_net(&name) {
                let _ = netns::remove(&entry.path());
            }
        }
        drop(_ops);
        if let Err(e) = self.sync_firewall() {
            tracing::error!(error = %e, "applying the firewall ruleset");
        }
    }

    /// At daemon shutdown: the cais firewall tables go, and bridges no
    /// running container uses (containers keep running; the next daemon
    /// rebuilds rules, and bridges when containers need them).
    pub fn net_shutdown(&self) {
        *self.fw_lock.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if let Err(e) = firewall::remove_table(&self.fw_table()) {
            tracing::warn!(
                error = %crate::error::chain(&e),
                "removing the firewall rules"
            );
        }
        let bridges: Vec<(String, String)> = self
            .nets()
            .by_id
            .values()
            .filter(|n| n.driver == "bridge")
            .map(|n| (n.id.clone(), n.bridge.clone()))
            .collect();
        for (id, bridge) in bridges {
            if self.network_users(&id).is_empty() {
                let _ = link::delete_link(&bridge);
            }
        }
    }

    /// Rebuilds the whole firewall ruleset from the networks and the
    /// containers that hold a network namespace. Serialized, so the last
    /// state wins.
    pub fn sync_firewall(&self) -> Result<()> {
        let mut applied = self.fw_lock.lock().unwrap_or_else(|p| p.into_inner());
        let networks: Vec<FwNetwork> = self
            .nets()
            .by_id
            .values()
            .filter_map(|n| {
                Some(FwNetwork {
                    id: n.id.clone(),
                    bridge: n.bridge.clone(),
                    subnet: n.subnet?,
                    internal: n.internal,
                })
            })
            .collect();
        let containers: Vec<FwContainer> = self
            .lock()
            .containers
            .values()
            .filter_map(|r| r.net.as_ref())
            .map(|st| FwContainer {
                networks: st
                    .links
                    .iter()
                    .map(|l| (l.network_id.clone(), l.ip))
                    .collect(),
                ports: st.ports.clone(),
            })
            .collect();
        let rules = netconf::ruleset(&networks, &containers);
        if applied.as_ref() == Some(&rules) {
            return Ok(());
        }
        let table = self.fw_table();
        if rules == firewall::Ruleset::default() {
            firewall::remove_table(&table)?;
        } else {
            firewall::apply_to(&table, &rules)?;
        }
        *applied = Some(rules);
        Ok(())
    }

    /// The endpoints a new container asks for, keyed by network name;
    /// checks the network mode.
    pub(crate) fn endpoints_for_create(
        &self,
        host: &HostConfig,
        networking: Option<&NetworkingConfig>,
    ) -> Result<BTreeMap<String, EndpointSettings>> {
        let requested = networking.map(|n| &n.endpoints_config);
        let mut out = BTreeMap::new();
        let mode = mode_of(&host.network_mode);
        let primary = match &mode {
            Mode::Container(c) => {
                self.resolve(c)?;
                if !host.port_bindings.is_empty() || host.publish_all_ports {
                    return Err(Error::InvalidArgument(
                        "conflicting options: port publishing and the container type network mode"
                            .into(),
                    ));
                }
                return Ok(out);
            }
            Mode::Host | Mode::None => {
                let name = if mode == Mode::Host { "host" } else { "none" };
                let nets = self.nets();
                let n = nets.find(name)?;
                out.insert(
                    n.name.clone(),
                    EndpointSettings {
                        network_id: n.id.clone(),
                        ..Default::default()
                    },
                );
                return Ok(out);
            }
            Mode::Bridge(p) => p,
        };
        let nets = self.nets();
        let primary = nets.find(primary)?;
        if primary.driver != "bridge" {
            return Err(Error::InvalidArgument(format!(
                "network mode {:?} is not supported",
                host.network_mode
            )));
        }
        // The docker CLI keys the primary endpoint by the network mode as
        // given ("default" when none was).
        let is_primary = |k: &str| {
            k == host.network_mode
                || k == "default"
                || k == primary.name
                || (!k.is_empty() && primary.id.starts_with(k))
        };
        let mut wanted: Vec<(&NetRecord, EndpointSettings)> = Vec::new();
        let primary_ep = requested
            .and_then(|r| {
                r.iter()
                    .find(|(k, _)| is_primary(k))
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_default();
        wanted.push((primary, primary_ep));
        for (key, ep) in requested.into_iter().flatten() {
            if is_primary(key) {
                continue;
            }
            let n = nets.find(key)?;
            if n.id == primary.id {
                continue;
            }
            if n.driver != "bridge" {
                return Err(Error::InvalidArgument(format!(
                    "container cannot be connected to network {} and {} at once",
                    primary.name, n.name
                )));
            }
            wanted.push((n, ep.clone()));
        }
        for (n, mut ep) in wanted {
            check_endpoint_request(n, &ep)?;
            ep.network_id = n.id.clone();
            out.insert(n.name.clone(), ep);
        }
        Ok(out)
    }

    /// Prepares networking before the shim starts: for bridge networks a
    /// namespace with one interface per network and the published ports;
    /// the /etc files for every mode. On error nothing is left behind.
    pub(crate) fn net_setup(&self, rec: &Record) -> Result<NetPlan> {
        let hostname = rec.config.hostname.clone();
        let host_resolv = host_resolv_conf();
        let h = &rec.host_config;
        match mode_of(&h.network_mode) {
            Mode::Host => {
                let resolv = if h.dns.is_empty()
                    && h.dns_search.is_empty()
                    && h.dns_options.is_empty()
                {
                    host_resolv
                } else {
                    netconf::resolv_conf(&host_resolv, false, &h.dns, &h.dns_search, &h.dns_options)
                };
                Ok(NetPlan {
                    host_network: true,
                    netns: None,
                    etc: etc_texts(
                        &hostname,
                        netconf::hosts_file(&hostname, None, &[], &h.extra_hosts, None)?,
                        resolv,
                    ),
                    hostname,
                })
            }
            Mode::None => {
                // A namespace of its own with only `lo`, up.
                let path = self.netns_path(&rec.id);
                let _ = netns::remove(&path);
                netns::create(&path)?;
                let st = NetState {
                    netns: path.clone(),
                    ..Default::default()
                };
                if let Err(e) = self.update(&rec.id, |r| r.net = Some(st)) {
                    let _ = netns::remove(&path);
                    return Err(e);
                }
                Ok(NetPlan {
                    host_network: false,
                    netns: Some(path),
                    etc: etc_texts(
                        &hostname,
                        netconf::hosts_file(&hostname, None, &[], &h.extra_hosts, None)?,
                        netconf::resolv_conf(
                            &host_resolv,
                            false,
                            &h.dns,
                            &h.dns_search,
                            &h.dns_options,
                        ),
                    ),
                    hostname,
                })
            }
            Mode::Container(c) => {
                let other = self.record(&self.resolve(&c)?)?;
                if !other.state.running {
                    return Err(Error::Conflict(format!(
                        "cannot join network namespace of a non running container: {}",
                        other.name
                    )));
                }
                let other_dir = self.container_dir(&other.id);
                let etc = ["hostname", "hosts", "resolv.conf"]
                    .into_iter()
                    .map(|f| (f, EtcFile::Shared(other_dir.join(f))))
                    .collect();
                let (host_network, netns) =
                    match (&other.net, mode_of(&other.host_config.network_mode)) {
                        (_, Mode::Host) => (true, None),
                        (Some(st), _) => (false, Some(st.netns.clone())),
                        (None, _) => (
                            false,
                            Some(PathBuf::from(format!("/proc/{}/ns/net", other.state.pid))),
                        ),
                    };
                Ok(NetPlan {
                    host_network,
                    netns,
                    hostname: other.config.hostname.clone(),
                    etc,
                })
            }
            Mode::Bridge(_) => {
                let result = self.bridge_setup(rec, &host_resolv);
                if result.is_err() {
                    self.net_teardown(&rec.id);
                }
                result
            }
        }
    }

    fn bridge_setup(&self, rec: &Record, host_resolv: &str) -> Result<NetPlan> {
        let id = &rec.id;
        let path = self.netns_path(id);
        // A namespace left by a crash of this container's last run.
        let _ = netns::remove(&path);
        netns::create(&path)?;
        let mut st = NetState {
            netns: path.clone(),
            ..Default::default()
        };
        self.update(id, |r| r.net = Some(st.clone()))?;
        // The primary network (the one NetworkMode names) first.
        let primary = {
            let nets = self.nets();
            match mode_of(&rec.host_config.network_mode) {
                Mode::Bridge(p) => nets.find(&p).map(|n| n.id.clone()).ok(),
                _ => None,
            }
        };
        let mut order: Vec<(&String, &EndpointSettings)> = rec.networks.iter().collect();
        order.sort_by_key(|(_, ep)| Some(&ep.network_id) != primary.as_ref());
        let mut endpoints = BTreeMap::new();
        let mut user_network = false;
        for (i, (name, ep)) in order.into_iter().enumerate() {
            let (l, done) = self.attach_endpoint(rec, &path, ep, i)?;
            st.links.push(l);
            self.update(id, |r| r.net = Some(st.clone()))?;
            user_network |= !done.dns_names.is_empty();
            endpoints.insert(name.clone(), done);
        }
        // Published ports.
        let requests = netconf::port_requests(&rec.host_config, rec.config.exposed_ports.as_ref())?;
        let mut held = Vec::new();
        for req in &requests {
            let res = reserve_in_range(req).map_err(|e| match e {
                cais_net::Error::PortInUse { addr } => Error::Internal(format!(
                    "driver failed programming external connectivity on endpoint {} ({}): Bind for {addr} failed: port is already allocated",
                    rec.name,
                    endpoints.values().next().map(|e: &EndpointSettings| e.endpoint_id.clone()).unwrap_or_default()
                )),
                other => other.into(),
            })?;
            st.ports.push(PortMap {
                container_port: req.container_port,
                proto: req.proto.to_string(),
                host_ip: req.host_ip.map(|i| i.to_string()).unwrap_or_default(),
                host_port: res.port,
            });
            held.push(res);
        }
        self.holds().insert(id.clone(), held);
        st.dns = user_network;
        self.update(id, |r| {
            r.net = Some(st.clone());
            for (name, ep) in &endpoints {
                r.networks.insert(name.clone(), ep.clone());
            }
        })?;
        // /etc files.
        let h = &rec.host_config;
        let primary_link = st.links.first();
        let gateway =
            primary_link.and_then(|l| self.nets().find(&l.network_id).ok().and_then(|n| n.gateway));
        // Legacy links are /etc/hosts lines on the default bridge; on user
        // networks the embedded DNS answers their aliases.
        let mut links = self.legacy_links(h)?;
        let on_default = primary_link.is_some_and(|l| {
            self.nets()
                .find(&l.network_id)
                .is_ok_and(|n| n.name == "bridge")
        });
        if !on_default {
            links.clear();
        }
        let hosts = netconf::hosts_file(
            &rec.config.hostname,
            primary_link.map(|l| l.ip),
            &links,
            &h.extra_hosts,
            gateway,
        )?;
        let resolv = netconf::resolv_conf(
            host_resolv,
            user_network,
            &h.dns,
            &h.dns_search,
            &h.dns_options,
        );
        Ok(NetPlan {
            host_network: false,
            netns: Some(path),
            etc: etc_texts(&rec.config.hostname, hosts, resolv),
            hostname: rec.config.hostname.clone(),
        })
    }

    /// `--link name:alias`: the linked containers' addresses for /etc/hosts.
    fn legacy_links(&self, h: &HostConfig) -> Result<Vec<HostsLink>> {
        let mut out = Vec::new();
        for l in &h.links {
            let (name, alias) = l.split_once(':').unwrap_or((l, l));
            let name = name.trim_start_matches('/');
            let alias = alias.rsplit('/').next().unwrap_or(alias);
            let other = self.record(&self.resolve(name)?)?;
            let ip = other
                .net
                .as_ref()
                .filter(|_| other.state.running)
                .and_then(|st| st.links.first())
                .map(|l| l.ip)
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "Cannot link to a non running container: /{} AS /{alias}",
                        other.name
                    ))
                })?;
            out.push(HostsLink {
                ip,
                alias: alias.to_string(),
                name: other.name.clone(),
                hostname: other.config.hostname.clone(),
            });
        }
        Ok(out)
    }

    /// Allocates an address on the endpoint's network and plugs a veth
    /// into the namespace; returns the link and the endpoint as inspect
    /// shows it. On error the address is released.
    fn attach_endpoint(
        &self,
        rec: &Record,
        netns_path: &Path,
        ep: &EndpointSettings,
        index: usize,
    ) -> Result<(LinkState, EndpointSettings)> {
        let requested = ep
            .ipam_config
            .as_ref()
            .map(|c| c.ipv4_address.trim())
            .filter(|a| !a.is_empty())
            .map(|a| {
                a.parse::<Ipv4Addr>()
                    .map_err(|_| Error::InvalidArgument(format!("invalid IPv4 address: {a}")))
            })
            .transpose()?;
        let (net, ip) = {
            let mut nets = self.nets();
            let mut n = nets.find(&ep.network_id)?.clone();
            // The default bridge's subnet was chosen when its record was
            // made; before its bridge exists again, move it if the host
            // has taken that range since (another daemon, a VPN).
            if n.name == "bridge" && n.allocated.is_empty() && !link::link_exists(&n.bridge) {
                let taken: Vec<Subnet> = nets
                    .by_id
                    .values()
                    .filter(|o| o.id != n.id)
                    .filter_map(|o| o.subnet)
                    .collect();
                if let Ok(subnet) = ipam::choose_subnet(&taken) {
                    if n.subnet != Some(subnet) {
                        n.subnet = Some(subnet);
                        n.gateway = Some(subnet.first_host());
                        nets.save(n.clone())?;
                    }
                }
            }
            let (Some(subnet), Some(gw)) = (n.subnet, n.gateway) else {
                return Err(Error::InvalidArgument(format!(
                    "network {} has no addresses to attach to",
                    n.name
                )));
            };
            let ip = match n.allocated.get(&rec.id) {
                Some(ip) => *ip,
                None => {
                    let used: BTreeSet<Ipv4Addr> = n.allocated.values().copied().collect();
                    let pool = match (requested, n.ip_range) {
                        (None, Some(range)) => range,
                        _ => subnet,
                    };
                    let ip = ipam::allocate(pool, gw, &used, requested)?;
                    n.allocated.insert(rec.id.clone(), ip);
                    nets.save(n.clone())?;
                    ip
                }
            };
            (n, ip)
        };
        let (subnet, gw) = match (net.subnet, net.gateway) {
            (Some(s), Some(g)) => (s, g),
            _ => return Err(Error::Internal("network without subnet".into())),
        };
        let host_ifname = format!("veth{}", &random_hex(4)[..7]);
        let attached = link::ensure_bridge(&net.bridge, gw, subnet.prefix).and_then(|_| {
            link::attach(&link::Attachment {
                netns: netns_path.to_path_buf(),
                bridge: net.bridge.clone(),
                host_ifname: host_ifname.clone(),
                ifname: format!("eth{index}"),
                address: ip,
                prefix: subnet.prefix,
                mac: ipam::mac_for(ip),
                gateway: (index == 0).then_some(gw),
            })
        });
        if let Err(e) = attached {
            self.release_ip(&net.id, &rec.id);
            return Err(e.into());
        }
        let mut done = ep.clone();
        done.network_id = net.id.clone();
        done.endpoint_id = random_hex(32);
        done.gateway = gw.to_string();
        done.ip_address = ip.to_string();
        done.ip_prefix_len = subnet.prefix;
        done.mac_address = mac_text(ip);
        done.dns_names = if net.user_defined() {
            netconf::dns_names(&rec.name, &rec.id, ep)
        } else {
            Vec::new()
        };
        Ok((
            LinkState {
                network_id: net.id.clone(),
                host_ifname,
                ifname: format!("eth{index}"),
                ip,
            },
            done,
        ))
    }

    fn release_ip(&self, network_id: &str, container: &str) {
        let mut nets = self.nets();
        if let Some(mut n) = nets.by_id.get(network_id).cloned() {
            if n.allocated.remove(container).is_some() {
                let _ = nets.save(n);
            }
        }
    }

    /// A `network` event about a container (connect, disconnect).
    fn emit_network(&self, action: &str, network_id: &str, container: &str) {
        let Ok(n) = self.nets().find(network_id).cloned() else {
            return;
        };
        self.events.emit(
            "network",
            action,
            &n.id,
            BTreeMap::from([
                ("container".to_string(), container.to_string()),
                ("name".to_string(), n.name.clone()),
                ("type".to_string(), n.driver.clone()),
            ]),
        );
    }

    /// After the container's process started: the embedded DNS serves it
    /// and the firewall learns its ports.
    pub(crate) fn net_started(&self, id: &str) -> Result<()> {
        let rec = self.record(id)?;
        let Some(st) = &rec.net else {
            return Ok(());
        };
        if st.dns {
            if let Some(d) = self.dns.get() {
                d.add(id, &st.netns)?;
            }
        }
        self.sync_firewall()?;
        for l in &st.links {
            self.emit_network("connect", &l.network_id, id);
        }
        Ok(())
    }

    /// Undoes everything `net_setup` and `net_started` did, from the
    /// record (so it works after a daemon restart); idempotent.
    pub(crate) fn net_teardown(&self, id: &str) {
        let _ops = self.net_ops.lock().unwrap_or_else(|p| p.into_inner());
        let Ok(rec) = self.record(id) else { return };
        if let Some(d) = self.dns.get() {
            if rec.net.as_ref().is_some_and(|s| s.dns) {
                d.remove(id);
            }
        }
        self.holds().remove(id);
        if let Some(st) = &rec.net {
            for l in &st.links {
                self.emit_network("disconnect", &l.network_id, id);
                if let Err(e) = link::detach(&l.host_ifname) {
                    tracing::warn!(
                        interface = %l.host_ifname,
                        error = %crate::error::chain(&e),
                        "removing a container's veth"
                    );
                }
            }
            if let Err(e) = netns::remove(&st.netns) {
                tracing::warn!(
                    netns = %st.netns.display(),
                    error = %crate::error::chain(&e),
                    "removing a container's network namespace"
                );
            }
        }
        {
            let mut nets = self.nets();
            let holding: Vec<NetRecord> = nets
                .by_id
                .values()
                .filter(|n| n.allocated.contains_key(id))
                .cloned()
                .collect();
            for mut n in holding {
                n.allocated.remove(id);
                let _ = nets.save(n);
            }
        }
        let had_net = rec.net.is_some();
        let _ = self.update(id, |r| {
            r.net = None;
            for ep in r.networks.values_mut() {
                clear_runtime(ep);
            }
        });
        if had_net {
            if let Err(e) = self.sync_firewall() {
                tracing::error!(error = %e, "applying the firewall ruleset");
            }
        }
    }

    /// `NetworkSettings` of container inspect.
    pub(crate) fn network_settings(&self, r: &Record) -> NetworkSettings {
        let maps = r
            .net
            .as_ref()
            .map(|s| s.ports.as_slice())
            .unwrap_or_default();
        let mut s = NetworkSettings {
            ports: netconf::ports_view(r.config.exposed_ports.as_ref(), maps),
            networks: r.networks.clone(),
            ..Default::default()
        };
        if let Some(st) = &r.net {
            s.sandbox_id = r.id.clone();
            s.sandbox_key = st.netns.to_string_lossy().into_owned();
        }
        // Docker fills the top-level fields from the default bridge only.
        if let Some(ep) = r.networks.get("bridge") {
            s.endpoint_id = ep.endpoint_id.clone();
            s.gateway = ep.gateway.clone();
            s.ip_address = ep.ip_address.clone();
            s.ip_prefix_len = ep.ip_prefix_len;
            s.mac_address = ep.mac_address.clone();
        }
        s
    }

    /// The `Ports` of a `docker ps` row.
    pub(crate) fn ps_ports(&self, r: &Record) -> Vec<serde_json::Value> {
        if !r.state.running {
            return Vec::new();
        }
        let maps = r
            .net
            .as_ref()
            .map(|s| s.ports.as_slice())
            .unwrap_or_default();
        netconf::ps_ports(r.config.exposed_ports.as_ref(), maps)
            .into_iter()
            .filter_map(|p| serde_json::to_value(p).ok())
            .collect()
    }

    // ---- the /networks API ----

    fn network_view(&self, n: &NetRecord, with_containers: bool) -> Network {
        let mut containers = BTreeMap::new();
        if with_containers {
            for r in self.lock().containers.values() {
                let Some(st) = &r.net else { continue };
                let Some(l) = st.links.iter().find(|l| l.network_id == n.id) else {
                    continue;
                };
                let ep = r.networks.values().find(|e| e.network_id == n.id);
                containers.insert(
                    r.id.clone(),
                    NetworkContainer {
                        name: r.name.clone(),
                        endpoint_id: ep.map(|e| e.endpoint_id.clone()).unwrap_or_default(),
                        mac_address: mac_text(l.ip),
                        ipv4_address: format!(
                            "{}/{}",
                            l.ip,
                            n.subnet.map(|s| s.prefix).unwrap_or(32)
                        ),
                        ipv6_address: String::new(),
                    },
                );
            }
        }
        Network {
            name: n.name.clone(),
            id: n.id.clone(),
            created: n.created.clone(),
            scope: "local".into(),
            driver: n.driver.clone(),
            enable_ipv6: false,
            ipam: cais_api::Ipam {
                driver: "default".into(),
                config: match (n.subnet, n.gateway) {
                    (Some(s), Some(g)) => vec![cais_api::IpamConfig {
                        subnet: s.to_string(),
                        gateway: g.to_string(),
                        ip_range: n.ip_range.map(|r| r.to_string()).unwrap_or_default(),
                        ..Default::default()
                    }],
                    _ => Vec::new(),
                },
                options: BTreeMap::new(),
            },
            internal: n.internal,
            attachable: n.attachable,
            ingress: false,
            containers,
            options: n.options.clone(),
            labels: n.labels.clone(),
        }
    }

    /// Containers with an interface on network `id`.
    fn network_users(&self, id: &str) -> Vec<String> {
        self.lock()
            .containers
            .values()
            .filter(|r| {
                r.net
                    .as_ref()
                    .is_some_and(|s| s.links.iter().any(|l| l.network_id == id))
            })
            .map(|r| r.name.clone())
            .collect()
    }

    /// `GET /networks` with its filters (keys checked by the caller).
    pub fn network_list(&self, filters: &Filters) -> Result<Vec<Network>> {
        let dangling = filters.boolean("dangling")?;
        if let Some(t) = filters
            .values("type")
            .iter()
            .find(|t| !matches!(t.as_str(), "builtin" | "custom"))
        {
            return Err(Error::InvalidArgument(format!("invalid filter 'type={t}'")));
        }
        let nets: Vec<NetRecord> = self.nets().by_id.values().cloned().collect();
        let mut out: Vec<Network> = nets
            .iter()
            .filter(|n| {
                filters.any("name", |v| n.name.contains(v))
                    && filters.any("id", |v| n.id.starts_with(v))
                    && filters.any("driver", |v| n.driver == v)
                    && filters.any("scope", |v| v == "local")
                    && filters.any("type", |v| (v == "builtin") == n.builtin())
                    && filters.labels_match(&n.labels)
                    && dangling.is_none_or(|want| {
                        (!n.builtin() && self.network_users(&n.id).is_empty()) == want
                    })
            })
            .map(|n| self.network_view(n, false))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub fn network_inspect(&self, key: &str) -> Result<Network> {
        let n = self.nets().find(key)?.clone();
        Ok(self.network_view(&n, true))
    }

    pub fn network_create(&self, req: NetworkCreateRequest) -> Result<NetworkCreateResponse> {
        let name = req.name.trim();
        if name.is_empty() {
            return Err(Error::InvalidArgument("network name is required".into()));
        }
        if !crate::engine::valid_name(name) {
            return Err(Error::InvalidArgument(format!(
                "invalid network name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        match req.driver.as_str() {
            "" | "bridge" => {}
            "host" | "null" => {
                return Err(Error::Forbidden(format!(
                    "only one instance of \"{}\" network is allowed",
                    req.driver
                )))
            }
            other => return Err(Error::NotFound(format!("plugin \"{other}\" not found"))),
        }
        if req.enable_ipv6 {
            return Err(Error::InvalidArgument(
                "IPv6 networks are not supported".into(),
            ));
        }
        let pools = req
            .ipam
            .as_ref()
            .map(|i| i.config.as_slice())
            .unwrap_or_default();
        if pools.len() > 1 {
            return Err(Error::InvalidArgument(
                "only one IPv4 address pool per network is supported".into(),
            ));
        }
        let pool = pools.first();
        let mut nets = self.nets();
        if nets.by_name(name).is_some() {
            return Err(Error::Conflict(format!(
                "network with name {name} already exists"
            )));
        }
        let taken: Vec<Subnet> = nets.by_id.values().filter_map(|n| n.subnet).collect();
        let subnet = match pool.map(|p| p.subnet.trim()).filter(|s| !s.is_empty()) {
            Some(s) => {
                let subnet: Subnet = s.parse()?;
                if taken.iter().any(|t| t.overlaps(&subnet)) {
                    return Err(Error::Forbidden(
                        "Pool overlaps with other one on this address space".into(),
                    ));
                }
                subnet
            }
            None => {
                if pool.is_some_and(|p| !p.gateway.is_empty()) {
                    return Err(Error::InvalidArgument(
                        "a gateway needs a subnet (--subnet)".into(),
                    ));
                }
                ipam::choose_subnet(&taken)?
            }
        };
        let gateway = match pool.map(|p| p.gateway.trim()).filter(|g| !g.is_empty()) {
            Some(g) => {
                let g: Ipv4Addr = g.parse().map_err(|_| {
                    Error::InvalidArgument(format!("invalid gateway address {g:?}"))
                })?;
                if !subnet.contains(g) || g == subnet.addr || g == subnet.broadcast() {
                    return Err(Error::InvalidArgument(format!(
                        "gateway {g} is not a host address of subnet {subnet}"
                    )));
                }
                g
            }
            None => subnet.first_host(),
        };
        let ip_range = match pool.map(|p| p.ip_range.trim()).filter(|r| !r.is_empty()) {
            Some(r) => {
                let range: Subnet = r.parse()?;
                if !subnet.contains(range.addr) || range.prefix < subnet.prefix {
                    return Err(Error::InvalidArgument(format!(
                        "ip range {range} is not inside subnet {subnet}"
                    )));
                }
                Some(range)
            }
            None => None,
        };
        let id = random_hex(32);
        let bridge = match req.options.get(BRIDGE_NAME_OPTION) {
            Some(b) if b.is_empty() || b.len() > 15 || b.contains(['/', ' ']) => {
                return Err(Error::InvalidArgument(format!(
                    "invalid bridge name {b:?} (1 to 15 characters)"
                )))
            }
            Some(b) => b.clone(),
            None => format!("cais-{}", &id[..10]),
        };
        if nets.by_id.values().any(|n| n.bridge == bridge) {
            return Err(Error::Conflict(format!(
                "bridge {bridge} is already in use"
            )));
        }
        nets.save(NetRecord {
            id: id.clone(),
            name: name.to_string(),
            driver: "bridge".into(),
            created: crate::engine::now(),
            subnet: Some(subnet),
            gateway: Some(gateway),
            ip_range,
            bridge,
            internal: req.internal,
            attachable: req.attachable,
            labels: req.labels.clone(),
            options: req.options.clone(),
            allocated: BTreeMap::new(),
        })?;
        drop(nets);
        self.events.emit(
            "network",
            "create",
            &id,
            BTreeMap::from([
                ("name".to_string(), name.to_string()),
                ("type".to_string(), "bridge".to_string()),
            ]),
        );
        Ok(NetworkCreateResponse {
            id,
            warning: String::new(),
        })
    }

    pub fn network_remove(&self, key: &str) -> Result<()> {
        let n = self.nets().find(key)?.clone();
        if n.builtin() {
            return Err(Error::Forbidden(format!(
                "{} is a pre-defined network and cannot be removed",
                n.name
            )));
        }
        if !self.network_users(&n.id).is_empty() {
            return Err(Error::Forbidden(format!(
                "error while removing network: network {} id {} has active endpoints",
                n.name, n.id
            )));
        }
        link::delete_link(&n.bridge)?;
        self.nets().delete(&n.id)?;
        self.events.emit(
            "network",
            "destroy",
            &n.id,
            BTreeMap::from([
                ("name".to_string(), n.name.clone()),
                ("type".to_string(), n.driver.clone()),
            ]),
        );
        Ok(())
    }

    /// Removes user networks no container is attached to; their names.
    /// (Prune filters: `label`, `label!`, created before `until`.)
    pub fn network_prune(&self, filters: &Filters, until: Option<i64>) -> Vec<String> {
        let nets: Vec<NetRecord> = self.nets().by_id.values().cloned().collect();
        nets.into_iter()
            .filter(|n| !n.builtin())
            .filter(|n| filters.labels_match(&n.labels))
            .filter(|n| {
                until.is_none_or(|u| {
                    cais_image::time::parse_rfc3339(&n.created).is_some_and(|c| c < u)
                })
            })
            .filter(|n| self.network_remove(&n.id).is_ok())
            .map(|n| n.name)
            .collect()
    }

    /// `docker network connect`: recorded for a stopped container, plugged
    /// in at once for a running one.
    pub fn network_connect(&self, key: &str, req: NetworkConnectRequest) -> Result<()> {
        let net = self.nets().find(key)?.clone();
        let id = self.resolve(&req.container)?;
        let rec = self.record(&id)?;
        if net.driver != "bridge" {
            return Err(Error::Forbidden(
                "container cannot be disconnected from host network or connected to host network"
                    .into(),
            ));
        }
        if !matches!(mode_of(&rec.host_config.network_mode), Mode::Bridge(_)) {
            return Err(Error::Forbidden(
                "container sharing network namespace with another container or host cannot be connected to any other network".into(),
            ));
        }
        if rec.networks.values().any(|e| e.network_id == net.id) {
            return Err(Error::Forbidden(format!(
                "endpoint with name {} already exists in network {}",
                rec.name, net.name
            )));
        }
        let mut ep = req.endpoint_config.unwrap_or_default();
        check_endpoint_request(&net, &ep)?;
        ep.network_id = net.id.clone();
        self.update(&id, |r| {
            r.networks.insert(net.name.clone(), ep.clone());
        })?;
        if let (true, Some(st)) = (rec.state.running, rec.net.clone()) {
            let index = (0..)
                .find(|i| !st.links.iter().any(|l| l.ifname == format!("eth{i}")))
                .unwrap_or(0);
            let attached = self.attach_endpoint(&rec, &st.netns, &ep, index);
            let (l, done) = match attached {
                Ok(x) => x,
                Err(e) => {
                    let _ = self.update(&id, |r| {
                        r.networks.remove(&net.name);
                    });
                    return Err(e);
                }
            };
            let mut st = st;
            st.links.push(l);
            let add_dns = net.user_defined() && !st.dns;
            st.dns |= net.user_defined();
            self.update(&id, |r| {
                r.net = Some(st.clone());
                r.networks.insert(net.name.clone(), done.clone());
            })?;
            if add_dns {
                if let Some(d) = self.dns.get() {
                    d.add(&id, &st.netns)?;
                }
            }
            self.sync_firewall()?;
        }
        self.emit_network("connect", &net.id, &id);
        Ok(())
    }

    pub fn network_disconnect(&self, key: &str, req: NetworkDisconnectRequest) -> Result<()> {
        let net = self.nets().find(key)?.clone();
        let id = self.resolve(&req.container)?;
        let rec = self.record(&id)?;
        let Some(name) = rec
            .networks
            .iter()
            .find(|(_, e)| e.network_id == net.id)
            .map(|(n, _)| n.clone())
        else {
            return Err(Error::Forbidden(format!(
                "container {} is not connected to network {}",
                rec.name, net.name
            )));
        };
        if net.driver != "bridge" && !req.force {
            return Err(Error::Forbidden(
                "container cannot be disconnected from host network or connected to host network"
                    .into(),
            ));
        }
        if let Some(mut st) = rec.net.clone() {
            if let Some(pos) = st.links.iter().position(|l| l.network_id == net.id) {
                let l = st.links.remove(pos);
                link::detach(&l.host_ifname)?;
                self.release_ip(&net.id, &id);
                let user_left = {
                    let nets = self.nets();
                    st.links
                        .iter()
                        .any(|l| nets.find(&l.network_id).is_ok_and(|n| n.user_defined()))
                };
                if st.dns && !user_left {
                    if let Some(d) = self.dns.get() {
                        d.remove(&id);
                    }
                    st.dns = false;
                }
                self.update(&id, |r| r.net = Some(st.clone()))?;
            }
        }
        self.update(&id, |r| {
            r.networks.remove(&name);
        })?;
        self.sync_firewall()?;
        self.emit_network("disconnect", &net.id, &id);
        Ok(())
    }

    /// Per-interface counters of a running container (docker stats).
    pub(crate) fn net_stats(&self, r: &Record) -> serde_json::Value {
        if !r.state.running || r.net.is_none() {
            return serde_json::json!({});
        }
        let text = fs::read_to_string(format!("/proc/{}/net/dev", r.state.pid)).unwrap_or_default();
        serde_json::Value::Object(netconf::net_dev_stats(&text))
    }
}

/// FNV-1a: a hash that stays the same across builds (a table name derived
/// from it must survive a daemon upgrade).
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn etc_texts(hostname: &str, hosts: String, resolv: String) -> Vec<(&'static str, EtcFile)> {
    vec![
        ("hostname", EtcFile::Text(format!("{hostname}\n"))),
        ("hosts", EtcFile::Text(hosts)),
        ("resolv.conf", EtcFile::Text(resolv)),
    ]
}

/// Docker's rules for what an endpoint may ask of a network.
fn check_endpoint_request(n: &NetRecord, ep: &EndpointSettings) -> Result<()> {
    let ip = ep
        .ipam_config
        .as_ref()
        .map(|c: &EndpointIpamConfig| c.ipv4_address.trim())
        .unwrap_or_default();
    if !ip.is_empty() {
        if !n.user_defined() {
            return Err(Error::InvalidArgument(
                "user specified IP address is supported on user defined networks only".into(),
            ));
        }
        let addr: Ipv4Addr = ip
            .parse()
            .map_err(|_| Error::InvalidArgument(format!("invalid IPv4 address: {ip}")))?;
        if !n.subnet.is_some_and(|s| s.contains(addr)) {
            return Err(Error::InvalidArgument(format!(
                "no configured subnet contains IP address {addr}"
            )));
        }
    }
    if !ep.aliases.is_empty() && !n.user_defined() {
        return Err(Error::InvalidArgument(
            "network-scoped alias is supported only for containers in user defined networks".into(),
        ));
    }
    Ok(())
}

/// Forgets what a stopped container's endpoint held (inspect shows the
/// request only).
fn clear_runtime(ep: &mut EndpointSettings) {
    ep.endpoint_id.clear();
    ep.gateway.clear();
    ep.ip_address.clear();
    ep.ip_prefix_len = 0;
    ep.mac_address.clear();
    ep.dns_names.clear();
}

/// Reserves a host port for a request: any free one, the given one, or the
/// first free one of a range.
fn reserve_in_range(req: &netconf::PortRequest) -> cais_net::Result<Reservation> {
    let (lo, hi) = req.host_ports;
    if lo == hi {
        return ports::reserve(req.proto, req.host_ip, lo);
    }
    let mut last = None;
    for p in lo..=hi {
        match ports::reserve(req.proto, req.host_ip, p) {
            Ok(r) => return Ok(r),
            Err(e @ cais_net::Error::PortInUse { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(cais_net::Error::PortInUse {
        addr: format!("0.0.0.0:{lo}-{hi}"),
    }))
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

    fn net(name: &str) -> NetRecord {
        NetRecord {
            id: format!("{name}0123456789"),
            name: name.into(),
            driver: "bridge".into(),
            created: String::new(),
            subnet: Some("10.5.0.0/16".parse().expect("subnet")),
            gateway: Some("10.5.0.1".parse().expect("ip")),
            ip_range: None,
            bridge: "b".into(),
            internal: false,
            attachable: false,
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
            allocated: BTreeMap::new(),
        }
    }

    #[test]
    fn endpoint_requests_follow_docker_rules() {
        let with_ip = |ip: &str| EndpointSettings {
            ipam_config: Some(EndpointIpamConfig {
                ipv4_address: ip.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(check_endpoint_request(&net("n1"), &with_ip("10.5.0.9")).is_ok());
        assert!(check_endpoint_request(&net("n1"), &with_ip("10.6.0.9")).is_err());
        assert!(check_endpoint_request(&net("n1"), &with_ip("10.5.0")).is_err());
        assert!(check_endpoint_request(&net("bridge"), &with_ip("10.5.0.9")).is_err());
        let alias = EndpointSettings {
            aliases: vec!["db".into()],
            ..Default::default()
        };
        assert!(check_endpoint_request(&net("n1"), &alias).is_ok());
        assert!(check_endpoint_request(&net("bridge"), &alias).is_err());
    }

    #[test]
    fn networks_are_found_by_id_name_and_prefix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut nets = Networks::load(dir.path().join("n")).expect("load");
        let mut a = net("alpha");
        a.id = "abc111".into();
        let mut b = net("beta");
        b.id = "abd222".into();
        nets.save(a).expect("save");
        nets.save(b).expect("save");
        assert_eq!(nets.find("alpha").expect("name").id, "abc111");
        assert_eq!(nets.find("abd").expect("prefix").name, "beta");
        assert_eq!(nets.find("abd222").expect("id").name, "beta");
        assert!(matches!(nets.find("ab"), Err(Error::InvalidArgument(_))));
        assert!(matches!(nets.find("zzz"), Err(Error::NotFound(_))));
        let again = Networks::load(dir.path().join("n")).expect("reload");
        assert_eq!(again.by_id.len(), 2);
        nets.delete("abc111").expect("delete");
        assert!(nets.find("alpha").is_err());
        assert_eq!(
            Networks::load(dir.path().join("n"))
                .expect("reload")
                .by_id
                .len(),
            1
        );
    }
}
