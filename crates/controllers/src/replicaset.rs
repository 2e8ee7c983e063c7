//! The ReplicaSet controller: keeps `spec.replicas` pods that match the
//! template, owned by the ReplicaSet (controller ownerReference), and
//! reports replicas, ready and available counts in its status.
//!
//! Level-triggered: a change to a ReplicaSet or to a pod it owns queues
//! the ReplicaSet's key; a sync compares the pods in the cache with the
//! spec. Pods it has asked for but not yet seen are counted through
//! expectations, so a lagging cache never makes it create (or delete)
//! twice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cais_kube::{Api, Client, DeleteParams, Informer, ListParams, Patch, Store, WorkQueue};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::json;

/// Expectations older than this are dropped (a create whose pod never
/// showed up, e.g. refused later by an admission step).
const EXPECTATION_TTL: Duration = Duration::from_secs(30);

/// The controller ownerReference of an object, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
}

/// A pod counts toward replicas unless finished or being deleted.
pub fn is_active(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && !matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The order pods are deleted in when scaling down: unscheduled first,
/// then pending, then not ready, then the youngest.
pub fn deletion_rank(pod: &Pod) -> (u8, u8, u8, std::cmp::Reverse<String>) {
    let bound = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    let created = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .unwrap_or_default();
    (
        bound as u8,
        (phase == Some("Running")) as u8,
        is_ready(pod) as u8,
        std::cmp::Reverse(created),
    )
}

#[derive(Default)]
struct Expectation {
    adds: i64,
    deletes: HashSet<String>,
    since: Option<Instant>,
}

impl Expectation {
    fn satisfied(&self) -> bool {
        (self.adds <= 0 && self.deletes.is_empty())
            || self.since.is_some_and(|s| s.elapsed() > EXPECTATION_TTL)
    }
}

struct Controller {
    client: Client,
    sets: Arc<Store<ReplicaSet>>,
    pods: Arc<Store<Pod>>,
    expectations: Arc<Mutex<HashMap<String, Expectation>>>,
}

fn owner_key(pod: &Pod) -> Option<String> {
    let owner = controller_of(&pod.metadata).filter(|o| o.kind == "ReplicaSet")?;
    Some(format!(
        "{}/{}",
        pod.metadata.namespace.as_deref()?,
        owner.name
    ))
}

impl Controller {
    fn owned(&self, rs: &ReplicaSet) -> Vec<Arc<Pod>> {
        let uid = rs.metadata.uid.as_deref();
        let ns = rs.metadata.namespace.as_deref();
        self.pods.filter(|p| {
            p.metadata.namespace.as_deref() == ns
                && controller_of(&p.metadata).is_some_and(|o| Some(o.uid.as_str()) == uid)
        })
    }

    async fn sync(&self, key: &str) -> cais_kube::Result<()> {
        let Some(rs) = self.sets.get(key) else {
            self.expectations
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(key);
            return Ok(());
        };
        let (ns, name) = cais_kube::split_key(key);
        let pods = self.owned(&rs);
        let active: Vec<&Arc<Pod>> = pods.iter().filter(|p| is_active(p)).collect();
        let want = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1) as usize;
        let satisfied = self
            .expectations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .is_none_or(Expectation::satisfied);
        if satisfied && rs.metadata.deletion_timestamp.is_none() {
            let api = Api::<Pod>::namespaced(self.client.clone(), ns);
            if active.len() < want {
                let n = want - active.len();
                self.expect(key, n as i64, HashSet::new());
                let pod = self.pod_for(&rs)?;
                let mut failures = 0;
                let mut last = None;
                for _ in 0..n {
                    if let Err(e) = api.create(&pod).await {
                        failures += 1;
                        last = Some(e);
                    }
                }
                if failures > 0 {
                    self.expect(key, -failures, HashSet::new());
                }
                if let Some(e) = last {
                    return Err(e);
                }
            } else if active.len() > want {
                let mut victims: Vec<&Arc<Pod>> = active.clone();
                victims.sort_by_key(|p| deletion_rank(p));
                let victims: Vec<&Arc<Pod>> =
                    victims.into_iter().take(active.len() - want).collect();
                let names: HashSet<String> = victims
                    .iter()
                    .filter_map(|p| p.metadata.name.clone())
                    .collect();
                self.expect(key, 0, names);
                for p in victims {
                    let pod_name = p.metadata.name.as_deref().unwrap_or("");
                    match api.delete(pod_name, &DeleteParams::default()).await {
                        Ok(_) => {}
                        Err(e) if e.is_not_found() => self.deleted(key, pod_name),
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        self.update_status(&rs, ns, name, &pods).await
    }

    fn expect(&self, key: &str, adds: i64, deletes: HashSet<String>) {
        let mut all = self.expectations.lock().unwrap_or_else(|p| p.into_inner());
        let e = all.entry(key.to_string()).or_default();
        e.adds += adds;
        e.deletes.extend(deletes);
        e.since = Some(Instant::now());
    }

    fn deleted(&self, key: &str, pod: &str) {
        if let Some(e) = self
            .expectations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(key)
        {
            e.deletes.remove(pod);
        }
    }

    /// A new pod of `rs`: its template, a generated name, the controller
    /// reference.
    fn pod_for(&self, rs: &ReplicaSet) -> cais_kube::Result<Pod> {
        let template = rs
            .spec
            .as_ref()
            .and_then(|s| s.template.clone())
            .unwrap_or_default();
        let name = rs.metadata.name.clone().unwrap_or_default();
        let mut meta = template.metadata.unwrap_or_default();
        meta.name = None;
        meta.generate_name = Some(format!("{name}-"));
        meta.namespace = rs.metadata.namespace.clone();
        meta.owner_references = Some(vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name,
            uid: rs.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]);
        Ok(Pod {
            metadata: meta,
            spec: template.spec,
            status: None,
        })
    }

    async fn update_status(
        &self,
        rs: &ReplicaSet,
        ns: &str,
        name: &str,
        pods: &[Arc<Pod>],
    ) -> cais_kube::Result<()> {
        let active: Vec<&Arc<Pod>> = pods.iter().filter(|p| is_active(p)).collect();
        let template_labels: BTreeMap<String, String> = rs
            .spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        let fully = active
            .iter()
            .filter(|p| {
                let labels = p.metadata.labels.as_ref();
                template_labels
                    .iter()
                    .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
            })
            .count() as i32;
        let ready = active.iter().filter(|p| is_ready(p)).count() as i32;
        let status = json!({
            "replicas": active.len() as i32,
            "fullyLabeledReplicas": fully,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs.metadata.generation,
        });
        let current = rs.status.as_ref().map(|s| {
            json!({
                "replicas": s.replicas,
                "fullyLabeledReplicas": s.fully_labeled_replicas.unwrap_or(0),
                "readyReplicas": s.ready_replicas.unwrap_or(0),
                "availableReplicas": s.available_replicas.unwrap_or(0),
                "observedGeneration": s.observed_generation,
            })
        });
        if current.as_ref() == Some(&status) {
            return Ok(());
        }
        let api = Api::<ReplicaSet>::namespaced(self.client.clone(), ns);
        match api
            .patch_status(name, &Patch::Merge(json!({"status": status})))
            .await
        {
            Err(e) if e.is_not_found() => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

/// Runs the controller with `workers` workers until aborted.
pub async fn run(client: Client, workers: usize) {
    let queue = WorkQueue::new();
    let expectations: Arc<Mutex<HashMap<String, Expectation>>> = Arc::default();
    let mut sets = Informer::new(
        Api::<ReplicaSet>::all(client.clone()),
        ListParams::default(),
    );
    {
        let queue = queue.clone();
        sets.on_change(move |_, new| {
            if let Some(rs) = new {
                queue.add(cais_kube::key(rs));
            }
        });
    }
    let mut pods = Informer::new(Api::<Pod>::all(client.clone()), ListParams::default());
    {
        let queue = queue.clone();
        let expectations = expectations.clone();
        pods.on_change(move |old, new| {
            let pod = new.or(old);
            let Some(key) = pod.and_then(owner_key) else {
                return;
            };
            {
                let mut all = expectations.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(e) = all.get_mut(&key) {
                    if old.is_none() {
                        e.adds -= 1;
                    }
                    let going = new.is_none_or(|p| p.metadata.deletion_timestamp.is_some());
                    if going {
                        if let Some(name) = pod.and_then(|p| p.metadata.name.as_ref()) {
                            e.deletes.remove(name);
                        }
                    }
                }
            }
            queue.add(key);
        });
    }
    let controller = Arc::new(Controller {
        client,
        sets: sets.store(),
        pods: pods.store(),
        expectations,
    });
    let tasks = [sets.spawn(), pods.spawn()];
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

    fn pod(node: Option<&str>, phase: &str, ready: bool, created: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": created, "creationTimestamp": created},
            "spec": {"containers": [], "nodeName": node},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
        }))
        .expect("pod")
    }

    #[test]
    fn scale_down_removes_the_least_advanced_and_youngest_first() {
        let mut pods = [
            pod(Some("n"), "Running", true, "2026-01-01T00:00:01Z"),
            pod(Some("n"), "Running", true, "2026-01-01T00:00:03Z"),
            pod(None, "Pending", false, "2026-01-01T00:00:00Z"),
            pod(Some("n"), "Pending", false, "2026-01-01T00:00:02Z"),
            pod(Some("n"), "Running", false, "2026-01-01T00:00:04Z"),
        ];
        pods.sort_by_key(deletion_rank);
        let order: Vec<_> = pods
            .iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(
            order,
            [
                "2026-01-01T00:00:00Z",
                "2026-01-01T00:00:02Z",
                "2026-01-01T00:00:04Z",
                "2026-01-01T00:00:03Z",
                "2026-01-01T00:00:01Z",
            ]
        );
    }

    #[test]
    fn expectations_hold_until_seen_or_expired() {
        let mut e = Expectation {
            adds: 2,
            since: Some(Instant::now()),
            ..Default::default()
        };
        assert!(!e.satisfied());
        e.adds = 0;
        e.deletes.insert("p".into());
        assert!(!e.satisfied());
        e.deletes.clear();
        assert!(e.satisfied());
        let old = Expectation {
            adds: 3,
            since: Instant::now().checked_sub(EXPECTATION_TTL * 2),
            ..Default::default()
        };
        assert!(old.satisfied());
    }
}
