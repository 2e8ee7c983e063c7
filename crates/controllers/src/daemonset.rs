//! The DaemonSet controller: one pod of the template on every eligible
//! node, owned by the DaemonSet (controller ownerReference).
//!
//! A node is eligible when the template pod (with the tolerations every
//! daemon pod gets) passes the scheduler's node selector/affinity and
//! taint filters. A pod already running stays while only `NoSchedule`
//! taints are untolerated; an untolerated `NoExecute` taint or a selector
//! that no longer matches removes it. Pods are created with a required
//! node affinity on `metadata.name` and bound by the scheduler, so they
//! still go through its resource and port filters. A pod whose template
//! hash (label `controller-revision-hash`) is out of date is replaced
//! within `maxUnavailable` (RollingUpdate) or left alone (OnDelete).
//!
//! Level-triggered like the ReplicaSet controller: a change to a
//! DaemonSet or to a pod it owns queues its key, a change to a node
//! queues every DaemonSet; creations not yet seen in the cache are
//! counted so a lagging cache never makes it create twice.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cais_kube::{Api, Client, DeleteParams, Informer, ListParams, Patch, Store, WorkQueue};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::json;

use crate::deployment::{scaled_value, template_hash};
use crate::replicaset::{controller_of, is_active, is_ready};
use crate::scheduler::{matches_node_selector, tolerates, tolerates_taints, NodeInfo};

/// The label naming the template revision a daemon pod was made from.
pub const HASH_LABEL: &str = "controller-revision-hash";

/// Creations older than this are no longer waited for.
const EXPECTATION_TTL: Duration = Duration::from_secs(30);

/// The tolerations every daemon pod gets, so that daemons keep running
/// on nodes under pressure, cordoned or losing contact (Kubernetes'
/// `AddOrUpdateDaemonPodTolerations`).
pub fn daemon_tolerations() -> Vec<Toleration> {
    let t = |key: &str, effect: &str| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    };
    vec![
        t("node.kubernetes.io/not-ready", "NoExecute"),
        t("node.kubernetes.io/unreachable", "NoExecute"),
        t("node.kubernetes.io/disk-pressure", "NoSchedule"),
        t("node.kubernetes.io/memory-pressure", "NoSchedule"),
        t("node.kubernetes.io/pid-pressure", "NoSchedule"),
        t("node.kubernetes.io/unschedulable", "NoSchedule"),
    ]
}

/// Whether a daemon pod should be created on `node` and whether one
/// already there may continue: the node selector and affinity must match
/// for both; every `NoSchedule`/`NoExecute` taint must be tolerated to
/// start, only the `NoExecute` ones to continue.
pub fn eligibility(pod: &Pod, node: &Node) -> (bool, bool) {
    let info = NodeInfo {
        node: Arc::new(node.clone()),
        ..Default::default()
    };
    if matches_node_selector(pod, &info).is_err() {
        return (false, false);
    }
    let should_run = tolerates_taints(pod, &info).is_ok();
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[]);
    let should_continue = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[])
        .iter()
        .filter(|taint| taint.effect == "NoExecute")
        .all(|taint| tolerations.iter().any(|t| tolerates(t, taint)));
    (should_run, should_continue)
}

/// The node a daemon pod is for: where it is bound, or else the node its
/// `metadata.name` affinity names.
pub fn node_of(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(n.to_string());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|f| f.key == "metadata.name" && f.operator == "In")
        .and_then(|f| f.values.as_ref()?.first().cloned())
}

/// The template as a pod (with the daemon tolerations added), what
/// eligibility is judged on.
fn template_pod(ds: &DaemonSet) -> Pod {
    let template = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut spec = template.spec.unwrap_or_default();
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for t in daemon_tolerations() {
        if !tolerations.contains(&t) {
            tolerations.push(t);
        }
    }
    Pod {
        metadata: template.metadata.unwrap_or_default(),
        spec: Some(spec),
        status: None,
    }
}

/// A new pod of `ds` for `node`: the template pod, the revision label,
/// the controller reference and a required affinity to that node alone
/// (the template's own affinity was already judged by [`eligibility`]).
pub fn pod_for(ds: &DaemonSet, node: &str, hash: &str) -> cais_kube::Result<Pod> {
    let mut pod = template_pod(ds);
    let name = ds.metadata.name.clone().unwrap_or_default();
    pod.metadata.name = None;
    pod.metadata.generate_name = Some(format!("{name}-"));
    pod.metadata.namespace = ds.metadata.namespace.clone();
    pod.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(HASH_LABEL.into(), hash.into());
    pod.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "apps/v1".into(),
        kind: "DaemonSet".into(),
        name,
        uid: ds.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    let term = json!({"nodeSelectorTerms": [{"matchFields": [
        {"key": "metadata.name", "operator": "In", "values": [node]}
    ]}]});
    if let Some(spec) = pod.spec.as_mut() {
        let affinity = spec.affinity.get_or_insert_with(Default::default);
        let node_affinity = affinity.node_affinity.get_or_insert_with(Default::default);
        node_affinity.required_during_scheduling_ignored_during_execution = Some(
            serde_json::from_value(term).map_err(|e| cais_kube::Error::Encode {
                path: node.to_string(),
                reason: e.to_string(),
            })?,
        );
    }
    Ok(pod)
}

fn hash_of(ds: &DaemonSet) -> String {
    let template = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    template_hash(
        &template,
        ds.status.as_ref().and_then(|s| s.collision_count),
    )
}

fn owner_key(pod: &Pod) -> Option<String> {
    let owner = controller_of(&pod.metadata).filter(|o| o.kind == "DaemonSet")?;
    Some(format!(
        "{}/{}",
        pod.metadata.namespace.as_deref()?,
        owner.name
    ))
}

/// What a sync decided: pods to create (by node) and to delete (by name).
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub create: Vec<String>,
    pub delete: Vec<String>,
    pub status: Counts,
}

#[derive(Debug, Default, PartialEq, Clone, Copy)]
pub struct Counts {
    pub desired: i32,
    pub current: i32,
    pub misscheduled: i32,
    pub ready: i32,
    pub updated: i32,
}

/// Compares the active pods of `ds` with `nodes` (pure, unit-tested).
pub fn plan(ds: &DaemonSet, nodes: &[Arc<Node>], pods: &[&Pod]) -> Plan {
    let template = template_pod(ds);
    let hash = hash_of(ds);
    let mut by_node: HashMap<String, Vec<&Pod>> = HashMap::new();
    for p in pods {
        by_node
            .entry(node_of(p).unwrap_or_default())
            .or_default()
            .push(p);
    }
    let mut out = Plan::default();
    let mut outdated: Vec<&Pod> = Vec::new();
    let mut unavailable = 0;
    let name = |p: &Pod| p.metadata.name.clone().unwrap_or_default();
    for node in nodes {
        let node_name = node.metadata.name.clone().unwrap_or_default();
        let (should_run, should_continue) = eligibility(&template, node);
        let mut here = by_node.remove(&node_name).unwrap_or_default();
        if should_run {
            out.status.desired += 1;
        }
        if here.is_empty() {
            if should_run {
                out.create.push(node_name);
                unavailable += 1;
            }
            continue;
        }
        if !should_continue {
            out.status.misscheduled += 1;
            out.delete.extend(here.iter().map(|p| name(p)));
            continue;
        }
        if !should_run {
            // Kept (a NoSchedule taint came after it), but not desired.
            out.status.misscheduled += 1;
            continue;
        }
        // One per node: the oldest stays.
        here.sort_by_key(|p| {
            p.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default()
        });
        out.delete.extend(here[1..].iter().map(|p| name(p)));
        let pod = here[0];
        out.status.current += 1;
        if is_ready(pod) {
            out.status.ready += 1;
        } else {
            unavailable += 1;
        }
        let labels = pod.metadata.labels.as_ref();
        if labels.and_then(|l| l.get(HASH_LABEL)) == Some(&hash) {
            out.status.updated += 1;
        } else {
            outdated.push(pod);
        }
    }
    // Pods for nodes that are gone, or never were.
    for rest in by_node.values() {
        out.delete.extend(rest.iter().map(|p| name(p)));
    }
    let strategy = ds.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
    if strategy.and_then(|s| s.type_.as_deref()) != Some("OnDelete") {
        let max = scaled_value(
            strategy
                .and_then(|s| s.rolling_update.as_ref())
                .and_then(|r| r.max_unavailable.as_ref()),
            "1",
            out.status.desired,
            true,
        )
        .max(1);
        // Unavailable outdated pods go first: replacing them costs nothing.
        outdated.sort_by_key(|p| is_ready(p));
        let mut budget = max - unavailable;
        for p in outdated {
            if !is_ready(p) {
                out.delete.push(name(p));
            } else if budget > 0 {
                budget -= 1;
                out.delete.push(name(p));
            }
        }
    }
    out
}

struct Controller {
    client: Client,
    sets: Arc<Store<DaemonSet>>,
    pods: Arc<Store<Pod>>,
    nodes: Arc<Store<Node>>,
    /// Creations asked for and not yet seen, per DaemonSet key.
    expectations: Arc<Mutex<HashMap<String, (i64, Instant)>>>,
}

impl Controller {
    fn satisfied(&self, key: &str) -> bool {
        self.expectations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .is_none_or(|(adds, since)| *adds <= 0 || since.elapsed() > EXPECTATION_TTL)
    }

    fn expect(&self, key: &str, adds: i64) {
        let mut all = self.expectations.lock().unwrap_or_else(|p| p.into_inner());
        let e = all.entry(key.to_string()).or_insert((0, Instant::now()));
        e.0 += adds;
        e.1 = Instant::now();
    }

    async fn sync(&self, key: &str) -> cais_kube::Result<()> {
        let Some(ds) = self.sets.get(key) else {
            self.expectations
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(key);
            return Ok(());
        };
        let (ns, name) = cais_kube::split_key(key);
        let uid = ds.metadata.uid.as_deref();
        let owned = self.pods.filter(|p| {
            p.metadata.namespace.as_deref() == Some(ns)
                && controller_of(&p.metadata).is_some_and(|o| Some(o.uid.as_str()) == uid)
        });
        let active: Vec<&Pod> = owned
            .iter()
            .filter(|p| is_active(p))
            .map(|p| &**p)
            .collect();
        let nodes = self.nodes.list();
        let plan = plan(&ds, &nodes, &active);
        if self.satisfied(key) && ds.metadata.deletion_timestamp.is_none() {
            let api = Api::<Pod>::namespaced(self.client.clone(), ns);
            let hash = hash_of(&ds);
            self.expect(key, plan.create.len() as i64);
            let mut last = None;
            for node in &plan.create {
                let created = match pod_for(&ds, node, &hash) {
                    Ok(pod) => api.create(&pod).await.map(|_| ()),
                    Err(e) => Err(e),
                };
                if let Err(e) = created {
                    self.expect(key, -1);
                    last = Some(e);
                }
            }
            for pod in &plan.delete {
                match api.delete(pod, &DeleteParams::default()).await {
                    Err(e) if !e.is_not_found() => last = Some(e),
                    _ => {}
                }
            }
            if let Some(e) = last {
                return Err(e);
            }
        }
        self.update_status(&ds, ns, name, plan.status).await
    }

    async fn update_status(
        &self,
        ds: &DaemonSet,
        ns: &str,
        name: &str,
        c: Counts,
    ) -> cais_kube::Result<()> {
        let status = json!({
            "desiredNumberScheduled": c.desired,
            "currentNumberScheduled": c.current,
            "numberMisscheduled": c.misscheduled,
            "numberReady": c.ready,
            "numberAvailable": c.ready,
            "numberUnavailable": c.desired - c.ready,
            "updatedNumberScheduled": c.updated,
            "observedGeneration": ds.metadata.generation,
        });
        let current = ds.status.as_ref().map(|s| {
            json!({
                "desiredNumberScheduled": s.desired_number_scheduled,
                "currentNumberScheduled": s.current_number_scheduled,
                "numberMisscheduled": s.number_misscheduled,
                "numberReady": s.number_ready,
                "numberAvailable": s.number_available.unwrap_or(0),
                "numberUnavailable": s.number_unavailable.unwrap_or(0),
                "updatedNumberScheduled": s.updated_number_scheduled.unwrap_or(0),
                "observedGeneration": s.observed_generation,
            })
        });
        if current.as_ref() == Some(&status) {
            return Ok(());
        }
        let api = Api::<DaemonSet>::namespaced(self.client.clone(), ns);
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
    let expectations: Arc<Mutex<HashMap<String, (i64, Instant)>>> = Arc::default();
    let mut sets = Informer::new(Api::<DaemonSet>::all(client.clone()), ListParams::default());
    {
        let queue = queue.clone();
        sets.on_change(move |_, new| {
            if let Some(ds) = new {
                queue.add(cais_kube::key(ds));
            }
        });
    }
    let set_store = sets.store();
    let mut nodes = Informer::new(Api::<Node>::all(client.clone()), ListParams::default());
    {
        let (queue, set_store) = (queue.clone(), set_store.clone());
        nodes.on_change(move |old, new| {
            // Heartbeats change only status; what decides eligibility is
            // labels and taints, or the node coming or going.
            let same = match (old, new) {
                (Some(o), Some(n)) => o.metadata.labels == n.metadata.labels && o.spec == n.spec,
                _ => false,
            };
            if !same {
                for key in set_store.keys() {
                    queue.add(key);
                }
            }
        });
    }
    let mut pods = Informer::new(Api::<Pod>::all(client.clone()), ListParams::default());
    {
        let queue = queue.clone();
        let expectations = expectations.clone();
        pods.on_change(move |old, new| {
            let Some(key) = new.or(old).and_then(owner_key) else {
                return;
            };
            if old.is_none() {
                let mut all = expectations.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(e) = all.get_mut(&key) {
                    e.0 -= 1;
                }
            }
            queue.add(key);
        });
    }
    let controller = Arc::new(Controller {
        client,
        sets: set_store,
        pods: pods.store(),
        nodes: nodes.store(),
        expectations,
    });
    let tasks = [sets.spawn(), nodes.spawn(), pods.spawn()];
    controller.sets.wait_synced().await;
    controller.nodes.wait_synced().await;
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

    fn node(name: &str, labels: serde_json::Value, taints: serde_json::Value) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": labels},
                "spec": {"taints": taints},
            }))
            .expect("node"),
        )
    }

    fn daemon_set(spec: serde_json::Value) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "d", "namespace": "ns", "uid": "u1", "generation": 1},
            "spec": {
                "selector": {"matchLabels": {"app": "d"}},
                "template": {"metadata": {"labels": {"app": "d"}}, "spec": spec},
            },
        }))
        .expect("daemon set")
    }

    fn pod_on(ds: &DaemonSet, node: &str, name: &str, ready: bool) -> Pod {
        let mut p = pod_for(ds, node, &hash_of(ds)).expect("pod");
        p.metadata.name = Some(name.into());
        p.spec.as_mut().expect("spec").node_name = Some(node.into());
        p.status = serde_json::from_value(json!({"phase": "Running", "conditions": [
            {"type": "Ready", "status": if ready {"True"} else {"False"}}]}))
        .expect("status");
        p
    }

    #[test]
    fn node_selector_decides_eligibility() {
        let ds = daemon_set(json!({"containers": [], "nodeSelector": {"disk": "ssd"}}));
        let pod = template_pod(&ds);
        let ssd = node("a", json!({"disk": "ssd"}), json!([]));
        let hdd = node("b", json!({"disk": "hdd"}), json!([]));
        assert_eq!(eligibility(&pod, &ssd), (true, true));
        assert_eq!(eligibility(&pod, &hdd), (false, false));
    }

    #[test]
    fn taints_keep_new_pods_out_and_only_no_execute_evicts() {
        let plain = template_pod(&daemon_set(json!({"containers": []})));
        let no_schedule = node(
            "a",
            json!({}),
            json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
        );
        let no_execute = node(
            "b",
            json!({}),
            json!([{"key": "dedicated", "effect": "NoExecute"}]),
        );
        assert_eq!(eligibility(&plain, &no_schedule), (false, true));
        assert_eq!(eligibility(&plain, &no_execute), (false, false));
        let tolerant = template_pod(&daemon_set(json!({"containers": [], "tolerations": [
            {"key": "dedicated", "operator": "Exists"}]})));
        assert_eq!(eligibility(&tolerant, &no_schedule), (true, true));
        assert_eq!(eligibility(&tolerant, &no_execute), (true, true));
    }

    #[test]
    fn daemon_pods_tolerate_node_conditions_and_cordons() {
        let plain = template_pod(&daemon_set(json!({"containers": []})));
        for taint in [
            json!({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}),
            json!({"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}),
            json!({"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"}),
        ] {
            let n = node("a", json!({}), json!([taint]));
            assert_eq!(eligibility(&plain, &n), (true, true), "{taint}");
        }
    }

    #[test]
    fn pods_are_pinned_by_affinity_and_found_by_it_before_binding() {
        let ds = daemon_set(json!({"containers": [], "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["x"]}]}]}}}}));
        let pod = pod_for(&ds, "n1", "h").expect("pod");
        assert_eq!(node_of(&pod).as_deref(), Some("n1"));
        assert!(pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_none());
        let info = |name: &str| NodeInfo {
            node: node(name, json!({}), json!([])),
            ..Default::default()
        };
        assert!(matches_node_selector(&pod, &info("n1")).is_ok());
        assert!(matches_node_selector(&pod, &info("n2")).is_err());
        let owner = &pod.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("DaemonSet", "u1")
        );
        assert_eq!(owner.controller, Some(true));
        assert_eq!(
            pod.metadata.labels.as_ref().expect("labels")[HASH_LABEL],
            "h"
        );
    }

    #[test]
    fn plan_fills_missing_nodes_and_removes_extras_and_strays() {
        let ds = daemon_set(json!({"containers": []}));
        let nodes = [
            node("a", json!({}), json!([])),
            node("b", json!({}), json!([])),
            node(
                "c",
                json!({}),
                json!([{"key": "k", "effect": "NoSchedule"}]),
            ),
        ];
        let on_a = pod_on(&ds, "a", "pa", true);
        let mut again_a = pod_on(&ds, "a", "pa2", true);
        again_a.metadata.creation_timestamp =
            serde_json::from_value(json!("2030-01-01T00:00:00Z")).expect("time");
        let gone = pod_on(&ds, "z", "pz", true);
        let p = plan(&ds, &nodes, &[&on_a, &again_a, &gone]);
        assert_eq!(p.create, ["b"]);
        let mut deleted = p.delete.clone();
        deleted.sort();
        assert_eq!(deleted, ["pa2", "pz"]);
        assert_eq!(
            p.status,
            Counts {
                desired: 2,
                current: 1,
                misscheduled: 0,
                ready: 1,
                updated: 1
            }
        );
    }

    #[test]
    fn outdated_pods_are_replaced_within_max_unavailable() {
        let old = daemon_set(json!({"containers": [{"name": "c", "image": "v1"}]}));
        let new = daemon_set(json!({"containers": [{"name": "c", "image": "v2"}]}));
        let nodes: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|n| node(n, json!({}), json!([])))
            .collect();
        let pods: Vec<Pod> = ["a", "b", "c"]
            .iter()
            .map(|n| pod_on(&old, n, &format!("p{n}"), true))
            .collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        let p = plan(&new, &nodes, &refs);
        assert_eq!(p.delete.len(), 1, "{p:?}");
        assert_eq!(p.status.updated, 0);
        // With one already unavailable, nothing more goes.
        let mut pods = pods;
        pods[0] = pod_on(&new, "a", "pa-new", false);
        let refs: Vec<&Pod> = pods.iter().collect();
        let p = plan(&new, &nodes, &refs);
        assert!(p.delete.is_empty(), "{p:?}");
        assert_eq!(p.status.updated, 1);
    }
}
