//! Test helpers (dev-only): privilege checks, busybox root filesystems and
//! OCI bundles, temporary state roots.

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
        && require("busybox-static at /bin/busybox", is_static_busybox())
}

fn is_static_busybox() -> bool {
    // A dynamic busybox would need the host's libc inside the rootfs: look
    // for a PT_INTERP program header in the ELF64 file.
    let Ok(b) = std::fs::read(BUSYBOX) else {
        return false;
    };
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 {
        return false;
    }
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes")) as usize;
    let u16_at = |o: usize| u16::from_le_bytes(b[o..o + 2].try_into().expect("2 bytes")) as usize;
    let (phoff, phentsize, phnum) = (u64_at(32), u16_at(54), u16_at(56));
    (0..phnum).all(|i| {
        let o = phoff + i * phentsize;
        o + 4 <= b.len() && u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes")) != 3
    })
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
