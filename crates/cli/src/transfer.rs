//! `cais login`, `cais logout`, `cais pull`, `cais push`: the registry
//! client's commands.

use std::collections::HashMap;
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use cais_image::pull::{Progress, PullOptions, Status};
use cais_image::push::PushOptions;
use cais_image::{Digest, ImageStore, Platform, Reference};
use cais_registry::client::{self, reference, Client, CredentialStore, Credentials};

/// How to reach a registry: shared by every transfer command.
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryFlags {
    /// Reach this registry (`host[:port]`) over plain HTTP, or HTTPS without
    /// verification. localhost and 127.0.0.0/8 always are. Repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure: Vec<String>,
    /// Trust this CA certificate (PEM) too. Repeatable.
    #[arg(long = "ca-cert", value_name = "FILE")]
    pub ca_certs: Vec<PathBuf>,
    /// Per-registry CA directory: DIR/<host[:port]>/*.crt.
    #[arg(long, value_name = "DIR", default_value = "/etc/docker/certs.d")]
    pub certs_dir: PathBuf,
}

impl RegistryFlags {
    /// Client options for `registry`, with its stored credentials.
    pub fn options(&self, registry: &str) -> anyhow::Result<client::Options> {
        let store = CredentialStore::default_location()?;
        let credentials = store
            .get(registry)
            .with_context(|| format!("reading credentials for {registry}"))?;
        Ok(client::Options {
            insecure_registries: self.insecure.clone(),
            ca_certs: self.ca_certs.clone(),
            certs_dir: Some(self.certs_dir.clone()),
            credentials,
            ..client::Options::default()
        })
    }
}

/// `cais login`.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// User name (asked on the terminal when missing).
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (visible in the process list: prefer --password-stdin).
    #[arg(short, long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub registry_flags: RegistryFlags,
    /// Registry (`host[:port]`); Docker Hub when missing.
    pub registry: Option<String>,
}

/// `cais logout`.
#[derive(Debug, clap::Args)]
pub struct LogoutArgs {
    /// Registry (`host[:port]`); Docker Hub when missing.
    pub registry: Option<String>,
}

fn prompt(question: &str) -> anyhow::Result<String> {
    eprint!("{question}");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading standard input")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// Checks the credentials against the registry, then stores them.
pub fn login(args: LoginArgs) -> anyhow::Result<()> {
    let registry =
        reference::normalize_registry(args.registry.as_deref().unwrap_or(reference::DOCKER_HUB));
    let store = CredentialStore::default_location()?;
    let stored = store.get(&registry).ok().flatten();
    let username = match args.username {
        Some(u) => u,
        None if args.password_stdin || !std::io::stdin().is_terminal() => match &stored {
            Some(c) => c.username.clone(),
            None => bail!("no user name: pass --username"),
        },
        None => prompt("Username: ")?,
    };
    let password = if let Some(p) = args.password {
        p
    } else if args.password_stdin {
        let mut p = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut p)
            .context("reading the password from standard input")?;
        p.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        prompt("Password: ")?
    };
    if username.is_empty() || password.is_empty() {
        bail!("user name and password must not be empty");
    }
    let creds = Credentials { username, password };
    let mut options = args.registry_flags.options(&registry)?;
    options.credentials = Some(creds.clone());
    let client = Client::new(&registry, &options)?;
    client
        .ping()
        .with_context(|| format!("logging in to {registry}"))?;
    store
        .store(&registry, &creds)
        .with_context(|| format!("storing credentials in {}", store.path().display()))?;
    println!("Login Succeeded");
    Ok(())
}

/// Forgets the stored credentials.
pub fn logout(args: LogoutArgs) -> anyhow::Result<()> {
    let registry =
        reference::normalize_registry(args.registry.as_deref().unwrap_or(reference::DOCKER_HUB));
    let store = CredentialStore::default_location()?;
    if store
        .remove(&registry)
        .with_context(|| format!("updating {}", store.path().display()))?
    {
        println!("Removing login credentials for {registry}");
    } else {
        println!("Not logged in to {registry}");
    }
    Ok(())
}

/// Where the image store lives.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreFlags {
    /// Data root of the image store (default: $CAIS_DATA_ROOT, else
    /// /var/lib/cais).
    #[arg(long, value_name = "DIR")]
    pub data_root: Option<PathBuf>,
}

/// Whether pull/push work on the local store (`--data-root` or
/// `CAIS_DATA_ROOT`) rather than through the daemon.
pub fn is_local(store: &StoreFlags) -> bool {
    store.data_root.is_some() || std::env::var_os("CAIS_DATA_ROOT").is_some_and(|v| !v.is_empty())
}

impl StoreFlags {
    fn open(&self) -> anyhow::Result<ImageStore> {
        let root = self
            .data_root
            .clone()
            .unwrap_or_else(ImageStore::default_root);
        ImageStore::open(&root)
            .with_context(|| format!("opening the image store {}", root.display()))
    }
}

/// `cais pull`.
#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// Platform to pick from a multi-platform image: os/arch[/variant].
    #[arg(long, default_value = "linux/amd64")]
    pub platform: String,
    /// Layers fetched at once.
    #[arg(long, default_value_t = 3)]
    pub jobs: usize,
    /// No progress output.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub registry_flags: RegistryFlags,
    #[command(flatten)]
    pub store: StoreFlags,
    /// Image reference (`busybox`, `host:5000/repo:tag`, `repo@sha256:...`).
    pub image: String,
}

/// `cais push`.
#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// Blobs pushed at once.
    #[arg(long, default_value_t = 3)]
    pub jobs: usize,
    /// Blobs larger than this many bytes are uploaded in chunks of this size.
    #[arg(long, default_value_t = client::DEFAULT_CHUNK_THRESHOLD)]
    pub chunk_size: u64,
    /// No progress output.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub registry_flags: RegistryFlags,
    #[command(flatten)]
    pub store: StoreFlags,
    /// Image in the store to push.
    pub image: String,
    /// Where to push it (default: IMAGE's own name).
    pub target: Option<String>,
}

/// Pulls an image into the store.
pub fn pull(args: PullArgs) -> anyhow::Result<()> {
    let reference: Reference = args
        .image
        .parse()
        .with_context(|| format!("parsing {:?}", args.image))?;
    let platform: Platform = args.platform.parse()?;
    let store = args.store.open()?;
    let client = Client::new(
        &reference.domain,
        &args.registry_flags.options(&reference.domain)?,
    )?;
    let display = Arc::new(ProgressDisplay::new(args.quiet, Direction::Pull));
    if !args.quiet {
        eprintln!(
            "{}: Pulling from {}",
            reference
                .tag
                .clone()
                .or_else(|| reference.digest.as_ref().map(|d| d.to_string()))
                .unwrap_or_else(|| "latest".into()),
            reference.path
        );
    }
    let options = PullOptions {
        platform,
        jobs: args.jobs,
        progress: display.clone(),
    };
    let report = cais_image::pull::pull(&store, &client, &reference, &options)
        .with_context(|| format!("pulling {reference}"))?;
    display.finish();
    if !args.quiet {
        eprintln!("Digest: {}", report.target);
        eprintln!(
            "Status: {} for {reference}",
            if report.fetched > 0 {
                "Downloaded newer image"
            } else {
                "Image is up to date"
            }
        );
    }
    println!("{reference}");
    Ok(())
}

/// Pushes an image from the store.
pub fn push(args: PushArgs) -> anyhow::Result<()> {
    let target_str = args.target.as_deref().unwrap_or(&args.image);
    let target: Reference = target_str
        .parse()
        .with_context(|| format!("parsing {target_str:?}"))?;
    let store = args.store.open()?;
    let client = Client::new(
        &target.domain,
        &args.registry_flags.options(&target.domain)?,
    )?;
    let display = Arc::new(ProgressDisplay::new(args.quiet, Direction::Push));
    if !args.quiet {
        eprintln!("The push refers to repository [{}]", target.name());
    }
    let options = PushOptions {
        jobs: args.jobs,
        chunk_size: args.chunk_size,
        progress: display.clone(),
    };
    let report = cais_image::push::push(&store, &client, &args.image, &target, &options)
        .with_context(|| format!("pushing {} to {target}", args.image))?;
    display.finish();
    let size = store.content().size(&report.manifest).unwrap_or_default();
    println!(
        "{}: digest: {} size: {size}",
        target.tag.as_deref().unwrap_or("latest"),
        report.manifest
    );
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Pull,
    Push,
}

/// Docker-style progress on stderr: one redrawn line per blob on a
/// terminal, plain lines for state changes otherwise.
struct ProgressDisplay {
    quiet: bool,
    tty: bool,
    direction: Direction,
    state: Mutex<DisplayState>,
}

#[derive(Default)]
struct DisplayState {
    order: Vec<Digest>,
    status: HashMap<Digest, Status>,
    drawn: usize,
    last_draw: Option<Instant>,
}

impl ProgressDisplay {
    fn new(quiet: bool, direction: Direction) -> ProgressDisplay {
        ProgressDisplay {
            quiet,
            tty: std::io::stderr().is_terminal(),
            direction,
            state: Mutex::new(DisplayState::default()),
        }
    }

    fn line(&self, digest: &Digest, status: &Status) -> String {
        let text = match (status, self.direction) {
            (Status::AlreadyExists, _) => "Already exists".to_owned(),
            (Status::Waiting, _) => "Waiting".to_owned(),
            (Status::Transferring { done, total }, dir) => {
                let verb = if dir == Direction::Pull {
                    "Downloading"
                } else {
                    "Pushing"
                };
                format!("{verb} {}", bar(*done, *total))
            }
            (Status::Complete, Direction::Pull) => "Pull complete".to_owned(),
            (Status::Complete, Direction::Push) => "Pushed".to_owned(),
            (Status::RemoteExists, _) => "Layer already exists".to_owned(),
            (Status::Mounted, _) => "Mounted from another repository".to_owned(),
        };
        format!("{}: {text}", digest.short())
    }

    fn redraw(&self, state: &mut DisplayState) {
        let mut out = String::new();
        if state.drawn > 0 {
            out.push_str(&format!("\x1b[{}A", state.drawn));
        }
        for d in &state.order {
            if let Some(s) = state.status.get(d) {
                out.push_str("\x1b[2K");
                out.push_str(&self.line(d, s));
                out.push('\n');
            }
        }
        state.drawn = state.order.len();
        state.last_draw = Some(Instant::now());
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(out.as_bytes());
        let _ = err.flush();
    }

    fn finish(&self) {
        if self.quiet || !self.tty {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.redraw(&mut state);
    }
}

impl Progress for ProgressDisplay {
    fn update(&self, digest: &Digest, status: Status) {
        if self.quiet {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !state.status.contains_key(digest) {
            state.order.push(digest.clone());
        }
        let transferring = matches!(status, Status::Transferring { .. });
        if !self.tty && !transferring {
            eprintln!("{}", self.line(digest, &status));
        }
        // Redraw on every change of state, and at most ten times a second
        // for byte counts.
        let was_transferring =
            matches!(state.status.get(digest), Some(Status::Transferring { .. }));
        state.status.insert(digest.clone(), status);
        if self.tty
            && (!transferring
                || !was_transferring
                || state
                    .last_draw
                    .is_none_or(|t| t.elapsed() >= Duration::from_millis(100)))
        {
            self.redraw(&mut state);
        }
    }
}

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.2}GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1}MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1}kB", b / 1e3)
    } else {
        format!("{bytes}B")
    }
}

/// `[=====>      ]  1.2MB/3.4MB`, docker's bar.
fn bar(done: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    let filled = (done.min(total) * WIDTH).checked_div(total).unwrap_or(0);
    let mut s = String::from("[");
    for i in 0..WIDTH {
        s.push(match i.cmp(&filled) {
            std::cmp::Ordering::Less => '=',
            std::cmp::Ordering::Equal => '>',
            std::cmp::Ordering::Greater => ' ',
        });
    }
    format!("{s}] {:>8}/{}", human(done), human(total))
}

/// `X-Registry-Auth` for the daemon: the stored credentials of `image`'s
/// registry as base64url JSON, the way the docker CLI sends them; `None`
/// without credentials.
pub fn registry_auth_header(image: &str) -> Option<String> {
    use base64::Engine as _;
    let reference: Reference = image.parse().ok()?;
    let creds = CredentialStore::default_location()
        .ok()?
        .get(&reference.domain)
        .ok()??;
    let json = serde_json::json!({
        "username": creds.username,
        "password": creds.password,
        "serveraddress": reference.domain,
    });
    Some(base64::engine::general_purpose::URL_SAFE.encode(json.to_string()))
}
