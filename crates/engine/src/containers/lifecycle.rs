//! The container life cycle: create, start (rootfs, bundle, networking,
//! shim), stop/kill/pause/unpause/restart, what follows an exit (teardown,
//! restart policies with back-off, `--rm`), removal, live restore after a
//! daemon restart, commit and resource updates.
//!
//! Operations here are synchronous and short; the HTTP layer runs them on
//! blocking threads. A container's process is never forked by the engine:
//! a shim (`cais shim`) creates it through the runtime and supervises it,
//! so containers outlive the daemon. A monitor thread per running
//! container waits on its shim (see `monitor`).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cais_api::{ContainerConfig, CreateRequest, CreateResponse, HostConfig};
use cais_image::ImageStore;
use nix::sys::signal::Signal;
use tokio::sync::oneshot;

use crate::config::Config;
use crate::containers::health::{self, has_test};
use crate::containers::state::{Change, Container, State};
use crate::containers::table::Table;
use crate::containers::{monitor, mounts};
use crate::error::{Error, Kind, Result};
use crate::events::Events;
use crate::filters::Filters;
use crate::ids::{now, random_hex, random_name, valid_name};
use crate::networks::wiring::Wiring;
use crate::shim;
use crate::spec;
use crate::timing::Steps;
use crate::trash::Trash;
use crate::volumes::Volumes;

/// What `start` owes the attach clients of a container that is not running.
enum Gate {
    /// Clients that came before the shim, each with its request and where
    /// its connection to the shim goes.
    Waiting(Vec<(shim::Request, oneshot::Sender<UnixStream>)>),
    /// The shim runs: clients connect to it themselves.
    ShimUp,
}

/// The container manager. Its own lock, `attach_gate`, is a leaf.
pub struct Containers {
    cfg: Config,
    images: Arc<ImageStore>,
    volumes: Arc<Volumes>,
    events: Arc<Events>,
    table: Arc<Table>,
    wiring: Arc<Wiring>,
    /// Where removed containers' directories go to be deleted.
    trash: Arc<Trash>,
    /// Starts shims (through the shim server).
    spawner: shim::Spawner,
    /// Attach clients waiting for a container's shim, by container id:
    /// `start` connects them to the shim before the process runs.
    attach_gate: Mutex<HashMap<String, Gate>>,
}

impl Containers {
    pub fn new(
        cfg: Config,
        images: Arc<ImageStore>,
        volumes: Arc<Volumes>,
        events: Arc<Events>,
        table: Arc<Table>,
        wiring: Arc<Wiring>,
        trash: Arc<Trash>,
    ) -> Containers {
        Containers {
            spawner: shim::Spawner::new(cfg.exe()),
            cfg,
            images,
            volumes,
            events,
            table,
            wiring,
            trash,
            attach_gate: Mutex::new(HashMap::new()),
        }
    }

    /// `POST /containers/create`.
    pub fn create(&self, req: CreateRequest, name: Option<&str>) -> Result<CreateResponse> {
        let mut steps = Steps::new("create", name.unwrap_or_default());
        let name = match name
            .map(|n| n.trim_start_matches('/'))
            .filter(|n| !n.is_empty())
        {
            Some(n) if !valid_name(n) => {
                return Err(Error::InvalidArgument(format!(
                    "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                )))
            }
            Some(n) => n.to_string(),
            None => loop {
                let n = random_name();
                if !self.table.name_taken(&n) {
                    break n;
                }
            },
        };
        if req.config.image.is_empty() {
            return Err(Error::InvalidArgument("no image given".into()));
        }
        validate_host_config(&req.host_config)?;
        // A missing network is the request's fault here, not a missing
        // resource: the docker CLI answers any 404 from create by pulling
        // the image and trying again, which would hide this message.
        let endpoints = self
            .wiring
            .endpoints_for_create(&req.host_config, req.networking_config.as_ref())
            .map_err(|e| match e {
                Error::NotFound { .. } => Error::InvalidArgument(e.message()),
                other => other,
            })?;
        let image = self
            .images
            .resolve(&req.config.image)
            .map_err(|e| match e {
                cais_image::Error::NotFound { .. } => {
                    Error::not_found(Kind::Image, &req.config.image)
                }
                other => other.into(),
            })?;
        let image_config: ContainerConfig = self
            .images
            .config_json(&image)?
            .get("config")
            .cloned()
            .and_then(|c| serde_json::from_value(c).ok())
            .unwrap_or_default();
        let (args, env, cwd) = spec::merge(&image_config, &req.config);
        if args.is_empty() {
            return Err(Error::InvalidArgument("no command specified".into()));
        }
        let id = random_hex(32);
        let mut config = req.config.clone();
        config.env = env;
        config.cmd = req.config.cmd.clone().or(image_config.cmd.clone());
        config.entrypoint = req
            .config
            .entrypoint
            .clone()
            .or(image_config.entrypoint.clone());
        config.working_dir = if cwd == "/"
            && req.config.working_dir.is_empty()
            && image_config.working_dir.is_empty()
        {
            String::new()
        } else {
            cwd
        };
        if config.user.is_empty() {
            config.user = image_config.user.clone();
        }
        if config.hostname.is_empty() {
            config.hostname = id[..12].to_string();
        }
        if config.healthcheck.is_none() {
            config.healthcheck = image_config.healthcheck.clone();
        }
        if config.stop_signal.is_none() {
            config.stop_signal = image_config.stop_signal.clone();
        }
        let mut labels = image_config.labels.clone();
        labels.extend(req.config.labels.clone());
        config.labels = labels;
        // The image's EXPOSE and the container's `--expose`/`-p` together.
        if let Some(image_ports) = &image_config.exposed_ports {
            let ports = config.exposed_ports.get_or_insert_with(BTreeMap::new);
            for (k, v) in image_ports {
                ports.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        if config.volumes.is_none() {
            config.volumes = image_config.volumes.clone();
        }
        steps.step("resolve");
        // Reserve the name before the slow part.
        self.table.insert(Container {
            id: id.clone(),
            name: name.clone(),
            created: now(),
            image: req.config.image.clone(),
            image_id: image.id().to_string(),
            path: args[0].clone(),
            args: args[1..].to_vec(),
            config,
            host_config: req.host_config.clone(),
            state: State::created(),
            restart_count: 0,
            manually_stopped: false,
            mounts: Vec::new(),
            anonymous_volumes: Vec::new(),
            networks: endpoints,
            net: None,
        })?;
        let result = self.create_files(&id, &image.manifest.to_string());
        steps.step("files");
        match result {
            Ok(rec) => {
                rec.emit(&self.events, "create", &[]);
                Ok(CreateResponse {
                    id,
                    warnings: Vec::new(),
                })
            }
            Err(e) => {
                self.table.discard(&id);
                let _ = self.images.remove_container(&id);
                let _ = fs::remove_dir_all(self.table.dir(&id));
                Err(e)
            }
        }
    }

    /// The slow, failure-prone part of create: directories, snapshot, volumes.
    fn create_files(&self, id: &str, manifest: &str) -> Result<Container> {
        let dir = self.table.dir(id);
        fs::create_dir_all(&dir).map_err(Error::io("creating the container directory", &dir))?;
        self.images.prepare_container(id, manifest)?;
        let mut rec = self.table.get(id)?;
        let (mounts, anonymous) = mounts::plan(&self.volumes, &rec)?;
        rec.mounts = mounts;
        rec.anonymous_volumes = anonymous;
        let rec = self.table.update(id, |r| {
            r.mounts = rec.mounts.clone();
            r.anonymous_volumes = rec.anonymous_volumes.clone();
        })?;
        Ok(rec)
    }

    /// Mounts the rootfs, writes the bundle and /etc files, starts the shim
    /// (which creates the container), lets waiting attach clients connect,
    /// then runs the container's process.
    pub fn start(self: &Arc<Self>, id: &str) -> Result<()> {
        let rec = self.table.get(id)?;
        if rec.state.is_running() {
            return Err(Error::NotModified("container already started".into()));
        }
        if matches!(rec.state, State::Removing(_) | State::Dead(_)) {
            return Err(Error::Conflict("container is marked for removal".into()));
        }
        let dir = self.table.dir(id);
        let result = self.start_inner(&rec, &dir);
        if let Err(e) = &result {
            self.gate().remove(id);
            let _ = self
                .table
                .transition(id, Change::StartFailed { error: e.message() });
            self.wiring.teardown(id);
            self.teardown_rootfs(id);
            // As docker: a `--rm` container that cannot start is removed,
            // which is what `docker run --rm` waits for before exiting.
            if rec.host_config.auto_remove {
                let _ = self.remove(id, true, true);
            }
        }
        result
    }

    fn start_inner(self: &Arc<Self>, rec: &Container, dir: &Path) -> Result<()> {
        let id = &rec.id;
        let mut steps = Steps::new("start", id);
        // Leftovers of a previous run.
        for f in ["exit.json", "attach.sock", "init.pid", "shim.pid"] {
            let _ = fs::remove_file(dir.join(f));
        }
        let _ = self.cfg.runtime().delete(id, true);
        steps.step("cleanup");
        let mut overlay = self.images.container_mount(id)?;
        if !mounts::is_mounted(&overlay.target) {
            // An auto-remove container's upper directory goes with it: no
            // sync of the host's filesystem when it unmounts. It is mounted
            // once, here (overlayfs refuses to mount a volatile upper again).
            overlay.volatile = rec.host_config.auto_remove;
            cais_image::snapshot::mount(&overlay)?;
        }
        let rootfs = overlay.target.clone();
        steps.step("overlay");
        let plan = self.wiring.setup(rec)?;
        steps.step("network");
        let mounts = mounts::for_runtime(rec, dir, &rootfs, &plan)?;
        let (uid, gid, additional_gids) =
            spec::resolve_user(&rootfs, &rec.config.user).map_err(Error::InvalidArgument)?;
        let mut env = rec.config.env.clone();
        if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
            env.push(format!("HOSTNAME={}", rec.config.hostname));
        }
        if rec.config.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        let mut args = vec![rec.path.clone()];
        args.extend(rec.args.clone());
        if rec.host_config.init == Some(true) {
            // A tiny init as pid 1 forwards signals and reaps zombies.
            let mut with_init = vec!["/dev/init".to_string(), "--".to_string()];
            with_init.extend(args);
            args = with_init;
        }
        let seccomp_profile = seccomp_from_opts(&rec.host_config.security_opt)?;
        let cwd = if rec.config.working_dir.is_empty() {
            "/".to_string()
        } else {
            rec.config.working_dir.clone()
        };
        let spec = spec::build(&spec::Input {
            id,
            config: &rec.config,
            host: &rec.host_config,
            rootfs: &rootfs,
            args,
            env,
            cwd,
            uid,
            gid,
            additional_gids,
            hostname: plan.hostname.clone(),
            mounts,
            seccomp_profile,
            host_network: plan.host_network,
            netns_path: plan.netns.clone(),
        });
        steps.step("spec");
        let bundle = dir.join("bundle");
        fs::create_dir_all(&bundle).map_err(Error::io("creating the bundle", &bundle))?;
        fs::write(
            bundle.join("config.json"),
            serde_json::to_vec_pretty(&spec).expect("spec serializes"),
        )
        .map_err(Error::io("writing", bundle.join("config.json")))?;
        let log_cfg = &rec.host_config.log_config.config;
        let max_size = log_cfg
            .get("max-size")
            .map(|s| parse_size(s))
            .transpose()?
            .unwrap_or(0);
        let max_files: u32 = log_cfg
            .get("max-file")
            .and_then(|s| s.parse().ok())
            .unwrap_or(1);
        steps.step("bundle");
        let started = self
            .spawner
            .spawn(&shim::Config {
                id: id.clone(),
                bundle,
                state_dir: dir.to_path_buf(),
                runtime_root: self.cfg.runtime_root(),
                terminal: rec.config.tty,
                stdin: rec.config.open_stdin,
                log_max_size: max_size,
                log_max_files: max_files,
                cgroup_path: Config::cgroup_path(id),
            })
            .map_err(Error::spawn(self.cfg.exe()))?
            .map_err(|reason| Error::CreateTask { reason })?;
        steps.step("shim");
        // Attach clients that came before start are connected to the shim
        // first, so they see all output; later ones connect themselves.
        let waiting = match self.gate().insert(id.clone(), Gate::ShimUp) {
            Some(Gate::Waiting(w)) => w,
            _ => Vec::new(),
        };
        for (want, to) in waiting {
            if let Ok(conn) = shim::connect(dir, &want) {
                let _ = to.send(conn);
            }
        }
        steps.step("attach");
        // DNS and firewall before the process runs, so its first packets
        // find them.
        self.wiring.started(id)?;
        steps.step("wiring_started");
        shim::start(dir)
            .map_err(|source| Error::Shim {
                id: id.clone(),
                source,
            })?
            .map_err(|reason| Error::StartTask { reason })?;
        steps.step("process_start");
        let rec = self.table.try_update(id, |r| {
            r.state = r.state.apply(Change::Started {
                pid: started.pid as i64,
                started_at: now(),
                health: r
                    .config
                    .healthcheck
                    .as_ref()
                    .filter(|h| has_test(h))
                    .map(|_| cais_api::Health {
                        status: "starting".into(),
                        ..Default::default()
                    }),
            })?;
            r.manually_stopped = false;
            Ok(())
        })?;
        steps.step("record");
        rec.emit(&self.events, "start", &[]);
        self.watch(id);
        if rec.config.healthcheck.as_ref().is_some_and(has_test) {
            health::spawn(self.table.clone(), self.cfg.clone(), id.clone());
        }
        Ok(())
    }

    /// The container's root filesystem, mounted if it is not (a stopped
    /// container, for export or cp); true when this call mounted it, so the
    /// caller unmounts it afterwards.
    pub fn mount_rootfs(&self, id: &str) -> Result<(PathBuf, bool)> {
        self.table.get(id)?;
        let m = self.images.container_mount(id)?;
        if mounts::is_mounted(&m.target) {
            return Ok((m.target, false));
        }
        cais_image::snapshot::mount(&m)?;
        Ok((m.target, true))
    }

    fn teardown_rootfs(&self, id: &str) {
        if let Ok(m) = self.images.container_mount(id) {
            let _ = cais_image::snapshot::unmount(&m.target);
        }
    }

    /// Starts a monitor for a running container: its exit comes back to
    /// `on_exit`.
    fn watch(self: &Arc<Self>, id: &str) {
        let this = self.clone();
        let id = id.to_string();
        monitor::watch(self.table.dir(&id), move |exit| this.on_exit(&id, exit));
    }

    /// What follows an exit: the rootfs and networking are torn down, the
    /// exit recorded and announced, then `--rm` removes the container or
    /// its restart policy schedules a start after the back-off.
    fn on_exit(self: &Arc<Self>, id: &str, exit: shim::Exit) {
        let mut steps = Steps::new("exit", id);
        // The shim is gone: attach clients wait for the next start.
        if matches!(self.gate().get(id), Some(Gate::ShimUp)) {
            self.gate().remove(id);
        }
        self.teardown_rootfs(id);
        steps.step("unmount");
        self.wiring.teardown(id);
        steps.step("network");
        let exited = Change::Exited {
            exit_code: exit.exit_code as i64,
            oom_killed: exit.oom_killed,
            finished_at: exit.finished_at.clone(),
        };
        let rec = match self.table.transition(id, exited) {
            Ok(rec) => {
                steps.step("record");
                rec
            }
            Err(e) => {
                // Removed meanwhile, or its removal began.
                tracing::debug!(container = id, error = %e, "an exit nobody waits for");
                return;
            }
        };
        if exit.oom_killed {
            rec.emit(&self.events, "oom", &[]);
        }
        rec.emit(
            &self.events,
            "die",
            &[("exitCode", exit.exit_code.to_string())],
        );
        if rec.host_config.auto_remove {
            let _ = self.remove(id, true, true);
            return;
        }
        if monitor::should_restart(&rec) {
            let delay = monitor::restart_delay(rec.restart_count);
            let _ = self.table.try_update(id, |r| {
                r.state = r.state.apply(Change::RestartScheduled)?;
                r.restart_count += 1;
                Ok(())
            });
            let engine = self.clone();
            let id = id.to_string();
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                // Stopped or removed meanwhile: leave it.
                match engine.table.get(&id) {
                    Ok(r) if r.state.is_restarting() && !r.manually_stopped => {}
                    _ => return,
                }
                if engine.start(&id).is_err() {
                    let _ = engine.table.transition(&id, Change::RestartAbandoned);
                }
            });
        }
    }

    /// After a daemon restart: reattach to live shims; containers whose shim
    /// died (the host restarted) are marked exited and restarted by policy.
    pub fn restore(self: &Arc<Self>) {
        let running: Vec<Container> = self
            .table
            .select(|r| r.state.is_running() || r.state.is_restarting());
        for rec in running {
            let dir = self.table.dir(&rec.id);
            if shim::alive(&dir) {
                self.watch(&rec.id);
                if rec.config.healthcheck.as_ref().is_some_and(has_test) {
                    health::spawn(self.table.clone(), self.cfg.clone(), rec.id.clone());
                }
                continue;
            }
            let exit = shim::read_exit(&dir).unwrap_or_else(monitor::unknown_exit);
            let _ = self.table.update(&rec.id, |r| r.manually_stopped = false);
            // A host-style restart: "always" containers come back even if
            // the exit was not a failure.
            let restart = monitor::restarts_after_host_restart(&rec);
            self.on_exit(&rec.id, exit);
            if restart {
                if let Ok(r) = self.table.get(&rec.id) {
                    if !r.state.is_running() && !r.state.is_restarting() {
                        let _ = self.start(&rec.id);
                    }
                }
            }
        }
    }

    /// Sends a signal to the container's process.
    pub fn kill(&self, id: &str, signal: &str) -> Result<()> {
        let rec = self.table.get(id)?;
        if !rec.state.is_running() {
            return Err(Error::Conflict(format!("Container {id} is not running")));
        }
        let sig = cais_runtime::signal::parse(if signal.is_empty() { "KILL" } else { signal })
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        self.table.update(id, |r| r.manually_stopped = true)?;
        self.cfg
            .runtime()
            .kill(id, sig, false)
            .map_err(Error::runtime("signalling", id))?;
        let killed = sig == nix::sys::signal::Signal::SIGKILL;
        if killed && rec.state.is_paused() {
            let _ = self.cfg.runtime().resume(id);
        }
        rec.emit(
            &self.events,
            "kill",
            &[("signal", (sig as i32).to_string())],
        );
        if killed {
            // As dockerd: a SIGKILL returns once the container is gone, so
            // `kill` then `rm` finds it stopped. Other signals may be
            // handled or ignored, and do not wait.
            const KILL_WAIT: u64 = 30;
            self.wait_not_running(id, Duration::from_secs(KILL_WAIT));
            if self.table.get(id).is_ok_and(|r| r.state.is_running()) {
                return Err(Error::KillTimeout {
                    id: id.to_string(),
                    seconds: KILL_WAIT,
                });
            }
        }
        Ok(())
    }

    /// Stops: the stop signal, then SIGKILL after the grace period.
    pub fn stop(&self, id: &str, timeout: Option<i64>, signal: Option<&str>) -> Result<()> {
        let rec = self.table.get(id)?;
        if !rec.state.is_running() {
            if rec.state.is_restarting() {
                self.table.try_update(id, |r| {
                    r.manually_stopped = true;
                    r.state = r.state.apply(Change::RestartAbandoned)?;
                    Ok(())
                })?;
                return Ok(());
            }
            return Err(Error::NotModified("container already stopped".into()));
        }
        self.table.update(id, |r| r.manually_stopped = true)?;
        let signal = signal
            .map(str::to_string)
            .or(rec.config.stop_signal.clone())
            .unwrap_or_else(|| "SIGTERM".into());
        let grace = timeout.or(rec.config.stop_timeout).unwrap_or(10).max(0);
        let mut steps = Steps::new("stop", id);
        let sig = cais_runtime::signal::parse(&signal)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        if rec.state.is_paused() {
            let _ = self.cfg.runtime().resume(id);
        }
        let _ = self.cfg.runtime().kill(id, sig, false);
        steps.step("signal");
        if !self.wait_not_running(id, Duration::from_secs(grace as u64)) {
            let _ = self.cfg.runtime().kill(id, Signal::SIGKILL, true);
            steps.step("grace");
            self.wait_not_running(id, Duration::from_secs(30));
        }
        steps.step("exited");
        rec.emit(&self.events, "stop", &[]);
        Ok(())
    }

    /// Waits until the container's exit is recorded (or it is gone);
    /// false when `limit` passed first.
    fn wait_not_running(&self, id: &str, limit: Duration) -> bool {
        self.table
            .watch(id, Some(limit), |c| {
                (!c.is_some_and(|c| c.state.is_running())).then_some(())
            })
            .is_some()
    }

    pub fn restart(self: &Arc<Self>, id: &str, timeout: Option<i64>) -> Result<()> {
        match self.stop(id, timeout, None) {
            Ok(()) | Err(Error::NotModified(_)) => {}
            Err(e) => return Err(e),
        }
        self.start(id)?;
        let rec = self.table.get(id)?;
        rec.emit(&self.events, "restart", &[]);
        Ok(())
    }

    pub fn pause(&self, id: &str) -> Result<()> {
        let rec = self.table.get(id)?;
        if !rec.state.is_running() {
            return Err(Error::Conflict(format!("Container {id} is not running")));
        }
        if rec.state.is_paused() {
            return Err(Error::Conflict(format!("Container {id} is already paused")));
        }
        self.cfg
            .runtime()
            .pause(id)
            .map_err(Error::runtime("freezing", id))?;
        let rec = self.table.transition(id, Change::Paused)?;
        rec.emit(&self.events, "pause", &[]);
        Ok(())
    }

    pub fn unpause(&self, id: &str) -> Result<()> {
        let rec = self.table.get(id)?;
        if !rec.state.is_paused() {
            return Err(Error::Conflict(format!("Container {id} is not paused")));
        }
        self.cfg
            .runtime()
            .resume(id)
            .map_err(Error::runtime("thawing", id))?;
        let rec = self.table.transition(id, Change::Unpaused)?;
        rec.emit(&self.events, "unpause", &[]);
        Ok(())
    }

    /// Removes a container (running ones only with `force`).
    pub fn remove(&self, id: &str, force: bool, volumes: bool) -> Result<()> {
        let mut steps = Steps::new("remove", id);
        let rec = self.table.get(id)?;
        if rec.state.is_running() {
            if !force {
                let what = if rec.state.is_paused() {
                    "paused"
                } else {
                    "running"
                };
                return Err(Error::Conflict(format!(
                    "cannot remove container \"/{}\": container is {what}: stop the container before removing or force remove",
                    rec.name
                )));
            }
            let _ = self.table.update(id, |r| r.manually_stopped = true);
            if rec.state.is_paused() {
                let _ = self.cfg.runtime().resume(id);
            }
            let _ = self.cfg.runtime().kill(id, Signal::SIGKILL, true);
            self.wait_not_running(id, Duration::from_secs(10));
            steps.step("kill");
        }
        self.wiring.teardown(id);
        steps.step("network");
        let _ = self.table.transition(id, Change::RemovalStarted);
        steps.step("record");
        let _ = self.cfg.runtime().delete(id, true);
        steps.step("runtime_delete");
        // The snapshot and the container's directory are renamed into the
        // trash and deleted in the background.
        let slot = self.trash.slot(id);
        let taken = match self.images.take_container(id, &slot) {
            Ok(()) => {
                self.trash.delete_later(slot);
                Ok(())
            }
            Err(cais_image::Error::NotFound { .. }) => Ok(()),
            // Not renamed (the trash is on another filesystem): now.
            Err(cais_image::Error::Io { .. }) => self.images.remove_container(id),
            Err(e) => Err(e),
        };
        if let Err(e) = taken {
            if !matches!(e, cais_image::Error::NotFound { .. }) {
                let _ = self.table.transition(id, Change::RemovalFailed);
                return Err(e.into());
            }
        }
        steps.step("snapshot");
        let _ = self.trash.discard(id, &self.table.dir(id));
        self.gate().remove(id);
        self.table.forget(id, rec.state.exit_code());
        steps.step("directory");
        if volumes {
            for v in &rec.anonymous_volumes {
                let _ = self.volumes.remove(v, &[]);
            }
        }
        rec.emit(&self.events, "destroy", &[]);
        Ok(())
    }

    /// Blocks until the container is no longer running ("not-running"),
    /// exits after this call ("next-exit", what `docker run` asks before
    /// start) or is gone ("removed", for `--rm`); returns the exit code.
    pub fn wait(&self, id: &str, condition: &str) -> Result<i64> {
        let first = self.table.get(id)?;
        // Some(code) once the condition holds, Some(None) once the
        // container is gone.
        let outcome = self.table.watch(id, None, |c| match c {
            None => Some(None),
            Some(r) => {
                let stopped = r.state.is_stopped();
                let done = match condition {
                    "removed" => false,
                    "next-exit" => stopped && r.state.finished_at() != first.state.finished_at(),
                    _ => stopped,
                };
                done.then(|| Some(r.state.exit_code()))
            }
        });
        match outcome.flatten() {
            Some(code) => Ok(code),
            None if condition == "removed" => Ok(self
                .table
                .removed_exit_code(id)
                .unwrap_or(first.state.exit_code())),
            None => Err(Error::not_found(Kind::Container, id)),
        }
    }

    pub fn rename(&self, id: &str, new_name: &str) -> Result<()> {
        let new_name = new_name.trim_start_matches('/');
        if !valid_name(new_name) {
            return Err(Error::InvalidArgument(format!(
                "Invalid container name ({new_name})"
            )));
        }
        if self.table.name_taken(new_name) {
            return Err(Error::Conflict(format!(
                "Conflict. The name \"/{new_name}\" is already in use"
            )));
        }
        let rec = self.table.update(id, |r| r.name = new_name.to_string())?;
        rec.emit(&self.events, "rename", &[]);
        Ok(())
    }

    /// Removes stopped containers that pass the prune filters (labels,
    /// created before `until`); returns their ids.
    pub fn prune(&self, filters: &Filters, until: Option<i64>) -> Vec<String> {
        let ids: Vec<String> = self
            .table
            .select(|r| {
                !r.state.is_running()
                    && !r.state.is_restarting()
                    && filters.labels_match(&r.config.labels)
                    && until.is_none_or(|u| {
                        cais_image::time::parse_rfc3339(&r.created).is_some_and(|c| c < u)
                    })
            })
            .into_iter()
            .map(|r| r.id)
            .collect();
        ids.into_iter()
            .filter(|id| self.remove(id, false, false).is_ok())
            .collect()
    }

    fn gate(&self) -> std::sync::MutexGuard<'_, HashMap<String, Gate>> {
        self.attach_gate.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An attach client of a container that is not running: the next
    /// `start` connects it to the shim before the process runs and sends
    /// the connection. None when the shim already runs: the client
    /// connects itself. The sender is dropped (the receiver fails) if the
    /// start fails or the container goes.
    pub fn attach_before_start(
        &self,
        id: &str,
        want: shim::Request,
    ) -> Option<oneshot::Receiver<UnixStream>> {
        let mut gate = self.gate();
        let (tx, rx) = oneshot::channel();
        match gate.get_mut(id) {
            Some(Gate::ShimUp) => return None,
            Some(Gate::Waiting(w)) => w.push((want, tx)),
            None => {
                gate.insert(id.to_string(), Gate::Waiting(vec![(want, tx)]));
            }
        }
        Some(rx)
    }

    /// Replaces the container's host config (after `update`).
    pub fn set_host_config(&self, id: &str, host: HostConfig) -> Result<()> {
        let rec = self.table.update(id, |r| r.host_config = host)?;
        rec.emit(&self.events, "update", &[]);
        Ok(())
    }

    /// `POST /containers/{id}/update`: new resource limits, applied to the
    /// running container's cgroup and kept for its next start.
    pub fn update_resources(&self, id: &str, new: &HostConfig) -> Result<Vec<String>> {
        let rec = self.table.get(id)?;
        let mut host = rec.host_config.clone();
        if new.memory != 0 {
            host.memory = new.memory;
        }
        if new.memory_swap != 0 {
            host.memory_swap = new.memory_swap;
        }
        if new.memory_reservation != 0 {
            host.memory_reservation = new.memory_reservation;
        }
        if new.nano_cpus != 0 {
            host.nano_cpus = new.nano_cpus;
        }
        if new.cpu_shares != 0 {
            host.cpu_shares = new.cpu_shares;
        }
        if new.cpu_quota != 0 {
            host.cpu_quota = new.cpu_quota;
        }
        if new.cpu_period != 0 {
            host.cpu_period = new.cpu_period;
        }
        if !new.cpuset_cpus.is_empty() {
            host.cpuset_cpus = new.cpuset_cpus.clone();
        }
        if new.pids_limit.is_some() {
            host.pids_limit = new.pids_limit;
        }
        if !new.restart_policy.name.is_empty() {
            host.restart_policy = new.restart_policy.clone();
        }
        if host.memory > 0 && host.memory < 6 * 1024 * 1024 {
            return Err(Error::InvalidArgument(
                "Minimum memory limit allowed is 6MB".into(),
            ));
        }
        if rec.state.is_running() {
            let mut resources = crate::spec::resources(&host);
            // Device rules were set at start; leave them alone.
            if let Some(o) = resources.as_object_mut() {
                o.remove("devices");
            }
            let resources: oci_spec::runtime::LinuxResources = serde_json::from_value(resources)
                .map_err(|source| Error::Json {
                    what: format!("the resources of container {id}"),
                    source,
                })?;
            let cg = self.cfg.cgroup(id)?;
            cg.apply(&resources).map_err(|e| {
                Error::InvalidArgument(format!(
                    "Cannot update container {id}: {}",
                    crate::error::chain(&e)
                ))
            })?;
        }
        self.set_host_config(id, host)?;
        Ok(Vec::new())
    }

    /// Commits a container's changes as a new image.
    pub fn commit(
        &self,
        id: &str,
        reference: Option<&str>,
        author: &str,
        comment: &str,
    ) -> Result<String> {
        let rec = self.table.get(id)?;
        let reference = reference
            .filter(|r| !r.is_empty())
            .map(|r| r.parse::<cais_image::Reference>())
            .transpose()
            .map_err(Error::OciInput)?;
        let opts = cais_image::snapshot::CommitOptions {
            reference,
            author: (!author.is_empty()).then(|| author.to_string()),
            comment: (!comment.is_empty()).then(|| comment.to_string()),
            created_by: Some(
                std::iter::once(rec.path.clone())
                    .chain(rec.args.clone())
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        };
        let image = self.images.commit_container(id, &opts)?;
        rec.emit(&self.events, "commit", &[]);
        Ok(image.id().to_string())
    }
}

fn validate_host_config(h: &HostConfig) -> Result<()> {
    match h.restart_policy.name.as_str() {
        "" | "no" | "always" | "unless-stopped" | "on-failure" => {}
        other => {
            return Err(Error::InvalidArgument(format!(
                "invalid restart policy '{other}'"
            )))
        }
    }
    if h.restart_policy.maximum_retry_count != 0 && h.restart_policy.name != "on-failure" {
        return Err(Error::InvalidArgument(
            "invalid restart policy: maximum retry count can only be used with 'on-failure'".into(),
        ));
    }
    if h.auto_remove && !matches!(h.restart_policy.name.as_str(), "" | "no") {
        return Err(Error::InvalidArgument(
            "can't create 'AutoRemove' container with restart policy".into(),
        ));
    }
    if h.memory < 0 || (h.memory > 0 && h.memory < 6 * 1024 * 1024) {
        return Err(Error::InvalidArgument(
            "Minimum memory limit allowed is 6MB".into(),
        ));
    }
    // The network mode is checked against the networks at create.
    Ok(())
}

fn seccomp_from_opts(opts: &[String]) -> Result<Option<serde_json::Value>> {
    for o in opts {
        if let Some(path) = o
            .strip_prefix("seccomp=")
            .or_else(|| o.strip_prefix("seccomp:"))
        {
            if path == "unconfined" {
                return Ok(None);
            }
            // The docker CLI sends the file's content, not its path.
            let text = if path.trim_start().starts_with('{') {
                path.to_string()
            } else {
                fs::read_to_string(path).map_err(|e| {
                    Error::InvalidArgument(format!("opening seccomp profile {path}: {e}"))
                })?
            };
            return serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| Error::InvalidArgument(format!("decoding seccomp profile: {e}")));
        }
    }
    Ok(None)
}

fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim().to_ascii_lowercase();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| Error::InvalidArgument(format!("invalid size {s:?}")))?;
    let mult = match unit.trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return Err(Error::InvalidArgument(format!("invalid size {s:?}"))),
    };
    Ok(n * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_sizes_parse() {
        assert_eq!(parse_size("10m").expect("10m"), 10 << 20);
        assert_eq!(parse_size("2k").expect("2k"), 2048);
        assert!(parse_size("ten").is_err());
    }

    #[test]
    fn host_configs_are_validated() {
        let mut h = HostConfig::default();
        assert!(validate_host_config(&h).is_ok());
        h.restart_policy.name = "sometimes".into();
        assert!(validate_host_config(&h).is_err());
        h.restart_policy.name = "always".into();
        h.auto_remove = true;
        assert!(validate_host_config(&h).is_err());
        let h = HostConfig {
            memory: 1024,
            ..Default::default()
        };
        assert!(validate_host_config(&h).is_err());
    }
}
