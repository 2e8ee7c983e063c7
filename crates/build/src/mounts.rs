//! What `RUN --mount` needs on the host: cache directories that outlive
//! builds, the tmpfs holding a build's secrets, and the clean-up of the
//! mount points the runtime had to create.
//!
//! Cache mounts live in the store's build-cache area,
//! `<store root>/cache-mounts/<sha256 of id>/<instance>/`, never in a
//! layer. Each instance has a lock file beside it (`<instance>.lock`,
//! flock(2)): `sharing=shared` holds it shared for the step, `locked`
//! exclusive (others wait), `private` takes the first instance nobody
//! holds. A new instance is created and seeded (`from`/`source`) under
//! the exclusive lock. `builder prune` removes every instance it can lock
//! exclusively, so a cache in use survives a prune.
//!
//! Secrets are written to a tmpfs mounted in the build's scratch directory
//! (mode 0700, never on disk) and bound read-only into the step; the bundle
//! of a step that gets secrets, whose environment may hold one, is written
//! there too. The tmpfs is unmounted when the build ends.
//!
//! Mount points: the runtime creates a mount's target (and missing
//! parents) in the step's root before mounting, and they would end up in
//! the layer. [`missing_parts`] notes which parts of a target did not exist
//! before the step; [`remove_stubs`] removes them from the upper directory
//! afterwards if they are still empty (the command did not put anything of
//! its own there).

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use cais_image::ImageStore;
use sha2::{Digest as _, Sha256};

use crate::dockerfile::run_flags::Sharing;
use crate::{io_err, Error, Result};

fn cache_area(store: &ImageStore) -> PathBuf {
    store.root().join("cache-mounts")
}

/// A lock on a cache instance, released when dropped (the descriptor
/// closes).
pub(crate) struct CacheLock {
    _file: fs::File,
}

fn flock(f: &fs::File, op: libc::c_int) -> std::io::Result<bool> {
    loop {
        // SAFETY: flock takes a descriptor `f` keeps open and an integer op.
        let r = unsafe { libc::flock(f.as_raw_fd(), op) };
        if r == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// How a new cache instance starts.
pub(crate) struct CacheInit<'a> {
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// A directory (or file) to copy in: `from`'s `source`.
    pub(crate) seed: Option<&'a Path>,
}

/// Opens (creating when new) the cache instance for `id` with `sharing`.
/// Returns the directory to mount and the lock to hold while it is.
pub(crate) fn open_cache(
    store: &ImageStore,
    id: &str,
    sharing: Sharing,
    init: &CacheInit<'_>,
) -> Result<(PathBuf, CacheLock)> {
    let hex: String = Sha256::digest(id.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let entry = cache_area(store).join(hex);
    fs::create_dir_all(&entry).map_err(io_err("create cache mount", &entry))?;
    // The id, for whoever looks at the directory.
    let _ = fs::write(entry.join("id"), id);
    for n in 0.. {
        let dir = entry.join(n.to_string());
        let lock_path = entry.join(format!("{n}.lock"));
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err("open cache lock", &lock_path))?;
        let lock_err = io_err("lock", &lock_path);
        let exclusive = match sharing {
            // Another private user holds this one: try the next.
            Sharing::Private => flock(&file, libc::LOCK_EX | libc::LOCK_NB).map_err(lock_err)?,
            Sharing::Locked | Sharing::Shared => flock(&file, libc::LOCK_EX).map_err(lock_err)?,
        };
        if !exclusive {
            continue;
        }
        if !dir.exists() {
            create_instance(&dir, init)?;
        }
        if sharing == Sharing::Shared {
            flock(&file, libc::LOCK_SH).map_err(io_err("lock", &lock_path))?;
        }
        return Ok((dir, CacheLock { _file: file }));
    }
    unreachable!("the instance loop only ends by returning")
}

/// A new instance: seeded in a temporary directory, then renamed into
/// place, so a build killed while seeding leaves no half cache.
fn create_instance(dir: &Path, init: &CacheInit<'_>) -> Result<()> {
    let tmp = dir.with_extension("new");
    let _ = cais_image::unpack::remove_tree(&tmp);
    fs::create_dir(&tmp).map_err(io_err("create cache mount", &tmp))?;
    if let Some(seed) = init.seed {
        let meta = fs::metadata(seed).map_err(io_err("stat", seed))?;
        if meta.is_dir() {
            copy_tree(seed, &tmp)?;
        } else {
            let name = seed.file_name().unwrap_or(seed.as_os_str());
            copy_tree(seed, &tmp.join(name))?;
        }
    }
    std::os::unix::fs::chown(&tmp, Some(init.uid), Some(init.gid))
        .map_err(io_err("chown", &tmp))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(init.mode))
        .map_err(io_err("chmod", &tmp))?;
    fs::rename(&tmp, dir).map_err(io_err("create cache mount", dir))
}

/// Copies a tree: directories, files, symlinks, with modes and owners.
fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(src).map_err(io_err("stat", src))?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        let t = fs::read_link(src).map_err(io_err("read link", src))?;
        std::os::unix::fs::symlink(&t, dst).map_err(io_err("symlink", dst))?;
    } else if ft.is_dir() {
        if !dst.is_dir() {
            fs::create_dir(dst).map_err(io_err("create directory", dst))?;
        }
        for e in fs::read_dir(src).map_err(io_err("read directory", src))? {
            let e = e.map_err(io_err("read directory", src))?;
            copy_tree(&e.path(), &dst.join(e.file_name()))?;
        }
        fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(io_err("chmod", dst))?;
    } else if ft.is_file() {
        fs::copy(src, dst).map_err(io_err("copy to", dst))?;
    } else {
        // Devices, fifos and sockets are no cache content.
        return Ok(());
    }
    std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid()))
        .map_err(io_err("chown", dst))?;
    Ok(())
}

/// `builder prune` for cache mounts: removes every instance no build
/// holds. Returns (instances removed, bytes freed).
pub(crate) fn prune_caches(store: &ImageStore) -> Result<(usize, u64)> {
    let area = cache_area(store);
    let Ok(entries) = fs::read_dir(&area) else {
        return Ok((0, 0));
    };
    let (mut removed, mut bytes) = (0, 0);
    for entry in entries.flatten() {
        let entry = entry.path();
        let Ok(items) = fs::read_dir(&entry) else {
            continue;
        };
        let mut busy = false;
        for item in items.flatten() {
            let name = item.file_name().to_string_lossy().into_owned();
            let Some(n) = name.strip_suffix(".lock") else {
                continue;
            };
            let Ok(file) = fs::OpenOptions::new().write(true).open(item.path()) else {
                continue;
            };
            if !flock(&file, libc::LOCK_EX | libc::LOCK_NB).unwrap_or(false) {
                busy = true;
                continue;
            }
            let dir = entry.join(n);
            if dir.exists() {
                bytes += disk_usage(&dir);
                cais_image::unpack::remove_tree(&dir)?;
                removed += 1;
            }
            let _ = cais_image::unpack::remove_tree(&dir.with_extension("new"));
            let _ = fs::remove_file(item.path());
        }
        if !busy {
            let _ = cais_image::unpack::remove_tree(&entry);
        }
    }
    Ok((removed, bytes))
}

fn disk_usage(p: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(p) else {
        return 0;
    };
    let mut n = meta.blocks() * 512;
    if meta.is_dir() {
        if let Ok(rd) = fs::read_dir(p) {
            n += rd.flatten().map(|e| disk_usage(&e.path())).sum::<u64>();
        }
    }
    n
}

/// The build's secrets tmpfs, mounted on first use.
pub(crate) struct SecretsDir {
    pub(crate) path: PathBuf,
    mounted: bool,
    counter: usize,
}

impl SecretsDir {
    pub(crate) fn new(path: PathBuf) -> SecretsDir {
        SecretsDir {
            path,
            mounted: false,
            counter: 0,
        }
    }

    fn ensure(&mut self) -> Result<()> {
        if self.mounted {
            return Ok(());
        }
        fs::create_dir_all(&self.path).map_err(io_err("create", &self.path))?;
        let c = |s: &[u8]| {
            std::ffi::CString::new(s).map_err(|_| Error::invalid("NUL in the secrets directory"))
        };
        let target = c(self.path.as_os_str().as_encoded_bytes())?;
        let (src, fstype, data) = (c(b"tmpfs")?, c(b"tmpfs")?, c(b"mode=0700,size=16m")?);
        // SAFETY: valid C strings; data is a NUL-terminated option string.
        let r = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                data.as_ptr().cast(),
            )
        };
        if r != 0 {
            return Err(io_err("mount the secrets tmpfs on", &self.path)(
                std::io::Error::last_os_error(),
            ));
        }
        self.mounted = true;
        Ok(())
    }

    /// Writes one secret as a file owned by `uid:gid` with `mode`.
    pub(crate) fn file(&mut self, bytes: &[u8], mode: u32, uid: u32, gid: u32) -> Result<PathBuf> {
        self.ensure()?;
        self.counter += 1;
        let p = self.path.join(format!("secret-{}", self.counter));
        fs::write(&p, bytes).map_err(io_err("write secret", &p))?;
        std::os::unix::fs::chown(&p, Some(uid), Some(gid)).map_err(io_err("chown", &p))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).map_err(io_err("chmod", &p))?;
        Ok(p)
    }

    /// A directory on the tmpfs (a bundle holding secret environment).
    pub(crate) fn dir(&mut self, name: &str) -> Result<PathBuf> {
        self.ensure()?;
        let p = self.path.join(name);
        fs::create_dir_all(&p).map_err(io_err("create", &p))?;
        Ok(p)
    }

    /// Removes a secret file or directory once its step has run.
    pub(crate) fn remove(&self, p: &Path) {
        let _ = cais_image::unpack::remove_tree(p);
    }
}

impl Drop for SecretsDir {
    fn drop(&mut self) {
        if self.mounted {
            let Ok(target) = std::ffi::CString::new(self.path.as_os_str().as_encoded_bytes())
            else {
                return;
            };
            // SAFETY: a valid C string; MNT_DETACH even if a step's process
            // still holds a file open there.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
        let _ = fs::remove_dir(&self.path);
    }
}

/// The parts of `target` (absolute, inside the root mounted at `rootfs`)
/// that do not exist yet, outermost first, as paths relative to `rootfs`
/// after symlinks are resolved in it.
pub(crate) fn missing_parts(rootfs: &Path, target: &Path) -> Vec<PathBuf> {
    let mut missing = Vec::new();
    let mut cur = PathBuf::from("/");
    for c in target.components() {
        if let Component::Normal(n) = c {
            cur.push(n);
        } else {
            continue;
        }
        let Ok(host) = cais_runtime::rootfs::secure_join(rootfs, &cur) else {
            break;
        };
        if fs::symlink_metadata(&host).is_ok() {
            // Follow it: what lies under is inside its resolution.
            if let Ok(rel) = host.strip_prefix(rootfs) {
                cur = Path::new("/").join(rel);
            }
            continue;
        }
        if let Ok(rel) = host.strip_prefix(rootfs) {
            missing.push(rel.to_path_buf());
        }
        // Everything below a missing part is missing too.
        cur = Path::new("/").join(host.strip_prefix(rootfs).unwrap_or(Path::new("")));
    }
    missing
}

/// Removes mount points the runtime created (`missing`, from
/// [`missing_parts`]) from a step's upper directory, innermost first, as
/// long as they are empty: a directory the command filled or a file it
/// wrote stays.
pub(crate) fn remove_stubs(upper: &Path, missing: &[PathBuf]) {
    for rel in missing.iter().rev() {
        let p = upper.join(rel);
        let Ok(meta) = fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            let _ = fs::remove_dir(&p);
        } else if meta.is_file() && meta.len() == 0 {
            let _ = fs::remove_file(&p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_parts_follow_symlinks_and_stubs_go_when_empty() {
        let root = tempfile::tempdir().expect("root");
        fs::create_dir_all(root.path().join("usr/lib")).expect("mkdir");
        std::os::unix::fs::symlink("usr/lib", root.path().join("lib")).expect("symlink");
        let missing = missing_parts(root.path(), Path::new("/lib/cache/x"));
        assert_eq!(
            missing,
            [
                PathBuf::from("usr/lib/cache"),
                PathBuf::from("usr/lib/cache/x")
            ]
        );
        assert!(missing_parts(root.path(), Path::new("/usr/lib")).is_empty());

        let upper = tempfile::tempdir().expect("upper");
        fs::create_dir_all(upper.path().join("usr/lib/cache/x")).expect("stub");
        remove_stubs(upper.path(), &missing);
        assert!(!upper.path().join("usr/lib/cache").exists());
        assert!(upper.path().join("usr/lib").exists(), "not a stub");

        fs::create_dir_all(upper.path().join("usr/lib/cache/x")).expect("stub");
        fs::write(upper.path().join("usr/lib/cache/mine"), b"kept").expect("write");
        remove_stubs(upper.path(), &missing);
        assert!(!upper.path().join("usr/lib/cache/x").exists());
        assert!(upper.path().join("usr/lib/cache/mine").exists());
    }

    #[test]
    fn copy_tree_keeps_modes_and_links() {
        let src = tempfile::tempdir().expect("src");
        fs::create_dir(src.path().join("d")).expect("mkdir");
        fs::write(src.path().join("d/f"), b"data").expect("write");
        fs::set_permissions(src.path().join("d/f"), fs::Permissions::from_mode(0o640))
            .expect("chmod");
        std::os::unix::fs::symlink("d/f", src.path().join("l")).expect("symlink");
        let dst = tempfile::tempdir().expect("dst");
        copy_tree(src.path(), dst.path()).expect("copy");
        assert_eq!(fs::read(dst.path().join("d/f")).expect("read"), b"data");
        let mode = fs::metadata(dst.path().join("d/f")).expect("stat").mode();
        assert_eq!(mode & 0o777, 0o640);
        assert_eq!(
            fs::read_link(dst.path().join("l")).expect("link"),
            Path::new("d/f")
        );
    }
}
