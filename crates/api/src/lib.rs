//! Wire types of the Docker Engine API as cais serves it. No logic: the
//! engine fills them, clients read them. Field names follow the API's
//! PascalCase; every struct tolerates missing fields (`default`) because
//! clients of different API versions send different subsets.
//!
//! `container` holds the container request types (create, update, exec),
//! `network` the network types, `de` how request bodies are read (as
//! dockerd's Go decoding reads them: `null` is "not given"). The client that speaks the API is
//! the `cais-client` crate.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub mod container;
mod de;
pub mod network;

pub use container::*;
/// The name the network types (and older code) use for `de::nullable`.
pub(crate) use de::nullable as null_as_default;
pub use de::{field_names, from_slice};
pub use network::*;

/// The API version announced in `API-Version` and by `/version`.
pub const API_VERSION: &str = "1.47";
/// The oldest API version accepted in versioned paths.
pub const MIN_API_VERSION: &str = "1.24";

/// Whether API version `a` is older than `b` ("1.41" < "1.45"); a part
/// that is not a number counts as 0.
pub fn version_lt(a: &str, b: &str) -> bool {
    let parts = |v: &str| -> (u32, u32) {
        let (x, y) = v.split_once('.').unwrap_or((v, "0"));
        (x.parse().unwrap_or(0), y.parse().unwrap_or(0))
    };
    parts(a) < parts(b)
}

/// `{"message": ...}`, the body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub message: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Version {
    pub version: String,
    pub api_version: String,
    #[serde(rename = "MinAPIVersion")]
    pub min_api_version: String,
    pub git_commit: String,
    pub go_version: String,
    pub os: String,
    pub arch: String,
    pub kernel_version: String,
    pub build_time: String,
}

/// A container's state as `inspect` shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerState {
    /// created, running, paused, restarting, removing, exited, dead.
    pub status: String,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub dead: bool,
    pub pid: i64,
    pub exit_code: i64,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Health {
    /// starting, healthy, unhealthy.
    pub status: String,
    pub failing_streak: i64,
    pub log: Vec<HealthLog>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthLog {
    pub start: String,
    pub end: String,
    pub exit_code: i64,
    pub output: String,
}

/// A mount as `inspect` and `ps` show it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountPoint {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub source: String,
    pub destination: String,
    pub driver: String,
    pub mode: String,
    #[serde(rename = "RW")]
    pub rw: bool,
    pub propagation: String,
}

/// `GET /containers/{id}/json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerInspect {
    pub id: String,
    pub created: String,
    pub path: String,
    pub args: Vec<String>,
    pub state: ContainerState,
    pub image: String,
    pub resolv_conf_path: String,
    pub hostname_path: String,
    pub hosts_path: String,
    pub log_path: String,
    pub name: String,
    pub restart_count: i64,
    pub driver: String,
    pub platform: String,
    pub mount_label: String,
    pub process_label: String,
    pub app_armor_profile: String,
    pub host_config: HostConfig,
    pub mounts: Vec<MountPoint>,
    pub config: ContainerConfig,
    pub network_settings: NetworkSettings,
}

/// One row of `GET /containers/json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerSummary {
    pub id: String,
    pub names: Vec<String>,
    pub image: String,
    #[serde(rename = "ImageID")]
    pub image_id: String,
    pub command: String,
    pub created: i64,
    /// [`Port`] values (kept untyped for the CLI's table code).
    pub ports: Vec<serde_json::Value>,
    pub labels: BTreeMap<String, String>,
    pub state: String,
    pub status: String,
    pub host_config: serde_json::Value,
    pub network_settings: serde_json::Value,
    pub mounts: Vec<MountPoint>,
}

/// `POST /containers/{id}/wait`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WaitResponse {
    pub status_code: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<WaitError>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WaitError {
    pub message: String,
}

/// `POST /exec/{id}/start`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecStartConfig {
    pub detach: bool,
    pub tty: bool,
}

/// `GET /exec/{id}/json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecInspect {
    #[serde(rename = "ID")]
    pub id: String,
    pub running: bool,
    pub exit_code: Option<i64>,
    pub open_stdin: bool,
    pub open_stdout: bool,
    pub open_stderr: bool,
    #[serde(rename = "ContainerID")]
    pub container_id: String,
    pub pid: i64,
    pub process_config: serde_json::Value,
}

/// One row of `GET /images/json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageSummary {
    pub id: String,
    pub parent_id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub created: i64,
    pub size: i64,
    pub shared_size: i64,
    pub virtual_size: i64,
    pub labels: BTreeMap<String, String>,
    pub containers: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Volume {
    pub name: String,
    pub driver: String,
    pub mountpoint: String,
    pub created_at: String,
    pub labels: BTreeMap<String, String>,
    pub scope: String,
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeCreateRequest {
    pub name: String,
    pub driver: String,
    #[serde(deserialize_with = "null_as_default")]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeList {
    pub volumes: Vec<Volume>,
    pub warnings: Vec<String>,
}

/// One message of `GET /events`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Event {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: String,
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
    // Pre-1.22 fields some clients still read.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub id: String,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub from: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    pub attributes: BTreeMap<String, String>,
}
