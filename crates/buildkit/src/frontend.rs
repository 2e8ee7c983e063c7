//! The `dockerfile.v0` frontend: a solve's attributes checked and mapped
//! onto the Dockerfile executor of `cais-build`, the inputs fetched from
//! the client's session, the build run, the result tagged.
//!
//! Attributes read: `filename`, `dockerfilekey`, `contextkey`, `context`
//! and `dockerfile` (only `local:NAME`), `target`, `build-arg:NAME`,
//! `label:NAME`, `no-cache` (a stage list rebuilds everything),
//! `image-resolve-mode` (`pull` pulls base images again), `platform` (this
//! host's only), `force-network-mode` (`host` or unset: `RUN` steps share
//! the host's network), `local-sessionid:NAME`. Refused with a reason:
//! named contexts (`context:NAME`), remote contexts, subrequests
//! (`requestid`, `docker build --call`), other network modes, several
//! platforms, LLB inputs. Ignored with a warning in the build's log:
//! `cache-from`/`cache-imports` (the daemon's step cache is always used),
//! `add-hosts`, `shm-size`, `ulimit`. Other attributes (attestations,
//! `multi-platform`, `hostname`, `cgroup-parent`, `frontend.caps`) change
//! nothing here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::filesync::{self, Received};
use crate::progress::{Reporter, Steps};
use crate::session::Session;
use crate::{Error, Inner, Platform};

pub(crate) const DOCKERFILE_FRONTEND: &str = "dockerfile.v0";

/// A checked `dockerfile.v0` request.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Dockerfile {
    pub filename: String,
    /// The client's local directory holding the Dockerfile.
    pub dockerfile_local: String,
    /// The client's local directory that is the build context.
    pub context_local: String,
    pub target: Option<String>,
    pub build_args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub no_cache: bool,
    pub pull: bool,
    pub source_date_epoch: Option<i64>,
    /// Local directory → session id, for directories another session serves.
    pub local_sessions: BTreeMap<String, String>,
    /// Shown in the build's log.
    pub warnings: Vec<String>,
}

/// `linux/amd64` and its aliases, normalized.
fn normalize_arch(a: &str) -> &str {
    match a {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "i386" | "i686" => "386",
        other => other,
    }
}

fn check_platform(value: &str, host: &Platform) -> Result<(), Error> {
    let wanted: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if wanted.len() > 1 {
        return Err(Error::invalid(format!(
            "building for several platforms at once ({value}) is not supported: cais builds for {host} only"
        )));
    }
    for p in wanted {
        let mut parts = p.split('/');
        let os = parts.next().unwrap_or_default();
        let arch = parts.next().map(normalize_arch);
        let variant = parts.next();
        let ok = os == host.os
            && arch.is_none_or(|a| a == normalize_arch(&host.architecture))
            && variant.is_none_or(|v| host.variant.as_deref().is_none_or(|h| h == v));
        if !ok {
            return Err(Error::invalid(format!(
                "cannot build for platform {p}: cais builds for {host} only"
            )));
        }
    }
    Ok(())
}

/// `local:NAME` → NAME; anything else is a remote or LLB input.
fn local_name(key: &str, value: &str) -> Result<String, Error> {
    match value.strip_prefix("local:") {
        Some(n) if !n.is_empty() => Ok(n.to_string()),
        _ => Err(Error::invalid(format!(
            "the {key} {value:?} is not a local directory: remote contexts (URLs, git, images, LLB inputs) are not supported; send a local directory"
        ))),
    }
}

/// Checks a solve for the Dockerfile frontend and maps its attributes.
pub(crate) fn parse(
    frontend: &str,
    attrs: &BTreeMap<String, String>,
    host: &Platform,
) -> Result<Dockerfile, Error> {
    match frontend {
        DOCKERFILE_FRONTEND => {}
        "gateway.v0" => {
            return Err(Error::invalid(format!(
                "frontend gateway.v0 (a `# syntax=` directive or BUILDKIT_SYNTAX naming {:?}) is not supported: cais builds Dockerfiles with its own frontend, dockerfile.v0",
                attrs.get("source").map(String::as_str).unwrap_or_default()
            )))
        }
        other => {
            return Err(Error::invalid(format!(
                "frontend {other:?} not supported: cais serves the dockerfile.v0 frontend only"
            )))
        }
    }
    let mut d = Dockerfile {
        filename: "Dockerfile".into(),
        dockerfile_local: "dockerfile".into(),
        context_local: "context".into(),
        ..Default::default()
    };
    for (k, v) in attrs {
        if let Some(name) = k.strip_prefix("build-arg:") {
            d.build_args.insert(name.to_string(), v.clone());
        } else if let Some(name) = k.strip_prefix("label:") {
            d.labels.insert(name.to_string(), v.clone());
        } else if let Some(name) = k.strip_prefix("local-sessionid:") {
            d.local_sessions.insert(name.to_string(), v.clone());
        } else if let Some(name) = k.strip_prefix("context:") {
            return Err(Error::invalid(format!(
                "additional build context {name:?} ({v}) is not supported: cais builds from one context"
            )));
        } else {
            match k.as_str() {
                "filename" if !v.is_empty() => d.filename = v.clone(),
                "dockerfilekey" if !v.is_empty() => d.dockerfile_local = v.clone(),
                "contextkey" if !v.is_empty() => d.context_local = v.clone(),
                "context" => d.context_local = local_name("context", v)?,
                "dockerfile" => d.dockerfile_local = local_name("dockerfile", v)?,
                "target" if !v.is_empty() => d.target = Some(v.clone()),
                "no-cache" => {
                    d.no_cache = true;
                    if !v.is_empty() {
                        d.warnings.push(format!(
                            "no-cache for stages {v}: cais rebuilds every stage instead"
                        ));
                    }
                }
                "image-resolve-mode" => match v.as_str() {
                    "pull" => d.pull = true,
                    "" | "default" | "local" => {}
                    other => {
                        return Err(Error::invalid(format!(
                            "invalid image-resolve-mode {other:?}: one of default, pull, local"
                        )))
                    }
                },
                "platform" => check_platform(v, host)?,
                "force-network-mode" => match v.as_str() {
                    "" | "host" | "default" => {}
                    other => {
                        return Err(Error::invalid(format!(
                            "network mode {other:?} for RUN is not supported: cais runs build steps on the host's network"
                        )))
                    }
                },
                "requestid" if !v.is_empty() => {
                    return Err(Error::invalid(format!(
                        "subrequest {v:?} (docker build --call/--check) is not supported by cais"
                    )))
                }
                "cache-from" | "cache-imports" if !v.is_empty() => d.warnings.push(format!(
                    "cache import {v} ignored: cais reuses its own step cache only"
                )),
                "add-hosts" | "shm-size" | "ulimit" if !v.is_empty() => d
                    .warnings
                    .push(format!("{k}={v} is not supported by cais and was ignored")),
                _ => {}
            }
        }
    }
    if let Some(v) = d.build_args.get("SOURCE_DATE_EPOCH") {
        d.source_date_epoch = Some(v.parse().map_err(|_| {
            Error::invalid(format!(
                "invalid SOURCE_DATE_EPOCH {v:?}: not a number of seconds"
            ))
        })?);
    }
    Ok(d)
}

/// The patterns of a `.dockerignore` as the client's filter takes them:
/// comments and blank lines dropped, a leading `/` removed.
fn ignore_patterns(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (neg, p) = match l.strip_prefix('!') {
                Some(p) => ("!", p.trim()),
                None => ("", l),
            };
            let p = p.trim_start_matches('/');
            format!("{neg}{}", if p.is_empty() { "." } else { p })
        })
        .collect()
}

fn mkdir(path: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(path).map_err(Error::io("creating", path))
}

/// The message of a failed build, in BuildKit's words for a failed step.
pub(crate) fn build_error(e: &cais_build::Error) -> String {
    match e {
        cais_build::Error::Failed { command, code, .. } => {
            format!("process \"{command}\" did not complete successfully: exit code: {code}")
        }
        other => crate::chain(other),
    }
}

/// What a finished build produced.
pub(crate) struct Output {
    pub built: cais_build::Built,
    pub tags: Vec<String>,
}

impl Inner {
    async fn session_for(
        &self,
        main: &Arc<Session>,
        req: &Dockerfile,
        local: &str,
    ) -> Result<Arc<Session>, Error> {
        match req.local_sessions.get(local) {
            Some(id) if id != &main.id => self.sessions.get(id, Duration::from_secs(30)).await,
            _ => Ok(main.clone()),
        }
    }

    /// Fetches the inputs, runs the build and tags the result with `tags`
    /// (already normalized by the host).
    pub(crate) async fn run_dockerfile(
        self: &Arc<Self>,
        reporter: &Reporter,
        session: &Arc<Session>,
        req: &Dockerfile,
        tags: Vec<String>,
    ) -> Result<Output, Error> {
        let base = self.host.scratch_dir();
        mkdir(&base)?;
        let scratch = tempfile::Builder::new()
            .prefix("buildkit-")
            .tempdir_in(&base)
            .map_err(Error::io("creating a build directory in", &base))?;

        // The Dockerfile, and a Dockerfile-specific ignore file beside it.
        let step = reporter.start(format!(
            "[internal] load build definition from {}",
            req.filename
        ));
        let df_dir = scratch.path().join("dockerfile");
        mkdir(&df_dir)?;
        let own_ignore = format!("{}.dockerignore", req.filename);
        let s = self
            .session_for(session, req, &req.dockerfile_local)
            .await?;
        let fetched = filesync::receive(
            &s,
            &filesync::Request {
                dir_name: req.dockerfile_local.clone(),
                follow_paths: vec![req.filename.clone(), own_ignore.clone()],
                ..Default::default()
            },
            &df_dir,
            |_| {},
        )
        .await;
        let text = fetched.and_then(|_| {
            let rel = filesync_relative(&req.filename)?;
            std::fs::read_to_string(df_dir.join(rel)).map_err(|e| {
                Error::invalid(format!(
                    "failed to read dockerfile: open {}: {e}",
                    req.filename
                ))
            })
        });
        let text = match text {
            Ok(t) => t,
            Err(e) => {
                reporter.failed(&step, &e.to_string());
                return Err(e);
            }
        };
        for w in &req.warnings {
            reporter.log(&step, 2, format!("warning: {w}\n"));
        }
        reporter.done(&step);

        // The ignore file, then the context without what it excludes.
        let step = reporter.start("[internal] load .dockerignore");
        let own = filesync_relative(&own_ignore)
            .ok()
            .and_then(|r| std::fs::read_to_string(df_dir.join(r)).ok());
        let ignore = match own {
            Some(t) => Some(t),
            None => {
                let dir = scratch.path().join("ignore");
                mkdir(&dir)?;
                let s = self.session_for(session, req, &req.context_local).await?;
                let r = filesync::receive(
                    &s,
                    &filesync::Request {
                        dir_name: req.context_local.clone(),
                        follow_paths: vec![".dockerignore".into()],
                        ..Default::default()
                    },
                    &dir,
                    |_| {},
                )
                .await;
                if let Err(e) = r {
                    reporter.failed(&step, &e.to_string());
                    return Err(e);
                }
                std::fs::read_to_string(dir.join(".dockerignore")).ok()
            }
        };
        reporter.done(&step);

        let step = reporter.start("[internal] load build context");
        let context = scratch.path().join("context");
        mkdir(&context)?;
        let s = self.session_for(session, req, &req.context_local).await?;
        let counter = reporter.clone();
        let counted = step.clone();
        // A counter update per file would flood the log of a big context.
        let mut last = std::time::Instant::now();
        let r = filesync::receive(
            &s,
            &filesync::Request {
                dir_name: req.context_local.clone(),
                exclude_patterns: ignore.as_deref().map(ignore_patterns).unwrap_or_default(),
                ..Default::default()
            },
            &context,
            move |r: Received| {
                if last.elapsed() >= Duration::from_millis(100) {
                    last = std::time::Instant::now();
                    counter.count(&counted, "transferring context", r.bytes as i64, false);
                }
            },
        )
        .await;
        let received = match r {
            Ok(r) => r,
            Err(e) => {
                reporter.failed(&step, &e.to_string());
                return Err(e);
            }
        };
        reporter.count(&step, "transferring context", received.bytes as i64, true);
        if let Some(text) = &ignore {
            // The executor reads the context's .dockerignore for COPY; the
            // rules it applies must be the ones the transfer used.
            let p = context.join(".dockerignore");
            let _ = std::fs::remove_file(&p);
            std::fs::write(&p, text).map_err(Error::io("writing", &p))?;
        }
        reporter.done(&step);

        // The build itself, on a blocking thread that owns the scratch
        // directory: it is removed when the build ends, whoever waits.
        let credentials_session = session.clone();
        let handle = tokio::runtime::Handle::current();
        let credentials: crate::CredentialsFn = Arc::new(move |registry: &str| {
            let s = credentials_session.clone();
            let registry = registry.to_string();
            handle.block_on(async move { s.credentials(&registry).await })
        });
        let env = self
            .host
            .environment(scratch.path().join("work"), credentials);
        let opts = cais_build::Options {
            context,
            dockerfile: Some(PathBuf::from(&req.filename)),
            dockerfile_text: Some(text),
            tags: Vec::new(),
            target: req.target.clone(),
            build_args: req.build_args.clone(),
            labels: req.labels.clone(),
            no_cache: req.no_cache,
            pull: req.pull,
            source_date_epoch: req.source_date_epoch,
            iidfile: None,
            // The local cache and the host's network, as before the
            // classic builder's `cachefrom` and `networkmode` existed.
            ..Default::default()
        };
        let mut steps = Steps::new(reporter.clone());
        let result = tokio::task::spawn_blocking(move || {
            let r = cais_build::build(&env, &opts, &mut steps);
            let message = r.as_ref().err().map(build_error);
            steps.finish(message.as_deref());
            drop(env);
            drop(scratch);
            r.map_err(|e| (message.unwrap_or_default(), e))
        })
        .await
        .map_err(|e| Error::Internal {
            reason: format!("the build thread failed: {e}"),
        })?;
        let built = match result {
            Ok(b) => b,
            Err((message, e)) => return Err(Error::Build { message, source: e }),
        };

        // Export: the tags move only now that everything succeeded.
        let step = reporter.start("exporting to image");
        reporter.log(&step, 2, format!("writing image {} done\n", built.image_id));
        if !tags.is_empty() {
            if let Err(e) = self.host.tag(&built, &tags) {
                reporter.failed(&step, &e.to_string());
                return Err(e);
            }
            for t in &tags {
                reporter.log(&step, 2, format!("naming to {t} done\n"));
            }
        }
        reporter.done(&step);
        Ok(Output { built, tags })
    }
}

fn filesync_relative(p: &str) -> Result<PathBuf, Error> {
    let path = Path::new(p.trim_start_matches("./"));
    if path.is_absolute()
        || path
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(Error::invalid(format!(
            "the Dockerfile name {p:?} must be a path inside its directory"
        )));
    }
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }

    fn attrs(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn attributes_map_onto_the_executor() {
        let d = parse(
            DOCKERFILE_FRONTEND,
            &attrs(&[
                ("filename", "Dockerfile.dev"),
                ("target", "app"),
                ("build-arg:A", "1"),
                ("build-arg:SOURCE_DATE_EPOCH", "10"),
                ("label:k", "v"),
                ("no-cache", ""),
                ("image-resolve-mode", "pull"),
                ("platform", "linux/x86_64"),
                ("force-network-mode", "host"),
                ("local-sessionid:context", "s2"),
                ("cache-from", "type=registry,ref=x"),
                ("attest:provenance", "mode=min"),
            ]),
            &host(),
        )
        .expect("valid");
        assert_eq!(d.filename, "Dockerfile.dev");
        assert_eq!(d.target.as_deref(), Some("app"));
        assert_eq!(d.build_args["A"], "1");
        assert_eq!(d.source_date_epoch, Some(10));
        assert_eq!(d.labels["k"], "v");
        assert!(d.no_cache && d.pull);
        assert_eq!(d.local_sessions["context"], "s2");
        assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
        assert_eq!(
            (d.context_local.as_str(), d.dockerfile_local.as_str()),
            ("context", "dockerfile")
        );
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_with_a_reason() {
        for (frontend, kv, want) in [
            ("nope.v0", ("x", "y"), "frontend \"nope.v0\" not supported"),
            (
                "gateway.v0",
                ("source", "docker/dockerfile:1"),
                "gateway.v0",
            ),
            (
                DOCKERFILE_FRONTEND,
                ("platform", "linux/s390x"),
                "cannot build for platform",
            ),
            (
                DOCKERFILE_FRONTEND,
                ("platform", "linux/amd64,linux/arm64"),
                "several platforms",
            ),
            (
                DOCKERFILE_FRONTEND,
                ("context:base", "docker-image://busybox"),
                "additional build context",
            ),
            (
                DOCKERFILE_FRONTEND,
                ("context", "https://example.com/x.git"),
                "remote contexts",
            ),
            (
                DOCKERFILE_FRONTEND,
                ("force-network-mode", "none"),
                "network mode",
            ),
            (
                DOCKERFILE_FRONTEND,
                ("requestid", "frontend.outline"),
                "subrequest",
            ),
            (
                DOCKERFILE_FRONTEND,
                ("image-resolve-mode", "sometimes"),
                "image-resolve-mode",
            ),
            (
                DOCKERFILE_FRONTEND,
                ("build-arg:SOURCE_DATE_EPOCH", "soon"),
                "SOURCE_DATE_EPOCH",
            ),
        ] {
            let e = parse(frontend, &attrs(&[kv]), &host()).expect_err(want);
            assert!(e.to_string().contains(want), "{kv:?}: {e}");
        }
    }

    #[test]
    fn ignore_files_become_client_patterns() {
        assert_eq!(
            ignore_patterns("# comment\n\n/secret.txt\n*.log\n ! /keep.log \nnode_modules\n"),
            ["secret.txt", "*.log", "!keep.log", "node_modules"]
        );
    }

    #[test]
    fn failed_steps_read_as_buildkit_says_them() {
        let e = cais_build::Error::Failed {
            step: 2,
            command: "/bin/sh -c exit 3".into(),
            code: 3,
        };
        assert_eq!(
            build_error(&e),
            "process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3"
        );
    }
}
