//! The `filters` query parameter of list, prune and event endpoints, with
//! dockerd's semantics, in one place for every resource.
//!
//! Clients send a JSON object of keys to values in one of two encodings:
//! `{"label":["a=1","b"]}` (current) or `{"label":{"a=1":true,"b":true}}`
//! (what the docker CLI and older SDKs send). The rules, as dockerd applies
//! them:
//! - each resource accepts a fixed set of keys; any other key is a 400
//!   `invalid filter 'KEY'` (never a match-all);
//! - different keys AND together; several values of one key OR together,
//!   except `label` and `label!`, whose values must all hold;
//! - `label=KEY` asks for the label's presence, `label=KEY=VALUE` for
//!   equality; `label!` negates each of its conditions.
//!
//! Pure: the callers supply what is matched.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// Keys `GET /containers/json` accepts.
pub const CONTAINER_LIST: &[&str] = &[
    "ancestor",
    "before",
    "expose",
    "exited",
    "health",
    "id",
    "isolation",
    "is-task",
    "label",
    "name",
    "network",
    "publish",
    "since",
    "status",
    "volume",
];
/// Keys `GET /images/json` accepts.
pub const IMAGE_LIST: &[&str] = &["before", "dangling", "label", "reference", "since", "until"];
/// Keys `GET /networks` accepts.
pub const NETWORK_LIST: &[&str] = &["dangling", "driver", "id", "label", "name", "scope", "type"];
/// Keys `GET /volumes` accepts.
pub const VOLUME_LIST: &[&str] = &["dangling", "driver", "label", "name"];
/// Keys `GET /events` accepts.
pub const EVENTS: &[&str] = &[
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "type",
    "volume",
];
/// Keys `POST /containers/prune` and `POST /networks/prune` accept.
pub const PRUNE: &[&str] = &["label", "label!", "until"];
/// Keys `POST /images/prune` accepts.
pub const IMAGE_PRUNE: &[&str] = &["dangling", "label", "label!", "until"];
/// Keys `POST /volumes/prune` accepts (`all` since API 1.42).
pub const VOLUME_PRUNE: &[&str] = &["all", "label", "label!"];

/// Container states `status=` may name.
const CONTAINER_STATUSES: &[&str] = &[
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

/// Parsed filters: key → values, in the order the client sent them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(BTreeMap<String, Vec<String>>);

impl Filters {
    /// Parses the raw `filters` parameter (already percent-decoded) and
    /// checks its keys against those the endpoint `accepts`.
    pub fn parse(raw: Option<&str>, accepts: &[&str]) -> Result<Filters> {
        let filters = Filters::decode(raw)?;
        if let Some(key) = filters.0.keys().find(|k| !accepts.contains(&k.as_str())) {
            return Err(Error::InvalidArgument(format!("invalid filter '{key}'")));
        }
        Ok(filters)
    }

    fn decode(raw: Option<&str>) -> Result<Filters> {
        let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
            return Ok(Filters::default());
        };
        let bad = |why: String| Error::InvalidArgument(format!("invalid filters: {why}"));
        let value: serde_json::Value = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
        let serde_json::Value::Object(object) = value else {
            return Err(bad("expected a JSON object of filter names".into()));
        };
        let mut out = BTreeMap::new();
        for (key, values) in object {
            let list: Vec<String> = match values {
                serde_json::Value::Array(items) => items
                    .into_iter()
                    .map(|v| match v {
                        serde_json::Value::String(s) => Ok(s),
                        other => Err(bad(format!("{key}: value {other} is not a string"))),
                    })
                    .collect::<Result<_>>()?,
                // The legacy encoding: {"value": true}; a false entry is
                // not a value (dockerd's map[string]bool reads it so).
                serde_json::Value::Object(map) => map
                    .into_iter()
                    .filter_map(|(v, on)| match on {
                        serde_json::Value::Bool(true) => Some(Ok(v)),
                        serde_json::Value::Bool(false) => None,
                        other => Some(Err(bad(format!(
                            "{key}: {v:?} maps to {other}, not a boolean"
                        )))),
                    })
                    .collect::<Result<_>>()?,
                other => {
                    return Err(bad(format!(
                        "{key}: {other} is neither a list nor an object"
                    )))
                }
            };
            out.insert(key, list);
        }
        Ok(Filters(out))
    }

    /// Filters built from pairs, for callers inside the engine and tests.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Filters {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in pairs {
            out.entry(k.to_string()).or_default().push(v.to_string());
        }
        Filters(out)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// The values given for `key` (empty when absent).
    pub fn values(&self, key: &str) -> &[String] {
        self.0.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// True when `key` is absent or one of its values satisfies `pred`.
    pub fn any(&self, key: &str, pred: impl Fn(&str) -> bool) -> bool {
        self.0
            .get(key)
            .is_none_or(|values| values.iter().any(|v| pred(v)))
    }

    /// `label` and `label!` against a resource's labels: every `label`
    /// condition holds and no `label!` condition does.
    pub fn labels_match(&self, labels: &BTreeMap<String, String>) -> bool {
        self.values("label").iter().all(|c| label_holds(c, labels))
            && !self.values("label!").iter().any(|c| label_holds(c, labels))
    }

    /// A boolean filter such as `dangling`: `true`/`1` or `false`/`0`;
    /// anything else is dockerd's 400. Two different answers match nothing,
    /// as dockerd reads them; here that is refused as well.
    pub fn boolean(&self, key: &str) -> Result<Option<bool>> {
        let mut answer = None;
        for v in self.values(key) {
            let b = match v.as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "invalid filter '{key}={v}'"
                    )))
                }
            };
            if answer.is_some_and(|a| a != b) {
                return Err(Error::InvalidArgument(format!(
                    "invalid filter '{key}': conflicting values"
                )));
            }
            answer = Some(b);
        }
        Ok(answer)
    }

    /// Checks `status=` values against the container states dockerd knows.
    pub fn check_container_statuses(&self) -> Result<()> {
        match self
            .values("status")
            .iter()
            .find(|s| !CONTAINER_STATUSES.contains(&s.as_str()))
        {
            Some(bad) => Err(Error::InvalidArgument(format!(
                "invalid filter 'status={bad}'"
            ))),
            None => Ok(()),
        }
    }

    /// `until=` of prune endpoints as a Unix time in seconds: a timestamp
    /// (RFC 3339 or seconds) or a duration before now (`10m`, `24h`).
    pub fn until(&self, now: i64) -> Result<Option<i64>> {
        let Some(v) = self.values("until").first() else {
            return Ok(None);
        };
        timestamp(v, now)
            .map(Some)
            .ok_or_else(|| Error::InvalidArgument(format!("invalid filter 'until={v}'")))
    }
}

/// Whether an event passes `GET /events` filters. Events carry their
/// object's labels among the actor's attributes, as dockerd's do.
pub fn event_matches(f: &Filters, ev: &cais_api::Event) -> bool {
    let attr = |k: &str| ev.actor.attributes.get(k).map(String::as_str);
    // An object filter names the event's actor by id (or a prefix of it) or
    // by name, and only events of that object type pass it.
    let names = |kind: &str, v: &str| {
        ev.kind == kind && (ev.actor.id.starts_with(v) || attr("name") == Some(v))
    };
    f.any("type", |v| ev.kind == v)
        // `health_status: healthy` is matched by `health_status` as well.
        && f.any("event", |v| {
            ev.action == v || ev.action.split_once(':').is_some_and(|(a, _)| a == v)
        })
        && f.any("container", |v| names("container", v))
        && f.any("image", |v| {
            attr("image") == Some(v) || (ev.kind == "image" && (ev.actor.id == v || attr("name") == Some(v)))
        })
        && f.any("network", |v| names("network", v))
        && f.any("volume", |v| names("volume", v))
        && f.any("daemon", |v| names("daemon", v))
        && f.any("scope", |v| v == "local")
        && ["node", "plugin", "service", "config", "secret"]
            .iter()
            .all(|k| !f.contains(k))
        && f.labels_match(&ev.actor.attributes)
}

fn label_holds(condition: &str, labels: &BTreeMap<String, String>) -> bool {
    match condition.split_once('=') {
        Some((key, value)) => labels.get(key).is_some_and(|v| v == value),
        None => labels.contains_key(condition),
    }
}

/// Docker's name filter is a regular expression; names are `[a-zA-Z0-9_.-]`,
/// so what clients send is a substring, optionally anchored with `^`/`$`
/// (docker compose anchors: `^/project_web_1$`). Containers' names are
/// matched with their leading slash, as dockerd does.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    let (anchored_start, rest) = match pattern.strip_prefix('^') {
        Some(r) => (true, r),
        None => (false, pattern),
    };
    let (anchored_end, needle) = match rest.strip_suffix('$') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    match (anchored_start, anchored_end) {
        (true, true) => name == needle,
        (true, false) => name.starts_with(needle),
        (false, true) => name.ends_with(needle),
        (false, false) => name.contains(needle),
    }
}

/// Docker's timestamps in filters and `since`/`until`: Unix seconds (with an
/// optional fraction), RFC 3339, or a Go duration counted back from `now`.
pub fn timestamp(v: &str, now: i64) -> Option<i64> {
    if let Ok(secs) = v.split('.').next().unwrap_or(v).parse::<i64>() {
        if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Some(secs);
        }
    }
    if let Some(t) = cais_image::time::parse_rfc3339(v) {
        return Some(t);
    }
    go_duration_secs(v).map(|d| now - d)
}

/// `1h30m`, `10m`, `45s`, `2h`: whole seconds.
fn go_duration_secs(v: &str) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    let (mut total, mut number) = (0f64, String::new());
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push('s');
            chars.next();
        }
        let n: f64 = number.parse().ok()?;
        number.clear();
        total += n * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
    }
    number.is_empty().then_some(total as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn both_encodings_parse_alike() {
        let list =
            Filters::parse(Some(r#"{"label":["a=1","b"]}"#), CONTAINER_LIST).expect("accepted");
        let map = Filters::parse(Some(r#"{"label":{"a=1":true,"b":true}}"#), CONTAINER_LIST)
            .expect("accepted");
        assert_eq!(list, map);
        assert_eq!(list.values("label"), ["a=1", "b"]);
        // A false entry of the legacy form is no value.
        let off = Filters::parse(Some(r#"{"label":{"a=1":true,"b":false}}"#), VOLUME_LIST)
            .expect("accepted");
        assert_eq!(off.values("label"), ["a=1"]);
        assert!(Filters::parse(None, EVENTS).expect("accepted").is_empty());
        assert!(Filters::parse(Some(""), EVENTS)
            .expect("accepted")
            .is_empty());
    }

    #[test]
    fn unknown_keys_are_refused_per_resource() {
        for (accepts, key) in [
            (CONTAINER_LIST, "bogus"),
            (IMAGE_LIST, "status"),
            (NETWORK_LIST, "ancestor"),
            (VOLUME_LIST, "id"),
            (EVENTS, "status"),
            (PRUNE, "name"),
            (IMAGE_PRUNE, "reference"),
            (VOLUME_PRUNE, "dangling"),
        ] {
            let raw = format!(r#"{{"{key}":["x"]}}"#);
            let err = Filters::parse(Some(&raw), accepts).expect_err("refused");
            assert_eq!(err.to_string(), format!("invalid filter '{key}'"));
            assert!(matches!(err, Error::InvalidArgument(_)));
        }
        // Each resource accepts its own keys, in both encodings.
        for (accepts, key) in [
            (CONTAINER_LIST, "ancestor"),
            (IMAGE_LIST, "reference"),
            (NETWORK_LIST, "driver"),
            (VOLUME_LIST, "dangling"),
            (EVENTS, "container"),
        ] {
            assert!(Filters::parse(Some(&format!(r#"{{"{key}":["x"]}}"#)), accepts).is_ok());
            assert!(Filters::parse(Some(&format!(r#"{{"{key}":{{"x":true}}}}"#)), accepts).is_ok());
        }
    }

    #[test]
    fn malformed_json_is_a_clear_400() {
        for raw in [
            "{",
            "[]",
            r#""label""#,
            r#"{"label":"a=1"}"#,
            r#"{"label":[1]}"#,
            r#"{"label":{"a":"yes"}}"#,
        ] {
            let err = Filters::parse(Some(raw), CONTAINER_LIST).expect_err("refused");
            assert!(
                err.to_string().starts_with("invalid filters"),
                "{raw}: {err}"
            );
        }
    }

    #[test]
    fn labels_and_together_and_test_presence_or_equality() {
        let both = labels(&[("a", "1"), ("b", "2")]);
        let only_a = labels(&[("a", "1")]);
        let f = Filters::from_pairs([("label", "a=1"), ("label", "b=2")]);
        assert!(f.labels_match(&both));
        assert!(!f.labels_match(&only_a), "two labels AND, never OR");
        let presence = Filters::from_pairs([("label", "b")]);
        assert!(presence.labels_match(&both) && !presence.labels_match(&only_a));
        let wrong_value = Filters::from_pairs([("label", "a=2")]);
        assert!(!wrong_value.labels_match(&both));
        // An empty value is equality with the empty string, not presence.
        let empty = Filters::from_pairs([("label", "a=")]);
        assert!(!empty.labels_match(&both));
        assert!(empty.labels_match(&labels(&[("a", "")])));
        let negated = Filters::from_pairs([("label!", "b")]);
        assert!(!negated.labels_match(&both) && negated.labels_match(&only_a));
        assert!(Filters::default().labels_match(&BTreeMap::new()));
    }

    #[test]
    fn other_keys_or_their_values() {
        let f = Filters::from_pairs([("name", "web"), ("name", "db")]);
        assert!(f.any("name", |v| "db_1".contains(v)));
        assert!(!f.any("name", |v| "cache".contains(v)));
        assert!(f.any("id", |_| false), "an absent key matches");
    }

    #[test]
    fn booleans_and_statuses_are_checked() {
        let f = Filters::from_pairs([("dangling", "true")]);
        assert_eq!(f.boolean("dangling").expect("accepted"), Some(true));
        assert_eq!(
            Filters::from_pairs([("dangling", "0")])
                .boolean("dangling")
                .expect("accepted"),
            Some(false)
        );
        let bad = Filters::from_pairs([("dangling", "maybe")]);
        assert_eq!(
            bad.boolean("dangling").expect_err("refused").to_string(),
            "invalid filter 'dangling=maybe'"
        );
        assert!(
            Filters::from_pairs([("dangling", "true"), ("dangling", "false")])
                .boolean("dangling")
                .is_err()
        );
        assert!(
            Filters::from_pairs([("status", "running"), ("status", "exited")])
                .check_container_statuses()
                .is_ok()
        );
        assert_eq!(
            Filters::from_pairs([("status", "bogus")])
                .check_container_statuses()
                .expect_err("refused")
                .to_string(),
            "invalid filter 'status=bogus'"
        );
    }

    #[test]
    fn names_match_like_docker_regexps() {
        assert!(name_matches("web", "/proj_web_1"));
        assert!(name_matches("^/proj_web_1$", "/proj_web_1"));
        assert!(!name_matches("^/proj_web_1$", "/proj_web_10"));
        assert!(name_matches("^/proj", "/proj_web_1"));
        assert!(!name_matches("^proj", "/proj_web_1"));
        assert!(name_matches("_1$", "/proj_web_1"));
    }

    #[test]
    fn until_reads_timestamps_and_durations() {
        let now = 1_700_000_000;
        let until = |v: &str| Filters::from_pairs([("until", v)]).until(now);
        assert_eq!(until("1600000000").expect("accepted"), Some(1_600_000_000));
        assert_eq!(
            until("1600000000.5").expect("accepted"),
            Some(1_600_000_000)
        );
        assert_eq!(until("10m").expect("accepted"), Some(now - 600));
        assert_eq!(until("1h30m").expect("accepted"), Some(now - 5400));
        assert_eq!(
            until("2023-11-14T22:13:20Z").expect("accepted"),
            Some(1_700_000_000)
        );
        for bad in ["", "soon", "10x", "1h30"] {
            assert!(until(bad).is_err(), "{bad}");
        }
        assert_eq!(Filters::default().until(now).expect("accepted"), None);
    }
}
