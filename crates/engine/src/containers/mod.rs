//! Containers: what one is (`state`), its record on disk (`record`), the
//! table that holds them all (`table`), how a request's settings are
//! checked (`settings`), and the jobs around them: health
//! checks (`health`), monitors and restart decisions (`monitor`), exec
//! sessions (`exec`), mounts (`mounts`), the life cycle (`lifecycle`) and
//! what the API shows of them (`inspect`).

pub mod exec;
pub mod fields;
pub(crate) mod health;
pub mod inspect;
pub mod lifecycle;
pub(crate) mod monitor;
pub(crate) mod mounts;
pub mod record;
pub mod settings;
pub mod state;
pub mod table;
