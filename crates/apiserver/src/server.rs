//! `cais kube server`: opens the store, makes or loads the PKI and tokens,
//! writes the admin kubeconfig, creates the system namespaces, runs the
//! namespace finalizer and the garbage collector, and serves HTTPS until
//! told to stop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use crate::auth::{self, Pki, Tokens};
use crate::error::{ApiError, Error};
use crate::model::{Model, ModelCell};
use crate::rest::{Ctx, Params};
use crate::storage::Storage;

/// How the server is started.
#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Where to write the admin kubeconfig (default `<data>/admin.kubeconfig`).
    pub kubeconfig: Option<PathBuf>,
}

/// The server's shared state.
pub struct Api {
    pub storage: Storage,
    pub tokens: Tokens,
    /// `host:port` clients reach the server at.
    pub address: String,
    pub cell: Arc<ModelCell>,
    /// How the server reaches node agents (`pods/log`).
    pub agents_tls: Option<tokio_rustls::TlsConnector>,
}

impl Api {
    pub fn new(storage: Storage, tokens: Tokens, address: String, model: Model) -> Api {
        Api {
            storage,
            tokens,
            address,
            cell: Arc::new(ModelCell::new(model)),
            agents_tls: None,
        }
    }

    /// The current registry, schemas and documents.
    pub fn model(&self) -> Arc<Model> {
        self.cell.get()
    }

    /// A request context for the server's own writes to `resource`.
    pub fn internal_ctx(
        &self,
        resource: Arc<crate::registry::Resource>,
        namespace: Option<&str>,
    ) -> Ctx {
        Ctx {
            model: self.model(),
            cell: self.cell.clone(),
            storage: self.storage.clone(),
            resource,
            namespace: namespace.map(String::from),
            params: Params::parse(Some("fieldManager=cais-apiserver")),
            default_manager: "cais-apiserver".into(),
            format: crate::rest::Format::Json,
        }
    }

    fn internal(
        &self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
    ) -> Result<Ctx, ApiError> {
        let resource = self
            .model()
            .registry
            .find(group, "v1", plural)
            .ok_or_else(|| ApiError::internal(format!("{plural} are not registered")))?;
        Ok(self.internal_ctx(resource, namespace))
    }

    /// Creates `obj` unless an object of that name exists.
    async fn ensure(
        &self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
        obj: Value,
    ) -> Result<(), ApiError> {
        let cx = self.internal(group, plural, namespace)?;
        match cx.create(obj.to_string().as_bytes()).await {
            Ok(_) => Ok(()),
            Err(e) if e.reason == "AlreadyExists" => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The namespaces and the `kubernetes` service every cluster has.
    pub async fn bootstrap(&self, port: u16) -> Result<(), ApiError> {
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            self.ensure(
                "",
                "namespaces",
                None,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            )
            .await?;
        }
        self.ensure(
            "",
            "services",
            Some("default"),
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]},
            }),
        )
        .await
    }

    /// Finishes deleting terminating namespaces: deletes what they hold,
    /// then drops the `kubernetes` finalizer, which deletes the namespace.
    pub async fn finalize_namespaces(&self) -> Result<(), ApiError> {
        let namespaces = self.internal("", "namespaces", None)?;
        let page = self
            .storage
            .list(&namespaces.resource, None, 0, 0, None, &|n: &Value| {
                n["metadata"]["deletionTimestamp"].is_string()
            })
            .await?;
        for ns in page.items {
            let name = ns["metadata"]["name"].as_str().unwrap_or("").to_string();
            let mut left = 0;
            let model = self.model();
            for r in model.registry.resources().iter().filter(|r| r.namespaced) {
                let objects = self
                    .storage
                    .list(r, Some(&name), 0, 0, None, &|_| true)
                    .await?;
                for obj in objects.items {
                    left += 1;
                    if obj["metadata"]["deletionTimestamp"].is_string()
                        && obj["metadata"]["finalizers"]
                            .as_array()
                            .is_some_and(|f| !f.is_empty())
                    {
                        continue;
                    }
                    let obj_name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
                    let mut cx = self.internal(&r.group, &r.plural, Some(&name))?;
                    cx.resource = r.clone();
                    // Pods go at once: nothing is left to stop them gracefully.
                    cx.params = Params::parse(Some("gracePeriodSeconds=0"));
                    match cx
                        .delete(&obj_name, b"{\"propagationPolicy\":\"Background\"}")
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if e.reason == "NotFound" => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            if left > 0 {
                continue;
            }
            let mut finalized = ns.clone();
            finalized["spec"]["finalizers"] = json!([]);
            let cx = self.internal("", "namespaces", None)?;
            match cx
                .update(&name, finalized.to_string().as_bytes(), None)
                .await
            {
                Ok(_) => tracing::info!(namespace = %name, "namespace deleted"),
                Err(e) if e.reason == "Conflict" || e.reason == "NotFound" => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Api {
    /// Finishes deleting definitions: their custom objects go first, then
    /// the cleanup finalizer, which deletes the definition.
    pub async fn finalize_definitions(&self) -> Result<(), ApiError> {
        let model = self.model();
        let Some(crds) =
            model
                .registry
                .find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        else {
            return Ok(());
        };
        let finalizer = crate::groups::apiextensions::CLEANUP_FINALIZER;
        let page = self
            .storage
            .list(&crds, None, 0, 0, None, &|c: &Value| {
                c["metadata"]["deletionTimestamp"].is_string()
                    && c["metadata"]["finalizers"]
                        .as_array()
                        .is_some_and(|f| f.iter().any(|x| x == finalizer))
            })
            .await?;
        for crd in page.items {
            let mut left = 0;
            for r in crate::groups::apiextensions::custom_resources(&crd) {
                let r = Arc::new(r);
                let objects = self.storage.list(&r, None, 0, 0, None, &|_| true).await?;
                for obj in objects.items {
                    left += 1;
                    let ns = obj["metadata"]["namespace"].as_str().map(String::from);
                    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
                    let cx = self.internal_ctx(r.clone(), ns.as_deref());
                    match cx.delete(&name, b"{}").await {
                        Ok(_) => {}
                        Err(e) if e.reason == "NotFound" => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            if left > 0 {
                continue;
            }
            let name = crd["metadata"]["name"].as_str().unwrap_or("").to_string();
            let finalizers: Vec<Value> = crd["metadata"]["finalizers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|f| *f != finalizer)
                .cloned()
                .collect();
            // Unserved before it goes, so whoever sees it gone finds its
            // resources gone too.
            self.cell.forget(
                crd["spec"]["group"].as_str().unwrap_or(""),
                crd["spec"]["names"]["plural"].as_str().unwrap_or(""),
            );
            let patch = serde_json::json!({"metadata": {"finalizers": finalizers, "resourceVersion": crd["metadata"]["resourceVersion"]}});
            let cx = self.internal_ctx(crds.clone(), None);
            match cx
                .patch(
                    &name,
                    patch.to_string().as_bytes(),
                    "application/merge-patch+json",
                    None,
                )
                .await
            {
                Ok(_) => tracing::info!(definition = %name, "custom resource definition deleted"),
                Err(e) if e.reason == "Conflict" || e.reason == "NotFound" => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

fn hosts(listen: &SocketAddr) -> Vec<String> {
    let mut hosts: Vec<String> = [
        "localhost",
        "127.0.0.1",
        "::1",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "10.96.0.1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Ok(h) = nix::unistd::gethostname() {
        hosts.push(h.to_string_lossy().into_owned());
    }
    if !listen.ip().is_unspecified() && !listen.ip().is_loopback() {
        hosts.push(listen.ip().to_string());
    }
    hosts
}

/// The URL clients use for a listener bound to `addr`.
fn server_url(addr: &SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        match addr.ip() {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            ip => ip.to_string(),
        }
    };
    format!("https://{ip}:{}", addr.port())
}

fn store_error(dir: &Path, e: cais_store::Error) -> Error {
    Error::Store {
        reason: format!("{}: {e}", dir.display()),
    }
}

/// Opens the store under `data` (the SQLite backend, default options).
pub fn open_store(data: &Path) -> Result<Arc<dyn cais_store::Store>, Error> {
    std::fs::create_dir_all(data).map_err(|source| Error::Write {
        path: data.to_path_buf(),
        source,
    })?;
    let store_dir = data.join("store");
    let store =
        cais_store::sqlite::SqliteStore::open(&store_dir, cais_store::sqlite::Options::default())
            .map_err(|e| store_error(&store_dir, e))?;
    Ok(Arc::new(store))
}

/// Runs the server until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    let store = open_store(&config.data_dir)?;
    serve(config, store, None, shutdown).await
}

/// Runs the server over `store` until `shutdown` resolves; `ready` gets
/// the admin kubeconfig's path once requests are answered (what runs
/// beside the server, such as the controllers, starts then).
pub async fn serve(
    config: Config,
    store: Arc<dyn cais_store::Store>,
    ready: Option<tokio::sync::oneshot::Sender<PathBuf>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    let started = std::time::Instant::now();
    let data = &config.data_dir;
    std::fs::create_dir_all(data).map_err(|source| Error::Write {
        path: data.clone(),
        source,
    })?;
    let storage = Storage::new(store);
    let pki = Pki::ensure(&data.join("pki"), &hosts(&config.listen))?;
    let tokens = Tokens::ensure(&data.join("tokens"))?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen.to_string(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| Error::Bind {
        addr: config.listen.to_string(),
        source,
    })?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(pki.server_config()?));
    let model = Model::builtin()?;
    let url = server_url(&local);
    let mut api = Api::new(
        storage,
        tokens,
        url.trim_start_matches("https://").to_string(),
        model,
    );
    api.agents_tls = Some(tokio_rustls::TlsConnector::from(Arc::new(
        crate::proxy::client_config(&pki.admin_cert, &pki.admin_key)
            .map_err(|reason| Error::Tls { reason })?,
    )));
    let api = Arc::new(api);
    api.bootstrap(local.port())
        .await
        .map_err(|e| Error::Store { reason: e.message })?;
    let kubeconfig = config
        .kubeconfig
        .clone()
        .unwrap_or_else(|| data.join("admin.kubeconfig"));
    auth::write_private(&kubeconfig, pki.admin_kubeconfig(&url).as_bytes())?;
    tracing::info!(address = %local, kubeconfig = %kubeconfig.display(), millis = started.elapsed().as_millis() as u64, "serving the Kubernetes API");
    if let Some(ready) = ready {
        let _ = ready.send(kubeconfig.clone());
    }

    let finalizer = {
        let api = api.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = api.finalize_namespaces().await {
                    tracing::warn!(error = %e, "finishing namespace deletions");
                }
                if let Err(e) = api.finalize_definitions().await {
                    tracing::warn!(error = %e, "finishing definition deletions");
                }
                if let Err(e) = api.cell.refresh(&api.storage).await {
                    tracing::warn!(error = %e, "loading custom resource definitions");
                }
                if let Err(e) = crate::gc::collect(&api).await {
                    tracing::warn!(error = %e, "collecting garbage");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let api = api.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await else {
                        return;
                    };
                    let cert_user = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|c| auth::user_from_certificate(c));
                    let svc = hyper::service::service_fn(move |req| crate::http::handle(api.clone(), cert_user.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        }
    }
    finalizer.abort();
    Ok(())
}
