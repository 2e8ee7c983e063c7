//! Network records: one file per network under `<root>/engine/networks`,
//! holding what `docker network create` asked for and the addresses
//! running containers hold (allocated at start, released at teardown).
//! `NetworkStore` owns them in memory and on disk and serves the
//! `/networks` operations that only read containers (list, inspect,
//! remove, prune); wiring a container is `wiring`'s job.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use cais_api::{
    EndpointIpamConfig, EndpointSettings, Network, NetworkContainer, NetworkCreateRequest,
    NetworkCreateResponse,
};
use cais_net::ipam::{self, Subnet};
use cais_net::link;
use serde::{Deserialize, Serialize};

use crate::containers::table::Table;
use crate::error::{Error, Kind, Result, NOT_A_SWARM_MANAGER};
use crate::events::Events;
use crate::filters::Filters;
use crate::ids::{now, random_hex};
use crate::networks::netconf::mac_text;

/// The predefined networks docker lists.
const BUILTIN: [&str; 3] = ["bridge", "host", "none"];
/// The default bridge's interface name for the default data root.
pub(crate) const DEFAULT_BRIDGE: &str = "cais0";
pub(crate) const DEFAULT_ROOT: &str = "/var/lib/cais";
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
    /// `--aux-address`: names for addresses containers never get.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aux_addresses: BTreeMap<String, Ipv4Addr>,
    /// IPAM options as given (`null` in inspect when none were).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam_options: Option<BTreeMap<String, String>>,
    /// `EnableIPv6` as asked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enable_ipv6: bool,
    /// IPv6 pools as given: recorded and shown, never allocated from
    /// (networks are IPv4 only: `EnableIPv6` is refused).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipv6_pools: Vec<cais_api::IpamConfig>,
}

impl NetRecord {
    pub fn builtin(&self) -> bool {
        BUILTIN.contains(&self.name.as_str())
    }
    /// A user-defined network: served by the embedded DNS.
    pub fn user_defined(&self) -> bool {
        self.driver == "bridge" && self.name != "bridge"
    }
}

/// The network records, in memory and on disk.
pub(crate) struct Networks {
    dir: PathBuf,
    pub(crate) by_id: BTreeMap<String, NetRecord>,
}

impl Networks {
    pub(crate) fn load(dir: PathBuf) -> Result<Networks> {
        fs::create_dir_all(&dir).map_err(Error::io("creating", &dir))?;
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

    pub(crate) fn save(&mut self, n: NetRecord) -> Result<()> {
        let tmp = self.dir.join(format!(".{}.json.tmp", n.id));
        fs::write(
            &tmp,
            serde_json::to_vec_pretty(&n).expect("records serialize"),
        )
        .and_then(|_| fs::rename(&tmp, self.dir.join(format!("{}.json", n.id))))
        .map_err(Error::io("saving the network record", &tmp))?;
        self.by_id.insert(n.id.clone(), n);
        Ok(())
    }

    pub(crate) fn delete(&mut self, id: &str) -> Result<()> {
        match fs::remove_file(self.dir.join(format!("{id}.json"))) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::io(
                    "removing the network record",
                    self.dir.join(format!("{id}.json")),
                )(e))
            }
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
            [] => Err(Error::not_found(Kind::Network, key)),
            _ => Err(Error::InvalidArgument(format!(
                "network {key} is ambiguous ({} matches found based on ID prefix)",
                matches.len()
            ))),
        }
    }

    pub(crate) fn by_name(&self, name: &str) -> Option<&NetRecord> {
        self.by_id.values().find(|n| n.name == name)
    }
}

/// The network records, owned: `records` is the lock of the crate's lock
/// order (taken after the firewall's, before the container table's).
pub struct NetworkStore {
    root: PathBuf,
    records: Mutex<Networks>,
    table: Arc<Table>,
    events: Arc<Events>,
}

impl NetworkStore {
    /// Loads the records under `dir`. `root` is the daemon's data root,
    /// which names the default bridge (see `default_bridge_name`).
    pub fn load(
        root: &Path,
        dir: PathBuf,
        table: Arc<Table>,
        events: Arc<Events>,
    ) -> Result<NetworkStore> {
        Ok(NetworkStore {
            root: root.to_path_buf(),
            records: Mutex::new(Networks::load(dir)?),
            table,
            events,
        })
    }

    /// The records, locked.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Networks> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the record `key` names (id, name or unique id prefix).
    pub fn find(&self, key: &str) -> Result<NetRecord> {
        self.lock().find(key).cloned()
    }

    /// Copies of every record.
    pub fn all(&self) -> Vec<NetRecord> {
        self.lock().by_id.values().cloned().collect()
    }

    /// At daemon start, before containers are restored: the predefined
    /// networks, and the default bridge's subnet.
    pub fn init(&self) -> Result<()> {
        {
            let mut nets = self.lock();
            for (name, driver) in [("bridge", "bridge"), ("host", "host"), ("none", "null")] {
                if nets.by_name(name).is_some() {
                    continue;
                }
                let mut n = NetRecord {
                    id: random_hex(32),
                    name: name.into(),
                    driver: driver.into(),
                    created: now(),
                    subnet: None,
                    gateway: None,
                    ip_range: None,
                    bridge: String::new(),
                    internal: false,
                    attachable: false,
                    labels: BTreeMap::new(),
                    options: BTreeMap::new(),
                    allocated: BTreeMap::new(),
                    aux_addresses: BTreeMap::new(),
                    ipam_options: None,
                    enable_ipv6: false,
                    ipv6_pools: Vec::new(),
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
        Ok(())
    }

    /// `cais0` for the daemon of the default data root; a daemon with
    /// another root on the same host (tests) gets a name of its own, so
    /// their bridges and address plans never mix.
    pub(crate) fn default_bridge_name(&self) -> String {
        if self.root == Path::new(DEFAULT_ROOT) {
            return DEFAULT_BRIDGE.into();
        }
        format!("{DEFAULT_BRIDGE}-{}", &random_hex(3))
    }

    /// Names of the containers with an interface on network `id`.
    pub fn users(&self, id: &str) -> Vec<String> {
        self.table.with(|all| {
            all.values()
                .filter(|r| {
                    r.net
                        .as_ref()
                        .is_some_and(|s| s.links.iter().any(|l| l.network_id == id))
                })
                .map(|r| r.name.clone())
                .collect()
        })
    }

    fn view(&self, n: &NetRecord, with_containers: bool) -> Network {
        let mut containers = BTreeMap::new();
        if with_containers {
            let table = self
                .table
                .with(|all| all.values().cloned().collect::<Vec<_>>());
            for r in &table {
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
                        mac_address: ep
                            .map(|e| e.mac_address.clone())
                            .filter(|m| !m.is_empty())
                            .unwrap_or_else(|| mac_text(l.ip)),
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
            enable_ipv6: n.enable_ipv6,
            ipam: cais_api::Ipam {
                driver: "default".into(),
                config: match (n.subnet, n.gateway) {
                    (Some(s), Some(g)) => vec![cais_api::IpamConfig {
                        subnet: s.to_string(),
                        gateway: g.to_string(),
                        ip_range: n.ip_range.map(|r| r.to_string()).unwrap_or_default(),
                        auxiliary_addresses: n
                            .aux_addresses
                            .iter()
                            .map(|(k, v)| (k.clone(), v.to_string()))
                            .collect(),
                    }],
                    _ => Vec::new(),
                }
                .into_iter()
                .chain(n.ipv6_pools.iter().cloned())
                .collect(),
                options: n.ipam_options.clone(),
            },
            internal: n.internal,
            attachable: n.attachable,
            ingress: false,
            config_from: Default::default(),
            config_only: false,
            containers,
            options: n.options.clone(),
            labels: n.labels.clone(),
        }
    }

    /// `GET /networks` with its filters (keys checked by the caller).
    pub fn list(&self, filters: &Filters) -> Result<Vec<Network>> {
        let dangling = filters.boolean("dangling")?;
        if let Some(t) = filters
            .values("type")
            .iter()
            .find(|t| !matches!(t.as_str(), "builtin" | "custom"))
        {
            return Err(Error::InvalidArgument(format!("invalid filter 'type={t}'")));
        }
        let nets = self.all();
        let mut out: Vec<Network> = nets
            .iter()
            .filter(|n| {
                filters.any("name", |v| n.name.contains(v))
                    && filters.any("id", |v| n.id.starts_with(v))
                    && filters.any("driver", |v| n.driver == v)
                    && filters.any("scope", |v| v == "local")
                    && filters.any("type", |v| (v == "builtin") == n.builtin())
                    && filters.labels_match(&n.labels)
                    && dangling
                        .is_none_or(|want| (!n.builtin() && self.users(&n.id).is_empty()) == want)
            })
            .map(|n| self.view(n, false))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// `GET /networks/{key}`, with the containers on it.
    pub fn inspect(&self, key: &str) -> Result<Network> {
        let n = self.find(key)?;
        Ok(self.view(&n, true))
    }

    /// `POST /networks/create`: a bridge network with its own subnet.
    pub fn create(&self, req: NetworkCreateRequest) -> Result<NetworkCreateResponse> {
        // dockerd takes any name but an empty one (spaces, slashes...).
        let name = req.name.as_str();
        if name.is_empty() {
            return Err(Error::InvalidArgument("invalid name: ".into()));
        }
        if req.ingress {
            // A routing mesh needs a swarm; dockerd's words.
            return Err(Error::Forbidden(
                "Ingress network can only be global scope network".into(),
            ));
        }
        match req.scope.as_str() {
            "" | "local" => {}
            "swarm" | "global" => return Err(Error::Unavailable(NOT_A_SWARM_MANAGER.into())),
            other => {
                return Err(Error::InvalidArgument(format!(
                    "invalid network scope {other:?}"
                )))
            }
        }
        if req.config_only
            || req
                .config_from
                .as_ref()
                .is_some_and(|c| !c.network.is_empty())
        {
            return Err(Error::InvalidArgument(
                "configuration-only networks (--config-only, --config-from) are not supported by this daemon".into(),
            ));
        }
        match req.driver.as_str() {
            "" | "bridge" => {}
            "host" | "null" => {
                return Err(Error::Forbidden(format!(
                    "only one instance of \"{}\" network is allowed",
                    req.driver
                )))
            }
            "overlay" => return Err(Error::Unavailable(NOT_A_SWARM_MANAGER.into())),
            other => return Err(Error::not_found(Kind::Plugin, other)),
        }
        if req.enable_ipv6 {
            return Err(Error::InvalidArgument(
                "IPv6 networks are not supported by this daemon (EnableIPv6): its networks are IPv4 only".into(),
            ));
        }
        if let Some(d) = req
            .ipam
            .as_ref()
            .map(|i| i.driver.as_str())
            .filter(|d| !d.is_empty() && *d != "default")
        {
            return Err(Error::not_found(Kind::Plugin, d));
        }
        let pools = req
            .ipam
            .as_ref()
            .map(|i| i.config.as_slice())
            .unwrap_or_default();
        // IPv6 pools are kept as given (checked); addresses come from the
        // IPv4 one, chosen when none is given.
        let (v6, v4): (Vec<&cais_api::IpamConfig>, Vec<&cais_api::IpamConfig>) =
            pools.iter().partition(|p| p.subnet.contains(':'));
        for p in &v6 {
            check_ipv6_pool(p)?;
        }
        if v4.len() > 1 {
            return Err(Error::InvalidArgument(
                "only one IPv4 address pool per network is supported".into(),
            ));
        }
        let pool = v4.first().copied();
        let mut nets = self.lock();
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
        let mut aux_addresses = BTreeMap::new();
        for (host, addr) in pool.map(|p| &p.auxiliary_addresses).into_iter().flatten() {
            let ip: Ipv4Addr = addr.parse().map_err(|_| {
                Error::InvalidArgument(format!("invalid auxiliary address {host}={addr}"))
            })?;
            if !subnet.contains(ip) {
                return Err(Error::InvalidArgument(format!(
                    "auxiliary address {host}={addr} is not in subnet {subnet}"
                )));
            }
            aux_addresses.insert(host.clone(), ip);
        }
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
            created: now(),
            subnet: Some(subnet),
            gateway: Some(gateway),
            ip_range,
            bridge,
            internal: req.internal,
            attachable: req.attachable,
            labels: req.labels.clone(),
            options: req.options.clone(),
            allocated: BTreeMap::new(),
            aux_addresses,
            ipam_options: req.ipam.as_ref().and_then(|i| i.options.clone()),
            enable_ipv6: req.enable_ipv6,
            ipv6_pools: v6.into_iter().cloned().collect(),
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

    /// `DELETE /networks/{key}`: user networks no container is on.
    pub fn remove(&self, key: &str) -> Result<()> {
        let n = self.find(key)?;
        if n.builtin() {
            return Err(Error::Forbidden(format!(
                "{} is a pre-defined network and cannot be removed",
                n.name
            )));
        }
        if !self.users(&n.id).is_empty() {
            return Err(Error::Forbidden(format!(
                "error while removing network: network {} id {} has active endpoints",
                n.name, n.id
            )));
        }
        link::delete_link(&n.bridge)?;
        self.lock().delete(&n.id)?;
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
    pub fn prune(&self, filters: &Filters, until: Option<i64>) -> Vec<String> {
        let nets = self.all();
        nets.into_iter()
            .filter(|n| !n.builtin())
            .filter(|n| filters.labels_match(&n.labels))
            .filter(|n| {
                until.is_none_or(|u| {
                    cais_image::time::parse_rfc3339(&n.created).is_some_and(|c| c < u)
                })
            })
            .filter(|n| self.remove(&n.id).is_ok())
            .map(|n| n.name)
            .collect()
    }

    /// Allocates an address for `container` on network `network_id` (the
    /// one it already holds there, `requested`, or a free one of the
    /// network's range); returns the network as it is then. The default
    /// bridge moves to a free subnet first if the host took its range
    /// while it had no bridge and no containers.
    pub(crate) fn allocate(
        &self,
        network_id: &str,
        container: &str,
        requested: Option<Ipv4Addr>,
    ) -> Result<(NetRecord, Subnet, Ipv4Addr, Ipv4Addr)> {
        let mut nets = self.lock();
        let mut n = nets.find(network_id)?.clone();
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
        let ip = match n.allocated.get(container) {
            Some(ip) => *ip,
            None => {
                let used: BTreeSet<Ipv4Addr> = n
                    .allocated
                    .values()
                    .chain(n.aux_addresses.values())
                    .copied()
                    .collect();
                let pool = match (requested, n.ip_range) {
                    (None, Some(range)) => range,
                    _ => subnet,
                };
                let ip = ipam::allocate(pool, gw, &used, requested)?;
                n.allocated.insert(container.to_string(), ip);
                nets.save(n.clone())?;
                ip
            }
        };
        Ok((n, subnet, gw, ip))
    }

    /// Releases the address `container` holds on network `network_id`.
    pub(crate) fn release(&self, network_id: &str, container: &str) {
        let mut nets = self.lock();
        if let Some(mut n) = nets.by_id.get(network_id).cloned() {
            if n.allocated.remove(container).is_some() {
                let _ = nets.save(n);
            }
        }
    }

    /// Releases every address `container` holds.
    pub(crate) fn release_all(&self, container: &str) {
        let mut nets = self.lock();
        let holding: Vec<NetRecord> = nets
            .by_id
            .values()
            .filter(|n| n.allocated.contains_key(container))
            .cloned()
            .collect();
        for mut n in holding {
            n.allocated.remove(container);
            let _ = nets.save(n);
        }
    }

    /// Keeps only the allocations of containers `holds` says still hold
    /// their network (the rest belonged to containers that are gone).
    pub(crate) fn release_unless(&self, holds: impl Fn(&str) -> bool) {
        let stale: Vec<NetRecord> = self
            .all()
            .into_iter()
            .filter(|n| n.allocated.keys().any(|c| !holds(c)))
            .collect();
        for mut n in stale {
            n.allocated.retain(|c, _| holds(c));
            let _ = self.lock().save(n);
        }
    }
}

/// An IPv6 pool's subnet, range and gateway: addresses and prefixes that
/// parse, as dockerd checks them.
fn check_ipv6_pool(p: &cais_api::IpamConfig) -> Result<()> {
    let cidr = |what: &str, text: &str| -> Result<()> {
        let (addr, prefix) = text.split_once('/').unwrap_or((text, ""));
        let ok = addr.parse::<std::net::Ipv6Addr>().is_ok()
            && prefix.parse::<u8>().is_ok_and(|p| p <= 128);
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!("invalid {what}: {text}")))
        }
    };
    cidr("subnet", &p.subnet)?;
    if !p.ip_range.is_empty() {
        cidr("ip range", &p.ip_range)?;
    }
    if !p.gateway.is_empty() && p.gateway.parse::<std::net::Ipv6Addr>().is_err() {
        return Err(Error::InvalidArgument(format!(
            "invalid gateway address: {}",
            p.gateway
        )));
    }
    Ok(())
}

/// A requested link-local address: an IPv4 one in 169.254.0.0/16 (RFC
/// 3927), the block the interface gets it with. IPv6 ones are refused:
/// cais networks have no IPv6.
pub(crate) fn link_local_ip(text: &str) -> Result<Ipv4Addr> {
    let text = text.trim();
    if text.parse::<std::net::Ipv6Addr>().is_ok() {
        return Err(Error::InvalidArgument(format!(
            "invalid endpoint settings: IPv6 link-local address {text}: cais networks have no IPv6"
        )));
    }
    match text.parse::<Ipv4Addr>() {
        Ok(a) if a.is_link_local() => Ok(a),
        Ok(_) => Err(Error::InvalidArgument(format!(
            "invalid endpoint settings: {text} is not a link-local address (169.254.0.0/16)"
        ))),
        Err(_) => Err(Error::InvalidArgument(format!(
            "invalid endpoint settings: invalid link-local IP address: {text}"
        ))),
    }
}

/// Whether IPv6 subnet `cidr` (`2001:db8::/64`) holds `addr`.
fn ipv6_subnet_contains(cidr: &str, addr: std::net::Ipv6Addr) -> bool {
    let Some((net, prefix)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(prefix)) = (net.parse::<std::net::Ipv6Addr>(), prefix.parse::<u32>()) else {
        return false;
    };
    let mask = u128::MAX.checked_shl(128 - prefix.min(128)).unwrap_or(0);
    u128::from(net) & mask == u128::from(addr) & mask
}

/// Docker's rules for what an endpoint may ask of a network.
pub(crate) fn check_endpoint_request(n: &NetRecord, ep: &EndpointSettings) -> Result<()> {
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
    if !ep.mac_address.is_empty() {
        crate::networks::netconf::parse_mac(&ep.mac_address)?;
    }
    // The bridge driver reads one endpoint option, the interface's name;
    // the others are kept and shown in inspect, and the driver leaves them
    // alone, as dockerd's bridge driver does with options it does not know.
    if let Some(name) = ep
        .driver_opts
        .get(crate::networks::netconf::ENDPOINT_IFNAME)
    {
        if name.is_empty()
            || name.len() > 15
            || name.contains(['/', ' ', ':'])
            || name == "."
            || name == ".."
        {
            return Err(Error::InvalidArgument(format!(
                "invalid interface name {name:?}"
            )));
        }
    }
    if let Some(c) = &ep.ipam_config {
        // Asked of a network with IPv6 pools but no IPv6 (`EnableIPv6` is
        // refused): kept in the endpoint's IPAMConfig and never assigned,
        // as dockerd assigns none on a network without `EnableIPv6`.
        let ip6 = c.ipv6_address.trim();
        if !ip6.is_empty() {
            let addr: std::net::Ipv6Addr = ip6
                .parse()
                .map_err(|_| Error::InvalidArgument(format!("invalid IPv6 address: {ip6}")))?;
            if n.ipv6_pools.is_empty() {
                return Err(Error::InvalidArgument(
                    "user specified IP address is supported only when connecting to networks with user configured subnets".into(),
                ));
            }
            if !n
                .ipv6_pools
                .iter()
                .any(|p| ipv6_subnet_contains(&p.subnet, addr))
            {
                return Err(Error::InvalidArgument(format!(
                    "no configured subnet contains IP address {addr}"
                )));
            }
        }
        for a in &c.link_local_ips {
            link_local_ip(a)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
            aux_addresses: BTreeMap::new(),
            ipam_options: None,
            enable_ipv6: false,
            ipv6_pools: Vec::new(),
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
        let with_ip6 = |ip: &str| EndpointSettings {
            ipam_config: Some(EndpointIpamConfig {
                ipv6_address: ip.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut v6 = net("n6");
        v6.ipv6_pools = vec![cais_api::IpamConfig {
            subnet: "2001:389::/64".into(),
            ..Default::default()
        }];
        assert!(check_endpoint_request(&v6, &with_ip6("2001:389::f00d")).is_ok());
        for bad in ["2001:388::f00d", "2001:389::g", "10.5.0.9"] {
            assert!(
                check_endpoint_request(&v6, &with_ip6(bad)).is_err(),
                "{bad}"
            );
        }
        assert!(check_endpoint_request(&net("n1"), &with_ip6("2001:389::f00d")).is_err());
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
        assert!(matches!(
            nets.find("zzz"),
            Err(Error::NotFound {
                kind: Kind::Network,
                ..
            })
        ));
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
