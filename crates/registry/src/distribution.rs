//! Wire-level types of the OCI distribution spec: digests, repository names,
//! tags, media types, manifest parsing and the error codes of the spec's
//! "Error Codes" table. No I/O here, so the registry client can reuse it.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

/// OCI image manifest (image-spec `manifest.md`).
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (image-spec `image-index.md`).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Media type every OCI "empty" config uses for artifacts.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// Manifest media types this registry accepts on push.
pub const MANIFEST_TYPES: [&str; 4] = [
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
];

/// Largest manifest accepted; the spec lets registries bound it and 4 MiB is
/// what common registries use, so clients already keep below it.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// Errors from parsing wire values.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("invalid digest {value:?}")]
    InvalidDigest { value: String },
    #[error("unsupported digest algorithm {algorithm:?}")]
    UnsupportedAlgorithm { algorithm: String },
    #[error("invalid repository name {value:?}")]
    InvalidName { value: String },
    #[error("invalid tag {value:?}")]
    InvalidTag { value: String },
    #[error("invalid manifest: {reason}")]
    InvalidManifest { reason: String },
}

/// A `sha256:<64 lowercase hex>` content digest. Only sha256 is accepted: it
/// is the one algorithm the spec requires registries to support.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// Digest of `data`.
    pub fn of(data: &[u8]) -> Digest {
        Digest::from_sha256(Sha256::digest(data).as_slice())
    }

    /// Digest from a finished sha256 output.
    pub fn from_sha256(bytes: &[u8]) -> Digest {
        let mut hex = String::with_capacity(64);
        for b in bytes {
            hex.push_str(&format!("{b:02x}"));
        }
        Digest { hex }
    }

    /// The 64 hex characters.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl FromStr for Digest {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let invalid = || Error::InvalidDigest {
            value: s.to_owned(),
        };
        let (algorithm, encoded) = s.split_once(':').ok_or_else(invalid)?;
        // image-spec descriptor.md: algorithm is [a-z0-9]+ with separators.
        if algorithm.is_empty()
            || !algorithm
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b))
        {
            return Err(invalid());
        }
        if algorithm != "sha256" {
            return Err(Error::UnsupportedAlgorithm {
                algorithm: algorithm.to_owned(),
            });
        }
        if encoded.len() != 64
            || !encoded
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(invalid());
        }
        Ok(Digest {
            hex: encoded.to_owned(),
        })
    }
}

/// Checks a repository name against the spec's grammar
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
/// The grammar alone rules out `..`, empty components, `%`-escapes and
/// absolute paths, which is what makes names safe to use as directories.
pub fn validate_name(name: &str) -> Result<(), Error> {
    let invalid = || Error::InvalidName {
        value: name.to_owned(),
    };
    if name.is_empty() || name.len() > 255 {
        return Err(invalid());
    }
    for component in name.split('/') {
        let bytes = component.as_bytes();
        let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
            return Err(invalid());
        }
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if alnum(b) {
                i += 1;
                continue;
            }
            // A separator run: ".", "_", "__" or "-+", always between alnums.
            let start = i;
            while i < bytes.len() && !alnum(bytes[i]) {
                i += 1;
            }
            let sep = &component[start..i];
            let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
            if !ok {
                return Err(invalid());
            }
        }
    }
    Ok(())
}

/// Checks a tag against `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<(), Error> {
    let bytes = tag.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidTag {
            value: tag.to_owned(),
        })
    }
}

/// A manifest reference: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if s.contains(':') {
            Ok(Reference::Digest(s.parse()?))
        } else {
            validate_tag(s)?;
            Ok(Reference::Tag(s.to_owned()))
        }
    }
}

/// A content descriptor (image-spec `descriptor.md`), the fields we use.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A parsed and checked manifest: what the registry must verify exists
/// before accepting it, and what the referrers API needs to know.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub media_type: String,
    /// Blobs (config and layers) that must be present in the repository.
    pub blobs: Vec<Digest>,
    /// Child manifests of an index that must be present in the repository.
    pub manifests: Vec<Digest>,
    pub subject: Option<Digest>,
    pub artifact_type: Option<String>,
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Manifest {
    /// Parses `body` sent with `content_type`. The spec says the registry
    /// must check the manifest's `mediaType`, when set, against the type the
    /// client declared, so both are checked here.
    pub fn parse(body: &[u8], content_type: Option<&str>) -> Result<Manifest, Error> {
        let invalid = |reason: &str| Error::InvalidManifest {
            reason: reason.to_owned(),
        };
        let raw: RawManifest =
            serde_json::from_slice(body).map_err(|e| Error::InvalidManifest {
                reason: format!("not a json manifest: {e}"),
            })?;
        if raw.schema_version != Some(2) {
            // Schema 1 manifests are long deprecated (signed, no digests for
            // configs); refusing them keeps validation honest.
            return Err(invalid("schemaVersion must be 2"));
        }
        let content_type = content_type.map(|c| c.split(';').next().unwrap_or(c).trim());
        let media_type = match (raw.media_type.as_deref(), content_type) {
            (Some(body_type), Some(header)) if body_type != header => {
                return Err(invalid("mediaType does not match content-type"))
            }
            (Some(t), _) => t.to_owned(),
            (None, Some(t)) => t.to_owned(),
            (None, None) if raw.manifests.is_some() => OCI_INDEX.to_owned(),
            (None, None) => OCI_MANIFEST.to_owned(),
        };
        if !MANIFEST_TYPES.contains(&media_type.as_str()) {
            return Err(invalid("unsupported manifest media type"));
        }
        let digest = |d: &Descriptor| -> Result<Digest, Error> {
            if d.size < 0 {
                return Err(invalid("negative descriptor size"));
            }
            d.digest
                .parse()
                .map_err(|_| invalid("invalid descriptor digest"))
        };
        let mut blobs = Vec::new();
        let mut manifests = Vec::new();
        if media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST {
            let list = raw
                .manifests
                .as_ref()
                .ok_or_else(|| invalid("index without manifests"))?;
            for m in list {
                manifests.push(digest(m)?);
            }
        } else {
            let config = raw
                .config
                .as_ref()
                .ok_or_else(|| invalid("manifest without config"))?;
            blobs.push(digest(config)?);
            let layers = raw
                .layers
                .as_ref()
                .ok_or_else(|| invalid("manifest without layers"))?;
            for layer in layers {
                let d = digest(layer)?;
                // Layers with `urls` are fetched from elsewhere
                // (non-distributable layers), so the registry need not hold them.
                if layer.urls.is_empty() {
                    blobs.push(d);
                }
            }
        }
        let subject = raw.subject.as_ref().map(digest).transpose()?;
        let artifact_type = raw.artifact_type.clone().or_else(|| {
            raw.config
                .as_ref()
                .map(|c| c.media_type.clone())
                .filter(|_| subject.is_some())
        });
        Ok(Manifest {
            media_type,
            blobs,
            manifests,
            subject,
            artifact_type,
            annotations: raw.annotations,
        })
    }
}

/// Error codes of the distribution spec ("Error Codes" table) with the
/// status each is sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    RangeInvalid,
}

impl ErrorCode {
    /// The code string sent in `errors[].code`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
            ErrorCode::RangeInvalid => "RANGE_INVALID",
        }
    }

    /// HTTP status used for this code, following the spec's endpoint table.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BlobUnknown
            | ErrorCode::BlobUploadUnknown
            | ErrorCode::ManifestUnknown
            | ErrorCode::NameUnknown => 404,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Denied => 403,
            ErrorCode::Unsupported => 405,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::RangeInvalid => 416,
            ErrorCode::SizeInvalid => 400,
            _ => 400,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_parse_and_reject() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert_eq!(good.parse::<Digest>().expect("valid").to_string(), good);
        for bad in [
            "sha256:".to_owned(),
            "sha256".to_owned(),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha256:{}/", "a".repeat(64)),
            format!("SHA256:{}", "a".repeat(64)),
            format!(":{}", "a".repeat(64)),
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad} must be rejected");
        }
        assert!(matches!(
            format!("sha512:{}", "a".repeat(128)).parse::<Digest>(),
            Err(Error::UnsupportedAlgorithm { .. })
        ));
        assert_eq!(
            Digest::of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn names_follow_the_grammar() {
        for good in ["a", "library/busybox", "a.b_c__d---e/f0", "x/y/z"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in [
            "", "A", "..", "a/../b", "a//b", "/a", "a/", "a_", "a___b", "a..b", "%2e%2e", "a/.b",
            "a b", "a\\b", "a._b",
        ] {
            assert!(validate_name(bad).is_err(), "{bad} must be rejected");
        }
        assert!(validate_name(&"a".repeat(256)).is_err());
    }

    #[test]
    fn tags_follow_the_grammar() {
        assert!(validate_tag("latest").is_ok());
        assert!(validate_tag("_x.Y-1").is_ok());
        for bad in ["", ".x", "-x", "a/b", "a:b", &"a".repeat(129)] {
            assert!(validate_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn manifests_are_validated() {
        let d = format!("sha256:{}", "b".repeat(64));
        let image = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"x","digest":"{d}","size":1}},"layers":[{{"mediaType":"y","digest":"{d}","size":2}}]}}"#
        );
        let m = Manifest::parse(image.as_bytes(), Some(OCI_MANIFEST)).expect("valid");
        assert_eq!(m.blobs.len(), 2);
        assert!(Manifest::parse(image.as_bytes(), Some(DOCKER_MANIFEST)).is_err());
        for bad in [
            "",
            "{}",
            r#"{"schemaVersion":1}"#,
            r#"{"schemaVersion":2,"mediaType":"text/plain"}"#,
            r#"{"schemaVersion":2,"config":{"digest":"sha256:zz","size":1},"layers":[]}"#,
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}"#,
        ] {
            assert!(Manifest::parse(bad.as_bytes(), None).is_err(), "{bad}");
        }
    }
}
