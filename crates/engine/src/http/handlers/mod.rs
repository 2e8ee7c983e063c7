//! One module per resource group. Handlers import `plumbing` and the
//! engine, never each other or the router.

pub(super) mod archive;
pub(super) mod build;
pub(super) mod buildkit;
pub(super) mod containers;
pub(super) mod exec;
pub(super) mod images;
pub(super) mod networks;
pub(super) mod swarm;
pub(super) mod system;
pub(super) mod volumes;
