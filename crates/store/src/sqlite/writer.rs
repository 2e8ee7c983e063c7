//! The one writer thread and its group commit.
//!
//! Every write goes through a queue to this thread. It takes the first
//! request, then everything else already queued (up to a batch limit),
//! applies them in order in one transaction (each successful one takes the
//! next revision), commits (one WAL sync for the whole batch), then
//! publishes the batch's changes to watchers and answers every request.
//! While it syncs, new requests queue up and become the next batch, so
//! under concurrency the cost of a sync is shared by every writer waiting
//! for it, and a lone writer pays one sync per write, as it must.
//!
//! Nothing is answered before its commit's sync returned. If the commit
//! fails, the whole batch fails (every request gets the error, nothing of it
//! is visible) and the revision counter stays where it was: revisions have
//! no gaps.
//!
//! Compaction runs here too, a slice of revisions at a time between
//! batches, so it never holds writers for long.

use std::fs::File;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use nix::fcntl::Flock;
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{broadcast, oneshot};

use super::db::{self, NewRow};
use crate::{Deleted, Error, Event, KeyValue, Result};

/// Revisions removed from history per compaction transaction.
const COMPACTION_SLICE: i64 = 1000;

/// How long compaction pauses after a failed slice (a full disk, say)
/// instead of retrying in a loop.
const COMPACTION_RETRY: Duration = Duration::from_secs(1);

pub(super) enum Op {
    Create {
        key: Bytes,
        value: Bytes,
        expires_ms: i64,
    },
    Update {
        key: Bytes,
        value: Bytes,
        expected: i64,
        expires_ms: i64,
    },
    Delete {
        key: Bytes,
        expected: Option<i64>,
    },
    Compact {
        revision: i64,
    },
}

pub(super) enum Done {
    Revision(i64),
    Deleted(Deleted),
    Compacted,
}

pub(super) struct Request {
    pub op: Op,
    pub reply: oneshot::Sender<Result<Done>>,
}

/// The changes of one committed batch, in revision order, as watchers get
/// them: one broadcast per commit.
pub(super) struct Group {
    pub events: Vec<Event>,
    /// The batch's last revision.
    pub last: i64,
}

/// What the writer publishes for everyone else.
#[derive(Default)]
pub(super) struct State {
    /// The last committed revision.
    pub committed: AtomicI64,
    /// The compaction revision.
    pub compacted: AtomicI64,
    /// Write transactions committed (each one sync).
    pub commits: AtomicU64,
    /// Writes committed.
    pub writes: AtomicU64,
}

pub(super) struct Writer {
    pub conn: Connection,
    pub requests: mpsc::Receiver<Request>,
    pub events: broadcast::Sender<Arc<Group>>,
    pub state: Arc<State>,
    pub max_batch: usize,
    /// Held as long as the writer runs: one process per store directory.
    pub lock: Flock<File>,
    /// The next revision to process of a compaction still removing rows.
    pub compact_progress: i64,
    /// After a failed compaction slice: when to try again.
    pub compact_retry: Option<Instant>,
}

impl Writer {
    pub fn run(mut self) {
        loop {
            let pending = self.compact_progress < self.state.compacted.load(Ordering::Acquire);
            let paused_until = self.compact_retry.filter(|at| *at > Instant::now());
            let compacting = pending && paused_until.is_none();
            // Compaction work waits for no request; a paused one waits at
            // most until its retry.
            let first = match (compacting, paused_until) {
                (true, _) => match self.requests.try_recv() {
                    Ok(request) => Some(request),
                    Err(mpsc::TryRecvError::Empty) => None,
                    Err(mpsc::TryRecvError::Disconnected) => break,
                },
                (false, Some(at)) if pending => {
                    match self
                        .requests
                        .recv_timeout(at.saturating_duration_since(Instant::now()))
                    {
                        Ok(request) => Some(request),
                        Err(mpsc::RecvTimeoutError::Timeout) => None,
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
                _ => match self.requests.recv() {
                    Ok(request) => Some(request),
                    Err(mpsc::RecvError) => break,
                },
            };
            if let Some(first) = first {
                let mut batch = vec![first];
                while batch.len() < self.max_batch {
                    match self.requests.try_recv() {
                        Ok(request) => batch.push(request),
                        Err(_) => break,
                    }
                }
                self.commit(batch);
            }
            if compacting {
                self.compact_retry = None;
                if let Err(error) = self.compact_slice() {
                    tracing::warn!(%error, "compaction slice failed, will retry");
                    self.compact_retry = Some(Instant::now() + COMPACTION_RETRY);
                }
            }
        }
        tracing::debug!("store writer stopped");
        drop(self.lock);
    }

    fn commit(&mut self, batch: Vec<Request>) {
        let committed = self.state.committed.load(Ordering::Acquire);
        let compacted = self.state.compacted.load(Ordering::Acquire);
        let mut applied = Applied {
            next: committed + 1,
            compacted,
            events: Vec::new(),
        };
        let result = (|| -> Result<Vec<Result<Done>>> {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(Error::sqlite("begin a write"))?;
            let mut outcomes = Vec::with_capacity(batch.len());
            for request in &batch {
                match applied.apply(&tx, &request.op) {
                    // A database failure aborts the batch; anything else
                    // is this request's answer.
                    Err(error @ Error::Sqlite { .. }) => return Err(error),
                    outcome => outcomes.push(outcome),
                }
            }
            tx.commit().map_err(Error::sqlite("commit"))?;
            Ok(outcomes)
        })();
        match result {
            Ok(outcomes) => {
                let last = applied.next - 1;
                let writes = (last - committed).unsigned_abs();
                if writes > 0 {
                    self.state.commits.fetch_add(1, Ordering::Relaxed);
                    self.state.writes.fetch_add(writes, Ordering::Relaxed);
                }
                self.state
                    .compacted
                    .store(applied.compacted, Ordering::Release);
                self.state.committed.store(last, Ordering::Release);
                if !applied.events.is_empty() {
                    // No receivers is not an error: nobody watches.
                    let _ = self.events.send(Arc::new(Group {
                        events: applied.events,
                        last,
                    }));
                }
                for (request, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = request.reply.send(outcome);
                }
            }
            Err(error) => {
                tracing::error!(%error, writes = batch.len(), "group commit failed");
                for request in batch {
                    let _ = request.reply.send(Err(error.clone()));
                }
            }
        }
    }

    /// Removes one slice of the history compaction no longer needs.
    fn compact_slice(&mut self) -> Result<()> {
        let target = self.state.compacted.load(Ordering::Acquire);
        let from = self.compact_progress;
        let to = (from + COMPACTION_SLICE - 1).min(target);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(Error::sqlite("begin a compaction"))?;
        let removed = db::compact_slice(&tx, from, to, target)?;
        // Done: the next compaction starts at this one's revision, whose
        // own row it kept and a later one may remove.
        let progress = if to == target { target } else { to + 1 };
        db::set_meta(&tx, "compact_progress", progress)?;
        tx.commit().map_err(Error::sqlite("commit a compaction"))?;
        tracing::debug!(from, to, target, removed, "compacted");
        self.compact_progress = progress;
        Ok(())
    }
}

/// A batch being applied: the revision it has reached and its changes.
struct Applied {
    next: i64,
    compacted: i64,
    events: Vec<Event>,
}

impl Applied {
    fn apply(&mut self, conn: &Connection, op: &Op) -> Result<Done> {
        match op {
            Op::Create {
                key,
                value,
                expires_ms,
            } => {
                let latest = db::latest(conn, key)?;
                if latest.as_ref().is_some_and(|latest| !latest.deleted) {
                    return Err(Error::AlreadyExists { key: key.clone() });
                }
                let rev = self.next;
                db::insert(
                    conn,
                    &NewRow {
                        rev,
                        key,
                        create_rev: rev,
                        prev_rev: latest.map_or(0, |latest| latest.rev),
                        deleted: false,
                        expires_ms: *expires_ms,
                        value,
                    },
                )?;
                self.next += 1;
                self.events.push(Event::Put {
                    kv: KeyValue {
                        key: key.clone(),
                        value: value.clone(),
                        create_revision: rev,
                        mod_revision: rev,
                    },
                    prev: None,
                });
                Ok(Done::Revision(rev))
            }
            Op::Update {
                key,
                value,
                expected,
                expires_ms,
            } => {
                let latest = live(conn, key, Some(*expected))?;
                let rev = self.next;
                db::insert(
                    conn,
                    &NewRow {
                        rev,
                        key,
                        create_rev: latest.create_rev,
                        prev_rev: latest.rev,
                        deleted: false,
                        expires_ms: *expires_ms,
                        value,
                    },
                )?;
                self.next += 1;
                self.events.push(Event::Put {
                    kv: KeyValue {
                        key: key.clone(),
                        value: value.clone(),
                        create_revision: latest.create_rev,
                        mod_revision: rev,
                    },
                    prev: Some(latest.kv(key)),
                });
                Ok(Done::Revision(rev))
            }
            Op::Delete { key, expected } => {
                let latest = live(conn, key, *expected)?;
                let rev = self.next;
                db::insert(
                    conn,
                    &NewRow {
                        rev,
                        key,
                        create_rev: latest.create_rev,
                        prev_rev: latest.rev,
                        deleted: true,
                        expires_ms: 0,
                        value: &[],
                    },
                )?;
                self.next += 1;
                let kv = latest.kv(key);
                self.events.push(Event::Delete {
                    key: key.clone(),
                    revision: rev,
                    prev: Some(kv.clone()),
                });
                Ok(Done::Deleted(Deleted { revision: rev, kv }))
            }
            Op::Compact { revision } => {
                let current = self.next - 1;
                if *revision > current {
                    return Err(Error::FutureRevision {
                        requested: *revision,
                        current,
                    });
                }
                if *revision <= self.compacted {
                    return Err(Error::Compacted {
                        requested: *revision,
                        compacted: self.compacted,
                    });
                }
                db::set_meta(conn, "compact_rev", *revision)?;
                self.compacted = *revision;
                Ok(Done::Compacted)
            }
        }
    }
}

/// The key's live newest row, if it is at `expected` (when given).
fn live(conn: &Connection, key: &Bytes, expected: Option<i64>) -> Result<db::Latest> {
    let latest = db::latest(conn, key)?
        .filter(|latest| !latest.deleted)
        .ok_or_else(|| Error::NotFound { key: key.clone() })?;
    match expected {
        Some(expected) if expected != latest.rev => Err(Error::Conflict {
            key: key.clone(),
            expected,
            current: Box::new(latest.kv(key)),
        }),
        _ => Ok(latest),
    }
}
