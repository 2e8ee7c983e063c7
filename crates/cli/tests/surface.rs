//! The `cais` command line beside the real docker CLI 28, both against one
//! cais daemon shared by the tests of this binary: the listing and inspect
//! commands print the same bytes and exit with the same codes (default
//! tables, `--format` templates, `json`, errors); run/create flags take
//! effect inside the container when given to `cais`; refused options exit
//! non-zero and create nothing; `cp`, `diff`, `export`, `update`, the
//! prune verbs, `version`, `info` and `system df` work end to end.
//!
//! Needs root, a static busybox and the docker CLI at /usr/local/bin/docker;
//! the tests run in parallel, so each names its objects after itself.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use cais_testkit::daemon::{shared, SharedDaemon, DOCKER};
use cais_testkit::{require, require_root_and_busybox};

const CAIS: &str = env!("CARGO_BIN_EXE_cais");
/// busybox with /etc/group and /tmp.
const IMAGE: &str = "surface-busybox";

fn fixture() -> Option<&'static SharedDaemon> {
    if !require_root_and_busybox()
        || !require(
            "the docker CLI at /usr/local/bin/docker",
            Path::new(DOCKER).exists(),
        )
    {
        return None;
    }
    static F: OnceLock<SharedDaemon> = OnceLock::new();
    Some(F.get_or_init(|| {
        let d = shared(CAIS, true);
        let dir = tempfile::tempdir().expect("tempdir");
        let tar = cais_testkit::busybox_rootfs_tar(
            dir.path(),
            &[
                ("etc/group", b"root:x:0:\nstaff:x:50:\n"),
                ("tmp/.keep", b""),
            ],
        );
        let out = docker(&d, &["import", &tar.to_string_lossy(), IMAGE]);
        assert!(out.status.success(), "import: {}", text(&out.stderr));
        d
    }))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn docker(d: &SharedDaemon, args: &[&str]) -> Output {
    Command::new(DOCKER)
        .arg("-H")
        .arg(&d.host)
        .args(args)
        .env("DOCKER_CONFIG", d.dir.join("docker-config"))
        .stdin(Stdio::null())
        .output()
        .expect("run docker")
}

fn cais(d: &SharedDaemon, args: &[&str]) -> Output {
    Command::new(CAIS)
        .args(args)
        .env("CAIS_HOST", &d.host)
        .env_remove("DOCKER_HOST")
        .env_remove("CAIS_DATA_ROOT")
        .stdin(Stdio::null())
        .output()
        .expect("run cais")
}

/// `cais ARGS`, which must succeed: its stdout.
fn ok(d: &SharedDaemon, args: &[&str]) -> String {
    let out = cais(d, args);
    assert!(
        out.status.success(),
        "cais {args:?} failed ({:?}): {}\n{}\ndaemon log:\n{}",
        out.status.code(),
        text(&out.stderr),
        text(&out.stdout),
        d.log()
    );
    text(&out.stdout)
}

/// The stdout, stderr and exit code of `docker ARGS` and `cais ARGS` must
/// be the same. Columns that count seconds ("Up 2 seconds") can change
/// between the two runs, so a difference is retried a few times; the two
/// must agree on one of them.
fn same(d: &SharedDaemon, args: &[&str]) -> String {
    let mut last = None;
    for _ in 0..4 {
        let want = docker(d, args);
        let got = cais(d, args);
        let w = (text(&want.stdout), text(&want.stderr), want.status.code());
        let g = (text(&got.stdout), text(&got.stderr), got.status.code());
        if w == g {
            return w.0;
        }
        last = Some((w, g));
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let (w, g) = last.expect("compared at least once");
    panic!(
        "`{}` differs:\n--- docker (exit {:?})\n{}{}\n--- cais (exit {:?})\n{}{}",
        args.join(" "),
        w.2,
        w.0,
        w.1,
        g.2,
        g.0,
        g.1
    );
}

fn rm(d: &SharedDaemon, names: &[&str]) {
    let mut args = vec!["rm", "-f"];
    args.extend(names);
    let _ = docker(d, &args);
}

#[test]
fn listings_print_what_docker_prints() {
    let Some(d) = fixture() else { return };
    ok(
        d,
        &["volume", "create", "--label", "surf=list", "surf-list-vol"],
    );
    ok(
        d,
        &["network", "create", "--label", "surf=list", "surf-list-net"],
    );
    ok(
        d,
        &[
            "run",
            "-d",
            "--name",
            "surf-list-up",
            "-l",
            "surf=list",
            "-l",
            "a.b-c=x<y",
            "-v",
            "surf-list-vol:/data",
            "-p",
            "127.0.0.1::80",
            IMAGE,
            "sleep",
            "600",
        ],
    );
    ok(
        d,
        &[
            "run",
            "--name",
            "surf-list-done",
            "-l",
            "surf=list",
            "--network",
            "surf-list-net",
            IMAGE,
            "true",
        ],
    );
    let out = same(d, &["ps", "-a", "--filter", "label=surf=list"]);
    assert!(
        out.contains("surf-list-up") && out.contains("surf-list-done"),
        "{out}"
    );
    for format in [
        "json",
        "table {{.ID}}\\t{{.Names}}\\t{{.Label \"a.b-c\"}}\\t{{.LocalVolumes}}\\t{{.Networks}}",
        "{{.Names}} {{.State}} {{.Image}} {{.Command}} {{.Ports}} {{.Mounts}} {{.CreatedAt}}",
        "{{json .Labels}} {{.Label \"surf\"}} {{upper .State}} {{printf \"%q\" .Names}}",
        "table {{.Names}}\\t{{.Size}}\\t{{.Platform}}",
        "{{.Nosuch}}",
        "{{.Names",
    ] {
        same(
            d,
            &[
                "ps",
                "-a",
                "--filter",
                "label=surf=list",
                "--format",
                format,
            ],
        );
    }
    same(
        d,
        &[
            "ps",
            "-a",
            "-q",
            "--no-trunc",
            "--filter",
            "label=surf=list",
        ],
    );
    same(
        d,
        &["container", "ls", "-a", "--filter", "name=surf-list-up"],
    );
    // Images: the default table, digests, filters and formats.
    same(d, &["images"]);
    same(d, &["images", "--digests", "--no-trunc"]);
    same(d, &["images", "--filter", &format!("reference={IMAGE}")]);
    for format in [
        "json",
        "table {{.Repository}}:{{.Tag}}\\t{{.VirtualSize}}\\t{{.Containers}}\\t{{.SharedSize}}",
        "{{.ID}} {{.Digest}} {{.CreatedAt}} {{.Size}} {{.UniqueSize}}",
        "{{.ID}} {{.Label \"x\"}}",
    ] {
        same(d, &["images", "--format", format]);
    }
    same(d, &["image", "ls", "-q"]);
    // Networks and volumes.
    same(d, &["network", "ls"]);
    same(
        d,
        &[
            "network",
            "ls",
            "--filter",
            "label=surf=list",
            "--format",
            "json",
        ],
    );
    same(
        d,
        &[
            "network",
            "ls",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.Name}} {{.CreatedAt}} {{.IPv4}} {{.IPv6}} {{.Internal}} {{.Labels}}",
        ],
    );
    same(d, &["volume", "ls", "--filter", "label=surf=list"]);
    same(
        d,
        &[
            "volume",
            "ls",
            "--filter",
            "label=surf=list",
            "--format",
            "json",
        ],
    );
    same(
        d,
        &[
            "volume",
            "ls",
            "--filter",
            "label=surf=list",
            "--format",
            "table {{.Name}}\\t{{.Mountpoint}}\\t{{.Labels}}\\t{{.Links}}\\t{{.Size}}",
        ],
    );
    same(d, &["volume", "ls", "-q", "--filter", "label=surf=list"]);
    rm(d, &["surf-list-up", "surf-list-done"]);
    let _ = docker(d, &["network", "rm", "surf-list-net"]);
    let _ = docker(d, &["volume", "rm", "surf-list-vol"]);
}

#[test]
fn inspect_prints_what_docker_prints() {
    let Some(d) = fixture() else { return };
    ok(d, &["volume", "create", "--label", "k=v", "surf-insp-vol"]);
    ok(d, &["network", "create", "surf-insp-net"]);
    ok(
        d,
        &[
            "run",
            "-d",
            "--name",
            "surf-insp",
            "-e",
            "A=<b&c>",
            "-v",
            "surf-insp-vol:/data",
            IMAGE,
            "sleep",
            "600",
        ],
    );
    for name in [
        "surf-insp",
        IMAGE,
        "surf-insp-vol",
        "surf-insp-net",
        "bridge",
    ] {
        same(d, &["inspect", name]);
    }
    same(d, &["inspect", "surf-insp", IMAGE]);
    same(d, &["container", "inspect", "surf-insp"]);
    same(d, &["image", "inspect", IMAGE]);
    same(d, &["volume", "inspect", "surf-insp-vol"]);
    same(d, &["network", "inspect", "surf-insp-net"]);
    for format in [
        "{{json .Config}}",
        "{{.State.Status}} {{.Name}} {{.Config.Env}}",
        "{{range .Mounts}}{{.Name}}:{{.Destination}} {{end}}",
        "{{index .Config.Labels \"nosuch\"}}|{{len .Config.Env}}",
        "{{index .NetworkSettings.Networks \"nosuch\"}}",
        "json",
        // Go field names where the JSON key differs, the JSON keys (which
        // docker reaches through its fallback to the raw JSON), and a
        // struct printed whole as Go's %v prints it.
        "{{.ID}}",
        "{{.Id}}",
        "{{.State}}",
        "{{$.State}}",
        "{{.HostConfig.CPUShares}} {{.HostConfig.NanoCPUs}} {{.HostConfig.DNS}}",
        "{{.HostConfig.CpuShares}} {{.HostConfig.NanoCpus}} {{.HostConfig.Dns}}",
    ] {
        same(d, &["inspect", "-f", format, "surf-insp"]);
    }
    same(
        d,
        &[
            "container",
            "inspect",
            "-f",
            "{{.ID}} {{.State}}",
            "surf-insp",
        ],
    );
    same(d, &["image", "inspect", "-f", "{{.ID}} {{.Id}}", IMAGE]);
    same(
        d,
        &[
            "network",
            "inspect",
            "-f",
            "{{.ID}} {{.IPAM.Driver}}",
            "surf-insp-net",
        ],
    );
    same(d, &["inspect", "-f", "{{.ID}}", "surf-insp", IMAGE]);
    // A template that fails on the first object still prints the second.
    same(d, &["inspect", "-f", "{{.Name}}", IMAGE, "surf-insp"]);
    same(
        d,
        &["volume", "inspect", "-f", "{{json .}}", "surf-insp-vol"],
    );
    same(
        d,
        &[
            "network",
            "inspect",
            "-f",
            "{{.Name}} {{.Driver}}",
            "surf-insp-net",
        ],
    );
    // A field one of the objects lacks, and names that are nothing.
    same(d, &["inspect", "-f", "{{.Name}}", "surf-insp", IMAGE]);
    same(d, &["inspect", "surf-insp-nosuch"]);
    same(d, &["inspect", "surf-insp", "surf-insp-nosuch"]);
    same(d, &["container", "inspect", "surf-insp-nosuch"]);
    same(d, &["image", "inspect", "surf-insp-nosuch"]);
    same(d, &["volume", "inspect", "surf-insp-nosuch"]);
    same(d, &["network", "inspect", "surf-insp-nosuch"]);
    rm(d, &["surf-insp"]);
    let _ = docker(d, &["network", "rm", "surf-insp-net"]);
    let _ = docker(d, &["volume", "rm", "surf-insp-vol"]);
}

#[test]
fn version_info_and_disk_usage_print_what_docker_prints() {
    let Some(d) = fixture() else { return };
    same(d, &["version", "--format", "{{json .Server}}"]);
    same(
        d,
        &[
            "version",
            "--format",
            "{{.Server.Version}} {{.Server.Os}}/{{.Server.Arch}}",
        ],
    );
    // The Go field name; the JSON key is refused by docker (its version
    // template sees only the Go struct) and taken by cais.
    let api = same(d, &["version", "--format", "{{.Server.APIVersion}}"]);
    assert!(api.trim().starts_with("1."), "{api}");
    assert_eq!(
        ok(d, &["version", "--format", "{{.Server.ApiVersion}}"]),
        api
    );
    let refused = docker(d, &["version", "--format", "{{.Server.ApiVersion}}"]);
    assert!(!refused.status.success(), "docker took the JSON key");
    same(
        d,
        &[
            "version",
            "--format",
            "{{.Server.MinAPIVersion}} {{.Server.KernelVersion}}",
        ],
    );
    let server = |o: &str| o[o.find("\nServer:").expect("a server section")..].to_string();
    let (want, got) = (docker(d, &["version"]), cais(d, &["version"]));
    assert_eq!(server(&text(&got.stdout)), server(&text(&want.stdout)));
    for format in [
        "{{.ServerVersion}} {{.Driver}} {{.OSType}} {{.NCPU}}",
        "{{json .Plugins}} {{json .RegistryConfig}} {{json .Swarm}} {{json .RuncCommit}}",
    ] {
        same(d, &["info", "--format", format]);
        same(d, &["system", "info", "--format", format]);
    }
    // The server section; counts can move while other tests run, so the
    // two are compared until they agree.
    let mut agreed = false;
    for _ in 0..5 {
        let (want, got) = (docker(d, &["info"]), cais(d, &["info"]));
        let from = |o: &str| o[o.find("Server:").expect("a server section")..].to_string();
        if from(&text(&want.stdout)) == from(&text(&got.stdout)) {
            agreed = true;
            break;
        }
    }
    assert!(agreed, "info's server section never matched docker's");
    let agreed = (0..5).any(|_| {
        let (want, got) = (docker(d, &["system", "df"]), cais(d, &["system", "df"]));
        want.stdout == got.stdout && want.status.code() == got.status.code()
    });
    assert!(agreed, "system df never matched docker's");
    let agreed = (0..5).any(|_| {
        let args = ["system", "df", "-v"];
        docker(d, &args).stdout == cais(d, &args).stdout
    });
    assert!(agreed, "system df -v never matched docker's");
    same(
        d,
        &["system", "df", "--format", "{{.Type}} {{.TotalCount}}"],
    );
}

#[test]
fn bad_command_lines_exit_as_docker_does() {
    let Some(d) = fixture() else { return };
    for args in [
        &["run", "--nosuch-flag", IMAGE][..],
        &["ps", "-Z"],
        &["run", "--rm", IMAGE, "surf-no-such-command"],
        &["run", "--rm", IMAGE, "/tmp"],
        &["run", "--rm", IMAGE, "sh", "-c", "exit 7"],
    ] {
        let (want, got) = (docker(d, args), cais(d, args));
        assert_eq!(
            got.status.code(),
            want.status.code(),
            "{args:?}: cais {}\ndocker {}",
            text(&got.stderr),
            text(&want.stderr)
        );
    }
    let out = cais(d, &["run", "--nosuch-flag", IMAGE]);
    assert_eq!(
        text(&out.stderr).lines().next(),
        Some("unknown flag: --nosuch-flag")
    );
    assert_eq!(
        cais(d, &["run", "--rm", IMAGE, "surf-no-such-command"])
            .status
            .code(),
        Some(127)
    );
    assert_eq!(
        cais(d, &["run", "--rm", IMAGE, "/tmp"]).status.code(),
        Some(126)
    );
}

#[test]
fn run_flags_take_effect_through_cais() {
    let Some(d) = fixture() else { return };
    let run = |flags: &[&str], script: &str| -> String {
        let mut args = vec!["run", "--rm"];
        args.extend(flags);
        args.extend([IMAGE, "sh", "-c", script]);
        ok(d, &args).trim().to_string()
    };
    assert_eq!(
        // (nproc counts the user's processes on the whole host, so it is not
        // one to try here.)
        run(
            &[
                "--ulimit",
                "nofile=1024:2048",
                "--ulimit",
                "stack=4194304:8388608"
            ],
            "ulimit -n; ulimit -Hn; ulimit -s"
        ),
        "1024\n2048\n4096"
    );
    assert_eq!(
        run(&["--group-add", "123", "--group-add", "staff"], "id -G"),
        "0 50 123"
    );
    assert_eq!(
        run(
            &["--domainname", "surf.example", "--hostname", "h"],
            "cat /proc/sys/kernel/domainname; hostname"
        ),
        "surf.example\nh"
    );
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    assert_eq!(run(&["--uts", "host"], "hostname"), host_name.trim());
    // The host's pid namespace: pid 1 is the host's init, not the shell.
    let host_init = std::fs::read_to_string("/proc/1/comm").expect("init");
    assert_eq!(
        run(&["--pid", "host"], "cat /proc/1/comm"),
        host_init.trim()
    );
    assert_eq!(run(&[], "cat /proc/1/comm; true"), "sh");
    assert_eq!(
        run(&["--oom-score-adj", "321"], "cat /proc/self/oom_score_adj"),
        "321"
    );
    assert_eq!(
        run(
            &["--sysctl", "net.ipv4.ip_unprivileged_port_start=99"],
            "cat /proc/sys/net/ipv4/ip_unprivileged_port_start"
        ),
        "99"
    );
    assert!(run(&["--shm-size", "8m"], "df -k /dev/shm").contains(" 8192 "));
    assert_eq!(
        // /dev/kmsg is not among the devices every container may use, so
        // the rule given ("r") is all the container has.
        run(
            &["--device", "/dev/kmsg:/dev/surf-kmsg:r"],
            "test -c /dev/surf-kmsg && echo there; (echo surf > /dev/surf-kmsg) 2>/dev/null && echo writable || echo read-only"
        ),
        "there\nread-only"
    );
    if Path::new("/sys/fs/cgroup/cpu/cpu.shares").exists() {
        assert_eq!(
            run(
                &["--cpu-shares", "512", "--memory", "64m", "--memory-reservation", "32m", "--memory-swap", "128m", "--pids-limit", "40"],
                "cd /sys/fs/cgroup; cat cpu/cpu.shares memory/memory.soft_limit_in_bytes memory/memory.memsw.limit_in_bytes pids/pids.max"
            ),
            format!("512\n{}\n{}\n40", 32 << 20, 128 << 20)
        );
    }
    // Another container's volumes, read-only.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("version");
    std::fs::write(&file, "1\n").expect("file");
    ok(
        d,
        &[
            "create",
            "--name",
            "surf-run-src",
            "-v",
            "/surf-data",
            IMAGE,
            "true",
        ],
    );
    ok(
        d,
        &[
            "cp",
            &file.to_string_lossy(),
            "surf-run-src:/surf-data/version",
        ],
    );
    assert_eq!(
        run(&["--volumes-from", "surf-run-src:ro"], "cat /surf-data/version >/dev/null && echo read; touch /surf-data/x 2>/dev/null || echo ro"),
        "read\nro"
    );
    rm(d, &["surf-run-src"]);
    // Labels from a file, annotations, no health check, a cid file.
    let labels = dir.path().join("labels");
    std::fs::write(&labels, "# comment\nsurf.file=one\nsurf.both=file\n").expect("labels");
    let cidfile = dir.path().join("cid");
    let id = ok(
        d,
        &[
            "create",
            "--name",
            "surf-run-meta",
            "--label-file",
            &labels.to_string_lossy(),
            "-l",
            "surf.both=flag",
            "--annotation",
            "surf.note=yes",
            "--no-healthcheck",
            "--cidfile",
            &cidfile.to_string_lossy(),
            "--log-driver",
            "none",
            "--stop-timeout",
            "3",
            "--cgroupns",
            "private",
            "--ipc",
            "shareable",
            IMAGE,
            "true",
        ],
    );
    assert_eq!(
        std::fs::read_to_string(&cidfile).expect("cid file"),
        id.trim()
    );
    let inspected = ok(
        d,
        &[
            "inspect", "-f",
            "{{index .Config.Labels \"surf.file\"}} {{index .Config.Labels \"surf.both\"}} {{index .HostConfig.Annotations \"surf.note\"}} {{.Config.Healthcheck.Test}} {{.HostConfig.LogConfig.Type}} {{.HostConfig.CgroupnsMode}} {{.HostConfig.IpcMode}}",
            "surf-run-meta",
        ],
    );
    assert_eq!(
        inspected.trim(),
        "one flag yes [NONE] none private shareable"
    );
    // A second create with the same cid file is refused before anything.
    let out = cais(
        d,
        &[
            "create",
            "--cidfile",
            &cidfile.to_string_lossy(),
            IMAGE,
            "true",
        ],
    );
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("container ID file found"),
        "{}",
        text(&out.stderr)
    );
    rm(d, &["surf-run-meta"]);
    // --pull never with an image that is not there.
    let out = cais(
        d,
        &[
            "run",
            "--rm",
            "--pull",
            "never",
            "surf-nosuch-image:1",
            "true",
        ],
    );
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("No such image"),
        "{}",
        text(&out.stderr)
    );
    // exec's --env-file and -e (the latter wins).
    ok(
        d,
        &[
            "run",
            "-d",
            "--name",
            "surf-run-exec",
            IMAGE,
            "sleep",
            "600",
        ],
    );
    let env = dir.path().join("env");
    std::fs::write(&env, "SURF_A=file\nSURF_B=file\n").expect("env file");
    assert_eq!(
        ok(
            d,
            &[
                "exec",
                "--env-file",
                &env.to_string_lossy(),
                "-e",
                "SURF_B=flag",
                "surf-run-exec",
                "sh",
                "-c",
                "echo $SURF_A $SURF_B"
            ]
        )
        .trim(),
        "file flag"
    );
    rm(d, &["surf-run-exec"]);
}

#[test]
fn refused_options_exit_non_zero_and_create_nothing() {
    let Some(d) = fixture() else { return };
    let count = || {
        ok(d, &["ps", "-aq", "--filter", "label=surf.refused=1"])
            .lines()
            .count()
    };
    let before = count();
    for (flags, message) in [
        (&["--log-driver", "nosuch"][..], "no log driver named"),
        (&["--gpus", "all"], "could not select device driver"),
        (&["--runtime", "nosuch"], "runtime"),
        (&["--isolation", "hyperv"], "isolation"),
        (&["--device", "/dev/surf-nosuch"], "/dev/surf-nosuch"),
        (&["--ulimit", "nosuch=1"], "invalid ulimit type: nosuch"),
        (
            &["--ulimit", "nofile=9:1"],
            "soft limit must be less than or equal to hard limit",
        ),
        (&["--pull", "sometimes"], "invalid pull option"),
        (&["--cgroupns", "shared"], "invalid CGROUP mode"),
        (&["--device", "/dev/null:/dev/x:q"], "invalid device mode"),
        (&["--sysctl", "novalue"], "invalid sysctl format"),
        (
            &["--blkio-weight-device", "/dev/sda:5"],
            "invalid weight for device",
        ),
        (&["--memory-swappiness", "101"], "swappiness"),
        (&["--oom-score-adj", "1001"], "-1000 to 1000"),
        (&["--ip6", "fd00::2"], "cais networks are IPv4 only"),
        (&["--cpu-count", "2"], "Windows containers only"),
        (&["--use-api-socket"], "--use-api-socket is not supported"),
        (&["--storage-opt", "size=1G"], "storage"),
    ] {
        let mut args = vec!["run", "--rm", "-l", "surf.refused=1"];
        args.extend(flags);
        args.extend([IMAGE, "true"]);
        let out = cais(d, &args);
        assert_eq!(
            out.status.code(),
            Some(125),
            "{flags:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr)
                .to_lowercase()
                .contains(&message.to_lowercase()),
            "{flags:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(count(), before, "{flags:?} left a container");
    }
}

#[test]
fn cp_diff_export_and_update_through_cais() {
    let Some(d) = fixture() else { return };
    ok(
        d,
        &["run", "-d", "--name", "surf-cp", IMAGE, "sleep", "600"],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("local.txt");
    std::fs::write(&local, "hello\n").expect("local file");
    std::os::unix::fs::chown(&local, Some(1234), Some(4321)).expect("chown");
    // In: into a directory, to a new name, with -a, a directory, a tar.
    ok(d, &["cp", &local.to_string_lossy(), "surf-cp:/tmp/"]);
    ok(d, &["cp", &local.to_string_lossy(), "surf-cp:/tmp/renamed"]);
    ok(
        d,
        &["cp", "-a", &local.to_string_lossy(), "surf-cp:/tmp/kept"],
    );
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).expect("tree");
    std::fs::write(tree.join("sub/f"), "deep\n").expect("tree file");
    ok(d, &["cp", &tree.to_string_lossy(), "surf-cp:/tmp/"]);
    let tar_in = Command::new("tar")
        .args(["-C", &dir.path().to_string_lossy(), "-cf", "-", "local.txt"])
        .output()
        .expect("tar");
    let mut child = Command::new(CAIS)
        .args(["cp", "-", "surf-cp:/"])
        .env("CAIS_HOST", &d.host)
        .stdin(Stdio::piped())
        .spawn()
        .expect("cais cp -");
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(&tar_in.stdout)
            .expect("write tar");
    }
    assert!(child.wait().expect("wait").success());
    let listing = ok(
        d,
        &[
            "exec",
            "surf-cp",
            "sh",
            "-c",
            "cd /tmp; stat -c '%n %u:%g' local.txt renamed kept; cat tree/sub/f /local.txt",
        ],
    );
    assert_eq!(
        listing,
        "local.txt 0:0\nrenamed 0:0\nkept 1234:4321\ndeep\nhello\n"
    );
    // Out: a file into a directory, to a new name, a tree, a tar on stdout.
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).expect("out dir");
    ok(
        d,
        &["cp", "surf-cp:/tmp/renamed", &out_dir.to_string_lossy()],
    );
    ok(
        d,
        &[
            "cp",
            "surf-cp:/tmp/renamed",
            &out_dir.join("again").to_string_lossy(),
        ],
    );
    ok(
        d,
        &[
            "cp",
            "surf-cp:/tmp/tree",
            &out_dir.join("tree2").to_string_lossy(),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("renamed")).expect("renamed"),
        "hello\n"
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("again")).expect("again"),
        "hello\n"
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("tree2/sub/f")).expect("tree"),
        "deep\n"
    );
    let tar_out = cais(d, &["cp", "surf-cp:/tmp/kept", "-"]);
    assert!(tar_out.status.success());
    let mut archive = tar::Archive::new(tar_out.stdout.as_slice());
    let names: Vec<String> = archive
        .entries()
        .expect("entries")
        .map(|e| {
            e.expect("entry")
                .path()
                .expect("path")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(names, ["kept"]);
    let missing = cais(
        d,
        &["cp", "surf-cp:/surf-nosuch", &out_dir.to_string_lossy()],
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("Could not find the file /surf-nosuch"));
    // diff as docker prints it.
    let diff = same(d, &["diff", "surf-cp"]);
    assert!(diff.lines().any(|l| l == "A /local.txt"), "{diff}");
    assert!(diff.lines().any(|l| l == "A /tmp/kept"), "{diff}");
    // export: the whole root as a tar.
    let exported = dir.path().join("root.tar");
    ok(d, &["export", "-o", &exported.to_string_lossy(), "surf-cp"]);
    let listed = Command::new("tar")
        .args(["-tf", &exported.to_string_lossy()])
        .output()
        .expect("tar -t");
    assert!(text(&listed.stdout)
        .lines()
        .any(|l| l.trim_start_matches("./") == "tmp/kept"));
    // update: the new limits in the record and in the cgroup.
    ok(
        d,
        &[
            "update",
            "--memory",
            "96m",
            "--memory-swap",
            "-1",
            "--cpu-shares",
            "300",
            "--pids-limit",
            "55",
            "--restart",
            "on-failure:2",
            "surf-cp",
        ],
    );
    assert_eq!(
        ok(d, &["inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.CpuShares}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}", "surf-cp"]).trim(),
        format!("{} 300 55 on-failure:2", 96 << 20)
    );
    if Path::new("/sys/fs/cgroup/pids/pids.max").exists() {
        assert_eq!(
            ok(
                d,
                &["exec", "surf-cp", "cat", "/sys/fs/cgroup/pids/pids.max"]
            )
            .trim(),
            "55"
        );
    }
    rm(d, &["surf-cp"]);
}

#[test]
fn prune_verbs_print_what_docker_prints() {
    let Some(d) = fixture() else { return };
    // The same object set made twice: one pruned by docker, one by cais;
    // the reports must read alike but for the names.
    let report = |cli: &str| -> (String, String) {
        let name = format!("surf-prune-{cli}");
        let label = format!("surf.prune={cli}");
        ok(d, &["volume", "create", "--label", &label, &name]);
        ok(d, &["network", "create", "--label", &label, &name]);
        ok(
            d,
            &["create", "--label", &label, "--name", &name, IMAGE, "true"],
        );
        let filter = format!("label={label}");
        let mut out = String::new();
        for args in [
            &["container", "prune", "-f", "--filter", &filter][..],
            &["network", "prune", "-f", "--filter", &filter],
            &["volume", "prune", "-a", "-f", "--filter", &filter],
        ] {
            let o = if cli == "docker" {
                docker(d, args)
            } else {
                cais(d, args)
            };
            assert!(o.status.success(), "{cli} {args:?}: {}", text(&o.stderr));
            out.push_str(&text(&o.stdout));
        }
        let id = out.lines().nth(1).unwrap_or_default().to_string();
        (out.replace(&id, "ID").replace(&name, "NAME"), id)
    };
    let (want, _) = report("docker");
    let (got, _) = report("cais");
    assert_eq!(got, want);
}

#[test]
fn build_flags_are_applied_or_refused() {
    let Some(d) = fixture() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {IMAGE}\nRUN grep surf-build.example /etc/hosts > /hosts-line\n"),
    )
    .expect("Dockerfile");
    let ctx = dir.path().to_string_lossy().into_owned();
    ok(
        d,
        &[
            "build",
            "-q",
            "--add-host",
            "surf-build.example:10.9.8.7",
            "--cache-from",
            IMAGE,
            "-t",
            "surf-build:1",
            &ctx,
        ],
    );
    assert_eq!(
        ok(d, &["run", "--rm", "surf-build:1", "cat", "/hosts-line"])
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["10.9.8.7", "surf-build.example"]
    );
    for flag in [
        &["--ulimit", "nofile=10:10"][..],
        &["--shm-size", "8m"],
        &["--security-opt", "seccomp=unconfined"],
        &["--memory", "64m"],
        &["--cpu-shares", "100"],
    ] {
        let mut args = vec!["build", "-t", "surf-build:refused"];
        args.extend(flag);
        args.push(&ctx);
        let out = cais(d, &args);
        assert_eq!(out.status.code(), Some(125), "{flag:?}");
        assert!(
            text(&out.stderr).contains(&format!("{} is not supported by cais builds", flag[0])),
            "{}",
            text(&out.stderr)
        );
    }
    let out = cais(d, &["image", "inspect", "surf-build:refused"]);
    assert!(!out.status.success(), "a refused build made an image");
    // The build left steps in the cache: builder prune reports them as
    // docker does, then there is nothing left.
    let pruned = ok(d, &["builder", "prune", "-a", "-f"]);
    assert!(
        pruned.starts_with("Deleted build cache objects:\n"),
        "{pruned}"
    );
    assert!(
        pruned
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("Total reclaimed space: ")),
        "{pruned}"
    );
    let (want, got) = (
        docker(d, &["builder", "prune", "-a", "-f"]),
        cais(d, &["builder", "prune", "-a", "-f"]),
    );
    assert_eq!(text(&got.stdout), text(&want.stdout));
    let _ = docker(d, &["rmi", "surf-build:1"]);
}
