//! A blocking client for the OCI distribution API (v2): manifests and blobs,
//! with anonymous, Basic and bearer-token authentication, HTTPS with the
//! system roots plus per-registry CAs, and plain HTTP for insecure registries.
//!
//! One [`Client`] talks to one registry and is shared between threads (the
//! token cache is behind a mutex), so layers can be fetched in parallel.

pub mod auth;
pub mod credentials;
mod tls;

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auth::{parse_challenge, url_encode, Challenge};
use cais_oci::digest::{Algorithm, Hasher};
use cais_oci::distribution::{ManifestRefs, MANIFEST_TYPES, MAX_MANIFEST_BYTES};
pub use cais_oci::reference;
use cais_oci::Digest;
pub use credentials::{CredentialStore, Credentials};

/// The host that actually serves Docker Hub's distribution API.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// Client errors. Each says what the client was doing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{method} {url}")]
    Transport {
        method: String,
        url: String,
        #[source]
        source: Box<ureq::Transport>,
    },
    #[error("{method} {url}: unauthorized: {message}")]
    Unauthorized {
        method: String,
        url: String,
        message: String,
    },
    #[error("{what} not found in {registry}/{repository}")]
    NotFound {
        registry: String,
        repository: String,
        what: String,
    },
    #[error("{method} {url}: registry answered {status}: {message}")]
    Status {
        method: String,
        url: String,
        status: u16,
        message: String,
    },
    #[error("reading {url}")]
    Read {
        url: String,
        #[source]
        source: io::Error,
    },
    #[error("token from {realm}: {reason}")]
    Token { realm: String, reason: String },
    #[error("manifest {reference} of {repository}")]
    Manifest {
        repository: String,
        reference: String,
        #[source]
        source: cais_oci::Error,
    },
    #[error("manifest {reference} of {repository} has unsupported media type {media_type:?}")]
    UnsupportedMediaType {
        repository: String,
        reference: String,
        media_type: String,
    },
    #[error("manifest {reference} of {repository} is larger than {limit} bytes")]
    ManifestTooBig {
        repository: String,
        reference: String,
        limit: usize,
    },
    #[error("content from {url} has digest {actual}, expected {expected}")]
    DigestMismatch {
        url: String,
        expected: String,
        actual: Digest,
    },
    #[error("tls setup for {registry}")]
    Tls {
        registry: String,
        #[source]
        source: tls::Error,
    },
    #[error("blob {digest}: {reason}")]
    Upload { digest: Digest, reason: String },
    #[error("reading blob {digest} to upload")]
    Source {
        digest: Digest,
        #[source]
        source: io::Error,
    },
}

/// How to reach registries: trust and credentials.
#[derive(Debug, Clone)]
pub struct Options {
    /// Registries (`host` or `host:port`) reached over plain HTTP, or HTTPS
    /// without verification when they speak it (docker's
    /// `--insecure-registry`). `localhost`, `127.0.0.1` and `::1` always are.
    pub insecure_registries: Vec<String>,
    /// Extra CA certificates (PEM) trusted for every registry.
    pub ca_certs: Vec<PathBuf>,
    /// Per-registry CAs: `DIR/<host[:port]>/*.crt` (docker's
    /// `/etc/docker/certs.d`).
    pub certs_dir: Option<PathBuf>,
    /// Credentials; None for anonymous access.
    pub credentials: Option<Credentials>,
    pub user_agent: String,
    /// Connect timeout (reads have their own, longer one).
    pub connect_timeout: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            insecure_registries: Vec::new(),
            ca_certs: Vec::new(),
            certs_dir: Some(PathBuf::from("/etc/docker/certs.d")),
            credentials: None,
            user_agent: concat!("cais/", env!("CARGO_PKG_VERSION")).to_owned(),
            connect_timeout: Duration::from_secs(30),
        }
    }
}

/// True for registries docker reaches without TLS verification by default.
pub fn is_default_insecure(registry: &str) -> bool {
    let host = host_part(registry);
    host == "localhost" || host == "::1" || host == "127.0.0.1"
}

fn host_part(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    registry.rsplit_once(':').map_or(registry, |(h, _)| h)
}

/// A fetched manifest: bytes exactly as served, their type and digest.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
}

/// What [`Client::push_blob`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    AlreadyExists,
    Mounted,
    Uploaded,
}

struct Token {
    value: String,
    expires: Instant,
}

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    tokens: HashMap<String, Token>,
}

/// A client for one registry.
pub struct Client {
    registry: String,
    base: String,
    agent: ureq::Agent,
    credentials: Option<Credentials>,
    auth: Mutex<AuthState>,
}

enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    Reader(&'a mut dyn Read, u64),
}

/// Size above which uploads go in PATCH chunks instead of one PUT.
pub const DEFAULT_CHUNK_THRESHOLD: u64 = 256 * 1024 * 1024;

impl Client {
    /// A client for `registry` (`host[:port]`, or `docker.io`). Insecure
    /// registries are probed: HTTPS without verification when they speak
    /// it, plain HTTP otherwise.
    pub fn new(registry: &str, options: &Options) -> Result<Client, Error> {
        let registry = reference::normalize_registry(registry);
        let endpoint = if registry == reference::DOCKER_HUB {
            DOCKER_HUB_API.to_owned()
        } else {
            registry.clone()
        };
        let insecure = is_default_insecure(&registry)
            || options
                .insecure_registries
                .iter()
                .any(|r| reference::normalize_registry(r) == registry);
        let tls_err = |source| Error::Tls {
            registry: registry.clone(),
            source,
        };
        let builder = || {
            ureq::AgentBuilder::new()
                .user_agent(&options.user_agent)
                .timeout_connect(options.connect_timeout)
                .timeout_read(Duration::from_secs(300))
                .timeout_write(Duration::from_secs(300))
                .max_idle_connections_per_host(16)
                // Blob GETs may redirect to storage elsewhere, which must
                // not see our credentials: ureq drops Authorization on every
                // redirect (its default policy), and presigned URLs need none.
                .redirects(8)
        };
        let verified = tls::client_config(&registry, options).map_err(tls_err)?;
        let (base, agent) = if insecure {
            let unverified = builder().tls_config(tls::insecure_config()).build();
            let probe = format!("https://{endpoint}/v2/");
            match unverified.get(&probe).call() {
                Ok(_) | Err(ureq::Error::Status(..)) => (format!("https://{endpoint}"), unverified),
                Err(ureq::Error::Transport(_)) => (
                    format!("http://{endpoint}"),
                    builder().tls_config(verified).build(),
                ),
            }
        } else {
            (
                format!("https://{endpoint}"),
                builder().tls_config(verified).build(),
            )
        };
        Ok(Client {
            registry,
            base,
            agent,
            credentials: options.credentials.clone(),
            auth: Mutex::new(AuthState::default()),
        })
    }

    /// The registry's normalized name.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The base URL in use (`https://host:port` or `http://...`).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Checks the API is there and the credentials are accepted: the
    /// `GET /v2/` handshake `login` does. With token auth, a token without
    /// scopes is requested with the credentials, which the realm refuses
    /// when they are wrong.
    pub fn ping(&self) -> Result<(), Error> {
        let url = format!("{}/v2/", self.base);
        let resp = self.send("GET", &url, &[], &[], Body::Empty)?;
        match resp.status() {
            200..=299 => Ok(()),
            status => Err(self.status_error("GET", &url, status, resp)),
        }
    }

    fn lock_auth(&self) -> std::sync::MutexGuard<'_, AuthState> {
        // A panic while holding the lock leaves only a cache behind.
        self.auth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The Authorization header for `scopes`, from the known challenge.
    fn authorization(&self, scopes: &[String]) -> Result<Option<String>, Error> {
        let mut state = self.lock_auth();
        match state.challenge.clone() {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.credentials.as_ref().map(Credentials::basic_header)),
            Some(Challenge::Bearer { realm, service, .. }) => {
                let key = scopes.join(" ");
                if let Some(t) = state.tokens.get(&key) {
                    if t.expires > Instant::now() {
                        return Ok(Some(format!("Bearer {}", t.value)));
                    }
                }
                let token = self.fetch_token(&realm, service.as_deref(), scopes)?;
                let header = format!("Bearer {}", token.value);
                state.tokens.insert(key, token);
                Ok(Some(header))
            }
        }
    }

    /// Asks the realm for a token (Docker token spec), with Basic
    /// credentials when we have them.
    fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<Token, Error> {
        let mut url = realm.to_owned();
        let mut sep = if realm.contains('?') { '&' } else { '?' };
        if let Some(s) = service {
            url.push_str(&format!("{sep}service={}", url_encode(s)));
            sep = '&';
        }
        for scope in scopes {
            url.push_str(&format!("{sep}scope={}", url_encode(scope)));
            sep = '&';
        }
        let token_err = |reason: String| Error::Token {
            realm: realm.to_owned(),
            reason,
        };
        let mut req = self.agent.get(&url);
        if let Some(c) = &self.credentials {
            req = req.set("Authorization", &c.basic_header());
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(401, _)) => {
                return Err(Error::Unauthorized {
                    method: "GET".into(),
                    url: realm.to_owned(),
                    message: if self.credentials.is_some() {
                        "the token service refused the credentials".into()
                    } else {
                        "the token service requires credentials (cais login)".into()
                    },
                })
            }
            Err(ureq::Error::Status(code, r)) => {
                return Err(token_err(format!(
                    "status {code}: {}",
                    r.into_string().unwrap_or_default()
                )))
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(Error::Transport {
                    method: "GET".into(),
                    url: realm.to_owned(),
                    source: Box::new(t),
                })
            }
        };
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let body = read_limited(resp, 1 << 20).map_err(|e| token_err(e.to_string()))?;
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| token_err(format!("bad response: {e}")))?;
        let value = parsed
            .token
            .filter(|t| !t.is_empty())
            .or(parsed.access_token)
            .ok_or_else(|| token_err("response has no token".into()))?;
        // The spec's default lifetime is 60 s; renew a little early.
        let life = parsed.expires_in.unwrap_or(60).max(10);
        Ok(Token {
            value,
            expires: Instant::now() + Duration::from_secs(life - life / 10),
        })
    }

    /// Sends a request with authentication. A 401 teaches the client the
    /// challenge; the request is then sent once more with credentials
    /// (bodies from a reader cannot be replayed, so callers authenticate
    /// those with an earlier request on the same scope).
    fn send(
        &self,
        method: &str,
        url: &str,
        scopes: &[String],
        headers: &[(&str, &str)],
        mut body: Body<'_>,
    ) -> Result<ureq::Response, Error> {
        let mut scopes = scopes.to_vec();
        for attempt in 0..2 {
            let mut req = self.agent.request(method, url);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            let sent_auth = self.authorization(&scopes)?;
            if let Some(a) = &sent_auth {
                req = req.set("Authorization", a);
            }
            let result = match &mut body {
                Body::Empty => req.call(),
                Body::Bytes(b) => req.send_bytes(b),
                Body::Reader(r, len) => req.set("Content-Length", &len.to_string()).send(r),
            };
            let resp = match result {
                Ok(r) => r,
                Err(ureq::Error::Status(_, r)) => r,
                Err(ureq::Error::Transport(t)) => {
                    return Err(Error::Transport {
                        method: method.into(),
                        url: url.into(),
                        source: Box::new(t),
                    })
                }
            };
            if resp.status() != 401 {
                return Ok(resp);
            }
            let challenge = resp.header("WWW-Authenticate").and_then(parse_challenge);
            let replayable = !matches!(body, Body::Reader(..));
            let message = error_message(resp);
            let unauthorized = |message: String| Error::Unauthorized {
                method: method.into(),
                url: url.into(),
                message,
            };
            let Some(challenge) = challenge else {
                return Err(unauthorized(message));
            };
            let give_up = attempt == 1
                || !replayable
                || match &challenge {
                    Challenge::Basic => self.credentials.is_none() || sent_auth.is_some(),
                    Challenge::Bearer { error, .. } => {
                        sent_auth.is_some() && error.as_deref() != Some("insufficient_scope")
                    }
                };
            if give_up {
                let message = match (&challenge, &self.credentials) {
                    (_, None) => {
                        format!("{message} (no credentials: cais login {})", self.registry)
                    }
                    (Challenge::Basic, Some(_)) => {
                        format!("{message} (the registry refused the credentials)")
                    }
                    _ => message,
                };
                return Err(unauthorized(message));
            }
            let mut state = self.lock_auth();
            if let Challenge::Bearer {
                scope: Some(scope), ..
            } = &challenge
            {
                for s in scope.split(' ') {
                    if !s.is_empty() && !scopes.iter().any(|have| have == s) {
                        scopes.push(s.to_owned());
                    }
                }
            }
            state.tokens.remove(&scopes.join(" "));
            state.challenge = Some(challenge);
        }
        Err(Error::Unauthorized {
            method: method.into(),
            url: url.into(),
            message: "authentication did not converge".into(),
        })
    }

    fn status_error(&self, method: &str, url: &str, status: u16, resp: ureq::Response) -> Error {
        Error::Status {
            method: method.into(),
            url: url.into(),
            status,
            message: error_message(resp),
        }
    }

    fn not_found(&self, repository: &str, what: String) -> Error {
        Error::NotFound {
            registry: self.registry.clone(),
            repository: repository.into(),
            what,
        }
    }

    /// Fetches a manifest by tag or digest, accepting the four manifest
    /// types. The digest is computed from the bytes; a digest reference and
    /// the registry's `Docker-Content-Digest` must both match it.
    pub fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<FetchedManifest, Error> {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.base);
        let accept = MANIFEST_TYPES.join(", ");
        let resp = self.send(
            "GET",
            &url,
            &[auth::repository_scope(repository, "pull")],
            &[("Accept", &accept)],
            Body::Empty,
        )?;
        match resp.status() {
            200 => {}
            404 => return Err(self.not_found(repository, format!("manifest {reference}"))),
            s => return Err(self.status_error("GET", &url, s, resp)),
        }
        let content_type = resp.content_type().to_owned();
        let header_digest = resp.header("Docker-Content-Digest").map(str::to_owned);
        let too_big = || Error::ManifestTooBig {
            repository: repository.into(),
            reference: reference.into(),
            limit: MAX_MANIFEST_BYTES,
        };
        if resp
            .header("Content-Length")
            .and_then(|l| l.parse::<usize>().ok())
            .is_some_and(|l| l > MAX_MANIFEST_BYTES)
        {
            return Err(too_big());
        }
        let bytes = read_limited(resp, MAX_MANIFEST_BYTES).map_err(|e| match e {
            ReadLimitError::TooBig => too_big(),
            ReadLimitError::Io(source) => Error::Read {
                url: url.clone(),
                source,
            },
        })?;
        // A digest reference or `Docker-Content-Digest` must name these
        // bytes; the manifest is known by its sha256 unless the reference
        // pins another algorithm.
        let pinned = reference.parse::<Digest>().ok();
        let digest = Digest::compute(
            pinned.as_ref().map_or(Algorithm::Sha256, Digest::algorithm),
            &bytes,
        );
        let header_digest = header_digest.and_then(|h| h.parse::<Digest>().ok());
        for expected in [pinned, header_digest].into_iter().flatten() {
            let actual = Digest::compute(expected.algorithm(), &bytes);
            if actual != expected {
                return Err(Error::DigestMismatch {
                    url,
                    expected: expected.to_string(),
                    actual,
                });
            }
        }
        let media_type = media_type_of(&bytes, &content_type, &digest).map_err(|e| match e {
            TypeError::Unsupported(media_type) => Error::UnsupportedMediaType {
                repository: repository.into(),
                reference: reference.into(),
                media_type,
            },
            TypeError::Invalid(source) => Error::Manifest {
                repository: repository.into(),
                reference: reference.into(),
                source,
            },
        })?;
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// Stores a manifest under `reference` (tag or digest), bytes as given,
    /// and checks the registry computed the same digest.
    pub fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, Error> {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.base);
        let resp = self.send(
            "PUT",
            &url,
            &[auth::repository_scope(repository, "pull,push")],
            &[("Content-Type", media_type)],
            Body::Bytes(bytes),
        )?;
        let digest = Digest::sha256(bytes);
        match resp.status() {
            200..=299 => {}
            s => return Err(self.status_error("PUT", &url, s, resp)),
        }
        if let Some(h) = resp.header("Docker-Content-Digest") {
            if h != digest.to_string() {
                return Err(Error::DigestMismatch {
                    url,
                    expected: digest.to_string(),
                    actual: h.parse().unwrap_or(digest),
                });
            }
        }
        Ok(digest)
    }

    /// The blob's size when the repository has it.
    pub fn blob_exists(&self, repository: &str, digest: &Digest) -> Result<Option<u64>, Error> {
        self.blob_exists_scoped(repository, digest, "pull")
    }

    fn blob_exists_scoped(
        &self,
        repository: &str,
        digest: &Digest,
        actions: &str,
    ) -> Result<Option<u64>, Error> {
        let url = format!("{}/v2/{repository}/blobs/{digest}", self.base);
        let resp = self.send(
            "HEAD",
            &url,
            &[auth::repository_scope(repository, actions)],
            &[],
            Body::Empty,
        )?;
        match resp.status() {
            200 => Ok(Some(
                resp.header("Content-Length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0),
            )),
            404 => Ok(None),
            s => Err(self.status_error("HEAD", &url, s, resp)),
        }
    }

    /// Opens a blob for reading. The reader checks what it yields: more
    /// than `size` bytes, fewer, or other content than `digest` end it with
    /// an `InvalidData` error instead of a clean end of file.
    pub fn get_blob(
        &self,
        repository: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<BlobReader, Error> {
        let url = format!("{}/v2/{repository}/blobs/{digest}", self.base);
        let resp = self.send(
            "GET",
            &url,
            &[auth::repository_scope(repository, "pull")],
            &[],
            Body::Empty,
        )?;
        match resp.status() {
            200 => {}
            404 => return Err(self.not_found(repository, format!("blob {digest}"))),
            s => return Err(self.status_error("GET", &url, s, resp)),
        }
        Ok(BlobReader {
            inner: resp.into_reader(),
            hasher: Hasher::new(digest.algorithm()),
            expected: digest.clone(),
            size,
            read: 0,
            url,
            done: false,
            check_digest: true,
            failed: None,
        })
    }

    fn resolve_location(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            format!("{}/{location}", self.base)
        }
    }

    /// Pushes one blob unless the repository has it: a cross-repository
    /// mount from `mount_from` when given, else an upload (one PUT, or PATCH
    /// chunks of `chunk_size` for blobs larger than that). `open` gives the
    /// content from the start; it is called at most once per attempt.
    pub fn push_blob<'r>(
        &self,
        repository: &str,
        digest: &Digest,
        size: u64,
        mount_from: Option<&str>,
        chunk_size: u64,
        open: &mut dyn FnMut() -> io::Result<Box<dyn Read + 'r>>,
    ) -> Result<PushOutcome, Error> {
        if self
            .blob_exists_scoped(repository, digest, "pull,push")?
            .is_some()
        {
            return Ok(PushOutcome::AlreadyExists);
        }
        let mut scopes = vec![auth::repository_scope(repository, "pull,push")];
        let mut url = format!("{}/v2/{repository}/blobs/uploads/", self.base);
        if let Some(from) = mount_from.filter(|f| *f != repository) {
            url.push_str(&format!(
                "?mount={digest}&from={}",
                url_encode(from).replace("%2F", "/")
            ));
            scopes.push(auth::repository_scope(from, "pull"));
        }
        let resp = self.send(
            "POST",
            &url,
            &scopes,
            &[("Content-Length", "0")],
            Body::Empty,
        )?;
        match resp.status() {
            201 => return Ok(PushOutcome::Mounted),
            202 => {}
            s => return Err(self.status_error("POST", &url, s, resp)),
        }
        let upload_err = |reason: String| Error::Upload {
            digest: digest.clone(),
            reason,
        };
        let mut location = self.resolve_location(
            resp.header("Location")
                .ok_or_else(|| upload_err("upload started without a Location".into()))?,
        );
        let source_err = |source| Error::Source {
            digest: digest.clone(),
            source,
        };
        let mut reader = open().map_err(source_err)?;
        let scopes = &scopes[..1];
        let with_digest = |loc: &str| {
            let sep = if loc.contains('?') { '&' } else { '?' };
            format!("{loc}{sep}digest={digest}")
        };
        if size > chunk_size && chunk_size > 0 {
            let mut offset = 0u64;
            while offset < size {
                let len = chunk_size.min(size - offset);
                let mut chunk = (&mut reader).take(len);
                let range = format!("{offset}-{}", offset + len - 1);
                let resp = self.send(
                    "PATCH",
                    &location,
                    scopes,
                    &[
                        ("Content-Type", "application/octet-stream"),
                        ("Content-Range", &range),
                    ],
                    Body::Reader(&mut chunk, len),
                )?;
                if resp.status() != 202 {
                    let s = resp.status();
                    return Err(self.status_error("PATCH", &location, s, resp));
                }
                if let Some(l) = resp.header("Location") {
                    location = self.resolve_location(l);
                }
                offset += len;
            }
            let put = with_digest(&location);
            let resp = self.send("PUT", &put, scopes, &[("Content-Length", "0")], Body::Empty)?;
            return match resp.status() {
                201 | 204 => Ok(PushOutcome::Uploaded),
                s => Err(self.status_error("PUT", &put, s, resp)),
            };
        }
        let put = with_digest(&location);
        let resp = self.send(
            "PUT",
            &put,
            scopes,
            &[("Content-Type", "application/octet-stream")],
            Body::Reader(&mut reader, size),
        )?;
        match resp.status() {
            201 | 204 => Ok(PushOutcome::Uploaded),
            s => Err(self.status_error("PUT", &put, s, resp)),
        }
    }
}

/// A blob's content as it arrives, checked against its descriptor.
pub struct BlobReader {
    inner: Box<dyn Read + Send + Sync + 'static>,
    hasher: Hasher,
    expected: Digest,
    size: u64,
    read: u64,
    url: String,
    done: bool,
    check_digest: bool,
    /// The first failure, returned again on every later read, so a
    /// consumer that reads on after an error sees the real cause.
    failed: Option<(io::ErrorKind, String)>,
}

impl BlobReader {
    /// Leaves the digest check to the consumer, which hashes the bytes
    /// anyway (a content store writer): the size is still checked.
    pub fn trust_digest_to_consumer(&mut self) {
        self.check_digest = false;
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// Reads to the end, so the checks run even if the consumer stopped
    /// early (a tar reader stops at its end-of-archive blocks).
    pub fn drain(&mut self) -> io::Result<u64> {
        io::copy(self, &mut io::sink())
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some((kind, message)) = &self.failed {
            return Err(io::Error::new(*kind, message.clone()));
        }
        let result = self.read_checked(buf);
        if let Err(e) = &result {
            self.failed = Some((e.kind(), e.to_string()));
        }
        result
    }
}

impl BlobReader {
    fn read_checked(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            if self.read != self.size {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "blob {} from {} ended after {} of {} bytes",
                        self.expected, self.url, self.read, self.size
                    ),
                ));
            }
            let actual = self.hasher.clone().finish();
            if self.check_digest && actual != self.expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "blob from {} has digest {actual}, expected {}",
                        self.url, self.expected
                    ),
                ));
            }
            self.done = true;
            return Ok(0);
        }
        self.read += n as u64;
        if self.read > self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "blob {} from {} is longer than its {} bytes",
                    self.expected, self.url, self.size
                ),
            ));
        }
        if self.check_digest {
            self.hasher.update(&buf[..n]);
        }
        Ok(n)
    }
}

enum ReadLimitError {
    TooBig,
    Io(io::Error),
}

impl std::fmt::Display for ReadLimitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadLimitError::TooBig => f.write_str("response too large"),
            ReadLimitError::Io(e) => e.fmt(f),
        }
    }
}

fn read_limited(resp: ureq::Response, limit: usize) -> Result<Vec<u8>, ReadLimitError> {
    let mut out = Vec::new();
    resp.into_reader()
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(ReadLimitError::Io)?;
    if out.len() > limit {
        return Err(ReadLimitError::TooBig);
    }
    Ok(out)
}

/// The message of a distribution error body (`{"errors":[{code,message}]}`),
/// or the start of whatever else was sent.
fn error_message(resp: ureq::Response) -> String {
    let status = resp.status_text().to_owned();
    let body = read_limited(resp, 64 * 1024).unwrap_or_default();
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        code: Option<String>,
        message: Option<String>,
    }
    if let Ok(e) = serde_json::from_slice::<Errors>(&body) {
        let parts: Vec<String> = e
            .errors
            .iter()
            .map(|e| match (&e.code, &e.message) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.clone(),
                (None, Some(m)) => m.clone(),
                (None, None) => "unknown error".into(),
            })
            .collect();
        if !parts.is_empty() {
            return parts.join("; ");
        }
    }
    let text = String::from_utf8_lossy(&body);
    let text = text.trim();
    if text.is_empty() {
        status
    } else {
        text.chars().take(200).collect()
    }
}

/// Why a fetched manifest's type could not be settled.
#[derive(Debug)]
enum TypeError {
    Unsupported(String),
    Invalid(cais_oci::Error),
}

/// The media type of a fetched manifest: the served `Content-Type` when it
/// is a manifest type, else the body's own `mediaType`, else its shape.
/// The body is checked as the registry checks a push (schema 2,
/// descriptors well formed, matching types).
fn media_type_of(bytes: &[u8], content_type: &str, digest: &Digest) -> Result<String, TypeError> {
    let served = content_type.split(';').next().unwrap_or("").trim();
    let header = MANIFEST_TYPES.contains(&served).then_some(served);
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
    }
    if let Ok(Probe {
        media_type: Some(t),
    }) = serde_json::from_slice::<Probe>(bytes)
    {
        if !MANIFEST_TYPES.contains(&t.as_str()) {
            return Err(TypeError::Unsupported(t));
        }
    } else if header.is_none()
        && !served.is_empty()
        && !["application/json", "text/plain", "application/octet-stream"].contains(&served)
    {
        return Err(TypeError::Unsupported(served.to_owned()));
    }
    ManifestRefs::parse(bytes, header, digest)
        .map(|m| m.media_type)
        .map_err(TypeError::Invalid)
}

/// Shared handle, for threads.
pub type SharedClient = Arc<Client>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_defaults() {
        for r in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:1",
            "127.0.0.1",
            "[::1]:5000",
        ] {
            assert!(is_default_insecure(r), "{r}");
        }
        for r in [
            "docker.io",
            "example.com:5000",
            "10.0.0.1:5000",
            "127.0.0.2:5000",
        ] {
            assert!(!is_default_insecure(r), "{r}");
        }
    }

    #[test]
    fn blob_reader_checks() {
        let data = b"hello world".to_vec();
        let d = Digest::sha256(&data);
        let reader = |body: Vec<u8>, size: u64| BlobReader {
            inner: Box::new(io::Cursor::new(body)),
            hasher: Hasher::new(d.algorithm()),
            expected: d.clone(),
            size,
            read: 0,
            url: "u".into(),
            done: false,
            check_digest: true,
            failed: None,
        };
        let mut ok = reader(data.clone(), data.len() as u64);
        let mut out = Vec::new();
        ok.read_to_end(&mut out).expect("good blob");
        assert_eq!(out, data);
        let mut short = reader(data[..5].to_vec(), data.len() as u64);
        assert!(short.drain().is_err(), "truncated");
        let mut long = reader(data.clone(), 5);
        assert!(long.drain().is_err(), "too long");
        let mut bad = reader(b"hello wOrld".to_vec(), data.len() as u64);
        let e = bad.drain().expect_err("corrupt");
        assert!(e.to_string().contains("expected"), "{e}");
        // sha512 blobs are checked with sha512.
        let d512 = Digest::compute(Algorithm::Sha512, &data);
        let mut ok512 = BlobReader {
            hasher: Hasher::new(Algorithm::Sha512),
            expected: d512,
            ..reader(data.clone(), data.len() as u64)
        };
        assert_eq!(ok512.drain().expect("good sha512 blob"), data.len() as u64);
    }

    #[test]
    fn media_types() {
        let m = serde_json::json!({
            "schemaVersion": 2, "mediaType": cais_oci::image::OCI_MANIFEST,
            "config": {"mediaType": "x", "digest": format!("sha256:{}", "a".repeat(64)), "size": 1},
            "layers": []
        })
        .to_string();
        let oci = cais_oci::image::OCI_MANIFEST;
        let d = Digest::sha256(m.as_bytes());
        assert_eq!(media_type_of(m.as_bytes(), oci, &d).expect("oci"), oci);
        assert_eq!(
            media_type_of(m.as_bytes(), "application/json", &d).expect("json"),
            oci
        );
        assert!(matches!(
            media_type_of(b"{not json", oci, &d),
            Err(TypeError::Invalid(_))
        ));
        let odd = m.replace(oci, "application/vnd.example+json");
        assert!(matches!(
            media_type_of(odd.as_bytes(), "application/vnd.example+json", &d),
            Err(TypeError::Unsupported(_))
        ));
        assert!(matches!(
            media_type_of(b"{}", "application/vnd.other", &d),
            Err(TypeError::Unsupported(_))
        ));
    }
}
