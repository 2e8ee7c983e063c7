//! Image references as users type them (`busybox`, `host:5000/a/b:tag`,
//! `name@sha256:...`), normalized the way docker does: a first component
//! with a `.` or `:`, or `localhost`, names a registry; otherwise the image
//! is on Docker Hub, where one-component names live under `library/`.

use std::fmt;
use std::str::FromStr;

use crate::distribution::{validate_name, validate_tag, Digest};

/// Docker Hub's canonical name in references.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that actually serves Docker Hub's distribution API.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// The key docker's config.json files Docker Hub credentials under.
pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

/// A reference parse error.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid image reference {value:?}: {reason}")]
pub struct ParseError {
    pub value: String,
    pub reason: String,
}

/// A normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `docker.io`, `host`, `host:port`.
    pub registry: String,
    /// Repository path inside the registry (`library/busybox`).
    pub repository: String,
    /// Tag; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl ImageRef {
    /// What to ask the registry for: the digest when pinned, else the tag.
    pub fn reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_owned(),
        }
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> ImageRef {
        ImageRef {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// True when `component` (the part before the first `/`) names a registry.
pub fn is_registry_host(component: &str) -> bool {
    component.contains('.') || component.contains(':') || component == "localhost"
}

/// Normalizes a registry name as typed by users (`docker.io`,
/// `index.docker.io`, `https://index.docker.io/v1/`, `host:5000`).
pub fn normalize_registry(value: &str) -> String {
    let v = value
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let v = v.split('/').next().unwrap_or(v);
    match v {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" | "docker.io" => {
            DOCKER_HUB.to_owned()
        }
        other => other.to_owned(),
    }
}

impl FromStr for ImageRef {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<ImageRef, ParseError> {
        let err = |reason: &str| ParseError {
            value: s.to_owned(),
            reason: reason.to_owned(),
        };
        if s.is_empty() {
            return Err(err("empty"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (
                r,
                Some(d.parse::<Digest>().map_err(|e| err(&e.to_string()))?),
            ),
            None => (s, None),
        };
        // A tag is after the last `:` that follows the last `/` (a `:` before
        // it is a registry port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (
                &rest[..last_slash + i],
                Some(rest[last_slash + i + 1..].to_owned()),
            ),
            None => (rest, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, path)) if is_registry_host(first) => {
                (normalize_registry(first), path.to_owned())
            }
            _ => (DOCKER_HUB.to_owned(), name.to_owned()),
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        validate_name(&repository).map_err(|e| err(&e.to_string()))?;
        if let Some(t) = &tag {
            validate_tag(t).map_err(|e| err(&e.to_string()))?;
        }
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_owned()),
            _ => tag,
        };
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_docker() {
        let d = "sha256:".to_owned() + &"a".repeat(64);
        let cases: &[(&str, &str)] = &[
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("user/app", "docker.io/user/app:latest"),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            ("index.docker.io/a/b:c", "docker.io/a/b:c"),
            ("localhost/x", "localhost/x:latest"),
            ("localhost:5000/x/y:1", "localhost:5000/x/y:1"),
            ("127.0.0.1:5000/x", "127.0.0.1:5000/x:latest"),
            ("quay.io/a/b/c:v_1.2", "quay.io/a/b/c:v_1.2"),
        ];
        for (input, want) in cases {
            let r: ImageRef = input.parse().expect(input);
            assert_eq!(r.to_string(), *want, "{input}");
        }
        let pinned: ImageRef = format!("h:1/x@{d}").parse().expect("digest ref");
        assert_eq!(pinned.reference(), d);
        assert_eq!(pinned.tag, None);
        let both: ImageRef = format!("x:t@{d}").parse().expect("tag and digest");
        assert_eq!(both.to_string(), format!("docker.io/library/x:t@{d}"));
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "UPPER",
            "a//b",
            "h:5000/x:",
            "x:bad tag",
            "x@sha256:short",
            "x@md5:abc",
            "/x",
            "x/",
            "x:-t",
        ] {
            assert!(bad.parse::<ImageRef>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn registry_names() {
        assert_eq!(
            normalize_registry("https://index.docker.io/v1/"),
            "docker.io"
        );
        assert_eq!(normalize_registry("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(normalize_registry("http://localhost:1/"), "localhost:1");
    }
}
