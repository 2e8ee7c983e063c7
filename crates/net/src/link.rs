//! Links, addresses and routes over rtnetlink: bridges, veth pairs moved
//! into a container's namespace.
//!
//! A small rtnetlink client of our own over a raw `NETLINK_ROUTE` socket
//! (netlink(7), rtnetlink(7)): every request asks for an ACK, and the
//! kernel's errno (plus its extended-ACK text when it gives one) becomes
//! the error. A socket works in the network namespace of the thread that
//! created it, which is how [`crate::netns::run_in`] configures the inside
//! of a container.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

use crate::{netns, Error, Result};

// Message types and flags (linux/netlink.h, linux/rtnetlink.h).
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NETLINK_EXT_ACK: libc::c_int = 11;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;

// Link attributes (linux/if_link.h).
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_INFO_SLAVE_KIND: u16 = 4;
const IFLA_INFO_SLAVE_DATA: u16 = 5;
const IFLA_BRPORT_MODE: u16 = 4;
const VETH_INFO_PEER: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;

// Address and route attributes (linux/if_addr.h, linux/rtnetlink.h).
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;

const IFNAMSIZ: usize = 16;

/// A netlink request under construction: header, family header, then
/// attributes, each 4-byte aligned (netlink(3)'s NLMSG_ALIGN, RTA_ALIGN).
struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Msg {
    fn new(kind: u16, flags: u16) -> Msg {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by finish
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // sequence, set by send
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it
        Msg {
            buf,
            nests: Vec::new(),
        }
    }

    /// `struct ifinfomsg`: family, pad, type, index, flags, change.
    fn ifinfo(mut self, index: i32, flags: u32, change: u32) -> Msg {
        put_ifinfo(&mut self.buf, index, flags, change);
        self
    }

    /// `struct ifaddrmsg`: family, prefix length, flags, scope, index.
    fn ifaddr(mut self, prefix: u8, index: u32) -> Msg {
        self.buf
            .extend_from_slice(&[libc::AF_INET as u8, prefix, 0, RT_SCOPE_UNIVERSE]);
        self.buf.extend_from_slice(&index.to_ne_bytes());
        self
    }

    /// `struct rtmsg` for a unicast IPv4 route in the main table.
    fn rtmsg(mut self, dst_len: u8) -> Msg {
        self.buf.extend_from_slice(&[
            libc::AF_INET as u8,
            dst_len,
            0, // src_len
            0, // tos
            RT_TABLE_MAIN,
            RTPROT_BOOT, // what `ip route add` uses
            RT_SCOPE_UNIVERSE,
            RTN_UNICAST,
        ]);
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self
    }

    fn attr(mut self, kind: u16, data: &[u8]) -> Msg {
        put_attr(&mut self.buf, kind, data);
        self
    }

    fn attr_str(self, kind: u16, s: &str) -> Msg {
        let mut data = s.as_bytes().to_vec();
        data.push(0);
        self.attr(kind, &data)
    }

    fn attr_u32(self, kind: u16, v: u32) -> Msg {
        self.attr(kind, &v.to_ne_bytes())
    }

    fn nest(mut self, kind: u16) -> Msg {
        self.nests.push(self.buf.len());
        // Without NLA_F_NESTED, as iproute2 sends it: rtnetlink parses
        // these attributes by their policy, not by the flag.
        put_attr(&mut self.buf, kind, &[]);
        self
    }

    fn end(mut self) -> Msg {
        let start = self.nests.pop().expect("end() matches a nest()");
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }

    /// Raw bytes inside the current nest (a veth peer's ifinfomsg).
    fn raw(mut self, f: impl FnOnce(&mut Vec<u8>)) -> Msg {
        f(&mut self.buf);
        self
    }
}

fn put_ifinfo(buf: &mut Vec<u8>, index: i32, flags: u32, change: u32) {
    buf.extend_from_slice(&[libc::AF_UNSPEC as u8, 0]);
    buf.extend_from_slice(&0u16.to_ne_bytes());
    buf.extend_from_slice(&index.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&change.to_ne_bytes());
}

fn put_attr(buf: &mut Vec<u8>, kind: u16, data: &[u8]) {
    buf.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(data);
    pad(buf);
}

fn pad(buf: &mut Vec<u8>) {
    while buf.len() % 4 != 0 {
        buf.push(0);
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Attributes `(type, payload)` in `b` (nested flag stripped).
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = usize::from(u16_at(b, 0));
        if len < 4 || len > b.len() {
            break;
        }
        out.push((u16_at(b, 2) & !NLA_F_NESTED, &b[4..len]));
        let next = (len + 3) & !3;
        b = &b[next.min(b.len())..];
    }
    out
}

/// One rtnetlink socket in the calling thread's network namespace.
struct Socket {
    fd: OwnedFd,
    seq: u32,
}

impl Socket {
    fn open() -> std::io::Result<Socket> {
        // SAFETY: socket(2) takes integers only; the result is checked for -1 before
        // it is wrapped as an owned descriptor.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // Extended ACKs carry the kernel's reason in words ("Unknown
        // device type", ...); older kernels refuse the option, which is
        // fine: errno alone still reports the failure.
        let on: libc::c_int = 1;
        // SAFETY: `on` is a valid c_int for the option's length.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_NETLINK,
                NETLINK_EXT_ACK,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        // A reply never comes only through a bug (a request without
        // NLM_F_ACK); a bounded wait turns that into an error, not a hang.
        let timeout = libc::timeval {
            tv_sec: 30,
            tv_usec: 0,
        };
        // SAFETY: `timeout` is a valid timeval for the option's length.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Socket { fd, seq: 0 })
    }

    fn send(&mut self, mut msg: Msg) -> std::io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let len = msg.buf.len() as u32;
        msg.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        msg.buf[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        // The kernel is the default destination of an unconnected netlink
        // socket bound by its first send (netlink(7)).
        // SAFETY: the buffer is valid for its length.
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                msg.buf.as_ptr().cast(),
                msg.buf.len(),
                0,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(self.seq)
    }

    /// Receives the replies to request `seq`, calling `each` with the
    /// type and payload of every data message, until the ACK (or, for a
    /// dump, NLMSG_DONE). A kernel error becomes the errno with its text.
    fn replies(
        &mut self,
        seq: u32,
        mut each: impl FnMut(u16, &[u8]),
    ) -> std::result::Result<(), (std::io::Error, Option<String>)> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: buf is writable for its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err((e, None));
            }
            let mut b = &buf[..n as usize];
            while b.len() >= 16 {
                let len = u32_at(b, 0) as usize;
                if len < 16 || len > b.len() {
                    break;
                }
                let kind = u16_at(b, 4);
                let flags = u16_at(b, 6);
                let mseq = u32_at(b, 8);
                let payload = &b[16..len];
                b = &b[((len + 3) & !3).min(b.len())..];
                if mseq != seq {
                    continue; // a late reply to an earlier request
                }
                match kind {
                    NLMSG_ERROR => {
                        let code = if payload.len() >= 4 {
                            u32_at(payload, 0) as i32
                        } else {
                            0
                        };
                        if code == 0 {
                            return Ok(());
                        }
                        return Err((
                            std::io::Error::from_raw_os_error(-code),
                            ext_ack_text(payload, flags),
                        ));
                    }
                    NLMSG_DONE => return Ok(()),
                    // A dump's parts carry NLM_F_MULTI and end with DONE;
                    // a single answer is followed by the ACK.
                    _ => each(kind, payload),
                }
            }
        }
    }

    /// Sends `msg` with NLM_F_ACK and waits for the ACK.
    fn request(&mut self, op: impl Fn() -> String, msg: Msg) -> Result<()> {
        let mut msg = msg;
        let flags = u16_at(&msg.buf, 6) | NLM_F_ACK;
        msg.buf[6..8].copy_from_slice(&flags.to_ne_bytes());
        let seq = self.send(msg).map_err(|e| netlink_err(op(), e, None))?;
        self.replies(seq, |_, _| {})
            .map_err(|(e, text)| netlink_err(op(), e, text))
    }
}

/// The extended-ACK message text after an NLMSG_ERROR's `struct
/// nlmsgerr` (error code + the original header, whose payload is left out
/// when the kernel sets NLM_F_CAPPED).
fn ext_ack_text(payload: &[u8], flags: u16) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 || payload.len() < 20 {
        return None;
    }
    const NLM_F_CAPPED: u16 = 0x100;
    let orig_len = u32_at(payload, 4) as usize;
    let skip = if flags & NLM_F_CAPPED != 0 {
        20
    } else {
        4 + ((orig_len + 3) & !3)
    };
    let tlvs = payload.get(skip..)?;
    attrs(tlvs)
        .into_iter()
        .find(|(k, _)| *k == NLMSGERR_ATTR_MSG)
        .map(|(_, v)| {
            String::from_utf8_lossy(v)
                .trim_end_matches('\0')
                .to_string()
        })
}

fn netlink_err(op: String, source: std::io::Error, text: Option<String>) -> Error {
    let op = match text {
        Some(t) if !t.is_empty() => format!("{op} (kernel: {t})"),
        _ => op,
    };
    Error::Netlink { op, source }
}

fn open(op: &str) -> Result<Socket> {
    Socket::open().map_err(|e| netlink_err(format!("open rtnetlink socket to {op}"), e, None))
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() >= IFNAMSIZ || name.contains(['/', ' ', '\0', ':']) {
        return Err(Error::InvalidArgument(format!(
            "invalid interface name {name:?}: 1 to {} bytes, no '/', ':' or spaces",
            IFNAMSIZ - 1
        )));
    }
    Ok(())
}

/// The index of link `name` in the calling thread's namespace.
fn index(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: c is NUL-terminated; if_nametoindex(3) returns 0 if missing.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

fn index_of(name: &str) -> Result<u32> {
    index(name).ok_or_else(|| Error::InvalidArgument(format!("link {name} does not exist")))
}

/// Brings link `name` of the calling thread's namespace up.
pub(crate) fn set_up(name: &str) -> Result<()> {
    let i = index_of(name)?;
    let mut s = open("bring up a link")?;
    up(&mut s, name, i)
}

fn up(s: &mut Socket, name: &str, i: u32) -> Result<()> {
    s.request(
        || format!("bring up link {name}"),
        Msg::new(RTM_NEWLINK, 0).ifinfo(i as i32, libc::IFF_UP as u32, libc::IFF_UP as u32),
    )
}

/// IPv4 addresses `(address, prefix)` of link `i`.
fn addresses(s: &mut Socket, name: &str, i: u32) -> Result<Vec<(Ipv4Addr, u8)>> {
    let op = || format!("list addresses of {name}");
    let seq = s
        .send(Msg::new(RTM_GETADDR, NLM_F_DUMP).ifaddr(0, 0))
        .map_err(|e| netlink_err(op(), e, None))?;
    let mut out = Vec::new();
    s.replies(seq, |kind, p| {
        if kind != RTM_NEWADDR || p.len() < 8 || p[0] != libc::AF_INET as u8 {
            return;
        }
        if u32_at(p, 4) != i {
            return;
        }
        let prefix = p[1];
        // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the
        // peer on point-to-point links, equal to it otherwise.
        let mut found = None;
        for (k, v) in attrs(&p[8..]) {
            if v.len() == 4 && (k == IFA_LOCAL || (k == IFA_ADDRESS && found.is_none())) {
                found = Some(Ipv4Addr::new(v[0], v[1], v[2], v[3]));
            }
        }
        if let Some(a) = found {
            out.push((a, prefix));
        }
    })
    .map_err(|(e, t)| netlink_err(op(), e, t))?;
    Ok(out)
}

fn address_msg(kind: u16, flags: u16, i: u32, addr: Ipv4Addr, prefix: u8) -> Msg {
    // `ip addr add` with `brd +`: the broadcast address of the prefix.
    let mask = crate::ipam::Subnet { addr, prefix }.mask();
    let bcast = Ipv4Addr::from(u32::from(addr) | !mask);
    Msg::new(kind, flags)
        .ifaddr(prefix, i)
        .attr(IFA_LOCAL, &addr.octets())
        .attr(IFA_ADDRESS, &addr.octets())
        .attr(IFA_BROADCAST, &bcast.octets())
}

fn add_address(s: &mut Socket, name: &str, i: u32, addr: Ipv4Addr, prefix: u8) -> Result<()> {
    s.request(
        || format!("add address {addr}/{prefix} to {name}"),
        address_msg(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, i, addr, prefix),
    )
}

/// The kind of link `name` (`bridge`, `veth`, ...; `None` for a device
/// without one, like `lo` or a physical NIC), asked of rtnetlink rather
/// than sysfs: /sys shows the namespace of whoever mounted it, not the
/// calling thread's.
fn link_kind(s: &mut Socket, name: &str) -> Result<Option<String>> {
    let op = || format!("read link {name}");
    let seq = s
        .send(
            Msg::new(RTM_GETLINK, NLM_F_ACK)
                .ifinfo(0, 0, 0)
                .attr_str(IFLA_IFNAME, name),
        )
        .map_err(|e| netlink_err(op(), e, None))?;
    let mut kind = None;
    s.replies(seq, |t, p| {
        if t != RTM_NEWLINK || p.len() < 16 {
            return;
        }
        for (k, v) in attrs(&p[16..]) {
            if k != IFLA_LINKINFO {
                continue;
            }
            for (ik, iv) in attrs(v) {
                if ik == IFLA_INFO_KIND {
                    kind = Some(
                        String::from_utf8_lossy(iv)
                            .trim_end_matches('\0')
                            .to_string(),
                    );
                }
            }
        }
    })
    .map_err(|(e, t)| netlink_err(op(), e, t))?;
    Ok(kind)
}

/// Creates bridge `name` with `gateway/prefix` if missing (or fixes its
/// address), brings it up. Idempotent.
///
/// The bridge gets a fixed MAC derived from the gateway address: otherwise
/// a Linux bridge takes the lowest MAC of its ports, which changes as
/// containers come and go and makes neighbours' ARP caches stale.
pub fn ensure_bridge(name: &str, gateway: Ipv4Addr, prefix: u8) -> Result<()> {
    check_name(name)?;
    if prefix > 32 {
        return Err(Error::InvalidArgument(format!("invalid prefix /{prefix}")));
    }
    let mut s = open("create a bridge")?;
    if index(name).is_none() {
        let created = s.request(
            || format!("create bridge {name}"),
            Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL)
                .ifinfo(0, 0, 0)
                .attr_str(IFLA_IFNAME, name)
                .attr(IFLA_ADDRESS, &crate::ipam::mac_for(gateway))
                .nest(IFLA_LINKINFO)
                .attr_str(IFLA_INFO_KIND, "bridge")
                .end(),
        );
        match created {
            // Created meanwhile by someone else: go on with it.
            Err(Error::Netlink { ref source, .. })
                if source.raw_os_error() == Some(libc::EEXIST) => {}
            other => other?,
        }
    }
    if link_kind(&mut s, name)?.as_deref() != Some("bridge") {
        return Err(Error::Conflict(format!(
            "link {name} exists and is not a bridge"
        )));
    }
    let i = index_of(name)?;
    let mut have_it = false;
    for (addr, p) in addresses(&mut s, name, i)? {
        if addr == gateway && p == prefix {
            have_it = true;
        } else {
            let removed = s.request(
                || format!("remove stale address {addr}/{p} from {name}"),
                address_msg(RTM_DELADDR, 0, i, addr, p),
            );
            match removed {
                // Removed meanwhile by a concurrent call for the same bridge.
                Err(Error::Netlink { ref source, .. })
                    if source.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {}
                other => other?,
            }
        }
    }
    if !have_it {
        match add_address(&mut s, name, i, gateway, prefix) {
            // Two containers of a new network starting at once both find the
            // bridge without its address; the second one's add is EEXIST and
            // the address is the one it wanted.
            Err(Error::Netlink { ref source, .. })
                if source.raw_os_error() == Some(libc::EEXIST) => {}
            other => other?,
        }
    }
    up(&mut s, name, i)
}

/// Deletes a link by name; a missing link is not an error.
pub fn delete_link(name: &str) -> Result<()> {
    check_name(name)?;
    let mut s = open("delete a link")?;
    let r = s.request(
        || format!("delete link {name}"),
        Msg::new(RTM_DELLINK, 0)
            .ifinfo(0, 0, 0)
            .attr_str(IFLA_IFNAME, name),
    );
    match r {
        Err(Error::Netlink { ref source, .. }) if source.raw_os_error() == Some(libc::ENODEV) => {
            Ok(())
        }
        other => other,
    }
}

/// Whether link `name` exists in the calling thread's network namespace.
pub fn link_exists(name: &str) -> bool {
    index(name).is_some()
}

/// One container interface on one bridge.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// The container's network namespace (a bind-mounted nsfs file).
    pub netns: PathBuf,
    pub bridge: String,
    /// Host end of the veth pair, e.g. `veth1a2b3c4` (≤ 15 bytes).
    pub host_ifname: String,
    /// Name inside the container: `eth0`, `eth1`, ...
    pub ifname: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub mac: [u8; 6],
    /// Default route via this gateway (only the first network has one).
    pub gateway: Option<Ipv4Addr>,
    /// Further addresses in 169.254.0.0/16, the IPv4 link-local block
    /// (RFC 3927), each added with that prefix.
    pub link_local: Vec<Ipv4Addr>,
}

/// Creates the veth pair, enslaves the host end to the bridge, moves the
/// other end into the namespace, renames it, sets address, MAC and route
/// and brings both up. On error nothing is left behind.
///
/// The peer is created directly inside the container's namespace under
/// its final name and MAC (IFLA_NET_NS_FD, IFLA_IFNAME and IFLA_ADDRESS in
/// the VETH_INFO_PEER attributes, as `ip link add ... type veth peer name
/// eth0 netns X` does): one atomic step, so no temporary name ever exists
/// in the host namespace and there is no rename to fail or race.
pub fn attach(a: &Attachment) -> Result<()> {
    check_name(&a.host_ifname)?;
    check_name(&a.ifname)?;
    if a.prefix > 32 {
        return Err(Error::InvalidArgument(format!(
            "invalid prefix /{}",
            a.prefix
        )));
    }
    if let Some(ll) = a.link_local.iter().find(|ll| !ll.is_link_local()) {
        return Err(Error::InvalidArgument(format!(
            "{ll} is not a link-local address (169.254.0.0/16)"
        )));
    }
    let bridge = index_of(&a.bridge)?;
    let ns = std::fs::File::open(&a.netns).map_err(|e| Error::Io {
        op: "open network namespace",
        path: a.netns.clone(),
        source: e,
    })?;
    let mut s = open("attach a container")?;
    let fd = ns.as_raw_fd() as u32;
    s.request(
        || {
            format!(
                "create veth pair {} / {} in {}",
                a.host_ifname,
                a.ifname,
                a.netns.display()
            )
        },
        Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL)
            .ifinfo(0, 0, 0)
            .attr_str(IFLA_IFNAME, &a.host_ifname)
            .nest(IFLA_LINKINFO)
            .attr_str(IFLA_INFO_KIND, "veth")
            .nest(IFLA_INFO_DATA)
            .nest(VETH_INFO_PEER)
            .raw(|b| put_ifinfo(b, 0, 0, 0))
            .attr_str(IFLA_IFNAME, &a.ifname)
            .attr(IFLA_ADDRESS, &a.mac)
            .attr_u32(IFLA_NET_NS_FD, fd)
            .end()
            .end()
            .end(),
    )
    .map_err(|e| match e {
        Error::Netlink { ref source, .. } if source.raw_os_error() == Some(libc::EEXIST) => {
            Error::Conflict(format!(
                "link {} or {} (in {}) already exists",
                a.host_ifname,
                a.ifname,
                a.netns.display()
            ))
        }
        e => e,
    })?;
    drop(ns);
    let configured = configure(&mut s, a, bridge);
    if let Err(e) = configured {
        // Deleting the host end deletes its peer too (veth(4)).
        let _ = delete_link(&a.host_ifname);
        return Err(e);
    }
    Ok(())
}

fn configure(s: &mut Socket, a: &Attachment, bridge: u32) -> Result<()> {
    let host = index_of(&a.host_ifname)?;
    s.request(
        || format!("attach {} to bridge {}", a.host_ifname, a.bridge),
        Msg::new(RTM_NEWLINK, 0)
            .ifinfo(host as i32, libc::IFF_UP as u32, libc::IFF_UP as u32)
            .attr_u32(IFLA_MASTER, bridge),
    )?;
    // Hairpin mode lets the bridge send a frame back out of the port it
    // came in by. A container reaching its own published port through a
    // host address needs it: br_netfilter DNATs the frame on the bridge
    // and, the new destination being behind the same bridge, bridges it
    // rather than routing it; without hairpin the bridge drops it
    // (bridge(8), `hairpin`).
    s.request(
        || format!("turn on hairpin mode of {}", a.host_ifname),
        Msg::new(RTM_NEWLINK, 0)
            .ifinfo(host as i32, 0, 0)
            .nest(IFLA_LINKINFO)
            .attr_str(IFLA_INFO_SLAVE_KIND, "bridge")
            .nest(IFLA_INFO_SLAVE_DATA)
            .attr(IFLA_BRPORT_MODE, &[1])
            .end()
            .end(),
    )?;
    netns::run_in(&a.netns, || -> Result<()> {
        let mut s = open("configure a container interface")?;
        let i = index_of(&a.ifname)?;
        add_address(&mut s, &a.ifname, i, a.address, a.prefix)?;
        for ll in &a.link_local {
            add_address(&mut s, &a.ifname, i, *ll, 16)?;
        }
        up(&mut s, &a.ifname, i)?;
        if let Some(gw) = a.gateway {
            s.request(
                || format!("add default route via {gw} on {}", a.ifname),
                Msg::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL)
                    .rtmsg(0)
                    .attr(RTA_GATEWAY, &gw.octets())
                    .attr_u32(RTA_OIF, i),
            )?;
        }
        Ok(())
    })?
}

/// Removes the host end of a veth pair (which removes its peer).
pub fn detach(host_ifname: &str) -> Result<()> {
    delete_link(host_ifname)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_aligned_nested_messages() {
        let m = Msg::new(RTM_NEWLINK, NLM_F_CREATE)
            .ifinfo(0, 0, 0)
            .attr_str(IFLA_IFNAME, "br0") // 4 + 4 bytes
            .nest(IFLA_LINKINFO)
            .attr_str(IFLA_INFO_KIND, "veth") // 4 + 5, padded to 12
            .end();
        assert_eq!(m.buf.len(), 16 + 16 + 8 + 4 + 12);
        assert_eq!(u16_at(&m.buf, 4), RTM_NEWLINK);
        assert_eq!(u16_at(&m.buf, 6), NLM_F_CREATE | NLM_F_REQUEST);
        let a = attrs(&m.buf[32..]);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0], (IFLA_IFNAME, &b"br0\0"[..]));
        assert_eq!(a[1].0, IFLA_LINKINFO);
        let inner = attrs(a[1].1);
        assert_eq!(inner, vec![(IFLA_INFO_KIND, &b"veth\0"[..])]);
        assert_eq!(u16_at(&m.buf, 40), 16, "nest length covers its contents");
    }

    #[test]
    fn reads_ext_ack_text() {
        // nlmsgerr: error, original header (capped), then the TLVs.
        let mut p = Vec::new();
        p.extend_from_slice(&(-22i32).to_ne_bytes());
        p.extend_from_slice(&[0u8; 16]);
        put_attr(&mut p, NLMSGERR_ATTR_MSG, b"Unknown device type\0");
        let text = ext_ack_text(&p, NLM_F_ACK_TLVS | 0x100);
        assert_eq!(text.as_deref(), Some("Unknown device type"));
        assert_eq!(ext_ack_text(&p, 0), None);
    }

    #[test]
    fn refuses_bad_names() {
        for bad in ["", "0123456789abcdef", "a/b", "a b", "a:b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        check_name("0123456789abcde").expect("15 bytes is the limit");
        assert!(delete_link("a/b").is_err());
    }

    #[test]
    fn missing_link() {
        assert!(!link_exists("caisnope0"));
        assert!(link_exists("lo"));
    }
}
