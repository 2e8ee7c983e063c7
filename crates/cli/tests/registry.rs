//! End-to-end tests of `cais registry serve`: real servers on loopback, real
//! clients (skopeo, podman, a raw HTTP/1.1 client), no mocks.
//!
//! The `conformance` module takes a base address and runs against cais and
//! against Debian's `docker-registry` (Distribution), so the expectations
//! themselves are checked against a trusted implementation.
//!
//! Tools: skopeo, podman, docker-registry, busybox-static, apache2-utils
//! (htpasswd), openssl, tar, gzip. A missing tool skips a test with a printed
//! reason, or fails it when `CI` is set.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

// ---------------------------------------------------------------- helpers

/// Are these tools installed? Under `CI` a missing one fails the test.
fn have(tools: &[&str]) -> bool {
    for tool in tools {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        if !found {
            assert!(
                std::env::var_os("CI").is_none(),
                "{tool} is required under CI (apt-get install it)"
            );
            eprintln!("skipping: {tool} is not installed");
            return false;
        }
    }
    true
}

fn sha256(data: &[u8]) -> String {
    let d = Sha256::digest(data);
    format!(
        "sha256:{}",
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

fn run(mut cmd: impl std::borrow::BorrowMut<Command>) -> String {
    let cmd = cmd.borrow_mut();
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

fn run_fails(mut cmd: impl std::borrow::BorrowMut<Command>) -> String {
    let cmd = cmd.borrow_mut();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(!out.status.success(), "{cmd:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A running `cais registry serve`, killed on drop.
struct Cais {
    child: Child,
    addr: String,
    root: PathBuf,
    log: PathBuf,
}

impl Cais {
    fn start(root: &Path, extra: &[&str]) -> Cais {
        let log = root.with_extension(format!("log{}", std::process::id()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_cais"))
            .args(["registry", "serve", "--addr", "127.0.0.1:0", "--root"])
            .arg(root)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn cais");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read address");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Cais {
            addr: addr.to_owned(),
            child,
            root: root.to_owned(),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        run(Command::new("kill").args([format!("-{sig}"), self.child.id().to_string()]));
    }
}

impl Drop for Cais {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running Distribution (`docker-registry`), killed on drop.
struct Distribution {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Distribution {
    fn start() -> Distribution {
        Distribution::start_with("")
    }

    /// Starts Distribution with `extra` appended to its YAML configuration.
    fn start_with(extra: &str) -> Distribution {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("config.yml"), format!("{config}{extra}")).expect("config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn docker-registry");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Distribution {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response from the raw client.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn code(&self) -> String {
        let v: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_default();
        v["errors"][0]["code"].as_str().unwrap_or("").to_owned()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not json ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// One HTTP/1.1 request on a fresh connection. Raw on purpose: tests send
/// paths and bodies real clients would refuse to send.
fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    let has_length = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_length && (method != "GET" && method != "HEAD" || !body.is_empty()) {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write");
    // A server may answer (413, 401...) and close before reading a large
    // body; the answer is what the test wants, so a broken pipe is fine.
    let _ = s.write_all(body);
    read_response(s, method == "HEAD")
}

fn read_response(mut s: TcpStream, head: bool) -> Resp {
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head_text = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head_text.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked && !head {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..eol]).trim(), 16)
                .unwrap_or(0);
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
            rest = &rest[eol + 2 + size + 2..];
        }
        body = out;
    }
    if head {
        body.clear();
    }
    Resp {
        status,
        headers,
        body,
    }
}

/// Pushes a blob monolithically (POST then PUT, the most portable form).
fn push_blob(addr: &str, repo: &str, data: &[u8]) -> String {
    let digest = sha256(data);
    let r = http(
        addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        b"",
    );
    assert_eq!(r.status, 202, "{r:?}");
    let loc = location(&r, &format!("digest={digest}"));
    let r = http(
        addr,
        "PUT",
        &loc,
        &[("Content-Type", "application/octet-stream")],
        data,
    );
    assert_eq!(r.status, 201, "{r:?}");
    digest
}

/// The path (and query) of a `Location`, plus extra query parameters.
fn location(r: &Resp, extra: &str) -> String {
    let loc = r
        .header("Location")
        .unwrap_or_else(|| panic!("no Location in {r:?}"));
    let path = match loc.find("/v2/") {
        Some(i) => &loc[i..],
        None => loc,
    };
    if extra.is_empty() {
        path.to_owned()
    } else if path.contains('?') {
        format!("{path}&{extra}")
    } else {
        format!("{path}?{extra}")
    }
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn image_manifest(config: &[u8], layers: &[&[u8]], extra: &str) -> Vec<u8> {
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(l), "size": l.len()}))
        .collect();
    let mut m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config), "size": config.len()},
        "layers": layers,
    });
    if !extra.is_empty() {
        m["annotations"] = serde_json::json!({"test": extra});
    }
    serde_json::to_vec(&m).expect("json")
}

// ---------------------------------------------------------------- images

/// An OCI layout with a busybox layer (shared by every image) and a small
/// layer holding `marker` (unique per image).
struct Image {
    layout: PathBuf,
    tag: String,
    manifest: String,
    blobs: Vec<String>,
}

fn tar_gz(dir: &Path, out: &Path) {
    run(Command::new("sh").arg("-c").arg(format!(
        "tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C '{}' -cf - . | gzip -n > '{}'",
        dir.display(),
        out.display()
    )));
}

fn oci_image(work: &Path, tag: &str, marker: &str) -> Image {
    let layout = work.join(format!("layout-{tag}"));
    let blobs_dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs_dir).expect("mkdir");
    let add = |data: &[u8]| -> String {
        let d = sha256(data);
        std::fs::write(blobs_dir.join(&d[7..]), data).expect("write blob");
        d
    };
    // Layer 1: busybox-static with its applet links.
    let base = work.join("busybox-layer.tgz");
    if !base.exists() {
        let rootfs = work.join("rootfs-busybox");
        std::fs::create_dir_all(rootfs.join("bin")).expect("mkdir");
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("copy busybox");
        let list = run(Command::new("/bin/busybox").arg("--list"));
        for applet in list.lines().filter(|a| !a.is_empty() && *a != "busybox") {
            let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
        }
        tar_gz(&rootfs, &base);
    }
    // Layer 2: a marker file.
    let rootfs = work.join(format!("rootfs-{tag}"));
    std::fs::create_dir_all(rootfs.join("etc")).expect("mkdir");
    std::fs::write(rootfs.join("etc/marker"), marker).expect("marker");
    let top = work.join(format!("top-{tag}.tgz"));
    tar_gz(&rootfs, &top);
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for path in [&base, &top] {
        let gz = std::fs::read(path).expect("read layer");
        let raw = run(Command::new("sh")
            .arg("-c")
            .arg(format!("gzip -dc '{}' | sha256sum", path.display())));
        diff_ids.push(format!("sha256:{}", &raw[..64]));
        layers.push(gz);
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Labels": {"marker": marker}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .expect("json");
    let mut blobs = vec![add(&config)];
    let mut descs = Vec::new();
    for l in &layers {
        let d = add(l);
        descs.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": l.len()}));
        blobs.push(d);
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blobs[0], "size": config.len()},
        "layers": descs,
    }))
    .expect("json");
    let m = add(&manifest);
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": OCI_MANIFEST, "digest": m, "size": manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": tag}}]});
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).expect("json"),
    )
    .expect("index");
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
    Image {
        layout,
        tag: tag.to_owned(),
        manifest: m,
        blobs,
    }
}

fn skopeo(args: &[&str]) -> Command {
    let mut c = Command::new("skopeo");
    // No shared blob-info cache between tests: each run decides for itself.
    c.arg("--registries-conf").arg("/dev/null").args(args);
    c
}

fn push_image(img: &Image, dest: &str) {
    run(skopeo(&["copy", "-q", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:{}", img.layout.display(), img.tag))
        .arg(dest));
}

/// Every blob of the pulled layout equals the original, byte for byte.
fn assert_same_blobs(original: &Image, pulled: &Path) {
    for d in original.blobs.iter().chain([&original.manifest]) {
        let a = std::fs::read(original.layout.join("blobs/sha256").join(&d[7..]))
            .expect("original blob");
        let b = std::fs::read(pulled.join("blobs/sha256").join(&d[7..]))
            .unwrap_or_else(|_| panic!("pulled layout lacks {d}"));
        assert!(a == b, "blob {d} differs after the round trip");
    }
}

fn podman(work: &Path) -> Command {
    let conf = work.join("containers.conf");
    std::fs::write(
        &conf,
        "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n",
    )
    .expect("conf");
    let mut c = Command::new("podman");
    c.env("CONTAINERS_CONF", &conf)
        .env("REGISTRIES_CONFIG_PATH", "/dev/null")
        .arg("--root")
        .arg(work.join("podman/root"))
        .arg("--runroot")
        .arg(work.join("podman/run"))
        .args(["--storage-driver", "vfs"]);
    c
}

// ---------------------------------------------------------------- conformance

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flavor {
    Cais,
    Distribution,
}

/// Each endpoint of the distribution spec with its success and error
/// answers. Where Distribution 2.8 legitimately differs (it predates the
/// referrers API and spec 1.1 tag deletion), the branch says so.
fn conformance(addr: &str, flavor: Flavor) {
    let repo = "conformance/app";
    // end-1: base.
    let r = http(addr, "GET", "/v2/", &[], b"");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("Docker-Distribution-API-Version"),
        Some("registry/2.0")
    );

    // end-4a + end-6: POST, then PUT with the content.
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let config_digest = push_blob(addr, repo, &config);

    // end-4b: single POST with ?digest.
    let layer: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let layer_digest = sha256(&layer);
    let r = http(
        addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/?digest={layer_digest}"),
        &[("Content-Type", "application/octet-stream")],
        &layer,
    );
    // The spec lets a registry decline single-POST uploads with a 202 and
    // a session to PUT into; cais accepts them, Distribution 2.8 declines.
    let r = match flavor {
        Flavor::Cais => r,
        Flavor::Distribution => {
            assert_eq!(r.status, 202, "{r:?}");
            http(
                addr,
                "PUT",
                &location(&r, &format!("digest={layer_digest}")),
                &[("Content-Type", "application/octet-stream")],
                &layer,
            )
        }
    };
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(
        r.header("Docker-Content-Digest"),
        Some(layer_digest.as_str())
    );
    assert!(r
        .header("Location")
        .is_some_and(|l| l.contains(&layer_digest)));

    // end-2: HEAD and GET blobs, with Range.
    let r = http(
        addr,
        "HEAD",
        &format!("/v2/{repo}/blobs/{layer_digest}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("70000"));
    assert_eq!(
        r.header("Docker-Content-Digest"),
        Some(layer_digest.as_str())
    );
    let r = http(
        addr,
        "GET",
        &format!("/v2/{repo}/blobs/{layer_digest}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200);
    assert!(r.body == layer, "blob content differs");
    let r = http(
        addr,
        "GET",
        &format!("/v2/{repo}/blobs/{layer_digest}"),
        &[("Range", "bytes=100-199")],
        b"",
    );
    assert_eq!(r.status, 206, "{r:?}");
    assert_eq!(r.body, &layer[100..200]);
    assert_eq!(r.header("Content-Range"), Some("bytes 100-199/70000"));

    // Unknown blob: BLOB_UNKNOWN.
    let unknown = sha256(b"never pushed");
    let r = http(
        addr,
        "GET",
        &format!("/v2/{repo}/blobs/{unknown}"),
        &[],
        b"",
    );
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UNKNOWN"));
    let r = http(
        addr,
        "HEAD",
        &format!("/v2/{repo}/blobs/{unknown}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 404);

    // end-5 + end-13: chunked upload with Content-Range, status, resumption.
    let big: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(7) % 256) as u8)
        .collect();
    let big_digest = sha256(&big);
    let r = http(
        addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[("Content-Length", "0")],
        b"",
    );
    assert_eq!(r.status, 202);
    let loc = location(&r, "");
    let r = http(
        addr,
        "PATCH",
        &loc,
        &[
            ("Content-Type", "application/octet-stream"),
            ("Content-Range", "0-99999"),
        ],
        &big[..100_000],
    );
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.header("Range"), Some("0-99999"));
    let loc = location(&r, "");
    let r = http(addr, "GET", &loc, &[], b"");
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(r.header("Range"), Some("0-99999"));
    // A chunk that does not start at the current offset: 416 (spec "Pushing
    // a blob in chunks"). Distribution 2.8 does not check and appends it,
    // which would corrupt the rest of this run, so it is only sent to cais.
    if flavor == Flavor::Cais {
        let r = http(
            addr,
            "PATCH",
            &loc,
            &[
                ("Content-Type", "application/octet-stream"),
                ("Content-Range", "200000-299999"),
            ],
            &big[200_000..],
        );
        assert_eq!(r.status, 416, "{r:?}");
    }
    let r = http(
        addr,
        "PATCH",
        &loc,
        &[
            ("Content-Type", "application/octet-stream"),
            ("Content-Range", "100000-199999"),
        ],
        &big[100_000..200_000],
    );
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.header("Range"), Some("0-199999"));
    let loc = location(&r, &format!("digest={big_digest}"));
    // The last chunk rides on the closing PUT.
    let r = http(
        addr,
        "PUT",
        &loc,
        &[("Content-Type", "application/octet-stream")],
        &big[200_000..],
    );
    assert_eq!(r.status, 201, "{r:?}");
    let r = http(
        addr,
        "GET",
        &format!("/v2/{repo}/blobs/{big_digest}"),
        &[],
        b"",
    );
    assert!(r.body == big, "chunked blob differs");

    // Completing with the wrong digest: DIGEST_INVALID, nothing stored.
    let r = http(
        addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        b"",
    );
    let wrong = sha256(b"something else");
    let r = http(
        addr,
        "PUT",
        &location(&r, &format!("digest={wrong}")),
        &[("Content-Type", "application/octet-stream")],
        b"actual content",
    );
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "DIGEST_INVALID"),
        "{r:?}"
    );
    for d in [&wrong, &sha256(b"actual content")] {
        assert_eq!(
            http(addr, "HEAD", &format!("/v2/{repo}/blobs/{d}"), &[], b"").status,
            404
        );
    }

    // end-7a: manifests. Referenced blobs must exist.
    let manifest = image_manifest(&config, &[&layer], "");
    let manifest_digest = sha256(&manifest);
    let missing = image_manifest(&config, &[b"not uploaded"], "");
    let r = http(
        addr,
        "PUT",
        &format!("/v2/{repo}/manifests/missing"),
        &[("Content-Type", OCI_MANIFEST)],
        &missing,
    );
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "MANIFEST_BLOB_UNKNOWN"),
        "{r:?}"
    );
    let r = http(
        addr,
        "PUT",
        &format!("/v2/{repo}/manifests/bad"),
        &[("Content-Type", OCI_MANIFEST)],
        b"{not json",
    );
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "MANIFEST_INVALID"),
        "{r:?}"
    );
    let r = http(
        addr,
        "PUT",
        &format!("/v2/{repo}/manifests/{}", sha256(b"other")),
        &[("Content-Type", OCI_MANIFEST)],
        &manifest,
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.code(), "DIGEST_INVALID");
    for tag in ["v1", "v2", "v3", "latest"] {
        let r = http(
            addr,
            "PUT",
            &format!("/v2/{repo}/manifests/{tag}"),
            &[("Content-Type", OCI_MANIFEST)],
            &manifest,
        );
        assert_eq!(r.status, 201, "{r:?}");
        assert_eq!(
            r.header("Docker-Content-Digest"),
            Some(manifest_digest.as_str())
        );
        assert!(r.header("Location").is_some());
    }
    // end-3: GET/HEAD by tag and by digest.
    for reference in ["v1", manifest_digest.as_str()] {
        let r = http(
            addr,
            "GET",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Accept", OCI_MANIFEST)],
            b"",
        );
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.body == manifest, "manifest bytes differ");
        assert_eq!(r.header("Content-Type"), Some(OCI_MANIFEST));
        assert_eq!(
            r.header("Docker-Content-Digest"),
            Some(manifest_digest.as_str())
        );
        let r = http(
            addr,
            "HEAD",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Accept", OCI_MANIFEST)],
            b"",
        );
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("Content-Length"),
            Some(manifest.len().to_string().as_str())
        );
    }
    let r = http(
        addr,
        "GET",
        &format!("/v2/{repo}/manifests/nosuchtag"),
        &[("Accept", OCI_MANIFEST)],
        b"",
    );
    assert_eq!((r.status, r.code().as_str()), (404, "MANIFEST_UNKNOWN"));
    let r = http(addr, "GET", "/v2/no/such/repo/tags/list", &[], b"");
    assert_eq!(
        (r.status, r.code().as_str()),
        (404, "NAME_UNKNOWN"),
        "{r:?}"
    );

    // end-8a/8b: tags, with n/last pagination.
    let r = http(addr, "GET", &format!("/v2/{repo}/tags/list"), &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["tags"],
        serde_json::json!(["latest", "v1", "v2", "v3"])
    );
    assert_eq!(r.json()["name"], repo);
    // Distribution 2.8 ignores `n`/`last` on tag lists (its pagination of
    // tags came in 3.0): it answers the whole list.
    if flavor == Flavor::Distribution {
        let r = http(addr, "GET", &format!("/v2/{repo}/tags/list?n=2"), &[], b"");
        assert_eq!(r.json()["tags"].as_array().map(Vec::len), Some(4));
    } else {
        let r = http(addr, "GET", &format!("/v2/{repo}/tags/list?n=2"), &[], b"");
        assert_eq!(r.json()["tags"], serde_json::json!(["latest", "v1"]));
        assert!(
            r.header("Link").is_some_and(|l| l.contains("rel=\"next\"")),
            "{r:?}"
        );
        let r = http(
            addr,
            "GET",
            &format!("/v2/{repo}/tags/list?n=2&last=v1"),
            &[],
            b"",
        );
        assert_eq!(r.json()["tags"], serde_json::json!(["v2", "v3"]));
    }

    // Catalog with pagination.
    push_blob(addr, "conformance/zz", b"zz");
    let r = http(addr, "GET", "/v2/_catalog", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["repositories"],
        serde_json::json!(["conformance/app", "conformance/zz"])
    );
    let r = http(addr, "GET", "/v2/_catalog?n=1", &[], b"");
    assert_eq!(
        r.json()["repositories"],
        serde_json::json!(["conformance/app"])
    );
    assert!(
        r.header("Link").is_some_and(
            |l| l.contains("last=conformance/app") || l.contains("last=conformance%2Fapp")
        ),
        "{r:?}"
    );

    // end-11: cross-repository mount; an unknown source falls back to an upload.
    let other = "conformance/other";
    let r = http(
        addr,
        "POST",
        &format!("/v2/{other}/blobs/uploads/?mount={layer_digest}&from={repo}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(
        r.header("Docker-Content-Digest"),
        Some(layer_digest.as_str())
    );
    assert_eq!(
        http(
            addr,
            "HEAD",
            &format!("/v2/{other}/blobs/{layer_digest}"),
            &[],
            b""
        )
        .status,
        200
    );
    let r = http(
        addr,
        "POST",
        &format!("/v2/{other}/blobs/uploads/?mount={unknown}&from={repo}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 202, "{r:?}");
    // Blobs are per repository: another repository cannot read this one's.
    let r = http(
        addr,
        "GET",
        &format!("/v2/conformance/zz/blobs/{layer_digest}"),
        &[],
        b"",
    );
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UNKNOWN"));

    // Cancelling an upload (DELETE on its location).
    let r = http(
        addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        b"",
    );
    let loc = location(&r, "");
    assert_eq!(http(addr, "DELETE", &loc, &[], b"").status, 204);
    let r = http(addr, "GET", &loc, &[], b"");
    assert_eq!(
        (r.status, r.code().as_str()),
        (404, "BLOB_UPLOAD_UNKNOWN"),
        "{r:?}"
    );

    // Invalid names: NAME_INVALID from cais; Distribution's router does not
    // match such paths at all and answers 404.
    let r = http(addr, "GET", "/v2/Upper/Case/tags/list", &[], b"");
    match flavor {
        Flavor::Cais => assert_eq!((r.status, r.code().as_str()), (400, "NAME_INVALID")),
        Flavor::Distribution => assert_eq!(r.status, 404),
    }
    // A method an endpoint does not have: 405 (cais adds an UNSUPPORTED
    // body; Distribution's router answers with an empty one).
    let r = http(addr, "DELETE", &format!("/v2/{repo}/tags/list"), &[], b"");
    assert_eq!(r.status, 405, "{r:?}");
    if flavor == Flavor::Cais {
        assert_eq!(r.code(), "UNSUPPORTED");
    }
    // Invalid digest: DIGEST_INVALID.
    let r = http(
        addr,
        "GET",
        &format!("/v2/{repo}/blobs/sha256:xyz"),
        &[],
        b"",
    );
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "DIGEST_INVALID"),
        "{r:?}"
    );

    // end-12a/12b referrers (spec 1.1). Distribution 2.8 predates it.
    let artifact = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sbom",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": push_blob(addr, repo, b"{}"), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": manifest.len()},
    }))
    .expect("json");
    let artifact_digest = sha256(&artifact);
    let r = http(
        addr,
        "PUT",
        &format!("/v2/{repo}/manifests/{artifact_digest}"),
        &[("Content-Type", OCI_MANIFEST)],
        &artifact,
    );
    assert_eq!(r.status, 201, "{r:?}");
    let r = http(
        addr,
        "GET",
        &format!("/v2/{repo}/referrers/{manifest_digest}"),
        &[],
        b"",
    );
    match flavor {
        Flavor::Cais => {
            assert_eq!(r.status, 200, "{r:?}");
            let v = r.json();
            assert_eq!(v["manifests"][0]["digest"], artifact_digest.as_str());
            assert_eq!(
                v["manifests"][0]["artifactType"],
                "application/vnd.example.sbom"
            );
            let r = http(
                addr,
                "GET",
                &format!("/v2/{repo}/referrers/{manifest_digest}?artifactType=other"),
                &[],
                b"",
            );
            assert_eq!(r.header("OCI-Filters-Applied"), Some("artifactType"));
            assert_eq!(r.json()["manifests"], serde_json::json!([]));
        }
        Flavor::Distribution => assert_eq!(r.status, 404),
    }

    // end-7b: push by digest with tags in the query (spec 1.1). Distribution
    // 2.8 ignores the parameter.
    let r = http(
        addr,
        "PUT",
        &format!("/v2/{repo}/manifests/{manifest_digest}?tag=q1&tag=q2"),
        &[("Content-Type", OCI_MANIFEST)],
        &manifest,
    );
    assert_eq!(r.status, 201, "{r:?}");
    let tags = http(addr, "GET", &format!("/v2/{repo}/tags/list"), &[], b"").json()["tags"].clone();
    let tagged = tags.as_array().is_some_and(|t| {
        t.contains(&serde_json::json!("q1")) && t.contains(&serde_json::json!("q2"))
    });
    assert_eq!(tagged, flavor == Flavor::Cais, "{tags}");

    // Indexes and Docker media types: children must exist, types round-trip.
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": manifest.len(),
                       "platform": {"architecture": "amd64", "os": "linux"}}],
    }))
    .expect("json");
    let r = http(
        addr,
        "PUT",
        &format!("/v2/{repo}/manifests/multi"),
        &[("Content-Type", "application/vnd.oci.image.index.v1+json")],
        &index,
    );
    assert_eq!(r.status, 201, "{r:?}");
    let r = http(
        addr,
        "GET",
        &format!("/v2/{repo}/manifests/multi"),
        &[("Accept", "application/vnd.oci.image.index.v1+json")],
        b"",
    );
    assert_eq!(
        r.header("Content-Type"),
        Some("application/vnd.oci.image.index.v1+json")
    );
    assert!(r.body == index);
    let dangling = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": unknown, "size": 10}],
    }))
    .expect("json");
    let r = http(
        addr,
        "PUT",
        &format!("/v2/{repo}/manifests/dangling"),
        &[("Content-Type", "application/vnd.oci.image.index.v1+json")],
        &dangling,
    );
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "MANIFEST_BLOB_UNKNOWN"),
        "{r:?}"
    );
    const DOCKER: &str = "application/vnd.docker.distribution.manifest.v2+json";
    let docker = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": DOCKER,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": layer_digest, "size": layer.len()}],
    }))
    .expect("json");
    let r = http(
        addr,
        "PUT",
        &format!("/v2/{repo}/manifests/docker"),
        &[("Content-Type", DOCKER)],
        &docker,
    );
    assert_eq!(r.status, 201, "{r:?}");
    let r = http(
        addr,
        "GET",
        &format!("/v2/{repo}/manifests/docker"),
        &[("Accept", DOCKER)],
        b"",
    );
    assert_eq!(r.header("Content-Type"), Some(DOCKER));
    assert_eq!(
        r.header("Docker-Content-Digest"),
        Some(sha256(&docker).as_str())
    );

    // end-9 and end-10: delete manifests (by digest removes its tags too) and blobs.
    let r = http(
        addr,
        "DELETE",
        &format!("/v2/{repo}/manifests/{manifest_digest}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 202, "{r:?}");
    let r = http(
        addr,
        "GET",
        &format!("/v2/{repo}/manifests/v1"),
        &[("Accept", OCI_MANIFEST)],
        b"",
    );
    assert_eq!((r.status, r.code().as_str()), (404, "MANIFEST_UNKNOWN"));
    let r = http(
        addr,
        "GET",
        &format!("/v2/{repo}/manifests/{manifest_digest}"),
        &[("Accept", OCI_MANIFEST)],
        b"",
    );
    assert_eq!(r.status, 404);
    let r = http(
        addr,
        "DELETE",
        &format!("/v2/{repo}/blobs/{layer_digest}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(
        http(
            addr,
            "HEAD",
            &format!("/v2/{repo}/blobs/{layer_digest}"),
            &[],
            b""
        )
        .status,
        404
    );
    assert_eq!(
        http(
            addr,
            "HEAD",
            &format!("/v2/{repo}/blobs/{config_digest}"),
            &[],
            b""
        )
        .status,
        200
    );
    let r = http(
        addr,
        "DELETE",
        &format!("/v2/{repo}/blobs/{unknown}"),
        &[],
        b"",
    );
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UNKNOWN"));
}

#[test]
fn conformance_cais() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Cais::start(&dir.path().join("root"), &[]);
    conformance(&server.addr, Flavor::Cais);
    // Spec 1.1 "Deleting Tags": DELETE on a tag drops the tag only.
    let repo = "tags/only";
    let config = b"{}".to_vec();
    push_blob(&server.addr, repo, &config);
    let manifest = image_manifest(&config, &[], "");
    for tag in ["a", "b"] {
        assert_eq!(
            http(
                &server.addr,
                "PUT",
                &format!("/v2/{repo}/manifests/{tag}"),
                &[("Content-Type", OCI_MANIFEST)],
                &manifest
            )
            .status,
            201
        );
    }
    assert_eq!(
        http(
            &server.addr,
            "DELETE",
            &format!("/v2/{repo}/manifests/a"),
            &[],
            b""
        )
        .status,
        202
    );
    let r = http(
        &server.addr,
        "GET",
        &format!("/v2/{repo}/tags/list"),
        &[],
        b"",
    );
    assert_eq!(r.json()["tags"], serde_json::json!(["b"]));
    // The access log has one JSON line per request.
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("\"/v2/_catalog\""))
        .expect("catalog request logged");
    let v: serde_json::Value = serde_json::from_str(line).expect("log lines are json");
    assert_eq!(v["status"], 200);
    assert_eq!(v["method"], "GET");
}

#[test]
fn conformance_distribution() {
    if !have(&["docker-registry"]) {
        return;
    }
    let registry = Distribution::start();
    conformance(&registry.addr, Flavor::Distribution);
}

// ---------------------------------------------------------------- real clients

#[test]
fn skopeo_oci_layout_round_trip_inspect_and_delete() {
    if !have(&["skopeo", "busybox", "tar", "gzip"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Cais::start(&dir.path().join("root"), &[]);
    let img = oci_image(dir.path(), "v1", "one");
    let dest = format!("docker://{}/library/busybox:v1", server.addr);
    push_image(&img, &dest);

    let out = dir.path().join("pulled");
    run(skopeo(&["copy", "-q", "--src-tls-verify=false", &dest])
        .arg(format!("oci:{}:v1", out.display())));
    assert_same_blobs(&img, &out);

    let raw = run(skopeo(&["inspect", "--raw", "--tls-verify=false", &dest]));
    assert_eq!(
        sha256(raw.as_bytes()),
        img.manifest,
        "served manifest is the pushed one"
    );
    let info: serde_json::Value =
        serde_json::from_str(&run(skopeo(&["inspect", "--tls-verify=false", &dest])))
            .expect("json");
    assert_eq!(info["Digest"], img.manifest.as_str());
    assert_eq!(info["Labels"]["marker"], "one");
    let tags = run(skopeo(&[
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{}/library/busybox", server.addr),
    ]));
    assert!(tags.contains("\"v1\""), "{tags}");

    run(skopeo(&["delete", "--tls-verify=false", &dest]));
    let err = run_fails(skopeo(&["inspect", "--tls-verify=false", &dest]));
    assert!(err.contains("manifest unknown"), "{err}");
}

#[test]
fn skopeo_docker_archive_round_trip() {
    if !have(&["skopeo", "busybox", "tar", "gzip"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Cais::start(&dir.path().join("root"), &[]);
    let img = oci_image(dir.path(), "v1", "archive");
    let archive = dir.path().join("image.tar");
    run(skopeo(&["copy", "-q"])
        .arg(format!("oci:{}:v1", img.layout.display()))
        .arg(format!("docker-archive:{}:app:v1", archive.display())));
    let dest = format!("docker://{}/archive/app:v1", server.addr);
    run(skopeo(&["copy", "-q", "--dest-tls-verify=false"])
        .arg(format!("docker-archive:{}", archive.display()))
        .arg(&dest));

    // A docker-archive push yields a Docker schema 2 manifest; pulling it
    // into a dir gives back exactly the bytes the registry holds.
    let raw = run(skopeo(&["inspect", "--raw", "--tls-verify=false", &dest]));
    let v: serde_json::Value = serde_json::from_str(&raw).expect("json");
    assert_eq!(
        v["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let out = dir.path().join("dir-out");
    run(skopeo(&["copy", "-q", "--src-tls-verify=false", &dest])
        .arg(format!("dir:{}", out.display())));
    assert_eq!(
        std::fs::read_to_string(out.join("manifest.json")).expect("manifest"),
        raw
    );
    for layer in v["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .chain([&v["config"]])
    {
        let d = layer["digest"].as_str().expect("digest");
        let data = std::fs::read(out.join(&d[7..])).expect("blob");
        assert_eq!(sha256(&data), d);
    }
    // And back out to a docker-archive, which skopeo reads again.
    let back = dir.path().join("back.tar");
    run(skopeo(&["copy", "-q", "--src-tls-verify=false", &dest])
        .arg(format!("docker-archive:{}:app:v1", back.display())));
    let info = run(skopeo(&["inspect"]).arg(format!("docker-archive:{}", back.display())));
    assert!(info.contains("archive"), "{info}");
}

#[test]
fn podman_push_and_pull() {
    if !have(&["podman", "skopeo", "busybox", "tar", "gzip"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Cais::start(&dir.path().join("root"), &[]);
    let img = oci_image(dir.path(), "v1", "podman");
    push_image(&img, &format!("docker://{}/pm/src:v1", server.addr));
    let src = format!("{}/pm/src:v1", server.addr);
    let dst = format!("{}/pm/dst:v2", server.addr);
    run(podman(dir.path()).args(["pull", "-q", "--tls-verify=false", &src]));
    run(podman(dir.path()).args(["tag", &src, &dst]));
    run(podman(dir.path()).args(["push", "-q", "--tls-verify=false", &dst]));
    // podman may recompress layers, but the config (the image id) survives.
    let pushed: serde_json::Value = serde_json::from_str(&run(skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{dst}"),
    ])))
    .expect("json");
    assert_eq!(pushed["config"]["digest"], img.blobs[0].as_str());
    let cfg = run(skopeo(&[
        "inspect",
        "--config",
        "--tls-verify=false",
        &format!("docker://{dst}"),
    ]));
    assert!(cfg.contains("podman"), "{cfg}");
}

// ---------------------------------------------------------------- auth and TLS

fn htpasswd(dir: &Path, users: &[(&str, &str)]) -> PathBuf {
    let path = dir.join("htpasswd");
    for (i, (user, pass)) in users.iter().enumerate() {
        let mut c = Command::new("htpasswd");
        c.arg(if i == 0 { "-Bbc" } else { "-Bb" })
            .arg(&path)
            .args([user, pass]);
        run(&mut c);
    }
    path
}

fn basic(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

#[test]
fn htpasswd_auth_and_acl() {
    if !have(&["htpasswd", "skopeo", "podman", "busybox", "tar", "gzip"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pw = htpasswd(dir.path(), &[("alice", "wonder"), ("bob", "builder")]);
    let acl = dir.path().join("acl");
    std::fs::write(&acl, "alice * *\nbob alice/* pull\n").expect("acl");
    let server = Cais::start(
        &dir.path().join("root"),
        &[
            "--auth",
            "htpasswd",
            "--htpasswd",
            pw.to_str().expect("utf8"),
            "--acl",
            acl.to_str().expect("utf8"),
        ],
    );
    let a = &server.addr;
    let r = http(a, "GET", "/v2/", &[], b"");
    assert_eq!((r.status, r.code().as_str()), (401, "UNAUTHORIZED"));
    assert!(r
        .header("WWW-Authenticate")
        .is_some_and(|h| h.starts_with("Basic")));
    let r = http(
        a,
        "GET",
        "/v2/",
        &[("Authorization", &basic("alice", "wrong"))],
        b"",
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        http(
            a,
            "GET",
            "/v2/",
            &[("Authorization", &basic("alice", "wonder"))],
            b""
        )
        .status,
        200
    );

    let img = oci_image(dir.path(), "v1", "auth");
    let dest = format!("docker://{a}/alice/app:v1");
    let err = run_fails(
        skopeo(&["copy", "-q", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:v1", img.layout.display()))
            .arg(&dest),
    );
    assert!(err.contains("nauthorized") || err.contains("401"), "{err}");
    run(skopeo(&[
        "copy",
        "-q",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:wonder",
    ])
    .arg(format!("oci:{}:v1", img.layout.display()))
    .arg(&dest));
    // bob may pull alice/* but not push: DENIED.
    let out = dir.path().join("bob-pull");
    run(skopeo(&[
        "copy",
        "-q",
        "--src-tls-verify=false",
        "--src-creds",
        "bob:builder",
        &dest,
    ])
    .arg(format!("oci:{}:v1", out.display())));
    assert_same_blobs(&img, &out);
    let r = http(
        a,
        "POST",
        "/v2/alice/app/blobs/uploads/",
        &[("Authorization", &basic("bob", "builder"))],
        b"",
    );
    assert_eq!((r.status, r.code().as_str()), (403, "DENIED"), "{r:?}");
    let r = http(
        a,
        "GET",
        "/v2/_catalog",
        &[("Authorization", &basic("bob", "builder"))],
        b"",
    );
    assert_eq!(r.status, 403);

    // podman with credentials.
    run(podman(dir.path()).args([
        "pull",
        "-q",
        "--tls-verify=false",
        "--creds",
        "bob:builder",
        &format!("{a}/alice/app:v1"),
    ]));
}

#[test]
fn token_auth_scopes() {
    if !have(&["htpasswd", "skopeo", "busybox", "tar", "gzip"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pw = htpasswd(dir.path(), &[("alice", "wonder"), ("bob", "builder")]);
    let acl = dir.path().join("acl");
    std::fs::write(&acl, "alice * *\nbob bob/* pull,push\n").expect("acl");
    let server = Cais::start(
        &dir.path().join("root"),
        &[
            "--auth",
            "token",
            "--htpasswd",
            pw.to_str().expect("utf8"),
            "--acl",
            acl.to_str().expect("utf8"),
        ],
    );
    let a = &server.addr;
    let r = http(a, "GET", "/v2/alice/app/tags/list", &[], b"");
    assert_eq!((r.status, r.code().as_str()), (401, "UNAUTHORIZED"));
    let challenge = r.header("WWW-Authenticate").expect("challenge");
    assert!(
        challenge.starts_with("Bearer realm=\"http://"),
        "{challenge}"
    );
    assert!(
        challenge.contains("scope=\"repository:alice/app:pull\""),
        "{challenge}"
    );
    assert_eq!(
        http(
            a,
            "GET",
            "/token?scope=repository:bob/x:pull",
            &[("Authorization", &basic("bob", "nope"))],
            b""
        )
        .status,
        401
    );

    let token = |user: &str, pass: &str, scope: &str| -> String {
        let r = http(
            a,
            "GET",
            &format!("/token?service=cais&scope={scope}"),
            &[("Authorization", &basic(user, pass))],
            b"",
        );
        assert_eq!(r.status, 200, "{r:?}");
        r.json()["token"].as_str().expect("token").to_owned()
    };
    let img = oci_image(dir.path(), "v1", "token");
    run(skopeo(&[
        "copy",
        "-q",
        "--dest-tls-verify=false",
        "--dest-creds",
        "bob:builder",
    ])
    .arg(format!("oci:{}:v1", img.layout.display()))
    .arg(format!("docker://{a}/bob/app:v1")));
    let t = format!(
        "Bearer {}",
        token("bob", "builder", "repository:bob/app:pull")
    );
    assert_eq!(
        http(
            a,
            "GET",
            "/v2/bob/app/manifests/v1",
            &[("Authorization", &t), ("Accept", OCI_MANIFEST)],
            b""
        )
        .status,
        200
    );
    // The same token on another repository: 401 insufficient_scope.
    let r = http(
        a,
        "GET",
        "/v2/alice/app/manifests/v1",
        &[("Authorization", &t)],
        b"",
    );
    assert_eq!((r.status, r.code().as_str()), (401, "UNAUTHORIZED"));
    assert!(r
        .header("WWW-Authenticate")
        .is_some_and(|h| h.contains("insufficient_scope")));
    // A pull-only token cannot push.
    let r = http(
        a,
        "POST",
        "/v2/bob/app/blobs/uploads/",
        &[("Authorization", &t)],
        b"",
    );
    assert_eq!(r.status, 401);
    // bob asking for alice's repository gets a token without it.
    let t = format!(
        "Bearer {}",
        token("bob", "builder", "repository:alice/app:pull,push")
    );
    assert_eq!(
        http(
            a,
            "POST",
            "/v2/alice/app/blobs/uploads/",
            &[("Authorization", &t)],
            b""
        )
        .status,
        401
    );
    let err = run_fails(
        skopeo(&[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            "--dest-creds",
            "bob:builder",
        ])
        .arg(format!("oci:{}:v1", img.layout.display()))
        .arg(format!("docker://{a}/alice/app:v1")),
    );
    assert!(!err.is_empty());
    assert_eq!(
        std::fs::read_dir(server.root.join("repositories"))
            .expect("dir")
            .count(),
        1,
        "nothing stored for alice"
    );
    // Mounting needs pull on the source: alice's blob cannot be mounted by
    // bob (the registry opens an ordinary upload instead), alice can.
    let alice = format!(
        "Bearer {}",
        token("alice", "wonder", "repository:alice/src:pull,push")
    );
    let secret = b"alice's layer";
    let digest = sha256(secret);
    let r = http(
        a,
        "POST",
        &format!("/v2/alice/src/blobs/uploads/?digest={digest}"),
        &[("Authorization", &alice)],
        secret,
    );
    assert_eq!(r.status, 201, "{r:?}");
    let scopes = "repository:bob/stolen:pull,push&scope=repository:alice/src:pull";
    let t = format!("Bearer {}", token("bob", "builder", scopes));
    let r = http(
        a,
        "POST",
        &format!("/v2/bob/stolen/blobs/uploads/?mount={digest}&from=alice/src"),
        &[("Authorization", &t)],
        b"",
    );
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(
        http(
            a,
            "HEAD",
            &format!("/v2/bob/stolen/blobs/{digest}"),
            &[("Authorization", &t)],
            b""
        )
        .status,
        404
    );
    let t = format!(
        "Bearer {}",
        token(
            "alice",
            "wonder",
            "repository:alice/copy:pull,push&scope=repository:alice/src:pull"
        )
    );
    let r = http(
        a,
        "POST",
        &format!("/v2/alice/copy/blobs/uploads/?mount={digest}&from=alice/src"),
        &[("Authorization", &t)],
        b"",
    );
    assert_eq!(r.status, 201, "{r:?}");
    // A forged token is anonymous.
    let r = http(
        a,
        "GET",
        "/v2/bob/app/tags/list",
        &[("Authorization", "Bearer eyJzdWIiOiJib2IifQ.AAAA")],
        b"",
    );
    assert_eq!(r.status, 401);
}

/// Basic-auth answers both implementations must give: UNAUTHORIZED with a
/// Basic challenge without or with wrong credentials, success with right ones.
fn auth_conformance(addr: &str, user: &str, pass: &str) {
    let good = basic(user, pass);
    let bad = basic(user, "wrong");
    for (path, method) in [
        ("/v2/", "GET"),
        ("/v2/auth/app/tags/list", "GET"),
        ("/v2/auth/app/blobs/uploads/", "POST"),
    ] {
        for headers in [vec![], vec![("Authorization", bad.as_str())]] {
            let r = http(addr, method, path, &headers, b"");
            assert_eq!(
                (r.status, r.code().as_str()),
                (401, "UNAUTHORIZED"),
                "{method} {path}: {r:?}"
            );
            assert!(
                r.header("WWW-Authenticate")
                    .is_some_and(|h| h.starts_with("Basic realm=")),
                "{r:?}"
            );
        }
    }
    assert_eq!(
        http(addr, "GET", "/v2/", &[("Authorization", &good)], b"").status,
        200
    );
    let data = b"authenticated content";
    let digest = sha256(data);
    let r = http(
        addr,
        "POST",
        "/v2/auth/app/blobs/uploads/",
        &[("Authorization", &good)],
        b"",
    );
    assert_eq!(r.status, 202, "{r:?}");
    let r = http(
        addr,
        "PUT",
        &location(&r, &format!("digest={digest}")),
        &[
            ("Authorization", &good),
            ("Content-Type", "application/octet-stream"),
        ],
        data,
    );
    assert_eq!(r.status, 201, "{r:?}");
    let path = format!("/v2/auth/app/blobs/{digest}");
    assert_eq!(http(addr, "HEAD", &path, &[], b"").status, 401);
    assert!(http(addr, "GET", &path, &[("Authorization", &good)], b"").body == data);
}

#[test]
fn auth_conformance_cais() {
    if !have(&["htpasswd"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pw = htpasswd(dir.path(), &[("carol", "s3cret")]);
    let server = Cais::start(
        &dir.path().join("root"),
        &[
            "--auth",
            "htpasswd",
            "--htpasswd",
            pw.to_str().expect("utf8"),
        ],
    );
    auth_conformance(&server.addr, "carol", "s3cret");
}

#[test]
fn auth_conformance_distribution() {
    if !have(&["htpasswd", "docker-registry"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pw = htpasswd(dir.path(), &[("carol", "s3cret")]);
    let registry = Distribution::start_with(&format!(
        "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
        pw.display()
    ));
    auth_conformance(&registry.addr, "carol", "s3cret");
}

fn make_cert(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).expect("mkdir");
    let cert = dir.join("server.crt");
    let key = dir.join("server.key");
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null()));
    // containers/image trusts `*.crt` files of a cert dir as CAs.
    std::fs::copy(&cert, certs.join("ca.crt")).expect("copy");
    (cert, key, certs)
}

#[test]
fn tls_with_token_auth_skopeo_and_podman() {
    if !have(&[
        "openssl", "htpasswd", "skopeo", "podman", "busybox", "tar", "gzip",
    ]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key, certs) = make_cert(dir.path());
    let pw = htpasswd(dir.path(), &[("alice", "wonder")]);
    let server = Cais::start(
        &dir.path().join("root"),
        &[
            "--tls-cert",
            cert.to_str().expect("utf8"),
            "--tls-key",
            key.to_str().expect("utf8"),
            "--auth",
            "token",
            "--htpasswd",
            pw.to_str().expect("utf8"),
        ],
    );
    let img = oci_image(dir.path(), "v1", "tls");
    let dest = format!("docker://{}/secure/app:v1", server.addr);
    let certs = certs.to_str().expect("utf8");
    // Verification on, trusting our CA: works. Without the CA: refused.
    let err = run_fails(
        skopeo(&["copy", "-q", "--dest-creds", "alice:wonder"])
            .arg(format!("oci:{}:v1", img.layout.display()))
            .arg(&dest),
    );
    assert!(err.contains("certificate"), "{err}");
    run(skopeo(&[
        "copy",
        "-q",
        "--dest-cert-dir",
        certs,
        "--dest-creds",
        "alice:wonder",
    ])
    .arg(format!("oci:{}:v1", img.layout.display()))
    .arg(&dest));
    let out = dir.path().join("pulled");
    run(skopeo(&[
        "copy",
        "-q",
        "--src-cert-dir",
        certs,
        "--src-creds",
        "alice:wonder",
        &dest,
    ])
    .arg(format!("oci:{}:v1", out.display())));
    assert_same_blobs(&img, &out);
    run(podman(dir.path()).args([
        "pull",
        "-q",
        "--cert-dir",
        certs,
        "--creds",
        "alice:wonder",
        &format!("{}/secure/app:v1", server.addr),
    ]));
    let tag = format!("{}/secure/again:v2", server.addr);
    run(podman(dir.path()).args(["tag", &format!("{}/secure/app:v1", server.addr), &tag]));
    run(podman(dir.path()).args([
        "push",
        "-q",
        "--cert-dir",
        certs,
        "--creds",
        "alice:wonder",
        &tag,
    ]));
    let info = run(skopeo(&[
        "inspect",
        "--cert-dir",
        certs,
        "--creds",
        "alice:wonder",
        &format!("docker://{tag}"),
    ]));
    assert!(info.contains("\"v2\""), "{info}");
}

// ---------------------------------------------------------------- bad input

#[test]
fn bad_input_is_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let server = Cais::start(&root, &["--max-blob-bytes", "1000000"]);
    let a = &server.addr;
    // Path tricks never reach the file system.
    for path in [
        "/v2/../../etc/tags/list",
        "/v2/a/%2e%2e/%2e%2e/etc/tags/list",
        "/v2/a/../b/blobs/uploads/",
        "/v2//abs/tags/list",
        "/v2/a/_layers/tags/list",
    ] {
        let r = http(a, "POST", path, &[], b"");
        assert!(matches!(r.status, 400 | 404 | 405), "{path}: {r:?}");
        if r.status == 400 {
            assert_eq!(r.code(), "NAME_INVALID", "{path}");
        }
    }
    let r = http(a, "GET", "/v2/ok/blobs/uploads/..%2f..%2fetc", &[], b"");
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UPLOAD_UNKNOWN"));
    // Oversized manifest: 413 before it is read in full.
    let huge = vec![b' '; 5 * 1024 * 1024];
    let r = http(
        a,
        "PUT",
        "/v2/ok/manifests/big",
        &[("Content-Type", OCI_MANIFEST)],
        &huge,
    );
    assert_eq!((r.status, r.code().as_str()), (413, "SIZE_INVALID"));
    // Oversized blob: 413 and the upload is gone.
    let blob = vec![7u8; 1_500_000];
    let r = http(
        a,
        "POST",
        &format!("/v2/ok/blobs/uploads/?digest={}", sha256(&blob)),
        &[],
        &blob,
    );
    assert_eq!(r.status, 413, "{r:?}");
    // Manifest with a schema 1 / wrong media type / bad descriptor digest.
    for body in [
        r#"{"schemaVersion":1,"name":"ok","tag":"x","fsLayers":[]}"#.to_owned(),
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"digest":"sha256:12","size":1}},"layers":[]}}"#
        ),
    ] {
        let r = http(
            a,
            "PUT",
            "/v2/ok/manifests/x",
            &[("Content-Type", OCI_MANIFEST)],
            body.as_bytes(),
        );
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "MANIFEST_INVALID"),
            "{body}"
        );
    }
    let r = http(
        a,
        "PUT",
        "/v2/ok/manifests/bad:tag",
        &[("Content-Type", OCI_MANIFEST)],
        b"{}",
    );
    assert_eq!(r.status, 400);
    // sha512 is a valid digest, but storage keeps sha256 content only: it
    // is refused wherever it enters, as a digest or inside a manifest.
    let d512 = format!("sha512:{}", "a".repeat(128));
    for (method, path) in [
        ("GET", format!("/v2/ok/blobs/{d512}")),
        ("POST", format!("/v2/ok/blobs/uploads/?digest={d512}")),
        ("GET", format!("/v2/ok/manifests/{d512}")),
        ("PUT", format!("/v2/ok/manifests/{d512}")),
        ("DELETE", format!("/v2/ok/manifests/{d512}")),
    ] {
        let r = http(a, method, &path, &[("Content-Type", OCI_MANIFEST)], b"{}");
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "DIGEST_INVALID"),
            "{method} {path}: {r:?}"
        );
    }
    // Annotation values are strings (image-spec annotations.md). Were these
    // not refused, the answer would be MANIFEST_BLOB_UNKNOWN: the
    // repository holds no config.
    let config = sha256(b"{}");
    for (body, why) in [
        (
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"x","digest":"{d512}","size":2}},"layers":[]}}"#
            ),
            "sha512",
        ),
        (
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"x","digest":"{config}","size":2}},"layers":[],"annotations":{{"n":1}}}}"#
            ),
            "expected a string",
        ),
    ] {
        let r = http(
            a,
            "PUT",
            "/v2/ok/manifests/x",
            &[("Content-Type", OCI_MANIFEST)],
            body.as_bytes(),
        );
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "MANIFEST_INVALID"),
            "{body}: {r:?}"
        );
        let message = r.json()["errors"][0]["message"].to_string();
        assert!(message.contains(why), "{message}");
    }
    // Truncated monolithic upload: the body ends before its digest matches.
    let data = b"0123456789".repeat(1000);
    let r = http(
        a,
        "POST",
        &format!("/v2/ok/blobs/uploads/?digest={}", sha256(&data)),
        &[],
        &data[..5000],
    );
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    // A single-POST upload whose connection drops mid-body.
    let s = truncated(
        "POST",
        a,
        &format!("/v2/ok/blobs/uploads/?digest={}", sha256(&data)),
        data.len(),
        &data[..4000],
    );
    s.shutdown(Shutdown::Write).expect("shutdown");
    let _ = read_to_eof(s);
    // Nothing of all that was stored.
    let blobs: Vec<_> = walk(&root.join("blobs"));
    assert!(blobs.is_empty(), "blobs stored: {blobs:?}");
    assert!(
        walk(&root.join("uploads")).is_empty(),
        "uploads left behind"
    );
    assert!(!dir.path().join("etc").exists());
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// Sends a PATCH whose body stops early, leaving the connection open.
fn truncated_patch(addr: &str, path: &str, declared: usize, data: &[u8]) -> TcpStream {
    truncated("PATCH", addr, path, declared, data)
}

/// Sends a request whose body stops after `data` though `declared` bytes
/// were announced.
fn truncated(method: &str, addr: &str, path: &str, declared: usize, data: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).expect("write");
    s.write_all(data).expect("write");
    s.flush().expect("flush");
    s
}

fn range_end(r: &Resp) -> usize {
    let range = r.header("Range").expect("Range");
    range
        .split('-')
        .nth(1)
        .and_then(|e| e.parse::<usize>().ok())
        .expect("range end")
        + 1
}

#[test]
fn truncated_chunk_keeps_its_prefix_and_the_upload_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Cais::start(&dir.path().join("root"), &[]);
    let a = &server.addr;
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();
    let digest = sha256(&data);
    let r = http(a, "POST", "/v2/t/blobs/uploads/", &[], b"");
    let loc = location(&r, "");
    let s = truncated_patch(a, &loc, data.len(), &data[..1_200_000]);
    s.shutdown(Shutdown::Write).expect("shutdown");
    let _ = read_to_eof(s);
    let r = http(a, "GET", &loc, &[], b"");
    assert_eq!(r.status, 204);
    let have = range_end(&r);
    assert!(have <= 1_200_000, "offset {have} beyond what was sent");
    assert_eq!(
        http(a, "HEAD", &format!("/v2/t/blobs/{digest}"), &[], b"").status,
        404,
        "no partial blob visible"
    );
    let r = http(
        a,
        "PATCH",
        &loc,
        &[("Content-Range", &format!("{have}-{}", data.len() - 1))],
        &data[have..],
    );
    assert_eq!(r.status, 202, "{r:?}");
    let r = http(
        a,
        "PUT",
        &location(&r, &format!("digest={digest}")),
        &[],
        b"",
    );
    assert_eq!(r.status, 201, "{r:?}");
    assert!(http(a, "GET", &format!("/v2/t/blobs/{digest}"), &[], b"").body == data);
}

fn read_to_eof(mut s: TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut v = Vec::new();
    let _ = s.read_to_end(&mut v);
    v
}

#[test]
fn sigkill_during_upload_leaves_no_blob_and_the_upload_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let data: Vec<u8> = (0..8_000_000u32)
        .map(|i| (i.wrapping_mul(31) % 256) as u8)
        .collect();
    let digest = sha256(&data);
    let loc;
    {
        let mut server = Cais::start(&root, &[]);
        let r = http(&server.addr, "POST", "/v2/k/blobs/uploads/", &[], b"");
        loc = location(&r, "");
        let _s = truncated_patch(&server.addr, &loc, data.len(), &data[..3_000_000]);
        std::thread::sleep(Duration::from_millis(300));
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("wait");
    }
    let server = Cais::start(&root, &[]);
    let a = &server.addr;
    assert_eq!(
        http(a, "HEAD", &format!("/v2/k/blobs/{digest}"), &[], b"").status,
        404
    );
    assert!(walk(&root.join("blobs")).is_empty(), "no blob stored");
    // The upload survived the crash with a correct prefix: resume it.
    let r = http(a, "GET", &loc, &[], b"");
    assert_eq!(r.status, 204, "{r:?}");
    let have = if r.header("Range") == Some("0-0") {
        0
    } else {
        range_end(&r)
    };
    assert!(have <= 3_000_000);
    let r = http(
        a,
        "PATCH",
        &loc,
        &[("Content-Range", &format!("{have}-{}", data.len() - 1))],
        &data[have..],
    );
    assert_eq!(r.status, 202, "{r:?}");
    let r = http(
        a,
        "PUT",
        &location(&r, &format!("digest={digest}")),
        &[],
        b"",
    );
    assert_eq!(r.status, 201, "{r:?}");
    assert!(http(a, "GET", &format!("/v2/k/blobs/{digest}"), &[], b"").body == data);
    // A fresh upload of the same content works too.
    assert_eq!(push_blob(a, "k2", &data), digest);
}

// ---------------------------------------------------------------- gc and shutdown

fn push_small_image(
    a: &str,
    repo: &str,
    tag: &str,
    shared: &[u8],
    unique: &[u8],
) -> (String, String) {
    let config = format!("{{\"tag\":\"{tag}\"}}").into_bytes();
    push_blob(a, repo, &config);
    push_blob(a, repo, shared);
    let unique_digest = push_blob(a, repo, unique);
    let manifest = image_manifest(&config, &[shared, unique], "");
    let r = http(
        a,
        "PUT",
        &format!("/v2/{repo}/manifests/{tag}"),
        &[("Content-Type", OCI_MANIFEST)],
        &manifest,
    );
    assert_eq!(r.status, 201, "{r:?}");
    (sha256(&manifest), unique_digest)
}

#[test]
fn offline_gc_deletes_only_unreferenced_blobs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let shared = vec![1u8; 10_000];
    let (keep_unique, drop_unique, drop_manifest);
    {
        let server = Cais::start(&root, &[]);
        let a = &server.addr;
        keep_unique = push_small_image(a, "keep", "v1", &shared, b"keep me").1;
        let (m, u) = push_small_image(a, "drop", "v1", &shared, b"drop me");
        drop_manifest = m;
        drop_unique = u;
        assert_eq!(
            http(
                a,
                "DELETE",
                &format!("/v2/drop/manifests/{drop_manifest}"),
                &[],
                b""
            )
            .status,
            202
        );
        // While the server runs, the offline collector refuses the root.
        let out = Command::new(env!("CARGO_BIN_EXE_cais"))
            .args(["registry", "gc", "--root"])
            .arg(&root)
            .output()
            .expect("gc");
        assert!(!out.status.success(), "gc must refuse a root in use");
    }
    let dry = run(Command::new(env!("CARGO_BIN_EXE_cais"))
        .args(["registry", "gc", "--dry-run", "--root"])
        .arg(&root));
    assert!(dry.contains(&drop_unique), "{dry}");
    let out = run(Command::new(env!("CARGO_BIN_EXE_cais"))
        .args(["registry", "gc", "--root"])
        .arg(&root));
    assert!(out.contains(&format!("deleted {drop_unique}")), "{out}");
    assert!(out.contains(&format!("deleted {drop_manifest}")), "{out}");
    assert!(!out.contains(&keep_unique));
    assert!(!out.contains(&sha256(&shared)), "shared layer kept");
    let server = Cais::start(&root, &[]);
    let a = &server.addr;
    assert_eq!(
        http(
            a,
            "GET",
            "/v2/keep/manifests/v1",
            &[("Accept", OCI_MANIFEST)],
            b""
        )
        .status,
        200
    );
    assert!(
        http(
            a,
            "GET",
            &format!("/v2/keep/blobs/{}", sha256(&shared)),
            &[],
            b""
        )
        .body
            == shared
    );
    assert_eq!(
        http(
            a,
            "HEAD",
            &format!("/v2/drop/blobs/{drop_unique}"),
            &[],
            b""
        )
        .status,
        404
    );
}

#[test]
fn online_gc_collects_and_never_races_pushes() {
    if !have(&["skopeo", "busybox", "tar", "gzip"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // Grace 0: collect garbage at once (the race part relies on the live set).
    let server = Cais::start(&dir.path().join("root"), &["--gc-grace", "0"]);
    let a = server.addr.clone();
    let shared = vec![2u8; 10_000];
    let (m, drop_unique) = push_small_image(&a, "drop", "v1", &shared, b"drop me");
    let keep = push_small_image(&a, "keep", "v1", &shared, b"keep").1;
    assert_eq!(
        http(&a, "DELETE", &format!("/v2/drop/manifests/{m}"), &[], b"").status,
        202
    );
    server.signal("USR1");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log().contains("\"message\":\"gc\"") {
        assert!(Instant::now() < deadline, "no gc ran: {}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        http(
            &a,
            "HEAD",
            &format!("/v2/drop/blobs/{drop_unique}"),
            &[],
            b""
        )
        .status,
        404
    );
    assert_eq!(
        http(&a, "HEAD", &format!("/v2/keep/blobs/{keep}"), &[], b"").status,
        200
    );

    // Pushes while collections run back to back: every push lands intact.
    // Manifests commit under the collector's lock, blobs committed during a
    // collection are live, and blobs linked within the grace period (30 s
    // here, far longer than a push) are kept for the manifest on its way.
    drop(server);
    let server = Cais::start(&dir.path().join("root2"), &["--gc-grace", "30"]);
    let a = server.addr.clone();
    let images: Vec<Image> = (0..3)
        .map(|i| oci_image(dir.path(), &format!("c{i}"), &format!("concurrent {i}")))
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pid = server.child.id();
    let gc_loop = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = Command::new("kill")
                    .args(["-USR1", &pid.to_string()])
                    .status();
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    std::thread::scope(|s| {
        for img in &images {
            let a = &a;
            s.spawn(move || push_image(img, &format!("docker://{a}/race/{}:v1", img.tag)));
        }
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    gc_loop.join().expect("gc loop");
    server.signal("USR1");
    std::thread::sleep(Duration::from_millis(500));
    for img in &images {
        let out = dir.path().join(format!("out-{}", img.tag));
        run(skopeo(&[
            "copy",
            "-q",
            "--src-tls-verify=false",
            &format!("docker://{a}/race/{}:v1", img.tag),
        ])
        .arg(format!("oci:{}:v1", out.display())));
        assert_same_blobs(img, &out);
    }
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Cais::start(&dir.path().join("root"), &[]);
    assert_eq!(http(&server.addr, "GET", "/v2/", &[], b"").status, 200);
    server.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(Instant::now() < deadline, "server did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(server.log().contains("shutting down"));
    assert!(TcpStream::connect(&server.addr).is_err(), "listener closed");
}

#[test]
fn stalled_clients_time_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Cais::start(&dir.path().join("root"), &["--timeout", "1"]);
    let a = &server.addr;
    // Headers that never finish: the connection is closed.
    let mut s = TcpStream::connect(a).expect("connect");
    s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    let started = Instant::now();
    let _ = read_to_eof(s);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "slow headers held the connection"
    );
    // A body that stalls: the request fails, the received prefix stays.
    let r = http(a, "POST", "/v2/slow/blobs/uploads/", &[], b"");
    let loc = location(&r, "");
    let s = truncated_patch(a, &loc, 1000, &[5u8; 10]);
    let r = read_response(s, false);
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "BLOB_UPLOAD_INVALID"),
        "{r:?}"
    );
    let r = http(a, "GET", &loc, &[], b"");
    assert_eq!(r.header("Range"), Some("0-9"));
}
