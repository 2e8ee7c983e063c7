//! The DNS message format (RFC 1035 §4), as much of it as the embedded server
//! needs: queries are parsed and validated, answers are built. Every read is
//! bounds-checked; malformed input is an error value, never a panic.

use std::net::Ipv4Addr;

/// The fixed header (RFC 1035 §4.1.1).
pub(crate) const HEADER_LEN: usize = 12;

/// A name is at most 255 octets on the wire, a label at most 63
/// (RFC 1035 §2.3.4).
const MAX_NAME: usize = 255;
const MAX_LABEL: usize = 63;

// Header flag bits (RFC 1035 §4.1.1).
const QR: u16 = 1 << 15;
const OPCODE_MASK: u16 = 0xF << 11;
const TC: u16 = 1 << 9;
const RD: u16 = 1 << 8;
const RA: u16 = 1 << 7;

pub(crate) mod rcode {
    //! Response codes (RFC 1035 §4.1.1); 12 bits with EDNS (RFC 6891 §6.1.3).
    pub(crate) const NOERROR: u16 = 0;
    pub(crate) const FORMERR: u16 = 1;
    pub(crate) const SERVFAIL: u16 = 2;
    pub(crate) const NOTIMP: u16 = 4;
    pub(crate) const REFUSED: u16 = 5;
}

pub(crate) mod qtype {
    //! The types the server answers itself (RFC 1035 §3.2.2, RFC 3596 §2.1).
    pub(crate) const A: u16 = 1;
    pub(crate) const PTR: u16 = 12;
    pub(crate) const AAAA: u16 = 28;
    pub(crate) const ANY: u16 = 255;
}

/// Class IN (RFC 1035 §3.2.4).
pub(crate) const CLASS_IN: u16 = 1;

/// Why a message is not a query we can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WireError {
    #[error("message shorter than the 12-octet header")]
    ShortHeader,
    #[error("message is a response, not a query")]
    IsResponse,
    #[error("opcode {0} is not a standard query")]
    Opcode(u8),
    #[error("query has {0} questions, not one")]
    QuestionCount(u16),
    #[error("message ends inside a name or record")]
    Truncated,
    #[error("length octet {0:#04x}: a label over 63 octets or an obsolete label type")]
    LabelTooLong(u8),
    #[error("name longer than 255 octets")]
    NameTooLong,
    #[error("compression pointer to {0} does not point strictly backwards into the message")]
    BadPointer(usize),
    #[error("more than one OPT record, or one not owned by the root")]
    BadOpt,
}

impl WireError {
    /// The response code a query rejected for this reason gets, or `None`
    /// when it gets no response at all: a message without a whole header
    /// has no ID to answer to, and answering a response could start a loop
    /// between two servers.
    pub(crate) fn rcode(self) -> Option<u16> {
        match self {
            WireError::ShortHeader | WireError::IsResponse => None,
            // RFC 1035 §4.1.1: "Not Implemented - The name server does not
            // support the requested kind of query."
            WireError::Opcode(_) => Some(rcode::NOTIMP),
            _ => Some(rcode::FORMERR),
        }
    }
}

/// The header fields (RFC 1035 §4.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) id: u16,
    pub(crate) flags: u16,
    pub(crate) qdcount: u16,
    pub(crate) ancount: u16,
    pub(crate) nscount: u16,
    pub(crate) arcount: u16,
}

impl Header {
    pub(crate) fn parse(msg: &[u8]) -> Result<Header, WireError> {
        let mut r = Reader { msg, pos: 0 };
        let h = Header {
            id: r.u16()?,
            flags: r.u16()?,
            qdcount: r.u16()?,
            ancount: r.u16()?,
            nscount: r.u16()?,
            arcount: r.u16()?,
        };
        Ok(h)
    }

    pub(crate) fn is_response(&self) -> bool {
        self.flags & QR != 0
    }

    pub(crate) fn opcode(&self) -> u8 {
        ((self.flags & OPCODE_MASK) >> 11) as u8
    }

    fn write(&self, out: &mut Vec<u8>) {
        for v in [
            self.id,
            self.flags,
            self.qdcount,
            self.ancount,
            self.nscount,
            self.arcount,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

/// A domain name as its labels, with the case they arrived in (RFC 4343:
/// matching is case-insensitive, but an echoed question keeps its case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Name {
    labels: Vec<Vec<u8>>,
}

impl Name {
    /// A name from its text form (`db`, `db.net1.`): dot-separated labels
    /// of 1 to 63 octets, at most 255 octets on the wire. `None` if it
    /// cannot be one, and for the root, which no container is called.
    pub(crate) fn from_text(text: &str) -> Option<Name> {
        let text = text.strip_suffix('.').unwrap_or(text);
        let labels: Vec<Vec<u8>> = text.split('.').map(|l| l.as_bytes().to_vec()).collect();
        let name = Name { labels };
        let ok = name
            .labels
            .iter()
            .all(|l| !l.is_empty() && l.len() <= MAX_LABEL)
            && name.wire_len() <= MAX_NAME;
        ok.then_some(name)
    }

    /// The lowercase, dot-joined form the engine's resolver is asked about,
    /// without a trailing dot. `None` for the root and for names that
    /// cannot be container names or aliases (a label holding a dot,
    /// whitespace or non-ASCII octets): those go upstream unchanged.
    pub(crate) fn lookup_key(&self) -> Option<String> {
        if self.labels.is_empty() {
            return None;
        }
        let mut key = String::with_capacity(self.wire_len());
        for (i, label) in self.labels.iter().enumerate() {
            if i > 0 {
                key.push('.');
            }
            for &b in label {
                if !b.is_ascii_graphic() || b == b'.' {
                    return None;
                }
                key.push(char::from(b.to_ascii_lowercase()));
            }
        }
        Some(key)
    }

    /// The IPv4 address a `d.c.b.a.in-addr.arpa` name stands for
    /// (RFC 1035 §3.5), `None` for any other name.
    pub(crate) fn in_addr_arpa(&self) -> Option<Ipv4Addr> {
        let [d, c, b, a, in_addr, arpa] = self.labels.as_slice() else {
            return None;
        };
        if !in_addr.eq_ignore_ascii_case(b"in-addr") || !arpa.eq_ignore_ascii_case(b"arpa") {
            return None;
        }
        let octet = |l: &[u8]| -> Option<u8> {
            if l.is_empty() || l.len() > 3 || !l.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(l).ok()?.parse().ok()
        };
        Some(Ipv4Addr::new(octet(a)?, octet(b)?, octet(c)?, octet(d)?))
    }

    fn wire_len(&self) -> usize {
        self.labels.iter().map(|l| l.len() + 1).sum::<usize>() + 1
    }

    /// Writes the name uncompressed.
    fn write(&self, out: &mut Vec<u8>) {
        for label in &self.labels {
            // Labels are at most 63 octets: checked when the name was made.
            out.push(label.len() as u8);
            out.extend_from_slice(label);
        }
        out.push(0);
    }
}

/// The question of a query (RFC 1035 §4.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Question {
    pub(crate) name: Name,
    pub(crate) qtype: u16,
    pub(crate) qclass: u16,
}

/// What a query's OPT pseudo-record says (RFC 6891 §6.1.2, §6.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Edns {
    /// The largest UDP response the requestor can take.
    pub(crate) udp_size: u16,
    pub(crate) version: u8,
}

/// The TYPE of the OPT pseudo-record (RFC 6891 §6.1.1).
const TYPE_OPT: u16 = 41;
/// The EDNS version this server speaks (RFC 6891 §6.1.3).
const EDNS_VERSION: u8 = 0;
/// The UDP payload size the server advertises and the most it sends.
/// Its sockets are on `lo` (MTU 64 KiB), so unlike on a real link a
/// larger size cannot mean IP fragmentation (the reason DNS Flag Day
/// 2020 suggests 1232).
pub(crate) const EDNS_UDP_SIZE: u16 = 4096;
/// Size of an OPT record without options: root name, TYPE, CLASS, TTL,
/// RDLENGTH.
const OPT_LEN: usize = 1 + 2 + 2 + 4 + 2;

/// A validated standard query with exactly one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Query {
    pub(crate) header: Header,
    pub(crate) question: Question,
    /// Its OPT record, if the client speaks EDNS.
    pub(crate) edns: Option<Edns>,
    /// Offset just past the question in the original message: the bytes
    /// `12..question_end` are what a forwarded query's response must echo.
    pub(crate) question_end: usize,
}

/// Parses and validates a query: a whole header, QR clear, opcode QUERY,
/// exactly one question (RFC 9619), and every record the counts announce
/// present and well-formed. Trailing octets after the last record are
/// ignored.
pub(crate) fn parse_query(msg: &[u8]) -> Result<Query, WireError> {
    if msg.len() < HEADER_LEN {
        return Err(WireError::ShortHeader);
    }
    let header = Header::parse(msg)?;
    if header.is_response() {
        return Err(WireError::IsResponse);
    }
    if header.opcode() != 0 {
        return Err(WireError::Opcode(header.opcode()));
    }
    if header.qdcount != 1 {
        return Err(WireError::QuestionCount(header.qdcount));
    }
    let mut r = Reader {
        msg,
        pos: HEADER_LEN,
    };
    let name = r.name()?;
    let qtype = r.u16()?;
    let qclass = r.u16()?;
    let question_end = r.pos;
    // Queries normally carry no answer or authority records, and at most
    // an OPT record in the additional section. The server uses only the
    // OPT record, but a count that promises more records than the message
    // holds makes it malformed.
    for _ in 0..u32::from(header.ancount) + u32::from(header.nscount) {
        r.record()?;
    }
    let mut edns = None;
    for _ in 0..header.arcount {
        let rec = r.record()?;
        if rec.rtype != TYPE_OPT {
            continue;
        }
        // RFC 6891 §6.1.1: one OPT at most, owned by the root, or FORMERR.
        if edns.is_some() || !rec.root_owner {
            return Err(WireError::BadOpt);
        }
        edns = Some(Edns {
            // CLASS holds the payload size; below 512 means 512 (§6.2.5).
            udp_size: rec.class.max(512),
            // TTL: extended RCODE, VERSION, flags (§6.1.3).
            version: (rec.ttl >> 16) as u8,
        });
    }
    Ok(Query {
        header,
        question: Question {
            name,
            qtype,
            qclass,
        },
        edns,
        question_end,
    })
}

/// A bounds-checked cursor over a message.
struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn bytes(&mut self, n: usize) -> Result<&[u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::Truncated)?;
        let b = self.msg.get(self.pos..end).ok_or(WireError::Truncated)?;
        self.pos = end;
        Ok(b)
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Reads a name, following compression pointers (RFC 1035 §4.1.4).
    /// The cursor ends after the name where it started (after the first
    /// pointer, if any).
    fn name(&mut self) -> Result<Name, WireError> {
        let msg = self.msg;
        let mut labels = Vec::new();
        let mut wire_len = 1;
        // Every pointer must point strictly before the start of everything
        // read so far for this name. Positions therefore strictly decrease
        // from jump to jump, so no sequence of pointers can loop, and a
        // pointer can never make a name contain itself.
        let mut floor = self.pos;
        let mut pos = self.pos;
        let mut end: Option<usize> = None;
        loop {
            let len = *msg.get(pos).ok_or(WireError::Truncated)?;
            match len & 0xC0 {
                0x00 if len == 0 => {
                    self.pos = end.unwrap_or(pos + 1);
                    return Ok(Name { labels });
                }
                0x00 => {
                    let n = usize::from(len);
                    let label = msg.get(pos + 1..pos + 1 + n).ok_or(WireError::Truncated)?;
                    wire_len += n + 1;
                    if wire_len > MAX_NAME {
                        return Err(WireError::NameTooLong);
                    }
                    labels.push(label.to_vec());
                    pos += 1 + n;
                }
                0xC0 => {
                    let low = *msg.get(pos + 1).ok_or(WireError::Truncated)?;
                    let target = usize::from(len & 0x3F) << 8 | usize::from(low);
                    // The header holds no names: a pointer into it is as
                    // malformed as one forwards.
                    if target < HEADER_LEN || target >= floor {
                        return Err(WireError::BadPointer(target));
                    }
                    end.get_or_insert(pos + 2);
                    floor = target;
                    pos = target;
                }
                // 0x40 and 0x80: a label length over 63, or the extended
                // label types RFC 6891 §5 retired.
                _ => return Err(WireError::LabelTooLong(len)),
            }
        }
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads past one resource record (RFC 1035 §4.1.3), checking its
    /// name and that its RDATA is all there.
    fn record(&mut self) -> Result<RecordHead, WireError> {
        let root_owner = self.name()?.labels.is_empty();
        let rtype = self.u16()?;
        let class = self.u16()?;
        let ttl = self.u32()?;
        let rdlength = self.u16()?;
        self.bytes(usize::from(rdlength))?;
        Ok(RecordHead {
            root_owner,
            rtype,
            class,
            ttl,
        })
    }
}

/// The fixed fields of a record, as far as parsing queries needs them.
struct RecordHead {
    root_owner: bool,
    rtype: u16,
    class: u16,
    ttl: u32,
}

/// TTL of the records the server answers itself, in seconds; Docker's
/// embedded server uses the same.
pub(crate) const TTL: u32 = 600;

/// A response being built for a query: header, the echoed question,
/// answer records for as long as they fit in `limit` octets, and an OPT
/// record if the query had one.
pub(crate) struct Response {
    buf: Vec<u8>,
    limit: usize,
    answers: u16,
    /// The extended RCODE's upper 8 bits, when an OPT record goes out.
    opt: Option<u8>,
}

/// RFC 6891 §9: the requestor's EDNS version is not implemented.
pub(crate) const BADVERS: u16 = 16;

impl Response {
    /// A response to `query` with `rcode` (12 bits: over 15 only with
    /// EDNS) and no answers yet. QR and RA are set and RD is copied (RFC
    /// 1035 §4.1.1): the embedded server answers as the recursive resolver
    /// containers take it for. AA stays clear because the server is not
    /// the authority of any zone. The size limit is `limit`, or the
    /// client's EDNS payload size up to [`EDNS_UDP_SIZE`] if that is more.
    pub(crate) fn new(query: &Query, rcode: u16, limit: usize) -> Response {
        // RFC 6891 §7: a responder answers an OPT with an OPT, and its
        // size counts against the limit from the start.
        let (limit, opt) = match query.edns {
            Some(e) => (
                limit.max(usize::from(e.udp_size.min(EDNS_UDP_SIZE))) - OPT_LEN,
                Some((rcode >> 4) as u8),
            ),
            None => (limit, None),
        };
        let header = Header {
            id: query.header.id,
            flags: QR | (query.header.flags & RD) | RA | (rcode & 0xF),
            qdcount: 1,
            ancount: 0,
            nscount: 0,
            arcount: 0,
        };
        let mut buf = Vec::with_capacity(128);
        header.write(&mut buf);
        query.question.name.write(&mut buf);
        buf.extend_from_slice(&query.question.qtype.to_be_bytes());
        buf.extend_from_slice(&query.question.qclass.to_be_bytes());
        Response {
            buf,
            limit,
            answers: 0,
            opt,
        }
    }

    /// Appends an A record for the question's name. False (and TC set, RFC
    /// 1035 §4.1.1, RFC 2181 §9) when it does not fit: the client asks
    /// again over TCP, where the limit is 64 KiB.
    pub(crate) fn push_a(&mut self, ip: Ipv4Addr) -> bool {
        self.push(qtype::A, &ip.octets())
    }

    /// Appends a PTR record pointing at `target`.
    pub(crate) fn push_ptr(&mut self, target: &Name) -> bool {
        let mut rdata = Vec::with_capacity(target.wire_len());
        target.write(&mut rdata);
        self.push(qtype::PTR, &rdata)
    }

    fn push(&mut self, rtype: u16, rdata: &[u8]) -> bool {
        // The owner is the question's name, always at offset 12: a
        // two-octet compression pointer to it (RFC 1035 §4.1.4).
        let len = 2 + 10 + rdata.len();
        if self.buf.len() + len > self.limit || self.answers == u16::MAX {
            self.buf[2] |= (TC >> 8) as u8;
            return false;
        }
        self.buf
            .extend_from_slice(&(0xC000 | HEADER_LEN as u16).to_be_bytes());
        self.buf.extend_from_slice(&rtype.to_be_bytes());
        self.buf.extend_from_slice(&CLASS_IN.to_be_bytes());
        self.buf.extend_from_slice(&TTL.to_be_bytes());
        // rdata is an address or a name of at most 255 octets.
        self.buf
            .extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        self.buf.extend_from_slice(rdata);
        self.answers += 1;
        self.buf[6..8].copy_from_slice(&self.answers.to_be_bytes());
        true
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        if let Some(ext_rcode) = self.opt {
            // RFC 6891 §6.1.2-6.1.3: root owner, our payload size as
            // CLASS, TTL = extended RCODE | VERSION 0 | no flags, no
            // options.
            self.buf.push(0);
            self.buf.extend_from_slice(&TYPE_OPT.to_be_bytes());
            self.buf.extend_from_slice(&EDNS_UDP_SIZE.to_be_bytes());
            self.buf.push(ext_rcode);
            self.buf.push(EDNS_VERSION);
            self.buf.extend_from_slice(&[0, 0, 0, 0]);
            self.buf[11] = 1;
        }
        self.buf
    }
}

/// A header-only response with `rcode` to the message `msg`, whose
/// question could not be parsed, or `None` if it has no whole header.
pub(crate) fn error_response(msg: &[u8], rcode: u16) -> Option<Vec<u8>> {
    let query = Header::parse(msg).ok()?;
    let header = Header {
        id: query.id,
        flags: QR | (query.flags & (OPCODE_MASK | RD)) | RA | (rcode & 0xF),
        qdcount: 0,
        ancount: 0,
        nscount: 0,
        arcount: 0,
    };
    let mut buf = Vec::with_capacity(HEADER_LEN);
    header.write(&mut buf);
    Some(buf)
}

/// The response code of a message with a whole header.
pub(crate) fn rcode_of(msg: &[u8]) -> Option<u16> {
    Header::parse(msg).ok().map(|h| h.flags & 0xF)
}

/// Whether `resp` can be the upstream's answer to `query`: a response with
/// the same ID and the same question (RFC 5452 §3 and §9.1).
pub(crate) fn answers(resp: &[u8], query: &[u8], question_end: usize) -> bool {
    let (Ok(q), Ok(r)) = (Header::parse(query), Header::parse(resp)) else {
        return false;
    };
    let same_question = match (
        resp.get(HEADER_LEN..question_end),
        query.get(HEADER_LEN..question_end),
    ) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        _ => false,
    };
    r.is_response() && r.id == q.id && r.qdcount == 1 && same_question
}
