//! End-to-end tests of the local image commands: `cais images|tag|rmi|
//! inspect|history|save|load|import`, `cais image prune|verify|snapshot`,
//! against real peers (dockerd, skopeo) and the real kernel (overlayfs).
//!
//! Tools: busybox-static, tar, gzip, skopeo, docker.io (dockerd is started
//! with its own paths when not running). A missing tool or root fails the
//! test under `CI` and skips it otherwise.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cais_testkit::{
    busybox_rootfs_tar, docker_daemon, have_tool, require, require_root_and_busybox, unique_id,
};

const CAIS: &str = env!("CARGO_BIN_EXE_cais");

/// A data root of its own and helpers to drive `cais` against it.
struct Store {
    dir: tempfile::TempDir,
}

impl Store {
    fn new() -> Store {
        Store {
            dir: tempfile::Builder::new()
                .prefix("cais-images-")
                .tempdir()
                .expect("tempdir"),
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(CAIS);
        c.args(args)
            .env("CAIS_DATA_ROOT", self.root())
            .stdin(Stdio::null());
        c
    }

    fn output(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run cais")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "cais {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(!out.status.success(), "cais {args:?} should have failed");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn inspect(&self, image: &str) -> serde_json::Value {
        let v: serde_json::Value =
            serde_json::from_str(&self.ok(&["inspect", image])).expect("inspect is JSON");
        v[0].clone()
    }

    /// `cais image verify` passes, and there are no blobs in flight.
    fn assert_consistent(&self) {
        let out = self.ok(&["image", "verify"]);
        assert!(out.contains("consistent") && !out.contains("NOT"), "{out}");
    }

    /// A busybox image imported as `name`, with `extra` files.
    fn import_busybox(&self, name: &str, extra: &[(&str, &[u8])]) -> String {
        let tar = busybox_rootfs_tar(&self.dir.path().join(unique_id("rootfs")), extra);
        self.ok(&["import", path(&tar), name]).trim().to_owned()
    }

    fn blob_count(&self) -> usize {
        std::fs::read_dir(self.root().join("content/blobs/sha256"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn run(c: &mut Command) -> String {
    let out = c.output().expect("spawn");
    assert!(
        out.status.success(),
        "{c:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn docker(host: &str, args: &[&str]) -> Command {
    let mut c = Command::new("docker");
    c.arg("-H").arg(host).args(args);
    c
}

fn busybox() -> bool {
    require(
        "busybox-static at /bin/busybox",
        Path::new(cais_testkit::BUSYBOX).exists(),
    )
}

#[test]
fn import_list_tag_inspect_history_and_rmi_like_docker() {
    if !require_root_and_busybox() {
        return;
    }
    let s = Store::new();
    let id = s.import_busybox("bb:1", &[("etc/motd", b"hello\n")]);
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    let short = &id[7..19];

    let out = s.ok(&["images"]);
    let mut lines = out.lines();
    let header: Vec<&str> = lines
        .next()
        .expect("header")
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(header, ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
    let row: Vec<&str> = lines.next().expect("row").split_whitespace().collect();
    assert_eq!(&row[..3], ["bb", "1", short], "{out}");
    assert!(out.lines().nth(1).expect("row").ends_with("MB"), "{out}");
    assert_eq!(s.ok(&["images", "-q"]).trim(), short);
    assert!(s
        .ok(&["images", "--digests"])
        .lines()
        .next()
        .expect("header")
        .contains("DIGEST"));

    s.ok(&["tag", "bb:1", "localhost:5000/team/bb:v1"]);
    let listed = s.ok(&["images"]);
    assert!(listed.contains("localhost:5000/team/bb"), "{listed}");
    assert_eq!(s.ok(&["images", "-q"]).trim(), short, "one id, two tags");
    assert_eq!(s.ok(&["images", "-q", "bb"]).trim(), short);
    assert!(s.ok(&["images", "nothere"]).lines().count() == 1);

    let info = s.inspect("bb:1");
    assert_eq!(info["Id"], id.as_str());
    assert_eq!(
        info["RepoTags"],
        serde_json::json!(["bb:1", "localhost:5000/team/bb:v1"])
    );
    assert_eq!(info["Os"], "linux");
    assert_eq!(info["RootFS"]["Type"], "layers");
    assert_eq!(
        info["RootFS"]["Layers"].as_array().expect("layers").len(),
        1
    );
    assert!(info["Size"].as_u64().expect("size") > 1_000_000);
    // By short id and by full id too.
    assert_eq!(s.inspect(short)["Id"], id.as_str());
    assert_eq!(s.inspect(&id)["Id"], id.as_str());

    let history = s.ok(&["history", "bb:1"]);
    assert!(history.starts_with("IMAGE"), "{history}");
    assert!(
        history.contains(short) && history.contains("cais import"),
        "{history}"
    );

    // rmi of one of two tags only untags.
    let out = s.ok(&["rmi", "bb:1"]);
    assert_eq!(out.trim(), "Untagged: bb:1");
    assert!(s.inspect("localhost:5000/team/bb:v1")["Id"] == id.as_str());
    let blobs = s.blob_count();
    assert_eq!(blobs, 3, "manifest, config, layer");
    // The last tag removes the image and its blobs.
    let out = s.ok(&["rmi", "localhost:5000/team/bb:v1"]);
    assert!(out.contains("Untagged: localhost:5000/team/bb:v1"), "{out}");
    assert!(out.contains(&format!("Deleted: {id}")), "{out}");
    assert_eq!(s.blob_count(), 0);
    assert!(s.fails(&["inspect", "bb:1"]).contains("not found"));
    assert!(s.fails(&["rmi", "bb:1"]).contains("not found"));
    s.assert_consistent();
}

#[test]
fn tagging_an_earlier_digest_rolls_back() {
    if !require_root_and_busybox() {
        return;
    }
    let s = Store::new();
    let v1 = s.import_busybox("app:latest", &[("version", b"1")]);
    let digest_v1 = s.inspect("app:latest")["Descriptor"]["digest"]
        .as_str()
        .expect("digest")
        .to_owned();
    let v2 = s.import_busybox("app:latest", &[("version", b"2")]);
    assert_ne!(v1, v2);
    assert_eq!(s.inspect("app")["Id"], v2.as_str());
    // v1 is dangling (<none>) but kept, so the tag can go back to it.
    assert!(s.ok(&["images"]).contains("<none>"));
    s.ok(&["tag", &digest_v1, "app:latest"]);
    assert_eq!(s.inspect("app:latest")["Id"], v1.as_str());
    s.ok(&["tag", &v2[7..19], "app:latest"]);
    assert_eq!(s.inspect("app:latest")["Id"], v2.as_str());
    // Prune drops the dangling v1; then there is no going back.
    let out = s.ok(&["image", "prune", "-f"]);
    assert!(out.contains(&format!("deleted: {v1}")), "{out}");
    assert!(s
        .fails(&["tag", &digest_v1, "app:old"])
        .contains("not found"));
    s.assert_consistent();
}

#[test]
fn bad_input_is_refused_and_the_store_is_unchanged() {
    if !require_root_and_busybox() {
        return;
    }
    let s = Store::new();
    s.import_busybox("good:1", &[]);
    let before = s.ok(&["images", "-q"]);
    let blobs = s.blob_count();

    // A rootfs tarball with a traversal entry.
    let dir = s.dir.path().join("evil");
    std::fs::create_dir_all(dir.join("a")).expect("mkdir");
    std::fs::write(dir.join("x"), b"x").expect("write");
    let evil = s.dir.path().join("evil.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .arg("-cPf")
        .arg(&evil)
        .arg("--transform")
        .arg("s,^x$,a/../../escaped,")
        .arg("x"));
    let err = s.fails(&["import", path(&evil), "evil:1"]);
    assert!(
        err.contains("refusing entry") && err.contains(".."),
        "{err}"
    );
    assert!(!s.dir.path().join("escaped").exists());

    // Not an archive at all.
    let junk = s.dir.path().join("junk.tar");
    std::fs::write(&junk, vec![0x42; 4096]).expect("junk");
    let err = s.fails(&["load", "-i", path(&junk)]);
    assert!(err.contains("loading images"), "{err}");

    assert_eq!(s.ok(&["images", "-q"]), before);
    assert_eq!(s.blob_count(), blobs);
    s.assert_consistent();
}

#[test]
fn save_output_loads_in_docker_and_skopeo() {
    if !require_root_and_busybox() {
        return;
    }
    let docker_ok = have_tool("docker") && have_tool("dockerd");
    if !require("docker CLI and dockerd", docker_ok) || !require("skopeo", have_tool("skopeo")) {
        return;
    }
    let Some(host) = docker_daemon() else {
        require("a running dockerd", false);
        return;
    };
    let s = Store::new();
    let name = unique_id("cais-e2e-save");
    let id = s.import_busybox(&format!("{name}:v1"), &[("etc/motd", b"from cais\n")]);
    let archive = s.dir.path().join("saved.tar");
    s.ok(&["save", "-o", path(&archive), &format!("{name}:v1")]);

    let info: serde_json::Value = serde_json::from_str(&run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("docker-archive:{}", archive.display()))))
    .expect("skopeo JSON");
    assert_eq!(info["Architecture"], "amd64");
    assert_eq!(info["Layers"].as_array().expect("layers").len(), 1);
    let oci: serde_json::Value = serde_json::from_str(&run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci-archive:{}", archive.display()))))
    .expect("skopeo JSON");
    assert_eq!(
        oci["Digest"],
        s.inspect(&format!("{name}:v1"))["Descriptor"]["digest"],
        "the OCI layout keeps the manifest digest"
    );

    let out = run(&mut docker(&host, &["load", "-i", path(&archive)]));
    assert!(out.contains(&format!("Loaded image: {name}:v1")), "{out}");
    let docker_id = run(&mut docker(
        &host,
        &["image", "inspect", "-f", "{{.Id}}", &format!("{name}:v1")],
    ));
    let ran = docker(
        &host,
        &["run", "--rm", &format!("{name}:v1"), "cat", "/etc/motd"],
    )
    .output()
    .expect("docker run");
    let _ = docker(&host, &["rmi", "-f", &format!("{name}:v1")]).output();
    assert_eq!(docker_id.trim(), id, "docker sees the same image id");
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "from cais\n");
}

#[test]
fn docker_save_output_loads_in_cais() {
    if !require_root_and_busybox() {
        return;
    }
    if !require(
        "docker CLI and dockerd",
        have_tool("docker") && have_tool("dockerd"),
    ) {
        return;
    }
    let Some(host) = docker_daemon() else {
        require("a running dockerd", false);
        return;
    };
    let s = Store::new();
    let name = unique_id("cais-e2e-dsave");
    let tar = busybox_rootfs_tar(&s.dir.path().join("src"), &[("etc/motd", b"from docker\n")]);
    run(&mut docker(
        &host,
        &["import", path(&tar), &format!("{name}:v1")],
    ));
    let archive = s.dir.path().join("docker.tar");
    let saved = docker(
        &host,
        &["save", "-o", path(&archive), &format!("{name}:v1")],
    )
    .output()
    .expect("docker save");
    let inspected = docker(&host, &["image", "inspect", &format!("{name}:v1")])
        .output()
        .expect("inspect");
    let _ = docker(&host, &["rmi", "-f", &format!("{name}:v1")]).output();
    assert!(
        saved.status.success(),
        "{}",
        String::from_utf8_lossy(&saved.stderr)
    );
    let theirs: serde_json::Value =
        serde_json::from_slice(&inspected.stdout).expect("docker inspect JSON");

    let out = s.ok(&["load", "-i", path(&archive)]);
    assert_eq!(out.trim(), format!("Loaded image: {name}:v1"));
    let ours = s.inspect(&format!("{name}:v1"));
    assert_eq!(ours["Id"], theirs[0]["Id"], "same config, same id");
    assert_eq!(ours["RootFS"]["Layers"], theirs[0]["RootFS"]["Layers"]);
    let lower = ours["GraphDriver"]["Data"]["LowerDir"]
        .as_str()
        .expect("lowerdir")
        .to_owned();
    assert_eq!(
        std::fs::read_to_string(Path::new(&lower).join("etc/motd")).expect("motd"),
        "from docker\n"
    );
    s.assert_consistent();
}

#[test]
fn a_killed_load_leaves_no_broken_image_and_the_retry_completes() {
    if !require_root_and_busybox() {
        return;
    }
    let src = Store::new();
    // Incompressible data, so the archive is big and the load slow enough
    // to be killed in the middle.
    let mut noise = vec![0u8; 64 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in noise.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    src.import_busybox("big:1", &[("noise", &noise)]);
    drop(noise);
    let archive = src.dir.path().join("big.tar");
    src.ok(&["save", "-o", path(&archive), "big:1"]);

    let dst = Store::new();
    let mut child = dst
        .cmd(&["load", "-i", path(&archive)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn load");
    let tmp = dst.root().join("content/tmp");
    let deadline = Instant::now() + Duration::from_secs(60);
    let killed_midway = loop {
        let partial = std::fs::read_dir(&tmp)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .any(|e| e.metadata().is_ok_and(|m| m.len() > (4 << 20)))
            })
            .unwrap_or(false);
        if partial {
            let running = child.try_wait().expect("try_wait").is_none();
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            break running;
        }
        if child.try_wait().expect("try_wait").is_some() || Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = child.wait();
    assert!(killed_midway, "the load finished before it could be killed");

    assert_eq!(
        dst.ok(&["images", "-q"]).trim(),
        "",
        "no image after the kill"
    );
    assert!(dst.fails(&["inspect", "big:1"]).contains("not found"));
    dst.assert_consistent();
    // The retry clears the dead writer's leftovers and completes.
    let out = dst.ok(&["load", "-i", path(&archive)]);
    assert_eq!(out.trim(), "Loaded image: big:1");
    assert_eq!(dst.inspect("big:1")["Id"], src.inspect("big:1")["Id"]);
    assert_eq!(
        std::fs::read_dir(&tmp).expect("tmp").count(),
        0,
        "temporary files left"
    );
    dst.assert_consistent();
}

fn tar_entries(gz_layer: &Path) -> Vec<String> {
    run(Command::new("tar").arg("-tzf").arg(gz_layer))
        .lines()
        .map(|l| l.trim_start_matches("./").to_owned())
        .collect()
}

fn mount_json(s: &Store, id: &str, image: &str) -> serde_json::Value {
    serde_json::from_str(&s.ok(&["image", "snapshot", "prepare", "--mount", id, image]))
        .expect("mount JSON")
}

#[test]
fn overlay_commit_diff_and_boot() {
    if !require_root_and_busybox() {
        return;
    }
    if !busybox() {
        return;
    }
    let s = Store::new();
    s.import_busybox(
        "bb:1",
        &[("etc/hello", b"lower\n"), ("etc/opq/old", b"old\n")],
    );

    let c1 = unique_id("c1");
    let m = mount_json(&s, &c1, "bb:1");
    let rootfs = PathBuf::from(m["target"].as_str().expect("target"));
    assert!(m["options"]
        .as_str()
        .expect("options")
        .starts_with("lowerdir="));
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/hello")).expect("hello"),
        "lower\n"
    );
    // Changes: a new file, a deleted lower file, a directory replaced.
    std::fs::write(rootfs.join("root/new.txt"), b"committed\n").expect("write");
    std::fs::remove_file(rootfs.join("etc/hello")).expect("rm");
    std::fs::remove_dir_all(rootfs.join("etc/opq")).expect("rm dir");
    std::fs::create_dir(rootfs.join("etc/opq")).expect("mkdir");
    std::fs::write(rootfs.join("etc/opq/fresh"), b"fresh\n").expect("write");
    // The image is in use: rmi refuses.
    assert!(s.fails(&["rmi", "bb:1"]).contains("being used"));
    let new_id = s
        .ok(&[
            "image",
            "snapshot",
            "commit",
            "-m",
            "test commit",
            &c1,
            "bb:2",
        ])
        .trim()
        .to_owned();
    s.ok(&["image", "snapshot", "rm", &c1]);
    assert!(!rootfs.exists());

    let info = s.inspect("bb:2");
    assert_eq!(info["Id"], new_id.as_str());
    assert_eq!(
        info["RootFS"]["Layers"].as_array().expect("layers").len(),
        2
    );
    assert_eq!(info["Comment"], "test commit");
    let history = s.ok(&["history", "bb:2"]);
    assert!(
        history.contains("cais commit") && history.contains("test commit"),
        "{history}"
    );

    // The new layer, as a tar: the file, a whiteout, an opaque marker.
    let archive = s.dir.path().join("bb2.tar");
    s.ok(&["save", "-o", path(&archive), "bb:2"]);
    let unpacked = s.dir.path().join("bb2");
    std::fs::create_dir_all(&unpacked).expect("mkdir");
    run(Command::new("tar")
        .arg("-C")
        .arg(&unpacked)
        .arg("-xf")
        .arg(&archive));
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(unpacked.join("manifest.json")).expect("manifest.json"),
    )
    .expect("json");
    let top = manifest[0]["Layers"][1].as_str().expect("top layer");
    let entries = tar_entries(&unpacked.join(top));
    for want in [
        "root/new.txt",
        "etc/.wh.hello",
        "etc/opq/.wh..wh..opq",
        "etc/opq/fresh",
    ] {
        assert!(
            entries.iter().any(|e| e == want),
            "{want} missing from {entries:?}"
        );
    }
    assert!(
        !entries.iter().any(|e| e.starts_with("bin/")),
        "unchanged files in the diff: {entries:?}"
    );

    // A fresh overlay of the new image shows the committed tree.
    let c2 = unique_id("c2");
    let m = mount_json(&s, &c2, "bb:2");
    let rootfs = PathBuf::from(m["target"].as_str().expect("target"));
    let cleanup = Unmount {
        store: &s,
        id: c2.clone(),
    };
    assert_eq!(
        std::fs::read_to_string(rootfs.join("root/new.txt")).expect("new"),
        "committed\n"
    );
    assert!(!rootfs.join("etc/hello").exists(), "whiteout not applied");
    let opq: Vec<_> = std::fs::read_dir(rootfs.join("etc/opq"))
        .expect("opq")
        .map(|e| e.expect("e").file_name())
        .collect();
    assert_eq!(
        opq,
        vec![std::ffi::OsString::from("fresh")],
        "opaque dir shows lower entries"
    );

    // And it boots: the runtime runs a container on the mounted overlay.
    let bundle = s.dir.path().join("bundle");
    std::fs::create_dir_all(&bundle).expect("bundle");
    run(Command::new(CAIS).args(["runtime", "spec", "--bundle", path(&bundle)]));
    let config_path = bundle.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config_path).expect("config")).expect("json");
    config["root"]["path"] = path(&rootfs).into();
    config["root"]["readonly"] = false.into();
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = serde_json::json!([
        "sh",
        "-c",
        "cat /root/new.txt; ls /etc/opq; test ! -e /etc/hello"
    ]);
    std::fs::write(&config_path, serde_json::to_vec(&config).expect("json")).expect("write config");
    let state = cais_testkit::state_root();
    let out = Command::new(CAIS)
        .arg("runtime")
        .arg("--root")
        .arg(state.path())
        .args(["run", "--bundle", path(&bundle), &unique_id("boot")])
        .stdin(Stdio::null())
        .output()
        .expect("cais runtime run");
    assert!(
        out.status.success(),
        "container failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "committed\nfresh\n");
    drop(cleanup);
    s.assert_consistent();
}

/// Unmounts and removes a container snapshot even when an assertion fails.
struct Unmount<'a> {
    store: &'a Store,
    id: String,
}

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = self.store.output(&["image", "snapshot", "rm", &self.id]);
    }
}

#[test]
fn concurrent_loads_of_one_archive_both_succeed() {
    if !require_root_and_busybox() {
        return;
    }
    let src = Store::new();
    src.import_busybox("same:1", &[("etc/motd", b"x\n")]);
    let archive = src.dir.path().join("same.tar");
    src.ok(&["save", "-o", path(&archive), "same:1"]);
    let dst = Store::new();
    let children: Vec<_> = (0..3)
        .map(|_| {
            dst.cmd(&["load", "-i", path(&archive)])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn load")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(dst.inspect("same:1")["Id"], src.inspect("same:1")["Id"]);
    assert_eq!(dst.ok(&["images", "-q"]).lines().count(), 1);
    dst.assert_consistent();
}

#[test]
fn skopeo_written_archives_load_in_cais() {
    if !require_root_and_busybox() || !require("skopeo", have_tool("skopeo")) {
        return;
    }
    let s = Store::new();
    let id = s.import_busybox("src:1", &[("etc/motd", b"via skopeo\n")]);
    let saved = s.dir.path().join("saved.tar");
    s.ok(&["save", "-o", path(&saved), "src:1"]);
    let oci = s.dir.path().join("skopeo-oci.tar");
    let dockerish = s.dir.path().join("skopeo-docker.tar");
    run(Command::new("skopeo").args([
        "copy",
        &format!("docker-archive:{}", saved.display()),
        &format!("oci-archive:{}:example.com/skopeo/oci:v1", oci.display()),
    ]));
    run(Command::new("skopeo").args([
        "copy",
        &format!("docker-archive:{}", saved.display()),
        &format!("docker-archive:{}:skopeo/docker:v1", dockerish.display()),
    ]));

    let dst = Store::new();
    let out = dst.ok(&["load", "-i", path(&oci)]);
    assert_eq!(out.trim(), "Loaded image: example.com/skopeo/oci:v1");
    let out = dst.ok(&["load", "-i", path(&dockerish)]);
    assert_eq!(out.trim(), "Loaded image: skopeo/docker:v1");
    // skopeo may rewrite the config (so the id), never the layers' content.
    let layers = s.inspect(&id)["RootFS"]["Layers"].clone();
    for name in ["example.com/skopeo/oci:v1", "skopeo/docker:v1"] {
        let info = dst.inspect(name);
        assert_eq!(info["RootFS"]["Layers"], layers, "{name}");
        let lower = info["GraphDriver"]["Data"]["LowerDir"]
            .as_str()
            .expect("lowerdir")
            .to_owned();
        assert_eq!(
            std::fs::read_to_string(Path::new(&lower).join("etc/motd")).expect("motd"),
            "via skopeo\n",
            "{name}"
        );
    }
    dst.assert_consistent();
}

#[test]
fn save_load_and_import_through_pipes() {
    if !require_root_and_busybox() {
        return;
    }
    let a = Store::new();
    let tar = busybox_rootfs_tar(&a.dir.path().join("src"), &[("etc/motd", b"piped\n")]);
    let imported = a
        .cmd(&["import", "-", "piped:1"])
        .stdin(std::fs::File::open(&tar).expect("open tar"))
        .output()
        .expect("import from stdin");
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let id = String::from_utf8_lossy(&imported.stdout).trim().to_owned();

    let b = Store::new();
    let mut save = a
        .cmd(&["save", "piped:1"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("save to stdout");
    let load = b
        .cmd(&["load"])
        .stdin(save.stdout.take().expect("pipe"))
        .output()
        .expect("load from stdin");
    assert!(save.wait().expect("wait").success());
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&load.stdout).trim(),
        "Loaded image: piped:1"
    );
    assert_eq!(b.inspect("piped:1")["Id"], id.as_str());
    b.assert_consistent();
}
