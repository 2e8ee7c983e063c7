//! Request bodies: JSON (and YAML for apply) into values, noting
//! duplicate keys, and the unknown-field check of `fieldValidation`
//! (`Strict` refuses them, `Warn` reports them in `Warning` headers,
//! `Ignore` drops them silently; unknown fields are never stored).

use std::cell::RefCell;
use std::fmt;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::schema::{Node, Shape};

/// A decoded body and what strict decoding would object to.
#[derive(Debug)]
pub struct Decoded {
    pub value: Value,
    /// Paths of keys given twice (`metadata.name`), the last one wins.
    pub duplicates: Vec<String>,
}

struct Seed<'a> {
    path: String,
    duplicates: &'a RefCell<Vec<String>>,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(Seed {
            path: format!("{}[{}]", self.path, items.len()),
            duplicates: self.duplicates,
        })? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = join(&self.path, &key);
            let v = map.next_value_seed(Seed {
                path: path.clone(),
                duplicates: self.duplicates,
            })?;
            if out.insert(key, v).is_some() {
                self.duplicates.borrow_mut().push(path);
            }
        }
        Ok(Value::Object(out))
    }
}

/// Parses JSON, recording duplicate keys.
pub fn json(body: &[u8]) -> Result<Decoded, String> {
    let duplicates = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = Seed {
        path: String::new(),
        duplicates: &duplicates,
    }
    .deserialize(&mut de)
    .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(Decoded {
        value,
        duplicates: duplicates.into_inner(),
    })
}

/// Parses YAML (JSON is YAML too), recording duplicate keys.
pub fn yaml(body: &[u8]) -> Result<Decoded, String> {
    if let Ok(d) = json(body) {
        return Ok(d);
    }
    let duplicates = RefCell::new(Vec::new());
    let value = Seed {
        path: String::new(),
        duplicates: &duplicates,
    }
    .deserialize(serde_yaml_ng::Deserializer::from_slice(body))
    .map_err(|e| e.to_string())?;
    Ok(Decoded {
        value,
        duplicates: duplicates.into_inner(),
    })
}

/// Paths of fields the schema does not declare, as `spec.foo` or
/// `spec.containers[0].foo`. `apiVersion`, `kind` and `metadata` of an
/// embedded resource are always known.
pub fn unknown_fields(value: &Value, node: Node<'_>) -> Vec<String> {
    let mut out = Vec::new();
    walk(value, Some(node), String::new(), &mut out);
    out
}

fn walk(value: &Value, node: Option<Node<'_>>, path: String, out: &mut Vec<String>) {
    let Some(node) = node else {
        return;
    };
    if node.preserves_unknown() && node.shape() != Shape::Struct {
        return;
    }
    match (value, node.shape()) {
        (Value::Object(m), Shape::Struct) => {
            for (k, v) in m {
                let child = join(&path, k);
                match node.field(k) {
                    Some(f) => walk(v, Some(f), child, out),
                    None if node.preserves_unknown() => {}
                    None if node.embedded_resource()
                        && ["apiVersion", "kind", "metadata"].contains(&k.as_str()) => {}
                    None => out.push(child),
                }
            }
        }
        (Value::Object(m), Shape::Map) => {
            for (k, v) in m {
                walk(v, node.values(), join(&path, k), out);
            }
        }
        (Value::Array(items), Shape::List) => {
            for (i, v) in items.iter().enumerate() {
                walk(v, node.items(), format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Drops empty lists and maps that are not required, as Go's JSON
/// encoding (`omitempty`) leaves them out of stored objects: the last
/// label removed leaves no `labels: {}`, the last port no `ports: []`.
/// Empty structs (`emptyDir: {}`) are values and stay.
pub fn drop_empty_collections(value: &mut Value, node: Option<Node<'_>>) {
    let Some(node) = node else {
        return;
    };
    match (value, node.shape()) {
        (Value::Object(m), Shape::Struct) => {
            let required: Vec<&str> = node.required().collect();
            m.retain(|k, v| {
                let Some(field) = node.field(k) else {
                    return true;
                };
                let empty = match (v, field.shape()) {
                    (Value::Array(a), Shape::List) => a.is_empty(),
                    (Value::Object(o), Shape::Map) => o.is_empty(),
                    _ => false,
                };
                !empty || required.contains(&k.as_str())
            });
            for (k, v) in m.iter_mut() {
                drop_empty_collections(v, node.field(k));
            }
        }
        (Value::Object(m), Shape::Map) => {
            for v in m.values_mut() {
                drop_empty_collections(v, node.values());
            }
        }
        (Value::Array(items), Shape::List) => {
            for v in items {
                drop_empty_collections(v, node.items());
            }
        }
        _ => {}
    }
}

/// The reason strict decoding refuses a body, as the real server words
/// it; `None` when there is nothing to refuse.
pub fn strict_error(unknown: &[String], duplicates: &[String]) -> Option<String> {
    let mut problems: Vec<String> = unknown
        .iter()
        .map(|p| format!("unknown field \"{p}\""))
        .collect();
    problems.extend(
        duplicates
            .iter()
            .map(|p| format!("duplicate field \"{p}\"")),
    );
    (!problems.is_empty()).then(|| format!("strict decoding error: {}", problems.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn duplicates_are_noticed_with_their_path() {
        let d = json(br#"{"a": 1, "spec": {"r": 1, "r": 2, "l": [{"x": 1, "x": 2}]}, "a": 3}"#)
            .expect("parses");
        assert_eq!(d.value["a"], 3);
        assert_eq!(d.value["spec"]["r"], 2);
        assert_eq!(d.duplicates, vec!["spec.r", "spec.l[0].x", "a"]);
    }

    #[test]
    fn malformed_bodies() {
        for bad in [
            &b"{"[..],
            b"{\"a\":}",
            b"[1,]",
            b"{} {}",
            b"",
            b"nul",
            b"{\"a\" 1}",
        ] {
            assert!(json(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert!(yaml(b"a: [1\n").is_err());
        assert_eq!(yaml(b"a: 1\na: 2\n").expect("parses").duplicates, vec!["a"]);
        assert_eq!(
            yaml(b"a: 1\nb: [x]\n").expect("yaml").value,
            json!({"a": 1, "b": ["x"]})
        );
    }

    #[test]
    fn empty_collections_are_dropped_unless_required() {
        let defs = json!({"Obj": {"type": "object", "required": ["must"], "properties": {
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "ports": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer"}}}},
            "must": {"type": "array", "items": {"type": "string"}},
            "emptyDir": {"type": "object", "properties": {"medium": {"type": "string"}}},
            "nested": {"type": "object", "properties": {"list": {"type": "array", "items": {"type": "string"}}}}
        }}});
        let defs = defs.as_object().expect("object");
        let mut v =
            json!({"labels": {}, "ports": [], "must": [], "emptyDir": {}, "nested": {"list": []}});
        drop_empty_collections(&mut v, Node::definition(defs, "Obj"));
        assert_eq!(v, json!({"must": [], "emptyDir": {}, "nested": {}}));
    }

    #[test]
    fn unknown_fields_by_schema() {
        let defs = json!({
            "Obj": {"type": "object", "properties": {
                "spec": {"type": "object", "properties": {
                    "list": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                }}
            }}
        });
        let defs = defs.as_object().expect("object");
        let node = Node::definition(defs, "Obj").expect("defined");
        let v = json!({"spec": {"list": [{"name": "a", "bogus": 1}], "labels": {"any": "x"}, "free": {"x": {"y": 1}}, "extra": 1}, "top": 2});
        let mut unknown = unknown_fields(&v, node);
        unknown.sort();
        assert_eq!(unknown, vec!["spec.extra", "spec.list[0].bogus", "top"]);
        assert_eq!(
            strict_error(&unknown[..1], &["metadata.name".into()]),
            Some("strict decoding error: unknown field \"spec.extra\", duplicate field \"metadata.name\"".into())
        );
        assert_eq!(strict_error(&[], &[]), None);
    }
}
