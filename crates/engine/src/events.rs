//! Engine events (`GET /events`): a bounded history for `--since` and a
//! broadcast to live subscribers.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use cais_api::{Actor, Event};
use tokio::sync::broadcast;

const HISTORY: usize = 1024;

pub struct Events {
    history: Mutex<VecDeque<Event>>,
    live: broadcast::Sender<Event>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            history: Mutex::new(VecDeque::new()),
            live: broadcast::channel(256).0,
        }
    }
}

impl Events {
    /// Records and broadcasts an event.
    pub fn emit(&self, kind: &str, action: &str, id: &str, attributes: BTreeMap<String, String>) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let from = attributes.get("image").cloned().unwrap_or_default();
        let event = Event {
            kind: kind.into(),
            action: action.into(),
            actor: Actor {
                id: id.into(),
                attributes,
            },
            scope: "local".into(),
            time: now.as_secs() as i64,
            time_nano: now.as_nanos() as i64,
            status: if kind == "container" || kind == "image" {
                action.into()
            } else {
                String::new()
            },
            id: if kind == "container" || kind == "image" {
                id.into()
            } else {
                String::new()
            },
            from,
        };
        if let Ok(mut h) = self.history.lock() {
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back(event.clone());
        }
        let _ = self.live.send(event);
    }

    /// Past events with `since <= time_nano <= until` (nanoseconds).
    pub fn history(&self, since: i64, until: i64) -> Vec<Event> {
        self.history
            .lock()
            .map(|h| {
                h.iter()
                    .filter(|e| e.time_nano >= since && e.time_nano <= until)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.live.subscribe()
    }

    /// How many clients listen to live events (`/info`'s `NEventsListener`).
    pub fn listeners(&self) -> usize {
        self.live.receiver_count()
    }
}
