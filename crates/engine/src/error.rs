//! The engine's error type. Each variant says what failed, with the
//! context that names it (a path, a container, a kind of object), and
//! carries the error underneath as its `source`. Two things are chosen
//! from it elsewhere, once each: the HTTP status (`http::error_response`)
//! and the message clients see, which is the whole chain
//! (`Error::message`). Messages the docker CLI prints are worded as
//! dockerd words them.

use std::path::PathBuf;

/// What kind of object was not found, which picks dockerd's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Container,
    Image,
    Network,
    Volume,
    Exec,
    /// An exec instance with a terminal (resize).
    ExecTerminal,
    /// A volume or network driver.
    Plugin,
    /// An API path (`name` is the method and path, or empty).
    Page,
}

impl Kind {
    fn missing(self, name: &str) -> String {
        match self {
            Kind::Container => format!("No such container: {name}"),
            Kind::Image => format!("No such image: {name}"),
            Kind::Network => format!("network {name} not found"),
            Kind::Volume => format!("get {name}: no such volume"),
            Kind::Exec => format!("No such exec instance: {name}"),
            Kind::ExecTerminal => format!("No such exec instance with a terminal: {name}"),
            Kind::Plugin => format!("plugin {name:?} not found"),
            Kind::Page if name.is_empty() => "page not found".into(),
            Kind::Page => format!("page not found: {name}"),
        }
    }
}

/// dockerd's answer to swarm-only requests on a node outside a swarm.
pub const NOT_A_SWARM_MANAGER: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";

/// A change a container's state does not allow (see `containers::state`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {verb} a container that is {state}")]
pub struct IllegalChange {
    /// The state's word (`running`, `exited`...).
    pub state: &'static str,
    /// What was asked, as a verb phrase.
    pub verb: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The named object does not exist.
    #[error("{}", kind.missing(name))]
    NotFound { kind: Kind, name: String },
    /// The request conflicts with what exists (a name in use, a container
    /// that is running...); the message is dockerd's.
    #[error("{0}")]
    Conflict(String),
    /// The request is wrong; the message says how.
    #[error("{0}")]
    InvalidArgument(String),
    /// Refused by policy (a predefined network, one still in use...).
    #[error("{0}")]
    Forbidden(String),
    /// Nothing to do (start a running container...).
    #[error("{0}")]
    NotModified(String),
    /// The node is not in the state the request needs (swarm endpoints on
    /// a node outside a swarm: dockerd's 503 and words).
    #[error("{0}")]
    Unavailable(String),
    /// What this daemon or configuration cannot do (starting or joining a
    /// swarm; `logs` of a container whose log driver keeps none).
    #[error("{0}")]
    NotImplemented(String),
    /// A change the container's state does not allow.
    #[error(transparent)]
    IllegalChange(#[from] IllegalChange),
    /// A file or directory operation.
    #[error("{action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A program the engine runs (the runtime, a shim, the cp helper, ps)
    /// could not be run.
    #[error("running {}", program.display())]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A program the engine runs failed; `message` is what it said, in
    /// its own words (the runtime's and the shim's are dockerd's).
    #[error("{message}")]
    Failed {
        program: &'static str,
        message: String,
    },
    /// The runtime library failed an operation the daemon does itself on a
    /// container (signal, freeze, thaw, delete).
    #[error("{action} container {id}")]
    Runtime {
        action: &'static str,
        id: String,
        #[source]
        source: cais_runtime::Error,
    },
    /// The shim could not create the container (dockerd's words, then the
    /// runtime's).
    #[error("failed to create task for container: {reason}")]
    CreateTask { reason: String },
    /// The shim could not start the container's process.
    #[error("failed to start container: {reason}")]
    StartTask { reason: String },
    /// The cp helper refused a path inside the container; `missing` when
    /// the path is not there.
    #[error("{message}")]
    Archive { message: String, missing: bool },
    /// Talking to a container's shim over its socket.
    #[error("talking to the shim of container {id}")]
    Shim {
        id: String,
        #[source]
        source: std::io::Error,
    },
    /// JSON that should have been whole: a helper's report, a record, a
    /// container's config.
    #[error("reading {what}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// A container record written by a newer daemon.
    #[error("the container record {} has version {version}; this daemon reads versions up to {supported}", path.display())]
    RecordVersion {
        path: PathBuf,
        version: u32,
        supported: u32,
    },
    /// The image store (a missing image, one that exists, or a failure).
    #[error(transparent)]
    Image(#[from] cais_image::Error),
    /// The request's own image input (an archive to load or import),
    /// refused by the image store.
    #[error(transparent)]
    ImageInput(cais_image::Error),
    /// A name, platform or digest the request gave, refused by the OCI
    /// model.
    #[error(transparent)]
    OciInput(cais_image::oci::Error),
    /// A registry a pull could not reach before its stream began.
    #[error(transparent)]
    Registry(cais_registry::client::Error),
    /// A build (bad input, a failed `RUN`, or a failure).
    #[error(transparent)]
    Build(cais_build::Error),
    /// Container networking.
    #[error(transparent)]
    Net(cais_net::Error),
    /// A host port someone else holds (dockerd's words).
    #[error("Bind for {addr} failed: port is already allocated")]
    PortInUse { addr: String },
    /// A published port that could not be reserved at start (dockerd's
    /// words).
    #[error("driver failed programming external connectivity on endpoint {container} ({endpoint}): Bind for {addr} failed: port is already allocated")]
    PortPublish {
        container: String,
        endpoint: String,
        addr: String,
    },
    /// A container's cgroup.
    #[error("{action} the cgroup of container {id}")]
    Cgroups {
        action: &'static str,
        id: String,
        #[source]
        source: cais_cgroups::Error,
    },
    /// A container that outlived SIGKILL.
    #[error("container {id} did not exit within {seconds} seconds of SIGKILL")]
    KillTimeout { id: String, seconds: u64 },
    /// The daemon's own machinery: the async runtime, a blocking task, a
    /// listener.
    #[error("{action}")]
    Daemon {
        action: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// What clients are told: the error and its sources, on one line.
    pub fn message(&self) -> String {
        chain(self)
    }

    pub(crate) fn not_found(kind: Kind, name: impl Into<String>) -> Error {
        Error::NotFound {
            kind,
            name: name.into(),
        }
    }

    /// Wraps an I/O error with what was being done to which path.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }

    /// Wraps a failure to run `program`.
    pub(crate) fn spawn(program: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let program = program.into();
        move |source| Error::Spawn { program, source }
    }

    /// Wraps a failure of the runtime library on container `id`.
    pub(crate) fn runtime(
        action: &'static str,
        id: &str,
    ) -> impl FnOnce(cais_runtime::Error) -> Error {
        let id = id.to_string();
        move |source| Error::Runtime { action, id, source }
    }

    /// Wraps a failure of the daemon's own machinery.
    pub(crate) fn daemon(
        action: impl Into<String>,
    ) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> Error {
        let action = action.into();
        move |source| Error::Daemon { action, source }
    }
}

impl From<cais_net::Error> for Error {
    /// The network crate's input errors and conflicts are the request's:
    /// their messages stand alone; anything else is a networking failure.
    fn from(e: cais_net::Error) -> Error {
        match e {
            cais_net::Error::InvalidArgument(m) => Error::InvalidArgument(m),
            cais_net::Error::Conflict(m) => Error::Conflict(m),
            cais_net::Error::PortInUse { addr } => Error::PortInUse { addr },
            other => Error::Net(other),
        }
    }
}

pub use cais_runtime::error::chain;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_dockerds_and_carry_their_sources() {
        for (e, want) in [
            (
                Error::not_found(Kind::Container, "web"),
                "No such container: web",
            ),
            (
                Error::not_found(Kind::Image, "nosuch"),
                "No such image: nosuch",
            ),
            (
                Error::not_found(Kind::Network, "nosuch"),
                "network nosuch not found",
            ),
            (Error::not_found(Kind::Volume, "v"), "get v: no such volume"),
            (
                Error::not_found(Kind::Exec, "abc"),
                "No such exec instance: abc",
            ),
            (
                Error::not_found(Kind::Plugin, "weave"),
                "plugin \"weave\" not found",
            ),
            (Error::not_found(Kind::Page, ""), "page not found"),
            (
                Error::not_found(Kind::Page, "GET /x"),
                "page not found: GET /x",
            ),
            (
                Error::from(cais_net::Error::PortInUse {
                    addr: "0.0.0.0:80".into(),
                }),
                "Bind for 0.0.0.0:80 failed: port is already allocated",
            ),
            (
                Error::from(cais_net::Error::InvalidArgument("bad port".into())),
                "bad port",
            ),
        ] {
            assert_eq!(e.message(), want);
        }
        let io = Error::io("writing config.json", "/b/config.json")(std::io::Error::from(
            std::io::ErrorKind::PermissionDenied,
        ));
        assert!(
            std::error::Error::source(&io).is_some(),
            "the cause is kept as the source"
        );
        assert_eq!(
            io.message(),
            "writing config.json /b/config.json: permission denied"
        );
        let image = Error::from(cais_image::Error::NotFound {
            what: "image busybox".into(),
        });
        assert_eq!(image.message(), "image busybox not found");
    }
}
