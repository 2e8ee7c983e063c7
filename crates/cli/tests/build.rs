//! End-to-end tests of the build executor (`cais_build::build`) on the
//! real kernel: `RUN` steps run in containers through the built `cais`
//! binary (`cais runtime run`) on overlayfs, layers land in a real image
//! store seeded offline with a busybox image. They live in the cli crate
//! because only its tests know where the built binary is.
//!
//! Needs root and busybox-static; under `CI` a missing requirement fails.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr as _;
use std::sync::Arc;

use cais_build::{Built, Environment, Error, Options, Progress};
use cais_image::ImageStore;
use cais_testkit::require_root_and_busybox;

const CAIS: &str = env!("CARGO_BIN_EXE_cais");

/// Collects what a build prints.
#[derive(Default)]
struct Log(String);

impl Progress for Log {
    fn step(&mut self, text: &str) {
        self.0.push_str(text);
        self.0.push('\n');
    }
    fn output(&mut self, bytes: &[u8]) {
        self.0.push_str(&String::from_utf8_lossy(bytes));
    }
}

/// A store with `busybox:latest`, scratch space and a context directory.
struct Fixture {
    dir: tempfile::TempDir,
    env: Environment,
}

impl Fixture {
    fn new() -> Option<Fixture> {
        if !require_root_and_busybox() {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("cais-build-")
            .tempdir()
            .expect("tempdir");
        let root = dir.path().join("store");
        cais_testkit::busybox_image(&root, "busybox:latest", serde_json::json!({}));
        let store = Arc::new(ImageStore::open(&root).expect("open store"));
        let env = Environment {
            store,
            runtime_binary: PathBuf::from(CAIS),
            work_dir: dir.path().join("work"),
            pull: None,
        };
        std::fs::create_dir_all(dir.path().join("ctx")).expect("ctx");
        Some(Fixture { dir, env })
    }

    fn ctx(&self) -> PathBuf {
        self.dir.path().join("ctx")
    }

    fn file(&self, name: &str, body: &str) {
        let p = self.ctx().join(name);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, body).expect("write context file");
    }

    fn opts(&self, tag: &str) -> Options {
        Options {
            context: self.ctx(),
            tags: vec![tag.to_owned()],
            ..Default::default()
        }
    }

    fn build(&self, opts: &Options) -> (Result<Built, Error>, String) {
        let mut log = Log::default();
        let r = cais_build::build(&self.env, opts, &mut log);
        (r, log.0)
    }

    fn ok(&self, opts: &Options) -> (Built, String) {
        let (r, log) = self.build(opts);
        match r {
            Ok(b) => (b, log),
            Err(e) => panic!("build failed: {e}\n{log}"),
        }
    }

    fn store(&self) -> &ImageStore {
        &self.env.store
    }

    fn config(&self, image: &str) -> serde_json::Value {
        let rec = self.store().resolve(image).expect("resolve image");
        self.store().config_json(&rec).expect("config")
    }

    /// A file as the image shows it: the topmost layer that has it.
    fn read(&self, image: &str, path: &str) -> Option<Vec<u8>> {
        let rec = self.store().resolve(image).expect("resolve image");
        let dirs = self.store().layer_dirs(&rec).expect("layer dirs");
        dirs.iter()
            .rev()
            .map(|d| d.join(path.trim_start_matches('/')))
            .find(|p| std::fs::symlink_metadata(p).is_ok())
            .and_then(|p| std::fs::read(p).ok())
    }

    fn layers(&self, image: &str) -> Vec<String> {
        let c = self.config(image);
        c["rootfs"]["diff_ids"]
            .as_array()
            .expect("diff_ids")
            .iter()
            .map(|d| d.as_str().expect("str").to_owned())
            .collect()
    }
}

/// Runs `args` in a container on a fresh overlay of `image` through
/// `cais runtime run`; returns its stdout.
fn run_image(f: &Fixture, image: &str, args: &serde_json::Value) -> String {
    let id = cais_testkit::unique_id("build-run");
    let m = f.store().prepare_container(&id, image).expect("prepare");
    cais_image::snapshot::mount(&m).expect("mount");
    let bundle = f.dir.path().join(format!("bundle-{id}"));
    std::fs::create_dir_all(&bundle).expect("bundle");
    let mut spec = cais_runtime::bundle::default_spec(false);
    spec["process"]["terminal"] = false.into();
    spec["process"]["args"] = args.clone();
    spec["root"] = serde_json::json!({"path": m.target, "readonly": false});
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec(&spec).expect("json"),
    )
    .expect("config.json");
    let out = std::process::Command::new(CAIS)
        .arg("runtime")
        .arg("--root")
        .arg(f.dir.path().join("state"))
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("cais runtime run");
    f.store().remove_container(&id).expect("remove container");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn text(b: Option<Vec<u8>>) -> String {
    String::from_utf8(b.expect("file exists in the image")).expect("utf-8")
}

#[test]
fn a_simple_build_sets_the_config_and_writes_the_files() {
    let Some(f) = Fixture::new() else { return };
    f.file("hello.txt", "hello from the context\n");
    f.file(
        "Dockerfile",
        r#"FROM busybox
ENV GREETING=hello DIR=/srv
WORKDIR $DIR/app
COPY hello.txt ./
RUN echo "$GREETING from run in $(pwd)" > made.txt && id -u > uid.txt && rm /bin/vi
USER nobody
EXPOSE 8080 53/udp
LABEL org.test.kind="simple build"
STOPSIGNAL SIGINT
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat made.txt"]
"#,
    );
    let mut opts = f.opts("simple:1");
    opts.labels.insert("from.cli".into(), "yes".into());
    let iid = f.dir.path().join("iid");
    opts.iidfile = Some(iid.clone());
    let (built, log) = f.ok(&opts);
    assert!(log.contains("Step 1/12 : FROM busybox"), "{log}");
    assert!(log.contains("Step 12/12 : LABEL from.cli=yes"), "{log}");
    assert!(log.contains(" ---> Running in "), "{log}");
    assert!(log.contains("Successfully tagged simple:1"), "{log}");
    assert_eq!(
        std::fs::read_to_string(&iid).expect("iidfile"),
        built.image_id
    );
    // A rebuild reports every step after FROM as cached, same image.
    let (again, log) = f.ok(&opts);
    assert_eq!(again.image_id, built.image_id);
    assert_eq!(log.matches(" ---> Using cache").count(), 11, "{log}");
    assert_eq!(built.tags, ["docker.io/library/simple:1"]);

    let c = f.config("simple:1");
    let cc = &c["config"];
    let env: Vec<&str> = cc["Env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|v| v.as_str().expect("str"))
        .collect();
    assert!(
        env.contains(&"GREETING=hello") && env.contains(&"DIR=/srv"),
        "{env:?}"
    );
    assert_eq!(cc["WorkingDir"], "/srv/app");
    assert_eq!(cc["User"], "nobody");
    assert_eq!(cc["StopSignal"], "SIGINT");
    assert_eq!(cc["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(cc["Cmd"], serde_json::json!(["cat made.txt"]));
    assert!(cc["ExposedPorts"]["8080/tcp"].is_object());
    assert!(cc["ExposedPorts"]["53/udp"].is_object());
    assert_eq!(cc["Labels"]["org.test.kind"], "simple build");
    assert_eq!(cc["Labels"]["from.cli"], "yes");
    // busybox's layer + WORKDIR (created, as docker does) + COPY + RUN.
    assert_eq!(f.layers("simple:1").len(), 4);
    let history = c["history"].as_array().expect("history");
    assert!(history.iter().any(|h| h["created_by"]
        .as_str()
        .unwrap_or("")
        .contains("#(nop)  CMD [\"cat made.txt\"]")));
    // docker's form: the content hash, the destination as written.
    assert!(history.iter().any(|h| {
        let c = h["created_by"].as_str().unwrap_or("");
        c.starts_with("/bin/sh -c #(nop) COPY file:") && c.ends_with(" in ./ ")
    }));
    let metadata_only = history.iter().filter(|h| h["empty_layer"] == true).count();
    assert_eq!(history.len() - metadata_only, 4, "{history:?}");

    assert_eq!(
        text(f.read("simple:1", "/srv/app/hello.txt")),
        "hello from the context\n"
    );
    assert_eq!(
        text(f.read("simple:1", "/srv/app/made.txt")),
        "hello from run in /srv/app\n"
    );
    assert_eq!(text(f.read("simple:1", "/srv/app/uid.txt")), "0\n");
    // A deletion is a whiteout over the base layer's file.
    assert!(f.read("busybox:latest", "/bin/vi").is_some());
    assert!(f.read("simple:1", "/bin/vi").is_none());
    // The RUN's mount points never become image content.
    assert!(f.read("simple:1", "/etc/resolv.conf").is_none());
}

#[test]
fn multi_stage_copies_only_the_artifact_into_scratch() {
    let Some(f) = Fixture::new() else { return };
    f.file(
        "Dockerfile",
        r#"FROM busybox AS build
RUN mkdir /out && echo built > /out/artifact && cp /bin/busybox /out/busybox

FROM busybox AS unused
RUN exit 3

FROM scratch
COPY --from=build /out/ /
CMD ["/busybox", "cat", "/artifact"]
"#,
    );
    let (_, log) = f.ok(&f.opts("multi:1"));
    assert!(!log.contains("exit 3"), "the unused stage was built: {log}");
    assert_eq!(f.layers("multi:1").len(), 1);
    assert_eq!(text(f.read("multi:1", "/artifact")), "built\n");
    assert!(f.read("multi:1", "/busybox").is_some());
    assert!(f.read("multi:1", "/bin/sh").is_none());
    // The image boots: its CMD runs on an overlay of it.
    let cmd = f.config("multi:1")["config"]["Cmd"].clone();
    assert_eq!(run_image(&f, "multi:1", &cmd), "built\n");

    // --target stops at the build stage.
    let mut opts = f.opts("multi:build");
    opts.target = Some("build".into());
    f.ok(&opts);
    assert_eq!(f.layers("multi:build").len(), 2);
    assert!(f.read("multi:build", "/bin/sh").is_some());
}

#[test]
fn an_unchanged_rebuild_runs_nothing_and_a_changed_file_invalidates_from_its_copy() {
    let Some(f) = Fixture::new() else { return };
    f.file("a.txt", "a\n");
    f.file("b.txt", "b1\n");
    f.file(
        "Dockerfile",
        "FROM busybox\nCOPY a.txt /a.txt\nRUN date +%s%N > /first\nCOPY b.txt /b.txt\nRUN date +%s%N > /second\n",
    );
    let (one, log) = f.ok(&f.opts("cache:1"));
    assert_eq!(log.matches("Running in").count(), 2, "{log}");
    let first = f.read("cache:1", "/first");

    let (two, log) = f.ok(&f.opts("cache:2"));
    assert_eq!(log.matches("Running in").count(), 0, "{log}");
    assert_eq!(log.matches(" ---> Using cache").count(), 4, "{log}");
    assert_eq!(one.image_id, two.image_id);
    assert_eq!(f.layers("cache:1"), f.layers("cache:2"));
    assert_eq!(f.read("cache:2", "/first"), first);

    f.file("b.txt", "b2\n");
    let (three, log) = f.ok(&f.opts("cache:3"));
    assert_eq!(log.matches(" ---> Using cache").count(), 2, "{log}");
    assert_eq!(log.matches("Running in").count(), 1, "{log}");
    assert_ne!(three.image_id, two.image_id);
    assert_eq!(
        f.read("cache:3", "/first"),
        first,
        "the first RUN was reused"
    );
    assert_eq!(text(f.read("cache:3", "/b.txt")), "b2\n");
    let (l2, l3) = (f.layers("cache:2"), f.layers("cache:3"));
    assert_eq!(l2[..3], l3[..3]);
    assert_ne!(l2[3], l3[3]);

    // --no-cache runs everything again.
    let mut opts = f.opts("cache:4");
    opts.no_cache = true;
    let (_, log) = f.ok(&opts);
    assert_eq!(log.matches("Running in").count(), 2, "{log}");
    assert!(!log.contains("Using cache"), "{log}");

    // GC keeps the cache: the store stays consistent and the next build hits.
    f.store().gc().expect("gc");
    assert!(f.store().verify().expect("verify").is_consistent());
    let (_, log) = f.ok(&f.opts("cache:5"));
    assert_eq!(log.matches("Running in").count(), 0, "{log}");

    // Pruning forgets it: the same build runs again; tagged images stay.
    let (entries, _) = cais_build::prune_cache(f.store()).expect("prune");
    assert!(entries >= 4, "{entries}");
    assert!(f.read("cache:1", "/first").is_some());
    let (_, log) = f.ok(&f.opts("cache:6"));
    assert_eq!(log.matches("Running in").count(), 2, "{log}");
}

#[test]
fn build_args_and_env_expand_like_docker() {
    let Some(f) = Fixture::new() else { return };
    f.file(
        "Dockerfile",
        r#"ARG BASE=busybox
FROM $BASE
ARG WHO=world
ARG LATER
ENV GREETING="hello $WHO" WHO=env-wins
RUN echo "$GREETING/$WHO/${LATER:-unset}/$HTTP_PROXY" > /out
"#,
    );
    let mut opts = f.opts("args:1");
    opts.build_args = BTreeMap::from([
        ("WHO".to_owned(), "cais".to_owned()),
        ("UNUSED".to_owned(), "x".to_owned()),
        ("HTTP_PROXY".to_owned(), "http://proxy:3128".to_owned()),
    ]);
    let (_, log) = f.ok(&opts);
    assert_eq!(
        text(f.read("args:1", "/out")),
        "hello cais/env-wins/unset/http://proxy:3128\n"
    );
    assert!(
        log.contains("[Warning] One or more build-args [UNUSED] were not consumed"),
        "{log}"
    );
    let c = f.config("args:1");
    let env = c["config"]["Env"].to_string();
    assert!(!env.contains("PROXY"), "proxy args are not kept: {env}");
}

#[test]
fn dockerignore_hides_files_from_copy() {
    let Some(f) = Fixture::new() else { return };
    f.file(".dockerignore", "secret.txt\n*.log\n!keep.log\n");
    f.file("secret.txt", "no\n");
    f.file("a.log", "no\n");
    f.file("keep.log", "yes\n");
    f.file("sub/data", "d\n");
    f.file("Dockerfile", "FROM busybox\nCOPY . /ctx/\n");
    f.ok(&f.opts("ignore:1"));
    assert!(f.read("ignore:1", "/ctx/secret.txt").is_none());
    assert!(f.read("ignore:1", "/ctx/a.log").is_none());
    assert_eq!(text(f.read("ignore:1", "/ctx/keep.log")), "yes\n");
    assert_eq!(text(f.read("ignore:1", "/ctx/sub/data")), "d\n");

    f.file("Dockerfile", "FROM busybox\nCOPY secret.txt /\n");
    let (r, _) = f.build(&f.opts("ignore:2"));
    let e = r.expect_err("an ignored file is not there");
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    assert!(e.to_string().contains("Dockerfile:2"), "{e}");
}

#[test]
fn source_date_epoch_makes_builds_reproducible() {
    let Some(f) = Fixture::new() else { return };
    f.file("app.txt", "app\n");
    f.file(
        "Dockerfile",
        "FROM busybox\nCOPY app.txt /app/\nRUN echo fixed > /app/generated && mkdir -p /var/x\nCMD [\"cat\", \"/app/app.txt\"]\n",
    );
    let mut opts = f.opts("repro:1");
    opts.source_date_epoch = Some(1_700_000_000);
    opts.no_cache = true;
    let (one, _) = f.ok(&opts);
    // Touch the context: mtimes after the epoch are clamped anyway.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    f.file("app.txt", "app\n");
    opts.tags = vec!["repro:2".into()];
    let (two, _) = f.ok(&opts);
    assert_eq!(
        serde_json::to_string_pretty(&f.config("repro:1")).expect("json"),
        serde_json::to_string_pretty(&f.config("repro:2")).expect("json")
    );
    assert_eq!(one.image_id, two.image_id);
    assert_eq!(one.manifest, two.manifest);
    let c = f.config("repro:1");
    assert_eq!(c["created"], "2023-11-14T22:13:20Z");

    // A different store and scratch directory give the same digests too.
    // Each fixture's busybox base is made now (its own mtimes), so compare
    // an image that does not contain the base: a scratch stage fed from it.
    let multi = "FROM busybox AS b\nCOPY app.txt /app/\nRUN echo fixed > /app/generated\n\
                 FROM scratch\nCOPY --from=b /app /app\nCMD [\"x\"]\n";
    let mut digests = Vec::new();
    for fx in [&f, &Fixture::new().expect("second fixture")] {
        fx.file("app.txt", "app\n");
        fx.file("Dockerfile", multi);
        let mut opts = fx.opts("repro:3");
        opts.source_date_epoch = Some(1_700_000_000);
        opts.no_cache = true;
        digests.push(fx.ok(&opts).0);
    }
    assert_eq!(digests[0], digests[1]);
}

#[test]
fn bad_inputs_fail_clearly_and_tag_nothing() {
    let Some(f) = Fixture::new() else { return };
    f.file("ok.txt", "ok\n");
    let cases: &[(&str, &str)] = &[
        ("FROM no-such-image:1\n", "not found"),
        (
            "FROM busybox\nCOPY ../outside /x\n",
            "Dockerfile:2: COPY failed: forbidden path outside the build context",
        ),
        (
            "FROM busybox\n\nCOPY missing.txt /x\n",
            "Dockerfile:3: COPY failed: file not found",
        ),
        (
            "FROM busybox\nRUN false\n",
            "The command '/bin/sh -c false' returned a non-zero code: 1",
        ),
        (
            "FROM busybox\nRUN echo hi\nRUN [\"/bin/sh\", \"-c\", \"exit 7\"]\n",
            "returned a non-zero code: 7",
        ),
        ("FROM busybox\nFROBNICATE x\n", "Dockerfile:2"),
        (
            "FROM busybox\nUSER nosuchuser\nRUN true\n",
            "unable to find user nosuchuser",
        ),
    ];
    for (i, (dockerfile, want)) in cases.iter().enumerate() {
        f.file("Dockerfile", dockerfile);
        let tag = format!("bad:{i}");
        let (r, log) = f.build(&f.opts(&tag));
        let e = r.expect_err(dockerfile);
        assert!(e.to_string().contains(want), "{dockerfile:?}: {e}\n{log}");
        assert!(f.store().resolve(&tag).is_err(), "{tag} was created");
        match i {
            0 => assert!(matches!(e, Error::NotFound { .. }), "{e}"),
            3 | 4 => assert!(matches!(e, Error::Failed { .. }), "{e}"),
            _ => {}
        }
    }
    // A symlink out of the context resolves inside it: not the host's file.
    std::os::unix::fs::symlink("/etc/hostname", f.ctx().join("link")).expect("symlink");
    f.file("Dockerfile", "FROM busybox\nCOPY link /x\n");
    let (r, _) = f.build(&f.opts("bad:link"));
    assert!(
        r.is_err(),
        "a link leaving the context must not copy the host's file"
    );
    // Nothing is left mounted or behind in the scratch directory.
    let left: Vec<_> = std::fs::read_dir(&f.env.work_dir)
        .map(|d| d.flatten().filter(|e| e.file_name() != "runtime").collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn copy_options_add_archives_heredocs_onbuild_and_user() {
    let Some(f) = Fixture::new() else { return };
    f.file("a.txt", "owned\n");
    f.file("tree/inner/file", "from the archive\n");
    let status = std::process::Command::new("tar")
        .arg("-C")
        .arg(f.ctx().join("tree"))
        .arg("-czf")
        .arg(f.ctx().join("files.tar.gz"))
        .arg("inner")
        .status()
        .expect("tar");
    assert!(status.success());
    f.file(
        "Dockerfile",
        r#"FROM busybox AS base
RUN echo 'app:x:1234:4321::/:/bin/sh' >> /etc/passwd && echo 'appgrp:x:4321:' >> /etc/group
ONBUILD RUN echo triggered > /onbuild

FROM base
ENV NAME=world
COPY --chown=app:appgrp --chmod=0640 a.txt /owned/
ADD files.tar.gz /unpacked/
COPY <<EOF /heredoc.txt
hello $NAME
EOF
COPY --from=busybox /bin/busybox /copied-busybox
RUN <<EOT
echo script-heredoc > /heredoc-run
EOT
RUN cat <<EOT > /heredoc-cat
fed $NAME
EOT
SHELL ["/bin/sh", "-ec"]
RUN stat -c '%u:%g %a' /owned/a.txt > /owned-stat
USER app
RUN echo "uid=$(id -u)"
RUN if unshare -U true 2>/dev/null; then echo confined=no; else echo confined=yes; fi
"#,
    );
    let (_, log) = f.ok(&f.opts("options:1"));
    assert!(log.contains("uid=1234"), "{log}");
    // RUN has the containers' seccomp profile: no new namespaces.
    assert!(log.contains("confined=yes"), "{log}");
    assert!(log.contains("# Executing 1 build trigger"), "{log}");
    assert_eq!(text(f.read("options:1", "/onbuild")), "triggered\n");
    assert_eq!(text(f.read("options:1", "/owned-stat")), "1234:4321 640\n");
    assert_eq!(
        text(f.read("options:1", "/unpacked/inner/file")),
        "from the archive\n"
    );
    assert_eq!(text(f.read("options:1", "/heredoc.txt")), "hello world\n");
    assert_eq!(
        text(f.read("options:1", "/heredoc-run")),
        "script-heredoc\n"
    );
    assert_eq!(text(f.read("options:1", "/heredoc-cat")), "fed world\n");
    assert!(f.read("options:1", "/copied-busybox").is_some());
    let c = f.config("options:1");
    assert!(c["config"].get("OnBuild").is_none(), "{}", c["config"]);
    assert_eq!(c["config"]["Shell"], serde_json::json!(["/bin/sh", "-ec"]));
    assert_eq!(c["config"]["User"], "app");

    // The RUN that appended to /etc/passwd wrote /etc as the image has it
    // (the init layer's mount points take the image's metadata).
    use std::os::unix::fs::MetadataExt;
    let rec = f.store().resolve("options:1").expect("resolve");
    let dirs = f.store().layer_dirs(&rec).expect("dirs");
    let (base, run) = (
        std::fs::metadata(dirs[0].join("etc")).expect("base etc"),
        std::fs::metadata(dirs[1].join("etc")).expect("run etc"),
    );
    assert_eq!((base.mode(), base.mtime()), (run.mode(), run.mtime()));
}

#[test]
fn add_downloads_a_url() {
    let Some(f) = Fixture::new() else { return };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    // A one-response HTTP server: enough for one ADD.
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut conn, _) = listener.accept().expect("accept");
        let mut req = [0u8; 4096];
        let _ = conn.read(&mut req).expect("read request");
        let body = "downloaded\n";
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(resp.as_bytes()).expect("respond");
        String::from_utf8_lossy(&req).into_owned()
    });
    f.file(
        "Dockerfile",
        &format!("FROM busybox\nADD http://127.0.0.1:{port}/files/remote.txt /r/\nRUN stat -c %a /r/remote.txt > /mode\n"),
    );
    f.ok(&f.opts("url:1"));
    let req = server.join().expect("server");
    assert!(req.starts_with("GET /files/remote.txt"), "{req}");
    assert_eq!(text(f.read("url:1", "/r/remote.txt")), "downloaded\n");
    assert_eq!(text(f.read("url:1", "/mode")), "600\n");
}

#[test]
fn missing_bases_are_pulled_and_pull_refetches() {
    let Some(mut f) = Fixture::new() else { return };
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = Arc::new(AtomicUsize::new(0));
    let (root, counter) = (f.store().root().to_path_buf(), calls.clone());
    f.env.pull = Some(Box::new(move |name: &str, progress: &mut dyn Progress| {
        counter.fetch_add(1, Ordering::SeqCst);
        progress.step(&format!("pulling {name}"));
        // A "registry" that has every name: the offline busybox.
        cais_testkit::busybox_image(&root, name, serde_json::json!({}));
        Ok(())
    }));
    f.file("Dockerfile", "FROM remote/base:1\nCMD [\"true\"]\n");
    let (_, log) = f.ok(&f.opts("pulled:1"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(log.contains("pulling docker.io/remote/base:1"), "{log}");
    f.ok(&f.opts("pulled:2"));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "present: not pulled again");
    let mut opts = f.opts("pulled:3");
    opts.pull = true;
    f.ok(&opts);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "--pull fetches again");
}

/// Every entry of every layer of `image`, decompressed: (path, contents).
fn layer_entries(f: &Fixture, image: &str) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let rec = f.store().resolve(image).expect("resolve image");
    let manifest = f.store().manifest(&rec).expect("manifest");
    let mut out = Vec::new();
    for layer in &manifest.layers {
        let blob = f.store().content().read(&layer.digest).expect("layer blob");
        let kind = cais_image::oci::Compression::sniff(&blob);
        let stream = cais_image::unpack::decompress(&blob[..], kind).expect("decompress");
        let mut tar = tar::Archive::new(stream);
        for e in tar.entries().expect("entries") {
            let mut e = e.expect("entry");
            let path = e.path().expect("path").to_string_lossy().into_owned();
            let mut body = Vec::new();
            e.read_to_end(&mut body).expect("read entry");
            out.push((path.trim_start_matches("./").to_owned(), body));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_cache_mount_survives_between_builds_stays_out_of_the_image_and_is_pruned() {
    let Some(f) = Fixture::new() else { return };
    f.file(
        "Dockerfile",
        "FROM busybox\nRUN --mount=type=cache,id=pkgs,target=/var/cache/pkgs echo from-build-1 > /var/cache/pkgs/f && echo one > /step\n",
    );
    let (_, log) = f.ok(&f.opts("cache:1"));
    assert_eq!(text(f.read("cache:1", "/step")), "one\n", "{log}");
    // Build 2: another command (so the step runs), the same cache id at
    // another target, as another user's mode asks.
    f.file(
        "Dockerfile",
        "FROM busybox\nRUN --mount=type=cache,id=pkgs,target=/c,sharing=locked cat /c/f > /seen && ls -a /c > /listing\n",
    );
    let (_, log) = f.ok(&f.opts("cache:2"));
    assert_eq!(text(f.read("cache:2", "/seen")), "from-build-1\n", "{log}");
    for image in ["cache:1", "cache:2"] {
        let entries = layer_entries(&f, image);
        for (path, body) in &entries {
            assert!(
                !path.starts_with("var/cache") && !path.starts_with("c/") && path != "c",
                "{image}: the cache mount (or its mount point) is in a layer: {path}"
            );
            assert!(
                !contains(body, b"from-build-1\n") || path == "seen",
                "{image}: {path}"
            );
        }
    }
    // Its mount points are not in the image either.
    assert!(f.read("cache:2", "/c").is_none());

    let (entries, bytes) = cais_build::prune_cache(f.store()).expect("prune");
    assert!(
        entries >= 1 && bytes > 0,
        "{entries} entries, {bytes} bytes"
    );
    f.file(
        "Dockerfile",
        "FROM busybox\nRUN --mount=type=cache,id=pkgs,target=/c (cat /c/f 2>/dev/null || echo gone) > /seen\n",
    );
    let (_, log) = f.ok(&f.opts("cache:3"));
    assert_eq!(text(f.read("cache:3", "/seen")), "gone\n", "{log}");
}

#[test]
fn a_secret_mount_reaches_the_step_and_no_layer_history_or_config() {
    let Some(f) = Fixture::new() else { return };
    const SECRET: &str = "s3cr3t-value-4711";
    // The Dockerfile names the secret by its hash only.
    let sum: String = {
        use sha2::Digest as _;
        sha2::Sha256::digest(SECRET.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    f.file(
        "Dockerfile",
        &format!(
            "FROM busybox\n\
             RUN --mount=type=secret,id=tok,required sha256sum /run/secrets/tok | grep -q ^{sum} && stat -c %a /run/secrets/tok > /mode\n\
             RUN --mount=type=secret,id=tok,env=TOK,target=/etc/tok.txt,mode=0440 sh -c 'printf %s \"$TOK\" | sha256sum | grep -q ^{sum} && test -f /etc/tok.txt && echo ok > /env-ok'\n\
             RUN --mount=type=secret,id=absent ls /run/secrets > /absent 2>&1 || echo none > /absent\n"
        ),
    );
    let mut opts = f.opts("secret:1");
    opts.secrets =
        cais_build::Secrets::from_map([("tok".to_owned(), SECRET.as_bytes().to_vec())].into());
    let (built, log) = f.ok(&opts);
    assert!(!log.contains(SECRET), "the log shows the secret:\n{log}");
    assert_eq!(text(f.read("secret:1", "/mode")), "400\n");
    assert_eq!(text(f.read("secret:1", "/env-ok")), "ok\n");
    assert_eq!(
        text(f.read("secret:1", "/absent")),
        "none\n",
        "an absent optional secret is skipped"
    );
    let entries = layer_entries(&f, "secret:1");
    assert!(
        entries.len() > 10,
        "the layers were read: {}",
        entries.len()
    );
    for (path, body) in &entries {
        assert!(
            !contains(body, SECRET.as_bytes()),
            "the secret is in {path}"
        );
        assert!(
            !path.starts_with("run") && path != "etc/tok.txt",
            "a secret's mount point is in a layer: {path}"
        );
    }
    let config = serde_json::to_string(&f.config("secret:1")).expect("json");
    assert!(
        !config.contains(SECRET),
        "the secret is in the config or history"
    );
    assert!(
        config.contains("/run/secrets/tok"),
        "history shows the command: {config}"
    );
    // No step file (cache pins included) in the whole store holds it.
    let mut stack = vec![f.store().root().to_path_buf(), f.dir.path().join("work")];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            stack.extend(
                std::fs::read_dir(&p)
                    .expect("readdir")
                    .map(|e| e.expect("entry").path()),
            );
        } else if meta.is_file() && meta.len() < 1 << 24 {
            let body = std::fs::read(&p).expect("read");
            assert!(
                !contains(&body, SECRET.as_bytes()),
                "the secret is in {}",
                p.display()
            );
        }
    }
    // A rebuild with another value hits the cache: the key has the id, not the value.
    opts.secrets = cais_build::Secrets::from_map([("tok".to_owned(), b"other".to_vec())].into());
    let (again, log) = f.ok(&opts);
    assert_eq!(again.image_id, built.image_id, "{log}");

    // A required secret that is not given fails, naming it, and tags nothing.
    f.file(
        "Dockerfile",
        "FROM busybox\nRUN --mount=type=secret,id=missing,required true\n",
    );
    let (r, log) = f.build(&f.opts("secret:2"));
    let e = r.expect_err("a missing required secret");
    assert!(
        e.to_string().contains("secret missing not found"),
        "{e}\n{log}"
    );
    assert!(f.store().resolve("secret:2").is_err());
}

#[test]
fn bind_tmpfs_and_network_mounts() {
    let Some(f) = Fixture::new() else { return };
    f.file("src/input.txt", "from the context\n");
    f.file(
        "Dockerfile",
        "FROM busybox AS tools\n\
         RUN mkdir /out && echo from-stage > /out/tool\n\
         FROM busybox\n\
         RUN --mount=type=bind,from=tools,source=/out,target=/tools cat /tools/tool > /from-stage\n\
         RUN --mount=type=bind,source=src,target=/src,rw echo scribble > /src/input.txt && cat /src/input.txt > /rw-seen\n\
         RUN --mount=target=/ctx cat /ctx/src/input.txt > /ro-seen && (touch /ctx/new 2>/dev/null && echo writable || echo read-only) > /ro-mode\n\
         RUN --mount=type=tmpfs,target=/scratch,size=1m echo t > /scratch/x && grep ' /scratch ' /proc/mounts | cut -d' ' -f3 > /tmpfs-type\n\
         RUN --network=none sh -c 'tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d \" \"' > /links\n\
         RUN tail -n +3 /proc/net/dev | wc -l > /host-links\n",
    );
    let (_, log) = f.ok(&f.opts("mounts:1"));
    assert_eq!(
        text(f.read("mounts:1", "/from-stage")),
        "from-stage\n",
        "{log}"
    );
    assert_eq!(text(f.read("mounts:1", "/rw-seen")), "scribble\n");
    assert_eq!(
        std::fs::read_to_string(f.ctx().join("src/input.txt")).expect("context file"),
        "from the context\n",
        "an rw bind's writes are thrown away"
    );
    assert_eq!(text(f.read("mounts:1", "/ro-seen")), "from the context\n");
    assert_eq!(text(f.read("mounts:1", "/ro-mode")), "read-only\n");
    assert!(!f.ctx().join("new").exists());
    assert_eq!(text(f.read("mounts:1", "/tmpfs-type")), "tmpfs\n");
    assert_eq!(
        text(f.read("mounts:1", "/links")),
        "lo\n",
        "--network=none sees only lo"
    );
    let host: usize = text(f.read("mounts:1", "/host-links"))
        .trim()
        .parse()
        .expect("count");
    assert!(host >= 1, "the default network is the host's");
    for (path, _) in layer_entries(&f, "mounts:1") {
        for stub in ["tools", "src", "ctx", "scratch"] {
            assert!(
                path != stub && !path.starts_with(&format!("{stub}/")),
                "mount point {path} is in a layer"
            );
        }
    }
    // The context bind is part of the key: changing the bound file reruns the step.
    let (_, log) = f.ok(&f.opts("mounts:1"));
    assert!(
        !log.contains("Running in"),
        "an unchanged rebuild runs nothing:\n{log}"
    );
    f.file("src/input.txt", "changed\n");
    let (_, log) = f.ok(&f.opts("mounts:2"));
    assert_eq!(text(f.read("mounts:2", "/ro-seen")), "changed\n", "{log}");

    // type=ssh is refused with a reason.
    f.file("Dockerfile", "FROM busybox\nRUN --mount=type=ssh true\n");
    let (r, _) = f.build(&f.opts("mounts:3"));
    let e = r.expect_err("ssh");
    assert!(e.to_string().contains("type=ssh is not supported"), "{e}");
}

#[test]
fn add_unpacks_bzip2_and_xz_tars_and_copies_other_compressed_files() {
    let Some(f) = Fixture::new() else { return };
    f.file("tree/inner/file", "from a compressed tar\n");
    for (flag, name) in [("-cjf", "files.tar.bz2"), ("-cJf", "files.tar.xz")] {
        let status = std::process::Command::new("tar")
            .arg("-C")
            .arg(f.ctx().join("tree"))
            .arg(flag)
            .arg(f.ctx().join(name))
            .arg("inner")
            .status()
            .expect("tar");
        assert!(status.success(), "tar {flag}");
    }
    // A compressed file that is not a tar is copied as it is.
    f.file("plain.txt", "not a tar\n");
    let status = std::process::Command::new("xz")
        .arg("-k")
        .arg(f.ctx().join("plain.txt"))
        .status()
        .expect("xz");
    assert!(status.success());
    f.file(
        "Dockerfile",
        "FROM busybox\nADD files.tar.bz2 /bz2/\nADD files.tar.xz /xz/\nADD plain.txt.xz /copied/\n",
    );
    let (_, log) = f.ok(&f.opts("archives:1"));
    for dir in ["bz2", "xz"] {
        assert_eq!(
            text(f.read("archives:1", &format!("/{dir}/inner/file"))),
            "from a compressed tar\n",
            "{dir}\n{log}"
        );
    }
    let copied = f
        .read("archives:1", "/copied/plain.txt.xz")
        .expect("copied as is");
    assert!(copied.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]));
}

/// Stores an image of `busybox:latest`'s layer and `n` more layers, layer
/// `i` holding `/layers/f<i>`, tagged `tag`.
fn many_layer_image(f: &Fixture, tag: &str, n: usize) {
    let base = f.store().resolve("busybox:latest").expect("busybox");
    let base_manifest = f.store().manifest(&base).expect("manifest");
    let mut config = f.config("busybox:latest");
    let mut layers: Vec<serde_json::Value> = base_manifest
        .layers
        .iter()
        .map(|l| serde_json::to_value(l).expect("descriptor"))
        .collect();
    for i in 0..n {
        let mut b = tar::Builder::new(Vec::new());
        let body = format!("{i}\n");
        let mut h = tar::Header::new_ustar();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, format!("layers/f{i}"), body.as_bytes())
            .expect("append");
        let tar = b.into_inner().expect("tar");
        let digest = f.store().content().put(&tar, None).expect("put layer");
        config["rootfs"]["diff_ids"]
            .as_array_mut()
            .expect("diff_ids")
            .push(digest.to_string().into());
        layers.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": digest.to_string(),
            "size": tar.len(),
        }));
    }
    let config = serde_json::to_vec(&config).expect("config");
    let config_digest = f.store().content().put(&config, None).expect("put config");
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
        "layers": layers,
    });
    let manifest = serde_json::to_vec(&manifest).expect("manifest");
    let digest = f
        .store()
        .content()
        .put(&manifest, None)
        .expect("put manifest");
    let platform = cais_image::archive::host_platform();
    let tag = cais_image::Reference::from_str(tag)
        .expect("tag")
        .tagged_name()
        .expect("tagged");
    f.store()
        .add_image(&digest, None, &platform, &[tag], Default::default())
        .expect("add image");
}

#[test]
fn a_run_step_over_two_hundred_layers() {
    let Some(f) = Fixture::new() else { return };
    many_layer_image(&f, "many:200", 200);
    f.file(
        "Dockerfile",
        "FROM many:200\nRUN ls /layers | wc -l > /count && cat /layers/f0 /layers/f199 > /ends\nCOPY Dockerfile /copied\n",
    );
    let (_, log) = f.ok(&f.opts("many:built"));
    assert_eq!(text(f.read("many:built", "/count")).trim(), "200", "{log}");
    assert_eq!(text(f.read("many:built", "/ends")), "0\n199\n");
    assert_eq!(f.layers("many:built").len(), 203);
}
