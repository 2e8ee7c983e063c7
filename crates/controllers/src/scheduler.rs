//! The scheduler: pods without a node go through a work queue; each is
//! checked against every node by the filters, the nodes that pass are
//! ranked by the scores, and the best is bound through `pods/binding`.
//! When none passes, the pod gets `PodScheduled=False` with reason
//! `Unschedulable` and a message counting why each node was refused (what
//! `kubectl describe` prints), plus a `FailedScheduling` event, and is
//! tried again when nodes change.
//!
//! Filters and scores are small pure functions over a pod and a
//! [`NodeInfo`] (the node and what is bound to it), unit-tested below.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cais_kube::{Api, Client, Informer, ListParams, Patch, Store, WorkQueue};
use k8s_openapi::api::core::v1::{Event, Node, Pod, Taint};
use serde_json::json;

use crate::quantity;

/// The scheduler's name in pods' `spec.schedulerName`.
pub const NAME: &str = "default-scheduler";

/// What a node offers and what is already placed on it.
#[derive(Clone, Debug, Default)]
pub struct NodeInfo {
    pub node: Arc<Node>,
    /// Requests of the pods on it: millicores, bytes, pod count.
    pub cpu: i64,
    pub memory: i64,
    pub pods: i64,
    pub ports: Vec<(String, i32)>,
    /// The same requests with [`DEFAULT_CPU`] and [`DEFAULT_MEMORY`] for
    /// pods that set none: what scores count.
    pub scored_cpu: i64,
    pub scored_memory: i64,
}

/// A pod's requests (the sum of its containers', or the largest init
/// container's if larger), in millicores and bytes.
pub fn requests(pod: &Pod) -> (i64, i64) {
    let Some(spec) = &pod.spec else { return (0, 0) };
    let sum = |cs: &[k8s_openapi::api::core::v1::Container]| -> Vec<(i64, i64)> {
        cs.iter()
            .map(|c| {
                let r = c.resources.as_ref().and_then(|r| r.requests.as_ref());
                let get = |k: &str, f: fn(&str) -> Option<i64>| {
                    r.and_then(|r| r.get(k)).and_then(|q| f(&q.0)).unwrap_or(0)
                };
                (get("cpu", quantity::milli), get("memory", quantity::units))
            })
            .collect()
    };
    let app = sum(&spec.containers);
    let (mut cpu, mut mem) = app.iter().fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    for (c, m) in sum(spec.init_containers.as_deref().unwrap_or(&[])) {
        cpu = cpu.max(c);
        mem = mem.max(m);
    }
    (cpu, mem)
}

fn host_ports(pod: &Pod) -> Vec<(String, i32)> {
    pod.spec
        .iter()
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            p.host_port
                .filter(|h| *h > 0)
                .map(|h| (p.protocol.clone().unwrap_or_else(|| "TCP".into()), h))
        })
        .collect()
}

fn allocatable(node: &Node, key: &str, parse: fn(&str) -> Option<i64>) -> i64 {
    node.status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()))
        .and_then(|a| a.get(key))
        .and_then(|q| parse(&q.0))
        .unwrap_or(0)
}

// ------------------------------------------------------------- filters

/// Why a filter refused a node, worded as the scheduler's message counts it.
pub type Refusal = String;

/// The node is Ready and not cordoned.
pub fn node_schedulable(_pod: &Pod, info: &NodeInfo) -> Result<(), Refusal> {
    let node = &info.node;
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        return Err("node(s) were unschedulable".into());
    }
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if !ready {
        return Err("node(s) were not ready".into());
    }
    Ok(())
}

/// The pod's requests fit in what is left of the node's allocatable.
pub fn fits_resources(pod: &Pod, info: &NodeInfo) -> Result<(), Refusal> {
    let (cpu, mem) = requests(pod);
    let node = &info.node;
    if info.pods + 1 > allocatable(node, "pods", quantity::units) {
        return Err("Too many pods".into());
    }
    if cpu > 0 && info.cpu + cpu > allocatable(node, "cpu", quantity::milli) {
        return Err("Insufficient cpu".into());
    }
    if mem > 0 && info.memory + mem > allocatable(node, "memory", quantity::units) {
        return Err("Insufficient memory".into());
    }
    Ok(())
}

/// `nodeSelector` and the required terms of node affinity (any term, all
/// of its expressions).
pub fn matches_node_selector(pod: &Pod, info: &NodeInfo) -> Result<(), Refusal> {
    let refused = || Err("node(s) didn't match Pod's node affinity/selector".into());
    let empty = BTreeMap::new();
    let labels = info.node.metadata.labels.as_ref().unwrap_or(&empty);
    let Some(spec) = &pod.spec else { return Ok(()) };
    for (k, v) in spec.node_selector.iter().flatten() {
        if labels.get(k) != Some(v) {
            return refused();
        }
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    if let Some(selector) = required {
        let any = selector.node_selector_terms.iter().any(|term| {
            let exprs = term.match_expressions.iter().flatten();
            let fields = term.match_fields.iter().flatten();
            let name = info.node.metadata.name.clone().unwrap_or_default();
            exprs.clone().all(|e| {
                expression(
                    labels.get(&e.key),
                    &e.operator,
                    e.values.as_deref().unwrap_or(&[]),
                )
            }) && fields.clone().all(|e| {
                e.key == "metadata.name"
                    && expression(Some(&name), &e.operator, e.values.as_deref().unwrap_or(&[]))
            }) && (exprs.count() + fields.count()) > 0
        });
        if !any {
            return refused();
        }
    }
    Ok(())
}

/// One node selector requirement (`In`, `NotIn`, `Exists`,
/// `DoesNotExist`, `Gt`, `Lt`) against a label's value.
fn expression(value: Option<&String>, operator: &str, values: &[String]) -> bool {
    let int = |s: &str| s.parse::<i64>().ok();
    match operator {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => !value.is_some_and(|v| values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => match (
            value.and_then(|v| int(v)),
            values.first().and_then(|v| int(v)),
        ) {
            (Some(v), Some(bound)) => {
                (operator == "Gt" && v > bound) || (operator == "Lt" && v < bound)
            }
            _ => false,
        },
        _ => false,
    }
}

/// Every `NoSchedule`/`NoExecute` taint of the node is tolerated.
pub fn tolerates_taints(pod: &Pod, info: &NodeInfo) -> Result<(), Refusal> {
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[]);
    for taint in info
        .node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[])
    {
        if taint.effect == "PreferNoSchedule" {
            continue;
        }
        if !tolerations.iter().any(|t| tolerates(t, taint)) {
            let value = taint
                .value
                .as_deref()
                .map(|v| format!(": {v}"))
                .unwrap_or_default();
            return Err(format!(
                "node(s) had untolerated taint {{{}{value}}}",
                taint.key
            ));
        }
    }
    Ok(())
}

/// A toleration matches a taint: same key (or an empty key with
/// `Exists`), `Exists` or equal value, same effect (or any).
pub fn tolerates(t: &k8s_openapi::api::core::v1::Toleration, taint: &Taint) -> bool {
    let effect = t.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    let exists = t.operator.as_deref() == Some("Exists");
    if key.is_empty() {
        return exists;
    }
    key == taint.key
        && (exists || t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""))
}

/// The host ports the pod asks for are free on the node.
pub fn host_ports_free(pod: &Pod, info: &NodeInfo) -> Result<(), Refusal> {
    if host_ports(pod).iter().any(|p| info.ports.contains(p)) {
        return Err("node(s) didn't have free ports for the requested pod ports".into());
    }
    Ok(())
}

/// A filter: whether a node can take a pod, or why not.
pub type Filter = fn(&Pod, &NodeInfo) -> Result<(), Refusal>;

/// The filters in the order they run.
pub const FILTERS: &[Filter] = &[
    node_schedulable,
    matches_node_selector,
    tolerates_taints,
    host_ports_free,
    fits_resources,
];

// -------------------------------------------------------------- scores

/// Requests counted for scoring when a pod sets none (so that empty pods
/// still spread), as Kubernetes' `schedutil` defaults do: 100m, 200Mi.
const DEFAULT_CPU: i64 = 100;
const DEFAULT_MEMORY: i64 = 200 << 20;

/// A pod's requests as scores count them.
pub fn scored_requests(pod: &Pod) -> (i64, i64) {
    let (cpu, mem) = requests(pod);
    (
        if cpu == 0 { DEFAULT_CPU } else { cpu },
        if mem == 0 { DEFAULT_MEMORY } else { mem },
    )
}

fn fractions(pod: &Pod, info: &NodeInfo) -> (f64, f64) {
    let (cpu, mem) = scored_requests(pod);
    let frac = |used: i64, total: i64| {
        if total <= 0 {
            1.0
        } else {
            (used as f64 / total as f64).min(1.0)
        }
    };
    (
        frac(
            info.scored_cpu + cpu,
            allocatable(&info.node, "cpu", quantity::milli),
        ),
        frac(
            info.scored_memory + mem,
            allocatable(&info.node, "memory", quantity::units),
        ),
    )
}

/// 0–100, higher for the node with more left after the pod, CPU and
/// memory weighted alike.
pub fn least_allocated(pod: &Pod, info: &NodeInfo) -> i64 {
    let (c, m) = fractions(pod, info);
    (((1.0 - c) + (1.0 - m)) * 50.0) as i64
}

/// 0–100, higher when CPU and memory would be used in equal shares.
pub fn balanced_allocation(pod: &Pod, info: &NodeInfo) -> i64 {
    let (c, m) = fractions(pod, info);
    ((1.0 - (c - m).abs()) * 100.0) as i64
}

/// The nodes that pass every filter, or the message saying why none does
/// (`0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had ...`).
pub fn place(pod: &Pod, nodes: &[NodeInfo]) -> Result<String, String> {
    let mut refusals: BTreeMap<String, usize> = BTreeMap::new();
    let mut best: Option<(i64, &str)> = None;
    for info in nodes {
        match FILTERS.iter().try_for_each(|f| f(pod, info)) {
            Err(why) => *refusals.entry(why).or_default() += 1,
            Ok(()) => {
                let score = least_allocated(pod, info) + balanced_allocation(pod, info);
                let name = info.node.metadata.name.as_deref().unwrap_or("");
                // Ties go to the name first in order, so placements repeat.
                if best.is_none_or(|(s, n)| score > s || (score == s && name < n)) {
                    best = Some((score, name));
                }
            }
        }
    }
    if let Some((_, name)) = best {
        return Ok(name.to_string());
    }
    let reasons: Vec<String> = refusals
        .iter()
        .map(|(why, n)| format!("{n} {why}"))
        .collect();
    let mut message = format!("0/{} nodes are available", nodes.len());
    if !reasons.is_empty() {
        message.push_str(": ");
        message.push_str(&reasons.join(", "));
    }
    message.push('.');
    Err(message)
}

// ---------------------------------------------------------------- loop

fn wants_scheduling(pod: &Pod) -> bool {
    let Some(spec) = &pod.spec else { return false };
    spec.node_name.as_deref().unwrap_or("").is_empty()
        && spec.scheduler_name.as_deref().unwrap_or(NAME) == NAME
        && pod.metadata.deletion_timestamp.is_none()
        && !matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

fn occupies(pod: &Pod) -> Option<&str> {
    let node = pod
        .spec
        .as_ref()?
        .node_name
        .as_deref()
        .filter(|n| !n.is_empty())?;
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    (!matches!(phase, Some("Succeeded" | "Failed"))).then_some(node)
}

struct Scheduler {
    client: Client,
    pods: Arc<Store<Pod>>,
    nodes: Arc<Store<Node>>,
    queue: WorkQueue,
    /// Pods bound by this scheduler that the pod cache does not show bound
    /// yet, with their node: counted as placed so two pods never take the
    /// same room.
    assumed: Mutex<HashMap<String, (String, Arc<Pod>)>>,
}

impl Scheduler {
    fn node_infos(&self) -> Vec<NodeInfo> {
        let mut infos: HashMap<String, NodeInfo> = self
            .nodes
            .list()
            .into_iter()
            .map(|n| {
                let name = n.metadata.name.clone().unwrap_or_default();
                (
                    name,
                    NodeInfo {
                        node: n,
                        ..Default::default()
                    },
                )
            })
            .collect();
        let mut add = |node: &str, pod: &Pod| {
            if let Some(info) = infos.get_mut(node) {
                let (c, m) = requests(pod);
                info.cpu += c;
                info.memory += m;
                let (c, m) = scored_requests(pod);
                info.scored_cpu += c;
                info.scored_memory += m;
                info.pods += 1;
                info.ports.extend(host_ports(pod));
            }
        };
        let mut assumed = self.assumed.lock().unwrap_or_else(|p| p.into_inner());
        assumed.retain(|key, _| self.pods.get(key).is_some_and(|p| occupies(&p).is_none()));
        for pod in self.pods.list() {
            if let Some(node) = occupies(&pod) {
                add(node, &pod);
            }
        }
        for (node, pod) in assumed.values() {
            add(node, pod);
        }
        let mut infos: Vec<NodeInfo> = infos.into_values().collect();
        infos.sort_by(|a, b| a.node.metadata.name.cmp(&b.node.metadata.name));
        infos
    }

    async fn schedule(&self, key: &str) -> cais_kube::Result<()> {
        let Some(pod) = self.pods.get(key) else {
            return Ok(());
        };
        if !wants_scheduling(&pod)
            || self
                .assumed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(key)
        {
            return Ok(());
        }
        let (ns, name) = cais_kube::split_key(key);
        let api = Api::<Pod>::namespaced(self.client.clone(), ns);
        match place(&pod, &self.node_infos()) {
            Ok(node) => {
                self.assumed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key.to_string(), (node.clone(), pod.clone()));
                let binding = json!({
                    "apiVersion": "v1", "kind": "Binding",
                    "metadata": {"name": name, "namespace": ns, "uid": pod.metadata.uid},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": node},
                });
                if let Err(e) = api.create_subresource(name, "binding", &binding).await {
                    self.assumed
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(key);
                    if e.is_not_found() || e.is_conflict() {
                        return Ok(());
                    }
                    return Err(e);
                }
                tracing::debug!(pod = key, node, "bound");
                let message = format!("Successfully assigned {key} to {node}");
                self.event(&pod, "Normal", "Scheduled", &message).await;
                Ok(())
            }
            Err(message) => {
                let already = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .into_iter()
                    .flatten()
                    .any(|c| {
                        c.type_ == "PodScheduled"
                            && c.status == "False"
                            && c.message.as_deref() == Some(&message)
                    });
                if !already {
                    let now = jiff::Timestamp::now().to_string();
                    let patch = json!({"status": {"conditions": [{
                        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                        "message": message, "lastProbeTime": null, "lastTransitionTime": now,
                    }]}});
                    match api.patch_status(name, &Patch::Strategic(patch)).await {
                        Err(e) if !e.is_not_found() => return Err(e),
                        _ => {}
                    }
                    self.event(&pod, "Warning", "FailedScheduling", &message)
                        .await;
                }
                // Tried again when a node changes, and now and then.
                self.queue.add_after(key, Duration::from_secs(10));
                Ok(())
            }
        }
    }

    async fn event(&self, pod: &Pod, kind: &str, reason: &str, message: &str) {
        record_event(&self.client, pod, "Pod", kind, reason, message, NAME).await;
    }
}

/// Records an event about `object` (best effort: a failure is logged).
pub(crate) async fn record_event<
    K: k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
>(
    client: &Client,
    object: &K,
    kind: &str,
    event_type: &str,
    reason: &str,
    message: &str,
    component: &str,
) {
    let m = object.metadata();
    let ns = m.namespace.clone().unwrap_or_else(|| "default".into());
    let now = jiff::Timestamp::now().to_string();
    let name = m.name.clone().unwrap_or_default();
    let event: Event = match serde_json::from_value(json!({
        "metadata": {"generateName": format!("{name}.")},
        "involvedObject": {
            "kind": kind, "apiVersion": K::API_VERSION, "namespace": m.namespace, "name": name,
            "uid": m.uid, "resourceVersion": m.resource_version,
        },
        "type": event_type, "reason": reason, "message": message,
        "source": {"component": component},
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        "reportingComponent": component,
    })) {
        Ok(e) => e,
        Err(e) => return tracing::warn!(error = %e, "building an event"),
    };
    if let Err(e) = Api::<Event>::namespaced(client.clone(), &ns)
        .create(&event)
        .await
    {
        tracing::debug!(error = %e, reason, "recording an event");
    }
}

/// Runs the scheduler until the task is aborted.
pub async fn run(client: Client) {
    let queue = WorkQueue::new();
    let mut pods = Informer::new(Api::<Pod>::all(client.clone()), ListParams::default());
    {
        let queue = queue.clone();
        pods.on_change(move |_, new| {
            if let Some(p) = new.filter(|p| wants_scheduling(p)) {
                queue.add(cais_kube::key(p));
            }
        });
    }
    let mut nodes = Informer::new(Api::<Node>::all(client.clone()), ListParams::default());
    let pod_store = pods.store();
    {
        // A node that comes or changes may fit pods that fit nowhere.
        let queue = queue.clone();
        let pods = pod_store.clone();
        nodes.on_change(move |_, _| {
            for p in pods.filter(wants_scheduling) {
                queue.add(cais_kube::key(&*p));
            }
        });
    }
    let scheduler = Arc::new(Scheduler {
        client,
        pods: pods.store(),
        nodes: nodes.store(),
        queue: queue.clone(),
        assumed: Mutex::new(HashMap::new()),
    });
    let tasks = [nodes.spawn(), pods.spawn()];
    scheduler.nodes.wait_synced().await;
    scheduler.pods.wait_synced().await;
    while let Some(key) = queue.get().await {
        match scheduler.schedule(&key).await {
            Ok(()) => queue.forget(&key),
            Err(e) => {
                tracing::warn!(pod = %key, error = %e, "scheduling");
                queue.add_rate_limited(key.clone());
            }
        }
        queue.done(&key);
    }
    for t in tasks {
        t.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, extra: serde_json::Value) -> NodeInfo {
        let mut n = json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {},
            "status": {
                "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        });
        merge(&mut n, extra);
        NodeInfo {
            node: Arc::new(serde_json::from_value(n).expect("node")),
            ..Default::default()
        }
    }

    fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    fn pod(spec: serde_json::Value) -> Pod {
        let mut p = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        merge(&mut p["spec"], spec);
        serde_json::from_value(p).expect("pod")
    }

    fn with_requests(cpu: &str, memory: &str) -> Pod {
        pod(
            json!({"containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}),
        )
    }

    #[test]
    fn requests_sum_containers_and_take_the_largest_init() {
        let p = pod(json!({
            "containers": [
                {"name": "a", "image": "i", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                {"name": "b", "image": "i", "resources": {"requests": {"cpu": "200m"}}},
            ],
            "initContainers": [{"name": "i", "image": "i", "resources": {"requests": {"cpu": "1", "memory": "1Mi"}}}],
        }));
        assert_eq!(requests(&p), (1000, 64 << 20));
    }

    #[test]
    fn schedulable_needs_ready_and_uncordoned() {
        let p = pod(json!({}));
        assert!(node_schedulable(&p, &node("a", json!({}))).is_ok());
        let cordoned = node("a", json!({"spec": {"unschedulable": true}}));
        assert_eq!(
            node_schedulable(&p, &cordoned).expect_err("refused"),
            "node(s) were unschedulable"
        );
        let not_ready = node(
            "a",
            json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
        );
        assert_eq!(
            node_schedulable(&p, &not_ready).expect_err("refused"),
            "node(s) were not ready"
        );
    }

    #[test]
    fn resources_count_what_is_already_placed() {
        let mut n = node("a", json!({}));
        assert!(fits_resources(&with_requests("4", "8Gi"), &n).is_ok());
        n.cpu = 3500;
        assert_eq!(
            fits_resources(&with_requests("600m", "1Mi"), &n).expect_err("refused"),
            "Insufficient cpu"
        );
        assert!(fits_resources(&with_requests("500m", "1Mi"), &n).is_ok());
        n.memory = 8 << 30;
        assert_eq!(
            fits_resources(&with_requests("1m", "1"), &n).expect_err("refused"),
            "Insufficient memory"
        );
        let mut full = node("b", json!({"status": {"allocatable": {"pods": "2"}}}));
        full.pods = 2;
        assert_eq!(
            fits_resources(&pod(json!({})), &full).expect_err("refused"),
            "Too many pods"
        );
    }

    #[test]
    fn node_selector_and_required_affinity() {
        let n = node(
            "a",
            json!({"metadata": {"labels": {"disk": "ssd", "gen": "5"}}}),
        );
        assert!(matches_node_selector(&pod(json!({"nodeSelector": {"disk": "ssd"}})), &n).is_ok());
        assert!(matches_node_selector(&pod(json!({"nodeSelector": {"disk": "hdd"}})), &n).is_err());
        let affinity = |exprs: serde_json::Value| {
            pod(
                json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": exprs}]}}}}),
            )
        };
        for (exprs, ok) in [
            (
                json!([{"key": "disk", "operator": "In", "values": ["ssd", "nvme"]}]),
                true,
            ),
            (
                json!([{"key": "disk", "operator": "NotIn", "values": ["ssd"]}]),
                false,
            ),
            (json!([{"key": "gpu", "operator": "DoesNotExist"}]), true),
            (json!([{"key": "gpu", "operator": "Exists"}]), false),
            (
                json!([{"key": "gen", "operator": "Gt", "values": ["4"]}]),
                true,
            ),
            (
                json!([{"key": "gen", "operator": "Lt", "values": ["4"]}]),
                false,
            ),
            (
                json!([{"key": "disk", "operator": "In", "values": ["ssd"]}, {"key": "gpu", "operator": "Exists"}]),
                false,
            ),
        ] {
            assert_eq!(
                matches_node_selector(&affinity(exprs.clone()), &n).is_ok(),
                ok,
                "{exprs}"
            );
        }
        let by_field = pod(
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]},
                                  {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}]}]}}}}),
        );
        assert!(matches_node_selector(&by_field, &n).is_ok());
        assert!(matches_node_selector(&by_field, &node("c", json!({}))).is_err());
    }

    #[test]
    fn taints_need_tolerations() {
        let n = node(
            "a",
            json!({"spec": {"taints": [
                {"key": "dedicated", "value": "db", "effect": "NoSchedule"},
                {"key": "soft", "effect": "PreferNoSchedule"},
            ]}}),
        );
        let refused = tolerates_taints(&pod(json!({})), &n).expect_err("refused");
        assert_eq!(refused, "node(s) had untolerated taint {dedicated: db}");
        for (t, ok) in [
            (
                json!({"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}),
                true,
            ),
            (
                json!({"key": "dedicated", "operator": "Equal", "value": "web"}),
                false,
            ),
            (json!({"key": "dedicated", "operator": "Exists"}), true),
            (
                json!({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}),
                false,
            ),
            (json!({"operator": "Exists"}), true),
        ] {
            let p = pod(json!({"tolerations": [t.clone()]}));
            assert_eq!(tolerates_taints(&p, &n).is_ok(), ok, "{t}");
        }
    }

    #[test]
    fn host_ports_conflict_by_protocol_and_port() {
        let mut n = node("a", json!({}));
        n.ports.push(("TCP".into(), 8080));
        let wants = |proto: &str| {
            pod(
                json!({"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80, "hostPort": 8080, "protocol": proto}]}]}),
            )
        };
        assert!(host_ports_free(&wants("TCP"), &n).is_err());
        assert!(host_ports_free(&wants("UDP"), &n).is_ok());
        assert!(host_ports_free(&pod(json!({})), &n).is_ok());
    }

    #[test]
    fn scores_prefer_the_emptier_and_the_balanced_node() {
        let p = with_requests("1", "2Gi");
        let empty = node("a", json!({}));
        let mut busy = node("b", json!({}));
        busy.scored_cpu = 2000;
        busy.scored_memory = 4 << 30;
        assert_eq!(least_allocated(&p, &empty), 75);
        assert_eq!(least_allocated(&p, &busy), 25);
        // 1/4 of the CPU and 1/4 of the memory: perfectly balanced.
        assert_eq!(balanced_allocation(&p, &empty), 100);
        let mut lopsided = node("c", json!({}));
        lopsided.scored_cpu = 2000;
        assert_eq!(balanced_allocation(&p, &lopsided), 50);
    }

    #[test]
    fn place_picks_the_best_or_says_why_not() {
        let mut busy = node("a", json!({}));
        busy.cpu = 3000;
        busy.scored_cpu = 3000;
        let nodes = vec![
            busy,
            node("b", json!({})),
            node("c", json!({"spec": {"unschedulable": true}})),
        ];
        assert_eq!(
            place(&with_requests("500m", "1Mi"), &nodes).as_deref(),
            Ok("b")
        );
        let message = place(&with_requests("8", "1Mi"), &nodes).expect_err("refused");
        assert_eq!(
            message,
            "0/3 nodes are available: 2 Insufficient cpu, 1 node(s) were unschedulable."
        );
        assert_eq!(
            place(&pod(json!({})), &[]).expect_err("refused"),
            "0/0 nodes are available."
        );
    }
}

#[cfg(test)]
mod spread {
    use super::*;

    #[test]
    fn pods_without_requests_still_spread() {
        let node: Node = serde_json::from_value(json!({"metadata": {"name": "a"},
            "status": {"allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"}}}))
        .expect("node");
        let empty = NodeInfo {
            node: Arc::new(node),
            ..Default::default()
        };
        let mut one = empty.clone();
        let pod: Pod = serde_json::from_value(json!({"spec": {"containers": []}})).expect("pod");
        let (c, m) = scored_requests(&pod);
        (one.scored_cpu, one.scored_memory) = (c, m);
        assert!(least_allocated(&pod, &empty) > least_allocated(&pod, &one));
    }
}
