//! Wiring a container into its networks, and what follows from it: at
//! start a persistent namespace at `<exec_root>/netns/<id>` (bridge modes),
//! one veth per network (eth0 first, with the default route), published
//! ports reserved by sockets the daemon holds, /etc/hosts and resolv.conf,
//! and on user-defined networks the embedded DNS server. What a running
//! container holds is persisted in its record (`Container::net`) before it
//! is relied on, so stop, exit, rm, a failed start and a daemon restart
//! all tear down through `teardown`, from the record. The firewall is
//! level-triggered: `sync_firewall` rebuilds the whole ruleset from the
//! records after every change. Kernel calls are blocking; like the rest of
//! the engine they run on the HTTP layer's blocking threads.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use cais_api::{
    EndpointSettings, HostConfig, NetworkConnectRequest, NetworkDisconnectRequest, NetworkingConfig,
};
use cais_net::ports::{Proto, Reservation};
use cais_net::{dns, firewall, ipam, link, netns, ports};

use crate::config::Config;
use crate::containers::state::Container;
use crate::containers::table::Table;
use crate::error::{Error, Result};
use crate::events::Events;
use crate::ids::random_hex;
use crate::networks::netconf::{
    self, clear_runtime, etc_texts, fnv1a, mode_of, DnsEntry, EtcFile, FwContainer, FwNetwork,
    HostsLink, LinkState, Mode, NetPlan, NetState, PortMap,
};
use crate::networks::records::{
    check_endpoint_request, NetRecord, NetworkStore, DEFAULT_BRIDGE, DEFAULT_ROOT,
};

/// Container networking: the locks `ops` and `firewall` come first in the
/// crate's lock order; `ports` is taken alone.
pub struct Wiring {
    cfg: Config,
    table: Arc<Table>,
    networks: Arc<NetworkStore>,
    events: Arc<Events>,
    /// Published host ports, held by bound sockets while containers run.
    ports: Mutex<HashMap<String, Vec<Reservation>>>,
    /// The embedded DNS server of user-defined networks (if it started).
    dns: OnceLock<dns::DnsServer>,
    /// Serializes firewall rebuilds and holds the ruleset last applied,
    /// so a change that leaves the rules as they are costs no `nft` run.
    firewall: Mutex<Option<firewall::Ruleset>>,
    /// Serializes network teardown with the daemon-start restore.
    ops: Mutex<()>,
    /// Build sandboxes on user networks, as the embedded DNS sees them (a
    /// leaf lock).
    sandboxes: Arc<Mutex<BTreeMap<String, DnsEntry>>>,
}

/// A network namespace on a user network for a build's `RUN` steps
/// (`docker build --network NAME`): attached like a container's, known to
/// the embedded DNS under its id, and undone by [`Wiring::remove_sandbox`].
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub id: String,
    pub netns: PathBuf,
    /// `/etc/hosts` and `/etc/resolv.conf` for what runs in it.
    pub hosts: String,
    pub resolv_conf: String,
    network_id: String,
    host_ifname: String,
}

/// The embedded DNS server's view of the engine.
struct EngineResolver {
    table: Arc<Table>,
    networks: Arc<NetworkStore>,
    sandboxes: Arc<Mutex<BTreeMap<String, DnsEntry>>>,
}

impl EngineResolver {
    fn entries(&self) -> Vec<DnsEntry> {
        let user_nets: BTreeSet<String> = self
            .networks
            .all()
            .into_iter()
            .filter(|n| n.user_defined())
            .map(|n| n.id)
            .collect();
        let sandboxes: Vec<DnsEntry> = self
            .sandboxes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let mut entries = self.table.with(|all| {
            all.values()
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
                    // `--link` as the host config has it (older clients) and
                    // as endpoints of user networks have it (newer ones).
                    let links = r
                        .host_config
                        .links
                        .iter()
                        .chain(r.networks.values().flat_map(|e| e.links.iter()))
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
                .collect::<Vec<_>>()
        });
        entries.extend(sandboxes);
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

impl Wiring {
    pub fn new(
        cfg: Config,
        table: Arc<Table>,
        networks: Arc<NetworkStore>,
        events: Arc<Events>,
    ) -> Wiring {
        Wiring {
            cfg,
            table,
            networks,
            events,
            ports: Mutex::new(HashMap::new()),
            dns: OnceLock::new(),
            firewall: Mutex::new(None),
            ops: Mutex::new(()),
            sandboxes: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    fn ports(&self) -> MutexGuard<'_, HashMap<String, Vec<Reservation>>> {
        self.ports.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn netns_path(&self, id: &str) -> PathBuf {
        self.cfg.netns_dir().join(id)
    }

    /// At daemon start, before containers are restored: the embedded DNS
    /// server (a daemon without it still serves; user networks then have
    /// no name resolution).
    pub fn start_dns(&self) {
        let upstreams = dns::upstreams_from_resolv_conf(
            &fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        );
        let resolver: Arc<dyn dns::Resolver> = Arc::new(EngineResolver {
            table: self.table.clone(),
            networks: self.networks.clone(),
            sandboxes: self.sandboxes.clone(),
        });
        match dns::DnsServer::start(resolver, upstreams) {
            Ok(server) => {
                let _ = self.dns.set(server);
            }
            Err(e) => tracing::warn!(
                error = %crate::error::chain(&e),
                "the embedded DNS server did not start"
            ),
        }
    }

    /// The daemon's nftables table: `cais` for the default data root, one
    /// named after its default bridge for any other daemon on the host, so
    /// each rebuilds only its own rules.
    fn fw_table(&self) -> String {
        if self.cfg.root == Path::new(DEFAULT_ROOT) {
            return firewall::TABLE.to_string();
        }
        let bridge = self
            .networks
            .lock()
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
    pub fn restore(&self) {
        let ids: Vec<String> = self.table.with(|all| all.keys().cloned().collect());
        for id in &ids {
            match self.table.get(id) {
                Ok(r) if r.net.is_some() && !r.state.is_running() => self.teardown(id),
                _ => {}
            }
        }
        for id in &ids {
            // Serialized with teardown: a monitor thread may be reporting
            // this container's exit right now.
            let _ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
            let Ok(r) = self.table.get(id) else { continue };
            let Some(st) = &r.net else { continue };
            if !r.state.is_running() {
                continue;
            }
            for l in &st.links {
                if let Ok(n) = self.networks.find(&l.network_id) {
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
            self.ports().insert(r.id.clone(), held);
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
        let _ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        // A container whose restart policy starts it again (scheduled by
        // `Containers::restore`, just before) may be setting up its
        // namespace now, before its record says so: it keeps what it holds.
        let holds_net = |id: &str| {
            self.table
                .get(id)
                .is_ok_and(|r| r.net.is_some() || r.state.is_restarting() || r.state.is_running())
        };
        self.networks.release_unless(holds_net);
        for entry in fs::read_dir(self.cfg.netns_dir())
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
    pub fn shutdown(&self) {
        *self.firewall.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if let Err(e) = firewall::remove_table(&self.fw_table()) {
            tracing::warn!(
                error = %crate::error::chain(&e),
                "removing the firewall rules"
            );
        }
        let bridges: Vec<(String, String)> = self
            .networks
            .all()
            .into_iter()
            .filter(|n| n.driver == "bridge")
            .map(|n| (n.id, n.bridge))
            .collect();
        for (id, bridge) in bridges {
            if self.networks.users(&id).is_empty() {
                let _ = link::delete_link(&bridge);
            }
        }
    }

    /// Rebuilds the whole firewall ruleset from the networks and the
    /// containers that hold a network namespace. Serialized, so the last
    /// state wins.
    pub fn sync_firewall(&self) -> Result<()> {
        let mut applied = self.firewall.lock().unwrap_or_else(|p| p.into_inner());
        let networks: Vec<FwNetwork> = self
            .networks
            .all()
            .into_iter()
            .filter_map(|n| {
                Some(FwNetwork {
                    id: n.id,
                    bridge: n.bridge,
                    subnet: n.subnet?,
                    internal: n.internal,
                })
            })
            .collect();
        let containers: Vec<FwContainer> = self.table.with(|all| {
            all.values()
                .filter_map(|r| r.net.as_ref())
                .map(|st| FwContainer {
                    networks: st
                        .links
                        .iter()
                        .map(|l| (l.network_id.clone(), l.ip))
                        .collect(),
                    ports: st.ports.clone(),
                })
                .collect()
        });
        let rules = netconf::ruleset(&networks, &containers, applied.as_ref());
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
                self.table.resolve(c)?;
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
                let nets = self.networks.lock();
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
        let nets = self.networks.lock();
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
    pub(crate) fn setup(&self, rec: &Container) -> Result<NetPlan> {
        let hostname = rec.config.hostname.clone();
        let host_resolv = host_resolv_conf();
        let h = &rec.host_config;
        // `NetworkDisabled`: a namespace with only loopback.
        let mode = if rec.config.network_disabled {
            Mode::None
        } else {
            mode_of(&h.network_mode)
        };
        match mode {
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
                    link_env: Vec::new(),
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
                if let Err(e) = self.table.update(&rec.id, |r| r.net = Some(st)) {
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
                    link_env: Vec::new(),
                })
            }
            Mode::Container(c) => {
                let other = self.table.get(&self.table.resolve(&c)?)?;
                if !other.state.is_running() {
                    return Err(Error::Conflict(format!(
                        "cannot join network namespace of a non running container: {}",
                        other.name
                    )));
                }
                let other_dir = self.table.dir(&other.id);
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
                            Some(PathBuf::from(format!("/proc/{}/ns/net", other.state.pid()))),
                        ),
                    };
                Ok(NetPlan {
                    host_network,
                    netns,
                    hostname: other.config.hostname.clone(),
                    etc,
                    link_env: Vec::new(),
                })
            }
            Mode::Bridge(_) => {
                let result = self.bridge_setup(rec, &host_resolv);
                if result.is_err() {
                    self.teardown(&rec.id);
                }
                result
            }
        }
    }

    fn bridge_setup(&self, rec: &Container, host_resolv: &str) -> Result<NetPlan> {
        let id = &rec.id;
        let path = self.netns_path(id);
        // A namespace left by a crash of this container's last run.
        let _ = netns::remove(&path);
        netns::create(&path)?;
        let mut st = NetState {
            netns: path.clone(),
            ..Default::default()
        };
        self.table.update(id, |r| r.net = Some(st.clone()))?;
        // The primary network (the one NetworkMode names) first.
        let primary = {
            let nets = self.networks.lock();
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
            self.table.update(id, |r| r.net = Some(st.clone()))?;
            user_network |= !done.dns_names.is_empty();
            endpoints.insert(name.clone(), done);
        }
        // Published ports.
        let requests = netconf::port_requests(&rec.host_config, rec.config.exposed_ports.as_ref())?;
        let mut held = Vec::new();
        for req in &requests {
            let res = reserve_in_range(req).map_err(|e| match e {
                cais_net::Error::PortInUse { addr } => Error::PortPublish {
                    container: rec.name.clone(),
                    endpoint: endpoints
                        .values()
                        .next()
                        .map(|e: &EndpointSettings| e.endpoint_id.clone())
                        .unwrap_or_default(),
                    addr,
                },
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
        self.ports().insert(id.clone(), held);
        st.dns = user_network;
        self.table.update(id, |r| {
            r.net = Some(st.clone());
            for (name, ep) in &endpoints {
                r.networks.insert(name.clone(), ep.clone());
            }
        })?;
        // /etc files.
        let h = &rec.host_config;
        let primary_link = st.links.first();
        let gateway = primary_link.and_then(|l| {
            self.networks
                .lock()
                .find(&l.network_id)
                .ok()
                .and_then(|n| n.gateway)
        });
        // Legacy links are /etc/hosts lines on the default bridge; on user
        // networks the embedded DNS answers their aliases.
        let (mut links, mut link_env) = self.legacy_links(rec)?;
        let on_default = primary_link.is_some_and(|l| {
            self.networks
                .lock()
                .find(&l.network_id)
                .is_ok_and(|n| n.name == "bridge")
        });
        if !on_default {
            links.clear();
            link_env.clear();
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
            link_env,
        })
    }

    /// `--link name:alias`: the linked containers' addresses for
    /// /etc/hosts, and the variables they give the process.
    fn legacy_links(&self, rec: &Container) -> Result<(Vec<HostsLink>, Vec<String>)> {
        let mut out = Vec::new();
        let mut env = Vec::new();
        for l in &rec.host_config.links {
            let (name, alias) = l.split_once(':').unwrap_or((l, l));
            let name = name.trim_start_matches('/');
            let alias = alias.rsplit('/').next().unwrap_or(alias);
            let other = self.table.get(&self.table.resolve(name)?)?;
            let ip = other
                .net
                .as_ref()
                .filter(|_| other.state.is_running())
                .and_then(|st| st.links.first())
                .map(|l| l.ip)
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "Cannot link to a non running container: /{} AS /{alias}",
                        other.name
                    ))
                })?;
            let exposed: Vec<String> = other
                .config
                .exposed_ports
                .iter()
                .flat_map(|p| p.keys().cloned())
                .collect();
            env.extend(netconf::link_env(
                &rec.name,
                alias,
                ip,
                &exposed,
                &other.config.env,
            ));
            out.push(HostsLink {
                ip,
                alias: alias.to_string(),
                name: other.name.clone(),
                hostname: other.config.hostname.clone(),
            });
        }
        Ok((out, env))
    }

    /// Allocates an address on the endpoint's network and plugs a veth
    /// into the namespace; returns the link and the endpoint as inspect
    /// shows it. On error the address is released.
    fn attach_endpoint(
        &self,
        rec: &Container,
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
        let link_local = ep
            .ipam_config
            .as_ref()
            .map(|c| c.link_local_ips.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|a| crate::networks::records::link_local_ip(a))
            .collect::<Result<Vec<Ipv4Addr>>>()?;
        let (net, subnet, gw, ip) = self.networks.allocate(&ep.network_id, &rec.id, requested)?;
        let (mac, mac_shown) = match netconf::endpoint_mac(&ep.mac_address, ip) {
            Ok(m) => m,
            Err(e) => {
                self.networks.release(&net.id, &rec.id);
                return Err(e);
            }
        };
        let ifname = ep
            .driver_opts
            .get(netconf::ENDPOINT_IFNAME)
            .cloned()
            .unwrap_or_else(|| format!("eth{index}"));
        let host_ifname = format!("veth{}", &random_hex(4)[..7]);
        let attached = link::ensure_bridge(&net.bridge, gw, subnet.prefix).and_then(|_| {
            link::attach(&link::Attachment {
                netns: netns_path.to_path_buf(),
                bridge: net.bridge.clone(),
                host_ifname: host_ifname.clone(),
                ifname: ifname.clone(),
                address: ip,
                prefix: subnet.prefix,
                mac,
                gateway: (index == 0).then_some(gw),
                link_local: link_local.clone(),
            })
        });
        if let Err(e) = attached {
            self.networks.release(&net.id, &rec.id);
            return Err(e.into());
        }
        let mut done = ep.clone();
        done.network_id = net.id.clone();
        done.endpoint_id = random_hex(32);
        done.gateway = gw.to_string();
        done.ip_address = ip.to_string();
        done.ip_prefix_len = subnet.prefix;
        done.mac_address = mac_shown;
        done.dns_names = if net.user_defined() {
            netconf::dns_names(&rec.name, &rec.id, ep)
        } else {
            Vec::new()
        };
        Ok((
            LinkState {
                network_id: net.id.clone(),
                host_ifname,
                ifname,
                ip,
            },
            done,
        ))
    }

    /// A sandbox on network `key` (a user-defined bridge network) for a
    /// build: its own namespace with an address there, the embedded DNS
    /// answering in it, and the /etc texts to go with it; `extra_hosts`
    /// are `--add-host` entries. Nothing is left behind on error.
    pub fn sandbox(&self, key: &str, extra_hosts: &[String]) -> Result<Sandbox> {
        let net = self.networks.find(key)?;
        if !net.user_defined() || net.driver != "bridge" {
            return Err(Error::InvalidArgument(format!(
                "network mode {key:?} is not supported for builds: give host, none or a user-defined bridge network"
            )));
        }
        let id = format!("build-{}", random_hex(8));
        let path = self.netns_path(&id);
        netns::create(&path)?;
        let (n, subnet, gw, ip) = match self.networks.allocate(&net.id, &id, None) {
            Ok(x) => x,
            Err(e) => {
                let _ = netns::remove(&path);
                return Err(e);
            }
        };
        let host_ifname = format!("veth{}", &random_hex(4)[..7]);
        let attached = link::ensure_bridge(&n.bridge, gw, subnet.prefix).and_then(|_| {
            link::attach(&link::Attachment {
                netns: path.clone(),
                bridge: n.bridge.clone(),
                host_ifname: host_ifname.clone(),
                ifname: "eth0".into(),
                address: ip,
                prefix: subnet.prefix,
                mac: ipam::mac_for(ip),
                gateway: Some(gw),
                link_local: Vec::new(),
            })
        });
        let sandbox = Sandbox {
            id: id.clone(),
            netns: path.clone(),
            hosts: String::new(),
            resolv_conf: netconf::resolv_conf(&host_resolv_conf(), true, &[], &[], &[]),
            network_id: n.id.clone(),
            host_ifname,
        };
        let ready = attached.map_err(Error::from).and_then(|()| {
            let hosts = netconf::hosts_file(&id[..12], Some(ip), &[], extra_hosts, Some(gw))?;
            self.sandboxes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(
                    id.clone(),
                    DnsEntry {
                        id: id.clone(),
                        name: id.clone(),
                        hostname: id.clone(),
                        endpoints: BTreeMap::from([(n.id.clone(), (ip, Vec::new()))]),
                        links: Vec::new(),
                    },
                );
            if let Some(d) = self.dns.get() {
                d.add(&id, &path)?;
            }
            Ok(hosts)
        });
        match ready {
            Ok(hosts) => Ok(Sandbox { hosts, ..sandbox }),
            Err(e) => {
                self.remove_sandbox(&sandbox);
                Err(e)
            }
        }
    }

    /// Undoes [`Wiring::sandbox`]; idempotent.
    pub fn remove_sandbox(&self, sandbox: &Sandbox) {
        if let Some(d) = self.dns.get() {
            d.remove(&sandbox.id);
        }
        self.sandboxes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&sandbox.id);
        let _ = link::detach(&sandbox.host_ifname);
        let _ = netns::remove(&sandbox.netns);
        self.networks.release(&sandbox.network_id, &sandbox.id);
    }

    /// A `network` event about a container (connect, disconnect).
    fn emit_network(&self, action: &str, network_id: &str, container: &str) {
        let Ok(n) = self.networks.find(network_id) else {
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
    pub(crate) fn started(&self, id: &str) -> Result<()> {
        let rec = self.table.get(id)?;
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

    /// Undoes everything `setup` and `started` did, from the
    /// record (so it works after a daemon restart); idempotent.
    pub(crate) fn teardown(&self, id: &str) {
        let _ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        let Ok(rec) = self.table.get(id) else { return };
        if let Some(d) = self.dns.get() {
            if rec.net.as_ref().is_some_and(|s| s.dns) {
                d.remove(id);
            }
        }
        self.ports().remove(id);
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
        self.networks.release_all(id);
        let had_net = rec.net.is_some();
        let given = |r: &Container| {
            r.networks.values().any(|ep| {
                let mut cleared = ep.clone();
                clear_runtime(&mut cleared);
                &cleared != ep
            })
        };
        if had_net || given(&rec) {
            let _ = self.table.update(id, |r| {
                r.net = None;
                for ep in r.networks.values_mut() {
                    clear_runtime(ep);
                }
            });
        }
        if had_net {
            if let Err(e) = self.sync_firewall() {
                tracing::error!(error = %e, "applying the firewall ruleset");
            }
        }
    }

    /// `docker network connect`: recorded for a stopped container, plugged
    /// in at once for a running one.
    pub fn connect(&self, key: &str, req: NetworkConnectRequest) -> Result<()> {
        let net = self.networks.find(key)?;
        let id = self.table.resolve(&req.container)?;
        let rec = self.table.get(&id)?;
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
        self.table.update(&id, |r| {
            r.networks.insert(net.name.clone(), ep.clone());
        })?;
        if let (true, Some(st)) = (rec.state.is_running(), rec.net.clone()) {
            let index = (0..)
                .find(|i| !st.links.iter().any(|l| l.ifname == format!("eth{i}")))
                .unwrap_or(0);
            let attached = self.attach_endpoint(&rec, &st.netns, &ep, index);
            let (l, done) = match attached {
                Ok(x) => x,
                Err(e) => {
                    let _ = self.table.update(&id, |r| {
                        r.networks.remove(&net.name);
                    });
                    return Err(e);
                }
            };
            let mut st = st;
            st.links.push(l);
            let add_dns = net.user_defined() && !st.dns;
            st.dns |= net.user_defined();
            self.table.update(&id, |r| {
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

    pub fn disconnect(&self, key: &str, req: NetworkDisconnectRequest) -> Result<()> {
        let net = self.networks.find(key)?;
        let id = self.table.resolve(&req.container)?;
        let rec = self.table.get(&id)?;
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
                self.networks.release(&net.id, &id);
                let user_left = {
                    let nets = self.networks.lock();
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
                self.table.update(&id, |r| r.net = Some(st.clone()))?;
            }
        }
        self.table.update(&id, |r| {
            r.networks.remove(&name);
        })?;
        self.sync_firewall()?;
        self.emit_network("disconnect", &net.id, &id);
        Ok(())
    }
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
