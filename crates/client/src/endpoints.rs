//! One method per engine API endpoint a client uses, so no caller spells a
//! path. Container, volume and network names are percent-encoded here;
//! image names go as they are (`/images/localhost:5000/app/json`, as the
//! docker CLI sends them). Endpoints with many optional parameters take
//! them as `(name, value)` query pairs, named as the API names them;
//! streamed answers come back as a [`Response`] whose body is read as it
//! arrives, upgraded ones as a [`Hijacked`] stream.

use std::io::Read;

use cais_api::{
    ContainerInspect, ContainerSummary, CreateResponse, ExecInspect, ImageSummary,
    NetworkConnectRequest, NetworkDisconnectRequest, Volume, VolumeCreateRequest, VolumeList,
};
use serde::Serialize;
use serde_json::Value;

use crate::http::{encode, with_query, Client, Hijacked, Response, Result};

/// Query pairs as the API names its parameters.
pub type Query<'a> = [(&'a str, String)];

fn flag(on: bool) -> String {
    u8::from(on).to_string()
}

impl Client {
    // ---- system -----------------------------------------------------------

    /// `GET /events`: a stream of JSON lines.
    pub fn events(&self, query: &Query) -> Result<Response> {
        self.request("GET", &with_query("/events", query), None)
    }

    /// A GET's body as the daemon sent it (field order kept, for
    /// `inspect` and `--format`).
    pub fn get_raw(&self, path: &str) -> Result<Vec<u8>> {
        let mut resp = self.request("GET", path, None)?;
        let mut data = Vec::new();
        resp.body.read_to_end(&mut data)?;
        Ok(data)
    }

    /// `GET /version`, as sent.
    pub fn version_raw(&self) -> Result<Vec<u8>> {
        self.get_raw("/version")
    }

    /// `GET /info`, as sent.
    pub fn info_raw(&self) -> Result<Vec<u8>> {
        self.get_raw("/info")
    }

    /// `GET /system/df`, as sent.
    pub fn system_df_raw(&self, query: &Query) -> Result<Vec<u8>> {
        self.get_raw(&with_query("/system/df", query))
    }

    /// `POST /build/prune`: the cache removed and the space it freed.
    pub fn build_prune(&self, query: &Query) -> Result<Value> {
        self.json::<(), _>("POST", &with_query("/build/prune", query), None)
    }

    // ---- containers -------------------------------------------------------

    /// `POST /containers/create`; the body is a [`cais_api::CreateRequest`], or any
    /// JSON with the API's field names (fields the API crate does not model).
    pub fn container_create<B: Serialize>(
        &self,
        name: Option<&str>,
        req: &B,
    ) -> Result<CreateResponse> {
        let q: Vec<_> = name.map(|n| ("name", n.to_string())).into_iter().collect();
        self.json("POST", &with_query("/containers/create", &q), Some(req))
    }

    pub fn container_list(&self, query: &Query) -> Result<Vec<ContainerSummary>> {
        self.get(&with_query("/containers/json", query))
    }

    pub fn container_inspect(&self, id: &str) -> Result<ContainerInspect> {
        self.get(&format!("/containers/{}/json", encode(id)))
    }

    /// The inspect document as the daemon sent it (for `--format`).
    pub fn container_inspect_value(&self, id: &str) -> Result<Value> {
        self.get(&format!("/containers/{}/json", encode(id)))
    }

    /// The inspect document's bytes, field order kept.
    pub fn container_inspect_raw(&self, id: &str) -> Result<Vec<u8>> {
        self.get_raw(&format!("/containers/{}/json", encode(id)))
    }

    /// `POST /containers/create?name=&platform=`.
    pub fn container_create_on<B: Serialize>(
        &self,
        name: Option<&str>,
        platform: Option<&str>,
        req: &B,
    ) -> Result<CreateResponse> {
        let mut q: Vec<_> = name.map(|n| ("name", n.to_string())).into_iter().collect();
        q.extend(platform.map(|p| ("platform", p.to_string())));
        self.json("POST", &with_query("/containers/create", &q), Some(req))
    }

    /// `GET /containers/{id}/changes`: `[{"Path", "Kind"}]` (0 changed,
    /// 1 added, 2 deleted).
    pub fn container_changes(&self, id: &str) -> Result<Vec<Value>> {
        let v: Option<Vec<Value>> = self.get(&format!("/containers/{}/changes", encode(id)))?;
        Ok(v.unwrap_or_default())
    }

    /// `GET /containers/{id}/export`: the root file system as a tar.
    pub fn container_export(&self, id: &str) -> Result<Response> {
        self.request("GET", &format!("/containers/{}/export", encode(id)), None)
    }

    /// `POST /containers/{id}/update`: new resources, restart policy.
    pub fn container_update(
        &self,
        id: &str,
        update: &cais_api::ContainerUpdate,
    ) -> Result<cais_api::UpdateResponse> {
        self.json(
            "POST",
            &format!("/containers/{}/update", encode(id)),
            Some(update),
        )
    }

    /// `HEAD /containers/{id}/archive?path=`: the path's stat, base64 JSON
    /// in the `X-Docker-Container-Path-Stat` header.
    pub fn container_archive_stat(&self, id: &str, path: &str) -> Result<Response> {
        self.request(
            "HEAD",
            &with_query(
                &format!("/containers/{}/archive", encode(id)),
                &[("path", path.to_string())],
            ),
            None,
        )
    }

    pub fn container_start(&self, id: &str) -> Result<()> {
        self.post(&format!("/containers/{}/start", encode(id)))
    }

    pub fn container_stop(
        &self,
        id: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        let mut q = Vec::new();
        if let Some(t) = timeout {
            q.push(("t", t.to_string()));
        }
        if let Some(s) = signal {
            q.push(("signal", s.to_string()));
        }
        self.post(&with_query(&format!("/containers/{}/stop", encode(id)), &q))
    }

    pub fn container_restart(&self, id: &str, timeout: Option<i64>) -> Result<()> {
        let q: Vec<_> = timeout.map(|t| ("t", t.to_string())).into_iter().collect();
        self.post(&with_query(
            &format!("/containers/{}/restart", encode(id)),
            &q,
        ))
    }

    /// Sends `signal`; with `KILL`, returns once the container has exited.
    pub fn container_kill(&self, id: &str, signal: &str) -> Result<()> {
        self.post(&with_query(
            &format!("/containers/{}/kill", encode(id)),
            &[("signal", signal.to_string())],
        ))
    }

    pub fn container_pause(&self, id: &str) -> Result<()> {
        self.post(&format!("/containers/{}/pause", encode(id)))
    }

    pub fn container_unpause(&self, id: &str) -> Result<()> {
        self.post(&format!("/containers/{}/unpause", encode(id)))
    }

    pub fn container_remove(&self, id: &str, force: bool, volumes: bool) -> Result<()> {
        let mut q = Vec::new();
        if force {
            q.push(("force", flag(true)));
        }
        if volumes {
            q.push(("v", flag(true)));
        }
        self.call::<()>(
            "DELETE",
            &with_query(&format!("/containers/{}", encode(id)), &q),
            None,
        )
        .map(drop)
    }

    pub fn container_rename(&self, id: &str, new_name: &str) -> Result<()> {
        self.post(&with_query(
            &format!("/containers/{}/rename", encode(id)),
            &[("name", new_name.to_string())],
        ))
    }

    /// `POST /containers/{id}/wait?condition=...`: the response's body is
    /// the exit status once the condition holds.
    pub fn container_wait(&self, id: &str, condition: &str) -> Result<Response> {
        self.request(
            "POST",
            &with_query(
                &format!("/containers/{}/wait", encode(id)),
                &[("condition", condition.to_string())],
            ),
            None,
        )
    }

    pub fn container_attach(&self, id: &str, query: &Query) -> Result<Hijacked> {
        self.hijack::<()>(
            &with_query(&format!("/containers/{}/attach", encode(id)), query),
            None,
        )
    }

    pub fn container_resize(&self, id: &str, height: u16, width: u16) -> Result<()> {
        self.post(&with_query(
            &format!("/containers/{}/resize", encode(id)),
            &[("h", height.to_string()), ("w", width.to_string())],
        ))
    }

    pub fn container_logs(&self, id: &str, query: &Query) -> Result<Response> {
        self.request(
            "GET",
            &with_query(&format!("/containers/{}/logs", encode(id)), query),
            None,
        )
    }

    pub fn container_top(&self, id: &str, query: &Query) -> Result<Value> {
        self.get(&with_query(
            &format!("/containers/{}/top", encode(id)),
            query,
        ))
    }

    /// One stats sample.
    pub fn container_stats_once(&self, id: &str) -> Result<Value> {
        self.get(&with_query(
            &format!("/containers/{}/stats", encode(id)),
            &[("stream", flag(false))],
        ))
    }

    /// Stats samples as JSON lines, one a second.
    pub fn container_stats_stream(&self, id: &str) -> Result<Response> {
        self.request(
            "GET",
            &with_query(
                &format!("/containers/{}/stats", encode(id)),
                &[("stream", flag(true))],
            ),
            None,
        )
    }

    /// `GET /containers/{id}/archive?path=...`: a tar of the path.
    pub fn container_archive_get(&self, id: &str, path: &str) -> Result<Response> {
        self.request(
            "GET",
            &with_query(
                &format!("/containers/{}/archive", encode(id)),
                &[("path", path.to_string())],
            ),
            None,
        )
    }

    /// `PUT /containers/{id}/archive?path=DIR`: a tar unpacked into DIR.
    pub fn container_archive_put(&self, id: &str, dir: &str, tar: &mut dyn Read) -> Result<()> {
        self.container_archive_put_with(id, dir, false, tar)
    }

    /// [`Client::container_archive_put`]; `keep_owners` keeps the tar's
    /// uid and gid (`copyUIDGID`), else the files are the container root's.
    pub fn container_archive_put_with(
        &self,
        id: &str,
        dir: &str,
        keep_owners: bool,
        tar: &mut dyn Read,
    ) -> Result<()> {
        self.upload(
            "PUT",
            &with_query(
                &format!("/containers/{}/archive", encode(id)),
                &[("path", dir.to_string()), ("copyUIDGID", flag(keep_owners))],
            ),
            "application/x-tar",
            tar,
        )
        .map(drop)
    }

    pub fn containers_prune(&self, query: &Query) -> Result<Value> {
        self.json::<(), _>("POST", &with_query("/containers/prune", query), None)
    }

    /// `POST /commit`: an image of a container's changes.
    pub fn commit(&self, query: &Query) -> Result<Value> {
        self.json::<(), _>("POST", &with_query("/commit", query), None)
    }

    // ---- exec -------------------------------------------------------------

    pub fn exec_create<B: Serialize>(&self, container: &str, config: &B) -> Result<Value> {
        self.json(
            "POST",
            &format!("/containers/{}/exec", encode(container)),
            Some(config),
        )
    }

    /// Starts an exec and leaves it running.
    pub fn exec_start_detached(&self, exec_id: &str, tty: bool) -> Result<()> {
        self.call(
            "POST",
            &format!("/exec/{}/start", encode(exec_id)),
            Some(&serde_json::json!({"Detach": true, "Tty": tty})),
        )
        .map(drop)
    }

    /// Starts an exec attached: its stdio over the upgraded connection.
    pub fn exec_start(&self, exec_id: &str, tty: bool) -> Result<Hijacked> {
        self.hijack(
            &format!("/exec/{}/start", encode(exec_id)),
            Some(&serde_json::json!({"Detach": false, "Tty": tty})),
        )
    }

    pub fn exec_inspect(&self, exec_id: &str) -> Result<ExecInspect> {
        self.get(&format!("/exec/{}/json", encode(exec_id)))
    }

    pub fn exec_resize(&self, exec_id: &str, height: u16, width: u16) -> Result<()> {
        self.post(&with_query(
            &format!("/exec/{}/resize", encode(exec_id)),
            &[("h", height.to_string()), ("w", width.to_string())],
        ))
    }

    // ---- images -----------------------------------------------------------

    pub fn image_list(&self, query: &Query) -> Result<Vec<ImageSummary>> {
        self.get(&with_query("/images/json", query))
    }

    pub fn image_inspect_value(&self, name: &str) -> Result<Value> {
        self.get(&format!("/images/{name}/json"))
    }

    pub fn image_inspect_raw(&self, name: &str) -> Result<Vec<u8>> {
        self.get_raw(&format!("/images/{name}/json"))
    }

    pub fn image_history(&self, name: &str) -> Result<Vec<Value>> {
        self.get(&format!("/images/{name}/history"))
    }

    pub fn image_tag(&self, source: &str, query: &Query) -> Result<()> {
        self.post(&with_query(&format!("/images/{source}/tag"), query))
    }

    /// `DELETE /images/{name}`: what was untagged and deleted.
    pub fn image_remove(&self, name: &str, force: bool) -> Result<Value> {
        let q: Vec<_> = force.then(|| ("force", flag(true))).into_iter().collect();
        self.json::<(), _>("DELETE", &with_query(&format!("/images/{name}"), &q), None)
    }

    pub fn images_prune(&self, query: &Query) -> Result<Value> {
        self.json::<(), _>("POST", &with_query("/images/prune", query), None)
    }

    /// `POST /images/create?fromImage=...` (a pull): progress as JSON lines.
    /// `auth` is the `X-Registry-Auth` header's value.
    pub fn image_pull(&self, query: &Query, auth: Option<&str>) -> Result<Response> {
        let headers: Vec<_> = auth.map(|a| ("X-Registry-Auth", a)).into_iter().collect();
        self.request_with_headers("POST", &with_query("/images/create", query), &headers)
    }

    /// `POST /images/{name}/push`: progress as JSON lines.
    pub fn image_push(&self, name: &str, query: &Query, auth: Option<&str>) -> Result<Response> {
        let headers: Vec<_> = auth.map(|a| ("X-Registry-Auth", a)).into_iter().collect();
        self.request_with_headers(
            "POST",
            &with_query(&format!("/images/{name}/push"), query),
            &headers,
        )
    }

    /// `POST /images/create?fromSrc=-`: a root filesystem tar as an image.
    pub fn image_import(&self, query: &Query, tar: &mut dyn Read) -> Result<Response> {
        self.upload(
            "POST",
            &with_query("/images/create", query),
            "application/x-tar",
            tar,
        )
    }

    /// `GET /images/get`: the named images as one docker-archive tar.
    pub fn images_save(&self, query: &Query) -> Result<Response> {
        self.request("GET", &with_query("/images/get", query), None)
    }

    pub fn images_load(&self, quiet: bool, tar: &mut dyn Read) -> Result<Response> {
        self.upload(
            "POST",
            &with_query("/images/load", &[("quiet", flag(quiet))]),
            "application/x-tar",
            tar,
        )
    }

    /// `POST /build`: the context tar up, docker's JSON lines back.
    /// `registry_config` is the `X-Registry-Config` header's value.
    pub fn build(
        &self,
        query: &Query,
        registry_config: Option<&str>,
        context: &mut dyn Read,
    ) -> Result<Response> {
        let headers: Vec<_> = registry_config
            .map(|c| ("X-Registry-Config", c))
            .into_iter()
            .collect();
        self.upload_with_headers(
            "POST",
            &with_query("/build", query),
            &headers,
            "application/x-tar",
            context,
        )
    }

    // ---- volumes ----------------------------------------------------------

    pub fn volume_create(&self, req: &VolumeCreateRequest) -> Result<Volume> {
        self.json("POST", "/volumes/create", Some(req))
    }

    pub fn volume_list(&self, query: &Query) -> Result<VolumeList> {
        self.get(&with_query("/volumes", query))
    }

    pub fn volume_inspect_value(&self, name: &str) -> Result<Value> {
        self.get(&format!("/volumes/{}", encode(name)))
    }

    pub fn volume_inspect_raw(&self, name: &str) -> Result<Vec<u8>> {
        self.get_raw(&format!("/volumes/{}", encode(name)))
    }

    pub fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        let q: Vec<_> = force.then(|| ("force", flag(true))).into_iter().collect();
        self.call::<()>(
            "DELETE",
            &with_query(&format!("/volumes/{}", encode(name)), &q),
            None,
        )
        .map(drop)
    }

    pub fn volumes_prune(&self, query: &Query) -> Result<Value> {
        self.json::<(), _>("POST", &with_query("/volumes/prune", query), None)
    }

    // ---- networks ---------------------------------------------------------

    pub fn network_create<B: Serialize>(&self, body: &B) -> Result<Value> {
        self.json("POST", "/networks/create", Some(body))
    }

    pub fn network_list(&self, query: &Query) -> Result<Vec<Value>> {
        self.get(&with_query("/networks", query))
    }

    pub fn network_inspect_value(&self, name: &str) -> Result<Value> {
        self.get(&format!("/networks/{}", encode(name)))
    }

    pub fn network_inspect_raw(&self, name: &str) -> Result<Vec<u8>> {
        self.get_raw(&format!("/networks/{}", encode(name)))
    }

    pub fn network_remove(&self, name: &str) -> Result<()> {
        self.call::<()>("DELETE", &format!("/networks/{}", encode(name)), None)
            .map(drop)
    }

    pub fn network_connect(&self, name: &str, body: &NetworkConnectRequest) -> Result<()> {
        self.call(
            "POST",
            &format!("/networks/{}/connect", encode(name)),
            Some(body),
        )
        .map(drop)
    }

    pub fn network_disconnect(&self, name: &str, body: &NetworkDisconnectRequest) -> Result<()> {
        self.call(
            "POST",
            &format!("/networks/{}/disconnect", encode(name)),
            Some(body),
        )
        .map(drop)
    }

    pub fn networks_prune(&self, query: &Query) -> Result<Value> {
        self.json::<(), _>("POST", &with_query("/networks/prune", query), None)
    }
}
