//! The engine: containers made from images, supervised by a per-container
//! shim, served over the Docker Engine API by `cais daemon`.

pub mod logfile;
pub mod shim;
pub mod spec;
