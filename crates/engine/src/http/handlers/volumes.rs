//! `/volumes/...`: list, create, prune, inspect and remove.

use std::collections::BTreeMap;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use crate::engine::Engine;
use crate::error::{Error, Kind, Result};
use crate::filters;
use crate::http::plumbing::{blocking, empty, json, parse_json, read_body, Body, Query};

/// `GET /volumes`.
pub(crate) async fn list(engine: Arc<Engine>, query: &Query) -> Result<Response<Body>> {
    let filters = query.filters(filters::VOLUME_LIST)?;
    let dangling = filters.boolean("dangling")?;
    let list = blocking(move || {
        let mut vols = engine.volumes.list();
        vols.retain(|v| {
            dangling.is_none_or(|d| engine.table.volume_users(&v.name).is_empty() == d)
                && filters.any("name", |n| filters::name_matches(n, &v.name))
                && filters.any("driver", |d| d == v.driver)
                && filters.labels_match(&v.labels)
        });
        Ok(vols)
    })
    .await?;
    Ok(json(
        StatusCode::OK,
        &cais_api::VolumeList {
            volumes: list,
            warnings: Vec::new(),
        },
    ))
}

/// `POST /volumes/create`.
pub(crate) async fn create(engine: Arc<Engine>, req: Request<Incoming>) -> Result<Response<Body>> {
    let body = read_body(req, 1 << 20).await?;
    let mut r: cais_api::VolumeCreateRequest = parse_json(&body)?;
    if r.name.is_empty() {
        r.name = format!("{:016x}{:016x}", rand64(), rand64());
    }
    if !r.driver.is_empty() && r.driver != "local" {
        return Err(Error::not_found(Kind::Plugin, r.driver));
    }
    let v = blocking(move || {
        let v = engine.volumes.create(&r.name, r.labels)?;
        engine.events.emit(
            "volume",
            "create",
            &v.name,
            BTreeMap::from([("driver".to_string(), "local".to_string())]),
        );
        Ok(v)
    })
    .await?;
    Ok(json(StatusCode::CREATED, &v))
}

/// `POST /volumes/prune`.
pub(crate) async fn prune(engine: Arc<Engine>, query: &Query) -> Result<Response<Body>> {
    let filters = query.filters(filters::VOLUME_PRUNE)?;
    let deleted = blocking(move || {
        let mut out = Vec::new();
        for v in engine.volumes.list() {
            // Docker prunes anonymous volumes only unless all=true.
            if filters.labels_match(&v.labels)
                && engine.table.volume_users(&v.name).is_empty()
                && engine.volumes.remove(&v.name, &[]).is_ok()
            {
                out.push(v.name);
            }
        }
        Ok(out)
    })
    .await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"VolumesDeleted": deleted, "SpaceReclaimed": 0}),
    ))
}

/// `GET /volumes/{name}`.
pub(crate) async fn inspect(engine: Arc<Engine>, name: String) -> Result<Response<Body>> {
    let v = blocking(move || engine.volumes.inspect(&name)).await?;
    Ok(json(StatusCode::OK, &v))
}

/// `DELETE /volumes/{name}?force=`.
pub(crate) async fn remove(
    engine: Arc<Engine>,
    name: String,
    query: &Query,
) -> Result<Response<Body>> {
    let force = query.flag("force");
    blocking(move || {
        let users = if force {
            Vec::new()
        } else {
            engine.table.volume_users(&name)
        };
        engine.volumes.remove(&name, &users)?;
        engine
            .events
            .emit("volume", "destroy", &name, BTreeMap::new());
        Ok(())
    })
    .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

fn rand64() -> u64 {
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    u64::from_le_bytes(b)
}
