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
    // A dynamic busybox would need the host's libc inside the rootfs.
    std::fs::read(BUSYBOX).is_ok_and(|b| !b.windows(11).any(|w| w == b"ld-linux-x8"))
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
