//! Privileged tests of cais-net against the real kernel: namespaces,
//! bridges, veth pairs and nftables. Every test uses names of its own
//! (`caist…` links, tempdir namespaces, `caist…` nft tables), so tests run
//! in parallel with each other and never touch the real `cais0` / `cais`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cais_net::ipam::{mac_for, Subnet};
use cais_net::link::{self, Attachment};
use cais_net::{netns, Error};

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    cais_testkit::require("running as root", unsafe { libc::geteuid() } == 0)
}

/// A link name unique to this process and call, ≤ 15 bytes.
fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let name = format!("{prefix}{:x}{n:x}", std::process::id());
    assert!(name.len() <= 15, "{name} too long");
    name
}

/// A subnet per test: 10.<pid-derived>.<n>.0/24, so parallel test
/// processes rarely share one, and within a process never.
fn test_subnet() -> Subnet {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed) as u8;
    let b = 100 + (std::process::id() % 100) as u8;
    Subnet::new(Ipv4Addr::new(10, b, n, 0), 24).expect("test subnet")
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
