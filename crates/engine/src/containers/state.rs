//! What the engine holds of one container in memory: its configuration as
//! created, its state, and what it holds while it runs.

use std::collections::BTreeMap;

use cais_api::{ContainerConfig, ContainerState, EndpointSettings, HostConfig, MountPoint};
use serde::{Deserialize, Serialize};

use crate::events::Events;
use crate::networks::netconf::NetState;

/// One container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub created: String,
    pub image: String,
    pub image_id: String,
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    pub path: String,
    pub args: Vec<String>,
    pub state: ContainerState,
    #[serde(default)]
    pub restart_count: i64,
    /// Set by `stop`/`kill` through the API: restart policies leave the
    /// container alone ("unless-stopped", and "always" until the daemon restarts).
    #[serde(default)]
    pub manually_stopped: bool,
    #[serde(default)]
    pub mounts: Vec<MountPoint>,
    /// Anonymous volumes, removed with the container by `rm -v` and `--rm`.
    #[serde(default)]
    pub anonymous_volumes: Vec<String>,
    /// Endpoints by network name: what was asked, and while running what
    /// was given (address, gateway...).
    #[serde(default)]
    pub networks: BTreeMap<String, EndpointSettings>,
    /// The network namespace, interfaces and ports held while running.
    #[serde(default)]
    pub net: Option<NetState>,
}

impl Container {
    /// A `container` event about this container: its name, image and
    /// labels are the attributes, with `extra` ones.
    pub(crate) fn emit(&self, events: &Events, action: &str, extra: &[(&str, String)]) {
        let mut attrs = BTreeMap::new();
        attrs.insert("name".into(), self.name.clone());
        attrs.insert("image".into(), self.image.clone());
        for (k, v) in &self.config.labels {
            attrs.insert(k.clone(), v.clone());
        }
        for (k, v) in extra {
            attrs.insert((*k).into(), v.clone());
        }
        events.emit("container", action, &self.id, attrs);
    }
}
