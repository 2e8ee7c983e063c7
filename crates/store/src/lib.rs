//! A revisioned key-value store with watch: the orchestrator's API server
//! keeps its objects here, and an object's `resourceVersion` is the store's
//! revision. Bytes in, bytes out: no Kubernetes types.
//!
//! # The model
//!
//! The store is a log. Every successful create, update or delete is one
//! **revision**: the store's revision counter goes up by exactly one and the
//! change is recorded under it. A failed write (conflict, existing key)
//! takes no revision, so committed revisions are 1, 2, 3, … without gaps.
//! Each key carries the revision that created it (`create_revision`) and the
//! one that last modified it (`mod_revision`); optimistic concurrency is a
//! write that names the `mod_revision` it read ([`Store::update`],
//! [`Store::delete`]).
//!
//! Reads name a revision (0 is "the latest") and see the store exactly as
//! it was after that revision: a paged list keeps reading at the revision of
//! its first page, so pages never mix states. History is kept until it is
//! **compacted** ([`Store::compact`], or the backend's background
//! retention): reads and watches that need a revision before the compaction
//! point fail with [`Error::Compacted`], which tells the caller to list
//! again (the API server's `410 Gone`).
//!
//! A [`Watch`] delivers the changes of a key range from a revision on:
//! in revision order, each revision once, never split across batches, with
//! no gaps, resumable from any retained revision, and with the value a
//! change replaced ([`Event`]). A watcher that falls behind is caught up
//! from the log; only if compaction has already removed what it missed does
//! it get [`Error::Compacted`]. It never silently loses events.
//!
//! # Why async
//!
//! The caller is an API server on tokio with thousands of open watches, and
//! the multi-machine backend is etcd through an async gRPC client, so the
//! interface is async (`async_trait` keeps it object-safe: the server
//! holds an `Arc<dyn Store>` chosen at start-up). An embedded backend does
//! its blocking work on its own threads; an awaiting caller blocks no
//! runtime worker, and a write waits for its group commit without holding a
//! thread.
//!
//! # Backends
//!
//! [`sqlite::SqliteStore`] is the embedded default (its docs explain the
//! choice of SQLite, the table and the group commit). The interface is
//! shaped so that an etcd v3 client fits it unchanged: a create is a
//! transaction comparing `mod_revision == 0`, an update or delete one
//! comparing the expected `mod_revision` (`else` reading the current value
//! for the conflict), a list is a ranged get with a revision and a limit
//! (`more` maps to [`ListResult::more`]), a watch is a ranged watch with a
//! start revision, previous values and progress requests, and a TTL is a
//! granted lease.

mod error;
pub mod sqlite;

use std::time::Duration;

use async_trait::async_trait;
pub use bytes::Bytes;

pub use error::{Error, Result};

/// One key at one revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: Bytes,
    pub value: Bytes,
    /// The revision of the create that started this key's current life
    /// (a key deleted and created again starts a new one).
    pub create_revision: i64,
    /// The revision of the write that produced this value.
    pub mod_revision: i64,
}

/// A half-open range of keys `[start, end)` in byte order; no `end` means
/// every key from `start` on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange {
    start: Bytes,
    end: Option<Bytes>,
}

impl KeyRange {
    /// Every key that starts with `prefix` (the empty prefix is every key).
    pub fn prefix(prefix: impl Into<Bytes>) -> Self {
        let start = prefix.into();
        let end = prefix_end(&start);
        KeyRange { start, end }
    }

    /// Keys from `start` (inclusive) to `end` (exclusive, none: no bound).
    pub fn new(start: impl Into<Bytes>, end: Option<Bytes>) -> Self {
        KeyRange {
            start: start.into(),
            end,
        }
    }

    /// The same range, from the first key after `key`: the next page of a
    /// list whose last key was `key`.
    pub fn after(&self, key: &[u8]) -> Self {
        let mut start = Vec::with_capacity(key.len() + 1);
        start.extend_from_slice(key);
        start.push(0);
        KeyRange {
            start: Bytes::from(start),
            end: self.end.clone(),
        }
    }

    pub fn start(&self) -> &[u8] {
        &self.start
    }

    pub fn end(&self) -> Option<&[u8]> {
        self.end.as_deref()
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        key >= &self.start[..] && self.end.as_ref().is_none_or(|end| key < &end[..])
    }
}

/// The smallest key greater than every key starting with `prefix`, or none
/// when there is no such key (an empty prefix, or one of 0xff bytes only).
fn prefix_end(prefix: &[u8]) -> Option<Bytes> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(Bytes::from(end));
        }
    }
    None
}

/// The answer to [`Store::get`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetResult {
    /// The revision the store was read at.
    pub revision: i64,
    /// The key's value at that revision, if it existed then.
    pub kv: Option<KeyValue>,
}

/// The answer to [`Store::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListResult {
    /// The revision the store was read at: pass it to the next page's list.
    pub revision: i64,
    /// Keys in byte order.
    pub kvs: Vec<KeyValue>,
    /// Whether the range holds more keys after the last one returned.
    pub more: bool,
}

/// The answer to [`Store::count`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CountResult {
    pub revision: i64,
    pub count: u64,
}

/// The answer to a successful [`Store::delete`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deleted {
    /// The revision of the delete.
    pub revision: i64,
    /// The value that was deleted.
    pub kv: KeyValue,
}

/// One change, as a watch delivers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A create (then `kv.create_revision == kv.mod_revision` and `prev` is
    /// none) or an update (then `prev` is the value it replaced).
    Put {
        kv: KeyValue,
        prev: Option<KeyValue>,
    },
    /// A delete at `revision`; `prev` is the deleted value. Only for a change
    /// at exactly the compaction revision may `prev` be gone (as in etcd).
    Delete {
        key: Bytes,
        revision: i64,
        prev: Option<KeyValue>,
    },
}

impl Event {
    pub fn key(&self) -> &Bytes {
        match self {
            Event::Put { kv, .. } => &kv.key,
            Event::Delete { key, .. } => key,
        }
    }

    /// The revision this change was committed at.
    pub fn revision(&self) -> i64 {
        match self {
            Event::Put { kv, .. } => kv.mod_revision,
            Event::Delete { revision, .. } => *revision,
        }
    }

    pub fn prev(&self) -> Option<&KeyValue> {
        match self {
            Event::Put { prev, .. } | Event::Delete { prev, .. } => prev.as_ref(),
        }
    }
}

/// What a watch delivers at once: the changes of whole revisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchBatch {
    /// Every change up to and including this revision has been delivered.
    /// A batch without events is a progress notification
    /// ([`Watch::request_progress`]).
    pub revision: i64,
    /// Changes in revision order; a revision is never split across batches.
    pub events: Vec<Event>,
}

/// A backend's watch stream; [`Watch`] is what callers hold.
#[async_trait]
pub trait WatchStream: Send {
    async fn next(&mut self) -> Option<Result<WatchBatch>>;
    async fn request_progress(&mut self) -> Result<()>;
}

/// A running watch. Dropping it stops it.
pub struct Watch {
    inner: Box<dyn WatchStream>,
}

impl Watch {
    pub fn new(inner: impl WatchStream + 'static) -> Self {
        Watch {
            inner: Box::new(inner),
        }
    }

    /// The next batch of changes; `None` once the watch has ended. An error
    /// ends the watch: [`Error::Compacted`] means the changes it needed are
    /// gone (list again), [`Error::Closed`] that the store shut down.
    ///
    /// Cancel-safe: a `next` dropped before it completes (in `select!`)
    /// loses nothing; the following call delivers the same changes.
    pub async fn next(&mut self) -> Option<Result<WatchBatch>> {
        self.inner.next().await
    }

    /// Asks for a progress notification: a batch without events whose
    /// revision says how far this watch has seen (the API server's
    /// bookmark). It comes after the changes already due.
    pub async fn request_progress(&mut self) -> Result<()> {
        self.inner.request_progress().await
    }
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").finish_non_exhaustive()
    }
}

/// The store's interface, implemented by every backend.
///
/// Revisions are positive; a read's revision 0 means "the latest". Keys
/// must not be empty. A `ttl` is a lease: the key is deleted (an ordinary
/// delete, watched like any other) once it has gone that long unmodified.
#[async_trait]
pub trait Store: Send + Sync {
    /// The revision of the last committed write (0 for an empty store).
    async fn current_revision(&self) -> Result<i64>;

    /// Creates `key`; fails with [`Error::AlreadyExists`] if it exists.
    /// Returns the write's revision.
    async fn create(&self, key: &[u8], value: Bytes, ttl: Option<Duration>) -> Result<i64>;

    /// `key` as of `revision` (0: the latest).
    async fn get(&self, key: &[u8], revision: i64) -> Result<GetResult>;

    /// The keys in `range` as of `revision` (0: the latest), in key order,
    /// at most `limit` of them (0: no limit). The next page is
    /// `range.after(last key)` read at the returned revision.
    async fn list(&self, range: &KeyRange, limit: usize, revision: i64) -> Result<ListResult>;

    /// How many keys `range` holds now.
    async fn count(&self, range: &KeyRange) -> Result<CountResult>;

    /// Replaces `key`'s value if its `mod_revision` is `expected`; else
    /// [`Error::Conflict`] carrying the current value, or [`Error::NotFound`].
    /// Returns the write's revision.
    async fn update(
        &self,
        key: &[u8],
        value: Bytes,
        expected: i64,
        ttl: Option<Duration>,
    ) -> Result<i64>;

    /// Deletes `key` if its `mod_revision` is `expected` (none: whatever it
    /// is); else [`Error::Conflict`] or [`Error::NotFound`].
    async fn delete(&self, key: &[u8], expected: Option<i64>) -> Result<Deleted>;

    /// Watches `range` from revision `from` on (its changes at `from` and
    /// later); 0 means "changes after the current revision". A `from`
    /// before the compaction point yields [`Error::Compacted`] from the
    /// stream.
    async fn watch(&self, range: &KeyRange, from: i64) -> Result<Watch>;

    /// Forgets history before `revision`: reads at earlier revisions and
    /// watches from them fail with [`Error::Compacted`] from now on.
    /// Compacting at or below the current compaction point is
    /// [`Error::Compacted`] too; above the current revision,
    /// [`Error::FutureRevision`].
    async fn compact(&self, revision: i64) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte_below_0xff() {
        assert_eq!(prefix_end(b"/a/"), Some(Bytes::from_static(b"/a0")));
        assert_eq!(prefix_end(b"a\xff\xff"), Some(Bytes::from_static(b"b")));
        assert_eq!(prefix_end(b"\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn ranges_contain_their_start_but_not_their_end() {
        let range = KeyRange::prefix(Bytes::from_static(b"/pods/"));
        assert!(range.contains(b"/pods/"));
        assert!(range.contains(b"/pods/a"));
        assert!(!range.contains(b"/pods"));
        assert!(!range.contains(b"/pods0"));
        let all = KeyRange::prefix(Bytes::new());
        assert!(all.contains(b"\xff\xff"));
        let next = range.after(b"/pods/a");
        assert!(!next.contains(b"/pods/a"));
        assert!(next.contains(b"/pods/a\0"));
        assert!(next.contains(b"/pods/b"));
        assert!(!next.contains(b"/pods0"));
    }
}
