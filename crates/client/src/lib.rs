//! The engine API's client side, for every program that drives a cais (or
//! docker) daemon: the `cais` command line today, Compose and the node
//! agent next.
//!
//! - [`http`]: HTTP/1.1 over the daemon's unix socket: JSON requests,
//!   streamed bodies (logs, events, progress), hijacked attach/exec streams.
//!   Errors carry the daemon's status and message.
//! - [`opts`]: docker's command-line grammars (`-p`, `-v`, `--mount`,
//!   `--tmpfs`, durations, byte sizes, `--env-file`, `--filter`), parsed
//!   into API wire types before any request, with docker's wording for what
//!   they refuse.
//!
//! Depends on `cais-api` alone among the project's crates (checked by the
//! tidy test); prints nothing.

mod endpoints;
pub mod http;
pub mod opts;

pub use endpoints::Query;
pub use http::{Client, Error, Result};
