//! The table, the connection settings and every query, in one place.
//!
//! One append-only table `log`: a row per revision (`rev` is SQLite's rowid,
//! so rows are appended in order), naming the key, the revision that created
//! the key's current life, the row it supersedes (`prev_rev`, 0 for none), a
//! tombstone flag for deletes, the lease's expiry and the value. A key's
//! value at revision R is its newest row with `rev <= R`, unless that row is
//! a tombstone; the index on `(key, rev, deleted)` answers that for one key
//! or, grouped by key, for a whole range without touching the table. `meta`
//! holds the schema version and the compaction state.

use std::path::Path;

use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension};

use crate::{Error, Event, KeyRange, KeyValue, Result};

pub(super) const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS log (
    rev INTEGER PRIMARY KEY,
    key BLOB NOT NULL,
    create_rev INTEGER NOT NULL,
    prev_rev INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS log_key ON log (key, rev, deleted);
CREATE INDEX IF NOT EXISTS log_expiry ON log (expires_ms) WHERE expires_ms > 0;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (name, value) VALUES
    ('schema_version', 1), ('compact_rev', 0), ('compact_progress', 0);
";

/// Opens a connection with the settings every connection needs.
///
/// WAL lets readers work on a snapshot while the one writer commits.
/// `synchronous = FULL` makes each commit sync the WAL before it returns,
/// which is what lets the writer acknowledge after `commit`
/// (<https://www.sqlite.org/pragma.html#pragma_synchronous>); `NORMAL`
/// would only sync at checkpoints. Readers share the OS page cache through
/// `mmap` instead of each holding a large private cache.
pub(super) fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(Error::sqlite("open the database"))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA busy_timeout = 10000;
         PRAGMA mmap_size = 268435456;
         PRAGMA cache_size = -4096;
         PRAGMA temp_store = MEMORY;",
    )
    .map_err(Error::sqlite("configure the connection"))?;
    Ok(conn)
}

/// Creates the tables if needed and checks the schema version.
pub(super) fn migrate(conn: &Connection, dir: &Path) -> Result<()> {
    conn.execute_batch(SCHEMA)
        .map_err(Error::sqlite("create the tables"))?;
    let found = meta(conn, "schema_version")?;
    if found != SCHEMA_VERSION {
        return Err(Error::SchemaVersion {
            path: dir.to_path_buf(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    Ok(())
}

pub(super) fn meta(conn: &Connection, name: &str) -> Result<i64> {
    conn.prepare_cached("SELECT value FROM meta WHERE name = ?1")
        .and_then(|mut stmt| stmt.query_row([name], |row| row.get(0)))
        .map_err(Error::sqlite("read the store's metadata"))
}

pub(super) fn set_meta(conn: &Connection, name: &str, value: i64) -> Result<()> {
    conn.prepare_cached("UPDATE meta SET value = ?2 WHERE name = ?1")
        .and_then(|mut stmt| stmt.execute(params![name, value]))
        .map_err(Error::sqlite("write the store's metadata"))?;
    Ok(())
}

/// The newest revision in the log. Compaction never removes a row at or
/// after the compaction revision, which is at most this one, so the newest
/// row survives every compaction.
pub(super) fn current_revision(conn: &Connection) -> Result<i64> {
    conn.prepare_cached("SELECT COALESCE(MAX(rev), 0) FROM log")
        .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
        .map_err(Error::sqlite("read the current revision"))
}

/// What a read transaction sees: its current and compacted revisions.
#[derive(Clone, Copy, Debug)]
pub(super) struct Snapshot {
    pub current: i64,
    pub compacted: i64,
}

impl Snapshot {
    pub fn read(conn: &Connection) -> Result<Snapshot> {
        Ok(Snapshot {
            current: current_revision(conn)?,
            compacted: meta(conn, "compact_rev")?,
        })
    }

    /// The revision a read of `requested` (0: the latest) runs at.
    pub fn resolve(&self, requested: i64) -> Result<i64> {
        if requested < 0 {
            return Err(Error::InvalidArgument {
                reason: format!("revision {requested} is negative"),
            });
        }
        if requested == 0 {
            return Ok(self.current);
        }
        if requested > self.current {
            return Err(Error::FutureRevision {
                requested,
                current: self.current,
            });
        }
        if requested < self.compacted {
            return Err(Error::Compacted {
                requested,
                compacted: self.compacted,
            });
        }
        Ok(requested)
    }
}

/// A key's newest row, as the writer needs it.
pub(super) struct Latest {
    pub rev: i64,
    pub create_rev: i64,
    pub deleted: bool,
    pub value: Bytes,
}

impl Latest {
    pub fn kv(&self, key: &Bytes) -> KeyValue {
        KeyValue {
            key: key.clone(),
            value: self.value.clone(),
            create_revision: self.create_rev,
            mod_revision: self.rev,
        }
    }
}

pub(super) fn latest(conn: &Connection, key: &[u8]) -> Result<Option<Latest>> {
    conn.prepare_cached(
        "SELECT rev, create_rev, deleted, value FROM log WHERE key = ?1 ORDER BY rev DESC LIMIT 1",
    )
    .and_then(|mut stmt| {
        stmt.query_row([key], |row| {
            Ok(Latest {
                rev: row.get(0)?,
                create_rev: row.get(1)?,
                deleted: row.get(2)?,
                value: Bytes::from(row.get::<_, Vec<u8>>(3)?),
            })
        })
        .optional()
    })
    .map_err(Error::sqlite("read a key's newest row"))
}

/// One new row of the log.
pub(super) struct NewRow<'a> {
    pub rev: i64,
    pub key: &'a [u8],
    pub create_rev: i64,
    pub prev_rev: i64,
    pub deleted: bool,
    pub expires_ms: i64,
    pub value: &'a [u8],
}

pub(super) fn insert(conn: &Connection, row: &NewRow<'_>) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO log (rev, key, create_rev, prev_rev, deleted, expires_ms, value)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            row.rev,
            row.key,
            row.create_rev,
            row.prev_rev,
            row.deleted,
            row.expires_ms,
            row.value
        ])
    })
    .map_err(Error::sqlite("append to the log"))?;
    Ok(())
}

pub(super) fn get(conn: &Connection, key: &[u8], revision: i64) -> Result<Option<KeyValue>> {
    let row = conn
        .prepare_cached(
            "SELECT rev, create_rev, deleted, value FROM log
             WHERE key = ?1 AND rev <= ?2 ORDER BY rev DESC LIMIT 1",
        )
        .and_then(|mut stmt| {
            stmt.query_row(params![key, revision], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, bool>(2)?,
                    row.get::<_, Vec<u8>>(3)?,
                ))
            })
            .optional()
        })
        .map_err(Error::sqlite("read a key"))?;
    Ok(row
        .filter(|(_, _, deleted, _)| !deleted)
        .map(|(rev, create_rev, _, value)| KeyValue {
            key: Bytes::copy_from_slice(key),
            value: Bytes::from(value),
            create_revision: create_rev,
            mod_revision: rev,
        }))
}

/// The newest row per key at `revision`, tombstones dropped, in key order:
/// grouped on the covering index, then each survivor's value by rowid.
/// (SQLite takes a bare column of a `MAX()` aggregate from the row holding
/// the maximum: <https://www.sqlite.org/lang_select.html#bareagg>.)
const LIST_BOUNDED: &str = "
SELECT l.rev, l.key, l.create_rev, l.value FROM (
    SELECT key, MAX(rev) AS rev, deleted FROM log
    WHERE key >= ?1 AND key < ?2 AND rev <= ?3
    GROUP BY key HAVING deleted = 0 ORDER BY key LIMIT ?4
) AS m JOIN log AS l ON l.rev = m.rev ORDER BY m.key";

const LIST_UNBOUNDED: &str = "
SELECT l.rev, l.key, l.create_rev, l.value FROM (
    SELECT key, MAX(rev) AS rev, deleted FROM log
    WHERE key >= ?1 AND ?2 IS NULL AND rev <= ?3
    GROUP BY key HAVING deleted = 0 ORDER BY key LIMIT ?4
) AS m JOIN log AS l ON l.rev = m.rev ORDER BY m.key";

/// Up to `limit` keys (0: all) of `range` at `revision`, and whether there
/// are more.
pub(super) fn list(
    conn: &Connection,
    range: &KeyRange,
    limit: usize,
    revision: i64,
) -> Result<(Vec<KeyValue>, bool)> {
    // One more row than asked says whether there are more.
    let fetch: i64 = if limit == 0 {
        -1
    } else {
        i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1
    };
    let sql = if range.end().is_some() {
        LIST_BOUNDED
    } else {
        LIST_UNBOUNDED
    };
    let mut kvs = conn
        .prepare_cached(sql)
        .and_then(|mut stmt| {
            stmt.query_map(
                params![range.start(), range.end(), revision, fetch],
                |row| {
                    Ok(KeyValue {
                        mod_revision: row.get(0)?,
                        key: Bytes::from(row.get::<_, Vec<u8>>(1)?),
                        create_revision: row.get(2)?,
                        value: Bytes::from(row.get::<_, Vec<u8>>(3)?),
                    })
                },
            )?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(Error::sqlite("list a range"))?;
    let more = limit != 0 && kvs.len() > limit;
    kvs.truncate(if more { limit } else { kvs.len() });
    Ok((kvs, more))
}

pub(super) fn count(conn: &Connection, range: &KeyRange) -> Result<u64> {
    let sql = if range.end().is_some() {
        "SELECT COUNT(*) FROM (SELECT MAX(rev), deleted FROM log
         WHERE key >= ?1 AND key < ?2 GROUP BY key HAVING deleted = 0)"
    } else {
        "SELECT COUNT(*) FROM (SELECT MAX(rev), deleted FROM log
         WHERE key >= ?1 AND ?2 IS NULL GROUP BY key HAVING deleted = 0)"
    };
    conn.prepare_cached(sql)
        .and_then(|mut stmt| {
            stmt.query_row(params![range.start(), range.end()], |row| {
                row.get::<_, i64>(0)
            })
        })
        .map(|n| n.unsigned_abs())
        .map_err(Error::sqlite("count a range"))
}

/// The changes to `range` in revisions `from..=to`, in order, each with the
/// value it replaced (read through `prev_rev`).
pub(super) fn history(
    conn: &Connection,
    range: &KeyRange,
    from: i64,
    to: i64,
) -> Result<Vec<Event>> {
    let sql = if range.end().is_some() {
        "SELECT rev, key, create_rev, prev_rev, deleted, value FROM log
         WHERE rev >= ?1 AND rev <= ?2 AND key >= ?3 AND key < ?4 ORDER BY rev"
    } else {
        "SELECT rev, key, create_rev, prev_rev, deleted, value FROM log
         WHERE rev >= ?1 AND rev <= ?2 AND key >= ?3 AND ?4 IS NULL ORDER BY rev"
    };
    let rows = conn
        .prepare_cached(sql)
        .and_then(|mut stmt| {
            stmt.query_map(params![from, to, range.start(), range.end()], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    Bytes::from(row.get::<_, Vec<u8>>(1)?),
                    row.get::<_, i64>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, bool>(4)?,
                    Bytes::from(row.get::<_, Vec<u8>>(5)?),
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(Error::sqlite("read the log"))?;
    let mut events = Vec::with_capacity(rows.len());
    for (rev, key, create_rev, prev_rev, deleted, value) in rows {
        let prev = if prev_rev > 0 {
            row_value(conn, &key, prev_rev)?
        } else {
            None
        };
        events.push(if deleted {
            Event::Delete {
                key,
                revision: rev,
                prev,
            }
        } else {
            // A create after a delete points at the tombstone: no previous value.
            Event::Put {
                kv: KeyValue {
                    key,
                    value,
                    create_revision: create_rev,
                    mod_revision: rev,
                },
                prev: prev.filter(|_| create_rev != rev),
            }
        });
    }
    Ok(events)
}

/// The value written by row `rev`, if that row is kept and is not a tombstone.
fn row_value(conn: &Connection, key: &Bytes, rev: i64) -> Result<Option<KeyValue>> {
    let row = conn
        .prepare_cached("SELECT create_rev, deleted, value FROM log WHERE rev = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([rev], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, bool>(1)?,
                    row.get::<_, Vec<u8>>(2)?,
                ))
            })
            .optional()
        })
        .map_err(Error::sqlite("read a superseded row"))?;
    Ok(row
        .filter(|(_, deleted, _)| !deleted)
        .map(|(create_rev, _, value)| KeyValue {
            key: key.clone(),
            value: Bytes::from(value),
            create_revision: create_rev,
            mod_revision: rev,
        }))
}

/// Removes what compaction at `compacted` no longer needs among rows
/// `from..=to` (a slice of `..=compacted`): every row older than `compacted`
/// that a row in the slice supersedes, and every tombstone in the slice
/// older than `compacted`. Rows at or after `compacted` all stay, so reads
/// at `compacted` or later and watches from it see everything they need.
pub(super) fn compact_slice(
    conn: &Connection,
    from: i64,
    to: i64,
    compacted: i64,
) -> Result<usize> {
    let superseded = conn
        .prepare_cached(
            "DELETE FROM log WHERE rev IN (
                 SELECT prev_rev FROM log
                 WHERE rev >= ?1 AND rev <= ?2 AND prev_rev > 0 AND prev_rev < ?3)",
        )
        .and_then(|mut stmt| stmt.execute(params![from, to, compacted]))
        .map_err(Error::sqlite("remove superseded rows"))?;
    let tombstones = conn
        .prepare_cached(
            "DELETE FROM log WHERE rev >= ?1 AND rev <= ?2 AND rev < ?3 AND deleted = 1",
        )
        .and_then(|mut stmt| stmt.execute(params![from, to, compacted]))
        .map_err(Error::sqlite("remove tombstones"))?;
    Ok(superseded + tombstones)
}

/// Live keys whose lease expired at `now_ms`, with their revisions.
pub(super) fn expired(conn: &Connection, now_ms: i64, limit: usize) -> Result<Vec<(Bytes, i64)>> {
    conn.prepare_cached(
        "SELECT key, rev FROM log AS l
         WHERE expires_ms > 0 AND expires_ms <= ?1 AND deleted = 0
           AND rev = (SELECT MAX(rev) FROM log WHERE key = l.key)
         LIMIT ?2",
    )
    .and_then(|mut stmt| {
        stmt.query_map(
            params![now_ms, i64::try_from(limit).unwrap_or(i64::MAX)],
            |row| Ok((Bytes::from(row.get::<_, Vec<u8>>(0)?), row.get(1)?)),
        )?
        .collect()
    })
    .map_err(Error::sqlite("find expired leases"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_use_wal_and_sync_every_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = connect(&dir.path().join("store.db")).expect("connect");
        let journal: String = conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .expect("journal_mode");
        assert_eq!(journal, "wal");
        // 2 is FULL: the WAL is synced at every commit.
        let synchronous: i64 = conn
            .query_row("PRAGMA synchronous", [], |row| row.get(0))
            .expect("synchronous");
        assert_eq!(synchronous, 2);
    }

    #[test]
    fn snapshot_resolves_revisions() {
        let snapshot = Snapshot {
            current: 10,
            compacted: 4,
        };
        assert_eq!(snapshot.resolve(0).expect("latest"), 10);
        assert_eq!(snapshot.resolve(4).expect("the compaction point"), 4);
        assert_eq!(snapshot.resolve(10).expect("current"), 10);
        assert!(matches!(
            snapshot.resolve(3),
            Err(Error::Compacted {
                requested: 3,
                compacted: 4
            })
        ));
        assert!(matches!(
            snapshot.resolve(11),
            Err(Error::FutureRevision { .. })
        ));
        assert!(matches!(
            snapshot.resolve(-1),
            Err(Error::InvalidArgument { .. })
        ));
    }
}
