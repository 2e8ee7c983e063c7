//! What `up` must do to one service, decided from the desired state and
//! the containers its labels found, with no daemon in sight; and the order
//! services go in (dependencies first, independent ones together).

use std::collections::{BTreeMap, BTreeSet};

use crate::model::Project;

/// A container found by its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    pub id: String,
    pub name: String,
    /// `com.docker.compose.container-number`.
    pub number: u32,
    /// `com.docker.compose.config-hash`.
    pub hash: String,
    /// `running`, `exited`, `created`, `paused`...
    pub state: String,
}

/// One step for one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create and start replica `number`.
    Create { number: u32 },
    /// Replace a container whose configuration changed (same number).
    Recreate { old: Existing },
    /// Start a stopped container whose configuration is current.
    Start { container: Existing },
    /// Nothing to do: up to date and running.
    Keep { container: Existing },
    /// Stop and remove a replica above the scale.
    Remove { container: Existing },
}

/// How `up` treats existing containers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Recreate {
    /// When the configuration hash changed.
    #[default]
    Diverged,
    /// Always (`--force-recreate`).
    Force,
    /// Never (`--no-recreate`).
    Never,
}

/// The actions that bring `existing` to `replicas` containers of hash
/// `hash`: the lowest numbers are kept, the highest removed first, new
/// replicas take the free numbers from 1 up.
pub fn service_actions(
    existing: &[Existing],
    replicas: u32,
    hash: &str,
    recreate: Recreate,
) -> Vec<Action> {
    let mut sorted: Vec<Existing> = existing.to_vec();
    sorted.sort_by_key(|c| c.number);
    let mut actions = Vec::new();
    let keep = replicas as usize;
    for (i, c) in sorted.iter().enumerate() {
        if i >= keep {
            continue;
        }
        let diverged = match recreate {
            Recreate::Force => true,
            Recreate::Never => false,
            Recreate::Diverged => c.hash != hash,
        };
        if diverged {
            actions.push(Action::Recreate { old: c.clone() });
        } else if c.state == "running" {
            actions.push(Action::Keep {
                container: c.clone(),
            });
        } else {
            actions.push(Action::Start {
                container: c.clone(),
            });
        }
    }
    // Scale down: the highest numbers go first.
    for c in sorted.iter().skip(keep).rev() {
        actions.push(Action::Remove {
            container: c.clone(),
        });
    }
    let used: BTreeSet<u32> = sorted.iter().take(keep).map(|c| c.number).collect();
    let mut next = 1;
    for _ in sorted.len().min(keep)..keep {
        while used.contains(&next) {
            next += 1;
        }
        actions.push(Action::Create { number: next });
        next += 1;
    }
    actions
}

/// `targets` and, unless `no_deps`, every service they depend on.
pub fn with_dependencies(project: &Project, targets: &[String], no_deps: bool) -> BTreeSet<String> {
    if targets.is_empty() {
        return project.services.keys().cloned().collect();
    }
    let mut out = BTreeSet::new();
    let mut todo: Vec<String> = targets.to_vec();
    while let Some(s) = todo.pop() {
        if !out.insert(s.clone()) || no_deps {
            continue;
        }
        if let Some(svc) = project.services.get(&s) {
            todo.extend(
                svc.dependencies()
                    .into_iter()
                    .filter(|d| project.services.contains_key(d)),
            );
        }
    }
    out
}

/// `services` in dependency order, as levels: each level's services only
/// depend on earlier levels, so a level can run in parallel.
pub fn levels(project: &Project, services: &BTreeSet<String>) -> Vec<Vec<String>> {
    let mut level_of: BTreeMap<String, usize> = BTreeMap::new();
    fn depth(
        s: &str,
        project: &Project,
        services: &BTreeSet<String>,
        memo: &mut BTreeMap<String, usize>,
        guard: usize,
    ) -> usize {
        if let Some(d) = memo.get(s) {
            return *d;
        }
        // The loader refuses cycles; the guard only keeps this finite.
        if guard > services.len() {
            return 0;
        }
        let d = project
            .services
            .get(s)
            .map(|svc| {
                svc.dependencies()
                    .iter()
                    .filter(|d| services.contains(*d))
                    .map(|d| depth(d, project, services, memo, guard + 1) + 1)
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        memo.insert(s.to_string(), d);
        d
    }
    for s in services {
        depth(s, project, services, &mut level_of, 0);
    }
    let max = level_of.values().copied().max().unwrap_or(0);
    let mut out = vec![Vec::new(); if services.is_empty() { 0 } else { max + 1 }];
    for (s, d) in level_of {
        out[d].push(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Dependency, Service};

    fn c(number: u32, hash: &str, state: &str) -> Existing {
        Existing {
            id: format!("id{number}"),
            name: format!("p-web-{number}"),
            number,
            hash: hash.into(),
            state: state.into(),
        }
    }

    #[test]
    fn unchanged_running_containers_are_kept() {
        let a = service_actions(&[c(1, "h", "running")], 1, "h", Recreate::Diverged);
        assert_eq!(
            a,
            [Action::Keep {
                container: c(1, "h", "running")
            }]
        );
        let a = service_actions(&[c(1, "h", "exited")], 1, "h", Recreate::Diverged);
        assert_eq!(
            a,
            [Action::Start {
                container: c(1, "h", "exited")
            }]
        );
    }

    #[test]
    fn changed_containers_are_recreated_unless_told_not_to() {
        let a = service_actions(&[c(1, "old", "running")], 1, "new", Recreate::Diverged);
        assert_eq!(
            a,
            [Action::Recreate {
                old: c(1, "old", "running")
            }]
        );
        let a = service_actions(&[c(1, "old", "running")], 1, "new", Recreate::Never);
        assert_eq!(
            a,
            [Action::Keep {
                container: c(1, "old", "running")
            }]
        );
        let a = service_actions(&[c(1, "h", "running")], 1, "h", Recreate::Force);
        assert_eq!(
            a,
            [Action::Recreate {
                old: c(1, "h", "running")
            }]
        );
    }

    #[test]
    fn scaling_up_fills_free_numbers_and_down_removes_the_highest() {
        let a = service_actions(&[c(2, "h", "running")], 3, "h", Recreate::Diverged);
        assert_eq!(
            a,
            [
                Action::Keep {
                    container: c(2, "h", "running")
                },
                Action::Create { number: 1 },
                Action::Create { number: 3 },
            ]
        );
        let a = service_actions(
            &[
                c(3, "h", "running"),
                c(1, "h", "running"),
                c(2, "h", "running"),
            ],
            1,
            "h",
            Recreate::Diverged,
        );
        assert_eq!(
            a,
            [
                Action::Keep {
                    container: c(1, "h", "running")
                },
                Action::Remove {
                    container: c(3, "h", "running")
                },
                Action::Remove {
                    container: c(2, "h", "running")
                },
            ]
        );
        assert_eq!(service_actions(&[], 0, "h", Recreate::Diverged), []);
    }

    #[test]
    fn levels_follow_dependencies() {
        let mut p = Project::default();
        let dep = |names: &[&str]| {
            names
                .iter()
                .map(|n| (n.to_string(), Dependency::default()))
                .collect()
        };
        for (name, deps) in [
            ("db", vec![]),
            ("cache", vec![]),
            ("api", vec!["db", "cache"]),
            ("web", vec!["api"]),
        ] {
            p.services.insert(
                name.into(),
                Service {
                    name: name.into(),
                    depends_on: dep(&deps),
                    ..Service::default()
                },
            );
        }
        let all = with_dependencies(&p, &[], false);
        assert_eq!(
            levels(&p, &all),
            [
                vec!["cache".to_string(), "db".into()],
                vec!["api".into()],
                vec!["web".into()]
            ]
        );
        let only = with_dependencies(&p, &["api".into()], false);
        assert_eq!(
            only,
            ["api", "cache", "db"]
                .iter()
                .map(|s| s.to_string())
                .collect()
        );
        assert_eq!(with_dependencies(&p, &["web".into()], true).len(), 1);
    }
}
