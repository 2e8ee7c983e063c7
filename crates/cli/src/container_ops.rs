//! `cais cp`, `diff`, `export` and `update`: a container's files and
//! resources through the daemon.
//!
//! `cp` follows docker's rules: `CONTAINER:PATH` on one side; `-` for a
//! tar on stdin (into a container directory) or on stdout (what the
//! daemon sends, as it is); a copy into an existing directory lands inside
//! it, else it takes the destination's name. Without `-a` copied-in files
//! belong to the container's root and copied-out ones to whoever runs
//! `cp`; with `-a` the owners are kept both ways (`copyUIDGID` going in).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use cais_api::ContainerUpdate;
use cais_client::http::Client;
use cais_client::opts;
use clap::Args;
use serde_json::Value;

use crate::run_flags::{resource_fields, ResourceArgs};

#[derive(Debug, Args)]
pub struct CpArgs {
    /// Archive mode: keep owners (uid/gid) as they are.
    #[arg(short, long)]
    archive: bool,
    /// Follow a symbolic link given as the source.
    #[arg(short = 'L', long = "follow-link")]
    follow_link: bool,
    /// Print no progress.
    #[arg(short, long)]
    quiet: bool,
    src: String,
    dest: String,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    container: String,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to this file instead of stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
    container: String,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    resources: ResourceArgs,
    /// Memory limit (e.g. 64m).
    #[arg(short, long)]
    memory: Option<String>,
    /// Number of CPUs.
    #[arg(long)]
    cpus: Option<f64>,
    /// Process limit (-1 for none).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// no, always, unless-stopped, on-failure[:N].
    #[arg(long)]
    restart: Option<String>,
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `CONTAINER:PATH` split, or `None` for a local path (a path with a `/`
/// before its first `:` is local, as in docker).
fn split_container_path(arg: &str) -> Option<(&str, &str)> {
    if arg.starts_with('/') || arg.starts_with('.') {
        return None;
    }
    let (c, p) = arg.split_once(':')?;
    (!c.is_empty() && !c.contains('/')).then_some((c, p))
}

/// The `X-Docker-Container-Path-Stat` header: name, size, mode, ...
fn path_stat(c: &Client, container: &str, path: &str) -> Result<Option<Value>> {
    match c.container_archive_stat(container, path) {
        Ok(resp) => {
            let header = resp
                .header("X-Docker-Container-Path-Stat")
                .ok_or_else(|| anyhow!("the daemon sent no path stat"))?;
            let json = base64::engine::general_purpose::STANDARD
                .decode(header.trim())
                .context("decoding the path stat")?;
            Ok(Some(serde_json::from_slice(&json)?))
        }
        Err(e) if e.status() == Some(404) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn is_dir_mode(stat: &Value) -> bool {
    // Go's os.FileMode: the directory bit is 1 << 31.
    stat["mode"].as_u64().is_some_and(|m| m & (1 << 31) != 0)
}

pub fn cp(c: &Client, a: CpArgs) -> Result<i32> {
    match (split_container_path(&a.src), split_container_path(&a.dest)) {
        (Some(_), Some(_)) => bail!("copying between containers is not supported"),
        (None, None) => bail!("must specify at least one container source"),
        (Some((container, path)), None) => copy_out(c, container, path, &a),
        (None, Some((container, path))) => copy_in(c, &a.src, container, path, &a),
    }
}

fn copy_out(c: &Client, container: &str, path: &str, a: &CpArgs) -> Result<i32> {
    let path = if path.is_empty() { "/" } else { path };
    let mut resp = c.container_archive_get(container, path)?;
    if a.dest == "-" {
        if std::io::stdout().is_terminal() {
            bail!("cowardly refusing to write a tar to a terminal: redirect the output");
        }
        std::io::copy(&mut resp.body, &mut std::io::stdout().lock())?;
        return Ok(0);
    }
    let dest = PathBuf::from(&a.dest);
    let src_name = Path::new(path.trim_end_matches('/'))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".".into());
    // Into an existing directory: the copy lands inside it under its own
    // name. Else the copy takes the destination's name, in its parent.
    let (dir, rename) = if dest.is_dir() {
        (dest.clone(), None)
    } else {
        if a.dest.ends_with('/') {
            bail!("destination directory {} does not exist", dest.display());
        }
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !parent.is_dir() {
            bail!("destination directory {} does not exist", parent.display());
        }
        (parent, dest.file_name().map(|n| n.to_os_string()))
    };
    let scratch = tempfile::Builder::new()
        .prefix(".cais-cp")
        .tempdir_in(&dir)
        .with_context(|| format!("creating a scratch directory in {}", dir.display()))?;
    let mut archive = tar::Archive::new(&mut resp.body);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(a.archive);
    archive.set_overwrite(true);
    archive
        .unpack(scratch.path())
        .context("unpacking what the daemon sent")?;
    let entries: Vec<PathBuf> = std::fs::read_dir(scratch.path())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    for e in entries {
        let name = e.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        let target = match (&rename, name.to_string_lossy() == src_name) {
            (Some(r), true) => dir.join(r),
            _ => dir.join(&name),
        };
        move_into(&e, &target)?;
    }
    if !a.quiet && std::io::stderr().is_terminal() {
        eprintln!("Successfully copied to {}", dest.display());
    }
    Ok(0)
}

/// Moves `from` to `to`: a directory onto an existing one merges into it,
/// anything else replaces what is there.
fn move_into(from: &Path, to: &Path) -> Result<()> {
    let from_meta = std::fs::symlink_metadata(from)?;
    match std::fs::symlink_metadata(to) {
        Ok(m) if m.is_dir() && from_meta.is_dir() => {
            for e in std::fs::read_dir(from)? {
                let e = e?;
                move_into(&e.path(), &to.join(e.file_name()))?;
            }
            Ok(())
        }
        Ok(m) if m.is_dir() => bail!(
            "cannot overwrite directory {} with non-directory",
            to.display()
        ),
        Ok(_) if from_meta.is_dir() => bail!(
            "cannot overwrite non-directory {} with directory",
            to.display()
        ),
        _ => std::fs::rename(from, to)
            .with_context(|| format!("moving the copy to {}", to.display())),
    }
}

fn copy_in(c: &Client, src: &str, container: &str, path: &str, a: &CpArgs) -> Result<i32> {
    if path.is_empty() {
        bail!("the container path must not be empty");
    }
    let stat = path_stat(c, container, path)?;
    if src == "-" {
        // A tar on stdin goes into the directory as it is.
        if !stat.as_ref().is_some_and(is_dir_mode) {
            bail!("destination \"{container}:{path}\" must be a directory");
        }
        let mut stdin = std::io::stdin().lock();
        c.container_archive_put_with(container, path, a.archive, &mut stdin)?;
        return Ok(0);
    }
    let src_path = PathBuf::from(src);
    let meta = if a.follow_link {
        std::fs::metadata(&src_path)
    } else {
        std::fs::symlink_metadata(&src_path)
    }
    .with_context(|| format!("could not find the file {src} in the local file system"))?;
    let (dir, name) = match &stat {
        Some(s) if is_dir_mode(s) => (
            path.to_string(),
            src_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| ".".into()),
        ),
        Some(_) if meta.is_dir() => {
            bail!("cannot copy directory to \"{container}:{path}\": it is not a directory")
        }
        _ => {
            if path.ends_with('/') {
                bail!("destination directory \"{container}:{path}\" does not exist");
            }
            let p = Path::new(path);
            let parent = p
                .parent()
                .map(|x| x.to_string_lossy().into_owned())
                .filter(|x| !x.is_empty())
                .unwrap_or_else(|| "/".into());
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| anyhow!("invalid destination {path}"))?;
            (parent, name)
        }
    };
    let tar = local_tar(&src_path, &name, a.follow_link)?;
    c.container_archive_put_with(container, &dir, a.archive, &mut tar.as_slice())?;
    if !a.quiet && std::io::stderr().is_terminal() {
        eprintln!("Successfully copied to {container}:{path}");
    }
    Ok(0)
}

/// A tar of `src` named `name` inside it, owners as they are here (the
/// daemon keeps them with `-a`, else gives the files to the container's
/// root).
fn local_tar(src: &Path, name: &str, follow: bool) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(follow);
    b.mode(tar::HeaderMode::Complete);
    let meta = std::fs::symlink_metadata(src)?;
    if meta.is_dir() || (follow && std::fs::metadata(src)?.is_dir()) {
        b.append_dir_all(name, src)
            .with_context(|| format!("archiving {}", src.display()))?;
    } else {
        b.append_path_with_name(src, name)
            .with_context(|| format!("archiving {}", src.display()))?;
    }
    Ok(b.into_inner()?)
}

pub fn diff(c: &Client, a: DiffArgs) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    for change in c.container_changes(&a.container)? {
        let kind = match change["Kind"].as_i64() {
            Some(0) => "C",
            Some(1) => "A",
            Some(2) => "D",
            _ => "?",
        };
        if writeln!(
            out,
            "{kind} {}",
            change["Path"].as_str().unwrap_or_default()
        )
        .is_err()
        {
            break;
        }
    }
    Ok(0)
}

pub fn export(c: &Client, a: ExportArgs) -> Result<i32> {
    if a.output.is_none() && std::io::stdout().is_terminal() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let mut resp = c.container_export(&a.container)?;
    match &a.output {
        Some(p) => {
            let mut f =
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?;
            std::io::copy(&mut resp.body, &mut f)?;
        }
        None => {
            std::io::copy(&mut resp.body, &mut std::io::stdout().lock())?;
        }
    }
    Ok(0)
}

pub fn update(c: &Client, a: UpdateArgs) -> Result<i32> {
    let mut u = ContainerUpdate::default();
    a.resources.apply(resource_fields!(u))?;
    if let Some(m) = &a.memory {
        u.memory = opts::bytes(m)?;
    }
    if let Some(n) = a.cpus {
        u.nano_cpus = (n * 1e9) as i64;
    }
    u.pids_limit = a.pids_limit;
    if let Some(r) = &a.restart {
        u.restart_policy = crate::client_cmds::restart_policy(r)?;
    }
    let mut failed = false;
    for name in &a.containers {
        match c.container_update(name, &u) {
            Ok(r) => {
                for w in &r.warnings {
                    eprintln!("WARNING: {w}");
                }
                println!("{name}");
            }
            Err(e) => {
                crate::client_cmds::report(&e.into(), 1);
                failed = true;
            }
        }
    }
    Ok(i32::from(failed))
}
