//! OCI distribution: the registry server and client.
//!
//! The server (`cais registry serve`): `distribution` holds wire types both
//! sides share; `storage` the on-disk layout; `server` the HTTP endpoints
//! (`blobs`, `manifests`, `sendfile` for blob bodies); `auth` users, access
//! lists and tokens; `gc` the collector of unreferenced blobs; `cli` the
//! `cais registry` subcommands.
//!
//! `client` is a blocking client (ureq + rustls) that learns the auth scheme
//! from the first 401 (`client::auth`: Basic, bearer tokens cached per
//! scope), checks manifests (`client::manifest`), streams blobs through a
//! size-and-digest-checking reader and pushes (HEAD, cross-repository
//! mount, PUT or PATCH chunks). `client::tls` trusts the system roots,
//! `--ca-cert` and `certs.d`; `client::credentials` reads docker's
//! `config.json`; `client::reference` parses names. The client knows
//! nothing of the image store.
pub mod auth;
pub mod cli;
pub mod client;
pub mod distribution;
pub mod gc;
pub mod server;
pub mod storage;
