//! Real clients of the Docker Engine API from other ecosystems, against a
//! `cais daemon`: the Docker SDK for Python's own integration tests
//! (`tests/sdk/run.sh`, every test but those `tests/sdk/deselected.txt`
//! names with their reasons), and Testcontainers for Python driving an
//! image it builds. Both install from PyPI into virtualenvs under the
//! target directory on first use (Debian's python3 with venv).
//!
//! `cargo xtask sdk-compare` runs the same SDK suite against cais and a
//! real dockerd side by side.

use std::path::{Path, PathBuf};
use std::process::Command;

use cais_testkit::{require, require_root_and_busybox};

const CAIS: &str = env!("CARGO_BIN_EXE_cais");

/// Debian's python3, the one `python3-venv` (TEST_PACKAGES) completes.
const PYTHON: &str = "/usr/bin/python3";

fn ready() -> bool {
    require_root_and_busybox()
        && require(
            "python3 with the venv module (apt-get install python3-venv)",
            Command::new(PYTHON)
                .args(["-c", "import venv, ensurepip"])
                .output()
                .is_ok_and(|o| o.status.success()),
        )
}

/// Where virtualenvs and downloads are kept between runs.
fn work_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-sdk")
}

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk")
}

/// `OUTCOME NODEID` lines (see `sdk/sdk_outcomes.py`), by outcome.
fn outcomes(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(o, id)| (o.to_string(), id.to_string()))
        .collect()
}

#[test]
fn the_docker_sdk_for_python_integration_suite_passes() {
    if !ready() {
        return;
    }
    let d = cais_testkit::daemon::Daemon::start(CAIS, false);
    let results = d.dir.path().join("outcomes.txt");
    let out = Command::new("bash")
        .arg(sdk_dir().join("run.sh"))
        .arg(work_dir())
        .arg(&results)
        .env("DOCKER_HOST", d.host())
        .env("SDK_PYTHON", PYTHON)
        .output()
        .expect("run tests/sdk/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let all = outcomes(&results);
    let count = |o: &str| all.iter().filter(|(x, _)| x == o).count();
    let failing: Vec<&str> = all
        .iter()
        .filter(|(o, _)| o == "failed" || o == "error")
        .map(|(_, id)| id.as_str())
        .collect();
    // The tail of pytest's report: the failures' short tracebacks and the
    // summary line.
    let tail: String = stdout
        .lines()
        .rev()
        .take(200)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        out.status.success() && failing.is_empty(),
        "the SDK's tests failed on cais ({} passed, {} failed or errored: {failing:#?})\n{tail}\n{stderr}\ndaemon log:\n{}",
        count("passed"),
        failing.len(),
        d.log()
    );
    // Not vacuous: the suite ran, nearly all of it. (The core files hold
    // about 260 tests; a few are skipped or expected to fail on every
    // daemon, and deselected.txt leaves out 21.)
    assert!(
        count("passed") >= 230,
        "only {} of the SDK's tests passed: {all:?}\n{tail}",
        count("passed")
    );
}

#[test]
fn testcontainers_for_python_builds_runs_execs_and_cleans_up() {
    if !ready() {
        return;
    }
    // A daemon of its own: the SDK suite prunes what it finds.
    let d = cais_testkit::daemon::Daemon::start(CAIS, true);
    let out = Command::new("bash")
        .arg(sdk_dir().join("testcontainers.sh"))
        .arg(work_dir())
        .env("DOCKER_HOST", d.host())
        .env("SDK_PYTHON", PYTHON)
        .output()
        .expect("run tests/sdk/testcontainers.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "testcontainers failed on cais:\n{stdout}\n{}\ndaemon log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    assert!(
        stdout.contains("log line, exec and http://")
            && stdout.contains("clean-up left nothing behind"),
        "{stdout}"
    );
    assert_eq!(
        d.docker_ok(&["ps", "-aq"]).trim(),
        "",
        "no container is left"
    );
}
