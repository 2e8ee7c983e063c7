//! `cais login`, `cais logout`, `cais pull`, `cais push`: the registry
//! client's commands.

use std::io::{BufRead as _, IsTerminal as _};
use std::path::PathBuf;

use anyhow::{bail, Context as _};
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
