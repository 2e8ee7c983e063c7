//! The docker-like commands (`cais run|ps|logs|exec|...`): a client of the
//! daemon's Engine API, found through `-H/--host`, `CAIS_HOST` or
//! `DOCKER_HOST` (default `unix:///run/cais.sock`).
//!
//! Exit codes follow docker's: a daemon error is printed as
//! `Error response from daemon: ...`; `run` and `create` exit 125 when the
//! container could not be made or started and otherwise with the
//! container's own exit code; other commands exit 1 on error.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use cais_api::{
    ContainerSummary, CreateRequest, EndpointSettings, ExecConfig, HealthConfig, NetworkingConfig,
    RestartPolicy, VolumeCreateRequest, WaitResponse,
};
use cais_client::http::{json_lines, Client};
use cais_client::opts;
use cais_image::time::{format_unix, human_size};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::listing;
use crate::network;
use crate::run_flags::{resource_fields, RefusedRunFlags, ResourceArgs};
use crate::template::{print_columns, render, Format};
use crate::term;

pub const DEFAULT_HOST: &str = "unix:///run/cais.sock";

/// The daemon's address: the flag, then `CAIS_HOST`, then `DOCKER_HOST`.
pub fn client(host: Option<&str>) -> Result<Client> {
    let host = host
        .map(str::to_string)
        .or_else(|| std::env::var("CAIS_HOST").ok().filter(|h| !h.is_empty()))
        .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| DEFAULT_HOST.to_string());
    Ok(Client::new(&host)?)
}

/// Prints an error the way docker does; returns the exit code.
pub fn report(e: &anyhow::Error, code: i32) -> i32 {
    // Already reported, with its own status.
    if let Some(Exit(code)) = e.downcast_ref::<Exit>() {
        return *code;
    }
    let daemon = e.chain().find_map(|c| match c.downcast_ref() {
        Some(cais_client::http::Error::Daemon { message, .. }) => Some(message.clone()),
        _ => None,
    });
    match daemon {
        Some(m) => eprintln!("Error response from daemon: {m}"),
        None => eprintln!("cais: {e:#}"),
    }
    code
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create and start a container from an image.
    Run(RunArgs),
    /// Create a container without starting it.
    Create(RunArgs),
    /// Start stopped containers.
    Start(StartArgs),
    /// Stop running containers (SIGTERM, then SIGKILL after a grace period).
    Stop(StopArgs),
    /// Send a signal to running containers.
    Kill(KillArgs),
    /// Restart containers.
    Restart(StopArgs),
    /// Freeze every process of containers.
    Pause(Names),
    /// Thaw paused containers.
    Unpause(Names),
    /// Remove containers.
    Rm(RmArgs),
    /// List containers.
    Ps(PsArgs),
    /// Print a container's logs.
    Logs(LogsArgs),
    /// Connect the terminal to a running container.
    Attach(AttachArgs),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// Show a container's processes.
    Top(TopArgs),
    /// Show containers' resource usage.
    Stats(StatsArgs),
    /// Wait for containers to stop; prints their exit codes.
    Wait(Names),
    /// Rename a container.
    Rename { container: String, new_name: String },
    /// Make an image from a container's changes.
    Commit(CommitArgs),
    /// Print the daemon's events.
    Events(EventsArgs),
    /// List a container's port bindings.
    Port(PortArgs),
    /// Manage volumes.
    #[command(subcommand)]
    Volume(VolumeCmd),
    /// Manage networks.
    #[command(subcommand)]
    Network(crate::network::NetworkCmd),
    /// Manage containers.
    #[command(subcommand)]
    Container(ContainerCmd),
    /// Show the client's and the daemon's versions.
    Version(crate::system::FormatArg),
    /// Show the daemon's system-wide information.
    Info(crate::system::FormatArg),
    /// Copy files between a container and here (CONTAINER:PATH on one
    /// side; `-` for a tar on stdin or stdout).
    Cp(crate::container_ops::CpArgs),
    /// List the files a container changed, added (A), changed (C) or
    /// deleted (D).
    Diff(crate::container_ops::DiffArgs),
    /// Write a container's file system as a tar.
    Export(crate::container_ops::ExportArgs),
    /// Change containers' resource limits and restart policy.
    Update(crate::container_ops::UpdateArgs),
    /// Manage the daemon: disk usage, prune, events, info.
    #[command(subcommand)]
    System(crate::system::SystemCmd),
    /// Manage the build cache.
    #[command(subcommand)]
    Builder(crate::system::BuilderCmd),
}

impl ClientCommand {
    /// run and create exit 125 on their own errors, like docker.
    pub fn error_code(&self) -> i32 {
        match self {
            ClientCommand::Run(_) | ClientCommand::Create(_) => 125,
            _ => 1,
        }
    }
}

#[derive(Debug, Args)]
pub struct Names {
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run in the background and print the container id.
    #[arg(short, long)]
    detach: bool,
    /// Keep stdin open and forward it.
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a terminal.
    #[arg(short, long)]
    tty: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    rm: bool,
    #[arg(long)]
    name: Option<String>,
    /// Environment variables (KEY=VALUE, or KEY to copy it from here).
    #[arg(short, long = "env")]
    env: Vec<String>,
    #[arg(long = "env-file")]
    env_file: Vec<std::path::PathBuf>,
    #[arg(short, long)]
    workdir: Option<String>,
    /// USER[:GROUP] or UID[:GID].
    #[arg(short, long)]
    user: Option<String>,
    #[arg(long)]
    entrypoint: Option<String>,
    /// Bind mount or named volume: SRC:DST[:ro].
    #[arg(short, long = "volume")]
    volume: Vec<String>,
    /// type=bind|volume|tmpfs,source=...,target=...[,readonly].
    #[arg(long)]
    mount: Vec<String>,
    /// A tmpfs at PATH[:OPTIONS].
    #[arg(long)]
    tmpfs: Vec<String>,
    #[arg(long = "read-only")]
    read_only: bool,
    /// Memory limit (e.g. 64m, 1g).
    #[arg(short, long)]
    memory: Option<String>,
    #[arg(long)]
    cpus: Option<f64>,
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// no, always, unless-stopped, on-failure[:N].
    #[arg(long)]
    restart: Option<String>,
    #[arg(long = "health-cmd")]
    health_cmd: Option<String>,
    #[arg(long = "health-interval")]
    health_interval: Option<String>,
    #[arg(long = "health-retries")]
    health_retries: Option<i32>,
    #[arg(long = "health-timeout")]
    health_timeout: Option<String>,
    #[arg(long = "health-start-period")]
    health_start_period: Option<String>,
    /// Run an init as pid 1 that reaps zombies and forwards signals.
    #[arg(long)]
    init: bool,
    #[arg(long = "cap-add")]
    cap_add: Vec<String>,
    #[arg(long = "cap-drop")]
    cap_drop: Vec<String>,
    #[arg(long)]
    privileged: bool,
    #[arg(long = "security-opt")]
    security_opt: Vec<String>,
    #[arg(short, long)]
    label: Vec<String>,
    #[arg(long)]
    hostname: Option<String>,
    /// Publish a port: [IP:][HOSTPORT:]PORT[/PROTO], ports may be ranges.
    #[arg(short, long)]
    publish: Vec<String>,
    /// Publish every exposed port on a free host port.
    #[arg(short = 'P', long = "publish-all")]
    publish_all: bool,
    /// Expose a port (or range) without publishing it: PORT[-END][/PROTO].
    #[arg(long)]
    expose: Vec<String>,
    /// bridge (the default), host, none, container:NAME or a network's name.
    #[arg(long, alias = "net")]
    network: Vec<String>,
    /// A name the network's DNS answers for this container.
    #[arg(long = "network-alias", alias = "net-alias")]
    network_alias: Vec<String>,
    /// The container's IPv4 address on its network.
    #[arg(long)]
    ip: Option<String>,
    /// Another container, NAME[:ALIAS], reachable by that name.
    #[arg(long)]
    link: Vec<String>,
    /// A DNS server for the container's resolv.conf.
    #[arg(long)]
    dns: Vec<String>,
    /// A search domain for the container's resolv.conf.
    #[arg(long = "dns-search")]
    dns_search: Vec<String>,
    /// A resolv.conf option (ndots:2, ...).
    #[arg(long = "dns-option", alias = "dns-opt")]
    dns_option: Vec<String>,
    /// An /etc/hosts entry, HOST:IP.
    #[arg(long = "add-host")]
    add_host: Vec<String>,
    #[arg(long = "stop-signal")]
    stop_signal: Option<String>,
    #[arg(long = "stop-timeout")]
    stop_timeout: Option<i64>,
    #[command(flatten)]
    resources: ResourceArgs,
    /// A resource limit, NAME=SOFT[:HARD] (nofile, nproc, ...).
    #[arg(long)]
    ulimit: Vec<String>,
    /// A namespaced kernel parameter, KEY=VALUE.
    #[arg(long)]
    sysctl: Vec<String>,
    /// A host device, HOST[:CONTAINER][:PERMISSIONS], or a CDI name.
    #[arg(long)]
    device: Vec<String>,
    /// A rule for the device cgroup, 'TYPE MAJOR:MINOR PERMISSIONS'.
    #[arg(long = "device-cgroup-rule")]
    device_cgroup_rule: Vec<String>,
    /// GPUs to add: all, a count, or device=ID.
    #[arg(long)]
    gpus: Option<String>,
    /// Size of /dev/shm (e.g. 64m).
    #[arg(long = "shm-size")]
    shm_size: Option<String>,
    /// The PID namespace: host or container:NAME.
    #[arg(long)]
    pid: Option<String>,
    /// The IPC namespace: none, private, shareable, host or container:NAME.
    #[arg(long)]
    ipc: Option<String>,
    /// The UTS namespace: host.
    #[arg(long)]
    uts: Option<String>,
    /// The user namespace: host.
    #[arg(long)]
    userns: Option<String>,
    /// The cgroup namespace: host or private.
    #[arg(long)]
    cgroupns: Option<String>,
    /// A supplementary group (name or number).
    #[arg(long = "group-add")]
    group_add: Vec<String>,
    /// The OOM killer's preference, -1000 to 1000.
    #[arg(long = "oom-score-adj", allow_hyphen_values = true)]
    oom_score_adj: Option<i64>,
    /// Mount the volumes of another container, NAME[:ro|:rw].
    #[arg(long = "volumes-from")]
    volumes_from: Vec<String>,
    /// The volume driver for -v volumes.
    #[arg(long = "volume-driver")]
    volume_driver: Option<String>,
    /// The container's NIS domain name.
    #[arg(long)]
    domainname: Option<String>,
    /// A file of labels, one KEY=VALUE a line.
    #[arg(long = "label-file")]
    label_file: Vec<std::path::PathBuf>,
    /// The image's platform (os[/arch[/variant]]).
    #[arg(long)]
    platform: Option<String>,
    /// Pull the image: always, missing or never.
    #[arg(long, default_value = "missing")]
    pull: String,
    /// Print no pull progress.
    #[arg(short, long)]
    quiet: bool,
    /// json-file, local or none.
    #[arg(long = "log-driver")]
    log_driver: Option<String>,
    /// A log driver option, KEY=VALUE (max-size, max-file, ...).
    #[arg(long = "log-opt")]
    log_opt: Vec<String>,
    /// Run no health check, not even the image's.
    #[arg(long = "no-healthcheck")]
    no_healthcheck: bool,
    #[arg(long = "health-start-interval")]
    health_start_interval: Option<String>,
    /// Write the container's id to this file.
    #[arg(long)]
    cidfile: Option<std::path::PathBuf>,
    /// Forward the signals this client gets to the container.
    #[arg(long = "sig-proxy", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "true")]
    sig_proxy: bool,
    /// An OCI annotation, KEY=VALUE.
    #[arg(long)]
    annotation: Vec<String>,
    /// The OCI runtime (only registered ones).
    #[arg(long)]
    runtime: Option<String>,
    /// Windows isolation technology (default only on Linux).
    #[arg(long)]
    isolation: Option<String>,
    /// A storage driver option, KEY=VALUE.
    #[arg(long = "storage-opt")]
    storage_opt: Vec<String>,
    /// The container's MAC address on its network.
    #[arg(long = "mac-address")]
    mac_address: Option<String>,
    /// Attach to STDIN, STDOUT or STDERR (repeatable).
    #[arg(short, long)]
    attach: Vec<String>,
    /// The key sequence that detaches from the container.
    #[arg(long = "detach-keys")]
    detach_keys: Option<String>,
    /// Skip image verification (images are not signed here).
    #[arg(long = "disable-content-trust", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "true")]
    disable_content_trust: bool,
    /// docker 28 flags cais refuses, each for a reason (docs/docker-cli.md).
    #[command(flatten)]
    refused: RefusedRunFlags,
    image: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Attach stdout and stderr and wait for the exit.
    #[arg(short, long)]
    attach: bool,
    #[arg(short, long)]
    interactive: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait before killing.
    #[arg(short = 't', long = "time", alias = "timeout")]
    time: Option<i64>,
    /// Signal to send first.
    #[arg(short, long)]
    signal: Option<String>,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    #[arg(short, long, default_value = "KILL")]
    signal: String,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Kill a running container first.
    #[arg(short, long)]
    force: bool,
    /// Also remove its anonymous volumes.
    #[arg(short, long)]
    volumes: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    #[arg(short, long)]
    all: bool,
    #[arg(short, long)]
    quiet: bool,
    /// KEY=VALUE (status, name, id, label, ancestor, exited...).
    #[arg(short, long)]
    filter: Vec<String>,
    /// A Go template, or `table TEMPLATE`.
    #[arg(long)]
    format: Option<String>,
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Show the last N containers.
    #[arg(short = 'n', long)]
    last: Option<i64>,
    /// The last created container.
    #[arg(short, long)]
    latest: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[arg(short, long)]
    follow: bool,
    /// A timestamp or a duration (10m).
    #[arg(long)]
    since: Option<String>,
    #[arg(long)]
    until: Option<String>,
    /// Lines from the end, or `all`.
    #[arg(short = 'n', long)]
    tail: Option<String>,
    #[arg(short, long)]
    timestamps: bool,
    container: String,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    #[arg(long = "no-stdin")]
    no_stdin: bool,
    container: String,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[arg(short, long)]
    detach: bool,
    #[arg(short, long)]
    interactive: bool,
    #[arg(short, long)]
    tty: bool,
    #[arg(short, long = "env")]
    env: Vec<String>,
    #[arg(long = "env-file")]
    env_file: Vec<std::path::PathBuf>,
    /// The key sequence that detaches from the exec.
    #[arg(long = "detach-keys")]
    detach_keys: Option<String>,
    #[arg(short, long)]
    user: Option<String>,
    #[arg(short, long)]
    workdir: Option<String>,
    #[arg(long)]
    privileged: bool,
    container: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    container: String,
    /// ps options.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// One sample, then exit.
    #[arg(long = "no-stream")]
    no_stream: bool,
    #[arg(short, long)]
    all: bool,
    #[arg(long)]
    format: Option<String>,
    containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CommitArgs {
    #[arg(short, long)]
    author: Option<String>,
    #[arg(short, long)]
    message: Option<String>,
    /// Accepted for compatibility: containers are not paused for commit.
    #[arg(short, long)]
    pause: bool,
    container: String,
    reference: Option<String>,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[arg(long)]
    since: Option<String>,
    #[arg(long)]
    until: Option<String>,
    #[arg(short, long)]
    filter: Vec<String>,
    #[arg(long)]
    format: Option<String>,
}

#[derive(Debug, Args)]
pub struct PortArgs {
    container: String,
    /// PORT[/PROTO].
    port: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum VolumeCmd {
    Create {
        #[arg(short, long, default_value = "local")]
        driver: String,
        #[arg(long)]
        label: Vec<String>,
        name: Option<String>,
    },
    #[command(alias = "list")]
    Ls {
        #[arg(short, long)]
        quiet: bool,
        #[arg(short, long)]
        filter: Vec<String>,
        #[arg(long)]
        format: Option<String>,
    },
    Inspect {
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        names: Vec<String>,
    },
    #[command(alias = "remove")]
    Rm {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove unused volumes (anonymous ones; every one with -a).
    Prune(crate::system::PruneArgs),
}

#[derive(Debug, Subcommand)]
pub enum ContainerCmd {
    /// Remove every stopped container.
    Prune(crate::system::PruneArgs),
    #[command(alias = "list")]
    Ls(PsArgs),
    Inspect(InspectArgs),
    Cp(crate::container_ops::CpArgs),
    Diff(crate::container_ops::DiffArgs),
    Export(crate::container_ops::ExportArgs),
    Update(Box<crate::container_ops::UpdateArgs>),
}

/// `inspect` through the daemon: containers first, then images.
#[derive(Debug, Args)]
pub struct InspectArgs {
    #[arg(short, long)]
    pub format: Option<String>,
    /// container or image.
    #[arg(long = "type")]
    pub kind: Option<String>,
    #[arg(required = true)]
    pub names: Vec<String>,
}

pub fn run(host: Option<&str>, cmd: ClientCommand) -> Result<i32> {
    let c = client(host)?;
    match cmd {
        ClientCommand::Run(a) => run_container(&c, a, true),
        ClientCommand::Create(a) => run_container(&c, a, false),
        ClientCommand::Start(a) => start(&c, a),
        ClientCommand::Stop(a) => each(&a.containers, |id| {
            c.container_stop(id, a.time, a.signal.as_deref())
        }),
        ClientCommand::Restart(a) => each(&a.containers, |id| c.container_restart(id, a.time)),
        ClientCommand::Kill(a) => each(&a.containers, |id| c.container_kill(id, &a.signal)),
        ClientCommand::Pause(a) => each(&a.containers, |id| c.container_pause(id)),
        ClientCommand::Unpause(a) => each(&a.containers, |id| c.container_unpause(id)),
        ClientCommand::Rm(a) => each(&a.containers, |id| {
            c.container_remove(id, a.force, a.volumes)
        }),
        ClientCommand::Wait(a) => {
            let mut failed = false;
            for id in &a.containers {
                match wait(&c, id, "not-running") {
                    Ok(code) => println!("{code}"),
                    Err(e) => failed = report(&e, 1) != 0,
                }
            }
            Ok(i32::from(failed))
        }
        ClientCommand::Ps(a) => ps(&c, a),
        ClientCommand::Logs(a) => logs(&c, a),
        ClientCommand::Attach(a) => attach(&c, a),
        ClientCommand::Exec(a) => exec(&c, a),
        ClientCommand::Top(a) => top(&c, a),
        ClientCommand::Stats(a) => stats(&c, a),
        ClientCommand::Rename {
            container,
            new_name,
        } => {
            c.container_rename(&container, &new_name)?;
            Ok(0)
        }
        ClientCommand::Commit(a) => commit(&c, a),
        ClientCommand::Events(a) => events_cmd(&c, a),
        ClientCommand::Port(a) => crate::network::port(&c, &a.container, a.port.as_deref()),
        ClientCommand::Network(n) => crate::network::network(&c, n),
        ClientCommand::Volume(v) => volume(&c, v),
        ClientCommand::Container(ContainerCmd::Prune(a)) => {
            crate::system::prune(&c, crate::system::Kind::Containers, a)
        }
        ClientCommand::Container(ContainerCmd::Cp(a)) | ClientCommand::Cp(a) => {
            crate::container_ops::cp(&c, a)
        }
        ClientCommand::Container(ContainerCmd::Diff(a)) | ClientCommand::Diff(a) => {
            crate::container_ops::diff(&c, a)
        }
        ClientCommand::Container(ContainerCmd::Export(a)) | ClientCommand::Export(a) => {
            crate::container_ops::export(&c, a)
        }
        ClientCommand::Container(ContainerCmd::Update(a)) => crate::container_ops::update(&c, *a),
        ClientCommand::Update(a) => crate::container_ops::update(&c, a),
        ClientCommand::Version(a) => crate::system::version(&c, a),
        ClientCommand::Info(a) => crate::system::info(&c, a),
        ClientCommand::System(cmd) => crate::system::system(&c, cmd),
        ClientCommand::Builder(crate::system::BuilderCmd::Prune(a)) => {
            crate::system::prune(&c, crate::system::Kind::BuildCache, a)
        }
        ClientCommand::Container(ContainerCmd::Ls(a)) => ps(&c, a),
        ClientCommand::Container(ContainerCmd::Inspect(mut a)) => {
            a.kind = Some("container".into());
            inspect(&c, &a)
        }
    }
}

/// Runs `f` for each name, printing the name on success like docker; the
/// exit code is 1 when any failed.
pub(crate) fn each(
    names: &[String],
    f: impl Fn(&str) -> cais_client::http::Result<()>,
) -> Result<i32> {
    let mut failed = false;
    for n in names {
        match f(n) {
            Ok(()) => println!("{n}"),
            Err(e) => {
                report(&anyhow::Error::from(e), 1);
                failed = true;
            }
        }
    }
    Ok(i32::from(failed))
}

// ---- run / create -------------------------------------------------------

/// `--env-file`s first, then `-e`s (later values win in the container),
/// each read with docker's rules (`opts::env_file`).
fn env_list(a: &RunArgs) -> Result<Vec<String>> {
    env_of(&a.env_file, &a.env)
}

fn env_of(files: &[std::path::PathBuf], env: &[String]) -> Result<Vec<String>> {
    let lookup = |name: &str| std::env::var(name).ok();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading the env file {}", f.display()))?;
        out.extend(
            opts::env_file(&text, lookup)
                .with_context(|| format!("in the env file {}", f.display()))?,
        );
    }
    // `-e NAME=value` is taken verbatim (newlines too), `-e NAME` from
    // this environment when set there.
    for e in env {
        match e.split_once('=') {
            Some(_) => out.push(e.clone()),
            None => out.extend(lookup(e).map(|v| format!("{e}={v}"))),
        }
    }
    Ok(out)
}

fn nanos(s: &Option<String>) -> Result<i64> {
    Ok(match s {
        Some(d) => opts::duration(d)?.as_nanos() as i64,
        None => 0,
    })
}

/// `--restart no|always|unless-stopped|on-failure[:N]`.
pub(crate) fn restart_policy(r: &str) -> Result<RestartPolicy> {
    let (name, count) = r.split_once(':').unwrap_or((r, "0"));
    if !matches!(name, "no" | "always" | "unless-stopped" | "on-failure") {
        bail!("invalid restart policy {r:?}");
    }
    let count: i64 = count
        .parse()
        .map_err(|_| anyhow!("invalid restart policy {r:?}: bad retry count"))?;
    Ok(RestartPolicy {
        name: name.to_string(),
        maximum_retry_count: count,
    })
}

fn create_request(a: &RunArgs) -> Result<CreateRequest> {
    let mut req = CreateRequest::default();
    let cfg = &mut req.config;
    cfg.image = a.image.clone();
    cfg.cmd = (!a.command.is_empty()).then(|| a.command.clone());
    cfg.entrypoint = a.entrypoint.as_ref().map(|e| {
        if e.is_empty() {
            Vec::new()
        } else {
            vec![e.clone()]
        }
    });
    cfg.env = env_list(a)?;
    cfg.working_dir = a.workdir.clone().unwrap_or_default();
    cfg.user = a.user.clone().unwrap_or_default();
    cfg.hostname = a.hostname.clone().unwrap_or_default();
    cfg.tty = a.tty;
    cfg.open_stdin = a.interactive;
    cfg.attach_stdin = a.interactive && !a.detach;
    cfg.stdin_once = a.interactive && !a.detach;
    cfg.attach_stdout = !a.detach;
    cfg.attach_stderr = !a.detach;
    cfg.stop_signal = a.stop_signal.clone();
    cfg.stop_timeout = a.stop_timeout;
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        cfg.labels.insert(k.to_string(), v.to_string());
    }
    if let Some(cmd) = &a.health_cmd {
        cfg.healthcheck = Some(HealthConfig {
            test: Some(vec!["CMD-SHELL".into(), cmd.clone()]),
            interval: nanos(&a.health_interval)?,
            timeout: nanos(&a.health_timeout)?,
            start_period: nanos(&a.health_start_period)?,
            retries: a.health_retries.unwrap_or(0).into(),
            ..Default::default()
        });
    }
    let hc = &mut req.host_config;
    hc.binds = a
        .volume
        .iter()
        .map(|v| opts::volume(v))
        .collect::<Result<_, _>>()?;
    hc.mounts = a
        .mount
        .iter()
        .map(|m| opts::mount(m))
        .collect::<Result<_, _>>()?;
    for t in &a.tmpfs {
        let (path, options) = opts::tmpfs(t)?;
        hc.tmpfs.insert(path, options);
    }
    hc.readonly_rootfs = a.read_only;
    if let Some(m) = &a.memory {
        hc.memory = opts::bytes(m)?;
    }
    if let Some(c) = a.cpus {
        hc.nano_cpus = (c * 1e9) as i64;
    }
    hc.pids_limit = a.pids_limit;
    if let Some(r) = &a.restart {
        hc.restart_policy = restart_policy(r)?;
    }
    if a.rm && !hc.restart_policy.name.is_empty() && hc.restart_policy.name != "no" {
        bail!("conflicting options: --restart and --rm");
    }
    hc.auto_remove = a.rm;
    hc.init = a.init.then_some(true);
    hc.cap_add = a.cap_add.clone();
    hc.cap_drop = a.cap_drop.clone();
    hc.privileged = a.privileged;
    hc.security_opt = a.security_opt.clone();
    let mut exposed = BTreeMap::new();
    for p in &a.publish {
        for (port, binding) in opts::publish(p)? {
            exposed.insert(port.clone(), json!({}));
            hc.port_bindings.entry(port).or_default().push(binding);
        }
    }
    for e in &a.expose {
        for port in opts::expose(e)? {
            exposed.insert(port, json!({}));
        }
    }
    hc.publish_all_ports = a.publish_all;
    if !exposed.is_empty() {
        req.config.exposed_ports = Some(exposed);
    }
    run_only_fields(&mut req, a)?;
    networking(&mut req, a)?;
    Ok(req)
}

/// The flags beyond the basics: namespaces, devices, limits, logging,
/// labels from files, annotations; each onto the field the daemon applies
/// or refuses.
fn run_only_fields(req: &mut CreateRequest, a: &RunArgs) -> Result<()> {
    a.refused.check()?;
    let hc = &mut req.host_config;
    a.resources.apply(resource_fields!(hc))?;
    hc.ulimits = a
        .ulimit
        .iter()
        .map(|u| opts::ulimit(u))
        .collect::<Result<_, _>>()?;
    hc.sysctls = opts::key_values(&a.sysctl, "sysctl")?;
    for d in &a.device {
        match opts::device(d)? {
            opts::Device::Node(m) => hc.devices.push(m),
            opts::Device::Cdi(name) => hc.device_requests.push(cais_api::DeviceRequest {
                driver: "cdi".into(),
                device_ids: vec![name],
                ..Default::default()
            }),
        }
    }
    hc.device_cgroup_rules = a
        .device_cgroup_rule
        .iter()
        .map(|r| opts::device_cgroup_rule(r))
        .collect::<Result<_, _>>()?;
    if let Some(g) = &a.gpus {
        hc.device_requests.push(opts::gpus(g)?);
    }
    if let Some(s) = &a.shm_size {
        hc.shm_size = opts::bytes(s)?;
        if hc.shm_size <= 0 {
            bail!("invalid size: '{s}'");
        }
    }
    hc.pid_mode = a.pid.clone().unwrap_or_default();
    hc.ipc_mode = a.ipc.clone().unwrap_or_default();
    hc.uts_mode = a.uts.clone().unwrap_or_default();
    hc.userns_mode = a.userns.clone().unwrap_or_default();
    if let Some(mode) = &a.cgroupns {
        if !matches!(mode.as_str(), "host" | "private") {
            bail!("--cgroupns: invalid CGROUP mode: {mode}");
        }
        hc.cgroupns_mode = mode.clone();
    }
    hc.group_add = a.group_add.clone();
    if let Some(o) = a.oom_score_adj {
        if !(-1000..=1000).contains(&o) {
            bail!("invalid value {o}: --oom-score-adj must be in the range -1000 to 1000");
        }
        hc.oom_score_adj = o;
    }
    hc.volumes_from = a.volumes_from.clone();
    hc.volume_driver = a.volume_driver.clone().unwrap_or_default();
    if let Some(d) = &a.log_driver {
        hc.log_config.kind = d.clone();
    }
    hc.log_config.config = opts::key_values(&a.log_opt, "log-opt")?;
    hc.annotations = opts::key_values(&a.annotation, "annotation")?;
    hc.runtime = a.runtime.clone().unwrap_or_default();
    hc.isolation = a.isolation.clone().unwrap_or_default();
    hc.storage_opt = opts::key_values(&a.storage_opt, "storage-opt")?;
    if let Some(f) = &a.cidfile {
        hc.container_id_file = f.to_string_lossy().into_owned();
    }
    let cfg = &mut req.config;
    cfg.domainname = a.domainname.clone().unwrap_or_default();
    if let Some(mac) = &a.mac_address {
        let valid = mac.split(':').count() == 6
            && mac
                .split(':')
                .all(|b| b.len() == 2 && u8::from_str_radix(b, 16).is_ok());
        if !valid {
            bail!("{mac} is not a valid mac address");
        }
        cfg.mac_address = mac.clone();
    }
    // Labels from files first; -l wins over them.
    for f in &a.label_file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading the label file {}", f.display()))?;
        for l in opts::label_file(&text)? {
            let (k, v) = l.split_once('=').unwrap_or((&l, ""));
            cfg.labels
                .entry(k.to_string())
                .or_insert_with(|| v.to_string());
        }
    }
    if a.no_healthcheck {
        if a.health_cmd.is_some() {
            bail!("--no-healthcheck conflicts with --health-* options");
        }
        cfg.healthcheck = Some(HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        });
    }
    if let (Some(h), Some(si)) = (cfg.healthcheck.as_mut(), &a.health_start_interval) {
        h.start_interval = opts::duration(si)?.as_nanos() as i64;
    }
    if !a.attach.is_empty() {
        if a.detach {
            bail!("conflicting options: cannot specify both --attach and --detach");
        }
        cfg.attach_stdin = false;
        cfg.attach_stdout = false;
        cfg.attach_stderr = false;
        for s in &a.attach {
            match s.to_ascii_lowercase().as_str() {
                "stdin" => cfg.attach_stdin = true,
                "stdout" => cfg.attach_stdout = true,
                "stderr" => cfg.attach_stderr = true,
                _ => bail!("invalid argument \"{s}\" for \"-a, --attach\" flag: valid streams are STDIN, STDOUT and STDERR"),
            }
        }
        cfg.stdin_once = cfg.attach_stdin && a.interactive;
    }
    if !matches!(a.pull.as_str(), "always" | "missing" | "never") {
        bail!(
            "invalid pull option: '{}': must be one of \"always\", \"missing\" or \"never\"",
            a.pull
        );
    }
    Ok(())
}

/// `--network`, `--network-alias`, `--ip`, `--link`, `--dns*`,
/// `--add-host`: the network mode (the first `--network`), an endpoint per
/// user-defined network, and the host config's lists.
fn networking(req: &mut CreateRequest, a: &RunArgs) -> Result<()> {
    let hc = &mut req.host_config;
    let mode = a
        .network
        .first()
        .cloned()
        .unwrap_or_else(|| "default".into());
    let user_defined = |m: &str| {
        !matches!(m, "default" | "bridge" | "host" | "none") && !m.starts_with("container:")
    };
    if let Some(other) = mode.strip_prefix("container:") {
        if other.is_empty() {
            bail!("invalid --network {mode:?}: container:NAME names a container");
        }
    }
    if a.network.len() > 1 && a.network.iter().any(|n| !user_defined(n)) {
        bail!(
            "only user-defined networks can be combined: --network {}",
            a.network.join(", --network ")
        );
    }
    if !user_defined(&mode) {
        if !a.network_alias.is_empty() {
            bail!("network-scoped aliases are only supported for user-defined networks");
        }
        if a.ip.is_some() {
            bail!("user specified IP address is supported on user defined networks only");
        }
    }
    if let Some(ip) = &a.ip {
        ip.parse::<std::net::Ipv4Addr>()
            .map_err(|_| anyhow!("invalid IPv4 address {ip:?} for --ip"))?;
    }
    let own_stack = !matches!(mode.as_str(), "host" | "none") && !mode.starts_with("container:");
    if !own_stack && (!a.publish.is_empty() || a.publish_all) {
        eprintln!("WARNING: Published ports are discarded when using {mode} network mode");
    }
    for l in &a.link {
        let name = l.split(':').next().unwrap_or_default();
        if name.is_empty() || l.matches(':').count() > 1 {
            bail!("invalid --link {l:?}: NAME[:ALIAS]");
        }
    }
    for h in &a.add_host {
        let Some((host, ip)) = h.split_once(':') else {
            bail!("invalid --add-host {h:?}: HOST:IP");
        };
        if host.is_empty() || (ip != "host-gateway" && ip.parse::<std::net::IpAddr>().is_err()) {
            bail!("invalid --add-host {h:?}: HOST:IP");
        }
    }
    for d in &a.dns {
        d.parse::<std::net::IpAddr>()
            .map_err(|_| anyhow!("invalid --dns {d:?}: an IP address"))?;
    }
    hc.network_mode = mode.clone();
    hc.links = a.link.clone();
    hc.dns = a.dns.clone();
    hc.extra_hosts = a.add_host.clone();
    hc.dns_search = a.dns_search.clone();
    hc.dns_options = a.dns_option.clone();
    let mut endpoints = BTreeMap::new();
    for (i, net) in a
        .network
        .iter()
        .enumerate()
        .filter(|(_, n)| user_defined(n))
    {
        // Aliases, the address and links go with the first network, as
        // docker's CLI sends them.
        let e = if i == 0 {
            network::endpoint(&a.network_alias, a.ip.as_deref(), &a.link)
        } else {
            EndpointSettings::default()
        };
        endpoints.insert(net.clone(), e);
    }
    if !endpoints.is_empty() {
        req.networking_config = Some(NetworkingConfig {
            endpoints_config: endpoints,
        });
    }
    Ok(())
}

fn create(c: &Client, a: &RunArgs) -> Result<String> {
    let req = create_request(a)?;
    // docker refuses an existing id file before anything is created.
    if let Some(f) = &a.cidfile {
        if f.exists() {
            bail!(
                "container ID file found, make sure the other container isn't running or delete {}",
                f.display()
            );
        }
    }
    let platform = a.platform.as_deref();
    if a.pull == "always" {
        pull_remote(c, &a.image, platform.unwrap_or(""), a.quiet, false)?;
    }
    let r = match c.container_create_on(a.name.as_deref(), platform, &req) {
        Ok(r) => r,
        Err(e)
            if a.pull == "missing"
                && e.status() == Some(404)
                && e.to_string().contains("No such image") =>
        {
            eprintln!("Unable to find image '{}' locally", a.image);
            if pull_remote(c, &a.image, platform.unwrap_or(""), a.quiet, false).is_err() {
                return Err(e.into());
            }
            c.container_create_on(a.name.as_deref(), platform, &req)?
        }
        Err(e) => return Err(e.into()),
    };
    for w in &r.warnings {
        eprintln!("WARNING: {w}");
    }
    if let Some(f) = &a.cidfile {
        std::fs::write(f, &r.id).with_context(|| {
            format!(
                "failed to write the container ID to the file {}",
                f.display()
            )
        })?;
    }
    Ok(r.id)
}

/// docker's exit status for a container that could not start: 127 when
/// the command is not there, 126 when it cannot be run, else 125.
pub(crate) fn start_failure_code(e: &anyhow::Error) -> i32 {
    let text = format!("{e:#}");
    if text.contains("executable file not found") || text.contains("no such file or directory") {
        127
    } else if text.contains("permission denied") || text.contains("is a directory") {
        126
    } else {
        125
    }
}

/// A start that failed, reported and turned into run's exit status.
#[derive(Debug)]
pub struct Exit(pub i32);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Exit {}

fn start_or_exit(c: &Client, id: &str) -> Result<()> {
    if let Err(e) = c.container_start(id) {
        let e = anyhow::Error::from(e);
        let code = start_failure_code(&e);
        report(&e, code);
        return Err(Exit(code).into());
    }
    Ok(())
}

/// Starts `POST /wait` and returns a thread that yields its status code.
fn wait_in_background(
    c: &Client,
    id: &str,
    condition: &str,
) -> Result<std::thread::JoinHandle<Result<i64>>> {
    let resp = c.container_wait(id, condition)?;
    Ok(std::thread::spawn(move || {
        let mut body = resp.body;
        let mut data = Vec::new();
        body.read_to_end(&mut data)?;
        let w: WaitResponse = serde_json::from_slice(&data).context("decoding the wait result")?;
        if let Some(e) = w.error.filter(|e| !e.message.is_empty()) {
            bail!("{}", e.message);
        }
        Ok(w.status_code)
    }))
}

fn wait(c: &Client, id: &str, condition: &str) -> Result<i64> {
    wait_in_background(c, id, condition)?
        .join()
        .map_err(|_| anyhow!("the wait thread panicked"))?
}

fn run_container(c: &Client, a: RunArgs, start: bool) -> Result<i32> {
    if a.tty && a.interactive && !std::io::stdin().is_terminal() && !a.detach && start {
        bail!("the input device is not a TTY");
    }
    let id = create(c, &a)?;
    if !start {
        println!("{id}");
        return Ok(0);
    }
    if a.detach {
        start_or_exit(c, &id)?;
        println!("{id}");
        return Ok(0);
    }
    let streams =
        |name: &str| a.attach.is_empty() || a.attach.iter().any(|s| s.eq_ignore_ascii_case(name));
    let stdin = a.interactive && streams("stdin");
    let mut q = vec![
        ("stream", "1".to_string()),
        ("stdin", u8::from(stdin).to_string()),
        ("stdout", u8::from(streams("stdout")).to_string()),
        ("stderr", u8::from(streams("stderr")).to_string()),
    ];
    if let Some(k) = &a.detach_keys {
        q.push(("detachKeys", k.clone()));
    }
    let mut conn = c.container_attach(&id, &q)?;
    let waiter = wait_in_background(c, &id, if a.rm { "removed" } else { "next-exit" })?;
    start_or_exit(c, &id)?;
    let _raw = a.tty.then(term::RawMode::enter);
    if a.tty {
        let c2 = c.clone();
        let id2 = id.clone();
        term::watch_resize(move |h, w| {
            let _ = c2.container_resize(&id2, h, w);
        });
    }
    if !a.tty && a.sig_proxy {
        let c2 = c.clone();
        let id2 = id.clone();
        term::proxy_signals(move |sig| {
            let _ = c2.container_kill(&id2, sig);
        });
    }
    if stdin {
        term::forward_stdin(&conn);
    }
    let _ = term::copy_output(&mut conn);
    let code = waiter
        .join()
        .map_err(|_| anyhow!("the wait thread panicked"))?;
    // Past start, errors are the container's, not run's own (not 125).
    match code {
        Ok(code) => Ok(code as i32),
        Err(e) => {
            report(&e, 1);
            Ok(1)
        }
    }
}

fn start(c: &Client, a: StartArgs) -> Result<i32> {
    if !a.attach {
        return each(&a.containers, |id| c.container_start(id));
    }
    let [id] = a.containers.as_slice() else {
        bail!("you cannot start and attach multiple containers at once");
    };
    let info = c.container_inspect(id)?;
    let q = [
        ("stream", "1".to_string()),
        ("stdin", u8::from(a.interactive).to_string()),
        ("stdout", "1".to_string()),
        ("stderr", "1".to_string()),
    ];
    let mut conn = c.container_attach(&info.id, &q)?;
    let waiter = wait_in_background(c, &info.id, "next-exit")?;
    c.container_start(&info.id)?;
    let _raw = info.config.tty.then(term::RawMode::enter);
    if a.interactive {
        term::forward_stdin(&conn);
    }
    let _ = term::copy_output(&mut conn);
    let code = waiter
        .join()
        .map_err(|_| anyhow!("the wait thread panicked"))??;
    Ok(code as i32)
}

fn attach(c: &Client, a: AttachArgs) -> Result<i32> {
    let info = c.container_inspect(&a.container)?;
    if !info.state.running {
        bail!("You cannot attach to a stopped container, start it first");
    }
    let stdin = !a.no_stdin && info.config.open_stdin;
    let q = [
        ("stream", "1".to_string()),
        ("stdin", u8::from(stdin).to_string()),
        ("stdout", "1".to_string()),
        ("stderr", "1".to_string()),
    ];
    let mut conn = c.container_attach(&info.id, &q)?;
    let _raw = info.config.tty.then(term::RawMode::enter);
    if info.config.tty {
        let c2 = c.clone();
        let id2 = info.id.clone();
        term::watch_resize(move |h, w| {
            let _ = c2.container_resize(&id2, h, w);
        });
    }
    if stdin {
        term::forward_stdin(&conn);
    }
    let _ = term::copy_output(&mut conn);
    // The stream ends when the container does; its record follows shortly.
    Ok(wait(c, &info.id, "not-running")? as i32)
}

// ---- exec ------------------------------------------------------------------

fn exec(c: &Client, a: ExecArgs) -> Result<i32> {
    if a.tty && a.interactive && !std::io::stdin().is_terminal() && !a.detach {
        bail!("the input device is not a TTY");
    }
    let cfg = ExecConfig {
        attach_stdin: a.interactive && !a.detach,
        attach_stdout: !a.detach,
        attach_stderr: !a.detach,
        tty: a.tty,
        env: env_of(&a.env_file, &a.env)?,
        detach_keys: a.detach_keys.clone().unwrap_or_default(),
        cmd: a.command.clone(),
        privileged: a.privileged,
        user: a.user.clone().unwrap_or_default(),
        working_dir: a.workdir.clone().unwrap_or_default(),
        ..ExecConfig::default()
    };
    let created = c.exec_create(&a.container, &cfg)?;
    let exec_id = created["Id"]
        .as_str()
        .ok_or_else(|| anyhow!("the daemon returned no exec id"))?
        .to_string();
    if a.detach {
        c.exec_start_detached(&exec_id, a.tty)?;
        return Ok(0);
    }
    let mut conn = c.exec_start(&exec_id, a.tty)?;
    let _raw = a.tty.then(term::RawMode::enter);
    if a.tty {
        let c2 = c.clone();
        let id2 = exec_id.clone();
        term::watch_resize(move |h, w| {
            // The exec's terminal may not exist yet: retry briefly.
            for _ in 0..20 {
                let r = c2.exec_resize(&id2, h, w);
                if r.is_ok() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
    }
    if a.interactive {
        term::forward_stdin(&conn);
    }
    let _ = term::copy_output(&mut conn);
    drop(_raw);
    // The daemon records the exit code just after the stream ends.
    for _ in 0..200 {
        let info = c.exec_inspect(&exec_id)?;
        if let (false, Some(code)) = (info.running, info.exit_code) {
            return Ok(code as i32);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    bail!("the exec's exit code never came")
}

// ---- ps -------------------------------------------------------------------

/// An event's `timeNano` as docker prints event times.
pub(crate) fn rfc3339_nanos(nanos: i64) -> String {
    format_unix(
        nanos.div_euclid(1_000_000_000),
        nanos.rem_euclid(1_000_000_000) as u32,
    )
}

fn ago(secs: i64) -> String {
    let t = format_unix(secs, 0);
    cais_image::time::human_age(Some(&t))
}

pub(crate) fn ps_row(s: &ContainerSummary, no_trunc: bool) -> Value {
    let id = if no_trunc {
        s.id.clone()
    } else {
        s.id.chars().take(12).collect()
    };
    let mut command = s.command.clone();
    if !no_trunc && command.chars().count() > 20 {
        command = command.chars().take(19).collect::<String>() + "…";
    }
    let names: Vec<&str> = s.names.iter().map(|n| n.trim_start_matches('/')).collect();
    let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mounts: Vec<String> = s
        .mounts
        .iter()
        .map(|m| {
            if m.name.is_empty() {
                m.source.clone()
            } else {
                m.name.clone()
            }
        })
        .collect();
    // The networks the container is on, else its network mode.
    let mut networks: Vec<&str> = s.network_settings["Networks"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k.as_str())
        .collect();
    if networks.is_empty() {
        networks.extend(s.host_config["NetworkMode"].as_str());
    }
    let networks = networks.join(",");
    json!({
        "ID": id,
        "Names": names.join(","),
        "Image": s.image,
        "Command": format!("\"{command}\""),
        "CreatedAt": format_unix(s.created, 0),
        "RunningFor": ago(s.created),
        "Ports": network::ports_column(&s.ports),
        "State": s.state,
        "Status": s.status,
        "Size": "0B",
        "Labels": labels.join(","),
        "Mounts": mounts.join(","),
        "Networks": networks,
    })
}

fn ps(c: &Client, a: PsArgs) -> Result<i32> {
    let mut q = vec![("all", u8::from(a.all).to_string())];
    if !a.filter.is_empty() {
        q.push(("filters", opts::filters_json(&a.filter)?));
    }
    let limit = if a.latest { Some(1) } else { a.last };
    if let Some(n) = limit {
        q.push(("limit", n.to_string()));
    }
    let list = c.container_list(&q)?;
    if a.quiet {
        for s in &list {
            println!(
                "{}",
                if a.no_trunc {
                    s.id.clone()
                } else {
                    s.id.chars().take(12).collect()
                }
            );
        }
        return Ok(0);
    }
    let rows: Vec<_> = list
        .iter()
        .map(|s| listing::ps_row(s, a.no_trunc))
        .collect();
    let label = listing::label_method(list.iter().map(|s| s.labels.clone()).collect());
    listing::print(
        a.format.as_deref(),
        listing::PS_TABLE,
        &rows,
        "*formatter.ContainerContext",
        listing::PS_HEADERS,
        Some(&label),
    )?;
    Ok(0)
}

// ---- logs, top, stats ---------------------------------------------------------

/// `--since`/`--until`: a duration before now, or a timestamp passed on.
fn time_arg(s: &str) -> String {
    if let Ok(d) = opts::duration(s) {
        if s.parse::<f64>().is_err() {
            let t = SystemTime::now()
                .checked_sub(d)
                .unwrap_or(UNIX_EPOCH)
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            return format!("{}.{:09}", t.as_secs(), t.subsec_nanos());
        }
    }
    match cais_image::time::parse_rfc3339(s) {
        Some(secs) => secs.to_string(),
        None => s.to_string(),
    }
}

fn logs(c: &Client, a: LogsArgs) -> Result<i32> {
    let mut q = vec![
        ("stdout", "1".to_string()),
        ("stderr", "1".to_string()),
        ("follow", u8::from(a.follow).to_string()),
        ("timestamps", u8::from(a.timestamps).to_string()),
    ];
    if let Some(s) = &a.since {
        q.push(("since", time_arg(s)));
    }
    if let Some(s) = &a.until {
        q.push(("until", time_arg(s)));
    }
    if let Some(t) = &a.tail {
        q.push(("tail", t.clone()));
    }
    let resp = c.container_logs(&a.container, &q)?;
    let multiplexed = resp
        .header("Content-Type")
        .is_some_and(|t| t.contains("multiplexed"));
    let mut body = resp.body;
    if multiplexed {
        while let Some((stream, data)) = cais_client::http::read_frame(&mut body)? {
            let r = if stream == 2 {
                std::io::stderr().lock().write_all(&data)
            } else {
                std::io::stdout().lock().write_all(&data)
            };
            if r.is_err() {
                break;
            }
        }
    } else {
        let _ = std::io::copy(&mut body, &mut std::io::stdout().lock());
    }
    Ok(0)
}

fn top(c: &Client, a: TopArgs) -> Result<i32> {
    let q: Vec<_> = if a.ps_args.is_empty() {
        Vec::new()
    } else {
        vec![("ps_args", a.ps_args.join(" "))]
    };
    let v = c.container_top(&a.container, &q)?;
    let mut lines = Vec::new();
    let strs = |x: &Value| -> Vec<String> {
        x.as_array()
            .into_iter()
            .flatten()
            .map(|s| s.as_str().unwrap_or_default().to_string())
            .collect()
    };
    lines.push(strs(&v["Titles"]).join("\t"));
    for p in v["Processes"].as_array().into_iter().flatten() {
        lines.push(strs(p).join("\t"));
    }
    print_columns(&lines);
    Ok(0)
}

fn stats_row(name: &str, s: &Value) -> Value {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    let cpu_delta = f(&s["cpu_stats"]["cpu_usage"]["total_usage"])
        - f(&s["precpu_stats"]["cpu_usage"]["total_usage"]);
    let sys_delta =
        f(&s["cpu_stats"]["system_cpu_usage"]) - f(&s["precpu_stats"]["system_cpu_usage"]);
    let online = s["cpu_stats"]["online_cpus"].as_f64().unwrap_or(1.0);
    let cpu = if cpu_delta > 0.0 && sys_delta > 0.0 {
        cpu_delta / sys_delta * online * 100.0
    } else {
        0.0
    };
    let usage = f(&s["memory_stats"]["usage"]);
    // An unlimited cgroup reports a huge limit: docker shows the host's
    // memory then.
    let mut limit = f(&s["memory_stats"]["limit"]);
    if limit <= 0.0 || limit >= (1u64 << 60) as f64 {
        limit = host_memory().unwrap_or(limit);
    }
    let mem_pct = if limit > 0.0 {
        usage / limit * 100.0
    } else {
        0.0
    };
    let (mut read, mut write) = (0u64, 0u64);
    for e in s["blkio_stats"]["io_service_bytes_recursive"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let v = e["value"].as_u64().unwrap_or(0);
        match e["op"].as_str().map(str::to_ascii_lowercase).as_deref() {
            Some("read") => read += v,
            Some("write") => write += v,
            _ => {}
        }
    }
    let binary = |b: f64| -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut v = b;
        let mut i = 0;
        while v >= 1024.0 && i < units.len() - 1 {
            v /= 1024.0;
            i += 1;
        }
        format!("{v:.2}{}", units[i])
    };
    let id: String = s["id"]
        .as_str()
        .unwrap_or_default()
        .chars()
        .take(12)
        .collect();
    json!({
        "Container": name,
        "ID": id,
        "Name": s["name"].as_str().unwrap_or(name).trim_start_matches('/'),
        "CPUPerc": format!("{cpu:.2}%"),
        "MemUsage": format!("{} / {}", binary(usage), binary(limit)),
        "MemPerc": format!("{mem_pct:.2}%"),
        "NetIO": "0B / 0B",
        "BlockIO": format!("{} / {}", human_size(read), human_size(write)),
        "PIDs": s["pids_stats"]["current"].as_u64().unwrap_or(0).to_string(),
    })
}

fn host_memory() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}

fn stats_header(field: &str) -> String {
    match field {
        "ID" => "CONTAINER ID",
        "Container" => "CONTAINER",
        "Name" => "NAME",
        "CPUPerc" => "CPU %",
        "MemUsage" => "MEM USAGE / LIMIT",
        "MemPerc" => "MEM %",
        "NetIO" => "NET I/O",
        "BlockIO" => "BLOCK I/O",
        "PIDs" => "PIDS",
        other => return other.to_uppercase(),
    }
    .to_string()
}

fn stats(c: &Client, a: StatsArgs) -> Result<i32> {
    let names: Vec<String> = if a.containers.is_empty() {
        let list = c.container_list(&[("all", u8::from(a.all).to_string())])?;
        list.into_iter().map(|s| s.id).collect()
    } else {
        a.containers.clone()
    };
    let f = Format::parse(
        a.format.as_deref(),
        "{{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}",
    );
    if a.no_stream {
        let mut rows = Vec::new();
        for n in &names {
            let v = c.container_stats_once(n)?;
            rows.push(stats_row(n, &v));
        }
        f.print(&rows, &stats_header)?;
        return Ok(0);
    }
    // One streaming request per container; the table is redrawn each second.
    let latest = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::<String, Value>::new()));
    for n in &names {
        let resp = c.container_stats_stream(n)?;
        let latest = latest.clone();
        let n = n.clone();
        std::thread::spawn(move || {
            for v in json_lines::<Value>(resp.body) {
                let Ok(v) = v else { break };
                let row = stats_row(&n, &v);
                latest
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(n.clone(), row);
            }
        });
    }
    let tty = std::io::stdout().is_terminal();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let rows: Vec<Value> = latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        if tty {
            print!("\x1b[2J\x1b[H");
        }
        f.print(&rows, &stats_header)?;
        if std::io::stdout().flush().is_err() {
            return Ok(0);
        }
    }
}

// ---- inspect, commit, events, port -------------------------------------

pub fn inspect(c: &Client, a: &InspectArgs) -> Result<i32> {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for n in &a.names {
        let kind = a.kind.as_deref();
        let mut v = None;
        for k in ["container", "image", "volume", "network"] {
            if kind.is_some_and(|want| want != k) {
                continue;
            }
            v = match k {
                "container" => c.container_inspect_raw(n),
                "image" => c.image_inspect_raw(n),
                "volume" => c.volume_inspect_raw(n),
                _ => c.network_inspect_raw(n),
            }
            .ok();
            if v.is_some() {
                break;
            }
        }
        match v {
            Some(v) => found.push(v),
            None => missing.push(n),
        }
    }
    print_inspected(&found, a.format.as_deref())?;
    for n in &missing {
        match a.kind.as_deref() {
            Some("container") => {
                eprintln!("Error response from daemon: No such container: {n}")
            }
            Some("image") => eprintln!("Error response from daemon: No such image: {n}"),
            _ => eprintln!("Error: No such object: {n}"),
        }
    }
    Ok(i32::from(!missing.is_empty()))
}

/// Prints what `inspect` found (docker prints it before the errors).
pub fn print_inspected(found: &[Vec<u8>], format: Option<&str>) -> Result<()> {
    match listing::inspect_output(found, format) {
        Ok(out) => {
            let _ = std::io::stdout().lock().write_all(out.as_bytes());
            Ok(())
        }
        Err(e) => match e.downcast::<listing::Inspected>() {
            Ok(listing::Inspected(out, message)) => {
                let _ = std::io::stdout().lock().write_all(out.as_bytes());
                eprintln!("{message}");
                Err(Exit(1).into())
            }
            Err(e) => Err(e),
        },
    }
}

/// `repo[:tag]` split at a tag colon (not a registry port's).
fn split_reference(r: &str) -> (String, String) {
    match r.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
        _ => (r.to_string(), String::new()),
    }
}

fn commit(c: &Client, a: CommitArgs) -> Result<i32> {
    let mut q = vec![("container", a.container.clone())];
    if let Some(r) = &a.reference {
        let (repo, tag) = split_reference(r);
        q.push(("repo", repo));
        if !tag.is_empty() {
            q.push(("tag", tag));
        }
    }
    if let Some(m) = &a.message {
        q.push(("comment", m.clone()));
    }
    if let Some(au) = &a.author {
        q.push(("author", au.clone()));
    }
    let v = c.commit(&q)?;
    println!("{}", v["Id"].as_str().unwrap_or_default());
    Ok(0)
}

pub fn events_cmd(c: &Client, a: EventsArgs) -> Result<i32> {
    let mut q = Vec::new();
    if let Some(s) = &a.since {
        q.push(("since", time_arg(s)));
    }
    if let Some(s) = &a.until {
        q.push(("until", time_arg(s)));
    }
    if !a.filter.is_empty() {
        q.push(("filters", opts::filters_json(&a.filter)?));
    }
    let resp = c.events(&q)?;
    let mut out = std::io::stdout().lock();
    for ev in json_lines::<Value>(resp.body) {
        let ev = ev?;
        let line = match &a.format {
            Some(t) => render(t, &ev)?,
            None => {
                let nanos = ev["timeNano"].as_i64().unwrap_or(0);
                let when = format_unix(
                    nanos.div_euclid(1_000_000_000),
                    nanos.rem_euclid(1_000_000_000) as u32,
                );
                let attrs: Vec<String> = ev["Actor"]["Attributes"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect();
                format!(
                    "{when} {} {} {} ({})",
                    ev["Type"].as_str().unwrap_or_default(),
                    ev["Action"].as_str().unwrap_or_default(),
                    ev["Actor"]["ID"].as_str().unwrap_or_default(),
                    attrs.join(", ")
                )
            }
        };
        if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
            break;
        }
    }
    Ok(0)
}

// ---- volumes ------------------------------------------------------------------

fn volume(c: &Client, cmd: VolumeCmd) -> Result<i32> {
    match cmd {
        VolumeCmd::Create {
            driver,
            label,
            name,
        } => {
            let req = VolumeCreateRequest {
                name: name.unwrap_or_default(),
                driver,
                labels: label
                    .iter()
                    .map(|l| {
                        let (k, v) = l.split_once('=').unwrap_or((l, ""));
                        (k.to_string(), v.to_string())
                    })
                    .collect(),
                ..VolumeCreateRequest::default()
            };
            let v = c.volume_create(&req)?;
            println!("{}", v.name);
            Ok(0)
        }
        VolumeCmd::Ls {
            quiet,
            filter,
            format,
        } => {
            let q: Vec<_> = if filter.is_empty() {
                Vec::new()
            } else {
                vec![("filters", opts::filters_json(&filter)?)]
            };
            let list = c.volume_list(&q)?;
            if quiet {
                for v in &list.volumes {
                    println!("{}", v.name);
                }
                return Ok(0);
            }
            let rows: Vec<_> = list.volumes.iter().map(listing::volume_row).collect();
            listing::print(
                format.as_deref(),
                listing::VOLUMES_TABLE,
                &rows,
                "*formatter.volumeContext",
                listing::VOLUMES_HEADERS,
                Some(&listing::label_method(
                    list.volumes.iter().map(|v| v.labels.clone()).collect(),
                )),
            )?;
            Ok(0)
        }
        VolumeCmd::Inspect { format, names } => {
            let mut out = Vec::new();
            let mut errors = Vec::new();
            for n in &names {
                // docker prints the volume as its typed struct, whose
                // fields are in alphabetical order.
                match c.volume_inspect_value(n) {
                    Ok(v) => out.push(serde_json::to_vec(&v)?),
                    Err(e) => errors.push(anyhow::Error::from(e)),
                }
            }
            print_inspected(&out, format.as_deref())?;
            for e in &errors {
                report(e, 1);
            }
            Ok(i32::from(!errors.is_empty()))
        }
        VolumeCmd::Rm { force, names } => each(&names, |n| c.volume_remove(n, force)),
        VolumeCmd::Prune(a) => crate::system::prune(c, crate::system::Kind::Volumes, a),
    }
}

// ---- images through the daemon ---------------------------------------------

/// Prints JSON-lines progress (pull, push): plain lines when stderr is not
/// a terminal; on a terminal one line per layer id, updated in place. An
/// `error` message fails the command.
fn progress(body: cais_client::http::Body, quiet: bool) -> Result<()> {
    let tty = std::io::stderr().is_terminal();
    let mut err = std::io::stderr().lock();
    let mut ids: Vec<String> = Vec::new();
    for msg in json_lines::<Value>(body) {
        let msg = msg?;
        if let Some(e) = msg["error"]
            .as_str()
            .or(msg["errorDetail"]["message"].as_str())
        {
            bail!("{e}");
        }
        if quiet {
            continue;
        }
        let status = msg["status"]
            .as_str()
            .or(msg["stream"].as_str().map(str::trim_end))
            .unwrap_or_default();
        let id = msg["id"].as_str();
        let line = match (id, msg["progress"].as_str()) {
            (Some(id), Some(p)) => format!("{id}: {status} {p}"),
            (Some(id), None) => format!("{id}: {status}"),
            (None, _) => status.to_string(),
        };
        match id {
            Some(id) if tty => {
                if let Some(pos) = ids.iter().position(|i| i == id) {
                    // Up to the layer's line, rewrite it, back down.
                    let up = ids.len() - pos;
                    let _ = write!(err, "\x1b[{up}A\r\x1b[2K{line}\r\x1b[{up}B");
                } else {
                    ids.push(id.to_string());
                    let _ = writeln!(err, "{line}");
                }
            }
            _ => {
                let _ = writeln!(err, "{line}");
            }
        }
        let _ = err.flush();
    }
    Ok(())
}

/// `cais pull` through the daemon: `POST /images/create?fromImage=`.
pub fn pull_remote(
    c: &Client,
    image: &str,
    platform: &str,
    quiet: bool,
    print_reference: bool,
) -> Result<i32> {
    let (repo, tag) = split_reference(image);
    let tag = if tag.is_empty() && !repo.contains('@') {
        "latest".to_string()
    } else {
        tag
    };
    let mut q = vec![("fromImage", repo.clone()), ("tag", tag.clone())];
    if !platform.is_empty() {
        q.push(("platform", platform.to_string()));
    }
    let auth = crate::transfer::registry_auth_header(image);
    let resp = c.image_pull(&q, auth.as_deref())?;
    progress(resp.body, quiet)?;
    if print_reference {
        println!(
            "{}",
            if tag.is_empty() {
                repo
            } else {
                format!("{repo}:{tag}")
            }
        );
    }
    Ok(0)
}

/// `cais push` through the daemon: `POST /images/{name}/push`, after
/// tagging IMAGE as TARGET when one is given.
pub fn push_remote(c: &Client, image: &str, target: Option<&str>, quiet: bool) -> Result<i32> {
    if let Some(t) = target {
        images::tag(c, image, t)?;
    }
    let (repo, tag) = split_reference(target.unwrap_or(image));
    let q: Vec<_> = if tag.is_empty() {
        Vec::new()
    } else {
        vec![("tag", tag)]
    };
    let auth = crate::transfer::registry_auth_header(target.unwrap_or(image));
    let resp = c.image_push(&repo, &q, auth.as_deref())?;
    progress(resp.body, quiet)?;
    Ok(0)
}

/// `cais images` and friends through the daemon.
pub mod images {
    use super::*;

    pub fn list(c: &Client, a: &crate::images::ImagesArgs) -> Result<i32> {
        let mut filters = a.filter.clone();
        if let Some(r) = &a.repository {
            filters.push(format!("reference={r}"));
        }
        let q: Vec<_> = if filters.is_empty() {
            Vec::new()
        } else {
            vec![("filters", opts::filters_json(&filters)?)]
        };
        let list = c.image_list(&q)?;
        if a.quiet {
            let mut seen = std::collections::BTreeSet::new();
            for i in &list {
                let id = listing_short(&i.id, a.no_trunc);
                if seen.insert(id.clone()) {
                    println!("{id}");
                }
            }
            return Ok(0);
        }
        let rows = listing::image_rows(&list, a.no_trunc);
        let table = if a.digests {
            listing::IMAGES_DIGESTS_TABLE
        } else {
            listing::IMAGES_TABLE
        };
        listing::print(
            a.format.as_deref(),
            table,
            &rows,
            "*formatter.imageContext",
            listing::IMAGES_HEADERS,
            None,
        )?;
        Ok(0)
    }

    fn listing_short(id: &str, no_trunc: bool) -> String {
        if no_trunc {
            id.to_string()
        } else {
            id.trim_start_matches("sha256:").chars().take(12).collect()
        }
    }

    pub fn tag(c: &Client, source: &str, target: &str) -> Result<i32> {
        let (repo, tag) = split_reference(target);
        let mut q = vec![("repo", repo)];
        if !tag.is_empty() {
            q.push(("tag", tag));
        }
        c.image_tag(source, &q)?;
        Ok(0)
    }

    pub fn rmi(c: &Client, force: bool, names: &[String]) -> Result<i32> {
        let mut failed = false;
        for n in names {
            match c.image_remove(n, force) {
                Ok(v) => {
                    for r in v.as_array().into_iter().flatten() {
                        if let Some(u) = r["Untagged"].as_str() {
                            println!("Untagged: {u}");
                        }
                        if let Some(d) = r["Deleted"].as_str() {
                            println!("Deleted: {d}");
                        }
                    }
                }
                Err(e) => {
                    report(&e.into(), 1);
                    failed = true;
                }
            }
        }
        Ok(i32::from(failed))
    }

    pub fn history(c: &Client, name: &str, quiet: bool, no_trunc: bool) -> Result<i32> {
        let rows = c.image_history(name)?;
        let mut lines = vec!["IMAGE\tCREATED\tCREATED BY\tSIZE\tCOMMENT".to_string()];
        for r in &rows {
            let id = r["Id"].as_str().unwrap_or("<missing>");
            let id = if no_trunc || id == "<missing>" {
                id.to_string()
            } else {
                id.trim_start_matches("sha256:").chars().take(12).collect()
            };
            if quiet {
                println!("{id}");
                continue;
            }
            let mut by = r["CreatedBy"].as_str().unwrap_or_default().to_string();
            if !no_trunc && by.chars().count() > 45 {
                by = by.chars().take(44).collect::<String>() + "…";
            }
            lines.push(
                [
                    id,
                    ago(r["Created"].as_i64().unwrap_or(0)),
                    by,
                    human_size(r["Size"].as_u64().unwrap_or(0)),
                    r["Comment"].as_str().unwrap_or_default().to_string(),
                ]
                .join("\t"),
            );
        }
        if !quiet {
            print_columns(&lines);
        }
        Ok(0)
    }

    pub fn save(c: &Client, names: &[String], output: Option<&std::path::Path>) -> Result<i32> {
        let q: Vec<_> = names.iter().map(|n| ("names", n.clone())).collect();
        if output.is_none() && std::io::stdout().is_terminal() {
            bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
        }
        let mut resp = c.images_save(&q)?;
        match output {
            Some(p) => {
                let mut f = std::fs::File::create(p)
                    .with_context(|| format!("creating {}", p.display()))?;
                std::io::copy(&mut resp.body, &mut f)?;
            }
            None => {
                std::io::copy(&mut resp.body, &mut std::io::stdout().lock())?;
            }
        }
        Ok(0)
    }

    /// Opens the tarball to send: a file, or stdin for none or `-`.
    fn open_input(input: Option<&std::path::Path>) -> Result<Box<dyn Read>> {
        match input {
            Some(p) if p != std::path::Path::new("-") => Ok(Box::new(
                std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?,
            )),
            _ => {
                if std::io::stdin().is_terminal() {
                    bail!("requested load from stdin, but stdin is empty");
                }
                Ok(Box::new(std::io::stdin()))
            }
        }
    }

    /// Prints a JSON-lines answer (`stream` and `status` lines on stdout);
    /// an `error` line fails the command.
    fn print_answer(body: cais_client::http::Body) -> Result<()> {
        let mut out = std::io::stdout().lock();
        for msg in json_lines::<Value>(body) {
            let msg = msg?;
            if let Some(e) = msg["error"]
                .as_str()
                .or(msg["errorDetail"]["message"].as_str())
            {
                bail!("{e}");
            }
            if let Some(s) = msg["stream"].as_str() {
                let _ = write!(out, "{s}");
            } else if let Some(s) = msg["status"].as_str() {
                let _ = writeln!(out, "{s}");
            }
        }
        Ok(())
    }

    pub fn load(c: &Client, input: Option<&std::path::Path>, quiet: bool) -> Result<i32> {
        let mut data = open_input(input)?;
        let resp = c.images_load(quiet, &mut data)?;
        print_answer(resp.body)?;
        Ok(0)
    }

    pub fn import(
        c: &Client,
        file: &str,
        reference: Option<&str>,
        message: Option<&str>,
    ) -> Result<i32> {
        let mut data = open_input(Some(std::path::Path::new(file)))?;
        let mut q = vec![("fromSrc", "-".to_string())];
        if let Some(r) = reference {
            let (repo, tag) = split_reference(r);
            q.push(("repo", repo));
            if !tag.is_empty() {
                q.push(("tag", tag));
            }
        }
        if let Some(m) = message {
            q.push(("message", m.to_string()));
        }
        let resp = c.image_import(&q, &mut data)?;
        print_answer(resp.body)?;
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `create_request` for `cais run ARGS`.
    fn request(args: &[&str]) -> Result<CreateRequest> {
        #[derive(clap::Parser)]
        struct Run {
            #[command(flatten)]
            run: RunArgs,
        }
        let argv = std::iter::once("run").chain(args.iter().copied());
        let run = <Run as clap::Parser>::try_parse_from(argv)?;
        create_request(&run.run)
    }

    #[test]
    fn network_flags_make_the_create_request() {
        let req = request(&[
            "--network",
            "n1",
            "--network-alias",
            "db",
            "--ip",
            "10.1.0.9",
            "--link",
            "a:b",
            "--dns",
            "192.0.2.53",
            "--dns-search",
            "corp",
            "--dns-option",
            "ndots:2",
            "--add-host",
            "gw:10.0.0.1",
            "-p",
            "127.0.0.1:8080:80",
            "-p",
            "53:53/udp",
            "--expose",
            "90-91",
            "-P",
            "busybox",
        ])
        .expect("valid");
        let hc = &req.host_config;
        assert_eq!(hc.network_mode, "n1");
        assert_eq!(
            (&hc.dns[..], &hc.dns_search[..], &hc.dns_options[..]),
            (
                &["192.0.2.53".to_string()][..],
                &["corp".to_string()][..],
                &["ndots:2".to_string()][..]
            )
        );
        assert_eq!(hc.extra_hosts, ["gw:10.0.0.1"]);
        assert_eq!(hc.links, ["a:b"]);
        assert!(hc.publish_all_ports);
        assert_eq!(hc.port_bindings["80/tcp"][0].host_ip, "127.0.0.1");
        assert_eq!(hc.port_bindings["53/udp"][0].host_port, "53");
        let exposed: Vec<&String> = req
            .config
            .exposed_ports
            .as_ref()
            .expect("exposed")
            .keys()
            .collect();
        assert_eq!(exposed, ["53/udp", "80/tcp", "90/tcp", "91/tcp"]);
        let ep = &req
            .networking_config
            .as_ref()
            .expect("endpoints")
            .endpoints_config["n1"];
        assert_eq!(ep.aliases, ["db"]);
        assert_eq!(ep.links, ["a:b"]);
        assert_eq!(
            ep.ipam_config.as_ref().map(|i| i.ipv4_address.as_str()),
            Some("10.1.0.9")
        );

        // The default bridge: no endpoint config, mode "default".
        let req = request(&["busybox"]).expect("valid");
        assert_eq!(req.host_config.network_mode, "default");
        assert!(req.networking_config.is_none());
        assert_eq!(
            request(&["--net", "host", "busybox"])
                .expect("host")
                .host_config
                .network_mode,
            "host"
        );

        for (args, why) in [
            (
                &["--network-alias", "x", "busybox"][..],
                "user-defined networks",
            ),
            (
                &["--network", "none", "--ip", "10.0.0.2", "busybox"][..],
                "user defined networks",
            ),
            (
                &["--network", "n1", "--ip", "10.0.0", "busybox"][..],
                "invalid IPv4 address",
            ),
            (
                &["--network", "container:", "busybox"][..],
                "container:NAME",
            ),
            (
                &["--network", "n1", "--network", "host", "busybox"][..],
                "combined",
            ),
            (&["--add-host", "nohost", "busybox"][..], "HOST:IP"),
            (&["--add-host", "h:not-an-ip", "busybox"][..], "HOST:IP"),
            (&["--dns", "dns.example", "busybox"][..], "an IP address"),
            (&["--link", "a:b:c", "busybox"][..], "NAME[:ALIAS]"),
            (&["-p", "80:80/sctp", "busybox"][..], "sctp"),
            (&["--expose", "0", "busybox"][..], "invalid port"),
        ] {
            let e = request(args).expect_err(why);
            assert!(format!("{e:#}").contains(why), "{args:?}: {e:#}");
        }
    }

    #[test]
    fn references_split_at_the_tag() {
        assert_eq!(
            split_reference("localhost:5000/a/b:1"),
            ("localhost:5000/a/b".into(), "1".into())
        );
        assert_eq!(
            split_reference("localhost:5000/a/b"),
            ("localhost:5000/a/b".into(), String::new())
        );
        assert_eq!(
            split_reference("busybox"),
            ("busybox".into(), String::new())
        );
    }
}
