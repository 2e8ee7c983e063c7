//! The shape of a Compose file (the Compose Specification's JSON schema,
//! written here as a small type language) and its check, run on each file
//! after interpolation and before anything else reads it.
//!
//! Like the specification's schema, scalar fields that may be the result
//! of a substitution (numbers, booleans) also accept strings; their values
//! are checked when the model is built. Extension fields (`x-...`) are
//! allowed in every mapping that has fixed keys. The first problem found
//! is reported, with its dotted path.

use serde_json::Value;

use crate::yaml::join;

/// A type of the schema.
#[derive(Debug)]
pub enum S {
    Any,
    Str,
    /// An integer, or a string (a substituted one).
    Int,
    /// A number, or a string.
    Num,
    /// A boolean, or a string.
    Bool,
    /// One of these strings.
    Enum(&'static [&'static str]),
    List(&'static S),
    /// Any keys (matching the name pattern when `names` is set).
    Map {
        value: &'static S,
        names: bool,
    },
    /// These keys only (and `x-` ones).
    Obj(&'static [(&'static str, S)]),
    /// The first alternative whose shape matches (by JSON type).
    OneOf(&'static [S]),
    /// `null` is allowed besides the inner type.
    Nullable(&'static S),
}

/// A problem found, at a dotted path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{} {}", self.path, self.message)
        }
    }
}

const STR: S = S::Str;
const ANY: S = S::Any;
const LIST_OF_STRINGS: S = S::List(&STR);
const STRING_OR_LIST: S = S::OneOf(&[S::Str, S::List(&STR)]);
const SCALAR_OR_NULL: S = S::OneOf(&[S::Str, S::Num, S::Bool, S::Nullable(&ANY)]);
const LIST_OR_DICT: S = S::OneOf(&[
    S::Map {
        value: &SCALAR_OR_NULL,
        names: false,
    },
    S::List(&STR),
]);
const COMMAND: S = S::OneOf(&[S::Nullable(&STR), S::List(&STR)]);
const STR_OR_NUM: S = S::OneOf(&[S::Str, S::Num]);
const OPTIONS: S = S::Map {
    value: &STR_OR_NUM,
    names: false,
};
const EXTRA_HOSTS: S = S::OneOf(&[
    S::Map {
        value: &STRING_OR_LIST,
        names: false,
    },
    S::List(&STR),
]);
const ULIMIT: S = S::OneOf(&[S::Int, S::Obj(&[("hard", S::Int), ("soft", S::Int)])]);
const ULIMITS: S = S::Map {
    value: &ULIMIT,
    names: false,
};
const SERVICE_FILE_REF: S = S::List(&S::OneOf(&[
    S::Str,
    S::Obj(&[
        ("source", S::Str),
        ("target", S::Str),
        ("uid", S::Str),
        ("gid", S::Str),
        ("mode", S::Num),
    ]),
]));
const HEALTHCHECK: S = S::Obj(&[
    ("disable", S::Bool),
    ("interval", S::Str),
    ("retries", S::Num),
    ("test", S::OneOf(&[S::Str, S::List(&STR)])),
    ("timeout", S::Str),
    ("start_period", S::Str),
    ("start_interval", S::Str),
]);
const BUILD: S = S::OneOf(&[
    S::Str,
    S::Obj(&[
        ("context", S::Str),
        ("dockerfile", S::Str),
        ("dockerfile_inline", S::Str),
        ("entitlements", LIST_OF_STRINGS),
        ("args", LIST_OR_DICT),
        ("ssh", LIST_OR_DICT),
        ("labels", LIST_OR_DICT),
        ("cache_from", LIST_OF_STRINGS),
        ("cache_to", LIST_OF_STRINGS),
        ("no_cache", S::Bool),
        ("no_cache_filter", STRING_OR_LIST),
        ("additional_contexts", LIST_OR_DICT),
        ("network", S::Str),
        ("provenance", S::OneOf(&[S::Str, S::Bool])),
        ("sbom", S::OneOf(&[S::Str, S::Bool])),
        ("pull", S::Bool),
        ("target", S::Str),
        ("shm_size", S::OneOf(&[S::Int, S::Str])),
        ("extra_hosts", EXTRA_HOSTS),
        ("isolation", S::Str),
        ("privileged", S::Bool),
        ("secrets", SERVICE_FILE_REF),
        ("tags", LIST_OF_STRINGS),
        ("ulimits", ULIMITS),
        ("platforms", LIST_OF_STRINGS),
    ]),
]);
const DEPENDS_ON: S = S::OneOf(&[
    S::List(&STR),
    S::Map {
        value: &S::Obj(&[
            ("restart", S::Bool),
            ("required", S::Bool),
            (
                "condition",
                S::Enum(&[
                    "service_started",
                    "service_healthy",
                    "service_completed_successfully",
                ]),
            ),
        ]),
        names: true,
    },
]);
const SERVICE_NETWORK: S = S::Nullable(&S::Obj(&[
    ("aliases", LIST_OF_STRINGS),
    ("interface_name", S::Str),
    ("ipv4_address", S::Str),
    ("ipv6_address", S::Str),
    ("link_local_ips", LIST_OF_STRINGS),
    ("mac_address", S::Str),
    ("driver_opts", OPTIONS),
    ("priority", S::Num),
    ("gw_priority", S::Num),
]));
const PORT: S = S::OneOf(&[
    S::Num,
    S::Str,
    S::Obj(&[
        ("name", S::Str),
        ("mode", S::Str),
        ("host_ip", S::Str),
        ("target", S::Int),
        ("published", S::OneOf(&[S::Str, S::Int])),
        ("protocol", S::Str),
        ("app_protocol", S::Str),
    ]),
]);
const VOLUME_MOUNT: S = S::OneOf(&[
    S::Str,
    S::Obj(&[
        (
            "type",
            S::Enum(&["bind", "volume", "tmpfs", "cluster", "npipe", "image"]),
        ),
        ("source", S::Str),
        ("target", S::Str),
        ("read_only", S::Bool),
        ("consistency", S::Str),
        (
            "bind",
            S::Obj(&[
                ("propagation", S::Str),
                ("create_host_path", S::Bool),
                (
                    "recursive",
                    S::Enum(&["enabled", "disabled", "writable", "readonly"]),
                ),
                ("selinux", S::Enum(&["z", "Z"])),
            ]),
        ),
        (
            "volume",
            S::Obj(&[
                ("labels", LIST_OR_DICT),
                ("nocopy", S::Bool),
                ("subpath", S::Str),
            ]),
        ),
        (
            "tmpfs",
            S::Obj(&[("size", S::OneOf(&[S::Int, S::Str])), ("mode", S::Num)]),
        ),
        ("image", S::Obj(&[("subpath", S::Str)])),
    ]),
]);
const RESOURCE: S = S::Obj(&[
    ("cpus", S::Num),
    ("memory", S::Str),
    ("pids", S::Int),
    ("devices", S::List(&ANY)),
    ("generic_resources", S::List(&ANY)),
]);
const DEPLOY: S = S::Nullable(&S::Obj(&[
    ("mode", S::Str),
    ("endpoint_mode", S::Str),
    ("replicas", S::Int),
    ("labels", LIST_OR_DICT),
    ("rollback_config", ANY),
    ("update_config", ANY),
    (
        "resources",
        S::Obj(&[("limits", RESOURCE), ("reservations", RESOURCE)]),
    ),
    (
        "restart_policy",
        S::Obj(&[
            ("condition", S::Str),
            ("delay", S::Str),
            ("max_attempts", S::Int),
            ("window", S::Str),
        ]),
    ),
    ("placement", ANY),
]));
const ENV_FILE: S = S::OneOf(&[
    S::Str,
    S::List(&S::OneOf(&[
        S::Str,
        S::Obj(&[("path", S::Str), ("format", S::Str), ("required", S::Bool)]),
    ])),
]);
const HOOK: S = S::Obj(&[
    ("command", COMMAND),
    ("user", S::Str),
    ("privileged", S::Bool),
    ("working_dir", S::Str),
    ("environment", LIST_OR_DICT),
]);

/// A service definition.
pub const SERVICE: S = S::Obj(&[
    ("develop", S::Nullable(&ANY)),
    ("deploy", DEPLOY),
    ("annotations", LIST_OR_DICT),
    ("attach", S::Bool),
    ("build", BUILD),
    ("blkio_config", ANY),
    ("cap_add", LIST_OF_STRINGS),
    ("cap_drop", LIST_OF_STRINGS),
    ("cgroup", S::Enum(&["host", "private"])),
    ("cgroup_parent", S::Str),
    ("command", COMMAND),
    ("configs", SERVICE_FILE_REF),
    ("container_name", S::Str),
    ("cpu_count", S::Int),
    ("cpu_percent", S::Int),
    ("cpu_shares", S::Num),
    ("cpu_quota", S::Num),
    ("cpu_period", S::Num),
    ("cpu_rt_period", S::Num),
    ("cpu_rt_runtime", S::Num),
    ("cpus", S::Num),
    ("cpuset", S::Str),
    ("credential_spec", ANY),
    ("depends_on", DEPENDS_ON),
    ("device_cgroup_rules", LIST_OF_STRINGS),
    ("devices", S::List(&ANY)),
    ("dns", STRING_OR_LIST),
    ("dns_opt", LIST_OF_STRINGS),
    ("dns_search", STRING_OR_LIST),
    ("domainname", S::Str),
    ("entrypoint", COMMAND),
    ("env_file", ENV_FILE),
    ("label_file", STRING_OR_LIST),
    ("environment", LIST_OR_DICT),
    ("expose", S::List(&STR_OR_NUM)),
    (
        "extends",
        S::OneOf(&[S::Str, S::Obj(&[("service", S::Str), ("file", S::Str)])]),
    ),
    ("provider", ANY),
    ("external_links", LIST_OF_STRINGS),
    ("extra_hosts", EXTRA_HOSTS),
    ("gpus", ANY),
    ("group_add", S::List(&STR_OR_NUM)),
    ("healthcheck", HEALTHCHECK),
    ("hostname", S::Str),
    ("image", S::Str),
    ("init", S::Bool),
    ("ipc", S::Str),
    ("isolation", S::Str),
    ("labels", LIST_OR_DICT),
    ("links", LIST_OF_STRINGS),
    (
        "logging",
        S::Obj(&[
            ("driver", S::Str),
            (
                "options",
                S::Map {
                    value: &S::Nullable(&STR_OR_NUM),
                    names: false,
                },
            ),
        ]),
    ),
    ("mac_address", S::Str),
    ("mem_limit", S::Num),
    ("mem_reservation", S::Num),
    ("mem_swappiness", S::Int),
    ("memswap_limit", S::Num),
    ("network_mode", S::Str),
    ("models", ANY),
    (
        "networks",
        S::OneOf(&[
            S::List(&STR),
            S::Map {
                value: &SERVICE_NETWORK,
                names: true,
            },
        ]),
    ),
    ("oom_kill_disable", S::Bool),
    ("oom_score_adj", S::Int),
    ("pid", S::Nullable(&STR)),
    ("pids_limit", S::Num),
    ("platform", S::Str),
    ("ports", S::List(&PORT)),
    ("post_start", S::List(&HOOK)),
    ("pre_stop", S::List(&HOOK)),
    ("privileged", S::Bool),
    ("profiles", LIST_OF_STRINGS),
    ("pull_policy", S::Str),
    ("pull_refresh_after", S::Str),
    ("read_only", S::Bool),
    ("restart", S::Str),
    ("runtime", S::Str),
    ("scale", S::Int),
    ("security_opt", LIST_OF_STRINGS),
    ("shm_size", S::Num),
    ("secrets", SERVICE_FILE_REF),
    ("sysctls", LIST_OR_DICT),
    ("stdin_open", S::Bool),
    ("stop_grace_period", S::Str),
    ("stop_signal", S::Str),
    ("storage_opt", ANY),
    ("tmpfs", STRING_OR_LIST),
    ("tty", S::Bool),
    ("ulimits", ULIMITS),
    ("use_api_socket", S::Bool),
    ("user", S::Str),
    ("uts", S::Str),
    ("userns_mode", S::Str),
    ("volumes", S::List(&VOLUME_MOUNT)),
    ("volumes_from", LIST_OF_STRINGS),
    ("working_dir", S::Str),
]);

const EXTERNAL: S = S::OneOf(&[S::Bool, S::Obj(&[("name", S::Str)])]);

const NETWORK: S = S::Nullable(&S::Obj(&[
    ("name", S::Str),
    ("driver", S::Str),
    ("driver_opts", OPTIONS),
    (
        "ipam",
        S::Obj(&[
            ("driver", S::Str),
            (
                "config",
                S::List(&S::Obj(&[
                    ("subnet", S::Str),
                    ("ip_range", S::Str),
                    ("gateway", S::Str),
                    (
                        "aux_addresses",
                        S::Map {
                            value: &STR,
                            names: false,
                        },
                    ),
                ])),
            ),
            (
                "options",
                S::Map {
                    value: &STR,
                    names: false,
                },
            ),
        ]),
    ),
    ("external", EXTERNAL),
    ("internal", S::Bool),
    ("enable_ipv4", S::Bool),
    ("enable_ipv6", S::Bool),
    ("attachable", S::Bool),
    ("labels", LIST_OR_DICT),
]));

const VOLUME: S = S::Nullable(&S::Obj(&[
    ("name", S::Str),
    ("driver", S::Str),
    ("driver_opts", OPTIONS),
    ("external", EXTERNAL),
    ("labels", LIST_OR_DICT),
]));

const SECRET: S = S::Obj(&[
    ("name", S::Str),
    ("environment", S::Str),
    ("file", S::Str),
    ("external", EXTERNAL),
    ("labels", LIST_OR_DICT),
    ("driver", S::Str),
    ("driver_opts", OPTIONS),
    ("template_driver", S::Str),
]);

const CONFIG: S = S::Obj(&[
    ("name", S::Str),
    ("content", S::Str),
    ("environment", S::Str),
    ("file", S::Str),
    ("external", EXTERNAL),
    ("labels", LIST_OR_DICT),
    ("template_driver", S::Str),
]);

const INCLUDE: S = S::OneOf(&[
    S::Str,
    S::Obj(&[
        ("path", STRING_OR_LIST),
        ("env_file", STRING_OR_LIST),
        ("project_directory", S::Str),
    ]),
]);

/// A whole Compose file.
pub const FILE: S = S::Obj(&[
    ("version", S::Str),
    ("name", S::Str),
    ("include", S::List(&INCLUDE)),
    (
        "services",
        S::Map {
            value: &SERVICE,
            names: true,
        },
    ),
    (
        "models",
        S::Map {
            value: &ANY,
            names: true,
        },
    ),
    (
        "networks",
        S::Map {
            value: &NETWORK,
            names: true,
        },
    ),
    (
        "volumes",
        S::Map {
            value: &VOLUME,
            names: true,
        },
    ),
    (
        "secrets",
        S::Map {
            value: &SECRET,
            names: true,
        },
    ),
    (
        "configs",
        S::Map {
            value: &CONFIG,
            names: true,
        },
    ),
]);

fn type_name(s: &S) -> String {
    match s {
        S::Any => "anything".into(),
        S::Str | S::Enum(_) => "a string".into(),
        S::Int => "an integer".into(),
        S::Num => "a number".into(),
        S::Bool => "a boolean".into(),
        S::List(_) => "a list".into(),
        S::Map { .. } | S::Obj(_) => "a mapping".into(),
        S::Nullable(inner) => type_name(inner),
        S::OneOf(alts) => {
            let mut names: Vec<String> = Vec::new();
            for a in alts.iter() {
                let n = type_name(a);
                if !names.contains(&n) {
                    names.push(n);
                }
            }
            names.join(" or ")
        }
    }
}

/// Whether `v`'s JSON type is one `s` can take (without looking inside).
fn shape_fits(s: &S, v: &Value) -> bool {
    match (s, v) {
        (S::Any, _) => true,
        (S::Nullable(_), Value::Null) => true,
        (S::Nullable(inner), v) => shape_fits(inner, v),
        (S::Str | S::Enum(_), Value::String(_)) => true,
        (S::Int, Value::Number(n)) => n.is_i64() || n.is_u64(),
        (S::Int | S::Num | S::Bool, Value::String(_)) => true,
        (S::Num, Value::Number(_)) => true,
        (S::Bool, Value::Bool(_)) => true,
        (S::List(_), Value::Array(_)) => true,
        (S::Map { .. } | S::Obj(_), Value::Object(_)) => true,
        (S::OneOf(alts), v) => alts.iter().any(|a| shape_fits(a, v)),
        _ => false,
    }
}

fn valid_resource_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Checks `v` against `s`; the first problem, with its path.
pub fn check(s: &S, v: &Value, path: &str) -> Result<(), Problem> {
    let fail = |message: String| {
        Err(Problem {
            path: path.to_string(),
            message,
        })
    };
    if !shape_fits(s, v) {
        return fail(format!("must be {}", type_name(s)));
    }
    match (s, v) {
        (S::Nullable(_), Value::Null) => Ok(()),
        (S::Nullable(inner), v) => check(inner, v, path),
        (S::Enum(options), Value::String(text)) if !options.contains(&text.as_str()) => fail(
            format!("must be one of {}, not {text:?}", options.join(", ")),
        ),
        (S::List(item), Value::Array(items)) => {
            for (i, it) in items.iter().enumerate() {
                check(item, it, &join(path, &i.to_string()))?;
            }
            Ok(())
        }
        (S::Map { value, names }, Value::Object(m)) => {
            for (k, it) in m {
                if *names && !valid_resource_name(k) && !k.starts_with("x-") {
                    return fail(format!(
                        "has an invalid name {k:?}: letters, digits, '.', '_' and '-' only"
                    ));
                }
                if k.starts_with("x-") && *names {
                    continue;
                }
                check(value, it, &join(path, k))?;
            }
            Ok(())
        }
        (S::Obj(fields), Value::Object(m)) => {
            for (k, it) in m {
                if k.starts_with("x-") {
                    continue;
                }
                match fields.iter().find(|(name, _)| name == k) {
                    Some((_, field)) => check(field, it, &join(path, k))?,
                    None => return fail(format!("additional properties '{k}' not allowed")),
                }
            }
            Ok(())
        }
        (S::OneOf(alts), v) => {
            // The first alternative of the right JSON type decides.
            let alt = alts
                .iter()
                .find(|a| shape_fits(a, v))
                .expect("shape_fits said one fits");
            check(alt, v, path)
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problem(v: Value) -> String {
        check(&FILE, &v, "").expect_err("must fail").to_string()
    }

    #[test]
    fn a_full_service_passes() {
        let v = json!({
            "name": "p", "x-common": {"anything": [1]},
            "services": {"web": {
                "image": "busybox", "command": "httpd -f", "ports": ["8080:80", 81, {"target": 82, "published": "${P}"}],
                "environment": {"A": 1, "B": null, "C": true}, "env_file": [".env", {"path": "x", "required": false}],
                "depends_on": {"db": {"condition": "service_healthy", "restart": true}},
                "networks": {"front": {"aliases": ["w"]}, "back": null},
                "healthcheck": {"test": ["CMD", "true"], "interval": "1s", "retries": 3},
                "volumes": ["data:/data", {"type": "bind", "source": ".", "target": "/src", "read_only": true}],
                "deploy": {"replicas": 2, "resources": {"limits": {"cpus": "0.5", "memory": "64M"}}},
                "ulimits": {"nofile": {"soft": 10, "hard": 20}, "nproc": 5},
                "x-extra": 1, "init": "true", "scale": "${N:-1}"
            }},
            "networks": {"front": null, "back": {"internal": true}},
            "volumes": {"data": {}, "x-ignored": 1}
        });
        check(&FILE, &v, "").expect("valid");
    }

    #[test]
    fn problems_name_the_key() {
        let cases = [
            (
                json!({"services": {"web": {"imagee": "x"}}}),
                "services.web additional properties 'imagee' not allowed",
            ),
            (
                json!({"services": {"web": {"ports": "80:80"}}}),
                "services.web.ports must be a list",
            ),
            (
                json!({"services": {"web": {"ports": [["80"]]}}}),
                "services.web.ports.0 must be a number or a string or a mapping",
            ),
            (
                json!({"services": {"web": {"depends_on": {"db": {"condition": "started"}}}}}),
                "services.web.depends_on.db.condition must be one of service_started, service_healthy, service_completed_successfully, not \"started\"",
            ),
            (
                json!({"services": {"web": {"cap_add": [1]}}}),
                "services.web.cap_add.0 must be a string",
            ),
            (
                json!({"services": {"we b": {}}}),
                "services has an invalid name \"we b\": letters, digits, '.', '_' and '-' only",
            ),
            (json!({"service": {}}), " additional properties 'service' not allowed"),
            (json!(["a"]), " must be a mapping"),
            (
                json!({"volumes": {"v": {"driver": 1}}}),
                "volumes.v.driver must be a string",
            ),
            (
                json!({"services": {"a": {"healthcheck": {"test": 1}}}}),
                "services.a.healthcheck.test must be a string or a list",
            ),
            (
                json!({"services": {"a": {"scale": 1.5}}}),
                "services.a.scale must be an integer",
            ),
        ];
        for (v, want) in cases {
            assert_eq!(problem(v).trim(), want.trim());
        }
    }
}
