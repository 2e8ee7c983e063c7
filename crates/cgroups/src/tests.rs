//! Tests against fake hierarchies in a temporary directory.

use std::path::Path;
use std::time::Duration;

use oci_spec::runtime::LinuxResources;
use serde_json::json;

use crate::apply::{blkio_weight_to_io_weight, shares_to_weight};
use crate::fake::{fake, get, populate, put, take_writes, writes_to, Fake};
use crate::{Cgroup, Error, FreezerState};

fn resources(v: serde_json::Value) -> LinuxResources {
    serde_json::from_value(v).expect("valid LinuxResources JSON")
}

/// A created and populated cgroup at `/cais/c1` in `f`.
fn cgroup(f: &Fake) -> Cgroup {
    let cg = Cgroup::new(f.layout.clone(), "/cais/c1").expect("new");
    populate(&cg, f);
    cg.create().expect("create");
    take_writes();
    cg
}

fn full_v1_resources() -> LinuxResources {
    resources(json!({
        "memory": {
            "limit": 268435456, "reservation": 134217728, "swap": 536870912,
            "kernelTCP": 1048576, "swappiness": 10, "disableOOMKiller": true
        },
        "cpu": {
            "shares": 512, "quota": 50000, "period": 200000,
            "realtimeRuntime": 950000, "realtimePeriod": 1000000,
            "cpus": "0-1", "mems": "0", "idle": 1, "burst": 1000
        },
        "pids": {"limit": 99},
        "blockIO": {
            "weight": 300,
            "weightDevice": [{"major": 8, "minor": 0, "weight": 500}],
            "throttleReadBpsDevice": [
                {"major": 8, "minor": 0, "rate": 1048576},
                {"major": 8, "minor": 16, "rate": 2097152}
            ],
            "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 524288}],
            "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
            "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 50}]
        },
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
        "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]},
        "devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 136, "access": "rw"}
        ]
    }))
}

#[test]
fn v1_apply_every_resource() {
    let f = fake(
        &[
            "cpu,cpuacct",
            "cpuset",
            "memory",
            "pids",
            "blkio",
            "hugetlb",
            "devices",
            "freezer",
            "net_cls,net_prio",
        ],
        None,
    );
    let cg = cgroup(&f);
    cg.apply(&full_v1_resources()).expect("apply");
    let log = take_writes();

    let mem = cg.v1_dir("memory").expect("memory");
    assert_eq!(get(mem, "memory.limit_in_bytes"), "268435456");
    assert_eq!(get(mem, "memory.memsw.limit_in_bytes"), "536870912");
    assert_eq!(get(mem, "memory.soft_limit_in_bytes"), "134217728");
    assert_eq!(get(mem, "memory.kmem.tcp.limit_in_bytes"), "1048576");
    assert_eq!(get(mem, "memory.swappiness"), "10");
    assert_eq!(get(mem, "memory.oom_control"), "1");

    let cpu = cg.v1_dir("cpu").expect("cpu");
    assert_eq!(cpu, cg.v1_dir("cpuacct").expect("cpuacct"), "co-mounted");
    assert_eq!(get(cpu, "cpu.shares"), "512");
    assert_eq!(get(cpu, "cpu.cfs_period_us"), "200000");
    assert_eq!(get(cpu, "cpu.cfs_quota_us"), "50000");
    assert_eq!(get(cpu, "cpu.cfs_burst_us"), "1000");
    assert_eq!(get(cpu, "cpu.rt_period_us"), "1000000");
    assert_eq!(get(cpu, "cpu.rt_runtime_us"), "950000");
    assert_eq!(get(cpu, "cpu.idle"), "1");
    // Period before quota.
    let order: Vec<&str> = log
        .iter()
        .filter_map(|(p, _)| p.file_name()?.to_str())
        .filter(|n| n.starts_with("cpu.cfs_"))
        .collect();
    assert_eq!(
        order,
        ["cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.cfs_burst_us"]
    );

    let cpuset = cg.v1_dir("cpuset").expect("cpuset");
    assert_eq!(get(cpuset, "cpuset.cpus"), "0-1");
    assert_eq!(get(cpuset, "cpuset.mems"), "0");

    assert_eq!(get(cg.v1_dir("pids").expect("pids"), "pids.max"), "99");

    // Without CFQ's blkio.weight, the BFQ files are used.
    let blkio = cg.v1_dir("blkio").expect("blkio");
    assert_eq!(get(blkio, "blkio.bfq.weight"), "300");
    assert_eq!(get(blkio, "blkio.bfq.weight_device"), "8:0 500");
    assert_eq!(
        writes_to(&log, blkio, "blkio.throttle.read_bps_device"),
        ["8:0 1048576", "8:16 2097152"]
    );
    assert_eq!(get(blkio, "blkio.throttle.write_bps_device"), "8:0 524288");
    assert_eq!(get(blkio, "blkio.throttle.read_iops_device"), "8:0 100");
    assert_eq!(get(blkio, "blkio.throttle.write_iops_device"), "8:0 50");

    let huge = cg.v1_dir("hugetlb").expect("hugetlb");
    assert_eq!(get(huge, "hugetlb.2MB.limit_in_bytes"), "4194304");

    let net = cg.v1_dir("net_cls").expect("net_cls");
    assert_eq!(get(net, "net_cls.classid"), "1048577");
    assert_eq!(get(net, "net_prio.ifpriomap"), "eth0 5");

    let dev = cg.v1_dir("devices").expect("devices");
    let dev_log: Vec<(String, String)> = log
        .iter()
        .filter(|(p, _)| p.parent() == Some(dev) && p.to_string_lossy().contains("devices."))
        .map(|(p, v)| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            (name.to_owned(), v.clone())
        })
        .collect();
    let expect = |f: &str, v: &str| (f.to_owned(), v.to_owned());
    assert_eq!(
        dev_log,
        [
            expect("devices.deny", "a"),
            expect("devices.deny", "a"),
            expect("devices.allow", "c 1:3 rwm"),
            expect("devices.allow", "c 136:* rw"),
        ]
    );
}

#[test]
fn v1_cfq_weight_files_preferred_when_present() {
    let f = fake(&["blkio"], None);
    let cg = cgroup(&f);
    let dir = cg.v1_dir("blkio").expect("blkio");
    put(dir, "blkio.weight", "500\n");
    put(dir, "blkio.weight_device", "");
    put(dir, "blkio.leaf_weight", "500\n");
    put(dir, "blkio.leaf_weight_device", "");
    cg.apply(&resources(json!({"blockIO": {
        "weight": 200, "leafWeight": 100,
        "weightDevice": [{"major": 8, "minor": 0, "weight": 700, "leafWeight": 600}]
    }})))
    .expect("apply");
    assert_eq!(get(dir, "blkio.weight"), "200");
    assert_eq!(get(dir, "blkio.leaf_weight"), "100");
    assert_eq!(get(dir, "blkio.weight_device"), "8:0 700");
    assert_eq!(get(dir, "blkio.leaf_weight_device"), "8:0 600");
    assert_eq!(get(dir, "blkio.bfq.weight"), "100\n", "bfq untouched");
}

/// Replays recorded writes against the kernel's rule that
/// memory.memsw.limit_in_bytes >= memory.limit_in_bytes at all times.
fn assert_memsw_invariant(log: &[(std::path::PathBuf, String)], mut limit: i64, mut memsw: i64) {
    let as_u = |v: i64| u64::try_from(v).unwrap_or(u64::MAX);
    for (path, value) in log {
        let v: i64 = value.parse().expect("number");
        match path.file_name().and_then(|n| n.to_str()) {
            Some("memory.limit_in_bytes") => limit = v,
            Some("memory.memsw.limit_in_bytes") => memsw = v,
            _ => continue,
        }
        assert!(
            as_u(memsw) >= as_u(limit),
            "kernel would refuse: limit {limit} memsw {memsw} in {log:?}"
        );
    }
}

#[test]
fn v1_memsw_ordering_both_directions() {
    let f = fake(&["memory"], None);
    let cg = cgroup(&f);
    let dir = cg.v1_dir("memory").expect("memory");
    let mib = 1 << 20;
    put(dir, "memory.limit_in_bytes", &format!("{}\n", 100 * mib));
    put(
        dir,
        "memory.memsw.limit_in_bytes",
        &format!("{}\n", 200 * mib),
    );

    // Growing: memsw must go first.
    cg.apply(&resources(
        json!({"memory": {"limit": 300 * mib, "swap": 400 * mib}}),
    ))
    .expect("grow");
    let log = take_writes();
    assert_memsw_invariant(&log, 100 * mib, 200 * mib);
    assert_eq!(
        log[0].0.file_name().and_then(|n| n.to_str()),
        Some("memory.memsw.limit_in_bytes")
    );
    assert_eq!(get(dir, "memory.limit_in_bytes"), (300 * mib).to_string());
    assert_eq!(
        get(dir, "memory.memsw.limit_in_bytes"),
        (400 * mib).to_string()
    );

    // Shrinking: the limit must go first.
    put(dir, "memory.limit_in_bytes", &format!("{}\n", 300 * mib));
    cg.apply(&resources(
        json!({"memory": {"limit": 50 * mib, "swap": 60 * mib}}),
    ))
    .expect("shrink");
    let log = take_writes();
    assert_memsw_invariant(&log, 300 * mib, 400 * mib);
    assert_eq!(
        log[0].0.file_name().and_then(|n| n.to_str()),
        Some("memory.limit_in_bytes")
    );

    // Unlimited swap from a limited state: memsw first.
    put(dir, "memory.limit_in_bytes", &format!("{}\n", 50 * mib));
    cg.apply(&resources(json!({"memory": {"limit": -1, "swap": -1}})))
        .expect("unlimit");
    let log = take_writes();
    assert_memsw_invariant(&log, 50 * mib, 60 * mib);
    assert_eq!(get(dir, "memory.limit_in_bytes"), "-1");

    // memory+swap below memory is a caller error, caught before any write.
    let err = cg
        .apply(&resources(
            json!({"memory": {"limit": 100 * mib, "swap": 50 * mib}}),
        ))
        .expect_err("swap < limit");
    assert!(matches!(err, Error::InvalidArgument { field, .. } if field.ends_with("swap")));
    assert!(take_writes().is_empty());
}

#[test]
fn v1_invalid_swappiness() {
    let f = fake(&["memory"], None);
    let cg = cgroup(&f);
    let err = cg
        .apply(&resources(json!({"memory": {"swappiness": 101}})))
        .expect_err("swappiness > 100");
    assert!(matches!(err, Error::InvalidArgument { .. }));
}

#[test]
fn v1_rt_runtime_first_when_period_shrinks() {
    let f = fake(&["cpu"], None);
    let cg = cgroup(&f);
    let dir = cg.v1_dir("cpu").expect("cpu");
    put(dir, "cpu.rt_runtime_us", "900000\n");
    cg.apply(&resources(
        json!({"cpu": {"realtimePeriod": 500000, "realtimeRuntime": 400000}}),
    ))
    .expect("apply");
    let log = take_writes();
    let names: Vec<&str> = log
        .iter()
        .filter_map(|(p, _)| p.file_name()?.to_str())
        .collect();
    assert_eq!(names, ["cpu.rt_runtime_us", "cpu.rt_period_us"]);
}

#[test]
fn v2_apply_every_resource() {
    let f = fake(&[], Some("cpuset cpu io memory hugetlb pids rdma"));
    let cg = cgroup(&f);
    let dir = cg.unified_dir().expect("unified").to_owned();
    cg.apply(&resources(json!({
        "memory": {"limit": 268435456, "reservation": 134217728, "swap": 536870912,
                   "swappiness": 10, "kernel": 1, "kernelTCP": 1, "disableOOMKiller": true},
        "cpu": {"shares": 1024, "quota": 50000, "period": 200000, "cpus": "1", "mems": "0",
                "idle": 0, "burst": 500},
        "pids": {"limit": -1},
        "blockIO": {
            "weight": 500,
            "weightDevice": [{"major": 8, "minor": 0, "weight": 10}],
            "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
            "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 524288}],
            "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
            "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 50}]
        },
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
        "rdma": {"mlx5_0": {"hcaHandles": 3, "hcaObjects": 1000}},
        "network": {"classID": 1},
        "unified": {"memory.high": "200000000"}
    })))
    .expect("apply");
    let log = take_writes();
    let dir = dir.as_path();
    assert_eq!(get(dir, "memory.max"), "268435456");
    // OCI swap is memory+swap; v2 wants swap alone.
    assert_eq!(get(dir, "memory.swap.max"), "268435456");
    assert_eq!(get(dir, "memory.low"), "134217728");
    assert_eq!(get(dir, "cpu.weight"), shares_to_weight(1024).to_string());
    assert_eq!(get(dir, "cpu.weight"), "39");
    assert_eq!(get(dir, "cpu.max"), "50000 200000");
    assert_eq!(get(dir, "cpu.max.burst"), "500");
    assert_eq!(get(dir, "cpu.idle"), "0");
    assert_eq!(get(dir, "cpuset.cpus"), "1");
    assert_eq!(get(dir, "cpuset.mems"), "0");
    assert_eq!(get(dir, "pids.max"), "max");
    assert_eq!(
        writes_to(&log, dir, "io.weight"),
        ["4950", "8:0 1"],
        "v1 weights converted to the io.weight range"
    );
    assert_eq!(
        writes_to(&log, dir, "io.max"),
        [
            "8:0 rbps=1048576",
            "8:0 wbps=524288",
            "8:0 riops=100",
            "8:0 wiops=50"
        ]
    );
    assert_eq!(get(dir, "hugetlb.2MB.max"), "4194304");
    assert_eq!(get(dir, "hugetlb.2MB.rsvd.max"), "4194304");
    assert_eq!(get(dir, "rdma.max"), "mlx5_0 hca_handle=3 hca_object=1000");
    assert_eq!(get(dir, "memory.high"), "200000000");
    // No v1-only knobs leaked into the v2 directory.
    for f in ["memory.swappiness", "memory.oom_control", "net_cls.classid"] {
        assert!(!dir.join(f).exists(), "{f} must not be created");
    }
}

#[test]
fn v2_cpu_max_keeps_the_other_field_and_quota_minus_one_is_max() {
    let f = fake(&[], Some("cpu"));
    let cg = cgroup(&f);
    let dir = cg.unified_dir().expect("unified");
    put(dir, "cpu.max", "20000 50000\n");
    cg.apply(&resources(json!({"cpu": {"quota": 30000}})))
        .expect("quota");
    assert_eq!(get(dir, "cpu.max"), "30000 50000");
    cg.apply(&resources(json!({"cpu": {"period": 10000}})))
        .expect("period");
    assert_eq!(get(dir, "cpu.max"), "30000 10000");
    cg.apply(&resources(json!({"cpu": {"quota": -1}})))
        .expect("unlimited");
    assert_eq!(get(dir, "cpu.max"), "max 10000");
}

#[test]
fn v2_bfq_weight_and_swap_rules() {
    let f = fake(&[], Some("io memory"));
    let cg = cgroup(&f);
    let dir = cg.unified_dir().expect("unified");
    put(dir, "io.bfq.weight", "default 100\n");
    cg.apply(&resources(json!({"blockIO": {"weight": 500}})))
        .expect("bfq");
    assert_eq!(get(dir, "io.bfq.weight"), "500");
    assert_eq!(
        get(dir, "io.weight"),
        "default 100\n",
        "io.weight untouched"
    );

    cg.apply(&resources(json!({"memory": {"limit": -1, "swap": -1}})))
        .expect("unlimited");
    assert_eq!(get(dir, "memory.max"), "max");
    assert_eq!(get(dir, "memory.swap.max"), "max");

    let err = cg
        .apply(&resources(json!({"memory": {"swap": 1000}})))
        .expect_err("swap without limit");
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
}

#[test]
fn v2_realtime_is_unsupported() {
    let f = fake(&[], Some("cpu"));
    let cg = cgroup(&f);
    let err = cg
        .apply(&resources(json!({"cpu": {"realtimeRuntime": 1000}})))
        .expect_err("rt on v2");
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
}

#[test]
fn conversions() {
    assert_eq!(shares_to_weight(2), 1);
    assert_eq!(shares_to_weight(262_144), 10_000);
    assert_eq!(shares_to_weight(1024), 39);
    assert_eq!(shares_to_weight(1), 1, "clamped");
    assert_eq!(shares_to_weight(1 << 30), 10_000, "clamped");
    assert_eq!(blkio_weight_to_io_weight(10), 1);
    assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
    assert_eq!(blkio_weight_to_io_weight(500), 4950);
}

#[test]
fn hybrid_routes_each_resource_to_its_hierarchy() {
    let f = fake(
        &[
            "cpu",
            "cpuacct",
            "cpuset",
            "memory",
            "devices",
            "freezer",
            "blkio",
            "pids",
            "name=systemd",
        ],
        Some("hugetlb"),
    );
    let cg = cgroup(&f);
    let unified = cg.unified_dir().expect("unified").to_owned();
    // The unified root delegates hugetlb to the container's parent.
    assert_eq!(
        get(&f.tmp.path().join("unified"), "cgroup.subtree_control"),
        "+hugetlb"
    );
    assert_eq!(
        get(&f.tmp.path().join("unified/cais"), "cgroup.subtree_control"),
        "+hugetlb"
    );
    cg.apply(&resources(json!({
        "memory": {"limit": 1048576},
        "pids": {"limit": 10},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}],
        "unified": {"hugetlb.2MB.max": "4194304"}
    })))
    .expect("apply");
    let log = take_writes();
    assert_eq!(
        get(
            cg.v1_dir("memory").expect("memory"),
            "memory.limit_in_bytes"
        ),
        "1048576"
    );
    assert_eq!(get(cg.v1_dir("pids").expect("pids"), "pids.max"), "10");
    assert!(!unified.join("memory.max").exists());
    // hugetlb has no v1 mount: it goes to the unified tree, and the verbatim
    // unified value is written after the mapped one.
    assert_eq!(
        writes_to(&log, &unified, "hugetlb.2MB.max"),
        ["2097152", "4194304"]
    );

    // A process joins every hierarchy, named and unified ones included, and
    // co-mounted or not, each directory once.
    put(&unified, "cgroup.procs", "");
    cg.add_process(4242).expect("add");
    let log = take_writes();
    assert_eq!(log.len(), 9 + 1, "{log:?}");
    assert!(log
        .iter()
        .all(|(p, v)| v == "4242" && p.ends_with("cais/c1/cgroup.procs")));
    assert_eq!(
        get(cg.v1_dir("name=systemd").expect("systemd"), "cgroup.procs"),
        "4242"
    );
    assert_eq!(get(&unified, "cgroup.procs"), "4242");

    // The freezer is the v1 one.
    cg.freeze().expect("freeze");
    assert_eq!(
        get(cg.v1_dir("freezer").expect("freezer"), "freezer.state"),
        "FROZEN"
    );
    assert_eq!(get(&unified, "cgroup.freeze"), "0\n");
}

#[test]
fn missing_controllers_are_named() {
    let f = fake(&["memory"], None);
    let cg = cgroup(&f);
    for (res, want) in [
        (json!({"pids": {"limit": 5}}), "pids"),
        (json!({"cpu": {"shares": 100}}), "cpu"),
        (json!({"cpu": {"cpus": "0"}}), "cpuset"),
        (json!({"blockIO": {"weight": 100}}), "blkio"),
        (
            json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}),
            "hugetlb",
        ),
        (json!({"devices": [{"allow": true}]}), "devices"),
    ] {
        match cg.apply(&resources(res.clone())) {
            Err(e @ Error::ControllerMissing { controller, .. }) => {
                assert_eq!(controller, want, "{res}");
                assert!(e.to_string().contains(want), "{e}");
            }
            other => panic!("{res}: expected ControllerMissing, got {other:?}"),
        }
    }
    // cgroup v2 key/values cannot go anywhere on a v1-only host.
    let err = cg
        .apply(&resources(json!({"unified": {"memory.high": "1"}})))
        .expect_err("unified on v1");
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    // Network limits without net_cls/net_prio are ignored, by design, and
    // reported for the caller to warn about.
    let network = resources(
        json!({"network": {"classID": 7, "priorities": [{"name": "lo", "priority": 1}]}}),
    );
    cg.apply(&network).expect("network ignored");
    let skipped = cg.skipped(&network);
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(skipped[0].contains("classID") && skipped[1].contains("priorities"));
    assert!(cg
        .skipped(&resources(json!({"pids": {"limit": 5}})))
        .is_empty());
    // Unset or zero values need no controller at all.
    cg.apply(&resources(
        json!({"pids": {"limit": 0}, "cpu": {"shares": 0}, "blockIO": {}}),
    ))
    .expect("nothing to do");

    let f = fake(&[], Some("cpu memory"));
    let cg = cgroup(&f);
    match cg.apply(&resources(
        json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}),
    )) {
        Err(Error::ControllerMissing { controller, .. }) => assert_eq!(controller, "hugetlb"),
        other => panic!("expected ControllerMissing, got {other:?}"),
    }
    let err = cg
        .apply(&resources(json!({"unified": {"../escape": "1"}})))
        .expect_err("path in unified key");
    assert!(matches!(err, Error::InvalidArgument { .. }));
    // A huge page size without a pool on the host is named as such.
    let f = fake(&[], Some("hugetlb"));
    let cg = cgroup(&f);
    let err = cg
        .apply(&resources(
            json!({"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]}),
        ))
        .expect_err("no 3MB pages");
    assert!(err.to_string().contains("not a huge page size"), "{err}");
    assert!(matches!(err, Error::InvalidArgument { .. }));
    let err = cg
        .apply(&resources(json!({"unified": {"memory.nonexistent": "1"}})))
        .expect_err("unknown unified key");
    assert!(matches!(err, Error::Write { .. }));
}

#[test]
fn create_copies_cpuset_into_each_new_level() {
    let f = fake(&["cpuset", "memory", "cpu,cpuacct"], None);
    let root = f.tmp.path().join("cpuset");
    // What the kernel shows in a new cpuset directory: empty lists.
    for level in ["cais", "cais/nested", "cais/nested/c1", "cais/c2"] {
        put(&root.join(level), "cpuset.cpus", "");
        put(&root.join(level), "cpuset.mems", "");
    }
    let cg = Cgroup::new(f.layout.clone(), "cais/nested/c1").expect("new");
    cg.create().expect("create");
    for level in ["cais", "cais/nested", "cais/nested/c1"] {
        assert_eq!(get(&root.join(level), "cpuset.cpus"), "0-3", "{level}");
        assert_eq!(get(&root.join(level), "cpuset.mems"), "0", "{level}");
    }
    assert!(f.tmp.path().join("memory/cais/nested/c1").is_dir());
    assert!(f.tmp.path().join("cpu,cpuacct/cais/nested/c1").is_dir());
    assert_eq!(
        cg.dirs().len(),
        3,
        "co-mounted controllers share a directory"
    );

    // An existing level that already has cpus keeps them.
    put(&root.join("cais"), "cpuset.cpus", "2\n");
    let cg2 = Cgroup::new(f.layout.clone(), "/cais/c2").expect("new");
    cg2.create().expect("create");
    assert_eq!(get(&root.join("cais/c2"), "cpuset.cpus"), "2");
}

#[test]
fn v2_create_enables_controllers_in_every_ancestor() {
    let f = fake(&[], Some("cpu memory pids"));
    let root = f.tmp.path().join("unified");
    // The intermediate level exists already and has some controllers on.
    put(&root.join("a"), "cgroup.controllers", "cpu memory pids\n");
    put(&root.join("a"), "cgroup.subtree_control", "memory\n");
    put(&root.join("a/b"), "cgroup.controllers", "memory pids\n");
    put(&root.join("a/b"), "cgroup.subtree_control", "memory pids\n");
    let cg = Cgroup::new(f.layout.clone(), "/a/b/c").expect("new");
    cg.create().expect("create");
    assert_eq!(get(&root, "cgroup.subtree_control"), "+cpu +memory +pids");
    assert_eq!(get(&root.join("a"), "cgroup.subtree_control"), "+cpu +pids");
    // Nothing missing: not written at all.
    assert_eq!(
        get(&root.join("a/b"), "cgroup.subtree_control"),
        "memory pids\n"
    );
    assert!(root.join("a/b/c").is_dir());
    assert_eq!(cg.unified_dir(), Some(root.join("a/b/c").as_path()));
}

#[test]
fn relative_absolute_and_systemd_paths_map_into_every_hierarchy() {
    let f = fake(&["memory", "pids"], Some(""));
    for (input, rel) in [
        ("/cais/x", "cais/x"),
        ("cais/x", "cais/x"),
        ("system.slice:cais:x", "system.slice/cais-x.scope"),
        ("a-b.slice:cais:x", "a.slice/a-b.slice/cais-x.scope"),
    ] {
        let cg = Cgroup::new(f.layout.clone(), input).expect(input);
        assert_eq!(cg.path(), Path::new(rel));
        assert_eq!(
            cg.v1_dir("memory"),
            Some(f.tmp.path().join("memory").join(rel).as_path())
        );
        assert_eq!(
            cg.v1_dir("pids"),
            Some(f.tmp.path().join("pids").join(rel).as_path())
        );
        assert_eq!(
            cg.unified_dir(),
            Some(f.tmp.path().join("unified").join(rel).as_path())
        );
    }
    assert!(matches!(
        Cgroup::new(f.layout.clone(), "/"),
        Err(Error::InvalidPath { .. })
    ));
}

#[test]
fn v2_freeze_waits_for_frozen_event() {
    let f = fake(&[], Some(""));
    let cg = cgroup(&f).with_freeze_timeout(Duration::from_millis(100));
    let dir = cg.unified_dir().expect("unified").to_owned();
    assert_eq!(cg.freezer_state().expect("state"), FreezerState::Thawed);

    // The fake kernel never reports "frozen 1": time out and thaw again.
    let err = cg.freeze().expect_err("never frozen");
    assert!(matches!(err, Error::FreezeTimeout { .. }), "{err}");
    assert_eq!(get(&dir, "cgroup.freeze"), "0");

    put(&dir, "cgroup.freeze", "1\n");
    assert_eq!(cg.freezer_state().expect("state"), FreezerState::Freezing);
    put(&dir, "cgroup.events", "populated 1\nfrozen 1\n");
    cg.freeze().expect("freeze");
    assert_eq!(get(&dir, "cgroup.freeze"), "1");
    assert_eq!(cg.freezer_state().expect("state"), FreezerState::Frozen);
    cg.thaw().expect("thaw");
    assert_eq!(get(&dir, "cgroup.freeze"), "0");
    assert_eq!(cg.freezer_state().expect("state"), FreezerState::Thawed);
}

#[test]
fn v1_freezer_states() {
    let f = fake(&["freezer"], None);
    let cg = cgroup(&f).with_freeze_timeout(Duration::from_millis(50));
    let dir = cg.v1_dir("freezer").expect("freezer").to_owned();
    put(&dir, "freezer.state", "FREEZING\n");
    assert_eq!(cg.freezer_state().expect("state"), FreezerState::Freezing);
    cg.freeze().expect("freeze");
    assert_eq!(get(&dir, "freezer.state"), "FROZEN");
    cg.thaw().expect("thaw");
    assert_eq!(cg.freezer_state().expect("state"), FreezerState::Thawed);
    put(&dir, "freezer.state", "BOGUS\n");
    assert!(matches!(cg.freezer_state(), Err(Error::Parse { .. })));

    let f = fake(&["memory"], None);
    let cg = cgroup(&f);
    assert!(matches!(
        cg.freeze(),
        Err(Error::ControllerMissing {
            controller: "freezer",
            ..
        })
    ));
}

#[test]
fn pids_are_collected_recursively() {
    let f = fake(&["memory", "pids"], None);
    let cg = cgroup(&f);
    let dir = cg.v1_dir("pids").expect("pids");
    put(dir, "cgroup.procs", "12\n5\n");
    put(&dir.join("sub"), "cgroup.procs", "7\n12\n");
    assert_eq!(cg.pids().expect("pids"), [5, 7, 12]);
    put(&dir.join("sub"), "cgroup.procs", "x\n");
    assert!(matches!(cg.pids(), Err(Error::Parse { .. })));
}

#[test]
fn oom_kill_count_v1_and_v2() {
    let f = fake(&["memory"], None);
    let cg = cgroup(&f);
    let dir = cg.v1_dir("memory").expect("memory");
    put(
        dir,
        "memory.oom_control",
        "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
    );
    assert_eq!(cg.oom_kill_count().expect("count"), 3);

    let f = fake(&[], Some("memory"));
    let cg = cgroup(&f);
    let dir = cg.unified_dir().expect("unified");
    put(
        dir,
        "memory.events",
        "low 0\nhigh 0\nmax 9\noom 2\noom_kill 2\noom_group_kill 0\n",
    );
    assert_eq!(cg.oom_kill_count().expect("count"), 2);

    let f = fake(&["pids"], None);
    assert!(matches!(
        cgroup(&f).oom_kill_count(),
        Err(Error::ControllerMissing {
            controller: "memory",
            ..
        })
    ));
}

#[test]
fn v1_stats() {
    let f = fake(
        &["cpu", "cpuacct", "memory", "pids", "blkio", "hugetlb"],
        None,
    );
    let cg = cgroup(&f);
    let acct = cg.v1_dir("cpuacct").expect("cpuacct");
    put(acct, "cpuacct.usage", "5000000000\n");
    put(acct, "cpuacct.usage_percpu", "3000000000 2000000000 \n");
    put(acct, "cpuacct.stat", "user 300\nsystem 100\n");
    put(
        cg.v1_dir("cpu").expect("cpu"),
        "cpu.stat",
        "nr_periods 10\nnr_throttled 4\nthrottled_time 123456\n",
    );
    let mem = cg.v1_dir("memory").expect("memory");
    put(mem, "memory.usage_in_bytes", "1048576\n");
    put(mem, "memory.max_usage_in_bytes", "2097152\n");
    put(mem, "memory.limit_in_bytes", "4194304\n");
    put(mem, "memory.failcnt", "2\n");
    put(mem, "memory.memsw.usage_in_bytes", "1100000\n");
    put(
        mem,
        "memory.stat",
        "cache 4096\nrss 8192\ntotal_cache 4096\n",
    );
    let pids = cg.v1_dir("pids").expect("pids");
    put(pids, "pids.current", "3\n");
    put(pids, "pids.max", "max\n");
    let blkio = cg.v1_dir("blkio").expect("blkio");
    put(
        blkio,
        "blkio.throttle.io_service_bytes_recursive",
        "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 12288\n8:0 Total 12288\nTotal 12288\n",
    );
    put(
        blkio,
        "blkio.throttle.io_serviced_recursive",
        "8:0 Read 1\n8:0 Write 2\nTotal 3\n",
    );
    let huge = cg.v1_dir("hugetlb").expect("hugetlb");
    put(huge, "hugetlb.2MB.usage_in_bytes", "2097152\n");
    put(huge, "hugetlb.2MB.max_usage_in_bytes", "4194304\n");
    put(huge, "hugetlb.2MB.failcnt", "1\n");
    put(huge, "hugetlb.1GB.limit_in_bytes", "0\n");

    let s = cg.stats().expect("stats");
    assert_eq!(s.cpu.usage.total, 5_000_000_000);
    assert_eq!(s.cpu.usage.percpu, [3_000_000_000, 2_000_000_000]);
    assert_eq!(s.cpu.usage.user, 3_000_000_000, "300 ticks at USER_HZ 100");
    assert_eq!(s.cpu.usage.kernel, 1_000_000_000);
    assert_eq!(s.cpu.throttling.periods, 10);
    assert_eq!(s.cpu.throttling.throttled_periods, 4);
    assert_eq!(s.cpu.throttling.throttled_time, 123_456);
    assert_eq!(s.memory.usage.usage, 1_048_576);
    assert_eq!(s.memory.usage.max, 2_097_152);
    assert_eq!(s.memory.usage.limit, 4_194_304);
    assert_eq!(s.memory.usage.failcnt, 2);
    assert_eq!(s.memory.swap.usage, 1_100_000);
    assert_eq!(s.memory.cache, 4096);
    assert_eq!(s.memory.raw["rss"], 8192);
    assert_eq!(s.pids.current, 3);
    assert_eq!(s.pids.limit, 0, "unlimited");
    assert_eq!(
        s.blkio.io_service_bytes_recursive.len(),
        5,
        "the device-less Total line is dropped"
    );
    assert_eq!(s.blkio.io_service_bytes_recursive[1].op, "Write");
    assert_eq!(s.blkio.io_service_bytes_recursive[1].value, 8192);
    assert_eq!(s.blkio.io_serviced_recursive.len(), 2);
    assert_eq!(s.hugetlb["2MB"].usage, 2_097_152);
    assert_eq!(s.hugetlb["2MB"].max, 4_194_304);
    assert_eq!(s.hugetlb["2MB"].failcnt, 1);
    assert_eq!(s.hugetlb["1GB"].usage, 0);

    // The JSON uses the field names of runc's events --stats.
    let v = serde_json::to_value(&s).expect("json");
    assert_eq!(v["cpu"]["usage"]["total"], 5_000_000_000u64);
    assert_eq!(v["cpu"]["throttling"]["throttled_periods"], 4);
    assert_eq!(v["memory"]["usage"]["failcnt"], 2);
    assert!(v["memory"]["kernelTCP"].is_object());
    assert_eq!(v["blkio"]["ioServiceBytesRecursive"][0]["major"], 8);
    assert_eq!(v["blkio"]["ioServiceBytesRecursive"][0]["op"], "Read");
    assert_eq!(v["hugetlb"]["2MB"]["usage"], 2_097_152);
    assert_eq!(v["pids"]["current"], 3);
}

#[test]
fn v2_and_hybrid_stats() {
    let f = fake(&[], Some("cpu memory pids io hugetlb"));
    let cg = cgroup(&f);
    let dir = cg.unified_dir().expect("unified");
    put(
        dir,
        "cpu.stat",
        "usage_usec 2000\nuser_usec 1500\nsystem_usec 500\nnr_periods 7\nnr_throttled 1\nthrottled_usec 30\n",
    );
    put(dir, "memory.current", "1048576\n");
    put(dir, "memory.max", "max\n");
    put(dir, "memory.peak", "2097152\n");
    put(
        dir,
        "memory.events",
        "low 0\nhigh 0\nmax 5\noom 0\noom_kill 0\n",
    );
    put(dir, "memory.swap.current", "4096\n");
    put(
        dir,
        "memory.stat",
        "anon 8192\nfile 16384\nkernel 512\nsock 0\n",
    );
    put(dir, "pids.current", "2\n");
    put(dir, "pids.max", "20\n");
    put(
        dir,
        "io.stat",
        "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
    );
    put(dir, "hugetlb.2MB.current", "2097152\n");
    put(dir, "hugetlb.2MB.events", "max 3\n");
    let s = cg.stats().expect("stats");
    assert_eq!(s.cpu.usage.total, 2_000_000);
    assert_eq!(s.cpu.usage.user, 1_500_000);
    assert_eq!(s.cpu.usage.kernel, 500_000);
    assert_eq!(s.cpu.throttling.periods, 7);
    assert_eq!(s.cpu.throttling.throttled_time, 30_000);
    assert_eq!(s.memory.usage.usage, 1_048_576);
    assert_eq!(s.memory.usage.limit, u64::MAX);
    assert_eq!(s.memory.usage.max, 2_097_152);
    assert_eq!(s.memory.usage.failcnt, 5);
    assert_eq!(s.memory.swap.usage, 4096);
    assert_eq!(s.memory.cache, 16_384);
    assert_eq!(s.memory.kernel.usage, 512);
    assert_eq!(s.pids.current, 2);
    assert_eq!(s.pids.limit, 20);
    let bytes: Vec<(&str, u64)> = s
        .blkio
        .io_service_bytes_recursive
        .iter()
        .map(|e| (e.op.as_str(), e.value))
        .collect();
    assert_eq!(bytes, [("Read", 4096), ("Write", 8192), ("Discard", 0)]);
    assert_eq!(s.hugetlb["2MB"].usage, 2_097_152);
    assert_eq!(s.hugetlb["2MB"].failcnt, 3);

    // Hybrid: cpu and memory from v1, hugetlb from the unified tree.
    let f = fake(&["cpuacct", "memory"], Some("hugetlb"));
    let cg = cgroup(&f);
    put(
        cg.v1_dir("cpuacct").expect("cpuacct"),
        "cpuacct.usage",
        "77\n",
    );
    put(
        cg.v1_dir("memory").expect("memory"),
        "memory.usage_in_bytes",
        "88\n",
    );
    let dir = cg.unified_dir().expect("unified");
    put(dir, "cpu.stat", "usage_usec 999\n");
    put(dir, "hugetlb.2MB.current", "4096\n");
    let s = cg.stats().expect("stats");
    assert_eq!(s.cpu.usage.total, 77);
    assert_eq!(s.memory.usage.usage, 88);
    assert_eq!(s.hugetlb["2MB"].usage, 4096);
    assert_eq!(s.pids.current, 0, "no pids controller anywhere: zero");
}

#[test]
fn destroy_removes_nested_cgroups_and_tolerates_missing() {
    let f = fake(&["memory", "pids"], None);
    let cg = Cgroup::new(f.layout.clone(), "/cais/c1").expect("new");
    cg.destroy().expect("nothing there yet");
    cg.create().expect("create");
    std::fs::create_dir_all(cg.v1_dir("memory").expect("memory").join("sub/sub2")).expect("mkdir");
    cg.destroy().expect("destroy");
    assert!(!f.tmp.path().join("memory/cais/c1").exists());
    assert!(!f.tmp.path().join("pids/cais/c1").exists());
    assert!(
        f.tmp.path().join("memory/cais").is_dir(),
        "parents are shared and kept"
    );
    cg.destroy().expect("twice");
}

#[test]
fn v1_blkio_weight_without_a_proportional_scheduler() {
    let f = fake(&["blkio"], None);
    let cg = cgroup(&f);
    std::fs::remove_file(cg.v1_dir("blkio").expect("blkio").join("blkio.bfq.weight")).expect("rm");
    let err = cg
        .apply(&resources(json!({"blockIO": {"weight": 100}})))
        .expect_err("no weight file");
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    // Throttling does not depend on the scheduler.
    cg.apply(&resources(json!({"blockIO": {
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1}]
    }})))
    .expect("throttle");
}

#[test]
fn swap_without_swap_accounting() {
    let mib = 1i64 << 20;
    let f = fake(&["memory"], None);
    let cg = cgroup(&f);
    let dir = cg.v1_dir("memory").expect("memory");
    std::fs::remove_file(dir.join("memory.memsw.limit_in_bytes")).expect("rm");
    // memory+swap equal to memory, or unlimited: nothing to write.
    cg.apply(&resources(
        json!({"memory": {"limit": 10 * mib, "swap": 10 * mib}}),
    ))
    .expect("swap == limit");
    assert_eq!(get(dir, "memory.limit_in_bytes"), (10 * mib).to_string());
    cg.apply(&resources(
        json!({"memory": {"limit": 10 * mib, "swap": -1}}),
    ))
    .expect("unlimited swap");
    let err = cg
        .apply(&resources(
            json!({"memory": {"limit": 10 * mib, "swap": 20 * mib}}),
        ))
        .expect_err("real swap limit");
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");

    let f = fake(&[], Some("memory"));
    let cg = cgroup(&f);
    let dir = cg.unified_dir().expect("unified");
    std::fs::remove_file(dir.join("memory.swap.max")).expect("rm");
    cg.apply(&resources(
        json!({"memory": {"limit": 10 * mib, "swap": 10 * mib}}),
    ))
    .expect("swap == limit");
    assert_eq!(get(dir, "memory.max"), (10 * mib).to_string());
    let err = cg
        .apply(&resources(
            json!({"memory": {"limit": 10 * mib, "swap": 20 * mib}}),
        ))
        .expect_err("real swap limit");
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
}

#[test]
fn missing_controller_names_follow_the_host() {
    let blkio = json!({"blockIO": {"weight": 100}});
    let f = fake(&["memory"], Some("hugetlb"));
    match cgroup(&f).apply(&resources(blkio.clone())) {
        Err(Error::ControllerMissing { controller, .. }) => assert_eq!(controller, "blkio"),
        other => panic!("expected ControllerMissing, got {other:?}"),
    }
    let f = fake(&[], Some("memory"));
    match cgroup(&f).apply(&resources(blkio)) {
        Err(Error::ControllerMissing { controller, .. }) => assert_eq!(controller, "io"),
        other => panic!("expected ControllerMissing, got {other:?}"),
    }
}
