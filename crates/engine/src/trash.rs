//! Deleting directories off the request path. A removed container's
//! directory and snapshot are renamed into the trash (`<root>/engine/trash`,
//! one rename each on the filesystem they live on) and deleted there by
//! one background thread, so `rm` and `run --rm` do not wait for a
//! directory tree's unlinks and rmdirs. What a daemon that died left in
//! the trash is deleted after the next start.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};

use crate::error::{Error, Result};

pub struct Trash {
    dir: PathBuf,
    /// The deleting thread's queue.
    queue: Mutex<mpsc::Sender<PathBuf>>,
    /// Makes trash names unique within this daemon's life.
    next: AtomicU64,
}

impl Trash {
    /// Opens the trash at `dir` (created if missing) and starts the thread
    /// that empties it, beginning with what a previous daemon left.
    pub fn open(dir: PathBuf) -> Result<Trash> {
        std::fs::create_dir_all(&dir).map_err(Error::io("creating", &dir))?;
        let (tx, rx) = mpsc::channel::<PathBuf>();
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let _ = tx.send(entry.path());
        }
        std::thread::Builder::new()
            .name("trash".into())
            .spawn(move || {
                for path in rx {
                    if let Err(e) = cais_image::unpack::remove_tree(&path) {
                        tracing::warn!(path = %path.display(), error = %e, "emptying the trash");
                    }
                }
            })
            .map_err(|e| Error::daemon("starting the trash thread")(e.into()))?;
        Ok(Trash {
            dir,
            queue: Mutex::new(tx),
            next: AtomicU64::new(0),
        })
    }

    /// A free name in the trash for something of `id`, to rename there.
    pub fn slot(&self, id: &str) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!("{id}.{}.{n}", std::process::id()))
    }

    /// Deletes `path` (renamed into the trash at `slot`) in the background.
    pub fn delete_later(&self, slot: PathBuf) {
        let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let _ = queue.send(slot);
    }

    /// Moves `path` into the trash to be deleted in the background; where
    /// it cannot be renamed there (another filesystem), deletes it now.
    /// A missing `path` is not an error.
    pub fn discard(&self, id: &str, path: &Path) -> Result<()> {
        let slot = self.slot(id);
        match std::fs::rename(path, &slot) {
            Ok(()) => {
                self.delete_later(slot);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(_) => cais_image::unpack::remove_tree(path).map_err(Error::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(at: &Path) {
        std::fs::create_dir_all(at.join("a/b")).expect("dirs");
        std::fs::write(at.join("a/b/f"), b"x").expect("file");
        std::fs::write(at.join("g"), b"y").expect("file");
    }

    fn gone_soon(path: &Path) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while path.exists() {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        true
    }

    #[test]
    fn discarded_trees_and_leftovers_are_deleted() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("trash");
        // What a daemon that died left in the trash.
        let leftover = dir.join("old.1.0");
        tree(&leftover);
        let trash = Trash::open(dir.clone()).expect("trash");
        assert!(gone_soon(&leftover), "a leftover is deleted after start");
        let doomed = tmp.path().join("container");
        tree(&doomed);
        trash.discard("c1", &doomed).expect("discard");
        assert!(!doomed.exists(), "renamed away at once");
        assert!(gone_soon(&dir.join(format!("c1.{}.0", std::process::id()))));
        assert_eq!(std::fs::read_dir(&dir).expect("trash").count(), 0);
        // Missing is fine.
        trash.discard("c2", &doomed).expect("nothing to discard");
    }
}
