//! `cargo xtask sdk-compare`: the Docker SDK for Python's integration
//! suite (`crates/cli/tests/sdk/run.sh`, the set the test suite runs)
//! against a `cais daemon` and a real dockerd in one go, each with state
//! of its own under a scratch directory, then both counts and every test
//! whose outcome differs.
//!
//! The dockerd is a private one (not the shared peer daemon: the suite
//! prunes containers, networks and volumes): its own socket, data and exec
//! roots, its default bridge on a bridge of its own, no iptables rules.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The private dockerd's default bridge and its address.
const BRIDGE: &str = "cais-sdkcmp0";
const BRIDGE_ADDR: &str = "10.254.253.1/24";

pub fn run(root: &Path) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    crate::run(
        Command::new(&cargo)
            .current_dir(root)
            .args(["build", "-p", "cais"]),
    )?;
    let cais = root.join("target/debug/cais");
    let script = root.join("crates/cli/tests/sdk/run.sh");
    let work = root.join("target/tmp/python-sdk");
    // Short paths: unix socket names are limited to 108 bytes.
    let dir = PathBuf::from(format!("/tmp/cais-sdk-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut daemons = Daemons {
        dir: dir.clone(),
        cais: None,
        dockerd: None,
        bridge: false,
    };
    let result = (|| -> Result<()> {
        daemons.start_cais(&cais)?;
        daemons.start_dockerd()?;
        let mut outcomes = Vec::new();
        for (name, socket) in [
            ("cais", dir.join("cais.sock")),
            ("dockerd", dir.join("docker.sock")),
        ] {
            let results = dir.join(format!("{name}-outcomes.txt"));
            let log = dir.join(format!("{name}-pytest.log"));
            eprintln!("+ the SDK's suite against {name} (log: {})", log.display());
            let file = std::fs::File::create(&log)?;
            let status = Command::new("bash")
                .arg(&script)
                .arg(&work)
                .arg(&results)
                .env("DOCKER_HOST", format!("unix://{}", socket.display()))
                .stdout(file.try_clone()?)
                .stderr(file)
                .status()
                .context("running run.sh")?;
            let read = read_outcomes(&results);
            if read.is_empty() {
                bail!(
                    "the suite against {name} gave no results ({status}); see {}",
                    log.display()
                );
            }
            outcomes.push((name, read, log));
        }
        report(&outcomes);
        Ok(())
    })();
    daemons.stop();
    result
}

/// `OUTCOME NODEID` lines, by test.
fn read_outcomes(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(o, id)| (id.to_string(), o.to_string()))
        .collect()
}

fn report(outcomes: &[(&str, BTreeMap<String, String>, PathBuf)]) {
    let mut out = std::io::stdout().lock();
    for (name, o, log) in outcomes {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for v in o.values() {
            *counts.entry(v.as_str()).or_default() += 1;
        }
        let text: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let _ = writeln!(out, "{name:<8} {}  ({})", text.join(", "), log.display());
    }
    let [(a, ao, _), (b, bo, _)] = outcomes else {
        return;
    };
    let mut ids: Vec<&String> = ao.keys().chain(bo.keys()).collect();
    ids.sort();
    ids.dedup();
    let differ: Vec<String> = ids
        .into_iter()
        .filter_map(|id| {
            let (x, y) = (ao.get(id), bo.get(id));
            (x != y).then(|| {
                format!(
                    "  {id}\n      {a}: {}, {b}: {}",
                    x.map_or("-", String::as_str),
                    y.map_or("-", String::as_str)
                )
            })
        })
        .collect();
    let _ = writeln!(out, "tests whose outcome differs: {}", differ.len());
    for d in differ {
        let _ = writeln!(out, "{d}");
    }
}

/// The two daemons, stopped and cleaned up by [`Daemons::stop`].
struct Daemons {
    dir: PathBuf,
    cais: Option<Child>,
    dockerd: Option<Child>,
    bridge: bool,
}

impl Daemons {
    fn start_cais(&mut self, cais: &Path) -> Result<()> {
        let log = std::fs::File::create(self.dir.join("cais-daemon.log"))?;
        let child = Command::new(cais)
            .arg("daemon")
            .arg("-H")
            .arg(format!("unix://{}", self.dir.join("cais.sock").display()))
            .arg("--data-root")
            .arg(self.dir.join("cais-root"))
            .arg("--exec-root")
            .arg(self.dir.join("cais-run"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting cais daemon")?;
        self.cais = Some(child);
        wait_for_ping(&self.dir.join("cais.sock"), "cais daemon")
    }

    fn start_dockerd(&mut self) -> Result<()> {
        if !crate::have("dockerd") {
            bail!("dockerd is not installed (apt-get install docker.io)");
        }
        let routes = Command::new("ip").args(["-4", "route"]).output()?.stdout;
        let prefix = BRIDGE_ADDR.rsplit_once('.').map_or("", |(p, _)| p);
        if String::from_utf8_lossy(&routes).contains(&format!("{prefix}.0/24")) {
            bail!("{BRIDGE_ADDR}'s network is routed on this host already; is another sdk-compare running?");
        }
        for args in [
            vec!["link", "add", BRIDGE, "type", "bridge"],
            vec!["addr", "add", BRIDGE_ADDR, "dev", BRIDGE],
            vec!["link", "set", BRIDGE, "up"],
        ] {
            crate::run(Command::new("ip").args(&args))?;
            self.bridge = true;
        }
        // An empty configuration file: the host's /etc/docker/daemon.json
        // is the peer daemon's business.
        let config = self.dir.join("daemon.json");
        std::fs::write(&config, "{}")?;
        let log = std::fs::File::create(self.dir.join("dockerd.log"))?;
        let child = Command::new("dockerd")
            .arg("--host")
            .arg(format!("unix://{}", self.dir.join("docker.sock").display()))
            .arg("--data-root")
            .arg(self.dir.join("docker-data"))
            .arg("--exec-root")
            .arg(self.dir.join("docker-exec"))
            .arg("--pidfile")
            .arg(self.dir.join("docker.pid"))
            .arg("--config-file")
            .arg(&config)
            .args(["--bridge", BRIDGE, "--iptables=false", "--ip6tables=false"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting dockerd")?;
        self.dockerd = Some(child);
        wait_for_ping(&self.dir.join("docker.sock"), "dockerd")
    }

    /// Removes every container (so no shim or mount outlives the run),
    /// stops both daemons, deletes the bridge and the scratch directory.
    fn stop(&mut self) {
        for (child, socket) in [
            (&mut self.cais, "cais.sock"),
            (&mut self.dockerd, "docker.sock"),
        ] {
            let Some(mut c) = child.take() else { continue };
            let host = format!("unix://{}", self.dir.join(socket).display());
            let docker = |args: &[&str]| {
                Command::new("docker")
                    .arg("-H")
                    .arg(&host)
                    .args(args)
                    .stdin(Stdio::null())
                    .stderr(Stdio::null())
                    .output()
            };
            if let Ok(out) = docker(&["ps", "-aq"]) {
                for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = docker(&["rm", "-f", id]);
                }
            }
            let _ = crate::nix_kill(c.id());
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        if self.bridge {
            let _ = Command::new("ip")
                .args(["link", "delete", BRIDGE, "type", "bridge"])
                .status();
        }
        let _ = Command::new("umount")
            .arg("-R")
            .arg(&self.dir)
            .stderr(Stdio::null())
            .status();
        for sub in ["cais-root", "docker-data"] {
            let _ = Command::new("umount")
                .arg("-R")
                .arg(self.dir.join(sub))
                .stderr(Stdio::null())
                .status();
        }
        eprintln!("logs and outcomes stay in {}", self.dir.display());
        for sub in ["cais-root", "cais-run", "docker-data", "docker-exec"] {
            let _ = std::fs::remove_dir_all(self.dir.join(sub));
        }
    }
}

/// Waits up to 30 s for `GET /_ping` on `socket` to answer `OK`.
fn wait_for_ping(socket: &Path, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut s) = std::os::unix::net::UnixStream::connect(socket) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: x\r\n\r\n")
                .is_ok()
            {
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer);
                if answer.ends_with("OK") {
                    return Ok(());
                }
            }
        }
        if Instant::now() > deadline {
            bail!("{what} did not answer on {}", socket.display());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
