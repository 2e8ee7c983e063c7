//! The engine: containers made from images, supervised by a per-container
//! shim, served over the Docker Engine API by `cais daemon`.
//!
//! Module map:
//! - `engine` is the container manager: records persisted under
//!   `<root>/engine/containers/<id>/`, life cycle, stop (signal, grace
//!   period, SIGKILL), restart policies with back-off, live restore, exec,
//!   commit. `daemon` starts it and the listeners; `error` is the crate's
//!   error type.
//! - `shim` is the per-container supervisor (single threaded, poll loop, no
//!   async runtime) and its client side. `spec` builds config.json (image
//!   config + container config + Docker's default security profile).
//! - `server` routes HTTP (hyper, unix socket, `/vN.NN` prefix, HTTP
//!   upgrade for attach and exec) and maps errors to status codes in one
//!   place; `stream` serves logs, attach, exec and stats; `images` the image
//!   endpoints (list, inspect, tag, rmi, history, save, load, import, pull,
//!   push); `archive` serves `cp` through a helper process chrooted into the
//!   container's root; `build` serves `POST /build` (the classic builder's
//!   protocol: the context tar unpacked with the image crate's contained
//!   extraction, `cais_build::build` with the engine's pull, docker's JSON
//!   lines); `volumes`, `events`, `health`, `logfile` (json-file with size
//!   rotation) and `system` (info, df, diff, update) complete it.
//! - `network` keeps network records (`<root>/engine/networks/<id>.json`,
//!   with the addresses running containers hold), serves `/networks`, and
//!   wires a container at start: a namespace at `<exec_root>/netns/<id>`,
//!   one veth per network (eth0 has the default route), reserved ports,
//!   /etc/hosts and resolv.conf, DNS. What a running container holds is
//!   persisted in its record (`Record::net`), so stop, exit, rm, a failed
//!   start and a daemon restart all tear down through one function from the
//!   record. `netconf` holds the pure parts (port specs, /etc files, the
//!   firewall ruleset from state, name resolution), unit-tested.
//!
//! Logging goes through `tracing`; the binary installs the subscriber.

pub mod archive;
mod build;
pub mod daemon;
pub mod engine;
pub mod error;
pub mod events;
pub mod filters;
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
