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
//! - `http` serves the API (hyper, unix socket, `/vN.NN` prefix, HTTP
//!   upgrade for attach and exec): `http::router` holds every endpoint,
//!   `http::handlers` one module per resource group, `http::plumbing` what
//!   they share and `error_response`, the one place errors become status
//!   codes. `images` is the engine's side of the image store (views,
//!   pulls with docker's progress); `archive` the `cp` helper process,
//!   which enters the container's root; `build` runs `POST /build` (the
//!   context tar unpacked with the image crate's contained extraction,
//!   `cais_build::build` with the engine's pull); `volumes`, `events` and
//!   `logfile` (json-file with size rotation) complete it.
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
pub mod http;
mod images;
pub mod logfile;
mod netconf;
pub mod network;
pub mod shim;
pub mod spec;
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
