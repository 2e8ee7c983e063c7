//! Kubeconfig files: the current context's server, its CA and the user's
//! credentials (client certificate and key, or a bearer token), inline
//! (`*-data`, base64) or as file paths relative to the kubeconfig.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use crate::error::{Error, Result};

/// What a client needs to reach and authenticate to a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `https://host:port`.
    pub server: String,
    /// PEM of the CA that signed the server's certificate.
    pub ca_pem: Option<Vec<u8>>,
    /// PEM client certificate and key.
    pub client_cert_pem: Option<Vec<u8>>,
    pub client_key_pem: Option<Vec<u8>>,
    pub token: Option<String>,
    /// Skips checking the server's certificate (kubeconfig's
    /// `insecure-skip-tls-verify`).
    pub insecure: bool,
}

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    clusters: Vec<Named<Cluster>>,
    #[serde(default)]
    contexts: Vec<Named<Context>>,
    #[serde(default)]
    users: Vec<Named<User>>,
    #[serde(rename = "current-context", default)]
    current_context: String,
}

#[derive(Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "cluster", alias = "context", alias = "user")]
    value: T,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct Cluster {
    server: String,
    certificate_authority: Option<String>,
    certificate_authority_data: Option<String>,
    #[serde(default)]
    insecure_skip_tls_verify: bool,
}

#[derive(Deserialize)]
struct Context {
    cluster: String,
    user: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct User {
    client_certificate: Option<String>,
    client_certificate_data: Option<String>,
    client_key: Option<String>,
    client_key_data: Option<String>,
    token: Option<String>,
    token_file: Option<String>,
}

impl Config {
    /// Reads the kubeconfig at `path` and resolves its current context.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadConfig {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses kubeconfig text; `path` names it in errors and anchors
    /// relative file names.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let bad = |reason: String| Error::Config {
            path: path.to_path_buf(),
            reason,
        };
        let file: File =
            serde_yaml_ng::from_str(text).map_err(|e| bad(format!("not a kubeconfig: {e}")))?;
        let context = if file.current_context.is_empty() {
            file.contexts.first()
        } else {
            file.contexts
                .iter()
                .find(|c| c.name == file.current_context)
        }
        .ok_or_else(|| bad(format!("no context {:?}", file.current_context)))?;
        let cluster = file
            .clusters
            .iter()
            .find(|c| c.name == context.value.cluster)
            .ok_or_else(|| bad(format!("no cluster {:?}", context.value.cluster)))?;
        let user = file.users.iter().find(|u| u.name == context.value.user);
        let dir = path.parent().unwrap_or(Path::new("."));
        let material = |data: &Option<String>, file: &Option<String>, what: &str| {
            read_material(data.as_deref(), file.as_deref(), dir)
                .map_err(|reason| bad(format!("{what}: {reason}")))
        };
        let c = &cluster.value;
        if !c.server.starts_with("https://") {
            return Err(bad(format!(
                "server {:?}: only https servers are supported",
                c.server
            )));
        }
        let default_user = User::default();
        let u = user.map(|u| &u.value).unwrap_or(&default_user);
        let token = match (&u.token, &u.token_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(f)) => Some(
                std::fs::read_to_string(resolve(dir, f))
                    .map_err(|e| bad(format!("token file {f}: {e}")))?
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        };
        Ok(Config {
            server: c.server.trim_end_matches('/').to_string(),
            ca_pem: material(
                &c.certificate_authority_data,
                &c.certificate_authority,
                "certificate authority",
            )?,
            client_cert_pem: material(
                &u.client_certificate_data,
                &u.client_certificate,
                "client certificate",
            )?,
            client_key_pem: material(&u.client_key_data, &u.client_key, "client key")?,
            token,
            insecure: c.insecure_skip_tls_verify,
        })
    }

    /// `host` and `port` of the server URL.
    pub fn host_port(&self) -> Result<(String, u16)> {
        let rest = self.server.trim_start_matches("https://");
        let authority = rest.split('/').next().unwrap_or(rest);
        let bad = || Error::Config {
            path: PathBuf::new(),
            reason: format!("server {:?} has no host", self.server),
        };
        if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            let port = after
                .strip_prefix(':')
                .map(|p| p.parse().map_err(|_| bad()))
                .transpose()?
                .unwrap_or(443);
            return Ok((host.to_string(), port));
        }
        match authority.rsplit_once(':') {
            Some((h, p)) => Ok((h.to_string(), p.parse().map_err(|_| bad())?)),
            None if !authority.is_empty() => Ok((authority.to_string(), 443)),
            None => Err(bad()),
        }
    }
}

fn resolve(dir: &Path, file: &str) -> PathBuf {
    let p = Path::new(file);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

fn read_material(
    data: Option<&str>,
    file: Option<&str>,
    dir: &Path,
) -> std::result::Result<Option<Vec<u8>>, String> {
    if let Some(d) = data {
        return base64::engine::general_purpose::STANDARD
            .decode(d.trim())
            .map(Some)
            .map_err(|e| format!("invalid base64: {e}"));
    }
    match file {
        Some(f) => std::fs::read(resolve(dir, f))
            .map(Some)
            .map_err(|e| format!("{f}: {e}")),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: Y2E=\n    server: https://127.0.0.1:6443\n  name: c\ncontexts:\n- context:\n    cluster: c\n    user: u\n  name: x\ncurrent-context: x\nusers:\n- name: u\n  user:\n    token: abc\n";

    #[test]
    fn resolves_the_current_context() {
        let c = Config::parse(TEXT, Path::new("/tmp/k")).expect("parses");
        assert_eq!(c.server, "https://127.0.0.1:6443");
        assert_eq!(c.ca_pem.as_deref(), Some(&b"ca"[..]));
        assert_eq!(c.token.as_deref(), Some("abc"));
        assert_eq!(
            c.host_port().expect("host"),
            ("127.0.0.1".to_string(), 6443)
        );
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        let bad = [
            ("not: [yaml", "not a kubeconfig"),
            (
                &TEXT.replace("current-context: x", "current-context: y"),
                "no context",
            ),
            (
                &TEXT.replace("cluster: c\n    user", "cluster: d\n    user"),
                "no cluster",
            ),
            (&TEXT.replace("https://", "http://"), "only https"),
            (&TEXT.replace("Y2E=", "ab$"), "invalid base64"),
        ];
        for (text, want) in bad {
            let e = Config::parse(text, Path::new("/tmp/k")).expect_err(want);
            assert!(e.to_string().contains(want), "{e} lacks {want}");
        }
    }

    #[test]
    fn ipv6_servers() {
        let mut c = Config::parse(TEXT, Path::new("/tmp/k")).expect("parses");
        c.server = "https://[::1]:8443".into();
        assert_eq!(c.host_port().expect("host"), ("::1".to_string(), 8443));
    }
}
