//! Seccomp: compiles the OCI `linux.seccomp` profile to a classic BPF program
//! and installs it.
//!
//! [`compile`] runs in the runtime before it forks and does all the work and
//! allocation; [`Filter::install`] runs in the container's init process
//! between fork and execve and only makes the seccomp(2) call.
//!
//! # Semantics
//!
//! The profile follows the OCI runtime spec (config-linux.md, "Seccomp") and
//! the behaviour runc and crun users get from libseccomp, with these rules:
//!
//! - **Architectures.** x86_64 (also `SCMP_ARCH_NATIVE`), `SCMP_ARCH_X86`
//!   (i386 numbers) and `SCMP_ARCH_X32` (x86_64 numbers with
//!   `__X32_SYSCALL_BIT`). An empty or missing list means the native arch
//!   only. Any other arch (aarch64, arm, ...) is rejected: the syscall
//!   tables cover the x86 family only. A syscall made through an ABI that is
//!   not listed gets `SECCOMP_RET_KILL_THREAD`, which is libseccomp's default
//!   "bad arch" action; this includes x32 calls when only x86_64 is listed,
//!   since both report AUDIT_ARCH_X86_64 (seccomp(2), "Caveats"). The one
//!   exception is syscall number -1 on x86_64, which is no syscall (a tracer
//!   sets it to skip a call; called directly it fails with ENOSYS): it gets
//!   the default action.
//! - **Rules.** Each `syscalls[]` entry gives every listed name a rule; the
//!   `args` of one entry are ANDed, even two on the same argument index
//!   (runc instead splits such an entry into one rule per comparison, as
//!   libseccomp allows one comparison per argument and rule). For one
//!   syscall the rules are tried in profile order and the first whose
//!   arguments all match decides, so an entry without `args` ends the list
//!   for its names and later entries for them are never reached. No rule
//!   matching means `defaultAction`. First match is the rule proposed for
//!   the spec in opencontainers/runtime-spec#1159; libseccomp promises no
//!   order between conflicting rules of one syscall.
//! - **Names** unknown for an ABI are skipped for that ABI (as runc does); an
//!   entry whose names are all unknown contributes nothing.
//! - **Arguments** are compared as 64-bit values on x86_64, as two 32-bit
//!   halves since classic BPF is 32-bit. i386 and x32 are 32-bit ABIs, so
//!   there only the low halves of the argument and of `value` / `valueTwo`
//!   are compared, as libseccomp does for them.
//!   `SCMP_CMP_MASKED_EQ` matches when `arg & value == valueTwo`.
//! - **Actions.** `SCMP_ACT_KILL` is `SCMP_ACT_KILL_THREAD`. `errnoRet`
//!   (or `defaultErrnoRet` for the default action) is the errno for
//!   `SCMP_ACT_ERRNO` and the tracer data for `SCMP_ACT_TRACE`; both default
//!   to EPERM and must fit the 16-bit SECCOMP_RET_DATA field. Other actions
//!   ignore it.
//! - **`SCMP_ACT_NOTIFY`** installs with `SECCOMP_FILTER_FLAG_NEW_LISTENER`;
//!   [`Filter::install_with_listener`] returns the listener fd, which the
//!   runtime sends to `listenerPath`. It is refused as the default action:
//!   the init process could then not even send the fd or execve.
//! - **Flags** `SECCOMP_FILTER_FLAG_LOG`, `_SPEC_ALLOW` and `_TSYNC` are
//!   passed to seccomp(2). TSYNC is dropped when a listener is requested:
//!   the kernel refuses the pair (seccomp(2), EINVAL) and the init process is
//!   single-threaded, so it would be a no-op anyway.
//!
//! # Program shape
//!
//! The program loads `seccomp_data.arch` and compares it with each ABI's
//! AUDIT_ARCH value. Each ABI then loads `nr` and runs a binary search over
//! ranges of syscall numbers: numbers whose outcome does not depend on the
//! arguments are merged into ranges that jump straight to a shared `RET`, and
//! the others jump to their rules' argument checks. The length is checked
//! against BPF_MAXINSNS.

mod bpf;
mod syscalls;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

pub use bpf::Insn;
use bpf::{Builder, Cond, Label, SockFprog, BPF_MAXINSNS};

/// AUDIT_ARCH_X86_64 = EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
/// (include/uapi/linux/audit.h).
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// AUDIT_ARCH_I386 = EM_386 | __AUDIT_ARCH_LE.
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// x32 syscalls report AUDIT_ARCH_X86_64 and set this bit in `nr`
/// (arch/x86/include/uapi/asm/unistd.h).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Offsets in `struct seccomp_data` (include/uapi/linux/seccomp.h):
/// `{ int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]; }`.
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
const OFFSET_ARGS: u32 = 16;
/// Number of syscall arguments in `seccomp_data.args`.
const MAX_ARGS: usize = 6;

/// The errno for `SCMP_ACT_ERRNO` and `SCMP_ACT_TRACE` without `errnoRet`.
const DEFAULT_ERRNO: u32 = libc::EPERM as u32;

/// Errors from compiling a seccomp profile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("seccomp architecture {arch} is not supported (only x86_64, x86 and x32 are)")]
    UnsupportedArch { arch: String },
    #[error("errnoRet {value} for {rule} does not fit the 16-bit SECCOMP_RET_DATA field")]
    ReturnDataTooLarge { rule: String, value: u32 },
    #[error("argument index {index} for syscall {names} is out of range (must be below 6)")]
    ArgIndexOutOfRange { names: String, index: usize },
    #[error("SCMP_ACT_NOTIFY cannot be the seccomp default action")]
    NotifyAsDefaultAction,
    #[error("SCMP_ACT_NOTIFY is used for syscall {names} but listenerPath is not set")]
    NotifyWithoutListenerPath { names: String },
    #[error("seccomp program has {len} instructions, more than the kernel limit of {max}")]
    ProgramTooLong { len: usize, max: usize },
}

/// A syscall ABI the compiler knows the numbers of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Abi {
    X86_64,
    X32,
    I386,
}

impl Abi {
    fn table(self) -> &'static [(&'static str, u32)] {
        match self {
            Abi::X86_64 => syscalls::X86_64,
            Abi::X32 => syscalls::X32,
            Abi::I386 => syscalls::I386,
        }
    }

    /// The number of `name` in this ABI, as the kernel puts it in
    /// `seccomp_data.nr`.
    fn number(self, name: &str) -> Option<u32> {
        let table = self.table();
        table
            .binary_search_by(|(n, _)| n.as_bytes().cmp(name.as_bytes()))
            .ok()
            .map(|i| table[i].1)
    }

    /// Whether arguments are compared on their low 32 bits only. x32 passes
    /// 64-bit registers, but is a 32-bit ABI for libseccomp, whose
    /// behaviour profiles are written against.
    fn narrow_args(self) -> bool {
        matches!(self, Abi::I386 | Abi::X32)
    }

    fn from_arch(arch: Arch) -> Result<Abi, Error> {
        match arch {
            Arch::ScmpArchNative if cfg!(target_arch = "x86_64") => Ok(Abi::X86_64),
            Arch::ScmpArchX86_64 => Ok(Abi::X86_64),
            Arch::ScmpArchX86 => Ok(Abi::I386),
            Arch::ScmpArchX32 => Ok(Abi::X32),
            other => Err(Error::UnsupportedArch {
                arch: other.to_string(),
            }),
        }
    }
}

/// One comparison of a syscall argument.
#[derive(Clone, Debug)]
struct ArgCheck {
    index: u32,
    op: LinuxSeccompOperator,
    value: u64,
    value_two: u64,
}

/// A rule for one syscall: all checks must hold for `action` to apply.
#[derive(Clone, Debug)]
struct Rule {
    action: u32,
    checks: Vec<ArgCheck>,
}

/// A compiled seccomp filter, ready to install.
#[derive(Clone, Debug)]
pub struct Filter {
    program: Vec<Insn>,
    flags: libc::c_ulong,
    listener: bool,
}

/// Compiles `profile` to a [`Filter`]. See the module documentation for the
/// semantics.
pub fn compile(profile: &LinuxSeccomp) -> Result<Filter, Error> {
    let mut abis = Vec::new();
    for arch in profile.architectures().iter().flatten() {
        let abi = Abi::from_arch(*arch)?;
        if !abis.contains(&abi) {
            abis.push(abi);
        }
    }
    if abis.is_empty() {
        abis.push(Abi::from_arch(Arch::ScmpArchNative)?);
    }

    if profile.default_action() == LinuxSeccompAction::ScmpActNotify {
        return Err(Error::NotifyAsDefaultAction);
    }
    let default = action_value(
        profile.default_action(),
        profile.default_errno_ret(),
        "defaultAction",
    )?;

    let mut rules: BTreeMap<Abi, BTreeMap<u32, Vec<Rule>>> = BTreeMap::new();
    let mut listener = false;
    for entry in profile.syscalls().iter().flatten() {
        let names = entry.names().join(",");
        let action = action_value(entry.action(), entry.errno_ret(), &names)?;
        let mut checks = Vec::new();
        for arg in entry.args().iter().flatten() {
            let index = arg.index();
            if index >= MAX_ARGS {
                return Err(Error::ArgIndexOutOfRange { names, index });
            }
            checks.push(ArgCheck {
                index: u32::try_from(index).expect("index is below MAX_ARGS"),
                op: arg.op(),
                value: arg.value(),
                // runc and crun treat a missing valueTwo as 0.
                value_two: arg.value_two().unwrap_or(0),
            });
        }
        let mut used = false;
        for name in entry.names() {
            for &abi in &abis {
                if let Some(nr) = abi.number(name) {
                    used = true;
                    rules
                        .entry(abi)
                        .or_default()
                        .entry(nr)
                        .or_default()
                        .push(Rule {
                            action,
                            checks: checks.clone(),
                        });
                }
            }
        }
        if used && entry.action() == LinuxSeccompAction::ScmpActNotify {
            if profile.listener_path().is_none() {
                return Err(Error::NotifyWithoutListenerPath { names });
            }
            listener = true;
        }
    }

    let mut flags: libc::c_ulong = 0;
    for flag in profile.flags().iter().flatten() {
        flags |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
        };
    }
    if listener {
        flags &= !libc::SECCOMP_FILTER_FLAG_TSYNC;
        flags |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
    }

    let program = generate(&abis, &rules, default)?;
    Ok(Filter {
        program,
        flags,
        listener,
    })
}

/// The SECCOMP_RET_* value of an action (seccomp(2), "Filter return values").
fn action_value(action: LinuxSeccompAction, errno: Option<u32>, rule: &str) -> Result<u32, Error> {
    let with_data = |base: u32| {
        let value = errno.unwrap_or(DEFAULT_ERRNO);
        if value > libc::SECCOMP_RET_DATA {
            return Err(Error::ReturnDataTooLarge {
                rule: rule.to_owned(),
                value,
            });
        }
        Ok(base | value)
    };
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            libc::SECCOMP_RET_KILL_THREAD
        }
        LinuxSeccompAction::ScmpActKillProcess => libc::SECCOMP_RET_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => libc::SECCOMP_RET_TRAP,
        LinuxSeccompAction::ScmpActErrno => with_data(libc::SECCOMP_RET_ERRNO)?,
        LinuxSeccompAction::ScmpActTrace => with_data(libc::SECCOMP_RET_TRACE)?,
        LinuxSeccompAction::ScmpActNotify => libc::SECCOMP_RET_USER_NOTIF,
        LinuxSeccompAction::ScmpActLog => libc::SECCOMP_RET_LOG,
        LinuxSeccompAction::ScmpActAllow => libc::SECCOMP_RET_ALLOW,
    })
}

/// The action for calls through an ABI the profile does not list
/// (libseccomp's default SCMP_FLTATR_ACT_BADARCH).
const BAD_ARCH_ACTION: u32 = libc::SECCOMP_RET_KILL_THREAD;

/// What a range of syscall numbers leads to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    /// An action that does not depend on the arguments.
    Ret(u32),
    /// The argument checks emitted at this label.
    Checks(Label),
}

fn generate(
    abis: &[Abi],
    rules: &BTreeMap<Abi, BTreeMap<u32, Vec<Rule>>>,
    default: u32,
) -> Result<Vec<Insn>, Error> {
    let empty = BTreeMap::new();
    let rules_of = |abi: Abi| {
        if abis.contains(&abi) {
            Some(rules.get(&abi).unwrap_or(&empty))
        } else {
            None
        }
    };

    let mut b = Builder::default();
    // The last instruction: calls from an ABI not in the filter.
    let bad_arch = b.ret(BAD_ARCH_ACTION);

    // Sections per AUDIT_ARCH value, emitted back to front; the arch
    // checks then run in the order of `sections`, native first.
    let mut sections = Vec::new();
    if let Some(i386) = rules_of(Abi::I386) {
        let mut ranges = Vec::new();
        add_ranges(&mut b, &mut ranges, (0, u32::MAX), i386, default, Abi::I386);
        sections.push((AUDIT_ARCH_I386, section(&mut b, ranges)));
    }
    let x86_64 = rules_of(Abi::X86_64);
    let x32 = rules_of(Abi::X32);
    if x86_64.is_some() || x32.is_some() {
        let mut ranges = Vec::new();
        let below = X32_SYSCALL_BIT - 1;
        match x86_64 {
            Some(r) => add_ranges(&mut b, &mut ranges, (0, below), r, default, Abi::X86_64),
            None => ranges.push((0, Target::Ret(BAD_ARCH_ACTION))),
        }
        match x32 {
            Some(r) => add_ranges(
                &mut b,
                &mut ranges,
                (X32_SYSCALL_BIT, u32::MAX),
                r,
                default,
                Abi::X32,
            ),
            None => {
                ranges.push((X32_SYSCALL_BIT, Target::Ret(BAD_ARCH_ACTION)));
                // nr == -1 is a call skipped by a tracer or a plain
                // syscall(-1), not an x32 call: treat it as an unknown
                // syscall.
                ranges.push((u32::MAX, Target::Ret(default)));
            }
        }
        sections.push((AUDIT_ARCH_X86_64, section(&mut b, ranges)));
    }

    let mut next = bad_arch;
    for (arch, entry) in sections {
        next = b.jump(Cond::Eq, arch, entry, next);
    }
    b.load(OFFSET_ARCH, next);

    let len = b.len();
    if len > BPF_MAXINSNS {
        return Err(Error::ProgramTooLong {
            len,
            max: BPF_MAXINSNS,
        });
    }
    Ok(b.finish())
}

/// Appends to `ranges` the targets of syscall numbers `lo..=hi`, given the
/// rules of `abi`, which owns them, emitting the argument checks as needed.
/// `ranges` holds `(first number, target)` pairs in increasing order.
fn add_ranges(
    b: &mut Builder,
    ranges: &mut Vec<(u32, Target)>,
    (lo, hi): (u32, u32),
    rules: &BTreeMap<u32, Vec<Rule>>,
    default: u32,
    abi: Abi,
) {
    let narrow = abi.narrow_args();
    let push = |ranges: &mut Vec<(u32, Target)>, start: u32, target: Target| {
        // A syscall right after another replaces the default filler pushed
        // after that one.
        if ranges.last().is_some_and(|(s, _)| *s == start) {
            ranges.pop();
        }
        if ranges.last().map(|(_, t)| *t) != Some(target) {
            ranges.push((start, target));
        }
    };
    push(ranges, lo, Target::Ret(default));
    for (&nr, list) in rules.range(lo..=hi) {
        let target = match list.first() {
            Some(first) if first.checks.is_empty() => Target::Ret(first.action),
            _ => Target::Checks(emit_rules(b, list, default, narrow)),
        };
        push(ranges, nr, target);
        if nr < hi {
            push(ranges, nr + 1, Target::Ret(default));
        }
    }
}

/// Emits `LD nr` and a binary search over `ranges`; returns its entry.
fn section(b: &mut Builder, ranges: Vec<(u32, Target)>) -> Label {
    let entry = search(b, &ranges);
    b.load(OFFSET_NR, entry)
}

fn resolve(b: &mut Builder, target: Target) -> Label {
    match target {
        Target::Ret(action) => b.ret(action),
        Target::Checks(label) => label,
    }
}

/// Binary search over ranges that cover every number from `ranges[0].0` on.
fn search(b: &mut Builder, ranges: &[(u32, Target)]) -> Label {
    match ranges {
        [] => b.ret(BAD_ARCH_ACTION),
        [(_, target)] => resolve(b, *target),
        _ => {
            let mid = ranges.len() / 2;
            let upper = search(b, &ranges[mid..]);
            let lower = search(b, &ranges[..mid]);
            b.jump(Cond::Ge, ranges[mid].0, upper, lower)
        }
    }
}

/// Emits the rules of one syscall, tried in order; returns their entry.
fn emit_rules(b: &mut Builder, rules: &[Rule], default: u32, narrow: bool) -> Label {
    // A rule without checks always matches: the rules after it are dead.
    let end = rules
        .iter()
        .position(|r| r.checks.is_empty())
        .map_or(rules.len(), |i| i + 1);
    let mut next = b.ret(default);
    for rule in rules[..end].iter().rev() {
        let mut matched = b.ret(rule.action);
        for check in rule.checks.iter().rev() {
            matched = emit_check(b, check, matched, next, narrow);
        }
        next = matched;
    }
    next
}

/// Emits one argument comparison going to `yes` or `no`; returns its entry.
fn emit_check(b: &mut Builder, check: &ArgCheck, yes: Label, no: Label, narrow: bool) -> Label {
    if yes == no {
        return yes;
    }
    // seccomp_data.args[i] is a __u64 in native (little-endian) order: the
    // low word comes first.
    let lo_offset = OFFSET_ARGS + 8 * check.index;
    let hi_offset = lo_offset + 4;
    let split = |v: u64| ((v >> 32) as u32, v as u32);
    let (v_hi, v_lo) = split(check.value);

    // Ordered comparisons decide on the high words when they differ and on
    // the low words (unsigned) when they are equal. LT and LE are GE and GT
    // with the outcomes swapped, NE is EQ swapped.
    let ordered = |b: &mut Builder, lo_cond: Cond, yes: Label, no: Label| {
        let lo = b.jump(lo_cond, v_lo, yes, no);
        let lo = b.load(lo_offset, lo);
        if narrow {
            return lo;
        }
        let hi_eq = b.jump(Cond::Eq, v_hi, lo, no);
        let hi = b.jump(Cond::Gt, v_hi, yes, hi_eq);
        b.load(hi_offset, hi)
    };
    let equal = |b: &mut Builder, mask: Option<(u32, u32)>, datum: (u32, u32), yes, no| {
        let (d_hi, d_lo) = datum;
        let lo = b.jump(Cond::Eq, d_lo, yes, no);
        let lo = match mask {
            Some((_, m_lo)) => b.and(m_lo, lo),
            None => lo,
        };
        let lo = b.load(lo_offset, lo);
        if narrow {
            return lo;
        }
        match mask {
            // The high words cannot differ under a zero mask.
            Some((0, _)) if d_hi == 0 => lo,
            Some((0, _)) => no,
            Some((m_hi, _)) => {
                let hi = b.jump(Cond::Eq, d_hi, lo, no);
                let hi = b.and(m_hi, hi);
                b.load(hi_offset, hi)
            }
            None => {
                let hi = b.jump(Cond::Eq, d_hi, lo, no);
                b.load(hi_offset, hi)
            }
        }
    };
    match check.op {
        LinuxSeccompOperator::ScmpCmpEq => equal(b, None, (v_hi, v_lo), yes, no),
        LinuxSeccompOperator::ScmpCmpNe => equal(b, None, (v_hi, v_lo), no, yes),
        LinuxSeccompOperator::ScmpCmpGt => ordered(b, Cond::Gt, yes, no),
        LinuxSeccompOperator::ScmpCmpGe => ordered(b, Cond::Ge, yes, no),
        LinuxSeccompOperator::ScmpCmpLt => ordered(b, Cond::Ge, no, yes),
        LinuxSeccompOperator::ScmpCmpLe => ordered(b, Cond::Gt, no, yes),
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            equal(b, Some((v_hi, v_lo)), split(check.value_two), yes, no)
        }
    }
}

impl Filter {
    /// The BPF program, in execution order.
    pub fn program(&self) -> &[Insn] {
        &self.program
    }

    /// The flags passed to seccomp(SECCOMP_SET_MODE_FILTER).
    pub fn flags(&self) -> libc::c_ulong {
        self.flags
    }

    /// Whether the filter uses SCMP_ACT_NOTIFY and so must be installed with
    /// [`Filter::install_with_listener`].
    pub fn needs_listener(&self) -> bool {
        self.listener
    }

    /// Installs the filter on the calling thread.
    ///
    /// Called in the container's init process between fork and execve: it
    /// does not allocate, lock or panic. The caller must have set
    /// no_new_privs (prctl(PR_SET_NO_NEW_PRIVS)) or hold CAP_SYS_ADMIN
    /// (seccomp(2), EACCES). A filter that needs a listener is refused with
    /// EINVAL, since its fd would be lost: use
    /// [`Filter::install_with_listener`].
    pub fn install(&self) -> Result<(), Errno> {
        if self.listener {
            return Err(Errno::EINVAL);
        }
        self.set_mode_filter().map(drop)
    }

    /// Installs the filter like [`Filter::install`] and returns the
    /// SCMP_ACT_NOTIFY listener fd (SECCOMP_FILTER_FLAG_NEW_LISTENER), if the
    /// filter has one. The runtime sends it to the profile's `listenerPath`
    /// (seccomp_unotify(2)); while nobody holds it, notified syscalls fail
    /// with ENOSYS.
    pub fn install_with_listener(&self) -> Result<Option<OwnedFd>, Errno> {
        let ret = self.set_mode_filter()?;
        if !self.listener {
            return Ok(None);
        }
        let fd = RawFd::try_from(ret).map_err(|_| Errno::EBADF)?;
        // SAFETY: with SECCOMP_FILTER_FLAG_NEW_LISTENER, seccomp(2) returns a
        // new file descriptor that nothing else owns.
        Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn set_mode_filter(&self) -> Result<libc::c_long, Errno> {
        let prog = SockFprog {
            // compile() keeps the length within BPF_MAXINSNS.
            len: u16::try_from(self.program.len()).map_err(|_| Errno::EINVAL)?,
            filter: self.program.as_ptr(),
        };
        // SAFETY: `prog` points to `self.program`, which outlives the call;
        // the kernel copies the program before returning.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                self.flags,
                &prog as *const SockFprog,
            )
        };
        if ret >= 0 {
            return Ok(ret);
        }
        let err = Errno::last();
        // Kernels before 3.17 only have prctl(PR_SET_SECCOMP), which takes
        // no flags (seccomp(2), "Versions").
        if err != Errno::ENOSYS || self.flags != 0 {
            return Err(err);
        }
        // SAFETY: the fallback for old kernels takes the same `prog`, which points to
        // `self.program` and outlives the call; the kernel copies the program before
        // returning.
        let ret = unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const SockFprog,
                0,
                0,
            )
        };
        if ret < 0 {
            return Err(Errno::last());
        }
        Ok(0)
    }
}
