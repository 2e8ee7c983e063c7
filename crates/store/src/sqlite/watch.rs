//! A watch: the writer's broadcast of committed batches, filtered by this
//! watch's key range, caught up from the log when needed.
//!
//! Every watch holds a receiver of the one broadcast channel the writer
//! sends each committed batch to (one send per commit, whatever the number
//! of watchers; a receiver is a cursor into a shared ring). The watch keeps
//! `next`, the first revision it has not delivered yet, and skips anything
//! older, so whatever mix of log reads and broadcasts it uses, each revision
//! is delivered once and in order.
//!
//! It reads the log ("catches up") when it starts from a past revision and
//! when it fell so far behind that the ring overwrote batches it had not
//! received (the receiver reports that as lagged). Both cases are safe
//! because the receiver exists before the log is read: a batch is sent only
//! after its commit, so anything not yet sent when the read's snapshot was
//! taken will still arrive through the receiver, and anything sent before is
//! in the snapshot. Only when the revisions it needs have been compacted
//! does the watch end with [`Error::Compacted`].

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::db::{self, Snapshot};
use super::writer::Group;
use super::Reads;
use crate::{Error, Event, KeyRange, Result, WatchBatch, WatchStream};

/// Revisions read from the log per catch-up step.
const CATCH_UP_SLICE: i64 = 1000;

pub(super) struct SqliteWatch {
    pub range: KeyRange,
    /// The first revision not delivered yet.
    pub next: i64,
    pub catching_up: bool,
    pub progress_requested: bool,
    pub receiver: broadcast::Receiver<Arc<Group>>,
    pub reads: Arc<Reads>,
    pub ended: bool,
}

impl SqliteWatch {
    /// Reads the next slice of the log from `next`. Returns the batch to
    /// deliver, if the slice held changes to this range.
    async fn catch_up(&mut self) -> Result<Option<WatchBatch>> {
        let range = self.range.clone();
        let from = self.next;
        let (snapshot, events) = self
            .reads
            .run(move |conn| {
                let tx = conn.transaction().map_err(Error::sqlite("begin a read"))?;
                let snapshot = Snapshot::read(&tx)?;
                if from < snapshot.compacted {
                    return Err(Error::Compacted {
                        requested: from,
                        compacted: snapshot.compacted,
                    });
                }
                let to = (from + CATCH_UP_SLICE - 1).min(snapshot.current);
                let events = if to >= from {
                    db::history(&tx, &range, from, to)?
                } else {
                    Vec::new()
                };
                Ok((snapshot, events))
            })
            .await?;
        let to = (from + CATCH_UP_SLICE - 1).min(snapshot.current);
        if to >= snapshot.current {
            self.catching_up = false;
        }
        if to < from {
            return Ok(None);
        }
        self.next = to + 1;
        Ok((!events.is_empty()).then_some(WatchBatch {
            revision: to,
            events,
        }))
    }

    /// This watch's share of a committed batch.
    fn take(&mut self, group: &Group) -> Option<WatchBatch> {
        if group.last < self.next {
            return None;
        }
        let events: Vec<Event> = group
            .events
            .iter()
            .filter(|event| event.revision() >= self.next && self.range.contains(event.key()))
            .cloned()
            .collect();
        self.next = group.last + 1;
        (!events.is_empty()).then_some(WatchBatch {
            revision: group.last,
            events,
        })
    }

    fn end(&mut self, error: Error) -> Option<Result<WatchBatch>> {
        self.ended = true;
        Some(Err(error))
    }
}

#[async_trait]
impl WatchStream for SqliteWatch {
    async fn next(&mut self) -> Option<Result<WatchBatch>> {
        loop {
            if self.ended {
                return None;
            }
            if self.catching_up {
                match self.catch_up().await {
                    Ok(Some(batch)) => return Some(Ok(batch)),
                    Ok(None) => continue,
                    Err(error) => return self.end(error),
                }
            }
            let received = if self.progress_requested {
                match self.receiver.try_recv() {
                    Ok(group) => Ok(group),
                    Err(broadcast::error::TryRecvError::Empty) => {
                        self.progress_requested = false;
                        return Some(Ok(WatchBatch {
                            revision: self.next - 1,
                            events: Vec::new(),
                        }));
                    }
                    Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                        Err(broadcast::error::RecvError::Lagged(missed))
                    }
                    Err(broadcast::error::TryRecvError::Closed) => {
                        Err(broadcast::error::RecvError::Closed)
                    }
                }
            } else {
                self.receiver.recv().await
            };
            match received {
                Ok(group) => {
                    if let Some(batch) = self.take(&group) {
                        return Some(Ok(batch));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(
                        missed,
                        next = self.next,
                        "watch fell behind, reading the log"
                    );
                    self.catching_up = true;
                }
                Err(broadcast::error::RecvError::Closed) => return self.end(Error::Closed),
            }
        }
    }

    async fn request_progress(&mut self) -> Result<()> {
        self.progress_requested = true;
        Ok(())
    }
}
