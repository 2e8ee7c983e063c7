//! Dockerfile builds for `POST /build` (see `http::handlers::build` for
//! the protocol): the context tar unpacked into a private directory under
//! the daemon's root through `cais_image::unpack::extract`, the same
//! contained extraction layers get (no `..`, no writing through symlinks,
//! no device nodes), then `.dockerignore` applied and the Dockerfile read
//! from inside it (a symlinked Dockerfile must stay inside the context
//! too). The executor (`cais_build::build`) does the rest; base images it
//! lacks are pulled through the engine's own pull, with the credentials
//! the request carried. Everything the build says goes to a channel as
//! `Msg`s, which the handler turns into docker's JSON lines.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cais_image::store::display_name;
use cais_image::{ImageStore, Reference};
use cais_registry::client::Credentials;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::events::Events;
use crate::timing::Steps;

/// A build request's parameters, decoded and checked.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Params {
    pub tags: Vec<String>,
    /// Path of the Dockerfile inside the context, `None` for the default.
    pub dockerfile: Option<String>,
    pub build_args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub target: Option<String>,
    pub no_cache: bool,
    pub pull: bool,
    pub quiet: bool,
    pub source_date_epoch: Option<i64>,
    /// `cachefrom`: images whose steps alone may be reused.
    pub cache_from: Option<Vec<String>>,
    /// `networkmode`: where `RUN` steps run.
    pub network: BuildNetwork,
    /// `extrahosts`: `name:ip` lines added to `RUN`'s /etc/hosts.
    pub extra_hosts: Vec<String>,
}

/// `networkmode` of a build.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) enum BuildNetwork {
    /// `""`, `default`, `bridge` or `host`: the host's network (the
    /// builder's default here).
    #[default]
    Host,
    /// `none`: loopback only.
    None,
    /// A user-defined network, by name or id.
    Network(String),
}

pub(crate) fn invalid(text: impl Into<String>) -> Error {
    Error::InvalidArgument(text.into())
}

/// What a build needs of the engine.
pub(crate) struct Context {
    /// The daemon's data root: contexts are unpacked under `engine/build`.
    pub root: PathBuf,
    /// The `cais` binary, for `RUN` steps.
    pub binary: PathBuf,
    pub images: Arc<ImageStore>,
    pub events: Arc<Events>,
    /// Where `RUN` steps run (a user network's sandbox already made).
    pub network: cais_build::RunNetwork,
}

/// The compression of a context tar, from its first bytes.
fn compression(head: &[u8]) -> Result<cais_image::oci::Compression> {
    use cais_image::oci::Compression;
    Ok(match head {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
        [b'B', b'Z', b'h', ..] => {
            return Err(invalid(
                "bzip2 build contexts are not supported: send a plain or gzip tar",
            ))
        }
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => {
            return Err(invalid(
                "xz build contexts are not supported: send a plain or gzip tar",
            ))
        }
        _ => Compression::None,
    })
}

/// A tar stream that may end early: when the docker CLI adds a Dockerfile
/// from outside the context to the tar, it stops after the last entry's
/// data, without its padding or the end-of-archive blocks (Go's tar reader
/// takes that as the end). At EOF this pads to the block boundary and adds
/// the two zero blocks, so the entries that did arrive are read whole.
struct Padded<R> {
    inner: R,
    read: u64,
    /// Zero bytes still to hand out once `inner` has ended.
    zeros: Option<u64>,
}

impl<R: std::io::Read> std::io::Read for Padded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.zeros.is_none() {
            let n = self.inner.read(buf)?;
            if n > 0 || buf.is_empty() {
                self.read += n as u64;
                return Ok(n);
            }
            self.zeros = Some((512 - self.read % 512) % 512 + 1024);
        }
        let left = self.zeros.unwrap_or(0);
        let n = (buf.len() as u64).min(left) as usize;
        buf[..n].fill(0);
        self.zeros = Some(left - n as u64);
        Ok(n)
    }
}

/// Unpacks the context tar in `file` into `dest` (contained: see the
/// module docs).
fn unpack_context(file: std::fs::File, dest: &Path) -> Result<()> {
    let mut reader = BufReader::new(file);
    let head = reader
        .fill_buf()
        .map_err(Error::io("reading the build context for", dest))?;
    if head.is_empty() {
        // An empty body: an empty context (`docker build - < Dockerfile`
        // sends the Dockerfile as the context instead).
        return Ok(());
    }
    let kind = compression(head)?;
    let stream = cais_image::unpack::decompress(reader, kind)
        .map_err(|e| invalid(format!("the build context: {}", crate::error::chain(&e))))?;
    // The digest only names the archive in error messages.
    let label = cais_image::Digest::sha256(b"build context");
    let stream = Padded {
        inner: stream,
        read: 0,
        zeros: None,
    };
    cais_image::unpack::extract(stream, dest, &label).map_err(|e| {
        invalid(format!(
            "unpacking the build context: {}",
            crate::error::chain(&e)
        ))
    })?;
    Ok(())
}

/// Checks a context-relative path: no absolute paths, no `..`.
fn relative_inside(path: &str) -> Result<PathBuf> {
    let p = Path::new(path.trim_start_matches("./"));
    if p.is_absolute()
        || p.components().any(|c| {
            !matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        })
    {
        return Err(invalid(format!(
            "the Dockerfile ({path}) must be within the build context"
        )));
    }
    Ok(p.to_path_buf())
}

/// Reads the Dockerfile from the unpacked context: `name`, or
/// `Dockerfile` then `dockerfile`. Symlinks may not lead outside.
fn read_dockerfile(context: &Path, name: Option<&str>) -> Result<(String, String)> {
    let candidates: Vec<String> = match name {
        Some(n) => vec![n.to_string()],
        None => vec!["Dockerfile".into(), "dockerfile".into()],
    };
    let root = context
        .canonicalize()
        .map_err(Error::io("resolving the build context", context))?;
    for c in &candidates {
        let rel = relative_inside(c)?;
        let Ok(real) = context.join(&rel).canonicalize() else {
            continue;
        };
        if !real.starts_with(&root) {
            return Err(invalid(format!(
                "the Dockerfile ({c}) must be within the build context"
            )));
        }
        if !real.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&real)
            .map_err(|e| invalid(format!("reading the Dockerfile ({c}): {e}")))?;
        return Ok((rel.to_string_lossy().into_owned(), text));
    }
    Err(invalid(format!(
        "Cannot locate specified Dockerfile: {}",
        candidates[0]
    )))
}

/// Removes what `.dockerignore` excludes from the unpacked context. The
/// docker CLI filters before sending; other clients may not, and the
/// result must not depend on the client.
fn apply_dockerignore(context: &Path) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(context.join(".dockerignore")) else {
        return Ok(());
    };
    let ignore = cais_build::dockerignore::Ignore::parse(&text)
        .map_err(|e| invalid(format!(".dockerignore: {e}")))?;
    prune(context, "", &ignore)
}

fn prune(dir: &Path, rel: &str, ignore: &cais_build::dockerignore::Ignore) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(Error::io("reading the build context", dir))?;
    for entry in entries {
        let entry = entry.map_err(Error::io("reading the build context", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        // file_type does not follow symlinks: a link to a directory is a link.
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let excluded = ignore.excluded(&path);
        if is_dir && (!excluded || ignore.may_include_under(&path)) {
            prune(&entry.path(), &path, ignore)?;
        } else if excluded {
            let r = if is_dir {
                std::fs::remove_dir_all(entry.path())
            } else {
                std::fs::remove_file(entry.path())
            };
            r.map_err(Error::io("applying .dockerignore to", entry.path()))?;
        }
    }
    Ok(())
}

/// What the build thread tells the response.
pub(crate) enum Msg {
    Line(serde_json::Value),
    Failed(Error, Option<i32>),
}

/// Build progress as JSON lines (`{"stream": ...}`), a `RUN`'s stderr
/// between the terminal colour codes docker puts around it, the image id
/// as `{"aux": {"ID": ...}}` before `Successfully built`. In quiet mode
/// nothing is sent, but it is kept for the error message, as docker does.
struct Stream {
    tx: mpsc::Sender<Msg>,
    quiet: bool,
    kept: String,
    /// The end of an incomplete UTF-8 sequence from the last output chunk.
    partial: Vec<u8>,
}

impl Stream {
    fn send(&mut self, text: String) {
        if self.quiet {
            self.kept.push_str(&text);
        } else {
            let _ = self
                .tx
                .blocking_send(Msg::Line(serde_json::json!({ "stream": text })));
        }
    }
}

/// What docker wraps a `RUN`'s stderr in (bright red, then reset).
const STDERR_START: &str = "\u{1b}[91m";
const STDERR_END: &str = "\u{1b}[0m";

impl cais_build::Progress for Stream {
    fn step(&mut self, text: &str) {
        self.send(format!("{text}\n"));
    }

    fn output(&mut self, bytes: &[u8]) {
        if let Some(text) = self.whole_text(bytes) {
            self.send(text);
        }
    }

    fn error_output(&mut self, bytes: &[u8]) {
        if let Some(text) = self.whole_text(bytes) {
            self.send(format!("{STDERR_START}{text}{STDERR_END}"));
        }
    }

    fn built(&mut self, image_id: &str) {
        if !self.quiet {
            let _ = self
                .tx
                .blocking_send(Msg::Line(serde_json::json!({"aux": {"ID": image_id}})));
        }
    }
}

impl Stream {
    /// `bytes` after what an earlier chunk left of an incomplete UTF-8
    /// sequence, up to an incomplete one at its end (kept for the next).
    fn whole_text(&mut self, bytes: &[u8]) -> Option<String> {
        let mut data = std::mem::take(&mut self.partial);
        data.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&data) {
            Ok(_) => data.len(),
            // An incomplete sequence at the end waits for the next chunk.
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => data.len(),
        };
        self.partial = data.split_off(valid);
        (!data.is_empty()).then(|| String::from_utf8_lossy(&data).into_owned())
    }
}

/// A build's failure and, for a failed `RUN`, its exit code. In quiet
/// mode the output held back explains a failure of the build's input or
/// of a `RUN`, so it leads the message, as docker shows it.
fn failure(e: cais_build::Error, kept: &str) -> (Error, Option<i32>) {
    let code = match &e {
        cais_build::Error::Failed { code, .. } => Some(*code),
        _ => None,
    };
    let explained = matches!(
        e,
        cais_build::Error::InvalidArgument { .. } | cais_build::Error::Failed { .. }
    );
    if explained && !kept.is_empty() {
        let message = format!("{kept}{}", crate::error::chain(&e));
        return (Error::InvalidArgument(message), code);
    }
    (Error::Build(e), code)
}

/// The whole build, on a blocking thread; everything it says goes to `tx`.
pub(crate) fn run(
    ctx: Context,
    params: Params,
    body: std::fs::File,
    credentials: BTreeMap<String, Credentials>,
    tx: mpsc::Sender<Msg>,
) {
    let fail = |tx: &mpsc::Sender<Msg>, e: Error, code: Option<i32>| {
        let _ = tx.blocking_send(Msg::Failed(e, code));
    };
    let mut steps = Steps::new("build", "");
    let base = ctx.root.join("engine/build");
    let dir = match std::fs::create_dir_all(&base).and_then(|()| {
        tempfile::Builder::new()
            .prefix("context-")
            .tempdir_in(&base)
    }) {
        Ok(d) => d,
        Err(e) => {
            return fail(
                &tx,
                Error::io("creating a build context directory in", &base)(e),
                None,
            )
        }
    };
    let context = dir.path().join("context");
    let prepared = std::fs::create_dir(&context)
        .map_err(Error::io("creating", &context))
        .and_then(|()| unpack_context(body, &context))
        .and_then(|()| read_dockerfile(&context, params.dockerfile.as_deref()))
        .and_then(|(name, text)| apply_dockerignore(&context).map(|()| (name, text)));
    let (dockerfile, text) = match prepared {
        Ok(x) => x,
        Err(e) => return fail(&tx, e, None),
    };
    steps.step("context");
    let quiet = params.quiet;
    let pull_tx = tx.clone();
    let pull = pull_fn(
        ctx.images.clone(),
        ctx.events.clone(),
        move |registry: &str| credentials.get(registry).cloned(),
        move |v| {
            if !quiet {
                let _ = pull_tx.blocking_send(Msg::Line(v));
            }
        },
    );
    let env = cais_build::Environment {
        store: ctx.images.clone(),
        runtime_binary: ctx.binary.clone(),
        work_dir: dir.path().join("work"),
        pull: Some(pull),
    };
    let opts = cais_build::Options {
        context: context.clone(),
        dockerfile: Some(PathBuf::from(dockerfile)),
        dockerfile_text: Some(text),
        tags: params.tags.clone(),
        target: params.target.clone(),
        build_args: params.build_args.clone(),
        labels: params.labels.clone(),
        no_cache: params.no_cache,
        pull: params.pull,
        source_date_epoch: params.source_date_epoch,
        iidfile: None,
        cache_from: params.cache_from.clone(),
        network: ctx.network.clone(),
        ..Default::default()
    };
    let mut stream = Stream {
        tx: tx.clone(),
        quiet: params.quiet,
        kept: String::new(),
        partial: Vec::new(),
    };
    let built = cais_build::build(&env, &opts, &mut stream);
    steps.step("build");
    match built {
        Ok(built) => {
            if params.quiet {
                let _ = tx.blocking_send(Msg::Line(
                    serde_json::json!({"stream": format!("{}\n", built.image_id)}),
                ));
            }
            for t in &built.tags {
                ctx.events.emit(
                    "image",
                    "tag",
                    &built.image_id,
                    BTreeMap::from([("name".to_string(), display_name(t))]),
                );
            }
        }
        Err(e) => {
            let (err, code) = failure(e, &stream.kept);
            fail(&tx, err, code);
        }
    }
    // The response ends when the last sender goes: end it before the
    // context is removed, which the client need not wait for.
    drop((stream, env, tx));
    steps.step("respond");
    drop(dir);
    steps.step("cleanup");
}

/// The executor's pull: the engine's own pull into the store, with the
/// credentials `credentials` gives for a registry and docker's progress
/// lines to `line`.
fn pull_fn(
    images: Arc<ImageStore>,
    events: Arc<Events>,
    credentials: impl Fn(&str) -> Option<Credentials> + Send + Sync + 'static,
    line: impl Fn(serde_json::Value) + Send + Sync + 'static,
) -> cais_build::PullFn {
    let line = Arc::new(line);
    Box::new(
        move |name: &str, _progress: &mut dyn cais_build::Progress| {
            let reference: Reference =
                name.parse()
                    .map_err(|e: cais_image::oci::Error| cais_build::Error::Pull {
                        reference: name.to_string(),
                        reason: crate::error::chain(&e),
                    })?;
            let failed = |reason: String| cais_build::Error::Pull {
                reference: name.to_string(),
                reason,
            };
            let options = cais_registry::client::Options {
                credentials: credentials(&reference.domain),
                ..Default::default()
            };
            let client = cais_registry::client::Client::new(&reference.domain, &options)
                .map_err(|e| failed(crate::error::chain(&e)))?;
            let line = line.clone();
            let progress = Arc::new(crate::images::JsonProgress::new(true, move |v| line(v)));
            crate::images::pull_with(
                &images,
                &events,
                &client,
                &reference,
                cais_image::Platform::default(),
                progress,
            )
            .map_err(|e| failed(crate::error::chain(&e)))
        },
    )
}

/// What BuildKit's protocol (`cais_buildkit`, on `POST /grpc` and `POST
/// /session`) builds with: the engine's store and runtime binary, scratch
/// under `<root>/engine/build`, pulls through the engine with the
/// session's credentials, tags set in one store update with their events.
pub(crate) struct BuildKitHost {
    pub root: PathBuf,
    pub binary: PathBuf,
    pub images: Arc<ImageStore>,
    pub events: Arc<Events>,
}

impl cais_buildkit::Host for BuildKitHost {
    fn scratch_dir(&self) -> PathBuf {
        self.root.join("engine/build")
    }

    fn environment(
        &self,
        work_dir: PathBuf,
        credentials: cais_buildkit::CredentialsFn,
    ) -> cais_build::Environment {
        let pull = pull_fn(
            self.images.clone(),
            self.events.clone(),
            move |registry: &str| {
                credentials(registry).map(|(username, password)| Credentials { username, password })
            },
            |_| {},
        );
        cais_build::Environment {
            store: self.images.clone(),
            runtime_binary: self.binary.clone(),
            work_dir,
            pull: Some(pull),
        }
    }

    fn normalize_tags(&self, names: &[String]) -> Result<Vec<String>, cais_buildkit::Error> {
        names
            .iter()
            .map(|t| {
                let r: Reference = t.parse().map_err(|e: cais_image::oci::Error| {
                    cais_buildkit::Error::InvalidArgument {
                        reason: format!("invalid tag {t:?}: {}", crate::error::chain(&e)),
                    }
                })?;
                if r.digest.is_some() {
                    return Err(cais_buildkit::Error::InvalidArgument {
                        reason: format!("invalid tag {t:?}: a tag cannot name a digest"),
                    });
                }
                Ok(r.tagged_name()
                    .unwrap_or_else(|| r.with_tag("latest").to_string()))
            })
            .collect()
    }

    fn tag(&self, built: &cais_build::Built, tags: &[String]) -> Result<(), cais_buildkit::Error> {
        let host = |e: cais_image::Error| cais_buildkit::Error::Host {
            reason: format!("tagging {}: {}", built.image_id, crate::error::chain(&e)),
        };
        let rec = self.images.resolve(&built.manifest).map_err(host)?;
        self.images.record(&[(rec, tags.to_vec())]).map_err(host)?;
        for t in tags {
            self.events.emit(
                "image",
                "tag",
                &built.image_id,
                BTreeMap::from([("name".to_string(), display_name(t))]),
            );
        }
        Ok(())
    }

    fn platform(&self) -> cais_buildkit::Platform {
        let p = cais_image::archive::host_platform();
        cais_buildkit::Platform {
            os: p.os,
            architecture: p.architecture,
            variant: p.variant,
        }
    }

    fn hostname(&self) -> String {
        nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "cais".into())
    }
}

/// `POST /build/prune` (`docker builder prune`): forgets every cached
/// step; returns a name per forgotten entry (the cache keeps no ids worth
/// showing) and the bytes freed.
pub(crate) fn prune_cache(images: &ImageStore) -> Result<(Vec<String>, u64)> {
    let (n, bytes) = cais_build::prune_cache(images).map_err(Error::Build)?;
    Ok(((1..=n).map(|i| format!("build-cache-{i}")).collect(), bytes))
}

/// Fuzz entry point: `data` as a `POST /build` body, unpacked the way the
/// daemon unpacks contexts; refused or not, it never panics and never
/// writes outside the context directory.
pub(crate) fn fuzz_context(data: &[u8]) {
    use std::io::{Seek, Write};
    let mut body = tempfile::tempfile().expect("a temporary file");
    body.write_all(data).expect("writing the body");
    body.rewind().expect("rewinding the body");
    cais_image::unpack::fuzz_contained(|root| {
        let _ = unpack_context(body, root);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_tar_cut_after_its_last_entry_unpacks() {
        let mut b = tar::Builder::new(Vec::new());
        for (name, body) in [("Dockerfile", "FROM scratch\n"), (".dockerignore", "x\n")] {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, body.as_bytes()).expect("tar");
        }
        let full = b.into_inner().expect("tar");
        // What the docker CLI sends with `-f` outside the context: the last
        // entry's data, then nothing.
        let cut = &full[..512 * 3 + 2];
        let dir = tempfile::tempdir().expect("tempdir");
        let mut f = tempfile::tempfile().expect("tempfile");
        std::io::Write::write_all(&mut f, cut).expect("write");
        std::io::Seek::rewind(&mut f).expect("rewind");
        unpack_context(f, dir.path()).expect("unpacks");
        assert_eq!(
            std::fs::read_to_string(dir.path().join(".dockerignore")).expect("read"),
            "x\n"
        );
    }

    #[test]
    fn context_compression_is_recognized() {
        use cais_image::oci::Compression;
        assert_eq!(
            compression(&[0x1f, 0x8b, 8]).expect("gzip"),
            Compression::Gzip
        );
        assert_eq!(
            compression(b"Dockerfile\0").expect("tar"),
            Compression::None
        );
        assert!(compression(b"BZh91AY").is_err());
        assert!(compression(&[0xfd, b'7', b'z', b'X', b'Z', 0]).is_err());
    }

    #[test]
    fn dockerfile_paths_stay_inside_the_context() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = dir.path().join("ctx");
        std::fs::create_dir_all(ctx.join("sub")).expect("mkdir");
        std::fs::write(ctx.join("dockerfile"), "FROM scratch\n").expect("write");
        std::fs::write(ctx.join("sub/Build"), "FROM busybox\n").expect("write");
        std::fs::write(dir.path().join("secret"), "outside\n").expect("write");
        std::os::unix::fs::symlink("../secret", ctx.join("escape")).expect("symlink");
        assert_eq!(
            read_dockerfile(&ctx, None).expect("lowercase fallback"),
            ("dockerfile".to_string(), "FROM scratch\n".to_string())
        );
        assert_eq!(
            read_dockerfile(&ctx, Some("./sub/Build")).expect("sub").1,
            "FROM busybox\n"
        );
        for bad in ["../secret", "/etc/passwd", "escape", "sub/../../secret"] {
            let e = read_dockerfile(&ctx, Some(bad)).expect_err(bad);
            assert!(
                e.to_string().contains("within the build context"),
                "{bad}: {e}"
            );
        }
        let e = read_dockerfile(&ctx, Some("missing")).expect_err("missing");
        assert_eq!(e.to_string(), "Cannot locate specified Dockerfile: missing");
    }

    #[test]
    fn output_chunks_split_inside_a_character_stay_whole() {
        let (tx, mut rx) = mpsc::channel(8);
        let mut s = Stream {
            tx,
            quiet: false,
            kept: String::new(),
            partial: Vec::new(),
        };
        let text = "olá\n".as_bytes();
        cais_build::Progress::output(&mut s, &text[..3]);
        cais_build::Progress::output(&mut s, &text[3..]);
        let mut got = String::new();
        while let Ok(Msg::Line(v)) = rx.try_recv() {
            got.push_str(v["stream"].as_str().expect("stream"));
        }
        assert_eq!(got, "olá\n");
    }
}
