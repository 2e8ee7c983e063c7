//! The engine: containers made from images, supervised by a per-container
//! shim, served over the Docker Engine API by `cais daemon`.
//!
//! Each job has an owner with its own type and module; `engine::Engine`
//! is a small facade that opens the state and composes them. Modules, from
//! the bottom up; each imports only modules listed before it, and modules
//! of one step (the handlers) never each other (`tests/layering.rs`
//! checks it):
//!
//! 1. Leaves: `error` (the crate's error type: variants with context and
//!    a source), `timing` (steps of an operation, logged at debug level),
//!    `trash` (directories deleted by a background thread), `config` (directories, the runtime command, a
//!    container's cgroup), `ids` (random ids and names), `events`,
//!    `filters` (dockerd's filter semantics), `logfile` (json-file with
//!    size rotation, the log drivers' options), `spec` (config.json from
//!    the image config, the container config and Docker's default
//!    security profile), `devices` (host devices, device cgroup rules,
//!    device requests and CDI specs as spec edits), `shim`
//!    (the per-container supervisor, single threaded, and its client
//!    side), `volumes`, `images` (the engine's side of the image store:
//!    views, pulls with docker's progress), `archive` (the `cp` helper
//!    process, which enters the container's root), `build` (`POST
//!    /build`'s run: the context unpacked with the image crate's
//!    contained extraction, then `cais_build::build` with the engine's
//!    pull; and what BuildKit's protocol builds with),
//!    `networks::netconf` (pure networking: port specs, /etc files, the
//!    firewall ruleset from state, name resolution, network modes, what a
//!    running container holds), `containers::fields` (how every field of
//!    a create, update or exec request is handled: the table) and
//!    `containers::settings` (a request checked as dockerd checks it:
//!    refusals, warnings, defaults).
//! 2. `containers::state` (a container in memory; its `State` enum and
//!    the changes the life cycle may make to it), `containers::record`
//!    (the versioned on-disk record, every version written so far
//!    readable), `containers::table` (`Table`: every container, each
//!    persisted as `<root>/engine/containers/<id>/container.json`, writes
//!    ordered per container).
//! 3. `networks::records` (`NetworkStore`: network records under
//!    `<root>/engine/networks`, address allocation, the `/networks`
//!    operations that only read containers), then `networks::wiring`
//!    (`Wiring`: a container wired at start, from what its record holds,
//!    and torn down from it; connect and disconnect; the level-triggered
//!    firewall; the embedded DNS server).
//! 4. `containers::health` (health check threads), `containers::monitor`
//!    (shim waiters, restart decisions), `containers::mounts`,
//!    `containers::exec` (`Execs`: exec sessions and their terminals),
//!    `containers::inspect` (`Views`: inspect, `ps`, top, stats, changes).
//! 5. `containers::lifecycle` (`Containers`: create, start, stop, exits,
//!    restart policies, removal, live restore, commit, updates).
//! 6. `engine` (the facade, which also holds the `cais_buildkit` service
//!    with `build::BuildKitHost`), then `http` (`plumbing`, `handlers`,
//!    `router`, serving; see its docs), then `daemon` (the listeners).
//!
//! Lock order: a thread holding one of these locks takes only locks
//! listed after it. `Wiring::ops` (network teardown against restore) →
//! `Wiring::firewall` (the ruleset last applied) → `NetworkStore`'s
//! records → `Table`'s containers → one container's `RecordWriter`. The
//! other locks are leaves, held while taking no other engine lock:
//! `Wiring::ports`, `Execs::sessions`, `Containers::attach_gate`, the
//! event history. `Table::with` runs its closure under the table lock, so
//! the closure takes no lock at all.
//!
//! Logging goes through `tracing`; the binary installs the subscriber.

pub mod archive;
mod build;
pub mod config;
pub mod containers;
pub mod daemon;
pub mod devices;
pub mod engine;
pub mod error;
pub mod events;
pub mod filters;
pub mod http;
mod ids;
mod images;
pub mod logfile;
pub mod networks;
pub mod shim;
pub mod spec;
mod timing;
mod trash;
pub mod volumes;

/// Entry points for the fuzz targets (`fuzz/`) and their corpus tests: each
/// takes arbitrary bytes and panics only on a broken invariant. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    /// A build context body (see `build`).
    pub fn build_context(data: &[u8]) {
        crate::build::fuzz_context(data)
    }

    /// The `filters` query parameter, against every endpoint's key set, and
    /// what was accepted applied to a sample of labels and an event.
    pub fn filters(data: &[u8]) {
        use crate::filters::*;
        let raw = String::from_utf8_lossy(data);
        let labels = std::collections::BTreeMap::from([
            ("a".to_string(), "1".to_string()),
            ("com.docker.compose.project".to_string(), "p".to_string()),
        ]);
        let event = cais_api::Event::default();
        for accepts in [
            CONTAINER_LIST,
            IMAGE_LIST,
            NETWORK_LIST,
            VOLUME_LIST,
            EVENTS,
            PRUNE,
            IMAGE_PRUNE,
            VOLUME_PRUNE,
        ] {
            if let Ok(f) = Filters::parse(Some(&raw), accepts) {
                let _ = f.labels_match(&labels);
                let _ = f.boolean("dangling");
                let _ = f.until(1_700_000_000);
                let _ = f.check_container_statuses();
                let _ = event_matches(&f, &event);
                for v in f.values("name") {
                    let _ = name_matches(v, "/p_web_1");
                }
            }
        }
    }
}
