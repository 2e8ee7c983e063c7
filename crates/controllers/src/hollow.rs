//! Hollow nodes: simulated nodes for tests and benchmarks. Each registers
//! a Node (4 CPUs, 16Gi, 110 pods, Ready), renews its Lease in
//! `kube-node-lease` and refreshes its Ready condition, and moves the pods
//! bound to it to Running (Ready, with an IP) without any container; a pod
//! being deleted is finished at once, as a kubelet does once its
//! containers are gone. A pod that is not restarted (`restartPolicy`
//! `Never` or `OnFailure`) runs to completion: once Running it becomes
//! Succeeded, every container terminated with exit code 0.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use cais_kube::{Api, Client, DeleteParams, Informer, ListParams, Patch, WorkQueue};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::json;

/// How often Leases are renewed (the kubelet's default is 10 s).
const RENEW: Duration = Duration::from_secs(10);

/// `count` nodes named `{prefix}-{i}`.
#[derive(Clone, Debug)]
pub struct Options {
    pub count: usize,
    pub prefix: String,
}

fn node_object(name: &str, index: usize) -> serde_json::Value {
    let now = jiff::Timestamp::now().to_string();
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64", "cais.dev/hollow": "true",
        }},
        "spec": {},
        "status": {
            "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
            "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"},
            "conditions": conditions(&now),
            "addresses": [
                {"type": "InternalIP", "address": format!("10.200.{}.{}", index / 250, index % 250 + 1)},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.32.0-hollow", "containerRuntimeVersion": "cais://hollow",
                "operatingSystem": "linux", "architecture": "amd64", "osImage": "hollow",
                "kernelVersion": "", "kubeProxyVersion": "", "machineID": "", "systemUUID": "", "bootID": "",
            },
        },
    })
}

fn conditions(now: &str) -> serde_json::Value {
    let c = |t: &str, status: &str, reason: &str| {
        json!({"type": t, "status": status, "reason": reason, "message": reason,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    json!([
        c("Ready", "True", "KubeletReady"),
        c("MemoryPressure", "False", "KubeletHasSufficientMemory"),
        c("DiskPressure", "False", "KubeletHasNoDiskPressure"),
        c("PIDPressure", "False", "KubeletHasSufficientPID"),
    ])
}

async fn register(client: &Client, name: &str, index: usize) -> cais_kube::Result<()> {
    let nodes = Api::<Node>::all(client.clone());
    let node: Node =
        serde_json::from_value(node_object(name, index)).map_err(|e| cais_kube::Error::Encode {
            path: name.to_string(),
            reason: e.to_string(),
        })?;
    match nodes.create(&node).await {
        Ok(_) => {}
        Err(e) if e.is_already_exists() => {}
        Err(e) => return Err(e),
    }
    // Status is written through its subresource (creation may drop it).
    let status = json!({"status": node_object(name, index)["status"]});
    nodes.patch_status(name, &Patch::Merge(status)).await?;
    Ok(())
}

async fn heartbeat(client: &Client, name: &str) -> cais_kube::Result<()> {
    let now = jiff::Timestamp::now();
    let leases = Api::<Lease>::namespaced(client.clone(), "kube-node-lease");
    let micro = now.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": micro},
    });
    let body = Patch::Apply {
        manager: "cais-hollow".into(),
        force: true,
        body: lease,
    };
    leases.patch(name, &body).await?;
    let status = json!({"status": {"conditions": conditions(&now.to_string())}});
    Api::<Node>::all(client.clone())
        .patch_status(name, &Patch::Strategic(status))
        .await?;
    Ok(())
}

/// Registers the nodes, then keeps them alive and runs their pods until
/// the task is aborted.
pub async fn run(client: Client, options: Options) -> cais_kube::Result<()> {
    let names: Vec<String> = (0..options.count)
        .map(|i| format!("{}-{i}", options.prefix))
        .collect();
    for (i, name) in names.iter().enumerate() {
        register(&client, name, i).await?;
    }
    tracing::info!(count = names.len(), "hollow nodes registered");
    let ours: Arc<HashSet<String>> = Arc::new(names.iter().cloned().collect());
    {
        let client = client.clone();
        let names = names.clone();
        tokio::spawn(async move {
            loop {
                for name in &names {
                    if let Err(e) = heartbeat(&client, name).await {
                        tracing::warn!(node = %name, error = %e, "renewing the lease");
                    }
                }
                tokio::time::sleep(RENEW).await;
            }
        });
    }
    let queue = WorkQueue::new();
    let mut pods = Informer::new(Api::<Pod>::all(client.clone()), ListParams::default());
    {
        let queue = queue.clone();
        let ours = ours.clone();
        pods.on_change(move |_, new| {
            if let Some(p) = new {
                let node = p
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .unwrap_or("");
                if ours.contains(node) {
                    queue.add(cais_kube::key(p));
                }
            }
        });
    }
    let store = pods.store();
    let informer = pods.spawn();
    // Several workers, so a thousand pods do not wait on one connection.
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (queue, store, client) = (queue.clone(), store.clone(), client.clone());
        workers.push(tokio::spawn(async move {
            while let Some(key) = queue.get().await {
                if let Some(pod) = store.get(&key) {
                    match sync_pod(&client, &pod).await {
                        Ok(()) => queue.forget(&key),
                        Err(e) if e.is_not_found() => queue.forget(&key),
                        Err(e) => {
                            tracing::warn!(pod = %key, error = %e, "running a hollow pod");
                            queue.add_rate_limited(key.clone());
                        }
                    }
                }
                queue.done(&key);
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    informer.abort();
    Ok(())
}

/// Moves one pod on: finishes its deletion, or reports it Running.
async fn sync_pod(client: &Client, pod: &Pod) -> cais_kube::Result<()> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let api = Api::<Pod>::namespaced(client.clone(), ns);
    if pod.metadata.deletion_timestamp.is_some() {
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(cais_kube::api::Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        api.delete(name, &params).await?;
        return Ok(());
    }
    let status = pod.status.as_ref();
    match status.and_then(|s| s.phase.as_deref()) {
        Some("Succeeded" | "Failed") => return Ok(()),
        Some("Running") if runs_to_completion(pod) => return complete(&api, pod, name).await,
        Some("Running") => return Ok(()),
        _ => {}
    }
    let now = jiff::Timestamp::now().to_string();
    let uid = pod.metadata.uid.as_deref().unwrap_or("");
    // A stable address per pod, from its uid.
    let h = uid
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
    let ip = format!(
        "10.{}.{}.{}",
        64 + (h >> 16) % 64,
        (h >> 8) % 256,
        h % 254 + 1
    );
    let containers: Vec<serde_json::Value> = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .map(|c| {
            json!({
                "name": c.name, "image": c.image, "imageID": "", "ready": true, "started": true,
                "restartCount": 0, "state": {"running": {"startedAt": now}},
                "containerID": format!("hollow://{uid}-{}", c.name),
            })
        })
        .collect();
    let cond = |t: &str| json!({"type": t, "status": "True", "lastProbeTime": null, "lastTransitionTime": now});
    let patch = json!({"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "10.200.0.1", "startTime": now,
        "conditions": [cond("Initialized"), cond("Ready"), cond("ContainersReady"), cond("PodScheduled")],
        "containerStatuses": containers,
    }});
    api.patch_status(name, &Patch::Merge(patch)).await?;
    Ok(())
}

fn runs_to_completion(pod: &Pod) -> bool {
    matches!(
        pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()),
        Some("Never" | "OnFailure")
    )
}

/// Reports a running pod finished: Succeeded, not ready, its containers
/// terminated with exit code 0.
async fn complete(api: &Api<Pod>, pod: &Pod, name: &str) -> cais_kube::Result<()> {
    let now = jiff::Timestamp::now().to_string();
    let uid = pod.metadata.uid.as_deref().unwrap_or("");
    let containers: Vec<serde_json::Value> = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .map(|c| {
            json!({
                "name": c.name, "image": c.image, "imageID": "", "ready": false, "started": false,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": now}},
                "containerID": format!("hollow://{uid}-{}", c.name),
            })
        })
        .collect();
    let cond = |t: &str, s: &str| json!({"type": t, "status": s, "lastProbeTime": null, "lastTransitionTime": now});
    let patch = json!({"status": {
        "phase": "Succeeded",
        "conditions": [cond("Initialized", "True"), cond("Ready", "False"),
                       cond("ContainersReady", "False"), cond("PodScheduled", "True")],
        "containerStatuses": containers,
    }});
    api.patch_status(name, &Patch::Merge(patch)).await?;
    Ok(())
}
