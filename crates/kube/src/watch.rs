//! Watch streams: one JSON `WatchEvent` per line of a chunked response
//! (`{"type": "ADDED|MODIFIED|DELETED|BOOKMARK|ERROR", "object": ...}`).
//! An `ERROR` event carries a Status; a 410 there means the revision
//! asked for is compacted away and the caller must list again.

use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::client::Streaming;
use crate::error::{Error, Result, Status};

/// One change seen by a watch.
#[derive(Clone, Debug)]
pub enum WatchEvent<K> {
    Added(K),
    Modified(K),
    Deleted(K),
    /// The watch has seen everything up to this revision (nothing of the
    /// watched kind changed): resume from here.
    Bookmark {
        resource_version: String,
    },
}

#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "type")]
    kind: String,
    object: Box<serde_json::value::RawValue>,
}

#[derive(Deserialize)]
struct Bookmark {
    metadata: BookmarkMeta,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BookmarkMeta {
    resource_version: String,
}

/// The events of one watch request, read line by line.
pub struct WatchStream<K> {
    path: String,
    address: String,
    body: hyper::body::Incoming,
    buffer: Vec<u8>,
    done: bool,
    _kind: std::marker::PhantomData<fn() -> K>,
}

impl<K: DeserializeOwned> WatchStream<K> {
    pub(crate) fn new(path: String, address: String, stream: Streaming) -> WatchStream<K> {
        WatchStream {
            path,
            address,
            body: stream.body,
            buffer: Vec::new(),
            done: false,
            _kind: std::marker::PhantomData,
        }
    }

    /// The next event; `None` once the server ends the watch (its
    /// `timeoutSeconds`, or a restart), when the caller watches again from
    /// the last revision it saw.
    pub async fn next(&mut self) -> Option<Result<WatchEvent<K>>> {
        loop {
            if let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(self.parse(&line));
            }
            if self.done {
                if self.buffer.iter().all(u8::is_ascii_whitespace) {
                    return None;
                }
                let line = std::mem::take(&mut self.buffer);
                return Some(self.parse(&line));
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => {
                    self.done = true;
                    self.buffer.clear();
                    return Some(Err(Error::Http {
                        address: self.address.clone(),
                        reason: format!("watch {}: {e}", self.path),
                    }));
                }
                None => self.done = true,
            }
        }
    }

    fn parse(&self, line: &[u8]) -> Result<WatchEvent<K>> {
        parse_event(&self.path, line)
    }
}

/// One line of a watch response as an event; an `ERROR` event as the
/// error it reports.
fn parse_event<K: DeserializeOwned>(path: &str, line: &[u8]) -> Result<WatchEvent<K>> {
    {
        let decode = |reason: String| Error::Decode {
            path: path.to_string(),
            reason,
        };
        let event: RawEvent =
            serde_json::from_slice(line).map_err(|e| decode(format!("watch event: {e}")))?;
        let object = |raw: &serde_json::value::RawValue| -> Result<K> {
            serde_json::from_str(raw.get())
                .map_err(|e| decode(format!("{} object: {e}", event.kind)))
        };
        match event.kind.as_str() {
            "ADDED" => Ok(WatchEvent::Added(object(&event.object)?)),
            "MODIFIED" => Ok(WatchEvent::Modified(object(&event.object)?)),
            "DELETED" => Ok(WatchEvent::Deleted(object(&event.object)?)),
            "BOOKMARK" => {
                let b: Bookmark = serde_json::from_str(event.object.get())
                    .map_err(|e| decode(format!("bookmark: {e}")))?;
                Ok(WatchEvent::Bookmark {
                    resource_version: b.metadata.resource_version,
                })
            }
            "ERROR" => {
                let status: Status = serde_json::from_str(event.object.get()).unwrap_or_default();
                Err(Error::Api {
                    method: "GET".into(),
                    path: path.to_string(),
                    status,
                })
            }
            other => Err(decode(format!("unknown event type {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    #[test]
    fn events_of_every_type() {
        let added: WatchEvent<ConfigMap> = parse_event(
            "/w",
            br#"{"type":"ADDED","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","resourceVersion":"7"}}}"#,
        )
        .expect("added");
        assert!(matches!(added, WatchEvent::Added(c) if c.metadata.name.as_deref() == Some("a")));
        let mark: WatchEvent<ConfigMap> = parse_event(
            "/w",
            br#"{"type":"BOOKMARK","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"resourceVersion":"12"}}}"#,
        )
        .expect("bookmark");
        assert!(
            matches!(mark, WatchEvent::Bookmark { resource_version } if resource_version == "12")
        );
        let gone = parse_event::<ConfigMap>(
            "/w",
            br#"{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old resource version: 3 (9)"}}"#,
        )
        .expect_err("an error");
        assert!(gone.is_gone(), "{gone}");
        assert!(gone.to_string().contains("too old"), "{gone}");
    }

    #[test]
    fn bad_lines_are_errors() {
        for line in [
            &b"{"[..],
            br#"{"type":"NOPE","object":{}}"#,
            br#"{"type":"ADDED","object":{"apiVersion":"v2","kind":"ConfigMap"}}"#,
        ] {
            let e = parse_event::<ConfigMap>("/w", line).expect_err("refused");
            assert!(matches!(e, Error::Decode { .. }), "{e}");
        }
    }
}
