//! Stored registry credentials, in the file format docker uses
//! (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`):
//! `{"auths": {"<registry>": {"auth": base64("user:password")}}}`.
//! Other keys in the file are kept as they are, so cais and docker can share
//! it. Credential helpers (`credsStore`, `credHelpers`) are not run.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{Map, Value};

use cais_oci::reference::{normalize_registry, DOCKER_HUB};

/// The key docker's config.json files Docker Hub credentials under.
pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

/// A user name and password (or identity token used as a password).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// The `Authorization` header value for HTTP Basic.
    pub fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", self.username, self.password))
        )
    }
}

/// Credential store errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid credentials file: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no home directory: set HOME or DOCKER_CONFIG")]
    NoHome,
}

/// The credentials file: `config.json` in a directory.
#[derive(Debug, Clone)]
pub struct CredentialStore {
    path: PathBuf,
}

/// The key a registry's entry is stored under (docker's keys for Docker Hub).
fn key_for(registry: &str) -> String {
    let r = normalize_registry(registry);
    if r == DOCKER_HUB {
        DOCKER_HUB_AUTH_KEY.to_owned()
    } else {
        r
    }
}

impl CredentialStore {
    /// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
    pub fn default_location() -> Result<CredentialStore, Error> {
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
            return Ok(CredentialStore::at_dir(Path::new(&dir)));
        }
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .ok_or(Error::NoHome)?;
        Ok(CredentialStore::at_dir(&Path::new(&home).join(".docker")))
    }

    /// `dir/config.json`.
    pub fn at_dir(dir: &Path) -> CredentialStore {
        CredentialStore {
            path: dir.join("config.json"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn load(&self) -> Result<Map<String, Value>, Error> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
            Err(source) => {
                return Err(Error::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Map::new());
        }
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(self.invalid("not a json object")),
            Err(e) => Err(self.invalid(&e.to_string())),
        }
    }

    fn invalid(&self, reason: &str) -> Error {
        Error::Invalid {
            path: self.path.clone(),
            reason: reason.to_owned(),
        }
    }

    /// The stored credentials for `registry`, if any.
    pub fn get(&self, registry: &str) -> Result<Option<Credentials>, Error> {
        let config = self.load()?;
        let Some(auths) = config.get("auths").and_then(Value::as_object) else {
            return Ok(None);
        };
        let wanted = key_for(registry);
        // Entries may be written with a scheme or path (`https://host/v1/`).
        let entry = auths.get(&wanted).or_else(|| {
            auths
                .iter()
                .find(|(k, _)| key_for(k) == key_for(&wanted))
                .map(|(_, v)| v)
        });
        let Some(entry) = entry.and_then(Value::as_object) else {
            return Ok(None);
        };
        if let Some(auth) = entry.get("auth").and_then(Value::as_str) {
            if auth.is_empty() {
                return Ok(None);
            }
            let decoded = STANDARD
                .decode(auth.trim())
                .map_err(|_| self.invalid(&format!("auth of {wanted} is not base64")))?;
            let decoded = String::from_utf8(decoded)
                .map_err(|_| self.invalid(&format!("auth of {wanted} is not utf-8")))?;
            let (user, pass) = decoded
                .split_once(':')
                .ok_or_else(|| self.invalid(&format!("auth of {wanted} has no ':'")))?;
            return Ok(Some(Credentials {
                username: user.to_owned(),
                password: pass.to_owned(),
            }));
        }
        let field = |k: &str| entry.get(k).and_then(Value::as_str).map(str::to_owned);
        Ok(field("username")
            .zip(field("password"))
            .map(|(username, password)| Credentials { username, password }))
    }

    /// Stores `creds` for `registry`, replacing what was there.
    pub fn store(&self, registry: &str, creds: &Credentials) -> Result<(), Error> {
        let mut config = self.load()?;
        let auths = config
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        let mut entry = Map::new();
        entry.insert(
            "auth".into(),
            Value::String(STANDARD.encode(format!("{}:{}", creds.username, creds.password))),
        );
        if let Value::Object(m) = auths {
            m.insert(key_for(registry), Value::Object(entry));
        }
        self.save(&config)
    }

    /// Removes `registry`'s credentials; false when there were none.
    pub fn remove(&self, registry: &str) -> Result<bool, Error> {
        let mut config = self.load()?;
        let wanted = key_for(registry);
        let removed = match config.get_mut("auths").and_then(Value::as_object_mut) {
            Some(auths) => {
                let keys: Vec<String> = auths
                    .keys()
                    .filter(|k| key_for(k) == wanted)
                    .cloned()
                    .collect();
                for k in &keys {
                    auths.remove(k);
                }
                !keys.is_empty()
            }
            None => false,
        };
        if removed {
            self.save(&config)?;
        }
        Ok(removed)
    }

    /// Writes the file atomically: a 0600 temporary file in the same
    /// directory, synced, then renamed over the old one, so a crash leaves
    /// the old or the new file and never a partial one, and the secrets are
    /// never readable by others even for a moment.
    fn save(&self, config: &Map<String, Value>) -> Result<(), Error> {
        let write_err = |source| Error::Write {
            path: self.path.clone(),
            source,
        };
        let dir = self
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        fs::create_dir_all(&dir).map_err(write_err)?;
        let tmp = dir.join(format!(".config.json.{}.tmp", std::process::id()));
        let result = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            let mut bytes = serde_json::to_vec_pretty(config).map_err(std::io::Error::other)?;
            bytes.push(b'\n');
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            fs::File::open(&dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(write_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn store_get_remove_keeps_other_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CredentialStore::at_dir(dir.path());
        fs::write(
            store.path(),
            r#"{"auths":{"other:1":{"auth":"dTpw"}},"psFormat":"table"}"#,
        )
        .expect("seed");
        let c = Credentials {
            username: "alice".into(),
            password: "p:a:ss".into(),
        };
        store.store("127.0.0.1:5000", &c).expect("store");
        store.store("docker.io", &c).expect("store hub");
        assert_eq!(store.get("127.0.0.1:5000").expect("get"), Some(c.clone()));
        assert_eq!(
            store.get("index.docker.io").expect("get hub"),
            Some(c.clone())
        );
        let raw: Value =
            serde_json::from_slice(&fs::read(store.path()).expect("read")).expect("json");
        assert_eq!(raw["psFormat"], "table");
        assert_eq!(
            raw["auths"]["127.0.0.1:5000"]["auth"],
            STANDARD.encode("alice:p:a:ss")
        );
        assert!(raw["auths"][DOCKER_HUB_AUTH_KEY].is_object());
        assert_eq!(
            store.get("other:1").expect("get other"),
            Some(Credentials {
                username: "u".into(),
                password: "p".into()
            })
        );
        let mode = fs::metadata(store.path())
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(store.remove("127.0.0.1:5000").expect("remove"));
        assert!(!store.remove("127.0.0.1:5000").expect("remove again"));
        assert_eq!(store.get("127.0.0.1:5000").expect("get"), None);
        assert!(store.get("other:1").expect("get other").is_some());
    }

    #[test]
    fn missing_or_bad_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CredentialStore::at_dir(&dir.path().join("nested"));
        assert_eq!(store.get("x").expect("missing file"), None);
        fs::create_dir_all(dir.path().join("nested")).expect("mkdir");
        fs::write(store.path(), "{not json").expect("write");
        assert!(matches!(store.get("x"), Err(Error::Invalid { .. })));
        fs::write(store.path(), r#"{"auths":{"x":{"auth":"!!"}}}"#).expect("write");
        assert!(matches!(store.get("x"), Err(Error::Invalid { .. })));
    }
}
