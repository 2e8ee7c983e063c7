//! The DaemonSet and Job controllers inside `cais kube server`, driven by
//! the real kubectl on a server with three hollow nodes of their own (one
//! server per test binary; a namespace per test). Apart from
//! `kube_controllers` because they taint nodes and leave pods coming and
//! going, which would skew the spread that binary's tests check.

use std::path::Path;
use std::sync::OnceLock;

use cais_testkit::kube::{apply, eventually, running, KubeServer, KUBECTL};
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

fn daemon_set(name: &str, toleration: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: {name}}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      tolerations: [{toleration}]
      containers: [{{name: c, image: busybox}}]
"
    )
}

fn ds_rollout_status(s: &KubeServer, ns: &str, name: &str) {
    s.ok(&[
        "rollout",
        "status",
        &format!("ds/{name}"),
        "-n",
        ns,
        "--timeout=60s",
    ]);
}

/// Removes the test's taint from a node, even when the test fails.
struct Untaint<'a>(&'a KubeServer, String);

impl Drop for Untaint<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .kubectl(&["taint", "nodes", &self.1, "ds-test-", "--overwrite"]);
    }
}

#[test]
fn a_daemon_set_runs_one_pod_per_node_heals_and_honours_taints() {
    let Some(s) = server() else { return };
    let ns = s.namespace("ds");
    apply(s, &ns, &daemon_set("agent", ""));
    ds_rollout_status(s, &ns, "agent");
    let first = running(s, &ns, "app=agent", NODES);
    let nodes: std::collections::BTreeSet<_> = first.iter().map(|p| p.2.clone()).collect();
    assert_eq!(nodes.len(), NODES, "one pod per node: {first:?}");
    let ds = json(&s.ok(&["get", "ds", "agent", "-n", &ns, "-o", "json"]));
    for field in [
        "desiredNumberScheduled",
        "currentNumberScheduled",
        "numberReady",
        "updatedNumberScheduled",
    ] {
        assert_eq!(ds["status"][field], NODES, "{field}: {}", ds["status"]);
    }
    assert_eq!(
        ds["status"]["observedGeneration"],
        ds["metadata"]["generation"]
    );
    // Each pod is pinned to its node by affinity and owned by the set.
    let pod = json(&s.ok(&["get", "pod", &first[0].0, "-n", &ns, "-o", "json"]));
    let term = &pod["spec"]["affinity"]["nodeAffinity"]
        ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0];
    assert_eq!(term["matchFields"][0]["key"], "metadata.name");
    assert_eq!(term["matchFields"][0]["values"][0], first[0].2.as_str());
    let owner = &pod["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "DaemonSet");
    assert_eq!(owner["uid"], ds["metadata"]["uid"]);

    // A deleted pod is replaced on the same node.
    s.ok(&["delete", "pod", &first[0].0, "-n", &ns]);
    let healed = eventually("the replacement pod", s, || {
        let p = running(s, &ns, "app=agent", NODES);
        p.iter()
            .find(|p| p.2 == first[0].2 && p.0 != first[0].0)
            .is_some()
            .then_some(p)
    });
    assert!(healed.iter().all(|p| p.0 != first[0].0), "{healed:?}");

    // A tainted node gets no new daemon pod unless it is tolerated; the
    // pod already there stays (NoSchedule does not evict).
    let tainted = first[0].2.clone();
    let _untaint = Untaint(s, tainted.clone());
    s.ok(&["taint", "nodes", &tainted, "ds-test=yes:NoSchedule"]);
    apply(s, &ns, &daemon_set("picky", ""));
    apply(
        s,
        &ns,
        &daemon_set("tolerant", "{key: ds-test, operator: Exists}"),
    );
    ds_rollout_status(s, &ns, "picky");
    ds_rollout_status(s, &ns, "tolerant");
    let picky = running(s, &ns, "app=picky", NODES - 1);
    assert!(picky.iter().all(|p| p.2 != tainted), "{picky:?}");
    let tolerant = running(s, &ns, "app=tolerant", NODES);
    assert!(tolerant.iter().any(|p| p.2 == tainted), "{tolerant:?}");
    let ds = json(&s.ok(&["get", "ds", "picky", "-n", &ns, "-o", "json"]));
    assert_eq!(ds["status"]["desiredNumberScheduled"], NODES - 1);
    let agent = running(s, &ns, "app=agent", NODES);
    assert!(agent.iter().any(|p| p.2 == tainted), "{agent:?}");

    // The node becoming eligible later gets its pod.
    s.ok(&["taint", "nodes", &tainted, "ds-test-"]);
    let picky = running(s, &ns, "app=picky", NODES);
    assert!(picky.iter().any(|p| p.2 == tainted), "{picky:?}");
    ds_rollout_status(s, &ns, "picky");
}

#[test]
fn a_job_runs_to_its_completions_on_hollow_nodes() {
    let Some(s) = server() else { return };
    let ns = s.namespace("job");
    apply(
        s,
        &ns,
        "apiVersion: batch/v1
kind: Job
metadata: {name: count}
spec:
  completions: 4
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox}]
",
    );
    s.ok(&[
        "wait",
        "--for=condition=complete",
        "job/count",
        "-n",
        &ns,
        "--timeout=60s",
    ]);
    let job = json(&s.ok(&["get", "job", "count", "-n", &ns, "-o", "json"]));
    assert_eq!(job["status"]["succeeded"], 4, "{}", job["status"]);
    assert_eq!(job["status"]["active"], 0, "{}", job["status"]);
    assert!(!job["status"]["completionTime"].is_null());
    // Exactly the completions ran, each to success, each owned by the Job.
    let list = json(&s.ok(&[
        "get",
        "pods",
        "-n",
        &ns,
        "-l",
        "job-name=count",
        "-o",
        "json",
    ]));
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 4, "{list}");
    for p in items {
        assert_eq!(p["status"]["phase"], "Succeeded");
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "Job");
        assert_eq!(
            p["metadata"]["ownerReferences"][0]["uid"],
            job["metadata"]["uid"]
        );
    }
}
