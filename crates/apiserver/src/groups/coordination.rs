//! `coordination.k8s.io/v1`: leases (node heartbeats, leader election).

use k8s_openapi::api::coordination::v1 as coordination;

use super::{age_column, age_of, name_column, name_of};
use crate::machinery::table::Column;
use crate::registry::{Group, KindSpec, Resource};

pub fn group() -> Group {
    Group {
        resources: vec![Resource::of::<coordination::Lease>("leases", leases())],
        patch_meta: &[],
        schema_defaults: &[],
        add_schemas: |g| {
            super::add::<coordination::Lease>(g);
        },
    }
}

fn leases() -> KindSpec<coordination::Lease> {
    KindSpec {
        columns: || {
            vec![
                name_column(),
                Column::new("Holder", "string", "The holder of the lease."),
                age_column(),
            ]
        },
        ..KindSpec::plain(
            |l, now| {
                let holder = l
                    .spec
                    .as_ref()
                    .and_then(|s| s.holder_identity.clone())
                    .unwrap_or_default();
                vec![
                    name_of(&l.metadata),
                    holder.into(),
                    age_of(&l.metadata, now),
                ]
            },
            super::name_age_columns,
        )
    }
}
