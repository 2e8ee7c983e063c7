//! A service's container as the engine API's `POST /containers/create`
//! body: the labels Compose finds it by, the configuration, the mounts,
//! the published ports, and an endpoint per network with the service's
//! name (and its `aliases`) as DNS aliases. Fields the API crate does not
//! model (ulimits, sysctls, group_add, volumes_from, ipc, pid) are added
//! to the JSON under their API names, for daemons that honour them.

use std::collections::BTreeMap;

use cais_api::{
    ContainerConfig, CreateRequest, EndpointIpamConfig, EndpointSettings, HealthConfig, HostConfig,
    LogConfig, Mount, NetworkingConfig, PortBinding, RestartPolicy, TmpfsOptions,
};
use serde_json::{json, Value};

use crate::labels;
use crate::model::{Project, Service};

/// What the container is, besides its service.
pub struct Instance<'a> {
    pub project: &'a Project,
    pub service: &'a Service,
    /// `com.docker.compose.container-number`; `None` for a one-off (`run`).
    pub number: Option<u32>,
    pub name: String,
    /// The image's ID, for the `com.docker.compose.image` label.
    pub image_id: String,
    /// `run`'s slug, for one-off containers.
    pub slug: Option<String>,
    /// The container this one replaces, if any.
    pub replaces: Option<String>,
    /// Container IDs of the services used by `network_mode: service:x`
    /// and `volumes_from`, by service name.
    pub service_containers: &'a BTreeMap<String, String>,
}

fn nanos(d: &Option<String>) -> i64 {
    d.as_deref()
        .and_then(|d| cais_client::opts::duration(d).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The labels of a service's container.
pub fn container_labels(i: &Instance) -> BTreeMap<String, String> {
    let p = i.project;
    let mut l = i.service.labels.clone();
    l.insert(labels::PROJECT.into(), p.name.clone());
    l.insert(labels::SERVICE.into(), i.service.name.clone());
    l.insert(labels::CONFIG_HASH.into(), labels::config_hash(i.service));
    l.insert(
        labels::ONEOFF.into(),
        if i.number.is_some() { "False" } else { "True" }.into(),
    );
    if let Some(n) = i.number {
        l.insert(labels::CONTAINER_NUMBER.into(), n.to_string());
    }
    if let Some(s) = &i.slug {
        l.insert(labels::SLUG.into(), s.clone());
    }
    l.insert(
        labels::WORKING_DIR.into(),
        p.working_dir.display().to_string(),
    );
    l.insert(
        labels::CONFIG_FILES.into(),
        p.config_files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(","),
    );
    if !p.environment_files.is_empty() {
        l.insert(
            labels::ENVIRONMENT_FILE.into(),
            p.environment_files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    l.insert(labels::DEPENDS_ON.into(), labels::depends_on(i.service));
    l.insert(labels::IMAGE.into(), i.image_id.clone());
    l.insert(labels::VERSION.into(), labels::COMPOSE_VERSION.into());
    if let Some(r) = &i.replaces {
        l.insert(labels::REPLACE.into(), r.clone());
    }
    l
}

/// The create body.
pub fn request(i: &Instance) -> Value {
    let s = i.service;
    let p = i.project;
    let mut exposed = BTreeMap::new();
    let mut bindings: BTreeMap<String, Vec<PortBinding>> = BTreeMap::new();
    for port in &s.ports {
        let key = format!("{}/{}", port.target, port.protocol);
        exposed.insert(key.clone(), json!({}));
        if port.published.is_some() || port.host_ip.is_some() {
            bindings.entry(key).or_default().push(PortBinding {
                host_ip: port.host_ip.clone().unwrap_or_default(),
                host_port: port.published.clone().unwrap_or_default(),
            });
        } else {
            // A bare container port is published on a free host port.
            bindings
                .entry(key)
                .or_default()
                .push(PortBinding::default());
        }
    }
    for e in &s.expose {
        let key = if e.contains('/') {
            e.clone()
        } else {
            format!("{e}/tcp")
        };
        exposed.insert(key, json!({}));
    }
    let healthcheck = s.healthcheck.as_ref().map(|h| HealthConfig {
        test: (!h.test.is_empty()).then(|| h.test.clone()),
        interval: nanos(&h.interval),
        timeout: nanos(&h.timeout),
        start_period: nanos(&h.start_period),
        retries: h.retries.unwrap_or(0) as i64,
        ..Default::default()
    });
    let config = ContainerConfig {
        hostname: s.hostname.clone().unwrap_or_default(),
        domainname: s.domainname.clone().unwrap_or_default(),
        user: s.user.clone().unwrap_or_default(),
        attach_stdout: true,
        attach_stderr: true,
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        tty: s.tty,
        open_stdin: s.stdin_open,
        env: s
            .environment
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect(),
        cmd: s.command.clone(),
        healthcheck,
        image: s.image_name(&p.name),
        working_dir: s.working_dir.clone().unwrap_or_default(),
        entrypoint: s.entrypoint.clone(),
        labels: container_labels(i),
        stop_signal: s.stop_signal.clone(),
        stop_timeout: s
            .stop_grace_period
            .as_ref()
            .map(|_| nanos(&s.stop_grace_period) / 1_000_000_000),
        ..ContainerConfig::default()
    };
    let mut mounts = Vec::new();
    for v in &s.volumes {
        let source = match (v.kind.as_str(), &v.source) {
            ("volume", Some(src)) => p
                .volumes
                .get(src)
                .map(|vol| vol.name.clone())
                .unwrap_or_else(|| src.clone()),
            (_, Some(src)) => src.clone(),
            (_, None) => String::new(),
        };
        mounts.push(Mount {
            kind: v.kind.clone(),
            source,
            target: v.target.clone(),
            read_only: v.read_only,
            tmpfs_options: v.tmpfs.as_ref().map(|t| TmpfsOptions {
                size_bytes: t.size.unwrap_or(0),
                mode: t.mode.unwrap_or(0),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    // File-based secrets and configs are bind mounts, read-only.
    for (refs, defined, default_dir) in [
        (&s.secrets, &p.secrets, "/run/secrets/"),
        (&s.configs, &p.configs, "/"),
    ] {
        for r in refs {
            let Some(file) = defined.get(&r.source).and_then(|d| d.file.clone()) else {
                continue;
            };
            let target = r
                .target
                .clone()
                .map(|t| {
                    if t.starts_with('/') {
                        t
                    } else {
                        format!("{default_dir}{t}")
                    }
                })
                .unwrap_or_else(|| format!("{default_dir}{}", r.source));
            mounts.push(Mount {
                kind: "bind".into(),
                source: file,
                target,
                read_only: true,
                ..Default::default()
            });
        }
    }
    let network_mode = match s.network_mode.as_deref() {
        Some(m) if m.starts_with("service:") => {
            let other = &m["service:".len()..];
            format!(
                "container:{}",
                i.service_containers.get(other).cloned().unwrap_or_default()
            )
        }
        Some(m) => m.to_string(),
        None => s
            .networks
            .keys()
            .next()
            .and_then(|k| p.networks.get(k))
            .map(|n| n.name.clone())
            .unwrap_or_else(|| "default".into()),
    };
    let restart = s.restart.clone().unwrap_or_default();
    let (rname, rcount) = restart.split_once(':').unwrap_or((&restart, "0"));
    let limits = s
        .deploy
        .as_ref()
        .and_then(|d| d.resources.limits.clone())
        .unwrap_or_default();
    let mut tmpfs = BTreeMap::new();
    for t in &s.tmpfs {
        let (path, opts) = t.split_once(':').unwrap_or((t, ""));
        tmpfs.insert(path.to_string(), opts.to_string());
    }
    let host = HostConfig {
        network_mode,
        port_bindings: bindings,
        restart_policy: RestartPolicy {
            name: rname.to_string(),
            maximum_retry_count: rcount.parse().unwrap_or(0),
        },
        mounts,
        cap_add: s.cap_add.clone(),
        cap_drop: s.cap_drop.clone(),
        init: s.init,
        privileged: s.privileged,
        readonly_rootfs: s.read_only,
        security_opt: s.security_opt.clone(),
        tmpfs,
        memory: limits.memory.or(s.mem_limit).unwrap_or(0),
        memory_reservation: s.mem_reservation.unwrap_or(0),
        memory_swap: s.memswap_limit.unwrap_or(0),
        nano_cpus: limits
            .cpus
            .or(s.cpus)
            .map(|c| (c * 1e9) as i64)
            .unwrap_or(0),
        cpu_shares: s.cpu_shares.unwrap_or(0),
        cpu_quota: s.cpu_quota.unwrap_or(0),
        cpu_period: s.cpu_period.unwrap_or(0),
        cpuset_cpus: s.cpuset.clone().unwrap_or_default(),
        pids_limit: limits.pids.or(s.pids_limit),
        shm_size: s.shm_size.unwrap_or(0),
        log_config: s
            .logging
            .as_ref()
            .map(|l| LogConfig {
                kind: l.driver.clone().unwrap_or_default(),
                config: l.options.clone(),
            })
            .unwrap_or_default(),
        extra_hosts: s
            .extra_hosts
            .iter()
            .map(|h| h.replacen('=', ":", 1))
            .collect(),
        dns: s.dns.clone(),
        dns_search: s.dns_search.clone(),
        dns_options: s.dns_opt.clone(),
        links: s.links.clone(),
        oom_score_adj: s.oom_score_adj.unwrap_or(0),
        ..HostConfig::default()
    };
    let mut endpoints = BTreeMap::new();
    if s.network_mode.is_none() {
        for (key, cfg) in &s.networks {
            let Some(net) = p.networks.get(key) else {
                continue;
            };
            // The container's name, then (not for one-off containers) the
            // service's name and its aliases.
            let mut aliases = vec![i.name.clone()];
            if i.number.is_some() {
                aliases.push(s.name.clone());
            }
            let mut e = EndpointSettings::default();
            if let (Some(c), Some(_)) = (cfg, i.number) {
                aliases.extend(c.aliases.iter().cloned());
            }
            if let Some(c) = cfg {
                if c.ipv4_address.is_some() || c.ipv6_address.is_some() {
                    e.ipam_config = Some(EndpointIpamConfig {
                        ipv4_address: c.ipv4_address.clone().unwrap_or_default(),
                        ipv6_address: c.ipv6_address.clone().unwrap_or_default(),
                        ..Default::default()
                    });
                }
            }
            e.aliases = aliases;
            endpoints.insert(net.name.clone(), e);
        }
    }
    let req = CreateRequest {
        config,
        host_config: host,
        networking_config: (!endpoints.is_empty()).then_some(NetworkingConfig {
            endpoints_config: endpoints,
        }),
    };
    let mut body = serde_json::to_value(&req).expect("a create request always serialises");
    let hc = &mut body["HostConfig"];
    if !s.ulimits.is_empty() {
        hc["Ulimits"] = s
            .ulimits
            .iter()
            .map(|(name, u)| {
                let soft = u.single.or(u.soft).unwrap_or(0);
                let hard = u.single.or(u.hard).unwrap_or(soft);
                json!({"Name": name, "Soft": soft, "Hard": hard})
            })
            .collect();
    }
    if !s.sysctls.is_empty() {
        hc["Sysctls"] = json!(s.sysctls);
    }
    if !s.group_add.is_empty() {
        hc["GroupAdd"] = json!(s.group_add);
    }
    if let Some(ipc) = &s.ipc {
        hc["IpcMode"] = json!(ipc);
    }
    if let Some(pid) = &s.pid {
        hc["PidMode"] = json!(pid);
    }
    if let Some(userns) = &s.userns_mode {
        hc["UsernsMode"] = json!(userns);
    }
    if !s.volumes_from.is_empty() {
        hc["VolumesFrom"] = s
            .volumes_from
            .iter()
            .map(|v| {
                let (name, mode) = v.split_once(':').unwrap_or((v, ""));
                let target = match name.strip_prefix("container:") {
                    Some(c) => c.to_string(),
                    None => i.service_containers.get(name).cloned().unwrap_or_default(),
                };
                Value::String(if mode.is_empty() {
                    target
                } else {
                    format!("{target}:{mode}")
                })
            })
            .collect();
    }
    body
}
