//! Who is asking: the server's certificates (a CA and the certificates it
//! signs, made on first start), client-certificate and bearer-token
//! authentication, the admin kubeconfig, and authorization.
//!
//! A client certificate signed by the CA names its user in the subject's
//! CN and its groups in O, as Kubernetes reads them; a bearer token maps
//! to a user through `<data>/tokens` (`token,user,uid,"group1,group2"`
//! lines, the static token file's format). There is no anonymous access.
//! Members of `system:masters` may do anything; a node
//! (`system:node:NAME` in `system:nodes`) reads and writes what is its
//! own ([`authorize`]); anyone else nothing.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;

use crate::error::Error;

/// An authenticated user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }
}

/// PEM files of the server's PKI under `<data>/pki`.
#[derive(Clone, Debug)]
pub struct Pki {
    pub dir: PathBuf,
    pub ca_cert: String,
    pub server_cert: String,
    pub server_key: String,
    pub admin_cert: String,
    pub admin_key: String,
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), Error> {
    let err = |source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(contents).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

fn cert_error(e: rcgen::Error) -> Error {
    Error::Certificates {
        reason: e.to_string(),
    }
}

impl Pki {
    /// Loads the PKI in `dir`, generating what is missing: a CA, a server
    /// certificate for `hosts` (names and IP addresses) and an admin client
    /// certificate (CN `admin`, O `system:masters`).
    pub fn ensure(dir: &Path, hosts: &[String]) -> Result<Pki, Error> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let p = |n: &str| dir.join(n);
        if !p("ca.crt").exists() {
            let ca_key = rcgen::KeyPair::generate().map_err(cert_error)?;
            let ca = ca_params().self_signed(&ca_key).map_err(cert_error)?;
            let leaf = |names: Vec<String>,
                        cn: &str,
                        org: Option<&str>,
                        server: bool|
             -> Result<(String, String), Error> {
                let key = rcgen::KeyPair::generate().map_err(cert_error)?;
                let mut params = rcgen::CertificateParams::new(names).map_err(cert_error)?;
                set_validity(&mut params);
                params.distinguished_name = rcgen::DistinguishedName::new();
                params
                    .distinguished_name
                    .push(rcgen::DnType::CommonName, cn);
                if let Some(o) = org {
                    params
                        .distinguished_name
                        .push(rcgen::DnType::OrganizationName, o);
                }
                params.key_usages = vec![
                    rcgen::KeyUsagePurpose::DigitalSignature,
                    rcgen::KeyUsagePurpose::KeyEncipherment,
                ];
                params.extended_key_usages = vec![if server {
                    rcgen::ExtendedKeyUsagePurpose::ServerAuth
                } else {
                    rcgen::ExtendedKeyUsagePurpose::ClientAuth
                }];
                let cert = params.signed_by(&key, &ca, &ca_key).map_err(cert_error)?;
                Ok((cert.pem(), key.serialize_pem()))
            };
            let (server_cert, server_key) = leaf(hosts.to_vec(), "kube-apiserver", None, true)?;
            let (admin_cert, admin_key) = leaf(Vec::new(), "admin", Some("system:masters"), false)?;
            write_private(&p("server.crt"), server_cert.as_bytes())?;
            write_private(&p("server.key"), server_key.as_bytes())?;
            write_private(&p("admin.crt"), admin_cert.as_bytes())?;
            write_private(&p("admin.key"), admin_key.as_bytes())?;
            write_private(&p("ca.key"), ca_key.serialize_pem().as_bytes())?;
            // The CA certificate last: its presence means the set is whole.
            write_private(&p("ca.crt"), ca.pem().as_bytes())?;
        }
        Ok(Pki {
            dir: dir.to_path_buf(),
            ca_cert: read(&p("ca.crt"))?,
            server_cert: read(&p("server.crt"))?,
            server_key: read(&p("server.key"))?,
            admin_cert: read(&p("admin.crt"))?,
            admin_key: read(&p("admin.key"))?,
        })
    }

    /// The TLS configuration: the server certificate, client certificates
    /// verified against the CA when offered (tokens are the other way in).
    pub fn server_config(&self) -> Result<rustls::ServerConfig, Error> {
        let tls = |reason: String| Error::Tls { reason };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for ca in rustls_pemfile::certs(&mut self.ca_cert.as_bytes()) {
            roots
                .add(ca.map_err(|e| tls(e.to_string()))?)
                .map_err(|e| tls(e.to_string()))?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .map_err(|e| tls(e.to_string()))?;
        let chain = rustls_pemfile::certs(&mut self.server_cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls(e.to_string()))?;
        let key = rustls_pemfile::private_key(&mut self.server_key.as_bytes())
            .map_err(|e| tls(e.to_string()))?
            .ok_or_else(|| tls("server.key holds no private key".into()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| tls(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    /// An admin kubeconfig for `server` (`https://127.0.0.1:6443`).
    pub fn admin_kubeconfig(&self, server: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server}\n  name: cais\ncontexts:\n- context:\n    cluster: cais\n    user: admin\n  name: cais\ncurrent-context: cais\npreferences: {{}}\nusers:\n- name: admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(&self.ca_cert),
            b64(&self.admin_cert),
            b64(&self.admin_key),
        )
    }
}

/// Certificates are valid from today for ten years (a restart before then
/// keeps them; there is no rotation yet).
fn set_validity(params: &mut rcgen::CertificateParams) {
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let (y, m, d) = (
        i32::from(today.year()),
        today.month() as u8,
        today.day() as u8,
    );
    params.not_before = rcgen::date_time_ymd(y, m, d);
    params.not_after = rcgen::date_time_ymd(y + 10, m, d.min(28));
}

fn ca_params() -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::default();
    set_validity(&mut params);
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "cais-kube-ca");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// Bearer tokens and their users.
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    users: HashMap<String, User>,
}

impl Tokens {
    /// Reads `path`, creating it with one admin token when missing.
    pub fn ensure(path: &Path) -> Result<Tokens, Error> {
        if !path.exists() {
            let token = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            write_private(
                path,
                format!("{token},admin,admin,\"system:masters\"\n").as_bytes(),
            )?;
        }
        Ok(Tokens::parse(&read(path)?))
    }

    /// The token of `user` in the token file at `path` (made as
    /// [`Tokens::ensure`] makes it), a new one appended when it has none:
    /// how the server gives its own node agent an identity.
    pub fn ensure_user(path: &Path, user: &str, groups: &[&str]) -> Result<String, Error> {
        let tokens = Tokens::ensure(path)?;
        if let Some(t) = tokens.token_of(user) {
            return Ok(t.to_string());
        }
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let mut text = read(path)?;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("{token},{user},{user},\"{}\"\n", groups.join(",")));
        write_private(path, text.as_bytes())?;
        Ok(token)
    }

    /// Parses the static token file format; malformed lines are skipped.
    pub fn parse(text: &str) -> Tokens {
        let mut users = HashMap::new();
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let mut fields = line.splitn(4, ',');
            let (Some(token), Some(name)) = (fields.next(), fields.next()) else {
                continue;
            };
            let _uid = fields.next();
            let groups = fields
                .next()
                .map(|g| {
                    g.trim_matches('"')
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            if !token.is_empty() && !name.is_empty() {
                users.insert(
                    token.to_string(),
                    User {
                        name: name.to_string(),
                        groups,
                    },
                );
            }
        }
        Tokens { users }
    }

    pub fn user(&self, token: &str) -> Option<&User> {
        self.users.get(token)
    }

    /// The first token of a user (for writing kubeconfigs and tests).
    pub fn token_of(&self, name: &str) -> Option<&str> {
        self.users
            .iter()
            .find(|(_, u)| u.name == name)
            .map(|(t, _)| t.as_str())
    }
}

/// The user a verified client certificate names: CN is the user, each O
/// a group.
pub fn user_from_certificate(der: &[u8]) -> Option<User> {
    let subject = der::subject(der)?;
    let mut name = None;
    let mut groups = Vec::new();
    for (oid, value) in subject {
        match oid.as_slice() {
            [0x55, 0x04, 0x03] => name = Some(value),
            [0x55, 0x04, 0x0a] => groups.push(value),
            _ => {}
        }
    }
    Some(User {
        name: name?,
        groups,
    })
}

/// Just enough DER (X.690) to read a certificate's subject.
mod der {
    /// One TLV: tag, contents, the rest after it.
    fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (first as usize, rest)
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | *b as usize);
            (len, &rest[n..])
        };
        if rest.len() < len {
            return None;
        }
        Some((tag, &rest[..len], &rest[len..]))
    }

    /// The subject's attributes (OID bytes, string value) of a certificate.
    pub fn subject(cert: &[u8]) -> Option<Vec<(Vec<u8>, String)>> {
        let (0x30, certificate, _) = tlv(cert)? else {
            return None;
        };
        let (0x30, tbs, _) = tlv(certificate)? else {
            return None;
        };
        let mut rest = tbs;
        // [0] version is optional.
        let (tag, _, after) = tlv(rest)?;
        if tag == 0xa0 {
            rest = after;
        }
        // serialNumber, signature, issuer, validity, then subject.
        for _ in 0..4 {
            let (_, _, after) = tlv(rest)?;
            rest = after;
        }
        let (0x30, mut name, _) = tlv(rest)? else {
            return None;
        };
        let mut out = Vec::new();
        while !name.is_empty() {
            let (0x31, mut set, after) = tlv(name)? else {
                return None;
            };
            name = after;
            while !set.is_empty() {
                let (0x30, attr, after) = tlv(set)? else {
                    return None;
                };
                set = after;
                let (0x06, oid, value) = tlv(attr)? else {
                    return None;
                };
                let (_, text, _) = tlv(value)?;
                out.push((oid.to_vec(), String::from_utf8_lossy(text).into_owned()));
            }
        }
        Some(out)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn truncated_input_is_none() {
            assert!(super::subject(&[]).is_none());
            assert!(super::subject(&[0x30, 0x82, 0xff]).is_none());
            assert!(super::subject(&[0x30, 0x03, 0x30, 0x01, 0x02]).is_none());
        }
    }
}

/// What a request does, as authorization sees it.
#[derive(Clone, Copy, Debug)]
pub struct Attributes<'a> {
    /// get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: &'a str,
    pub group: &'a str,
    /// The resource's plural.
    pub resource: &'a str,
    pub subresource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// An authorization decision; the conditional ones need the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    /// Allowed when the pod is bound to this node (`spec.nodeName`).
    IfPodOnNode(String),
    /// Allowed when the created object is named this (a node's own Node
    /// or Lease).
    IfNamed(String),
}

impl User {
    /// The node a node identity speaks for (`system:node:NAME` in
    /// `system:nodes`).
    pub fn node(&self) -> Option<&str> {
        if !self.groups.iter().any(|g| g == "system:nodes") {
            return None;
        }
        self.name
            .strip_prefix("system:node:")
            .filter(|n| !n.is_empty())
    }
}

/// Reading discovery and OpenAPI: admins and nodes.
pub fn may_discover(user: &User) -> bool {
    user.is_admin() || user.node().is_some()
}

/// What a user may do: everything for `system:masters`; for a node (as
/// Kubernetes' Node authorizer and NodeRestriction allow it): read
/// anything, write its own Node and its Lease in `kube-node-lease`, the
/// status of pods bound to it and their deletion, and events.
pub fn authorize(user: &User, a: &Attributes<'_>) -> Decision {
    if user.is_admin() {
        return Decision::Allow;
    }
    let Some(node) = user.node() else {
        return Decision::Deny;
    };
    if matches!(a.verb, "get" | "list" | "watch") {
        return Decision::Allow;
    }
    let own = |name: Option<&str>| match name {
        Some(n) if n == node => Decision::Allow,
        Some(_) => Decision::Deny,
        None if a.verb == "create" => Decision::IfNamed(node.to_string()),
        None => Decision::Deny,
    };
    match (a.group, a.resource, a.subresource, a.verb) {
        ("", "nodes", None | Some("status"), "create" | "update" | "patch") => own(a.name),
        ("coordination.k8s.io", "leases", None, "create" | "update" | "patch" | "delete")
            if a.namespace == Some("kube-node-lease") =>
        {
            own(a.name)
        }
        ("", "pods", Some("status"), "update" | "patch") | ("", "pods", None, "delete")
            if a.name.is_some() =>
        {
            Decision::IfPodOnNode(node.to_string())
        }
        ("" | "events.k8s.io", "events", None, "create" | "update" | "patch") => Decision::Allow,
        _ => Decision::Deny,
    }
}

/// The reason a request was refused, as the real server words it.
pub fn denial(user: &User, a: &Attributes<'_>) -> String {
    let mut what = format!(
        "User {:?} cannot {} resource {:?}",
        user.name, a.verb, a.resource
    );
    if let Some(sub) = a.subresource {
        what = format!(
            "User {:?} cannot {} resource \"{}/{sub}\"",
            user.name, a.verb, a.resource
        );
    }
    what.push_str(&format!(" in API group {:?}", a.group));
    match a.namespace {
        Some(ns) => what.push_str(&format!(" in the namespace {ns:?}")),
        None => what.push_str(" at the cluster scope"),
    }
    what
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_token_is_added_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens");
        let node = ensure_node(&path);
        assert_eq!(ensure_node(&path), node, "the same token again");
        let tokens = Tokens::ensure(&path).expect("tokens");
        let user = tokens.user(&node).expect("the node's token");
        assert_eq!(user.node(), Some("n1"));
        assert!(tokens.token_of("admin").is_some(), "the admin token stays");
    }

    fn ensure_node(path: &Path) -> String {
        Tokens::ensure_user(path, "system:node:n1", &["system:nodes"]).expect("a token")
    }

    #[test]
    fn generated_certificates_name_their_users() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki =
            Pki::ensure(dir.path(), &["localhost".into(), "127.0.0.1".into()]).expect("generates");
        let der = rustls_pemfile::certs(&mut pki.admin_cert.as_bytes())
            .next()
            .expect("one certificate")
            .expect("valid PEM");
        assert_eq!(
            user_from_certificate(&der),
            Some(User {
                name: "admin".into(),
                groups: vec!["system:masters".into()]
            })
        );
        // Loading again keeps the same CA.
        let again = Pki::ensure(dir.path(), &[]).expect("loads");
        assert_eq!(again.ca_cert, pki.ca_cert);
        assert!(pki.server_config().is_ok());
        let mode = std::fs::metadata(dir.path().join("ca.key"))
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(pki
            .admin_kubeconfig("https://127.0.0.1:1")
            .contains("client-certificate-data: "));
    }

    fn attrs<'a>(
        verb: &'a str,
        group: &'a str,
        resource: &'a str,
        sub: Option<&'a str>,
        ns: Option<&'a str>,
        name: Option<&'a str>,
    ) -> Attributes<'a> {
        Attributes {
            verb,
            group,
            resource,
            subresource: sub,
            namespace: ns,
            name,
        }
    }

    #[test]
    fn nodes_write_only_what_is_theirs() {
        let node = User {
            name: "system:node:n1".into(),
            groups: vec!["system:nodes".into()],
        };
        let cases = [
            (
                attrs("list", "", "secrets", None, Some("x"), None),
                Decision::Allow,
            ),
            (
                attrs("patch", "", "nodes", Some("status"), None, Some("n1")),
                Decision::Allow,
            ),
            (
                attrs("patch", "", "nodes", Some("status"), None, Some("n2")),
                Decision::Deny,
            ),
            (
                attrs("create", "", "nodes", None, None, None),
                Decision::IfNamed("n1".into()),
            ),
            (
                attrs(
                    "update",
                    "coordination.k8s.io",
                    "leases",
                    None,
                    Some("kube-node-lease"),
                    Some("n1"),
                ),
                Decision::Allow,
            ),
            (
                attrs(
                    "update",
                    "coordination.k8s.io",
                    "leases",
                    None,
                    Some("default"),
                    Some("n1"),
                ),
                Decision::Deny,
            ),
            (
                attrs("patch", "", "pods", Some("status"), Some("d"), Some("p")),
                Decision::IfPodOnNode("n1".into()),
            ),
            (
                attrs("delete", "", "pods", None, Some("d"), Some("p")),
                Decision::IfPodOnNode("n1".into()),
            ),
            (
                attrs("patch", "", "pods", None, Some("d"), Some("p")),
                Decision::Deny,
            ),
            (
                attrs("create", "", "events", None, Some("d"), None),
                Decision::Allow,
            ),
            (
                attrs("create", "apps", "deployments", None, Some("d"), None),
                Decision::Deny,
            ),
            (
                attrs("delete", "", "nodes", None, None, Some("n1")),
                Decision::Deny,
            ),
        ];
        for (a, want) in cases {
            assert_eq!(authorize(&node, &a), want, "{a:?}");
        }
        let fake = User {
            name: "system:node:n1".into(),
            groups: vec![],
        };
        assert_eq!(
            authorize(&fake, &attrs("get", "", "pods", None, None, None)),
            Decision::Deny
        );
        let admin = User {
            name: "a".into(),
            groups: vec!["system:masters".into()],
        };
        assert_eq!(
            authorize(
                &admin,
                &attrs("delete", "apps", "deployments", None, None, Some("x"))
            ),
            Decision::Allow
        );
        assert_eq!(
            denial(&node, &attrs("create", "apps", "deployments", None, Some("d"), None)),
            "User \"system:node:n1\" cannot create resource \"deployments\" in API group \"apps\" in the namespace \"d\""
        );
    }

    #[test]
    fn token_files() {
        let t = Tokens::parse(
            "abc,alice,1,\"system:masters,dev\"\n# comment\nbad\n,empty,2\nxyz,bob,2\n",
        );
        assert_eq!(
            t.user("abc"),
            Some(&User {
                name: "alice".into(),
                groups: vec!["system:masters".into(), "dev".into()]
            })
        );
        assert_eq!(t.user("xyz").map(|u| u.groups.len()), Some(0));
        assert!(t.user("bad").is_none());
        assert!(t.user("").is_none());
        assert!(t.user("abc").is_some_and(User::is_admin));
        assert!(!t.user("xyz").is_some_and(User::is_admin));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens");
        let made = Tokens::ensure(&path).expect("made");
        let token = made.token_of("admin").expect("an admin token");
        assert_eq!(token.len(), 64);
        assert!(made.user(token).is_some_and(User::is_admin));
    }
}
