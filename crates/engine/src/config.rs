//! Where the engine keeps things, the paths derived from them, and how it
//! reaches the runtime and a container's cgroup.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use crate::error::{Error, Result};

/// The daemon's directories and binary.
#[derive(Debug, Clone)]
pub struct Config {
    /// Persistent state: images, containers, volumes (`/var/lib/cais`).
    pub root: PathBuf,
    /// Runtime state that a reboot clears (`/run/cais`).
    pub exec_root: PathBuf,
    /// The `cais` binary, for shims and runtime calls.
    pub binary: PathBuf,
    /// A read-only view of the daemon's own binary
    /// (`cais_runtime::sealed::read_only_view`): shims and runtime commands
    /// run from it, sealed from their first instruction (CVE-2019-5736),
    /// with no re-execution of their own. None where it could not be made;
    /// they then re-execute themselves.
    pub sealed: Option<Arc<OwnedFd>>,
    /// Where Container Device Interface specs are read, later ones first
    /// (`/etc/cdi`, `/var/run/cdi`).
    pub cdi_spec_dirs: Vec<PathBuf>,
}

/// The CDI spec directories of a daemon not told otherwise.
pub fn default_cdi_spec_dirs() -> Vec<PathBuf> {
    vec!["/etc/cdi".into(), "/var/run/cdi".into()]
}

impl Config {
    /// Container records and state directories (`<root>/engine/containers`).
    pub fn containers_dir(&self) -> PathBuf {
        self.root.join("engine/containers")
    }

    /// One container's record, bundle, logs and shim sockets.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.containers_dir().join(id)
    }

    /// Network records (`<root>/engine/networks`).
    pub fn networks_dir(&self) -> PathBuf {
        self.root.join("engine/networks")
    }

    /// Directories being deleted in the background (`<root>/engine/trash`).
    pub fn trash_dir(&self) -> PathBuf {
        self.root.join("engine/trash")
    }

    /// Build contexts and scratch space (`<root>/engine/build`).
    pub fn build_dir(&self) -> PathBuf {
        self.root.join("engine/build")
    }

    /// The runtime's state (`<exec_root>/runtime`).
    pub fn runtime_root(&self) -> PathBuf {
        self.exec_root.join("runtime")
    }

    /// Persistent network namespaces of containers (`<exec_root>/netns`).
    pub fn netns_dir(&self) -> PathBuf {
        self.exec_root.join("netns")
    }

    /// The program to run for shims and runtime commands: the sealed view
    /// as `/proc/self/fd/N`, which names it in the child between fork and
    /// exec (the descriptor is close-on-exec; execve opens the path first),
    /// else the binary.
    pub fn exe(&self) -> PathBuf {
        match &self.sealed {
            Some(fd) => PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
            None => self.binary.clone(),
        }
    }

    /// `cais runtime --root <runtime_root>`, ready for a subcommand.
    pub fn runtime_command(&self) -> Command {
        let mut c = Command::new(self.exe());
        c.args(["runtime", "--root"]).arg(self.runtime_root());
        c
    }

    /// The runtime library over the runtime's state, for what the daemon
    /// does itself: signal, freeze, thaw and delete containers. None of it
    /// forks or enters a container; creating them is the shim's.
    pub(crate) fn runtime(&self) -> cais_runtime::Runtime {
        cais_runtime::Runtime::new(self.runtime_root())
    }

    /// The cgroup of container `id` at `path` (`/cais/<id>`, or under its
    /// `CgroupParent`), where its shim puts it.
    pub(crate) fn cgroup(&self, id: &str, path: &str) -> Result<cais_cgroups::Cgroup> {
        let failed = |source| Error::Cgroups {
            action: "finding",
            id: id.to_string(),
            source,
        };
        let layout = cais_cgroups::Layout::detect().map_err(failed)?;
        cais_cgroups::Cgroup::new(layout, path).map_err(failed)
    }

    /// Gives the cgroups above `path` the real-time CPU time a container
    /// there asks for (`--cpu-rt-runtime`): a v1 cgroup may hand its
    /// children no more than it has, and new ones have none
    /// (sched-rt-group.rst, "2.3 Basis for grouping tasks"). Each ancestor
    /// from the top gets what its children already hold plus `runtime`,
    /// at most what its own parent has; the kernel refuses the rest.
    pub(crate) fn grant_realtime(&self, path: &str, runtime: i64) -> Result<()> {
        let failed = |source| Error::Cgroups {
            action: "granting real-time CPU time to",
            id: path.to_string(),
            source,
        };
        let layout = cais_cgroups::Layout::detect().map_err(failed)?;
        let Some(root) = layout.v1_controllers().and_then(|c| c.get("cpu")) else {
            return Ok(());
        };
        let read = |dir: &std::path::Path| -> i64 {
            std::fs::read_to_string(dir.join("cpu.rt_runtime_us"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0)
        };
        let parts: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|p| !p.is_empty())
            .collect();
        let mut dir = root.clone();
        let mut available = read(&dir);
        // Every ancestor, not the container's own cgroup.
        for part in &parts[..parts.len().saturating_sub(1)] {
            dir = dir.join(part);
            std::fs::create_dir_all(&dir).map_err(Error::io("creating the cgroup", &dir))?;
            let children: i64 = std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| read(&e.path()))
                .sum();
            let want = (children + runtime).min(available);
            if read(&dir) < want {
                let file = dir.join("cpu.rt_runtime_us");
                std::fs::write(&file, want.to_string()).map_err(Error::io("writing", &file))?;
            }
            available = read(&dir);
        }
        Ok(())
    }

    /// Runs `cais runtime ARGS` to its end; its stdout, or what it said on
    /// stderr as the error.
    pub(crate) fn run_runtime(&self, args: &[&str]) -> Result<String> {
        let out = self
            .runtime_command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(Error::spawn(&self.binary))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(Error::Failed {
                program: "cais runtime",
                message: String::from_utf8_lossy(&out.stderr)
                    .trim()
                    .trim_start_matches("cais: ")
                    .to_string(),
            })
        }
    }
}
