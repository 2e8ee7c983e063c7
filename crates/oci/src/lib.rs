//! The OCI image and distribution data model: content digests, image
//! references, descriptors, manifests, indexes, platforms and image configs
//! (OCI image-spec and their Docker schema 2 twins), and the checks the
//! image store and the registry make of them. No I/O: values in, values or
//! errors out (the hashing reader and writer wrap whatever stream they are
//! given).
//!
//! # Why a crate of its own
//!
//! Three crates read and write these formats: the image store
//! (`cais-image`), the registry client (`cais-registry`) and the registry
//! server (`cais-registry-server`). Each used to carry its own digest, its
//! own reference parser or its own manifest types, and they disagreed at
//! the edges (sha512, `library/` paths, platform variants). The model is
//! the part they share and it has no other job, so it lives below all
//! three and depends on no cais crate: the store gets it without an HTTP
//! client, the server without a content store, and nobody compiles the
//! server to parse a manifest.
//!
//! # Module map
//!
//! - `digest`: [`Digest`] (`sha256` or `sha512`, parsed and checked),
//!   [`digest::Hasher`] and the hashing reader and writer.
//! - `reference`: [`Reference`], image names normalized as Docker does
//!   (`busybox` is `docker.io/library/busybox:latest`), the repository name
//!   and tag grammars, registry names as users type them.
//! - `image`: media types, [`Descriptor`], [`Manifest`], [`Index`],
//!   [`Platform`], [`ImageConfig`], layer [`image::Compression`];
//!   [`image::parse_typed`] parses a manifest or index as the spec asks,
//!   [`Manifest::check_image`] adds what a runnable image needs
//!   ([`image::parse_manifest`] does both), and [`image::select_platform`]
//!   picks an index entry.
//! - `distribution`: what the distribution spec adds: the manifest types a
//!   registry serves, the size bound, a manifest reference (tag or digest)
//!   and [`distribution::ManifestRefs`], the content a pushed manifest
//!   needs the repository to hold.

pub mod digest;
pub mod distribution;
pub mod image;
pub mod reference;

pub use digest::Digest;
pub use image::{Descriptor, ImageConfig, Index, Manifest, Parsed, Platform};
pub use reference::Reference;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the model: a value that breaks its format. Each names the
/// value (or the digest of the document) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid digest {value:?}")]
    InvalidDigest { value: String },
    #[error("unsupported digest algorithm {algorithm:?}")]
    UnsupportedAlgorithm { algorithm: String },
    #[error("invalid repository name {value:?}")]
    InvalidName { value: String },
    #[error("invalid tag {value:?}")]
    InvalidTag { value: String },
    #[error("invalid reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("invalid platform {value:?}: expected os/arch[/variant]")]
    InvalidPlatform { value: String },
    #[error("invalid manifest {digest}: {reason}")]
    InvalidManifest { digest: Digest, reason: String },
    #[error("invalid image config {digest}: {reason}")]
    InvalidConfig { digest: Digest, reason: String },
    #[error("unsupported media type {media_type:?} for {what}")]
    UnsupportedMediaType { media_type: String, what: String },
    #[error("no manifest for platform {platform} in index {index}")]
    NoMatchingPlatform { platform: String, index: Digest },
}
