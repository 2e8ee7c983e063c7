use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while managing a cgroup.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading mount table {path}")]
    MountTable { path: PathBuf, source: io::Error },

    #[error("malformed mountinfo line {line}: {reason}")]
    MountInfo { line: usize, reason: String },

    #[error("no cgroup hierarchy is mounted")]
    NoCgroups,

    #[error("invalid cgroups path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },

    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },

    #[error("controller {controller} is not available on this host (needed for {resource})")]
    ControllerMissing {
        controller: &'static str,
        resource: &'static str,
    },

    #[error("{what} is not supported with {hierarchy}")]
    Unsupported {
        what: &'static str,
        hierarchy: &'static str,
    },

    #[error("reading {path}")]
    Read { path: PathBuf, source: io::Error },

    #[error("writing {value:?} to {path}")]
    Write {
        path: PathBuf,
        value: String,
        source: io::Error,
    },

    #[error("parsing {path}: {reason}")]
    Parse { path: PathBuf, reason: String },

    #[error("creating cgroup directory {path}")]
    Create { path: PathBuf, source: io::Error },

    #[error("removing cgroup directory {path}")]
    Remove { path: PathBuf, source: io::Error },

    #[error("timed out waiting for {path} to reach state {state}")]
    FreezeTimeout { path: PathBuf, state: &'static str },

    #[error("bpf {op} for {path}{log}")]
    Bpf {
        op: &'static str,
        path: PathBuf,
        /// Verifier log, prefixed with ": " when present.
        log: String,
        source: io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
