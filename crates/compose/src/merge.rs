//! Merging Compose files and `extends` (`13-merge.md`): mappings merge key
//! by key; sequences append, except `command`, `entrypoint` and
//! `healthcheck.test`, which the later value replaces, and `ports`,
//! `volumes`, `secrets` and `configs`, whose entries are unique by target
//! (a later entry replaces an earlier one with the same target). Fields
//! that may be a list or a mapping (`environment`, `labels`,
//! `depends_on`, `networks`, build `args`...) are compared as mappings.
//! `!reset` drops a value, `!override` replaces it whole.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use crate::model::absolute;
use crate::yaml::{join, MergeTag};

/// A service field's key in the merge rules (`services.*.ports` → `ports`),
/// or `None` outside a service.
fn service_field(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("services.")?;
    let (_, field) = rest.split_once('.')?;
    Some(field)
}

const REPLACED: &[&str] = &["command", "entrypoint", "healthcheck.test"];
const AS_MAPPING: &[&str] = &[
    "environment",
    "labels",
    "annotations",
    "sysctls",
    "depends_on",
    "networks",
    "build.args",
    "build.labels",
    "deploy.labels",
    "extra_hosts",
];
const UNIQUE_BY_TARGET: &[&str] = &["ports", "volumes", "secrets", "configs"];

/// `list_or_dict` as a mapping (`["A=1", "B"]` → `{A: "1", B: null}`;
/// `depends_on: [db]` → `{db: {}}`; `networks: [a]` → `{a: null}`).
fn as_mapping(v: Value, field: &str) -> Value {
    let Value::Array(items) = v else { return v };
    let mut m = Map::new();
    for it in items {
        let Value::String(s) = it else { continue };
        match field {
            "depends_on" => {
                m.insert(s, Value::Object(Map::new()));
            }
            "networks" => {
                m.insert(s, Value::Null);
            }
            "extra_hosts" => {
                let (k, v) = s
                    .split_once('=')
                    .or_else(|| s.split_once(':'))
                    .unwrap_or((&s, ""));
                m.insert(k.to_string(), Value::String(v.to_string()));
            }
            _ => match s.split_once('=') {
                Some((k, v)) => {
                    m.insert(k.to_string(), Value::String(v.to_string()));
                }
                None => {
                    m.insert(s, Value::Null);
                }
            },
        }
    }
    Value::Object(m)
}

/// The uniqueness key of a `ports`/`volumes`/`secrets`/`configs` entry.
fn unique_key(field: &str, v: &Value) -> String {
    match (field, v) {
        ("volumes", Value::String(s)) => {
            let parts: Vec<&str> = s.split(':').collect();
            match parts.len() {
                1 => parts[0].to_string(),
                _ => parts[1].to_string(),
            }
        }
        ("secrets", Value::String(s)) => format!("/run/secrets/{s}"),
        ("configs", Value::String(s)) => format!("/{s}"),
        ("secrets", Value::Object(o)) => o
            .get("target")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| {
                format!(
                    "/run/secrets/{}",
                    o.get("source").and_then(Value::as_str).unwrap_or_default()
                )
            }),
        ("configs", Value::Object(o)) => o
            .get("target")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| {
                format!(
                    "/{}",
                    o.get("source").and_then(Value::as_str).unwrap_or_default()
                )
            }),
        ("volumes", Value::Object(o)) => o
            .get("target")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        ("ports", Value::Object(o)) => format!(
            "{}:{}:{}/{}",
            o.get("host_ip").and_then(Value::as_str).unwrap_or_default(),
            o.get("published").map(Value::to_string).unwrap_or_default(),
            o.get("target").map(Value::to_string).unwrap_or_default(),
            o.get("protocol").and_then(Value::as_str).unwrap_or("tcp"),
        ),
        (_, other) => other.to_string(),
    }
}

/// Merges `over` (whose merge tags are `tags`, by path) into `base`.
pub fn merge(base: &mut Value, over: Value, tags: &BTreeMap<String, MergeTag>, path: &str) {
    let field = service_field(path);
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                let p = join(path, &k);
                match tags.get(&p) {
                    Some(MergeTag::Reset) => {
                        b.remove(&k);
                        continue;
                    }
                    Some(MergeTag::Override) => {
                        b.insert(k, strip_tags(v, tags, &p));
                        continue;
                    }
                    None => {}
                }
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v, tags, &p),
                    None => {
                        b.insert(k, strip_tags(v, tags, &p));
                    }
                }
            }
        }
        (_, Value::Null) => {}
        (b, o) if field.is_some_and(|f| REPLACED.contains(&f)) => *b = o,
        (b, o) if field.is_some_and(|f| AS_MAPPING.contains(&f)) => {
            let f = field.unwrap_or_default();
            let mut bm = as_mapping(std::mem::take(b), f);
            let om = as_mapping(o, f);
            if bm.is_object() && om.is_object() {
                merge(&mut bm, om, tags, path);
                *b = bm;
            } else {
                *b = om;
            }
        }
        (Value::Array(b), Value::Array(o))
            if field.is_some_and(|f| UNIQUE_BY_TARGET.contains(&f)) =>
        {
            let f = field.unwrap_or_default();
            for item in o {
                let key = unique_key(f, &item);
                match b.iter().position(|x| unique_key(f, x) == key) {
                    Some(i) => b[i] = item,
                    None => b.push(item),
                }
            }
        }
        (Value::Array(b), Value::Array(o)) => {
            for item in o {
                if !(item.is_string() && b.contains(&item)) {
                    b.push(item);
                }
            }
        }
        (b @ Value::String(_), Value::Object(o)) if field == Some("build") => {
            let context = std::mem::take(b);
            let mut m = Map::new();
            m.insert("context".into(), context);
            *b = Value::Object(m);
            merge(b, Value::Object(o), tags, path);
        }
        (b, o) => *b = o,
    }
}

/// `v` without the values tagged `!reset` below `path` (a file merged
/// onto nothing still honours its resets).
pub fn strip_tags(v: Value, tags: &BTreeMap<String, MergeTag>, path: &str) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| tags.get(&join(path, k)) != Some(&MergeTag::Reset))
                .map(|(k, v)| {
                    let p = join(path, &k);
                    (k, strip_tags(v, tags, &p))
                })
                .collect(),
        ),
        other => other,
    }
}

/// Makes the relative paths of a service absolute against `dir`: what a
/// service brought in by `extends` or `include` from another directory
/// means stays the same once merged.
pub fn rebase_service(v: &mut Value, dir: &Path) {
    let Some(s) = v.as_object_mut() else { return };
    match s.get_mut("build") {
        Some(Value::String(c)) => *c = rebase(c, dir),
        Some(Value::Object(b)) => {
            let ctx = b
                .get("context")
                .and_then(Value::as_str)
                .unwrap_or(".")
                .to_string();
            b.insert("context".into(), Value::String(rebase(&ctx, dir)));
        }
        _ => {}
    }
    match s.get_mut("env_file") {
        Some(Value::String(f)) => *f = rebase(f, dir),
        Some(Value::Array(items)) => {
            for it in items {
                match it {
                    Value::String(f) => *f = rebase(f, dir),
                    Value::Object(o) => {
                        if let Some(Value::String(f)) = o.get_mut("path") {
                            *f = rebase(f, dir);
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
    if let Some(Value::Array(items)) = s.get_mut("volumes") {
        for it in items {
            match it {
                Value::String(spec) => {
                    let mut parts: Vec<String> = spec.split(':').map(str::to_string).collect();
                    if parts.len() >= 2 && (parts[0].starts_with('.') || parts[0].starts_with('~'))
                    {
                        parts[0] = rebase(&parts[0], dir);
                        *spec = parts.join(":");
                    }
                }
                Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("bind") => {
                    if let Some(Value::String(src)) = o.get_mut("source") {
                        *src = rebase(src, dir);
                    }
                }
                _ => {}
            }
        }
    }
}

fn rebase(p: &str, dir: &Path) -> String {
    if p.contains("://") || p.starts_with('/') {
        return p.to_string();
    }
    absolute(p, dir)
}

/// Makes the `file` of top-level secrets and configs absolute.
pub fn rebase_files(top: &mut Value, dir: &Path) {
    for section in ["secrets", "configs"] {
        if let Some(Value::Object(m)) = top.get_mut(section) {
            for (_, def) in m.iter_mut() {
                if let Some(Value::String(f)) = def.get_mut("file") {
                    *f = rebase(f, dir);
                }
            }
        }
    }
    if let Some(Value::Object(services)) = top.get_mut("services") {
        for (_, s) in services.iter_mut() {
            rebase_service(s, dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merged(a: Value, b: Value) -> Value {
        let mut a = a;
        merge(&mut a, b, &BTreeMap::new(), "");
        a
    }

    #[test]
    fn the_spec_rules() {
        let got = merged(
            json!({"services": {"foo": {
                "image": "a", "key1": "v1", "dns": ["1.1.1.1"], "command": ["echo", "foo"],
                "volumes": ["foo:/work", "x:/other"], "ports": ["8080:80"],
                "environment": ["A=1", "B=2"], "networks": ["front"], "build": "./dir",
                "healthcheck": {"test": ["CMD", "a"], "retries": 3}
            }}}),
            json!({"services": {"foo": {
                "image": "b", "dns": ["8.8.8.8"], "command": ["echo", "bar"],
                "volumes": ["bar:/work"], "ports": ["8443:443"],
                "environment": {"B": "3", "C": null}, "networks": {"front": {"aliases": ["f"]}},
                "build": {"args": {"X": "1"}}, "healthcheck": {"test": ["CMD", "b"]}
            }}}),
        );
        assert_eq!(
            got,
            json!({"services": {"foo": {
                "image": "b", "key1": "v1", "dns": ["1.1.1.1", "8.8.8.8"], "command": ["echo", "bar"],
                "volumes": ["bar:/work", "x:/other"], "ports": ["8080:80", "8443:443"],
                "environment": {"A": "1", "B": "3", "C": null}, "networks": {"front": {"aliases": ["f"]}},
                "build": {"context": "./dir", "args": {"X": "1"}},
                "healthcheck": {"test": ["CMD", "b"], "retries": 3}
            }}})
        );
    }

    #[test]
    fn reset_and_override() {
        let mut base = json!({"services": {"app": {"image": "a", "ports": ["8080:80"], "environment": {"FOO": "BAR", "K": "1"}}}});
        let over = crate::yaml::parse(
            "services:\n  app:\n    ports: !override\n      - \"8443:443\"\n    environment:\n      FOO: !reset null\n",
        )
        .expect("parses");
        merge(&mut base, over.value, &over.tags, "");
        assert_eq!(
            base,
            json!({"services": {"app": {"image": "a", "ports": ["8443:443"], "environment": {"K": "1"}}}})
        );
    }
}
