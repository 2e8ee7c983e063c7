//! A build's progress as BuildKit clients display it: vertexes (one per
//! step, with start and completion times, cached or failed) and their log
//! lines, published to the job's `Status` streams.
//!
//! The executor reports docker's legacy lines through `cais_build::Progress`
//! (`Step 2/5 : RUN make`, ` ---> Using cache`, command output); [`Steps`]
//! turns each `Step` line into a vertex named the way BuildKit names them
//! (`[2/5] RUN make`), marks it cached on ` ---> Using cache`, and sends
//! output and other lines as its log.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::jobs::Job;
use crate::proto::control::{StatusResponse, Vertex, VertexLog, VertexStatus};

fn now() -> prost_types::Timestamp {
    prost_types::Timestamp::from(SystemTime::now())
}

/// Publishes a job's vertexes.
#[derive(Clone)]
pub(crate) struct Reporter {
    job: Arc<Job>,
    next: Arc<AtomicU32>,
}

/// A started vertex.
#[derive(Clone)]
pub(crate) struct Step {
    digest: String,
    name: String,
    started: prost_types::Timestamp,
}

impl Reporter {
    pub fn new(job: Arc<Job>) -> Reporter {
        Reporter {
            job,
            next: Arc::new(AtomicU32::new(0)),
        }
    }

    fn vertex(&self, v: Vertex) {
        self.job.publish(StatusResponse {
            vertexes: vec![v],
            ..Default::default()
        });
    }

    pub fn start(&self, name: impl Into<String>) -> Step {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let digest = format!(
            "sha256:{:x}",
            Sha256::digest(format!("{}/{n}", self.job.id).as_bytes())
        );
        let step = Step {
            digest,
            name: name.into(),
            started: now(),
        };
        self.vertex(Vertex {
            digest: step.digest.clone(),
            name: step.name.clone(),
            started: Some(step.started),
            ..Default::default()
        });
        step
    }

    fn end(&self, step: &Step, cached: bool, error: String) {
        self.vertex(Vertex {
            digest: step.digest.clone(),
            name: step.name.clone(),
            cached,
            started: Some(step.started),
            completed: Some(now()),
            error,
            ..Default::default()
        });
    }

    pub fn done(&self, step: &Step) {
        self.end(step, false, String::new());
    }

    pub fn cached(&self, step: &Step) {
        self.end(step, true, String::new());
    }

    pub fn failed(&self, step: &Step, error: &str) {
        self.end(step, false, error.to_string());
    }

    /// `stream` 1 is stdout, 2 stderr.
    pub fn log(&self, step: &Step, stream: i64, msg: impl Into<Vec<u8>>) {
        self.job.publish(StatusResponse {
            logs: vec![VertexLog {
                vertex: step.digest.clone(),
                timestamp: Some(now()),
                stream,
                msg: msg.into(),
            }],
            ..Default::default()
        });
    }

    /// A progress counter under a step (`transferring context: 2.1kB`).
    pub fn count(&self, step: &Step, id: &str, current: i64, completed: bool) {
        let t = now();
        self.job.publish(StatusResponse {
            statuses: vec![VertexStatus {
                id: id.to_string(),
                vertex: step.digest.clone(),
                current,
                timestamp: Some(t),
                started: Some(step.started),
                completed: completed.then_some(t),
                ..Default::default()
            }],
            ..Default::default()
        });
    }
}

/// The executor's progress as vertexes (see the module docs).
pub(crate) struct Steps {
    reporter: Reporter,
    current: Option<(Step, bool)>,
}

impl Steps {
    pub fn new(reporter: Reporter) -> Steps {
        Steps {
            reporter,
            current: None,
        }
    }

    fn close(&mut self) {
        if let Some((step, cached)) = self.current.take() {
            if cached {
                self.reporter.cached(&step);
            } else {
                self.reporter.done(&step);
            }
        }
    }

    /// The build ended: the step under way completes, or fails with `error`.
    pub fn finish(mut self, error: Option<&str>) {
        match (error, self.current.take()) {
            (Some(e), Some((step, _))) => self.reporter.failed(&step, e),
            (None, Some(current)) => {
                self.current = Some(current);
                self.close();
            }
            (_, None) => {}
        }
    }
}

/// `Step 2/5 : RUN make` → `[2/5] RUN make`.
fn step_name(line: &str) -> Option<String> {
    let rest = line.strip_prefix("Step ")?;
    let (count, text) = rest.split_once(" : ")?;
    let (n, total) = count.split_once('/')?;
    if n.bytes().all(|b| b.is_ascii_digit()) && total.bytes().all(|b| b.is_ascii_digit()) {
        Some(format!("[{n}/{total}] {text}"))
    } else {
        None
    }
}

impl cais_build::Progress for Steps {
    fn step(&mut self, text: &str) {
        if let Some(name) = step_name(text) {
            self.close();
            self.current = Some((self.reporter.start(name), false));
            return;
        }
        let Some((step, cached)) = self.current.as_mut() else {
            return;
        };
        if text == " ---> Using cache" {
            *cached = true;
        } else if text.starts_with(" ---> ")
            || text.starts_with("Successfully built ")
            || text.starts_with("Successfully tagged ")
            || text.starts_with("Removing intermediate container ")
        {
            // Image ids and container names of the legacy output: the
            // vertex says it all.
        } else {
            let step = step.clone();
            self.reporter.log(&step, 2, format!("{text}\n"));
        }
    }

    fn output(&mut self, bytes: &[u8]) {
        if let Some((step, _)) = &self.current {
            self.reporter.log(step, 1, bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_step_lines_name_vertexes() {
        assert_eq!(
            step_name("Step 2/5 : RUN make && make install").as_deref(),
            Some("[2/5] RUN make && make install")
        );
        assert_eq!(step_name(" ---> Using cache"), None);
        assert_eq!(step_name("Step x/5 : RUN"), None);
        assert_eq!(step_name("Steps 1/2 : FROM a"), None);
    }

    #[test]
    fn steps_become_vertexes_cached_or_not() {
        use cais_build::Progress;
        let jobs = crate::jobs::Jobs::default();
        let job = jobs.begin("p").expect("begin");
        let mut steps = Steps::new(Reporter::new(job.clone()));
        steps.step("Step 1/2 : FROM busybox");
        steps.step(" ---> 0123456789ab");
        steps.step("Step 2/2 : RUN echo hi");
        steps.step(" ---> Using cache");
        steps.output(b"hi\n");
        steps.finish(None);
        job.finish();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let events: Vec<StatusResponse> = rt.block_on(async {
            use tokio_stream::StreamExt;
            job.follow().collect().await
        });
        let done: Vec<(String, bool)> = events
            .iter()
            .flat_map(|e| &e.vertexes)
            .filter(|v| v.completed.is_some())
            .map(|v| (v.name.clone(), v.cached))
            .collect();
        assert_eq!(
            done,
            [
                ("[1/2] FROM busybox".to_string(), false),
                ("[2/2] RUN echo hi".to_string(), true)
            ]
        );
        let logs: Vec<&[u8]> = events
            .iter()
            .flat_map(|e| &e.logs)
            .map(|l| l.msg.as_slice())
            .collect();
        assert_eq!(logs, [b"hi\n".as_slice()]);
    }
}
