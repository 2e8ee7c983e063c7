//! Privileged tests of cais-net against the real kernel: namespaces,
//! bridges, veth pairs and nftables. Every test uses names of its own
//! (`caist…` links, tempdir namespaces, `caist…` nft tables), so tests run
//! in parallel with each other and never touch the real `cais0` / `cais`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cais_net::firewall::{self, NetworkRules, PortRule, Ruleset};
use cais_net::ipam::{mac_for, routes_from_proc, Subnet};
use cais_net::link::{self, Attachment};
use cais_net::ports::{self, Proto};
use cais_net::{netns, Error};

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    cais_testkit::require("running as root", unsafe { libc::geteuid() } == 0)
}

fn root_and_nft() -> bool {
    root() && cais_testkit::require("nft (Debian package nftables)", firewall::nft_available())
}

/// A link name unique to this process and call, ≤ 15 bytes.
fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let name = format!("{prefix}{:x}{n:x}", std::process::id());
    assert!(name.len() <= 15, "{name} too long");
    name
}

/// A /24 per test in 10.100-199.x/16 (by process id), skipping subnets
/// the host already routes, so parallel test processes and the host's own
/// networks are left alone.
fn test_subnet() -> Subnet {
    static N: AtomicU32 = AtomicU32::new(0);
    let b = 100 + (std::process::id() % 100) as u8;
    loop {
        let n = N.fetch_add(1, Ordering::Relaxed);
        let n = u8::try_from(n).expect("fewer than 256 test subnets per process");
        let s = Subnet::new(Ipv4Addr::new(10, b, n, 0), 24).expect("test subnet");
        let routes = std::fs::read_to_string("/proc/net/route").expect("routes");
        if !routes_from_proc(&routes).iter().any(|r| r.overlaps(&s)) {
            return s;
        }
    }
}

fn host(s: Subnet, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(s.addr) + n)
}

/// Removes what a test made, also when it fails half-way.
struct Cleanup {
    links: Vec<String>,
    namespaces: Vec<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Cleanup {
    fn new() -> Cleanup {
        Cleanup {
            links: Vec::new(),
            namespaces: Vec::new(),
            _dir: tempfile::Builder::new()
                .prefix("cais-net-test-")
                .tempdir()
                .expect("tempdir"),
        }
    }

    fn netns(&mut self, name: &str) -> PathBuf {
        let p = self._dir.path().join(name);
        netns::create(&p).expect("create netns");
        self.namespaces.push(p.clone());
        p
    }

    fn bridge(&mut self, subnet: Subnet) -> String {
        let name = unique("caist");
        self.links.push(name.clone());
        link::ensure_bridge(&name, subnet.first_host(), subnet.prefix).expect("ensure bridge");
        name
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for l in &self.links {
            let _ = link::delete_link(l);
        }
        for n in &self.namespaces {
            let _ = netns::remove(n);
        }
    }
}

fn thread_netns() -> PathBuf {
    std::fs::read_link("/proc/thread-self/ns/net").expect("readlink ns")
}

fn attachment(ns: &Path, bridge: &str, subnet: Subnet, n: u32) -> Attachment {
    let address = host(subnet, n);
    Attachment {
        netns: ns.to_path_buf(),
        bridge: bridge.to_string(),
        host_ifname: unique("vcaist"),
        ifname: "eth0".into(),
        address,
        prefix: subnet.prefix,
        mac: mac_for(address),
        gateway: Some(subnet.first_host()),
        link_local: Vec::new(),
    }
}

/// Accepts one connection on `listener` and answers "pong" to "ping".
fn serve_once(listener: TcpListener) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let (mut c, _) = listener.accept().expect("accept");
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).expect("read ping");
        assert_eq!(&buf, b"ping");
        c.write_all(b"pong").expect("write pong");
    })
}

fn ping(addr: SocketAddrV4) -> std::io::Result<()> {
    let mut c = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(5))?;
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    c.write_all(b"ping")?;
    let mut buf = [0u8; 4];
    c.read_exact(&mut buf)?;
    assert_eq!(&buf, b"pong");
    Ok(())
}

#[test]
fn netns_create_run_in_remove() {
    if !root() {
        return;
    }
    let mut c = Cleanup::new();
    let before = thread_netns();
    let ns = c.netns("a");
    assert_eq!(thread_netns(), before, "the caller's thread never moves");

    let inside = netns::run_in(&ns, thread_netns).expect("run_in");
    assert_ne!(inside, before);
    // The same namespace on every entry, and lo is up there: a loopback
    // connection works.
    assert_eq!(netns::run_in(&ns, thread_netns).expect("again"), inside);
    // A child spawned from inside starts in the namespace too (what the
    // ping in `two_namespaces_on_a_bridge_talk` relies on).
    let child = netns::run_in(&ns, || {
        std::process::Command::new("readlink")
            .arg("/proc/self/ns/net")
            .output()
            .expect("run readlink")
    })
    .expect("run_in child");
    assert_eq!(
        String::from_utf8_lossy(&child.stdout).trim(),
        inside.to_string_lossy()
    );
    netns::run_in(&ns, || {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind lo");
        let addr = l.local_addr().expect("addr");
        let t = serve_once(l);
        TcpStream::connect(addr)
            .and_then(|mut s| s.write_all(b"ping"))
            .expect("loopback connect");
        t.join().expect("server");
        assert!(!link::link_exists("eth0"));
    })
    .expect("run_in lo");

    let again = netns::create(&ns).expect_err("exists");
    assert!(matches!(again, Error::Conflict(_)), "{again}");

    netns::remove(&ns).expect("remove");
    assert!(!ns.exists());
    netns::remove(&ns).expect("remove twice");
    assert!(netns::run_in(&ns, || ()).is_err());
}

#[test]
fn bridge_is_idempotent_and_fixes_its_address() {
    if !root() {
        return;
    }
    let mut c = Cleanup::new();
    let s = test_subnet();
    let br = c.bridge(s);
    assert!(link::link_exists(&br));
    link::ensure_bridge(&br, s.first_host(), s.prefix).expect("again");
    // A changed address replaces the old one.
    let gw2 = host(s, 254);
    link::ensure_bridge(&br, gw2, s.prefix).expect("readdress");
    let addrs = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", &br])
        .output()
        .expect("ip addr (read-only check)");
    let text = String::from_utf8_lossy(&addrs.stdout);
    assert!(text.contains(&format!("{gw2}/24")), "{text}");
    assert!(!text.contains(&format!("{}/24", s.first_host())), "{text}");
    let up = std::fs::read_to_string(format!("/sys/class/net/{br}/flags")).expect("flags");
    let flags = u32::from_str_radix(up.trim().trim_start_matches("0x"), 16).expect("hex");
    assert_eq!(flags & 1, 1, "bridge is up");

    // A link of another kind is refused before anything changes on it.
    let err = link::ensure_bridge("lo", s.first_host(), s.prefix).expect_err("not a bridge");
    assert!(matches!(err, Error::Conflict(_)), "{err}");

    link::delete_link(&br).expect("delete");
    assert!(!link::link_exists(&br));
    link::delete_link(&br).expect("delete missing");
}

/// Compose starts the first containers of a new network in parallel: each
/// start ensures the bridge, and every one must succeed with one address.
#[test]
fn concurrent_ensure_bridge_calls_all_succeed() {
    if !root() {
        return;
    }
    let mut c = Cleanup::new();
    let s = test_subnet();
    let br = unique("caistc");
    c.links.push(br.clone());
    for round in 0..20 {
        let start = std::sync::Arc::new(std::sync::Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (br, start) = (br.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    link::ensure_bridge(&br, s.first_host(), s.prefix)
                })
            })
            .collect();
        for t in threads {
            t.join()
                .expect("thread")
                .expect("ensure_bridge under contention");
        }
        let addrs = std::process::Command::new("ip")
            .args(["-4", "-o", "addr", "show", "dev", &br])
            .output()
            .expect("ip addr (read-only check)");
        let text = String::from_utf8_lossy(&addrs.stdout);
        assert_eq!(text.lines().count(), 1, "round {round}: {text}");
        assert!(text.contains(&format!("{}/24", s.first_host())), "{text}");
        link::delete_link(&br).expect("delete");
    }
}

#[test]
fn two_namespaces_on_a_bridge_talk() {
    if !root() {
        return;
    }
    let mut c = Cleanup::new();
    let s = test_subnet();
    let br = c.bridge(s);
    let (ns1, ns2) = (c.netns("one"), c.netns("two"));
    let a1 = attachment(&ns1, &br, s, 2);
    let a2 = attachment(&ns2, &br, s, 3);
    c.links.push(a1.host_ifname.clone());
    c.links.push(a2.host_ifname.clone());
    link::attach(&a1).expect("attach 1");
    link::attach(&a2).expect("attach 2");
    assert!(link::link_exists(&a1.host_ifname));
    let port = |f: &str| {
        std::fs::read_to_string(format!("/sys/class/net/{}/brport/{f}", a1.host_ifname))
            .expect("brport sysfs")
    };
    assert_eq!(port("hairpin_mode").trim(), "1");
    let master = std::fs::read_link(format!("/sys/class/net/{}/master", a1.host_ifname))
        .expect("master link");
    assert!(master.ends_with(&br), "{master:?}");

    // Inside: a default route via the gateway. (/proc/thread-self/net:
    // /proc/net is the main thread's view.)
    let routes = netns::run_in(&ns1, || {
        std::fs::read_to_string("/proc/thread-self/net/route").expect("routes")
    })
    .expect("run_in");
    let gw_hex = format!("{:08X}", u32::from_ne_bytes(s.first_host().octets()));
    assert!(
        routes
            .lines()
            .any(|l| l.starts_with("eth0\t00000000\t") && l.contains(&gw_hex)),
        "{routes}"
    );

    // ICMP echo: busybox's ping, started from a thread inside ns2 (a
    // child begins in the namespace of the thread that spawned it).
    if cais_testkit::require(
        "busybox (busybox-static) for ping",
        Path::new(cais_testkit::BUSYBOX).exists(),
    ) {
        let target = a1.address.to_string();
        let pinged = netns::run_in(&ns2, || {
            std::process::Command::new(cais_testkit::BUSYBOX)
                .args(["ping", "-c", "1", "-W", "3", &target])
                .output()
                .expect("run busybox ping")
        })
        .expect("run_in");
        assert!(
            pinged.status.success(),
            "ping ns1 from ns2: {}",
            String::from_utf8_lossy(&pinged.stdout)
        );
    }

    let listener = netns::run_in(&ns1, || TcpListener::bind((a1.address, 80)))
        .expect("run_in")
        .expect("bind in ns1");
    let server = serve_once(listener);
    netns::run_in(&ns2, || ping(SocketAddrV4::new(a1.address, 80)))
        .expect("run_in")
        .expect("ns2 reaches ns1 across the bridge");
    server.join().expect("server");

    // The host reaches a container through the bridge's address.
    let listener = netns::run_in(&ns2, || TcpListener::bind((a2.address, 8080)))
        .expect("run_in")
        .expect("bind in ns2");
    let server = serve_once(listener);
    ping(SocketAddrV4::new(a2.address, 8080)).expect("host reaches ns2");
    server.join().expect("server");
    // The host learnt the container's MAC by ARP: the one asked for.
    let arp = std::fs::read_to_string("/proc/net/arp").expect("arp");
    let want = a2
        .mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    assert!(
        arp.lines()
            .any(|l| l.starts_with(&format!("{} ", a2.address)) && l.contains(&want)),
        "{arp}"
    );

    link::detach(&a1.host_ifname).expect("detach");
    assert!(!link::link_exists(&a1.host_ifname));
    let gone = netns::run_in(&ns1, || link::link_exists("eth0")).expect("run_in");
    assert!(!gone, "the peer goes with the host end");
    link::detach(&a1.host_ifname).expect("detach twice");
}

#[test]
fn failed_attach_leaves_nothing() {
    if !root() {
        return;
    }
    let mut c = Cleanup::new();
    let s = test_subnet();
    let br = c.bridge(s);
    let ns = c.netns("f");

    // A gateway outside the subnet is unreachable: the route fails after
    // the pair exists.
    let mut a = attachment(&ns, &br, s, 2);
    c.links.push(a.host_ifname.clone());
    a.gateway = Some(Ipv4Addr::new(192, 0, 2, 254));
    let err = link::attach(&a).expect_err("unreachable gateway");
    assert!(
        err.to_string().contains("default route"),
        "{err}: {:?}",
        std::error::Error::source(&err)
    );
    assert!(!link::link_exists(&a.host_ifname));
    let left = netns::run_in(&ns, || link::link_exists("eth0")).expect("run_in");
    assert!(!left);

    // A missing bridge fails before anything is made.
    let mut b = attachment(&ns, "caistnope", s, 3);
    c.links.push(b.host_ifname.clone());
    b.gateway = None;
    assert!(link::attach(&b).is_err());
    assert!(!link::link_exists(&b.host_ifname));

    // The same container name twice is a conflict, and the first stays.
    let ok = attachment(&ns, &br, s, 4);
    c.links.push(ok.host_ifname.clone());
    link::attach(&ok).expect("attach");
    let mut dup = attachment(&ns, &br, s, 5);
    c.links.push(dup.host_ifname.clone());
    dup.gateway = None;
    let err = link::attach(&dup).expect_err("eth0 twice");
    assert!(matches!(err, Error::Conflict(_)), "{err}");
    assert!(!link::link_exists(&dup.host_ifname));
    assert!(link::link_exists(&ok.host_ifname));
}

/// `nft -j list <what>` in the calling thread's namespace; `None` when nft
/// says there is no such object.
fn nft_list(what: &[&str]) -> Option<serde_json::Value> {
    let out = std::process::Command::new("nft")
        .arg("-j")
        .arg("list")
        .args(what)
        .output()
        .expect("run nft");
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).expect("nft json"))
}

fn nft_script(script: &str) {
    let mut child = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("run nft");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write script");
    assert!(child.wait().expect("wait nft").success(), "{script}");
}

/// `(chain name, hook)` of the base chains and the number of rules.
fn table_shape(v: &serde_json::Value) -> (Vec<(String, String)>, usize) {
    let items = v["nftables"].as_array().expect("nftables array");
    let chains = items
        .iter()
        .filter_map(|i| i.get("chain"))
        .map(|c| {
            (
                c["name"].as_str().expect("name").to_string(),
                c["hook"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let rules = items.iter().filter(|i| i.get("rule").is_some()).count();
    (chains, rules)
}

fn rules_tagged(v: &serde_json::Value, tag: &str) -> usize {
    v["nftables"]
        .as_array()
        .expect("nftables array")
        .iter()
        .filter(|i| i["rule"]["comment"] == tag)
        .count()
}

fn connect_fails(addr: SocketAddrV4) -> bool {
    TcpStream::connect_timeout(&addr.into(), Duration::from_millis(700)).is_err()
}

fn network(bridge: &str, subnet: Subnet, internal: bool) -> NetworkRules {
    NetworkRules {
        bridge: bridge.into(),
        subnet,
        masquerade: !internal,
        internal,
    }
}

fn publish(a: &Attachment, host_port: u16, container_port: u16) -> PortRule {
    PortRule {
        proto: Proto::Tcp,
        host_ip: None,
        host_port,
        container_ip: a.address,
        container_port,
        bridge: a.bridge.clone(),
    }
}

/// Deletes a test's nft table however the test ends.
struct TableGuard(String);

impl Drop for TableGuard {
    fn drop(&mut self) {
        let _ = firewall::remove_table(&self.0);
    }
}

#[test]
fn firewall_applies_reads_back_and_removes() {
    if !root_and_nft() {
        return;
    }
    let mut c = Cleanup::new();
    let s = test_subnet();
    let br = c.bridge(s);
    let table = unique("caist");
    let _guard = TableGuard(table.clone());
    let rules = Ruleset {
        networks: vec![network(&br, s, false)],
        ports: vec![PortRule {
            proto: Proto::Udp,
            host_ip: Some(Ipv4Addr::LOCALHOST),
            host_port: 40053,
            container_ip: host(s, 2),
            container_port: 53,
            bridge: br.clone(),
        }],
    };
    firewall::apply_to(&table, &rules).expect("apply");
    let v = nft_list(&["table", "ip", &table]).expect("table exists");
    let (chains, n) = table_shape(&v);
    for (name, hook) in [
        ("prerouting", "prerouting"),
        ("output", "output"),
        ("postrouting", "postrouting"),
        ("forward", "forward"),
        ("input", "input"),
    ] {
        assert!(
            chains.contains(&(name.into(), hook.into())),
            "{name} in {chains:?}"
        );
    }
    let text = v.to_string();
    assert!(text.contains("40053") && text.contains("dnat"), "{text}");

    // Applying again replaces, it does not add.
    firewall::apply_to(&table, &rules).expect("apply again");
    let (_, again) = table_shape(&nft_list(&["table", "ip", &table]).expect("table"));
    assert_eq!(again, n);
    let fewer = Ruleset {
        ports: vec![],
        ..rules.clone()
    };
    firewall::apply_to(&table, &fewer).expect("apply fewer");
    let (_, less) = table_shape(&nft_list(&["table", "ip", &table]).expect("table"));
    assert_eq!(less, n - 2, "one DNAT rule less in prerouting and output");

    let sysctl = |p: &str| std::fs::read_to_string(p).expect("sysctl");
    assert_eq!(sysctl("/proc/sys/net/ipv4/ip_forward").trim(), "1");
    assert_eq!(
        sysctl(&format!("/proc/sys/net/ipv4/conf/{br}/route_localnet")).trim(),
        "1"
    );

    // A missing bridge changes nothing.
    let mut broken = rules.clone();
    broken
        .networks
        .push(network("caistnone", test_subnet(), false));
    assert!(firewall::apply_to(&table, &broken).is_err());
    let (_, still) = table_shape(&nft_list(&["table", "ip", &table]).expect("table"));
    assert_eq!(still, less);

    firewall::remove_table(&table).expect("remove");
    assert!(nft_list(&["table", "ip", &table]).is_none());
    firewall::remove_table(&table).expect("remove twice");
}

#[test]
fn published_port_reaches_container_through_localhost() {
    if !root_and_nft() {
        return;
    }
    let mut c = Cleanup::new();
    let s = test_subnet();
    let br = c.bridge(s);
    let (ns1, ns2) = (c.netns("srv"), c.netns("cli"));
    let a1 = attachment(&ns1, &br, s, 2);
    let a2 = attachment(&ns2, &br, s, 3);
    c.links.push(a1.host_ifname.clone());
    c.links.push(a2.host_ifname.clone());
    link::attach(&a1).expect("attach server");
    link::attach(&a2).expect("attach client");

    // The engine's order: hold the host port, then publish it.
    let held = ports::reserve(Proto::Tcp, None, 0).expect("reserve a host port");
    let p = held.port;
    let table = unique("caist");
    let guard = TableGuard(table.clone());
    let rules = Ruleset {
        networks: vec![network(&br, s, false)],
        ports: vec![publish(&a1, p, 80)],
    };
    firewall::apply_to(&table, &rules).expect("apply");

    let listen = || {
        netns::run_in(&ns1, || TcpListener::bind((a1.address, 80)))
            .expect("run_in")
            .expect("bind in the container")
    };
    let listener = listen();
    let gateway = SocketAddrV4::new(s.first_host(), p);
    for (what, from) in [
        ("localhost from the host", None),
        ("the gateway from a neighbour (hairpin)", Some(&ns2)),
        (
            "the gateway from the container itself (hairpin)",
            Some(&ns1),
        ),
    ] {
        let server = serve_once(listener.try_clone().expect("clone listener"));
        let r = match from {
            None => ping(SocketAddrV4::new(Ipv4Addr::LOCALHOST, p)),
            Some(ns) => netns::run_in(ns, || ping(gateway)).expect("run_in"),
        };
        r.unwrap_or_else(|e| panic!("{what}: {e}"));
        server.join().expect("server");
    }

    // UDP: a datagram to localhost:Q comes back from the container.
    let udp = netns::run_in(&ns1, || std::net::UdpSocket::bind((a1.address, 53)))
        .expect("run_in")
        .expect("udp bind in the container");
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 16];
        let (n, from) = udp.recv_from(&mut buf).expect("udp recv");
        udp.send_to(&buf[..n], from).expect("udp send");
    });
    let held_udp = ports::reserve(Proto::Udp, None, 0).expect("reserve udp");
    let mut with_udp = rules.clone();
    with_udp.ports.push(PortRule {
        proto: Proto::Udp,
        ..publish(&a1, held_udp.port, 53)
    });
    firewall::apply_to(&table, &with_udp).expect("apply with udp");
    let client = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp client");
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    client
        .send_to(b"hello", (Ipv4Addr::LOCALHOST, held_udp.port))
        .expect("udp send");
    let mut buf = [0u8; 16];
    let (n, _) = client.recv_from(&mut buf).expect("udp echo through DNAT");
    assert_eq!(&buf[..n], b"hello");
    echo.join().expect("echo");

    // After removal nothing is left: no rules, no links, no namespaces.
    drop(guard);
    assert!(nft_list(&["table", "ip", &table]).is_none());
    assert!(connect_fails(SocketAddrV4::new(Ipv4Addr::LOCALHOST, p)));
    drop(held);
    drop(listener);
    for l in [&a1.host_ifname, &a2.host_ifname] {
        link::detach(l).expect("detach");
    }
    link::delete_link(&br).expect("delete bridge");
    for ns in [&ns1, &ns2] {
        netns::remove(ns).expect("remove netns");
        assert!(!ns.exists());
    }
    for l in [&br, &a1.host_ifname, &a2.host_ifname] {
        assert!(!link::link_exists(l), "{l} left");
    }
}

#[test]
fn networks_are_isolated_and_internal_stays_inside() {
    if !root_and_nft() {
        return;
    }
    let mut c = Cleanup::new();
    let (sa, sb, si) = (test_subnet(), test_subnet(), test_subnet());
    let (bra, brb, bri) = (c.bridge(sa), c.bridge(sb), c.bridge(si));
    let (nsa, nsb, nsi) = (c.netns("a"), c.netns("b"), c.netns("i"));
    let aa = attachment(&nsa, &bra, sa, 2);
    let ab = attachment(&nsb, &brb, sb, 2);
    let ai = attachment(&nsi, &bri, si, 2);
    for a in [&aa, &ab, &ai] {
        c.links.push(a.host_ifname.clone());
        link::attach(a).expect("attach");
    }
    let listen = |ns: &Path, a: &Attachment| {
        netns::run_in(ns, || TcpListener::bind((a.address, 80)))
            .expect("run_in")
            .expect("bind")
    };
    let (la, lb, li) = (listen(&nsa, &aa), listen(&nsb, &ab), listen(&nsi, &ai));
    let to = |a: &Attachment| SocketAddrV4::new(a.address, 80);
    let from =
        |ns: &Path, addr: SocketAddrV4| netns::run_in(ns, || !connect_fails(addr)).expect("run_in");
    // Without rules the host routes between the bridges (forwarding on,
    // nothing dropping), which is what the rules must stop.
    if !from(&nsa, to(&ab)) {
        eprintln!("note: a cannot reach b even before the rules (forwarding off or dropped)");
    }
    let table = unique("caist");
    let _guard = TableGuard(table.clone());
    let p = ports::reserve(Proto::Tcp, None, 0).expect("reserve");
    let rules = Ruleset {
        networks: vec![
            network(&bra, sa, false),
            network(&brb, sb, false),
            network(&bri, si, true),
        ],
        ports: vec![publish(&aa, p.port, 80)],
    };
    firewall::apply_to(&table, &rules).expect("apply");
    // Connections complete into the listeners' backlogs; never accepted.
    let _listeners = (la, lb, li);

    assert!(!from(&nsa, to(&ab)), "a reached b");
    assert!(!from(&nsb, to(&aa)), "b reached a");
    assert!(!from(&nsi, to(&aa)), "internal reached a");
    assert!(!from(&nsa, to(&ai)), "a reached internal");
    // The host itself still reaches every container, internal included.
    assert!(!connect_fails(to(&ai)), "host to internal");
    // A published port is open to other networks, as to everyone.
    let published = SocketAddrV4::new(sb.first_host(), p.port);
    assert!(from(&nsb, published), "b to a's published port");
    assert!(!from(&nsi, published), "internal to a's published port");
}

#[test]
fn forward_drop_policy_is_opened_for_cais_bridges_only() {
    if !root_and_nft() {
        return;
    }
    // A namespace of its own stands in for the host: its `ip filter
    // FORWARD` gets policy drop (as dockerd sets), which on the real host
    // would cut every other forwarded packet.
    let mut c = Cleanup::new();
    let sandbox = c.netns("host");
    let dir = sandbox.parent().expect("dir").to_path_buf();
    let (ns1, ns2) = (dir.join("s1"), dir.join("s2"));
    c.namespaces.extend([ns1.clone(), ns2.clone()]);
    netns::run_in(&sandbox, || {
        let s = test_subnet();
        let br = unique("caist");
        link::ensure_bridge(&br, s.first_host(), s.prefix).expect("bridge");
        netns::create(&ns1).expect("ns1");
        netns::create(&ns2).expect("ns2");
        let a1 = attachment(&ns1, &br, s, 2);
        let a2 = attachment(&ns2, &br, s, 3);
        link::attach(&a1).expect("attach 1");
        link::attach(&a2).expect("attach 2");
        nft_script(
            "table ip filter {\n\
             \tchain FORWARD { type filter hook forward priority filter; policy drop; }\n\
             }\n\
             add rule ip filter FORWARD counter comment \"someone else\"\n",
        );
        let listener = netns::run_in(&ns1, || TcpListener::bind((a1.address, 80)))
            .expect("run_in")
            .expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let direct = SocketAddrV4::new(a1.address, 80);
        let bridged = std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables")
            .is_ok_and(|v| v.trim() == "1");
        if bridged {
            // br_netfilter: even traffic inside one bridge meets FORWARD.
            assert!(
                netns::run_in(&ns2, || connect_fails(direct)).expect("run_in"),
                "the drop policy does not bite; the test proves nothing"
            );
        }

        let table = unique("caist");
        let rules = Ruleset {
            networks: vec![network(&br, s, false)],
            ports: vec![publish(&a1, 8080, 80)],
        };
        firewall::apply_to(&table, &rules).expect("apply");
        firewall::apply_to(&table, &rules).expect("apply again");
        let fwd = nft_list(&["chain", "ip", "filter", "FORWARD"]).expect("chain");
        assert_eq!(rules_tagged(&fwd, &table), 2, "{fwd}");
        assert_eq!(rules_tagged(&fwd, "someone else"), 1, "{fwd}");

        let published = SocketAddrV4::new(s.first_host(), 8080);
        let ok = netns::run_in(&ns2, || !connect_fails(direct) && !connect_fails(published))
            .expect("run_in");
        assert!(ok, "container traffic passes despite the drop policy");
        let local = !connect_fails(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080));
        assert!(local, "localhost publishing in the sandbox");

        firewall::remove_table(&table).expect("remove");
        let fwd = nft_list(&["chain", "ip", "filter", "FORWARD"]).expect("chain");
        assert_eq!(rules_tagged(&fwd, &table), 0, "{fwd}");
        assert_eq!(rules_tagged(&fwd, "someone else"), 1, "{fwd}");
        assert!(fwd.to_string().contains(r#""policy":"drop""#), "{fwd}");
        assert!(netns::run_in(&ns2, || connect_fails(published)).expect("run_in"));
    })
    .expect("run_in sandbox");
    // The links die with the sandbox namespace, which Cleanup removes.
}
