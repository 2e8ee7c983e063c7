//! The core group (`/api/v1`): namespaces, pods, services, config maps,
//! secrets, service accounts, nodes, endpoints and events, with the
//! defaults and validation the real server applies and the columns its
//! printers give.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::{age_column, age_of, name_age_columns, name_column, name_of, or_none};
use crate::machinery::schema::FieldMeta;
use crate::machinery::table::{human_duration, Column};
use crate::machinery::validation::{self, FieldError};
use crate::registry::{Group, KindSpec, NameRule, Resource};

pub fn group() -> Group {
    Group {
        resources: vec![
            Resource::of::<core::Namespace>("namespaces", namespaces())
                .cluster_scoped()
                .short(&["ns"])
                .names(NameRule::Label)
                .with_status()
                .with_subresource("finalize", "", "v1", "Namespace", &["update"]),
            Resource::of::<core::Pod>("pods", pods())
                .short(&["po"])
                .in_all()
                .with_status()
                .with_subresource("binding", "", "v1", "Binding", &["create"])
                .with_subresource("log", "", "v1", "Pod", &["get"])
                .with_subresource("eviction", "policy", "v1", "Eviction", &["create"]),
            Resource::of::<core::Service>("services", services())
                .short(&["svc"])
                .in_all()
                .names(NameRule::Label)
                .with_status(),
            Resource::of::<core::ConfigMap>("configmaps", configmaps()).short(&["cm"]),
            Resource::of::<core::Secret>("secrets", secrets()),
            Resource::of::<core::ServiceAccount>("serviceaccounts", serviceaccounts())
                .short(&["sa"]),
            Resource::of::<core::Node>("nodes", nodes())
                .cluster_scoped()
                .short(&["no"])
                .with_status(),
            Resource::of::<core::Endpoints>("endpoints", endpoints()).short(&["ep"]),
            Resource::of::<core::Event>("events", events())
                .short(&["ev"])
                .names(NameRule::PathSegment),
        ],
        patch_meta: PATCH_META,
        schema_defaults: &[
            ("io.k8s.api.core.v1.ContainerPort", "protocol", "TCP"),
            ("io.k8s.api.core.v1.ServicePort", "protocol", "TCP"),
            ("io.k8s.api.core.v1.EndpointPort", "protocol", "TCP"),
        ],
        add_schemas: |g| {
            super::add::<core::Namespace>(g);
            super::add::<core::Pod>(g);
            super::add::<core::Service>(g);
            super::add::<core::ConfigMap>(g);
            super::add::<core::Secret>(g);
            super::add::<core::ServiceAccount>(g);
            super::add::<core::Node>(g);
            super::add::<core::Endpoints>(g);
            super::add::<core::Event>(g);
            super::add::<core::Binding>(g);
        },
    }
}

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const POD_SPEC: &str = "io.k8s.api.core.v1.PodSpec";
const CONTAINER: &str = "io.k8s.api.core.v1.Container";
const EPHEMERAL: &str = "io.k8s.api.core.v1.EphemeralContainer";

/// The Go types' `patchStrategy`/`patchMergeKey` tags and list markers.
pub const PATCH_META: &[FieldMeta] = &[
    FieldMeta {
        definition: OBJECT_META,
        field: "finalizers",
        strategy: Some("merge"),
        merge_key: None,
        list_type: Some("set"),
        map_keys: &[],
        map_type: None,
    },
    FieldMeta::merge_map(OBJECT_META, "ownerReferences", "uid", &["uid"]),
    FieldMeta::atomic(OBJECT_META, "managedFields"),
    FieldMeta::merge_map(
        CONTAINER,
        "ports",
        "containerPort",
        &["containerPort", "protocol"],
    ),
    FieldMeta::merge_map(CONTAINER, "env", "name", &["name"]),
    FieldMeta::merge_map(CONTAINER, "volumeMounts", "mountPath", &["mountPath"]),
    FieldMeta::merge_map(CONTAINER, "volumeDevices", "devicePath", &["devicePath"]),
    FieldMeta::atomic(CONTAINER, "args"),
    FieldMeta::atomic(CONTAINER, "command"),
    FieldMeta::atomic(CONTAINER, "envFrom"),
    FieldMeta::atomic(CONTAINER, "resizePolicy"),
    FieldMeta::merge_map(
        EPHEMERAL,
        "ports",
        "containerPort",
        &["containerPort", "protocol"],
    ),
    FieldMeta::merge_map(EPHEMERAL, "env", "name", &["name"]),
    FieldMeta::merge_map(EPHEMERAL, "volumeMounts", "mountPath", &["mountPath"]),
    FieldMeta::merge_map(EPHEMERAL, "volumeDevices", "devicePath", &["devicePath"]),
    FieldMeta {
        definition: POD_SPEC,
        field: "volumes",
        strategy: Some("merge,retainKeys"),
        merge_key: Some("name"),
        list_type: Some("map"),
        map_keys: &["name"],
        map_type: None,
    },
    FieldMeta::merge_map(POD_SPEC, "containers", "name", &["name"]),
    FieldMeta::merge_map(POD_SPEC, "initContainers", "name", &["name"]),
    FieldMeta::merge_map(POD_SPEC, "ephemeralContainers", "name", &["name"]),
    FieldMeta::merge_map(POD_SPEC, "imagePullSecrets", "name", &["name"]),
    FieldMeta::merge_map(POD_SPEC, "hostAliases", "ip", &["ip"]),
    FieldMeta::merge_map(
        POD_SPEC,
        "topologySpreadConstraints",
        "topologyKey",
        &["topologyKey", "whenUnsatisfiable"],
    ),
    FieldMeta::merge_map(POD_SPEC, "schedulingGates", "name", &["name"]),
    FieldMeta {
        definition: POD_SPEC,
        field: "resourceClaims",
        strategy: Some("merge,retainKeys"),
        merge_key: Some("name"),
        list_type: Some("map"),
        map_keys: &["name"],
        map_type: None,
    },
    FieldMeta::atomic(POD_SPEC, "tolerations"),
    FieldMeta::atomic(POD_SPEC, "readinessGates"),
    FieldMeta::merge_map(
        "io.k8s.api.core.v1.PodStatus",
        "conditions",
        "type",
        &["type"],
    ),
    FieldMeta::merge_map("io.k8s.api.core.v1.PodStatus", "podIPs", "ip", &["ip"]),
    FieldMeta::merge_map("io.k8s.api.core.v1.PodStatus", "hostIPs", "ip", &["ip"]),
    FieldMeta::atomic("io.k8s.api.core.v1.PodStatus", "containerStatuses"),
    FieldMeta::atomic("io.k8s.api.core.v1.PodStatus", "initContainerStatuses"),
    FieldMeta::merge_map(
        "io.k8s.api.core.v1.ServiceSpec",
        "ports",
        "port",
        &["port", "protocol"],
    ),
    FieldMeta::atomic("io.k8s.api.core.v1.ServiceSpec", "clusterIPs"),
    FieldMeta::atomic("io.k8s.api.core.v1.ServiceSpec", "ipFamilies"),
    FieldMeta {
        definition: "io.k8s.api.core.v1.ServiceSpec",
        field: "selector",
        strategy: None,
        merge_key: None,
        list_type: None,
        map_keys: &[],
        map_type: Some("atomic"),
    },
    FieldMeta::merge_map(
        "io.k8s.api.core.v1.ServiceStatus",
        "conditions",
        "type",
        &["type"],
    ),
    FieldMeta {
        definition: "io.k8s.api.core.v1.NodeSpec",
        field: "podCIDRs",
        strategy: Some("merge"),
        merge_key: None,
        list_type: Some("set"),
        map_keys: &[],
        map_type: None,
    },
    FieldMeta::atomic("io.k8s.api.core.v1.NodeSpec", "taints"),
    FieldMeta {
        definition: "io.k8s.api.core.v1.NodeStatus",
        field: "conditions",
        strategy: Some("merge"),
        merge_key: Some("type"),
        list_type: None,
        map_keys: &[],
        map_type: None,
    },
    FieldMeta {
        definition: "io.k8s.api.core.v1.NodeStatus",
        field: "addresses",
        strategy: Some("merge"),
        merge_key: Some("type"),
        list_type: None,
        map_keys: &[],
        map_type: None,
    },
    FieldMeta::merge_map(
        "io.k8s.api.core.v1.NamespaceStatus",
        "conditions",
        "type",
        &["type"],
    ),
    FieldMeta::merge_map(
        "io.k8s.api.core.v1.ServiceAccount",
        "secrets",
        "name",
        &["name"],
    ),
    FieldMeta::atomic("io.k8s.api.core.v1.ServiceAccount", "imagePullSecrets"),
    FieldMeta::atomic("io.k8s.api.core.v1.Endpoints", "subsets"),
];

// ---------------------------------------------------------------- namespaces

fn namespaces() -> KindSpec<core::Namespace> {
    KindSpec {
        defaults: |ns| {
            // Every namespace carries its own name as a label (1.21+).
            let name = ns.metadata.name.clone().unwrap_or_default();
            ns.metadata
                .labels
                .get_or_insert_with(BTreeMap::new)
                .insert("kubernetes.io/metadata.name".into(), name);
        },
        on_create: |ns| {
            let spec = ns.spec.get_or_insert_with(Default::default);
            let finalizers = spec.finalizers.get_or_insert_with(Vec::new);
            if !finalizers.iter().any(|f| f == "kubernetes") {
                finalizers.push("kubernetes".into());
            }
            ns.status = Some(core::NamespaceStatus {
                phase: Some("Active".into()),
                ..Default::default()
            });
        },
        validate: |_, _| Vec::new(),
        columns: || {
            vec![
                name_column(),
                Column::new("Status", "string", "The status of the namespace"),
                age_column(),
            ]
        },
        row: |ns, now| {
            let phase = ns
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default();
            vec![
                name_of(&ns.metadata),
                phase.into(),
                age_of(&ns.metadata, now),
            ]
        },
        fields: &[("status.phase", |ns| {
            ns.status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default()
        })],
    }
}

// ---------------------------------------------------------------- pods

/// The image pull policy a container gets when it names none: `Always`
/// for `:latest` or no tag, else `IfNotPresent`.
pub fn default_pull_policy(image: &str) -> &'static str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    match last.split_once(':') {
        Some((_, "latest")) | None if !image.contains('@') => "Always",
        _ => "IfNotPresent",
    }
}

fn default_container(c: &mut core::Container) {
    if c.termination_message_path.is_none() {
        c.termination_message_path = Some("/dev/termination-log".into());
    }
    if c.termination_message_policy.is_none() {
        c.termination_message_policy = Some("File".into());
    }
    if c.image_pull_policy.is_none() {
        c.image_pull_policy = Some(default_pull_policy(c.image.as_deref().unwrap_or("")).into());
    }
    if c.resources.is_none() {
        c.resources = Some(Default::default());
    }
    for p in c.ports.iter_mut().flatten() {
        if p.protocol.is_none() {
            p.protocol = Some("TCP".into());
        }
    }
}

/// The pod spec defaults of the real server.
pub fn default_pod_spec(spec: &mut core::PodSpec) {
    if spec.restart_policy.is_none() {
        spec.restart_policy = Some("Always".into());
    }
    if spec.termination_grace_period_seconds.is_none() {
        spec.termination_grace_period_seconds = Some(30);
    }
    if spec.dns_policy.is_none() {
        spec.dns_policy = Some("ClusterFirst".into());
    }
    if spec.scheduler_name.is_none() {
        spec.scheduler_name = Some("default-scheduler".into());
    }
    if spec.security_context.is_none() {
        spec.security_context = Some(Default::default());
    }
    if spec.enable_service_links.is_none() {
        spec.enable_service_links = Some(true);
    }
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        default_container(c);
    }
    for v in spec.volumes.iter_mut().flatten() {
        let empty = v.empty_dir.is_none()
            && v.host_path.is_none()
            && v.config_map.is_none()
            && v.secret.is_none()
            && v.persistent_volume_claim.is_none()
            && v.projected.is_none()
            && v.downward_api.is_none()
            && v.nfs.is_none()
            && v.ephemeral.is_none()
            && v.csi.is_none()
            && v.image.is_none();
        if empty {
            v.empty_dir = Some(Default::default());
        }
        if let Some(cm) = v.config_map.as_mut() {
            cm.default_mode.get_or_insert(0o644);
        }
        if let Some(s) = v.secret.as_mut() {
            s.default_mode.get_or_insert(0o644);
        }
    }
}

fn qos_class(spec: &core::PodSpec) -> &'static str {
    let mut any = false;
    let mut guaranteed = true;
    for c in &spec.containers {
        let r = c.resources.as_ref();
        let requests = r.and_then(|r| r.requests.as_ref());
        let limits = r.and_then(|r| r.limits.as_ref());
        if requests.is_some_and(|m| !m.is_empty()) || limits.is_some_and(|m| !m.is_empty()) {
            any = true;
        }
        let complete = limits.is_some_and(|l| l.contains_key("cpu") && l.contains_key("memory"))
            && requests.is_none_or(|req| {
                req.iter()
                    .all(|(k, v)| limits.and_then(|l| l.get(k)) == Some(v))
            });
        if !complete {
            guaranteed = false;
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

fn validate_container(c: &core::Container, path: &str, errs: &mut Vec<FieldError>) {
    if c.name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    } else {
        for e in validation::dns1123_label(&c.name) {
            errs.push(FieldError::invalid(
                format!("{path}.name"),
                c.name.as_str(),
                e,
            ));
        }
    }
    if c.image.as_deref().is_none_or(|i| i.trim().is_empty()) {
        errs.push(FieldError::required(format!("{path}.image"), ""));
    }
    if let Some(p) = &c.image_pull_policy {
        if !["Always", "IfNotPresent", "Never"].contains(&p.as_str()) {
            errs.push(FieldError::not_supported(
                format!("{path}.imagePullPolicy"),
                p.as_str(),
                &["Always", "IfNotPresent", "Never"],
            ));
        }
    }
    let mut seen_ports = Vec::new();
    for (i, p) in c.ports.iter().flatten().enumerate() {
        let pp = format!("{path}.ports[{i}]");
        if let Some(e) = validation::port_number(p.container_port, &format!("{pp}.containerPort")) {
            errs.push(e);
        }
        if let Some(name) = &p.name {
            errs.extend(validation::port_name(name, &format!("{pp}.name")));
            if seen_ports.contains(name) {
                errs.push(FieldError::duplicate(format!("{pp}.name"), name.as_str()));
            }
            seen_ports.push(name.clone());
        }
        if let Some(proto) = &p.protocol {
            if !["TCP", "UDP", "SCTP"].contains(&proto.as_str()) {
                errs.push(FieldError::not_supported(
                    format!("{pp}.protocol"),
                    proto.as_str(),
                    &["SCTP", "TCP", "UDP"],
                ));
            }
        }
    }
    let mut seen_env = Vec::new();
    for (i, e) in c.env.iter().flatten().enumerate() {
        if e.name.is_empty() {
            errs.push(FieldError::required(format!("{path}.env[{i}].name"), ""));
        }
        seen_env.push(e.name.clone());
    }
}

/// Validates a pod spec at `path` (`spec`, `spec.template.spec`).
pub fn validate_pod_spec(spec: &core::PodSpec, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if spec.containers.is_empty() {
        errs.push(FieldError::required(format!("{path}.containers"), ""));
    }
    let mut names: Vec<&str> = Vec::new();
    for (list, field) in [
        (
            spec.init_containers.as_deref().unwrap_or_default(),
            "initContainers",
        ),
        (spec.containers.as_slice(), "containers"),
    ] {
        for (i, c) in list.iter().enumerate() {
            let p = format!("{path}.{field}[{i}]");
            validate_container(c, &p, &mut errs);
            if !c.name.is_empty() && names.contains(&c.name.as_str()) {
                errs.push(FieldError::duplicate(format!("{p}.name"), c.name.as_str()));
            }
            names.push(&c.name);
        }
    }
    if let Some(p) = &spec.restart_policy {
        if !["Always", "OnFailure", "Never"].contains(&p.as_str()) {
            errs.push(FieldError::not_supported(
                format!("{path}.restartPolicy"),
                p.as_str(),
                &["Always", "OnFailure", "Never"],
            ));
        }
    }
    if let Some(p) = &spec.dns_policy {
        let ok = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
        if !ok.contains(&p.as_str()) {
            errs.push(FieldError::not_supported(
                format!("{path}.dnsPolicy"),
                p.as_str(),
                &ok,
            ));
        }
    }
    if let Some(g) = spec.termination_grace_period_seconds {
        if g < 0 {
            errs.push(FieldError::invalid(
                format!("{path}.terminationGracePeriodSeconds"),
                g,
                "must be greater than or equal to 0",
            ));
        }
    }
    let mut volumes: Vec<&str> = Vec::new();
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        let p = format!("{path}.volumes[{i}].name");
        for e in validation::dns1123_label(&v.name) {
            errs.push(FieldError::invalid(p.clone(), v.name.as_str(), e));
        }
        if volumes.contains(&v.name.as_str()) {
            errs.push(FieldError::duplicate(p, v.name.as_str()));
        }
        volumes.push(&v.name);
    }
    for (ci, c) in spec.containers.iter().enumerate() {
        for (mi, m) in c.volume_mounts.iter().flatten().enumerate() {
            if !volumes.contains(&m.name.as_str()) {
                errs.push(FieldError {
                    kind: validation::ErrorType::NotSupported,
                    field: format!("{path}.containers[{ci}].volumeMounts[{mi}].name"),
                    value: Some(m.name.clone().into()),
                    detail: String::new(),
                });
            }
        }
    }
    errs
}

/// What a pod update may change: images, activeDeadlineSeconds,
/// tolerations (additions) and terminationGracePeriodSeconds.
fn pod_spec_mutable_parts_masked(spec: &core::PodSpec) -> core::PodSpec {
    let mut s = spec.clone();
    for c in s
        .containers
        .iter_mut()
        .chain(s.init_containers.iter_mut().flatten())
    {
        c.image = None;
    }
    s.active_deadline_seconds = None;
    s.tolerations = None;
    s.termination_grace_period_seconds = None;
    s
}

fn pods() -> KindSpec<core::Pod> {
    KindSpec {
        defaults: |pod| {
            if let Some(spec) = pod.spec.as_mut() {
                default_pod_spec(spec);
            }
        },
        on_create: |pod| {
            let Some(spec) = pod.spec.as_mut() else {
                return;
            };
            // ServiceAccount admission and DefaultTolerationSeconds.
            if spec.service_account_name.is_none() {
                spec.service_account_name = Some("default".into());
            }
            if spec.service_account.is_none() {
                spec.service_account = spec.service_account_name.clone();
            }
            let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
            for key in [
                "node.kubernetes.io/not-ready",
                "node.kubernetes.io/unreachable",
            ] {
                if !tolerations.iter().any(|t| t.key.as_deref() == Some(key)) {
                    tolerations.push(core::Toleration {
                        key: Some(key.into()),
                        operator: Some("Exists".into()),
                        effect: Some("NoExecute".into()),
                        toleration_seconds: Some(300),
                        value: None,
                    });
                }
            }
            if spec.priority.is_none() {
                spec.priority = Some(0);
            }
            let qos = qos_class(spec);
            let status = pod.status.get_or_insert_with(Default::default);
            if status.phase.is_none() {
                status.phase = Some("Pending".into());
            }
            status.qos_class = Some(qos.into());
        },
        validate: |pod, old| {
            let Some(spec) = &pod.spec else {
                return vec![FieldError::required("spec", "")];
            };
            let mut errs = validate_pod_spec(spec, "spec");
            if let Some(old_spec) = old.and_then(|o| o.spec.as_ref()) {
                if pod_spec_mutable_parts_masked(spec) != pod_spec_mutable_parts_masked(old_spec) {
                    errs.push(FieldError::forbidden(
                        "spec",
                        "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
                    ));
                }
            }
            errs
        },
        columns: || {
            vec![
                name_column(),
                Column::new("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
                Column::new("Status", "string", "The aggregate status of the containers in this pod."),
                Column::new("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
                age_column(),
                Column::new("IP", "string", "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.").wide(),
                Column::new("Node", "string", "NodeName is a request to schedule this pod onto a specific node.").wide(),
                Column::new("Nominated Node", "string", "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods.").wide(),
                Column::new("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness.").wide(),
            ]
        },
        row: pod_row,
        fields: &[
            ("spec.nodeName", |p| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_default()
            }),
            ("spec.restartPolicy", |p| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.restart_policy.clone())
                    .unwrap_or_default()
            }),
            ("spec.schedulerName", |p| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.scheduler_name.clone())
                    .unwrap_or_default()
            }),
            ("spec.serviceAccountName", |p| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.service_account_name.clone())
                    .unwrap_or_default()
            }),
            ("spec.hostNetwork", |p| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.host_network)
                    .unwrap_or(false)
                    .to_string()
            }),
            ("status.phase", |p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_default()
            }),
            ("status.podIP", |p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.pod_ip.clone())
                    .unwrap_or_default()
            }),
            ("status.nominatedNodeName", |p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.nominated_node_name.clone())
                    .unwrap_or_default()
            }),
        ],
    }
}

/// The pod printer: READY, STATUS (with the container reasons), RESTARTS
/// (with the last restart's age), then the wide columns.
fn pod_row(pod: &core::Pod, now: jiff::Timestamp) -> Vec<Value> {
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let total = spec.containers.len();
    let mut ready = 0;
    let mut restarts = 0;
    let mut last_restart: Option<jiff::Timestamp> = None;
    let mut reason = status
        .reason
        .clone()
        .or_else(|| status.phase.clone())
        .unwrap_or_else(|| "Pending".into());
    for (i, c) in status.init_container_statuses.iter().flatten().enumerate() {
        restarts += c.restart_count;
        let state = c.state.clone().unwrap_or_default();
        if let Some(t) = &state.terminated {
            if t.exit_code == 0 {
                continue;
            }
            reason = match &t.reason {
                Some(r) if !r.is_empty() => format!("Init:{r}"),
                _ => format!("Init:ExitCode:{}", t.exit_code),
            };
            break;
        }
        if let Some(w) = &state.waiting {
            if let Some(r) = w
                .reason
                .as_deref()
                .filter(|r| !r.is_empty() && *r != "PodInitializing")
            {
                reason = format!("Init:{r}");
                break;
            }
        }
        reason = format!(
            "Init:{i}/{}",
            spec.init_containers.as_ref().map_or(0, Vec::len)
        );
        break;
    }
    let mut has_running = false;
    for c in status.container_statuses.iter().flatten().rev() {
        restarts += c.restart_count;
        if let Some(t) = c.last_state.as_ref().and_then(|s| s.terminated.as_ref()) {
            if let Some(f) = &t.finished_at {
                if last_restart.is_none_or(|l| f.0 > l) {
                    last_restart = Some(f.0);
                }
            }
        }
        let state = c.state.clone().unwrap_or_default();
        if let Some(w) = state
            .waiting
            .as_ref()
            .and_then(|w| w.reason.clone())
            .filter(|r| !r.is_empty())
        {
            reason = w;
        } else if let Some(t) = &state.terminated {
            reason = match &t.reason {
                Some(r) if !r.is_empty() => r.clone(),
                _ => match &t.signal {
                    Some(s) if *s != 0 => format!("Signal:{s}"),
                    _ => format!("ExitCode:{}", t.exit_code),
                },
            };
        } else if state.running.is_some() && c.ready {
            has_running = true;
            ready += 1;
        } else if state.running.is_some() {
            has_running = true;
        }
    }
    if reason == "Completed" && has_running {
        let ready_condition = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        reason = if ready_condition {
            "Running".into()
        } else {
            "NotReady".into()
        };
    }
    if pod.metadata.deletion_timestamp.is_some() {
        reason = if status.reason.as_deref() == Some("NodeLost") {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    let restarts_cell = match last_restart {
        Some(t) if restarts > 0 => format!(
            "{restarts} ({} ago)",
            human_duration(now.duration_since(t).as_secs())
        ),
        _ => restarts.to_string(),
    };
    let gates = spec.readiness_gates.clone().unwrap_or_default();
    let gates_cell = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let true_gates = gates
            .iter()
            .filter(|g| {
                status
                    .conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == g.condition_type && c.status == "True")
            })
            .count();
        format!("{true_gates}/{}", gates.len())
    };
    vec![
        name_of(&pod.metadata),
        format!("{ready}/{total}").into(),
        reason.into(),
        restarts_cell.into(),
        age_of(&pod.metadata, now),
        or_none(status.pod_ip.as_deref()).into(),
        or_none(spec.node_name.as_deref()).into(),
        or_none(status.nominated_node_name.as_deref()).into(),
        gates_cell.into(),
    ]
}

// ---------------------------------------------------------------- services

fn services() -> KindSpec<core::Service> {
    KindSpec {
        defaults: |svc| {
            let spec = svc.spec.get_or_insert_with(Default::default);
            if spec.type_.is_none() {
                spec.type_ = Some(
                    if spec.external_name.is_some() {
                        "ExternalName"
                    } else {
                        "ClusterIP"
                    }
                    .into(),
                );
            }
            if spec.session_affinity.is_none() {
                spec.session_affinity = Some("None".into());
            }
            let external = spec.type_.as_deref() == Some("ExternalName");
            if !external {
                if spec.internal_traffic_policy.is_none() {
                    spec.internal_traffic_policy = Some("Cluster".into());
                }
                if spec.ip_families.is_none() && spec.cluster_ip.as_deref() != Some("None") {
                    spec.ip_families = Some(vec!["IPv4".into()]);
                }
                if spec.ip_family_policy.is_none() {
                    spec.ip_family_policy = Some("SingleStack".into());
                }
            }
            if matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"))
                && spec.external_traffic_policy.is_none()
            {
                spec.external_traffic_policy = Some("Cluster".into());
            }
            for p in spec.ports.iter_mut().flatten() {
                if p.protocol.is_none() {
                    p.protocol = Some("TCP".into());
                }
                if p.target_port.is_none() {
                    p.target_port = Some(IntOrString::Int(p.port));
                }
            }
            if svc.status.is_none() {
                svc.status = Some(core::ServiceStatus {
                    load_balancer: Some(Default::default()),
                    ..Default::default()
                });
            }
        },
        on_create: |_| {},
        validate: |svc, old| {
            let mut errs = Vec::new();
            let Some(spec) = &svc.spec else {
                return vec![FieldError::required("spec", "")];
            };
            let types = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
            let ty = spec.type_.as_deref().unwrap_or("ClusterIP");
            if !types.contains(&ty) {
                errs.push(FieldError::not_supported("spec.type", ty, &types));
            }
            let ports = spec.ports.as_deref().unwrap_or_default();
            let headless = spec.cluster_ip.as_deref() == Some("None");
            if ports.is_empty() && ty != "ExternalName" && !headless {
                errs.push(FieldError::required("spec.ports", ""));
            }
            if ty == "ExternalName" && spec.external_name.as_deref().is_none_or(str::is_empty) {
                errs.push(FieldError::required("spec.externalName", ""));
            }
            let mut names: Vec<&str> = Vec::new();
            for (i, p) in ports.iter().enumerate() {
                let path = format!("spec.ports[{i}]");
                if let Some(e) = validation::port_number(p.port, &format!("{path}.port")) {
                    errs.push(e);
                }
                match p.name.as_deref() {
                    Some(n) if !n.is_empty() => {
                        for e in validation::dns1123_label(n) {
                            errs.push(FieldError::invalid(format!("{path}.name"), n, e));
                        }
                        if names.contains(&n) {
                            errs.push(FieldError::duplicate(format!("{path}.name"), n));
                        }
                        names.push(n);
                    }
                    _ if ports.len() > 1 => {
                        errs.push(FieldError::required(format!("{path}.name"), ""))
                    }
                    _ => {}
                }
                if let Some(proto) = &p.protocol {
                    if !["TCP", "UDP", "SCTP"].contains(&proto.as_str()) {
                        errs.push(FieldError::not_supported(
                            format!("{path}.protocol"),
                            proto.as_str(),
                            &["SCTP", "TCP", "UDP"],
                        ));
                    }
                }
                if let Some(np) = p.node_port {
                    if !(30000..=32767).contains(&np) {
                        errs.push(FieldError::invalid(format!("{path}.nodePort"), np, "provided port is not in the valid range. The range of valid ports is 30000-32767"));
                    }
                }
            }
            if let (Some(old_ip), Some(new_ip)) = (
                old.and_then(|o| o.spec.as_ref())
                    .and_then(|s| s.cluster_ip.as_deref()),
                spec.cluster_ip.as_deref(),
            ) {
                if old_ip != new_ip && !old_ip.is_empty() {
                    errs.push(FieldError::invalid(
                        "spec.clusterIPs[0]",
                        vec![Value::from(new_ip)],
                        "may not change once set",
                    ));
                }
            }
            errs
        },
        columns: || {
            vec![
                name_column(),
                Column::new("Type", "string", "The type of service."),
                Column::new("Cluster-IP", "string", "The cluster IP of the service."),
                Column::new("External-IP", "string", "The external IP of the service."),
                Column::new("Port(s)", "string", "The ports of the service."),
                age_column(),
                Column::new("Selector", "string", "Route service traffic to pods with label keys and values matching this selector.").wide(),
            ]
        },
        row: |svc, now| {
            let spec = svc.spec.clone().unwrap_or_default();
            let ty = spec.type_.clone().unwrap_or_else(|| "ClusterIP".into());
            let cluster_ip = match spec.cluster_ip.as_deref() {
                Some(ip) if !ip.is_empty() => ip.to_string(),
                _ => "<none>".into(),
            };
            let ingress: Vec<String> = svc
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .map(|i| {
                    i.iter()
                        .filter_map(|i| i.ip.clone().or_else(|| i.hostname.clone()))
                        .collect()
                })
                .unwrap_or_default();
            let mut external: Vec<String> = spec.external_ips.clone().unwrap_or_default();
            let external_cell = match ty.as_str() {
                "ExternalName" => spec.external_name.clone().unwrap_or_default(),
                "LoadBalancer" => {
                    external.extend(ingress);
                    if external.is_empty() {
                        "<pending>".into()
                    } else {
                        external.join(",")
                    }
                }
                _ => {
                    if external.is_empty() {
                        "<none>".into()
                    } else {
                        external.join(",")
                    }
                }
            };
            let ports: Vec<String> = spec
                .ports
                .iter()
                .flatten()
                .map(|p| {
                    let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
                    match p.node_port {
                        Some(np) if np != 0 => format!("{}:{np}/{proto}", p.port),
                        _ => format!("{}/{proto}", p.port),
                    }
                })
                .collect();
            let selector = spec
                .selector
                .as_ref()
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_else(|| "<none>".into());
            vec![
                name_of(&svc.metadata),
                ty.into(),
                cluster_ip.into(),
                external_cell.into(),
                if ports.is_empty() {
                    "<none>".to_string()
                } else {
                    ports.join(",")
                }
                .into(),
                age_of(&svc.metadata, now),
                selector.into(),
            ]
        },
        fields: &[
            ("spec.clusterIP", |s| {
                s.spec
                    .as_ref()
                    .and_then(|s| s.cluster_ip.clone())
                    .unwrap_or_default()
            }),
            ("spec.type", |s| {
                s.spec
                    .as_ref()
                    .and_then(|s| s.type_.clone())
                    .unwrap_or_default()
            }),
        ],
    }
}

/// The next free cluster IP of `10.96.0.0/12` given the ones in use
/// (`10.96.0.1` is the `kubernetes` service's).
pub fn allocate_cluster_ip(in_use: &[String]) -> Option<String> {
    let base: u32 = u32::from(std::net::Ipv4Addr::new(10, 96, 0, 0));
    (10..(1u32 << 20) - 1)
        .map(|offset| std::net::Ipv4Addr::from(base + offset).to_string())
        .find(|ip| !in_use.contains(ip))
}

// ---------------------------------------------------------------- config

/// Keys of config maps and secrets: `[-._a-zA-Z0-9]+`, not `.` or `..`.
fn validate_data_keys<'a>(keys: impl Iterator<Item = &'a String>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for k in keys {
        let ok = !k.is_empty()
            && k.len() <= 253
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && k != "."
            && k != "..";
        if !ok {
            errs.push(FieldError::invalid(
                path,
                k.as_str(),
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
            ));
        }
    }
    errs
}

fn configmaps() -> KindSpec<core::ConfigMap> {
    KindSpec {
        defaults: |_| {},
        on_create: |_| {},
        validate: |cm, old| {
            let mut errs = validate_data_keys(cm.data.iter().flatten().map(|(k, _)| k), "data");
            errs.extend(validate_data_keys(
                cm.binary_data.iter().flatten().map(|(k, _)| k),
                "binaryData",
            ));
            for k in cm.data.iter().flatten().map(|(k, _)| k) {
                if cm.binary_data.as_ref().is_some_and(|b| b.contains_key(k)) {
                    errs.push(FieldError::invalid(
                        "data",
                        k.as_str(),
                        "duplicate of key present in binaryData",
                    ));
                }
            }
            if old.is_some_and(|o| o.immutable == Some(true)) {
                let o = old.map(|o| (&o.data, &o.binary_data));
                if o != Some((&cm.data, &cm.binary_data)) {
                    errs.push(FieldError::forbidden(
                        "data",
                        "field is immutable when `immutable` is set",
                    ));
                }
            }
            errs
        },
        columns: || {
            vec![
                name_column(),
                Column::new("Data", "integer", "Number of data entries."),
                age_column(),
            ]
        },
        row: |cm, now| {
            let n = cm.data.as_ref().map_or(0, BTreeMap::len)
                + cm.binary_data.as_ref().map_or(0, BTreeMap::len);
            vec![name_of(&cm.metadata), n.into(), age_of(&cm.metadata, now)]
        },
        fields: &[],
    }
}

fn secrets() -> KindSpec<core::Secret> {
    KindSpec {
        defaults: |s| {
            if s.type_.is_none() {
                s.type_ = Some("Opaque".into());
            }
            // stringData is write-only: merged into data, never stored.
            if let Some(strings) = s.string_data.take() {
                let data = s.data.get_or_insert_with(BTreeMap::new);
                for (k, v) in strings {
                    data.insert(k, k8s_openapi::ByteString(v.into_bytes()));
                }
            }
        },
        on_create: |_| {},
        validate: |s, old| {
            let mut errs = validate_data_keys(s.data.iter().flatten().map(|(k, _)| k), "data");
            let total: usize = s.data.iter().flatten().map(|(_, v)| v.0.len()).sum();
            if total > 1024 * 1024 {
                errs.push(FieldError {
                    kind: validation::ErrorType::TooLong,
                    field: "data".into(),
                    value: None,
                    detail: "may not be more than 1048576 bytes".into(),
                });
            }
            if let Some(o) = old {
                if o.type_ != s.type_ {
                    errs.push(FieldError::invalid(
                        "type",
                        s.type_.clone().unwrap_or_default(),
                        "field is immutable",
                    ));
                }
            }
            errs
        },
        columns: || {
            vec![
                name_column(),
                Column::new("Type", "string", "The type of the secret"),
                Column::new("Data", "integer", "The number of entries in the secret"),
                age_column(),
            ]
        },
        row: |s, now| {
            vec![
                name_of(&s.metadata),
                s.type_.clone().unwrap_or_default().into(),
                s.data.as_ref().map_or(0, BTreeMap::len).into(),
                age_of(&s.metadata, now),
            ]
        },
        fields: &[("type", |s| s.type_.clone().unwrap_or_default())],
    }
}

fn serviceaccounts() -> KindSpec<core::ServiceAccount> {
    KindSpec {
        columns: || {
            vec![name_column(), Column::new("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."), age_column()]
        },
        ..KindSpec::plain(
            |sa, now| {
                vec![
                    name_of(&sa.metadata),
                    sa.secrets.as_ref().map_or(0, Vec::len).into(),
                    age_of(&sa.metadata, now),
                ]
            },
            name_age_columns,
        )
    }
}

// ---------------------------------------------------------------- nodes

fn nodes() -> KindSpec<core::Node> {
    KindSpec {
        fields: &[("spec.unschedulable", |n| {
            n.spec
                .as_ref()
                .and_then(|s| s.unschedulable)
                .unwrap_or(false)
                .to_string()
        })],
        columns: || {
            vec![
                name_column(),
                Column::new("Status", "string", "The status of the node"),
                Column::new("Roles", "string", "The roles of the node"),
                age_column(),
                Column::new("Version", "string", "Kubelet Version reported by the node."),
                Column::new("Internal-IP", "string", "List of addresses reachable to the node. Queried from cloud provider, if available.").wide(),
                Column::new("External-IP", "string", "List of addresses reachable to the node. Queried from cloud provider, if available.").wide(),
                Column::new("OS-Image", "string", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).").wide(),
                Column::new("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).").wide(),
                Column::new("Container-Runtime", "string", "Container runtime version reported by the node through runtime remote API (e.g. containerd://1.4.2).").wide(),
            ]
        },
        ..KindSpec::plain(node_row, name_age_columns)
    }
}

fn node_row(node: &core::Node, now: jiff::Timestamp) -> Vec<Value> {
    let status = node.status.clone().unwrap_or_default();
    let mut states: Vec<String> = Vec::new();
    match status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
    {
        Some(c) if c.status == "True" => states.push("Ready".into()),
        Some(_) => states.push("NotReady".into()),
        None => states.push("Unknown".into()),
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        states.push("SchedulingDisabled".into());
    }
    let roles: Vec<String> = node
        .metadata
        .labels
        .iter()
        .flatten()
        .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/").map(String::from))
        .collect();
    let address = |ty: &str| {
        status
            .addresses
            .iter()
            .flatten()
            .find(|a| a.type_ == ty)
            .map(|a| a.address.clone())
            .unwrap_or_else(|| "<none>".into())
    };
    let info = status.node_info.clone();
    vec![
        name_of(&node.metadata),
        states.join(",").into(),
        if roles.is_empty() {
            "<none>".to_string()
        } else {
            roles.join(",")
        }
        .into(),
        age_of(&node.metadata, now),
        info.as_ref()
            .map(|i| i.kubelet_version.clone())
            .unwrap_or_default()
            .into(),
        address("InternalIP").into(),
        address("ExternalIP").into(),
        info.as_ref()
            .map(|i| i.os_image.clone())
            .unwrap_or_else(|| "<unknown>".into())
            .into(),
        info.as_ref()
            .map(|i| i.kernel_version.clone())
            .unwrap_or_else(|| "<unknown>".into())
            .into(),
        info.as_ref()
            .map(|i| i.container_runtime_version.clone())
            .unwrap_or_else(|| "<unknown>".into())
            .into(),
    ]
}

// ---------------------------------------------------------------- endpoints

fn endpoints() -> KindSpec<core::Endpoints> {
    KindSpec {
        columns: || {
            vec![
                name_column(),
                Column::new("Endpoints", "string", "Endpoints of the service"),
                age_column(),
            ]
        },
        ..KindSpec::plain(
            |ep, now| {
                let mut list: Vec<String> = Vec::new();
                for s in ep.subsets.iter().flatten() {
                    for a in s.addresses.iter().flatten() {
                        let ports = s.ports.as_deref().unwrap_or_default();
                        if ports.is_empty() {
                            list.push(a.ip.clone());
                        }
                        for p in ports {
                            list.push(format!("{}:{}", a.ip, p.port));
                        }
                    }
                }
                let cell = match list.len() {
                    0 => "<none>".to_string(),
                    n if n > 3 => format!("{} + {} more...", list[..3].join(","), n - 3),
                    _ => list.join(","),
                };
                vec![
                    name_of(&ep.metadata),
                    cell.into(),
                    age_of(&ep.metadata, now),
                ]
            },
            name_age_columns,
        )
    }
}

// ---------------------------------------------------------------- events

fn events() -> KindSpec<core::Event> {
    KindSpec {
        fields: &[
            ("involvedObject.kind", |e| {
                e.involved_object.kind.clone().unwrap_or_default()
            }),
            ("involvedObject.namespace", |e| {
                e.involved_object.namespace.clone().unwrap_or_default()
            }),
            ("involvedObject.name", |e| {
                e.involved_object.name.clone().unwrap_or_default()
            }),
            ("involvedObject.uid", |e| {
                e.involved_object.uid.clone().unwrap_or_default()
            }),
            ("involvedObject.apiVersion", |e| {
                e.involved_object.api_version.clone().unwrap_or_default()
            }),
            ("involvedObject.resourceVersion", |e| {
                e.involved_object
                    .resource_version
                    .clone()
                    .unwrap_or_default()
            }),
            ("involvedObject.fieldPath", |e| {
                e.involved_object.field_path.clone().unwrap_or_default()
            }),
            ("reason", |e| e.reason.clone().unwrap_or_default()),
            ("reportingComponent", |e| {
                e.reporting_component.clone().unwrap_or_default()
            }),
            ("source", |e| {
                e.source
                    .as_ref()
                    .and_then(|s| s.component.clone())
                    .unwrap_or_default()
            }),
            ("type", |e| e.type_.clone().unwrap_or_default()),
        ],
        validate: |e, _| {
            let mut errs = Vec::new();
            if e.involved_object.name.as_deref().is_none_or(str::is_empty)
                && e.involved_object.kind.is_none()
            {
                errs.push(FieldError::required("involvedObject", ""));
            }
            errs
        },
        columns: event_columns,
        ..KindSpec::plain(event_row, name_age_columns)
    }
}

/// The event printer's columns (core and events.k8s.io alike).
pub fn event_columns() -> Vec<Column> {
    vec![
        Column::new("Last Seen", "string", "Time when last Event occurred"),
        Column::new("Type", "string", "Type of event"),
        Column::new("Reason", "string", "Reason of the event"),
        Column::new("Object", "string", "Object that the event is about"),
        Column::new(
            "Subobject",
            "string",
            "The sub-object that the event is about",
        )
        .wide(),
        Column::new("Source", "string", "Component which reported the event").wide(),
        Column::new(
            "Message",
            "string",
            "A human-readable description of the status of this operation.",
        ),
        Column::new("First Seen", "string", "Time when first Event occurred").wide(),
        Column::new("Count", "string", "Number of times this event has occurred").wide(),
        Column::new("Name", "string", "Name of the event").wide(),
    ]
}

fn event_row(e: &core::Event, now: jiff::Timestamp) -> Vec<Value> {
    let ts = |t: Option<jiff::Timestamp>| match t {
        Some(t) => human_duration(now.duration_since(t).as_secs()),
        None => "<unknown>".into(),
    };
    let last = e
        .last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let first = e.first_timestamp.as_ref().map(|t| t.0).or(last);
    let object = format!(
        "{}/{}",
        e.involved_object
            .kind
            .clone()
            .unwrap_or_default()
            .to_lowercase(),
        e.involved_object.name.clone().unwrap_or_default()
    );
    let source = e
        .source
        .as_ref()
        .and_then(|s| s.component.clone())
        .or_else(|| e.reporting_component.clone())
        .unwrap_or_default();
    vec![
        ts(last).into(),
        e.type_.clone().unwrap_or_default().into(),
        e.reason.clone().unwrap_or_default().into(),
        object.into(),
        e.involved_object
            .field_path
            .clone()
            .unwrap_or_default()
            .into(),
        source.into(),
        e.message
            .clone()
            .unwrap_or_default()
            .trim()
            .to_string()
            .into(),
        ts(first).into(),
        e.count.unwrap_or(1).into(),
        name_of(&e.metadata),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Kind;
    use serde_json::json;

    #[test]
    fn pull_policy_defaults() {
        for (image, want) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.25", "IfNotPresent"),
            ("registry:5000/nginx", "Always"),
            ("registry:5000/nginx:1", "IfNotPresent"),
            ("nginx@sha256:abc", "IfNotPresent"),
        ] {
            assert_eq!(default_pull_policy(image), want, "{image}");
        }
    }

    fn pod(value: Value) -> Value {
        let spec = pods();
        let mut v = spec.normalize(value).expect("decodes");
        spec.default(&mut v, true);
        v
    }

    #[test]
    fn pod_defaults_as_the_real_server() {
        let p = pod(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 80}]}]}}),
        );
        let s = &p["spec"];
        assert_eq!(s["restartPolicy"], "Always");
        assert_eq!(s["terminationGracePeriodSeconds"], 30);
        assert_eq!(s["dnsPolicy"], "ClusterFirst");
        assert_eq!(s["schedulerName"], "default-scheduler");
        assert_eq!(s["serviceAccountName"], "default");
        assert_eq!(s["enableServiceLinks"], true);
        assert_eq!(
            s["containers"][0]["terminationMessagePath"],
            "/dev/termination-log"
        );
        assert_eq!(s["containers"][0]["terminationMessagePolicy"], "File");
        assert_eq!(s["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(s["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(s["tolerations"].as_array().map(Vec::len), Some(2));
        assert_eq!(p["status"]["phase"], "Pending");
        assert_eq!(p["status"]["qosClass"], "BestEffort");
    }

    #[test]
    fn pod_validation() {
        let spec = pods();
        let check = |v: Value| -> Vec<String> {
            let v = spec.normalize(v).expect("decodes");
            spec.validate(&v, None)
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert!(check(
            json!({"metadata": {}, "spec": {"containers": [{"name": "c", "image": "x"}]}})
        )
        .is_empty());
        let cases: &[(Value, &str)] = &[
            (
                json!({"metadata": {}, "spec": {"containers": []}}),
                "spec.containers: Required value",
            ),
            (
                json!({"metadata": {}, "spec": {"containers": [{"name": "c"}]}}),
                "spec.containers[0].image: Required value",
            ),
            (
                json!({"metadata": {}, "spec": {"containers": [{"name": "Bad_Name", "image": "x"}]}}),
                "spec.containers[0].name: Invalid value: \"Bad_Name\"",
            ),
            (
                json!({"metadata": {}, "spec": {"containers": [{"name": "c", "image": "x"}, {"name": "c", "image": "y"}]}}),
                "spec.containers[1].name: Duplicate value: \"c\"",
            ),
            (
                json!({"metadata": {}, "spec": {"restartPolicy": "Sometimes", "containers": [{"name": "c", "image": "x"}]}}),
                "spec.restartPolicy: Unsupported value: \"Sometimes\"",
            ),
            (
                json!({"metadata": {}, "spec": {"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 70000}]}]}}),
                "spec.containers[0].ports[0].containerPort: Invalid value: 70000",
            ),
            (
                json!({"metadata": {}, "spec": {"containers": [{"name": "c", "image": "x", "imagePullPolicy": "Sometimes"}]}}),
                "spec.containers[0].imagePullPolicy: Unsupported value",
            ),
            (
                json!({"metadata": {}, "spec": {"containers": [{"name": "c", "image": "x", "volumeMounts": [{"name": "v", "mountPath": "/v"}]}]}}),
                "spec.containers[0].volumeMounts[0].name: Unsupported value: \"v\"",
            ),
            (json!({"metadata": {}}), "spec: Required value"),
        ];
        for (v, want) in cases {
            let errs = check(v.clone());
            assert!(errs.iter().any(|e| e.starts_with(want)), "{v}: {errs:?}");
        }
    }

    #[test]
    fn pod_updates_may_change_only_images() {
        let spec = pods();
        let old =
            pod(json!({"metadata": {}, "spec": {"containers": [{"name": "c", "image": "x"}]}}));
        let mut image = old.clone();
        image["spec"]["containers"][0]["image"] = json!("y");
        assert!(spec.validate(&image, Some(&old)).is_empty());
        let mut other = old.clone();
        other["spec"]["containers"][0]["workingDir"] = json!("/tmp");
        assert!(spec.validate(&other, Some(&old))[0]
            .to_string()
            .starts_with("spec: Forbidden: pod updates may not change fields"));
    }

    #[test]
    fn pod_rows() {
        let now: jiff::Timestamp = "2026-01-01T00:10:00Z".parse().expect("valid");
        let p: core::Pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.5", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "image": "", "imageID": "", "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 2, "image": "", "imageID": "", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-01-01T00:05:00Z"}}}
            ]}
        })).expect("decodes");
        let row = pod_row(&p, now);
        assert_eq!(
            row,
            vec![
                json!("web"),
                json!("1/2"),
                json!("CrashLoopBackOff"),
                json!("2 (5m ago)"),
                json!("10m"),
                json!("10.0.0.5"),
                json!("n1"),
                json!("<none>"),
                json!("<none>")
            ]
        );
        let mut deleting = p.clone();
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
        assert_eq!(pod_row(&deleting, now)[2], "Terminating");
        assert_eq!(pods().columns().len(), 9);
        assert_eq!(
            pods().columns().iter().filter(|c| c.priority == 0).count(),
            5
        );
    }

    #[test]
    fn services_default_and_print() {
        let spec = services();
        let mut v = spec.normalize(json!({"metadata": {"name": "s"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})).expect("decodes");
        spec.default(&mut v, true);
        assert_eq!(v["spec"]["type"], "ClusterIP");
        assert_eq!(v["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(v["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(v["spec"]["sessionAffinity"], "None");
        v["spec"]["clusterIP"] = json!("10.96.0.10");
        let row = spec.row(&v, jiff::Timestamp::now());
        assert_eq!(row[1], "ClusterIP");
        assert_eq!(row[2], "10.96.0.10");
        assert_eq!(row[3], "<none>");
        assert_eq!(row[4], "80/TCP");
        assert_eq!(row[6], "app=web");
        let bad = spec.normalize(json!({"metadata": {}, "spec": {"type": "Weird", "ports": [{"port": 0}, {"port": 81}]}})).expect("decodes");
        let errs: Vec<String> = spec
            .validate(&bad, None)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(
            errs.iter()
                .any(|e| e.starts_with("spec.type: Unsupported value: \"Weird\"")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("spec.ports[0].port: Invalid value: 0")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("spec.ports[0].name: Required value")),
            "{errs:?}"
        );
    }

    #[test]
    fn cluster_ips() {
        assert_eq!(allocate_cluster_ip(&[]), Some("10.96.0.10".into()));
        assert_eq!(
            allocate_cluster_ip(&["10.96.0.10".into()]),
            Some("10.96.0.11".into())
        );
    }

    #[test]
    fn secrets_fold_string_data() {
        let spec = secrets();
        let mut v = spec
            .normalize(json!({"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}}))
            .expect("decodes");
        spec.default(&mut v, true);
        assert_eq!(v["type"], "Opaque");
        assert_eq!(v["data"]["password"], "aHVudGVyMg==");
        assert!(v.get("stringData").is_none());
        let bad = spec
            .normalize(json!({"metadata": {}, "data": {"bad key": ""}}))
            .expect("decodes");
        assert!(!spec.validate(&bad, None).is_empty());
    }

    #[test]
    fn namespaces_get_their_label_and_finalizer() {
        let spec = namespaces();
        let mut v = spec
            .normalize(json!({"metadata": {"name": "team"}}))
            .expect("decodes");
        spec.default(&mut v, true);
        assert_eq!(
            v["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "team"
        );
        assert_eq!(v["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(v["status"]["phase"], "Active");
    }
}
