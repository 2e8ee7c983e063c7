//! OCI distribution: the registry server (and, later, the client).
pub mod cli;
