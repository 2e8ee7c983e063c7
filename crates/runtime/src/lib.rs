//! The OCI runtime: an OCI bundle (config.json + rootfs) in, a container
//! process out. It knows nothing of images, registries or the engine.
//!
//! Module map: `container` holds the operations the CLI calls (the parent
//! side); `init` is everything between fork and exec in the children;
//! `rootfs` mounts and pivots; `process` sets identity and limits; `seccomp`
//! compiles and loads filters; `hooks`, `state`, `bundle`, `channel`,
//! `console`, `tty`, `sealed` and `signal` are the supporting pieces.

pub mod bundle;
pub mod channel;
pub mod console;
pub mod container;
pub mod error;
pub mod hooks;
mod init;
pub mod log;
pub mod process;
pub mod rootfs;
pub mod sealed;
pub mod seccomp;
pub mod signal;
pub mod state;
mod tty;

pub use container::{with_short_path, CreateOptions, ExecOptions, Runtime};
pub use error::{Error, Result};
pub use state::{State, Status};
