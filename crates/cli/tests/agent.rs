//! The node agent's pod runtime against a real `cais daemon`: pods made
//! of engine containers through the engine API, checked with the real
//! docker CLI. One daemon for the binary; each test has a node name (so
//! its own labels) and a pod network of its own.

use std::time::{Duration, Instant};

use cais_agent::k8s_openapi::api::core::v1::{Pod, PodStatus};
use cais_agent::pod::Sources;
use cais_agent::{Config, Runtime};
use cais_testkit::daemon::{self, SharedDaemon};
use cais_testkit::{require_root_and_busybox, unique_id};
use serde_json::{json, Value};

const CAIS: &str = env!("CARGO_BIN_EXE_cais");

fn daemon() -> Option<SharedDaemon> {
    if !require_root_and_busybox() {
        return None;
    }
    Some(daemon::shared(CAIS, true))
}

fn docker(d: &SharedDaemon, args: &[&str]) -> String {
    let out = std::process::Command::new(daemon::DOCKER)
        .arg("-H")
        .arg(&d.host)
        .env("DOCKER_CONFIG", d.dir.join("docker-config"))
        .args(args)
        .output()
        .expect("run docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A runtime of its own node and network; restarts back off from 1 s.
fn runtime(d: &SharedDaemon, test: &str) -> Runtime {
    let engine = cais_client::Client::new(&d.host).expect("client");
    let mut cfg = Config::new(&unique_id(test));
    cfg.network = unique_id("kn");
    cfg.backoff_base = Duration::from_secs(1);
    cfg.state_dir = d.dir.join(unique_id("agent"));
    let mut rt = Runtime::new(engine, cfg);
    let subnet = rt.prepare().expect("prepare");
    assert!(
        subnet.contains('/'),
        "the pod network has a subnet: {subnet:?}"
    );
    rt
}

fn pod(name: &str, spec: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "t", "uid": unique_id("uid")},
        "spec": spec,
    }))
    .expect("a pod")
}

/// Syncs `pod` until `done` holds for its status (30 s at most).
fn sync_until(
    rt: &mut Runtime,
    pod: &Pod,
    what: &str,
    mut done: impl FnMut(&PodStatus) -> bool,
) -> PodStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = rt.sync(pod, &Sources::default()).expect("sync");
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: last status {}",
            serde_json::to_string_pretty(&status).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn container_id(status: &PodStatus, i: usize) -> String {
    status.container_statuses.as_ref().expect("statuses")[i]
        .container_id
        .clone()
        .expect("an id")
        .trim_start_matches("cais://")
        .to_string()
}

#[test]
fn a_pod_runs_in_its_sandbox_after_its_init_containers() {
    let Some(d) = daemon() else { return };
    let mut rt = runtime(&d, "pod-runs");
    let p = pod(
        "web",
        json!({
            "initContainers": [
                {"name": "first", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                 "command": ["sh", "-c", "echo one > /data/order"],
                 "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                {"name": "second", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                 "command": ["sh", "-c", "echo two >> /data/order"],
                 "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
            ],
            "containers": [
                {"name": "app", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                 "command": ["sleep", "1000"],
                 "env": [{"name": "ME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                         {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                 "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                {"name": "side", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                 "command": ["sleep", "1000"],
                 "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": true}]},
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
        }),
    );
    let status = sync_until(&mut rt, &p, "running", |s| {
        s.phase.as_deref() == Some("Running")
            && s.container_statuses.iter().flatten().all(|c| c.ready)
    });
    let ip = status.pod_ip.clone().expect("a pod IP");
    assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "{ip}");
    let inits = status
        .init_container_statuses
        .clone()
        .expect("init statuses");
    for s in &inits {
        let t = s
            .state
            .as_ref()
            .and_then(|st| st.terminated.as_ref())
            .expect("terminated");
        assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
    }
    let conditions: Vec<(String, String)> = status
        .conditions
        .iter()
        .flatten()
        .map(|c| (c.type_.clone(), c.status.clone()))
        .collect();
    for t in [
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
        "PodReadyToStartContainers",
    ] {
        assert!(
            conditions.contains(&(t.to_string(), "True".to_string())),
            "{t}: {conditions:?}"
        );
    }

    // The engine agrees: the containers run in the sandbox's namespaces.
    let app = container_id(&status, 0);
    let side = container_id(&status, 1);
    assert_eq!(
        docker(&d, &["inspect", "-f", "{{.State.Running}}", &app]),
        "true"
    );
    let sandbox_mode = docker(&d, &["inspect", "-f", "{{.HostConfig.NetworkMode}}", &app]);
    let sandbox = sandbox_mode
        .strip_prefix("container:")
        .expect("joined a sandbox")
        .to_string();
    assert_eq!(
        docker(&d, &["inspect", "-f", "{{.Config.Image}}", &sandbox]),
        cais_agent::pause::IMAGE
    );
    assert_eq!(
        docker(&d, &["inspect", "-f", "{{.HostConfig.IpcMode}}", &app]),
        format!("container:{sandbox}")
    );
    assert_eq!(docker(&d, &["exec", &app, "hostname"]), "web");
    // One network namespace: both containers see the pod's address.
    for id in [&app, &side] {
        let addrs = docker(&d, &["exec", id, "ip", "-4", "addr"]);
        assert!(addrs.contains(&format!("inet {ip}/")), "{addrs}");
    }
    // Init containers ran in order, into the shared emptyDir.
    assert_eq!(
        docker(&d, &["exec", &side, "cat", "/data/order"]),
        "one\ntwo"
    );
    let env = docker(&d, &["exec", &app, "env"]);
    assert!(
        env.contains("ME=web") && env.contains(&format!("IP={ip}")),
        "{env}"
    );
    // Labels map the containers back to the pod.
    let uid = p.metadata.uid.clone().expect("uid");
    assert_eq!(
        docker(
            &d,
            &[
                "inspect",
                "-f",
                "{{index .Config.Labels \"io.kubernetes.pod.uid\"}}",
                &app
            ]
        ),
        uid
    );
    assert_eq!(
        docker(
            &d,
            &[
                "inspect",
                "-f",
                "{{index .Config.Labels \"io.kubernetes.container.name\"}}",
                &side
            ]
        ),
        "side"
    );

    // A new runtime (an agent restart) finds the pod and changes nothing.
    let engine = cais_client::Client::new(&d.host).expect("client");
    let mut again = Runtime::new(engine, rt.config().clone());
    assert!(again.pods().expect("pods").contains_key(&uid));
    let status = again.sync(&p, &Sources::default()).expect("sync");
    assert_eq!(container_id(&status, 0), app, "adopted, not recreated");
    assert_eq!(status.pod_ip.as_deref(), Some(ip.as_str()));

    // Removal leaves no container and no volume of the pod.
    again.kill(&uid, 0).expect("kill");
    assert!(!again.pods().expect("pods").contains_key(&uid));
    let left = docker(
        &d,
        &[
            "ps",
            "-aq",
            "--filter",
            &format!("label=io.kubernetes.pod.uid={uid}"),
        ],
    );
    assert_eq!(left, "");
    let volumes = docker(
        &d,
        &[
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("label=io.kubernetes.pod.uid={uid}"),
        ],
    );
    assert_eq!(volumes, "");
}

#[test]
fn exited_containers_restart_after_a_growing_back_off() {
    let Some(d) = daemon() else { return };
    let mut rt = runtime(&d, "pod-restarts");
    let p = pod(
        "crash",
        json!({"containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                               "command": ["sh", "-c", "exit 3"]}]}),
    );
    let mut saw_back_off = false;
    let status = sync_until(&mut rt, &p, "two restarts", |s| {
        let c = &s.container_statuses.as_ref().expect("statuses")[0];
        if c.state
            .as_ref()
            .and_then(|st| st.waiting.as_ref())
            .and_then(|w| w.reason.as_deref())
            == Some("CrashLoopBackOff")
        {
            saw_back_off = true;
        }
        c.restart_count >= 2
    });
    assert!(saw_back_off, "CrashLoopBackOff between restarts");
    assert_eq!(status.phase.as_deref(), Some("Running"));
    let c = &status.container_statuses.as_ref().expect("statuses")[0];
    let last = c
        .last_state
        .as_ref()
        .and_then(|l| l.terminated.as_ref())
        .expect("a last state");
    assert_eq!((last.exit_code, last.reason.as_deref()), (3, Some("Error")));
    // Only the newest attempt and the one before it are kept.
    let uid = p.metadata.uid.clone().expect("uid");
    let filter = "label=io.kubernetes.container.name=c";
    let kept = docker(
        &d,
        &[
            "ps",
            "-aq",
            "--filter",
            &format!("label=io.kubernetes.pod.uid={uid}"),
            "--filter",
            filter,
        ],
    );
    assert!(kept.lines().count() <= 2, "{kept}");
    rt.kill(&uid, 0).expect("kill");
}

#[test]
fn a_container_that_ran_to_completion_makes_the_pod_succeed() {
    let Some(d) = daemon() else { return };
    let mut rt = runtime(&d, "pod-done");
    let p = pod(
        "job",
        json!({"restartPolicy": "Never",
               "containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                               "command": ["true"]}]}),
    );
    let status = sync_until(&mut rt, &p, "succeeded", |s| {
        s.phase.as_deref() == Some("Succeeded")
    });
    let c = &status.container_statuses.as_ref().expect("statuses")[0];
    assert_eq!(c.restart_count, 0);
    let t = c
        .state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("terminated");
    assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
    rt.kill(p.metadata.uid.as_deref().expect("uid"), 0)
        .expect("kill");
}

#[test]
fn a_missing_image_backs_off_its_pulls() {
    let Some(d) = daemon() else { return };
    let mut rt = runtime(&d, "pod-pull");
    // Nothing listens on port 1: the pull fails at once.
    let p = pod(
        "nopull",
        json!({"containers": [{"name": "c", "image": "127.0.0.1:1/nothing:1"}]}),
    );
    let reason = |s: &PodStatus| {
        s.container_statuses.as_ref().expect("statuses")[0]
            .state
            .as_ref()
            .and_then(|st| st.waiting.as_ref())
            .and_then(|w| w.reason.clone())
            .unwrap_or_default()
    };
    let first = rt.sync(&p, &Sources::default()).expect("sync");
    assert_eq!(reason(&first), "ErrImagePull");
    assert_eq!(first.phase.as_deref(), Some("Pending"));
    let second = rt.sync(&p, &Sources::default()).expect("sync");
    assert_eq!(reason(&second), "ImagePullBackOff", "the next try waits");
    let uid = p.metadata.uid.clone().expect("uid");
    rt.kill(&uid, 0).expect("kill");
}
