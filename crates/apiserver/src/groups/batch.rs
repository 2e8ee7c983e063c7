//! `batch/v1`: jobs and cron jobs.

use k8s_openapi::api::batch::v1 as batch;
use serde_json::Value;

use super::core::{default_pod_spec, validate_pod_spec};
use super::{age_column, age_of, containers_and_images, name_column, name_of, selector_string};
use crate::machinery::schema::FieldMeta;
use crate::machinery::table::{human_duration, Column};
use crate::machinery::validation::FieldError;
use crate::registry::{Group, KindSpec, Resource};

pub fn group() -> Group {
    Group {
        resources: vec![
            Resource::of::<batch::Job>("jobs", jobs())
                .in_all()
                .with_generation()
                .with_status(),
            Resource::of::<batch::CronJob>("cronjobs", cronjobs())
                .short(&["cj"])
                .in_all()
                .with_generation()
                .with_status(),
        ],
        patch_meta: PATCH_META,
        schema_defaults: &[],
        add_schemas: |g| {
            super::add::<batch::Job>(g);
            super::add::<batch::CronJob>(g);
        },
    }
}

pub const PATCH_META: &[FieldMeta] = &[
    FieldMeta {
        definition: "io.k8s.api.batch.v1.JobStatus",
        field: "conditions",
        strategy: Some("merge"),
        merge_key: Some("type"),
        list_type: Some("atomic"),
        map_keys: &[],
        map_type: None,
    },
    FieldMeta::atomic("io.k8s.api.batch.v1.CronJobStatus", "active"),
];

fn jobs() -> KindSpec<batch::Job> {
    KindSpec {
        defaults: |j| {
            let spec = j.spec.get_or_insert_with(Default::default);
            spec.completions.get_or_insert(1);
            spec.parallelism.get_or_insert(1);
            spec.backoff_limit.get_or_insert(6);
            spec.completion_mode
                .get_or_insert_with(|| "NonIndexed".into());
            spec.suspend.get_or_insert(false);
            spec.pod_replacement_policy
                .get_or_insert_with(|| "TerminatingOrFailed".into());
            if let Some(s) = spec.template.spec.as_mut() {
                default_pod_spec(s);
            }
        },
        on_create: |j| {
            // The job controller's labels tie pods to this job by uid.
            let uid = j.metadata.uid.clone().unwrap_or_default();
            let name = j.metadata.name.clone().unwrap_or_default();
            let Some(spec) = j.spec.as_mut() else { return };
            if spec.manual_selector == Some(true) {
                return;
            }
            let labels = spec
                .template
                .metadata
                .get_or_insert_with(Default::default)
                .labels
                .get_or_insert_with(Default::default);
            labels.insert("batch.kubernetes.io/controller-uid".into(), uid.clone());
            labels.insert("batch.kubernetes.io/job-name".into(), name.clone());
            labels.insert("controller-uid".into(), uid.clone());
            labels.insert("job-name".into(), name);
            let selector = spec.selector.get_or_insert_with(Default::default);
            selector
                .match_labels
                .get_or_insert_with(Default::default)
                .insert("batch.kubernetes.io/controller-uid".into(), uid);
        },
        validate: |j, _| {
            let Some(spec) = &j.spec else {
                return vec![FieldError::required("spec", "")];
            };
            let mut errs = Vec::new();
            match &spec.template.spec {
                None => errs.push(FieldError::required("spec.template.spec", "")),
                Some(s) => {
                    errs.extend(validate_pod_spec(s, "spec.template.spec"));
                    match s.restart_policy.as_deref() {
                        Some("OnFailure" | "Never") => {}
                        Some(other) => errs.push(FieldError::not_supported(
                            "spec.template.spec.restartPolicy",
                            other,
                            &["OnFailure", "Never"],
                        )),
                        None => {}
                    }
                }
            }
            for (field, v) in [
                ("spec.parallelism", spec.parallelism),
                ("spec.completions", spec.completions),
                ("spec.backoffLimit", spec.backoff_limit),
            ] {
                if let Some(n) = v {
                    if n < 0 {
                        errs.push(FieldError::invalid(
                            field,
                            n,
                            "must be greater than or equal to 0",
                        ));
                    }
                }
            }
            errs
        },
        columns: || {
            vec![
                name_column(),
                Column::new("Status", "string", "Status of the job."),
                Column::new("Completions", "string", "The completion status of the job"),
                Column::new("Duration", "string", "Time required to complete the job."),
                age_column(),
                Column::new(
                    "Containers",
                    "string",
                    "Names of each container in the template.",
                )
                .wide(),
                Column::new(
                    "Images",
                    "string",
                    "Images referenced by each container in the template.",
                )
                .wide(),
                Column::new(
                    "Selector",
                    "string",
                    "A label query over pods that should match the pod count.",
                )
                .wide(),
            ]
        },
        row: |j, now| {
            let spec = j.spec.clone().unwrap_or_default();
            let status = j.status.clone().unwrap_or_default();
            let condition = |ty: &str| {
                status
                    .conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == ty && c.status == "True")
            };
            let state = if condition("Complete") {
                "Complete"
            } else if condition("Failed") {
                "Failed"
            } else if j.metadata.deletion_timestamp.is_some() {
                "Terminating"
            } else if condition("Suspended") || spec.suspend == Some(true) {
                "Suspended"
            } else if condition("FailureTarget") {
                "FailureTarget"
            } else if condition("SuccessCriteriaMet") {
                "SuccessCriteriaMet"
            } else {
                "Running"
            };
            let completions = match spec.completions {
                Some(c) => format!("{}/{c}", status.succeeded.unwrap_or(0)),
                None => format!(
                    "{}/1 of {}",
                    status.succeeded.unwrap_or(0),
                    spec.parallelism.unwrap_or(1)
                ),
            };
            let duration = match (status.start_time.as_ref(), status.completion_time.as_ref()) {
                (Some(s), Some(c)) => human_duration(c.0.duration_since(s.0).as_secs()),
                (Some(s), None) => human_duration(now.duration_since(s.0).as_secs()),
                _ => String::new(),
            };
            let (containers, images) = containers_and_images(Some(&spec.template));
            vec![
                name_of(&j.metadata),
                state.into(),
                completions.into(),
                duration.into(),
                age_of(&j.metadata, now),
                containers.into(),
                images.into(),
                selector_string(spec.selector.as_ref()).into(),
            ]
        },
        fields: &[("status.successful", |j| {
            j.status
                .as_ref()
                .and_then(|s| s.succeeded)
                .unwrap_or(0)
                .to_string()
        })],
    }
}

fn cronjobs() -> KindSpec<batch::CronJob> {
    KindSpec {
        defaults: |c| {
            let spec = c.spec.get_or_insert_with(Default::default);
            spec.concurrency_policy
                .get_or_insert_with(|| "Allow".into());
            spec.suspend.get_or_insert(false);
            spec.successful_jobs_history_limit.get_or_insert(3);
            spec.failed_jobs_history_limit.get_or_insert(1);
            if let Some(s) = spec
                .job_template
                .spec
                .as_mut()
                .and_then(|j| j.template.spec.as_mut())
            {
                default_pod_spec(s);
            }
        },
        on_create: |_| {},
        validate: |c, _| {
            let Some(spec) = &c.spec else {
                return vec![FieldError::required("spec", "")];
            };
            let mut errs = Vec::new();
            if spec.schedule.split_whitespace().count() != 5 && !spec.schedule.starts_with('@') {
                errs.push(FieldError::invalid(
                    "spec.schedule",
                    spec.schedule.as_str(),
                    "unparseable schedule: expected exactly 5 fields",
                ));
            }
            match spec.concurrency_policy.as_deref() {
                Some("Allow" | "Forbid" | "Replace") | None => {}
                Some(other) => errs.push(FieldError::not_supported(
                    "spec.concurrencyPolicy",
                    other,
                    &["Allow", "Forbid", "Replace"],
                )),
            }
            match spec
                .job_template
                .spec
                .as_ref()
                .and_then(|j| j.template.spec.as_ref())
            {
                None => errs.push(FieldError::required(
                    "spec.jobTemplate.spec.template.spec",
                    "",
                )),
                Some(s) => errs.extend(validate_pod_spec(s, "spec.jobTemplate.spec.template.spec")),
            }
            errs
        },
        columns: || {
            vec![
                name_column(),
                Column::new("Schedule", "string", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
                Column::new("Timezone", "string", "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."),
                Column::new("Suspend", "boolean", "This flag tells the controller to suspend subsequent executions."),
                Column::new("Active", "integer", "A list of pointers to currently running jobs."),
                Column::new("Last Schedule", "string", "Information when was the last time the job was successfully scheduled."),
                age_column(),
                Column::new("Containers", "string", "Names of each container in the template.").wide(),
                Column::new("Images", "string", "Images referenced by each container in the template.").wide(),
                Column::new("Selector", "string", "A label query over pods that should match the pod count.").wide(),
            ]
        },
        row: |c, now| {
            let spec = c.spec.clone().unwrap_or_default();
            let status = c.status.clone().unwrap_or_default();
            let last = status
                .last_schedule_time
                .map(|t| human_duration(now.duration_since(t.0).as_secs()))
                .unwrap_or_else(|| "<none>".into());
            let job = spec.job_template.spec.clone().unwrap_or_default();
            let (containers, images) = containers_and_images(Some(&job.template));
            vec![
                name_of(&c.metadata),
                spec.schedule.clone().into(),
                spec.time_zone
                    .clone()
                    .unwrap_or_else(|| "<none>".into())
                    .into(),
                Value::from(spec.suspend.unwrap_or(false)),
                status.active.as_ref().map_or(0, Vec::len).into(),
                last.into(),
                age_of(&c.metadata, now),
                containers.into(),
                images.into(),
                selector_string(job.selector.as_ref()).into(),
            ]
        },
        fields: &[],
    }
}
