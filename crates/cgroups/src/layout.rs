//! Which cgroup hierarchies are mounted where.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// v1 controllers a hierarchy can carry. Mount options that are not in this
/// list (`rw`, `clone_children`, `xattr`, `release_agent=...`) are ignored.
/// Named hierarchies (`name=systemd`) are kept under their full option name.
const V1_CONTROLLERS: &[&str] = &[
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "debug",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
];

/// The cgroup hierarchies of a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Only cgroup v1 hierarchies. `controllers` maps a controller name
    /// (`memory`, `cpu`, `name=systemd`, ...) to its mount point; co-mounted
    /// controllers (`cpu,cpuacct`) map to the same mount point.
    V1 {
        controllers: BTreeMap<String, PathBuf>,
    },
    /// A single cgroup2 hierarchy mounted at `root`.
    V2 { root: PathBuf },
    /// v1 hierarchies plus a cgroup2 hierarchy at `unified`. Controllers
    /// bound to a v1 hierarchy cannot be enabled on the v2 one, so each
    /// resource goes to whichever of the two actually carries it.
    Hybrid {
        controllers: BTreeMap<String, PathBuf>,
        unified: PathBuf,
    },
}

impl Layout {
    /// Detects the layout from `/proc/self/mountinfo`.
    pub fn detect() -> Result<Layout> {
        Self::from_mountinfo_file(Path::new("/proc/self/mountinfo"))
    }

    /// Detects the layout from a mountinfo file (see proc(5)).
    pub fn from_mountinfo_file(path: &Path) -> Result<Layout> {
        let text = fs::read_to_string(path).map_err(|source| Error::MountTable {
            path: path.to_owned(),
            source,
        })?;
        Self::from_mountinfo(&text)
    }

    /// Builds the layout from the text of a mountinfo file.
    ///
    /// The first mount of each v1 controller wins, as does the first cgroup2
    /// mount; later ones are bind mounts of the same hierarchy.
    pub fn from_mountinfo(text: &str) -> Result<Layout> {
        let mut controllers = BTreeMap::new();
        let mut unified = None;
        for (idx, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let mount = parse_line(line).map_err(|reason| Error::MountInfo {
                line: idx + 1,
                reason,
            })?;
            match mount.fstype {
                "cgroup2" if unified.is_none() => unified = Some(mount.mountpoint),
                "cgroup" => {
                    for opt in mount.super_options.split(',') {
                        let is_controller =
                            V1_CONTROLLERS.contains(&opt) || opt.starts_with("name=");
                        if is_controller && !controllers.contains_key(opt) {
                            controllers.insert(opt.to_owned(), mount.mountpoint.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        match (controllers.is_empty(), unified) {
            (true, None) => Err(Error::NoCgroups),
            (true, Some(root)) => Ok(Layout::V2 { root }),
            (false, None) => Ok(Layout::V1 { controllers }),
            (false, Some(unified)) => Ok(Layout::Hybrid {
                controllers,
                unified,
            }),
        }
    }

    /// v1 controller mount points (empty for pure v2).
    pub fn v1_controllers(&self) -> Option<&BTreeMap<String, PathBuf>> {
        match self {
            Layout::V1 { controllers } | Layout::Hybrid { controllers, .. } => Some(controllers),
            Layout::V2 { .. } => None,
        }
    }

    /// Mount point of the cgroup2 hierarchy, if any.
    pub fn unified(&self) -> Option<&Path> {
        match self {
            Layout::V2 { root } => Some(root),
            Layout::Hybrid { unified, .. } => Some(unified),
            Layout::V1 { .. } => None,
        }
    }
}

struct Mount<'a> {
    mountpoint: PathBuf,
    fstype: &'a str,
    super_options: &'a str,
}

/// Splits one mountinfo line. Format (proc(5)):
/// `id parent major:minor root mountpoint options [optional...] - fstype source superoptions`
fn parse_line(line: &str) -> std::result::Result<Mount<'_>, String> {
    let fields: Vec<&str> = line.split(' ').collect();
    if fields.len() < 7 {
        return Err("too few fields".into());
    }
    // Optional fields are variable in number; the separator is the first
    // lone "-" after the six fixed fields.
    let sep = fields[6..]
        .iter()
        .position(|f| *f == "-")
        .map(|p| p + 6)
        .ok_or_else(|| "missing \" - \" separator".to_string())?;
    if fields.len() < sep + 3 {
        return Err("too few fields after separator".into());
    }
    Ok(Mount {
        mountpoint: PathBuf::from(unescape(fields[4])),
        fstype: fields[sep + 1],
        super_options: fields[sep + 3],
    })
}

/// Undoes the octal escaping of space, tab, newline and backslash that the
/// kernel applies to paths in mountinfo (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                if let Ok(byte) = u8::try_from(v) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime shared:9 - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime shared:10 - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime shared:11 - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime shared:12 - cgroup cgroup rw,cpuset,clone_children
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";

    const PURE_V2: &str = "\
25 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw
26 25 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
27 26 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:3 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
28 26 0:7 / /sys/kernel/debug rw,nosuid,nodev,noexec,relatime shared:4 - debugfs debugfs rw
";

    const V1_COMOUNTED: &str = "\
24 18 0:20 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 24 0:22 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,name=systemd
28 24 0:24 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,cpu,cpuacct
29 24 0:25 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,net_cls,net_prio
30 24 0:26 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
31 24 0:27 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpuset
99 24 0:26 / /mnt/other\\040memory rw,relatime - cgroup cgroup rw,memory
";

    #[test]
    fn hybrid_with_separate_cpu_and_cpuacct() {
        let layout = Layout::from_mountinfo(HYBRID).expect("parse");
        let Layout::Hybrid {
            controllers,
            unified,
        } = &layout
        else {
            panic!("expected hybrid, got {layout:?}");
        };
        assert_eq!(unified, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(controllers["cpu"], Path::new("/sys/fs/cgroup/cpu"));
        assert_eq!(controllers["cpuacct"], Path::new("/sys/fs/cgroup/cpuacct"));
        assert_eq!(
            controllers["name=systemd"],
            Path::new("/sys/fs/cgroup/systemd")
        );
        let names: Vec<&str> = controllers.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "blkio",
                "cpu",
                "cpuacct",
                "cpuset",
                "devices",
                "freezer",
                "memory",
                "name=systemd",
                "pids"
            ]
        );
    }

    #[test]
    fn pure_v2() {
        assert_eq!(
            Layout::from_mountinfo(PURE_V2).expect("parse"),
            Layout::V2 {
                root: PathBuf::from("/sys/fs/cgroup")
            }
        );
    }

    #[test]
    fn v1_comounted_first_mount_wins_and_escapes_decoded() {
        let layout = Layout::from_mountinfo(V1_COMOUNTED).expect("parse");
        let Layout::V1 { controllers } = &layout else {
            panic!("expected v1, got {layout:?}");
        };
        let cpu = Path::new("/sys/fs/cgroup/cpu,cpuacct");
        assert_eq!(controllers["cpu"], cpu);
        assert_eq!(controllers["cpuacct"], cpu);
        assert_eq!(
            controllers["net_prio"],
            Path::new("/sys/fs/cgroup/net_cls,net_prio")
        );
        assert_eq!(controllers["memory"], Path::new("/sys/fs/cgroup/memory"));
        assert!(!controllers.contains_key("xattr"));
        assert!(!controllers.contains_key("rw"));
        assert_eq!(unescape("/mnt/other\\040memory"), "/mnt/other memory");
    }

    #[test]
    fn no_cgroups_and_malformed() {
        assert!(matches!(
            Layout::from_mountinfo("25 1 259:2 / / rw - ext4 /dev/sda rw\n"),
            Err(Error::NoCgroups)
        ));
        assert!(matches!(
            Layout::from_mountinfo("25 1 259:2 / / rw shared:1 ext4 /dev/sda rw\n"),
            Err(Error::MountInfo { line: 1, .. })
        ));
        assert!(matches!(
            Layout::from_mountinfo("garbage\n"),
            Err(Error::MountInfo { line: 1, .. })
        ));
    }

    #[test]
    fn detect_on_this_host() {
        // Every Linux host running these tests has some cgroup mounted.
        let layout = Layout::detect().expect("detect");
        assert!(layout.v1_controllers().is_some() || layout.unified().is_some());
    }
}
