//! Exec sessions: `docker exec` instances, from create to their exit
//! code, each run by `cais runtime exec` in the container with a process
//! made from the container's own (its env, user, capabilities), and the
//! terminal masters of running ones (for resize). Sessions live in memory
//! only: a daemon restart forgets them, as dockerd does.

use std::collections::HashMap;
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};

use cais_api::{ExecConfig, ExecInspect};
use cais_image::ImageStore;

use crate::config::Config;
use crate::containers::table::Table;
use crate::error::{Error, Kind, Result};
use crate::events::Events;
use crate::ids::random_hex;
use crate::spec;

/// One exec instance.
struct Session {
    container: String,
    config: ExecConfig,
    running: bool,
    exit_code: Option<i64>,
    pid: i64,
    /// The terminal's master while it runs with one.
    terminal: Option<Arc<OwnedFd>>,
}

/// The exec sessions; `sessions` is a leaf lock (nothing is taken while
/// it is held).
pub struct Execs {
    cfg: Config,
    table: Arc<Table>,
    images: Arc<ImageStore>,
    events: Arc<Events>,
    sessions: Mutex<HashMap<String, Session>>,
}

impl Execs {
    pub fn new(
        cfg: Config,
        table: Arc<Table>,
        images: Arc<ImageStore>,
        events: Arc<Events>,
    ) -> Execs {
        Execs {
            cfg,
            table,
            images,
            events,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `POST /containers/{id}/exec`: a session for a running container.
    pub fn create(&self, id: &str, config: ExecConfig) -> Result<String> {
        let rec = self.table.get(id)?;
        if !rec.state.is_running() {
            return Err(Error::Conflict(format!("Container {id} is not running")));
        }
        if rec.state.is_paused() {
            return Err(Error::Conflict(format!(
                "Container {id} is paused, unpause the container before exec"
            )));
        }
        if config.cmd.is_empty() {
            return Err(Error::InvalidArgument("No exec command specified".into()));
        }
        if !config.working_dir.is_empty() && !config.working_dir.starts_with('/') {
            return Err(Error::InvalidArgument(format!(
                "the working directory '{}' is invalid, it needs to be an absolute path",
                config.working_dir
            )));
        }
        for e in &config.env {
            if e.is_empty() || e.starts_with('=') {
                return Err(Error::InvalidArgument(format!(
                    "invalid environment variable: {e}"
                )));
            }
        }
        // The user is looked up now, for an early answer (again at start:
        // the container may change its /etc/passwd meanwhile).
        if !config.user.is_empty() {
            let rootfs = self.images.container_mount(id)?.target;
            spec::resolve_user(&rootfs, &config.user).map_err(Error::InvalidArgument)?;
        }
        let exec_id = random_hex(32);
        self.lock().insert(
            exec_id.clone(),
            Session {
                container: id.to_string(),
                config,
                running: false,
                exit_code: None,
                pid: 0,
                terminal: None,
            },
        );
        rec.emit(&self.events, "exec_create", &[]);
        Ok(exec_id)
    }

    pub fn inspect(&self, exec_id: &str) -> Result<ExecInspect> {
        let execs = self.lock();
        let e = execs
            .get(exec_id)
            .ok_or_else(|| Error::not_found(Kind::Exec, exec_id))?;
        Ok(ExecInspect {
            id: exec_id.into(),
            running: e.running,
            exit_code: e.exit_code,
            open_stdin: e.config.attach_stdin,
            open_stdout: e.config.attach_stdout,
            open_stderr: e.config.attach_stderr,
            container_id: e.container.clone(),
            pid: e.pid,
            process_config: serde_json::json!({
                "tty": e.config.tty, "entrypoint": e.config.cmd.first(), "arguments": e.config.cmd.get(1..),
                "privileged": e.config.privileged, "user": e.config.user
            }),
        })
    }

    /// Prepares `cais runtime exec` for an exec instance: the command, with
    /// the process JSON written next to the container.
    pub fn command(
        &self,
        exec_id: &str,
        console_socket: Option<&Path>,
        detach: bool,
    ) -> Result<(Command, ExecConfig, String)> {
        let (container, config) = {
            let mut execs = self.lock();
            let e = execs
                .get_mut(exec_id)
                .ok_or_else(|| Error::not_found(Kind::Exec, exec_id))?;
            if e.running || e.exit_code.is_some() {
                return Err(Error::Conflict(format!("exec {exec_id} has already run")));
            }
            e.running = true;
            (e.container.clone(), e.config.clone())
        };
        let rec = self.table.get(&container)?;
        let dir = self.table.dir(&container);
        let config_path = dir.join("bundle/config.json");
        let data = fs::read(&config_path)
            .map_err(Error::io("reading the container's config", &config_path))?;
        let spec: serde_json::Value =
            serde_json::from_slice(&data).map_err(|source| Error::Json {
                what: format!("the container's config {}", config_path.display()),
                source,
            })?;
        let mut process = spec["process"].clone();
        process["args"] = serde_json::json!(config.cmd);
        process["terminal"] = config.tty.into();
        if !config.working_dir.is_empty() {
            process["cwd"] = config.working_dir.clone().into();
        }
        // The container's environment, then the exec's replacing or
        // adding to it (a bare name unsets), as dockerd makes it.
        let mut env: Vec<String> =
            serde_json::from_value(process["env"].clone()).unwrap_or_default();
        if config.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        spec::apply_env(&mut env, &config.env);
        process["env"] = serde_json::json!(env);
        if !config.user.is_empty() {
            let rootfs = self.images.container_mount(&container)?.target;
            let (uid, gid, mut extra) =
                spec::resolve_user(&rootfs, &config.user).map_err(Error::InvalidArgument)?;
            // The container's `GroupAdd` goes along, as dockerd adds it.
            for g in spec::resolve_groups(&rootfs, &rec.host_config.group_add)
                .map_err(Error::InvalidArgument)?
            {
                if !extra.contains(&g) {
                    extra.push(g);
                }
            }
            process["user"] = serde_json::json!({"uid": uid, "gid": gid, "additionalGids": extra});
        }
        if config.privileged {
            let all = spec::all_caps();
            process["capabilities"] =
                serde_json::json!({"bounding": all, "effective": all, "permitted": all});
        }
        let process_file = dir.join(format!("exec-{exec_id}.json"));
        fs::write(&process_file, process.to_string())
            .map_err(Error::io("writing the exec process", &process_file))?;
        let mut cmd = self.cfg.runtime_command();
        cmd.arg("exec").arg("--process").arg(&process_file);
        // Written once the process runs: without it, it never started.
        let pid_file = self.pid_file(&container, exec_id);
        let _ = fs::remove_file(&pid_file);
        cmd.arg("--pid-file").arg(&pid_file);
        if let Some(s) = console_socket {
            cmd.arg("--console-socket").arg(s);
        }
        if detach {
            cmd.arg("--detach");
        }
        cmd.arg(&container);
        rec.emit(
            &self.events,
            "exec_start",
            &[("execID", exec_id.to_string())],
        );
        Ok((cmd, config, container))
    }

    /// Where `cais runtime exec` writes the process's pid once it runs.
    fn pid_file(&self, container: &str, exec_id: &str) -> std::path::PathBuf {
        self.table
            .dir(container)
            .join(format!("exec-{exec_id}.pid"))
    }

    /// The exec's process id once it runs (recorded for inspect), `None`
    /// while it has not started or when it could not be started.
    pub fn started(&self, exec_id: &str) -> Option<i64> {
        let container = self.lock().get(exec_id)?.container.clone();
        let pid: i64 = fs::read_to_string(self.pid_file(&container, exec_id))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        self.set_pid(exec_id, pid);
        Some(pid)
    }

    /// The detach keys of an exec, as its create request gave them.
    pub fn detach_keys(&self, exec_id: &str) -> Option<String> {
        self.lock()
            .get(exec_id)
            .map(|e| e.config.detach_keys.clone())
    }

    /// Records an exec's exit code and forgets its process and pid files.
    pub fn finished(&self, exec_id: &str, code: i64) {
        let mut execs = self.lock();
        if let Some(e) = execs.get_mut(exec_id) {
            e.running = false;
            e.exit_code = Some(code);
            let dir = self.table.dir(&e.container);
            let _ = fs::remove_file(dir.join(format!("exec-{exec_id}.json")));
            let _ = fs::remove_file(dir.join(format!("exec-{exec_id}.pid")));
        }
    }

    pub fn set_pid(&self, exec_id: &str, pid: i64) {
        if let Some(e) = self.lock().get_mut(exec_id) {
            e.pid = pid;
        }
    }

    /// Keeps a running exec's terminal master, for `resize`, and gives
    /// the terminal the size the exec asked for (`ConsoleSize`).
    pub fn set_terminal(&self, exec_id: &str, master: Arc<OwnedFd>) {
        let size = self.lock().get_mut(exec_id).and_then(|e| {
            e.terminal = Some(master.clone());
            e.config.console_size
        });
        if let Some([h, w]) = size.filter(|[h, w]| *h > 0 && *w > 0) {
            set_size(
                &master,
                h.min(u16::MAX as u64) as u16,
                w.min(u16::MAX as u64) as u16,
            );
        }
    }

    /// Drops an exec's terminal master once its output has ended.
    pub fn clear_terminal(&self, exec_id: &str) {
        if let Some(e) = self.lock().get_mut(exec_id) {
            e.terminal = None;
        }
    }

    /// `POST /exec/{id}/resize`: the size of a running exec's terminal.
    pub fn resize(&self, exec_id: &str, height: u16, width: u16) -> Result<()> {
        let execs = self.lock();
        let master = execs
            .get(exec_id)
            .and_then(|e| e.terminal.as_ref())
            .ok_or_else(|| Error::not_found(Kind::ExecTerminal, exec_id))?;
        set_size(master, height, width);
        Ok(())
    }
}

fn set_size(master: &OwnedFd, height: u16, width: u16) {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize, which `ws` is, and the
    // master is an open terminal descriptor this session owns.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}
