//! The normalised Compose model: every short syntax turned into its long
//! form, relative paths made absolute, `environment` resolved, defaults
//! filled. Fields are declared in the order the Compose implementations
//! serialise them, so `config` prints them in that order and the
//! configuration hash ([`crate::labels::config_hash`]) is stable.
//!
//! [`service`] builds a [`Service`] from a checked YAML value; a value
//! the schema lets through but that means nothing (a bad port, a negative
//! size) is refused with the dotted path of the field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::dotenv;
use crate::yaml::join;

/// A problem in a field, by dotted path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

type R<T> = Result<T, FieldError>;

fn err<T>(path: &str, message: impl Into<String>) -> R<T> {
    Err(FieldError {
        path: path.to_string(),
        message: message.into(),
    })
}

/// Byte sizes print as strings of bytes (`"67108864"`), as Compose prints them.
fn bytes_as_string<S: serde::Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(n) => s.serialize_str(&n.to_string()),
        None => s.serialize_none(),
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Project {
    pub name: String,
    pub services: BTreeMap<String, Service>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Network>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Volume>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, FileObject>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub configs: BTreeMap<String, FileObject>,
    #[serde(flatten)]
    pub extensions: BTreeMap<String, Value>,
    /// Where relative paths start (the project directory).
    #[serde(skip)]
    pub working_dir: PathBuf,
    /// The Compose files read, in order.
    #[serde(skip)]
    pub config_files: Vec<PathBuf>,
    /// The `.env` / `--env-file` files read.
    #[serde(skip)]
    pub environment_files: Vec<PathBuf>,
    /// Services left out by the active profiles.
    #[serde(skip)]
    pub disabled: BTreeMap<String, Service>,
    /// Warnings for the user (unset variables, obsolete `version`).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Service {
    #[serde(skip)]
    pub name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_period: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_quota: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<i64>,
    pub command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<FileRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub depends_on: BTreeMap<String, Dependency>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Deploy>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_opt: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, Option<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipc: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "bytes_as_string"
    )]
    pub mem_limit: Option<i64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "bytes_as_string"
    )]
    pub mem_reservation: Option<i64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "bytes_as_string"
    )]
    pub memswap_limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Option<ServiceNetwork>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    #[serde(skip_serializing_if = "is_false")]
    pub privileged: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub read_only: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<FileRef>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "bytes_as_string"
    )]
    pub shm_size: Option<i64>,
    #[serde(skip_serializing_if = "is_false")]
    pub stdin_open: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub tty: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, Ulimit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userns_mode: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeMount>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes_from: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `x-` fields, printed by `config`, left out of the hash.
    #[serde(flatten)]
    pub extensions: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Build {
    pub context: String,
    pub dockerfile: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dockerfile_inline: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, Option<String>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cache_from: Vec<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub no_cache: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub pull: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "bytes_as_string"
    )]
    pub shm_size: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Dependency {
    pub condition: String,
    #[serde(skip_serializing_if = "is_false")]
    pub restart: bool,
    pub required: bool,
}

pub const SERVICE_STARTED: &str = "service_started";
pub const SERVICE_HEALTHY: &str = "service_healthy";
pub const SERVICE_COMPLETED: &str = "service_completed_successfully";

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Deploy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Always present in JSON, as Compose's JSON has it.
    pub resources: Resources,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<DeployRestart>,
    /// Placement has no meaning on one host; it is printed empty, as
    /// Compose's JSON prints it.
    pub placement: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Resources {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<Resource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservations: Option<Resource>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Resource {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "bytes_as_string"
    )]
    pub memory: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DeployRestart {
    pub condition: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Healthcheck {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_period: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub disable: bool,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Logging {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ServiceNetwork {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Port {
    pub mode: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    pub target: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
    pub protocol: String,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct VolumeMount {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub target: String,
    #[serde(skip_serializing_if = "is_false")]
    pub read_only: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<BindOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<TmpfsOptions>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct BindOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub propagation: Option<String>,
    pub create_host_path: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selinux: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct VolumeOptions {
    #[serde(skip_serializing_if = "is_false")]
    pub nocopy: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subpath: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TmpfsOptions {
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "bytes_as_string"
    )]
    pub size: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Ulimit {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub single: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub soft: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hard: Option<i64>,
}

/// A service's use of a secret or config.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct FileRef {
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Network {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Ipam::is_empty")]
    pub ipam: Ipam,
    #[serde(skip_serializing_if = "is_false")]
    pub external: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub internal: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub attachable: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Ipam {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<IpamPool>,
}

impl Ipam {
    fn is_empty(&self) -> bool {
        self.driver.is_none() && self.config.is_empty()
    }
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct IpamPool {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Volume {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "is_false")]
    pub external: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A top-level secret or config.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct FileObject {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub external: bool,
}

impl Service {
    /// The services this one needs first: `depends_on`, and the implicit
    /// ones of `network_mode: service:x`, `volumes_from` and `links`.
    pub fn dependencies(&self) -> Vec<String> {
        let mut deps: Vec<String> = self.depends_on.keys().cloned().collect();
        if let Some(other) = self
            .network_mode
            .as_deref()
            .and_then(|m| m.strip_prefix("service:"))
        {
            deps.push(other.to_string());
        }
        for v in &self.volumes_from {
            let name = v.split(':').next().unwrap_or_default();
            if !name.starts_with("container") {
                deps.push(name.to_string());
            }
        }
        for l in &self.links {
            deps.push(l.split(':').next().unwrap_or_default().to_string());
        }
        deps.sort();
        deps.dedup();
        deps
    }

    /// How many containers `up` runs: `scale`, else `deploy.replicas`, else 1.
    pub fn replicas(&self) -> u32 {
        self.scale
            .or(self.deploy.as_ref().and_then(|d| d.replicas))
            .unwrap_or(1)
    }

    /// The image the service runs: `image`, else the one its build makes
    /// (`PROJECT-SERVICE`).
    pub fn image_name(&self, project: &str) -> String {
        self.image
            .clone()
            .unwrap_or_else(|| format!("{project}-{}", self.name))
    }
}

// ---- scalar readers ----------------------------------------------------------

fn string(v: &Value, path: &str) -> R<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => err(path, "must be a string"),
    }
}

fn opt_string(m: &serde_json::Map<String, Value>, key: &str, path: &str) -> R<Option<String>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => string(v, &join(path, key)).map(Some),
    }
}

fn boolean(v: &Value, path: &str) -> R<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "on" | "1" => Ok(true),
            "false" | "no" | "n" | "off" | "0" | "" => Ok(false),
            _ => err(path, format!("must be a boolean, not {s:?}")),
        },
        _ => err(path, "must be a boolean"),
    }
}

fn opt_bool(m: &serde_json::Map<String, Value>, key: &str, path: &str) -> R<Option<bool>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => boolean(v, &join(path, key)).map(Some),
    }
}

fn integer(v: &Value, path: &str) -> R<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or(())
            .or_else(|_| err(path, format!("must be an integer, not {n}"))),
        Value::String(s) => s
            .trim()
            .parse()
            .or_else(|_| err(path, format!("must be an integer, not {s:?}"))),
        _ => err(path, "must be an integer"),
    }
}

fn opt_int(m: &serde_json::Map<String, Value>, key: &str, path: &str) -> R<Option<i64>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => integer(v, &join(path, key)).map(Some),
    }
}

fn number(v: &Value, path: &str) -> R<f64> {
    match v {
        Value::Number(n) => Ok(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => s
            .trim()
            .parse()
            .or_else(|_| err(path, format!("must be a number, not {s:?}"))),
        _ => err(path, "must be a number"),
    }
}

fn bytes(v: &Value, path: &str) -> R<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or(())
            .or_else(|_| err(path, "must be a whole number of bytes")),
        Value::String(s) => cais_client::opts::bytes(s).or_else(|e| err(path, format!("{e}"))),
        _ => err(path, "must be a size"),
    }
}

fn opt_bytes(m: &serde_json::Map<String, Value>, key: &str, path: &str) -> R<Option<i64>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => bytes(v, &join(path, key)).map(Some),
    }
}

/// A Go duration, printed back the way Go prints one (`1m30s`, `500ms`).
fn duration(v: &Value, path: &str) -> R<String> {
    let text = string(v, path)?;
    let d = cais_client::opts::duration(&text).or_else(|e| err(path, format!("{e}")))?;
    Ok(go_duration(d))
}

fn opt_duration(m: &serde_json::Map<String, Value>, key: &str, path: &str) -> R<Option<String>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => duration(v, &join(path, key)).map(Some),
    }
}

/// Go's `time.Duration.String()`.
pub fn go_duration(d: std::time::Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    let fraction = |value: u128, unit: u128, suffix: &str| {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            format!("{whole}{suffix}")
        } else {
            let digits = unit.to_string().len() - 1;
            let frac = format!("{rest:0digits$}");
            format!("{whole}.{}{suffix}", frac.trim_end_matches('0'))
        }
    };
    if ns < 1_000_000 {
        return fraction(ns, 1_000, "µs");
    }
    if ns < 1_000_000_000 {
        return fraction(ns, 1_000_000, "ms");
    }
    let secs_ns = ns % 60_000_000_000;
    let minutes = ns / 60_000_000_000;
    let s = fraction(secs_ns, 1_000_000_000, "s");
    if minutes == 0 {
        return s;
    }
    let (h, m) = (minutes / 60, minutes % 60);
    if h == 0 {
        format!("{m}m{s}")
    } else {
        format!("{h}h{m}m{s}")
    }
}

fn string_list(v: &Value, path: &str) -> R<Vec<String>> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, it)| string(it, &join(path, &i.to_string())))
            .collect(),
        other => Ok(vec![string(other, path)?]),
    }
}

fn opt_list(m: &serde_json::Map<String, Value>, key: &str, path: &str) -> R<Vec<String>> {
    match m.get(key) {
        None => Ok(Vec::new()),
        Some(v) => string_list(v, &join(path, key)),
    }
}

/// `list_or_dict`: `["A=1", "B"]` or `{A: 1, B: null}`. A name without a
/// value maps to `None` (callers may resolve it from the environment).
fn list_or_dict(v: &Value, path: &str) -> R<BTreeMap<String, Option<String>>> {
    let mut out = BTreeMap::new();
    match v {
        Value::Null => {}
        Value::Array(items) => {
            for (i, it) in items.iter().enumerate() {
                let s = string(it, &join(path, &i.to_string()))?;
                match s.split_once('=') {
                    Some((k, val)) => out.insert(k.to_string(), Some(val.to_string())),
                    None => out.insert(s, None),
                };
            }
        }
        Value::Object(m) => {
            for (k, val) in m {
                let val = match val {
                    Value::Null => None,
                    other => Some(string(other, &join(path, k))?),
                };
                out.insert(k.clone(), val);
            }
        }
        _ => return err(path, "must be a list or a mapping"),
    }
    Ok(out)
}

fn labels(v: Option<&Value>, path: &str) -> R<BTreeMap<String, String>> {
    Ok(match v {
        None => BTreeMap::new(),
        Some(v) => list_or_dict(v, path)?
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect(),
    })
}

/// Splits a command string as a POSIX shell would split words (quotes and
/// backslashes; no expansion).
pub fn shell_split(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(c) => cur.push(c),
                    None => cur.push('\\'),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

fn command(v: Option<&Value>, path: &str) -> R<Option<Vec<String>>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => shell_split(s).map(Some).or_else(|e| err(path, e)),
        Some(v) => string_list(v, path).map(Some),
    }
}

// ---- ports -------------------------------------------------------------------

fn port_number(s: &str, what: &str, path: &str) -> R<u16> {
    match s.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) || (n == 0 && what == "hostPort") => Ok(n as u16),
        _ => err(path, format!("invalid {what}: {s:?}")),
    }
}

fn port_range(s: &str, what: &str, path: &str) -> R<(u16, u16)> {
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port_number(a, what, path)?, port_number(b, what, path)?);
            if b < a {
                return err(path, format!("invalid {what} range: {s:?}"));
            }
            Ok((a, b))
        }
        None => {
            let n = port_number(s, what, path)?;
            Ok((n, n))
        }
    }
}

/// `[[HOST_IP:]HOST_PORT:]CONTAINER_PORT[/PROTOCOL]`, ranges included.
pub fn parse_port(spec: &str, path: &str) -> R<Vec<Port>> {
    let (rest, protocol) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.to_string()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
        return err(path, format!("invalid proto: {protocol:?} in {spec:?}"));
    }
    // An IPv6 host address is bracketed: [::1]:8080:80.
    let (host_ip, rest) = if let Some(r) = rest.strip_prefix('[') {
        let Some((ip, r)) = r.split_once("]:") else {
            return err(path, format!("invalid ip address in {spec:?}"));
        };
        (Some(ip.to_string()), r)
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        match parts.len() {
            1 | 2 => (None, rest),
            3 => (Some(parts[0].to_string()), &rest[parts[0].len() + 1..]),
            _ => return err(path, format!("invalid port {spec:?}: too many colons")),
        }
    };
    if let Some(ip) = &host_ip {
        if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
            return err(path, format!("invalid ip address: {ip:?}"));
        }
    }
    let (published, target) = match rest.split_once(':') {
        Some((h, c)) => (Some(h), c),
        None => (None, rest),
    };
    let (t0, t1) = port_range(target, "containerPort", path)?;
    let published = published.filter(|p| !p.is_empty());
    let host = published
        .map(|p| port_range(p, "hostPort", path))
        .transpose()?;
    let host_ip = host_ip.filter(|ip| !ip.is_empty());
    let mut out = Vec::new();
    for (i, target) in (t0..=t1).enumerate() {
        let published = match host {
            None => None,
            Some((h0, h1)) if t0 == t1 => Some(if h0 == h1 {
                h0.to_string()
            } else {
                format!("{h0}-{h1}")
            }),
            Some((h0, h1)) => {
                if (h1 - h0) != (t1 - t0) {
                    return err(
                        path,
                        format!(
                            "invalid ranges in {spec:?}: host and container ranges differ in size"
                        ),
                    );
                }
                Some((h0 + i as u16).to_string())
            }
        };
        out.push(Port {
            mode: "ingress".into(),
            host_ip: host_ip.clone(),
            target,
            published,
            protocol: protocol.clone(),
        });
    }
    Ok(out)
}

fn ports(v: &Value, path: &str) -> R<Vec<Port>> {
    let mut out = Vec::new();
    for (i, p) in v.as_array().into_iter().flatten().enumerate() {
        let path = join(path, &i.to_string());
        match p {
            Value::Number(_) => out.extend(parse_port(&string(p, &path)?, &path)?),
            Value::String(s) => out.extend(parse_port(s, &path)?),
            Value::Object(m) => {
                let target = match m.get("target") {
                    Some(t) => {
                        port_number(&string(t, &join(&path, "target"))?, "containerPort", &path)?
                    }
                    None => return err(&path, "target is required"),
                };
                let published = opt_string(m, "published", &path)?;
                if let Some(p) = &published {
                    port_range(p, "hostPort", &join(&path, "published"))?;
                }
                let protocol = opt_string(m, "protocol", &path)?.unwrap_or_else(|| "tcp".into());
                if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
                    return err(
                        &join(&path, "protocol"),
                        format!("invalid proto: {protocol:?}"),
                    );
                }
                out.push(Port {
                    mode: opt_string(m, "mode", &path)?.unwrap_or_else(|| "ingress".into()),
                    host_ip: opt_string(m, "host_ip", &path)?,
                    target,
                    published,
                    protocol,
                });
            }
            _ => return err(&path, "must be a number, a string or a mapping"),
        }
    }
    Ok(out)
}

// ---- volumes -----------------------------------------------------------------

fn is_path(source: &str) -> bool {
    source.starts_with('.') || source.starts_with('/') || source.starts_with('~')
}

/// A relative or `~` path made absolute against `base`.
pub fn absolute(p: &str, base: &Path) -> String {
    let expanded = if let Some(rest) =
        p.strip_prefix("~/")
            .or(if p == "~" { Some("") } else { None })
    {
        std::env::var("HOME")
            .map(|h| Path::new(&h).join(rest))
            .unwrap_or_else(|_| PathBuf::from(p))
    } else {
        base.join(p)
    };
    clean(&expanded).to_string_lossy().into_owned()
}

/// `a/./b/../c` → `a/c`, lexically.
fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// `SOURCE:TARGET[:MODE]` or `TARGET`.
pub fn parse_volume(spec: &str, base: &Path, path: &str) -> R<VolumeMount> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [t] => (None, *t, None),
        [s, t] => (Some(*s), *t, None),
        [s, t, m] => (Some(*s), *t, Some(*m)),
        _ => return err(path, format!("invalid volume specification: {spec:?}")),
    };
    if target.is_empty() || !target.starts_with('/') {
        return err(
            path,
            format!("invalid volume specification: {spec:?}: the target must be an absolute path"),
        );
    }
    if source == Some("") {
        return err(
            path,
            format!("invalid volume specification: {spec:?}: empty source"),
        );
    }
    let mut m = VolumeMount {
        target: target.to_string(),
        ..VolumeMount::default()
    };
    let mut propagation = None;
    let mut selinux = None;
    let mut nocopy = false;
    for opt in mode.into_iter().flat_map(|m| m.split(',')) {
        match opt {
            "ro" => m.read_only = true,
            "rw" => m.read_only = false,
            "z" | "Z" => selinux = Some(opt.to_string()),
            "nocopy" => nocopy = true,
            "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                propagation = Some(opt.to_string())
            }
            _ => {
                return err(
                    path,
                    format!("invalid volume specification: {spec:?}: unknown mode {opt:?}"),
                )
            }
        }
    }
    match source {
        None => {
            m.kind = "volume".into();
            m.volume = Some(VolumeOptions::default());
        }
        Some(s) if is_path(s) => {
            m.kind = "bind".into();
            m.source = Some(absolute(s, base));
            m.bind = Some(BindOptions {
                propagation,
                create_host_path: true,
                selinux,
            });
        }
        Some(s) => {
            m.kind = "volume".into();
            m.source = Some(s.to_string());
            m.volume = Some(VolumeOptions {
                nocopy,
                subpath: None,
            });
        }
    }
    Ok(m)
}

fn volume_mounts(v: &Value, base: &Path, path: &str) -> R<Vec<VolumeMount>> {
    let mut out = Vec::new();
    for (i, item) in v.as_array().into_iter().flatten().enumerate() {
        let path = join(path, &i.to_string());
        match item {
            Value::String(s) => out.push(parse_volume(s, base, &path)?),
            Value::Object(o) => {
                let kind = opt_string(o, "type", &path)?.unwrap_or_else(|| "volume".into());
                let target = opt_string(o, "target", &path)?.unwrap_or_default();
                if target.is_empty() {
                    return err(&path, "target is required");
                }
                let mut source = opt_string(o, "source", &path)?;
                let mut m = VolumeMount {
                    kind: kind.clone(),
                    target,
                    read_only: opt_bool(o, "read_only", &path)?.unwrap_or(false),
                    ..VolumeMount::default()
                };
                match kind.as_str() {
                    "bind" => {
                        let Some(s) = source.take() else {
                            return err(&path, "a bind mount needs a source");
                        };
                        source = Some(absolute(&s, base));
                        let b = o.get("bind").and_then(Value::as_object);
                        let bp = join(&path, "bind");
                        m.bind = Some(BindOptions {
                            propagation: match b {
                                Some(b) => opt_string(b, "propagation", &bp)?,
                                None => None,
                            },
                            create_host_path: match b {
                                Some(b) => opt_bool(b, "create_host_path", &bp)?.unwrap_or(true),
                                None => true,
                            },
                            selinux: match b {
                                Some(b) => opt_string(b, "selinux", &bp)?,
                                None => None,
                            },
                        });
                    }
                    "volume" => {
                        let vo = o.get("volume").and_then(Value::as_object);
                        let vp = join(&path, "volume");
                        m.volume = Some(VolumeOptions {
                            nocopy: match vo {
                                Some(v) => opt_bool(v, "nocopy", &vp)?.unwrap_or(false),
                                None => false,
                            },
                            subpath: match vo {
                                Some(v) => opt_string(v, "subpath", &vp)?,
                                None => None,
                            },
                        });
                    }
                    "tmpfs" => {
                        if source.is_some() {
                            return err(&path, "a tmpfs mount takes no source");
                        }
                        let t = o.get("tmpfs").and_then(Value::as_object);
                        let tp = join(&path, "tmpfs");
                        m.tmpfs = match t {
                            Some(t) => Some(TmpfsOptions {
                                size: opt_bytes(t, "size", &tp)?,
                                mode: opt_int(t, "mode", &tp)?.map(|m| m as u32),
                            }),
                            None => None,
                        };
                    }
                    other => {
                        return err(
                            &join(&path, "type"),
                            format!("volume type {other:?} is not supported on this host"),
                        )
                    }
                }
                m.source = source;
                out.push(m);
            }
            _ => return err(&path, "must be a string or a mapping"),
        }
    }
    Ok(out)
}

// ---- the service -------------------------------------------------------------

/// What building a service needs besides its YAML.
pub struct Context<'a> {
    /// Relative paths start here.
    pub base: &'a Path,
    /// Variables for `environment: [NAME]`, `env_file` substitution, build args.
    pub lookup: &'a dyn Fn(&str) -> Option<String>,
}

fn env_file_entries(v: &Value, path: &str) -> R<Vec<(String, bool, String)>> {
    let mut out = Vec::new();
    let items: Vec<(String, &Value)> = match v {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, it)| (join(path, &i.to_string()), it))
            .collect(),
        other => vec![(path.to_string(), other)],
    };
    for (p, it) in items {
        match it {
            Value::Object(o) => {
                let file = opt_string(o, "path", &p)?.unwrap_or_default();
                let required = opt_bool(o, "required", &p)?.unwrap_or(true);
                out.push((file, required, p));
            }
            other => out.push((string(other, &p)?, true, p)),
        }
    }
    Ok(out)
}

/// Reads a service's `env_file`s (later files win).
fn read_env_files(v: &Value, cx: &Context, path: &str) -> R<BTreeMap<String, Option<String>>> {
    let mut out = BTreeMap::new();
    for (file, required, p) in env_file_entries(v, path)? {
        let full = absolute(&file, cx.base);
        let text = match std::fs::read_to_string(&full) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => continue,
            Err(e) => return err(&p, format!("env file {full} not found: {e}")),
        };
        let pairs = dotenv::parse(&text, cx.lookup)
            .or_else(|e| err(&p, format!("{full}:{}: {}", e.line, e.message)))?;
        for (k, val) in pairs {
            out.insert(k, Some(val));
        }
    }
    Ok(out)
}

fn extra_hosts(v: &Value, path: &str) -> R<Vec<String>> {
    let mut out = Vec::new();
    match v {
        Value::Object(m) => {
            for (host, ips) in m {
                for ip in string_list(ips, &join(path, host))? {
                    out.push(format!("{host}={ip}"));
                }
            }
        }
        other => {
            for (i, entry) in string_list(other, path)?.into_iter().enumerate() {
                // `host=ip`, or the older `host:ip` (an IPv6 address has colons).
                let (host, ip) = match entry.split_once('=') {
                    Some(p) => p,
                    None => match entry.split_once(':') {
                        Some(p) => p,
                        None => {
                            return err(
                                &join(path, &i.to_string()),
                                format!("invalid extra host {entry:?}: HOST=IP"),
                            )
                        }
                    },
                };
                out.push(format!("{host}={ip}"));
            }
        }
    }
    for (i, e) in out.iter().enumerate() {
        let (host, ip) = e.split_once('=').unwrap_or((e, ""));
        let ip = ip.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || (ip != "host-gateway" && ip.parse::<std::net::IpAddr>().is_err()) {
            return err(
                &join(path, &i.to_string()),
                format!("invalid extra host {e:?}"),
            );
        }
    }
    Ok(out)
}

fn restart_policy(s: &str, path: &str) -> R<String> {
    let (name, count) = match s.split_once(':') {
        Some((n, c)) => (n, Some(c)),
        None => (s, None),
    };
    match (name, count) {
        ("no" | "always" | "unless-stopped", None) | ("on-failure", None) => Ok(s.to_string()),
        ("on-failure", Some(c)) if c.parse::<u32>().is_ok() => Ok(s.to_string()),
        _ => err(
            path,
            format!("invalid restart policy {s:?}: no, always, on-failure[:max-retries] or unless-stopped"),
        ),
    }
}

fn file_refs(v: &Value, path: &str) -> R<Vec<FileRef>> {
    let mut out = Vec::new();
    for (i, it) in v.as_array().into_iter().flatten().enumerate() {
        let p = join(path, &i.to_string());
        match it {
            Value::String(s) => out.push(FileRef {
                source: s.clone(),
                ..FileRef::default()
            }),
            Value::Object(o) => out.push(FileRef {
                source: opt_string(o, "source", &p)?.unwrap_or_default(),
                target: opt_string(o, "target", &p)?,
                uid: opt_string(o, "uid", &p)?,
                gid: opt_string(o, "gid", &p)?,
                mode: match o.get("mode") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(
                        u32::from_str_radix(s.trim_start_matches("0o"), 8)
                            .or_else(|_| err(&join(&p, "mode"), format!("invalid mode {s:?}")))?,
                    ),
                    Some(v) => Some(integer(v, &join(&p, "mode"))? as u32),
                },
            }),
            _ => return err(&p, "must be a string or a mapping"),
        }
    }
    Ok(out)
}

fn build(v: &Value, cx: &Context, path: &str) -> R<Build> {
    let mut b = Build {
        context: ".".into(),
        dockerfile: "Dockerfile".into(),
        ..Build::default()
    };
    match v {
        Value::String(s) => b.context = s.clone(),
        Value::Object(o) => {
            if let Some(c) = opt_string(o, "context", path)? {
                b.context = c;
            }
            if let Some(d) = opt_string(o, "dockerfile", path)? {
                b.dockerfile = d;
            }
            b.dockerfile_inline = opt_string(o, "dockerfile_inline", path)?;
            if let Some(a) = o.get("args") {
                b.args = list_or_dict(a, &join(path, "args"))?
                    .into_iter()
                    .map(|(k, v)| {
                        let v = v.or_else(|| (cx.lookup)(&k));
                        (k, v)
                    })
                    .collect();
            }
            b.labels = labels(o.get("labels"), &join(path, "labels"))?;
            b.cache_from = opt_list(o, "cache_from", path)?;
            b.no_cache = opt_bool(o, "no_cache", path)?.unwrap_or(false);
            b.pull = opt_bool(o, "pull", path)?.unwrap_or(false);
            if let Some(h) = o.get("extra_hosts") {
                b.extra_hosts = extra_hosts(h, &join(path, "extra_hosts"))?;
            }
            b.network = opt_string(o, "network", path)?;
            b.target = opt_string(o, "target", path)?;
            b.shm_size = opt_bytes(o, "shm_size", path)?;
            b.tags = opt_list(o, "tags", path)?;
        }
        _ => return err(path, "must be a string or a mapping"),
    }
    let remote = b.context.contains("://") || b.context.starts_with("git@");
    if !remote {
        b.context = absolute(&b.context, cx.base);
    }
    Ok(b)
}

fn healthcheck(v: &Value, path: &str) -> R<Healthcheck> {
    let Some(o) = v.as_object() else {
        return err(path, "must be a mapping");
    };
    let mut h = Healthcheck {
        timeout: opt_duration(o, "timeout", path)?,
        interval: opt_duration(o, "interval", path)?,
        retries: match o.get("retries") {
            None | Some(Value::Null) => None,
            Some(r) => {
                let n = number(r, &join(path, "retries"))?;
                if n < 0.0 || n.fract() != 0.0 {
                    return err(&join(path, "retries"), "must be a whole number");
                }
                Some(n as u64)
            }
        },
        start_period: opt_duration(o, "start_period", path)?,
        start_interval: opt_duration(o, "start_interval", path)?,
        disable: opt_bool(o, "disable", path)?.unwrap_or(false),
        test: Vec::new(),
    };
    match o.get("test") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => h.test = vec!["CMD-SHELL".into(), s.clone()],
        Some(t) => {
            h.test = string_list(t, &join(path, "test"))?;
            if !matches!(
                h.test.first().map(String::as_str),
                Some("CMD" | "CMD-SHELL" | "NONE") | None
            ) {
                return err(
                    &join(path, "test"),
                    "a list test starts with CMD, CMD-SHELL or NONE",
                );
            }
        }
    }
    if h.disable {
        h.test = vec!["NONE".into()];
    }
    Ok(h)
}

fn deploy(v: &Value, path: &str) -> R<Option<Deploy>> {
    let Some(o) = v.as_object() else {
        return Ok(None);
    };
    let mut d = Deploy {
        replicas: opt_int(o, "replicas", path)?
            .map(|r| {
                u32::try_from(r).or_else(|_| err(&join(path, "replicas"), "must not be negative"))
            })
            .transpose()?,
        labels: labels(o.get("labels"), &join(path, "labels"))?,
        ..Deploy::default()
    };
    if let Some(r) = o.get("resources").and_then(Value::as_object) {
        let rp = join(path, "resources");
        let resource = |key: &str| -> R<Option<Resource>> {
            let Some(x) = r.get(key).and_then(Value::as_object) else {
                return Ok(None);
            };
            let p = join(&rp, key);
            Ok(Some(Resource {
                cpus: match x.get("cpus") {
                    None | Some(Value::Null) => None,
                    Some(c) => Some(number(c, &join(&p, "cpus"))?),
                },
                memory: opt_bytes(x, "memory", &p)?,
                pids: opt_int(x, "pids", &p)?,
            }))
        };
        d.resources = Resources {
            limits: resource("limits")?,
            reservations: resource("reservations")?,
        };
    }
    if let Some(r) = o.get("restart_policy").and_then(Value::as_object) {
        let rp = join(path, "restart_policy");
        d.restart_policy = Some(DeployRestart {
            condition: opt_string(r, "condition", &rp)?.unwrap_or_else(|| "any".into()),
            max_attempts: opt_int(r, "max_attempts", &rp)?.map(|n| n.max(0) as u64),
        });
    }
    Ok(Some(d))
}

/// Builds the service `name` from its (merged, checked) YAML; `path` is
/// `services.NAME`.
pub fn service(name: &str, v: &Value, cx: &Context, path: &str) -> R<Service> {
    let empty = serde_json::Map::new();
    let o = v.as_object().unwrap_or(&empty);
    let p = |k: &str| join(path, k);
    let mut s = Service {
        name: name.to_string(),
        profiles: opt_list(o, "profiles", path)?,
        cap_add: opt_list(o, "cap_add", path)?,
        cap_drop: opt_list(o, "cap_drop", path)?,
        cpu_period: opt_int(o, "cpu_period", path)?,
        cpu_quota: opt_int(o, "cpu_quota", path)?,
        cpus: match o.get("cpus") {
            None | Some(Value::Null) => None,
            Some(c) => Some(number(c, &p("cpus"))?),
        },
        cpuset: opt_string(o, "cpuset", path)?,
        cpu_shares: opt_int(o, "cpu_shares", path)?,
        command: command(o.get("command"), &p("command"))?,
        configs: match o.get("configs") {
            Some(v) => file_refs(v, &p("configs"))?,
            None => Vec::new(),
        },
        container_name: opt_string(o, "container_name", path)?,
        dns: opt_list(o, "dns", path)?,
        dns_opt: opt_list(o, "dns_opt", path)?,
        dns_search: opt_list(o, "dns_search", path)?,
        domainname: opt_string(o, "domainname", path)?,
        entrypoint: command(o.get("entrypoint"), &p("entrypoint"))?,
        expose: opt_list(o, "expose", path)?,
        group_add: opt_list(o, "group_add", path)?,
        hostname: opt_string(o, "hostname", path)?,
        image: opt_string(o, "image", path)?,
        init: opt_bool(o, "init", path)?,
        ipc: opt_string(o, "ipc", path)?,
        labels: labels(o.get("labels"), &p("labels"))?,
        links: opt_list(o, "links", path)?,
        mem_limit: opt_bytes(o, "mem_limit", path)?,
        mem_reservation: opt_bytes(o, "mem_reservation", path)?,
        memswap_limit: opt_bytes(o, "memswap_limit", path)?,
        network_mode: opt_string(o, "network_mode", path)?,
        oom_score_adj: opt_int(o, "oom_score_adj", path)?,
        pid: opt_string(o, "pid", path)?,
        pids_limit: opt_int(o, "pids_limit", path)?,
        platform: opt_string(o, "platform", path)?,
        privileged: opt_bool(o, "privileged", path)?.unwrap_or(false),
        pull_policy: opt_string(o, "pull_policy", path)?,
        read_only: opt_bool(o, "read_only", path)?.unwrap_or(false),
        runtime: opt_string(o, "runtime", path)?,
        security_opt: opt_list(o, "security_opt", path)?,
        shm_size: opt_bytes(o, "shm_size", path)?,
        stdin_open: opt_bool(o, "stdin_open", path)?.unwrap_or(false),
        stop_grace_period: opt_duration(o, "stop_grace_period", path)?,
        stop_signal: opt_string(o, "stop_signal", path)?,
        tmpfs: opt_list(o, "tmpfs", path)?,
        tty: opt_bool(o, "tty", path)?.unwrap_or(false),
        user: opt_string(o, "user", path)?,
        userns_mode: opt_string(o, "userns_mode", path)?,
        volumes_from: opt_list(o, "volumes_from", path)?,
        working_dir: opt_string(o, "working_dir", path)?,
        ..Service::default()
    };
    for (i, e) in s.expose.iter().enumerate() {
        let (port, proto) = e.split_once('/').unwrap_or((e, "tcp"));
        if port_range(port, "port", "").is_err() || !matches!(proto, "tcp" | "udp" | "sctp") {
            return err(
                &join(&p("expose"), &i.to_string()),
                format!("invalid port {e:?}"),
            );
        }
    }
    if let Some(policy) = &s.pull_policy {
        let known = [
            "always",
            "never",
            "missing",
            "if_not_present",
            "build",
            "daily",
            "weekly",
        ];
        if !known.contains(&policy.as_str()) && !policy.starts_with("every_") {
            return err(&p("pull_policy"), format!("invalid pull policy {policy:?}"));
        }
    }
    if let Some(b) = o.get("build") {
        s.build = Some(build(b, cx, &p("build"))?);
    }
    if s.image.is_none() && s.build.is_none() {
        return err(path, "has neither an image nor a build context specified");
    }
    if let Some(d) = o.get("depends_on") {
        let dp = p("depends_on");
        match d {
            Value::Array(items) => {
                for (i, it) in items.iter().enumerate() {
                    let dep = string(it, &join(&dp, &i.to_string()))?;
                    s.depends_on.insert(
                        dep,
                        Dependency {
                            condition: SERVICE_STARTED.into(),
                            restart: false,
                            required: true,
                        },
                    );
                }
            }
            Value::Object(m) => {
                for (dep, spec) in m {
                    let sp = join(&dp, dep);
                    let empty = serde_json::Map::new();
                    let spec = spec.as_object().unwrap_or(&empty);
                    s.depends_on.insert(
                        dep.clone(),
                        Dependency {
                            condition: opt_string(spec, "condition", &sp)?
                                .unwrap_or_else(|| SERVICE_STARTED.into()),
                            restart: opt_bool(spec, "restart", &sp)?.unwrap_or(false),
                            required: opt_bool(spec, "required", &sp)?.unwrap_or(true),
                        },
                    );
                }
            }
            _ => return err(&dp, "must be a list or a mapping"),
        }
    }
    if let Some(d) = o.get("deploy") {
        s.deploy = deploy(d, &p("deploy"))?;
    }
    // `env_file` first, then `environment` over it; names without a value
    // come from the environment Compose runs in.
    let mut env = BTreeMap::new();
    if let Some(f) = o.get("env_file") {
        env = read_env_files(f, cx, &p("env_file"))?;
    }
    if let Some(e) = o.get("environment") {
        for (k, v) in list_or_dict(e, &p("environment"))? {
            let v = v.or_else(|| (cx.lookup)(&k));
            env.insert(k, v);
        }
    }
    s.environment = env;
    if let Some(h) = o.get("extra_hosts") {
        s.extra_hosts = extra_hosts(h, &p("extra_hosts"))?;
    }
    if let Some(h) = o.get("healthcheck") {
        s.healthcheck = Some(healthcheck(h, &p("healthcheck"))?);
    }
    if let Some(l) = o.get("logging").and_then(Value::as_object) {
        let lp = p("logging");
        s.logging = Some(Logging {
            driver: opt_string(l, "driver", &lp)?,
            options: labels(l.get("options"), &join(&lp, "options"))?,
        });
    }
    match o.get("networks") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, it) in items.iter().enumerate() {
                s.networks
                    .insert(string(it, &join(&p("networks"), &i.to_string()))?, None);
            }
        }
        Some(Value::Object(m)) => {
            for (net, spec) in m {
                let np = join(&p("networks"), net);
                let cfg = match spec.as_object() {
                    None => None,
                    Some(n) => Some(ServiceNetwork {
                        aliases: opt_list(n, "aliases", &np)?,
                        ipv4_address: opt_string(n, "ipv4_address", &np)?,
                        ipv6_address: opt_string(n, "ipv6_address", &np)?,
                        priority: opt_int(n, "priority", &np)?,
                    }),
                };
                if let Some(ip) = cfg.as_ref().and_then(|c| c.ipv4_address.as_ref()) {
                    if ip.parse::<std::net::Ipv4Addr>().is_err() {
                        return err(
                            &join(&np, "ipv4_address"),
                            format!("invalid IPv4 address {ip:?}"),
                        );
                    }
                }
                s.networks.insert(net.clone(), cfg);
            }
        }
        Some(_) => return err(&p("networks"), "must be a list or a mapping"),
    }
    if let Some(mode) = &s.network_mode {
        if !s.networks.is_empty() {
            return err(
                &p("network_mode"),
                "network_mode and networks cannot be combined",
            );
        }
        let ok = matches!(mode.as_str(), "host" | "none" | "bridge" | "default")
            || mode.starts_with("service:")
            || mode.starts_with("container:");
        if !ok {
            return err(&p("network_mode"), format!("invalid network_mode {mode:?}"));
        }
    }
    if let Some(v) = o.get("ports") {
        s.ports = ports(v, &p("ports"))?;
    }
    if let Some(r) = o.get("restart") {
        s.restart = Some(restart_policy(&string(r, &p("restart"))?, &p("restart"))?);
    }
    if let Some(v) = o.get("scale") {
        let n = integer(v, &p("scale"))?;
        s.scale = Some(u32::try_from(n).or_else(|_| err(&p("scale"), "must not be negative"))?);
    }
    if let (Some(scale), Some(replicas)) = (s.scale, s.deploy.as_ref().and_then(|d| d.replicas)) {
        if scale != replicas {
            return err(
                &p("scale"),
                format!("scale ({scale}) and deploy.replicas ({replicas}) differ"),
            );
        }
    }
    if let Some(v) = o.get("secrets") {
        s.secrets = file_refs(v, &p("secrets"))?;
    }
    if let Some(v) = o.get("sysctls") {
        s.sysctls = labels(Some(v), &p("sysctls"))?;
    }
    if let Some(u) = o.get("ulimits").and_then(Value::as_object) {
        for (k, v) in u {
            let up = join(&p("ulimits"), k);
            let limit = match v {
                Value::Object(m) => {
                    let soft = opt_int(m, "soft", &up)?;
                    let hard = opt_int(m, "hard", &up)?;
                    if let (Some(s), Some(h)) = (soft, hard) {
                        if s > h {
                            return err(&up, format!("soft limit {s} is above the hard limit {h}"));
                        }
                    }
                    Ulimit {
                        single: None,
                        soft,
                        hard,
                    }
                }
                v => Ulimit {
                    single: Some(integer(v, &up)?),
                    soft: None,
                    hard: None,
                },
            };
            s.ulimits.insert(k.clone(), limit);
        }
    }
    if let Some(v) = o.get("volumes") {
        s.volumes = volume_mounts(v, cx.base, &p("volumes"))?;
    }
    let mut targets = std::collections::BTreeSet::new();
    for (i, m) in s.volumes.iter().enumerate() {
        if !targets.insert(m.target.clone()) {
            return err(
                &join(&p("volumes"), &i.to_string()),
                format!("duplicate mount target {}", m.target),
            );
        }
    }
    for (k, v) in o {
        if k.starts_with("x-") {
            s.extensions.insert(k.clone(), v.clone());
        }
    }
    Ok(s)
}

/// `$` as `$$`, so printed values read back as the same values.
fn escape_dollars(s: String) -> String {
    s.replace('$', "$$")
}

impl Project {
    /// The model as `config` prints it: YAML, fields in the model's order
    /// (an unset `command` or `entrypoint` is left out, where JSON has null).
    pub fn to_yaml(&self) -> String {
        use crate::yaml::Ordered;
        let mut v = Ordered::of(self).map_strings(&escape_dollars);
        if let Ordered::Map(top) = &mut v {
            for (k, services) in top.iter_mut() {
                if k != "services" {
                    continue;
                }
                if let Ordered::Map(services) = services {
                    for (_, svc) in services.iter_mut() {
                        if let Ordered::Map(fields) = svc {
                            fields.retain(|(k, v)| {
                                !(matches!(k.as_str(), "command" | "entrypoint")
                                    && *v == Ordered::Null)
                            });
                            // YAML leaves out the empty parts JSON prints.
                            for (k, v) in fields.iter_mut() {
                                if let (true, Ordered::Map(deploy)) = (k == "deploy", v) {
                                    deploy.retain(|(k, v)| {
                                        !(matches!(k.as_str(), "resources" | "placement")
                                            && *v == Ordered::Map(Vec::new()))
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        crate::yaml::emit_ordered(&v)
    }

    /// The model as `config --format json` prints it: top-level keys
    /// sorted, every network with its `ipam` (empty or not).
    pub fn to_json(&self) -> String {
        use crate::yaml::Ordered;
        let mut v = Ordered::of(self).map_strings(&escape_dollars);
        if let Ordered::Map(top) = &mut v {
            top.sort_by(|a, b| a.0.cmp(&b.0));
            for (k, nets) in top.iter_mut() {
                if let (true, Ordered::Map(nets)) = (k == "networks", nets) {
                    for (_, net) in nets.iter_mut() {
                        if let Ordered::Map(fields) = net {
                            if !fields.iter().any(|(k, _)| k == "ipam") {
                                let at = fields
                                    .iter()
                                    .position(|(k, _)| {
                                        !matches!(k.as_str(), "name" | "driver" | "driver_opts")
                                    })
                                    .unwrap_or(fields.len());
                                fields.insert(at, ("ipam".into(), Ordered::Map(Vec::new())));
                            }
                        }
                    }
                }
            }
        }
        v.to_json(0)
    }

    /// Services in the order `up` starts them (dependencies first), ties by name.
    pub fn service_names(&self) -> Vec<String> {
        let all = self.services.keys().cloned().collect();
        crate::plan::levels(self, &all)
            .into_iter()
            .flatten()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn build_service(v: Value) -> R<Service> {
        let none = |_: &str| None;
        let cx = Context {
            base: Path::new("/proj"),
            lookup: &none,
        };
        service("web", &v, &cx, "services.web")
    }

    #[test]
    fn ports_short_and_long() {
        let p = |s: &str| parse_port(s, "x").expect(s);
        assert_eq!(p("80")[0].published, None);
        assert_eq!(p("8080:80")[0].published.as_deref(), Some("8080"));
        let r = p("127.0.0.1:8000-8001:80-81/udp");
        assert_eq!(r.len(), 2);
        assert_eq!((r[1].target, r[1].published.as_deref()), (81, Some("8001")));
        assert_eq!(r[1].host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(r[0].protocol, "udp");
        assert_eq!(p("8000-8010:80")[0].published.as_deref(), Some("8000-8010"));
        assert_eq!(p("[::1]:8080:80")[0].host_ip.as_deref(), Some("::1"));
        assert_eq!(p("127.0.0.1::80")[0].published, None);
        for bad in [
            "abc",
            "80/xyz",
            "70000",
            "8080:0",
            "1.2.3:80:80",
            "8000-8001:80-82",
            "a:b:c:d",
            "90-80",
        ] {
            assert!(parse_port(bad, "x").is_err(), "{bad}");
        }
    }

    #[test]
    fn volumes_short_form() {
        let v = |s: &str| parse_volume(s, Path::new("/proj"), "x");
        let bind = v("./site:/site:ro").expect("bind");
        assert_eq!(
            (bind.kind.as_str(), bind.source.as_deref(), bind.read_only),
            ("bind", Some("/proj/site"), true)
        );
        let named = v("data:/data").expect("named");
        assert_eq!(
            (named.kind.as_str(), named.source.as_deref()),
            ("volume", Some("data"))
        );
        let anon = v("/cache").expect("anonymous");
        assert_eq!((anon.kind.as_str(), anon.source), ("volume", None));
        assert_eq!(v("../up:/x").expect("up").source.as_deref(), Some("/up"));
        for bad in ["data:relative", "a:/b:bogus", ":/x", "a:/b:ro:extra"] {
            assert!(v(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_service_normalises() {
        let s = build_service(json!({
            "image": "busybox", "command": "sh -c 'echo \"hi there\"'",
            "environment": ["A=1", "B"], "ports": ["8080:80"], "depends_on": ["db"],
            "healthcheck": {"test": "true", "interval": "90s"}, "restart": "on-failure:3",
            "extra_hosts": ["h:10.0.0.1"], "networks": ["front"], "scale": "2",
            "ulimits": {"nofile": {"soft": 1, "hard": 2}}
        }))
        .expect("valid");
        assert_eq!(
            s.command,
            Some(vec!["sh".into(), "-c".into(), "echo \"hi there\"".into()])
        );
        assert_eq!(s.environment["A"].as_deref(), Some("1"));
        assert_eq!(s.environment["B"], None);
        assert_eq!(s.depends_on["db"].condition, SERVICE_STARTED);
        assert!(s.depends_on["db"].required);
        let h = s.healthcheck.clone().expect("healthcheck");
        assert_eq!(h.test, ["CMD-SHELL", "true"]);
        assert_eq!(h.interval.as_deref(), Some("1m30s"));
        assert_eq!(s.extra_hosts, ["h=10.0.0.1"]);
        assert_eq!(s.replicas(), 2);
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases = [
            (
                json!({"image": "x", "ports": ["80:abc"]}),
                "services.web.ports.0",
            ),
            (
                json!({"image": "x", "restart": "sometimes"}),
                "services.web.restart",
            ),
            (
                json!({"image": "x", "mem_limit": "12q"}),
                "services.web.mem_limit",
            ),
            (
                json!({"image": "x", "stop_grace_period": "soon"}),
                "services.web.stop_grace_period",
            ),
            (
                json!({"image": "x", "volumes": ["a:b"]}),
                "services.web.volumes.0",
            ),
            (
                json!({"image": "x", "env_file": "missing.env"}),
                "services.web.env_file",
            ),
            (
                json!({"image": "x", "scale": 2, "deploy": {"replicas": 3}}),
                "services.web.scale",
            ),
            (
                json!({"image": "x", "network_mode": "host", "networks": ["a"]}),
                "services.web.network_mode",
            ),
            (
                json!({"image": "x", "healthcheck": {"test": ["echo"]}}),
                "services.web.healthcheck.test",
            ),
            (json!({"image": "x", "init": "maybe"}), "services.web.init"),
            (json!({"command": "x"}), "services.web"),
            (
                json!({"image": "x", "extra_hosts": ["nohost"]}),
                "services.web.extra_hosts.0",
            ),
            (
                json!({"image": "x", "command": "echo 'open"}),
                "services.web.command",
            ),
        ];
        for (v, path) in cases {
            let e = build_service(v.clone()).expect_err(&v.to_string());
            assert_eq!(e.path, path, "{v}: {e:?}");
        }
    }

    #[test]
    fn go_durations() {
        use std::time::Duration;
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
    }
}
