//! Resource usage, in the shape of the "data" object of runc's
//! `events --stats` so tools reading that format can read ours.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::{files, Cgroup};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    pub pids: PidsStats,
    pub blkio: BlkioStats,
    /// Keyed by page size ("2MB").
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hugetlb: BTreeMap<String, HugetlbStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuStats {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

/// All times in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuUsage {
    pub total: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Throttling {
    pub periods: u64,
    pub throttled_periods: u64,
    /// Nanoseconds.
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryStats {
    /// Page cache: v1 `cache`, v2 `file` from memory.stat.
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    /// memory.stat verbatim.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

/// Bytes; `u64::MAX` as a limit means "no limit".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryEntry {
    pub limit: u64,
    pub usage: u64,
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidsStats {
    pub current: u64,
    /// 0 when unlimited.
    pub limit: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlkioStats {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    /// "Read", "Write", "Sync", "Async", "Discard" or "Total".
    pub op: String,
    pub value: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HugetlbStats {
    pub usage: u64,
    /// Peak usage (v1 only; 0 on v2, which has no such counter).
    pub max: u64,
    pub failcnt: u64,
}

/// The v1 directory of `v1`, or the unified one if it offers `v2`. A
/// controller that exists nowhere yields `None` and its stats stay zero.
fn locate<'a>(cg: &'a Cgroup, v1: &str, v2: &str) -> Option<(&'a Path, bool)> {
    if let Some(d) = cg.v1_dir(v1) {
        return Some((d, true));
    }
    match cg.unified_dir() {
        Some(d) if cg.v2_has(v2) => Some((d, false)),
        _ => None,
    }
}

pub(crate) fn collect(cg: &Cgroup) -> Result<Stats> {
    let mut s = Stats::default();
    cpu(cg, &mut s.cpu)?;
    if let Some((dir, v1)) = locate(cg, "memory", "memory") {
        if v1 {
            memory_v1(dir, &mut s.memory)?;
        } else {
            memory_v2(dir, &mut s.memory)?;
        }
    }
    if let Some((dir, _)) = locate(cg, "pids", "pids") {
        s.pids.current = files::read_u64_or_zero(dir, "pids.current")?;
        s.pids.limit = match files::read_u64_or_zero(dir, "pids.max")? {
            u64::MAX => 0,
            n => n,
        };
    }
    if let Some((dir, v1)) = locate(cg, "blkio", "io") {
        if v1 {
            blkio_v1(dir, &mut s.blkio)?;
        } else {
            blkio_v2(dir, &mut s.blkio)?;
        }
    }
    if let Some((dir, v1)) = locate(cg, "hugetlb", "hugetlb") {
        hugetlb(dir, v1, &mut s.hugetlb)?;
    }
    Ok(s)
}

/// USER_HZ, the unit of cpuacct.stat (proc(5)).
fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|t| *t > 0).unwrap_or(100)
}

fn cpu(cg: &Cgroup, out: &mut CpuStats) -> Result<()> {
    if let Some(dir) = cg.v1_dir("cpuacct") {
        out.usage.total = files::read_u64_or_zero(dir, "cpuacct.usage")?;
        if let Some(p) = files::read_opt(dir, "cpuacct.usage_percpu")? {
            out.usage.percpu = p
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
        }
        if let Some(stat) = files::read_opt(dir, "cpuacct.stat")? {
            let ns = 1_000_000_000 / clock_ticks();
            for (k, v) in files::parse_flat_keyed(&stat) {
                match k {
                    "user" => out.usage.user = v.saturating_mul(ns),
                    "system" => out.usage.kernel = v.saturating_mul(ns),
                    _ => {}
                }
            }
        }
    } else if let Some(dir) = cg.unified_dir() {
        // cpu.stat's usage lines are there even without the cpu controller.
        if let Some(stat) = files::read_opt(dir, "cpu.stat")? {
            for (k, v) in files::parse_flat_keyed(&stat) {
                match k {
                    "usage_usec" => out.usage.total = v.saturating_mul(1000),
                    "user_usec" => out.usage.user = v.saturating_mul(1000),
                    "system_usec" => out.usage.kernel = v.saturating_mul(1000),
                    _ => {}
                }
            }
        }
    }
    if let Some((dir, v1)) = locate(cg, "cpu", "cpu") {
        if let Some(stat) = files::read_opt(dir, "cpu.stat")? {
            for (k, v) in files::parse_flat_keyed(&stat) {
                match k {
                    "nr_periods" => out.throttling.periods = v,
                    "nr_throttled" => out.throttling.throttled_periods = v,
                    "throttled_time" if v1 => out.throttling.throttled_time = v,
                    "throttled_usec" if !v1 => {
                        out.throttling.throttled_time = v.saturating_mul(1000)
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

fn read_raw(dir: &Path, file: &str) -> Result<BTreeMap<String, u64>> {
    Ok(files::read_opt(dir, file)?
        .map(|t| {
            files::parse_flat_keyed(&t)
                .map(|(k, v)| (k.to_owned(), v))
                .collect()
        })
        .unwrap_or_default())
}

fn memory_v1(dir: &Path, out: &mut MemoryStats) -> Result<()> {
    let entry = |prefix: &str| -> Result<MemoryEntry> {
        let f = |name: &str| files::read_u64_or_zero(dir, &format!("{prefix}.{name}"));
        Ok(MemoryEntry {
            limit: f("limit_in_bytes")?,
            usage: f("usage_in_bytes")?,
            max: f("max_usage_in_bytes")?,
            failcnt: f("failcnt")?,
        })
    };
    out.usage = entry("memory")?;
    // memsw counts memory+swap, which is what runc reports as "swap" too.
    out.swap = entry("memory.memsw")?;
    out.kernel = entry("memory.kmem")?;
    out.kernel_tcp = entry("memory.kmem.tcp")?;
    out.raw = read_raw(dir, "memory.stat")?;
    out.cache = out.raw.get("cache").copied().unwrap_or(0);
    Ok(())
}

fn memory_v2(dir: &Path, out: &mut MemoryStats) -> Result<()> {
    out.usage = MemoryEntry {
        limit: files::read_u64_or_zero(dir, "memory.max")?,
        usage: files::read_u64_or_zero(dir, "memory.current")?,
        // memory.peak appeared in Linux 5.19.
        max: files::read_u64_or_zero(dir, "memory.peak")?,
        failcnt: files::read_keyed(dir, "memory.events", "max")?.unwrap_or(0),
    };
    out.swap = MemoryEntry {
        limit: files::read_u64_or_zero(dir, "memory.swap.max")?,
        usage: files::read_u64_or_zero(dir, "memory.swap.current")?,
        max: files::read_u64_or_zero(dir, "memory.swap.peak")?,
        failcnt: files::read_keyed(dir, "memory.swap.events", "max")?.unwrap_or(0),
    };
    out.raw = read_raw(dir, "memory.stat")?;
    out.cache = out.raw.get("file").copied().unwrap_or(0);
    out.kernel.usage = out.raw.get("kernel").copied().unwrap_or(0);
    out.kernel_tcp.usage = out.raw.get("sock").copied().unwrap_or(0);
    Ok(())
}

/// Lines "MAJ:MIN Op value", ending with a "Total value" line.
fn parse_blkio_v1(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|line| {
            let mut it = line.split_whitespace();
            let dev = it.next()?;
            let op = it.next()?;
            let value = it.next()?.parse().ok()?;
            let (major, minor) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                op: op.to_owned(),
                value,
            })
        })
        .collect()
}

fn blkio_v1(dir: &Path, out: &mut BlkioStats) -> Result<()> {
    // The throttle files are filled whatever the IO scheduler, unlike the
    // CFQ/BFQ ones; fall back to those only when throttling is absent.
    let read = |a: &str, b: &str| -> Result<Vec<BlkioEntry>> {
        let text = match files::read_opt(dir, a)? {
            Some(t) => Some(t),
            None => files::read_opt(dir, b)?,
        };
        Ok(text.as_deref().map(parse_blkio_v1).unwrap_or_default())
    };
    out.io_service_bytes_recursive = read(
        "blkio.throttle.io_service_bytes_recursive",
        "blkio.io_service_bytes_recursive",
    )?;
    out.io_serviced_recursive = read(
        "blkio.throttle.io_serviced_recursive",
        "blkio.io_serviced_recursive",
    )?;
    Ok(())
}

/// io.stat lines: "MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N".
fn blkio_v2(dir: &Path, out: &mut BlkioStats) -> Result<()> {
    let Some(text) = files::read_opt(dir, "io.stat")? else {
        return Ok(());
    };
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let Some((major, minor)) = it.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
            continue;
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut out.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut out.io_service_bytes_recursive, "Write"),
                "dbytes" => (&mut out.io_service_bytes_recursive, "Discard"),
                "rios" => (&mut out.io_serviced_recursive, "Read"),
                "wios" => (&mut out.io_serviced_recursive, "Write"),
                "dios" => (&mut out.io_serviced_recursive, "Discard"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_owned(),
                value,
            });
        }
    }
    Ok(())
}

/// Page sizes come from the file names ("hugetlb.2MB.limit_in_bytes" or
/// "hugetlb.2MB.max"), so no list of sizes is hard-coded.
fn hugetlb(dir: &Path, v1: bool, out: &mut BTreeMap<String, HugetlbStats>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Read {
                path: dir.to_owned(),
                source,
            })
        }
    };
    let suffix = if v1 { ".limit_in_bytes" } else { ".max" };
    for entry in entries {
        let entry = entry.map_err(|source| Error::Read {
            path: dir.to_owned(),
            source,
        })?;
        let name = entry.file_name();
        let Some(size) = name
            .to_str()
            .and_then(|n| n.strip_prefix("hugetlb."))
            .and_then(|n| n.strip_suffix(suffix))
            .filter(|s| !s.contains('.'))
        else {
            continue;
        };
        let f = |file: String| files::read_u64_or_zero(dir, &file);
        let stats = if v1 {
            HugetlbStats {
                usage: f(format!("hugetlb.{size}.usage_in_bytes"))?,
                max: f(format!("hugetlb.{size}.max_usage_in_bytes"))?,
                failcnt: f(format!("hugetlb.{size}.failcnt"))?,
            }
        } else {
            HugetlbStats {
                usage: f(format!("hugetlb.{size}.current"))?,
                max: 0,
                failcnt: files::read_keyed(dir, &format!("hugetlb.{size}.events"), "max")?
                    .unwrap_or(0),
            }
        };
        out.insert(size.to_owned(), stats);
    }
    Ok(())
}
