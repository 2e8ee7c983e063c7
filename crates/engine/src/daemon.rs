//! `cais daemon`: opens the engine, serves the API on a unix socket (mode
//! 0660, root-owned) until SIGTERM or SIGINT. Containers keep running when
//! it stops; the next start finds them again.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::engine::{Config, Engine};
use crate::error::{Error, Result};

/// `--tlsverify`: a TCP listener serves only clients with a certificate
/// signed by `ca`.
#[derive(Debug, Clone)]
pub struct Tls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub socket: PathBuf,
    /// An extra TCP listener (`host:port`), always with TLS client verification.
    pub tcp: Option<(String, Tls)>,
    pub root: PathBuf,
    pub exec_root: PathBuf,
    pub binary: PathBuf,
    /// Container Device Interface spec directories (`--cdi-spec-dir`).
    pub cdi_spec_dirs: Vec<PathBuf>,
}

pub fn run(opts: Options) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::daemon("starting the async runtime")(e.into()))?;
    let result = rt.block_on(serve(opts));
    // Requests still blocked in the engine (a `wait` for a container that
    // keeps running) must not keep the process, and its port
    // reservations, alive.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

async fn serve(opts: Options) -> Result<()> {
    let engine = tokio::task::spawn_blocking({
        let sealed = match cais_runtime::sealed::read_only_view() {
            Ok(fd) => Some(std::sync::Arc::new(fd)),
            Err(e) => {
                tracing::warn!(error = %e, "no read-only view of the binary: shims re-execute themselves");
                None
            }
        };
        let cfg = Config {
            root: opts.root.clone(),
            exec_root: opts.exec_root.clone(),
            binary: opts.binary.clone(),
            sealed,
            cdi_spec_dirs: opts.cdi_spec_dirs.clone(),
        };
        move || Engine::open(cfg)
    })
    .await
    .map_err(|e| Error::daemon("opening the engine")(e.into()))??;
    if let Some(dir) = opts.socket.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io("creating the socket directory", dir))?;
    }
    // A socket file left by a daemon that died is replaced; a live daemon is not.
    if std::os::unix::net::UnixStream::connect(&opts.socket).is_ok() {
        return Err(Error::Conflict(format!(
            "another daemon is already listening on {}",
            opts.socket.display()
        )));
    }
    let _ = std::fs::remove_file(&opts.socket);
    let listener = tokio::net::UnixListener::bind(&opts.socket)
        .map_err(Error::io("binding the socket", &opts.socket))?;
    std::fs::set_permissions(&opts.socket, std::fs::Permissions::from_mode(0o660))
        .map_err(Error::io("setting the permissions of", &opts.socket))?;
    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let mut int =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
        tokio::select! {
            _ = async { if let Some(t) = term.as_mut() { t.recv().await; } else { std::future::pending::<()>().await } } => {}
            _ = async { if let Some(i) = int.as_mut() { i.recv().await; } else { std::future::pending::<()>().await } } => {}
        }
    };
    tracing::info!(
        socket = %opts.socket.display(),
        "serving the Docker Engine API"
    );
    if let Some((addr, tls)) = &opts.tcp {
        let acceptor = tls_acceptor(tls)?;
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::daemon(format!("binding {addr}"))(e.into()))?;
        tracing::info!(
            address = %format!("tcp://{addr}"),
            "serving the Docker Engine API (TLS, client certificates required)"
        );
        tokio::spawn(crate::http::serve_tls(engine.clone(), tcp, acceptor));
    }
    crate::http::serve(engine.clone(), listener, shutdown).await;
    let _ = std::fs::remove_file(&opts.socket);
    tokio::task::spawn_blocking(move || engine.shutdown())
        .await
        .map_err(|e| Error::daemon("removing the firewall rules")(e.into()))?;
    Ok(())
}

/// A TLS server config that requires a client certificate signed by the CA.
fn tls_acceptor(tls: &Tls) -> Result<tokio_rustls::TlsAcceptor> {
    use std::sync::Arc;
    let read = |path: &std::path::Path| std::fs::read(path).map_err(Error::io("reading", path));
    fn bad<E: std::error::Error + Send + Sync + 'static>(
        what: &'static str,
    ) -> impl FnOnce(E) -> Error {
        move |e| Error::daemon(what)(Box::new(e))
    }
    let certs = rustls_pemfile::certs(&mut read(&tls.cert)?.as_slice())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(bad("reading --tlscert"))?;
    let key = rustls_pemfile::private_key(&mut read(&tls.key)?.as_slice())
        .map_err(bad("reading --tlskey"))?
        .ok_or_else(|| {
            Error::InvalidArgument(format!("no private key in {}", tls.key.display()))
        })?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls_pemfile::certs(&mut read(&tls.ca)?.as_slice()) {
        let ca = ca.map_err(bad("reading --tlscacert"))?;
        roots.add(ca).map_err(bad("adding the CA"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(bad("making the client verifier"))?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(bad("choosing the TLS versions"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(bad("loading the server certificate"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
