//! Persistent network namespaces: a new namespace kept alive by a bind
//! mount of its nsfs file (like `ip netns add`), which a container joins by
//! path (OCI `linux.namespaces[].path`).
//!
//! The daemon is multi-threaded, so nothing here forks. Namespace changes
//! happen on a dedicated short-lived thread: a network namespace is a
//! per-thread attribute (unshare(2) and setns(2) with CLONE_NEWNET act on
//! the calling thread only), so the caller's thread and the async runtime's
//! workers never change namespace.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::{Error, Result};

fn io_err(op: &'static str, path: &Path, source: io::Error) -> Error {
    Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn cstring(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::InvalidArgument(format!("path {path:?} contains a NUL byte")))
}

/// Creates a network namespace bound at `path` (parent dirs created) with
/// `lo` up. Fails if `path` already holds one.
pub fn create(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io_err("create directory", dir, e))?;
    }
    // The mount point: an empty file, created exclusively so that two
    // creations of one path cannot both succeed (as `ip netns add` does).
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => Error::Conflict(format!(
                "network namespace {} already exists",
                path.display()
            )),
            _ => io_err("create network namespace file", path, e),
        })?;

    let target = cstring(path)?;
    let result = std::thread::scope(|s| {
        s.spawn(|| unshare_and_bind(path, &target))
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    });
    if let Err(e) = result {
        // Nothing may stay behind: the mount (if it happened) and the file.
        let _ = remove(path);
        return Err(e);
    }
    Ok(())
}

/// On a thread of its own: enters a new network namespace, binds its nsfs
/// file onto `path` and brings `lo` up. The thread then ends; the bind
/// mount keeps the namespace alive (namespaces(7), "/proc/[pid]/ns/").
fn unshare_and_bind(path: &Path, target: &CString) -> Result<()> {
    // SAFETY: unshare only changes this thread's namespace membership.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(io_err(
            "unshare network namespace for",
            path,
            io::Error::last_os_error(),
        ));
    }
    // /proc/thread-self: /proc/self/ns/net would name the main thread's
    // namespace, not this thread's (proc(5)).
    let source = c"/proc/thread-self/ns/net";
    // SAFETY: both strings are NUL-terminated; fstype and data may be null
    // for a bind mount (mount(2)).
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(io_err(
            "bind-mount network namespace at",
            path,
            io::Error::last_os_error(),
        ));
    }
    crate::link::set_up("lo")
}

/// Unmounts and removes `path`; a missing path is not an error.
pub fn remove(path: &Path) -> Result<()> {
    let target = cstring(path)?;
    // MNT_DETACH: a process still inside the namespace keeps it alive, the
    // path goes at once (umount(2)).
    // SAFETY: umount2 only reads the NUL-terminated path `target` owns,
    // which outlives the call; the flags are an integer.
    if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } != 0 {
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            // ENOENT: nothing there; EINVAL: a file that is not mounted on
            // (a half-made namespace).
            Some(libc::ENOENT) | Some(libc::EINVAL) => {}
            _ => return Err(io_err("unmount network namespace", path, e)),
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove network namespace file", path, e)),
    }
}

/// Runs `f` on a short-lived thread that has joined the namespace at
/// `path` (the calling thread never changes namespace).
///
/// Sockets `f` creates stay in that namespace after the thread ends
/// (socket(7): a socket belongs to the namespace it was created in).
/// A panic in `f` is propagated to the caller.
pub fn run_in<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> Result<T> {
    let ns = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::InvalidArgument(format!(
                "network namespace {} does not exist",
                path.display()
            )),
            _ => io_err("open network namespace", path, e),
        })?;
    run_in_file(&ns, path, f)
}

/// [`run_in`] for a namespace file already open (`path` is for messages).
pub fn run_in_file<T: Send>(ns: &File, path: &Path, f: impl FnOnce() -> T + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            // nstype CLONE_NEWNET makes the kernel check that the file
            // really is a network namespace (setns(2)).
            // SAFETY: ns is an open descriptor; setns affects this thread.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io_err(
                    "enter network namespace",
                    path,
                    io::Error::last_os_error(),
                ));
            }
            Ok(f())
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_namespace_is_an_error_and_removal_is_idempotent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("nope");
        let err = run_in(&p, || ()).expect_err("missing");
        assert!(err.to_string().contains("does not exist"), "{err}");
        remove(&p).expect("missing is fine");
        // A plain file (not a namespace) is refused by setns and removable.
        std::fs::write(&p, b"").expect("write");
        assert!(run_in(&p, || ()).is_err());
        remove(&p).expect("remove plain file");
        assert!(!p.exists());
    }
}
