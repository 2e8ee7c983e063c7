//! Strategic merge patch (`application/strategic-merge-patch+json`), the
//! patch kubectl sends for `apply`, `edit`, `patch` and `set`.
//!
//! Like a JSON merge patch, except that a list whose schema says
//! `x-kubernetes-patch-strategy: merge` is merged element by element:
//! elements are matched on `x-kubernetes-patch-merge-key` (lists of
//! objects) or by value (lists of scalars, a set union). Directives:
//!
//! - `"$patch": "replace"` in an object replaces the object; as a list
//!   element (`[{"$patch": "replace"}, ...]`) it replaces the list;
//! - `"$patch": "delete"` deletes the object, or the list element with the
//!   same merge key;
//! - `"$retainKeys": [..]` drops the original's keys not named;
//! - `"$deleteFromPrimitiveList/<list>": [..]` removes scalar values;
//! - `"$setElementOrder/<list>": [..]` orders the merged list.
//!
//! Fields absent from the schema (or without one) behave as in a merge
//! patch: objects merge, lists are replaced.

use serde_json::{Map, Value};

use super::schema::{Node, Shape};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE: &str = "$deleteFromPrimitiveList/";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";

/// Why a strategic merge patch does not apply.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SmpError {
    #[error("unknown patch type: {0:?}")]
    UnknownPatchType(String),
    #[error("map: {element} does not contain declared merge key: {key}")]
    MissingMergeKey { element: String, key: String },
    #[error("invalid {directive} directive: {reason}")]
    BadDirective { directive: String, reason: String },
    #[error("the patch is not a JSON object")]
    NotAnObject,
}

/// Applies `patch` to `original` (both JSON objects) along `schema`.
pub fn apply(original: &Value, patch: &Value, schema: Option<Node<'_>>) -> Result<Value, SmpError> {
    let (Value::Object(original), Value::Object(patch)) = (original, patch) else {
        return Err(SmpError::NotAnObject);
    };
    Ok(match merge_map(original.clone(), patch, schema)? {
        Some(m) => Value::Object(m),
        None => Value::Object(Map::new()),
    })
}

/// The schema of `key` inside an object node.
fn child<'a>(schema: Option<Node<'a>>, key: &str) -> Option<Node<'a>> {
    let node = schema?;
    match node.shape() {
        Shape::Struct => node.field(key),
        Shape::Map => node.values(),
        _ => None,
    }
}

/// Merges into `original`; `None` when the patch deletes the object.
fn merge_map(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
    schema: Option<Node<'_>>,
) -> Result<Option<Map<String, Value>>, SmpError> {
    match patch.get(PATCH) {
        None => {}
        Some(Value::String(s)) if s == "merge" => {}
        Some(Value::String(s)) if s == "replace" => {
            let mut replaced = patch.clone();
            replaced.remove(PATCH);
            return merge_map(Map::new(), &replaced, schema);
        }
        Some(Value::String(s)) if s == "delete" => return Ok(None),
        Some(other) => return Err(SmpError::UnknownPatchType(show(other))),
    }

    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let Some(keys) = retain.as_array() else {
            return Err(SmpError::BadDirective {
                directive: RETAIN_KEYS.into(),
                reason: "must be a list of strings".into(),
            });
        };
        let keys: Vec<&str> = keys.iter().filter_map(Value::as_str).collect();
        if keys.len() != retain.as_array().map_or(0, Vec::len) {
            return Err(SmpError::BadDirective {
                directive: RETAIN_KEYS.into(),
                reason: "must be a list of strings".into(),
            });
        }
        for k in patch.keys().filter(|k| !k.starts_with('$')) {
            if !keys.contains(&k.as_str()) && !patch[k].is_null() {
                return Err(SmpError::BadDirective {
                    directive: RETAIN_KEYS.into(),
                    reason: format!("the patch sets {k:?}, which is not retained"),
                });
            }
        }
        original.retain(|k, _| keys.contains(&k.as_str()));
    }

    for (key, values) in patch {
        let Some(list) = key.strip_prefix(DELETE_FROM_PRIMITIVE) else {
            continue;
        };
        let Some(values) = values.as_array() else {
            return Err(SmpError::BadDirective {
                directive: key.clone(),
                reason: "must be a list".into(),
            });
        };
        if let Some(Value::Array(items)) = original.get_mut(list) {
            items.retain(|item| !values.contains(item));
        }
    }

    for (key, value) in patch {
        if key.starts_with('$') {
            continue;
        }
        if value.is_null() {
            original.remove(key);
            continue;
        }
        let field = child(schema, key);
        let merged = match (original.remove(key), value) {
            (Some(Value::Object(o)), Value::Object(p)) => {
                merge_map(o, p, field)?.map(Value::Object)
            }
            (Some(Value::Array(o)), Value::Array(p)) => Some(merge_list_field(o, p, field)?),
            (_, value) => fresh(value, field)?,
        };
        if let Some(v) = merged {
            original.insert(key.clone(), v);
        }
    }

    for (key, order) in patch {
        let Some(list) = key.strip_prefix(SET_ELEMENT_ORDER) else {
            continue;
        };
        let Some(order) = order.as_array() else {
            return Err(SmpError::BadDirective {
                directive: key.clone(),
                reason: "must be a list".into(),
            });
        };
        let merge_key = child(schema, list).and_then(|n| n.patch_merge_key());
        if let Some(Value::Array(items)) = original.get_mut(list) {
            reorder(items, order, merge_key);
        }
    }
    Ok(Some(original))
}

/// A patch value with no original to merge with: directives and nulls go.
fn fresh(value: &Value, schema: Option<Node<'_>>) -> Result<Option<Value>, SmpError> {
    Ok(match value {
        Value::Object(p) => merge_map(Map::new(), p, schema)?.map(Value::Object),
        Value::Array(p) => Some(merge_list_field(Vec::new(), p, schema)?),
        other => Some(other.clone()),
    })
}

/// A list field: merged if its strategy says so, else replaced.
fn merge_list_field(
    original: Vec<Value>,
    patch: &[Value],
    field: Option<Node<'_>>,
) -> Result<Value, SmpError> {
    let merge = field.is_some_and(|f| f.patch_strategies().contains(&"merge"));
    let items = field.and_then(|f| f.items());
    if !merge {
        // Replace, though a `$patch: replace` marker element is still
        // dropped and element objects lose their directives.
        let mut out = Vec::new();
        for p in patch {
            if is_directive(p, "replace") {
                continue;
            }
            if let Some(v) = fresh(p, items)? {
                out.push(v);
            }
        }
        return Ok(Value::Array(out));
    }
    let merge_key = field.and_then(|f| f.patch_merge_key());
    merge_list(original, patch, items, merge_key).map(Value::Array)
}

fn is_directive(v: &Value, kind: &str) -> bool {
    v.get(PATCH).and_then(Value::as_str) == Some(kind)
}

fn merge_list(
    mut original: Vec<Value>,
    patch: &[Value],
    items: Option<Node<'_>>,
    merge_key: Option<&str>,
) -> Result<Vec<Value>, SmpError> {
    if patch.iter().any(|p| is_directive(p, "replace")) {
        let rest: Vec<Value> = patch
            .iter()
            .filter(|p| !is_directive(p, "replace"))
            .cloned()
            .collect();
        return merge_list(Vec::new(), &rest, items, merge_key);
    }
    let Some(key) = merge_key else {
        // Scalars (or keyless elements): a set union in original order.
        for p in patch {
            if let Value::Object(m) = p {
                if m.contains_key(PATCH) {
                    return Err(SmpError::BadDirective {
                        directive: PATCH.into(),
                        reason: "a list without a merge key cannot hold directives".into(),
                    });
                }
            }
            if !original.contains(p) {
                original.push(p.clone());
            }
        }
        return Ok(original);
    };
    for p in patch {
        let Value::Object(element) = p else {
            // A scalar in a list of objects: kept as a new element.
            if !original.contains(p) {
                original.push(p.clone());
            }
            continue;
        };
        let Some(id) = element.get(key) else {
            if is_directive(p, "merge") {
                continue;
            }
            return Err(SmpError::MissingMergeKey {
                element: p.to_string(),
                key: key.into(),
            });
        };
        let found = original.iter().position(|o| o.get(key) == Some(id));
        if is_directive(p, "delete") {
            original.retain(|o| o.get(key) != Some(id));
            continue;
        }
        match found {
            Some(i) => {
                let o = match std::mem::take(&mut original[i]) {
                    Value::Object(o) => o,
                    _ => Map::new(),
                };
                match merge_map(o, element, items)? {
                    Some(m) => original[i] = Value::Object(m),
                    None => {
                        original.remove(i);
                    }
                }
            }
            None => {
                if let Some(m) = merge_map(Map::new(), element, items)? {
                    original.push(Value::Object(m));
                }
            }
        }
    }
    Ok(original)
}

/// Orders `items` as `order` lists them (elements given by their merge
/// key, or scalars by value); elements the order does not name keep their
/// relative order after the named ones.
fn reorder(items: &mut Vec<Value>, order: &[Value], merge_key: Option<&str>) {
    let identity = |v: &Value| -> Value {
        match merge_key {
            Some(k) => v.get(k).cloned().unwrap_or(Value::Null),
            None => v.clone(),
        }
    };
    let wanted: Vec<Value> = order.iter().map(identity).collect();
    let mut rest = std::mem::take(items);
    for w in &wanted {
        if let Some(i) = rest.iter().position(|v| &identity(v) == w) {
            items.push(rest.remove(i));
        }
    }
    items.append(&mut rest);
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machinery::schema::Node;
    use serde_json::json;

    /// A pod-like schema with the strategies the real Pod has.
    fn definitions() -> Map<String, Value> {
        let v = json!({
            "Pod": {"type": "object", "properties": {
                "metadata": {"allOf": [{"$ref": "#/components/schemas/Meta"}]},
                "spec": {"allOf": [{"$ref": "#/components/schemas/Spec"}]}
            }},
            "Meta": {"type": "object", "properties": {
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "finalizers": {"type": "array", "items": {"type": "string"},
                    "x-kubernetes-patch-strategy": "merge"}
            }},
            "Spec": {"type": "object", "properties": {
                "containers": {"type": "array", "items": {"$ref": "#/components/schemas/Container"},
                    "x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "name"},
                "volumes": {"type": "array", "items": {"$ref": "#/components/schemas/Volume"},
                    "x-kubernetes-patch-strategy": "merge,retainKeys", "x-kubernetes-patch-merge-key": "name"},
                "tolerations": {"type": "array", "items": {"type": "object", "properties": {"key": {"type": "string"}}}},
                "strategy": {"type": "object", "x-kubernetes-patch-strategy": "retainKeys", "properties": {
                    "type": {"type": "string"}, "rollingUpdate": {"type": "object", "properties": {"maxSurge": {"type": "string"}}}
                }}
            }},
            "Container": {"type": "object", "properties": {
                "name": {"type": "string"}, "image": {"type": "string"},
                "args": {"type": "array", "items": {"type": "string"}},
                "env": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}, "value": {"type": "string"}}},
                    "x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "name"},
                "ports": {"type": "array", "items": {"type": "object", "properties": {"containerPort": {"type": "integer"}}},
                    "x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "containerPort"}
            }},
            "Volume": {"type": "object", "properties": {
                "name": {"type": "string"}, "emptyDir": {"type": "object"}, "hostPath": {"type": "object"}
            }}
        });
        v.as_object().expect("object").clone()
    }

    fn pod() -> Value {
        json!({
            "metadata": {"labels": {"app": "web"}, "finalizers": ["a"]},
            "spec": {
                "containers": [
                    {"name": "web", "image": "nginx:1", "args": ["-x"], "env": [{"name": "A", "value": "1"}]},
                    {"name": "side", "image": "busybox"}
                ],
                "volumes": [{"name": "data", "emptyDir": {}}],
                "tolerations": [{"key": "a"}, {"key": "b"}],
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}}
            }
        })
    }

    fn run(patch: Value) -> Result<Value, SmpError> {
        let defs = definitions();
        apply(&pod(), &patch, Node::definition(&defs, "Pod"))
    }

    #[test]
    fn merges_lists_by_merge_key() {
        let out = run(json!({"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}))
            .expect("applies");
        assert_eq!(out["spec"]["containers"][0]["image"], "nginx:2");
        assert_eq!(out["spec"]["containers"][0]["args"], json!(["-x"]));
        assert_eq!(out["spec"]["containers"][1]["name"], "side");

        let out =
            run(json!({"spec": {"containers": [{"name": "new", "image": "x"}]}})).expect("applies");
        assert_eq!(out["spec"]["containers"].as_array().expect("list").len(), 3);
        assert_eq!(out["spec"]["containers"][2]["name"], "new");

        let out = run(json!({"spec": {"containers": [{"name": "web", "env": [{"name": "B", "value": "2"}]}]}})).expect("applies");
        assert_eq!(
            out["spec"]["containers"][0]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
        );
    }

    #[test]
    fn lists_without_strategy_are_replaced() {
        let out = run(json!({"spec": {"tolerations": [{"key": "c"}]}})).expect("applies");
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "c"}]));
        let out = run(json!({"spec": {"containers": [{"name": "web", "args": ["-y"]}]}}))
            .expect("applies");
        assert_eq!(out["spec"]["containers"][0]["args"], json!(["-y"]));
    }

    #[test]
    fn primitive_merge_lists_are_unions() {
        let out = run(json!({"metadata": {"finalizers": ["b", "a"]}})).expect("applies");
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b"]));
        let out = run(json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}))
            .expect("applies");
        assert_eq!(out["metadata"]["finalizers"], json!([]));
    }

    #[test]
    fn patch_directives() {
        // Delete one element by merge key.
        let out = run(json!({"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}))
            .expect("applies");
        assert_eq!(out["spec"]["containers"].as_array().expect("list").len(), 1);
        // Replace a whole list.
        let out = run(json!({"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "x"}]}})).expect("applies");
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "only", "image": "x"}])
        );
        // Replace a map.
        let out = run(json!({"metadata": {"labels": {"$patch": "replace", "new": "1"}}}))
            .expect("applies");
        assert_eq!(out["metadata"]["labels"], json!({"new": "1"}));
        // Delete a map.
        let out = run(json!({"spec": {"strategy": {"$patch": "delete"}}})).expect("applies");
        assert!(out["spec"].get("strategy").is_none());
        // An explicit merge is a merge.
        let out =
            run(json!({"metadata": {"labels": {"$patch": "merge", "new": "1"}}})).expect("applies");
        assert_eq!(out["metadata"]["labels"], json!({"app": "web", "new": "1"}));
        // Null deletes.
        let out = run(json!({"metadata": {"labels": {"app": null}}})).expect("applies");
        assert_eq!(out["metadata"]["labels"], json!({}));
    }

    #[test]
    fn retain_keys() {
        let out = run(json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}))
            .expect("applies");
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        let out = run(json!({"spec": {"volumes": [{"name": "data", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/x"}}]}})).expect("applies");
        assert_eq!(
            out["spec"]["volumes"],
            json!([{"name": "data", "hostPath": {"path": "/x"}}])
        );
    }

    #[test]
    fn set_element_order() {
        // What `kubectl set image` sends.
        let out = run(json!({"spec": {
            "$setElementOrder/containers": [{"name": "side"}, {"name": "web"}],
            "containers": [{"name": "web", "image": "nginx:3"}]
        }}))
        .expect("applies");
        assert_eq!(out["spec"]["containers"][0]["name"], "side");
        assert_eq!(out["spec"]["containers"][1]["image"], "nginx:3");
    }

    #[test]
    fn new_values_lose_their_directives() {
        let out = run(json!({"spec": {"newfield": {"$patch": "replace", "a": 1, "b": null}}}))
            .expect("applies");
        assert_eq!(out["spec"]["newfield"], json!({"a": 1}));
    }

    #[test]
    fn bad_patches() {
        let bad = [
            json!({"spec": {"containers": [{"image": "no-name"}]}}),
            json!({"metadata": {"labels": {"$patch": "frobnicate"}}}),
            json!({"spec": {"strategy": {"$retainKeys": "type"}}}),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}),
            json!({"spec": {"$setElementOrder/containers": {"name": "x"}}}),
            json!({"metadata": {"finalizers": [{"$patch": "delete"}]}}),
        ];
        for patch in bad {
            assert!(run(patch.clone()).is_err(), "{patch}");
        }
        assert_eq!(
            run(json!({"spec": {"containers": [{"image": "x"}]}}))
                .expect_err("fails")
                .to_string(),
            "map: {\"image\":\"x\"} does not contain declared merge key: name"
        );
        assert!(apply(&json!([]), &json!({}), None).is_err());
    }

    #[test]
    fn without_a_schema_it_is_a_merge_patch() {
        let out = apply(
            &json!({"a": {"b": 1, "c": [1]}}),
            &json!({"a": {"c": [2], "d": null}}),
            None,
        )
        .expect("applies");
        assert_eq!(out, json!({"a": {"b": 1, "c": [2]}}));
    }
}
