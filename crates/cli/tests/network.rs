//! End-to-end tests of networking: a real `cais daemon` on the real kernel
//! (bridges, veths, nftables, the embedded DNS), driven by the `cais` CLI
//! and by the real docker CLI, checked from the host with curl and from
//! inside containers with busybox.
//!
//! Every test has its own daemon (its own default bridge), and uses unique
//! names and host ports chosen free at run time, so tests run in parallel.
//! Needs root, a static busybox, curl, iproute2 and nft (and a C compiler
//! with static libc for the UDP probe, the docker CLI for its test); a
//! missing one fails under `CI` and skips the test otherwise.

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cais_testkit::{have_tool, require, require_root_and_busybox};

const CAIS: &str = env!("CARGO_BIN_EXE_cais");
use cais_testkit::daemon::DOCKER;
/// The page the web image serves.
const PAGE: &str = "<h1>hello from a cais container</h1>\n";
/// busybox's web server on port 80, serving /www.
const HTTPD: &[&str] = &["httpd", "-f", "-p", "80", "-h", "/www"];

/// busybox's wget for `url` under busybox's `timeout` (Debian's static
/// busybox wget crashes with its own `-T`), under a shell that stays pid 1
/// (`; exit`: no exec of the last command): busybox's timeout execs the
/// program and signals it from a child, and a container's pid 1 ignores
/// that SIGTERM.
fn wget(secs: &'static str, url: &str) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!("timeout {secs} wget -qO- \"$0\"; exit $?"),
        url.into(),
    ]
}

/// A daemon (see `cais_testkit::daemon`) whose store holds a busybox image
/// named `busybox`, and the `cais` CLI pointed at it.
struct Daemon {
    inner: cais_testkit::daemon::Daemon,
}

impl std::ops::Deref for Daemon {
    type Target = cais_testkit::daemon::Daemon;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl std::ops::DerefMut for Daemon {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

impl Daemon {
    fn start() -> Daemon {
        Daemon {
            inner: cais_testkit::daemon::Daemon::start(CAIS, true),
        }
    }

    fn cais(&self, args: &[&str]) -> Output {
        Command::new(CAIS)
            .args(args)
            .env("CAIS_HOST", self.host())
            .env_remove("CAIS_DATA_ROOT")
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null())
            .output()
            .expect("run cais")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cais(args);
        assert!(
            out.status.success(),
            "cais {args:?} failed ({:?}): {}\n{}\ndaemon log:\n{}",
            out.status.code(),
            text(&out.stderr),
            text(&out.stdout),
            self.log()
        );
        text(&out.stdout)
    }

    /// Retries `args` (up to 30 s) until it succeeds; its stdout.
    fn eventually(&self, args: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.cais(args);
            if out.status.success() {
                return text(&out.stdout);
            }
            assert!(
                Instant::now() < deadline,
                "cais {args:?} kept failing: {}\n{}\ndaemon log:\n{}",
                text(&out.stderr),
                text(&out.stdout),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A command that must fail: its exit code and stderr.
    fn fails(&self, args: &[&str]) -> (i32, String) {
        let out = self.cais(args);
        assert!(
            !out.status.success(),
            "cais {args:?} succeeded: {}",
            text(&out.stdout)
        );
        (out.status.code().unwrap_or(-1), text(&out.stderr))
    }

    fn inspect(&self, name: &str, format: &str) -> String {
        self.ok(&["inspect", "-f", format, name]).trim().to_string()
    }

    /// The web server image, made offline: a busybox root filesystem with
    /// /www/index.html, imported as `web:1`.
    fn web_image(&self) {
        let tar = cais_testkit::busybox_rootfs_tar(
            self.dir.path(),
            &[("www/index.html", PAGE.as_bytes())],
        );
        self.ok(&["import", &tar.to_string_lossy(), "web:1"]);
    }

    /// `run -d` of the web server with `extra` options before the image.
    fn web(&self, name: &str, extra: &[&str]) -> String {
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(extra);
        args.push("web:1");
        args.extend_from_slice(HTTPD);
        self.ok(&args).trim().to_string()
    }

    /// The container's address on `network` (`bridge` for the default).
    fn ip(&self, container: &str, network: &str) -> String {
        let ip = self.inspect(
            container,
            &format!("{{{{.NetworkSettings.Networks.{network}.IPAddress}}}}"),
        );
        assert!(
            ip.parse::<std::net::Ipv4Addr>().is_ok(),
            "{container} has an address on {network}: {ip:?}"
        );
        ip
    }

    /// The host interface of the default bridge of this daemon.
    fn default_bridge(&self) -> String {
        let b = self
            .ok(&[
                "network",
                "inspect",
                "-f",
                r#"{{index .Options "com.docker.network.bridge.name"}}"#,
                "bridge",
            ])
            .trim()
            .to_string();
        assert!(!b.is_empty(), "the default bridge has a name");
        b
    }

    /// This daemon's nftables table as `nft list` prints it (empty when it
    /// has none). A daemon off the default root names its table after its
    /// default bridge (`cais0-x` → `cais-x`); other test daemons' tables
    /// are theirs, and may hold addresses this one has released.
    fn nft_table(&self) -> String {
        let bridge = self.default_bridge();
        let suffix = bridge.strip_prefix("cais0").unwrap_or_default();
        let out = Command::new("nft")
            .args(["list", "table", "ip", &format!("cais{suffix}")])
            .output()
            .expect("run nft");
        text(&out.stdout)
    }

    /// The host end of the veth of `container`'s `ifname`: its peer index
    /// (`eth0@if42`) looked up among the host's links.
    fn host_veth(&self, container: &str, ifname: &str) -> String {
        let line = self.ok(&["exec", container, "ip", "-o", "link", "show", ifname]);
        let index = line
            .split_once("@if")
            .and_then(|(_, rest)| rest.split(':').next())
            .unwrap_or_else(|| panic!("no peer index in {line:?}"))
            .to_string();
        let links = host(&["ip", "-o", "link", "show"]);
        links
            .lines()
            .find_map(|l| {
                let (idx, rest) = l.split_once(": ")?;
                (idx == index).then(|| rest.split(['@', ':']).next().unwrap_or("").to_string())
            })
            .unwrap_or_else(|| panic!("no host link with index {index}:\n{links}"))
    }

    /// Network namespaces this daemon holds for containers.
    fn netns_files(&self) -> Vec<String> {
        std::fs::read_dir(self.dir.path().join("run/netns"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A host command that must succeed; its stdout.
fn host(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", "dev", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `token` in `haystack` not as part of a longer number or address.
fn has_token(haystack: &str, token: &str) -> bool {
    let edge = |c: Option<char>| !c.is_some_and(|c| c.is_ascii_digit() || c == '.');
    haystack.match_indices(token).any(|(i, _)| {
        edge(haystack[..i].chars().next_back()) && edge(haystack[i + token.len()..].chars().next())
    })
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port()
}

/// `curl -s URL`: the body, or None when the request failed.
fn curl(url: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", url])
        .output()
        .expect("run curl");
    out.status.success().then(|| text(&out.stdout))
}

/// Waits (up to 30 s) until `url` serves the page.
fn serves(url: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if curl(url).as_deref() == Some(PAGE) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The host's first non-loopback IPv4 address, if any.
fn host_address() -> Option<String> {
    let out = Command::new("hostname").arg("-I").output().ok()?;
    text(&out.stdout)
        .split_whitespace()
        .find(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .map(str::to_string)
}

/// True when `tool` is an executable in one of the PATH directories (not
/// every tool takes `--version`: `ip` does not).
fn on_path(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(tool))
        .any(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        });
    found
}

fn ready() -> bool {
    require_root_and_busybox()
        && require("curl", have_tool("curl"))
        && require("iproute2 (ip)", on_path("ip"))
        && require("nftables (nft)", on_path("nft"))
}

/// A unique suffix for names that are global to the host.
fn unique() -> String {
    cais_testkit::unique_id("t").replace('-', "")
}

#[test]
fn the_lectures_web_server_is_published_on_a_host_port() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    d.web_image();
    let port = free_tcp_port();
    let publish = format!("{port}:80");
    d.web("web", &["-p", &publish]);

    // The literal form: -p HOSTPORT:80 is bound on every address.
    assert_eq!(
        d.ok(&["port", "web"]),
        format!("80/tcp -> 0.0.0.0:{port}\n")
    );
    assert_eq!(d.ok(&["port", "web", "80"]), format!("0.0.0.0:{port}\n"));
    assert_eq!(
        d.ok(&["port", "web", "80/tcp"]),
        format!("0.0.0.0:{port}\n")
    );
    let (code, err) = d.fails(&["port", "web", "81"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("No public port '81/tcp' published for web"),
        "{err}"
    );
    assert_eq!(
        d.ok(&["ps", "--format", "{{.Names}} {{.Ports}}"]).trim(),
        format!("web 0.0.0.0:{port}->80/tcp")
    );
    assert!(d.ok(&["ps"]).contains(&format!("0.0.0.0:{port}->80/tcp")));

    assert!(
        serves(&format!("http://localhost:{port}")),
        "localhost:{port} serves the page; daemon log:\n{}",
        d.log()
    );
    assert_eq!(
        curl(&format!("http://127.0.0.1:{port}/")).as_deref(),
        Some(PAGE)
    );
    if let Some(addr) = host_address() {
        assert!(
            serves(&format!("http://{addr}:{port}/")),
            "the host's address {addr} serves the page"
        );
    }
    let ip = d.ip("web", "bridge");
    assert_eq!(
        d.inspect("web", "{{.NetworkSettings.IPAddress}}"),
        ip,
        "the default bridge's address is also at the top level"
    );
    assert!(
        serves(&format!("http://{ip}:80/")),
        "the bridge address {ip}"
    );

    // A free port picked by the daemon, on loopback only.
    d.web("web2", &["-p", "127.0.0.1::80"]);
    let bound = d.ok(&["port", "web2", "80"]);
    let (addr, chosen) = bound
        .trim()
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{bound:?}"));
    assert_eq!(addr, "127.0.0.1");
    let chosen: u16 = chosen.parse().expect("a port number");
    assert!(chosen > 0);
    assert!(serves(&format!("http://127.0.0.1:{chosen}/")));
    if let Some(addr) = host_address() {
        assert_eq!(
            curl(&format!("http://{addr}:{chosen}/")),
            None,
            "a port published on 127.0.0.1 is not reachable on {addr}"
        );
    }

    // -P publishes exposed ports; --expose alone only exposes.
    d.web("web3", &["-P", "--expose", "80"]);
    let line = d.ok(&["port", "web3", "80"]);
    let p: u16 = line
        .trim()
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("{line:?}"));
    assert!(serves(&format!("http://127.0.0.1:{p}/")));
    d.web("web4", &["--expose", "80"]);
    assert_eq!(d.ok(&["port", "web4"]), "");
    assert_eq!(
        d.ok(&["ps", "-f", "name=web4", "--format", "{{.Ports}}"])
            .trim(),
        "80/tcp"
    );

    d.ok(&["rm", "-f", "web", "web2", "web3", "web4"]);
    assert_eq!(curl(&format!("http://127.0.0.1:{port}/")), None);
}

#[test]
fn containers_on_a_user_network_find_each_other_by_name() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    d.web_image();
    d.ok(&["network", "create", "n1"]);
    d.ok(&["network", "create", "n2"]);
    d.web("db", &["--network", "n1", "--network-alias", "database"]);
    let db_ip = d.ip("db", "n1");

    // run --rm --network NET busybox timeout 10 wget -qO- URL
    let fetch = |net: &str, url: &str| {
        let mut args = vec!["run", "--rm", "--network", net, "busybox"];
        let w = wget("10", url);
        args.extend(w.iter().map(String::as_str));
        d.cais(&args)
    };
    let get = |net: &str, name: &str| fetch(net, &format!("http://{name}/"));
    let w = wget("10", "http://db/");
    let mut args = vec!["run", "--rm", "--network", "n1", "busybox"];
    args.extend(w.iter().map(String::as_str));
    assert_eq!(d.eventually(&args), PAGE);
    assert_eq!(text(&get("n1", "database").stdout), PAGE);
    let lookup = d.ok(&[
        "run",
        "--rm",
        "--network",
        "n1",
        "busybox",
        "nslookup",
        "db",
    ]);
    assert!(
        has_token(&lookup, &db_ip),
        "nslookup db gives {db_ip}: {lookup}"
    );
    let resolv = d.ok(&[
        "run",
        "--rm",
        "--network",
        "n1",
        "busybox",
        "cat",
        "/etc/resolv.conf",
    ]);
    assert!(resolv.contains("nameserver 127.0.0.11"), "{resolv}");

    // n2 is another bridge: db's address is unreachable and its name unknown,
    // while n2's own names resolve.
    d.web("peer", &["--network", "n2"]);
    let peer_ip = d.ip("peer", "n2");
    let out = fetch("n2", &format!("http://{db_ip}/"));
    assert!(
        !out.status.success(),
        "n2 reached db: {}",
        text(&out.stdout)
    );
    let out = d.cais(&[
        "run",
        "--rm",
        "--network",
        "n2",
        "busybox",
        "nslookup",
        "db",
    ]);
    assert!(
        !has_token(&text(&out.stdout), &db_ip),
        "{}",
        text(&out.stdout)
    );
    let lookup = d.ok(&[
        "run",
        "--rm",
        "--network",
        "n2",
        "busybox",
        "nslookup",
        "peer",
    ]);
    assert!(has_token(&lookup, &peer_ip), "{lookup}");

    // connect: db joins n2 with an alias and is reachable there; disconnect
    // takes it away again.
    d.ok(&["network", "connect", "--alias", "store", "n2", "db"]);
    let db_ip2 = d.ip("db", "n2");
    assert_eq!(text(&get("n2", "store").stdout), PAGE);
    assert_eq!(
        text(&fetch("n2", &format!("http://{db_ip2}/")).stdout),
        PAGE
    );
    d.ok(&["network", "disconnect", "n2", "db"]);
    assert_eq!(
        d.inspect("db", "{{index .NetworkSettings.Networks \"n2\"}}"),
        // What docker prints: its map holds pointers, nil when missing.
        "<nil>"
    );
    assert!(!get("n2", "store").status.success());
}

#[test]
fn network_commands_print_like_docker() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    let octet = 100 + (std::process::id() % 50);
    let subnet = format!("10.{octet}.0.0/16");
    let gateway = format!("10.{octet}.0.254");
    let id = d
        .ok(&[
            "network",
            "create",
            "--driver",
            "bridge",
            "--subnet",
            &subnet,
            "--gateway",
            &gateway,
            "--label",
            "team=net",
            "--internal",
            "-o",
            "com.docker.network.bridge.enable_icc=true",
            "front",
        ])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "network create prints the id: {id}");

    let table = d.ok(&["network", "ls"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(header, ["NETWORK ID", "NAME", "DRIVER", "SCOPE"]);
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert!(
        rows.contains(&vec![&id[..12], "front", "bridge", "local"]),
        "{table}"
    );
    for (name, driver) in [("bridge", "bridge"), ("host", "host"), ("none", "null")] {
        assert!(
            rows.iter().any(|r| r[1] == name && r[2] == driver),
            "{name} ({driver}) is listed: {table}"
        );
    }
    assert_eq!(
        d.ok(&["network", "ls", "-q", "--filter", "name=front"])
            .trim(),
        &id[..12]
    );
    assert_eq!(
        d.ok(&[
            "network",
            "ls",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.Name}}",
            "-f",
            "label=team=net"
        ]),
        format!("{id} front\n")
    );

    let fmt = "{{.Name}} {{.Driver}} {{.Scope}} {{.Internal}} {{index .Labels \"team\"}}";
    assert_eq!(
        d.ok(&["network", "inspect", "-f", fmt, "front"]).trim(),
        "front bridge local true net"
    );
    let ipam: serde_json::Value = serde_json::from_str(&d.ok(&[
        "network",
        "inspect",
        "-f",
        "{{json .IPAM.Config}}",
        "front",
    ]))
    .expect("json");
    assert_eq!(
        ipam,
        serde_json::json!([{"Subnet": subnet, "Gateway": gateway}])
    );
    let json: serde_json::Value =
        serde_json::from_str(&d.ok(&["network", "inspect", "front", "bridge"])).expect("json");
    assert_eq!(json.as_array().map(Vec::len), Some(2));
    assert_eq!(json[0]["Id"], id.as_str());

    // A fixed address and an alias through connect; the endpoint shows them.
    d.ok(&["run", "-d", "--name", "c", "busybox", "sleep", "1000"]);
    let ip = format!("10.{octet}.0.77");
    d.ok(&[
        "network", "connect", "--ip", &ip, "--alias", "cee", "front", "c",
    ]);
    assert_eq!(d.ip("c", "front"), ip);
    let inside = d.ok(&["exec", "c", "ip", "-o", "-4", "addr"]);
    assert!(inside.contains(&format!("{ip}/16")), "{inside}");
    let members = d.ok(&["network", "inspect", "-f", "{{json .Containers}}", "front"]);
    assert!(members.contains(&format!("{ip}/16")), "{members}");
    let (code, err) = d.fails(&["network", "rm", "front"]);
    assert_eq!(code, 1);
    assert!(err.starts_with("Error response from daemon: "), "{err}");
    d.ok(&["network", "disconnect", "front", "c"]);

    d.ok(&["network", "create", "unused"]);
    let pruned = d.ok(&["network", "prune", "-f"]);
    assert!(pruned.starts_with("Deleted Networks:\n"), "{pruned}");
    assert!(
        pruned.contains("front\n") && pruned.contains("unused\n"),
        "{pruned}"
    );
    assert!(
        !pruned.contains("bridge"),
        "predefined networks stay: {pruned}"
    );
    assert_eq!(d.ok(&["network", "ls", "-q", "-f", "name=front"]), "");
    // -f: a missing network is not an error.
    d.ok(&["network", "rm", "-f", "front"]);
    assert_eq!(d.fails(&["network", "rm", "front"]).0, 1);
}

/// A static program that prints every UDP datagram it receives on the
/// port given as its argument (busybox's nc has no UDP), compiled on the
/// fly with the host's C compiler.
fn udp_probe(dir: &Path) -> PathBuf {
    let src = dir.join("udprecv.c");
    std::fs::write(
        &src,
        r#"#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(argc > 1 ? atoi(argv[1]) : 53);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); return 1; }
    printf("listening\n");
    fflush(stdout);
    char buf[2048];
    for (;;) {
        ssize_t n = recv(s, buf, sizeof buf - 1, 0);
        if (n < 0) { perror("recv"); return 1; }
        buf[n] = 0;
        printf("got %s\n", buf);
        fflush(stdout);
    }
}
"#,
    )
    .expect("write the probe");
    let bin = dir.join("udprecv");
    let out = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("run cc");
    assert!(out.status.success(), "cc: {}", text(&out.stderr));
    bin
}

#[test]
fn udp_datagrams_reach_a_published_udp_port() {
    if !(ready()
        && require(
            "a C compiler with static libc (gcc, libc6-dev)",
            have_tool("cc"),
        ))
    {
        return;
    }
    let d = Daemon::start();
    let probe = udp_probe(d.dir.path());
    let port = free_udp_port();
    let bind = format!("{}:/probe:ro", probe.display());
    let publish = format!("{port}:53/udp");
    d.ok(&[
        "run", "-d", "--name", "udp", "-v", &bind, "-p", &publish, "busybox", "/probe", "53",
    ]);
    assert_eq!(
        d.ok(&["port", "udp"]),
        format!("53/udp -> 0.0.0.0:{port}\n")
    );
    assert_eq!(
        d.ok(&["ps", "--format", "{{.Ports}}"]).trim(),
        format!("0.0.0.0:{port}->53/udp")
    );
    wait_until("the probe listens", || {
        d.ok(&["logs", "udp"]).contains("listening")
    });
    let mut targets = vec!["127.0.0.1".to_string()];
    targets.extend(host_address());
    for (i, target) in targets.iter().enumerate() {
        let msg = format!("datagram-{i}-via-{target}");
        wait_until(&format!("a datagram through {target}:{port}"), || {
            // A fresh socket each time: a conntrack entry made before the
            // rule existed would otherwise keep the datagrams un-NATed.
            let s = UdpSocket::bind("0.0.0.0:0").expect("udp socket");
            let _ = s.send_to(msg.as_bytes(), (target.as_str(), port));
            std::thread::sleep(Duration::from_millis(100));
            d.ok(&["logs", "udp"]).contains(&format!("got {msg}\n"))
        });
    }
    // Not on TCP: only the UDP port is published.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn host_none_container_modes_and_links() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    d.web_image();
    let netns = |args: &[&str]| {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["busybox", "readlink", "/proc/self/ns/net"]);
        d.ok(&a).trim().to_string()
    };
    let host_ns = std::fs::read_link("/proc/self/ns/net")
        .expect("our netns")
        .to_string_lossy()
        .into_owned();
    assert_eq!(netns(&["--network", "host"]), host_ns);
    assert_ne!(netns(&[]), host_ns);

    // none: a namespace with only the loopback.
    assert_ne!(netns(&["--network", "none"]), host_ns);
    let links = d.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "ip",
        "-o",
        "link",
    ]);
    let names: Vec<&str> = links
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n))
        .collect();
    assert_eq!(names, ["lo"], "{links}");

    // container:NAME shares the other's stack, localhost included.
    d.web("web", &[]);
    let web_ns = d.ok(&["exec", "web", "readlink", "/proc/self/ns/net"]);
    assert_eq!(netns(&["--network", "container:web"]), web_ns.trim());
    wait_until("web serves its localhost", || {
        d.cais(&[
            "run",
            "--rm",
            "--network",
            "container:web",
            "busybox",
            "wget",
            "-qO-",
            "http://127.0.0.1/",
        ])
        .stdout
            == PAGE.as_bytes()
    });

    // --link on the default bridge: the name and the alias in /etc/hosts.
    let web_ip = d.ip("web", "bridge");
    let hosts = d.ok(&[
        "run",
        "--rm",
        "--link",
        "web:site",
        "busybox",
        "cat",
        "/etc/hosts",
    ]);
    let line = hosts
        .lines()
        .find(|l| l.split_whitespace().any(|w| w == "site"))
        .unwrap_or_else(|| panic!("no line for the alias: {hosts}"));
    assert_eq!(
        line.split_whitespace().next(),
        Some(web_ip.as_str()),
        "{hosts}"
    );
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "--link",
            "web:site",
            "busybox",
            "wget",
            "-qO-",
            "http://site/"
        ]),
        PAGE
    );
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "--link",
            "web",
            "busybox",
            "wget",
            "-qO-",
            "http://web/"
        ]),
        PAGE
    );

    // --add-host, --hostname and the DNS flags reach the files.
    let out = d.ok(&[
        "run",
        "--rm",
        "--hostname",
        "box1",
        "--add-host",
        "gw.example:10.1.2.3",
        "--dns",
        "192.0.2.53",
        "--dns-search",
        "corp.example",
        "--dns-option",
        "ndots:3",
        "busybox",
        "sh",
        "-c",
        "hostname; cat /etc/hosts /etc/resolv.conf",
    ]);
    assert!(out.starts_with("box1\n"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().eq(["10.1.2.3", "gw.example"])),
        "{out}"
    );
    assert!(out.contains("nameserver 192.0.2.53"), "{out}");
    assert!(out.contains("search corp.example"), "{out}");
    assert!(out.contains("options ndots:3"), "{out}");
}

#[test]
fn removal_leaves_no_links_rules_or_addresses_behind() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    d.web_image();
    let net = format!("clean{}", unique());
    let id = d.ok(&["network", "create", &net]).trim().to_string();
    let bridge = format!("cais-{}", &id[..10]);

    let (p1, p2) = (free_tcp_port(), free_tcp_port());
    d.web("c1", &["--network", &net, "-p", &format!("{p1}:80")]);
    d.web("c2", &["-p", &format!("{p2}:80")]);
    let ip1 = d.ip("c1", &net);
    let ip2 = d.ip("c2", "bridge");
    assert!(link_exists(&bridge), "{bridge} exists while {net} is used");
    let veth1 = d.host_veth("c1", "eth0");
    let veth2 = d.host_veth("c2", "eth0");
    assert!(link_exists(&veth1) && link_exists(&veth2));
    assert!(
        serves(&format!("http://127.0.0.1:{p1}/")) && serves(&format!("http://127.0.0.1:{p2}/"))
    );
    let rules = d.nft_table();
    for token in [p1.to_string(), p2.to_string(), ip1.clone(), ip2.clone()] {
        assert!(
            has_token(&rules, &token),
            "{token} in the ruleset:\n{rules}"
        );
    }
    assert_eq!(d.netns_files().len(), 2, "{:?}", d.netns_files());

    d.ok(&["rm", "-f", "c1", "c2"]);
    d.ok(&["network", "rm", &net]);
    assert!(!link_exists(&veth1), "{veth1} is gone");
    assert!(!link_exists(&veth2), "{veth2} is gone");
    assert!(!link_exists(&bridge), "{bridge} is gone");
    let rules = d.nft_table();
    for token in [p1.to_string(), p2.to_string(), ip1.clone(), ip2.clone()] {
        assert!(
            !has_token(&rules, &token),
            "{token} left in the ruleset:\n{rules}"
        );
    }
    assert!(d.netns_files().is_empty(), "{:?}", d.netns_files());
    assert_eq!(curl(&format!("http://127.0.0.1:{p1}/")), None);
    // The port is free again, and the first address is handed out again.
    drop(TcpListener::bind(("0.0.0.0", p2)).expect("the published port was released"));
    d.web("c3", &[]);
    assert_eq!(d.ip("c3", "bridge"), ip2, "the address was released");
}

#[test]
fn bad_network_input_gets_clear_errors_and_leaves_nothing() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    d.web_image();
    let octet = 150 + (std::process::id() % 50);
    d.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("10.{octet}.0.0/16"),
        "alpha",
    ]);
    let (code, err) = d.fails(&[
        "network",
        "create",
        "--subnet",
        &format!("10.{octet}.128.0/17"),
        "beta",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("Error response from daemon: ") && err.contains("overlap"),
        "{err}"
    );
    for bad in ["10.0.0.0/33", "banana", "10.0.0.1/8"] {
        let (code, err) = d.fails(&["network", "create", "--subnet", bad, "gamma"]);
        assert_eq!(code, 1, "{bad}");
        assert!(
            err.starts_with("Error response from daemon: ") && err.contains(bad),
            "{bad}: {err}"
        );
    }
    let (_, err) = d.fails(&["network", "create", "alpha"]);
    assert!(err.contains("already exists"), "{err}");
    let names = d.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(
        !names.lines().any(|n| n == "beta" || n == "gamma"),
        "{names}"
    );

    // Bad -p forms fail before anything is created.
    for bad in ["8080:99999", "80-82:80-81", "8080:80/icmp", "x:80"] {
        let (code, err) = d.fails(&["run", "-d", "-p", bad, "busybox", "true"]);
        assert_eq!(code, 125, "{bad}");
        assert!(err.contains("invalid"), "{bad}: {err}");
    }
    assert_eq!(d.ok(&["ps", "-aq"]), "", "no container was created");

    // A host port already in use: run fails, nothing is left plugged.
    let taken = TcpListener::bind("0.0.0.0:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let out = d.cais(&[
        "run",
        "-d",
        "--name",
        "busy",
        "-p",
        &format!("{port}:80"),
        "web:1",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]);
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("already allocated") || err.contains("in use"),
        "{err}"
    );
    assert_ne!(d.inspect("busy", "{{.State.Running}}"), "true");
    let bridge = d.default_bridge();
    assert_eq!(
        host(&["ip", "-o", "link", "show", "master", &bridge]),
        "",
        "no veth on {bridge}"
    );
    assert!(d.netns_files().is_empty(), "{:?}", d.netns_files());
    drop(taken);

    // connect to a missing network, rm of a network in use.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "c",
        "--network",
        "alpha",
        "busybox",
        "sleep",
        "1000",
    ]);
    let (code, err) = d.fails(&["network", "connect", "nosuch", "c"]);
    assert_eq!(code, 1);
    assert!(err.contains("network nosuch not found"), "{err}");
    let (code, err) = d.fails(&["network", "rm", "alpha"]);
    assert_eq!(code, 1);
    assert!(err.starts_with("Error response from daemon: "), "{err}");
    let names = d.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(
        names.lines().any(|n| n == "alpha"),
        "alpha is still there: {names}"
    );
    let (code, err) = d.fails(&["run", "--rm", "--network", "nosuch", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("nosuch") && err.contains("not found"), "{err}");
    let (code, err) = d.fails(&["run", "--rm", "--network-alias", "x", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("user-defined networks"), "{err}");
}

#[test]
fn published_ports_and_dns_survive_a_daemon_crash() {
    if !ready() {
        return;
    }
    let mut d = Daemon::start();
    d.web_image();
    d.ok(&["network", "create", "n1"]);
    let port = free_tcp_port();
    d.web("web", &["--network", "n1", "-p", &format!("{port}:80")]);
    d.web("db", &["--network", "n1"]);
    let db_ip = d.ip("db", "n1");
    assert!(serves(&format!("http://127.0.0.1:{port}/")));

    d.kill9();
    d.spawn();
    assert_eq!(d.inspect("web", "{{.State.Running}}"), "true");
    assert!(
        serves(&format!("http://127.0.0.1:{port}/")),
        "the port serves after the restart; daemon log:\n{}",
        d.log()
    );
    assert_eq!(
        d.ok(&["port", "web"]),
        format!("80/tcp -> 0.0.0.0:{port}\n")
    );
    let rules = d.nft_table();
    assert!(has_token(&rules, &port.to_string()), "{rules}");
    let lookup = d.ok(&["exec", "web", "nslookup", "db"]);
    assert!(
        has_token(&lookup, &db_ip),
        "DNS answers after the restart: {lookup}"
    );
    assert_eq!(d.ok(&["exec", "web", "wget", "-qO-", "http://db/"]), PAGE);
    // The port stays reserved by the new daemon: a second publication fails.
    let (code, _) = d.fails(&["run", "-d", "-p", &format!("{port}:80"), "web:1", "true"]);
    assert_eq!(code, 125);
}

#[test]
fn the_docker_cli_manages_networks_and_ports() {
    if !(ready()
        && require(
            "the docker CLI at /usr/local/bin/docker",
            Path::new(DOCKER).exists(),
        ))
    {
        return;
    }
    let d = Daemon::start();
    let tar =
        cais_testkit::busybox_rootfs_tar(d.dir.path(), &[("www/index.html", PAGE.as_bytes())]);
    d.docker_ok(&["import", &tar.to_string_lossy(), "web:1"]);
    let id = d.docker_ok(&["network", "create", "n1"]).trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    // A missing network is named at once; the CLI does not take it for a
    // missing image and try a pull.
    let out = d.docker(&["run", "--rm", "--network", "nosuch", "web:1", "true"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(err.contains("network nosuch not found"), "{err}");
    assert!(!err.contains("Unable to find image"), "{err}");
    let ls = d.docker_ok(&["network", "ls"]);
    assert!(ls.starts_with("NETWORK ID"), "{ls}");
    assert!(
        ls.lines().any(|l| l
            .split_whitespace()
            .eq([&id[..12], "n1", "bridge", "local"])),
        "{ls}"
    );
    assert_eq!(
        d.docker_ok(&["network", "inspect", "-f", "{{.Name}} {{.Driver}}", "n1"])
            .trim(),
        "n1 bridge"
    );

    let mut run = vec![
        "run",
        "-d",
        "--name",
        "db",
        "--network",
        "n1",
        "--network-alias",
        "database",
        "web:1",
    ];
    run.extend_from_slice(HTTPD);
    d.docker_ok(&run);
    let get = |name: &str| {
        let url = format!("http://{name}/");
        let w = wget("10", &url);
        let mut args = vec!["run", "--rm", "--network", "n1", "web:1"];
        args.extend(w.iter().map(String::as_str));
        d.docker(&args)
    };
    wait_until("db answers", || get("database").status.success());
    assert_eq!(text(&get("database").stdout), PAGE);
    assert_eq!(text(&get("db").stdout), PAGE);

    let port = free_tcp_port();
    let mut run = vec!["run", "-d", "--name", "web"];
    let publish = format!("{port}:80");
    run.extend_from_slice(&["-p", &publish, "web:1"]);
    run.extend_from_slice(HTTPD);
    d.docker_ok(&run);
    let ports = d.docker_ok(&["port", "web"]);
    assert!(
        ports
            .lines()
            .any(|l| l == format!("80/tcp -> 0.0.0.0:{port}")),
        "{ports}"
    );
    assert_eq!(
        d.docker_ok(&["port", "web", "80"]).lines().next(),
        Some(format!("0.0.0.0:{port}").as_str())
    );
    assert!(d
        .docker_ok(&["ps"])
        .contains(&format!("0.0.0.0:{port}->80/tcp")));
    assert!(serves(&format!("http://localhost:{port}/")));

    d.docker_ok(&["network", "connect", "--alias", "front", "n1", "web"]);
    let ip = d
        .docker_ok(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.n1.IPAddress}}",
            "web",
        ])
        .trim()
        .to_string();
    assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "{ip:?}");
    assert_eq!(text(&get("front").stdout), PAGE);
    let members = d.docker_ok(&["network", "inspect", "-f", "{{json .Containers}}", "n1"]);
    assert!(members.contains(&ip), "{members}");
    d.docker_ok(&["network", "disconnect", "n1", "web"]);
    assert!(!get("front").status.success());
    let out = d.docker(&["network", "rm", "n1"]);
    assert!(!out.status.success(), "n1 is in use by db");
    d.docker_ok(&["rm", "-f", "db", "web"]);
    d.docker_ok(&["network", "rm", "n1"]);
    assert!(!d.docker_ok(&["network", "ls"]).contains(" n1 "));
    assert!(!link_exists(&format!("cais-{}", &id[..10])));
}

#[test]
fn an_internal_network_keeps_its_traffic_inside() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    d.web_image();
    d.ok(&["network", "create", "--internal", "vault"]);
    d.web("safe", &["--network", "vault"]);
    let port = free_tcp_port();
    d.web("outside", &["-p", &format!("{port}:80")]);
    let outside_ip = d.ip("outside", "bridge");
    assert!(serves(&format!("http://127.0.0.1:{port}/")));
    let run_on_vault = |url: &str| {
        let w = wget("5", url);
        let mut args = vec!["run", "--rm", "--network", "vault", "busybox"];
        args.extend(w.iter().map(String::as_str));
        d.cais(&args)
    };
    // Inside: by name, through the network's DNS.
    let w = wget("10", "http://safe/");
    let mut args = vec!["run", "--rm", "--network", "vault", "busybox"];
    args.extend(w.iter().map(String::as_str));
    assert_eq!(d.eventually(&args), PAGE);
    // Out: neither another bridge nor the host's published port.
    let out = run_on_vault(&format!("http://{outside_ip}/"));
    assert!(!out.status.success(), "{}", text(&out.stdout));
    if let Some(addr) = host_address() {
        let out = run_on_vault(&format!("http://{addr}:{port}/"));
        assert!(!out.status.success(), "{}", text(&out.stdout));
    }
    // Nor the host's own services through the bridge's address, while a
    // container on the default bridge reaches the same service (control).
    let listener = std::net::TcpListener::bind("0.0.0.0:0").expect("host service");
    let host_port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut conn = conn;
            let _ = std::io::Write::write_all(
                &mut conn,
                b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\nhost",
            );
        }
    });
    let gateway = |network: &str| -> String {
        let v: serde_json::Value =
            serde_json::from_str(&d.ok(&["network", "inspect", network])).expect("inspect JSON");
        v[0]["IPAM"]["Config"][0]["Gateway"]
            .as_str()
            .expect("gateway")
            .to_string()
    };
    let w = wget("5", &format!("http://{}:{host_port}/", gateway("bridge")));
    let mut args = vec!["run", "--rm", "busybox"];
    args.extend(w.iter().map(String::as_str));
    assert_eq!(
        d.ok(&args),
        "host",
        "the default bridge reaches host services"
    );
    let out = run_on_vault(&format!("http://{}:{host_port}/", gateway("vault")));
    assert!(!out.status.success(), "{}", text(&out.stdout));
    // In: the safe container is not published, and the host cannot reach
    // it through a port either.
    assert_eq!(d.ok(&["port", "safe"]), "");
}
