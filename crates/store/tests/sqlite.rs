//! What the embedded backend promises beyond the common interface: group
//! commit, one process per directory, private files, background
//! compaction, its limits, and a full disk failing cleanly.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cais_store::sqlite::{Options, Retention, SqliteStore};
use cais_store::{Bytes, Error, KeyRange, Store};

fn open(dir: &Path, options: Options) -> SqliteStore {
    SqliteStore::open(dir, options).expect("open the store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(open(dir.path(), Options::default()));
    let clients = 256;
    let rounds = 10;
    let before = store.stats();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let key = format!("/g/{c}");
                let mut revisions = Vec::new();
                let mut rev = 0;
                for i in 0..rounds {
                    let value = Bytes::from(format!("{c}-{i}"));
                    rev = if i == 0 {
                        store.create(key.as_bytes(), value, None).await
                    } else {
                        store.update(key.as_bytes(), value, rev, None).await
                    }
                    .expect("write");
                    revisions.push(rev);
                }
                (key, revisions)
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        let (key, revisions) = task.await.expect("client");
        // Acknowledged means committed: readable at once.
        let kv = store
            .get(key.as_bytes(), 0)
            .await
            .expect("get")
            .kv
            .expect("present");
        assert_eq!(kv.mod_revision, *revisions.last().expect("writes"));
        all.extend(revisions);
    }
    all.sort_unstable();
    let writes = (clients * rounds) as u64;
    let first = all[0];
    assert_eq!(
        all,
        (first..first + writes as i64).collect::<Vec<_>>(),
        "no gaps"
    );
    let stats = store.stats();
    assert_eq!(stats.writes - before.writes, writes);
    let commits = stats.commits - before.commits;
    // Each of the 256 clients waits for its write before sending the next,
    // so batches fill up with whoever is waiting; one sync per write would
    // be 2,560 commits.
    assert!(
        commits * 4 <= writes,
        "{writes} writes took {commits} commits: writes are not grouped"
    );
}

#[tokio::test]
async fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), Options::default());
    match SqliteStore::open(dir.path(), Options::default()) {
        Err(Error::Locked { path }) => assert_eq!(path, dir.path()),
        Err(other) => panic!("expected Locked, got {other}"),
        Ok(_) => panic!("a second store opened the same directory"),
    }
    store
        .create(b"/a", Bytes::from_static(b"x"), None)
        .await
        .expect("the first still works");
    drop(store);
    let again = open(dir.path(), Options::default());
    assert!(again.get(b"/a", 0).await.expect("get").kv.is_some());
}

#[tokio::test]
async fn the_store_files_are_private() {
    let parent = tempfile::tempdir().expect("tempdir");
    let dir = parent.path().join("store");
    let store = open(&dir, Options::default());
    store
        .create(b"/secret", Bytes::from_static(b"x"), None)
        .await
        .expect("create");
    let mode = |path: &Path| std::fs::metadata(path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    for file in ["store.db", "store.db-wal", "store.db-shm", "lock"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
}

#[tokio::test]
async fn an_unknown_schema_version_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(open(dir.path(), Options::default()));
    let conn = rusqlite::Connection::open(dir.path().join("store.db")).expect("sqlite");
    conn.execute(
        "UPDATE meta SET value = 99 WHERE name = 'schema_version'",
        [],
    )
    .expect("update");
    drop(conn);
    match SqliteStore::open(dir.path(), Options::default()) {
        Err(Error::SchemaVersion { found, known, .. }) => assert_eq!((found, known), (99, 1)),
        Err(other) => panic!("expected SchemaVersion, got {other}"),
        Ok(_) => panic!("opened a store of an unknown schema"),
    }
}

#[tokio::test]
async fn oversized_keys_and_values_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = Options {
        max_key_bytes: 16,
        max_value_bytes: 1024,
        ..Options::default()
    };
    let store = open(dir.path(), options);
    let long_key = [b'k'; 17];
    assert!(matches!(
        store.create(&long_key, Bytes::new(), None).await,
        Err(Error::InvalidArgument { .. })
    ));
    let big = Bytes::from(vec![0u8; 1025]);
    assert!(matches!(
        store.create(b"/k", big.clone(), None).await,
        Err(Error::InvalidArgument { .. })
    ));
    let rev = store
        .create(b"/k", Bytes::from_static(b"small"), None)
        .await
        .expect("create");
    assert!(matches!(
        store.update(b"/k", big, rev, None).await,
        Err(Error::InvalidArgument { .. })
    ));
    assert_eq!(store.current_revision().await.expect("revision"), rev);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_compaction_keeps_the_retention_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = Options {
        retention: Some(Retention {
            revisions: 20,
            age: Duration::ZERO,
            interval: Duration::from_millis(20),
        }),
        ..Options::default()
    };
    let store = open(dir.path(), options);
    let mut rev = store
        .create(b"/k", Bytes::from_static(b"0"), None)
        .await
        .expect("create");
    for i in 1..200 {
        rev = store
            .update(b"/k", Bytes::from(i.to_string()), rev, None)
            .await
            .expect("update");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.compacted_revision() != rev - 20 {
        assert!(
            Instant::now() < deadline,
            "compacted to {}, not {}",
            store.compacted_revision(),
            rev - 20
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(matches!(
        store.get(b"/k", rev - 21).await,
        Err(Error::Compacted { .. })
    ));
    for back in 0..=20 {
        let kv = store
            .get(b"/k", rev - back)
            .await
            .expect("within the window")
            .kv
            .expect("present");
        assert_eq!(kv.mod_revision, rev - back);
    }
    // The removed history leaves the table too, right after: the rows of
    // the 21 revisions kept (the key's row at the compaction point among
    // them) and no other.
    let conn = rusqlite::Connection::open(dir.path().join("store.db")).expect("sqlite");
    let rows = || -> i64 {
        conn.query_row("SELECT COUNT(*) FROM log", [], |row| row.get(0))
            .expect("count")
    };
    while rows() != 21 {
        assert!(Instant::now() < deadline, "{} rows left", rows());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let oldest: i64 = conn
        .query_row("SELECT MIN(rev) FROM log", [], |row| row.get(0))
        .expect("min");
    assert_eq!(oldest, rev - 20);
}

/// A tmpfs of `bytes` mounted on a fresh directory, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(bytes: usize) -> SmallDisk {
        let dir = tempfile::tempdir().expect("tempdir");
        nix::mount::mount(
            Some("tmpfs"),
            dir.path(),
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(format!("size={bytes}").as_str()),
        )
        .expect("mount a tmpfs");
        SmallDisk { dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(self.dir.path(), nix::mount::MntFlags::MNT_DETACH);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_writes_and_keeps_acknowledged_ones() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !cais_testkit::require("running as root (to mount a small tmpfs)", root) {
        return;
    }
    let disk = SmallDisk::mount(2 << 20);
    let dir = disk.dir.path().join("store");
    let store = Arc::new(open(&dir, Options::default()));
    // Eight concurrent writers, so the failing commit holds several writes.
    let tasks: Vec<_> = (0..8)
        .map(|w| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0.. {
                    let key = format!("/full/{w}/{i}");
                    let value = Bytes::from(vec![w as u8; 16 << 10]);
                    match store.create(key.as_bytes(), value, None).await {
                        Ok(rev) => acked.push((rev, key)),
                        Err(error) => return (acked, error),
                    }
                }
                unreachable!("the loop only ends by returning")
            })
        })
        .collect();
    let mut acked = Vec::new();
    for task in tasks {
        let (writes, error) = task.await.expect("writer");
        assert!(
            matches!(error, Error::Sqlite { .. }),
            "a disk error, not {error}"
        );
        assert!(
            error.to_string().contains("commit") || error.to_string().contains("append"),
            "the error says what failed: {error}"
        );
        acked.extend(writes);
    }
    assert!(
        acked.len() > 10,
        "the disk held some writes before it filled"
    );
    let last = acked.iter().map(|(rev, _)| *rev).max().expect("writes");
    assert_eq!(
        store.current_revision().await.expect("revision"),
        last,
        "no revision was lost or skipped"
    );
    drop(store);

    let store = open(&dir, Options::default());
    assert_eq!(store.current_revision().await.expect("revision"), last);
    let listed = store
        .list(&KeyRange::prefix(Bytes::from_static(b"/full/")), 0, 0)
        .await
        .expect("list");
    assert_eq!(
        listed.kvs.len(),
        acked.len(),
        "exactly the acknowledged writes"
    );
    for (rev, key) in &acked {
        let kv = store
            .get(key.as_bytes(), 0)
            .await
            .expect("get")
            .kv
            .expect("acknowledged");
        assert_eq!(kv.mod_revision, *rev);
    }
    // With room again, writing goes on from the next revision.
    nix::mount::mount(
        None::<&str>,
        disk.dir.path(),
        None::<&str>,
        nix::mount::MsFlags::MS_REMOUNT,
        Some("size=8m"),
    )
    .expect("grow the tmpfs");
    let rev = store
        .create(b"/after", Bytes::from_static(b"x"), None)
        .await
        .expect("a write with room");
    assert_eq!(rev, last + 1);
}
