//! The client's errors. A request the server refused carries the server's
//! `metav1.Status` ([`Status`]), so callers match on its reason.

use std::path::PathBuf;

use serde::Deserialize;

/// A `metav1.Status` as the server sends it with a failed request.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    #[serde(default)]
    pub code: u16,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading kubeconfig {path}")]
    ReadConfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("kubeconfig {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("connecting to {address}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("http exchange with {address}: {reason}")]
    Http { address: String, reason: String },
    #[error("{method} {path}: {} ({}): {}", .status.code, .status.reason, .status.message)]
    Api {
        method: String,
        path: String,
        status: Status,
    },
    #[error("decoding the answer to {path}: {reason}")]
    Decode { path: String, reason: String },
    #[error("encoding a request to {path}: {reason}")]
    Encode { path: String, reason: String },
    #[error("the lease {namespace}/{name} was lost to {holder}")]
    LeaseLost {
        namespace: String,
        name: String,
        holder: String,
    },
}

impl Error {
    /// The Status reason of a refused request (`NotFound`, `Conflict`,
    /// `AlreadyExists`, `Expired`, ...), empty for other errors.
    pub fn reason(&self) -> &str {
        match self {
            Error::Api { status, .. } => &status.reason,
            _ => "",
        }
    }

    /// The HTTP code of a refused request, 0 for other errors.
    pub fn code(&self) -> u16 {
        match self {
            Error::Api { status, .. } => status.code,
            _ => 0,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code() == 404
    }

    pub fn is_conflict(&self) -> bool {
        self.code() == 409 && self.reason() == "Conflict"
    }

    pub fn is_already_exists(&self) -> bool {
        self.reason() == "AlreadyExists"
    }

    /// 410: the resource version asked for is compacted away (list again).
    pub fn is_gone(&self) -> bool {
        self.code() == 410
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
