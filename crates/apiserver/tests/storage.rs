//! The generic handler over the real embedded store: what needs the store's
//! history to be compacted (410 Expired for lists, continue tokens and
//! watches) and the finer watch semantics, checked without HTTP.

use std::sync::Arc;
use std::time::Duration;

use cais_apiserver::model::{Model, ModelCell};
use cais_apiserver::rest::{Ctx, Format, Params};
use cais_apiserver::storage::Storage;
use cais_store::Store;
use serde_json::{json, Value};
use tokio::sync::mpsc;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<cais_store::sqlite::SqliteStore>,
    cell: Arc<ModelCell>,
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = cais_store::sqlite::Options {
            retention: None,
            ..Default::default()
        };
        let store =
            Arc::new(cais_store::sqlite::SqliteStore::open(dir.path(), options).expect("store"));
        let cell = Arc::new(ModelCell::new(Model::builtin().expect("model")));
        let f = Fixture {
            _dir: dir,
            store,
            cell,
        };
        f.ctx("namespaces", None, "")
            .create(
                json!({"metadata": {"name": "default"}})
                    .to_string()
                    .as_bytes(),
            )
            .await
            .expect("namespace");
        f
    }

    fn ctx(&self, plural: &str, namespace: Option<&str>, query: &str) -> Ctx {
        let model = self.cell.get();
        let group = if plural == "deployments" { "apps" } else { "" };
        Ctx {
            resource: model
                .registry
                .find(group, "v1", plural)
                .expect("registered"),
            model,
            cell: self.cell.clone(),
            storage: Storage::new(self.store.clone()),
            namespace: namespace.map(String::from),
            params: Params::parse(Some(query)),
            default_manager: "test".into(),
            format: Format::Json,
        }
    }

    async fn create_cm(&self, name: &str, labels: Value) -> String {
        let body = json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}});
        let reply = self
            .ctx("configmaps", Some("default"), "")
            .create(body.to_string().as_bytes())
            .await
            .expect("create");
        reply.body["metadata"]["resourceVersion"]
            .as_str()
            .expect("rv")
            .to_string()
    }

    /// Runs a watch for `query` and collects its events until `until`
    /// holds or two seconds pass.
    async fn watch(
        &self,
        query: &str,
        until: impl Fn(&[Value]) -> bool,
        during: impl std::future::Future<Output = ()>,
    ) -> Vec<Value> {
        let (tx, mut rx) = mpsc::channel(64);
        let cx = self.ctx("configmaps", Some("default"), query);
        let task = tokio::spawn(cais_apiserver::watch::run(cx, false, tx));
        during.await;
        let mut events = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while !until(&events) {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(line)) => events.push(serde_json::from_slice(&line).expect("a JSON line")),
                _ => break,
            }
        }
        task.abort();
        events
    }
}

fn kinds(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or("").to_string(),
                e["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn compacted_revisions_are_410_expired() {
    let f = Fixture::new().await;
    let first = f.create_cm("a", json!({})).await;
    f.create_cm("b", json!({})).await;
    f.create_cm("c", json!({})).await;
    let page = f
        .ctx("configmaps", Some("default"), "limit=1")
        .list()
        .await
        .expect("list");
    let token = page["metadata"]["continue"]
        .as_str()
        .expect("continue")
        .to_string();
    f.create_cm("d", json!({})).await;
    let current = f.store.current_revision().await.expect("revision");
    f.store.compact(current).await.expect("compact");

    let e = f
        .ctx(
            "configmaps",
            Some("default"),
            &format!("resourceVersion={first}&resourceVersionMatch=Exact"),
        )
        .list()
        .await
        .expect_err("compacted");
    assert_eq!((e.code, e.reason), (410, "Expired"));
    let e = f
        .ctx(
            "configmaps",
            Some("default"),
            &format!("limit=1&continue={token}"),
        )
        .list()
        .await
        .expect_err("compacted");
    assert_eq!((e.code, e.reason), (410, "Expired"));
    assert!(
        e.message.contains("continue parameter is too old"),
        "{}",
        e.message
    );

    let events = f
        .watch(
            &format!("watch=true&resourceVersion={first}"),
            |e| !e.is_empty(),
            async {},
        )
        .await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "ERROR");
    assert_eq!(events[0]["object"]["code"], 410);
    assert_eq!(events[0]["object"]["reason"], "Expired");
    assert!(events[0]["object"]["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("too old resource version: ")));
    // The latest revision is still good.
    let ok = f
        .ctx(
            "configmaps",
            Some("default"),
            &format!("resourceVersion={current}&resourceVersionMatch=Exact"),
        )
        .list()
        .await
        .expect("list");
    assert_eq!(ok["items"].as_array().map(Vec::len), Some(4));
}

#[tokio::test]
async fn watches_start_where_asked_and_follow_the_selection() {
    let f = Fixture::new().await;
    f.create_cm("old", json!({"app": "web"})).await;
    let rv = f.store.current_revision().await.expect("revision");

    // resourceVersion=0: the current objects first, then changes.
    let events = f
        .watch("watch=true&resourceVersion=0", |e| e.len() >= 2, async {
            f.create_cm("new", json!({"app": "web"})).await;
        })
        .await;
    assert_eq!(
        kinds(&events),
        [
            ("ADDED".into(), "old".into()),
            ("ADDED".into(), "new".into())
        ]
    );

    // A revision: only what happened after it, and each change once.
    let events = f
        .watch(
            &format!("watch=true&resourceVersion={rv}"),
            |e| e.len() >= 2,
            async {},
        )
        .await;
    assert_eq!(
        kinds(&events),
        [("ADDED".into(), "new".into())],
        "only the change after {rv}"
    );

    // Objects leaving a label selection are DELETED, entering it ADDED.
    let events = f
        .watch(
            "watch=true&labelSelector=app%3Dweb",
            |e| e.len() >= 4,
            async {
                let cx = f.ctx("configmaps", Some("default"), "");
                cx.patch(
                    "old",
                    br#"{"metadata":{"labels":{"app":"db"}}}"#,
                    "application/merge-patch+json",
                    None,
                )
                .await
                .expect("relabel");
                cx.patch(
                    "old",
                    br#"{"metadata":{"labels":{"app":"web"}}}"#,
                    "application/merge-patch+json",
                    None,
                )
                .await
                .expect("relabel");
            },
        )
        .await;
    assert_eq!(
        kinds(&events),
        [
            ("ADDED".into(), "new".into()),
            ("ADDED".into(), "old".into()),
            ("DELETED".into(), "old".into()),
            ("ADDED".into(), "old".into()),
        ]
    );
    // Resource versions of the events go up.
    let rvs: Vec<i64> = events
        .iter()
        .filter_map(|e| {
            e["object"]["metadata"]["resourceVersion"]
                .as_str()?
                .parse()
                .ok()
        })
        .collect();
    assert!(rvs[2..].windows(2).all(|w| w[0] < w[1]), "{rvs:?}");
}

#[tokio::test]
async fn optimistic_concurrency_and_generation() {
    let f = Fixture::new().await;
    let deploy = json!({"metadata": {"name": "web"}, "spec": {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}});
    let cx = f.ctx("deployments", Some("default"), "");
    let created = cx
        .create(deploy.to_string().as_bytes())
        .await
        .expect("create")
        .body;
    assert_eq!(created["metadata"]["generation"], 1);
    let mut stale = created.clone();
    // A status write does not bump the generation; a label does not either.
    let mut with_status = created.clone();
    with_status["status"] = json!({"replicas": 1});
    let s = cx
        .update("web", with_status.to_string().as_bytes(), Some("status"))
        .await
        .expect("status")
        .body;
    assert_eq!(s["metadata"]["generation"], 1);
    assert_eq!(s["status"]["replicas"], 1);
    // A main-resource write keeps the stored status.
    let mut spec = s.clone();
    spec["spec"]["replicas"] = json!(4);
    spec["status"] = json!({"replicas": 99});
    let u = cx
        .update("web", spec.to_string().as_bytes(), None)
        .await
        .expect("update")
        .body;
    assert_eq!(u["metadata"]["generation"], 2);
    assert_eq!(u["status"]["replicas"], 1);
    // The first version is stale now.
    stale["spec"]["replicas"] = json!(7);
    let e = cx
        .update("web", stale.to_string().as_bytes(), None)
        .await
        .expect_err("stale");
    assert_eq!((e.code, e.reason), (409, "Conflict"));
    let now = cx.get("web").await.expect("get");
    assert_eq!(now["spec"]["replicas"], 4);
}
