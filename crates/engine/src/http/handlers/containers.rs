//! `/containers/...` and `/commit`: create, list, prune, inspect, the life
//! cycle verbs, wait, rename, top, changes, update, and the streaming ones
//! (logs, attach, stats, export).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::filters;
use crate::http::plumbing::{
    blocking, channel_body, empty, frame, json, parse_json, parse_unix_nanos, read_body,
    stream_type, streaming, unix_now, upgraded_response, wants_upgrade, Body, Query,
};
use crate::logfile;
use crate::shim;

/// A name, full id or unique id prefix, to the container's full id.
pub(crate) async fn resolve(engine: &Arc<Engine>, name: &str) -> Result<String> {
    let e = engine.clone();
    let name = name.to_string();
    blocking(move || e.table.resolve(&name)).await
}

/// `POST /containers/create?name=`.
pub(crate) async fn create(
    engine: Arc<Engine>,
    req: Request<Incoming>,
    query: &Query,
) -> Result<Response<Body>> {
    let name = query.get("name").map(str::to_string);
    let body = read_body(req, 4 << 20).await?;
    let create: cais_api::CreateRequest = parse_json(&body)?;
    let r = blocking(move || engine.containers.create(create, name.as_deref())).await?;
    Ok(json(StatusCode::CREATED, &r))
}

/// `GET /containers/json`.
pub(crate) async fn list(engine: Arc<Engine>, query: &Query) -> Result<Response<Body>> {
    let all = query.flag("all");
    let filters = query.filters(filters::CONTAINER_LIST)?;
    filters.check_container_statuses()?;
    let limit = query.int("limit")?;
    let mut list = blocking(move || engine.views.list(all || limit.is_some(), &filters)).await?;
    if let Some(n) = limit.filter(|n| *n > 0) {
        list.truncate(n as usize);
    }
    Ok(json(StatusCode::OK, &list))
}

/// `POST /containers/prune`.
pub(crate) async fn prune(engine: Arc<Engine>, query: &Query) -> Result<Response<Body>> {
    let filters = query.filters(filters::PRUNE)?;
    let until = filters.until(unix_now())?;
    let ids = blocking(move || Ok(engine.containers.prune(&filters, until))).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"ContainersDeleted": ids, "SpaceReclaimed": 0}),
    ))
}

/// `GET /containers/{id}/json`.
pub(crate) async fn inspect(engine: Arc<Engine>, id: String) -> Result<Response<Body>> {
    let r = blocking(move || engine.views.inspect(&id)).await?;
    Ok(json(StatusCode::OK, &r))
}

/// `POST /containers/{id}/start`.
pub(crate) async fn start(engine: Arc<Engine>, id: String) -> Result<Response<Body>> {
    blocking(move || engine.containers.start(&id)).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/stop?t=&signal=`.
pub(crate) async fn stop(engine: Arc<Engine>, id: String, query: &Query) -> Result<Response<Body>> {
    let t = query.int("t")?.or(query.int("timeout")?);
    let signal = query
        .get("signal")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    blocking(move || engine.containers.stop(&id, t, signal.as_deref())).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/restart?t=`.
pub(crate) async fn restart(
    engine: Arc<Engine>,
    id: String,
    query: &Query,
) -> Result<Response<Body>> {
    let t = query.int("t")?;
    blocking(move || engine.containers.restart(&id, t)).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/kill?signal=`.
pub(crate) async fn kill(engine: Arc<Engine>, id: String, query: &Query) -> Result<Response<Body>> {
    let signal = query.get("signal").unwrap_or("SIGKILL").to_string();
    blocking(move || engine.containers.kill(&id, &signal)).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/pause`.
pub(crate) async fn pause(engine: Arc<Engine>, id: String) -> Result<Response<Body>> {
    blocking(move || engine.containers.pause(&id)).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/unpause`.
pub(crate) async fn unpause(engine: Arc<Engine>, id: String) -> Result<Response<Body>> {
    blocking(move || engine.containers.unpause(&id)).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/rename?name=`.
pub(crate) async fn rename(
    engine: Arc<Engine>,
    id: String,
    query: &Query,
) -> Result<Response<Body>> {
    let name = query.get("name").unwrap_or_default().to_string();
    blocking(move || engine.containers.rename(&id, &name)).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `DELETE /containers/{id}?force=&v=`.
pub(crate) async fn remove(
    engine: Arc<Engine>,
    id: String,
    query: &Query,
) -> Result<Response<Body>> {
    let (force, v) = (query.flag("force"), query.flag("v"));
    blocking(move || engine.containers.remove(&id, force, v)).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/wait?condition=`.
pub(crate) fn wait(engine: Arc<Engine>, id: String, query: &Query) -> Result<Response<Body>> {
    let condition = query.get("condition").unwrap_or("not-running").to_string();
    // Send the headers now: the docker CLI waits for them before it
    // starts the container.
    let (tx, body) = channel_body();
    tokio::spawn(async move {
        let r = blocking(move || engine.containers.wait(&id, &condition)).await;
        let out = match r {
            Ok(code) => serde_json::json!({"StatusCode": code}),
            Err(err) => {
                serde_json::json!({"StatusCode": -1, "Error": {"Message": err.message()}})
            }
        };
        let _ = tx.send(Bytes::from(format!("{out}\n"))).await;
    });
    Ok(streaming(body, "application/json"))
}

/// `POST /containers/{id}/resize?h=&w=`: the container's terminal size.
pub(crate) async fn resize(
    engine: Arc<Engine>,
    id: String,
    query: &Query,
) -> Result<Response<Body>> {
    let (h, w) = (
        query.int("h")?.unwrap_or(0) as u16,
        query.int("w")?.unwrap_or(0) as u16,
    );
    let dir = engine.table.dir(&id);
    blocking(move || {
        shim::connect(
            &dir,
            &shim::Request::Resize {
                height: h,
                width: w,
            },
        )
        .map(drop)
        .map_err(|e| Error::Conflict(format!("cannot resize: {e}")))
    })
    .await?;
    Ok(empty(StatusCode::OK))
}

/// `GET /containers/{id}/top?ps_args=`.
pub(crate) async fn top(engine: Arc<Engine>, id: String, query: &Query) -> Result<Response<Body>> {
    let args = query.get("ps_args").unwrap_or_default().to_string();
    let (titles, processes) = blocking(move || engine.views.top(&id, &args)).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"Titles": titles, "Processes": processes}),
    ))
}

/// `GET /containers/{id}/changes`.
pub(crate) async fn changes(engine: Arc<Engine>, id: String) -> Result<Response<Body>> {
    let changes = blocking(move || engine.views.changes(&id)).await?;
    Ok(json(StatusCode::OK, &changes))
}

/// `POST /containers/{id}/update`: new resource limits.
pub(crate) async fn update(
    engine: Arc<Engine>,
    req: Request<Incoming>,
    id: String,
) -> Result<Response<Body>> {
    let body = read_body(req, 1 << 20).await?;
    let update: cais_api::HostConfig = parse_json(&body)?;
    let warnings = blocking(move || engine.containers.update_resources(&id, &update)).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"Warnings": warnings}),
    ))
}

/// `POST /commit?container=&repo=&tag=&author=&comment=`.
pub(crate) async fn commit(engine: Arc<Engine>, query: &Query) -> Result<Response<Body>> {
    let container = query.get("container").unwrap_or_default().to_string();
    let reference = match (query.get("repo"), query.get("tag")) {
        (Some(r), Some(t)) if !r.is_empty() && !t.is_empty() => Some(format!("{r}:{t}")),
        (Some(r), _) if !r.is_empty() => Some(r.to_string()),
        _ => None,
    };
    let author = query.get("author").unwrap_or_default().to_string();
    let comment = query.get("comment").unwrap_or_default().to_string();
    let id = blocking(move || {
        let id = engine.table.resolve(&container)?;
        engine
            .containers
            .commit(&id, reference.as_deref(), &author, &comment)
    })
    .await?;
    Ok(json(StatusCode::CREATED, &serde_json::json!({"Id": id})))
}

/// `GET /containers/{id}/logs`.
pub(crate) fn logs(engine: Arc<Engine>, id: &str, q: &Query) -> Result<Response<Body>> {
    let rec = engine.table.get(id)?;
    let tty = rec.config.tty;
    let want_out = q.flag("stdout");
    let want_err = q.flag("stderr");
    if !want_out && !want_err {
        return Err(Error::InvalidArgument(
            "Bad parameters: you must choose at least one stream".into(),
        ));
    }
    let follow = q.flag("follow");
    let timestamps = q.flag("timestamps");
    let since = q
        .get("since")
        .and_then(parse_unix_nanos)
        .unwrap_or(i64::MIN);
    let until = q
        .get("until")
        .and_then(parse_unix_nanos)
        .unwrap_or(i64::MAX);
    let tail: Option<usize> = q
        .get("tail")
        .filter(|t| *t != "all")
        .and_then(|t| t.parse().ok());
    let path = engine.table.dir(id).join("container-json.log");
    let (tx, body) = channel_body();
    let id = id.to_string();
    tokio::spawn(async move {
        let render = move |e: &logfile::Entry| -> Option<Bytes> {
            let stream = if e.stream == "stderr" { 2 } else { 1 };
            if (stream == 1 && !want_out) || (stream == 2 && !want_err) {
                return None;
            }
            let t = logfile::parse_time_nanos(&e.time).unwrap_or(0);
            if t < since || t > until {
                return None;
            }
            let mut line = Vec::new();
            if timestamps {
                line.extend_from_slice(e.time.as_bytes());
                line.push(b' ');
            }
            line.extend_from_slice(e.log.as_bytes());
            Some(Bytes::from(if tty { line } else { frame(stream, &line) }))
        };
        let p = path.clone();
        let Ok(Ok((entries, mut offset))) =
            tokio::task::spawn_blocking(move || logfile::read_with_offset(&p)).await
        else {
            return;
        };
        let selected: Vec<Bytes> = entries.iter().filter_map(&render).collect();
        let skip = tail.map(|n| selected.len().saturating_sub(n)).unwrap_or(0);
        for b in selected.into_iter().skip(skip) {
            if tx.send(b).await.is_err() {
                return;
            }
        }
        if !follow {
            return;
        }
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let p = path.clone();
            let off = offset;
            let Ok(Ok((new, next))) =
                tokio::task::spawn_blocking(move || logfile::read_from(&p, off)).await
            else {
                return;
            };
            offset = next;
            for e in &new {
                if let Some(b) = render(e) {
                    if tx.send(b).await.is_err() {
                        return;
                    }
                }
            }
            let running = engine
                .table
                .get(&id)
                .map(|r| r.state.is_running() || r.state.is_restarting())
                .unwrap_or(false);
            if !running && new.is_empty() {
                return;
            }
        }
    });
    Ok(streaming(body, stream_type(tty)))
}

/// `POST /containers/{id}/attach`: relays between the client and the shim.
pub(crate) async fn attach(
    engine: Arc<Engine>,
    mut req: Request<Incoming>,
    id: String,
    q: &Query,
) -> Result<Response<Body>> {
    let rec = engine.table.get(&id)?;
    if !wants_upgrade(&req) {
        return Err(Error::InvalidArgument(
            "attach needs an upgraded connection (Upgrade: tcp)".into(),
        ));
    }
    let want = shim::Request::Attach {
        stdin: q.flag("stdin"),
        stdout: q.flag("stdout"),
        stderr: q.flag("stderr"),
    };
    let stdin = q.flag("stdin");
    let tty = rec.config.tty;
    let dir = engine.table.dir(&id);
    // Before start, `start` connects this client to the shim before the
    // process runs (so it sees all output) and hands the connection over.
    let before_start = if rec.state.is_running() {
        None
    } else {
        engine.containers.attach_before_start(&id, want.clone())
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let conn = match before_start {
            Some(handed) => tokio::time::timeout(Duration::from_secs(60), handed)
                .await
                .ok()
                .and_then(|c| c.ok()),
            None => tokio::task::spawn_blocking(move || {
                if shim::read_exit(&dir).is_some() {
                    return None;
                }
                shim::connect(&dir, &want).ok()
            })
            .await
            .ok()
            .flatten(),
        };
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let Some(conn) = conn else { return };
        let _ = conn.set_nonblocking(true);
        let Ok(shim_conn) = tokio::net::UnixStream::from_std(conn) else {
            return;
        };
        relay(TokioIo::new(upgraded), shim_conn, stdin).await;
    });
    Ok(upgraded_response(tty))
}

/// Copies client input to the shim (when stdin is attached) and the shim's
/// output to the client, until the shim closes (the container exited).
async fn relay<C>(client: C, shim_conn: tokio::net::UnixStream, stdin: bool)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut client_r, mut client_w) = tokio::io::split(client);
    let (mut shim_r, mut shim_w) = shim_conn.into_split();
    // The docker CLI half-closes its side when it sends no input; that must
    // not close the shim connection, so the write half is handed back and
    // kept until the output ends.
    let input = tokio::spawn(async move {
        let mut buf = [0u8; 8192];
        loop {
            match client_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) if stdin => {
                    if shim_w.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                Ok(_) => {}
            }
        }
        // The client's input ended: pass that on (the shim then closes the
        // container's stdin) but keep reading output.
        if stdin {
            let _ = shim_w.shutdown().await;
        }
        shim_w
    });
    let _ = tokio::io::copy(&mut shim_r, &mut client_w).await;
    let _ = client_w.shutdown().await;
    input.abort();
}

/// `GET /containers/{id}/stats`: one sample, or one a second with `stream`.
pub(crate) fn stats(engine: Arc<Engine>, id: String, q: &Query) -> Result<Response<Body>> {
    let stream = q.get("stream").is_none_or(|v| v == "1" || v == "true");
    let one_shot = q.flag("one-shot");
    let (tx, body) = channel_body();
    tokio::spawn(async move {
        let mut pre: Option<serde_json::Value> = None;
        if !stream && !one_shot {
            // Two samples, so the client can compute CPU usage.
            let e = engine.clone();
            let i = id.clone();
            pre = tokio::task::spawn_blocking(move || e.views.stats(&i).ok())
                .await
                .ok()
                .flatten();
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        loop {
            let e = engine.clone();
            let i = id.clone();
            let Ok(Ok(mut s)) = tokio::task::spawn_blocking(move || e.views.stats(&i)).await else {
                return;
            };
            if let Some(p) = &pre {
                s["precpu_stats"] = p["cpu_stats"].clone();
                s["preread"] = p["read"].clone();
            }
            pre = Some(s.clone());
            if tx.send(Bytes::from(format!("{s}\n"))).await.is_err() || !stream {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    Ok(streaming(body, "application/json"))
}

/// `GET /containers/{id}/export`: the container's filesystem as a tar.
pub(crate) async fn export(engine: Arc<Engine>, id: String) -> Result<Response<Body>> {
    // A stopped container's overlay is mounted for the export and
    // unmounted after.
    let (target, mounted_here) = blocking(move || engine.containers.mount_rootfs(&id)).await?;
    let (tx, body) = channel_body();
    tokio::task::spawn_blocking(move || {
        struct ChannelWriter(tokio::sync::mpsc::Sender<Bytes>);
        impl std::io::Write for ChannelWriter {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0
                    .blocking_send(Bytes::copy_from_slice(buf))
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let writer = std::io::BufWriter::with_capacity(256 * 1024, ChannelWriter(tx));
        let mut builder = tar::Builder::new(writer);
        builder.follow_symlinks(false);
        let _ = builder
            .append_dir_all(".", &target)
            .and_then(|_| builder.finish());
        drop(builder);
        if mounted_here {
            let _ = cais_image::snapshot::unmount(&target);
        }
    });
    Ok(streaming(body, "application/x-tar"))
}
