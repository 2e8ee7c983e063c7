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
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
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

/// Query parameters, decoded. A parameter given more than once has its
/// first value, as Go's `Request.FormValue` gives dockerd (clients rely
/// on it: the Python SDK sends `dockerfile` twice when the Dockerfile is
/// outside the context); [`all_values`] has every one.
pub(crate) struct Query(BTreeMap<String, String>);

impl Query {
    pub(crate) fn parse(q: Option<&str>) -> Query {
        let mut m = BTreeMap::new();
        for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            m.entry(decode(k)).or_insert_with(|| decode(v));
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

/// Percent-decoding of a path segment (`+` is itself there).
pub(crate) fn decode_path(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    decode(&s.replace('+', "%2B"))
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
    cais_api::from_slice(body).map_err(|e| Error::InvalidArgument(format!("invalid JSON: {e}")))
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

/// The detach key sequence of attach and exec (`detachKeys`, docker's
/// `--detach-keys`): `ctrl-p,ctrl-q` by default. Input is scanned for it:
/// bytes that may begin it are held back until it is complete (the
/// client detaches) or broken (they are passed on).
#[derive(Debug, Clone)]
pub(crate) struct DetachKeys {
    keys: Vec<u8>,
    /// How many bytes of `keys` the input has matched so far.
    matched: usize,
}

impl DetachKeys {
    /// Parses docker's notation: comma-separated keys, each a single
    /// character or `ctrl-` with a letter or one of `@[\]^_`. Empty is
    /// the default, `ctrl-p,ctrl-q`.
    pub(crate) fn parse(spec: &str) -> Result<DetachKeys> {
        let spec = if spec.is_empty() {
            "ctrl-p,ctrl-q"
        } else {
            spec
        };
        let invalid = || Error::InvalidArgument(format!("Invalid escape keys ({spec}) provided"));
        let mut keys = Vec::new();
        for key in spec.split(',') {
            let key = key.trim();
            let code = match key.strip_prefix("ctrl-") {
                Some(c) if c.len() == 1 => {
                    let c = c.as_bytes()[0].to_ascii_lowercase();
                    match c {
                        b'a'..=b'z' => c - b'a' + 1,
                        b'@' => 0,
                        b'[' => 27,
                        b'\\' => 28,
                        b']' => 29,
                        b'^' => 30,
                        b'_' => 31,
                        _ => return Err(invalid()),
                    }
                }
                Some(_) => return Err(invalid()),
                None if key.len() == 1 => key.as_bytes()[0],
                None => return Err(invalid()),
            };
            keys.push(code);
        }
        Ok(DetachKeys { keys, matched: 0 })
    }

    /// Scans `input`: what to pass on, and whether the sequence completed
    /// (what followed it is dropped, as the client has detached).
    pub(crate) fn scan(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return (out, true);
                }
                continue;
            }
            // A broken sequence: the bytes held back were input after all.
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if b == self.keys[0] {
                self.matched = 1;
                if self.keys.len() == 1 {
                    return (out, true);
                }
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

/// The `Sec-WebSocket-Accept` answer to a client's `Sec-WebSocket-Key`
/// (RFC 6455 section 4.2.2): base64 of the SHA-1 of the key and the
/// protocol's GUID.
pub(crate) fn websocket_accept(key: &str) -> String {
    use base64::Engine as _;
    const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    base64::engine::general_purpose::STANDARD.encode(sha1(format!("{key}{GUID}").as_bytes()))
}

/// SHA-1 (FIPS 180-4), for the WebSocket handshake only: it names nothing
/// that must resist collisions.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut msg = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

/// One WebSocket frame for the client (RFC 6455 section 5.2): final,
/// unmasked, `opcode` (1 text, 2 binary, 8 close, 10 pong).
pub(crate) fn websocket_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 10);
    f.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => f.push(n as u8),
        n if n <= u16::MAX as usize => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    f
}

/// A WebSocket connection (already upgraded) as a plain byte stream: what
/// is written to the returned end goes to the client as text frames (as
/// dockerd sends attach output; with `demux`, what is written is docker's
/// multiplexed stream and the frames carry its payloads), the payloads of
/// the client's data frames can be read from it. Pings are answered; a
/// close frame from the client, or the returned end shut down, closes the
/// connection.
pub(crate) fn websocket_stream<S>(conn: S, demux: bool) -> tokio::io::DuplexStream
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (mut conn_r, conn_w) = tokio::io::split(conn);
    let (mut pipe_r, mut pipe_w) = tokio::io::split(ours);
    let conn_w = std::sync::Arc::new(tokio::sync::Mutex::new(conn_w));
    let w = conn_w.clone();
    // Output: bytes written by the session, as text frames.
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        let mut pending: Vec<u8> = Vec::new();
        while let Ok(n) = pipe_r.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let mut payloads = Vec::new();
            if demux {
                pending.extend_from_slice(&buf[..n]);
                // Whole frames only: header (stream, 3 zeros, size), data.
                while pending.len() >= 8 {
                    let size = u32::from_be_bytes([pending[4], pending[5], pending[6], pending[7]]);
                    let end = 8 + size as usize;
                    if pending.len() < end {
                        break;
                    }
                    payloads.push(pending[8..end].to_vec());
                    pending.drain(..end);
                }
            } else {
                payloads.push(buf[..n].to_vec());
            }
            for p in payloads {
                if w.lock()
                    .await
                    .write_all(&websocket_frame(1, &p))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        let mut w = w.lock().await;
        let _ = w
            .write_all(&websocket_frame(8, &1000u16.to_be_bytes()))
            .await;
        let _ = w.shutdown().await;
    });
    // Input: the client's frames, unmasked.
    tokio::spawn(async move {
        loop {
            let mut head = [0u8; 2];
            if conn_r.read_exact(&mut head).await.is_err() {
                break;
            }
            let opcode = head[0] & 0x0f;
            let masked = head[1] & 0x80 != 0;
            let len = match head[1] & 0x7f {
                126 => {
                    let mut l = [0u8; 2];
                    if conn_r.read_exact(&mut l).await.is_err() {
                        break;
                    }
                    u16::from_be_bytes(l) as u64
                }
                127 => {
                    let mut l = [0u8; 8];
                    if conn_r.read_exact(&mut l).await.is_err() {
                        break;
                    }
                    u64::from_be_bytes(l)
                }
                n => n as u64,
            };
            if len > 16 << 20 {
                break;
            }
            let mut mask = [0u8; 4];
            if masked && conn_r.read_exact(&mut mask).await.is_err() {
                break;
            }
            let mut payload = vec![0u8; len as usize];
            if conn_r.read_exact(&mut payload).await.is_err() {
                break;
            }
            if masked {
                for (i, b) in payload.iter_mut().enumerate() {
                    *b ^= mask[i % 4];
                }
            }
            match opcode {
                0..=2 if pipe_w.write_all(&payload).await.is_err() => break,
                0..=2 => {}
                8 => break,
                9 => {
                    let _ = conn_w
                        .lock()
                        .await
                        .write_all(&websocket_frame(10, &payload))
                        .await;
                }
                _ => {}
            }
        }
        let _ = pipe_w.shutdown().await;
    });
    theirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_in_dockers_notation() {
        assert_eq!(DetachKeys::parse("").expect("default").keys, [16, 17]);
        assert_eq!(DetachKeys::parse("ctrl-x").expect("one").keys, [24]);
        assert_eq!(
            DetachKeys::parse("a,ctrl-@,ctrl-[,ctrl-_")
                .expect("mixed")
                .keys,
            [b'a', 0, 27, 31]
        );
        for bad in ["ctrl-", "ctrl-ab", "ctrl-1", "ab", "a,,b"] {
            let e = DetachKeys::parse(bad).expect_err(bad);
            assert_eq!(
                e.to_string(),
                format!("Invalid escape keys ({bad}) provided")
            );
        }
    }

    #[test]
    fn detach_keys_are_held_back_until_complete_or_broken() {
        let mut k = DetachKeys::parse("").expect("default");
        assert_eq!(k.scan(b"ab\x10"), (b"ab".to_vec(), false));
        // Broken: the held ctrl-p is input after all.
        assert_eq!(k.scan(b"c"), (b"\x10c".to_vec(), false));
        // Split across reads, with input after it dropped.
        assert_eq!(k.scan(b"x\x10"), (b"x".to_vec(), false));
        assert_eq!(k.scan(b"\x11rest"), (Vec::new(), true));
        // ctrl-p ctrl-p ctrl-q: the first ctrl-p is input.
        let mut k = DetachKeys::parse("").expect("default");
        assert_eq!(k.scan(b"\x10\x10\x11"), (b"\x10".to_vec(), true));
        let mut one = DetachKeys::parse("ctrl-x").expect("one");
        assert_eq!(one.scan(b"hi\x18there"), (b"hi".to_vec(), true));
    }

    #[test]
    fn websocket_handshake_and_frames_follow_rfc_6455() {
        let hex: String = sha1(b"abc").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
        let long: String = sha1(&[b'a'; 1000])
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(long, "291e9a6c66994949b57ba5e650361e98fc36b1ba");
        // The example of RFC 6455 section 1.3.
        assert_eq!(
            websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(websocket_frame(1, b"hi"), [0x81, 2, b'h', b'i']);
        let big = websocket_frame(2, &[0; 300]);
        assert_eq!(&big[..4], &[0x82, 126, 1, 44]);
        assert_eq!(big.len(), 304);
    }
}
