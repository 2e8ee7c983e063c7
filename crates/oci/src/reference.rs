//! Image references, normalized the way Docker's CLI does it:
//! `busybox` is `docker.io/library/busybox:latest`, a first component with
//! a `.` or a `:` or equal to `localhost` (or with an uppercase letter) is
//! a registry host (with an optional port), `name@sha256:...` pins a
//! digest, and a tag defaults to `latest` only when no digest is given.
//! Also the grammars of repository names and tags (distribution-spec
//! "Pulling manifests"), which the registry checks on every request, and
//! registry names as users type them (`docker login https://index.docker.io/v1/`).

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::{Error, Result};

/// Docker Hub's name in references.
pub const DOCKER_HUB: &str = "docker.io";
const LEGACY_DOMAIN: &str = "index.docker.io";

/// A normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// Registry host, with port when one was given.
    pub domain: String,
    /// Repository path inside the registry.
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    /// `domain/path`, the repository name.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// `domain/path:tag` when tagged.
    pub fn tagged_name(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{t}", self.name()))
    }

    /// The repository name as Docker prints it: without `docker.io/` and
    /// `library/`.
    pub fn familiar_name(&self) -> String {
        familiar(&self.name())
    }

    /// What to ask the registry for (the `<reference>` of
    /// `/v2/<name>/manifests/<reference>`): the digest when pinned, else
    /// the tag.
    pub fn tag_or_digest(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_owned(),
        }
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        }
    }
}

/// Shortens a full repository name the way Docker prints it.
/// The short form must name the same repository when parsed again, so
/// `docker.io/` stays when the path's first component reads as a registry
/// host (`docker.io/example.com/app` is not `example.com/app`), and
/// `library/` goes only before a single component (`docker.io/library/a/b`
/// is not `a/b`).
pub fn familiar(name: &str) -> String {
    let Some(path) = name.strip_prefix("docker.io/") else {
        return name.to_owned();
    };
    let (first, rest) = path.split_once('/').unwrap_or((path, ""));
    if !rest.is_empty() && (first.contains(['.', ':']) || first == "localhost") {
        return name.to_owned();
    }
    match path.strip_prefix("library/") {
        Some(official) if !official.contains('/') => official.to_owned(),
        _ => path.to_owned(),
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(s: &str) -> Result<Reference> {
        let bad = |reason: &str| Error::InvalidReference {
            reference: s.to_owned(),
            reason: reason.to_owned(),
        };
        if s.is_empty() {
            return Err(bad("empty reference"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (
                r,
                Some(d.parse::<Digest>().map_err(|_| bad("invalid digest"))?),
            ),
            None => (s, None),
        };
        // The tag is after the last ':' that follows the last '/', so a
        // registry port (`host:5000/x`) is not taken for a tag.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            validate_tag(t).map_err(|_| bad("invalid tag"))?;
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                validate_domain(first).map_err(|_| bad("invalid registry host"))?;
                (first.to_owned(), remainder.to_owned())
            }
            _ => (DOCKER_HUB.to_owned(), name.to_owned()),
        };
        let domain = if domain == LEGACY_DOMAIN {
            DOCKER_HUB.to_owned()
        } else {
            domain
        };
        let path = if domain == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            // Docker refuses these: they read as image ids.
            return Err(bad("a 64-character hex name reads as an image id"));
        }
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(bad("repository names must be lowercase"));
        }
        validate_name(&path).map_err(|_| bad("invalid repository name"))?;
        if domain.len() + 1 + path.len() > 255 {
            return Err(bad("name longer than 255 characters"));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_owned()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_owned()),
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }
}

/// Checks a repository name against the distribution spec's grammar
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
/// The grammar alone rules out `..`, empty components, `%`-escapes and
/// absolute paths, which is what makes names safe to use as directories.
pub fn validate_name(name: &str) -> Result<()> {
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
            if alnum(bytes[i]) {
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
pub fn validate_tag(tag: &str) -> Result<()> {
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

/// Normalizes a registry name as users type it to `docker login` and
/// friends (`docker.io`, `index.docker.io`, `https://index.docker.io/v1/`,
/// `host:5000`): a scheme and path are dropped and Docker Hub's aliases
/// become [`DOCKER_HUB`].
pub fn normalize_registry(value: &str) -> String {
    let v = value
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let v = v.split('/').next().unwrap_or(v);
    match v {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" | DOCKER_HUB => {
            DOCKER_HUB.to_owned()
        }
        other => other.to_owned(),
    }
}

/// A host name or IP (IPv6 in brackets), with an optional numeric port.
fn validate_domain(d: &str) -> std::result::Result<(), ()> {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or(())?;
        if inside.is_empty() || !inside.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(());
        }
        match after {
            "" => ("", None),
            p => ("", Some(p.strip_prefix(':').ok_or(())?)),
        }
    } else {
        match d.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
    }
    if !d.starts_with('[') {
        let labels_ok = !host.is_empty()
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if !labels_ok {
            return Err(());
        }
    }
    Ok(())
}

/// Fuzz entry point (`fuzz/` and the corpus tests): any text parses or is
/// refused; a reference that parses prints to a text that parses back to
/// it, and its familiar name parses to the same repository.
#[doc(hidden)]
pub fn fuzz_reference(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(reference) = text.parse::<Reference>() else {
        return;
    };
    let printed = reference.to_string();
    let again: Reference = printed
        .parse()
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which is refused: {e}"));
    assert_eq!(again, reference, "{text:?} → {printed:?}");
    let familiar: Reference = reference
        .familiar_name()
        .parse()
        .unwrap_or_else(|e| panic!("the familiar name of {text:?} is refused: {e}"));
    assert_eq!(familiar.name(), reference.name(), "{text:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn good_references_normalize_like_docker() {
        let cases: Vec<(String, String)> = vec![
            ("busybox".into(), "docker.io/library/busybox:latest".into()),
            (
                "busybox:1.36".into(),
                "docker.io/library/busybox:1.36".into(),
            ),
            (
                "library/busybox".into(),
                "docker.io/library/busybox:latest".into(),
            ),
            (
                "docker.io/busybox".into(),
                "docker.io/library/busybox:latest".into(),
            ),
            (
                "index.docker.io/busybox".into(),
                "docker.io/library/busybox:latest".into(),
            ),
            ("user/app:v1".into(), "docker.io/user/app:v1".into()),
            ("a/b/c/d".into(), "docker.io/a/b/c/d:latest".into()),
            (
                "127.0.0.1:5000/x/y:tag".into(),
                "127.0.0.1:5000/x/y:tag".into(),
            ),
            ("localhost/app".into(), "localhost/app:latest".into()),
            (
                "localhost:5000/app:v2".into(),
                "localhost:5000/app:v2".into(),
            ),
            ("quay.io/org/app".into(), "quay.io/org/app:latest".into()),
            (
                "ghcr.io/o/a_b.c-d:V_1.0-rc".into(),
                "ghcr.io/o/a_b.c-d:V_1.0-rc".into(),
            ),
            ("[::1]:5000/app:1".into(), "[::1]:5000/app:1".into()),
            (
                "Registry.Example/app".into(),
                "Registry.Example/app:latest".into(),
            ),
            // An uppercase first component is a host, as in Docker.
            ("UPPER/case".into(), "UPPER/case:latest".into()),
            (
                format!("busybox@{D}"),
                format!("docker.io/library/busybox@{D}"),
            ),
            (
                format!("busybox:1@{D}"),
                format!("docker.io/library/busybox:1@{D}"),
            ),
            (
                format!("127.0.0.1:5000/x@{D}"),
                format!("127.0.0.1:5000/x@{D}"),
            ),
            ("a__b/c---d".into(), "docker.io/a__b/c---d:latest".into()),
        ];
        for (input, want) in cases {
            let r: Reference = input
                .parse()
                .unwrap_or_else(|e| panic!("{input:?} refused: {e}"));
            assert_eq!(r.to_string(), want, "{input}");
        }
        let r: Reference = "busybox".parse().expect("parse");
        assert_eq!(r.familiar_name(), "busybox");
        let r: Reference = "user/app".parse().expect("parse");
        assert_eq!(r.familiar_name(), "user/app");
        let r: Reference = "localhost:5000/x/y:t".parse().expect("parse");
        assert_eq!(r.familiar_name(), "localhost:5000/x/y");
        assert_eq!(r.tagged_name().as_deref(), Some("localhost:5000/x/y:t"));
    }

    #[test]
    fn bad_references_are_refused() {
        let hex64 = "a".repeat(64);
        let long = format!("x/{}", "a".repeat(260));
        let bad_tag = format!("busybox:{}", "t".repeat(129));
        let bad = [
            "",
            ":",
            "busybox:",
            ":latest",
            "Busybox",
            "lower/UPPER",
            "busy box",
            "busybox:la test",
            "busybox:.tag",
            "busybox:-tag",
            "a//b",
            "/abs",
            "trailing/",
            "-lead",
            "a..b",
            "a.-b",
            "busybox@sha256:abc",
            "busybox@md5:d41d8cd98f00b204e9800998ecf8427e",
            "busybox@",
            "host:port/x",
            "host:99999999/x",
            "bad_host.com/x",
            "-bad.com/x",
            "[zz]:5000/x",
            "localhost:5000/",
            "x/../y",
            "x/./y",
            "a%2fb",
            hex64.as_str(),
            long.as_str(),
            bad_tag.as_str(),
        ];
        for b in bad {
            assert!(b.parse::<Reference>().is_err(), "{b:?} accepted");
        }
    }

    /// The table the registry client's parser had: the same answers from
    /// the one parser, and what it asks a registry for.
    #[test]
    fn client_table_normalizes_like_docker() {
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
            let r: Reference = input.parse().expect(input);
            assert_eq!(r.to_string(), *want, "{input}");
        }
        let tagged: Reference = "busybox:1.36".parse().expect("tagged");
        assert_eq!(tagged.tag_or_digest(), "1.36");
        let pinned: Reference = format!("h:1/x@{d}").parse().expect("digest ref");
        assert_eq!(pinned.tag_or_digest(), d);
        assert_eq!(pinned.tag, None);
        let both: Reference = format!("x:t@{d}").parse().expect("tag and digest");
        assert_eq!(both.to_string(), format!("docker.io/library/x:t@{d}"));
        assert_eq!(both.tag_or_digest(), d);
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
            assert!(bad.parse::<Reference>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn registry_names() {
        assert_eq!(
            normalize_registry("https://index.docker.io/v1/"),
            "docker.io"
        );
        assert_eq!(normalize_registry("registry-1.docker.io"), "docker.io");
        assert_eq!(normalize_registry("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(normalize_registry("http://localhost:1/"), "localhost:1");
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
            assert!(
                matches!(validate_name(bad), Err(Error::InvalidName { .. })),
                "{bad} must be rejected"
            );
        }
        assert!(validate_name(&"a".repeat(256)).is_err());
    }

    #[test]
    fn tags_follow_the_grammar() {
        assert!(validate_tag("latest").is_ok());
        assert!(validate_tag("_x.Y-1").is_ok());
        assert!(validate_tag(&"a".repeat(128)).is_ok());
        for bad in ["", ".x", "-x", "a/b", "a:b", &"a".repeat(129)] {
            assert!(
                matches!(validate_tag(bad), Err(Error::InvalidTag { .. })),
                "{bad}"
            );
        }
    }
}
