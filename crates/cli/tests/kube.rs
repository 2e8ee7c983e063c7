//! End-to-end tests of `cais kube server`, driven by the real kubectl
//! (1.32, picked by its dispatcher from the server's `/version`). One
//! server per test binary; each test works in a namespace of its own.

use std::io::BufRead;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use cais_testkit::kube::{KubeServer, ADMIN_TOKEN, KUBECTL, NOBODY_TOKEN, NODE_TOKEN};
use cais_testkit::require;
use serde_json::Value;

const CAIS: &str = env!("CARGO_BIN_EXE_cais");

fn server() -> Option<&'static KubeServer> {
    if !require("kubectl at /usr/bin/kubectl", Path::new(KUBECTL).exists()) {
        return None;
    }
    Some(cais_testkit::kube::shared(CAIS))
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn deployment(name: &str, replicas: u32, image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: web
        image: {image}
        ports:
        - containerPort: 80
"
    )
}

fn apply(s: &KubeServer, ns: &str, yaml: &str, extra: &[&str]) -> String {
    let mut args = vec!["apply", "-n", ns, "-f", "-"];
    args.extend_from_slice(extra);
    let out = s.with_stdin(&args, yaml);
    assert!(
        out.status.success(),
        "kubectl apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn header(table: &str) -> Vec<String> {
    table
        .lines()
        .next()
        .unwrap_or("")
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect()
}

#[test]
fn version_reports_minor_32() {
    let Some(s) = server() else { return };
    let v = json(&s.ok(&["version", "-o", "json"]));
    assert_eq!(v["serverVersion"]["major"], "1");
    assert_eq!(v["serverVersion"]["minor"], "32");
    assert!(v["clientVersion"]["gitVersion"]
        .as_str()
        .is_some_and(|g| g.starts_with("v1.32")));
}

#[test]
fn api_resources_come_from_aggregated_discovery() {
    let Some(s) = server() else { return };
    let out = s.ok(&["api-resources"]);
    let row = |name: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} in\n{out}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        row("deployments"),
        ["deployments", "deploy", "apps/v1", "true", "Deployment"]
    );
    assert_eq!(row("pods"), ["pods", "po", "v1", "true", "Pod"]);
    assert_eq!(
        row("namespaces"),
        ["namespaces", "ns", "v1", "false", "Namespace"]
    );
    assert_eq!(
        row("leases"),
        ["leases", "coordination.k8s.io/v1", "true", "Lease"]
    );
    let raw = json(&s.ok(&["get", "--raw", "/apis/apps/v1"]));
    let names: Vec<&str> = raw["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(names.contains(&"deployments/scale"), "{names:?}");
}

#[test]
fn client_side_apply_creates_reports_unchanged_and_patches() {
    let Some(s) = server() else { return };
    let ns = s.namespace("csa");
    assert!(apply(s, &ns, &deployment("web", 2, "nginx:1.25"), &[])
        .contains("deployment.apps/web created"));
    assert!(apply(s, &ns, &deployment("web", 2, "nginx:1.25"), &[])
        .contains("deployment.apps/web unchanged"));
    assert!(apply(s, &ns, &deployment("web", 3, "nginx:1.26"), &[])
        .contains("deployment.apps/web configured"));
    let out = s.ok(&[
        "get", "deploy", "web", "-n", &ns, "-o",
        "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image} {.metadata.generation}",
    ]);
    assert_eq!(out, "3 nginx:1.26 2");
    // Defaults as the real server applies them.
    let d = json(&s.ok(&["get", "deploy", "web", "-n", &ns, "-o", "json"]));
    assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
    assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"],
        "/dev/termination-log"
    );
}

#[test]
fn server_side_apply_tracks_managers_and_conflicts() {
    let Some(s) = server() else { return };
    let ns = s.namespace("ssa");
    assert!(
        apply(s, &ns, &deployment("api", 2, "nginx:1"), &["--server-side"])
            .contains("serverside-applied")
    );
    let d = json(&s.ok(&[
        "get",
        "deploy",
        "api",
        "-n",
        &ns,
        "-o",
        "json",
        "--show-managed-fields",
    ]));
    let managers: Vec<(&str, &str)> = d["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .map(|m| {
            (
                m["manager"].as_str().unwrap_or(""),
                m["operation"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(managers, [("kubectl", "Apply")]);
    assert!(d["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:replicas"].is_object());
    // Another manager takes replicas; applying a different value conflicts.
    s.ok(&["scale", "deploy", "api", "-n", &ns, "--replicas=5"]);
    let out = s.with_stdin(
        &["apply", "--server-side", "-n", &ns, "-f", "-"],
        &deployment("api", 2, "nginx:1"),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1 at "), "{err}");
    assert!(err.contains(".spec.replicas"), "{err}");
    assert!(apply(
        s,
        &ns,
        &deployment("api", 2, "nginx:1"),
        &["--server-side", "--force-conflicts"]
    )
    .contains("serverside-applied"));
    assert_eq!(
        s.ok(&[
            "get",
            "deploy",
            "api",
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "2"
    );
    // A field dropped from the configuration is removed.
    let without_ports = deployment("api", 2, "nginx:1")
        .replace("        ports:\n        - containerPort: 80\n", "");
    apply(s, &ns, &without_ports, &["--server-side"]);
    let d = json(&s.ok(&["get", "deploy", "api", "-n", &ns, "-o", "json"]));
    assert!(
        d["spec"]["template"]["spec"]["containers"][0]
            .get("ports")
            .is_none(),
        "{d}"
    );
}

#[test]
fn tables_have_the_printers_columns() {
    let Some(s) = server() else { return };
    let ns = s.namespace("tables");
    apply(s, &ns, &deployment("web", 2, "nginx:1.25"), &[]);
    s.ok(&["run", "p1", "-n", &ns, "--image=busybox", "--restart=Never"]);
    assert_eq!(
        header(&s.ok(&["get", "pods", "-n", &ns])),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    assert_eq!(
        header(&s.ok(&["get", "pods", "-n", &ns, "-o", "wide"])),
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES"
        ]
    );
    let pods = s.ok(&["get", "pods", "-n", &ns]);
    let row: Vec<&str> = pods
        .lines()
        .nth(1)
        .expect("a row")
        .split_whitespace()
        .collect();
    assert_eq!(&row[..4], ["p1", "0/1", "Pending", "0"]);
    let wide = s.ok(&["get", "deploy", "-n", &ns, "-o", "wide"]);
    assert_eq!(
        header(&wide),
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    let row: Vec<&str> = wide
        .lines()
        .nth(1)
        .expect("a row")
        .split_whitespace()
        .collect();
    assert_eq!(row[..4], ["web", "0/2", "0", "0"]);
    assert_eq!(row[5..], ["web", "nginx:1.25", "app=web"]);
    let all = s.ok(&["get", "all", "-n", &ns]);
    assert!(
        all.contains("pod/p1") && all.contains("deployment.apps/web"),
        "{all}"
    );
    let y = s.ok(&["get", "pod", "p1", "-n", &ns, "-o", "yaml"]);
    assert!(
        y.contains("restartPolicy: Never") && y.contains("phase: Pending"),
        "{y}"
    );
    let name = s.ok(&["get", "pods", "-n", &ns, "-o", "name"]);
    assert_eq!(name.trim(), "pod/p1");
}

#[test]
fn label_and_field_selectors() {
    let Some(s) = server() else { return };
    let ns = s.namespace("selectors");
    for (name, labels) in [
        ("a", "app=web,tier=front"),
        ("b", "app=web,tier=back"),
        ("c", "app=db"),
    ] {
        s.ok(&["create", "configmap", name, "-n", &ns]);
        let mut args = vec!["label", "configmap", name, "-n", &ns];
        args.extend(labels.split(','));
        s.ok(&args);
    }
    let names = |selector: &[&str]| -> String {
        let mut args = vec![
            "get",
            "cm",
            "-n",
            ns.as_str(),
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ];
        args.extend_from_slice(selector);
        s.ok(&args)
    };
    assert_eq!(names(&["-l", "app=web"]), "a b");
    assert_eq!(names(&["-l", "app==web,tier!=back"]), "a");
    assert_eq!(names(&["-l", "tier in (front,back)"]), "a b");
    assert_eq!(names(&["-l", "app,tier notin (front)"]), "b c");
    assert_eq!(names(&["-l", "!tier"]), "c");
    assert_eq!(names(&["--field-selector", "metadata.name=b"]), "b");
    assert_eq!(
        names(&["--field-selector", "metadata.name!=b", "-l", "app"]),
        "a c"
    );
    let err = s.fails(&["get", "cm", "-n", &ns, "-l", "app in web"]);
    assert!(
        err.contains("unable to parse requirement: found 'web' expected: '('"),
        "{err}"
    );
    let err = s.fails(&["get", "cm", "-n", &ns, "--field-selector", "data.x=1"]);
    assert!(err.contains("field label not supported: data.x"), "{err}");
    s.ok(&["run", "p", "-n", &ns, "--image=busybox", "--restart=Never"]);
    let pods = s.ok(&[
        "get",
        "pods",
        "-n",
        &ns,
        "--field-selector",
        "status.phase=Pending,spec.nodeName=",
        "-o",
        "name",
    ]);
    assert_eq!(pods.trim(), "pod/p");
}

#[test]
fn lists_are_paged_with_continue_tokens() {
    let Some(s) = server() else { return };
    let ns = s.namespace("paging");
    for i in 0..5 {
        s.ok(&["create", "configmap", &format!("cm{i}"), "-n", &ns]);
    }
    let page = json(&s.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/{ns}/configmaps?limit=2"),
    ]));
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
    let token = page["metadata"]["continue"]
        .as_str()
        .expect("a continue token")
        .to_string();
    let rv = page["metadata"]["resourceVersion"]
        .as_str()
        .expect("a revision")
        .to_string();
    let next = json(&s.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/{ns}/configmaps?limit=10&continue={token}"),
    ]));
    assert_eq!(next["items"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        next["metadata"]["resourceVersion"],
        rv.as_str(),
        "pages read at one revision"
    );
    assert!(next["metadata"].get("continue").is_none());
    // kubectl follows continue tokens itself.
    let all = s.ok(&["get", "cm", "-n", &ns, "--chunk-size=2", "-o", "name"]);
    assert_eq!(all.lines().count(), 5);
    let err = s.fails(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/{ns}/configmaps?limit=2&continue=garbage"),
    ]);
    assert!(
        err.contains("BadRequest") || err.contains("invalid continue"),
        "{err}"
    );
}

/// Reads lines of a running `kubectl get -w` until `want` matches.
fn wait_for_line(
    lines: &std::sync::mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    want: impl Fn(&str) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen.iter().any(|l| want(l)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(l) => seen.push(l),
            Err(_) => panic!("watch output never matched; saw:\n{}", seen.join("\n")),
        }
    }
}

#[test]
fn get_watch_sees_events_as_they_happen() {
    let Some(s) = server() else { return };
    let ns = s.namespace("watch");
    s.ok(&["create", "configmap", "before", "-n", &ns]);
    let mut child = s
        .kubectl_command()
        .args(["get", "cm", "-n", &ns, "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    wait_for_line(&rx, &mut seen, |l| {
        l.starts_with("ADDED") && l.contains("before")
    });
    s.ok(&["create", "configmap", "live", "-n", &ns]);
    wait_for_line(&rx, &mut seen, |l| {
        l.starts_with("ADDED") && l.contains("live")
    });
    s.ok(&["label", "configmap", "live", "-n", &ns, "x=y"]);
    wait_for_line(&rx, &mut seen, |l| {
        l.starts_with("MODIFIED") && l.contains("live")
    });
    s.ok(&["delete", "configmap", "live", "-n", &ns]);
    wait_for_line(&rx, &mut seen, |l| {
        l.starts_with("DELETED") && l.contains("live")
    });
    assert!(!seen.iter().any(|l| l.contains("BOOKMARK")), "{seen:?}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn raw_watches_honour_timeouts_and_bookmarks() {
    let Some(s) = server() else { return };
    let ns = s.namespace("rawwatch");
    s.ok(&["create", "configmap", "one", "-n", &ns]);
    let started = Instant::now();
    let out = s.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/{ns}/configmaps?watch=true&timeoutSeconds=1"),
    ]);
    assert!(started.elapsed() < Duration::from_secs(10));
    let events: Vec<Value> = out.lines().map(json).collect();
    assert_eq!(events.len(), 1, "{out}");
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "one");
    let with = s.ok(&["get", "--raw", &format!(
        "/api/v1/namespaces/{ns}/configmaps?watch=true&timeoutSeconds=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
    )]);
    let last = json(with.lines().last().expect("events"));
    assert_eq!(last["type"], "BOOKMARK");
    assert_eq!(
        last["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    let without = s.ok(&[
        "get",
        "--raw",
        &format!(
            "/api/v1/namespaces/{ns}/configmaps?watch=true&timeoutSeconds=1&sendInitialEvents=true"
        ),
    ]);
    assert!(!without.contains("BOOKMARK"), "{without}");
    // A revision after the list's: only what changes later.
    let rv = json(&s.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/{ns}/configmaps"),
    ]))["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    let quiet = s.ok(&[
        "get",
        "--raw",
        &format!(
            "/api/v1/namespaces/{ns}/configmaps?watch=true&timeoutSeconds=1&resourceVersion={rv}"
        ),
    ]);
    assert!(quiet.trim().is_empty(), "{quiet}");
}

#[test]
fn describe_label_annotate() {
    let Some(s) = server() else { return };
    let ns = s.namespace("describe");
    apply(s, &ns, &deployment("web", 2, "nginx:1.25"), &[]);
    s.ok(&["label", "deploy", "web", "-n", &ns, "tier=front"]);
    s.ok(&["annotate", "deploy", "web", "-n", &ns, "note=hello"]);
    let d = s.ok(&["describe", "deploy", "web", "-n", &ns]);
    for want in [
        "Name:                   web",
        "tier=front",
        "note: hello",
        "Replicas:               2 desired",
        "StrategyType:           RollingUpdate",
        "Image:         nginx:1.25",
    ] {
        assert!(d.contains(want), "{want:?} not in\n{d}");
    }
    let generation = s.ok(&[
        "get",
        "deploy",
        "web",
        "-n",
        &ns,
        "-o",
        "jsonpath={.metadata.generation}",
    ]);
    assert_eq!(
        generation, "1",
        "labels and annotations do not bump the generation"
    );
    s.ok(&["label", "deploy", "web", "-n", &ns, "tier-"]);
    let labels = json(&s.ok(&[
        "get",
        "deploy",
        "web",
        "-n",
        &ns,
        "-o",
        "jsonpath={.metadata.labels}",
    ]));
    assert_eq!(labels, serde_json::json!({"app": "web"}));
}

#[test]
fn patches_of_each_type() {
    let Some(s) = server() else { return };
    let ns = s.namespace("patch");
    apply(s, &ns, &deployment("web", 1, "nginx:1"), &[]);
    // Strategic: containers merge by name.
    s.ok(&[
        "patch",
        "deploy",
        "web",
        "-n",
        &ns,
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"side","image":"busybox"}]}}}}"#,
    ]);
    s.ok(&[
        "patch",
        "deploy",
        "web",
        "-n",
        &ns,
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:2"}]}}}}"#,
    ]);
    let images = s.ok(&[
        "get",
        "deploy",
        "web",
        "-n",
        &ns,
        "-o",
        "jsonpath={.spec.template.spec.containers[*].image}",
    ]);
    assert_eq!(images, "nginx:2 busybox");
    // Strategic delete directive.
    s.ok(&[
        "patch",
        "deploy",
        "web",
        "-n",
        &ns,
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"side","$patch":"delete"}]}}}}"#,
    ]);
    let names = s.ok(&[
        "get",
        "deploy",
        "web",
        "-n",
        &ns,
        "-o",
        "jsonpath={.spec.template.spec.containers[*].name}",
    ]);
    assert_eq!(names, "web");
    // Merge patch: maps merge, null deletes.
    s.ok(&[
        "patch",
        "deploy",
        "web",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"a":"1","app":null}}}"#,
    ]);
    let labels = json(&s.ok(&[
        "get",
        "deploy",
        "web",
        "-n",
        &ns,
        "-o",
        "jsonpath={.metadata.labels}",
    ]));
    assert_eq!(labels, serde_json::json!({"a": "1"}));
    // JSON patch, with a failing test that changes nothing.
    s.ok(&[
        "patch",
        "deploy",
        "web",
        "-n",
        &ns,
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":4}]"#,
    ]);
    let err = s.fails(&["patch", "deploy", "web", "-n", &ns, "--type=json", "-p", r#"[{"op":"test","path":"/spec/replicas","value":9},{"op":"replace","path":"/spec/replicas","value":1}]"#]);
    assert!(err.contains("testing value /spec/replicas failed"), "{err}");
    assert_eq!(
        s.ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "4"
    );
    // A patch that makes the object invalid is refused whole.
    let err = s.fails(&[
        "patch",
        "deploy",
        "web",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":-1}}"#,
    ]);
    assert!(err.contains("spec.replicas: Invalid value: -1"), "{err}");
}

#[test]
fn edit_scale_and_set_image() {
    let Some(s) = server() else { return };
    let ns = s.namespace("edit");
    apply(s, &ns, &deployment("web", 2, "nginx:1"), &[]);
    let editor = s.dir.path().join(format!("editor-{ns}.sh"));
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/replicas: 2/replicas: 6/' \"$1\"\n",
    )
    .expect("editor");
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let out = s
        .kubectl_command()
        .env("KUBE_EDITOR", &editor)
        .args(["edit", "deploy", "web", "-n", &ns])
        .output()
        .expect("kubectl edit");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("deployment.apps/web edited"));
    assert_eq!(
        s.ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.replicas} {.metadata.generation}"
        ]),
        "6 2"
    );
    assert!(s
        .ok(&["scale", "deploy", "web", "-n", &ns, "--replicas=3"])
        .contains("scaled"));
    let scale = json(&s.ok(&[
        "get",
        "--raw",
        &format!("/apis/apps/v1/namespaces/{ns}/deployments/web/scale"),
    ]));
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["spec"]["replicas"], 3);
    assert_eq!(scale["status"]["selector"], "app=web");
    assert!(s
        .ok(&["set", "image", "deploy/web", "-n", &ns, "web=nginx:3"])
        .contains("image updated"));
    assert_eq!(
        s.ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image} {.metadata.generation}"
        ]),
        "nginx:3 4"
    );
}

#[test]
fn typed_creates_arrive_as_protobuf() {
    let Some(s) = server() else { return };
    let ns = s.namespace("typed");
    s.ok(&[
        "create",
        "configmap",
        "cfg",
        "-n",
        &ns,
        "--from-literal=a=1",
    ]);
    s.ok(&[
        "create",
        "secret",
        "generic",
        "sec",
        "-n",
        &ns,
        "--from-literal=password=hunter2",
    ]);
    s.ok(&[
        "create",
        "deployment",
        "d",
        "-n",
        &ns,
        "--image=nginx",
        "--replicas=0",
    ]);
    s.ok(&["create", "serviceaccount", "robot", "-n", &ns]);
    assert_eq!(
        s.ok(&["get", "cm", "cfg", "-n", &ns, "-o", "jsonpath={.data.a}"]),
        "1"
    );
    assert_eq!(
        s.ok(&[
            "get",
            "secret",
            "sec",
            "-n",
            &ns,
            "-o",
            "jsonpath={.data.password} {.type}"
        ]),
        "aHVudGVyMg== Opaque"
    );
    assert_eq!(
        s.ok(&[
            "get",
            "deploy",
            "d",
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image}"
        ]),
        "0 nginx"
    );
    let sa = s.ok(&["get", "sa", "-n", &ns, "-o", "name"]);
    assert!(
        sa.contains("serviceaccount/default") && sa.contains("serviceaccount/robot"),
        "{sa}"
    );
}

#[test]
fn delete_and_namespace_deletion() {
    let Some(s) = server() else { return };
    let ns = s.namespace("delete");
    apply(s, &ns, &deployment("web", 1, "nginx"), &[]);
    s.ok(&["create", "configmap", "keep", "-n", &ns]);
    assert!(s
        .ok(&["delete", "deploy", "web", "-n", &ns])
        .contains("deployment.apps \"web\" deleted"));
    let err = s.fails(&["get", "deploy", "web", "-n", &ns]);
    assert!(
        err.contains("Error from server (NotFound): deployments.apps \"web\" not found"),
        "{err}"
    );
    // A finalizer holds an object until it is removed.
    s.ok(&[
        "patch",
        "cm",
        "keep",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ]);
    s.ok(&["delete", "cm", "keep", "-n", &ns, "--wait=false"]);
    let cm = json(&s.ok(&["get", "cm", "keep", "-n", &ns, "-o", "json"]));
    assert!(cm["metadata"]["deletionTimestamp"].is_string(), "{cm}");
    s.ok(&[
        "patch",
        "cm",
        "keep",
        "-n",
        &ns,
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    s.fails(&["get", "cm", "keep", "-n", &ns]);
    // Deleting a namespace deletes what it holds, then itself.
    s.ok(&["create", "configmap", "inside", "-n", &ns]);
    s.ok(&["delete", "namespace", &ns, "--timeout=30s"]);
    let err = s.fails(&["get", "namespace", &ns]);
    assert!(
        err.contains(&format!("namespaces \"{ns}\" not found")),
        "{err}"
    );
    assert_eq!(s.ok(&["get", "cm", "-n", &ns, "-o", "name"]).trim(), "");
}

#[test]
fn explain_reads_the_served_openapi() {
    let Some(s) = server() else { return };
    let out = s.ok(&["explain", "deployment.spec.replicas"]);
    assert!(out.contains("GROUP:      apps"), "{out}");
    assert!(out.contains("FIELD: replicas <integer>"), "{out}");
    let out = s.ok(&["explain", "pods.spec.containers"]);
    assert!(out.contains("FIELD: containers <[]Container>"), "{out}");
    assert!(out.contains("imagePullPolicy\t<string>"), "{out}");
    let v3 = json(&s.ok(&["get", "--raw", "/openapi/v3/apis/apps/v1"]));
    let containers =
        &v3["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
}

#[test]
fn errors_read_as_kubectl_prints_them() {
    let Some(s) = server() else { return };
    let ns = s.namespace("errors");
    let err = s.fails(&["get", "deploy", "nope", "-n", &ns]);
    assert!(
        err.contains("Error from server (NotFound): deployments.apps \"nope\" not found"),
        "{err}"
    );
    let err = s.fails(&["get", "cm", "x", "-n", "no-such-namespace"]);
    assert!(
        err.contains("Error from server (NotFound): namespaces \"no-such-namespace\" not found"),
        "{err}"
    );
    let err = s.fails(&["create", "configmap", "x", "-n", "no-such-namespace"]);
    assert!(
        err.contains("namespaces \"no-such-namespace\" not found"),
        "{err}"
    );
    let dup = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dup\n";
    assert!(s
        .with_stdin(&["create", "-n", &ns, "-f", "-"], dup)
        .status
        .success());
    let out = s.with_stdin(&["create", "-n", &ns, "-f", "-"], dup);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Error from server (AlreadyExists): error when creating \"STDIN\": configmaps \"dup\" already exists"), "{err}");
    let err = s.fails(&["create", "configmap", "Bad_Name", "-n", &ns]);
    assert!(err.contains("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"), "{err}");
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  restartPolicy: Sometimes\n  containers:\n  - name: Bad_Name\n";
    let out = s.with_stdin(&["apply", "-n", &ns, "-f", "-"], pod);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("The Pod \"bad\" is invalid:"), "{err}");
    assert!(
        err.contains("* spec.containers[0].name: Invalid value: \"Bad_Name\""),
        "{err}"
    );
    assert!(
        err.contains("* spec.containers[0].image: Required value"),
        "{err}"
    );
    assert!(
        err.contains("* spec.restartPolicy: Unsupported value: \"Sometimes\""),
        "{err}"
    );
    let unknown = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: u\nbogus: 1\n";
    let out = s.with_stdin(&["apply", "-n", &ns, "-f", "-"], unknown);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("strict decoding error: unknown field \"bogus\""),
        "{err}"
    );
    s.fails(&["get", "cm", "u", "-n", &ns]);
    // A stale resourceVersion is a conflict.
    let stale = s.ok(&["get", "cm", "dup", "-n", &ns, "-o", "yaml"]);
    s.ok(&["label", "cm", "dup", "-n", &ns, "v=2"]);
    let out = s.with_stdin(&["replace", "-n", &ns, "-f", "-"], &stale);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Error from server (Conflict)")
            && err.contains("the object has been modified"),
        "{err}"
    );
    // A body past the limit is refused, nothing stored.
    let huge = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: huge\ndata:\n  a: \"{}\"\n",
        "x".repeat(4 * 1024 * 1024)
    );
    let out = s.with_stdin(&["create", "-n", &ns, "-f", "-"], &huge);
    assert!(!out.status.success());
    s.fails(&["get", "cm", "huge", "-n", &ns]);
}

#[test]
fn authentication_is_required() {
    let Some(s) = server() else { return };
    let as_token = |token: &str| s.as_token(token, &["get", "ns", "default", "-o", "name"]);
    let out = as_token(ADMIN_TOKEN);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "namespace/default"
    );
    let out = as_token(NOBODY_TOKEN);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Forbidden"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = as_token("wrong");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("You must be logged in to the server"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::fs::metadata(s.kubeconfig())
        .expect("kubeconfig")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
}

/// A config map owned by another (through its uid).
fn dependent(s: &KubeServer, ns: &str, owner: &str, name: &str) {
    let uid = s.ok(&[
        "get",
        "cm",
        owner,
        "-n",
        ns,
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let yaml = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  ownerReferences:\n  - apiVersion: v1\n    kind: ConfigMap\n    name: {owner}\n    uid: {uid}\n    blockOwnerDeletion: true\n"
    );
    let out = s.with_stdin(&["create", "-n", ns, "-f", "-"], &yaml);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn gone_within(s: &KubeServer, ns: &str, name: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if !s.kubectl(&["get", "cm", name, "-n", ns]).status.success() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn deletion_propagates_along_owner_references() {
    let Some(s) = server() else { return };
    let ns = s.namespace("gc");
    // Background (kubectl's default): the dependent follows its owner.
    s.ok(&["create", "configmap", "bg-owner", "-n", &ns]);
    dependent(s, &ns, "bg-owner", "bg-dep");
    s.ok(&["delete", "cm", "bg-owner", "-n", &ns]);
    assert!(
        gone_within(s, &ns, "bg-dep", Duration::from_secs(10)),
        "the dependent stayed"
    );
    // Foreground: the owner waits for its dependents.
    s.ok(&["create", "configmap", "fg-owner", "-n", &ns]);
    dependent(s, &ns, "fg-owner", "fg-dep");
    s.ok(&[
        "delete",
        "cm",
        "fg-owner",
        "-n",
        &ns,
        "--cascade=foreground",
        "--timeout=20s",
    ]);
    s.fails(&["get", "cm", "fg-owner", "-n", &ns]);
    s.fails(&["get", "cm", "fg-dep", "-n", &ns]);
    // Orphan: the dependent stays, without its owner reference.
    s.ok(&["create", "configmap", "or-owner", "-n", &ns]);
    dependent(s, &ns, "or-owner", "or-dep");
    s.ok(&[
        "delete",
        "cm",
        "or-owner",
        "-n",
        &ns,
        "--cascade=orphan",
        "--timeout=20s",
    ]);
    s.fails(&["get", "cm", "or-owner", "-n", &ns]);
    let refs = s.ok(&[
        "get",
        "cm",
        "or-dep",
        "-n",
        &ns,
        "-o",
        "jsonpath={.metadata.ownerReferences}",
    ]);
    assert_eq!(refs, "");
    // A namesake with another uid is not the owner: the dependent goes.
    s.ok(&["create", "configmap", "namesake", "-n", &ns]);
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stray\n  ownerReferences:\n  - apiVersion: v1\n    kind: ConfigMap\n    name: namesake\n    uid: 00000000-0000-0000-0000-000000000000\n";
    assert!(s
        .with_stdin(&["create", "-n", &ns, "-f", "-"], yaml)
        .status
        .success());
    assert!(
        gone_within(s, &ns, "stray", Duration::from_secs(10)),
        "the stray dependent stayed"
    );
    s.ok(&["get", "cm", "namesake", "-n", &ns]);
}

const CRONTAB_CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames: [ct]
    categories: [cron]
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [cronSpec]
            properties:
              cronSpec: {type: string}
              image: {type: string}
              replicas: {type: integer, minimum: 1, default: 1}
          status:
            type: object
            properties:
              replicas: {type: integer}
    additionalPrinterColumns:
    - name: Spec
      type: string
      jsonPath: .spec.cronSpec
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
";

#[test]
fn custom_resources_are_served_generically() {
    let Some(s) = server() else { return };
    let ns = s.namespace("crd");
    let out = s.with_stdin(&["apply", "-f", "-"], CRONTAB_CRD);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/crontabs.stable.example.com",
        "--timeout=20s",
    ]);
    let resources = s.ok(&["api-resources", "--api-group=stable.example.com"]);
    assert!(
        resources.contains("crontabs") && resources.contains("ct") && resources.contains("CronTab"),
        "{resources}"
    );
    let tab = "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata:\n  name: nightly\nspec:\n  cronSpec: \"0 3 * * *\"\n  image: backup\n";
    assert!(s
        .with_stdin(&["apply", "-n", &ns, "-f", "-"], tab)
        .status
        .success());
    let table = s.ok(&["get", "ct", "-n", &ns]);
    assert_eq!(header(&table), ["NAME", "SPEC", "REPLICAS"]);
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["nightly", "0", "3", "*", "*", "*", "1"]),
        "{table}"
    );
    // Defaulted from the schema, scaled through /scale, patched by merge.
    s.ok(&["scale", "crontab", "nightly", "-n", &ns, "--replicas=3"]);
    assert_eq!(
        s.ok(&[
            "get",
            "ct",
            "nightly",
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.replicas} {.metadata.generation}"
        ]),
        "3 2"
    );
    s.ok(&[
        "patch",
        "ct",
        "nightly",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        r#"{"spec":{"image":"backup:2"}}"#,
    ]);
    let err = s.fails(&[
        "patch",
        "ct",
        "nightly",
        "-n",
        &ns,
        "-p",
        r#"{"spec":{"image":"x"}}"#,
    ]);
    assert!(
        err.contains("UnsupportedMediaType") || err.contains("unknown format"),
        "{err}"
    );
    // The schema validates and prunes.
    let bad = "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata:\n  name: bad\nspec:\n  replicas: 0\n";
    let out = s.with_stdin(&["apply", "-n", &ns, "-f", "-"], bad);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("The CronTab \"bad\" is invalid"), "{err}");
    assert!(err.contains("spec.cronSpec: Required value"), "{err}");
    let unknown = "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata:\n  name: u\nspec:\n  cronSpec: x\n  bogus: 1\n";
    let out = s.with_stdin(&["apply", "-n", &ns, "-f", "-"], unknown);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown field \"spec.bogus\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let explain = s.ok(&["explain", "crontab.spec.cronSpec"]);
    assert!(explain.contains("FIELD: cronSpec <string>"), "{explain}");
    // Its own category (not `all`: other tests' discovery caches would
    // keep it after the definition is gone).
    assert!(s
        .ok(&["get", "cron", "-n", &ns, "-o", "name"])
        .contains("crontab.stable.example.com/nightly"));
    // Deleting the definition deletes its objects, then itself.
    s.ok(&[
        "delete",
        "crd",
        "crontabs.stable.example.com",
        "--timeout=30s",
    ]);
    s.fails(&["get", "crd", "crontabs.stable.example.com"]);
    let gone = s.kubectl(&[
        "get",
        "--raw",
        &format!("/apis/stable.example.com/v1/namespaces/{ns}/crontabs"),
    ]);
    assert!(!gone.status.success());
}

#[test]
fn nodes_may_write_only_what_is_theirs() {
    let Some(s) = server() else { return };
    let ns = s.namespace("nodeauth");
    let node = |args: &[&str]| s.as_token(NODE_TOKEN, args);
    let node_stdin = |args: &[&str], input: &str| s.as_token_with_stdin(NODE_TOKEN, args, input);
    let forbidden = |out: std::process::Output| {
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success() && err.to_lowercase().contains("forbidden"),
            "{err}"
        );
        err
    };
    // Reading is allowed.
    assert!(node(&["get", "pods", "-A"]).status.success());
    // Its own Node, not another's.
    let own = "apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n";
    let out = node_stdin(&["create", "--validate=false", "-f", "-"], own);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let other = "apiVersion: v1\nkind: Node\nmetadata:\n  name: n2\n";
    let err = forbidden(node_stdin(
        &["create", "--validate=false", "-f", "-"],
        other,
    ));
    assert!(
        err.contains("User \"system:node:n1\" cannot create resource \"nodes\""),
        "{err}"
    );
    // The status of pods bound to it, not of others.
    for (pod, bound) in [("mine", "n1"), ("theirs", "n2")] {
        let yaml = format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {pod}\nspec:\n  nodeName: {bound}\n  containers:\n  - name: c\n    image: busybox\n");
        assert!(s
            .with_stdin(&["create", "-n", &ns, "-f", "-"], &yaml)
            .status
            .success());
    }
    let status = r#"{"status":{"phase":"Running"}}"#;
    let out = node(&[
        "patch",
        "pod",
        "mine",
        "-n",
        &ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        status,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        s.ok(&[
            "get",
            "pod",
            "mine",
            "-n",
            &ns,
            "-o",
            "jsonpath={.status.phase}"
        ]),
        "Running"
    );
    forbidden(node(&[
        "patch",
        "pod",
        "theirs",
        "-n",
        &ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        status,
    ]));
    forbidden(node(&["label", "pod", "mine", "-n", &ns, "x=y"]));
    forbidden(node(&[
        "create",
        "deployment",
        "d",
        "-n",
        &ns,
        "--image=nginx",
    ]));
    forbidden(node(&["delete", "pod", "theirs", "-n", &ns]));
    // What the authorizer says, asked through reviews.
    let whoami = String::from_utf8_lossy(&node(&["auth", "whoami"]).stdout).into_owned();
    assert!(
        whoami.contains("system:node:n1") && whoami.contains("system:nodes"),
        "{whoami}"
    );
    assert_eq!(
        String::from_utf8_lossy(&node(&["auth", "can-i", "list", "pods"]).stdout).trim(),
        "yes"
    );
    assert_eq!(
        String::from_utf8_lossy(&node(&["auth", "can-i", "create", "deployments"]).stdout).trim(),
        "no"
    );
    assert_eq!(
        s.ok(&["auth", "can-i", "create", "deployments"]).trim(),
        "yes"
    );
}
