//! Linux security module labels: `process.apparmorProfile`,
//! `process.selinuxLabel` and `linux.mountLabel` (config.md "Linux
//! Process", config-linux.md "Mount Label").
//!
//! A label the host cannot apply is refused with an error naming the
//! missing module: running the container unconfined instead would quietly
//! drop the protection its config asked for. The one exception is the
//! AppArmor profile `unconfined`, which a host without AppArmor already
//! gives every process.
//!
//! Labels are applied by the process itself just before execve, through
//! /proc/thread-self/attr: `exec <profile>` to `apparmor/exec` (the
//! AppArmor change_onexec interface) and the context to `exec` for
//! SELinux, so the transition happens at exec (proc(5), "attr").
//! A mount label becomes the `context=` mount option of the container's
//! filesystem mounts (selinux(8) "context=").

use std::path::{Path, PathBuf};

/// Which modules the host runs, read from the places their user-space
/// tools look. Roots are parameters so tests can point at fake trees.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Host {
    pub apparmor: bool,
    pub selinux: bool,
}

impl Host {
    /// Detects the modules of this host.
    pub fn detect() -> Host {
        Host::detect_in(Path::new("/sys"), Path::new("/proc/self/mountinfo"))
    }

    /// AppArmor is on when its module parameter says so and securityfs
    /// shows its directory; SELinux when selinuxfs is mounted (the
    /// kernel only registers it for an enabled SELinux).
    pub fn detect_in(sys: &Path, mountinfo: &Path) -> Host {
        let apparmor = std::fs::read_to_string(sys.join("module/apparmor/parameters/enabled"))
            .is_ok_and(|s| s.trim() == "Y")
            && sys.join("kernel/security/apparmor").is_dir();
        let selinux = std::fs::read_to_string(mountinfo).is_ok_and(|info| {
            info.lines().any(|l| {
                l.split_once(" - ")
                    .is_some_and(|(_, right)| right.split(' ').next() == Some("selinuxfs"))
            })
        });
        Host { apparmor, selinux }
    }
}

/// A label to write before execve: (file under /proc/thread-self/attr, text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecLabel {
    pub attr: PathBuf,
    pub value: String,
}

/// The labels a process asks for, checked against the host.
pub fn exec_labels(
    host: Host,
    apparmor_profile: Option<&str>,
    selinux_label: Option<&str>,
) -> Result<Vec<ExecLabel>, String> {
    let mut out = Vec::new();
    match apparmor_profile.filter(|p| !p.is_empty()) {
        None => {}
        Some("unconfined") if !host.apparmor => {}
        Some(profile) if !host.apparmor => {
            return Err(format!(
            "process.apparmorProfile {profile:?} is set, but AppArmor is not enabled on this host"
        ))
        }
        Some(profile) => out.push(ExecLabel {
            attr: PathBuf::from("/proc/thread-self/attr/apparmor/exec"),
            value: format!("exec {profile}"),
        }),
    }
    if let Some(label) = selinux_label.filter(|l| !l.is_empty()) {
        if !host.selinux {
            return Err(format!(
                "process.selinuxLabel {label:?} is set, but SELinux is not enabled on this host"
            ));
        }
        out.push(ExecLabel {
            attr: PathBuf::from("/proc/thread-self/attr/exec"),
            value: label.to_string(),
        });
    }
    Ok(out)
}

/// Checks `linux.mountLabel` against the host; returns the label to add to
/// mounts.
pub fn mount_label(host: Host, label: Option<&str>) -> Result<Option<String>, String> {
    match label.filter(|l| !l.is_empty()) {
        None => Ok(None),
        Some(l) if !host.selinux => Err(format!(
            "linux.mountLabel {l:?} is set, but SELinux is not enabled on this host"
        )),
        Some(l) => Ok(Some(l.to_string())),
    }
}

/// Whether a mount of `fstype` takes the `context=` option: filesystems
/// whose files get their label from the mount, not from extended
/// attributes or the kernel (proc, sysfs, cgroup and bind mounts keep theirs).
pub fn takes_context(fstype: &str) -> bool {
    matches!(fstype, "tmpfs" | "devpts" | "mqueue" | "shm")
}

/// Writes the exec labels; runs in the child just before execve. The
/// AppArmor file of kernels before 5.8 is `attr/exec`.
pub fn apply(labels: &[ExecLabel]) -> std::io::Result<()> {
    for l in labels {
        let written = std::fs::write(&l.attr, &l.value);
        match written {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && l.value.starts_with("exec ") => {
                std::fs::write("/proc/thread-self/attr/exec", &l.value)?
            }
            other => other?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_host(apparmor: Option<&str>, selinuxfs: bool) -> (tempfile::TempDir, Host) {
        let dir = tempfile::tempdir().expect("tempdir");
        let sys = dir.path().join("sys");
        if let Some(flag) = apparmor {
            std::fs::create_dir_all(sys.join("module/apparmor/parameters")).expect("mkdir");
            std::fs::write(sys.join("module/apparmor/parameters/enabled"), flag).expect("write");
            std::fs::create_dir_all(sys.join("kernel/security/apparmor")).expect("mkdir");
        }
        let mut info = String::from(
            "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
             23 22 0:21 / /proc rw shared:2 - proc proc rw\n",
        );
        if selinuxfs {
            info.push_str("24 22 0:22 / /sys/fs/selinux rw - selinuxfs selinuxfs rw\n");
        }
        let mountinfo = dir.path().join("mountinfo");
        std::fs::write(&mountinfo, info).expect("write");
        let host = Host::detect_in(&sys, &mountinfo);
        (dir, host)
    }

    #[test]
    fn modules_are_detected_from_sysfs_and_mountinfo() {
        assert_eq!(fake_host(None, false).1, Host::default());
        assert_eq!(fake_host(Some("N\n"), false).1, Host::default());
        assert_eq!(
            fake_host(Some("Y\n"), true).1,
            Host {
                apparmor: true,
                selinux: true
            }
        );
    }

    #[test]
    fn labels_are_refused_where_the_module_is_missing() {
        let none = Host::default();
        let err = exec_labels(none, Some("acme"), None).expect_err("no AppArmor");
        assert!(err.contains("AppArmor is not enabled"), "{err}");
        assert_eq!(exec_labels(none, Some("unconfined"), None), Ok(vec![]));
        assert_eq!(exec_labels(none, Some(""), Some("")), Ok(vec![]));
        let err = exec_labels(none, None, Some("system_u:system_r:container_t:s0"))
            .expect_err("no SELinux");
        assert!(err.contains("SELinux is not enabled"), "{err}");
        let err = mount_label(none, Some("system_u:object_r:container_file_t:s0"))
            .expect_err("no SELinux");
        assert!(err.contains("linux.mountLabel"), "{err}");
        assert_eq!(mount_label(none, None), Ok(None));
    }

    #[test]
    fn labels_name_the_attr_files_where_the_module_runs() {
        let both = Host {
            apparmor: true,
            selinux: true,
        };
        let labels = exec_labels(both, Some("acme"), Some("u:r:t:s0")).expect("labels");
        assert_eq!(labels[0].value, "exec acme");
        assert!(labels[0].attr.ends_with("attr/apparmor/exec"));
        assert_eq!(labels[1].value, "u:r:t:s0");
        assert!(labels[1].attr.ends_with("attr/exec"));
        assert_eq!(mount_label(both, Some("l")), Ok(Some("l".into())));
        assert!(takes_context("tmpfs") && !takes_context("proc") && !takes_context("bind"));
    }
}
