//! End-to-end tests of `cais pull`, `cais push`, `cais login` and
//! `cais logout` against real registries on loopback: Debian's
//! `docker-registry` (Distribution) without auth, with htpasswd Basic auth
//! and with TLS, and `cais registry serve` with bearer tokens. Images are
//! built offline as OCI layouts and put in the registries by `skopeo copy`;
//! manifests pushed back are compared byte for byte with `skopeo inspect
//! --raw`. Bad inputs come from a small HTTP server in this file (a
//! registry that lies) or from tampering with Distribution's storage.
//!
//! Tools: docker-registry, skopeo, htpasswd, openssl, busybox-static, tar,
//! gzip. A missing one skips a test, or fails it when `CI` is set.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cais_image::ImageStore;
use cais_testkit::registry::{
    big_image, busybox_image, htpasswd, make_ca_and_cert, require_tools, sha256, skopeo_push,
    skopeo_raw, whiteout_image, Distribution, DistributionConfig, OciImage,
};

// ---------------------------------------------------------------- helpers

/// A scratch area: a data root and a docker config directory of its own.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::Builder::new()
                .prefix("cais-transfer-")
                .tempdir()
                .expect("tempdir"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn data_root(&self) -> PathBuf {
        self.path().join("store")
    }

    fn docker_config(&self) -> PathBuf {
        self.path().join("docker-config")
    }

    fn cais(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cais"));
        c.args(args)
            .env("CAIS_DATA_ROOT", self.data_root())
            .env("DOCKER_CONFIG", self.docker_config())
            .stdin(Stdio::null());
        c
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.cais(args).output().expect("run cais");
        assert!(
            out.status.success(),
            "cais {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs a command that must fail; returns its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.cais(args).output().expect("run cais");
        assert!(
            !out.status.success(),
            "cais {args:?} should have failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(1), "documented exit code 1");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn store(&self) -> ImageStore {
        ImageStore::open(self.data_root()).expect("open store")
    }

    /// Blobs in the store, sorted.
    fn blobs(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .store()
            .content()
            .list()
            .expect("list blobs")
            .iter()
            .map(ToString::to_string)
            .collect();
        v.sort();
        v
    }

    fn image_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .store()
            .list()
            .expect("list images")
            .into_iter()
            .flat_map(|r| r.tags)
            .collect();
        v.sort();
        v
    }

    /// Every blob re-hashes to its name and every image has what it needs.
    fn assert_consistent(&self) {
        let report = self.store().verify().expect("verify");
        assert!(report.is_consistent(), "store inconsistent: {report:?}");
        // Nothing half-written is visible under blobs/.
        for b in self.blobs() {
            let data = self
                .store()
                .content()
                .read(&b.parse().expect("digest"))
                .expect("read blob");
            assert_eq!(sha256(&data), b, "blob does not hash to its name");
        }
    }
}

fn original_manifest(img: &OciImage) -> Vec<u8> {
    std::fs::read(img.layout.join("blobs/sha256").join(&img.manifest[7..])).expect("manifest")
}

fn snapshot_fs(env: &Env, diff_id: &str) -> PathBuf {
    env.data_root()
        .join("snapshots")
        .join(diff_id.replace(':', "-"))
        .join("fs")
}

fn diff_ids(img: &OciImage) -> Vec<String> {
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(img.layout.join("blobs/sha256").join(&img.blobs[0][7..])).expect("config"),
    )
    .expect("config json");
    config["rootfs"]["diff_ids"]
        .as_array()
        .expect("diff_ids")
        .iter()
        .map(|d| d.as_str().expect("str").to_owned())
        .collect()
}

fn tools(extra: &[&str]) -> bool {
    let mut all = vec!["docker-registry", "skopeo", "tar", "gzip", "sha256sum"];
    all.extend_from_slice(extra);
    require_tools(&all)
        && cais_testkit::require("busybox-static", Path::new("/bin/busybox").exists())
}

// ---------------------------------------------------------------- no auth

#[test]
fn pull_push_round_trip_with_whiteouts_chunks_and_mounts() {
    if !tools(&[]) {
        return;
    }
    let env = Env::new();
    let reg = Distribution::start(&DistributionConfig::default());
    let bb = busybox_image(env.path(), "1.0");
    let wh = whiteout_image(env.path(), "v1");
    skopeo_push(
        &bb,
        &format!("{}/lib/busybox:1.0", reg.addr),
        &["--dest-tls-verify=false"],
    );
    skopeo_push(
        &wh,
        &format!("{}/lib/layers:v1", reg.addr),
        &["--dest-tls-verify=false"],
    );

    let bb_ref = format!("{}/lib/busybox:1.0", reg.addr);
    let out = env.ok(&["pull", &bb_ref]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), bb_ref);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Pull complete"), "{stderr}");
    assert!(
        stderr.contains(&format!("Digest: {}", bb.manifest)),
        "{stderr}"
    );
    let wh_ref = format!("{}/lib/layers:v1", reg.addr);
    let out = env.ok(&["pull", &wh_ref]);
    // The busybox layer is shared: fetched once.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Already exists"),
        "shared layer fetched again: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.image_names(), vec![bb_ref.clone(), wh_ref.clone()]);
    env.assert_consistent();
    for b in bb
        .blobs
        .iter()
        .chain(&wh.blobs)
        .chain([&bb.manifest, &wh.manifest])
    {
        assert!(env.blobs().contains(b), "{b} missing from the store");
    }

    // Layers unpacked, whiteouts as overlayfs expects them.
    let ids = diff_ids(&wh);
    let base = snapshot_fs(&env, &ids[0]);
    assert!(base.join("bin/busybox").is_file());
    assert_eq!(
        std::fs::read_link(base.join("bin/sh")).expect("sh link"),
        Path::new("busybox")
    );
    let top = snapshot_fs(&env, &ids[2]);
    let gone = std::fs::symlink_metadata(top.join("etc/gone")).expect("whiteout");
    assert!(
        gone.file_type().is_char_device() && gone.rdev() == 0,
        "whiteout is 0:0 char dev"
    );
    assert!(!top.join("etc/.wh.gone").exists());
    assert_eq!(
        std::fs::read_to_string(top.join("data/new")).expect("new"),
        "new\n"
    );
    let mut opaque = [0u8; 8];
    let path = std::ffi::CString::new(top.join("data").as_os_str().as_encoded_bytes()).expect("c");
    // SAFETY: valid C strings and a buffer of the given length.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            opaque.as_mut_ptr().cast(),
            opaque.len(),
        )
    };
    assert_eq!(n, 1, "opaque xattr on data/");
    assert_eq!(opaque[0], b'y');

    // Push back under new names: monolithic, chunked, and mounted.
    let new_bb = format!("{}/copies/busybox:pushed", reg.addr);
    let out = env.ok(&["push", &bb_ref, &new_bb]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Mounted from another repository"),
        "same-registry push should mount: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&bb.manifest));
    assert_eq!(
        skopeo_raw(&new_bb, &["--tls-verify=false"]),
        original_manifest(&bb),
        "manifest bytes changed on the way"
    );
    // The same image again to the same repository: every blob exists.
    let out = env.ok(&["push", &bb_ref, &new_bb]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Layer already exists"));

    // To another registry: real uploads, in 64 KiB PATCH chunks.
    let other = Distribution::start(&DistributionConfig::default());
    let chunked = format!("{}/chunked/layers:v1", other.addr);
    let out = env.ok(&["push", "--chunk-size", "65536", &wh_ref, &chunked]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Pushed"));
    assert_eq!(
        skopeo_raw(&chunked, &["--tls-verify=false"]),
        original_manifest(&wh)
    );
    let mono = format!("{}/mono/busybox:1", other.addr);
    env.ok(&["push", &bb_ref, &mono]);
    assert_eq!(
        skopeo_raw(&mono, &["--tls-verify=false"]),
        original_manifest(&bb)
    );
    // And what was pushed pulls back into a fresh store, same digest.
    let env2 = Env::new();
    let out = env2.ok(&["pull", &chunked]);
    assert!(String::from_utf8_lossy(&out.stderr).contains(&wh.manifest));
    env2.assert_consistent();

    // Pulling again is a no-op that says so.
    let out = env.ok(&["pull", &bb_ref]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Image is up to date"));
    // By digest too.
    let by_digest = format!("{}/lib/busybox@{}", reg.addr, bb.manifest);
    env2.ok(&["pull", "-q", &by_digest]);
    env2.assert_consistent();
}

#[test]
fn missing_tag_and_repository_are_clear_errors() {
    if !tools(&[]) {
        return;
    }
    let env = Env::new();
    let reg = Distribution::start(&DistributionConfig::default());
    let bb = busybox_image(env.path(), "1.0");
    skopeo_push(
        &bb,
        &format!("{}/lib/busybox:1.0", reg.addr),
        &["--dest-tls-verify=false"],
    );
    let err = env.fails(&["pull", &format!("{}/lib/busybox:nope", reg.addr)]);
    assert!(err.contains("manifest nope not found"), "{err}");
    let err = env.fails(&["pull", &format!("{}/no/such:1", reg.addr)]);
    assert!(err.contains("not found"), "{err}");
    let err = env.fails(&["pull", "a//b"]);
    assert!(err.contains("invalid reference"), "{err}");
    let err = env.fails(&[
        "pull",
        "--platform",
        "linux",
        &format!("{}/lib/busybox:1.0", reg.addr),
    ]);
    assert!(err.contains("os/arch"), "{err}");
    assert!(env.blobs().is_empty(), "a failed pull stored blobs");
    assert!(env.image_names().is_empty());
    env.assert_consistent();
    let err = env.fails(&["push", "never/pulled:1", &format!("{}/x:1", reg.addr)]);
    assert!(err.contains("not found"), "{err}");
}

// ---------------------------------------------------------------- basic auth

#[test]
fn basic_auth_login_pull_push_logout() {
    if !tools(&["htpasswd"]) {
        return;
    }
    let env = Env::new();
    let pw = htpasswd(env.path(), &[("alice", "wonderland")]);
    let reg = Distribution::start(&DistributionConfig {
        htpasswd: Some(pw),
        ..Default::default()
    });
    let bb = busybox_image(env.path(), "1.0");
    skopeo_push(
        &bb,
        &format!("{}/secret/busybox:1.0", reg.addr),
        &[
            "--dest-tls-verify=false",
            "--dest-creds",
            "alice:wonderland",
        ],
    );
    let image = format!("{}/secret/busybox:1.0", reg.addr);
    let err = env.fails(&["pull", &image]);
    assert!(
        err.contains("unauthorized") && err.contains("cais login"),
        "{err}"
    );

    let err = env.fails(&["login", "-u", "alice", "-p", "wrong", &reg.addr]);
    assert!(err.contains("unauthorized"), "{err}");
    assert!(
        !env.docker_config().join("config.json").exists(),
        "a refused login stored credentials"
    );
    let mut login = env.cais(&["login", "-u", "alice", "--password-stdin", &reg.addr]);
    let mut child = login
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn login");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"wonderland\n")
        .expect("write password");
    let out = child.wait_with_output().expect("login");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Login Succeeded"));
    let config_path = env.docker_config().join("config.json");
    let mode = std::fs::metadata(&config_path)
        .expect("config")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "credentials file must be private");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config_path).expect("read")).expect("json");
    use base64::Engine as _;
    assert_eq!(
        config["auths"][&reg.addr]["auth"],
        base64::engine::general_purpose::STANDARD.encode("alice:wonderland")
    );

    env.ok(&["pull", &image]);
    env.assert_consistent();
    let copy = format!("{}/secret/copy:2", reg.addr);
    env.ok(&["push", &image, &copy]);
    assert_eq!(
        skopeo_raw(
            &copy,
            &["--tls-verify=false", "--creds", "alice:wonderland"]
        ),
        original_manifest(&bb)
    );

    let out = env.ok(&["logout", &reg.addr]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Removing login credentials"));
    let env2 = Env::new();
    std::fs::create_dir_all(env2.docker_config()).expect("mkdir");
    std::fs::copy(&config_path, env2.docker_config().join("config.json")).expect("copy");
    let err = env2.fails(&["pull", &image]);
    assert!(
        err.contains("unauthorized"),
        "logout kept the credentials: {err}"
    );
    // A stale wrong password in the file is refused, clearly.
    std::fs::write(
        env2.docker_config().join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            reg.addr,
            base64::engine::general_purpose::STANDARD.encode("alice:stale")
        ),
    )
    .expect("write");
    let err = env2.fails(&["pull", &image]);
    assert!(err.contains("refused the credentials"), "{err}");
    assert!(env2.blobs().is_empty());
    env2.assert_consistent();
}

// ---------------------------------------------------------------- TLS

#[test]
fn tls_registry_with_custom_ca() {
    if !tools(&["openssl"]) {
        return;
    }
    let env = Env::new();
    // 127.0.0.2 is loopback but not one of the hosts trusted without
    // verification (localhost, 127.0.0.1), so TLS is checked for real.
    let ip = "127.0.0.2";
    let (ca, cert, key) = make_ca_and_cert(env.path(), ip);
    let reg = Distribution::start(&DistributionConfig {
        ip: Some(ip.into()),
        tls: Some((cert, key)),
        ..Default::default()
    });
    let certs_dir = env.path().join("certs.d");
    std::fs::create_dir_all(certs_dir.join(&reg.addr)).expect("mkdir");
    std::fs::copy(&ca, certs_dir.join(&reg.addr).join("ca.crt")).expect("copy ca");
    let cert_dir = certs_dir.join(&reg.addr);
    let cert_dir = cert_dir.to_str().expect("utf8");
    let bb = busybox_image(env.path(), "1.0");
    let image = format!("{}/tls/busybox:1.0", reg.addr);
    skopeo_push(&bb, &image, &["--dest-cert-dir", cert_dir]);

    let empty = env.path().join("empty-certs.d");
    let empty = empty.to_str().expect("utf8");
    let err = env.fails(&["pull", "--certs-dir", empty, &image]);
    assert!(
        err.to_lowercase().contains("certificate") || err.contains("UnknownIssuer"),
        "{err}"
    );
    assert!(env.blobs().is_empty());
    env.ok(&[
        "pull",
        "--certs-dir",
        empty,
        "--ca-cert",
        ca.to_str().expect("utf8"),
        &image,
    ]);
    env.assert_consistent();
    let env2 = Env::new();
    env2.ok(&[
        "pull",
        "--certs-dir",
        certs_dir.to_str().expect("utf8"),
        &image,
    ]);
    let copy = format!("{}/tls/copy:1", reg.addr);
    env2.ok(&[
        "push",
        "--certs-dir",
        certs_dir.to_str().expect("utf8"),
        &image,
        &copy,
    ]);
    assert_eq!(
        skopeo_raw(&copy, &["--cert-dir", cert_dir]),
        original_manifest(&bb)
    );
    // --insecure-registry: no verification at all.
    let env3 = Env::new();
    env3.ok(&[
        "pull",
        "--certs-dir",
        empty,
        "--insecure-registry",
        &reg.addr,
        &image,
    ]);
}

// ---------------------------------------------------------------- token auth

/// `cais registry serve` with bearer tokens, killed on drop.
struct CaisRegistry {
    child: std::process::Child,
    addr: String,
}

impl CaisRegistry {
    fn start(root: &Path, extra: &[&str]) -> CaisRegistry {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cais"))
            .args(["registry", "serve", "--addr", "127.0.0.1:0", "--root"])
            .arg(root)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn cais registry");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("address line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected {line:?}"))
            .to_owned();
        CaisRegistry { child, addr }
    }
}

impl Drop for CaisRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn bearer_token_flow_against_cais_registry() {
    if !tools(&["htpasswd"]) {
        return;
    }
    let env = Env::new();
    let pw = htpasswd(env.path(), &[("bob", "builder"), ("eve", "reader")]);
    let acl = env.path().join("acl");
    std::fs::write(&acl, "bob * *\neve * pull\n").expect("acl");
    let reg = CaisRegistry::start(
        &env.path().join("registry-root"),
        &[
            "--auth",
            "token",
            "--htpasswd",
            pw.to_str().expect("utf8"),
            "--acl",
            acl.to_str().expect("utf8"),
        ],
    );
    let wh = whiteout_image(env.path(), "v1");
    let image = format!("{}/team/layers:v1", reg.addr);
    skopeo_push(
        &wh,
        &image,
        &["--dest-tls-verify=false", "--dest-creds", "bob:builder"],
    );

    let err = env.fails(&["pull", &image]);
    assert!(err.contains("unauthorized"), "{err}");
    let err = env.fails(&["login", "-u", "bob", "-p", "nope", &reg.addr]);
    assert!(err.contains("refused the credentials"), "{err}");
    env.ok(&["login", "-u", "bob", "-p", "builder", &reg.addr]);
    env.ok(&["pull", &image]);
    env.assert_consistent();
    let copy = format!("{}/team/copy:v2", reg.addr);
    let out = env.ok(&["push", &image, &copy]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Mounted"));
    assert_eq!(
        skopeo_raw(&copy, &["--tls-verify=false", "--creds", "bob:builder"]),
        original_manifest(&wh)
    );
    // A pull-only user gets tokens without push: pull works, push does not.
    let env2 = Env::new();
    env2.ok(&["login", "-u", "eve", "-p", "reader", &reg.addr]);
    env2.ok(&["pull", &copy]);
    let err = env2.fails(&["push", &copy, &format!("{}/team/eve:1", reg.addr)]);
    assert!(
        err.contains("unauthorized") || err.contains("denied"),
        "{err}"
    );
}

// ---------------------------------------------------------------- bad registries

/// A registry that serves fixed answers: (status, content type, body) by
/// path; `truncate` paths announce their full length but close early.
struct Liar {
    addr: String,
}

#[derive(Clone)]
struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
    /// Bytes actually sent (the Content-Length is the full body's).
    send: Option<usize>,
}

impl Liar {
    fn start(routes: HashMap<String, Answer>) -> Liar {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let routes = Arc::new(routes);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let routes = routes.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                    loop {
                        let mut request = String::new();
                        if reader.read_line(&mut request).unwrap_or(0) == 0 {
                            return;
                        }
                        let mut len = 0usize;
                        loop {
                            let mut h = String::new();
                            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                                return;
                            }
                            if h == "\r\n" {
                                break;
                            }
                            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:")
                            {
                                len = v.trim().parse().unwrap_or(0);
                            }
                        }
                        let mut body = vec![0; len];
                        let _ = reader.read_exact(&mut body);
                        let mut parts = request.split_whitespace();
                        let method = parts.next().unwrap_or("").to_owned();
                        let path = parts.next().unwrap_or("").to_owned();
                        let answer = routes.get(&path).cloned().unwrap_or(Answer {
                            status: 404,
                            content_type: "application/json".into(),
                            body: br#"{"errors":[{"code":"NAME_UNKNOWN","message":"unknown"}]}"#
                                .to_vec(),
                            send: None,
                        });
                        let head = format!(
                            "HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\nDocker-Distribution-API-Version: registry/2.0\r\n\r\n",
                            answer.status,
                            answer.content_type,
                            answer.body.len()
                        );
                        if stream.write_all(head.as_bytes()).is_err() {
                            return;
                        }
                        if method != "HEAD" {
                            let n = answer.send.unwrap_or(answer.body.len());
                            if stream.write_all(&answer.body[..n]).is_err() {
                                return;
                            }
                            if n < answer.body.len() {
                                let _ = stream.shutdown(std::net::Shutdown::Both);
                                return;
                            }
                        }
                    }
                });
            }
        });
        Liar { addr }
    }
}

fn ok_answer(content_type: &str, body: &[u8]) -> Answer {
    Answer {
        status: 200,
        content_type: content_type.into(),
        body: body.to_vec(),
        send: None,
    }
}

/// Routes serving `img` as `repo:tag`, with `edit` applied first.
fn routes_for(img: &OciImage, repo: &str, tag: &str) -> HashMap<String, Answer> {
    let mut routes = HashMap::new();
    routes.insert("/v2/".into(), ok_answer("application/json", b"{}"));
    let m = original_manifest(img);
    routes.insert(
        format!("/v2/{repo}/manifests/{tag}"),
        ok_answer("application/vnd.oci.image.manifest.v1+json", &m),
    );
    for b in &img.blobs {
        let data = std::fs::read(img.layout.join("blobs/sha256").join(&b[7..])).expect("blob");
        routes.insert(
            format!("/v2/{repo}/blobs/{b}"),
            ok_answer("application/octet-stream", &data),
        );
    }
    routes
}

/// Pulls from a lying registry: fails with a message containing `want`,
/// leaving the store empty and consistent.
fn pull_must_fail(routes: HashMap<String, Answer>, image_path: &str, want: &[&str]) {
    let env = Env::new();
    let liar = Liar::start(routes);
    let err = env.fails(&["pull", &format!("{}/{image_path}", liar.addr)]);
    assert!(
        want.iter().any(|w| err.contains(w)),
        "error should mention one of {want:?}: {err}"
    );
    assert!(
        env.blobs().is_empty(),
        "blobs kept after a failed pull: {:?}",
        env.blobs()
    );
    assert!(env.image_names().is_empty());
    let snapshots: Vec<_> = std::fs::read_dir(env.data_root().join("snapshots"))
        .expect("snapshots")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .filter(|n| n != "tmp")
        .collect();
    assert!(snapshots.is_empty(), "snapshots kept: {snapshots:?}");
    let tmp_left = std::fs::read_dir(env.data_root().join("snapshots/tmp"))
        .expect("tmp")
        .count()
        + std::fs::read_dir(env.data_root().join("content/tmp"))
            .expect("tmp")
            .count();
    assert_eq!(tmp_left, 0, "temporary files left behind");
    env.assert_consistent();
}

/// sha512 is the other registered digest algorithm: a manifest naming its
/// config and layer by sha512 pulls, each blob checked with sha512 and
/// stored under its sha512 name; a corrupt one is refused.
#[test]
fn sha512_content_is_pulled_and_checked() {
    if !tools(&[]) {
        return;
    }
    use sha2::Digest as _;
    let sha512 = |data: &[u8]| {
        let d = sha2::Sha512::digest(data);
        format!(
            "sha512:{}",
            d.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
    };
    let work = tempfile::tempdir().expect("tempdir");
    let bb = busybox_image(work.path(), "1.0");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&original_manifest(&bb)).expect("manifest json");
    let mut routes = HashMap::new();
    routes.insert("/v2/".to_owned(), ok_answer("application/json", b"{}"));
    let mut named = Vec::new();
    let layers = manifest["layers"].as_array().expect("layers").len();
    let pointers =
        std::iter::once("/config".to_owned()).chain((0..layers).map(|i| format!("/layers/{i}")));
    for pointer in pointers {
        let desc = manifest.pointer_mut(&pointer).expect("descriptor");
        let old = desc["digest"].as_str().expect("digest").to_owned();
        let data = std::fs::read(bb.layout.join("blobs/sha256").join(&old[7..])).expect("blob");
        let new = sha512(&data);
        routes.insert(
            format!("/v2/x/bb/blobs/{new}"),
            ok_answer("application/octet-stream", &data),
        );
        desc["digest"] = new.clone().into();
        named.push(new);
    }
    let body = serde_json::to_vec(&manifest).expect("manifest");
    routes.insert(
        "/v2/x/bb/manifests/1.0".into(),
        ok_answer("application/vnd.oci.image.manifest.v1+json", &body),
    );

    let env = Env::new();
    let liar = Liar::start(routes.clone());
    env.ok(&["pull", &format!("{}/x/bb:1.0", liar.addr)]);
    assert_eq!(env.image_names(), [format!("{}/x/bb:1.0", liar.addr)]);
    let mut want = named.clone();
    want.push(sha256(&body));
    want.sort();
    assert_eq!(
        env.blobs(),
        want,
        "config and layer by sha512, the manifest by sha256"
    );
    let report = env.store().verify().expect("verify");
    assert!(report.is_consistent(), "store inconsistent: {report:?}");

    // The same bytes under another sha512 name: refused, nothing kept.
    let layer = format!("/v2/x/bb/blobs/{}", named[1]);
    let a = routes.get_mut(&layer).expect("layer route");
    let mid = a.body.len() / 2;
    a.body[mid] ^= 0xff;
    pull_must_fail(routes, "x/bb:1.0", &["does not match digest", "has digest"]);
}

#[test]
fn corrupt_truncated_and_malformed_content_is_refused() {
    if !tools(&[]) {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let bb = busybox_image(work.path(), "1.0");
    let layer = bb.blobs[1].clone();
    let layer_route = format!("/v2/x/bb/blobs/{layer}");

    // Digest mismatch: same size, one byte changed.
    let mut routes = routes_for(&bb, "x/bb", "1.0");
    let a = routes.get_mut(&layer_route).expect("layer route");
    let mid = a.body.len() / 2;
    a.body[mid] ^= 0xff;
    pull_must_fail(routes, "x/bb:1.0", &["does not match digest", "has digest"]);

    // Truncated: the connection closes half way.
    let mut routes = routes_for(&bb, "x/bb", "1.0");
    let a = routes.get_mut(&layer_route).expect("layer route");
    a.send = Some(a.body.len() / 2);
    pull_must_fail(
        routes,
        "x/bb:1.0",
        &["ended after", "closed", "unexpected end", "EOF", "eof"],
    );

    // Too long: more bytes than the descriptor says.
    let mut routes = routes_for(&bb, "x/bb", "1.0");
    routes
        .get_mut(&layer_route)
        .expect("layer")
        .body
        .extend_from_slice(b"extra");
    pull_must_fail(routes, "x/bb:1.0", &["longer than"]);

    // A corrupt config.
    let mut routes = routes_for(&bb, "x/bb", "1.0");
    let cfg_route = format!("/v2/x/bb/blobs/{}", bb.blobs[0]);
    routes.get_mut(&cfg_route).expect("config").body[0] ^= 0x01;
    pull_must_fail(routes, "x/bb:1.0", &["has digest", "does not match"]);

    // Malformed manifest.
    let mut routes = routes_for(&bb, "x/bb", "1.0");
    routes.insert(
        "/v2/x/bb/manifests/1.0".into(),
        ok_answer(
            "application/vnd.oci.image.manifest.v1+json",
            b"{\"schemaVersion\": 2, \"config\": ",
        ),
    );
    pull_must_fail(routes, "x/bb:1.0", &["invalid manifest"]);

    // Unknown manifest media type.
    let mut routes = routes_for(&bb, "x/bb", "1.0");
    let odd = String::from_utf8(original_manifest(&bb))
        .expect("utf8")
        .replace(
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.example.unknown+json",
        );
    routes.insert(
        "/v2/x/bb/manifests/1.0".into(),
        ok_answer("application/vnd.example.unknown+json", odd.as_bytes()),
    );
    pull_must_fail(routes, "x/bb:1.0", &["unsupported media type"]);

    // Unknown layer media type.
    let mut routes = routes_for(&bb, "x/bb", "1.0");
    let odd = String::from_utf8(original_manifest(&bb))
        .expect("utf8")
        .replace(
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "application/vnd.example.layer+lz4",
        );
    routes.insert(
        "/v2/x/bb/manifests/1.0".into(),
        ok_answer("application/vnd.oci.image.manifest.v1+json", odd.as_bytes()),
    );
    pull_must_fail(routes, "x/bb:1.0", &["unsupported media type"]);

    // A manifest that is not the one asked for by digest.
    let mut routes = routes_for(&bb, "x/bb", "1.0");
    let wrong = format!("sha256:{}", "0".repeat(64));
    routes.insert(
        format!("/v2/x/bb/manifests/{wrong}"),
        ok_answer(
            "application/vnd.oci.image.manifest.v1+json",
            &original_manifest(&bb),
        ),
    );
    pull_must_fail(routes, &format!("x/bb@{wrong}"), &["expected"]);

    // A server error.
    let mut routes = routes_for(&bb, "x/bb", "1.0");
    routes.insert(
        "/v2/x/bb/manifests/1.0".into(),
        Answer {
            status: 500,
            content_type: "text/plain".into(),
            body: b"storage on fire".to_vec(),
            send: None,
        },
    );
    pull_must_fail(routes, "x/bb:1.0", &["500", "storage on fire"]);
}

#[test]
fn tampered_distribution_storage_is_detected() {
    if !tools(&[]) {
        return;
    }
    let env = Env::new();
    let reg = Distribution::start(&DistributionConfig::default());
    let bb = busybox_image(env.path(), "1.0");
    skopeo_push(
        &bb,
        &format!("{}/lib/busybox:1.0", reg.addr),
        &["--dest-tls-verify=false"],
    );
    let data = reg.blob_data(&bb.blobs[1]);
    let mut bytes = std::fs::read(&data).expect("stored layer");
    let i = bytes.len() / 3;
    bytes[i] = bytes[i].wrapping_add(1);
    std::fs::write(&data, &bytes).expect("tamper");
    let err = env.fails(&["pull", &format!("{}/lib/busybox:1.0", reg.addr)]);
    assert!(err.contains("does not match digest"), "{err}");
    assert!(env.blobs().is_empty());
    assert!(env.image_names().is_empty());
    env.assert_consistent();
}

// ---------------------------------------------------------------- crash safety

#[test]
fn pull_killed_midway_leaves_no_image_and_the_next_pull_completes() {
    if !tools(&[]) {
        return;
    }
    let env = Env::new();
    let reg = Distribution::start(&DistributionConfig::default());
    let big = big_image(env.path(), "big", 5, 24);
    let image = format!("{}/big/image:1", reg.addr);
    skopeo_push(&big, &image, &["--dest-tls-verify=false"]);
    // Several attempts, killed ever later; each leaves a consistent store
    // with no image, and blobs only whole.
    let mut killed_with_blobs = false;
    for attempt in 0..4 {
        let mut child = env
            .cais(&["pull", "-q", "--jobs", "1", &image])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pull");
        let blobs_dir = env.data_root().join("content/blobs/sha256");
        let before = env.blobs().len();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let n = std::fs::read_dir(&blobs_dir)
                .map(|d| d.count())
                .unwrap_or(0);
            if n > before || Instant::now() > deadline {
                break;
            }
            if child.try_wait().expect("try_wait").is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let finished = child.try_wait().expect("try_wait").is_some();
        // SIGKILL: no destructor, no cleanup.
        let _ = child.kill();
        let _ = child.wait();
        if finished {
            break;
        }
        killed_with_blobs |= env.blobs().len() > before;
        assert!(
            env.image_names().is_empty(),
            "attempt {attempt}: a killed pull left a visible image"
        );
        env.assert_consistent();
    }
    assert!(killed_with_blobs, "no pull was killed after a blob landed");
    let before = env.blobs().len();
    env.ok(&["pull", &image]);
    assert_eq!(env.image_names(), vec![image.clone()]);
    assert!(env.blobs().len() > before);
    env.assert_consistent();
    for id in diff_ids(&big) {
        assert!(
            snapshot_fs(&env, &id).join("random.bin").is_file(),
            "layer {id} unpacked"
        );
    }
}

// ---------------------------------------------------------------- platforms

#[test]
fn multi_platform_index_selects_the_platform() {
    if !tools(&[]) {
        return;
    }
    let env = Env::new();
    let reg = Distribution::start(&DistributionConfig::default());
    let multi = cais_testkit::registry::multi_platform_image(env.path(), "multi");
    let image = format!("{}/multi/busybox:1", reg.addr);
    skopeo_push(&multi, &image, &["--dest-tls-verify=false", "--all"]);
    assert_eq!(
        skopeo_raw(&image, &["--tls-verify=false"]),
        std::fs::read(multi.layout.join("blobs/sha256").join(&multi.manifest[7..])).expect("index"),
        "skopeo kept the index as built"
    );
    let arch_of = |env: &Env| -> String {
        let store = env.store();
        let rec = store.resolve(&image).expect("pulled image");
        let config = store.config_json(&rec).expect("config");
        config["architecture"].as_str().expect("arch").to_owned()
    };
    let out = env.ok(&["pull", &image]);
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("Digest: {}", multi.manifest)));
    assert_eq!(arch_of(&env), "amd64", "linux/amd64 is the default");
    env.assert_consistent();
    let env2 = Env::new();
    env2.ok(&["pull", "--platform", "linux/arm64", &image]);
    assert_eq!(arch_of(&env2), "arm64");
    env2.assert_consistent();
    let env3 = Env::new();
    let err = env3.fails(&["pull", "--platform", "linux/s390x", &image]);
    assert!(
        err.contains("no manifest for platform linux/s390x"),
        "{err}"
    );
    assert!(env3.blobs().is_empty());
    // Pushing the pulled image sends its platform manifest, bytes intact.
    let copy = format!("{}/multi/amd64-only:1", reg.addr);
    env.ok(&["push", &image, &copy]);
    let amd64_manifest = &multi.blobs[multi.blobs.len() - 2];
    assert_eq!(
        sha256(&skopeo_raw(&copy, &["--tls-verify=false"])),
        *amd64_manifest
    );
}

// ---------------------------------------------------------------- progress

#[test]
fn progress_is_redrawn_on_a_terminal_and_plain_otherwise() {
    if !tools(&["script"]) {
        return;
    }
    let env = Env::new();
    let reg = Distribution::start(&DistributionConfig::default());
    let big = big_image(env.path(), "tty", 2, 4);
    let image = format!("{}/tty/image:1", reg.addr);
    skopeo_push(&big, &image, &["--dest-tls-verify=false"]);
    // script(1) gives the pull a pseudo-terminal as stderr.
    let cmd = format!(
        "CAIS_DATA_ROOT={} DOCKER_CONFIG={} {} pull --jobs 1 {image}",
        env.data_root().display(),
        env.docker_config().display(),
        env!("CARGO_BIN_EXE_cais")
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(
        tty.contains("\x1b[2K"),
        "no line redraws on a terminal: {tty:?}"
    );
    assert!(tty.contains("Downloading ["), "no progress bar: {tty:?}");
    assert!(tty.contains("Pull complete"));
    // Not a terminal: plain lines, no escapes, no bars.
    let env2 = Env::new();
    let out = env2.ok(&["pull", &image]);
    let plain = String::from_utf8_lossy(&out.stderr);
    assert!(
        !plain.contains('\x1b') && !plain.contains("Downloading ["),
        "{plain:?}"
    );
    assert_eq!(plain.matches("Pull complete").count(), 2, "{plain}");
}
