//! nftables rules in cais-owned tables, rebuilt as a whole from the desired
//! state in one atomic transaction; nothing outside those tables is touched
//! but for the tagged accept rules described below.
//!
//! One `nft -f -` script per change (nft(8), "-f"): the kernel applies a
//! script as one transaction, so packets see either the old rules or the
//! new ones, never a half-built table.
//!
//! What the table `ip cais` holds:
//! - `prerouting` (nat, dstnat): DNAT of published ports for packets to a
//!   local address (`fib daddr type local`, or the one host address given).
//! - `output` (nat, -100): the same for connections the host itself opens,
//!   including to 127.0.0.1.
//! - `postrouting` (nat, srcnat): masquerade of a network's traffic leaving
//!   by another interface; of connections from 127.0.0.0/8 going out a
//!   bridge (localhost publishing); of hairpin connections (a container, or
//!   a neighbour on its bridge, reaching a published port through a host
//!   address), so replies come back through the host and are un-NATed.
//! - `forward` (filter): internal networks talk to nobody outside their
//!   bridge; replies pass; published (DNATed) connections pass; traffic
//!   between two cais bridges is dropped (network isolation); and nothing
//!   from outside reaches a container unless published, as docker ≥ 28.
//! - `input` (filter): guards route_localnet (below).
//!
//! Localhost publishing is kernel DNAT in `output` plus
//! `net.ipv4.conf.<bridge>.route_localnet=1` (ip-sysctl.rst), not a
//! userland proxy: no copy of every byte through a daemon process, no
//! process per port, the connection keeps its real semantics (half-close,
//! RST, UDP without a session table), and it is the same kernel path as
//! traffic from other hosts. route_localnet is what lets a packet with a
//! 127.0.0.1 source be routed out of the bridge at all (otherwise a
//! martian); it is then masqueraded to the bridge address. The flip side:
//! the bridge would also accept packets *to* 127.0.0.0/8 from containers
//! and deliver them to host services bound to localhost (CVE-2020-8558),
//! which the `input` chain drops unless they are replies.
//!
//! Interop with other tables on the same hooks: a packet must be accepted
//! by every base chain of a hook, so a drop anywhere wins and cais cannot
//! override it from its own table. dockerd (and others) set the policy of
//! iptables' `ip filter FORWARD` to DROP; with br_netfilter even traffic
//! between two containers on one bridge passes that chain. When that chain
//! exists with policy drop, cais inserts two accept rules per bridge at its
//! head (`iifname B accept`, `oifname B accept`), each with the comment
//! naming the cais table, and leaves the decision to its own `forward`
//! chain. That is the least it can change: rules matching only its own
//! bridges, found again by their exact comment and deleted by handle in
//! the next transaction and by [`remove`]; the chain, its policy and other
//! rules stay untouched; iptables-nft lists them as ordinary
//! `-i B -m comment --comment cais -j ACCEPT` rules. The order in which
//! the daemons start does not matter for dockerd: it sets the drop policy
//! only when it is the one to turn forwarding on, so either cais finds the
//! policy already set or forwarding is already on when dockerd starts.
//! Chains that drop by a rule rather than by policy, a policy changed
//! after the last [`apply`], and iptables-legacy (x_tables, invisible to
//! nft) are not handled.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::ipam::Subnet;
use crate::ports::Proto;
use crate::{Error, Result};

/// The table cais owns; also the comment tagging its rules elsewhere.
pub const TABLE: &str = "cais";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRules {
    pub bridge: String,
    pub subnet: Subnet,
    /// Masquerade traffic leaving the host (false for `--internal`).
    pub masquerade: bool,
    /// No traffic to or from outside the bridge.
    pub internal: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRule {
    pub proto: Proto,
    /// `None`: every host address.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_ip: Ipv4Addr,
    pub container_port: u16,
    pub bridge: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub networks: Vec<NetworkRules>,
    pub ports: Vec<PortRule>,
}

/// What cais found in another table's forward chain (`ip filter FORWARD`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForeignForward {
    /// The chain exists and its policy is drop.
    pub policy_drop: bool,
    /// Handles of rules carrying our tag, from earlier transactions.
    pub tagged: Vec<u64>,
}

/// Where the foreign forward chain lives: iptables-nft's name for it.
const FOREIGN_TABLE: &str = "filter";
const FOREIGN_CHAIN: &str = "FORWARD";

/// Replaces the cais tables with `rules` (one `nft -f` transaction), turns
/// on IPv4 forwarding and what localhost publishing needs.
pub fn apply(rules: &Ruleset) -> Result<()> {
    apply_to(TABLE, rules)
}

/// Deletes the cais tables (shutdown); missing tables are not an error.
pub fn remove() -> Result<()> {
    remove_table(TABLE)
}

/// [`apply`] with the table named `table` (tests use their own names, the
/// daemon uses [`TABLE`]). Rules cais adds to other tables carry `table`
/// as their comment.
pub fn apply_to(table: &str, rules: &Ruleset) -> Result<()> {
    validate(table, rules)?;
    let nft = nft()?;
    // Sysctls first: if a bridge is missing nothing changes.
    write_sysctl(Path::new("/proc/sys/net/ipv4/ip_forward"), "1")?;
    for n in &rules.networks {
        let p = PathBuf::from(format!(
            "/proc/sys/net/ipv4/conf/{}/route_localnet",
            n.bridge
        ));
        write_sysctl(&p, "1")?;
    }
    // The foreign chain is read, then changed by handle in the
    // transaction; if another program changed it in between, the
    // transaction fails as a whole, and is rebuilt from a fresh read.
    let mut last = None;
    for _ in 0..3 {
        let foreign = foreign_forward(&nft, table);
        match run(&nft, &script(table, rules, foreign.as_ref())) {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("the loop ran at least once"))
}

/// [`remove`] for the table named `table`, with its tagged rules in the
/// foreign forward chain.
pub fn remove_table(table: &str) -> Result<()> {
    check_name("table", table)?;
    // Without nft nobody can have made the table: nothing to remove.
    let Ok(nft) = nft() else {
        return Ok(());
    };
    let mut last = None;
    for _ in 0..3 {
        let foreign = foreign_forward(&nft, table);
        match run(&nft, &remove_script(table, foreign.as_ref())) {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("the loop ran at least once"))
}

/// The transaction that deletes `table` (creating it first makes a missing
/// table no error) and our tagged rules elsewhere.
pub fn remove_script(table: &str, foreign: Option<&ForeignForward>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "add table ip {table}");
    let _ = writeln!(s, "delete table ip {table}");
    for h in foreign.map(|f| &f.tagged[..]).unwrap_or_default() {
        let _ = writeln!(
            s,
            "delete rule ip {FOREIGN_TABLE} {FOREIGN_CHAIN} handle {h}"
        );
    }
    s
}

/// The whole transaction for `rules` in table `table`. Pure; `foreign` is
/// what [`apply_to`] read of `ip filter FORWARD` (`None`: no such chain).
pub fn script(table: &str, rules: &Ruleset, foreign: Option<&ForeignForward>) -> String {
    let mut s = remove_script(table, foreign);
    let bridges: Vec<&str> = rules.networks.iter().map(|n| n.bridge.as_str()).collect();

    if foreign.is_some_and(|f| f.policy_drop) {
        // `insert` puts a rule at the head of the chain: ahead of any
        // jump to a chain that might drop.
        for b in &bridges {
            for dir in ["iifname", "oifname"] {
                let _ = writeln!(
                    s,
                    "insert rule ip {FOREIGN_TABLE} {FOREIGN_CHAIN} {dir} \"{b}\" accept comment \"{table}\""
                );
            }
        }
    }

    let _ = writeln!(s, "table ip {table} {{");

    // DNAT. A published port on every address matches any local
    // destination; one on a given address only that one.
    let mut dnat = String::new();
    for p in &rules.ports {
        let daddr = match p.host_ip {
            Some(ip) if !ip.is_unspecified() => format!("ip daddr {ip} "),
            _ => String::new(),
        };
        let _ = writeln!(
            dnat,
            "\t\tfib daddr type local {daddr}{proto} dport {hp} dnat to {cip}:{cp}",
            proto = p.proto,
            hp = p.host_port,
            cip = p.container_ip,
            cp = p.container_port,
        );
    }
    chain(
        &mut s,
        "prerouting",
        "type nat hook prerouting priority dstnat; policy accept;",
        &dnat,
    );
    chain(
        &mut s,
        "output",
        "type nat hook output priority -100; policy accept;",
        &dnat,
    );

    let mut post = String::new();
    for n in rules.networks.iter().filter(|n| !n.internal) {
        let (b, net) = (&n.bridge, n.subnet);
        if n.masquerade {
            let _ = writeln!(post, "\t\tip saddr {net} oifname != \"{b}\" masquerade");
        }
        // Hairpin: a container reached its own (or a neighbour's)
        // published port through a host address; without the masquerade
        // the reply would go straight back on the bridge, from an address
        // the client never talked to.
        let _ = writeln!(
            post,
            "\t\tip saddr {net} oifname \"{b}\" ct status dnat masquerade"
        );
        // Localhost publishing: the source 127.0.0.1 means nothing to the
        // container; the bridge address does.
        let _ = writeln!(post, "\t\tip saddr 127.0.0.0/8 oifname \"{b}\" masquerade");
    }
    chain(
        &mut s,
        "postrouting",
        "type nat hook postrouting priority srcnat; policy accept;",
        &post,
    );

    let mut fwd = String::new();
    for n in rules.networks.iter().filter(|n| n.internal) {
        let b = &n.bridge;
        let _ = writeln!(fwd, "\t\tiifname \"{b}\" oifname != \"{b}\" drop");
        let _ = writeln!(fwd, "\t\toifname \"{b}\" iifname != \"{b}\" drop");
    }
    if !bridges.is_empty() {
        let set = name_set(&bridges);
        let _ = writeln!(fwd, "\t\tct state established,related accept");
        // Published ports are open to everyone, other networks included.
        let _ = writeln!(fwd, "\t\toifname {set} ct status dnat accept");
        for b in &bridges {
            let others: Vec<&str> = bridges.iter().copied().filter(|o| o != b).collect();
            if !others.is_empty() {
                let _ = writeln!(
                    fwd,
                    "\t\tiifname \"{b}\" oifname {} drop",
                    name_set(&others)
                );
            }
            // Only published ports are reachable from outside: without
            // this, any host routing to the subnet through us would reach
            // every port of every container. (Internal networks have this
            // rule already, first.)
            if !rules.networks.iter().any(|n| n.internal && n.bridge == *b) {
                let _ = writeln!(fwd, "\t\toifname \"{b}\" iifname != \"{b}\" drop");
            }
        }
    }
    chain(
        &mut s,
        "forward",
        "type filter hook forward priority filter; policy accept;",
        &fwd,
    );

    let mut input = String::new();
    if !bridges.is_empty() {
        let set = name_set(&bridges);
        let _ = writeln!(
            input,
            "\t\tiifname {set} ip daddr 127.0.0.0/8 ct state established,related accept"
        );
        let _ = writeln!(input, "\t\tiifname {set} ip daddr 127.0.0.0/8 drop");
    }
    chain(
        &mut s,
        "input",
        "type filter hook input priority filter; policy accept;",
        &input,
    );

    s.push_str("}\n");
    s
}

fn chain(s: &mut String, name: &str, header: &str, body: &str) {
    let _ = writeln!(s, "\tchain {name} {{\n\t\t{header}");
    s.push_str(body);
    s.push_str("\t}\n");
}

/// `{ "a", "b" }`: an anonymous set of interface names.
fn name_set(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    format!("{{ {} }}", quoted.join(", "))
}

/// Names go into the script verbatim, so only characters that need no
/// quoting in nft and are valid in interface names are allowed.
fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() < 16
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && name.as_bytes()[0].is_ascii_alphabetic();
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "invalid {what} name {name:?}: 1 to 15 of [A-Za-z0-9._-], starting with a letter"
        )))
    }
}

fn validate(table: &str, rules: &Ruleset) -> Result<()> {
    check_name("table", table)?;
    for n in &rules.networks {
        check_name("bridge", &n.bridge)?;
    }
    for p in &rules.ports {
        check_name("bridge", &p.bridge)?;
        if !rules.networks.iter().any(|n| n.bridge == p.bridge) {
            return Err(Error::InvalidArgument(format!(
                "port {}/{} is published on bridge {}, which is not among the networks",
                p.host_port, p.proto, p.bridge
            )));
        }
        if p.host_port == 0 || p.container_port == 0 {
            return Err(Error::InvalidArgument(format!(
                "port 0 cannot be published ({}:{} -> {}:{})",
                p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
                p.host_port,
                p.container_ip,
                p.container_port
            )));
        }
    }
    Ok(())
}

/// The nft binary: Debian's `nftables` package puts it in /usr/sbin, which
/// a daemon's PATH may lack.
fn nft() -> Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = vec!["/usr/sbin".into(), "/sbin".into(), "/usr/bin".into()];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.into_iter()
        .map(|d| d.join("nft"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Nftables("nft not found in /usr/sbin, /sbin or PATH (install nftables)".into())
        })
}

/// Whether the `nft` tool is installed (for tests and diagnostics).
pub fn nft_available() -> bool {
    nft().is_ok()
}

fn run(nft: &Path, script: &str) -> Result<()> {
    let mut child = Command::new(nft)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Io {
            op: "run",
            path: nft.to_path_buf(),
            source: e,
        })?;
    let written = child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(script.as_bytes());
    let out = child.wait_with_output().map_err(|e| Error::Io {
        op: "wait for",
        path: nft.to_path_buf(),
        source: e,
    })?;
    if !out.status.success() {
        return Err(Error::Nftables(format!(
            "nft -f failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    written.map_err(|e| Error::Io {
        op: "write rules to",
        path: nft.to_path_buf(),
        source: e,
    })
}

/// Reads `ip filter FORWARD` (`None` when there is no such chain).
fn foreign_forward(nft: &Path, tag: &str) -> Option<ForeignForward> {
    let out = Command::new(nft)
        .args(["-j", "list", "chain", "ip", FOREIGN_TABLE, FOREIGN_CHAIN])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    Some(parse_foreign(&v, tag))
}

/// The policy and our tagged rules in `nft -j list chain` output
/// (libnftables-json(5)).
pub fn parse_foreign(v: &serde_json::Value, tag: &str) -> ForeignForward {
    let mut f = ForeignForward::default();
    for item in v["nftables"].as_array().map(|a| &a[..]).unwrap_or_default() {
        if let Some(c) = item.get("chain") {
            if c["name"] == FOREIGN_CHAIN && c["table"] == FOREIGN_TABLE {
                f.policy_drop = c["policy"] == "drop";
            }
        }
        if let Some(r) = item.get("rule") {
            if r["comment"] == tag {
                if let Some(h) = r["handle"].as_u64() {
                    f.tagged.push(h);
                }
            }
        }
    }
    f
}

fn write_sysctl(path: &Path, value: &str) -> Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(path, value).map_err(|e| Error::Io {
        op: "write sysctl",
        path: path.to_path_buf(),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(bridge: &str, subnet: &str, internal: bool) -> NetworkRules {
        NetworkRules {
            bridge: bridge.into(),
            subnet: subnet.parse().expect("subnet"),
            masquerade: !internal,
            internal,
        }
    }

    fn port(bridge: &str, host_ip: Option<&str>, hp: u16, cip: &str, cp: u16) -> PortRule {
        PortRule {
            proto: Proto::Tcp,
            host_ip: host_ip.map(|s| s.parse().expect("ip")),
            host_port: hp,
            container_ip: cip.parse().expect("ip"),
            container_port: cp,
            bridge: bridge.into(),
        }
    }

    fn sample() -> Ruleset {
        Ruleset {
            networks: vec![
                net("cais0", "172.17.0.0/16", false),
                net("cais-a1", "172.18.0.0/16", false),
                net("cais-i1", "172.19.0.0/16", true),
            ],
            ports: vec![
                port("cais0", None, 8080, "172.17.0.2", 80),
                PortRule {
                    proto: Proto::Udp,
                    ..port("cais-a1", Some("127.0.0.1"), 5353, "172.18.0.3", 53)
                },
            ],
        }
    }

    /// The body of chain `name` in a script.
    fn chain_of<'a>(s: &'a str, name: &str) -> &'a str {
        let start = s
            .find(&format!("chain {name} {{"))
            .unwrap_or_else(|| panic!("chain {name} in {s}"));
        let end = s[start..].find("\t}").expect("chain end") + start;
        &s[start..end]
    }

    #[test]
    fn replaces_the_table_atomically() {
        let s = script("cais", &sample(), None);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "add table ip cais");
        assert_eq!(lines[1], "delete table ip cais");
        assert_eq!(lines[2], "table ip cais {");
        assert!(!s.contains("ip filter"), "{s}");
    }

    #[test]
    fn dnat_for_published_ports() {
        let s = script("cais", &sample(), None);
        for c in ["prerouting", "output"] {
            let body = chain_of(&s, c);
            assert!(
                body.contains("fib daddr type local tcp dport 8080 dnat to 172.17.0.2:80"),
                "{body}"
            );
            assert!(
                body.contains(
                    "fib daddr type local ip daddr 127.0.0.1 udp dport 5353 dnat to 172.18.0.3:53"
                ),
                "{body}"
            );
        }
        assert!(chain_of(&s, "prerouting").contains("hook prerouting priority dstnat"));
        assert!(chain_of(&s, "output").contains("hook output priority -100"));
    }

    #[test]
    fn masquerade_hairpin_and_localhost() {
        let s = script("cais", &sample(), None);
        let post = chain_of(&s, "postrouting");
        assert!(post.contains("hook postrouting priority srcnat"), "{post}");
        for want in [
            "ip saddr 172.17.0.0/16 oifname != \"cais0\" masquerade",
            "ip saddr 172.18.0.0/16 oifname != \"cais-a1\" masquerade",
            "ip saddr 172.17.0.0/16 oifname \"cais0\" ct status dnat masquerade",
            "ip saddr 127.0.0.0/8 oifname \"cais0\" masquerade",
            "ip saddr 127.0.0.0/8 oifname \"cais-a1\" masquerade",
        ] {
            assert!(post.contains(want), "{want} in {post}");
        }
        // Nothing of the internal network leaves, masqueraded or not.
        assert!(!post.contains("172.19.0.0/16"), "{post}");
        assert!(!post.contains("cais-i1"), "{post}");
    }

    #[test]
    fn forward_isolates_networks() {
        let s = script("cais", &sample(), None);
        let fwd = chain_of(&s, "forward");
        assert!(fwd.contains("hook forward priority filter; policy accept;"));
        for want in [
            "iifname \"cais-i1\" oifname != \"cais-i1\" drop",
            "oifname \"cais-i1\" iifname != \"cais-i1\" drop",
            "ct state established,related accept",
            "iifname \"cais0\" oifname { \"cais-a1\", \"cais-i1\" } drop",
            "iifname \"cais-a1\" oifname { \"cais0\", \"cais-i1\" } drop",
            "oifname \"cais0\" iifname != \"cais0\" drop",
        ] {
            assert!(fwd.contains(want), "{want} in {fwd}");
        }
        // Internal drops come before anything that accepts.
        let internal = fwd.find("oifname \"cais-i1\" iifname").expect("internal");
        let est = fwd.find("established").expect("established");
        let dnat = fwd.find("ct status dnat accept").expect("dnat");
        let iso = fwd.find("iifname \"cais0\" oifname {").expect("isolation");
        assert!(internal < est && est < dnat && dnat < iso, "{fwd}");
        let input = chain_of(&s, "input");
        assert!(input.contains("ip daddr 127.0.0.0/8 drop"), "{input}");
    }

    #[test]
    fn one_network_no_isolation_set() {
        let r = Ruleset {
            networks: vec![net("cais0", "172.17.0.0/16", false)],
            ports: vec![],
        };
        let s = script("cais", &r, None);
        assert!(!chain_of(&s, "forward").contains("oifname {  }"), "{s}");
        assert!(!s.contains("oifname { } drop"));
        let empty = script("cais", &Ruleset::default(), None);
        assert!(chain_of(&empty, "forward").lines().count() == 2, "{empty}");
    }

    #[test]
    fn foreign_forward_chain() {
        let r = sample();
        let accept = ForeignForward {
            policy_drop: false,
            tagged: vec![7],
        };
        let s = script("cais", &r, Some(&accept));
        assert!(
            s.contains("delete rule ip filter FORWARD handle 7\n"),
            "{s}"
        );
        assert!(!s.contains("insert rule"), "{s}");

        let drop = ForeignForward {
            policy_drop: true,
            tagged: vec![],
        };
        let s = script("caist1", &r, Some(&drop));
        for b in ["cais0", "cais-a1", "cais-i1"] {
            for dir in ["iifname", "oifname"] {
                let want = format!(
                    "insert rule ip filter FORWARD {dir} \"{b}\" accept comment \"caist1\"\n"
                );
                assert!(s.contains(&want), "{want} in {s}");
            }
        }
        // Old tagged rules go in the same transaction as new ones come.
        assert_eq!(
            remove_script("cais", Some(&accept)),
            "add table ip cais\ndelete table ip cais\ndelete rule ip filter FORWARD handle 7\n"
        );
    }

    #[test]
    fn parses_foreign_chain() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
            {"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "handle": 2,
              "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
            {"rule": {"family": "ip", "table": "filter", "chain": "FORWARD", "handle": 12,
              "comment": "cais", "expr": []}},
            {"rule": {"family": "ip", "table": "filter", "chain": "FORWARD", "handle": 13,
              "comment": "caist1", "expr": []}},
            {"rule": {"family": "ip", "table": "filter", "chain": "FORWARD", "handle": 14,
              "expr": []}}]}"#,
        )
        .expect("json");
        let f = parse_foreign(&v, "cais");
        assert_eq!(
            f,
            ForeignForward {
                policy_drop: true,
                tagged: vec![12]
            }
        );
        assert!(!parse_foreign(&serde_json::json!({}), "cais").policy_drop);
    }

    #[test]
    fn refuses_unsafe_names_and_bad_ports() {
        let mut r = sample();
        r.networks[0].bridge = "cais0\" accept".into();
        assert!(validate("cais", &r).is_err());
        assert!(validate("ca is", &sample()).is_err());
        assert!(validate("1cais", &sample()).is_err());
        let mut r = sample();
        r.ports[0].bridge = "cais9".into();
        let err = validate("cais", &r)
            .expect_err("unknown bridge")
            .to_string();
        assert!(err.contains("not among the networks"), "{err}");
        let mut r = sample();
        r.ports[0].host_port = 0;
        assert!(validate("cais", &r).is_err());
        validate("cais", &sample()).expect("sample is valid");
    }
}
