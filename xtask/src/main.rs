//! `cargo xtask <task>`: the project's automation, in Rust.
//!
//! - `ci`: installs the test prerequisites (Debian packages, as root), then
//!   checks formatting and lints and runs every test. `.ci/run` calls this.
//! - `demo`: the main job end to end: builds the release binary, makes a
//!   busybox bundle under /tmp/cais-demo and runs it with `cais runtime run`.
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
    "docker.io",
    "tini",
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("demo") => demo(),
        Some("bench-runtime") => bench_runtime(&args[1..]),
        _ => bail!("usage: cargo xtask ci | demo | bench-runtime [extra runtimes...]"),
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
    install(&missing_packages())
}

fn install(missing: &[&str]) -> Result<()> {
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
            .args(missing))
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

fn demo() -> Result<()> {
    let root = workspace();
    if !Path::new("/bin/busybox").exists() {
        install(&["busybox-static"])?;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(&cargo)
        .current_dir(&root)
        .args(["build", "--release", "-p", "cais"]))?;
    let cais = root.join("target/release/cais");
    let bundle = Path::new("/tmp/cais-demo");
    let _ = std::fs::remove_dir_all(bundle);
    let bin = bundle.join("rootfs/bin");
    std::fs::create_dir_all(&bin)?;
    std::fs::copy("/bin/busybox", bin.join("busybox"))?;
    for applet in ["sh", "hostname", "echo", "cat", "ls"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet))?;
    }
    run(Command::new(&cais)
        .args(["runtime", "spec", "--bundle"])
        .arg(bundle))?;
    let path = bundle.join("config.json");
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = serde_json::json!([
        "sh",
        "-c",
        "echo \"hello from $(hostname), pid $$, in a container\"; ls /"
    ]);
    std::fs::write(&path, serde_json::to_vec_pretty(&config)?)?;
    run(Command::new(&cais)
        .args(["runtime", "run", "--bundle"])
        .arg(bundle)
        .arg("cais-demo"))
}
