//! Typed verbs on one kind: `Api<K>` for any k8s-openapi resource, scoped
//! to a namespace or to all of them, with the status subresource, patches
//! of the four kinds, and watches.

use std::marker::PhantomData;

use k8s_openapi::{ListableResource, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::watch::WatchStream;

/// Query parameters of lists and watches.
#[derive(Clone, Debug, Default)]
pub struct ListParams {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    /// Server-side limit of a watch (`timeoutSeconds`); the watch ends
    /// cleanly after it.
    pub timeout_seconds: Option<u32>,
}

impl ListParams {
    pub fn labels(selector: &str) -> ListParams {
        ListParams {
            label_selector: Some(selector.to_string()),
            ..Default::default()
        }
    }

    pub fn fields(selector: &str) -> ListParams {
        ListParams {
            field_selector: Some(selector.to_string()),
            ..Default::default()
        }
    }

    fn query(&self, q: &mut Query) {
        if let Some(s) = &self.label_selector {
            q.push("labelSelector", s);
        }
        if let Some(s) = &self.field_selector {
            q.push("fieldSelector", s);
        }
    }
}

/// A patch and its content type.
#[derive(Clone, Debug)]
pub enum Patch {
    /// RFC 7386 (`application/merge-patch+json`).
    Merge(Value),
    /// RFC 6902 (`application/json-patch+json`).
    Json(Value),
    /// Kubernetes' strategic merge patch.
    Strategic(Value),
    /// Server-side apply under the field manager `manager`.
    Apply {
        manager: String,
        force: bool,
        body: Value,
    },
}

impl Patch {
    fn content_type(&self) -> &'static str {
        match self {
            Patch::Merge(_) => "application/merge-patch+json",
            Patch::Json(_) => "application/json-patch+json",
            Patch::Strategic(_) => "application/strategic-merge-patch+json",
            Patch::Apply { .. } => "application/apply-patch+yaml",
        }
    }

    fn body(&self) -> &Value {
        match self {
            Patch::Merge(v) | Patch::Json(v) | Patch::Strategic(v) => v,
            Patch::Apply { body, .. } => body,
        }
    }
}

/// How a delete goes on (`metav1.DeleteOptions`).
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteParams {
    /// `Background`, `Foreground` or `Orphan`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub propagation_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preconditions: Option<Preconditions>,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preconditions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
}

impl DeleteParams {
    pub fn background() -> DeleteParams {
        DeleteParams {
            propagation_policy: Some("Background".into()),
            ..Default::default()
        }
    }
}

/// A list's items and the revision it was read at.
#[derive(Clone, Debug)]
pub struct ObjectList<K> {
    pub items: Vec<K>,
    pub resource_version: String,
}

/// Verbs on the resource `K`, in one namespace or across all.
pub struct Api<K> {
    client: Client,
    namespace: Option<String>,
    _kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Api<K> {
    fn clone(&self) -> Self {
        Api {
            client: self.client.clone(),
            namespace: self.namespace.clone(),
            _kind: PhantomData,
        }
    }
}

impl<K> Api<K>
where
    K: Resource + ListableResource + Serialize + DeserializeOwned,
{
    /// Namespaced objects in `namespace`.
    pub fn namespaced(client: Client, namespace: &str) -> Api<K> {
        Api {
            client,
            namespace: Some(namespace.to_string()),
            _kind: PhantomData,
        }
    }

    /// Cluster-scoped objects, or namespaced ones across all namespaces
    /// (lists and watches; other verbs need [`Api::namespaced`]).
    pub fn all(client: Client) -> Api<K> {
        Api {
            client,
            namespace: None,
            _kind: PhantomData,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The same kind in another namespace.
    pub fn within(&self, namespace: &str) -> Api<K> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// The collection's path: `/api/v1/namespaces/ns/pods`.
    pub fn collection(&self) -> String {
        let prefix = if K::GROUP.is_empty() {
            format!("/api/{}", K::VERSION)
        } else {
            format!("/apis/{}/{}", K::GROUP, K::VERSION)
        };
        match &self.namespace {
            Some(ns) => format!("{prefix}/namespaces/{}/{}", encode(ns), K::URL_PATH_SEGMENT),
            None => format!("{prefix}/{}", K::URL_PATH_SEGMENT),
        }
    }

    fn object(&self, name: &str) -> String {
        format!("{}/{}", self.collection(), encode(name))
    }

    fn decode<T: DeserializeOwned>(path: &str, bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|e| Error::Decode {
            path: path.to_string(),
            reason: e.to_string(),
        })
    }

    fn encode_body<T: Serialize>(path: &str, value: &T) -> Result<Vec<u8>> {
        serde_json::to_vec(value).map_err(|e| Error::Encode {
            path: path.to_string(),
            reason: e.to_string(),
        })
    }

    pub async fn get(&self, name: &str) -> Result<K> {
        let path = self.object(name);
        let bytes = self.client.request("GET", &path, None, Vec::new()).await?;
        Self::decode(&path, &bytes)
    }

    /// The object, or `None` when it does not exist.
    pub async fn get_opt(&self, name: &str) -> Result<Option<K>> {
        match self.get(name).await {
            Ok(k) => Ok(Some(k)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every object matching `params`, read whole (pages followed).
    pub async fn list(&self, params: &ListParams) -> Result<ObjectList<K>> {
        #[derive(serde::Deserialize)]
        struct Page<K> {
            #[serde(default = "Vec::new")]
            items: Vec<K>,
            metadata: PageMeta,
        }
        #[derive(serde::Deserialize, Default)]
        #[serde(rename_all = "camelCase")]
        struct PageMeta {
            #[serde(default)]
            resource_version: String,
            #[serde(default, rename = "continue")]
            next: String,
        }
        let mut items = Vec::new();
        let mut next = String::new();
        loop {
            let mut q = Query::default();
            params.query(&mut q);
            q.push("limit", "1000");
            if !next.is_empty() {
                q.push("continue", &next);
            }
            let path = format!("{}{}", self.collection(), q.finish());
            let bytes = self.client.request("GET", &path, None, Vec::new()).await?;
            let page: Page<K> = Self::decode(&path, &bytes)?;
            items.extend(page.items);
            if page.metadata.next.is_empty() {
                return Ok(ObjectList {
                    items,
                    resource_version: page.metadata.resource_version,
                });
            }
            next = page.metadata.next;
        }
    }

    pub async fn create(&self, object: &K) -> Result<K> {
        let path = self.collection();
        let body = Self::encode_body(&path, object)?;
        let bytes = self
            .client
            .request("POST", &path, Some("application/json"), body)
            .await?;
        Self::decode(&path, &bytes)
    }

    /// `PUT`: replaces the object; its `resourceVersion` makes a stale
    /// write a Conflict.
    pub async fn replace(&self, name: &str, object: &K) -> Result<K> {
        self.put(&self.object(name), object).await
    }

    /// `PUT .../status`: the status subresource (the spec is ignored).
    pub async fn replace_status(&self, name: &str, object: &K) -> Result<K> {
        self.put(&format!("{}/status", self.object(name)), object)
            .await
    }

    async fn put(&self, path: &str, object: &K) -> Result<K> {
        let body = Self::encode_body(path, object)?;
        let bytes = self
            .client
            .request("PUT", path, Some("application/json"), body)
            .await?;
        Self::decode(path, &bytes)
    }

    pub async fn patch(&self, name: &str, patch: &Patch) -> Result<K> {
        self.patch_at(self.object(name), patch).await
    }

    pub async fn patch_status(&self, name: &str, patch: &Patch) -> Result<K> {
        self.patch_at(format!("{}/status", self.object(name)), patch)
            .await
    }

    async fn patch_at(&self, mut path: String, patch: &Patch) -> Result<K> {
        if let Patch::Apply { manager, force, .. } = patch {
            let mut q = Query::default();
            q.push("fieldManager", manager);
            q.push("force", if *force { "true" } else { "false" });
            path.push_str(&q.finish());
        }
        let body = Self::encode_body(&path, patch.body())?;
        let bytes = self
            .client
            .request("PATCH", &path, Some(patch.content_type()), body)
            .await?;
        Self::decode(&path, &bytes)
    }

    /// Deletes the object; the answer is the object (when it lingers for
    /// finalizers or a grace period) or a Status, so it is left untyped.
    pub async fn delete(&self, name: &str, params: &DeleteParams) -> Result<Value> {
        let path = self.object(name);
        let body = Self::encode_body(&path, params)?;
        let bytes = self
            .client
            .request("DELETE", &path, Some("application/json"), body)
            .await?;
        Self::decode(&path, &bytes)
    }

    /// `POST .../NAME/SUB` with `body` (`pods/binding`, `pods/eviction`).
    pub async fn create_subresource<B: Serialize>(
        &self,
        name: &str,
        subresource: &str,
        body: &B,
    ) -> Result<Value> {
        let path = format!("{}/{subresource}", self.object(name));
        let body = Self::encode_body(&path, body)?;
        let bytes = self
            .client
            .request("POST", &path, Some("application/json"), body)
            .await?;
        Self::decode(&path, &bytes)
    }

    /// Changes after `resource_version` (from a list, or the last event
    /// seen), with bookmarks. A compacted revision ends in an
    /// [`Error::is_gone`] error, at the start or in the stream.
    pub async fn watch(
        &self,
        params: &ListParams,
        resource_version: &str,
    ) -> Result<WatchStream<K>> {
        let mut q = Query::default();
        params.query(&mut q);
        q.push("watch", "true");
        q.push("allowWatchBookmarks", "true");
        q.push("resourceVersion", resource_version);
        if let Some(t) = params.timeout_seconds {
            q.push("timeoutSeconds", &t.to_string());
        }
        let path = format!("{}{}", self.collection(), q.finish());
        let stream = self.client.stream(&path).await?;
        Ok(WatchStream::new(
            path,
            self.client.address().to_string(),
            stream,
        ))
    }
}

/// A query string being built.
#[derive(Default)]
struct Query(String);

impl Query {
    fn push(&mut self, key: &str, value: &str) {
        self.0.push(if self.0.is_empty() { '?' } else { '&' });
        self.0.push_str(key);
        self.0.push('=');
        self.0.push_str(&encode(value));
    }

    fn finish(self) -> String {
        self.0
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{Node, Pod};

    fn client() -> Client {
        let config = crate::config::Config {
            server: "https://127.0.0.1:6443".into(),
            ca_pem: None,
            client_cert_pem: None,
            client_key_pem: None,
            token: Some("t".into()),
            insecure: true,
        };
        Client::new(&config).expect("client")
    }

    #[test]
    fn paths_follow_group_version_and_scope() {
        let c = client();
        assert_eq!(
            Api::<Pod>::namespaced(c.clone(), "default").object("p"),
            "/api/v1/namespaces/default/pods/p"
        );
        assert_eq!(Api::<Pod>::all(c.clone()).collection(), "/api/v1/pods");
        assert_eq!(
            Api::<Node>::all(c.clone()).object("n 1"),
            "/api/v1/nodes/n%201"
        );
        assert_eq!(
            Api::<Deployment>::namespaced(c, "x").collection(),
            "/apis/apps/v1/namespaces/x/deployments"
        );
    }

    #[test]
    fn selectors_are_percent_encoded() {
        let mut q = Query::default();
        ListParams::labels("app in (a,b),!x").query(&mut q);
        q.push("fieldSelector", "spec.nodeName=");
        assert_eq!(
            q.finish(),
            "?labelSelector=app%20in%20%28a%2Cb%29%2C%21x&fieldSelector=spec.nodeName%3D"
        );
    }
}
