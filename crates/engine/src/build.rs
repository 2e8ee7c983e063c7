//! `POST /build`: the classic builder's protocol, the one `docker build`
//! speaks when BuildKit is off (`DOCKER_BUILDKIT=0`, or automatically when
//! `/_ping` answers `Builder-Version: 1`, as ours does).
//!
//! The request body is a tar of the build context (plain, gzip or zstd).
//! It is unpacked into a private directory under the daemon's root through
//! `cais_image::unpack::extract`, the same contained extraction layers get
//! (no `..`, no writing through symlinks, no device nodes), then
//! `.dockerignore` is applied and the Dockerfile is read from inside it
//! (a symlinked Dockerfile must stay inside the context too). The executor
//! (`cais_build::build`) does the rest; base images it lacks are pulled
//! through the engine's own pull, with the credentials of
//! `X-Registry-Config`.
//!
//! Until the first line of output, a failure (a bad context or Dockerfile,
//! an unknown target) is an ordinary HTTP error, as docker answers it. After
//! that the response is committed (200) and a failure is the last JSON line,
//! `{"errorDetail":{"message":...},"error":...}`, which the docker CLI
//! prints before exiting non-zero (with the code of a failed `RUN`).
//!
//! Query parameters used: `t` (repeated), `dockerfile`, `buildargs`,
//! `labels`, `target`, `nocache`, `pull`, `q`, `platform` (only this host's).
//! Accepted and ignored, because they have no meaning here: `rm` and
//! `forcerm` (no intermediate containers are kept either way),
//! `networkmode` (RUN steps share the host's network, like docker's
//! default builder network), `cachefrom`, `extrahosts`, `shmsize`,
//! `cpu*`/`memory*`/`ulimits`, `squash`, `outputs`, `session`. Refused:
//! `version=2` (BuildKit) and `remote` (a URL context). `POST /build/prune`
//! (`docker builder prune`) empties the step cache.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use cais_image::store::display_name;
use cais_image::Reference;
use cais_registry::client::Credentials;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response};
use tokio::sync::mpsc;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::server::{Body, Query};

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
}

fn invalid(text: impl Into<String>) -> Error {
    Error::InvalidArgument(text.into())
}

/// Every value of a repeated query parameter (`t=a&t=b`).
fn all_values(raw_query: &str, key: &str) -> Vec<String> {
    raw_query
        .split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (crate::server::decode(k) == key).then(|| crate::server::decode(v))
        })
        .filter(|v| !v.is_empty())
        .collect()
}

/// A JSON object of strings (`buildargs`, `labels`). A `null` value is a
/// build argument named without a value whose variable was not set on the
/// client: it is left out, so the Dockerfile's default applies.
fn string_map(query: &Query, key: &str) -> Result<BTreeMap<String, String>> {
    let Some(raw) = query.get(key).filter(|v| !v.is_empty()) else {
        return Ok(BTreeMap::new());
    };
    let v: BTreeMap<String, Option<String>> =
        serde_json::from_str(raw).map_err(|e| invalid(format!("invalid {key}: {e}: {raw}")))?;
    Ok(v.into_iter().filter_map(|(k, v)| Some((k, v?))).collect())
}

impl Params {
    pub(crate) fn parse(raw_query: &str) -> Result<Params> {
        let query = Query::parse(Some(raw_query));
        if query.get("version") == Some("2") {
            return Err(invalid(
                "cais has no BuildKit (builder version 2): use the classic builder, e.g. DOCKER_BUILDKIT=0 docker build",
            ));
        }
        if query.get("remote").is_some_and(|r| !r.is_empty()) {
            return Err(invalid(
                "remote build contexts (a URL or git repository) are not supported: send the context as a tar",
            ));
        }
        if let Some(p) = query.get("platform").filter(|p| !p.is_empty()) {
            let want: cais_image::Platform = p
                .parse()
                .map_err(|e: cais_image::oci::Error| invalid(crate::error::chain(&e)))?;
            let host = cais_image::archive::host_platform();
            if want.os != host.os
                || (!want.architecture.is_empty() && want.architecture != host.architecture)
            {
                return Err(invalid(format!(
                    "cannot build for platform {p}: only {}/{} is supported",
                    host.os, host.architecture
                )));
            }
        }
        let mut tags = Vec::new();
        for t in all_values(raw_query, "t") {
            let r: Reference = t.parse().map_err(|e: cais_image::oci::Error| {
                invalid(format!("invalid tag {t:?}: {}", crate::error::chain(&e)))
            })?;
            if r.digest.is_some() {
                return Err(invalid(format!(
                    "invalid tag {t:?}: a tag cannot name a digest"
                )));
            }
            tags.push(t);
        }
        let build_args = string_map(&query, "buildargs")?;
        let source_date_epoch = build_args
            .get("SOURCE_DATE_EPOCH")
            .map(|v| {
                v.parse::<i64>().map_err(|_| {
                    invalid(format!(
                        "invalid SOURCE_DATE_EPOCH {v:?}: not a number of seconds"
                    ))
                })
            })
            .transpose()?;
        let dockerfile = query
            .get("dockerfile")
            .filter(|d| !d.is_empty())
            .map(str::to_string);
        Ok(Params {
            tags,
            dockerfile,
            build_args,
            labels: string_map(&query, "labels")?,
            target: query
                .get("target")
                .filter(|t| !t.is_empty())
                .map(str::to_string),
            no_cache: query.flag("nocache"),
            pull: query.flag("pull"),
            quiet: query.flag("q"),
            source_date_epoch,
        })
    }
}

/// Credentials by registry from `X-Registry-Config`: base64 of a JSON
/// object `{"<registry>": {"username", "password"} | {"auth": base64("user:pass")}}`.
fn registry_config(header: Option<&str>) -> BTreeMap<String, Credentials> {
    use base64::Engine as _;
    let Some(raw) = header.map(str::trim).filter(|h| !h.is_empty()) else {
        return BTreeMap::new();
    };
    let decoded = [
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        &base64::engine::general_purpose::STANDARD,
    ]
    .iter()
    .find_map(|e| {
        e.decode(raw.trim_end_matches('='))
            .ok()
            .or_else(|| e.decode(raw).ok())
    });
    let Some(map) = decoded
        .and_then(|b| serde_json::from_slice::<BTreeMap<String, serde_json::Value>>(&b).ok())
    else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for (registry, v) in map {
        let mut username = v["username"].as_str().unwrap_or_default().to_string();
        let mut password = v["password"].as_str().unwrap_or_default().to_string();
        if username.is_empty() {
            if let Some((u, p)) = v["auth"]
                .as_str()
                .and_then(|a| base64::engine::general_purpose::STANDARD.decode(a).ok())
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| {
                    s.split_once(':')
                        .map(|(u, p)| (u.to_string(), p.to_string()))
                })
            {
                (username, password) = (u, p);
            }
        }
        if !username.is_empty() {
            out.insert(
                cais_registry::client::reference::normalize_registry(&registry),
                Credentials { username, password },
            );
        }
    }
    out
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
        .map_err(|e| Error::internal("reading the build context", e))?;
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
        .map_err(|e| Error::internal("build context", e))?;
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
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::internal("reading the build context", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::internal("reading the build context", e))?;
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
            r.map_err(|e| Error::internal("applying .dockerignore", e))?;
        }
    }
    Ok(())
}

/// What the build thread tells the response.
enum Msg {
    Line(serde_json::Value),
    Failed(Error, Option<i32>),
}

/// Build progress as JSON lines (`{"stream": ...}`). In quiet mode
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

impl cais_build::Progress for Stream {
    fn step(&mut self, text: &str) {
        self.send(format!("{text}\n"));
    }

    fn output(&mut self, bytes: &[u8]) {
        let mut data = std::mem::take(&mut self.partial);
        data.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&data) {
            Ok(_) => data.len(),
            // An incomplete sequence at the end waits for the next chunk.
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => data.len(),
        };
        self.partial = data.split_off(valid);
        if !data.is_empty() {
            self.send(String::from_utf8_lossy(&data).into_owned());
        }
    }
}

fn error_class(e: cais_build::Error) -> (Error, Option<i32>) {
    let text = crate::error::chain(&e);
    match e {
        cais_build::Error::InvalidArgument { .. } => (Error::InvalidArgument(text), None),
        cais_build::Error::NotFound { .. } => (Error::NotFound(text), None),
        cais_build::Error::Failed { code, .. } => (Error::InvalidArgument(text), Some(code)),
        _ => (Error::Internal(text), None),
    }
}

/// The whole build, on a blocking thread; everything it says goes to `tx`.
fn run(
    engine: Arc<Engine>,
    params: Params,
    body: std::fs::File,
    credentials: BTreeMap<String, Credentials>,
    tx: mpsc::Sender<Msg>,
) {
    let fail = |tx: &mpsc::Sender<Msg>, e: Error, code: Option<i32>| {
        let _ = tx.blocking_send(Msg::Failed(e, code));
    };
    let base = engine.cfg.root.join("engine/build");
    let dir = match std::fs::create_dir_all(&base).and_then(|()| {
        tempfile::Builder::new()
            .prefix("context-")
            .tempdir_in(&base)
    }) {
        Ok(d) => d,
        Err(e) => {
            return fail(
                &tx,
                Error::internal("creating the build context directory", e),
                None,
            )
        }
    };
    let context = dir.path().join("context");
    let prepared = std::fs::create_dir(&context)
        .map_err(|e| Error::internal("creating the build context directory", e))
        .and_then(|()| unpack_context(body, &context))
        .and_then(|()| read_dockerfile(&context, params.dockerfile.as_deref()))
        .and_then(|(name, text)| apply_dockerignore(&context).map(|()| (name, text)));
    let (dockerfile, text) = match prepared {
        Ok(x) => x,
        Err(e) => return fail(&tx, e, None),
    };
    let pull_engine = engine.clone();
    let pull_tx = tx.clone();
    let quiet = params.quiet;
    let pull: cais_build::PullFn = Box::new(
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
                credentials: credentials.get(&reference.domain).cloned(),
                ..Default::default()
            };
            let client = cais_registry::client::Client::new(&reference.domain, &options)
                .map_err(|e| failed(crate::error::chain(&e)))?;
            let tx = pull_tx.clone();
            let progress = Arc::new(crate::images::JsonProgress::new(true, move |v| {
                if !quiet {
                    let _ = tx.blocking_send(Msg::Line(v));
                }
            }));
            crate::images::pull_with(
                &pull_engine,
                &client,
                &reference,
                cais_image::Platform::default(),
                progress,
            )
            .map_err(|e| failed(crate::error::chain(&e)))
        },
    );
    let env = cais_build::Environment {
        store: engine.images.clone(),
        runtime_binary: engine.cfg.binary.clone(),
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
    };
    let mut stream = Stream {
        tx: tx.clone(),
        quiet: params.quiet,
        kept: String::new(),
        partial: Vec::new(),
    };
    match cais_build::build(&env, &opts, &mut stream) {
        Ok(built) => {
            let _ = tx.blocking_send(Msg::Line(
                serde_json::json!({"aux": {"ID": built.image_id}}),
            ));
            if params.quiet {
                let _ = tx.blocking_send(Msg::Line(
                    serde_json::json!({"stream": format!("{}\n", built.image_id)}),
                ));
            }
            for t in &built.tags {
                engine.events.emit(
                    "image",
                    "tag",
                    &built.image_id,
                    BTreeMap::from([("name".to_string(), display_name(t))]),
                );
            }
        }
        Err(e) => {
            let (mut err, code) = error_class(e);
            if !stream.kept.is_empty() {
                // Quiet: the output was held back, and explains the failure.
                err = match err {
                    Error::InvalidArgument(m) => {
                        Error::InvalidArgument(format!("{}{m}", stream.kept))
                    }
                    other => other,
                };
            }
            fail(&tx, err, code);
        }
    }
    // The response ends when the last sender goes: end it before the
    // context is removed, which the client need not wait for.
    drop((stream, env, tx));
    drop(dir);
}

/// `POST /build/prune` (`docker builder prune`): forgets every cached
/// step; returns a name per forgotten entry (the cache keeps no ids worth
/// showing) and the bytes freed.
pub(crate) fn prune_cache(engine: &Engine) -> Result<(Vec<String>, u64)> {
    let (n, bytes) = cais_build::prune_cache(&engine.images).map_err(|e| error_class(e).0)?;
    Ok(((1..=n).map(|i| format!("build-cache-{i}")).collect(), bytes))
}

fn line(v: &serde_json::Value) -> Bytes {
    Bytes::from(format!("{v}\n"))
}

/// `POST /build`.
pub(crate) async fn build(engine: Arc<Engine>, req: Request<Incoming>) -> Result<Response<Body>> {
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let credentials = registry_config(
        req.headers()
            .get("X-Registry-Config")
            .and_then(|v| v.to_str().ok()),
    );
    let tmp = engine.cfg.root.join("engine/build");
    std::fs::create_dir_all(&tmp)
        .map_err(|e| Error::internal("creating the build directory", e))?;
    // The body is read first even when the parameters are wrong: a client
    // still sending its context would not see an early answer.
    let body = crate::images::body_to_file(req, &tmp).await?;
    let params = Params::parse(&raw_query)?;
    let (tx, mut rx) = mpsc::channel::<Msg>(64);
    tokio::task::spawn_blocking(move || run(engine, params, body, credentials, tx));
    // Nothing is sent before the build says something: an early failure
    // (bad context, Dockerfile syntax) is a plain HTTP error.
    let first = match rx.recv().await {
        Some(Msg::Failed(e, _)) => return Err(e),
        None => return Err(Error::Internal("the build ended without a result".into())),
        Some(Msg::Line(v)) => v,
    };
    let (out, body) = crate::server::channel_body();
    tokio::spawn(async move {
        if out.send(line(&first)).await.is_err() {
            return;
        }
        while let Some(msg) = rx.recv().await {
            let v = match msg {
                Msg::Line(v) => v,
                Msg::Failed(e, code) => {
                    let text = e.to_string();
                    let mut detail = serde_json::json!({"message": text});
                    if let Some(c) = code {
                        detail["code"] = c.into();
                    }
                    serde_json::json!({"errorDetail": detail, "error": text})
                }
            };
            if out.send(line(&v)).await.is_err() {
                return;
            }
        }
    });
    let mut r = Response::new(body);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(r)
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
    fn parameters_decode_like_dockers() {
        let p = Params::parse(
            "t=web%3A1&t=web%3Alatest&dockerfile=sub%2FDockerfile.dev&buildargs=%7B%22A%22%3A%221%22%2C%22B%22%3Anull%2C%22SOURCE_DATE_EPOCH%22%3A%2210%22%7D&labels=%7B%22k%22%3A%22v%22%7D&target=app&nocache=1&pull=1&q=1&rm=1&forcerm=0&networkmode=default&cachefrom=%5B%5D",
        )
        .expect("valid");
        assert_eq!(p.tags, ["web:1", "web:latest"]);
        assert_eq!(p.dockerfile.as_deref(), Some("sub/Dockerfile.dev"));
        assert_eq!(
            p.build_args,
            BTreeMap::from([
                ("A".to_string(), "1".to_string()),
                ("SOURCE_DATE_EPOCH".to_string(), "10".to_string())
            ])
        );
        assert_eq!(p.source_date_epoch, Some(10));
        assert_eq!(p.labels["k"], "v");
        assert_eq!(p.target.as_deref(), Some("app"));
        assert!(p.no_cache && p.pull && p.quiet);
        assert_eq!(Params::parse("").expect("empty"), Params::default());
    }

    #[test]
    fn bad_parameters_are_refused_with_a_reason() {
        for (q, want) in [
            ("version=2", "DOCKER_BUILDKIT=0"),
            (
                "remote=https%3A%2F%2Fexample.com%2Fx.git",
                "remote build contexts",
            ),
            ("t=UPPER%3Acase", "invalid tag"),
            (
                "t=x%40sha256%3A0000000000000000000000000000000000000000000000000000000000000000",
                "invalid tag",
            ),
            ("buildargs=%5B1%5D", "invalid buildargs"),
            ("labels=nope", "invalid labels"),
            (
                "buildargs=%7B%22SOURCE_DATE_EPOCH%22%3A%22soon%22%7D",
                "SOURCE_DATE_EPOCH",
            ),
            ("platform=linux%2Fs390x", "only linux/"),
        ] {
            let e = Params::parse(q).expect_err(q);
            assert!(matches!(e, Error::InvalidArgument(_)), "{q}: {e:?}");
            assert!(e.to_string().contains(want), "{q}: {e}");
        }
        let host = cais_image::archive::host_platform();
        Params::parse(&format!("platform=linux%2F{}", host.architecture)).expect("host platform");
    }

    #[test]
    fn registry_config_gives_credentials_per_registry() {
        use base64::Engine as _;
        let json = r#"{"127.0.0.1:5000":{"username":"u","password":"p"},"https://index.docker.io/v1/":{"auth":"aHViOnNlY3JldA=="},"empty.example":{}}"#;
        let header = base64::engine::general_purpose::URL_SAFE.encode(json);
        let m = registry_config(Some(&header));
        assert_eq!(m["127.0.0.1:5000"].username, "u");
        assert_eq!(m["127.0.0.1:5000"].password, "p");
        let hub =
            cais_registry::client::reference::normalize_registry("https://index.docker.io/v1/");
        assert_eq!(m[&hub].username, "hub");
        assert_eq!(m[&hub].password, "secret");
        assert_eq!(m.len(), 2);
        assert!(registry_config(Some("%%%")).is_empty());
        assert!(registry_config(None).is_empty());
    }

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
