//! The start-up snapshot: TCP sockets that already exist when recording
//! starts, with their owners, the way `ss -tanp` finds them: the socket
//! tables of every network namespace through sock_diag netlink
//! ([`sock_diag`], with each socket's cookie and TCP fields; the text
//! tables of [`proc_net`] where that is unavailable) and the owners from
//! `/proc/*/fd`.
//!
//! They are written as `snapshot` rows and seeded into the kernel's
//! `TUPLE_OWNERS`/`LISTENERS` maps, so that later events on these sockets
//! are attributed to their owners even though no connect/listen was seen.

use std::collections::HashMap;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

use deeptcp_common::AF_INET6;
use deeptcp_format::event::canonical_ip;
use deeptcp_format::{Attribution, Event, EventKind, Family, TcpInfo, TcpState};

mod proc_net;
mod sock_diag;

/// One socket of the snapshot, with its owner if found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapSocket {
    pub netns: u32,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// Kernel byte layout: IPv4 in the first four bytes.
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub state: u8,
    pub inode: u64,
    /// The socket cookie later events of this socket carry; 0 from [`proc_net`].
    pub cookie: u64,
    /// From the kernel's `tcp_info`; all null from [`proc_net`], for
    /// listeners, and for time-wait and request sockets.
    pub tcp: TcpInfo,
    pub owner: Option<SnapOwner>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapOwner {
    pub pid: u32,
    pub comm: String,
    pub cgroup_id: u64,
}

/// `net:[4026531840]` → 4026531840.
fn ns_inode(link: &Path) -> Option<u32> {
    let target = fs::read_link(link).ok()?;
    let s = target.to_str()?;
    s.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

fn pids(proc: &Path) -> Vec<u32> {
    fs::read_dir(proc)
        .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// cgroup v2 id of a process: the inode of its cgroup directory.
fn cgroup_id(proc: &Path, pid: u32, cgroup2: Option<&Path>) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Some(root) = cgroup2 else { return 0 };
    let text = fs::read_to_string(proc.join(format!("{pid}/cgroup"))).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .and_then(|rel| fs::metadata(root.join(rel.trim_start_matches('/'))).ok())
        .map(|m| m.ino())
        .unwrap_or(0)
}

/// Every TCP socket of every network namespace, with owners.
pub fn take(proc: &Path, cgroup2: Option<&Path>) -> Vec<SnapSocket> {
    let all = pids(proc);
    // One process per network namespace, to read that namespace's tables.
    let mut namespaces: HashMap<u32, u32> = HashMap::new();
    // Socket inode → owning process (first one found).
    let mut owners: HashMap<u64, u32> = HashMap::new();
    for &pid in &all {
        if let Some(ns) = ns_inode(&proc.join(format!("{pid}/ns/net"))) {
            namespaces.entry(ns).or_insert(pid);
        }
        let Ok(fds) = fs::read_dir(proc.join(format!("{pid}/fd"))) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = fs::read_link(fd.path()) else { continue };
            let Some(inode) = target
                .to_str()
                .and_then(|s| s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok())
            else {
                continue;
            };
            owners.entry(inode).or_insert(pid);
        }
    }
    let own_ns = ns_inode(&proc.join("self/ns/net"));
    let mut out = Vec::new();
    let mut warned = false;
    for (&ns, &pid) in &namespaces {
        let entered = match (Some(ns) != own_ns).then(|| fs::File::open(proc.join(format!("{pid}/ns/net")))) {
            Some(Err(_)) => continue, // its process has exited: so have its tables
            Some(Ok(f)) => Some(f),
            None => None,
        };
        match from_sock_diag(entered.as_ref(), ns) {
            Ok(sockets) => out.extend(sockets),
            Err(e) => {
                if !std::mem::replace(&mut warned, true) {
                    say!(
                        "record: warning: sock_diag netlink unavailable ({e}); the start-up snapshot reads \
                         /proc/net/tcp{{,6}} instead, whose sockets have no cookies or TCP fields"
                    );
                }
                out.extend(proc_net::read(proc, pid, ns));
            }
        }
    }
    let mut comms: HashMap<u32, SnapOwner> = HashMap::new();
    for s in &mut out {
        let Some(&pid) = owners.get(&s.inode) else { continue };
        let owner = comms.entry(pid).or_insert_with(|| SnapOwner {
            pid,
            comm: fs::read_to_string(proc.join(format!("{pid}/comm")))
                .unwrap_or_default()
                .trim()
                .to_owned(),
            cgroup_id: cgroup_id(proc, pid, cgroup2),
        });
        s.owner = Some(owner.clone());
    }
    out.sort_by_key(|s| (s.netns, s.family, s.sport, s.dport));
    out
}

/// Both families of namespace `netns`, entered through `netns_file`
/// (`None`: this process's own).
fn from_sock_diag(netns_file: Option<&fs::File>, netns: u32) -> std::io::Result<Vec<SnapSocket>> {
    let sock = sock_diag::open(netns_file)?;
    let mut out = sock_diag::dump(&sock, deeptcp_common::AF_INET, netns)?;
    out.extend(sock_diag::dump(&sock, AF_INET6, netns)?);
    Ok(out)
}

/// A `snapshot` row for a socket that existed when recording started.
/// `probe` is the shared `snapshot:proc` name (one `Arc` for all rows).
pub fn row(s: &SnapSocket, mono_ns: i64, probe: &Arc<str>) -> Event {
    let (family, saddr, daddr) = if s.family == AF_INET6 {
        (
            Family::Inet6,
            canonical_ip(IpAddr::V6(Ipv6Addr::from(s.saddr))),
            canonical_ip(IpAddr::V6(Ipv6Addr::from(s.daddr))),
        )
    } else {
        let v4 = |a: &[u8; 16]| IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]));
        (Family::Inet, v4(&s.saddr), v4(&s.daddr))
    };
    let owner = s.owner.as_ref();
    Event {
        mono_ns,
        kind: EventKind::Snapshot,
        pid: owner.map_or(0, |o| o.pid),
        tid: owner.map_or(0, |o| o.pid),
        comm: Arc::from(owner.map_or("", |o| o.comm.as_str())),
        family,
        saddr,
        daddr,
        sport: s.sport,
        dport: s.dport,
        oldstate: None,
        newstate: TcpState::from_kernel(s.state),
        sk_err: 0,
        netns: s.netns,
        stack_id: None,
        probe: probe.clone(),
        cookie: s.cookie,
        cgroup_id: owner.map_or(0, |o| o.cgroup_id),
        attribution: if owner.is_some() {
            Attribution::Snapshot
        } else {
            Attribution::Unknown
        },
        tcp: s.tcp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_own_listening_socket_with_owner() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let snap = take(Path::new("/proc"), None);
        let me = std::process::id();
        let s = snap
            .iter()
            .find(|s| s.sport == port && s.state == 10)
            .unwrap_or_else(|| panic!("listener on {port} not in snapshot"));
        assert_eq!(s.owner.as_ref().map(|o| o.pid), Some(me));
        assert_ne!(s.netns, 0);
    }

    /// Through sock_diag a connected socket comes with its cookie and TCP
    /// fields, which its snapshot row carries.
    #[test]
    fn a_connected_socket_has_its_cookie_and_tcp_fields() {
        if let Err(e) = sock_diag::open(None) {
            return eprintln!("skipped: no sock_diag here ({e})");
        }
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let port = c.local_addr().unwrap().port();
        let snap = take(Path::new("/proc"), None);
        let s = snap
            .iter()
            .find(|s| s.sport == port && s.state == TcpState::Established as u8)
            .unwrap_or_else(|| panic!("client socket on {port} not in snapshot"));
        assert_ne!(s.cookie, 0);
        assert!(
            s.tcp.srtt_us.is_some() && s.tcp.snd_cwnd.is_some_and(|c| c > 0),
            "{:?}",
            s.tcp
        );
        let probe: Arc<str> = Arc::from("snapshot:proc");
        let r = row(s, 5, &probe);
        assert_eq!((r.kind, r.cookie, r.tcp), (EventKind::Snapshot, s.cookie, s.tcp));
        assert_eq!((r.sport, r.newstate), (port, Some(TcpState::Established)));
    }
}
