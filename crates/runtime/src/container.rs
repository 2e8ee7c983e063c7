//! The runtime's operations on containers, run by the CLI process (the
//! "parent"): create, start, state, kill, delete, pause, resume, ps, exec.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use cais_cgroups::{Cgroup, FreezerState, Layout};
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use oci_spec::runtime::{
    LinuxDeviceCgroup, LinuxDeviceType, LinuxNamespaceType, LinuxResources, Process, Spec,
};

use crate::channel::{self, Msg};
use crate::error::{Context, Error, Result};
use crate::init::{self, ExecPlan, InitPlan, Namespaces, ProcPlan};
use crate::process::{self, CapSets};
use crate::spec_ext::Extensions;
use crate::state::{self, Record, State, StateRoot, Status};
use crate::{bundle, hooks, lsm, placement, rdt, rootfs};

const START_SOCKET: &str = "start.sock";
const CONFIG_COPY: &str = "config.json";

/// Options of `create` (and `run`).
#[derive(Debug, Default)]
pub struct CreateOptions {
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: i32,
    /// Derive the default cgroup path in systemd's "slice:prefix:name" form.
    pub systemd_cgroup: bool,
}

/// Where the container process's standard streams come from when the
/// runtime is a library in a supervisor (the engine's shim) rather than the
/// CLI: init inherits the caller's 0, 1 and 2 unless `stdio` names others,
/// and a terminal's master goes over `console`, a connected unix socket,
/// instead of a `console_socket` path. The descriptors are the child's
/// ends: `create` closes them in the caller once init holds them.
#[derive(Debug, Default)]
pub struct ProcessIo {
    /// Init's stdin, stdout and stderr.
    pub stdio: Option<[OwnedFd; 3]>,
    /// The socket the terminal's master is sent over (`process.terminal`).
    pub console: Option<OwnedFd>,
}

/// Options of `exec`.
#[derive(Debug, Default)]
pub struct ExecOptions {
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub detach: bool,
    pub preserve_fds: i32,
    pub ignore_paused: bool,
}

/// The runtime, bound to a state root.
#[derive(Clone, Debug)]
pub struct Runtime {
    pub root: StateRoot,
}

impl Runtime {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Runtime {
            root: StateRoot::new(root),
        }
    }

    /// Creates a container from a bundle; returns its init's pid. On any
    /// failure nothing is left behind: no state, cgroup or process.
    pub fn create(&self, id: &str, bundle: &Path, opts: &CreateOptions) -> Result<i32> {
        let console = match &opts.console_socket {
            Some(path) => Some(OwnedFd::from(
                with_short_path(path, |p| UnixStream::connect(p))
                    .context(|| format!("connecting to console socket {}", path.display()))?,
            )),
            None => None,
        };
        self.create_with_io(
            id,
            bundle,
            opts,
            ProcessIo {
                stdio: None,
                console,
            },
        )
    }

    /// `create` for a supervisor that holds the container's stdio itself
    /// (see `ProcessIo`). It forks: the calling process must be
    /// single-threaded, as the CLI and the engine's shim are, and must run
    /// from a binary nothing can write through (see `sealed`), since the
    /// forked children enter the container before they exec.
    pub fn create_with_io(
        &self,
        id: &str,
        bundle: &Path,
        opts: &CreateOptions,
        io: ProcessIo,
    ) -> Result<i32> {
        let ProcessIo { stdio, console } = io;
        state::validate_id(id)?;
        let bundle =
            std::fs::canonicalize(bundle).context(|| format!("bundle {}", bundle.display()))?;
        let (spec, rootfs, ext) = bundle::load_with_extensions(&bundle)?;
        let process = spec.process().as_ref().expect("validated by bundle::load");
        if process.terminal().unwrap_or(false) && console.is_none() {
            return Err(Error::Invalid(
                "process.terminal is set: a --console-socket is needed to receive the terminal"
                    .into(),
            ));
        }
        if self.root.dir(id).join("state.json").exists() {
            return Err(Error::AlreadyExists(id.to_string()));
        }
        let dir = self.root.create_dir(id)?;
        let linux = spec.linux().as_ref().expect("validated by bundle::load");
        let cgroup_path = match linux.cgroups_path() {
            Some(p) => p.to_string_lossy().into_owned(),
            None if opts.systemd_cgroup => format!("system.slice:cais:{id}"),
            None => format!("/cais/{id}"),
        };
        let mut made = Made::default();
        let result = self.create_in(
            id,
            &bundle,
            &rootfs,
            &spec,
            &ext,
            &dir,
            &cgroup_path,
            opts,
            ProcessIo { stdio, console },
            &mut made,
        );
        match result {
            Ok(pid) => Ok(pid),
            Err(e) => {
                if let Some(pid) = made.init_pid {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
                if let Some(cg) = &made.cgroup {
                    kill_cgroup(cg);
                    let _ = cg.destroy();
                }
                rdt::remove(&made.rdt_dirs);
                let _ = self.root.remove(id);
                Err(e)
            }
        }
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one call site, all of it the create context"
    )]
    fn create_in(
        &self,
        id: &str,
        bundle: &Path,
        rootfs: &Path,
        spec: &Spec,
        ext: &Extensions,
        dir: &Path,
        cgroup_path: &str,
        opts: &CreateOptions,
        io: ProcessIo,
        made: &mut Made,
    ) -> Result<i32> {
        let linux = spec.linux().as_ref().expect("validated");
        let process = spec.process().as_ref().expect("validated");
        // Everything the host must provide is checked before anything is made.
        let mount_label = lsm::mount_label(lsm::Host::detect(), linux.mount_label().as_deref())
            .map_err(Error::Invalid)?;
        let rdt_plan = match linux.intel_rdt() {
            Some(r) => Some(rdt::plan(
                rdt::mount_point().as_deref(),
                id,
                r,
                &ext.rdt_schemata,
                ext.rdt_monitoring,
            )?),
            None => None,
        };
        let idmapped = idmapped_mounts(spec, ext, bundle)?;
        std::fs::write(
            dir.join(CONFIG_COPY),
            serde_json::to_vec(spec).expect("spec serializes"),
        )
        .context(|| format!("saving config in {}", dir.display()))?;

        let cgroup = Cgroup::new(Layout::detect()?, cgroup_path)?;
        cgroup.create()?;
        let cgroup = made.cgroup.insert(cgroup);
        let resources = resources_with_default_devices(linux.resources().as_ref(), spec);

        let ns = namespaces_from_spec(spec)?;
        let start = bind_short(&dir.join(START_SOCKET))?;
        let mut proc_plan = proc_plan(process, linux, opts.preserve_fds, ns.enters_userns())?;
        let (parent, child) = channel::pair().context(|| "creating the sync socket".into())?;
        let created = state::rfc3339(SystemTime::now());
        let mut state_doc = State {
            oci_version: state::OCI_VERSION.into(),
            id: id.into(),
            status: Status::Creating,
            pid: None,
            bundle: bundle.to_path_buf(),
            rootfs: rootfs.to_path_buf(),
            created: created.clone(),
            owner: owner(),
            annotations: spec
                .annotations()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
        };
        let hooks = spec.hooks().clone().unwrap_or_default();
        proc_plan.seccomp_listener = seccomp_listener(linux, &state_doc)?;
        let plan = InitPlan {
            ns,
            channel: child,
            rootfs: rootfs.to_path_buf(),
            bundle: bundle.to_path_buf(),
            mounts: spec.mounts().clone().unwrap_or_default(),
            devices: linux.devices().clone().unwrap_or_default(),
            propagation: linux.rootfs_propagation().clone(),
            cgroup_mounts: rootfs::host_cgroup_mounts(),
            cgroup_path: cgroup.path().to_path_buf(),
            hostname: spec.hostname().clone(),
            domainname: spec.domainname().clone(),
            masked: linux.masked_paths().clone().unwrap_or_default(),
            readonly_paths: linux.readonly_paths().clone().unwrap_or_default(),
            readonly_root: spec
                .root()
                .as_ref()
                .and_then(|r| r.readonly())
                .unwrap_or(false),
            mount_label,
            idmapped,
            sysctl: linux
                .sysctl()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            create_container_hooks: hooks.create_container().clone().unwrap_or_default(),
            start_container_hooks: hooks.start_container().clone().unwrap_or_default(),
            state: state_doc.clone(),
            start,
            console: io.console,
            stdio: io.stdio,
            process: proc_plan,
        };

        // SAFETY: the CLI is single-threaded; the child runs `init::bootstrap` only.
        let bootstrap = match unsafe { fork() }.context(|| "forking".into())? {
            ForkResult::Child => init::bootstrap(plan),
            ForkResult::Parent { child } => child,
        };
        drop(plan);
        let reap_bootstrap = || {
            let _ = waitpid(bootstrap, None);
        };

        for what in cgroup.skipped(&resources) {
            crate::log::warn(&format!("{what}: not applied"));
        }
        // The device rules go on once init has made the container's device
        // nodes (Msg::Hooks): making a node needs the `m` access, which the
        // rules may not give (`--device /dev/x:/dev/y:r`); nothing of the
        // container's own runs before that.
        let mut early = resources.clone();
        let mut device_rules = early.devices().clone().map(|d| {
            let mut r = LinuxResources::default();
            r.set_devices(Some(d));
            r
        });
        early.set_devices(None);
        if let Err(e) = cgroup
            .apply(&early)
            .and_then(|_| cgroup.add_process(bootstrap.as_raw()))
        {
            let _ = kill(bootstrap, Signal::SIGKILL);
            reap_bootstrap();
            return Err(e.into());
        }
        // The bootstrap's children, init first, inherit its resctrl group.
        if let Some(plan) = &rdt_plan {
            match plan.apply(bootstrap.as_raw()) {
                Ok(dirs) => made.rdt_dirs = dirs,
                Err(e) => {
                    let _ = kill(bootstrap, Signal::SIGKILL);
                    reap_bootstrap();
                    return Err(e);
                }
            }
        }
        parent
            .send(&Msg::Go)
            .context(|| "starting the bootstrap process".into())?;
        let mut init_pid = None;
        loop {
            let msg = match parent.recv() {
                Ok(m) => m,
                Err(_) => {
                    reap_bootstrap();
                    return Err(Error::Init(
                        "the container process exited during set-up".into(),
                    ));
                }
            };
            match msg {
                Msg::MapIds => {
                    write_id_maps(bootstrap.as_raw(), linux)?;
                    parent
                        .send(&Msg::Ack)
                        .context(|| "acknowledging id maps".into())?;
                }
                Msg::Pid(pid) => {
                    init_pid = Some(pid);
                    made.init_pid = Some(pid);
                    reap_bootstrap();
                    if let Some(adj) = process.oom_score_adj() {
                        std::fs::write(format!("/proc/{pid}/oom_score_adj"), adj.to_string())
                            .context(|| "setting oom_score_adj".into())?;
                    }
                }
                Msg::Hooks => {
                    if let Some(r) = device_rules.take() {
                        cgroup.apply(&r)?;
                    }
                    // runtime.md: "created" holds from the end of lifecycle
                    // step 2, before the prestart/createRuntime hooks run.
                    state_doc.pid = init_pid;
                    state_doc.status = Status::Created;
                    hooks::run_all(hooks.prestart().as_deref().unwrap_or_default(), &state_doc)?;
                    hooks::run_all(
                        hooks.create_runtime().as_deref().unwrap_or_default(),
                        &state_doc,
                    )?;
                    parent
                        .send(&Msg::Ack)
                        .context(|| "resuming init after hooks".into())?;
                }
                Msg::Ready => {
                    if let Some(r) = device_rules.take() {
                        cgroup.apply(&r)?;
                    }
                    break;
                }
                Msg::Error(e) => {
                    if init_pid.is_none() {
                        reap_bootstrap();
                    }
                    return Err(Error::Init(e));
                }
                other => return Err(Error::Init(format!("unexpected message {other:?}"))),
            }
        }
        let pid = init_pid.ok_or_else(|| Error::Init("init never reported its pid".into()))?;
        let (_, start_time) = state::proc_stat(pid)
            .ok_or_else(|| Error::Init("init exited right after set-up".into()))?;
        let record = Record {
            id: id.into(),
            pid,
            pid_start_time: start_time,
            bundle: bundle.to_path_buf(),
            rootfs: rootfs.to_path_buf(),
            created,
            owner: owner(),
            cgroup_path: cgroup_path.to_string(),
            started: false,
            annotations: state_doc.annotations.clone(),
            rdt_dirs: made.rdt_dirs.clone(),
        };
        self.root.save(&record)?;
        if let Some(path) = &opts.pid_file {
            write_pid_file(path, pid)?;
        }
        Ok(pid)
    }

    /// Releases a created container's init to exec the user's process.
    pub fn start(&self, id: &str) -> Result<()> {
        let mut rec = self.root.load(id)?;
        let status = self.status(&rec);
        if status != Status::Created {
            return Err(wrong_state(
                id,
                status,
                "only a created container can be started",
            ));
        }
        let hooks = self.saved_hooks(id)?;
        let socket = self.root.dir(id).join(START_SOCKET);
        let conn = with_short_path(&socket, |p| UnixStream::connect(p))
            .context(|| format!("connecting to {}", socket.display()))?;
        let failure = init::release(conn)?;
        let _ = std::fs::remove_file(&socket);
        rec.started = true;
        self.root.save(&rec)?;
        if let Some(message) = failure {
            return Err(Error::Init(message));
        }
        if let Some(poststart) = hooks.as_ref().and_then(|h| h.poststart().as_ref()) {
            let state = self.state_of(&rec);
            hooks::run_all_warn(poststart, &state);
        }
        Ok(())
    }

    pub fn state(&self, id: &str) -> Result<State> {
        let rec = self.root.load(id)?;
        Ok(self.state_of(&rec))
    }

    fn state_of(&self, rec: &Record) -> State {
        let status = self.status(rec);
        State {
            oci_version: state::OCI_VERSION.into(),
            id: rec.id.clone(),
            status,
            pid: (status != Status::Stopped).then_some(rec.pid),
            bundle: rec.bundle.clone(),
            rootfs: rec.rootfs.clone(),
            created: rec.created.clone(),
            owner: rec.owner.clone(),
            annotations: rec.annotations.clone(),
        }
    }

    /// Every container under the root, with its current status.
    pub fn list(&self) -> Result<Vec<State>> {
        let mut out = Vec::new();
        for id in self.root.ids()? {
            if let Ok(rec) = self.root.load(&id) {
                out.push(self.state_of(&rec));
            }
        }
        Ok(out)
    }

    fn status(&self, rec: &Record) -> Status {
        if !state::process_alive(rec.pid, rec.pid_start_time) {
            return Status::Stopped;
        }
        if !rec.started {
            return Status::Created;
        }
        match self.cgroup(rec).and_then(|c| Ok(c.freezer_state()?)) {
            Ok(FreezerState::Frozen) => Status::Paused,
            _ => Status::Running,
        }
    }

    fn cgroup(&self, rec: &Record) -> Result<Cgroup> {
        Ok(Cgroup::new(Layout::detect()?, &rec.cgroup_path)?)
    }

    /// The hooks of the config saved at create, and nothing else of it:
    /// `start` needs only the poststart hooks, and reading the whole
    /// config (a seccomp profile and all) would cost more than the rest
    /// of `start`.
    fn saved_hooks(&self, id: &str) -> Result<Option<oci_spec::runtime::Hooks>> {
        #[derive(serde::Deserialize)]
        struct HooksOnly {
            hooks: Option<oci_spec::runtime::Hooks>,
        }
        let path = self.root.dir(id).join(CONFIG_COPY);
        let data = std::fs::read(&path).map_err(|source| Error::ReadConfig {
            path: path.clone(),
            source,
        })?;
        serde_json::from_slice::<HooksOnly>(&data)
            .map(|h| h.hooks)
            .map_err(|e| Error::InvalidConfig {
                path,
                message: e.to_string(),
            })
    }

    fn saved_spec(&self, id: &str) -> Result<Spec> {
        let path = self.root.dir(id).join(CONFIG_COPY);
        let data = std::fs::read(&path).map_err(|source| Error::ReadConfig {
            path: path.clone(),
            source,
        })?;
        crate::spec_ext::spec_from_json(&data)
            .map(|(spec, _)| spec)
            .map_err(|message| Error::InvalidConfig { path, message })
    }

    /// Sends a signal to the container's init, or with `all` to every process
    /// in its cgroup.
    pub fn kill(&self, id: &str, signal: Signal, all: bool) -> Result<()> {
        let rec = self.root.load(id)?;
        let status = self.status(&rec);
        if status == Status::Stopped {
            return Err(wrong_state(id, status, "cannot signal a stopped container"));
        }
        let cgroup = self.cgroup(&rec)?;
        if all {
            for pid in cgroup.pids()? {
                let _ = kill(Pid::from_raw(pid), signal);
            }
        } else {
            kill(Pid::from_raw(rec.pid), signal).context(|| format!("signalling {id}"))?;
        }
        // A frozen task acts on SIGKILL only once thawed.
        if status == Status::Paused && signal == Signal::SIGKILL {
            cgroup.thaw()?;
        }
        Ok(())
    }

    /// Removes a stopped (or, with `force`, any) container: kills what is
    /// left, removes its cgroup and state, then runs poststop hooks.
    /// With `force`, a container that does not exist is already deleted:
    /// engines clean up with `delete --force` after a `delete` that worked.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let rec = match self.root.load(id) {
            Err(Error::NotFound(_)) if force => return Ok(()),
            r => r?,
        };
        let status = self.status(&rec);
        if matches!(status, Status::Running | Status::Paused) && !force {
            return Err(wrong_state(id, status, "stop it first or use --force"));
        }
        let spec = self.saved_spec(id).ok();
        let cgroup = self.cgroup(&rec)?;
        if status != Status::Stopped {
            let _ = kill(Pid::from_raw(rec.pid), Signal::SIGKILL);
        }
        kill_cgroup(&cgroup);
        cgroup.destroy()?;
        rdt::remove(&rec.rdt_dirs);
        self.root.remove(id)?;
        if let Some(poststop) = spec
            .as_ref()
            .and_then(|s| s.hooks().as_ref())
            .and_then(|h| h.poststop().clone())
        {
            let mut state = self.state_of(&rec);
            state.status = Status::Stopped;
            state.pid = None;
            hooks::run_all_warn(&poststop, &state);
        }
        Ok(())
    }

    pub fn pause(&self, id: &str) -> Result<()> {
        let rec = self.root.load(id)?;
        let status = self.status(&rec);
        if !matches!(status, Status::Running | Status::Created) {
            return Err(wrong_state(
                id,
                status,
                "only a running container can be paused",
            ));
        }
        Ok(self.cgroup(&rec)?.freeze()?)
    }

    pub fn resume(&self, id: &str) -> Result<()> {
        let rec = self.root.load(id)?;
        let status = self.status(&rec);
        if status != Status::Paused {
            return Err(wrong_state(
                id,
                status,
                "only a paused container can be resumed",
            ));
        }
        Ok(self.cgroup(&rec)?.thaw()?)
    }

    /// Pids of every process in the container's cgroup.
    pub fn pids(&self, id: &str) -> Result<Vec<i32>> {
        let rec = self.root.load(id)?;
        Ok(self.cgroup(&rec)?.pids()?)
    }

    /// Resource usage, shaped like runc's `events --stats` data.
    pub fn stats(&self, id: &str) -> Result<serde_json::Value> {
        let rec = self.root.load(id)?;
        let stats = self.cgroup(&rec)?.stats()?;
        Ok(serde_json::to_value(stats).expect("stats serialize"))
    }

    /// The container's config as saved at create time.
    pub fn spec(&self, id: &str) -> Result<Spec> {
        self.root.load(id)?;
        self.saved_spec(id)
    }

    /// Starts another process in a running container. Returns its pid; with
    /// `opts.detach` unset the caller then waits for it (see `wait_forwarding`).
    pub fn exec(&self, id: &str, process: &Process, opts: &ExecOptions) -> Result<i32> {
        let console = match &opts.console_socket {
            Some(path) => Some(OwnedFd::from(
                with_short_path(path, |p| UnixStream::connect(p))
                    .context(|| format!("connecting to console socket {}", path.display()))?,
            )),
            None => None,
        };
        self.exec_with_console(id, process, opts, console)
    }

    fn exec_with_console(
        &self,
        id: &str,
        process: &Process,
        opts: &ExecOptions,
        console: Option<OwnedFd>,
    ) -> Result<i32> {
        let rec = self.root.load(id)?;
        let status = self.status(&rec);
        match status {
            Status::Created | Status::Running => {}
            Status::Paused if opts.ignore_paused => {}
            _ => {
                return Err(wrong_state(
                    id,
                    status,
                    "cannot exec in a container that is not running",
                ))
            }
        }
        if process.terminal().unwrap_or(false) && console.is_none() {
            return Err(Error::Invalid("a terminal needs a --console-socket".into()));
        }
        if process.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(Error::Invalid("no command given for exec".into()));
        }
        let spec = self.saved_spec(id)?;
        let linux = spec.linux().clone().unwrap_or_default();
        let ns = namespaces_of_pid(rec.pid)?;
        let mut plan_process = proc_plan(process, &linux, opts.preserve_fds, ns.enters_userns())?;
        plan_process.seccomp_listener = seccomp_listener(&linux, &self.state_of(&rec))?;
        // config.md "execCPUAffinity": initial holds for the runtime's
        // process until it has joined the container's cgroup, final for
        // the process from then on.
        let affinity = process.exec_cpu_affinity().as_ref();
        let initial = placement::cpu_list(affinity.and_then(|a| a.initial().as_deref()))
            .map_err(|e| Error::Invalid(format!("process.execCPUAffinity.initial {e}")))?;
        plan_process.cpu_affinity =
            placement::cpu_list(affinity.and_then(|a| a.cpu_affinity_final().as_deref()))
                .map_err(|e| Error::Invalid(format!("process.execCPUAffinity.final {e}")))?;
        let cgroup = self.cgroup(&rec)?;
        let (parent, child) = channel::pair().context(|| "creating the sync socket".into())?;
        let plan = ExecPlan {
            ns,
            channel: child,
            console,
            process: plan_process,
        };
        // SAFETY: the CLI is single-threaded; the child runs `exec_bootstrap` only.
        let bootstrap = match unsafe { fork() }.context(|| "forking".into())? {
            ForkResult::Child => init::exec_bootstrap(plan),
            ForkResult::Parent { child } => child,
        };
        drop(plan);
        let joined = match &initial {
            Some(cpus) => placement::apply_affinity(bootstrap.as_raw(), cpus)
                .context(|| "setting the initial CPU affinity (execCPUAffinity.initial)".into()),
            None => Ok(()),
        }
        .and_then(|_| Ok(cgroup.add_process(bootstrap.as_raw())?));
        if let Err(e) = joined {
            let _ = kill(bootstrap, Signal::SIGKILL);
            let _ = waitpid(bootstrap, None);
            return Err(e);
        }
        parent
            .send(&Msg::Go)
            .context(|| "starting the exec process".into())?;
        let mut pid = None;
        loop {
            match parent.recv() {
                Ok(Msg::Pid(p)) => {
                    pid = Some(p);
                    let _ = waitpid(bootstrap, None);
                }
                Ok(Msg::Error(e)) => {
                    if pid.is_none() {
                        let _ = waitpid(bootstrap, None);
                    }
                    return Err(Error::Init(e));
                }
                Ok(other) => return Err(Error::Init(format!("unexpected message {other:?}"))),
                // Closed by execve (close-on-exec): the process runs.
                Err(_) => break,
            }
        }
        let pid = pid.ok_or_else(|| {
            let _ = waitpid(bootstrap, None);
            Error::Init("the exec process exited during set-up".into())
        })?;
        if let Some(path) = &opts.pid_file {
            write_pid_file(path, pid)?;
        }
        Ok(pid)
    }

    /// `run`: create, start, and unless detached wait for the container's
    /// exit and delete it. Returns the exit status to exit with.
    pub fn run(&self, id: &str, bundle: &Path, opts: &CreateOptions, detach: bool) -> Result<i32> {
        become_subreaper()?;
        let (spec, _) = bundle::load(
            &std::fs::canonicalize(bundle).context(|| format!("bundle {}", bundle.display()))?,
        )?;
        let wants_tty = spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
        let mut proxy = None;
        let pid = if wants_tty && opts.console_socket.is_none() {
            if detach {
                return Err(Error::Invalid(
                    "a detached container with a terminal needs a --console-socket".into(),
                ));
            }
            let (ours, theirs) = UnixStream::pair().context(|| "socketpair".into())?;
            let io = ProcessIo {
                stdio: None,
                console: Some(OwnedFd::from(theirs)),
            };
            let pid = self.create_with_io(id, bundle, opts, io)?;
            proxy = Some(
                crate::console::recv_fd(ours.as_raw_fd())
                    .context(|| "receiving the terminal".into())?,
            );
            pid
        } else {
            self.create(id, bundle, opts)?
        };
        if let Err(e) = self.start(id) {
            let _ = self.delete(id, true);
            return Err(e);
        }
        if detach {
            return Ok(0);
        }
        let code = match proxy {
            Some(master) => crate::tty::proxy_and_wait(master, pid)?,
            None => wait_forwarding(pid)?,
        };
        self.delete(id, true)?;
        Ok(code)
    }

    /// `exec` in the foreground: start, proxy a terminal if needed, wait.
    pub fn exec_foreground(&self, id: &str, process: &Process, opts: &ExecOptions) -> Result<i32> {
        if opts.detach {
            return self.exec(id, process, opts).map(|_| 0);
        }
        become_subreaper()?;
        if process.terminal().unwrap_or(false) && opts.console_socket.is_none() {
            let (ours, theirs) = UnixStream::pair().context(|| "socketpair".into())?;
            let pid = self.exec_with_console(id, process, opts, Some(OwnedFd::from(theirs)))?;
            let master = crate::console::recv_fd(ours.as_raw_fd())
                .context(|| "receiving the terminal".into())?;
            return crate::tty::proxy_and_wait(master, pid);
        }
        let pid = self.exec(id, process, opts)?;
        wait_forwarding(pid)
    }
}

/// Runs `f` with a path to the same file that fits in a unix socket address.
/// sun_path holds 107 bytes (unix(7)), and engines pass state roots and
/// 64-hex ids that together go past it; the parent directory opened O_PATH
/// and named through /proc/self/fd keeps the path short.
pub fn with_short_path<T>(
    path: &Path,
    f: impl FnOnce(&Path) -> std::io::Result<T>,
) -> std::io::Result<T> {
    const SUN_PATH_MAX: usize = 107;
    if path.as_os_str().len() <= SUN_PATH_MAX {
        return f(path);
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return f(path);
    };
    let dir_fd = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(std::io::Error::from)?;
    // SAFETY: open just returned this fd and nothing else owns it.
    let dir_fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(dir_fd) };
    let short = PathBuf::from(format!("/proc/self/fd/{}", dir_fd.as_raw_fd())).join(name);
    f(&short)
}

fn bind_short(path: &Path) -> Result<UnixListener> {
    with_short_path(path, |p| UnixListener::bind(p))
        .context(|| format!("creating {}", path.display()))
}

fn wrong_state(id: &str, status: Status, action: &'static str) -> Error {
    Error::WrongState {
        id: id.to_string(),
        status: status.to_string(),
        action,
    }
}

fn owner() -> String {
    // runc reports the owner of the container as the caller's user name.
    let uid = nix::unistd::getuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

/// Kills every process in a cgroup and waits (briefly) until it is empty.
fn kill_cgroup(cgroup: &Cgroup) {
    let deadline = Instant::now() + Duration::from_secs(5);
    // A frozen cgroup's tasks only die once thawed.
    let _ = cgroup.thaw();
    loop {
        let pids = cgroup.pids().unwrap_or_default();
        if pids.is_empty() || Instant::now() > deadline {
            return;
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Device rules as callers expect them: the spec's rules, then access to the
/// devices every container gets and to those the spec creates.
fn resources_with_default_devices(
    resources: Option<&LinuxResources>,
    spec: &Spec,
) -> LinuxResources {
    let mut r = resources.cloned().unwrap_or_default();
    if resources.is_none_or(|r| r.devices().is_none()) {
        return r;
    }
    let mut rules = r.devices().clone().unwrap_or_default();
    let allow = |major: Option<i64>, minor: Option<i64>| {
        let mut d = LinuxDeviceCgroup::default();
        d.set_allow(true);
        d.set_typ(Some(LinuxDeviceType::C));
        d.set_major(major);
        d.set_minor(minor);
        d.set_access(Some("rwm".into()));
        d
    };
    for (major, minor) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
    ] {
        rules.push(allow(Some(major), Some(minor)));
    }
    rules.push(allow(Some(136), None));
    let spec_rules = rules.clone();
    for d in spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default()
    {
        // A fifo is no device to the device cgroup: nothing to allow. A
        // device the spec's own rules name keeps the access they give
        // (`--device /dev/x:/dev/y:r` is read-only).
        let named = spec_rules.iter().any(|r| {
            r.allow()
                && r.typ() == Some(d.typ())
                && r.major() == Some(d.major())
                && r.minor() == Some(d.minor())
        });
        if d.typ() != LinuxDeviceType::P && !named {
            rules.push(LinuxDeviceCgroup::from(&d));
        }
    }
    r.set_devices(Some(rules));
    r
}

fn ns_flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

fn namespaces_from_spec(spec: &Spec) -> Result<Namespaces> {
    let list = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    let time_offsets = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().clone())
        .map(|offsets| {
            offsets
                .iter()
                .map(|(clock, o)| {
                    format!(
                        "{clock} {} {}\n",
                        o.secs().unwrap_or(0),
                        o.nanosecs().unwrap_or(0)
                    )
                })
                .collect::<String>()
        });
    let mut ns = Namespaces {
        join: Vec::new(),
        new_user: false,
        unshare: CloneFlags::empty(),
        time_offsets,
    };
    // The user namespace is joined first: it decides what the others allow.
    let mut ordered: Vec<_> = list.iter().collect();
    ordered.sort_by_key(|n| n.typ() != LinuxNamespaceType::User);
    for n in ordered {
        let flag = ns_flag(n.typ());
        match n.path() {
            Some(path) => {
                let fd = File::open(path)
                    .context(|| format!("opening {} namespace {}", n.typ(), path.display()))?;
                ns.join.push((flag, OwnedFd::from(fd)));
            }
            None if n.typ() == LinuxNamespaceType::User => ns.new_user = true,
            None => ns.unshare |= flag,
        }
    }
    Ok(ns)
}

/// The namespaces of a running process that differ from ours, to join.
fn namespaces_of_pid(pid: i32) -> Result<Namespaces> {
    use std::os::unix::fs::MetadataExt;
    let mut ns = Namespaces {
        join: Vec::new(),
        new_user: false,
        unshare: CloneFlags::empty(),
        time_offsets: None,
    };
    for (name, flag) in [
        ("user", CloneFlags::CLONE_NEWUSER),
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("cgroup", CloneFlags::CLONE_NEWCGROUP),
        ("time", CloneFlags::from_bits_retain(libc::CLONE_NEWTIME)),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ] {
        let theirs = format!("/proc/{pid}/ns/{name}");
        let ours = format!("/proc/self/ns/{name}");
        let (Ok(a), Ok(b)) = (std::fs::metadata(&theirs), std::fs::metadata(&ours)) else {
            continue;
        };
        if a.ino() == b.ino() && a.dev() == b.dev() {
            continue;
        }
        let fd = File::open(&theirs).context(|| format!("opening {theirs}"))?;
        ns.join.push((flag, OwnedFd::from(fd)));
    }
    Ok(ns)
}

/// Connects to the seccomp listener socket when the profile asks for one.
fn seccomp_listener(
    linux: &oci_spec::runtime::Linux,
    state: &State,
) -> Result<Option<init::SeccompListener>> {
    let Some(path) = linux
        .seccomp()
        .as_ref()
        .and_then(|s| s.listener_path().clone())
    else {
        return Ok(None);
    };
    let socket = with_short_path(&path, |p| UnixStream::connect(p))
        .context(|| format!("connecting to seccomp listener {}", path.display()))?;
    Ok(Some(init::SeccompListener {
        socket: OwnedFd::from(socket),
        metadata: linux
            .seccomp()
            .as_ref()
            .and_then(|s| s.listener_metadata().clone()),
        state: state.clone(),
    }))
}

fn proc_plan(
    process: &Process,
    linux: &oci_spec::runtime::Linux,
    preserve_fds: i32,
    in_userns: bool,
) -> Result<ProcPlan> {
    let seccomp = linux.seccomp().as_ref();
    let args = process.args().clone().unwrap_or_default();
    let env = process.env().clone().unwrap_or_default();
    let user = process.user();
    let console_size = process
        .console_size()
        .map(|b| (b.height() as u16, b.width() as u16))
        .unwrap_or((0, 0));
    Ok(ProcPlan {
        args: process::cstrings(&args, "argument")?,
        env: process::cstrings(&env, "environment variable")?,
        arg0: args.first().cloned().unwrap_or_default(),
        env_strings: env,
        cwd: process.cwd().clone(),
        uid: user.uid(),
        gid: user.gid(),
        groups: user.additional_gids().clone().unwrap_or_default(),
        may_setgroups: true,
        umask: user.umask(),
        caps: grantable_caps(CapSets::from_process(process), in_userns),
        last_cap: process::last_cap(),
        no_new_privs: process.no_new_privileges().unwrap_or(false),
        rlimits: process::rlimits(process.rlimits().as_deref().unwrap_or_default()),
        seccomp: seccomp.map(crate::seccomp::compile).transpose()?,
        terminal: process.terminal().unwrap_or(false),
        console_size,
        preserve_fds,
        personality: linux.personality().as_ref().map(|p| match p.domain() {
            oci_spec::runtime::LinuxPersonalityDomain::PerLinux32 => 0x0008,
            oci_spec::runtime::LinuxPersonalityDomain::PerLinux => 0,
        }),
        io_priority: process.io_priority().as_ref().map(|io| {
            let class = match io.class() {
                oci_spec::runtime::IOPriorityClass::IoprioClassRt => 1,
                oci_spec::runtime::IOPriorityClass::IoprioClassBe => 2,
                oci_spec::runtime::IOPriorityClass::IoprioClassIdle => 3,
            };
            (class << 13) | (io.priority() as i32 & 0x1fff)
        }),
        seccomp_listener: None,
        host_pid: 0,
        scheduler: process
            .scheduler()
            .as_ref()
            .map(placement::sched_attr)
            .transpose()
            .map_err(Error::Invalid)?,
        mem_policy: linux
            .memory_policy()
            .as_ref()
            .map(placement::mem_policy)
            .transpose()
            .map_err(Error::Invalid)?,
        cpu_affinity: None,
        labels: lsm::exec_labels(
            lsm::Host::detect(),
            process.apparmor_profile().as_deref(),
            process.selinux_label().as_deref(),
        )
        .map_err(Error::Invalid)?,
    })
}

/// What a `create` has made so far, for the clean-up of one that fails.
#[derive(Default)]
struct Made {
    cgroup: Option<Cgroup>,
    init_pid: Option<i32>,
    rdt_dirs: Vec<PathBuf>,
}

/// Per entry of `mounts`: an id-mapped copy of its source (config.md
/// "idmap", "ridmap", `uidMappings`), made here on the host because
/// mapping a mount needs privilege over the filesystem's user namespace.
/// The mapping is the mount's own, else the container's user namespace's.
fn idmapped_mounts(spec: &Spec, ext: &Extensions, bundle: &Path) -> Result<Vec<Option<OwnedFd>>> {
    let linux = spec.linux().as_ref().expect("validated");
    let new_userns = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
    let mut out = Vec::new();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let options = m.options().clone().unwrap_or_default();
        let own = ext.mount_idmaps.get(i).cloned().flatten();
        // Mappings without the option still ask for a (non-recursive) map.
        let Some(recursive_map) = rootfs::idmap_option(&options).or(own.as_ref().map(|_| false))
        else {
            out.push(None);
            continue;
        };
        let dest = m.destination().display();
        let is_bind = m.typ().as_deref() == Some("bind")
            || options.iter().any(|o| o == "bind" || o == "rbind");
        if !is_bind {
            return Err(Error::Invalid(format!(
                "mount {dest}: id-mapped mounts are supported for bind mounts only"
            )));
        }
        let (uid, gid) = match own {
            Some(map) => (map.uid, map.gid),
            None if new_userns => (
                linux.uid_mappings().clone().unwrap_or_default(),
                linux.gid_mappings().clone().unwrap_or_default(),
            ),
            None => {
                return Err(Error::Invalid(format!(
                    "mount {dest}: idmap needs uidMappings and gidMappings on the mount, \
                     or a user namespace for the container"
                )))
            }
        };
        let source = bundle.join(m.source().clone().unwrap_or_default());
        let userns = userns_with_maps(&uid, &gid)?;
        let recursive_tree = options.iter().any(|o| o == "rbind");
        out.push(Some(rootfs::idmapped_tree(
            &source,
            &userns,
            recursive_tree,
            recursive_map,
        )?));
    }
    Ok(out)
}

/// A user namespace holding `uid` and `gid` maps and no process: a child
/// creates it, the maps are written from here, and the namespace outlives
/// the child through the returned descriptor.
fn userns_with_maps(
    uid: &[oci_spec::runtime::LinuxIdMapping],
    gid: &[oci_spec::runtime::LinuxIdMapping],
) -> Result<OwnedFd> {
    let (ready_r, ready_w) = nix::unistd::pipe().context(|| "pipe".into())?;
    let (hold_r, hold_w) = nix::unistd::pipe().context(|| "pipe".into())?;
    // SAFETY: the CLI is single-threaded; the child only makes raw syscalls
    // and exits.
    let child = match unsafe { fork() }.context(|| "forking".into())? {
        ForkResult::Child => {
            drop(ready_r);
            drop(hold_w);
            // SAFETY: unshare takes a flag; write and read use live buffers
            // of the lengths given; _exit never returns.
            unsafe {
                let ok = [u8::from(libc::unshare(libc::CLONE_NEWUSER) == 0)];
                libc::write(ready_w.as_raw_fd(), ok.as_ptr().cast(), 1);
                let mut b = [0u8; 1];
                // Returns once the runtime closes its end, on any outcome.
                libc::read(hold_r.as_raw_fd(), b.as_mut_ptr().cast(), 1);
                libc::_exit(0)
            }
        }
        ForkResult::Parent { child } => child,
    };
    drop(ready_w);
    drop(hold_r);
    let result = (|| {
        let mut ok = [0u8; 1];
        let n = nix::unistd::read(ready_r.as_raw_fd(), &mut ok).context(|| "reading".into())?;
        if n != 1 || ok[0] != 1 {
            return Err(Error::Init(
                "could not create a user namespace for an id-mapped mount".into(),
            ));
        }
        let pid = child.as_raw();
        let fmt = |maps: &[oci_spec::runtime::LinuxIdMapping]| {
            maps.iter()
                .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
                .collect::<String>()
        };
        for (file, maps) in [("uid_map", uid), ("gid_map", gid)] {
            let path = format!("/proc/{pid}/{file}");
            std::fs::write(&path, fmt(maps))
                .context(|| format!("writing the id-mapped mount's {file}"))?;
        }
        let ns = File::open(format!("/proc/{pid}/ns/user"))
            .context(|| "opening the id-mapped mount's user namespace".into())?;
        Ok(OwnedFd::from(ns))
    })();
    drop(hold_w);
    let _ = waitpid(child, None);
    result
}

/// The requested capabilities less those the runtime cannot grant, with a
/// warning naming them (config.md: such capabilities are logged, not fatal).
/// In a user namespace the process holds every capability of that namespace.
fn grantable_caps(caps: CapSets, in_userns: bool) -> CapSets {
    if in_userns {
        return caps;
    }
    let (caps, missing) = caps.restricted_to(process::own_permitted());
    if missing != 0 {
        crate::log::warn(&format!(
            "the runtime does not hold {}, so the process runs without them",
            process::cap_names(missing)
        ));
    }
    caps
}

fn write_id_maps(pid: i32, linux: &oci_spec::runtime::Linux) -> Result<()> {
    let fmt = |maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        maps.iter()
            .flatten()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect::<String>()
    };
    let uid = format!("/proc/{pid}/uid_map");
    std::fs::write(&uid, fmt(linux.uid_mappings())).context(|| format!("writing {uid}"))?;
    let gid = format!("/proc/{pid}/gid_map");
    std::fs::write(&gid, fmt(linux.gid_mappings())).context(|| format!("writing {gid}"))
}

fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    // Written whole and renamed in: callers poll for this file.
    let tmp = path.with_extension("cais-tmp");
    std::fs::write(&tmp, pid.to_string())
        .and_then(|_| std::fs::rename(&tmp, path))
        .context(|| format!("writing pid file {}", path.display()))
}

/// Makes this process the reaper of orphaned descendants, so the container
/// process is re-parented to us when the bootstrap child exits.
fn become_subreaper() -> Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes integers, no pointers, so no memory is
    // touched; it only makes the container's orphaned processes reparent to this one.
    nix::errno::Errno::result(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) })
        .map(drop)
        .context(|| "becoming a child subreaper".into())
}

/// Waits for `pid` to exit while forwarding the usual signals to it; returns
/// its exit code, or 128 + the signal that killed it.
pub fn wait_forwarding(pid: i32) -> Result<i32> {
    use nix::sys::signal::{SigSet, SigmaskHow};
    use nix::sys::signalfd::SignalFd;
    let target = Pid::from_raw(pid);
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
    ] {
        set.add(s);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .context(|| "sigprocmask".into())?;
    let sfd = SignalFd::new(&set).context(|| "signalfd".into())?;
    loop {
        // Reap everything that has exited; orphans re-parented to us too.
        loop {
            match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p == target => return Ok(code),
                Ok(WaitStatus::Signaled(p, sig, _)) if p == target => return Ok(128 + sig as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
        match sfd.read_signal() {
            Ok(Some(info)) => {
                let signo = info.ssi_signo as i32;
                if signo != libc::SIGCHLD {
                    if let Ok(sig) = Signal::try_from(signo) {
                        let _ = kill(target, sig);
                    }
                }
            }
            Ok(None) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                return Err(Error::Sys {
                    context: "reading signals".into(),
                    errno: e,
                })
            }
        }
    }
}
