//! A real `cais daemon` for end-to-end tests: its own data root, exec root
//! and socket under a short temporary directory, stopped (with every
//! container removed) when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

/// Where the docker CLI is installed on the project's machines.
pub const DOCKER: &str = "/usr/local/bin/docker";
use std::time::{Duration, Instant};

pub struct Daemon {
    pub dir: tempfile::TempDir,
    binary: PathBuf,
    /// Daemon flags besides the paths (`--cdi-spec-dir DIR`...).
    args: Vec<String>,
    child: Option<Child>,
}

impl Daemon {
    /// Starts `binary daemon`; with `busybox`, the store first gets a
    /// busybox image named `busybox`.
    pub fn start(binary: &str, busybox: bool) -> Daemon {
        Daemon::start_with(binary, busybox, &[])
    }

    /// [`Daemon::start`] with more daemon flags.
    pub fn start_with(binary: &str, busybox: bool, args: &[&str]) -> Daemon {
        // Short paths: unix socket names are limited to 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("cd")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let mut d = Daemon {
            dir,
            binary: PathBuf::from(binary),
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
        };
        if busybox {
            crate::busybox_image(&d.root(), "busybox", serde_json::json!({}));
        }
        d.spawn();
        d
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("api.sock")
    }

    /// `unix://...`, for `-H`, `CAIS_HOST` or `DOCKER_HOST`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// The real docker CLI pointed at this daemon, with a config directory
    /// of its own and no stdin.
    pub fn docker_command(&self) -> Command {
        let mut c = Command::new(DOCKER);
        c.arg("-H")
            .arg(self.host())
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .stdin(Stdio::null());
        c
    }

    /// `docker ARGS` against this daemon.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_command()
            .args(args)
            .output()
            .expect("run docker")
    }

    /// `docker ARGS`, which must succeed; its stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}\n{}\ndaemon log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts the daemon process (again, after `kill9`) and waits for its socket.
    pub fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("daemon.log")).expect("log");
        let child = Command::new(&self.binary)
            .arg("daemon")
            .arg("-H")
            .arg(self.host())
            .arg("--data-root")
            .arg(self.root())
            .arg("--exec-root")
            .arg(self.dir.path().join("run"))
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start daemon");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(self.socket()).is_err() {
            assert!(
                Instant::now() < deadline,
                "daemon did not come up: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, as a service manager stops it; waits up to 5 s for the
    /// daemon to exit (the caller SIGKILLs one that did not).
    pub fn terminate(&mut self) {
        let Some(pid) = self.child.as_ref().map(|c| c.id()) else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    self.child = None;
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn client(&self, args: &[&str]) -> std::process::Output {
        Command::new(&self.binary)
            .args(args)
            .env("CAIS_HOST", self.host())
            .env_remove("CAIS_DATA_ROOT")
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null())
            .output()
            .expect("run cais")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Remove every container so no shim or mount outlives the test.
        if self.child.is_some() {
            let out = self.client(&["ps", "-aq"]);
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = self.client(&["rm", "-f", id]);
            }
        }
        // SIGTERM first: the daemon removes its firewall table and bridges.
        self.terminate();
        self.kill9();
        self.remove_bridges();
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.root())
            .stderr(Stdio::null())
            .status();
    }
}

impl Daemon {
    /// Deletes the bridges of this daemon's networks (its own default
    /// bridge included): they outlive a killed daemon, and every test
    /// daemon's would otherwise hold a subnet of the host's address pools
    /// until none is left.
    fn remove_bridges(&self) {
        let dir = self.root().join("engine/networks");
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            let Ok(record) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            if let Some(bridge) = record["bridge"].as_str().filter(|b| !b.is_empty()) {
                let _ = Command::new("ip")
                    .args(["link", "delete", bridge, "type", "bridge"])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

/// The daemon a whole test binary shares (`shared(binary, busybox)`):
/// started on first use, stopped and cleaned up (every container removed,
/// bridges deleted) when the test process exits.
static SHARED: std::sync::OnceLock<std::sync::Mutex<Option<Daemon>>> = std::sync::OnceLock::new();

extern "C" fn stop_shared() {
    if let Some(m) = SHARED.get() {
        let taken = m.lock().ok().and_then(|mut d| d.take());
        drop(taken);
    }
}

/// A daemon shared by every test of this binary; see [`SHARED`]. Tests
/// using it must not disturb each other: unique names, their own project
/// or network names, ports chosen free.
pub fn shared(binary: &str, busybox: bool) -> SharedDaemon {
    shared_with(binary, busybox, &[])
}

/// [`shared`] with more daemon flags (those of the first call).
pub fn shared_with(binary: &str, busybox: bool, args: &[&str]) -> SharedDaemon {
    let m = SHARED.get_or_init(|| {
        // SAFETY: registering a plain extern "C" function with atexit has
        // no precondition; it runs once at process exit.
        unsafe { libc::atexit(stop_shared) };
        std::sync::Mutex::new(Some(Daemon::start_with(binary, busybox, args)))
    });
    let d = m.lock().unwrap_or_else(|e| e.into_inner());
    let d = d.as_ref().expect("the shared daemon lives until exit");
    SharedDaemon {
        host: d.host(),
        dir: d.dir.path().to_path_buf(),
    }
}

/// What a test needs of the shared daemon (the daemon itself stays in
/// the fixture).
#[derive(Debug, Clone)]
pub struct SharedDaemon {
    /// `unix://...`.
    pub host: String,
    /// The fixture's directory (socket, logs, data root).
    pub dir: PathBuf,
}

impl SharedDaemon {
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }
}
