//! The OCI distribution registry server (`cais registry serve|gc`).
//!
//! `storage` holds the on-disk layout; `server` the listener, TLS, routing
//! and the HTTP endpoints (`blobs`, `manifests`, `sendfile` for blob
//! bodies), with `ApiError` the one place failures become the spec's
//! `{"errors":[...]}` answers (`error_code`: the spec's code table); `auth`
//! users, access lists and tokens; `gc` the collector of unreferenced
//! blobs; `cli` the `cais registry` subcommands. Digests, names, tags and
//! manifest validation are the shared model's (`cais-oci`), so the server
//! checks a push exactly as the client and the image store read it.
//!
//! A crate of its own because it is the one user of an async HTTP server
//! stack (hyper, tokio, tokio-rustls) and of bcrypt: the image store,
//! builds and the engine reach registries through the blocking client
//! (`cais-registry`) and never compile this. Storage keeps sha256 content
//! only (the algorithm the spec requires); other digests are refused where
//! they enter (request paths, queries, manifest descriptors).
pub mod auth;
pub mod cli;
pub mod error_code;
pub mod gc;
pub mod server;
pub mod storage;

pub use error_code::ErrorCode;
