//! Dockerfile builds: a pure parser (`dockerfile`, `dockerignore`) and, on
//! top of the image store and the runtime, an executor with a layer cache.
//!
//! [`build`] runs a Dockerfile against a context directory and records the
//! result in an [`ImageStore`]: every `RUN` runs in a container (the `cais`
//! binary's `runtime run`), every `COPY`/`ADD` is written into an overlay
//! of the stage's layers, and the changed files become a layer. Each step's
//! result is kept in the build cache (under the store's root) keyed by its
//! parent state and the instruction, so an unchanged rebuild runs nothing.
//!
//! Module map: `dockerfile` parses (pure, words kept as written: `lines`,
//! `words`, `instructions`, `ast`) and expands variables (`expand`);
//! `dockerignore` and `pattern` match. `exec` drives stages (only those
//! `--target` needs) one instruction at a time: each step maps a state
//! (image config + layers) to the next and is stored as a config + manifest
//! *pinned* in the image store under its cache key (`cache`: parent key +
//! expanded instruction + build args + a content hash for COPY/ADD), so GC
//! keeps it without it being an image and a rebuild reuses it. `RUN`
//! (`run`) mounts an overlay of the layers plus an init layer of mount
//! points and runs `cais runtime run` as a child (host network, docker's
//! capabilities and seccomp); `COPY`/`ADD` (`context`, with `fsutil`) write
//! into such an overlay; the upper dir becomes a gzip layer
//! (`snapshot::diff_with`, mtimes clamped to `SOURCE_DATE_EPOCH`). Only the
//! last step records image and tags. A `RUN` runs in the network
//! [`RunNetwork`] names, its stdout and stderr told apart. `changes` holds
//! the config edits of the metadata instructions, shared with
//! [`apply_changes`] (`docker commit -c`, `docker import -c`).

pub mod dockerfile;
pub mod dockerignore;

mod cache;
mod changes;
mod context;
mod exec;
mod fsutil;
mod mounts;
mod pattern;
mod run;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

pub use cais_image::ImageStore;
pub use changes::apply_changes;

/// What to build, in `docker build`'s terms.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The build context: a directory on this host.
    pub context: PathBuf,
    /// The Dockerfile; default `<context>/Dockerfile`, a relative path is
    /// relative to the context. Ignored when `dockerfile_text` is given.
    pub dockerfile: Option<PathBuf>,
    /// The Dockerfile itself, when it arrives separately from the context.
    pub dockerfile_text: Option<String>,
    /// `-t`: references to tag the result with (normalized by the store).
    pub tags: Vec<String>,
    /// `--target`: the stage to stop at (name or index).
    pub target: Option<String>,
    /// `--build-arg`.
    pub build_args: BTreeMap<String, String>,
    /// `--label`: added to the final image's labels.
    pub labels: BTreeMap<String, String>,
    /// `--no-cache`: execute every step.
    pub no_cache: bool,
    /// `--pull`: fetch base images again through [`Environment::pull`].
    pub pull: bool,
    /// `SOURCE_DATE_EPOCH`: timestamps of the config, the history and file
    /// mtimes are clamped to it, so the same inputs give the same digests.
    pub source_date_epoch: Option<i64>,
    /// `--iidfile`: where to write the image id.
    pub iidfile: Option<PathBuf>,
    /// `--secret`: what `RUN --mount=type=secret` mounts, by id.
    pub secrets: Secrets,
    /// `--platform` (`linux/arm64`): the platform base images are picked
    /// for from an index and `TARGETPLATFORM` names; default the host's.
    pub platform: Option<String>,
    /// `--cache-from`: when given, a step is taken from the cache only if
    /// its result is part of one of these images (its layers and history
    /// a prefix of the image's), as docker's classic builder does; the
    /// rest of the local cache is not used. Names missing from the store
    /// give nothing.
    pub cache_from: Option<Vec<String>>,
    /// How `RUN` steps reach the network.
    pub network: RunNetwork,
}

/// Looks a secret up by id: `Ok(None)` when the build has no such secret.
pub type SecretFn = Arc<dyn Fn(&str) -> Result<Option<Vec<u8>>, String> + Send + Sync>;

/// The secrets a build may mount. Their values are never logged, never
/// part of a cache key, and never written to a layer or the history.
#[derive(Clone, Default)]
pub struct Secrets(Option<SecretFn>);

impl Secrets {
    /// Secrets held in memory (`cais build --secret`).
    pub fn from_map(map: BTreeMap<String, Vec<u8>>) -> Secrets {
        Secrets(Some(Arc::new(move |id: &str| Ok(map.get(id).cloned()))))
    }

    /// Secrets fetched when a step needs them (a BuildKit session's).
    pub fn from_fn(f: SecretFn) -> Secrets {
        Secrets(Some(f))
    }

    pub(crate) fn get(&self, id: &str) -> Result<Option<Vec<u8>>, String> {
        match &self.0 {
            Some(f) => f(id),
            None => Ok(None),
        }
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Secrets(<redacted>)"
        } else {
            "Secrets(none)"
        })
    }
}

/// The network of `RUN` steps (`docker build --network`, `--add-host`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunNetwork {
    pub namespace: RunNetns,
    /// `/etc/hosts` for `RUN`; the host's file when `None`.
    pub hosts: Option<String>,
    /// `/etc/resolv.conf` for `RUN`; the host's file when `None`.
    pub resolv_conf: Option<String>,
}

/// The network namespace `RUN` steps run in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RunNetns {
    /// The host's (the default: `RUN` commonly fetches packages).
    #[default]
    Host,
    /// One of their own with only the loopback interface (`--network none`).
    Isolated,
    /// An existing one (a user network's, prepared by the caller).
    Join(PathBuf),
}

/// Where the build reports what it does: docker's legacy builder lines
/// (`Step 1/5 : FROM busybox`, ` ---> Using cache`, ` ---> 1a2b3c4d5e6f`,
/// `Successfully built ...`, `Successfully tagged x:latest`) through
/// [`step`](Progress::step), and the output of `RUN` commands through
/// [`output`](Progress::output).
pub trait Progress {
    /// One status line, without its newline.
    fn step(&mut self, text: &str);
    /// Bytes a `RUN` command wrote to its standard output.
    fn output(&mut self, bytes: &[u8]);
    /// Bytes a `RUN` command wrote to its standard error (by default, as
    /// output).
    fn error_output(&mut self, bytes: &[u8]) {
        self.output(bytes)
    }
    /// The image is built and recorded: its id, before the `Successfully
    /// built` line.
    fn built(&mut self, _image_id: &str) {}
}

/// A [`Progress`] that writes everything to a writer (stdout in the CLI).
pub struct WriterProgress<W: std::io::Write>(pub W);

impl<W: std::io::Write> Progress for WriterProgress<W> {
    fn step(&mut self, text: &str) {
        let _ = writeln!(self.0, "{text}");
        let _ = self.0.flush();
    }
    fn output(&mut self, bytes: &[u8]) {
        let _ = self.0.write_all(bytes);
        let _ = self.0.flush();
    }
}

/// Fetches a base image into the store by reference (`busybox:latest`).
pub type PullFn = Box<dyn Fn(&str, &mut dyn Progress) -> Result<()> + Send + Sync>;

/// What the build runs on.
pub struct Environment {
    pub store: Arc<ImageStore>,
    /// The `cais` binary: `RUN` steps run `cais runtime run`.
    pub runtime_binary: PathBuf,
    /// Scratch space: bundles, overlay mounts, runtime state. Created if
    /// missing; what a build puts there is removed when it ends.
    pub work_dir: PathBuf,
    /// Fetches a base image missing from the store (and every base with
    /// [`Options::pull`]). Without it a missing base is [`Error::NotFound`].
    pub pull: Option<PullFn>,
}

/// The result of a successful build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// The config digest (`sha256:...`), the image id the store reports.
    pub image_id: String,
    /// The manifest digest.
    pub manifest: String,
    /// The tags set, normalized (`docker.io/library/x:latest`).
    pub tags: Vec<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Build errors. `InvalidArgument` is the caller's input (Dockerfile,
/// context, options), `NotFound` a base image that is nowhere, `Failed` a
/// `RUN` that exited non-zero; the rest are this host's failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad Dockerfile, context or option; names the line when there is one.
    #[error("{reason}")]
    InvalidArgument { reason: String },
    #[error("{what} not found")]
    NotFound { what: String },
    /// A `RUN` command exited with `code` (docker's wording).
    #[error("The command '{command}' returned a non-zero code: {code}")]
    Failed {
        /// The step number (1-based over the whole Dockerfile).
        step: usize,
        command: String,
        code: i32,
    },
    #[error("{context} {path}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("running the runtime: {reason}")]
    Runtime { reason: String },
    #[error(transparent)]
    Image(#[from] cais_image::Error),
    /// Pulling a base image failed (the pull function's own error).
    #[error("pulling {reference}: {reason}")]
    Pull { reference: String, reason: String },
}

impl Error {
    pub(crate) fn invalid(reason: impl Into<String>) -> Error {
        Error::InvalidArgument {
            reason: reason.into(),
        }
    }
}

impl From<dockerfile::ParseError> for Error {
    fn from(e: dockerfile::ParseError) -> Error {
        Error::invalid(e.to_string())
    }
}

/// Wraps an io::Error with what was being done to which path.
pub(crate) fn io_err(
    context: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io {
        context,
        path,
        source,
    }
}

/// Builds the Dockerfile of `opts` in `opts.context`. On success the image
/// is recorded and tagged with every `opts.tags`; on failure no tag is
/// created or moved (cached steps stay, as docker keeps them).
pub fn build(env: &Environment, opts: &Options, progress: &mut dyn Progress) -> Result<Built> {
    exec::build(env, opts, progress)
}

/// `docker builder prune`: forgets every cached step, removes the
/// `RUN --mount=type=cache` directories no build is using, and collects
/// what only the cache kept. Returns how many cache entries (steps and
/// cache mounts) were removed and the bytes freed (GC's part is 0 when it
/// had to wait for a running ingestion).
pub fn prune_cache(store: &ImageStore) -> Result<(usize, u64)> {
    let n = store.unpin_group(cache::GROUP)?;
    let (mounts, mount_bytes) = mounts::prune_caches(store)?;
    let gc = store.gc()?;
    Ok((n + mounts, gc.bytes + mount_bytes))
}
