//! The container's filesystem view: mounts, device nodes, `pivot_root`,
//! masked and read-only paths (runtime-spec config.md#mounts, config-linux.md).
//!
//! Everything here runs in the container's init process, inside its new mount
//! namespace, before exec. The order follows what callers rely on: make the
//! host's mounts non-shared, bind the rootfs onto itself, mount the spec's
//! mounts in order, create devices, pivot into the rootfs and detach the old
//! root, then mask and protect paths and remount the root read-only if asked.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{makedev, mknod, umask, Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount};

use crate::error::{Context, Error, Result};
use crate::lsm;

/// Resolves `unsafe_path` inside `root` the way the container will see it:
/// symlinks are followed but can never lead out of `root` (an absolute link
/// target restarts at `root`, `..` stops at `root`). Missing components are
/// kept as they are, so the result can then be created.
pub fn secure_join(root: &Path, unsafe_path: &Path) -> std::io::Result<PathBuf> {
    let mut pending: VecDeque<OsString> = unsafe_path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut resolved = PathBuf::new();
    let mut links = 0;
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        let full = root.join(&candidate);
        match fs::symlink_metadata(&full) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > 255 {
                    return Err(std::io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = fs::read_link(&full)?;
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => pending.push_front(n.to_os_string()),
                        Component::ParentDir => pending.push_front("..".into()),
                        _ => {}
                    }
                }
            }
            _ => resolved = candidate,
        }
    }
    Ok(root.join(resolved))
}

/// Mount options split into what mount(2) takes: flags to set, flags to
/// clear, propagation changes, recursive attributes and filesystem data.
#[derive(Debug, PartialEq)]
pub struct MountOptions {
    pub flags: MsFlags,
    pub clear: MsFlags,
    pub propagation: Vec<MsFlags>,
    /// MOUNT_ATTR_* bits applied with mount_setattr(AT_RECURSIVE) ("rro" ...).
    pub recursive_attrs: u64,
    pub data: Vec<String>,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// Parses OCI mount options (mount(8) names); unknown ones are filesystem data.
pub fn parse_options(options: &[String]) -> Result<MountOptions> {
    let mut o = MountOptions {
        flags: MsFlags::empty(),
        clear: MsFlags::empty(),
        propagation: Vec::new(),
        recursive_attrs: 0,
        data: Vec::new(),
    };
    for opt in options {
        let (set, clear): (MsFlags, MsFlags) = match opt.as_str() {
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "silent" => (MsFlags::MS_SILENT, MsFlags::empty()),
            "loud" => (MsFlags::empty(), MsFlags::MS_SILENT),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                o.propagation
                    .push(propagation_flag(opt).expect("listed above"));
                continue;
            }
            "rro" | "rnosuid" | "rnodev" | "rnoexec" => {
                o.recursive_attrs |= match opt.as_str() {
                    "rro" => MOUNT_ATTR_RDONLY,
                    "rnosuid" => MOUNT_ATTR_NOSUID,
                    "rnodev" => MOUNT_ATTR_NODEV,
                    _ => MOUNT_ATTR_NOEXEC,
                };
                continue;
            }
            // runc extensions that change nothing the kernel sees here.
            "tmpcopyup" | "rrw" | "rsuid" | "rdev" | "rexec" => continue,
            // Never passed to mount(2) (config.md): see `idmap_option`.
            "idmap" | "ridmap" => continue,
            _ => {
                o.data.push(opt.clone());
                continue;
            }
        };
        o.flags |= set;
        o.flags &= !clear;
        o.clear |= clear;
    }
    Ok(o)
}

/// Maps a propagation name (rootfsPropagation or a mount option) to its flags.
pub fn propagation_flag(name: &str) -> Option<MsFlags> {
    Some(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// The propagation the container's copy of the host's mounts gets before
/// the rootfs is bound onto itself: `rootfsPropagation` itself where that
/// is safe, otherwise recursive slave. Shared would let the container's
/// mounts reach the host, and unbindable would forbid the very bind of the
/// rootfs (mount(2), EINVAL); both are applied to the new root after
/// `pivot_root` instead (see [`finalize`]).
pub fn host_side_propagation(name: Option<&str>) -> Result<MsFlags> {
    let flags = match name {
        Some(name) => propagation_flag(name)
            .ok_or_else(|| Error::Invalid(format!("unknown rootfsPropagation {name:?}")))?,
        None => MsFlags::MS_SLAVE | MsFlags::MS_REC,
    };
    if flags.intersects(MsFlags::MS_SHARED | MsFlags::MS_UNBINDABLE) {
        return Ok(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    }
    Ok(flags)
}

/// A cgroup hierarchy of the host, as /proc/self/mountinfo lists it; used
/// to give the container its own view of `/sys/fs/cgroup`.
#[derive(Clone, Debug)]
pub struct CgroupMount {
    /// Directory name under /sys/fs/cgroup ("memory", "unified", "cpu,cpuacct").
    pub name: String,
    /// "cgroup" or "cgroup2".
    pub fstype: String,
    /// Super options naming the controllers ("memory", "name=systemd").
    pub options: String,
    /// The host mount point.
    pub mount_point: PathBuf,
    /// The mount's root inside its hierarchy (field 4 of mountinfo).
    pub root: PathBuf,
}

/// Lists cgroup hierarchies from /proc/self/mountinfo.
pub fn host_cgroup_mounts() -> Vec<CgroupMount> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<CgroupMount> = Vec::new();
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 5 || r.len() < 3 || !(r[0] == "cgroup" || r[0] == "cgroup2") {
            continue;
        }
        let mount_point = PathBuf::from(l[4]);
        if found.iter().any(|m| m.mount_point == mount_point) {
            continue;
        }
        let options = r[2]
            .split(',')
            .filter(|o| !matches!(*o, "rw" | "ro") && !o.starts_with("nsdelegate"))
            .collect::<Vec<_>>()
            .join(",");
        let name = mount_point
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        found.push(CgroupMount {
            name,
            fstype: r[0].to_string(),
            options,
            mount_point,
            root: PathBuf::from(l[3]),
        });
    }
    found
}

/// What `prepare` needs besides the spec's mount list.
pub struct Prepare<'a> {
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub mounts: &'a [Mount],
    pub devices: &'a [LinuxDevice],
    pub propagation: Option<&'a str>,
    pub cgroup_mounts: &'a [CgroupMount],
    /// The container's cgroup path inside each hierarchy.
    pub cgroup_path: &'a Path,
    pub new_cgroupns: bool,
    pub in_userns: bool,
    /// `linux.mountLabel`, for the `context=` option of mounts that take it.
    pub mount_label: Option<&'a str>,
    /// Per entry of `mounts`: a detached, id-mapped copy of its source made
    /// by the runtime on the host (see [`idmapped_tree`]), to attach instead
    /// of binding the source.
    pub idmapped: &'a [Option<OwnedFd>],
}

/// Mounts everything under the rootfs, before `pivot_root`. True when
/// every mount of the host's was made slave or private one by one (a
/// shared bind asked for it), so the old root cannot propagate and
/// `pivot_root_keeping` must leave the new root's mounts as they are.
pub fn prepare(p: &Prepare<'_>) -> Result<bool> {
    // Keep the container's mounts from propagating back to the host, but
    // for what a shared bind asks (see `shared_bind_sources`).
    let keep = shared_bind_sources(p.mounts);
    if keep.is_empty() {
        let root_flags = host_side_propagation(p.propagation)?;
        sys_mount(None, Path::new("/"), None, root_flags, None)?;
    } else {
        for point in mount_points()? {
            if !keep.contains(&point) {
                // A mount hidden under another cannot be named: it is
                // reached by no path the container can mount under.
                let _ = sys_mount(None, &point, None, MsFlags::MS_SLAVE, None);
            }
        }
    }
    // pivot_root needs the new root to be a mount point.
    sys_mount(
        Some(p.rootfs),
        p.rootfs,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )?;

    let mut dev_is_mounted = false;
    for (i, m) in p.mounts.iter().enumerate() {
        if m.destination() == Path::new("/dev") {
            dev_is_mounted = true;
        }
        let idmapped = p.idmapped.get(i).and_then(Option::as_ref);
        mount_one(p, m, idmapped)?;
    }
    if dev_is_mounted {
        default_devices(p.rootfs, p.in_userns)?;
        dev_symlinks(p.rootfs)?;
    }
    for d in p.devices {
        create_device(p.rootfs, d, p.in_userns)?;
    }
    // The shared binds are made: the host's mounts they came from go
    // slave too, so nothing else (pivot_root, the old root's detach)
    // reaches the host.
    for point in &keep {
        sys_mount(None, point, None, MsFlags::MS_SLAVE, None)?;
    }
    Ok(!keep.is_empty())
}

/// The host's mounts that must stay shared while a container's mounts are
/// made: those holding the source of a bind with `shared` or `rshared`
/// propagation (and, for `rshared`, the mounts below its source). A bind
/// of a shared mount joins its peer group, so mounts made at the bind's
/// destination in the container reach the host and the host's reach the
/// container (mount_namespaces(7), "Shared subtrees"); every other mount
/// is made slave one by one, so nothing else the runtime mounts leaks.
fn shared_bind_sources(mounts: &[Mount]) -> Vec<PathBuf> {
    let wanted: Vec<(PathBuf, bool)> = mounts
        .iter()
        .filter_map(|m| {
            let opts = m.options().as_deref().unwrap_or(&[]);
            let recursive = opts.iter().any(|o| o == "rshared");
            let shared = recursive || opts.iter().any(|o| o == "shared");
            let bind = m.typ().as_deref() == Some("bind")
                || opts.iter().any(|o| o == "bind" || o == "rbind");
            let source = m.source().as_ref()?;
            (shared && bind).then(|| {
                (
                    fs::canonicalize(source).unwrap_or_else(|_| source.clone()),
                    recursive,
                )
            })
        })
        .collect();
    if wanted.is_empty() {
        return Vec::new();
    }
    let points = mount_points().unwrap_or_default();
    let mut keep = Vec::new();
    for (source, recursive) in wanted {
        // The mount holding the source: the longest mount point above it.
        if let Some(holder) = points
            .iter()
            .filter(|p| source.starts_with(p))
            .max_by_key(|p| p.as_os_str().len())
        {
            keep.push(holder.clone());
        }
        if recursive {
            keep.extend(
                points
                    .iter()
                    .filter(|p| p.starts_with(&source) && **p != source)
                    .cloned(),
            );
        }
    }
    keep.sort();
    keep.dedup();
    keep
}

/// Every mount point of this mount namespace, parents before children.
fn mount_points() -> Result<Vec<PathBuf>> {
    let info = fs::read_to_string("/proc/self/mountinfo")
        .context(|| "reading /proc/self/mountinfo".to_string())?;
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mountinfo(p)))
        .collect();
    points.sort_by_key(|p| p.components().count());
    points.dedup();
    Ok(points)
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
fn unescape_mountinfo(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.clone().take(3).collect();
            if code.len() == 3 && code.chars().all(|d| ('0'..='7').contains(&d)) {
                if let Ok(n) = u8::from_str_radix(&code, 8) {
                    out.push(n as char);
                    for _ in 0..3 {
                        chars.next();
                    }
                    continue;
                }
            }
        }
        out.push(c);
    }
    out
}

fn mount_one(p: &Prepare<'_>, m: &Mount, idmapped: Option<&OwnedFd>) -> Result<()> {
    let empty = Vec::new();
    let opts = parse_options(m.options().as_ref().unwrap_or(&empty))?;
    let typ = m.typ().as_deref().unwrap_or("");
    let is_bind = typ == "bind" || opts.flags.contains(MsFlags::MS_BIND);
    let dest = secure_join(p.rootfs, m.destination())
        .context(|| format!("resolving mount destination {}", m.destination().display()))?;
    let mut data = opts.data.clone();
    if let Some(label) = p
        .mount_label
        .filter(|_| !is_bind && lsm::takes_context(typ))
    {
        data.push(format!("context=\"{label}\""));
    }
    let data = (!data.is_empty()).then(|| data.join(","));

    if let Some(tree) = idmapped {
        let source = m.source().clone().unwrap_or_default();
        let meta = fs::metadata(p.bundle.join(&source))
            .context(|| format!("bind source {}", source.display()))?;
        make_mount_point(&dest, meta.is_dir())?;
        attach_tree(tree, &dest)?;
        remount_bind_flags(&dest, opts.flags)?;
    } else if is_bind {
        let source = m.source().as_ref().ok_or_else(|| {
            Error::Invalid(format!("bind mount {} has no source", dest.display()))
        })?;
        let source = if source.is_absolute() {
            source.clone()
        } else {
            p.bundle.join(source)
        };
        let meta = fs::metadata(&source).context(|| format!("bind source {}", source.display()))?;
        make_mount_point(&dest, meta.is_dir())?;
        let flags = MsFlags::MS_BIND | (opts.flags & MsFlags::MS_REC);
        sys_mount(Some(&source), &dest, None, flags, None)?;
        remount_bind_flags(&dest, opts.flags)?;
    } else if typ == "cgroup" {
        make_mount_point(&dest, true)?;
        mount_cgroups(p, &dest, opts.flags)?;
    } else {
        make_mount_point(&dest, true)?;
        let source = m
            .source()
            .clone()
            .unwrap_or_else(|| PathBuf::from(typ.to_string()));
        sys_mount(Some(&source), &dest, Some(typ), opts.flags, data.as_deref())?;
    }
    for flag in &opts.propagation {
        sys_mount(None, &dest, None, *flag, None)?;
    }
    if opts.recursive_attrs != 0 {
        mount_setattr_recursive(&dest, opts.recursive_attrs)?;
    }
    Ok(())
}

/// Bind mounts take most flags only on a remount (mount(2), MS_REMOUNT).
fn remount_bind_flags(dest: &Path, flags: MsFlags) -> Result<()> {
    let remount = flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    if remount.is_empty() {
        return Ok(());
    }
    sys_mount(
        None,
        dest,
        None,
        remount | MsFlags::MS_BIND | MsFlags::MS_REMOUNT,
        None,
    )
}

const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// Whether a mount asks for an id mapping (config.md "idmap", "ridmap"), and
/// whether recursively.
pub fn idmap_option(options: &[String]) -> Option<bool> {
    let mut wanted = None;
    for o in options {
        match o.as_str() {
            "idmap" => wanted = Some(wanted.unwrap_or(false)),
            "ridmap" => wanted = Some(true),
            _ => {}
        }
    }
    wanted
}

/// A detached copy of the mount tree at `source` (all of it when
/// `recursive_tree`, as for rbind) with the id mapping of the user namespace
/// `userns` applied to its top mount, or with `recursive_map` to every
/// mount in it (mount_setattr(2), MOUNT_ATTR_IDMAP). It runs in the
/// runtime on the host: mapping a mount needs privilege over the user
/// namespace its filesystem was mounted in, which a container in a user
/// namespace of its own lacks; the container's init then attaches the
/// copy with [`attach_tree`].
pub fn idmapped_tree(
    source: &Path,
    userns: &OwnedFd,
    recursive_tree: bool,
    recursive_map: bool,
) -> Result<OwnedFd> {
    let c = std::ffi::CString::new(source.as_os_str().as_bytes())
        .map_err(|_| Error::Invalid(format!("path {} has a NUL byte", source.display())))?;
    let mut flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC;
    if recursive_tree {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: c outlives the call; open_tree only reads the path.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    let fd = nix::errno::Errno::result(fd)
        .context(|| format!("copying the mount tree of {}", source.display()))?;
    // SAFETY: open_tree just returned this descriptor and nothing else owns it.
    let tree = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as RawFd) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    let mut at = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive_map {
        at |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: the empty path and attr outlive the call; the size matches the struct.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            at,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    nix::errno::Errno::result(r).context(|| {
        format!(
            "id-mapping the mount of {} (the filesystem must support id-mapped mounts)",
            source.display()
        )
    })?;
    Ok(tree)
}

/// Attaches a detached mount tree at `dest` (move_mount(2)).
pub fn attach_tree(tree: &OwnedFd, dest: &Path) -> Result<()> {
    let c = std::ffi::CString::new(dest.as_os_str().as_bytes())
        .map_err(|_| Error::Invalid(format!("path {} has a NUL byte", dest.display())))?;
    // SAFETY: the strings outlive the call; move_mount only reads them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    nix::errno::Errno::result(r)
        .map(drop)
        .context(|| format!("attaching the id-mapped mount at {}", dest.display()))
}

/// The container's `/sys/fs/cgroup`: with a cgroup namespace each hierarchy is
/// mounted afresh (the kernel roots it at the container's cgroup); without
/// one, the container's own cgroup directories are bind-mounted, so the rest
/// of the host's tree stays out of sight.
fn mount_cgroups(p: &Prepare<'_>, dest: &Path, flags: MsFlags) -> Result<()> {
    let flags =
        flags & (MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
    let unified_only = p.cgroup_mounts.len() == 1 && p.cgroup_mounts[0].fstype == "cgroup2";
    if unified_only {
        let m = &p.cgroup_mounts[0];
        return mount_hierarchy(p, m, dest, flags);
    }
    sys_mount(
        Some(Path::new("tmpfs")),
        dest,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=755"),
    )?;
    for m in p.cgroup_mounts {
        let sub = dest.join(&m.name);
        make_mount_point(&sub, true)?;
        mount_hierarchy(p, m, &sub, flags)?;
        // cpu,cpuacct is also reachable as cpu and cpuacct on most hosts.
        if m.name.contains(',') {
            for alias in m.name.split(',') {
                let link = dest.join(alias);
                if !link.exists() {
                    symlink(&m.name, &link).context(|| format!("linking {}", link.display()))?;
                }
            }
        }
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        sys_mount(
            None,
            dest,
            None,
            MsFlags::MS_REMOUNT
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC,
            Some("mode=755"),
        )?;
    }
    Ok(())
}

fn mount_hierarchy(p: &Prepare<'_>, m: &CgroupMount, dest: &Path, flags: MsFlags) -> Result<()> {
    if p.new_cgroupns {
        let data = (!m.options.is_empty()).then_some(m.options.as_str());
        sys_mount(
            Some(Path::new("cgroup")),
            dest,
            Some(&m.fstype),
            flags,
            data,
        )
    } else {
        let rel = p.cgroup_path.strip_prefix("/").unwrap_or(p.cgroup_path);
        let host = m.mount_point.join(rel);
        sys_mount(
            Some(&host),
            dest,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )?;
        if !flags.is_empty() {
            sys_mount(
                None,
                dest,
                None,
                flags | MsFlags::MS_BIND | MsFlags::MS_REMOUNT,
                None,
            )?;
        }
        Ok(())
    }
}

/// Creates the directory or empty file a mount will cover.
fn make_mount_point(dest: &Path, dir: bool) -> Result<()> {
    if dir {
        fs::create_dir_all(dest).context(|| format!("creating mount point {}", dest.display()))
    } else {
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)
                .context(|| format!("creating mount point {}", parent.display()))?;
        }
        if fs::symlink_metadata(dest).is_err() {
            fs::File::create(dest)
                .context(|| format!("creating mount point {}", dest.display()))?;
        }
        Ok(())
    }
}

const DEFAULT_DEVICES: [(&str, u64, u64); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

fn default_devices(rootfs: &Path, in_userns: bool) -> Result<()> {
    for (name, major, minor) in DEFAULT_DEVICES {
        let dev = LinuxDevice::default();
        let mut dev = dev;
        dev.set_path(PathBuf::from("/dev").join(name));
        dev.set_typ(LinuxDeviceType::C);
        dev.set_major(major as i64);
        dev.set_minor(minor as i64);
        dev.set_file_mode(Some(0o666));
        dev.set_uid(Some(0));
        dev.set_gid(Some(0));
        create_device(rootfs, &dev, in_userns)?;
    }
    Ok(())
}

fn dev_symlinks(rootfs: &Path) -> Result<()> {
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        let link = rootfs.join("dev").join(name);
        if fs::symlink_metadata(&link).is_ok() {
            continue;
        }
        symlink(target, &link).context(|| format!("creating {}", link.display()))?;
    }
    Ok(())
}

/// Creates one device node; in a user namespace mknod is not allowed, so the
/// host's node is bind-mounted instead.
fn create_device(rootfs: &Path, d: &LinuxDevice, in_userns: bool) -> Result<()> {
    let dest = secure_join(rootfs, d.path())
        .context(|| format!("resolving device path {}", d.path().display()))?;
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).context(|| format!("creating {}", parent.display()))?;
    }
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(Error::Invalid(format!(
                "device {} has type \"a\", which only device cgroup rules may use",
                d.path().display()
            )))
        }
    };
    if in_userns {
        make_mount_point(&dest, false)?;
        return sys_mount(Some(d.path()), &dest, None, MsFlags::MS_BIND, None);
    }
    let _ = fs::remove_file(&dest);
    let mode = Mode::from_bits_truncate(d.file_mode().unwrap_or(0o666) & 0o7777);
    let old = umask(Mode::empty());
    let made = mknod(
        &dest,
        kind,
        mode,
        makedev(d.major() as u64, d.minor() as u64),
    );
    umask(old);
    made.context(|| format!("mknod {}", dest.display()))?;
    nix::unistd::chown(
        &dest,
        Some(nix::unistd::Uid::from_raw(d.uid().unwrap_or(0))),
        Some(nix::unistd::Gid::from_raw(d.gid().unwrap_or(0))),
    )
    .context(|| format!("chown {}", dest.display()))
}

/// Switches the process's root to `rootfs` with pivot_root(2) and detaches the
/// old root, so no path leads back to the host's filesystem (a chroot would
/// leave it reachable).
pub fn pivot_root(rootfs: &Path) -> Result<()> {
    pivot_root_keeping(rootfs, false)
}

/// [`pivot_root`]; with `host_mounts_slave` (see [`prepare`]) the
/// recursive slave before the old root's detach is left out: it reaches
/// the new root's mounts too (mount(2) resolves "." to the new root), and
/// would cut a shared bind from its peers on the host.
pub fn pivot_root_keeping(rootfs: &Path, host_mounts_slave: bool) -> Result<()> {
    nix::unistd::chdir(rootfs).context(|| format!("chdir {}", rootfs.display()))?;
    // pivot_root(".", ".") stacks the old root under the new one at the same
    // place; unmounting "." then removes it without needing a directory for it.
    nix::unistd::pivot_root(".", ".").context(|| format!("pivot_root {}", rootfs.display()))?;
    // Make sure the unmount below cannot propagate to the host.
    if !host_mounts_slave {
        sys_mount(
            None,
            Path::new("."),
            None,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None,
        )?;
    }
    umount2(".", MntFlags::MNT_DETACH).context(|| "detaching the old root".to_string())?;
    nix::unistd::chdir("/").context(|| "chdir /".to_string())
}

/// Makes `rootfs` the calling process's root in a mount namespace of its
/// own: for helpers that work on a container's files from the host (the
/// engine's `cp`). The namespace is private, so nothing mounted or
/// unmounted here reaches the host; `rootfs` is bound onto itself (pivot_root
/// needs a mount point) and pivoted into, and the old root detached, so no
/// symlink or `..` inside the container leads to a host path.
pub fn enter_privately(rootfs: &Path) -> Result<()> {
    enter_privately_with(rootfs, &[])
}

/// A host directory or file that [`enter_privately_with`] binds into the
/// root it enters (a container's volume or bind mount).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperBind {
    /// The host path.
    pub source: PathBuf,
    /// Where it appears inside the root (resolved within it).
    pub destination: PathBuf,
    pub readonly: bool,
}

/// [`enter_privately`], with `binds` mounted inside `rootfs` first (in the
/// order given, so a later one may sit inside an earlier one), as the
/// container sees them. Each destination is resolved inside the root
/// (symlinks and `..` cannot leave it) and created when missing; the
/// binds exist in the private namespace only.
pub fn enter_privately_with(rootfs: &Path, binds: &[HelperBind]) -> Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .context(|| "unsharing the mount namespace".to_string())?;
    sys_mount(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        None,
    )?;
    sys_mount(
        Some(rootfs),
        rootfs,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )?;
    for b in binds {
        let dest = secure_join(rootfs, &b.destination)
            .context(|| format!("resolving mount destination {}", b.destination.display()))?;
        let meta =
            fs::metadata(&b.source).context(|| format!("bind source {}", b.source.display()))?;
        make_mount_point(&dest, meta.is_dir())?;
        sys_mount(
            Some(&b.source),
            &dest,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )?;
        if b.readonly {
            remount_bind_flags(&dest, MsFlags::MS_RDONLY | kept_flags(&dest))?;
        }
    }
    pivot_root(rootfs)
}

/// After pivot_root: propagation, masked and read-only paths, read-only root.
pub fn finalize(
    propagation: Option<&str>,
    masked: &[String],
    readonly: &[String],
    readonly_root: bool,
) -> Result<()> {
    if let Some(flag) = propagation.and_then(propagation_flag) {
        sys_mount(None, Path::new("/"), None, flag, None)?;
    }
    for path in readonly {
        readonly_path(Path::new(path))?;
    }
    for path in masked {
        mask_path(Path::new(path))?;
    }
    if readonly_root {
        sys_mount(
            None,
            Path::new("/"),
            None,
            MsFlags::MS_BIND
                | MsFlags::MS_REMOUNT
                | MsFlags::MS_RDONLY
                | kept_flags(Path::new("/")),
            None,
        )?;
    }
    Ok(())
}

/// Bind-mounts the slave of the pty `master` on /dev/console, creating the
/// mount point if needed (config-linux.md, "/dev/console").
pub fn bind_console(master: RawFd) -> Result<()> {
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes the pty number to an unsigned int.
    let r = unsafe { libc::ioctl(master, libc::TIOCGPTN, &mut n) };
    nix::errno::Errno::result(r).context(|| "getting the pty number".to_string())?;
    let slave = PathBuf::from(format!("/dev/pts/{n}"));
    let console = Path::new("/dev/console");
    if fs::symlink_metadata(console).is_err() {
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o666)
            .open(console)
            .context(|| "creating /dev/console".to_string())?;
    }
    sys_mount(Some(&slave), console, None, MsFlags::MS_BIND, None)
}

/// Hides a path: /dev/null over a file, an empty read-only tmpfs over a directory.
fn mask_path(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Err(_) => Ok(()),
        Ok(meta) if meta.is_dir() => sys_mount(
            Some(Path::new("tmpfs")),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            Some("size=0k"),
        ),
        Ok(_) => sys_mount(
            Some(Path::new("/dev/null")),
            path,
            None,
            MsFlags::MS_BIND,
            None,
        ),
    }
}

fn readonly_path(path: &Path) -> Result<()> {
    if fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    sys_mount(
        Some(path),
        path,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )?;
    sys_mount(
        None,
        path,
        None,
        MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_REC
            | kept_flags(path),
        None,
    )
}

/// The per-mount flags that a read-only bind remount of `path` must repeat:
/// the remount replaces them all, and in a user namespace the kernel
/// refuses (EPERM) to clear nosuid, nodev, noexec or the atime flags that
/// the mount had when the namespace got it (mount(2), "EPERM").
fn kept_flags(path: &Path) -> MsFlags {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return MsFlags::empty();
    };
    // SAFETY: statvfs is plain old data; zero is a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid C string and st a valid out pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return MsFlags::empty();
    }
    [
        (libc::ST_NOSUID, MsFlags::MS_NOSUID),
        (libc::ST_NODEV, MsFlags::MS_NODEV),
        (libc::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (libc::ST_NOATIME, MsFlags::MS_NOATIME),
        (libc::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (libc::ST_RELATIME, MsFlags::MS_RELATIME),
    ]
    .into_iter()
    .filter(|(st_flag, _)| st.f_flag & st_flag != 0)
    .fold(MsFlags::empty(), |acc, (_, ms)| acc | ms)
}

/// Writes `linux.sysctl` through the container's /proc/sys.
pub fn sysctl(settings: &[(String, String)]) -> Result<()> {
    for (key, value) in settings {
        if key.contains('/') || key.split('.').any(|p| p.is_empty() || p == "..") {
            return Err(Error::Invalid(format!("invalid sysctl name {key:?}")));
        }
        let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
        fs::write(&path, value).context(|| format!("setting sysctl {key}={value}"))?;
    }
    Ok(())
}

fn sys_mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    mount(source, target, fstype, flags, data).context(|| {
        format!(
            "mounting {} on {} (type {}, flags {:?}, data {:?})",
            source.map(|s| s.display().to_string()).unwrap_or_default(),
            target.display(),
            fstype.unwrap_or("none"),
            flags,
            data.unwrap_or("")
        )
    })
}

/// `struct mount_attr` of <linux/mount.h> (MOUNT_ATTR_SIZE_VER0).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn mount_setattr_recursive(path: &Path, attrs: u64) -> Result<()> {
    let attr = MountAttr {
        attr_set: attrs,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::Invalid(format!("path {} has a NUL byte", path.display())))?;
    // SAFETY: c and attr outlive the call; the size matches the struct.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_RECURSIVE as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    nix::errno::Errno::result(r)
        .map(drop)
        .context(|| format!("mount_setattr {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_paths_unescape() {
        assert_eq!(unescape_mountinfo("/a\\040b\\011c\\134d"), "/a b\tc\\d");
        assert_eq!(unescape_mountinfo("/plain\\x"), "/plain\\x");
    }

    #[test]
    fn shared_binds_keep_the_mount_holding_their_source() {
        let bind = |src: &str, opt: &str| -> Mount {
            serde_json::from_value(serde_json::json!({
                "destination": "/m", "type": "bind", "source": src, "options": ["rbind", opt]
            }))
            .expect("a mount")
        };
        assert!(shared_bind_sources(&[bind("/tmp", "rprivate")]).is_empty());
        let keep = shared_bind_sources(&[bind("/proc/self", "rshared")]);
        // /proc is a mount point of every namespace; its own submounts
        // (/proc/sys/fs/binfmt_misc...) are not below /proc/<pid>.
        assert!(keep.contains(&PathBuf::from("/proc")), "{keep:?}");
    }
    use std::os::unix::fs::symlink;

    #[test]
    fn secure_join_keeps_symlinks_inside_the_root() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        fs::create_dir_all(root.join("etc")).expect("mkdir");
        symlink("/etc", root.join("abs")).expect("symlink");
        symlink("../../../../etc", root.join("etc/up")).expect("symlink");
        symlink("loop", root.join("loop")).expect("symlink");
        let j = |p: &str| secure_join(root, Path::new(p));
        assert_eq!(j("/abs/passwd").expect("join"), root.join("etc/passwd"));
        assert_eq!(j("/etc/up/shadow").expect("join"), root.join("etc/shadow"));
        assert_eq!(j("../../x").expect("join"), root.join("x"));
        assert_eq!(j("/a/./b/../c").expect("join"), root.join("a/c"));
        assert_eq!(
            j("/loop").expect_err("loop").raw_os_error(),
            Some(libc::ELOOP)
        );
    }

    #[test]
    fn options_map_to_flags_and_data() {
        let opts: Vec<String> = [
            "nosuid",
            "noexec",
            "ro",
            "rw",
            "mode=755",
            "size=65536k",
            "rslave",
            "rbind",
            "rro",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let o = parse_options(&opts).expect("parse");
        assert!(o.flags.contains(
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_BIND | MsFlags::MS_REC
        ));
        assert!(
            !o.flags.contains(MsFlags::MS_RDONLY),
            "rw after ro clears it"
        );
        assert_eq!(
            o.data,
            vec!["mode=755".to_string(), "size=65536k".to_string()]
        );
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert_eq!(o.recursive_attrs, MOUNT_ATTR_RDONLY);
        let idmap = parse_options(&["idmap".to_string()]).expect("idmap");
        assert!(idmap.data.is_empty(), "idmap never reaches mount(2)");
    }

    #[test]
    fn host_side_propagation_never_shares_nor_blocks_the_rootfs_bind() {
        let slave = MsFlags::MS_SLAVE | MsFlags::MS_REC;
        assert_eq!(host_side_propagation(None).expect("default"), slave);
        for name in ["shared", "rshared", "unbindable", "runbindable"] {
            assert_eq!(
                host_side_propagation(Some(name)).expect(name),
                slave,
                "{name}"
            );
        }
        assert_eq!(
            host_side_propagation(Some("rprivate")).expect("rprivate"),
            MsFlags::MS_PRIVATE | MsFlags::MS_REC
        );
        assert_eq!(
            host_side_propagation(Some("slave")).expect("slave"),
            MsFlags::MS_SLAVE
        );
        assert!(host_side_propagation(Some("sideways")).is_err());
    }

    #[test]
    fn cgroup_mounts_are_listed() {
        // Every Linux host with cgroups shows at least one hierarchy.
        let mounts = host_cgroup_mounts();
        assert!(!mounts.is_empty());
        assert!(mounts.iter().all(|m| m.fstype.starts_with("cgroup")));
    }
}
