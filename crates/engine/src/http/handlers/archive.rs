//! `HEAD|GET|PUT /containers/{id}/archive?path=`: `docker cp` through the
//! helper of `crate::archive`, which alone resolves paths inside the
//! container.

use std::io::Write;
use std::process::Stdio;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};

use crate::archive::{helper, path_stat, Bind};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::http::plumbing::{blocking, channel_body, empty, streaming, Body};

/// The container's volumes and bind mounts as the helper binds them, outer
/// destinations first (tmpfs mounts live in the container only).
fn binds_of(engine: &Engine, id: &str) -> Result<Vec<Bind>> {
    let rec = engine.table.get(id)?;
    let mut binds: Vec<Bind> = rec
        .mounts
        .iter()
        .filter(|m| matches!(m.kind.as_str(), "volume" | "bind") && !m.source.is_empty())
        .map(|m| Bind {
            source: m.source.clone().into(),
            destination: m.destination.clone().into(),
            readonly: !m.rw,
        })
        .collect();
    binds.sort_by_key(|b| b.destination.components().count());
    Ok(binds)
}

/// `HEAD|GET /containers/{id}/archive?path=`.
pub(crate) async fn get(
    engine: Arc<Engine>,
    id: String,
    path: String,
    head_only: bool,
) -> Result<Response<Body>> {
    let e = engine.clone();
    let p = path.clone();
    let (root, mounted_here, stat, binds) = blocking(move || {
        let binds = binds_of(&e, &id)?;
        let (root, mounted_here) = e.containers.mount_rootfs(&id)?;
        match path_stat(&e.cfg.binary, &root, &binds, &p) {
            Ok(stat) => Ok((root, mounted_here, stat, binds)),
            Err(err) => {
                if mounted_here {
                    let _ = cais_image::snapshot::unmount(&root);
                }
                Err(err)
            }
        }
    })
    .await?;
    let header = HeaderValue::from_str(&stat).expect("base64 is a valid header value");
    if head_only {
        if mounted_here {
            let _ = cais_image::snapshot::unmount(&root);
        }
        let mut r = empty(StatusCode::OK);
        r.headers_mut()
            .insert("X-Docker-Container-Path-Stat", header);
        return Ok(r);
    }
    let (tx, body) = channel_body();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        if let Ok(mut child) = helper(&engine.cfg.binary, &root, &binds, "get", &path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
        {
            if let Some(mut out) = child.stdout.take() {
                let mut buf = vec![0u8; 256 * 1024];
                while let Ok(n) = out.read(&mut buf) {
                    if n == 0 || tx.blocking_send(Bytes::copy_from_slice(&buf[..n])).is_err() {
                        break;
                    }
                }
            }
            let _ = child.wait();
        }
        if mounted_here {
            let _ = cais_image::snapshot::unmount(&root);
        }
    });
    let mut r = streaming(body, "application/x-tar");
    r.headers_mut()
        .insert("X-Docker-Container-Path-Stat", header);
    Ok(r)
}

/// `PUT /containers/{id}/archive?path=DIR`: extracts the body's tar there,
/// owned by the container's root, or as the tar says with `keep_owners`
/// (`copyUIDGID=1`, `docker cp -a`).
pub(crate) async fn put(
    engine: Arc<Engine>,
    req: Request<Incoming>,
    id: String,
    path: String,
    keep_owners: bool,
) -> Result<Response<Body>> {
    use http_body_util::BodyExt;
    let e = engine.clone();
    let (root, mounted_here, binds) = blocking(move || {
        let binds = binds_of(&e, &id)?;
        let (root, mounted_here) = e.containers.mount_rootfs(&id)?;
        Ok((root, mounted_here, binds))
    })
    .await?;
    let mut child = helper(
        &engine.cfg.binary,
        &root,
        &binds,
        if keep_owners { "put-owned" } else { "put" },
        &path,
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .map_err(Error::spawn(&engine.cfg.binary))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let mut body = req.into_body();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Bytes>(16);
    let writer = tokio::task::spawn_blocking(move || {
        for chunk in rx {
            if stdin.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| Error::InvalidArgument(format!("reading the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if tx.send(data).is_err() {
                break;
            }
        }
    }
    drop(tx);
    let _ = writer.await;
    let binary = engine.cfg.binary.clone();
    let out = blocking(move || {
        let out = child.wait_with_output().map_err(Error::spawn(binary))?;
        if mounted_here {
            let _ = cais_image::snapshot::unmount(&root);
        }
        Ok(out)
    })
    .await?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(Error::Archive {
            missing: msg.contains("Could not find"),
            message: msg,
        });
    }
    Ok(empty(StatusCode::OK))
}
