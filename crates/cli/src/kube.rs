//! `cais kube ...`: the orchestrator's processes. `cais kube server` is the
//! Kubernetes API server (`cais_apiserver`), one process like `k3s server`.

use std::path::PathBuf;

/// `cais kube` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum KubeCommand {
    /// Serve the Kubernetes API over HTTPS (kubectl works against it).
    Server(ServerArgs),
}

#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Where the store, certificates and tokens live.
    #[arg(long = "data-dir", default_value = "/var/lib/cais/kube")]
    pub data_dir: PathBuf,
    /// Where to write the admin kubeconfig (mode 0600) [default:
    /// DATA_DIR/admin.kubeconfig].
    #[arg(long = "write-kubeconfig")]
    pub write_kubeconfig: Option<PathBuf>,
    /// The address to listen on (port 0 picks a free one; the kubeconfig
    /// names the one taken).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: std::net::SocketAddr,
    /// The least severe messages logged.
    #[arg(long = "log-level", value_enum, default_value = "info")]
    pub log_level: crate::logging::Level,
    /// Log lines as text or as JSON objects.
    #[arg(long = "log-format", value_enum, default_value = "text")]
    pub log_format: crate::logging::Format,
}

pub fn run(cmd: KubeCommand) -> anyhow::Result<i32> {
    match cmd {
        KubeCommand::Server(a) => {
            let config = cais_apiserver::server::Config {
                data_dir: a.data_dir,
                listen: a.listen,
                kubeconfig: a.write_kubeconfig,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let shutdown = async {
                    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
                    }
                };
                cais_apiserver::server::run(config, shutdown).await
            })?;
            Ok(0)
        }
    }
}
