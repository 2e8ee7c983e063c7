//! Persistent network namespaces: a new namespace kept alive by a bind
//! mount of its nsfs file (like `ip netns add`), which a container joins by
//! path (OCI `linux.namespaces[].path`).

use std::path::Path;

use crate::Result;

/// Creates a network namespace bound at `path` (parent dirs created) with
/// `lo` up. Fails if `path` already holds one.
pub fn create(_path: &Path) -> Result<()> {
    todo!()
}

/// Unmounts and removes `path`; a missing path is not an error.
pub fn remove(_path: &Path) -> Result<()> {
    todo!()
}

/// Runs `f` on a short-lived thread that has joined the namespace at
/// `path` (the calling thread never changes namespace).
pub fn run_in<T: Send>(_path: &Path, _f: impl FnOnce() -> T + Send) -> Result<T> {
    todo!()
}
