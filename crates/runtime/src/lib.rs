//! The OCI runtime: an OCI bundle (config.json + rootfs) in, a container
//! process out. It knows nothing of images, registries or the engine.
//!
//! Module map:
//! - `container` holds the operations the CLI calls (the parent side:
//!   create, start, kill, delete, exec, pause...).
//! - `init` is everything between fork and exec in the children.
//! - `rootfs` does mounts, devices, `pivot_root`, masked and read-only
//!   paths (with a `secure_join` that keeps symlinks inside the rootfs).
//! - `process` sets capabilities, user, groups and rlimits; `placement`
//!   the scheduling policy, CPU affinity and NUMA memory policy; `lsm`
//!   AppArmor and SELinux labels; `rdt` Intel RDT groups in resctrl.
//! - `seccomp` compiles the OCI profile to classic BPF in pure Rust
//!   (syscall tables generated from kernel headers by `gen_syscalls.sh`)
//!   and loads it.
//! - `spec_ext` reads what the `oci-spec` crate misses or misnames in
//!   config.json (scheduler flags, id-mapped mounts, RDT schemata).
//! - `bundle` reads config.json and holds the default spec and seccomp
//!   profile; `sealed` re-executes from a read-only view of the binary;
//!   `log` writes runc's log format (`--log FILE --log-format json`);
//!   `hooks`, `state`, `channel`, `console`, `tty` and `signal` are the
//!   other supporting pieces.

pub mod bundle;
pub mod channel;
pub mod console;
pub mod container;
pub mod error;
pub mod hooks;
mod init;
pub mod log;
pub mod lsm;
pub mod placement;
pub mod process;
pub mod rdt;
pub mod rootfs;
pub mod sealed;
pub mod seccomp;
pub mod signal;
pub mod spec_ext;
pub mod state;
mod tty;

pub use container::{with_short_path, CreateOptions, ExecOptions, ProcessIo, Runtime};
pub use error::{Error, Result};
pub use state::{State, Status};
