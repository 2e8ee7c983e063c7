//! `cargo xtask conformance-runtime`: the opencontainers runtime-tools
//! validation suite against `cais runtime`, runc and crun in one run.
//!
//! The suite is not part of this repository: `--suite DIR` (or
//! `RUNTIME_TOOLS_DIR`) names a checkout where its `runtimetest` and
//! validation executables (`validation/*/*.t`) were built as its README
//! describes. Each executable runs from that directory (it unpacks the
//! suite's rootfs tarball from there) with `RUNTIME` naming the runtime,
//! one at a time, runtime after runtime. TAP output, stderr and exit codes
//! go under `--out` (default `target/runtime-conformance`), with a summary:
//! per runtime the `ok` and `not ok` lines, the skips among the `ok`s, and
//! the executables that exited non-zero (a runtime refusing a config
//! usually ends an executable before it prints any point).
//!
//! A runtime that shares the container's root with the host's for
//! `rootfsPropagation: shared` (runc 1.1 does) leaves that test's mounts in
//! the host's mount namespace, under the suite's temporary bundles; the
//! run ends with a warning naming them.
//!
//! crun needs two accommodations on some hosts, both made here and printed:
//! on a hybrid cgroup host (v1 controllers with cgroup2 at
//! /sys/fs/cgroup/unified) crun refuses to run, so its executables run in a
//! private mount namespace without that cgroup2 mount (crun then sees a v1
//! host); and a crun too old for `crun features` (before runtime-spec 1.2)
//! refuses the suite's `ociVersion` 1.3.0, so it is called through a
//! wrapper that rewrites the bundle's `ociVersion` to 1.1.0 first.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// One validation executable's outcome.
#[derive(Debug, Default, PartialEq)]
pub struct FileResult {
    pub name: String,
    pub ok: usize,
    pub skipped: usize,
    /// The `not ok` lines, as printed.
    pub not_ok: Vec<String>,
    /// None when the executable was killed (timeout).
    pub exit: Option<i32>,
    /// The first line of its stderr, for executables that failed.
    pub first_error: String,
}

/// Counts a TAP stream's points (top-level lines only: YAML diagnostics
/// are indented).
pub fn parse_tap(name: &str, tap: &str) -> FileResult {
    let mut r = FileResult {
        name: name.to_string(),
        ..FileResult::default()
    };
    for line in tap.lines() {
        if line.starts_with("not ok") {
            r.not_ok.push(line.to_string());
        } else if line == "ok" || line.starts_with("ok ") {
            r.ok += 1;
            if line.contains("# SKIP") || line.contains("# skip") {
                r.skipped += 1;
            }
        }
    }
    r
}

struct Options {
    suite: PathBuf,
    out: PathBuf,
    runtimes: Vec<String>,
}

fn options(args: &[String], root: &Path) -> Result<Options> {
    let mut suite = std::env::var_os("RUNTIME_TOOLS_DIR").map(PathBuf::from);
    let mut out = root.join("target/runtime-conformance");
    let mut runtimes = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--suite" => suite = Some(it.next().context("--suite takes a directory")?.into()),
            "--out" => out = it.next().context("--out takes a directory")?.into(),
            r if !r.starts_with('-') => runtimes.push(r.to_string()),
            other => bail!("unknown option {other:?}"),
        }
    }
    let suite = suite.context(
        "name the built runtime-tools checkout with --suite DIR or RUNTIME_TOOLS_DIR \
         (see docs/runtime-conformance.md)",
    )?;
    if runtimes.is_empty() {
        runtimes = ["cais-runtime", "runc", "crun"].map(String::from).to_vec();
    }
    Ok(Options {
        suite,
        out,
        runtimes,
    })
}

/// The validation executables of a built suite, sorted.
fn executables(suite: &Path) -> Result<Vec<PathBuf>> {
    if !suite.join("runtimetest").is_file() {
        bail!(
            "{} has no runtimetest: build the suite first (docs/runtime-conformance.md)",
            suite.display()
        );
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(suite.join("validation"))
        .with_context(|| format!("reading {}/validation", suite.display()))?
    {
        let dir = entry?.path();
        if let Ok(files) = std::fs::read_dir(&dir) {
            for f in files {
                let f = f?.path();
                if f.extension().is_some_and(|e| e == "t") {
                    out.push(f);
                }
            }
        }
    }
    out.sort();
    if out.is_empty() {
        bail!(
            "no validation executables (validation/*/*.t) under {}",
            suite.display()
        );
    }
    Ok(out)
}

/// Whether this host mixes v1 controllers with cgroup2 at /sys/fs/cgroup/unified.
fn hybrid_cgroups() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|info| {
        info.lines()
            .any(|l| l.contains(" /sys/fs/cgroup/unified ") && l.contains(" - cgroup2 "))
    })
}

/// The wrapper for a crun that refuses runtime-spec 1.2 and later.
const CRUN_WRAPPER: &str = r#"#!/bin/sh
# Written by cargo xtask conformance-runtime: this crun predates
# runtime-spec 1.2 and refuses the suite's ociVersion; rewrite it to 1.1.0
# in the bundle's config.json before create/run, then run crun unchanged.
bundle=.; verb=; prev=
for a in "$@"; do
  case "$prev" in --bundle|-b) bundle=$a;; esac
  case "$a" in --bundle=*) bundle=${a#--bundle=};; create|run) [ -z "$verb" ] && verb=$a;; esac
  prev=$a
done
if [ -n "$verb" ] && [ -f "$bundle/config.json" ]; then
  sed -i 's/"ociVersion": *"1\.[2-9][^"]*"/"ociVersion": "1.1.0"/' "$bundle/config.json"
fi
exec crun "$@"
"#;

pub fn run(args: &[String], root: &Path, release_dir: &Path) -> Result<()> {
    let opts = options(args, root)?;
    let tests = executables(&opts.suite)?;
    let hybrid = hybrid_cgroups();
    let wrappers = root.join("target/runtime-conformance-bin");
    std::fs::create_dir_all(&wrappers)?;
    let path = format!(
        "{}:{}:{}",
        release_dir.display(),
        wrappers.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut summary = String::new();
    let mut details = String::new();
    for runtime in &opts.runtimes {
        let mut command = runtime.clone();
        let is_crun = runtime == "crun";
        if is_crun
            && !Command::new("crun")
                .arg("features")
                .output()?
                .status
                .success()
        {
            let w = wrappers.join("crun-oci-1.1");
            std::fs::write(&w, CRUN_WRAPPER)?;
            std::fs::set_permissions(&w, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
            command = "crun-oci-1.1".into();
            eprintln!(
                "crun predates runtime-spec 1.2: run through {}",
                w.display()
            );
        }
        let private_mounts = is_crun && hybrid;
        if private_mounts {
            eprintln!(
                "hybrid cgroups: crun runs in a private mount namespace without /sys/fs/cgroup/unified"
            );
        }
        let dir = opts.out.join(runtime);
        std::fs::create_dir_all(&dir)?;
        let mut results = Vec::new();
        for t in &tests {
            let name = t
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut cmd = Command::new("timeout");
            cmd.arg("300");
            if private_mounts {
                cmd.args([
                    "unshare",
                    "-m",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    "umount /sys/fs/cgroup/unified && exec \"$0\"",
                ]);
            }
            let out = cmd
                .arg(t)
                .current_dir(&opts.suite)
                .env("RUNTIME", &command)
                .env("PATH", &path)
                .output()
                .with_context(|| format!("running {}", t.display()))?;
            std::fs::write(dir.join(format!("{name}.tap")), &out.stdout)?;
            std::fs::write(dir.join(format!("{name}.err")), &out.stderr)?;
            let mut r = parse_tap(&name, &String::from_utf8_lossy(&out.stdout));
            r.exit = out.status.code();
            if r.exit != Some(0) {
                r.first_error = String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .find(|l| !l.trim().is_empty() && !l.starts_with("failed to"))
                    .unwrap_or_default()
                    .to_string();
            }
            results.push(r);
        }
        let ok: usize = results.iter().map(|r| r.ok).sum();
        let skipped: usize = results.iter().map(|r| r.skipped).sum();
        let not_ok: usize = results.iter().map(|r| r.not_ok.len()).sum();
        let failed: Vec<&FileResult> = results.iter().filter(|r| r.exit != Some(0)).collect();
        summary.push_str(&format!(
            "{runtime}: {ok} ok ({skipped} of them skips), {not_ok} not ok, {} of {} executables exited non-zero\n",
            failed.len(),
            results.len()
        ));
        details.push_str(&format!("\n## {runtime}\n\n"));
        for r in &results {
            for line in &r.not_ok {
                details.push_str(&format!("- {}: {line}\n", r.name));
            }
        }
        for r in failed {
            details.push_str(&format!(
                "- {} exited {}: {}\n",
                r.name,
                r.exit.map_or("by timeout".to_string(), |c| c.to_string()),
                r.first_error
            ));
        }
    }
    // runc's idea of rootfsPropagation "shared" shares the container's
    // mounts with the host's root, so its run of that test leaves them in
    // the host's mount namespace, under the suite's temporary bundles.
    let leftovers: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.contains("/ocitest"))
        .map(str::to_string)
        .collect();
    if !leftovers.is_empty() {
        eprintln!(
            "warning: {} mounts were left in this mount namespace under the suite's bundles \
             (e.g. {}); `umount -R` those bundle directories",
            leftovers.len(),
            leftovers[0]
        );
    }
    let report = format!("# runtime-tools validation\n\n{summary}{details}");
    std::fs::write(opts.out.join("summary.md"), &report)?;
    println!("{summary}");
    println!("details: {}", opts.out.join("summary.md").display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_points_are_counted() {
        let tap = "TAP version 13\n\
                   ok 1 - has expected hostname\n  ---\n  {\"ok\": 1}\n  ...\n\
                   not ok 2 - memory kernel is set correctly\n\
                   # expect: 1, actual: 2\n\
                   ok 3 # SKIP linux.sysctl not set\n\
                   ok 4\n\
                   1..4\n";
        let r = parse_tap("memory", tap);
        assert_eq!(r.ok, 3);
        assert_eq!(r.skipped, 1);
        assert_eq!(r.not_ok, ["not ok 2 - memory kernel is set correctly"]);
        assert_eq!(parse_tap("empty", "TAP version 13\n1..0\n").ok, 0);
    }

    #[test]
    fn options_need_a_suite() {
        let root = Path::new("/w");
        let o = options(&["--suite".into(), "/s".into(), "runc".into()], root).expect("opts");
        assert_eq!(o.suite, Path::new("/s"));
        assert_eq!(o.runtimes, ["runc"]);
        assert_eq!(o.out, Path::new("/w/target/runtime-conformance"));
        assert!(options(&["--bogus".into()], root).is_err());
    }
}
