//! Compose: the Compose Specification read into a model, and a planner
//! that brings an engine's containers, networks and volumes to that model
//! through the engine API (`cais-client`), never through engine internals.
//!
//! - [`loader`]: which files, the environment (`.env`, `--env-file`),
//!   per file parse → interpolate → schema check → `extends` / `include`,
//!   then merge, project name, model, profiles, reference checks.
//! - [`yaml`]: YAML with anchors, merge keys and `!reset`/`!override`
//!   tags in, block YAML out (for `config`).
//! - [`interpolate`]: `${VAR:-default}` and the other forms.
//! - [`dotenv`]: the `.env` format.
//! - [`schema`]: the file's shape, checked before anything else reads it.
//! - [`merge`]: the rules for several `-f` files and `extends`.
//! - [`model`]: the normalised model (long syntax, absolute paths).
//! - [`labels`]: names and `com.docker.compose.*` labels, the config hash.
//! - [`plan`]: desired state against what the labels find, per service,
//!   and the dependency levels services go up in.
//! - [`create`]: a service's container as the API's create body.
//! - [`run`]: `up`, `down` and the lookups of the other commands, through
//!   `cais-client`, independent services and replicas in parallel.
//!
//! Errors name the file and dotted key they are about. Prints nothing.

pub mod create;
pub mod dotenv;
pub mod error;
pub mod interpolate;
pub mod labels;
pub mod loader;
pub mod merge;
pub mod model;
pub mod plan;
pub mod run;
pub mod schema;
pub mod yaml;

pub use error::{Error, Result};
pub use loader::{load, Options};
pub use model::{Project, Service};
