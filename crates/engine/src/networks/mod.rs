//! Networks: their records (`records`), wiring containers into them
//! (`wiring`), and the pure parts both use (`netconf`).

pub mod netconf;
pub mod records;
pub mod wiring;
