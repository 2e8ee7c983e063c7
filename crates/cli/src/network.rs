//! Networking on the client side: `cais network ...` (the `/networks/*`
//! endpoints), the port syntax of `run -p`/`--expose` (parsed here, before
//! any request), and how `port` and `ps` print published ports, all as
//! docker prints them.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;

use anyhow::{anyhow, bail, Result};
use cais_api::{
    EndpointIpamConfig, EndpointSettings, NetworkConnectRequest, NetworkDisconnectRequest,
};
use cais_client::http::Client;
use clap::Subcommand;
use serde_json::{json, Value};

use cais_client::opts::{filters_json, port_key};

use crate::client_cmds::{each, report};

// ---- printing published ports ----------------------------------------------

/// A port as `GET /containers/json` lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ListedPort {
    private: u16,
    proto: String,
    ip: String,
    public: Option<u16>,
}

fn listed(p: &Value) -> ListedPort {
    ListedPort {
        private: p["PrivatePort"].as_u64().unwrap_or(0) as u16,
        proto: p["Type"].as_str().unwrap_or("tcp").to_string(),
        ip: p["IP"].as_str().unwrap_or_default().to_string(),
        public: p["PublicPort"].as_u64().map(|n| n as u16),
    }
}

/// `host:port`, with brackets around an IPv6 host.
fn join_host_port(ip: &str, port: impl std::fmt::Display) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// The PORTS column of `ps`, as docker writes it: `0.0.0.0:8080->80/tcp`
/// for a published port, `80/tcp` for an exposed one; runs of consecutive
/// ports that keep their number (exposed, or published on the same host
/// port) are folded into ranges (`0.0.0.0:8000-8002->8000-8002/tcp`), and
/// ports published under another number come last.
pub fn ports_column(ports: &[Value]) -> String {
    let mut ports: Vec<ListedPort> = ports.iter().map(listed).collect();
    ports.sort();
    ports.dedup();
    // Runs, keyed by (ip, proto), in the order each key first appears.
    let mut runs: Vec<(String, String, u16, u16)> = Vec::new();
    let mut renumbered = Vec::new();
    for p in &ports {
        let ip = match p.public {
            Some(public) if public != p.private => {
                renumbered.push(format!(
                    "{}->{}/{}",
                    join_host_port(&p.ip, public),
                    p.private,
                    p.proto
                ));
                continue;
            }
            Some(_) => p.ip.clone(),
            None => String::new(),
        };
        match runs
            .iter_mut()
            .rev()
            .find(|(i, pr, _, _)| *i == ip && *pr == p.proto)
        {
            Some(run) if run.3.checked_add(1) == Some(p.private) => run.3 = p.private,
            _ => runs.push((ip, p.proto.clone(), p.private, p.private)),
        }
    }
    let mut out: Vec<String> = runs
        .into_iter()
        .map(|(ip, proto, first, last)| {
            let range = if first == last {
                first.to_string()
            } else {
                format!("{first}-{last}")
            };
            if ip.is_empty() {
                format!("{range}/{proto}")
            } else {
                format!("{}->{range}/{proto}", join_host_port(&ip, &range))
            }
        })
        .collect();
    out.extend(renumbered);
    out.join(", ")
}

/// `cais port C [PORT[/PROTO]]`: the container's published ports from
/// `NetworkSettings.Ports` (what the daemon really bound), one line each:
/// `80/tcp -> 0.0.0.0:8080`, or only `0.0.0.0:8080` for one port.
pub fn port(c: &Client, container: &str, port: Option<&str>) -> Result<i32> {
    let want = port.map(port_key).transpose()?;
    let info = c.container_inspect_value(container)?;
    let lines = port_lines(&info["NetworkSettings"]["Ports"], want.as_deref());
    if lines.is_empty() {
        if let Some(w) = want {
            bail!("No public port '{w}' published for {container}");
        }
    }
    let mut out = std::io::stdout().lock();
    for l in lines {
        let _ = writeln!(out, "{l}");
    }
    Ok(0)
}

/// The lines `cais port` prints for `NetworkSettings.Ports`, in port
/// order (numerically, then by protocol).
fn port_lines(ports: &Value, want: Option<&str>) -> Vec<String> {
    let mut keys: Vec<(&String, &Value)> = ports.as_object().into_iter().flatten().collect();
    let order = |k: &str| -> (u32, String) {
        let (n, proto) = k.split_once('/').unwrap_or((k, "tcp"));
        (n.parse().unwrap_or(u32::MAX), proto.to_string())
    };
    keys.sort_by_key(|(k, _)| order(k));
    let mut lines = Vec::new();
    for (key, bindings) in keys {
        if want.is_some_and(|w| w != key) {
            continue;
        }
        for b in bindings.as_array().into_iter().flatten() {
            let ip = match b["HostIp"].as_str().unwrap_or_default() {
                "" => "0.0.0.0",
                ip => ip,
            };
            let addr = join_host_port(ip, b["HostPort"].as_str().unwrap_or_default());
            lines.push(match want {
                Some(_) => addr,
                None => format!("{key} -> {addr}"),
            });
        }
    }
    lines
}

// ---- cais network ---------------------------------------------------------

#[derive(Debug, Subcommand)]
pub enum NetworkCmd {
    /// Create a network.
    Create {
        /// Only bridge (the default).
        #[arg(short, long, default_value = "bridge")]
        driver: String,
        /// The network's addresses, e.g. 10.5.0.0/16.
        #[arg(long)]
        subnet: Option<String>,
        /// The bridge's address in the subnet (default: the first).
        #[arg(long)]
        gateway: Option<String>,
        /// Containers get addresses from this part of the subnet.
        #[arg(long = "ip-range")]
        ip_range: Option<String>,
        /// No traffic to or from outside the network.
        #[arg(long)]
        internal: bool,
        /// Accepted for compatibility (every network is attachable).
        #[arg(long)]
        attachable: bool,
        #[arg(long)]
        label: Vec<String>,
        /// Driver options, KEY=VALUE.
        #[arg(short = 'o', long = "opt")]
        opt: Vec<String>,
        name: String,
    },
    /// List networks.
    #[command(alias = "list")]
    Ls {
        #[arg(short, long)]
        quiet: bool,
        /// KEY=VALUE (driver, id, label, name, scope, type, dangling).
        #[arg(short, long)]
        filter: Vec<String>,
        /// A Go template, or `table TEMPLATE`.
        #[arg(long)]
        format: Option<String>,
        #[arg(long = "no-trunc")]
        no_trunc: bool,
    },
    /// Show networks in detail, as JSON.
    Inspect {
        #[arg(short, long)]
        format: Option<String>,
        /// Accepted for compatibility.
        #[arg(short, long)]
        verbose: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove networks.
    #[command(alias = "remove")]
    Rm {
        /// Do not fail when a network does not exist.
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Connect a container to a network.
    Connect {
        /// A name the network's DNS answers for this container.
        #[arg(long)]
        alias: Vec<String>,
        /// The container's IPv4 address on the network.
        #[arg(long)]
        ip: Option<String>,
        /// Another container, NAME[:ALIAS].
        #[arg(long)]
        link: Vec<String>,
        network: String,
        container: String,
    },
    /// Disconnect a container from a network.
    Disconnect {
        /// Also when the container is not running or the network is gone.
        #[arg(short, long)]
        force: bool,
        network: String,
        container: String,
    },
    /// Remove every network no container uses.
    Prune {
        /// Do not ask for confirmation.
        #[arg(short, long)]
        force: bool,
        #[arg(long)]
        filter: Vec<String>,
    },
}

/// `KEY=VALUE` options (labels, driver options) as a map.
fn key_values(items: &[String]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// The body of `POST /networks/create`, checked before it is sent.
#[allow(clippy::too_many_arguments)] // the flags of one command
fn create_body(
    name: &str,
    driver: &str,
    subnet: Option<&str>,
    gateway: Option<&str>,
    ip_range: Option<&str>,
    internal: bool,
    attachable: bool,
    labels: &[String],
    opts: &[String],
) -> Result<Value> {
    if name.is_empty() {
        bail!("a network needs a name");
    }
    if subnet.is_none() && (gateway.is_some() || ip_range.is_some()) {
        bail!("--gateway and --ip-range need a --subnet");
    }
    let mut ipam = json!({"Driver": "default", "Options": {}, "Config": []});
    if let Some(s) = subnet {
        let mut cfg = json!({"Subnet": s});
        if let Some(g) = gateway {
            g.parse::<IpAddr>()
                .map_err(|_| anyhow!("invalid gateway address {g:?}"))?;
            cfg["Gateway"] = g.into();
        }
        if let Some(r) = ip_range {
            cfg["IPRange"] = r.into();
        }
        ipam["Config"] = json!([cfg]);
    }
    Ok(json!({
        "Name": name,
        "CheckDuplicate": true,
        "Driver": driver,
        "Internal": internal,
        "Attachable": attachable,
        "IPAM": ipam,
        "Options": key_values(opts),
        "Labels": key_values(labels),
    }))
}

fn short_id(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        id.to_string()
    } else {
        id.chars().take(12).collect()
    }
}

pub fn network(c: &Client, cmd: NetworkCmd) -> Result<i32> {
    match cmd {
        NetworkCmd::Create {
            driver,
            subnet,
            gateway,
            ip_range,
            internal,
            attachable,
            label,
            opt,
            name,
        } => {
            let body = create_body(
                &name,
                &driver,
                subnet.as_deref(),
                gateway.as_deref(),
                ip_range.as_deref(),
                internal,
                attachable,
                &label,
                &opt,
            )?;
            let v = c.network_create(&body)?;
            if let Some(w) = v["Warning"].as_str().filter(|w| !w.is_empty()) {
                eprintln!("WARNING: {w}");
            }
            println!("{}", v["Id"].as_str().unwrap_or_default());
            Ok(0)
        }
        NetworkCmd::Ls {
            quiet,
            filter,
            format,
            no_trunc,
        } => {
            let q: Vec<_> = if filter.is_empty() {
                Vec::new()
            } else {
                vec![("filters", filters_json(&filter)?)]
            };
            let mut list = c.network_list(&q)?;
            list.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
            if quiet {
                for n in &list {
                    println!(
                        "{}",
                        short_id(n["Id"].as_str().unwrap_or_default(), no_trunc)
                    );
                }
                return Ok(0);
            }
            let rows: Vec<_> = list
                .iter()
                .map(|n| crate::listing::network_row(n, no_trunc))
                .collect();
            crate::listing::print(
                format.as_deref(),
                crate::listing::NETWORKS_TABLE,
                &rows,
                "*network.networkContext",
                crate::listing::NETWORKS_HEADERS,
                Some(&crate::listing::label_method(
                    list.iter()
                        .map(|n| {
                            n["Labels"]
                                .as_object()
                                .into_iter()
                                .flatten()
                                .map(|(k, v)| {
                                    (k.clone(), v.as_str().unwrap_or_default().to_string())
                                })
                                .collect()
                        })
                        .collect(),
                )),
            )?;
            Ok(0)
        }
        NetworkCmd::Inspect { format, names, .. } => {
            let mut found = Vec::new();
            let mut errors = Vec::new();
            for n in &names {
                match c.network_inspect_raw(n) {
                    Ok(v) => found.push(v),
                    Err(e) => errors.push(anyhow::Error::from(e)),
                }
            }
            crate::client_cmds::print_inspected(&found, format.as_deref())?;
            for e in &errors {
                report(e, 1);
            }
            Ok(i32::from(!errors.is_empty()))
        }
        NetworkCmd::Rm { force, names } => each(&names, |n| match c.network_remove(n) {
            Err(e) if force && e.status() == Some(404) => Ok(()),
            r => r,
        }),
        NetworkCmd::Connect {
            alias,
            ip,
            link,
            network,
            container,
        } => {
            if let Some(ip) = &ip {
                ip.parse::<IpAddr>()
                    .map_err(|_| anyhow!("invalid IP address {ip:?}"))?;
            }
            let body = NetworkConnectRequest {
                container,
                endpoint_config: Some(endpoint(&alias, ip.as_deref(), &link)),
            };
            c.network_connect(&network, &body)?;
            Ok(0)
        }
        NetworkCmd::Disconnect {
            force,
            network,
            container,
        } => {
            let body = NetworkDisconnectRequest { container, force };
            c.network_disconnect(&network, &body)?;
            Ok(0)
        }
        NetworkCmd::Prune { force, filter } => crate::system::prune(
            c,
            crate::system::Kind::Networks,
            crate::system::PruneArgs {
                force,
                filter,
                all: false,
            },
        ),
    }
}

/// A container's endpoint as the client asks for it: aliases, a fixed
/// address, links.
pub fn endpoint(aliases: &[String], ip: Option<&str>, links: &[String]) -> EndpointSettings {
    EndpointSettings {
        aliases: aliases.to_vec(),
        ipam_config: ip.map(|ip| EndpointIpamConfig {
            ipv4_address: ip.to_string(),
            ..EndpointIpamConfig::default()
        }),
        links: links.to_vec(),
        ..EndpointSettings::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(private: u16, proto: &str, ip: &str, public: Option<u16>) -> Value {
        let mut v = json!({"PrivatePort": private, "Type": proto});
        if let Some(p) = public {
            v["PublicPort"] = p.into();
            v["IP"] = ip.into();
        }
        v
    }

    #[test]
    fn the_ports_column_reads_like_dockers() {
        assert_eq!(ports_column(&[]), "");
        assert_eq!(
            ports_column(&[row(80, "tcp", "0.0.0.0", Some(8080))]),
            "0.0.0.0:8080->80/tcp"
        );
        assert_eq!(ports_column(&[row(80, "tcp", "", None)]), "80/tcp");
        // Exposed runs fold; same-number publications fold per address.
        assert_eq!(
            ports_column(&[
                row(81, "tcp", "", None),
                row(80, "tcp", "", None),
                row(82, "tcp", "", None),
                row(53, "udp", "", None),
            ]),
            "53/udp, 80-82/tcp"
        );
        assert_eq!(
            ports_column(&[
                row(8000, "tcp", "0.0.0.0", Some(8000)),
                row(8001, "tcp", "0.0.0.0", Some(8001)),
                row(80, "tcp", "127.0.0.1", Some(8080)),
                row(53, "udp", "0.0.0.0", Some(5353)),
            ]),
            "0.0.0.0:8000-8001->8000-8001/tcp, 0.0.0.0:5353->53/udp, 127.0.0.1:8080->80/tcp"
        );
        assert_eq!(
            ports_column(&[row(80, "tcp", "::", Some(8080))]),
            "[::]:8080->80/tcp"
        );
    }

    #[test]
    fn port_lines_follow_network_settings() {
        let ports = json!({
            "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
            "443/tcp": null,
            "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}],
            "9/tcp": [{"HostIp": "", "HostPort": "9000"}, {"HostIp": "::", "HostPort": "9000"}],
        });
        assert_eq!(
            port_lines(&ports, None),
            [
                "9/tcp -> 0.0.0.0:9000",
                "9/tcp -> [::]:9000",
                "53/udp -> 127.0.0.1:5353",
                "80/tcp -> 0.0.0.0:8080",
            ]
        );
        assert_eq!(port_lines(&ports, Some("80/tcp")), ["0.0.0.0:8080"]);
        assert!(port_lines(&ports, Some("443/tcp")).is_empty());
        assert!(port_lines(&Value::Null, None).is_empty());
    }

    #[test]
    fn network_create_bodies_are_checked() {
        let v = create_body(
            "n1",
            "bridge",
            Some("10.5.0.0/16"),
            Some("10.5.0.1"),
            None,
            true,
            false,
            &["a=b".into()],
            &["com.docker.network.bridge.name=br5".into()],
        )
        .expect("valid");
        assert_eq!(v["IPAM"]["Config"][0]["Subnet"], "10.5.0.0/16");
        assert_eq!(v["IPAM"]["Config"][0]["Gateway"], "10.5.0.1");
        assert_eq!(v["Internal"], true);
        assert_eq!(v["Labels"]["a"], "b");
        assert_eq!(v["Options"]["com.docker.network.bridge.name"], "br5");
        let none = create_body("n", "bridge", None, None, None, false, false, &[], &[])
            .expect("no subnet");
        assert_eq!(none["IPAM"]["Config"], json!([]));
        assert!(create_body(
            "n",
            "bridge",
            None,
            Some("10.0.0.1"),
            None,
            false,
            false,
            &[],
            &[]
        )
        .is_err());
        assert!(create_body(
            "n",
            "bridge",
            Some("10.0.0.0/8"),
            Some("gw"),
            None,
            false,
            false,
            &[],
            &[]
        )
        .is_err());
    }
}
