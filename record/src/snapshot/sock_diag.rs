//! The start-up snapshot's socket tables through sock_diag netlink
//! (`NETLINK_SOCK_DIAG`, an `inet_diag_req_v2` dump per family, as `ss`
//! does). Unlike `/proc/net/tcp{,6}` it gives each socket's cookie — the
//! identity every later event of the socket carries, so snapshot rows join
//! their connection by cookie — and its `tcp_info` (`INET_DIAG_INFO`).
//!
//! Hand-written rather than through a netlink crate: the request is one
//! fixed 72-byte message, and the `tcp_info` fields the schema has are read
//! by offset from whatever length the kernel sends (older kernels send a
//! shorter struct; the typed parsers reject it or stop before `snd_wnd`).
//! Parsing works on byte slices; only the socket calls are `unsafe`.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use deeptcp_common::{TcpState, AF_INET, AF_INET6};
use deeptcp_format::TcpInfo;

use super::SnapSocket;

/// `SOCK_DIAG_BY_FAMILY` (linux/sock_diag.h).
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `INET_DIAG_INFO` (linux/inet_diag.h): the `tcp_info` attribute.
const INET_DIAG_INFO: u16 = 2;
const NLMSG_HDRLEN: usize = 16;
/// `sizeof(struct inet_diag_req_v2)`.
const REQ_LEN: usize = 56;
/// `sizeof(struct inet_diag_msg)`.
const MSG_LEN: usize = 72;
/// Every state `/proc/net/tcp` lists (ESTABLISHED .. NEW_SYN_RECV), not
/// BOUND_INACTIVE (bound, never listening or connected), which it does not.
const STATES: u32 = ((1 << 13) - 1) & !1;

/// Offsets in `struct tcp_info` (linux/tcp.h; fields are only ever
/// appended, so an offset holds on every kernel whose struct reaches it).
mod tcpi {
    pub const RTT: usize = 68;
    pub const SND_CWND: usize = 80;
    pub const BYTES_ACKED: usize = 120;
    pub const BYTES_RECEIVED: usize = 128;
    pub const SND_WND: usize = 228;
    pub const RCV_WND: usize = 232;
}

/// A sock_diag netlink socket in the network namespace of `netns_file`
/// (open `/proc/<pid>/ns/net`), or in this thread's own with `None`. A
/// netlink socket stays in the namespace it was made in, so a short-lived
/// thread enters the namespace to make it and this thread never leaves its own.
pub fn open(netns_file: Option<&File>) -> io::Result<OwnedFd> {
    let Some(ns) = netns_file else {
        return socket();
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns on a valid namespace fd; it changes the network
            // namespace of this spawned thread only, which ends right after.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            socket()
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the thread entering the namespace panicked")))
    })
}

fn socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Every TCP socket of `family` (`AF_INET` or `AF_INET6`) in the
/// namespace of `sock` (see [`open`]), recorded as in namespace `netns`.
pub fn dump(sock: &OwnedFd, family: u16, netns: u32) -> io::Result<Vec<SnapSocket>> {
    let req = request(family);
    // SAFETY: a zeroed sockaddr_nl is valid; the fields set make it the kernel's address.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: `req` and `kernel` are live for the call and their lengths are passed.
    let sent = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            req.as_ptr().cast(),
            req.len(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    // Dump parts come one per datagram, each a page or so of messages.
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: `buf` is writable for its length, which is passed.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let n = usize::try_from(n).map_err(|_| io::Error::other("recv returned a negative length"))?;
        if parse(&buf[..n], netns, &mut out)? == Part::Done {
            return Ok(out);
        }
    }
}

/// `nlmsghdr` + `inet_diag_req_v2` asking for a dump of every TCP socket of
/// `family` in [`STATES`], with `tcp_info`.
fn request(family: u16) -> Vec<u8> {
    let len = NLMSG_HDRLEN + REQ_LEN;
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // sequence number
    m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    m.push(family as u8);
    m.push(libc::IPPROTO_TCP as u8);
    m.push(1 << (INET_DIAG_INFO - 1)); // idiag_ext
    m.push(0);
    m.extend_from_slice(&STATES.to_ne_bytes());
    m.resize(len, 0); // inet_diag_sockid: zero = no filter
    m
}

#[derive(Debug, PartialEq, Eq)]
enum Part {
    More,
    Done,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("malformed sock_diag reply: {what}"))
}

/// One datagram of the dump: its sockets appended to `out`; whether the
/// dump is done (NLMSG_DONE) or an error ended it (NLMSG_ERROR).
fn parse(mut b: &[u8], netns: u32, out: &mut Vec<SnapSocket>) -> io::Result<Part> {
    while b.len() >= NLMSG_HDRLEN {
        let len = u32_at(b, 0).ok_or_else(|| malformed("header"))? as usize;
        let kind = u16_at(b, 4).ok_or_else(|| malformed("header"))?;
        if len < NLMSG_HDRLEN || len > b.len() {
            return Err(malformed("message length"));
        }
        let body = &b[NLMSG_HDRLEN..len];
        match i32::from(kind) {
            libc::NLMSG_DONE => return Ok(Part::Done),
            libc::NLMSG_ERROR => {
                let errno = u32_at(body, 0).ok_or_else(|| malformed("error message"))? as i32;
                return Err(io::Error::from_raw_os_error(-errno));
            }
            _ if kind == SOCK_DIAG_BY_FAMILY => out.push(socket_of(body, netns)?),
            _ => {}
        }
        b = &b[align4(len).min(b.len())..];
    }
    Ok(Part::More)
}

/// One `inet_diag_msg` and its attributes.
fn socket_of(m: &[u8], netns: u32) -> io::Result<SnapSocket> {
    if m.len() < MSG_LEN {
        return Err(malformed("short inet_diag_msg"));
    }
    let family = u16::from(m[0]);
    let state = m[1];
    // inet_diag_sockid: ports and addresses in network order, the cookie
    // as two host-order words (low first).
    let port = |at: usize| u16::from_be_bytes([m[at], m[at + 1]]);
    let addr = |at: usize| {
        let mut a = [0u8; 16];
        let n = if family == AF_INET6 { 16 } else { 4 };
        a[..n].copy_from_slice(&m[at..at + n]);
        a
    };
    let cookie = u64::from(u32_at(m, 44).unwrap_or(0)) | (u64::from(u32_at(m, 48).unwrap_or(0)) << 32);
    let mut tcp = TcpInfo::default();
    let mut attrs = &m[MSG_LEN..];
    while attrs.len() >= 4 {
        let len = usize::from(u16_at(attrs, 0).unwrap_or(0));
        if len < 4 || len > attrs.len() {
            break;
        }
        // A listener's tcp_info is not a connection's: the recorder's own
        // rows leave listeners' TCP fields null too.
        if u16_at(attrs, 2) == Some(INET_DIAG_INFO) && state != TcpState::Listen as u8 {
            tcp = tcp_info(&attrs[4..len]);
        }
        attrs = &attrs[align4(len).min(attrs.len())..];
    }
    Ok(SnapSocket {
        netns,
        family: if family == AF_INET6 { AF_INET6 } else { AF_INET },
        saddr: addr(8),
        daddr: addr(24),
        sport: port(4),
        dport: port(6),
        state,
        inode: u64::from(u32_at(m, 68).unwrap_or(0)),
        cookie,
        tcp,
        owner: None,
    })
}

/// The schema's TCP fields from a `tcp_info` of the kernel's length; a field
/// past its end (an older kernel's struct) stays null.
fn tcp_info(t: &[u8]) -> TcpInfo {
    TcpInfo {
        snd_wnd: u32_at(t, tcpi::SND_WND),
        rcv_wnd: u32_at(t, tcpi::RCV_WND),
        srtt_us: u32_at(t, tcpi::RTT),
        snd_cwnd: u32_at(t, tcpi::SND_CWND),
        bytes_acked: u64_at(t, tcpi::BYTES_ACKED),
        bytes_received: u64_at(t, tcpi::BYTES_RECEIVED),
        window: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply message as the kernel builds it: header, inet_diag_msg, and
    /// an INET_DIAG_INFO attribute of `info` when given.
    fn reply(family: u8, state: u8, sport: u16, cookie: u64, info: Option<&[u8]>) -> Vec<u8> {
        let mut m = vec![0u8; MSG_LEN];
        m[0] = family;
        m[1] = state;
        m[4..6].copy_from_slice(&sport.to_be_bytes());
        m[6..8].copy_from_slice(&443u16.to_be_bytes());
        m[8..12].copy_from_slice(&[10, 0, 0, 1]);
        m[24..28].copy_from_slice(&[192, 0, 2, 7]);
        m[44..48].copy_from_slice(&(cookie as u32).to_ne_bytes());
        m[48..52].copy_from_slice(&((cookie >> 32) as u32).to_ne_bytes());
        m[68..72].copy_from_slice(&4242u32.to_ne_bytes());
        if let Some(info) = info {
            m.extend_from_slice(&((4 + info.len()) as u16).to_ne_bytes());
            m.extend_from_slice(&INET_DIAG_INFO.to_ne_bytes());
            m.extend_from_slice(info);
            m.resize(align4(m.len()), 0);
        }
        message(SOCK_DIAG_BY_FAMILY, &m)
    }

    fn message(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        h.extend_from_slice(&kind.to_ne_bytes());
        h.extend_from_slice(&[0; 10]);
        h.extend_from_slice(body);
        h
    }

    fn info(len: usize) -> Vec<u8> {
        let mut t = vec![0u8; len];
        let mut put = |at: usize, v: &[u8]| {
            if at + v.len() <= len {
                t[at..at + v.len()].copy_from_slice(v);
            }
        };
        put(tcpi::RTT, &250u32.to_ne_bytes());
        put(tcpi::SND_CWND, &10u32.to_ne_bytes());
        put(tcpi::BYTES_ACKED, &1_000_000u64.to_ne_bytes());
        put(tcpi::BYTES_RECEIVED, &2_000_000u64.to_ne_bytes());
        put(tcpi::SND_WND, &65_535u32.to_ne_bytes());
        put(tcpi::RCV_WND, &131_072u32.to_ne_bytes());
        t
    }

    #[test]
    fn the_request_asks_for_a_tcp_dump_with_tcp_info() {
        let r = request(AF_INET6);
        assert_eq!(r.len(), 72);
        assert_eq!(u32_at(&r, 0), Some(72));
        assert_eq!(u16_at(&r, 4), Some(SOCK_DIAG_BY_FAMILY));
        assert_eq!(u16_at(&r, 6), Some(0x301), "NLM_F_REQUEST | NLM_F_DUMP");
        assert_eq!(
            &r[16..20],
            &[10, 6, 2, 0],
            "AF_INET6, IPPROTO_TCP, 1 << (INET_DIAG_INFO - 1)"
        );
        assert_eq!(u32_at(&r, 20), Some(0x1ffe), "states ESTABLISHED..=NEW_SYN_RECV");
        assert!(r[24..].iter().all(|&b| b == 0), "no socket filter");
    }

    #[test]
    fn replies_give_addresses_cookie_and_tcp_info() {
        let mut d = reply(2, TcpState::Established as u8, 40000, 0x1_0000_0007, Some(&info(248)));
        d.extend(reply(2, TcpState::Listen as u8, 8080, 9, Some(&info(248))));
        d.extend(reply(2, TcpState::TimeWait as u8, 40001, 11, None));
        let mut out = Vec::new();
        assert_eq!(parse(&d, 77, &mut out).unwrap(), Part::More);
        assert_eq!(out.len(), 3);
        let s = &out[0];
        assert_eq!(
            (s.family, s.state, s.sport, s.dport, s.netns),
            (AF_INET, 1, 40000, 443, 77)
        );
        assert_eq!(
            (&s.saddr[..4], &s.daddr[..4]),
            (&[10, 0, 0, 1][..], &[192, 0, 2, 7][..])
        );
        assert!(s.saddr[4..].iter().all(|&b| b == 0));
        assert_eq!((s.cookie, s.inode), (0x1_0000_0007, 4242));
        assert_eq!(
            s.tcp,
            TcpInfo {
                snd_wnd: Some(65_535),
                rcv_wnd: Some(131_072),
                srtt_us: Some(250),
                snd_cwnd: Some(10),
                bytes_acked: Some(1_000_000),
                bytes_received: Some(2_000_000),
                window: None,
            }
        );
        assert_eq!(out[1].tcp, TcpInfo::default(), "a listener has no connection fields");
        assert_eq!((out[2].cookie, out[2].tcp), (11, TcpInfo::default()));
    }

    #[test]
    fn an_older_kernels_shorter_tcp_info_leaves_the_later_fields_null() {
        // Up to tcpi_snd_wnd, without tcpi_rcv_wnd.
        let d = reply(10, TcpState::Established as u8, 1, 1, Some(&info(232)));
        let mut out = Vec::new();
        parse(&d, 1, &mut out).unwrap();
        assert_eq!(out[0].family, AF_INET6);
        assert_eq!((out[0].tcp.snd_wnd, out[0].tcp.rcv_wnd), (Some(65_535), None));
        assert_eq!(out[0].tcp.bytes_received, Some(2_000_000));
    }

    #[test]
    fn done_ends_the_dump_and_an_error_message_is_its_errno() {
        let mut out = Vec::new();
        let mut d = reply(2, 1, 1, 1, None);
        d.extend(message(libc::NLMSG_DONE as u16, &0i32.to_ne_bytes()));
        assert_eq!(parse(&d, 1, &mut out).unwrap(), Part::Done);
        assert_eq!(out.len(), 1);
        let e = parse(
            &message(libc::NLMSG_ERROR as u16, &(-libc::ENOENT).to_ne_bytes()),
            1,
            &mut out,
        );
        assert_eq!(e.unwrap_err().raw_os_error(), Some(libc::ENOENT));
        let mut bad = reply(2, 1, 1, 1, None);
        bad[0] = 200; // longer than the datagram
        assert!(parse(&bad, 1, &mut out).is_err());
    }

    /// This process's own listener, dumped from its own namespace and from
    /// its namespace entered through /proc: the same socket and cookie.
    #[test]
    fn dumps_this_processes_listener_with_a_cookie() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let find = |sock: &OwnedFd| {
            let all = dump(sock, AF_INET, 1).unwrap();
            all.into_iter()
                .find(|s| s.sport == port && s.state == TcpState::Listen as u8)
        };
        let own = match open(None) {
            Ok(s) => s,
            Err(e) => return eprintln!("skipped: no sock_diag here ({e})"),
        };
        let a = find(&own).expect("own listener in the dump");
        assert_ne!(a.cookie, 0);
        assert_ne!(a.inode, 0);
        // setns needs CAP_SYS_ADMIN: only as root.
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let ns = File::open("/proc/self/ns/net").unwrap();
            let entered = open(Some(&ns)).unwrap();
            assert_eq!(find(&entered).map(|s| s.cookie), Some(a.cookie));
        }
    }
}
