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

    /// The cgroup of container `id` (`/cais/<id>`, where its shim puts it).
    pub(crate) fn cgroup(&self, id: &str) -> Result<cais_cgroups::Cgroup> {
        let failed = |source| Error::Cgroups {
            action: "finding",
            id: id.to_string(),
            source,
        };
        let layout = cais_cgroups::Layout::detect().map_err(failed)?;
        cais_cgroups::Cgroup::new(layout, &Self::cgroup_path(id)).map_err(failed)
    }

    /// The cgroup path of container `id`, as the shim is told it.
    pub(crate) fn cgroup_path(id: &str) -> String {
        format!("/cais/{id}")
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
