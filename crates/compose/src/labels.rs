//! The names and labels Compose gives what it creates, the same as the
//! docker compose v2 client's, so a project moves between the two tools
//! without anything being recreated: containers `PROJECT-SERVICE-N`,
//! networks `PROJECT_NETWORK`, volumes `PROJECT_VOLUME`, built images
//! `PROJECT-SERVICE`; everything carries `com.docker.compose.project`, and
//! containers their service, number, one-off flag and configuration hash.
//! The labels are the only state: every command finds its objects by them.

use sha2::{Digest, Sha256};

use crate::model::Service;

pub const PROJECT: &str = "com.docker.compose.project";
pub const SERVICE: &str = "com.docker.compose.service";
pub const CONFIG_HASH: &str = "com.docker.compose.config-hash";
pub const CONTAINER_NUMBER: &str = "com.docker.compose.container-number";
pub const ONEOFF: &str = "com.docker.compose.oneoff";
pub const SLUG: &str = "com.docker.compose.slug";
pub const WORKING_DIR: &str = "com.docker.compose.project.working_dir";
pub const CONFIG_FILES: &str = "com.docker.compose.project.config_files";
pub const ENVIRONMENT_FILE: &str = "com.docker.compose.project.environment_file";
pub const DEPENDS_ON: &str = "com.docker.compose.depends_on";
pub const IMAGE: &str = "com.docker.compose.image";
pub const VERSION: &str = "com.docker.compose.version";
pub const NETWORK: &str = "com.docker.compose.network";
pub const VOLUME: &str = "com.docker.compose.volume";
pub const REPLACE: &str = "com.docker.compose.replace";
pub const IMAGE_BUILDER: &str = "com.docker.compose.image.builder";

/// The docker compose release whose naming, labels and output this
/// implementation follows (the `com.docker.compose.version` label).
pub const COMPOSE_VERSION: &str = "2.40.3";

pub fn container_name(project: &str, service: &str, number: u32) -> String {
    format!("{project}-{service}-{number}")
}

pub fn network_name(project: &str, key: &str) -> String {
    format!("{project}_{key}")
}

pub fn volume_name(project: &str, key: &str) -> String {
    format!("{project}_{key}")
}

/// Go's `encoding/json` escapes these inside strings; the hash is taken
/// over the same bytes.
fn go_json_escape(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// The `com.docker.compose.config-hash` of a service: sha256 of its
/// normalised configuration as compact JSON, without what does not change
/// a container (how the image is built or pulled, how many replicas run,
/// dependencies, profiles, extension fields). `up` recreates a container
/// only when this changes.
pub fn config_hash(service: &Service) -> String {
    let mut s = service.clone();
    s.build = None;
    s.pull_policy = None;
    s.scale = None;
    if let Some(d) = s.deploy.as_mut() {
        d.replicas = None;
    }
    s.depends_on.clear();
    s.profiles.clear();
    s.extensions.clear();
    let json = serde_json::to_string(&s).expect("a service always serialises");
    hex(&Sha256::digest(go_json_escape(&json).as_bytes()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `db:service_healthy:false,...`, the `com.docker.compose.depends_on` label.
pub fn depends_on(service: &Service) -> String {
    service
        .depends_on
        .iter()
        .map(|(name, d)| format!("{name}:{}:{}", d.condition, d.restart))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_ignores_what_does_not_change_a_container() {
        let mut a = Service {
            name: "web".into(),
            image: Some("busybox".into()),
            ..Service::default()
        };
        let h = config_hash(&a);
        assert_eq!(h.len(), 64);
        a.scale = Some(3);
        a.profiles = vec!["x".into()];
        a.extensions.insert("x-a".into(), serde_json::json!(1));
        assert_eq!(config_hash(&a), h);
        a.command = Some(vec!["true".into()]);
        assert_ne!(config_hash(&a), h);
    }
}
