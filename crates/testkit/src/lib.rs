//! Test helpers (dev-only): privilege checks, busybox root filesystems and
//! OCI bundles, images, temporary state roots; `daemon`, `registry` and
//! `kube` are the engine daemon, registry and Kubernetes API server
//! fixtures (the docker CLI helpers live in the daemon fixture, kubectl's
//! in the kube one). A missing requirement fails under `CI`, skips
//! otherwise.

pub mod registry;

pub mod daemon;

pub mod kube;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Where Debian's busybox-static installs its binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// True when the test may go on. A missing privilege or tool is a failure
/// under CI (`CI` set) and a printed skip otherwise.
pub fn require(what: &str, available: bool) -> bool {
    if available {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("test requirement missing under CI: {what}");
    }
    eprintln!("skipping: {what}");
    false
}

/// Root and a static busybox: what container tests need.
pub fn require_root_and_busybox() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    require("running as root", root)
        && require(
            "a static busybox (busybox-static) at /bin/busybox",
            is_static_elf(Path::new(BUSYBOX)),
        )
}

/// Fills `dir` with a minimal root filesystem: busybox and its applets.
pub fn busybox_rootfs(dir: &Path) {
    for d in ["bin", "proc", "sys", "dev", "etc", "tmp", "root"] {
        std::fs::create_dir_all(dir.join(d)).expect("create rootfs dir");
    }
    std::fs::copy(BUSYBOX, dir.join("bin/busybox")).expect("copy busybox");
    let out = std::process::Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        if applet != "busybox" {
            let _ = symlink("busybox", dir.join("bin").join(applet));
        }
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .expect("passwd");
    std::fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").expect("group");
}

/// A bundle in a temporary directory: busybox rootfs and a config.json.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub config: serde_json::Value,
}

impl Bundle {
    /// The runtime's default config with `args` and no terminal.
    pub fn new(args: &[&str]) -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("cais-bundle-")
            .tempdir()
            .expect("bundle tempdir");
        busybox_rootfs(&dir.path().join("rootfs"));
        let mut config = cais_runtime::bundle::default_spec(false);
        config["process"]["terminal"] = false.into();
        config["process"]["args"] = serde_json::json!(args);
        config["root"]["readonly"] = false.into();
        let b = Bundle { dir, config };
        b.write();
        b
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Changes the config and writes it again.
    pub fn edit(&mut self, f: impl FnOnce(&mut serde_json::Value)) -> &mut Self {
        f(&mut self.config);
        self.write();
        self
    }

    fn write(&self) {
        std::fs::write(
            self.dir.path().join("config.json"),
            serde_json::to_vec_pretty(&self.config).expect("json"),
        )
        .expect("write config.json");
    }
}

/// A unique container id for this test process.
pub fn unique_id(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A temporary state root for `--root`.
pub fn state_root() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("cais-state-")
        .tempdir()
        .expect("state tempdir")
}

/// Stores a one-layer busybox image named `tag` in the image store at
/// `root`, made offline from the host's busybox-static, and returns its id.
pub fn busybox_image(root: &Path, tag: &str, config: serde_json::Value) -> String {
    use cais_image::{Digest, ImageStore};
    let store = ImageStore::open(root).expect("open image store");
    let rootfs = tempfile::tempdir().expect("rootfs dir");
    busybox_rootfs(rootfs.path());
    let layer = std::process::Command::new("tar")
        .args([
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "-C",
        ])
        .arg(rootfs.path())
        .args(["-cf", "-", "."])
        .output()
        .expect("tar the rootfs")
        .stdout;
    let content = store.content();
    let layer_digest = content.put(&layer, None).expect("store layer");
    let mut image_config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest.to_string()]},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "cais testkit: busybox"}]
    });
    if let serde_json::Value::Object(extra) = config {
        for (k, v) in extra {
            image_config["config"][k] = v;
        }
    }
    let config_bytes = serde_json::to_vec(&image_config).expect("json");
    let config_digest = content.put(&config_bytes, None).expect("store config");
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config_bytes.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest.to_string(), "size": layer.len()}]
    });
    let manifest_bytes = serde_json::to_vec(&manifest).expect("json");
    let manifest_digest: Digest = content.put(&manifest_bytes, None).expect("store manifest");
    let reference: cais_image::Reference = tag.parse().expect("valid tag");
    let name = reference.tagged_name().expect("tagged");
    let rec = store
        .add_image(
            &manifest_digest,
            Some("application/vnd.oci.image.manifest.v1+json"),
            &cais_image::Platform::default(),
            &[name],
            Default::default(),
        )
        .expect("record image");
    rec.id().to_string()
}

/// A tarball of a busybox root filesystem (see [`busybox_rootfs`]) written
/// to `dir/rootfs.tar`; `extra` files (path, contents) are added to it.
pub fn busybox_rootfs_tar(dir: &Path, extra: &[(&str, &[u8])]) -> PathBuf {
    let rootfs = dir.join("rootfs");
    busybox_rootfs(&rootfs);
    for (path, body) in extra {
        let p = rootfs.join(path);
        std::fs::create_dir_all(p.parent().expect("extra file has a parent")).expect("mkdir");
        std::fs::write(p, body).expect("write extra file");
    }
    let out = dir.join("rootfs.tar");
    let status = std::process::Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&out)
        .arg(".")
        .status()
        .expect("run tar");
    assert!(status.success(), "tar of the rootfs failed");
    out
}

/// Where the peer dockerd of /work/shared/bench/README.md listens.
pub const PEER_DOCKER_SOCK: &str = "/run/peer-docker.sock";

/// The socket of a reachable dockerd: the peer daemon, started with its own
/// paths when it is installed but not running. `None` when there is none.
pub fn docker_daemon() -> Option<String> {
    let host = format!("unix://{PEER_DOCKER_SOCK}");
    let ping = || {
        std::process::Command::new("docker")
            .args(["-H", &host, "version", "--format", "{{.Server.Version}}"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if ping() {
        return Some(host);
    }
    let started = std::process::Command::new("dockerd")
        .args([
            "--host",
            &host,
            "--data-root",
            "/var/lib/peer-docker",
            "--exec-root",
            "/run/peer-docker",
            "--pidfile",
            "/run/peer-docker.pid",
            "--storage-driver",
            "overlay2",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok();
    if !started {
        return None;
    }
    for _ in 0..60 {
        if ping() {
            return Some(host);
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    None
}

/// True when `tool` runs (`tool --version`).
pub fn have_tool(tool: &str) -> bool {
    std::process::Command::new(tool)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// True when `path` is an ELF64 executable without a program interpreter
/// (no `PT_INTERP` program header, elf(5)), i.e. statically linked. Debian's
/// static busybox contains the string "ld-linux-x86-64.so.2" (its `ldd`
/// applet names it), so looking for that string is not enough.
pub fn is_static_elf(path: &Path) -> bool {
    let Ok(b) = std::fs::read(path) else {
        return false;
    };
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(b[0x20..0x28].try_into().expect("8 bytes")) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).all(|i| {
        let o = phoff + i * phentsize;
        // PT_INTERP is 3.
        b.get(o..o + 4) != Some(&3u32.to_le_bytes()[..])
    })
}

/// The inputs a fuzz target's corpus test runs: every file of
/// `fuzz/corpus/TARGET/` (the seeds) and `fuzz/regressions/TARGET/` (inputs
/// that once crashed), with their names. Panics when there are none, so a
/// corpus test cannot pass by reading nothing.
pub fn fuzz_inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut inputs = Vec::new();
    for kind in ["corpus", "regressions"] {
        let dir = fuzz.join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let data = std::fs::read(entry.path()).expect("a fuzz input");
            inputs.push((
                format!("{kind}/{target}/{}", entry.file_name().to_string_lossy()),
                data,
            ));
        }
    }
    inputs.sort();
    assert!(
        !inputs.is_empty(),
        "no fuzz inputs for {target} under {}",
        fuzz.display()
    );
    inputs
}
