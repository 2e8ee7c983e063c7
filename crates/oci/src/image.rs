//! Image formats: OCI image-spec (`descriptor.md`, `manifest.md`,
//! `image-index.md`, `config.md`) and their Docker schema 2 twins
//! (manifest, manifest list, container config), which share the same JSON
//! shape under other media types. Unknown config fields are kept, so a
//! config read and written back is unchanged.
//!
//! Two levels of checking: [`parse_typed`] takes any manifest or index the
//! spec allows (artifacts too: any config and layer types), which is what
//! a registry must store; [`Manifest::check_image`] then asks for what a
//! runnable image needs (an image config, layers cais can unpack), and
//! [`parse_manifest`], both at once, is what the image store takes.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::{Error, Result};

/// OCI image manifest (image-spec `manifest.md`).
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (image-spec `image-index.md`).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The config media type of artifacts that have none (image-spec
/// `manifest.md`, "Guidance for an Empty Descriptor").
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

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

/// A content descriptor (image-spec `descriptor.md`), with the `platform`
/// an index entry carries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Required by the spec, but left out by some writers; `""` then.
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

/// An image manifest (OCI or Docker schema 2), or an artifact manifest
/// (image-spec 1.1: `artifactType`, `subject`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Box<Descriptor>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Manifest {
    /// An OCI image manifest of `config` and `layers`.
    pub fn new(config: Descriptor, layers: Vec<Descriptor>) -> Manifest {
        Manifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.to_owned()),
            artifact_type: None,
            config,
            layers,
            subject: None,
            annotations: None,
        }
    }

    /// Checks what the image store needs beyond the spec: an image config
    /// (OCI or Docker) and layers of a type it can unpack. `digest` names
    /// the manifest in errors.
    pub fn check_image(&self, digest: &Digest) -> Result<()> {
        for l in &self.layers {
            if Compression::from_media_type(&l.media_type).is_none() {
                return Err(Error::UnsupportedMediaType {
                    media_type: l.media_type.clone(),
                    what: format!("layer {} of manifest {digest}", l.digest),
                });
            }
        }
        if self.config.media_type != OCI_CONFIG && self.config.media_type != DOCKER_CONFIG {
            return Err(Error::UnsupportedMediaType {
                media_type: self.config.media_type.clone(),
                what: format!("config of manifest {digest}"),
            });
        }
        Ok(())
    }
}

/// An image index or Docker manifest list.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Box<Descriptor>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Index {
    /// An OCI image index of `manifests`.
    pub fn new(manifests: Vec<Descriptor>) -> Index {
        Index {
            schema_version: 2,
            media_type: Some(OCI_INDEX.to_owned()),
            artifact_type: None,
            manifests,
            subject: None,
            annotations: None,
        }
    }
}

/// A manifest blob, parsed by what it declares itself to be.
#[derive(Debug, Clone)]
pub enum Parsed {
    Manifest(Box<Manifest>),
    Index(Index),
}

impl Parsed {
    /// The manifest's `subject` (image-spec 1.1), whichever kind it is.
    pub fn subject(&self) -> Option<&Descriptor> {
        match self {
            Parsed::Manifest(m) => m.subject.as_deref(),
            Parsed::Index(i) => i.subject.as_deref(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<i64>,
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
    config: Option<serde_json::Value>,
}

/// Parses and checks a manifest or index as the image and distribution
/// specs ask, and returns it with its media type. `declared` is the type
/// the pointing descriptor or the `Content-Type` gave, when known
/// (parameters after `;` are ignored); the body's `mediaType`, when
/// present, must agree with it. Without either, the shape decides (image-spec
/// lets `mediaType` be omitted). Descriptors need a valid digest and a
/// size that is not negative. Any config and layer types are allowed:
/// see [`Manifest::check_image`] for images.
pub fn parse_typed(
    body: &[u8],
    declared: Option<&str>,
    digest: &Digest,
) -> Result<(String, Parsed)> {
    let bad = |reason: String| Error::InvalidManifest {
        digest: digest.clone(),
        reason,
    };
    let probe: Probe =
        serde_json::from_slice(body).map_err(|e| bad(format!("not a JSON manifest: {e}")))?;
    if probe.schema_version != Some(2) {
        // Schema 1 is deprecated (signed, no config digest); refusing it
        // keeps validation honest.
        return Err(bad("schemaVersion must be 2".into()));
    }
    let declared = declared
        .map(|d| d.split(';').next().unwrap_or(d).trim())
        .filter(|d| !d.is_empty());
    let media_type = match (probe.media_type.as_deref(), declared) {
        (Some(body), Some(decl)) if body != decl => {
            return Err(bad(format!(
                "mediaType {body:?} differs from the declared {decl:?}"
            )))
        }
        (Some(t), _) | (None, Some(t)) => t.to_owned(),
        (None, None) if probe.manifests.is_some() => OCI_INDEX.to_owned(),
        (None, None) if probe.config.is_some() => OCI_MANIFEST.to_owned(),
        (None, None) => return Err(bad("neither a manifest nor an index".into())),
    };
    let sizes = |negative: Option<&Descriptor>| match negative {
        Some(d) => Err(bad(format!("descriptor {} has a negative size", d.digest))),
        None => Ok(()),
    };
    let parsed = match media_type.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let m: Manifest =
                serde_json::from_slice(body).map_err(|e| bad(format!("bad manifest: {e}")))?;
            sizes(negative_size(
                std::iter::once(&m.config)
                    .chain(&m.layers)
                    .chain(m.subject.as_deref()),
            ))?;
            Parsed::Manifest(Box::new(m))
        }
        OCI_INDEX | DOCKER_MANIFEST_LIST => {
            let i: Index =
                serde_json::from_slice(body).map_err(|e| bad(format!("bad index: {e}")))?;
            sizes(negative_size(
                i.manifests.iter().chain(i.subject.as_deref()),
            ))?;
            Parsed::Index(i)
        }
        other => {
            return Err(Error::UnsupportedMediaType {
                media_type: other.to_owned(),
                what: format!("manifest {digest}"),
            })
        }
    };
    Ok((media_type, parsed))
}

fn negative_size<'a>(mut all: impl Iterator<Item = &'a Descriptor>) -> Option<&'a Descriptor> {
    all.find(|d| d.size < 0)
}

/// Parses a manifest or index the image store is to hold: the spec's
/// checks ([`parse_typed`]) and, for an image manifest, the image's
/// ([`Manifest::check_image`]).
pub fn parse_manifest(body: &[u8], declared: Option<&str>, digest: &Digest) -> Result<Parsed> {
    let (_, parsed) = parse_typed(body, declared, digest)?;
    if let Parsed::Manifest(m) = &parsed {
        m.check_image(digest)?;
    }
    Ok(parsed)
}

/// An image platform (image-spec `image-index.md`, "platform").
/// `architecture` and `os` are required by the spec; an entry without them
/// is read (as `""`, matching nothing) rather than refused, as registries do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
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
    /// linux/amd64, what a pull asks for unless told otherwise.
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
            return Err(Error::InvalidPlatform {
                value: s.to_owned(),
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

/// Rust's and the kernel's architecture names as Go spells them
/// (image-spec `image-index.md` refers to `GOARCH`).
fn normalize_arch(a: &str) -> &str {
    match a {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "x86" | "i386" | "i686" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        other => other,
    }
}

impl Platform {
    /// The platform cais runs on (Linux only).
    pub fn host() -> Platform {
        Platform {
            architecture: normalize_arch(std::env::consts::ARCH).to_owned(),
            os: "linux".into(),
            variant: None,
            os_version: None,
        }
    }

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

/// Picks the manifest for `platform` from an index: an entry that is an
/// image manifest (or does not say) whose platform matches, the exact one
/// when several do. Entries without a platform (attestations list
/// `unknown/unknown`, which matches nothing) are never picked.
pub fn select_platform<'a>(
    index: &'a Index,
    platform: &Platform,
    digest: &Digest,
) -> Result<&'a Descriptor> {
    let matching: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| {
            d.media_type == OCI_MANIFEST
                || d.media_type == DOCKER_MANIFEST
                || d.media_type.is_empty()
        })
        .filter(|d| d.platform.as_ref().is_some_and(|p| platform.matches(p)))
        .collect();
    matching
        .iter()
        .find(|d| d.platform.as_ref() == Some(platform))
        .or(matching.first())
        .copied()
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
/// body, with and without a declared type, through the image store's checks
/// and the registry's; refused or not, never a panic. What the store takes,
/// the registry takes too, and asks the repository for its config and
/// layers (or child manifests).
#[doc(hidden)]
pub fn fuzz_manifest(data: &[u8]) {
    let digest = Digest::sha256(data);
    for declared in [
        None,
        Some(OCI_MANIFEST),
        Some(OCI_INDEX),
        Some(DOCKER_MANIFEST),
        Some(DOCKER_MANIFEST_LIST),
    ] {
        let store = parse_manifest(data, declared, &digest);
        let registry = crate::distribution::ManifestRefs::parse(data, declared, &digest);
        let Ok(parsed) = store else { continue };
        let refs =
            registry.unwrap_or_else(|e| panic!("the store takes what the registry refuses: {e}"));
        match parsed {
            Parsed::Manifest(m) => {
                for d in
                    std::iter::once(&m.config).chain(m.layers.iter().filter(|l| l.urls.is_empty()))
                {
                    assert!(refs.blobs.contains(&d.digest), "{} not required", d.digest);
                }
            }
            Parsed::Index(i) => assert_eq!(refs.manifests.len(), i.manifests.len()),
        }
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
        for bad in ["linux", "", "linux//", "a/b/c/d", "linux//v7"] {
            assert!(
                matches!(bad.parse::<Platform>(), Err(Error::InvalidPlatform { .. })),
                "{bad}"
            );
        }
        let host = Platform::host();
        assert_eq!(host.os, "linux");
        assert!(!host.architecture.is_empty());
        assert!(host.matches(&host));
    }

    /// The registry client's table: one entry per platform, attestations
    /// (`unknown/unknown`) never picked.
    #[test]
    fn selects_platforms() {
        let entry = |arch: &str, variant: Option<&str>, c: char| {
            serde_json::json!({
                "mediaType": OCI_MANIFEST,
                "digest": format!("sha256:{}", c.to_string().repeat(64)),
                "size": 10,
                "platform": {"os": "linux", "architecture": arch, "variant": variant}
            })
        };
        let index: Index = serde_json::from_value(serde_json::json!({
            "schemaVersion": 2,
            "manifests": [
                entry("arm", Some("v7"), 'a'),
                entry("arm", Some("v6"), 'b'),
                entry("amd64", None, 'c'),
                entry("arm64", Some("v8"), 'd'),
                {"mediaType": OCI_MANIFEST, "digest": format!("sha256:{}", "e".repeat(64)),
                 "size": 1, "platform": {"os": "unknown", "architecture": "unknown"}},
                {"mediaType": OCI_MANIFEST, "digest": format!("sha256:{}", "f".repeat(64)),
                 "size": 1, "platform": {}}
            ]
        }))
        .expect("index");
        let me = Digest::sha256(b"index");
        let pick = |p: &str| {
            select_platform(&index, &p.parse().expect("platform"), &me)
                .map(|e| e.digest.hex().chars().last().unwrap_or(' '))
        };
        assert_eq!(pick("linux/amd64"), Ok('c'));
        assert_eq!(pick("linux/x86_64"), Ok('c'));
        assert_eq!(pick("linux/arm/v6"), Ok('b'));
        assert_eq!(pick("linux/arm/v7"), Ok('a'));
        assert_eq!(pick("linux/arm64"), Ok('d'));
        assert_eq!(
            pick("linux/arm"),
            Ok('a'),
            "no variant asked: the first arm"
        );
        assert!(matches!(
            pick("linux/s390x"),
            Err(Error::NoMatchingPlatform { .. })
        ));
        assert!(pick("windows/amd64").is_err());
        // The exact entry wins over an earlier one that also matches.
        let mut exact = index.clone();
        exact.manifests.insert(0, exact.manifests[3].clone());
        exact.manifests[0].platform = Some("linux/arm64".parse().expect("p"));
        exact.manifests[0].digest = format!("sha256:{}", "0".repeat(64)).parse().expect("d");
        let v8 = "linux/arm64/v8".parse().expect("p");
        assert_eq!(
            select_platform(&exact, &v8, &me).map(|e| e.digest.hex().chars().last()),
            Ok(Some('d'))
        );
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
        // What a registry stores but an image store cannot run: an artifact.
        let artifact = good.replace(OCI_CONFIG, OCI_EMPTY);
        assert!(parse_typed(artifact.as_bytes(), None, &d).is_ok());
        assert!(matches!(
            parse_manifest(artifact.as_bytes(), None, &d),
            Err(Error::UnsupportedMediaType { .. })
        ));
        // The declared type decides between OCI and Docker when the body
        // does not say; a declared type with parameters is the same type.
        let (t, _) = parse_typed(good.as_bytes(), Some(DOCKER_MANIFEST), &d).expect("docker");
        assert_eq!(t, DOCKER_MANIFEST);
        let (t, _) = parse_typed(good.as_bytes(), Some(""), &d).expect("empty declared");
        assert_eq!(t, OCI_MANIFEST);
        let negative = good.replace(r#""size":1}]"#, r#""size":-1}]"#);
        assert!(matches!(
            parse_manifest(negative.as_bytes(), None, &d),
            Err(Error::InvalidManifest { .. })
        ));
    }

    #[test]
    fn built_manifests_parse_back() {
        let d = Digest::sha256(b"x");
        let m = Manifest::new(
            Descriptor::new(OCI_CONFIG, d.clone(), 1),
            vec![Descriptor::new(OCI_LAYER_GZIP, d.clone(), 2)],
        );
        let body = serde_json::to_vec(&m).expect("serialize");
        assert!(matches!(
            parse_manifest(&body, Some(OCI_MANIFEST), &d),
            Ok(Parsed::Manifest(_))
        ));
        let i = Index::new(vec![Descriptor::new(OCI_MANIFEST, d.clone(), 3)]);
        let body = serde_json::to_vec(&i).expect("serialize");
        assert!(matches!(
            parse_manifest(&body, None, &d),
            Ok(Parsed::Index(_))
        ));
        // Fields left unset are left out, so digests do not change.
        let text = String::from_utf8(body).expect("utf8");
        assert!(
            !text.contains("subject") && !text.contains("artifactType"),
            "{text}"
        );
    }
}
