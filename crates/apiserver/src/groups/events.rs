//! `events.k8s.io/v1`: the newer Event API (same objects as core events,
//! in their own type).

use k8s_openapi::api::events::v1 as events;
use serde_json::Value;

use super::core::event_columns;
use super::name_of;
use crate::machinery::table::human_duration;
use crate::registry::{Group, KindSpec, NameRule, Resource};

pub fn group() -> Group {
    Group {
        resources: vec![Resource::of::<events::Event>("events", event_spec())
            .short(&["ev"])
            .names(NameRule::PathSegment)],
        patch_meta: &[],
        schema_defaults: &[],
        add_schemas: |g| {
            super::add::<events::Event>(g);
        },
    }
}

fn event_spec() -> KindSpec<events::Event> {
    KindSpec {
        fields: &[
            ("reason", |e| e.reason.clone().unwrap_or_default()),
            ("type", |e| e.type_.clone().unwrap_or_default()),
            ("regarding.kind", |e| {
                e.regarding
                    .as_ref()
                    .and_then(|r| r.kind.clone())
                    .unwrap_or_default()
            }),
            ("regarding.name", |e| {
                e.regarding
                    .as_ref()
                    .and_then(|r| r.name.clone())
                    .unwrap_or_default()
            }),
            ("regarding.namespace", |e| {
                e.regarding
                    .as_ref()
                    .and_then(|r| r.namespace.clone())
                    .unwrap_or_default()
            }),
            ("regarding.uid", |e| {
                e.regarding
                    .as_ref()
                    .and_then(|r| r.uid.clone())
                    .unwrap_or_default()
            }),
        ],
        columns: event_columns,
        ..KindSpec::plain(row, super::name_age_columns)
    }
}

fn row(e: &events::Event, now: jiff::Timestamp) -> Vec<Value> {
    let seen = |t: Option<jiff::Timestamp>| match t {
        Some(t) => human_duration(now.duration_since(t).as_secs()),
        None => "<unknown>".into(),
    };
    let last = e
        .series
        .as_ref()
        .map(|s| s.last_observed_time.0)
        .or_else(|| e.deprecated_last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.event_time.as_ref().map(|t| t.0));
    let regarding = e.regarding.clone().unwrap_or_default();
    vec![
        seen(last).into(),
        e.type_.clone().unwrap_or_default().into(),
        e.reason.clone().unwrap_or_default().into(),
        format!(
            "{}/{}",
            regarding.kind.unwrap_or_default().to_lowercase(),
            regarding.name.unwrap_or_default()
        )
        .into(),
        regarding.field_path.unwrap_or_default().into(),
        e.reporting_controller.clone().unwrap_or_default().into(),
        e.note.clone().unwrap_or_default().into(),
        seen(e.deprecated_first_timestamp.as_ref().map(|t| t.0).or(last)).into(),
        e.series.as_ref().map_or(1, |s| s.count).into(),
        name_of(&e.metadata),
    ]
}
