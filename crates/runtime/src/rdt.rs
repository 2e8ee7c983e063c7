//! Intel RDT (`linux.intelRdt`, config-linux.md "IntelRdt") through the
//! resctrl filesystem (Documentation/arch/x86/resctrl.rst): a control
//! group is a directory of the resctrl mount whose `schemata` file holds
//! the cache and memory bandwidth allocations and whose `tasks` file lists
//! its processes; children inherit the group of their parent, so the
//! container's first process is enough.
//!
//! The resctrl root is a parameter, so the tests drive this module against
//! a temporary directory; [`mount_point`] finds the host's.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxIntelRdt;

use crate::error::{Error, Result};

/// Where resctrl is mounted, from /proc/self/mountinfo.
pub fn mount_point() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        (right.split(' ').next() == Some("resctrl"))
            .then(|| left.split(' ').nth(4).map(PathBuf::from))
            .flatten()
    })
}

/// What to do for a container: the group to join, whether to create it,
/// the schemata lines to write and the monitoring group to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub group: PathBuf,
    /// `closID` was not given: the group is the container's own, created
    /// now and removed with the container.
    pub own_group: bool,
    /// `closID` was given: the group may exist already, and then its
    /// schemata must match ours.
    pub shared: bool,
    pub schemata: Vec<String>,
    /// `mon_groups/<id>` of the group, for monitoring.
    pub monitor: Option<PathBuf>,
}

/// Checks `linux.intelRdt` and works out the plan under `root`.
pub fn plan(
    root: Option<&Path>,
    id: &str,
    rdt: &LinuxIntelRdt,
    extra_schemata: &[String],
    monitoring: bool,
) -> Result<Plan> {
    let root = root.ok_or_else(|| {
        Error::Invalid(
            "linux.intelRdt is set, but no resctrl filesystem is mounted: the host has no \
             Intel RDT (or AMD QoS) support, or resctrl is not mounted at /sys/fs/resctrl"
                .into(),
        )
    })?;
    let mut schemata = Vec::new();
    if let Some(l3) = rdt.l3_cache_schema() {
        schemata.push(l3.clone());
    }
    if let Some(mb) = rdt.mem_bw_schema() {
        if !mb.starts_with("MB:") {
            return Err(Error::Invalid(format!(
                "linux.intelRdt.memBwSchema {mb:?} must start with \"MB:\""
            )));
        }
        schemata.push(mb.clone());
    }
    schemata.extend(extra_schemata.iter().cloned());
    if let Some(bad) = schemata.iter().find(|l| l.contains('\n')) {
        return Err(Error::Invalid(format!(
            "linux.intelRdt schema {bad:?} holds a newline"
        )));
    }
    let (group, own_group, shared) = match rdt.clos_id().as_deref() {
        Some("/") => (root.to_path_buf(), false, true),
        Some(clos) => {
            let reserved = ["info", "mon_groups", "mon_data", ".", ".."];
            if clos.is_empty() || clos.contains('/') || reserved.contains(&clos) {
                return Err(Error::Invalid(format!(
                    "linux.intelRdt.closID {clos:?} is not a resctrl group name"
                )));
            }
            (root.join(clos), false, true)
        }
        None => (root.join(id), true, false),
    };
    let monitor =
        (monitoring || rdt.enable_cmt() == &Some(true) || rdt.enable_mbm() == &Some(true))
            .then(|| group.join("mon_groups").join(id));
    Ok(Plan {
        group,
        own_group,
        shared,
        schemata,
        monitor,
    })
}

impl Plan {
    /// Sets the group up and puts `pid` in it. Returns the directories this
    /// container made, to remove when it is deleted (innermost first).
    pub fn apply(&self, pid: i32) -> Result<Vec<PathBuf>> {
        let mut made = Vec::new();
        let result = self.apply_inner(pid, &mut made);
        if result.is_err() {
            remove(&made);
            made.clear();
        }
        result.map(|_| made)
    }

    fn apply_inner(&self, pid: i32, made: &mut Vec<PathBuf>) -> Result<()> {
        let exists = self.group.is_dir();
        if self.own_group {
            mkdir(&self.group)?;
            made.push(self.group.clone());
            write_schemata(&self.group, &self.schemata)?;
        } else if self.schemata.is_empty() {
            if !exists {
                return Err(Error::Invalid(format!(
                    "linux.intelRdt.closID: resctrl group {} does not exist",
                    self.group.display()
                )));
            }
        } else if exists {
            let current = std::fs::read_to_string(self.group.join("schemata"))
                .map_err(|e| io_error(format!("reading {}/schemata", self.group.display()), e))?;
            if !schemata_match(&current, &self.schemata) {
                return Err(Error::Invalid(format!(
                    "linux.intelRdt: resctrl group {} exists with other schemata ({:?}) than {:?}",
                    self.group.display(),
                    current.trim(),
                    self.schemata
                )));
            }
        } else {
            mkdir(&self.group)?;
            made.push(self.group.clone());
            write_schemata(&self.group, &self.schemata)?;
        }
        let tasks_dir = match &self.monitor {
            Some(mon) => {
                // mon_groups is there in every group of a resctrl that
                // can monitor; create_dir_all only makes the leaf then.
                std::fs::create_dir_all(mon).map_err(|e| {
                    io_error(
                        format!("creating resctrl monitoring group {}", mon.display()),
                        e,
                    )
                })?;
                made.insert(0, mon.clone());
                mon.clone()
            }
            None => self.group.clone(),
        };
        let tasks = tasks_dir.join("tasks");
        // resctrl has the file already; create(true) opens it as it is.
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&tasks)
            .and_then(|mut f| f.write_all(pid.to_string().as_bytes()))
            .map_err(|e| io_error(format!("adding pid {pid} to {}", tasks.display()), e))
    }
}

/// Removes groups a container made (best effort: a group still holding
/// tasks stays, and the kernel moves them to the parent on rmdir anyway).
pub fn remove(dirs: &[PathBuf]) {
    for d in dirs {
        if let Err(e) = std::fs::remove_dir(d) {
            crate::log::warn(&format!("removing resctrl group {}: {e}", d.display()));
        }
    }
}

fn mkdir(dir: &Path) -> Result<()> {
    std::fs::create_dir(dir)
        .map_err(|e| io_error(format!("creating resctrl group {}", dir.display()), e))
}

/// Writes the lines one at a time, so the kernel's complaint (kept in
/// info/last_cmd_status) names the line it refused.
fn write_schemata(group: &Path, lines: &[String]) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let path = group.join("schemata");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io_error(format!("opening {}", path.display()), e))?;
    for line in lines {
        if let Err(e) = f.write_all(format!("{line}\n").as_bytes()) {
            let status = group
                .ancestors()
                .map(|a| a.join("info/last_cmd_status"))
                .find_map(|p| std::fs::read_to_string(p).ok())
                .map(|s| format!(" ({})", s.trim()))
                .unwrap_or_default();
            return Err(io_error(
                format!("writing {line:?} to {}{status}", path.display()),
                e,
            ));
        }
    }
    Ok(())
}

fn io_error(context: String, source: std::io::Error) -> Error {
    Error::Io { context, source }
}

/// Whether every wanted line agrees with the group's schemata file, domain
/// by domain. The kernel prints every domain with its own formatting
/// (leading spaces, zero-padded bitmasks), so values compare as numbers:
/// cache bitmasks in hex, bandwidth in decimal.
pub fn schemata_match(current: &str, wanted: &[String]) -> bool {
    let parse = |line: &str| -> Option<(String, BTreeMap<String, String>)> {
        let (res, domains) = line.trim().split_once(':')?;
        let res = res.trim().to_string();
        let map = domains
            .split(';')
            .filter(|d| !d.trim().is_empty())
            .map(|d| {
                let (id, v) = d.split_once('=')?;
                Some((id.trim().to_string(), v.trim().to_string()))
            })
            .collect::<Option<BTreeMap<_, _>>>()?;
        Some((res, map))
    };
    let have: BTreeMap<String, BTreeMap<String, String>> =
        current.lines().filter_map(parse).collect();
    wanted.iter().all(|line| {
        let Some((res, domains)) = parse(line) else {
            return false;
        };
        let radix = if res.starts_with("MB") { 10 } else { 16 };
        let Some(existing) = have.get(&res) else {
            return false;
        };
        domains.iter().all(|(id, v)| {
            existing.get(id).is_some_and(|e| {
                match (u64::from_str_radix(e, radix), u64::from_str_radix(v, radix)) {
                    (Ok(a), Ok(b)) => a == b,
                    _ => e == v,
                }
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rdt(json: serde_json::Value) -> LinuxIntelRdt {
        serde_json::from_value(json).expect("intelRdt JSON")
    }

    #[test]
    fn without_resctrl_intel_rdt_is_refused() {
        let err = plan(
            None,
            "c1",
            &rdt(serde_json::json!({"closID": "/"})),
            &[],
            false,
        )
        .expect_err("no resctrl");
        assert!(
            err.to_string().contains("no resctrl filesystem is mounted"),
            "{err}"
        );
    }

    #[test]
    fn an_own_group_is_made_filled_and_listed_for_removal() {
        let root = tempfile::tempdir().expect("tempdir");
        let p = plan(
            Some(root.path()),
            "c1",
            &rdt(serde_json::json!({"l3CacheSchema": "L3:0=f", "memBwSchema": "MB:0=50"})),
            &["L2:0=3".to_string()],
            true,
        )
        .expect("plan");
        assert!(p.own_group);
        let made = p.apply(7).expect("apply");
        assert_eq!(
            std::fs::read_to_string(root.path().join("c1/mon_groups/c1/tasks")).expect("tasks"),
            "7",
            "the pid goes to the monitoring group"
        );
        let schemata = std::fs::read_to_string(p.group.join("schemata")).expect("read");
        assert_eq!(
            schemata, "L3:0=f\nMB:0=50\nL2:0=3\n",
            "l3, then MB, then schemata"
        );
        assert_eq!(made[0], root.path().join("c1/mon_groups/c1"));
        assert_eq!(made[1], root.path().join("c1"));
    }

    #[test]
    fn a_shared_group_must_exist_or_match() {
        let root = tempfile::tempdir().expect("tempdir");
        let group = root.path().join("gold");
        // Joining a group that is not there, with no schemata to make it.
        let p = plan(
            Some(root.path()),
            "c1",
            &rdt(serde_json::json!({"closID": "gold"})),
            &[],
            false,
        )
        .expect("plan");
        let err = p.apply(1).expect_err("missing group");
        assert!(err.to_string().contains("does not exist"), "{err}");
        // An existing group with a different allocation.
        std::fs::create_dir(&group).expect("mkdir");
        std::fs::write(
            group.join("schemata"),
            "    L3:0=000ff;1=000ff\n      MB:0= 100;1= 100\n",
        )
        .expect("schemata");
        std::fs::write(group.join("tasks"), "").expect("tasks");
        let p = plan(
            Some(root.path()),
            "c1",
            &rdt(serde_json::json!({"closID": "gold", "l3CacheSchema": "L3:0=f0"})),
            &[],
            false,
        )
        .expect("plan");
        let err = p.apply(1).expect_err("mismatch");
        assert!(err.to_string().contains("other schemata"), "{err}");
        // The same allocation, spelled differently, joins it.
        let p = plan(
            Some(root.path()),
            "c1",
            &rdt(serde_json::json!({"closID": "gold", "l3CacheSchema": "L3:0=ff", "memBwSchema": "MB:1=100"})),
            &[],
            false,
        )
        .expect("plan");
        assert_eq!(p.apply(4242).expect("joins"), Vec::<PathBuf>::new());
        assert_eq!(
            std::fs::read_to_string(group.join("tasks")).expect("tasks"),
            "4242"
        );
        // "/" is the default group, the root itself.
        let p = plan(
            Some(root.path()),
            "c1",
            &rdt(serde_json::json!({"closID": "/"})),
            &[],
            false,
        )
        .expect("plan");
        assert_eq!(p.group, root.path());
    }

    #[test]
    fn bad_values_are_refused() {
        let root = tempfile::tempdir().expect("tempdir");
        for (bad, why) in [
            (serde_json::json!({"closID": "a/b"}), "not a resctrl group"),
            (serde_json::json!({"closID": "info"}), "not a resctrl group"),
            (
                serde_json::json!({"memBwSchema": "L3:0=f"}),
                "must start with",
            ),
            (
                serde_json::json!({"l3CacheSchema": "L3:0=f\nMB:0=1"}),
                "newline",
            ),
        ] {
            let err =
                plan(Some(root.path()), "c1", &rdt(bad.clone()), &[], false).expect_err("refused");
            assert!(err.to_string().contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn schemata_compare_as_numbers() {
        let current = "    L3:0=000ff;1=00f00\n      MB:0=  50;1= 100\n";
        assert!(schemata_match(current, &["L3:0=ff".into()]));
        assert!(schemata_match(
            current,
            &["L3:1=f00".into(), "MB:0=50".into()]
        ));
        assert!(!schemata_match(current, &["L3:0=f".into()]));
        assert!(!schemata_match(current, &["L2:0=f".into()]));
        assert!(!schemata_match(current, &["garbage".into()]));
    }
}
