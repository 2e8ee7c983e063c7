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
    wants_upgrade, Body, Query,
};

/// `POST /containers/{id}/exec`.
pub(crate) async fn create(
    engine: Arc<Engine>,
    req: Request<Incoming>,
    id: String,
) -> Result<Response<Body>> {
    let body = read_body(req, 1 << 20).await?;
    let cfg: cais_api::ExecConfig = parse_json(&body)?;
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

/// `POST /exec/{id}/start`.
pub(crate) async fn start(
    engine: Arc<Engine>,
    mut req: Request<Incoming>,
    exec_id: String,
) -> Result<Response<Body>> {
    let body = read_body_ref(&mut req).await?;
    let start: cais_api::ExecStartConfig = parse_json(&body)?;
    let inspect = engine.execs.inspect(&exec_id)?;
    let tty = start.tty || inspect.process_config["tty"].as_bool().unwrap_or(false);
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
    let dir = engine.table.dir(&inspect.container_id);
    let e = engine.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            e.execs.finished(&exec_id, 126);
            return;
        };
        let io = TokioIo::new(upgraded);
        let code = if tty {
            exec_tty(&e, &exec_id, &dir, io).await
        } else {
            exec_pipes(&e, &exec_id, io, inspect.open_stdin).await
        };
        e.execs.finished(&exec_id, code);
    });
    Ok(upgraded_response(tty))
}

async fn exec_pipes<C>(engine: &Arc<Engine>, exec_id: &str, client: C, stdin: bool) -> i64
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut client_r, mut client_w) = tokio::io::split(client);
    let Ok((cmd, _, _)) = engine.execs.command(exec_id, None, false) else {
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
        engine.execs.set_pid(exec_id, pid as i64);
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
    engine.execs.finished(exec_id, code);
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
    let Ok((cmd, _, _)) = engine.execs.command(exec_id, Some(&sock), false) else {
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
    engine.execs.set_terminal(exec_id, master.clone());
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
    engine.execs.finished(exec_id, code);
    if let Ok(Ok(mut client_w)) = tokio::time::timeout(Duration::from_secs(2), output).await {
        let _ = client_w.shutdown().await;
    }
    input.abort();
    engine.execs.clear_terminal(exec_id);
    code
}
