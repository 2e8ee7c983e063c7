//! `cais runtime <verb>`: the runc-compatible command line, so engines
//! (podman, containerd, dockerd) can use cais as their OCI runtime. Also
//! reached as `cais-runtime <verb>` through a symlink.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use cais_runtime::{CreateOptions, ExecOptions, Runtime};
use clap::{Args, Parser, Subcommand};

/// runc's global flags, then a verb.
#[derive(Debug, Parser)]
#[command(
    name = "cais-runtime",
    version,
    about = "OCI runtime (runc-compatible command line)"
)]
pub struct RuntimeCli {
    /// Directory holding container state.
    #[arg(long, global = true, default_value = "/run/cais")]
    root: PathBuf,
    /// Write warnings and errors to this file instead of stderr.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Log line format: text or json.
    #[arg(long = "log-format", global = true, default_value = "text")]
    log_format: String,
    /// Accepted for compatibility; default cgroup paths then use systemd's
    /// slice:prefix:name form, applied through cgroupfs.
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// Accepted for compatibility.
    #[arg(long, global = true)]
    debug: bool,
    /// With `spec`: a config for an unprivileged user (user namespace).
    /// Otherwise accepted for compatibility.
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "true")]
    rootless: Option<String>,
    /// Accepted for compatibility.
    #[arg(long, global = true)]
    criu: Option<String>,
    #[command(subcommand)]
    pub verb: Verb,
}

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Create a container from a bundle; it waits for `start`.
    Create(CreateArgs),
    /// Run the user process of a created container.
    Start { id: String },
    /// Print a container's state as JSON.
    State { id: String },
    /// Send a signal (default SIGTERM) to a container.
    Kill {
        /// Signal every process in the container.
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Remove a stopped container (any container with --force).
    Delete {
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// Create and start a container, then wait for it unless detached.
    Run(Box<RunArgs>),
    /// Run another process in a running container.
    Exec(Box<ExecArgs>),
    /// List the processes of a container.
    Ps {
        #[arg(short, long, default_value = "table")]
        format: String,
        id: String,
        /// Options passed to ps(1) for the table format.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Freeze every process of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// List containers.
    #[command(alias = "ls")]
    List {
        #[arg(short, long, default_value = "table")]
        format: String,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Write a default config.json for a bundle.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
    },
    /// Print what this runtime supports, as JSON.
    Features,
    /// Print resource usage (with --stats, once).
    Events {
        #[arg(long)]
        stats: bool,
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: i32,
    /// Accepted for compatibility: cais always uses pivot_root.
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Accepted for compatibility.
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    id: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    create: CreateArgs,
    #[arg(short, long)]
    detach: bool,
    /// Keep the container's state after it exits.
    #[arg(long)]
    keep: bool,
    /// Accepted for compatibility.
    #[arg(long = "no-subreaper")]
    no_subreaper: bool,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    #[arg(long)]
    cwd: Option<PathBuf>,
    #[arg(short, long)]
    env: Vec<String>,
    #[arg(short, long)]
    tty: bool,
    /// uid[:gid]
    #[arg(short, long)]
    user: Option<String>,
    #[arg(short = 'g', long = "additional-gids")]
    additional_gids: Vec<u32>,
    /// A JSON file with the process (the `process` object of config.json).
    #[arg(short, long)]
    process: Option<PathBuf>,
    #[arg(short, long)]
    detach: bool,
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    #[arg(long = "process-label")]
    process_label: Option<String>,
    #[arg(long)]
    apparmor: Option<String>,
    #[arg(long = "no-new-privs")]
    no_new_privs: bool,
    #[arg(short, long)]
    cap: Vec<String>,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: i32,
    #[arg(long)]
    cgroup: Option<String>,
    #[arg(long = "ignore-paused")]
    ignore_paused: bool,
    id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

impl RuntimeCli {
    /// True for the verbs whose process enters a container: they must run
    /// from the sealed copy of the binary.
    pub fn enters_container(&self) -> bool {
        matches!(self.verb, Verb::Create(_) | Verb::Run(_) | Verb::Exec(_))
    }
}

/// Runs one runtime verb; returns the process exit code.
pub fn run(cli: RuntimeCli) -> Result<i32> {
    cais_runtime::log::init(cli.log.clone(), cli.log_format == "json");
    let rt = Runtime::new(&cli.root);
    let result = dispatch(&rt, &cli);
    if let Err(e) = &result {
        let msg = format!("{e:#}");
        cais_runtime::log::error(&msg);
        if cli.log.is_some() {
            // Callers that pass --log still show stderr to their users.
            eprintln!("cais-runtime: {msg}");
        }
        return Ok(1);
    }
    result
}

fn dispatch(rt: &Runtime, cli: &RuntimeCli) -> Result<i32> {
    match &cli.verb {
        Verb::Create(a) => {
            rt.create(&a.id, &a.bundle, &create_options(a, cli.systemd_cgroup))?;
        }
        Verb::Start { id } => rt.start(id)?,
        Verb::State { id } => print_json(&rt.state(id)?)?,
        Verb::Kill { all, id, signal } => {
            rt.kill(id, cais_runtime::signal::parse(signal)?, *all)?
        }
        Verb::Delete { force, id } => rt.delete(id, *force)?,
        Verb::Run(a) => {
            let a = a.as_ref();
            let opts = create_options(&a.create, cli.systemd_cgroup);
            let code = rt.run(&a.create.id, &a.create.bundle, &opts, a.detach)?;
            return Ok(code);
        }
        Verb::Exec(a) => return exec(rt, a.as_ref()),
        Verb::Ps {
            format,
            id,
            ps_args,
        } => ps(rt, format, id, ps_args)?,
        Verb::Pause { id } => rt.pause(id)?,
        Verb::Resume { id } => rt.resume(id)?,
        Verb::List { format, quiet } => list(rt, format, *quiet)?,
        Verb::Spec { bundle } => {
            let rootless = cli.rootless.as_deref() == Some("true");
            let path = bundle.join("config.json");
            if path.exists() {
                bail!("{} already exists; remove it first", path.display());
            }
            let spec = cais_runtime::bundle::default_spec(rootless);
            std::fs::write(&path, serde_json::to_string_pretty(&spec)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Verb::Features => print_json(&features())?,
        Verb::Events {
            stats,
            interval,
            id,
        } => {
            let every = parse_interval(interval)?;
            loop {
                let data = rt.stats(id)?;
                print_json(&serde_json::json!({"type": "stats", "id": id, "data": data}))?;
                if *stats {
                    break;
                }
                std::thread::sleep(every);
            }
        }
    }
    Ok(0)
}

fn create_options(a: &CreateArgs, systemd_cgroup: bool) -> CreateOptions {
    CreateOptions {
        console_socket: a.console_socket.clone(),
        pid_file: a.pid_file.clone(),
        preserve_fds: a.preserve_fds,
        systemd_cgroup,
    }
}

fn exec(rt: &Runtime, a: &ExecArgs) -> Result<i32> {
    let process: oci_spec::runtime::Process = match &a.process {
        Some(path) => {
            let data =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            cais_runtime::spec_ext::process_from_json(&data).map_err(|e| {
                anyhow::anyhow!("{} is not a valid process JSON: {e}", path.display())
            })?
        }
        None => {
            if a.command.is_empty() {
                bail!("exec needs a command or --process");
            }
            let spec = rt.spec(&a.id)?;
            let mut p = spec.process().clone().unwrap_or_default();
            p.set_args(Some(a.command.clone()));
            p.set_terminal(Some(a.tty));
            if let Some(cwd) = &a.cwd {
                p.set_cwd(cwd.clone());
            }
            let mut env = p.env().clone().unwrap_or_default();
            env.extend(a.env.iter().cloned());
            p.set_env(Some(env));
            if let Some(user) = &a.user {
                let (uid, gid) = match user.split_once(':') {
                    Some((u, g)) => (u.parse()?, g.parse()?),
                    None => (user.parse()?, 0),
                };
                let mut u = p.user().clone();
                u.set_uid(uid);
                u.set_gid(gid);
                if !a.additional_gids.is_empty() {
                    u.set_additional_gids(Some(a.additional_gids.clone()));
                }
                p.set_user(u);
            }
            if a.no_new_privs {
                p.set_no_new_privileges(Some(true));
            }
            if !a.cap.is_empty() {
                let mut caps = p.capabilities().clone().unwrap_or_default();
                let extra: Vec<oci_spec::runtime::Capability> = a
                    .cap
                    .iter()
                    .map(|c| {
                        let name = if c.starts_with("CAP_") {
                            c.clone()
                        } else {
                            format!("CAP_{c}")
                        };
                        serde_json::from_value(serde_json::Value::String(name))
                            .with_context(|| format!("unknown capability {c:?}"))
                    })
                    .collect::<Result<_>>()?;
                for set in [
                    caps.bounding().clone(),
                    caps.effective().clone(),
                    caps.permitted().clone(),
                ]
                .iter()
                .enumerate()
                {
                    let mut s = set.1.clone().unwrap_or_default();
                    s.extend(extra.iter().copied());
                    match set.0 {
                        0 => caps.set_bounding(Some(s)),
                        1 => caps.set_effective(Some(s)),
                        _ => caps.set_permitted(Some(s)),
                    };
                }
                p.set_capabilities(Some(caps));
            }
            p
        }
    };
    let opts = ExecOptions {
        console_socket: a.console_socket.clone(),
        pid_file: a.pid_file.clone(),
        detach: a.detach,
        preserve_fds: a.preserve_fds,
        ignore_paused: a.ignore_paused,
    };
    Ok(rt.exec_foreground(&a.id, &process, &opts)?)
}

fn ps(rt: &Runtime, format: &str, id: &str, ps_args: &[String]) -> Result<()> {
    let pids = rt.pids(id)?;
    match format {
        "json" => print_json(&pids),
        "table" => {
            let args = if ps_args.is_empty() {
                vec!["-ef".to_string()]
            } else {
                ps_args.to_vec()
            };
            let out = std::process::Command::new("ps")
                .args(&args)
                .output()
                .context("running ps")?;
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or_default();
            let pid_col = header
                .split_whitespace()
                .position(|h| h == "PID")
                .context("ps output has no PID column")?;
            println!("{header}");
            for line in lines {
                let pid: Option<i32> = line
                    .split_whitespace()
                    .nth(pid_col)
                    .and_then(|p| p.parse().ok());
                if pid.is_some_and(|p| pids.contains(&p)) {
                    println!("{line}");
                }
            }
            Ok(())
        }
        other => bail!("unknown format {other:?}: use table or json"),
    }
}

fn list(rt: &Runtime, format: &str, quiet: bool) -> Result<()> {
    let states = rt.list()?;
    if quiet {
        for s in &states {
            println!("{}", s.id);
        }
        return Ok(());
    }
    match format {
        "json" => print_json(&states),
        "table" => {
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{:<12} {:<8} {:<10} {:<40} {:<30} OWNER",
                "ID", "PID", "STATUS", "BUNDLE", "CREATED"
            )?;
            for s in &states {
                writeln!(
                    out,
                    "{:<12} {:<8} {:<10} {:<40} {:<30} {}",
                    s.id,
                    s.pid.unwrap_or(0),
                    s.status,
                    s.bundle.display(),
                    s.created,
                    s.owner
                )?;
            }
            Ok(())
        }
        other => bail!("unknown format {other:?}: use table or json"),
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

fn parse_interval(s: &str) -> Result<std::time::Duration> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().with_context(|| format!("bad interval {s:?}"))?;
    Ok(match unit {
        "" | "s" => std::time::Duration::from_secs(n),
        "ms" => std::time::Duration::from_millis(n),
        "m" => std::time::Duration::from_secs(n * 60),
        _ => bail!("bad interval {s:?}"),
    })
}

fn features() -> serde_json::Value {
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": cais_runtime::state::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": ["async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "loud",
            "mand", "noatime", "nodev", "nodiratime", "noexec", "nomand", "norelatime", "nostrictatime",
            "nosuid", "private", "rbind", "relatime", "remount", "ro", "rprivate", "rro", "rnosuid", "rnodev",
            "rnoexec", "rshared", "rslave", "runbindable", "rw", "shared", "silent", "slave", "strictatime",
            "suid", "sync", "tmpcopyup", "unbindable", "idmap", "ridmap"],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": (0..=cais_runtime::process::last_cap()).map(cais_runtime::process::cap_name).collect::<Vec<_>>(),
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false},
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                    "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"]
            },
            // features-linux.md: what the runtime implements, whatever
            // this host has; a label the host cannot apply is refused at create.
            "apparmor": {"enabled": true},
            "selinux": {"enabled": true},
            "intelRdt": {"enabled": true, "schemata": true, "monitoring": true},
            "memoryPolicy": {
                "modes": ["MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE",
                    "MPOL_PREFERRED", "MPOL_PREFERRED_MANY", "MPOL_LOCAL"],
                "flags": ["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"]
            },
            "mountExtensions": {"idmap": {"enabled": true}},
            "netDevices": {"enabled": false}
        }
    })
}
