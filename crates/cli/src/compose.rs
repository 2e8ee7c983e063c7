//! `cais compose`: docker compose v2's command line over `cais-compose`
//! (the loader, the model and the planner) and the daemon's API.
//!
//! Progress goes to stderr as docker compose prints it without a
//! terminal (` Container p-web-1  Started`); listings go to stdout in its
//! columns. Exit codes: 0, 1 for an error (a bad file, a daemon error, a
//! dependency that failed), the container's code for `run` and `exec`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use cais_api::{ContainerSummary, ExecConfig};
use cais_client::Client;
use cais_compose::plan::Recreate;
use cais_compose::run::{self, BuildPolicy, Compose, DownOptions, Event, ImageBuilder, UpOptions};
use cais_compose::{labels, Project, Service};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::client_cmds;
use crate::network;
use crate::term;

#[derive(Debug, Args)]
pub struct ComposeArgs {
    /// Compose configuration files (default: compose.yaml and friends).
    #[arg(short = 'f', long = "file")]
    file: Vec<PathBuf>,
    /// Project name.
    #[arg(short = 'p', long = "project-name")]
    project_name: Option<String>,
    /// Alternate working directory (default: the first file's directory).
    #[arg(long = "project-directory")]
    project_directory: Option<PathBuf>,
    /// Alternate environment files (default: the project directory's .env).
    #[arg(long = "env-file")]
    env_file: Vec<PathBuf>,
    /// Profiles to enable.
    #[arg(long = "profile")]
    profile: Vec<String>,
    /// Colours: never, always or auto.
    #[arg(long, default_value = "auto")]
    ansi: String,
    /// Progress output: auto, tty, plain, json or quiet.
    #[arg(long, default_value = "auto")]
    progress: String,
    /// Accepted for compatibility: services go up in dependency levels.
    #[arg(long)]
    parallel: Option<i64>,
    /// Accepted for compatibility.
    #[arg(long)]
    compatibility: bool,
    #[command(subcommand)]
    command: ComposeCmd,
}

#[derive(Debug, Subcommand)]
enum ComposeCmd {
    /// Create and start containers.
    Up(UpArgs),
    /// Stop and remove containers and networks.
    Down(DownArgs),
    /// List containers.
    Ps(PsArgs),
    /// View output from containers.
    Logs(LogsArgs),
    /// Execute a command in a running container.
    Exec(ExecArgs),
    /// Run a one-off command on a service.
    Run(RunArgs),
    /// Build or rebuild services.
    Build(BuildArgs),
    /// Pull service images.
    Pull(PullArgs),
    /// Push service images.
    Push(ServicesArgs),
    /// Create containers for a service.
    Create(CreateArgs),
    /// Start services.
    Start(ServicesArgs),
    /// Stop services.
    Stop(StopArgs),
    /// Restart service containers.
    Restart(StopArgs),
    /// Force stop service containers.
    Kill(KillArgs),
    /// Remove stopped service containers.
    Rm(RmArgs),
    /// Pause services.
    Pause(ServicesArgs),
    /// Unpause services.
    Unpause(ServicesArgs),
    /// Display the running processes.
    Top(ServicesArgs),
    /// Print the public port for a port binding.
    Port(PortArgs),
    /// List images used by the created containers.
    Images(ImagesArgs),
    /// List running compose projects.
    Ls(LsArgs),
    /// Copy files between a service container and the local filesystem.
    Cp(CpArgs),
    /// Receive real time events from containers.
    Events(EventsArgs),
    /// Block until the first service container stops.
    Wait(WaitArgs),
    /// Parse, resolve and render the compose file in canonical format.
    Config(ConfigArgs),
    /// Show the Compose version information.
    Version(VersionArgs),
}

#[derive(Debug, Args)]
struct ServicesArgs {
    services: Vec<String>,
}

#[derive(Debug, Args)]
struct UpArgs {
    /// Detached mode: run containers in the background.
    #[arg(short = 'd', long)]
    detach: bool,
    /// Build images before starting containers.
    #[arg(long)]
    build: bool,
    /// Don't build an image, even if it's missing.
    #[arg(long = "no-build")]
    no_build: bool,
    /// Wait for services to be running|healthy (implies --detach).
    #[arg(long)]
    wait: bool,
    /// Maximum duration in seconds to wait for the project to be running|healthy.
    #[arg(long = "wait-timeout")]
    wait_timeout: Option<u64>,
    /// Scale SERVICE to NUM instances (SERVICE=NUM).
    #[arg(long)]
    scale: Vec<String>,
    /// Recreate containers even if their configuration hasn't changed.
    #[arg(long = "force-recreate")]
    force_recreate: bool,
    /// If containers already exist, don't recreate them.
    #[arg(long = "no-recreate")]
    no_recreate: bool,
    /// Remove containers for services not defined in the Compose file.
    #[arg(long = "remove-orphans")]
    remove_orphans: bool,
    /// Don't start linked services.
    #[arg(long = "no-deps")]
    no_deps: bool,
    /// Don't start the services after creating them.
    #[arg(long = "no-start")]
    no_start: bool,
    /// Shutdown timeout in seconds.
    #[arg(short = 't', long)]
    timeout: Option<i64>,
    /// Pull image before running ("always"|"missing"|"never").
    #[arg(long)]
    pull: Option<String>,
    /// Stops all containers if any container was stopped.
    #[arg(long = "abort-on-container-exit")]
    abort_on_container_exit: bool,
    /// Produce monochrome output.
    #[arg(long = "no-color")]
    no_color: bool,
    /// Don't print prefix in logs.
    #[arg(long = "no-log-prefix")]
    no_log_prefix: bool,
    /// Pull without printing progress information.
    #[arg(long = "quiet-pull")]
    quiet_pull: bool,
    services: Vec<String>,
}

#[derive(Debug, Args)]
struct CreateArgs {
    #[arg(long)]
    build: bool,
    #[arg(long = "no-build")]
    no_build: bool,
    #[arg(long = "force-recreate")]
    force_recreate: bool,
    #[arg(long = "no-recreate")]
    no_recreate: bool,
    #[arg(long = "remove-orphans")]
    remove_orphans: bool,
    #[arg(long)]
    scale: Vec<String>,
    #[arg(long)]
    pull: Option<String>,
    services: Vec<String>,
}

#[derive(Debug, Args)]
struct DownArgs {
    /// Remove named volumes declared in the "volumes" section and anonymous volumes.
    #[arg(short = 'v', long)]
    volumes: bool,
    /// Remove images used by services: "local" (no custom tag) or "all".
    #[arg(long, value_parser = ["local", "all"])]
    rmi: Option<String>,
    /// Remove containers for services not defined in the Compose file.
    #[arg(long = "remove-orphans")]
    remove_orphans: bool,
    /// Shutdown timeout in seconds.
    #[arg(short = 't', long)]
    timeout: Option<i64>,
    services: Vec<String>,
}

#[derive(Debug, Args)]
struct PsArgs {
    /// Show all stopped containers.
    #[arg(short = 'a', long)]
    all: bool,
    /// Only display IDs.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Display services.
    #[arg(long)]
    services: bool,
    /// Format: table, json, or a Go template.
    #[arg(long)]
    format: Option<String>,
    /// Filter services by status (running, exited, ...).
    #[arg(long)]
    status: Vec<String>,
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    #[arg(value_name = "SERVICE")]
    names: Vec<String>,
}

#[derive(Debug, Args)]
struct LogsArgs {
    /// Follow log output.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Number of lines to show from the end of the logs for each container.
    #[arg(short = 'n', long)]
    tail: Option<String>,
    /// Show timestamps.
    #[arg(short = 't', long)]
    timestamps: bool,
    #[arg(long = "no-color")]
    no_color: bool,
    #[arg(long = "no-log-prefix")]
    no_log_prefix: bool,
    #[arg(long)]
    since: Option<String>,
    #[arg(long)]
    until: Option<String>,
    services: Vec<String>,
}

#[derive(Debug, Args)]
struct ExecArgs {
    /// Detached mode: run the command in the background.
    #[arg(short = 'd', long)]
    detach: bool,
    /// Disable pseudo-TTY allocation.
    #[arg(short = 'T', long = "no-TTY")]
    no_tty: bool,
    /// Keep STDIN open (the default).
    #[arg(short = 'i', long, default_value_t = true)]
    interactive: bool,
    /// Set environment variables.
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Path to workdir directory for this command.
    #[arg(short = 'w', long)]
    workdir: Option<String>,
    /// Run the command as this user.
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Index of the container if the service has multiple replicas.
    #[arg(long, default_value_t = 1)]
    index: u32,
    #[arg(long)]
    privileged: bool,
    service: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Automatically remove the container when it exits.
    #[arg(long)]
    rm: bool,
    /// Run container in background and print container ID.
    #[arg(short = 'd', long)]
    detach: bool,
    /// Disable pseudo-TTY allocation.
    #[arg(short = 'T', long = "no-TTY")]
    no_tty: bool,
    /// Keep STDIN open (the default).
    #[arg(short = 'i', long, default_value_t = true)]
    interactive: bool,
    /// Set environment variables.
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Override the entrypoint of the image.
    #[arg(long)]
    entrypoint: Option<String>,
    /// Don't start linked services.
    #[arg(long = "no-deps")]
    no_deps: bool,
    /// Assign a name to the container.
    #[arg(long)]
    name: Option<String>,
    #[arg(short = 'w', long)]
    workdir: Option<String>,
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Publish a container's port(s) to the host.
    #[arg(short = 'p', long)]
    publish: Vec<String>,
    /// Run command with all service's ports enabled and mapped to the host.
    #[arg(long = "service-ports")]
    service_ports: bool,
    /// Add or override a label.
    #[arg(short = 'l', long)]
    label: Vec<String>,
    /// Bind mount a volume.
    #[arg(short = 'v', long)]
    volume: Vec<String>,
    /// Build image before starting container.
    #[arg(long)]
    build: bool,
    service: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Debug, Args)]
struct BuildArgs {
    /// Do not use cache when building the image.
    #[arg(long = "no-cache")]
    no_cache: bool,
    /// Always attempt to pull a newer version of the image.
    #[arg(long)]
    pull: bool,
    /// Don't print anything to STDOUT.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Set build-time variables for services.
    #[arg(long = "build-arg")]
    build_arg: Vec<String>,
    services: Vec<String>,
}

#[derive(Debug, Args)]
struct PullArgs {
    #[arg(short = 'q', long)]
    quiet: bool,
    #[arg(long = "ignore-pull-failures")]
    ignore_pull_failures: bool,
    services: Vec<String>,
}

#[derive(Debug, Args)]
struct StopArgs {
    /// Specify a shutdown timeout in seconds.
    #[arg(short = 't', long)]
    timeout: Option<i64>,
    services: Vec<String>,
}

#[derive(Debug, Args)]
struct KillArgs {
    /// SIGNAL to send to the container.
    #[arg(short = 's', long, default_value = "SIGKILL")]
    signal: String,
    #[arg(long = "remove-orphans")]
    remove_orphans: bool,
    services: Vec<String>,
}

#[derive(Debug, Args)]
struct RmArgs {
    /// Don't ask to confirm removal.
    #[arg(short = 'f', long)]
    force: bool,
    /// Stop the containers, if required, before removing.
    #[arg(short = 's', long)]
    stop: bool,
    /// Remove any anonymous volumes attached to containers.
    #[arg(short = 'v', long)]
    volumes: bool,
    services: Vec<String>,
}

#[derive(Debug, Args)]
struct PortArgs {
    /// tcp or udp.
    #[arg(long, default_value = "tcp")]
    protocol: String,
    /// Index of the container if service has multiple replicas.
    #[arg(long, default_value_t = 1)]
    index: u32,
    service: String,
    private_port: u16,
}

#[derive(Debug, Args)]
struct ImagesArgs {
    #[arg(short = 'q', long)]
    quiet: bool,
    #[arg(long)]
    format: Option<String>,
    services: Vec<String>,
}

#[derive(Debug, Args)]
struct LsArgs {
    /// Show all stopped Compose projects.
    #[arg(short = 'a', long)]
    all: bool,
    /// Only display project names.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// table or json.
    #[arg(long)]
    format: Option<String>,
}

#[derive(Debug, Args)]
struct CpArgs {
    /// Index of the container if service has multiple replicas.
    #[arg(long, default_value_t = 1)]
    index: u32,
    source: String,
    destination: String,
}

#[derive(Debug, Args)]
struct EventsArgs {
    /// Output events as a stream of json objects.
    #[arg(long)]
    json: bool,
    services: Vec<String>,
}

#[derive(Debug, Args)]
struct WaitArgs {
    /// Drops project when the first container stops.
    #[arg(long = "down-project")]
    down_project: bool,
    #[arg(required = true)]
    services: Vec<String>,
}

#[derive(Debug, Args)]
struct ConfigArgs {
    /// Print the service names, one per line.
    #[arg(long)]
    services: bool,
    /// Print the volume names, one per line.
    #[arg(long)]
    volumes: bool,
    /// Print the network names, one per line.
    #[arg(long)]
    networks: bool,
    /// Print the profile names, one per line.
    #[arg(long)]
    profiles: bool,
    /// Print the image names, one per line.
    #[arg(long)]
    images: bool,
    /// Print the service config hash, one per line ("*" for all).
    #[arg(long)]
    hash: Option<String>,
    /// Only validate the configuration, don't print anything.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// yaml or json.
    #[arg(long, default_value = "yaml", value_parser = ["yaml", "json"])]
    format: String,
    /// Save to file (default to stdout).
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    services_filter: Vec<String>,
}

#[derive(Debug, Args)]
struct VersionArgs {
    /// Shows only Compose's version number.
    #[arg(long)]
    short: bool,
    /// pretty or json.
    #[arg(short = 'f', long)]
    format: Option<String>,
}

// ---- loading and printing ------------------------------------------------------

impl ComposeArgs {
    fn options(&self, services: &[String]) -> cais_compose::Options {
        let mut o = cais_compose::Options::from_process();
        o.files = self.file.clone();
        o.project_name = self.project_name.clone();
        o.project_directory = self.project_directory.clone();
        o.env_files = self.env_file.clone();
        o.profiles = self.profile.clone();
        o.services = services.to_vec();
        o
    }

    /// The project from the files; warnings to stderr.
    fn load(&self, services: &[String]) -> Result<Project> {
        let p = cais_compose::load(&self.options(services))?;
        for w in &p.warnings {
            eprintln!("WARN[0000] {w}");
        }
        Ok(p)
    }

    /// The project, or with `-p NAME` and no file, a project that is just a
    /// name: its containers are found by their labels.
    fn load_or_name(&self, services: &[String]) -> Result<Project> {
        match self.load(services) {
            Ok(p) => Ok(p),
            Err(e) => match (&self.project_name, e.downcast_ref::<cais_compose::Error>()) {
                (Some(name), Some(cais_compose::Error::NoConfigFile { .. })) => Ok(Project {
                    name: name.clone(),
                    ..Project::default()
                }),
                _ => Err(e),
            },
        }
    }

    fn quiet_progress(&self) -> bool {
        self.progress == "quiet"
    }

    fn colour(&self) -> bool {
        match self.ansi.as_str() {
            "never" => false,
            "always" => true,
            _ => std::io::stdout().is_terminal(),
        }
    }
}

/// ` Container p-web-1  Started`, on stderr.
fn progress_printer(quiet: bool) -> impl Fn(Event) + Sync {
    move |e: Event| {
        if quiet {
            return;
        }
        if e.kind == "Orphans" {
            eprintln!("WARN[0000] Found orphan containers ([{}]) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.", e.name);
            return;
        }
        eprintln!(" {} {}  {}", e.kind, e.name, e.status);
    }
}

fn scale_map(scale: &[String]) -> Result<BTreeMap<String, u32>> {
    scale
        .iter()
        .map(|s| {
            let (svc, n) = s
                .split_once('=')
                .ok_or_else(|| anyhow!("invalid --scale {s:?}: SERVICE=NUM"))?;
            let n: u32 = n
                .parse()
                .map_err(|_| anyhow!("invalid --scale {s:?}: NUM must be a number"))?;
            Ok((svc.to_string(), n))
        })
        .collect()
}

/// Builds service images through the daemon (the context tarred the way
/// `cais build` tars it).
struct CliBuilder {
    client: Client,
    no_cache: bool,
    pull: bool,
    quiet: bool,
    extra_args: Vec<String>,
}

impl ImageBuilder for CliBuilder {
    fn build(&self, _project: &Project, service: &Service, tag: &str) -> cais_compose::Result<()> {
        let fail = |m: String| cais_compose::Error::Failed(m);
        let Some(b) = &service.build else {
            return Err(fail(format!(
                "service {:?} has no build section",
                service.name
            )));
        };
        let (mut tar, dockerfile) = crate::build::context_dir_tar(
            std::path::Path::new(&b.context),
            Some(&b.dockerfile),
            b.dockerfile_inline.as_deref(),
        )
        .map_err(|e| fail(format!("building {}: {e:#}", service.name)))?;
        let mut q: Vec<(&str, String)> = vec![("t", tag.to_string())];
        for t in &b.tags {
            q.push(("t", t.clone()));
        }
        if let Some(d) = dockerfile {
            q.push(("dockerfile", d));
        }
        let mut args = b.args.clone();
        for a in &self.extra_args {
            match a.split_once('=') {
                Some((k, v)) => args.insert(k.to_string(), Some(v.to_string())),
                None => args.insert(a.clone(), std::env::var(a).ok()),
            };
        }
        if !args.is_empty() {
            q.push(("buildargs", json!(args).to_string()));
        }
        let mut labels = b.labels.clone();
        labels.insert(labels::IMAGE_BUILDER.into(), "classic".into());
        q.push(("labels", json!(labels).to_string()));
        if let Some(t) = &b.target {
            q.push(("target", t.clone()));
        }
        if let Some(n) = &b.network {
            q.push(("networkmode", n.clone()));
        }
        if self.no_cache || b.no_cache {
            q.push(("nocache", "1".into()));
        }
        if self.pull || b.pull {
            q.push(("pull", "1".into()));
        }
        q.push(("rm", "1".into()));
        let resp = self
            .client
            .build(&q, None, &mut tar)
            .map_err(|e| fail(format!("building {}: {e}", service.name)))?;
        for msg in cais_client::http::json_lines::<Value>(resp.body) {
            let msg = msg.map_err(|e| fail(format!("building {}: {e}", service.name)))?;
            if let Some(e) = msg["error"]
                .as_str()
                .or(msg["errorDetail"]["message"].as_str())
            {
                return Err(fail(format!("failed to build {}: {e}", service.name)));
            }
            if !self.quiet {
                if let Some(s) = msg["stream"].as_str() {
                    eprint!("{s}");
                }
            }
        }
        Ok(())
    }
}

/// The containers of `services` (all services when empty).
fn listed(
    c: &Client,
    p: &Project,
    all: bool,
    services: &[String],
) -> Result<Vec<ContainerSummary>> {
    for s in services {
        if !p.services.is_empty() && !p.services.contains_key(s) && !p.disabled.contains_key(s) {
            bail!("no such service: {s}");
        }
    }
    let quiet = |_e: Event| {};
    let cx = Compose {
        client: c,
        project: p,
        progress: &quiet,
    };
    Ok(cx.containers(all, Some(false), services)?)
}

/// The container `index` of `service`.
fn one(c: &Client, p: &Project, service: &str, index: u32) -> Result<ContainerSummary> {
    let list = listed(c, p, false, &[service.to_string()])?;
    list.into_iter()
        .find(|x| run::number(x) == index)
        .ok_or_else(|| anyhow!("service {service:?} is not running"))
}

// ---- the commands ----------------------------------------------------------------

pub fn run(host: Option<&str>, a: ComposeArgs) -> Result<i32> {
    match &a.command {
        ComposeCmd::Config(c) => return config(&a, c),
        ComposeCmd::Version(v) => {
            let version = labels::COMPOSE_VERSION;
            if v.short {
                println!("{version}");
            } else if v.format.as_deref() == Some("json") {
                println!("{}", json!({"version": format!("v{version}")}));
            } else {
                println!(
                    "cais compose version v{version} (cais {})",
                    env!("CARGO_PKG_VERSION")
                );
            }
            return Ok(0);
        }
        _ => {}
    }
    let c = client_cmds::client(host)?;
    let printer = progress_printer(a.quiet_progress());
    match &a.command {
        ComposeCmd::Up(u) => up(&c, &a, u, &printer),
        ComposeCmd::Create(u) => {
            let p = a.load(&u.services)?;
            let cx = Compose {
                client: &c,
                project: &p,
                progress: &printer,
            };
            let builder = CliBuilder {
                client: c.clone(),
                no_cache: false,
                pull: false,
                quiet: false,
                extra_args: Vec::new(),
            };
            cx.up(
                &UpOptions {
                    services: u.services.clone(),
                    recreate: recreate(u.force_recreate, u.no_recreate)?,
                    remove_orphans: u.remove_orphans,
                    scale: scale_map(&u.scale)?,
                    build: build_policy(u.build, u.no_build),
                    no_start: true,
                    ..UpOptions::default()
                },
                Some(&builder),
            )?;
            Ok(0)
        }
        ComposeCmd::Down(d) => {
            let p = a.load_or_name(&[])?;
            let cx = Compose {
                client: &c,
                project: &p,
                progress: &printer,
            };
            cx.down(&DownOptions {
                volumes: d.volumes,
                rmi: d.rmi.clone(),
                remove_orphans: d.remove_orphans,
                timeout: d.timeout,
                services: d.services.clone(),
            })?;
            Ok(0)
        }
        ComposeCmd::Ps(ps) => self::ps(&c, &a, ps),
        ComposeCmd::Logs(l) => logs(&c, &a, l),
        ComposeCmd::Exec(e) => exec(&c, &a, e),
        ComposeCmd::Run(r) => run_oneoff(&c, &a, r, &printer),
        ComposeCmd::Build(b) => {
            let p = a.load(&b.services)?;
            let builder = CliBuilder {
                client: c.clone(),
                no_cache: b.no_cache,
                pull: b.pull,
                quiet: b.quiet,
                extra_args: b.build_arg.clone(),
            };
            let names = if b.services.is_empty() {
                p.services.keys().cloned().collect()
            } else {
                b.services.clone()
            };
            for n in names {
                let s = p
                    .services
                    .get(&n)
                    .ok_or_else(|| anyhow!("no such service: {n}"))?;
                if s.build.is_some() {
                    let image = s.image_name(&p.name);
                    printer(Event {
                        kind: "Image",
                        name: image.clone(),
                        status: "Building".into(),
                    });
                    builder.build(&p, s, &image)?;
                    printer(Event {
                        kind: "Image",
                        name: image,
                        status: "Built".into(),
                    });
                }
            }
            Ok(0)
        }
        ComposeCmd::Pull(pa) => {
            let p = a.load(&pa.services)?;
            let mut failed = false;
            for (n, s) in &p.services {
                if !pa.services.is_empty() && !pa.services.contains(n) {
                    continue;
                }
                let Some(image) = &s.image else { continue };
                if s.build.is_some() && s.pull_policy.as_deref() == Some("build") {
                    continue;
                }
                if !pa.quiet {
                    printer(Event {
                        kind: "Image",
                        name: image.clone(),
                        status: "Pulling".into(),
                    });
                }
                match run::pull(&c, image) {
                    Ok(()) if !pa.quiet => printer(Event {
                        kind: "Image",
                        name: image.clone(),
                        status: "Pulled".into(),
                    }),
                    Ok(()) => {}
                    Err(e) if pa.ignore_pull_failures || s.build.is_some() => {
                        eprintln!("WARN[0000] {e}");
                    }
                    Err(e) => {
                        eprintln!("{e}");
                        failed = true;
                    }
                }
            }
            Ok(i32::from(failed))
        }
        ComposeCmd::Push(pa) => {
            let p = a.load(&pa.services)?;
            for (n, s) in &p.services {
                if !pa.services.is_empty() && !pa.services.contains(n) {
                    continue;
                }
                let Some(image) = &s.image else { continue };
                printer(Event {
                    kind: "Image",
                    name: image.clone(),
                    status: "Pushing".into(),
                });
                client_cmds::push_remote(&c, image, None, true)?;
                printer(Event {
                    kind: "Image",
                    name: image.clone(),
                    status: "Pushed".into(),
                });
            }
            Ok(0)
        }
        ComposeCmd::Start(s) => {
            let p = a.load_or_name(&s.services)?;
            // Dependencies first, as `up` would start them.
            let order = p.service_names();
            let mut list = listed(&c, &p, true, &s.services)?;
            list.sort_by_key(|x| order.iter().position(|n| n == run::service_of(x)));
            if list.is_empty() {
                bail!("service(s) not created: run `compose up` or `compose create` first");
            }
            for x in list {
                let n = run::name(&x);
                printer(Event {
                    kind: "Container",
                    name: n.clone(),
                    status: "Starting".into(),
                });
                c.container_start(&x.id)
                    .with_context(|| format!("starting {n}"))?;
                printer(Event {
                    kind: "Container",
                    name: n,
                    status: "Started".into(),
                });
            }
            Ok(0)
        }
        ComposeCmd::Stop(s) => each_container(
            &c,
            &a,
            &s.services,
            false,
            &printer,
            ("Stopping", "Stopped"),
            |id| c.container_stop(id, s.timeout, None),
        ),
        ComposeCmd::Restart(s) => each_container(
            &c,
            &a,
            &s.services,
            true,
            &printer,
            ("Restarting", "Started"),
            |id| c.container_restart(id, s.timeout),
        ),
        ComposeCmd::Kill(k) => {
            let signal = k.signal.clone();
            each_container(
                &c,
                &a,
                &k.services,
                false,
                &printer,
                ("Killing", "Killed"),
                |id| c.container_kill(id, &signal),
            )
        }
        ComposeCmd::Pause(s) => each_container(
            &c,
            &a,
            &s.services,
            false,
            &printer,
            ("Pausing", "Paused"),
            |id| c.container_pause(id),
        ),
        ComposeCmd::Unpause(s) => each_container(
            &c,
            &a,
            &s.services,
            false,
            &printer,
            ("Unpausing", "Unpaused"),
            |id| c.container_unpause(id),
        ),
        ComposeCmd::Rm(r) => {
            let p = a.load_or_name(&r.services)?;
            let mut list = listed(&c, &p, true, &r.services)?;
            if r.stop {
                for x in &list {
                    let _ = c.container_stop(&x.id, None, None);
                }
                list = listed(&c, &p, true, &r.services)?;
            }
            let stopped: Vec<&ContainerSummary> = list
                .iter()
                .filter(|x| x.state != "running" && x.state != "paused")
                .collect();
            if stopped.is_empty() {
                eprintln!("No stopped containers");
                return Ok(0);
            }
            if !r.force {
                let names: Vec<String> = stopped.iter().map(|x| run::name(x)).collect();
                eprintln!("Going to remove {}", names.join(", "));
                if std::io::stdin().is_terminal() {
                    eprint!("? Are you sure you want to remove these containers? [y/N] ");
                    let mut answer = String::new();
                    std::io::stdin().read_line(&mut answer)?;
                    if !answer.trim().eq_ignore_ascii_case("y") {
                        return Ok(0);
                    }
                }
            }
            for x in stopped {
                let n = run::name(x);
                printer(Event {
                    kind: "Container",
                    name: n.clone(),
                    status: "Removing".into(),
                });
                c.container_remove(&x.id, false, r.volumes)
                    .with_context(|| format!("removing {n}"))?;
                printer(Event {
                    kind: "Container",
                    name: n,
                    status: "Removed".into(),
                });
            }
            Ok(0)
        }
        ComposeCmd::Top(s) => {
            let p = a.load_or_name(&s.services)?;
            for x in listed(&c, &p, false, &s.services)? {
                let top = c.container_top(&x.id, &[])?;
                println!("{}", run::name(&x));
                let titles: Vec<String> = top["Titles"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| t.as_str().unwrap_or_default().to_string())
                    .collect();
                let mut lines = vec![titles.join("\t")];
                for row in top["Processes"].as_array().into_iter().flatten() {
                    let cells: Vec<&str> = row
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|v| v.as_str().unwrap_or_default())
                        .collect();
                    lines.push(cells.join("\t"));
                }
                crate::template::print_columns(&lines);
                println!();
            }
            Ok(0)
        }
        ComposeCmd::Port(pa) => {
            let p = a.load_or_name(&[])?;
            let x = one(&c, &p, &pa.service, pa.index)?;
            let info = c.container_inspect_value(&x.id)?;
            let key = format!("{}/{}", pa.private_port, pa.protocol);
            let binding = info["NetworkSettings"]["Ports"][&key]
                .as_array()
                .and_then(|b| b.first())
                .cloned()
                .ok_or_else(|| anyhow!("no port {key} for container {}", run::name(&x)))?;
            let ip = binding["HostIp"].as_str().unwrap_or("0.0.0.0");
            let ip = if ip.is_empty() { "0.0.0.0" } else { ip };
            println!("{ip}:{}", binding["HostPort"].as_str().unwrap_or_default());
            Ok(0)
        }
        ComposeCmd::Images(i) => images(&c, &a, i),
        ComposeCmd::Ls(l) => ls(&c, l),
        ComposeCmd::Cp(cp) => copy(&c, &a, cp),
        ComposeCmd::Events(e) => events(&c, &a, e),
        ComposeCmd::Wait(w) => {
            let p = a.load_or_name(&w.services)?;
            let list = listed(&c, &p, true, &w.services)?;
            if list.is_empty() {
                bail!("no containers for project {:?}", p.name);
            }
            let quiet = |_e: Event| {};
            let cx = Compose {
                client: &c,
                project: &p,
                progress: &quiet,
            };
            // The first to stop decides, as `compose wait` does.
            let (tx, rx) = std::sync::mpsc::channel();
            for x in list {
                let tx = tx.clone();
                let c2 = c.clone();
                let p2 = p.clone();
                std::thread::spawn(move || {
                    let quiet = |_e: Event| {};
                    let cx = Compose {
                        client: &c2,
                        project: &p2,
                        progress: &quiet,
                    };
                    let _ = tx.send(cx.wait_exit(&x.id));
                });
            }
            let code = rx.recv().map_err(|_| anyhow!("no container reported"))??;
            println!("{code}");
            if w.down_project {
                cx.down(&DownOptions::default())?;
            }
            Ok(code as i32)
        }
        ComposeCmd::Config(_) | ComposeCmd::Version(_) => Ok(0),
    }
}

fn recreate(force: bool, never: bool) -> Result<Recreate> {
    match (force, never) {
        (true, true) => bail!("--force-recreate and --no-recreate are incompatible"),
        (true, false) => Ok(Recreate::Force),
        (false, true) => Ok(Recreate::Never),
        _ => Ok(Recreate::Diverged),
    }
}

fn build_policy(build: bool, no_build: bool) -> BuildPolicy {
    if build {
        BuildPolicy::Always
    } else if no_build {
        BuildPolicy::Never
    } else {
        BuildPolicy::Missing
    }
}

fn each_container(
    c: &Client,
    a: &ComposeArgs,
    services: &[String],
    all: bool,
    printer: &(dyn Fn(Event) + Sync),
    (doing, done): (&str, &str),
    f: impl Fn(&str) -> cais_client::Result<()>,
) -> Result<i32> {
    let p = a.load_or_name(services)?;
    let mut list = listed(c, &p, all, services)?;
    // Dependents first when stopping, as `down` does.
    let order = p.service_names();
    list.sort_by_key(|x| std::cmp::Reverse(order.iter().position(|n| n == run::service_of(x))));
    for x in list {
        let n = run::name(&x);
        printer(Event {
            kind: "Container",
            name: n.clone(),
            status: doing.into(),
        });
        match f(&x.id) {
            Ok(()) => {}
            Err(e) if e.status() == Some(304) => {}
            Err(e) => return Err(anyhow::Error::from(e).context(format!("{doing} {n}"))),
        }
        printer(Event {
            kind: "Container",
            name: n,
            status: done.into(),
        });
    }
    Ok(0)
}

fn up(c: &Client, a: &ComposeArgs, u: &UpArgs, printer: &(dyn Fn(Event) + Sync)) -> Result<i32> {
    let p = a.load(&u.services)?;
    let cx = Compose {
        client: c,
        project: &p,
        progress: printer,
    };
    let builder = CliBuilder {
        client: c.clone(),
        no_cache: false,
        pull: false,
        quiet: false,
        extra_args: Vec::new(),
    };
    let opts = UpOptions {
        services: u.services.clone(),
        no_deps: u.no_deps,
        recreate: recreate(u.force_recreate, u.no_recreate)?,
        remove_orphans: u.remove_orphans
            || std::env::var("COMPOSE_REMOVE_ORPHANS").is_ok_and(|v| v == "1" || v == "true"),
        scale: scale_map(&u.scale)?,
        build: build_policy(u.build, u.no_build),
        no_start: u.no_start,
        wait: u.wait,
        wait_timeout: u.wait_timeout.map(Duration::from_secs),
        timeout: u.timeout,
    };
    for s in opts.scale.keys() {
        if !p.services.contains_key(s) {
            bail!("no such service: {s}");
        }
    }
    cx.up(&opts, Some(&builder))?;
    if u.detach || u.wait || u.no_start {
        return Ok(0);
    }
    // Attached: every container's output, prefixed, until they all stop;
    // Ctrl-C stops them.
    let targets = cais_compose::plan::with_dependencies(&p, &u.services, u.no_deps);
    let names: Vec<String> = targets.into_iter().collect();
    let list = listed(c, &p, true, &names)?;
    let stopping = Arc::new(AtomicBool::new(false));
    {
        let c2 = c.clone();
        let ids: Vec<(String, String)> =
            list.iter().map(|x| (x.id.clone(), run::name(x))).collect();
        let stopping = stopping.clone();
        let timeout = u.timeout;
        term::proxy_signals(move |_sig| {
            if stopping.swap(true, Ordering::SeqCst) {
                // A second Ctrl-C: kill.
                for (id, _) in &ids {
                    let _ = c2.container_kill(id, "KILL");
                }
                return;
            }
            eprintln!("Gracefully stopping... (press Ctrl+C again to force)");
            for (id, n) in &ids {
                eprintln!(" Container {n}  Stopping");
                let _ = c2.container_stop(id, timeout, None);
                eprintln!(" Container {n}  Stopped");
            }
        });
    }
    let colour = a.colour() && !u.no_color;
    let exit = follow_logs(
        c,
        &list,
        true,
        None,
        false,
        colour,
        !u.no_log_prefix,
        u.abort_on_container_exit,
    )?;
    if u.abort_on_container_exit {
        for x in &list {
            let _ = c.container_stop(&x.id, u.timeout, None);
        }
        return Ok(exit.unwrap_or(0) as i32);
    }
    Ok(if stopping.load(Ordering::SeqCst) {
        130
    } else {
        0
    })
}

const COLOURS: &[&str] = &["36", "33", "32", "35", "34", "96", "93", "92", "95", "94"];

/// The prefix of a container's log lines: `web-1  | ` (padded to the
/// longest), coloured on a terminal.
fn prefix_of(x: &ContainerSummary, width: usize, i: usize, colour: bool) -> String {
    let label = log_name(x);
    let padded = format!("{label:<width$}  | ");
    if colour {
        format!("\x1b[{}m{padded}\x1b[0m", COLOURS[i % COLOURS.len()])
    } else {
        padded
    }
}

fn log_name(x: &ContainerSummary) -> String {
    let svc = run::service_of(x);
    match x.labels.get(labels::CONTAINER_NUMBER) {
        Some(n) if !svc.is_empty() => format!("{svc}-{n}"),
        _ => run::name(x),
    }
}

/// Streams the logs of `list`, each line prefixed; returns when every
/// stream has ended (with `abort`, when the first has), with the exit
/// code of the first container that stopped.
#[allow(clippy::too_many_arguments)]
fn follow_logs(
    c: &Client,
    list: &[ContainerSummary],
    follow: bool,
    tail: Option<&str>,
    timestamps: bool,
    colour: bool,
    prefix: bool,
    abort: bool,
) -> Result<Option<i64>> {
    let width = list.iter().map(|x| log_name(x).len()).max().unwrap_or(0);
    let (tx, rx) = std::sync::mpsc::channel::<(String, i64)>();
    let mut handles = Vec::new();
    for (i, x) in list.iter().enumerate() {
        let pre = if prefix {
            prefix_of(x, width, i, colour)
        } else {
            String::new()
        };
        let mut q = vec![
            ("stdout", "1".to_string()),
            ("stderr", "1".to_string()),
            ("follow", u8::from(follow).to_string()),
            ("timestamps", u8::from(timestamps).to_string()),
            ("tail", tail.unwrap_or("all").to_string()),
        ];
        if follow {
            q.push(("since", "0".into()));
        }
        let c2 = c.clone();
        let id = x.id.clone();
        let tx = tx.clone();
        handles.push(std::thread::spawn(move || {
            if let Ok(resp) = c2.container_logs(&id, &q) {
                let multiplexed = resp
                    .header("Content-Type")
                    .is_some_and(|t| t.contains("multiplexed"));
                print_prefixed(resp.body, multiplexed, &pre);
            }
            let code = if follow {
                c2.container_inspect(&id)
                    .map(|i| i.state.exit_code)
                    .unwrap_or(0)
            } else {
                0
            };
            let _ = tx.send((id, code));
        }));
    }
    drop(tx);
    let mut first = None;
    for (_, code) in rx.iter() {
        if first.is_none() {
            first = Some(code);
            if abort {
                return Ok(first);
            }
        }
    }
    for h in handles {
        let _ = h.join();
    }
    Ok(first)
}

/// Writes a log stream line by line with `prefix`, stdout and stderr apart.
fn print_prefixed(mut body: cais_client::http::Body, multiplexed: bool, prefix: &str) {
    let mut pending: [Vec<u8>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    let emit = |stream: usize, data: &[u8], pending: &mut [Vec<u8>; 3]| {
        pending[stream].extend_from_slice(data);
        while let Some(pos) = pending[stream].iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending[stream].drain(..=pos).collect();
            let text = format!("{prefix}{}", String::from_utf8_lossy(&line));
            if stream == 2 {
                let _ = std::io::stderr().lock().write_all(text.as_bytes());
            } else {
                let mut o = std::io::stdout().lock();
                let _ = o.write_all(text.as_bytes());
                let _ = o.flush();
            }
        }
    };
    if multiplexed {
        while let Ok(Some((stream, data))) = cais_client::http::read_frame(&mut body) {
            let s = if stream == 2 { 2 } else { 1 };
            emit(s, &data, &mut pending);
        }
    } else {
        let mut buf = [0u8; 8192];
        while let Ok(n) = body.read(&mut buf) {
            if n == 0 {
                break;
            }
            emit(1, &buf[..n], &mut pending);
        }
    }
    for s in [1, 2] {
        if !pending[s].is_empty() {
            let mut rest = std::mem::take(&mut pending[s]);
            rest.push(b'\n');
            emit(s, &rest, &mut pending);
        }
    }
}

fn logs(c: &Client, a: &ComposeArgs, l: &LogsArgs) -> Result<i32> {
    let p = a.load_or_name(&l.services)?;
    let list = listed(c, &p, true, &l.services)?;
    let colour = a.colour() && !l.no_color;
    follow_logs(
        c,
        &list,
        l.follow,
        l.tail.as_deref(),
        l.timestamps,
        colour,
        !l.no_log_prefix,
        false,
    )?;
    Ok(0)
}

fn ps(c: &Client, a: &ComposeArgs, ps: &PsArgs) -> Result<i32> {
    let p = a.load_or_name(&ps.names)?;
    if ps.services {
        let list = listed(c, &p, ps.all, &ps.names)?;
        let names: BTreeSet<&str> = list.iter().map(run::service_of).collect();
        for n in names {
            println!("{n}");
        }
        return Ok(0);
    }
    let mut list = listed(c, &p, ps.all || !ps.status.is_empty(), &ps.names)?;
    if !ps.status.is_empty() {
        list.retain(|x| ps.status.contains(&x.state));
    }
    if ps.quiet {
        for x in &list {
            println!(
                "{}",
                if ps.no_trunc {
                    x.id.clone()
                } else {
                    x.id.chars().take(12).collect()
                }
            );
        }
        return Ok(0);
    }
    let rows: Vec<Value> = list.iter().map(|x| ps_row(c, x)).collect();
    match ps.format.as_deref() {
        Some("json") => {
            for r in rows {
                println!("{r}");
            }
        }
        Some(t) if t != "table" => {
            let f = crate::template::Format::parse(Some(t), "");
            f.print(&rows, &ps_header)?;
        }
        _ => {
            let f = crate::template::Format::parse(
                None,
                "{{.Name}}\t{{.Image}}\t{{.Command}}\t{{.Service}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}",
            );
            f.print(&rows, &ps_header)?;
        }
    }
    Ok(0)
}

fn ps_header(field: &str) -> String {
    match field {
        "RunningFor" => "CREATED".into(),
        "ID" => "CONTAINER ID".into(),
        other => other.to_uppercase(),
    }
}

fn ps_row(c: &Client, x: &ContainerSummary) -> Value {
    let mut row = client_cmds::ps_row(x, true);
    let command = x.command.clone();
    let short = if command.chars().count() > 20 {
        command.chars().take(19).collect::<String>() + "…"
    } else {
        command.clone()
    };
    let state = c
        .container_inspect(&x.id)
        .map(|i| i.state)
        .unwrap_or_default();
    let health = state.health.map(|h| h.status).unwrap_or_default();
    let exit_code = state.exit_code;
    let publishers: Vec<Value> = x
        .ports
        .iter()
        .map(|pt| {
            json!({
                "URL": pt["IP"].as_str().unwrap_or_default(),
                "TargetPort": pt["PrivatePort"],
                "PublishedPort": pt["PublicPort"].as_u64().unwrap_or(0),
                "Protocol": pt["Type"],
            })
        })
        .collect();
    row["Name"] = json!(run::name(x));
    row["Command"] = json!(format!("\"{short}\""));
    row["Service"] = json!(run::service_of(x));
    row["Project"] = json!(x.labels.get(labels::PROJECT).cloned().unwrap_or_default());
    row["Health"] = json!(health);
    row["ExitCode"] = json!(exit_code);
    row["Publishers"] = json!(publishers);
    row["Ports"] = json!(network::ports_column(&x.ports));
    row["Created"] = json!(x.created);
    row
}

fn exec(c: &Client, a: &ComposeArgs, e: &ExecArgs) -> Result<i32> {
    let p = a.load_or_name(&[])?;
    let x = one(c, &p, &e.service, e.index)?;
    let tty = !e.no_tty && std::io::stdin().is_terminal() && !e.detach;
    let cfg = ExecConfig {
        attach_stdin: e.interactive && !e.detach,
        attach_stdout: !e.detach,
        attach_stderr: !e.detach,
        tty,
        env: e.env.clone(),
        cmd: e.command.clone(),
        privileged: e.privileged,
        user: e.user.clone().unwrap_or_default(),
        working_dir: e.workdir.clone().unwrap_or_default(),
        ..ExecConfig::default()
    };
    let created = c.exec_create(&x.id, &cfg)?;
    let exec_id = created["Id"]
        .as_str()
        .ok_or_else(|| anyhow!("the daemon returned no exec id"))?
        .to_string();
    if e.detach {
        c.exec_start_detached(&exec_id, false)?;
        return Ok(0);
    }
    let mut conn = c.exec_start(&exec_id, tty)?;
    let _raw = tty.then(term::RawMode::enter);
    if e.interactive {
        term::forward_stdin(&conn);
    }
    let _ = term::copy_output(&mut conn);
    drop(_raw);
    for _ in 0..200 {
        let info = c.exec_inspect(&exec_id)?;
        if let (false, Some(code)) = (info.running, info.exit_code) {
            return Ok(code as i32);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    bail!("the exec's exit code never came")
}

fn run_oneoff(
    c: &Client,
    a: &ComposeArgs,
    r: &RunArgs,
    printer: &(dyn Fn(Event) + Sync),
) -> Result<i32> {
    let p = a.load(std::slice::from_ref(&r.service))?;
    let service = p
        .services
        .get(&r.service)
        .ok_or_else(|| anyhow!("no such service: {}", r.service))?
        .clone();
    let cx = Compose {
        client: c,
        project: &p,
        progress: printer,
    };
    let builder = CliBuilder {
        client: c.clone(),
        no_cache: false,
        pull: false,
        quiet: false,
        extra_args: Vec::new(),
    };
    // The dependencies go up first (not the service itself).
    if !r.no_deps && !service.depends_on.is_empty() {
        let deps: Vec<String> = service
            .depends_on
            .keys()
            .filter(|d| p.services.contains_key(*d))
            .cloned()
            .collect();
        cx.up(
            &UpOptions {
                services: deps,
                ..UpOptions::default()
            },
            Some(&builder),
        )?;
        let quiet_cx = Compose {
            client: c,
            project: &p,
            progress: printer,
        };
        let _ = quiet_cx;
    }
    let one: BTreeSet<String> = [r.service.clone()].into_iter().collect();
    cx.ensure_networks(&one)?;
    cx.ensure_volumes(&one)?;
    let ids = cx.ensure_images(
        &one,
        if r.build {
            BuildPolicy::Always
        } else {
            BuildPolicy::Missing
        },
        Some(&builder),
    )?;
    let mut svc = service.clone();
    if !r.command.is_empty() {
        svc.command = Some(r.command.clone());
    }
    if let Some(ep) = &r.entrypoint {
        svc.entrypoint =
            Some(cais_compose::model::shell_split(ep).map_err(|e| anyhow!("--entrypoint: {e}"))?);
    }
    for e in &r.env {
        match e.split_once('=') {
            Some((k, v)) => svc.environment.insert(k.to_string(), Some(v.to_string())),
            None => svc.environment.insert(e.clone(), std::env::var(e).ok()),
        };
    }
    for l in &r.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        svc.labels.insert(k.to_string(), v.to_string());
    }
    if let Some(w) = &r.workdir {
        svc.working_dir = Some(w.clone());
    }
    if let Some(u) = &r.user {
        svc.user = Some(u.clone());
    }
    for v in &r.volume {
        svc.volumes.push(
            cais_compose::model::parse_volume(v, &p.working_dir, "--volume")
                .map_err(|e| anyhow!("{}", e.message))?,
        );
    }
    if !r.service_ports {
        svc.ports.clear();
    }
    for pub_ in &r.publish {
        svc.ports.extend(
            cais_compose::model::parse_port(pub_, "--publish")
                .map_err(|e| anyhow!("{}", e.message))?,
        );
    }
    let tty = !r.no_tty && std::io::stdin().is_terminal() && !r.detach;
    svc.tty = tty;
    svc.stdin_open = r.interactive && !r.detach;
    // One-off containers restart never.
    svc.restart = None;
    let slug = run::random_hex(64);
    let name = r
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-{}-run-{}", p.name, r.service, &slug[..12]));
    let image_id = ids.get(&r.service).cloned().unwrap_or_default();
    let attach = !r.detach;
    let new = run::NewContainer {
        number: None,
        name: name.clone(),
        image_id,
        slug: Some(slug),
        replaces: None,
    };
    let id = cx.create_container(&svc, new, &|body| {
        body["AttachStdin"] = json!(attach && svc.stdin_open);
        body["StdinOnce"] = json!(attach && svc.stdin_open);
        body["OpenStdin"] = json!(svc.stdin_open);
    })?;
    if r.detach {
        c.container_start(&id)?;
        println!("{name}");
        return Ok(0);
    }
    let q = [
        ("stream", "1".to_string()),
        ("stdin", u8::from(svc.stdin_open).to_string()),
        ("stdout", "1".to_string()),
        ("stderr", "1".to_string()),
    ];
    let mut conn = c.container_attach(&id, &q)?;
    let waiter = {
        let c2 = c.clone();
        let id2 = id.clone();
        let p2 = p.clone();
        std::thread::spawn(move || {
            let quiet = |_e: Event| {};
            let cx = Compose {
                client: &c2,
                project: &p2,
                progress: &quiet,
            };
            cx.wait_condition(&id2, "next-exit")
        })
    };
    c.container_start(&id)?;
    let _raw = tty.then(term::RawMode::enter);
    if svc.stdin_open {
        term::forward_stdin(&conn);
    }
    let _ = term::copy_output(&mut conn);
    drop(_raw);
    let code = waiter
        .join()
        .map_err(|_| anyhow!("the wait thread panicked"))??;
    if r.rm {
        c.container_remove(&id, true, true)
            .with_context(|| format!("removing {name}"))?;
    }
    Ok(code as i32)
}

fn images(c: &Client, a: &ComposeArgs, i: &ImagesArgs) -> Result<i32> {
    let p = a.load_or_name(&i.services)?;
    let list = listed(c, &p, true, &i.services)?;
    let mut rows = Vec::new();
    for x in &list {
        let info = c.image_inspect_value(&x.image_id).unwrap_or(Value::Null);
        let (repo, tag) = match info["RepoTags"]
            .as_array()
            .and_then(|t| t.first())
            .and_then(Value::as_str)
        {
            Some(rt) => {
                let (r, t) = run::split_tag(rt);
                (r, t)
            }
            None => ("<none>".to_string(), "<none>".to_string()),
        };
        let id: String = x
            .image_id
            .trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect();
        if i.quiet {
            println!("{}", x.image_id);
            continue;
        }
        let size = info["Size"].as_u64().unwrap_or(0);
        rows.push(json!({
            "ContainerName": run::name(x),
            "Repository": repo,
            "Tag": tag,
            "ID": id,
            "Size": human_size(size),
        }));
    }
    if i.quiet {
        return Ok(0);
    }
    if i.format.as_deref() == Some("json") {
        println!("{}", Value::Array(rows));
        return Ok(0);
    }
    let mut lines = vec!["CONTAINER\tREPOSITORY\tTAG\tIMAGE ID\tSIZE".to_string()];
    for r in rows {
        lines.push(format!(
            "{}\t{}\t{}\t{}\t{}",
            r["ContainerName"].as_str().unwrap_or_default(),
            r["Repository"].as_str().unwrap_or_default(),
            r["Tag"].as_str().unwrap_or_default(),
            r["ID"].as_str().unwrap_or_default(),
            r["Size"].as_str().unwrap_or_default()
        ));
    }
    crate::template::print_columns(&lines);
    Ok(0)
}

fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u < units.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.3}{}", units[u]).replace(".000", "")
    }
}

fn ls(c: &Client, l: &LsArgs) -> Result<i32> {
    let filters = json!({"label": {labels::PROJECT: true}}).to_string();
    let mut q = vec![("filters", filters)];
    if l.all {
        q.push(("all", "1".into()));
    }
    let list = c.container_list(&q)?;
    let mut projects: BTreeMap<String, (BTreeMap<String, usize>, BTreeSet<String>)> =
        BTreeMap::new();
    for x in &list {
        let Some(name) = x.labels.get(labels::PROJECT) else {
            continue;
        };
        let e = projects.entry(name.clone()).or_default();
        *e.0.entry(x.state.clone()).or_default() += 1;
        if let Some(files) = x.labels.get(labels::CONFIG_FILES) {
            e.1.insert(files.clone());
        }
    }
    if l.quiet {
        for n in projects.keys() {
            println!("{n}");
        }
        return Ok(0);
    }
    let rows: Vec<(String, String, String)> = projects
        .into_iter()
        .map(|(n, (states, files))| {
            let status = states
                .iter()
                .map(|(s, k)| format!("{s}({k})"))
                .collect::<Vec<_>>()
                .join(", ");
            (n, status, files.into_iter().collect::<Vec<_>>().join(","))
        })
        .collect();
    if l.format.as_deref() == Some("json") {
        let v: Vec<Value> = rows
            .iter()
            .map(|(n, s, f)| json!({"Name": n, "Status": s, "ConfigFiles": f}))
            .collect();
        println!("{}", Value::Array(v));
        return Ok(0);
    }
    let mut lines = vec!["NAME\tSTATUS\tCONFIG FILES".to_string()];
    lines.extend(rows.into_iter().map(|(n, s, f)| format!("{n}\t{s}\t{f}")));
    crate::template::print_columns(&lines);
    Ok(0)
}

/// `SERVICE:PATH` → (service, path); a plain local path → None.
fn service_path(s: &str) -> Option<(&str, &str)> {
    let (svc, path) = s.split_once(':')?;
    (!svc.is_empty() && !svc.contains('/')).then_some((svc, path))
}

fn copy(c: &Client, a: &ComposeArgs, cp: &CpArgs) -> Result<i32> {
    let p = a.load_or_name(&[])?;
    match (service_path(&cp.source), service_path(&cp.destination)) {
        (Some((svc, path)), None) => {
            let x = one(c, &p, svc, cp.index)?;
            let resp = c.container_archive_get(&x.id, path)?;
            let dest = PathBuf::from(&cp.destination);
            let mut archive = tar::Archive::new(resp.body);
            // Into an existing directory the copy keeps its name; otherwise
            // the single entry takes the destination's name.
            let into_dir = dest.is_dir();
            for entry in archive.entries()? {
                let mut entry = entry?;
                let rel = entry.path()?.into_owned();
                let target = if into_dir {
                    dest.join(&rel)
                } else {
                    let mut comps = rel.components();
                    comps.next();
                    let rest = comps.as_path();
                    if rest.as_os_str().is_empty() {
                        dest.clone()
                    } else {
                        dest.join(rest)
                    }
                };
                if rel.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
                    bail!("refusing an archive entry outside the destination: {}", rel.display());
                }
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                entry.unpack(&target)?;
            }
            Ok(0)
        }
        (None, Some((svc, path))) => {
            let x = one(c, &p, svc, cp.index)?;
            let src = PathBuf::from(&cp.source);
            let name = src
                .file_name()
                .ok_or_else(|| anyhow!("cannot copy {}", src.display()))?
                .to_owned();
            // `PATH` is the destination's parent when it ends in a new name.
            let (dir, entry_name) = if path.ends_with('/') {
                (path.to_string(), name)
            } else {
                let pp = std::path::Path::new(path);
                match c.container_archive_get(&x.id, path) {
                    Ok(_) => (path.to_string(), name),
                    Err(_) => (
                        pp.parent().map(|d| d.display().to_string()).unwrap_or_else(|| "/".into()),
                        pp.file_name().map(|n| n.to_owned()).unwrap_or(name),
                    ),
                }
            };
            let mut tarball = tempfile::tempfile()?;
            {
                let mut b = tar::Builder::new(&mut tarball);
                if src.is_dir() {
                    b.append_dir_all(&entry_name, &src)?;
                } else {
                    b.append_path_with_name(&src, &entry_name)?;
                }
                b.finish()?;
            }
            use std::io::Seek;
            tarball.rewind()?;
            c.container_archive_put(&x.id, &dir, &mut tarball)?;
            Ok(0)
        }
        _ => bail!("copying between services is not supported: one side must be SERVICE:PATH, the other a local path"),
    }
}

fn events(c: &Client, a: &ComposeArgs, e: &EventsArgs) -> Result<i32> {
    let p = a.load_or_name(&e.services)?;
    let mut labels_filter = serde_json::Map::new();
    labels_filter.insert(format!("{}={}", labels::PROJECT, p.name), json!(true));
    if let [one] = e.services.as_slice() {
        labels_filter.insert(format!("{}={one}", labels::SERVICE), json!(true));
    }
    let q = [(
        "filters",
        json!({"type": {"container": true}, "label": labels_filter}).to_string(),
    )];
    let resp = c.events(&q)?;
    for ev in cais_client::http::json_lines::<cais_api::Event>(resp.body) {
        let ev = ev?;
        let attrs = &ev.actor.attributes;
        let service = attrs.get(labels::SERVICE).cloned().unwrap_or_default();
        if e.services.len() > 1 && !e.services.contains(&service) {
            continue;
        }
        let time = client_cmds::rfc3339_nanos(ev.time_nano);
        if e.json {
            println!(
                "{}",
                json!({
                    "time": time, "type": ev.kind, "action": ev.action, "id": ev.actor.id,
                    "service": service, "attributes": attrs,
                })
            );
        } else {
            let attributes: Vec<String> = attrs
                .iter()
                .filter(|(k, _)| !k.starts_with("com.docker.compose."))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            println!(
                "{time} {} {} {} ({})",
                ev.kind,
                ev.action,
                ev.actor.id,
                attributes.join(", ")
            );
        }
        let _ = std::io::stdout().flush();
    }
    Ok(0)
}

fn config(a: &ComposeArgs, c: &ConfigArgs) -> Result<i32> {
    let p = a.load(&c.services_filter)?;
    let mut p = p;
    if !c.services_filter.is_empty() {
        let keep = cais_compose::plan::with_dependencies(&p, &c.services_filter, false);
        p.services.retain(|k, _| keep.contains(k));
    }
    if c.quiet {
        return Ok(0);
    }
    let text = if c.services {
        p.services.keys().map(|s| format!("{s}\n")).collect()
    } else if c.volumes {
        p.volumes.keys().map(|s| format!("{s}\n")).collect()
    } else if c.networks {
        p.networks.keys().map(|s| format!("{s}\n")).collect()
    } else if c.profiles {
        let all: BTreeSet<&String> = p
            .services
            .values()
            .chain(p.disabled.values())
            .flat_map(|s| s.profiles.iter())
            .collect();
        all.into_iter().map(|s| format!("{s}\n")).collect()
    } else if c.images {
        p.services
            .values()
            .map(|s| format!("{}\n", s.image_name(&p.name)))
            .collect()
    } else if let Some(h) = &c.hash {
        let wanted: Vec<&str> = h.split(',').collect();
        p.services
            .iter()
            .filter(|(n, _)| wanted.contains(&"*") || wanted.contains(&n.as_str()))
            .map(|(n, s)| format!("{n} {}\n", labels::config_hash(s)))
            .collect()
    } else if c.format == "json" {
        p.to_json()
    } else {
        p.to_yaml()
    };
    match &c.output {
        Some(f) => std::fs::write(f, text).with_context(|| format!("writing {}", f.display()))?,
        None => print!("{text}"),
    }
    Ok(0)
}
