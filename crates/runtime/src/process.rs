//! The container process's identity and limits: capabilities, user and
//! groups, rlimits, and finding the program to exec. Plans are computed in the
//! parent; the `apply_*` functions run in the child between fork and exec and
//! only make syscalls on prepared data.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use oci_spec::runtime::{Capabilities, Capability, PosixRlimit, PosixRlimitType, Process};

use crate::error::{Error, Result};

/// The five capability sets as bit masks (capabilities(7)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

/// The number of a capability, as <linux/capability.h> defines it.
pub fn cap_number(cap: &Capability) -> u32 {
    use Capability::*;
    match cap {
        Chown => 0,
        DacOverride => 1,
        DacReadSearch => 2,
        Fowner => 3,
        Fsetid => 4,
        Kill => 5,
        Setgid => 6,
        Setuid => 7,
        Setpcap => 8,
        LinuxImmutable => 9,
        NetBindService => 10,
        NetBroadcast => 11,
        NetAdmin => 12,
        NetRaw => 13,
        IpcLock => 14,
        IpcOwner => 15,
        SysModule => 16,
        SysRawio => 17,
        SysChroot => 18,
        SysPtrace => 19,
        SysPacct => 20,
        SysAdmin => 21,
        SysBoot => 22,
        SysNice => 23,
        SysResource => 24,
        SysTime => 25,
        SysTtyConfig => 26,
        Mknod => 27,
        Lease => 28,
        AuditWrite => 29,
        AuditControl => 30,
        Setfcap => 31,
        MacOverride => 32,
        MacAdmin => 33,
        Syslog => 34,
        WakeAlarm => 35,
        BlockSuspend => 36,
        AuditRead => 37,
        Perfmon => 38,
        Bpf => 39,
        CheckpointRestore => 40,
    }
}

/// The highest capability the running kernel knows.
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

fn mask(set: &Option<Capabilities>) -> u64 {
    set.iter()
        .flatten()
        .map(|c| 1u64 << cap_number(c))
        .fold(0, |a, b| a | b)
}

impl CapSets {
    pub fn from_process(process: &Process) -> CapSets {
        match process.capabilities() {
            None => CapSets::default(),
            Some(c) => CapSets {
                bounding: mask(c.bounding()),
                effective: mask(c.effective()),
                permitted: mask(c.permitted()),
                inheritable: mask(c.inheritable()),
                ambient: mask(c.ambient()),
            },
        }
    }
}

impl CapSets {
    /// Leaves out of the effective, permitted, inheritable and ambient sets
    /// what the runtime cannot grant, and returns those left out. config.md
    /// ("capabilities"): a capability that cannot be granted MUST be logged
    /// as a warning and SHOULD NOT fail the container, e.g. when the runtime
    /// itself runs with a reduced bounding set. The bounding set needs no
    /// change: a capability missing there is simply never dropped.
    pub fn restricted_to(self, grantable: u64) -> (CapSets, u64) {
        let wanted = self.effective | self.permitted | self.inheritable | self.ambient;
        let restricted = CapSets {
            bounding: self.bounding,
            effective: self.effective & grantable,
            permitted: self.permitted & grantable,
            inheritable: self.inheritable & grantable,
            ambient: self.ambient & grantable,
        };
        (restricted, wanted & !grantable)
    }
}

/// The capabilities this process may pass on: its own permitted set
/// (capabilities(7): capset(2) can never add to the permitted set). A
/// process that enters a user namespace holds every capability there, so
/// callers only ask when the container stays in the runtime's.
pub fn own_permitted() -> u64 {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: header and data are valid v3 capget arguments, data has the
    // two elements version 3 writes.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if r != 0 {
        return u64::MAX;
    }
    u64::from(data[0].permitted) | (u64::from(data[1].permitted) << 32)
}

/// Names the capabilities in `mask` ("CAP_SYS_TIME, CAP_BPF").
pub fn cap_names(mask: u64) -> String {
    (0..64)
        .filter(|n| mask & (1 << n) != 0)
        .map(cap_name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The kernel's name of capability `n`, as config.json spells it.
pub fn cap_name(n: u32) -> String {
    const NAMES: [&str; 41] = [
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    ];
    match NAMES.get(n as usize) {
        Some(name) => format!("CAP_{name}"),
        None => format!("CAP_{n}"),
    }
}

/// Drops every capability outside the bounding set. Needs CAP_SETPCAP, so it
/// runs before the user switch.
pub fn apply_bounding(caps: &CapSets, last: u32) -> Result<(), Errno> {
    for cap in 0..=last {
        if caps.bounding & (1 << cap) == 0 {
            // SAFETY: PR_CAPBSET_DROP takes a capability number, no pointers, so no
            // memory is touched; its failure is checked below.
            let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
            // EINVAL: the kernel does not know this capability.
            if r < 0 && Errno::last() != Errno::EINVAL {
                return Err(Errno::last());
            }
        }
    }
    Ok(())
}

/// Sets effective, permitted and inheritable, then raises ambient ones.
pub fn apply_caps(caps: &CapSets, last: u32) -> Result<(), Errno> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let header = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let lo = |m: u64| m as u32;
    let hi = |m: u64| (m >> 32) as u32;
    let data = [
        Data {
            effective: lo(caps.effective),
            permitted: lo(caps.permitted),
            inheritable: lo(caps.inheritable),
        },
        Data {
            effective: hi(caps.effective),
            permitted: hi(caps.permitted),
            inheritable: hi(caps.inheritable),
        },
    ];
    // SAFETY: header and data are valid v3 capset arguments.
    Errno::result(unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) })?;
    // SAFETY: PR_CAP_AMBIENT_CLEAR_ALL takes integers, no pointers, so no
    // memory is touched; it only empties the ambient set (a kernel without
    // ambient capabilities has none to clear, so the result is ignored).
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    // capabilities(7): a capability can be ambient only while it is both
    // permitted and inheritable; raising any other fails with EPERM. Configs
    // that list ambient caps with an empty inheritable set are common, and
    // run with those ambient caps left out.
    let ambient = caps.ambient & caps.permitted & caps.inheritable;
    for cap in 0..=last {
        if ambient & (1 << cap) != 0 {
            // SAFETY: PR_CAP_AMBIENT_RAISE takes a capability number, no pointers, so
            // no memory is touched; its failure is checked below.
            let r = unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE,
                    cap as libc::c_ulong,
                    0,
                    0,
                )
            };
            Errno::result(r)?;
        }
    }
    Ok(())
}

/// Switches to the process's user and groups, keeping capabilities across
/// the uid change so `apply_caps` can set them afterwards.
pub fn apply_user(
    uid: u32,
    gid: u32,
    groups: &[libc::gid_t],
    may_setgroups: bool,
) -> Result<(), Errno> {
    // SAFETY: PR_SET_KEEPCAPS takes integers, no pointers, so no memory is touched; it
    // only keeps the permitted set across the uid change below.
    Errno::result(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) })?;
    if may_setgroups {
        // SAFETY: setgroups reads `groups.len()` gid_t values from `groups`, a slice
        // of exactly that length alive across the call.
        Errno::result(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) })?;
    }
    // Raw syscalls: glibc's wrappers broadcast to all threads with signals,
    // which is pointless here and not async-signal-safe after fork.
    // SAFETY: setresgid takes integers and touches no memory; as a raw syscall it
    // changes only this thread, which is all the process has after fork.
    Errno::result(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) })?;
    // SAFETY: setresuid takes integers and touches no memory; as a raw syscall it
    // changes only this thread, which is all the process has after fork.
    Errno::result(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) })?;
    Ok(())
}

/// A prepared rlimit.
#[derive(Clone, Copy, Debug)]
pub struct Rlimit {
    pub resource: libc::__rlimit_resource_t,
    pub soft: u64,
    pub hard: u64,
}

pub fn rlimits(limits: &[PosixRlimit]) -> Vec<Rlimit> {
    limits
        .iter()
        .map(|l| Rlimit {
            resource: match l.typ() {
                PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
                PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
                PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
                PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
                PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
                PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
                PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
                PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
                PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
                PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
                PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
                PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
                PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
                PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
                PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
                PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
            },
            soft: l.soft(),
            hard: l.hard(),
        })
        .collect()
}

pub fn apply_rlimits(limits: &[Rlimit]) -> Result<(), (libc::__rlimit_resource_t, Errno)> {
    for l in limits {
        let r = libc::rlimit {
            rlim_cur: l.soft,
            rlim_max: l.hard,
        };
        // SAFETY: r is a valid rlimit.
        if unsafe { libc::setrlimit(l.resource, &r) } < 0 {
            return Err((l.resource, Errno::last()));
        }
    }
    Ok(())
}

/// Marks every descriptor from `first` up close-on-exec, so nothing of the
/// runtime's leaks into the container (CVE-2024-21626).
pub fn cloexec_from(first: u32) -> Result<(), Errno> {
    // SAFETY: close_range takes integers and touches no memory; CLOSE_RANGE_CLOEXEC
    // only marks descriptors, none is closed under an owner.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    Errno::result(r).map(drop)
}

/// Closes every descriptor from `first` up except those in `keep`.
pub fn close_from_except(first: i32, keep: &[i32]) {
    let mut start = first;
    let mut keep: Vec<i32> = keep.iter().copied().filter(|k| *k >= first).collect();
    keep.sort_unstable();
    for k in keep {
        if k > start {
            // SAFETY: close_range takes integers and touches no memory. What it
            // closes may still have Rust owners in this child; none is used again,
            // as the child only execs, or reports its error and exits.
            unsafe { libc::syscall(libc::SYS_close_range, start as u32, (k - 1) as u32, 0) };
        }
        start = k + 1;
    }
    // SAFETY: close_range takes integers and touches no memory. What it
    // closes may still have Rust owners in this child; none is used again,
    // as the child only execs, or reports its error and exits.
    unsafe { libc::syscall(libc::SYS_close_range, start as u32, u32::MAX, 0) };
}

/// Finds `arg0` the way execvp would, with the container's PATH.
pub fn find_executable(arg0: &str, env: &[String]) -> Result<PathBuf> {
    if arg0.is_empty() {
        return Err(Error::Invalid("process.args[0] is empty".into()));
    }
    let is_exec = |p: &Path| {
        let Ok(c) = CString::new(p.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: c is a valid C string.
        let executable = unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0;
        executable && p.is_file()
    };
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        if is_exec(&p) {
            return Ok(p);
        }
        // The errno words matter: the docker CLI turns "no such file or
        // directory" into exit status 127 and "permission denied" or "is a
        // directory" into 126, as a shell would.
        let why = match std::fs::metadata(&p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                format!("stat {arg0}: no such file or directory")
            }
            Err(e) => format!("stat {arg0}: {e}"),
            Ok(m) if m.is_dir() => "is a directory".to_string(),
            Ok(_) => "permission denied".to_string(),
        };
        return Err(Error::Exec(format!("exec {arg0:?}: {why}")));
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':')
        .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(arg0))
        .find(|p| is_exec(p))
        .ok_or_else(|| Error::Exec(format!("exec {arg0:?}: executable file not found in $PATH")))
}

pub fn cstrings(items: &[String], what: &str) -> Result<Vec<CString>> {
    items
        .iter()
        .map(|s| {
            CString::new(s.as_bytes())
                .map_err(|_| Error::Invalid(format!("{what} {s:?} holds a NUL byte")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_numbers_follow_the_kernel_header() {
        assert_eq!(cap_number(&Capability::Chown), 0);
        assert_eq!(cap_number(&Capability::SysAdmin), 21);
        assert_eq!(cap_number(&Capability::CheckpointRestore), 40);
    }

    #[test]
    fn capabilities_the_runtime_lacks_are_left_out_and_reported() {
        let sys_time = 1u64 << 25;
        let chown = 1u64;
        let wanted = CapSets {
            bounding: chown | sys_time,
            effective: chown | sys_time,
            permitted: chown | sys_time,
            inheritable: sys_time,
            ambient: sys_time,
        };
        let (got, dropped) = wanted.restricted_to(!sys_time);
        assert_eq!(dropped, sys_time);
        assert_eq!(got.effective, chown);
        assert_eq!(got.permitted, chown);
        assert_eq!(got.inheritable, 0);
        assert_eq!(got.ambient, 0);
        assert_eq!(got.bounding, chown | sys_time, "bounding is left alone");
        let (same, none) = wanted.restricted_to(u64::MAX);
        assert_eq!((same, none), (wanted, 0));
        assert_eq!(cap_names(dropped | chown), "CAP_CHOWN, CAP_SYS_TIME");
        assert_eq!(cap_name(40), "CAP_CHECKPOINT_RESTORE");
    }

    #[test]
    fn this_process_knows_its_own_permitted_set() {
        let mut status = String::new();
        std::io::Read::read_to_string(
            &mut std::fs::File::open("/proc/self/status").expect("status"),
            &mut status,
        )
        .expect("read");
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix("CapPrm:"))
            .expect("CapPrm line");
        let want = u64::from_str_radix(line.trim(), 16).expect("hex");
        assert_eq!(own_permitted(), want);
    }

    #[test]
    fn executables_are_found_on_path() {
        let env = vec!["PATH=/nonexistent:/bin:/usr/bin".to_string()];
        let sh = find_executable("sh", &env).expect("sh on PATH");
        assert!(sh.ends_with("sh"));
        assert!(find_executable("no-such-program-xyz", &env).is_err());
        assert!(
            find_executable("/etc/passwd", &env).is_err(),
            "not executable"
        );
        assert!(find_executable("", &env).is_err());
    }
}
