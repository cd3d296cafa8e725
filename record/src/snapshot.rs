//! The start-up snapshot: TCP sockets that already exist when recording
//! starts, with their owners, the way `ss -tanp` finds them
//! (`/proc/<pid>/net/tcp{,6}` per network namespace + `/proc/*/fd`).
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

/// One socket line of `/proc/net/tcp{,6}`, with its owner if found.
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
    pub owner: Option<SnapOwner>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapOwner {
    pub pid: u32,
    pub comm: String,
    pub cgroup_id: u64,
}

fn parse_addr(hex: &str, v6: bool) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    let words = if v6 { 4 } else { 1 };
    if hex.len() != words * 8 {
        return None;
    }
    for i in 0..words {
        let w = u32::from_str_radix(&hex[i * 8..i * 8 + 8], 16).ok()?;
        // /proc prints each 32-bit word of the network-order address as a host-order number.
        out[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
    }
    Some(out)
}

fn parse_endpoint(s: &str, v6: bool) -> Option<([u8; 16], u16)> {
    let (addr, port) = s.split_once(':')?;
    Some((parse_addr(addr, v6)?, u16::from_str_radix(port, 16).ok()?))
}

/// Parses the text of `/proc/net/tcp` (`v6 = false`) or `/proc/net/tcp6`.
pub fn parse_proc_net_tcp(text: &str, v6: bool, netns: u32) -> Vec<SnapSocket> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (saddr, sport) = parse_endpoint(f.get(1)?, v6)?;
            let (daddr, dport) = parse_endpoint(f.get(2)?, v6)?;
            let state = u8::from_str_radix(f.get(3)?, 16).ok()?;
            let inode = f.get(9)?.parse().ok()?;
            Some(SnapSocket {
                netns,
                family: if v6 {
                    deeptcp_common::AF_INET6
                } else {
                    deeptcp_common::AF_INET
                },
                saddr,
                daddr,
                sport,
                dport,
                state,
                inode,
                owner: None,
            })
        })
        .collect()
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
    let mut out = Vec::new();
    for (&ns, &pid) in &namespaces {
        for (file, v6) in [("tcp", false), ("tcp6", true)] {
            let text = fs::read_to_string(proc.join(format!("{pid}/net/{file}"))).unwrap_or_default();
            out.extend(parse_proc_net_tcp(&text, v6, ns));
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
        cookie: 0,
        cgroup_id: owner.map_or(0, |o| o.cgroup_id),
        attribution: if owner.is_some() {
            Attribution::Snapshot
        } else {
            Attribution::Unknown
        },
        tcp: TcpInfo::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0
   1: 0100007F:A1B2 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 67890 1 0000000000000000 20 4 30 10 -1
   2: garbage
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 555 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:0050 0000000000000000FFFF00000200007F:C000 01 00000000:00000000 00:00000000 00000000     0        0 556 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn parses_ipv4_lines() {
        let s = parse_proc_net_tcp(TCP, false, 7);
        assert_eq!(s.len(), 2, "header and garbage skipped");
        assert_eq!(&s[0].saddr[..4], &[127, 0, 0, 1]);
        assert_eq!((s[0].sport, s[0].dport, s[0].state, s[0].inode), (8080, 0, 10, 12345));
        assert_eq!((s[1].sport, s[1].dport, s[1].state, s[1].netns), (0xA1B2, 8080, 1, 7));
        assert_eq!(s[1].family, deeptcp_common::AF_INET);
    }

    #[test]
    fn parses_ipv6_and_v4_mapped_lines() {
        let s = parse_proc_net_tcp(TCP6, true, 1);
        assert_eq!(s.len(), 2);
        assert_eq!(std::net::Ipv6Addr::from(s[0].saddr), std::net::Ipv6Addr::LOCALHOST);
        assert_eq!(s[0].sport, 80);
        let mapped = std::net::Ipv6Addr::from(s[1].saddr);
        assert_eq!(mapped.to_ipv4_mapped(), Some(std::net::Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(
            std::net::Ipv6Addr::from(s[1].daddr).to_ipv4_mapped(),
            Some(std::net::Ipv4Addr::new(127, 0, 0, 2))
        );
    }

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
}
