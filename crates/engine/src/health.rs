//! Health checks (`HEALTHCHECK` / `--health-cmd`): the test runs in the
//! container through the runtime's exec at each interval; `retries`
//! consecutive failures make the container unhealthy.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cais_api::{Health, HealthLog};

use crate::engine::Engine;

const SECOND: i64 = 1_000_000_000;

pub fn spawn(engine: Arc<Engine>, id: String) {
    std::thread::spawn(move || run(&engine, &id));
}

fn run(engine: &Engine, id: &str) {
    let Ok(rec) = engine.record(id) else { return };
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
    let retries = if check.retries > 0 {
        check.retries as i64
    } else {
        3
    };
    let started = Instant::now();
    let mut health = Health {
        status: "starting".into(),
        failing_streak: 0,
        log: Vec::new(),
    };
    let started_at = rec.state.started_at.clone();
    loop {
        std::thread::sleep(interval);
        match engine.record(id) {
            Ok(r) if r.state.running && r.state.started_at == started_at => {}
            _ => return,
        }
        let begin = cais_runtime::state::rfc3339(std::time::SystemTime::now());
        let (code, output) = probe(engine, id, &args, timeout);
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
        engine.set_health(id, health.clone());
    }
}

fn probe(engine: &Engine, id: &str, args: &[String], timeout: Duration) -> (i64, String) {
    let mut cmd = std::process::Command::new(&engine.cfg.binary);
    cmd.args(["runtime", "--root"])
        .arg(engine.cfg.exec_root.join("runtime"))
        .arg("exec")
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
