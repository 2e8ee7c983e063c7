//! Containers: what one is (`state`), its record on disk (`record`), the
//! table that holds them all (`table`), and the jobs around them: health
//! checks (`health`), monitors and restart decisions (`monitor`), exec
//! sessions (`exec`), mounts (`mounts`), the life cycle (`lifecycle`) and
//! what the API shows of them (`inspect`).

pub mod exec;
pub(crate) mod health;
pub mod inspect;
pub mod lifecycle;
pub(crate) mod monitor;
pub(crate) mod mounts;
pub mod record;
pub mod state;
pub mod table;
