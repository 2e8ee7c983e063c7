//! Bringing an engine to a project through the engine API: `up`
//! (networks, volumes, images, then each service's containers in
//! dependency order, independent services and replicas in parallel,
//! waiting on each dependency's condition first), `down`, and the
//! lookups every other command needs. Everything is found by its
//! `com.docker.compose.*` labels; progress goes to a callback, never to a
//! terminal.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cais_api::{ContainerSummary, VolumeCreateRequest};
use cais_client::Client;
use serde_json::{json, Value};

use crate::create::{self, Instance};
use crate::error::{DaemonContext, Error, Result};
use crate::labels;
use crate::model::{self, Project, Service};
use crate::plan::{self, Action, Existing, Recreate};

/// A step worth telling the user: `Container p-web-1  Started`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `Network`, `Volume`, `Container` or `Image`.
    pub kind: &'static str,
    pub name: String,
    /// `Creating`, `Created`, `Starting`, `Started`, `Waiting`, `Healthy`...
    pub status: String,
}

/// Builds a service's image (the binary tars the context and calls the
/// engine's build endpoint).
pub trait ImageBuilder: Sync {
    fn build(&self, project: &Project, service: &Service, tag: &str) -> Result<()>;
}

/// When `up` builds images.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BuildPolicy {
    /// When the image is missing.
    #[default]
    Missing,
    /// Always, before starting (`--build`).
    Always,
    /// Never (`--no-build`).
    Never,
}

#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// Services named on the command line (all when empty).
    pub services: Vec<String>,
    pub no_deps: bool,
    pub recreate: Recreate,
    pub remove_orphans: bool,
    /// `--scale SERVICE=N`.
    pub scale: BTreeMap<String, u32>,
    pub build: BuildPolicy,
    /// Create without starting (`create`).
    pub no_start: bool,
    /// Wait for running/healthy (`--wait`).
    pub wait: bool,
    pub wait_timeout: Option<Duration>,
    /// Stop timeout for recreated and removed containers.
    pub timeout: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct DownOptions {
    pub volumes: bool,
    /// `--rmi local|all`.
    pub rmi: Option<String>,
    pub remove_orphans: bool,
    pub timeout: Option<i64>,
    /// Services to take down (all when empty).
    pub services: Vec<String>,
}

/// Which container of a service to create.
#[derive(Debug, Clone, Default)]
pub struct NewContainer {
    /// `com.docker.compose.container-number`; `None` for a one-off.
    pub number: Option<u32>,
    pub name: String,
    /// The image's ID (the `com.docker.compose.image` label).
    pub image_id: String,
    /// A one-off container's slug.
    pub slug: Option<String>,
    /// The container this one replaces.
    pub replaces: Option<String>,
}

/// A project and the daemon it lives on.
pub struct Compose<'a> {
    pub client: &'a Client,
    pub project: &'a Project,
    pub progress: &'a (dyn Fn(Event) + Sync),
}

fn label_filter(pairs: &[String]) -> String {
    let labels: serde_json::Map<String, Value> = pairs
        .iter()
        .map(|p| (p.clone(), Value::Bool(true)))
        .collect();
    json!({ "label": labels }).to_string()
}

/// `com.docker.compose.container-number` of a listed container.
pub fn number(c: &ContainerSummary) -> u32 {
    c.labels
        .get(labels::CONTAINER_NUMBER)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A listed container's name, without the leading `/`.
pub fn name(c: &ContainerSummary) -> String {
    c.names
        .first()
        .map(|n| n.trim_start_matches('/').to_string())
        .unwrap_or_else(|| c.id.chars().take(12).collect())
}

pub fn service_of(c: &ContainerSummary) -> &str {
    c.labels
        .get(labels::SERVICE)
        .map(String::as_str)
        .unwrap_or("")
}

fn existing(c: &ContainerSummary) -> Existing {
    Existing {
        id: c.id.clone(),
        name: name(c),
        number: number(c),
        hash: c
            .labels
            .get(labels::CONFIG_HASH)
            .cloned()
            .unwrap_or_default(),
        state: c.state.clone(),
    }
}

/// `sha256:...` of an image, if the daemon has it.
fn image_id(client: &Client, image: &str) -> Result<Option<String>> {
    match client.image_inspect_value(image) {
        Ok(v) => Ok(v["Id"].as_str().map(str::to_string)),
        Err(e) if e.status() == Some(404) => Ok(None),
        Err(e) => Err(e).doing(|| format!("inspecting image {image}")),
    }
}

/// Reads a pull's progress to its end; an error message in it fails.
pub fn pull(client: &Client, image: &str) -> Result<()> {
    let (repo, tag) = split_tag(image);
    let resp = client
        .image_pull(&[("fromImage", repo), ("tag", tag)], None)
        .doing(|| format!("pulling {image}"))?;
    for msg in cais_client::http::json_lines::<Value>(resp.body) {
        let msg = msg.doing(|| format!("pulling {image}"))?;
        if let Some(e) = msg["error"]
            .as_str()
            .or(msg["errorDetail"]["message"].as_str())
        {
            return Err(Error::Failed(format!("pulling {image}: {e}")));
        }
    }
    Ok(())
}

/// `repo[:tag]` → (repo, tag); a port's colon is not a tag's.
pub fn split_tag(image: &str) -> (String, String) {
    if image.contains('@') {
        return (image.to_string(), String::new());
    }
    match image.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
        _ => (image.to_string(), "latest".to_string()),
    }
}

/// A random hex string of `n` characters (one-off container slugs).
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n.div_ceil(2)];
    let filled = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok();
    if !filled {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            ^ u128::from(std::process::id());
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (t >> ((i % 16) * 8)) as u8;
        }
    }
    labels::hex(&bytes)[..n].to_string()
}

impl Compose<'_> {
    fn emit(&self, kind: &'static str, name: &str, status: &str) {
        (self.progress)(Event {
            kind,
            name: name.to_string(),
            status: status.to_string(),
        });
    }

    /// The project's containers: `all` includes stopped ones; `oneoff`
    /// picks `run` containers (`Some(true)`) or service ones
    /// (`Some(false)`); `services` narrows to those services.
    pub fn containers(
        &self,
        all: bool,
        oneoff: Option<bool>,
        services: &[String],
    ) -> Result<Vec<ContainerSummary>> {
        let mut pairs = vec![format!("{}={}", labels::PROJECT, self.project.name)];
        if let Some(o) = oneoff {
            pairs.push(format!(
                "{}={}",
                labels::ONEOFF,
                if o { "True" } else { "False" }
            ));
        }
        if let [one] = services {
            pairs.push(format!("{}={one}", labels::SERVICE));
        }
        let mut q = vec![("filters", label_filter(&pairs))];
        if all {
            q.push(("all", "1".to_string()));
        }
        let mut list = self
            .client
            .container_list(&q)
            .doing(|| format!("listing the containers of project {}", self.project.name))?;
        if services.len() > 1 {
            list.retain(|c| services.iter().any(|s| s == service_of(c)));
        }
        list.sort_by(|a, b| {
            (service_of(a), number(a), name(a)).cmp(&(service_of(b), number(b), name(b)))
        });
        Ok(list)
    }

    /// Containers of services the model does not have.
    pub fn orphans(&self) -> Result<Vec<ContainerSummary>> {
        let mut list = self.containers(true, Some(false), &[])?;
        list.retain(|c| {
            let s = service_of(c);
            !self.project.services.contains_key(s) && !self.project.disabled.contains_key(s)
        });
        Ok(list)
    }

    fn networks_used(&self, services: &BTreeSet<String>) -> BTreeSet<String> {
        services
            .iter()
            .filter_map(|s| self.project.services.get(s))
            .flat_map(|s| s.networks.keys().cloned())
            .collect()
    }

    /// Creates the networks `services` use that do not exist yet.
    pub fn ensure_networks(&self, services: &BTreeSet<String>) -> Result<()> {
        for key in self.networks_used(services) {
            let Some(net) = self.project.networks.get(&key) else {
                continue;
            };
            match self.client.network_inspect_value(&net.name) {
                Ok(found) => {
                    if net.external {
                        continue;
                    }
                    let owner = found["Labels"][labels::PROJECT].as_str();
                    if owner != Some(self.project.name.as_str()) {
                        return Err(Error::Failed(format!(
                            "a network with name {} exists but was not created for project {:?}; set `external: true` to use an existing network",
                            net.name, self.project.name
                        )));
                    }
                    continue;
                }
                Err(e) if e.status() == Some(404) => {
                    if net.external {
                        return Err(Error::Failed(format!(
                            "network {} declared as external, but could not be found",
                            net.name
                        )));
                    }
                }
                Err(e) => return Err(e).doing(|| format!("inspecting network {}", net.name)),
            }
            self.emit("Network", &net.name, "Creating");
            let mut l = net.labels.clone();
            l.insert(labels::NETWORK.into(), key.clone());
            l.insert(labels::PROJECT.into(), self.project.name.clone());
            l.insert(labels::VERSION.into(), labels::COMPOSE_VERSION.into());
            let mut body = json!({
                "Name": net.name,
                "CheckDuplicate": true,
                "Driver": net.driver.clone().unwrap_or_else(|| "bridge".into()),
                "Internal": net.internal,
                "Attachable": net.attachable,
                "Options": net.driver_opts,
                "Labels": l,
            });
            if !net.ipam.config.is_empty() || net.ipam.driver.is_some() {
                body["IPAM"] = json!({
                    "Driver": net.ipam.driver.clone().unwrap_or_else(|| "default".into()),
                    "Config": net.ipam.config.iter().map(|p| {
                        let mut c = serde_json::Map::new();
                        if let Some(s) = &p.subnet { c.insert("Subnet".into(), json!(s)); }
                        if let Some(g) = &p.gateway { c.insert("Gateway".into(), json!(g)); }
                        if let Some(r) = &p.ip_range { c.insert("IPRange".into(), json!(r)); }
                        Value::Object(c)
                    }).collect::<Vec<_>>(),
                });
            }
            self.client
                .network_create(&body)
                .doing(|| format!("creating network {}", net.name))?;
            self.emit("Network", &net.name, "Created");
        }
        Ok(())
    }

    /// Creates the named volumes `services` mount that do not exist yet.
    pub fn ensure_volumes(&self, services: &BTreeSet<String>) -> Result<()> {
        let used: BTreeSet<String> = services
            .iter()
            .filter_map(|s| self.project.services.get(s))
            .flat_map(|s| s.volumes.iter())
            .filter(|m| m.kind == "volume")
            .filter_map(|m| m.source.clone())
            .collect();
        for key in used {
            let Some(vol) = self.project.volumes.get(&key) else {
                continue;
            };
            match self.client.volume_inspect_value(&vol.name) {
                Ok(found) => {
                    if !vol.external
                        && found["Labels"][labels::PROJECT].as_str() != Some(&self.project.name)
                    {
                        tracing::warn!(volume = %vol.name, "volume already exists but was not created by Compose");
                    }
                    continue;
                }
                Err(e) if e.status() == Some(404) => {
                    if vol.external {
                        return Err(Error::Failed(format!(
                            "external volume {:?} not found",
                            vol.name
                        )));
                    }
                }
                Err(e) => return Err(e).doing(|| format!("inspecting volume {}", vol.name)),
            }
            self.emit("Volume", &vol.name, "Creating");
            let mut l = vol.labels.clone();
            l.insert(labels::VOLUME.into(), key.clone());
            l.insert(labels::PROJECT.into(), self.project.name.clone());
            l.insert(labels::VERSION.into(), labels::COMPOSE_VERSION.into());
            self.client
                .volume_create(&VolumeCreateRequest {
                    name: vol.name.clone(),
                    driver: vol.driver.clone().unwrap_or_else(|| "local".into()),
                    driver_opts: vol.driver_opts.clone(),
                    labels: l,
                })
                .doing(|| format!("creating volume {}", vol.name))?;
            self.emit("Volume", &vol.name, "Created");
        }
        Ok(())
    }

    /// Builds or pulls what `services` need; the image ID of each.
    pub fn ensure_images(
        &self,
        services: &BTreeSet<String>,
        policy: BuildPolicy,
        builder: Option<&dyn ImageBuilder>,
    ) -> Result<BTreeMap<String, String>> {
        let mut ids = BTreeMap::new();
        for name in services {
            let Some(s) = self.project.services.get(name) else {
                continue;
            };
            let image = s.image_name(&self.project.name);
            let mut id = image_id(self.client, &image)?;
            let pull_policy = s.pull_policy.as_deref().unwrap_or("missing");
            let build_now = s.build.is_some()
                && policy != BuildPolicy::Never
                && (policy == BuildPolicy::Always || id.is_none() || pull_policy == "build");
            if build_now {
                let Some(b) = builder else {
                    return Err(Error::Failed(format!(
                        "service {name:?} needs its image built and no builder is available"
                    )));
                };
                self.emit("Image", &image, "Building");
                b.build(self.project, s, &image)?;
                self.emit("Image", &image, "Built");
                id = image_id(self.client, &image)?;
            } else if pull_policy == "always" || (id.is_none() && pull_policy != "never") {
                if id.is_none() && s.build.is_some() {
                    return Err(Error::Failed(format!(
                        "image {image} for service {name:?} is missing: build it with `compose build` or `up --build`"
                    )));
                }
                self.emit("Image", &image, "Pulling");
                pull(self.client, &image)?;
                self.emit("Image", &image, "Pulled");
                id = image_id(self.client, &image)?;
            }
            match id {
                Some(id) => {
                    ids.insert(name.clone(), id);
                }
                None => {
                    return Err(Error::Failed(format!(
                        "no such image {image} for service {name:?} (pull_policy: {pull_policy})"
                    )))
                }
            }
        }
        Ok(ids)
    }

    /// Waits until `dep`'s containers meet `condition`; `waiter` names the
    /// service that needs it, for messages.
    fn wait_for(&self, dep: &str, condition: &str, required: bool) -> Result<()> {
        let list = self.containers(true, Some(false), &[dep.to_string()])?;
        if list.is_empty() {
            if required {
                return Err(Error::Dependency(format!(
                    "dependency failed to start: service {dep:?} has no container"
                )));
            }
            return Ok(());
        }
        for c in list {
            let cname = name(&c);
            match condition {
                model::SERVICE_HEALTHY => {
                    self.emit("Container", &cname, "Waiting");
                    loop {
                        let info = self
                            .client
                            .container_inspect(&c.id)
                            .doing(|| format!("inspecting {cname}"))?;
                        if info
                            .config
                            .healthcheck
                            .as_ref()
                            .and_then(|h| h.test.as_ref())
                            .is_none_or(|t| t.first().map(String::as_str) == Some("NONE"))
                        {
                            return Err(Error::Dependency(format!(
                                "dependency failed to start: container {cname} has no healthcheck configured"
                            )));
                        }
                        match info.state.health.as_ref().map(|h| h.status.as_str()) {
                            Some("healthy") => break,
                            Some("unhealthy") => {
                                return Err(Error::Dependency(format!(
                                    "dependency failed to start: container {cname} is unhealthy"
                                )))
                            }
                            _ => {}
                        }
                        if !info.state.running && !info.state.restarting {
                            return Err(Error::Dependency(format!(
                                "dependency failed to start: container {cname} exited ({})",
                                info.state.exit_code
                            )));
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    self.emit("Container", &cname, "Healthy");
                }
                model::SERVICE_COMPLETED => {
                    self.emit("Container", &cname, "Waiting");
                    let code = self.wait_exit(&c.id)?;
                    if code != 0 {
                        return Err(Error::Dependency(format!(
                            "service {dep:?} didn't complete successfully: exit {code}"
                        )));
                    }
                    self.emit("Container", &cname, "Exited");
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Blocks until the container is not running; its exit code.
    pub fn wait_exit(&self, id: &str) -> Result<i64> {
        self.wait_condition(id, "not-running")
    }

    /// `POST /containers/{id}/wait?condition=...` (`next-exit` for a
    /// container not started yet); the exit code.
    pub fn wait_condition(&self, id: &str, condition: &str) -> Result<i64> {
        let resp = self
            .client
            .container_wait(id, condition)
            .doing(|| format!("waiting for {id}"))?;
        let mut body = resp.body;
        let mut data = Vec::new();
        body.read_to_end(&mut data)
            .map_err(cais_client::Error::from)
            .doing(|| format!("waiting for {id}"))?;
        let w: cais_api::WaitResponse = serde_json::from_slice(&data)
            .map_err(cais_client::Error::from)
            .doing(|| format!("reading the exit status of {id}"))?;
        Ok(w.status_code)
    }

    /// The container ID each service's first replica has (for
    /// `network_mode: service:x` and `volumes_from`).
    fn service_containers(&self) -> Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for c in self.containers(true, Some(false), &[])? {
            out.entry(service_of(&c).to_string())
                .or_insert(c.id.clone());
        }
        Ok(out)
    }

    /// Creates one container of `service`; its ID. `adjust` edits the
    /// create body last (`run`'s attach flags).
    pub fn create_container(
        &self,
        service: &Service,
        new: NewContainer,
        adjust: &dyn Fn(&mut Value),
    ) -> Result<String> {
        let svc_containers = self.service_containers()?;
        let name = new.name.clone();
        let inst = Instance {
            project: self.project,
            service,
            number: new.number,
            name: new.name,
            image_id: new.image_id,
            slug: new.slug,
            replaces: new.replaces,
            service_containers: &svc_containers,
        };
        let mut body = create::request(&inst);
        adjust(&mut body);
        let created = self
            .client
            .container_create(Some(&name), &body)
            .doing(|| format!("creating container {name}"))?;
        Ok(created.id)
    }

    fn start(&self, id: &str, name: &str) -> Result<()> {
        self.emit("Container", name, "Starting");
        self.client
            .container_start(id)
            .doing(|| format!("starting container {name}"))?;
        self.emit("Container", name, "Started");
        Ok(())
    }

    fn remove(&self, id: &str, name: &str, timeout: Option<i64>) -> Result<()> {
        self.emit("Container", name, "Stopping");
        self.client
            .container_stop(id, timeout, None)
            .or_else(|e| {
                if e.status() == Some(304) {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .doing(|| format!("stopping container {name}"))?;
        self.emit("Container", name, "Stopped");
        self.emit("Container", name, "Removing");
        self.client
            .container_remove(id, true, false)
            .doing(|| format!("removing container {name}"))?;
        self.emit("Container", name, "Removed");
        Ok(())
    }

    /// Brings one service to its desired state; whether anything changed.
    fn converge(
        &self,
        name: &str,
        opts: &UpOptions,
        image_ids: &BTreeMap<String, String>,
    ) -> Result<bool> {
        let service = &self.project.services[name];
        let replicas = opts
            .scale
            .get(name)
            .copied()
            .unwrap_or_else(|| service.replicas());
        let hash = labels::config_hash(service);
        let found: Vec<Existing> = self
            .containers(true, Some(false), &[name.to_string()])?
            .iter()
            .map(existing)
            .collect();
        let actions = plan::service_actions(&found, replicas, &hash, opts.recreate);
        let image_id = image_ids.get(name).cloned().unwrap_or_default();
        let changed = Mutex::new(false);
        let results: Vec<Result<()>> = std::thread::scope(|scope| {
            let handles: Vec<_> = actions
                .iter()
                .map(|a| {
                    let image_id = &image_id;
                    let changed = &changed;
                    scope.spawn(move || -> Result<()> {
                        match a {
                            Action::Keep { container } => {
                                self.emit("Container", &container.name, "Running");
                            }
                            Action::Start { container } => {
                                if !opts.no_start {
                                    self.start(&container.id, &container.name)?;
                                    *changed.lock().expect("not poisoned") = true;
                                }
                            }
                            Action::Remove { container } => {
                                self.remove(&container.id, &container.name, opts.timeout)?;
                            }
                            Action::Create { number } => {
                                let cname = service.container_name.clone().unwrap_or_else(|| {
                                    labels::container_name(&self.project.name, name, *number)
                                });
                                self.emit("Container", &cname, "Creating");
                                let id = self.create_container(
                                    service,
                                    NewContainer {
                                        number: Some(*number),
                                        name: cname.clone(),
                                        image_id: image_id.clone(),
                                        ..NewContainer::default()
                                    },
                                    &|_| {},
                                )?;
                                self.emit("Container", &cname, "Created");
                                if !opts.no_start {
                                    self.start(&id, &cname)?;
                                }
                                *changed.lock().expect("not poisoned") = true;
                            }
                            Action::Recreate { old } => {
                                self.emit("Container", &old.name, "Recreate");
                                self.remove_quietly(old, opts.timeout)?;
                                let id = self.create_container(
                                    service,
                                    NewContainer {
                                        number: Some(old.number),
                                        name: old.name.clone(),
                                        image_id: image_id.clone(),
                                        slug: None,
                                        replaces: Some(old.id.clone()),
                                    },
                                    &|_| {},
                                )?;
                                self.emit("Container", &old.name, "Recreated");
                                if !opts.no_start {
                                    self.start(&id, &old.name)?;
                                }
                                *changed.lock().expect("not poisoned") = true;
                            }
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::Failed("a worker thread panicked".into())))
                })
                .collect()
        });
        for r in results {
            r?;
        }
        Ok(changed.into_inner().unwrap_or(false))
    }

    fn remove_quietly(&self, old: &Existing, timeout: Option<i64>) -> Result<()> {
        self.client
            .container_stop(&old.id, timeout, None)
            .or_else(|e| {
                if e.status() == Some(304) {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .doing(|| format!("stopping container {}", old.name))?;
        self.client
            .container_remove(&old.id, true, false)
            .doing(|| format!("removing container {}", old.name))
    }

    /// `up` / `create`: networks, volumes, images, then the services level
    /// by level; a service starts only once its dependencies meet their
    /// conditions, and a failed dependency leaves its dependents uncreated.
    pub fn up(&self, opts: &UpOptions, builder: Option<&dyn ImageBuilder>) -> Result<()> {
        for s in &opts.services {
            if !self.project.services.contains_key(s) {
                return Err(Error::NoSuchService(s.clone()));
            }
        }
        let targets = plan::with_dependencies(self.project, &opts.services, opts.no_deps);
        let orphans = self.orphans()?;
        if !orphans.is_empty() {
            if opts.remove_orphans {
                for o in &orphans {
                    self.remove(&o.id, &name(o), opts.timeout)?;
                }
            } else {
                let names: Vec<String> = orphans.iter().map(name).collect();
                self.emit(
                    "Orphans",
                    &names.join(", "),
                    "Found orphan containers for this project; run with --remove-orphans to clean them up",
                );
            }
        }
        self.ensure_networks(&targets)?;
        self.ensure_volumes(&targets)?;
        let image_ids = self.ensure_images(&targets, opts.build, builder)?;
        let changed: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
        for level in plan::levels(self.project, &targets) {
            let results: Vec<Result<()>> = std::thread::scope(|scope| {
                let handles: Vec<_> = level
                    .iter()
                    .map(|name| {
                        let changed = &changed;
                        let image_ids = &image_ids;
                        let targets = &targets;
                        scope.spawn(move || -> Result<()> {
                            let service = &self.project.services[name];
                            if !opts.no_start {
                                for (dep, d) in &service.depends_on {
                                    if !targets.contains(dep) && opts.no_deps {
                                        continue;
                                    }
                                    self.wait_for(dep, &d.condition, d.required)?;
                                }
                            }
                            let did = self.converge(name, opts, image_ids)?;
                            // `restart: true`: a dependency that changed
                            // restarts this service's running containers.
                            let restarted_dep = service.depends_on.iter().any(|(dep, d)| {
                                d.restart && changed.lock().expect("not poisoned").contains(dep)
                            });
                            if restarted_dep && !did && !opts.no_start {
                                for c in
                                    self.containers(false, Some(false), std::slice::from_ref(name))?
                                {
                                    let cname = self::name(&c);
                                    self.emit("Container", &cname, "Restarting");
                                    self.client
                                        .container_restart(&c.id, opts.timeout)
                                        .doing(|| format!("restarting {cname}"))?;
                                    self.emit("Container", &cname, "Restarted");
                                }
                            }
                            if did {
                                changed.lock().expect("not poisoned").insert(name.clone());
                            }
                            Ok(())
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(Error::Failed("a worker thread panicked".into()))
                        })
                    })
                    .collect()
            });
            // Every service of the level has finished; the first failure
            // stops the next levels from being created.
            for r in results {
                r?;
            }
        }
        if opts.wait && !opts.no_start {
            self.wait_running(&targets, opts.wait_timeout)?;
        }
        Ok(())
    }

    /// `--wait`: every container of `services` running, and healthy when
    /// it has a health check; one that exited fails.
    pub fn wait_running(
        &self,
        services: &BTreeSet<String>,
        timeout: Option<Duration>,
    ) -> Result<()> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let names: Vec<String> = services.iter().cloned().collect();
        let completed_ok: BTreeSet<&String> = self
            .project
            .services
            .values()
            .flat_map(|s| s.depends_on.iter())
            .filter(|(_, d)| d.condition == model::SERVICE_COMPLETED)
            .map(|(n, _)| n)
            .collect();
        for c in self.containers(true, Some(false), &names)? {
            let cname = name(&c);
            self.emit("Container", &cname, "Waiting");
            loop {
                let info = self
                    .client
                    .container_inspect(&c.id)
                    .doing(|| format!("inspecting {cname}"))?;
                let health = info.state.health.as_ref().map(|h| h.status.clone());
                let has_check = info
                    .config
                    .healthcheck
                    .as_ref()
                    .and_then(|h| h.test.as_ref())
                    .is_some_and(|t| t.first().map(String::as_str) != Some("NONE"));
                if !info.state.running {
                    let svc = c.labels.get(labels::SERVICE).cloned().unwrap_or_default();
                    if info.state.exit_code == 0 && completed_ok.contains(&svc) {
                        break;
                    }
                    return Err(Error::Failed(format!(
                        "container {cname} exited ({})",
                        info.state.exit_code
                    )));
                }
                if !has_check || health.as_deref() == Some("healthy") {
                    break;
                }
                if health.as_deref() == Some("unhealthy") {
                    return Err(Error::Failed(format!("container {cname} is unhealthy")));
                }
                if deadline.is_some_and(|d| Instant::now() > d) {
                    return Err(Error::Failed(format!(
                        "timeout waiting for container {cname} to be healthy"
                    )));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            self.emit("Container", &cname, "Healthy");
        }
        Ok(())
    }

    /// `down`: containers (dependents first), then networks, and with the
    /// options volumes and images.
    pub fn down(&self, opts: &DownOptions) -> Result<()> {
        let in_model = |c: &ContainerSummary| {
            self.project.services.is_empty()
                || self.project.services.contains_key(service_of(c))
                || self.project.disabled.contains_key(service_of(c))
        };
        let mut list = self.containers(true, None, &opts.services)?;
        let oneoff =
            |c: &ContainerSummary| c.labels.get(labels::ONEOFF).map(String::as_str) == Some("True");
        list.retain(|c| in_model(c) && !oneoff(c) || opts.remove_orphans);
        // Reverse dependency order: dependents stop before what they need.
        let all: BTreeSet<String> = self.project.services.keys().cloned().collect();
        let mut order: Vec<String> = plan::levels(self.project, &all)
            .into_iter()
            .flatten()
            .collect();
        order.reverse();
        let rank =
            |c: &ContainerSummary| order.iter().position(|s| s == service_of(c)).unwrap_or(0);
        let mut groups: BTreeMap<usize, Vec<ContainerSummary>> = BTreeMap::new();
        for c in list {
            groups.entry(rank(&c)).or_default().push(c);
        }
        for (_, group) in groups {
            let results: Vec<Result<()>> = std::thread::scope(|scope| {
                let handles: Vec<_> = group
                    .iter()
                    .map(|c| scope.spawn(move || self.remove(&c.id, &name(c), opts.timeout)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(Error::Failed("a worker thread panicked".into()))
                        })
                    })
                    .collect()
            });
            for r in results {
                r?;
            }
        }
        if !opts.services.is_empty() {
            return Ok(());
        }
        // Networks: the project's, found by label (also when no file was read).
        let nets = self
            .client
            .network_list(&[(
                "filters",
                label_filter(&[format!("{}={}", labels::PROJECT, self.project.name)]),
            )])
            .doing(|| "listing networks".to_string())?;
        for n in nets {
            let nname = n["Name"].as_str().unwrap_or_default().to_string();
            let external = self
                .project
                .networks
                .values()
                .any(|net| net.external && net.name == nname);
            if external {
                continue;
            }
            self.emit("Network", &nname, "Removing");
            match self.client.network_remove(&nname) {
                Ok(()) => self.emit("Network", &nname, "Removed"),
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Err(e).doing(|| format!("removing network {nname}")),
            }
        }
        if opts.volumes {
            let vols = self
                .client
                .volume_list(&[(
                    "filters",
                    label_filter(&[format!("{}={}", labels::PROJECT, self.project.name)]),
                )])
                .doing(|| "listing volumes".to_string())?;
            for v in vols.volumes {
                self.emit("Volume", &v.name, "Removing");
                match self.client.volume_remove(&v.name, true) {
                    Ok(()) => self.emit("Volume", &v.name, "Removed"),
                    Err(e) if e.status() == Some(404) => {}
                    Err(e) => return Err(e).doing(|| format!("removing volume {}", v.name)),
                }
            }
        }
        if let Some(rmi) = &opts.rmi {
            let mut images = BTreeSet::new();
            for s in self.project.services.values() {
                let built = s.image.is_none();
                if rmi == "all" || built {
                    images.insert(s.image_name(&self.project.name));
                }
            }
            for image in images {
                match self.client.image_remove(&image, false) {
                    Ok(_) => self.emit("Image", &image, "Removed"),
                    Err(e) if e.status() == Some(404) => {}
                    Err(e) => return Err(e).doing(|| format!("removing image {image}")),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_split_at_the_tag() {
        assert_eq!(split_tag("busybox"), ("busybox".into(), "latest".into()));
        assert_eq!(split_tag("busybox:1"), ("busybox".into(), "1".into()));
        assert_eq!(
            split_tag("localhost:5000/app"),
            ("localhost:5000/app".into(), "latest".into())
        );
        assert_eq!(
            split_tag("localhost:5000/app:v2"),
            ("localhost:5000/app".into(), "v2".into())
        );
    }

    #[test]
    fn label_filters_are_the_map_form() {
        assert_eq!(
            label_filter(&["a=b".into(), "c".into()]),
            r#"{"label":{"a=b":true,"c":true}}"#
        );
        assert_eq!(random_hex(12).len(), 12);
        assert_ne!(random_hex(12), random_hex(12));
    }
}
