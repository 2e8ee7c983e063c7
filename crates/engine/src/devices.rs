//! Devices a container asks for, made into the runtime spec's device
//! nodes, device cgroup rules and edits: host devices (`--device`, a
//! node or a directory of nodes), rules (`--device-cgroup-rule`) and
//! device requests (`--gpus`, CDI names such as `vendor.com/class=name`).
//!
//! Device requests go to a driver: `cdi`, which reads Container Device
//! Interface specs (JSON or YAML) from the daemon's CDI directories and
//! applies the named devices' edits (nodes, environment, mounts, hooks,
//! groups). No other driver is registered, so a request for capabilities
//! such as `gpu` is refused as dockerd refuses it without one.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use cais_api::{DeviceMapping, DeviceRequest};
use serde_json::{json, Value};

use crate::spec::{DeviceEdits as Edits, MountSpec};

/// One device node of the host.
#[derive(Debug, Clone, PartialEq)]
struct Node {
    kind: &'static str,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

fn node_at(path: &Path) -> std::io::Result<Option<Node>> {
    let meta = std::fs::metadata(path)?;
    let ft = meta.file_type();
    let kind = if ft.is_char_device() {
        "c"
    } else if ft.is_block_device() {
        "b"
    } else {
        return Ok(None);
    };
    let rdev = meta.rdev();
    Ok(Some(Node {
        kind,
        major: nix::sys::stat::major(rdev),
        minor: nix::sys::stat::minor(rdev),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
    }))
}

fn node_json(path: &str, n: &Node) -> Value {
    json!({"path": path, "type": n.kind, "major": n.major, "minor": n.minor,
           "fileMode": n.mode, "uid": n.uid, "gid": n.gid})
}

fn allow_rule(kind: &str, major: Option<i64>, minor: Option<i64>, access: &str) -> Value {
    let mut r = json!({"allow": true, "type": kind, "access": access});
    if let Some(m) = major {
        r["major"] = m.into();
    }
    if let Some(m) = minor {
        r["minor"] = m.into();
    }
    r
}

/// `--device HOST[:CONTAINER[:PERMS]]`: the host's node (a symlink
/// followed), or every node under a directory, at the container's path,
/// with a rule allowing the permissions. A path that is not there is
/// refused in dockerd's words.
pub fn host_device(d: &DeviceMapping) -> Result<Edits, String> {
    let on_host = d.path_on_host.as_str();
    let in_container = if d.path_in_container.is_empty() {
        on_host
    } else {
        d.path_in_container.as_str()
    };
    let perms = if d.cgroup_permissions.is_empty() {
        "rwm"
    } else {
        d.cgroup_permissions.as_str()
    };
    if !valid_access(perms) {
        return Err(format!(
            "invalid device cgroup permissions {perms:?} for device {on_host:?}: use some of r, w and m"
        ));
    }
    if !in_container.starts_with('/') {
        return Err(format!("{in_container} is not an absolute path"));
    }
    let failed = |what: &str| {
        format!("error gathering device information while adding custom device {on_host:?}: {what}")
    };
    let resolved = std::fs::canonicalize(on_host).unwrap_or_else(|_| PathBuf::from(on_host));
    let mut edits = Edits::default();
    match node_at(&resolved) {
        Ok(Some(n)) => {
            edits.nodes.push(node_json(in_container, &n));
            edits.rules.push(allow_rule(
                n.kind,
                Some(n.major as i64),
                Some(n.minor as i64),
                perms,
            ));
            Ok(edits)
        }
        Ok(None) if resolved.is_dir() => {
            let mut found = Vec::new();
            walk_nodes(&resolved, &mut found);
            for (p, n) in found {
                let rel = p.strip_prefix(&resolved).unwrap_or(&p);
                let dest = Path::new(in_container).join(rel);
                edits.nodes.push(node_json(&dest.to_string_lossy(), &n));
                edits.rules.push(allow_rule(
                    n.kind,
                    Some(n.major as i64),
                    Some(n.minor as i64),
                    perms,
                ));
            }
            if !edits.nodes.is_empty() {
                return Ok(edits);
            }
            Err(failed("not a device node"))
        }
        Ok(None) => Err(failed("not a device node")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(failed("no such file or directory"))
        }
        Err(e) => Err(failed(&e.to_string())),
    }
}

/// Every device node of the host's /dev, for a privileged container (as
/// the runtimes give one: terminals' pseudo-devices and the container's
/// own /dev/shm, /dev/mqueue and /dev/pts left out).
pub fn all_host_devices() -> Vec<Value> {
    let mut found = Vec::new();
    walk_nodes(Path::new("/dev"), &mut found);
    found
        .into_iter()
        .filter(|(p, _)| {
            let p = p.to_string_lossy();
            !["/dev/pts/", "/dev/shm/", "/dev/mqueue/", "/dev/fd/"]
                .iter()
                .any(|skip| p.starts_with(skip))
                && p != "/dev/console"
                && p != "/dev/ptmx"
        })
        .map(|(p, n)| node_json(&p.to_string_lossy(), &n))
        .collect()
}

fn walk_nodes(dir: &Path, out: &mut Vec<(PathBuf, Node)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            walk_nodes(&p, out);
        } else if ft.is_char_device() || ft.is_block_device() {
            if let Ok(Some(n)) = node_at(&p) {
                out.push((p, n));
            }
        }
    }
}

fn valid_access(a: &str) -> bool {
    !a.is_empty() && a.len() <= 3 && a.chars().all(|c| matches!(c, 'r' | 'w' | 'm'))
}

/// `--device-cgroup-rule 'TYPE MAJOR:MINOR ACCESS'`: TYPE `a`, `c` or
/// `b`, numbers or `*`, access some of `rwm`; exactly one space between
/// parts (the grammar of the kernel's devices.allow, as dockerd takes it).
pub fn cgroup_rule(rule: &str) -> Result<Value, String> {
    let bad = || format!("invalid device cgroup rule format: '{rule}'");
    let parts: Vec<&str> = rule.split(' ').collect();
    let [kind, numbers, access] = parts.as_slice() else {
        return Err(bad());
    };
    if !matches!(*kind, "a" | "c" | "b") || !valid_access(access) {
        return Err(bad());
    }
    let (major, minor) = numbers.split_once(':').ok_or_else(bad)?;
    let number = |s: &str| -> Result<Option<i64>, String> {
        if s == "*" {
            Ok(None)
        } else if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) {
            s.parse().map(Some).map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    let (major, minor) = (number(major)?, number(minor)?);
    // `*` is -1 in the spec ("any").
    Ok(allow_rule(
        kind,
        Some(major.unwrap_or(-1)),
        Some(minor.unwrap_or(-1)),
        access,
    ))
}

/// A device request: the `cdi` driver's devices, or dockerd's refusal of a
/// request no registered driver serves.
pub fn request(req: &DeviceRequest, cdi_dirs: &[PathBuf]) -> Result<Edits, String> {
    if req.driver != "cdi" {
        let caps = req
            .capabilities
            .iter()
            .map(|set| format!("[{}]", set.join(" ")))
            .collect::<Vec<_>>()
            .join(" ");
        return Err(format!(
            "could not select device driver {:?} with capabilities: [{caps}]",
            req.driver
        ));
    }
    if req.count != 0 {
        return Err("unexpected count in CDI device request".into());
    }
    if !req.options.is_empty() {
        return Err("unexpected options in CDI device request".into());
    }
    if req.device_ids.is_empty() {
        return Ok(Edits::default());
    }
    let specs = load_cdi_specs(cdi_dirs);
    let mut edits = Edits::default();
    let mut unresolved = Vec::new();
    let mut spec_edits_done: Vec<usize> = Vec::new();
    for name in &req.device_ids {
        let Some((kind, device)) = name.split_once('=') else {
            unresolved.push(name.clone());
            continue;
        };
        let found = specs.iter().enumerate().find_map(|(i, s)| {
            (s.kind == kind)
                .then(|| s.devices.get(device).map(|d| (i, d)))
                .flatten()
        });
        match found {
            Some((i, d)) => {
                edits.extend(d.clone());
                // A spec's own edits apply once, with its first device.
                if !spec_edits_done.contains(&i) {
                    spec_edits_done.push(i);
                    edits.extend(specs[i].common.clone());
                }
            }
            None => unresolved.push(name.clone()),
        }
    }
    if !unresolved.is_empty() {
        return Err(format!(
            "CDI device injection failed: unresolvable CDI devices {}",
            unresolved.join(", ")
        ));
    }
    Ok(edits)
}

/// One CDI spec file: its kind and what each device edits.
struct CdiSpec {
    kind: String,
    common: Edits,
    devices: BTreeMap<String, Edits>,
}

/// Every readable spec in `dirs`; a later directory's spec of the same
/// kind and device wins, as the CDI cache orders them. Unreadable files
/// are skipped with a warning (their devices are then unresolvable).
fn load_cdi_specs(dirs: &[PathBuf]) -> Vec<CdiSpec> {
    let mut out: Vec<CdiSpec> = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let ext = f.extension().and_then(|e| e.to_str()).unwrap_or("");
            if !matches!(ext, "json" | "yaml" | "yml") {
                continue;
            }
            match std::fs::read_to_string(&f)
                .map_err(|e| e.to_string())
                .and_then(|text| parse_cdi(&text, ext == "json"))
            {
                Ok(spec) => out.insert(0, spec),
                Err(e) => {
                    tracing::warn!(file = %f.display(), error = %e, "skipping a CDI spec");
                }
            }
        }
    }
    out
}

fn parse_cdi(text: &str, is_json: bool) -> Result<CdiSpec, String> {
    let v: Value = if is_json {
        serde_json::from_str(text).map_err(|e| e.to_string())?
    } else {
        yaml_to_json(text)?
    };
    let kind = v["kind"].as_str().ok_or("no kind")?.to_string();
    if !kind.contains('/') {
        return Err(format!("invalid kind {kind:?}: want vendor/class"));
    }
    let common = cdi_edits(&v["containerEdits"])?;
    let mut devices = BTreeMap::new();
    for d in v["devices"].as_array().ok_or("no devices")? {
        let name = d["name"].as_str().ok_or("a device without a name")?;
        devices.insert(name.to_string(), cdi_edits(&d["containerEdits"])?);
    }
    Ok(CdiSpec {
        kind,
        common,
        devices,
    })
}

/// The `containerEdits` of a CDI spec or device.
fn cdi_edits(v: &Value) -> Result<Edits, String> {
    let mut e = Edits::default();
    if v.is_null() {
        return Ok(e);
    }
    for env in v["env"].as_array().into_iter().flatten() {
        e.env.push(
            env.as_str()
                .ok_or("an env entry is not a string")?
                .to_string(),
        );
    }
    for n in v["deviceNodes"].as_array().into_iter().flatten() {
        let path = n["path"].as_str().ok_or("a device node without a path")?;
        let host = n["hostPath"].as_str().unwrap_or(path);
        let from_host = node_at(Path::new(host)).ok().flatten();
        let kind = match n["type"].as_str() {
            Some(t) => match t {
                "c" | "u" => "c",
                "b" => "b",
                "p" => "p",
                other => return Err(format!("device node {path}: unknown type {other:?}")),
            },
            None => from_host.as_ref().map(|h| h.kind).ok_or_else(|| {
                format!("device node {path}: no type given and {host} is not a device")
            })?,
        };
        let num = |key: &str, host: Option<u64>| n[key].as_u64().or(host);
        let node = Node {
            kind,
            major: num("major", from_host.as_ref().map(|h| h.major))
                .ok_or_else(|| format!("device node {path}: no major number"))?,
            minor: num("minor", from_host.as_ref().map(|h| h.minor))
                .ok_or_else(|| format!("device node {path}: no minor number"))?,
            mode: n["fileMode"]
                .as_u64()
                .map(|m| m as u32)
                .or(from_host.as_ref().map(|h| h.mode))
                .unwrap_or(0o666),
            uid: n["uid"].as_u64().map(|u| u as u32).unwrap_or(0),
            gid: n["gid"].as_u64().map(|g| g as u32).unwrap_or(0),
        };
        let access = n["permissions"].as_str().unwrap_or("rwm");
        e.nodes.push(node_json(path, &node));
        e.rules.push(allow_rule(
            node.kind,
            Some(node.major as i64),
            Some(node.minor as i64),
            access,
        ));
    }
    for m in v["mounts"].as_array().into_iter().flatten() {
        let source = m["hostPath"].as_str().ok_or("a mount without a hostPath")?;
        let dest = m["containerPath"]
            .as_str()
            .ok_or("a mount without a containerPath")?;
        let options: Vec<String> = m["options"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o.as_str().map(str::to_string))
            .collect();
        e.mounts.push(MountSpec {
            destination: dest.to_string(),
            kind: m["type"].as_str().unwrap_or("bind").to_string(),
            source: source.to_string(),
            options: if options.is_empty() {
                vec!["rbind".into(), "rprivate".into()]
            } else {
                options
            },
        });
    }
    for h in v["hooks"].as_array().into_iter().flatten() {
        let name = h["hookName"].as_str().ok_or("a hook without a hookName")?;
        if !matches!(
            name,
            "prestart"
                | "createRuntime"
                | "createContainer"
                | "startContainer"
                | "poststart"
                | "poststop"
        ) {
            return Err(format!("unknown hook {name:?}"));
        }
        let mut hook = json!({"path": h["path"].as_str().ok_or("a hook without a path")?});
        for key in ["args", "env", "timeout"] {
            if !h[key].is_null() {
                hook[key] = h[key].clone();
            }
        }
        e.hooks.entry(name.to_string()).or_default().push(hook);
    }
    for g in v["additionalGids"].as_array().into_iter().flatten() {
        e.gids
            .push(g.as_u64().ok_or("an additional gid is not a number")? as u32);
    }
    Ok(e)
}

/// YAML (the usual form of CDI specs) as JSON.
fn yaml_to_json(text: &str) -> Result<Value, String> {
    use yaml_rust2::{Yaml, YamlLoader};
    fn conv(y: &Yaml) -> Value {
        match y {
            Yaml::Real(s) => s.parse::<f64>().map(Value::from).unwrap_or(Value::Null),
            Yaml::Integer(i) => (*i).into(),
            Yaml::String(s) => s.clone().into(),
            Yaml::Boolean(b) => (*b).into(),
            Yaml::Array(a) => a.iter().map(conv).collect(),
            Yaml::Hash(h) => h
                .iter()
                .filter_map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) => s.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        _ => return None,
                    };
                    Some((key, conv(v)))
                })
                .collect::<serde_json::Map<_, _>>()
                .into(),
            _ => Value::Null,
        }
    }
    let docs = YamlLoader::load_from_str(text).map_err(|e| e.to_string())?;
    Ok(docs.first().map(conv).unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_rules_follow_the_kernel_grammar() {
        assert_eq!(
            cgroup_rule("c 1:3 mr").expect("ok"),
            json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "mr"})
        );
        assert_eq!(
            cgroup_rule("a *:* rwm").expect("ok"),
            json!({"allow": true, "type": "a", "major": -1, "minor": -1, "access": "rwm"})
        );
        assert_eq!(cgroup_rule("b 8:* r").expect("ok")["minor"], -1);
        for bad in [
            "",
            "x 1:3 r",
            "c 1:3",
            "c 1:3 rwx",
            "c 1:3 rwmr",
            "c  1:3 r",
            " c 1:3 r",
            "c 1:3 r ",
            "c 1-3 r",
            "c a:3 r",
            "c 1: r",
        ] {
            assert_eq!(
                cgroup_rule(bad).expect_err(bad),
                format!("invalid device cgroup rule format: '{bad}'")
            );
        }
    }

    #[test]
    fn host_devices_are_read_from_the_host() {
        let e = host_device(&DeviceMapping {
            path_on_host: "/dev/null".into(),
            path_in_container: "/dev/mynull".into(),
            cgroup_permissions: "r".into(),
        })
        .expect("/dev/null is a device");
        assert_eq!(e.nodes[0]["path"], "/dev/mynull");
        assert_eq!(e.nodes[0]["type"], "c");
        assert_eq!(
            (e.nodes[0]["major"].as_u64(), e.nodes[0]["minor"].as_u64()),
            (Some(1), Some(3))
        );
        assert_eq!(e.rules[0]["access"], "r");
        let missing = host_device(&DeviceMapping {
            path_on_host: "/dev/nosuch".into(),
            ..Default::default()
        });
        assert_eq!(
            missing.expect_err("missing"),
            "error gathering device information while adding custom device \"/dev/nosuch\": no such file or directory"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let not_a_device = host_device(&DeviceMapping {
            path_on_host: dir.path().to_string_lossy().into_owned(),
            ..Default::default()
        });
        assert!(not_a_device
            .expect_err("empty dir")
            .ends_with(": not a device node"));
        assert!(host_device(&DeviceMapping {
            path_on_host: "/dev/null".into(),
            cgroup_permissions: "rwx".into(),
            ..Default::default()
        })
        .is_err());
    }

    #[test]
    fn requests_without_a_driver_are_refused_as_dockerd_refuses_them() {
        let gpu = DeviceRequest {
            count: -1,
            capabilities: vec![vec!["gpu".into()]],
            ..Default::default()
        };
        assert_eq!(
            request(&gpu, &[]).expect_err("no driver"),
            "could not select device driver \"\" with capabilities: [[gpu]]"
        );
        let two = DeviceRequest {
            driver: "nvidia".into(),
            capabilities: vec![vec!["gpu".into(), "utility".into()], vec!["compute".into()]],
            ..Default::default()
        };
        assert_eq!(
            request(&two, &[]).expect_err("no driver"),
            "could not select device driver \"nvidia\" with capabilities: [[gpu utility] [compute]]"
        );
    }

    #[test]
    fn cdi_devices_apply_their_specs_edits() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("vendor.yaml"),
            "cdiVersion: 0.6.0\nkind: example.com/dev\ncontainerEdits:\n  env: [COMMON=1]\ndevices:\n  - name: one\n    containerEdits:\n      env: [ONE=1]\n      deviceNodes:\n        - path: /dev/one\n          hostPath: /dev/zero\n      mounts:\n        - hostPath: /etc/hostname\n          containerPath: /etc/one\n          options: [ro, bind]\n      additionalGids: [555]\n  - name: two\n    containerEdits:\n      env: [TWO=2]\n",
        )
        .expect("spec");
        std::fs::write(dir.path().join("broken.json"), "{").expect("broken");
        let dirs = [dir.path().to_path_buf()];
        let req = |ids: &[&str]| DeviceRequest {
            driver: "cdi".into(),
            device_ids: ids.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let e =
            request(&req(&["example.com/dev=one", "example.com/dev=two"]), &dirs).expect("both");
        assert_eq!(
            e.env,
            ["ONE=1", "COMMON=1", "TWO=2"],
            "the spec's own edits once"
        );
        assert_eq!(e.nodes[0]["path"], "/dev/one");
        assert_eq!(
            (e.nodes[0]["major"].as_u64(), e.nodes[0]["minor"].as_u64()),
            (Some(1), Some(5))
        );
        assert_eq!(e.mounts[0].destination, "/etc/one");
        assert_eq!(e.gids, [555]);
        assert_eq!(
            request(&req(&["example.com/dev=three"]), &dirs).expect_err("unknown"),
            "CDI device injection failed: unresolvable CDI devices example.com/dev=three"
        );
        let counted = DeviceRequest {
            count: 1,
            ..req(&["example.com/dev=one"])
        };
        assert_eq!(
            request(&counted, &dirs).expect_err("count"),
            "unexpected count in CDI device request"
        );
    }
}
