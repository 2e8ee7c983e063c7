//! The Kubernetes API server of cais (`cais kube server`).
//!
//! Module map:
//! - `machinery`: pure functions over JSON objects (selectors, the four
//!   patch types, server-side apply's field ownership, strict decoding,
//!   tables, validation helpers), unit-tested with bad inputs;
//! - `error`: `ApiError`, every failed request as a `metav1.Status`, and
//!   the crate's other errors.

pub mod error;
pub mod machinery;
