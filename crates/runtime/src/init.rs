//! The processes the runtime forks: everything from fork to exec.
//!
//! This is one of the few places that fork, setns, unshare and pivot_root.
//! The runtime CLI is single-threaded, so the children may allocate, but they
//! never panic: every failure becomes a `Msg::Error` to the parent (or, after
//! `create` has returned, text on the `start` connection) and `_exit(1)`.
//!
//! Create: parent -> bootstrap child (joins namespaces, unshares new ones;
//! unshare(CLONE_NEWPID) only applies to children) -> container init (pid 1
//! of the new pid namespace). The bootstrap child reports init's pid and
//! exits; init prepares the rootfs, pivots, reports Ready and then blocks in
//! accept() on the container's start socket until `start` connects.
//! Exec: parent -> bootstrap child (setns into the container) -> process.

use std::convert::Infallible;
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::sched::{setns, unshare, CloneFlags};
use nix::unistd::{fork, ForkResult};
use oci_spec::runtime::{Hook, LinuxDevice, Mount};

use crate::channel::{Channel, Msg};
use crate::console;
use crate::error::{chain, Context, Error, Result};
use crate::process::{self, CapSets, Rlimit};
use crate::rootfs::{self, CgroupMount};
use crate::state::State;
use crate::{lsm, placement};

/// Namespaces to join (already opened by the parent) and to create.
pub(crate) struct Namespaces {
    /// Joined in this order before anything is unshared.
    pub join: Vec<(CloneFlags, OwnedFd)>,
    pub new_user: bool,
    /// New namespaces other than the user namespace.
    pub unshare: CloneFlags,
    /// Lines for /proc/self/timens_offsets, written after unsharing the
    /// time namespace and before the first process enters it.
    pub time_offsets: Option<String>,
}

impl Namespaces {
    /// Whether the process ends up in a user namespace other than the
    /// runtime's, created or joined.
    pub fn enters_userns(&self) -> bool {
        self.new_user
            || self
                .join
                .iter()
                .any(|(flag, _)| flag.contains(CloneFlags::CLONE_NEWUSER))
    }
}

/// Where a seccomp notify listener fd goes (runtime-spec config-linux.md,
/// "seccomp listener"): a connected socket to `listenerPath` and the
/// container process state sent with the fd.
pub(crate) struct SeccompListener {
    pub socket: OwnedFd,
    pub metadata: Option<String>,
    pub state: State,
}

/// The container process: everything needed from the user switch to execve.
pub(crate) struct ProcPlan {
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    pub env_strings: Vec<String>,
    pub arg0: String,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<libc::gid_t>,
    pub may_setgroups: bool,
    pub umask: Option<u32>,
    pub caps: CapSets,
    pub last_cap: u32,
    pub no_new_privs: bool,
    pub rlimits: Vec<Rlimit>,
    pub seccomp: Option<crate::seccomp::Filter>,
    pub terminal: bool,
    pub console_size: (u16, u16),
    pub preserve_fds: i32,
    /// linux.personality: 0x0008 for LINUX32, 0 for LINUX.
    pub personality: Option<libc::c_ulong>,
    /// ioprio_set(2) value.
    pub io_priority: Option<i32>,
    pub seccomp_listener: Option<SeccompListener>,
    /// This process's pid as the runtime sees it, for the listener state.
    pub host_pid: i32,
    /// process.scheduler.
    pub scheduler: Option<crate::placement::SchedAttr>,
    /// linux.memoryPolicy.
    pub mem_policy: Option<crate::placement::MemPolicy>,
    /// process.execCPUAffinity.final (exec only).
    pub cpu_affinity: Option<crate::placement::Bitmap>,
    /// AppArmor profile and SELinux label, applied at exec.
    pub labels: Vec<crate::lsm::ExecLabel>,
}

/// Everything the container's init needs, prepared before fork.
pub(crate) struct InitPlan {
    pub ns: Namespaces,
    pub channel: Channel,
    pub rootfs: PathBuf,
    pub bundle: PathBuf,
    pub mounts: Vec<Mount>,
    pub devices: Vec<LinuxDevice>,
    pub propagation: Option<String>,
    pub cgroup_mounts: Vec<CgroupMount>,
    pub cgroup_path: PathBuf,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub masked: Vec<String>,
    pub readonly_paths: Vec<String>,
    pub readonly_root: bool,
    pub mount_label: Option<String>,
    /// Per entry of `mounts`: its id-mapped copy, made on the host.
    pub idmapped: Vec<Option<OwnedFd>>,
    pub sysctl: Vec<(String, String)>,
    pub create_container_hooks: Vec<Hook>,
    pub start_container_hooks: Vec<Hook>,
    pub state: State,
    pub start: UnixListener,
    pub console: Option<OwnedFd>,
    /// Descriptors that become 0, 1 and 2 (else the runtime's own are kept).
    pub stdio: Option<[OwnedFd; 3]>,
    pub process: ProcPlan,
}

/// A process to start inside a running container.
pub(crate) struct ExecPlan {
    pub ns: Namespaces,
    pub channel: Channel,
    pub console: Option<OwnedFd>,
    pub process: ProcPlan,
}

fn exit(code: i32) -> ! {
    // SAFETY: _exit never returns and skips atexit handlers the parent owns.
    unsafe { libc::_exit(code) }
}

fn report(channel: &Channel, e: &Error) -> ! {
    let _ = channel.send(&Msg::Error(chain(e)));
    exit(1)
}

fn expect(channel: &Channel, want: Msg) -> Result<()> {
    match channel.recv() {
        Ok(m) if m == want => Ok(()),
        Ok(Msg::Error(e)) => Err(Error::Init(e)),
        Ok(m) => Err(Error::Init(format!(
            "expected {want:?} from the runtime, got {m:?}"
        ))),
        Err(e) => Err(Error::Init(format!("runtime went away: {e}"))),
    }
}

fn enter_namespaces(ns: &Namespaces, channel: &Channel) -> Result<()> {
    for (flag, fd) in &ns.join {
        setns(fd, *flag).context(|| format!("joining namespace {flag:?}"))?;
    }
    if ns.new_user {
        unshare(CloneFlags::CLONE_NEWUSER).context(|| "creating the user namespace".into())?;
        channel
            .send(&Msg::MapIds)
            .context(|| "asking for id maps".into())?;
        expect(channel, Msg::Ack)?;
        become_root()?;
    }
    if !ns.unshare.is_empty() {
        unshare(ns.unshare).context(|| format!("creating namespaces {:?}", ns.unshare))?;
    }
    if let Some(offsets) = &ns.time_offsets {
        std::fs::write("/proc/self/timens_offsets", offsets)
            .context(|| "writing time namespace offsets".into())?;
    }
    Ok(())
}

fn become_root() -> Result<()> {
    // SAFETY: setresgid takes integers and touches no memory; done as a raw syscall in
    // a single-threaded child, it changes exactly this process.
    Errno::result(unsafe { libc::syscall(libc::SYS_setresgid, 0, 0, 0) })
        .context(|| "setresgid 0 in the user namespace".into())?;
    // SAFETY: setresuid takes integers and touches no memory; done as a raw syscall in
    // a single-threaded child, it changes exactly this process.
    Errno::result(unsafe { libc::syscall(libc::SYS_setresuid, 0, 0, 0) })
        .context(|| "setresuid 0 in the user namespace".into())?;
    Ok(())
}

/// The bootstrap child of `create`. Never returns.
pub(crate) fn bootstrap(plan: InitPlan) -> ! {
    let ready = match &plan.stdio {
        Some(fds) => install_stdio(fds),
        None => Ok(()),
    };
    if let Err(e) = ready
        .and_then(|_| expect(&plan.channel, Msg::Go))
        .and_then(|_| enter_namespaces(&plan.ns, &plan.channel))
    {
        report(&plan.channel, &e)
    }
    // SAFETY: single-threaded process; the child only runs `init`.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => init(plan),
        Ok(ForkResult::Parent { child }) => {
            let _ = plan.channel.send(&Msg::Pid(child.as_raw()));
            exit(0)
        }
        Err(e) => report(
            &plan.channel,
            &Error::Sys {
                context: "forking the container init".into(),
                errno: e,
            },
        ),
    }
}

/// Makes `fds` this process's 0, 1 and 2 (inherited across exec). Each
/// is first copied above 2, so none is overwritten before it is moved.
fn install_stdio(fds: &[OwnedFd; 3]) -> Result<()> {
    let mut high = Vec::with_capacity(3);
    for fd in fds {
        // SAFETY: F_DUPFD_CLOEXEC takes integers and returns a new descriptor
        // this child owns (it is closed before exec by its close-on-exec flag).
        let copy = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
        high.push(Errno::result(copy).context(|| "copying the container's stdio".into())?);
    }
    for (target, fd) in high.into_iter().enumerate() {
        // dup2 clears close-on-exec on the new descriptor (dup(2)).
        nix::unistd::dup2(fd, target as RawFd)
            .context(|| format!("making descriptor {target} the container's"))?;
    }
    Ok(())
}

fn init(mut plan: InitPlan) -> ! {
    // Before pivot_root /proc is still the host's: it names our pid as the
    // runtime sees it.
    plan.process.host_pid = std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0);
    // The createContainer and startContainer hooks' state needs it too
    // (runtime.md: pid is required once the container is created).
    plan.state.pid = (plan.process.host_pid > 0).then_some(plan.process.host_pid);
    match init_until_ready(&plan) {
        Err(e) => report(&plan.channel, &e),
        Ok(exe) => {
            let InitPlan {
                channel,
                start,
                start_container_hooks,
                mut state,
                process,
                ..
            } = plan;
            let _ = channel.send(&Msg::Ready);
            drop(channel);
            // Block until `start` connects; its connection then carries any error.
            let mut conn = loop {
                match start.accept() {
                    Ok((c, _)) => break c,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => exit(1),
                }
            };
            drop(start);
            let mut byte = [0u8; 1];
            if conn.read_exact(&mut byte).is_err() {
                exit(1)
            }
            state.status = crate::state::Status::Created;
            let result = crate::hooks::run_all(&start_container_hooks, &state).and_then(|_| {
                exec_process(&process, &exe, &[conn.as_raw_fd()]).map(|n| match n {})
            });
            if let Err(e) = result {
                let _ = conn.write_all(chain(&e).as_bytes());
            }
            exit(1)
        }
    }
}

/// Sets up the container up to the point where it waits for `start`;
/// returns the program to exec.
fn init_until_ready(plan: &InitPlan) -> Result<CString> {
    nix::unistd::setsid().context(|| "setsid".into())?;
    if let Some(name) = &plan.hostname {
        nix::unistd::sethostname(name).context(|| format!("setting hostname {name:?}"))?;
    }
    if let Some(name) = &plan.domainname {
        // SAFETY: pointer and length of a live string.
        let r = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
        Errno::result(r).context(|| format!("setting domainname {name:?}"))?;
    }
    let host_mounts_slave = rootfs::prepare(&rootfs::Prepare {
        rootfs: &plan.rootfs,
        bundle: &plan.bundle,
        mounts: &plan.mounts,
        devices: &plan.devices,
        propagation: plan.propagation.as_deref(),
        cgroup_mounts: &plan.cgroup_mounts,
        cgroup_path: &plan.cgroup_path,
        new_cgroupns: plan.ns.unshare.contains(CloneFlags::CLONE_NEWCGROUP),
        in_userns: plan.ns.new_user,
        mount_label: plan.mount_label.as_deref(),
        idmapped: &plan.idmapped,
    })?;
    plan.channel
        .send(&Msg::Hooks)
        .context(|| "asking for createRuntime hooks".into())?;
    expect(&plan.channel, Msg::Ack)?;
    if !plan.create_container_hooks.is_empty() {
        let mut state = plan.state.clone();
        state.status = crate::state::Status::Created;
        crate::hooks::run_all(&plan.create_container_hooks, &state)?;
    }
    rootfs::pivot_root_keeping(&plan.rootfs, host_mounts_slave)?;
    // Before finalize: /proc/sys is usually among the read-only paths.
    rootfs::sysctl(&plan.sysctl)?;
    if plan.process.terminal {
        // Before finalize, which may make / (and so /dev) read-only.
        setup_terminal(plan.console.as_ref(), &plan.process, true)?;
    }
    rootfs::finalize(
        plan.propagation.as_deref(),
        &plan.masked,
        &plan.readonly_paths,
        plan.readonly_root,
    )?;
    let exe = process::find_executable(&plan.process.arg0, &plan.process.env_strings)?;
    process::apply_rlimits(&plan.process.rlimits).map_err(|(res, errno)| Error::Sys {
        context: format!("setting rlimit {res}"),
        errno,
    })?;
    CString::new(exe.as_os_str().as_bytes())
        .map_err(|_| Error::Invalid("executable path holds NUL".into()))
}

/// Opens the process's pty and sends its master to the console socket; for
/// init (`bind_console`) the slave also becomes /dev/console, as
/// config.md's `process.terminal` asks.
fn setup_terminal(console: Option<&OwnedFd>, p: &ProcPlan, bind_console: bool) -> Result<()> {
    let console = console
        .ok_or_else(|| Error::Invalid("terminal requested without a console socket".into()))?;
    let (master, slave) =
        console::open_pty().context(|| "opening a pty in the container".into())?;
    if bind_console {
        rootfs::bind_console(master.as_raw_fd())?;
    }
    console::send_fd(console.as_raw_fd(), master.as_raw_fd())
        .context(|| "sending the pty master to the console socket".into())?;
    drop(master);
    console::attach_stdio(slave.as_raw_fd(), p.console_size.0, p.console_size.1)
        .context(|| "making the pty the container's terminal".into())?;
    Ok(())
}

/// The last steps before execve, shared by init and exec: drop privileges,
/// close what must not leak, apply seccomp, exec.
fn exec_process(p: &ProcPlan, exe: &CString, keep: &[RawFd]) -> Result<Infallible> {
    // Ignored signals stay ignored across execve (signal(7)); the runtime
    // ignores SIGPIPE itself (as Rust programs do), and its caller may
    // ignore others. The container's process starts with every signal at
    // its default, before any filter could deny the calls.
    reset_signals();
    // Close (not merely mark close-on-exec) everything the container should
    // not see before chdir, so no inherited directory fd can serve as a
    // working directory outside the rootfs (CVE-2024-21626).
    let mut keep = keep.to_vec();
    if let Some(l) = &p.seccomp_listener {
        keep.push(l.socket.as_raw_fd());
    }
    process::close_from_except(3 + p.preserve_fds, &keep);
    process::cloexec_from(3 + p.preserve_fds as u32).context(|| "close_range".into())?;
    if let Some(persona) = p.personality {
        // SAFETY: personality(2) takes a plain integer.
        Errno::result(unsafe { libc::personality(persona) })
            .context(|| "setting the personality".into())?;
    }
    if let Some(prio) = p.io_priority {
        // SAFETY: ioprio_set(IOPRIO_WHO_PROCESS, self, prio) with integers.
        Errno::result(unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, prio) })
            .context(|| "setting the I/O priority".into())?;
    }
    // Placement comes while the process still has CAP_SYS_NICE (a real-time
    // policy needs it) and before any filter could deny the calls.
    if let Some(policy) = &p.mem_policy {
        placement::apply_mem_policy(policy).context(|| "setting the NUMA memory policy".into())?;
    }
    if let Some(cpus) = &p.cpu_affinity {
        placement::apply_affinity(0, cpus)
            .context(|| "setting the final CPU affinity (execCPUAffinity.final)".into())?;
    }
    if let Some(attr) = &p.scheduler {
        placement::apply_scheduler(attr).context(|| {
            "setting the scheduling policy (sched_setattr; a real-time policy needs \
             real-time runtime in the container's cpu cgroup)"
                .into()
        })?;
    }
    process::apply_bounding(&p.caps, p.last_cap)
        .context(|| "dropping bounding capabilities".into())?;
    // The working directory is entered and checked before any seccomp filter
    // is loaded: a profile may deny getcwd(2) itself, and the check must
    // still run (CVE-2024-21626). As root first; a directory only the
    // container's user may enter is retried after the user switch.
    let early_cwd = nix::unistd::chdir(&p.cwd).and_then(|_| check_cwd());
    // Labels take effect at execve; written before no_new_privs, which
    // would restrict the transitions they ask for, and before any filter.
    lsm::apply(&p.labels).context(|| "applying the AppArmor profile or SELinux label".into())?;
    let seccomp_early = p.seccomp.as_ref().filter(|_| !p.no_new_privs);
    if let Some(f) = seccomp_early {
        // Without no_new_privs loading a filter needs CAP_SYS_ADMIN, so it
        // has to happen before the capabilities are dropped.
        install_seccomp(f, p)?;
    }
    process::apply_user(p.uid, p.gid, &p.groups, p.may_setgroups)
        .context(|| format!("switching to user {}:{}", p.uid, p.gid))?;
    process::apply_caps(&p.caps, p.last_cap).context(|| "setting capabilities".into())?;
    if early_cwd.is_err() {
        nix::unistd::chdir(&p.cwd).context(|| format!("chdir to {}", p.cwd.display()))?;
        check_cwd().map_err(|_| {
            Error::Invalid(format!(
                "working directory {} is outside the container",
                p.cwd.display()
            ))
        })?;
    }
    if let Some(mask) = p.umask {
        // SAFETY: umask takes an integer, touches no memory and cannot fail;
        // it changes only this process's file creation mask.
        unsafe { libc::umask(mask as libc::mode_t) };
    }
    if p.no_new_privs {
        // SAFETY: PR_SET_NO_NEW_PRIVS takes integers, no pointers, so no memory is
        // touched; it can only restrict what later execs gain.
        Errno::result(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })
            .context(|| "setting no_new_privs".into())?;
        if let Some(f) = &p.seccomp {
            // As late as possible, so the filter constrains only the container.
            install_seccomp(f, p)?;
        }
    }
    let err = nix::unistd::execve(exe, &p.args, &p.env).unwrap_err();
    Err(Error::Sys {
        context: format!("exec {}", exe.to_string_lossy()),
        errno: err,
    })
}

/// Sets every signal's disposition to its default. The raw system call:
/// the C library refuses the real-time signals it reserves for itself,
/// which a caller may still have ignored. SIGKILL and SIGSTOP cannot be
/// changed; the kernel's refusal is ignored.
fn reset_signals() {
    /// The kernel's `struct sigaction` (x86-64 and aarch64 layout).
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: u64,
        restorer: usize,
        mask: u64,
    }
    let default = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        // SAFETY: rt_sigaction reads one kernel sigaction of the size
        // passed (8 bytes of mask) through a pointer to a live value, and
        // writes nothing back (null old action).
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &default as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            )
        };
    }
}

/// Fails unless the working directory is reachable from the container's
/// root: getcwd(2) prefixes "(unreachable)" (so the path is not absolute)
/// for a directory outside it, such as one reached through a leaked fd.
fn check_cwd() -> nix::Result<()> {
    match nix::unistd::getcwd() {
        Ok(dir) if dir.is_absolute() => Ok(()),
        Ok(_) => Err(Errno::ENOENT),
        Err(e) => Err(e),
    }
}

/// Loads the filter; a notify filter's listener fd goes to `listenerPath`
/// with the container process state.
fn install_seccomp(f: &crate::seccomp::Filter, p: &ProcPlan) -> Result<()> {
    if !f.needs_listener() {
        return f
            .install()
            .context(|| "installing the seccomp filter".into());
    }
    let listener = p
        .seccomp_listener
        .as_ref()
        .ok_or_else(|| Error::Invalid("SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath".into()))?;
    let fd = f
        .install_with_listener()
        .context(|| "installing the seccomp filter".into())?
        .ok_or_else(|| Error::Invalid("the kernel returned no seccomp listener".into()))?;
    let msg = serde_json::json!({
        "ociVersion": crate::state::OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": p.host_pid,
        "metadata": listener.metadata.clone().unwrap_or_default(),
        "state": listener.state,
    })
    .to_string();
    console::send_fd_with(listener.socket.as_raw_fd(), fd.as_raw_fd(), msg.as_bytes())
        .context(|| "sending the seccomp listener fd".into())
}

/// The bootstrap child of `exec`. Never returns.
pub(crate) fn exec_bootstrap(plan: ExecPlan) -> ! {
    if let Err(e) =
        expect(&plan.channel, Msg::Go).and_then(|_| enter_namespaces(&plan.ns, &plan.channel))
    {
        report(&plan.channel, &e)
    }
    // SAFETY: single-threaded process; the child only runs `exec_child`.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let e = exec_child(&plan).map_or_else(|e| e, |n| match n {});
            report(&plan.channel, &e)
        }
        Ok(ForkResult::Parent { child }) => {
            let _ = plan.channel.send(&Msg::Pid(child.as_raw()));
            exit(0)
        }
        Err(e) => report(
            &plan.channel,
            &Error::Sys {
                context: "forking the exec process".into(),
                errno: e,
            },
        ),
    }
}

fn exec_child(plan: &ExecPlan) -> Result<Infallible> {
    if plan.process.terminal {
        nix::unistd::setsid().context(|| "setsid".into())?;
        setup_terminal(plan.console.as_ref(), &plan.process, false)?;
    }
    let exe = process::find_executable(&plan.process.arg0, &plan.process.env_strings)?;
    let exe = CString::new(exe.as_os_str().as_bytes())
        .map_err(|_| Error::Invalid("executable path holds NUL".into()))?;
    process::apply_rlimits(&plan.process.rlimits).map_err(|(res, errno)| Error::Sys {
        context: format!("setting rlimit {res}"),
        errno,
    })?;
    // The channel is close-on-exec: the parent reads EOF once exec succeeded.
    exec_process(&plan.process, &exe, &[plan.channel.raw()])
}

/// Connects to a container's start socket, releases init and returns the
/// error text init sent back, if any. EOF without text means exec happened.
pub(crate) fn release(mut conn: UnixStream) -> Result<Option<String>> {
    conn.write_all(&[1])
        .context(|| "releasing the container".into())?;
    let mut out = String::new();
    let _ = conn.read_to_string(&mut out);
    Ok((!out.is_empty()).then_some(out))
}
