//! `discovery.k8s.io/v1`: endpoint slices.

use k8s_openapi::api::discovery::v1 as discovery;

use super::{age_column, age_of, name_column, name_of};
use crate::machinery::schema::FieldMeta;
use crate::machinery::table::Column;
use crate::machinery::validation::FieldError;
use crate::registry::{Group, KindSpec, Resource};

pub fn group() -> Group {
    Group {
        resources: vec![Resource::of::<discovery::EndpointSlice>(
            "endpointslices",
            endpointslices(),
        )],
        patch_meta: PATCH_META,
        schema_defaults: &[],
        add_schemas: |g| {
            super::add::<discovery::EndpointSlice>(g);
        },
    }
}

pub const PATCH_META: &[FieldMeta] = &[
    FieldMeta::atomic("io.k8s.api.discovery.v1.EndpointSlice", "endpoints"),
    FieldMeta::atomic("io.k8s.api.discovery.v1.EndpointSlice", "ports"),
];

fn endpointslices() -> KindSpec<discovery::EndpointSlice> {
    KindSpec {
        validate: |s, _| {
            let ok = ["IPv4", "IPv6", "FQDN"];
            if ok.contains(&s.address_type.as_str()) {
                Vec::new()
            } else {
                vec![FieldError::not_supported(
                    "addressType",
                    s.address_type.as_str(),
                    &ok,
                )]
            }
        },
        columns: || {
            vec![
                name_column(),
                Column::new(
                    "AddressType",
                    "string",
                    "The type of address held in the EndpointSlice.",
                ),
                Column::new("Ports", "string", "The ports held in the EndpointSlice."),
                Column::new(
                    "Endpoints",
                    "string",
                    "The endpoints held in the EndpointSlice.",
                ),
                age_column(),
            ]
        },
        ..KindSpec::plain(
            |s, now| {
                let ports: Vec<String> = s
                    .ports
                    .iter()
                    .flatten()
                    .map(|p| {
                        p.port
                            .map(|n| n.to_string())
                            .unwrap_or_else(|| "<unset>".into())
                    })
                    .collect();
                let addresses: Vec<String> = s
                    .endpoints
                    .iter()
                    .flat_map(|e| e.addresses.clone())
                    .collect();
                let shown = match addresses.len() {
                    0 => "<unset>".to_string(),
                    n if n > 3 => format!("{} + {} more...", addresses[..3].join(","), n - 3),
                    _ => addresses.join(","),
                };
                vec![
                    name_of(&s.metadata),
                    s.address_type.clone().into(),
                    if ports.is_empty() {
                        "<unset>".to_string()
                    } else {
                        ports.join(",")
                    }
                    .into(),
                    shown.into(),
                    age_of(&s.metadata, now),
                ]
            },
            super::name_age_columns,
        )
    }
}
