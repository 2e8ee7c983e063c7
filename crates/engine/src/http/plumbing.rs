//! What every handler needs and nothing else: response bodies (whole,
//! JSON, streamed through a channel), the one mapping of errors to status
//! codes, request bodies (bounded, JSON, spooled to a file), decoded query
//! parameters, running engine calls on blocking threads, and the pieces of
//! HTTP upgrade the hijacked endpoints (attach, exec) share. It knows no
//! endpoint and nothing of the engine.

use std::collections::BTreeMap;
use std::convert::Infallible;

use bytes::Bytes;
use cais_api::ErrorResponse;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE, UPGRADE};
use hyper::{Request, Response, StatusCode};
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::filters::Filters;

pub type Body = BoxBody<Bytes, Infallible>;

pub(crate) fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into()).boxed()
}

pub(crate) fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let mut r = Response::new(full(
        serde_json::to_vec(value).expect("responses serialize"),
    ));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

pub(crate) fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// JSON values as lines of one whole response (load, import).
pub(crate) fn json_lines(lines: &[serde_json::Value]) -> Response<Body> {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let mut r = Response::new(full(text));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// A 200 response streaming `body` with the given content type.
pub(crate) fn streaming(body: Body, content_type: &'static str) -> Response<Body> {
    let mut r = Response::new(body);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// The one place errors become HTTP responses: a status by the error's
/// kind, and `{"message": ...}` with the whole chain of its causes.
pub fn error_response(e: &Error) -> Response<Body> {
    let status = match e {
        Error::NotModified(_) => return empty(StatusCode::NOT_MODIFIED),
        Error::NotFound { .. } | Error::Archive { missing: true, .. } => StatusCode::NOT_FOUND,
        // A pull answers a registry it cannot reach as a missing image.
        Error::Registry(_) => StatusCode::NOT_FOUND,
        Error::Conflict(_) | Error::IllegalChange(_) => StatusCode::CONFLICT,
        Error::InvalidArgument(_)
        | Error::ImageInput(_)
        | Error::OciInput(_)
        | Error::Archive { missing: false, .. } => StatusCode::BAD_REQUEST,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::Image(e) => match e {
            cais_image::Error::NotFound { .. } => StatusCode::NOT_FOUND,
            cais_image::Error::AlreadyExists { .. } => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        },
        Error::Build(e) => match e {
            cais_build::Error::InvalidArgument { .. } | cais_build::Error::Failed { .. } => {
                StatusCode::BAD_REQUEST
            }
            cais_build::Error::NotFound { .. } => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        },
        Error::Io { .. }
        | Error::Spawn { .. }
        | Error::Failed { .. }
        | Error::Runtime { .. }
        | Error::CreateTask { .. }
        | Error::StartTask { .. }
        | Error::Shim { .. }
        | Error::Json { .. }
        | Error::RecordVersion { .. }
        | Error::Net(_)
        | Error::PortInUse { .. }
        | Error::PortPublish { .. }
        | Error::Cgroups { .. }
        | Error::KillTimeout { .. }
        | Error::Daemon { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    };
    json(
        status,
        &ErrorResponse {
            message: e.message(),
        },
    )
}

/// A streaming body fed through a channel.
pub(crate) fn channel_body() -> (mpsc::Sender<Bytes>, Body) {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    (tx, StreamBody::new(stream).boxed())
}

/// Runs a synchronous engine call on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::daemon("an engine task")(e.into()))?
}

/// Query parameters, decoded.
pub(crate) struct Query(BTreeMap<String, String>);

impl Query {
    pub(crate) fn parse(q: Option<&str>) -> Query {
        let mut m = BTreeMap::new();
        for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            m.insert(decode(k), decode(v));
        }
        Query(m)
    }
    pub(crate) fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
    pub(crate) fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("1" | "true" | "True"))
    }
    pub(crate) fn int(&self, k: &str) -> Result<Option<i64>> {
        self.get(k)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse()
                    .map_err(|_| Error::InvalidArgument(format!("invalid value for {k}: {v:?}")))
            })
            .transpose()
    }
    /// The `filters` parameter, checked against the keys the endpoint
    /// `accepts` (see `filters`).
    pub(crate) fn filters(&self, accepts: &[&str]) -> Result<Filters> {
        Filters::parse(self.get("filters"), accepts)
    }
}

/// Every value of a repeated query parameter (`t=a&t=b`), empty ones left out.
pub(crate) fn all_values(raw_query: &str, key: &str) -> Vec<String> {
    raw_query
        .split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k) == key).then(|| decode(v))
        })
        .filter(|v| !v.is_empty())
        .collect()
}

/// Seconds since the epoch, for `until=` durations.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Unix seconds, possibly fractional ("1700000000.5"), to nanoseconds
/// (`since`/`until` of logs and events).
pub(crate) fn parse_unix_nanos(s: &str) -> Option<i64> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: String = frac.chars().take(9).collect();
    while nanos.len() < 9 {
        nanos.push('0');
    }
    Some(secs * 1_000_000_000 + nanos.parse::<i64>().unwrap_or(0))
}

/// Percent-decoding of a query component (`+` is a space).
pub(crate) fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                    out.push(b);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes> {
    let body = http_body_util::Limited::new(req.into_body(), limit);
    body.collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| Error::InvalidArgument(format!("reading the request body: {e}")))
}

/// Reads the body of a request that is upgraded afterwards.
pub(crate) async fn read_body_ref(req: &mut Request<Incoming>) -> Result<Bytes> {
    let body = http_body_util::Limited::new(req.body_mut(), 1 << 20);
    body.collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| Error::InvalidArgument(format!("reading the request body: {e}")))
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| Error::InvalidArgument(format!("invalid JSON: {e}")))
}

/// Streams a request body into an unnamed temporary file in `dir`
/// (archives and build contexts can be large; nothing is held in memory),
/// rewound for reading.
pub(crate) async fn body_to_file(
    req: Request<Incoming>,
    dir: &std::path::Path,
) -> Result<std::fs::File> {
    use std::io::{Seek, Write};
    let file =
        tempfile::tempfile_in(dir).map_err(Error::io("creating a temporary file in", dir))?;
    let mut writer = file
        .try_clone()
        .map_err(Error::io("opening a temporary file in", dir))?;
    let mut body = req.into_body();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| Error::InvalidArgument(format!("reading the request body: {e}")))?;
        if let Some(data) = frame.data_ref() {
            writer
                .write_all(data)
                .map_err(Error::io("writing a temporary file in", dir))?;
        }
    }
    let mut file = file;
    file.rewind()
        .map_err(Error::io("rewinding a temporary file in", dir))?;
    Ok(file)
}

/// Docker's multiplexed stream frame: stream byte, three zeros, size.
pub fn frame(stream: u8, data: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(data.len() + 8);
    f.push(stream);
    f.extend_from_slice(&[0, 0, 0]);
    f.extend_from_slice(&(data.len() as u32).to_be_bytes());
    f.extend_from_slice(data);
    f
}

/// The content type of a container's output: raw with a terminal,
/// multiplexed frames without.
pub(crate) fn stream_type(tty: bool) -> &'static str {
    if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }
}

/// Whether the client asks to hijack the connection (`Upgrade: tcp`, what
/// the docker CLI sends for attach and exec).
pub(crate) fn wants_upgrade(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("tcp"))
}

/// The 101 answer to an upgrade, announcing the stream's framing.
pub(crate) fn upgraded_response(tty: bool) -> Response<Body> {
    let mut r = empty(StatusCode::SWITCHING_PROTOCOLS);
    r.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    r.headers_mut()
        .insert(UPGRADE, HeaderValue::from_static("tcp"));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(stream_type(tty)));
    r
}
