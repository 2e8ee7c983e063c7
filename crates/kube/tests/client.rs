//! The client against a real `cais kube server` (the API server's own
//! code, started in this process over a store the tests can compact), one
//! server for the whole binary, a namespace per test.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cais_kube::k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use cais_kube::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use cais_kube::{Api, Client, DeleteParams, Informer, ListParams, Patch, WatchEvent};
use serde_json::json;

struct Server {
    kubeconfig: PathBuf,
    store: Arc<dyn cais_store::Store>,
    _dir: tempfile::TempDir,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let kubeconfig = dir.path().join("kubeconfig");
        let config = cais_apiserver::server::Config {
            data_dir: data.clone(),
            listen: "127.0.0.1:0".parse().expect("address"),
            kubeconfig: Some(kubeconfig.clone()),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        // The server outlives each test's runtime: it gets a thread and a
        // runtime of its own for the life of the binary.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(async move {
                let store = cais_apiserver::server::open_store(&data).expect("store");
                let (ready, started) = tokio::sync::oneshot::channel();
                let served = store.clone();
                tokio::spawn(async move {
                    started.await.expect("server ready");
                    tx.send(store).expect("test waits");
                });
                cais_apiserver::server::serve(config, served, Some(ready), std::future::pending())
                    .await
                    .expect("server runs");
            });
        });
        let store = rx.recv().expect("server ready");
        Server {
            kubeconfig,
            store,
            _dir: dir,
        }
    })
}

async fn namespace(name: &str) -> Client {
    let client = Client::from_kubeconfig(&server().kubeconfig).expect("client");
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&ns)
        .await
        .expect("namespace");
    client
}

fn config_map(name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

#[tokio::test]
async fn typed_verbs_and_their_errors() {
    let client = namespace("verbs").await;
    let cms = Api::<ConfigMap>::namespaced(client.clone(), "verbs");
    let a = cms
        .create(&config_map("a", &[("app", "x")], &[("k", "1")]))
        .await
        .expect("create");
    cms.create(&config_map("b", &[("app", "y")], &[]))
        .await
        .expect("create b");
    let dup = cms
        .create(&config_map("a", &[], &[]))
        .await
        .expect_err("a exists");
    assert!(dup.is_already_exists(), "{dup}");

    let listed = cms.list(&ListParams::labels("app=x")).await.expect("list");
    let names: Vec<_> = listed
        .items
        .iter()
        .map(|c| c.metadata.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(names, ["a"]);
    assert!(!listed.resource_version.is_empty());

    let mut changed = a.clone();
    changed.data = Some([("k".to_string(), "2".to_string())].into());
    let replaced = cms.replace("a", &changed).await.expect("replace");
    assert_eq!(
        replaced
            .data
            .as_ref()
            .and_then(|d| d.get("k"))
            .map(String::as_str),
        Some("2")
    );
    // `a` still has the old resourceVersion: the write is stale.
    let stale = cms.replace("a", &a).await.expect_err("stale");
    assert!(stale.is_conflict(), "{stale}");

    let merged = cms
        .patch("a", &Patch::Merge(json!({"data": {"m": "3"}})))
        .await
        .expect("merge patch");
    let strategic = cms
        .patch(
            "a",
            &Patch::Strategic(json!({"metadata": {"labels": {"s": "4"}}})),
        )
        .await
        .expect("strategic patch");
    let jsonp = cms
        .patch(
            "a",
            &Patch::Json(json!([{"op": "remove", "path": "/data/k"}])),
        )
        .await
        .expect("json patch");
    assert_eq!(
        merged
            .data
            .as_ref()
            .and_then(|d| d.get("m"))
            .map(String::as_str),
        Some("3")
    );
    assert_eq!(
        strategic
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("s"))
            .map(String::as_str),
        Some("4")
    );
    assert!(jsonp
        .data
        .as_ref()
        .is_some_and(|d| !d.contains_key("k") && d.contains_key("m")));

    cms.delete("a", &DeleteParams::background())
        .await
        .expect("delete");
    let gone = cms.get("a").await.expect_err("deleted");
    assert!(gone.is_not_found(), "{gone}");
    assert_eq!(gone.reason(), "NotFound");
    assert!(cms.get_opt("a").await.expect("get_opt").is_none());
    let missing = cms
        .delete("a", &DeleteParams::default())
        .await
        .expect_err("already gone");
    assert!(missing.is_not_found(), "{missing}");
}

#[tokio::test]
async fn status_subresource_and_binding() {
    let client = namespace("status").await;
    let pods = Api::<Pod>::namespaced(client.clone(), "status");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }))
    .expect("pod");
    let created = pods.create(&pod).await.expect("create");
    assert_eq!(
        created.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Pending")
    );

    pods.create_subresource(
        "p",
        "binding",
        &json!({
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"},
        }),
    )
    .await
    .expect("bind");
    let again = pods
        .create_subresource("p", "binding", &json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"name": "n2"}}))
        .await
        .expect_err("bound already");
    assert!(again.is_conflict(), "{again}");

    let mut running = pods.get("p").await.expect("get");
    assert_eq!(
        running.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some("n1")
    );
    running.status.get_or_insert_with(Default::default).phase = Some("Running".into());
    // A spec change through /status is ignored.
    running.spec.as_mut().expect("spec").containers[0].image = Some("other".into());
    let updated = pods.replace_status("p", &running).await.expect("status");
    assert_eq!(
        updated.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Running")
    );
    assert_eq!(
        updated
            .spec
            .as_ref()
            .and_then(|s| s.containers[0].image.as_deref()),
        Some("busybox")
    );

    let patched = pods
        .patch_status("p", &Patch::Merge(json!({"status": {"podIP": "10.0.0.9"}})))
        .await
        .expect("patch status");
    assert_eq!(
        patched.status.as_ref().and_then(|s| s.pod_ip.as_deref()),
        Some("10.0.0.9")
    );
}

#[tokio::test]
async fn watch_from_a_list_revision_and_410_after_compaction() {
    let client = namespace("watch").await;
    let cms = Api::<ConfigMap>::namespaced(client.clone(), "watch");
    let list = cms.list(&ListParams::default()).await.expect("list");
    let mut stream = cms
        .watch(&ListParams::default(), &list.resource_version)
        .await
        .expect("watch");
    cms.create(&config_map("w", &[], &[]))
        .await
        .expect("create");
    cms.patch("w", &Patch::Merge(json!({"data": {"a": "b"}})))
        .await
        .expect("patch");
    cms.delete("w", &DeleteParams::default())
        .await
        .expect("delete");
    let mut seen = Vec::new();
    let mut revisions = Vec::new();
    while seen.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("an event in time")
            .expect("the stream goes on")
            .expect("an event");
        let (kind, cm) = match event {
            WatchEvent::Added(c) => ("ADDED", c),
            WatchEvent::Modified(c) => ("MODIFIED", c),
            WatchEvent::Deleted(c) => ("DELETED", c),
            WatchEvent::Bookmark { .. } => continue,
        };
        assert_eq!(cm.metadata.name.as_deref(), Some("w"));
        revisions.push(
            cm.metadata
                .resource_version
                .unwrap_or_default()
                .parse::<i64>()
                .expect("numeric"),
        );
        seen.push(kind);
    }
    assert_eq!(seen, ["ADDED", "MODIFIED", "DELETED"]);
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "{revisions:?}");

    let store = &server().store;
    let now = store.current_revision().await.expect("revision");
    store.compact(now).await.expect("compact");
    let expired = cms
        .watch(&ListParams::default(), &list.resource_version)
        .await;
    let e = match expired {
        Err(e) => e,
        Ok(mut s) => s.next().await.expect("an event").expect_err("410"),
    };
    assert!(e.is_gone(), "{e}");
}

#[tokio::test]
async fn informer_caches_reports_changes_and_relists_after_410() {
    let client = namespace("informer").await;
    let cms = Api::<ConfigMap>::namespaced(client.clone(), "informer");
    cms.create(&config_map("before", &[], &[]))
        .await
        .expect("create");
    let mut informer = Informer::new(
        cms.clone(),
        ListParams {
            timeout_seconds: Some(1),
            ..Default::default()
        },
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    informer.on_change(move |old, new| {
        let name = |c: Option<&ConfigMap>| c.and_then(|c| c.metadata.name.clone());
        let _ = tx.send((name(old), name(new)));
    });
    let cache = informer.store();
    let task = informer.spawn();
    tokio::time::timeout(Duration::from_secs(10), cache.wait_synced())
        .await
        .expect("synced");
    assert!(cache.get("informer/before").is_some());
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a change in time")
            .expect("a change")
    };
    assert_eq!(next().await, (None, Some("before".into())));
    cms.create(&config_map("after", &[], &[]))
        .await
        .expect("create");
    assert_eq!(next().await, (None, Some("after".into())));
    cms.delete("before", &DeleteParams::default())
        .await
        .expect("delete");
    assert_eq!(next().await, (Some("before".into()), None));
    let mut keys = cache.keys();
    keys.sort();
    assert_eq!(keys, ["informer/after"]);
    assert_eq!(cache.lists(), 1);

    // Writes elsewhere move the store on; once they are compacted away,
    // the informer's next watch (every second here) is refused with 410
    // and it lists again, keeping what it knows.
    let elsewhere = namespace("informer-other").await;
    let other = Api::<ConfigMap>::namespaced(elsewhere, "informer-other");
    for i in 0..3 {
        other
            .create(&config_map(&format!("o{i}"), &[], &[]))
            .await
            .expect("create");
    }
    let store = &server().store;
    store
        .compact(store.current_revision().await.expect("revision"))
        .await
        .expect("compact");
    tokio::time::timeout(Duration::from_secs(10), async {
        while cache.lists() < 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("listed again");
    assert_eq!(cache.keys(), ["informer/after"]);
    cms.create(&config_map("later", &[], &[]))
        .await
        .expect("create");
    assert_eq!(next().await, (None, Some("later".into())));
    task.abort();
}

#[tokio::test]
async fn an_unknown_token_is_unauthorized() {
    let mut config = cais_kube::Config::load(&server().kubeconfig).expect("config");
    config.client_cert_pem = None;
    config.client_key_pem = None;
    config.token = Some("nobody-knows-this-token".into());
    let client = Client::new(&config).expect("client");
    let e = Api::<Namespace>::all(client)
        .list(&ListParams::default())
        .await
        .expect_err("refused");
    assert_eq!(e.code(), 401, "{e}");
}
