//! The HTTP side: listener, TLS, routing, handlers, access log, shutdown.
//!
//! Endpoints follow the OCI distribution spec's endpoint table (end-1 ..
//! end-13). Every error leaves through `ApiError`, the one place that maps
//! failures to a status and the spec's `{"errors":[...]}` body.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{self, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::net::TcpListener;

use crate::auth::{Action, Auth, Identity, Mode};
use crate::distribution::{
    validate_name, Digest, ErrorCode, Manifest, Reference, MAX_MANIFEST_BYTES, OCI_INDEX,
};
use crate::storage::{self, Storage};

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
    hasher: Option<(Sha256, u64)>,
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

fn parse_digest(s: &str) -> Result<Digest, ApiError> {
    s.parse().map_err(|e: crate::distribution::Error| {
        ApiError::new(ErrorCode::DigestInvalid, e.to_string())
    })
}

/// Runs the server until SIGTERM or SIGINT.
pub fn serve(config: Config) -> Result<(), anyhow::Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve_async(config))
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
    // Tests and scripts read this line to learn the port of `--addr ...:0`.
    println!("listening on {local}");
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
                    log_event("accept failed", &e.to_string());
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
            let service = hyper::service::service_fn(move |req| {
                let app = app.clone();
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
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(conn).await;
                }
            }
        });
    }
    log_event("shutting down", "draining connections");
    drop(listener);
    if tokio::time::timeout(config.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        log_event(
            "shutdown",
            "grace period over, closing remaining connections",
        );
    }
    Ok(())
}

async fn run_gc(storage: Arc<Storage>, grace: Duration) {
    let result =
        tokio::task::spawn_blocking(move || crate::gc::collect(&storage, grace, false)).await;
    match result {
        Ok(Ok(report)) => log_event(
            "gc",
            &format!(
                "marked {} deleted {} freed {} bytes",
                report.marked,
                report.deleted.len(),
                report.bytes_freed
            ),
        ),
        Ok(Err(e)) => log_event("gc failed", &format!("{:#}", anyhow::Error::new(e))),
        Err(e) => log_event("gc failed", &e.to_string()),
    }
}

fn log_event(event: &str, detail: &str) {
    eprintln!(
        "{}",
        json!({"time": unix_time(), "event": event, "detail": detail})
    );
}

fn unix_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
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
    eprintln!(
        "{}",
        json!({
            "time": unix_time(),
            "remote": remote.to_string(),
            "user": user,
            "method": method.as_str(),
            "path": path,
            "status": status,
            "length": length,
            "ms": started.elapsed().as_secs_f64() * 1000.0,
        })
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
            put_manifest(app, name, reference, req).await
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

/// `n`/`last` pagination shared by the catalog and tag list (spec
/// "Listing Tags": results are lexically sorted, `last` is exclusive, and a
/// `Link` header points at the next page).
fn paginate(
    items: Vec<String>,
    params: &[(String, String)],
    base: &str,
) -> Result<(Vec<String>, Option<String>), ApiError> {
    let last = param(params, "last");
    let n = match param(params, "n") {
        Some(v) => Some(v.parse::<usize>().map_err(|_| {
            ApiError::new(ErrorCode::Unsupported, "n must be a non-negative integer")
                .status(StatusCode::BAD_REQUEST)
        })?),
        None => None,
    };
    let mut items: Vec<String> = match last {
        Some(last) => items.into_iter().filter(|t| t.as_str() > last).collect(),
        None => items,
    };
    let mut link = None;
    if let Some(n) = n {
        if items.len() > n {
            items.truncate(n);
            if let Some(l) = items.last() {
                link = Some(format!("<{base}?n={n}&last={l}>; rel=\"next\""));
            }
        }
    }
    Ok((items, link))
}

async fn catalog(app: &App, params: &[(String, String)]) -> ApiResult {
    let storage = app.storage.clone();
    let repos = blocking(move || storage.catalog()).await?;
    let (repos, link) = paginate(repos, params, "/v2/_catalog")?;
    let mut resp = json_response(StatusCode::OK, json!({"repositories": repos}).to_string());
    if let Some(link) = link {
        resp.headers_mut().insert("Link", header_value(&link));
    }
    Ok(resp)
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

async fn tags(app: &App, name: String, params: &[(String, String)]) -> ApiResult {
    let storage = app.storage.clone();
    let n = name.clone();
    let (exists, tags) = blocking(move || Ok((storage.repo_exists(&n), storage.tags(&n)?))).await?;
    if !exists {
        return Err(ApiError::new(
            ErrorCode::NameUnknown,
            format!("repository {name} not known to registry"),
        ));
    }
    let (tags, link) = paginate(tags, params, &format!("/v2/{name}/tags/list"))?;
    let mut resp = json_response(
        StatusCode::OK,
        json!({"name": name, "tags": tags}).to_string(),
    );
    if let Some(link) = link {
        resp.headers_mut().insert("Link", header_value(&link));
    }
    Ok(resp)
}

fn manifest_unknown(name: &str, reference: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ManifestUnknown,
        format!("manifest {reference} unknown to repository {name}"),
    )
}

async fn resolve(
    app: &App,
    name: &str,
    reference: &str,
) -> Result<Option<(Digest, String)>, ApiError> {
    let reference: Reference =
        reference
            .parse()
            .map_err(|e: crate::distribution::Error| match e {
                crate::distribution::Error::InvalidTag { .. } => {
                    ApiError::new(ErrorCode::ManifestInvalid, e.to_string())
                }
                _ => ApiError::new(ErrorCode::DigestInvalid, e.to_string()),
            })?;
    let storage = app.storage.clone();
    let name = name.to_owned();
    blocking(move || {
        let digest = match reference {
            Reference::Digest(d) => d,
            Reference::Tag(t) => match storage.resolve_tag(&name, &t)? {
                Some(d) => d,
                None => return Ok(None),
            },
        };
        Ok(storage.manifest_type(&name, &digest)?.map(|t| (digest, t)))
    })
    .await
}

async fn get_manifest(app: &App, name: String, reference: String, head: bool) -> ApiResult {
    let Some((digest, media_type)) = resolve(app, &name, &reference).await? else {
        if !app.storage.repo_exists(&name) {
            return Err(ApiError::new(
                ErrorCode::NameUnknown,
                format!("repository {name} not known to registry"),
            )
            .status(StatusCode::NOT_FOUND));
        }
        return Err(manifest_unknown(&name, &reference));
    };
    let storage = app.storage.clone();
    let d = digest.clone();
    let body = blocking(move || storage.read_blob(&d)).await?;
    let builder = Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, media_type)
        .header(CONTENT_LENGTH, body.len())
        .header("Docker-Content-Digest", digest.to_string())
        .header("ETag", format!("\"{digest}\""));
    let body = if head { empty() } else { full(body) };
    builder.body(body).map_err(ApiError::internal)
}

async fn read_limited(
    req: Request<Incoming>,
    limit: usize,
    timeout: Duration,
) -> Result<(Bytes, Option<String>), ApiError> {
    let too_big = || {
        ApiError::new(
            ErrorCode::SizeInvalid,
            format!("body larger than {limit} bytes"),
        )
        .status(StatusCode::PAYLOAD_TOO_LARGE)
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|d| d > limit as u64) {
        return Err(too_big());
    }
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = req.into_body();
    let mut buf = Vec::new();
    loop {
        let frame = tokio::time::timeout(timeout, body.frame())
            .await
            .map_err(|_| {
                ApiError::new(ErrorCode::BlobUploadInvalid, "timed out reading the body")
            })?;
        let Some(frame) = frame else { break };
        let frame = frame
            .map_err(|e| ApiError::new(ErrorCode::ManifestInvalid, format!("reading body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(too_big());
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok((Bytes::from(buf), content_type))
}

async fn put_manifest(
    app: &App,
    name: String,
    reference: String,
    req: Request<Incoming>,
) -> ApiResult {
    let reference: Reference =
        reference
            .parse()
            .map_err(|e: crate::distribution::Error| match e {
                crate::distribution::Error::InvalidTag { .. } => {
                    ApiError::new(ErrorCode::ManifestInvalid, e.to_string())
                }
                _ => ApiError::new(ErrorCode::DigestInvalid, e.to_string()),
            })?;
    let (body, content_type) = read_limited(req, MAX_MANIFEST_BYTES, app.config.timeout).await?;
    let manifest = Manifest::parse(&body, content_type.as_deref())
        .map_err(|e| ApiError::new(ErrorCode::ManifestInvalid, e.to_string()))?;
    let actual = Digest::of(&body);
    let tag = match &reference {
        Reference::Digest(d) if d != &actual => {
            return Err(ApiError::new(
                ErrorCode::DigestInvalid,
                format!("manifest digest {actual} does not match reference {d}"),
            ))
        }
        Reference::Digest(_) => None,
        Reference::Tag(t) => Some(t.clone()),
    };
    let storage = app.storage.clone();
    let n = name.clone();
    let m = manifest.clone();
    let stored = blocking(move || storage.put_manifest(&n, &body, &m, tag.as_deref())).await?;
    let digest = match stored {
        Ok(d) => d,
        Err(missing) => {
            return Err(ApiError::new(
                ErrorCode::ManifestBlobUnknown,
                format!("manifest references {missing}, which is not in repository {name}"),
            ))
        }
    };
    let mut builder = Response::builder()
        .status(StatusCode::CREATED)
        .header(LOCATION, format!("/v2/{name}/manifests/{digest}"))
        .header("Docker-Content-Digest", digest.to_string())
        .header(CONTENT_LENGTH, 0);
    if let Some(subject) = &manifest.subject {
        // Spec "Pushing Manifests with Subject": tells the client the
        // referrers API indexed it, so no fallback tag is needed.
        builder = builder.header("OCI-Subject", subject.to_string());
    }
    builder.body(empty()).map_err(ApiError::internal)
}

async fn delete_manifest(app: &App, name: String, reference: String) -> ApiResult {
    let reference: Reference = reference.parse().map_err(|e: crate::distribution::Error| {
        ApiError::new(ErrorCode::DigestInvalid, e.to_string())
    })?;
    let storage = app.storage.clone();
    let n = name.clone();
    let deleted = blocking(move || match reference {
        Reference::Digest(d) => storage.delete_manifest(&n, &d),
        // Spec 1.1 "Deleting Tags": DELETE on a tag removes the tag only.
        Reference::Tag(t) => storage.delete_tag(&n, &t),
    })
    .await?;
    if !deleted {
        return Err(ApiError::new(
            ErrorCode::ManifestUnknown,
            format!("manifest unknown to repository {name}"),
        ));
    }
    Response::builder()
        .status(StatusCode::ACCEPTED)
        .header(CONTENT_LENGTH, 0)
        .body(empty())
        .map_err(ApiError::internal)
}

fn blob_unknown(digest: &Digest) -> ApiError {
    ApiError::new(
        ErrorCode::BlobUnknown,
        format!("blob {digest} unknown to registry"),
    )
}

/// Parses `Range: bytes=start-end` (RFC 9110 14.1.2), one range only.
fn parse_range(header: &str, size: u64) -> Option<(u64, u64)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    let (start, end) = if start.is_empty() {
        let suffix: u64 = end.parse().ok()?;
        if suffix == 0 {
            return None;
        }
        (size.saturating_sub(suffix), size.checked_sub(1)?)
    } else {
        let start: u64 = start.parse().ok()?;
        let end: u64 = if end.is_empty() {
            size.checked_sub(1)?
        } else {
            end.parse::<u64>().ok()?.min(size.checked_sub(1)?)
        };
        (start, end)
    };
    (start <= end && end < size).then_some((start, end))
}

async fn get_blob(
    app: &App,
    name: String,
    digest: String,
    req: &Request<Incoming>,
    head: bool,
) -> ApiResult {
    let digest = parse_digest(&digest)?;
    let storage = app.storage.clone();
    let (n, d) = (name.clone(), digest.clone());
    let Some(size) = blocking(move || storage.blob_size(&n, &d)).await? else {
        return Err(blob_unknown(&digest));
    };
    let range = req
        .headers()
        .get(hyper::header::RANGE)
        .and_then(|v| v.to_str().ok());
    let (status, start, end) = match range {
        None => (StatusCode::OK, 0, size.saturating_sub(1)),
        Some(r) => match parse_range(r, size) {
            Some((s, e)) => (StatusCode::PARTIAL_CONTENT, s, e),
            None => {
                return Err(ApiError::new(
                    ErrorCode::RangeInvalid,
                    "requested range not satisfiable",
                )
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header("Content-Range", format!("bytes */{size}")))
            }
        },
    };
    let length = if size == 0 { 0 } else { end - start + 1 };
    let mut builder = Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(CONTENT_LENGTH, length)
        .header("Docker-Content-Digest", digest.to_string())
        .header("Accept-Ranges", "bytes")
        .header("ETag", format!("\"{digest}\""));
    if status == StatusCode::PARTIAL_CONTENT {
        builder = builder.header("Content-Range", format!("bytes {start}-{end}/{size}"));
    }
    if head || length == 0 {
        return builder.body(empty()).map_err(ApiError::internal);
    }
    let path = app.storage.blob_path(&digest);
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| blob_unknown(&digest))?;
    if start > 0 {
        file.seek(SeekFrom::Start(start))
            .await
            .map_err(ApiError::internal)?;
    }
    let stream = tokio_util::io::ReaderStream::with_capacity(file.take(length), 256 * 1024);
    let body = StreamBody::new(stream.map_ok(Frame::data)).boxed();
    builder.body(body).map_err(ApiError::internal)
}

async fn delete_blob(app: &App, name: String, digest: String) -> ApiResult {
    let digest = parse_digest(&digest)?;
    let storage = app.storage.clone();
    let d = digest.clone();
    if !blocking(move || storage.unlink_blob(&name, &d)).await? {
        return Err(blob_unknown(&digest));
    }
    Response::builder()
        .status(StatusCode::ACCEPTED)
        .header(CONTENT_LENGTH, 0)
        .body(empty())
        .map_err(ApiError::internal)
}

fn upload_response(status: StatusCode, name: &str, id: &str, offset: u64) -> ApiResult {
    // Range is inclusive; with nothing received the spec's examples and
    // common registries send 0-0.
    let end = offset.saturating_sub(1);
    Response::builder()
        .status(status)
        .header(LOCATION, format!("/v2/{name}/blobs/uploads/{id}"))
        .header("Range", format!("0-{end}"))
        .header("Docker-Upload-UUID", id)
        .header(CONTENT_LENGTH, 0)
        .body(empty())
        .map_err(ApiError::internal)
}

fn blob_created(name: &str, digest: &Digest) -> ApiResult {
    Response::builder()
        .status(StatusCode::CREATED)
        .header(LOCATION, format!("/v2/{name}/blobs/{digest}"))
        .header("Docker-Content-Digest", digest.to_string())
        .header(CONTENT_LENGTH, 0)
        .body(empty())
        .map_err(ApiError::internal)
}

async fn start_upload(
    app: &App,
    name: String,
    params: &[(String, String)],
    from_allowed: bool,
    req: Request<Incoming>,
) -> ApiResult {
    if let Some(mount) = param(params, "mount") {
        let digest = parse_digest(mount)?;
        // Spec "Mounting a blob from another repository": if the mount
        // cannot happen (no `from`, unknown blob, no pull right on `from`)
        // the registry falls back to opening an upload session.
        if let Some(from) = param(params, "from").filter(|_| from_allowed) {
            if validate_name(from).is_ok() {
                let storage = app.storage.clone();
                let (n, f, d) = (name.clone(), from.to_owned(), digest.clone());
                if blocking(move || storage.mount_blob(&n, &f, &d)).await? {
                    return blob_created(&name, &digest);
                }
            }
        }
    }
    let expected = param(params, "digest").map(parse_digest).transpose()?;
    let storage = app.storage.clone();
    let n = name.clone();
    let id = blocking(move || storage.start_upload(&n)).await?;
    match expected {
        None => upload_response(StatusCode::ACCEPTED, &name, &id, 0),
        Some(expected) => {
            // Monolithic POST: the whole blob is the body.
            append_body(app, &name, &id, req, None).await?;
            commit(app, &name, &id, &expected).await
        }
    }
}

fn upload_lock(app: &App, id: &str) -> Arc<tokio::sync::Mutex<UploadHash>> {
    let mut map = app.uploads.lock().unwrap_or_else(|p| p.into_inner());
    map.entry(id.to_owned()).or_default().clone()
}

fn forget_upload(app: &App, id: &str) {
    app.uploads
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(id);
}

/// Appends a request body to an upload, hashing as it goes. Whatever
/// arrived before a failure stays (it is a correct prefix), so the client
/// can ask for the offset and resume.
async fn append_body(
    app: &App,
    name: &str,
    id: &str,
    req: Request<Incoming>,
    start: Option<u64>,
) -> Result<u64, ApiError> {
    let lock = upload_lock(app, id);
    let mut state = lock.lock().await;
    let storage = app.storage.clone();
    let (n, i) = (name.to_owned(), id.to_owned());
    let path = blocking(move || storage.upload_data(&n, &i)).await?;
    let mut file = std::fs::File::options()
        .append(true)
        .open(&path)
        .map_err(|_| ApiError::new(ErrorCode::BlobUploadUnknown, "upload unknown"))?;
    let offset = file.metadata().map_err(ApiError::internal)?.len();
    if let Some(start) = start {
        if start != offset {
            return Err(ApiError::new(
                ErrorCode::RangeInvalid,
                format!("upload is at offset {offset}, chunk starts at {start}"),
            )
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .header(LOCATION.as_str(), format!("/v2/{name}/blobs/uploads/{id}"))
            .header("Range", format!("0-{}", offset.saturating_sub(1))));
        }
    }
    let (mut hasher, mut written) = match state.hasher.take() {
        Some((h, w)) if w == offset => (h, w),
        _ => {
            let storage = app.storage.clone();
            let (n, i) = (name.to_owned(), id.to_owned());
            blocking(move || storage.hash_upload(&n, &i)).await?
        }
    };
    let limit = app.config.max_blob_bytes;
    let mut body = req.into_body();
    let mut pending: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut failure = None;
    loop {
        let frame = match tokio::time::timeout(app.config.timeout, body.frame()).await {
            Err(_) => {
                failure = Some(ApiError::new(
                    ErrorCode::BlobUploadInvalid,
                    "timed out reading the upload body",
                ));
                None
            }
            Ok(None) => None,
            Ok(Some(Err(e))) => {
                failure = Some(ApiError::new(
                    ErrorCode::BlobUploadInvalid,
                    format!("reading the upload body: {e}"),
                ));
                None
            }
            Ok(Some(Ok(frame))) => Some(frame),
        };
        let done = frame.is_none();
        if let Some(data) = frame.and_then(|f| f.into_data().ok()) {
            if limit.is_some_and(|l| written + (pending.len() + data.len()) as u64 > l) {
                failure = Some(
                    ApiError::new(
                        ErrorCode::SizeInvalid,
                        "blob larger than the registry accepts",
                    )
                    .status(StatusCode::PAYLOAD_TOO_LARGE),
                );
            } else {
                pending.extend_from_slice(&data);
            }
        }
        if !pending.is_empty() && (done || failure.is_some() || pending.len() >= 1 << 20) {
            // Hash and write a megabyte at a time on a blocking-capable
            // thread: both are CPU or disk work the reactor should not do.
            let result = tokio::task::block_in_place(|| {
                file.write_all(&pending)?;
                hasher.update(&pending);
                Ok::<_, io::Error>(())
            });
            if let Err(e) = result {
                // The file may hold part of this buffer: let the next
                // request rehash from disk.
                return Err(ApiError::internal(e));
            }
            written += pending.len() as u64;
            pending.clear();
        }
        if done || failure.is_some() {
            break;
        }
    }
    state.hasher = Some((hasher, written));
    if let Some(f) = failure {
        if f.status == StatusCode::PAYLOAD_TOO_LARGE {
            // An oversized blob can never complete: drop it so nothing stays.
            drop(state);
            forget_upload(app, id);
            let storage = app.storage.clone();
            let (n, i) = (name.to_owned(), id.to_owned());
            let _ = blocking(move || storage.cancel_upload(&n, &i)).await;
        }
        return Err(f);
    }
    Ok(written)
}

async fn commit(app: &App, name: &str, id: &str, expected: &Digest) -> ApiResult {
    let lock = upload_lock(app, id);
    let mut state = lock.lock().await;
    let storage = app.storage.clone();
    let (n, i) = (name.to_owned(), id.to_owned());
    let offset = blocking(move || storage.upload_offset(&n, &i)).await?;
    let hasher = match state.hasher.take() {
        Some((h, w)) if w == offset => h,
        _ => {
            let storage = app.storage.clone();
            let (n, i) = (name.to_owned(), id.to_owned());
            blocking(move || storage.hash_upload(&n, &i)).await?.0
        }
    };
    let actual = Digest::from_sha256(&hasher.finalize());
    let storage = app.storage.clone();
    let (n, i, e) = (name.to_owned(), id.to_owned(), expected.clone());
    let result = blocking(move || storage.commit_upload(&n, &i, &e, actual)).await;
    drop(state);
    forget_upload(app, id);
    result?;
    blob_created(name, expected)
}

async fn upload_status(app: &App, name: String, id: String) -> ApiResult {
    let storage = app.storage.clone();
    let (n, i) = (name.clone(), id.clone());
    let offset = blocking(move || storage.upload_offset(&n, &i)).await?;
    upload_response(StatusCode::NO_CONTENT, &name, &id, offset)
}

async fn patch_upload(app: &App, name: String, id: String, req: Request<Incoming>) -> ApiResult {
    // Content-Range on PATCH is `start-end` (no unit), spec "Pushing a blob
    // in chunks"; the start must be the current offset.
    let start = match req
        .headers()
        .get("Content-Range")
        .and_then(|v| v.to_str().ok())
    {
        None => None,
        Some(r) => {
            let r = r
                .trim()
                .trim_start_matches("bytes ")
                .trim_start_matches("bytes=");
            let start = r.split_once('-').and_then(|(s, _)| s.parse::<u64>().ok());
            match start {
                Some(s) => Some(s),
                None => {
                    return Err(
                        ApiError::new(ErrorCode::RangeInvalid, "malformed Content-Range")
                            .status(StatusCode::RANGE_NOT_SATISFIABLE),
                    )
                }
            }
        }
    };
    let offset = append_body(app, &name, &id, req, start).await?;
    upload_response(StatusCode::ACCEPTED, &name, &id, offset)
}

async fn finish_upload(
    app: &App,
    name: String,
    id: String,
    params: &[(String, String)],
    req: Request<Incoming>,
) -> ApiResult {
    let Some(digest) = param(params, "digest") else {
        return Err(ApiError::new(
            ErrorCode::DigestInvalid,
            "digest query parameter required",
        ));
    };
    let digest = parse_digest(digest)?;
    append_body(app, &name, &id, req, None).await?;
    commit(app, &name, &id, &digest).await
}

async fn cancel_upload(app: &App, name: String, id: String) -> ApiResult {
    let lock = upload_lock(app, &id);
    let _state = lock.lock().await;
    let storage = app.storage.clone();
    let (n, i) = (name, id.clone());
    blocking(move || storage.cancel_upload(&n, &i)).await?;
    forget_upload(app, &id);
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(empty())
        .map_err(ApiError::internal)
}

async fn referrers(
    app: &App,
    name: String,
    digest: String,
    params: &[(String, String)],
) -> ApiResult {
    let digest = parse_digest(&digest)?;
    let storage = app.storage.clone();
    let mut list = blocking(move || storage.referrers(&name, &digest)).await?;
    let filter = param(params, "artifactType").map(str::to_owned);
    if let Some(t) = &filter {
        list.retain(|d| d.artifact_type.as_deref() == Some(t.as_str()));
    }
    let body = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list}).to_string();
    let mut resp = Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, OCI_INDEX)
        .header(CONTENT_LENGTH, body.len());
    if filter.is_some() {
        resp = resp.header("OCI-Filters-Applied", "artifactType");
    }
    resp.body(full(body)).map_err(ApiError::internal)
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

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=50-500", 100), Some((50, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-1", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }

    #[test]
    fn pagination() {
        let items: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let (page, link) = paginate(items.clone(), &[("n".into(), "2".into())], "/x").expect("ok");
        assert_eq!(page, ["a", "b"]);
        assert_eq!(link.as_deref(), Some("</x?n=2&last=b>; rel=\"next\""));
        let (page, link) = paginate(
            items,
            &[("n".into(), "2".into()), ("last".into(), "b".into())],
            "/x",
        )
        .expect("ok");
        assert_eq!(page, ["c", "d"]);
        assert_eq!(link, None);
    }
}
