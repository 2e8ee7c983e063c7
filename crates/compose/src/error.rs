//! The crate's errors. Those of the loader name the file and the dotted
//! key (`services.web.ports.0`), with the line when the YAML parser knew
//! it; those of the planner name the service and container.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no configuration file provided: not found (looked for {looked_for} in {dir} and its parents)")]
    NoConfigFile { dir: PathBuf, looked_for: String },
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: yaml: {message}")]
    Yaml {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// The file's shape: an unknown key, a wrong type (the schema check).
    #[error("validating {file}: {key} {message}{}", line_note(*line))]
    Invalid {
        file: PathBuf,
        key: String,
        message: String,
        line: Option<usize>,
    },
    #[error("{file}: error while interpolating {key}: {message}")]
    Interpolation {
        file: PathBuf,
        key: String,
        message: String,
    },
    /// A value that fits the schema but means nothing (`ports: ["80:abc"]`),
    /// or a reference to something undefined.
    #[error("{file}: {key}: {message}")]
    Value {
        file: String,
        key: String,
        message: String,
    },
    #[error("{file}: {message}")]
    Env { file: PathBuf, message: String },
    #[error("invalid project name {name:?}: {reason}")]
    ProjectName { name: String, reason: String },
    #[error("{0}")]
    Project(String),
    #[error("no such service: {0}")]
    NoSuchService(String),
    #[error("{action}")]
    Daemon {
        action: String,
        #[source]
        source: cais_client::Error,
    },
    /// A dependency did not reach its condition; nothing that needs it ran.
    #[error("{0}")]
    Dependency(String),
    #[error("{0}")]
    Failed(String),
}

fn line_note(line: Option<usize>) -> String {
    line.map(|l| format!(" (line {l})")).unwrap_or_default()
}

pub type Result<T> = std::result::Result<T, Error>;

/// `.context(...)` for daemon calls.
pub trait DaemonContext<T> {
    fn doing(self, action: impl FnOnce() -> String) -> Result<T>;
}

impl<T> DaemonContext<T> for std::result::Result<T, cais_client::Error> {
    fn doing(self, action: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Daemon {
            action: action(),
            source,
        })
    }
}
