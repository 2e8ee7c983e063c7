//! Builds by their ref (the `Ref` of a Control `Solve`): the progress
//! their `Status` streams replay and follow, and, for a client that runs
//! its own build function, what its gateway calls asked for and returned.
//!
//! `Status` may ask for a ref before the `Solve` arrives, and gateway calls
//! come on the side, so either creates the job. A finished job is kept a
//! minute for a late `Status`, then swept.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

use crate::proto::control::StatusResponse;
use crate::proto::gateway::ReturnRequest;
use crate::Error;

/// A frontend request a client's build function made through the gateway;
/// run when its result is exported.
#[derive(Debug, Clone)]
pub(crate) struct FrontendRequest {
    pub frontend: String,
    pub attrs: BTreeMap<String, String>,
}

#[derive(Default)]
struct State {
    events: Vec<StatusResponse>,
    done: bool,
    finished: Option<Instant>,
    /// A Solve has taken this ref.
    solving: bool,
    /// The build runs a client's build function: gateway calls are expected.
    gateway: bool,
    requests: HashMap<String, FrontendRequest>,
    returned: Option<oneshot::Sender<ReturnRequest>>,
}

pub(crate) struct Job {
    pub id: String,
    state: Mutex<State>,
    /// Bumped on every change; `Status` and gateway calls wait on it.
    changed: watch::Sender<u64>,
    created: Instant,
}

impl Job {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Adds a progress update for the job's `Status` streams.
    pub fn publish(&self, event: StatusResponse) {
        self.lock().events.push(event);
        self.bump();
    }

    /// The events from `from` on, and whether the job has finished.
    fn events_from(&self, from: usize) -> (Vec<StatusResponse>, bool) {
        let s = self.lock();
        (s.events.get(from..).unwrap_or_default().to_vec(), s.done)
    }

    /// Follows the job's progress: every event so far, then new ones, until
    /// it finishes (or the reader goes).
    pub fn follow(self: Arc<Self>) -> tokio_stream::wrappers::ReceiverStream<StatusResponse> {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let mut changed = self.changed.subscribe();
        tokio::spawn(async move {
            let mut next = 0;
            loop {
                // Seen before reading, so a change after the read wakes us.
                changed.borrow_and_update();
                let (events, done) = self.events_from(next);
                next += events.len();
                for e in events {
                    if tx.send(e).await.is_err() {
                        return;
                    }
                }
                if done {
                    return;
                }
                tokio::select! {
                    r = changed.changed() => if r.is_err() { return },
                    _ = tx.closed() => return,
                }
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(rx)
    }

    /// Expects the client's build function: gateway calls may proceed, and
    /// the receiver gets what it returns.
    pub fn expect_gateway(&self) -> oneshot::Receiver<ReturnRequest> {
        let (tx, rx) = oneshot::channel();
        {
            let mut s = self.lock();
            s.gateway = true;
            s.returned = Some(tx);
        }
        self.bump();
        rx
    }

    /// Waits (up to `wait`) until the job's Solve said it runs a client's
    /// build function.
    pub async fn gateway_ready(&self, wait: Duration) -> Result<(), Error> {
        let mut rx = self.changed.subscribe();
        let ready = async {
            loop {
                {
                    let s = self.lock();
                    if s.gateway && !s.done {
                        return Ok(());
                    }
                    if s.done {
                        return Err(Error::invalid(format!("build {} has ended", self.id)));
                    }
                }
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(wait, ready)
            .await
            .map_err(|_| Error::NotFound {
                what: format!("build {:?}", self.id),
            })?
    }

    /// Records a gateway request; returns the reference it is known by.
    pub fn add_request(&self, req: FrontendRequest) -> String {
        let mut s = self.lock();
        let id = format!("{}-result-{}", self.id, s.requests.len());
        s.requests.insert(id.clone(), req);
        id
    }

    pub fn request(&self, id: &str) -> Option<FrontendRequest> {
        self.lock().requests.get(id).cloned()
    }

    /// The client's build function returned.
    pub fn give_return(&self, r: ReturnRequest) -> Result<(), Error> {
        let tx = self
            .lock()
            .returned
            .take()
            .ok_or_else(|| Error::invalid(format!("build {} already returned", self.id)))?;
        tx.send(r)
            .map_err(|_| Error::invalid(format!("build {} is no longer waiting", self.id)))
    }

    /// Ends the job: `Status` streams finish once they have sent everything.
    pub fn finish(&self) {
        {
            let mut s = self.lock();
            s.done = true;
            s.finished = Some(Instant::now());
            s.returned = None;
        }
        self.bump();
    }
}

/// Every job, by ref.
#[derive(Default)]
pub(crate) struct Jobs {
    map: Mutex<HashMap<String, Arc<Job>>>,
}

/// How long a finished job stays for a late `Status`.
const KEEP_FINISHED: Duration = Duration::from_secs(60);
/// How long a job nobody solved stays (a `Status` for a ref that never came).
const KEEP_UNSOLVED: Duration = Duration::from_secs(600);

impl Jobs {
    /// The job `id`, created if new.
    pub fn get(&self, id: &str) -> Arc<Job> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, j| {
            let s = j.lock();
            match s.finished {
                Some(t) => t.elapsed() < KEEP_FINISHED,
                None => s.solving || j.created.elapsed() < KEEP_UNSOLVED,
            }
        });
        map.entry(id.to_string())
            .or_insert_with(|| {
                Arc::new(Job {
                    id: id.to_string(),
                    state: Mutex::default(),
                    changed: watch::channel(0).0,
                    created: Instant::now(),
                })
            })
            .clone()
    }

    /// Takes `id` for a Solve; a ref already solving or solved is refused.
    pub fn begin(&self, id: &str) -> Result<Arc<Job>, Error> {
        if id.is_empty() {
            return Err(Error::invalid("a solve needs a Ref"));
        }
        let job = self.get(id);
        {
            let mut s = job.lock();
            if s.solving || s.done {
                return Err(Error::invalid(format!(
                    "build ref {id:?} is already in use"
                )));
            }
            s.solving = true;
        }
        Ok(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    fn event(name: &str) -> StatusResponse {
        StatusResponse {
            vertexes: vec![crate::proto::control::Vertex {
                name: name.into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn status_replays_then_follows_until_the_end() {
        let jobs = Jobs::default();
        let job = jobs.begin("r1").expect("begin");
        job.publish(event("a"));
        let follower = jobs.get("r1").follow();
        let j = job.clone();
        let t = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            j.publish(event("b"));
            j.finish();
        });
        let names: Vec<String> = follower.map(|e| e.vertexes[0].name.clone()).collect().await;
        t.await.expect("join");
        assert_eq!(names, ["a", "b"]);
        assert!(jobs.begin("r1").is_err(), "a ref is solved once");
    }

    #[tokio::test]
    async fn gateway_calls_wait_for_their_solve() {
        let jobs = Jobs::default();
        let early = jobs.get("r2");
        let waiter = tokio::spawn(async move { early.gateway_ready(Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let job = jobs.begin("r2").expect("begin");
        let rx = job.expect_gateway();
        waiter.await.expect("join").expect("ready");
        job.give_return(ReturnRequest::default()).expect("return");
        rx.await.expect("returned");
        assert!(job.give_return(ReturnRequest::default()).is_err());
        let e = jobs
            .get("nobody")
            .gateway_ready(Duration::from_millis(10))
            .await
            .expect_err("never solved");
        assert!(e.to_string().contains("not found"), "{e}");
    }
}
