//! The Kubernetes API server of cais (`cais kube server`).
//!
//! Module map:
//! - `machinery`: pure functions over JSON objects (selectors, the four
//!   patch types, server-side apply's field ownership, strict decoding,
//!   tables, validation helpers), unit-tested with bad inputs;
//! - `registry`: one `Resource` per served resource, read by discovery,
//!   routing, tables and OpenAPI; `groups`: one module per API group with
//!   its kinds' defaults, validation, printers and patch metadata;
//! - `discovery` and `openapi`: the discovery documents (aggregated v2 and
//!   legacy) and the schemas and `/openapi` documents, all from the registry;
//! - `storage`: objects in the revisioned store (`cais-store`), revisions as
//!   `resourceVersion`, pages and watch events; `rest`: the one generic
//!   handler of every resource; `watch`: watch streams;
//! - `protobuf`: request bodies in Kubernetes' protobuf encoding, which
//!   kubectl's typed clients send, decoded to JSON;
//! - `http`: authentication, routing, negotiation, errors as `Status`;
//!   `auth`: PKI, tokens, kubeconfig; `proxy`: `pods/log` passed on to
//!   the pod's node agent; `server`: start-up, bootstrap and the
//!   namespace finalizer; `gc`: deletion along owner references; `model`: the registry, schemas and documents
//!   served at a moment;
//! - `error`: `ApiError`, every failed request as a `metav1.Status`, and
//!   the crate's other errors.

pub mod auth;
pub mod discovery;
pub mod error;
pub mod gc;
pub mod groups;
pub mod http;
pub mod machinery;
pub mod model;
pub mod openapi;
pub mod protobuf;
pub mod proxy;
pub mod registry;
pub mod rest;
pub mod server;
pub mod storage;
pub mod watch;

/// The Kubernetes version this server speaks (kubectl's dispatcher picks
/// its own version from the minor).
pub const VERSION: &str = "v1.32.0";
