//! Server-side apply and field ownership (`metadata.managedFields`).
//!
//! Every write records which manager set which fields. An update (create,
//! PUT, a non-apply PATCH) gives its manager the fields it changed and
//! takes them from everyone else. An apply (`application/apply-patch+yaml`)
//! declares the whole set of fields its manager wants: the configuration
//! is merged into the live object along the schema (structs and granular
//! maps field by field, `map` lists by their keys, `set` lists as unions,
//! everything else replaced), a field another manager owns whose value
//! would change is a conflict (HTTP 409) unless forced, which moves it to
//! the applier, and fields the manager applied before but no longer
//! declares are removed when nobody else owns them.

use serde_json::{Map, Value};

use super::fieldset::{self, list_key, list_kind, member, FieldSet, ListKind, Path};
use super::schema::Node;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// Who writes, and how.
#[derive(Clone, Debug)]
pub struct Manager {
    pub name: String,
    pub operation: Operation,
    /// The group/version the write was made in (`apps/v1`, `v1`).
    pub api_version: String,
    /// `status` for writes through that subresource.
    pub subresource: Option<String>,
    /// RFC 3339, recorded as the entry's `time`.
    pub time: String,
}

/// One entry of `managedFields`.
#[derive(Clone, Debug)]
struct Entry {
    manager: String,
    operation: Operation,
    api_version: String,
    subresource: Option<String>,
    time: String,
    fields: FieldSet,
}

impl Entry {
    fn is(&self, m: &Manager) -> bool {
        self.manager == m.name && self.operation == m.operation && self.subresource == m.subresource
    }
}

/// A field another manager owns whose value an apply would change.
#[derive(Clone, Debug, PartialEq)]
pub struct Conflict {
    pub manager: String,
    pub api_version: String,
    /// The owner's subresource (`scale`), if it wrote through one.
    pub subresource: Option<String>,
    /// When an updating (not applying) owner wrote.
    pub time: Option<String>,
    /// `.spec.replicas`
    pub field: String,
}

/// The message of a 409 for `conflicts`, as the real server words it.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [one] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            one.owner(),
            one.field
        );
    }
    let mut owners: Vec<String> = conflicts.iter().map(Conflict::owner).collect();
    owners.dedup();
    let groups: Vec<String> = owners
        .iter()
        .map(|owner| {
            let mut group = format!("conflicts with {owner}:");
            for c in conflicts.iter().filter(|c| &c.owner() == owner) {
                group.push_str(&format!("\n- {}", c.field));
            }
            group
        })
        .collect();
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        groups.join("\n")
    )
}

impl Conflict {
    /// The owner as the real server names it: `"kubectl" with subresource
    /// "scale" using apps/v1 at 2026-01-01T00:00:00Z` (the time for
    /// updaters only).
    pub fn owner(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            s.push_str(&format!(" with subresource {sub:?}"));
        }
        s.push_str(&format!(" using {}", self.api_version));
        if let Some(t) = &self.time {
            s.push_str(&format!(" at {t}"));
        }
        s
    }
}

fn read_entries(obj: &Value) -> Vec<Entry> {
    let Some(items) = obj
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|e| {
            let fields = FieldSet::from_fields_v1(e.get("fieldsV1")?).ok()?;
            Some(Entry {
                manager: e.get("manager")?.as_str()?.to_string(),
                operation: match e.get("operation")?.as_str()? {
                    "Apply" => Operation::Apply,
                    _ => Operation::Update,
                },
                api_version: e
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                subresource: e
                    .get("subresource")
                    .and_then(Value::as_str)
                    .map(String::from),
                time: e
                    .get("time")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                fields,
            })
        })
        .collect()
}

fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut m = Map::new();
            m.insert("manager".into(), e.manager.clone().into());
            m.insert("operation".into(), e.operation.as_str().into());
            m.insert("apiVersion".into(), e.api_version.clone().into());
            m.insert("time".into(), e.time.clone().into());
            m.insert("fieldsType".into(), "FieldsV1".into());
            m.insert("fieldsV1".into(), e.fields.to_fields_v1());
            if let Some(s) = &e.subresource {
                m.insert("subresource".into(), s.clone().into());
            }
            Value::Object(m)
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Fields no manager owns: identity and system-maintained metadata.
pub fn is_system_field(path: &[String]) -> bool {
    match path {
        [first, ..] if first == "f:apiVersion" || first == "f:kind" => true,
        [meta, field, ..] if meta == "f:metadata" => matches!(
            field.as_str(),
            "f:name"
                | "f:namespace"
                | "f:uid"
                | "f:resourceVersion"
                | "f:generation"
                | "f:creationTimestamp"
                | "f:deletionTimestamp"
                | "f:deletionGracePeriodSeconds"
                | "f:managedFields"
                | "f:selfLink"
        ),
        _ => false,
    }
}

/// `filter(path)` says which paths a write may own (the caller drops
/// system fields and, per subresource, `status` or everything else).
fn owned(set: FieldSet, filter: &dyn Fn(&[String]) -> bool) -> FieldSet {
    let mut out = FieldSet::new();
    for p in set.iter().filter(|p| !is_system_field(p) && filter(p)) {
        out.insert(p.clone());
    }
    out
}

fn without_managed(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    o
}

/// Whether `path` names something present in `value`.
fn exists(value: &Value, path: &[String], node: Option<Node<'_>>) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return true;
    };
    if let Some(f) = first.strip_prefix("f:") {
        return value
            .get(f)
            .filter(|v| !v.is_null())
            .is_some_and(|v| exists(v, rest, member(node, f)));
    }
    let Value::Array(items) = value else {
        return false;
    };
    if let Some(v) = first.strip_prefix("v:") {
        return items
            .iter()
            .any(|i| serde_json::to_string(i).ok().as_deref() == Some(v));
    }
    let ListKind::Map(keys) = list_kind(node) else {
        return false;
    };
    items
        .iter()
        .find(|i| {
            list_key(i, &keys, node.and_then(|n| n.items())).as_deref() == Some(first.as_str())
        })
        .is_some_and(|i| exists(i, rest, node.and_then(|n| n.items())))
}

fn prune(entries: &mut Vec<Entry>, obj: &Value, node: Option<Node<'_>>) {
    for e in entries.iter_mut() {
        let mut kept = FieldSet::new();
        for p in e.fields.iter().filter(|p| exists(obj, p, node)) {
            kept.insert(p.clone());
        }
        e.fields = kept;
    }
    entries.retain(|e| !e.fields.is_empty());
}

/// Records a non-apply write of `new` (over `old`, `None` on create):
/// `manager` takes the fields that changed.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    node: Option<Node<'_>>,
    manager: &Manager,
    filter: &dyn Fn(&[String]) -> bool,
) {
    let mut entries = old.map(read_entries).unwrap_or_default();
    let old_plain = old.map(without_managed);
    let new_plain = without_managed(new);
    let changed = owned(
        fieldset::changed(old_plain.as_ref(), Some(&new_plain), node),
        filter,
    );
    for e in entries.iter_mut() {
        e.fields = e.fields.difference(&changed);
    }
    match entries.iter_mut().find(|e| e.is(manager)) {
        Some(e) => {
            e.fields = e.fields.union(&changed);
            e.time = manager.time.clone();
            e.api_version = manager.api_version.clone();
        }
        None if !changed.is_empty() => entries.push(Entry {
            manager: manager.name.clone(),
            operation: manager.operation,
            api_version: manager.api_version.clone(),
            subresource: manager.subresource.clone(),
            time: manager.time.clone(),
            fields: changed,
        }),
        None => {}
    }
    prune(&mut entries, &new_plain, node);
    write_entries(new, &entries);
}

/// Merges an apply configuration into a live value along `node`.
pub fn merge(live: Option<&Value>, config: &Value, node: Option<Node<'_>>) -> Value {
    match (live, config) {
        (Some(Value::Object(l)), Value::Object(c)) if !node.is_some_and(|n| n.map_atomic()) => {
            let mut out = l.clone();
            for (k, v) in c {
                if v.is_null() {
                    continue;
                }
                let merged = merge(l.get(k), v, member(node, k));
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Some(Value::Array(l)), Value::Array(c)) => match list_kind(node) {
            ListKind::Atomic => Value::Array(c.iter().map(clean).collect()),
            ListKind::Set => {
                let mut out = l.clone();
                for v in c {
                    if !out.contains(v) {
                        out.push(v.clone());
                    }
                }
                Value::Array(out)
            }
            ListKind::Map(keys) => {
                let items = node.and_then(|n| n.items());
                let mut out = l.clone();
                for v in c {
                    let k = list_key(v, &keys, items);
                    match out
                        .iter()
                        .position(|o| k.is_some() && list_key(o, &keys, items) == k)
                    {
                        Some(i) => out[i] = merge(Some(&out[i]), v, items),
                        None => out.push(merge(None, v, items)),
                    }
                }
                Value::Array(out)
            }
        },
        (_, c) => clean(c),
    }
}

/// A configuration value with its nulls dropped.
fn clean(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), clean(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(clean).collect()),
        other => other.clone(),
    }
}

/// Server-side apply of `config` over `live` (an object that may have
/// just been made up for a create). Returns the new object with its
/// `managedFields`, or the conflicts.
pub fn apply(
    live: &Value,
    config: &Value,
    node: Option<Node<'_>>,
    manager: &Manager,
    force: bool,
    filter: &dyn Fn(&[String]) -> bool,
) -> Result<Value, Vec<Conflict>> {
    let mut entries = read_entries(live);
    let live_plain = without_managed(live);
    let mut config = clean(config);
    if let Some(meta) = config.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    let mut merged = merge(Some(&live_plain), &config, node);
    let applied = owned(fieldset::of_value(&config, node), filter);
    let changed = owned(
        fieldset::changed(Some(&live_plain), Some(&merged), node),
        filter,
    );
    let contested = applied.intersection(&changed);

    let mut conflicts = Vec::new();
    for e in entries.iter().filter(|e| !e.is(manager)) {
        for p in e.fields.intersection(&contested).iter() {
            conflicts.push(Conflict {
                manager: e.manager.clone(),
                api_version: e.api_version.clone(),
                subresource: e.subresource.clone(),
                time: (e.operation == Operation::Update).then(|| e.time.clone()),
                field: fieldset::display_path(p),
            });
        }
    }
    if !conflicts.is_empty() {
        if !force {
            return Err(conflicts);
        }
        for e in entries.iter_mut().filter(|e| !e.is(manager)) {
            e.fields = e.fields.difference(&contested);
        }
    }

    // Fields this manager applied before and dropped now go, unless
    // someone else still owns them.
    let previous = entries
        .iter()
        .find(|e| e.is(manager))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let dropped = previous.difference(&applied);
    let mut others = FieldSet::new();
    for e in entries.iter().filter(|e| !e.is(manager)) {
        others = others.union(&e.fields);
    }
    // Shallowest first: removing an element removes its fields with it
    // (and the element is still found by its key while they are there).
    let mut doomed: Vec<&Path> = dropped.iter().filter(|p| !others.contains(p)).collect();
    doomed.sort_by_key(|p| p.len());
    let mut removed: Vec<&Path> = Vec::new();
    for p in doomed {
        if removed.iter().any(|r| p.starts_with(r)) {
            continue;
        }
        let still_needed = others.iter().any(|o| o.len() > p.len() && o.starts_with(p))
            || applied
                .iter()
                .any(|o| o.len() > p.len() && o.starts_with(p));
        if !still_needed {
            fieldset::remove_path(&mut merged, p, node);
            removed.push(p);
        }
    }

    match entries.iter_mut().find(|e| e.is(manager)) {
        Some(e) => {
            e.fields = applied;
            e.time = manager.time.clone();
            e.api_version = manager.api_version.clone();
        }
        None => entries.push(Entry {
            manager: manager.name.clone(),
            operation: Operation::Apply,
            api_version: manager.api_version.clone(),
            subresource: manager.subresource.clone(),
            time: manager.time.clone(),
            fields: applied,
        }),
    }
    prune(&mut entries, &merged, node);
    write_entries(&mut merged, &entries);
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn definitions() -> Map<String, Value> {
        json!({
            "Deploy": {"type": "object", "properties": {
                "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                "metadata": {"type": "object", "properties": {
                    "name": {"type": "string"},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "managedFields": {"type": "array", "items": {"type": "object"}}
                }},
                "spec": {"type": "object", "properties": {
                    "replicas": {"type": "integer"},
                    "paused": {"type": "boolean"},
                    "containers": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                        "items": {"type": "object", "properties": {"name": {"type": "string"}, "image": {"type": "string"}}}}
                }}
            }}
        })
        .as_object()
        .expect("object")
        .clone()
    }

    fn manager(name: &str, operation: Operation) -> Manager {
        Manager {
            name: name.into(),
            operation,
            api_version: "apps/v1".into(),
            subresource: None,
            time: "2026-01-01T00:00:00Z".into(),
        }
    }

    fn all(_: &[String]) -> bool {
        true
    }

    fn config(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"replicas": replicas, "containers": [{"name": "web", "image": image}]}})
    }

    fn managers(obj: &Value) -> Vec<(String, String)> {
        obj["metadata"]["managedFields"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e["manager"].as_str().unwrap_or("").to_string(),
                            e["operation"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn apply_creates_and_records_ownership() {
        let defs = definitions();
        let node = Node::definition(&defs, "Deploy");
        let live =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
        let out = apply(
            &live,
            &config(2, "nginx"),
            node,
            &manager("kubectl", Operation::Apply),
            false,
            &all,
        )
        .expect("applies");
        assert_eq!(out["spec"]["replicas"], 2);
        assert_eq!(managers(&out), vec![("kubectl".into(), "Apply".into())]);
        let fields = &out["metadata"]["managedFields"][0]["fieldsV1"];
        assert_eq!(
            fields,
            &json!({"f:spec": {"f:replicas": {}, "f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:name": {}, "f:image": {}}}}})
        );
    }

    #[test]
    fn conflicts_with_another_manager_unless_forced() {
        let defs = definitions();
        let node = Node::definition(&defs, "Deploy");
        let live =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
        let a = apply(
            &live,
            &config(2, "nginx"),
            node,
            &manager("alice", Operation::Apply),
            false,
            &all,
        )
        .expect("applies");
        // The same values: shared ownership, no conflict.
        let b = apply(
            &a,
            &config(2, "nginx"),
            node,
            &manager("bob", Operation::Apply),
            false,
            &all,
        )
        .expect("shares");
        assert_eq!(managers(&b).len(), 2);
        // A different value: a conflict naming the owner and the field.
        let err = apply(
            &a,
            &config(3, "nginx"),
            node,
            &manager("bob", Operation::Apply),
            false,
            &all,
        )
        .expect_err("conflicts");
        assert_eq!(
            err,
            vec![Conflict {
                manager: "alice".into(),
                api_version: "apps/v1".into(),
                subresource: None,
                time: None,
                field: ".spec.replicas".into()
            }]
        );
        assert_eq!(
            conflict_message(&err),
            "Apply failed with 1 conflict: conflict with \"alice\" using apps/v1: .spec.replicas"
        );
        // Forced: bob takes the field.
        let forced = apply(
            &a,
            &config(3, "nginx"),
            node,
            &manager("bob", Operation::Apply),
            true,
            &all,
        )
        .expect("forced");
        assert_eq!(forced["spec"]["replicas"], 3);
        let alice = FieldSet::from_fields_v1(&forced["metadata"]["managedFields"][0]["fieldsV1"])
            .expect("decodes");
        assert!(!alice.contains(&["f:spec".to_string(), "f:replicas".to_string()]));
    }

    #[test]
    fn conflict_messages_group_fields_by_manager() {
        let c = |m: &str, f: &str| Conflict {
            manager: m.into(),
            api_version: "apps/v1".into(),
            subresource: None,
            time: None,
            field: f.into(),
        };
        assert_eq!(
            conflict_message(&[c("a", ".spec.x"), c("a", ".spec.y"), c("b", ".spec.z")]),
            "Apply failed with 3 conflicts: conflicts with \"a\" using apps/v1:\n- .spec.x\n- .spec.y\nconflicts with \"b\" using apps/v1:\n- .spec.z"
        );
    }

    #[test]
    fn an_update_takes_fields_and_then_conflicts_with_apply() {
        let defs = definitions();
        let node = Node::definition(&defs, "Deploy");
        let live =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
        let a = apply(
            &live,
            &config(2, "nginx"),
            node,
            &manager("kubectl", Operation::Apply),
            false,
            &all,
        )
        .expect("applies");
        let mut scaled = a.clone();
        scaled["spec"]["replicas"] = json!(5);
        record_update(
            Some(&a),
            &mut scaled,
            node,
            &manager("kubectl-scale", Operation::Update),
            &all,
        );
        assert_eq!(
            managers(&scaled),
            vec![
                ("kubectl".into(), "Apply".into()),
                ("kubectl-scale".into(), "Update".into())
            ]
        );
        let err = apply(
            &scaled,
            &config(2, "nginx"),
            node,
            &manager("kubectl", Operation::Apply),
            false,
            &all,
        )
        .expect_err("conflicts");
        assert_eq!(
            err[0].owner(),
            "\"kubectl-scale\" using apps/v1 at 2026-01-01T00:00:00Z"
        );
    }

    #[test]
    fn dropped_fields_are_removed_unless_owned_elsewhere() {
        let defs = definitions();
        let node = Node::definition(&defs, "Deploy");
        let live =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
        let mut with_paused = config(2, "nginx");
        with_paused["spec"]["paused"] = json!(true);
        with_paused["metadata"]["labels"] = json!({"a": "1"});
        let a = apply(
            &live,
            &with_paused,
            node,
            &manager("kubectl", Operation::Apply),
            false,
            &all,
        )
        .expect("applies");
        assert_eq!(a["spec"]["paused"], true);
        let b = apply(
            &a,
            &config(2, "nginx"),
            node,
            &manager("kubectl", Operation::Apply),
            false,
            &all,
        )
        .expect("applies");
        assert!(b["spec"].get("paused").is_none());
        assert!(b["metadata"]["labels"].get("a").is_none());
        // Owned by another manager too: kept.
        let shared = apply(
            &a,
            &with_paused,
            node,
            &manager("other", Operation::Apply),
            false,
            &all,
        )
        .expect("shares");
        let c = apply(
            &shared,
            &config(2, "nginx"),
            node,
            &manager("kubectl", Operation::Apply),
            false,
            &all,
        )
        .expect("applies");
        assert_eq!(c["spec"]["paused"], true);
    }

    #[test]
    fn create_records_everything_for_the_creator() {
        let defs = definitions();
        let node = Node::definition(&defs, "Deploy");
        let mut obj = config(1, "nginx");
        record_update(
            None,
            &mut obj,
            node,
            &manager("kubectl-create", Operation::Update),
            &all,
        );
        let set = FieldSet::from_fields_v1(&obj["metadata"]["managedFields"][0]["fieldsV1"])
            .expect("decodes");
        assert!(set.contains(&["f:spec".to_string(), "f:replicas".to_string()]));
        assert!(!set
            .iter()
            .any(|p| p[0] == "f:apiVersion" || p.get(1).is_some_and(|f| f == "f:name")));
    }

    #[test]
    fn list_keys_take_schema_defaults() {
        // Ports keyed by containerPort and protocol; the live object has the
        // defaulted protocol, the configuration does not name it.
        let defs = json!({"Obj": {"type": "object", "properties": {"ports": {
            "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["containerPort", "protocol"],
            "items": {"type": "object", "properties": {"containerPort": {"type": "integer"}, "protocol": {"type": "string", "default": "TCP"}}}
        }}}});
        let defs = defs.as_object().expect("object");
        let node = Node::definition(defs, "Obj");
        let live = json!({"ports": [{"containerPort": 80, "protocol": "TCP"}]});
        let out = apply(
            &live,
            &json!({"ports": [{"containerPort": 80}]}),
            node,
            &manager("m", Operation::Apply),
            false,
            &all,
        )
        .expect("applies");
        assert_eq!(
            out["ports"],
            json!([{"containerPort": 80, "protocol": "TCP"}])
        );
    }

    #[test]
    fn merge_lists_by_kind() {
        let defs = definitions();
        let node = Node::definition(&defs, "Deploy");
        let live = config(1, "a");
        let cfg = json!({"spec": {"containers": [{"name": "side", "image": "b"}]}});
        let out = merge(Some(&live), &cfg, node);
        assert_eq!(out["spec"]["containers"].as_array().expect("list").len(), 2);
    }
}
