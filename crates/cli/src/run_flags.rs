//! The flags of `run`, `create` and `update` beyond the basics: docker's
//! `Resources` (cgroup limits and weights, shared by the three commands),
//! and the docker 28 flags cais refuses, parsed so the refusal gives its
//! reason instead of "unknown flag".

use anyhow::{bail, Result};
use cais_client::opts;
use clap::Args;

/// `run`/`create` flags of docker 28 that cais does not honour: parsed, so
/// the refusal says why instead of "unknown flag".
#[derive(Debug, Args, Default)]
pub struct RefusedRunFlags {
    #[arg(long = "cpu-count", hide = true)]
    cpu_count: Option<String>,
    #[arg(long = "cpu-percent", hide = true)]
    cpu_percent: Option<String>,
    #[arg(long = "io-maxbandwidth", hide = true)]
    io_maxbandwidth: Option<String>,
    #[arg(long = "io-maxiops", hide = true)]
    io_maxiops: Option<String>,
    #[arg(long = "ip6", hide = true)]
    ip6: Option<String>,
    #[arg(long = "link-local-ip", hide = true)]
    link_local_ip: Vec<String>,
    #[arg(long = "use-api-socket", hide = true)]
    use_api_socket: bool,
}

impl RefusedRunFlags {
    pub(crate) fn check(&self) -> Result<()> {
        let windows = "it applies to Windows containers only";
        let ipv6 = "cais networks are IPv4 only";
        for (flag, given, why) in [
            ("--cpu-count", self.cpu_count.is_some(), windows),
            ("--cpu-percent", self.cpu_percent.is_some(), windows),
            ("--io-maxbandwidth", self.io_maxbandwidth.is_some(), windows),
            ("--io-maxiops", self.io_maxiops.is_some(), windows),
            ("--ip6", self.ip6.is_some(), ipv6),
            (
                "--link-local-ip",
                !self.link_local_ip.is_empty(),
                "link-local addresses are not assigned on cais networks",
            ),
            (
                "--use-api-socket",
                self.use_api_socket,
                "cais does not hand the daemon's socket and the client's credentials to containers; bind the socket with -v if that is meant",
            ),
        ] {
            if given {
                bail!("{flag} is not supported: {why}");
            }
        }
        Ok(())
    }
}

/// The resource flags `run`, `create` and `update` share (docker's
/// `Resources`): cgroup limits and weights.
#[derive(Debug, Args, Default)]
pub struct ResourceArgs {
    /// CPU shares (relative weight).
    #[arg(short = 'c', long = "cpu-shares")]
    cpu_shares: Option<i64>,
    /// The CPUs the container may run on (0-3, 0,1).
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    /// The memory nodes the container may use.
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    /// The CFS scheduler period, microseconds.
    #[arg(long = "cpu-period")]
    cpu_period: Option<i64>,
    /// The CFS scheduler quota, microseconds.
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    #[arg(long = "cpu-rt-period")]
    cpu_rt_period: Option<i64>,
    #[arg(long = "cpu-rt-runtime")]
    cpu_rt_runtime: Option<i64>,
    /// A soft memory limit (e.g. 32m).
    #[arg(long = "memory-reservation")]
    memory_reservation: Option<String>,
    /// Memory plus swap; -1 for unlimited swap.
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// How readily anonymous pages are swapped, 0 to 100.
    #[arg(long = "memory-swappiness", allow_hyphen_values = true)]
    memory_swappiness: Option<i64>,
    /// Do not let the OOM killer kill the container's processes.
    #[arg(long = "oom-kill-disable", num_args = 0..=1, require_equals = true,
          default_missing_value = "true")]
    oom_kill_disable: Option<bool>,
    /// Block IO weight, 10 to 1000 (0 leaves it).
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<u16>,
    /// A device's block IO weight, PATH:WEIGHT.
    #[arg(long = "blkio-weight-device")]
    blkio_weight_device: Vec<String>,
    #[arg(long = "device-read-bps")]
    device_read_bps: Vec<String>,
    #[arg(long = "device-write-bps")]
    device_write_bps: Vec<String>,
    #[arg(long = "device-read-iops")]
    device_read_iops: Vec<String>,
    #[arg(long = "device-write-iops")]
    device_write_iops: Vec<String>,
    /// The parent cgroup of the container's.
    #[arg(long = "cgroup-parent")]
    cgroup_parent: Option<String>,
    /// Kernel memory limit (deprecated by the kernel; refused by the daemon
    /// when set).
    #[arg(long = "kernel-memory")]
    kernel_memory: Option<String>,
}

/// The resource fields of a `HostConfig` or an update, as
/// [`ResourceArgs`] names them: applied by one function to both.
pub(crate) struct ResourceFields<'a> {
    pub(crate) cpu_shares: &'a mut i64,
    pub(crate) cpuset_cpus: &'a mut String,
    pub(crate) cpuset_mems: &'a mut String,
    pub(crate) cpu_period: &'a mut i64,
    pub(crate) cpu_quota: &'a mut i64,
    pub(crate) cpu_realtime_period: &'a mut i64,
    pub(crate) cpu_realtime_runtime: &'a mut i64,
    pub(crate) memory_reservation: &'a mut i64,
    pub(crate) memory_swap: &'a mut i64,
    pub(crate) memory_swappiness: &'a mut Option<i64>,
    pub(crate) oom_kill_disable: &'a mut Option<bool>,
    pub(crate) blkio_weight: &'a mut u16,
    pub(crate) blkio_weight_device: &'a mut Vec<cais_api::WeightDevice>,
    pub(crate) blkio_device_read_bps: &'a mut Vec<cais_api::ThrottleDevice>,
    pub(crate) blkio_device_write_bps: &'a mut Vec<cais_api::ThrottleDevice>,
    pub(crate) blkio_device_read_iops: &'a mut Vec<cais_api::ThrottleDevice>,
    pub(crate) blkio_device_write_iops: &'a mut Vec<cais_api::ThrottleDevice>,
    pub(crate) cgroup_parent: &'a mut String,
    pub(crate) kernel_memory: &'a mut i64,
}

macro_rules! resource_fields {
    ($x:expr) => {
        $crate::run_flags::ResourceFields {
            cpu_shares: &mut $x.cpu_shares,
            cpuset_cpus: &mut $x.cpuset_cpus,
            cpuset_mems: &mut $x.cpuset_mems,
            cpu_period: &mut $x.cpu_period,
            cpu_quota: &mut $x.cpu_quota,
            cpu_realtime_period: &mut $x.cpu_realtime_period,
            cpu_realtime_runtime: &mut $x.cpu_realtime_runtime,
            memory_reservation: &mut $x.memory_reservation,
            memory_swap: &mut $x.memory_swap,
            memory_swappiness: &mut $x.memory_swappiness,
            oom_kill_disable: &mut $x.oom_kill_disable,
            blkio_weight: &mut $x.blkio_weight,
            blkio_weight_device: &mut $x.blkio_weight_device,
            blkio_device_read_bps: &mut $x.blkio_device_read_bps,
            blkio_device_write_bps: &mut $x.blkio_device_write_bps,
            blkio_device_read_iops: &mut $x.blkio_device_read_iops,
            blkio_device_write_iops: &mut $x.blkio_device_write_iops,
            cgroup_parent: &mut $x.cgroup_parent,
            kernel_memory: &mut $x.kernel_memory,
        }
    };
}

pub(crate) use resource_fields;

/// `--memory-swap`: a size, or -1 for unlimited swap.
fn swap_bytes(s: &str) -> Result<i64> {
    Ok(if s == "-1" { -1 } else { opts::bytes(s)? })
}

impl ResourceArgs {
    /// Fills the request's resource fields from the flags given.
    pub(crate) fn apply(&self, f: ResourceFields) -> Result<()> {
        if let Some(v) = self.cpu_shares {
            *f.cpu_shares = v;
        }
        if let Some(v) = &self.cpuset_cpus {
            *f.cpuset_cpus = v.clone();
        }
        if let Some(v) = &self.cpuset_mems {
            *f.cpuset_mems = v.clone();
        }
        if let Some(v) = self.cpu_period {
            *f.cpu_period = v;
        }
        if let Some(v) = self.cpu_quota {
            *f.cpu_quota = v;
        }
        if let Some(v) = self.cpu_rt_period {
            *f.cpu_realtime_period = v;
        }
        if let Some(v) = self.cpu_rt_runtime {
            *f.cpu_realtime_runtime = v;
        }
        if let Some(v) = &self.memory_reservation {
            *f.memory_reservation = opts::bytes(v)?;
        }
        if let Some(v) = &self.memory_swap {
            *f.memory_swap = swap_bytes(v)?;
        }
        if let Some(v) = self.memory_swappiness {
            if !(-1..=100).contains(&v) {
                bail!("invalid value: {v}. Valid memory swappiness range is 0-100");
            }
            *f.memory_swappiness = Some(v);
        }
        if self.oom_kill_disable.is_some() {
            *f.oom_kill_disable = self.oom_kill_disable;
        }
        if let Some(v) = self.blkio_weight {
            *f.blkio_weight = v;
        }
        for d in &self.blkio_weight_device {
            f.blkio_weight_device.push(opts::weight_device(d)?);
        }
        for (list, out, iops) in [
            (&self.device_read_bps, &mut *f.blkio_device_read_bps, false),
            (
                &self.device_write_bps,
                &mut *f.blkio_device_write_bps,
                false,
            ),
            (&self.device_read_iops, &mut *f.blkio_device_read_iops, true),
            (
                &self.device_write_iops,
                &mut *f.blkio_device_write_iops,
                true,
            ),
        ] {
            for d in list {
                out.push(opts::throttle_device(d, iops)?);
            }
        }
        if let Some(v) = &self.cgroup_parent {
            *f.cgroup_parent = v.clone();
        }
        if let Some(v) = &self.kernel_memory {
            *f.kernel_memory = opts::bytes(v)?;
        }
        Ok(())
    }
}
