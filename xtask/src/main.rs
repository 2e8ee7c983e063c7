//! `cargo xtask <task>`: the project's automation, in Rust.
//!
//! - `ci`: installs the test prerequisites (Debian packages, as root), then
//!   checks formatting and lints and runs every test. `.ci/run` calls this.
//! - `bench-runtime [ARGS]`: builds the release binary and runs the shared
//!   side-by-side runtime benchmark (../shared/bench/runtime-bench.sh) with
//!   cais next to runc and crun.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Debian packages the tests use: busybox for container root filesystems,
/// the Distribution registry, skopeo and podman as real registry clients,
/// htpasswd and openssl for auth and TLS fixtures.
const TEST_PACKAGES: &[&str] = &[
    "busybox-static",
    "docker-registry",
    "skopeo",
    "podman",
    "apache2-utils",
    "openssl",
    "jq",
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench-runtime") => bench_runtime(&args[1..]),
        _ => bail!("usage: cargo xtask ci | bench-runtime [extra runtimes...]"),
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("+ {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn missing_packages() -> Vec<&'static str> {
    TEST_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            let out = Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output();
            !out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect()
}

fn install_packages() -> Result<()> {
    let missing = missing_packages();
    if missing.is_empty() {
        return Ok(());
    }
    let install = |update: bool| -> Result<()> {
        if update {
            run(Command::new("apt-get").args(["-o", "DPkg::Lock::Timeout=600", "update", "-qq"]))?;
        }
        run(Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args([
                "-o",
                "DPkg::Lock::Timeout=600",
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
            ])
            .args(&missing))
    };
    // Try without refreshing the package lists first: it is much faster.
    install(false).or_else(|_| install(true))
}

fn ci() -> Result<()> {
    let root = workspace();
    install_packages()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(&cargo)
        .current_dir(&root)
        .args(["fmt", "--all", "--", "--check"]))?;
    run(Command::new(&cargo).current_dir(&root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(Command::new(&cargo)
        .current_dir(&root)
        .args(["test", "--workspace"]))
}

fn bench_runtime(extra: &[String]) -> Result<()> {
    let root = workspace();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(&cargo)
        .current_dir(&root)
        .args(["build", "--release", "-p", "cais"]))?;
    let link = root.join("target/release/cais-runtime");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink("cais", &link).context("linking cais-runtime")?;
    let script = root.join("../shared/bench/runtime-bench.sh");
    run(Command::new("bash").arg(script).arg(&link).args(extra))
}
