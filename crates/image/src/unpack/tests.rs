//! Containment and whiteout tests on the real file system. Root is needed
//! for chown, mknod and `trusted.*` xattrs.

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use super::*;
use crate::oci;

pub(crate) enum E<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Char(&'a str, u32, u32),
}

/// A tar with exactly these raw names (tar::Builder would refuse `..`).
pub(crate) fn raw_tar(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_ustar();
        let (name, kind, data, link): (&str, tar::EntryType, &[u8], Option<&str>) = match e {
            E::File(n, d) => (n, tar::EntryType::Regular, d, None),
            E::Dir(n) => (n, tar::EntryType::Directory, b"", None),
            E::Symlink(n, t) => (n, tar::EntryType::Symlink, b"", Some(t)),
            E::Hardlink(n, t) => (n, tar::EntryType::Link, b"", Some(t)),
            E::Char(n, ma, mi) => {
                h.set_device_major(*ma).expect("major");
                h.set_device_minor(*mi).expect("minor");
                (n, tar::EntryType::Char, b"", None)
            }
        };
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_size(data.len() as u64);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        b.append(&h, data).expect("append");
    }
    b.into_inner().expect("finish")
}

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    cais_testkit::require("running as root", unsafe { libc::geteuid() } == 0)
}

struct Case {
    _dir: tempfile::TempDir,
    layer: PathBuf,
    outside: PathBuf,
}

fn case() -> Case {
    let dir = tempfile::tempdir().expect("tempdir");
    let layer = dir.path().join("layer");
    let outside = dir.path().join("outside");
    fs::create_dir_all(&layer).expect("layer");
    fs::create_dir_all(&outside).expect("outside");
    fs::write(outside.join("victim"), b"original").expect("victim");
    Case {
        _dir: dir,
        layer,
        outside,
    }
}

fn run(c: &Case, entries: &[E]) -> Result<u64> {
    extract(&raw_tar(entries)[..], &c.layer, &Digest::sha256(b"test"))
}

fn assert_outside_untouched(c: &Case) {
    let names: Vec<_> = fs::read_dir(&c.outside)
        .expect("outside")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("victim")],
        "outside changed"
    );
    assert_eq!(
        fs::read(c.outside.join("victim")).expect("victim"),
        b"original"
    );
}

fn unsafe_entry(r: Result<u64>) -> String {
    match r {
        Err(Error::UnsafeLayerEntry { entry, reason, .. }) => format!("{entry}: {reason}"),
        other => panic!("expected an unsafe-entry refusal, got {other:?}"),
    }
}

#[test]
fn tar_path_traversal_is_refused() {
    if !root() {
        return;
    }
    let c = case();
    let msg = unsafe_entry(run(&c, &[E::File("../outside/victim", b"pwned")]));
    assert!(msg.contains(".."), "{msg}");
    let msg = unsafe_entry(run(&c, &[E::File("a/../../outside/new", b"pwned")]));
    assert!(msg.contains(".."), "{msg}");
    assert_outside_untouched(&c);
}

#[test]
fn absolute_paths_are_contained() {
    if !root() {
        return;
    }
    let c = case();
    let abs = format!("{}/victim", c.outside.display());
    run(&c, &[E::File(&abs, b"inside")]).expect("contained");
    assert_outside_untouched(&c);
    let contained = c.layer.join(abs.trim_start_matches('/'));
    assert_eq!(fs::read(contained).expect("contained file"), b"inside");
}

#[test]
fn symlink_then_write_through_symlink_is_refused() {
    if !root() {
        return;
    }
    let c = case();
    let target = c.outside.display().to_string();
    let msg = unsafe_entry(run(
        &c,
        &[
            E::Symlink("escape", &target),
            E::File("escape/victim", b"pwned"),
        ],
    ));
    assert!(msg.contains("symlink"), "{msg}");
    // Relative symlink climbing out, then a write below it.
    let c2 = case();
    let msg = unsafe_entry(run(
        &c2,
        &[E::Symlink("up", "../outside"), E::File("up/new", b"pwned")],
    ));
    assert!(msg.contains("symlink"), "{msg}");
    // A directory replaced by a symlink between two writes below it.
    let c3 = case();
    let target = c3.outside.display().to_string();
    let msg = unsafe_entry(run(
        &c3,
        &[
            E::Dir("a"),
            E::File("a/f", b"ok"),
            E::Symlink("a", &target),
            E::File("a/victim", b"pwned"),
        ],
    ));
    assert!(msg.contains("symlink"), "{msg}");
    assert_outside_untouched(&c);
    assert_outside_untouched(&c2);
    assert_outside_untouched(&c3);
    // The symlink itself is kept as written: it is resolved in the
    // container, never here.
    assert_eq!(
        fs::read_link(c2.layer.join("up")).expect("link"),
        Path::new("../outside")
    );
}

#[test]
fn absolute_symlink_parent_is_refused() {
    if !root() {
        return;
    }
    let c = case();
    let msg = unsafe_entry(run(
        &c,
        &[
            E::Symlink("etc", "/etc"),
            E::File("etc/cais-unpack-test", b"pwned"),
        ],
    ));
    assert!(msg.contains("symlink"), "{msg}");
    assert!(!Path::new("/etc/cais-unpack-test").exists());
}

#[test]
fn hardlink_to_outside_is_refused() {
    if !root() {
        return;
    }
    let c = case();
    let msg = unsafe_entry(run(&c, &[E::Hardlink("h", "../outside/victim")]));
    assert!(msg.contains(".."), "{msg}");
    let abs = format!("{}/victim", c.outside.display());
    let msg = unsafe_entry(run(&c, &[E::Hardlink("h2", &abs)]));
    assert!(msg.contains("not inside"), "{msg}");
    // Through a symlinked parent.
    let target = c.outside.display().to_string();
    let msg = unsafe_entry(run(
        &c,
        &[E::Symlink("s", &target), E::Hardlink("h3", "s/victim")],
    ));
    assert!(msg.contains("not inside"), "{msg}");
    assert_eq!(
        fs::metadata(c.outside.join("victim"))
            .expect("victim")
            .nlink(),
        1
    );
    assert_outside_untouched(&c);
    // A link inside the layer works.
    run(&c, &[E::File("a", b"x"), E::Hardlink("b", "a")]).expect("inner link");
    assert_eq!(fs::metadata(c.layer.join("b")).expect("b").nlink(), 2);
}

#[test]
fn device_nodes_are_skipped_and_whiteouts_become_overlay_whiteouts() {
    if !root() {
        return;
    }
    let c = case();
    run(
        &c,
        &[
            E::Char("dev/kmsg", 1, 11),
            E::Dir("d"),
            E::File("d/.wh.gone", b""),
            E::Dir("o"),
            E::File("o/.wh..wh..opq", b""),
            E::File("o/kept", b"k"),
            E::File("same", b"s"),
            E::File(".wh.same", b""),
        ],
    )
    .expect("extract");
    // A whiteout does not hide an entry of its own layer.
    assert_eq!(fs::read(c.layer.join("same")).expect("same"), b"s");
    assert!(!c.layer.join("dev/kmsg").exists(), "device node created");
    let wh = fs::symlink_metadata(c.layer.join("d/gone")).expect("whiteout");
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    assert!(!c.layer.join("d/.wh.gone").exists());
    assert!(crate::snapshot::is_opaque(&c.layer.join("o")));
    assert!(!c.layer.join("o/.wh..wh..opq").exists());
    assert_eq!(fs::read(c.layer.join("o/kept")).expect("kept"), b"k");
}

#[test]
fn later_entries_replace_earlier_ones() {
    if !root() {
        return;
    }
    let c = case();
    run(
        &c,
        &[
            E::File("f", b"one"),
            E::File("f", b"two"),
            E::Dir("x"),
            E::File("x/y", b""),
            E::Symlink("x", "f"),
        ],
    )
    .expect("extract");
    assert_eq!(fs::read(c.layer.join("f")).expect("f"), b"two");
    assert!(fs::symlink_metadata(c.layer.join("x"))
        .expect("x")
        .file_type()
        .is_symlink());
}

fn layer_blob(store: &ContentStore, tar: &[u8], c: Compression) -> Descriptor {
    let body = match c {
        Compression::None => tar.to_vec(),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut e, tar).expect("gzip");
            e.finish().expect("gzip")
        }
        Compression::Zstd => {
            ruzstd::encoding::compress_to_vec(tar, ruzstd::encoding::CompressionLevel::Fastest)
        }
    };
    let d = store.put(&body, None).expect("put");
    Descriptor::new(c.oci_media_type(), d, body.len() as u64)
}

#[test]
fn gzip_zstd_and_plain_layers_unpack_once_per_diff_id() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ContentStore::new(dir.path().join("content")).expect("store");
    let snaps = dir.path().join("snapshots");
    fs::create_dir_all(snaps.join("tmp")).expect("snapshots");
    let tar = raw_tar(&[E::Dir("etc"), E::File("etc/motd", b"hello")]);
    let diff_id = Digest::sha256(&tar);
    for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let desc = layer_blob(&store, &tar, c);
        let fs_dir = unpack_layer(&store, &snaps, &desc, &diff_id).expect("unpack");
        assert_eq!(
            fs::read(fs_dir.join("etc/motd")).expect("motd"),
            b"hello",
            "{c:?}"
        );
    }
    // One snapshot for the three blobs, and nothing left in tmp.
    let names: Vec<_> = fs::read_dir(&snaps)
        .expect("list")
        .map(|e| e.expect("e").file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(fs::read_dir(snaps.join("tmp")).expect("tmp").count(), 0);
    assert_eq!(snapshot_size(&snaps, &diff_id), 5);
}

#[test]
fn a_wrong_diff_id_or_unknown_type_leaves_no_snapshot() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ContentStore::new(dir.path().join("content")).expect("store");
    let snaps = dir.path().join("snapshots");
    fs::create_dir_all(snaps.join("tmp")).expect("snapshots");
    let tar = raw_tar(&[E::File("a", b"a")]);
    let desc = layer_blob(&store, &tar, Compression::Gzip);
    let wrong = Digest::sha256(b"not the tar");
    let err = unpack_layer(&store, &snaps, &desc, &wrong).expect_err("wrong diff id accepted");
    assert!(matches!(err, Error::DiffIdMismatch { .. }), "{err}");
    let mut odd = desc.clone();
    odd.media_type = "application/x-tar+brotli".into();
    let err = unpack_layer(&store, &snaps, &odd, &Digest::sha256(&tar)).expect_err("type accepted");
    assert!(
        matches!(
            err,
            Error::Oci(crate::oci::Error::UnsupportedMediaType { .. })
        ),
        "{err}"
    );
    let traversal = raw_tar(&[E::File("../x", b"x")]);
    let desc = layer_blob(&store, &traversal, Compression::None);
    let err =
        unpack_layer(&store, &snaps, &desc, &Digest::sha256(&traversal)).expect_err("traversal");
    assert!(matches!(err, Error::UnsafeLayerEntry { .. }), "{err}");
    assert!(!dir.path().join("x").exists());
    assert_eq!(fs::read_dir(&snaps).expect("list").count(), 1, "only tmp/");
    assert_eq!(fs::read_dir(snaps.join("tmp")).expect("tmp").count(), 0);
    let _ = oci::OCI_LAYER_TAR;
}
