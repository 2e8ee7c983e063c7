//! The daemon's log: `cais daemon --log-level LEVEL --log-format text|json`
//! writes the libraries' `tracing` events to stderr.
//!
//! Needs root (the daemon sets up networking); a missing one fails under
//! `CI` and skips the test otherwise.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CAIS: &str = env!("CARGO_BIN_EXE_cais");

/// Starts `cais daemon` under `dir` with `flags`, waits until it serves,
/// stops it with SIGTERM and returns what it wrote on stderr.
fn daemon_log(dir: &Path, flags: &[&str]) -> String {
    let socket = dir.join("api.sock");
    let log = dir.join("daemon.log");
    let mut child = Command::new(CAIS)
        .arg("daemon")
        .arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .arg("--data-root")
        .arg(dir.join("root"))
        .arg("--exec-root")
        .arg(dir.join("run"))
        .args(flags)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start the daemon");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the daemon did not come up: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(term.success());
    let status = child.wait().expect("wait for the daemon");
    assert!(status.success(), "the daemon exited with {status}");
    std::fs::read_to_string(&log).expect("read the log")
}

fn root() -> bool {
    // SAFETY: geteuid takes nothing, touches no memory and cannot fail.
    cais_testkit::require("running as root", unsafe { libc::geteuid() } == 0)
}

fn tempdir() -> tempfile::TempDir {
    // Short paths: unix socket names are limited to 108 bytes.
    tempfile::Builder::new()
        .prefix("cl")
        .tempdir_in("/tmp")
        .expect("tempdir")
}

#[test]
fn json_format_writes_one_object_per_line_with_the_fields_at_the_top() {
    if !root() {
        return;
    }
    let dir = tempdir();
    let log = daemon_log(
        dir.path(),
        &["--log-format", "json", "--log-level", "debug"],
    );
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?} is not JSON: {e}")))
        .collect();
    let serving = lines
        .iter()
        .find(|v| v["message"] == "serving the Docker Engine API")
        .unwrap_or_else(|| panic!("no serving event in {log}"));
    assert_eq!(serving["level"], "INFO");
    let socket = dir.path().join("api.sock");
    assert_eq!(serving["socket"], socket.to_string_lossy().as_ref());
    assert!(serving["timestamp"].is_string());
}

#[test]
fn text_format_and_the_level_filter() {
    if !root() {
        return;
    }
    let dir = tempdir();
    let info = daemon_log(dir.path(), &[]);
    let line = info
        .lines()
        .find(|l| l.contains("serving the Docker Engine API"))
        .unwrap_or_else(|| panic!("no serving line in {info}"));
    assert!(line.contains("INFO"), "{line}");
    assert!(line.contains("socket="), "{line}");
    assert!(!line.starts_with('{'), "{line}");

    let dir = tempdir();
    let errors_only = daemon_log(dir.path(), &["--log-level", "error"]);
    assert!(
        !errors_only.contains("serving the Docker Engine API"),
        "an info event passed --log-level error: {errors_only}"
    );
}

#[test]
fn a_bad_log_level_is_a_usage_error() {
    let out = Command::new(CAIS)
        .args(["daemon", "--log-level", "loud"])
        .output()
        .expect("run cais");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error, warn, info, debug, trace"),
        "{stderr}"
    );
}
