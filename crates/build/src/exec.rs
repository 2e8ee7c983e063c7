//! The build driver: stages in order (only those the target needs), one
//! instruction at a time, each a cached step (see [`crate::cache`]) that
//! turns a state (image config + layers) into the next.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cais_image::oci::{self, Descriptor, History, ImageConfig, Parsed, RootFs};
use cais_image::{Digest, ImageStore, Platform, Reference};
use serde_json::{json, Map, Value};

use crate::cache;
use crate::changes;
use crate::context::{self, Inline, Root, WriteOptions};
use crate::dockerfile::ast::{self, Command, Instruction, Kind};
use crate::dockerfile::run_flags::{parse_run_flags, Mount, MountType, Network, RunFlags, Sharing};
use crate::dockerfile::{self, expand, expand_heredoc};
use crate::dockerignore::Ignore;
use crate::fsutil;
use crate::mounts::{self, CacheInit, CacheLock, SecretsDir};
use crate::run::{self, Overlay, RunSpec};
use crate::RunNetns;
use crate::{io_err, Built, Environment, Error, Options, Progress, Result};

/// Build args every build knows without an `ARG` (docker's predefined
/// proxy args): passed to `RUN`, never kept in the image or cache key.
const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An image state: what a step starts from and produces.
#[derive(Clone)]
struct State {
    config: ImageConfig,
    layers: Vec<Descriptor>,
    /// The cache key that produced it (chain of every step so far).
    key: String,
    /// Its manifest, once stored.
    manifest: Option<Digest>,
    /// Its config digest (image id), once stored: base images' config bytes
    /// are theirs, not a re-serialization.
    id: Option<Digest>,
}

impl State {
    /// The container config (`config.config`), an object.
    fn cc(&mut self) -> &mut Map<String, Value> {
        let c = self.config.config.get_or_insert_with(|| json!({}));
        if !c.is_object() {
            *c = json!({});
        }
        c.as_object_mut().expect("made an object above")
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.config.config.as_ref().and_then(|c| c.get(key))
    }

    fn env(&self) -> Vec<(String, String)> {
        self.get("Env")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                        (k.to_owned(), v.to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn str_field(&self, key: &str) -> String {
        self.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    fn image_id(&self) -> String {
        match &self.id {
            Some(d) => d.short().to_owned(),
            None => oci::to_json(&self.config)
                .map(|b| Digest::sha256(&b).short().to_owned())
                .unwrap_or_default(),
        }
    }
}

/// Where a `RUN --mount` takes its files from.
enum MountRoot {
    Context,
    State(Box<State>),
}

/// A `RUN --mount` checked against the build: its absolute target and
/// what identifies it in the step's cache key.
struct ResolvedMount {
    mount: Mount,
    target: String,
    root: MountRoot,
    identity: String,
}

/// The host side of a step's mounts, held while it runs: dropping it
/// unmounts the source overlays and releases the cache locks.
#[derive(Default)]
struct PreparedMounts {
    oci: Vec<Value>,
    env: Vec<String>,
    secret_env: bool,
    secret_files: Vec<PathBuf>,
    /// Mount points the runtime will create, to remove from the layer.
    stubs: Vec<PathBuf>,
    overlays: Vec<Overlay>,
    locks: Vec<CacheLock>,
}

/// Per-stage evaluation scope.
struct Scope {
    state: State,
    /// Declared ARGs with a value.
    args: BTreeMap<String, String>,
    /// Whether CMD was set in this stage (ENTRYPOINT resets an inherited one).
    cmd_set: bool,
}

impl Scope {
    /// ENV wins over ARG of the same name, as in docker.
    fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        let env = self.state.env();
        move |name: &str| {
            env.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .or_else(|| self.args.get(name).cloned())
        }
    }
}

struct Builder<'a> {
    env: &'a Environment,
    opts: &'a Options,
    progress: &'a mut dyn Progress,
    store: &'a ImageStore,
    escape: char,
    step: usize,
    total: usize,
    used_args: BTreeSet<String>,
    global_args: BTreeMap<String, String>,
    /// Final states of the stages built so far.
    stages: Vec<Option<State>>,
    names: Vec<Option<String>>,
    context: PathBuf,
    ignore: Ignore,
    /// Digests of context files hashed so far (see `context::Root`).
    hashes: std::cell::RefCell<std::collections::HashMap<PathBuf, String>>,
    scratch: PathBuf,
    counter: usize,
    /// The configs of `--cache-from` images, when given: only steps whose
    /// result is part of one of them come from the cache.
    cache_sources: Option<Vec<ImageConfig>>,
    /// The stage being built and the line of the instruction being run.
    current: usize,
    line: usize,
    /// The tmpfs for `RUN --mount=type=secret`, mounted on first use.
    secrets: SecretsDir,
}

/// Removes the build's scratch directory however the build ends.
struct ScratchGuard(PathBuf);

impl Drop for ScratchGuard {
    fn drop(&mut self) {
        // Removing a tree with a mount still in it would delete through the
        // mount; an overlay that failed to unmount is left for an operator.
        if !mounted_under(&self.0) {
            let _ = cais_image::unpack::remove_tree(&self.0);
        }
    }
}

/// Removes scratch directories (`build-<pid>-<n>`) of builds whose process
/// is gone (killed, or a daemon that crashed), unless something is still
/// mounted in them.
fn remove_dead_scratch(work_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(work_dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("build-")
            .and_then(|r| r.split('-').next())
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() && !mounted_under(&e.path()) {
            let _ = cais_image::unpack::remove_tree(&e.path());
        }
    }
}

/// Whether anything is mounted at or under `dir` (`/proc/self/mountinfo`,
/// field 5 is the mount point, with spaces as `\040`).
fn mounted_under(dir: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return true;
    };
    let dir = dir.to_string_lossy().replace(' ', "\\040");
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| m == dir || m.starts_with(&format!("{dir}/")))
}

pub(crate) fn build(
    env: &Environment,
    opts: &Options,
    progress: &mut dyn Progress,
) -> Result<Built> {
    let store: &ImageStore = &env.store;
    let text = match &opts.dockerfile_text {
        Some(t) => t.clone(),
        None => {
            let path = match &opts.dockerfile {
                Some(p) if p.is_absolute() => p.clone(),
                Some(p) => opts.context.join(p),
                None => opts.context.join("Dockerfile"),
            };
            std::fs::read_to_string(&path).map_err(|e| {
                Error::invalid(format!("failed to read Dockerfile {}: {e}", path.display()))
            })?
        }
    };
    let df = dockerfile::parse(&text)?;
    if !opts.context.is_dir() {
        return Err(Error::invalid(format!(
            "build context {} is not a directory",
            opts.context.display()
        )));
    }
    let ignore = match std::fs::read_to_string(opts.context.join(".dockerignore")) {
        Ok(t) => Ignore::parse(&t).map_err(|e| Error::invalid(format!(".dockerignore: {e}")))?,
        Err(_) => Ignore::default(),
    };
    // Tags are checked before anything runs: a bad one fails fast.
    let mut tags = Vec::new();
    for t in &opts.tags {
        let r: Reference = t
            .parse()
            .map_err(|e| Error::invalid(format!("invalid tag {t:?}: {e}")))?;
        if r.digest.is_some() {
            return Err(Error::invalid(format!(
                "invalid tag {t:?}: a tag cannot carry a digest"
            )));
        }
        tags.push(
            r.tagged_name()
                .unwrap_or_else(|| r.with_tag("latest").to_string()),
        );
    }

    remove_dead_scratch(&env.work_dir);
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let scratch = env.work_dir.join(format!(
        "build-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = cais_image::unpack::remove_tree(&scratch);
    std::fs::create_dir_all(&scratch).map_err(io_err("create build directory", &scratch))?;
    let _guard = ScratchGuard(scratch.clone());
    // GC must not collect what this build writes before it is pinned.
    let _lease = store.lease()?;

    let mut b = Builder {
        env,
        opts,
        progress,
        store,
        escape: df.escape,
        step: 0,
        total: 0,
        used_args: BTreeSet::new(),
        global_args: BTreeMap::new(),
        stages: vec![None; df.stages.len()],
        names: df.stages.iter().map(|s| s.name.clone()).collect(),
        context: opts.context.clone(),
        ignore,
        hashes: Default::default(),
        secrets: SecretsDir::new(scratch.join("secrets")),
        scratch,
        counter: 0,
        cache_sources: opts.cache_from.as_ref().map(|names| {
            names
                .iter()
                .filter_map(|n| {
                    let rec = store.resolve(n).ok()?;
                    store.config(&rec).ok()
                })
                .collect()
        }),
        current: 0,
        line: 0,
    };
    b.run(&df, &tags)
}

/// Prefixes an input error with its Dockerfile line.
fn at(line: usize) -> impl Fn(Error) -> Error {
    move |e| match e {
        Error::InvalidArgument { reason } if !reason.starts_with("Dockerfile:") => {
            Error::invalid(format!("Dockerfile:{line}: {reason}"))
        }
        e => e,
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

impl Builder<'_> {
    fn run(&mut self, df: &ast::Dockerfile, tags: &[String]) -> Result<Built> {
        for a in &df.global_args {
            let value = match self.opts.build_args.get(&a.name) {
                Some(v) => Some(v.clone()),
                None => match &a.default {
                    Some(d) => {
                        let g = &self.global_args;
                        Some(
                            expand(d, self.escape, &|n| g.get(n).cloned())
                                .map_err(Error::invalid)?,
                        )
                    }
                    None => None,
                },
            };
            self.used_args.insert(a.name.clone());
            if let Some(v) = value {
                self.global_args.insert(a.name.clone(), v);
            }
        }
        let target = self.target_index(df)?;
        let needed = self.needed(df, target)?;
        self.total = needed
            .iter()
            .map(|&i| 1 + df.stages[i].instructions.len())
            .sum::<usize>()
            + self.opts.labels.len();
        for &i in &needed {
            let state = self.stage(df, i)?;
            self.stages[i] = Some(state);
        }
        let mut state = self.stages[target]
            .clone()
            .ok_or_else(|| Error::invalid("the target stage was not built"))?;
        // `--label`: docker's classic builder appends one LABEL step per
        // label (sorted) to the final stage.
        for (k, v) in self.opts.labels.clone() {
            self.step += 1;
            let text = format!("LABEL {k}={v}");
            self.progress
                .step(&format!("Step {}/{} : {text}", self.step, self.total));
            state = self.meta(state, &format!("/bin/sh -c #(nop)  {text}"), |s| {
                let l = s.cc().entry("Labels").or_insert_with(|| json!({}));
                if !l.is_object() {
                    *l = json!({});
                }
                l[&k] = json!(v);
                Ok(())
            })?;
            self.progress.step(&format!(" ---> {}", state.image_id()));
        }
        if state.manifest.is_none() {
            // Trailing metadata steps: reuse the state an earlier build
            // stored under the same key, so an unchanged rebuild gives the
            // same image id.
            let key = state.key.clone();
            match self.lookup(&key) {
                Some(hit) => state = hit,
                None => self.commit(&mut state, &key)?,
            }
        }
        let manifest = state
            .manifest
            .clone()
            .ok_or_else(|| Error::invalid("the final state was not stored"))?;
        let unused: Vec<&String> = self
            .opts
            .build_args
            .keys()
            .filter(|k| !self.used_args.contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
            .collect();
        if !unused.is_empty() {
            let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
            self.progress.step(&format!(
                "[Warning] One or more build-args [{}] were not consumed",
                names.join(" ")
            ));
        }
        let platform = Platform {
            architecture: state.config.architecture.clone(),
            os: state.config.os.clone(),
            variant: state.config.variant.clone(),
            os_version: None,
        };
        let rec = self
            .store
            .check_image(&manifest, Some(oci::OCI_MANIFEST), &platform)?;
        let id = rec.config.clone();
        self.store.record(&[(rec, tags.to_vec())])?;
        self.progress.built(&id.to_string());
        self.progress
            .step(&format!("Successfully built {}", id.short()));
        for t in tags {
            self.progress.step(&format!(
                "Successfully tagged {}",
                cais_image::reference::familiar(t)
            ));
        }
        if let Some(p) = &self.opts.iidfile {
            std::fs::write(p, id.to_string()).map_err(io_err("write iidfile", p))?;
        }
        Ok(Built {
            image_id: id.to_string(),
            manifest: manifest.to_string(),
            tags: tags.to_vec(),
        })
    }

    fn target_index(&self, df: &ast::Dockerfile) -> Result<usize> {
        match &self.opts.target {
            None => Ok(df.stages.len() - 1),
            Some(t) => self.stage_ref(t, df.stages.len()).ok_or_else(|| {
                Error::invalid(format!("failed to reach build target {t} in Dockerfile"))
            }),
        }
    }

    /// A stage named `s` or with index `s`, among the first `before`.
    fn stage_ref(&self, s: &str, before: usize) -> Option<usize> {
        let lower = s.to_ascii_lowercase();
        if let Some(i) = self.names[..before]
            .iter()
            .position(|n| n.as_deref() == Some(lower.as_str()))
        {
            return Some(i);
        }
        s.parse::<usize>().ok().filter(|i| *i < before)
    }

    fn global_lookup(&self) -> impl Fn(&str) -> Option<String> {
        let g = self.global_args.clone();
        move |n| g.get(n).cloned()
    }

    /// The stages `target` depends on (FROM and COPY --from), and itself, in order.
    fn needed(&self, df: &ast::Dockerfile, target: usize) -> Result<Vec<usize>> {
        let mut need = BTreeSet::new();
        let mut stack = vec![target];
        while let Some(i) = stack.pop() {
            if !need.insert(i) {
                continue;
            }
            let st = &df.stages[i];
            let base = expand(&st.base, self.escape, &self.global_lookup())
                .map_err(|e| Error::invalid(format!("Dockerfile:{}: {e}", st.line)))?;
            if let Some(j) = self.stage_ref_by_name(&base, i) {
                stack.push(j);
            }
            for ins in &st.instructions {
                let froms: Vec<String> = match &ins.kind {
                    Kind::Copy(c) | Kind::Add(c) => c.from.iter().cloned().collect(),
                    // `RUN --mount=from=stage`: values as the stage list
                    // sees them (global args only).
                    Kind::Run { flags, .. } => {
                        let g = self.global_lookup();
                        let escape = self.escape;
                        let flags = dockerfile::run_flags::parse_run_flags(flags, &|w: &str| {
                            Ok(expand(w, escape, &g).unwrap_or_else(|_| w.to_owned()))
                        })
                        .unwrap_or_default();
                        flags.mounts.into_iter().filter_map(|m| m.from).collect()
                    }
                    _ => Vec::new(),
                };
                for f in froms {
                    let f = expand(&f, self.escape, &self.global_lookup())
                        .map_err(|e| Error::invalid(format!("Dockerfile:{}: {e}", ins.line)))?;
                    if let Some(j) = self.stage_ref(&f, i) {
                        stack.push(j);
                    }
                }
            }
        }
        Ok(need.into_iter().collect())
    }

    /// FROM refers to earlier stages by name only (an index would be
    /// ambiguous with image names like `0`... which are not valid anyway,
    /// but docker does the same).
    fn stage_ref_by_name(&self, s: &str, before: usize) -> Option<usize> {
        let lower = s.to_ascii_lowercase();
        self.names[..before]
            .iter()
            .position(|n| n.as_deref() == Some(lower.as_str()))
    }

    fn stage(&mut self, df: &ast::Dockerfile, i: usize) -> Result<State> {
        let st = &df.stages[i];
        self.current = i;
        self.line = st.line;
        self.step += 1;
        let from_text = match &st.name {
            Some(n) => format!("FROM {} AS {n}", st.base),
            None => format!("FROM {}", st.base),
        };
        self.progress
            .step(&format!("Step {}/{} : {from_text}", self.step, self.total));
        let base = expand(&st.base, self.escape, &self.global_lookup())
            .map_err(|e| Error::invalid(format!("Dockerfile:{}: {e}", st.line)))?;
        let state = if let Some(j) = self.stage_ref_by_name(&base, i) {
            self.stages[j]
                .clone()
                .ok_or_else(|| Error::invalid(format!("stage {base} was not built")))?
        } else if base == "scratch" {
            scratch_state()
        } else {
            self.image_state(&base, st.line)?
        };
        self.progress.step(&format!(" ---> {}", state.image_id()));
        let mut scope = Scope {
            state,
            args: BTreeMap::new(),
            cmd_set: false,
        };
        // ONBUILD triggers of the base run first; the new image has none.
        let triggers: Vec<String> = scope
            .state
            .get("OnBuild")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if !triggers.is_empty() {
            self.progress
                .step(&format!("# Executing {} build trigger(s)", triggers.len()));
            scope.state.cc().remove("OnBuild");
            for t in triggers {
                let parsed = dockerfile::parse(&format!("FROM scratch\n{t}\n")).map_err(|e| {
                    Error::invalid(format!(
                        "Dockerfile:{}: ONBUILD trigger {t:?}: {}",
                        st.line, e.message
                    ))
                })?;
                for mut ins in parsed.stages.into_iter().flat_map(|s| s.instructions) {
                    ins.line = st.line;
                    self.instruction(&mut scope, &ins).map_err(at(st.line))?;
                }
            }
        }
        for ins in &st.instructions {
            self.step += 1;
            self.progress.step(&format!(
                "Step {}/{} : {}",
                self.step,
                self.total,
                first_line(&ins.original)
            ));
            self.instruction(&mut scope, ins).map_err(at(ins.line))?;
            self.progress
                .step(&format!(" ---> {}", scope.state.image_id()));
        }
        Ok(scope.state)
    }

    /// A base image from the store, pulled when missing (or always with
    /// `--pull`) through the environment's pull function.
    fn image_state(&mut self, base: &str, line: usize) -> Result<State> {
        let reference: Reference = base.parse().map_err(|e| {
            Error::invalid(format!(
                "Dockerfile:{line}: invalid base image {base:?}: {e}"
            ))
        })?;
        let name = reference.to_string();
        if self.opts.pull {
            self.pull(&name)?;
        }
        let rec = match self.store.resolve(&name) {
            Ok(r) => r,
            Err(cais_image::Error::NotFound { .. })
                if self.env.pull.is_some() && !self.opts.pull =>
            {
                self.pull(&name)?;
                self.store.resolve(&name)?
            }
            Err(cais_image::Error::NotFound { .. }) => {
                return Err(Error::NotFound {
                    what: format!("Dockerfile:{line}: image {base}"),
                })
            }
            Err(e) => return Err(e.into()),
        };
        let config = self.store.config(&rec)?;
        let manifest = self.store.manifest(&rec)?;
        Ok(State {
            config,
            layers: oci_layers(manifest.layers),
            key: cache::child("", &[b"from", rec.manifest.to_string().as_bytes()]),
            id: Some(rec.config.clone()),
            manifest: Some(rec.manifest),
        })
    }

    fn pull(&mut self, name: &str) -> Result<()> {
        match &self.env.pull {
            Some(f) => f(name, &mut *self.progress),
            None => Ok(()),
        }
    }

    fn now(&self) -> String {
        match self.opts.source_date_epoch {
            Some(e) => cais_image::time::format_unix(e, 0),
            None => cais_image::time::now_rfc3339(),
        }
    }

    /// The state after a step that changed files (RUN, COPY, ADD): the
    /// upper dir becomes the next layer, with its history entry, stored as
    /// the cache entry `key`.
    fn commit_layer(
        &mut self,
        mut next: State,
        upper: &Path,
        created_by: String,
        key: &str,
    ) -> Result<State> {
        let (layer, diff_id) = run::commit_upper(self.store, upper, self.opts.source_date_epoch)?;
        let now = self.now();
        next.config.created = Some(now.clone());
        next.config.rootfs.diff_ids.push(diff_id);
        next.layers.push(layer);
        next.config.history.push(History {
            created: Some(now),
            created_by: Some(created_by),
            ..Default::default()
        });
        self.commit(&mut next, key)?;
        Ok(next)
    }

    /// Stores a state (config + manifest), unpacks its new layer into a
    /// snapshot, and pins it as the cache entry `key`.
    fn commit(&mut self, state: &mut State, key: &str) -> Result<()> {
        let body = oci::to_json(&state.config)?;
        let digest = Digest::sha256(&body);
        let manifest = self
            .store
            .put_image_with_config(&body, &digest, state.layers.clone())?;
        let platform = Platform {
            architecture: state.config.architecture.clone(),
            os: state.config.os.clone(),
            variant: state.config.variant.clone(),
            os_version: None,
        };
        self.store
            .check_image(&manifest, Some(oci::OCI_MANIFEST), &platform)?;
        self.store.pin(cache::GROUP, key, &manifest)?;
        state.key = key.to_owned();
        state.manifest = Some(manifest);
        state.id = Some(digest);
        Ok(())
    }

    /// The cached state for `key`, unless `--no-cache`; a hit is
    /// announced as docker does (" ---> Using cache").
    fn cached(&mut self, key: &str) -> Option<State> {
        let hit = self.lookup(key)?;
        self.progress.step(" ---> Using cache");
        Some(hit)
    }

    fn lookup(&self, key: &str) -> Option<State> {
        if self.opts.no_cache {
            return None;
        }
        let manifest = self.store.pinned(cache::GROUP, key)?;
        let Ok(Parsed::Manifest(m)) = self.store.read_manifest(&manifest, None) else {
            return None;
        };
        let body = self.store.content().read(&m.config.digest).ok()?;
        let config = ImageConfig::parse(&body, &m.config.digest).ok()?;
        if let Some(sources) = &self.cache_sources {
            if !sources.iter().any(|image| is_part_of(&config, image)) {
                return None;
            }
        }
        // Snapshots are kept by the pin; this re-unpacks one that is gone.
        let platform = Platform {
            architecture: config.architecture.clone(),
            os: config.os.clone(),
            variant: None,
            os_version: None,
        };
        self.store
            .check_image(&manifest, Some(oci::OCI_MANIFEST), &platform)
            .ok()?;
        Some(State {
            config,
            layers: m.layers,
            key: key.to_owned(),
            manifest: Some(manifest),
            id: Some(m.config.digest),
        })
    }

    /// A metadata-only step: `f` edits the config; history gets an empty
    /// layer entry.
    fn meta(
        &mut self,
        state: State,
        created_by: &str,
        f: impl FnOnce(&mut State) -> Result<()>,
    ) -> Result<State> {
        let key = cache::child(&state.key, &[b"meta", created_by.as_bytes()]);
        if let Some(hit) = self.cached(&key) {
            return Ok(hit);
        }
        let mut next = state;
        f(&mut next)?;
        self.intermediate(&key);
        let now = self.now();
        next.config.created = Some(now.clone());
        next.config.history.push(History {
            created: Some(now),
            created_by: Some(created_by.to_owned()),
            empty_layer: true,
            ..Default::default()
        });
        // Stored like every step (as docker's classic builder commits
        // each): a rebuild then reports every step as cached.
        self.commit(&mut next, &key)?;
        Ok(next)
    }

    fn x(&self, scope: &Scope, word: &str) -> Result<String> {
        expand(word, self.escape, &scope.lookup()).map_err(Error::invalid)
    }

    fn instruction(&mut self, scope: &mut Scope, ins: &Instruction) -> Result<()> {
        self.line = ins.line;
        let nop = |s: &str| format!("/bin/sh -c #(nop)  {s}");
        let state = scope.state.clone();
        let next = match &ins.kind {
            Kind::Run {
                command,
                heredocs,
                flags,
            } => {
                let flags = {
                    let lookup = scope.lookup();
                    let escape = self.escape;
                    parse_run_flags(flags, &|w: &str| expand(w, escape, &lookup))
                        .map_err(Error::invalid)?
                };
                self.run_step(scope, command, heredocs, &flags)?
            }
            Kind::Copy(c) => self.copy_step(scope, c, false)?,
            Kind::Add(c) => self.copy_step(scope, c, true)?,
            Kind::Cmd(c) | Kind::Entrypoint(c) => {
                let is_cmd = matches!(ins.kind, Kind::Cmd(_));
                let field = if is_cmd { "Cmd" } else { "Entrypoint" };
                let (argv, _) = self.argv(&state, c);
                let shown = go_quoted_list(&argv);
                let reset_cmd = !is_cmd && !scope.cmd_set;
                scope.cmd_set |= is_cmd;
                self.meta(
                    state,
                    &nop(&format!("{} {shown}", field.to_uppercase())),
                    |s| {
                        let cc = s.cc();
                        cc.insert(field.into(), json!(argv));
                        // docker: an ENTRYPOINT drops a CMD inherited from the base.
                        if reset_cmd {
                            cc.insert("Cmd".into(), Value::Null);
                        }
                        Ok(())
                    },
                )?
            }
            Kind::Env(pairs) => {
                let mut kv = Vec::new();
                for (k, v) in pairs {
                    kv.push((self.x(scope, k)?, self.x(scope, v)?));
                }
                let text: Vec<String> = kv.iter().map(|(k, v)| format!("{k}={v}")).collect();
                self.meta(state, &nop(&format!("ENV {}", text.join(" "))), |s| {
                    changes::merge_env(s.cc(), kv);
                    Ok(())
                })?
            }
            Kind::Label(pairs) => {
                let mut kv = Vec::new();
                for (k, v) in pairs {
                    kv.push((self.x(scope, k)?, self.x(scope, v)?));
                }
                let text: Vec<String> = kv.iter().map(|(k, v)| format!("{k}={v}")).collect();
                self.meta(state, &nop(&format!("LABEL {}", text.join(" "))), |s| {
                    changes::set_labels(s.cc(), kv);
                    Ok(())
                })?
            }
            Kind::Arg(args) => {
                let mut shown = Vec::new();
                for a in args {
                    self.used_args.insert(a.name.clone());
                    let value = match self.opts.build_args.get(&a.name) {
                        Some(v) => Some(v.clone()),
                        None => match &a.default {
                            Some(d) => Some(self.x(scope, d)?),
                            None => self.global_args.get(&a.name).cloned(),
                        },
                    };
                    match &value {
                        Some(v) => {
                            shown.push(format!("{}={v}", a.name));
                            scope.args.insert(a.name.clone(), v.clone());
                        }
                        None => shown.push(a.name.clone()),
                    }
                }
                self.meta(state, &nop(&format!("ARG {}", shown.join(" "))), |_| Ok(()))?
            }
            Kind::Workdir(w) => {
                let w = self.x(scope, w)?;
                let cur = state.str_field("WorkingDir");
                let joined = if w.starts_with('/') {
                    w.clone()
                } else {
                    format!("{}/{w}", if cur.is_empty() { "/" } else { &cur })
                };
                let clean = format!("/{}", context::clean(&joined)?.display());
                self.workdir_step(state, &clean)?
            }
            Kind::User(u) => {
                let u = self.x(scope, u)?;
                self.meta(state, &nop(&format!("USER {u}")), |s| {
                    s.cc().insert("User".into(), json!(u));
                    Ok(())
                })?
            }
            Kind::Expose(ports) => {
                let mut list = Vec::new();
                let mut shown = Vec::new();
                for p in ports {
                    for w in dockerfile::expand_words(p, self.escape, &scope.lookup())
                        .map_err(Error::invalid)?
                    {
                        list.push(changes::exposed_port(&w)?);
                        shown.push(w);
                    }
                }
                // History shows the ports as written, sorted, as docker.
                shown.sort();
                self.meta(state, &nop(&format!("EXPOSE {}", shown.join(" "))), |s| {
                    changes::add_exposed(s.cc(), list);
                    Ok(())
                })?
            }
            Kind::Volume(vols) => {
                let mut list = Vec::new();
                for v in vols {
                    let v = self.x(scope, v)?;
                    if v.is_empty() {
                        return Err(Error::invalid(
                            "VOLUME specified can not be an empty string",
                        ));
                    }
                    list.push(v);
                }
                self.meta(state, &nop(&format!("VOLUME [{}]", list.join(" "))), |s| {
                    changes::add_volumes(s.cc(), list)
                })?
            }
            Kind::Shell(sh) => {
                let sh = sh.clone();
                let shown = serde_json::to_string(&sh).unwrap_or_default();
                self.meta(state, &nop(&format!("SHELL {shown}")), |s| {
                    s.cc().insert("Shell".into(), json!(sh));
                    Ok(())
                })?
            }
            Kind::StopSignal(sig) => {
                let sig = self.x(scope, sig)?;
                self.meta(state, &nop(&format!("STOPSIGNAL {sig}")), |s| {
                    s.cc().insert("StopSignal".into(), json!(sig));
                    Ok(())
                })?
            }
            Kind::Healthcheck(h) => {
                let hc = changes::healthcheck(h, &|w| self.x(scope, w))?;
                let shown = serde_json::to_string(&hc).unwrap_or_default();
                self.meta(state, &nop(&format!("HEALTHCHECK {shown}")), |s| {
                    s.cc().insert("Healthcheck".into(), Value::Object(hc));
                    Ok(())
                })?
            }
            Kind::Onbuild(t) => {
                let t = t.clone();
                self.meta(state, &nop(&format!("ONBUILD {t}")), |s| {
                    changes::push_onbuild(s.cc(), t);
                    Ok(())
                })?
            }
            Kind::Maintainer(m) => {
                let m = self.x(scope, m)?;
                self.meta(state, &nop(&format!("MAINTAINER {m}")), |s| {
                    s.config.author = Some(m);
                    Ok(())
                })?
            }
        };
        scope.state = next;
        Ok(())
    }

    /// The lines docker's classic builder prints for a step it executes
    /// in a (here notional) intermediate container; its output format is
    /// what docker clients and scripts parse.
    fn intermediate(&mut self, key: &str) {
        let id = self.next_id(key);
        let short = &id[..12];
        self.progress.step(&format!(" ---> Running in {short}"));
        self.progress
            .step(&format!("Removing intermediate container {short}"));
    }

    /// WORKDIR sets the working directory and, like docker, creates it
    /// when the image does not have it (then the step has a layer).
    fn workdir_step(&mut self, state: State, dir: &str) -> Result<State> {
        let created_by = format!("/bin/sh -c #(nop) WORKDIR {dir}");
        let key = cache::child(&state.key, &[b"workdir", created_by.as_bytes()]);
        if let Some(hit) = self.cached(&key) {
            return Ok(hit);
        }
        self.intermediate(&key);
        let scratch = self.scratch.join(format!("workdir-{}", self.counter));
        self.counter += 1;
        let mut overlay = Overlay::mount(self.store, scratch, &state.config.rootfs.diff_ids, None)?;
        let inside = cais_runtime::rootfs::secure_join(&overlay.rootfs, Path::new(dir))
            .map_err(io_err("resolve working directory", Path::new(dir)))?;
        let create = !inside.is_dir();
        if create {
            std::fs::create_dir_all(&inside)
                .map_err(io_err("create working directory", &inside))?;
        }
        overlay.unmount()?;
        let mut next = state;
        let now = self.now();
        if create {
            let (layer, diff_id) =
                run::commit_upper(self.store, &overlay.upper, self.opts.source_date_epoch)?;
            next.config.rootfs.diff_ids.push(diff_id);
            next.layers.push(layer);
        }
        drop(overlay);
        next.cc().insert("WorkingDir".into(), json!(dir));
        next.config.created = Some(now.clone());
        next.config.history.push(History {
            created: Some(now),
            created_by: Some(created_by),
            empty_layer: !create,
            ..Default::default()
        });
        self.commit(&mut next, &key)?;
        Ok(next)
    }

    /// A command's argv: the exec form as is, the shell form through SHELL.
    fn argv(&self, state: &State, c: &Command) -> (Vec<String>, bool) {
        match c {
            Command::Exec(v) => (v.clone(), false),
            Command::Shell(s) => {
                let mut argv = shell(state);
                argv.push(s.clone());
                (argv, true)
            }
        }
    }

    fn next_id(&mut self, key: &str) -> String {
        self.counter += 1;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        cache::child(
            key,
            &[
                std::process::id().to_string().as_bytes(),
                self.counter.to_string().as_bytes(),
                nanos.to_string().as_bytes(),
            ],
        )
    }

    fn run_step(
        &mut self,
        scope: &mut Scope,
        command: &Command,
        heredocs: &[ast::Heredoc],
        flags: &RunFlags,
    ) -> Result<State> {
        let state = scope.state.clone();
        let args: Vec<String> = match (command, heredocs) {
            (Command::Shell(s), [h])
                if s.trim()
                    .trim_start_matches("<<")
                    .trim_start_matches('-')
                    .trim_matches(['"', '\''])
                    == h.name =>
            {
                // `RUN <<EOF` alone: the body is the script.
                let mut a = shell(&state);
                a.push(h.body.clone());
                a
            }
            (Command::Shell(s), hs) if !hs.is_empty() => {
                // Heredocs feed the command: hand the shell the whole text.
                let mut script = s.clone();
                for h in hs {
                    script.push('\n');
                    script.push_str(&h.body);
                    script.push_str(&h.name);
                }
                script.push('\n');
                let mut a = shell(&state);
                a.push(script);
                a
            }
            (c, _) => self.argv(&state, c).0,
        };
        // Build args in scope (not shadowed by ENV) reach the command as
        // environment variables and are part of its identity.
        let env_now = state.env();
        let arg_env: Vec<(String, String)> = scope
            .args
            .iter()
            .filter(|(k, _)| !env_now.iter().any(|(e, _)| e == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut created_by = args.join(" ");
        if !arg_env.is_empty() {
            let kv: Vec<String> = arg_env.iter().map(|(k, v)| format!("{k}={v}")).collect();
            created_by = format!("|{} {} {created_by}", kv.len(), kv.join(" "));
        }
        let mut cwd = state.str_field("WorkingDir");
        if cwd.is_empty() {
            cwd = "/".into();
        }
        // The mounts' identities (never a secret's value, never a cache
        // mount's content) and the network mode are part of the key.
        let mounts = self.resolve_mounts(flags, &cwd)?;
        let mut parts: Vec<&[u8]> = vec![b"run", created_by.as_bytes()];
        if flags.network == Network::None {
            parts.push(b"network=none");
        }
        parts.extend(mounts.iter().map(|m| m.identity.as_bytes()));
        let key = cache::child(&state.key, &parts);
        if let Some(hit) = self.cached(&key) {
            return Ok(hit);
        }
        let mut env: Vec<String> = env_now.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if !env_now.iter().any(|(k, _)| k == "PATH") {
            env.insert(0, format!("PATH={DEFAULT_PATH}"));
        }
        env.extend(arg_env.iter().map(|(k, v)| format!("{k}={v}")));
        for p in PROXY_ARGS {
            if let Some(v) = self.opts.build_args.get(p) {
                env.push(format!("{p}={v}"));
            }
        }

        let id = self.next_id(&key);
        let short = id[..12].to_owned();
        self.progress.step(&format!(" ---> Running in {short}"));
        let dir = self.scratch.join(format!("run-{short}"));
        let diff_ids = state.config.rootfs.diff_ids.clone();
        let init = self.scratch.join(format!("init-{short}"));
        let layer_dirs: Vec<PathBuf> = diff_ids
            .iter()
            .map(|d| {
                cais_image::unpack::snapshot_dir(&self.store.root().join("snapshots"), d).join("fs")
            })
            .collect();
        run::init_layer(&init, &layer_dirs)?;
        let _init_guard = ScratchGuard(init.clone());
        let mut overlay = Overlay::mount(self.store, dir.clone(), &diff_ids, Some(&init))?;
        let user = state.str_field("User");
        let (uid, gid) = fsutil::resolve_user(&overlay.rootfs, &user)?;
        let inside = cais_runtime::rootfs::secure_join(&overlay.rootfs, Path::new(&cwd))
            .map_err(io_err("resolve working directory", Path::new(&cwd)))?;
        fsutil::mkdir_p(&overlay.rootfs, &inside)?;
        let prepared = self.prepare_mounts(&mounts, &overlay.rootfs, &short)?;
        env.extend(prepared.env.iter().cloned());
        // A bundle whose environment holds a secret stays off the disk.
        let bundle = if prepared.secret_env {
            self.secrets.dir(&format!("bundle-{short}"))?
        } else {
            dir.join("bundle")
        };
        std::fs::create_dir_all(&bundle).map_err(io_err("create bundle", &bundle))?;
        let etc = run::etc_files(&dir, &self.opts.network)?;
        // `RUN --network` wins over the build's network (`--network`).
        let netns = match flags.network {
            Network::None => RunNetns::Isolated,
            Network::Host => RunNetns::Host,
            Network::Default => self.opts.network.namespace.clone(),
        };
        let spec = run::spec(
            &id,
            &overlay.rootfs,
            &RunSpec {
                args: &args,
                env: &env,
                cwd: &cwd,
                uid,
                gid,
                mounts: prepared.oci.clone(),
                netns: &netns,
                etc: &etc,
            },
        );
        let cfg = bundle.join("config.json");
        let code = std::fs::write(&cfg, serde_json::to_vec_pretty(&spec).unwrap_or_default())
            .map_err(io_err("write", &cfg))
            .and_then(|()| {
                run::run_container(
                    &self.env.runtime_binary,
                    &self.scratch.join("runtime"),
                    &bundle,
                    &id,
                    self.progress,
                )
            });
        if prepared.secret_env {
            self.secrets.remove(&bundle);
        }
        for f in &prepared.secret_files {
            self.secrets.remove(f);
        }
        let stubs = prepared.stubs.clone();
        // Source overlays unmounted, cache locks released.
        drop(prepared);
        let code = code?;
        overlay.unmount()?;
        mounts::remove_stubs(&overlay.upper, &stubs);
        self.progress
            .step(&format!("Removing intermediate container {short}"));
        if code != 0 {
            return Err(Error::Failed {
                step: self.step,
                command: args.join(" "),
                code,
            });
        }
        self.commit_layer(state, &overlay.upper, created_by, &key)
    }

    /// Where a `--mount`'s `from` points: the context (none given), an
    /// earlier stage, or an image.
    fn mount_root(&mut self, from: Option<&str>) -> Result<MountRoot> {
        let Some(f) = from else {
            return Ok(MountRoot::Context);
        };
        Ok(match self.stage_ref(f, self.current) {
            Some(j) => MountRoot::State(Box::new(self.stages[j].clone().ok_or_else(|| {
                Error::invalid(format!("stage {f} is not built before this one"))
            })?)),
            None => MountRoot::State(Box::new(self.image_state(f, self.line)?)),
        })
    }

    /// Checks a `RUN`'s mounts and gives each its identity for the key.
    fn resolve_mounts(&mut self, flags: &RunFlags, cwd: &str) -> Result<Vec<ResolvedMount>> {
        let mut out: Vec<ResolvedMount> = Vec::new();
        for m in &flags.mounts {
            let target = if m.target.is_empty() {
                String::new()
            } else {
                let joined = if m.target.starts_with('/') {
                    m.target.clone()
                } else {
                    format!("{}/{}", cwd.trim_end_matches('/'), m.target)
                };
                format!("/{}", context::clean(&joined)?.display())
            };
            if target == "/" {
                return Err(Error::invalid("a mount cannot cover the root directory"));
            }
            let root = match m.kind {
                MountType::Bind | MountType::Cache => self.mount_root(m.from.as_deref())?,
                _ => MountRoot::Context,
            };
            let source = m.source.clone().unwrap_or_else(|| ".".into());
            let root_id = match (&root, m.kind, &m.from) {
                (MountRoot::State(s), _, _) => format!("state:{}", s.key),
                (MountRoot::Context, MountType::Bind, _) => {
                    // The content of what is bound, as COPY hashes it.
                    let root = Root {
                        dir: &self.context,
                        ignore: Some(&self.ignore),
                        hashes: Some(&self.hashes),
                    };
                    let plan =
                        context::plan(&root, std::slice::from_ref(&source), Vec::new(), "/", false)
                            .map_err(|e| match e {
                                Error::InvalidArgument { reason } => Error::invalid(format!(
                                    "RUN --mount=type=bind: source {source}: {reason}"
                                )),
                                e => e,
                            })?;
                    format!("context:{}", plan.summary)
                }
                (MountRoot::Context, _, _) => String::new(),
            };
            if m.kind == MountType::Cache
                && m.sharing == Sharing::Locked
                && out
                    .iter()
                    .any(|o| o.mount.kind == MountType::Cache && o.mount.id == m.id)
            {
                return Err(Error::invalid(format!(
                    "cache {:?} is mounted twice with sharing=locked: the step would wait for itself",
                    m.id.as_deref().unwrap_or_default()
                )));
            }
            let identity = format!(
                "{:?}|target={target}|ro={}|id={}|sharing={:?}|mode={:?}|uid={:?}|gid={:?}|size={:?}|env={}|required={}|from={root_id}|source={source}",
                m.kind,
                m.readonly,
                m.id.as_deref().unwrap_or_default(),
                m.sharing,
                m.mode,
                m.uid,
                m.gid,
                m.size,
                m.env.as_deref().unwrap_or_default(),
                m.required,
            );
            out.push(ResolvedMount {
                mount: m.clone(),
                target,
                root,
                identity,
            });
        }
        Ok(out)
    }

    /// Makes the host side of each mount: what the OCI spec binds, the
    /// secret environment, and the mount points the runtime will create.
    fn prepare_mounts(
        &mut self,
        mounts: &[ResolvedMount],
        rootfs: &Path,
        short: &str,
    ) -> Result<PreparedMounts> {
        let mut p = PreparedMounts::default();
        for (i, r) in mounts.iter().enumerate() {
            let m = &r.mount;
            let source = m.source.clone().unwrap_or_default();
            let source = Path::new(source.trim_start_matches('/'));
            // The root `from` names, on the host; rw binds and stages get
            // an overlay whose upper directory is thrown away.
            let root_dir = |b: &mut Self, p: &mut PreparedMounts, rw: bool| -> Result<PathBuf> {
                let dir = b.scratch.join(format!("mount-{short}-{i}"));
                match &r.root {
                    MountRoot::Context if !rw => Ok(b.context.clone()),
                    MountRoot::Context => {
                        let o = Overlay::mount_dirs(dir, vec![b.context.clone()])?;
                        let root = o.rootfs.clone();
                        p.overlays.push(o);
                        Ok(root)
                    }
                    MountRoot::State(s) => {
                        let o = Overlay::mount(b.store, dir, &s.config.rootfs.diff_ids, None)?;
                        let root = o.rootfs.clone();
                        p.overlays.push(o);
                        Ok(root)
                    }
                }
            };
            let join = |root: &Path| {
                cais_runtime::rootfs::secure_join(root, source)
                    .map_err(io_err("resolve mount source", source))
            };
            let bind = |host: &Path, ro: bool| {
                json!({"destination": r.target, "type": "bind", "source": host,
                       "options": ["rbind", "rprivate", if ro { "ro" } else { "rw" }]})
            };
            match m.kind {
                MountType::Bind => {
                    let root = root_dir(self, &mut p, !m.readonly)?;
                    let host = join(&root)?;
                    if !host.exists() {
                        return Err(Error::invalid(format!(
                            "RUN --mount=type=bind: source {} not found",
                            source.display()
                        )));
                    }
                    p.oci.push(bind(&host, m.readonly));
                }
                MountType::Cache => {
                    let seed = match (&m.from, &r.root) {
                        (Some(_), _) => {
                            let root = root_dir(self, &mut p, false)?;
                            Some(join(&root)?)
                        }
                        _ => None,
                    };
                    let init = CacheInit {
                        mode: m.mode.unwrap_or(0o755),
                        uid: m.uid.unwrap_or(0),
                        gid: m.gid.unwrap_or(0),
                        seed: seed.as_deref(),
                    };
                    let id = m.id.clone().unwrap_or_else(|| r.target.clone());
                    let (dir, lock) = mounts::open_cache(self.store, &id, m.sharing, &init)?;
                    p.locks.push(lock);
                    p.oci.push(bind(&dir, m.readonly));
                }
                MountType::Tmpfs => {
                    let mut options = vec![
                        "nosuid".to_owned(),
                        "nodev".to_owned(),
                        "mode=1777".to_owned(),
                    ];
                    if let Some(size) = m.size {
                        options.push(format!("size={size}"));
                    }
                    p.oci.push(json!({"destination": r.target, "type": "tmpfs", "source": "tmpfs", "options": options}));
                }
                MountType::Secret => {
                    let id = m.id.clone().unwrap_or_default();
                    let value = self
                        .opts
                        .secrets
                        .get(&id)
                        .map_err(|e| Error::invalid(format!("reading secret {id}: {e}")))?;
                    let Some(value) = value else {
                        if m.required {
                            return Err(Error::invalid(format!(
                                "secret {id} not found: give it with --secret id={id},src=FILE"
                            )));
                        }
                        continue;
                    };
                    if let Some(name) = &m.env {
                        p.env
                            .push(format!("{name}={}", String::from_utf8_lossy(&value)));
                        p.secret_env = true;
                    }
                    if !r.target.is_empty() {
                        let file = self.secrets.file(
                            &value,
                            m.mode.unwrap_or(0o400),
                            m.uid.unwrap_or(0),
                            m.gid.unwrap_or(0),
                        )?;
                        p.oci.push(bind(&file, true));
                        p.secret_files.push(file);
                    }
                }
                MountType::Ssh => {
                    return Err(Error::invalid("RUN --mount=type=ssh is not supported"))
                }
            }
            if !r.target.is_empty() {
                p.stubs
                    .extend(mounts::missing_parts(rootfs, Path::new(&r.target)));
            }
        }
        Ok(p)
    }

    fn copy_step(&mut self, scope: &mut Scope, c: &ast::Copy, add: bool) -> Result<State> {
        let state = scope.state.clone();
        let verb = if add { "ADD" } else { "COPY" };
        let mut dest = self.x(scope, &c.dest)?;
        // History names the destination as written (docker does).
        let dest_written = dest.clone();
        if dest.is_empty() {
            return Err(Error::invalid(format!("{verb} requires a destination")));
        }
        if !dest.starts_with('/') {
            let wd = state.str_field("WorkingDir");
            let trailing = dest.ends_with('/');
            dest = format!("{}/{dest}", wd.trim_end_matches('/'));
            if trailing && !dest.ends_with('/') {
                dest.push('/');
            }
        }
        let chown = c.chown.as_ref().map(|s| self.x(scope, s)).transpose()?;
        let chmod = match &c.chmod {
            Some(m) => Some(fsutil::parse_mode(&self.x(scope, m)?)?),
            None => None,
        };
        let mut sources = Vec::new();
        let mut inline = Vec::new();
        for s in &c.sources {
            if let Some(h) = c.heredocs.iter().find(|h| {
                h.name == *s
                    || s.trim_start_matches("<<")
                        .trim_start_matches('-')
                        .trim_matches(['"', '\''])
                        == h.name
            }) {
                let body = if h.expand {
                    expand_heredoc(&h.body, self.escape, &scope.lookup()).map_err(Error::invalid)?
                } else {
                    h.body.clone()
                };
                inline.push(Inline::Heredoc(h.name.clone(), body.into_bytes()));
                continue;
            }
            let s = self.x(scope, s)?;
            if add && (s.starts_with("http://") || s.starts_with("https://")) {
                inline.push(download(&s)?);
            } else if s.starts_with("http://") || s.starts_with("https://") {
                return Err(Error::invalid(format!("COPY does not support URLs: {s}")));
            } else {
                sources.push(s);
            }
        }

        // The source root: the context, or another stage's (or image's) root.
        let mut from_overlay = None;
        if let Some(f) = &c.from {
            let f = self.x(scope, f)?;
            let from_state = match self.stage_ref(&f, self.current) {
                Some(j) => self.stages[j].clone().ok_or_else(|| {
                    Error::invalid(format!("stage {f} is not built before this one"))
                })?,
                None => self.image_state(&f, self.line)?,
            };
            let dir = self.scratch.join(format!("from-{}", self.counter));
            self.counter += 1;
            from_overlay = Some(Overlay::mount(
                self.store,
                dir,
                &from_state.config.rootfs.diff_ids,
                None,
            )?);
        }
        let plan = {
            let root = match &from_overlay {
                Some(o) => Root {
                    dir: &o.rootfs,
                    ignore: None,
                    hashes: None,
                },
                None => Root {
                    dir: &self.context,
                    ignore: Some(&self.ignore),
                    hashes: Some(&self.hashes),
                },
            };
            context::plan(&root, &sources, inline, &dest, add).map_err(|e| match e {
                Error::InvalidArgument { reason } => {
                    Error::invalid(format!("{verb} failed: {reason}"))
                }
                e => e,
            })?
        };
        let created_by = format!(
            "/bin/sh -c #(nop) {verb} {} in {dest_written} ",
            plan.summary
        );
        let key = cache::child(
            &state.key,
            &[
                verb.as_bytes(),
                created_by.as_bytes(),
                chown.clone().unwrap_or_default().as_bytes(),
                chmod.map(|m| m.to_string()).unwrap_or_default().as_bytes(),
            ],
        );
        if let Some(hit) = self.cached(&key) {
            return Ok(hit);
        }
        let dir = self.scratch.join(format!("copy-{}", self.counter));
        self.counter += 1;
        let mut overlay = Overlay::mount(self.store, dir, &state.config.rootfs.diff_ids, None)?;
        // COPY writes root-owned files unless --chown says otherwise; names
        // resolve against the destination stage's passwd and group.
        let (uid, gid) = match &chown {
            Some(u) => fsutil::resolve_user(&overlay.rootfs, u)?,
            None => (0, 0),
        };
        context::write(
            &overlay.rootfs,
            &dest,
            &plan,
            &WriteOptions { uid, gid, chmod },
        )?;
        overlay.unmount()?;
        drop(from_overlay);
        self.commit_layer(state, &overlay.upper, created_by, &key)
    }
}

/// `["a" "b"]`: how docker's history prints a command (Go's `%q` of a
/// string slice).
fn go_quoted_list(argv: &[String]) -> String {
    let items: Vec<String> = argv
        .iter()
        .map(|a| serde_json::to_string(a).unwrap_or_default())
        .collect();
    format!("[{}]", items.join(" "))
}

/// Whether a step's result `state` is part of `image`: its layers and its
/// history a prefix of the image's (the build that made the image went
/// through this state).
fn is_part_of(state: &ImageConfig, image: &ImageConfig) -> bool {
    let history = |c: &ImageConfig| -> Vec<serde_json::Value> {
        c.history
            .iter()
            .map(|h| serde_json::to_value(h).unwrap_or_default())
            .collect()
    };
    let (mine, theirs) = (history(state), history(image));
    image.rootfs.diff_ids.starts_with(&state.rootfs.diff_ids)
        && !mine.is_empty()
        && theirs.starts_with(&mine)
}

/// SHELL of the state, default `/bin/sh -c`.
fn shell(state: &State) -> Vec<String> {
    state
        .get("Shell")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
}

/// Layer descriptors under OCI media types (same bytes), as our manifests
/// are OCI manifests.
fn oci_layers(layers: Vec<Descriptor>) -> Vec<Descriptor> {
    layers
        .into_iter()
        .map(|mut l| {
            if let Some(c) = oci::Compression::from_media_type(&l.media_type) {
                l.media_type = c.oci_media_type().to_owned();
            }
            l
        })
        .collect()
}

fn scratch_state() -> State {
    let p = cais_image::archive::host_platform();
    State {
        config: ImageConfig {
            architecture: p.architecture,
            os: p.os,
            config: Some(json!({"Env": [format!("PATH={DEFAULT_PATH}")]})),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: Vec::new(),
            },
            ..Default::default()
        },
        layers: Vec::new(),
        key: cache::child("", &[b"scratch"]),
        manifest: None,
        id: None,
    }
}

/// Downloads an ADD URL; the file is named after the URL's last path
/// segment.
fn download(url: &str) -> Result<Inline> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let name = path
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty() && !path.ends_with("//"))
        .unwrap_or("");
    let name = if name.is_empty() || path.matches('/').count() < 3 {
        "index.html".to_owned()
    } else {
        name.to_owned()
    };
    let resp = ureq::get(url)
        .call()
        .map_err(|e| Error::invalid(format!("ADD failed: downloading {url}: {e}")))?;
    let mut body = Vec::new();
    use std::io::Read;
    resp.into_reader()
        .take(1 << 32)
        .read_to_end(&mut body)
        .map_err(|e| Error::invalid(format!("ADD failed: downloading {url}: {e}")))?;
    Ok(Inline::Url(name, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_of_dead_builds_is_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let live = dir.path().join(format!("build-{}-0", std::process::id()));
        // Pids are below 2^22 on Linux: this one cannot exist.
        let dead = dir.path().join("build-99999999-3");
        let other = dir.path().join("unrelated");
        for d in [&live, &dead, &other] {
            std::fs::create_dir_all(d.join("x")).expect("mkdir");
        }
        remove_dead_scratch(dir.path());
        assert!(live.exists() && other.exists());
        assert!(!dead.exists());
    }

    #[test]
    fn history_lists_look_like_gos() {
        let v = vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            "echo \"hi\"".to_owned(),
        ];
        assert_eq!(go_quoted_list(&v), r#"["/bin/sh" "-c" "echo \"hi\""]"#);
    }
}
