//! How the engine handles every field of a container request: `Config`
//! and `HostConfig` of `POST /containers/create` (with the types inside
//! them), the endpoint settings of its `NetworkingConfig`, `POST
//! /containers/{id}/update` and `POST /containers/{id}/exec`. A field is
//! applied (and where), refused (every value but the empty one, with
//! dockerd's status and message), or read and ignored because ignoring it
//! loses nothing (and why). Values a field refuses while others apply
//! (an unknown mode, a missing device) are said in its `Applied` text;
//! `containers::settings` is where each refusal is made.
//!
//! The tests compare these tables with the wire names of the API types,
//! so a field added to a type without an entry here fails them, and check
//! that docs/docker-cli.md documents every refused one.

/// What happens to one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Applied: where, and which values are refused.
    Applied(&'static str),
    /// Any value but the empty one is refused: the status and message.
    Refused(&'static str),
    /// Read and kept (inspect shows it) with no effect, and why nothing
    /// is lost.
    Ignored(&'static str),
}

/// One field of a request type, by its wire name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub handling: Handling,
}

const fn applied(name: &'static str, how: &'static str) -> Field {
    Field {
        name,
        handling: Handling::Applied(how),
    }
}
const fn refused(name: &'static str, message: &'static str) -> Field {
    Field {
        name,
        handling: Handling::Refused(message),
    }
}
const fn ignored(name: &'static str, why: &'static str) -> Field {
    Field {
        name,
        handling: Handling::Ignored(why),
    }
}

/// `Config` (`cais_api::ContainerConfig`).
pub const CONFIG: &[Field] = &[
    applied("Hostname", "the UTS namespace's hostname (spec) and /etc/hostname, /etc/hosts (networks::netconf); the short id when empty; 400 \"conflicting options: hostname and the UTS mode\" with UTSMode host"),
    applied("Domainname", "the UTS namespace's domain name (spec `domainname`, setdomainname(2) in the runtime)"),
    applied("User", "the process's uid, gid and groups, from the image's /etc/passwd and /etc/group at start"),
    ignored("AttachStdin", "which streams a client gets is what its attach request asks; kept for inspect, as dockerd keeps it"),
    ignored("AttachStdout", "which streams a client gets is what its attach request asks; kept for inspect, as dockerd keeps it"),
    ignored("AttachStderr", "which streams a client gets is what its attach request asks; kept for inspect, as dockerd keeps it"),
    applied("ExposedPorts", "merged with the image's EXPOSE; published by PublishAllPorts (networks::wiring), shown by inspect and ps"),
    applied("Tty", "a terminal for the process, held by the shim (`--terminal`); TERM=xterm"),
    applied("OpenStdin", "the process's stdin is a pipe attach clients write to (shim `--stdin`)"),
    applied("StdinOnce", "the process's stdin ends when an attached client's input ends (shim `--stdin-once`); without it stays open"),
    applied("Env", "the process's environment after PATH, HOSTNAME and TERM (spec::process_env); a bare KEY unsets; 400 \"invalid environment variable: =x\""),
    applied("Cmd", "the command, after the entrypoint (spec::merge)"),
    applied("Healthcheck", "health checks by `cais runtime exec` (containers::health); 400 for durations under 1ms or negative retries"),
    ignored("ArgsEscaped", "Windows only (a command line already escaped); dockerd ignores it on Linux"),
    applied("Image", "resolved in the image store; its config is merged (spec::merge)"),
    applied("Volumes", "anonymous volumes at these paths, unless a mount covers them (containers::mounts)"),
    applied("Entrypoint", "the entrypoint, replacing the image's ([\"\"] clears it; a new one drops the image's Cmd)"),
    applied("WorkingDir", "the process's directory, made root-owned 0755 inside the root when missing (lifecycle::make_working_dir); 400 for a relative path"),
    applied("NetworkDisabled", "a network namespace with loopback only, whatever the network mode"),
    applied("MacAddress", "the first network's interface MAC (clients before API 1.44; newer ones use EndpointSettings.MacAddress)"),
    ignored("OnBuild", "image metadata (ONBUILD triggers) kept in the config; it runs in builds, never in a container, as with dockerd"),
    applied("Labels", "merged with the image's; filters, events, log attributes"),
    applied("StopSignal", "the signal `stop` sends; 400 \"Invalid signal: X\""),
    applied("StopTimeout", "the seconds `stop` waits before SIGKILL"),
    ignored("Shell", "image metadata (SHELL) kept in the config; builds use it, containers never do, as with dockerd"),
];

/// `HostConfig`, its resources included.
pub const HOST_CONFIG: &[Field] = &[
    applied("Binds", "bind mounts and named volumes (containers::mounts) with ro/rw, propagation (shared, rshared, slave, rslave, private, rprivate; a shared one needs a shared source mount), z/Z (no SELinux here: nothing to relabel), nocopy; 400 \"invalid mode\" for others"),
    ignored("ContainerIDFile", "written by the client (`--cidfile`), never by the daemon, as with dockerd"),
    applied("LogConfig", "json-file and local (logfile::Options: max-size, max-file rotation that logs reads back; labels, env, tag attributes), none (logs answer 501); 400 \"logger: no log driver named 'X' is registered\" and dockerd's option errors"),
    applied("NetworkMode", "bridge, host, none, container:ID or a user network (networks::wiring)"),
    applied("PortBindings", "DNAT rules and host port reservations (networks::wiring)"),
    applied("RestartPolicy", "restarts after exits (containers::monitor); 400 \"invalid restart policy: ...\" in dockerd's words"),
    applied("AutoRemove", "the container is removed after it exits; 400 with a restart policy"),
    applied("VolumeDriver", "the driver of the volumes made for the container: \"\" and \"local\" (directories of the data root); others are recorded, and 400 \"error looking up volume plugin X: plugin \\\"X\\\" not found\" once a volume would be made with them (containers::mounts::plan)"),
    applied("VolumesFrom", "the binds and volumes of another container, with its modes or :ro/:rw (containers::mounts::plan); 400 \"No such container: X\""),
    applied("ConsoleSize", "the terminal's size before the process runs (a shim resize)"),
    applied("Annotations", "the OCI spec's annotations; 400 for an empty key"),
    applied("CapAdd", "capabilities (spec::caps); 400 \"invalid CapAdd: unknown capability: ...\""),
    applied("CapDrop", "capabilities (spec::caps); 400 \"invalid CapDrop: unknown capability: ...\""),
    applied("CgroupnsMode", "private (the default) or host: a cgroup namespace of its own or the host's; 400 \"invalid cgroup namespace mode: X\""),
    applied("Dns", "/etc/resolv.conf (networks::netconf)"),
    applied("DnsOptions", "/etc/resolv.conf (networks::netconf)"),
    applied("DnsSearch", "/etc/resolv.conf (networks::netconf)"),
    applied("ExtraHosts", "/etc/hosts lines, host-gateway the bridge's address; 400 \"invalid IP address in add-host: ...\""),
    applied("GroupAdd", "additional groups of the process: numbers, and names from the image's /etc/group (spec::resolve_groups); 400 \"Unable to find group X: no matching entries in group file\" at create"),
    applied("IpcMode", "private (default), shareable (a /dev/shm others can join), none (no /dev/shm), host, container:ID (its namespace and /dev/shm); 400 \"invalid IPC mode: X\", \"No such container: X\", \"container X: non-shareable IPC ...\""),
    refused("Cgroup", "400 \"Cgroup \\\"X\\\" is not supported: cais shares no cgroup with another container (use CgroupnsMode and CgroupParent)\"; dockerd reads this field and does nothing with it"),
    applied("Links", "/etc/hosts entries and docker's link variables (ALIAS_PORT..., ALIAS_ENV_...) on the default bridge, DNS aliases on user networks"),
    applied("OomScoreAdj", "the process's oom_score_adj; 400 \"Invalid value N, range for oom score adj is [-1000, 1000]\""),
    applied("PidMode", "host (no PID namespace) or container:ID (its namespace, which must be running); 400 \"invalid PID mode: X\", \"No such container: X\""),
    applied("Privileged", "every capability, every host device node and device, no seccomp, masked or read-only paths"),
    applied("PublishAllPorts", "every exposed port on a free host port (networks::wiring)"),
    applied("ReadonlyRootfs", "the root is mounted read-only (spec root.readonly)"),
    applied("SecurityOpt", "seccomp=PROFILE|unconfined, no-new-privileges, writable-cgroups; apparmor= and label= accepted only where the host has no AppArmor or SELinux (dockerd ignores them there); 400 \"invalid --security-opt 1|2: ...\""),
    refused("StorageOpt", "400 \"--storage-opt is supported only for overlay over xfs with 'pquota' mount option\" (the snapshotter is plain overlay)"),
    applied("Tmpfs", "tmpfs mounts with their options; 400 for a relative path or /"),
    applied("UTSMode", "host: the host's UTS namespace (no hostname set); 400 \"invalid UTS mode: X\""),
    applied("UsernsMode", "\"\", host and private all run in the host's user namespace, as on a dockerd without userns-remap; 400 for other values"),
    applied("ShmSize", "/dev/shm's size (64 MiB by default); 400 \"SHM size can not be less than 0\""),
    applied("Sysctls", "written in the container's namespaces by the runtime: IPC ones, net.* with a network namespace of its own; 400 for others (\"sysctl X is not in a separate kernel namespace\", \"not allowed in host network namespace\")"),
    applied("Runtime", "the one registered runtime, \"cais\" (the default); 400 \"unknown or invalid runtime name: X\""),
    applied("Isolation", "\"\" and \"default\"; 400 \"invalid isolation 'X' on linux\""),
    applied("Mounts", "binds (BindOptions), volumes (VolumeOptions), tmpfs (TmpfsOptions); 400 for other types (image, npipe, cluster)"),
    applied("MaskedPaths", "replaces the default masked paths (spec linux.maskedPaths)"),
    applied("ReadonlyPaths", "replaces the default read-only paths (spec linux.readonlyPaths)"),
    applied("Init", "a static init (tini) as pid 1 when the container has its own PID namespace"),
    applied("CpuShares", "cpu.shares / cpu.weight (cgroups crate)"),
    applied("Memory", "memory.limit_in_bytes / memory.max; 400 \"Minimum memory limit allowed is 6MB\""),
    applied("NanoCpus", "CFS quota over a 100 ms period; 400 with CpuPeriod/CpuQuota or more than the host's CPUs"),
    applied("CgroupParent", "the container's cgroup is PARENT/ID instead of /cais/ID; 400 for systemd slices or .."),
    applied("BlkioWeight", "blkio.weight / blkio.bfq.weight / io.weight; dockerd's warning and nothing set where the kernel has no weight (no BFQ); 400 outside 10-1000"),
    applied("BlkioWeightDevice", "per-device weights (major:minor from the path); warning where unsupported; 400 for a path that is not a block device"),
    applied("BlkioDeviceReadBps", "blkio.throttle.read_bps_device / io.max rbps"),
    applied("BlkioDeviceWriteBps", "blkio.throttle.write_bps_device / io.max wbps"),
    applied("BlkioDeviceReadIOps", "blkio.throttle.read_iops_device / io.max riops"),
    applied("BlkioDeviceWriteIOps", "blkio.throttle.write_iops_device / io.max wiops"),
    applied("CpuPeriod", "cpu.cfs_period_us / cpu.max; 400 outside 1ms-1s"),
    applied("CpuQuota", "cpu.cfs_quota_us / cpu.max; 400 under 1ms"),
    applied("CpuRealtimePeriod", "cpu.rt_period_us (cgroup v1)"),
    applied("CpuRealtimeRuntime", "cpu.rt_runtime_us (cgroup v1), the parents granted that much first (Config::grant_realtime); 400 where the kernel has no RT group scheduling"),
    applied("CpusetCpus", "cpuset.cpus; 400 \"Requested CPUs are not available - ...\""),
    applied("CpusetMems", "cpuset.mems; 400 \"Requested memory nodes are not available - ...\""),
    applied("Devices", "device nodes in the container's /dev and device cgroup rules (devices::host_device, a directory's nodes too); 400 \"error gathering device information while adding custom device ...\""),
    applied("DeviceCgroupRules", "device cgroup rules (devices::cgroup_rule); 400 \"invalid device cgroup rule format: '...'\""),
    applied("DeviceRequests", "the cdi driver: CDI specs' edits (devices::request); 400 \"could not select device driver \\\"\\\" with capabilities: [[gpu]]\" for any other"),
    applied("KernelMemory", "memory.kmem.limit_in_bytes where the kernel has it; dockerd's warning and nothing set where not"),
    applied("KernelMemoryTCP", "memory.kmem.tcp.limit_in_bytes (cgroup v1)"),
    applied("MemoryReservation", "memory.soft_limit_in_bytes / memory.low; 400 under 6MB or above Memory"),
    applied("MemorySwap", "memory.memsw.limit_in_bytes / memory.swap.max (-1 unlimited); 400 below Memory or without it"),
    applied("MemorySwappiness", "memory.swappiness (cgroup v1); dockerd's warning and nothing set on v2; 400 outside 0-100"),
    applied("OomKillDisable", "memory.oom_control (cgroup v1); dockerd's warning and nothing set on v2"),
    applied("PidsLimit", "pids.max (0 or less: max)"),
    applied("Ulimits", "process.rlimits set by the runtime before exec; 400 \"invalid ulimit type: X\", soft above hard"),
    ignored("CpuCount", "Windows only; dockerd ignores it on Linux"),
    applied("CpuPercent", "Windows only: dockerd's warning \"linux does not support CPU percent. Percent discarded.\""),
    refused("IOMaximumIOps", "400 \"Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps\""),
    refused("IOMaximumBandwidth", "400 \"Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps\""),
];

/// `Config.Healthcheck`.
pub const HEALTH_CONFIG: &[Field] = &[
    applied(
        "Test",
        "NONE, CMD or CMD-SHELL, run in the container (containers::health)",
    ),
    applied("Interval", "time between checks (30s by default)"),
    applied("Timeout", "a check that takes longer fails"),
    applied("StartPeriod", "failures in it do not count"),
    applied(
        "StartInterval",
        "time between checks during the start period",
    ),
    applied("Retries", "failures in a row that make it unhealthy"),
];

/// `HostConfig.Mounts[]`.
pub const MOUNT: &[Field] = &[
    applied(
        "Type",
        "bind, volume, tmpfs; 400 \"mount type X is not supported\" for image, npipe, cluster",
    ),
    applied("Source", "the host path or volume name (none for tmpfs)"),
    applied("Target", "the path in the container; 400 when relative"),
    applied(
        "ReadOnly",
        "read-only, recursively unless ReadOnlyNonRecursive (mount_setattr)",
    ),
    ignored(
        "Consistency",
        "macOS file sharing only; Linux binds are always consistent, as dockerd has it",
    ),
    applied("BindOptions", "see BIND_OPTIONS"),
    applied("VolumeOptions", "see VOLUME_OPTIONS"),
    refused(
        "ImageOptions",
        "400: image mounts are refused (mount type \"image\" is not supported)",
    ),
    applied("TmpfsOptions", "see TMPFS_OPTIONS"),
];

/// `Mounts[].BindOptions`.
pub const BIND_OPTIONS: &[Field] = &[
    applied(
        "Propagation",
        "the bind's propagation; shared/slave need a shared (or slave) source mount",
    ),
    applied("NonRecursive", "a plain bind (submounts left out)"),
    applied(
        "CreateMountpoint",
        "the source directory is made when missing",
    ),
    applied("ReadOnlyNonRecursive", "read-only on the top mount only"),
    applied(
        "ReadOnlyForceRecursive",
        "read-only all the way down (the default for read-only binds)",
    ),
];

/// `Mounts[].VolumeOptions`.
pub const VOLUME_OPTIONS: &[Field] = &[
    applied(
        "NoCopy",
        "the image's files at the target are not copied into a new volume",
    ),
    applied("Labels", "labels of a volume the mount creates"),
    applied(
        "DriverConfig",
        "driver \"\" or \"local\" without options; 400 otherwise",
    ),
    applied(
        "Subpath",
        "a directory of the volume is mounted; 400 when it does not exist",
    ),
];

/// `Mounts[].TmpfsOptions`.
pub const TMPFS_OPTIONS: &[Field] = &[
    applied("SizeBytes", "the tmpfs's size= option"),
    applied("Mode", "the tmpfs's mode= option (octal)"),
    applied("Options", "extra mount options, [name] or [name, value]"),
];

/// `NetworkingConfig.EndpointsConfig[]` at create.
pub const ENDPOINT_SETTINGS: &[Field] = &[
    applied("IPAMConfig", "see ENDPOINT_IPAM_CONFIG"),
    applied("Links", "names this container resolves to the linked containers (embedded DNS)"),
    applied("MacAddress", "the interface's MAC; 400 \"invalid MAC address: X\""),
    applied("Aliases", "names the embedded DNS answers for this container on the network; 400 on the default bridge"),
    applied("DriverOpts", "com.docker.network.endpoint.ifname names the interface; other options are kept and shown, and the bridge driver ignores them as dockerd's does"),
    ignored("GwPriority", "one default route, the first network's: priorities choose among several, which cais does not give a container"),
    ignored("NetworkID", "output: filled by the engine"),
    ignored("EndpointID", "output: filled by the engine"),
    ignored("Gateway", "output: filled by the engine"),
    ignored("IPAddress", "output: filled by the engine (IPAMConfig asks for an address)"),
    ignored("IPPrefixLen", "output: filled by the engine"),
    ignored("IPv6Gateway", "output: filled by the engine"),
    ignored("GlobalIPv6Address", "output: filled by the engine"),
    ignored("GlobalIPv6PrefixLen", "output: filled by the engine"),
    ignored("DNSNames", "output: filled by the engine"),
];

/// `EndpointSettings.IPAMConfig`.
pub const ENDPOINT_IPAM_CONFIG: &[Field] = &[
    applied(
        "IPv4Address",
        "the interface's address, on user networks; 400 outside the subnet",
    ),
    ignored("IPv6Address", "kept in the endpoint's IPAMConfig (inspect shows it) when one of the network's IPv6 pools holds it, never assigned: cais networks have no IPv6 (EnableIPv6 is refused), and dockerd assigns none on a network without EnableIPv6; 400 without an IPv6 pool or outside it"),
    applied("LinkLocalIPs", "further addresses of the interface, with the link-local prefix /16 (RFC 3927); 400 for addresses outside 169.254.0.0/16 and IPv6 ones"),
];

/// The body of `POST /containers/{id}/exec`.
pub const EXEC_CONFIG: &[Field] = &[
    applied("AttachStdin", "the exec's stdin is forwarded"),
    applied("AttachStdout", "the exec's stdout is forwarded"),
    applied("AttachStderr", "the exec's stderr is forwarded"),
    applied("ConsoleSize", "the terminal's size when it starts"),
    applied("DetachKeys", "checked (400 \"Invalid escape keys (X) provided\") and kept for the attach that detaches with them"),
    applied("Tty", "a terminal for the exec"),
    applied("Env", "over the container's environment, replacing or adding (a bare KEY unsets)"),
    applied("Cmd", "the command; 400 \"No exec command specified\""),
    applied("Privileged", "every capability"),
    applied("User", "uid, gid and groups from the container's files, with its GroupAdd; 400 at create when unknown"),
    applied("WorkingDir", "the exec's directory; 400 for a relative path"),
];

/// The body of `POST /containers/{id}/update` (what dockerd's update
/// changes is applied to the running cgroup and kept; the rest is
/// refused, where dockerd drops it).
pub const CONTAINER_UPDATE: &[Field] = &[
    applied("CpuShares", "applied to the running cgroup and kept"),
    applied(
        "Memory",
        "applied to the running cgroup and kept; 409 when above an existing swap limit",
    ),
    applied(
        "NanoCpus",
        "applied to the running cgroup and kept; 409 when CpuPeriod or CpuQuota is set",
    ),
    refused(
        "CgroupParent",
        "400 \"CgroupParent cannot be updated: it is set when the container is created\"",
    ),
    applied(
        "BlkioWeight",
        "applied to the running cgroup and kept (warning where unsupported)",
    ),
    refused(
        "BlkioWeightDevice",
        "400 \"BlkioWeightDevice cannot be updated: ...\"",
    ),
    refused(
        "BlkioDeviceReadBps",
        "400 \"BlkioDeviceReadBps cannot be updated: ...\"",
    ),
    refused(
        "BlkioDeviceWriteBps",
        "400 \"BlkioDeviceWriteBps cannot be updated: ...\"",
    ),
    refused(
        "BlkioDeviceReadIOps",
        "400 \"BlkioDeviceReadIOps cannot be updated: ...\"",
    ),
    refused(
        "BlkioDeviceWriteIOps",
        "400 \"BlkioDeviceWriteIOps cannot be updated: ...\"",
    ),
    applied(
        "CpuPeriod",
        "applied to the running cgroup and kept; 409 when NanoCpus is set",
    ),
    applied(
        "CpuQuota",
        "applied to the running cgroup and kept; 409 when NanoCpus is set",
    ),
    applied(
        "CpuRealtimePeriod",
        "applied to the running cgroup and kept",
    ),
    applied(
        "CpuRealtimeRuntime",
        "applied to the running cgroup and kept",
    ),
    applied("CpusetCpus", "applied to the running cgroup and kept"),
    applied("CpusetMems", "applied to the running cgroup and kept"),
    refused("Devices", "400 \"Devices cannot be updated: ...\""),
    refused(
        "DeviceCgroupRules",
        "400 \"DeviceCgroupRules cannot be updated: ...\"",
    ),
    refused(
        "DeviceRequests",
        "400 \"DeviceRequests cannot be updated: ...\"",
    ),
    applied(
        "KernelMemory",
        "applied to the running cgroup where the kernel has it",
    ),
    refused(
        "KernelMemoryTCP",
        "400 \"KernelMemoryTCP cannot be updated: ...\"",
    ),
    applied(
        "MemoryReservation",
        "applied to the running cgroup and kept",
    ),
    applied("MemorySwap", "applied to the running cgroup and kept"),
    refused(
        "MemorySwappiness",
        "400 \"MemorySwappiness cannot be updated: ...\" (-1, \"unset\", is taken)",
    ),
    refused(
        "OomKillDisable",
        "400 \"OomKillDisable cannot be updated: ...\"",
    ),
    applied("PidsLimit", "applied to the running cgroup and kept"),
    refused("Ulimits", "400 \"Ulimits cannot be updated: ...\""),
    ignored("CpuCount", "Windows only"),
    applied("CpuPercent", "Windows only: dockerd's warning"),
    refused("IOMaximumIOps", "400 \"Invalid QoS settings: ...\""),
    refused("IOMaximumBandwidth", "400 \"Invalid QoS settings: ...\""),
    applied(
        "RestartPolicy",
        "applied to the running cgroup and kept; 409 with AutoRemove",
    ),
    refused(
        "Init",
        "400 \"Init cannot be updated: it is set when the container is created\"",
    ),
];

/// Every table with the name of the type it describes.
pub const TABLES: &[(&str, &[Field])] = &[
    ("Config", CONFIG),
    ("HostConfig", HOST_CONFIG),
    ("HealthConfig", HEALTH_CONFIG),
    ("Mount", MOUNT),
    ("BindOptions", BIND_OPTIONS),
    ("VolumeOptions", VOLUME_OPTIONS),
    ("TmpfsOptions", TMPFS_OPTIONS),
    ("EndpointSettings", ENDPOINT_SETTINGS),
    ("EndpointIPAMConfig", ENDPOINT_IPAM_CONFIG),
    ("ExecConfig", EXEC_CONFIG),
    ("ContainerUpdate", CONTAINER_UPDATE),
];

/// (applied, refused, ignored) over every table.
pub fn counts() -> (usize, usize, usize) {
    TABLES
        .iter()
        .flat_map(|(_, t)| t.iter())
        .fold((0, 0, 0), |(a, r, i), f| match f.handling {
            Handling::Applied(_) => (a + 1, r, i),
            Handling::Refused(_) => (a, r + 1, i),
            Handling::Ignored(_) => (a, r, i + 1),
        })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use cais_api::*;

    use super::*;

    fn names(t: &[Field]) -> BTreeSet<&'static str> {
        t.iter().map(|f| f.name).collect()
    }

    fn wire<T: serde::de::DeserializeOwned>() -> BTreeSet<&'static str> {
        field_names::<T>().iter().copied().collect()
    }

    #[test]
    fn every_field_of_the_types_has_an_entry_and_no_entry_is_stale() {
        let pairs: [(&str, BTreeSet<&str>, &[Field]); 11] = [
            ("Config", wire::<ContainerConfig>(), CONFIG),
            ("HostConfig", wire::<HostConfig>(), HOST_CONFIG),
            ("HealthConfig", wire::<HealthConfig>(), HEALTH_CONFIG),
            ("Mount", wire::<Mount>(), MOUNT),
            ("BindOptions", wire::<BindOptions>(), BIND_OPTIONS),
            ("VolumeOptions", wire::<VolumeOptions>(), VOLUME_OPTIONS),
            ("TmpfsOptions", wire::<TmpfsOptions>(), TMPFS_OPTIONS),
            (
                "EndpointSettings",
                wire::<EndpointSettings>(),
                ENDPOINT_SETTINGS,
            ),
            (
                "EndpointIPAMConfig",
                wire::<EndpointIpamConfig>(),
                ENDPOINT_IPAM_CONFIG,
            ),
            ("ExecConfig", wire::<ExecConfig>(), EXEC_CONFIG),
            (
                "ContainerUpdate",
                wire::<ContainerUpdate>(),
                CONTAINER_UPDATE,
            ),
        ];
        for (name, fields, table) in pairs {
            assert!(!fields.is_empty(), "{name} has fields");
            let entries = names(table);
            assert_eq!(entries.len(), table.len(), "{name}: an entry twice");
            let missing: Vec<_> = fields.difference(&entries).collect();
            let stale: Vec<_> = entries.difference(&fields).collect();
            assert!(
                missing.is_empty() && stale.is_empty(),
                "{name}: no entry for {missing:?}; entries for no field {stale:?}"
            );
        }
    }

    #[test]
    fn every_text_says_something() {
        for (name, t) in TABLES {
            for f in *t {
                let (Handling::Applied(s) | Handling::Refused(s) | Handling::Ignored(s)) =
                    f.handling;
                assert!(s.len() > 8, "{name}.{}: {s:?}", f.name);
            }
        }
        let (a, r, i) = counts();
        assert!(a > 0 && r > 0 && i > 0);
    }

    #[test]
    fn the_docs_name_every_refused_field_and_why() {
        let docs = include_str!("../../../../docs/docker-cli.md");
        let section = docs
            .split("## Refused on purpose")
            .nth(1)
            .expect("docs/docker-cli.md has a \"## Refused on purpose\" section");
        for (name, t) in TABLES {
            for f in t
                .iter()
                .filter(|f| matches!(f.handling, Handling::Refused(_)))
            {
                assert!(
                    section.contains(&format!("`{}`", f.name)),
                    "docs/docker-cli.md does not explain why {name}.{} is refused",
                    f.name
                );
            }
        }
    }
}
