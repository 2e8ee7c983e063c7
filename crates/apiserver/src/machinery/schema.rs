//! Walking OpenAPI v3 schemas: the one model that strategic merge patch,
//! server-side apply, strict decoding and `/openapi` read.
//!
//! Built-in kinds' schemas are generated from the `k8s-openapi` types
//! (`schemars`), then decorated with the patch extensions of
//! [`FieldMeta`] tables (the Go types' `patchStrategy`/`patchMergeKey`
//! tags and `+listType` markers, which the generated schemas lack); a
//! CustomResourceDefinition's schema is its `openAPIV3Schema`, inline.
//! References are `#/components/schemas/NAME`, possibly wrapped in a
//! one-element `allOf` (the form the OpenAPI v3 transform writes when a
//! property adds a description to a referenced type).

use serde_json::{Map, Value};

/// Patch and list metadata of one property of one schema definition.
#[derive(Clone, Copy, Debug)]
pub struct FieldMeta {
    /// The definition's name (`io.k8s.api.core.v1.PodSpec`).
    pub definition: &'static str,
    pub field: &'static str,
    /// `x-kubernetes-patch-strategy`: `merge`, `retainKeys`, `merge,retainKeys`, `replace`.
    pub strategy: Option<&'static str>,
    /// `x-kubernetes-patch-merge-key`.
    pub merge_key: Option<&'static str>,
    /// `x-kubernetes-list-type`: `atomic`, `set`, `map`.
    pub list_type: Option<&'static str>,
    /// `x-kubernetes-list-map-keys`.
    pub map_keys: &'static [&'static str],
    /// `x-kubernetes-map-type`: `atomic` or `granular`.
    pub map_type: Option<&'static str>,
}

impl FieldMeta {
    /// A list merged by `key` in both patches and apply (the common case).
    pub const fn merge_map(
        definition: &'static str,
        field: &'static str,
        key: &'static str,
        keys: &'static [&'static str],
    ) -> FieldMeta {
        FieldMeta {
            definition,
            field,
            strategy: Some("merge"),
            merge_key: Some(key),
            list_type: Some("map"),
            map_keys: keys,
            map_type: None,
        }
    }

    /// A list replaced whole by both patches and apply.
    pub const fn atomic(definition: &'static str, field: &'static str) -> FieldMeta {
        FieldMeta {
            definition,
            field,
            strategy: None,
            merge_key: None,
            list_type: Some("atomic"),
            map_keys: &[],
            map_type: None,
        }
    }

    /// Writes the extensions into `definitions`; false when the definition
    /// or property does not exist (a table entry out of date).
    pub fn decorate(&self, definitions: &mut Map<String, Value>) -> bool {
        let Some(prop) = definitions
            .get_mut(self.definition)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(self.field))
            .and_then(Value::as_object_mut)
        else {
            return false;
        };
        if let Some(s) = self.strategy {
            prop.insert("x-kubernetes-patch-strategy".into(), s.into());
        }
        if let Some(k) = self.merge_key {
            prop.insert("x-kubernetes-patch-merge-key".into(), k.into());
        }
        if let Some(t) = self.list_type {
            prop.insert("x-kubernetes-list-type".into(), t.into());
        }
        if !self.map_keys.is_empty() {
            prop.insert(
                "x-kubernetes-list-map-keys".into(),
                self.map_keys.iter().map(|k| Value::from(*k)).collect(),
            );
        }
        if let Some(t) = self.map_type {
            prop.insert("x-kubernetes-map-type".into(), t.into());
        }
        true
    }
}

/// What a schema node describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// An object with declared properties.
    Struct,
    /// An object of arbitrary keys (`additionalProperties`).
    Map,
    List,
    Scalar,
    /// Anything goes: no type, `x-kubernetes-preserve-unknown-fields`,
    /// `x-kubernetes-int-or-string`.
    Any,
}

/// A position in a schema: the node as written (where a property's
/// extensions live) and the node its references lead to.
#[derive(Clone, Copy, Debug)]
pub struct Node<'a> {
    definitions: &'a Map<String, Value>,
    written: &'a Value,
    resolved: &'a Value,
}

const REF_PREFIX: &str = "#/components/schemas/";

fn reference(schema: &Value) -> Option<&str> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return Some(r);
    }
    match schema
        .get("allOf")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        Some([only]) => only.get("$ref").and_then(Value::as_str),
        _ => None,
    }
}

fn resolve<'a>(definitions: &'a Map<String, Value>, mut schema: &'a Value) -> &'a Value {
    // Bounded: a reference cycle without structure between is malformed.
    for _ in 0..16 {
        let Some(name) = reference(schema).and_then(|r| r.strip_prefix(REF_PREFIX)) else {
            return schema;
        };
        match definitions.get(name) {
            Some(next) => schema = next,
            None => return schema,
        }
    }
    schema
}

impl<'a> Node<'a> {
    /// The definition `name` of `definitions`.
    pub fn definition(definitions: &'a Map<String, Value>, name: &str) -> Option<Node<'a>> {
        let written = definitions.get(name)?;
        Some(Node::inline(definitions, written))
    }

    /// A schema given inline (a CRD version's `openAPIV3Schema`).
    pub fn inline(definitions: &'a Map<String, Value>, schema: &'a Value) -> Node<'a> {
        Node {
            definitions,
            written: schema,
            resolved: resolve(definitions, schema),
        }
    }

    pub fn schema(&self) -> &'a Value {
        self.resolved
    }

    fn extension(&self, name: &str) -> Option<&'a Value> {
        self.written.get(name).or_else(|| self.resolved.get(name))
    }

    fn flag(&self, name: &str) -> bool {
        self.extension(name)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    pub fn shape(&self) -> Shape {
        if self.flag("x-kubernetes-int-or-string") {
            return Shape::Any;
        }
        let s = self.resolved;
        match s.get("type").and_then(Value::as_str) {
            Some("object") => {
                if s.get("properties")
                    .is_some_and(|p| p.as_object().is_some_and(|p| !p.is_empty()))
                {
                    Shape::Struct
                } else if s.get("additionalProperties").is_some_and(Value::is_object) {
                    Shape::Map
                } else {
                    Shape::Any
                }
            }
            Some("array") => Shape::List,
            Some(_) => Shape::Scalar,
            None => Shape::Any,
        }
    }

    /// Whether fields the schema does not name are kept (and so are not
    /// "unknown" for strict decoding).
    pub fn preserves_unknown(&self) -> bool {
        self.flag("x-kubernetes-preserve-unknown-fields")
    }

    /// Whether the node is an embedded object (`apiVersion`, `kind`,
    /// `metadata` implied).
    pub fn embedded_resource(&self) -> bool {
        self.flag("x-kubernetes-embedded-resource")
    }

    pub fn field(&self, name: &str) -> Option<Node<'a>> {
        let written = self.resolved.get("properties")?.get(name)?;
        Some(Node::inline(self.definitions, written))
    }

    pub fn field_names(&self) -> impl Iterator<Item = &'a String> {
        self.resolved
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|p| p.keys())
    }

    pub fn required(&self) -> impl Iterator<Item = &'a str> {
        self.resolved
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
    }

    /// The element schema of a list.
    pub fn items(&self) -> Option<Node<'a>> {
        let written = self.resolved.get("items")?;
        Some(Node::inline(self.definitions, written))
    }

    /// The value schema of a map.
    pub fn values(&self) -> Option<Node<'a>> {
        let written = self.resolved.get("additionalProperties")?;
        written
            .is_object()
            .then(|| Node::inline(self.definitions, written))
    }

    /// `x-kubernetes-patch-strategy` split on commas.
    pub fn patch_strategies(&self) -> Vec<&'a str> {
        self.extension("x-kubernetes-patch-strategy")
            .and_then(Value::as_str)
            .map(|s| s.split(',').map(str::trim).collect())
            .unwrap_or_default()
    }

    pub fn patch_merge_key(&self) -> Option<&'a str> {
        self.extension("x-kubernetes-patch-merge-key")
            .and_then(Value::as_str)
    }

    /// `x-kubernetes-list-type`, `atomic` when absent (the apply default).
    pub fn list_type(&self) -> &'a str {
        self.extension("x-kubernetes-list-type")
            .and_then(Value::as_str)
            .unwrap_or("atomic")
    }

    pub fn list_map_keys(&self) -> Vec<&'a str> {
        self.extension("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|keys| keys.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    /// `x-kubernetes-map-type` of a struct or map: whether apply owns it
    /// as one value (`atomic`) or field by field.
    pub fn map_atomic(&self) -> bool {
        self.extension("x-kubernetes-map-type")
            .and_then(Value::as_str)
            == Some("atomic")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn definitions() -> Map<String, Value> {
        let v = json!({
            "Spec": {
                "type": "object",
                "properties": {
                    "containers": {
                        "type": "array",
                        "items": {"allOf": [{"$ref": "#/components/schemas/Container"}]},
                        "x-kubernetes-patch-strategy": "merge",
                        "x-kubernetes-patch-merge-key": "name"
                    },
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "raw": {"x-kubernetes-preserve-unknown-fields": true},
                    "port": {"x-kubernetes-int-or-string": true}
                }
            },
            "Container": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
        });
        v.as_object().expect("object").clone()
    }

    #[test]
    fn navigates_references_and_extensions() {
        let defs = definitions();
        let spec = Node::definition(&defs, "Spec").expect("defined");
        assert_eq!(spec.shape(), Shape::Struct);
        let containers = spec.field("containers").expect("field");
        assert_eq!(containers.shape(), Shape::List);
        assert_eq!(containers.patch_strategies(), vec!["merge"]);
        assert_eq!(containers.patch_merge_key(), Some("name"));
        let item = containers.items().expect("items");
        assert_eq!(item.shape(), Shape::Struct);
        assert_eq!(item.required().collect::<Vec<_>>(), vec!["name"]);
        assert_eq!(item.field("name").expect("name").shape(), Shape::Scalar);
        assert_eq!(spec.field("labels").expect("labels").shape(), Shape::Map);
        assert_eq!(spec.field("raw").expect("raw").shape(), Shape::Any);
        assert!(spec.field("raw").expect("raw").preserves_unknown());
        assert_eq!(spec.field("port").expect("port").shape(), Shape::Any);
        assert!(spec.field("nope").is_none());
    }

    #[test]
    fn decorate_adds_extensions_and_reports_stale_entries() {
        let mut defs = definitions();
        let meta = FieldMeta::merge_map("Spec", "labels", "k", &["k"]);
        assert!(meta.decorate(&mut defs));
        assert_eq!(
            defs["Spec"]["properties"]["labels"]["x-kubernetes-list-map-keys"],
            json!(["k"])
        );
        assert!(!FieldMeta::atomic("Spec", "missing").decorate(&mut defs));
        assert!(!FieldMeta::atomic("Missing", "x").decorate(&mut defs));
    }
}
