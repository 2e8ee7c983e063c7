//! The scheduler and controllers that run inside `cais kube server`,
//! driven by the real kubectl on a server with three hollow nodes (one
//! server and one set of nodes per test binary; a namespace per test).

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use cais_testkit::kube::{apply, eventually, pods, running, KubeServer, KUBECTL};
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

fn rollout_status(s: &KubeServer, ns: &str, name: &str) {
    s.ok(&[
        "rollout",
        "status",
        &format!("deployment/{name}"),
        "-n",
        ns,
        "--timeout=60s",
    ]);
}

fn image_of(s: &KubeServer, ns: &str, name: &str) -> String {
    s.ok(&[
        "get",
        "deployment",
        name,
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ])
}

#[test]
fn a_deployment_rolls_within_its_limits_and_back() {
    let Some(s) = server() else { return };
    let ns = s.namespace("deploy");
    // 4 replicas, maxSurge 1, maxUnavailable 1: never more than 5 pods,
    // never fewer than 3 ready.
    apply(
        s,
        &ns,
        "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 4
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 1}}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: 'nginx:1'}]
",
    );
    rollout_status(s, &ns, "web");
    running(s, &ns, "app=web", 4);
    let d = json(&s.ok(&["get", "deployment", "web", "-n", &ns, "-o", "json"]));
    assert_eq!(d["status"]["availableReplicas"], 4);
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    let rs = json(&s.ok(&["get", "rs", "-n", &ns, "-o", "json"]));
    let first = &rs["items"][0];
    let hash = first["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .expect("hash label")
        .to_string();
    assert_eq!(first["metadata"]["name"], format!("web-{hash}").as_str());
    assert_eq!(
        first["metadata"]["ownerReferences"][0]["uid"],
        d["metadata"]["uid"]
    );

    // Watch the pods while the image changes: every event's view of the
    // pods that are not being deleted respects the limits.
    let mut watch = s
        .kubectl_command()
        .args([
            "get",
            "pods",
            "-n",
            &ns,
            "-l",
            "app=web",
            "-w",
            "-o",
            "json",
            "--output-watch-events",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl get -w");
    let stdout = watch.stdout.take().expect("stdout");
    let watcher = std::thread::spawn(move || {
        let mut pods: std::collections::BTreeMap<String, Value> = Default::default();
        let mut worst = (0usize, usize::MAX);
        let mut started = false;
        let mut finished = false;
        let mut trace = String::new();
        let stream = serde_json::Deserializer::from_reader(stdout).into_iter::<Value>();
        for event in stream {
            let Ok(event) = event else { break };
            let obj = &event["object"];
            let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
            if event["type"] == "DELETED" || !obj["metadata"]["deletionTimestamp"].is_null() {
                pods.remove(&name);
            } else {
                pods.insert(name.clone(), obj.clone());
            }
            let ready = pods
                .values()
                .filter(|p| {
                    p["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
                .count();
            // The watch starts with the four running pods, one event each:
            // the limits hold from once all four are in view.
            started |= ready == 4;
            trace.push_str(&format!(
                "{} {name} {} pods {ready} ready\n",
                event["type"],
                pods.len()
            ));
            if started {
                worst = (worst.0.max(pods.len()), worst.1.min(ready));
            }
            let new_ready = pods
                .values()
                .filter(|p| p["spec"]["containers"][0]["image"] == "nginx:2")
                .count();
            if pods.len() == 4 && new_ready == 4 && ready == 4 {
                finished = started;
                break;
            }
        }
        (worst, trace, finished)
    });
    std::thread::sleep(Duration::from_millis(500));
    s.ok(&["set", "image", "deployment/web", "web=nginx:2", "-n", &ns]);
    rollout_status(s, &ns, "web");
    let ((most, fewest_ready), trace, finished) = watcher.join().expect("watcher");
    // The watch saw the four old pods, then the four new ones ready.
    assert!(finished, "the watch did not see the rollout:\n{trace}");
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(
        most <= 5,
        "{most} pods at once, more than replicas + maxSurge"
    );
    assert!(
        fewest_ready >= 3,
        "only {fewest_ready} ready, fewer than replicas - maxUnavailable:\n{trace}"
    );
    assert_eq!(image_of(s, &ns, "web"), "nginx:2");
    let history = s.ok(&["rollout", "history", "deployment/web", "-n", &ns]);
    assert!(
        history.contains("\n1 ") && history.contains("\n2 "),
        "{history}"
    );

    // Undo brings back the first template, as revision 3.
    s.ok(&["rollout", "undo", "deployment/web", "-n", &ns]);
    rollout_status(s, &ns, "web");
    assert_eq!(image_of(s, &ns, "web"), "nginx:1");
    let pods_now = running(s, &ns, "app=web", 4);
    for (name, _, _) in &pods_now {
        assert!(
            name.starts_with(&format!("web-{hash}-")),
            "{name} is not of the first template"
        );
    }
    let d = json(&s.ok(&["get", "deployment", "web", "-n", &ns, "-o", "json"]));
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );

    // Scale up and down.
    s.ok(&["scale", "deployment/web", "-n", &ns, "--replicas=6"]);
    rollout_status(s, &ns, "web");
    running(s, &ns, "app=web", 6);
    s.ok(&["scale", "deployment/web", "-n", &ns, "--replicas=2"]);
    rollout_status(s, &ns, "web");
    running(s, &ns, "app=web", 2);
}
