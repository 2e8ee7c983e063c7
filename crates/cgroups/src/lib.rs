//! Placeholder until the cgroups crate lands: v1 only, procs and freezer.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cgroup io at {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
}
impl Layout {
    pub fn detect() -> Result<Layout, Error> {
        Ok(Layout {
            root: "/sys/fs/cgroup".into(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezerState {
    Thawed,
    Frozen,
}

pub struct Cgroup {
    dirs: Vec<PathBuf>,
}
fn io(path: &std::path::Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.into(),
        source,
    }
}
impl Cgroup {
    pub fn new(layout: Layout, path: &str) -> Result<Cgroup, Error> {
        let rel = path.trim_start_matches('/');
        Ok(Cgroup {
            dirs: ["memory", "pids", "freezer", "cpu"]
                .iter()
                .map(|c| layout.root.join(c).join(rel))
                .collect(),
        })
    }
    pub fn create(&self) -> Result<(), Error> {
        for d in &self.dirs {
            std::fs::create_dir_all(d).map_err(|e| io(d, e))?;
        }
        Ok(())
    }
    pub fn add_process(&self, pid: i32) -> Result<(), Error> {
        for d in &self.dirs {
            let p = d.join("cgroup.procs");
            std::fs::write(&p, pid.to_string()).map_err(|e| io(&p, e))?;
        }
        Ok(())
    }
    pub fn apply(&self, _r: &oci_spec::runtime::LinuxResources) -> Result<(), Error> {
        Ok(())
    }
    pub fn freeze(&self) -> Result<(), Error> {
        let p = self.dirs[2].join("freezer.state");
        std::fs::write(&p, "FROZEN").map_err(|e| io(&p, e))
    }
    pub fn thaw(&self) -> Result<(), Error> {
        let p = self.dirs[2].join("freezer.state");
        std::fs::write(&p, "THAWED").map_err(|e| io(&p, e))
    }
    pub fn freezer_state(&self) -> Result<FreezerState, Error> {
        let p = self.dirs[2].join("freezer.state");
        let s = std::fs::read_to_string(&p).map_err(|e| io(&p, e))?;
        Ok(if s.trim() == "THAWED" {
            FreezerState::Thawed
        } else {
            FreezerState::Frozen
        })
    }
    pub fn pids(&self) -> Result<Vec<i32>, Error> {
        let p = self.dirs[1].join("cgroup.procs");
        let s = std::fs::read_to_string(&p).map_err(|e| io(&p, e))?;
        Ok(s.lines().filter_map(|l| l.parse().ok()).collect())
    }
    pub fn stats(&self) -> Result<serde_json::Value, Error> {
        Ok(serde_json::json!({}))
    }
    pub fn relative_path(&self) -> String {
        String::new()
    }
    pub fn destroy(&self) -> Result<(), Error> {
        for d in &self.dirs {
            let _ = std::fs::remove_dir(d);
        }
        Ok(())
    }
}
