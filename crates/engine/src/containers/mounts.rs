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

/// The options of a `-v SRC:DEST:OPTIONS` bind or volume: `ro`/`rw`,
/// a propagation, SELinux relabelling (`z`, `Z`: nothing to do where the
/// host has no SELinux, as dockerd does there), `nocopy` for volumes and
/// macOS's consistency words (which Linux has no use for).
#[derive(Debug, Default, PartialEq)]
struct BindMode {
    rw: bool,
    propagation: String,
    nocopy: bool,
}

fn parse_mode(spec: &str, mode: &str, volume: bool) -> Result<BindMode> {
    let mut m = BindMode {
        rw: true,
        ..Default::default()
    };
    for o in mode.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => m.rw = false,
            "rw" => m.rw = true,
            "z" | "Z" | "consistent" | "cached" | "delegated" => {}
            "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" if !volume => {
                m.propagation = o.to_string()
            }
            "nocopy" if volume => m.nocopy = true,
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "invalid volume specification: '{spec}': invalid mode: {mode}"
                )))
            }
        }
    }
    Ok(m)
}

/// Binds, named and anonymous volumes and tmpfs mounts, as inspect shows
/// them: `VolumesFrom` first (another container's binds and volumes, its
/// mode or the one given), then the container's own, which win for the
/// same destination. `lookup` finds another container by id.
pub(crate) fn plan(
    volumes: &Volumes,
    rec: &Container,
    lookup: &dyn Fn(&str) -> Result<Container>,
) -> Result<(Vec<MountPoint>, Vec<String>)> {
    let mut out: Vec<MountPoint> = Vec::new();
    let mut anonymous = Vec::new();
    let add_volume = |name: &str,
                      dest: &str,
                      rw: bool,
                      labels: BTreeMap<String, String>,
                      mode: &str,
                      out: &mut Vec<MountPoint>|
     -> Result<()> {
        // `VolumeDriver` is the driver of the volumes made for this
        // container; with none made, it is only recorded, as by dockerd.
        if !matches!(rec.host_config.volume_driver.as_str(), "" | "local") {
            return Err(Error::InvalidArgument(format!(
                "error looking up volume plugin {0}: plugin {0:?} not found",
                rec.host_config.volume_driver
            )));
        }
        let v = volumes.create(name, labels)?;
        out.push(MountPoint {
            kind: "volume".into(),
            name: name.into(),
            source: v.mountpoint,
            destination: dest.into(),
            driver: "local".into(),
            mode: mode.into(),
            rw,
            propagation: String::new(),
        });
        Ok(())
    };
    let mut own: Vec<MountPoint> = Vec::new();
    for bind in &rec.host_config.binds {
        let parts: Vec<&str> = bind.split(':').collect();
        let (src, dest, mode) = match parts.as_slice() {
            [d] => ("", *d, ""),
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
        if src.starts_with('/') {
            let m = parse_mode(bind, mode, false)?;
            if !Path::new(src).exists() {
                fs::create_dir_all(src).map_err(Error::io("creating the bind source", src))?;
            }
            own.push(MountPoint {
                kind: "bind".into(),
                source: src.into(),
                destination: dest.into(),
                mode: mode.into(),
                rw: m.rw,
                propagation: if m.propagation.is_empty() {
                    "rprivate".into()
                } else {
                    m.propagation
                },
                ..Default::default()
            });
        } else {
            let m = parse_mode(bind, mode, true)?;
            let name = if src.is_empty() {
                let n = random_hex(32);
                anonymous.push(n.clone());
                n
            } else {
                src.to_string()
            };
            let shown = if mode.is_empty() { "z" } else { mode };
            add_volume(&name, dest, m.rw, BTreeMap::new(), shown, &mut own)?;
        }
    }
    for m in &rec.host_config.mounts {
        if !m.target.starts_with('/') {
            return Err(Error::InvalidArgument(format!(
                "invalid mount config for type {:?}: invalid mount path: '{}' mount path must be absolute",
                m.kind, m.target
            )));
        }
        match m.kind.as_str() {
            "bind" => {
                let opts = m.bind_options.clone().unwrap_or_default();
                if !Path::new(&m.source).exists() {
                    if !opts.create_mountpoint {
                        return Err(Error::InvalidArgument(format!(
                            "invalid mount config for type \"bind\": bind source path does not exist: {}",
                            m.source
                        )));
                    }
                    fs::create_dir_all(&m.source)
                        .map_err(Error::io("creating the bind source", &m.source))?;
                }
                if !matches!(
                    opts.propagation.as_str(),
                    "" | "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate"
                ) {
                    return Err(Error::InvalidArgument(format!(
                        "invalid mount config for type \"bind\": invalid propagation mode: {}",
                        opts.propagation
                    )));
                }
                if (opts.read_only_non_recursive || opts.read_only_force_recursive) && !m.read_only
                {
                    return Err(Error::InvalidArgument(
                        "invalid mount config for type \"bind\": option 'ReadOnlyNonRecursive' or 'ReadOnlyForceRecursive' needs 'ReadOnly'".into(),
                    ));
                }
                if opts.read_only_non_recursive && opts.read_only_force_recursive {
                    return Err(Error::InvalidArgument(
                        "mount options conflict: ReadOnlyNonRecursive && ReadOnlyForceRecursive"
                            .into(),
                    ));
                }
                own.push(MountPoint {
                    kind: "bind".into(),
                    source: m.source.clone(),
                    destination: m.target.clone(),
                    rw: !m.read_only,
                    propagation: if opts.propagation.is_empty() {
                        "rprivate".into()
                    } else {
                        opts.propagation
                    },
                    ..Default::default()
                });
            }
            "volume" => {
                let opts = m.volume_options.clone().unwrap_or_default();
                if let Some(d) = &opts.driver_config {
                    if !matches!(d.name.as_str(), "" | "local") {
                        return Err(Error::InvalidArgument(format!(
                            "error looking up volume plugin {0}: plugin {0:?} not found",
                            d.name
                        )));
                    }
                    if !d.options.is_empty() {
                        return Err(Error::InvalidArgument(
                            "volume driver options are not supported: cais's local volumes are directories of the data root".into(),
                        ));
                    }
                }
                let name = if m.source.is_empty() {
                    let n = random_hex(32);
                    anonymous.push(n.clone());
                    n
                } else {
                    m.source.clone()
                };
                add_volume(&name, &m.target, !m.read_only, opts.labels, "z", &mut own)?;
                if !opts.subpath.is_empty() {
                    let last = own.last_mut().expect("just added");
                    let data = PathBuf::from(&last.source);
                    let inside = cais_runtime::rootfs::secure_join(&data, Path::new(&opts.subpath))
                        .map_err(Error::io("resolving in the volume", &opts.subpath))?;
                    if !inside.exists() {
                        return Err(Error::InvalidArgument(format!(
                            "cannot access path {}: no such file or directory",
                            inside.display()
                        )));
                    }
                    last.source = inside.to_string_lossy().into_owned();
                }
            }
            "tmpfs" => {
                if !m.source.is_empty() {
                    return Err(Error::InvalidArgument(
                        "invalid mount config for type \"tmpfs\": field Source must not be specified".into(),
                    ));
                }
                own.push(MountPoint {
                    kind: "tmpfs".into(),
                    destination: m.target.clone(),
                    rw: !m.read_only,
                    ..Default::default()
                })
            }
            other => {
                return Err(Error::InvalidArgument(format!(
                    "mount type {other:?} is not supported: cais mounts binds, volumes and tmpfs"
                )))
            }
        }
    }
    for from in &rec.host_config.volumes_from {
        let (name, mode) = match from.rsplit_once(':') {
            Some((n, m)) => (n, Some(m)),
            None => (from.as_str(), None),
        };
        let donor = lookup(name)?;
        for m in donor.mounts.iter().filter(|m| m.kind != "tmpfs") {
            if own
                .iter()
                .chain(&out)
                .any(|o| o.destination == m.destination)
            {
                continue;
            }
            let mut m = m.clone();
            if let Some(mode) = mode {
                m.rw = !mode.split(',').any(|o| o == "ro");
                m.mode = mode.to_string();
            }
            out.push(m);
        }
    }
    out.extend(own);
    // Image VOLUMEs not covered by a mount get anonymous volumes.
    for dest in rec.config.volumes.iter().flat_map(|v| v.keys()) {
        if out.iter().any(|m| &m.destination == dest) {
            continue;
        }
        let n = random_hex(32);
        anonymous.push(n.clone());
        add_volume(&n, dest, true, BTreeMap::new(), "", &mut out)?;
    }
    Ok((out, anonymous))
}

/// Whether the mount holding `path` propagates as a bind with
/// `propagation` needs: a shared mount for `shared`/`rshared`, a shared or
/// slave one for `slave`/`rslave` (mount_namespaces(7)); dockerd's words
/// when it does not.
pub(crate) fn check_propagation(path: &str, propagation: &str) -> Result<()> {
    let need_shared = matches!(propagation, "shared" | "rshared");
    let need_slave = matches!(propagation, "slave" | "rslave");
    if !need_shared && !need_slave {
        return Ok(());
    }
    let info = fs::read_to_string("/proc/self/mountinfo")
        .map_err(Error::io("reading", "/proc/self/mountinfo"))?;
    // The longest mount point that holds the path.
    let (point, optional) = info
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let point = *f.get(4)?;
            let dash = f.iter().position(|x| *x == "-")?;
            let holds = path == point
                || point == "/"
                || path.starts_with(&format!("{}/", point.trim_end_matches('/')));
            holds.then(|| (point.to_string(), f[6..dash].join(" ")))
        })
        .max_by_key(|(p, _)| p.len())
        .unwrap_or_else(|| ("/".into(), String::new()));
    let shared = optional.split(' ').any(|o| o.starts_with("shared:"));
    let slave = optional.split(' ').any(|o| o.starts_with("master:"));
    if need_shared && !shared {
        return Err(Error::InvalidArgument(format!(
            "path {path} is mounted on {point} but it is not a shared mount"
        )));
    }
    if need_slave && !shared && !slave {
        return Err(Error::InvalidArgument(format!(
            "path {path} is mounted on {point} but it is not a shared or slave mount"
        )));
    }
    Ok(())
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
        // The API mount this came from, for options a MountPoint does not
        // hold (tmpfs size and mode, recursion, read-only recursion).
        let api = rec
            .host_config
            .mounts
            .iter()
            .find(|a| a.target == m.destination);
        let bind_opts = api.and_then(|a| a.bind_options.clone()).unwrap_or_default();
        let mut options = vec![if bind_opts.non_recursive {
            "bind".to_string()
        } else {
            "rbind".to_string()
        }];
        if !m.rw {
            options.push("ro".into());
            // Read-only all the way down, as dockerd makes it since 25.0,
            // unless asked otherwise (mount_setattr(2) AT_RECURSIVE).
            if !bind_opts.read_only_non_recursive && !bind_opts.non_recursive {
                options.push("rro".into());
            }
        }
        if !m.propagation.is_empty() {
            options.push(m.propagation.clone());
        }
        match m.kind.as_str() {
            "tmpfs" => {
                let mut options = vec!["nosuid".to_string(), "nodev".to_string()];
                let t = api
                    .and_then(|a| a.tmpfs_options.clone())
                    .unwrap_or_default();
                options.push(if t.mode != 0 {
                    format!("mode={:o}", t.mode)
                } else {
                    "mode=1777".into()
                });
                if t.size_bytes > 0 {
                    options.push(format!("size={}", t.size_bytes));
                }
                for o in &t.options {
                    match o.as_slice() {
                        [k] => options.push(k.clone()),
                        [k, v] => options.push(format!("{k}={v}")),
                        _ => {
                            return Err(Error::InvalidArgument(format!(
                                "invalid tmpfs option {o:?}: want [name] or [name, value]"
                            )))
                        }
                    }
                }
                if !m.rw {
                    options.push("ro".into());
                }
                out.push(MountSpec {
                    destination: m.destination.clone(),
                    kind: "tmpfs".into(),
                    source: "tmpfs".into(),
                    options,
                })
            }
            "volume" => {
                let data = PathBuf::from(&m.source);
                let nocopy = m.mode.split(',').any(|o| o == "nocopy")
                    || api
                        .and_then(|a| a.volume_options.as_ref())
                        .is_some_and(|v| v.no_copy);
                if !nocopy {
                    let inside =
                        cais_runtime::rootfs::secure_join(rootfs, Path::new(&m.destination))
                            .map_err(Error::io("resolving in the container", &m.destination))?;
                    volumes::populate(&inside, &data)
                        .map_err(Error::io("populating the volume", &data))?;
                }
                out.push(MountSpec {
                    destination: m.destination.clone(),
                    kind: "bind".into(),
                    source: m.source.clone(),
                    options,
                });
            }
            _ => {
                check_propagation(&m.source, &m.propagation)?;
                out.push(MountSpec {
                    destination: m.destination.clone(),
                    kind: "bind".into(),
                    source: m.source.clone(),
                    options,
                })
            }
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
    // Only with a PID namespace of its own: in another's (or the host's)
    // pid 1 is already someone else's init, as dockerd has it.
    if rec.host_config.init == Some(true) && rec.host_config.pid_mode.is_empty() {
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
