//! Request bodies in the Kubernetes protobuf encoding
//! (`application/vnd.kubernetes.protobuf`), which kubectl's typed clients
//! send (`kubectl create namespace|configmap|secret|deployment ...`) and
//! do not retry as JSON. They are decoded into the same JSON the rest of
//! the server handles; responses are always JSON, which those clients
//! accept too.
//!
//! The body is the magic `k8s\0` and a `runtime.Unknown` envelope (field 1
//! the type's apiVersion and kind, field 2 the object's bytes). The
//! object is decoded by the field numbers and wire types of [`table`]
//! (generated from the protobuf definitions, see its header); a field's
//! JSON name comes from the kind's OpenAPI schema, matched without case
//! and underscores (`pod_i_ps` is `podIPs`). Go's protobuf writes
//! non-pointer fields even when empty: empty strings are dropped and a
//! zero time is `null`, as Go's JSON encoding would have them.

use base64::Engine as _;
use serde_json::{Map, Value};

mod table;

/// One field of a message.
#[derive(Debug)]
pub struct Field {
    pub tag: u32,
    /// The field's name as prost spells it (snake case).
    pub name: &'static str,
    pub kind: Kind,
    pub repeated: bool,
}

/// A field's type on the wire.
#[derive(Debug)]
pub enum Kind {
    String,
    Bytes,
    Bool,
    Int32,
    Int64,
    Double,
    Message(&'static str),
    MapString,
    MapBytes,
    MapMessage(&'static str),
}

/// Fields Go declares without a pointer, so its protobuf encoding writes
/// them even when zero while its JSON encoding leaves them out
/// (`omitempty`); a zero here is dropped. Pointer fields, where zero is a
/// value (`replicas: 0`), are never listed.
const ZERO_IS_UNSET: &[(&str, &str)] = &[
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "generation",
    ),
    ("io.k8s.api.core.v1.Container", "stdin"),
    ("io.k8s.api.core.v1.Container", "stdin_once"),
    ("io.k8s.api.core.v1.Container", "tty"),
    ("io.k8s.api.core.v1.ContainerPort", "host_port"),
    ("io.k8s.api.core.v1.PodSpec", "host_network"),
    ("io.k8s.api.core.v1.PodSpec", "host_pid"),
    ("io.k8s.api.core.v1.PodSpec", "host_ipc"),
    ("io.k8s.api.core.v1.VolumeMount", "read_only"),
    ("io.k8s.api.core.v1.ServicePort", "node_port"),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "publish_not_ready_addresses",
    ),
    ("io.k8s.api.apps.v1.DeploymentSpec", "min_ready_seconds"),
    ("io.k8s.api.apps.v1.DeploymentSpec", "paused"),
    ("io.k8s.api.apps.v1.ReplicaSetSpec", "min_ready_seconds"),
    ("io.k8s.api.apps.v1.StatefulSetSpec", "min_ready_seconds"),
    ("io.k8s.api.apps.v1.DaemonSetSpec", "min_ready_seconds"),
];

pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8] = b"k8s\x00";

fn message(name: &str) -> Option<&'static [Field]> {
    table::MESSAGES
        .binary_search_by(|(n, _)| (*n).cmp(name))
        .ok()
        .map(|i| table::MESSAGES[i].1)
}

/// A cursor over protobuf wire data.
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.data.split_first().ok_or("truncated varint")?;
            self.data = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.data.len() < n {
            return Err("truncated field".into());
        }
        let (b, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(b)
    }

    fn delimited(&mut self) -> Result<&'a [u8], String> {
        let n = self.varint()? as usize;
        self.bytes(n)
    }

    /// The next (field number, wire type), `None` at the end.
    fn key(&mut self) -> Result<Option<(u32, u8)>, String> {
        if self.data.is_empty() {
            return Ok(None);
        }
        let k = self.varint()?;
        Ok(Some(((k >> 3) as u32, (k & 7) as u8)))
    }

    fn skip(&mut self, wire: u8) -> Result<(), String> {
        match wire {
            0 => self.varint().map(drop),
            1 => self.bytes(8).map(drop),
            2 => self.delimited().map(drop),
            5 => self.bytes(4).map(drop),
            other => Err(format!("unsupported wire type {other}")),
        }
    }
}

fn normalize(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

fn camel(name: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The JSON name of a field of `message`, from its schema's properties.
fn json_name(definitions: &Map<String, Value>, message: &str, field: &str) -> String {
    let wanted = normalize(field);
    definitions
        .get(message)
        .and_then(|d| d.get("properties"))
        .and_then(Value::as_object)
        .and_then(|props| props.keys().find(|k| normalize(k) == wanted).cloned())
        .unwrap_or_else(|| camel(field))
}

fn time(seconds: i64, nanos: i64, micro: bool) -> Value {
    if seconds == 0 && nanos == 0 {
        return Value::Null;
    }
    let Ok(t) = jiff::Timestamp::new(seconds, nanos as i32) else {
        return Value::Null;
    };
    let format = if micro {
        "%Y-%m-%dT%H:%M:%S%.6fZ"
    } else {
        "%Y-%m-%dT%H:%M:%SZ"
    };
    jiff::fmt::strtime::format(format, t).map_or(Value::Null, Value::from)
}

fn go_duration(nanos: i64) -> String {
    let total = nanos / 1_000_000_000;
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// Decodes a message of the special well-known types; `None` for others.
fn special(name: &str, data: &[u8]) -> Result<Option<Value>, String> {
    let mut r = Reader { data };
    let mut ints = [0i64; 4];
    let mut strings: [Option<String>; 4] = Default::default();
    let mut raw: Option<&[u8]> = None;
    let known = [
        "io.k8s.apimachinery.pkg.apis.meta.v1.Time",
        "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime",
        "io.k8s.apimachinery.pkg.api.resource.Quantity",
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
        "io.k8s.apimachinery.pkg.runtime.RawExtension",
        "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1",
        "io.k8s.apimachinery.pkg.apis.meta.v1.Duration",
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON",
    ];
    if !known.contains(&name) {
        return Ok(None);
    }
    while let Some((tag, wire)) = r.key()? {
        let i = tag as usize;
        match wire {
            0 if i < 4 => ints[i] = r.varint()? as i64,
            2 if i < 4 => {
                let b = r.delimited()?;
                if i == 1 {
                    raw = Some(b);
                }
                strings[i] = Some(String::from_utf8_lossy(b).into_owned());
            }
            w => r.skip(w)?,
        }
    }
    let json_of = |raw: Option<&[u8]>| {
        raw.and_then(|b| serde_json::from_slice::<Value>(b).ok())
            .unwrap_or(Value::Null)
    };
    Ok(Some(match name {
        "io.k8s.apimachinery.pkg.apis.meta.v1.Time" => time(ints[1], ints[2], false),
        "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime" => time(ints[1], ints[2], true),
        "io.k8s.apimachinery.pkg.api.resource.Quantity" => {
            strings[1].clone().map_or(Value::Null, Value::from)
        }
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString" => {
            if ints[1] == 1 {
                strings[3].clone().map_or(Value::Null, Value::from)
            } else {
                Value::from(ints[2] as i32)
            }
        }
        "io.k8s.apimachinery.pkg.apis.meta.v1.Duration" => Value::from(go_duration(ints[1])),
        _ => json_of(raw),
    }))
}

fn decode_message(
    definitions: &Map<String, Value>,
    name: &str,
    data: &[u8],
) -> Result<Value, String> {
    if let Some(v) = special(name, data)? {
        return Ok(v);
    }
    let fields = message(name).ok_or_else(|| format!("no protobuf description of {name}"))?;
    let mut out = Map::new();
    let mut r = Reader { data };
    while let Some((tag, wire)) = r.key()? {
        let Some(field) = fields.iter().find(|f| f.tag == tag) else {
            r.skip(wire)?;
            continue;
        };
        let key = json_name(definitions, name, field.name);
        let mut values = Vec::new();
        match (&field.kind, wire) {
            (Kind::String, 2) => values.push(Value::from(
                String::from_utf8_lossy(r.delimited()?).into_owned(),
            )),
            (Kind::Bytes, 2) => values.push(Value::from(
                base64::engine::general_purpose::STANDARD.encode(r.delimited()?),
            )),
            (Kind::Bool, 0) => values.push(Value::from(r.varint()? != 0)),
            (Kind::Int32, 0) => values.push(Value::from(r.varint()? as i32)),
            (Kind::Int64, 0) => values.push(Value::from(r.varint()? as i64)),
            (Kind::Double, 1) => {
                let b = r.bytes(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                values.push(
                    serde_json::Number::from_f64(f64::from_le_bytes(a))
                        .map_or(Value::Null, Value::Number),
                );
            }
            (Kind::Int32 | Kind::Int64, 2) => {
                // Packed repeated numbers.
                let mut packed = Reader {
                    data: r.delimited()?,
                };
                while !packed.data.is_empty() {
                    let v = packed.varint()?;
                    values.push(if matches!(field.kind, Kind::Int32) {
                        Value::from(v as i32)
                    } else {
                        Value::from(v as i64)
                    });
                }
            }
            (Kind::Message(inner), 2) => {
                values.push(decode_message(definitions, inner, r.delimited()?)?)
            }
            (Kind::MapString | Kind::MapBytes | Kind::MapMessage(_), 2) => {
                let mut entry = Reader {
                    data: r.delimited()?,
                };
                let mut k = String::new();
                let mut v = Value::Null;
                while let Some((t, w)) = entry.key()? {
                    match (t, w) {
                        (1, 2) => k = String::from_utf8_lossy(entry.delimited()?).into_owned(),
                        (2, 2) => {
                            let b = entry.delimited()?;
                            v = match &field.kind {
                                Kind::MapString => {
                                    Value::from(String::from_utf8_lossy(b).into_owned())
                                }
                                Kind::MapBytes => {
                                    Value::from(base64::engine::general_purpose::STANDARD.encode(b))
                                }
                                Kind::MapMessage(inner) => decode_message(definitions, inner, b)?,
                                _ => Value::Null,
                            };
                        }
                        (_, w) => entry.skip(w)?,
                    }
                }
                if v.is_null() {
                    v = match &field.kind {
                        Kind::MapMessage(_) => Value::Object(Map::new()),
                        _ => Value::from(""),
                    };
                }
                let map = out.entry(key).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = map {
                    m.insert(k, v);
                }
                continue;
            }
            (_, w) => {
                return Err(format!(
                    "field {} of {name} has wire type {w}, which does not fit its type",
                    field.name
                ))
            }
        }
        if field.repeated {
            let list = out.entry(key).or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(a) = list {
                a.extend(values);
            }
        } else if let Some(v) = values.pop() {
            let zero = (v.as_i64() == Some(0) || v.as_bool() == Some(false))
                && ZERO_IS_UNSET.contains(&(name, field.name));
            let empty = v.is_null() || v.as_str() == Some("") || zero;
            if empty {
                out.remove(&key);
            } else {
                out.insert(key, v);
            }
        }
    }
    Ok(Value::Object(out))
}

/// The message name of a kind: `apps/v1` `Deployment` is
/// `io.k8s.api.apps.v1.Deployment`.
fn message_of(api_version: &str, kind: &str) -> Option<String> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let package = match group {
        "" => "io.k8s.api.core".to_string(),
        "apiextensions.k8s.io" => "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions".into(),
        "meta.k8s.io" => "io.k8s.apimachinery.pkg.apis.meta".into(),
        g => format!("io.k8s.api.{}", g.split('.').next().unwrap_or(g)),
    };
    let name = format!("{package}.{version}.{kind}");
    message(&name).map(|_| name)
}

/// Decodes a protobuf request body into JSON with its `apiVersion` and
/// `kind`.
pub fn decode(body: &[u8], definitions: &Map<String, Value>) -> Result<Value, String> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or("the body does not start with the protobuf magic number")?;
    let mut r = Reader { data: envelope };
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), None);
    while let Some((tag, wire)) = r.key()? {
        match (tag, wire) {
            (1, 2) => {
                let mut tm = Reader {
                    data: r.delimited()?,
                };
                while let Some((t, w)) = tm.key()? {
                    match (t, w) {
                        (1, 2) => {
                            api_version = String::from_utf8_lossy(tm.delimited()?).into_owned()
                        }
                        (2, 2) => kind = String::from_utf8_lossy(tm.delimited()?).into_owned(),
                        (_, w) => tm.skip(w)?,
                    }
                }
            }
            (2, 2) => raw = Some(r.delimited()?),
            (_, w) => r.skip(w)?,
        }
    }
    let name = message_of(&api_version, &kind)
        .ok_or_else(|| format!("no protobuf decoding for {api_version} {kind}"))?;
    let mut obj = decode_message(definitions, &name, raw.unwrap_or_default())?;
    if let Value::Object(m) = &mut obj {
        m.insert("apiVersion".into(), api_version.into());
        m.insert("kind".into(), kind.into());
    }
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn field(tag: u32, payload: &[u8], out: &mut Vec<u8>) {
        varint(u64::from(tag) << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }

    fn int(tag: u32, v: u64, out: &mut Vec<u8>) {
        varint(u64::from(tag) << 3, out);
        varint(v, out);
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut tm = Vec::new();
        field(1, api_version.as_bytes(), &mut tm);
        field(2, kind.as_bytes(), &mut tm);
        let mut body = MAGIC.to_vec();
        field(1, &tm, &mut body);
        field(2, raw, &mut body);
        body
    }

    fn definitions() -> Map<String, Value> {
        let groups = crate::groups::all();
        let registry =
            crate::registry::Registry::new(groups.iter().flat_map(|g| g.resources.clone()));
        crate::openapi::Schemas::build(&groups, &registry)
            .expect("schemas")
            .definitions()
            .clone()
    }

    #[test]
    fn table_is_sorted_for_binary_search() {
        assert!(table::MESSAGES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(message("io.k8s.api.core.v1.PodSpec").is_some());
    }

    #[test]
    fn a_config_map_as_kubectl_create_sends_it() {
        // metadata{name: "cfg", namespace: "", creationTimestamp: {}}, data{a: "1"}
        let mut meta = Vec::new();
        field(1, b"cfg", &mut meta);
        field(3, b"", &mut meta);
        field(8, b"", &mut meta);
        let mut entry = Vec::new();
        field(1, b"a", &mut entry);
        field(2, b"1", &mut entry);
        let mut cm = Vec::new();
        field(1, &meta, &mut cm);
        field(2, &entry, &mut cm);
        let obj = decode(&envelope("v1", "ConfigMap", &cm), &definitions()).expect("decodes");
        assert_eq!(
            obj,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "1"}})
        );
    }

    #[test]
    fn a_deployment_with_nested_lists_times_and_int_or_strings() {
        let mut container = Vec::new();
        field(1, b"web", &mut container);
        field(2, b"nginx", &mut container);
        let mut port = Vec::new();
        int(3, 80, &mut port); // containerPort
        field(4, b"TCP", &mut port);
        field(6, &port, &mut container);
        let mut pod_spec = Vec::new();
        field(2, &container, &mut pod_spec);
        let mut template = Vec::new();
        field(2, &pod_spec, &mut template);
        let mut intstr = Vec::new();
        int(1, 1, &mut intstr);
        field(3, b"25%", &mut intstr);
        let mut rolling = Vec::new();
        field(1, &intstr, &mut rolling);
        let mut strategy = Vec::new();
        field(1, b"RollingUpdate", &mut strategy);
        field(2, &rolling, &mut strategy);
        let mut spec = Vec::new();
        int(1, 3, &mut spec); // replicas
        field(3, &template, &mut spec);
        field(4, &strategy, &mut spec);
        let mut ts = Vec::new();
        int(1, 1_767_225_600, &mut ts);
        let mut meta = Vec::new();
        field(1, b"web", &mut meta);
        field(8, &ts, &mut meta);
        let mut d = Vec::new();
        field(1, &meta, &mut d);
        field(2, &spec, &mut d);
        let obj = decode(&envelope("apps/v1", "Deployment", &d), &definitions()).expect("decodes");
        assert_eq!(obj["metadata"]["creationTimestamp"], "2026-01-01T00:00:00Z");
        assert_eq!(obj["spec"]["replicas"], 3);
        assert_eq!(
            obj["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
            "25%"
        );
        assert_eq!(
            obj["spec"]["template"]["spec"]["containers"][0]["ports"][0],
            json!({"containerPort": 80, "protocol": "TCP"})
        );
    }

    #[test]
    fn names_match_schema_spellings() {
        let defs = definitions();
        assert_eq!(
            json_name(&defs, "io.k8s.api.core.v1.PodStatus", "pod_i_ps"),
            "podIPs"
        );
        assert_eq!(
            json_name(&defs, "io.k8s.api.core.v1.PodSpec", "host_ipc"),
            "hostIPC"
        );
        assert_eq!(
            json_name(&defs, "io.k8s.api.core.v1.Container", "type"),
            "type"
        );
        assert_eq!(camel("termination_message_path"), "terminationMessagePath");
    }

    #[test]
    fn bad_bodies() {
        let defs = definitions();
        assert!(decode(b"{}", &defs).is_err());
        assert!(decode(b"k8s\x00\x0a", &defs).is_err());
        assert!(decode(&envelope("v1", "Widget", b""), &defs).is_err());
        let mut bad = Vec::new();
        int(1, 5, &mut bad); // metadata with a varint
        assert!(decode(&envelope("v1", "ConfigMap", &bad), &defs).is_err());
        assert!(decode(&envelope("v1", "ConfigMap", &[0x0a, 0x05, 0x01]), &defs).is_err());
        assert_eq!(go_duration(3_600_000_000_000 + 61_000_000_000), "1h1m1s");
    }
}
