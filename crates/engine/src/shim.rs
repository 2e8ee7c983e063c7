//! The per-container shim: a small supervisor process that starts the
//! container through the runtime, holds its stdio, writes its logs, reaps its
//! exit status and keeps running when the daemon stops or restarts.
//!
//! `cais shim ...` forks; the parent waits until the container is created
//! (or failed), prints one JSON line and exits, while the child, in its own
//! session and as child subreaper (so the container's init is re-parented to
//! it), runs the supervision loop until the container exits. It is
//! single-threaded and never links the daemon's async machinery, to stay
//! small in memory.
//!
//! Files in the container's state directory:
//! - `shim.pid`, `init.pid`: the shim's and the container init's pids;
//! - `container-json.log[.N]`: output (see `logfile`);
//! - `attach.sock`: clients send one JSON request line, then
//!   `attach` streams output (Docker's multiplexed frames unless there is a
//!   terminal) and forwards input; `start` runs the created container's
//!   process; `wait` gets the exit status line; `resize` sets the terminal size;
//! - `exit.json`: written atomically when the container exits.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use serde::{Deserialize, Serialize};

use crate::logfile;

/// How to start one container.
#[derive(Debug, Clone)]
pub struct Config {
    pub id: String,
    pub bundle: PathBuf,
    pub state_dir: PathBuf,
    pub runtime_root: PathBuf,
    /// The `cais` binary, run as `cais runtime ...`.
    pub runtime: PathBuf,
    pub terminal: bool,
    pub stdin: bool,
    pub log_max_size: u64,
    pub log_max_files: u32,
    /// The `none` log driver: output goes to attached clients only.
    pub no_log: bool,
    /// Attributes every log record carries (`labels`, `env`, `tag`).
    pub log_attrs: std::collections::BTreeMap<String, String>,
    /// `StdinOnce`: the container's stdin ends when an attached client's
    /// input does; otherwise it stays open for the next client.
    pub stdin_once: bool,
    pub cgroup_path: String,
}

/// What the shim reports once the container runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Started {
    pub shim_pid: i32,
    pub pid: i32,
}

/// The exit record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Exit {
    pub exit_code: i32,
    pub oom_killed: bool,
    pub finished_at: String,
}

/// A request on the attach socket.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    Attach {
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    Wait,
    /// Run the container's process (the shim creates the container first,
    /// so clients can attach before any output is produced).
    Start,
    Resize {
        height: u16,
        width: u16,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("starting container {id}: {message}")]
    Start { id: String, message: String },
}

fn io<T>(r: std::io::Result<T>, context: impl FnOnce() -> String) -> Result<T, Error> {
    r.map_err(|source| Error::Io {
        context: context(),
        source,
    })
}

/// Runs `cais shim`: forks the supervisor and waits for it to report.
/// Returns the report, one JSON line the binary prints on stdout for the
/// daemon, or the reason the container did not start, which it prints on
/// stderr (the daemon reads both).
pub fn main(cfg: Config) -> Result<String, String> {
    let (mut report_rx, report_tx) =
        UnixStream::pair().map_err(|e| format!("shim: socketpair: {e}"))?;
    // SAFETY: the shim command is single-threaded at this point.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            drop(report_rx);
            let code = supervise(&cfg, report_tx);
            std::process::exit(code)
        }
        Ok(nix::unistd::ForkResult::Parent { .. }) => {
            drop(report_tx);
            let mut line = String::new();
            let _ = report_rx.read_to_string(&mut line);
            let line = line.trim();
            if line.starts_with('{') {
                Ok(line.to_owned())
            } else if line.is_empty() {
                Err("shim exited before the container started".to_owned())
            } else {
                Err(line.to_owned())
            }
        }
        Err(e) => Err(format!("shim: fork: {e}")),
    }
}

/// Container stdio as the shim holds it.
enum Stdio3 {
    Pipes {
        stdin: Option<OwnedFd>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    Terminal {
        master: OwnedFd,
    },
}

fn supervise(cfg: &Config, mut report: UnixStream) -> i32 {
    let _ = nix::unistd::setsid();
    // SAFETY: PR_SET_CHILD_SUBREAPER takes integers, no pointers, so no memory is
    // touched; it only makes orphaned descendants (the container's init) reparent to
    // this process.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let started = start_container(cfg);
    let (stdio, pid) = match started {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(report, "{e}");
            let _ = Command::new(&cfg.runtime)
                .args(["runtime", "--root"])
                .arg(&cfg.runtime_root)
                .args(["delete", "--force", &cfg.id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            return 1;
        }
    };
    let me = std::process::id() as i32;
    let _ = fs::write(cfg.state_dir.join("shim.pid"), me.to_string());
    let listener = match bind_attach(&cfg.state_dir) {
        Ok(l) => l,
        Err(e) => {
            let _ = writeln!(report, "{e}");
            return 1;
        }
    };
    let _ = writeln!(
        report,
        "{}",
        serde_json::to_string(&Started { shim_pid: me, pid }).expect("serializes")
    );
    drop(report);
    detach_stdio();
    let exit = run_loop(cfg, stdio, pid, listener);
    finish(cfg, &exit);
    0
}

fn detach_stdio() {
    if let Ok(null) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            // SAFETY: dup2 takes integers; `null` stays open across the call, and
            // descriptors 0-2 are not owned by any Rust object in this process, so
            // replacing them invalidates nothing.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

fn bind_attach(dir: &Path) -> Result<UnixListener, Error> {
    let path = dir.join("attach.sock");
    let _ = fs::remove_file(&path);
    io(
        cais_runtime::with_short_path(&path, |p| UnixListener::bind(p)),
        || format!("binding {}", path.display()),
    )
}

fn pipe() -> Result<(OwnedFd, OwnedFd), Error> {
    io(
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from),
        || "pipe".into(),
    )
}

fn start_container(cfg: &Config) -> Result<(Stdio3, i32), Error> {
    let fail = |message: String| Error::Start {
        id: cfg.id.clone(),
        message,
    };
    let log = cfg.state_dir.join("runtime.log");
    let pid_file = cfg.state_dir.join("init.pid");
    let mut create = Command::new(&cfg.runtime);
    create
        .args(["runtime", "--root"])
        .arg(&cfg.runtime_root)
        .arg("--log")
        .arg(&log)
        .args(["--log-format", "json", "create", "--bundle"])
        .arg(&cfg.bundle)
        .arg("--pid-file")
        .arg(&pid_file);
    let console = cfg.state_dir.join("console.sock");
    let mut console_listener = None;
    let mut held = None;
    if cfg.terminal {
        let _ = fs::remove_file(&console);
        console_listener = Some(io(
            cais_runtime::with_short_path(&console, |p| UnixListener::bind(p)),
            || format!("binding {}", console.display()),
        )?);
        create.arg("--console-socket").arg(&console);
        create
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    } else {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let stdin = if cfg.stdin {
            let (in_r, in_w) = pipe()?;
            create.stdin(Stdio::from(in_r));
            Some(in_w)
        } else {
            create.stdin(Stdio::null());
            None
        };
        create.stdout(Stdio::from(out_w)).stderr(Stdio::from(err_w));
        held = Some(Stdio3::Pipes {
            stdin,
            stdout: out_r,
            stderr: err_r,
        });
    }
    create.arg(&cfg.id);
    let mut child = io(create.spawn(), || {
        format!("running {}", cfg.runtime.display())
    })?;
    // The Command holds the child's ends of the pipes: drop them with it so
    // EOF arrives when the container closes its output.
    drop(create);
    let mut master = None;
    if let Some(listener) = console_listener {
        io(listener.set_nonblocking(true), || "console socket".into())?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match listener.accept() {
                Ok((conn, _)) => {
                    io(conn.set_nonblocking(false), || "console socket".into())?;
                    master = Some(
                        cais_runtime::console::recv_fd(conn.as_raw_fd())
                            .map_err(|e| fail(format!("receiving the terminal: {e}")))?,
                    );
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if let Ok(Some(_)) = child.try_wait() {
                        break;
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        return Err(fail("the runtime never sent the terminal".into()));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(fail(format!("console socket: {e}"))),
            }
        }
        let _ = fs::remove_file(&console);
    }
    let status = io(child.wait(), || "waiting for runtime create".into())?;
    if !status.success() {
        return Err(fail(runtime_error(&log)));
    }
    let stdio = match (held, master) {
        (Some(s), _) => s,
        (None, Some(master)) => Stdio3::Terminal { master },
        (None, None) => return Err(fail("no terminal was received".into())),
    };
    let pid: i32 = io(fs::read_to_string(&pid_file), || "reading init pid".into())?
        .trim()
        .parse()
        .map_err(|_| fail("bad pid file".into()))?;
    Ok((stdio, pid))
}

/// `runtime start`: releases the created container's process.
fn start_process(cfg: &Config) -> Result<(), String> {
    let log = cfg.state_dir.join("runtime.log");
    let status = Command::new(&cfg.runtime)
        .args(["runtime", "--root"])
        .arg(&cfg.runtime_root)
        .arg("--log")
        .arg(&log)
        .args(["--log-format", "json", "start", &cfg.id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("running runtime start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(runtime_error(&log))
    }
}

/// The last error the runtime logged.
fn runtime_error(log: &Path) -> String {
    fs::read_to_string(log)
        .ok()
        .and_then(|text| {
            text.lines()
                .rev()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|v| v["level"] == "error")
                .and_then(|v| v["msg"].as_str().map(str::to_string))
        })
        .unwrap_or_else(|| "the runtime failed without a message".into())
}

struct Client {
    stream: UnixStream,
    wants: Option<Request>,
    buf: Vec<u8>,
    /// The client closed its sending side; it still receives output.
    input_closed: bool,
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: F_GETFL/F_SETFL take and return integers and change only the status
    // flags of `fd`, which the caller keeps open; no memory is passed.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

fn run_loop(cfg: &Config, stdio: Stdio3, pid: i32, listener: UnixListener) -> Exit {
    let mut log = if cfg.no_log {
        None
    } else {
        logfile::Writer::open(
            &cfg.state_dir.join("container-json.log"),
            cfg.log_max_size,
            cfg.log_max_files,
        )
        .ok()
        .map(|w| w.with_attrs(cfg.log_attrs.clone()))
    };
    let (mut outputs, mut input): (Vec<(OwnedFd, u8)>, Option<OwnedFd>) = match stdio {
        Stdio3::Pipes {
            stdin,
            stdout,
            stderr,
        } => (vec![(stdout, 1), (stderr, 2)], stdin),
        Stdio3::Terminal { master } => {
            let dup = master.try_clone().ok();
            (vec![(master, 1)], dup)
        }
    };
    let terminal = cfg.terminal;
    for (fd, _) in &outputs {
        set_nonblocking(fd.as_raw_fd());
    }
    let _ = listener.set_nonblocking(true);
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    let _ = set.thread_block();
    let sfd =
        nix::sys::signalfd::SignalFd::with_flags(&set, nix::sys::signalfd::SfdFlags::SFD_NONBLOCK);
    let mut clients: HashMap<RawFd, Client> = HashMap::new();
    let mut status: Option<i32> = None;
    let mut exited_at: Option<Instant> = None;
    loop {
        // After the container exits, keep draining output briefly: a
        // process it left behind may still hold the pipes.
        if let Some(t) = exited_at {
            if outputs.is_empty() || t.elapsed() > Duration::from_millis(500) {
                break;
            }
        }
        let mut pfds: Vec<libc::pollfd> = Vec::new();
        let poll = |fd: RawFd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        pfds.push(poll(listener.as_raw_fd()));
        if let Ok(s) = &sfd {
            pfds.push(poll(s.as_raw_fd()));
        }
        for (fd, _) in &outputs {
            pfds.push(poll(fd.as_raw_fd()));
        }
        for (fd, c) in &clients {
            if !c.input_closed {
                pfds.push(poll(*fd));
            }
        }
        let timeout = if exited_at.is_some() { 50 } else { 1000 };
        // SAFETY: pfds is a valid array of pollfd.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout) };
        if n < 0 && Errno::last() != Errno::EINTR {
            break;
        }
        // Reap: the container's init is re-parented to us, as are orphans.
        loop {
            match waitpid(None::<nix::unistd::Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => status = Some(code),
                Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == pid => {
                    status = Some(128 + sig as i32)
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
        if let Ok(s) = &sfd {
            while let Ok(Some(_)) = s.read_signal() {}
        }
        if status.is_some() && exited_at.is_none() {
            exited_at = Some(Instant::now());
            // The container's stdin goes away with it.
            input = None;
        }
        let ready = |fd: RawFd| pfds.iter().any(|p| p.fd == fd && p.revents != 0);
        if ready(listener.as_raw_fd()) {
            while let Ok((stream, _)) = listener.accept() {
                set_nonblocking(stream.as_raw_fd());
                clients.insert(
                    stream.as_raw_fd(),
                    Client {
                        stream,
                        wants: None,
                        buf: Vec::new(),
                        input_closed: false,
                    },
                );
            }
        }
        // Container output: to the log and every attached client.
        let mut closed = Vec::new();
        for (i, (fd, stream)) in outputs.iter().enumerate() {
            if !ready(fd.as_raw_fd()) {
                continue;
            }
            let mut buf = [0u8; 32 * 1024];
            // SAFETY: reading into a stack buffer from our fd.
            let r = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if r > 0 {
                let data = &buf[..r as usize];
                if let Some(w) = log.as_mut() {
                    let _ = w.write(*stream, data);
                }
                broadcast(&mut clients, *stream, data, terminal);
            } else if r == 0 || Errno::last() != Errno::EAGAIN {
                closed.push(i);
            }
        }
        for i in closed.into_iter().rev() {
            outputs.remove(i);
        }
        // Client requests and input.
        let fds: Vec<RawFd> = clients.keys().copied().collect();
        for fd in fds {
            if !ready(fd) {
                continue;
            }
            if !serve_client(&mut clients, fd, &mut input, cfg, status) {
                clients.remove(&fd);
            }
        }
    }
    if let Some(w) = log.as_mut() {
        let _ = w.flush_partial();
    }
    let oom_killed = cais_cgroups::Layout::detect()
        .ok()
        .and_then(|l| cais_cgroups::Cgroup::new(l, &cfg.cgroup_path).ok())
        .and_then(|c| c.oom_kill_count().ok())
        .is_some_and(|n| n > 0);
    let exit = Exit {
        exit_code: status.unwrap_or(255),
        oom_killed,
        finished_at: cais_runtime::state::rfc3339(std::time::SystemTime::now()),
    };
    let line = format!("{}\n", serde_json::to_string(&exit).expect("serializes"));
    write_exit(&cfg.state_dir, &line);
    for (_, mut c) in clients.drain() {
        let _ = c.stream.set_nonblocking(false);
        if matches!(c.wants, Some(Request::Wait)) {
            let _ = c.stream.write_all(line.as_bytes());
        }
    }
    drop(input);
    exit
}

fn write_exit(dir: &Path, line: &str) {
    let tmp = dir.join(".exit.json.tmp");
    if fs::write(&tmp, line).is_ok() {
        let _ = fs::rename(&tmp, dir.join("exit.json"));
    }
}

/// Sends output to attached clients: raw with a terminal, otherwise in
/// Docker's multiplexed framing (stream byte, three zero bytes, big-endian
/// length).
fn broadcast(clients: &mut HashMap<RawFd, Client>, stream: u8, data: &[u8], terminal: bool) {
    let mut dead = Vec::new();
    for (fd, c) in clients.iter_mut() {
        let Some(Request::Attach { stdout, stderr, .. }) = &c.wants else {
            continue;
        };
        if (stream == 1 && !stdout) || (stream == 2 && !stderr) {
            continue;
        }
        let mut frame = Vec::with_capacity(data.len() + 8);
        if !terminal {
            frame.push(stream);
            frame.extend_from_slice(&[0, 0, 0]);
            frame.extend_from_slice(&(data.len() as u32).to_be_bytes());
        }
        frame.extend_from_slice(data);
        // A slow client is given a moment, not the whole shim.
        let _ = c.stream.set_nonblocking(false);
        let _ = c.stream.set_write_timeout(Some(Duration::from_secs(2)));
        if c.stream.write_all(&frame).is_err() {
            dead.push(*fd);
        }
        let _ = c.stream.set_nonblocking(true);
    }
    for fd in dead {
        clients.remove(&fd);
    }
}

/// Handles readable data from a client; false when it should be dropped.
fn serve_client(
    clients: &mut HashMap<RawFd, Client>,
    fd: RawFd,
    input: &mut Option<OwnedFd>,
    cfg: &Config,
    status: Option<i32>,
) -> bool {
    let Some(c) = clients.get_mut(&fd) else {
        return false;
    };
    let mut buf = [0u8; 32 * 1024];
    let n = match c.stream.read(&mut buf) {
        Ok(0) => {
            // End of input from a client attached to stdin (`echo hi | run
            // -i ... cat`): with StdinOnce (what `docker run -i` asks) the
            // container's stdin ends too, while the client keeps receiving
            // output; without, it stays open for the next client. Other
            // clients that hang up are dropped.
            if matches!(c.wants, Some(Request::Attach { stdin: true, .. })) {
                c.input_closed = true;
                if !cfg.terminal && cfg.stdin_once {
                    *input = None;
                }
                return true;
            }
            return false;
        }
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
        Err(_) => return false,
    };
    if c.wants.is_none() {
        c.buf.extend_from_slice(&buf[..n]);
        let Some(pos) = c.buf.iter().position(|b| *b == b'\n') else {
            return c.buf.len() < 4096;
        };
        let line: Vec<u8> = c.buf.drain(..=pos).collect();
        let rest: Vec<u8> = std::mem::take(&mut c.buf);
        let Ok(req) = serde_json::from_slice::<Request>(&line) else {
            return false;
        };
        match req {
            Request::Resize { height, width } => {
                if cfg.terminal {
                    if let Some(master) = input.as_ref() {
                        let ws = libc::winsize {
                            ws_row: height,
                            ws_col: width,
                            ws_xpixel: 0,
                            ws_ypixel: 0,
                        };
                        // SAFETY: TIOCSWINSZ reads one winsize through the pointer,
                        // and `ws` lives across the call; `master` keeps the
                        // descriptor open.
                        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
                    }
                }
                let _ = c.stream.set_nonblocking(false);
                let _ = c.stream.write_all(b"ok\n");
                return false;
            }
            Request::Wait if status.is_some() => return false,
            Request::Start => {
                let reply = match start_process(cfg) {
                    Ok(()) => "{\"ok\":true}\n".to_string(),
                    Err(e) => format!("{}\n", serde_json::json!({"error": e})),
                };
                let _ = c.stream.set_nonblocking(false);
                let _ = c.stream.write_all(reply.as_bytes());
                return false;
            }
            other => c.wants = Some(other),
        }
        if !rest.is_empty() {
            return forward_input(c, &rest, input);
        }
        return true;
    }
    forward_input(c, &buf[..n], input)
}

fn forward_input(c: &Client, data: &[u8], input: &mut Option<OwnedFd>) -> bool {
    if !matches!(c.wants, Some(Request::Attach { stdin: true, .. })) {
        return true;
    }
    if let Some(fd) = input.as_ref() {
        let mut f = std::mem::ManuallyDrop::new(
            // SAFETY: borrowed for the write only; ManuallyDrop keeps it open.
            unsafe { fs::File::from_raw_fd(fd.as_raw_fd()) },
        );
        if f.write_all(data).is_err() {
            *input = None;
        }
    }
    true
}

fn finish(cfg: &Config, _exit: &Exit) {
    let _ = Command::new(&cfg.runtime)
        .args(["runtime", "--root"])
        .arg(&cfg.runtime_root)
        .args(["delete", "--force", &cfg.id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = fs::remove_file(cfg.state_dir.join("attach.sock"));
}

/// Client side: sends a request to a shim and returns the connected stream.
pub fn connect(state_dir: &Path, req: &Request) -> std::io::Result<UnixStream> {
    let mut s =
        cais_runtime::with_short_path(&state_dir.join("attach.sock"), |p| UnixStream::connect(p))?;
    let mut line = serde_json::to_vec(req).expect("serializes");
    line.push(b'\n');
    s.write_all(&line)?;
    Ok(s)
}

/// Asks the shim to run the created container's process.
pub fn start(state_dir: &Path) -> std::io::Result<Result<(), String>> {
    let s = connect(state_dir, &Request::Start)?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    let v: serde_json::Value = serde_json::from_str(&line).map_err(std::io::Error::other)?;
    Ok(match v["error"].as_str() {
        Some(e) => Err(e.to_string()),
        None => Ok(()),
    })
}

/// Blocks until the container exits; returns its exit record.
pub fn wait(state_dir: &Path) -> std::io::Result<Exit> {
    if let Some(e) = read_exit(state_dir) {
        return Ok(e);
    }
    match connect(state_dir, &Request::Wait) {
        Ok(s) => {
            let mut line = String::new();
            let _ = BufReader::new(s).read_line(&mut line);
        }
        Err(e) if read_exit(state_dir).is_none() => return Err(e),
        Err(_) => {}
    }
    // A waiter that arrives after the container exited, while the shim
    // still drains output, is hung up on before exit.json is written: give
    // the shim the moment it needs rather than report a made-up status.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(e) = read_exit(state_dir) {
            return Ok(e);
        }
        if !alive(state_dir) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    read_exit(state_dir)
        .ok_or_else(|| std::io::Error::other("the shim exited without an exit status"))
}

/// The exit record, once the container has exited.
pub fn read_exit(state_dir: &Path) -> Option<Exit> {
    fs::read(state_dir.join("exit.json"))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
}

/// True while the shim whose pid is recorded in `state_dir` runs.
pub fn alive(state_dir: &Path) -> bool {
    fs::read_to_string(state_dir.join("shim.pid"))
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
        .is_some_and(|pid| {
            cais_runtime::state::proc_stat(pid).is_some_and(|(s, _)| s != 'Z')
                && fs::read_link(format!("/proc/{pid}/exe")).is_ok()
        })
}
