//! Crash test: a child process writes to the embedded store from sixteen
//! concurrent clients while a watcher records what it sees; the parent
//! kills it with SIGKILL at a random moment, reopens the store and checks
//! that every acknowledged write is there at its revision, that the log
//! holds revisions 1..=current with no gap, that nothing the child was told
//! failed got in, and that everything the watcher saw is in the log. Then
//! again, on the same store, for several rounds.
//!
//! This file is its own harness (`harness = false`): run with
//! `CAIS_STORE_CRASH_CHILD=<store dir>:<history file>:<round>`, it is the
//! child.
//!
//! # The recorded history
//!
//! One JSON object per line, appended by the child to its round's file as
//! things happen (one `write` per line, so a kill leaves whole lines), for
//! a linearizability checker to read later. Times are CLOCK_MONOTONIC
//! nanoseconds, comparable across the rounds of one boot.
//!
//! - `{"t":"call","client":C,"id":N,"op":"create"|"update"|"delete"|"get","key":K,
//!   "value":V,"expected":R,"ns":T}`: client C starts operation N (`value`
//!   for create/update, `expected` for update/delete; values are unique).
//! - `{"t":"return","client":C,"id":N,"ok":true,"rev":R,"ns":T}`: it
//!   succeeded at revision R; for a get, R is the revision read at, with
//!   `"value"` and `"mod_rev"` (both null for a missing key).
//! - `{"t":"return","client":C,"id":N,"ok":false,"error":E,"ns":T}`: it
//!   failed (E: `exists`, `not_found`, `conflict`, or another message).
//!   A call with no return was cut short by the kill: its outcome is
//!   unknown.
//! - `{"t":"watch","rev":R,"kind":"put"|"delete","key":K,"value":V,"ns":T}`:
//!   the watcher (whole prefix, from the revision the child found at start)
//!   received this change.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cais_store::sqlite::{Options, SqliteStore};
use cais_store::{Bytes, Error, Event, KeyRange, Store};
use serde_json::{json, Value};

const CHILD_ENV: &str = "CAIS_STORE_CRASH_CHILD";
const ROUNDS: usize = 8;
const CLIENTS: usize = 16;
const KEYS: usize = 32;
const PREFIX: &str = "/crash/";

fn main() {
    match std::env::var(CHILD_ENV) {
        Ok(args) => child(&args),
        Err(_) => {
            parent();
            println!("crash test: ok");
        }
    }
}

fn options() -> Options {
    // All history stays, so every acknowledged write can be checked at its
    // own revision.
    Options {
        retention: None,
        ..Options::default()
    }
}

fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass it, which lives
    // for the call.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec.unsigned_abs() * 1_000_000_000 + now.tv_nsec.unsigned_abs()
}

// ---- the child ---------------------------------------------------------------

struct History(std::fs::File);

impl History {
    fn record(&self, mut line: Value) {
        line["ns"] = json!(monotonic_ns());
        let mut text = line.to_string();
        text.push('\n');
        (&self.0)
            .write_all(text.as_bytes())
            .expect("write the history");
    }
}

fn child(args: &str) {
    let mut parts = args.splitn(3, ':');
    let (dir, history, round) = match (parts.next(), parts.next(), parts.next()) {
        (Some(dir), Some(history), Some(round)) => (
            PathBuf::from(dir),
            PathBuf::from(history),
            round.to_string(),
        ),
        _ => panic!("{CHILD_ENV} is <dir>:<history>:<round>"),
    };
    let history = Arc::new(History(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&history)
            .expect("open the history"),
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir, options()).expect("open"));
        let mut watch = store
            .watch(&KeyRange::prefix(PREFIX), 0)
            .await
            .expect("watch");
        let watcher_history = Arc::clone(&history);
        tokio::spawn(async move {
            while let Some(batch) = watch.next().await {
                for event in batch.expect("the watch goes on").events {
                    let (kind, value) = match &event {
                        Event::Put { kv, .. } => ("put", json!(String::from_utf8_lossy(&kv.value))),
                        Event::Delete { .. } => ("delete", Value::Null),
                    };
                    watcher_history.record(json!({
                        "t": "watch",
                        "rev": event.revision(),
                        "kind": kind,
                        "key": String::from_utf8_lossy(event.key()),
                        "value": value,
                    }));
                }
            }
        });
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let store = Arc::clone(&store);
                let history = Arc::clone(&history);
                let round = round.clone();
                tokio::spawn(async move { client_loop(&*store, &history, client, &round).await })
            })
            .collect();
        for client in clients {
            client.await.expect("client");
        }
    });
}

/// Reads a key, then creates, updates or deletes it; forever (until killed).
async fn client_loop(store: &dyn Store, history: &History, client: usize, round: &str) {
    let mut rng = fastrand::Rng::with_seed(client as u64 ^ round.len() as u64 ^ monotonic_ns());
    for id in 0u64.. {
        let key = format!("{PREFIX}{}", rng.usize(..KEYS));
        let call = |op: &str, extra: Value| {
            let mut line = json!({"t": "call", "client": client, "id": id, "op": op, "key": key});
            if let (Some(line), Value::Object(extra)) = (line.as_object_mut(), extra) {
                line.extend(extra);
            }
            history.record(line);
        };
        let done = |result: Result<Value, Error>| {
            let line = match result {
                Ok(Value::Object(mut fields)) => {
                    fields.extend([
                        ("t".into(), json!("return")),
                        ("client".into(), json!(client)),
                    ]);
                    fields.insert("id".into(), json!(id));
                    fields.insert("ok".into(), json!(true));
                    Value::Object(fields)
                }
                Ok(other) => panic!("a result is an object, not {other}"),
                Err(error) => {
                    let error = match error {
                        Error::AlreadyExists { .. } => "exists".to_string(),
                        Error::NotFound { .. } => "not_found".to_string(),
                        Error::Conflict { .. } => "conflict".to_string(),
                        other => other.to_string(),
                    };
                    json!({"t": "return", "client": client, "id": id, "ok": false, "error": error})
                }
            };
            history.record(line);
        };

        call("get", json!({}));
        let got = store.get(key.as_bytes(), 0).await;
        let current = got.as_ref().ok().and_then(|got| got.kv.clone());
        done(got.map(|got| {
            json!({
                "rev": got.revision,
                "value": got.kv.as_ref().map(|kv| String::from_utf8_lossy(&kv.value).into_owned()),
                "mod_rev": got.kv.as_ref().map(|kv| kv.mod_revision),
            })
        }));

        let value = format!("r{round}-c{client}-{id}");
        match current {
            None => {
                call("create", json!({"value": value}));
                let result = store.create(key.as_bytes(), Bytes::from(value), None).await;
                done(result.map(|rev| json!({"rev": rev})));
            }
            Some(kv) if rng.u8(..4) == 0 => {
                call("delete", json!({"expected": kv.mod_revision}));
                let result = store.delete(key.as_bytes(), Some(kv.mod_revision)).await;
                done(result.map(|deleted| json!({"rev": deleted.revision})));
            }
            Some(kv) => {
                call(
                    "update",
                    json!({"value": value, "expected": kv.mod_revision}),
                );
                let result = store
                    .update(key.as_bytes(), Bytes::from(value), kv.mod_revision, None)
                    .await;
                done(result.map(|rev| json!({"rev": rev})));
            }
        }
    }
}

// ---- the parent --------------------------------------------------------------

/// One write call of the history and what became of it.
#[derive(Clone, Debug)]
struct WriteCall {
    op: String,
    key: String,
    value: Option<String>,
    expected: Option<i64>,
    /// `Some(Ok(rev))` acknowledged, `Some(Err(_))` failed, `None` unknown.
    outcome: Option<Result<i64, String>>,
}

/// What one round's history file says.
#[derive(Default)]
struct Round {
    writes: Vec<WriteCall>,
    /// (read revision, key, value, mod revision) of every answered get.
    reads: Vec<(i64, String, Option<String>, Option<i64>)>,
    /// (revision, kind, key, value) as the watcher received them.
    watched: Vec<(i64, String, String, Option<String>)>,
}

fn parse(path: &Path) -> Round {
    let text = std::fs::read_to_string(path).expect("read the history");
    let mut calls: HashMap<(u64, u64), Value> = HashMap::new();
    let mut round = Round::default();
    let mut write_index: HashMap<(u64, u64), usize> = HashMap::new();
    for line in text.lines() {
        let line: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("history line {line:?}: {e}"));
        let id = || {
            (
                line["client"].as_u64().expect("client"),
                line["id"].as_u64().expect("id"),
            )
        };
        match line["t"].as_str() {
            Some("call") => {
                if line["op"] != "get" {
                    write_index.insert(id(), round.writes.len());
                    round.writes.push(WriteCall {
                        op: line["op"].as_str().expect("op").to_string(),
                        key: line["key"].as_str().expect("key").to_string(),
                        value: line["value"].as_str().map(str::to_string),
                        expected: line["expected"].as_i64(),
                        outcome: None,
                    });
                }
                calls.insert(id(), line);
            }
            Some("return") => {
                let call = calls.get(&id()).expect("a return follows its call");
                let outcome = if line["ok"] == true {
                    Ok(line["rev"].as_i64().expect("rev"))
                } else {
                    Err(line["error"].as_str().expect("error").to_string())
                };
                if call["op"] == "get" {
                    if let Ok(rev) = outcome {
                        round.reads.push((
                            rev,
                            call["key"].as_str().expect("key").to_string(),
                            line["value"].as_str().map(str::to_string),
                            line["mod_rev"].as_i64(),
                        ));
                    }
                } else {
                    round.writes[write_index[&id()]].outcome = Some(outcome);
                }
            }
            Some("watch") => round.watched.push((
                line["rev"].as_i64().expect("rev"),
                line["kind"].as_str().expect("kind").to_string(),
                line["key"].as_str().expect("key").to_string(),
                line["value"].as_str().map(str::to_string),
            )),
            other => panic!("unknown history line type {other:?}"),
        }
    }
    round
}

/// The whole log, revision by revision, as a watch from 1 replays it.
async fn read_log(store: &dyn Store, current: i64) -> BTreeMap<i64, Event> {
    let mut log = BTreeMap::new();
    if current == 0 {
        return log;
    }
    let mut watch = store
        .watch(&KeyRange::prefix(""), 1)
        .await
        .expect("watch the log");
    while log.len() < current.unsigned_abs() as usize {
        let batch = tokio::time::timeout(Duration::from_secs(30), watch.next())
            .await
            .expect("the log in time")
            .expect("the watch goes on")
            .expect("no watch error");
        for event in batch.events {
            assert!(
                log.insert(event.revision(), event).is_none(),
                "a revision twice"
            );
        }
    }
    log
}

fn event_value(event: &Event) -> Option<String> {
    match event {
        Event::Put { kv, .. } => Some(String::from_utf8_lossy(&kv.value).into_owned()),
        Event::Delete { .. } => None,
    }
}

async fn verify(dir: &Path, rounds: &[Round]) -> (i64, usize) {
    let store = SqliteStore::open(dir, options()).expect("reopen after the kill");
    let current = store.current_revision().await.expect("revision");
    let log = read_log(&store, current).await;
    let revisions: Vec<i64> = log.keys().copied().collect();
    assert_eq!(
        revisions,
        (1..=current).collect::<Vec<_>>(),
        "the log is 1..=current without gaps"
    );

    // Every change in the log is one of the calls, at most once; every
    // acknowledged call is in the log at its revision, as it was made.
    let mut by_value: HashMap<&str, &WriteCall> = HashMap::new();
    let mut deletes: HashMap<(&str, i64), Vec<&WriteCall>> = HashMap::new();
    let mut acknowledged = 0;
    for write in rounds.iter().flat_map(|round| &round.writes) {
        if let Some(value) = &write.value {
            by_value.insert(value, write);
        }
        if write.op == "delete" {
            deletes
                .entry((
                    &write.key,
                    write.expected.expect("a delete's expected revision"),
                ))
                .or_default()
                .push(write);
        }
        if let Some(Ok(rev)) = write.outcome {
            acknowledged += 1;
            let event = log
                .get(&rev)
                .unwrap_or_else(|| panic!("acknowledged {write:?} is not in the log"));
            assert_eq!(String::from_utf8_lossy(event.key()), write.key, "at {rev}");
            assert_eq!(event_value(event), write.value, "at {rev}: {write:?}");
            match (event, write.op.as_str()) {
                (Event::Put { kv, .. }, "create") => assert_eq!(kv.create_revision, rev),
                (Event::Put { prev, .. }, "update") => {
                    assert_eq!(
                        prev.as_ref().map(|p| p.mod_revision),
                        write.expected,
                        "at {rev}"
                    )
                }
                (Event::Delete { prev, .. }, "delete") => {
                    assert_eq!(
                        prev.as_ref().map(|p| p.mod_revision),
                        write.expected,
                        "at {rev}"
                    )
                }
                (event, op) => panic!("at {rev}: {op} recorded as {event:?}"),
            }
        }
    }
    for (rev, event) in &log {
        let key = String::from_utf8_lossy(event.key()).into_owned();
        let candidates: Vec<&WriteCall> = match event {
            Event::Put { kv, .. } => by_value
                .get(&*String::from_utf8_lossy(&kv.value))
                .map(|write| vec![*write])
                .unwrap_or_default(),
            Event::Delete { prev, .. } => {
                let prev = prev
                    .as_ref()
                    .expect("a delete's previous value")
                    .mod_revision;
                deletes
                    .get(&(key.as_str(), prev))
                    .cloned()
                    .unwrap_or_default()
            }
        };
        assert!(
            candidates.iter().any(|write| write.key == key
                && match &write.outcome {
                    Some(Ok(acked)) => acked == rev,
                    Some(Err(_)) => false,
                    None => true,
                }),
            "revision {rev} ({event:?}) matches no acknowledged or unfinished call: {candidates:?}"
        );
    }

    // What the watchers saw was committed: it is in the log as they saw it,
    // in order, without gaps.
    for round in rounds {
        let mut previous: Option<i64> = None;
        for (rev, kind, key, value) in &round.watched {
            if let Some(previous) = previous {
                assert_eq!(
                    *rev,
                    previous + 1,
                    "the watcher saw revisions in order, without gaps"
                );
            }
            previous = Some(*rev);
            let event = log
                .get(rev)
                .unwrap_or_else(|| panic!("watched revision {rev} is not in the log"));
            assert_eq!(String::from_utf8_lossy(event.key()), *key);
            assert_eq!(matches!(event, Event::Delete { .. }), kind == "delete");
            assert_eq!(event_value(event), *value);
        }
    }

    // Every answered read is what the store holds at that revision.
    for round in rounds {
        for (rev, key, value, mod_rev) in &round.reads {
            if *rev == 0 {
                // Read from the empty store (a read at 0 now means "latest").
                assert_eq!((value, mod_rev), (&None, &None), "{key} in the empty store");
                continue;
            }
            let got = store
                .get(key.as_bytes(), *rev)
                .await
                .expect("get at a past revision");
            assert_eq!(
                got.kv
                    .as_ref()
                    .map(|kv| String::from_utf8_lossy(&kv.value).into_owned()),
                *value,
                "{key} at {rev}"
            );
            assert_eq!(got.kv.map(|kv| kv.mod_revision), *mod_rev, "{key} at {rev}");
        }
    }
    (current, acknowledged)
}

fn parent() {
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("store");
    let exe = std::env::current_exe().expect("this test's binary");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut rng = fastrand::Rng::new();
    let mut rounds = Vec::new();
    let mut last_current = 0;
    for round in 0..ROUNDS {
        let history = work.path().join(format!("history-{round}.jsonl"));
        let mut child = std::process::Command::new(&exe)
            .env(
                CHILD_ENV,
                format!("{}:{}:{round}", dir.display(), history.display()),
            )
            .spawn()
            .expect("start the child");
        std::thread::sleep(Duration::from_millis(300 + rng.u64(..900)));
        // Child::kill sends SIGKILL.
        child.kill().expect("kill the child");
        let status = child.wait().expect("wait for the child");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL),
            "the child was killed, not ended on its own: {status}"
        );
        rounds.push(parse(&history));
        let (current, acknowledged) = runtime.block_on(verify(&dir, &rounds));
        let this_round = rounds.last().expect("a round");
        let acked_now = this_round
            .writes
            .iter()
            .filter(|write| matches!(write.outcome, Some(Ok(_))))
            .count();
        assert!(
            acked_now > 0,
            "round {round} acknowledged no write: the child did not get going"
        );
        assert!(current > last_current, "round {round} added revisions");
        println!(
            "round {round}: revision {current}, {acknowledged} acknowledged writes so far ({acked_now} this round, {} watched)",
            this_round.watched.len()
        );
        last_current = current;
    }
}
