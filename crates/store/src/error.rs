//! The store's errors. Semantic variants first (what an API server maps to
//! HTTP statuses), then the backends' failures. Clonable, because one
//! failed group commit answers every write of its batch.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use crate::KeyValue;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    #[error("key {} already exists", .key.escape_ascii())]
    AlreadyExists { key: Bytes },

    #[error("key {} not found", .key.escape_ascii())]
    NotFound { key: Bytes },

    /// An update or delete named a revision that is no longer the key's.
    #[error(
        "key {} was expected at revision {expected} but is at {}",
        .key.escape_ascii(),
        .current.mod_revision
    )]
    Conflict {
        key: Bytes,
        expected: i64,
        current: Box<KeyValue>,
    },

    /// The revision asked for is older than the oldest one kept: list again.
    #[error("revision {requested} has been compacted (history starts at {compacted})")]
    Compacted { requested: i64, compacted: i64 },

    #[error("revision {requested} is ahead of the store's revision {current}")]
    FutureRevision { requested: i64, current: i64 },

    #[error("invalid request: {reason}")]
    InvalidArgument { reason: String },

    #[error("the store in {} is open in another process", .path.display())]
    Locked { path: PathBuf },

    #[error("the store in {} has schema version {found}, this build knows {known}", .path.display())]
    SchemaVersion {
        path: PathBuf,
        found: i64,
        known: i64,
    },

    #[error("{context} {}", .path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },

    #[error("sqlite: {context}")]
    Sqlite {
        context: &'static str,
        #[source]
        source: Arc<rusqlite::Error>,
    },

    #[error("the store is closed")]
    Closed,
}

impl Error {
    pub(crate) fn sqlite(context: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
        move |source| Error::Sqlite {
            context,
            source: Arc::new(source),
        }
    }

    pub(crate) fn io(context: &'static str, path: PathBuf) -> impl FnOnce(std::io::Error) -> Error {
        move |source| Error::Io {
            context,
            path,
            source: Arc::new(source),
        }
    }
}
