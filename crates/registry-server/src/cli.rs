//! `cais registry ...` subcommands.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use crate::auth::Mode;
use crate::server::{Config, RootLock};
use crate::storage::Storage;

/// How clients must authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthKind {
    /// Anyone may pull and push.
    None,
    /// HTTP Basic against the htpasswd file.
    Htpasswd,
    /// Bearer tokens from the built-in `/token` endpoint (which takes the
    /// htpasswd users' Basic credentials).
    Token,
}

/// `cais registry <command>`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Serve the OCI distribution API.
    Serve {
        /// Address to listen on; port 0 picks a free port (printed on stdout).
        #[arg(long, default_value = "127.0.0.1:5000")]
        addr: SocketAddr,
        /// Storage root directory.
        #[arg(long)]
        root: PathBuf,
        /// Authentication scheme.
        #[arg(long, value_enum, default_value = "none")]
        auth: AuthKind,
        /// htpasswd file with bcrypt entries (`htpasswd -B`).
        #[arg(long, required_if_eq_any([("auth", "htpasswd"), ("auth", "token")]))]
        htpasswd: Option<PathBuf>,
        /// Access list, lines of `USER REPOSITORY-PATTERN ACTIONS` (USER `*`
        /// is any user, a trailing `*` in the pattern matches a prefix,
        /// actions are pull,push,delete or `*`). Without it every
        /// authenticated user may do everything.
        #[arg(long)]
        acl: Option<PathBuf>,
        /// Token realm URL to advertise (default: this server's `/token`).
        #[arg(long)]
        token_realm: Option<String>,
        /// TLS certificate chain (PEM).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Largest blob accepted, in bytes.
        #[arg(long)]
        max_blob_bytes: Option<u64>,
        /// Seconds to wait for request headers or the next part of a body.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Run an online collection every this many seconds (SIGUSR1 runs
        /// one at once).
        #[arg(long)]
        gc_interval: Option<u64>,
        /// Blobs linked less than this many seconds ago are kept by online
        /// collections: they may belong to a push whose manifest is on its way.
        #[arg(long, default_value_t = 3600)]
        gc_grace: u64,
        /// Seconds to let requests finish on SIGTERM/SIGINT.
        #[arg(long, default_value_t = 30)]
        shutdown_grace: u64,
    },
    /// Delete blobs no manifest references (offline: the server must be stopped).
    Gc {
        /// Storage root directory.
        #[arg(long)]
        root: PathBuf,
        /// Only report what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// Keep blobs linked less than this many seconds ago.
        #[arg(long, default_value_t = 0)]
        grace: u64,
    },
}

/// Runs one `cais registry` command.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve {
            addr,
            root,
            auth,
            htpasswd,
            acl,
            token_realm,
            tls_cert,
            tls_key,
            max_blob_bytes,
            timeout,
            gc_interval,
            gc_grace,
            shutdown_grace,
        } => {
            let auth = match (auth, htpasswd) {
                (AuthKind::None, _) => None,
                (AuthKind::Htpasswd, Some(h)) => Some((Mode::Basic, h, acl)),
                (AuthKind::Token, Some(h)) => Some((Mode::Token, h, acl)),
                (_, None) => anyhow::bail!("--auth needs --htpasswd"),
            };
            let config = Config {
                addr,
                root,
                auth,
                token_realm,
                tls: tls_cert.zip(tls_key),
                max_blob_bytes,
                timeout: Duration::from_secs(timeout),
                gc_interval: gc_interval.map(Duration::from_secs),
                gc_grace: Duration::from_secs(gc_grace),
                shutdown_grace: Duration::from_secs(shutdown_grace),
            };
            crate::server::serve(config).context("registry server failed")
        }
        Command::Gc {
            root,
            dry_run,
            grace,
        } => {
            let _lock =
                RootLock::acquire(&root).context("offline collection needs the server stopped")?;
            let storage = Storage::open(&root).context("opening storage")?;
            let report = crate::gc::collect(&storage, Duration::from_secs(grace), dry_run)
                .context("collecting")?;
            // The command's output, for the operator: what went (or would go).
            let mut out = std::io::stdout().lock();
            for d in &report.deleted {
                let verb = if dry_run { "would delete" } else { "deleted" };
                writeln!(out, "{verb} {d}")?;
            }
            writeln!(
                out,
                "marked {} blobs, {} {} unreferenced blobs, {} bytes, {} stale uploads",
                report.marked,
                if dry_run { "found" } else { "deleted" },
                report.deleted.len(),
                report.bytes_freed,
                report.stale_uploads
            )?;
            Ok(())
        }
    }
}
