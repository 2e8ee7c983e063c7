//! `cais kube ...`: the orchestrator's processes. `cais kube server` is the
//! Kubernetes API server (`cais_apiserver`), one process like `k3s server`,
//! with the scheduler and controllers (`cais_controllers`) and this host's
//! node agent (`cais_agent`) running inside unless told otherwise;
//! `controllers`, `scheduler` and `hollow-nodes` run against any server
//! named by a kubeconfig, and `agent` is the agent alone, for a node joining
//! a server elsewhere.

use std::path::PathBuf;

use anyhow::Context as _;

/// `cais kube` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum KubeCommand {
    /// Serve the Kubernetes API over HTTPS (kubectl works against it), with
    /// the scheduler and controllers, and run this host's pods on the local
    /// engine.
    Server(ServerArgs),
    /// Run the pods an API server binds to this node on the local engine.
    Agent(AgentArgs),
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
    /// Run no scheduler and no controllers in this process.
    #[arg(long = "disable-controllers")]
    pub disable_controllers: bool,
    /// Run no node agent in this process.
    #[arg(long = "disable-agent")]
    pub disable_agent: bool,
    #[command(flatten)]
    pub node: NodeArgs,
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

/// How the node agent runs its node.
#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// The node's name [default: the host name].
    #[arg(long = "node-name")]
    pub node_name: Option<String>,
    /// The engine pods run on.
    #[arg(long = "engine-host", default_value = crate::client_cmds::DEFAULT_HOST)]
    pub engine_host: String,
    /// The engine network pods join (created when missing).
    #[arg(long = "pod-network", default_value = "cais-kube")]
    pub pod_network: String,
    /// The pod network's subnet when it is created [default: one the
    /// engine picks].
    #[arg(long = "pod-cidr")]
    pub pod_cidr: Option<String>,
    /// Where the agent writes pods' configMap and secret volumes
    /// [default: DATA_DIR/agent for the server, /var/lib/cais/agent alone].
    #[arg(long = "state-dir")]
    pub state_dir: Option<PathBuf>,
    /// The port the agent serves the API server on (`kubectl logs`); 0
    /// picks a free one.
    #[arg(long = "agent-port", default_value_t = 10250)]
    pub agent_port: u16,
}

#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// The API server's URL (`https://host:6443`).
    #[arg(long)]
    pub server: String,
    /// A file holding the node's bearer token (a `system:node:NAME` user in
    /// `system:nodes`).
    #[arg(long = "token-file")]
    pub token_file: PathBuf,
    /// The CA certificate (PEM) that signed the server's certificate.
    #[arg(long = "certificate-authority")]
    pub certificate_authority: Option<PathBuf>,
    /// Do not check the server's certificate.
    #[arg(long = "insecure-skip-tls-verify")]
    pub insecure: bool,
    #[command(flatten)]
    pub node: NodeArgs,
    #[command(flatten)]
    pub log: LogArgs,
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

impl NodeArgs {
    fn node_name(&self) -> anyhow::Result<String> {
        match &self.node_name {
            Some(n) => Ok(n.clone()),
            None => Ok(nix::unistd::gethostname()
                .context("reading the host name")?
                .to_string_lossy()
                .to_lowercase()),
        }
    }

    fn options(&self, state_dir: PathBuf) -> anyhow::Result<cais_agent::agent::Options> {
        let mut runtime = cais_agent::Config::new(&self.node_name()?);
        runtime.state_dir = self.state_dir.clone().unwrap_or(state_dir);
        runtime.network = self.pod_network.clone();
        runtime.pod_cidr = self.pod_cidr.clone().unwrap_or_default();
        runtime.host_ip = cais_agent::node::host_ip();
        Ok(cais_agent::agent::Options {
            runtime,
            engine_host: self.engine_host.clone(),
            listen: std::net::SocketAddr::from(([0, 0, 0, 0], self.agent_port)),
            ca_pem: None,
        })
    }
}

pub fn init_logging(cmd: &KubeCommand) {
    let log = match cmd {
        KubeCommand::Server(a) => &a.log,
        KubeCommand::Agent(a) => &a.log,
        KubeCommand::Controllers(a) | KubeCommand::Scheduler(a) => &a.log,
        KubeCommand::HollowNodes(a) => &a.client.log,
    };
    crate::logging::init(log.log_level, log.log_format)
}

/// Resolves on SIGINT or SIGTERM.
async fn signalled() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
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
            let agent = if a.disable_agent {
                None
            } else {
                let opts = a.node.options(a.data_dir.join("agent"))?;
                std::fs::create_dir_all(&a.data_dir)
                    .with_context(|| format!("creating {}", a.data_dir.display()))?;
                let token = cais_apiserver::auth::Tokens::ensure_user(
                    &a.data_dir.join("tokens"),
                    &format!("system:node:{}", opts.runtime.node),
                    &["system:nodes"],
                )?;
                Some((opts, token))
            };
            let config = cais_apiserver::server::Config {
                data_dir: a.data_dir.clone(),
                listen: a.listen,
                kubeconfig: a.write_kubeconfig,
            };
            let store = cais_apiserver::server::open_store(&a.data_dir)?;
            let (ready_tx, ready) = tokio::sync::oneshot::channel::<PathBuf>();
            runtime.block_on(async {
                let (stop_tx, stop) = tokio::sync::watch::channel(false);
                let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
                    let _ = rx.wait_for(|s| *s).await;
                };
                let disable_controllers = a.disable_controllers;
                let agent = async {
                    let Ok(kubeconfig) = ready.await else {
                        return;
                    };
                    if !disable_controllers {
                        match cais_kube::Client::from_kubeconfig(&kubeconfig) {
                            Ok(c) => {
                                tokio::spawn(cais_controllers::run_all(c));
                            }
                            Err(e) => tracing::error!(error = %e, "starting the controllers"),
                        }
                    }
                    let Some((mut opts, token)) = agent else {
                        return;
                    };
                    // The server's admin kubeconfig names its address and
                    // CA; the agent keeps those and uses its node token.
                    let result = async {
                        let mut config = cais_kube::Config::load(&kubeconfig)?;
                        config.client_cert_pem = None;
                        config.client_key_pem = None;
                        config.token = Some(token);
                        opts.ca_pem = config.ca_pem.clone();
                        let kube = cais_kube::Client::new(&config)?;
                        cais_agent::agent::run(kube, opts, stopped(stop.clone())).await?;
                        anyhow::Ok(())
                    }
                    .await;
                    if let Err(e) = result {
                        tracing::error!(error = format!("{e:#}"), "the node agent stopped");
                    }
                };
                let server = cais_apiserver::server::serve(
                    config,
                    store,
                    Some(ready_tx),
                    stopped(stop.clone()),
                );
                let signal = async {
                    signalled().await;
                    let _ = stop_tx.send(true);
                };
                tokio::pin!(server);
                tokio::select! {
                    r = &mut server => r,
                    _ = async { tokio::join!(signal, agent) } => server.await,
                }
            })?;
            Ok(0)
        }
        KubeCommand::Controllers(a) => {
            let c = client(&a.kubeconfig)?;
            runtime.block_on(async {
                tokio::select! {
                    _ = cais_controllers::run_all(c) => {}
                    _ = signalled() => {}
                }
            });
            Ok(0)
        }
        KubeCommand::Scheduler(a) => {
            let c = client(&a.kubeconfig)?;
            runtime.block_on(async {
                tokio::select! {
                    _ = cais_controllers::scheduler::run(c) => {}
                    _ = signalled() => {}
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
                    _ = signalled() => Ok(()),
                }
            })?;
            Ok(0)
        }
        KubeCommand::Agent(a) => {
            let token = std::fs::read_to_string(&a.token_file)
                .with_context(|| format!("reading {}", a.token_file.display()))?
                .trim()
                .to_string();
            anyhow::ensure!(
                !token.is_empty(),
                "{} holds no token",
                a.token_file.display()
            );
            let ca_pem = a
                .certificate_authority
                .as_ref()
                .map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display())))
                .transpose()?;
            let mut opts = a.node.options(PathBuf::from("/var/lib/cais/agent"))?;
            opts.ca_pem = ca_pem.clone();
            let kube = cais_kube::Client::new(&kube_config(a.server, ca_pem, token, a.insecure))?;
            runtime.block_on(cais_agent::agent::run(kube, opts, signalled()))?;
            Ok(0)
        }
    }
}

fn kube_config(
    server: String,
    ca_pem: Option<Vec<u8>>,
    token: String,
    insecure: bool,
) -> cais_kube::Config {
    cais_kube::Config {
        server,
        ca_pem,
        client_cert_pem: None,
        client_key_pem: None,
        token: Some(token),
        insecure,
    }
}
