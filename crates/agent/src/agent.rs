//! The agent's loop: register the Node, renew its Lease, watch the pods
//! bound to the node (an informer on `spec.nodeName`), and reconcile.
//!
//! Reconciling is level-triggered and runs on one thread of its own,
//! because the engine client is blocking: on every pod change, and once a
//! second regardless, each pod is synced on the engine ([`Runtime::sync`])
//! and its status written back when it changed; a pod being deleted has
//! its containers stopped within its grace period, then is deleted for
//! good; containers of pods the API no longer binds here are removed.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cais_kube::{Api, DeleteParams, Informer, ListParams, Patch, Store};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::node::{self, Machine};
use crate::pod::Sources;
use crate::runtime::{self, Runtime};

/// How often the Lease is renewed and the Node's conditions refreshed.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// How often every pod is looked at even without a change.
const RESYNC: Duration = Duration::from_secs(1);

/// What the agent runs with.
#[derive(Clone, Debug)]
pub struct Options {
    pub runtime: runtime::Config,
    /// The engine's socket (`unix:///run/cais.sock`).
    pub engine_host: String,
    /// Where to serve the API server (`pods/log`); port 0 picks one.
    pub listen: std::net::SocketAddr,
    /// The cluster CA, which signs the API server's client certificate;
    /// without it the agent serves nothing.
    pub ca_pem: Option<Vec<u8>>,
}

fn kube_error(what: impl Into<String>) -> impl FnOnce(cais_kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Kube {
        what,
        source: Box::new(source),
    }
}

/// Runs the agent until `shutdown` resolves. Waits for the engine and the
/// API server while either does not answer.
pub async fn run(
    kube: cais_kube::Client,
    opts: Options,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    tokio::pin!(shutdown);
    let node_name = opts.runtime.node.clone();
    let engine = cais_client::Client::new(&opts.engine_host).map_err(|source| Error::Engine {
        what: format!("engine address {}", opts.engine_host),
        source,
    })?;
    let mut runtime = Runtime::new(engine, opts.runtime.clone());
    // The engine may start after the agent: wait for it.
    let mut told = false;
    let (runtime, subnet, version) = loop {
        let prepared = tokio::task::spawn_blocking(move || {
            let r = runtime.prepare().and_then(|subnet| {
                let version: Value =
                    runtime
                        .engine()
                        .get("/version")
                        .map_err(|source| Error::Engine {
                            what: "asking the engine's version".into(),
                            source,
                        })?;
                Ok((
                    subnet,
                    version["Version"].as_str().unwrap_or("unknown").to_string(),
                ))
            });
            (runtime, r)
        })
        .await
        .map_err(|e| Error::Io {
            what: "preparing the engine".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        runtime = prepared.0;
        match prepared.1 {
            Ok((subnet, version)) => break (runtime, subnet, version),
            Err(e) => {
                // Said once at warning level: a server without an engine
                // is a normal way to run (the API alone).
                if !told {
                    tracing::warn!(engine = %opts.engine_host, error = %e, "the engine is not ready; retrying every 2 s");
                    told = true;
                } else {
                    tracing::debug!(engine = %opts.engine_host, error = %e, "the engine is not ready");
                }
                tokio::select! {
                    _ = &mut shutdown => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    };

    let mut port = 0;
    let mut serving = None;
    match &opts.ca_pem {
        Some(ca) => {
            let names = vec![
                node_name.clone(),
                opts.runtime.host_ip.clone(),
                "127.0.0.1".into(),
            ];
            let config = crate::server::tls_config(ca, names)?;
            let (listener, taken) = crate::server::bind(opts.listen).await?;
            port = taken;
            serving = Some(tokio::spawn(crate::server::serve(
                listener,
                config,
                opts.engine_host.clone(),
                node_name.clone(),
            )));
            tracing::info!(port, "serving the API server (logs)");
        }
        None => tracing::warn!("no cluster CA: the agent serves no logs"),
    }
    let machine = Machine::detect();
    let object = node::node(
        &node_name,
        &machine,
        &opts.runtime.host_ip,
        &subnet,
        &version,
        port,
    );
    loop {
        match register(&kube, &object).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(node = %node_name, error = %e, "registering the node; retrying");
                tokio::select! {
                    _ = &mut shutdown => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    }
    tracing::info!(node = %node_name, pod_cidr = %subnet, "node registered");

    let heartbeat = tokio::spawn(heartbeat(kube.clone(), node_name.clone()));
    let mut informer = Informer::new(
        Api::<Pod>::all(kube.clone()),
        ListParams::fields(&format!("spec.nodeName={node_name}")),
    );
    let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
    informer.on_change(move |_, _| {
        let _ = wake.try_send(());
    });
    let store = informer.store();
    let watching = informer.spawn();
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let stop = stop.clone();
        let handle = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name("agent-pods".into())
            .spawn(move || reconcile(runtime, store, kube, handle, woken, stop))
            .map_err(|source| Error::Io {
                what: "starting the pod worker".into(),
                source,
            })?
    };
    shutdown.await;
    stop.store(true, Ordering::SeqCst);
    watching.abort();
    heartbeat.abort();
    if let Some(s) = serving {
        s.abort();
    }
    let _ = tokio::task::spawn_blocking(move || worker.join()).await;
    Ok(())
}

/// Creates the Node (or finds it there from an earlier run) and writes
/// its status.
async fn register(kube: &cais_kube::Client, object: &Node) -> Result<()> {
    let nodes = Api::<Node>::all(kube.clone());
    let name = object.metadata.name.clone().unwrap_or_default();
    match nodes.create(object).await {
        Ok(_) => {}
        Err(e) if e.is_already_exists() => {}
        Err(e) => return Err(kube_error(format!("creating node {name}"))(e)),
    }
    let status = serde_json::to_value(&object.status).unwrap_or_default();
    nodes
        .patch_status(&name, &Patch::Merge(json!({"status": status})))
        .await
        .map_err(kube_error(format!("writing the status of node {name}")))?;
    Ok(())
}

/// Renews the Lease and refreshes the Node's conditions, forever.
async fn heartbeat(kube: cais_kube::Client, node_name: String) {
    let leases = Api::<Lease>::namespaced(kube.clone(), "kube-node-lease");
    let nodes = Api::<Node>::all(kube);
    let mut ready_since = None;
    loop {
        let renewed = match leases.get_opt(&node_name).await {
            Ok(Some(old)) => {
                leases
                    .replace(&node_name, &node::lease(&node_name, Some(old)))
                    .await
            }
            Ok(None) => leases.create(&node::lease(&node_name, None)).await,
            Err(e) => Err(e),
        };
        if let Err(e) = renewed {
            tracing::warn!(node = %node_name, error = %e, "renewing the node's lease");
        }
        let conditions = node::conditions(ready_since.clone());
        ready_since = conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .and_then(|c| c.last_transition_time.clone());
        let patch = Patch::Merge(json!({"status": {"conditions": conditions}}));
        if let Err(e) = nodes.patch_status(&node_name, &patch).await {
            tracing::warn!(node = %node_name, error = %e, "refreshing the node's status");
        }
        tokio::time::sleep(HEARTBEAT).await;
    }
}

/// The config maps and secrets `pod` names, as they are now (one that
/// cannot be read is left out, and the pod's status says so).
async fn sources(kube: &cais_kube::Client, ns: &str, pod: &Pod) -> Sources {
    let (maps, secrets) = Sources::wanted(pod);
    let mut out = Sources::default();
    let config_maps = Api::<ConfigMap>::namespaced(kube.clone(), ns);
    for name in maps {
        match config_maps.get_opt(&name).await {
            Ok(Some(c)) => {
                let mut data: std::collections::BTreeMap<String, Vec<u8>> = c
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.into_bytes()))
                    .collect();
                for (k, v) in c.binary_data.unwrap_or_default() {
                    data.insert(k, v.0);
                }
                out.config_maps.insert(name, data);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(namespace = %ns, config_map = %name, error = %e, "reading a config map")
            }
        }
    }
    let secret_api = Api::<Secret>::namespaced(kube.clone(), ns);
    for name in secrets {
        match secret_api.get_opt(&name).await {
            Ok(Some(s)) => {
                let mut data: std::collections::BTreeMap<String, Vec<u8>> = s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect();
                for (k, v) in s.string_data.unwrap_or_default() {
                    data.insert(k, v.into_bytes());
                }
                out.secrets.insert(name, data);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(namespace = %ns, secret = %name, error = %e, "reading a secret")
            }
        }
    }
    out
}

/// Seconds left of a deleted pod's grace period.
fn grace_left(pod: &Pod) -> i64 {
    let Some(at) = &pod.metadata.deletion_timestamp else {
        return 0;
    };
    (at.0.as_second() - jiff::Timestamp::now().as_second()).max(0)
}

/// The worker thread: syncs every bound pod on each wake-up or second.
fn reconcile(
    mut runtime: Runtime,
    store: Arc<Store<Pod>>,
    kube: cais_kube::Client,
    handle: tokio::runtime::Handle,
    woken: std::sync::mpsc::Receiver<()>,
    stop: Arc<AtomicBool>,
) {
    // What was last written per pod UID, so an unchanged status is not
    // written again while the cache has not caught up.
    let mut written: HashMap<String, Value> = HashMap::new();
    while !stop.load(Ordering::SeqCst) {
        let _ = woken.recv_timeout(RESYNC);
        if !store.has_synced() {
            continue;
        }
        let pods = store.list();
        let mut bound = HashSet::new();
        for pod in pods {
            let (Some(uid), Some(name)) = (pod.metadata.uid.clone(), pod.metadata.name.clone())
            else {
                continue;
            };
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let api = Api::<Pod>::namespaced(kube.clone(), &ns);
            bound.insert(uid.clone());
            if pod.metadata.deletion_timestamp.is_some() {
                if let Err(e) = runtime.kill(&uid, grace_left(&pod)) {
                    tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "stopping a deleted pod");
                    continue;
                }
                let params = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(cais_kube::api::Preconditions {
                        uid: Some(uid.clone()),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                match handle.block_on(api.delete(&name, &params)) {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => {
                        tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "deleting a stopped pod")
                    }
                }
                written.remove(&uid);
                continue;
            }
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            if matches!(phase, Some("Succeeded" | "Failed")) {
                // Terminal: nothing runs again, whatever the engine holds.
                continue;
            }
            let sources = handle.block_on(sources(&kube, &ns, &pod));
            let status = match runtime.sync(&pod, &sources) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "syncing a pod");
                    continue;
                }
            };
            let new = serde_json::to_value(&status).unwrap_or_default();
            let old = serde_json::to_value(&pod.status).unwrap_or_default();
            if new == old || written.get(&uid) == Some(&new) {
                continue;
            }
            match handle.block_on(api.patch_status(&name, &Patch::Merge(json!({"status": new})))) {
                Ok(_) => {
                    written.insert(uid, new);
                }
                Err(e) => {
                    tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "writing a pod's status")
                }
            }
        }
        written.retain(|uid, _| bound.contains(uid));
        // Containers of pods no longer bound here (deleted while the agent
        // was away, or bound elsewhere) go.
        match runtime.pods() {
            Ok(engine_pods) => {
                for uid in engine_pods.keys().filter(|u| !bound.contains(*u)) {
                    if let Err(e) = runtime.kill(uid, 0) {
                        tracing::warn!(uid = %uid, error = %e, "removing the containers of a pod gone");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "listing the engine's pods"),
        }
    }
}
