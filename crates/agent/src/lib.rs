//! The node agent of `cais kube`: runs the pods bound to its node on a
//! container engine, which it drives through the engine API alone
//! (`cais-client` over the engine's socket), so the engine owns
//! containers, networks and firewall, and pods outlive the agent.
//!
//! Module map:
//! - `pod`: pure translation of a pod spec into engine requests: names,
//!   the labels that map containers back to pods, environment (with
//!   config maps and secrets), volumes and their files;
//! - `pause`: the sandbox image, a hand-assembled static ELF that sleeps,
//!   imported through the API so no registry is needed;
//! - `runtime`: pods on the engine: sandbox, init containers in order,
//!   containers, restarts with back-off, image pulls, status, removal;
//! - `node`: the Node object (capacity from the machine) and its Lease;
//! - `agent`: the loop: register, heartbeat, watch the pods bound to the
//!   node, sync them on the engine, write their status back;
//! - `server`: the HTTPS endpoint the API server proxies `pods/log` to;
//! - `error`: the crate's errors.

pub mod agent;
pub mod error;
pub mod node;
pub mod pause;
pub mod pod;
pub mod runtime;
pub mod server;

pub use error::{Error, Result};
pub use runtime::{Config, Runtime};

/// The Kubernetes types the agent speaks (for callers and tests).
pub use k8s_openapi;
