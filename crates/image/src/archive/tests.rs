//! Save/load round trips and bad archives: each bad input is a clear error
//! and leaves the store exactly as it was, and consistent.

use std::collections::BTreeMap;

use super::*;
use crate::unpack::tests::{raw_tar, E};
use std::fs;

fn list_names(dir: &Path) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for e in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let e = e.map_err(io_err("list", dir))?;
        out.insert(e.file_name().to_string_lossy().into_owned());
    }
    Ok(out)
}

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    cais_testkit::require("running as root", unsafe { libc::geteuid() } == 0)
}

fn store() -> (tempfile::TempDir, ImageStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(dir.path().join("root")).expect("store");
    (dir, store)
}

fn import_tar(store: &ImageStore, tar: &[u8], name: &str) -> ImageRecord {
    let opts = ImportOptions {
        reference: Some(name.parse().expect("reference")),
        source: "test".into(),
        ..Default::default()
    };
    import(store, tar, &opts).expect("import")
}

/// Everything observable about a store: blobs, metadata, snapshots.
fn state(store: &ImageStore) -> (Vec<Digest>, Vec<u8>, BTreeSet<String>) {
    (
        store.content().list().expect("list"),
        fs::read(store.root().join("images.json")).unwrap_or_default(),
        list_names(&store.snapshots_dir()).expect("snapshots"),
    )
}

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, body) in files {
        let mut h = file_header(body.len() as u64);
        b.append_data(&mut h, name, *body).expect("append");
    }
    b.into_inner().expect("finish")
}

/// An OCI layout tarball of one image: config, one layer, manifest.
struct Layout {
    blobs: BTreeMap<String, Vec<u8>>,
    manifest: Digest,
}

fn layout(layer_tar: &[u8], layer_type: &str) -> Layout {
    let mut blobs = BTreeMap::new();
    let diff_id = Digest::sha256(layer_tar);
    let layer = Digest::sha256(layer_tar);
    blobs.insert(blob_path(&layer), layer_tar.to_vec());
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
    }))
    .expect("json");
    let config_digest = Digest::sha256(&config);
    blobs.insert(blob_path(&config_digest), config.clone());
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::OCI_MANIFEST,
        "config": {"mediaType": oci::OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
        "layers": [{"mediaType": layer_type, "digest": layer.to_string(), "size": layer_tar.len()}],
    }))
    .expect("json");
    let manifest_digest = Digest::sha256(&manifest);
    blobs.insert(blob_path(&manifest_digest), manifest);
    Layout {
        blobs,
        manifest: manifest_digest,
    }
}

impl Layout {
    fn tar(&self) -> Vec<u8> {
        let size = self.blobs[&blob_path(&self.manifest)].len();
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": oci::OCI_MANIFEST, "digest": self.manifest.to_string(), "size": size,
                "annotations": {ANNOTATION_IMAGE_NAME: "docker.io/library/bad:1"},
            }],
        }))
        .expect("json");
        let mut files: Vec<(&str, &[u8])> = self
            .blobs
            .iter()
            .map(|(p, b)| (p.as_str(), b.as_slice()))
            .collect();
        files.push(("index.json", &index));
        files.push(("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#));
        tar_of(&files)
    }
}

#[test]
fn save_then_load_keeps_digests_names_and_content() {
    if !root() {
        return;
    }
    let (_d, a) = store();
    let tar = raw_tar(&[E::Dir("etc"), E::File("etc/motd", b"hi")]);
    let rec = import_tar(&a, &tar, "example.com/app:v1");
    a.tag("example.com/app:v1", &"app:v2".parse().expect("ref"))
        .expect("tag");
    let mut out = Vec::new();
    save(
        &a,
        &["example.com/app:v1".into(), "app:v2".into()],
        &mut out,
    )
    .expect("save");
    let (_d2, b) = store();
    let loaded = load(&b, &out[..], &Platform::default()).expect("load");
    assert_eq!(loaded.len(), 2, "one index entry per tag");
    let got = b.resolve("example.com/app:v1").expect("resolve");
    assert_eq!(got.manifest, rec.manifest);
    assert_eq!(got.config, rec.config);
    assert_eq!(b.resolve("app:v2").expect("v2").manifest, rec.manifest);
    let dirs = b.layer_dirs(&got).expect("layers");
    assert_eq!(fs::read(dirs[0].join("etc/motd")).expect("motd"), b"hi");
    assert!(b.verify().expect("verify").is_consistent());
}

fn assert_refused(name: &str, archive: &[u8], check: impl Fn(&Error) -> bool) {
    let (_d, store) = store();
    let tar = raw_tar(&[E::File("keep", b"me")]);
    import_tar(&store, &tar, "existing:1");
    let before = state(&store);
    let err = load(&store, archive, &Platform::default()).expect_err(name);
    assert!(check(&err), "{name}: unexpected error {err}");
    assert!(!err.to_string().is_empty());
    assert_eq!(state(&store), before, "{name}: store changed");
    let v = store.verify().expect("verify");
    assert!(v.is_consistent(), "{name}: {v:?}");
    assert_eq!(store.list().expect("list").len(), 1, "{name}");
}

#[test]
fn bad_archives_are_refused_and_leave_the_store_unchanged() {
    if !root() {
        return;
    }
    let layer = raw_tar(&[E::File("a", b"a")]);

    // A blob whose bytes do not match its name.
    let mut l = layout(&layer, oci::OCI_LAYER_TAR);
    let victim = blob_path(&Digest::sha256(&layer));
    l.blobs.insert(victim, raw_tar(&[E::File("a", b"evil")]));
    assert_refused("digest mismatch", &l.tar(), |e| {
        matches!(e, Error::DigestMismatch { .. })
    });

    // An archive cut in the middle of a blob.
    let big = raw_tar(&[E::File("big", &vec![1u8; 200_000])]);
    let full = layout(&big, oci::OCI_LAYER_TAR).tar();
    let cut = &full[..full.len() / 2];
    assert_refused("truncated blob", cut, |e| {
        matches!(e, Error::SizeMismatch { .. })
            || matches!(e, Error::BadArchive { reason } if reason.contains("truncated") || reason.contains("corrupt"))
    });

    // A manifest that is not JSON.
    let mut l = layout(&layer, oci::OCI_LAYER_TAR);
    let body = b"{not json".to_vec();
    l.blobs.remove(&blob_path(&l.manifest));
    l.manifest = Digest::sha256(&body);
    l.blobs.insert(blob_path(&l.manifest), body);
    assert_refused("malformed manifest", &l.tar(), |e| {
        matches!(e, Error::Oci(crate::oci::Error::InvalidManifest { .. }))
    });

    // A layer type nobody knows.
    let l = layout(&layer, "application/vnd.example.layer.v1.tar+lz4");
    assert_refused("unknown media type", &l.tar(), |e| {
        matches!(
            e,
            Error::Oci(crate::oci::Error::UnsupportedMediaType { .. })
        )
    });

    // A layer that climbs out.
    let evil = raw_tar(&[E::File("../../escape", b"x")]);
    let l = layout(&evil, oci::OCI_LAYER_TAR);
    assert_refused("traversal layer", &l.tar(), |e| {
        matches!(e, Error::UnsafeLayerEntry { .. })
    });

    // Neither format.
    assert_refused("no manifest", &tar_of(&[("hello.txt", b"hi")]), |e| {
        matches!(e, Error::BadArchive { .. })
    });
}

#[test]
fn tags_rmi_rollback_prune_and_gc_follow_docker() {
    if !root() {
        return;
    }
    let (_d, store) = store();
    let v1 = import_tar(&store, &raw_tar(&[E::File("version", b"1")]), "app:latest");
    let v2 = import_tar(&store, &raw_tar(&[E::File("version", b"2")]), "app:latest");
    // Re-tagging left v1 dangling but present: roll back by digest.
    assert_eq!(store.resolve("app").expect("app").manifest, v2.manifest);
    store
        .tag(
            &v1.manifest.to_string(),
            &"app:latest".parse().expect("ref"),
        )
        .expect("rollback by manifest digest");
    assert_eq!(
        store.resolve("app:latest").expect("app").manifest,
        v1.manifest
    );
    store
        .tag(v2.config.short(), &"app:latest".parse().expect("ref"))
        .expect("forward by short id");
    assert_eq!(
        store.resolve("app:latest").expect("app").manifest,
        v2.manifest
    );

    // Two tags: removing one only untags.
    store
        .tag("app:latest", &"other/app:x".parse().expect("ref"))
        .expect("tag");
    let r = store.remove("app:latest", false).expect("untag");
    assert_eq!(
        r,
        vec![crate::store::Removal::Untagged("app:latest".into())]
    );
    assert!(store.resolve("other/app:x").is_ok());
    // By id with tags in several repositories: refused unless forced.
    store
        .tag("other/app:x", &"app:again".parse().expect("ref"))
        .expect("tag");
    let err = store
        .remove(v2.config.short(), false)
        .expect_err("needs force");
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    let layer_v2 = store.manifest(&v2).expect("manifest").layers[0]
        .digest
        .clone();
    let r = store.remove(v2.config.short(), true).expect("forced");
    assert!(
        r.contains(&crate::store::Removal::Deleted(v2.config.clone())),
        "{r:?}"
    );
    assert!(!store.content().exists(&layer_v2), "GC left the layer");
    assert!(!store.content().exists(&v2.manifest));

    // A container snapshot keeps its image.
    store
        .tag(&v1.manifest.to_string(), &"app:1".parse().expect("ref"))
        .expect("tag");
    store.prepare_container("c1", "app:1").expect("prepare");
    let err = store.remove("app:1", false).expect_err("in use");
    assert!(matches!(err, Error::Conflict { reason } if reason.contains("c1")));
    store.remove_container("c1").expect("remove container");

    // Prune: dangling first, then everything with -a.
    store.remove("app:1", false).expect("rmi");
    assert!(store.list().expect("list").is_empty());
    import_tar(&store, &raw_tar(&[E::File("v", b"3")]), "keep:1");
    let dangling = import_tar(&store, &raw_tar(&[E::File("v", b"4")]), "keep:1");
    let (removed, gc) = store.prune(false).expect("prune");
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert!(gc.ran && !gc.blobs.is_empty());
    assert_eq!(store.list().expect("list").len(), 1);
    assert_eq!(
        store.resolve("keep:1").expect("keep").manifest,
        dangling.manifest
    );
    store.prune(true).expect("prune -a");
    assert!(store.list().expect("list").is_empty());
    assert!(store.content().list().expect("blobs").is_empty());
    assert!(store.verify().expect("verify").is_consistent());
}

#[test]
fn import_takes_plain_gzip_and_zstd_tarballs_with_one_diff_id() {
    if !root() {
        return;
    }
    let (_d, store) = store();
    let tar = raw_tar(&[E::Dir("etc"), E::File("etc/os", b"cais")]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).expect("gzip");
    let gz = gz.finish().expect("gzip");
    let zst =
        ruzstd::encoding::compress_to_vec(&tar[..], ruzstd::encoding::CompressionLevel::Fastest);
    let mut diff_ids = Vec::new();
    for (i, body) in [tar.clone(), gz, zst].into_iter().enumerate() {
        let rec = import_tar(&store, &body, &format!("fmt:{i}"));
        let config = store.config(&rec).expect("config");
        assert_eq!(
            config.rootfs.diff_ids,
            vec![Digest::sha256(&tar)],
            "format {i}"
        );
        diff_ids.push(config.rootfs.diff_ids[0].clone());
        let dirs = store.layer_dirs(&rec).expect("layers");
        assert_eq!(fs::read(dirs[0].join("etc/os")).expect("os"), b"cais");
    }
    // One snapshot shared by the three images.
    let snaps: Vec<_> = list_names(&store.snapshots_dir())
        .expect("snapshots")
        .into_iter()
        .filter(|n| n != "tmp")
        .collect();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
}
