//! A small typed client of the engine API: HTTP/1.1 over a unix socket.
//!
//! One connection per request (`Connection: close`), so a response body is
//! read to its end without keeping a pool. Bodies come as `Content-Length`,
//! `Transfer-Encoding: chunked` or until EOF; [`Body`] reads all three, so
//! logs, events, stats and pull progress are read as they arrive. Attach and
//! exec start ask for `Upgrade: tcp`; after `101 Switching Protocols` the
//! socket carries the raw (or multiplexed) stream, returned as [`Hijacked`].

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use cais_api::ErrorResponse;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to the cais daemon at unix://{}: is the daemon running?", path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("talking to the daemon")]
    Io(#[from] std::io::Error),
    /// The daemon answered with an error status and its `{"message"}`.
    #[error("{message}")]
    Daemon { status: u16, message: String },
    #[error("unexpected response from the daemon: {0}")]
    Protocol(String),
    #[error("decoding the daemon's response")]
    Json(#[from] serde_json::Error),
}

impl Error {
    /// The HTTP status of a daemon error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Daemon { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Where the daemon listens.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

/// A request body: in memory, or read and sent chunked as it comes.
enum Upload<'a> {
    Bytes(&'a [u8]),
    Stream(&'a mut dyn Read),
}

/// A status line and headers, the body still on the socket.
struct RawResponse {
    reader: BufReader<UnixStream>,
    status: u16,
    headers: Vec<(String, String)>,
}

/// A response whose body has not been read yet.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

enum Framing {
    Length(u64),
    /// Bytes left in the current chunk; `None` before the first chunk header.
    Chunked {
        left: u64,
        done: bool,
    },
    Eof,
}

/// A response body as a reader, decoding the transfer framing.
pub struct Body {
    reader: BufReader<UnixStream>,
    framing: Framing,
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match &mut self.framing {
            Framing::Eof => self.reader.read(buf),
            Framing::Length(left) => {
                if *left == 0 {
                    return Ok(0);
                }
                let max = buf.len().min(*left as usize);
                let n = self.reader.read(&mut buf[..max])?;
                *left -= n as u64;
                Ok(n)
            }
            Framing::Chunked { left, done } => {
                if *done {
                    return Ok(0);
                }
                if *left == 0 {
                    let mut line = String::new();
                    self.reader.read_line(&mut line)?;
                    if line.trim().is_empty() {
                        // The CRLF after the previous chunk.
                        line.clear();
                        self.reader.read_line(&mut line)?;
                    }
                    let size = line.trim().split(';').next().unwrap_or("");
                    let size = u64::from_str_radix(size, 16).map_err(|_| {
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("bad chunk size {line:?}"),
                        )
                    })?;
                    if size == 0 {
                        *done = true;
                        return Ok(0);
                    }
                    *left = size;
                }
                let max = buf.len().min(*left as usize);
                let n = self.reader.read(&mut buf[..max])?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                *left -= n as u64;
                Ok(n)
            }
        }
    }
}

/// A connection taken over after `101 Switching Protocols`.
pub struct Hijacked {
    /// Reads the stream (with whatever was buffered after the headers).
    pub reader: BufReader<UnixStream>,
    /// Writes to the stream (stdin of the container or exec).
    pub writer: UnixStream,
    /// The stream's content type: multiplexed or raw.
    pub content_type: String,
}

impl Hijacked {
    /// Whether output frames carry Docker's 8-byte multiplexing header.
    pub fn multiplexed(&self) -> bool {
        self.content_type.contains("multiplexed")
    }
}

/// Reads one frame of Docker's multiplexed stream: stream byte, three
/// zeros, u32 big-endian size, payload. `None` at a clean end of stream.
pub fn read_frame(r: &mut impl Read) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 8];
    let mut got = 0;
    while got < 8 {
        let n = r.read(&mut head[got..])?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        got += n;
    }
    let size = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
    let mut data = vec![0u8; size];
    r.read_exact(&mut data)?;
    Ok(Some((head[0], data)))
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Builds `path?k=v&...` from pairs, skipping none.
pub fn with_query(path: &str, pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return path.to_string();
    }
    let q: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    format!("{path}?{}", q.join("&"))
}

impl Client {
    /// A client of the daemon at `host`: `unix:///path` or a plain path.
    pub fn new(host: &str) -> Result<Client> {
        let path = if let Some(p) = host.strip_prefix("unix://") {
            p
        } else if host.contains("://") {
            return Err(Error::Protocol(format!(
                "unsupported host {host:?}: only unix:// sockets are served"
            )));
        } else {
            host
        };
        Ok(Client {
            socket: PathBuf::from(path),
        })
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn connect(&self) -> Result<UnixStream> {
        UnixStream::connect(&self.socket).map_err(|source| Error::Connect {
            path: self.socket.clone(),
            source,
        })
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
        upgrade: bool,
    ) -> Result<RawResponse> {
        let body = body.map(|(ctype, data)| (ctype, Upload::Bytes(data)));
        self.send_with(method, path, &[], body, upgrade)
    }

    fn send_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, Upload<'_>)>,
        upgrade: bool,
    ) -> Result<RawResponse> {
        let mut stream = self.connect()?;
        let mut head = format!(
            "{method} /v{}{path} HTTP/1.1\r\nHost: cais\r\nUser-Agent: cais-cli\r\n",
            cais_api::API_VERSION
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if upgrade {
            head.push_str("Connection: Upgrade\r\nUpgrade: tcp\r\n");
        } else {
            head.push_str("Connection: close\r\n");
        }
        match body {
            Some((ctype, Upload::Bytes(data))) => {
                head.push_str(&format!(
                    "Content-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
                    data.len()
                ));
                stream.write_all(head.as_bytes())?;
                stream.write_all(data)?;
            }
            Some((ctype, Upload::Stream(reader))) => {
                head.push_str(&format!(
                    "Content-Type: {ctype}\r\nTransfer-Encoding: chunked\r\n\r\n"
                ));
                stream.write_all(head.as_bytes())?;
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let n = match reader.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e.into()),
                    };
                    stream.write_all(format!("{n:x}\r\n").as_bytes())?;
                    stream.write_all(&buf[..n])?;
                    stream.write_all(b"\r\n")?;
                }
                stream.write_all(b"0\r\n\r\n")?;
            }
            None => {
                head.push_str("Content-Length: 0\r\n\r\n");
                stream.write_all(head.as_bytes())?;
            }
        }
        stream.flush()?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Protocol(format!("bad status line {:?}", line.trim())))?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Err(Error::Protocol("connection closed in the headers".into()));
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        Ok(RawResponse {
            reader,
            status,
            headers,
        })
    }

    fn body_of(reader: BufReader<UnixStream>, headers: &[(String, String)], method: &str) -> Body {
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.as_str())
        };
        let framing = if method == "HEAD" {
            Framing::Length(0)
        } else if get("Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            Framing::Chunked {
                left: 0,
                done: false,
            }
        } else if let Some(n) = get("Content-Length").and_then(|v| v.parse().ok()) {
            Framing::Length(n)
        } else {
            Framing::Eof
        };
        Body { reader, framing }
    }

    /// Sends a request; an error status becomes [`Error::Daemon`].
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> Result<Response> {
        let RawResponse {
            reader,
            status,
            headers,
        } = self.send(method, path, body, false)?;
        Self::checked(reader, status, headers, method)
    }

    /// An error status becomes [`Error::Daemon`] with the daemon's message.
    fn checked(
        reader: BufReader<UnixStream>,
        status: u16,
        headers: Vec<(String, String)>,
        method: &str,
    ) -> Result<Response> {
        let mut body = Self::body_of(reader, &headers, method);
        if status >= 400 {
            let mut data = Vec::new();
            body.read_to_end(&mut data)?;
            let message = serde_json::from_slice::<ErrorResponse>(&data)
                .map(|e| e.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(&data).trim().to_string());
            return Err(Error::Daemon { status, message });
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// Sends `body` as it is read (chunked), for tarballs of any size.
    pub fn upload(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &mut dyn Read,
    ) -> Result<Response> {
        self.upload_with_headers(method, path, &[], content_type, body)
    }

    /// [`upload`](Client::upload) with extra headers (`X-Registry-Config`).
    pub fn upload_with_headers(
        &self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        content_type: &str,
        body: &mut dyn Read,
    ) -> Result<Response> {
        let RawResponse {
            reader,
            status,
            headers,
        } = self.send_with(
            method,
            path,
            extra,
            Some((content_type, Upload::Stream(body))),
            false,
        )?;
        Self::checked(reader, status, headers, method)
    }

    /// A bodiless request with extra headers (`X-Registry-Auth`).
    pub fn request_with_headers(
        &self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
    ) -> Result<Response> {
        let RawResponse {
            reader,
            status,
            headers,
        } = self.send_with(method, path, extra, None, false)?;
        Self::checked(reader, status, headers, method)
    }

    /// A request with a JSON body (or none), whose body is read whole.
    pub fn call<B: Serialize>(
        &self,
        method: &str,
        path: &str,
        body: Option<&B>,
    ) -> Result<Vec<u8>> {
        let data = body.map(serde_json::to_vec).transpose()?;
        let mut r = self.request(
            method,
            path,
            data.as_deref().map(|d| ("application/json", d)),
        )?;
        let mut out = Vec::new();
        r.body.read_to_end(&mut out)?;
        Ok(out)
    }

    /// A request whose JSON response is decoded as `T`.
    pub fn json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&B>,
    ) -> Result<T> {
        let data = self.call(method, path, body)?;
        Ok(serde_json::from_slice(&data)?)
    }

    /// `GET path`, decoded.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.json::<(), T>("GET", path, None)
    }

    /// `POST path` with no body; the response is dropped.
    pub fn post(&self, path: &str) -> Result<()> {
        self.call::<()>("POST", path, None).map(drop)
    }

    /// Asks for an upgraded connection (attach, exec start).
    pub fn hijack<B: Serialize>(&self, path: &str, body: Option<&B>) -> Result<Hijacked> {
        let data = body.map(serde_json::to_vec).transpose()?;
        let RawResponse {
            reader,
            status,
            headers,
        } = self.send(
            "POST",
            path,
            data.as_deref().map(|d| ("application/json", d)),
            true,
        )?;
        let content_type = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("Content-Type"))
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        if status != 101 {
            let mut body = Self::body_of(reader, &headers, "POST");
            let mut data = Vec::new();
            body.read_to_end(&mut data)?;
            if status >= 400 {
                let message = serde_json::from_slice::<ErrorResponse>(&data)
                    .map(|e| e.message)
                    .unwrap_or_else(|_| String::from_utf8_lossy(&data).trim().to_string());
                return Err(Error::Daemon { status, message });
            }
            return Err(Error::Protocol(format!(
                "expected 101 Switching Protocols, got {status}"
            )));
        }
        let writer = reader.get_ref().try_clone()?;
        Ok(Hijacked {
            reader,
            writer,
            content_type,
        })
    }
}

/// Reads newline-delimited JSON values from a streaming body.
pub fn json_lines<T: DeserializeOwned>(body: Body) -> impl Iterator<Item = Result<T>> {
    let reader = BufReader::new(body);
    reader.lines().filter_map(|l| match l {
        Ok(l) if l.trim().is_empty() => None,
        Ok(l) => Some(serde_json::from_str(&l).map_err(Error::from)),
        Err(e) => Some(Err(Error::from(e))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            with_query("/x", &[("filters", r#"{"a":["b c"]}"#.into())]),
            "/x?filters=%7B%22a%22%3A%5B%22b%20c%22%5D%7D"
        );
        assert_eq!(with_query("/x", &[]), "/x");
    }

    #[test]
    fn frames_are_split() {
        let mut data = vec![1, 0, 0, 0, 0, 0, 0, 2, b'h', b'i'];
        data.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 1, b'!']);
        let mut r = &data[..];
        assert_eq!(read_frame(&mut r).expect("a"), Some((1, b"hi".to_vec())));
        assert_eq!(read_frame(&mut r).expect("b"), Some((2, b"!".to_vec())));
        assert_eq!(read_frame(&mut r).expect("c"), None);
    }

    #[test]
    fn hosts_are_parsed() {
        assert_eq!(
            Client::new("unix:///run/x.sock").expect("unix").socket(),
            Path::new("/run/x.sock")
        );
        assert!(Client::new("tcp://1.2.3.4:2375").is_err());
    }
}
