//! The OCI runtime: an OCI bundle (config.json + rootfs) in, a container process out.

pub mod seccomp;
