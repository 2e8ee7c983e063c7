//! The store's conformance suite: one function per behaviour of the
//! [`Store`] interface, each run against every backend (see `main.rs`).
//!
//! A backend fixture hands each test a fresh store of its own, so tests may
//! reason about exact revisions; they only ever do so relative to the
//! revision they find (an empty etcd starts at 1, the embedded store at 0).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cais_store::{Bytes, Error, Event, KeyRange, KeyValue, Store, Watch, WatchBatch};

/// How a test gets its store.
#[async_trait]
pub trait Backend: Send + Sync {
    /// The first call creates a fresh, empty store that only this test
    /// uses; later calls, once every handle to the previous one is gone,
    /// open the same store again, as a restarted server would.
    async fn open(&self) -> Arc<dyn Store>;
}

/// Long enough for anything that should happen to happen on a loaded
/// 2-core machine; a test waiting this long has found a bug.
const PATIENCE: Duration = Duration::from_secs(30);

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn create(store: &dyn Store, key: &str, value: &str) -> i64 {
    store
        .create(key.as_bytes(), b(value), None)
        .await
        .unwrap_or_else(|e| panic!("create {key}: {e}"))
}

async fn update(store: &dyn Store, key: &str, value: &str, expected: i64) -> i64 {
    store
        .update(key.as_bytes(), b(value), expected, None)
        .await
        .unwrap_or_else(|e| panic!("update {key}: {e}"))
}

async fn value_of(store: &dyn Store, key: &str) -> Option<Bytes> {
    store
        .get(key.as_bytes(), 0)
        .await
        .expect("get")
        .kv
        .map(|kv| kv.value)
}

async fn keys_and_values(
    store: &dyn Store,
    range: &KeyRange,
    revision: i64,
) -> Vec<(Bytes, Bytes)> {
    store
        .list(range, 0, revision)
        .await
        .expect("list")
        .kvs
        .into_iter()
        .map(|kv| (kv.key, kv.value))
        .collect()
}

/// The next batch, failing the test if none comes.
async fn next_batch(watch: &mut Watch) -> WatchBatch {
    tokio::time::timeout(PATIENCE, watch.next())
        .await
        .expect("a watch batch in time")
        .expect("the watch goes on")
        .expect("no watch error")
}

/// Exactly `n` events, checking that batches never split or repeat a
/// revision and that every event is covered by its batch's revision.
async fn events(watch: &mut Watch, n: usize) -> Vec<Event> {
    let mut events: Vec<Event> = Vec::new();
    let mut last_batch = i64::MIN;
    while events.len() < n {
        let batch = next_batch(watch).await;
        assert!(batch.revision > last_batch, "batch revisions go up");
        for event in &batch.events {
            assert!(
                event.revision() <= batch.revision,
                "an event after its batch's revision"
            );
            assert!(
                event.revision() > last_batch,
                "an event repeated or out of order across batches"
            );
        }
        last_batch = batch.revision;
        events.extend(batch.events);
    }
    assert_eq!(events.len(), n, "more events than written");
    events
}

/// The next item must be `Compacted`, and then the watch ends.
async fn expect_compacted(watch: &mut Watch) -> (i64, i64) {
    loop {
        match tokio::time::timeout(PATIENCE, watch.next())
            .await
            .expect("an answer in time")
        {
            Some(Ok(batch)) if batch.events.is_empty() => continue,
            Some(Ok(batch)) => panic!("expected compacted, got events {:?}", batch.events),
            Some(Err(Error::Compacted {
                requested,
                compacted,
            })) => {
                assert!(
                    tokio::time::timeout(PATIENCE, watch.next())
                        .await
                        .expect("end in time")
                        .is_none(),
                    "a watch ends after its error"
                );
                return (requested, compacted);
            }
            Some(Err(other)) => panic!("expected compacted, got {other}"),
            None => panic!("the watch ended without an error"),
        }
    }
}

fn put_of(event: &Event) -> (&KeyValue, Option<&KeyValue>) {
    match event {
        Event::Put { kv, prev } => (kv, prev.as_ref()),
        Event::Delete { key, .. } => panic!("expected a put, got a delete of {key:?}"),
    }
}

// ---- create, get, update, delete ------------------------------------------

pub async fn create_then_get(backend: &dyn Backend) {
    let store = backend.open().await;
    let before = store.current_revision().await.expect("revision");
    let rev = create(&*store, "/a", "one").await;
    assert_eq!(rev, before + 1);
    assert_eq!(store.current_revision().await.expect("revision"), rev);
    let got = store.get(b"/a", 0).await.expect("get");
    assert_eq!(got.revision, rev);
    assert_eq!(
        got.kv,
        Some(KeyValue {
            key: b("/a"),
            value: b("one"),
            create_revision: rev,
            mod_revision: rev,
        })
    );
}

pub async fn create_existing_key_fails(backend: &dyn Backend) {
    let store = backend.open().await;
    let rev = create(&*store, "/a", "one").await;
    match store.create(b"/a", b("two"), None).await {
        Err(Error::AlreadyExists { key }) => assert_eq!(key, b("/a")),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(value_of(&*store, "/a").await, Some(b("one")));
    assert_eq!(store.current_revision().await.expect("revision"), rev);
}

pub async fn get_missing_key_is_none(backend: &dyn Backend) {
    let store = backend.open().await;
    create(&*store, "/a", "one").await;
    let got = store.get(b"/b", 0).await.expect("get");
    assert_eq!(got.kv, None);
    assert_eq!(
        got.revision,
        store.current_revision().await.expect("revision")
    );
}

pub async fn update_at_the_current_revision(backend: &dyn Backend) {
    let store = backend.open().await;
    let created = create(&*store, "/a", "one").await;
    let updated = update(&*store, "/a", "two", created).await;
    assert_eq!(updated, created + 1);
    let kv = store.get(b"/a", 0).await.expect("get").kv.expect("present");
    assert_eq!(kv.value, b("two"));
    assert_eq!(
        kv.create_revision, created,
        "an update keeps the create revision"
    );
    assert_eq!(kv.mod_revision, updated);
}

pub async fn update_at_a_stale_revision_conflicts(backend: &dyn Backend) {
    let store = backend.open().await;
    let created = create(&*store, "/a", "one").await;
    let updated = update(&*store, "/a", "two", created).await;
    match store.update(b"/a", b("three"), created, None).await {
        Err(Error::Conflict {
            key,
            expected,
            current,
        }) => {
            assert_eq!(key, b("/a"));
            assert_eq!(expected, created);
            assert_eq!(
                *current,
                KeyValue {
                    key: b("/a"),
                    value: b("two"),
                    create_revision: created,
                    mod_revision: updated,
                },
                "a conflict carries the current value"
            );
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(value_of(&*store, "/a").await, Some(b("two")));
    assert_eq!(store.current_revision().await.expect("revision"), updated);
}

pub async fn update_of_a_missing_key_is_not_found(backend: &dyn Backend) {
    let store = backend.open().await;
    let rev = create(&*store, "/a", "one").await;
    match store.update(b"/b", b("x"), rev, None).await {
        Err(Error::NotFound { key }) => assert_eq!(key, b("/b")),
        other => panic!("expected NotFound, got {other:?}"),
    }
    store.delete(b"/a", Some(rev)).await.expect("delete");
    assert!(
        matches!(
            store.update(b"/a", b("x"), rev, None).await,
            Err(Error::NotFound { .. })
        ),
        "a deleted key is not found"
    );
}

pub async fn delete_returns_the_deleted_value(backend: &dyn Backend) {
    let store = backend.open().await;
    let a = create(&*store, "/a", "one").await;
    let deleted = store.delete(b"/a", Some(a)).await.expect("delete");
    assert_eq!(deleted.revision, a + 1);
    assert_eq!(
        deleted.kv,
        KeyValue {
            key: b("/a"),
            value: b("one"),
            create_revision: a,
            mod_revision: a,
        }
    );
    assert_eq!(value_of(&*store, "/a").await, None);
    // Without an expected revision, whatever the key's revision is.
    let b_rev = create(&*store, "/b", "two").await;
    update(&*store, "/b", "three", b_rev).await;
    let deleted = store
        .delete(b"/b", None)
        .await
        .expect("unconditional delete");
    assert_eq!(deleted.kv.value, b("three"));
    assert_eq!(value_of(&*store, "/b").await, None);
}

pub async fn delete_at_a_stale_revision_conflicts(backend: &dyn Backend) {
    let store = backend.open().await;
    let created = create(&*store, "/a", "one").await;
    let updated = update(&*store, "/a", "two", created).await;
    match store.delete(b"/a", Some(created)).await {
        Err(Error::Conflict { current, .. }) => {
            assert_eq!(current.mod_revision, updated);
            assert_eq!(current.value, b("two"));
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(value_of(&*store, "/a").await, Some(b("two")));
}

pub async fn delete_of_a_missing_key_is_not_found(backend: &dyn Backend) {
    let store = backend.open().await;
    let before = store.current_revision().await.expect("revision");
    assert!(matches!(
        store.delete(b"/nothing", None).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.delete(b"/nothing", Some(1)).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(store.current_revision().await.expect("revision"), before);
}

pub async fn create_after_delete_starts_a_new_life(backend: &dyn Backend) {
    let store = backend.open().await;
    let first = create(&*store, "/a", "one").await;
    store.delete(b"/a", Some(first)).await.expect("delete");
    let second = create(&*store, "/a", "two").await;
    assert_eq!(second, first + 2);
    let kv = store.get(b"/a", 0).await.expect("get").kv.expect("present");
    assert_eq!(kv.create_revision, second);
    assert_eq!(kv.value, b("two"));
}

pub async fn failed_writes_take_no_revision(backend: &dyn Backend) {
    let store = backend.open().await;
    let start = store.current_revision().await.expect("revision");
    let a = create(&*store, "/a", "1").await;
    assert!(store.create(b"/a", b("x"), None).await.is_err());
    assert!(store.update(b"/a", b("x"), a + 100, None).await.is_err());
    assert!(store.delete(b"/zzz", None).await.is_err());
    let a2 = update(&*store, "/a", "2", a).await;
    let deleted = store.delete(b"/a", Some(a2)).await.expect("delete");
    assert_eq!(
        [a, a2, deleted.revision],
        [start + 1, start + 2, start + 3],
        "each successful write takes the next revision, failures none"
    );
}

pub async fn keys_and_values_are_bytes(backend: &dyn Backend) {
    let store = backend.open().await;
    let key: &[u8] = b"/bin/\x00\xff\x01";
    let big = Bytes::from((0..(1 << 20)).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    store
        .create(key, big.clone(), None)
        .await
        .expect("create binary");
    store
        .create(b"/bin/empty", Bytes::new(), None)
        .await
        .expect("create empty");
    assert_eq!(
        store
            .get(key, 0)
            .await
            .expect("get")
            .kv
            .expect("present")
            .value,
        big
    );
    let empty = store
        .get(b"/bin/empty", 0)
        .await
        .expect("get")
        .kv
        .expect("present");
    assert!(empty.value.is_empty());
    let listed = store
        .list(&KeyRange::prefix(b("/bin/")), 0, 0)
        .await
        .expect("list");
    let keys: Vec<&[u8]> = listed.kvs.iter().map(|kv| &kv.key[..]).collect();
    assert_eq!(
        keys,
        vec![key, b"/bin/empty"],
        "byte order: 0x00 sorts before 'e'"
    );
}

pub async fn invalid_requests_are_refused(backend: &dyn Backend) {
    let store = backend.open().await;
    let before = store.current_revision().await.expect("revision");
    assert!(matches!(
        store.create(b"", b("x"), None).await,
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        store.get(b"/a", -1).await,
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        store.watch(&KeyRange::prefix(b("/")), -5).await,
        Err(Error::InvalidArgument { .. })
    ));
    assert_eq!(store.current_revision().await.expect("revision"), before);
}

// ---- reads: list, ranges, revisions, count --------------------------------

pub async fn list_returns_a_prefix_in_key_order(backend: &dyn Backend) {
    let store = backend.open().await;
    for key in [
        "/pods/ns/c",
        "/pods/ns/a",
        "/pods/other/b",
        "/pods",
        "/pods0",
        "/services/x",
    ] {
        create(&*store, key, key).await;
    }
    let d = create(&*store, "/pods/ns/d", "d").await;
    store.delete(b"/pods/ns/d", Some(d)).await.expect("delete");
    let listed = store
        .list(&KeyRange::prefix(b("/pods/")), 0, 0)
        .await
        .expect("list");
    let keys: Vec<Bytes> = listed.kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(
        keys,
        vec![b("/pods/ns/a"), b("/pods/ns/c"), b("/pods/other/b")]
    );
    assert!(!listed.more);
    assert_eq!(
        listed.revision,
        store.current_revision().await.expect("revision")
    );
    for kv in &listed.kvs {
        assert_eq!(kv.value, kv.key, "each key with its own value");
    }
}

pub async fn list_range_includes_start_and_excludes_end(backend: &dyn Backend) {
    let store = backend.open().await;
    for key in ["/a", "/b", "/c", "/d"] {
        create(&*store, key, key).await;
    }
    let range = KeyRange::new(b("/b"), Some(b("/d")));
    let keys: Vec<Bytes> = keys_and_values(&*store, &range, 0)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, vec![b("/b"), b("/c")]);
    let open_ended = KeyRange::new(b("/c"), None);
    let keys: Vec<Bytes> = keys_and_values(&*store, &open_ended, 0)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, vec![b("/c"), b("/d")]);
}

pub async fn list_pages_stay_at_the_first_page_revision(backend: &dyn Backend) {
    let store = backend.open().await;
    let range = KeyRange::prefix(b("/p/"));
    let mut revisions = BTreeMap::new();
    for i in 0..25 {
        let key = format!("/p/{i:02}");
        revisions.insert(key.clone(), create(&*store, &key, "v1").await);
    }
    let expected = keys_and_values(&*store, &range, 0).await;

    let first = store.list(&range, 10, 0).await.expect("first page");
    assert_eq!(first.kvs.len(), 10);
    assert!(first.more);
    // The store changes between pages: a key on a later page is deleted,
    // one is updated, one is added.
    store.delete(b"/p/22", None).await.expect("delete");
    update(&*store, "/p/15", "v2", revisions["/p/15"]).await;
    create(&*store, "/p/99", "new").await;

    let mut pages = vec![first.clone()];
    while pages.last().expect("a page").more {
        let last_key = pages
            .last()
            .expect("a page")
            .kvs
            .last()
            .expect("a key")
            .key
            .clone();
        let page = store
            .list(&range.after(&last_key), 10, first.revision)
            .await
            .expect("next page");
        assert_eq!(
            page.revision, first.revision,
            "pages read at the first page's revision"
        );
        pages.push(page);
    }
    assert_eq!(
        pages.iter().map(|p| p.kvs.len()).collect::<Vec<_>>(),
        vec![10, 10, 5]
    );
    let paged: Vec<(Bytes, Bytes)> = pages
        .into_iter()
        .flat_map(|p| p.kvs)
        .map(|kv| (kv.key, kv.value))
        .collect();
    assert_eq!(
        paged, expected,
        "the pages are the store as it was at the first page"
    );
    // And now the store is what the writes made it.
    let now = keys_and_values(&*store, &range, 0).await;
    assert_eq!(now.len(), 25);
    assert!(now.contains(&(b("/p/15"), b("v2"))));
    assert!(now.contains(&(b("/p/99"), b("new"))));
}

pub async fn list_limit_exactly_the_number_of_keys_has_no_more(backend: &dyn Backend) {
    let store = backend.open().await;
    for key in ["/l/a", "/l/b", "/l/c"] {
        create(&*store, key, "x").await;
    }
    let page = store
        .list(&KeyRange::prefix(b("/l/")), 3, 0)
        .await
        .expect("list");
    assert_eq!(page.kvs.len(), 3);
    assert!(!page.more);
    let page = store
        .list(&KeyRange::prefix(b("/l/")), 2, 0)
        .await
        .expect("list");
    assert_eq!(page.kvs.len(), 2);
    assert!(page.more);
}

pub async fn reads_at_an_old_revision_see_the_old_state(backend: &dyn Backend) {
    let store = backend.open().await;
    let range = KeyRange::prefix(b("/o/"));
    let a = create(&*store, "/o/a", "a1").await;
    let b_rev = create(&*store, "/o/b", "b1").await;
    let snapshot = store.current_revision().await.expect("revision");
    update(&*store, "/o/a", "a2", a).await;
    store.delete(b"/o/b", Some(b_rev)).await.expect("delete");
    create(&*store, "/o/c", "c1").await;

    assert_eq!(
        keys_and_values(&*store, &range, snapshot).await,
        vec![(b("/o/a"), b("a1")), (b("/o/b"), b("b1"))]
    );
    assert_eq!(
        keys_and_values(&*store, &range, 0).await,
        vec![(b("/o/a"), b("a2")), (b("/o/c"), b("c1"))]
    );
    let old = store.get(b"/o/b", snapshot).await.expect("get");
    assert_eq!(old.revision, snapshot);
    assert_eq!(old.kv.expect("present then").value, b("b1"));
    assert_eq!(
        store
            .get(b"/o/a", a)
            .await
            .expect("get")
            .kv
            .expect("present")
            .mod_revision,
        a
    );
    assert_eq!(
        store.get(b"/o/c", snapshot).await.expect("get").kv,
        None,
        "not yet created"
    );
}

pub async fn reads_ahead_of_the_store_fail(backend: &dyn Backend) {
    let store = backend.open().await;
    let rev = create(&*store, "/a", "x").await;
    assert!(matches!(
        store.get(b"/a", rev + 1).await,
        Err(Error::FutureRevision { requested, .. }) if requested == rev + 1
    ));
    assert!(matches!(
        store.list(&KeyRange::prefix(b("/")), 0, rev + 10).await,
        Err(Error::FutureRevision { .. })
    ));
}

pub async fn count_counts_the_live_keys_of_a_range(backend: &dyn Backend) {
    let store = backend.open().await;
    for key in ["/c/a", "/c/b", "/c/c", "/d/a"] {
        create(&*store, key, "x").await;
    }
    store.delete(b"/c/b", None).await.expect("delete");
    let counted = store
        .count(&KeyRange::prefix(b("/c/")))
        .await
        .expect("count");
    assert_eq!(counted.count, 2);
    assert_eq!(
        counted.revision,
        store.current_revision().await.expect("revision")
    );
    assert_eq!(
        store
            .count(&KeyRange::prefix(b("/e/")))
            .await
            .expect("count")
            .count,
        0
    );
}

// ---- compaction -------------------------------------------------------------

pub async fn compaction_makes_older_revisions_too_old(backend: &dyn Backend) {
    let store = backend.open().await;
    let mut rev = create(&*store, "/k", "0").await;
    for i in 1..10 {
        rev = update(&*store, "/k", &i.to_string(), rev).await;
    }
    let at = rev - 4;
    store.compact(at).await.expect("compact");
    match store.get(b"/k", at - 1).await {
        Err(Error::Compacted {
            requested,
            compacted,
        }) => assert_eq!((requested, compacted), (at - 1, at)),
        other => panic!("expected Compacted, got {other:?}"),
    }
    assert!(matches!(
        store.list(&KeyRange::prefix(b("/")), 0, at - 1).await,
        Err(Error::Compacted { .. })
    ));
    let kept = store
        .get(b"/k", at)
        .await
        .expect("the compaction revision stays readable");
    assert_eq!(kept.kv.expect("present").value, b("5"));
    assert!(
        matches!(store.compact(at).await, Err(Error::Compacted { .. })),
        "compacting again"
    );
    assert!(matches!(
        store.compact(at - 2).await,
        Err(Error::Compacted { .. })
    ));
    assert!(matches!(
        store.compact(rev + 1).await,
        Err(Error::FutureRevision { .. })
    ));
}

pub async fn compaction_keeps_the_state_at_and_after_it(backend: &dyn Backend) {
    let store = backend.open().await;
    let range = KeyRange::prefix(b("/s/"));
    let mut current: BTreeMap<String, i64> = BTreeMap::new();
    let mut states = BTreeMap::new();
    // Creates, updates and deletes interleaved over 20 keys.
    for step in 0..300u32 {
        let key = format!("/s/{:02}", step * 7 % 20);
        match current.get(&key).copied() {
            None => {
                current.insert(key.clone(), create(&*store, &key, &step.to_string()).await);
            }
            Some(rev) if step % 5 == 0 => {
                store
                    .delete(key.as_bytes(), Some(rev))
                    .await
                    .expect("delete");
                current.remove(&key);
            }
            Some(rev) => {
                current.insert(
                    key.clone(),
                    update(&*store, &key, &step.to_string(), rev).await,
                );
            }
        }
        if step % 50 == 49 {
            let rev = store.current_revision().await.expect("revision");
            states.insert(rev, keys_and_values(&*store, &range, rev).await);
        }
    }
    let middle = *states.keys().nth(2).expect("six states");
    store.compact(middle).await.expect("compact");
    // Give a backend that removes rows in the background time to do so,
    // while more writes go through.
    let extra = create(&*store, "/t/after", "x").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    store
        .delete(b"/t/after", Some(extra))
        .await
        .expect("delete");
    for (rev, state) in &states {
        if *rev < middle {
            assert!(matches!(
                store.list(&range, 0, *rev).await,
                Err(Error::Compacted { .. })
            ));
        } else {
            assert_eq!(
                &keys_and_values(&*store, &range, *rev).await,
                state,
                "state at {rev}"
            );
        }
    }
}

// ---- watch --------------------------------------------------------------------

pub async fn watch_from_now_sees_only_later_changes(backend: &dyn Backend) {
    let store = backend.open().await;
    create(&*store, "/w/before", "x").await;
    let mut watch = store
        .watch(&KeyRange::prefix(b("/w/")), 0)
        .await
        .expect("watch");
    let rev = create(&*store, "/w/after", "y").await;
    let seen = events(&mut watch, 1).await;
    let (kv, prev) = put_of(&seen[0]);
    assert_eq!(
        (kv.key.clone(), kv.value.clone(), kv.mod_revision),
        (b("/w/after"), b("y"), rev)
    );
    assert_eq!(kv.create_revision, rev);
    assert_eq!(prev, None);
}

pub async fn watch_from_a_past_revision_replays_history(backend: &dyn Backend) {
    let store = backend.open().await;
    let a = create(&*store, "/h/a", "1").await;
    let a2 = update(&*store, "/h/a", "2", a).await;
    let bb = create(&*store, "/h/b", "1").await;
    let deleted = store.delete(b"/h/a", Some(a2)).await.expect("delete");
    let mut watch = store
        .watch(&KeyRange::prefix(b("/h/")), a)
        .await
        .expect("watch");
    let seen = events(&mut watch, 4).await;
    let kv = |key: &str, value: &str, create_revision, mod_revision| KeyValue {
        key: b(key),
        value: b(value),
        create_revision,
        mod_revision,
    };
    assert_eq!(
        seen,
        vec![
            Event::Put {
                kv: kv("/h/a", "1", a, a),
                prev: None
            },
            Event::Put {
                kv: kv("/h/a", "2", a, a2),
                prev: Some(kv("/h/a", "1", a, a))
            },
            Event::Put {
                kv: kv("/h/b", "1", bb, bb),
                prev: None
            },
            Event::Delete {
                key: b("/h/a"),
                revision: deleted.revision,
                prev: Some(kv("/h/a", "2", a, a2))
            },
        ]
    );
    // Then it goes on live, with the previous values too.
    let b2 = update(&*store, "/h/b", "2", bb).await;
    let live = events(&mut watch, 1).await;
    assert_eq!(
        live,
        vec![Event::Put {
            kv: kv("/h/b", "2", bb, b2),
            prev: Some(kv("/h/b", "1", bb, bb))
        }]
    );
}

pub async fn watch_events_carry_previous_values(backend: &dyn Backend) {
    let store = backend.open().await;
    let mut watch = store
        .watch(&KeyRange::prefix(b("/v/")), 0)
        .await
        .expect("watch");
    let created = create(&*store, "/v/a", "1").await;
    let updated = update(&*store, "/v/a", "2", created).await;
    store.delete(b"/v/a", None).await.expect("delete");
    let seen = events(&mut watch, 3).await;
    assert_eq!(seen[0].prev(), None, "a create replaces nothing");
    let prev = seen[1].prev().expect("an update's previous value");
    assert_eq!((prev.value.clone(), prev.mod_revision), (b("1"), created));
    let prev = seen[2].prev().expect("a delete's previous value");
    assert_eq!((prev.value.clone(), prev.mod_revision), (b("2"), updated));
    assert!(matches!(seen[2], Event::Delete { .. }));
}

pub async fn watch_sees_only_its_range(backend: &dyn Backend) {
    let store = backend.open().await;
    let mut watch = store
        .watch(&KeyRange::new(b("/r/b"), Some(b("/r/d"))), 0)
        .await
        .expect("watch");
    for key in ["/r/a", "/r/b", "/r/c", "/r/d", "/x"] {
        create(&*store, key, "v").await;
    }
    let keys: Vec<Bytes> = events(&mut watch, 2)
        .await
        .iter()
        .map(|e| e.key().clone())
        .collect();
    assert_eq!(keys, vec![b("/r/b"), b("/r/c")]);
    // Nothing else is pending: a progress request comes back empty.
    watch.request_progress().await.expect("progress");
    let batch = next_batch(&mut watch).await;
    assert!(batch.events.is_empty(), "unexpected {:?}", batch.events);
}

pub async fn watch_is_ordered_unique_and_gapless_under_concurrent_writes(backend: &dyn Backend) {
    let store = backend.open().await;
    let start = store.current_revision().await.expect("revision") + 1;
    let mut watch = store
        .watch(&KeyRange::prefix(b("/c/")), 0)
        .await
        .expect("watch");
    let writers = 8;
    let per_writer = 60;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let key = format!("/c/{w}");
            let mut rev = create(&*store, &key, "0").await;
            let mut acked = vec![(rev, "0".to_string())];
            for i in 1..per_writer {
                let value = i.to_string();
                rev = update(&*store, &key, &value, rev).await;
                acked.push((rev, value));
            }
            (key, acked)
        }));
    }
    let mut acked = BTreeMap::new();
    for task in tasks {
        let (key, writes) = task.await.expect("writer");
        for (rev, value) in writes {
            acked.insert(rev, (b(&key), b(&value)));
        }
    }
    let total = writers * per_writer;
    let seen = events(&mut watch, total).await;
    let revisions: Vec<i64> = seen.iter().map(Event::revision).collect();
    let expected: Vec<i64> = (start..start + total as i64).collect();
    assert_eq!(
        revisions, expected,
        "every revision once, in order, no gaps"
    );
    for event in &seen {
        let (kv, _) = put_of(event);
        assert_eq!(
            acked.get(&kv.mod_revision),
            Some(&(kv.key.clone(), kv.value.clone())),
            "the watch saw what was acknowledged at that revision"
        );
    }
}

pub async fn watch_resumes_from_any_retained_revision(backend: &dyn Backend) {
    let store = backend.open().await;
    let range = KeyRange::prefix(b("/z/"));
    let first = create(&*store, "/z/a", "0").await;
    let mut rev = first;
    for i in 1..20 {
        if i % 4 == 0 {
            create(&*store, &format!("/z/{i}"), "x").await;
        } else {
            rev = update(&*store, "/z/a", &i.to_string(), rev).await;
        }
    }
    let last = store.current_revision().await.expect("revision");
    let mut full = store.watch(&range, first).await.expect("watch");
    let all = events(&mut full, (last - first + 1) as usize).await;
    for from in first..=last {
        let mut watch = store.watch(&range, from).await.expect("watch");
        let suffix = events(&mut watch, (last - from + 1) as usize).await;
        assert_eq!(
            &suffix[..],
            &all[(from - first) as usize..],
            "resumed from {from}"
        );
    }
}

pub async fn watch_from_a_compacted_revision_fails(backend: &dyn Backend) {
    let store = backend.open().await;
    let mut rev = create(&*store, "/k", "0").await;
    for i in 1..5 {
        rev = update(&*store, "/k", &i.to_string(), rev).await;
    }
    store.compact(rev - 1).await.expect("compact");
    let mut watch = store
        .watch(&KeyRange::prefix(b("/")), rev - 2)
        .await
        .expect("watch");
    let (requested, compacted) = expect_compacted(&mut watch).await;
    assert_eq!((requested, compacted), (rev - 2, rev - 1));
    // From the compaction revision itself, the history is there.
    let mut watch = store
        .watch(&KeyRange::prefix(b("/")), rev - 1)
        .await
        .expect("watch");
    let seen = events(&mut watch, 2).await;
    assert_eq!(
        seen.iter().map(Event::revision).collect::<Vec<_>>(),
        vec![rev - 1, rev]
    );
}

pub async fn many_watchers_see_the_same_changes(backend: &dyn Backend) {
    let store = backend.open().await;
    let watchers = 1000;
    let writes = 20;
    let mut watches = Vec::new();
    for _ in 0..watchers {
        watches.push(
            store
                .watch(&KeyRange::prefix(b("/m/")), 0)
                .await
                .expect("watch"),
        );
    }
    let start = store.current_revision().await.expect("revision") + 1;
    let mut rev = create(&*store, "/m/k", "0").await;
    for i in 1..writes {
        rev = update(&*store, "/m/k", &i.to_string(), rev).await;
    }
    let tasks: Vec<_> = watches
        .into_iter()
        .map(|mut watch| tokio::spawn(async move { events(&mut watch, writes).await }))
        .collect();
    let expected: Vec<i64> = (start..start + writes as i64).collect();
    for task in tasks {
        let seen = task.await.expect("watcher");
        assert_eq!(
            seen.iter().map(Event::revision).collect::<Vec<_>>(),
            expected
        );
    }
}

/// Writes `n` revisions one by one (each its own commit) to `key`.
async fn write_many(store: &dyn Store, key: &str, n: usize) -> i64 {
    let mut rev = create(store, key, "0").await;
    for i in 1..n {
        rev = update(store, key, &i.to_string(), rev).await;
    }
    rev
}

pub async fn slow_watcher_catches_up_from_history(backend: &dyn Backend) {
    let store = backend.open().await;
    let start = store.current_revision().await.expect("revision") + 1;
    let mut watch = store
        .watch(&KeyRange::prefix(b("/slow/")), 0)
        .await
        .expect("watch");
    // Far more commits than a watch buffers, none of them read meanwhile.
    let n = 3000;
    write_many(&*store, "/slow/k", n).await;
    let seen = events(&mut watch, n).await;
    let expected: Vec<i64> = (start..start + n as i64).collect();
    assert_eq!(
        seen.iter().map(Event::revision).collect::<Vec<_>>(),
        expected
    );
    for (i, event) in seen.iter().enumerate() {
        assert_eq!(put_of(event).0.value, b(&i.to_string()));
    }
}

pub async fn slow_watcher_behind_compaction_is_told_to_list_again(backend: &dyn Backend) {
    let store = backend.open().await;
    let start = store.current_revision().await.expect("revision") + 1;
    let mut watch = store
        .watch(&KeyRange::prefix(b("/slow/")), 0)
        .await
        .expect("watch");
    let n = 3000;
    let last = write_many(&*store, "/slow/k", n).await;
    store.compact(last).await.expect("compact");
    // Whatever the backend still had buffered may come first, without gaps;
    // then the typed error, never a silent jump.
    let mut next = start;
    loop {
        match tokio::time::timeout(PATIENCE, watch.next())
            .await
            .expect("an answer in time")
        {
            Some(Ok(batch)) => {
                for event in batch.events {
                    assert_eq!(event.revision(), next, "no gap before the error");
                    next += 1;
                }
            }
            Some(Err(Error::Compacted { compacted, .. })) => {
                assert_eq!(compacted, last);
                break;
            }
            Some(Err(other)) => panic!("expected Compacted, got {other}"),
            None => panic!("the watch ended without an error"),
        }
    }
    assert!(
        next < last,
        "the watcher cannot have seen everything it was sent"
    );
}

pub async fn progress_request_reports_how_far_the_watch_has_seen(backend: &dyn Backend) {
    let store = backend.open().await;
    let mut watch = store
        .watch(&KeyRange::prefix(b("/mine/")), 0)
        .await
        .expect("watch");
    let mine = create(&*store, "/mine/a", "x").await;
    let seen = events(&mut watch, 1).await;
    assert_eq!(seen[0].revision(), mine);
    // Changes outside the range move the store on, not the watch's events.
    let mut other = 0;
    for i in 0..5 {
        other = create(&*store, &format!("/other/{i}"), "x").await;
    }
    watch.request_progress().await.expect("progress");
    let batch = next_batch(&mut watch).await;
    assert!(batch.events.is_empty());
    assert_eq!(
        batch.revision, other,
        "progress covers the revisions it filtered out"
    );
}

pub async fn leases_expire_keys(backend: &dyn Backend) {
    let store = backend.open().await;
    let mut watch = store
        .watch(&KeyRange::prefix(b("/lease/")), 0)
        .await
        .expect("watch");
    let leased = store
        .create(b"/lease/short", b("x"), Some(Duration::from_secs(1)))
        .await
        .expect("create with a lease");
    create(&*store, "/lease/forever", "y").await;
    let seen = events(&mut watch, 3).await;
    match &seen[2] {
        Event::Delete { key, prev, .. } => {
            assert_eq!(key, &b("/lease/short"));
            assert_eq!(
                prev.as_ref().expect("the expired value").mod_revision,
                leased
            );
        }
        other => panic!("expected the lease's delete, got {other:?}"),
    }
    assert_eq!(value_of(&*store, "/lease/short").await, None);
    assert_eq!(value_of(&*store, "/lease/forever").await, Some(b("y")));
}

pub async fn closing_the_store_ends_its_watches(backend: &dyn Backend) {
    let store = backend.open().await;
    let mut watch = store
        .watch(&KeyRange::prefix(b("/")), 0)
        .await
        .expect("watch");
    drop(store);
    match tokio::time::timeout(PATIENCE, watch.next())
        .await
        .expect("an answer in time")
    {
        Some(Err(Error::Closed)) => {}
        other => panic!("expected Closed, got {other:?}"),
    }
}

// ---- durability ---------------------------------------------------------------

pub async fn restart_keeps_every_acknowledged_write(backend: &dyn Backend) {
    let store = backend.open().await;
    let writers = 16;
    let per_writer = 40;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut rev = 0;
            for i in 0..per_writer {
                // Each writer keeps two keys: one it updates, one it
                // creates and deletes in turn.
                let key = format!("/d/{w}/updated");
                let value = format!("{w}-{i}");
                rev = if i == 0 {
                    create(&*store, &key, &value).await
                } else {
                    update(&*store, &key, &value, rev).await
                };
                acked.push((rev, key, Some(value)));
                let flip = format!("/d/{w}/flip");
                if i % 2 == 0 {
                    let r = create(&*store, &flip, &i.to_string()).await;
                    acked.push((r, flip, Some(i.to_string())));
                } else {
                    let deleted = store.delete(flip.as_bytes(), None).await.expect("delete");
                    acked.push((deleted.revision, flip, None));
                }
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for task in tasks {
        acked.extend(task.await.expect("writer"));
    }
    let last = acked.iter().map(|(rev, _, _)| *rev).max().expect("writes");
    let expected_state = keys_and_values(&*store, &KeyRange::prefix(b("/d/")), 0).await;
    drop(store);

    let store = backend.open().await;
    assert_eq!(store.current_revision().await.expect("revision"), last);
    assert_eq!(
        keys_and_values(&*store, &KeyRange::prefix(b("/d/")), 0).await,
        expected_state
    );
    for (rev, key, value) in &acked {
        let got = store
            .get(key.as_bytes(), *rev)
            .await
            .expect("get at the write's revision");
        match value {
            Some(value) => {
                let kv = got.kv.unwrap_or_else(|| panic!("{key} missing at {rev}"));
                assert_eq!(
                    (kv.mod_revision, kv.value),
                    (*rev, b(value)),
                    "{key} at {rev}"
                );
            }
            None => assert_eq!(got.kv, None, "{key} deleted at {rev}"),
        }
    }
    // And the history replays them all, in revision order, once each.
    let first = acked.iter().map(|(rev, _, _)| *rev).min().expect("writes");
    let mut watch = store
        .watch(&KeyRange::prefix(b("/d/")), first)
        .await
        .expect("watch");
    let seen = events(&mut watch, acked.len()).await;
    let mut by_revision: Vec<_> = acked.iter().collect();
    by_revision.sort_by_key(|(rev, _, _)| *rev);
    for (event, (rev, key, value)) in seen.iter().zip(by_revision) {
        assert_eq!((event.revision(), event.key()), (*rev, &b(key)));
        match (event, value) {
            (Event::Put { kv, .. }, Some(value)) => assert_eq!(kv.value, b(value)),
            (Event::Delete { .. }, None) => {}
            (event, value) => panic!("at {rev}: {event:?} against {value:?}"),
        }
    }
}
