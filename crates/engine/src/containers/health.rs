//! Health checks (`HEALTHCHECK` / `--health-cmd`): one thread per running
//! container with a check runs the test in the container through the
//! runtime's exec at each interval; `retries` consecutive failures make the
//! container unhealthy. Results go to the container's state in the table;
//! the thread ends when the container stops or starts again.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cais_api::{Health, HealthLog};

use crate::config::Config;
use crate::containers::state::Change;
use crate::containers::table::Table;

const SECOND: i64 = 1_000_000_000;

/// Whether a health check config has a test to run.
pub(crate) fn has_test(h: &cais_api::HealthConfig) -> bool {
    h.test
        .as_ref()
        .is_some_and(|t| !t.is_empty() && t[0] != "NONE")
}

/// Checks container `id` until it stops (or starts again).
pub(crate) fn spawn(table: Arc<Table>, cfg: Config, id: String) {
    std::thread::spawn(move || run(&table, &cfg, &id));
}

fn run(table: &Table, cfg: &Config, id: &str) {
    let Ok(rec) = table.get(id) else { return };
    let Some(check) = rec.config.healthcheck.clone() else {
        return;
    };
    let Some(test) = check.test.clone() else {
        return;
    };
    let args: Vec<String> = match test.first().map(String::as_str) {
        Some("CMD") => test[1..].to_vec(),
        Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), test[1..].join(" ")],
        _ => return,
    };
    let interval = Duration::from_nanos(if check.interval > 0 {
        check.interval
    } else {
        30 * SECOND
    } as u64);
    let timeout = Duration::from_nanos(if check.timeout > 0 {
        check.timeout
    } else {
        30 * SECOND
    } as u64);
    let start_period = Duration::from_nanos(check.start_period.max(0) as u64);
    // Checks come this often while the start period lasts, when set.
    let start_interval = Duration::from_nanos(check.start_interval.max(0) as u64);
    let retries = if check.retries > 0 { check.retries } else { 3 };
    let started = Instant::now();
    let mut health = Health {
        status: "starting".into(),
        failing_streak: 0,
        log: Vec::new(),
    };
    let started_at = rec.state.started_at().to_string();
    loop {
        if !start_interval.is_zero() && started.elapsed() < start_period {
            std::thread::sleep(start_interval);
        } else {
            std::thread::sleep(interval);
        }
        match table.get(id) {
            Ok(r) if r.state.is_running() && r.state.started_at() == started_at => {}
            _ => return,
        }
        let begin = cais_runtime::state::rfc3339(std::time::SystemTime::now());
        let (code, output) = probe(cfg, id, &args, timeout);
        let end = cais_runtime::state::rfc3339(std::time::SystemTime::now());
        health.log.push(HealthLog {
            start: begin,
            end,
            exit_code: code,
            output,
        });
        if health.log.len() > 5 {
            health.log.remove(0);
        }
        if code == 0 {
            health.failing_streak = 0;
            health.status = "healthy".into();
        } else if started.elapsed() >= start_period {
            health.failing_streak += 1;
            if health.failing_streak >= retries {
                health.status = "unhealthy".into();
            }
        }
        // Refused once the process stopped: the next round ends the thread.
        let _ = table.transition(id, Change::HealthChecked(health.clone()));
    }
}

fn probe(cfg: &Config, id: &str, args: &[String], timeout: Duration) -> (i64, String) {
    let mut cmd = cfg.runtime_command();
    cmd.arg("exec")
        .arg(id)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let Ok(mut child) = cmd.spawn() else {
        return (-1, "cannot run the health check".into());
    };
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut out = String::new();
                if let Some(mut o) = child.stdout.take() {
                    use std::io::Read;
                    let _ = o.read_to_string(&mut out);
                }
                return (
                    status.code().unwrap_or(-1) as i64,
                    out.chars().take(4096).collect(),
                );
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return (-1, format!("Health check exceeded timeout ({timeout:?})"));
            }
        }
    }
}
