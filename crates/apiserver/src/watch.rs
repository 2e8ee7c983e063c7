//! Watches: one JSON object per line (`{"type": ..., "object": ...}`) on
//! a chunked response, from the store's watch of the resource's key range.
//!
//! `resourceVersion` unset or `0` first sends the current objects as
//! `ADDED` (the state the watch starts from), a revision N sends the
//! changes after N. Objects entering or leaving the selection are
//! `ADDED`/`DELETED`. `BOOKMARK`s (progress, an object with only its
//! `resourceVersion`) go out only when `allowWatchBookmarks=true`. A
//! revision the store has compacted away ends the watch with an `ERROR`
//! event holding a 410 `Expired` Status, and the client lists again.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::rest::Ctx;
use crate::storage::{self, parse_revision};

/// How often a watch that allows bookmarks asks the store for progress.
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);

fn line(kind: &str, object: Value) -> Bytes {
    let mut s = json!({"type": kind, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

/// Checks a watch request before the response starts, so a bad selector
/// or revision is an ordinary error status.
pub async fn prepare(cx: &Ctx) -> Result<(), ApiError> {
    cx.selectors()?;
    if let Some(rv) = cx.params.get("resourceVersion").filter(|v| !v.is_empty()) {
        let n = parse_revision(rv)?;
        let current = cx.storage.revision().await?;
        if n > current {
            return Err(ApiError::timeout(format!(
                "Too large resource version: {n}, current: {current}"
            )));
        }
    }
    if let Some(t) = cx.params.get("timeoutSeconds") {
        t.parse::<u64>()
            .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds: {t:?}")))?;
    }
    Ok(())
}

/// Runs a watch, sending lines into `tx` until the timeout, the client
/// going away or an error.
pub async fn run(cx: Ctx, table: bool, tx: mpsc::Sender<Bytes>) {
    if let Err(e) = stream(&cx, table, &tx).await {
        let _ = tx.send(line("ERROR", e.status())).await;
    }
}

async fn stream(cx: &Ctx, table: bool, tx: &mpsc::Sender<Bytes>) -> Result<(), ApiError> {
    let (l, f) = cx.selectors()?;
    let keep = cx.matcher(l, f);
    let bookmarks = cx.params.flag("allowWatchBookmarks");
    let timeout = match cx
        .params
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
    {
        Some(t) => Duration::from_secs(t),
        // Like the real server's default: half an hour to an hour.
        None => Duration::from_secs(1800 + uuid::Uuid::new_v4().as_u128() as u64 % 1800),
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let encode = |obj: Value| -> Result<Value, ApiError> {
        if table {
            cx.table(&obj)
        } else {
            Ok(obj)
        }
    };

    let rv = cx.params.get("resourceVersion").unwrap_or("");
    let send_initial = cx.params.flag("sendInitialEvents") || rv.is_empty() || rv == "0";
    let mut last = if send_initial {
        let page = cx
            .storage
            .list(
                &cx.resource,
                cx.namespace.as_deref().filter(|_| cx.resource.namespaced),
                0,
                0,
                None,
                &keep,
            )
            .await?;
        for obj in page.items {
            if tx.send(line("ADDED", encode(obj)?)).await.is_err() {
                return Ok(());
            }
        }
        if cx.params.flag("sendInitialEvents") && bookmarks {
            let mark = bookmark(cx, page.revision, true);
            if tx.send(line("BOOKMARK", mark)).await.is_err() {
                return Ok(());
            }
        }
        page.revision
    } else {
        parse_revision(rv)?
    };

    let ns = cx.namespace.as_deref().filter(|_| cx.resource.namespaced);
    let mut watch = cx.storage.watch(&cx.resource, ns, last + 1).await?;
    let mut tick = tokio::time::interval(BOOKMARK_EVERY);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return Ok(()),
            _ = tx.closed() => return Ok(()),
            _ = tick.tick(), if bookmarks => {
                watch.request_progress().await.map_err(|e| storage::store_error(&cx.resource, "", e))?;
            }
            batch = watch.next() => {
                let Some(batch) = batch else { return Ok(()) };
                let batch = batch.map_err(|e| storage::store_error(&cx.resource, "", e))?;
                if batch.events.is_empty() {
                    if bookmarks && batch.revision > 0 {
                        last = last.max(batch.revision);
                        if tx.send(line("BOOKMARK", bookmark(cx, last, false))).await.is_err() {
                            return Ok(());
                        }
                    }
                    continue;
                }
                for event in &batch.events {
                    if let Some((kind, obj)) = storage::watch_event(event, &keep)? {
                        if tx.send(line(kind, encode(obj)?)).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                last = batch.revision;
            }
        }
    }
}

fn bookmark(cx: &Ctx, revision: i64, initial_end: bool) -> Value {
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if initial_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({
        "kind": cx.resource.kind,
        "apiVersion": cx.resource.api_version(),
        "metadata": metadata,
    })
}
