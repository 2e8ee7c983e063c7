//! Container request types: the body of `POST /containers/create`
//! (`ContainerConfig`, `HostConfig`, the networking part in `network`),
//! of `POST /containers/{id}/update` (`ContainerUpdate`) and of `POST
//! /containers/{id}/exec` (`ExecConfig`), with the types inside them.
//!
//! Every field of the API's schema (moby's `api/swagger.yaml`, v28) is
//! here, so nothing a client sends is dropped unread; how the engine
//! handles each one is its own table. Every field reads `null` as its
//! empty value (see `de`). Serialized, the types give the shape `inspect`
//! shows, leaving out what dockerd leaves out when empty.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::de::{nullable, nullable_list, nullable_map, str_slice, str_slice_list};
use crate::network::NetworkingConfig;

fn is_zero(v: &i64) -> bool {
    *v == 0
}
fn is_false(v: &bool) -> bool {
    !*v
}

/// A health check (`HEALTHCHECK` / `--health-cmd`); durations in nanoseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthConfig {
    /// `["NONE"]`, `["CMD", args...]` or `["CMD-SHELL", command]`; empty
    /// inherits the image's.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "str_slice"
    )]
    pub test: Option<Vec<String>>,
    #[serde(skip_serializing_if = "is_zero", deserialize_with = "nullable")]
    pub interval: i64,
    #[serde(skip_serializing_if = "is_zero", deserialize_with = "nullable")]
    pub timeout: i64,
    #[serde(skip_serializing_if = "is_zero", deserialize_with = "nullable")]
    pub start_period: i64,
    /// The interval while the start period lasts.
    #[serde(skip_serializing_if = "is_zero", deserialize_with = "nullable")]
    pub start_interval: i64,
    #[serde(skip_serializing_if = "is_zero", deserialize_with = "nullable")]
    pub retries: i64,
}

/// The container's configuration (the part that is portable between
/// hosts); also the `config` of an image.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerConfig {
    #[serde(deserialize_with = "nullable")]
    pub hostname: String,
    #[serde(deserialize_with = "nullable")]
    pub domainname: String,
    #[serde(deserialize_with = "nullable")]
    pub user: String,
    #[serde(deserialize_with = "nullable")]
    pub attach_stdin: bool,
    #[serde(deserialize_with = "nullable")]
    pub attach_stdout: bool,
    #[serde(deserialize_with = "nullable")]
    pub attach_stderr: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(deserialize_with = "nullable")]
    pub tty: bool,
    #[serde(deserialize_with = "nullable")]
    pub open_stdin: bool,
    #[serde(deserialize_with = "nullable")]
    pub stdin_once: bool,
    /// `KEY=VALUE`; a bare `KEY` unsets the image's variable.
    #[serde(deserialize_with = "nullable_list")]
    pub env: Vec<String>,
    #[serde(deserialize_with = "str_slice")]
    pub cmd: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    /// Windows only: the command line is already escaped.
    #[serde(skip_serializing_if = "is_false", deserialize_with = "nullable")]
    pub args_escaped: bool,
    #[serde(deserialize_with = "nullable")]
    pub image: String,
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(deserialize_with = "nullable")]
    pub working_dir: String,
    #[serde(deserialize_with = "str_slice")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "is_false", deserialize_with = "nullable")]
    pub network_disabled: bool,
    /// The MAC address of the first network's endpoint (before API 1.44;
    /// newer clients put it in the endpoint settings).
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub mac_address: String,
    /// `ONBUILD` instructions of an image (kept, as metadata).
    pub on_build: Option<Vec<String>>,
    #[serde(deserialize_with = "nullable_map")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    /// `SHELL` of an image (kept, as metadata).
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "str_slice"
    )]
    pub shell: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    /// "", "no", "always", "unless-stopped", "on-failure".
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    #[serde(deserialize_with = "nullable")]
    pub maximum_retry_count: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortBinding {
    #[serde(deserialize_with = "nullable")]
    pub host_ip: String,
    #[serde(deserialize_with = "nullable")]
    pub host_port: String,
}

/// `--mount` / `Mounts` in HostConfig.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Mount {
    /// "bind", "volume", "tmpfs", "image", "npipe" or "cluster".
    #[serde(rename = "Type", deserialize_with = "nullable")]
    pub kind: String,
    #[serde(deserialize_with = "nullable")]
    pub source: String,
    #[serde(deserialize_with = "nullable")]
    pub target: String,
    #[serde(deserialize_with = "nullable")]
    pub read_only: bool,
    /// macOS only ("default", "consistent", "cached", "delegated").
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub consistency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind_options: Option<BindOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_options: Option<VolumeOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_options: Option<ImageOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs_options: Option<TmpfsOptions>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct BindOptions {
    /// private, rprivate, shared, rshared, slave, rslave.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub propagation: String,
    #[serde(skip_serializing_if = "is_false", deserialize_with = "nullable")]
    pub non_recursive: bool,
    #[serde(skip_serializing_if = "is_false", deserialize_with = "nullable")]
    pub create_mountpoint: bool,
    #[serde(skip_serializing_if = "is_false", deserialize_with = "nullable")]
    pub read_only_non_recursive: bool,
    #[serde(skip_serializing_if = "is_false", deserialize_with = "nullable")]
    pub read_only_force_recursive: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeOptions {
    #[serde(skip_serializing_if = "is_false", deserialize_with = "nullable")]
    pub no_copy: bool,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "nullable_map"
    )]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_config: Option<Driver>,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub subpath: String,
}

/// A named driver and its options (volume drivers).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Driver {
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "nullable_map"
    )]
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageOptions {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub subpath: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct TmpfsOptions {
    #[serde(deserialize_with = "nullable")]
    pub size_bytes: i64,
    #[serde(deserialize_with = "nullable")]
    pub mode: u32,
    /// Extra mount options, each `[name]` or `[name, value]`.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable_list"
    )]
    pub options: Vec<Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct LogConfig {
    #[serde(rename = "Type", deserialize_with = "nullable")]
    pub kind: String,
    #[serde(deserialize_with = "nullable_map")]
    pub config: BTreeMap<String, String>,
}

/// A block device's weight (`--blkio-weight-device PATH:WEIGHT`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct WeightDevice {
    #[serde(deserialize_with = "nullable")]
    pub path: String,
    #[serde(deserialize_with = "nullable")]
    pub weight: u16,
}

/// A block device's rate limit (`--device-read-bps PATH:RATE`, ...).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ThrottleDevice {
    #[serde(deserialize_with = "nullable")]
    pub path: String,
    #[serde(deserialize_with = "nullable")]
    pub rate: u64,
}

/// A host device made visible in the container (`--device`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeviceMapping {
    #[serde(deserialize_with = "nullable")]
    pub path_on_host: String,
    #[serde(deserialize_with = "nullable")]
    pub path_in_container: String,
    /// Some of "rwm".
    #[serde(deserialize_with = "nullable")]
    pub cgroup_permissions: String,
}

/// A request for devices from a device driver (`--gpus`, CDI names).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeviceRequest {
    #[serde(deserialize_with = "nullable")]
    pub driver: String,
    /// -1 for all.
    #[serde(deserialize_with = "nullable")]
    pub count: i64,
    #[serde(rename = "DeviceIDs", deserialize_with = "nullable_list")]
    pub device_ids: Vec<String>,
    /// Alternatives (OR) of capability sets (AND), e.g. `[["gpu"]]`.
    #[serde(deserialize_with = "nullable_list")]
    pub capabilities: Vec<Vec<String>>,
    #[serde(deserialize_with = "nullable_map")]
    pub options: BTreeMap<String, String>,
}

/// A resource limit of the container's processes (`--ulimit`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ulimit {
    /// `nofile`, `nproc`, ... (`RLIMIT_` + the name in capitals).
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    #[serde(deserialize_with = "nullable")]
    pub soft: i64,
    #[serde(deserialize_with = "nullable")]
    pub hard: i64,
}

/// Declares a struct with the given fields followed by the API's
/// `Resources` (what both `HostConfig` and an update carry), so the
/// resource fields are written once and read flat, as the API sends them.
macro_rules! with_resources {
    (
        $(#[$meta:meta])*
        pub struct $name:ident { $($fields:tt)* }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $($fields)*
            #[serde(deserialize_with = "nullable")]
            pub cpu_shares: i64,
            #[serde(deserialize_with = "nullable")]
            pub memory: i64,
            #[serde(deserialize_with = "nullable")]
            pub nano_cpus: i64,
            #[serde(deserialize_with = "nullable")]
            pub cgroup_parent: String,
            #[serde(deserialize_with = "nullable")]
            pub blkio_weight: u16,
            #[serde(deserialize_with = "nullable_list")]
            pub blkio_weight_device: Vec<WeightDevice>,
            #[serde(deserialize_with = "nullable_list")]
            pub blkio_device_read_bps: Vec<ThrottleDevice>,
            #[serde(deserialize_with = "nullable_list")]
            pub blkio_device_write_bps: Vec<ThrottleDevice>,
            #[serde(rename = "BlkioDeviceReadIOps", deserialize_with = "nullable_list")]
            pub blkio_device_read_iops: Vec<ThrottleDevice>,
            #[serde(rename = "BlkioDeviceWriteIOps", deserialize_with = "nullable_list")]
            pub blkio_device_write_iops: Vec<ThrottleDevice>,
            #[serde(deserialize_with = "nullable")]
            pub cpu_period: i64,
            #[serde(deserialize_with = "nullable")]
            pub cpu_quota: i64,
            #[serde(deserialize_with = "nullable")]
            pub cpu_realtime_period: i64,
            #[serde(deserialize_with = "nullable")]
            pub cpu_realtime_runtime: i64,
            #[serde(deserialize_with = "nullable")]
            pub cpuset_cpus: String,
            #[serde(deserialize_with = "nullable")]
            pub cpuset_mems: String,
            #[serde(deserialize_with = "nullable_list")]
            pub devices: Vec<DeviceMapping>,
            #[serde(deserialize_with = "nullable_list")]
            pub device_cgroup_rules: Vec<String>,
            #[serde(deserialize_with = "nullable_list")]
            pub device_requests: Vec<DeviceRequest>,
            /// Deprecated by the kernel (5.4); still sent by old clients.
            #[serde(skip_serializing_if = "is_zero", deserialize_with = "nullable")]
            pub kernel_memory: i64,
            #[serde(rename = "KernelMemoryTCP", skip_serializing_if = "is_zero", deserialize_with = "nullable")]
            pub kernel_memory_tcp: i64,
            #[serde(deserialize_with = "nullable")]
            pub memory_reservation: i64,
            /// Memory plus swap; -1 for unlimited swap.
            #[serde(deserialize_with = "nullable")]
            pub memory_swap: i64,
            pub memory_swappiness: Option<i64>,
            pub oom_kill_disable: Option<bool>,
            /// 0 or -1 for unlimited; `None` leaves it as it is.
            pub pids_limit: Option<i64>,
            #[serde(deserialize_with = "nullable_list")]
            pub ulimits: Vec<Ulimit>,
            /// Windows only.
            #[serde(deserialize_with = "nullable")]
            pub cpu_count: i64,
            /// Windows only.
            #[serde(deserialize_with = "nullable")]
            pub cpu_percent: i64,
            /// Windows only.
            #[serde(rename = "IOMaximumIOps", deserialize_with = "nullable")]
            pub io_maximum_iops: u64,
            /// Windows only.
            #[serde(rename = "IOMaximumBandwidth", deserialize_with = "nullable")]
            pub io_maximum_bandwidth: u64,
        }
    };
}

with_resources! {
    /// Host-specific configuration of a container.
    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct HostConfig {
        /// `SRC:DEST[:OPTIONS]`, SRC a host path or a volume name.
        #[serde(deserialize_with = "nullable_list")]
        pub binds: Vec<String>,
        /// Written by the client (`--cidfile`), not the daemon.
        #[serde(rename = "ContainerIDFile", deserialize_with = "nullable")]
        pub container_id_file: String,
        #[serde(deserialize_with = "nullable")]
        pub log_config: LogConfig,
        /// "", "default", "bridge", "host", "none", "container:<id>" or a
        /// user network's name or id.
        #[serde(deserialize_with = "nullable")]
        pub network_mode: String,
        /// "80/tcp" → bindings; an empty `HostPort` picks a free port, a
        /// range "8000-8010" the first free one of it.
        #[serde(deserialize_with = "nullable_map")]
        pub port_bindings: BTreeMap<String, Vec<PortBinding>>,
        #[serde(deserialize_with = "nullable")]
        pub restart_policy: RestartPolicy,
        #[serde(deserialize_with = "nullable")]
        pub auto_remove: bool,
        #[serde(deserialize_with = "nullable")]
        pub volume_driver: String,
        /// `CONTAINER[:ro|:rw]`.
        #[serde(deserialize_with = "nullable_list")]
        pub volumes_from: Vec<String>,
        /// Initial terminal size: [height, width].
        #[serde(deserialize_with = "nullable")]
        pub console_size: [u64; 2],
        #[serde(skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "nullable_map")]
        pub annotations: BTreeMap<String, String>,
        #[serde(deserialize_with = "str_slice_list")]
        pub cap_add: Vec<String>,
        #[serde(deserialize_with = "str_slice_list")]
        pub cap_drop: Vec<String>,
        /// "", "private" or "host".
        #[serde(deserialize_with = "nullable")]
        pub cgroupns_mode: String,
        #[serde(deserialize_with = "nullable_list")]
        pub dns: Vec<String>,
        #[serde(deserialize_with = "nullable_list")]
        pub dns_options: Vec<String>,
        #[serde(deserialize_with = "nullable_list")]
        pub dns_search: Vec<String>,
        /// `HOST:IP`.
        #[serde(deserialize_with = "nullable_list")]
        pub extra_hosts: Vec<String>,
        /// Group names or numbers the process also gets.
        #[serde(deserialize_with = "nullable_list")]
        pub group_add: Vec<String>,
        /// "", "none", "private", "shareable", "host" or "container:<id>".
        #[serde(deserialize_with = "nullable")]
        pub ipc_mode: String,
        /// The cgroup namespace of another container ("container:<id>").
        #[serde(deserialize_with = "nullable")]
        pub cgroup: String,
        /// `--link name:alias` (default bridge only).
        #[serde(deserialize_with = "nullable_list")]
        pub links: Vec<String>,
        #[serde(deserialize_with = "nullable")]
        pub oom_score_adj: i64,
        /// "", "host" or "container:<id>".
        #[serde(deserialize_with = "nullable")]
        pub pid_mode: String,
        #[serde(deserialize_with = "nullable")]
        pub privileged: bool,
        #[serde(deserialize_with = "nullable")]
        pub publish_all_ports: bool,
        #[serde(deserialize_with = "nullable")]
        pub readonly_rootfs: bool,
        #[serde(deserialize_with = "nullable_list")]
        pub security_opt: Vec<String>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "nullable_map")]
        pub storage_opt: BTreeMap<String, String>,
        /// Mount point → tmpfs options.
        #[serde(skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "nullable_map")]
        pub tmpfs: BTreeMap<String, String>,
        /// "" or "host".
        #[serde(rename = "UTSMode", deserialize_with = "nullable")]
        pub uts_mode: String,
        /// "" or "host".
        #[serde(deserialize_with = "nullable")]
        pub userns_mode: String,
        #[serde(deserialize_with = "nullable")]
        pub shm_size: i64,
        #[serde(skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "nullable_map")]
        pub sysctls: BTreeMap<String, String>,
        #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
        pub runtime: String,
        /// Windows isolation; "" or "default" on Linux.
        #[serde(deserialize_with = "nullable")]
        pub isolation: String,
        #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable_list")]
        pub mounts: Vec<Mount>,
        /// Replaces the default masked paths (an empty list masks none).
        pub masked_paths: Option<Vec<String>>,
        /// Replaces the default read-only paths.
        pub readonly_paths: Option<Vec<String>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub init: Option<bool>,
    }
}

with_resources! {
    /// The body of `POST /containers/{id}/update`: new resources and
    /// restart policy.
    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct ContainerUpdate {
        #[serde(deserialize_with = "nullable")]
        pub restart_policy: RestartPolicy,
        /// Not part of `Resources` in the schema, but sent by clients.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub init: Option<bool>,
    }
}

/// The body of `POST /containers/create`: the config's fields with
/// `HostConfig` and `NetworkingConfig` beside them.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateRequest {
    #[serde(flatten)]
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub networking_config: Option<NetworkingConfig>,
}

/// Read by hand rather than derived with `flatten`: a flattened struct is
/// read from a buffer that no longer knows its field names, so the
/// config's fields would not match in any case (`crate::de::from_slice`).
impl<'de> Deserialize<'de> for CreateRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut m = Option::<serde_json::Map<String, serde_json::Value>>::deserialize(d)?
            .unwrap_or_default();
        let mut take = |name: &str| {
            let key = m
                .keys()
                .find(|k| *k == name)
                .cloned()
                .or_else(|| m.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned());
            key.and_then(|k| m.remove(&k))
                .unwrap_or(serde_json::Value::Null)
        };
        let host_config = take("HostConfig");
        let networking_config = take("NetworkingConfig");
        let go = crate::de::GoValue;
        Ok(CreateRequest {
            host_config: Option::<HostConfig>::deserialize(go(host_config))
                .map_err(D::Error::custom)?
                .unwrap_or_default(),
            networking_config: Option::<NetworkingConfig>::deserialize(go(networking_config))
                .map_err(D::Error::custom)?,
            config: ContainerConfig::deserialize(go(serde_json::Value::Object(m)))
                .map_err(D::Error::custom)?,
        })
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateResponse {
    pub id: String,
    pub warnings: Vec<String>,
}

/// `POST /containers/{id}/update`'s answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UpdateResponse {
    #[serde(deserialize_with = "nullable_list")]
    pub warnings: Vec<String>,
}

/// `POST /containers/{id}/exec`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecConfig {
    #[serde(deserialize_with = "nullable")]
    pub attach_stdin: bool,
    #[serde(deserialize_with = "nullable")]
    pub attach_stdout: bool,
    #[serde(deserialize_with = "nullable")]
    pub attach_stderr: bool,
    /// Initial terminal size: [height, width].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub console_size: Option<[u64; 2]>,
    /// The key sequence that detaches the client (`ctrl-p,ctrl-q`).
    #[serde(deserialize_with = "nullable")]
    pub detach_keys: String,
    #[serde(deserialize_with = "nullable")]
    pub tty: bool,
    #[serde(deserialize_with = "nullable_list")]
    pub env: Vec<String>,
    #[serde(deserialize_with = "str_slice_list")]
    pub cmd: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub privileged: bool,
    #[serde(deserialize_with = "nullable")]
    pub user: String,
    #[serde(deserialize_with = "nullable")]
    pub working_dir: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_docker_cli_create_body_parses() {
        let body = r#"{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":true,
            "AttachStderr":true,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":["echo","hi"],
            "Image":"busybox","Volumes":{},"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":{},
            "HostConfig":{"Binds":null,"ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},"NetworkMode":"default",
            "PortBindings":{"80/tcp":[{"HostIp":"","HostPort":"8080"}]},"RestartPolicy":{"Name":"no","MaximumRetryCount":0},
            "AutoRemove":true,"Mounts":null,"Memory":0,"PidsLimit":null,"ConsoleSize":[40,120],
            "Ulimits":[{"Name":"nofile","Hard":1024,"Soft":512}],"CapAdd":null,"CgroupnsMode":"","Isolation":""},
            "NetworkingConfig":{"EndpointsConfig":{}}}"#;
        let req: CreateRequest = serde_json::from_str(body).expect("parses");
        assert_eq!(
            req.config.cmd.as_deref(),
            Some(&["echo".to_string(), "hi".to_string()][..])
        );
        assert!(req.config.env.is_empty());
        assert!(req.host_config.auto_remove);
        assert_eq!(req.host_config.port_bindings["80/tcp"][0].host_port, "8080");
        assert_eq!(req.host_config.pids_limit, None);
        assert_eq!(req.host_config.console_size, [40, 120]);
        assert_eq!(
            req.host_config.ulimits,
            [Ulimit {
                name: "nofile".into(),
                soft: 512,
                hard: 1024
            }]
        );
    }

    #[test]
    fn resources_read_flat_in_both_bodies() {
        let body = r#"{"Memory":104857600,"CpuShares":512,"BlkioWeight":300,"PidsLimit":20,
            "RestartPolicy":{"Name":"always"},"BlkioDeviceReadIOps":[{"Path":"/dev/vda","Rate":100}]}"#;
        let h: HostConfig = serde_json::from_str(body).expect("host config");
        let u: ContainerUpdate = serde_json::from_str(body).expect("update");
        for (memory, shares, weight, pids, policy, iops) in [
            (
                h.memory,
                h.cpu_shares,
                h.blkio_weight,
                h.pids_limit,
                &h.restart_policy.name,
                &h.blkio_device_read_iops,
            ),
            (
                u.memory,
                u.cpu_shares,
                u.blkio_weight,
                u.pids_limit,
                &u.restart_policy.name,
                &u.blkio_device_read_iops,
            ),
        ] {
            assert_eq!(
                (memory, shares, weight, pids),
                (104857600, 512, 300, Some(20))
            );
            assert_eq!(policy, "always");
            assert_eq!(iops[0].rate, 100);
        }
    }

    #[test]
    fn inspect_leaves_out_what_dockerd_leaves_out() {
        let v = serde_json::to_value(HostConfig::default()).expect("serializes");
        for absent in [
            "Init",
            "Runtime",
            "Sysctls",
            "Mounts",
            "KernelMemory",
            "Annotations",
        ] {
            assert!(v.get(absent).is_none(), "{absent} is omitted when empty");
        }
        for present in [
            "Binds",
            "GroupAdd",
            "Ulimits",
            "MaskedPaths",
            "PidsLimit",
            "ConsoleSize",
        ] {
            assert!(v.get(present).is_some(), "{present} is always shown");
        }
        let c = serde_json::to_value(ContainerConfig::default()).expect("serializes");
        assert!(c["Cmd"].is_null() && c["Entrypoint"].is_null() && c["OnBuild"].is_null());
        assert!(c.get("Shell").is_none() && c.get("MacAddress").is_none());
    }

    #[test]
    fn exec_bodies_parse_with_nulls() {
        let e: ExecConfig = serde_json::from_str(
            r#"{"User":null,"Privileged":null,"Tty":null,"ConsoleSize":null,"AttachStdin":false,
                "AttachStdout":true,"AttachStderr":true,"DetachKeys":"ctrl-x","Env":["A=1"],
                "WorkingDir":null,"Cmd":"true"}"#,
        )
        .expect("parses");
        assert_eq!(e.cmd, ["true"]);
        assert_eq!(e.detach_keys, "ctrl-x");
        assert_eq!(e.console_size, None);
    }
}
