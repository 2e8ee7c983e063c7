//! The runtime's error type. Variants carry the context (container id, path) the
//! message needs; messages say what the runtime was doing.

use std::path::PathBuf;

/// Everything that can go wrong in the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("container id {id:?} is invalid: {reason}")]
    InvalidId { id: String, reason: &'static str },
    #[error("container {0:?} already exists")]
    AlreadyExists(String),
    #[error("container {0:?} does not exist")]
    NotFound(String),
    #[error("container {id:?} is {status}: {action}")]
    WrongState {
        id: String,
        status: String,
        action: &'static str,
    },
    #[error("cannot read {path}")]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid OCI runtime config: {message}")]
    InvalidConfig { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {errno}")]
    Sys {
        context: String,
        errno: nix::errno::Errno,
    },
    #[error("container init failed: {0}")]
    Init(String),
    #[error("{0}")]
    Exec(String),
    #[error("hook {path} failed: {message}")]
    Hook { path: PathBuf, message: String },
    #[error("cgroups")]
    Cgroup(#[from] cais_cgroups::Error),
    #[error("seccomp")]
    Seccomp(#[from] crate::seccomp::Error),
    #[error("state file {path} is corrupt")]
    CorruptState {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds a context sentence to io and errno failures.
pub(crate) trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, std::io::Error> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: what(),
            source,
        })
    }
}

impl<T> Context<T> for std::result::Result<T, nix::errno::Errno> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|errno| Error::Sys {
            context: what(),
            errno,
        })
    }
}

/// Formats an error with its sources, as one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
