//! Image formats: OCI image-spec (`manifest.md`, `image-index.md`,
//! `config.md`) and their Docker schema 2 twins (manifest, manifest list,
//! container config), which share the same JSON shape under other media
//! types. Unknown config fields are kept, so a config read and written back
//! is unchanged.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::{Error, Result};

pub use cais_registry::distribution::{
    DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST,
};

/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// OCI layers.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker layers (`diff.tar.gzip` is gzip; Docker never shipped zstd here).
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_FOREIGN_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
const OCI_LAYER_NONDIST_TAR: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
const OCI_LAYER_NONDIST_GZIP: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
const OCI_LAYER_NONDIST_ZSTD: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// From a layer media type; `None` for a type that is not a layer.
    pub fn from_media_type(media_type: &str) -> Option<Compression> {
        match media_type {
            OCI_LAYER_TAR | OCI_LAYER_NONDIST_TAR => Some(Compression::None),
            OCI_LAYER_GZIP
            | OCI_LAYER_NONDIST_GZIP
            | DOCKER_LAYER_GZIP
            | DOCKER_LAYER_FOREIGN_GZIP => Some(Compression::Gzip),
            OCI_LAYER_ZSTD | OCI_LAYER_NONDIST_ZSTD => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// From the first bytes of a blob (gzip RFC 1952 and zstd RFC 8878
    /// magic numbers), for archives that do not say.
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The OCI layer media type for this compression.
    pub fn oci_media_type(self) -> &'static str {
        match self {
            Compression::None => OCI_LAYER_TAR,
            Compression::Gzip => OCI_LAYER_GZIP,
            Compression::Zstd => OCI_LAYER_ZSTD,
        }
    }
}

/// A content descriptor (image-spec `descriptor.md`) with the index's
/// `platform`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_owned(),
            digest,
            size: i64::try_from(size).unwrap_or(i64::MAX),
            platform: None,
            annotations: None,
            urls: Vec::new(),
            artifact_type: None,
        }
    }
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An image index or Docker manifest list.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A manifest blob, parsed by what it declares itself to be.
#[derive(Debug, Clone)]
pub enum Parsed {
    Manifest(Box<Manifest>),
    Index(Index),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<i64>,
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
    config: Option<serde_json::Value>,
}

/// Parses and checks a manifest or index. `declared` is the media type the
/// descriptor pointing at it gave, when known; image-spec says the body's
/// `mediaType`, when present, must agree with it.
pub fn parse_manifest(body: &[u8], declared: Option<&str>, digest: &Digest) -> Result<Parsed> {
    let bad = |reason: String| Error::InvalidManifest {
        digest: digest.clone(),
        reason,
    };
    let probe: Probe =
        serde_json::from_slice(body).map_err(|e| bad(format!("not a JSON manifest: {e}")))?;
    if probe.schema_version != Some(2) {
        // Schema 1 is deprecated and carries no config digest.
        return Err(bad("schemaVersion must be 2".into()));
    }
    let media_type = match (probe.media_type.as_deref(), declared) {
        (Some(body), Some(decl)) if !decl.is_empty() && body != decl => {
            return Err(bad(format!(
                "mediaType {body:?} differs from the descriptor's {decl:?}"
            )))
        }
        (Some(t), _) => t.to_owned(),
        (None, Some(t)) if !t.is_empty() => t.to_owned(),
        // image-spec lets mediaType be omitted; the shape decides.
        (None, _) if probe.manifests.is_some() => OCI_INDEX.to_owned(),
        (None, _) if probe.config.is_some() => OCI_MANIFEST.to_owned(),
        (None, _) => return Err(bad("neither a manifest nor an index".into())),
    };
    match media_type.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let m: Manifest =
                serde_json::from_slice(body).map_err(|e| bad(format!("bad manifest: {e}")))?;
            for l in &m.layers {
                if Compression::from_media_type(&l.media_type).is_none() {
                    return Err(Error::UnsupportedMediaType {
                        media_type: l.media_type.clone(),
                        what: format!("layer {} of manifest {digest}", l.digest),
                    });
                }
                if l.size < 0 {
                    return Err(bad("negative layer size".into()));
                }
            }
            if m.config.media_type != OCI_CONFIG && m.config.media_type != DOCKER_CONFIG {
                return Err(Error::UnsupportedMediaType {
                    media_type: m.config.media_type.clone(),
                    what: format!("config of manifest {digest}"),
                });
            }
            Ok(Parsed::Manifest(Box::new(m)))
        }
        OCI_INDEX | DOCKER_MANIFEST_LIST => {
            let i: Index =
                serde_json::from_slice(body).map_err(|e| bad(format!("bad index: {e}")))?;
            Ok(Parsed::Index(i))
        }
        other => Err(Error::UnsupportedMediaType {
            media_type: other.to_owned(),
            what: format!("manifest {digest}"),
        }),
    }
}

/// Serializes image metadata (manifests, configs, indexes) compactly; the
/// bytes are what gets hashed, so they are written once and kept.
pub fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::Json {
        context: "serialize image metadata".into(),
        reason: e.to_string(),
    })
}

/// An image platform (image-spec `image-index.md`, "platform").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

impl Default for Platform {
    /// linux/amd64, the default the issue asks for.
    fn default() -> Platform {
        Platform {
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
            os_version: None,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Platform {
    type Err = Error;

    /// `os/arch[/variant]`, as `--platform` takes it.
    fn from_str(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = (2..=3).contains(&parts.len()) && parts.iter().all(|p| !p.is_empty());
        if !ok {
            return Err(Error::InvalidArgument {
                reason: format!("platform {s:?} is not os/arch[/variant]"),
            });
        }
        Ok(Platform {
            os: parts[0].to_ascii_lowercase(),
            architecture: normalize_arch(parts[1]).to_owned(),
            variant: parts.get(2).map(|v| v.to_string()),
            os_version: None,
        })
    }
}

fn normalize_arch(a: &str) -> &str {
    match a {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

impl Platform {
    /// Whether an index entry for `other` serves this platform: same os and
    /// architecture, and the variant when one was asked for (`arm64` is
    /// `v8` unless said otherwise).
    pub fn matches(&self, other: &Platform) -> bool {
        if self.os != other.os || self.architecture != normalize_arch(&other.architecture) {
            return false;
        }
        let default_variant = |p: &Platform| match (p.architecture.as_str(), &p.variant) {
            ("arm64", None) => Some("v8".to_owned()),
            (_, v) => v.clone(),
        };
        match default_variant(self) {
            None => true,
            want => want == default_variant(other),
        }
    }
}

/// Picks the manifest for `platform` from an index.
pub fn select_platform<'a>(
    index: &'a Index,
    platform: &Platform,
    digest: &Digest,
) -> Result<&'a Descriptor> {
    index
        .manifests
        .iter()
        .filter(|d| d.media_type == OCI_MANIFEST || d.media_type == DOCKER_MANIFEST)
        .find(|d| d.platform.as_ref().is_some_and(|p| platform.matches(p)))
        .ok_or_else(|| Error::NoMatchingPlatform {
            platform: platform.to_string(),
            index: digest.clone(),
        })
}

/// The image config (image-spec `config.md`), the fields the store uses;
/// everything else is kept in `extra`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

impl ImageConfig {
    pub fn parse(body: &[u8], digest: &Digest) -> Result<ImageConfig> {
        let c: ImageConfig = serde_json::from_slice(body).map_err(|e| Error::InvalidConfig {
            digest: digest.clone(),
            reason: e.to_string(),
        })?;
        if c.rootfs.kind != "layers" {
            return Err(Error::InvalidConfig {
                digest: digest.clone(),
                reason: format!("rootfs type {:?} is not \"layers\"", c.rootfs.kind),
            });
        }
        Ok(c)
    }
}

/// Fuzz entry point (`fuzz/` and the corpus tests): `data` as a manifest
/// body checked by the image store (with and without a declared type) and
/// by the registry server's validation; refused or not, never a panic. What
/// the store accepts as an image manifest names its layers with digests.
#[doc(hidden)]
pub fn fuzz_manifest(data: &[u8]) {
    let digest = Digest::sha256(data);
    for declared in [
        None,
        Some("application/vnd.oci.image.manifest.v1+json"),
        Some("application/vnd.oci.image.index.v1+json"),
        Some("application/vnd.docker.distribution.manifest.v2+json"),
        Some("application/vnd.docker.distribution.manifest.list.v2+json"),
    ] {
        let _ = parse_manifest(data, declared, &digest);
        let _ = cais_registry::distribution::Manifest::parse(data, declared);
    }
    let _ = ImageConfig::parse(data, &digest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_parsing_and_matching() {
        let p: Platform = "linux/amd64".parse().expect("parse");
        assert_eq!(p, Platform::default());
        let arm: Platform = "linux/arm64".parse().expect("parse");
        let v8 = Platform {
            variant: Some("v8".into()),
            ..arm.clone()
        };
        assert!(arm.matches(&v8));
        assert!(!p.matches(&arm));
        for bad in ["linux", "", "linux//", "a/b/c/d"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }

    #[test]
    fn manifests_are_checked() {
        let d = Digest::sha256(b"x");
        let cfg = format!(r#"{{"mediaType":"{OCI_CONFIG}","digest":"{d}","size":1}}"#);
        let good = format!(
            r#"{{"schemaVersion":2,"config":{cfg},"layers":[{{"mediaType":"{OCI_LAYER_ZSTD}","digest":"{d}","size":1}}]}}"#
        );
        assert!(matches!(
            parse_manifest(good.as_bytes(), None, &d),
            Ok(Parsed::Manifest(_))
        ));
        let unknown_layer = good.replace(OCI_LAYER_ZSTD, "application/x-evil");
        assert!(matches!(
            parse_manifest(unknown_layer.as_bytes(), None, &d),
            Err(Error::UnsupportedMediaType { .. })
        ));
        let unknown_type = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/x-nope","config":{cfg},"layers":[]}}"#
        );
        assert!(matches!(
            parse_manifest(unknown_type.as_bytes(), None, &d),
            Err(Error::UnsupportedMediaType { .. })
        ));
        for bad in [
            "{",
            "[]",
            r#"{"schemaVersion":1}"#,
            r#"{"schemaVersion":2}"#,
        ] {
            assert!(
                matches!(
                    parse_manifest(bad.as_bytes(), None, &d),
                    Err(Error::InvalidManifest { .. })
                ),
                "{bad}"
            );
        }
        assert!(parse_manifest(good.as_bytes(), Some(OCI_INDEX), &d).is_err());
    }
}
