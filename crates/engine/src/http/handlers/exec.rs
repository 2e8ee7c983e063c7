//! `/containers/{id}/exec` and `/exec/...`: exec instances are created,
//! started (detached, over pipes, or with a terminal whose master the
//! daemon holds for resize), resized and inspected.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::http::plumbing::{
    blocking, empty, frame, json, parse_json, read_body, read_body_ref, upgraded_response,
    wants_upgrade, Body, DetachKeys, Query,
};

/// `POST /containers/{id}/exec`.
pub(crate) async fn create(
    engine: Arc<Engine>,
    req: Request<Incoming>,
    id: String,
) -> Result<Response<Body>> {
    let body = read_body(req, 1 << 20).await?;
    let mut cfg: cais_api::ExecConfig = parse_json(&body)?;
    if cfg.detach_keys.is_empty() {
        // Go's JSON decoding matches names without case: the Python SDK
        // sends `detachKeys`.
        if let Ok(serde_json::Value::Object(m)) = serde_json::from_slice(&body) {
            if let Some(k) = m
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("detachkeys"))
                .and_then(|(_, v)| v.as_str())
            {
                cfg.detach_keys = k.to_string();
            }
        }
    }
    DetachKeys::parse(&cfg.detach_keys)?;
    let exec_id = blocking(move || engine.execs.create(&id, cfg)).await?;
    Ok(json(
        StatusCode::CREATED,
        &serde_json::json!({"Id": exec_id}),
    ))
}

/// `GET /exec/{id}/json`.
pub(crate) async fn inspect(engine: Arc<Engine>, id: String) -> Result<Response<Body>> {
    let r = blocking(move || engine.execs.inspect(&id)).await?;
    Ok(json(StatusCode::OK, &r))
}

/// `POST /exec/{id}/resize?h=&w=`.
pub(crate) fn resize(engine: &Engine, id: &str, query: &Query) -> Result<Response<Body>> {
    let (h, w) = (query.int("h")?.unwrap_or(0), query.int("w")?.unwrap_or(0));
    engine.execs.resize(id, h as u16, w as u16)?;
    Ok(empty(StatusCode::OK))
}

/// `POST /exec/{id}/start`. The output is framed (docker's multiplexed
/// stream) unless the start request says `Tty`, whatever the process has:
/// an exec with a terminal started without `Tty` sends the terminal's
/// output as stdout frames, as dockerd does. A process that cannot be
/// started (no such program) ends with dockerd's message and code 126.
pub(crate) async fn start(
    engine: Arc<Engine>,
    mut req: Request<Incoming>,
    exec_id: String,
) -> Result<Response<Body>> {
    let body = read_body_ref(&mut req).await?;
    let start: cais_api::ExecStartConfig = parse_json(&body)?;
    let inspect = engine.execs.inspect(&exec_id)?;
    let terminal = inspect.process_config["tty"].as_bool().unwrap_or(false);
    let framed = !start.tty;
    if start.detach {
        let e = engine.clone();
        let id = exec_id.clone();
        blocking(move || {
            let (mut cmd, _, _) = e.execs.command(&id, None, true)?;
            let out = cmd.output().map_err(Error::spawn(&e.cfg.binary))?;
            if !out.status.success() {
                e.execs.finished(&id, 126);
                return Err(Error::Failed {
                    program: "cais runtime exec",
                    message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                });
            }
            let _ = e.execs.started(&id);
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
    // Detach keys apply to input typed at a terminal, as dockerd's.
    let detach = if terminal && inspect.open_stdin {
        Some(DetachKeys::parse(
            &engine.execs.detach_keys(&exec_id).unwrap_or_default(),
        )?)
    } else {
        None
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let dir = engine.table.dir(&inspect.container_id);
    let e = engine.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            e.execs.finished(&exec_id, 126);
            return;
        };
        let io = TokioIo::new(upgraded);
        let session = Session {
            exec_id: &exec_id,
            framed,
            detach,
        };
        let code = if terminal {
            exec_tty(&e, &session, &dir, io).await
        } else {
            exec_pipes(&e, &session, io, inspect.open_stdin).await
        };
        if let Some(code) = code {
            e.execs.finished(&exec_id, code);
        }
    });
    Ok(upgraded_response(!framed))
}

/// How one exec start talks to its client.
struct Session<'a> {
    exec_id: &'a str,
    /// Multiplexed frames (stdout 1, stderr 2) rather than raw bytes.
    framed: bool,
    /// The detach keys, when input goes to a terminal.
    detach: Option<DetachKeys>,
}

impl Session<'_> {
    /// `data` as the client gets it from `stream`.
    fn wrap(&self, stream: u8, data: &[u8]) -> Vec<u8> {
        if self.framed {
            frame(stream, data)
        } else {
            data.to_vec()
        }
    }
}

/// The exit code of an exec whose `cais runtime exec` ended: the process's,
/// or 126 with dockerd's message to the client when it never started
/// (`runtime_stderr` says why).
fn failed_start_message(runtime_stderr: &str) -> String {
    let why = runtime_stderr
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("the process could not be started")
        .trim()
        .trim_start_matches("error: ")
        .trim_start_matches("container init failed: ");
    format!("OCI runtime exec failed: exec failed: unable to start container process: {why}: unknown\r\n")
}

/// Runs an exec without a terminal over pipes; `None` when the client
/// detached (the process runs on, its exit recorded by a waiter).
async fn exec_pipes<C>(
    engine: &Arc<Engine>,
    session: &Session<'_>,
    client: C,
    stdin: bool,
) -> Option<i64>
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let exec_id = session.exec_id;
    let (mut client_r, mut client_w) = tokio::io::split(client);
    let Ok((cmd, _, _)) = engine.execs.command(exec_id, None, false) else {
        let _ = client_w
            .write_all(&session.wrap(2, b"exec failed to start\n"))
            .await;
        return Some(126);
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
        return Some(126);
    };
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
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(u8, Vec<u8>)>(64);
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
                    if n == 0 || tx.send((stream, buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            });
        }
    }
    drop(tx);
    // Stderr is held back until the process runs: before that, what comes
    // is the runtime's own error.
    let mut held: Vec<u8> = Vec::new();
    let mut running = false;
    while let Some((stream, data)) = rx.recv().await {
        if !running {
            running = engine.execs.started(exec_id).is_some();
        }
        if stream == 2 && !running {
            held.extend_from_slice(&data);
            continue;
        }
        if !held.is_empty() {
            let _ = client_w.write_all(&session.wrap(2, &held)).await;
            held.clear();
        }
        if client_w
            .write_all(&session.wrap(stream, &data))
            .await
            .is_err()
        {
            break;
        }
    }
    let status = child.wait().await.ok();
    let code = if engine.execs.started(exec_id).is_some() {
        if !held.is_empty() {
            let _ = client_w.write_all(&session.wrap(2, &held)).await;
        }
        status.and_then(|s| s.code()).unwrap_or(126) as i64
    } else {
        let message = failed_start_message(&String::from_utf8_lossy(&held));
        let _ = client_w
            .write_all(&session.wrap(1, message.as_bytes()))
            .await;
        126
    };
    // The exit code is recorded before the client sees the end of the
    // stream: the docker CLI asks for it right then.
    engine.execs.finished(exec_id, code);
    let _ = client_w.shutdown().await;
    input.abort();
    Some(code)
}

/// Runs an exec with a terminal whose master the daemon holds (for
/// resize); `None` when the client detached: the process runs on and a
/// waiter records its exit.
async fn exec_tty<C>(
    engine: &Arc<Engine>,
    session: &Session<'_>,
    dir: &Path,
    client: C,
) -> Option<i64>
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let exec_id = session.exec_id;
    let sock = dir.join(format!("exec-{}.sock", &exec_id[..12]));
    let _ = std::fs::remove_file(&sock);
    let Ok(listener) =
        cais_runtime::with_short_path(&sock, |p| std::os::unix::net::UnixListener::bind(p))
    else {
        return Some(126);
    };
    let Ok((cmd, _, _)) = engine.execs.command(exec_id, Some(&sock), false) else {
        return Some(126);
    };
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let Ok(mut child) = cmd.spawn() else {
        return Some(126);
    };
    let mut runtime_err = child.stderr.take();
    let (mut client_r, mut client_w) = tokio::io::split(client);
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
            let mut text = String::new();
            if let Some(e) = runtime_err.as_mut() {
                let _ = e.read_to_string(&mut text).await;
            }
            let message = failed_start_message(&text);
            let _ = client_w
                .write_all(&session.wrap(1, message.as_bytes()))
                .await;
            let _ = client_w.shutdown().await;
            return Some(126);
        }
    };
    let _ = std::fs::remove_file(&sock);
    let master = Arc::new(master);
    engine.execs.set_terminal(exec_id, master.clone());
    let Ok(dup) = master.try_clone() else {
        return Some(126);
    };
    let Ok(dup2) = master.try_clone() else {
        return Some(126);
    };
    let mut reader = tokio::fs::File::from_std(std::fs::File::from(dup));
    let mut writer = tokio::fs::File::from_std(std::fs::File::from(dup2));
    let (detached_tx, mut detached_rx) = tokio::sync::oneshot::channel::<()>();
    let mut detach = session.detach.clone();
    let input = tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        while let Ok(n) = client_r.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let (data, detached) = match detach.as_mut() {
                Some(keys) => keys.scan(&buf[..n]),
                None => (buf[..n].to_vec(), false),
            };
            if !data.is_empty() && writer.write_all(&data).await.is_err() {
                break;
            }
            let _ = writer.flush().await;
            if detached {
                let _ = detached_tx.send(());
                break;
            }
        }
    });
    let framed = session.framed;
    let output = tokio::spawn(async move {
        let mut buf = [0u8; 8192];
        loop {
            tokio::select! {
                // EIO once the last process holding the terminal exits.
                r = reader.read(&mut buf) => {
                    let n = match r {
                        Ok(n) if n > 0 => n,
                        _ => break,
                    };
                    let data = if framed { frame(1, &buf[..n]) } else { buf[..n].to_vec() };
                    if client_w.write_all(&data).await.is_err() {
                        break;
                    }
                }
                Ok(()) = &mut detached_rx => {
                    // The client detached: its connection closes now.
                    let _ = client_w.shutdown().await;
                    return None;
                }
            }
        }
        Some(client_w)
    });
    let wait_exit = {
        let e = engine.clone();
        let id = exec_id.to_string();
        async move {
            let status = child.wait().await.ok();
            let started = e.execs.started(&id).is_some();
            let code = if started {
                status.and_then(|s| s.code()).unwrap_or(126) as i64
            } else {
                126
            };
            // Record the exit code before the client sees the end of the
            // stream.
            e.execs.finished(&id, code);
            started
        }
    };
    let wait_exit = tokio::spawn(wait_exit);
    let output = output.await.ok().flatten();
    let Some(mut client_w) = output else {
        // Detached: the waiter records the exit; the terminal goes with it.
        input.abort();
        let e = engine.clone();
        let id = exec_id.to_string();
        tokio::spawn(async move {
            let _ = wait_exit.await;
            e.execs.clear_terminal(&id);
        });
        return None;
    };
    let started = wait_exit.await.unwrap_or(false);
    if !started {
        let mut text = String::new();
        if let Some(e) = runtime_err.as_mut() {
            let _ = e.read_to_string(&mut text).await;
        }
        let message = failed_start_message(&text);
        let _ = client_w
            .write_all(&session.wrap(1, message.as_bytes()))
            .await;
    }
    let _ = client_w.shutdown().await;
    input.abort();
    engine.execs.clear_terminal(exec_id);
    // The waiter recorded the exit code.
    None
}
