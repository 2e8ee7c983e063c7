//! Where and how the container's processes run: the scheduling policy
//! (`process.scheduler`, sched_setattr(2)), the CPU affinity of processes
//! started with `exec` (`process.execCPUAffinity`, sched_setaffinity(2))
//! and the NUMA memory policy (`linux.memoryPolicy`, set_mempolicy(2)).
//!
//! The spec is turned into syscall arguments in the parent, where a bad
//! value becomes a clear error before anything is forked; the `apply_*`
//! functions run in the child between fork and exec and only make the call.

use nix::errno::Errno;
use oci_spec::runtime::{
    LinuxMemoryPolicy, LinuxSchedulerFlag, LinuxSchedulerPolicy, MemoryPolicyFlagType,
    MemoryPolicyModeType, Scheduler,
};

/// `struct sched_attr` of <linux/sched/types.h>, SCHED_ATTR_SIZE_VER1.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedAttr {
    size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
    util_min: u32,
    util_max: u32,
}

/// Turns `process.scheduler` into sched_setattr(2) arguments (config.md
/// "scheduler"; unset numbers are 0, as the spec says).
pub fn sched_attr(s: &Scheduler) -> Result<SchedAttr, String> {
    use LinuxSchedulerPolicy::*;
    let policy = match s.policy() {
        SchedOther => libc::SCHED_OTHER,
        SchedFifo => libc::SCHED_FIFO,
        SchedRr => libc::SCHED_RR,
        SchedBatch => libc::SCHED_BATCH,
        SchedIdle => libc::SCHED_IDLE,
        SchedDeadline => 6, // SCHED_DEADLINE
        SchedIso => {
            return Err(
                "process.scheduler.policy SCHED_ISO is not implemented by Linux (sched(7))".into(),
            )
        }
    } as u32;
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        return Err(format!("process.scheduler.nice {nice} is outside -20..19"));
    }
    let priority = s.priority().unwrap_or(0);
    let realtime = matches!(s.policy(), SchedFifo | SchedRr);
    if realtime && !(1..=99).contains(&priority) {
        return Err(format!(
            "process.scheduler.priority {priority} is outside 1..99, the range of {}",
            policy_name(*s.policy())
        ));
    }
    if !realtime && priority != 0 {
        return Err(format!(
            "process.scheduler.priority must be 0 for {} (only SCHED_FIFO and SCHED_RR have priorities)",
            policy_name(*s.policy())
        ));
    }
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        };
    }
    Ok(SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice,
        priority: priority as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
        util_min: 0,
        // The spec has no clamp values; a maximum clamp of 0 would starve
        // the task, so the kernel's default (no clamp, 1024) stands.
        util_max: 1024,
    })
}

fn policy_name(p: LinuxSchedulerPolicy) -> &'static str {
    use LinuxSchedulerPolicy::*;
    match p {
        SchedOther => "SCHED_OTHER",
        SchedFifo => "SCHED_FIFO",
        SchedRr => "SCHED_RR",
        SchedBatch => "SCHED_BATCH",
        SchedIso => "SCHED_ISO",
        SchedIdle => "SCHED_IDLE",
        SchedDeadline => "SCHED_DEADLINE",
    }
}

/// sched_setattr(2) on the calling thread.
pub fn apply_scheduler(attr: &SchedAttr) -> Result<(), Errno> {
    // SAFETY: attr is a valid, fully initialised sched_attr whose size field
    // matches its layout; the kernel only reads it.
    Errno::result(unsafe {
        libc::syscall(libc::SYS_sched_setattr, 0, attr as *const SchedAttr, 0u32)
    })
    .map(drop)
}

/// A set of CPU or node numbers as the kernel's bitmap of `unsigned long`s.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bitmap(pub Vec<libc::c_ulong>);

const WORD_BITS: u32 = libc::c_ulong::BITS;

/// Parses a list such as `0-3,7` (config.md "execCPUAffinity",
/// config-linux.md "memoryPolicy"). Numbers at or above `limit` are refused.
pub fn parse_list(list: &str, limit: u32) -> Result<Bitmap, String> {
    let mut words: Vec<libc::c_ulong> = Vec::new();
    for part in list.split(',') {
        let part = part.trim();
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let num = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| format!("{list:?} is not a list of numbers and ranges like 0-3,7"))
        };
        let (lo, hi) = (num(lo)?, num(hi)?);
        if lo > hi {
            return Err(format!("{list:?}: range {lo}-{hi} runs backwards"));
        }
        if hi >= limit {
            return Err(format!("{list:?}: {hi} is beyond the limit of {limit}"));
        }
        for n in lo..=hi {
            let (w, b) = ((n / WORD_BITS) as usize, n % WORD_BITS);
            if words.len() <= w {
                words.resize(w + 1, 0);
            }
            words[w] |= 1 << b;
        }
    }
    Ok(Bitmap(words))
}

/// Highest CPU number sched_setaffinity(2) accepts here (CONFIG_NR_CPUS is
/// at most 8192).
const MAX_CPUS: u32 = 8192;

/// Parses an `execCPUAffinity` list; an empty string means "not set".
pub fn cpu_list(list: Option<&str>) -> Result<Option<Bitmap>, String> {
    match list.map(str::trim) {
        None | Some("") => Ok(None),
        Some(l) => parse_list(l, MAX_CPUS).map(Some),
    }
}

/// sched_setaffinity(2) of `pid` (0: the caller).
pub fn apply_affinity(pid: i32, cpus: &Bitmap) -> Result<(), Errno> {
    // SAFETY: the mask is a live slice of exactly the byte length passed.
    Errno::result(unsafe {
        libc::syscall(
            libc::SYS_sched_setaffinity,
            pid,
            std::mem::size_of_val(cpus.0.as_slice()),
            cpus.0.as_ptr(),
        )
    })
    .map(drop)
}

/// set_mempolicy(2) arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemPolicy {
    /// The mode with its MPOL_F_* flags or-ed in.
    pub mode: i32,
    pub nodes: Bitmap,
}

/// MAX_NUMNODES is at most 1 << CONFIG_NODES_SHIFT (10).
const MAX_NODES: u32 = 1024;

/// Turns `linux.memoryPolicy` into set_mempolicy(2) arguments, checking
/// what set_mempolicy(2) asks of the node list for each mode.
pub fn mem_policy(p: &LinuxMemoryPolicy) -> Result<MemPolicy, String> {
    use MemoryPolicyModeType::*;
    let nodes = match p.nodes().as_deref().map(str::trim) {
        None | Some("") => Bitmap::default(),
        Some(l) => parse_list(l, MAX_NODES).map_err(|e| format!("linux.memoryPolicy.nodes {e}"))?,
    };
    let empty = nodes.0.iter().all(|w| *w == 0);
    let (mode, name) = match p.mode() {
        MpolDefault => (0, "MPOL_DEFAULT"),
        MpolPreferred => (1, "MPOL_PREFERRED"),
        MpolBind => (2, "MPOL_BIND"),
        MpolInterleave => (3, "MPOL_INTERLEAVE"),
        MpolLocal => (4, "MPOL_LOCAL"),
        MpolPreferredMany => (5, "MPOL_PREFERRED_MANY"),
        MpolWeightedInterleave => (6, "MPOL_WEIGHTED_INTERLEAVE"),
    };
    match p.mode() {
        MpolDefault | MpolLocal if !empty => {
            return Err(format!("linux.memoryPolicy: {name} takes no nodes"))
        }
        MpolBind | MpolInterleave | MpolWeightedInterleave | MpolPreferredMany if empty => {
            return Err(format!(
                "linux.memoryPolicy: {name} needs at least one node"
            ))
        }
        _ => {}
    }
    let mut flags = 0;
    for f in p.flags().iter().flatten() {
        flags |= match f {
            MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
            MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
            MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
        };
    }
    if flags & (1 << 14) != 0 && flags & (1 << 15) != 0 {
        return Err(
            "linux.memoryPolicy: MPOL_F_RELATIVE_NODES and MPOL_F_STATIC_NODES exclude each other"
                .into(),
        );
    }
    Ok(MemPolicy {
        mode: mode | flags,
        nodes,
    })
}

/// set_mempolicy(2) for the calling thread; children and exec inherit it.
pub fn apply_mem_policy(p: &MemPolicy) -> Result<(), Errno> {
    let (ptr, maxnode) = if p.nodes.0.is_empty() {
        (std::ptr::null(), 0)
    } else {
        // The kernel reads maxnode - 1 bits (get_nodes() in mm/mempolicy.c).
        (
            p.nodes.0.as_ptr(),
            p.nodes.0.len() as libc::c_ulong * libc::c_ulong::from(WORD_BITS) + 1,
        )
    };
    // SAFETY: ptr is null with maxnode 0, or points to the bitmap whose
    // length in bits is maxnode - 1; the kernel only reads it.
    Errno::result(unsafe { libc::syscall(libc::SYS_set_mempolicy, p.mode, ptr, maxnode) }).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(json: serde_json::Value) -> Result<SchedAttr, String> {
        sched_attr(&serde_json::from_value(json).expect("scheduler JSON"))
    }

    #[test]
    fn scheduler_maps_to_sched_attr() {
        let a = sched(serde_json::json!({"policy": "SCHED_FIFO", "priority": 10,
            "flags": ["SCHED_RESET_ON_FORK"]}))
        .expect("fifo");
        assert_eq!((a.policy, a.priority, a.flags), (1, 10, 0x01));
        assert_eq!(a.size, 56, "SCHED_ATTR_SIZE_VER1");
        let b = sched(serde_json::json!({"policy": "SCHED_BATCH", "nice": 7})).expect("batch");
        assert_eq!((b.policy, b.nice, b.priority), (3, 7, 0));
        let d = sched(
            serde_json::json!({"policy": "SCHED_DEADLINE", "runtime": 10,
            "deadline": 20, "period": 30}),
        )
        .expect("deadline");
        assert_eq!((d.policy, d.runtime, d.deadline, d.period), (6, 10, 20, 30));
        for (bad, why) in [
            (serde_json::json!({"policy": "SCHED_ISO"}), "SCHED_ISO"),
            (serde_json::json!({"policy": "SCHED_FIFO"}), "outside 1..99"),
            (
                serde_json::json!({"policy": "SCHED_RR", "priority": 100}),
                "outside 1..99",
            ),
            (
                serde_json::json!({"policy": "SCHED_OTHER", "priority": 3}),
                "must be 0",
            ),
            (
                serde_json::json!({"policy": "SCHED_OTHER", "nice": 20}),
                "-20..19",
            ),
        ] {
            let err = sched(bad.clone()).expect_err("refused");
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn lists_become_bitmaps() {
        let w = |l: &str| parse_list(l, 4096).expect(l).0;
        assert_eq!(w("0"), [1]);
        assert_eq!(w("0-3,7"), [0b1000_1111]);
        assert_eq!(w(" 1 , 3-4 "), [0b11010]);
        let high = w("64,65");
        assert_eq!(high, [0, 0b11]);
        for bad in ["", "a", "3-1", "1,,2", "-1", "5000"] {
            assert!(parse_list(bad, 4096).is_err(), "{bad:?}");
        }
        assert_eq!(cpu_list(Some("")).expect("empty"), None);
        assert_eq!(cpu_list(None).expect("unset"), None);
        assert!(cpu_list(Some("0-1")).expect("set").is_some());
    }

    #[test]
    fn memory_policies_check_their_node_lists() {
        let pol = |json: serde_json::Value| {
            mem_policy(&serde_json::from_value(json).expect("memoryPolicy JSON"))
        };
        let bind = pol(serde_json::json!({"mode": "MPOL_BIND", "nodes": "0",
            "flags": ["MPOL_F_STATIC_NODES"]}))
        .expect("bind");
        assert_eq!(bind.mode, 2 | 1 << 15);
        assert_eq!(bind.nodes.0, [1]);
        assert_eq!(
            pol(serde_json::json!({"mode": "MPOL_LOCAL"}))
                .expect("local")
                .mode,
            4
        );
        assert_eq!(
            pol(serde_json::json!({"mode": "MPOL_PREFERRED"}))
                .expect("preferred, local")
                .mode,
            1
        );
        for (bad, why) in [
            (
                serde_json::json!({"mode": "MPOL_BIND"}),
                "at least one node",
            ),
            (
                serde_json::json!({"mode": "MPOL_DEFAULT", "nodes": "0"}),
                "takes no nodes",
            ),
            (
                serde_json::json!({"mode": "MPOL_INTERLEAVE", "nodes": "x"}),
                "nodes",
            ),
            (
                serde_json::json!({"mode": "MPOL_BIND", "nodes": "0",
                    "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]}),
                "exclude each other",
            ),
        ] {
            let err = pol(bad.clone()).expect_err("refused");
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
