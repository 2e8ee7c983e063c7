//! `cais version`, `cais info`, `cais system df|prune|events|info` and the
//! `prune` verbs of containers, images, volumes, networks and the builder:
//! the daemon's answers laid out as docker's CLI lays them out (its
//! templates, its tab writer settings, its size units).

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{anyhow, bail, Result};
use cais_client::http::Client;
use cais_client::opts;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::listing::human_size;
use crate::template::{self, tabwrite, Env, Format, Listing, Val};

/// The API version this client speaks.
const API_VERSION: &str = "1.47";

#[derive(Debug, Args)]
pub struct FormatArg {
    /// A Go template (or `json`).
    #[arg(short, long)]
    format: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SystemCmd {
    /// Show disk usage: images, containers, volumes, build cache.
    Df(DfArgs),
    /// Remove stopped containers, unused networks, dangling images and the
    /// build cache (and unused volumes with --volumes).
    Prune(SystemPruneArgs),
    /// Print the daemon's events.
    Events(crate::client_cmds::EventsArgs),
    /// Show the daemon's system-wide information.
    Info(FormatArg),
}

#[derive(Debug, Args)]
pub struct DfArgs {
    #[arg(long)]
    format: Option<String>,
    /// Per-object detail.
    #[arg(short, long)]
    verbose: bool,
}

#[derive(Debug, Args)]
pub struct SystemPruneArgs {
    /// Remove every unused image, not only dangling ones.
    #[arg(short, long)]
    all: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    force: bool,
    /// Also remove unused anonymous volumes.
    #[arg(long)]
    volumes: bool,
    #[arg(long)]
    filter: Vec<String>,
}

/// `prune` of one kind of object.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
    /// KEY=VALUE (until, label).
    #[arg(long)]
    pub filter: Vec<String>,
    /// Volumes: every unused one, not only anonymous ones. Images: every
    /// unused one, not only dangling ones. Builder: all the cache.
    #[arg(short, long)]
    pub all: bool,
}

#[derive(Debug, Subcommand)]
pub enum BuilderCmd {
    /// Remove the build cache.
    Prune(PruneArgs),
}

/// The kinds `prune` removes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Containers,
    Images,
    Volumes,
    Networks,
    BuildCache,
}

fn stdout(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

// ---- field order -------------------------------------------------------------

/// Puts an object's fields in the order of docker's typed struct (`order`;
/// fields it does not list follow), dropping `omit_empty` ones that are
/// empty: `{{json .}}` then prints what docker's re-encoding prints.
fn reorder(v: &mut Val, order: &[&str], omit_empty: &[&str]) {
    if let Val::Map(m) = v {
        m.retain(|(k, x)| {
            !(omit_empty.contains(&k.as_str()) && matches!(x, Val::Str(s) if s.is_empty())
                || omit_empty.contains(&k.as_str()) && matches!(x, Val::Bool(false) | Val::Null))
        });
        m.sort_by_key(|(k, _)| order.iter().position(|o| o == k).unwrap_or(order.len()));
    }
}

fn reorder_field(v: &mut Val, key: &str, order: &[&str], omit_empty: &[&str]) {
    if let Val::Map(m) = v {
        if let Some((_, x)) = m.iter_mut().find(|(k, _)| k == key) {
            reorder(x, order, omit_empty);
        }
    }
}

/// `types.Version`'s field order.
fn version_in_go_order(v: &mut Val) {
    reorder(
        v,
        &[
            "Platform",
            "Components",
            "Version",
            "ApiVersion",
            "MinAPIVersion",
            "GitCommit",
            "GoVersion",
            "Os",
            "Arch",
            "KernelVersion",
            "Experimental",
            "BuildTime",
        ],
        &[
            "KernelVersion",
            "Experimental",
            "BuildTime",
            "MinAPIVersion",
        ],
    );
    if let Val::Map(m) = v {
        if let Some((_, Val::List(components))) = m.iter_mut().find(|(k, _)| k == "Components") {
            for comp in components {
                reorder(comp, &["Name", "Version", "Details"], &["Details"]);
            }
        }
    }
}

/// `system.Info`'s field order (and its nested structs').
fn info_in_go_order(v: &mut Val) {
    reorder(
        v,
        &[
            "ID",
            "Containers",
            "ContainersRunning",
            "ContainersPaused",
            "ContainersStopped",
            "Images",
            "Driver",
            "DriverStatus",
            "SystemStatus",
            "Plugins",
            "MemoryLimit",
            "SwapLimit",
            "KernelMemory",
            "KernelMemoryTCP",
            "CpuCfsPeriod",
            "CpuCfsQuota",
            "CPUShares",
            "CPUSet",
            "PidsLimit",
            "IPv4Forwarding",
            "Debug",
            "NFd",
            "OomKillDisable",
            "NGoroutines",
            "SystemTime",
            "LoggingDriver",
            "CgroupDriver",
            "CgroupVersion",
            "NEventsListener",
            "KernelVersion",
            "OperatingSystem",
            "OSVersion",
            "OSType",
            "Architecture",
            "IndexServerAddress",
            "RegistryConfig",
            "NCPU",
            "MemTotal",
            "GenericResources",
            "DockerRootDir",
            "HttpProxy",
            "HttpsProxy",
            "NoProxy",
            "Name",
            "Labels",
            "ExperimentalBuild",
            "ServerVersion",
            "Runtimes",
            "DefaultRuntime",
            "Swarm",
            "LiveRestoreEnabled",
            "Isolation",
            "InitBinary",
            "ContainerdCommit",
            "RuncCommit",
            "InitCommit",
            "SecurityOptions",
            "ProductLicense",
            "DefaultAddressPools",
            "FirewallBackend",
            "CDISpecDirs",
            "Containerd",
            "Warnings",
        ],
        &[
            "SystemStatus",
            "KernelMemory",
            "KernelMemoryTCP",
            "ProductLicense",
            "DefaultAddressPools",
            "FirewallBackend",
            "Containerd",
        ],
    );
    // Fields docker 28's types no longer have.
    if let Val::Map(m) = v {
        m.retain(|(k, _)| !matches!(k.as_str(), "BridgeNfIptables" | "BridgeNfIp6tables"));
    }
    reorder_field(
        v,
        "Plugins",
        &["Volume", "Network", "Authorization", "Log"],
        &[],
    );
    for commit in ["ContainerdCommit", "RuncCommit", "InitCommit"] {
        reorder_field(v, commit, &["ID", "Expected"], &["Expected"]);
    }
    reorder_field(
        v,
        "Swarm",
        &[
            "NodeID",
            "NodeAddr",
            "LocalNodeState",
            "ControlAvailable",
            "Error",
            "RemoteManagers",
        ],
        &[],
    );
    reorder_field(
        v,
        "RegistryConfig",
        &["IndexConfigs", "InsecureRegistryCIDRs", "Mirrors"],
        &[],
    );
    if let Val::Map(m) = v {
        if let Some((_, Val::Map(reg))) = m.iter_mut().find(|(k, _)| k == "RegistryConfig") {
            reg.retain(|(k, _)| !k.starts_with("AllowNondistributableArtifacts"));
        }
    }
}

// ---- version -------------------------------------------------------------------

fn client_version() -> Value {
    json!({
        "Platform": {"Name": ""},
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": API_VERSION,
        "DefaultAPIVersion": API_VERSION,
        "GitCommit": "",
        "GoVersion": "none (cais is written in Rust)",
        "Os": std::env::consts::OS,
        "Arch": go_arch(),
        "BuildTime": "",
        "Context": "default",
    })
}

/// Go's name of this machine's architecture.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

pub fn version(c: &Client, a: FormatArg) -> Result<i32> {
    let client = client_version();
    let server = c.version_raw();
    let server_val = match &server {
        Ok(raw) => {
            let mut v = Val::parse_json(&String::from_utf8_lossy(raw))
                .map_err(|e| anyhow!("decoding the daemon's version: {e}"))?;
            version_in_go_order(&mut v);
            Some(v)
        }
        Err(_) => None,
    };
    let text = match a.format.as_deref() {
        Some(f) => {
            let f = if f == "json" { "{{json .}}" } else { f };
            let t = template::parse(&template::unescape(f))
                .map_err(|e| anyhow!("template parsing error: {e}"))?;
            let data = Val::Map(vec![
                ("Client".to_string(), Val::from(&client)),
                (
                    "Server".to_string(),
                    server_val.clone().unwrap_or(Val::Null),
                ),
            ]);
            let mut s = t
                .execute(&data, Env::default())
                .map_err(|e| anyhow!("template parsing error: {e}"))?;
            s.push('\n');
            s
        }
        None => {
            let mut s = String::from("Client:\n");
            let kv = |s: &mut String, indent: &str, k: &str, v: &str| {
                s.push_str(&format!("{indent}{k}:\t{v}\n"));
            };
            kv(&mut s, " ", "Version", env!("CARGO_PKG_VERSION"));
            kv(&mut s, " ", "API version", API_VERSION);
            kv(&mut s, " ", "Go version", "none (cais is written in Rust)");
            kv(&mut s, " ", "Git commit", "");
            kv(&mut s, " ", "Built", "");
            kv(
                &mut s,
                " ",
                "OS/Arch",
                &format!("{}/{}", std::env::consts::OS, go_arch()),
            );
            kv(&mut s, " ", "Context", "default");
            if let Some(v) = &server_val {
                s.push_str(&server_version_text(v));
            }
            s
        }
    };
    stdout(&tabwrite(&text, 20, 1));
    match server {
        Ok(_) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// The server half of docker's version template.
fn server_version_text(v: &Val) -> String {
    let get = |v: &Val, k: &str| -> String {
        match v.get(k) {
            Some(Val::Str(s)) => s.clone(),
            Some(Val::Missing) | None | Some(Val::Null) => String::new(),
            Some(other) => other.go_string(),
        }
    };
    let mut s = String::from("\nServer:");
    if let Some(name) = v
        .get("Platform")
        .and_then(|p| p.get("Name"))
        .and_then(Val::as_str)
    {
        if !name.is_empty() {
            s.push(' ');
            s.push_str(name);
        }
    }
    s.push('\n');
    let components = match v.get("Components") {
        Some(Val::List(l)) => l.clone(),
        _ => Vec::new(),
    };
    for comp in &components {
        let name = get(comp, "Name");
        s.push_str(&format!(" {name}:\n"));
        let details = comp.get("Details").cloned().unwrap_or(Val::Null);
        let d = |k: &str| get(&details, k);
        if name == "Engine" {
            s.push_str(&format!("  Version:\t{}\n", get(comp, "Version")));
            s.push_str(&format!(
                "  API version:\t{} (minimum version {})\n",
                d("ApiVersion"),
                d("MinAPIVersion")
            ));
            s.push_str(&format!("  Go version:\t{}\n", d("GoVersion")));
            s.push_str(&format!("  Git commit:\t{}\n", d("GitCommit")));
            s.push_str(&format!("  Built:\t{}\n", d("BuildTime")));
            s.push_str(&format!("  OS/Arch:\t{}/{}\n", d("Os"), d("Arch")));
            s.push_str(&format!("  Experimental:\t{}\n", d("Experimental")));
        } else {
            s.push_str(&format!("  Version:\t{}\n", get(comp, "Version")));
            if let Val::Map(m) = &details {
                let mut keys: Vec<&String> = m.iter().map(|(k, _)| k).collect();
                keys.sort();
                for k in keys {
                    s.push_str(&format!("  {k}:\t{}\n", d(k)));
                }
            }
        }
    }
    s
}

// ---- info ----------------------------------------------------------------------

pub fn info(c: &Client, a: FormatArg) -> Result<i32> {
    let raw = c.info_raw()?;
    let v: Value = serde_json::from_slice(&raw)?;
    if let Some(f) = a.format.as_deref() {
        let f = if f == "json" { "{{json .}}" } else { f };
        let t = template::parse(&template::unescape(f))
            .map_err(|e| anyhow!("template parsing error: {e}"))?;
        let mut data = Val::parse_json(&String::from_utf8_lossy(&raw))
            .map_err(|e| anyhow!("decoding the daemon's info: {e}"))?;
        info_in_go_order(&mut data);
        if let Val::Map(m) = &mut data {
            let client_info = [
                ("Debug", Val::Bool(false)),
                ("Version", Val::str(env!("CARGO_PKG_VERSION"))),
                ("DefaultAPIVersion", Val::str(API_VERSION)),
                ("GitCommit", Val::str("")),
                ("GoVersion", Val::str("none (cais is written in Rust)")),
                ("Os", Val::str(std::env::consts::OS)),
                ("Arch", Val::str(go_arch())),
                ("BuildTime", Val::str("")),
                ("Context", Val::str("default")),
                ("Plugins", Val::List(Vec::new())),
                ("Warnings", Val::Null),
            ];
            m.push((
                "ClientInfo".into(),
                Val::Map(
                    client_info
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                ),
            ));
        }
        let out = t
            .execute(&data, Env::default())
            .map_err(|e| anyhow!("template parsing error: {e}"))?;
        stdout(&format!("{out}\n"));
        return Ok(0);
    }
    let mut s = String::new();
    s.push_str("Client:\n");
    s.push_str(&format!(" Version:    {}\n", env!("CARGO_PKG_VERSION")));
    s.push_str(" Context:    default\n");
    s.push_str(" Debug Mode: false\n\n");
    s.push_str(&server_info_text(&v));
    stdout(&s);
    for w in v["Warnings"].as_array().into_iter().flatten() {
        eprintln!("{}", w.as_str().unwrap_or_default());
    }
    Ok(0)
}

/// docker's `units.BytesSize`: binary units, four significant digits.
fn bytes_size(n: f64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut size = n;
    let mut i = 0;
    while size >= 1024.0 && i < UNITS.len() - 1 {
        size /= 1024.0;
        i += 1;
    }
    format!("{}{}", template::go_float(size, 'g', Some(4)), UNITS[i])
}

/// The server half of `docker info`, field by field in its order.
fn server_info_text(v: &Value) -> String {
    let mut s = String::from("Server:\n");
    let str_of = |x: &Value| match x {
        Value::String(t) => t.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let line = |s: &mut String, k: &str, x: &Value| s.push_str(&format!(" {k}: {}\n", str_of(x)));
    let strs = |x: &Value| -> Vec<String> {
        x.as_array()
            .into_iter()
            .flatten()
            .map(|e| e.as_str().unwrap_or_default().to_string())
            .collect()
    };
    line(&mut s, "Containers", &v["Containers"]);
    s.push_str(&format!("  Running: {}\n", str_of(&v["ContainersRunning"])));
    s.push_str(&format!("  Paused: {}\n", str_of(&v["ContainersPaused"])));
    s.push_str(&format!("  Stopped: {}\n", str_of(&v["ContainersStopped"])));
    line(&mut s, "Images", &v["Images"]);
    line(&mut s, "Server Version", &v["ServerVersion"]);
    line(&mut s, "Storage Driver", &v["Driver"]);
    for pair in v["DriverStatus"].as_array().into_iter().flatten() {
        let p = strs(pair);
        if p.len() == 2 {
            s.push_str(&format!("  {}: {}\n", p[0], p[1]));
        }
    }
    line(&mut s, "Logging Driver", &v["LoggingDriver"]);
    line(&mut s, "Cgroup Driver", &v["CgroupDriver"]);
    line(&mut s, "Cgroup Version", &v["CgroupVersion"]);
    s.push_str(" Plugins:\n");
    s.push_str(&format!(
        "  Volume: {}\n",
        strs(&v["Plugins"]["Volume"]).join(" ")
    ));
    s.push_str(&format!(
        "  Network: {}\n",
        strs(&v["Plugins"]["Network"]).join(" ")
    ));
    let authz = strs(&v["Plugins"]["Authorization"]);
    if !authz.is_empty() {
        s.push_str(&format!("  Authorization: {}\n", authz.join(" ")));
    }
    s.push_str(&format!(
        "  Log: {}\n",
        strs(&v["Plugins"]["Log"]).join(" ")
    ));
    let cdi = strs(&v["CDISpecDirs"]);
    if !cdi.is_empty() {
        s.push_str(" CDI spec directories:\n");
        for d in cdi {
            s.push_str(&format!("  {d}\n"));
        }
    }
    s.push_str(&format!(
        " Swarm: {}\n",
        str_of(&v["Swarm"]["LocalNodeState"])
    ));
    let mut runtimes: Vec<&String> = v["Runtimes"]
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    runtimes.sort();
    s.push_str(&format!(
        " Runtimes: {}\n",
        runtimes
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    ));
    line(&mut s, "Default Runtime", &v["DefaultRuntime"]);
    if v["OSType"] == "linux" {
        line(&mut s, "Init Binary", &v["InitBinary"]);
        for (name, key) in [
            ("containerd", "ContainerdCommit"),
            ("runc", "RuncCommit"),
            ("init", "InitCommit"),
        ] {
            let id = str_of(&v[key]["ID"]);
            let expected = str_of(&v[key]["Expected"]);
            s.push_str(&format!(" {name} version: {id}"));
            if id != expected {
                s.push_str(&format!(" (expected: {expected})"));
            }
            s.push('\n');
        }
        let opts = strs(&v["SecurityOptions"]);
        if !opts.is_empty() {
            s.push_str(" Security Options:\n");
            for o in opts {
                let mut name = String::new();
                let mut rest = Vec::new();
                for kv in o.split(',') {
                    match kv.split_once('=') {
                        Some(("name", n)) => name = n.to_string(),
                        Some((k, val)) => rest.push((k.to_string(), val.to_string())),
                        None => name = kv.to_string(),
                    }
                }
                s.push_str(&format!("  {name}\n"));
                for (k, val) in rest {
                    if k == "profile" {
                        s.push_str(&format!("   Profile: {val}\n"));
                    }
                }
            }
        }
    }
    line(&mut s, "Kernel Version", &v["KernelVersion"]);
    line(&mut s, "Operating System", &v["OperatingSystem"]);
    line(&mut s, "OSType", &v["OSType"]);
    line(&mut s, "Architecture", &v["Architecture"]);
    line(&mut s, "CPUs", &v["NCPU"]);
    s.push_str(&format!(
        " Total Memory: {}\n",
        bytes_size(v["MemTotal"].as_f64().unwrap_or(0.0))
    ));
    line(&mut s, "Name", &v["Name"]);
    line(&mut s, "ID", &v["ID"]);
    line(&mut s, "Docker Root Dir", &v["DockerRootDir"]);
    line(&mut s, "Debug Mode", &v["Debug"]);
    if v["Debug"].as_bool() == Some(true) {
        line(&mut s, " File Descriptors", &v["NFd"]);
        line(&mut s, " Goroutines", &v["NGoroutines"]);
        line(&mut s, " System Time", &v["SystemTime"]);
        line(&mut s, " EventsListeners", &v["NEventsListener"]);
    }
    for (k, key) in [
        ("HTTP Proxy", "HttpProxy"),
        ("HTTPS Proxy", "HttpsProxy"),
        ("No Proxy", "NoProxy"),
    ] {
        if !str_of(&v[key]).is_empty() {
            line(&mut s, k, &v[key]);
        }
    }
    let labels = strs(&v["Labels"]);
    if !labels.is_empty() {
        s.push_str(" Labels:\n");
        for l in labels {
            s.push_str(&format!("  {l}\n"));
        }
    }
    line(&mut s, "Experimental", &v["ExperimentalBuild"]);
    let reg = &v["RegistryConfig"];
    let cidrs = strs(&reg["InsecureRegistryCIDRs"]);
    let indexes = reg["IndexConfigs"].as_object();
    if !cidrs.is_empty() || indexes.is_some_and(|m| !m.is_empty()) {
        s.push_str(" Insecure Registries:\n");
        for (_, ic) in indexes.into_iter().flatten() {
            if ic["Secure"].as_bool() == Some(false) {
                s.push_str(&format!("  {}\n", str_of(&ic["Name"])));
            }
        }
        for c in cidrs {
            s.push_str(&format!("  {c}\n"));
        }
    }
    let mirrors = strs(&reg["Mirrors"]);
    if !mirrors.is_empty() {
        s.push_str(" Registry Mirrors:\n");
        for m in mirrors {
            s.push_str(&format!("  {m}\n"));
        }
    }
    line(&mut s, "Live Restore Enabled", &v["LiveRestoreEnabled"]);
    s.push('\n');
    s
}

// ---- system df -----------------------------------------------------------------

const DF_TABLE: &str = "{{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}";
const DF_HEADERS: &[(&str, &str)] = &[
    ("Type", "TYPE"),
    ("TotalCount", "TOTAL"),
    ("Active", "ACTIVE"),
    ("Size", "SIZE"),
    ("Reclaimable", "RECLAIMABLE"),
];

fn with_percent(reclaimable: i64, total: i64) -> String {
    let size = human_size(reclaimable as f64, 4);
    if total > 0 {
        format!("{size} ({}%)", reclaimable * 100 / total)
    } else {
        size
    }
}

/// The four rows of `system df`, valued as docker's disk usage contexts.
fn df_rows(v: &Value) -> Vec<Val> {
    let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    let int = |x: &Value| x.as_i64().unwrap_or(0);
    let row = |kind: &str, total: usize, active: usize, size: String, reclaimable: String| {
        Val::from(&json!({
            "Active": active.to_string(),
            "Reclaimable": reclaimable,
            "Size": size,
            "TotalCount": total.to_string(),
            "Type": kind,
        }))
    };
    let images = list("Images");
    let layers = int(&v["LayersSize"]);
    let mut used = 0;
    for i in &images {
        let (virt, shared) = (int(&i["VirtualSize"]), int(&i["SharedSize"]));
        if int(&i["Containers"]) != 0 && virt != -1 && shared != -1 {
            used += virt - shared;
        }
    }
    let active_images = images.iter().filter(|i| int(&i["Containers"]) > 0).count();
    let containers = list("Containers");
    let is_active = |c: &Value| {
        matches!(
            c["State"].as_str(),
            Some("running" | "paused" | "restarting")
        )
    };
    let csize: i64 = containers.iter().map(|c| int(&c["SizeRw"])).sum();
    let creclaim: i64 = containers
        .iter()
        .filter(|c| !is_active(c))
        .map(|c| int(&c["SizeRw"]))
        .sum();
    let volumes = list("Volumes");
    let vsize: i64 = volumes
        .iter()
        .map(|x| int(&x["UsageData"]["Size"]).max(0))
        .sum();
    let vreclaim: i64 = volumes
        .iter()
        .filter(|x| int(&x["UsageData"]["RefCount"]) == 0)
        .map(|x| int(&x["UsageData"]["Size"]).max(0))
        .sum();
    let cache = list("BuildCache");
    let cache_size: i64 = cache
        .iter()
        .filter(|b| b["Shared"].as_bool() != Some(true))
        .map(|b| int(&b["Size"]))
        .sum();
    let cache_reclaim: i64 = cache
        .iter()
        .filter(|b| b["InUse"].as_bool() != Some(true) && b["Shared"].as_bool() != Some(true))
        .map(|b| int(&b["Size"]))
        .sum();
    vec![
        row(
            "Images",
            images.len(),
            active_images,
            human_size(layers as f64, 4),
            with_percent(layers - used, layers),
        ),
        row(
            "Containers",
            containers.len(),
            containers.iter().filter(|c| is_active(c)).count(),
            human_size(csize as f64, 4),
            with_percent(creclaim, csize),
        ),
        row(
            "Local Volumes",
            volumes.len(),
            volumes
                .iter()
                .filter(|x| int(&x["UsageData"]["RefCount"]) > 0)
                .count(),
            human_size(vsize as f64, 4),
            with_percent(vreclaim, vsize),
        ),
        row(
            "Build Cache",
            cache.len(),
            cache
                .iter()
                .filter(|b| b["InUse"].as_bool() == Some(true))
                .count(),
            human_size(cache_size as f64, 4),
            human_size(cache_reclaim as f64, 4),
        ),
    ]
}

/// `system df -v`: a table per kind of object, as docker lays them out.
fn df_verbose(v: &Value) -> Result<String> {
    use crate::listing::{image_rows, ps_row, IMAGES_HEADERS, PS_HEADERS};
    let table = |template: &str, rows: &[Val], headers: &[(&str, &str)]| -> Result<String> {
        Format::parse(Some(&format!("table {template}")), "").render(
            rows,
            &Listing {
                type_name: "*formatter.diskUsageContext",
                headers,
                method: None,
                exec_error: "template parsing error",
            },
        )
    };
    let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    let mut out = String::from("Images space usage:\n\n");
    let images: Vec<cais_api::ImageSummary> = serde_json::from_value(Value::Array(list("Images")))?;
    out.push_str(&table(
        "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}",
        &image_rows(&images, false),
        IMAGES_HEADERS,
    )?);
    out.push_str("\nContainers space usage:\n\n");
    let containers = list("Containers");
    let rows: Vec<Val> = containers
        .iter()
        .map(|raw| {
            let summary: cais_api::ContainerSummary =
                serde_json::from_value(raw.clone()).unwrap_or_default();
            let mut row = ps_row(&summary, false);
            // The writable layer's size alone (no "virtual" part here).
            let size = human_size(raw["SizeRw"].as_f64().unwrap_or(0.0), 3);
            if let Val::Map(m) = &mut row {
                for (k, x) in m.iter_mut() {
                    if k == "Size" {
                        *x = Val::Str(size.clone());
                    }
                }
            }
            row
        })
        .collect();
    out.push_str(&table(
        "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}",
        &rows,
        PS_HEADERS,
    )?);
    out.push_str("\nLocal Volumes space usage:\n\n");
    let rows: Vec<Val> = list("Volumes")
        .iter()
        .map(|x| {
            Val::from(&json!({
                "Name": x["Name"],
                "Links": x["UsageData"]["RefCount"].as_i64().unwrap_or(0).to_string(),
                "Size": human_size(x["UsageData"]["Size"].as_f64().unwrap_or(0.0).max(0.0), 3),
            }))
        })
        .collect();
    out.push_str(&table(
        "{{.Name}}\t{{.Links}}\t{{.Size}}",
        &rows,
        &[
            ("Name", "VOLUME NAME"),
            ("Links", "LINKS"),
            ("Size", "SIZE"),
        ],
    )?);
    let cache = list("BuildCache");
    let total: i64 = cache.iter().map(|b| b["Size"].as_i64().unwrap_or(0)).sum();
    out.push_str(&format!(
        "\nBuild cache usage: {}\n\n",
        human_size(total as f64, 4)
    ));
    let since = |k: &str, b: &Value| cais_image::time::human_age(b[k].as_str());
    let rows: Vec<Val> = cache
        .iter()
        .map(|b| {
            Val::from(&json!({
                "ID": b["ID"].as_str().unwrap_or_default().chars().take(12).collect::<String>(),
                "CacheType": b["Type"],
                "Size": human_size(b["Size"].as_f64().unwrap_or(0.0), 3),
                "CreatedSince": since("CreatedAt", b),
                "LastUsedSince": since("LastUsedAt", b),
                "UsageCount": b["UsageCount"].as_i64().unwrap_or(0).to_string(),
                "Shared": b["Shared"].as_bool().unwrap_or(false).to_string(),
            }))
        })
        .collect();
    out.push_str(&table(
        "{{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}",
        &rows,
        &[
            ("ID", "CACHE ID"),
            ("CacheType", "CACHE TYPE"),
            ("Size", "SIZE"),
            ("CreatedSince", "CREATED"),
            ("LastUsedSince", "LAST USED"),
            ("UsageCount", "USAGE"),
            ("Shared", "SHARED"),
        ],
    )?);
    Ok(out)
}

pub fn df(c: &Client, a: DfArgs) -> Result<i32> {
    let v: Value = serde_json::from_slice(&c.system_df_raw(&[])?)?;
    if a.verbose {
        if a.format.is_some() {
            bail!("--format is not supported with --verbose");
        }
        stdout(&df_verbose(&v)?);
        return Ok(0);
    }
    let rows = df_rows(&v);
    crate::listing::print(
        a.format.as_deref(),
        DF_TABLE,
        &rows,
        "*formatter.diskUsageImagesContext",
        DF_HEADERS,
        None,
    )?;
    Ok(0)
}

// ---- prune ---------------------------------------------------------------------

fn confirm(warning: &str) -> bool {
    eprint!("{warning}\nAre you sure you want to continue? [y/N] ");
    let _ = std::io::stderr().flush();
    if !std::io::stdin().is_terminal()
        && std::io::stdin()
            .lock()
            .fill_buf()
            .map(|b| b.is_empty())
            .unwrap_or(true)
    {
        eprintln!();
        return false;
    }
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes")
}

/// One prune request; its report text (docker's) and the space freed.
fn prune_one(c: &Client, kind: Kind, filters: &[String], all: bool) -> Result<(String, i64)> {
    let mut filters = filters.to_vec();
    match kind {
        Kind::Images if all => filters.push("dangling=false".into()),
        Kind::Volumes if all => filters.push("all=true".into()),
        _ => {}
    }
    let q: Vec<_> = if filters.is_empty() {
        Vec::new()
    } else {
        vec![("filters", opts::filters_json(&filters)?)]
    };
    let mut q = q;
    if kind == Kind::BuildCache && all {
        q.push(("all", "1".to_string()));
    }
    let (v, title, key) = match kind {
        Kind::Containers => (
            c.containers_prune(&q)?,
            "Deleted Containers:",
            "ContainersDeleted",
        ),
        Kind::Volumes => (c.volumes_prune(&q)?, "Deleted Volumes:", "VolumesDeleted"),
        Kind::Networks => (
            c.networks_prune(&q)?,
            "Deleted Networks:",
            "NetworksDeleted",
        ),
        Kind::Images => (c.images_prune(&q)?, "Deleted Images:", "ImagesDeleted"),
        Kind::BuildCache => (
            c.build_prune(&q)?,
            "Deleted build cache objects:",
            "CachesDeleted",
        ),
    };
    let mut out = String::new();
    let deleted = v[key].as_array().cloned().unwrap_or_default();
    if !deleted.is_empty() {
        out.push_str(title);
        out.push('\n');
        for d in &deleted {
            match d {
                Value::String(s) => out.push_str(&format!("{s}\n")),
                // Images: {"Untagged": ...} or {"Deleted": ...}.
                other => {
                    if let Some(u) = other["Untagged"].as_str() {
                        out.push_str(&format!("untagged: {u}\n"));
                    }
                    if let Some(d) = other["Deleted"].as_str() {
                        out.push_str(&format!("deleted: {d}\n"));
                    }
                }
            }
        }
    }
    Ok((out, v["SpaceReclaimed"].as_i64().unwrap_or(0)))
}

/// `container|image|volume|network|builder prune`.
pub fn prune(c: &Client, kind: Kind, a: PruneArgs) -> Result<i32> {
    let warning = match kind {
        Kind::Containers => "WARNING! This will remove all stopped containers.",
        Kind::Images if a.all => "WARNING! This will remove all images without at least one container associated to them.",
        Kind::Images => "WARNING! This will remove all dangling images.",
        Kind::Volumes if a.all => "WARNING! This will remove all local volumes not used by at least one container.",
        Kind::Volumes => "WARNING! This will remove anonymous local volumes not used by at least one container.",
        Kind::Networks => "WARNING! This will remove all custom networks not used by at least one container.",
        Kind::BuildCache => "WARNING! This will remove all dangling build cache.",
    };
    if !a.force && !confirm(warning) {
        return Ok(0);
    }
    let (out, space) = prune_one(c, kind, &a.filter, a.all)?;
    if !out.is_empty() {
        stdout(&format!("{out}\n"));
    }
    if kind != Kind::Networks {
        stdout(&format!(
            "Total reclaimed space: {}\n",
            human_size(space as f64, 4)
        ));
    }
    Ok(0)
}

pub fn system(c: &Client, cmd: SystemCmd) -> Result<i32> {
    match cmd {
        SystemCmd::Df(a) => df(c, a),
        SystemCmd::Info(a) => info(c, a),
        SystemCmd::Events(a) => crate::client_cmds::events_cmd(c, a),
        SystemCmd::Prune(a) => {
            let mut what = vec![
                "  - all stopped containers",
                "  - all networks not used by at least one container",
            ];
            if a.volumes {
                what.push("  - all anonymous volumes not used by at least one container");
            }
            what.push(if a.all {
                "  - all images without at least one container associated to them"
            } else {
                "  - all dangling images"
            });
            what.push(if a.all {
                "  - all build cache"
            } else {
                "  - unused build cache"
            });
            let warning = format!("WARNING! This will remove:\n{}\n", what.join("\n"));
            if !a.force && !confirm(&warning) {
                return Ok(0);
            }
            let mut kinds = vec![Kind::Containers, Kind::Networks];
            if a.volumes {
                kinds.push(Kind::Volumes);
            }
            kinds.push(Kind::Images);
            kinds.push(Kind::BuildCache);
            let mut total = 0;
            for k in kinds {
                let (out, space) = prune_one(c, k, &a.filter, a.all && k != Kind::Volumes)?;
                if !out.is_empty() {
                    stdout(&format!("{out}\n"));
                }
                total += space;
            }
            stdout(&format!(
                "Total reclaimed space: {}\n",
                human_size(total as f64, 4)
            ));
            Ok(0)
        }
    }
}
