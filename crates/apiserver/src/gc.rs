//! The garbage collector: deletion along `ownerReferences`, which the
//! propagation policy of a delete asks for.
//!
//! - `Background` (kubectl's default): the owner goes at once; dependents
//!   whose owners are all gone are deleted after it.
//! - `Foreground`: the owner gets the `foregroundDeletion` finalizer; its
//!   dependents are deleted, and once none is left the finalizer goes (and
//!   with it the owner).
//! - `Orphan`: the owner gets the `orphan` finalizer; the dependents lose
//!   their reference to it, then the finalizer goes.
//!
//! It works level-triggered from a full scan of the store each round (every
//! object's uid, owners, finalizers), so a restart or a missed change only
//! delays it; the scan reads the store directly, never the HTTP API.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::error::ApiError;
use crate::registry::Resource;
use crate::rest::Params;
use crate::server::Api;

/// One object as the collector sees it.
struct Node {
    resource: Arc<Resource>,
    namespace: Option<String>,
    name: String,
    uid: String,
    owners: Vec<String>,
    owner_refs: Vec<Value>,
    deleting: bool,
    finalizers: Vec<String>,
}

async fn scan(api: &Api) -> Result<Vec<Node>, ApiError> {
    let model = api.model();
    let mut nodes = Vec::new();
    for r in model.registry.resources() {
        let page = api.storage.list(r, None, 0, 0, None, &|_| true).await?;
        for obj in page.items {
            let meta = &obj["metadata"];
            let strings = |v: &Value, key: &str| -> Vec<String> {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| {
                        if key.is_empty() {
                            x.as_str()
                        } else {
                            x[key].as_str()
                        }
                    })
                    .map(String::from)
                    .collect()
            };
            nodes.push(Node {
                resource: r.clone(),
                namespace: meta["namespace"].as_str().map(String::from),
                name: meta["name"].as_str().unwrap_or("").to_string(),
                uid: meta["uid"].as_str().unwrap_or("").to_string(),
                owners: strings(&meta["ownerReferences"], "uid"),
                owner_refs: meta["ownerReferences"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
                deleting: meta["deletionTimestamp"].is_string(),
                finalizers: strings(&meta["finalizers"], ""),
            });
        }
    }
    Ok(nodes)
}

/// One round: settles what the current state asks for.
pub async fn collect(api: &Api) -> Result<(), ApiError> {
    let nodes = scan(api).await?;
    let uids: HashSet<&str> = nodes.iter().map(|n| n.uid.as_str()).collect();
    let mut dependents: HashMap<&str, Vec<&Node>> = HashMap::new();
    for n in &nodes {
        for o in &n.owners {
            dependents.entry(o.as_str()).or_default().push(n);
        }
    }
    for n in &nodes {
        // Orphans of a Background delete: every owner is gone (checked
        // again by name, as the scan reads one resource after another).
        if !n.owners.is_empty()
            && !n.deleting
            && n.owners.iter().all(|o| !uids.contains(o.as_str()))
        {
            let mut any_left = false;
            for r in &n.owner_refs {
                any_left |= owner_exists(api, n, r).await?;
            }
            if !any_left {
                delete(api, n, "Background").await?;
            }
            continue;
        }
        if !n.deleting {
            continue;
        }
        let mine = dependents.get(n.uid.as_str()).cloned().unwrap_or_default();
        if n.finalizers.iter().any(|f| f == "orphan") {
            for d in &mine {
                drop_owner(api, d, &n.uid).await?;
            }
            remove_finalizer(api, n, "orphan").await?;
        } else if n.finalizers.iter().any(|f| f == "foregroundDeletion") {
            let left: Vec<&&Node> = mine.iter().collect();
            if left.is_empty() {
                remove_finalizer(api, n, "foregroundDeletion").await?;
            } else {
                for d in left.into_iter().filter(|d| !d.deleting) {
                    delete(api, d, "Foreground").await?;
                }
            }
        }
    }
    Ok(())
}

/// Whether the owner an owner reference names exists with that uid.
async fn owner_exists(api: &Api, dependent: &Node, reference: &Value) -> Result<bool, ApiError> {
    let api_version = reference["apiVersion"].as_str().unwrap_or("");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let model = api.model();
    let Some(r) =
        model
            .registry
            .find_kind(group, version, reference["kind"].as_str().unwrap_or(""))
    else {
        // An owner of a kind not served cannot be checked: keep the dependent.
        return Ok(true);
    };
    let ns = if r.namespaced {
        dependent.namespace.as_deref()
    } else {
        None
    };
    let name = reference["name"].as_str().unwrap_or("");
    Ok(api
        .storage
        .get(&r, ns, name)
        .await?
        .is_some_and(|o| o["metadata"]["uid"] == reference["uid"]))
}

fn ctx(api: &Api, n: &Node, query: &str) -> crate::rest::Ctx {
    let mut cx = api.internal_ctx(n.resource.clone(), n.namespace.as_deref());
    cx.params = Params::parse(Some(query));
    cx
}

async fn delete(api: &Api, n: &Node, policy: &str) -> Result<(), ApiError> {
    let cx = ctx(api, n, "gracePeriodSeconds=0");
    let body = json!({"propagationPolicy": policy, "preconditions": {"uid": n.uid}}).to_string();
    match cx.delete(&n.name, body.as_bytes()).await {
        Ok(_) => {
            tracing::info!(resource = %n.resource.plural, namespace = ?n.namespace, name = %n.name, policy, "garbage collected");
            Ok(())
        }
        Err(e) if e.reason == "NotFound" || e.reason == "Conflict" => Ok(()),
        Err(e) => Err(e),
    }
}

async fn patch(api: &Api, n: &Node, patch: Value) -> Result<(), ApiError> {
    let cx = ctx(api, n, "fieldManager=garbage-collector");
    match cx
        .patch(
            &n.name,
            patch.to_string().as_bytes(),
            "application/json-patch+json",
            None,
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.reason, "NotFound" | "Conflict" | "Invalid") => Ok(()),
        Err(e) => Err(e),
    }
}

async fn drop_owner(api: &Api, n: &Node, owner: &str) -> Result<(), ApiError> {
    let Some(i) = n.owners.iter().position(|o| o == owner) else {
        return Ok(());
    };
    patch(
        api,
        n,
        json!([
            {"op": "test", "path": format!("/metadata/ownerReferences/{i}/uid"), "value": owner},
            {"op": "remove", "path": format!("/metadata/ownerReferences/{i}")},
        ]),
    )
    .await
}

async fn remove_finalizer(api: &Api, n: &Node, finalizer: &str) -> Result<(), ApiError> {
    let Some(i) = n.finalizers.iter().position(|f| f == finalizer) else {
        return Ok(());
    };
    patch(
        api,
        n,
        json!([
            {"op": "test", "path": format!("/metadata/finalizers/{i}"), "value": finalizer},
            {"op": "remove", "path": format!("/metadata/finalizers/{i}")},
        ]),
    )
    .await
}
