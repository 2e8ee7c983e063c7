//! The per-container shim: a small supervisor process that starts the
//! container through the runtime, holds its stdio, writes its logs, reaps its
//! exit status and keeps running when the daemon stops or restarts.
//!
//! The daemon gets its shims from `cais shim-server` (`serve`, `Spawner`),
//! which it starts once and which forks one launcher per request, so no
//! shim pays for an exec of its own; `cais shim ...` does the same for one
//! container by hand. Either way the launcher forks; it waits until the
//! container is created (or failed), reports one JSON line and exits, while
//! the child, in its own
//! session and as child subreaper (so the container's init is re-parented to
//! it), runs the supervision loop until the container exits. It is
//! single-threaded and never links the daemon's async machinery, to stay
//! small in memory.
//!
//! The child creates, starts and deletes the container through the runtime
//! library in-process (`cais_runtime::Runtime`), no runtime command in
//! between: the library forks the container's bootstrap and init from the
//! shim, which is single-threaded as the library requires. Those children
//! enter the container before they exec, so the shim runs from a binary
//! nothing can write through (CVE-2019-5736): the daemon starts it from its
//! read-only view of the binary (`cais_runtime::sealed`), and `cais shim`
//! started any other way re-executes itself from one first. The runtime's
//! log (warnings, and the error of a failed create) is `runtime.log`.
//!
//! Files in the container's state directory:
//! - `shim.pid`: the shim's pid;
//! - `runtime.log`: the runtime's log, JSON lines in runc's format;
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
use std::time::{Duration, Instant};

use cais_runtime::{CreateOptions, ProcessIo, Runtime};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use serde::{Deserialize, Serialize};

use crate::logfile;

/// How to start one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub id: String,
    pub bundle: PathBuf,
    pub state_dir: PathBuf,
    pub runtime_root: PathBuf,
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
    fork_supervisor(cfg, None)
}

/// `main`; `parents` is a descriptor the supervisor must not keep (the
/// server's report socket, which the daemon reads to its first line).
fn fork_supervisor(cfg: Config, parents: Option<OwnedFd>) -> Result<String, String> {
    let (mut report_rx, report_tx) =
        UnixStream::pair().map_err(|e| format!("shim: socketpair: {e}"))?;
    // SAFETY: the shim command is single-threaded at this point.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            drop(parents);
            drop(report_rx);
            let code = supervise(&cfg, report_tx);
            std::process::exit(code)
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(report_tx);
            let line = read_report(&mut report_rx, child);
            let line = line.trim();
            if line.starts_with('{') {
                Ok(line.to_owned())
            } else if line.is_empty() {
                Err("shim exited before the container started".to_owned())
            } else {
                Err(serde_json::from_str::<String>(line).unwrap_or_else(|_| line.to_owned()))
            }
        }
        Err(e) => Err(format!("shim: fork: {e}")),
    }
}

/// The supervisor's one report line. Not read to EOF: the container's
/// init, forked from the supervisor, holds a copy of the socket until it
/// execs. A supervisor that died without reporting ends the wait.
fn read_report(report: &mut UnixStream, supervisor: nix::unistd::Pid) -> String {
    let mut line = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let mut pfd = [libc::pollfd {
            fd: report.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: one valid pollfd, its length passed.
        let n = unsafe { libc::poll(pfd.as_mut_ptr(), 1, 100) };
        if n > 0 {
            match report.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => {
                    line.extend_from_slice(&buf[..k]);
                    if line.ends_with(b"\n") {
                        break;
                    }
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        if let Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) =
            waitpid(supervisor, Some(WaitPidFlag::WNOHANG))
        {
            // Whatever it wrote before it went.
            let _ = report.set_nonblocking(true);
            while let Ok(k) = report.read(&mut buf) {
                if k == 0 {
                    break;
                }
                line.extend_from_slice(&buf[..k]);
            }
            break;
        }
    }
    String::from_utf8_lossy(&line).into_owned()
}

/// Reports a failure to the waiting parent: one line, a JSON string.
fn report_error(report: &mut UnixStream, e: &dyn std::fmt::Display) {
    let _ = writeln!(report, "{}", serde_json::Value::String(e.to_string()));
}

/// What the daemon's request for a shim comes to: the shim's report, one
/// line (a `Started` object, or the reason the container did not start as
/// a JSON string), written to `report`.
fn launch(cfg: Config, mut report: UnixStream) {
    let copy = report.try_clone().ok().map(OwnedFd::from);
    let line = match fork_supervisor(cfg, copy) {
        Ok(line) => line,
        Err(e) => serde_json::Value::String(e).to_string(),
    };
    let _ = writeln!(report, "{line}");
}

/// `cais shim-server`: the process the daemon starts once (from its sealed
/// binary) and asks for every shim. It forks each shim from itself, where
/// `cais shim` would be executed anew: no exec, dynamic linking and
/// relocation per container, and the pages of the binary relocation
/// dirties are shared by every shim, copy-on-write from the server, not
/// private to each. Single-threaded, so its forks may run Rust code.
///
/// Requests come on `control` (its stdin, a SOCK_SEQPACKET socket): each
/// message is a `Config` as JSON carrying one descriptor, the socket the
/// shim's report goes to (see `launch`). The server ends when the
/// daemon's end closes; shims outlive it (each is re-parented away from it
/// when the process that forked it exits, as with `cais shim`).
pub fn serve(control: OwnedFd) -> i32 {
    // Executed as `/proc/self/fd/N` (the sealed view), the process would be
    // named `N` in ps and /proc/PID/comm: name it and its shims.
    let _ = nix::sys::prctl::set_name(c"cais-shim-srv");
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Reap the forks that reported (they exit at once).
        while let Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) =
            waitpid(None::<nix::unistd::Pid>, Some(WaitPidFlag::WNOHANG))
        {}
        let (len, report) = match receive(&control, &mut buf) {
            Ok(Some(r)) => r,
            Ok(None) => return 0,
            Err(Errno::EINTR) => continue,
            Err(e) => {
                tracing::error!(error = %e, "shim server: reading a request");
                return 1;
            }
        };
        let Some(report) = report else { continue };
        let mut report = UnixStream::from(report);
        let cfg = match serde_json::from_slice::<Config>(&buf[..len]) {
            Ok(c) => c,
            Err(e) => {
                let _ = writeln!(
                    report,
                    "{}",
                    serde_json::Value::String(format!("shim server: bad request: {e}"))
                );
                continue;
            }
        };
        // SAFETY: the server is single-threaded, so the child may run Rust
        // code; it only launches the shim and exits.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Child) => {
                // The control socket stays with the server (stdin is it):
                // the shim and the container must not keep it open.
                if let Ok(null) = fs::File::open("/dev/null") {
                    // SAFETY: dup2 takes integers; `null` stays open across
                    // the call and fd 0 has no Rust owner here.
                    unsafe { libc::dup2(null.as_raw_fd(), 0) };
                }
                drop(control);
                let _ = nix::sys::prctl::set_name(c"cais-shim");
                launch(cfg, report);
                // SAFETY: _exit ends this fork without running the
                // server's exit handlers or flushing its buffers twice.
                unsafe { libc::_exit(0) }
            }
            Ok(nix::unistd::ForkResult::Parent { .. }) => drop(report),
            Err(e) => {
                let _ = writeln!(
                    report,
                    "{}",
                    serde_json::Value::String(format!("shim server: fork: {e}"))
                );
            }
        }
    }
}

/// `serve` on this process's stdin, where the daemon puts the control
/// socket.
pub fn serve_stdin() -> i32 {
    use std::os::fd::AsFd;
    match std::io::stdin().as_fd().try_clone_to_owned() {
        Ok(control) => serve(control),
        Err(e) => {
            tracing::error!(error = %e, "shim server: no control socket on stdin");
            1
        }
    }
}

/// One request: its length in `buf` and its descriptor; None at EOF.
fn receive(control: &OwnedFd, buf: &mut [u8]) -> nix::Result<Option<(usize, Option<OwnedFd>)>> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        control.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fd = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for (i, raw) in fds.into_iter().enumerate() {
                // SAFETY: the kernel just installed these descriptors for us.
                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                if i == 0 {
                    fd = Some(owned);
                }
            }
        }
    }
    if msg.bytes == 0 && fd.is_none() {
        return Ok(None);
    }
    Ok(Some((msg.bytes, fd)))
}

/// The daemon's side of the shim server: started on first use (and again
/// if it died), asked for one shim per container start.
pub struct Spawner {
    /// The program, run as `<exe> shim-server`.
    exe: PathBuf,
    server: std::sync::Mutex<Option<Server>>,
}

struct Server {
    child: std::process::Child,
    control: OwnedFd,
}

/// How long a shim may take to create its container before the daemon
/// gives up on its report (hooks run during create).
const REPORT_TIMEOUT: Duration = Duration::from_secs(300);

impl Spawner {
    pub fn new(exe: PathBuf) -> Spawner {
        Spawner {
            exe,
            server: std::sync::Mutex::new(None),
        }
    }

    fn start_server(&self) -> std::io::Result<Server> {
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        let child = std::process::Command::new(&self.exe)
            .arg("shim-server")
            .stdin(std::process::Stdio::from(theirs))
            .spawn()?;
        Ok(Server {
            child,
            control: ours,
        })
    }

    /// Starts the shim of `cfg`'s container: its report once the
    /// container is created, or the reason it was not.
    pub fn spawn(&self, cfg: &Config) -> std::io::Result<Result<Started, String>> {
        let request = serde_json::to_vec(cfg).map_err(std::io::Error::other)?;
        let (report, theirs) = UnixStream::pair()?;
        {
            let mut server = self.server.lock().unwrap_or_else(|p| p.into_inner());
            let mut sent = Err(std::io::Error::other("no shim server"));
            // A server that died (killed, or a bug) is replaced once.
            for _ in 0..2 {
                let alive = server
                    .as_mut()
                    .is_some_and(|s| matches!(s.child.try_wait(), Ok(None)));
                if !alive {
                    *server = Some(self.start_server()?);
                }
                let Some(s) = server.as_ref() else { break };
                sent = cais_runtime::console::send_fd_with(
                    s.control.as_raw_fd(),
                    theirs.as_raw_fd(),
                    &request,
                )
                .map_err(std::io::Error::from);
                if sent.is_ok() {
                    break;
                }
                if let Some(mut dead) = server.take() {
                    let _ = dead.child.kill();
                    let _ = dead.child.wait();
                }
            }
            sent?;
        }
        // The forks hold the other end: this one alone reads.
        drop(theirs);
        report.set_read_timeout(Some(REPORT_TIMEOUT))?;
        let mut line = String::new();
        BufReader::new(report).read_line(&mut line)?;
        let line = line.trim();
        if line.starts_with('{') {
            return serde_json::from_str::<Started>(line)
                .map(Ok)
                .map_err(std::io::Error::other);
        }
        Ok(Err(serde_json::from_str::<String>(line).unwrap_or_else(
            |_| {
                if line.is_empty() {
                    "the shim exited before the container started".to_string()
                } else {
                    line.to_string()
                }
            },
        )))
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
    cais_runtime::log::init(Some(cfg.state_dir.join("runtime.log")), true);
    let runtime = Runtime::new(&cfg.runtime_root);
    let (stdio, pid) = match create_container(cfg, &runtime) {
        Ok(s) => s,
        // A failed create leaves nothing behind (the library's promise).
        Err(e) => {
            report_error(&mut report, &e);
            return 1;
        }
    };
    let me = std::process::id() as i32;
    let _ = fs::write(cfg.state_dir.join("shim.pid"), me.to_string());
    let listener = match bind_attach(&cfg.state_dir) {
        Ok(l) => l,
        Err(e) => {
            report_error(&mut report, &e);
            let _ = runtime.delete(&cfg.id, true);
            return 1;
        }
    };
    // The create's parsing and planning left freed heap behind: give it
    // back, so the long-lived supervisor stays small.
    trim_heap();
    let _ = writeln!(
        report,
        "{}",
        serde_json::to_string(&Started { shim_pid: me, pid }).expect("serializes")
    );
    drop(report);
    detach_stdio();
    let exit = run_loop(cfg, &runtime, stdio, pid, listener);
    finish(cfg, &runtime, &exit);
    0
}

/// Returns freed heap memory to the kernel (malloc_trim(3)).
fn trim_heap() {
    // SAFETY: malloc_trim takes an integer and only releases free memory of
    // the allocator; no live allocation is touched.
    unsafe { libc::malloc_trim(0) };
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

/// Creates the container through the runtime library, its stdio being
/// pipes the shim holds (or a terminal whose master comes back over a
/// socket pair); returns them and init's pid.
fn create_container(cfg: &Config, runtime: &Runtime) -> Result<(Stdio3, i32), Error> {
    let fail = |message: String| Error::Start {
        id: cfg.id.clone(),
        message,
    };
    let null = || {
        io(
            fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
                .map(OwnedFd::from),
            || "opening /dev/null".into(),
        )
    };
    let (process_io, held, console) = if cfg.terminal {
        // init's stdio until the terminal replaces it: never the shim's own,
        // which the daemon reads to its end.
        let (ours, theirs) = io(UnixStream::pair(), || "socketpair".into())?;
        let process_io = ProcessIo {
            stdio: Some([null()?, null()?, null()?]),
            console: Some(OwnedFd::from(theirs)),
        };
        (process_io, None, Some(ours))
    } else {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let (stdin_theirs, stdin) = if cfg.stdin {
            let (in_r, in_w) = pipe()?;
            (in_r, Some(in_w))
        } else {
            (null()?, None)
        };
        let process_io = ProcessIo {
            stdio: Some([stdin_theirs, out_w, err_w]),
            console: None,
        };
        let held = Stdio3::Pipes {
            stdin,
            stdout: out_r,
            stderr: err_r,
        };
        (process_io, Some(held), None)
    };
    // The child's ends of the pipes go with `process_io`: create closes
    // them here once init holds them, so EOF comes when the container
    // closes its output.
    let pid = runtime
        .create_with_io(&cfg.id, &cfg.bundle, &CreateOptions::default(), process_io)
        .map_err(|e| {
            let message = cais_runtime::error::chain(&e);
            cais_runtime::log::error(&message);
            fail(message)
        })?;
    let stdio = match (held, console) {
        (Some(s), _) => s,
        (None, Some(ours)) => {
            // init sent the master before it reported ready.
            match cais_runtime::console::recv_fd(ours.as_raw_fd()) {
                Ok(master) => Stdio3::Terminal { master },
                Err(e) => {
                    let _ = runtime.delete(&cfg.id, true);
                    return Err(fail(format!("receiving the terminal: {e}")));
                }
            }
        }
        (None, None) => return Err(fail("no terminal was received".into())),
    };
    Ok((stdio, pid))
}

/// Releases the created container's process (the runtime's `start`).
fn start_process(cfg: &Config, runtime: &Runtime) -> Result<(), String> {
    let started = runtime.start(&cfg.id).map_err(|e| {
        let message = cais_runtime::error::chain(&e);
        cais_runtime::log::error(&message);
        message
    });
    trim_heap();
    started
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

fn run_loop(
    cfg: &Config,
    runtime: &Runtime,
    stdio: Stdio3,
    pid: i32,
    listener: UnixListener,
) -> Exit {
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
            if !serve_client(&mut clients, fd, &mut input, cfg, runtime, status) {
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
    runtime: &Runtime,
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
                let reply = match start_process(cfg, runtime) {
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

fn finish(cfg: &Config, runtime: &Runtime, _exit: &Exit) {
    let _ = runtime.delete(&cfg.id, true);
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
