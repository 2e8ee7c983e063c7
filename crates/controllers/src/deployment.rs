//! The Deployment controller: one ReplicaSet per pod template, named
//! `<deployment>-<pod-template-hash>` and owned by the Deployment, the
//! newest scaled up and the older ones down as the strategy allows
//! (RollingUpdate within maxSurge/maxUnavailable, or Recreate), revisions
//! in `deployment.kubernetes.io/revision`, at most `revisionHistoryLimit`
//! old ReplicaSets kept, and the status `kubectl rollout status` reads
//! (observedGeneration, replica counts, Available and Progressing).
//!
//! `kubectl rollout undo` writes an old ReplicaSet's template back into
//! the Deployment: that ReplicaSet is then the new one again and takes the
//! next revision.

use std::collections::BTreeMap;
use std::sync::Arc;

use cais_kube::{Api, Client, DeleteParams, Informer, ListParams, Patch, Store, WorkQueue};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use crate::replicaset::{controller_of, is_active};

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const DESIRED: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const HASH_LABEL: &str = "pod-template-hash";

/// `value` of `total`: an integer as is, a percentage rounded up or down
/// (Kubernetes rounds maxSurge up and maxUnavailable down).
pub fn scaled_value(value: Option<&IntOrString>, default: &str, total: i32, round_up: bool) -> i32 {
    let v = match value {
        Some(IntOrString::Int(i)) => return (*i).max(0),
        Some(IntOrString::String(s)) => s.as_str(),
        None => default,
    };
    let Some(percent) = v.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) else {
        return v.parse::<i32>().unwrap_or(0).max(0);
    };
    let product = percent.max(0) * total.max(0) as i64;
    let r = if round_up {
        (product + 99) / 100
    } else {
        product / 100
    };
    r as i32
}

/// maxSurge and maxUnavailable of a RollingUpdate over `replicas`; if
/// both come to 0, one pod may be unavailable (or nothing could move).
pub fn surge_and_unavailable(d: &Deployment, replicas: i32) -> (i32, i32) {
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let surge = scaled_value(ru.and_then(|r| r.max_surge.as_ref()), "25%", replicas, true);
    let mut unavailable = scaled_value(
        ru.and_then(|r| r.max_unavailable.as_ref()),
        "25%",
        replicas,
        false,
    );
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable.min(replicas))
}

/// The pod-template-hash of a template: FNV-1a (32 bits) over its JSON and
/// the collision count, its decimal digits mapped to consonants and
/// digits so that no word forms (Kubernetes' `SafeEncodeString` alphabet).
pub fn template_hash(template: &PodTemplateSpec, collisions: Option<i32>) -> String {
    let mut bytes = serde_json::to_vec(template).unwrap_or_default();
    if let Some(c) = collisions {
        bytes.extend_from_slice(c.to_string().as_bytes());
    }
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    h.to_string()
        .bytes()
        .map(|b| ALPHABET[b as usize % ALPHABET.len()] as char)
        .collect()
}

/// A template without the pod-template-hash label, to compare templates.
fn without_hash(t: Option<&PodTemplateSpec>) -> serde_json::Value {
    let mut t = t.cloned().unwrap_or_default();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(HASH_LABEL);
    }
    serde_json::to_value(t).unwrap_or_default()
}

fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

/// Available pods of a ReplicaSet, never more than it is asked to keep
/// (its status lags a scale-down; counting the old figure could scale
/// down twice).
fn available(rs: &ReplicaSet) -> i32 {
    let status = rs
        .status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    status.min(spec_replicas(rs))
}

struct Controller {
    client: Client,
    deployments: Arc<Store<Deployment>>,
    sets: Arc<Store<ReplicaSet>>,
    pods: Arc<Store<Pod>>,
}

impl Controller {
    async fn sync(&self, key: &str) -> cais_kube::Result<()> {
        let Some(d) = self.deployments.get(key) else {
            return Ok(());
        };
        if d.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let (ns, name) = cais_kube::split_key(key);
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let mut owned: Vec<Arc<ReplicaSet>> = self.sets.filter(|rs| {
            rs.metadata.namespace.as_deref() == Some(ns)
                && controller_of(&rs.metadata).is_some_and(|o| o.uid == uid)
        });
        owned.sort_by_key(|rs| {
            (
                revision(rs),
                rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
            )
        });
        let spec = d.spec.clone().unwrap_or_default();
        let replicas = spec.replicas.unwrap_or(1);
        let wanted = without_hash(Some(&spec.template));
        let new = owned
            .iter()
            .find(|rs| without_hash(rs.spec.as_ref().and_then(|s| s.template.as_ref())) == wanted)
            .cloned();
        let old: Vec<Arc<ReplicaSet>> = owned
            .iter()
            .filter(|rs| {
                new.as_ref()
                    .is_none_or(|n| n.metadata.uid != rs.metadata.uid)
            })
            .cloned()
            .collect();
        let max_old = old.iter().map(|rs| revision(rs)).max().unwrap_or(0);
        let rs_api = Api::<ReplicaSet>::namespaced(self.client.clone(), ns);
        let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
        let (surge, unavailable) = if recreate {
            (0, replicas)
        } else {
            surge_and_unavailable(&d, replicas)
        };

        // The new ReplicaSet: created (at 0 for Recreate while old pods
        // live), or given the newest revision.
        let new = match new {
            Some(rs) if revision(&rs) > max_old => rs,
            Some(rs) => {
                let mut rs = (*rs).clone();
                let a = rs.metadata.annotations.get_or_insert_with(Default::default);
                a.insert(REVISION.into(), (max_old + 1).to_string());
                Arc::new(
                    rs_api
                        .replace(rs.metadata.name.clone().unwrap_or_default().as_str(), &rs)
                        .await?,
                )
            }
            None => Arc::new(self.create_new(&d, ns, name, max_old + 1, &rs_api).await?),
        };
        let new_name = new.metadata.name.clone().unwrap_or_default();
        let all_spec: i32 = owned.iter().map(|rs| spec_replicas(rs)).sum::<i32>()
            + if owned.iter().any(|rs| rs.metadata.uid == new.metadata.uid) {
                0
            } else {
                spec_replicas(&new)
            };

        if recreate {
            let old_running = old.iter().any(|rs| spec_replicas(rs) > 0);
            for rs in old.iter().filter(|rs| spec_replicas(rs) > 0) {
                self.scale(&rs_api, rs, 0, replicas, replicas).await?;
            }
            let old_uids: Vec<&str> = old
                .iter()
                .filter_map(|rs| rs.metadata.uid.as_deref())
                .collect();
            let old_pods = self.pods.filter(|p| {
                p.metadata.namespace.as_deref() == Some(ns)
                    && controller_of(&p.metadata)
                        .is_some_and(|o| old_uids.contains(&o.uid.as_str()))
            });
            if !old_running && old_pods.is_empty() && spec_replicas(&new) != replicas {
                self.scale(&rs_api, &new, replicas, replicas, replicas)
                    .await?;
            }
        } else {
            let max_total = replicas + surge;
            let new_count = spec_replicas(&new);
            if new_count > replicas {
                self.scale(&rs_api, &new, replicas, replicas, max_total)
                    .await?;
            } else if new_count < replicas && all_spec < max_total {
                let up = (max_total - all_spec).min(replicas - new_count);
                self.scale(&rs_api, &new, new_count + up, replicas, max_total)
                    .await?;
            }
            // Old ReplicaSets go down as far as availability allows.
            let old_count: i32 = old.iter().map(|rs| spec_replicas(rs)).sum();
            if old_count > 0 {
                let min_available = replicas - unavailable;
                let new_unavailable = (spec_replicas(&new) - available(&new)).max(0);
                let max_scaled_down = all_spec - min_available - new_unavailable;
                let available_all: i32 =
                    old.iter().map(|rs| available(rs)).sum::<i32>() + available(&new);
                let mut budget = max_scaled_down.min(available_all - min_available);
                // Old ReplicaSets' pods that are not available count for
                // nothing: they may go first, whatever the budget.
                for rs in old.iter().filter(|rs| spec_replicas(rs) > 0) {
                    let unavailable_here = spec_replicas(rs) - available(rs);
                    let down = unavailable_here.max(0) + budget.max(0).min(available(rs));
                    let down = down.min(spec_replicas(rs));
                    if down > 0 {
                        budget -= (down - unavailable_here.max(0)).max(0);
                        self.scale(&rs_api, rs, spec_replicas(rs) - down, replicas, max_total)
                            .await?;
                    }
                }
            }
        }
        self.clean_up(&d, &old, &rs_api).await?;
        self.update_status(&d, ns, name, &new_name, &owned, &new, unavailable)
            .await
    }

    async fn create_new(
        &self,
        d: &Deployment,
        ns: &str,
        name: &str,
        revision: i64,
        api: &Api<ReplicaSet>,
    ) -> cais_kube::Result<ReplicaSet> {
        let spec = d.spec.clone().unwrap_or_default();
        let status = d.status.as_ref();
        let hash = template_hash(&spec.template, status.and_then(|s| s.collision_count));
        let mut template = spec.template.clone();
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(HASH_LABEL.into(), hash.clone());
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(HASH_LABEL.into(), hash.clone());
        let mut annotations: BTreeMap<String, String> = d
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| {
                k != "kubectl.kubernetes.io/last-applied-configuration" && k != REVISION
            })
            .collect();
        annotations.insert(REVISION.into(), revision.to_string());
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {
                "name": format!("{name}-{hash}"),
                "namespace": ns,
                "labels": template.metadata.as_ref().and_then(|m| m.labels.clone()),
                "annotations": annotations,
                "ownerReferences": [OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "Deployment".into(),
                    name: name.into(),
                    uid: d.metadata.uid.clone().unwrap_or_default(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }],
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": spec.min_ready_seconds,
                "selector": selector,
                "template": template,
            },
        }))
        .map_err(|e| cais_kube::Error::Encode {
            path: name.into(),
            reason: e.to_string(),
        })?;
        match api.create(&rs).await {
            Ok(created) => {
                tracing::debug!(deployment = name, replicaset = %format!("{name}-{hash}"), "new replica set");
                Ok(created)
            }
            // Made by an earlier sync the cache does not show yet.
            Err(e) if e.is_already_exists() => api.get(&format!("{name}-{hash}")).await,
            Err(e) => Err(e),
        }
    }

    /// Sets a ReplicaSet's replicas (with the desired and max annotations
    /// `kubectl` reads); a stale cache makes it a Conflict, retried.
    async fn scale(
        &self,
        api: &Api<ReplicaSet>,
        rs: &ReplicaSet,
        to: i32,
        desired: i32,
        max: i32,
    ) -> cais_kube::Result<()> {
        let mut rs = rs.clone();
        rs.spec.get_or_insert_with(Default::default).replicas = Some(to);
        let a = rs.metadata.annotations.get_or_insert_with(Default::default);
        a.insert(DESIRED.into(), desired.to_string());
        a.insert(MAX_REPLICAS.into(), max.to_string());
        let name = rs.metadata.name.clone().unwrap_or_default();
        api.replace(&name, &rs).await?;
        Ok(())
    }

    /// Deletes old, scaled-down ReplicaSets beyond revisionHistoryLimit.
    async fn clean_up(
        &self,
        d: &Deployment,
        old: &[Arc<ReplicaSet>],
        api: &Api<ReplicaSet>,
    ) -> cais_kube::Result<()> {
        let limit = d
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10)
            .max(0) as usize;
        let idle: Vec<&Arc<ReplicaSet>> = old
            .iter()
            .filter(|rs| {
                spec_replicas(rs) == 0 && rs.status.as_ref().is_none_or(|s| s.replicas == 0)
            })
            .collect();
        if idle.len() <= limit {
            return Ok(());
        }
        // `old` is in revision order: the oldest go.
        for rs in &idle[..idle.len() - limit] {
            let name = rs.metadata.name.as_deref().unwrap_or("");
            match api.delete(name, &DeleteParams::background()).await {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one call site, every figure named"
    )]
    async fn update_status(
        &self,
        d: &Deployment,
        ns: &str,
        name: &str,
        new_name: &str,
        owned: &[Arc<ReplicaSet>],
        new: &ReplicaSet,
        max_unavailable: i32,
    ) -> cais_kube::Result<()> {
        let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let mut all: Vec<&ReplicaSet> = owned.iter().map(|r| &**r).collect();
        if !owned.iter().any(|rs| rs.metadata.uid == new.metadata.uid) {
            all.push(new);
        }
        let status_of = |rs: &ReplicaSet| rs.status.clone().unwrap_or_default();
        let total: i32 = all.iter().map(|rs| status_of(rs).replicas).sum();
        let ready: i32 = all
            .iter()
            .map(|rs| status_of(rs).ready_replicas.unwrap_or(0))
            .sum();
        let avail: i32 = all
            .iter()
            .map(|rs| status_of(rs).available_replicas.unwrap_or(0))
            .sum();
        let new_status = status_of(new);
        let updated = new_status.replicas;
        let complete = updated == replicas
            && total == replicas
            && new_status.available_replicas.unwrap_or(0) == replicas
            && spec_replicas(new) == replicas;
        let now = jiff::Timestamp::now().to_string();
        let previous = d
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let condition = |kind: &str, status: bool, reason: &str, message: String| {
            let status = if status { "True" } else { "False" };
            let before = previous.iter().find(|c| c.type_ == kind);
            let since = before
                .filter(|c| c.status == status)
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0.to_string())
                .unwrap_or_else(|| now.clone());
            let updated_at = before
                .filter(|c| c.status == status && c.reason.as_deref() == Some(reason))
                .and_then(|c| c.last_update_time.as_ref())
                .map(|t| t.0.to_string())
                .unwrap_or_else(|| now.clone());
            json!({"type": kind, "status": status, "reason": reason, "message": message,
                   "lastTransitionTime": since, "lastUpdateTime": updated_at})
        };
        let available_ok = avail >= replicas - max_unavailable;
        let conditions = json!([
            condition(
                "Available",
                available_ok,
                if available_ok {
                    "MinimumReplicasAvailable"
                } else {
                    "MinimumReplicasUnavailable"
                },
                if available_ok {
                    "Deployment has minimum availability.".into()
                } else {
                    "Deployment does not have minimum availability.".into()
                },
            ),
            condition(
                "Progressing",
                true,
                if complete {
                    "NewReplicaSetAvailable"
                } else {
                    "ReplicaSetUpdated"
                },
                if complete {
                    format!("ReplicaSet \"{new_name}\" has successfully progressed.")
                } else {
                    format!("ReplicaSet \"{new_name}\" is progressing.")
                },
            ),
        ]);
        let status = json!({
            "observedGeneration": d.metadata.generation,
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": avail,
            "unavailableReplicas": (replicas - avail).max(0),
            "conditions": conditions,
        });
        let current =
            serde_json::to_value(d.status.clone().unwrap_or_default()).unwrap_or_default();
        let same = [
            "observedGeneration",
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
        ]
        .iter()
        .all(|k| current[k] == status[k])
            && current["unavailableReplicas"].as_i64().unwrap_or(0)
                == status["unavailableReplicas"].as_i64().unwrap_or(0)
            && strip_times(&current["conditions"]) == strip_times(&status["conditions"]);
        let revision_now = d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION))
            .cloned();
        let want_revision = revision(new).to_string();
        let api = Api::<Deployment>::namespaced(self.client.clone(), ns);
        if revision_now.as_deref() != Some(want_revision.as_str()) {
            let patch = json!({"metadata": {"annotations": {REVISION: want_revision}}});
            api.patch(name, &Patch::Merge(patch)).await?;
        }
        if !same {
            match api
                .patch_status(name, &Patch::Merge(json!({"status": status})))
                .await
            {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

fn strip_times(conditions: &serde_json::Value) -> Vec<(String, String, String)> {
    conditions
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
            (s("type"), s("status"), s("reason"))
        })
        .collect()
}

/// Runs the controller with `workers` workers until aborted.
pub async fn run(client: Client, workers: usize) {
    let queue = WorkQueue::new();
    let mut deployments = Informer::new(
        Api::<Deployment>::all(client.clone()),
        ListParams::default(),
    );
    {
        let queue = queue.clone();
        deployments.on_change(move |_, new| {
            if let Some(d) = new {
                queue.add(cais_kube::key(d));
            }
        });
    }
    let owner_key = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
                     kind: &str| {
        let owner = controller_of(meta).filter(|o| o.kind == kind)?;
        Some(format!("{}/{}", meta.namespace.as_deref()?, owner.name))
    };
    let mut sets = Informer::new(
        Api::<ReplicaSet>::all(client.clone()),
        ListParams::default(),
    );
    {
        let queue = queue.clone();
        sets.on_change(move |old, new| {
            if let Some(key) = new
                .or(old)
                .and_then(|rs| owner_key(&rs.metadata, "Deployment"))
            {
                queue.add(key);
            }
        });
    }
    let set_store = sets.store();
    let mut pods = Informer::new(Api::<Pod>::all(client.clone()), ListParams::default());
    {
        // Recreate waits for old pods to be gone: their deletion is news.
        let queue = queue.clone();
        let sets = set_store.clone();
        pods.on_change(move |old, new| {
            let gone = new.is_none_or(|p| !is_active(p));
            let Some(pod) = new.or(old).filter(|_| gone) else {
                return;
            };
            let Some(rs_key) = owner_key(&pod.metadata, "ReplicaSet") else {
                return;
            };
            if let Some(key) = sets
                .get(&rs_key)
                .and_then(|rs| owner_key(&rs.metadata, "Deployment"))
            {
                queue.add(key);
            }
        });
    }
    let controller = Arc::new(Controller {
        client,
        deployments: deployments.store(),
        sets: set_store,
        pods: pods.store(),
    });
    let tasks = [deployments.spawn(), sets.spawn(), pods.spawn()];
    controller.deployments.wait_synced().await;
    controller.sets.wait_synced().await;
    controller.pods.wait_synced().await;
    crate::work(queue, workers, move |key| {
        let c = controller.clone();
        async move { c.sync(&key).await }
    })
    .await;
    for t in tasks {
        t.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(surge: Option<IntOrString>, unavailable: Option<IntOrString>) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "d"},
            "spec": {"selector": {}, "template": {},
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}},
        }))
        .expect("deployment")
    }

    #[test]
    fn percentages_round_surge_up_and_unavailability_down() {
        let pct = |s: &str| Some(IntOrString::String(s.into()));
        // The defaults, 25% each, over 10: surge 3 (2.5 up), unavailable 2.
        assert_eq!(surge_and_unavailable(&deployment(None, None), 10), (3, 2));
        assert_eq!(surge_and_unavailable(&deployment(None, None), 3), (1, 0));
        assert_eq!(
            surge_and_unavailable(&deployment(pct("50%"), pct("50%")), 5),
            (3, 2)
        );
        assert_eq!(
            surge_and_unavailable(
                &deployment(Some(IntOrString::Int(2)), Some(IntOrString::Int(1))),
                3
            ),
            (2, 1)
        );
        // Both zero would never move: one pod may be unavailable.
        assert_eq!(
            surge_and_unavailable(&deployment(pct("0%"), pct("0%")), 4),
            (0, 1)
        );
        assert_eq!(
            surge_and_unavailable(&deployment(pct("1%"), pct("99%")), 1),
            (1, 0)
        );
        assert_eq!(
            scaled_value(Some(&IntOrString::String("bad%".into())), "25%", 4, true),
            0
        );
    }

    #[test]
    fn template_hash_is_stable_safe_and_tracks_changes_and_collisions() {
        let t: PodTemplateSpec =
            serde_json::from_value(json!({"metadata": {"labels": {"app": "a"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}))
            .expect("template");
        let h = template_hash(&t, None);
        assert_eq!(h, template_hash(&t.clone(), None));
        assert!(
            h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
            "{h}"
        );
        let mut other = t.clone();
        other.spec.as_mut().expect("spec").containers[0].image = Some("nginx:2".into());
        assert_ne!(h, template_hash(&other, None));
        assert_ne!(h, template_hash(&t, Some(1)));
    }

    #[test]
    fn templates_compare_without_the_hash_label() {
        let t: PodTemplateSpec =
            serde_json::from_value(json!({"metadata": {"labels": {"app": "a"}}})).expect("t");
        let mut hashed = t.clone();
        hashed
            .metadata
            .as_mut()
            .and_then(|m| m.labels.as_mut())
            .expect("labels")
            .insert(HASH_LABEL.into(), "x".into());
        assert_eq!(without_hash(Some(&t)), without_hash(Some(&hashed)));
    }
}
