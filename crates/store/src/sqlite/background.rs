//! The background thread: compaction beyond the retention window, and
//! deletion of keys whose lease ran out. Both go to the writer as ordinary
//! requests, so they are ordered, committed and watched like any other.
//!
//! The age of a revision is learnt by sampling the committed revision on
//! each tick; after a restart the samples start again, so the age rule
//! keeps more history than asked for a while, never less.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::db;
use super::writer::{Op, Request, State};
use super::{Options, Retention};
use crate::Error;

/// Expired keys deleted per tick, so a flood of expiries cannot starve
/// compaction or stop the thread from noticing shutdown.
const EXPIRIES_PER_TICK: usize = 1000;

pub(super) fn start(
    conn: Connection,
    writes: mpsc::Sender<Request>,
    state: Arc<State>,
    options: Options,
) -> std::io::Result<(mpsc::Sender<()>, JoinHandle<()>)> {
    let (stop, stopped) = mpsc::channel::<()>();
    let tick = options
        .retention
        .as_ref()
        .map_or(options.lease_check_interval, |retention| {
            retention.interval.min(options.lease_check_interval)
        })
        .max(Duration::from_millis(1));
    let handle = std::thread::Builder::new()
        .name("store-background".into())
        .spawn(move || {
            let mut samples = VecDeque::new();
            let mut last_compaction = Instant::now();
            // Stopped when the store drops the other end.
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                if let Some(retention) = &options.retention {
                    samples.push_back((Instant::now(), state.committed.load(Ordering::Acquire)));
                    if last_compaction.elapsed() >= retention.interval {
                        last_compaction = Instant::now();
                        let target = retention_target(retention, &mut samples, Instant::now());
                        if target > state.compacted.load(Ordering::Acquire) {
                            match request(&writes, Op::Compact { revision: target }) {
                                Ok(()) | Err(Error::Compacted { .. }) => {}
                                Err(error) => tracing::warn!(%error, target, "compaction failed"),
                            }
                        }
                    }
                }
                expire_leases(&conn, &writes);
            }
        })?;
    Ok((stop, handle))
}

/// The newest revision the retention window lets go of: history before it
/// is neither among the last `revisions` nor younger than `age`. Drops the
/// samples no longer needed.
fn retention_target(
    retention: &Retention,
    samples: &mut VecDeque<(Instant, i64)>,
    now: Instant,
) -> i64 {
    let Some(&(_, current)) = samples.back() else {
        return 0;
    };
    let by_count = current.saturating_sub(i64::try_from(retention.revisions).unwrap_or(i64::MAX));
    // The newest sample at least `age` old: everything after it is younger.
    let Some(cutoff) = now.checked_sub(retention.age) else {
        return 0;
    };
    while samples.len() > 1 && samples[1].0 <= cutoff {
        samples.pop_front();
    }
    let by_age = match samples.front() {
        Some(&(at, revision)) if at <= cutoff => revision,
        _ => 0,
    };
    by_count.min(by_age).max(0)
}

fn expire_leases(conn: &Connection, writes: &mpsc::Sender<Request>) {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|now| i64::try_from(now.as_millis()).ok())
        .unwrap_or(0);
    let expired = match db::expired(conn, now_ms, EXPIRIES_PER_TICK) {
        Ok(expired) => expired,
        Err(error) => {
            tracing::warn!(%error, "looking for expired leases failed");
            return;
        }
    };
    for (key, revision) in expired {
        // A key written since it was read is not expired any more.
        match request(
            writes,
            Op::Delete {
                key: key.clone(),
                expected: Some(revision),
            },
        ) {
            Ok(()) | Err(Error::Conflict { .. } | Error::NotFound { .. }) => {
                tracing::debug!(key = %key.escape_ascii(), revision, "lease expired");
            }
            Err(error) => tracing::warn!(%error, "deleting an expired key failed"),
        }
    }
}

/// Sends a request to the writer and waits for its answer (this thread is
/// no async task, so it may block).
fn request(writes: &mpsc::Sender<Request>, op: Op) -> Result<(), Error> {
    let (reply, answer) = oneshot::channel();
    writes
        .send(Request { op, reply })
        .map_err(|_| Error::Closed)?;
    answer
        .blocking_recv()
        .map_err(|_| Error::Closed)?
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_keeps_the_larger_of_both_windows() {
        let start = Instant::now();
        let retention = Retention {
            revisions: 100,
            age: Duration::from_secs(60),
            interval: Duration::from_secs(1),
        };
        let at = |secs| start + Duration::from_secs(secs);
        let mut samples: VecDeque<_> = [(at(0), 50), (at(30), 500), (at(90), 1000)].into();
        // At 90 s, the newest sample at least 60 s old is the one at 30 s:
        // revisions after 500 are younger than a minute, so 500 is the
        // target though the count rule alone would allow 900.
        assert_eq!(retention_target(&retention, &mut samples, at(90)), 500);
        assert_eq!(samples.len(), 2, "the sample at 0 s is no longer needed");
        // Much later, age allows everything; the count rule keeps 100.
        samples.push_back((at(1000), 1000));
        assert_eq!(retention_target(&retention, &mut samples, at(1000)), 900);
        // Nothing is old enough yet: keep everything.
        let mut young: VecDeque<_> = [(at(0), 5000)].into();
        assert_eq!(retention_target(&retention, &mut young, at(10)), 0);
    }
}
