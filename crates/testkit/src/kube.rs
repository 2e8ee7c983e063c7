//! A real `cais kube server` for end-to-end tests, driven by the real
//! kubectl: its own data directory, a free loopback port, its admin
//! kubeconfig and a discovery cache of its own; stopped when dropped.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Where kubectl is installed on the project's machines.
pub const KUBECTL: &str = "/usr/bin/kubectl";

/// Bearer tokens of an admin, of a user with no rights and of a node,
/// written to the server's token file before it starts.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";
pub const NOBODY_TOKEN: &str = "test-nobody-token-0123456789abcdef";
/// A node identity, `system:node:n1`.
pub const NODE_TOKEN: &str = "test-node-token-0123456789abcdef";

pub struct KubeServer {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    namespaces: AtomicU32,
}

impl KubeServer {
    /// Starts `binary kube server` on 127.0.0.1 (a free port), without a
    /// node agent, and waits until it answers `/readyz`.
    pub fn start(binary: &str) -> KubeServer {
        KubeServer::start_with(binary, &["--disable-agent"])
    }

    /// [`KubeServer::start`] with more server flags (`--engine-host`...).
    pub fn start_with(binary: &str, args: &[&str]) -> KubeServer {
        let dir = tempfile::Builder::new()
            .prefix("kube")
            .tempdir_in("/tmp")
            .expect("tempdir");
        std::fs::create_dir_all(dir.path().join("data")).expect("data dir");
        std::fs::write(
            dir.path().join("data/tokens"),
            format!(
                "{ADMIN_TOKEN},admin,1,\"system:masters\"\n{NOBODY_TOKEN},nobody,2\n{NODE_TOKEN},system:node:n1,3,\"system:nodes\"\n"
            ),
        )
        .expect("token file");
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log");
        let mut command = Command::new(binary);
        command
            .args(["kube", "server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--write-kubeconfig")
            .arg(dir.path().join("kubeconfig"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        let child = spawn_outliving_thread(command);
        let server = KubeServer {
            dir,
            child: Some(child),
            namespaces: AtomicU32::new(0),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if server.kubeconfig().exists() {
                let out = server.kubectl(&["get", "--raw", "/readyz"]);
                if out.status.success() {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "cais kube server did not come up:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The server's `https://host:port`, read from the kubeconfig.
    pub fn url(&self) -> String {
        let text = std::fs::read_to_string(self.kubeconfig()).expect("kubeconfig");
        text.lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .expect("a server line")
            .to_string()
    }

    /// kubectl with this server's kubeconfig and a cache of its own.
    pub fn kubectl_command(&self) -> Command {
        let mut c = Command::new(KUBECTL);
        c.env("KUBECONFIG", self.kubeconfig())
            .env("KUBECACHEDIR", self.dir.path().join("cache"))
            .stdin(Stdio::null());
        c
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_command()
            .args(args)
            .output()
            .expect("run kubectl")
    }

    /// `kubectl ARGS`, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl ARGS`, which must fail; its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `kubectl ARGS` with `input` on stdin (`apply -f -`); its output.
    pub fn with_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .kubectl_command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("kubectl output")
    }

    /// kubectl as the user of `token` (no kubeconfig, so no client
    /// certificate either).
    pub fn as_token(&self, token: &str, args: &[&str]) -> Output {
        self.as_token_with_stdin(token, args, "")
    }

    /// The same, with `input` on stdin.
    pub fn as_token_with_stdin(&self, token: &str, args: &[&str], input: &str) -> Output {
        let url = self.url();
        let ca = self.data_dir().join("pki/ca.crt");
        let mut child = self
            .kubectl_command()
            .env("KUBECONFIG", "/dev/null")
            .arg("--server")
            .arg(&url)
            .arg("--certificate-authority")
            .arg(ca)
            .arg("--token")
            .arg(token)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("kubectl output")
    }

    /// Starts `binary kube hollow-nodes --count N` against this server
    /// (nodes `hollow-0`...), killed with the test binary, and waits until
    /// every node is Ready.
    pub fn hollow_nodes(&self, binary: &str, count: usize) {
        let log = std::fs::File::create(self.dir.path().join("hollow.log")).expect("log");
        let mut command = Command::new(binary);
        command
            .args([
                "kube",
                "hollow-nodes",
                "--count",
                &count.to_string(),
                "--kubeconfig",
            ])
            .arg(self.kubeconfig())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        // Lives as long as the test binary, like the server.
        std::mem::forget(spawn_outliving_thread(command));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.kubectl(&["get", "nodes", "--no-headers"]);
            let text = String::from_utf8_lossy(&out.stdout);
            if text
                .lines()
                .filter(|l| l.split_whitespace().nth(1) == Some("Ready"))
                .count()
                >= count
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "hollow nodes did not come up: {text}\n{}",
                std::fs::read_to_string(self.dir.path().join("hollow.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A fresh namespace for one test.
    pub fn namespace(&self, test: &str) -> String {
        let n = self.namespaces.fetch_add(1, Ordering::SeqCst);
        let name = format!("{}-{n}", test.replace('_', "-"));
        self.ok(&["create", "namespace", &name]);
        name
    }
}

/// Spawns `command` from a thread that lives as long as the process, with
/// SIGKILL as its parent-death signal: the server goes when the test
/// binary does, even when it is killed. (The kernel sends the signal when
/// the forking *thread* exits, so it must not be a test's thread.)
fn spawn_outliving_thread(mut command: Command) -> Child {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // SAFETY: prctl(PR_SET_PDEATHSIG) only sets an attribute of the
        // calling (child) process; it allocates nothing and is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let _ = tx.send(command.spawn());
        loop {
            std::thread::park();
        }
    });
    rx.recv()
        .expect("the spawning thread answers")
        .expect("start cais kube server")
}

/// One server per test binary, started on first use; each test works in a
/// namespace of its own ([`KubeServer::namespace`]).
pub fn shared(binary: &str) -> &'static KubeServer {
    shared_with(binary, &[])
}

/// The same, the server started with `extra` arguments (the first call's
/// arguments hold for the whole binary); like [`KubeServer::start`], without
/// a node agent.
pub fn shared_with(binary: &str, extra: &[&str]) -> &'static KubeServer {
    static SERVER: OnceLock<KubeServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let args: Vec<&str> = std::iter::once("--disable-agent")
            .chain(extra.iter().copied())
            .collect();
        KubeServer::start_with(binary, &args)
    })
}

impl Drop for KubeServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// Helpers of the tests that drive controllers through kubectl.

/// `kubectl apply` of `yaml` in namespace `ns`; panics when kubectl fails.
pub fn apply(s: &KubeServer, ns: &str, yaml: &str) {
    let out = s.with_stdin(&["apply", "--validate=false", "-n", ns, "-f", "-"], yaml);
    assert!(
        out.status.success(),
        "kubectl apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `check` until it returns `Some`, for at most 30 s.
pub fn eventually<T>(what: &str, s: &KubeServer, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The pods of `selector` that are not being deleted: (name, phase, node).
pub fn pods(s: &KubeServer, ns: &str, selector: &str) -> Vec<(String, String, String)> {
    let list = serde_json::from_str::<Value>(
        &s.ok(&["get", "pods", "-n", ns, "-l", selector, "-o", "json"]),
    )
    .expect("kubectl prints JSON");
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            let text = |v: &Value| v.as_str().unwrap_or("").to_string();
            (
                text(&p["metadata"]["name"]),
                text(&p["status"]["phase"]),
                text(&p["spec"]["nodeName"]),
            )
        })
        .collect()
}

/// Waits until exactly `n` pods of `selector` run on a node; returns them.
pub fn running(
    s: &KubeServer,
    ns: &str,
    selector: &str,
    n: usize,
) -> Vec<(String, String, String)> {
    eventually(&format!("{n} running pods of {selector}"), s, || {
        let p = pods(s, ns, selector);
        (p.len() == n
            && p.iter()
                .all(|(_, phase, node)| phase == "Running" && !node.is_empty()))
        .then_some(p)
    })
}
