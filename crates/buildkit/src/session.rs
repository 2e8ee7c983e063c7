//! Sessions: the connections clients open with `POST /session`, on which
//! the daemon is the gRPC client and the client serves its local files
//! (FileSync), registry credentials (Auth) and more. A solve names its
//! session by id; the session may connect after the solve arrives, so
//! lookups wait a while. A session is gone when its connection closes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::proto::filesync;
use crate::wire::{origin, Channel};
use crate::Error;

/// What a client says of its session in the upgrade request's headers.
#[derive(Debug, Clone, Default)]
pub struct SessionHeaders {
    /// `X-Docker-Expose-Session-Uuid`.
    pub id: String,
    /// `X-Docker-Expose-Session-Sharedkey` (a hint for caches; unused).
    pub shared_key: String,
    /// `X-Docker-Expose-Session-Grpc-Method`, one per method the client
    /// serves (`/moby.filesync.v1.FileSync/DiffCopy`).
    pub methods: Vec<String>,
}

impl SessionHeaders {
    /// From an HTTP header map (several `...-Grpc-Method` lines, or one
    /// with commas).
    pub fn from_headers(h: &http::HeaderMap) -> SessionHeaders {
        let one = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        SessionHeaders {
            id: one("X-Docker-Expose-Session-Uuid"),
            shared_key: one("X-Docker-Expose-Session-Sharedkey"),
            methods: h
                .get_all("X-Docker-Expose-Session-Grpc-Method")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .collect(),
        }
    }
}

/// One connected session.
pub(crate) struct Session {
    pub id: String,
    methods: HashSet<String>,
    channel: Channel,
    closed: watch::Receiver<bool>,
}

pub(crate) const DIFF_COPY: &str = "/moby.filesync.v1.FileSync/DiffCopy";
const CREDENTIALS: &str = "/moby.filesync.v1.Auth/Credentials";

impl Session {
    pub fn supports(&self, method: &str) -> bool {
        self.methods.contains(&method.to_ascii_lowercase())
    }

    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Resolves once the session's connection has closed.
    pub async fn closed(&self) {
        let mut rx = self.closed.clone();
        let _ = rx.wait_for(|c| *c).await;
    }

    pub fn file_sync(&self) -> filesync::file_sync_client::FileSyncClient<Channel> {
        filesync::file_sync_client::FileSyncClient::with_origin(self.channel.clone(), origin())
    }

    /// The client's credentials for a registry host, when its session
    /// offers them; `None` for anonymous access.
    pub async fn credentials(&self, host: &str) -> Option<(String, String)> {
        if !self.supports(CREDENTIALS) || self.is_closed() {
            return None;
        }
        let mut client =
            filesync::auth_client::AuthClient::with_origin(self.channel.clone(), origin());
        let call = client.credentials(filesync::CredentialsRequest {
            host: host.to_string(),
        });
        match tokio::time::timeout(Duration::from_secs(30), call).await {
            Ok(Ok(r)) => {
                let r = r.into_inner();
                (!r.username.is_empty() || !r.secret.is_empty()).then_some((r.username, r.secret))
            }
            Ok(Err(e)) => {
                tracing::debug!(host, error = %e, "the session gave no credentials");
                None
            }
            Err(_) => None,
        }
    }
}

/// Every connected session, by id.
#[derive(Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Arc<Session>>>,
    /// Bumped whenever a session connects, for waiting lookups.
    changed: watch::Sender<u64>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes over `io` as the session `headers` describe, until it closes.
    pub async fn run<I>(&self, headers: SessionHeaders, io: I) -> Result<(), Error>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        if headers.id.is_empty() {
            return Err(Error::invalid(
                "a session needs an X-Docker-Expose-Session-Uuid header",
            ));
        }
        let (channel, driver) = Channel::handshake(io)
            .await
            .map_err(|e| Error::SessionEnded {
                id: headers.id.clone(),
                reason: format!("the HTTP/2 handshake failed: {e}"),
            })?;
        let (tx, closed) = watch::channel(false);
        let session = Arc::new(Session {
            id: headers.id.clone(),
            methods: headers
                .methods
                .iter()
                .map(|m| m.to_ascii_lowercase())
                .collect(),
            channel,
            closed,
        });
        {
            let mut map = self.lock();
            if map.contains_key(&headers.id) {
                return Err(Error::invalid(format!(
                    "session {} already exists",
                    headers.id
                )));
            }
            map.insert(headers.id.clone(), session.clone());
        }
        self.changed.send_modify(|n| *n += 1);
        tracing::debug!(session = %headers.id, methods = ?headers.methods, "session connected");
        driver.await;
        let _ = tx.send(true);
        self.lock().remove(&headers.id);
        tracing::debug!(session = %headers.id, "session closed");
        Ok(())
    }

    /// The session `id`, waiting up to `wait` for it to connect.
    pub async fn get(&self, id: &str, wait: Duration) -> Result<Arc<Session>, Error> {
        let mut rx = self.changed.subscribe();
        let found = async {
            loop {
                if let Some(s) = self.lock().get(id) {
                    return s.clone();
                }
                if rx.changed().await.is_err() {
                    // The sender lives as long as `self`.
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(wait, found)
            .await
            .map_err(|_| Error::NotFound {
                what: format!("session {id:?} (the client never connected it)"),
            })
    }
}
