//! The container manager: records, life cycle, restart policies, exec.
//!
//! Operations here are synchronous and short; the HTTP layer runs them on
//! blocking threads. A container's process is never forked by the engine: a
//! shim (`cais shim`) creates it through the runtime and supervises it, so
//! containers outlive the daemon. The engine keeps one monitor thread per
//! running container, blocked on the shim's `wait`.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use cais_api::{
    ContainerConfig, ContainerInspect, ContainerState, ContainerSummary, CreateRequest,
    CreateResponse, EndpointSettings, ExecConfig, ExecInspect, HostConfig, MountPoint,
};
use cais_image::ImageStore;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::events::Events;
use crate::filters::{self, Filters};
use crate::network::{EtcFile, NetPlan, NetState, Networks};
use crate::shim;
use crate::spec::{self, MountSpec};
use crate::volumes::{self, Volumes};

/// Where the engine keeps things.
#[derive(Debug, Clone)]
pub struct Config {
    /// Persistent state: images, containers, volumes (`/var/lib/cais`).
    pub root: PathBuf,
    /// Runtime state that a reboot clears (`/run/cais`).
    pub exec_root: PathBuf,
    /// The `cais` binary, for shims and runtime calls.
    pub binary: PathBuf,
}

/// The persisted record of one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub name: String,
    pub created: String,
    pub image: String,
    pub image_id: String,
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    pub path: String,
    pub args: Vec<String>,
    pub state: ContainerState,
    #[serde(default)]
    pub restart_count: i64,
    /// Set by `stop`/`kill` through the API: restart policies leave the
    /// container alone ("unless-stopped", and "always" until the daemon restarts).
    #[serde(default)]
    pub manually_stopped: bool,
    #[serde(default)]
    pub mounts: Vec<MountPoint>,
    /// Anonymous volumes, removed with the container by `rm -v` and `--rm`.
    #[serde(default)]
    pub anonymous_volumes: Vec<String>,
    /// Endpoints by network name: what was asked, and while running what
    /// was given (address, gateway...).
    #[serde(default)]
    pub networks: BTreeMap<String, EndpointSettings>,
    /// The network namespace, interfaces and ports held while running.
    #[serde(default)]
    pub net: Option<NetState>,
}

struct ExecRecord {
    container: String,
    config: ExecConfig,
    running: bool,
    exit_code: Option<i64>,
    pid: i64,
}

#[derive(Default)]
pub(crate) struct Table {
    pub(crate) containers: BTreeMap<String, Record>,
    /// Per container, the order of its record's snapshots (see `update`).
    writers: HashMap<String, Arc<RecordWriter>>,
}

/// Orders the writes of one container's record file. API, monitor and
/// health threads update a record under the table lock but write it after
/// releasing that lock (an fsync must not stall every other container), so
/// two snapshots can reach the disk in either order. Each snapshot takes a
/// generation under the table lock; the file is written under `written`,
/// and a snapshot older than what is already on disk is dropped, never
/// renamed over a newer one.
#[derive(Default)]
struct RecordWriter {
    generation: std::sync::atomic::AtomicU64,
    written: Mutex<u64>,
}

pub struct Engine {
    pub cfg: Config,
    pub images: Arc<ImageStore>,
    pub volumes: Volumes,
    pub events: Arc<Events>,
    table: Mutex<Table>,
    execs: Mutex<HashMap<String, ExecRecord>>,
    /// Attach requests waiting for a container's shim, by container id.
    pending_attach: Mutex<HashMap<String, usize>>,
    /// Exit codes of removed containers, for `wait?condition=removed`.
    removed: Mutex<HashMap<String, i64>>,
    pub(crate) networks: Mutex<Networks>,
    /// Published host ports, held by bound sockets while containers run.
    pub(crate) port_holds: Mutex<HashMap<String, Vec<cais_net::ports::Reservation>>>,
    /// The embedded DNS server of user-defined networks (if it started).
    pub(crate) dns: OnceLock<cais_net::dns::DnsServer>,
    /// Serializes firewall rebuilds and holds the ruleset last applied,
    /// so a change that leaves the rules as they are costs no `nft` run.
    pub(crate) fw_lock: Mutex<Option<cais_net::firewall::Ruleset>>,
    /// Serializes network teardown with the daemon-start restore.
    pub(crate) net_ops: Mutex<()>,
}

pub(crate) fn now() -> String {
    cais_runtime::state::rfc3339(std::time::SystemTime::now())
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if let Ok(mut f) = fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut buf);
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

const ADJECTIVES: [&str; 16] = [
    "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid", "mellow",
    "nimble", "proud", "quiet", "sharp", "tender", "witty",
];
const NOUNS: [&str; 16] = [
    "anchor", "barge", "cargo", "crane", "dock", "ferry", "harbor", "hull", "keel", "mast", "pier",
    "quay", "sail", "tide", "vessel", "wharf",
];

fn random_name() -> String {
    let r = random_hex(4);
    let n = u32::from_str_radix(&r, 16).unwrap_or(0) as usize;
    format!(
        "{}_{}_{}",
        ADJECTIVES[n % 16],
        NOUNS[(n / 16) % 16],
        &r[..4]
    )
}

/// Docker's rule for container names.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl Table {
    /// Drops a removed container's record and its writer.
    fn forget(&mut self, id: &str) {
        self.containers.remove(id);
        self.writers.remove(id);
    }
}

impl Engine {
    /// Opens the engine's state; finds containers again (live restore).
    pub fn open(cfg: Config) -> Result<Arc<Engine>> {
        for d in [
            cfg.root.join("engine/containers"),
            cfg.exec_root.join("runtime"),
        ] {
            fs::create_dir_all(&d)
                .map_err(|e| Error::internal(&format!("creating {}", d.display()), e))?;
        }
        let mut images = ImageStore::open(&cfg.root)?;
        let containers_dir = cfg.root.join("engine/containers");
        let in_use_dir = containers_dir.clone();
        images.set_in_use_check(Box::new(move |image: &cais_image::ImageRecord| {
            // An image is in use while a container record names it.
            let id = image.id().to_string();
            fs::read_dir(&in_use_dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| fs::read(e.path().join("container.json")).ok())
                .filter_map(|d| serde_json::from_slice::<Record>(&d).ok())
                .find(|r| r.image_id == id)
                .map(|r| r.id[..12].to_string())
        }));
        let volumes = Volumes::new(&cfg.root)?;
        let networks = Networks::load(cfg.root.join("engine/networks"))?;
        let mut table = Table::default();
        for entry in fs::read_dir(&containers_dir)
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(data) = fs::read(entry.path().join("container.json")) {
                if let Ok(rec) = serde_json::from_slice::<Record>(&data) {
                    table.containers.insert(rec.id.clone(), rec);
                }
            }
        }
        let engine = Arc::new(Engine {
            cfg,
            images: Arc::new(images),
            volumes,
            events: Arc::new(Events::default()),
            table: Mutex::new(table),
            execs: Mutex::new(HashMap::new()),
            pending_attach: Mutex::new(HashMap::new()),
            removed: Mutex::new(HashMap::new()),
            networks: Mutex::new(networks),
            port_holds: Mutex::new(HashMap::new()),
            dns: OnceLock::new(),
            fw_lock: Mutex::new(None),
            net_ops: Mutex::new(()),
        });
        engine.net_init()?;
        engine.restore();
        engine.net_restore();
        Ok(engine)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.cfg.root.join("engine/containers").join(id)
    }

    fn runtime_root(&self) -> PathBuf {
        self.cfg.exec_root.join("runtime")
    }

    /// Writes snapshot `generation` of a record unless a newer one is on
    /// disk: a temp file of its own, fsynced, renamed over `container.json`.
    fn save(&self, rec: &Record, writer: &RecordWriter, generation: u64) -> Result<()> {
        let mut written = writer.written.lock().unwrap_or_else(|p| p.into_inner());
        if *written > generation {
            return Ok(());
        }
        let dir = self.container_dir(&rec.id);
        let tmp = dir.join(format!(".container.json.{generation}.tmp"));
        let data = serde_json::to_vec_pretty(rec).expect("records serialize");
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&data)?;
            f.sync_all()?;
            fs::rename(&tmp, dir.join("container.json"))
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::internal("saving the container record", e)
        })?;
        *written = generation;
        Ok(())
    }

    /// Resolves a name, full id or unique id prefix to a full id.
    pub fn resolve(&self, name_or_id: &str) -> Result<String> {
        let t = self.lock();
        let key = name_or_id.trim_start_matches('/');
        if t.containers.contains_key(key) {
            return Ok(key.to_string());
        }
        if let Some(r) = t.containers.values().find(|r| r.name == key) {
            return Ok(r.id.clone());
        }
        let matches: Vec<&String> = t
            .containers
            .keys()
            .filter(|id| !key.is_empty() && id.starts_with(key))
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::NotFound(format!("No such container: {name_or_id}"))),
            _ => Err(Error::InvalidArgument(format!(
                "multiple containers found with provided prefix: {name_or_id}"
            ))),
        }
    }

    pub fn record(&self, id: &str) -> Result<Record> {
        self.lock()
            .containers
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("No such container: {id}")))
    }

    pub(crate) fn update(&self, id: &str, f: impl FnOnce(&mut Record)) -> Result<Record> {
        let mut t = self.lock();
        let rec = t
            .containers
            .get_mut(id)
            .ok_or_else(|| Error::NotFound(format!("No such container: {id}")))?;
        f(rec);
        let rec = rec.clone();
        let writer = t.writers.entry(id.to_string()).or_default().clone();
        let generation = writer
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        drop(t);
        self.save(&rec, &writer, generation)?;
        Ok(rec)
    }

    fn emit(&self, rec: &Record, action: &str, extra: &[(&str, String)]) {
        let mut attrs = BTreeMap::new();
        attrs.insert("name".into(), rec.name.clone());
        attrs.insert("image".into(), rec.image.clone());
        for (k, v) in &rec.config.labels {
            attrs.insert(k.clone(), v.clone());
        }
        for (k, v) in extra {
            attrs.insert((*k).into(), v.clone());
        }
        self.events.emit("container", action, &rec.id, attrs);
    }

    /// `POST /containers/create`.
    pub fn create(&self, req: CreateRequest, name: Option<&str>) -> Result<CreateResponse> {
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
                if !self.lock().containers.values().any(|r| r.name == n) {
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
            .endpoints_for_create(&req.host_config, req.networking_config.as_ref())
            .map_err(|e| match e {
                Error::NotFound(m) => Error::InvalidArgument(m),
                other => other,
            })?;
        let image = self
            .images
            .resolve(&req.config.image)
            .map_err(|e| match e {
                cais_image::Error::NotFound { .. } => {
                    Error::NotFound(format!("No such image: {}", req.config.image))
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
        {
            let mut t = self.lock();
            if let Some(other) = t.containers.values().find(|r| r.name == name) {
                return Err(Error::Conflict(format!(
                    "Conflict. The container name \"/{name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                    other.id
                )));
            }
            // Reserve the name before the slow part.
            let rec = Record {
                id: id.clone(),
                name: name.clone(),
                created: now(),
                image: req.config.image.clone(),
                image_id: image.id().to_string(),
                path: args[0].clone(),
                args: args[1..].to_vec(),
                config,
                host_config: req.host_config.clone(),
                state: ContainerState {
                    status: "created".into(),
                    started_at: "0001-01-01T00:00:00Z".into(),
                    finished_at: "0001-01-01T00:00:00Z".into(),
                    ..Default::default()
                },
                restart_count: 0,
                manually_stopped: false,
                mounts: Vec::new(),
                anonymous_volumes: Vec::new(),
                networks: endpoints,
                net: None,
            };
            t.containers.insert(id.clone(), rec);
        }
        let result = self.create_files(&id, &image.manifest.to_string());
        match result {
            Ok(rec) => {
                self.emit(&rec, "create", &[]);
                Ok(CreateResponse {
                    id,
                    warnings: Vec::new(),
                })
            }
            Err(e) => {
                self.lock().forget(&id);
                let _ = self.images.remove_container(&id);
                let _ = fs::remove_dir_all(self.container_dir(&id));
                Err(e)
            }
        }
    }

    /// The slow, failure-prone part of create: directories, snapshot, volumes.
    fn create_files(&self, id: &str, manifest: &str) -> Result<Record> {
        let dir = self.container_dir(id);
        fs::create_dir_all(&dir)
            .map_err(|e| Error::internal("creating the container directory", e))?;
        self.images.prepare_container(id, manifest)?;
        let mut rec = self.record(id)?;
        let (mounts, anonymous) = self.plan_mounts(&rec)?;
        rec.mounts = mounts;
        rec.anonymous_volumes = anonymous;
        let rec = self.update(id, |r| {
            r.mounts = rec.mounts.clone();
            r.anonymous_volumes = rec.anonymous_volumes.clone();
        })?;
        Ok(rec)
    }

    /// Binds, named and anonymous volumes and tmpfs mounts, as inspect shows them.
    fn plan_mounts(&self, rec: &Record) -> Result<(Vec<MountPoint>, Vec<String>)> {
        let mut out: Vec<MountPoint> = Vec::new();
        let mut anonymous = Vec::new();
        let add_volume =
            |name: &str, dest: &str, rw: bool, out: &mut Vec<MountPoint>| -> Result<()> {
                let v = self.volumes.create(name, BTreeMap::new())?;
                out.push(MountPoint {
                    kind: "volume".into(),
                    name: name.into(),
                    source: v.mountpoint,
                    destination: dest.into(),
                    driver: "local".into(),
                    mode: if rw { "z".into() } else { "ro".into() },
                    rw,
                    propagation: String::new(),
                });
                Ok(())
            };
        for bind in &rec.host_config.binds {
            let parts: Vec<&str> = bind.split(':').collect();
            let (src, dest, mode) = match parts.as_slice() {
                [s, d] => (*s, *d, ""),
                [s, d, m] => (*s, *d, *m),
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "invalid volume specification: '{bind}'"
                    )))
                }
            };
            if !dest.starts_with('/') {
                return Err(Error::InvalidArgument(format!(
                    "invalid volume specification: '{bind}': destination must be an absolute path"
                )));
            }
            let rw = !mode.split(',').any(|m| m == "ro");
            if src.starts_with('/') {
                if !Path::new(src).exists() {
                    fs::create_dir_all(src)
                        .map_err(|e| Error::internal("creating the bind source", e))?;
                }
                out.push(MountPoint {
                    kind: "bind".into(),
                    source: src.into(),
                    destination: dest.into(),
                    mode: mode.into(),
                    rw,
                    propagation: "rprivate".into(),
                    ..Default::default()
                });
            } else {
                add_volume(src, dest, rw, &mut out)?;
            }
        }
        for m in &rec.host_config.mounts {
            match m.kind.as_str() {
                "bind" => {
                    if !Path::new(&m.source).exists() {
                        return Err(Error::InvalidArgument(format!(
                            "invalid mount config for type \"bind\": bind source path does not exist: {}",
                            m.source
                        )));
                    }
                    out.push(MountPoint {
                        kind: "bind".into(),
                        source: m.source.clone(),
                        destination: m.target.clone(),
                        rw: !m.read_only,
                        propagation: "rprivate".into(),
                        ..Default::default()
                    });
                }
                "volume" => {
                    let name = if m.source.is_empty() {
                        let n = random_hex(32);
                        anonymous.push(n.clone());
                        n
                    } else {
                        m.source.clone()
                    };
                    add_volume(&name, &m.target, !m.read_only, &mut out)?;
                }
                "tmpfs" => out.push(MountPoint {
                    kind: "tmpfs".into(),
                    destination: m.target.clone(),
                    rw: !m.read_only,
                    ..Default::default()
                }),
                other => {
                    return Err(Error::InvalidArgument(format!(
                        "mount type {other:?} is not supported"
                    )))
                }
            }
        }
        // Image VOLUMEs not covered by a mount get anonymous volumes.
        for dest in rec.config.volumes.iter().flat_map(|v| v.keys()) {
            if out.iter().any(|m| &m.destination == dest) {
                continue;
            }
            let n = random_hex(32);
            anonymous.push(n.clone());
            add_volume(&n, dest, true, &mut out)?;
        }
        Ok((out, anonymous))
    }

    /// Mounts the rootfs, writes the bundle and /etc files, starts the shim
    /// (which creates the container), lets waiting attach clients connect,
    /// then runs the container's process.
    pub fn start(self: &Arc<Self>, id: &str) -> Result<()> {
        let rec = self.record(id)?;
        if rec.state.running {
            return Err(Error::NotModified("container already started".into()));
        }
        if rec.state.status == "removing" {
            return Err(Error::Conflict("container is marked for removal".into()));
        }
        let dir = self.container_dir(id);
        let result = self.start_inner(&rec, &dir);
        if let Err(e) = &result {
            let _ = self.update(id, |r| {
                r.state.error = e.to_string();
                r.state.exit_code = 127;
            });
            self.net_teardown(id);
            self.teardown_rootfs(id);
            // As docker: a `--rm` container that cannot start is removed,
            // which is what `docker run --rm` waits for before exiting.
            if rec.host_config.auto_remove {
                let _ = self.remove(id, true, true);
            }
        }
        result
    }

    fn start_inner(self: &Arc<Self>, rec: &Record, dir: &Path) -> Result<()> {
        let id = &rec.id;
        // Leftovers of a previous run.
        for f in ["exit.json", "attach.sock", "init.pid", "shim.pid"] {
            let _ = fs::remove_file(dir.join(f));
        }
        let _ = Command::new(&self.cfg.binary)
            .args(["runtime", "--root"])
            .arg(self.runtime_root())
            .args(["delete", "--force", id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let overlay = self.images.container_mount(id)?;
        if !is_mounted(&overlay.target) {
            cais_image::snapshot::mount(&overlay)?;
        }
        let rootfs = overlay.target.clone();
        let plan = self.net_setup(rec)?;
        let mounts = self.runtime_mounts(rec, dir, &rootfs, &plan)?;
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
        let bundle = dir.join("bundle");
        fs::create_dir_all(&bundle).map_err(|e| Error::internal("creating the bundle", e))?;
        fs::write(
            bundle.join("config.json"),
            serde_json::to_vec_pretty(&spec).expect("spec serializes"),
        )
        .map_err(|e| Error::internal("writing config.json", e))?;
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
        let out = Command::new(&self.cfg.binary)
            .arg("shim")
            .args(["--id", id, "--bundle"])
            .arg(&bundle)
            .arg("--state-dir")
            .arg(dir)
            .arg("--runtime-root")
            .arg(self.runtime_root())
            .args(["--cgroup-path", &format!("/cais/{id}")])
            .args([
                "--log-max-size",
                &max_size.to_string(),
                "--log-max-files",
                &max_files.to_string(),
            ])
            .args(rec.config.tty.then_some("--terminal"))
            .args(rec.config.open_stdin.then_some("--stdin"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::internal("running the shim", e))?;
        if !out.status.success() {
            let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
            return Err(Error::Internal(format!(
                "failed to create task for container: {msg}"
            )));
        }
        let started: shim::Started = serde_json::from_slice(&out.stdout)
            .map_err(|e| Error::internal("reading the shim's report", e))?;
        // Let attach clients that arrived before start connect first, so
        // they see all output.
        let deadline = Instant::now() + Duration::from_secs(5);
        while self
            .pending_attach
            .lock()
            .map(|p| p.get(id).copied().unwrap_or(0))
            .unwrap_or(0)
            > 0
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        // DNS and firewall before the process runs, so its first packets
        // find them.
        self.net_started(id)?;
        shim::start(dir)
            .map_err(|e| Error::internal("talking to the shim", e))?
            .map_err(|e| Error::Internal(format!("failed to start container: {e}")))?;
        let rec = self.update(id, |r| {
            r.state = ContainerState {
                status: "running".into(),
                running: true,
                pid: started.pid as i64,
                started_at: now(),
                finished_at: "0001-01-01T00:00:00Z".into(),
                health: r
                    .config
                    .healthcheck
                    .as_ref()
                    .filter(|h| has_test(h))
                    .map(|_| cais_api::Health {
                        status: "starting".into(),
                        ..Default::default()
                    }),
                ..Default::default()
            };
            r.manually_stopped = false;
        })?;
        self.emit(&rec, "start", &[]);
        self.monitor(id.clone());
        if rec.config.healthcheck.as_ref().is_some_and(has_test) {
            crate::health::spawn(self.clone(), id.clone());
        }
        Ok(())
    }

    /// The container's mounts for the runtime, volumes populated.
    fn runtime_mounts(
        &self,
        rec: &Record,
        dir: &Path,
        rootfs: &Path,
        plan: &NetPlan,
    ) -> Result<Vec<MountSpec>> {
        let mut out = Vec::new();
        // /etc/hostname, /etc/hosts, /etc/resolv.conf as docker provides them.
        for (name, file) in &plan.etc {
            let path = match file {
                EtcFile::Text(content) => {
                    let path = dir.join(name);
                    fs::write(&path, content)
                        .map_err(|e| Error::internal("writing /etc files", e))?;
                    path
                }
                EtcFile::Shared(path) => path.clone(),
            };
            out.push(MountSpec {
                destination: format!("/etc/{name}"),
                kind: "bind".into(),
                source: path.to_string_lossy().into_owned(),
                options: vec!["rbind".into(), "rprivate".into()],
            });
        }
        for m in &rec.mounts {
            let mut options = vec!["rbind".to_string()];
            if !m.rw {
                options.push("ro".into());
            }
            match m.kind.as_str() {
                "tmpfs" => out.push(MountSpec {
                    destination: m.destination.clone(),
                    kind: "tmpfs".into(),
                    source: "tmpfs".into(),
                    options: vec!["nosuid".into(), "nodev".into(), "mode=1777".into()],
                }),
                "volume" => {
                    let data = PathBuf::from(&m.source);
                    let inside =
                        cais_runtime::rootfs::secure_join(rootfs, Path::new(&m.destination))
                            .map_err(|e| Error::internal("resolving a volume destination", e))?;
                    volumes::populate(&inside, &data)
                        .map_err(|e| Error::internal("populating a volume", e))?;
                    out.push(MountSpec {
                        destination: m.destination.clone(),
                        kind: "bind".into(),
                        source: m.source.clone(),
                        options,
                    });
                }
                _ => out.push(MountSpec {
                    destination: m.destination.clone(),
                    kind: "bind".into(),
                    source: m.source.clone(),
                    options,
                }),
            }
        }
        for (dest, opts) in &rec.host_config.tmpfs {
            let mut options = vec!["nosuid".to_string(), "nodev".to_string()];
            options.extend(
                opts.split(',')
                    .filter(|o| !o.is_empty())
                    .map(str::to_string),
            );
            out.push(MountSpec {
                destination: dest.clone(),
                kind: "tmpfs".into(),
                source: "tmpfs".into(),
                options,
            });
        }
        if rec.host_config.init == Some(true) {
            // The init must run in any image, with no libc of its own: a
            // statically linked one, Debian's tini-static (what docker ships
            // as docker-init).
            let init = INIT_BINARIES
                .iter()
                .find(|p| Path::new(p).exists())
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "--init needs a static init binary at one of {INIT_BINARIES:?} (apt-get install tini)"
                    ))
                })?;
            out.push(MountSpec {
                destination: "/dev/init".into(),
                kind: "bind".into(),
                source: (*init).into(),
                options: vec!["bind".into(), "ro".into()],
            });
        }
        Ok(out)
    }

    /// The container's root filesystem, mounted if it is not (a stopped
    /// container, for export or cp); true when this call mounted it, so the
    /// caller unmounts it afterwards.
    pub fn mount_rootfs(&self, id: &str) -> Result<(PathBuf, bool)> {
        self.record(id)?;
        let m = self.images.container_mount(id)?;
        if is_mounted(&m.target) {
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

    /// A thread that waits for the container's exit through its shim.
    fn monitor(self: &Arc<Self>, id: String) {
        let engine = self.clone();
        std::thread::spawn(move || {
            let dir = engine.container_dir(&id);
            let exit = shim::wait(&dir).unwrap_or(shim::Exit {
                exit_code: 255,
                oom_killed: false,
                finished_at: now(),
            });
            engine.on_exit(&id, exit);
        });
    }

    fn on_exit(self: &Arc<Self>, id: &str, exit: shim::Exit) {
        self.teardown_rootfs(id);
        self.net_teardown(id);
        let Ok(rec) = self.update(id, |r| {
            r.state.running = false;
            r.state.paused = false;
            r.state.restarting = false;
            r.state.status = "exited".into();
            r.state.pid = 0;
            r.state.exit_code = exit.exit_code as i64;
            r.state.oom_killed = exit.oom_killed;
            r.state.finished_at = exit.finished_at.clone();
            if let Some(h) = r.state.health.as_mut() {
                h.status = "unhealthy".into();
            }
        }) else {
            return;
        };
        if exit.oom_killed {
            self.emit(&rec, "oom", &[]);
        }
        self.emit(&rec, "die", &[("exitCode", exit.exit_code.to_string())]);
        if rec.host_config.auto_remove {
            let _ = self.remove(id, true, true);
            return;
        }
        if self.should_restart(&rec) {
            let delay = Duration::from_millis(100u64 << rec.restart_count.clamp(0, 9));
            let _ = self.update(id, |r| {
                r.state.restarting = true;
                r.state.status = "restarting".into();
                r.restart_count += 1;
            });
            let engine = self.clone();
            let id = id.to_string();
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                // Stopped or removed meanwhile: leave it.
                match engine.record(&id) {
                    Ok(r) if r.state.restarting && !r.manually_stopped => {}
                    _ => return,
                }
                if engine.start(&id).is_err() {
                    let _ = engine.update(&id, |r| {
                        r.state.restarting = false;
                        r.state.status = "exited".into();
                    });
                }
            });
        }
    }

    fn should_restart(&self, rec: &Record) -> bool {
        let policy = &rec.host_config.restart_policy;
        match policy.name.as_str() {
            "always" | "unless-stopped" => !rec.manually_stopped,
            "on-failure" => {
                rec.state.exit_code != 0
                    && !rec.manually_stopped
                    && (policy.maximum_retry_count == 0
                        || rec.restart_count < policy.maximum_retry_count)
            }
            _ => false,
        }
    }

    /// After a daemon restart: reattach to live shims; containers whose shim
    /// died (the host restarted) are marked exited and restarted by policy.
    fn restore(self: &Arc<Self>) {
        let running: Vec<Record> = self
            .lock()
            .containers
            .values()
            .filter(|r| r.state.running || r.state.restarting)
            .cloned()
            .collect();
        for rec in running {
            let dir = self.container_dir(&rec.id);
            if shim::alive(&dir) {
                self.monitor(rec.id.clone());
                if rec.config.healthcheck.as_ref().is_some_and(has_test) {
                    crate::health::spawn(self.clone(), rec.id.clone());
                }
                continue;
            }
            let exit = shim::read_exit(&dir).unwrap_or(shim::Exit {
                exit_code: 255,
                oom_killed: false,
                finished_at: now(),
            });
            let _ = self.update(&rec.id, |r| {
                r.manually_stopped = false;
                r.state.restarting = false;
            });
            let policy = rec.host_config.restart_policy.name.as_str();
            let engine = self.clone();
            let id = rec.id.clone();
            // A host-style restart: "always" containers come back even if
            // the exit was not a failure.
            let restart =
                matches!(policy, "always") || (policy == "unless-stopped" && !rec.manually_stopped);
            engine.on_exit(&id, exit);
            if restart {
                if let Ok(r) = engine.record(&id) {
                    if !r.state.running && !r.state.restarting {
                        let _ = engine.start(&id);
                    }
                }
            }
        }
    }

    fn runtime(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.cfg.binary)
            .args(["runtime", "--root"])
            .arg(self.runtime_root())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::internal("running the runtime", e))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(Error::Internal(
                String::from_utf8_lossy(&out.stderr)
                    .trim()
                    .trim_start_matches("cais: ")
                    .to_string(),
            ))
        }
    }

    /// Sends a signal to the container's process.
    pub fn kill(&self, id: &str, signal: &str) -> Result<()> {
        let rec = self.record(id)?;
        if !rec.state.running {
            return Err(Error::Conflict(format!("Container {id} is not running")));
        }
        let sig = cais_runtime::signal::parse(if signal.is_empty() { "KILL" } else { signal })
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        self.update(id, |r| r.manually_stopped = true)?;
        self.runtime(&["kill", id, &(sig as i32).to_string()])?;
        let killed = sig == nix::sys::signal::Signal::SIGKILL;
        if killed && rec.state.paused {
            let _ = self.runtime(&["resume", id]);
        }
        self.emit(&rec, "kill", &[("signal", (sig as i32).to_string())]);
        if killed {
            // As dockerd: a SIGKILL returns once the container is gone, so
            // `kill` then `rm` finds it stopped. Other signals may be
            // handled or ignored, and do not wait.
            self.wait_not_running(id, Duration::from_secs(30));
            if self.record(id).is_ok_and(|r| r.state.running) {
                return Err(Error::Internal(format!(
                    "container {id} did not exit within 30 seconds of SIGKILL"
                )));
            }
        }
        Ok(())
    }

    /// Stops: the stop signal, then SIGKILL after the grace period.
    pub fn stop(&self, id: &str, timeout: Option<i64>, signal: Option<&str>) -> Result<()> {
        let rec = self.record(id)?;
        if !rec.state.running {
            if rec.state.restarting {
                self.update(id, |r| {
                    r.manually_stopped = true;
                    r.state.restarting = false;
                    r.state.status = "exited".into();
                })?;
                return Ok(());
            }
            return Err(Error::NotModified("container already stopped".into()));
        }
        self.update(id, |r| r.manually_stopped = true)?;
        let signal = signal
            .map(str::to_string)
            .or(rec.config.stop_signal.clone())
            .unwrap_or_else(|| "SIGTERM".into());
        let grace = timeout.or(rec.config.stop_timeout).unwrap_or(10).max(0);
        let sig = cais_runtime::signal::parse(&signal)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        if rec.state.paused {
            let _ = self.runtime(&["resume", id]);
        }
        let _ = self.runtime(&["kill", id, &(sig as i32).to_string()]);
        let dir = self.container_dir(id);
        let deadline = Instant::now() + Duration::from_secs(grace as u64);
        while Instant::now() < deadline && shim::read_exit(&dir).is_none() {
            std::thread::sleep(Duration::from_millis(10));
        }
        if shim::read_exit(&dir).is_none() {
            let _ = self.runtime(&["kill", "--all", id, "KILL"]);
        }
        self.wait_not_running(id, Duration::from_secs(30));
        self.emit(&rec, "stop", &[]);
        Ok(())
    }

    fn wait_not_running(&self, id: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            match self.record(id) {
                Ok(r) if r.state.running => std::thread::sleep(Duration::from_millis(5)),
                _ => return,
            }
        }
    }

    pub fn restart(self: &Arc<Self>, id: &str, timeout: Option<i64>) -> Result<()> {
        match self.stop(id, timeout, None) {
            Ok(()) | Err(Error::NotModified(_)) => {}
            Err(e) => return Err(e),
        }
        self.start(id)?;
        let rec = self.record(id)?;
        self.emit(&rec, "restart", &[]);
        Ok(())
    }

    pub fn pause(&self, id: &str) -> Result<()> {
        let rec = self.record(id)?;
        if !rec.state.running {
            return Err(Error::Conflict(format!("Container {id} is not running")));
        }
        if rec.state.paused {
            return Err(Error::Conflict(format!("Container {id} is already paused")));
        }
        self.runtime(&["pause", id])?;
        let rec = self.update(id, |r| {
            r.state.paused = true;
            r.state.status = "paused".into();
        })?;
        self.emit(&rec, "pause", &[]);
        Ok(())
    }

    pub fn unpause(&self, id: &str) -> Result<()> {
        let rec = self.record(id)?;
        if !rec.state.paused {
            return Err(Error::Conflict(format!("Container {id} is not paused")));
        }
        self.runtime(&["resume", id])?;
        let rec = self.update(id, |r| {
            r.state.paused = false;
            r.state.status = "running".into();
        })?;
        self.emit(&rec, "unpause", &[]);
        Ok(())
    }

    /// Removes a container (running ones only with `force`).
    pub fn remove(&self, id: &str, force: bool, volumes: bool) -> Result<()> {
        let rec = self.record(id)?;
        if rec.state.running {
            if !force {
                let what = if rec.state.paused {
                    "paused"
                } else {
                    "running"
                };
                return Err(Error::Conflict(format!(
                    "cannot remove container \"/{}\": container is {what}: stop the container before removing or force remove",
                    rec.name
                )));
            }
            let _ = self.update(id, |r| r.manually_stopped = true);
            if rec.state.paused {
                let _ = self.runtime(&["resume", id]);
            }
            let _ = self.runtime(&["kill", "--all", id, "KILL"]);
            self.wait_not_running(id, Duration::from_secs(10));
        }
        self.net_teardown(id);
        let _ = self.update(id, |r| {
            r.state.status = "removing".into();
            r.state.restarting = false;
        });
        let _ = self.runtime(&["delete", "--force", id]);
        self.images.remove_container(id).or_else(|e| match e {
            cais_image::Error::NotFound { .. } => Ok(()),
            e => Err(Error::from(e)),
        })?;
        let _ = fs::remove_dir_all(self.container_dir(id));
        self.lock().forget(id);
        {
            let mut removed = self.removed.lock().unwrap_or_else(|p| p.into_inner());
            if removed.len() > 1024 {
                removed.clear();
            }
            removed.insert(id.to_string(), rec.state.exit_code);
        }
        if volumes {
            for v in &rec.anonymous_volumes {
                let _ = self.volumes.remove(v, &[]);
            }
        }
        self.emit(&rec, "destroy", &[]);
        Ok(())
    }

    /// Blocks until the container is no longer running ("not-running"),
    /// exits after this call ("next-exit", what `docker run` asks before
    /// start) or is gone ("removed", for `--rm`); returns the exit code.
    pub fn wait(&self, id: &str, condition: &str) -> Result<i64> {
        let first = self.record(id)?;
        loop {
            match self.record(id) {
                Err(_) if condition == "removed" => {
                    let removed = self.removed.lock().unwrap_or_else(|p| p.into_inner());
                    return Ok(removed.get(id).copied().unwrap_or(first.state.exit_code));
                }
                Err(e) => return Err(e),
                Ok(r) => {
                    let stopped =
                        !r.state.running && !r.state.restarting && r.state.status != "removing";
                    let done = match condition {
                        "removed" => false,
                        "next-exit" => stopped && r.state.finished_at != first.state.finished_at,
                        _ => stopped,
                    };
                    if done {
                        return Ok(r.state.exit_code);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn rename(&self, id: &str, new_name: &str) -> Result<()> {
        let new_name = new_name.trim_start_matches('/');
        if !valid_name(new_name) {
            return Err(Error::InvalidArgument(format!(
                "Invalid container name ({new_name})"
            )));
        }
        if self.lock().containers.values().any(|r| r.name == new_name) {
            return Err(Error::Conflict(format!(
                "Conflict. The name \"/{new_name}\" is already in use"
            )));
        }
        let rec = self.update(id, |r| r.name = new_name.to_string())?;
        self.emit(&rec, "rename", &[]);
        Ok(())
    }

    pub fn inspect(&self, id: &str) -> Result<ContainerInspect> {
        let r = self.record(id)?;
        let dir = self.container_dir(id);
        Ok(ContainerInspect {
            id: r.id.clone(),
            created: r.created.clone(),
            path: r.path.clone(),
            args: r.args.clone(),
            state: r.state.clone(),
            image: r.image_id.clone(),
            resolv_conf_path: dir.join("resolv.conf").to_string_lossy().into_owned(),
            hostname_path: dir.join("hostname").to_string_lossy().into_owned(),
            hosts_path: dir.join("hosts").to_string_lossy().into_owned(),
            log_path: dir
                .join("container-json.log")
                .to_string_lossy()
                .into_owned(),
            name: format!("/{}", r.name),
            restart_count: r.restart_count,
            driver: "overlay2".into(),
            platform: "linux".into(),
            host_config: r.host_config.clone(),
            mounts: r.mounts.clone(),
            config: r.config.clone(),
            network_settings: self.network_settings(&r),
            ..Default::default()
        })
    }

    pub fn list(&self, all: bool, filters: &Filters) -> Result<Vec<ContainerSummary>> {
        let t = self.lock();
        // `before`/`since` name a container; the others are ordered by it.
        let created_of = |key: &str| -> Result<Option<String>> {
            let Some(v) = filters.values(key).first() else {
                return Ok(None);
            };
            let found = t
                .containers
                .values()
                .find(|r| r.id.starts_with(v.as_str()) || r.name == v.trim_start_matches('/'));
            match found {
                Some(r) => Ok(Some(r.created.clone())),
                None => Err(Error::NotFound(format!("No such container: {v}"))),
            }
        };
        let before = created_of("before")?;
        let since = created_of("since")?;
        let mut out = Vec::new();
        for r in t.containers.values() {
            if (all || r.state.running || filters.contains("status"))
                && matches_filters(r, filters, before.as_deref(), since.as_deref())?
            {
                out.push(r.clone());
            }
        }
        drop(t);
        out.sort_by(|a, b| b.created.cmp(&a.created));
        Ok(out
            .into_iter()
            .map(|r| ContainerSummary {
                id: r.id.clone(),
                names: vec![format!("/{}", r.name)],
                image: r.image.clone(),
                image_id: r.image_id.clone(),
                command: std::iter::once(r.path.as_str())
                    .chain(r.args.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(" "),
                created: cais_image::time::parse_rfc3339(&r.created).unwrap_or(0),
                ports: self.ps_ports(&r),
                labels: r.config.labels.clone(),
                state: state_word(&r.state).into(),
                status: status_text(&r.state),
                host_config: serde_json::json!({"NetworkMode": if r.host_config.network_mode.is_empty() { "default" } else { &r.host_config.network_mode }}),
                network_settings: serde_json::json!({"Networks": r.networks}),
                mounts: r.mounts.clone(),
            })
            .collect())
    }

    /// Containers whose records use a volume.
    pub fn volume_users(&self, name: &str) -> Vec<String> {
        self.lock()
            .containers
            .values()
            .filter(|r| {
                r.mounts
                    .iter()
                    .any(|m| m.kind == "volume" && m.name == name)
            })
            .map(|r| r.id.clone())
            .collect()
    }

    /// Removes stopped containers that pass the prune filters (labels,
    /// created before `until`); returns their ids.
    pub fn prune(&self, filters: &Filters, until: Option<i64>) -> Vec<String> {
        let ids: Vec<String> = self
            .lock()
            .containers
            .values()
            .filter(|r| !r.state.running && !r.state.restarting)
            .filter(|r| filters.labels_match(&r.config.labels))
            .filter(|r| {
                until.is_none_or(|u| {
                    cais_image::time::parse_rfc3339(&r.created).is_some_and(|c| c < u)
                })
            })
            .map(|r| r.id.clone())
            .collect();
        ids.into_iter()
            .filter(|id| self.remove(id, false, false).is_ok())
            .collect()
    }

    /// `top`: the container's processes as ps(1) shows them.
    pub fn top(&self, id: &str, ps_args: &str) -> Result<(Vec<String>, Vec<Vec<String>>)> {
        let rec = self.record(id)?;
        if !rec.state.running {
            return Err(Error::Conflict(format!("Container {id} is not running")));
        }
        let pids: Vec<i32> = serde_json::from_str(&self.runtime(&["ps", "--format", "json", id])?)
            .map_err(|e| Error::internal("reading the process list", e))?;
        let args: Vec<&str> = if ps_args.is_empty() {
            vec!["-ef"]
        } else {
            ps_args.split_whitespace().collect()
        };
        let out = Command::new("ps")
            .args(&args)
            .output()
            .map_err(|e| Error::internal("running ps", e))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let header: Vec<String> = lines
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let pid_col = header
            .iter()
            .position(|h| h == "PID")
            .ok_or_else(|| Error::InvalidArgument("ps output has no PID column".into()))?;
        let mut rows = Vec::new();
        for line in lines {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields
                .get(pid_col)
                .and_then(|p| p.parse::<i32>().ok())
                .is_some_and(|p| pids.contains(&p))
            {
                // The last column (the command) may hold spaces.
                let mut row: Vec<String> = fields[..header.len() - 1]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                row.push(fields[header.len() - 1..].join(" "));
                rows.push(row);
            }
        }
        Ok((header, rows))
    }

    /// Docker-shaped stats from the container's cgroup.
    pub fn stats(&self, id: &str) -> Result<serde_json::Value> {
        let rec = self.record(id)?;
        let read = now();
        if !rec.state.running {
            return Ok(
                serde_json::json!({"read": read, "name": format!("/{}", rec.name), "id": rec.id,
                "cpu_stats": {"cpu_usage": {"total_usage": 0}, "system_cpu_usage": 0},
                "precpu_stats": {"cpu_usage": {"total_usage": 0}}, "memory_stats": {}, "pids_stats": {}}),
            );
        }
        let cg = cais_cgroups::Cgroup::new(
            cais_cgroups::Layout::detect().map_err(|e| Error::internal("cgroups", e))?,
            &format!("/cais/{id}"),
        )
        .map_err(|e| Error::internal("cgroups", e))?;
        let s = serde_json::to_value(
            cg.stats()
                .map_err(|e| Error::internal("reading stats", e))?,
        )
        .unwrap_or_default();
        let system = system_cpu_usage();
        let online = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let blkio: Vec<serde_json::Value> = s["blkio"]["ioServiceBytesRecursive"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(serde_json::json!({
            "read": read,
            "preread": "0001-01-01T00:00:00Z",
            "name": format!("/{}", rec.name),
            "id": rec.id,
            "num_procs": 0,
            "pids_stats": {"current": s["pids"]["current"], "limit": s["pids"]["limit"]},
            "cpu_stats": {
                "cpu_usage": {
                    "total_usage": s["cpu"]["usage"]["total"],
                    "usage_in_kernelmode": s["cpu"]["usage"]["kernel"],
                    "usage_in_usermode": s["cpu"]["usage"]["user"],
                    "percpu_usage": s["cpu"]["usage"]["percpu"],
                },
                "system_cpu_usage": system,
                "online_cpus": online,
                "throttling_data": {
                    "periods": s["cpu"]["throttling"]["periods"],
                    "throttled_periods": s["cpu"]["throttling"]["throttledPeriods"],
                    "throttled_time": s["cpu"]["throttling"]["throttledTime"],
                }
            },
            "precpu_stats": {"cpu_usage": {"total_usage": 0}, "system_cpu_usage": 0, "online_cpus": online},
            "memory_stats": {
                "usage": s["memory"]["usage"]["usage"],
                "max_usage": s["memory"]["usage"]["max"],
                "limit": s["memory"]["usage"]["limit"],
                "failcnt": s["memory"]["usage"]["failcnt"],
                "stats": s["memory"]["raw"],
            },
            "blkio_stats": {"io_service_bytes_recursive": blkio},
            "networks": self.net_stats(&rec)
        }))
    }

    // ---- exec ----

    pub fn exec_create(&self, id: &str, config: ExecConfig) -> Result<String> {
        let rec = self.record(id)?;
        if !rec.state.running {
            return Err(Error::Conflict(format!("Container {id} is not running")));
        }
        if rec.state.paused {
            return Err(Error::Conflict(format!(
                "Container {id} is paused, unpause the container before exec"
            )));
        }
        if config.cmd.is_empty() {
            return Err(Error::InvalidArgument("No exec command specified".into()));
        }
        let exec_id = random_hex(32);
        self.execs.lock().unwrap_or_else(|p| p.into_inner()).insert(
            exec_id.clone(),
            ExecRecord {
                container: id.to_string(),
                config,
                running: false,
                exit_code: None,
                pid: 0,
            },
        );
        self.emit(&rec, "exec_create", &[]);
        Ok(exec_id)
    }

    pub fn exec_inspect(&self, exec_id: &str) -> Result<ExecInspect> {
        let execs = self.execs.lock().unwrap_or_else(|p| p.into_inner());
        let e = execs
            .get(exec_id)
            .ok_or_else(|| Error::NotFound(format!("No such exec instance: {exec_id}")))?;
        Ok(ExecInspect {
            id: exec_id.into(),
            running: e.running,
            exit_code: e.exit_code,
            open_stdin: e.config.attach_stdin,
            open_stdout: e.config.attach_stdout,
            open_stderr: e.config.attach_stderr,
            container_id: e.container.clone(),
            pid: e.pid,
            process_config: serde_json::json!({
                "tty": e.config.tty, "entrypoint": e.config.cmd.first(), "arguments": e.config.cmd.get(1..),
                "privileged": e.config.privileged, "user": e.config.user
            }),
        })
    }

    /// Prepares `cais runtime exec` for an exec instance: the command, with
    /// the process JSON written next to the container.
    pub fn exec_command(
        &self,
        exec_id: &str,
        console_socket: Option<&Path>,
        detach: bool,
    ) -> Result<(Command, ExecConfig, String)> {
        let (container, config) = {
            let mut execs = self.execs.lock().unwrap_or_else(|p| p.into_inner());
            let e = execs
                .get_mut(exec_id)
                .ok_or_else(|| Error::NotFound(format!("No such exec instance: {exec_id}")))?;
            if e.running || e.exit_code.is_some() {
                return Err(Error::Conflict(format!("exec {exec_id} has already run")));
            }
            e.running = true;
            (e.container.clone(), e.config.clone())
        };
        let rec = self.record(&container)?;
        let dir = self.container_dir(&container);
        let spec: serde_json::Value = fs::read(dir.join("bundle/config.json"))
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
            .ok_or_else(|| Error::Internal("the container's config is missing".into()))?;
        let mut process = spec["process"].clone();
        process["args"] = serde_json::json!(config.cmd);
        process["terminal"] = config.tty.into();
        if !config.working_dir.is_empty() {
            process["cwd"] = config.working_dir.clone().into();
        }
        let mut env: Vec<String> =
            serde_json::from_value(process["env"].clone()).unwrap_or_default();
        env.extend(config.env.iter().cloned());
        if config.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        process["env"] = serde_json::json!(env);
        if !config.user.is_empty() {
            let rootfs = self.images.container_mount(&container)?.target;
            let (uid, gid, extra) =
                spec::resolve_user(&rootfs, &config.user).map_err(Error::InvalidArgument)?;
            process["user"] = serde_json::json!({"uid": uid, "gid": gid, "additionalGids": extra});
        }
        if config.privileged {
            let all: Vec<&str> = spec::DEFAULT_CAPS.to_vec();
            process["capabilities"] =
                serde_json::json!({"bounding": all, "effective": all, "permitted": all});
        }
        let process_file = dir.join(format!("exec-{exec_id}.json"));
        fs::write(&process_file, process.to_string())
            .map_err(|e| Error::internal("writing the exec process", e))?;
        let mut cmd = Command::new(&self.cfg.binary);
        cmd.args(["runtime", "--root"])
            .arg(self.runtime_root())
            .arg("exec")
            .arg("--process")
            .arg(&process_file);
        if let Some(s) = console_socket {
            cmd.arg("--console-socket").arg(s);
        }
        if detach {
            cmd.arg("--detach");
        }
        cmd.arg(&container);
        self.emit(&rec, "exec_start", &[("execID", exec_id.to_string())]);
        Ok((cmd, config, container))
    }

    pub fn exec_finished(&self, exec_id: &str, code: i64) {
        let mut execs = self.execs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = execs.get_mut(exec_id) {
            e.running = false;
            e.exit_code = Some(code);
            let _ = fs::remove_file(
                self.container_dir(&e.container)
                    .join(format!("exec-{exec_id}.json")),
            );
        }
    }

    pub fn exec_set_pid(&self, exec_id: &str, pid: i64) {
        if let Some(e) = self
            .execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(exec_id)
        {
            e.pid = pid;
        }
    }

    /// Registers an attach client that must connect before start.
    pub fn attach_pending(&self, id: &str, delta: isize) {
        let mut p = self
            .pending_attach
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let n = p.entry(id.to_string()).or_insert(0);
        *n = (*n as isize + delta).max(0) as usize;
    }

    /// Replaces the container's host config (after `update`).
    pub fn set_host_config(&self, id: &str, host: HostConfig) -> Result<()> {
        let rec = self.update(id, |r| r.host_config = host)?;
        self.emit(&rec, "update", &[]);
        Ok(())
    }

    /// Records a health check result.
    pub fn set_health(&self, id: &str, health: cais_api::Health) {
        let _ = self.update(id, |r| {
            if r.state.running {
                r.state.health = Some(health);
            }
        });
    }

    /// `GET /containers/{id}/changes`: what the container changed in its
    /// image, from its overlay upper directory (0 modified, 1 added, 2 deleted).
    pub fn changes(&self, id: &str) -> Result<Vec<serde_json::Value>> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        use std::path::{Path, PathBuf};
        self.record(id)?;
        let m = self.images.container_mount(id)?;
        let mut out = Vec::new();
        let mut stack: Vec<PathBuf> = vec![PathBuf::new()];
        let in_lower = |rel: &Path| {
            m.lowerdirs
                .iter()
                .any(|l| std::fs::symlink_metadata(l.join(rel)).is_ok())
        };
        while let Some(rel) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(m.upperdir.join(&rel)) else {
                continue;
            };
            let mut entries: Vec<_> = entries.flatten().collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let child = rel.join(e.file_name());
                let Ok(meta) = e.metadata() else { continue };
                // An overlayfs whiteout: a 0:0 character device.
                let kind = if meta.file_type().is_char_device() && meta.rdev() == 0 {
                    2
                } else if in_lower(&child) {
                    0
                } else {
                    1
                };
                out.push(
                    serde_json::json!({"Path": format!("/{}", child.display()), "Kind": kind}),
                );
                if meta.is_dir() {
                    stack.push(child);
                }
            }
        }
        out.sort_by(|a, b| a["Path"].as_str().cmp(&b["Path"].as_str()));
        Ok(out)
    }

    /// `POST /containers/{id}/update`: new resource limits, applied to the
    /// running container's cgroup and kept for its next start.
    pub fn update_resources(&self, id: &str, new: &HostConfig) -> Result<Vec<String>> {
        let rec = self.record(id)?;
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
        if rec.state.running {
            let mut resources = crate::spec::resources(&host);
            // Device rules were set at start; leave them alone.
            if let Some(o) = resources.as_object_mut() {
                o.remove("devices");
            }
            let resources: oci_spec::runtime::LinuxResources = serde_json::from_value(resources)
                .map_err(|e| Error::internal("building resources", e))?;
            let cg = cais_cgroups::Cgroup::new(
                cais_cgroups::Layout::detect().map_err(|e| Error::internal("cgroups", e))?,
                &format!("/cais/{id}"),
            )
            .map_err(|e| Error::internal("cgroups", e))?;
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
        let rec = self.record(id)?;
        let reference = reference
            .filter(|r| !r.is_empty())
            .map(|r| r.parse::<cais_image::Reference>())
            .transpose()
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
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
        self.emit(&rec, "commit", &[]);
        Ok(image.id().to_string())
    }
}

/// Static init binaries `--init` can use, in order of preference.
const INIT_BINARIES: [&str; 2] = ["/usr/bin/tini-static", "/usr/bin/docker-init"];

fn has_test(h: &cais_api::HealthConfig) -> bool {
    h.test
        .as_ref()
        .is_some_and(|t| !t.is_empty() && t[0] != "NONE")
}

fn is_mounted(path: &Path) -> bool {
    let p = path.to_string_lossy();
    fs::read_to_string("/proc/self/mountinfo")
        .map(|m| m.lines().any(|l| l.split(' ').nth(4) == Some(&*p)))
        .unwrap_or(false)
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

fn system_cpu_usage() -> u64 {
    // /proc/stat's first line in clock ticks (USER_HZ = 100), in nanoseconds.
    fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines().next().map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .take(7)
                    .filter_map(|v| v.parse::<u64>().ok())
                    .sum::<u64>()
                    * 10_000_000
            })
        })
        .unwrap_or(0)
}

pub fn state_word(s: &ContainerState) -> &'static str {
    if s.paused {
        "paused"
    } else if s.restarting {
        "restarting"
    } else if s.running {
        "running"
    } else if s.status == "created" {
        "created"
    } else if s.status == "removing" {
        "removing"
    } else {
        "exited"
    }
}

/// "Up 3 minutes", "Exited (0) 2 seconds ago", as `docker ps` shows.
pub fn status_text(s: &ContainerState) -> String {
    let ago = |t: &str| {
        let then = cais_image::time::parse_rfc3339(t).unwrap_or(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        human_duration((now - then).max(0))
    };
    match state_word(s) {
        "running" => {
            let health = s
                .health
                .as_ref()
                .map(|h| {
                    format!(
                        " ({})",
                        if h.status == "starting" {
                            "health: starting"
                        } else {
                            &h.status
                        }
                    )
                })
                .unwrap_or_default();
            format!("Up {}{health}", ago(&s.started_at))
        }
        "paused" => format!("Up {} (Paused)", ago(&s.started_at)),
        "restarting" => format!("Restarting ({}) {} ago", s.exit_code, ago(&s.finished_at)),
        "created" => "Created".into(),
        "removing" => "Removal In Progress".into(),
        _ => format!("Exited ({}) {} ago", s.exit_code, ago(&s.finished_at)),
    }
}

fn human_duration(secs: i64) -> String {
    match secs {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "About a minute".into(),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 7200 => "About an hour".into(),
        s if s < 172_800 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86400),
    }
}

/// Whether a container passes `GET /containers/json` filters (keys already
/// checked by `Filters::parse`). `created` orders `before`/`since`.
fn matches_filters(
    r: &Record,
    f: &Filters,
    before: Option<&str>,
    since: Option<&str>,
) -> Result<bool> {
    let exited: Vec<i64> = f
        .values("exited")
        .iter()
        .map(|v| {
            v.parse()
                .map_err(|_| Error::InvalidArgument(format!("invalid filter 'exited={v}'")))
        })
        .collect::<Result<_>>()?;
    let health = r
        .state
        .health
        .as_ref()
        .map(|h| h.status.as_str())
        .unwrap_or("none");
    let ports = |v: &str, published: bool| {
        let (port, proto) = v.split_once('/').unwrap_or((v, "tcp"));
        let key = format!("{port}/{proto}");
        if published {
            r.host_config.port_bindings.contains_key(&key)
                || r.host_config
                    .port_bindings
                    .values()
                    .flatten()
                    .any(|b| b.host_port == port)
        } else {
            r.config
                .exposed_ports
                .as_ref()
                .is_some_and(|e| e.contains_key(&key))
                || r.host_config.port_bindings.contains_key(&key)
        }
    };
    Ok(f.any("id", |v| r.id.starts_with(v))
        && f.any("name", |v| filters::name_matches(v, &format!("/{}", r.name)))
        && f.any("status", |v| state_word(&r.state) == v)
        && f.labels_match(&r.config.labels)
        && f.any("ancestor", |v| {
            r.image == v
                || r.image.split(':').next() == Some(v)
                || r.image_id.starts_with(v)
                || r.image_id.trim_start_matches("sha256:").starts_with(v)
        })
        && (exited.is_empty()
            || (!r.state.running && !r.state.restarting && exited.contains(&r.state.exit_code)))
        && f.any("health", |v| v == health)
        && f.any("volume", |v| r.mounts.iter().any(|m| m.name == v || m.destination == v))
        && f.any("network", |v| {
            r.networks
                .iter()
                .any(|(name, ep)| name == v || (!v.is_empty() && ep.network_id.starts_with(v)))
        })
        && f.any("publish", |v| ports(v, true))
        && f.any("expose", |v| ports(v, false))
        && f.any("isolation", |v| v == "default")
        // No container here is a swarm task.
        && f.any("is-task", |v| v == "false" || v == "0")
        && before.is_none_or(|b| r.created.as_str() < b)
        && since.is_none_or(|s| r.created.as_str() > s))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An engine over temporary directories, without networking or restore
    /// (nothing here touches the kernel).
    fn bare_engine(root: &Path) -> Engine {
        let cfg = Config {
            root: root.join("lib"),
            exec_root: root.join("run"),
            binary: PathBuf::from("/nonexistent"),
        };
        fs::create_dir_all(cfg.root.join("engine/containers")).expect("state dir");
        Engine {
            images: Arc::new(ImageStore::open(&cfg.root).expect("image store")),
            volumes: Volumes::new(&cfg.root).expect("volumes"),
            events: Arc::new(Events::default()),
            table: Mutex::new(Table::default()),
            execs: Mutex::new(HashMap::new()),
            pending_attach: Mutex::new(HashMap::new()),
            removed: Mutex::new(HashMap::new()),
            networks: Mutex::new(
                Networks::load(cfg.root.join("engine/networks")).expect("networks"),
            ),
            port_holds: Mutex::new(HashMap::new()),
            dns: OnceLock::new(),
            fw_lock: Mutex::new(None),
            net_ops: Mutex::new(()),
            cfg,
        }
    }

    #[test]
    fn concurrent_record_updates_leave_the_newest_on_disk() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let engine = bare_engine(tmp.path());
        let id = "c".repeat(64);
        let rec: Record = serde_json::from_value(serde_json::json!({
            "id": id, "name": "hammered", "created": now(), "image": "busybox",
            "image_id": "sha256:00", "config": {}, "host_config": {}, "path": "true",
            "args": [], "state": {"Status": "created"}
        }))
        .expect("a minimal record");
        fs::create_dir_all(engine.container_dir(&id)).expect("container dir");
        engine.lock().containers.insert(id.clone(), rec);
        const THREADS: i64 = 8;
        const UPDATES: i64 = 100;
        std::thread::scope(|scope| {
            for _ in 0..THREADS {
                scope.spawn(|| {
                    for _ in 0..UPDATES {
                        engine
                            .update(&id, |r| r.restart_count += 1)
                            .expect("every update is saved");
                    }
                });
            }
        });
        let file = engine.container_dir(&id).join("container.json");
        let on_disk: Record =
            serde_json::from_slice(&fs::read(&file).expect("record file")).expect("whole JSON");
        assert_eq!(
            engine.record(&id).expect("record").restart_count,
            THREADS * UPDATES
        );
        assert_eq!(
            on_disk.restart_count,
            THREADS * UPDATES,
            "the file holds the last update, not an older snapshot"
        );
        let leftovers: Vec<_> = fs::read_dir(engine.container_dir(&id))
            .expect("list")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    }

    #[test]
    fn names_and_sizes_are_checked() {
        assert!(valid_name("web-1") && valid_name("a.b_c"));
        assert!(!valid_name("-x") && !valid_name("a/b") && !valid_name(""));
        assert!(valid_name(&random_name()));
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

    #[test]
    fn status_texts_read_like_docker() {
        let mut s = ContainerState {
            status: "exited".into(),
            exit_code: 3,
            finished_at: now(),
            ..Default::default()
        };
        assert!(status_text(&s).starts_with("Exited (3) "));
        s.running = true;
        s.started_at = now();
        assert!(status_text(&s).starts_with("Up "));
        assert_eq!(human_duration(59), "59 seconds");
        assert_eq!(human_duration(3 * 86400), "3 days");
    }
}
