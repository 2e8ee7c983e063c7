//! `cais kube ...`: the orchestrator's processes. `cais kube server` is the
//! Kubernetes API server (`cais_apiserver`), one process like `k3s server`,
//! with the scheduler and controllers (`cais_controllers`) running inside
//! unless told otherwise; `controllers`, `scheduler` and `hollow-nodes`
//! run against any server named by a kubeconfig.

use std::path::PathBuf;

use anyhow::Context as _;

/// `cais kube` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum KubeCommand {
    /// Serve the Kubernetes API over HTTPS (kubectl works against it).
    Server(ServerArgs),
    /// Run the controllers and the scheduler against a server.
    Controllers(ClientArgs),
    /// Run only the scheduler against a server.
    Scheduler(ClientArgs),
    /// Register simulated nodes that run their pods without containers.
    #[command(name = "hollow-nodes")]
    HollowNodes(HollowArgs),
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
    /// Serve the API only: no scheduler, no controllers.
    #[arg(long = "disable-controllers")]
    pub disable_controllers: bool,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// The least severe messages logged.
    #[arg(long = "log-level", value_enum, default_value = "info")]
    pub log_level: crate::logging::Level,
    /// Log lines as text or as JSON objects.
    #[arg(long = "log-format", value_enum, default_value = "text")]
    pub log_format: crate::logging::Format,
}

#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    /// The kubeconfig naming the server and credentials.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: PathBuf,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, clap::Args)]
pub struct HollowArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// How many nodes.
    #[arg(long, default_value_t = 1)]
    pub count: usize,
    /// Nodes are named PREFIX-0, PREFIX-1, ...
    #[arg(long, default_value = "hollow")]
    pub prefix: String,
}

pub fn init_logging(cmd: &KubeCommand) {
    let log = match cmd {
        KubeCommand::Server(a) => &a.log,
        KubeCommand::Controllers(a) | KubeCommand::Scheduler(a) => &a.log,
        KubeCommand::HollowNodes(a) => &a.client.log,
    };
    crate::logging::init(log.log_level, log.log_format)
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}

fn client(path: &std::path::Path) -> anyhow::Result<cais_kube::Client> {
    cais_kube::Client::from_kubeconfig(path)
        .with_context(|| format!("reading the kubeconfig {}", path.display()))
}

pub fn run(cmd: KubeCommand) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cmd {
        KubeCommand::Server(a) => {
            let config = cais_apiserver::server::Config {
                data_dir: a.data_dir,
                listen: a.listen,
                kubeconfig: a.write_kubeconfig,
            };
            runtime.block_on(async {
                let store = cais_apiserver::server::open_store(&config.data_dir)?;
                let (ready, started) = tokio::sync::oneshot::channel::<PathBuf>();
                if !a.disable_controllers {
                    tokio::spawn(async move {
                        let Ok(kubeconfig) = started.await else {
                            return;
                        };
                        match cais_kube::Client::from_kubeconfig(&kubeconfig) {
                            Ok(c) => cais_controllers::run_all(c).await,
                            Err(e) => tracing::error!(error = %e, "starting the controllers"),
                        }
                    });
                }
                cais_apiserver::server::serve(config, store, Some(ready), shutdown()).await
            })?;
            Ok(0)
        }
        KubeCommand::Controllers(a) => {
            let c = client(&a.kubeconfig)?;
            runtime.block_on(async {
                tokio::select! {
                    _ = cais_controllers::run_all(c) => {}
                    _ = shutdown() => {}
                }
            });
            Ok(0)
        }
        KubeCommand::Scheduler(a) => {
            let c = client(&a.kubeconfig)?;
            runtime.block_on(async {
                tokio::select! {
                    _ = cais_controllers::scheduler::run(c) => {}
                    _ = shutdown() => {}
                }
            });
            Ok(0)
        }
        KubeCommand::HollowNodes(a) => {
            let c = client(&a.client.kubeconfig)?;
            let options = cais_controllers::hollow::Options {
                count: a.count,
                prefix: a.prefix,
            };
            runtime.block_on(async {
                tokio::select! {
                    r = cais_controllers::hollow::run(c, options) => r.context("running hollow nodes"),
                    _ = shutdown() => Ok(()),
                }
            })?;
            Ok(0)
        }
    }
}
