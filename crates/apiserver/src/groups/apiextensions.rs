//! `apiextensions.k8s.io/v1`: CustomResourceDefinitions, and the custom
//! resources they define, served by the same generic handler as every
//! built-in one.
//!
//! A definition is checked (its name is `<plural>.<group>`, one storage
//! version, a structural schema per version) and marked `Established`;
//! each served version then becomes a [`Resource`] whose behaviour is a
//! [`CustomKind`]: the version's `openAPIV3Schema` prunes unknown fields
//! (unless `x-kubernetes-preserve-unknown-fields`), fills `default`s and
//! validates types, required fields, enums and bounds, and the version's
//! `additionalPrinterColumns` make its table. Strategic merge patch is not
//! offered for them, as on the real server.

use std::sync::Arc;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as ext;
use serde_json::{json, Value};

use super::{age_column, age_of, name_column, name_of};
use crate::machinery::schema::FieldMeta;
use crate::machinery::table::{age, Column};
use crate::machinery::validation::{self, ErrorType, FieldError};
use crate::registry::{Group, Kind, KindSpec, NameRule, Resource, ScalePaths};

/// Removes a definition's custom resources before the definition goes.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Groups a definition may not claim.
const BUILTIN_GROUPS: &[&str] = &[
    "",
    "apps",
    "batch",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "apiextensions.k8s.io",
    "autoscaling",
    "policy",
];

pub fn group() -> Group {
    Group {
        resources: vec![Resource::of::<ext::CustomResourceDefinition>(
            "customresourcedefinitions",
            definitions(),
        )
        .cluster_scoped()
        .short(&["crd", "crds"])
        .with_generation()
        .with_status()],
        patch_meta: PATCH_META,
        schema_defaults: &[],
        add_schemas: |_| {},
    }
}

pub const PATCH_META: &[FieldMeta] = &[FieldMeta::merge_map(
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionStatus",
    "conditions",
    "type",
    &["type"],
)];

fn definitions() -> KindSpec<ext::CustomResourceDefinition> {
    KindSpec {
        defaults: |crd| {
            let names = &mut crd.spec.names;
            if names.singular.as_deref().is_none_or(str::is_empty) {
                names.singular = Some(names.kind.to_lowercase());
            }
            if names.list_kind.as_deref().is_none_or(str::is_empty) {
                names.list_kind = Some(format!("{}List", names.kind));
            }
            if crd.spec.conversion.is_none() {
                crd.spec.conversion = Some(ext::CustomResourceConversion {
                    strategy: "None".into(),
                    webhook: None,
                });
            }
        },
        on_create: |crd| {
            let finalizers = crd.metadata.finalizers.get_or_insert_with(Vec::new);
            if !finalizers.iter().any(|f| f == CLEANUP_FINALIZER) {
                finalizers.push(CLEANUP_FINALIZER.into());
            }
            let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now());
            let condition =
                |ty: &str, reason: &str, message: &str| ext::CustomResourceDefinitionCondition {
                    type_: ty.into(),
                    status: "True".into(),
                    reason: Some(reason.into()),
                    message: Some(message.into()),
                    last_transition_time: Some(now.clone()),
                };
            crd.status = Some(ext::CustomResourceDefinitionStatus {
                accepted_names: Some(crd.spec.names.clone()),
                conditions: Some(vec![
                    condition("NamesAccepted", "NoConflicts", "no conflicts found"),
                    condition(
                        "Established",
                        "InitialNamesAccepted",
                        "the initial names have been accepted",
                    ),
                ]),
                stored_versions: Some(
                    crd.spec
                        .versions
                        .iter()
                        .filter(|v| v.storage)
                        .map(|v| v.name.clone())
                        .collect(),
                ),
            });
        },
        validate: validate_definition,
        columns: || {
            vec![name_column(), Column::new("Created At", "date", "CreationTimestamp is a timestamp representing the server time when this object was created.")]
        },
        row: |crd, _| {
            let created = crd
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%SZ", t.0).unwrap_or_default())
                .unwrap_or_default();
            vec![name_of(&crd.metadata), created.into()]
        },
        fields: &[],
    }
}

fn validate_definition(
    crd: &ext::CustomResourceDefinition,
    old: Option<&ext::CustomResourceDefinition>,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = &crd.spec;
    if spec.group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    } else if !spec.group.contains('.') {
        errs.push(FieldError::invalid(
            "spec.group",
            spec.group.as_str(),
            "should be a domain with at least one dot",
        ));
    } else if BUILTIN_GROUPS.contains(&spec.group.as_str())
        || spec.group.ends_with(".k8s.io") && BUILTIN_GROUPS.contains(&spec.group.as_str())
    {
        errs.push(FieldError::invalid(
            "spec.group",
            spec.group.as_str(),
            "is a built-in API group",
        ));
    }
    for e in validation::dns1123_subdomain(&spec.group) {
        errs.push(FieldError::invalid("spec.group", spec.group.as_str(), e));
    }
    let names = &spec.names;
    if names.plural.is_empty() {
        errs.push(FieldError::required("spec.names.plural", ""));
    } else {
        for e in validation::dns1123_label(&names.plural) {
            errs.push(FieldError::invalid(
                "spec.names.plural",
                names.plural.as_str(),
                e,
            ));
        }
    }
    if names.kind.is_empty() {
        errs.push(FieldError::required("spec.names.kind", ""));
    }
    let expected = format!("{}.{}", names.plural, spec.group);
    let name = crd.metadata.name.clone().unwrap_or_default();
    if name != expected {
        errs.push(FieldError::invalid(
            "metadata.name",
            name.as_str(),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if !["Namespaced", "Cluster"].contains(&spec.scope.as_str()) {
        errs.push(FieldError::not_supported(
            "spec.scope",
            spec.scope.as_str(),
            &["Cluster", "Namespaced"],
        ));
    }
    if spec.versions.is_empty() {
        errs.push(FieldError::invalid(
            "spec.versions",
            Value::Array(Vec::new()),
            "must have exactly one version marked as storage version",
        ));
    }
    let storage = spec.versions.iter().filter(|v| v.storage).count();
    if !spec.versions.is_empty() && storage != 1 {
        errs.push(FieldError::invalid(
            "spec.versions",
            Value::Null,
            "must have exactly one version marked as storage version",
        ));
    }
    for (i, v) in spec.versions.iter().enumerate() {
        for e in validation::dns1123_label(&v.name) {
            errs.push(FieldError::invalid(
                format!("spec.versions[{i}].name"),
                v.name.as_str(),
                e,
            ));
        }
        let schema = v
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref());
        match schema {
            None => errs.push(FieldError::required(
                format!("spec.versions[{i}].schema.openAPIV3Schema"),
                "schemas are required",
            )),
            Some(s) if s.type_.as_deref() != Some("object") => errs.push(FieldError::invalid(
                format!("spec.versions[{i}].schema.openAPIV3Schema.type"),
                s.type_.clone().unwrap_or_default(),
                "must be object at the root",
            )),
            Some(_) => {}
        }
    }
    if let Some(old) = old {
        if old.spec.scope != spec.scope {
            errs.push(FieldError::invalid(
                "spec.scope",
                spec.scope.as_str(),
                "field is immutable",
            ));
        }
        if old.spec.group != spec.group {
            errs.push(FieldError::invalid(
                "spec.group",
                spec.group.as_str(),
                "field is immutable",
            ));
        }
    }
    errs
}

/// Whether a stored definition is served (established, not going away
/// entirely: a terminating one keeps serving until its objects are gone).
fn established(crd: &Value) -> bool {
    crd["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Established" && c["status"] == "True")
}

fn path_of(json_path: &str) -> Vec<String> {
    json_path
        .trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// The resources a stored definition serves, one per served version.
pub fn custom_resources(crd: &Value) -> Vec<Resource> {
    if !established(crd) {
        return Vec::new();
    }
    let Ok(def) = serde_json::from_value::<ext::CustomResourceDefinition>(crd.clone()) else {
        return Vec::new();
    };
    let spec = &def.spec;
    let names = &spec.names;
    let mut out = Vec::new();
    for v in spec.versions.iter().filter(|v| v.served) {
        let schema = crd["spec"]["versions"]
            .as_array()
            .and_then(|vs| vs.iter().find(|x| x["name"] == v.name.as_str()))
            .map(|x| x["schema"]["openAPIV3Schema"].clone())
            .unwrap_or_else(
                || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
            );
        let columns: Vec<CustomColumn> = v
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| CustomColumn {
                column: {
                    let mut col =
                        Column::new(&c.name, &c.type_, c.description.as_deref().unwrap_or(""));
                    col.priority = c.priority.unwrap_or(0);
                    col.format = c.format.clone().unwrap_or_default();
                    col
                },
                path: path_of(&c.json_path),
            })
            .collect();
        let behaviour = CustomKind {
            schema: schema.clone(),
            columns,
        };
        let mut r = Resource {
            group: spec.group.clone(),
            version: v.name.clone(),
            kind: names.kind.clone(),
            list_kind: names
                .list_kind
                .clone()
                .unwrap_or_else(|| format!("{}List", names.kind)),
            plural: names.plural.clone(),
            singular: names
                .singular
                .clone()
                .unwrap_or_else(|| names.kind.to_lowercase()),
            short_names: names.short_names.clone().unwrap_or_default(),
            categories: names.categories.clone().unwrap_or_default(),
            namespaced: spec.scope == "Namespaced",
            verbs: crate::registry::ALL_VERBS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            subresources: Vec::new(),
            definition: crate::openapi::custom_definition_name(&spec.group, &v.name, &names.kind),
            custom_schema: Some(schema),
            name_rule: NameRule::Subdomain,
            generation: true,
            status_subresource: false,
            scale: None,
            behaviour: Arc::new(behaviour),
            add_schema: None,
        };
        let subresources = v.subresources.as_ref();
        if subresources.is_some_and(|s| s.status.is_some()) {
            r = r.with_status();
        }
        if let Some(scale) = subresources.and_then(|s| s.scale.as_ref()) {
            r = r.with_scale(ScalePaths {
                spec_replicas: path_of(&scale.spec_replicas_path),
                status_replicas: path_of(&scale.status_replicas_path),
                selector: scale
                    .label_selector_path
                    .as_deref()
                    .map(|p| (path_of(p), false)),
            });
        }
        out.push(r);
    }
    out
}

struct CustomColumn {
    column: Column,
    path: Vec<String>,
}

/// A custom resource's behaviour, from its version's schema and columns.
pub struct CustomKind {
    schema: Value,
    columns: Vec<CustomColumn>,
}

impl Kind for CustomKind {
    fn normalize(&self, mut obj: Value) -> Result<Value, String> {
        if !obj.is_object() {
            return Err("the object is not a JSON object".into());
        }
        if obj.get("metadata").is_some_and(|m| !m.is_object()) {
            return Err("metadata must be an object".into());
        }
        prune(&mut obj, &self.schema, true);
        Ok(obj)
    }

    fn default(&self, obj: &mut Value, _create: bool) {
        apply_defaults(obj, &self.schema);
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if let Value::Object(m) = obj {
            let props = self.schema.get("properties").and_then(Value::as_object);
            for (k, v) in m {
                if ["apiVersion", "kind", "metadata"].contains(&k.as_str()) {
                    continue;
                }
                if let Some(s) = props.and_then(|p| p.get(k)) {
                    check(v, s, k, &mut errs);
                }
            }
            for r in self
                .schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !m.contains_key(r) {
                    errs.push(FieldError::required(r, ""));
                }
            }
        }
        errs
    }

    fn columns(&self) -> Vec<Column> {
        let mut cols = vec![name_column()];
        if self.columns.is_empty() {
            cols.push(age_column());
        }
        cols.extend(self.columns.iter().map(|c| c.column.clone()));
        cols
    }

    fn row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let meta: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta =
            serde_json::from_value(obj["metadata"].clone()).unwrap_or_default();
        let mut row = vec![name_of(&meta)];
        if self.columns.is_empty() {
            row.push(age_of(&meta, now));
        }
        for c in &self.columns {
            let v = crate::registry::value_at(obj, &c.path)
                .cloned()
                .unwrap_or(Value::Null);
            row.push(match (c.column.kind.as_str(), &v) {
                ("date", Value::String(s)) => Value::from(age(Some(s), now)),
                (_, Value::Null) => Value::from("<none>"),
                (_, Value::Array(_) | Value::Object(_)) => Value::from(v.to_string()),
                _ => v,
            });
        }
        row
    }

    fn field_labels(&self) -> Vec<&'static str> {
        Vec::new()
    }

    fn field_value(&self, _obj: &Value, _field: &str) -> Option<String> {
        None
    }
}

/// Drops fields the schema does not declare (`root`: apiVersion, kind and
/// metadata are always kept).
fn prune(value: &mut Value, schema: &Value, root: bool) {
    let preserve = schema["x-kubernetes-preserve-unknown-fields"].as_bool() == Some(true);
    match value {
        Value::Object(m) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            m.retain(|k, _| {
                (root && ["apiVersion", "kind", "metadata"].contains(&k.as_str()))
                    || preserve
                    || additional.is_some()
                    || props.is_some_and(|p| p.contains_key(k))
            });
            for (k, v) in m.iter_mut() {
                if root && k == "metadata" {
                    continue;
                }
                if let Some(s) = props.and_then(|p| p.get(k)) {
                    prune(v, s, false);
                } else if let Some(a) = additional {
                    prune(v, a, false);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for v in items {
                    prune(v, s, false);
                }
            }
        }
        _ => {}
    }
}

/// Fills `default`s of missing properties of present objects.
fn apply_defaults(value: &mut Value, schema: &Value) {
    match value {
        Value::Object(m) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, s) in props {
                    if !m.contains_key(k) {
                        if let Some(d) = s.get("default") {
                            m.insert(k.clone(), d.clone());
                        }
                    }
                    if let Some(v) = m.get_mut(k) {
                        apply_defaults(v, s);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for v in items {
                    apply_defaults(v, s);
                }
            }
        }
        _ => {}
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks a value against a structural schema, as custom resources are
/// validated: type, enum, bounds, lengths, required properties.
fn check(value: &Value, schema: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if value.is_null() && schema["nullable"].as_bool() == Some(true) {
        return;
    }
    if schema["x-kubernetes-int-or-string"].as_bool() == Some(true) {
        if !(value.is_string() || type_name(value) == "integer") {
            errs.push(FieldError::invalid(
                path,
                value.clone(),
                format!(
                    "{path} in body must be of type integer-or-string: {:?}",
                    type_name(value)
                ),
            ));
        }
        return;
    }
    if let Some(ty) = schema["type"].as_str() {
        let have = type_name(value);
        let ok = have == ty || (ty == "number" && have == "integer");
        if !ok {
            errs.push(FieldError {
                kind: ErrorType::Invalid,
                field: path.into(),
                value: Some(Value::from(have)),
                detail: format!("{path} in body must be of type {ty}: {have:?}"),
            });
            return;
        }
    }
    if let Some(options) = schema["enum"].as_array() {
        if !options.contains(value) {
            let shown: Vec<String> = options
                .iter()
                .map(|o| {
                    o.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| o.to_string())
                })
                .collect();
            let refs: Vec<&str> = shown.iter().map(String::as_str).collect();
            errs.push(FieldError::not_supported(path, value.clone(), &refs));
        }
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema["minimum"].as_f64() {
            if n < min {
                errs.push(FieldError::invalid(
                    path,
                    value.clone(),
                    format!("{path} in body should be greater than or equal to {min}"),
                ));
            }
        }
        if let Some(max) = schema["maximum"].as_f64() {
            if n > max {
                errs.push(FieldError::invalid(
                    path,
                    value.clone(),
                    format!("{path} in body should be less than or equal to {max}"),
                ));
            }
        }
    }
    if let Some(s) = value.as_str() {
        if let Some(max) = schema["maxLength"].as_u64() {
            if s.chars().count() as u64 > max {
                errs.push(FieldError {
                    kind: ErrorType::TooLong,
                    field: path.into(),
                    value: None,
                    detail: format!("may not be more than {max} bytes"),
                });
            }
        }
        if let Some(min) = schema["minLength"].as_u64() {
            if (s.chars().count() as u64) < min {
                errs.push(FieldError::invalid(
                    path,
                    s,
                    format!("{path} in body should be at least {min} chars long"),
                ));
            }
        }
    }
    match value {
        Value::Object(m) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, v) in m {
                let child = format!("{path}.{k}");
                if let Some(s) = props.and_then(|p| p.get(k)).or(additional) {
                    check(v, s, &child, errs);
                }
            }
            for r in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !m.contains_key(r) {
                    errs.push(FieldError::required(format!("{path}.{r}"), ""));
                }
            }
        }
        Value::Array(items) => {
            if let Some(max) = schema["maxItems"].as_u64() {
                if items.len() as u64 > max {
                    errs.push(FieldError {
                        kind: ErrorType::TooLong,
                        field: path.into(),
                        value: None,
                        detail: format!("must have at most {max} items"),
                    });
                }
            }
            if let Some(s) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    check(v, s, &format!("{path}[{i}]"), errs);
                }
            }
        }
        _ => {}
    }
}

/// The definitions' resources, for the registry.
pub fn from_definitions(crds: &[Value]) -> Vec<Resource> {
    crds.iter().flat_map(custom_resources).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "crontabs.stable.example.com"},
            "spec": {
                "group": "stable.example.com", "scope": "Namespaced",
                "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "shortNames": ["ct"]},
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "required": ["cronSpec"], "properties": {
                            "cronSpec": {"type": "string", "maxLength": 20},
                            "image": {"type": "string"},
                            "replicas": {"type": "integer", "minimum": 1, "default": 1},
                            "mode": {"type": "string", "enum": ["a", "b"]},
                            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                        }}
                    }}},
                    "additionalPrinterColumns": [{"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"}],
                    "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}}
                }]
            }
        })
    }

    fn established_crd() -> Value {
        let spec = definitions();
        let mut v = spec.normalize(crd()).expect("decodes");
        spec.default(&mut v, true);
        v
    }

    #[test]
    fn definitions_are_checked() {
        let spec = definitions();
        let v = spec.normalize(crd()).expect("decodes");
        assert!(
            spec.validate(&v, None).is_empty(),
            "{:?}",
            spec.validate(&v, None)
        );
        let mut bad = crd();
        bad["metadata"]["name"] = json!("wrong");
        bad["spec"]["scope"] = json!("Everywhere");
        bad["spec"]["versions"][0]["storage"] = json!(false);
        let v = spec.normalize(bad).expect("decodes");
        let errs: Vec<String> = spec
            .validate(&v, None)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(
            errs.iter()
                .any(|e| e.contains("must be spec.names.plural+\".\"+spec.group")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("spec.scope: Unsupported value")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("exactly one version marked as storage version")),
            "{errs:?}"
        );
    }

    #[test]
    fn established_definitions_serve_their_versions() {
        let v = established_crd();
        assert_eq!(v["metadata"]["finalizers"], json!([CLEANUP_FINALIZER]));
        let rs = custom_resources(&v);
        assert_eq!(rs.len(), 1);
        let r = &rs[0];
        assert_eq!(
            (
                r.group.as_str(),
                r.version.as_str(),
                r.plural.as_str(),
                r.kind.as_str()
            ),
            ("stable.example.com", "v1", "crontabs", "CronTab")
        );
        assert_eq!(r.short_names, vec!["ct"]);
        assert!(r.status_subresource && r.scale.is_some());
        assert!(custom_resources(&crd()).is_empty(), "not established yet");
    }

    #[test]
    fn custom_objects_are_pruned_defaulted_and_validated() {
        let rs = custom_resources(&established_crd());
        let k = &rs[0].behaviour;
        let mut o = k
            .normalize(json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "x"},
                "spec": {"cronSpec": "* * * * */5", "extra": 1, "free": {"any": {"thing": 1}}}, "top": 1}))
            .expect("normalizes");
        assert_eq!(o.get("top"), None);
        assert_eq!(o["spec"].get("extra"), None);
        assert_eq!(o["spec"]["free"], json!({"any": {"thing": 1}}));
        k.default(&mut o, true);
        assert_eq!(o["spec"]["replicas"], 1);
        assert!(k.validate(&o, None).is_empty());
        let bad = json!({"metadata": {}, "spec": {"cronSpec": 5, "replicas": 0, "mode": "c"}});
        let errs: Vec<String> = k
            .validate(&bad, None)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(
            errs.iter()
                .any(|e| e.contains("spec.cronSpec in body must be of type string")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("spec.replicas in body should be greater than or equal to 1")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("spec.mode: Unsupported value: \"c\"")),
            "{errs:?}"
        );
        let missing = json!({"metadata": {}, "spec": {}});
        let errs: Vec<String> = k
            .validate(&missing, None)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errs, vec!["spec.cronSpec: Required value"]);
        let row = k.row(&o, jiff::Timestamp::now());
        assert_eq!(row[1], "* * * * */5");
    }
}
