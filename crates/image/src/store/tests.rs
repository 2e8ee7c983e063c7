//! Docker schema 2 manifest lists and platform selection, through the path
//! a pull takes (`record_pull`).

use super::*;
use crate::oci::{DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST};
use crate::unpack::tests::{raw_tar, E};

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    cais_testkit::require("running as root", unsafe { libc::geteuid() } == 0)
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).expect("gzip");
    e.finish().expect("gzip")
}

/// A Docker schema 2 manifest for `arch`; returns (manifest body, config digest).
fn docker_image(store: &ImageStore, arch: &str) -> (Vec<u8>, Digest) {
    let tar = raw_tar(&[E::File("arch", arch.as_bytes())]);
    let layer = gzip(&tar);
    let layer_digest = store.content().put(&layer, None).expect("layer");
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch, "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [Digest::sha256(&tar).to_string()]},
    }))
    .expect("json");
    let config_digest = store.content().put(&config, None).expect("config");
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
        "layers": [{"mediaType": DOCKER_LAYER_GZIP, "digest": layer_digest.to_string(), "size": layer.len()}],
    }))
    .expect("json");
    (manifest, config_digest)
}

#[test]
fn a_docker_manifest_list_resolves_per_platform() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(dir.path()).expect("store");
    let mut entries = Vec::new();
    let mut configs = BTreeMap::new();
    for (arch, variant) in [("amd64", None), ("arm64", Some("v8"))] {
        let (m, config) = docker_image(&store, arch);
        let d = store.content().put(&m, None).expect("manifest");
        configs.insert(arch, config);
        let mut platform = serde_json::json!({"architecture": arch, "os": "linux"});
        if let Some(v) = variant {
            platform["variant"] = v.into();
        }
        entries.push(serde_json::json!({
            "mediaType": DOCKER_MANIFEST, "digest": d.to_string(), "size": m.len(), "platform": platform,
        }));
    }
    let list = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST_LIST, "manifests": entries,
    }))
    .expect("json");
    let list_digest = store.content().put(&list, None).expect("list");
    let reference: Reference = "127.0.0.1:5000/x/y:tag".parse().expect("reference");

    let amd = store
        .record_pull(&reference, &list_digest, &Platform::default())
        .expect("default platform");
    assert_eq!(amd.config, configs["amd64"]);
    assert_eq!(amd.target, list_digest);
    assert_eq!(amd.manifest_media_type, DOCKER_MANIFEST);
    assert_eq!(amd.tags, vec!["127.0.0.1:5000/x/y:tag".to_owned()]);
    let by_digest = format!("127.0.0.1:5000/x/y@{list_digest}");
    assert!(amd.repo_digests.contains(&by_digest));
    assert_eq!(
        store.resolve(&by_digest).expect("by digest").manifest,
        amd.manifest
    );

    let arm = store
        .record_pull(
            &"127.0.0.1:5000/x/y:arm".parse().expect("reference"),
            &list_digest,
            &"linux/arm64".parse().expect("platform"),
        )
        .expect("arm64");
    assert_eq!(arm.config, configs["arm64"]);
    let dirs = store.layer_dirs(&arm).expect("layers");
    assert_eq!(fs::read(dirs[0].join("arch")).expect("arch"), b"arm64");

    let err = store
        .record_pull(
            &reference,
            &list_digest,
            &"linux/s390x".parse().expect("platform"),
        )
        .expect_err("no such platform");
    assert!(
        matches!(
            err,
            Error::Oci(crate::oci::Error::NoMatchingPlatform { .. })
        ),
        "{err}"
    );

    // GC keeps the list, both manifests and their blobs.
    let before = store.content().list().expect("list");
    let report = store.gc().expect("gc");
    assert!(report.ran && report.blobs.is_empty(), "{report:?}");
    assert_eq!(store.content().list().expect("list"), before);
    assert!(store.verify().expect("verify").is_consistent());

    // `rmi name@digest` while a tag remains drops only that reference.
    let removed = store.remove(&by_digest, false).expect("rmi by digest");
    assert_eq!(removed, vec![Removal::Untagged(by_digest.clone())]);
    let still = store.resolve("127.0.0.1:5000/x/y:tag").expect("tag kept");
    assert!(!still.repo_digests.contains(&by_digest));
}

#[test]
fn a_missing_blob_is_a_clear_error_and_records_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(dir.path()).expect("store");
    let ghost = Digest::sha256(b"never stored");
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::OCI_MANIFEST,
        "config": {"mediaType": oci::OCI_CONFIG, "digest": ghost.to_string(), "size": 12},
        "layers": [],
    }))
    .expect("json");
    let d = store.content().put(&manifest, None).expect("manifest");
    let err = store
        .record_pull(&"x:1".parse().expect("ref"), &d, &Platform::default())
        .expect_err("missing config");
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(store.list().expect("list").is_empty());
}

#[test]
fn pins_keep_blobs_and_snapshots_through_gc_until_unpinned() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(dir.path()).expect("store");
    let (m, config) = docker_image(&store, "amd64");
    let manifest = store.content().put(&m, None).expect("manifest");
    // Checked (layers unpacked) but not recorded: only the pin holds it.
    store
        .check_image(&manifest, Some(DOCKER_MANIFEST), &Platform::default())
        .expect("check");
    store.pin("build-cache", "k1", &manifest).expect("pin");
    assert_eq!(store.pinned("build-cache", "k1"), Some(manifest.clone()));
    assert_eq!(store.pinned("build-cache", "k2"), None);
    assert!(store.pin("../x", "k", &manifest).is_err());
    assert!(store.pin("g", "a/b", &manifest).is_err());
    let report = store.gc().expect("gc");
    assert!(report.ran && report.blobs.is_empty() && report.snapshots.is_empty());
    assert!(store.content().exists(&config));
    assert!(store.list().expect("list").is_empty(), "a pin is no image");
    assert_eq!(store.unpin_group("build-cache").expect("unpin"), 1);
    let report = store.gc().expect("gc");
    assert_eq!(report.blobs.len(), 3, "{report:?}");
    assert_eq!(report.snapshots.len(), 1);
    assert_eq!(store.pinned("build-cache", "k1"), None);
}
