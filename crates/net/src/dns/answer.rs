//! What the server does with one query message: answer it from the
//! engine's names, reject it, or send it upstream. Pure (no sockets), so the
//! decisions are unit-tested against a fake resolver.

use super::wire::{self, qtype, rcode, Name, Query, Response, WireError};
use super::Resolver;

/// Largest UDP response to a client without EDNS (RFC 1035 §2.3.4,
/// §4.2.1); with EDNS, the size its OPT record offers, up to
/// [`wire::EDNS_UDP_SIZE`]. A bigger answer is truncated (TC) and the
/// client repeats the query over TCP.
pub(crate) const UDP_LIMIT: usize = 512;
/// Largest message over TCP: its length prefix is 16 bits (RFC 1035 §4.2.2).
pub(crate) const TCP_LIMIT: usize = 65535;

/// The decision for one message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// Not a name of ours: relay the query as it is to an upstream, and its
    /// answer back. `servfail` is the answer when no upstream answers;
    /// `question_end` lets the forwarder check that an upstream response
    /// echoes the question.
    Forward {
        servfail: Vec<u8>,
        question_end: usize,
    },
    /// No response at all (see [`WireError::rcode`]).
    Drop,
}

/// Decides what to do with `msg`, received from container `client` over a
/// transport whose responses may be `limit` octets long ([`UDP_LIMIT`] or
/// [`TCP_LIMIT`]; over UDP an EDNS client may raise it).
pub(crate) fn handle(msg: &[u8], client: &str, resolver: &dyn Resolver, limit: usize) -> Outcome {
    let query = match wire::parse_query(msg) {
        Ok(q) => q,
        Err(e) => return reject(msg, e),
    };
    if query.edns.is_some_and(|e| e.version > 0) {
        return Outcome::Reply(Response::new(&query, wire::BADVERS, limit).finish());
    }
    let q = &query.question;
    // Container names exist in class IN only; CHAOS and friends are the
    // upstream's business.
    if q.qclass != wire::CLASS_IN {
        return forward(&query);
    }
    if q.qtype == qtype::PTR {
        if let Some(ip) = q.name.in_addr_arpa() {
            return match resolver.reverse(client, ip) {
                Some(target) => match Name::from_text(&target) {
                    Some(target) => {
                        let mut resp = Response::new(&query, rcode::NOERROR, limit);
                        resp.push_ptr(&target);
                        Outcome::Reply(resp.finish())
                    }
                    // The engine handed us a name DNS cannot carry.
                    None => Outcome::Reply(Response::new(&query, rcode::SERVFAIL, limit).finish()),
                },
                None => forward(&query),
            };
        }
    }
    let Some(addrs) = q
        .name
        .lookup_key()
        .and_then(|key| resolver.lookup(client, &key))
    else {
        return forward(&query);
    };
    let mut resp = Response::new(&query, rcode::NOERROR, limit);
    match q.qtype {
        qtype::A | qtype::ANY => {
            // Rotate the list by the (random) query ID, so clients that
            // take the first address spread over all of them, as Docker's
            // shuffling does.
            let start = if addrs.is_empty() {
                0
            } else {
                usize::from(query.header.id) % addrs.len()
            };
            for ip in addrs[start..].iter().chain(&addrs[..start]) {
                if !resp.push_a(*ip) {
                    break;
                }
            }
        }
        // The name exists but has no records of this type: NOERROR with an
        // empty answer (RFC 2308 §2.2, "NODATA"). Networks are IPv4-only,
        // and an empty AAAA answer lets the client use the A answer at
        // once instead of waiting on an upstream that cannot know the name.
        qtype::AAAA => {}
        // Likewise for every other type: container names never go upstream.
        _ => {}
    }
    Outcome::Reply(resp.finish())
}

fn reject(msg: &[u8], e: WireError) -> Outcome {
    match e.rcode().and_then(|rc| wire::error_response(msg, rc)) {
        Some(resp) => Outcome::Reply(resp),
        None => Outcome::Drop,
    }
}

fn forward(query: &Query) -> Outcome {
    // A SERVFAIL has no answers, so it always fits.
    Outcome::Forward {
        servfail: Response::new(query, rcode::SERVFAIL, TCP_LIMIT).finish(),
        question_end: query.question_end,
    }
}
