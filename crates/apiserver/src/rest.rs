//! The one generic REST handler every resource is served by: create, get,
//! list, update, the four patches, delete and deletecollection, and the
//! `status` and `scale` subresources, over [`Storage`] and the per-kind
//! behaviour of the [`Registry`](crate::registry).
//!
//! Every write goes the same way: decode (strict or not), check the
//! object's type and identity, default, validate, bump `generation` when
//! the spec changed, record field ownership, then write with the
//! revision it was computed from (a concurrent write is a 409, which a
//! patch without a `resourceVersion` of its own retries).

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::machinery::apply::{self, Manager, Operation};
use crate::machinery::decode::{self, Decoded};
use crate::machinery::table::{self, IncludeObject};
use crate::machinery::validation::{self, FieldError};
use crate::machinery::{fields, labels, patch, strategic};
use crate::model::Model;
use crate::registry::{set_at, value_at, Resource};
use crate::storage::{self, parse_revision, Continue, Storage};

/// The query parameters of a request.
#[derive(Clone, Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn parse(query: Option<&str>) -> Params {
        let pairs = query
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        Params { pairs }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn flag(&self, name: &str) -> bool {
        matches!(self.get(name), Some("true" | "1"))
    }
}

/// Decodes `%XX` and `+` of a URL query or path segment.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a request is about.
pub struct Ctx {
    pub model: Arc<Model>,
    /// Where the model lives, to rebuild it when definitions change.
    pub cell: Arc<crate::model::ModelCell>,
    pub storage: Storage,
    pub resource: Arc<Resource>,
    pub namespace: Option<String>,
    pub params: Params,
    /// The field manager when the request names none (the user agent's
    /// program name, as the real server derives it).
    pub default_manager: String,
    /// How the request body of a create, update or delete is encoded.
    pub format: Format,
}

/// A successful answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    /// `Warning` headers (unknown fields with `fieldValidation=Warn`).
    pub warnings: Vec<String>,
}

impl Reply {
    fn ok(body: Value) -> Reply {
        Reply {
            status: 200,
            body,
            warnings: Vec::new(),
        }
    }
}

/// How a request body is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
    Protobuf,
}

impl Format {
    /// The format of a `Content-Type`; `None` for one not accepted.
    pub fn of(content_type: &str) -> Option<Format> {
        match content_type.split(';').next().unwrap_or("").trim() {
            "" | "application/json" | "*/*" => Some(Format::Json),
            "application/yaml" => Some(Format::Yaml),
            crate::protobuf::MEDIA_TYPE => Some(Format::Protobuf),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Yaml => "yaml",
            Format::Protobuf => "protobuf",
        }
    }
}

/// Which field paths a write may own.
type PathFilter<'a> = Box<dyn Fn(&[String]) -> bool + Send + Sync + 'a>;

/// How unknown and duplicate fields are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

fn now() -> String {
    jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%SZ", jiff::Timestamp::now()).unwrap_or_default()
}

fn random_suffix() -> String {
    // The alphabet of generated names: no vowels, no look-alikes.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("made an object above")
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    meta(obj).and_then(|m| m.get(field)).and_then(Value::as_str)
}

pub fn labels_of(obj: &Value) -> std::collections::BTreeMap<String, String> {
    meta(obj)
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|l| {
            l.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

impl Ctx {
    fn r(&self) -> &Resource {
        &self.resource
    }

    fn ns(&self) -> Option<&str> {
        if self.resource.namespaced {
            self.namespace.as_deref()
        } else {
            None
        }
    }

    fn dry_run(&self) -> bool {
        self.params.get("dryRun") == Some("All")
    }

    fn field_validation(&self) -> Result<FieldValidation, ApiError> {
        match self.params.get("fieldValidation") {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other}. Supported values are: Ignore, Warn, Strict"
            ))),
        }
    }

    fn manager(
        &self,
        operation: Operation,
        subresource: Option<&str>,
    ) -> Result<Manager, ApiError> {
        let name = match self.params.get("fieldManager") {
            Some(m) if !m.is_empty() => m.to_string(),
            _ if operation == Operation::Apply => {
                return Err(ApiError::bad_request(
                    "PATCH, application/apply-patch+yaml requests require fieldManager",
                ))
            }
            _ => self.default_manager.clone(),
        };
        if name.len() > 128 {
            return Err(ApiError::bad_request(
                "fieldManager: Too long: may not be longer than 128",
            ));
        }
        Ok(Manager {
            name,
            operation,
            api_version: self.r().api_version(),
            subresource: subresource.map(String::from),
            time: now(),
        })
    }

    /// Which paths a write through `subresource` may own.
    fn owned_filter(&self, subresource: Option<&str>) -> PathFilter<'_> {
        let split = self.r().status_subresource;
        match subresource {
            Some("status") => Box::new(|p: &[String]| p.first().is_some_and(|f| f == "f:status")),
            _ if split => Box::new(|p: &[String]| p.first().is_none_or(|f| f != "f:status")),
            _ => Box::new(|_: &[String]| true),
        }
    }

    fn kind_name(&self) -> String {
        let r = self.r();
        format!("{} in version \"{}\"", r.kind, r.version)
    }

    /// Parses a request body by its content type.
    fn decode_body(&self, body: &[u8], format: Format) -> Result<Decoded, ApiError> {
        let decoded = match format {
            Format::Json => decode::json(body),
            Format::Yaml => decode::yaml(body),
            Format::Protobuf => crate::protobuf::decode(body, self.model.schemas.definitions())
                .map(|value| Decoded {
                    value,
                    duplicates: Vec::new(),
                }),
        };
        decoded.map_err(|e| {
            ApiError::bad_request(format!(
                "the object provided is unrecognized: couldn't get version/kind; {} parse error: {e}",
                format.name()
            ))
        })
    }

    /// Checks `apiVersion`/`kind` and sets them when missing.
    fn check_type(&self, obj: &mut Value) -> Result<(), ApiError> {
        let r = self.r();
        let Value::Object(m) = obj else {
            return Err(ApiError::bad_request(format!(
                "the object provided is unrecognized: expected an object of kind {}",
                r.kind
            )));
        };
        let api_version = r.api_version();
        match m.get("apiVersion").and_then(Value::as_str) {
            Some(v) if v != api_version => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({api_version})"
                )))
            }
            _ => {
                m.insert("apiVersion".into(), api_version.into());
            }
        }
        match m.get("kind").and_then(Value::as_str) {
            Some(k) if k != r.kind => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    r.kind
                )))
            }
            _ => {
                m.insert("kind".into(), r.kind.clone().into());
            }
        }
        Ok(())
    }

    /// Unknown and duplicate fields: refused (`Strict`), warned about
    /// (`Warn`) or ignored. Unknown fields are dropped in any case.
    fn strict(&self, obj: &Value, duplicates: &[String]) -> Result<Vec<String>, ApiError> {
        let mode = self.field_validation()?;
        if mode == FieldValidation::Ignore {
            return Ok(Vec::new());
        }
        let unknown = match self.model.schemas.node(self.r()) {
            Some(node) => decode::unknown_fields(obj, node),
            None => Vec::new(),
        };
        if mode == FieldValidation::Strict {
            if let Some(reason) = decode::strict_error(&unknown, duplicates) {
                let r = self.r();
                return Err(ApiError::bad_request(format!(
                    "{} cannot be handled as a {}: {reason}",
                    self.kind_name(),
                    r.kind
                )));
            }
            return Ok(Vec::new());
        }
        let mut warnings: Vec<String> = unknown
            .iter()
            .map(|p| format!("unknown field \"{p}\""))
            .collect();
        warnings.extend(
            duplicates
                .iter()
                .map(|p| format!("duplicate field \"{p}\"")),
        );
        Ok(warnings)
    }

    /// The typed round trip: types checked, unknown fields dropped.
    fn normalize(&self, obj: Value) -> Result<Value, ApiError> {
        let mut obj = self.r().behaviour.normalize(obj).map_err(|e| {
            ApiError::bad_request(format!(
                "{} cannot be handled as a {}: {e}",
                self.kind_name(),
                self.r().kind
            ))
        })?;
        decode::drop_empty_collections(&mut obj, self.model.schemas.node(self.r()));
        Ok(obj)
    }

    /// Object metadata checks common to every kind.
    fn validate_meta(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let name = meta_str(obj, "name").unwrap_or("");
        if name.is_empty() {
            errs.push(FieldError::required(
                "metadata.name",
                "name or generateName is required",
            ));
        } else {
            for e in self.r().name_rule.check(name) {
                errs.push(FieldError::invalid("metadata.name", name, e));
            }
        }
        if let Some(labels) = meta(obj)
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object)
        {
            let pairs: Vec<(String, String)> = labels
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect();
            errs.extend(validation::labels(
                pairs.iter().map(|(k, v)| (k, v)),
                "metadata.labels",
            ));
        }
        if let Some(ann) = meta(obj)
            .and_then(|m| m.get("annotations"))
            .and_then(Value::as_object)
        {
            let pairs: Vec<(String, String)> = ann
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect();
            errs.extend(validation::annotations(
                pairs.iter().map(|(k, v)| (k, v)),
                "metadata.annotations",
            ));
        }
        for (i, f) in meta(obj)
            .and_then(|m| m.get("finalizers"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let f = f.as_str().unwrap_or("");
            for e in validation::qualified_name(f) {
                errs.push(FieldError::invalid(
                    format!("metadata.finalizers[{i}]"),
                    f,
                    e,
                ));
            }
        }
        if let Some(old) = old {
            if meta_str(old, "deletionTimestamp").is_some() {
                let before: Vec<&Value> = meta(old)
                    .and_then(|m| m.get("finalizers"))
                    .and_then(Value::as_array)
                    .map(|a| a.iter().collect())
                    .unwrap_or_default();
                for f in meta(obj)
                    .and_then(|m| m.get("finalizers"))
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if !before.contains(&f) {
                        errs.push(FieldError::forbidden("metadata.finalizers", format!("no new finalizers can be added if the object is being deleted, found new finalizers []string{{{f}}}")));
                    }
                }
            }
        }
        errs
    }

    fn invalid(&self, obj: &Value, errs: &[FieldError]) -> ApiError {
        let r = self.r();
        ApiError::invalid(&r.group, &r.kind, meta_str(obj, "name").unwrap_or(""), errs)
    }

    /// A namespaced write needs its namespace to exist and not be going.
    async fn check_namespace(&self) -> Result<(), ApiError> {
        let Some(ns) = self.ns() else {
            return Ok(());
        };
        let namespaces = self
            .model
            .registry
            .find("", "v1", "namespaces")
            .ok_or_else(|| ApiError::internal("namespaces are not registered"))?;
        match self.storage.get(&namespaces, None, ns).await? {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(n) if meta_str(&n, "deletionTimestamp").is_some() => Err(ApiError::forbidden(
                &self.r().group,
                &self.r().plural,
                "",
                &format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            )),
            Some(_) => Ok(()),
        }
    }

    // ------------------------------------------------------------ reads

    pub async fn get(&self, name: &str) -> Result<Value, ApiError> {
        self.storage.must_get(self.r(), self.ns(), name).await
    }

    /// The label and field selectors of a list or watch, checked.
    pub fn selectors(&self) -> Result<(labels::Selector, fields::Selector), ApiError> {
        let l = labels::Selector::parse(self.params.get("labelSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        let f = fields::Selector::parse(self.params.get("fieldSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        f.check_supported(&self.r().field_labels())
            .map_err(ApiError::bad_request)?;
        Ok((l, f))
    }

    /// Whether `obj` passes the selectors.
    pub fn matcher(
        &self,
        l: labels::Selector,
        f: fields::Selector,
    ) -> impl Fn(&Value) -> bool + Send + Sync + 'static {
        let resource = self.resource.clone();
        move |obj: &Value| {
            l.matches(&labels_of(obj)) && f.matches(|field| resource.field_value(obj, field))
        }
    }

    pub async fn list(&self) -> Result<Value, ApiError> {
        let (l, f) = self.selectors()?;
        let limit = match self.params.get("limit") {
            None | Some("") => 0,
            Some(n) => n
                .parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit: {n:?}")))?
                .max(0) as usize,
        };
        let mut revision = 0;
        let mut after = None;
        if let Some(token) = self.params.get("continue").filter(|t| !t.is_empty()) {
            let c = Continue::decode(token)?;
            revision = c.revision;
            after = Some(c.after);
        } else if let Some(rv) = self
            .params
            .get("resourceVersion")
            .filter(|v| !v.is_empty() && *v != "0")
        {
            let n = parse_revision(rv)?;
            match self.params.get("resourceVersionMatch") {
                Some("Exact") => revision = n,
                Some("NotOlderThan") | None | Some("") => {
                    let current = self.storage.revision().await?;
                    if n > current {
                        return Err(ApiError::timeout(format!(
                            "Too large resource version: {n}, current: {current}"
                        )));
                    }
                }
                Some(other) => {
                    return Err(ApiError::bad_request(format!(
                        "resourceVersionMatch: Unsupported value: {other:?}"
                    )))
                }
            }
        }
        let keep = self.matcher(l, f);
        let page = match self.storage.list(self.r(), self.ns(), limit, revision, after.as_deref(), &keep).await {
            Err(e) if e.code == 410 && after.is_some() => {
                return Err(ApiError::expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                ))
            }
            other => other?,
        };
        let mut list_meta = json!({"resourceVersion": page.revision.to_string()});
        if let Some(next) = &page.next {
            list_meta["continue"] = next.encode().into();
        }
        Ok(json!({
            "kind": self.r().list_kind,
            "apiVersion": self.r().api_version(),
            "metadata": list_meta,
            "items": page.items,
        }))
    }

    /// A list or an object as a Table.
    pub fn table(&self, value: &Value) -> Result<Value, ApiError> {
        let include = IncludeObject::parse(self.params.get("includeObject"))
            .map_err(ApiError::bad_request)?;
        let columns = self.r().behaviour.columns();
        let now = jiff::Timestamp::now();
        let row = |obj: &Value| {
            (
                self.r().behaviour.row(obj, now),
                table::row_object(obj, include),
            )
        };
        let (rows, list_meta) = match value.get("items").and_then(Value::as_array) {
            Some(items) => (items.iter().map(row).collect(), value["metadata"].clone()),
            None => (
                vec![row(value)],
                json!({"resourceVersion": meta_str(value, "resourceVersion").unwrap_or("")}),
            ),
        };
        Ok(table::table(&columns, rows, list_meta))
    }

    // ------------------------------------------------------------ create

    pub async fn create(&self, body: &[u8]) -> Result<Reply, ApiError> {
        let decoded = self.decode_body(body, self.format)?;
        let mut obj = decoded.value;
        self.check_type(&mut obj)?;
        let warnings = self.strict(&obj, &decoded.duplicates)?;
        let obj = self.normalize(obj)?;
        let manager = self.manager(Operation::Update, None)?;
        let mut created = self.create_object(obj, Some(&manager)).await?;
        if !self.dry_run() {
            created = self.after_create(created).await?;
        }
        Ok(Reply {
            status: 201,
            body: created,
            warnings,
        })
    }

    /// Sets up a new object's metadata, defaults, validates and stores it;
    /// `manager` records its fields (none: the caller did, as apply does).
    async fn create_object(
        &self,
        mut obj: Value,
        manager: Option<&Manager>,
    ) -> Result<Value, ApiError> {
        let r = self.resource.clone();
        {
            let m = meta_mut(&mut obj);
            if r.namespaced {
                let url_ns = self.namespace.clone().unwrap_or_default();
                match m.get("namespace").and_then(Value::as_str) {
                    Some(ns) if !ns.is_empty() && ns != url_ns => {
                        return Err(ApiError::bad_request(
                            "the namespace of the provided object does not match the namespace sent on the request",
                        ))
                    }
                    _ => {
                        m.insert("namespace".into(), url_ns.into());
                    }
                }
            } else {
                m.remove("namespace");
            }
            let name = m
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if name.is_empty() {
                if let Some(prefix) = m
                    .get("generateName")
                    .and_then(Value::as_str)
                    .filter(|p| !p.is_empty())
                {
                    let name = format!("{prefix}{}", random_suffix());
                    m.insert("name".into(), name.into());
                }
            }
            m.insert("uid".into(), uuid::Uuid::new_v4().to_string().into());
            m.insert("creationTimestamp".into(), now().into());
            for field in [
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
            ] {
                m.remove(field);
            }
            // Ownership is the server's to record (an apply brings its own).
            if manager.is_some() {
                m.remove("managedFields");
            }
            if r.generation {
                m.insert("generation".into(), 1.into());
            } else {
                m.remove("generation");
            }
        }
        self.check_namespace().await?;
        r.behaviour.default(&mut obj, true);
        decode::drop_empty_collections(&mut obj, self.model.schemas.node(&r));
        let mut errs = self.validate_meta(&obj, None);
        errs.extend(r.behaviour.validate(&obj, None));
        if !errs.is_empty() {
            return Err(self.invalid(&obj, &errs));
        }
        self.admit_create(&mut obj).await?;
        if let Some(manager) = manager {
            let filter = self.owned_filter(None);
            apply::record_update(
                None,
                &mut obj,
                self.model.schemas.node(&r),
                manager,
                &*filter,
            );
        }
        if self.dry_run() {
            return Ok(obj);
        }
        let name = meta_str(&obj, "name").unwrap_or("").to_string();
        self.storage.create(&r, self.ns(), &name, &obj).await
    }

    /// Kind-specific admission at create: a service's cluster IP.
    async fn admit_create(&self, obj: &mut Value) -> Result<(), ApiError> {
        let r = self.r();
        if r.group.is_empty() && r.plural == "services" {
            let ty = obj["spec"]["type"]
                .as_str()
                .unwrap_or("ClusterIP")
                .to_string();
            let ip = obj["spec"]["clusterIP"].as_str().unwrap_or("").to_string();
            if ty != "ExternalName" && ip.is_empty() {
                let all = self.storage.list(r, None, 0, 0, None, &|_| true).await?;
                let in_use: Vec<String> = all
                    .items
                    .iter()
                    .filter_map(|s| s["spec"]["clusterIP"].as_str().map(String::from))
                    .collect();
                let ip = crate::groups::core::allocate_cluster_ip(&in_use)
                    .ok_or_else(|| ApiError::internal("the service IP range is full"))?;
                obj["spec"]["clusterIP"] = ip.clone().into();
                obj["spec"]["clusterIPs"] = json!([ip]);
            } else if ty != "ExternalName" && ip != "None" {
                obj["spec"]["clusterIPs"] = json!([ip]);
            }
            if matches!(ty.as_str(), "NodePort" | "LoadBalancer") {
                let mut next = 30000 + (uuid::Uuid::new_v4().as_u128() % 2000) as i64;
                if let Some(ports) = obj["spec"]["ports"].as_array_mut() {
                    for p in ports {
                        if p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) == 0 {
                            p["nodePort"] = next.into();
                            next += 1;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// What follows a create: a namespace gets its `default` service
    /// account, as the service account controller makes it.
    async fn after_create(&self, created: Value) -> Result<Value, ApiError> {
        let r = self.r();
        if r.group.is_empty() && r.plural == "namespaces" {
            if let Some(sa) = self.model.registry.find("", "v1", "serviceaccounts") {
                let ns = meta_str(&created, "name").unwrap_or("").to_string();
                let obj = json!({
                    "apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": "default", "namespace": ns, "uid": uuid::Uuid::new_v4().to_string(), "creationTimestamp": now()},
                });
                match self.storage.create(&sa, Some(&ns), "default", &obj).await {
                    Ok(_) => {}
                    Err(e) if e.reason == "AlreadyExists" => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(created)
    }

    // ------------------------------------------------------------ updates

    /// `PUT` of an object or its status/scale.
    pub async fn update(
        &self,
        name: &str,
        body: &[u8],
        subresource: Option<&str>,
    ) -> Result<Reply, ApiError> {
        let decoded = self.decode_body(body, self.format)?;
        if subresource == Some("scale") {
            let scale = decoded.value;
            let current = self.get(name).await?;
            if let Some(rv) = storage::object_revision(&scale) {
                if Some(rv) != storage::object_revision(&current) {
                    return Err(ApiError::stale(&self.r().group, &self.r().plural, name));
                }
            }
            let updated = self.write_scale(name, current, &scale).await?;
            return Ok(Reply::ok(updated));
        }
        let mut obj = decoded.value;
        self.check_type(&mut obj)?;
        let warnings = self.strict(&obj, &decoded.duplicates)?;
        let obj = self.normalize(obj)?;
        match meta_str(&obj, "name") {
            Some(n) if n == name => {}
            Some(n) => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )))
            }
            None => {}
        }
        let current = self.get(name).await?;
        if let Some(rv) = storage::object_revision(&obj) {
            if Some(rv) != storage::object_revision(&current) {
                return Err(ApiError::stale(&self.r().group, &self.r().plural, name));
            }
        }
        let manager = self.manager(Operation::Update, subresource)?;
        let new = self.prepare_update(&current, obj, subresource, Some(&manager))?;
        let written = self.write_update(name, &current, new).await?;
        Ok(Reply {
            status: 200,
            body: written,
            warnings,
        })
    }

    /// The new state of an update of `current` to `new`: system metadata
    /// kept, status or spec kept per subresource, defaults, validation,
    /// generation and (with a manager) field ownership.
    fn prepare_update(
        &self,
        current: &Value,
        mut new: Value,
        subresource: Option<&str>,
        manager: Option<&Manager>,
    ) -> Result<Value, ApiError> {
        let r = self.resource.clone();
        if subresource == Some("status") {
            let status = new.get("status").cloned();
            let mut merged = current.clone();
            match status {
                Some(s) => merged["status"] = s,
                None => {
                    if let Some(m) = merged.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            if let Some(mf) = meta(&new).and_then(|m| m.get("managedFields")).cloned() {
                meta_mut(&mut merged).insert("managedFields".into(), mf);
            }
            new = merged;
        } else if r.status_subresource {
            match current.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        {
            let old_meta = meta(current).cloned().unwrap_or_default();
            let m = meta_mut(&mut new);
            for field in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "resourceVersion",
            ] {
                match old_meta.get(field) {
                    Some(v) => {
                        m.insert(field.into(), v.clone());
                    }
                    None => {
                        m.remove(field);
                    }
                }
            }
            if manager.is_some() || !m.contains_key("managedFields") {
                match old_meta.get("managedFields") {
                    Some(v) => {
                        m.insert("managedFields".into(), v.clone());
                    }
                    None => {
                        m.remove("managedFields");
                    }
                }
            }
        }
        r.behaviour.default(&mut new, false);
        decode::drop_empty_collections(&mut new, self.model.schemas.node(&r));
        let mut errs = self.validate_meta(&new, Some(current));
        errs.extend(r.behaviour.validate(&new, Some(current)));
        if !errs.is_empty() {
            return Err(self.invalid(&new, &errs));
        }
        if r.generation && spec_changed(current, &new) {
            let g = meta(current)
                .and_then(|m| m.get("generation"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta_mut(&mut new).insert("generation".into(), (g + 1).into());
        }
        if let Some(manager) = manager {
            let filter = self.owned_filter(subresource);
            apply::record_update(
                Some(current),
                &mut new,
                self.model.schemas.node(&r),
                manager,
                &*filter,
            );
        }
        Ok(new)
    }

    /// Writes `new` over `current` unless nothing changed; an object being
    /// deleted whose last finalizer went is deleted.
    async fn write_update(
        &self,
        name: &str,
        current: &Value,
        new: Value,
    ) -> Result<Value, ApiError> {
        if same_ignoring_bookkeeping(current, &new) {
            return Ok(current.clone());
        }
        if self.dry_run() {
            return Ok(new);
        }
        let expected = storage::object_revision(current)
            .map(parse_revision)
            .transpose()?
            .unwrap_or(0);
        let finalizers_left = meta(&new)
            .and_then(|m| m.get("finalizers"))
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if meta_str(&new, "deletionTimestamp").is_some()
            && !finalizers_left
            && !self.waits_for_namespace_finalizers(&new)
        {
            return self
                .storage
                .delete(self.r(), self.ns(), name, Some(expected))
                .await;
        }
        self.storage
            .update(self.r(), self.ns(), name, &new, expected)
            .await
    }

    /// A namespace also waits for its `spec.finalizers`.
    fn waits_for_namespace_finalizers(&self, obj: &Value) -> bool {
        let r = self.r();
        r.group.is_empty()
            && r.plural == "namespaces"
            && obj["spec"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty())
    }

    // ------------------------------------------------------------ patches

    pub async fn patch(
        &self,
        name: &str,
        body: &[u8],
        content_type: &str,
        subresource: Option<&str>,
    ) -> Result<Reply, ApiError> {
        let kind = content_type.split(';').next().unwrap_or("").trim();
        let custom = self.r().custom_schema.is_some();
        let mut accepted = vec![
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/apply-patch+yaml",
        ];
        if !custom {
            accepted.insert(2, "application/strategic-merge-patch+json");
        }
        if !accepted.contains(&kind) {
            return Err(ApiError::unsupported_media_type(&accepted));
        }
        if kind == "application/apply-patch+yaml" {
            return self.apply(name, body, subresource).await;
        }
        let patch_doc = self.decode_body(body, Format::Json)?;
        let manager = self.manager(Operation::Update, subresource)?;
        let mut warnings = Vec::new();
        // A patch without its own resourceVersion is retried when another
        // write got in between.
        for _attempt in 0..8 {
            let current = self.get(name).await?;
            let base = if subresource == Some("scale") {
                self.scale_of(&current)?
            } else {
                current.clone()
            };
            let mut patched = match kind {
                "application/json-patch+json" => {
                    let mut doc = base.clone();
                    patch::json_patch(&mut doc, &patch_doc.value)
                        .map_err(|e| invalid_patch(e.to_string()))?;
                    doc
                }
                "application/merge-patch+json" => {
                    if !patch_doc.value.is_object() {
                        return Err(ApiError::bad_request("the patch is not a JSON object"));
                    }
                    let mut doc = base.clone();
                    patch::merge_patch(&mut doc, &patch_doc.value);
                    doc
                }
                _ => {
                    let node = if subresource == Some("scale") {
                        None
                    } else {
                        self.model.schemas.node(self.r())
                    };
                    strategic::apply(&base, &patch_doc.value, node)
                        .map_err(|e| ApiError::bad_request(e.to_string()))?
                }
            };
            let explicit_rv = storage::object_revision(&patched) != storage::object_revision(&base);
            if explicit_rv && storage::object_revision(&patched).is_some() {
                return Err(ApiError::stale(&self.r().group, &self.r().plural, name));
            }
            if subresource == Some("scale") {
                match self.write_scale(name, current, &patched).await {
                    Err(e) if e.reason == "Conflict" && !explicit_rv => continue,
                    other => return other.map(Reply::ok),
                }
            }
            if patched.get("kind") != base.get("kind")
                || patched.get("apiVersion") != base.get("apiVersion")
            {
                return Err(ApiError::bad_request(
                    "a patch may not change the object's apiVersion or kind",
                ));
            }
            if meta_str(&patched, "name") != Some(name) {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    meta_str(&patched, "name").unwrap_or("")
                )));
            }
            warnings = self.strict(&patched, &patch_doc.duplicates)?;
            patched = self.normalize(patched)?;
            let new = self.prepare_update(&current, patched, subresource, Some(&manager))?;
            match self.write_update(name, &current, new).await {
                Err(e) if e.reason == "Conflict" => continue,
                Err(e) => return Err(e),
                Ok(written) => {
                    return Ok(Reply {
                        status: 200,
                        body: written,
                        warnings,
                    })
                }
            }
        }
        let _ = warnings;
        Err(ApiError::conflict(
            &self.r().group,
            &self.r().plural,
            name,
            "too many concurrent writes, try again",
        ))
    }

    /// Server-side apply (`application/apply-patch+yaml`).
    async fn apply(
        &self,
        name: &str,
        body: &[u8],
        subresource: Option<&str>,
    ) -> Result<Reply, ApiError> {
        let decoded = self.decode_body(body, Format::Yaml)?;
        let mut config = decoded.value;
        self.check_type(&mut config)?;
        if meta_str(&config, "name").is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta_str(&config, "name").unwrap_or("")
            )));
        }
        let warnings = self.strict(&config, &decoded.duplicates)?;
        let config = self.normalize(config)?;
        let manager = self.manager(Operation::Apply, subresource)?;
        let force = self.params.flag("force");
        let r = self.resource.clone();
        for _attempt in 0..8 {
            let current = self.storage.get(&r, self.ns(), name).await?;
            let live = match &current {
                Some(c) => c.clone(),
                None => {
                    json!({"apiVersion": r.api_version(), "kind": r.kind, "metadata": {"name": name}})
                }
            };
            let filter = self.owned_filter(subresource);
            let merged = apply::apply(
                &live,
                &config,
                self.model.schemas.node(&r),
                &manager,
                force,
                &*filter,
            )
            .map_err(|conflicts| {
                ApiError::apply_conflicts(&r.group, &r.plural, name, &conflicts)
            })?;
            let Some(current) = current else {
                if subresource.is_some() {
                    return Err(ApiError::not_found(&r.group, &r.plural, name));
                }
                let created = self.create_object(merged, None).await?;
                let created = if self.dry_run() {
                    created
                } else {
                    self.after_create(created).await?
                };
                return Ok(Reply {
                    status: 201,
                    body: created,
                    warnings,
                });
            };
            let new = self.prepare_update(&current, merged, subresource, None)?;
            match self.write_update(name, &current, new).await {
                Err(e) if e.reason == "Conflict" => continue,
                Err(e) => return Err(e),
                Ok(written) => {
                    return Ok(Reply {
                        status: 200,
                        body: written,
                        warnings,
                    })
                }
            }
        }
        Err(ApiError::conflict(
            &r.group,
            &r.plural,
            name,
            "too many concurrent writes, try again",
        ))
    }

    // ------------------------------------------------------------ scale

    /// The `autoscaling/v1` Scale of an object.
    pub fn scale_of(&self, obj: &Value) -> Result<Value, ApiError> {
        let paths = self.r().scale.clone().ok_or_else(ApiError::no_route)?;
        let replicas = value_at(obj, &paths.spec_replicas)
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let status_replicas = value_at(obj, &paths.status_replicas)
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let selector = match &paths.selector {
            Some((path, true)) => value_at(obj, path)
                .and_then(|s| {
                    serde_json::from_value::<
                        k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
                    >(s.clone())
                    .ok()
                })
                .and_then(|s| labels::Selector::from_label_selector(&s).ok())
                .map(|s| s.to_string()),
            Some((path, false)) => value_at(obj, path)
                .and_then(Value::as_str)
                .map(String::from),
            None => None,
        };
        let m = meta(obj).cloned().unwrap_or_default();
        let mut scale_meta = Map::new();
        for field in [
            "name",
            "namespace",
            "uid",
            "resourceVersion",
            "creationTimestamp",
        ] {
            if let Some(v) = m.get(field) {
                scale_meta.insert(field.into(), v.clone());
            }
        }
        let mut status = json!({"replicas": status_replicas});
        if let Some(s) = selector {
            status["selector"] = s.into();
        }
        Ok(json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": scale_meta,
            "spec": {"replicas": replicas},
            "status": status,
        }))
    }

    async fn write_scale(
        &self,
        name: &str,
        current: Value,
        scale: &Value,
    ) -> Result<Value, ApiError> {
        let paths = self.r().scale.clone().ok_or_else(ApiError::no_route)?;
        let replicas = match scale.get("spec").and_then(|s| s.get("replicas")) {
            None => 0,
            Some(v) => v
                .as_i64()
                .filter(|n| *n >= 0 && *n <= i32::MAX as i64)
                .ok_or_else(|| {
                    ApiError::invalid(
                        "autoscaling",
                        "Scale",
                        name,
                        &[FieldError::invalid(
                            "spec.replicas",
                            v.clone(),
                            "must be greater than or equal to 0",
                        )],
                    )
                })?,
        };
        let mut new = current.clone();
        set_at(&mut new, &paths.spec_replicas, replicas.into());
        let manager = self.manager(Operation::Update, Some("scale"))?;
        let mut prepared = self.prepare_update(&current, new, None, None)?;
        let filter = |p: &[String]| p.first().is_none_or(|f| f != "f:status");
        apply::record_update(
            Some(&current),
            &mut prepared,
            self.model.schemas.node(self.r()),
            &manager,
            &filter,
        );
        let written = self.write_update(name, &current, prepared).await?;
        self.scale_of(&written)
    }

    // ------------------------------------------------------------ deletes

    /// `DELETE` of one object, honouring preconditions, finalizers and the
    /// propagation policy.
    pub async fn delete(&self, name: &str, body: &[u8]) -> Result<Reply, ApiError> {
        let options: Value = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            self.decode_body(body, self.format)?.value
        };
        for _attempt in 0..8 {
            let current = self.get(name).await?;
            match self.delete_object(name, &current, &options).await {
                Err(e) if e.reason == "Conflict" && options.get("preconditions").is_none() => {
                    continue
                }
                other => return other.map(Reply::ok),
            }
        }
        Err(ApiError::conflict(
            &self.r().group,
            &self.r().plural,
            name,
            "too many concurrent writes, try again",
        ))
    }

    async fn delete_object(
        &self,
        name: &str,
        current: &Value,
        options: &Value,
    ) -> Result<Value, ApiError> {
        let r = self.resource.clone();
        if let Some(pre) = options.get("preconditions") {
            if let Some(uid) = pre.get("uid").and_then(Value::as_str) {
                let have = meta_str(current, "uid").unwrap_or("");
                if uid != have {
                    return Err(ApiError::conflict(&r.group, &r.plural, name, &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {have}")));
                }
            }
            if let Some(rv) = pre.get("resourceVersion").and_then(Value::as_str) {
                let have = storage::object_revision(current).unwrap_or("");
                if rv != have {
                    return Err(ApiError::conflict(&r.group, &r.plural, name, &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {have}")));
                }
            }
        }
        let policy = self
            .params
            .get("propagationPolicy")
            .map(String::from)
            .or_else(|| {
                options
                    .get("propagationPolicy")
                    .and_then(Value::as_str)
                    .map(String::from)
            });
        let orphan_dependents = options.get("orphanDependents").and_then(Value::as_bool);
        let policy = match (policy.as_deref(), orphan_dependents) {
            (Some(p @ ("Background" | "Foreground" | "Orphan")), _) => p.to_string(),
            (Some(other), _) => {
                return Err(ApiError::invalid(
                    &r.group,
                    "DeleteOptions",
                    "",
                    &[FieldError::not_supported(
                        "propagationPolicy",
                        other,
                        &["Foreground", "Background", "Orphan"],
                    )],
                ))
            }
            (None, Some(true)) => "Orphan".into(),
            (None, _) => "Background".into(),
        };
        if meta_str(current, "deletionTimestamp").is_some() {
            // Already going. A pod's node ends its grace period by deleting
            // it again with gracePeriodSeconds=0 (the kubelet's last step),
            // which removes it once no finalizer is left.
            let now = self
                .params
                .get("gracePeriodSeconds")
                .and_then(|g| g.parse::<i64>().ok())
                .or_else(|| options.get("gracePeriodSeconds").and_then(Value::as_i64))
                == Some(0);
            let pod = r.group.is_empty() && r.plural == "pods";
            let finalized = meta(current)
                .and_then(|m| m.get("finalizers"))
                .and_then(Value::as_array)
                .is_none_or(|f| f.is_empty());
            if pod && now && finalized && !self.dry_run() {
                let expected = storage::object_revision(current)
                    .map(parse_revision)
                    .transpose()?;
                return self.storage.delete(&r, self.ns(), name, expected).await;
            }
            // Otherwise nothing more to do but answer.
            return Ok(current.clone());
        }
        let mut new = current.clone();
        let mut finalizers: Vec<Value> = meta(current)
            .and_then(|m| m.get("finalizers"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let add = match policy.as_str() {
            "Foreground" => Some("foregroundDeletion"),
            "Orphan" => Some("orphan"),
            _ => None,
        };
        if let Some(f) = add {
            if !finalizers.iter().any(|x| x == f) {
                finalizers.push(f.into());
            }
        }
        let namespace_going = r.group.is_empty() && r.plural == "namespaces";
        let pod_on_node = r.group.is_empty()
            && r.plural == "pods"
            && current["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| !n.is_empty());
        let grace = self
            .params
            .get("gracePeriodSeconds")
            .and_then(|g| g.parse::<i64>().ok())
            .or_else(|| options.get("gracePeriodSeconds").and_then(Value::as_i64));
        let pod_grace = if pod_on_node {
            grace.unwrap_or_else(|| {
                current["spec"]["terminationGracePeriodSeconds"]
                    .as_i64()
                    .unwrap_or(30)
            })
        } else {
            0
        };
        if finalizers.is_empty() && !namespace_going && pod_grace == 0 {
            if self.dry_run() {
                return Ok(current.clone());
            }
            let expected = storage::object_revision(current)
                .map(parse_revision)
                .transpose()?;
            return self.storage.delete(&r, self.ns(), name, expected).await;
        }
        {
            let m = meta_mut(&mut new);
            m.insert("finalizers".into(), Value::Array(finalizers.clone()));
            if finalizers.is_empty() {
                m.remove("finalizers");
            }
            let when = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(pod_grace);
            m.insert(
                "deletionTimestamp".into(),
                jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%SZ", when)
                    .unwrap_or_default()
                    .into(),
            );
            m.insert("deletionGracePeriodSeconds".into(), pod_grace.into());
        }
        if namespace_going {
            new["status"]["phase"] = "Terminating".into();
        }
        if self.dry_run() {
            return Ok(new);
        }
        let expected = storage::object_revision(current)
            .map(parse_revision)
            .transpose()?
            .unwrap_or(0);
        self.storage
            .update(&r, self.ns(), name, &new, expected)
            .await
    }

    /// `DELETE` of a collection: every object the selectors match.
    pub async fn delete_collection(&self, body: &[u8]) -> Result<Reply, ApiError> {
        let options: Value = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            self.decode_body(body, self.format)?.value
        };
        let (l, f) = self.selectors()?;
        let keep = self.matcher(l, f);
        let page = self
            .storage
            .list(self.r(), self.ns(), 0, 0, None, &keep)
            .await?;
        let mut deleted = Vec::new();
        for obj in page.items {
            let name = meta_str(&obj, "name").unwrap_or("").to_string();
            match self.delete_object(&name, &obj, &options).await {
                Ok(d) => deleted.push(d),
                Err(e) if e.reason == "NotFound" => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Reply::ok(json!({
            "kind": self.r().list_kind,
            "apiVersion": self.r().api_version(),
            "metadata": {},
            "items": deleted,
        })))
    }

    // ------------------------------------------------------------ pods

    /// `POST pods/NAME/binding`: assigns the pod to a node.
    pub async fn bind(&self, name: &str, body: &[u8]) -> Result<Reply, ApiError> {
        let binding = self.decode_body(body, self.format)?.value;
        let node = binding["target"]["name"].as_str().unwrap_or("").to_string();
        if node.is_empty() {
            return Err(ApiError::invalid(
                "",
                "Binding",
                name,
                &[FieldError::required("target.name", "")],
            ));
        }
        for _attempt in 0..8 {
            let current = self.get(name).await?;
            if let Some(n) = current["spec"]["nodeName"]
                .as_str()
                .filter(|n| !n.is_empty())
            {
                return Err(ApiError::conflict(
                    "",
                    "pods",
                    name,
                    &format!("pod {name} is already assigned to node \"{n}\""),
                ));
            }
            let mut new = current.clone();
            new["spec"]["nodeName"] = node.clone().into();
            let expected = storage::object_revision(&current)
                .map(parse_revision)
                .transpose()?
                .unwrap_or(0);
            match self
                .storage
                .update(self.r(), self.ns(), name, &new, expected)
                .await
            {
                Err(e) if e.reason == "Conflict" => continue,
                Err(e) => return Err(e),
                Ok(_) => {
                    return Ok(Reply {
                        status: 201,
                        body: json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
                        warnings: Vec::new(),
                    })
                }
            }
        }
        Err(ApiError::conflict(
            "",
            "pods",
            name,
            "too many concurrent writes, try again",
        ))
    }

    /// `POST pods/NAME/eviction`: deletes the pod (no disruption budgets
    /// are kept yet, so every eviction is allowed).
    pub async fn evict(&self, name: &str, body: &[u8]) -> Result<Reply, ApiError> {
        let eviction = self.decode_body(body, self.format)?.value;
        let options = eviction
            .get("deleteOptions")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let current = self.get(name).await?;
        self.delete_object(name, &current, &options).await?;
        Ok(Reply {
            status: 201,
            body: json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            warnings: Vec::new(),
        })
    }
}

fn invalid_patch(message: String) -> ApiError {
    ApiError {
        code: 422,
        reason: "Invalid",
        message,
        details: None,
    }
}

/// Whether anything but metadata and status differs.
fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
        }
        v
    };
    strip(old) != strip(new)
}

/// Equal but for the revision and the times of field ownership.
fn same_ignoring_bookkeeping(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            if let Some(Value::Array(entries)) = m.get_mut("managedFields") {
                for e in entries {
                    if let Some(e) = e.as_object_mut() {
                        e.remove("time");
                    }
                }
            }
        }
        v
    };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters() {
        let p = Params::parse(Some(
            "labelSelector=app%3Dweb%2Ctier+in+%28a%29&limit=500&watch=true&empty=",
        ));
        assert_eq!(p.get("labelSelector"), Some("app=web,tier in (a)"));
        assert_eq!(p.get("limit"), Some("500"));
        assert!(p.flag("watch"));
        assert_eq!(p.get("empty"), Some(""));
        assert_eq!(p.get("missing"), None);
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn spec_changes_and_bookkeeping() {
        let a = json!({"metadata": {"resourceVersion": "1", "labels": {"a": "b"}}, "spec": {"replicas": 1}, "status": {"x": 1}});
        let mut b = a.clone();
        b["status"]["x"] = 2.into();
        b["metadata"]["labels"]["a"] = "c".into();
        assert!(!spec_changed(&a, &b));
        b["spec"]["replicas"] = 2.into();
        assert!(spec_changed(&a, &b));
        let mut c = a.clone();
        c["metadata"]["resourceVersion"] = "2".into();
        assert!(same_ignoring_bookkeeping(&a, &c));
    }

    #[test]
    fn generated_name_suffixes() {
        let s = random_suffix();
        assert_eq!(s.len(), 5);
        assert!(s
            .bytes()
            .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b)));
    }
}
