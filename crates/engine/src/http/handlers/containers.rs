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
    all_values, blocking, channel_body, empty, frame, json, parse_json, parse_unix_nanos,
    read_body, stream_type, streaming, unix_now, upgraded_response, wants_upgrade,
    websocket_accept, websocket_stream, Body, DetachKeys, Query,
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
    let (ids, reclaimed) = blocking(move || Ok(engine.containers.prune(&filters, until))).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"ContainersDeleted": ids, "SpaceReclaimed": reclaimed}),
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

/// `DELETE /containers/{parent}/{alias}?link=1`: removes the legacy link
/// `alias` from container `parent` (the containers stay).
pub(crate) async fn remove_link(
    engine: Arc<Engine>,
    parent: String,
    alias: String,
) -> Result<Response<Body>> {
    blocking(move || engine.containers.remove_link(&parent, &alias)).await?;
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
    let update: cais_api::ContainerUpdate = parse_json(&body)?;
    let warnings = blocking(move || engine.containers.update_resources(&id, &update)).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"Warnings": warnings}),
    ))
}

/// `POST /commit?container=&repo=&tag=&author=&comment=&changes=`: the
/// container's changes as an image whose config is the container's (the
/// body's fields over it, then `changes` applied).
pub(crate) async fn commit(
    engine: Arc<Engine>,
    req: Request<Incoming>,
    query: &Query,
) -> Result<Response<Body>> {
    let container = query.get("container").unwrap_or_default().to_string();
    let reference = match (query.get("repo"), query.get("tag")) {
        (Some(r), Some(t)) if !r.is_empty() && !t.is_empty() => Some(format!("{r}:{t}")),
        (Some(r), _) if !r.is_empty() => Some(r.to_string()),
        _ => None,
    };
    let author = query.get("author").unwrap_or_default().to_string();
    let comment = query.get("comment").unwrap_or_default().to_string();
    let changes = all_values(req.uri().query().unwrap_or(""), "changes");
    let body = read_body(req, 1 << 20).await?;
    let overrides: serde_json::Value = parse_json(&body)?;
    let id = blocking(move || {
        let id = engine.table.resolve(&container)?;
        engine.containers.commit(
            &id,
            &crate::containers::lifecycle::CommitRequest {
                reference: reference.as_deref(),
                author: &author,
                comment: &comment,
                changes: &changes,
                overrides: &overrides,
            },
        )
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
    if rec.host_config.log_config.kind == "none" {
        return Err(Error::NotImplemented(
            "configured logging driver does not support reading".into(),
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

/// `POST /containers/{id}/attach?stream=&logs=&stdin=&stdout=&stderr=&detachKeys=`:
/// with `logs` the container's log so far, then with `stream` its live
/// output (and input, with `stdin`) through the shim, until it exits or
/// the client detaches (the detach keys, with a terminal). Over a hijacked
/// connection (`Upgrade: tcp`) or, without one, as the response body
/// (output only).
pub(crate) async fn attach(
    engine: Arc<Engine>,
    mut req: Request<Incoming>,
    id: String,
    q: &Query,
) -> Result<Response<Body>> {
    let rec = engine.table.get(&id)?;
    let tty = rec.config.tty;
    let opts = AttachOptions {
        stdin: q.flag("stdin"),
        stdout: q.flag("stdout"),
        stderr: q.flag("stderr"),
        stream: q.flag("stream"),
        logs: q.flag("logs"),
        detach_keys: DetachKeys::parse(q.get("detachKeys").unwrap_or_default())?,
        tty,
    };
    let upgraded = wants_upgrade(&req);
    let handed = hand_over_at_start(&engine, &id, &opts, rec.state.is_running());
    if !upgraded {
        // Output only, as the response body: the session writes into one
        // end of a pipe, the body is fed from the other.
        let opts = AttachOptions {
            stdin: false,
            ..opts
        };
        let (tx, body) = channel_body();
        let (client, mut pipe) = tokio::io::duplex(64 * 1024);
        tokio::spawn(attach_session(engine, id, opts, handed, client));
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 || tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                    break;
                }
            }
        });
        return Ok(streaming(body, stream_type(tty)));
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        attach_session(engine, id, opts, handed, TokioIo::new(upgraded)).await;
    });
    Ok(upgraded_response(tty))
}

/// `GET /containers/{id}/attach/ws?stream=&logs=&stdin=&stdout=&stderr=`:
/// an attach over a WebSocket (RFC 6455), as browsers and some SDKs use
/// it: output in text frames, raw (never multiplexed, as dockerd sends
/// it), input from the client's frames.
pub(crate) async fn attach_ws(
    engine: Arc<Engine>,
    mut req: Request<Incoming>,
    id: String,
    q: &Query,
) -> Result<Response<Body>> {
    let rec = engine.table.get(&id)?;
    let is_websocket = req
        .headers()
        .get(hyper::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = req
        .headers()
        .get("Sec-WebSocket-Key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (true, Some(key)) = (is_websocket, key) else {
        return Err(Error::InvalidArgument(
            "attach/ws needs a WebSocket upgrade (Upgrade: websocket, Sec-WebSocket-Key)".into(),
        ));
    };
    let opts = AttachOptions {
        stdin: q.flag("stdin"),
        stdout: q.flag("stdout"),
        stderr: q.flag("stderr"),
        stream: q.flag("stream"),
        logs: q.flag("logs"),
        detach_keys: DetachKeys::parse(q.get("detachKeys").unwrap_or_default())?,
        tty: rec.config.tty,
    };
    // The client gets raw output whatever the container has: without a
    // terminal the session's frames are taken apart.
    let demux = !rec.config.tty;
    let handed = hand_over_at_start(&engine, &id, &opts, rec.state.is_running());
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let client = websocket_stream(TokioIo::new(upgraded), demux);
        attach_session(engine, id, opts, handed, client).await;
    });
    let mut r = empty(StatusCode::SWITCHING_PROTOCOLS);
    let h = r.headers_mut();
    h.insert(
        hyper::header::UPGRADE,
        hyper::header::HeaderValue::from_static("websocket"),
    );
    h.insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("Upgrade"),
    );
    h.insert(
        "Sec-WebSocket-Accept",
        hyper::header::HeaderValue::from_str(&websocket_accept(&key))
            .expect("base64 is a valid header value"),
    );
    Ok(r)
}

/// What an attach asks for.
struct AttachOptions {
    stdin: bool,
    stdout: bool,
    stderr: bool,
    stream: bool,
    logs: bool,
    detach_keys: DetachKeys,
    tty: bool,
}

impl AttachOptions {
    fn shim_request(&self) -> shim::Request {
        shim::Request::Attach {
            stdin: self.stdin,
            stdout: self.stdout,
            stderr: self.stderr,
        }
    }
}

/// A streaming attach to a container that is not running: the next
/// `start` connects it to the shim before the process runs (so it sees
/// all output) and hands the connection over. None otherwise (the session
/// connects itself).
fn hand_over_at_start(
    engine: &Engine,
    id: &str,
    opts: &AttachOptions,
    running: bool,
) -> Option<tokio::sync::oneshot::Receiver<std::os::unix::net::UnixStream>> {
    if !opts.stream || running {
        return None;
    }
    engine
        .containers
        .attach_before_start(id, opts.shim_request())
}

/// One attach: the log replayed, then the live streams relayed; `handed`
/// is the shim connection `start` will hand over (`hand_over_at_start`).
async fn attach_session<C>(
    engine: Arc<Engine>,
    id: String,
    opts: AttachOptions,
    handed: Option<tokio::sync::oneshot::Receiver<std::os::unix::net::UnixStream>>,
    mut client: C,
) where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    if opts.logs {
        let path = engine.table.dir(&id).join("container-json.log");
        let entries = tokio::task::spawn_blocking(move || logfile::read_with_offset(&path))
            .await
            .ok()
            .and_then(|r| r.ok())
            .map(|(entries, _)| entries)
            .unwrap_or_default();
        for e in &entries {
            let stream = if e.stream == "stderr" { 2 } else { 1 };
            if (stream == 1 && !opts.stdout) || (stream == 2 && !opts.stderr) {
                continue;
            }
            let data = if opts.tty {
                e.log.as_bytes().to_vec()
            } else {
                frame(stream, e.log.as_bytes())
            };
            if client.write_all(&data).await.is_err() {
                return;
            }
        }
    }
    if !opts.stream {
        let _ = client.shutdown().await;
        return;
    }
    let conn = match handed {
        Some(handed) => tokio::time::timeout(Duration::from_secs(60), handed)
            .await
            .ok()
            .and_then(|c| c.ok()),
        None => {
            let dir = engine.table.dir(&id);
            let want = opts.shim_request();
            tokio::task::spawn_blocking(move || {
                // A container that exited has nothing to stream.
                if shim::read_exit(&dir).is_some() {
                    return None;
                }
                shim::connect(&dir, &want).ok()
            })
            .await
            .ok()
            .flatten()
        }
    };
    let Some(conn) = conn else {
        let _ = client.shutdown().await;
        return;
    };
    let _ = conn.set_nonblocking(true);
    let Ok(shim_conn) = tokio::net::UnixStream::from_std(conn) else {
        return;
    };
    let detach = (opts.tty && opts.stdin).then_some(opts.detach_keys);
    relay(client, shim_conn, opts.stdin, detach).await;
}

/// Copies client input to the shim (when stdin is attached) and the shim's
/// output to the client, until the shim closes (the container exited) or
/// the client sends the `detach` keys (then the connection is closed and
/// the container runs on).
async fn relay<C>(
    client: C,
    shim_conn: tokio::net::UnixStream,
    stdin: bool,
    mut detach: Option<DetachKeys>,
) where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut client_r, mut client_w) = tokio::io::split(client);
    let (mut shim_r, mut shim_w) = shim_conn.into_split();
    let (detached_tx, mut detached_rx) = tokio::sync::oneshot::channel::<()>();
    // The docker CLI half-closes its side when it sends no input; that must
    // not close the shim connection, so the write half is handed back and
    // kept until the output ends.
    let input = tokio::spawn(async move {
        let mut buf = [0u8; 8192];
        loop {
            match client_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) if stdin => {
                    let (data, detached) = match detach.as_mut() {
                        Some(keys) => keys.scan(&buf[..n]),
                        None => (buf[..n].to_vec(), false),
                    };
                    if !data.is_empty() && shim_w.write_all(&data).await.is_err() {
                        break;
                    }
                    if detached {
                        let _ = detached_tx.send(());
                        return None;
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
        Some(shim_w)
    });
    tokio::select! {
        _ = tokio::io::copy(&mut shim_r, &mut client_w) => {}
        Ok(()) = &mut detached_rx => {}
    }
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
