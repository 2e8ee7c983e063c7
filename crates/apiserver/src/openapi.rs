//! The API's schemas and the `/openapi/v3` and `/openapi/v2` documents.
//!
//! Definitions are generated from the `k8s-openapi` types (`schemars`,
//! OpenAPI 3 form: `#/components/schemas/NAME`, references wrapped in
//! `allOf` where a property adds a description), decorated with each
//! group's patch metadata and with `x-kubernetes-group-version-kind` on
//! every kind and list; custom resources add their inline schemas. The
//! same [`Schemas`] serve strategic merge patch, server-side apply and
//! strict decoding, so what kubectl validates against is what the server
//! merges by.
//!
//! Each group-version document has the resources' paths with their
//! operations (kubectl checks the PATCH operation of a kind for the
//! `fieldValidation` parameter before it relies on server-side
//! validation) and the definitions those reach.

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};

use serde_json::{json, Map, Value};

use crate::error::Error;
use crate::machinery::schema::Node;
use crate::registry::{Group, Registry, Resource};

const REF_PREFIX: &str = "#/components/schemas/";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";

/// Every definition, by name.
#[derive(Clone, Debug, Default)]
pub struct Schemas {
    definitions: Map<String, Value>,
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!([{"group": group, "kind": kind, "version": version}])
}

/// The name a custom resource's definition gets (`com.example.v1.Widget`).
pub fn custom_definition_name(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

impl Schemas {
    /// Generates the built-in definitions and decorates them.
    pub fn build(groups: &[Group], registry: &Registry) -> Result<Schemas, Error> {
        let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
        for r in registry.resources() {
            if let Some(add) = r.add_schema {
                add(&mut generator);
            }
        }
        for g in groups {
            (g.add_schemas)(&mut generator);
        }
        let _ = generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>();
        let _ = generator
            .subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions>();
        let _ = generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Patch>();
        let _ =
            generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta>();
        let _ = generator.subschema_for::<k8s_openapi::api::autoscaling::v1::Scale>();
        let mut definitions = generator.take_definitions(true);

        let mut stale = Vec::new();
        for g in groups {
            for meta in g.patch_meta {
                if !meta.decorate(&mut definitions) {
                    stale.push(format!("{}.{}", meta.definition, meta.field));
                }
            }
        }
        for g in groups {
            for (definition, field, default) in g.schema_defaults {
                match definitions
                    .get_mut(*definition)
                    .and_then(|d| d.get_mut("properties"))
                    .and_then(|p| p.get_mut(*field))
                    .and_then(Value::as_object_mut)
                {
                    Some(prop) => {
                        prop.insert("default".into(), Value::from(*default));
                    }
                    None => stale.push(format!("{definition}.{field}")),
                }
            }
        }
        if !stale.is_empty() {
            return Err(Error::Schema {
                reason: format!("patch metadata names unknown fields: {}", stale.join(", ")),
            });
        }
        let mut schemas = Schemas { definitions };
        schemas.mark_kind(
            "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
            "",
            "v1",
            "Status",
        );
        schemas.mark_kind(
            "io.k8s.api.autoscaling.v1.Scale",
            "autoscaling",
            "v1",
            "Scale",
        );
        for r in registry.resources() {
            schemas.add_resource(r);
        }
        Ok(schemas)
    }

    fn mark_kind(&mut self, name: &str, group: &str, version: &str, kind: &str) {
        if let Some(Value::Object(d)) = self.definitions.get_mut(name) {
            d.insert(
                "x-kubernetes-group-version-kind".into(),
                gvk(group, version, kind),
            );
        }
    }

    /// Adds (or replaces) a resource's kind and list definitions.
    pub fn add_resource(&mut self, r: &Resource) {
        if let Some(schema) = &r.custom_schema {
            let mut schema = schema.clone();
            if let Some(m) = schema.as_object_mut() {
                let props = m.entry("properties").or_insert_with(|| json!({}));
                if let Some(p) = props.as_object_mut() {
                    p.entry("apiVersion").or_insert_with(|| json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
                    p.entry("kind").or_insert_with(|| json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
                    p.insert("metadata".into(), json!({"allOf": [{"$ref": format!("{REF_PREFIX}io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")}], "description": "Standard object's metadata."}));
                }
                m.entry("type").or_insert_with(|| "object".into());
            }
            self.definitions.insert(r.definition.clone(), schema);
        }
        self.mark_kind(&r.definition.clone(), &r.group, &r.version, &r.kind);
        let list_name = format!("{}List", r.definition);
        self.definitions.insert(
            list_name,
            json!({
                "description": format!("{} is a list of {}.", r.list_kind, r.kind),
                "type": "object",
                "required": ["items"],
                "properties": {
                    "apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."},
                    "kind": {"type": "string", "description": "Kind is a string value representing the REST resource this object represents."},
                    "items": {"type": "array", "description": format!("List of {}.", r.plural), "items": {"$ref": format!("{REF_PREFIX}{}", r.definition)}},
                    "metadata": {"allOf": [{"$ref": format!("{REF_PREFIX}{LIST_META}")}], "description": "Standard list metadata."},
                },
                "x-kubernetes-group-version-kind": gvk(&r.group, &r.version, &r.list_kind),
            }),
        );
    }

    pub fn definitions(&self) -> &Map<String, Value> {
        &self.definitions
    }

    /// The schema of a resource's kind.
    pub fn node(&self, r: &Resource) -> Option<Node<'_>> {
        Node::definition(&self.definitions, &r.definition)
    }

    /// The names reachable from `roots` through references.
    fn reachable(&self, roots: impl IntoIterator<Item = String>) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut queue: Vec<String> = roots.into_iter().collect();
        while let Some(name) = queue.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            if let Some(def) = self.definitions.get(&name) {
                collect_refs(def, &mut queue);
            }
        }
        seen
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(r) = m
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix(REF_PREFIX))
            {
                out.push(r.to_string());
            }
            for child in m.values() {
                collect_refs(child, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|c| collect_refs(c, out)),
        _ => {}
    }
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("{REF_PREFIX}{name}")})
}

fn query(name: &str, description: &str, ty: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": ty, "uniqueItems": true}})
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "description": description, "required": true, "schema": {"type": "string", "uniqueItems": true}})
}

fn ok(schema: &str) -> Value {
    json!({
        "200": {"description": "OK", "content": {
            "application/json": {"schema": schema_ref(schema)},
            "application/yaml": {"schema": schema_ref(schema)},
        }},
        "401": {"description": "Unauthorized"},
    })
}

fn operation(
    r: &Resource,
    action: &str,
    op_id: &str,
    description: &str,
    parameters: Vec<Value>,
    responses: Value,
    body: Option<Value>,
) -> Value {
    let mut op = json!({
        "tags": [if r.group.is_empty() { "core_v1".to_string() } else { format!("{}_{}", r.group.replace('.', "_"), r.version) }],
        "description": description,
        "operationId": op_id,
        "parameters": parameters,
        "responses": responses,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
    });
    if let Some(b) = body {
        op["requestBody"] = b;
    }
    op
}

fn body(schema: &str, types: &[&str]) -> Value {
    let content: Map<String, Value> = types
        .iter()
        .map(|t| (t.to_string(), json!({"schema": schema_ref(schema)})))
        .collect();
    json!({"content": content, "required": true})
}

fn write_params() -> Vec<Value> {
    vec![
        query("dryRun", "When present, indicates that modifications should not be persisted.", "string"),
        query("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes.", "string"),
        query("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Strict - Warn", "string"),
    ]
}

fn resource_paths(r: &Resource, paths: &mut Map<String, Value>) {
    let prefix = if r.group.is_empty() {
        format!("/api/{}", r.version)
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    };
    let collection = if r.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}", r.plural)
    } else {
        format!("{prefix}/{}", r.plural)
    };
    let item = format!("{collection}/{{name}}");
    let id = format!("{}{}", r.kind, if r.namespaced { "Namespaced" } else { "" });
    let list_def = format!("{}List", r.definition);
    let mut scope = Vec::new();
    if r.namespaced {
        scope.push(path_param(
            "namespace",
            "object name and auth scope, such as for teams and projects",
        ));
    }
    let mut item_scope = vec![path_param("name", &format!("name of the {}", r.kind))];
    item_scope.extend(scope.clone());

    let list_params: Vec<Value> = [
        "allowWatchBookmarks",
        "continue",
        "fieldSelector",
        "labelSelector",
        "limit",
        "resourceVersion",
        "resourceVersionMatch",
        "sendInitialEvents",
        "timeoutSeconds",
        "watch",
    ]
    .iter()
    .map(|n| {
        query(
            n,
            n,
            if ["limit", "timeoutSeconds"].contains(n) {
                "integer"
            } else if ["watch", "allowWatchBookmarks", "sendInitialEvents"].contains(n) {
                "boolean"
            } else {
                "string"
            },
        )
    })
    .collect();
    paths.insert(
        collection,
        json!({
            "get": operation(r, "list", &format!("list{id}"), &format!("list or watch objects of kind {}", r.kind), list_params, ok(&list_def), None),
            "post": operation(r, "post", &format!("create{id}"), &format!("create a {}", r.kind), write_params(), ok(&r.definition), Some(body(&r.definition, &["*/*"]))),
            "delete": operation(r, "deletecollection", &format!("deletecollection{id}"), &format!("delete collection of {}", r.kind), vec![], ok("io.k8s.apimachinery.pkg.apis.meta.v1.Status"), Some(body("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions", &["*/*"]))),
            "parameters": scope,
        }),
    );
    let mut patch_params = write_params();
    patch_params.push(query(
        "force",
        "Force is going to \"force\" Apply requests.",
        "boolean",
    ));
    let patch_types = [
        "application/apply-patch+yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
    ];
    let item_ops = |def: &str, what: &str, suffix: &str| {
        json!({
            "get": operation(r, "get", &format!("read{id}{suffix}"), &format!("read {what} of the specified {}", r.kind), vec![], ok(def), None),
            "put": operation(r, "put", &format!("replace{id}{suffix}"), &format!("replace {what} of the specified {}", r.kind), write_params(), ok(def), Some(body(def, &["*/*"]))),
            "patch": operation(r, "patch", &format!("patch{id}{suffix}"), &format!("partially update {what} of the specified {}", r.kind), patch_params.clone(), ok(def), Some(body("io.k8s.apimachinery.pkg.apis.meta.v1.Patch", &patch_types))),
            "parameters": item_scope.clone(),
        })
    };
    let mut main = item_ops(&r.definition, "the", "");
    main["delete"] = operation(
        r,
        "delete",
        &format!("delete{id}"),
        &format!("delete a {}", r.kind),
        vec![query(
            "propagationPolicy",
            "Whether and how garbage collection will be performed.",
            "string",
        )],
        ok("io.k8s.apimachinery.pkg.apis.meta.v1.Status"),
        Some(body(
            "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
            &["*/*"],
        )),
    );
    paths.insert(item.clone(), main);
    if r.has_subresource("status") {
        paths.insert(
            format!("{item}/status"),
            item_ops(&r.definition, "status", "Status"),
        );
    }
    if r.has_subresource("scale") {
        paths.insert(
            format!("{item}/scale"),
            item_ops("io.k8s.api.autoscaling.v1.Scale", "scale", "Scale"),
        );
    }
}

fn hash_of(v: &Value) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.to_string().hash(&mut h);
    format!("{:016X}", h.finish())
}

/// The OpenAPI documents, computed once per registry change.
#[derive(Clone, Debug, Default)]
pub struct Documents {
    /// `api/v1`, `apis/apps/v1` -> document.
    by_group_version: HashMap<String, Value>,
    root: Value,
    v2: Value,
}

fn info() -> Value {
    json!({"title": "Kubernetes", "version": crate::VERSION})
}

impl Documents {
    pub fn build(registry: &Registry, schemas: &Schemas) -> Documents {
        let mut by_group_version = HashMap::new();
        let mut v2_paths = Map::new();
        let mut all_roots = Vec::new();
        for (group, versions) in registry.groups() {
            for version in versions {
                let key = if group.is_empty() {
                    format!("api/{version}")
                } else {
                    format!("apis/{group}/{version}")
                };
                let mut paths = Map::new();
                let mut roots = vec![
                    "io.k8s.apimachinery.pkg.apis.meta.v1.Status".to_string(),
                    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions".into(),
                    "io.k8s.apimachinery.pkg.apis.meta.v1.Patch".into(),
                ];
                for r in registry.of_group_version(&group, &version) {
                    resource_paths(r, &mut paths);
                    roots.push(r.definition.clone());
                    roots.push(format!("{}List", r.definition));
                    if r.scale.is_some() {
                        roots.push("io.k8s.api.autoscaling.v1.Scale".into());
                    }
                }
                all_roots.extend(roots.clone());
                let components: Map<String, Value> = schemas
                    .reachable(roots)
                    .into_iter()
                    .filter_map(|n| schemas.definitions.get(&n).map(|d| (n, d.clone())))
                    .collect();
                v2_paths.extend(paths.clone());
                by_group_version.insert(
                    key,
                    json!({
                        "openapi": "3.0.0",
                        "info": info(),
                        "paths": paths,
                        "components": {"schemas": components},
                    }),
                );
            }
        }
        let root_paths: Map<String, Value> = by_group_version
            .iter()
            .map(|(k, doc)| {
                (
                    k.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{k}?hash={}", hash_of(doc))}),
                )
            })
            .collect();
        let v2_definitions: Map<String, Value> = schemas
            .reachable(all_roots)
            .into_iter()
            .filter_map(|n| schemas.definitions.get(&n).map(|d| (n, to_v2(d))))
            .collect();
        let v2 = json!({
            "swagger": "2.0",
            "info": info(),
            "paths": to_v2(&Value::Object(v2_paths)),
            "definitions": v2_definitions,
        });
        Documents {
            by_group_version,
            root: json!({"paths": root_paths}),
            v2,
        }
    }

    /// `/openapi/v3`.
    pub fn root(&self) -> &Value {
        &self.root
    }

    /// `/openapi/v3/<key>` with key `api/v1` or `apis/<group>/<version>`.
    pub fn group_version(&self, key: &str) -> Option<&Value> {
        self.by_group_version.get(key)
    }

    /// `/openapi/v2`.
    pub fn v2(&self) -> &Value {
        &self.v2
    }
}

/// Rewrites references for Swagger 2.0 (`#/definitions/`).
fn to_v2(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    if k == "$ref" {
                        if let Some(r) = v.as_str().and_then(|r| r.strip_prefix(REF_PREFIX)) {
                            return (k.clone(), Value::from(format!("#/definitions/{r}")));
                        }
                    }
                    (k.clone(), to_v2(v))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(to_v2).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machinery::schema::Shape;

    fn build() -> (Registry, Schemas) {
        let groups = crate::groups::all();
        let registry = Registry::new(groups.iter().flat_map(|g| g.resources.clone()));
        let schemas = Schemas::build(&groups, &registry)
            .expect("every patch metadata entry names a real field");
        (registry, schemas)
    }

    #[test]
    fn pod_schema_carries_patch_metadata_and_gvk() {
        let (registry, schemas) = build();
        let pods = registry.find("", "v1", "pods").expect("pods");
        let pod = schemas.node(&pods).expect("pod schema");
        assert_eq!(
            pod.schema()["x-kubernetes-group-version-kind"],
            json!([{"group": "", "kind": "Pod", "version": "v1"}])
        );
        let containers = pod
            .field("spec")
            .and_then(|s| s.field("containers"))
            .expect("containers");
        assert_eq!(containers.shape(), Shape::List);
        assert_eq!(containers.patch_strategies(), vec!["merge"]);
        assert_eq!(containers.patch_merge_key(), Some("name"));
        assert_eq!(containers.list_type(), "map");
        let env = containers
            .items()
            .and_then(|c| c.field("env"))
            .expect("env");
        assert_eq!(env.patch_merge_key(), Some("name"));
        let finalizers = pod
            .field("metadata")
            .and_then(|m| m.field("finalizers"))
            .expect("finalizers");
        assert_eq!(finalizers.list_type(), "set");
    }

    #[test]
    fn documents_have_patch_operations_with_field_validation() {
        let (registry, schemas) = build();
        let docs = Documents::build(&registry, &schemas);
        let root = docs.root();
        assert!(root["paths"]["api/v1"]["serverRelativeURL"]
            .as_str()
            .expect("url")
            .starts_with("/openapi/v3/api/v1?hash="));
        let apps = docs.group_version("apis/apps/v1").expect("apps");
        let patch =
            &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert!(patch["parameters"]
            .as_array()
            .expect("params")
            .iter()
            .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"));
        assert!(apps["components"]["schemas"]
            .get("io.k8s.api.apps.v1.Deployment")
            .is_some());
        assert!(apps["components"]["schemas"]
            .get("io.k8s.api.apps.v1.DeploymentList")
            .is_some());
        assert!(apps["components"]["schemas"]
            .get("io.k8s.api.core.v1.PodSpec")
            .is_some());
        assert!(apps["components"]["schemas"]
            .get("io.k8s.api.batch.v1.Job")
            .is_none());
        assert!(apps["paths"]
            .get("/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale")
            .is_some());
        let v2 = docs.v2();
        assert_eq!(v2["swagger"], "2.0");
        let text = v2.to_string();
        assert!(!text.contains("#/components/schemas/"));
    }

    #[test]
    fn custom_definition_names() {
        assert_eq!(
            custom_definition_name("stable.example.com", "v1", "CronTab"),
            "com.example.stable.v1.CronTab"
        );
    }
}
