//! What the agent says of its node: the `Node` object (capacity from the
//! machine, addresses, the engine's version, conditions) and its `Lease`
//! in `kube-node-lease`, renewed as the heartbeat.

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};

/// How many pods a node takes (the kubelet's default).
pub const MAX_PODS: u32 = 110;

/// How long a lease holds without renewal (the kubelet's default).
pub const LEASE_SECONDS: i32 = 40;

/// What the machine has, read once at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    pub cpus: usize,
    /// Bytes of memory (`MemTotal`).
    pub memory: u64,
    pub kernel: String,
    pub os_image: String,
    pub machine_id: String,
    pub boot_id: String,
}

impl Machine {
    /// Reads the machine's CPUs (the ones this process may run on),
    /// memory (proc(5) `/proc/meminfo`), kernel release and OS name.
    pub fn detect() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let memory = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            * 1024;
        let os_image = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| "Linux".into());
        Machine {
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            memory,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            os_image,
            machine_id: read("/etc/machine-id").trim().to_string(),
            boot_id: read("/proc/sys/kernel/random/boot_id").trim().to_string(),
        }
    }
}

/// The node's address: the source address of the default route (a UDP
/// `connect` sends nothing), loopback when there is none.
pub fn host_ip() -> String {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("192.0.2.1:9")?; // TEST-NET-1 (RFC 5737): never answered
            s.local_addr()
        })
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| "127.0.0.1".into())
}

/// Kubernetes' name for this architecture.
pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn now() -> jiff::Timestamp {
    let t = jiff::Timestamp::now();
    jiff::Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// The node's `Ready` condition and the pressure conditions, as of now.
pub fn conditions(ready_since: Option<Time>) -> Vec<NodeCondition> {
    let now = Time(now());
    let since = ready_since.unwrap_or_else(|| now.clone());
    let pressure = |type_: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.into(),
        status: "False".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(since.clone()),
    };
    vec![
        pressure(
            "MemoryPressure",
            "KubeletHasSufficientMemory",
            "the agent has sufficient memory available",
        ),
        pressure(
            "DiskPressure",
            "KubeletHasNoDiskPressure",
            "the agent has no disk pressure",
        ),
        pressure(
            "PIDPressure",
            "KubeletHasSufficientPID",
            "the agent has sufficient PID available",
        ),
        NodeCondition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: Some("KubeletReady".into()),
            message: Some("the agent is posting ready status".into()),
            last_heartbeat_time: Some(now.clone()),
            last_transition_time: Some(since),
        },
    ]
}

/// The Node object the agent registers.
/// `port` is where the agent serves the API server (0: nowhere).
pub fn node(
    name: &str,
    machine: &Machine,
    host_ip: &str,
    pod_cidr: &str,
    engine_version: &str,
    port: u16,
) -> Node {
    let mut capacity = BTreeMap::new();
    capacity.insert("cpu".to_string(), Quantity(machine.cpus.to_string()));
    capacity.insert(
        "memory".to_string(),
        Quantity(format!("{}Ki", machine.memory / 1024)),
    );
    capacity.insert("pods".to_string(), Quantity(MAX_PODS.to_string()));
    let labels: BTreeMap<String, String> = [
        ("kubernetes.io/hostname", name),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", arch()),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", arch()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: (!pod_cidr.is_empty()).then(|| pod_cidr.to_string()),
            pod_cidrs: (!pod_cidr.is_empty()).then(|| vec![pod_cidr.to_string()]),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            allocatable: Some(capacity.clone()),
            capacity: Some(capacity),
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: host_ip.to_string(),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: name.to_string(),
                },
            ]),
            conditions: Some(conditions(None)),
            daemon_endpoints: (port != 0).then(|| NodeDaemonEndpoints {
                kubelet_endpoint: Some(DaemonEndpoint {
                    port: i32::from(port),
                }),
            }),
            node_info: Some(NodeSystemInfo {
                architecture: arch().into(),
                operating_system: "linux".into(),
                kernel_version: machine.kernel.clone(),
                os_image: machine.os_image.clone(),
                container_runtime_version: format!("cais://{engine_version}"),
                kubelet_version: format!("v1.32.0-cais.{}", env!("CARGO_PKG_VERSION")),
                kube_proxy_version: String::new(),
                machine_id: machine.machine_id.clone(),
                system_uuid: machine.machine_id.clone(),
                boot_id: machine.boot_id.clone(),
            }),
            ..Default::default()
        }),
    }
}

/// The node's lease, renewed now.
pub fn lease(node: &str, previous: Option<Lease>) -> Lease {
    let now = MicroTime(jiff::Timestamp::now());
    let mut lease = previous.unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(node.to_string()),
            namespace: Some("kube-node-lease".into()),
            ..Default::default()
        },
        spec: None,
    });
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = Some(node.to_string());
    spec.lease_duration_seconds = Some(LEASE_SECONDS);
    if spec.acquire_time.is_none() {
        spec.acquire_time = Some(now.clone());
    }
    spec.renew_time = Some(now);
    lease
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_is_read() {
        let m = Machine::detect();
        assert!(m.cpus >= 1);
        assert!(m.memory > 64 * 1024 * 1024, "{m:?}");
        assert!(!m.kernel.is_empty());
    }

    #[test]
    fn the_node_object_carries_capacity_and_addresses() {
        let m = Machine {
            cpus: 2,
            memory: 4 * 1024 * 1024 * 1024,
            kernel: "6.1.0".into(),
            os_image: "Debian".into(),
            machine_id: "m".into(),
            boot_id: "b".into(),
        };
        let n = serde_json::to_value(node("n1", &m, "10.0.0.5", "10.244.0.0/24", "0.1.0", 10250))
            .expect("json");
        assert_eq!(n["status"]["capacity"]["cpu"], "2");
        assert_eq!(n["status"]["capacity"]["memory"], "4194304Ki");
        assert_eq!(n["status"]["allocatable"]["pods"], "110");
        assert_eq!(n["status"]["addresses"][0]["address"], "10.0.0.5");
        assert_eq!(n["spec"]["podCIDR"], "10.244.0.0/24");
        assert_eq!(
            n["status"]["nodeInfo"]["containerRuntimeVersion"],
            "cais://0.1.0"
        );
        assert_eq!(n["metadata"]["labels"]["kubernetes.io/hostname"], "n1");
        assert_eq!(
            n["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"],
            10250
        );
        let ready = n["status"]["conditions"]
            .as_array()
            .expect("conditions")
            .iter()
            .find(|c| c["type"] == "Ready")
            .expect("a Ready condition")
            .clone();
        assert_eq!(ready["status"], "True");
    }

    #[test]
    fn leases_keep_their_acquire_time() {
        let first = lease("n1", None);
        let spec = first.spec.clone().expect("spec");
        assert_eq!(spec.holder_identity.as_deref(), Some("n1"));
        assert_eq!(spec.lease_duration_seconds, Some(LEASE_SECONDS));
        let renewed = lease("n1", Some(first));
        let again = renewed.spec.expect("spec");
        assert_eq!(again.acquire_time, spec.acquire_time);
        assert!(again.renew_time >= spec.renew_time);
    }
}
