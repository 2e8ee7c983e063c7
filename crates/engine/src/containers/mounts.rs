//! A container's mounts: planned at create (binds, named and anonymous
//! volumes, tmpfs, as inspect shows them) and turned into the runtime's
//! mounts at start (the /etc files networking wrote, volumes populated
//! from the image, `--init`'s binary).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use cais_api::MountPoint;

use crate::containers::state::Container;
use crate::error::{Error, Result};
use crate::ids::random_hex;
use crate::networks::netconf::{EtcFile, NetPlan};
use crate::spec::MountSpec;
use crate::volumes::{self, Volumes};

/// Static init binaries `--init` can use, in order of preference.
const INIT_BINARIES: [&str; 2] = ["/usr/bin/tini-static", "/usr/bin/docker-init"];

/// Whether `path` is a mount point (in this process's mount namespace).
pub(crate) fn is_mounted(path: &Path) -> bool {
    let p = path.to_string_lossy();
    fs::read_to_string("/proc/self/mountinfo")
        .map(|m| m.lines().any(|l| l.split(' ').nth(4) == Some(&*p)))
        .unwrap_or(false)
}

/// Binds, named and anonymous volumes and tmpfs mounts, as inspect shows them.
pub(crate) fn plan(volumes: &Volumes, rec: &Container) -> Result<(Vec<MountPoint>, Vec<String>)> {
    let mut out: Vec<MountPoint> = Vec::new();
    let mut anonymous = Vec::new();
    let add_volume = |name: &str, dest: &str, rw: bool, out: &mut Vec<MountPoint>| -> Result<()> {
        let v = volumes.create(name, BTreeMap::new())?;
        out.push(MountPoint {
            kind: "volume".into(),
            name: name.into(),
            source: v.mountpoint,
            destination: dest.into(),
            driver: "local".into(),
            mode: if rw { "z".into() } else { "ro".into() },
            rw,
            propagation: String::new(),
        });
        Ok(())
    };
    for bind in &rec.host_config.binds {
        let parts: Vec<&str> = bind.split(':').collect();
        let (src, dest, mode) = match parts.as_slice() {
            [s, d] => (*s, *d, ""),
            [s, d, m] => (*s, *d, *m),
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "invalid volume specification: '{bind}'"
                )))
            }
        };
        if !dest.starts_with('/') {
            return Err(Error::InvalidArgument(format!(
                "invalid volume specification: '{bind}': destination must be an absolute path"
            )));
        }
        let rw = !mode.split(',').any(|m| m == "ro");
        if src.starts_with('/') {
            if !Path::new(src).exists() {
                fs::create_dir_all(src).map_err(Error::io("creating the bind source", src))?;
            }
            out.push(MountPoint {
                kind: "bind".into(),
                source: src.into(),
                destination: dest.into(),
                mode: mode.into(),
                rw,
                propagation: "rprivate".into(),
                ..Default::default()
            });
        } else {
            add_volume(src, dest, rw, &mut out)?;
        }
    }
    for m in &rec.host_config.mounts {
        match m.kind.as_str() {
            "bind" => {
                if !Path::new(&m.source).exists() {
                    return Err(Error::InvalidArgument(format!(
                        "invalid mount config for type \"bind\": bind source path does not exist: {}",
                        m.source
                    )));
                }
                out.push(MountPoint {
                    kind: "bind".into(),
                    source: m.source.clone(),
                    destination: m.target.clone(),
                    rw: !m.read_only,
                    propagation: "rprivate".into(),
                    ..Default::default()
                });
            }
            "volume" => {
                let name = if m.source.is_empty() {
                    let n = random_hex(32);
                    anonymous.push(n.clone());
                    n
                } else {
                    m.source.clone()
                };
                add_volume(&name, &m.target, !m.read_only, &mut out)?;
            }
            "tmpfs" => out.push(MountPoint {
                kind: "tmpfs".into(),
                destination: m.target.clone(),
                rw: !m.read_only,
                ..Default::default()
            }),
            other => {
                return Err(Error::InvalidArgument(format!(
                    "mount type {other:?} is not supported"
                )))
            }
        }
    }
    // Image VOLUMEs not covered by a mount get anonymous volumes.
    for dest in rec.config.volumes.iter().flat_map(|v| v.keys()) {
        if out.iter().any(|m| &m.destination == dest) {
            continue;
        }
        let n = random_hex(32);
        anonymous.push(n.clone());
        add_volume(&n, dest, true, &mut out)?;
    }
    Ok((out, anonymous))
}

/// The container's mounts for the runtime, volumes populated.
pub(crate) fn for_runtime(
    rec: &Container,
    dir: &Path,
    rootfs: &Path,
    plan: &NetPlan,
) -> Result<Vec<MountSpec>> {
    let mut out = Vec::new();
    // /etc/hostname, /etc/hosts, /etc/resolv.conf as docker provides them.
    for (name, file) in &plan.etc {
        let path = match file {
            EtcFile::Text(content) => {
                let path = dir.join(name);
                fs::write(&path, content).map_err(Error::io("writing", &path))?;
                path
            }
            EtcFile::Shared(path) => path.clone(),
        };
        out.push(MountSpec {
            destination: format!("/etc/{name}"),
            kind: "bind".into(),
            source: path.to_string_lossy().into_owned(),
            options: vec!["rbind".into(), "rprivate".into()],
        });
    }
    for m in &rec.mounts {
        let mut options = vec!["rbind".to_string()];
        if !m.rw {
            options.push("ro".into());
        }
        match m.kind.as_str() {
            "tmpfs" => out.push(MountSpec {
                destination: m.destination.clone(),
                kind: "tmpfs".into(),
                source: "tmpfs".into(),
                options: vec!["nosuid".into(), "nodev".into(), "mode=1777".into()],
            }),
            "volume" => {
                let data = PathBuf::from(&m.source);
                let inside = cais_runtime::rootfs::secure_join(rootfs, Path::new(&m.destination))
                    .map_err(Error::io("resolving in the container", &m.destination))?;
                volumes::populate(&inside, &data)
                    .map_err(Error::io("populating the volume", &data))?;
                out.push(MountSpec {
                    destination: m.destination.clone(),
                    kind: "bind".into(),
                    source: m.source.clone(),
                    options,
                });
            }
            _ => out.push(MountSpec {
                destination: m.destination.clone(),
                kind: "bind".into(),
                source: m.source.clone(),
                options,
            }),
        }
    }
    for (dest, opts) in &rec.host_config.tmpfs {
        let mut options = vec!["nosuid".to_string(), "nodev".to_string()];
        options.extend(
            opts.split(',')
                .filter(|o| !o.is_empty())
                .map(str::to_string),
        );
        out.push(MountSpec {
            destination: dest.clone(),
            kind: "tmpfs".into(),
            source: "tmpfs".into(),
            options,
        });
    }
    if rec.host_config.init == Some(true) {
        // The init must run in any image, with no libc of its own: a
        // statically linked one, Debian's tini-static (what docker ships
        // as docker-init).
        let init = INIT_BINARIES
            .iter()
            .find(|p| Path::new(p).exists())
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "--init needs a static init binary at one of {INIT_BINARIES:?} (apt-get install tini)"
                ))
            })?;
        out.push(MountSpec {
            destination: "/dev/init".into(),
            kind: "bind".into(),
            source: (*init).into(),
            options: vec!["bind".into(), "ro".into()],
        });
    }
    Ok(out)
}
