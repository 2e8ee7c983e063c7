//! The overlay snapshotter. A container's root is an overlay of its image's
//! read-only layer snapshots (lowest last in `lowerdir`, as overlayfs wants
//! the top layer first) and one writable upper directory of its own, in
//! `containers/<id>/{upper,work,rootfs}`.
//!
//! [`OverlayMount`] only *describes* the mount; [`mount`] and [`unmount`]
//! are the one place that performs it, so the engine can hand the runtime a
//! rootfs, or pass the description along to do the mount elsewhere.
//!
//! [`diff`] turns an upper directory back into a layer tar: overlayfs
//! whiteouts (0:0 character devices) become `.wh.<name>` files and opaque
//! directories (`trusted.overlay.opaque=y`) get a `.wh..wh..opq` entry, the
//! image-spec `layer.md` forms. [`ImageStore::commit_container`] stores that
//! tar as a new layer on top of the container's image.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::digest::{Digest, HashingWriter};
use crate::oci::{self, Compression, Descriptor, History, ImageConfig, Manifest, Platform};
use crate::store::{ImageRecord, ImageStore};
use crate::{io_err, unpack, Error, Result};

/// Everything needed to mount a container's root: `mount -t overlay overlay
/// -o lowerdir=...,upperdir=...,workdir=... <target>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayMount {
    /// Read-only layers, top first.
    pub lowerdirs: Vec<PathBuf>,
    pub upperdir: PathBuf,
    pub workdir: PathBuf,
    /// Where the merged tree is mounted.
    pub target: PathBuf,
    /// overlayfs' `volatile` (overlayfs.rst, "Volatile mount"): no sync of
    /// the upper filesystem, not even at unmount, where it otherwise costs
    /// a sync of the whole filesystem the upper directory lives on. For
    /// upper directories a crash makes worthless anyway (an auto-remove
    /// container's, a build step's); overlayfs refuses to mount such an
    /// upper directory again, so it is for one mount.
    pub volatile: bool,
}

impl OverlayMount {
    /// The overlay mount data for mount(2). Paths with `:` or `,` are
    /// refused: overlayfs splits lowerdir on `:` and the option string on
    /// `,`. The kernel takes at most a page of mount data, which bounds the
    /// layer count on this path; [`mount`] uses `lowerdir+` where it can.
    pub fn options(&self) -> Result<String> {
        let mut all = self.lowerdirs.clone();
        all.push(self.upperdir.clone());
        all.push(self.workdir.clone());
        for p in &all {
            let b = p.as_os_str().as_bytes();
            if b.contains(&b':') || b.contains(&b',') {
                return Err(Error::InvalidArgument {
                    reason: format!("overlay paths cannot contain ':' or ',': {}", p.display()),
                });
            }
        }
        let lower: Vec<String> = self
            .lowerdirs
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}{}",
            lower.join(":"),
            self.upperdir.display(),
            self.workdir.display(),
            if self.volatile { ",volatile" } else { "" }
        );
        if opts.len() >= 4096 {
            return Err(Error::InvalidArgument {
                reason: format!(
                    "{} layers do not fit in one overlay mount's options",
                    self.lowerdirs.len()
                ),
            });
        }
        Ok(opts)
    }
}

/// Mounts the overlay described by `m`. With the new mount API (fsopen(2),
/// and `lowerdir+` of Linux 6.8, overlayfs.rst "Multiple lower layers")
/// each layer is passed on its own, so there is no page limit on the layer
/// list; older kernels get mount(2) with the option string.
///
/// A layer listed twice (two steps that changed nothing give the same
/// diff, so the same snapshot) is passed once, at its topmost place:
/// overlayfs refuses a lower directory twice (ELOOP), and the lower copy
/// adds nothing the upper one does not already show.
pub fn mount(m: &OverlayMount) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    let deduped = OverlayMount {
        lowerdirs: m
            .lowerdirs
            .iter()
            .filter(|d| seen.insert((*d).clone()))
            .cloned()
            .collect(),
        ..m.clone()
    };
    let m = &deduped;
    fs::create_dir_all(&m.target).map_err(io_err("create mount point", &m.target))?;
    match mount_once(m) {
        // A kernel before 5.10 knows no `volatile`: the plain mount syncs.
        Err(Error::Mount { source, .. })
            if m.volatile && source.raw_os_error() == Some(libc::EINVAL) =>
        {
            mount_once(&OverlayMount {
                volatile: false,
                ..m.clone()
            })
        }
        other => other,
    }
}

fn mount_once(m: &OverlayMount) -> Result<()> {
    match mount_fsconfig(m) {
        Ok(()) => return Ok(()),
        // ENOSYS: no fsopen; EINVAL: no `lowerdir+` (before 6.8).
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EINVAL)) => {}
        Err(e) => {
            return Err(Error::Mount {
                action: "mount overlay on",
                target: m.target.clone(),
                source: e,
            })
        }
    }
    let opts = m.options()?;
    let (src, target, fstype, data) = (
        cstring(b"overlay")?,
        cstring(m.target.as_os_str().as_bytes())?,
        cstring(b"overlay")?,
        cstring(opts.as_bytes())?,
    );
    // SAFETY: valid C strings; data is the NUL-terminated option string.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            data.as_ptr().cast(),
        )
    };
    if r != 0 {
        return Err(Error::Mount {
            action: "mount overlay on",
            target: m.target.clone(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

fn cstring(s: &[u8]) -> Result<CString> {
    CString::new(s).map_err(|_| Error::InvalidArgument {
        reason: "NUL in a mount path".into(),
    })
}

/// fsopen / fsconfig / fsmount / move_mount (mount_setattr(2)'s family).
fn mount_fsconfig(m: &OverlayMount) -> io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
    let bad = |_| io::Error::from_raw_os_error(libc::EINVAL);
    let fstype = CString::new("overlay").map_err(bad)?;
    // SAFETY: a valid C string; the result is a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fsopen returned a descriptor nobody else owns.
    let fs_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let set = |key: &str, value: &Path| -> io::Result<()> {
        let k = CString::new(key).map_err(bad)?;
        let v = CString::new(value.as_os_str().as_bytes()).map_err(bad)?;
        // SAFETY: live fs context descriptor, valid C strings.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs_fd.as_raw_fd(),
                FSCONFIG_SET_STRING,
                k.as_ptr(),
                v.as_ptr(),
                0,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    for l in &m.lowerdirs {
        set("lowerdir+", l)?;
    }
    set("upperdir", &m.upperdir)?;
    set("workdir", &m.workdir)?;
    if m.volatile {
        const FSCONFIG_SET_FLAG: libc::c_uint = 0;
        // SAFETY: live fs context descriptor, a valid C string key, no value.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs_fd.as_raw_fd(),
                FSCONFIG_SET_FLAG,
                c"volatile".as_ptr(),
                std::ptr::null::<libc::c_void>(),
                0,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: live fs context descriptor; CMD_CREATE takes no key or value.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs_fd.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if r < 0 {
        // Not EINVAL-ambiguous anymore: the layers were accepted, the
        // superblock was not; report it as it is.
        let e = io::Error::last_os_error();
        return Err(if e.raw_os_error() == Some(libc::EINVAL) {
            io::Error::other(format!("overlayfs refused the layers: {e}"))
        } else {
            e
        });
    }
    // SAFETY: fsmount(2) takes the context descriptor `fs_fd` keeps open and integer
    // flags, no pointers; a new mount descriptor or -1 comes back, checked below.
    let mfd = unsafe { libc::syscall(libc::SYS_fsmount, fs_fd.as_raw_fd(), FSMOUNT_CLOEXEC, 0) };
    if mfd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fsmount returned a descriptor nobody else owns.
    let mnt = unsafe { OwnedFd::from_raw_fd(mfd as i32) };
    let target = CString::new(m.target.as_os_str().as_bytes()).map_err(bad)?;
    // SAFETY: live mount descriptor, empty path with F_EMPTY_PATH, valid target.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Unmounts `target`; not mounted is not an error.
pub fn unmount(target: &Path) -> Result<()> {
    let c = cstring(target.as_os_str().as_bytes())?;
    // SAFETY: valid C string. MNT_DETACH is not used: a busy rootfs should
    // be reported, not hidden.
    if unsafe { libc::umount2(c.as_ptr(), 0) } != 0 {
        let e = io::Error::last_os_error();
        if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) {
            return Ok(());
        }
        return Err(Error::Mount {
            action: "unmount",
            target: target.to_path_buf(),
            source: e,
        });
    }
    Ok(())
}

fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            reason: format!("invalid container id {id:?}"),
        })
    }
}

/// Containers with a snapshot, and the manifest of the image each uses.
pub(crate) fn container_images(store: &ImageStore) -> Result<Vec<(String, Digest)>> {
    let mut out = Vec::new();
    for (id, dir) in container_dirs(store)? {
        if let Some(d) = fs::read_to_string(dir.join("image"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            out.push((id, d));
        }
    }
    Ok(out)
}

/// Containers and the snapshot names their mount uses.
pub(crate) fn container_layers(store: &ImageStore) -> Result<Vec<(String, Vec<String>)>> {
    let mut out = Vec::new();
    for (id, dir) in container_dirs(store)? {
        let layers = fs::read_to_string(dir.join("layers")).unwrap_or_default();
        out.push((id, layers.lines().map(str::to_owned).collect()));
    }
    Ok(out)
}

fn container_dirs(store: &ImageStore) -> Result<Vec<(String, PathBuf)>> {
    let dir = store.containers_dir();
    let mut out = Vec::new();
    for e in fs::read_dir(&dir).map_err(io_err("list containers", &dir))? {
        let e = e.map_err(io_err("list containers", &dir))?;
        out.push((e.file_name().to_string_lossy().into_owned(), e.path()));
    }
    Ok(out)
}

/// Options of [`ImageStore::commit_container`].
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// `name:tag` for the new image; untagged when `None`.
    pub reference: Option<crate::Reference>,
    pub author: Option<String>,
    pub comment: Option<String>,
    /// The history entry's `created_by`.
    pub created_by: Option<String>,
    /// The new image's container config (`Cmd`, `Env`, ...); the parent
    /// image's when `None`.
    pub config: Option<serde_json::Value>,
    /// The container committed and its config, kept in the image config as
    /// docker's `container` and `container_config` (what `docker inspect`
    /// shows as `Container` and `ContainerConfig`).
    pub container: Option<(String, serde_json::Value)>,
}

impl ImageStore {
    /// Creates the snapshot of container `id` on `image` and describes its
    /// mount (target `containers/<id>/rootfs`). Nothing is mounted.
    pub fn prepare_container(&self, id: &str, image: &str) -> Result<OverlayMount> {
        check_id(id)?;
        let rec = self.resolve(image)?;
        let dir = self.containers_dir().join(id);
        if dir.exists() {
            return Err(Error::AlreadyExists {
                what: format!("container snapshot {id}"),
            });
        }
        let tmp = self.containers_dir().join(format!(".{id}.tmp"));
        let _ = unpack::remove_tree(&tmp);
        for d in ["upper", "work", "rootfs", "empty"] {
            fs::create_dir_all(tmp.join(d)).map_err(io_err("create container snapshot", &tmp))?;
        }
        let config = self.config(&rec)?;
        let names: Vec<String> = config
            .rootfs
            .diff_ids
            .iter()
            .map(unpack::snapshot_name)
            .collect();
        fs::write(tmp.join("image"), rec.manifest.to_string())
            .map_err(io_err("write container image", &tmp))?;
        fs::write(tmp.join("layers"), names.join("\n"))
            .map_err(io_err("write container layers", &tmp))?;
        let mut lower = Vec::new();
        for d in config.rootfs.diff_ids.iter().rev() {
            lower.push(self.short_link(d)?.display().to_string());
        }
        fs::write(tmp.join("lower"), lower.join("\n"))
            .map_err(io_err("write container lowerdirs", &tmp))?;
        fs::rename(&tmp, &dir).map_err(io_err("publish container snapshot", &dir))?;
        self.container_mount(id)
    }

    /// Describes the mount of an existing container snapshot.
    pub fn container_mount(&self, id: &str) -> Result<OverlayMount> {
        check_id(id)?;
        let dir = self.containers_dir().join(id);
        let layers = fs::read_to_string(dir.join("layers")).map_err(|_| Error::NotFound {
            what: format!("container snapshot {id}"),
        })?;
        let mut lowerdirs: Vec<PathBuf> = match fs::read_to_string(dir.join("lower")) {
            Ok(lower) => lower
                .lines()
                .filter(|l| !l.is_empty())
                .map(PathBuf::from)
                .collect(),
            Err(_) => {
                let mut l: Vec<PathBuf> = layers
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(|l| self.snapshots_dir().join(l).join("fs"))
                    .collect();
                l.reverse();
                l
            }
        };
        if lowerdirs.is_empty() {
            // overlayfs needs a lower layer; an image without layers gets
            // an empty one.
            lowerdirs.push(dir.join("empty"));
        }
        Ok(OverlayMount {
            lowerdirs,
            upperdir: dir.join("upper"),
            workdir: dir.join("work"),
            target: dir.join("rootfs"),
            volatile: false,
        })
    }

    /// A short symlink `<root>/l/<12 hex>` to a layer's tree. The kernel
    /// takes one page of mount options, so full snapshot paths (about 100
    /// bytes each) would cap an overlay near 40 layers; these links allow
    /// about three times more. overlayfs resolves the links when mounting.
    /// Public for overlays of layer stacks that are not recorded images
    /// (a build's intermediate states).
    pub fn short_link(&self, diff_id: &Digest) -> Result<PathBuf> {
        let dir = self.root().join("l");
        fs::create_dir_all(&dir).map_err(io_err("create link directory", &dir))?;
        let target = unpack::snapshot_dir(&self.snapshots_dir(), diff_id).join("fs");
        // On a prefix collision the full name is used instead.
        for name in [&diff_id.hex()[..12], &unpack::snapshot_name(diff_id)] {
            let link = dir.join(name);
            match fs::read_link(&link) {
                Ok(t) if t == target => return Ok(link),
                Ok(_) => continue,
                Err(_) => {}
            }
            match std::os::unix::fs::symlink(&target, &link) {
                Ok(()) => return Ok(link),
                // Made by a concurrent prepare: check what it points at.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if fs::read_link(&link).is_ok_and(|t| t == target) {
                        return Ok(link);
                    }
                }
                Err(e) => return Err(io_err("create layer link", &link)(e)),
            }
        }
        Err(Error::Conflict {
            reason: format!("no free link name for layer {diff_id}"),
        })
    }

    /// Unmounts (if mounted) and deletes a container's snapshot.
    pub fn remove_container(&self, id: &str) -> Result<()> {
        let m = self.container_mount(id)?;
        unmount(&m.target)?;
        unpack::remove_tree(&self.containers_dir().join(id))
    }

    /// Unmounts (if mounted) container `id`'s snapshot and renames its
    /// directory to `to`, on the same filesystem, for a caller that deletes
    /// it later: a removal that costs one rename now. Once this returns
    /// the snapshot is gone from the store.
    pub fn take_container(&self, id: &str, to: &Path) -> Result<()> {
        let m = self.container_mount(id)?;
        unmount(&m.target)?;
        let dir = self.containers_dir().join(id);
        fs::rename(&dir, to).map_err(io_err("move container snapshot", &dir))
    }

    /// Makes a new image from container `id`: its upper directory as a new
    /// gzip layer on top of its image, a config with one more diff ID and a
    /// history entry, and an OCI manifest.
    pub fn commit_container(&self, id: &str, opts: &CommitOptions) -> Result<ImageRecord> {
        let _lease = self.lease()?;
        let m = self.container_mount(id)?;
        let image: Digest = fs::read_to_string(self.containers_dir().join(id).join("image"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| Error::NotFound {
                what: format!("image of container {id}"),
            })?;
        let parent = self.get(&image)?;
        let parent_manifest = self.manifest(&parent)?;
        let mut config = self.config(&parent)?;

        let writer = self.content().writer()?;
        let gz = flate2::write::GzEncoder::new(writer, flate2::Compression::default());
        let mut hashing = HashingWriter::new(gz);
        diff(&m.upperdir, &mut hashing)?;
        let (gz, diff_id, _) = hashing.finish();
        let writer = gz.finish().map_err(io_err("compress layer", &m.upperdir))?;
        let (layer_digest, layer_size) = writer.commit_computed()?;

        let now = crate::time::now_rfc3339();
        config.created = Some(now.clone());
        if opts.author.is_some() {
            config.author = opts.author.clone();
        }
        if let Some(c) = &opts.config {
            config.config = Some(c.clone());
        }
        if let Some((container, container_config)) = &opts.container {
            config
                .extra
                .insert("container".into(), serde_json::json!(container));
            config
                .extra
                .insert("container_config".into(), container_config.clone());
        }
        config.rootfs.diff_ids.push(diff_id);
        config.history.push(History {
            created: Some(now),
            created_by: Some(
                opts.created_by
                    .clone()
                    .unwrap_or_else(|| format!("cais commit {id}")),
            ),
            author: opts.author.clone(),
            comment: opts.comment.clone(),
            empty_layer: false,
        });
        let mut layers: Vec<Descriptor> = parent_manifest
            .layers
            .iter()
            .map(|l| {
                let mut l = l.clone();
                // Same bytes, OCI name: an OCI manifest lists OCI layer types.
                if let Some(c) = Compression::from_media_type(&l.media_type) {
                    l.media_type = c.oci_media_type().to_owned();
                }
                l
            })
            .collect();
        layers.push(Descriptor::new(
            oci::OCI_LAYER_GZIP,
            layer_digest,
            layer_size,
        ));
        let platform = Platform {
            architecture: config.architecture.clone(),
            os: config.os.clone(),
            variant: config.variant.clone(),
            os_version: None,
        };
        let target = self.put_image(&config, layers)?;
        let tags: Vec<String> = opts
            .reference
            .as_ref()
            .and_then(|r| r.tagged_name())
            .into_iter()
            .collect();
        let mut rec = self.check_image(&target, Some(oci::OCI_MANIFEST), &platform)?;
        rec.parent = Some(parent.id().clone());
        let manifest = rec.manifest.clone();
        self.record(&[(rec, tags)])?;
        self.get(&manifest)
    }

    /// Stores a config and an OCI manifest over `layers`; returns the
    /// manifest digest. The blobs are not an image until recorded.
    pub fn put_image(&self, config: &ImageConfig, layers: Vec<Descriptor>) -> Result<Digest> {
        let config_body = crate::oci::to_json(config)?;
        let config_digest = self.content().put(&config_body, None)?;
        self.put_image_with_config(&config_body, &config_digest, layers)
    }

    /// Stores an OCI manifest over a config already serialized (whose
    /// bytes must be kept, as they name the image id) and `layers`.
    pub fn put_image_with_config(
        &self,
        config_body: &[u8],
        config_digest: &Digest,
        layers: Vec<Descriptor>,
    ) -> Result<Digest> {
        self.content().put(config_body, Some(config_digest))?;
        let manifest = Manifest::new(
            Descriptor::new(
                oci::OCI_CONFIG,
                config_digest.clone(),
                config_body.len() as u64,
            ),
            layers,
        );
        let body = crate::oci::to_json(&manifest)?;
        self.content().put(&body, None)
    }
}

/// How [`diff_with`] writes entries.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiffOptions {
    /// Reproducible builds (`SOURCE_DATE_EPOCH`): mtimes later than this
    /// are written as this, so the layer does not depend on when it was
    /// made.
    pub clamp_mtime: Option<i64>,
}

/// Writes the changes recorded in an overlay upper directory as a layer tar
/// (entries sorted by path, so the same tree gives the same bytes).
pub fn diff(upper: &Path, out: impl Write) -> Result<()> {
    diff_with(upper, out, DiffOptions::default())
}

/// [`diff`] with options.
pub fn diff_with(upper: &Path, out: impl Write, opts: DiffOptions) -> Result<()> {
    let mut b = tar::Builder::new(out);
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut w = DiffWalk {
        b: &mut b,
        base: upper,
        links: &mut links,
        opts,
    };
    w.walk(Path::new(""))?;
    b.into_inner()
        .and_then(|mut w| w.flush())
        .map_err(io_err("finish layer tar", upper))?;
    Ok(())
}

struct DiffWalk<'a, W: Write> {
    b: &'a mut tar::Builder<W>,
    base: &'a Path,
    links: &'a mut HashMap<(u64, u64), PathBuf>,
    opts: DiffOptions,
}

fn header(meta: &fs::Metadata, kind: tar::EntryType, opts: DiffOptions) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(meta.mode() & 0o7777);
    h.set_uid(u64::from(meta.uid()));
    h.set_gid(u64::from(meta.gid()));
    let mut mtime = meta.mtime().max(0);
    if let Some(clamp) = opts.clamp_mtime {
        mtime = mtime.min(clamp.max(0));
    }
    h.set_mtime(mtime as u64);
    h.set_size(0);
    h
}

impl<W: Write> DiffWalk<'_, W> {
    fn walk(&mut self, rel: &Path) -> Result<()> {
        let (base, opts) = (self.base, self.opts);
        let dir = base.join(rel);
        let mut names: Vec<_> = fs::read_dir(&dir)
            .map_err(io_err("read upper directory", &dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .map_err(io_err("read upper directory", &dir))?;
        names.sort();
        let tar_err = |p: &Path| io_err("write layer entry", p);
        for name in names {
            let path = dir.join(&name);
            let rel_path = rel.join(&name);
            let meta = fs::symlink_metadata(&path).map_err(io_err("stat", &path))?;
            let ft = meta.file_type();
            if ft.is_char_device() && meta.rdev() == 0 {
                // An overlayfs whiteout: the file was deleted.
                let mut wh = name.clone();
                wh.clear();
                wh.push(".wh.");
                wh.push(&name);
                let mut h = header(&meta, tar::EntryType::Regular, opts);
                h.set_mode(0o644);
                self.b
                    .append_data(&mut h, rel.join(wh), io::empty())
                    .map_err(tar_err(&path))?;
            } else if ft.is_dir() {
                append_xattrs(self.b, &path)?;
                let mut h = header(&meta, tar::EntryType::Directory, opts);
                self.b
                    .append_data(&mut h, &rel_path, io::empty())
                    .map_err(tar_err(&path))?;
                if is_opaque(&path) {
                    let mut h = header(&meta, tar::EntryType::Regular, opts);
                    h.set_mode(0o644);
                    self.b
                        .append_data(&mut h, rel_path.join(".wh..wh..opq"), io::empty())
                        .map_err(tar_err(&path))?;
                }
                self.walk(&rel_path)?;
            } else if ft.is_symlink() {
                let target = fs::read_link(&path).map_err(io_err("read symlink", &path))?;
                let mut h = header(&meta, tar::EntryType::Symlink, opts);
                self.b
                    .append_link(&mut h, &rel_path, &target)
                    .map_err(tar_err(&path))?;
            } else if ft.is_file() {
                if meta.nlink() > 1 {
                    if let Some(first) = self.links.get(&(meta.dev(), meta.ino())) {
                        let mut h = header(&meta, tar::EntryType::Link, opts);
                        self.b
                            .append_link(&mut h, &rel_path, first)
                            .map_err(tar_err(&path))?;
                        continue;
                    }
                    self.links
                        .insert((meta.dev(), meta.ino()), rel_path.clone());
                }
                append_xattrs(self.b, &path)?;
                let mut h = header(&meta, tar::EntryType::Regular, opts);
                h.set_size(meta.len());
                let f = fs::File::open(&path).map_err(io_err("open", &path))?;
                self.b
                    .append_data(&mut h, &rel_path, f)
                    .map_err(tar_err(&path))?;
            } else if ft.is_fifo() {
                let mut h = header(&meta, tar::EntryType::Fifo, opts);
                self.b
                    .append_data(&mut h, &rel_path, io::empty())
                    .map_err(tar_err(&path))?;
            }
            // Sockets and real devices are not image content.
        }
        Ok(())
    }
}

/// Writes the file's extended attributes (file capabilities, `user.*`) as
/// a PAX header for the next entry, in the `SCHILY.xattr.` form GNU tar and
/// Docker use. overlayfs's own `trusted.overlay.*` attributes are its
/// bookkeeping, and SELinux labels belong to the host: both are left out.
fn append_xattrs<W: Write>(b: &mut tar::Builder<W>, path: &Path) -> Result<()> {
    let attrs = read_xattrs(path).map_err(io_err("read extended attributes", path))?;
    let keys: Vec<(String, Vec<u8>)> = attrs
        .into_iter()
        .filter(|(k, _)| !k.starts_with("trusted.overlay.") && k != "security.selinux")
        .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v))
        .collect();
    if keys.is_empty() {
        return Ok(());
    }
    b.append_pax_extensions(keys.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
        .map_err(io_err("write extended attributes", path))
}

/// Every extended attribute of `path` (not following a final symlink).
fn read_xattrs(path: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: valid C string; a null buffer asks for the needed size.
    let n = unsafe { libc::llistxattr(c.as_ptr(), std::ptr::null_mut(), 0) };
    if n < 0 {
        let e = io::Error::last_os_error();
        // A file system without xattrs has none to carry.
        return if e.raw_os_error() == Some(libc::ENOTSUP) {
            Ok(Vec::new())
        } else {
            Err(e)
        };
    }
    let mut names = vec![0u8; n as usize];
    // SAFETY: llistxattr writes at most `names.len()` bytes into `names`, which is
    // that long, and only reads the NUL-terminated path `c`.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    names.truncate(n as usize);
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let key = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: valid C strings; a null buffer asks for the size.
        let len = unsafe { libc::lgetxattr(c.as_ptr(), key.as_ptr(), std::ptr::null_mut(), 0) };
        if len < 0 {
            continue; // removed meanwhile
        }
        let mut value = vec![0u8; len as usize];
        // SAFETY: lgetxattr writes at most `value.len()` bytes into `value`, which is
        // that long, and only reads the NUL-terminated `c` and `key`.
        let len = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                key.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        if len < 0 {
            continue;
        }
        value.truncate(len as usize);
        out.push((String::from_utf8_lossy(name).into_owned(), value));
    }
    Ok(out)
}

/// Whether overlayfs marked the directory opaque.
pub fn is_opaque(dir: &Path) -> bool {
    let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    let key = c"trusted.overlay.opaque";
    let mut buf = [0u8; 4];
    // SAFETY: valid C strings, buffer with its length; lgetxattr does not
    // follow a final symlink.
    let n =
        unsafe { libc::lgetxattr(c.as_ptr(), key.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    n == 1 && buf[0] == b'y'
}

#[cfg(test)]
mod tests;
