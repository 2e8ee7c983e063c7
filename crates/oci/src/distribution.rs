//! What the OCI distribution spec adds to the image formats: the manifest
//! types a registry serves, how large a manifest may be, the `<reference>`
//! of a manifest URL, and the content a pushed manifest needs the
//! repository to hold (spec "Pushing Manifests"), which both the registry
//! and its client check.

use std::collections::BTreeMap;
use std::str::FromStr;

use crate::digest::Digest;
use crate::image::{
    parse_typed, Parsed, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST,
};
use crate::reference::validate_tag;
use crate::{Error, Result};

/// Manifest media types a registry accepts on push and a client asks for.
pub const MANIFEST_TYPES: [&str; 4] = [
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
];

/// Largest manifest accepted; the spec lets registries bound it and 4 MiB is
/// what common registries use, so clients already keep below it.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// The `<reference>` of `/v2/<name>/manifests/<reference>`: a tag, or a
/// digest (digests have a `:`, tags cannot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagOrDigest {
    Tag(String),
    Digest(Digest),
}

impl FromStr for TagOrDigest {
    type Err = Error;

    fn from_str(s: &str) -> Result<TagOrDigest> {
        if s.contains(':') {
            Ok(TagOrDigest::Digest(s.parse()?))
        } else {
            validate_tag(s)?;
            Ok(TagOrDigest::Tag(s.to_owned()))
        }
    }
}

/// What a registry must know of a manifest pushed to it: the content the
/// repository must already hold, and what the referrers API (spec end-12)
/// lists it by.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestRefs {
    pub media_type: String,
    /// Blobs (config and layers) that must be present in the repository.
    /// Layers with `urls` are fetched from elsewhere (non-distributable
    /// layers), so the registry need not hold them.
    pub blobs: Vec<Digest>,
    /// Child manifests of an index that must be present in the repository.
    pub manifests: Vec<Digest>,
    pub subject: Option<Digest>,
    /// The manifest's `artifactType`, else its config's media type when it
    /// has a subject (spec "Listing Referrers").
    pub artifact_type: Option<String>,
    pub annotations: Option<BTreeMap<String, String>>,
}

impl ManifestRefs {
    /// Parses and checks `body`, sent with `content_type` (the spec says
    /// the registry must check the manifest's `mediaType`, when set,
    /// against the type the client declared). `digest` names it in errors.
    /// Any artifact is accepted: the registry stores what the spec allows,
    /// not only images.
    pub fn parse(body: &[u8], content_type: Option<&str>, digest: &Digest) -> Result<ManifestRefs> {
        let (media_type, parsed) = parse_typed(body, content_type, digest)?;
        let subject = parsed.subject().map(|s| s.digest.clone());
        Ok(match parsed {
            Parsed::Manifest(m) => ManifestRefs {
                media_type,
                blobs: std::iter::once(&m.config)
                    .chain(m.layers.iter().filter(|l| l.urls.is_empty()))
                    .map(|d| d.digest.clone())
                    .collect(),
                manifests: Vec::new(),
                artifact_type: m
                    .artifact_type
                    .or_else(|| subject.is_some().then(|| m.config.media_type.clone())),
                subject,
                annotations: m.annotations,
            },
            Parsed::Index(i) => ManifestRefs {
                media_type,
                blobs: Vec::new(),
                manifests: i.manifests.into_iter().map(|d| d.digest).collect(),
                artifact_type: i.artifact_type,
                subject,
                annotations: i.annotations,
            },
        })
    }

    /// Every digest the manifest names.
    pub fn digests(&self) -> impl Iterator<Item = &Digest> {
        self.blobs
            .iter()
            .chain(&self.manifests)
            .chain(self.subject.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Algorithm;

    #[test]
    fn references_are_tags_or_digests() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            d.parse::<TagOrDigest>(),
            Ok(TagOrDigest::Digest(d.parse().expect("digest")))
        );
        assert_eq!(
            "v1.0".parse::<TagOrDigest>(),
            Ok(TagOrDigest::Tag("v1.0".into()))
        );
        assert!(matches!(
            "-x".parse::<TagOrDigest>(),
            Err(Error::InvalidTag { .. })
        ));
        assert!(matches!(
            "sha256:zz".parse::<TagOrDigest>(),
            Err(Error::InvalidDigest { .. })
        ));
        assert!(matches!(
            "md5:zz".parse::<TagOrDigest>(),
            Err(Error::UnsupportedAlgorithm { .. })
        ));
    }

    #[test]
    fn manifests_are_validated() {
        let d = format!("sha256:{}", "b".repeat(64));
        let image = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"x","digest":"{d}","size":1}},"layers":[{{"mediaType":"y","digest":"{d}","size":2}}]}}"#
        );
        let me = Digest::sha256(image.as_bytes());
        let m = ManifestRefs::parse(image.as_bytes(), Some(OCI_MANIFEST), &me).expect("valid");
        assert_eq!(m.blobs.len(), 2);
        assert_eq!(m.media_type, OCI_MANIFEST);
        // Parameters of the content type are not part of it.
        assert!(ManifestRefs::parse(
            image.as_bytes(),
            Some(&format!("{OCI_MANIFEST}; charset=utf-8")),
            &me
        )
        .is_ok());
        assert!(ManifestRefs::parse(image.as_bytes(), Some(DOCKER_MANIFEST), &me).is_err());
        for bad in [
            "",
            "{}",
            r#"{"schemaVersion":1}"#,
            r#"{"schemaVersion":2,"mediaType":"text/plain"}"#,
            r#"{"schemaVersion":2,"config":{"digest":"sha256:zz","size":1},"layers":[]}"#,
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}"#,
            &format!(r#"{{"schemaVersion":2,"config":{{"digest":"{d}","size":-1}},"layers":[]}}"#),
            &format!(r#"{{"schemaVersion":2,"manifests":[{{"digest":"{d}","size":-5}}]}}"#),
            // Annotations are strings (image-spec annotations.md).
            &format!(
                r#"{{"schemaVersion":2,"config":{{"digest":"{d}","size":1}},"layers":[],"annotations":{{"a":1}}}}"#
            ),
        ] {
            assert!(
                ManifestRefs::parse(bad.as_bytes(), None, &me).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn refs_name_what_the_repository_must_hold() {
        let digest = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let me = Digest::sha256(b"m");
        // An artifact with a subject: any config type, foreign layers
        // skipped, artifact type from the config.
        let artifact = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.example.sbom", "digest": digest('a'), "size": 2},
            "layers": [
                {"mediaType": "application/x-anything", "digest": digest('b'), "size": 3},
                {"mediaType": "application/x-foreign", "digest": digest('c'), "size": 4,
                 "urls": ["https://example.com/c"]}
            ],
            "subject": {"mediaType": OCI_MANIFEST, "digest": digest('d'), "size": 5},
            "annotations": {"k": "v"}
        })
        .to_string();
        let r = ManifestRefs::parse(artifact.as_bytes(), None, &me).expect("artifact");
        assert_eq!(
            r.blobs,
            [digest('a'), digest('b')].map(|d| d.parse().expect("d"))
        );
        assert_eq!(r.subject, Some(digest('d').parse().expect("d")));
        assert_eq!(
            r.artifact_type.as_deref(),
            Some("application/vnd.example.sbom")
        );
        assert_eq!(r.digests().count(), 3);
        assert_eq!(
            r.annotations,
            Some(BTreeMap::from([("k".to_owned(), "v".to_owned())]))
        );
        // An index without a mediaType: its shape says what it is.
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest('e'), "size": 1,
                           "platform": {"os": "linux", "architecture": "amd64"}}]
        })
        .to_string();
        let r = ManifestRefs::parse(index.as_bytes(), None, &me).expect("index");
        assert_eq!(r.media_type, OCI_INDEX);
        assert_eq!(r.manifests, [digest('e').parse().expect("d")]);
        assert!(r.blobs.is_empty() && r.subject.is_none() && r.artifact_type.is_none());
        // sha512 descriptors are valid content addresses.
        let d512 = Digest::compute(Algorithm::Sha512, b"x");
        let m512 = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"x","digest":"{d512}","size":1}},"layers":[]}}"#
        );
        let r = ManifestRefs::parse(m512.as_bytes(), None, &me).expect("sha512");
        assert_eq!(r.blobs, [d512]);
    }
}
