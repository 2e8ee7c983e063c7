//! The on-disk container record, `container.json` in the container's
//! directory: a format of its own with a `version`, converted to and from
//! the in-memory `Container` here and nowhere else.
//!
//! Version 1 (written now): the container's identity and configuration
//! (the create request's `config` and `host_config`, kept as the client
//! gave them), its mounts and endpoints, what it holds while running
//! (`net`), and its state as a tagged object holding only what that state
//! has: `{"Status": "running", "Pid": ..., "StartedAt": ..., "Health": ...}`,
//! `{"Status": "exited", "ExitCode": ..., "OOMKilled": ..., ...}`.
//!
//! Version 0 (no `version` field): what daemons wrote before, the same
//! fields with the state in the API's shape (`ContainerState`). It is read
//! as it is, so containers survive an upgrade, live ones included; the next
//! write of the record is version 1. A version newer than this daemon's is
//! refused, never misread.

use std::collections::BTreeMap;
use std::path::Path;

use cais_api::{ContainerConfig, ContainerState, EndpointSettings, Health, HostConfig, MountPoint};
use serde::{Deserialize, Serialize};

use crate::containers::state::{Container, LastRun, Process, State};
use crate::error::{Error, Result};
use crate::networks::netconf::NetState;

/// The version this daemon writes.
pub const VERSION: u32 = 1;

/// Version 1.
#[derive(Debug, Serialize, Deserialize)]
struct RecordV1 {
    version: u32,
    id: String,
    name: String,
    created: String,
    image: String,
    image_id: String,
    config: ContainerConfig,
    host_config: HostConfig,
    path: String,
    args: Vec<String>,
    state: StateV1,
    #[serde(default)]
    restart_count: i64,
    #[serde(default)]
    manually_stopped: bool,
    #[serde(default)]
    mounts: Vec<MountPoint>,
    #[serde(default)]
    anonymous_volumes: Vec<String>,
    #[serde(default)]
    networks: BTreeMap<String, EndpointSettings>,
    #[serde(default)]
    net: Option<NetState>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "Status", rename_all = "lowercase")]
enum StateV1 {
    Created {
        #[serde(rename = "Error", default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    Running(ProcessV1),
    Paused(ProcessV1),
    Restarting(LastRunV1),
    Exited(LastRunV1),
    Removing(LastRunV1),
    Dead(LastRunV1),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessV1 {
    pid: i64,
    started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    health: Option<Health>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LastRunV1 {
    exit_code: i64,
    #[serde(rename = "OOMKilled", default)]
    oom_killed: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    error: String,
    started_at: String,
    finished_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    health: Option<Health>,
}

/// Version 0: the record before it had a version.
#[derive(Debug, Deserialize)]
struct RecordV0 {
    id: String,
    name: String,
    created: String,
    image: String,
    image_id: String,
    config: ContainerConfig,
    host_config: HostConfig,
    path: String,
    args: Vec<String>,
    state: ContainerState,
    #[serde(default)]
    restart_count: i64,
    #[serde(default)]
    manually_stopped: bool,
    #[serde(default)]
    mounts: Vec<MountPoint>,
    #[serde(default)]
    anonymous_volumes: Vec<String>,
    #[serde(default)]
    networks: BTreeMap<String, EndpointSettings>,
    #[serde(default)]
    net: Option<NetState>,
}

/// Only the version, to pick the format.
#[derive(Deserialize)]
struct Version {
    #[serde(default)]
    version: u32,
}

/// The record of `c`, as written now.
pub fn encode(c: &Container) -> Vec<u8> {
    serde_json::to_vec_pretty(&RecordV1::from(c)).expect("records serialize")
}

/// A record of any version this daemon reads; `path` names it in errors.
pub fn decode(path: &Path, data: &[u8]) -> Result<Container> {
    let bad = |source| Error::Json {
        what: format!("the container record {}", path.display()),
        source,
    };
    match serde_json::from_slice::<Version>(data)
        .map_err(bad)?
        .version
    {
        0 => Ok(serde_json::from_slice::<RecordV0>(data)
            .map_err(bad)?
            .into()),
        1 => Ok(serde_json::from_slice::<RecordV1>(data)
            .map_err(bad)?
            .into()),
        version => Err(Error::RecordVersion {
            path: path.to_path_buf(),
            version,
            supported: VERSION,
        }),
    }
}

impl From<&Container> for RecordV1 {
    fn from(c: &Container) -> RecordV1 {
        RecordV1 {
            version: VERSION,
            id: c.id.clone(),
            name: c.name.clone(),
            created: c.created.clone(),
            image: c.image.clone(),
            image_id: c.image_id.clone(),
            config: c.config.clone(),
            host_config: c.host_config.clone(),
            path: c.path.clone(),
            args: c.args.clone(),
            state: StateV1::from(&c.state),
            restart_count: c.restart_count,
            manually_stopped: c.manually_stopped,
            mounts: c.mounts.clone(),
            anonymous_volumes: c.anonymous_volumes.clone(),
            networks: c.networks.clone(),
            net: c.net.clone(),
        }
    }
}

impl From<RecordV1> for Container {
    fn from(r: RecordV1) -> Container {
        Container {
            id: r.id,
            name: r.name,
            created: r.created,
            image: r.image,
            image_id: r.image_id,
            config: r.config,
            host_config: r.host_config,
            path: r.path,
            args: r.args,
            state: r.state.into(),
            restart_count: r.restart_count,
            manually_stopped: r.manually_stopped,
            mounts: r.mounts,
            anonymous_volumes: r.anonymous_volumes,
            networks: r.networks,
            net: r.net,
        }
    }
}

impl From<RecordV0> for Container {
    fn from(r: RecordV0) -> Container {
        Container {
            id: r.id,
            name: r.name,
            created: r.created,
            image: r.image,
            image_id: r.image_id,
            config: r.config,
            host_config: r.host_config,
            path: r.path,
            args: r.args,
            state: State::from_wire(&r.state),
            restart_count: r.restart_count,
            manually_stopped: r.manually_stopped,
            mounts: r.mounts,
            anonymous_volumes: r.anonymous_volumes,
            networks: r.networks,
            net: r.net,
        }
    }
}

impl From<&State> for StateV1 {
    fn from(s: &State) -> StateV1 {
        let process = |p: &Process| ProcessV1 {
            pid: p.pid,
            started_at: p.started_at.clone(),
            health: p.health.clone(),
        };
        let last = |l: &LastRun| LastRunV1 {
            exit_code: l.exit_code,
            oom_killed: l.oom_killed,
            error: l.error.clone(),
            started_at: l.started_at.clone(),
            finished_at: l.finished_at.clone(),
            health: l.health.clone(),
        };
        match s {
            State::Created { error } => StateV1::Created {
                error: error.clone(),
            },
            State::Running(p) => StateV1::Running(process(p)),
            State::Paused(p) => StateV1::Paused(process(p)),
            State::Restarting(l) => StateV1::Restarting(last(l)),
            State::Exited(l) => StateV1::Exited(last(l)),
            State::Removing(l) => StateV1::Removing(last(l)),
            State::Dead(l) => StateV1::Dead(last(l)),
        }
    }
}

impl From<StateV1> for State {
    fn from(s: StateV1) -> State {
        let process = |p: ProcessV1| Process {
            pid: p.pid,
            started_at: p.started_at,
            health: p.health,
        };
        let last = |l: LastRunV1| LastRun {
            exit_code: l.exit_code,
            oom_killed: l.oom_killed,
            error: l.error,
            started_at: l.started_at,
            finished_at: l.finished_at,
            health: l.health,
        };
        match s {
            StateV1::Created { error } => State::Created { error },
            StateV1::Running(p) => State::Running(process(p)),
            StateV1::Paused(p) => State::Paused(process(p)),
            StateV1::Restarting(l) => State::Restarting(last(l)),
            StateV1::Exited(l) => State::Exited(last(l)),
            StateV1::Removing(l) => State::Removing(last(l)),
            StateV1::Dead(l) => State::Dead(last(l)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records a daemon of the previous format wrote (`docker run -d` with
    /// a health check, a published port and a user network; paused; exited
    /// with 3; created), byte for byte.
    const V0: [(&str, &str); 4] = [
        ("running", include_str!("testdata/record-v0-running.json")),
        ("paused", include_str!("testdata/record-v0-paused.json")),
        ("exited", include_str!("testdata/record-v0-exited.json")),
        ("created", include_str!("testdata/record-v0-created.json")),
    ];

    fn json(data: &[u8]) -> serde_json::Value {
        serde_json::from_slice(data).expect("JSON")
    }

    /// Whether `new` has every value of `old`, objects compared key by
    /// key; an empty old value may be missing.
    fn holds(new: &serde_json::Value, old: &serde_json::Value) -> bool {
        use serde_json::Value;
        let empty = |v: &Value| match v {
            Value::Null => true,
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            _ => false,
        };
        match (new, old) {
            (Value::Object(n), Value::Object(o)) => o.iter().all(|(k, ov)| match n.get(k) {
                Some(nv) => holds(nv, ov),
                None => empty(ov),
            }),
            // Lists and maps nobody set are written null, as inspect shows them.
            (Value::Null, o) => empty(o),
            (n, o) => n == o,
        }
    }

    #[test]
    fn records_written_before_versions_load_whole() {
        for (word, text) in V0 {
            let c = decode(Path::new(word), text.as_bytes()).expect(word);
            assert_eq!(c.state.word(), word);
            let old = json(text.as_bytes());
            // The state reads back as the API showed it then...
            assert_eq!(
                serde_json::to_value(c.state.to_wire()).expect("wire"),
                old["state"],
                "{word}"
            );
            // ...and nothing else is lost on the way to the new format.
            let mut new = json(&encode(&c));
            assert_eq!(new["version"], VERSION);
            let mut old = old;
            for v in [&mut new, &mut old] {
                let o = v.as_object_mut().expect("an object");
                o.remove("version");
                o.remove("state");
            }
            // Fields added since are there with their defaults; every old
            // value is kept (an empty one may be left out, as inspect does).
            assert!(holds(&new, &old), "{word}: {new}\nlost part of\n{old}");
        }
        let running = decode(Path::new("running"), V0[0].1.as_bytes()).expect("running");
        let p = running.state.process().expect("a process");
        assert_eq!(p.pid, 2842);
        assert_eq!(p.started_at, "2026-12-07T22:04:47.106976936Z");
        assert_eq!(p.health.as_ref().map(|h| h.log.len()), Some(5));
        let net = running.net.as_ref().expect("what it holds while running");
        assert_eq!(net.links[0].ip.to_string(), "172.20.0.2");
        assert_eq!(net.ports[0].host_port, 18080);
        assert!(running.networks.contains_key("n1"));
        let exited = decode(Path::new("exited"), V0[2].1.as_bytes()).expect("exited");
        assert_eq!(exited.state.exit_code(), 3);
        assert_eq!(exited.state.pid(), 0);
    }

    #[test]
    fn records_round_trip_in_every_state() {
        let base = decode(Path::new("running"), V0[0].1.as_bytes()).expect("running");
        let Some(p) = base.state.process().cloned() else {
            panic!("running")
        };
        let last = LastRun {
            exit_code: 137,
            oom_killed: true,
            error: "failed to start".into(),
            started_at: p.started_at.clone(),
            finished_at: "2026-12-07T23:00:00.5Z".into(),
            health: p.health.clone(),
        };
        for state in [
            State::created(),
            State::Created {
                error: Some("exec: not found".into()),
            },
            State::Running(p.clone()),
            State::Paused(p),
            State::Restarting(last.clone()),
            State::Exited(last.clone()),
            State::Removing(last.clone()),
            State::Dead(last),
        ] {
            let c = Container {
                state: state.clone(),
                ..base.clone()
            };
            let bytes = encode(&c);
            let back = decode(Path::new("v1"), &bytes).expect("v1 decodes");
            assert_eq!(back.state, state);
            assert_eq!(json(&encode(&back)), json(&bytes));
        }
    }

    #[test]
    fn the_new_state_holds_only_what_it_has() {
        let running = decode(Path::new("running"), V0[0].1.as_bytes()).expect("running");
        let v = json(&encode(&running));
        assert_eq!(v["state"]["Status"], "running");
        assert_eq!(v["state"]["Pid"], 2842);
        assert_eq!(v["state"]["Health"]["Status"], "healthy");
        for absent in ["Running", "Paused", "ExitCode", "FinishedAt", "Dead"] {
            assert!(
                v["state"].get(absent).is_none(),
                "{absent} in {}",
                v["state"]
            );
        }
        let exited = decode(Path::new("exited"), V0[2].1.as_bytes()).expect("exited");
        let v = json(&encode(&exited));
        assert_eq!(v["state"]["Status"], "exited");
        assert_eq!(v["state"]["ExitCode"], 3);
        assert!(v["state"].get("Pid").is_none(), "{}", v["state"]);
    }

    #[test]
    fn newer_and_broken_records_are_refused() {
        let newer = br#"{"version": 2, "id": "x"}"#;
        let e = decode(Path::new("/r/container.json"), newer).expect_err("a newer version");
        assert!(e.to_string().contains("version 2"), "{e}");
        let torn = &V0[0].1.as_bytes()[..100];
        let e = decode(Path::new("/r/container.json"), torn).expect_err("a torn record");
        assert!(e.to_string().contains("/r/container.json"), "{e}");
        let no_state = br#"{"version": 1, "id": "x", "name": "y"}"#;
        assert!(decode(Path::new("r"), no_state).is_err());
    }
}
