//! Metadata instructions on a `scratch` stage: no container is run, and
//! only WORKDIR mounts (an overlay, to create the directory), so only that
//! test needs root. Checks the image config and history docker would write.

use std::path::PathBuf;
use std::sync::Arc;

use cais_build::{Environment, Options, Progress};
use cais_image::ImageStore;

struct Quiet(String);

impl Progress for Quiet {
    fn step(&mut self, text: &str) {
        self.0.push_str(text);
        self.0.push('\n');
    }
    fn output(&mut self, _: &[u8]) {}
}

fn build(dockerfile: &str, opts: impl FnOnce(&mut Options)) -> (serde_json::Value, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(ImageStore::open(dir.path().join("store")).expect("store"));
    let env = Environment {
        store: store.clone(),
        runtime_binary: PathBuf::from("/nonexistent"),
        work_dir: dir.path().join("work"),
        pull: None,
    };
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).expect("ctx");
    let mut o = Options {
        context: ctx,
        dockerfile_text: Some(dockerfile.to_owned()),
        tags: vec!["meta:1".into()],
        ..Default::default()
    };
    opts(&mut o);
    let mut log = Quiet(String::new());
    let built = cais_build::build(&env, &o, &mut log)
        .unwrap_or_else(|e| panic!("build failed: {e}\n{}", log.0));
    let rec = store.resolve(&built.image_id).expect("resolve by id");
    assert_eq!(rec.tags, ["docker.io/library/meta:1"]);
    (store.config_json(&rec).expect("config"), log.0)
}

#[test]
fn every_metadata_instruction_lands_in_the_config() {
    // SAFETY: geteuid has no preconditions.
    if !cais_testkit::require("running as root", unsafe { libc::geteuid() } == 0) {
        return;
    }
    let (c, log) = build(
        r#"FROM scratch
MAINTAINER someone <a@b.c>
ARG PORT=8080
ENV A=1 B="two words"
ENV C=$A-${B}
LABEL "com.example.x"="y" plain=$PORT
EXPOSE $PORT 53/udp
VOLUME ["/data", "/logs"]
USER 1000:1000
WORKDIR relative
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD wget -q localhost
SHELL ["/bin/bash", "-c"]
ENTRYPOINT run this
ONBUILD RUN echo child
"#,
        |o| {
            o.labels.insert("cli".into(), "label".into());
            o.build_args.insert("PORT".into(), "9090".into());
        },
    );
    let cc = &c["config"];
    assert_eq!(c["author"], "someone <a@b.c>");
    assert_eq!(
        cc["Env"],
        serde_json::json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "A=1",
            "B=two words",
            "C=1-two words"
        ])
    );
    assert_eq!(cc["Labels"]["com.example.x"], "y");
    assert_eq!(cc["Labels"]["plain"], "9090");
    assert_eq!(cc["Labels"]["cli"], "label");
    assert!(cc["ExposedPorts"]["9090/tcp"].is_object());
    assert!(cc["ExposedPorts"]["53/udp"].is_object());
    assert!(cc["Volumes"]["/data"].is_object() && cc["Volumes"]["/logs"].is_object());
    assert_eq!(cc["User"], "1000:1000");
    // WORKDIR in scratch creates the directory: one layer.
    assert_eq!(cc["WorkingDir"], "/relative");
    assert_eq!(cc["StopSignal"], "SIGUSR1");
    assert_eq!(
        cc["Healthcheck"],
        serde_json::json!({"Test": ["CMD-SHELL", "wget -q localhost"],
            "Interval": 30_000_000_000i64, "Timeout": 5_000_000_000i64, "Retries": 3})
    );
    assert_eq!(cc["Shell"], serde_json::json!(["/bin/bash", "-c"]));
    // Shell form through SHELL; an ENTRYPOINT drops an inherited CMD.
    assert_eq!(
        cc["Entrypoint"],
        serde_json::json!(["/bin/bash", "-c", "run this"])
    );
    assert!(cc["Cmd"].is_null());
    assert!(
        cc.get("ArgsEscaped").is_none(),
        "docker sets it on Windows only"
    );
    assert_eq!(cc["OnBuild"], serde_json::json!(["RUN echo child"]));

    let history: Vec<&str> = c["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| h["created_by"].as_str().expect("created_by"))
        .collect();
    assert!(
        history.contains(&"/bin/sh -c #(nop)  ENV A=1 B=two words"),
        "{history:?}"
    );
    assert!(
        history.contains(&"/bin/sh -c #(nop) WORKDIR /relative"),
        "{history:?}"
    );
    assert!(
        history.contains(&"/bin/sh -c #(nop)  ARG PORT=9090"),
        "{history:?}"
    );
    assert_eq!(
        c["rootfs"]["diff_ids"].as_array().expect("diff_ids").len(),
        1
    );
    assert!(log.contains("Step 15/16 : ONBUILD RUN echo child"), "{log}");
    assert!(log.contains("Step 16/16 : LABEL cli=label"), "{log}");
    assert_eq!(history.last(), Some(&"/bin/sh -c #(nop)  LABEL cli=label"));
    assert!(
        history.contains(&"/bin/sh -c #(nop)  EXPOSE 53/udp 9090"),
        "{history:?}"
    );
    assert!(
        history.contains(&"/bin/sh -c #(nop)  VOLUME [/data /logs]"),
        "{history:?}"
    );
    assert!(
        history.contains(&r#"/bin/sh -c #(nop)  ENTRYPOINT ["/bin/bash" "-c" "run this"]"#),
        "{history:?}"
    );
    assert!(log.contains("Successfully tagged meta:1"), "{log}");
}

#[test]
fn source_date_epoch_sets_every_timestamp() {
    let (c, _) = build("FROM scratch\nENV A=1\nCMD [\"x\"]\n", |o| {
        o.source_date_epoch = Some(0);
    });
    assert_eq!(c["created"], "1970-01-01T00:00:00Z");
    for h in c["history"].as_array().expect("history") {
        assert_eq!(h["created"], "1970-01-01T00:00:00Z");
        assert_eq!(h["empty_layer"], true);
    }
}

#[test]
fn targets_and_bad_dockerfiles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(ImageStore::open(dir.path().join("store")).expect("store"));
    let env = Environment {
        store,
        runtime_binary: PathBuf::from("/nonexistent"),
        work_dir: dir.path().join("work"),
        pull: None,
    };
    for (df, target, want) in [
        (
            "FROM scratch\nCMD [\"a\"]\n",
            Some("nope"),
            "failed to reach build target nope",
        ),
        (
            "FROM scratch\nEXPOSE notaport\n",
            None,
            "Dockerfile:2: Invalid containerPort: notaport",
        ),
        ("FROM scratch\nENV A=${B\n", None, "Dockerfile:2"),
        ("CMD [\"a\"]\n", None, "Dockerfile:1"),
        (
            "FROM scratch\nHEALTHCHECK --interval=5 CMD x\n",
            None,
            "Dockerfile:2",
        ),
        (
            "FROM scratch\nCOPY --chmod=9 a /\n",
            None,
            "Dockerfile:2: invalid chmod mode",
        ),
    ] {
        let opts = Options {
            context: dir.path().to_path_buf(),
            dockerfile_text: Some(df.into()),
            target: target.map(str::to_owned),
            tags: vec!["never:1".into()],
            ..Default::default()
        };
        let mut log = Quiet(String::new());
        let e = cais_build::build(&env, &opts, &mut log).expect_err(df);
        assert!(
            matches!(e, cais_build::Error::InvalidArgument { .. }),
            "{df}: {e:?}"
        );
        assert!(e.to_string().contains(want), "{df}: {e}");
        assert!(env.store.resolve("never:1").is_err());
    }
}
