//! What the API shows of containers: inspect, the `ps` list with its
//! filters and status texts, top, stats and changes. Reads only.

use std::fs;
use std::process::Command;

use cais_api::{ContainerInspect, ContainerSummary, NetworkSettings};

use crate::config::Config;
use crate::containers::state::{Container, State};
use crate::containers::table::Table;
use crate::error::{Error, Kind, Result};
use crate::filters::{self, Filters};
use crate::ids::now;
use crate::networks::netconf;
use cais_image::ImageStore;
use std::sync::Arc;

/// The containers as the API shows them.
pub struct Views {
    cfg: Config,
    table: Arc<Table>,
    images: Arc<ImageStore>,
}

impl Views {
    pub fn new(cfg: Config, table: Arc<Table>, images: Arc<ImageStore>) -> Views {
        Views { cfg, table, images }
    }

    /// `GET /containers/{id}/json`.
    pub fn inspect(&self, id: &str) -> Result<ContainerInspect> {
        let r = self.table.get(id)?;
        let dir = self.table.dir(id);
        Ok(ContainerInspect {
            id: r.id.clone(),
            created: r.created.clone(),
            path: r.path.clone(),
            args: r.args.clone(),
            state: r.state.to_wire(),
            image: r.image_id.clone(),
            resolv_conf_path: dir.join("resolv.conf").to_string_lossy().into_owned(),
            hostname_path: dir.join("hostname").to_string_lossy().into_owned(),
            hosts_path: dir.join("hosts").to_string_lossy().into_owned(),
            log_path: dir
                .join("container-json.log")
                .to_string_lossy()
                .into_owned(),
            name: format!("/{}", r.name),
            restart_count: r.restart_count,
            driver: "overlay2".into(),
            platform: "linux".into(),
            host_config: {
                // dockerd records its default log driver at create.
                let mut h = r.host_config.clone();
                if h.log_config.kind.is_empty() {
                    h.log_config.kind = "json-file".into();
                }
                h
            },
            mounts: r.mounts.clone(),
            config: r.config.clone(),
            network_settings: network_settings(&r),
            ..Default::default()
        })
    }

    /// `GET /containers/json`: running ones, or `all`, that pass `filters`
    /// (keys checked by the caller), newest first.
    pub fn list(&self, all: bool, filters: &Filters) -> Result<Vec<ContainerSummary>> {
        let mut out = self.table.with(|containers| -> Result<Vec<Container>> {
            // `before`/`since` name a container; the others are ordered by it.
            let created_of = |key: &str| -> Result<Option<String>> {
                let Some(v) = filters.values(key).first() else {
                    return Ok(None);
                };
                let found = containers
                    .values()
                    .find(|r| r.id.starts_with(v.as_str()) || r.name == v.trim_start_matches('/'));
                match found {
                    Some(r) => Ok(Some(r.created.clone())),
                    None => Err(Error::not_found(Kind::Container, v)),
                }
            };
            let before = created_of("before")?;
            let since = created_of("since")?;
            let mut out = Vec::new();
            for r in containers.values() {
                if (all || r.state.is_running() || filters.contains("status"))
                    && matches_filters(r, filters, before.as_deref(), since.as_deref())?
                {
                    out.push(r.clone());
                }
            }
            Ok(out)
        })?;
        out.sort_by(|a, b| b.created.cmp(&a.created));
        Ok(out
            .into_iter()
            .map(|r| ContainerSummary {
                id: r.id.clone(),
                names: vec![format!("/{}", r.name)],
                image: r.image.clone(),
                image_id: r.image_id.clone(),
                command: std::iter::once(r.path.as_str())
                    .chain(r.args.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(" "),
                created: cais_image::time::parse_rfc3339(&r.created).unwrap_or(0),
                ports: ps_ports(&r),
                labels: r.config.labels.clone(),
                state: r.state.word().into(),
                status: status_text(&r.state),
                host_config: serde_json::json!({"NetworkMode": if r.host_config.network_mode.is_empty() { "default" } else { &r.host_config.network_mode }}),
                network_settings: serde_json::json!({"Networks": r.networks}),
                mounts: r.mounts.clone(),
            })
            .collect())
    }

    /// `top`: the container's processes as ps(1) shows them.
    pub fn top(&self, id: &str, ps_args: &str) -> Result<(Vec<String>, Vec<Vec<String>>)> {
        let rec = self.table.get(id)?;
        if !rec.state.is_running() {
            return Err(Error::Conflict(format!("Container {id} is not running")));
        }
        let pids: Vec<i32> = serde_json::from_str(
            &self.cfg.run_runtime(&["ps", "--format", "json", id])?,
        )
        .map_err(|source| Error::Json {
            what: "the runtime's process list".into(),
            source,
        })?;
        let args: Vec<&str> = if ps_args.is_empty() {
            vec!["-ef"]
        } else {
            ps_args.split_whitespace().collect()
        };
        let out = Command::new("ps")
            .args(&args)
            .output()
            .map_err(Error::spawn("ps"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let header: Vec<String> = lines
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let pid_col = header
            .iter()
            .position(|h| h == "PID")
            .ok_or_else(|| Error::InvalidArgument("ps output has no PID column".into()))?;
        let mut rows = Vec::new();
        for line in lines {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields
                .get(pid_col)
                .and_then(|p| p.parse::<i32>().ok())
                .is_some_and(|p| pids.contains(&p))
            {
                // The last column (the command) may hold spaces.
                let mut row: Vec<String> = fields[..header.len() - 1]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                row.push(fields[header.len() - 1..].join(" "));
                rows.push(row);
            }
        }
        Ok((header, rows))
    }

    /// Docker-shaped stats from the container's cgroup.
    pub fn stats(&self, id: &str) -> Result<serde_json::Value> {
        let rec = self.table.get(id)?;
        let read = now();
        if !rec.state.is_running() {
            return Ok(
                serde_json::json!({"read": read, "name": format!("/{}", rec.name), "id": rec.id,
                "cpu_stats": {"cpu_usage": {"total_usage": 0}, "system_cpu_usage": 0},
                "precpu_stats": {"cpu_usage": {"total_usage": 0}}, "memory_stats": {}, "pids_stats": {}}),
            );
        }
        let path = crate::containers::settings::cgroup_path(&rec.host_config.cgroup_parent, id)
            .map_err(Error::InvalidArgument)?;
        let cg = self.cfg.cgroup(id, &path)?;
        let s = serde_json::to_value(cg.stats().map_err(|source| Error::Cgroups {
            action: "reading the stats of",
            id: id.to_string(),
            source,
        })?)
        .unwrap_or_default();
        let system = system_cpu_usage();
        let online = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let blkio: Vec<serde_json::Value> = s["blkio"]["ioServiceBytesRecursive"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(serde_json::json!({
            "read": read,
            "preread": "0001-01-01T00:00:00Z",
            "name": format!("/{}", rec.name),
            "id": rec.id,
            "num_procs": 0,
            "pids_stats": {"current": s["pids"]["current"], "limit": s["pids"]["limit"]},
            "cpu_stats": {
                "cpu_usage": {
                    "total_usage": s["cpu"]["usage"]["total"],
                    "usage_in_kernelmode": s["cpu"]["usage"]["kernel"],
                    "usage_in_usermode": s["cpu"]["usage"]["user"],
                    "percpu_usage": s["cpu"]["usage"]["percpu"],
                },
                "system_cpu_usage": system,
                "online_cpus": online,
                "throttling_data": {
                    "periods": s["cpu"]["throttling"]["periods"],
                    "throttled_periods": s["cpu"]["throttling"]["throttledPeriods"],
                    "throttled_time": s["cpu"]["throttling"]["throttledTime"],
                }
            },
            "precpu_stats": {"cpu_usage": {"total_usage": 0}, "system_cpu_usage": 0, "online_cpus": online},
            "memory_stats": {
                "usage": s["memory"]["usage"]["usage"],
                "max_usage": s["memory"]["usage"]["max"],
                "limit": s["memory"]["usage"]["limit"],
                "failcnt": s["memory"]["usage"]["failcnt"],
                "stats": s["memory"]["raw"],
            },
            "blkio_stats": {"io_service_bytes_recursive": blkio},
            "networks": self.net_stats(&rec)
        }))
    }

    /// `GET /containers/{id}/changes`: what the container changed in its
    /// image, from its overlay upper directory (0 modified, 1 added, 2 deleted).
    pub fn changes(&self, id: &str) -> Result<Vec<serde_json::Value>> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        use std::path::{Path, PathBuf};
        self.table.get(id)?;
        let m = self.images.container_mount(id)?;
        let mut out = Vec::new();
        let mut stack: Vec<PathBuf> = vec![PathBuf::new()];
        let in_lower = |rel: &Path| {
            m.lowerdirs
                .iter()
                .any(|l| std::fs::symlink_metadata(l.join(rel)).is_ok())
        };
        while let Some(rel) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(m.upperdir.join(&rel)) else {
                continue;
            };
            let mut entries: Vec<_> = entries.flatten().collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let child = rel.join(e.file_name());
                let Ok(meta) = e.metadata() else { continue };
                // An overlayfs whiteout: a 0:0 character device.
                let kind = if meta.file_type().is_char_device() && meta.rdev() == 0 {
                    2
                } else if in_lower(&child) {
                    0
                } else {
                    1
                };
                out.push(
                    serde_json::json!({"Path": format!("/{}", child.display()), "Kind": kind}),
                );
                if meta.is_dir() {
                    stack.push(child);
                }
            }
        }
        out.sort_by(|a, b| a["Path"].as_str().cmp(&b["Path"].as_str()));
        Ok(hide_mount_points(out))
    }

    /// Per-interface counters of a running container (docker stats).
    fn net_stats(&self, r: &Container) -> serde_json::Value {
        if !r.state.is_running() || r.net.is_none() {
            return serde_json::json!({});
        }
        let text =
            fs::read_to_string(format!("/proc/{}/net/dev", r.state.pid())).unwrap_or_default();
        serde_json::Value::Object(netconf::net_dev_stats(&text))
    }
}

/// `NetworkSettings` of container inspect.
fn network_settings(r: &Container) -> NetworkSettings {
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
fn ps_ports(r: &Container) -> Vec<serde_json::Value> {
    if !r.state.is_running() {
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

fn system_cpu_usage() -> u64 {
    // /proc/stat's first line in clock ticks (USER_HZ = 100), in nanoseconds.
    fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines().next().map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .take(7)
                    .filter_map(|v| v.parse::<u64>().ok())
                    .sum::<u64>()
                    * 10_000_000
            })
        })
        .unwrap_or(0)
}

/// "Up 3 minutes", "Exited (0) 2 seconds ago", as `docker ps` shows.
pub fn status_text(s: &State) -> String {
    let ago = |t: &str| {
        let then = cais_image::time::parse_rfc3339(t).unwrap_or(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        human_duration((now - then).max(0))
    };
    match s {
        State::Running(p) => {
            let health = p
                .health
                .as_ref()
                .map(|h| {
                    format!(
                        " ({})",
                        if h.status == "starting" {
                            "health: starting"
                        } else {
                            &h.status
                        }
                    )
                })
                .unwrap_or_default();
            format!("Up {}{health}", ago(&p.started_at))
        }
        State::Paused(p) => format!("Up {} (Paused)", ago(&p.started_at)),
        State::Restarting(l) => {
            format!("Restarting ({}) {} ago", l.exit_code, ago(&l.finished_at))
        }
        State::Created { .. } => "Created".into(),
        State::Removing(_) => "Removal In Progress".into(),
        State::Dead(_) => "Dead".into(),
        State::Exited(l) => format!("Exited ({}) {} ago", l.exit_code, ago(&l.finished_at)),
    }
}

fn human_duration(secs: i64) -> String {
    match secs {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "About a minute".into(),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 7200 => "About an hour".into(),
        s if s < 172_800 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86400),
    }
}

/// Whether a container passes `GET /containers/json` filters (keys already
/// checked by `Filters::parse`). `created` orders `before`/`since`.
fn matches_filters(
    r: &Container,
    f: &Filters,
    before: Option<&str>,
    since: Option<&str>,
) -> Result<bool> {
    let exited: Vec<i64> = f
        .values("exited")
        .iter()
        .map(|v| {
            v.parse()
                .map_err(|_| Error::InvalidArgument(format!("invalid filter 'exited={v}'")))
        })
        .collect::<Result<_>>()?;
    let health = r
        .state
        .health()
        .map(|h| h.status.as_str())
        .unwrap_or("none");
    let ports = |v: &str, published: bool| {
        let (port, proto) = v.split_once('/').unwrap_or((v, "tcp"));
        let key = format!("{port}/{proto}");
        if published {
            r.host_config.port_bindings.contains_key(&key)
                || r.host_config
                    .port_bindings
                    .values()
                    .flatten()
                    .any(|b| b.host_port == port)
        } else {
            r.config
                .exposed_ports
                .as_ref()
                .is_some_and(|e| e.contains_key(&key))
                || r.host_config.port_bindings.contains_key(&key)
        }
    };
    Ok(f.any("id", |v| r.id.starts_with(v))
        && f.any("name", |v| filters::name_matches(v, &format!("/{}", r.name)))
        && f.any("status", |v| r.state.word() == v)
        && f.labels_match(&r.config.labels)
        && f.any("ancestor", |v| {
            r.image == v
                || r.image.split(':').next() == Some(v)
                || r.image_id.starts_with(v)
                || r.image_id.trim_start_matches("sha256:").starts_with(v)
        })
        && (exited.is_empty()
            || (!r.state.is_running()
                && !r.state.is_restarting()
                && exited.contains(&r.state.exit_code())))
        && f.any("health", |v| v == health)
        && f.any("volume", |v| r.mounts.iter().any(|m| m.name == v || m.destination == v))
        && f.any("network", |v| {
            r.networks
                .iter()
                .any(|(name, ep)| name == v || (!v.is_empty() && ep.network_id.starts_with(v)))
        })
        && f.any("publish", |v| ports(v, true))
        && f.any("expose", |v| ports(v, false))
        && f.any("isolation", |v| v == "default")
        // No container here is a swarm task.
        && f.any("is-task", |v| v == "false" || v == "0")
        && before.is_none_or(|b| r.created.as_str() < b)
        && since.is_none_or(|s| r.created.as_str() > s))
}

/// Files and directories the engine mounts over in every container (the
/// /etc files it provides, the runtime's /proc, /dev and /sys) are created
/// in the container's layer as mount points; dockerd keeps them in an init
/// layer below it, so they are no change of the container's. They leave
/// `changes`, and so do directories changed only by holding them.
fn hide_mount_points(changes: Vec<serde_json::Value>) -> Vec<serde_json::Value> {
    const MOUNT_POINTS: [&str; 11] = [
        "/etc/hostname",
        "/etc/hosts",
        "/etc/resolv.conf",
        "/proc",
        "/sys",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/dev/console",
        "/.dockerenv",
    ];
    let path = |c: &serde_json::Value| c["Path"].as_str().unwrap_or_default().to_string();
    let kept: Vec<serde_json::Value> = changes
        .into_iter()
        .filter(|c| !MOUNT_POINTS.contains(&path(c).as_str()))
        .collect();
    // A modified (kind 0) parent of a mount point stays only when
    // something else changed below it.
    let holds_mount_point = |p: &str| MOUNT_POINTS.iter().any(|m| m.starts_with(&format!("{p}/")));
    let paths: Vec<String> = kept.iter().map(path).collect();
    kept.into_iter()
        .filter(|c| {
            let p = path(c);
            c["Kind"] != 0
                || !holds_mount_point(&p)
                || paths.iter().any(|o| o.starts_with(&format!("{p}/")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::containers::state::Change;

    #[test]
    fn status_texts_read_like_docker() {
        let s = State::created()
            .apply(Change::Started {
                pid: 1,
                started_at: now(),
                health: None,
            })
            .expect("starts");
        assert!(status_text(&s).starts_with("Up "));
        let s = s
            .apply(Change::Exited {
                exit_code: 3,
                oom_killed: false,
                finished_at: now(),
            })
            .expect("exits");
        assert!(status_text(&s).starts_with("Exited (3) "));
        assert_eq!(human_duration(59), "59 seconds");
        assert_eq!(human_duration(3 * 86400), "3 days");
    }

    #[test]
    fn changes_leave_out_the_engines_mount_points() {
        let c = |p: &str, k: i32| serde_json::json!({"Path": p, "Kind": k});
        let seen = vec![
            c("/etc", 0),
            c("/etc/hostname", 1),
            c("/etc/hosts", 1),
            c("/etc/resolv.conf", 1),
            c("/test", 1),
        ];
        assert_eq!(hide_mount_points(seen), vec![c("/test", 1)]);
        // /etc stays when something else changed in it.
        let seen = vec![c("/etc", 0), c("/etc/hosts", 1), c("/etc/motd", 1)];
        assert_eq!(
            hide_mount_points(seen),
            vec![c("/etc", 0), c("/etc/motd", 1)]
        );
        // An /etc the container made is a change of its own.
        assert_eq!(hide_mount_points(vec![c("/etc", 1)]), vec![c("/etc", 1)]);
    }
}
