//! From a pod's spec to engine requests, no I/O: container names, the
//! labels that map an engine container back to its pod, environment
//! values (plain, `fieldRef`, `$(VAR)` references), resource quantities,
//! and the create bodies of the sandbox and of each container.
//!
//! Everything the agent needs to find a pod's containers again after a
//! restart is in these labels; the agent keeps no state of its own.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod};
use serde_json::{json, Value};

use crate::error::{Error, Result};

/// The pod's UID (the key of everything the agent does).
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// The spec's container name; [`SANDBOX`] for the sandbox.
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// `sandbox`, `init` or `app` ([`Kind`]).
pub const LABEL_KIND: &str = "io.cais.container.kind";
/// How many times this container of the pod ran before this one.
pub const LABEL_ATTEMPT: &str = "io.cais.container.attempt";
/// The node whose agent owns the container.
pub const LABEL_NODE: &str = "io.cais.agent.node";

/// The container name of a pod's sandbox.
pub const SANDBOX: &str = "POD";

/// What part of a pod an engine container is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sandbox,
    Init,
    App,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Sandbox => "sandbox",
            Kind::Init => "init",
            Kind::App => "app",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "sandbox" => Some(Kind::Sandbox),
            "init" => Some(Kind::Init),
            "app" => Some(Kind::App),
            _ => None,
        }
    }
}

/// Who a pod is: the fields every name and label is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRef {
    pub uid: String,
    pub name: String,
    pub namespace: String,
}

impl PodRef {
    pub fn of(pod: &Pod) -> Result<PodRef> {
        let m = &pod.metadata;
        let name = m.name.clone().unwrap_or_default();
        let uid = m.uid.clone().unwrap_or_default();
        if name.is_empty() || uid.is_empty() {
            return Err(Error::InvalidPod {
                pod: name,
                message: "a pod needs a name and a uid".into(),
            });
        }
        Ok(PodRef {
            uid,
            name,
            namespace: m.namespace.clone().unwrap_or_else(|| "default".into()),
        })
    }

    /// `ns/name`, for logs and errors.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The engine container's name: `k8s_<container>_<pod>_<namespace>_<uid>_<attempt>`.
    pub fn container_name(&self, container: &str, attempt: u32) -> String {
        format!(
            "k8s_{container}_{}_{}_{}_{attempt}",
            self.name, self.namespace, self.uid
        )
    }

    /// The engine volume backing an `emptyDir` volume.
    pub fn volume_name(&self, volume: &str) -> String {
        format!("k8s_{}_{volume}", self.uid)
    }

    pub fn labels(&self, node: &str, container: &str, kind: Kind, attempt: u32) -> Value {
        json!({
            LABEL_POD_UID: self.uid,
            LABEL_POD_NAME: self.name,
            LABEL_POD_NAMESPACE: self.namespace,
            LABEL_CONTAINER_NAME: container,
            LABEL_KIND: kind.as_str(),
            LABEL_ATTEMPT: attempt.to_string(),
            LABEL_NODE: node,
        })
    }
}

/// Replaces `$(NAME)` with `NAME`'s value where `lookup` knows it; an
/// unknown reference stays as written and `$$` is a literal `$` (the
/// expansion of a container's command, args and env values).
pub fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The config maps and secrets of the pod's namespace that its spec
/// names, as read from the API (name → key → bytes); a name missing here
/// does not exist.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sources {
    pub config_maps: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    pub secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
}

impl Sources {
    /// The config maps and secrets `pod` refers to (volumes, `env`,
    /// `envFrom`), each name once.
    pub fn wanted(pod: &Pod) -> (Vec<String>, Vec<String>) {
        let mut maps = std::collections::BTreeSet::new();
        let mut secrets = std::collections::BTreeSet::new();
        let Some(spec) = &pod.spec else {
            return (Vec::new(), Vec::new());
        };
        for v in spec.volumes.iter().flatten() {
            if let Some(c) = &v.config_map {
                maps.insert(c.name.clone());
            }
            if let Some(s) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
                secrets.insert(s);
            }
        }
        let containers = spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers);
        for c in containers {
            for e in c.env.iter().flatten().filter_map(|e| e.value_from.as_ref()) {
                if let Some(r) = &e.config_map_key_ref {
                    maps.insert(r.name.clone());
                }
                if let Some(r) = &e.secret_key_ref {
                    secrets.insert(r.name.clone());
                }
            }
            for e in c.env_from.iter().flatten() {
                if let Some(r) = &e.config_map_ref {
                    maps.insert(r.name.clone());
                }
                if let Some(r) = &e.secret_ref {
                    secrets.insert(r.name.clone());
                }
            }
        }
        (maps.into_iter().collect(), secrets.into_iter().collect())
    }

    fn source(&self, secret: bool) -> &BTreeMap<String, BTreeMap<String, Vec<u8>>> {
        if secret {
            &self.secrets
        } else {
            &self.config_maps
        }
    }
}

fn kind_name(secret: bool) -> &'static str {
    if secret {
        "secret"
    } else {
        "configmap"
    }
}

/// What the environment of a container can refer to besides itself.
pub struct EnvContext<'a> {
    pub pod: &'a Pod,
    pub node: &'a str,
    pub pod_ip: &'a str,
    pub host_ip: &'a str,
    pub sources: &'a Sources,
    /// Where the pod's configMap and secret volumes are written.
    pub volume_dir: &'a std::path::Path,
}

/// The value of a `fieldRef` path.
fn field_ref(cx: &EnvContext<'_>, path: &str) -> std::result::Result<String, String> {
    let m = &cx.pod.metadata;
    let spec = cx.pod.spec.as_ref();
    let of_map = |map: Option<&BTreeMap<String, String>>, key: &str| {
        map.and_then(|m| m.get(key)).cloned().unwrap_or_default()
    };
    let indexed = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix("['"))
            .and_then(|r| r.strip_suffix("']"))
    };
    Ok(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "spec.nodeName" => cx.node.to_string(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.podIPs" => cx.pod_ip.to_string(),
        "status.hostIP" | "status.hostIPs" => cx.host_ip.to_string(),
        _ => {
            if let Some(key) = indexed("metadata.labels") {
                of_map(m.labels.as_ref(), key)
            } else if let Some(key) = indexed("metadata.annotations") {
                of_map(m.annotations.as_ref(), key)
            } else {
                return Err(format!("unsupported fieldRef path {path:?}"));
            }
        }
    })
}

/// A container's environment as `NAME=value` lines, in the spec's order,
/// each value expanded against the ones before it.
pub fn environment(cx: &EnvContext<'_>, container: &Container) -> Result<Vec<String>> {
    let pod = PodRef::of(cx.pod)?;
    let refused = |message: String| Error::InvalidPod {
        pod: pod.key(),
        message: format!("container {:?}: {message}", container.name),
    };
    let mut values: Vec<(String, String)> = Vec::new();
    for from in container.env_from.iter().flatten() {
        let (secret, name, optional) = match (&from.config_map_ref, &from.secret_ref) {
            (Some(r), _) => (false, r.name.clone(), r.optional.unwrap_or(false)),
            (None, Some(r)) => (true, r.name.clone(), r.optional.unwrap_or(false)),
            (None, None) => continue,
        };
        match cx.sources.source(secret).get(&name) {
            Some(data) => {
                let prefix = from.prefix.clone().unwrap_or_default();
                for (k, v) in data {
                    let key = format!("{prefix}{k}");
                    values.retain(|(n, _)| *n != key);
                    values.push((key, String::from_utf8_lossy(v).into_owned()));
                }
            }
            None if optional => {}
            None => {
                return Err(refused(format!(
                    "{} \"{name}\" not found",
                    kind_name(secret)
                )))
            }
        }
    }
    for EnvVar {
        name,
        value,
        value_from,
    } in container.env.iter().flatten()
    {
        let lookup = |n: &str| {
            values
                .iter()
                .rev()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
        };
        let v = match (value, value_from) {
            (Some(v), _) => expand(v, &lookup),
            (None, Some(from)) => {
                let key_ref = match (&from.config_map_key_ref, &from.secret_key_ref) {
                    (Some(r), _) => Some((false, &r.name, &r.key, r.optional.unwrap_or(false))),
                    (None, Some(r)) => Some((true, &r.name, &r.key, r.optional.unwrap_or(false))),
                    (None, None) => None,
                };
                match (&from.field_ref, key_ref) {
                    (Some(f), _) => field_ref(cx, &f.field_path)
                        .map_err(|message| refused(format!("env {name}: {message}")))?,
                    (None, Some((secret, source, key, optional))) => {
                        let what = kind_name(secret);
                        match cx.sources.source(secret).get(source).map(|d| d.get(key)) {
                            Some(Some(v)) => String::from_utf8_lossy(v).into_owned(),
                            _ if optional => continue,
                            Some(None) => {
                                return Err(refused(format!(
                                    "couldn't find key {key} in {what} {}/{source}",
                                    pod.namespace
                                )))
                            }
                            None => return Err(refused(format!("{what} \"{source}\" not found"))),
                        }
                    }
                    (None, None) => {
                        return Err(refused(format!(
                            "env {name}: only value, fieldRef, configMapKeyRef and secretKeyRef are supported"
                        )))
                    }
                }
            }
            (None, None) => String::new(),
        };
        values.retain(|(k, _)| k != name);
        values.push((name.clone(), v));
    }
    Ok(values
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect())
}

/// A quantity (`128Mi`, `1G`, `500m`, `0.5`) as a number of base units
/// times `scale` (1 for bytes, 10^9 for CPUs as nano-CPUs), rounded up.
pub fn quantity(text: &str, scale: f64) -> Option<i64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let v = (number * factor * scale).ceil();
    (v.is_finite() && v >= 0.0).then_some(v as i64)
}

/// The sandbox's create body: [`crate::pause::IMAGE`] on the pod network
/// (or the host's), a shareable IPC namespace, the pod's hostname.
pub fn sandbox_request(pod: &Pod, node: &str, network: &str, attempt: u32) -> Result<Value> {
    let r = PodRef::of(pod)?;
    let spec = pod.spec.clone().unwrap_or_default();
    let host_network = spec.host_network.unwrap_or(false);
    let mut hostname: String = spec.hostname.clone().unwrap_or_else(|| r.name.clone());
    hostname.truncate(63);
    let mut body = json!({
        "Image": crate::pause::IMAGE,
        "Cmd": ["/pause"],
        "Labels": r.labels(node, SANDBOX, Kind::Sandbox, attempt),
        "StopSignal": "SIGKILL",
        "HostConfig": {
            "NetworkMode": if host_network { "host" } else { network },
            "IpcMode": if spec.host_ipc.unwrap_or(false) { "host" } else { "shareable" },
            "PidMode": if spec.host_pid.unwrap_or(false) { "host" } else { "" },
        },
    });
    if !host_network {
        body["Hostname"] = hostname.into();
    }
    Ok(body)
}

/// How a container mounts the pod's volumes, as engine mounts.
pub fn mounts(
    pod: &Pod,
    container: &Container,
    volume_dir: &std::path::Path,
) -> Result<Vec<Value>> {
    let r = PodRef::of(pod)?;
    let spec = pod.spec.clone().unwrap_or_default();
    let volumes = spec.volumes.unwrap_or_default();
    let mut out = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        let Some(v) = volumes.iter().find(|v| v.name == m.name) else {
            return Err(Error::InvalidPod {
                pod: r.key(),
                message: format!(
                    "container {:?} mounts volume {:?}, which the pod does not declare",
                    container.name, m.name
                ),
            });
        };
        let read_only = m.read_only.unwrap_or(false);
        let sub = m.sub_path.clone().unwrap_or_default();
        let mount = if v.empty_dir.is_some() {
            json!({
                "Type": "volume",
                "Source": r.volume_name(&v.name),
                "Target": m.mount_path,
                "ReadOnly": read_only,
                "VolumeOptions": {"NoCopy": true, "Subpath": sub},
            })
        } else if let Some(h) = &v.host_path {
            let source = if sub.is_empty() {
                h.path.clone()
            } else {
                format!("{}/{sub}", h.path.trim_end_matches('/'))
            };
            json!({
                "Type": "bind",
                "Source": source,
                "Target": m.mount_path,
                "ReadOnly": read_only,
            })
        } else if v.config_map.is_some() || v.secret.is_some() {
            let dir = volume_dir.join(&v.name);
            let source = if sub.is_empty() { dir } else { dir.join(&sub) };
            // Read-only, as the kubelet mounts them.
            json!({
                "Type": "bind",
                "Source": source.to_string_lossy(),
                "Target": m.mount_path,
                "ReadOnly": true,
            })
        } else {
            return Err(Error::InvalidPod {
                pod: r.key(),
                message: format!(
                    "volume {:?}: only emptyDir, hostPath, configMap and secret volumes are supported",
                    v.name
                ),
            });
        };
        out.push(mount);
    }
    Ok(out)
}

/// A file of a configMap or secret volume: its path in the volume, its
/// bytes and mode.
pub type VolumeFile = (String, Vec<u8>, u32);

/// The files of each configMap and secret volume of `pod`, by volume
/// name; a missing source (not optional) is an error naming it.
pub fn volume_files(pod: &Pod, sources: &Sources) -> Result<Vec<(String, Vec<VolumeFile>)>> {
    let r = PodRef::of(pod)?;
    let mut out = Vec::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let (secret, name, items, default_mode, optional) = match (&v.config_map, &v.secret) {
            (Some(c), _) => (
                false,
                c.name.clone(),
                c.items.clone(),
                c.default_mode,
                c.optional,
            ),
            (None, Some(s)) => (
                true,
                s.secret_name.clone().unwrap_or_default(),
                s.items.clone(),
                s.default_mode,
                s.optional,
            ),
            (None, None) => continue,
        };
        let mode = default_mode.map(|m| m as u32).unwrap_or(0o644);
        let Some(data) = sources.source(secret).get(&name) else {
            if optional.unwrap_or(false) {
                out.push((v.name.clone(), Vec::new()));
                continue;
            }
            return Err(Error::InvalidPod {
                pod: r.key(),
                message: format!(
                    "volume {:?}: {} \"{name}\" not found",
                    v.name,
                    kind_name(secret)
                ),
            });
        };
        let mut files = Vec::new();
        match items {
            Some(items) => {
                for item in items {
                    let Some(bytes) = data.get(&item.key) else {
                        return Err(Error::InvalidPod {
                            pod: r.key(),
                            message: format!(
                                "volume {:?}: configuration key {:?} not found in {} {name}",
                                v.name,
                                item.key,
                                kind_name(secret)
                            ),
                        });
                    };
                    let m = item.mode.map(|m| m as u32).unwrap_or(mode);
                    files.push((item.path.clone(), bytes.clone(), m));
                }
            }
            None => {
                for (k, bytes) in data {
                    files.push((k.clone(), bytes.clone(), mode));
                }
            }
        }
        for (path, _, _) in &files {
            if path.starts_with('/') || path.split('/').any(|p| p == ".." || p.is_empty()) {
                return Err(Error::InvalidPod {
                    pod: r.key(),
                    message: format!("volume {:?}: bad file path {path:?}", v.name),
                });
            }
        }
        out.push((v.name.clone(), files));
    }
    Ok(out)
}

/// A container's create body, joined to the sandbox `sandbox_id`.
pub fn container_request(
    cx: &EnvContext<'_>,
    container: &Container,
    kind: Kind,
    sandbox_id: &str,
    attempt: u32,
) -> Result<Value> {
    let r = PodRef::of(cx.pod)?;
    let spec = cx.pod.spec.clone().unwrap_or_default();
    let env = environment(cx, container)?;
    let lookup = |n: &str| {
        env.iter()
            .rev()
            .find_map(|l| l.strip_prefix(n).and_then(|r| r.strip_prefix('=')))
            .map(str::to_string)
    };
    let expand_all = |v: &Option<Vec<String>>| {
        v.as_ref()
            .map(|v| v.iter().map(|s| expand(s, &lookup)).collect::<Vec<_>>())
    };
    let joined = format!("container:{sandbox_id}");
    let mut host = json!({
        "NetworkMode": joined,
        "IpcMode": joined,
        "Mounts": mounts(cx.pod, container, cx.volume_dir)?,
    });
    if spec.share_process_namespace.unwrap_or(false) {
        host["PidMode"] = joined.clone().into();
    }
    if let Some(limits) = container.resources.as_ref().and_then(|r| r.limits.as_ref()) {
        if let Some(q) = limits.get("memory").and_then(|q| quantity(&q.0, 1.0)) {
            host["Memory"] = q.into();
        }
        if let Some(q) = limits.get("cpu").and_then(|q| quantity(&q.0, 1e9)) {
            host["NanoCpus"] = q.into();
        }
    }
    let security = container.security_context.as_ref();
    let pod_security = spec.security_context.as_ref();
    if let Some(s) = security {
        if s.privileged == Some(true) {
            host["Privileged"] = true.into();
        }
        if s.read_only_root_filesystem == Some(true) {
            host["ReadonlyRootfs"] = true.into();
        }
        if let Some(c) = &s.capabilities {
            host["CapAdd"] = json!(c.add.clone().unwrap_or_default());
            host["CapDrop"] = json!(c.drop.clone().unwrap_or_default());
        }
    }
    let user = security
        .and_then(|s| s.run_as_user)
        .or(pod_security.and_then(|s| s.run_as_user));
    let group = security
        .and_then(|s| s.run_as_group)
        .or(pod_security.and_then(|s| s.run_as_group));
    let mut body = json!({
        "Image": container.image.clone().unwrap_or_default(),
        "Env": env,
        "Labels": r.labels(cx.node, &container.name, kind, attempt),
        "Tty": container.tty.unwrap_or(false),
        "OpenStdin": container.stdin.unwrap_or(false),
        "StdinOnce": container.stdin_once.unwrap_or(false),
        "HostConfig": host,
    });
    if let Some(command) = expand_all(&container.command) {
        body["Entrypoint"] = json!(command);
    }
    if let Some(args) = expand_all(&container.args) {
        body["Cmd"] = json!(args);
    }
    if let Some(dir) = container.working_dir.as_ref().filter(|d| !d.is_empty()) {
        body["WorkingDir"] = dir.clone().into();
    }
    match (user, group) {
        (Some(u), Some(g)) => body["User"] = format!("{u}:{g}").into(),
        (Some(u), None) => body["User"] = u.to_string().into(),
        (None, Some(g)) => body["User"] = format!("0:{g}").into(),
        (None, None) => {}
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-1",
                         "labels": {"app": "web"}, "annotations": {"team": "a"}},
            "spec": spec,
        }))
        .expect("a pod")
    }

    #[test]
    fn references_expand() {
        let lookup = |n: &str| (n == "A").then(|| "1".to_string());
        assert_eq!(expand("x$(A)y", &lookup), "x1y");
        assert_eq!(expand("$(B)", &lookup), "$(B)");
        assert_eq!(expand("$$(A)", &lookup), "$(A)");
        assert_eq!(expand("$(A", &lookup), "$(A");
        assert_eq!(expand("a$b", &lookup), "a$b");
        assert_eq!(expand("$(A)$(A)", &lookup), "11");
    }

    #[test]
    fn environment_has_values_field_refs_and_expansions() {
        let p = pod(json!({"containers": [{"name": "c", "env": [
            {"name": "A", "value": "one"},
            {"name": "B", "value": "$(A)-two"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "TEAM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['team']"}}},
        ]}]}));
        let cx = EnvContext {
            pod: &p,
            node: "n1",
            pod_ip: "10.1.0.5",
            host_ip: "192.168.1.2",
            sources: &Sources::default(),
            volume_dir: std::path::Path::new("/v"),
        };
        let c = &p.spec.as_ref().expect("spec").containers[0];
        assert_eq!(
            environment(&cx, c).expect("env"),
            [
                "A=one",
                "B=one-two",
                "POD=web",
                "NS=shop",
                "IP=10.1.0.5",
                "NODE=n1",
                "APP=web",
                "TEAM=a"
            ]
        );
    }

    #[test]
    fn unsupported_env_sources_are_refused() {
        let p = pod(json!({"containers": [{"name": "c", "env": [
            {"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.nothing"}}}]}]}));
        let cx = EnvContext {
            pod: &p,
            node: "n1",
            pod_ip: "",
            host_ip: "",
            sources: &Sources::default(),
            volume_dir: std::path::Path::new("/v"),
        };
        let c = &p.spec.as_ref().expect("spec").containers[0];
        let e = environment(&cx, c).expect_err("refused").to_string();
        assert!(
            e.contains("unsupported fieldRef path \"spec.nothing\""),
            "{e}"
        );
    }

    #[test]
    fn config_maps_and_secrets_feed_env_and_volumes() {
        let p = pod(json!({"containers": [{"name": "c",
            "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "a"}}},
                    {"name": "S", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "s"}}},
                    {"name": "O", "valueFrom": {"secretKeyRef": {"name": "none", "key": "s", "optional": true}}}],
            "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "P_"}]}],
            "volumes": [{"name": "v", "configMap": {"name": "cm", "items": [{"key": "a", "path": "d/a.txt", "mode": 0o600}]}},
                        {"name": "w", "secret": {"secretName": "sec"}}]}));
        assert_eq!(
            Sources::wanted(&p),
            (
                vec!["cm".to_string()],
                vec!["none".to_string(), "sec".to_string()]
            )
        );
        let mut sources = Sources::default();
        sources.config_maps.insert(
            "cm".into(),
            [
                ("a".to_string(), b"1".to_vec()),
                ("b".to_string(), b"2".to_vec()),
            ]
            .into(),
        );
        sources
            .secrets
            .insert("sec".into(), [("s".to_string(), b"pw".to_vec())].into());
        let cx = EnvContext {
            pod: &p,
            node: "n1",
            pod_ip: "",
            host_ip: "",
            sources: &sources,
            volume_dir: std::path::Path::new("/v"),
        };
        let c = &p.spec.as_ref().expect("spec").containers[0];
        assert_eq!(
            environment(&cx, c).expect("env"),
            ["P_a=1", "P_b=2", "A=1", "S=pw"]
        );
        let files = volume_files(&p, &sources).expect("files");
        assert_eq!(
            files,
            vec![
                (
                    "v".to_string(),
                    vec![("d/a.txt".to_string(), b"1".to_vec(), 0o600)]
                ),
                (
                    "w".to_string(),
                    vec![("s".to_string(), b"pw".to_vec(), 0o644)]
                ),
            ]
        );
        // Missing sources are named.
        let empty = Sources::default();
        let cx = EnvContext {
            sources: &empty,
            ..cx
        };
        let e = environment(&cx, c).expect_err("refused").to_string();
        assert!(e.contains("configmap \"cm\" not found"), "{e}");
        let e = volume_files(&p, &empty).expect_err("refused").to_string();
        assert!(e.contains("configmap \"cm\" not found"), "{e}");
    }

    #[test]
    fn volume_paths_stay_inside() {
        let p = pod(json!({"containers": [],
            "volumes": [{"name": "v", "configMap": {"name": "cm", "items": [{"key": "a", "path": "../x"}]}}]}));
        let mut sources = Sources::default();
        sources
            .config_maps
            .insert("cm".into(), [("a".to_string(), b"1".to_vec())].into());
        let e = volume_files(&p, &sources).expect_err("refused").to_string();
        assert!(e.contains("bad file path"), "{e}");
    }

    #[test]
    fn quantities() {
        assert_eq!(quantity("128Mi", 1.0), Some(128 * 1024 * 1024));
        assert_eq!(quantity("1G", 1.0), Some(1_000_000_000));
        assert_eq!(quantity("500m", 1e9), Some(500_000_000));
        assert_eq!(quantity("2", 1e9), Some(2_000_000_000));
        assert_eq!(quantity("0.5", 1e9), Some(500_000_000));
        assert_eq!(quantity("12Qi", 1.0), None);
        assert_eq!(quantity("", 1.0), None);
    }

    #[test]
    fn container_request_joins_the_sandbox() {
        let p = pod(json!({"containers": [{"name": "c", "image": "busybox",
            "command": ["sh", "-c"], "args": ["echo $(GREETING)"],
            "env": [{"name": "GREETING", "value": "hi"}],
            "resources": {"limits": {"memory": "64Mi", "cpu": "250m"}},
            "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"},
                             {"name": "host", "mountPath": "/h", "readOnly": true}]}],
            "volumes": [{"name": "scratch", "emptyDir": {}},
                        {"name": "host", "hostPath": {"path": "/srv"}}]}));
        let cx = EnvContext {
            pod: &p,
            node: "n1",
            pod_ip: "",
            host_ip: "",
            sources: &Sources::default(),
            volume_dir: std::path::Path::new("/v"),
        };
        let c = &p.spec.as_ref().expect("spec").containers[0];
        let body = container_request(&cx, c, Kind::App, "abc", 2).expect("body");
        assert_eq!(body["Entrypoint"], json!(["sh", "-c"]));
        assert_eq!(body["Cmd"], json!(["echo hi"]));
        assert_eq!(body["HostConfig"]["NetworkMode"], "container:abc");
        assert_eq!(body["HostConfig"]["IpcMode"], "container:abc");
        assert_eq!(body["HostConfig"]["Memory"], 64 * 1024 * 1024);
        assert_eq!(body["HostConfig"]["NanoCpus"], 250_000_000);
        assert_eq!(body["Labels"][LABEL_POD_UID], "u-1");
        assert_eq!(body["Labels"][LABEL_CONTAINER_NAME], "c");
        assert_eq!(body["Labels"][LABEL_ATTEMPT], "2");
        assert_eq!(body["Labels"][LABEL_KIND], "app");
        let mounts = body["HostConfig"]["Mounts"].as_array().expect("mounts");
        assert_eq!(mounts[0]["Type"], "volume");
        assert_eq!(mounts[0]["Source"], "k8s_u-1_scratch");
        assert_eq!(mounts[1]["Type"], "bind");
        assert_eq!(mounts[1]["Source"], "/srv");
        assert_eq!(mounts[1]["ReadOnly"], true);
    }

    #[test]
    fn undeclared_volumes_are_refused() {
        let p = pod(json!({"containers": [{"name": "c",
            "volumeMounts": [{"name": "nope", "mountPath": "/x"}]}]}));
        let c = &p.spec.as_ref().expect("spec").containers[0];
        let e = mounts(&p, c, std::path::Path::new("/v"))
            .expect_err("refused")
            .to_string();
        assert!(e.contains("which the pod does not declare"), "{e}");
    }

    #[test]
    fn names_and_sandbox() {
        let p = pod(json!({"containers": []}));
        let r = PodRef::of(&p).expect("ref");
        assert_eq!(r.container_name("c", 3), "k8s_c_web_shop_u-1_3");
        let body = sandbox_request(&p, "n1", "kube", 0).expect("body");
        assert_eq!(body["Hostname"], "web");
        assert_eq!(body["HostConfig"]["NetworkMode"], "kube");
        assert_eq!(body["HostConfig"]["IpcMode"], "shareable");
        assert_eq!(body["Labels"][LABEL_KIND], "sandbox");
        assert_eq!(body["Labels"][LABEL_NODE], "n1");
    }
}
