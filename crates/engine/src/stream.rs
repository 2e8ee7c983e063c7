//! The streaming endpoints: logs, attach, exec start, stats.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::logfile;
use crate::server::{blocking, channel_body, empty, Body, Query};
use crate::shim;

/// Docker's multiplexed stream frame: stream byte, three zeros, size.
pub fn frame(stream: u8, data: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(data.len() + 8);
    f.push(stream);
    f.extend_from_slice(&[0, 0, 0]);
    f.extend_from_slice(&(data.len() as u32).to_be_bytes());
    f.extend_from_slice(data);
    f
}

fn stream_type(tty: bool) -> &'static str {
    if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }
}

/// `GET /containers/{id}/logs`.
pub fn logs(engine: Arc<Engine>, id: &str, q: &Query) -> Result<Response<Body>> {
    let rec = engine.record(id)?;
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
    let since = q.get("since").and_then(parse_unix).unwrap_or(i64::MIN);
    let until = q.get("until").and_then(parse_unix).unwrap_or(i64::MAX);
    let tail: Option<usize> = q
        .get("tail")
        .filter(|t| *t != "all")
        .and_then(|t| t.parse().ok());
    let path = engine.container_dir(id).join("container-json.log");
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
            tokio::task::spawn_blocking(move || read_with_offset(&p)).await
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
            let Ok(Ok((new, next))) = tokio::task::spawn_blocking(move || read_from(&p, off)).await
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
                .record(&id)
                .map(|r| r.state.running || r.state.restarting)
                .unwrap_or(false);
            if !running && new.is_empty() {
                return;
            }
        }
    });
    let mut r = Response::new(body);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(stream_type(tty)));
    Ok(r)
}

fn parse_unix(s: &str) -> Option<i64> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: String = frac.chars().take(9).collect();
    while nanos.len() < 9 {
        nanos.push('0');
    }
    Some(secs * 1_000_000_000 + nanos.parse::<i64>().unwrap_or(0))
}

/// Every record (rotated files first) and the end offset of the current file.
fn read_with_offset(path: &Path) -> std::io::Result<(Vec<logfile::Entry>, u64)> {
    let mut all = logfile::read_rotated(path)?;
    let (current, end) = read_from(path, 0)?;
    all.extend(current);
    Ok((all, end))
}

/// Records of the current log file from `offset`; a shorter file than
/// `offset` was rotated, so it is read from the start.
fn read_from(path: &Path, offset: u64) -> std::io::Result<(Vec<logfile::Entry>, u64)> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let start = if (data.len() as u64) < offset {
        0
    } else {
        offset as usize
    };
    let chunk = &data[start..];
    // Only whole lines: a record being written is read next time.
    let end = chunk
        .iter()
        .rposition(|b| *b == b'\n')
        .map(|p| p + 1)
        .unwrap_or(0);
    let entries = chunk[..end]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect();
    Ok((entries, (start + end) as u64))
}

fn wants_upgrade(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("tcp"))
}

fn upgraded_response(tty: bool) -> Response<Body> {
    let mut r = empty(StatusCode::SWITCHING_PROTOCOLS);
    r.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    r.headers_mut()
        .insert(UPGRADE, HeaderValue::from_static("tcp"));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(stream_type(tty)));
    r
}

/// `POST /containers/{id}/attach`: relays between the client and the shim.
pub async fn attach(
    engine: Arc<Engine>,
    mut req: Request<Incoming>,
    id: String,
    q: &Query,
) -> Result<Response<Body>> {
    let rec = engine.record(&id)?;
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
    let dir = engine.container_dir(&id);
    let not_started = !rec.state.running;
    if not_started {
        engine.attach_pending(&id, 1);
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        // Before start, wait for the shim's socket: `start` waits for us.
        let e2 = engine.clone();
        let id2 = id.clone();
        let conn = tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            loop {
                let sock_ready =
                    dir.join("attach.sock").exists() && shim::read_exit(&dir).is_none();
                if sock_ready {
                    if let Ok(s) = shim::connect(&dir, &want) {
                        return Some(s);
                    }
                }
                let gone = e2.record(&id2).is_err();
                if gone || std::time::Instant::now() > deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
        .await
        .ok()
        .flatten();
        if not_started {
            engine.attach_pending(&id, -1);
        }
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

/// Terminal masters of running execs, for resize.
fn exec_ttys() -> &'static Mutex<HashMap<String, Arc<OwnedFd>>> {
    static TTYS: OnceLock<Mutex<HashMap<String, Arc<OwnedFd>>>> = OnceLock::new();
    TTYS.get_or_init(|| Mutex::new(HashMap::new()))
}

pub fn exec_resize(exec_id: &str, h: u16, w: u16) -> Result<()> {
    let ttys = exec_ttys().lock().unwrap_or_else(|p| p.into_inner());
    let master = ttys.get(exec_id).ok_or_else(|| {
        Error::NotFound(format!("No such exec instance with a terminal: {exec_id}"))
    })?;
    set_size(master.as_raw_fd(), h, w);
    Ok(())
}

fn set_size(fd: i32, h: u16, w: u16) {
    let ws = libc::winsize {
        ws_row: h,
        ws_col: w,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ with a valid winsize on our fd.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
}

/// `POST /exec/{id}/start`.
pub async fn exec_start(
    engine: Arc<Engine>,
    mut req: Request<Incoming>,
    exec_id: String,
) -> Result<Response<Body>> {
    let body = crate::server::read_body_ref(&mut req).await?;
    let start: cais_api::ExecStartConfig = crate::server::parse_json(&body)?;
    let inspect = engine.exec_inspect(&exec_id)?;
    let tty = start.tty || inspect.process_config["tty"].as_bool().unwrap_or(false);
    if start.detach {
        let e = engine.clone();
        let id = exec_id.clone();
        blocking(move || {
            let (mut cmd, _, _) = e.exec_command(&id, None, true)?;
            let out = cmd
                .output()
                .map_err(|err| Error::internal("running exec", err))?;
            if !out.status.success() {
                e.exec_finished(&id, 126);
                return Err(Error::Internal(
                    String::from_utf8_lossy(&out.stderr).trim().to_string(),
                ));
            }
            Ok(())
        })
        .await?;
        // The detached process is not waited for; its exit code is unknown.
        return Ok(empty(StatusCode::OK));
    }
    if !wants_upgrade(&req) {
        return Err(Error::InvalidArgument(
            "exec start needs an upgraded connection (Upgrade: tcp)".into(),
        ));
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    let dir = engine.container_dir(&inspect.container_id);
    let e = engine.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            e.exec_finished(&exec_id, 126);
            return;
        };
        let io = TokioIo::new(upgraded);
        let code = if tty {
            exec_tty(&e, &exec_id, &dir, io).await
        } else {
            exec_pipes(&e, &exec_id, io, inspect.open_stdin).await
        };
        e.exec_finished(&exec_id, code);
    });
    Ok(upgraded_response(tty))
}

async fn exec_pipes<C>(engine: &Arc<Engine>, exec_id: &str, client: C, stdin: bool) -> i64
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut client_r, mut client_w) = tokio::io::split(client);
    let Ok((cmd, _, _)) = engine.exec_command(exec_id, None, false) else {
        let _ = client_w
            .write_all(&frame(2, b"exec failed to start\n"))
            .await;
        return 126;
    };
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdin(if stdin {
        std::process::Stdio::piped()
    } else {
        std::process::Stdio::null()
    })
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let Ok(mut child) = cmd.spawn() else {
        return 126;
    };
    if let Some(pid) = child.id() {
        engine.exec_set_pid(exec_id, pid as i64);
    }
    let mut child_in = child.stdin.take();
    let input = tokio::spawn(async move {
        let mut buf = [0u8; 8192];
        loop {
            match client_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Some(w) = child_in.as_mut() {
                        if w.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
        // Closing the process's stdin tells it input ended.
        drop(child_in);
    });
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    for (pipe, stream) in [
        (
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            1u8,
        ),
        (
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            2u8,
        ),
    ] {
        if let Some(mut p) = pipe {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                while let Ok(n) = p.read(&mut buf).await {
                    if n == 0 || tx.send(frame(stream, &buf[..n])).await.is_err() {
                        break;
                    }
                }
            });
        }
    }
    drop(tx);
    while let Some(f) = rx.recv().await {
        if client_w.write_all(&f).await.is_err() {
            break;
        }
    }
    let code = child
        .wait()
        .await
        .ok()
        .and_then(|s| s.code())
        .unwrap_or(126) as i64;
    // The exit code is recorded before the client sees the end of the
    // stream: the docker CLI asks for it right then.
    engine.exec_finished(exec_id, code);
    let _ = client_w.shutdown().await;
    input.abort();
    code
}

async fn exec_tty<C>(engine: &Arc<Engine>, exec_id: &str, dir: &Path, client: C) -> i64
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let sock = dir.join(format!("exec-{}.sock", &exec_id[..12]));
    let _ = std::fs::remove_file(&sock);
    let Ok(listener) =
        cais_runtime::with_short_path(&sock, |p| std::os::unix::net::UnixListener::bind(p))
    else {
        return 126;
    };
    let Ok((cmd, _, _)) = engine.exec_command(exec_id, Some(&sock), false) else {
        return 126;
    };
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let Ok(mut child) = cmd.spawn() else {
        return 126;
    };
    let master = tokio::task::spawn_blocking(move || {
        let _ = listener.set_nonblocking(false);
        let (conn, _) = listener.accept().ok()?;
        cais_runtime::console::recv_fd(conn.as_raw_fd()).ok()
    });
    let master = match tokio::time::timeout(Duration::from_secs(30), master).await {
        Ok(Ok(Some(m))) => m,
        _ => {
            let _ = child.kill().await;
            let _ = std::fs::remove_file(&sock);
            return 126;
        }
    };
    let _ = std::fs::remove_file(&sock);
    let master = Arc::new(master);
    exec_ttys()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(exec_id.to_string(), master.clone());
    let Ok(dup) = master.try_clone() else {
        return 126;
    };
    let Ok(dup2) = master.try_clone() else {
        return 126;
    };
    let mut reader = tokio::fs::File::from_std(std::fs::File::from(dup));
    let mut writer = tokio::fs::File::from_std(std::fs::File::from(dup2));
    let (mut client_r, mut client_w) = tokio::io::split(client);
    let input = tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        while let Ok(n) = client_r.read(&mut buf).await {
            if n == 0 || writer.write_all(&buf[..n]).await.is_err() {
                break;
            }
            let _ = writer.flush().await;
        }
    });
    let output = tokio::spawn(async move {
        let mut buf = [0u8; 8192];
        // EIO once the last process holding the terminal exits.
        while let Ok(n) = reader.read(&mut buf).await {
            if n == 0 || client_w.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        client_w
    });
    let code = child
        .wait()
        .await
        .ok()
        .and_then(|s| s.code())
        .unwrap_or(126) as i64;
    // Record the exit code before the client sees the end of the stream.
    engine.exec_finished(exec_id, code);
    if let Ok(Ok(mut client_w)) = tokio::time::timeout(Duration::from_secs(2), output).await {
        let _ = client_w.shutdown().await;
    }
    input.abort();
    exec_ttys()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(exec_id);
    code
}

/// `GET /containers/{id}/stats`: one sample, or one a second with `stream`.
pub fn stats(engine: Arc<Engine>, id: String, q: &Query) -> Result<Response<Body>> {
    let stream = q.get("stream").is_none_or(|v| v == "1" || v == "true");
    let one_shot = q.flag("one-shot");
    let (tx, body) = channel_body();
    tokio::spawn(async move {
        let mut pre: Option<serde_json::Value> = None;
        if !stream && !one_shot {
            // Two samples, so the client can compute CPU usage.
            let e = engine.clone();
            let i = id.clone();
            pre = tokio::task::spawn_blocking(move || e.stats(&i).ok())
                .await
                .ok()
                .flatten();
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        loop {
            let e = engine.clone();
            let i = id.clone();
            let Ok(Ok(mut s)) = tokio::task::spawn_blocking(move || e.stats(&i)).await else {
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
    let mut r = Response::new(body);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(r)
}

/// `GET /containers/{id}/export`: the container's filesystem as a tar.
pub async fn export(engine: Arc<Engine>, id: String) -> Result<Response<Body>> {
    let e = engine.clone();
    let i = id.clone();
    // A stopped container's overlay is mounted for the export and
    // unmounted after.
    let (target, mounted_here) = blocking(move || e.mount_rootfs(&i)).await?;
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
    let mut r = Response::new(body);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
    Ok(r)
}
