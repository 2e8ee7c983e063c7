//! The engine: containers made from images, supervised by a per-container
//! shim, served over the Docker Engine API by `cais daemon`.
//!
//! `engine` holds the container manager; `server`, `stream` and `images`
//! the HTTP API; `shim` the per-container supervisor; `spec` turns image
//! and container configs into an OCI bundle; `logfile`, `volumes`,
//! `events`, `health` and `system` complete it.

pub mod archive;
mod build;
pub mod daemon;
pub mod engine;
pub mod error;
pub mod events;
mod health;
mod images;
pub mod logfile;
mod netconf;
pub mod network;
pub mod server;
pub mod shim;
pub mod spec;
mod stream;
mod system;
pub mod volumes;
