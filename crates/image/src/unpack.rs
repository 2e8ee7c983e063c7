//! Unpacking layer tarballs into snapshots, one per diff ID, shared by every
//! image that has the layer.
//!
//! Containment: a layer is untrusted input, so nothing it says may write
//! outside its snapshot directory. Every entry is created relative to a
//! directory descriptor reached component by component with
//! `O_NOFOLLOW | O_DIRECTORY` (openat(2)), never through a path string, so:
//! - `..` components are refused (the tar "path traversal" trick);
//! - absolute paths are contained: the leading `/` is dropped, as Docker
//!   and the image-spec layer rules treat entries relative to the root;
//! - a symlink (or any non-directory) used as a parent is refused, which
//!   stops "symlink, then write through the symlink" and absolute symlink
//!   parents; symlinks themselves are created as-is and never followed;
//! - hard-link targets are resolved the same way inside the layer, so a
//!   link to a host file cannot be made (`linkat` without
//!   `AT_SYMLINK_FOLLOW` links a symlink itself, never what it points to);
//! - device nodes are skipped (a layer must not hand a container a host
//!   device; the runtime creates `/dev` itself), FIFOs are created;
//! - `trusted.overlay.*` xattrs from the tar are dropped, so a layer cannot
//!   forge whiteouts that way.
//!
//! Whiteouts (image-spec `layer.md`, "Whiteouts"): `.wh.<name>` becomes the
//! overlayfs whiteout for `<name>`, a 0:0 character device; `.wh..wh..opq`
//! sets `trusted.overlay.opaque=y` on its directory (overlayfs
//! documentation, "whiteouts and opaque directories").
//!
//! A layer is unpacked into `snapshots/tmp/` while its uncompressed stream
//! is hashed; only when the hash equals the diff ID is the directory renamed
//! to `snapshots/<alg>-<hex>`, so a snapshot that exists is complete.

use std::ffi::{CString, OsStr};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::content::{unique_suffix, ContentStore};
use crate::digest::{Digest, HashingReader};
use crate::oci::{Compression, Descriptor};
use crate::{io_err, Error, Result};

/// Directory name of the snapshot for `diff_id`.
pub fn snapshot_name(diff_id: &Digest) -> String {
    format!("{}-{}", diff_id.algorithm().name(), diff_id.hex())
}

/// Directory of the snapshot for `diff_id` (its tree is in `fs/`).
pub fn snapshot_dir(snapshots: &Path, diff_id: &Digest) -> PathBuf {
    snapshots.join(snapshot_name(diff_id))
}

/// Bytes of regular files in a snapshot, recorded when it was unpacked.
pub fn snapshot_size(snapshots: &Path, diff_id: &Digest) -> u64 {
    fs::read_to_string(snapshot_dir(snapshots, diff_id).join("size"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// A decompressing reader for a layer blob.
pub fn decompress<'a>(
    reader: impl Read + 'a,
    compression: Compression,
) -> Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(ruzstd::decoding::StreamingDecoder::new(reader).map_err(
            |e| Error::InvalidArgument {
                reason: format!("not a zstd stream: {e}"),
            },
        )?),
    })
}

/// Unpacks `layer` (a blob in `content`) as the snapshot for `diff_id`,
/// unless it is already there. Returns the snapshot's `fs` directory.
pub fn unpack_layer(
    content: &ContentStore,
    snapshots: &Path,
    layer: &Descriptor,
    diff_id: &Digest,
) -> Result<PathBuf> {
    let dir = snapshot_dir(snapshots, diff_id);
    if dir.join("fs").is_dir() {
        return Ok(dir.join("fs"));
    }
    let compression = Compression::from_media_type(&layer.media_type).ok_or_else(|| {
        Error::from(crate::oci::Error::UnsupportedMediaType {
            media_type: layer.media_type.clone(),
            what: format!("layer {}", layer.digest),
        })
    })?;
    let blob = content.open(&layer.digest)?;
    let tmp = snapshots
        .join("tmp")
        .join(format!("{}-{}", std::process::id(), unique_suffix()));
    let fs_dir = tmp.join("fs");
    fs::create_dir_all(&fs_dir).map_err(io_err("create snapshot", &fs_dir))?;
    let result = (|| {
        let stream = decompress(io::BufReader::new(blob), compression)?;
        let (actual, size) = extract_hashed(stream, &fs_dir, &layer.digest)?;
        if actual != *diff_id {
            return Err(Error::DiffIdMismatch {
                layer: layer.digest.clone(),
                expected: diff_id.clone(),
                actual,
            });
        }
        fs::write(tmp.join("size"), size.to_string())
            .map_err(io_err("write snapshot size", &tmp))?;
        match fs::rename(&tmp, &dir) {
            Ok(()) => Ok(()),
            // Another unpack of the same layer finished first: same content.
            Err(_) if dir.join("fs").is_dir() => {
                remove_tree(&tmp)?;
                Ok(())
            }
            Err(e) => Err(io_err("publish snapshot", &dir)(e)),
        }
    })();
    if result.is_err() {
        let _ = remove_tree(&tmp);
    }
    result.map(|()| dir.join("fs"))
}

/// Extracts a tar stream into `dest`, returning the sha256 of the whole
/// stream (the diff ID when `stream` is uncompressed) and the bytes of
/// regular files written.
pub fn extract_hashed(stream: impl Read, dest: &Path, layer: &Digest) -> Result<(Digest, u64)> {
    let mut archive = tar::Archive::new(HashingReader::new(stream));
    let size = extract_entries(&mut archive, dest, layer)?;
    let mut rest = archive.into_inner();
    // The diff ID covers the whole tar, end-of-archive blocks included.
    io::copy(&mut rest, &mut io::sink()).map_err(|e| Error::BadLayer {
        layer: layer.clone(),
        reason: format!("reading the end of the layer: {e}"),
    })?;
    let (digest, _) = rest.finish();
    Ok((digest, size))
}

/// Extracts a tar stream into `dest` (see the module docs for the rules).
pub fn extract(stream: impl Read, dest: &Path, layer: &Digest) -> Result<u64> {
    let mut archive = tar::Archive::new(stream);
    extract_entries(&mut archive, dest, layer)
}

fn extract_entries<R: Read>(
    archive: &mut tar::Archive<R>,
    dest: &Path,
    layer: &Digest,
) -> Result<u64> {
    let bad = |reason: String| Error::BadLayer {
        layer: layer.clone(),
        reason,
    };
    let root = open_dir(None, dest).map_err(io_err("open layer directory", dest))?;
    let mut written = 0u64;
    let mut dir_times: Vec<(Vec<Vec<u8>>, i64)> = Vec::new();
    let mut cache: Option<(Vec<Vec<u8>>, OwnedFd)> = None;
    // One copy buffer for every file: a buffer per entry costs an
    // allocation and a 1 MiB memset each, which dominates many small files.
    let mut buf: Vec<u8> = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("corrupt tar: {e}")))?;
        let raw = entry.path_bytes().into_owned();
        let display = String::from_utf8_lossy(&raw).into_owned();
        let unsafe_entry = |reason: &str| Error::UnsafeLayerEntry {
            layer: layer.clone(),
            entry: display.clone(),
            reason: reason.to_owned(),
        };
        let comps = clean_path(&raw).map_err(&unsafe_entry)?;
        let Some((name, parents)) = comps.split_last() else {
            continue; // the root itself ("./"): its metadata is the snapshot's
        };
        let header = entry.header().clone();
        let kind = header.entry_type();
        let mut uid = header.uid().unwrap_or(0);
        let mut gid = header.gid().unwrap_or(0);
        let mut xattrs = Vec::new();
        if let Ok(Some(pax)) = entry.pax_extensions() {
            for ext in pax.flatten() {
                let key = ext.key_bytes();
                if key == b"uid" {
                    uid = std::str::from_utf8(ext.value_bytes())
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(uid);
                } else if key == b"gid" {
                    gid = std::str::from_utf8(ext.value_bytes())
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(gid);
                } else if let Some(x) = key.strip_prefix(b"SCHILY.xattr.") {
                    if !x.starts_with(b"trusted.overlay.") {
                        xattrs.push((x.to_vec(), ext.value_bytes().to_vec()));
                    }
                }
            }
        }
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let mtime = header.mtime().unwrap_or(0) as i64;
        // An entry replacing the cached parent or one of its ancestors
        // makes the cached descriptor stale.
        if let Some((cached, _)) = &cache {
            if comps.len() <= cached.len() && cached[..comps.len()] == comps[..] {
                cache = None;
            }
        }
        // Tars list a directory's entries together: reuse the last parent.
        let cached = cache.as_ref().is_some_and(|(c, _)| c[..] == *parents);
        if !cached {
            let fd = walk(&root, parents, true).map_err(|e| match e {
                WalkError::NotDir => unsafe_entry("a parent is a symlink or not a directory"),
                WalkError::Io(err) => Error::Io {
                    context: "open parent directory in layer",
                    path: dest.join(String::from_utf8_lossy(&parents.join(&b'/')).as_ref()),
                    source: err,
                },
            })?;
            cache = Some((parents.iter().map(|c| c.to_vec()).collect(), fd));
        }
        let Some((_, parent)) = &cache else {
            continue;
        };
        let pfd = parent.as_raw_fd();
        let here = || dest.join(&display);

        // Whiteouts first: they name something else.
        if let Some(target) = name.strip_prefix(b".wh.") {
            if target == b".wh..opq" {
                set_xattr(pfd, b"trusted.overlay.opaque", b"y")
                    .map_err(io_err("mark opaque directory", &here()))?;
            } else if target.starts_with(b".wh.") {
                // Other AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): not files.
            } else {
                if target.is_empty() || target == b"." || target == b".." {
                    return Err(unsafe_entry("whiteout without a name"));
                }
                // image-spec layer.md: a whiteout only hides lower layers;
                // an entry of this same layer stays. The snapshot started
                // empty, so whatever is there came from this layer.
                if !exists_at(pfd, target) {
                    mknod(pfd, target, libc::S_IFCHR, 0)
                        .map_err(io_err("create whiteout", &here()))?;
                }
            }
            continue;
        }

        use tar::EntryType as T;
        match kind {
            T::Directory => {
                let c = cstr(name);
                // SAFETY: pfd is a live directory descriptor, c is a valid C string.
                let r = unsafe { libc::mkdirat(pfd, c.as_ptr(), 0o700) };
                if r != 0 {
                    let e = io::Error::last_os_error();
                    if e.raw_os_error() != Some(libc::EEXIST) || !is_dir_at(pfd, name) {
                        remove_existing(pfd, name).map_err(io_err("replace entry", &here()))?;
                        // SAFETY: the retry after removing what was in the way: `pfd`
                        // is still the open parent directory and `c` a NUL-terminated
                        // name mkdirat only reads.
                        if unsafe { libc::mkdirat(pfd, c.as_ptr(), 0o700) } != 0 {
                            return Err(io_err("create directory", &here())(
                                io::Error::last_os_error(),
                            ));
                        }
                    }
                }
                let fd = open_dir(Some(pfd), OsStr::from_bytes(name))
                    .map_err(io_err("open directory", &here()))?;
                fchown(&fd, uid, gid).map_err(io_err("chown", &here()))?;
                fchmod(&fd, mode).map_err(io_err("chmod", &here()))?;
                for (k, v) in &xattrs {
                    set_xattr(fd.as_raw_fd(), k, v).map_err(io_err("set xattr", &here()))?;
                }
                dir_times.push((comps.iter().map(|c| c.to_vec()).collect(), mtime));
            }
            T::Regular | T::Continuous | T::GNUSparse => {
                remove_existing(pfd, name).map_err(io_err("replace entry", &here()))?;
                let c = cstr(name);
                // SAFETY: pfd is a live directory descriptor, c a valid C string;
                // O_EXCL|O_NOFOLLOW refuses to open anything already there.
                let fd = unsafe {
                    libc::openat(
                        pfd,
                        c.as_ptr(),
                        libc::O_WRONLY
                            | libc::O_CREAT
                            | libc::O_EXCL
                            | libc::O_NOFOLLOW
                            | libc::O_CLOEXEC,
                        0o600,
                    )
                };
                if fd < 0 {
                    return Err(io_err("create file", &here())(io::Error::last_os_error()));
                }
                // SAFETY: fd was just opened and is owned by nobody else.
                let file = unsafe { File::from_raw_fd(fd) };
                // Reads of up to 1 MiB from the decompressor, written
                // straight to the file (not 8 KiB ones).
                let want = entry.size().clamp(8 << 10, 1 << 20) as usize;
                if buf.len() < want {
                    buf.resize(want, 0);
                }
                let mut file = file;
                loop {
                    let n = match entry.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(bad(format!("reading {display}: {e}"))),
                    };
                    file.write_all(&buf[..n])
                        .map_err(io_err("write file", &here()))?;
                    written += n as u64;
                }
                let ofd: OwnedFd = file.into();
                fchown(&ofd, uid, gid).map_err(io_err("chown", &here()))?;
                fchmod(&ofd, mode).map_err(io_err("chmod", &here()))?;
                for (k, v) in &xattrs {
                    set_xattr(ofd.as_raw_fd(), k, v).map_err(io_err("set xattr", &here()))?;
                }
                set_times(ofd.as_raw_fd(), None, mtime, false)
                    .map_err(io_err("set mtime", &here()))?;
            }
            T::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_entry("symlink without a target"))?
                    .into_owned();
                remove_existing(pfd, name).map_err(io_err("replace entry", &here()))?;
                let (t, c) = (cstr(&target), cstr(name));
                // SAFETY: valid C strings and a live directory descriptor.
                if unsafe { libc::symlinkat(t.as_ptr(), pfd, c.as_ptr()) } != 0 {
                    return Err(io_err("create symlink", &here())(io::Error::last_os_error()));
                }
                // SAFETY: `pfd` is the open parent directory and `c` the NUL-
                // terminated name of the link just made; AT_SYMLINK_NOFOLLOW changes
                // the link itself, never its target.
                if unsafe {
                    libc::fchownat(
                        pfd,
                        c.as_ptr(),
                        uid as u32,
                        gid as u32,
                        libc::AT_SYMLINK_NOFOLLOW,
                    )
                } != 0
                {
                    return Err(io_err("chown symlink", &here())(io::Error::last_os_error()));
                }
                set_times(pfd, Some(name), mtime, true).map_err(io_err("set mtime", &here()))?;
            }
            T::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_entry("hard link without a target"))?
                    .into_owned();
                let tcomps = clean_path(&target)
                    .map_err(|r| unsafe_entry(&format!("hard link target: {r}")))?;
                let Some((tname, tparents)) = tcomps.split_last() else {
                    return Err(unsafe_entry("hard link to the layer root"));
                };
                let tparent = walk(&root, tparents, false)
                    .map_err(|_| unsafe_entry("hard link target is not inside the layer"))?;
                if !exists_at(tparent.as_raw_fd(), tname) {
                    return Err(unsafe_entry("hard link target is not inside the layer"));
                }
                if tparents == parents && tname == name {
                    continue;
                }
                remove_existing(pfd, name).map_err(io_err("replace entry", &here()))?;
                let (tc, c) = (cstr(tname), cstr(name));
                // SAFETY: live descriptors and valid C strings; flags 0 means
                // a symlink target is linked itself, never followed.
                if unsafe { libc::linkat(tparent.as_raw_fd(), tc.as_ptr(), pfd, c.as_ptr(), 0) }
                    != 0
                {
                    return Err(io_err("create hard link", &here())(
                        io::Error::last_os_error(),
                    ));
                }
            }
            T::Fifo => {
                remove_existing(pfd, name).map_err(io_err("replace entry", &here()))?;
                mknod(pfd, name, libc::S_IFIFO, 0).map_err(io_err("create fifo", &here()))?;
                let c = cstr(name);
                // SAFETY: `pfd` is the open parent directory and `c` the NUL-
                // terminated name of the fifo just made; fchownat only reads the name
                // and does not follow a link.
                unsafe {
                    libc::fchownat(
                        pfd,
                        c.as_ptr(),
                        uid as u32,
                        gid as u32,
                        libc::AT_SYMLINK_NOFOLLOW,
                    );
                    libc::fchmodat(pfd, c.as_ptr(), mode, 0);
                }
            }
            // Devices are skipped on purpose (see the module docs).
            T::Char | T::Block => {}
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => {}
            other => {
                return Err(unsafe_entry(&format!(
                    "unsupported tar entry type {other:?}"
                )));
            }
        }
    }
    // Directory times last: creating their children changed them.
    for (comps, mtime) in dir_times.into_iter().rev() {
        let refs: Vec<&[u8]> = comps.iter().map(|c| c.as_slice()).collect();
        if let Ok(fd) = walk(&root, &refs, false) {
            let _ = set_times(fd.as_raw_fd(), None, mtime, false);
        }
    }
    Ok(written)
}

/// Splits a tar path into components: leading `/` and `.` components are
/// dropped, `..` is refused.
pub(crate) fn clean_path(raw: &[u8]) -> std::result::Result<Vec<&[u8]>, &'static str> {
    let mut out = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("path contains \"..\""),
            c if c.contains(&0) => return Err("path contains a NUL byte"),
            c => out.push(c),
        }
    }
    Ok(out)
}

enum WalkError {
    NotDir,
    Io(io::Error),
}

/// Opens the directory `comps` below `root`, one component at a time with
/// `O_NOFOLLOW`, creating missing ones when `create`.
fn walk(root: &OwnedFd, comps: &[&[u8]], create: bool) -> std::result::Result<OwnedFd, WalkError> {
    let mut cur = root.try_clone().map_err(WalkError::Io)?;
    for comp in comps {
        let next = match open_dir(Some(cur.as_raw_fd()), OsStr::from_bytes(comp)) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create => {
                let c = cstr(comp);
                // SAFETY: `cur` keeps the directory descriptor open and `c` is a NUL-
                // terminated single component, which mkdirat only reads.
                if unsafe { libc::mkdirat(cur.as_raw_fd(), c.as_ptr(), 0o755) } != 0 {
                    return Err(WalkError::Io(io::Error::last_os_error()));
                }
                open_dir(Some(cur.as_raw_fd()), OsStr::from_bytes(comp)).map_err(WalkError::Io)?
            }
            // ELOOP: a symlink with O_NOFOLLOW; ENOTDIR: a file.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {
                return Err(WalkError::NotDir)
            }
            Err(e) => return Err(WalkError::Io(e)),
        };
        cur = next;
    }
    Ok(cur)
}

fn cstr(b: &[u8]) -> CString {
    // clean_path refused NUL bytes in names; link targets cannot hold one
    // either (tar fields are NUL-terminated), so this only drops a tail.
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    CString::new(&b[..end]).unwrap_or_default()
}

pub(crate) fn open_dir(at: Option<RawFd>, path: impl AsRef<OsStr>) -> io::Result<OwnedFd> {
    let c = cstr(path.as_ref().as_bytes());
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: valid C string; `at` is a live descriptor or AT_FDCWD.
    let fd = unsafe { libc::openat(at.unwrap_or(libc::AT_FDCWD), c.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn lstat_at(dfd: RawFd, name: &[u8]) -> Option<libc::stat> {
    let c = cstr(name);
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: live descriptor, valid C string, st is written by the call.
    let r = unsafe { libc::fstatat(dfd, c.as_ptr(), st.as_mut_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    // SAFETY: fstatat filled st when it returned 0.
    (r == 0).then(|| unsafe { st.assume_init() })
}

fn exists_at(dfd: RawFd, name: &[u8]) -> bool {
    lstat_at(dfd, name).is_some()
}

fn is_dir_at(dfd: RawFd, name: &[u8]) -> bool {
    lstat_at(dfd, name).is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

/// Removes whatever is at `name` (a tree for a directory), so a later tar
/// entry replaces an earlier one, as tar(1) does.
fn remove_existing(dfd: RawFd, name: &[u8]) -> io::Result<()> {
    let Some(st) = lstat_at(dfd, name) else {
        return Ok(());
    };
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        let fd = open_dir(Some(dfd), OsStr::from_bytes(name))?;
        clear_dir(&fd)?;
    }
    let c = cstr(name);
    let flags = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        libc::AT_REMOVEDIR
    } else {
        0
    };
    // SAFETY: `dfd` is an open directory the caller holds and `c` a NUL-terminated
    // single component; unlinkat never follows a symlink in the last component.
    if unsafe { libc::unlinkat(dfd, c.as_ptr(), flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Empties a directory through its descriptor, never following symlinks.
fn clear_dir(dir: &OwnedFd) -> io::Result<()> {
    let path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    let names: Vec<Vec<u8>> = fs::read_dir(&path)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().as_bytes().to_vec())
        .collect();
    for n in names {
        remove_existing(dir.as_raw_fd(), &n)?;
    }
    Ok(())
}

/// Removes a directory tree (snapshots, containers). Does not follow
/// symlinks inside it.
pub fn remove_tree(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("stat", path)(e)),
        Ok(m) if !m.is_dir() => return fs::remove_file(path).map_err(io_err("remove", path)),
        Ok(_) => {}
    }
    let fd = open_dir(None, path).map_err(io_err("open for removal", path))?;
    clear_dir(&fd).map_err(io_err("empty directory", path))?;
    fs::remove_dir(path).map_err(io_err("remove directory", path))
}

fn mknod(dfd: RawFd, name: &[u8], kind: libc::mode_t, dev: libc::dev_t) -> io::Result<()> {
    let c = cstr(name);
    // SAFETY: live descriptor, valid C string. A 0:0 character device is
    // overlayfs's whiteout.
    if unsafe { libc::mknodat(dfd, c.as_ptr(), kind | 0o600, dev) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn fchown(fd: &OwnedFd, uid: u64, gid: u64) -> io::Result<()> {
    // SAFETY: fchown takes integers; `fd` borrows an OwnedFd that stays open across
    // the call.
    if unsafe { libc::fchown(fd.as_raw_fd(), uid as u32, gid as u32) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn fchmod(fd: &OwnedFd, mode: u32) -> io::Result<()> {
    // After fchown: chown(2) clears set-user-ID and set-group-ID bits.
    // SAFETY: fchmod takes integers; `fd` borrows an OwnedFd that stays open across
    // the call.
    if unsafe { libc::fchmod(fd.as_raw_fd(), mode) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub(crate) fn set_xattr(fd: RawFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    let k = cstr(key);
    // SAFETY: live descriptor, valid C string, value slice with its length.
    if unsafe { libc::fsetxattr(fd, k.as_ptr(), value.as_ptr().cast(), value.len(), 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn set_times(dfd: RawFd, name: Option<&[u8]>, mtime: i64, nofollow: bool) -> io::Result<()> {
    let ts = libc::timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    let times = [ts, ts];
    let r = match name {
        // SAFETY: futimens reads exactly two timespecs, which `times` holds and
        // outlives the call; `dfd` is open for it.
        None => unsafe { libc::futimens(dfd, times.as_ptr()) },
        Some(n) => {
            let c = cstr(n);
            let flags = if nofollow {
                libc::AT_SYMLINK_NOFOLLOW
            } else {
                0
            };
            // SAFETY: utimensat reads the NUL-terminated name `c` and exactly two
            // timespecs from `times`, both alive across the call; `dfd` is an open
            // directory.
            unsafe { libc::utimensat(dfd, c.as_ptr(), times.as_ptr(), flags) }
        }
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;

/// Runs `f` on a fresh empty directory inside a fresh scratch directory and
/// panics if anything appears beside it: the check every extraction fuzz
/// target (`fuzz/`) and its corpus test make. Not for other uses.
#[doc(hidden)]
pub fn fuzz_contained(f: impl FnOnce(&Path)) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let scratch = std::env::temp_dir().join(format!(
        "cais-fuzz-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let root = scratch.join("root");
    fs::create_dir_all(&root).expect("a scratch directory");
    f(&root);
    let beside: Vec<_> = fs::read_dir(&scratch)
        .expect("listing the scratch directory")
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "root")
        .collect();
    let _ = fs::remove_dir_all(&scratch);
    assert!(
        beside.is_empty(),
        "extraction wrote outside its root: {beside:?}"
    );
}

/// Fuzz entry point: `data` as a layer (plain, gzip or zstd, sniffed from
/// its first bytes) unpacked with [`extract`]; it may be refused, but
/// never panics and never writes outside the layer directory.
#[doc(hidden)]
pub fn fuzz_layer(data: &[u8]) {
    let compression = match data {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
        _ => Compression::None,
    };
    fuzz_contained(|root| {
        if let Ok(stream) = decompress(data, compression) {
            let _ = extract(stream, root, &Digest::sha256(data));
        }
    });
}
