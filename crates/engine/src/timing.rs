//! Where an operation's time goes: `Steps` notes the end of each step of
//! a container operation (create, start, exit, remove) and logs them all
//! in one debug event when the operation ends, so a daemon run with
//! `--log-level debug` shows its hot paths phase by phase. Nothing is
//! measured or kept when debug logging is off.

use std::fmt::Write;
use std::time::Instant;

/// The steps of one operation on one container.
pub(crate) struct Steps {
    op: &'static str,
    id: String,
    start: Instant,
    last: Instant,
    /// `name=µs` pairs, or None when debug events are not wanted.
    steps: Option<String>,
}

impl Steps {
    pub(crate) fn new(op: &'static str, id: &str) -> Steps {
        let now = Instant::now();
        let on = tracing::enabled!(tracing::Level::DEBUG);
        Steps {
            op,
            id: if on { id.to_string() } else { String::new() },
            start: now,
            last: now,
            steps: on.then(String::new),
        }
    }

    /// The step `name` ended now.
    pub(crate) fn step(&mut self, name: &str) {
        if let Some(s) = &mut self.steps {
            let now = Instant::now();
            let _ = write!(s, " {name}={}", (now - self.last).as_micros());
            self.last = now;
        }
    }
}

impl Drop for Steps {
    fn drop(&mut self) {
        if let Some(s) = &self.steps {
            tracing::debug!(
                container = %self.id,
                op = self.op,
                total_us = self.start.elapsed().as_micros() as u64,
                steps = %s.trim_start(),
                "timing"
            );
        }
    }
}
