//! What a puller needs from manifests: the descriptors of an image manifest,
//! the platforms of an index, and which entry of an index to pull.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

use crate::distribution::{
    self, Descriptor, Digest, Manifest, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, MANIFEST_TYPES,
    OCI_INDEX, OCI_MANIFEST,
};

/// Why a manifest's type could not be settled.
#[derive(Debug)]
pub enum TypeError {
    Unsupported(String),
    Invalid(distribution::Error),
}

/// The media type of a fetched manifest: the served `Content-Type` when it
/// is a manifest type, else the body's own `mediaType`. The body is
/// validated (schema 2, descriptors well formed, matching types).
pub fn media_type_of(bytes: &[u8], content_type: &str) -> Result<String, TypeError> {
    let header = content_type.split(';').next().unwrap_or("").trim();
    let header = MANIFEST_TYPES
        .contains(&header)
        .then_some(header)
        .filter(|h| !h.is_empty());
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
    }
    if let Ok(Probe {
        media_type: Some(t),
    }) = serde_json::from_slice::<Probe>(bytes)
    {
        if !MANIFEST_TYPES.contains(&t.as_str()) {
            return Err(TypeError::Unsupported(t));
        }
    } else if header.is_none() && !content_type.is_empty() {
        let t = content_type.split(';').next().unwrap_or("").trim();
        if t != "application/json" && t != "text/plain" && t != "application/octet-stream" {
            return Err(TypeError::Unsupported(t.to_owned()));
        }
    }
    Manifest::parse(bytes, header)
        .map(|m| m.media_type)
        .map_err(TypeError::Invalid)
}

/// A platform (image-spec `image-index.md`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform cais runs on.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            architecture: architecture.to_owned(),
            os: "linux".to_owned(),
            variant: (architecture == "arm64").then(|| "v8".to_owned()),
        }
    }

    fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && match (&self.variant, &other.variant) {
                (Some(a), Some(b)) => a == b,
                // arm64's only variant is v8, often left out.
                (Some(v), None) | (None, Some(v)) => v == "v8" || self.architecture != "arm",
                (None, None) => true,
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

impl FromStr for Platform {
    type Err = String;

    fn from_str(s: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) || !(2..=3).contains(&parts.len()) {
            return Err(format!(
                "invalid platform {s:?}: expected os/arch[/variant]"
            ));
        }
        Ok(Platform {
            os: parts[0].to_owned(),
            architecture: parts[1].to_owned(),
            variant: parts.get(2).map(|v| (*v).to_owned()),
        })
    }
}

/// An index entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexEntry {
    #[serde(flatten)]
    pub descriptor: Descriptor,
    pub platform: Option<Platform>,
}

/// An image index or manifest list.
#[derive(Debug, Clone, Deserialize)]
pub struct Index {
    pub manifests: Vec<IndexEntry>,
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Debug, Clone, Deserialize)]
pub struct ImageManifest {
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// Either kind, parsed.
#[derive(Debug, Clone)]
pub enum Parsed {
    Index(Index),
    Image(ImageManifest),
}

/// Parses a manifest whose type [`media_type_of`] settled.
pub fn parse(bytes: &[u8], media_type: &str) -> Result<Parsed, distribution::Error> {
    let invalid = |e: serde_json::Error| distribution::Error::InvalidManifest {
        reason: e.to_string(),
    };
    match media_type {
        OCI_INDEX | DOCKER_MANIFEST_LIST => Ok(Parsed::Index(
            serde_json::from_slice(bytes).map_err(invalid)?,
        )),
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let m: ImageManifest = serde_json::from_slice(bytes).map_err(invalid)?;
            for d in std::iter::once(&m.config).chain(&m.layers) {
                d.digest.parse::<Digest>()?;
                if d.size < 0 {
                    return Err(distribution::Error::InvalidManifest {
                        reason: "negative size".into(),
                    });
                }
            }
            Ok(Parsed::Image(m))
        }
        other => Err(distribution::Error::InvalidManifest {
            reason: format!("unsupported media type {other}"),
        }),
    }
}

/// The index entry for `platform`: an exact match, else one that differs
/// only in an unspecified variant. Attestation entries (platform
/// `unknown/unknown`) never match.
pub fn select<'a>(index: &'a Index, platform: &Platform) -> Option<&'a IndexEntry> {
    let candidates = index.manifests.iter().filter(|e| {
        MANIFEST_TYPES.contains(&e.descriptor.media_type.as_str())
            || e.descriptor.media_type.is_empty()
    });
    let with_platform: Vec<&IndexEntry> = candidates
        .filter(|e| e.platform.as_ref().is_some_and(|p| p.matches(platform)))
        .collect();
    with_platform
        .iter()
        .find(|e| e.platform.as_ref() == Some(platform))
        .or_else(|| with_platform.first())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> Index {
        let entry = |arch: &str, variant: Option<&str>, c: char| {
            serde_json::json!({
                "mediaType": OCI_MANIFEST,
                "digest": format!("sha256:{}", c.to_string().repeat(64)),
                "size": 10,
                "platform": {"os": "linux", "architecture": arch, "variant": variant}
            })
        };
        serde_json::from_value(serde_json::json!({
            "manifests": [
                entry("arm", Some("v7"), 'a'),
                entry("arm", Some("v6"), 'b'),
                entry("amd64", None, 'c'),
                entry("arm64", Some("v8"), 'd'),
                {"mediaType": OCI_MANIFEST, "digest": format!("sha256:{}", "e".repeat(64)),
                 "size": 1, "platform": {"os": "unknown", "architecture": "unknown"}}
            ]
        }))
        .expect("index")
    }

    #[test]
    fn selects_platforms() {
        let i = index();
        let pick = |p: &str| {
            select(&i, &p.parse().expect("platform"))
                .map(|e| e.descriptor.digest.chars().last().unwrap_or(' '))
        };
        assert_eq!(pick("linux/amd64"), Some('c'));
        assert_eq!(pick("linux/arm/v6"), Some('b'));
        assert_eq!(pick("linux/arm/v7"), Some('a'));
        assert_eq!(pick("linux/arm64"), Some('d'));
        assert_eq!(pick("linux/s390x"), None);
        assert_eq!(pick("windows/amd64"), None);
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux//v7".parse::<Platform>().is_err());
        assert!("a/b/c/d".parse::<Platform>().is_err());
    }

    #[test]
    fn media_types() {
        let m = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "x", "digest": format!("sha256:{}", "a".repeat(64)), "size": 1},
            "layers": []
        })
        .to_string();
        assert_eq!(
            media_type_of(m.as_bytes(), OCI_MANIFEST).expect("oci"),
            OCI_MANIFEST
        );
        assert_eq!(
            media_type_of(m.as_bytes(), "application/json").expect("json"),
            OCI_MANIFEST
        );
        assert!(matches!(
            media_type_of(b"{not json", OCI_MANIFEST),
            Err(TypeError::Invalid(_))
        ));
        let odd = m.replace(OCI_MANIFEST, "application/vnd.example+json");
        assert!(matches!(
            media_type_of(odd.as_bytes(), "application/vnd.example+json"),
            Err(TypeError::Unsupported(_))
        ));
        assert!(matches!(
            media_type_of(b"{}", "application/vnd.other"),
            Err(TypeError::Unsupported(_))
        ));
    }
}
