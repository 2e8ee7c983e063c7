//! cais' controllers and scheduler: loops that watch the API through
//! informers, queue keys and reconcile level-triggered, talking to the API
//! server only through `cais-kube`. They run inside `cais kube server` or
//! as `cais kube controllers` against any server.
//!
//! Module map:
//! - `scheduler`: filters and scores (pure), placement, `pods/binding`,
//!   the `Unschedulable` condition and events;
//! - `replicaset`: pods for ReplicaSets, with expectations;
//! - `deployment`: ReplicaSets for Deployments (rolling update, recreate,
//!   revisions, history limit, status and conditions);
//! - `daemonset`: one pod per eligible node for DaemonSets (selector,
//!   taints and tolerations, rolling replacement, status);
//! - `job`: pods for Jobs until completions succeed (parallelism,
//!   backoff limit, Complete/Failed conditions);
//! - `hollow`: simulated nodes (Leases, Ready, pods to Running, pods that
//!   are not restarted on to Succeeded);
//! - `quantity`: resource quantities as integers.

pub mod daemonset;
pub mod deployment;
pub mod hollow;
pub mod job;
pub mod quantity;
pub mod replicaset;
pub mod scheduler;

use std::future::Future;

use cais_kube::{Client, WorkQueue};

/// Drains `queue` with `workers` concurrent calls of `sync`; a failed key
/// comes back after its backoff.
pub(crate) async fn work<F, Fut>(queue: WorkQueue, workers: usize, sync: F)
where
    F: Fn(String) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = cais_kube::Result<()>> + Send,
{
    let mut tasks = Vec::new();
    for _ in 0..workers.max(1) {
        let (queue, sync) = (queue.clone(), sync.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(key) = queue.get().await {
                match sync(key.clone()).await {
                    Ok(()) => queue.forget(&key),
                    Err(e) if e.is_conflict() => queue.add_rate_limited(key.clone()),
                    Err(e) => {
                        tracing::warn!(key = %key, error = %e, "reconciling");
                        queue.add_rate_limited(key.clone());
                    }
                }
                queue.done(&key);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Runs the scheduler and every controller until the task is aborted.
pub async fn run_all(client: Client) {
    tokio::join!(
        scheduler::run(client.clone()),
        replicaset::run(client.clone(), 4),
        deployment::run(client.clone(), 4),
        daemonset::run(client.clone(), 2),
        job::run(client.clone(), 2),
    );
}
