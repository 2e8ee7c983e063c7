//! The image formats, from the shared model (`cais_oci::image`: media
//! types, descriptors, manifests, indexes, platforms, configs and their
//! checks), and how the store serializes what it writes.

use serde::Serialize;

pub use cais_oci::image::*;
pub use cais_oci::Error;

use crate::Result;

/// Serializes image metadata (manifests, configs, indexes) compactly; the
/// bytes are what gets hashed, so they are written once and kept.
pub fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| crate::Error::Json {
        context: "serialize image metadata".into(),
        reason: e.to_string(),
    })
}
