//! The container table: every container in memory, each persisted as
//! `<root>/engine/containers/<id>/container.json`, and the exit codes of
//! removed ones (for `wait?condition=removed`). Updates change the entry
//! under the table lock and write the record after releasing it, ordered
//! per container (see `RecordWriter`). Every change wakes the threads
//! that `watch` a container (waits, stops, kills), so none of them polls.
//!
//! Records are always written (temp file, rename), so a daemon that dies
//! loses nothing. They are fsynced only where a host crash would lose
//! something the daemon acts on after reboot (`needs_sync`): a
//! container's existence and configuration, its name, whether it was
//! stopped by hand, its restart count, and, for containers an
//! `always`/`unless-stopped` policy brings back after a reboot, whether
//! they were running. What only a running container holds (its pid,
//! network namespace, addresses, health) is dead after a reboot and
//! written without fsync; so is every write of an auto-remove (`--rm`)
//! container, which a restarted daemon removes anyway.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::containers::record;
use crate::containers::state::{Change, Container};
use crate::error::{Error, Kind, Result};
use crate::networks::netconf::clear_runtime;

/// The record file in a container's directory.
const RECORD: &str = "container.json";

pub struct Table {
    /// `<root>/engine/containers`.
    dir: PathBuf,
    inner: Mutex<Inner>,
    /// Signalled after every change of `inner`.
    changed: Condvar,
}

#[derive(Default)]
struct Inner {
    containers: BTreeMap<String, Container>,
    /// Per container, the order of its record's snapshots (see `update`).
    writers: HashMap<String, Arc<RecordWriter>>,
    /// Exit codes of removed containers, for `wait?condition=removed`.
    removed: HashMap<String, i64>,
}

/// Orders the writes of one container's record file. API, monitor and
/// health threads update a record under the table lock but write it after
/// releasing that lock (an fsync must not stall every other container), so
/// two snapshots can reach the disk in either order. Each snapshot takes a
/// generation under the table lock; the file is written under `written`,
/// and a snapshot older than what is already on disk is dropped, never
/// renamed over a newer one.
#[derive(Default)]
struct RecordWriter {
    generation: AtomicU64,
    written: Mutex<u64>,
}

/// How many removed containers' exit codes are remembered.
const REMOVED_KEPT: usize = 1024;

impl Table {
    /// Reads every record under `dir` (created if missing).
    pub fn load(dir: PathBuf) -> Result<Table> {
        fs::create_dir_all(&dir).map_err(Error::io("creating", &dir))?;
        let mut inner = Inner::default();
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path().join(RECORD);
            let Ok(data) = fs::read(&path) else { continue };
            match record::decode(&path, &data) {
                Ok(c) => {
                    inner.containers.insert(c.id.clone(), c);
                }
                // Left as it is: a newer daemon may read it again.
                Err(e) => tracing::warn!(error = %e, "skipping a container record"),
            }
        }
        Ok(Table {
            dir,
            inner: Mutex::new(inner),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A container's directory: its record, bundle, logs and shim sockets.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Resolves a name, full id or unique id prefix to a full id.
    pub fn resolve(&self, name_or_id: &str) -> Result<String> {
        let t = self.lock();
        let key = name_or_id.trim_start_matches('/');
        if t.containers.contains_key(key) {
            return Ok(key.to_string());
        }
        if let Some(r) = t.containers.values().find(|r| r.name == key) {
            return Ok(r.id.clone());
        }
        let matches: Vec<&String> = t
            .containers
            .keys()
            .filter(|id| !key.is_empty() && id.starts_with(key))
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::not_found(Kind::Container, name_or_id)),
            _ => Err(Error::InvalidArgument(format!(
                "multiple containers found with provided prefix: {name_or_id}"
            ))),
        }
    }

    /// A copy of the container `id` (a full id).
    pub fn get(&self, id: &str) -> Result<Container> {
        self.lock()
            .containers
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found(Kind::Container, id))
    }

    /// Blocks until `f`, shown container `id` (None once it is gone) after
    /// each change of the table, returns a value; None when `limit`
    /// passes first. `f` runs under the table lock and takes no lock.
    pub fn watch<T>(
        &self,
        id: &str,
        limit: Option<Duration>,
        mut f: impl FnMut(Option<&Container>) -> Option<T>,
    ) -> Option<T> {
        let deadline = limit.map(|l| Instant::now() + l);
        let mut t = self.lock();
        loop {
            if let Some(v) = f(t.containers.get(id)) {
                return Some(v);
            }
            t = match deadline {
                None => self.changed.wait(t).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    self.changed
                        .wait_timeout(t, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
    }

    /// Reads the whole table under its lock; `f` must take no engine
    /// lock (see the crate's lock order).
    pub fn with<R>(&self, f: impl FnOnce(&BTreeMap<String, Container>) -> R) -> R {
        f(&self.lock().containers)
    }

    /// Copies of the containers `keep` selects.
    pub fn select(&self, keep: impl Fn(&Container) -> bool) -> Vec<Container> {
        self.with(|all| all.values().filter(|c| keep(c)).cloned().collect())
    }

    /// Whether a container has this name.
    pub fn name_taken(&self, name: &str) -> bool {
        self.with(|all| all.values().any(|c| c.name == name))
    }

    /// Adds a new container (not yet on disk: its directory comes later),
    /// unless its name is taken: the name is reserved from here on.
    pub fn insert(&self, c: Container) -> Result<()> {
        let mut t = self.lock();
        if let Some(other) = t.containers.values().find(|r| r.name == c.name) {
            return Err(Error::Conflict(format!(
                "Conflict. The container name \"/{}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                c.name, other.id
            )));
        }
        t.containers.insert(c.id.clone(), c);
        drop(t);
        self.changed.notify_all();
        Ok(())
    }

    /// Changes a container with `f` and saves its record.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut Container)) -> Result<Container> {
        self.try_update(id, |c| {
            f(c);
            Ok(())
        })
    }

    /// Moves a container's state through `change` (see `State::apply`)
    /// and saves its record; a change its state does not allow is refused.
    pub fn transition(&self, id: &str, change: Change) -> Result<Container> {
        self.try_update(id, |c| {
            c.state = c.state.apply(change)?;
            Ok(())
        })
    }

    /// Changes a container with `f` and saves its record; when `f` fails,
    /// nothing changes.
    pub fn try_update(
        &self,
        id: &str,
        f: impl FnOnce(&mut Container) -> Result<()>,
    ) -> Result<Container> {
        let mut t = self.lock();
        let entry = t
            .containers
            .get_mut(id)
            .ok_or_else(|| Error::not_found(Kind::Container, id))?;
        let mut c = entry.clone();
        f(&mut c)?;
        let sync = needs_sync(Some(&*entry), &c);
        *entry = c.clone();
        // The first write of a record (create's) is its existence.
        let sync = sync || (!t.writers.contains_key(id) && needs_sync(None, &c));
        let writer = t.writers.entry(id.to_string()).or_default().clone();
        let generation = writer.generation.fetch_add(1, Ordering::SeqCst) + 1;
        drop(t);
        self.changed.notify_all();
        self.save(&c, &writer, generation, sync)?;
        Ok(c)
    }

    /// Writes snapshot `generation` of a record unless a newer one is on
    /// disk: a temp file of its own, fsynced when `sync`, renamed over the
    /// record.
    fn save(
        &self,
        c: &Container,
        writer: &RecordWriter,
        generation: u64,
        sync: bool,
    ) -> Result<()> {
        let mut written = writer.written.lock().unwrap_or_else(|p| p.into_inner());
        if *written > generation {
            return Ok(());
        }
        let dir = self.dir(&c.id);
        let tmp = dir.join(format!(".{RECORD}.{generation}.tmp"));
        let data = record::encode(c);
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&data)?;
            if sync {
                f.sync_all()?;
            }
            fs::rename(&tmp, dir.join(RECORD))
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::io("saving the container record", &tmp)(e)
        })?;
        *written = generation;
        Ok(())
    }

    /// Drops a container that never got its directory (a failed create).
    pub fn discard(&self, id: &str) {
        let mut t = self.lock();
        t.containers.remove(id);
        t.writers.remove(id);
        drop(t);
        self.changed.notify_all();
    }

    /// Drops a removed container, remembering its exit code.
    pub fn forget(&self, id: &str, exit_code: i64) {
        let mut t = self.lock();
        t.containers.remove(id);
        t.writers.remove(id);
        if t.removed.len() > REMOVED_KEPT {
            t.removed.clear();
        }
        t.removed.insert(id.to_string(), exit_code);
        drop(t);
        self.changed.notify_all();
    }

    /// The exit code of a container `forget` dropped.
    pub fn removed_exit_code(&self, id: &str) -> Option<i64> {
        self.lock().removed.get(id).copied()
    }

    /// Containers whose records use a volume.
    pub fn volume_users(&self, name: &str) -> Vec<String> {
        self.with(|all| {
            all.values()
                .filter(|c| {
                    c.mounts
                        .iter()
                        .any(|m| m.kind == "volume" && m.name == name)
                })
                .map(|c| c.id.clone())
                .collect()
        })
    }
}

/// Whether writing `after` (over `before`, None for a first record) must
/// reach the disk before the change counts: see the module docs.
fn needs_sync(before: Option<&Container>, after: &Container) -> bool {
    if after.host_config.auto_remove {
        return false;
    }
    let Some(before) = before else { return true };
    let requested = |c: &Container| {
        let mut nets = c.networks.clone();
        nets.values_mut().for_each(clear_runtime);
        nets
    };
    let comes_back = matches!(
        after.host_config.restart_policy.name.as_str(),
        "always" | "unless-stopped"
    );
    before.name != after.name
        || before.config != after.config
        || before.host_config != after.host_config
        || before.mounts != after.mounts
        || before.anonymous_volumes != after.anonymous_volumes
        || before.manually_stopped != after.manually_stopped
        || before.restart_count != after.restart_count
        || requested(before) != requested(after)
        || (comes_back && before.state.is_running() != after.state.is_running())
}

/// The short id of a container whose record (under `dir`, read from disk:
/// the image store asks without the table) names image `image_id`; an
/// image is in use while one does.
pub fn image_user(dir: &Path, image_id: &str) -> Option<String> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let path = e.path().join(RECORD);
            let data = fs::read(&path).ok()?;
            record::decode(&path, &data).ok()
        })
        .find(|c| c.image_id == image_id)
        .map(|c| c.id[..12].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A container record with nothing but what a record needs.
    fn minimal(id: &str, name: &str) -> Container {
        let minimal = serde_json::json!({
            "id": id, "name": name, "created": crate::ids::now(), "image": "busybox",
            "image_id": "sha256:00", "config": {}, "host_config": {}, "path": "true",
            "args": [], "state": {"Status": "created"}
        });
        record::decode(Path::new("minimal"), minimal.to_string().as_bytes())
            .expect("a minimal record")
    }

    #[test]
    fn watchers_wake_on_the_change_they_wait_for() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let table = Table::load(tmp.path().join("containers")).expect("table");
        let id = "d".repeat(64);
        fs::create_dir_all(table.dir(&id)).expect("container dir");
        table.insert(minimal(&id, "watched")).expect("insert");
        // Nothing changes: the limit passes.
        assert_eq!(
            table.watch(&id, Some(Duration::from_millis(20)), |c| c
                .filter(|c| c.restart_count > 0)
                .map(|_| ())),
            None
        );
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| {
                // Woken by each change; returns on the one it waits for.
                table.watch(&id, None, |c| {
                    c.map(|c| c.restart_count).filter(|n| *n == 3)
                })
            });
            for _ in 0..3 {
                table.update(&id, |r| r.restart_count += 1).expect("update");
            }
            assert_eq!(waiter.join().expect("waiter"), Some(3));
            let gone = scope.spawn(|| table.watch(&id, None, |c| c.is_none().then_some("gone")));
            table.forget(&id, 0);
            assert_eq!(gone.join().expect("waiter"), Some("gone"));
        });
    }

    #[test]
    fn records_are_fsynced_only_where_a_host_crash_would_lose_what_counts() {
        let c = minimal(&"e".repeat(64), "durable");
        assert!(needs_sync(None, &c), "a new record is the container");
        assert!(!needs_sync(Some(&c), &c.clone()), "nothing changed");
        let changed = |f: &dyn Fn(&mut Container)| {
            let mut after = c.clone();
            f(&mut after);
            needs_sync(Some(&c), &after)
        };
        assert!(changed(&|r| r.name = "renamed".into()));
        assert!(changed(&|r| r.config.env.push("A=1".into())));
        assert!(changed(&|r| r.host_config.memory = 64 << 20));
        assert!(changed(&|r| r.manually_stopped = true));
        assert!(changed(&|r| r.restart_count = 1));
        assert!(changed(&|r| {
            r.networks.insert("n1".into(), Default::default());
        }));
        // What only a running container holds.
        let running = |r: &mut Container| {
            r.state = r
                .state
                .apply(Change::Started {
                    pid: 42,
                    started_at: crate::ids::now(),
                    health: None,
                })
                .expect("created → running");
        };
        assert!(
            !changed(&running),
            "no policy brings it back after a reboot"
        );
        assert!(!changed(&|r| r.net = Some(Default::default())));
        let mut given = c.clone();
        given.networks.insert("bridge".into(), Default::default());
        let mut addressed = given.clone();
        if let Some(ep) = addressed.networks.get_mut("bridge") {
            ep.ip_address = "172.17.0.2".into();
        }
        assert!(
            !needs_sync(Some(&given), &addressed),
            "an address given at start"
        );
        // An always container's running state decides its restart after a reboot.
        let mut always = c.clone();
        always.host_config.restart_policy.name = "always".into();
        let mut up = always.clone();
        running(&mut up);
        assert!(needs_sync(Some(&always), &up));
        // Nothing of an auto-remove container, not even its creation.
        let mut rm = c.clone();
        rm.host_config.auto_remove = true;
        assert!(!needs_sync(None, &rm));
        let mut renamed = rm.clone();
        renamed.name = "other".into();
        assert!(!needs_sync(Some(&rm), &renamed));
    }

    #[test]
    fn concurrent_record_updates_leave_the_newest_on_disk() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let table = Table::load(tmp.path().join("containers")).expect("table");
        let id = "c".repeat(64);
        let rec = minimal(&id, "hammered");
        fs::create_dir_all(table.dir(&id)).expect("container dir");
        table.insert(rec).expect("a new name");
        const THREADS: i64 = 8;
        const UPDATES: i64 = 100;
        std::thread::scope(|scope| {
            for _ in 0..THREADS {
                scope.spawn(|| {
                    for _ in 0..UPDATES {
                        table
                            .update(&id, |r| r.restart_count += 1)
                            .expect("every update is saved");
                    }
                });
            }
        });
        let file = table.dir(&id).join(RECORD);
        let on_disk =
            record::decode(&file, &fs::read(&file).expect("record file")).expect("a whole record");
        assert_eq!(
            table.get(&id).expect("record").restart_count,
            THREADS * UPDATES
        );
        assert_eq!(
            on_disk.restart_count,
            THREADS * UPDATES,
            "the file holds the last update, not an older snapshot"
        );
        let leftovers: Vec<_> = fs::read_dir(table.dir(&id))
            .expect("list")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    }

    #[test]
    fn records_of_every_version_load_and_unknown_ones_stay_untouched() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("containers");
        let old = include_str!("testdata/record-v0-running.json");
        let old_id: String = serde_json::from_str::<serde_json::Value>(old).expect("json")["id"]
            .as_str()
            .expect("id")
            .into();
        let put = |id: &str, data: &[u8]| {
            fs::create_dir_all(dir.join(id)).expect("dir");
            fs::write(dir.join(id).join(RECORD), data).expect("write");
        };
        put(&old_id, old.as_bytes());
        let mut new = record::decode(Path::new("v0"), old.as_bytes()).expect("v0");
        new.id = "b".repeat(64);
        new.name = "rewritten".into();
        new.image_id = "sha256:11".into();
        put(&new.id, &record::encode(&new));
        let future = br#"{"version": 2, "id": "ffff", "whatever": true}"#;
        put("ffff", future);
        put("torn", b"{\"id\": ");
        let table = Table::load(dir.clone()).expect("load");
        let web = table.get(&old_id).expect("the v0 record loaded");
        assert_eq!(web.name, "web");
        assert!(web.state.is_running(), "{:?}", web.state);
        assert_eq!(
            table.get(&new.id).expect("the v1 record loaded").name,
            "rewritten"
        );
        assert!(table.get("ffff").is_err());
        assert_eq!(
            fs::read(dir.join("ffff").join(RECORD)).expect("still there"),
            future,
            "a newer daemon's record is left as it was"
        );
        // The image store asks the files, in either format.
        assert_eq!(
            image_user(&dir, &web.image_id).as_deref(),
            Some(&old_id[..12])
        );
        assert_eq!(
            image_user(&dir, "sha256:11").as_deref(),
            Some(&new.id[..12])
        );
        assert_eq!(image_user(&dir, "sha256:22"), None);
    }
}
