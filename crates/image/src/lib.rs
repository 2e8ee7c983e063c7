//! The image store: a digest-addressed content store, image metadata
//! (names and tags pointing at immutable manifests), layer unpacking into
//! shared snapshots, an overlay snapshotter, layer diffs and image commit,
//! docker-archive / OCI-layout save and load, and garbage collection.
//!
//! # On disk
//!
//! Everything lives under one data root (`/var/lib/cais` by default):
//!
//! ```text
//! content/blobs/<alg>/<hex>   blobs (manifests, indexes, configs, layers)
//! content/tmp/<pid>-...       blobs being written; never read
//! images.json                 names -> manifests, replaced atomically
//! snapshots/<alg>-<hex>/fs    one unpacked layer per diff ID, shared
//! snapshots/tmp/<pid>-...     layers being unpacked; never mounted
//! l/<12 hex>                  short links to snapshots, for mount options
//! containers/<id>/            a container's upper, work and rootfs dirs
//! lock, ingest.lock           flock(2) files (metadata writes, GC vs ingest)
//! ```
//!
//! # Module map
//!
//! `content` holds blobs by digest (written to `tmp/`, hashed, fsynced,
//! checked, renamed). `store` keeps image metadata (manifests by digest,
//! tags) in one JSON file replaced atomically under a lock, and does
//! tag/remove/prune/GC/verify; ingestion holds a shared lease that GC waits
//! for. `digest`, `reference` and `oci` re-export the shared OCI model
//! (`cais-oci`: digests, references normalized like Docker, OCI and Docker
//! schema 2 manifests, indexes, configs and platforms); `oci` adds the
//! store's JSON serializer, and `time` formats timestamps. `unpack` unpacks
//! a layer once per diff ID into `snapshots/`, with every entry created through
//! directory descriptors (`O_NOFOLLOW`), and turns whiteouts into overlayfs
//! ones. `snapshot` describes a container's overlay mount, performs and
//! undoes it, diffs an upper dir back to a layer and commits images.
//! `archive` does save/load (docker-archive + OCI layout) and rootfs
//! import. `pull` / `push` move images between a registry client and the
//! store: a pull validates manifest and config in memory, streams missing
//! layers on a few threads into a content-store writer and through the
//! decompressor into a temporary snapshot, and records the name last.
//!
//! # API in brief
//!
//! - [`ContentStore`]: [`writer`](ContentStore::writer) streams a blob to a
//!   temporary file while hashing it; [`BlobWriter::commit`] checks digest
//!   and size, fsyncs and renames, so nothing partial or mismatched is ever
//!   visible. Also `exists`, `open`, `read`, `path`, `put`, `ingest`,
//!   `delete`, `list`, `verify`.
//! - [`ImageStore`]: opens a data root and owns a [`ContentStore`].
//!   [`ImageStore::lease`] keeps GC away while a pull writes blobs;
//!   [`ImageStore::record_pull`] records an image whose manifest (or index)
//!   and blobs are already in the content store, unpacking its layers
//!   (`check_image` + `record` when several images must appear together);
//!   `resolve`, `list`, `tag`, `remove`, `prune`, `gc`, `verify`,
//!   `remove_stale_temps`; `set_in_use_check` is the engine's hook that
//!   keeps images its containers use.
//! - [`unpack::unpack_layer`]: a layer blob into `snapshots/`, once per
//!   diff ID, refusing entries that would land outside the layer.
//! - [`snapshot`]: [`ImageStore::prepare_container`] describes a
//!   container's overlay mount ([`snapshot::OverlayMount`]: lowerdirs,
//!   upperdir, workdir, target); [`snapshot::mount`] / [`snapshot::unmount`]
//!   perform and undo it; [`snapshot::diff`] turns an upper dir back into a
//!   layer tar; [`ImageStore::commit_container`] makes an image of it.
//! - [`archive`]: `save` (docker-archive that is also an OCI layout),
//!   `load` (either format), `import` of a root filesystem tarball.
//!
//! Rollback: tags point at immutable manifests, so pointing a tag back at an
//! earlier manifest digest or image id ([`ImageStore::tag`]) restores it.

pub mod archive;
pub mod content;
pub mod oci;
pub mod pull;
pub mod push;
pub mod snapshot;
pub mod store;
pub mod time;
pub mod unpack;

use std::path::{Path, PathBuf};

pub use cais_oci::{digest, reference, Digest, Platform, Reference};
pub use content::{BlobWriter, ContentStore};
pub use store::{ImageRecord, ImageStore};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the image store. Semantic variants (`NotFound`, `Conflict`,
/// `InvalidArgument`, ...) let callers map them to API statuses directly.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context} {path}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A digest, reference, manifest, index, platform or config that
    /// breaks the OCI formats (or that the store cannot use).
    #[error(transparent)]
    Oci(#[from] cais_oci::Error),
    #[error("content does not match digest: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("blob {digest} has {actual} bytes, expected {expected}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("layer {layer}: refusing entry {entry:?}: {reason}")]
    UnsafeLayerEntry {
        layer: Digest,
        entry: String,
        reason: String,
    },
    #[error("layer {layer}: {reason}")]
    BadLayer { layer: Digest, reason: String },
    #[error("layer {layer} unpacks to {actual}, but the config says {expected}")]
    DiffIdMismatch {
        layer: Digest,
        expected: Digest,
        actual: Digest,
    },
    #[error("bad archive: {reason}")]
    BadArchive { reason: String },
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{what} already exists")]
    AlreadyExists { what: String },
    #[error("conflict: {reason}")]
    Conflict { reason: String },
    #[error("{reason}")]
    InvalidArgument { reason: String },
    #[error("{context}: {reason}")]
    Json { context: String, reason: String },
    #[error("{action} {target}")]
    Mount {
        action: &'static str,
        target: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Wraps an io::Error with what was being done to which path.
pub(crate) fn io_err(context: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io {
        context,
        path,
        source,
    }
}
