//! The HTTP side: listener, TLS, routing, handlers, access log, shutdown.
//!
//! Endpoints follow the OCI distribution spec's endpoint table (end-1 ..
//! end-13). Every error leaves through `ApiError`, the one place that maps
//! failures to a status and the spec's `{"errors":[...]}` body. This file
//! holds the listener, routing and authorization; `blobs` and `manifests`
//! the endpoint handlers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::TcpListener;

use crate::auth::{Action, Auth, Identity, Mode};
use cais_oci::digest::{Algorithm, Hasher};
use cais_oci::distribution::{ManifestRefs, TagOrDigest, MAX_MANIFEST_BYTES};
use cais_oci::image::OCI_INDEX;
use cais_oci::reference::validate_name;
use cais_oci::Digest;

use crate::error_code::ErrorCode;
use crate::storage::{self, Storage};

mod blobs;
mod manifests;
mod sendfile;

use blobs::*;
use manifests::*;
use sendfile::{MappedBlob, Maps, SendfileStream};

type Body = BoxBody<Bytes, io::Error>;

/// Server settings, filled from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub root: PathBuf,
    pub auth: Option<(Mode, PathBuf, Option<PathBuf>)>,
    pub token_realm: Option<String>,
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Largest blob accepted, in bytes; `None` for no limit.
    pub max_blob_bytes: Option<u64>,
    /// Longest wait for request headers or the next piece of a body.
    pub timeout: Duration,
    pub gc_interval: Option<Duration>,
    pub gc_grace: Duration,
    pub shutdown_grace: Duration,
}

/// Server errors (startup only: request failures become responses).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("opening storage")]
    Storage(#[from] storage::Error),
    #[error("loading auth files")]
    Auth(#[from] crate::auth::Error),
    #[error("binding {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("loading tls {what} from {path}")]
    Tls {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("setting up tls")]
    Rustls(#[from] rustls::Error),
    #[error("locking {path}: another process (a server or a collection) uses this root")]
    Locked {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Per-upload running hash, so finishing an upload does not reread it.
#[derive(Default)]
struct UploadHash {
    hasher: Option<(Hasher, u64)>,
}

struct App {
    storage: Arc<Storage>,
    auth: Option<Auth>,
    config: Config,
    uploads: Mutex<HashMap<String, Arc<tokio::sync::Mutex<UploadHash>>>>,
}

/// A failed request: spec error code, message, extra headers.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    headers: Vec<(&'static str, String)>,
}

impl ApiError {
    fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(code.status()).unwrap_or(StatusCode::BAD_REQUEST),
            code: code.as_str(),
            message: message.into(),
            headers: Vec::new(),
        }
    }

    fn status(mut self, status: StatusCode) -> ApiError {
        self.status = status;
        self
    }

    fn header(mut self, name: &'static str, value: String) -> ApiError {
        self.headers.push((name, value));
        self
    }

    fn internal(err: impl std::error::Error) -> ApiError {
        let mut message = err.to_string();
        let mut source = err.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "UNKNOWN",
            message,
            headers: Vec::new(),
        }
    }

    fn into_response(self, method: &Method) -> Response<Body> {
        let body =
            json!({"errors": [{"code": self.code, "message": self.message, "detail": null}]})
                .to_string();
        let mut builder = Response::builder()
            .status(self.status)
            .header(CONTENT_TYPE, "application/json");
        for (name, value) in self.headers {
            builder = builder.header(name, value);
        }
        // HEAD responses carry no body (RFC 9110 9.3.2); the status says it.
        let body = if method == Method::HEAD {
            empty()
        } else {
            full(body)
        };
        builder
            .body(body)
            .unwrap_or_else(|_| Response::new(empty()))
    }
}

impl From<storage::Error> for ApiError {
    fn from(e: storage::Error) -> ApiError {
        match e {
            storage::Error::UploadUnknown { .. } => {
                ApiError::new(ErrorCode::BlobUploadUnknown, e.to_string())
            }
            storage::Error::DigestMismatch { .. } => {
                ApiError::new(ErrorCode::DigestInvalid, e.to_string())
            }
            storage::Error::BlobCollected { .. } => {
                ApiError::new(ErrorCode::BlobUnknown, e.to_string())
            }
            storage::Error::Io { .. } => ApiError::internal(e),
        }
    }
}

type ApiResult = Result<Response<Body>, ApiError>;

fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

fn empty() -> Body {
    Empty::new()
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// Parsed request target.
#[derive(Debug)]
enum Route {
    Base,
    Catalog,
    Tags(String),
    Manifest(String, String),
    Blob(String, String),
    StartUpload(String),
    Upload(String, String),
    Referrers(String, String),
}

/// Splits `/v2/<name>/<suffix>`. The name may contain `/`, the last part
/// (reference, digest, upload id) never does, so match from the end.
fn route(path: &str) -> Result<Option<Route>, ApiError> {
    let Some(rest) = path.strip_prefix("/v2") else {
        return Ok(None);
    };
    if rest.is_empty() || rest == "/" {
        return Ok(Some(Route::Base));
    }
    let Some(rest) = rest.strip_prefix('/') else {
        return Ok(None);
    };
    if rest == "_catalog" {
        return Ok(Some(Route::Catalog));
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    let name_of = |end: usize| -> Result<String, ApiError> {
        let name = segs[..end].join("/");
        validate_name(&name).map_err(|e| ApiError::new(ErrorCode::NameInvalid, e.to_string()))?;
        Ok(name)
    };
    if n >= 3 && segs[n - 3] == "blobs" && segs[n - 2] == "uploads" && n > 3 {
        let id = segs[n - 1];
        let name = name_of(n - 3)?;
        return Ok(Some(if id.is_empty() {
            Route::StartUpload(name)
        } else {
            Route::Upload(name, id.to_owned())
        }));
    }
    if n >= 3 && segs[n - 2] == "blobs" && segs[n - 1] == "uploads" {
        return Ok(Some(Route::StartUpload(name_of(n - 2)?)));
    }
    if n >= 3 {
        let last = segs[n - 1].to_owned();
        match segs[n - 2] {
            "manifests" => return Ok(Some(Route::Manifest(name_of(n - 2)?, last))),
            "blobs" => return Ok(Some(Route::Blob(name_of(n - 2)?, last))),
            "referrers" => return Ok(Some(Route::Referrers(name_of(n - 2)?, last))),
            "tags" if last == "list" => return Ok(Some(Route::Tags(name_of(n - 2)?))),
            _ => {}
        }
    }
    Ok(None)
}

fn query_params(query: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = query else { return Vec::new() };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A digest from a request (path or query). Storage holds sha256 content
/// only, so other algorithms are refused here, where digests enter.
fn parse_digest(s: &str) -> Result<Digest, ApiError> {
    let digest: Digest = s
        .parse()
        .map_err(|e: cais_oci::Error| ApiError::new(ErrorCode::DigestInvalid, e.to_string()))?;
    sha256_only(digest).map_err(|e| ApiError::new(ErrorCode::DigestInvalid, e.to_string()))
}

/// `digest` when it is a sha256 digest, the one algorithm storage keeps.
fn sha256_only(digest: Digest) -> Result<Digest, cais_oci::Error> {
    match digest.algorithm() {
        Algorithm::Sha256 => Ok(digest),
        other => Err(cais_oci::Error::UnsupportedAlgorithm {
            algorithm: other.name().to_owned(),
        }),
    }
}

/// Runs the server until SIGTERM or SIGINT.
pub fn serve(config: Config) -> Result<(), anyhow::Error> {
    limit_malloc_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve_async(config))
}

/// glibc gives each thread that allocates its own arena (up to 8 per core)
/// and keeps freed upload buffers in them; two arenas are plenty for a
/// server whose hot path is the kernel copying page cache to sockets, and
/// keep its resident memory near what it uses (mallopt(3), M_ARENA_MAX).
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Holds an exclusive `flock(2)` on ROOT/.lock: a server and an offline
/// collection must not share a root.
pub struct RootLock {
    _file: std::fs::File,
}

impl RootLock {
    pub fn acquire(root: &std::path::Path) -> Result<RootLock, Error> {
        use std::os::fd::AsRawFd;
        std::fs::create_dir_all(root).map_err(|source| Error::Locked {
            path: root.to_owned(),
            source,
        })?;
        let path = root.join(".lock");
        let file = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| Error::Locked {
                path: path.clone(),
                source,
            })?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(Error::Locked {
                path,
                source: io::Error::last_os_error(),
            });
        }
        Ok(RootLock { _file: file })
    }
}

async fn serve_async(config: Config) -> Result<(), anyhow::Error> {
    let _lock = RootLock::acquire(&config.root)?;
    let storage = Arc::new(Storage::open(&config.root)?);
    let auth = match &config.auth {
        Some((mode, htpasswd, acl)) => Some(Auth::load(*mode, htpasswd, acl.as_deref())?),
        None => None,
    };
    let tls = match &config.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
        None => None,
    };
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|source| Error::Bind {
            addr: config.addr,
            source,
        })?;
    let local = listener.local_addr()?;
    // Not a log line but the command's output: tests and scripts read it
    // on stdout to learn the port of `--addr ...:0`.
    let _ = writeln!(io::stdout(), "listening on {local}");
    tracing::info!(address = %local, "listening");
    let app = Arc::new(App {
        storage: storage.clone(),
        auth,
        config: config.clone(),
        uploads: Mutex::new(HashMap::new()),
    });

    if let Some(interval) = config.gc_interval {
        let storage = storage.clone();
        let grace = config.gc_grace;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                run_gc(storage.clone(), grace).await;
            }
        });
    }
    {
        // SIGUSR1 asks for one online collection now.
        let storage = storage.clone();
        let grace = config.gc_grace;
        let mut usr1 =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
        tokio::spawn(async move {
            while usr1.recv().await.is_some() {
                run_gc(storage.clone(), grace).await;
            }
        });
    }

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        let timeout = config.timeout;
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // Plain TCP connections may send blobs with sendfile(2).
            let maps = tls.is_none().then(|| Arc::new(Maps::default()));
            let request_maps = maps.clone();
            let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                let app = app.clone();
                if let Some(maps) = &request_maps {
                    req.extensions_mut().insert(maps.clone());
                }
                async move { Ok::<_, Infallible>(handle(app, req, remote).await) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(timeout);
            match tls {
                Some(acceptor) => {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(timeout, acceptor.accept(stream)).await
                    else {
                        return;
                    };
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(conn).await;
                }
                None => {
                    let io = SendfileStream::new(stream, maps.unwrap_or_default());
                    let conn = builder.serve_connection(TokioIo::new(io), service);
                    let _ = watcher.watch(conn).await;
                }
            }
        });
    }
    tracing::info!("shutting down, draining connections");
    drop(listener);
    if tokio::time::timeout(config.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over, closing remaining connections");
    }
    Ok(())
}

async fn run_gc(storage: Arc<Storage>, grace: Duration) {
    let result =
        tokio::task::spawn_blocking(move || crate::gc::collect(&storage, grace, false)).await;
    match result {
        Ok(Ok(report)) => tracing::info!(
            marked = report.marked,
            deleted = report.deleted.len(),
            bytes_freed = report.bytes_freed,
            "gc"
        ),
        Ok(Err(e)) => tracing::error!(error = %format!("{:#}", anyhow::Error::new(e)), "gc failed"),
        Err(e) => tracing::error!(error = %e, "gc failed"),
    }
}

fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, Error> {
    let read = |what, path: &std::path::Path| {
        std::fs::read(path).map_err(|source| Error::Tls {
            what,
            path: path.to_owned(),
            source,
        })
    };
    let cert_pem = read("certificate", cert)?;
    let key_pem = read("key", key)?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::Tls {
            what: "certificate",
            path: cert.to_owned(),
            source,
        })?;
    let key_der = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|source| Error::Tls {
            what: "key",
            path: key.to_owned(),
            source,
        })?
        .ok_or_else(|| Error::Tls {
            what: "key",
            path: key.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidData, "no private key found"),
        })?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key_der)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Entry point of every request: routes, authorizes, logs.
async fn handle(app: Arc<App>, req: Request<Incoming>, remote: SocketAddr) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut user = String::new();
    let result = dispatch(&app, req, &mut user).await;
    let mut response = match result {
        Ok(r) => r,
        Err(e) => e.into_response(&method),
    };
    response.headers_mut().insert(
        "Docker-Distribution-API-Version",
        HeaderValue::from_static("registry/2.0"),
    );
    let status = response.status().as_u16();
    let length = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    // The access log: one event per request (a JSON line with these
    // fields at the top level under `--log-format json`, the default).
    tracing::info!(
        remote = %remote,
        user = %user,
        method = %method,
        path = %path,
        status,
        length = %length,
        ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}

async fn dispatch(app: &App, req: Request<Incoming>, user: &mut String) -> ApiResult {
    let path = req.uri().path().to_owned();
    let params = query_params(req.uri().query());
    let method = req.method().clone();
    let authorization = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);

    if path == "/token" {
        return token_endpoint(app, &req, &params, user);
    }
    let Some(route) = route(&path)? else {
        return Err(
            ApiError::new(ErrorCode::NameUnknown, "no such endpoint").status(StatusCode::NOT_FOUND)
        );
    };

    // Authorization: which action on which resource this route needs.
    let identity = app
        .auth
        .as_ref()
        .map(|auth| auth.identify(authorization.as_deref()));
    if let Some(identity) = &identity {
        match identity {
            Identity::User(u) | Identity::Token { user: u, .. } => *user = u.clone(),
            Identity::Anonymous => {}
        }
    }
    let needed: Option<(&str, String, Action)> = match &route {
        Route::Base => None,
        Route::Catalog => Some(("registry", "catalog".to_owned(), Action::Catalog)),
        Route::Tags(n) | Route::Referrers(n, _) => Some(("repository", n.clone(), Action::Pull)),
        Route::Manifest(n, _) | Route::Blob(n, _) => {
            let action = match method {
                Method::GET | Method::HEAD => Action::Pull,
                Method::DELETE => Action::Delete,
                _ => Action::Push,
            };
            Some(("repository", n.clone(), action))
        }
        Route::StartUpload(n) | Route::Upload(n, _) => {
            Some(("repository", n.clone(), Action::Push))
        }
    };
    if let (Some(auth), Some(identity)) = (&app.auth, &identity) {
        let host = req
            .headers()
            .get(hyper::header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("localhost");
        let challenge = challenge(app, auth, host, needed.as_ref());
        match (&needed, identity) {
            (_, Identity::Anonymous) => {
                return Err(
                    ApiError::new(ErrorCode::Unauthorized, "authentication required")
                        .header("WWW-Authenticate", challenge),
                );
            }
            (None, _) => {}
            (Some((kind, name, action)), identity) => {
                if !auth.permits(identity, kind, name, *action) {
                    return Err(match identity {
                        // A token lacking the scope: the token spec says to
                        // answer 401 so the client fetches a better token.
                        Identity::Token { .. } => ApiError::new(
                            ErrorCode::Unauthorized,
                            "token does not grant this access",
                        )
                        .header(
                            "WWW-Authenticate",
                            format!("{challenge},error=\"insufficient_scope\""),
                        ),
                        _ => ApiError::new(ErrorCode::Denied, "access to the resource is denied"),
                    });
                }
            }
        }
    }

    match (route, method) {
        (Route::Base, Method::GET | Method::HEAD) => Ok(json_response(StatusCode::OK, "{}".into())),
        (Route::Catalog, Method::GET) => catalog(app, &params).await,
        (Route::Tags(name), Method::GET) => tags(app, name, &params).await,
        (Route::Manifest(name, reference), Method::GET) => {
            get_manifest(app, name, reference, false).await
        }
        (Route::Manifest(name, reference), Method::HEAD) => {
            get_manifest(app, name, reference, true).await
        }
        (Route::Manifest(name, reference), Method::PUT) => {
            put_manifest(app, name, reference, &params, req).await
        }
        (Route::Manifest(name, reference), Method::DELETE) => {
            delete_manifest(app, name, reference).await
        }
        (Route::Blob(name, digest), Method::GET) => get_blob(app, name, digest, &req, false).await,
        (Route::Blob(name, digest), Method::HEAD) => get_blob(app, name, digest, &req, true).await,
        (Route::Blob(name, digest), Method::DELETE) => delete_blob(app, name, digest).await,
        (Route::StartUpload(name), Method::POST) => {
            let can_pull_from = |from: &str| match (&app.auth, &identity) {
                (Some(auth), Some(id)) => auth.permits(id, "repository", from, Action::Pull),
                _ => true,
            };
            let from_allowed = param(&params, "from").map(can_pull_from).unwrap_or(false);
            start_upload(app, name, &params, from_allowed, req).await
        }
        (Route::Upload(name, id), Method::GET) => upload_status(app, name, id).await,
        (Route::Upload(name, id), Method::PATCH) => patch_upload(app, name, id, req).await,
        (Route::Upload(name, id), Method::PUT) => finish_upload(app, name, id, &params, req).await,
        (Route::Upload(name, id), Method::DELETE) => cancel_upload(app, name, id).await,
        (Route::Referrers(name, digest), Method::GET) => {
            referrers(app, name, digest, &params).await
        }
        _ => Err(ApiError::new(
            ErrorCode::Unsupported,
            "method not allowed on this endpoint",
        )),
    }
}

fn challenge(
    app: &App,
    auth: &Auth,
    host: &str,
    needed: Option<&(&str, String, Action)>,
) -> String {
    match auth.mode {
        Mode::Basic => "Basic realm=\"cais\"".to_owned(),
        Mode::Token => {
            let scheme = if app.config.tls.is_some() {
                "https"
            } else {
                "http"
            };
            let realm = app
                .config
                .token_realm
                .clone()
                .unwrap_or_else(|| format!("{scheme}://{host}/token"));
            let mut c = format!("Bearer realm=\"{realm}\",service=\"cais\"");
            if let Some((kind, name, action)) = needed {
                let actions = match action {
                    Action::Pull => "pull",
                    Action::Push => "pull,push",
                    Action::Delete => "delete",
                    Action::Catalog => "*",
                };
                c.push_str(&format!(",scope=\"{kind}:{name}:{actions}\""));
            }
            c
        }
    }
}

fn token_endpoint(
    app: &App,
    req: &Request<Incoming>,
    params: &[(String, String)],
    user: &mut String,
) -> ApiResult {
    let Some(auth) = app.auth.as_ref().filter(|a| a.mode == Mode::Token) else {
        return Err(
            ApiError::new(ErrorCode::Unsupported, "no token service").status(StatusCode::NOT_FOUND)
        );
    };
    let header = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(name) = header.and_then(|h| auth.basic_user(h)) else {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "valid credentials required for a token",
        )
        .header("WWW-Authenticate", "Basic realm=\"cais\"".into()));
    };
    *user = name.clone();
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_owned))
        .collect();
    let token = auth.issue_token(&name, &scopes);
    let body = json!({"token": token, "access_token": token, "expires_in": crate::auth::TOKEN_TTL});
    Ok(json_response(StatusCode::OK, body.to_string()))
}

fn json_response(status: StatusCode, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_LENGTH, body.len())
        .body(full(body))
        .unwrap_or_else(|_| Response::new(empty()))
}

/// Runs storage work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, storage::Error> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(ApiError::internal(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_split_from_the_end() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert!(matches!(route("/v2/").ok().flatten(), Some(Route::Base)));
        assert!(matches!(
            route("/v2/_catalog").ok().flatten(),
            Some(Route::Catalog)
        ));
        match route("/v2/a/manifests/b/manifests/latest") {
            Ok(Some(Route::Manifest(n, r))) => {
                assert_eq!((n.as_str(), r.as_str()), ("a/manifests/b", "latest"))
            }
            other => panic!("{other:?}"),
        }
        match route(&format!("/v2/x/blobs/blobs/{d}")) {
            Ok(Some(Route::Blob(n, _))) => assert_eq!(n, "x/blobs"),
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(route("/v2/a/b/blobs/uploads/").ok().flatten(), Some(Route::StartUpload(n)) if n == "a/b")
        );
        assert!(
            matches!(route("/v2/a/blobs/uploads/xyz").ok().flatten(), Some(Route::Upload(_, id)) if id == "xyz")
        );
        assert!(
            matches!(route("/v2/a/tags/list").ok().flatten(), Some(Route::Tags(n)) if n == "a")
        );
        for bad in [
            "/v2/../etc/manifests/x",
            "/v2/a/%2e%2e/manifests/x",
            "/v2//a/manifests/x",
            "/v2/A/tags/list",
        ] {
            assert!(route(bad).is_err(), "{bad} must be NAME_INVALID");
        }
    }
}
