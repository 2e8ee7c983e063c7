//! `apps/v1`: deployments, replica sets, stateful sets, daemon sets and
//! controller revisions.

use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::core::{default_pod_spec, validate_pod_spec};
use super::{age_column, age_of, containers_and_images, name_column, name_of, selector_string};
use crate::machinery::labels::Selector;
use crate::machinery::schema::FieldMeta;
use crate::machinery::table::Column;
use crate::machinery::validation::FieldError;
use crate::registry::{Group, KindSpec, Resource, ScalePaths};

fn scale_paths() -> ScalePaths {
    ScalePaths {
        spec_replicas: vec!["spec".into(), "replicas".into()],
        status_replicas: vec!["status".into(), "replicas".into()],
        selector: Some((vec!["spec".into(), "selector".into()], true)),
    }
}

pub fn group() -> Group {
    Group {
        resources: vec![
            Resource::of::<apps::Deployment>("deployments", deployments())
                .short(&["deploy"])
                .in_all()
                .with_generation()
                .with_status()
                .with_scale(scale_paths()),
            Resource::of::<apps::ReplicaSet>("replicasets", replicasets())
                .short(&["rs"])
                .in_all()
                .with_generation()
                .with_status()
                .with_scale(scale_paths()),
            Resource::of::<apps::StatefulSet>("statefulsets", statefulsets())
                .short(&["sts"])
                .in_all()
                .with_generation()
                .with_status()
                .with_scale(scale_paths()),
            Resource::of::<apps::DaemonSet>("daemonsets", daemonsets())
                .short(&["ds"])
                .in_all()
                .with_generation()
                .with_status(),
            Resource::of::<apps::ControllerRevision>("controllerrevisions", controllerrevisions()),
        ],
        patch_meta: PATCH_META,
        schema_defaults: &[],
        add_schemas: |g| {
            super::add::<apps::Deployment>(g);
            super::add::<apps::ReplicaSet>(g);
            super::add::<apps::StatefulSet>(g);
            super::add::<apps::DaemonSet>(g);
            super::add::<apps::ControllerRevision>(g);
        },
    }
}

pub const PATCH_META: &[FieldMeta] = &[
    FieldMeta {
        definition: "io.k8s.api.apps.v1.DeploymentSpec",
        field: "strategy",
        strategy: Some("retainKeys"),
        merge_key: None,
        list_type: None,
        map_keys: &[],
        map_type: None,
    },
    FieldMeta::merge_map(
        "io.k8s.api.apps.v1.DeploymentStatus",
        "conditions",
        "type",
        &["type"],
    ),
    FieldMeta::merge_map(
        "io.k8s.api.apps.v1.ReplicaSetStatus",
        "conditions",
        "type",
        &["type"],
    ),
    FieldMeta::merge_map(
        "io.k8s.api.apps.v1.StatefulSetStatus",
        "conditions",
        "type",
        &["type"],
    ),
    FieldMeta::merge_map(
        "io.k8s.api.apps.v1.DaemonSetStatus",
        "conditions",
        "type",
        &["type"],
    ),
    FieldMeta::atomic("io.k8s.api.apps.v1.StatefulSetSpec", "volumeClaimTemplates"),
];

fn default_template(template: &mut core::PodTemplateSpec) {
    if let Some(spec) = template.spec.as_mut() {
        default_pod_spec(spec);
    }
}

/// What every workload checks: a selector that is not empty, selects the
/// template's labels and never changes; a valid pod template.
fn validate_workload(
    meta_labels_path: &str,
    selector: Option<&LabelSelector>,
    old_selector: Option<Option<&LabelSelector>>,
    template: Option<&core::PodTemplateSpec>,
    replicas: Option<i32>,
    restart_policies: &[&str],
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match selector {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(sel) => match Selector::from_label_selector(sel) {
            Err(e) => errs.push(FieldError::invalid("spec.selector", Value::Null, e)),
            Ok(s) if s.is_empty() => errs.push(FieldError::invalid(
                "spec.selector",
                Value::Null,
                "empty selector is invalid for deployment",
            )),
            Ok(s) => {
                let labels = template
                    .and_then(|t| t.metadata.as_ref())
                    .and_then(|m| m.labels.clone())
                    .unwrap_or_default();
                if !s.matches(&labels) {
                    let shown: Vec<String> =
                        labels.iter().map(|(k, v)| format!("{k:?}:{v:?}")).collect();
                    errs.push(FieldError::invalid(
                        meta_labels_path,
                        format!("map[string]string{{{}}}", shown.join(", ")),
                        "`selector` does not match template `labels`",
                    ));
                }
            }
        },
    }
    if let Some(old) = old_selector {
        if old != selector {
            errs.push(FieldError::invalid(
                "spec.selector",
                serde_json::to_value(selector).unwrap_or(Value::Null),
                "field is immutable",
            ));
        }
    }
    if let Some(r) = replicas {
        if r < 0 {
            errs.push(FieldError::invalid(
                "spec.replicas",
                r,
                "must be greater than or equal to 0",
            ));
        }
    }
    match template.and_then(|t| t.spec.as_ref()) {
        None => errs.push(FieldError::required("spec.template.spec", "")),
        Some(spec) => {
            errs.extend(validate_pod_spec(spec, "spec.template.spec"));
            if let Some(p) = &spec.restart_policy {
                if !restart_policies.contains(&p.as_str()) {
                    errs.push(FieldError::not_supported(
                        "spec.template.spec.restartPolicy",
                        p.as_str(),
                        restart_policies,
                    ));
                }
            }
        }
    }
    errs
}

fn workload_columns(extra: &[(&str, &str)], wide_selector: bool) -> Vec<Column> {
    let mut cols = vec![name_column()];
    cols.extend(extra.iter().map(|(n, d)| Column::new(n, "string", d)));
    cols.push(age_column());
    cols.push(
        Column::new(
            "Containers",
            "string",
            "Names of each container in the template.",
        )
        .wide(),
    );
    cols.push(
        Column::new(
            "Images",
            "string",
            "Images referenced by each container in the template.",
        )
        .wide(),
    );
    if wide_selector {
        cols.push(Column::new("Selector", "string", "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.").wide());
    }
    cols
}

fn workload_row(
    meta: &ObjectMeta,
    cells: Vec<Value>,
    template: Option<&core::PodTemplateSpec>,
    selector: Option<&LabelSelector>,
    with_selector: bool,
    now: jiff::Timestamp,
) -> Vec<Value> {
    let (containers, images) = containers_and_images(template);
    let mut row = vec![name_of(meta)];
    row.extend(cells);
    row.push(age_of(meta, now));
    row.push(containers.into());
    row.push(images.into());
    if with_selector {
        row.push(selector_string(selector).into());
    }
    row
}

fn deployments() -> KindSpec<apps::Deployment> {
    KindSpec {
        defaults: |d| {
            let spec = d.spec.get_or_insert_with(Default::default);
            spec.replicas.get_or_insert(1);
            spec.revision_history_limit.get_or_insert(10);
            spec.progress_deadline_seconds.get_or_insert(600);
            let strategy = spec.strategy.get_or_insert_with(Default::default);
            if strategy.type_.is_none() {
                strategy.type_ = Some("RollingUpdate".into());
            }
            if strategy.type_.as_deref() == Some("RollingUpdate") {
                let ru = strategy.rolling_update.get_or_insert_with(Default::default);
                ru.max_unavailable
                    .get_or_insert(IntOrString::String("25%".into()));
                ru.max_surge
                    .get_or_insert(IntOrString::String("25%".into()));
            }
            default_template(&mut spec.template);
        },
        on_create: |_| {},
        validate: |d, old| {
            let Some(spec) = &d.spec else {
                return vec![FieldError::required("spec", "")];
            };
            let mut errs = validate_workload(
                "spec.template.metadata.labels",
                Some(&spec.selector),
                old.map(|o| o.spec.as_ref().map(|s| &s.selector)),
                Some(&spec.template),
                spec.replicas,
                &["Always"],
            );
            if let Some(s) = &spec.strategy {
                match s.type_.as_deref() {
                    Some("Recreate") if s.rolling_update.is_some() => {
                        errs.push(FieldError::forbidden(
                            "spec.strategy.rollingUpdate",
                            "may not be specified when strategy `type` is 'Recreate'",
                        ))
                    }
                    Some("Recreate" | "RollingUpdate") | None => {}
                    Some(other) => errs.push(FieldError::not_supported(
                        "spec.strategy.type",
                        other,
                        &["Recreate", "RollingUpdate"],
                    )),
                }
            }
            errs
        },
        columns: || {
            workload_columns(
                &[
                    ("Ready", "Number of the pod with ready state"),
                    ("Up-to-date", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
                    ("Available", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
                ],
                true,
            )
        },
        row: |d, now| {
            let spec = d.spec.clone().unwrap_or_default();
            let status = d.status.clone().unwrap_or_default();
            let cells = vec![
                format!(
                    "{}/{}",
                    status.ready_replicas.unwrap_or(0),
                    spec.replicas.unwrap_or(0)
                )
                .into(),
                status.updated_replicas.unwrap_or(0).into(),
                status.available_replicas.unwrap_or(0).into(),
            ];
            workload_row(
                &d.metadata,
                cells,
                Some(&spec.template),
                Some(&spec.selector),
                true,
                now,
            )
        },
        fields: &[],
    }
}

fn replicasets() -> KindSpec<apps::ReplicaSet> {
    KindSpec {
        defaults: |rs| {
            let spec = rs.spec.get_or_insert_with(Default::default);
            spec.replicas.get_or_insert(1);
            if let Some(t) = spec.template.as_mut() {
                default_template(t);
            }
        },
        on_create: |_| {},
        validate: |rs, old| {
            let Some(spec) = &rs.spec else {
                return vec![FieldError::required("spec", "")];
            };
            validate_workload(
                "spec.template.metadata.labels",
                Some(&spec.selector),
                old.map(|o| o.spec.as_ref().map(|s| &s.selector)),
                spec.template.as_ref(),
                spec.replicas,
                &["Always"],
            )
        },
        columns: || {
            workload_columns(
                &[
                    ("Desired", "Replicas is the number of desired replicas."),
                    (
                        "Current",
                        "Replicas is the most recently observed number of replicas.",
                    ),
                    (
                        "Ready",
                        "The number of ready replicas for this replica set.",
                    ),
                ],
                true,
            )
        },
        row: |rs, now| {
            let spec = rs.spec.clone().unwrap_or_default();
            let status = rs.status.clone().unwrap_or_default();
            let cells = vec![
                spec.replicas.unwrap_or(0).into(),
                status.replicas.into(),
                status.ready_replicas.unwrap_or(0).into(),
            ];
            workload_row(
                &rs.metadata,
                cells,
                spec.template.as_ref(),
                Some(&spec.selector),
                true,
                now,
            )
        },
        fields: &[("status.replicas", |rs| {
            rs.status.as_ref().map_or(0, |s| s.replicas).to_string()
        })],
    }
}

fn statefulsets() -> KindSpec<apps::StatefulSet> {
    KindSpec {
        defaults: |s| {
            let spec = s.spec.get_or_insert_with(Default::default);
            spec.replicas.get_or_insert(1);
            spec.revision_history_limit.get_or_insert(10);
            spec.pod_management_policy
                .get_or_insert_with(|| "OrderedReady".into());
            let strategy = spec.update_strategy.get_or_insert_with(Default::default);
            if strategy.type_.is_none() {
                strategy.type_ = Some("RollingUpdate".into());
            }
            if strategy.type_.as_deref() == Some("RollingUpdate") {
                strategy
                    .rolling_update
                    .get_or_insert_with(Default::default)
                    .partition
                    .get_or_insert(0);
            }
            spec.persistent_volume_claim_retention_policy
                .get_or_insert_with(|| apps::StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Retain".into()),
                    when_scaled: Some("Retain".into()),
                });
            default_template(&mut spec.template);
        },
        on_create: |_| {},
        validate: |s, old| {
            let Some(spec) = &s.spec else {
                return vec![FieldError::required("spec", "")];
            };
            validate_workload(
                "spec.template.metadata.labels",
                Some(&spec.selector),
                old.map(|o| o.spec.as_ref().map(|s| &s.selector)),
                Some(&spec.template),
                spec.replicas,
                &["Always"],
            )
        },
        columns: || workload_columns(&[("Ready", "Number of the pod with ready state")], false),
        row: |s, now| {
            let spec = s.spec.clone().unwrap_or_default();
            let status = s.status.clone().unwrap_or_default();
            let cells = vec![format!(
                "{}/{}",
                status.ready_replicas.unwrap_or(0),
                spec.replicas.unwrap_or(0)
            )
            .into()];
            workload_row(&s.metadata, cells, Some(&spec.template), None, false, now)
        },
        fields: &[],
    }
}

fn daemonsets() -> KindSpec<apps::DaemonSet> {
    KindSpec {
        defaults: |d| {
            let spec = d.spec.get_or_insert_with(Default::default);
            spec.revision_history_limit.get_or_insert(10);
            let strategy = spec.update_strategy.get_or_insert_with(Default::default);
            if strategy.type_.is_none() {
                strategy.type_ = Some("RollingUpdate".into());
            }
            if strategy.type_.as_deref() == Some("RollingUpdate") {
                let ru = strategy.rolling_update.get_or_insert_with(Default::default);
                ru.max_unavailable.get_or_insert(IntOrString::Int(1));
                ru.max_surge.get_or_insert(IntOrString::Int(0));
            }
            default_template(&mut spec.template);
        },
        on_create: |_| {},
        validate: |d, old| {
            let Some(spec) = &d.spec else {
                return vec![FieldError::required("spec", "")];
            };
            validate_workload(
                "spec.template.metadata.labels",
                Some(&spec.selector),
                old.map(|o| o.spec.as_ref().map(|s| &s.selector)),
                Some(&spec.template),
                None,
                &["Always"],
            )
        },
        columns: || {
            let mut cols = vec![name_column()];
            for (n, d) in [
                ("Desired", "The total number of nodes that should be running the daemon pod."),
                ("Current", "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
                ("Ready", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready."),
                ("Up-to-date", "The total number of nodes that are running updated daemon pod"),
                ("Available", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available."),
                ("Node Selector", "NodeSelector is a selector which must be true for the pod to fit on a node."),
            ] {
                cols.push(Column::new(n, "string", d));
            }
            cols.push(age_column());
            cols.push(
                Column::new(
                    "Containers",
                    "string",
                    "Names of each container in the template.",
                )
                .wide(),
            );
            cols.push(
                Column::new(
                    "Images",
                    "string",
                    "Images referenced by each container in the template.",
                )
                .wide(),
            );
            cols.push(
                Column::new(
                    "Selector",
                    "string",
                    "A label query over pods that are managed by the daemon set.",
                )
                .wide(),
            );
            cols
        },
        row: |d, now| {
            let spec = d.spec.clone().unwrap_or_default();
            let status = d.status.clone().unwrap_or_default();
            let node_selector = spec
                .template
                .spec
                .as_ref()
                .and_then(|s| s.node_selector.as_ref())
                .filter(|m| !m.is_empty())
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_else(|| "<none>".into());
            let cells = vec![
                status.desired_number_scheduled.into(),
                status.current_number_scheduled.into(),
                status.number_ready.into(),
                status.updated_number_scheduled.unwrap_or(0).into(),
                status.number_available.unwrap_or(0).into(),
                node_selector.into(),
            ];
            workload_row(
                &d.metadata,
                cells,
                Some(&spec.template),
                Some(&spec.selector),
                true,
                now,
            )
        },
        fields: &[],
    }
}

fn controllerrevisions() -> KindSpec<apps::ControllerRevision> {
    KindSpec {
        columns: || {
            vec![
                name_column(),
                Column::new("Controller", "string", "Controller of the object"),
                Column::new(
                    "Revision",
                    "integer",
                    "Revision indicates the revision of the state represented by Data.",
                ),
                age_column(),
            ]
        },
        ..KindSpec::plain(
            |cr, now| {
                let controller = cr
                    .metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .find(|o| o.controller == Some(true))
                    .map(|o| {
                        let group = o.api_version.split_once('/').map(|(g, _)| g).unwrap_or("");
                        let kind = o.kind.to_lowercase();
                        if group.is_empty() {
                            format!("{kind}/{}", o.name)
                        } else {
                            format!("{kind}.{group}/{}", o.name)
                        }
                    })
                    .unwrap_or_else(|| "<none>".into());
                vec![
                    name_of(&cr.metadata),
                    controller.into(),
                    cr.revision.into(),
                    age_of(&cr.metadata, now),
                ]
            },
            super::name_age_columns,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Kind;
    use serde_json::json;

    fn deployment(selector: Value, labels: Value) -> Value {
        json!({"metadata": {"name": "web"}, "spec": {
            "selector": selector,
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}
        }})
    }

    #[test]
    fn deployment_defaults() {
        let k = deployments();
        let mut v = k
            .normalize(deployment(
                json!({"matchLabels": {"app": "web"}}),
                json!({"app": "web"}),
            ))
            .expect("decodes");
        k.default(&mut v, true);
        let s = &v["spec"];
        assert_eq!(s["replicas"], 1);
        assert_eq!(s["revisionHistoryLimit"], 10);
        assert_eq!(s["progressDeadlineSeconds"], 600);
        assert_eq!(s["strategy"]["type"], "RollingUpdate");
        assert_eq!(s["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(s["template"]["spec"]["restartPolicy"], "Always");
        assert!(k.validate(&v, None).is_empty());
    }

    #[test]
    fn deployment_validation() {
        let k = deployments();
        let check = |v: Value, old: Option<&Value>| -> Vec<String> {
            let v = k.normalize(v).expect("decodes");
            k.validate(&v, old)
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        let errs = check(
            deployment(json!({"matchLabels": {"app": "web"}}), json!({"app": "db"})),
            None,
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("`selector` does not match template `labels`")),
            "{errs:?}"
        );
        let errs = check(deployment(json!({}), json!({"app": "db"})), None);
        assert!(
            errs.iter()
                .any(|e| e.starts_with("spec.selector: Invalid value")),
            "{errs:?}"
        );
        let old = k
            .normalize(deployment(
                json!({"matchLabels": {"app": "web"}}),
                json!({"app": "web", "v": "1"}),
            ))
            .expect("decodes");
        let errs = check(
            deployment(
                json!({"matchLabels": {"app": "web", "v": "1"}}),
                json!({"app": "web", "v": "1"}),
            ),
            Some(&old),
        );
        assert!(
            errs.iter().any(|e| e.contains("field is immutable")),
            "{errs:?}"
        );
        let mut never = deployment(
            json!({"matchLabels": {"app": "web"}}),
            json!({"app": "web"}),
        );
        never["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        never["spec"]["replicas"] = json!(-1);
        let errs = check(never, None);
        assert!(errs.iter().any(|e| e.starts_with("spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"")), "{errs:?}");
        assert!(
            errs.iter()
                .any(|e| e.starts_with("spec.replicas: Invalid value: -1")),
            "{errs:?}"
        );
    }

    #[test]
    fn deployment_rows() {
        let k = deployments();
        let mut v = k
            .normalize(deployment(
                json!({"matchLabels": {"app": "web"}}),
                json!({"app": "web"}),
            ))
            .expect("decodes");
        k.default(&mut v, true);
        v["spec"]["replicas"] = json!(3);
        v["status"] = json!({"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2});
        let row = k.row(&v, jiff::Timestamp::now());
        assert_eq!(&row[1..4], &[json!("2/3"), json!(3), json!(2)]);
        assert_eq!(&row[5..], &[json!("web"), json!("nginx"), json!("app=web")]);
        let names: Vec<String> = k.columns().iter().map(|c| c.name.clone()).collect();
        assert_eq!(
            names,
            vec![
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
    }
}
