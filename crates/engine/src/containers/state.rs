//! What the engine holds of one container in memory: its configuration as
//! created, its `State`, and what it holds while it runs.
//!
//! The state is an enum whose variants carry what is true in them (a pid
//! only while the process runs, an exit code only once it exited), changed
//! only through `State::apply`, which refuses a change the current state
//! does not allow. The API's `ContainerState` is produced from it at the
//! edge (`to_wire`), never stored.

use std::collections::BTreeMap;

use cais_api::{ContainerConfig, ContainerState, EndpointSettings, Health, HostConfig, MountPoint};

use crate::error::IllegalChange;
use crate::events::Events;
use crate::ids::ZERO_TIME;
use crate::networks::netconf::NetState;

/// A running (or paused) container's process.
#[derive(Debug, Clone, PartialEq)]
pub struct Process {
    pub pid: i64,
    pub started_at: String,
    /// The health check's status and log, when it has one.
    pub health: Option<Health>,
}

/// What a container's last run left, shown after it stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct LastRun {
    pub exit_code: i64,
    pub oom_killed: bool,
    /// Why the last start failed ("" when it did not).
    pub error: String,
    /// `ZERO_TIME` when it never ran.
    pub started_at: String,
    pub finished_at: String,
    /// The last health status and log ("unhealthy" once it stopped).
    pub health: Option<Health>,
}

/// A container's state.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Created and never started; `error` is why its last start failed.
    Created {
        error: Option<String>,
    },
    Running(Process),
    /// Running, frozen by `pause`.
    Paused(Process),
    /// Exited; its restart policy starts it again after a back-off.
    Restarting(LastRun),
    Exited(LastRun),
    /// `rm` is under way.
    Removing(LastRun),
    /// `rm` failed half way: only another `rm` applies.
    Dead(LastRun),
}

/// A change of state, as the life cycle asks for it.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The process runs (from Created, Exited or Restarting).
    Started {
        pid: i64,
        started_at: String,
        health: Option<Health>,
    },
    /// A start failed before the process ran (the state stays, with the
    /// error and exit code 127, as dockerd shows it).
    StartFailed {
        error: String,
    },
    /// The process exited (from Running or Paused; from Restarting when
    /// the daemon finds a container's shim gone after a restart).
    Exited {
        exit_code: i64,
        oom_killed: bool,
        finished_at: String,
    },
    Paused,
    Unpaused,
    /// The restart policy will start the exited container again.
    RestartScheduled,
    /// The scheduled restart will not happen (stopped, or its start failed).
    RestartAbandoned,
    /// `rm` begins (the process, if any, is gone).
    RemovalStarted,
    /// `rm` failed after it began.
    RemovalFailed,
    /// A health check result (while the process runs).
    HealthChecked(Health),
}

impl Change {
    fn verb(&self) -> &'static str {
        match self {
            Change::Started { .. } => "start",
            Change::StartFailed { .. } => "record a failed start of",
            Change::Exited { .. } => "record the exit of",
            Change::Paused => "pause",
            Change::Unpaused => "unpause",
            Change::RestartScheduled => "schedule a restart of",
            Change::RestartAbandoned => "abandon the restart of",
            Change::RemovalStarted => "remove",
            Change::RemovalFailed => "record a failed removal of",
            Change::HealthChecked(_) => "record a health check of",
        }
    }
}

impl State {
    /// A new container's state.
    pub fn created() -> State {
        State::Created { error: None }
    }

    /// The state after `change`, or why it cannot happen.
    pub fn apply(&self, change: Change) -> Result<State, IllegalChange> {
        let illegal = IllegalChange {
            state: self.word(),
            verb: change.verb(),
        };
        Ok(match (self, change) {
            (
                State::Created { .. } | State::Exited(_) | State::Restarting(_),
                Change::Started {
                    pid,
                    started_at,
                    health,
                },
            ) => State::Running(Process {
                pid,
                started_at,
                health,
            }),
            (State::Created { .. }, Change::StartFailed { error }) => {
                State::Created { error: Some(error) }
            }
            (State::Exited(last), Change::StartFailed { error }) => {
                State::Exited(last.failed_start(error))
            }
            (State::Restarting(last), Change::StartFailed { error }) => {
                State::Restarting(last.failed_start(error))
            }
            (
                State::Running(p) | State::Paused(p),
                Change::Exited {
                    exit_code,
                    oom_killed,
                    finished_at,
                },
            ) => State::Exited(LastRun {
                exit_code,
                oom_killed,
                error: String::new(),
                started_at: p.started_at.clone(),
                finished_at,
                health: p.health.clone().map(|h| Health {
                    status: "unhealthy".into(),
                    ..h
                }),
            }),
            (
                State::Restarting(last),
                Change::Exited {
                    exit_code,
                    oom_killed,
                    finished_at,
                },
            ) => State::Exited(LastRun {
                exit_code,
                oom_killed,
                finished_at,
                ..last.clone()
            }),
            (State::Running(p), Change::Paused) => State::Paused(p.clone()),
            (State::Paused(p), Change::Unpaused) => State::Running(p.clone()),
            (State::Exited(last), Change::RestartScheduled) => State::Restarting(last.clone()),
            (State::Restarting(last), Change::RestartAbandoned) => State::Exited(last.clone()),
            (
                State::Created { .. } | State::Exited(_) | State::Restarting(_) | State::Dead(_),
                Change::RemovalStarted,
            ) => State::Removing(self.last_run()),
            (State::Removing(last), Change::RemovalFailed) => State::Dead(last.clone()),
            (State::Running(p), Change::HealthChecked(h)) => State::Running(Process {
                health: Some(h),
                ..p.clone()
            }),
            (State::Paused(p), Change::HealthChecked(h)) => State::Paused(Process {
                health: Some(h),
                ..p.clone()
            }),
            _ => return Err(illegal),
        })
    }

    /// docker's one word for it (`ps`'s State, the `status` filter).
    pub fn word(&self) -> &'static str {
        match self {
            State::Created { .. } => "created",
            State::Running(_) => "running",
            State::Paused(_) => "paused",
            State::Restarting(_) => "restarting",
            State::Exited(_) => "exited",
            State::Removing(_) => "removing",
            State::Dead(_) => "dead",
        }
    }

    /// Whether its process runs (paused or not).
    pub fn is_running(&self) -> bool {
        matches!(self, State::Running(_) | State::Paused(_))
    }

    pub fn is_paused(&self) -> bool {
        matches!(self, State::Paused(_))
    }

    pub fn is_restarting(&self) -> bool {
        matches!(self, State::Restarting(_))
    }

    /// Neither running, nor about to run again, nor being removed: what
    /// `wait` waits for.
    pub fn is_stopped(&self) -> bool {
        matches!(
            self,
            State::Created { .. } | State::Exited(_) | State::Dead(_)
        )
    }

    /// The process, while it runs.
    pub fn process(&self) -> Option<&Process> {
        match self {
            State::Running(p) | State::Paused(p) => Some(p),
            _ => None,
        }
    }

    /// The pid of its process, 0 when it has none.
    pub fn pid(&self) -> i64 {
        self.process().map_or(0, |p| p.pid)
    }

    pub fn started_at(&self) -> &str {
        match self {
            State::Created { .. } => ZERO_TIME,
            State::Running(p) | State::Paused(p) => &p.started_at,
            State::Restarting(l) | State::Exited(l) | State::Removing(l) | State::Dead(l) => {
                &l.started_at
            }
        }
    }

    pub fn finished_at(&self) -> &str {
        match self {
            State::Created { .. } | State::Running(_) | State::Paused(_) => ZERO_TIME,
            State::Restarting(l) | State::Exited(l) | State::Removing(l) | State::Dead(l) => {
                &l.finished_at
            }
        }
    }

    /// The last exit code: 0 while running, 127 after a failed first start.
    pub fn exit_code(&self) -> i64 {
        self.last_run().exit_code
    }

    pub fn health(&self) -> Option<&Health> {
        match self {
            State::Created { .. } => None,
            State::Running(p) | State::Paused(p) => p.health.as_ref(),
            State::Restarting(l) | State::Exited(l) | State::Removing(l) | State::Dead(l) => {
                l.health.as_ref()
            }
        }
    }

    /// What the wire shows of the last run, in any state.
    fn last_run(&self) -> LastRun {
        match self {
            State::Created { error } => LastRun {
                exit_code: if error.is_some() { 127 } else { 0 },
                oom_killed: false,
                error: error.clone().unwrap_or_default(),
                started_at: ZERO_TIME.into(),
                finished_at: ZERO_TIME.into(),
                health: None,
            },
            State::Running(p) | State::Paused(p) => LastRun {
                exit_code: 0,
                oom_killed: false,
                error: String::new(),
                started_at: p.started_at.clone(),
                finished_at: ZERO_TIME.into(),
                health: p.health.clone(),
            },
            State::Restarting(l) | State::Exited(l) | State::Removing(l) | State::Dead(l) => {
                l.clone()
            }
        }
    }

    /// The API's `State` of container inspect.
    pub fn to_wire(&self) -> ContainerState {
        let last = self.last_run();
        ContainerState {
            status: self.word().into(),
            running: self.is_running(),
            paused: self.is_paused(),
            restarting: self.is_restarting(),
            oom_killed: last.oom_killed,
            dead: matches!(self, State::Dead(_)),
            pid: self.pid(),
            exit_code: last.exit_code,
            error: last.error,
            started_at: last.started_at,
            finished_at: last.finished_at,
            health: last.health,
        }
    }

    /// The state a wire `State` describes: how records written before the
    /// state had a format of its own are read. Flags win over the status
    /// word, in the order `ps` always read them.
    pub fn from_wire(w: &ContainerState) -> State {
        let process = || Process {
            pid: w.pid,
            started_at: w.started_at.clone(),
            health: w.health.clone(),
        };
        let last = || LastRun {
            exit_code: w.exit_code,
            oom_killed: w.oom_killed,
            error: w.error.clone(),
            started_at: w.started_at.clone(),
            finished_at: w.finished_at.clone(),
            health: w.health.clone(),
        };
        if w.running && w.paused {
            State::Paused(process())
        } else if w.running {
            State::Running(process())
        } else if w.restarting {
            State::Restarting(last())
        } else if w.dead || w.status == "dead" {
            State::Dead(last())
        } else if w.status == "created" {
            State::Created {
                error: (!w.error.is_empty()).then(|| w.error.clone()),
            }
        } else if w.status == "removing" {
            State::Removing(last())
        } else {
            State::Exited(last())
        }
    }
}

impl LastRun {
    fn failed_start(&self, error: String) -> LastRun {
        LastRun {
            exit_code: 127,
            error,
            ..self.clone()
        }
    }
}

/// One container (persisted by `record`).
#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub created: String,
    pub image: String,
    pub image_id: String,
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    pub path: String,
    pub args: Vec<String>,
    pub state: State,
    pub restart_count: i64,
    /// Set by `stop`/`kill` through the API: restart policies leave the
    /// container alone ("unless-stopped", and "always" until the daemon restarts).
    pub manually_stopped: bool,
    pub mounts: Vec<MountPoint>,
    /// Anonymous volumes, removed with the container by `rm -v` and `--rm`.
    pub anonymous_volumes: Vec<String>,
    /// Endpoints by network name: what was asked, and while running what
    /// was given (address, gateway...).
    pub networks: BTreeMap<String, EndpointSettings>,
    /// The network namespace, interfaces and ports held while running.
    pub net: Option<NetState>,
}

impl Container {
    /// A `container` event about this container: its name, image and
    /// labels are the attributes, with `extra` ones.
    pub(crate) fn emit(&self, events: &Events, action: &str, extra: &[(&str, String)]) {
        let mut attrs = BTreeMap::new();
        attrs.insert("name".into(), self.name.clone());
        attrs.insert("image".into(), self.image.clone());
        for (k, v) in &self.config.labels {
            attrs.insert(k.clone(), v.clone());
        }
        for (k, v) in extra {
            attrs.insert((*k).into(), v.clone());
        }
        events.emit("container", action, &self.id, attrs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cais_api::HealthLog;

    const T0: &str = "2024-05-01T10:00:00.000000001Z";
    const T1: &str = "2024-05-01T10:05:00.000000002Z";

    fn health(status: &str) -> Health {
        Health {
            status: status.into(),
            failing_streak: 0,
            log: vec![HealthLog {
                start: T0.into(),
                end: T0.into(),
                exit_code: 0,
                output: "ok".into(),
            }],
        }
    }

    fn process() -> Process {
        Process {
            pid: 4242,
            started_at: T0.into(),
            health: Some(health("healthy")),
        }
    }

    fn last_run() -> LastRun {
        LastRun {
            exit_code: 3,
            oom_killed: true,
            error: String::new(),
            started_at: T0.into(),
            finished_at: T1.into(),
            health: Some(health("unhealthy")),
        }
    }

    /// One state of each kind.
    fn every_state() -> Vec<State> {
        vec![
            State::created(),
            State::Running(process()),
            State::Paused(process()),
            State::Restarting(last_run()),
            State::Exited(last_run()),
            State::Removing(last_run()),
            State::Dead(last_run()),
        ]
    }

    fn every_change() -> Vec<Change> {
        vec![
            Change::Started {
                pid: 7,
                started_at: T1.into(),
                health: None,
            },
            Change::StartFailed {
                error: "no such file".into(),
            },
            Change::Exited {
                exit_code: 9,
                oom_killed: false,
                finished_at: T1.into(),
            },
            Change::Paused,
            Change::Unpaused,
            Change::RestartScheduled,
            Change::RestartAbandoned,
            Change::RemovalStarted,
            Change::RemovalFailed,
            Change::HealthChecked(health("healthy")),
        ]
    }

    /// For each change, the states it may leave and the state each goes to.
    fn legal(change: &Change) -> &'static [(&'static str, &'static str)] {
        match change {
            Change::Started { .. } => &[
                ("created", "running"),
                ("restarting", "running"),
                ("exited", "running"),
            ],
            Change::StartFailed { .. } => &[
                ("created", "created"),
                ("restarting", "restarting"),
                ("exited", "exited"),
            ],
            Change::Exited { .. } => &[
                ("running", "exited"),
                ("paused", "exited"),
                ("restarting", "exited"),
            ],
            Change::Paused => &[("running", "paused")],
            Change::Unpaused => &[("paused", "running")],
            Change::RestartScheduled => &[("exited", "restarting")],
            Change::RestartAbandoned => &[("restarting", "exited")],
            Change::RemovalStarted => &[
                ("created", "removing"),
                ("restarting", "removing"),
                ("exited", "removing"),
                ("dead", "removing"),
            ],
            Change::RemovalFailed => &[("removing", "dead")],
            Change::HealthChecked(_) => &[("running", "running"), ("paused", "paused")],
        }
    }

    #[test]
    fn only_the_life_cycles_transitions_are_legal() {
        let mut legal_count = 0;
        for state in every_state() {
            for change in every_change() {
                let want = legal(&change)
                    .iter()
                    .find(|(from, _)| *from == state.word())
                    .map(|(_, to)| *to);
                match (state.apply(change.clone()), want) {
                    (Ok(next), Some(to)) => {
                        assert_eq!(next.word(), to, "{} + {change:?}", state.word());
                        legal_count += 1;
                    }
                    (Err(e), None) => {
                        assert_eq!(e.state, state.word());
                        assert!(e.to_string().contains(state.word()), "{e}");
                    }
                    (got, want) => panic!(
                        "{} + {change:?}: got {got:?}, the life cycle says {want:?}",
                        state.word()
                    ),
                }
            }
        }
        assert_eq!(legal_count, 20, "every legal pair was tried");
    }

    #[test]
    fn an_exit_keeps_the_run_and_marks_its_health_unhealthy() {
        let exited = State::Running(process())
            .apply(Change::Exited {
                exit_code: 137,
                oom_killed: true,
                finished_at: T1.into(),
            })
            .expect("a running container exits");
        let State::Exited(last) = &exited else {
            panic!("{exited:?}");
        };
        assert_eq!((last.exit_code, last.oom_killed), (137, true));
        assert_eq!(
            (last.started_at.as_str(), last.finished_at.as_str()),
            (T0, T1)
        );
        let h = last.health.as_ref().expect("the health log stays");
        assert_eq!(h.status, "unhealthy");
        assert_eq!(h.log.len(), 1);
        assert_eq!(exited.pid(), 0);
        // A failed restart keeps that exit's times, with docker's 127.
        let failed = exited
            .apply(Change::RestartScheduled)
            .and_then(|s| {
                s.apply(Change::StartFailed {
                    error: "boom".into(),
                })
            })
            .and_then(|s| s.apply(Change::RestartAbandoned))
            .expect("restart, fail, give up");
        let w = failed.to_wire();
        assert_eq!(
            (w.status.as_str(), w.exit_code, w.error.as_str()),
            ("exited", 127, "boom")
        );
        assert_eq!(w.finished_at, T1);
    }

    #[test]
    fn each_state_looks_on_the_wire_as_dockerd_shows_it() {
        let w = State::created().to_wire();
        assert_eq!(
            w,
            ContainerState {
                status: "created".into(),
                started_at: ZERO_TIME.into(),
                finished_at: ZERO_TIME.into(),
                ..Default::default()
            }
        );
        let failed = State::created()
            .apply(Change::StartFailed {
                error: "exec: not found".into(),
            })
            .expect("a failed first start")
            .to_wire();
        assert_eq!(
            (
                failed.status.as_str(),
                failed.exit_code,
                failed.error.as_str()
            ),
            ("created", 127, "exec: not found")
        );
        let running = ContainerState {
            status: "running".into(),
            running: true,
            pid: 4242,
            started_at: T0.into(),
            finished_at: ZERO_TIME.into(),
            health: Some(health("healthy")),
            ..Default::default()
        };
        assert_eq!(State::Running(process()).to_wire(), running);
        assert_eq!(
            State::Paused(process()).to_wire(),
            ContainerState {
                status: "paused".into(),
                paused: true,
                ..running
            }
        );
        let exited = ContainerState {
            status: "exited".into(),
            oom_killed: true,
            exit_code: 3,
            started_at: T0.into(),
            finished_at: T1.into(),
            health: Some(health("unhealthy")),
            ..Default::default()
        };
        assert_eq!(State::Exited(last_run()).to_wire(), exited);
        assert_eq!(
            State::Restarting(last_run()).to_wire(),
            ContainerState {
                status: "restarting".into(),
                restarting: true,
                ..exited.clone()
            }
        );
        assert_eq!(
            State::Removing(last_run()).to_wire(),
            ContainerState {
                status: "removing".into(),
                ..exited.clone()
            }
        );
        assert_eq!(
            State::Dead(last_run()).to_wire(),
            ContainerState {
                status: "dead".into(),
                dead: true,
                ..exited
            }
        );
    }

    #[test]
    fn wire_states_read_back_as_the_same_state() {
        for state in every_state() {
            assert_eq!(State::from_wire(&state.to_wire()), state);
        }
        let failed = State::Created {
            error: Some("boom".into()),
        };
        assert_eq!(State::from_wire(&failed.to_wire()), failed);
        // What a daemon restart left in a record before states had a
        // format of their own: flags cleared, the word not yet: `ps`
        // called it exited.
        let half = ContainerState {
            status: "restarting".into(),
            exit_code: 1,
            started_at: T0.into(),
            finished_at: T1.into(),
            ..Default::default()
        };
        assert_eq!(State::from_wire(&half).word(), "exited");
    }
}
