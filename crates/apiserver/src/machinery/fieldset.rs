//! Field sets: the paths of an object's fields, as server-side apply
//! tracks them per manager in `metadata.managedFields[].fieldsV1`.
//!
//! A path is a list of elements: `f:NAME` (a struct field or map key),
//! `k:{"name":"web"}` (the element of an associative list with those key
//! values), `v:VALUE` (the element of a set). A set holds the leaves of an
//! object (scalars, atomic lists and maps, empty objects) and the elements
//! of associative lists and sets; an element that is held and also has
//! held children is written with a `"."` member in fieldsV1.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::schema::{Node, Shape};

pub type Path = Vec<String>;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    paths: BTreeSet<Path>,
}

/// Renders a path for messages: `.spec.containers[name="web"].image`.
pub fn display_path(path: &[String]) -> String {
    let mut out = String::new();
    for element in path {
        if let Some(f) = element.strip_prefix("f:") {
            out.push('.');
            out.push_str(f);
        } else if let Some(k) = element.strip_prefix("k:") {
            let parts: Vec<String> = serde_json::from_str::<Map<String, Value>>(k)
                .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                .unwrap_or_else(|_| vec![k.to_string()]);
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = element.strip_prefix("v:") {
            out.push_str(&format!("[={v}]"));
        } else if let Some(i) = element.strip_prefix("i:") {
            out.push_str(&format!("[{i}]"));
        }
    }
    out
}

impl FieldSet {
    pub fn new() -> FieldSet {
        FieldSet::default()
    }

    pub fn insert(&mut self, path: Path) {
        self.paths.insert(path);
    }

    pub fn contains(&self, path: &[String]) -> bool {
        self.paths.contains(path)
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Path> {
        self.paths.iter()
    }

    pub fn union(&self, other: &FieldSet) -> FieldSet {
        FieldSet {
            paths: self.paths.union(&other.paths).cloned().collect(),
        }
    }

    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        FieldSet {
            paths: self.paths.intersection(&other.paths).cloned().collect(),
        }
    }

    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet {
            paths: self.paths.difference(&other.paths).cloned().collect(),
        }
    }

    /// Drops every path that starts with `prefix`.
    pub fn remove_prefix(&mut self, prefix: &[String]) {
        self.paths.retain(|p| !p.starts_with(prefix));
    }

    /// Keeps only paths starting with `prefix`.
    pub fn retain_prefix(&mut self, prefix: &[String]) {
        self.paths.retain(|p| p.starts_with(prefix));
    }

    /// Encodes as `fieldsV1`.
    pub fn to_fields_v1(&self) -> Value {
        let mut root = Map::new();
        for path in &self.paths {
            let mut node = &mut root;
            for (i, element) in path.iter().enumerate() {
                let entry = node
                    .entry(element.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                let Value::Object(child) = entry else {
                    break;
                };
                node = child;
                if i + 1 == path.len() && self.has_descendants(path) {
                    node.insert(".".into(), Value::Object(Map::new()));
                }
            }
        }
        Value::Object(root)
    }

    fn has_descendants(&self, path: &[String]) -> bool {
        self.paths
            .range(path.to_vec()..)
            .nth(1)
            .is_some_and(|next| next.len() > path.len() && next.starts_with(path))
    }

    /// Decodes `fieldsV1`; malformed members are errors.
    pub fn from_fields_v1(value: &Value) -> Result<FieldSet, String> {
        let mut set = FieldSet::new();
        fn walk(node: &Value, path: &mut Path, set: &mut FieldSet) -> Result<(), String> {
            let Value::Object(members) = node else {
                return Err(format!(
                    "fieldsV1 member {} is not an object",
                    display_path(path)
                ));
            };
            if members.is_empty() && !path.is_empty() {
                set.insert(path.clone());
            }
            for (key, child) in members {
                if key == "." {
                    set.insert(path.clone());
                    continue;
                }
                if !["f:", "k:", "v:", "i:"].iter().any(|p| key.starts_with(p)) {
                    return Err(format!("invalid fieldsV1 path element {key:?}"));
                }
                path.push(key.clone());
                walk(child, path, set)?;
                path.pop();
            }
            Ok(())
        }
        walk(value, &mut Vec::new(), &mut set)?;
        Ok(set)
    }
}

/// The `k:` element of an associative-list item; `None` when it lacks
/// every key. A missing key field takes its schema default (a container
/// port without `protocol` is keyed as `TCP`), as the stored object will
/// have it after defaulting.
pub fn list_key(item: &Value, keys: &[&str], items: Option<Node<'_>>) -> Option<String> {
    let mut m = Map::new();
    for k in keys {
        let value = item.get(*k).cloned().or_else(|| {
            items
                .and_then(|n| n.field(k))
                .and_then(|f| f.schema().get("default").cloned())
        });
        if let Some(v) = value {
            m.insert((*k).to_string(), v);
        }
    }
    if m.is_empty() {
        return None;
    }
    Some(format!("k:{}", Value::Object(m)))
}

/// How a list node is owned.
pub enum ListKind<'a> {
    Atomic,
    Set,
    Map(Vec<&'a str>),
}

pub fn list_kind<'a>(node: Option<Node<'a>>) -> ListKind<'a> {
    let Some(node) = node else {
        return ListKind::Atomic;
    };
    match node.list_type() {
        "set" => ListKind::Set,
        "map" => {
            let keys = node.list_map_keys();
            if keys.is_empty() {
                ListKind::Atomic
            } else {
                ListKind::Map(keys)
            }
        }
        _ => ListKind::Atomic,
    }
}

/// The schema of member `key` of an object node.
pub fn member<'a>(node: Option<Node<'a>>, key: &str) -> Option<Node<'a>> {
    let n = node?;
    match n.shape() {
        Shape::Struct => n.field(key),
        Shape::Map => n.values(),
        _ => None,
    }
}

/// Whether an object node is owned whole (atomic map or struct).
fn object_atomic(node: Option<Node<'_>>) -> bool {
    node.is_some_and(|n| n.map_atomic())
}

/// The field set of `value` along `node`.
pub fn of_value(value: &Value, node: Option<Node<'_>>) -> FieldSet {
    let mut set = FieldSet::new();
    collect(value, node, &mut Vec::new(), &mut set);
    set
}

fn collect(value: &Value, node: Option<Node<'_>>, path: &mut Path, set: &mut FieldSet) {
    match value {
        Value::Object(m) if !object_atomic(node) && !m.is_empty() => {
            for (k, v) in m {
                if v.is_null() {
                    continue;
                }
                path.push(format!("f:{k}"));
                collect(v, member(node, k), path, set);
                path.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => match list_kind(node) {
            ListKind::Atomic => set.insert(path.clone()),
            ListKind::Set => {
                for item in items {
                    path.push(format!("v:{item}"));
                    set.insert(path.clone());
                    path.pop();
                }
            }
            ListKind::Map(keys) => {
                let items_node = node.and_then(|n| n.items());
                for item in items {
                    let Some(k) = list_key(item, &keys, items_node) else {
                        continue;
                    };
                    path.push(k);
                    set.insert(path.clone());
                    if let Value::Object(m) = item {
                        for (f, v) in m {
                            if v.is_null() {
                                continue;
                            }
                            path.push(format!("f:{f}"));
                            collect(v, member(items_node, f), path, set);
                            path.pop();
                        }
                    }
                    path.pop();
                }
            }
        },
        _ => {
            if !path.is_empty() {
                set.insert(path.clone());
            }
        }
    }
}

/// The paths whose values differ between `old` and `new` (added,
/// removed or changed), along `node`.
pub fn changed(old: Option<&Value>, new: Option<&Value>, node: Option<Node<'_>>) -> FieldSet {
    let mut set = FieldSet::new();
    diff(old, new, node, &mut Vec::new(), &mut set);
    set
}

fn diff(
    old: Option<&Value>,
    new: Option<&Value>,
    node: Option<Node<'_>>,
    path: &mut Path,
    set: &mut FieldSet,
) {
    let old = old.filter(|v| !v.is_null());
    let new = new.filter(|v| !v.is_null());
    match (old, new) {
        (None, None) => {}
        (Some(o), None) => collect_all(o, node, path, set),
        (None, Some(n)) => collect_all(n, node, path, set),
        (Some(o), Some(n)) if o == n => {}
        (Some(Value::Object(o)), Some(Value::Object(n)))
            if !object_atomic(node) && !o.is_empty() && !n.is_empty() =>
        {
            let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
            for k in keys {
                path.push(format!("f:{k}"));
                diff(o.get(k), n.get(k), member(node, k), path, set);
                path.pop();
            }
        }
        (Some(Value::Array(o)), Some(Value::Array(n))) if !o.is_empty() && !n.is_empty() => {
            match list_kind(node) {
                ListKind::Atomic => set.insert(path.clone()),
                ListKind::Set => {
                    for item in o
                        .iter()
                        .filter(|i| !n.contains(i))
                        .chain(n.iter().filter(|i| !o.contains(i)))
                    {
                        path.push(format!("v:{item}"));
                        set.insert(path.clone());
                        path.pop();
                    }
                }
                ListKind::Map(keys) => {
                    let items_node = node.and_then(|n| n.items());
                    let index = |items: &[Value]| -> Vec<(String, Value)> {
                        items
                            .iter()
                            .filter_map(|i| list_key(i, &keys, items_node).map(|k| (k, i.clone())))
                            .collect()
                    };
                    let (oi, ni) = (index(o), index(n));
                    let all: BTreeSet<&String> =
                        oi.iter().chain(ni.iter()).map(|(k, _)| k).collect();
                    for k in all {
                        let a = oi.iter().find(|(x, _)| x == k).map(|(_, v)| v);
                        let b = ni.iter().find(|(x, _)| x == k).map(|(_, v)| v);
                        path.push(k.clone());
                        match (a, b) {
                            (Some(a), Some(b)) => {
                                if a != b {
                                    let (am, bm) = (a.as_object(), b.as_object());
                                    let empty = Map::new();
                                    let (am, bm) = (am.unwrap_or(&empty), bm.unwrap_or(&empty));
                                    let fields: BTreeSet<&String> =
                                        am.keys().chain(bm.keys()).collect();
                                    for f in fields {
                                        path.push(format!("f:{f}"));
                                        diff(
                                            am.get(f),
                                            bm.get(f),
                                            member(items_node, f),
                                            path,
                                            set,
                                        );
                                        path.pop();
                                    }
                                }
                            }
                            (Some(v), None) | (None, Some(v)) => {
                                set.insert(path.clone());
                                collect_all_fields(v, items_node, path, set);
                            }
                            (None, None) => {}
                        }
                        path.pop();
                    }
                }
            }
        }
        _ => {
            // A scalar changed, or the shape changed: the leaf, plus
            // everything below on either side.
            if let Some(o) = old {
                collect_all(o, node, path, set);
            }
            if let Some(n) = new {
                collect_all(n, node, path, set);
            }
            if !path.is_empty() {
                set.insert(path.clone());
            }
        }
    }
}

fn collect_all(value: &Value, node: Option<Node<'_>>, path: &mut Path, set: &mut FieldSet) {
    let before = set.paths.len();
    collect(value, node, path, set);
    if set.paths.len() == before && !path.is_empty() {
        set.insert(path.clone());
    }
}

fn collect_all_fields(item: &Value, node: Option<Node<'_>>, path: &mut Path, set: &mut FieldSet) {
    if let Value::Object(m) = item {
        for (f, v) in m {
            if v.is_null() {
                continue;
            }
            path.push(format!("f:{f}"));
            collect(v, member(node, f), path, set);
            path.pop();
        }
    }
}

/// Removes the field or element at `path` from `value`; parents emptied
/// by the removal stay (as the real server leaves them).
pub fn remove_path(value: &mut Value, path: &[String], node: Option<Node<'_>>) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if let Some(f) = first.strip_prefix("f:") {
        let Value::Object(m) = value else { return };
        if rest.is_empty() {
            m.remove(f);
        } else if let Some(child) = m.get_mut(f) {
            remove_path(child, rest, member(node, f));
        }
    } else if first.starts_with("k:") || first.starts_with("v:") {
        let Value::Array(items) = value else { return };
        let keys = match list_kind(node) {
            ListKind::Map(keys) => keys,
            _ => Vec::new(),
        };
        let matches = |item: &Value| -> bool {
            if let Some(v) = first.strip_prefix("v:") {
                return serde_json::to_string(item).ok().as_deref() == Some(v);
            }
            list_key(item, &keys, node.and_then(|n| n.items())).as_deref() == Some(first.as_str())
        };
        if rest.is_empty() {
            items.retain(|i| !matches(i));
        } else if let Some(item) = items.iter_mut().find(|i| matches(i)) {
            let items_node = node.and_then(|n| n.items());
            remove_path(item, rest, items_node);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn definitions() -> Map<String, Value> {
        json!({
            "Obj": {"type": "object", "properties": {
                "metadata": {"type": "object", "properties": {
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "finalizers": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"}
                }},
                "spec": {"type": "object", "properties": {
                    "replicas": {"type": "integer"},
                    "args": {"type": "array", "items": {"type": "string"}},
                    "selector": {"type": "object", "x-kubernetes-map-type": "atomic", "properties": {"a": {"type": "string"}}},
                    "containers": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                        "items": {"type": "object", "properties": {"name": {"type": "string"}, "image": {"type": "string"}}}}
                }}
            }}
        })
        .as_object()
        .expect("object")
        .clone()
    }

    fn node(defs: &Map<String, Value>) -> Option<Node<'_>> {
        Node::definition(defs, "Obj")
    }

    fn p(elements: &[&str]) -> Path {
        elements.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn field_set_of_an_object() {
        let defs = definitions();
        let obj = json!({
            "metadata": {"labels": {"app": "web"}, "finalizers": ["x"]},
            "spec": {"replicas": 2, "args": ["a"], "selector": {"a": "b"},
                     "containers": [{"name": "web", "image": "nginx"}]}
        });
        let set = of_value(&obj, node(&defs));
        let want: BTreeSet<Path> = [
            p(&["f:metadata", "f:labels", "f:app"]),
            p(&["f:metadata", "f:finalizers", "v:\"x\""]),
            p(&["f:spec", "f:replicas"]),
            p(&["f:spec", "f:args"]),
            p(&["f:spec", "f:selector"]),
            p(&["f:spec", "f:containers", "k:{\"name\":\"web\"}"]),
            p(&["f:spec", "f:containers", "k:{\"name\":\"web\"}", "f:name"]),
            p(&["f:spec", "f:containers", "k:{\"name\":\"web\"}", "f:image"]),
        ]
        .into();
        assert_eq!(set.paths, want);
    }

    #[test]
    fn fields_v1_round_trip() {
        let defs = definitions();
        let obj =
            json!({"spec": {"replicas": 2, "containers": [{"name": "web", "image": "nginx"}]}});
        let set = of_value(&obj, node(&defs));
        let v1 = set.to_fields_v1();
        assert_eq!(
            v1,
            json!({"f:spec": {"f:replicas": {}, "f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:name": {}, "f:image": {}}}}})
        );
        assert_eq!(FieldSet::from_fields_v1(&v1).expect("decodes"), set);
        assert!(FieldSet::from_fields_v1(&json!({"x:bad": {}})).is_err());
        assert!(FieldSet::from_fields_v1(&json!({"f:a": 1})).is_err());
    }

    #[test]
    fn changed_paths() {
        let defs = definitions();
        let old = json!({"spec": {"replicas": 1, "args": ["a"], "containers": [{"name": "web", "image": "v1"}, {"name": "old", "image": "x"}]}});
        let new = json!({"spec": {"replicas": 2, "args": ["a"], "containers": [{"name": "web", "image": "v2"}, {"name": "new", "image": "y"}]}, "metadata": {"labels": {"a": "b"}}});
        let set = changed(Some(&old), Some(&new), node(&defs));
        let want: BTreeSet<Path> = [
            p(&["f:spec", "f:replicas"]),
            p(&["f:spec", "f:containers", "k:{\"name\":\"web\"}", "f:image"]),
            p(&["f:spec", "f:containers", "k:{\"name\":\"old\"}"]),
            p(&["f:spec", "f:containers", "k:{\"name\":\"old\"}", "f:name"]),
            p(&["f:spec", "f:containers", "k:{\"name\":\"old\"}", "f:image"]),
            p(&["f:spec", "f:containers", "k:{\"name\":\"new\"}"]),
            p(&["f:spec", "f:containers", "k:{\"name\":\"new\"}", "f:name"]),
            p(&["f:spec", "f:containers", "k:{\"name\":\"new\"}", "f:image"]),
            p(&["f:metadata", "f:labels", "f:a"]),
        ]
        .into();
        assert_eq!(set.paths, want);
        assert!(changed(Some(&old), Some(&old), node(&defs)).is_empty());
    }

    #[test]
    fn removing_paths() {
        let defs = definitions();
        let mut obj = json!({"metadata": {"finalizers": ["x", "y"]}, "spec": {"replicas": 2, "containers": [{"name": "web", "image": "nginx"}, {"name": "b"}]}});
        remove_path(
            &mut obj,
            &p(&["f:spec", "f:containers", "k:{\"name\":\"web\"}", "f:image"]),
            node(&defs),
        );
        remove_path(
            &mut obj,
            &p(&["f:spec", "f:containers", "k:{\"name\":\"b\"}"]),
            node(&defs),
        );
        remove_path(
            &mut obj,
            &p(&["f:metadata", "f:finalizers", "v:\"x\""]),
            node(&defs),
        );
        remove_path(&mut obj, &p(&["f:spec", "f:replicas"]), node(&defs));
        assert_eq!(
            obj,
            json!({"metadata": {"finalizers": ["y"]}, "spec": {"containers": [{"name": "web"}]}})
        );
    }

    #[test]
    fn paths_display() {
        assert_eq!(
            display_path(&p(&[
                "f:spec",
                "f:containers",
                "k:{\"name\":\"web\"}",
                "f:image"
            ])),
            ".spec.containers[name=\"web\"].image"
        );
    }
}
