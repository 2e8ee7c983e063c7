//! The built-in API groups, one module per group: each declares its
//! resources (with their defaults, validation, printer columns and
//! selectable fields) and the patch metadata of its types. `all()` is
//! what the server registers.

use serde_json::Value;

use crate::machinery::table::{age, Column};
use crate::registry::Group;

pub mod apiextensions;
pub mod apps;
pub mod authorization;
pub mod batch;
pub mod coordination;
pub mod core;
pub mod discovery;
pub mod events;

/// Every built-in group.
pub fn all() -> Vec<Group> {
    vec![
        core::group(),
        apps::group(),
        batch::group(),
        coordination::group(),
        discovery::group(),
        events::group(),
        apiextensions::group(),
        authorization::group(),
    ]
}

/// Adds `T`'s schema (and everything it references) to the definitions.
pub fn add<T: schemars::JsonSchema>(generator: &mut schemars::SchemaGenerator) {
    let _ = generator.subschema_for::<T>();
}

/// `<none>` for what is not set, as the printers show it.
pub fn or_none(s: Option<&str>) -> String {
    match s {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => "<none>".into(),
    }
}

/// The NAME column.
pub fn name_column() -> Column {
    Column::new(
        "Name",
        "string",
        "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    )
}

/// The AGE column.
pub fn age_column() -> Column {
    Column::new(
        "Age",
        "string",
        "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.",
    )
}

/// NAME and AGE, the table of kinds without a printer of their own.
pub fn name_age_columns() -> Vec<Column> {
    vec![name_column(), age_column()]
}

/// The NAME cell.
pub fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Value {
    Value::from(meta.name.clone().unwrap_or_default())
}

/// The AGE cell.
pub fn age_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    now: jiff::Timestamp,
) -> Value {
    let ts = meta.creation_timestamp.as_ref().map(|t| t.0.to_string());
    Value::from(age(ts.as_deref(), now))
}

/// A label selector as the printers show it (`app=web,tier in (a,b)`).
pub fn selector_string(
    selector: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
) -> String {
    let Some(selector) = selector else {
        return "<none>".into();
    };
    match crate::machinery::labels::Selector::from_label_selector(selector) {
        Ok(s) if !s.is_empty() => s.to_string(),
        Ok(_) => "<none>".into(),
        Err(_) => "<error>".into(),
    }
}

/// CONTAINERS and IMAGES of a pod template, comma-separated.
pub fn containers_and_images(
    template: Option<&k8s_openapi::api::core::v1::PodTemplateSpec>,
) -> (String, String) {
    let containers = template
        .and_then(|t| t.spec.as_ref())
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    let images: Vec<&str> = containers
        .iter()
        .map(|c| c.image.as_deref().unwrap_or(""))
        .collect();
    (names.join(","), images.join(","))
}
