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

use cais_api::{ContainerConfig, ContainerUpdate, CreateRequest, CreateResponse, HostConfig};
use cais_image::ImageStore;
use nix::sys::signal::Signal;
use tokio::sync::oneshot;

use crate::config::Config;
use crate::containers::health::{self, has_test};
use crate::containers::settings::{self, Kernel};
use crate::containers::state::{Change, Container, State};
use crate::containers::table::Table;
use crate::containers::{monitor, mounts};
use crate::devices;
use crate::error::{Error, Kind, Result};
use crate::events::Events;
use crate::filters::Filters;
use crate::ids::{now, random_hex, random_name, valid_name};
use crate::logfile;
use crate::networks::wiring::Wiring;
use crate::shim;
use crate::spec;
use crate::spec::{Namespaces, Ns, Shm};
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
    /// What the host's cgroups can do, read once.
    kernel: std::sync::OnceLock<Kernel>,
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
            kernel: std::sync::OnceLock::new(),
        }
    }

    fn kernel(&self) -> &Kernel {
        self.kernel.get_or_init(Kernel::detect)
    }

    /// `POST /containers/create`: the request checked (see `settings`),
    /// then recorded; the answer carries dockerd's warnings.
    pub fn create(&self, mut req: CreateRequest, name: Option<&str>) -> Result<CreateResponse> {
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
        let warnings = settings::check_create(
            &mut req,
            &settings::Context {
                kernel: self.kernel(),
                resolve: &|n: &str| self.table.resolve(n),
                cdi_dirs: &self.cfg.cdi_spec_dirs,
            },
        )?;
        // `MacAddress` of the config (before API 1.44) is the first
        // network's, unless the endpoint names one.
        if !req.config.mac_address.is_empty() {
            let nc = req.networking_config.get_or_insert_with(Default::default);
            let net = match req.host_config.network_mode.as_str() {
                "" | "default" => "bridge".to_string(),
                m => m.to_string(),
            };
            let ep = nc.endpoints_config.entry(net).or_default();
            if ep.mac_address.is_empty() {
                ep.mac_address = req.config.mac_address.clone();
            }
        }
        // A missing network is the request's fault here, not a missing
        // resource: the docker CLI answers any 404 from create by pulling
        // the image and trying again, which would hide this message.
        // `NetworkDisabled`: no network but loopback, whatever the mode.
        let mut net_host = req.host_config.clone();
        if req.config.network_disabled {
            net_host.network_mode = "none".into();
        }
        let endpoints = self
            .wiring
            .endpoints_for_create(&net_host, req.networking_config.as_ref())
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
                Ok(CreateResponse { id, warnings })
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
        // Group names are the image's: refused now rather than at start.
        if rec
            .host_config
            .group_add
            .iter()
            .any(|g| g.parse::<u32>().is_err())
        {
            let (rootfs, mounted) = self.mount_rootfs(id)?;
            let groups = spec::resolve_groups(&rootfs, &rec.host_config.group_add);
            if mounted {
                self.teardown_rootfs(id);
            }
            groups.map_err(Error::InvalidArgument)?;
        }
        let lookup = |other: &str| self.table.get(&self.table.resolve(other)?);
        let (mounts, anonymous) = mounts::plan(&self.volumes, &rec, &lookup)?;
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
        let h = &rec.host_config;
        let (uid, gid, mut additional_gids) =
            spec::resolve_user(&rootfs, &rec.config.user).map_err(Error::InvalidArgument)?;
        for g in spec::resolve_groups(&rootfs, &h.group_add).map_err(Error::InvalidArgument)? {
            if !additional_gids.contains(&g) {
                additional_gids.push(g);
            }
        }
        let env = spec::process_env(
            &rec.config.env,
            &rec.config.hostname,
            rec.config.tty,
            &plan.link_env,
        );
        let mut args = vec![rec.path.clone()];
        args.extend(rec.args.clone());
        if h.init == Some(true) && h.pid_mode.is_empty() {
            // A tiny init as pid 1 forwards signals and reaps zombies.
            let mut with_init = vec!["/dev/init".to_string(), "--".to_string()];
            with_init.extend(args);
            args = with_init;
        }
        let seccomp_profile = seccomp_from_opts(&h.security_opt)?;
        let cwd = if rec.config.working_dir.is_empty() {
            "/".to_string()
        } else {
            rec.config.working_dir.clone()
        };
        make_working_dir(&rootfs, &cwd)?;
        let namespaces = Namespaces {
            net: match (plan.host_network, &plan.netns) {
                (true, _) => Ns::Host,
                (false, Some(p)) => Ns::Join(p.clone()),
                (false, None) => Ns::Own,
            },
            pid: match h.pid_mode.as_str() {
                "host" => Ns::Host,
                m => match m.strip_prefix("container:") {
                    Some(other) => Ns::Join(self.donor_namespace(other, "pid")?.0),
                    None => Ns::Own,
                },
            },
            ipc: match h.ipc_mode.as_str() {
                "host" => Ns::Host,
                m => match m.strip_prefix("container:") {
                    Some(other) => Ns::Join(self.donor_namespace(other, "ipc")?.0),
                    None => Ns::Own,
                },
            },
            uts: if h.uts_mode == "host" {
                Ns::Host
            } else {
                Ns::Own
            },
            cgroup: if h.cgroupns_mode == "host" {
                Ns::Host
            } else {
                Ns::Own
            },
        };
        let shm = self.shm_for(rec, dir)?;
        let mut device_edits = spec::DeviceEdits::default();
        if h.privileged {
            device_edits.nodes = devices::all_host_devices();
        }
        for d in &h.devices {
            let mut e = devices::host_device(d).map_err(Error::InvalidArgument)?;
            if h.privileged {
                // Every device is allowed; only the nodes are new.
                e.rules.clear();
            }
            device_edits
                .nodes
                .retain(|n| !e.nodes.iter().any(|m| m["path"] == n["path"]));
            device_edits.nodes.extend(e.nodes);
            device_edits.rules.extend(e.rules);
        }
        for r in &h.device_cgroup_rules {
            device_edits
                .rules
                .push(devices::cgroup_rule(r).map_err(Error::InvalidArgument)?);
        }
        for r in &h.device_requests {
            device_edits.extend(
                devices::request(r, &self.cfg.cdi_spec_dirs).map_err(Error::InvalidArgument)?,
            );
        }
        let cgroups_path =
            settings::cgroup_path(&h.cgroup_parent, id).map_err(Error::InvalidArgument)?;
        if h.cpu_realtime_runtime > 0 {
            self.cfg
                .grant_realtime(&cgroups_path, h.cpu_realtime_runtime)?;
        }
        let mut spec = spec::build(&spec::Input {
            id,
            config: &rec.config,
            host: h,
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
            namespaces,
            shm,
            devices: &device_edits,
            cgroups_path: cgroups_path.clone(),
        })
        .map_err(Error::InvalidArgument)?;
        if settings::security_flag(&h.security_opt, "writable-cgroups") {
            for m in spec["mounts"].as_array_mut().into_iter().flatten() {
                if m["destination"] == "/sys/fs/cgroup" {
                    m["options"] = serde_json::json!(["rw", "nosuid", "noexec", "nodev"]);
                }
            }
        }
        steps.step("spec");
        let bundle = dir.join("bundle");
        fs::create_dir_all(&bundle).map_err(Error::io("creating the bundle", &bundle))?;
        fs::write(
            bundle.join("config.json"),
            serde_json::to_vec_pretty(&spec).expect("spec serializes"),
        )
        .map_err(Error::io("writing", bundle.join("config.json")))?;
        let log = logfile::Options::parse(&h.log_config.kind, &h.log_config.config)
            .map_err(Error::InvalidArgument)?;
        let command = std::iter::once(rec.path.clone())
            .chain(rec.args.clone())
            .collect::<Vec<_>>()
            .join(" ");
        let attrs = logfile::Options::attrs(
            &h.log_config.config,
            &logfile::Subject {
                id,
                name: &rec.name,
                image_id: &rec.image_id,
                image_name: &rec.image,
                command: &command,
                hostname: &rec.config.hostname,
                labels: &rec.config.labels,
                env: &rec.config.env,
            },
        )
        .map_err(Error::InvalidArgument)?;
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
                log_max_size: log.max_size,
                log_max_files: log.max_files,
                no_log: log.driver == logfile::Driver::None,
                log_attrs: attrs,
                stdin_once: rec.config.stdin_once,
                cgroup_path: cgroups_path.clone(),
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

    /// The namespace `kind` of the container whose id `other` a mode names
    /// (`container:<id>`), which must be running; and its record.
    fn donor_namespace(&self, other: &str, kind: &str) -> Result<(PathBuf, Container)> {
        let donor = self.table.get(other).map_err(|e| match e {
            Error::NotFound { .. } => Error::InvalidArgument(e.message()),
            e => e,
        })?;
        if donor.state.is_restarting() {
            return Err(Error::Conflict(format!(
                "Container {other} is restarting, wait until the container is running"
            )));
        }
        if !donor.state.is_running() {
            return Err(Error::Conflict(format!("Container {other} is not running")));
        }
        if kind == "ipc" && !matches!(donor.host_config.ipc_mode.as_str(), "shareable" | "host") {
            return Err(Error::InvalidArgument(format!(
                "container {other}: non-shareable IPC (hint: use IpcMode:shareable for the donor container)"
            )));
        }
        let path = PathBuf::from(format!("/proc/{}/ns/{kind}", donor.state.pid()));
        Ok((path, donor))
    }

    /// The container's /dev/shm, by its IPC mode: a tmpfs of its own; for
    /// a shareable one, a tmpfs in its directory that containers joining
    /// its IPC namespace get too; the host's; or none.
    fn shm_for(&self, rec: &Container, dir: &Path) -> Result<Shm> {
        let h = &rec.host_config;
        Ok(match h.ipc_mode.as_str() {
            "none" => Shm::Absent,
            "host" => Shm::Bind("/dev/shm".into()),
            "shareable" => {
                let shm = dir.join("shm");
                if !mounts::is_mounted(&shm) {
                    fs::create_dir_all(&shm).map_err(Error::io("creating", &shm))?;
                    let size = if h.shm_size > 0 {
                        h.shm_size
                    } else {
                        settings::DEFAULT_SHM_SIZE
                    };
                    nix::mount::mount(
                        Some("shm"),
                        &shm,
                        Some("tmpfs"),
                        nix::mount::MsFlags::MS_NOSUID
                            | nix::mount::MsFlags::MS_NODEV
                            | nix::mount::MsFlags::MS_NOEXEC,
                        Some(format!("mode=1777,size={size}").as_str()),
                    )
                    .map_err(|e| Error::io("mounting a tmpfs at", &shm)(e.into()))?;
                }
                Shm::Bind(shm)
            }
            m => match m.strip_prefix("container:") {
                Some(other) => {
                    let (_, donor) = self.donor_namespace(other, "ipc")?;
                    if donor.host_config.ipc_mode == "host" {
                        Shm::Bind("/dev/shm".into())
                    } else {
                        Shm::Bind(self.table.dir(&donor.id).join("shm"))
                    }
                }
                None => Shm::Private(if h.shm_size > 0 {
                    h.shm_size
                } else {
                    settings::DEFAULT_SHM_SIZE
                }),
            },
        })
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
        // A shareable container's /dev/shm.
        let shm = self.table.dir(id).join("shm");
        if mounts::is_mounted(&shm) {
            let _ = nix::mount::umount2(&shm, nix::mount::MntFlags::MNT_DETACH);
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
        // The exit and the restart its policy schedules are one change, so
        // nobody sees an exited container that is about to run again (a
        // removal without force must find it restarting, as on dockerd).
        let rec = match self.table.try_update(id, |r| {
            r.state = r.state.apply(exited)?;
            if !r.host_config.auto_remove && monitor::should_restart(r) {
                r.state = r.state.apply(Change::RestartScheduled)?;
                r.restart_count += 1;
            }
            Ok(())
        }) {
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
        if rec.state.is_restarting() {
            let delay = monitor::restart_delay(rec.restart_count - 1);
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
        let sig = kill_signal(signal, &rec.name)?;
        if !rec.state.is_running() {
            return Err(Error::Conflict(format!(
                "Cannot kill container: {}: Container {id} is not running",
                rec.name
            )));
        }
        self.table.update(id, |r| r.manually_stopped = true)?;
        // The runtime library signals what nix names; real-time signals
        // go through the runtime command.
        match nix::sys::signal::Signal::try_from(sig) {
            Ok(signal) => self
                .cfg
                .runtime()
                .kill(id, signal, false)
                .map_err(Error::runtime("signalling", id))?,
            Err(_) => {
                self.cfg.run_runtime(&["kill", id, &sig.to_string()])?;
            }
        }
        let killed = sig == libc::SIGKILL;
        if killed && rec.state.is_paused() {
            let _ = self.cfg.runtime().resume(id);
        }
        rec.emit(&self.events, "kill", &[("signal", sig.to_string())]);
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
        if rec.state.is_restarting() {
            if !force {
                return Err(Error::Conflict(format!(
                    "cannot remove container \"/{}\": container is restarting: stop the container before removing or force remove",
                    rec.name
                )));
            }
            // The scheduled start must not happen.
            let _ = self.table.update(id, |r| r.manually_stopped = true);
        }
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
                // An exit its restart policy follows with a start ends the
                // wait too, as on dockerd.
                let exited_since = r.state.finished_at() != first.state.finished_at();
                let restarted = r.state.is_restarting() && exited_since;
                let stopped = r.state.is_stopped();
                let done = match condition {
                    "removed" => false,
                    "next-exit" => (stopped || restarted) && exited_since,
                    _ => stopped || restarted,
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
            // Gone before the condition held (`--rm` removes it as it
            // exits): it stopped, with the code it left.
            None => self
                .table
                .removed_exit_code(id)
                .ok_or_else(|| Error::not_found(Kind::Container, id)),
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
    /// created before `until`); returns their ids and the bytes their
    /// writable layers held.
    pub fn prune(&self, filters: &Filters, until: Option<i64>) -> (Vec<String>, u64) {
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
        let mut reclaimed = 0;
        let mut removed = Vec::new();
        for id in ids {
            // What its writable layer held, measured before it goes.
            let size = self
                .images
                .container_mount(&id)
                .map(|m| tree_size(&m.upperdir))
                .unwrap_or(0);
            if self.remove(&id, false, false).is_ok() {
                reclaimed += size;
                removed.push(id);
            }
        }
        (removed, reclaimed)
    }

    /// Removes the legacy link (`--link name:alias`) that gives container
    /// `parent` another container as `alias`.
    pub fn remove_link(&self, parent: &str, alias: &str) -> Result<()> {
        let alias_of = |link: &str| {
            let (name, a) = link.split_once(':').unwrap_or((link, link));
            let a = if a.is_empty() { name } else { a };
            a.rsplit('/').next().unwrap_or(a).to_string()
        };
        let rec = self.table.get(parent)?;
        if !rec.host_config.links.iter().any(|l| alias_of(l) == alias) {
            return Err(Error::not_found(
                Kind::Container,
                format!("/{}/{alias}", rec.name),
            ));
        }
        self.table.update(parent, |r| {
            r.host_config.links.retain(|l| alias_of(l) != alias);
        })?;
        Ok(())
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

    /// `POST /containers/{id}/update`: what dockerd's update changes
    /// (resources and the restart policy, see `settings::check_update`),
    /// applied to the running container's cgroup and kept for its next
    /// start; the rest of an update is refused.
    pub fn update_resources(&self, id: &str, update: &ContainerUpdate) -> Result<Vec<String>> {
        let rec = self.table.get(id)?;
        if matches!(rec.state, State::Removing(_) | State::Dead(_)) {
            return Err(Error::Conflict(format!(
                "Cannot update container {id}: container is marked for removal and cannot be \"update\""
            )));
        }
        let (host, warnings) = settings::check_update(&rec.host_config, update, self.kernel())?;
        if rec.state.is_running() {
            let cannot =
                |e: String| Error::InvalidArgument(format!("Cannot update container {id}: {e}"));
            let mut resources = crate::spec::resources(&host).map_err(cannot)?;
            // Device rules were set at start; leave them alone.
            if let Some(o) = resources.as_object_mut() {
                o.remove("devices");
            }
            let resources: oci_spec::runtime::LinuxResources = serde_json::from_value(resources)
                .map_err(|source| Error::Json {
                    what: format!("the resources of container {id}"),
                    source,
                })?;
            let path = settings::cgroup_path(&host.cgroup_parent, id).map_err(cannot)?;
            if host.cpu_realtime_runtime > 0 {
                self.cfg.grant_realtime(&path, host.cpu_realtime_runtime)?;
            }
            let cg = self.cfg.cgroup(id, &path)?;
            cg.apply(&resources)
                .map_err(|e| cannot(crate::error::chain(&e)))?;
        }
        self.set_host_config(id, host)?;
        Ok(warnings)
    }

    /// `docker commit`: the container's filesystem changes as a new image
    /// on its image. The image's config is the container's (as dockerd
    /// makes it), with `overrides`' non-empty fields over it and then the
    /// `changes` applied; the container and its config are kept as the
    /// image's `container` and `container_config`, its image as `Parent`.
    pub fn commit(&self, id: &str, req: &CommitRequest) -> Result<String> {
        let rec = self.table.get(id)?;
        let reference = req
            .reference
            .filter(|r| !r.is_empty())
            .map(|r| r.parse::<cais_image::Reference>())
            .transpose()
            .map_err(Error::OciInput)?;
        let container_config = serde_json::to_value(&rec.config).map_err(|source| Error::Json {
            what: format!("the config of container {id}"),
            source,
        })?;
        let mut config = container_config.clone();
        if let (Some(config), Some(overrides)) = (config.as_object_mut(), req.overrides.as_object())
        {
            for (key, value) in overrides {
                let empty = value.is_null()
                    || value.as_str() == Some("")
                    || value.as_array().is_some_and(Vec::is_empty)
                    || value.as_object().is_some_and(serde_json::Map::is_empty)
                    || value.as_bool() == Some(false);
                if !empty {
                    config.insert(key.clone(), value.clone());
                }
            }
        }
        cais_build::apply_changes(&mut config, req.changes).map_err(Error::Build)?;
        let opts = cais_image::snapshot::CommitOptions {
            reference,
            author: (!req.author.is_empty()).then(|| req.author.to_string()),
            comment: (!req.comment.is_empty()).then(|| req.comment.to_string()),
            created_by: Some(
                std::iter::once(rec.path.clone())
                    .chain(rec.args.clone())
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            config: Some(config),
            container: Some((id.to_string(), container_config)),
        };
        let image = self.images.commit_container(id, &opts)?;
        rec.emit(&self.events, "commit", &[]);
        Ok(image.id().to_string())
    }
}

/// What `docker commit` asks of [`Containers::commit`].
pub struct CommitRequest<'a> {
    /// `repo[:tag]` for the image; untagged when `None`.
    pub reference: Option<&'a str>,
    pub author: &'a str,
    pub comment: &'a str,
    /// Dockerfile instructions applied to the config (`-c`).
    pub changes: &'a [String],
    /// Config fields given with the request, over the container's.
    pub overrides: &'a serde_json::Value,
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

/// The working directory, made when the image has none there, owned by
/// root with mode 0755 as dockerd makes it (inside the root: a symlink
/// cannot lead it out). A file in its way is refused.
fn make_working_dir(rootfs: &Path, cwd: &str) -> Result<()> {
    let path = cais_runtime::rootfs::secure_join(rootfs, Path::new(cwd))
        .map_err(Error::io("resolving in the container", cwd))?;
    if path.is_dir() {
        return Ok(());
    }
    if path.exists() {
        return Err(Error::InvalidArgument(format!(
            "Cannot mkdir: {cwd} is not a directory"
        )));
    }
    // One level at a time, each resolved inside the root again.
    let mut at = PathBuf::from("/");
    for part in Path::new(cwd).components().skip(1) {
        at.push(part);
        let p = cais_runtime::rootfs::secure_join(rootfs, &at)
            .map_err(Error::io("resolving in the container", &at))?;
        if !p.exists() {
            // A symlink may have led elsewhere inside the root: make the
            // directories it leads to.
            fs::create_dir_all(&p).map_err(Error::io("creating the working directory", &p))?;
            std::os::unix::fs::chown(&p, Some(0), Some(0))
                .map_err(Error::io("creating the working directory", &p))?;
            fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .map_err(Error::io("creating the working directory", &p))?;
        }
    }
    Ok(())
}

/// A `kill` request's signal as dockerd reads it: empty is SIGKILL; a
/// number from 1 to 64 as is; a name with or without `SIG`, any case,
/// including the real-time ones (`RTMIN`, `RTMIN+1`... `RTMAX-1`, `RTMAX`).
/// Refusals in dockerd's words and status codes.
fn kill_signal(signal: &str, container: &str) -> Result<i32> {
    const NAMES: [(&str, i32); 31] = [
        ("HUP", 1),
        ("INT", 2),
        ("QUIT", 3),
        ("ILL", 4),
        ("TRAP", 5),
        ("ABRT", 6),
        ("IOT", 6),
        ("BUS", 7),
        ("FPE", 8),
        ("KILL", 9),
        ("USR1", 10),
        ("SEGV", 11),
        ("USR2", 12),
        ("PIPE", 13),
        ("ALRM", 14),
        ("TERM", 15),
        ("STKFLT", 16),
        ("CHLD", 17),
        ("CONT", 18),
        ("STOP", 19),
        ("TSTP", 20),
        ("TTIN", 21),
        ("TTOU", 22),
        ("URG", 23),
        ("XCPU", 24),
        ("XFSZ", 25),
        ("VTALRM", 26),
        ("PROF", 27),
        ("WINCH", 28),
        ("IO", 29),
        ("PWR", 30),
    ];
    const RTMIN: i32 = 34;
    const RTMAX: i32 = 64;
    if signal.is_empty() {
        return Ok(libc::SIGKILL);
    }
    let invalid = || Error::InvalidArgument(format!("Invalid signal: {signal}"));
    if let Ok(n) = signal.parse::<u64>() {
        return match n {
            0 => Err(invalid()),
            1..=64 => Ok(n as i32),
            _ => Err(Error::Failed {
                program: "kill",
                message: format!(
                    "Cannot kill container: {container}: The linux daemon does not support signal {n}"
                ),
            }),
        };
    }
    let upper = signal.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some((_, n)) = NAMES.iter().find(|(n, _)| *n == name) {
        return Ok(*n);
    }
    let rt = |rest: &str, base: i32, sign: i32| -> Option<i32> {
        let n = if rest.is_empty() {
            0
        } else {
            rest.parse::<i32>().ok().filter(|n| *n > 0)?
        };
        let sig = base + sign * n;
        (RTMIN..=RTMAX).contains(&sig).then_some(sig)
    };
    let parsed = if let Some(rest) = name.strip_prefix("RTMIN") {
        match rest.strip_prefix('+') {
            Some(n) => rt(n, RTMIN, 1),
            None if rest.is_empty() => rt("", RTMIN, 1),
            None => None,
        }
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        match rest.strip_prefix('-') {
            Some(n) => rt(n, RTMAX, -1),
            None if rest.is_empty() => rt("", RTMAX, -1),
            None => None,
        }
    } else {
        None
    };
    parsed.ok_or_else(invalid)
}

/// Bytes of the files in a directory tree (links not followed).
pub(crate) fn tree_size(path: &std::path::Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| tree_size(&e.path()))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_directories_are_made_inside_the_root() {
        let root = tempfile::tempdir().expect("tempdir");
        make_working_dir(root.path(), "/a/b/c").expect("made");
        let meta = fs::metadata(root.path().join("a/b/c")).expect("there");
        assert!(meta.is_dir());
        assert_eq!(std::os::unix::fs::MetadataExt::mode(&meta) & 0o777, 0o755);
        // A symlink pointing out of the root is followed inside it.
        let outside = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(outside.path(), root.path().join("out")).expect("link");
        make_working_dir(root.path(), "/out/x").expect("made");
        assert!(
            !outside.path().join("x").exists(),
            "nothing made outside the root"
        );
        fs::write(root.path().join("file"), "x").expect("file");
        assert!(make_working_dir(root.path(), "/file").is_err());
    }

    #[test]
    fn kill_signals_are_read_as_dockerd_reads_them() {
        for (given, want) in [
            ("", 9),
            ("KILL", 9),
            ("SIGKILL", 9),
            ("usr1", 10),
            ("SigTerm", 15),
            ("1", 1),
            ("64", 64),
            ("RTMIN", 34),
            ("SIGRTMIN+3", 37),
            ("RTMAX-1", 63),
            ("RTMAX", 64),
        ] {
            assert_eq!(kill_signal(given, "c").expect(given), want, "{given}");
        }
        for bad in ["FOO", "0", "-1", "RTMIN+40", "RTMAX+1", "SIGRTMIN 3"] {
            let e = kill_signal(bad, "c").expect_err(bad);
            assert_eq!(e.to_string(), format!("Invalid signal: {bad}"));
        }
        let e = kill_signal("99", "c").expect_err("99");
        assert!(matches!(e, Error::Failed { .. }));
        assert_eq!(
            e.to_string(),
            "Cannot kill container: c: The linux daemon does not support signal 99"
        );
    }
}
