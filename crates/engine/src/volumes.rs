//! Named volumes: a directory per volume under `<root>/volumes/<name>/_data`,
//! with its metadata beside it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use cais_api::Volume;

use crate::error::{Error, Kind, Result};

pub struct Volumes {
    root: PathBuf,
}

/// Docker's rule for volume names.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl Volumes {
    pub fn new(root: &Path) -> Result<Volumes> {
        let root = root.join("volumes");
        fs::create_dir_all(&root).map_err(Error::io("creating", &root))?;
        Ok(Volumes { root })
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub fn data(&self, name: &str) -> PathBuf {
        self.dir(name).join("_data")
    }

    pub fn exists(&self, name: &str) -> bool {
        self.dir(name).join("volume.json").exists()
    }

    /// Creates a volume (an existing one is returned as it is, like docker).
    pub fn create(&self, name: &str, labels: BTreeMap<String, String>) -> Result<Volume> {
        if !valid_name(name) {
            return Err(Error::InvalidArgument(format!(
                "{name:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed"
            )));
        }
        if self.exists(name) {
            return self.inspect(name);
        }
        let dir = self.dir(name);
        fs::create_dir_all(dir.join("_data")).map_err(Error::io("creating the volume", &dir))?;
        let v = Volume {
            name: name.into(),
            driver: "local".into(),
            mountpoint: self.data(name).to_string_lossy().into_owned(),
            created_at: cais_runtime::state::rfc3339(std::time::SystemTime::now()),
            labels,
            scope: "local".into(),
            options: BTreeMap::new(),
        };
        let tmp = dir.join(".volume.json.tmp");
        fs::write(&tmp, serde_json::to_vec(&v).expect("serializes"))
            .and_then(|_| fs::rename(&tmp, dir.join("volume.json")))
            .map_err(Error::io("writing volume metadata", &tmp))?;
        Ok(v)
    }

    pub fn inspect(&self, name: &str) -> Result<Volume> {
        let data = fs::read(self.dir(name).join("volume.json"))
            .map_err(|_| Error::not_found(Kind::Volume, name))?;
        serde_json::from_slice(&data).map_err(|source| Error::Json {
            what: format!("the metadata of volume {name}"),
            source,
        })
    }

    pub fn list(&self) -> Vec<Volume> {
        let mut out: Vec<Volume> = fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| self.inspect(&e.file_name().to_string_lossy()).ok())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Removes a volume; `in_use` names the containers using it.
    pub fn remove(&self, name: &str, in_use: &[String]) -> Result<()> {
        if !self.exists(name) {
            return Err(Error::not_found(Kind::Volume, name));
        }
        if !in_use.is_empty() {
            return Err(Error::Conflict(format!(
                "remove {name}: volume is in use - [{}]",
                in_use.join(", ")
            )));
        }
        fs::remove_dir_all(self.dir(name)).map_err(Error::io("removing the volume", self.dir(name)))
    }
}

/// Copies the image's content at a mount point into a new, empty volume
/// (docker populates named and anonymous volumes this way).
pub fn populate(from: &Path, to: &Path) -> std::io::Result<()> {
    if !from.is_dir() || fs::read_dir(to)?.next().is_some() {
        return Ok(());
    }
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(
            "copying image content into the volume failed",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_are_created_listed_and_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let v = Volumes::new(dir.path()).expect("volumes");
        let created = v.create("data-1", BTreeMap::new()).expect("create");
        assert!(Path::new(&created.mountpoint).is_dir());
        assert_eq!(
            v.create("data-1", BTreeMap::new())
                .expect("again")
                .created_at,
            created.created_at
        );
        assert!(v.create("../x", BTreeMap::new()).is_err());
        assert!(v.create("", BTreeMap::new()).is_err());
        assert_eq!(v.list().len(), 1);
        assert!(matches!(
            v.remove("data-1", &["web".into()]),
            Err(Error::Conflict(_))
        ));
        v.remove("data-1", &[]).expect("remove");
        assert!(matches!(
            v.inspect("data-1"),
            Err(Error::NotFound {
                kind: Kind::Volume,
                ..
            })
        ));
    }
}
