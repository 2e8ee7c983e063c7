//! The registry of resources: one [`Resource`] per served resource (kind,
//! plural, singular, short names, categories, scope, subresources, verbs,
//! printer columns, schema), read by discovery, routing, tables, OpenAPI
//! and the generic REST handler alike. Built-in resources come from the
//! group modules (`crate::groups`); custom resources are added when their
//! CustomResourceDefinition is established.
//!
//! Per-kind behaviour is a [`Kind`]: decoding into the `k8s-openapi` type,
//! defaulting, validation, the table row and selectable fields. Built-in
//! kinds implement it with [`KindSpec`], a table of functions over the
//! typed value; custom resources with their own implementation.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::machinery::schema::FieldMeta;
use crate::machinery::table::Column;
use crate::machinery::validation::{self, FieldError};

/// Which names a kind's objects may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain (most kinds).
    Subdomain,
    /// RFC 1123 label (namespaces, services).
    Label,
    /// Anything that is a path segment (no `/`, `%`, not `.` or `..`).
    PathSegment,
}

impl NameRule {
    pub fn check(self, name: &str) -> Vec<String> {
        match self {
            NameRule::Subdomain => validation::dns1123_subdomain(name),
            NameRule::Label => validation::dns1123_label(name),
            NameRule::PathSegment => {
                if name == "." || name == ".." {
                    vec![format!("may not be '{name}'")]
                } else if name.contains('/') || name.contains('%') {
                    vec!["may not contain '/' or '%'".into()]
                } else {
                    Vec::new()
                }
            }
        }
    }
}

/// A subresource as discovery lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct Subresource {
    /// `status`, `scale`, `log`, `exec`, ...
    pub name: String,
    /// What it answers: `("autoscaling", "v1", "Scale")` for scale; the
    /// parent kind for status.
    pub group: String,
    pub version: String,
    pub kind: String,
    pub verbs: Vec<String>,
}

/// Where a scalable kind keeps its replica counts (JSON paths).
#[derive(Clone, Debug, PartialEq)]
pub struct ScalePaths {
    pub spec_replicas: Vec<String>,
    pub status_replicas: Vec<String>,
    /// Where the label selector lives, and whether it is a
    /// `metav1.LabelSelector` (true) or already a string.
    pub selector: Option<(Vec<String>, bool)>,
}

/// The per-kind behaviour the generic handler calls.
pub trait Kind: Send + Sync {
    /// Decodes into the kind's type and back: fields the type does not
    /// know are dropped, types are checked. Errors are the decoder's.
    fn normalize(&self, obj: Value) -> Result<Value, String>;
    /// Defaults applied on every write, then on create only.
    fn default(&self, obj: &mut Value, create: bool);
    /// Kind-specific validation (object metadata is checked generically).
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError>;
    fn columns(&self) -> Vec<Column>;
    fn row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value>;
    /// Selectable fields beyond `metadata.name` and `metadata.namespace`.
    fn field_labels(&self) -> Vec<&'static str>;
    fn field_value(&self, obj: &Value, field: &str) -> Option<String>;
}

type Hook<T> = fn(&mut T);
type Check<T> = fn(&T, Option<&T>) -> Vec<FieldError>;
type Printer<T> = fn(&T, jiff::Timestamp) -> Vec<Value>;
type FieldFn<T> = fn(&T) -> String;

/// A built-in kind's behaviour as functions over its `k8s-openapi` type.
pub struct KindSpec<T: 'static> {
    pub defaults: Hook<T>,
    pub on_create: Hook<T>,
    pub validate: Check<T>,
    pub columns: fn() -> Vec<Column>,
    pub row: Printer<T>,
    pub fields: &'static [(&'static str, FieldFn<T>)],
}

impl<T: 'static> KindSpec<T> {
    /// A kind with no defaults, no checks and the NAME/AGE table.
    pub fn plain(row: Printer<T>, columns: fn() -> Vec<Column>) -> KindSpec<T> {
        KindSpec {
            defaults: |_| {},
            on_create: |_| {},
            validate: |_, _| Vec::new(),
            columns,
            row,
            fields: &[],
        }
    }
}

fn decode<T: DeserializeOwned>(obj: &Value) -> Option<T> {
    serde_json::from_value(obj.clone()).ok()
}

fn encode<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

impl<T> Kind for KindSpec<T>
where
    T: DeserializeOwned + Serialize + Send + Sync + 'static,
{
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        let typed: T = serde_json::from_value(obj).map_err(|e| e.to_string())?;
        serde_json::to_value(&typed).map_err(|e| e.to_string())
    }

    fn default(&self, obj: &mut Value, create: bool) {
        let Some(mut typed) = decode::<T>(obj) else {
            return;
        };
        (self.defaults)(&mut typed);
        if create {
            (self.on_create)(&mut typed);
        }
        *obj = encode(&typed);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let Some(typed) = decode::<T>(obj) else {
            return Vec::new();
        };
        let old = old.and_then(decode::<T>);
        (self.validate)(&typed, old.as_ref())
    }

    fn columns(&self) -> Vec<Column> {
        (self.columns)()
    }

    fn row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        match decode::<T>(obj) {
            Some(typed) => (self.row)(&typed, now),
            None => Vec::new(),
        }
    }

    fn field_labels(&self) -> Vec<&'static str> {
        self.fields.iter().map(|(name, _)| *name).collect()
    }

    fn field_value(&self, obj: &Value, field: &str) -> Option<String> {
        let (_, get) = self.fields.iter().find(|(name, _)| *name == field)?;
        decode::<T>(obj).map(|typed| get(&typed))
    }
}

/// One served resource.
#[derive(Clone)]
pub struct Resource {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub list_kind: String,
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub namespaced: bool,
    pub verbs: Vec<String>,
    pub subresources: Vec<Subresource>,
    /// The OpenAPI definition of the kind (`io.k8s.api.core.v1.Pod`); for
    /// custom resources the inline schema is in `custom_schema`.
    pub definition: String,
    pub custom_schema: Option<Value>,
    pub name_rule: NameRule,
    /// `metadata.generation` starts at 1 and goes up on spec changes.
    pub generation: bool,
    /// Main-resource writes keep the stored status (and /status writes
    /// the rest).
    pub status_subresource: bool,
    pub scale: Option<ScalePaths>,
    pub behaviour: Arc<dyn Kind>,
    /// Adds the kind's schema to the OpenAPI definitions (built-ins).
    pub add_schema: Option<fn(&mut schemars::SchemaGenerator)>,
}

impl std::fmt::Debug for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resource")
            .field("group", &self.group)
            .field("version", &self.version)
            .field("plural", &self.plural)
            .finish_non_exhaustive()
    }
}

/// The verbs of an ordinary resource.
pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

impl Resource {
    /// A resource of a `k8s-openapi` type with everything else defaulted:
    /// all verbs, subdomain names, no subresources.
    pub fn of<T>(plural: &str, behaviour: KindSpec<T>) -> Resource
    where
        T: k8s_openapi::Resource
            + DeserializeOwned
            + Serialize
            + Send
            + Sync
            + schemars::JsonSchema
            + 'static,
    {
        let definition = <T as schemars::JsonSchema>::schema_name().into_owned();
        Resource {
            group: T::GROUP.into(),
            version: T::VERSION.into(),
            kind: T::KIND.into(),
            list_kind: format!("{}List", T::KIND),
            plural: plural.into(),
            singular: T::KIND.to_lowercase(),
            short_names: Vec::new(),
            categories: Vec::new(),
            namespaced: true,
            verbs: ALL_VERBS.iter().map(|v| v.to_string()).collect(),
            subresources: Vec::new(),
            definition,
            custom_schema: None,
            name_rule: NameRule::Subdomain,
            generation: false,
            status_subresource: false,
            scale: None,
            behaviour: Arc::new(behaviour),
            add_schema: Some(|g| {
                let _ = g.subschema_for::<T>();
            }),
        }
    }

    pub fn cluster_scoped(mut self) -> Resource {
        self.namespaced = false;
        self
    }

    pub fn short(mut self, names: &[&str]) -> Resource {
        self.short_names = names.iter().map(|s| s.to_string()).collect();
        self
    }

    /// In `kubectl get all`.
    pub fn in_all(mut self) -> Resource {
        self.categories.push("all".into());
        self
    }

    pub fn names(mut self, rule: NameRule) -> Resource {
        self.name_rule = rule;
        self
    }

    pub fn with_generation(mut self) -> Resource {
        self.generation = true;
        self
    }

    pub fn verbs(mut self, verbs: &[&str]) -> Resource {
        self.verbs = verbs.iter().map(|s| s.to_string()).collect();
        self
    }

    /// A `/status` subresource answering the kind itself.
    pub fn with_status(mut self) -> Resource {
        self.status_subresource = true;
        self.subresources.push(Subresource {
            name: "status".into(),
            group: self.group.clone(),
            version: self.version.clone(),
            kind: self.kind.clone(),
            verbs: ["get", "patch", "update"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        });
        self
    }

    /// A `/scale` subresource answering `autoscaling/v1` Scale.
    pub fn with_scale(mut self, paths: ScalePaths) -> Resource {
        self.scale = Some(paths);
        self.subresources.push(Subresource {
            name: "scale".into(),
            group: "autoscaling".into(),
            version: "v1".into(),
            kind: "Scale".into(),
            verbs: ["get", "patch", "update"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        });
        self
    }

    /// A subresource served by a component other than the store
    /// (`log`, `exec`, `binding`, `eviction`...).
    pub fn with_subresource(
        mut self,
        name: &str,
        group: &str,
        version: &str,
        kind: &str,
        verbs: &[&str],
    ) -> Resource {
        self.subresources.push(Subresource {
            name: name.into(),
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
        });
        self
    }

    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn has_subresource(&self, name: &str) -> bool {
        self.subresources.iter().any(|s| s.name == name)
    }

    /// Every selectable field of the kind.
    pub fn field_labels(&self) -> Vec<&'static str> {
        let mut fields = vec!["metadata.name", "metadata.namespace"];
        fields.extend(self.behaviour.field_labels());
        fields
    }

    /// The value of a selectable field of `obj`.
    pub fn field_value(&self, obj: &Value, field: &str) -> String {
        let meta = |k: &str| {
            obj.get("metadata")
                .and_then(|m| m.get(k))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        match field {
            "metadata.name" => meta("name"),
            "metadata.namespace" => meta("namespace"),
            _ => self.behaviour.field_value(obj, field).unwrap_or_default(),
        }
    }
}

/// A group's contribution: its resources and its schema decorations.
pub struct Group {
    pub resources: Vec<Resource>,
    pub patch_meta: &'static [FieldMeta],
    /// `(definition, field, default)`: string defaults the schema
    /// declares (list-map key fields need them, as `protocol: TCP`).
    pub schema_defaults: &'static [(&'static str, &'static str, &'static str)],
    /// Adds the group's types to the OpenAPI definitions.
    pub add_schemas: fn(&mut schemars::SchemaGenerator),
}

/// Every resource served, built-in and custom.
#[derive(Clone, Default)]
pub struct Registry {
    resources: Vec<Arc<Resource>>,
}

impl Registry {
    pub fn new(resources: impl IntoIterator<Item = Resource>) -> Registry {
        Registry {
            resources: resources.into_iter().map(Arc::new).collect(),
        }
    }

    pub fn resources(&self) -> &[Arc<Resource>] {
        &self.resources
    }

    /// The resource at `group/version/plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<Resource>> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .cloned()
    }

    /// The resource of a kind in a group/version.
    pub fn find_kind(&self, group: &str, version: &str, kind: &str) -> Option<Arc<Resource>> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
            .cloned()
    }

    /// Adds or replaces a resource (custom resources).
    pub fn upsert(&mut self, resource: Resource) {
        let resource = Arc::new(resource);
        match self.resources.iter().position(|r| {
            r.group == resource.group
                && r.version == resource.version
                && r.plural == resource.plural
        }) {
            Some(i) => self.resources[i] = resource,
            None => self.resources.push(resource),
        }
    }

    /// Drops every custom resource.
    pub fn retain_builtin(&mut self) {
        self.resources.retain(|r| r.custom_schema.is_none());
    }

    /// Group names with their versions, core (`""`) first then by name.
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in &self.resources {
            let versions = groups.entry(r.group.clone()).or_default();
            if !versions.contains(&r.version) {
                versions.push(r.version.clone());
            }
        }
        groups
    }

    /// The resources of one group/version.
    pub fn of_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a Arc<Resource>> + 'a {
        self.resources
            .iter()
            .filter(move |r| r.group == group && r.version == version)
    }
}

/// A JSON value at a path of object keys.
pub fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, k| v.get(k))
}

/// Sets a JSON value at a path, making objects on the way.
pub fn set_at(obj: &mut Value, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        *obj = value;
        return;
    };
    let mut at = obj;
    for k in parents {
        if !at.get(k).is_some_and(Value::is_object) {
            if let Some(m) = at.as_object_mut() {
                m.insert(k.clone(), Value::Object(Map::new()));
            }
        }
        match at.get_mut(k) {
            Some(next) => at = next,
            None => return,
        }
    }
    if let Some(m) = at.as_object_mut() {
        m.insert(last.clone(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn name_rules() {
        assert!(NameRule::Subdomain.check("a.b").is_empty());
        assert!(!NameRule::Label.check("a.b").is_empty());
        assert!(NameRule::PathSegment.check("Any_Thing").is_empty());
        assert!(!NameRule::PathSegment.check("..").is_empty());
        assert!(!NameRule::PathSegment.check("a/b").is_empty());
    }

    #[test]
    fn paths() {
        let mut v = json!({});
        set_at(&mut v, &["spec".into(), "replicas".into()], json!(3));
        assert_eq!(v, json!({"spec": {"replicas": 3}}));
        assert_eq!(
            value_at(&v, &["spec".into(), "replicas".into()]),
            Some(&json!(3))
        );
        assert_eq!(value_at(&v, &["status".into()]), None);
    }
}
