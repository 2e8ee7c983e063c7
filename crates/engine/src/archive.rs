//! `docker cp`: the archive endpoints. Every path inside the container is
//! resolved by a helper process (`cais archive`) that has first made the
//! container's root filesystem its own root, in a private mount namespace
//! with pivot_root(2) and the host's root detached (never a bare chroot,
//! which a process can climb out of), so no symlink in the container — even
//! one swapped in while the copy runs — can lead to a host path. The daemon
//! itself never opens a path under a container's root.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// The helper: `cais archive --root ROOTFS [--binds JSON] stat|get PATH`
/// or `put DIR`. `binds` (see [`Bind`]) are the container's volumes and
/// bind mounts, bound in before the root is entered, so paths under them
/// are the volume's as the container sees them. Its stdout carries the
/// data (`stat`'s JSON, `get`'s tar); an error is returned for the binary
/// to print on stderr, where the daemon reads it.
pub fn helper_main(
    root: &Path,
    binds: Option<&str>,
    op: &str,
    path: &str,
) -> std::result::Result<(), String> {
    let binds: Vec<Bind> = match binds {
        Some(text) => serde_json::from_str(text).map_err(|e| format!("invalid --binds: {e}"))?,
        None => Vec::new(),
    };
    let binds: Vec<cais_runtime::rootfs::HelperBind> = binds
        .into_iter()
        .map(|b| cais_runtime::rootfs::HelperBind {
            source: b.source,
            destination: b.destination,
            readonly: b.readonly,
        })
        .collect();
    if let Err(e) = cais_runtime::rootfs::enter_privately_with(root, &binds) {
        return Err(format!(
            "entering {}: {}",
            root.display(),
            cais_runtime::error::chain(&e)
        ));
    }
    match op {
        "stat" => stat(path).and_then(|v| {
            writeln!(std::io::stdout(), "{v}").map_err(|e| format!("writing the stat: {e}"))
        }),
        "get" => get(path),
        "put" => put(path, false),
        // `docker cp -a`: the tar's owners kept (copyUIDGID).
        "put-owned" => put(path, true),
        other => Err(format!("unknown archive operation {other:?}")),
    }
}

fn stat(path: &str) -> std::result::Result<serde_json::Value, String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| format!("Could not find the file {path} in container: {e}"))?;
    let link = std::fs::read_link(path)
        .map(|l| l.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/".into());
    // Go's os.FileMode: the directory and symlink bits are the top bits.
    let mut mode = meta.mode() & 0o777;
    if meta.is_dir() {
        mode |= 1 << 31;
    } else if meta.file_type().is_symlink() {
        mode |= 1 << 27;
    }
    Ok(serde_json::json!({
        "name": name,
        "size": meta.size(),
        "mode": mode,
        "mtime": cais_runtime::state::rfc3339(meta.modified().unwrap_or(std::time::UNIX_EPOCH)),
        "linkTarget": link,
    }))
}

fn get(path: &str) -> std::result::Result<(), String> {
    let p = Path::new(path);
    std::fs::symlink_metadata(p)
        .map_err(|e| format!("Could not find the file {path} in container: {e}"))?;
    let name = p
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    let meta = std::fs::symlink_metadata(p).map_err(|e| e.to_string())?;
    if meta.is_dir() {
        builder
            .append_dir_all(&name, p)
            .map_err(|e| e.to_string())?;
    } else {
        builder
            .append_path_with_name(p, &name)
            .map_err(|e| e.to_string())?;
    }
    builder
        .into_inner()
        .and_then(|mut w| w.flush())
        .map_err(|e| e.to_string())
}

fn put(dir: &str, keep_owners: bool) -> std::result::Result<(), String> {
    let meta = std::fs::metadata(dir)
        .map_err(|e| format!("Could not find the file {dir} in container: {e}"))?;
    if !meta.is_dir() {
        return Err(format!("extraction point {dir} is not a directory"));
    }
    let mut archive = tar::Archive::new(std::io::stdin().lock());
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(keep_owners);
    archive.set_overwrite(true);
    // unpack_in refuses entries that would land outside `dir`; the pivot
    // bounds everything else.
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        entry.unpack_in(dir).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A volume or bind mount of the container, for the helper (`--binds`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Bind {
    pub source: PathBuf,
    pub destination: PathBuf,
    #[serde(default)]
    pub readonly: bool,
}

/// `binary archive --root ROOTFS --binds JSON OP PATH`, the helper's
/// command line.
pub(crate) fn helper(
    binary: &Path,
    rootfs: &Path,
    binds: &[Bind],
    op: &str,
    path: &str,
) -> Command {
    let mut c = Command::new(binary);
    c.arg("archive").arg("--root").arg(rootfs);
    if !binds.is_empty() {
        c.arg("--binds")
            .arg(serde_json::to_string(binds).expect("binds serialize"));
    }
    c.arg(op).arg(path);
    c
}

/// The stat of `path` in the container whose root is `root`, base64 of
/// its JSON as the `X-Docker-Container-Path-Stat` header carries it.
pub(crate) fn path_stat(binary: &Path, root: &Path, binds: &[Bind], path: &str) -> Result<String> {
    let out = helper(binary, root, binds, "stat", path)
        .stdin(Stdio::null())
        .output()
        .map_err(Error::spawn(binary))?;
    if !out.status.success() {
        return Err(Error::Archive {
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            missing: true,
        });
    }
    use base64::Engine as _;
    Ok(base64::engine::general_purpose::STANDARD
        .encode(String::from_utf8_lossy(&out.stdout).trim()))
}
