//! Pods on the engine, through its API only: [`Runtime::sync`] moves one
//! pod a step towards its spec (sandbox, volumes, init containers in
//! order, containers, restarts after their back-off) and reports the pod's
//! status as the engine shows it; [`Runtime::kill`] removes a pod's
//! containers and volumes; [`Runtime::pods`] finds every pod the engine
//! holds for this node, by label, so a restarted agent adopts them.
//!
//! Level-triggered: each call looks at the engine afresh. The only memory
//! kept between calls is of image pulls that failed (their back-off) and
//! of why a container could not be created, neither of which the engine
//! records.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::time::Duration;

use cais_api::ContainerInspect;
use cais_client::Client;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::pod::{self, EnvContext, Kind, PodRef, Sources};

/// How the runtime places pods.
#[derive(Clone, Debug)]
pub struct Config {
    /// The node's name, on every container's labels.
    pub node: String,
    /// The engine network pods are attached to (created when missing).
    pub network: String,
    /// The pod network's subnet when the agent creates it (the engine
    /// picks a free one when empty).
    pub pod_cidr: String,
    /// The node's address (`status.hostIP`).
    pub host_ip: String,
    /// Where the files of pods' configMap and secret volumes are written
    /// (`pods/UID/volumes/NAME`), bind-mounted into their containers.
    pub state_dir: std::path::PathBuf,
    /// The first restart's delay, doubled each restart up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl Config {
    pub fn new(node: &str) -> Config {
        Config {
            node: node.to_string(),
            network: "cais-kube".into(),
            pod_cidr: String::new(),
            host_ip: "127.0.0.1".into(),
            state_dir: "/var/lib/cais/agent".into(),
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
        }
    }

    /// The delay before restart number `restarts + 1`.
    pub fn backoff(&self, restarts: u32) -> Duration {
        let factor = 1u32.checked_shl(restarts.min(20)).unwrap_or(u32::MAX);
        self.backoff_base
            .saturating_mul(factor)
            .min(self.backoff_max)
    }
}

/// Why a container is not running, when the engine cannot say it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Waiting {
    reason: String,
    message: String,
}

/// A failed pull and when the next try may start.
#[derive(Clone, Debug)]
struct PullFailure {
    failures: u32,
    retry_at: jiff::Timestamp,
}

/// One engine container of a pod, as inspected.
#[derive(Clone, Debug)]
pub struct Observed {
    pub name: String,
    pub kind: Kind,
    pub attempt: u32,
    pub inspect: ContainerInspect,
}

impl Observed {
    fn running(&self) -> bool {
        self.inspect.state.running
    }

    /// When it stopped (or was created, if it never started).
    fn finished(&self) -> Option<jiff::Timestamp> {
        parse_time(&self.inspect.state.finished_at).or_else(|| parse_time(&self.inspect.created))
    }

    /// Exited, or failed to start: it will not run again by itself.
    fn stopped(&self) -> bool {
        !self.running() && (self.inspect.state.status != "created" || o_failed_start(self))
    }

    fn exit_code(&self) -> i64 {
        if self.inspect.state.status == "created" && !self.inspect.state.error.is_empty() {
            // Never started: what the kubelet reports for a failed start.
            128
        } else {
            self.inspect.state.exit_code
        }
    }
}

/// Engine times are RFC 3339; the zero time means "never".
fn parse_time(text: &str) -> Option<jiff::Timestamp> {
    text.parse::<jiff::Timestamp>()
        .ok()
        .filter(|t| t.as_second() > 0)
}

fn engine_error(what: impl Into<String>) -> impl FnOnce(cais_client::Error) -> Error {
    let what = what.into();
    move |source| Error::Engine { what, source }
}

/// Reads a progress stream (pull, import) to its end; the first `error`
/// line is the failure.
pub(crate) fn drain_progress(
    response: cais_client::http::Response,
) -> std::result::Result<(), String> {
    let mut text = String::new();
    let mut body = response.body;
    body.read_to_string(&mut text)
        .map_err(|e| format!("reading the engine's progress: {e}"))?;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Ok(v) = serde_json::from_str::<Value>(line) {
            if let Some(e) = v["error"].as_str().or(v["errorDetail"]["message"].as_str()) {
                return Err(e.to_string());
            }
        }
    }
    Ok(())
}

/// Whether a container that exited with `code` runs again under `policy`.
fn should_restart(policy: &str, code: i64) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => code != 0,
        _ => true,
    }
}

fn time(t: jiff::Timestamp) -> Time {
    Time(jiff::Timestamp::from_second(t.as_second()).unwrap_or(t))
}

pub struct Runtime {
    engine: Client,
    cfg: Config,
    waiting: HashMap<(String, String), Waiting>,
    pulls: HashMap<(String, String), PullFailure>,
}

impl Runtime {
    pub fn new(engine: Client, cfg: Config) -> Runtime {
        Runtime {
            engine,
            cfg,
            waiting: HashMap::new(),
            pulls: HashMap::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn engine(&self) -> &Client {
        &self.engine
    }

    /// Makes sure the pod network and the sandbox image exist; the pod
    /// network's subnet.
    pub fn prepare(&mut self) -> Result<String> {
        crate::pause::ensure_image(&self.engine)?;
        let net = &self.cfg.network;
        let inspect = match self.engine.network_inspect_value(net) {
            Ok(v) => v,
            Err(e) if e.status() == Some(404) => {
                let mut body = json!({
                    "Name": net,
                    "Driver": "bridge",
                    "Labels": {pod::LABEL_NODE: self.cfg.node},
                });
                if !self.cfg.pod_cidr.is_empty() {
                    body["IPAM"] = json!({"Config": [{"Subnet": self.cfg.pod_cidr}]});
                }
                self.engine
                    .network_create(&body)
                    .map_err(engine_error(format!("creating the pod network {net}")))?;
                tracing::info!(network = %net, "created the pod network");
                self.engine
                    .network_inspect_value(net)
                    .map_err(engine_error(format!("inspecting the pod network {net}")))?
            }
            Err(e) => return Err(engine_error(format!("inspecting the pod network {net}"))(e)),
        };
        Ok(inspect["IPAM"]["Config"][0]["Subnet"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// This node's engine containers, by pod UID.
    pub fn pods(&self) -> Result<BTreeMap<String, Vec<cais_api::ContainerSummary>>> {
        let filters = json!({"label": [format!("{}={}", pod::LABEL_NODE, self.cfg.node)]});
        let list = self
            .engine
            .container_list(&[("all", "1".into()), ("filters", filters.to_string())])
            .map_err(engine_error("listing the node's containers"))?;
        let mut pods: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for c in list {
            if let Some(uid) = c.labels.get(pod::LABEL_POD_UID) {
                pods.entry(uid.clone()).or_default().push(c);
            }
        }
        Ok(pods)
    }

    /// The engine containers of pod `uid`, inspected.
    pub fn observe(&self, uid: &str) -> Result<Vec<Observed>> {
        let filters = json!({"label": [format!("{}={uid}", pod::LABEL_POD_UID)]});
        let list = self
            .engine
            .container_list(&[("all", "1".into()), ("filters", filters.to_string())])
            .map_err(engine_error(format!("listing the containers of pod {uid}")))?;
        let mut out = Vec::new();
        for c in list {
            let (Some(name), Some(kind)) = (
                c.labels.get(pod::LABEL_CONTAINER_NAME),
                c.labels.get(pod::LABEL_KIND).and_then(|k| Kind::parse(k)),
            ) else {
                continue;
            };
            let attempt = c
                .labels
                .get(pod::LABEL_ATTEMPT)
                .and_then(|a| a.parse().ok())
                .unwrap_or(0);
            match self.engine.container_inspect(&c.id) {
                Ok(inspect) => out.push(Observed {
                    name: name.clone(),
                    kind,
                    attempt,
                    inspect,
                }),
                // Removed between the list and the inspect.
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Err(engine_error(format!("inspecting container {}", c.id))(e)),
            }
        }
        Ok(out)
    }

    /// The pod's address on the pod network (or the node's, with host networking).
    fn pod_ip(&self, pod: &Pod, sandbox: &ContainerInspect) -> String {
        if pod.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
            return self.cfg.host_ip.clone();
        }
        sandbox
            .network_settings
            .networks
            .get(&self.cfg.network)
            .map(|e| e.ip_address.clone())
            .unwrap_or_default()
    }

    fn pod_dir(&self, uid: &str) -> std::path::PathBuf {
        self.cfg.state_dir.join("pods").join(uid)
    }

    /// Writes the files of the pod's configMap and secret volumes (a file
    /// is replaced by a rename, so a reader never sees half of it).
    fn write_volumes(&self, pod: &Pod, r: &PodRef, sources: &Sources) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let io = |what: String| move |source| Error::Io { what, source };
        for (volume, files) in pod::volume_files(pod, sources)? {
            let dir = self.pod_dir(&r.uid).join("volumes").join(&volume);
            std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
            for (path, bytes, mode) in files {
                let target = dir.join(&path);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(io(format!("creating {}", parent.display())))?;
                }
                let same = std::fs::read(&target).is_ok_and(|old| old == bytes);
                if same {
                    continue;
                }
                let tmp = target.with_extension("cais-tmp");
                std::fs::write(&tmp, &bytes).map_err(io(format!("writing {}", tmp.display())))?;
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
                    .map_err(io(format!("setting the mode of {}", tmp.display())))?;
                std::fs::rename(&tmp, &target).map_err(io(format!(
                    "renaming {} to {}",
                    tmp.display(),
                    target.display()
                )))?;
            }
        }
        Ok(())
    }

    /// One step of pod `pod` towards its spec; its status afterwards.
    /// `sources` holds the config maps and secrets it names
    /// ([`Sources::wanted`]).
    pub fn sync(&mut self, pod: &Pod, sources: &Sources) -> Result<PodStatus> {
        let r = PodRef::of(pod)?;
        let spec = pod.spec.clone().unwrap_or_default();
        let policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        let observed = self.observe(&r.uid)?;
        if self.finished(pod, &observed) {
            // A pod that has run to completion keeps its containers (for
            // logs) and gets no new sandbox.
            return Ok(self.status(pod, &observed));
        }

        let sandbox_id = self.ensure_sandbox(pod, &r, &observed)?;
        let observed = self.observe(&r.uid)?;
        let Some(sandbox) = latest(&observed, Kind::Sandbox, pod::SANDBOX) else {
            return Ok(self.status(pod, &observed));
        };
        let pod_ip = self.pod_ip(pod, &sandbox.inspect);
        for v in spec
            .volumes
            .iter()
            .flatten()
            .filter(|v| v.empty_dir.is_some())
        {
            let name = r.volume_name(&v.name);
            let body = json!({"Name": name, "Labels": {pod::LABEL_POD_UID: r.uid, pod::LABEL_NODE: self.cfg.node}});
            self.engine
                .volume_create(&serde_json::from_value(body).unwrap_or_default())
                .map_err(engine_error(format!("creating volume {name}")))?;
        }
        if let Err(e) = self.write_volumes(pod, &r, sources) {
            // Nothing starts without its volumes; the status says why.
            tracing::warn!(pod = %r.key(), error = %e, "setting up volumes");
            let containers = spec
                .init_containers
                .iter()
                .flatten()
                .chain(&spec.containers);
            for c in containers {
                let key = (r.uid.clone(), c.name.clone());
                self.waiting.insert(
                    key,
                    Waiting {
                        reason: "ContainerCreating".into(),
                        message: format!("MountVolume.SetUp failed: {e}"),
                    },
                );
            }
            return Ok(self.status(pod, &observed));
        }
        self.waiting
            .retain(|(u, _), w| !(*u == r.uid && w.reason == "ContainerCreating"));
        let host_ip = self.cfg.host_ip.clone();
        let node = self.cfg.node.clone();
        let volume_dir = self.pod_dir(&r.uid).join("volumes");
        let cx = EnvContext {
            pod,
            node: &node,
            pod_ip: &pod_ip,
            host_ip: &host_ip,
            sources,
            volume_dir: &volume_dir,
        };

        let mut initialized = true;
        for c in spec.init_containers.iter().flatten() {
            match latest(&observed, Kind::Init, &c.name) {
                None => {
                    self.start(&cx, c, Kind::Init, 0, &sandbox_id, &observed);
                    initialized = false;
                }
                Some(o) if o.running() => initialized = false,
                Some(o) if o.stopped() && o.exit_code() == 0 => continue,
                Some(o) => {
                    initialized = false;
                    if policy != "Never" && self.due(o) {
                        self.start(&cx, c, Kind::Init, o.attempt + 1, &sandbox_id, &observed);
                    }
                }
            }
            break;
        }
        if initialized {
            for c in &spec.containers {
                match latest(&observed, Kind::App, &c.name) {
                    None => self.start(&cx, c, Kind::App, 0, &sandbox_id, &observed),
                    Some(o) if o.running() => {}
                    Some(o) => {
                        if should_restart(&policy, o.exit_code()) && self.due(o) {
                            self.start(&cx, c, Kind::App, o.attempt + 1, &sandbox_id, &observed);
                        }
                    }
                }
            }
        }
        let observed = self.observe(&r.uid)?;
        Ok(self.status(pod, &observed))
    }

    /// Whether every container has stopped for good: the pod succeeded or
    /// failed (its sandbox is not brought back).
    fn finished(&self, pod: &Pod, observed: &[Observed]) -> bool {
        matches!(self.phase(pod, observed).as_str(), "Succeeded" | "Failed")
    }

    /// Whether the back-off after `o` stopped is over.
    fn due(&self, o: &Observed) -> bool {
        let delay = self.cfg.backoff(o.attempt);
        match o.finished() {
            Some(at) => {
                let due = at + jiff::SignedDuration::try_from(delay).unwrap_or_default();
                jiff::Timestamp::now() >= due
            }
            None => true,
        }
    }

    /// The running sandbox's id, made (again) when missing or stopped.
    fn ensure_sandbox(&mut self, pod: &Pod, r: &PodRef, observed: &[Observed]) -> Result<String> {
        let current = latest(observed, Kind::Sandbox, pod::SANDBOX);
        if let Some(s) = current.filter(|s| s.running()) {
            return Ok(s.inspect.id.clone());
        }
        let attempt = current.map(|s| s.attempt + 1).unwrap_or(0);
        if current.is_some() {
            // The sandbox died: its containers lost their namespaces, so
            // they stop, and restart in the new one.
            tracing::warn!(pod = %r.key(), "sandbox stopped; making a new one");
            for o in observed {
                if o.running() {
                    let _ = self.engine.container_kill(&o.inspect.id, "KILL");
                }
                if o.kind == Kind::Sandbox {
                    let _ = self.engine.container_remove(&o.inspect.id, true, false);
                }
            }
        }
        crate::pause::ensure_image(&self.engine)?;
        let body = pod::sandbox_request(pod, &self.cfg.node, &self.cfg.network, attempt)?;
        let name = r.container_name(pod::SANDBOX, attempt);
        let created = self
            .engine
            .container_create(Some(&name), &body)
            .map_err(engine_error(format!(
                "creating the sandbox of pod {}",
                r.key()
            )))?;
        self.engine
            .container_start(&created.id)
            .map_err(engine_error(format!(
                "starting the sandbox of pod {}",
                r.key()
            )))?;
        tracing::info!(pod = %r.key(), id = %created.id, "sandbox started");
        Ok(created.id)
    }

    /// Makes sure the image of `c` is there, pulling it as its policy says.
    fn ensure_image(
        &mut self,
        key: &(String, String),
        c: &Container,
    ) -> std::result::Result<(), Waiting> {
        let image = c.image.clone().unwrap_or_default();
        let present = self.engine.image_inspect_value(&image).is_ok();
        let policy = c.image_pull_policy.clone().unwrap_or_else(|| {
            let tagged = image
                .rsplit('/')
                .next()
                .is_some_and(|last| last.contains(':'))
                && !image.ends_with(":latest");
            if tagged || image.contains('@') {
                "IfNotPresent".into()
            } else {
                "Always".into()
            }
        });
        let pull = match policy.as_str() {
            "Never" if !present => {
                return Err(Waiting {
                    reason: "ErrImageNeverPull".into(),
                    message: format!(
                        "Container image \"{image}\" is not present with pull policy of Never"
                    ),
                })
            }
            "Never" => false,
            "IfNotPresent" => !present,
            _ => true,
        };
        if !pull {
            return Ok(());
        }
        let now = jiff::Timestamp::now();
        if let Some(f) = self.pulls.get(key) {
            if now < f.retry_at {
                return Err(Waiting {
                    reason: "ImagePullBackOff".into(),
                    message: format!("Back-off pulling image \"{image}\""),
                });
            }
        }
        let result = self
            .engine
            .image_pull(&[("fromImage", image.clone())], None)
            .map_err(|e| e.to_string())
            .and_then(drain_progress);
        match result {
            Ok(()) => {
                self.pulls.remove(key);
                Ok(())
            }
            Err(message) => {
                let failures = self.pulls.get(key).map(|f| f.failures + 1).unwrap_or(1);
                let delay = self.cfg.backoff(failures - 1);
                self.pulls.insert(
                    key.clone(),
                    PullFailure {
                        failures,
                        retry_at: now + jiff::SignedDuration::try_from(delay).unwrap_or_default(),
                    },
                );
                tracing::warn!(image = %image, error = %message, "pulling an image failed");
                Err(Waiting {
                    reason: "ErrImagePull".into(),
                    message: format!("failed to pull image \"{image}\": {message}"),
                })
            }
        }
    }

    /// Creates and starts attempt `attempt` of container `c`; what goes
    /// wrong before the engine has a container is kept for the status.
    fn start(
        &mut self,
        cx: &EnvContext<'_>,
        c: &Container,
        kind: Kind,
        attempt: u32,
        sandbox_id: &str,
        observed: &[Observed],
    ) {
        let Ok(r) = PodRef::of(cx.pod) else { return };
        let key = (r.uid.clone(), c.name.clone());
        if let Err(w) = self.ensure_image(&key, c) {
            self.waiting.insert(key, w);
            return;
        }
        let body = match pod::container_request(cx, c, kind, sandbox_id, attempt) {
            Ok(b) => b,
            Err(e) => {
                self.waiting.insert(
                    key,
                    Waiting {
                        reason: "CreateContainerConfigError".into(),
                        message: e.to_string(),
                    },
                );
                return;
            }
        };
        let name = r.container_name(&c.name, attempt);
        let created = match self.engine.container_create(Some(&name), &body) {
            Ok(created) => created,
            Err(e) => {
                self.waiting.insert(
                    key,
                    Waiting {
                        reason: "CreateContainerError".into(),
                        message: e.to_string(),
                    },
                );
                return;
            }
        };
        self.waiting.remove(&key);
        match self.engine.container_start(&created.id) {
            Ok(()) => {
                tracing::info!(pod = %r.key(), container = %c.name, attempt, "container started")
            }
            // The inspect shows the failure (State.Error).
            Err(e) => {
                tracing::warn!(pod = %r.key(), container = %c.name, error = %e, "container did not start")
            }
        }
        // Keep this attempt and the one before it (`logs --previous`).
        for o in observed {
            if o.kind == kind && o.name == c.name && o.attempt + 1 < attempt {
                let _ = self.engine.container_remove(&o.inspect.id, true, false);
            }
        }
    }

    /// Stops pod `uid`'s containers (SIGTERM, then SIGKILL after `grace`
    /// seconds), then removes them and the pod's volumes.
    pub fn kill(&mut self, uid: &str, grace: i64) -> Result<()> {
        let observed = self.observe(uid)?;
        for o in observed
            .iter()
            .filter(|o| o.kind != Kind::Sandbox && o.running())
        {
            if let Err(e) = self
                .engine
                .container_stop(&o.inspect.id, Some(grace.max(0)), None)
            {
                tracing::warn!(id = %o.inspect.id, error = %e, "stopping a container");
            }
        }
        for o in &observed {
            match self.engine.container_remove(&o.inspect.id, true, false) {
                Ok(()) => {}
                Err(e) if e.status() == Some(404) => {}
                Err(e) => {
                    return Err(engine_error(format!("removing container {}", o.inspect.id))(e))
                }
            }
        }
        let filters = json!({"label": [format!("{}={uid}", pod::LABEL_POD_UID)]});
        let volumes = self
            .engine
            .volume_list(&[("filters", filters.to_string())])
            .map_err(engine_error(format!("listing the volumes of pod {uid}")))?;
        for v in &volumes.volumes {
            match self.engine.volume_remove(&v.name, true) {
                Ok(()) => {}
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Err(engine_error(format!("removing volume {}", v.name))(e)),
            }
        }
        let dir = self.pod_dir(uid);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Io {
                    what: format!("removing {}", dir.display()),
                    source,
                })
            }
        }
        self.waiting.retain(|(u, _), _| u != uid);
        self.pulls.retain(|(u, _), _| u != uid);
        tracing::info!(uid, "pod removed from the engine");
        Ok(())
    }

    /// One container's status from what the engine shows.
    fn container_status(
        &self,
        pod: &Pod,
        policy: &str,
        c: &Container,
        kind: Kind,
        observed: &[Observed],
    ) -> ContainerStatus {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let current = latest(observed, kind, &c.name);
        let previous = current.and_then(|cur| {
            observed
                .iter()
                .filter(|o| o.kind == kind && o.name == c.name && o.attempt < cur.attempt)
                .max_by_key(|o| o.attempt)
        });
        let waiting = self.waiting.get(&(uid.clone(), c.name.clone()));
        let mut status = ContainerStatus {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            restart_count: current.map(|o| o.attempt as i32).unwrap_or(0),
            ready: false,
            started: Some(false),
            ..Default::default()
        };
        let wait = |reason: &str, message: Option<String>| ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.into()),
                message,
            }),
            ..Default::default()
        };
        let Some(o) = current else {
            status.state = Some(match waiting {
                Some(w) => wait(&w.reason, Some(w.message.clone())),
                None if kind == Kind::App
                    && !pod
                        .spec
                        .as_ref()
                        .map(|s| s.init_containers.iter().flatten().count() == 0)
                        .unwrap_or(true) =>
                {
                    wait("PodInitializing", None)
                }
                None => wait("ContainerCreating", None),
            });
            return status;
        };
        status.container_id = Some(format!("cais://{}", o.inspect.id));
        status.image_id = o.inspect.image.clone();
        if o.running() {
            status.state = Some(ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: parse_time(&o.inspect.state.started_at).map(time),
                }),
                ..Default::default()
            });
            status.ready = kind == Kind::App;
            status.started = Some(true);
            status.last_state = previous.map(terminated);
            return status;
        }
        let restarts = match kind {
            Kind::Init => policy != "Never" && o.exit_code() != 0,
            _ => should_restart(policy, o.exit_code()),
        };
        if restarts {
            let message = match waiting {
                Some(w) => w.message.clone(),
                None => format!(
                    "back-off {}s restarting failed container={} pod={name}_{ns}({uid})",
                    self.cfg.backoff(o.attempt).as_secs(),
                    c.name
                ),
            };
            let reason = waiting
                .map(|w| w.reason.as_str())
                .unwrap_or("CrashLoopBackOff");
            status.state = Some(wait(reason, Some(message)));
            status.last_state = Some(terminated(o));
        } else {
            status.state = Some(terminated(o));
            status.last_state = previous.map(terminated);
        }
        status
    }

    /// The pod's phase from its containers (as the kubelet computes it).
    fn phase(&self, pod: &Pod, observed: &[Observed]) -> String {
        let spec = pod.spec.clone().unwrap_or_default();
        let policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        for c in spec.init_containers.iter().flatten() {
            match latest(observed, Kind::Init, &c.name) {
                Some(o) if o.stopped() && o.exit_code() == 0 => continue,
                Some(o) if o.stopped() && policy == "Never" => return "Failed".into(),
                _ => return "Pending".into(),
            }
        }
        let (mut running, mut waiting, mut succeeded, mut failed, mut restarting) = (0, 0, 0, 0, 0);
        for c in &spec.containers {
            match latest(observed, Kind::App, &c.name) {
                None => waiting += 1,
                Some(o) if o.running() => running += 1,
                Some(o) if !o.stopped() => waiting += 1,
                Some(o) => {
                    if should_restart(&policy, o.exit_code()) {
                        restarting += 1;
                    } else if o.exit_code() == 0 {
                        succeeded += 1;
                    } else {
                        failed += 1;
                    }
                }
            }
        }
        let total = spec.containers.len();
        if total > 0 && succeeded + failed == total {
            if failed > 0 { "Failed" } else { "Succeeded" }.into()
        } else if running > 0 || restarting > 0 || (waiting == 0 && total > 0) {
            "Running".into()
        } else {
            "Pending".into()
        }
    }

    /// The pod's status as the engine shows it.
    pub fn status(&self, pod: &Pod, observed: &[Observed]) -> PodStatus {
        let spec = pod.spec.clone().unwrap_or_default();
        let policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        let old = pod.status.clone().unwrap_or_default();
        let sandbox = latest(observed, Kind::Sandbox, pod::SANDBOX);
        let pod_ip = sandbox
            .filter(|s| s.running())
            .map(|s| self.pod_ip(pod, &s.inspect))
            .filter(|ip| !ip.is_empty());
        let init: Vec<ContainerStatus> = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| self.container_status(pod, &policy, c, Kind::Init, observed))
            .collect();
        let apps: Vec<ContainerStatus> = spec
            .containers
            .iter()
            .map(|c| self.container_status(pod, &policy, c, Kind::App, observed))
            .collect();
        let phase = self.phase(pod, observed);
        let initialized = init.iter().all(|s| {
            s.state
                .as_ref()
                .and_then(|st| st.terminated.as_ref())
                .is_some_and(|t| t.exit_code == 0)
        });
        let ready = !apps.is_empty()
            && apps.iter().all(|s| s.ready)
            && pod.metadata.deletion_timestamp.is_none();
        let finished = matches!(phase.as_str(), "Succeeded" | "Failed");
        let now = jiff::Timestamp::now();
        let condition = |type_: &str, value: bool, reason: Option<&str>| {
            let status = if value { "True" } else { "False" }.to_string();
            let since = old
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == type_ && c.status == status)
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| time(now));
            PodCondition {
                type_: type_.into(),
                status,
                last_transition_time: Some(since),
                reason: reason.filter(|_| !value).map(String::from),
                ..Default::default()
            }
        };
        let unready = if finished {
            "PodCompleted"
        } else {
            "ContainersNotReady"
        };
        let conditions = vec![
            condition(
                "PodReadyToStartContainers",
                pod_ip.is_some() || finished && sandbox.is_some(),
                None,
            ),
            condition(
                "Initialized",
                initialized || finished,
                Some("ContainersNotInitialized"),
            ),
            condition("Ready", ready, Some(unready)),
            condition("ContainersReady", ready, Some(unready)),
            condition("PodScheduled", true, None),
        ];
        let start_time = old
            .start_time
            .clone()
            .or_else(|| {
                sandbox
                    .and_then(|s| parse_time(&s.inspect.created))
                    .map(time)
            })
            .or_else(|| Some(time(now)));
        PodStatus {
            phase: Some(phase),
            conditions: Some(conditions),
            host_ip: Some(self.cfg.host_ip.clone()),
            host_ips: Some(vec![HostIP {
                ip: self.cfg.host_ip.clone(),
            }]),
            pod_ip: pod_ip.clone(),
            pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
            start_time,
            init_container_statuses: (!init.is_empty()).then_some(init),
            container_statuses: Some(apps),
            qos_class: old.qos_class,
            ..Default::default()
        }
    }
}

fn o_failed_start(o: &Observed) -> bool {
    o.inspect.state.status == "created" && !o.inspect.state.error.is_empty()
}

/// The newest attempt of container `name` of kind `kind`.
fn latest<'a>(observed: &'a [Observed], kind: Kind, name: &str) -> Option<&'a Observed> {
    observed
        .iter()
        .filter(|o| o.kind == kind && o.name == name)
        .max_by_key(|o| o.attempt)
}

/// A stopped container as a `terminated` state.
fn terminated(o: &Observed) -> ContainerState {
    let s = &o.inspect.state;
    let code = o.exit_code();
    let reason = if s.oom_killed {
        "OOMKilled"
    } else if o_failed_start(o) || !s.error.is_empty() && code != 0 {
        "StartError"
    } else if code == 0 {
        "Completed"
    } else {
        "Error"
    };
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            container_id: Some(format!("cais://{}", o.inspect.id)),
            exit_code: code as i32,
            reason: Some(reason.into()),
            message: (!s.error.is_empty()).then(|| s.error.clone()),
            started_at: parse_time(&s.started_at).map(time),
            finished_at: parse_time(&s.finished_at).map(time),
            signal: None,
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let c = Config::new("n1");
        assert_eq!(c.backoff(0), Duration::from_secs(10));
        assert_eq!(c.backoff(1), Duration::from_secs(20));
        assert_eq!(c.backoff(4), Duration::from_secs(160));
        assert_eq!(c.backoff(5), Duration::from_secs(300));
        assert_eq!(c.backoff(500), Duration::from_secs(300));
    }

    #[test]
    fn restart_policies() {
        assert!(should_restart("Always", 0));
        assert!(should_restart("Always", 1));
        assert!(!should_restart("OnFailure", 0));
        assert!(should_restart("OnFailure", 2));
        assert!(!should_restart("Never", 1));
    }

    #[test]
    fn engine_times() {
        assert!(parse_time("0001-01-01T00:00:00Z").is_none());
        assert_eq!(
            parse_time("2026-01-02T03:04:05.123456789Z").map(|t| t.as_second()),
            Some(1767323045)
        );
    }
}
