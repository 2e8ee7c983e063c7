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
//! - [`plan`]: desired state against what the labels find: ordered,
//!   dependency-aware actions, run with independent services in parallel.
//!
//! Errors name the file and dotted key they are about. Prints nothing.

pub mod dotenv;
pub mod error;
pub mod interpolate;
pub mod labels;
pub mod loader;
pub mod merge;
pub mod model;
pub mod schema;
pub mod yaml;

pub use error::{Error, Result};
pub use loader::{load, Options};
pub use model::{Project, Service};
