//! Where steps touch the file system: an overlay of a state's layers with a
//! fresh upper directory ([`Overlay`]), `RUN` in a container on it
//! ([`run_container`]), and the upper directory turned into a stored layer
//! ([`commit_upper`]). Mounting goes through `cais_image::snapshot::mount`,
//! the one place that mounts overlays.

use std::fs;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cais_image::digest::HashingWriter;
use cais_image::oci::{self, Descriptor};
use cais_image::snapshot::{self, DiffOptions, OverlayMount};
use cais_image::{unpack, Digest, ImageStore};
use serde_json::json;

use crate::{io_err, Error, Progress, Result, RunNetns, RunNetwork};

/// An overlay mounted at `<dir>/rootfs`: the layers (bottom first) under a
/// fresh `<dir>/upper`. Dropping it unmounts and removes `dir`, so a failed
/// step leaves nothing behind.
pub(crate) struct Overlay {
    pub(crate) dir: PathBuf,
    pub(crate) rootfs: PathBuf,
    pub(crate) upper: PathBuf,
    mounted: bool,
}

impl Overlay {
    /// `extra_top`: a directory laid over the layers (the `RUN` init
    /// layer with mount points), not part of the result.
    pub(crate) fn mount(
        store: &ImageStore,
        dir: PathBuf,
        diff_ids: &[Digest],
        extra_top: Option<&Path>,
    ) -> Result<Overlay> {
        let mut lowerdirs = Vec::new();
        if let Some(top) = extra_top {
            lowerdirs.push(top.to_path_buf());
        }
        for d in diff_ids.iter().rev() {
            lowerdirs.push(store.short_link(d)?);
        }
        Overlay::mount_dirs(dir, lowerdirs)
    }

    /// An overlay of any directories (top first) under a fresh upper one:
    /// a `RUN --mount=type=bind,rw` of the context, whose writes are thrown
    /// away with the upper directory.
    pub(crate) fn mount_dirs(dir: PathBuf, mut lowerdirs: Vec<PathBuf>) -> Result<Overlay> {
        let _ = unpack::remove_tree(&dir);
        let mut o = Overlay {
            rootfs: dir.join("rootfs"),
            upper: dir.join("upper"),
            dir,
            mounted: false,
        };
        for d in ["upper", "work", "rootfs", "empty"] {
            let p = o.dir.join(d);
            fs::create_dir_all(&p).map_err(io_err("create overlay directory", &p))?;
        }
        if lowerdirs.is_empty() {
            // overlayfs needs a lower layer; scratch gets an empty one.
            lowerdirs.push(o.dir.join("empty"));
        }
        let m = OverlayMount {
            lowerdirs,
            upperdir: o.upper.clone(),
            workdir: o.dir.join("work"),
            target: o.rootfs.clone(),
            // Mounted once; a step's upper directory becomes its layer right
            // after, and a crash redoes the build.
            volatile: true,
        };
        snapshot::mount(&m)?;
        o.mounted = true;
        Ok(o)
    }

    /// Unmounts, keeping the upper directory for [`commit_upper`].
    pub(crate) fn unmount(&mut self) -> Result<()> {
        if !self.mounted {
            return Ok(());
        }
        // EBUSY can be fleeting here: a process another thread is forking
        // holds copies of this process's descriptors (some inside the
        // overlay) until it execs. Anything longer is reported.
        let mut tries = 0;
        loop {
            match snapshot::unmount(&self.rootfs) {
                Ok(()) => break,
                Err(cais_image::Error::Mount { source, .. })
                    if source.raw_os_error() == Some(libc::EBUSY) && tries < 50 =>
                {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.mounted = false;
        Ok(())
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = self.unmount();
        if !self.mounted {
            let _ = unpack::remove_tree(&self.dir);
        }
    }
}

/// Stores the changes in `upper` as a gzip layer blob. The gzip header
/// carries no time (flate2 writes mtime 0), so equal trees give equal
/// blobs. Returns the layer's descriptor and its diff ID.
pub(crate) fn commit_upper(
    store: &ImageStore,
    upper: &Path,
    clamp_mtime: Option<i64>,
) -> Result<(Descriptor, Digest)> {
    let writer = store.content().writer()?;
    let gz = flate2::write::GzEncoder::new(writer, flate2::Compression::default());
    let mut hashing = HashingWriter::new(gz);
    snapshot::diff_with(upper, &mut hashing, DiffOptions { clamp_mtime })?;
    let (gz, diff_id, _) = hashing.finish();
    let writer = gz.finish().map_err(io_err("compress layer", upper))?;
    let (digest, size) = writer.commit_computed()?;
    Ok((Descriptor::new(oci::OCI_LAYER_GZIP, digest, size), diff_id))
}

/// Makes the `RUN` init layer in `dir`: the mount points the container
/// needs (`/proc`, `/dev`, `/sys`, `/etc/hosts`, `/etc/resolv.conf`), so
/// the runtime never creates them in the upper directory and they never
/// end up in a layer (docker's init layer does the same). As the topmost
/// lower layer its directories are what the container sees, so they take
/// the metadata (mode, owner, mtime) the image's own have in `layers`
/// (bottom first); one the image has as a non-directory is left out.
pub(crate) fn init_layer(dir: &Path, layers: &[PathBuf]) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    fs::create_dir_all(dir).map_err(io_err("create init layer", dir))?;
    let mut times = Vec::new();
    for d in ["proc", "dev", "sys", "etc"] {
        let image = layers
            .iter()
            .rev()
            .map(|l| l.join(d))
            .find_map(|p| fs::symlink_metadata(p).ok());
        if image.as_ref().is_some_and(|m| !m.is_dir()) {
            continue;
        }
        let p = dir.join(d);
        fs::create_dir(&p).map_err(io_err("create init layer", &p))?;
        let (mode, uid, gid, mtime) = image
            .map(|m| (m.mode() & 0o7777, m.uid(), m.gid(), m.mtime()))
            .unwrap_or((0o755, 0, 0, 0));
        std::os::unix::fs::lchown(&p, Some(uid), Some(gid)).map_err(io_err("chown", &p))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).map_err(io_err("chmod", &p))?;
        if d == "etc" {
            for f in ["hosts", "resolv.conf"] {
                let file = p.join(f);
                fs::write(&file, b"").map_err(io_err("create init layer", &file))?;
            }
        }
        times.push((p, mtime));
    }
    for (p, mtime) in times {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime.max(0) as u64);
        fs::File::open(&p)
            .and_then(|f| f.set_modified(t))
            .map_err(io_err("set times of", &p))?;
    }
    Ok(())
}

/// What a `RUN` container runs.
pub(crate) struct RunSpec<'a> {
    pub(crate) args: &'a [String],
    pub(crate) env: &'a [String],
    pub(crate) cwd: &'a str,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// `RUN --mount`s as OCI mounts, after the standard ones.
    pub(crate) mounts: Vec<serde_json::Value>,
    pub(crate) netns: &'a RunNetns,
    /// `/etc/hosts` and `/etc/resolv.conf` (see [`etc_files`]).
    pub(crate) etc: &'a [(&'static str, PathBuf)],
}

/// The `/etc/hosts` and `/etc/resolv.conf` a `RUN` container gets, as
/// (destination, source) pairs: the network's own texts written into
/// `dir`, or the host's files.
pub(crate) fn etc_files(dir: &Path, network: &RunNetwork) -> Result<Vec<(&'static str, PathBuf)>> {
    let mut out = Vec::new();
    for (dest, text, name) in [
        ("/etc/resolv.conf", &network.resolv_conf, "resolv.conf"),
        ("/etc/hosts", &network.hosts, "hosts"),
    ] {
        match text {
            Some(t) => {
                let p = dir.join(name);
                fs::write(&p, t).map_err(io_err("write", &p))?;
                out.push((dest, p));
            }
            None if Path::new(dest).exists() => out.push((dest, PathBuf::from(dest))),
            None => {}
        }
    }
    Ok(out)
}

/// The OCI config of a `RUN` container: docker's default capabilities,
/// masked paths and seccomp profile. Network: by default the host's
/// namespace (`RUN` commonly fetches packages), so `/sys` is the host's,
/// bound read-only; otherwise one of its own or the one given. The
/// `/etc/resolv.conf` and `/etc/hosts` of [`etc_files`] are bound
/// read-only.
pub(crate) fn spec(id: &str, rootfs: &Path, run: &RunSpec<'_>) -> serde_json::Value {
    let sys = if *run.netns != RunNetns::Host {
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]})
    } else {
        json!({"destination": "/sys", "type": "bind", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
    };
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        sys,
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]}),
    ];
    for (dest, source) in run.etc {
        mounts.push(json!({"destination": dest, "type": "bind", "source": source, "options": ["rbind", "rprivate", "ro"]}));
    }
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    match run.netns {
        RunNetns::Host => {}
        RunNetns::Isolated => namespaces.push(json!({"type": "network"})),
        RunNetns::Join(path) => namespaces.push(json!({"type": "network", "path": path})),
    }
    mounts.extend(run.mounts.iter().cloned());
    json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": false,
            "user": {"uid": run.uid, "gid": run.gid},
            "args": run.args,
            "env": run.env,
            "cwd": run.cwd,
            "capabilities": {"bounding": cais_runtime::bundle::DEFAULT_CAPS, "effective": cais_runtime::bundle::DEFAULT_CAPS, "permitted": cais_runtime::bundle::DEFAULT_CAPS},
            "noNewPrivileges": false,
        },
        "root": {"path": rootfs, "readonly": false},
        "hostname": id.get(..12).unwrap_or(id),
        "mounts": mounts,
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "cgroupsPath": format!("/cais-build/{id}"),
            "namespaces": namespaces,
            "maskedPaths": [
                "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                "/sys/firmware", "/sys/devices/virtual/powercap", "/sys/kernel/security"
            ],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
            // The containers' default profile: docker applies it to RUN too.
            "seccomp": cais_runtime::bundle::default_seccomp()
        }
    })
}

/// Runs `cais runtime run` on the bundle in `bundle` as a child of this
/// process, streaming the container's stdout and stderr, each through a
/// pipe of its own, to `progress` as they come. Returns the exit code.
pub(crate) fn run_container(
    binary: &Path,
    state_root: &Path,
    bundle: &Path,
    id: &str,
    progress: &mut dyn Progress,
) -> Result<i32> {
    let (out_read, out_write) = pipe(bundle)?;
    let (err_read, err_write) = pipe(bundle)?;
    let mut cmd = Command::new(binary);
    cmd.arg("runtime")
        .arg("--root")
        .arg(state_root)
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out_write))
        .stderr(Stdio::from(err_write));
    let mut child = cmd.spawn().map_err(|e| Error::Runtime {
        reason: format!("starting {}: {e}", binary.display()),
    })?;
    // The Command keeps the write ends until it is dropped: drop it now,
    // or the reads below never see EOF.
    drop(cmd);
    let mut open = [
        Some(fs::File::from(out_read)),
        Some(fs::File::from(err_read)),
    ];
    let mut buf = [0u8; 8192];
    while open.iter().any(Option::is_some) {
        let mut fds: Vec<libc::pollfd> = open
            .iter()
            .map(|f| libc::pollfd {
                fd: f.as_ref().map_or(-1, |f| f.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs for
        // the duration of the call; negative descriptors are ignored.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            let _ = child.kill();
            let _ = child.wait();
            return Err(io_err("wait for output of", bundle)(e));
        }
        for (i, pfd) in fds.iter().enumerate() {
            if pfd.revents == 0 {
                continue;
            }
            let Some(file) = open[i].as_mut() else {
                continue;
            };
            match file.read(&mut buf) {
                Ok(0) => open[i] = None,
                Ok(n) if i == 0 => progress.output(&buf[..n]),
                Ok(n) => progress.error_output(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(io_err("read output of", bundle)(e));
                }
            }
        }
    }
    let status = child.wait().map_err(|e| Error::Runtime {
        reason: format!("waiting for the runtime: {e}"),
    })?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// A close-on-exec pipe: (read end, write end).
fn pipe(bundle: &Path) -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the array with two new descriptors on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io_err("create pipe for", bundle)(
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: pipe2 returned two descriptors nobody else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
