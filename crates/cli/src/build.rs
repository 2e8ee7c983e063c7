//! `cais build`: docker's command line for the classic builder. Through
//! the daemon it sends the context as a tar (filtered by `.dockerignore`
//! here, like the docker CLI, though the Dockerfile and `.dockerignore`
//! always go) to `POST /build` and prints the answer; with a data root
//! (`--data-root` or `CAIS_DATA_ROOT`) it runs the executor itself on that
//! store, with this binary as the runtime for `RUN`.
//!
//! Exit codes: 0 when the image is built; a failed `RUN`'s own exit code
//! (as docker reports it); 1 for other errors; 125 for a bad command line.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use cais_client::http::{json_lines, Client};
use serde_json::Value;

use crate::images::DataRoot;

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Name and optionally a tag (`name:tag`) for the image; repeatable.
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    tags: Vec<String>,
    /// The Dockerfile (default `PATH/Dockerfile`; `-` reads it from stdin).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<String>,
    /// A build-time variable, `KEY=VALUE`, or `KEY` to take it from the
    /// environment; repeatable. `SOURCE_DATE_EPOCH` also fixes timestamps.
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    build_args: Vec<String>,
    /// A label for the image, `KEY=VALUE`; repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// The stage to build (a multi-stage Dockerfile stops there).
    #[arg(long)]
    target: Option<String>,
    /// Run every step, using no cached result.
    #[arg(long = "no-cache")]
    no_cache: bool,
    /// Fetch base images again even when they are present.
    #[arg(long)]
    pull: bool,
    /// A secret for `RUN --mount=type=secret`: `id=ID,src=FILE`,
    /// `id=ID,env=VAR`, or `id=ID` (the variable ID if it is set, else
    /// the file ID); repeatable. Local builds only (`--data-root`).
    #[arg(long = "secret", value_name = "id=ID[,src=FILE|,env=VAR]")]
    secrets: Vec<String>,
    /// Write the image id to this file.
    #[arg(long, value_name = "FILE")]
    iidfile: Option<PathBuf>,
    /// Print only the image id.
    #[arg(short, long)]
    quiet: bool,
    /// `auto` or `plain` (the step lines as they come), or `quiet`.
    #[arg(long, default_value = "auto", value_parser = ["auto", "plain", "tty", "quiet"])]
    progress: String,
    /// Accepted for compatibility: RUN steps use the host's network.
    #[arg(long, value_name = "MODE")]
    network: Option<String>,
    /// Only this host's platform (`linux/amd64` here) can be built.
    #[arg(long)]
    platform: Option<String>,
    /// Accepted for compatibility: no intermediate containers are kept.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    rm: Option<String>,
    /// Accepted for compatibility, like --rm.
    #[arg(long = "force-rm")]
    force_rm: bool,
    /// An /etc/hosts entry for RUN steps, HOST:IP (through the daemon).
    #[arg(long = "add-host", value_name = "HOST:IP")]
    add_host: Vec<String>,
    /// An image whose steps the build may reuse (through the daemon).
    #[arg(long = "cache-from", value_name = "IMAGE")]
    cache_from: Vec<String>,
    /// Accepted: the context goes over the local socket as it is (docker
    /// gzips it, which changes nothing the build sees).
    #[arg(long)]
    compress: bool,
    /// Squash the new layers into one: refused by the daemon, as dockerd
    /// refuses it outside experimental mode.
    #[arg(long)]
    squash: bool,
    /// Accepted: images are not signed, there is nothing to verify.
    #[arg(long = "disable-content-trust", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "true")]
    disable_content_trust: bool,
    /// Limits and options of RUN steps that cais builds do not apply:
    /// each is refused rather than dropped (docs/docker-cli.md).
    #[command(flatten)]
    unapplied: UnappliedBuildFlags,
    /// The build context: a directory, or `-` for a tar (or a lone
    /// Dockerfile) on stdin.
    #[arg(value_name = "PATH|-")]
    context: String,
    #[command(flatten)]
    root: DataRoot,
}

/// `docker build` flags for the resources and security of RUN steps. The
/// build's RUN steps run without them, so a build that asks for one is
/// refused before anything is sent.
#[derive(Debug, clap::Args)]
pub struct UnappliedBuildFlags {
    #[arg(long, hide = true)]
    ulimit: Vec<String>,
    #[arg(long = "shm-size", hide = true)]
    shm_size: Option<String>,
    #[arg(long = "security-opt", hide = true)]
    security_opt: Vec<String>,
    #[arg(short = 'm', long, hide = true)]
    memory: Option<String>,
    #[arg(long = "memory-swap", hide = true, allow_hyphen_values = true)]
    memory_swap: Option<String>,
    #[arg(short = 'c', long = "cpu-shares", hide = true)]
    cpu_shares: Option<String>,
    #[arg(long = "cpu-period", hide = true)]
    cpu_period: Option<String>,
    #[arg(long = "cpu-quota", hide = true)]
    cpu_quota: Option<String>,
    #[arg(long = "cpuset-cpus", hide = true)]
    cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems", hide = true)]
    cpuset_mems: Option<String>,
    #[arg(long = "cgroup-parent", hide = true)]
    cgroup_parent: Option<String>,
    #[arg(long, hide = true)]
    isolation: Option<String>,
}

impl UnappliedBuildFlags {
    /// The first such flag given, by name.
    fn given(&self) -> Option<&'static str> {
        [
            ("--ulimit", !self.ulimit.is_empty()),
            ("--shm-size", self.shm_size.is_some()),
            ("--security-opt", !self.security_opt.is_empty()),
            ("--memory", self.memory.is_some()),
            ("--memory-swap", self.memory_swap.is_some()),
            ("--cpu-shares", self.cpu_shares.is_some()),
            ("--cpu-period", self.cpu_period.is_some()),
            ("--cpu-quota", self.cpu_quota.is_some()),
            ("--cpuset-cpus", self.cpuset_cpus.is_some()),
            ("--cpuset-mems", self.cpuset_mems.is_some()),
            ("--cgroup-parent", self.cgroup_parent.is_some()),
            ("--isolation", self.isolation.is_some()),
        ]
        .into_iter()
        .find_map(|(name, on)| on.then_some(name))
    }
}

impl BuildArgs {
    /// Refuses the flags the chosen builder would not honour.
    pub fn check_flags(&self) -> Result<()> {
        if let Some(flag) = self.unapplied.given() {
            bail!(
                "{flag} is not supported by cais builds: RUN steps run without per-build resource limits or security options"
            );
        }
        if self.is_local() && (!self.add_host.is_empty() || !self.cache_from.is_empty()) {
            bail!("--add-host and --cache-from need a build through the daemon (no --data-root)");
        }
        Ok(())
    }

    pub fn is_local(&self) -> bool {
        self.root.given()
    }

    fn quiet(&self) -> bool {
        self.quiet || self.progress == "quiet"
    }

    /// Build arguments; `None` for a name without a value that is not in
    /// the environment either (the Dockerfile's default applies). A
    /// `SOURCE_DATE_EPOCH` in the environment is passed along as BuildKit
    /// does.
    fn build_args(&self) -> BTreeMap<String, Option<String>> {
        let mut out = BTreeMap::new();
        for a in &self.build_args {
            match a.split_once('=') {
                Some((k, v)) => out.insert(k.to_string(), Some(v.to_string())),
                None => out.insert(a.clone(), std::env::var(a).ok()),
            };
        }
        if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH") {
            out.entry("SOURCE_DATE_EPOCH".into()).or_insert(Some(v));
        }
        out
    }

    fn labels(&self) -> Result<BTreeMap<String, String>> {
        self.labels
            .iter()
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
                if k.is_empty() {
                    bail!("invalid label {l:?}: the key is empty");
                }
                Ok((k.to_string(), v.to_string()))
            })
            .collect()
    }
}

/// `--secret` values read into memory, as the docker CLI reads them.
fn read_secrets(specs: &[String]) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    for spec in specs {
        let (mut kind, mut id, mut src, mut env) = (None, None, None, None);
        for field in spec.split(',') {
            let (k, v) = field.split_once('=').unwrap_or((field, ""));
            match k.trim() {
                "type" => kind = Some(v.to_string()),
                "id" => id = Some(v.to_string()),
                "src" | "source" => src = Some(v.to_string()),
                "env" => env = Some(v.to_string()),
                other => bail!("invalid --secret {spec:?}: unknown field {other:?}"),
            }
        }
        let Some(id) = id.filter(|i| !i.is_empty()) else {
            bail!("invalid --secret {spec:?}: id=... is missing");
        };
        let kind = kind.unwrap_or_else(|| {
            if src.is_some() {
                "file".into()
            } else if env.is_some() || std::env::var_os(&id).is_some() {
                "env".into()
            } else {
                "file".into()
            }
        });
        let value = match kind.as_str() {
            "file" => {
                let path = src.unwrap_or_else(|| id.clone());
                std::fs::read(&path).with_context(|| format!("reading secret {id} from {path}"))?
            }
            "env" => {
                let var = env.or(src).unwrap_or_else(|| id.clone());
                std::env::var_os(&var)
                    .with_context(|| format!("secret {id}: the variable {var} is not set"))?
                    .into_encoded_bytes()
            }
            other => bail!("invalid --secret {spec:?}: type {other:?} is not file or env"),
        };
        out.insert(id, value);
    }
    Ok(out)
}

/// Reads a file, or stdin for `-`.
fn read_text(path: &str) -> Result<String> {
    let mut text = String::new();
    if path == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the Dockerfile from stdin")?;
    } else {
        File::open(path)
            .and_then(|mut f| f.read_to_string(&mut text))
            .with_context(|| format!("reading the Dockerfile {path}"))?;
    }
    Ok(text)
}

/// A name for a Dockerfile that comes from outside the context, as the
/// docker CLI does (`.dockerfile.<random>`).
fn outside_dockerfile_name() -> String {
    let mut b = [0u8; 10];
    if let Ok(mut f) = File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    format!(
        ".dockerfile.{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

/// The Dockerfile's path relative to `context` when it is inside, else its
/// text (to be added to the context under another name).
enum DockerfileSource {
    Inside(String),
    Outside(String),
}

fn locate_dockerfile(context: &Path, file: Option<&str>) -> Result<DockerfileSource> {
    let Some(f) = file else {
        return Ok(DockerfileSource::Inside("Dockerfile".into()));
    };
    if f == "-" {
        return Ok(DockerfileSource::Outside(read_text("-")?));
    }
    let ctx = context
        .canonicalize()
        .with_context(|| format!("the build context {}", context.display()))?;
    let path = Path::new(f);
    // docker resolves a relative -f against the working directory.
    let real = path
        .canonicalize()
        .with_context(|| format!("unable to prepare context: the Dockerfile {f} does not exist"))?;
    match real.strip_prefix(&ctx) {
        Ok(rel) => Ok(DockerfileSource::Inside(rel.to_string_lossy().into_owned())),
        Err(_) => Ok(DockerfileSource::Outside(read_text(f)?)),
    }
}

/// A tar header for `meta`: modes and times as they are, owned by root
/// (the docker CLI sends contexts as 0:0).
fn header(meta: &std::fs::Metadata) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    h.set_uid(0);
    h.set_gid(0);
    let _ = h.set_username("");
    let _ = h.set_groupname("");
    h
}

/// Tars the context directory into `out`, leaving out what `.dockerignore`
/// excludes but always sending `keep` (the Dockerfile, `.dockerignore`).
/// `extra` is a Dockerfile from outside the context (name, text), added
/// first; like the docker CLI, its name is then appended to the
/// `.dockerignore` sent (one is made if there is none), so the daemon
/// drops it from the context once read and `COPY .` never sees it.
fn tar_context(
    context: &Path,
    keep: &[String],
    extra: Option<(&str, &str)>,
    out: &mut File,
) -> Result<()> {
    let ignore_text = match std::fs::read_to_string(context.join(".dockerignore")) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).context("reading .dockerignore"),
    };
    let ignore = ignore_text
        .as_deref()
        .map(cais_build::dockerignore::Ignore::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("{}: {e}", context.join(".dockerignore").display()))?;
    let mut builder = tar::Builder::new(out);
    if let Some((name, text)) = extra {
        add_text(&mut builder, name, text)?;
        let patterns = format!(
            "{}\n{name}\n",
            ignore_text.as_deref().unwrap_or(".dockerignore")
        );
        add_text(&mut builder, ".dockerignore", &patterns)?;
    }
    let mut skip = Vec::new();
    if extra.is_some() {
        skip.push(".dockerignore".to_string());
    }
    walk(&mut builder, context, "", ignore.as_ref(), keep, &skip)?;
    builder.finish().context("writing the context tar")?;
    Ok(())
}

fn walk(
    b: &mut tar::Builder<&mut File>,
    dir: &Path,
    rel: &str,
    ignore: Option<&cais_build::dockerignore::Ignore>,
    keep: &[String],
    skip: &[String],
) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("reading {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        if skip.contains(&path) {
            continue;
        }
        let full = entry.path();
        let meta = std::fs::symlink_metadata(&full)
            .with_context(|| format!("reading {}", full.display()))?;
        let kept = keep.contains(&path);
        let holds_kept = keep.iter().any(|k| k.starts_with(&format!("{path}/")));
        let excluded = !kept && ignore.is_some_and(|i| i.excluded(&path));
        if meta.is_dir() {
            let descend =
                !excluded || holds_kept || ignore.is_some_and(|i| i.may_include_under(&path));
            if !excluded {
                let mut h = header(&meta);
                b.append_data(&mut h, format!("{path}/"), std::io::empty())
                    .with_context(|| format!("adding {path}"))?;
            }
            if descend {
                walk(b, &full, &path, ignore, keep, skip)?;
            }
            continue;
        }
        if excluded {
            continue;
        }
        let mut h = header(&meta);
        if meta.file_type().is_symlink() {
            let target =
                std::fs::read_link(&full).with_context(|| format!("reading {}", full.display()))?;
            b.append_link(&mut h, &path, target)
                .with_context(|| format!("adding {path}"))?;
        } else if meta.is_file() {
            let f = File::open(&full).with_context(|| format!("opening {}", full.display()))?;
            b.append_data(&mut h, &path, f)
                .with_context(|| format!("adding {path}"))?;
        }
        // Sockets, FIFOs and devices are not build input.
    }
    Ok(())
}

/// Adds one file made of `text` to a tar being written.
fn add_text(b: &mut tar::Builder<&mut File>, name: &str, text: &str) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(text.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    b.append_data(&mut h, name, text.as_bytes())
        .context("adding the Dockerfile")
}

/// True when `head` starts a tar or a compressed stream, not a Dockerfile.
fn looks_like_archive(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || head.starts_with(b"BZh")
        || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
        || head.get(257..262) == Some(b"ustar")
}

/// The context as a tar in a temporary file, and the Dockerfile's name in
/// it (`None`: the default).
fn context_tar(a: &BuildArgs) -> Result<(File, Option<String>)> {
    let mut out = tempfile::tempfile().context("creating a temporary file")?;
    if a.context == "-" {
        if a.file.as_deref() == Some("-") {
            bail!("the context and the Dockerfile cannot both come from stdin");
        }
        std::io::copy(&mut std::io::stdin().lock(), &mut out).context("reading stdin")?;
        out.rewind()?;
        let mut head = vec![0u8; 512];
        let n = read_up_to(&mut out, &mut head)?;
        out.rewind()?;
        if !looks_like_archive(&head[..n]) {
            // A lone Dockerfile: the context is empty.
            let mut text = String::new();
            out.read_to_string(&mut text)
                .context("reading the Dockerfile from stdin")?;
            let mut tar = tempfile::tempfile().context("creating a temporary file")?;
            {
                let mut b = tar::Builder::new(&mut tar);
                add_text(&mut b, "Dockerfile", &text)?;
                b.finish().context("writing the context tar")?;
            }
            tar.rewind()?;
            return Ok((tar, None));
        }
        return Ok((out, a.file.clone()));
    }
    let context = Path::new(&a.context);
    if !context.is_dir() {
        bail!("unable to prepare context: path {:?} not found", a.context);
    }
    let dockerfile = locate_dockerfile(context, a.file.as_deref())?;
    dir_tar(context, dockerfile, a.file.is_some(), out)
}

/// A context directory as a tar (what `compose build` sends): `dockerfile`
/// is relative to the context (or absolute), `inline` a Dockerfile's text
/// (`dockerfile_inline`). The Dockerfile's name in the tar, when not the
/// default, comes back with it.
pub fn context_dir_tar(
    context: &Path,
    dockerfile: Option<&str>,
    inline: Option<&str>,
) -> Result<(File, Option<String>)> {
    if !context.is_dir() {
        bail!(
            "unable to prepare context: path {:?} not found",
            context.display()
        );
    }
    let out = tempfile::tempfile().context("creating a temporary file")?;
    let source = match (inline, dockerfile) {
        (Some(text), _) => DockerfileSource::Outside(text.to_string()),
        (None, Some(f)) if f != "Dockerfile" => {
            let full = context.join(f);
            locate_dockerfile(context, Some(&full.to_string_lossy()))?
        }
        _ => DockerfileSource::Inside("Dockerfile".into()),
    };
    let named = matches!(&source, DockerfileSource::Inside(rel) if rel != "Dockerfile");
    dir_tar(context, source, named, out)
}

fn dir_tar(
    context: &Path,
    dockerfile: DockerfileSource,
    named: bool,
    mut out: File,
) -> Result<(File, Option<String>)> {
    let mut keep = vec![".dockerignore".to_string()];
    let name = match &dockerfile {
        DockerfileSource::Inside(rel) => {
            keep.push(rel.clone());
            named.then(|| rel.clone())
        }
        DockerfileSource::Outside(_) => Some(outside_dockerfile_name()),
    };
    let extra = match (&dockerfile, &name) {
        (DockerfileSource::Outside(text), Some(n)) => Some((n.as_str(), text.as_str())),
        _ => None,
    };
    tar_context(context, &keep, extra, &mut out)?;
    out.rewind()?;
    Ok((out, name))
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// `X-Registry-Config`: every stored login, as the docker CLI sends them.
fn registry_config() -> Option<String> {
    use base64::Engine as _;
    let store = cais_registry::client::CredentialStore::default_location().ok()?;
    let config: Value = serde_json::from_slice(&std::fs::read(store.path()).ok()?).ok()?;
    let auths = config.get("auths")?.as_object()?;
    if auths.is_empty() {
        return None;
    }
    Some(base64::engine::general_purpose::URL_SAFE.encode(Value::Object(auths.clone()).to_string()))
}

/// `cais build` through the daemon.
pub fn remote(c: &Client, a: &BuildArgs) -> Result<i32> {
    if !a.secrets.is_empty() {
        // POST /build (the classic builder's API) has no way to pass them.
        bail!("--secret needs a local build (--data-root or CAIS_DATA_ROOT); through the daemon, secrets reach BuildKit builds (docker compose build)");
    }
    let (mut tar, dockerfile) = context_tar(a)?;
    let mut q: Vec<(&str, String)> = a.tags.iter().map(|t| ("t", t.clone())).collect();
    if let Some(d) = dockerfile {
        q.push(("dockerfile", d));
    }
    let args = a.build_args();
    if !args.is_empty() {
        q.push(("buildargs", serde_json::to_string(&args)?));
    }
    let labels = a.labels()?;
    if !labels.is_empty() {
        q.push(("labels", serde_json::to_string(&labels)?));
    }
    if let Some(t) = &a.target {
        q.push(("target", t.clone()));
    }
    if let Some(p) = &a.platform {
        q.push(("platform", p.clone()));
    }
    if let Some(n) = &a.network {
        q.push(("networkmode", n.clone()));
    }
    for h in &a.add_host {
        q.push(("extrahosts", h.clone()));
    }
    if !a.cache_from.is_empty() {
        q.push(("cachefrom", serde_json::to_string(&a.cache_from)?));
    }
    for (flag, on) in [
        ("nocache", a.no_cache),
        ("pull", a.pull),
        ("q", a.quiet()),
        ("squash", a.squash),
    ] {
        if on {
            q.push((flag, "1".into()));
        }
    }
    q.push(("rm", "1".into()));
    if let Some(f) = &a.iidfile {
        let _ = std::fs::remove_file(f);
    }
    let auth = registry_config();
    let resp = c.build(&q, auth.as_deref(), &mut tar)?;
    let mut out = std::io::stdout().lock();
    let mut image_id = None;
    for msg in json_lines::<Value>(resp.body) {
        let msg = msg?;
        if let Some(e) = msg["error"]
            .as_str()
            .or(msg["errorDetail"]["message"].as_str())
        {
            let _ = out.flush();
            eprintln!("{e}");
            let code = msg["errorDetail"]["code"].as_i64().unwrap_or(1);
            return Ok(if code == 0 { 1 } else { code as i32 });
        }
        if let Some(id) = msg["aux"]["ID"].as_str() {
            image_id = Some(id.to_string());
        }
        if let Some(s) = msg["stream"].as_str() {
            // Quiet, the daemon's one line is the image id (as dockerd's).
            if a.quiet() && s.trim().starts_with("sha256:") {
                image_id = Some(s.trim().to_string());
            }
            let _ = write!(out, "{s}");
        } else if let Some(s) = msg["status"].as_str() {
            match msg["id"].as_str() {
                Some(id) => {
                    let _ = writeln!(out, "{id}: {s}");
                }
                None => {
                    let _ = writeln!(out, "{s}");
                }
            }
        }
        let _ = out.flush();
    }
    let Some(id) = image_id else {
        bail!("the daemon did not report an image id");
    };
    if let Some(f) = &a.iidfile {
        std::fs::write(f, &id).with_context(|| format!("writing {}", f.display()))?;
    }
    Ok(0)
}

/// `cais build --data-root DIR`: the executor on the local store.
pub fn local(a: &BuildArgs) -> Result<i32> {
    let root = a
        .root
        .data_root
        .clone()
        .unwrap_or_else(cais_image::ImageStore::default_root);
    let store = cais_image::ImageStore::open(&root)
        .with_context(|| format!("opening the image store at {}", root.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix("build-")
        .tempdir_in(&root)
        .with_context(|| format!("creating a build directory in {}", root.display()))?;
    let (context, dockerfile, dockerfile_text) = if a.context == "-" {
        let (tar, name) = context_tar(a)?;
        let dir = scratch.path().join("context");
        std::fs::create_dir(&dir).context("creating the context directory")?;
        let mut reader = std::io::BufReader::new(tar);
        let head = std::io::BufRead::fill_buf(&mut reader)?.to_vec();
        let kind = if head.starts_with(&[0x1f, 0x8b]) {
            cais_image::oci::Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            cais_image::oci::Compression::Zstd
        } else {
            cais_image::oci::Compression::None
        };
        let stream = cais_image::unpack::decompress(reader, kind)?;
        cais_image::unpack::extract(stream, &dir, &cais_image::Digest::sha256(b"build context"))
            .context("unpacking the build context")?;
        (dir, name.map(PathBuf::from), None)
    } else {
        let dir = PathBuf::from(&a.context);
        if !dir.is_dir() {
            bail!("unable to prepare context: path {:?} not found", a.context);
        }
        match locate_dockerfile(&dir, a.file.as_deref())? {
            DockerfileSource::Inside(rel) => (dir, Some(PathBuf::from(rel)), None),
            DockerfileSource::Outside(text) => (dir, None, Some(text)),
        }
    };
    let build_args: BTreeMap<String, String> = a
        .build_args()
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
    let source_date_epoch = build_args
        .get("SOURCE_DATE_EPOCH")
        .map(|v| {
            v.parse::<i64>()
                .with_context(|| format!("invalid SOURCE_DATE_EPOCH {v:?}"))
        })
        .transpose()?;
    let binary = std::env::current_exe().context("finding the cais binary")?;
    let options = crate::transfer::RegistryFlags {
        insecure: Vec::new(),
        ca_certs: Vec::new(),
        certs_dir: PathBuf::from("/etc/docker/certs.d"),
    };
    let store = std::sync::Arc::new(store);
    let pull_store = store.clone();
    let quiet = a.quiet();
    let pull: cais_build::PullFn = Box::new(move |name, progress| {
        let failed = |reason: String| cais_build::Error::Pull {
            reference: name.to_string(),
            reason,
        };
        let reference: cais_image::Reference = name
            .parse()
            .map_err(|e: cais_image::oci::Error| failed(e.to_string()))?;
        let client = options
            .options(&reference.domain)
            .and_then(|o| Ok(cais_registry::client::Client::new(&reference.domain, &o)?))
            .map_err(|e| failed(format!("{e:#}")))?;
        if !quiet {
            progress.step(&format!("Pulling {name}"));
        }
        cais_image::pull::pull(
            &pull_store,
            &client,
            &reference,
            &cais_image::pull::PullOptions::default(),
        )
        .map(drop)
        .map_err(|e| failed(format!("{:#}", anyhow::Error::from(e))))
    });
    let env = cais_build::Environment {
        store,
        runtime_binary: binary,
        work_dir: scratch.path().join("work"),
        pull: Some(pull),
    };
    let secrets = cais_build::Secrets::from_map(read_secrets(&a.secrets)?);
    let opts = cais_build::Options {
        context,
        dockerfile,
        dockerfile_text,
        tags: a.tags.clone(),
        target: a.target.clone(),
        build_args,
        labels: a.labels()?,
        no_cache: a.no_cache,
        pull: a.pull,
        source_date_epoch,
        iidfile: a.iidfile.clone(),
        secrets,
        platform: a.platform.clone(),
        ..Default::default()
    };
    let stdout = std::io::stdout();
    let result = if quiet {
        cais_build::build(&env, &opts, &mut Silent)
    } else {
        cais_build::build(&env, &opts, &mut cais_build::WriterProgress(stdout.lock()))
    };
    match result {
        Ok(built) => {
            if quiet {
                println!("{}", built.image_id);
            }
            Ok(0)
        }
        Err(cais_build::Error::Failed { command, code, .. }) => {
            eprintln!("The command '{command}' returned a non-zero code: {code}");
            Ok(if code == 0 { 1 } else { code })
        }
        Err(e) => Err(anyhow::Error::from(e)),
    }
}

/// Progress that shows nothing (`-q`).
struct Silent;

impl cais_build::Progress for Silent {
    fn step(&mut self, _text: &str) {}
    fn output(&mut self, _bytes: &[u8]) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_and_dockerfiles_on_stdin_are_told_apart() {
        assert!(looks_like_archive(&[0x1f, 0x8b, 8, 0]));
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert!(looks_like_archive(&tar));
        assert!(!looks_like_archive(b"FROM busybox\nRUN true\n"));
    }
}
