//! OCI distribution: the registry server and client.
//!
//! `distribution` holds wire types both sides share; `storage` the on-disk
//! layout; `server` the HTTP endpoints; `auth` users, access lists and
//! tokens; `gc` the collector of unreferenced blobs.
pub mod auth;
pub mod cli;
pub mod client;
pub mod distribution;
pub mod gc;
pub mod server;
pub mod storage;
