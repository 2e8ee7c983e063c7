//! The embedded backend: one SQLite database (bundled through `rusqlite`)
//! in a directory the store owns.
//!
//! # Why SQLite
//!
//! Measured on this project's 2-core VM (ext4 on virtio), a table of
//! (revision, key, value) rows with a `(key, revision)` index, 256-byte
//! values: SQLite in WAL mode with `synchronous = FULL` committed 7,400
//! single-row transactions/s and 330,000 rows/s in 256-row transactions;
//! redb 2.6 (durable commits) 4,700/s and 108,000 rows/s, and its file was
//! twice as large. redb answered point reads faster (750,000/s against
//! 500,000/s on one thread), but both are far above what the async layer
//! above them passes through. What decided: commits (the store's cost under
//! writes) are faster, SQL expresses "the newest row per key at revision R"
//! over a range in one indexed query where redb would need it hand-written
//! over two tables, and SQLite's durability and crash recovery are the most
//! tested there are. The table is described in `db.rs`.
//!
//! Through the whole store (`cargo xtask bench-store`, same VM shared with
//! other jobs, 256-byte values): with the disk syncing 7,500 times/s,
//! 4,200 durable puts/s from one client (p50 0.17 ms, p99 1.6 ms) and
//! 47,000/s from 256 clients (167 writes per commit, p99 14 ms); when other
//! jobs slowed the disk to 350-500 syncs/s, 470/s and 30,000/s. Group
//! commit makes the second number track CPU, not the disk.
//!
//! # Threads
//!
//! - One **writer** thread owns the write connection and does group commit
//!   (`writer`): concurrent writes share a transaction and its sync.
//! - **Reads** run on tokio's blocking pool over a small pool of read
//!   connections (WAL: they read a snapshot while the writer commits), at
//!   most [`Options::readers`] at once.
//! - One **background** thread (`background`) compacts history beyond the
//!   [`Retention`] window and deletes keys whose lease expired, both by
//!   requests to the writer like anyone else's.
//!
//! Watches are tasks of their callers: the writer broadcasts each commit
//! once and every watch filters it (`watch`).
//!
//! The directory holds `store.db` (with SQLite's `-wal` and `-shm` files)
//! and `lock`, held with `flock` while the store is open so that a second
//! process cannot open the same store.

mod background;
mod db;
mod watch;
mod writer;

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use nix::fcntl::{Flock, FlockArg};
use rusqlite::Connection;
use tokio::sync::{broadcast, oneshot, Semaphore};

use crate::{CountResult, Deleted, Error, GetResult, KeyRange, ListResult, Result, Store, Watch};
use writer::{Done, Group, Op, Request, State, Writer};

/// How much history background compaction keeps: revisions within the
/// last `revisions` **or** younger than `age` stay readable and watchable.
#[derive(Clone, Debug)]
pub struct Retention {
    pub revisions: u64,
    pub age: Duration,
    /// How often to compact.
    pub interval: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            revisions: 1000,
            age: Duration::from_secs(300),
            interval: Duration::from_secs(10),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    /// Background compaction; none keeps all history until
    /// [`Store::compact`] is called.
    pub retention: Option<Retention>,
    /// How often expired leases are looked for.
    pub lease_check_interval: Duration,
    /// Committed batches a watch may fall behind before it has to read
    /// the log to catch up. With `max_batch`, this bounds what one slow
    /// watch can keep in memory: `watch_buffer * max_batch` changes.
    pub watch_buffer: usize,
    /// Most writes in one group commit.
    pub max_batch: usize,
    /// Most reads running at once (each on a connection of its own).
    pub readers: usize,
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            retention: Some(Retention::default()),
            lease_check_interval: Duration::from_secs(1),
            watch_buffer: 256,
            max_batch: 256,
            readers: 4,
            max_key_bytes: 4096,
            max_value_bytes: 8 << 20,
        }
    }
}

/// Counters, for tests and benchmarks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Write transactions committed, each with one sync.
    pub commits: u64,
    /// Writes committed (revisions).
    pub writes: u64,
}

/// The embedded store. Cheap to clone; the store closes when the last clone
/// is dropped (open watches then end with [`Error::Closed`]).
#[derive(Clone)]
pub struct SqliteStore {
    shared: Arc<Shared>,
}

struct Shared {
    dir: PathBuf,
    writes: Option<mpsc::Sender<Request>>,
    events: broadcast::Sender<Arc<Group>>,
    reads: Arc<Reads>,
    options: Options,
    writer: Option<JoinHandle<()>>,
    background: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

/// What reads and watches need, without keeping the writer alive.
pub(crate) struct Reads {
    path: PathBuf,
    pool: Mutex<Vec<Connection>>,
    permits: Semaphore,
    state: Arc<State>,
}

impl Reads {
    /// Runs `read` on a pooled connection on the blocking pool.
    async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let _permit = self.permits.acquire().await.map_err(|_| Error::Closed)?;
        let reads = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut conn = match reads.pool.lock().map(|mut pool| pool.pop()) {
                Ok(Some(conn)) => conn,
                _ => db::connect(&reads.path)?,
            };
            let result = read(&mut conn);
            if let Ok(mut pool) = reads.pool.lock() {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|_| Error::Closed)?
    }

    /// Runs `read` in one read transaction: one snapshot of the store.
    async fn snapshot<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&Connection, db::Snapshot) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.run(move |conn| {
            let tx = conn.transaction().map_err(Error::sqlite("begin a read"))?;
            let snapshot = db::Snapshot::read(&tx)?;
            read(&tx, snapshot)
        })
        .await
    }
}

impl SqliteStore {
    /// Opens the store in `dir`, creating it if needed. Takes the
    /// directory's lock ([`Error::Locked`] if another process has it).
    pub fn open(dir: &Path, options: Options) -> Result<SqliteStore> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(Error::io("create the store directory", dir.to_path_buf()))?;
        let lock_path = dir.join("lock");
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(Error::io("open the lock file", lock_path.clone()))?;
        let lock =
            Flock::lock(lock_file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
                if errno == nix::errno::Errno::EWOULDBLOCK {
                    Error::Locked {
                        path: dir.to_path_buf(),
                    }
                } else {
                    Error::io("lock", lock_path.clone())(std::io::Error::from(errno))
                }
            })?;

        // SQLite gives its -wal and -shm files the database file's mode, so
        // creating that file first keeps all three private.
        let path = dir.join("store.db");
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(Error::io("create the database", path.clone()))?;
        let conn = db::connect(&path)?;
        db::migrate(&conn, dir)?;
        let state = Arc::new(State::default());
        state
            .committed
            .store(db::current_revision(&conn)?, Ordering::Release);
        state
            .compacted
            .store(db::meta(&conn, "compact_rev")?, Ordering::Release);
        let compact_progress = db::meta(&conn, "compact_progress")?;
        tracing::info!(
            dir = %dir.display(),
            revision = state.committed.load(Ordering::Acquire),
            compacted = state.compacted.load(Ordering::Acquire),
            "store opened"
        );

        let (events, _) = broadcast::channel(options.watch_buffer.max(1));
        let (writes, requests) = mpsc::channel();
        let writer = Writer {
            conn,
            requests,
            events: events.clone(),
            state: Arc::clone(&state),
            max_batch: options.max_batch.max(1),
            lock,
            compact_progress,
            compact_retry: None,
        };
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run())
            .map_err(Error::io("start the writer thread", dir.to_path_buf()))?;

        let reads = Arc::new(Reads {
            path: path.clone(),
            pool: Mutex::new(Vec::new()),
            permits: Semaphore::new(options.readers.max(1)),
            state: Arc::clone(&state),
        });
        let background = background::start(
            db::connect(&path)?,
            writes.clone(),
            Arc::clone(&state),
            options.clone(),
        )
        .map_err(Error::io("start the background thread", dir.to_path_buf()))?;
        Ok(SqliteStore {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                writes: Some(writes),
                events,
                reads,
                options,
                writer: Some(writer),
                background: Some(background),
            }),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    pub fn stats(&self) -> Stats {
        let state = &self.shared.reads.state;
        Stats {
            commits: state.commits.load(Ordering::Relaxed),
            writes: state.writes.load(Ordering::Relaxed),
        }
    }

    /// The compaction revision: reads before it are [`Error::Compacted`].
    pub fn compacted_revision(&self) -> i64 {
        self.shared.reads.state.compacted.load(Ordering::Acquire)
    }

    async fn write(&self, op: Op) -> Result<Done> {
        let (reply, answer) = oneshot::channel();
        self.shared
            .writes
            .as_ref()
            .ok_or(Error::Closed)?
            .send(Request { op, reply })
            .map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }

    fn check_key(&self, key: &[u8]) -> Result<Bytes> {
        if key.is_empty() {
            return Err(Error::InvalidArgument {
                reason: "the key is empty".into(),
            });
        }
        if key.len() > self.shared.options.max_key_bytes {
            return Err(Error::InvalidArgument {
                reason: format!(
                    "the key is {} bytes, more than the limit of {}",
                    key.len(),
                    self.shared.options.max_key_bytes
                ),
            });
        }
        Ok(Bytes::copy_from_slice(key))
    }

    fn check_value(&self, value: &Bytes) -> Result<()> {
        if value.len() > self.shared.options.max_value_bytes {
            return Err(Error::InvalidArgument {
                reason: format!(
                    "the value is {} bytes, more than the limit of {}",
                    value.len(),
                    self.shared.options.max_value_bytes
                ),
            });
        }
        Ok(())
    }
}

/// When a lease of `ttl` taken now runs out, in milliseconds since the
/// epoch (0: no lease).
fn expiry(ttl: Option<Duration>) -> Result<i64> {
    let Some(ttl) = ttl else { return Ok(0) };
    if ttl.is_zero() {
        return Err(Error::InvalidArgument {
            reason: "a lease's time to live must be positive".into(),
        });
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from((now + ttl).as_millis()).map_err(|_| Error::InvalidArgument {
        reason: format!("a lease of {ttl:?} ends too far in the future"),
    })
}

fn check_revision(revision: i64) -> Result<()> {
    if revision < 0 {
        return Err(Error::InvalidArgument {
            reason: format!("revision {revision} is negative"),
        });
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn current_revision(&self) -> Result<i64> {
        Ok(self.shared.reads.state.committed.load(Ordering::Acquire))
    }

    async fn create(&self, key: &[u8], value: Bytes, ttl: Option<Duration>) -> Result<i64> {
        let key = self.check_key(key)?;
        self.check_value(&value)?;
        let expires_ms = expiry(ttl)?;
        match self
            .write(Op::Create {
                key,
                value,
                expires_ms,
            })
            .await?
        {
            Done::Revision(revision) => Ok(revision),
            Done::Deleted(_) | Done::Compacted => Err(Error::Closed),
        }
    }

    async fn get(&self, key: &[u8], revision: i64) -> Result<GetResult> {
        let key = self.check_key(key)?;
        self.shared
            .reads
            .snapshot(move |conn, snapshot| {
                let revision = snapshot.resolve(revision)?;
                let kv = db::get(conn, &key, revision)?;
                Ok(GetResult { revision, kv })
            })
            .await
    }

    async fn list(&self, range: &KeyRange, limit: usize, revision: i64) -> Result<ListResult> {
        let range = range.clone();
        self.shared
            .reads
            .snapshot(move |conn, snapshot| {
                let revision = snapshot.resolve(revision)?;
                let (kvs, more) = db::list(conn, &range, limit, revision)?;
                Ok(ListResult {
                    revision,
                    kvs,
                    more,
                })
            })
            .await
    }

    async fn count(&self, range: &KeyRange) -> Result<CountResult> {
        let range = range.clone();
        self.shared
            .reads
            .snapshot(move |conn, snapshot| {
                Ok(CountResult {
                    revision: snapshot.current,
                    count: db::count(conn, &range)?,
                })
            })
            .await
    }

    async fn update(
        &self,
        key: &[u8],
        value: Bytes,
        expected: i64,
        ttl: Option<Duration>,
    ) -> Result<i64> {
        let key = self.check_key(key)?;
        self.check_value(&value)?;
        let expires_ms = expiry(ttl)?;
        match self
            .write(Op::Update {
                key,
                value,
                expected,
                expires_ms,
            })
            .await?
        {
            Done::Revision(revision) => Ok(revision),
            Done::Deleted(_) | Done::Compacted => Err(Error::Closed),
        }
    }

    async fn delete(&self, key: &[u8], expected: Option<i64>) -> Result<Deleted> {
        let key = self.check_key(key)?;
        match self.write(Op::Delete { key, expected }).await? {
            Done::Deleted(deleted) => Ok(deleted),
            Done::Revision(_) | Done::Compacted => Err(Error::Closed),
        }
    }

    async fn watch(&self, range: &KeyRange, from: i64) -> Result<Watch> {
        check_revision(from)?;
        // Subscribe before reading where to start: see `watch`.
        let receiver = self.shared.events.subscribe();
        let (next, catching_up) = if from == 0 {
            let committed = self.shared.reads.state.committed.load(Ordering::Acquire);
            (committed + 1, false)
        } else {
            (from, true)
        };
        Ok(Watch::new(watch::SqliteWatch {
            range: range.clone(),
            next,
            catching_up,
            progress_requested: false,
            receiver,
            reads: Arc::clone(&self.shared.reads),
            ended: false,
        }))
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        check_revision(revision)?;
        match self.write(Op::Compact { revision }).await? {
            Done::Compacted => Ok(()),
            Done::Revision(_) | Done::Deleted(_) => Err(Error::Closed),
        }
    }
}

impl Drop for Shared {
    /// Stops the background thread, lets the writer finish what is queued,
    /// and waits for both, so that the directory's lock is free once the
    /// last handle is gone.
    fn drop(&mut self) {
        if let Some((stop, background)) = self.background.take() {
            drop(stop);
            let _ = background.join();
        }
        drop(self.writes.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}
