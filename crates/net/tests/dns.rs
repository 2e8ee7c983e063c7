//! The embedded DNS server against real network namespaces: sockets bound
//! inside them, queries sent from inside them, a fake upstream on the
//! host's loopback. Needs root and iproute2 (`ip netns`); a missing
//! requirement fails under CI and skips otherwise.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use cais_net::dns::{DnsServer, Resolver};
use cais_testkit::require;

const A: u16 = 1;
const PTR: u16 = 12;
const AAAA: u16 = 28;
const NOERROR: u8 = 0;
const FORMERR: u8 = 1;
const SERVFAIL: u8 = 2;
const NXDOMAIN: u8 = 3;
const REFUSED: u8 = 5;

fn requirements() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let ip = Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    require("running as root", root) && require("iproute2's ip command", ip)
}

/// A named network namespace (`ip netns add`) with lo up, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new() -> Netns {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "cais-dnstest-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// Runs `f` on a thread inside the namespace.
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let file = std::fs::File::open(self.path()).expect("open netns");
        thread::spawn(move || {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("netns thread")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// c1 shares a network with db (alias database); c2 shares none.
struct Names;

impl Resolver for Names {
    fn lookup(&self, client: &str, name: &str) -> Option<Vec<Ipv4Addr>> {
        match (client, name) {
            ("c1", "db" | "database") => Some(vec![Ipv4Addr::new(10, 1, 2, 3)]),
            _ => None,
        }
    }

    fn reverse(&self, client: &str, ip: Ipv4Addr) -> Option<String> {
        (client == "c1" && ip == Ipv4Addr::new(10, 1, 2, 3)).then(|| "db".to_owned())
    }
}

fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut m: Vec<u8> = [id, 0x0100, 1, 0, 0, 0]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    for l in name.split('.').filter(|l| !l.is_empty()) {
        m.push(l.len() as u8);
        m.extend_from_slice(l.as_bytes());
    }
    m.push(0);
    m.extend(qtype.to_be_bytes());
    m.extend(1u16.to_be_bytes());
    m
}

/// The parts of a response the tests look at.
#[derive(Debug)]
struct Resp {
    id: u16,
    rcode: u8,
    /// A records as addresses, PTR records as text.
    answers: Vec<String>,
}

/// Reads a possibly compressed name as text, returning it and the offset
/// after it.
fn read_name(m: &[u8], mut pos: usize) -> (String, usize) {
    let mut labels = Vec::new();
    let mut end = None;
    loop {
        let len = m[pos] as usize;
        if len == 0 {
            return (labels.join("."), end.unwrap_or(pos + 1));
        }
        if len & 0xC0 == 0xC0 {
            end.get_or_insert(pos + 2);
            pos = (len & 0x3F) << 8 | m[pos + 1] as usize;
            continue;
        }
        labels.push(String::from_utf8_lossy(&m[pos + 1..pos + 1 + len]).into_owned());
        pos += 1 + len;
    }
}

fn decode(m: &[u8]) -> Resp {
    let u16_at = |i: usize| u16::from_be_bytes([m[i], m[i + 1]]);
    assert_ne!(m[2] & 0x80, 0, "QR set");
    let mut pos = 12;
    for _ in 0..u16_at(4) {
        pos = read_name(m, pos).1 + 4;
    }
    let mut answers = Vec::new();
    for _ in 0..u16_at(6) {
        pos = read_name(m, pos).1;
        let rtype = u16_at(pos);
        let len = u16_at(pos + 8) as usize;
        let rdata = pos + 10;
        answers.push(match rtype {
            A => Ipv4Addr::new(m[rdata], m[rdata + 1], m[rdata + 2], m[rdata + 3]).to_string(),
            PTR => read_name(m, rdata).0,
            other => format!("type {other}"),
        });
        pos = rdata + len;
    }
    Resp {
        id: u16_at(0),
        rcode: m[3] & 0xF,
        answers,
    }
}

fn server_addr() -> SocketAddr {
    "127.0.0.11:53".parse().expect("addr")
}

/// Sends `msg` over UDP from inside `ns`; `None` if nothing comes back in
/// `timeout`.
fn udp_ask(ns: &Netns, msg: Vec<u8>, timeout: Duration) -> Option<Vec<u8>> {
    ns.run(move || {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind client");
        sock.set_read_timeout(Some(timeout)).expect("timeout");
        sock.send_to(&msg, server_addr()).expect("send");
        let mut buf = vec![0u8; 65535];
        let n = sock.recv(&mut buf).ok()?;
        buf.truncate(n);
        Some(buf)
    })
}

fn ask(ns: &Netns, name: &str, qtype: u16) -> Resp {
    let id = 0x5150;
    let resp = udp_ask(ns, query(id, name, qtype), Duration::from_secs(6))
        .unwrap_or_else(|| panic!("no answer for {name}"));
    let r = decode(&resp);
    assert_eq!(r.id, id);
    r
}

/// Sends queries over one TCP connection from inside `ns`.
fn tcp_ask(ns: &Netns, msgs: Vec<Vec<u8>>) -> std::io::Result<Vec<Resp>> {
    ns.run(move || {
        let mut s = TcpStream::connect_timeout(&server_addr(), Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(6)))?;
        let mut out = Vec::new();
        for m in msgs {
            let mut framed = (m.len() as u16).to_be_bytes().to_vec();
            framed.extend(m);
            s.write_all(&framed)?;
            let mut len = [0u8; 2];
            s.read_exact(&mut len)?;
            let mut resp = vec![0u8; u16::from_be_bytes(len) as usize];
            s.read_exact(&mut resp)?;
            out.push(decode(&resp));
        }
        Ok(out)
    })
}

/// Asserts that nothing listens at 127.0.0.11:53 (TCP) in `ns` any more.
/// A few tries: while another test of this process forks `ip`, the child
/// holds copies of every descriptor until it execs (close-on-exec), so a
/// closed listener can briefly outlive its close and a connection be reset
/// rather than refused. It is never answered.
fn assert_refused(ns: &Netns) {
    let mut last = None;
    for _ in 0..20 {
        match tcp_ask(ns, vec![query(1, "db", A)]) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            Err(e) => last = Some(e),
            Ok(r) => panic!("answered after close: {r:?}"),
        }
        thread::sleep(Duration::from_millis(50));
    }
    panic!("still listening: {last:?}");
}

/// An upstream resolver on the host's loopback, UDP and TCP on one port:
/// example.org is 192.0.2.7, every other name NXDOMAIN; or, refusing,
/// REFUSED for everything. Counts queries.
struct Upstream {
    addr: SocketAddr,
    udp_queries: Arc<AtomicUsize>,
    tcp_queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Upstream {
    fn start() -> Upstream {
        Upstream::start_with(false)
    }

    fn refusing() -> Upstream {
        Upstream::start_with(true)
    }

    fn start_with(refuse: bool) -> Upstream {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind upstream");
        let addr = udp.local_addr().expect("addr");
        let tcp = TcpListener::bind(addr).expect("bind upstream tcp");
        let up = Upstream {
            addr,
            udp_queries: Arc::default(),
            tcp_queries: Arc::default(),
            stop: Arc::default(),
        };
        let (count, stop) = (up.udp_queries.clone(), up.stop.clone());
        udp.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, peer)) = udp.recv_from(&mut buf) {
                    count.fetch_add(1, Ordering::Relaxed);
                    let _ = udp.send_to(&Upstream::answer(&buf[..n], refuse), peer);
                }
            }
        });
        let (count, stop) = (up.tcp_queries.clone(), up.stop.clone());
        tcp.set_nonblocking(true).expect("nonblocking");
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok((mut s, _)) = tcp.accept() else {
                    thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let _ = s.set_nonblocking(false);
                let mut len = [0u8; 2];
                if s.read_exact(&mut len).is_ok() {
                    let mut msg = vec![0; u16::from_be_bytes(len) as usize];
                    if s.read_exact(&mut msg).is_ok() {
                        count.fetch_add(1, Ordering::Relaxed);
                        let resp = Upstream::answer(&msg, refuse);
                        let mut framed = (resp.len() as u16).to_be_bytes().to_vec();
                        framed.extend(resp);
                        let _ = s.write_all(&framed);
                    }
                }
            }
        });
        up
    }

    fn answer(q: &[u8], refuse: bool) -> Vec<u8> {
        let (name, end) = read_name(q, 12);
        let mut r = q[..end + 4].to_vec();
        r[2] |= 0x80;
        r[3] = 0x80;
        r[10..12].copy_from_slice(&[0, 0]);
        if refuse {
            r[3] |= REFUSED;
        } else if name.eq_ignore_ascii_case("example.org") {
            r[7] = 1;
            r.extend([0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
        } else {
            r[3] |= NXDOMAIN;
        }
        r
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// An address where nothing ever answers: a bound UDP socket nobody
/// reads (so no ICMP error either) and a listener nobody accepts from.
fn silent_upstream() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let a = s.local_addr().expect("addr");
    (s, a)
}

fn start(upstreams: Vec<SocketAddr>) -> DnsServer {
    DnsServer::start(Arc::new(Names), upstreams).expect("start dns server")
}

#[test]
fn container_names_are_answered_inside_the_namespace() {
    if !requirements() {
        return;
    }
    let up = Upstream::start();
    let ns = Netns::new();
    let dns = start(vec![up.addr]);
    dns.add("c1", &ns.path()).expect("add");
    dns.add("c1", &ns.path()).expect("add is idempotent");

    for name in ["db", "database", "DB", "Database."] {
        let r = ask(&ns, name, A);
        assert_eq!(
            (r.rcode, r.answers.clone()),
            (NOERROR, vec!["10.1.2.3".into()]),
            "{name}"
        );
    }
    let r = ask(&ns, "db", AAAA);
    assert_eq!((r.rcode, r.answers.len()), (NOERROR, 0), "AAAA is NODATA");
    let r = ask(&ns, "3.2.1.10.in-addr.arpa", PTR);
    assert_eq!((r.rcode, r.answers), (NOERROR, vec!["db".to_owned()]));

    assert_eq!(
        up.udp_queries.load(Ordering::Relaxed),
        0,
        "nothing went upstream"
    );
}

#[test]
fn foreign_names_are_relayed_from_upstream() {
    if !requirements() {
        return;
    }
    let up = Upstream::start();
    let ns = Netns::new();
    let dns = start(vec![up.addr]);
    dns.add("c1", &ns.path()).expect("add");

    let r = ask(&ns, "example.org", A);
    assert_eq!(
        (r.rcode, r.answers),
        (NOERROR, vec!["192.0.2.7".to_owned()])
    );
    let r = ask(&ns, "nosuch.example", A);
    assert_eq!((r.rcode, r.answers.len()), (NXDOMAIN, 0));
    let r = ask(&ns, "9.9.9.9.in-addr.arpa", PTR);
    assert_eq!(r.rcode, NXDOMAIN, "unknown addresses go upstream too");
    assert_eq!(up.udp_queries.load(Ordering::Relaxed), 3);
}

#[test]
fn client_without_a_shared_network_goes_upstream() {
    if !requirements() {
        return;
    }
    let up = Upstream::start();
    let (ns1, ns2) = (Netns::new(), Netns::new());
    let dns = start(vec![up.addr]);
    dns.add("c1", &ns1.path()).expect("add c1");
    dns.add("c2", &ns2.path()).expect("add c2");

    let r = ask(&ns2, "db", A);
    assert_eq!((r.rcode, r.answers.len()), (NXDOMAIN, 0));
    assert_eq!(up.udp_queries.load(Ordering::Relaxed), 1);
    let r = ask(&ns1, "db", A);
    assert_eq!(r.answers, vec!["10.1.2.3".to_owned()]);
}

#[test]
fn tcp_queries_are_answered_and_forwarded_over_tcp() {
    if !requirements() {
        return;
    }
    let up = Upstream::start();
    let ns = Netns::new();
    let dns = start(vec![up.addr]);
    dns.add("c1", &ns.path()).expect("add");

    let rs = tcp_ask(
        &ns,
        vec![
            query(1, "db", A),
            query(2, "example.org", A),
            query(3, "database", A),
        ],
    )
    .expect("tcp queries");
    assert_eq!(rs[0].answers, vec!["10.1.2.3".to_owned()]);
    assert_eq!(
        (rs[1].id, rs[1].answers.clone()),
        (2, vec!["192.0.2.7".to_owned()])
    );
    assert_eq!(rs[2].answers, vec!["10.1.2.3".to_owned()]);
    assert_eq!(up.tcp_queries.load(Ordering::Relaxed), 1);
    assert_eq!(up.udp_queries.load(Ordering::Relaxed), 0);
}

#[test]
fn a_silent_upstream_is_skipped_after_its_timeout() {
    if !requirements() {
        return;
    }
    let up = Upstream::start();
    let (_silent, silent) = silent_upstream();
    let ns = Netns::new();
    let dns = start(vec![silent, up.addr]);
    dns.add("c1", &ns.path()).expect("add");

    let t = Instant::now();
    let r = ask(&ns, "example.org", A);
    assert_eq!(r.answers, vec!["192.0.2.7".to_owned()]);
    assert!(
        t.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn a_pending_upstream_does_not_hold_up_other_queries() {
    if !requirements() {
        return;
    }
    let up = Upstream::start();
    let (_silent, silent) = silent_upstream();
    let ns = Arc::new(Netns::new());
    let dns = start(vec![silent, up.addr]);
    dns.add("c1", &ns.path()).expect("add");

    let ns2 = Arc::clone(&ns);
    let slow = thread::spawn(move || ask(&ns2, "example.org", A));
    // Let the slow query reach the server first.
    thread::sleep(Duration::from_millis(200));
    assert_eq!(ask(&ns, "db", A).answers, vec!["10.1.2.3".to_owned()]);
    let rs = tcp_ask(&ns, vec![query(1, "database", A)]).expect("tcp");
    assert_eq!(rs[0].answers, vec!["10.1.2.3".to_owned()]);
    assert!(
        !slow.is_finished(),
        "answered while the silent upstream was still being waited for"
    );
    let r = slow.join().expect("slow query");
    assert_eq!(r.answers, vec!["192.0.2.7".to_owned()]);
}

#[test]
fn a_refusing_upstream_is_skipped() {
    if !requirements() {
        return;
    }
    let (refusing, up) = (Upstream::refusing(), Upstream::start());
    let ns = Netns::new();
    let dns = start(vec![refusing.addr, up.addr]);
    dns.add("c1", &ns.path()).expect("add");
    let r = ask(&ns, "example.org", A);
    assert_eq!(r.answers, vec!["192.0.2.7".to_owned()]);
    let rs = tcp_ask(&ns, vec![query(1, "example.org", A)]).expect("tcp");
    assert_eq!(rs[0].answers, vec!["192.0.2.7".to_owned()]);
    assert_eq!(refusing.udp_queries.load(Ordering::Relaxed), 1);
    assert_eq!(refusing.tcp_queries.load(Ordering::Relaxed), 1);

    // With nothing better, the refusal itself is relayed.
    let ns2 = Netns::new();
    let only_refusing = start(vec![refusing.addr]);
    only_refusing.add("c1", &ns2.path()).expect("add");
    assert_eq!(ask(&ns2, "example.org", A).rcode, REFUSED);
}

#[test]
fn without_upstreams_foreign_names_get_servfail() {
    if !requirements() {
        return;
    }
    let ns = Netns::new();
    let dns = start(vec![]);
    dns.add("c1", &ns.path()).expect("add");
    assert_eq!(ask(&ns, "example.org", A).rcode, SERVFAIL);
    assert_eq!(ask(&ns, "db", A).answers, vec!["10.1.2.3".to_owned()]);
}

#[test]
fn malformed_query_gets_formerr() {
    if !requirements() {
        return;
    }
    let ns = Netns::new();
    let dns = start(vec![]);
    dns.add("c1", &ns.path()).expect("add");
    let mut bad = query(0x0bad, "db", A);
    bad.truncate(bad.len() - 3);
    let resp = udp_ask(&ns, bad, Duration::from_secs(3)).expect("a response");
    let r = decode(&resp);
    assert_eq!((r.id, r.rcode), (0x0bad, FORMERR));
    // Too short to answer: dropped, and the server goes on serving.
    assert!(udp_ask(&ns, vec![1, 2, 3], Duration::from_millis(300)).is_none());
    assert_eq!(ask(&ns, "db", A).answers, vec!["10.1.2.3".to_owned()]);
}

#[test]
fn remove_closes_the_sockets() {
    if !requirements() {
        return;
    }
    let ns = Netns::new();
    let dns = start(vec![]);
    dns.add("c1", &ns.path()).expect("add");
    assert_eq!(ask(&ns, "db", A).answers, vec!["10.1.2.3".to_owned()]);

    dns.remove("c1");
    assert!(udp_ask(&ns, query(1, "db", A), Duration::from_secs(1)).is_none());
    assert_refused(&ns);
    dns.remove("c1");

    dns.add("c1", &ns.path()).expect("add again");
    assert_eq!(ask(&ns, "db", A).answers, vec!["10.1.2.3".to_owned()]);
}

#[test]
fn a_new_namespace_under_the_same_client_moves_the_sockets() {
    if !requirements() {
        return;
    }
    let (ns1, ns2) = (Netns::new(), Netns::new());
    let dns = start(vec![]);
    dns.add("c1", &ns1.path()).expect("add");
    dns.add("c1", &ns2.path()).expect("add elsewhere");
    assert_eq!(ask(&ns2, "db", A).answers, vec!["10.1.2.3".to_owned()]);
    assert_refused(&ns1);
}

#[test]
fn dropping_the_server_closes_everything() {
    if !requirements() {
        return;
    }
    let ns = Netns::new();
    let dns = start(vec![]);
    dns.add("c1", &ns.path()).expect("add");
    assert_eq!(ask(&ns, "db", A).answers, vec!["10.1.2.3".to_owned()]);
    drop(dns);
    assert_refused(&ns);
}

#[test]
fn add_fails_for_what_is_not_a_network_namespace() {
    let dns = start(vec![]);
    let missing = dns.add("c1", Path::new("/nonexistent/netns"));
    assert!(missing.is_err());
    // A file that is not an nsfs file: setns(2) refuses it.
    let exe = std::env::current_exe().expect("test binary");
    let err = dns.add("c1", &exe).expect_err("not a namespace");
    assert!(err.to_string().contains("join network namespace"), "{err}");
}

#[test]
fn busybox_nslookup_inside_the_namespace() {
    if !requirements() || !cais_testkit::require_root_and_busybox() {
        return;
    }
    let up = Upstream::start();
    let ns = Netns::new();
    let dns = start(vec![up.addr]);
    dns.add("c1", &ns.path()).expect("add");
    let nslookup = |name: &str| {
        let out = Command::new("ip")
            .args(["netns", "exec", &ns.name, cais_testkit::BUSYBOX])
            .args(["nslookup", name, "127.0.0.11"])
            .output()
            .expect("run nslookup");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = nslookup("db");
    assert!(out.contains("10.1.2.3"), "{out}");
    let out = nslookup("example.org");
    assert!(out.contains("192.0.2.7"), "{out}");
}

/// The resolver containers really use: glibc's stub (`getent` through
/// nsswitch), with the resolv.conf the engine gives containers on
/// user-defined networks. `ip netns exec` bind-mounts
/// /etc/netns/NAME/resolv.conf over /etc/resolv.conf. `ahosts` asks for A
/// and AAAA in parallel, `edns0` adds OPT records.
#[test]
fn glibc_resolver_inside_the_namespace() {
    let getent = Path::new("/usr/bin/getent").exists();
    if !requirements() || !require("glibc's getent", getent) {
        return;
    }
    let up = Upstream::start();
    let ns = Netns::new();
    let etc = Path::new("/etc/netns").join(&ns.name);
    std::fs::create_dir_all(&etc).expect("mkdir /etc/netns/NAME");
    struct RemoveDir(PathBuf);
    impl Drop for RemoveDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
            // /etc/netns too, if this made it and nothing else is there.
            if let Some(parent) = self.0.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
    }
    let _etc = RemoveDir(etc.clone());
    std::fs::write(
        etc.join("resolv.conf"),
        "nameserver 127.0.0.11\noptions ndots:0 edns0 timeout:3\n",
    )
    .expect("write resolv.conf");
    let dns = start(vec![up.addr]);
    dns.add("c1", &ns.path()).expect("add");
    let getent = |args: &[&str]| {
        let out = Command::new("ip")
            .args(["netns", "exec", &ns.name, "getent"])
            .args(args)
            .output()
            .expect("run getent");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for name in ["db", "database", "example.org"] {
        let out = getent(&["ahosts", name]);
        let want = if name == "example.org" {
            "192.0.2.7"
        } else {
            "10.1.2.3"
        };
        assert!(out.contains(want), "{name}: {out:?}");
    }
    let out = getent(&["hosts", "10.1.2.3"]);
    assert!(out.contains("db"), "reverse: {out:?}");
}

#[test]
fn many_clients_share_one_server() {
    if !requirements() {
        return;
    }
    let namespaces: Vec<Netns> = (0..8).map(|_| Netns::new()).collect();
    let dns = start(vec![]);
    for (i, ns) in namespaces.iter().enumerate() {
        let client = if i == 0 {
            "c1".to_owned()
        } else {
            ns.name.clone()
        };
        dns.add(&client, &ns.path()).expect("add");
    }
    for (i, ns) in namespaces.iter().enumerate() {
        let r = ask(ns, "db", A);
        if i == 0 {
            assert_eq!(r.answers, vec!["10.1.2.3".to_owned()]);
        } else {
            // Not on db's network, and no upstream to ask.
            assert_eq!((r.rcode, r.answers.len()), (SERVFAIL, 0), "{}", ns.name);
        }
    }
}
