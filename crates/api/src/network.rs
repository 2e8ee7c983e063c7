//! Network wire types: `/networks/*` bodies, a container's endpoints
//! (`NetworkingConfig`, `NetworkSettings`) and published ports. Docker
//! spells several acronyms in capitals (`IPAM`, `IPAddress`, `EndpointID`),
//! hence the explicit renames.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize, Serializer};

use crate::{null_as_default, PortBinding};

/// One address pool of a network (`--subnet`, `--gateway`, `--ip-range`,
/// `--aux-address`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamConfig {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub subnet: String,
    #[serde(
        rename = "IPRange",
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub ip_range: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub gateway: String,
    #[serde(
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub auxiliary_addresses: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ipam {
    /// "default" (the only driver).
    #[serde(deserialize_with = "null_as_default")]
    pub driver: String,
    #[serde(deserialize_with = "null_as_default")]
    pub config: Vec<IpamConfig>,
    /// `null` when none were given, as dockerd shows it.
    pub options: Option<BTreeMap<String, String>>,
}

/// The body of `POST /networks/create`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkCreateRequest {
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    /// Ignored by current docker daemons (duplicates are always refused).
    #[serde(deserialize_with = "null_as_default")]
    pub check_duplicate: bool,
    /// "" or "bridge".
    #[serde(deserialize_with = "null_as_default")]
    pub driver: String,
    /// "", "local", or a swarm's "swarm"/"global".
    #[serde(deserialize_with = "null_as_default")]
    pub scope: String,
    #[serde(deserialize_with = "null_as_default")]
    pub internal: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub attachable: bool,
    /// A swarm's routing-mesh network.
    #[serde(deserialize_with = "null_as_default")]
    pub ingress: bool,
    /// A configuration-only network (swarm), and one made from it.
    #[serde(deserialize_with = "null_as_default")]
    pub config_only: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_from: Option<ConfigReference>,
    #[serde(rename = "EnableIPv6", deserialize_with = "null_as_default")]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM", skip_serializing_if = "Option::is_none")]
    pub ipam: Option<Ipam>,
    #[serde(deserialize_with = "null_as_default")]
    pub options: BTreeMap<String, String>,
    #[serde(deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
}

/// `ConfigFrom` of a network: the configuration-only network it uses.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConfigReference {
    #[serde(deserialize_with = "null_as_default")]
    pub network: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkCreateResponse {
    pub id: String,
    pub warning: String,
}

/// A container attached to a network, in `Network.Containers`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkContainer {
    pub name: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub mac_address: String,
    /// "172.18.0.2/16".
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
}

/// `GET /networks/{id}` and the rows of `GET /networks`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Network {
    pub name: String,
    pub id: String,
    /// RFC 3339 with nanoseconds.
    pub created: String,
    /// Always "local".
    pub scope: String,
    /// "bridge", "host" or "null".
    pub driver: String,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    pub config_from: ConfigReference,
    pub config_only: bool,
    /// Container id → endpoint (filled by inspect; empty in lists).
    #[serde(deserialize_with = "null_as_default")]
    pub containers: BTreeMap<String, NetworkContainer>,
    #[serde(deserialize_with = "null_as_default")]
    pub options: BTreeMap<String, String>,
    #[serde(deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
}

/// `IPAMConfig` of an endpoint: `--ip`, `--ip6`, `--link-local-ip`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct EndpointIpamConfig {
    #[serde(
        rename = "IPv4Address",
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub ipv4_address: String,
    #[serde(
        rename = "IPv6Address",
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub ipv6_address: String,
    #[serde(
        rename = "LinkLocalIPs",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub link_local_ips: Vec<String>,
}

/// A container's endpoint on one network: what the client asks for
/// (`IPAMConfig`, `Links`, `Aliases`, `MacAddress`, `DriverOpts`,
/// `GwPriority`) and, in inspect, what it got.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointSettings {
    #[serde(rename = "IPAMConfig", skip_serializing_if = "Option::is_none")]
    pub ipam_config: Option<EndpointIpamConfig>,
    #[serde(deserialize_with = "null_as_default", serialize_with = "nil_list")]
    pub links: Vec<String>,
    #[serde(deserialize_with = "null_as_default", serialize_with = "nil_list")]
    pub aliases: Vec<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub mac_address: String,
    /// Options for the network driver (`--driver-opt`).
    #[serde(deserialize_with = "null_as_default", serialize_with = "nil_map")]
    pub driver_opts: BTreeMap<String, String>,
    /// Which network's gateway is the default route (highest wins).
    #[serde(deserialize_with = "null_as_default")]
    pub gw_priority: i64,
    #[serde(rename = "NetworkID", deserialize_with = "null_as_default")]
    pub network_id: String,
    #[serde(rename = "EndpointID", deserialize_with = "null_as_default")]
    pub endpoint_id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub gateway: String,
    #[serde(rename = "IPAddress", deserialize_with = "null_as_default")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen", deserialize_with = "null_as_default")]
    pub ip_prefix_len: u8,
    #[serde(rename = "IPv6Gateway", deserialize_with = "null_as_default")]
    pub ipv6_gateway: String,
    #[serde(rename = "GlobalIPv6Address", deserialize_with = "null_as_default")]
    pub global_ipv6_address: String,
    #[serde(rename = "GlobalIPv6PrefixLen", deserialize_with = "null_as_default")]
    pub global_ipv6_prefix_len: u8,
    /// Names the embedded DNS answers for this endpoint.
    #[serde(rename = "DNSNames", deserialize_with = "null_as_default")]
    pub dns_names: Vec<String>,
}

/// An empty list is written `null`, as dockerd writes a list nobody set
/// (clients tell "no aliases asked for" from an empty list this way).
fn nil_list<S: Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
    if v.is_empty() {
        s.serialize_none()
    } else {
        v.serialize(s)
    }
}

/// An empty map is written `null`, as dockerd writes a map nobody set.
fn nil_map<S: Serializer>(v: &BTreeMap<String, String>, s: S) -> Result<S::Ok, S::Error> {
    if v.is_empty() {
        s.serialize_none()
    } else {
        v.serialize(s)
    }
}

/// `NetworkingConfig` of `POST /containers/create`: network name → endpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkingConfig {
    /// A network given `null` is joined with default settings.
    #[serde(deserialize_with = "crate::de::nullable_map")]
    pub endpoints_config: BTreeMap<String, EndpointSettings>,
}

/// The body of `POST /networks/{id}/connect`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkConnectRequest {
    pub container: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_config: Option<EndpointSettings>,
}

/// The body of `POST /networks/{id}/disconnect`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkDisconnectRequest {
    pub container: String,
    pub force: bool,
}

/// `POST /networks/prune`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkPruneResponse {
    #[serde(deserialize_with = "null_as_default")]
    pub networks_deleted: Vec<String>,
}

/// `NetworkSettings` of container inspect. The top-level address fields
/// describe the default `bridge` network only (empty on user networks), as
/// docker fills them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkSettings {
    pub bridge: String,
    #[serde(rename = "SandboxID")]
    pub sandbox_id: String,
    /// The network namespace path.
    pub sandbox_key: String,
    /// "80/tcp" → host bindings; `null` for an exposed, unpublished port.
    #[serde(deserialize_with = "null_as_default")]
    pub ports: BTreeMap<String, Option<Vec<PortBinding>>>,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub gateway: String,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    pub mac_address: String,
    #[serde(deserialize_with = "null_as_default")]
    pub networks: BTreeMap<String, EndpointSettings>,
}

/// A port of a `GET /containers/json` row (`PublicPort` absent when the
/// port is only exposed).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Port {
    #[serde(rename = "IP", skip_serializing_if = "String::is_empty")]
    pub ip: String,
    pub private_port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_port: Option<u16>,
    /// "tcp" or "udp".
    #[serde(rename = "Type")]
    pub kind: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_docker_cli_network_create_body_parses() {
        let body = r#"{"Name":"n1","CheckDuplicate":true,"Driver":"bridge","Scope":"","EnableIPv6":null,
            "IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"10.5.0.0/16","Gateway":"10.5.0.1"}]},
            "Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,
            "Options":{},"Labels":{"a":"b"}}"#;
        let req: NetworkCreateRequest = serde_json::from_str(body).expect("parses");
        assert_eq!(req.name, "n1");
        let ipam = req.ipam.expect("ipam");
        assert_eq!(ipam.config[0].subnet, "10.5.0.0/16");
        assert_eq!(ipam.config[0].gateway, "10.5.0.1");
        assert_eq!(req.labels["a"], "b");
    }

    #[test]
    fn endpoint_names_are_docker_spelled() {
        let e = EndpointSettings {
            ipam_config: Some(EndpointIpamConfig {
                ipv4_address: "10.5.0.9".into(),
                ..Default::default()
            }),
            ip_address: "10.5.0.9".into(),
            ip_prefix_len: 16,
            network_id: "abc".into(),
            dns_names: vec!["web".into()],
            ..Default::default()
        };
        let v = serde_json::to_value(&e).expect("serializes");
        assert_eq!(v["IPAMConfig"]["IPv4Address"], "10.5.0.9");
        assert_eq!(v["IPAddress"], "10.5.0.9");
        assert_eq!(v["IPPrefixLen"], 16);
        assert_eq!(v["NetworkID"], "abc");
        assert_eq!(v["DNSNames"][0], "web");
        let back: EndpointSettings = serde_json::from_value(v).expect("parses back");
        assert_eq!(back, e);
    }

    #[test]
    fn an_endpoints_unset_lists_and_maps_are_null_as_dockerd_writes_them() {
        let v = serde_json::to_value(EndpointSettings::default()).expect("serializes");
        for k in ["Links", "Aliases", "DriverOpts"] {
            assert!(v[k].is_null(), "{k}: {v}");
        }
        let e = EndpointSettings {
            aliases: vec!["db".into()],
            driver_opts: BTreeMap::from([("k".into(), "v".into())]),
            ..Default::default()
        };
        let v = serde_json::to_value(&e).expect("serializes");
        assert_eq!(v["Aliases"], serde_json::json!(["db"]));
        assert_eq!(v["DriverOpts"], serde_json::json!({"k": "v"}));
        let back: EndpointSettings = serde_json::from_value(v).expect("parses back");
        assert_eq!(back, e);
    }

    #[test]
    fn unpublished_ports_are_null() {
        let mut s = NetworkSettings::default();
        s.ports.insert("80/tcp".into(), None);
        s.ports.insert(
            "53/udp".into(),
            Some(vec![PortBinding {
                host_ip: "0.0.0.0".into(),
                host_port: "5353".into(),
            }]),
        );
        let v = serde_json::to_value(&s).expect("serializes");
        assert!(v["Ports"]["80/tcp"].is_null());
        assert_eq!(v["Ports"]["53/udp"][0]["HostPort"], "5353");
        let nc: NetworkingConfig = serde_json::from_str(
            r#"{"EndpointsConfig":{"n1":{"Aliases":["db"],"IPAMConfig":null,"Links":null}}}"#,
        )
        .expect("parses");
        assert_eq!(nc.endpoints_config["n1"].aliases, ["db"]);
        let nc: NetworkingConfig =
            serde_json::from_str(r#"{"EndpointsConfig":{"n1":null}}"#).expect("parses");
        assert_eq!(nc.endpoints_config["n1"], EndpointSettings::default());
    }
}
