//! `authorization.k8s.io/v1` SelfSubjectAccessReview (`kubectl auth
//! can-i`) and `authentication.k8s.io/v1` SelfSubjectReview (`kubectl auth
//! whoami`): create-only questions about the caller, answered from the
//! authorizer and never stored (`crate::http` answers them with the
//! requesting user).

use k8s_openapi::api::{authentication::v1 as authn, authorization::v1 as authz};
use serde_json::{json, Value};

use crate::auth::{authorize, Attributes, Decision, User};
use crate::registry::{Group, KindSpec, Resource};

pub fn group() -> Group {
    Group {
        resources: vec![
            Resource::of::<authz::SelfSubjectAccessReview>(
                "selfsubjectaccessreviews",
                KindSpec::plain(|_, _| Vec::new(), super::name_age_columns),
            )
            .cluster_scoped()
            .verbs(&["create"]),
            Resource::of::<authn::SelfSubjectReview>(
                "selfsubjectreviews",
                KindSpec::plain(|_, _| Vec::new(), super::name_age_columns),
            )
            .cluster_scoped()
            .verbs(&["create"]),
        ],
        patch_meta: &[],
        schema_defaults: &[],
        add_schemas: |_| {},
    }
}

/// Whether a resource is one of these questions.
pub fn is_review(group: &str, plural: &str) -> bool {
    matches!(
        (group, plural),
        ("authorization.k8s.io", "selfsubjectaccessreviews")
            | ("authentication.k8s.io", "selfsubjectreviews")
    )
}

/// The answer to a review `body` asked by `user`.
pub fn answer(plural: &str, user: &User, body: &Value) -> Value {
    let mut out = body.clone();
    if plural == "selfsubjectreviews" {
        out["status"] = json!({"userInfo": {"username": user.name, "groups": user.groups}});
        return out;
    }
    let attrs = &body["spec"]["resourceAttributes"];
    let get = |k: &str| attrs[k].as_str().filter(|s| !s.is_empty());
    let allowed = if attrs.is_object() {
        let a = Attributes {
            verb: get("verb").unwrap_or(""),
            group: get("group").unwrap_or(""),
            resource: get("resource").unwrap_or(""),
            subresource: get("subresource"),
            namespace: get("namespace"),
            name: get("name"),
        };
        // A conditional answer depends on an object the question does not
        // name: "no" unless the user may do it to every object.
        authorize(user, &a) == Decision::Allow
    } else {
        crate::auth::may_discover(user)
    };
    out["status"] = json!({"allowed": allowed});
    out
}
