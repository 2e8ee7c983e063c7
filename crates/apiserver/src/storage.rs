//! Objects in the revisioned store: keys, JSON bytes, the store's revision
//! as `metadata.resourceVersion`, list pages with continue tokens, and
//! watches turned into Kubernetes watch events.
//!
//! Keys are `/registry/<group>/<resource>/<namespace>/<name>` (`core` for
//! the core group; cluster-scoped objects have no namespace segment). The
//! stored bytes are the object's JSON without `resourceVersion`, which is
//! the key's `mod_revision` and is put back on every read, so the two can
//! never disagree.

use std::sync::Arc;

use base64::Engine as _;
use cais_store::{Bytes, KeyRange, KeyValue, Store};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::registry::Resource;

/// Where one resource's objects live.
fn resource_prefix(r: &Resource) -> String {
    let group = if r.group.is_empty() { "core" } else { &r.group };
    format!("/registry/{group}/{}/", r.plural)
}

/// The key range of a resource, in one namespace or all.
pub fn range(r: &Resource, namespace: Option<&str>) -> KeyRange {
    let mut prefix = resource_prefix(r);
    if let (true, Some(ns)) = (r.namespaced, namespace) {
        prefix.push_str(ns);
        prefix.push('/');
    }
    KeyRange::prefix(Bytes::from(prefix))
}

pub fn key(r: &Resource, namespace: Option<&str>, name: &str) -> Vec<u8> {
    let mut k = resource_prefix(r);
    if r.namespaced {
        k.push_str(namespace.unwrap_or(""));
        k.push('/');
    }
    k.push_str(name);
    k.into_bytes()
}

/// Maps the store's failures for `r`/`name`.
pub fn store_error(r: &Resource, name: &str, e: cais_store::Error) -> ApiError {
    match e {
        cais_store::Error::AlreadyExists { .. } => {
            ApiError::already_exists(&r.group, &r.plural, name)
        }
        cais_store::Error::NotFound { .. } => ApiError::not_found(&r.group, &r.plural, name),
        cais_store::Error::Conflict { .. } => ApiError::stale(&r.group, &r.plural, name),
        cais_store::Error::Compacted {
            requested,
            compacted,
        } => ApiError::expired(format!(
            "too old resource version: {requested} ({compacted})"
        )),
        cais_store::Error::FutureRevision { requested, current } => ApiError::timeout(format!(
            "Too large resource version: {requested}, current: {current}"
        )),
        other => ApiError::internal(other),
    }
}

fn encode(obj: &Value) -> Bytes {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    Bytes::from(serde_json::to_vec(&o).unwrap_or_default())
}

/// The object a stored key holds, its revision as `resourceVersion`.
pub fn decode(kv: &KeyValue) -> Result<Value, ApiError> {
    decode_at(&kv.value, kv.mod_revision)
}

fn decode_at(bytes: &[u8], revision: i64) -> Result<Value, ApiError> {
    let mut obj: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::internal(format!("a stored object is not JSON: {e}")))?;
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("resourceVersion".into(), revision.to_string().into());
    }
    Ok(obj)
}

/// `resourceVersion` as a revision; bad ones are a 400.
pub fn parse_revision(rv: &str) -> Result<i64, ApiError> {
    rv.parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid resource version: {rv:?}")))
}

/// The `metadata.resourceVersion` of an object, if any.
pub fn object_revision(obj: &Value) -> Option<&str> {
    obj.get("metadata")
        .and_then(|m| m.get("resourceVersion"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// A continue token: the revision of the first page and the key to go on
/// after.
#[derive(Debug, PartialEq)]
pub struct Continue {
    pub revision: i64,
    pub after: Vec<u8>,
}

impl Continue {
    pub fn encode(&self) -> String {
        let doc = json!({
            "v": "meta.k8s.io/v1",
            "rv": self.revision,
            "start": base64::engine::general_purpose::STANDARD.encode(&self.after),
        });
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(doc.to_string())
    }

    pub fn decode(token: &str) -> Result<Continue, ApiError> {
        let bad = || ApiError::bad_request(format!("invalid continue token: {token:?}"));
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.trim_end_matches('='))
            .map_err(|_| bad())?;
        let doc: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
        let revision = doc
            .get("rv")
            .and_then(Value::as_i64)
            .filter(|r| *r > 0)
            .ok_or_else(bad)?;
        let after = doc
            .get("start")
            .and_then(Value::as_str)
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
            .ok_or_else(bad)?;
        Ok(Continue { revision, after })
    }
}

/// One page of a list.
pub struct Page {
    pub items: Vec<Value>,
    pub revision: i64,
    pub next: Option<Continue>,
}

/// The API server's view of the store.
#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn Store>,
}

impl Storage {
    pub fn new(store: Arc<dyn Store>) -> Storage {
        Storage { store }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub async fn revision(&self) -> Result<i64, ApiError> {
        self.store
            .current_revision()
            .await
            .map_err(ApiError::internal)
    }

    pub async fn get(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, ApiError> {
        let got = self
            .store
            .get(&key(r, ns, name), 0)
            .await
            .map_err(|e| store_error(r, name, e))?;
        got.kv.as_ref().map(decode).transpose()
    }

    /// Like [`Storage::get`], with NotFound for a missing object.
    pub async fn must_get(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.get(r, ns, name)
            .await?
            .ok_or_else(|| ApiError::not_found(&r.group, &r.plural, name))
    }

    /// Stores a new object; returns it with its `resourceVersion`.
    pub async fn create(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        obj: &Value,
    ) -> Result<Value, ApiError> {
        let rev = self
            .store
            .create(&key(r, ns, name), encode(obj), None)
            .await
            .map_err(|e| store_error(r, name, e))?;
        decode_at(&encode(obj), rev)
    }

    /// Replaces an object stored at revision `expected`.
    pub async fn update(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        obj: &Value,
        expected: i64,
    ) -> Result<Value, ApiError> {
        let bytes = encode(obj);
        let rev = self
            .store
            .update(&key(r, ns, name), bytes.clone(), expected, None)
            .await
            .map_err(|e| store_error(r, name, e))?;
        decode_at(&bytes, rev)
    }

    /// Deletes an object stored at revision `expected`; returns what was
    /// deleted, with the delete's revision.
    pub async fn delete(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        expected: Option<i64>,
    ) -> Result<Value, ApiError> {
        let deleted = self
            .store
            .delete(&key(r, ns, name), expected)
            .await
            .map_err(|e| store_error(r, name, e))?;
        decode_at(&deleted.kv.value, deleted.revision)
    }

    /// Reads up to `limit` objects (0: all) of `r` that `keep` accepts,
    /// at `revision` (0: the latest), after the key of `after`.
    pub async fn list(
        &self,
        r: &Resource,
        ns: Option<&str>,
        limit: usize,
        revision: i64,
        after: Option<&[u8]>,
        keep: &(dyn Fn(&Value) -> bool + Sync),
    ) -> Result<Page, ApiError> {
        let full = range(r, ns);
        let mut range = match after {
            Some(k) => full.after(k),
            None => full.clone(),
        };
        let mut revision = revision;
        let mut items = Vec::new();
        // Read in chunks until the page is full or the range is done.
        let chunk = if limit == 0 { 0 } else { limit.max(100) };
        loop {
            let page = self
                .store
                .list(&range, chunk, revision)
                .await
                .map_err(|e| store_error(r, "", e))?;
            revision = page.revision;
            let mut last: Option<&[u8]> = None;
            for kv in &page.kvs {
                last = Some(&kv.key);
                let obj = decode(kv)?;
                if keep(&obj) {
                    items.push(obj);
                    if limit != 0 && items.len() == limit {
                        let remaining =
                            page.more || page.kvs.last().map(|l| &l.key) != Some(&kv.key);
                        let next = remaining.then(|| Continue {
                            revision,
                            after: kv.key.to_vec(),
                        });
                        return Ok(Page {
                            items,
                            revision,
                            next,
                        });
                    }
                }
            }
            match (page.more, last) {
                (true, Some(k)) => range = full.after(k),
                _ => {
                    return Ok(Page {
                        items,
                        revision,
                        next: None,
                    })
                }
            }
        }
    }

    pub async fn watch(
        &self,
        r: &Resource,
        ns: Option<&str>,
        from: i64,
    ) -> Result<cais_store::Watch, ApiError> {
        self.store
            .watch(&range(r, ns), from)
            .await
            .map_err(|e| store_error(r, "", e))
    }
}

/// A watch event as Kubernetes sends it, from one store event: `(type,
/// object)` after the selectors (`keep`) are applied to the object before
/// and after the change.
pub fn watch_event(
    event: &cais_store::Event,
    keep: &dyn Fn(&Value) -> bool,
) -> Result<Option<(&'static str, Value)>, ApiError> {
    match event {
        cais_store::Event::Put { kv, prev } => {
            let now = decode(kv)?;
            let before = prev.as_ref().map(decode).transpose()?;
            let was = before.as_ref().is_some_and(keep);
            let is = keep(&now);
            Ok(match (was, is) {
                (_, true) if before.is_none() => Some(("ADDED", now)),
                (true, true) => Some(("MODIFIED", now)),
                (false, true) => Some(("ADDED", now)),
                (true, false) => {
                    // Left the selection: a DELETED with the new state.
                    Some(("DELETED", now))
                }
                (false, false) => None,
            })
        }
        cais_store::Event::Delete { revision, prev, .. } => {
            let Some(prev) = prev else {
                return Ok(None);
            };
            let obj = decode_at(&prev.value, *revision)?;
            Ok(keep(&obj).then_some(("DELETED", obj)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_refuse_garbage() {
        let c = Continue {
            revision: 42,
            after: b"/registry/core/pods/default/web".to_vec(),
        };
        let token = c.encode();
        assert_eq!(Continue::decode(&token).expect("decodes"), c);
        for bad in ["", "!!!", "e30", "eyJydiI6MH0"] {
            assert!(Continue::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn revisions() {
        assert_eq!(parse_revision("12").expect("valid"), 12);
        assert!(parse_revision("-1").is_err());
        assert!(parse_revision("abc").is_err());
        assert_eq!(
            object_revision(&json!({"metadata": {"resourceVersion": "7"}})),
            Some("7")
        );
        assert_eq!(
            object_revision(&json!({"metadata": {"resourceVersion": ""}})),
            None
        );
    }

    #[test]
    fn stored_bytes_have_no_resource_version() {
        let obj = json!({"metadata": {"name": "a", "resourceVersion": "5"}});
        let bytes = encode(&obj);
        let back = decode_at(&bytes, 9).expect("decodes");
        assert_eq!(back["metadata"]["resourceVersion"], "9");
        assert!(!String::from_utf8_lossy(&bytes).contains("resourceVersion"));
    }
}
