//! Unit tests of the codec, the per-query decisions and resolv.conf parsing.

use std::net::{Ipv4Addr, SocketAddr};

use super::answer::{handle, Outcome, TCP_LIMIT, UDP_LIMIT};
use super::wire::{self, parse_query, WireError};
use super::{upstreams_from_resolv_conf, Resolver};

const A: u16 = 1;
const PTR: u16 = 12;
const MX: u16 = 15;
const AAAA: u16 = 28;

/// Wire form of a text name (test input, assumed valid).
fn name(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for l in text.split('.').filter(|l| !l.is_empty()) {
        out.push(l.len() as u8);
        out.extend_from_slice(l.as_bytes());
    }
    out.push(0);
    out
}

fn header(id: u16, flags: u16, qd: u16, an: u16, ns: u16, ar: u16) -> Vec<u8> {
    [id, flags, qd, an, ns, ar]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect()
}

/// A standard query with RD set.
fn query(id: u16, qname: &str, qtype: u16) -> Vec<u8> {
    query_class(id, qname, qtype, 1)
}

fn query_class(id: u16, qname: &str, qtype: u16, class: u16) -> Vec<u8> {
    let mut m = header(id, 0x0100, 1, 0, 0, 0);
    m.extend(name(qname));
    m.extend(qtype.to_be_bytes());
    m.extend(class.to_be_bytes());
    m
}

/// An EDNS OPT pseudo-record (RFC 6891 §6.1.2), advertising 4096 octets.
fn opt_record() -> Vec<u8> {
    opt(4096, 0)
}

fn opt(size: u16, version: u8) -> Vec<u8> {
    let mut r = vec![0];
    r.extend(41u16.to_be_bytes());
    r.extend(size.to_be_bytes());
    r.extend([0, version, 0x80, 0]); // DO set: ignored
    r.extend(0u16.to_be_bytes());
    r
}

/// `query` with an OPT record.
fn edns_query(id: u16, qname: &str, qtype: u16, size: u16, version: u8) -> Vec<u8> {
    let mut m = with_counts(query(id, qname, qtype), 1, 0, 0, 1);
    m.extend(opt(size, version));
    m
}

fn with_counts(mut m: Vec<u8>, qd: u16, an: u16, ns: u16, ar: u16) -> Vec<u8> {
    m[4..12].copy_from_slice(&header(0, 0, qd, an, ns, ar)[4..12]);
    m
}

#[test]
fn parse_query_table() {
    let good = query(7, "db", A);

    let mut with_opt = with_counts(query(7, "db", A), 1, 0, 0, 1);
    with_opt.extend(opt_record());

    // An additional record whose name points back at the question: a
    // legal backwards pointer.
    let mut back_ptr = with_counts(query(7, "db", A), 1, 0, 0, 1);
    back_ptr.extend([0xC0, 12]);
    back_ptr.extend([0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4]);

    // 63 + 63 + 63 + 61 octets of labels: exactly 255 octets on the wire.
    let longest = format!(
        "{}.{}.{}.{}",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(61)
    );
    let too_long = format!("{longest}x");

    let mut label64 = header(1, 0x0100, 1, 0, 0, 0);
    label64.push(64);
    label64.extend([b'x'; 64]);
    label64.extend([0, 0, 1, 0, 1]);

    let mut label_type_80 = header(1, 0x0100, 1, 0, 0, 0);
    label_type_80.extend([0x80, 0, 0, 1, 0, 1]);

    // The question's name is a pointer to itself.
    let mut self_loop = header(1, 0x0100, 1, 0, 0, 0);
    self_loop.extend([0xC0, 12, 0, 1, 0, 1]);

    // A label, then a pointer back to that label: a name that would
    // contain itself forever.
    let mut label_loop = header(1, 0x0100, 1, 0, 0, 0);
    label_loop.extend([1, b'a', 0xC0, 12, 0, 1, 0, 1]);

    // Two records pointing at each other: the first points forward.
    let mut mutual = with_counts(query(1, "db", A), 1, 0, 0, 2);
    let first = mutual.len();
    let second = first + 2 + 10;
    mutual.extend([0xC0, second as u8, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
    mutual.extend([0xC0, first as u8, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0]);

    let mut into_header = header(1, 0x0100, 1, 0, 0, 0);
    into_header.extend([0xC0, 2, 0, 1, 0, 1]);

    let mut rdata_short = with_counts(query(7, "db", A), 1, 0, 0, 1);
    rdata_short.extend([0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 8, 1, 2]);

    let mut two_opts = with_counts(query(7, "db", A), 1, 0, 0, 2);
    two_opts.extend(opt_record());
    two_opts.extend(opt_record());

    // An OPT record owned by "x" instead of the root.
    let mut opt_owner = with_counts(query(7, "db", A), 1, 0, 0, 1);
    opt_owner.extend([1, b'x']);
    opt_owner.extend(opt_record());

    let mut label_past_end = header(1, 0x0100, 1, 0, 0, 0);
    label_past_end.extend([5, b'a', b'b']);

    let cases: Vec<(&str, Vec<u8>, Result<(), WireError>)> = vec![
        ("plain A query", good.clone(), Ok(())),
        ("with EDNS OPT", with_opt, Ok(())),
        ("backwards pointer in a record", back_ptr, Ok(())),
        ("255-octet name", query(1, &longest, A), Ok(())),
        ("empty", vec![], Err(WireError::ShortHeader)),
        (
            "11 octets",
            good[..11].to_vec(),
            Err(WireError::ShortHeader),
        ),
        (
            "header only",
            good[..12].to_vec(),
            Err(WireError::Truncated),
        ),
        (
            "no qtype/qclass",
            good[..good.len() - 4].to_vec(),
            Err(WireError::Truncated),
        ),
        (
            "half a qclass",
            good[..good.len() - 1].to_vec(),
            Err(WireError::Truncated),
        ),
        (
            "label past the end",
            label_past_end,
            Err(WireError::Truncated),
        ),
        (
            "response",
            {
                let mut m = good.clone();
                m[2] |= 0x80;
                m
            },
            Err(WireError::IsResponse),
        ),
        (
            "opcode STATUS",
            {
                let mut m = good.clone();
                m[2] |= 2 << 3;
                m
            },
            Err(WireError::Opcode(2)),
        ),
        (
            "no question",
            with_counts(good.clone(), 0, 0, 0, 0),
            Err(WireError::QuestionCount(0)),
        ),
        (
            "two questions",
            with_counts(good.clone(), 2, 0, 0, 0),
            Err(WireError::QuestionCount(2)),
        ),
        (
            "answer count with no answer",
            with_counts(good.clone(), 1, 1, 0, 0),
            Err(WireError::Truncated),
        ),
        (
            "additional count with no record",
            with_counts(good.clone(), 1, 0, 0, 3),
            Err(WireError::Truncated),
        ),
        (
            "max counts",
            with_counts(good, 1, 0xFFFF, 0xFFFF, 0xFFFF),
            Err(WireError::Truncated),
        ),
        ("rdata past the end", rdata_short, Err(WireError::Truncated)),
        (
            "label of 64 octets",
            label64,
            Err(WireError::LabelTooLong(64)),
        ),
        (
            "label type 0x80",
            label_type_80,
            Err(WireError::LabelTooLong(0x80)),
        ),
        (
            "256-octet name",
            query(1, &too_long, A),
            Err(WireError::NameTooLong),
        ),
        (
            "pointer to itself",
            self_loop,
            Err(WireError::BadPointer(12)),
        ),
        ("pointer loop", label_loop, Err(WireError::BadPointer(12))),
        (
            "records pointing at each other",
            mutual,
            Err(WireError::BadPointer(second)),
        ),
        (
            "pointer into header",
            into_header,
            Err(WireError::BadPointer(2)),
        ),
        ("two OPT records", two_opts, Err(WireError::BadOpt)),
        (
            "OPT not owned by the root",
            opt_owner,
            Err(WireError::BadOpt),
        ),
    ];
    for (what, msg, want) in cases {
        let got = parse_query(&msg).map(|_| ());
        assert_eq!(got, want, "{what}");
    }
}

#[test]
fn parse_query_never_panics_on_prefixes_and_flips() {
    let mut m = with_counts(query(7, "db.example", A), 1, 0, 0, 1);
    m.extend(opt_record());
    for len in 0..=m.len() {
        let _ = parse_query(&m[..len]);
    }
    for i in 0..m.len() {
        for bit in 0..8 {
            let mut f = m.clone();
            f[i] ^= 1 << bit;
            let _ = parse_query(&f);
            let _ = handle(&f, "c1", &Names, UDP_LIMIT);
        }
    }
}

#[test]
fn random_messages_never_panic() {
    // xorshift64: deterministic, so a failure reproduces.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let len = (next() % 96) as usize;
        let mut m: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Mostly plausible headers, so the name and record code runs.
        if m.len() >= 12 && next() % 4 != 0 {
            m[2] &= 0x01;
            m[4..6].copy_from_slice(&[0, 1]);
            for c in &mut m[6..12] {
                *c &= 0x01;
            }
        }
        for limit in [UDP_LIMIT, TCP_LIMIT] {
            if let Outcome::Reply(r) = handle(&m, "c1", &Names, limit) {
                let max = limit.max(usize::from(wire::EDNS_UDP_SIZE));
                assert!(r.len() >= 12 && r.len() <= max);
                assert_eq!(r[..2], m[..2], "same id");
            }
        }
    }
}

#[test]
fn question_is_parsed() {
    let q = parse_query(&query(0x1234, "Db.Net1", AAAA)).expect("valid");
    assert_eq!(q.header.id, 0x1234);
    assert_eq!(q.question.qtype, AAAA);
    assert_eq!(q.question.qclass, 1);
    assert_eq!(q.question.name.lookup_key().as_deref(), Some("db.net1"));
    assert_eq!(q.question_end, 12 + name("Db.Net1").len() + 4);
}

#[test]
fn lookup_key_and_reverse_names() {
    let key = |n: &str| wire::Name::from_text(n).and_then(|n| n.lookup_key());
    assert_eq!(key("DataBase."), Some("database".into()));
    assert_eq!(key("."), None);
    assert_eq!(key(""), None);
    assert_eq!(key("a b"), None);
    assert_eq!(key("a..b"), None, "empty label");
    assert_eq!(key(&"x".repeat(64)), None, "label too long");

    let arpa = |n: &str| wire::Name::from_text(n).and_then(|n| n.in_addr_arpa());
    assert_eq!(
        arpa("3.2.1.10.in-addr.arpa"),
        Some(Ipv4Addr::new(10, 1, 2, 3))
    );
    assert_eq!(
        arpa("3.2.1.10.IN-ADDR.ARPA."),
        Some(Ipv4Addr::new(10, 1, 2, 3))
    );
    assert_eq!(arpa("2.1.10.in-addr.arpa"), None);
    assert_eq!(arpa("256.2.1.10.in-addr.arpa"), None);
    assert_eq!(arpa("+3.2.1.10.in-addr.arpa"), None);
    assert_eq!(arpa("3.2.1.10.ip6.arpa"), None);
}

/// c1 shares a network with db (alias database) and with the twelve
/// replicas of "web"; c2 shares nothing.
struct Names;

impl Resolver for Names {
    fn lookup(&self, client: &str, name: &str) -> Option<Vec<Ipv4Addr>> {
        match (client, name) {
            ("c1", "db" | "database") => Some(vec![Ipv4Addr::new(10, 1, 2, 3)]),
            ("c1", "web") => Some((1..=40).map(|i| Ipv4Addr::new(10, 1, 3, i)).collect()),
            ("c1", "empty") => Some(vec![]),
            _ => None,
        }
    }

    fn reverse(&self, client: &str, ip: Ipv4Addr) -> Option<String> {
        match (client, ip.octets()) {
            ("c1", [10, 1, 2, 3]) => Some("db".into()),
            ("c1", [10, 1, 2, 4]) => Some("bad..name".into()),
            _ => None,
        }
    }
}

/// What a test needs of a response: header fields and answer records
/// (owner always a pointer, as the server writes them).
#[derive(Debug)]
struct Resp {
    id: u16,
    flags: u16,
    rcode: u8,
    qdcount: u16,
    answers: Vec<(u16, u32, Vec<u8>)>,
    /// CLASS and TTL of the OPT record, if any.
    opt: Option<(u16, u32)>,
}

fn decode(m: &[u8]) -> Resp {
    let u16_at = |i: usize| u16::from_be_bytes([m[i], m[i + 1]]);
    let mut pos = 12;
    for _ in 0..u16_at(4) {
        while m[pos] != 0 {
            pos += 1 + m[pos] as usize;
        }
        pos += 5;
    }
    let mut answers = Vec::new();
    for _ in 0..u16_at(6) {
        assert_eq!(
            &m[pos..pos + 2],
            &[0xC0, 12],
            "owner points at the question"
        );
        let rtype = u16_at(pos + 2);
        assert_eq!(u16_at(pos + 4), 1, "class IN");
        let ttl = u32::from_be_bytes([m[pos + 6], m[pos + 7], m[pos + 8], m[pos + 9]]);
        let len = u16_at(pos + 10) as usize;
        answers.push((rtype, ttl, m[pos + 12..pos + 12 + len].to_vec()));
        pos += 12 + len;
    }
    assert_eq!(u16_at(8), 0, "no authority records");
    let mut opt = None;
    for _ in 0..u16_at(10) {
        assert_eq!(
            (m[pos], u16_at(pos + 1)),
            (0, 41),
            "only OPT, owned by the root"
        );
        assert!(opt.is_none(), "one OPT");
        let ttl = u32::from_be_bytes([m[pos + 5], m[pos + 6], m[pos + 7], m[pos + 8]]);
        opt = Some((u16_at(pos + 3), ttl));
        assert_eq!(u16_at(pos + 9), 0, "no options");
        pos += 11;
    }
    assert_eq!(pos, m.len(), "no trailing octets");
    Resp {
        id: u16_at(0),
        flags: u16_at(2),
        rcode: (u16_at(2) & 0xF) as u8,
        qdcount: u16_at(4),
        answers,
        opt,
    }
}

fn reply(msg: &[u8], client: &str, limit: usize) -> Resp {
    match handle(msg, client, &Names, limit) {
        Outcome::Reply(r) => {
            assert!(r.len() <= limit.max(usize::from(wire::EDNS_UDP_SIZE)));
            decode(&r)
        }
        other => panic!("expected a reply, got {other:?}"),
    }
}

#[test]
fn a_query_for_container_name() {
    for n in ["db", "DB", "Database", "db."] {
        let r = reply(&query(0x4242, n, A), "c1", UDP_LIMIT);
        assert_eq!(r.id, 0x4242);
        // QR, RD copied, RA; not AA, not TC; NOERROR.
        assert_eq!(r.flags, 0x8180, "{n}");
        assert_eq!(r.qdcount, 1);
        assert_eq!(r.answers, vec![(A, 600, vec![10, 1, 2, 3])], "{n}");
    }
}

#[test]
fn question_is_echoed_with_its_case() {
    let q = query(1, "DaTaBaSe", A);
    let Outcome::Reply(r) = handle(&q, "c1", &Names, UDP_LIMIT) else {
        panic!("expected a reply");
    };
    assert_eq!(&r[12..q.len()], &q[12..]);
}

#[test]
fn rd_clear_is_copied() {
    let mut q = query(1, "db", A);
    q[2] &= !0x01;
    assert_eq!(reply(&q, "c1", UDP_LIMIT).flags, 0x8080);
}

#[test]
fn other_types_for_container_name_are_nodata() {
    for t in [AAAA, MX, PTR] {
        let r = reply(&query(9, "db", t), "c1", UDP_LIMIT);
        assert_eq!(r.rcode, 0);
        assert!(r.answers.is_empty(), "type {t}");
    }
    let r = reply(&query(9, "empty", A), "c1", UDP_LIMIT);
    assert_eq!((r.rcode, r.answers.len()), (0, 0));
}

#[test]
fn ptr_of_container_address() {
    let r = reply(&query(5, "3.2.1.10.in-addr.arpa", PTR), "c1", UDP_LIMIT);
    assert_eq!(r.rcode, 0);
    assert_eq!(r.answers, vec![(PTR, 600, name("db"))]);
    let r = reply(&query(5, "4.2.1.10.in-addr.arpa", PTR), "c1", UDP_LIMIT);
    assert_eq!(r.rcode, 2, "a name DNS cannot carry is SERVFAIL");
}

#[test]
fn foreign_names_are_forwarded() {
    let cases = [
        ("c1", query(3, "example.org", A)),
        ("c2", query(3, "db", A)),
        ("c1", query(3, "9.9.9.9.in-addr.arpa", PTR)),
        ("c1", query(3, ".", A)),
        ("c1", query_class(3, "db", A, 3)),
    ];
    for (client, q) in cases {
        match handle(&q, client, &Names, UDP_LIMIT) {
            Outcome::Forward {
                servfail,
                question_end,
            } => {
                assert_eq!(question_end, q.len());
                let r = decode(&servfail);
                assert_eq!((r.id, r.rcode, r.qdcount), (3, 2, 1));
                assert_eq!(&servfail[12..q.len()], &q[12..]);
            }
            other => panic!("{client}: expected forward, got {other:?}"),
        }
    }
}

#[test]
fn many_addresses_truncate_over_udp_only() {
    let r = reply(&query(1, "web", A), "c1", UDP_LIMIT);
    assert_ne!(r.flags & 0x0200, 0, "TC");
    assert!(!r.answers.is_empty() && r.answers.len() < 40);
    let r = reply(&query(1, "web", A), "c1", TCP_LIMIT);
    assert_eq!(r.flags & 0x0200, 0);
    assert_eq!(r.answers.len(), 40);
}

#[test]
fn edns_raises_the_udp_limit_and_is_answered_with_opt() {
    let r = reply(&edns_query(1, "web", A, 4096, 0), "c1", UDP_LIMIT);
    assert_eq!(r.flags & 0x0200, 0, "no TC");
    assert_eq!(r.answers.len(), 40);
    assert_eq!(r.opt, Some((4096, 0)), "our size, version 0, no DO");

    // A client offering more than 4096 gets at most that; one offering
    // less than 512 gets 512 (RFC 6891 §6.2.5).
    let Outcome::Reply(big) = handle(&edns_query(1, "web", A, 65000, 0), "c1", &Names, UDP_LIMIT)
    else {
        panic!("expected a reply");
    };
    assert!(big.len() <= 4096);
    let Outcome::Reply(small) = handle(&edns_query(1, "web", A, 100, 0), "c1", &Names, UDP_LIMIT)
    else {
        panic!("expected a reply");
    };
    assert!(small.len() <= 512);
    let r = decode(&small);
    assert_ne!(r.flags & 0x0200, 0, "TC at 512 octets");
    assert!(r.opt.is_some());

    // The SERVFAIL kept for a failed forward carries an OPT too.
    let Outcome::Forward { servfail, .. } = handle(
        &edns_query(1, "example.org", A, 1232, 0),
        "c1",
        &Names,
        UDP_LIMIT,
    ) else {
        panic!("expected a forward");
    };
    let r = decode(&servfail);
    assert_eq!((r.rcode, r.opt), (2, Some((4096, 0))));
}

#[test]
fn unknown_edns_version_is_badvers() {
    let r = reply(&edns_query(1, "db", A, 1232, 1), "c1", UDP_LIMIT);
    // BADVERS is 16: 0 in the header, 1 in the OPT's extended RCODE.
    assert_eq!(r.rcode, 0);
    assert_eq!(r.opt, Some((4096, 1 << 24)));
    assert!(r.answers.is_empty());
}

#[test]
fn addresses_rotate_with_the_query_id() {
    let first = |id| {
        reply(&query(id, "web", A), "c1", TCP_LIMIT).answers[0]
            .2
            .clone()
    };
    assert_ne!(first(0), first(1));
    assert_eq!(first(0), first(40));
}

#[test]
fn malformed_queries_get_formerr_or_nothing() {
    let mut bad = query(0x77, "db", A);
    bad.truncate(bad.len() - 2);
    let r = reply(&bad, "c1", UDP_LIMIT);
    assert_eq!((r.id, r.rcode, r.qdcount), (0x77, 1, 0));

    let mut status = query(0x78, "db", A);
    status[2] |= 2 << 3;
    let r = reply(&status, "c1", UDP_LIMIT);
    assert_eq!((r.id, r.rcode), (0x78, 4), "NOTIMP");

    assert_eq!(handle(&[1, 2, 3], "c1", &Names, UDP_LIMIT), Outcome::Drop);
    let mut resp = query(1, "db", A);
    resp[2] |= 0x80;
    assert_eq!(handle(&resp, "c1", &Names, UDP_LIMIT), Outcome::Drop);
}

#[test]
fn upstream_answer_must_match() {
    let q = query(0x1111, "example.org", A);
    let qend = q.len();
    let mut good = q.clone();
    good[2] |= 0x80;
    assert!(wire::answers(&good, &q, qend));
    let mut upper = good.clone();
    upper[13] = b'E';
    assert!(wire::answers(&upper, &q, qend), "case may differ");
    let mut other_id = good.clone();
    other_id[1] = 0x12;
    assert!(!wire::answers(&other_id, &q, qend));
    assert!(!wire::answers(&q, &q, qend), "not a response");
    let other_name = {
        let mut m = query(0x1111, "example.com", A);
        m[2] |= 0x80;
        m
    };
    assert!(!wire::answers(&other_name, &q, qend));
    assert!(!wire::answers(&good[..20], &q, qend));
}

#[test]
fn resolv_conf() {
    let sa = |s: &str| s.parse::<SocketAddr>().expect("addr");
    let text = "\
# Generated by NetworkManager
search example.com
nameserver 127.0.0.53
 nameserver   10.0.0.2   # trailing comment
;nameserver 10.0.0.9
nameserver 2001:db8::1
nameserver fe80::1%3
nameserver 10.0.0.4
";
    assert_eq!(
        upstreams_from_resolv_conf(text),
        vec![
            sa("127.0.0.53:53"),
            sa("10.0.0.2:53"),
            sa("[2001:db8::1]:53")
        ]
    );
    assert_eq!(
        upstreams_from_resolv_conf("nameserver fe80::1%3\nnameserver fe80::1%lo\n"),
        vec![sa("[fe80::1%3]:53"), sa("[fe80::1%1]:53")]
    );
    assert_eq!(
        upstreams_from_resolv_conf(
            "nameserver\nnameserver bogus\nnameserver 1.2.3.4.5\nnameservers 1.1.1.1\nnameserver 1.1.1.1\nnameserver 1.1.1.1\n"
        ),
        vec![sa("1.1.1.1:53")]
    );
    assert!(upstreams_from_resolv_conf("").is_empty());
}

#[test]
fn failing_upstreams_are_skipped() {
    use super::forward::first_good;
    let with_rcode = |rc: u8| {
        let mut m = query(1, "example.org", A);
        m[2] |= 0x80;
        m[3] = 0x80 | rc;
        m
    };
    let (ok, nx, servfail, refused) = (with_rcode(0), with_rcode(3), with_rcode(2), with_rcode(5));
    let pick = |answers: Vec<Option<Vec<u8>>>| first_good(answers.into_iter());
    assert_eq!(pick(vec![None, Some(ok.clone())]), Some(ok.clone()));
    assert_eq!(
        pick(vec![Some(servfail.clone()), Some(nx.clone())]),
        Some(nx.clone())
    );
    assert_eq!(
        pick(vec![Some(refused.clone()), None, Some(ok.clone())]),
        Some(ok.clone())
    );
    assert_eq!(
        pick(vec![Some(nx.clone()), Some(ok)]),
        Some(nx),
        "NXDOMAIN is final"
    );
    assert_eq!(
        pick(vec![Some(servfail), Some(refused.clone()), None]),
        Some(refused)
    );
    assert_eq!(pick(vec![None, None]), None);
}

#[test]
fn server_is_shareable() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<super::DnsServer>();
}
