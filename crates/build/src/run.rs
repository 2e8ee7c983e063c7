//! Where steps touch the file system: an overlay of a state's layers with a
//! fresh upper directory ([`Overlay`]), `RUN` in a container on it
//! ([`run_container`]), and the upper directory turned into a stored layer
//! ([`commit_upper`]). Mounting goes through `cais_image::snapshot::mount`,
//! the one place that mounts overlays.

use std::fs;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cais_image::digest::HashingWriter;
use cais_image::oci::{self, Descriptor};
use cais_image::snapshot::{self, DiffOptions, OverlayMount};
use cais_image::{unpack, Digest, ImageStore};
use serde_json::json;

use crate::{io_err, Error, Progress, Result};

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
        let mut lowerdirs = Vec::new();
        if let Some(top) = extra_top {
            lowerdirs.push(top.to_path_buf());
        }
        for d in diff_ids.iter().rev() {
            lowerdirs.push(store.short_link(d)?);
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
}

/// The OCI config of a `RUN` container: docker's default capabilities,
/// masked paths and seccomp profile. Network: the host's namespace
/// (`RUN` commonly fetches packages, and a build has no network of its
/// own yet), so `/sys` is the host's, bound read-only, and the host's
/// `/etc/resolv.conf` and `/etc/hosts` are bound read-only.
pub(crate) fn spec(id: &str, rootfs: &Path, run: &RunSpec<'_>) -> serde_json::Value {
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "bind", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]}),
    ];
    for f in ["/etc/resolv.conf", "/etc/hosts"] {
        if Path::new(f).exists() {
            mounts.push(json!({"destination": f, "type": "bind", "source": f, "options": ["rbind", "rprivate", "ro"]}));
        }
    }
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
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
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
/// process, streaming the container's stdout and stderr (one pipe, so
/// their order is kept) to `progress`. Returns the exit code.
pub(crate) fn run_container(
    binary: &Path,
    state_root: &Path,
    bundle: &Path,
    id: &str,
    progress: &mut dyn Progress,
) -> Result<i32> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the array with two new descriptors on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io_err("create pipe for", bundle)(
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: pipe2 returned two descriptors nobody else owns.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let write2 = write.try_clone().map_err(io_err("dup pipe for", bundle))?;
    let mut cmd = Command::new(binary);
    cmd.arg("runtime")
        .arg("--root")
        .arg(state_root)
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::from(write))
        .stderr(Stdio::from(write2));
    let mut child = cmd.spawn().map_err(|e| Error::Runtime {
        reason: format!("starting {}: {e}", binary.display()),
    })?;
    // The Command keeps the write ends until it is dropped: drop it now,
    // or the read below never sees EOF.
    drop(cmd);
    let mut reader = fs::File::from(read);
    let mut buf = [0u8; 8192];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => progress.output(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io_err("read output of", bundle)(e));
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
