//! The Job controller: runs pods of the template until `completions` of
//! them have succeeded, at most `parallelism` at a time, then marks the
//! Job `Complete` (after `SuccessCriteriaMet`, as Kubernetes 1.32 does);
//! more than `backoffLimit` failed pods mark it `Failed`. Pods are owned
//! by the Job (controller ownerReference) and carry the labels the API
//! server put on its template.
//!
//! Level-triggered like the ReplicaSet controller, with the same kind of
//! expectations for creations not yet seen.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cais_kube::{Api, Client, DeleteParams, Informer, ListParams, Patch, Store, WorkQueue};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::json;

use crate::replicaset::{controller_of, deletion_rank, is_active, is_ready};

const EXPECTATION_TTL: Duration = Duration::from_secs(30);

/// What the pods of a Job come to.
#[derive(Debug, Default, PartialEq, Clone, Copy)]
pub struct Counts {
    pub active: i32,
    pub succeeded: i32,
    pub failed: i32,
}

/// How the Job stands and how many pods should be running.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Run(i32),
    Complete,
    Failed,
}

/// The verdict for a Job with `completions` (none: any success ends it,
/// once no pod runs), `parallelism`, `backoff_limit` and `suspend`.
pub fn verdict(
    completions: Option<i32>,
    parallelism: i32,
    backoff_limit: i32,
    suspend: bool,
    c: Counts,
) -> Verdict {
    if c.failed > backoff_limit {
        return Verdict::Failed;
    }
    match completions {
        Some(n) if c.succeeded >= n => Verdict::Complete,
        None if c.succeeded > 0 && c.active == 0 => Verdict::Complete,
        _ if suspend => Verdict::Run(0),
        Some(n) => Verdict::Run(parallelism.min(n - c.succeeded).max(0)),
        None if c.succeeded > 0 => Verdict::Run(0),
        None => Verdict::Run(parallelism.max(0)),
    }
}

fn phase(p: &Pod) -> Option<&str> {
    p.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn has_condition(job: &Job, type_: &str) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == type_ && c.status == "True")
}

struct Controller {
    client: Client,
    jobs: Arc<Store<Job>>,
    pods: Arc<Store<Pod>>,
    expectations: Arc<Mutex<HashMap<String, (i64, Instant)>>>,
}

impl Controller {
    fn satisfied(&self, key: &str) -> bool {
        self.expectations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .is_none_or(|(adds, since)| *adds <= 0 || since.elapsed() > EXPECTATION_TTL)
    }

    fn expect(&self, key: &str, adds: i64) {
        let mut all = self.expectations.lock().unwrap_or_else(|p| p.into_inner());
        let e = all.entry(key.to_string()).or_insert((0, Instant::now()));
        e.0 += adds;
        e.1 = Instant::now();
    }

    async fn sync(&self, key: &str) -> cais_kube::Result<()> {
        let Some(job) = self.jobs.get(key) else {
            self.expectations
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(key);
            return Ok(());
        };
        if has_condition(&job, "Complete") || has_condition(&job, "Failed") {
            return Ok(());
        }
        let (ns, name) = cais_kube::split_key(key);
        let uid = job.metadata.uid.as_deref();
        let owned = self.pods.filter(|p| {
            p.metadata.namespace.as_deref() == Some(ns)
                && controller_of(&p.metadata).is_some_and(|o| Some(o.uid.as_str()) == uid)
        });
        let mut active: Vec<&Arc<Pod>> = owned.iter().filter(|p| is_active(p)).collect();
        let counts = Counts {
            active: active.len() as i32,
            succeeded: owned
                .iter()
                .filter(|p| phase(p) == Some("Succeeded"))
                .count() as i32,
            failed: owned.iter().filter(|p| phase(p) == Some("Failed")).count() as i32,
        };
        let spec = job.spec.clone().unwrap_or_default();
        let verdict = verdict(
            spec.completions,
            spec.parallelism.unwrap_or(1),
            spec.backoff_limit.unwrap_or(6),
            spec.suspend == Some(true),
            counts,
        );
        let want = match verdict {
            Verdict::Run(n) => n as usize,
            _ => 0,
        };
        if self.satisfied(key) && job.metadata.deletion_timestamp.is_none() {
            let api = Api::<Pod>::namespaced(self.client.clone(), ns);
            if active.len() < want {
                let n = want - active.len();
                self.expect(key, n as i64);
                let pod = pod_for(&job);
                let mut last = None;
                for _ in 0..n {
                    if let Err(e) = api.create(&pod).await {
                        self.expect(key, -1);
                        last = Some(e);
                    }
                }
                if let Some(e) = last {
                    return Err(e);
                }
            } else if active.len() > want {
                active.sort_by_key(|p| deletion_rank(p));
                for p in active.iter().take(active.len() - want) {
                    let pod = p.metadata.name.as_deref().unwrap_or("");
                    match api.delete(pod, &DeleteParams::default()).await {
                        Err(e) if !e.is_not_found() => return Err(e),
                        _ => {}
                    }
                }
            }
        }
        self.update_status(&job, ns, name, counts, &owned, &verdict)
            .await
    }

    async fn update_status(
        &self,
        job: &Job,
        ns: &str,
        name: &str,
        c: Counts,
        pods: &[Arc<Pod>],
        verdict: &Verdict,
    ) -> cais_kube::Result<()> {
        let ready = pods.iter().filter(|p| is_active(p) && is_ready(p)).count() as i32;
        let now = jiff::Timestamp::now().to_string();
        let old = job.status.clone().unwrap_or_default();
        let mut status = json!({
            "active": c.active,
            "succeeded": c.succeeded,
            "failed": c.failed,
            "ready": ready,
            "startTime": old.start_time.as_ref().map(|t| t.0.to_string()).unwrap_or(now.clone()),
        });
        let cond = |t: &str, reason: &str, message: &str| {
            json!({"type": t, "status": "True", "reason": reason, "message": message,
                   "lastProbeTime": now, "lastTransitionTime": now})
        };
        match verdict {
            Verdict::Complete => {
                status["completionTime"] = json!(now);
                status["conditions"] = json!([
                    cond(
                        "SuccessCriteriaMet",
                        "CompletionsReached",
                        "Reached expected number of succeeded pods"
                    ),
                    cond(
                        "Complete",
                        "CompletionsReached",
                        "Reached expected number of succeeded pods"
                    ),
                ]);
            }
            Verdict::Failed => {
                status["conditions"] = json!([
                    cond(
                        "FailureTarget",
                        "BackoffLimitExceeded",
                        "Job has reached the specified backoff limit"
                    ),
                    cond(
                        "Failed",
                        "BackoffLimitExceeded",
                        "Job has reached the specified backoff limit"
                    ),
                ]);
            }
            Verdict::Run(_) => {
                let same = old.active.unwrap_or(0) == c.active
                    && old.succeeded.unwrap_or(0) == c.succeeded
                    && old.failed.unwrap_or(0) == c.failed
                    && old.ready.unwrap_or(0) == ready
                    && old.start_time.is_some();
                if same {
                    return Ok(());
                }
            }
        }
        let api = Api::<Job>::namespaced(self.client.clone(), ns);
        match api
            .patch_status(name, &Patch::Merge(json!({"status": status})))
            .await
        {
            Err(e) if e.is_not_found() => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

/// A new pod of `job`: its template, a generated name, the controller
/// reference.
fn pod_for(job: &Job) -> Pod {
    let template = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    let mut meta = template.metadata.unwrap_or_default();
    meta.name = None;
    meta.generate_name = Some(format!("{name}-"));
    meta.namespace = job.metadata.namespace.clone();
    meta.owner_references = Some(vec![OwnerReference {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        name,
        uid: job.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    Pod {
        metadata: meta,
        spec: template.spec,
        status: None,
    }
}

fn owner_key(pod: &Pod) -> Option<String> {
    let owner = controller_of(&pod.metadata).filter(|o| o.kind == "Job")?;
    Some(format!(
        "{}/{}",
        pod.metadata.namespace.as_deref()?,
        owner.name
    ))
}

/// Runs the controller with `workers` workers until aborted.
pub async fn run(client: Client, workers: usize) {
    let queue = WorkQueue::new();
    let expectations: Arc<Mutex<HashMap<String, (i64, Instant)>>> = Arc::default();
    let mut jobs = Informer::new(Api::<Job>::all(client.clone()), ListParams::default());
    {
        let queue = queue.clone();
        jobs.on_change(move |_, new| {
            if let Some(j) = new {
                queue.add(cais_kube::key(j));
            }
        });
    }
    let mut pods = Informer::new(Api::<Pod>::all(client.clone()), ListParams::default());
    {
        let queue = queue.clone();
        let expectations = expectations.clone();
        pods.on_change(move |old, new| {
            let Some(key) = new.or(old).and_then(owner_key) else {
                return;
            };
            if old.is_none() {
                let mut all = expectations.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(e) = all.get_mut(&key) {
                    e.0 -= 1;
                }
            }
            queue.add(key);
        });
    }
    let controller = Arc::new(Controller {
        client,
        jobs: jobs.store(),
        pods: pods.store(),
        expectations,
    });
    let tasks = [jobs.spawn(), pods.spawn()];
    controller.jobs.wait_synced().await;
    controller.pods.wait_synced().await;
    crate::work(queue, workers, move |key| {
        let c = controller.clone();
        async move { c.sync(&key).await }
    })
    .await;
    for t in tasks {
        t.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(active: i32, succeeded: i32, failed: i32) -> Counts {
        Counts {
            active,
            succeeded,
            failed,
        }
    }

    #[test]
    fn parallelism_caps_what_runs_and_completions_what_is_left() {
        assert_eq!(
            verdict(Some(5), 2, 6, false, counts(0, 0, 0)),
            Verdict::Run(2)
        );
        assert_eq!(
            verdict(Some(5), 2, 6, false, counts(2, 4, 0)),
            Verdict::Run(1)
        );
        assert_eq!(
            verdict(Some(5), 2, 6, false, counts(0, 5, 0)),
            Verdict::Complete
        );
        assert_eq!(
            verdict(Some(5), 2, 6, true, counts(2, 1, 0)),
            Verdict::Run(0)
        );
    }

    #[test]
    fn without_completions_the_first_success_ends_it_once_none_runs() {
        assert_eq!(verdict(None, 3, 6, false, counts(0, 0, 0)), Verdict::Run(3));
        assert_eq!(verdict(None, 3, 6, false, counts(2, 1, 0)), Verdict::Run(0));
        assert_eq!(
            verdict(None, 3, 6, false, counts(0, 1, 0)),
            Verdict::Complete
        );
    }

    #[test]
    fn failures_past_the_backoff_limit_fail_it() {
        assert_eq!(
            verdict(Some(1), 1, 2, false, counts(1, 0, 2)),
            Verdict::Run(1)
        );
        assert_eq!(
            verdict(Some(1), 1, 2, false, counts(0, 0, 3)),
            Verdict::Failed
        );
    }
}
