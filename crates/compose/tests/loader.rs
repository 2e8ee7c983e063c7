//! The loader on real files in temporary directories: good projects load
//! to the expected model, and each bad one is refused with an error naming
//! its file and the key at fault.

use std::collections::BTreeMap;
use std::path::Path;

use cais_compose::{load, Options};

fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("loader")
        .tempdir()
        .expect("tempdir");
    for (path, content) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    }
    dir
}

fn options(dir: &Path, env: &[(&str, &str)]) -> Options {
    Options {
        cwd: dir.to_path_buf(),
        environment: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..Options::default()
    }
}

/// A bad compose.yaml, the other files beside it, and what the error
/// must contain.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);

#[test]
fn bad_files_name_the_file_and_the_key() {
    let cases: &[Case] = &[
        ("services:\n  web:\n    image: [x\n", &[], &["compose.yaml:4", "yaml"]),
        ("services:\n  web:\n    image: a\n    image: b\n", &[], &["compose.yaml:4", "already defined"]),
        ("services:\n  web:\n  image: x\n", &[], &["compose.yaml", "services.image", "must be a mapping"]),
        ("services:\n  web:\n    imagee: busybox\n", &[], &["compose.yaml", "services.web", "'imagee'", "line 3"]),
        ("servicess:\n  web: {}\n", &[], &["compose.yaml", "'servicess'"]),
        ("services:\n  web:\n    image: x\n    ports: 80\n", &[], &["services.web.ports", "must be a list"]),
        ("services:\n  web:\n    image: x\n    ports: [\"80:99999\"]\n", &[], &["services.web.ports.0", "containerPort"]),
        ("services:\n  web:\n    image: x\n    ports: [\"1.2.3:80:80\"]\n", &[], &["services.web.ports.0", "ip address"]),
        ("services:\n  web:\n    image: x\n    ports: [\"80/sctpx\"]\n", &[], &["services.web.ports.0", "proto"]),
        ("services:\n  web:\n    image: x\n    expose: [\"abc\"]\n", &[], &["services.web.expose.0"]),
        ("services:\n  web:\n    image: x\n    volumes: [\"data:relative\"]\n", &[], &["services.web.volumes.0", "absolute"]),
        ("services:\n  web:\n    image: x\n    volumes: [{type: nfs, target: /x}]\n", &[], &["services.web.volumes.0.type"]),
        ("services:\n  web:\n    image: x\n    env_file: nope.env\n", &[], &["compose.yaml", "services.web.env_file", "nope.env"]),
        ("services:\n  web:\n    image: x\n    env_file: bad.env\n", &[("bad.env", "A B=1\n")], &["services.web.env_file", "bad.env:1"]),
        ("services:\n  web:\n    image: x\n    restart: sometimes\n", &[], &["services.web.restart", "sometimes"]),
        ("services:\n  web:\n    image: x\n    depends_on: {db: {condition: started}}\n", &[], &["services.web.depends_on.db.condition"]),
        ("services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [c]\n  c:\n    image: x\n    depends_on: [a]\n", &[], &["compose.yaml", "dependency cycle detected: a -> b -> c -> a"]),
        ("services:\n  a:\n    image: x\n    depends_on: [ghost]\n", &[], &["services.a.depends_on", "undefined service \"ghost\""]),
        ("services:\n  a:\n    image: x\n    networks: [nope]\n", &[], &["services.a.networks", "undefined network nope"]),
        ("services:\n  a:\n    image: x\n    volumes: [\"gone:/x\"]\n", &[], &["services.a.volumes", "undefined volume gone"]),
        ("services:\n  a:\n    image: x\n    secrets: [s]\n", &[], &["services.a.secrets", "undefined secret s"]),
        ("services:\n  a:\n    image: x\nsecrets:\n  s:\n    file: ./missing\n", &[], &["secrets.s.file", "does not exist"]),
        ("services:\n  a:\n    command: x\n", &[], &["services.a", "neither an image nor a build"]),
        ("services:\n  a:\n    image: x\n    healthcheck: {interval: soon}\n", &[], &["services.a.healthcheck.interval"]),
        ("services:\n  a:\n    image: x\n    mem_limit: 1zb\n", &[], &["services.a.mem_limit"]),
        ("services:\n  a:\n    image: x\n    network_mode: bogus\n", &[], &["services.a.network_mode"]),
        ("services:\n  a:\n    image: x\n    scale: 2\n    container_name: fixed\n", &[], &["services.a.container_name"]),
        ("services:\n  a:\n    image: ${NEED:?set NEED}\n", &[], &["compose.yaml", "services.a.image", "required variable NEED is missing a value: set NEED"]),
        ("services:\n  a:\n    image: x$\n", &[], &["compose.yaml", "services.a.image", "invalid interpolation format"]),
        ("services:\n  a:\n    image: ${unclosed\n", &[], &["services.a.image", "invalid interpolation"]),
        ("services:\n  a:\n    extends: nobody\n    image: x\n", &[], &["services.a.extends", "nobody"]),
        ("services:\n  a:\n    extends: b\n    image: x\n  b:\n    extends: a\n", &[], &["services.", "circular reference"]),
        ("name: Bad Name\nservices:\n  a:\n    image: x\n", &[], &["invalid project name \"Bad Name\""]),
        ("include:\n  - other.yaml\nservices:\n  a:\n    image: x\n", &[("other.yaml", "services:\n  a:\n    image: y\n")], &["compose.yaml", "services.a", "conflicts"]),
        ("include:\n  - sub.yaml\n", &[("sub.yaml", "services:\n  s:\n    imag: y\n")], &["sub.yaml", "services.s", "'imag'"]),
        ("services:\n  a:\n    image: x\n    ulimits: {nofile: {soft: 20, hard: 10}}\n", &[], &["services.a.ulimits.nofile"]),
    ];
    for (i, (text, others, wanted)) in cases.iter().enumerate() {
        let mut files = vec![("compose.yaml", *text)];
        files.extend_from_slice(others);
        let dir = project(&files);
        let err = match load(&options(dir.path(), &[])) {
            Ok(p) => panic!(
                "case {i} loaded: {:?}",
                p.services.keys().collect::<Vec<_>>()
            ),
            Err(e) => e.to_string(),
        };
        for w in *wanted {
            assert!(
                err.contains(w),
                "case {i}: {w:?} is not in the error: {err}"
            );
        }
    }
}

#[test]
fn a_project_loads_with_its_defaults() {
    let dir = project(&[
        (
            "compose.yaml",
            "services:\n  web:\n    image: busybox:${TAG:-1}\n    ports: [\"${PORT}:80\"]\n    networks: [front]\n    volumes: [\"data:/data\", \"./src:/src\"]\n  db:\n    image: busybox\nnetworks:\n  front: {}\nvolumes:\n  data: {}\n",
        ),
        (".env", "PORT=8081\nTAG=from-dotenv\n"),
    ]);
    let p = load(&options(dir.path(), &[("TAG", "from-shell")])).expect("loads");
    let dir_name = dir.path().file_name().expect("name").to_string_lossy();
    assert_eq!(p.name, dir_name.to_lowercase());
    let web = &p.services["web"];
    assert_eq!(
        web.image.as_deref(),
        Some("busybox:from-shell"),
        "the shell beats .env"
    );
    assert_eq!(web.ports[0].published.as_deref(), Some("8081"));
    assert_eq!(
        web.volumes[1].source.as_deref(),
        Some(dir.path().join("src").to_str().expect("utf-8"))
    );
    assert_eq!(p.networks["front"].name, format!("{}_front", p.name));
    assert_eq!(p.networks["default"].name, format!("{}_default", p.name));
    assert_eq!(p.volumes["data"].name, format!("{}_data", p.name));
    assert!(p.services["db"].networks.contains_key("default"));
    assert!(!web.networks.contains_key("default"));
    assert_eq!(p.environment_files, [dir.path().join(".env")]);
}

#[test]
fn several_files_merge_and_tags_reset() {
    let dir = project(&[
        (
            "a.yaml",
            "services:\n  s:\n    image: one\n    command: [a, b]\n    ports: [\"8080:80\"]\n    environment: [A=1, B=2]\n    dns: [1.1.1.1]\n",
        ),
        (
            "b.yaml",
            "services:\n  s:\n    image: two\n    command: [c]\n    ports: !reset []\n    environment:\n      B: \"3\"\n    dns: [8.8.8.8]\n",
        ),
    ]);
    let mut o = options(dir.path(), &[]);
    o.files = vec!["a.yaml".into(), "b.yaml".into()];
    let p = load(&o).expect("loads");
    let s = &p.services["s"];
    assert_eq!(s.image.as_deref(), Some("two"));
    assert_eq!(s.command, Some(vec!["c".to_string()]));
    assert!(s.ports.is_empty());
    assert_eq!(s.environment["A"].as_deref(), Some("1"));
    assert_eq!(s.environment["B"].as_deref(), Some("3"));
    assert_eq!(s.dns, ["1.1.1.1", "8.8.8.8"]);
    assert_eq!(p.config_files.len(), 2);
}

#[test]
fn profiles_and_explicit_services() {
    let yaml = "services:\n  a:\n    image: x\n  b:\n    image: x\n    profiles: [p]\n  c:\n    image: x\n    profiles: [q]\n    depends_on: [b]\n";
    let dir = project(&[("compose.yaml", yaml)]);
    let p = load(&options(dir.path(), &[])).expect("loads");
    assert_eq!(p.services.keys().collect::<Vec<_>>(), ["a"]);
    let p = load(&options(dir.path(), &[("COMPOSE_PROFILES", "p")])).expect("loads");
    assert_eq!(p.services.keys().collect::<Vec<_>>(), ["a", "b"]);
    let mut o = options(dir.path(), &[]);
    o.services = vec!["b".into()];
    assert!(load(&o).expect("loads").services.contains_key("b"));
    // c needs b, whose profile is not active: refused with both names.
    let mut o = options(dir.path(), &[]);
    o.profiles = vec!["q".into()];
    let err = load(&o).expect_err("b is disabled").to_string();
    assert!(err.contains("\"b\"") && err.contains("\"c\""), "{err}");
    let mut o = options(dir.path(), &[]);
    o.profiles = vec!["*".into()];
    assert_eq!(load(&o).expect("all").services.len(), 3);
}

#[test]
fn project_name_precedence() {
    let dir = project(&[(
        "compose.yaml",
        "name: fromfile\nservices:\n  a:\n    image: x\n",
    )]);
    assert_eq!(
        load(&options(dir.path(), &[])).expect("loads").name,
        "fromfile"
    );
    let env = [("COMPOSE_PROJECT_NAME", "fromenv")];
    assert_eq!(
        load(&options(dir.path(), &env)).expect("loads").name,
        "fromenv"
    );
    let mut o = options(dir.path(), &env);
    o.project_name = Some("flag".into());
    assert_eq!(load(&o).expect("loads").name, "flag");
    o.project_name = Some("-bad".into());
    assert!(load(&o).is_err());
    assert_eq!(
        cais_compose::loader::normalize_project_name("My.Proj_X"),
        "myproj_x"
    );
    assert_eq!(
        cais_compose::loader::normalize_project_name("__Web-1"),
        "web-1"
    );
}
