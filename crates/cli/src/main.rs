//! `cais`: the one binary. Glue only; the logic lives in the library crates.
//!
//! Module map: `runtime` is the runc-compatible command line; `client_cmds`
//! the docker-like commands, which talk to the daemon through
//! `cais_client::http` (`template` is Go's text/template as docker runs
//! `--format`, `listing` the rows, titles and inspect output docker prints
//! for each listing, `system` version, info, df and the prune verbs,
//! `container_ops` cp, diff, export and update, `run_flags` the resource
//! flags and the refused ones, `term` raw mode and
//! resizes; `network` the `network` commands and docker's `-p` syntax,
//! parsed before any request; `build` is `cais build`, which tars the
//! context like the docker CLI); `images`,
//! `transfer` and `build` work on the local store when a data root is given.
//! `logging` installs the one `tracing` subscriber (`daemon --log-level`,
//! `--log-format text|json`). `main` also dispatches the hidden `shim` and
//! `archive` helpers and prints what they return.
//!
//! Tests (`crates/cli/tests/`) drive the built binary: `runtime.rs`
//! (busybox containers checked from inside), `engine.rs` (a daemon and the
//! docker CLI), `cli.rs` (the cais CLI), `network.rs` (bridges, DNS, ports
//! curled from the host), `build.rs` and `build_engine.rs` (the executor,
//! then docker build through the daemon), `images.rs`, `transfer.rs`,
//! `registry.rs`, `surface.rs` (cais beside the docker CLI on one daemon).
//!
//! Exit codes: 0 success, 1 an error (printed with its causes), and for
//! `runtime run` / `runtime exec` in the foreground the container process's
//! own exit code (128 + signal when killed by a signal). The docker-like
//! client commands follow docker: 125 for a bad command line and for
//! `run`/`create` failing before the container runs (127 when its command
//! is not found, 126 when it cannot be run), the container's code for
//! `run` in the foreground and `exec`, 1 for other errors.

mod build;
mod client_cmds;
mod compose;
mod container_ops;
mod images;
mod kube;
mod listing;
mod logging;
mod network;
mod run_flags;
mod runtime;
mod system;
mod template;
mod term;
mod transfer;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cais", version, about = "A container platform")]
struct Cli {
    /// The daemon's socket [env: CAIS_HOST, DOCKER_HOST; default
    /// unix:///run/cais.sock].
    #[arg(short = 'H', long = "host")]
    host: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The OCI runtime, with runc's command line.
    Runtime(Box<runtime::RuntimeCli>),
    /// The engine: serves the Docker Engine API on a unix socket.
    Daemon(DaemonArgs),
    /// Copy files in or out of a container's root (run by the daemon).
    #[command(hide = true)]
    Archive(ArchiveArgs),
    /// Supervise one container (started by the daemon, not by hand).
    #[command(hide = true)]
    Shim(ShimArgs),
    /// The OCI distribution registry server.
    #[command(subcommand)]
    Registry(cais_registry_server::cli::Command),
    #[command(flatten)]
    Images(images::ImageCommand),
    #[command(flatten)]
    Client(Box<client_cmds::ClientCommand>),
    /// Log in to a registry (credentials go to docker's config.json).
    Login(transfer::LoginArgs),
    /// Forget a registry's stored credentials.
    Logout(transfer::LogoutArgs),
    /// Pull an image from a registry (through the daemon, or into the
    /// local store with --data-root).
    Pull(transfer::PullArgs),
    /// Push an image to a registry (through the daemon, or from the local
    /// store with --data-root).
    Push(transfer::PushArgs),
    /// Build an image from a Dockerfile (through the daemon, or into the
    /// local store with --data-root).
    Build(Box<build::BuildArgs>),
    /// Define and run multi-container applications (docker compose v2's
    /// command line).
    Compose(Box<compose::ComposeArgs>),
    /// The orchestrator: `cais kube server` serves the Kubernetes API.
    #[command(subcommand)]
    Kube(kube::KubeCommand),
}

#[derive(Debug, clap::Args)]
struct DaemonArgs {
    /// Where to listen: `unix:///path` (the default socket) and optionally
    /// one `tcp://host:port`, which needs --tlsverify.
    #[arg(long, short = 'H', default_value = "unix:///run/cais.sock")]
    host: Vec<String>,
    /// Require client certificates signed by --tlscacert on TCP.
    #[arg(long)]
    tlsverify: bool,
    #[arg(long)]
    tlscacert: Option<std::path::PathBuf>,
    #[arg(long)]
    tlscert: Option<std::path::PathBuf>,
    #[arg(long)]
    tlskey: Option<std::path::PathBuf>,
    /// Persistent state: images, containers, volumes.
    #[arg(
        long = "data-root",
        env = "CAIS_DATA_ROOT",
        default_value = "/var/lib/cais"
    )]
    data_root: std::path::PathBuf,
    /// State that does not survive a reboot.
    #[arg(long = "exec-root", default_value = "/run/cais")]
    exec_root: std::path::PathBuf,
    /// The least severe messages logged.
    #[arg(long = "log-level", value_enum, default_value = "info")]
    log_level: logging::Level,
    /// Log lines as text or as JSON objects.
    #[arg(long = "log-format", value_enum, default_value = "text")]
    log_format: logging::Format,
    /// A directory of Container Device Interface specs (repeat for more;
    /// default /etc/cdi and /var/run/cdi).
    #[arg(long = "cdi-spec-dir")]
    cdi_spec_dir: Vec<std::path::PathBuf>,
}

#[derive(Debug, clap::Args)]
struct ArchiveArgs {
    #[arg(long)]
    root: std::path::PathBuf,
    /// The container's volumes and binds, JSON (see `cais_engine::archive`).
    #[arg(long)]
    binds: Option<String>,
    /// stat, get or put.
    op: String,
    path: String,
}

#[derive(Debug, clap::Args)]
struct ShimArgs {
    #[arg(long)]
    id: String,
    #[arg(long)]
    bundle: std::path::PathBuf,
    #[arg(long = "state-dir")]
    state_dir: std::path::PathBuf,
    #[arg(long = "runtime-root")]
    runtime_root: std::path::PathBuf,
    #[arg(long)]
    terminal: bool,
    #[arg(long)]
    stdin: bool,
    #[arg(long = "log-max-size", default_value_t = 0)]
    log_max_size: u64,
    #[arg(long = "log-max-files", default_value_t = 1)]
    log_max_files: u32,
    /// Keep no log (the `none` log driver).
    #[arg(long = "no-log")]
    no_log: bool,
    /// Attributes every log record carries, as a JSON object.
    #[arg(long = "log-attrs")]
    log_attrs: Option<String>,
    /// Close the container's stdin when an attached client's input ends.
    #[arg(long = "stdin-once")]
    stdin_once: bool,
    #[arg(long = "cgroup-path")]
    cgroup_path: String,
}

fn main() {
    let invoked_as = std::env::args_os()
        .next()
        .map(|a| {
            std::path::PathBuf::from(a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default()
        .unwrap_or_default();
    // runc's command line starts with its global flags (`--root DIR run ...`):
    // such a call is the runtime too, however the binary was named.
    let runc_style = std::env::args().nth(1).is_some_and(|a| {
        [
            "--root",
            "--log",
            "--log-format",
            "--systemd-cgroup",
            "--debug",
            "--rootless",
            "--criu",
        ]
        .iter()
        .any(|flag| a == *flag || a.starts_with(&format!("{flag}=")))
    });
    let (host, command) = if invoked_as == "cais-runtime" || runc_style {
        (
            None,
            Command::Runtime(Box::new(runtime::RuntimeCli::parse())),
        )
    } else {
        match Cli::try_parse() {
            Ok(cli) => (cli.host, cli.command),
            Err(e) => usage_error(e),
        }
    };
    match &command {
        // The runtime logs through its own runc-compatible sink.
        Command::Runtime(_) => {}
        Command::Daemon(a) => logging::init(a.log_level, a.log_format),
        Command::Kube(kube::KubeCommand::Server(a)) => logging::init(a.log_level, a.log_format),
        // The registry's access log has been JSON lines from the start.
        Command::Registry(cais_registry_server::cli::Command::Serve { .. }) => {
            logging::init(logging::Level::Info, logging::Format::Json)
        }
        _ => logging::init(logging::Level::Warn, logging::Format::Text),
    }
    let code = match command {
        Command::Runtime(rt) => {
            if rt.enters_container() && !cais_runtime::sealed::is_sealed() {
                let Err(e) = cais_runtime::sealed::reexec();
                eprintln!("cais: cannot re-execute from a sealed copy: {e}");
                std::process::exit(1);
            }
            report(runtime::run(*rt))
        }
        Command::Daemon(a) => report(daemon(a)),
        Command::Archive(a) => helper_report(
            cais_engine::archive::helper_main(&a.root, a.binds.as_deref(), &a.op, &a.path)
                .map(|()| None),
        ),
        Command::Shim(a) => helper_report(
            cais_engine::shim::main(cais_engine::shim::Config {
                id: a.id,
                bundle: a.bundle,
                state_dir: a.state_dir,
                runtime_root: a.runtime_root,
                runtime: std::env::current_exe().unwrap_or_else(|_| "cais".into()),
                terminal: a.terminal,
                stdin: a.stdin,
                log_max_size: a.log_max_size,
                log_max_files: a.log_max_files,
                no_log: a.no_log,
                log_attrs: a
                    .log_attrs
                    .as_deref()
                    .and_then(|j| serde_json::from_str(j).ok())
                    .unwrap_or_default(),
                stdin_once: a.stdin_once,
                cgroup_path: a.cgroup_path,
            })
            .map(Some),
        ),
        Command::Registry(cmd) => report(cais_registry_server::cli::run(cmd).map(|_| 0)),
        Command::Kube(cmd) => report(kube::run(cmd)),
        Command::Images(cmd) if images::is_local(&cmd) => report(images::run(cmd)),
        Command::Images(cmd) => client_cmds::client(host.as_deref())
            .and_then(|c| images::run_remote(&c, cmd))
            .unwrap_or_else(|e| client_cmds::report(&e, 1)),
        Command::Login(args) => report(transfer::login(args).map(|_| 0)),
        Command::Logout(args) => report(transfer::logout(args).map(|_| 0)),
        Command::Pull(args) if transfer::is_local(&args.store) => {
            report(transfer::pull(args).map(|_| 0))
        }
        Command::Push(args) if transfer::is_local(&args.store) => {
            report(transfer::push(args).map(|_| 0))
        }
        Command::Pull(args) => client_cmds::client(host.as_deref())
            .and_then(|c| {
                client_cmds::pull_remote(&c, &args.image, &args.platform, args.quiet, true)
            })
            .unwrap_or_else(|e| client_cmds::report(&e, 1)),
        Command::Push(args) => client_cmds::client(host.as_deref())
            .and_then(|c| {
                client_cmds::push_remote(&c, &args.image, args.target.as_deref(), args.quiet)
            })
            .unwrap_or_else(|e| client_cmds::report(&e, 1)),
        Command::Build(args) if args.check_flags().is_err() => {
            client_cmds::report(&args.check_flags().expect_err("checked just above"), 125)
        }
        Command::Build(args) if args.is_local() => report(build::local(&args)),
        Command::Build(args) => client_cmds::client(host.as_deref())
            .and_then(|c| build::remote(&c, &args))
            .unwrap_or_else(|e| client_cmds::report(&e, 1)),
        Command::Compose(args) => {
            compose::run(host.as_deref(), *args).unwrap_or_else(|e| client_cmds::report(&e, 1))
        }
        Command::Client(cmd) => {
            let code = cmd.error_code();
            client_cmds::run(host.as_deref(), *cmd)
                .unwrap_or_else(|e| client_cmds::report(&e, code))
        }
    };
    std::process::exit(code);
}

/// A bad command line: help and version print as usual; errors in the
/// client commands exit 125 like docker's flag errors, others clap's 2.
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let daemon_side = ["daemon", "runtime", "registry", "shim", "kube", "compose"];
    let sub = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-') && !a.starts_with("unix://") && !a.starts_with('/'));
    let code = match sub.as_deref() {
        Some(s) if daemon_side.contains(&s) => 2,
        _ => 125,
    };
    // docker's words for a flag it does not know, for the client commands.
    let unknown = (code == 125 && e.kind() == ErrorKind::UnknownArgument)
        .then(|| e.get(clap::error::ContextKind::InvalidArg))
        .flatten()
        .map(|a| a.to_string())
        .filter(|a| a.starts_with('-'));
    match unknown {
        Some(flag) => {
            let flag = flag
                .split_once('=')
                .map_or(flag.as_str(), |(f, _)| f)
                .to_string();
            let shown = if flag.starts_with("--") {
                flag
            } else {
                format!(
                    "shorthand flag: '{}' in {flag}",
                    flag.trim_start_matches('-')
                )
            };
            eprintln!(
                "unknown {}",
                if shown.starts_with("shorthand") {
                    shown
                } else {
                    format!("flag: {shown}")
                }
            );
            eprintln!("See 'cais {} --help'.", sub.as_deref().unwrap_or_default());
        }
        None => {
            let _ = e.print();
        }
    }
    std::process::exit(code);
}

fn daemon(a: DaemonArgs) -> anyhow::Result<i32> {
    let mut socket = None;
    let mut tcp = None;
    for h in &a.host {
        if let Some(addr) = h.strip_prefix("tcp://") {
            // The API gives root on the host: never without TLS and client
            // certificates (dockerd's --tlsverify).
            let (Some(ca), Some(cert), Some(key), true) = (
                a.tlscacert.clone(),
                a.tlscert.clone(),
                a.tlskey.clone(),
                a.tlsverify,
            ) else {
                anyhow::bail!(
                    "a TCP listener ({h}) needs --tlsverify with --tlscacert, --tlscert and --tlskey"
                );
            };
            if tcp.is_some() {
                anyhow::bail!("only one tcp:// listener is supported");
            }
            tcp = Some((addr.to_string(), cais_engine::daemon::Tls { ca, cert, key }));
        } else {
            let path = h.strip_prefix("unix://").unwrap_or(h);
            if socket.replace(std::path::PathBuf::from(path)).is_some() {
                anyhow::bail!("only one unix:// socket is supported");
            }
        }
    }
    let opts = cais_engine::daemon::Options {
        socket: socket.unwrap_or_else(|| "/run/cais.sock".into()),
        tcp,
        root: a.data_root,
        exec_root: a.exec_root,
        binary: std::env::current_exe().unwrap_or_else(|_| "cais".into()),
        cdi_spec_dirs: if a.cdi_spec_dir.is_empty() {
            cais_engine::config::default_cdi_spec_dirs()
        } else {
            a.cdi_spec_dir
        },
    };
    cais_engine::daemon::run(opts)?;
    Ok(0)
}

/// The end of a helper the daemon runs (`shim`, `archive`): its output on
/// stdout, or its error alone on stderr, where the daemon reads them.
fn helper_report(result: Result<Option<String>, String>) -> i32 {
    match result {
        Ok(output) => {
            if let Some(line) = output {
                println!("{line}");
            }
            0
        }
        Err(message) => {
            eprintln!("{message}");
            1
        }
    }
}

fn report(result: anyhow::Result<i32>) -> i32 {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cais: {e:#}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
