//! Diff of an upper directory, and an overlay of many layers (root).

use std::os::unix::fs::symlink;

use super::*;
use crate::archive::{import, ImportOptions};
use crate::unpack::tests::{raw_tar, E};

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    cais_testkit::require("running as root", unsafe { libc::geteuid() } == 0)
}

fn entries(tar: &[u8]) -> Vec<(String, tar::EntryType, String)> {
    let mut a = tar::Archive::new(tar);
    a.entries()
        .expect("entries")
        .map(|e| {
            let e = e.expect("entry");
            let link = e
                .link_name()
                .ok()
                .flatten()
                .map(|l| l.display().to_string())
                .unwrap_or_default();
            (
                e.path().expect("path").display().to_string(),
                e.header().entry_type(),
                link,
            )
        })
        .collect()
}

#[test]
fn diff_turns_overlay_whiteouts_and_opaque_dirs_into_layer_entries() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let upper = dir.path();
    fs::create_dir_all(upper.join("etc/opq")).expect("mkdir");
    fs::write(upper.join("etc/opq/new"), b"n").expect("write");
    fs::write(upper.join("a"), b"a").expect("write");
    fs::hard_link(upper.join("a"), upper.join("b")).expect("link");
    symlink("/etc/passwd", upper.join("s")).expect("symlink");
    let c = CString::new(upper.join("etc/gone").as_os_str().as_bytes()).expect("cstr");
    // SAFETY: valid C string; a 0:0 character device is overlayfs's whiteout.
    assert_eq!(
        unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, 0) },
        0
    );
    let d = CString::new(upper.join("etc/opq").as_os_str().as_bytes()).expect("cstr");
    // SAFETY: setxattr only reads the NUL-terminated path and name and the one byte of
    // value it is told about, all of which outlive the call.
    let r = unsafe {
        libc::setxattr(
            d.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            b"y".as_ptr().cast(),
            1,
            0,
        )
    };
    assert_eq!(r, 0, "{}", io::Error::last_os_error());

    let a = CString::new(upper.join("a").as_os_str().as_bytes()).expect("cstr");
    // SAFETY: setxattr only reads the NUL-terminated path and name and the four bytes
    // of value it is told about, all of which outlive the call.
    let r = unsafe {
        libc::setxattr(
            a.as_ptr(),
            c"user.cais".as_ptr(),
            b"kept".as_ptr().cast(),
            4,
            0,
        )
    };
    assert_eq!(r, 0, "{}", io::Error::last_os_error());

    let mut out = Vec::new();
    diff(upper, &mut out).expect("diff");
    let got = entries(&out);
    let find = |p: &str| {
        got.iter()
            .find(|e| e.0 == p)
            .unwrap_or_else(|| panic!("{p} missing: {got:?}"))
    };
    assert_eq!(find("etc/.wh.gone").1, tar::EntryType::Regular);
    assert_eq!(find("etc/opq/.wh..wh..opq").1, tar::EntryType::Regular);
    assert_eq!(find("etc/opq/new").1, tar::EntryType::Regular);
    assert_eq!(find("b").1, tar::EntryType::Link);
    assert_eq!(find("b").2, "a");
    assert_eq!(find("s").1, tar::EntryType::Symlink);
    assert_eq!(find("s").2, "/etc/passwd");
    assert!(
        !got.iter().any(|e| e.0 == "etc/gone"),
        "the whiteout itself was archived"
    );
    // Sorted, so the same tree gives the same bytes.
    let mut again = Vec::new();
    diff(upper, &mut again).expect("diff");
    assert_eq!(out, again);
    // And it unpacks back to the overlay form.
    let back = dir.path().join("back");
    fs::create_dir_all(&back).expect("mkdir");
    unpack::extract(&out[..], &back, &Digest::sha256(&out)).expect("extract");
    assert!(is_opaque(&back.join("etc/opq")));
    let xattrs = read_xattrs(&back.join("a")).expect("xattrs");
    assert!(
        xattrs.contains(&("user.cais".to_owned(), b"kept".to_vec())),
        "{xattrs:?}"
    );
    // overlayfs's own xattr travels as the .wh..wh..opq entry, not as PAX.
    assert!(
        !out.windows(15).any(|w| w == b"trusted.overlay"),
        "overlay xattr archived"
    );
    let wh = fs::symlink_metadata(back.join("etc/gone")).expect("whiteout");
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
}

#[test]
fn an_overlay_of_a_hundred_layers_mounts() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // A long data root, as a deployment might have.
    let store = ImageStore::open(
        dir.path()
            .join("a-rather-long-data-root-path/for/the/image/store"),
    )
    .expect("store");
    let opts = ImportOptions {
        reference: Some("many:0".parse().expect("ref")),
        source: "test".into(),
        ..Default::default()
    };
    import(&store, &raw_tar(&[E::File("base", b"0")])[..], &opts).expect("import");
    let layers = 100;
    for i in 1..layers {
        let id = format!("build-{i}");
        let m = store
            .prepare_container(&id, &format!("many:{}", i - 1))
            .expect("prepare");
        fs::write(m.upperdir.join(format!("f{i}")), i.to_string()).expect("write");
        let opts = CommitOptions {
            reference: Some(format!("many:{i}").parse().expect("ref")),
            ..Default::default()
        };
        store.commit_container(&id, &opts).expect("commit");
        store.remove_container(&id).expect("remove");
    }
    let top = store.resolve(&format!("many:{}", layers - 1)).expect("top");
    assert_eq!(store.layer_dirs(&top).expect("layers").len(), layers);
    let m = store
        .prepare_container("many", &format!("many:{}", layers - 1))
        .expect("prepare");
    assert!(
        m.options().is_err(),
        "too long for mount(2): lowerdir+ is needed"
    );
    mount(&m).expect("mount a hundred layers");
    let seen = (1..layers).all(|i| m.target.join(format!("f{i}")).exists())
        && m.target.join("base").exists();
    store.remove_container("many").expect("remove");
    assert!(seen, "a layer is missing from the merged tree");
    assert!(!m.target.exists());
}

#[test]
fn diff_with_a_clamp_writes_no_mtime_after_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::create_dir(dir.path().join("d")).expect("mkdir");
    fs::write(dir.path().join("d/new"), b"x").expect("write");
    let mut tar = Vec::new();
    diff_with(
        dir.path(),
        &mut tar,
        DiffOptions {
            clamp_mtime: Some(1000),
        },
    )
    .expect("diff");
    let mut a = tar::Archive::new(&tar[..]);
    let mtimes: Vec<u64> = a
        .entries()
        .expect("entries")
        .map(|e| e.expect("entry").header().mtime().expect("mtime"))
        .collect();
    assert_eq!(mtimes, [1000, 1000]);
}

/// Two steps that change nothing give one diff, so one snapshot listed
/// twice: overlayfs refuses a lower directory given twice (ELOOP), so it
/// is passed once, and the view is the same.
#[test]
fn a_layer_listed_twice_mounts_once() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for (d, f) in [(&a, "from-a"), (&b, "from-b")] {
        fs::create_dir_all(d).expect("mkdir");
        fs::write(d.join(f), f).expect("write");
    }
    let m = OverlayMount {
        lowerdirs: vec![a.clone(), b, a],
        upperdir: dir.path().join("upper"),
        workdir: dir.path().join("work"),
        target: dir.path().join("merged"),
        volatile: false,
    };
    for d in [&m.upperdir, &m.workdir] {
        fs::create_dir_all(d).expect("mkdir");
    }
    mount(&m).expect("an overlay with a layer listed twice mounts");
    let seen = (
        fs::read_to_string(m.target.join("from-a")),
        fs::read_to_string(m.target.join("from-b")),
    );
    unmount(&m.target).expect("unmount");
    assert_eq!(
        (seen.0.expect("a's file"), seen.1.expect("b's file")),
        ("from-a".to_string(), "from-b".to_string())
    );
}
