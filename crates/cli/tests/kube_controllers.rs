//! The scheduler and controllers that run inside `cais kube server`,
//! driven by the real kubectl on a server with three hollow nodes (one
//! server and one set of nodes per test binary; a namespace per test).

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cais_testkit::kube::{KubeServer, KUBECTL};
use cais_testkit::require;
use serde_json::Value;

const CAIS: &str = env!("CARGO_BIN_EXE_cais");
const NODES: usize = 3;

fn server() -> Option<&'static KubeServer> {
    if !require("kubectl at /usr/bin/kubectl", Path::new(KUBECTL).exists()) {
        return None;
    }
    static NODES_UP: OnceLock<()> = OnceLock::new();
    let s = cais_testkit::kube::shared(CAIS);
    NODES_UP.get_or_init(|| s.hollow_nodes(CAIS, NODES));
    Some(s)
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn apply(s: &KubeServer, ns: &str, yaml: &str) {
    let out = s.with_stdin(&["apply", "--validate=false", "-n", ns, "-f", "-"], yaml);
    assert!(
        out.status.success(),
        "kubectl apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `check` until it returns `Some`, for at most 30 s.
fn eventually<T>(what: &str, s: &KubeServer, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The pods of `selector` that are not being deleted: (name, phase, node).
fn pods(s: &KubeServer, ns: &str, selector: &str) -> Vec<(String, String, String)> {
    let list = json(&s.ok(&["get", "pods", "-n", ns, "-l", selector, "-o", "json"]));
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            let text = |v: &Value| v.as_str().unwrap_or("").to_string();
            (
                text(&p["metadata"]["name"]),
                text(&p["status"]["phase"]),
                text(&p["spec"]["nodeName"]),
            )
        })
        .collect()
}

fn running(s: &KubeServer, ns: &str, selector: &str, n: usize) -> Vec<(String, String, String)> {
    eventually(&format!("{n} running pods of {selector}"), s, || {
        let p = pods(s, ns, selector);
        (p.len() == n
            && p.iter()
                .all(|(_, phase, node)| phase == "Running" && !node.is_empty()))
        .then_some(p)
    })
}

fn replica_set(name: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1
kind: ReplicaSet
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: c, image: busybox}}]
"
    )
}

#[test]
fn a_replica_set_runs_heals_and_scales() {
    let Some(s) = server() else { return };
    let ns = s.namespace("rs");
    apply(s, &ns, &replica_set("web", 3));
    let first = running(s, &ns, "app=web", 3);
    // Pods without requests still spread over the nodes.
    let nodes: std::collections::BTreeSet<_> = first.iter().map(|p| p.2.clone()).collect();
    assert_eq!(nodes.len(), NODES, "{first:?}");
    let rs = json(&s.ok(&["get", "rs", "web", "-n", &ns, "-o", "json"]));
    eventually("the status", s, || {
        let rs = json(&s.ok(&["get", "rs", "web", "-n", &ns, "-o", "json"]));
        (rs["status"]["readyReplicas"] == 3 && rs["status"]["availableReplicas"] == 3).then_some(())
    });
    let pod = json(&s.ok(&["get", "pod", &first[0].0, "-n", &ns, "-o", "json"]));
    let owner = &pod["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "ReplicaSet");
    assert_eq!(owner["controller"], true);
    assert_eq!(owner["uid"], rs["metadata"]["uid"]);

    // A deleted pod is replaced.
    s.ok(&["delete", "pod", &first[0].0, "-n", &ns]);
    let healed = running(s, &ns, "app=web", 3);
    assert!(healed.iter().all(|p| p.0 != first[0].0), "{healed:?}");

    s.ok(&["scale", "rs", "web", "-n", &ns, "--replicas=5"]);
    running(s, &ns, "app=web", 5);
    s.ok(&["scale", "rs", "web", "-n", &ns, "--replicas=1"]);
    running(s, &ns, "app=web", 1);
    eventually("status.replicas 1", s, || {
        let rs = json(&s.ok(&["get", "rs", "web", "-n", &ns, "-o", "json"]));
        (rs["status"]["replicas"] == 1).then_some(())
    });
}

#[test]
fn a_pod_that_fits_nowhere_is_pending_with_the_reason() {
    let Some(s) = server() else { return };
    let ns = s.namespace("unschedulable");
    apply(
        s,
        &ns,
        "apiVersion: v1
kind: Pod
metadata: {name: picky}
spec:
  nodeSelector: {disk: none-has-this}
  containers: [{name: c, image: busybox}]
",
    );
    let want = format!(
        "0/{NODES} nodes are available: {NODES} node(s) didn't match Pod's node affinity/selector."
    );
    let described = eventually("the FailedScheduling event", s, || {
        let d = s.ok(&["describe", "pod", "picky", "-n", &ns]);
        (d.contains("FailedScheduling") && d.contains(&want)).then_some(d)
    });
    assert!(
        described.contains("Status:           Pending"),
        "{described}"
    );
    let pod = json(&s.ok(&["get", "pod", "picky", "-n", &ns, "-o", "json"]));
    let cond = &pod["status"]["conditions"][0];
    assert_eq!(cond["type"], "PodScheduled");
    assert_eq!(cond["status"], "False");
    assert_eq!(cond["reason"], "Unschedulable");
    assert_eq!(cond["message"], want.as_str());
    assert!(pod["spec"]["nodeName"].is_null());
}

#[test]
fn requests_never_exceed_a_nodes_allocatable() {
    let Some(s) = server() else { return };
    let ns = s.namespace("requests");
    // Each hollow node has 4 CPUs: one 3-CPU pod per node, the next waits.
    for i in 0..=NODES {
        apply(
            s,
            &ns,
            &format!(
                "apiVersion: v1
kind: Pod
metadata: {{name: big-{i}, labels: {{app: big}}}}
spec:
  containers:
  - name: c
    image: busybox
    resources: {{requests: {{cpu: '3'}}}}
"
            ),
        );
    }
    let placed = eventually("three bound pods and one refused", s, || {
        let p = pods(s, &ns, "app=big");
        let bound: Vec<_> = p.iter().filter(|p| !p.2.is_empty()).cloned().collect();
        let d = s.ok(&["describe", "pods", "-n", &ns, "-l", "app=big"]);
        (bound.len() == NODES
            && d.contains(&format!(
                "0/{NODES} nodes are available: {NODES} Insufficient cpu."
            )))
        .then_some(bound)
    });
    let nodes: std::collections::BTreeSet<_> = placed.iter().map(|p| p.2.clone()).collect();
    assert_eq!(nodes.len(), NODES, "{placed:?}");
    // Freeing a node lets the waiting pod in.
    s.ok(&["delete", "pod", &placed[0].0, "-n", &ns]);
    running(s, &ns, "app=big", NODES);
}
