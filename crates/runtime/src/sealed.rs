//! Runs the runtime from a copy of its binary that cannot be written.
//!
//! CVE-2019-5736: a process inside a container could open `/proc/PID/exe` of a
//! runtime process that had joined the container and, once that process was
//! gone, reopen it for writing and overwrite the host's runtime binary. Every
//! runtime process that enters a container (`create`, `run`, `exec`) first
//! re-executes itself from a binary nothing can write through:
//!
//! 1. a detached, read-only bind mount of its own binary (open_tree(2) with
//!    OPEN_TREE_CLONE, then mount_setattr(2) MOUNT_ATTR_RDONLY). The mount is
//!    attached nowhere, so no process can remount it writable; every path
//!    through `/proc/PID/exe` ends on it and a write open fails with EROFS.
//!    It costs two syscalls, not a copy of the binary.
//! 2. where those syscalls are missing (kernels before 5.12), a copy in a
//!    memfd sealed against writes (F_SEAL_WRITE and friends).

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

const MEMFD_NAME: &[u8] = b"cais-sealed\0";

/// True when this process already runs from a binary that cannot be
/// written: the sealed memfd copy, or any binary on a read-only mount (the
/// detached bind mount, or a binary installed on a read-only filesystem).
pub fn is_sealed() -> bool {
    let memfd = std::fs::read_link("/proc/self/exe")
        .map(|p| p.to_string_lossy().starts_with("/memfd:cais-sealed"))
        .unwrap_or(false);
    memfd
        || nix::sys::statvfs::statvfs("/proc/self/exe")
            .map(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
            .unwrap_or(false)
}

/// Re-executes the current process from a read-only view of its binary.
/// Returns only on failure.
pub fn reexec() -> std::io::Result<std::convert::Infallible> {
    exec_fd(read_only_view()?.as_raw_fd())
}

/// A read-only view of this process's binary (close-on-exec), for a
/// long-lived process that starts runtime processes: executed through
/// `/proc/self/fd/N` they run sealed from the start and need no
/// re-execution of their own. The detached bind mount where the kernel
/// has one, else the sealed memfd copy.
pub fn read_only_view() -> std::io::Result<OwnedFd> {
    match read_only_mount(c"/proc/self/exe") {
        Ok(fd) => Ok(fd),
        Err(_) => Ok(OwnedFd::from(sealed_copy()?)),
    }
}

/// A detached read-only bind mount of `path`, as an fd.
fn read_only_mount(path: &std::ffi::CStr) -> std::io::Result<OwnedFd> {
    // SAFETY: a valid C string; constant flags.
    let tree = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            (libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC) as libc::c_uint,
        )
    };
    if tree < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: open_tree returned a new fd that we own.
    let tree = unsafe { OwnedFd::from_raw_fd(tree as i32) };
    #[repr(C)]
    struct MountAttr {
        set: u64,
        clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        set: libc::MOUNT_ATTR_RDONLY,
        clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: a valid fd and attribute struct of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(tree)
}

/// A memfd copy of the binary, sealed against writes.
fn sealed_copy() -> std::io::Result<File> {
    // SAFETY: a valid NUL-terminated name; flags are constants.
    let fd = unsafe {
        libc::memfd_create(
            MEMFD_NAME.as_ptr().cast(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by memfd_create and is owned here.
    let mut copy = unsafe { File::from_raw_fd(fd) };
    let mut exe = File::open("/proc/self/exe")?;
    std::io::copy(&mut exe, &mut copy)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: F_ADD_SEALS takes an integer seal mask, no pointer; `copy` keeps the
    // memfd open across the call.
    Errno::result(unsafe { libc::fcntl(copy.as_raw_fd(), libc::F_ADD_SEALS, seals) })?;
    Ok(copy)
}

fn exec_fd(fd: i32) -> std::io::Result<std::convert::Infallible> {
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.into_encoded_bytes()).map_err(std::io::Error::other))
        .collect::<Result<_, _>>()?;
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend(v.into_encoded_bytes());
            CString::new(kv).map_err(std::io::Error::other)
        })
        .collect::<Result<_, _>>()?;
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: argv and envp are NULL-terminated arrays of valid C strings that
    // outlive the call; AT_EMPTY_PATH executes the fd itself.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd,
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Err(std::io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_views_of_the_binary_refuse_writes() {
        let copy = sealed_copy().expect("memfd copy");
        let path = format!("/proc/self/fd/{}", copy.as_raw_fd());
        let write = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"x"));
        assert!(write.is_err(), "a sealed copy refuses writes");
        // open_tree needs CAP_SYS_ADMIN; without it only the memfd path is
        // used. A file that is not running, so the answer is EROFS and not
        // ETXTBSY.
        let file = tempfile::NamedTempFile::new().expect("temp file");
        let c = CString::new(file.path().as_os_str().as_encoded_bytes()).expect("path");
        if let Ok(tree) = read_only_mount(&c) {
            let path = format!("/proc/self/fd/{}", tree.as_raw_fd());
            let err = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .expect_err("read-only mount");
            assert_eq!(err.raw_os_error(), Some(libc::EROFS));
        }
    }
}
