//! cgroup v1, v2 and hybrid management for cais containers.
//!
//! # Layout detection
//!
//! [`Layout::detect`] reads `/proc/self/mountinfo` (proc(5)). Every `cgroup`
//! mount is a v1 hierarchy; its super options name the controllers it carries
//! (`cpu,cpuacct` when co-mounted, or a named hierarchy such as
//! `name=systemd`). A `cgroup2` mount is the unified hierarchy. Only v1 mounts
//! make [`Layout::V1`], only a cgroup2 mount makes [`Layout::V2`], and both
//! make [`Layout::Hybrid`]. Nothing here hard-codes `/sys/fs/cgroup`: the
//! layout can be built by hand, which is how the tests point the crate at fake
//! hierarchies in a temporary directory.
//!
//! # The hybrid rule
//!
//! A controller can be bound to one hierarchy only
//! (Documentation/admin-guide/cgroup-v2.rst, "Support for cgroup v1"). So for
//! each resource, [`Cgroup::apply`] uses the v1 hierarchy of that controller
//! if one is mounted, otherwise the unified hierarchy if its root's
//! `cgroup.controllers` lists the controller, and otherwise fails with
//! [`Error::ControllerMissing`]. Device rules follow the same rule: the v1
//! `devices` hierarchy if mounted, otherwise an eBPF program on the unified
//! hierarchy. Processes join every hierarchy, named v1 ones included.
//!
//! The freezer is the v1 `freezer` hierarchy if mounted, otherwise the
//! unified tree's `cgroup.freeze`, which needs no controller.
//!
//! Network settings (`net_cls`, `net_prio`) are the exception: they are
//! written when those v1 controllers are mounted and left out otherwise,
//! [`Cgroup::skipped`] naming them so the caller can warn. cgroup v2 has
//! no such controllers (matching packets by cgroup is done with eBPF or
//! the netfilter cgroup match there), and refusing to start a container
//! over a traffic class would help nobody.

mod apply;
mod bpf;
pub mod devices;
mod error;
mod files;
mod layout;
mod path;
mod stats;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

pub use error::{Error, Result};
pub use layout::Layout;
pub use stats::{
    BlkioEntry, BlkioStats, CpuStats, CpuUsage, HugetlbStats, MemoryEntry, MemoryStats, PidsStats,
    Stats, Throttling,
};

/// v1 hierarchies consulted, in order, to list the processes of a cgroup.
const PIDS_SOURCES: &[&str] = &["pids", "freezer", "memory", "cpu", "devices"];

/// How long [`Cgroup::destroy`] waits for exiting tasks to leave.
const DESTROY_TIMEOUT: Duration = Duration::from_secs(5);

/// State of the freezer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FreezerState {
    Thawed,
    /// Freezing was requested but some task has not stopped yet.
    Freezing,
    Frozen,
}

/// One container's cgroup, across every mounted hierarchy.
#[derive(Debug, Clone)]
pub struct Cgroup {
    layout: Layout,
    /// The cgroup path relative to each hierarchy root.
    path: PathBuf,
    /// v1 controller -> this cgroup's directory in that controller's hierarchy.
    v1: BTreeMap<String, PathBuf>,
    /// This cgroup's directory in the unified hierarchy.
    unified: Option<PathBuf>,
    /// Controllers the unified root offers (its `cgroup.controllers`).
    unified_controllers: BTreeSet<String>,
    freeze_timeout: Duration,
}

impl Cgroup {
    /// Describes the cgroup at OCI `linux.cgroupsPath` `cgroups_path`.
    /// Nothing is created yet.
    ///
    /// * `/cais/abc` and `cais/abc` both name `cais/abc` below the root of
    ///   every hierarchy.
    /// * `slice:prefix:name` (the systemd form) names the scope systemd would
    ///   create: `system.slice:cais:abc` is `system.slice/cais-abc.scope`, and
    ///   a nested slice `a-b.slice` is `a.slice/a-b.slice`.
    ///
    /// `..` components and the root cgroup itself are refused.
    pub fn new(layout: Layout, cgroups_path: &str) -> Result<Cgroup> {
        let path = path::resolve(cgroups_path)?;
        let v1 = layout
            .v1_controllers()
            .map(|c| {
                c.iter()
                    .map(|(name, mnt)| (name.clone(), mnt.join(&path)))
                    .collect()
            })
            .unwrap_or_default();
        let (unified, unified_controllers) = match layout.unified() {
            Some(root) => {
                let list = files::read_opt(root, "cgroup.controllers")?.unwrap_or_default();
                let set = list.split_whitespace().map(str::to_owned).collect();
                (Some(root.join(&path)), set)
            }
            None => (None, BTreeSet::new()),
        };
        Ok(Cgroup {
            layout,
            path,
            v1,
            unified,
            unified_controllers,
            freeze_timeout: Duration::from_secs(5),
        })
    }

    /// Changes how long [`Cgroup::freeze`] waits for every task to stop.
    pub fn with_freeze_timeout(mut self, timeout: Duration) -> Cgroup {
        self.freeze_timeout = timeout;
        self
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The cgroup path relative to each hierarchy root.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This cgroup's directory in the v1 hierarchy carrying `controller`.
    pub fn v1_dir(&self, controller: &str) -> Option<&Path> {
        self.v1.get(controller).map(PathBuf::as_path)
    }

    /// This cgroup's directory in the unified hierarchy.
    pub fn unified_dir(&self) -> Option<&Path> {
        self.unified.as_deref()
    }

    /// Every directory of this cgroup, once each (co-mounted v1 controllers
    /// share one).
    pub fn dirs(&self) -> Vec<&Path> {
        let mut seen = BTreeSet::new();
        self.v1
            .values()
            .map(PathBuf::as_path)
            .chain(self.unified.as_deref())
            .filter(|d| seen.insert(*d))
            .collect()
    }

    /// Whether the unified hierarchy offers `controller`.
    fn v2_has(&self, controller: &str) -> bool {
        self.unified.is_some() && self.unified_controllers.contains(controller)
    }

    /// Creates the cgroup in every hierarchy (like `mkdir -p`).
    ///
    /// In a v1 cpuset hierarchy every level created gets `cpuset.cpus` and
    /// `cpuset.mems` copied from its parent: a new cpuset starts empty and
    /// the kernel refuses to attach tasks to an empty one
    /// (Documentation/admin-guide/cgroup-v1/cpusets.rst). In the unified
    /// hierarchy the controllers this crate manages there are enabled in the
    /// `cgroup.subtree_control` of every ancestor, because a controller is
    /// only usable in a cgroup whose parent delegates it.
    pub fn create(&self) -> Result<()> {
        if let Some(controllers) = self.layout.v1_controllers() {
            let cpuset_mount = controllers.get("cpuset");
            let mut mounts: BTreeSet<&Path> = controllers.values().map(PathBuf::as_path).collect();
            if let Some(m) = cpuset_mount {
                create_cpuset(m, &self.path)?;
                mounts.remove(m.as_path());
            }
            for mount in mounts {
                mkdir_all(&mount.join(&self.path))?;
            }
        }
        if let Some(root) = self.layout.unified() {
            self.create_unified(root)?;
        }
        Ok(())
    }

    fn create_unified(&self, root: &Path) -> Result<()> {
        let mut dir = root.to_owned();
        for comp in self.path.iter() {
            self.enable_controllers(&dir)?;
            dir.push(comp);
            mkdir(&dir)?;
        }
        Ok(())
    }

    /// Enables in `dir`'s children every controller the unified root offers.
    fn enable_controllers(&self, dir: &Path) -> Result<()> {
        let available = files::read_opt(dir, "cgroup.controllers")?.unwrap_or_default();
        let enabled = files::read_opt(dir, "cgroup.subtree_control")?.unwrap_or_default();
        let enabled: BTreeSet<&str> = enabled.split_whitespace().collect();
        let missing: Vec<String> = available
            .split_whitespace()
            .filter(|c| self.unified_controllers.contains(*c) && !enabled.contains(c))
            .map(|c| format!("+{c}"))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        files::write(dir, "cgroup.subtree_control", &missing.join(" "))
    }

    /// Moves process `pid` (all its threads) into the cgroup in every hierarchy.
    pub fn add_process(&self, pid: i32) -> Result<()> {
        let pid = pid.to_string();
        for dir in self.dirs() {
            files::write(dir, "cgroup.procs", &pid)?;
        }
        Ok(())
    }

    /// Applies OCI `linux.resources` (runtime-spec config-linux.md); see the
    /// crate docs for which hierarchy each resource goes to.
    ///
    /// * Zero means "unset" for shares, quota, period, memory limit, swap,
    ///   pids limit and block IO weight; -1 means "unlimited" for limits.
    /// * v1 memory: limit and memory+swap are written in whichever order
    ///   keeps `memsw >= limit` at every step. Kernel memory limits are
    ///   written only where the kernel still has the file.
    /// * v2: shares become `cpu.weight` (`1 + (shares - 2) * 9999 / 262142`),
    ///   quota/period `cpu.max`, limit `memory.max`, swap `memory.swap.max`
    ///   (swap minus limit, as OCI swap counts memory too), reservation
    ///   `memory.low`, block IO weights `io.bfq.weight` or a rescaled
    ///   `io.weight`, throttles `io.max`. kernel, kernelTCP, swappiness,
    ///   disableOOMKiller and leaf weights have no v2 counterpart and are
    ///   ignored; realtime CPU limits are an [`Error::Unsupported`].
    /// * `devices`: `None` leaves device access alone; `Some(rules)` is the
    ///   complete policy, evaluated last-match-wins over "deny everything"
    ///   (see [`devices`]). An update replaces the previous policy.
    /// * `unified`: written verbatim into the unified directory, after
    ///   everything else; an [`Error::Unsupported`] without a unified
    ///   hierarchy.
    /// * `network`: written only when `net_cls`/`net_prio` are mounted.
    pub fn apply(&self, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
        apply::apply(self, resources)
    }

    /// The settings of `resources` that [`Cgroup::apply`] leaves out on
    /// this host (today only `network` without `net_cls`/`net_prio`), so
    /// the caller can warn about them.
    pub fn skipped(&self, resources: &oci_spec::runtime::LinuxResources) -> Vec<&'static str> {
        apply::skipped(self, resources)
    }

    /// The directory whose freezer this cgroup uses, and whether it is v1.
    fn freezer(&self) -> Result<(&Path, bool)> {
        if let Some(d) = self.v1_dir("freezer") {
            return Ok((d, true));
        }
        // cgroup.freeze exists in every non-root cgroup2 directory, no
        // controller needed (cgroup-v2.rst, "Core Interface Files").
        match &self.unified {
            Some(d) => Ok((d, false)),
            None => Err(Error::ControllerMissing {
                controller: "freezer",
                resource: "freeze",
            }),
        }
    }

    /// Freezes every task and waits until the kernel reports them all frozen.
    ///
    /// v1 `freezer.state` reads `FREEZING` while tasks are still on their way
    /// (cgroup-v1/freezer-subsystem.rst), so `FROZEN` is written again until it
    /// sticks; v2 reports completion as `frozen 1` in `cgroup.events`. If the
    /// cgroup does not freeze within the timeout it is thawed again and
    /// [`Error::FreezeTimeout`] is returned.
    pub fn freeze(&self) -> Result<()> {
        let (dir, v1) = self.freezer()?;
        let deadline = Instant::now() + self.freeze_timeout;
        let mut pause = Duration::from_millis(1);
        loop {
            if v1 {
                files::write(dir, "freezer.state", "FROZEN")?;
            } else {
                files::write(dir, "cgroup.freeze", "1")?;
            }
            if self.freezer_state()? == FreezerState::Frozen {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.thaw()?;
                return Err(Error::FreezeTimeout {
                    path: dir.to_owned(),
                    state: "FROZEN",
                });
            }
            thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Lets the tasks run again.
    pub fn thaw(&self) -> Result<()> {
        let (dir, v1) = self.freezer()?;
        if v1 {
            files::write(dir, "freezer.state", "THAWED")
        } else {
            files::write(dir, "cgroup.freeze", "0")
        }
    }

    pub fn freezer_state(&self) -> Result<FreezerState> {
        let (dir, v1) = self.freezer()?;
        if v1 {
            let state = files::read(dir, "freezer.state")?;
            return match state.trim() {
                "THAWED" => Ok(FreezerState::Thawed),
                "FREEZING" => Ok(FreezerState::Freezing),
                "FROZEN" => Ok(FreezerState::Frozen),
                other => Err(Error::Parse {
                    path: dir.join("freezer.state"),
                    reason: format!("unknown state {other:?}"),
                }),
            };
        }
        let wanted = files::read(dir, "cgroup.freeze")?;
        if wanted.trim() != "1" {
            return Ok(FreezerState::Thawed);
        }
        match files::read_keyed(dir, "cgroup.events", "frozen")? {
            Some(1) => Ok(FreezerState::Frozen),
            _ => Ok(FreezerState::Freezing),
        }
    }

    /// Every process in the cgroup and its descendants, sorted.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let dir = match &self.layout {
            Layout::V2 { .. } => self.unified.as_deref(),
            _ => PIDS_SOURCES
                .iter()
                .find_map(|c| self.v1_dir(c))
                .or_else(|| self.v1.values().next().map(PathBuf::as_path))
                .or(self.unified.as_deref()),
        };
        let mut pids = Vec::new();
        if let Some(dir) = dir {
            collect_pids(dir, &mut pids)?;
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// Resource usage, shaped like the "data" object of runc's
    /// `events --stats`. Counters a hierarchy lacks are zero.
    pub fn stats(&self) -> Result<Stats> {
        stats::collect(self)
    }

    /// How many times the OOM killer killed a task of this cgroup: v1
    /// `memory.oom_control` / v2 `memory.events`, key `oom_kill`.
    pub fn oom_kill_count(&self) -> Result<u64> {
        let (dir, file) = if let Some(d) = self.v1_dir("memory") {
            (d, "memory.oom_control")
        } else if let (true, Some(d)) = (self.v2_has("memory"), self.unified.as_deref()) {
            (d, "memory.events")
        } else {
            return Err(Error::ControllerMissing {
                controller: "memory",
                resource: "oom_kill_count",
            });
        };
        // Kernels before 4.13 lack the key; no kills were counted then.
        Ok(files::read_keyed(dir, file, "oom_kill")?.unwrap_or(0))
    }

    /// Removes the cgroup (and any sub-cgroups the container made) from
    /// every hierarchy. A directory already gone is fine. `rmdir` fails with
    /// `EBUSY` while exiting tasks are still being reaped, so that is retried
    /// for a few seconds.
    pub fn destroy(&self) -> Result<()> {
        for dir in self.dirs() {
            remove_tree(dir)?;
        }
        Ok(())
    }
}

fn mkdir(dir: &Path) -> Result<()> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(Error::Create {
            path: dir.to_owned(),
            source,
        }),
    }
}

fn mkdir_all(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|source| Error::Create {
        path: dir.to_owned(),
        source,
    })
}

fn create_cpuset(mount: &Path, rel: &Path) -> Result<()> {
    let mut parent = mount.to_owned();
    for comp in rel.iter() {
        let dir = parent.join(comp);
        mkdir(&dir)?;
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let current = files::read_opt(&dir, file)?.unwrap_or_default();
            if current.trim().is_empty() {
                let from_parent = files::read(&parent, file)?;
                files::write(&dir, file, from_parent.trim())?;
            }
        }
        parent = dir;
    }
    Ok(())
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    let procs = match files::read_opt(dir, "cgroup.procs")? {
        Some(p) => p,
        // Gone meanwhile (a sub-cgroup removed while walking).
        None => return Ok(()),
    };
    for line in procs.lines().filter(|l| !l.trim().is_empty()) {
        out.push(line.trim().parse().map_err(|_| Error::Parse {
            path: dir.join("cgroup.procs"),
            reason: format!("bad pid {line:?}"),
        })?);
    }
    for child in subdirs(dir)? {
        collect_pids(&child, out)?;
    }
    Ok(())
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Read {
                path: dir.to_owned(),
                source,
            })
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::Read {
            path: dir.to_owned(),
            source,
        })?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.push(entry.path());
        }
    }
    Ok(out)
}

/// Removes a cgroup directory bottom-up. cgroupfs directories are removed
/// with `rmdir` even though they list control files.
fn remove_tree(dir: &Path) -> Result<()> {
    for child in subdirs(dir)? {
        remove_tree(&child)?;
    }
    let deadline = Instant::now() + DESTROY_TIMEOUT;
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(10));
            }
            Err(source) => {
                return Err(Error::Remove {
                    path: dir.to_owned(),
                    source,
                })
            }
        }
    }
}

#[cfg(test)]
mod fake;
#[cfg(test)]
mod root_tests;
#[cfg(test)]
mod tests;
