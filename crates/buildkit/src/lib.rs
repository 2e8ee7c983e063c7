//! BuildKit's protocol on the engine daemon: what `docker compose build`,
//! buildx's `docker` driver and other BuildKit clients speak to a daemon's
//! embedded builder, served on top of cais's own Dockerfile executor
//! (`cais-build`).
//!
//! A client opens two hijacked connections, both upgraded to HTTP/2
//! (h2c): `POST /grpc`, where the daemon serves BuildKit's Control API
//! (`Solve`, `Status`, `ListWorkers`, `Info`) and the gateway its own build
//! function calls (`Ping`, `Solve`, `Return`); and `POST /session`, where
//! roles swap and the daemon calls the client's services: FileSync for the
//! build context and the Dockerfile, Auth for registry credentials. The
//! engine accepts the upgrades and hands both connections to [`BuildKit`].
//!
//! A build goes: the client's `Solve` names a ref, a session and an
//! exporter (the image's names); either it names the `dockerfile.v0`
//! frontend itself, or (buildx) it runs its build function, whose gateway
//! `Solve` asks for `dockerfile.v0` and whose `Return` hands back that
//! result. Then the Dockerfile, the `.dockerignore` and the context
//! (filtered by the client) are copied from the session into a scratch
//! directory under the host's, the executor builds, and only then are the
//! names set; `Status` streams the steps as vertexes meanwhile. Nothing is
//! tagged when anything fails, and the scratch directory goes however the
//! build ends.
//!
//! Modules: `proto` (the generated wire types, from `proto/`), `wire`
//! (gRPC over one HTTP/2 connection, both roles), `session` (the client's
//! sessions and calls into them), `filesync` (receiving a directory),
//! `jobs` (builds by ref: progress and gateway results), `progress`
//! (steps as vertexes), `frontend` (`dockerfile.v0` onto the executor),
//! `control` and `gateway` (the services).
//!
//! Not mapped (refused or ignored with a reason, see `frontend` and
//! `control`): LLB definitions from clients, custom frontends (`#
//! syntax=`), named and remote contexts, several platforms, exporters
//! other than the image store (`moby`/`image`), cache import and export,
//! `RUN --mount` (the executor ignores its flags), session secrets and SSH.

pub mod proto;

mod control;
mod filesync;
mod frontend;
mod gateway;
mod jobs;
mod progress;
mod session;
mod wire;

use std::path::PathBuf;
use std::sync::Arc;

pub use session::SessionHeaders;
pub use wire::{origin, serve, Channel};

/// The platform the host's builds produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A registry host → the client's (username, secret), from its session.
pub type CredentialsFn = Arc<dyn Fn(&str) -> Option<(String, String)> + Send + Sync>;

/// What the daemon provides to builds.
pub trait Host: Send + Sync + 'static {
    /// Where builds get their scratch directories (removed when they end).
    fn scratch_dir(&self) -> PathBuf;
    /// The executor's environment for one build: the store, the runtime,
    /// `work_dir` as its scratch, and a pull that asks `credentials`.
    fn environment(&self, work_dir: PathBuf, credentials: CredentialsFn)
        -> cais_build::Environment;
    /// Checks and normalizes image names (`web:1` →
    /// `docker.io/library/web:1`), before anything is built.
    fn normalize_tags(&self, names: &[String]) -> Result<Vec<String>, Error>;
    /// Points every name in `tags` at the built image, in one update.
    fn tag(&self, built: &cais_build::Built, tags: &[String]) -> Result<(), Error>;
    /// The platform builds produce.
    fn platform(&self) -> Platform;
    /// A name for this worker (the host name).
    fn hostname(&self) -> String;
}

/// Errors of the BuildKit service. Each becomes a gRPC status for the
/// client (`status`); messages are what BuildKit clients print after
/// "failed to solve:".
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client's request (attributes, exporters, frontend).
    #[error("{reason}")]
    InvalidArgument { reason: String },
    #[error("{what} not found")]
    NotFound { what: String },
    /// The session's connection closed, or a call on it failed.
    #[error("the client's session {id} ended {reason}")]
    SessionEnded { id: String, reason: String },
    /// A directory from the client was refused or broke off.
    #[error("receiving {dir:?} from the client: {reason}")]
    Transfer { dir: String, reason: String },
    /// The build failed; `message` in BuildKit's words.
    #[error("{message}")]
    Build {
        message: String,
        #[source]
        source: cais_build::Error,
    },
    /// The client's own build function failed (its `Return`).
    #[error("{message}")]
    Client { code: i32, message: String },
    #[error("{context} {path}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The host failed (tagging, the store).
    #[error("{reason}")]
    Host { reason: String },
    #[error("{reason}")]
    Internal { reason: String },
}

impl Error {
    pub(crate) fn invalid(reason: impl Into<String>) -> Error {
        Error::InvalidArgument {
            reason: reason.into(),
        }
    }

    pub(crate) fn io(
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

    /// The gRPC status a client receives.
    pub fn status(&self) -> tonic::Status {
        let message = match self {
            // The build's own words are the message; its cause chain is
            // already in them.
            Error::Build { message, .. } => message.clone(),
            other => chain(other),
        };
        match self {
            Error::InvalidArgument { .. } | Error::Transfer { .. } => {
                tonic::Status::invalid_argument(message)
            }
            Error::NotFound { .. } => tonic::Status::not_found(message),
            Error::SessionEnded { .. } => tonic::Status::aborted(message),
            Error::Client { code, .. } => tonic::Status::new(tonic::Code::from(*code), message),
            Error::Build { .. } => tonic::Status::unknown(message),
            Error::Io { .. } | Error::Host { .. } | Error::Internal { .. } => {
                tonic::Status::internal(message)
            }
        }
    }
}

/// An error and its sources, `: `-separated.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

pub(crate) struct Inner {
    host: Arc<dyn Host>,
    sessions: session::Sessions,
    jobs: jobs::Jobs,
}

impl Inner {
    /// The one worker, as `ListWorkers` and the gateway's `Ping` show it.
    fn worker(&self) -> proto::control::types::WorkerRecord {
        let p = self.host.platform();
        proto::control::types::WorkerRecord {
            id: "cais".into(),
            labels: [
                ("org.mobyproject.buildkit.worker.executor", "cais"),
                ("org.mobyproject.buildkit.worker.network", "host"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain([(
                "org.mobyproject.buildkit.worker.hostname".to_string(),
                self.host.hostname(),
            )])
            .collect(),
            platforms: vec![proto::pb::Platform {
                architecture: p.architecture,
                os: p.os,
                variant: p.variant.unwrap_or_default(),
                os_version: String::new(),
            }],
            buildkit_version: Some(version()),
        }
    }
}

fn version() -> proto::control::types::BuildkitVersion {
    proto::control::types::BuildkitVersion {
        package: "cais".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        revision: String::new(),
    }
}

/// The daemon's BuildKit service: one per daemon, shared by every
/// connection, since a solve on one connection names a session on another.
pub struct BuildKit {
    inner: Arc<Inner>,
}

impl BuildKit {
    pub fn new(host: Arc<dyn Host>) -> BuildKit {
        BuildKit {
            inner: Arc::new(Inner {
                host,
                sessions: Default::default(),
                jobs: Default::default(),
            }),
        }
    }

    /// Serves the Control API and the gateway on a `POST /grpc`
    /// connection, after its upgrade, until the client closes it.
    pub async fn serve_grpc<I>(&self, io: I)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let routes = tonic::service::Routes::new(
            proto::control::control_server::ControlServer::new(control::ControlService {
                inner: self.inner.clone(),
            }),
        )
        .add_service(proto::gateway::llb_bridge_server::LlbBridgeServer::new(
            gateway::GatewayService {
                inner: self.inner.clone(),
            },
        ));
        if let Err(e) = serve(io, routes).await {
            tracing::debug!(error = %e, "a BuildKit connection ended");
        }
    }

    /// Takes over a `POST /session` connection, after its upgrade, as the
    /// client's session, until it closes.
    pub async fn serve_session<I>(&self, headers: SessionHeaders, io: I) -> Result<(), Error>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        self.inner.sessions.run(headers, io).await
    }
}
