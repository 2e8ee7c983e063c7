//! Authentication and authorization: htpasswd (bcrypt) users, an access
//! list, and bearer tokens issued by the built-in token endpoint.
//!
//! The token flow follows Docker's token authentication spec, which OCI
//! clients (containers/image, docker) implement: a 401 carries
//! `WWW-Authenticate: Bearer realm=...,service=...,scope=...`, the client
//! asks the realm for a token with its credentials and the scopes, then
//! retries with `Authorization: Bearer <token>`. Clients treat the token as
//! opaque, so ours is `base64url(claims).base64url(hmac-sha256(claims))`,
//! signed with a key only this process knows.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Auth errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Syntax {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// An action on a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Pull,
    Push,
    Delete,
    /// `registry:catalog:*`.
    Catalog,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
            Action::Catalog => "*",
        }
    }
}

/// One rule of the access list: `USER REPOSITORY-PATTERN ACTIONS`.
#[derive(Debug, Clone)]
struct Rule {
    user: String,
    pattern: String,
    actions: Vec<String>,
}

/// How clients authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Basic,
    Token,
}

/// What a request presented and was found to be.
#[derive(Debug, Clone)]
pub enum Identity {
    /// No or bad credentials.
    Anonymous,
    /// A user checked against htpasswd.
    User(String),
    /// A valid token with its grants.
    Token { user: String, access: Vec<Access> },
}

/// A grant inside a token (Docker token spec `access` claim).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Access {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    access: Vec<Access>,
}

/// Lifetime of an issued token, in seconds.
pub const TOKEN_TTL: u64 = 300;

/// The auth state of a server.
#[derive(Debug)]
pub struct Auth {
    pub mode: Mode,
    users: HashMap<String, String>,
    rules: Option<Vec<Rule>>,
    key: [u8; 32],
    /// sha256(user NUL password) of credentials bcrypt already accepted:
    /// bcrypt is deliberately slow and clients send Basic credentials on
    /// every request.
    verified: Mutex<HashSet<[u8; 32]>>,
}

impl Auth {
    /// Loads users from an htpasswd file (bcrypt entries only) and an
    /// optional access list.
    pub fn load(mode: Mode, htpasswd: &Path, acl: Option<&Path>) -> Result<Auth, Error> {
        let text = fs::read_to_string(htpasswd).map_err(|source| Error::Read {
            path: htpasswd.to_owned(),
            source,
        })?;
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let syntax = |reason: &str| Error::Syntax {
                path: htpasswd.to_owned(),
                line: i + 1,
                reason: reason.to_owned(),
            };
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| syntax("expected user:hash"))?;
            if !(hash.starts_with("$2y$") || hash.starts_with("$2b$") || hash.starts_with("$2a$")) {
                // Apache's MD5 and SHA1 schemes are weak; only bcrypt is accepted.
                return Err(syntax("only bcrypt hashes are supported (htpasswd -B)"));
            }
            users.insert(user.to_owned(), hash.to_owned());
        }
        let rules = acl.map(load_acl).transpose()?;
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the kernel random source is available");
        Ok(Auth {
            mode,
            users,
            rules,
            key,
            verified: Mutex::new(HashSet::new()),
        })
    }

    /// Checks a user and password.
    pub fn check_password(&self, user: &str, password: &str) -> bool {
        let Some(hash) = self.users.get(user) else {
            return false;
        };
        let mut h = Sha256::new();
        h.update(user.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        h.update(hash.as_bytes());
        let fingerprint: [u8; 32] = h.finalize().into();
        if self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&fingerprint)
        {
            return true;
        }
        let ok = bcrypt::verify(password, hash).unwrap_or(false);
        if ok {
            self.verified
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(fingerprint);
        }
        ok
    }

    /// Decodes a Basic `Authorization` value into a checked user.
    pub fn basic_user(&self, header: &str) -> Option<String> {
        let encoded = header
            .strip_prefix("Basic ")
            .or_else(|| header.strip_prefix("basic "))?;
        let decoded = STANDARD.decode(encoded.trim()).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        self.check_password(user, password).then(|| user.to_owned())
    }

    /// Identifies the caller from its `Authorization` header.
    pub fn identify(&self, header: Option<&str>) -> Identity {
        let Some(header) = header else {
            return Identity::Anonymous;
        };
        match self.mode {
            Mode::Basic => self
                .basic_user(header)
                .map(Identity::User)
                .unwrap_or(Identity::Anonymous),
            Mode::Token => {
                let Some(token) = header.strip_prefix("Bearer ") else {
                    return Identity::Anonymous;
                };
                match self.verify_token(token.trim()) {
                    Some(claims) => Identity::Token {
                        user: claims.sub,
                        access: claims.access,
                    },
                    None => Identity::Anonymous,
                }
            }
        }
    }

    /// May `user` do `action` on repository `name` according to the ACL?
    pub fn allowed(&self, user: &str, kind: &str, name: &str, action: Action) -> bool {
        let Some(rules) = &self.rules else {
            return true;
        };
        rules.iter().any(|r| {
            (r.user == "*" || r.user == user)
                && kind_matches(kind, &r.pattern, name)
                && r.actions.iter().any(|a| a == "*" || a == action.as_str())
        })
    }

    /// Is `identity` granted `action` on `kind:name`?
    pub fn permits(&self, identity: &Identity, kind: &str, name: &str, action: Action) -> bool {
        match identity {
            Identity::Anonymous => false,
            Identity::User(user) => self.allowed(user, kind, name, action),
            Identity::Token { access, .. } => access.iter().any(|a| {
                a.kind == kind
                    && a.name == name
                    && a.actions.iter().any(|x| x == "*" || x == action.as_str())
            }),
        }
    }

    /// Issues a token for `user` granting the part of `scopes` the ACL allows
    /// (the token spec says to grant a subset rather than refuse).
    pub fn issue_token(&self, user: &str, scopes: &[String]) -> String {
        let mut access = Vec::new();
        for scope in scopes {
            // scope = type:name:actions; names never contain ':' but
            // a "name:tag"-style resource would, so split from both ends.
            let Some((kind, rest)) = scope.split_once(':') else {
                continue;
            };
            let Some((name, actions)) = rest.rsplit_once(':') else {
                continue;
            };
            let granted: Vec<String> = actions
                .split(',')
                .filter(|a| {
                    let action = match *a {
                        "pull" => Action::Pull,
                        "push" => Action::Push,
                        "delete" => Action::Delete,
                        "*" if kind == "registry" => Action::Catalog,
                        _ => return false,
                    };
                    self.allowed(user, kind, name, action)
                })
                .map(str::to_owned)
                .collect();
            if !granted.is_empty() {
                access.push(Access {
                    kind: kind.to_owned(),
                    name: name.to_owned(),
                    actions: granted,
                });
            }
        }
        let claims = Claims {
            sub: user.to_owned(),
            exp: now() + TOKEN_TTL,
            access,
        };
        let payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("claims always serialize"));
        let sig = URL_SAFE_NO_PAD.encode(self.sign(payload.as_bytes()));
        format!("{payload}.{sig}")
    }

    fn sign(&self, data: &[u8]) -> Vec<u8> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("hmac takes keys of any length");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    fn verify_token(&self, token: &str) -> Option<Claims> {
        let (payload, sig) = token.split_once('.')?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("hmac takes keys of any length");
        mac.update(payload.as_bytes());
        // verify_slice compares in constant time.
        mac.verify_slice(&sig).ok()?;
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        (claims.exp > now()).then_some(claims)
    }
}

fn kind_matches(kind: &str, pattern: &str, name: &str) -> bool {
    if kind == "registry" {
        return pattern == "*" || pattern == "catalog";
    }
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

fn load_acl(path: &Path) -> Result<Vec<Rule>, Error> {
    let text = fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut rules = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [user, pattern, actions] = fields[..] else {
            return Err(Error::Syntax {
                path: path.to_owned(),
                line: i + 1,
                reason: "expected USER PATTERN ACTIONS".into(),
            });
        };
        rules.push(Rule {
            user: user.to_owned(),
            pattern: pattern.to_owned(),
            actions: actions.split(',').map(str::to_owned).collect(),
        });
    }
    Ok(rules)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(acl: Option<&str>) -> (tempfile::TempDir, Auth) {
        let dir = tempfile::tempdir().expect("tempdir");
        let hash = bcrypt::hash("secret", 4).expect("hash");
        fs::write(
            dir.path().join("htpasswd"),
            format!("alice:{hash}\nbob:{hash}\n"),
        )
        .expect("write");
        let acl_path = dir.path().join("acl");
        if let Some(acl) = acl {
            fs::write(&acl_path, acl).expect("write");
        }
        let a = Auth::load(
            Mode::Token,
            &dir.path().join("htpasswd"),
            acl.map(|_| acl_path.as_path()),
        )
        .expect("load");
        (dir, a)
    }

    #[test]
    fn tokens_grant_only_allowed_scopes() {
        let (_dir, a) = auth(Some("alice alice/* pull,push\n* public/* pull\n"));
        assert!(a.check_password("alice", "secret"));
        assert!(a.check_password("alice", "secret"), "cached path");
        assert!(!a.check_password("alice", "wrong"));
        let t = a.issue_token(
            "alice",
            &[
                "repository:alice/x:pull,push".into(),
                "repository:bob/x:pull".into(),
            ],
        );
        let id = a.identify(Some(&format!("Bearer {t}")));
        assert!(a.permits(&id, "repository", "alice/x", Action::Push));
        assert!(
            !a.permits(&id, "repository", "bob/x", Action::Pull),
            "not granted by the acl"
        );
        assert!(
            !a.permits(&id, "repository", "alice/y", Action::Pull),
            "a token is for its repositories only"
        );
        let forged = format!("{}x", t);
        assert!(matches!(
            a.identify(Some(&format!("Bearer {forged}"))),
            Identity::Anonymous
        ));
    }
}
