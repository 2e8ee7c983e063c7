//! Registry fixtures: Debian's `docker-registry` (Distribution) on a free
//! loopback port, OCI image layouts built offline (busybox-static, a
//! multi-layer image with whiteouts, big random images), `skopeo copy` to
//! put them in a registry, htpasswd files and a self-signed CA.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

/// True when every tool is on PATH; see [`crate::require`].
pub fn require_tools(tools: &[&str]) -> bool {
    tools.iter().all(|tool| {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        crate::require(&format!("{tool} installed"), found)
    })
}

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    let d = Sha256::digest(data);
    format!(
        "sha256:{}",
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Runs `cmd`, panicking with its output when it fails; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A free TCP port on `ip` (bound then released).
pub fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .expect("bind a free port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// How to start Distribution.
#[derive(Debug, Default, Clone)]
pub struct DistributionConfig {
    /// Loopback address to bind (default 127.0.0.1).
    pub ip: Option<String>,
    /// htpasswd file (bcrypt) for Basic auth.
    pub htpasswd: Option<PathBuf>,
    /// TLS certificate and key.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// A running Distribution registry, killed on drop.
pub struct Distribution {
    child: Child,
    /// `ip:port`.
    pub addr: String,
    pub dir: tempfile::TempDir,
}

impl Distribution {
    pub fn start(config: &DistributionConfig) -> Distribution {
        let dir = tempfile::Builder::new()
            .prefix("cais-distribution-")
            .tempdir()
            .expect("tempdir");
        let ip = config.ip.clone().unwrap_or_else(|| "127.0.0.1".into());
        let addr = format!("{ip}:{}", free_port(&ip));
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        if let Some((cert, key)) = &config.tls {
            yaml.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
        }
        if let Some(h) = &config.htpasswd {
            yaml.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: cais-test\n    path: {}\n",
                h.display()
            ));
        }
        std::fs::write(dir.path().join("config.yml"), yaml).expect("write config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("registry.log")).expect("registry log"))
            .spawn()
            .expect("spawn docker-registry");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(30));
        }
        Distribution { child, addr, dir }
    }

    /// Where Distribution keeps blob data (`.../blobs/sha256/ab/<hex>/data`).
    pub fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir.path().join(format!(
            "data/docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ))
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes an htpasswd file with bcrypt entries.
pub fn htpasswd(dir: &Path, users: &[(&str, &str)]) -> PathBuf {
    let path = dir.join("htpasswd");
    for (i, (user, pass)) in users.iter().enumerate() {
        run(Command::new("htpasswd")
            .arg(if i == 0 { "-Bbc" } else { "-Bb" })
            .arg(&path)
            .args([user, pass])
            .stderr(Stdio::null()));
    }
    path
}

/// A CA and a server certificate it signed for `ip`: (ca, cert, key).
pub fn make_ca_and_cert(dir: &Path, ip: &str) -> (PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n);
    run(Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=cais test CA"])
        .arg("-keyout")
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.crt"))
        .stderr(Stdio::null()));
    run(Command::new("openssl")
        .args(["req", "-newkey", "rsa:2048", "-nodes"])
        .args(["-subj", &format!("/CN={ip}")])
        .arg("-keyout")
        .arg(p("server.key"))
        .arg("-out")
        .arg(p("server.csr"))
        .stderr(Stdio::null()));
    std::fs::write(
        p("ext.cnf"),
        format!("subjectAltName=IP:{ip}\nbasicConstraints=CA:FALSE\n"),
    )
    .expect("ext");
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
        .arg("-in")
        .arg(p("server.csr"))
        .arg("-CA")
        .arg(p("ca.crt"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-extfile")
        .arg(p("ext.cnf"))
        .arg("-out")
        .arg(p("server.crt"))
        .stderr(Stdio::null()));
    (p("ca.crt"), p("server.crt"), p("server.key"))
}

/// An OCI image layout on disk with one tagged image.
#[derive(Debug, Clone)]
pub struct OciImage {
    pub layout: PathBuf,
    pub tag: String,
    /// Manifest digest.
    pub manifest: String,
    /// Config then layers.
    pub blobs: Vec<String>,
}

impl OciImage {
    /// `oci:LAYOUT:TAG` for skopeo.
    pub fn skopeo_source(&self) -> String {
        format!("oci:{}:{}", self.layout.display(), self.tag)
    }
}

/// Tars `dir` (deterministically) and gzips it with `level`.
fn tar_gz(dir: &Path, out: &Path, level: u8) {
    run(Command::new("sh").arg("-c").arg(format!(
        "tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C '{}' -cf - . | gzip -n -{level} > '{}'",
        dir.display(),
        out.display()
    )));
}

/// A manifest written into a layout: (digest, size, config and layers).
struct Built {
    manifest: String,
    size: usize,
    blobs: Vec<String>,
}

fn add_blob(layout: &Path, data: &[u8]) -> String {
    let blobs_dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs_dir).expect("mkdir blobs");
    let d = sha256(data);
    std::fs::write(blobs_dir.join(&d[7..]), data).expect("write blob");
    d
}

/// Writes the layers (tarred and gzipped), a config for `arch` and an
/// image manifest into `layout`'s blobs.
fn build_manifest(
    layout: &Path,
    label: &str,
    arch: &str,
    layer_dirs: &[PathBuf],
    gzip_level: u8,
) -> Built {
    std::fs::create_dir_all(layout).expect("mkdir layout");
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    let mut layer_digests = Vec::new();
    for (i, dir) in layer_dirs.iter().enumerate() {
        let tgz = layout.join(format!("layer-{arch}-{i}.tgz"));
        tar_gz(dir, &tgz, gzip_level);
        let raw = run(Command::new("sh")
            .arg("-c")
            .arg(format!("gzip -dc '{}' | sha256sum", tgz.display())));
        diff_ids.push(format!("sha256:{}", &raw[..64]));
        let data = std::fs::read(&tgz).expect("read layer");
        std::fs::remove_file(&tgz).expect("remove tgz");
        let d = add_blob(layout, &data);
        descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": d, "size": data.len()}));
        layer_digests.push(d);
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch, "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], "Labels": {"tag": label}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": layer_dirs.iter().map(|_| serde_json::json!({"created_by": "cais testkit"})).collect::<Vec<_>>(),
    }))
    .expect("json");
    let config_digest = add_blob(layout, &config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": descs,
    }))
    .expect("json");
    let m = add_blob(layout, &manifest);
    let mut blobs = vec![config_digest];
    blobs.extend(layer_digests);
    Built {
        manifest: m,
        size: manifest.len(),
        blobs,
    }
}

fn write_index(layout: &Path, entry: serde_json::Value) {
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [entry]}))
            .expect("json"),
    )
    .expect("index.json");
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
}

/// Builds an OCI layout at `layout` from layer directories (each tarred
/// and gzipped).
pub fn build_layout(layout: &Path, tag: &str, layer_dirs: &[PathBuf], gzip_level: u8) -> OciImage {
    let built = build_manifest(layout, tag, "amd64", layer_dirs, gzip_level);
    write_index(
        layout,
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": built.manifest, "size": built.size,
            "platform": {"os": "linux", "architecture": "amd64"},
            "annotations": {"org.opencontainers.image.ref.name": tag}}),
    );
    OciImage {
        layout: layout.to_owned(),
        tag: tag.to_owned(),
        manifest: built.manifest,
        blobs: built.blobs,
    }
}

/// A multi-platform image: an image index with linux/amd64 and
/// linux/arm64 entries, each busybox plus `/etc/arch` naming its platform.
/// `manifest` is the index's digest; `blobs` are the amd64 image's, then
/// the arm64 image's manifest digest last.
pub fn multi_platform_image(dir: &Path, tag: &str) -> OciImage {
    let layout = dir.join(format!("layout-multi-{tag}"));
    let base = busybox_layer_dir(dir);
    let mut entries = Vec::new();
    let mut amd64_blobs = Vec::new();
    let mut arm64_manifest = String::new();
    for arch in ["amd64", "arm64"] {
        let top = dir.join(format!("multi-{arch}"));
        std::fs::create_dir_all(top.join("etc")).expect("mkdir");
        std::fs::write(top.join("etc/arch"), arch).expect("write");
        let built = build_manifest(&layout, arch, arch, &[base.clone(), top], 6);
        entries.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": built.manifest, "size": built.size,
            "platform": {"os": "linux", "architecture": arch}}));
        if arch == "amd64" {
            amd64_blobs = built.blobs;
            amd64_blobs.push(built.manifest);
        } else {
            arm64_manifest = built.manifest;
        }
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    }))
    .expect("json");
    let index_digest = add_blob(&layout, &index);
    write_index(
        &layout,
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": index_digest, "size": index.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag}}),
    );
    amd64_blobs.push(arm64_manifest);
    OciImage {
        layout,
        tag: tag.to_owned(),
        manifest: index_digest,
        blobs: amd64_blobs,
    }
}

/// One layer: busybox-static and its applet links in /bin.
pub fn busybox_layer_dir(dir: &Path) -> PathBuf {
    let root = dir.join("busybox-rootfs");
    std::fs::create_dir_all(root.join("bin")).expect("mkdir");
    std::fs::create_dir_all(root.join("etc")).expect("mkdir");
    std::fs::copy(crate::BUSYBOX, root.join("bin/busybox")).expect("copy busybox");
    let list = run(Command::new(crate::BUSYBOX).arg("--list"));
    for applet in list.lines().filter(|a| !a.is_empty() && *a != "busybox") {
        let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").expect("passwd");
    root
}

/// The busybox-static image.
pub fn busybox_image(dir: &Path, tag: &str) -> OciImage {
    let layer = busybox_layer_dir(dir);
    build_layout(&dir.join(format!("layout-busybox-{tag}")), tag, &[layer], 6)
}

/// Three layers: busybox, then files and a directory, then a layer that
/// deletes a file (`.wh.name`), makes a directory opaque
/// (`.wh..wh..opq`) and adds files.
pub fn whiteout_image(dir: &Path, tag: &str) -> OciImage {
    let base = busybox_layer_dir(dir);
    let l2 = dir.join("wh-l2");
    std::fs::create_dir_all(l2.join("data/sub")).expect("mkdir");
    std::fs::create_dir_all(l2.join("etc")).expect("mkdir");
    std::fs::write(l2.join("etc/gone"), "to be deleted\n").expect("write");
    std::fs::write(l2.join("etc/kept"), "kept\n").expect("write");
    std::fs::write(l2.join("data/old"), "old\n").expect("write");
    std::fs::write(l2.join("data/sub/older"), "older\n").expect("write");
    let l3 = dir.join("wh-l3");
    std::fs::create_dir_all(l3.join("data")).expect("mkdir");
    std::fs::create_dir_all(l3.join("etc")).expect("mkdir");
    std::fs::write(l3.join("etc/.wh.gone"), "").expect("write");
    std::fs::write(l3.join("data/.wh..wh..opq"), "").expect("write");
    std::fs::write(l3.join("data/new"), "new\n").expect("write");
    std::fs::write(l3.join("etc/added"), "added\n").expect("write");
    build_layout(
        &dir.join(format!("layout-wh-{tag}")),
        tag,
        &[base, l2, l3],
        6,
    )
}

/// `layers` layers of `mb_per_layer` MiB: half pseudo-random bytes (which
/// do not compress) and half text (which does), like real images.
pub fn big_image(dir: &Path, tag: &str, layers: usize, mb_per_layer: usize) -> OciImage {
    let mut dirs = Vec::new();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15 ^ (layers * mb_per_layer) as u64;
    for i in 0..layers {
        let d = dir.join(format!("big-l{i}"));
        std::fs::create_dir_all(&d).expect("mkdir");
        let half = mb_per_layer * 512 * 1024;
        let mut random = Vec::with_capacity(half);
        while random.len() < half {
            // xorshift64*: fast, deterministic, incompressible enough.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            random.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        std::fs::write(d.join("random.bin"), &random).expect("write");
        let mut text = String::with_capacity(half);
        let mut n = 0u64;
        while text.len() < half {
            text.push_str(&format!(
                "line {n} of layer {i}: the quick brown fox jumps over the lazy dog {}\n",
                n.wrapping_mul(2_654_435_761) % 100_000
            ));
            n += 1;
        }
        std::fs::write(d.join("text.txt"), text).expect("write");
        dirs.push(d);
    }
    build_layout(&dir.join(format!("layout-big-{tag}")), tag, &dirs, 1)
}

/// `skopeo copy` of an OCI layout image to `docker://DEST` with `extra`
/// arguments (`--dest-creds`, `--dest-cert-dir`, ...).
pub fn skopeo_push(image: &OciImage, dest: &str, extra: &[&str]) {
    run(Command::new("skopeo")
        .args(["--registries-conf", "/dev/null", "copy", "-q"])
        .args(extra)
        .arg(image.skopeo_source())
        .arg(format!("docker://{dest}")));
}

/// `skopeo inspect --raw` of `docker://REF`: the manifest bytes.
pub fn skopeo_raw(reference: &str, extra: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo")
        .args(["--registries-conf", "/dev/null", "inspect", "--raw"])
        .args(extra)
        .arg(format!("docker://{reference}"))
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
