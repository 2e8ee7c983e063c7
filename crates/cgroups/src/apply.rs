//! Writing OCI `linux.resources` into control files.
//!
//! Zero values mean "not set" for the numeric fields where the kernel has no
//! use for a zero (shares, quota, period, memory limit, swap, pids limit,
//! block IO weight), which is how the other OCI runtimes read them too.

use std::collections::BTreeMap;
use std::path::Path;

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory, LinuxNetwork, LinuxPids,
    LinuxResources, LinuxThrottleDevice,
};

use crate::devices::{self, DeviceRule};
use crate::error::{Error, Result};
use crate::{bpf, files, Cgroup};

/// Where a controller lives for this cgroup.
enum Target<'a> {
    V1(&'a Path),
    V2(&'a Path),
}

/// Applies the hybrid rule: the v1 hierarchy if mounted, else the unified
/// one if it offers the controller.
fn target<'a>(
    cg: &'a Cgroup,
    v1: &'static str,
    v2: &'static str,
    resource: &'static str,
) -> Result<Target<'a>> {
    if let Some(d) = cg.v1_dir(v1) {
        return Ok(Target::V1(d));
    }
    match cg.unified_dir() {
        Some(d) if cg.v2_has(v2) => Ok(Target::V2(d)),
        // Name the controller as the host's own hierarchies would.
        _ => Err(Error::ControllerMissing {
            controller: if cg.layout().v1_controllers().is_none() {
                v2
            } else {
                v1
            },
            resource,
        }),
    }
}

pub(crate) fn apply(cg: &Cgroup, r: &LinuxResources) -> Result<()> {
    if let Some(cpu) = r.cpu() {
        cpuset(cg, cpu)?;
        cpu_limits(cg, cpu)?;
    }
    if let Some(m) = r.memory() {
        memory(cg, m)?;
    }
    if let Some(p) = r.pids() {
        pids(cg, p)?;
    }
    if let Some(b) = r.block_io() {
        block_io(cg, b)?;
    }
    if let Some(h) = r.hugepage_limits() {
        hugetlb(cg, h)?;
    }
    if let Some(rdma) = r.rdma() {
        self::rdma(cg, rdma)?;
    }
    if let Some(n) = r.network() {
        network(cg, n)?;
    }
    if let Some(d) = r.devices() {
        let rules = d
            .iter()
            .map(DeviceRule::from_oci)
            .collect::<Result<Vec<_>>>()?;
        apply_devices(cg, &rules)?;
    }
    // Last, so that verbatim values win over the mapped ones.
    if let Some(u) = r.unified() {
        unified(cg, u)?;
    }
    Ok(())
}

fn nonzero<T: PartialEq + Default>(v: Option<T>) -> Option<T> {
    v.filter(|v| *v != T::default())
}

fn cpuset(cg: &Cgroup, cpu: &LinuxCpu) -> Result<()> {
    let cpus = cpu.cpus().as_deref().filter(|s| !s.is_empty());
    let mems = cpu.mems().as_deref().filter(|s| !s.is_empty());
    if cpus.is_none() && mems.is_none() {
        return Ok(());
    }
    let (Target::V1(dir) | Target::V2(dir)) =
        target(cg, "cpuset", "cpuset", "linux.resources.cpu.cpus/mems")?;
    // Same file names in v1 and v2.
    if let Some(c) = cpus {
        files::write(dir, "cpuset.cpus", c)?;
    }
    if let Some(m) = mems {
        files::write(dir, "cpuset.mems", m)?;
    }
    Ok(())
}

fn cpu_limits(cg: &Cgroup, cpu: &LinuxCpu) -> Result<()> {
    let shares = nonzero(cpu.shares());
    let quota = nonzero(cpu.quota());
    let period = nonzero(cpu.period());
    let rt_runtime = nonzero(cpu.realtime_runtime());
    let rt_period = nonzero(cpu.realtime_period());
    let any = shares.is_some()
        || quota.is_some()
        || period.is_some()
        || rt_runtime.is_some()
        || rt_period.is_some()
        || cpu.idle().is_some()
        || cpu.burst().is_some();
    if !any {
        return Ok(());
    }
    match target(cg, "cpu", "cpu", "linux.resources.cpu")? {
        Target::V1(dir) => {
            if let Some(s) = shares {
                files::write(dir, "cpu.shares", &s.to_string())?;
            }
            // The kernel validates quota against period, so the period goes
            // first (sched-bwc.rst).
            if let Some(p) = period {
                files::write(dir, "cpu.cfs_period_us", &p.to_string())?;
            }
            if let Some(q) = quota {
                files::write(dir, "cpu.cfs_quota_us", &q.to_string())?;
            }
            if let Some(b) = cpu.burst() {
                files::write(dir, "cpu.cfs_burst_us", &b.to_string())?;
            }
            // rt_runtime must not exceed rt_period at any moment
            // (sched-rt-group.rst): when shrinking the period below the
            // current runtime, the runtime has to go first.
            let period_first = match (rt_period, rt_runtime) {
                (Some(p), Some(_)) => {
                    let cur = files::read(dir, "cpu.rt_runtime_us")?;
                    let cur: i64 = cur.trim().parse().unwrap_or(0);
                    i64::try_from(p).map_or(true, |p| p >= cur)
                }
                _ => true,
            };
            let write_period = || match rt_period {
                Some(p) => files::write(dir, "cpu.rt_period_us", &p.to_string()),
                None => Ok(()),
            };
            let write_runtime = || match rt_runtime {
                Some(r) => files::write(dir, "cpu.rt_runtime_us", &r.to_string()),
                None => Ok(()),
            };
            if period_first {
                write_period()?;
                write_runtime()?;
            } else {
                write_runtime()?;
                write_period()?;
            }
            if let Some(i) = cpu.idle() {
                files::write(dir, "cpu.idle", &i.to_string())?;
            }
        }
        Target::V2(dir) => {
            if rt_runtime.is_some() || rt_period.is_some() {
                return Err(Error::Unsupported {
                    what: "realtime CPU scheduling limits",
                    hierarchy: "cgroup v2",
                });
            }
            if let Some(s) = shares {
                files::write(dir, "cpu.weight", &shares_to_weight(s).to_string())?;
            }
            if quota.is_some() || period.is_some() {
                files::write(dir, "cpu.max", &cpu_max(dir, quota, period)?)?;
            }
            if let Some(b) = cpu.burst() {
                files::write(dir, "cpu.max.burst", &b.to_string())?;
            }
            if let Some(i) = cpu.idle() {
                files::write(dir, "cpu.idle", &i.to_string())?;
            }
        }
    }
    Ok(())
}

/// cgroup v1 shares (2..=262144, default 1024) to v2 weight (1..=10000,
/// default 100), the linear map the OCI runtimes agree on.
pub(crate) fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// `cpu.max` is "$QUOTA $PERIOD"; a field not being changed keeps its
/// current value.
fn cpu_max(dir: &Path, quota: Option<i64>, period: Option<u64>) -> Result<String> {
    let current = files::read_opt(dir, "cpu.max")?.unwrap_or_default();
    let mut cur = current.split_whitespace();
    let cur_quota = cur.next().unwrap_or("max").to_owned();
    let cur_period = cur.next().unwrap_or("100000").to_owned();
    let quota = match quota {
        Some(q) if q > 0 => q.to_string(),
        Some(_) => "max".to_owned(),
        None => cur_quota,
    };
    let period = period.map_or(cur_period, |p| p.to_string());
    Ok(format!("{quota} {period}"))
}

fn limit_str(v: i64, unlimited: &str) -> String {
    if v < 0 {
        unlimited.to_owned()
    } else {
        v.to_string()
    }
}

fn memory(cg: &Cgroup, m: &LinuxMemory) -> Result<()> {
    let limit = nonzero(m.limit());
    let swap = nonzero(m.swap());
    if let (Some(l), Some(s)) = (limit, swap) {
        // OCI swap is memory+swap, so it can never be below the limit.
        if s >= 0 && (l < 0 || s < l) {
            return Err(Error::InvalidArgument {
                field: "linux.resources.memory.swap",
                reason: format!("memory+swap {s} is below the memory limit {l}"),
            });
        }
    }
    if let Some(s) = m.swappiness() {
        if s > 100 {
            return Err(Error::InvalidArgument {
                field: "linux.resources.memory.swappiness",
                reason: format!("{s} is above 100"),
            });
        }
    }
    let any = limit.is_some()
        || swap.is_some()
        || m.reservation().is_some()
        || m.kernel().is_some()
        || m.kernel_tcp().is_some()
        || m.swappiness().is_some()
        || m.disable_oom_killer() == Some(true);
    if !any {
        return Ok(());
    }
    match target(cg, "memory", "memory", "linux.resources.memory")? {
        Target::V1(dir) => memory_v1(dir, m, limit, swap),
        Target::V2(dir) => memory_v2(dir, m, limit, swap),
    }
}

/// As bytes, with "unlimited" (-1) above every real value.
fn as_bytes(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

fn memory_v1(dir: &Path, m: &LinuxMemory, limit: Option<i64>, swap: Option<i64>) -> Result<()> {
    const LIMIT: &str = "memory.limit_in_bytes";
    const MEMSW: &str = "memory.memsw.limit_in_bytes";
    // The kernel keeps memsw.limit >= limit at every moment and refuses a
    // write that would break it (cgroup-v1/memory.rst, section 2.4). Growing
    // the limit therefore needs memsw raised first; shrinking needs the
    // limit lowered first.
    //
    // Without swap accounting (swapaccount=0, or no swap support built in)
    // there is no memsw file. A memory+swap limit that asks for no swap
    // beyond the memory limit, or for unlimited swap, needs no file; any
    // other one cannot be honoured.
    let swap = match swap {
        Some(s) if !files::exists(dir, MEMSW) => {
            if s < 0 || Some(s) == limit {
                None
            } else {
                return Err(Error::Unsupported {
                    what: "memory+swap limits",
                    hierarchy: "a kernel without swap accounting",
                });
            }
        }
        s => s,
    };
    match (limit, swap) {
        (Some(l), Some(s)) => {
            let current = files::read(dir, LIMIT)?;
            let current = files::parse_u64(dir, LIMIT, &current)?;
            if as_bytes(l) > current {
                files::write(dir, MEMSW, &s.to_string())?;
                files::write(dir, LIMIT, &l.to_string())?;
            } else {
                files::write(dir, LIMIT, &l.to_string())?;
                files::write(dir, MEMSW, &s.to_string())?;
            }
        }
        (Some(l), None) => files::write(dir, LIMIT, &l.to_string())?,
        (None, Some(s)) => files::write(dir, MEMSW, &s.to_string())?,
        (None, None) => {}
    }
    if let Some(r) = m.reservation() {
        files::write(dir, "memory.soft_limit_in_bytes", &r.to_string())?;
    }
    // Kernel memory limits are deprecated by the runtime spec; newer kernels
    // dropped memory.kmem.limit_in_bytes, so these are written only where
    // the file still exists.
    if let Some(k) = m.kernel() {
        if files::exists(dir, "memory.kmem.limit_in_bytes") {
            files::write(dir, "memory.kmem.limit_in_bytes", &k.to_string())?;
        }
    }
    if let Some(k) = m.kernel_tcp() {
        if files::exists(dir, "memory.kmem.tcp.limit_in_bytes") {
            files::write(dir, "memory.kmem.tcp.limit_in_bytes", &k.to_string())?;
        }
    }
    if let Some(s) = m.swappiness() {
        files::write(dir, "memory.swappiness", &s.to_string())?;
    }
    if m.disable_oom_killer() == Some(true) {
        files::write(dir, "memory.oom_control", "1")?;
    }
    Ok(())
}

/// cgroup v2 limits swap alone (memory.swap.max) while OCI's `swap` is
/// memory+swap, hence the subtraction.
fn memory_v2(dir: &Path, m: &LinuxMemory, limit: Option<i64>, swap: Option<i64>) -> Result<()> {
    if let Some(s) = swap {
        let value = match (s, limit) {
            (s, _) if s < 0 => "max".to_owned(),
            (s, Some(l)) if l > 0 => (s - l).to_string(),
            _ => {
                return Err(Error::InvalidArgument {
                    field: "linux.resources.memory.swap",
                    reason: "a swap limit needs a memory limit on cgroup v2".into(),
                })
            }
        };
        // As in v1, no file (no swap support) is fine when nothing would be
        // limited.
        if files::exists(dir, "memory.swap.max") {
            files::write(dir, "memory.swap.max", &value)?;
        } else if value != "0" && value != "max" {
            return Err(Error::Unsupported {
                what: "swap limits",
                hierarchy: "a kernel without swap accounting",
            });
        }
    }
    if let Some(l) = limit {
        files::write(dir, "memory.max", &limit_str(l, "max"))?;
    }
    if let Some(r) = m.reservation() {
        files::write(dir, "memory.low", &limit_str(r, "max"))?;
    }
    // kernel, kernelTCP, swappiness and disableOOMKiller have no cgroup v2
    // counterpart (cgroup-v2.rst, "Deprecated v1 Core Features"); they are
    // ignored as the runtime spec allows for unsupported settings.
    Ok(())
}

fn pids(cg: &Cgroup, p: &LinuxPids) -> Result<()> {
    let limit = p.limit();
    if limit == 0 {
        return Ok(());
    }
    let (Target::V1(dir) | Target::V2(dir)) = target(cg, "pids", "pids", "linux.resources.pids")?;
    files::write(dir, "pids.max", &limit_str(limit, "max"))
}

fn block_io(cg: &Cgroup, b: &LinuxBlockIo) -> Result<()> {
    let weight = nonzero(b.weight());
    let devices = b.weight_device().as_deref().unwrap_or_default();
    let throttles: [(&str, &str, &Option<Vec<LinuxThrottleDevice>>); 4] = [
        (
            "blkio.throttle.read_bps_device",
            "rbps",
            b.throttle_read_bps_device(),
        ),
        (
            "blkio.throttle.write_bps_device",
            "wbps",
            b.throttle_write_bps_device(),
        ),
        (
            "blkio.throttle.read_iops_device",
            "riops",
            b.throttle_read_iops_device(),
        ),
        (
            "blkio.throttle.write_iops_device",
            "wiops",
            b.throttle_write_iops_device(),
        ),
    ];
    let any = weight.is_some()
        || b.leaf_weight().is_some()
        || !devices.is_empty()
        || throttles
            .iter()
            .any(|(_, _, t)| t.as_ref().is_some_and(|t| !t.is_empty()));
    if !any {
        return Ok(());
    }
    match target(cg, "blkio", "io", "linux.resources.blockIO")? {
        Target::V1(dir) => {
            // CFQ offered blkio.weight; since Linux 5.0 only BFQ is left and
            // names it blkio.bfq.weight (block/bfq-iosched.rst).
            let (wfile, wdev) = if files::exists(dir, "blkio.weight") {
                ("blkio.weight", "blkio.weight_device")
            } else {
                ("blkio.bfq.weight", "blkio.bfq.weight_device")
            };
            let wants_weight = weight.is_some() || devices.iter().any(|d| d.weight().is_some());
            if wants_weight && !files::exists(dir, wfile) {
                return Err(Error::Unsupported {
                    what: "block IO weights",
                    hierarchy: "a blkio controller without CFQ or BFQ",
                });
            }
            if let Some(w) = weight {
                files::write(dir, wfile, &w.to_string())?;
            }
            // Leaf weights were a CFQ feature; without CFQ there is nowhere
            // to put them.
            let leaf = files::exists(dir, "blkio.leaf_weight");
            if let (Some(w), true) = (b.leaf_weight(), leaf) {
                files::write(dir, "blkio.leaf_weight", &w.to_string())?;
            }
            for d in devices {
                if let Some(w) = d.weight() {
                    files::write(dir, wdev, &format!("{}:{} {}", d.major(), d.minor(), w))?;
                }
                if let (Some(w), true) = (d.leaf_weight(), leaf) {
                    let line = format!("{}:{} {}", d.major(), d.minor(), w);
                    files::write(dir, "blkio.leaf_weight_device", &line)?;
                }
            }
            for (file, _, list) in throttles {
                for t in list.as_deref().unwrap_or_default() {
                    files::write(
                        dir,
                        file,
                        &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
                    )?;
                }
            }
        }
        Target::V2(dir) => {
            // io.bfq.weight takes v1 weights as they are; io.weight has a
            // different range (cgroup-v2.rst, "IO Interface Files").
            let bfq = files::exists(dir, "io.bfq.weight");
            let (file, conv): (&str, fn(u16) -> u64) = if bfq {
                ("io.bfq.weight", u64::from)
            } else {
                ("io.weight", blkio_weight_to_io_weight)
            };
            if let Some(w) = weight {
                files::write(dir, file, &conv(w).to_string())?;
            }
            for d in devices {
                if let Some(w) = d.weight() {
                    files::write(
                        dir,
                        file,
                        &format!("{}:{} {}", d.major(), d.minor(), conv(w)),
                    )?;
                }
            }
            for (_, key, list) in throttles {
                for t in list.as_deref().unwrap_or_default() {
                    let line = format!("{}:{} {}={}", t.major(), t.minor(), key, t.rate());
                    files::write(dir, "io.max", &line)?;
                }
            }
        }
    }
    Ok(())
}

/// v1 blkio weight (10..=1000) to v2 io.weight (1..=10000).
pub(crate) fn blkio_weight_to_io_weight(w: u16) -> u64 {
    let w = u64::from(w.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

fn hugetlb(cg: &Cgroup, limits: &[LinuxHugepageLimit]) -> Result<()> {
    if limits.is_empty() {
        return Ok(());
    }
    for l in limits {
        let size = l.page_size();
        if size.is_empty() || !size.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(Error::InvalidArgument {
                field: "linux.resources.hugepageLimits.pageSize",
                reason: format!("{size:?} is not a page size like \"2MB\""),
            });
        }
    }
    // A size the host has no pool for has no control file: say so, rather
    // than "no such file".
    let offered = |dir: &Path, file: &str, size: &str| {
        if files::exists(dir, file) {
            Ok(())
        } else {
            Err(Error::InvalidArgument {
                field: "linux.resources.hugepageLimits.pageSize",
                reason: format!(
                    "{size:?} is not a huge page size this host offers (see /sys/kernel/mm/hugepages)"
                ),
            })
        }
    };
    match target(cg, "hugetlb", "hugetlb", "linux.resources.hugepageLimits")? {
        Target::V1(dir) => {
            for l in limits {
                let file = format!("hugetlb.{}.limit_in_bytes", l.page_size());
                offered(dir, &file, l.page_size())?;
                files::write(dir, &file, &l.limit().to_string())?;
            }
        }
        Target::V2(dir) => {
            for l in limits {
                offered(
                    dir,
                    &format!("hugetlb.{}.max", l.page_size()),
                    l.page_size(),
                )?;
                let value = limit_str(l.limit(), "max");
                files::write(dir, &format!("hugetlb.{}.max", l.page_size()), &value)?;
                // Reservations are charged separately (Linux 5.7+); limit
                // them the same so reserved-but-unfaulted pages count too.
                let rsvd = format!("hugetlb.{}.rsvd.max", l.page_size());
                if files::exists(dir, &rsvd) {
                    files::write(dir, &rsvd, &value)?;
                }
            }
        }
    }
    Ok(())
}

fn rdma(
    cg: &Cgroup,
    limits: &std::collections::HashMap<String, oci_spec::runtime::LinuxRdma>,
) -> Result<()> {
    if limits.is_empty() {
        return Ok(());
    }
    let (Target::V1(dir) | Target::V2(dir)) = target(cg, "rdma", "rdma", "linux.resources.rdma")?;
    let sorted: BTreeMap<_, _> = limits.iter().collect();
    for (device, l) in sorted {
        let mut line = device.clone();
        if let Some(h) = l.hca_handles() {
            line.push_str(&format!(" hca_handle={h}"));
        }
        if let Some(o) = l.hca_objects() {
            line.push_str(&format!(" hca_object={o}"));
        }
        files::write(dir, "rdma.max", &line)?;
    }
    Ok(())
}

/// What `network` would not apply here: net_cls and net_prio exist only as
/// v1 controllers.
pub(crate) fn skipped(cg: &Cgroup, r: &LinuxResources) -> Vec<&'static str> {
    let mut out = Vec::new();
    if let Some(n) = r.network() {
        if n.class_id().is_some() && cg.v1_dir("net_cls").is_none() {
            out.push("linux.resources.network.classID (no net_cls hierarchy is mounted)");
        }
        if n.priorities().as_ref().is_some_and(|p| !p.is_empty()) && cg.v1_dir("net_prio").is_none()
        {
            out.push("linux.resources.network.priorities (no net_prio hierarchy is mounted)");
        }
    }
    out
}

/// net_cls/net_prio exist only as v1 controllers; when they are not mounted
/// these settings are ignored (see the crate docs and [`skipped`]).
fn network(cg: &Cgroup, n: &LinuxNetwork) -> Result<()> {
    if let (Some(id), Some(dir)) = (n.class_id(), cg.v1_dir("net_cls")) {
        files::write(dir, "net_cls.classid", &id.to_string())?;
    }
    if let (Some(prios), Some(dir)) = (n.priorities(), cg.v1_dir("net_prio")) {
        for p in prios {
            files::write(
                dir,
                "net_prio.ifpriomap",
                &format!("{} {}", p.name(), p.priority()),
            )?;
        }
    }
    Ok(())
}

/// `rules` is the complete policy: on top of "deny everything" (see
/// [`devices`]). v1 gets it as devices.deny/devices.allow lines, the unified
/// hierarchy as an eBPF program replacing any earlier one.
pub(crate) fn apply_devices(cg: &Cgroup, rules: &[DeviceRule]) -> Result<()> {
    if let Some(dir) = cg.v1_dir("devices") {
        for (file, line) in devices::v1_writes(rules) {
            files::write(dir, file, &line)?;
        }
        return Ok(());
    }
    match cg.unified_dir() {
        Some(dir) => bpf::install_device_filter(dir, &devices::bpf_program(rules)),
        None => Err(Error::ControllerMissing {
            controller: "devices",
            resource: "linux.resources.devices",
        }),
    }
}

fn unified(cg: &Cgroup, values: &std::collections::HashMap<String, String>) -> Result<()> {
    if values.is_empty() {
        return Ok(());
    }
    let Some(dir) = cg.unified_dir() else {
        return Err(Error::Unsupported {
            what: "linux.resources.unified",
            hierarchy: "cgroup v1 only",
        });
    };
    let sorted: BTreeMap<_, _> = values.iter().collect();
    for (key, value) in sorted {
        if key.is_empty() || key.contains('/') || key == "." || key == ".." {
            return Err(Error::InvalidArgument {
                field: "linux.resources.unified",
                reason: format!("{key:?} is not a control file name"),
            });
        }
        files::write(dir, key, value)?;
    }
    Ok(())
}
