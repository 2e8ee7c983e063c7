//! The node agent end to end: the real kubectl against `cais kube server`,
//! whose agent runs pods on a real `cais daemon` (busybox imported
//! offline), checked through the engine with the real docker CLI. One
//! daemon and one server (with its agent, node [`NODE`]) per test binary;
//! each test works in a namespace of its own.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cais_testkit::daemon::{self, SharedDaemon};
use cais_testkit::kube::{KubeServer, KUBECTL, NODE_TOKEN};
use cais_testkit::{require, require_root_and_busybox, unique_id};
use serde_json::Value;

const CAIS: &str = env!("CARGO_BIN_EXE_cais");
/// The node of the server's own agent.
const NODE: &str = "kube-node";

struct Cluster {
    daemon: SharedDaemon,
    server: &'static KubeServer,
}

fn cluster() -> Option<Cluster> {
    if !require_root_and_busybox()
        || !require("kubectl at /usr/bin/kubectl", Path::new(KUBECTL).exists())
    {
        return None;
    }
    let daemon = daemon::shared(CAIS, true);
    static SERVER: std::sync::OnceLock<KubeServer> = std::sync::OnceLock::new();
    let server = SERVER.get_or_init(|| {
        let network = unique_id("kube");
        KubeServer::start_with(
            CAIS,
            &[
                "--engine-host",
                &daemon.host,
                "--node-name",
                NODE,
                "--pod-network",
                &network,
                "--agent-port",
                "0",
            ],
        )
    });
    Some(Cluster { daemon, server })
}

impl Cluster {
    fn docker(&self, args: &[&str]) -> String {
        let out = Command::new(daemon::DOCKER)
            .arg("-H")
            .arg(&self.daemon.host)
            .env("DOCKER_CONFIG", self.daemon.dir.join("docker-config"))
            .args(args)
            .output()
            .expect("run docker");
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn pod(&self, ns: &str, name: &str) -> Value {
        serde_json::from_str(
            &self
                .server
                .ok(&["get", "pod", name, "-n", ns, "-o", "json"]),
        )
        .expect("JSON")
    }

    /// Polls pod `name` until `done` holds (90 s at most); the pod then.
    fn wait_pod(&self, ns: &str, name: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let pod = self.pod(ns, name);
            if done(&pod) {
                return pod;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: {}\nserver log:\n{}",
                serde_json::to_string_pretty(&pod["status"]).unwrap_or_default(),
                self.server.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn apply(&self, ns: &str, yaml: &str) {
        let out = self
            .server
            .with_stdin(&["apply", "-n", ns, "-f", "-"], yaml);
        assert!(
            out.status.success(),
            "apply: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Engine containers of pod `uid`.
    fn containers(&self, uid: &str) -> Vec<String> {
        self.docker(&[
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label=io.kubernetes.pod.uid={uid}"),
        ])
        .lines()
        .map(String::from)
        .collect()
    }
}

fn pod_yaml(name: &str, node: &str, image: &str, command: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {image}
    imagePullPolicy: IfNotPresent
    command: [\"sh\", \"-c\", {command:?}]
"
    )
}

fn running(p: &Value) -> bool {
    p["status"]["phase"] == "Running" && p["status"]["containerStatuses"][0]["ready"] == true
}

fn container_id(p: &Value) -> String {
    p["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .expect("a container ID")
        .trim_start_matches("cais://")
        .to_string()
}

#[test]
fn the_node_registers_and_renews_its_lease() {
    let Some(c) = cluster() else { return };
    let deadline = Instant::now() + Duration::from_secs(60);
    let node: Value = loop {
        let out = c.server.kubectl(&["get", "node", NODE, "-o", "json"]);
        if out.status.success() {
            break serde_json::from_slice(&out.stdout).expect("JSON");
        }
        assert!(Instant::now() < deadline, "no node:\n{}", c.server.log());
        std::thread::sleep(Duration::from_millis(250));
    };
    let ready = node["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == "Ready")
        .expect("Ready")
        .clone();
    assert_eq!(ready["status"], "True");
    let cpus: usize = node["status"]["capacity"]["cpu"]
        .as_str()
        .expect("cpu")
        .parse()
        .expect("a number");
    assert_eq!(
        cpus,
        std::thread::available_parallelism().expect("cpus").get()
    );
    assert!(node["status"]["capacity"]["memory"]
        .as_str()
        .expect("memory")
        .ends_with("Ki"));
    assert!(node["status"]["nodeInfo"]["containerRuntimeVersion"]
        .as_str()
        .expect("runtime")
        .starts_with("cais://"));
    assert!(node["spec"]["podCIDR"]
        .as_str()
        .expect("a pod CIDR")
        .contains('/'));
    let table = c.server.ok(&["get", "nodes"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(NODE) && l.contains(" Ready ")),
        "{table}"
    );
    // The lease is renewed: its renew time moves.
    let renew = || {
        let out = c.server.kubectl(&[
            "get",
            "lease",
            NODE,
            "-n",
            "kube-node-lease",
            "-o",
            "jsonpath={.spec.renewTime}",
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = loop {
        let r = renew();
        if !r.is_empty() {
            break r;
        }
        assert!(Instant::now() < deadline, "no lease");
        std::thread::sleep(Duration::from_millis(250));
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while renew() == first {
        assert!(Instant::now() < deadline, "the lease was not renewed");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_bound_pod_runs_on_the_engine_and_goes_with_its_deletion() {
    let Some(c) = cluster() else { return };
    let ns = c.server.namespace("runs");
    c.apply(
        &ns,
        &pod_yaml("web", NODE, "busybox", "echo started; exec sleep 1000"),
    );
    let pod = c.wait_pod(&ns, "web", "Running and ready", running);
    let ip = pod["status"]["podIP"].as_str().expect("a pod IP");
    assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "{ip}");
    assert_eq!(
        pod["status"]["hostIP"].as_str().map(|h| !h.is_empty()),
        Some(true)
    );
    assert_eq!(pod["status"]["containerStatuses"][0]["restartCount"], 0);
    assert!(pod["status"]["containerStatuses"][0]["imageID"]
        .as_str()
        .expect("image ID")
        .starts_with("sha256:"));
    // The container really runs on the engine, in the pod's network.
    let id = container_id(&pod);
    assert_eq!(
        c.docker(&["inspect", "-f", "{{.State.Running}}", &id]),
        "true"
    );
    assert_eq!(c.docker(&["exec", &id, "hostname"]), "web");
    let addrs = c.docker(&["exec", &id, "ip", "-4", "addr"]);
    assert!(addrs.contains(&format!("inet {ip}/")), "{addrs}");
    assert_eq!(c.docker(&["logs", &id]), "started");
    let wide = c.server.ok(&["get", "pod", "web", "-n", &ns, "-o", "wide"]);
    assert!(
        wide.contains("Running") && wide.contains(ip) && wide.contains(NODE),
        "{wide}"
    );

    let uid = pod["metadata"]["uid"].as_str().expect("uid").to_string();
    assert_eq!(c.containers(&uid).len(), 2, "the sandbox and the container");
    // kubectl waits until the agent has stopped the pod and deleted it.
    c.server
        .ok(&["delete", "pod", "web", "-n", &ns, "--timeout=60s"]);
    assert_eq!(
        c.containers(&uid),
        Vec::<String>::new(),
        "no container left"
    );
    let out = c.server.kubectl(&["get", "pod", "web", "-n", &ns]);
    assert!(!out.status.success(), "the pod is gone");
}

#[test]
fn a_container_that_exits_is_restarted() {
    let Some(c) = cluster() else { return };
    let ns = c.server.namespace("restarts");
    c.apply(
        &ns,
        &pod_yaml("crash", NODE, "busybox", "echo bye; sleep 1; exit 7"),
    );
    let pod = c.wait_pod(&ns, "crash", "a restart", |p| {
        p["status"]["containerStatuses"][0]["restartCount"]
            .as_i64()
            .unwrap_or(0)
            >= 1
    });
    let status = &pod["status"]["containerStatuses"][0];
    let last = &status["lastState"]["terminated"];
    assert_eq!(last["exitCode"], 7, "{status}");
    assert_eq!(last["reason"], "Error");
    // The attempt before is kept: its log is there with --previous.
    let previous = c.server.ok(&["logs", "crash", "-n", &ns, "--previous"]);
    assert_eq!(previous.trim(), "bye", "{previous}");
    // Each restart is a new engine container; the one before stays for logs.
    let uid = pod["metadata"]["uid"].as_str().expect("uid");
    let ids = c.containers(uid);
    assert!(ids.len() >= 3, "sandbox and two attempts: {ids:?}");
    // Between restarts the pod shows the back-off.
    let pod = c.wait_pod(&ns, "crash", "CrashLoopBackOff", |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    });
    assert_eq!(pod["status"]["phase"], "Running");
    let table = c.server.ok(&["get", "pod", "crash", "-n", &ns]);
    assert!(table.contains("CrashLoopBackOff"), "{table}");
    c.server
        .ok(&["delete", "pod", "crash", "-n", &ns, "--timeout=60s"]);
}

#[test]
fn an_image_that_does_not_exist_is_reported() {
    let Some(c) = cluster() else { return };
    let ns = c.server.namespace("noimage");
    // Nothing listens on port 1: every pull fails at once.
    c.apply(
        &ns,
        &pod_yaml("ghost", NODE, "127.0.0.1:1/nothing:1", "true"),
    );
    // ErrImagePull after a failed pull, ImagePullBackOff until the next
    // try (the runtime's tests check the exact sequence).
    let reason =
        |p: &Value| p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"].clone();
    let pod = c.wait_pod(&ns, "ghost", "a pull error", |p| {
        reason(p) == "ErrImagePull" || reason(p) == "ImagePullBackOff"
    });
    assert_eq!(pod["status"]["phase"], "Pending");
    let message = pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        .as_str()
        .expect("a message");
    assert!(message.contains("127.0.0.1:1/nothing:1"), "{message}");
    c.wait_pod(&ns, "ghost", "ImagePullBackOff", |p| {
        reason(p) == "ImagePullBackOff"
    });
    let table = c.server.ok(&["get", "pod", "ghost", "-n", &ns]);
    assert!(
        table.contains("ImagePullBackOff") || table.contains("ErrImagePull"),
        "{table}"
    );
    // The node stays healthy.
    let ready = c.server.ok(&[
        "get",
        "node",
        NODE,
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
    ]);
    assert_eq!(ready, "True");
    c.server
        .ok(&["delete", "pod", "ghost", "-n", &ns, "--timeout=60s"]);
}

/// `cais kube agent` as node `n1` (the fixture's node token), on its own
/// pod network; killed when dropped.
struct Agent(Child);

impl Agent {
    fn start(c: &Cluster, network: &str) -> Agent {
        let token = c.server.dir.path().join("n1.token");
        std::fs::write(&token, NODE_TOKEN).expect("token file");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(c.server.dir.path().join("agent-n1.log"))
            .expect("log");
        let child = Command::new(CAIS)
            .args(["kube", "agent", "--server", &c.server.url(), "--token-file"])
            .arg(&token)
            .arg("--certificate-authority")
            .arg(c.server.data_dir().join("pki/ca.crt"))
            .args([
                "--node-name",
                "n1",
                "--engine-host",
                &c.daemon.host,
                "--pod-network",
                network,
                "--agent-port",
                "0",
            ])
            .arg("--state-dir")
            .arg(c.server.dir.path().join("agent-n1"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start cais kube agent");
        Agent(child)
    }

    fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[test]
fn pods_survive_a_killed_agent_and_are_adopted() {
    let Some(c) = cluster() else { return };
    let ns = c.server.namespace("adopt");
    let network = unique_id("kn1");
    let mut agent = Agent::start(&c, &network);
    c.apply(&ns, &pod_yaml("keep", "n1", "busybox", "exec sleep 1000"));
    let log =
        || std::fs::read_to_string(c.server.dir.path().join("agent-n1.log")).unwrap_or_default();
    let pod = c.wait_pod(&ns, "keep", "Running on n1", running);
    let id = container_id(&pod);
    let started = c.docker(&["inspect", "-f", "{{.State.StartedAt}}", &id]);

    agent.kill9();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        c.docker(&["inspect", "-f", "{{.State.Running}}", &id]),
        "true",
        "the pod outlives its agent"
    );
    let _agent = Agent::start(&c, &network);
    // The new agent adopts the pod: same container, not restarted, and
    // it still answers for it (deletion goes through it).
    std::thread::sleep(Duration::from_secs(3));
    let pod = c.wait_pod(&ns, "keep", "still running", running);
    assert_eq!(container_id(&pod), id, "adopted, not replaced:\n{}", log());
    assert_eq!(
        c.docker(&["inspect", "-f", "{{.State.StartedAt}}", &id]),
        started
    );
    assert_eq!(pod["status"]["containerStatuses"][0]["restartCount"], 0);
    let uid = pod["metadata"]["uid"].as_str().expect("uid").to_string();
    c.server
        .ok(&["delete", "pod", "keep", "-n", &ns, "--timeout=60s"]);
    assert_eq!(
        c.containers(&uid),
        Vec::<String>::new(),
        "no container left:\n{}",
        log()
    );
}

#[test]
fn kubectl_logs_reach_the_container_through_the_agent() {
    let Some(c) = cluster() else { return };
    let ns = c.server.namespace("logs");
    c.apply(
        &ns,
        &pod_yaml(
            "talk",
            NODE,
            "busybox",
            "echo one; echo two >&2; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done",
        ),
    );
    c.wait_pod(&ns, "talk", "Running", running);
    let out = c.server.ok(&["logs", "talk", "-n", &ns]);
    let lines: Vec<&str> = out.lines().collect();
    // stdout and stderr both, each in its order (the two pipes are read
    // apart, so their lines may interleave either way).
    assert_eq!(lines.first(), Some(&"one"), "{out}");
    assert!(lines.contains(&"two"), "stderr too: {out}");
    let tail = c.server.ok(&["logs", "talk", "-n", &ns, "--tail=1"]);
    assert_eq!(tail.lines().count(), 1, "{tail}");
    assert!(tail.starts_with("tick "), "{tail}");
    let stamped = c
        .server
        .ok(&["logs", "talk", "-n", &ns, "--timestamps", "--tail=1"]);
    let stamp = stamped.split_whitespace().next().expect("a timestamp");
    // RFC 3339 with nanoseconds, as the kubelet stamps lines.
    assert!(
        stamp.len() > 20 && stamp.as_bytes()[10] == b'T' && stamp.ends_with('Z'),
        "{stamped}"
    );
    // Following: new lines arrive while kubectl runs.
    let mut follow = c
        .server
        .kubectl_command()
        .args(["logs", "-f", "talk", "-n", &ns, "--tail=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl logs -f");
    let mut reader = std::io::BufReader::new(follow.stdout.take().expect("stdout"));
    let mut ticks = Vec::new();
    for _ in 0..4 {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut reader, &mut line).expect("a line");
        ticks.push(line.trim().to_string());
    }
    let _ = follow.kill();
    let _ = follow.wait();
    let numbers: Vec<u32> = ticks
        .iter()
        .map(|t| t.trim_start_matches("tick ").parse().expect("a tick"))
        .collect();
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{ticks:?}");
    // Bad requests say what is wrong.
    let err = c.server.fails(&["logs", "talk", "-n", &ns, "-c", "nope"]);
    assert!(
        err.contains("container nope is not valid for pod talk"),
        "{err}"
    );
    let err = c.server.fails(&["logs", "talk", "-n", &ns, "--previous"]);
    assert!(err.contains("previous terminated container"), "{err}");
    c.server
        .ok(&["delete", "pod", "talk", "-n", &ns, "--timeout=60s"]);
}

#[test]
fn config_maps_and_secrets_reach_the_containers() {
    let Some(c) = cluster() else { return };
    let ns = c.server.namespace("sources");
    c.server.ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "-n",
        &ns,
        "--from-literal=password=s3cret",
    ]);
    let yaml = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: reader
spec:
  nodeName: {NODE}
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [\"sleep\", \"1000\"]
    env:
    - name: COLOUR
      valueFrom: {{configMapKeyRef: {{name: settings, key: colour}}}}
    - name: PASSWORD
      valueFrom: {{secretKeyRef: {{name: creds, key: password}}}}
    envFrom:
    - configMapRef: {{name: settings}}
      prefix: CFG_
    volumeMounts:
    - {{name: settings, mountPath: /etc/settings}}
    - {{name: creds, mountPath: /etc/creds}}
  volumes:
  - name: settings
    configMap:
      name: settings
      items: [{{key: colour, path: sub/colour.txt}}]
  - name: creds
    secret: {{secretName: creds, defaultMode: 0400}}
"
    );
    c.apply(&ns, &yaml);
    // The config map does not exist yet: the pod waits and says why.
    let pod = c.wait_pod(&ns, "reader", "waiting for its config map", |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("configmap \"settings\" not found"))
    });
    assert_eq!(pod["status"]["phase"], "Pending");
    assert_eq!(
        pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
        "ContainerCreating"
    );
    c.server.ok(&[
        "create",
        "configmap",
        "settings",
        "-n",
        &ns,
        "--from-literal=colour=teal",
        "--from-literal=size=9",
    ]);
    let pod = c.wait_pod(&ns, "reader", "Running", running);
    let id = container_id(&pod);
    let env = c.docker(&["exec", &id, "env"]);
    for want in [
        "COLOUR=teal",
        "PASSWORD=s3cret",
        "CFG_colour=teal",
        "CFG_size=9",
    ] {
        assert!(env.lines().any(|l| l == want), "{want} in {env}");
    }
    assert_eq!(
        c.docker(&["exec", &id, "cat", "/etc/settings/sub/colour.txt"]),
        "teal"
    );
    assert_eq!(
        c.docker(&["exec", &id, "cat", "/etc/creds/password"]),
        "s3cret"
    );
    assert_eq!(
        c.docker(&["exec", &id, "stat", "-c", "%a", "/etc/creds/password"]),
        "400"
    );
    // Read-only, as the kubelet mounts them.
    let out = Command::new(daemon::DOCKER)
        .arg("-H")
        .arg(&c.daemon.host)
        .args(["exec", &id, "touch", "/etc/creds/new"])
        .output()
        .expect("docker exec");
    assert!(!out.status.success(), "the secret volume is read-only");
    // An update of the config map reaches the mounted file.
    c.server.ok(&[
        "patch",
        "configmap",
        "settings",
        "-n",
        &ns,
        "-p",
        r#"{"data":{"colour":"plum"}}"#,
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.docker(&["exec", &id, "cat", "/etc/settings/sub/colour.txt"]) != "plum" {
        assert!(Instant::now() < deadline, "the file was not updated");
        std::thread::sleep(Duration::from_millis(250));
    }
    c.server
        .ok(&["delete", "pod", "reader", "-n", &ns, "--timeout=60s"]);
}

#[test]
fn bad_commands_and_exceeded_memory_limits_are_reported() {
    let Some(c) = cluster() else { return };
    let ns = c.server.namespace("bad");
    let yaml = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: nocmd
spec:
  nodeName: {NODE}
  terminationGracePeriodSeconds: 1
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [\"/no/such/command\"]
---
apiVersion: v1
kind: Pod
metadata:
  name: hog
spec:
  nodeName: {NODE}
  terminationGracePeriodSeconds: 1
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [\"sh\", \"-c\", \"head -c 200m /dev/zero | tail > /dev/null\"]
    resources:
      limits: {{memory: 16Mi}}
"
    );
    c.apply(&ns, &yaml);
    let terminated = |p: &Value| p["status"]["containerStatuses"][0]["state"]["terminated"].clone();
    let pod = c.wait_pod(&ns, "nocmd", "Failed", |p| p["status"]["phase"] == "Failed");
    let t = terminated(&pod);
    assert_eq!(t["reason"], "StartError", "{t}");
    assert!(
        t["message"]
            .as_str()
            .is_some_and(|m| m.contains("/no/such/command")),
        "{t}"
    );
    assert_ne!(t["exitCode"], 0);
    let pod = c.wait_pod(&ns, "hog", "Failed", |p| p["status"]["phase"] == "Failed");
    let t = terminated(&pod);
    assert_eq!(t["reason"], "OOMKilled", "{t}");
    assert_eq!(t["exitCode"], 137, "{t}");
    // The node stays healthy.
    let ready = c.server.ok(&[
        "get",
        "node",
        NODE,
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
    ]);
    assert_eq!(ready, "True");
    c.server
        .ok(&["delete", "pod", "nocmd", "hog", "-n", &ns, "--timeout=60s"]);
}
