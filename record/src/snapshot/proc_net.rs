//! The start-up snapshot's fallback where sock_diag netlink is unavailable
//! (no `inet_diag`/`tcp_diag` in the kernel, or the namespace cannot be
//! entered): the text tables `/proc/<pid>/net/tcp{,6}`, which have no
//! socket cookies and no TCP fields.

use std::fs;
use std::path::Path;

use deeptcp_format::TcpInfo;

use super::SnapSocket;

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

/// Both tables of namespace `netns`, through its process `pid`.
pub fn read(proc: &Path, pid: u32, netns: u32) -> Vec<SnapSocket> {
    let mut out = Vec::new();
    for (file, v6) in [("tcp", false), ("tcp6", true)] {
        let text = fs::read_to_string(proc.join(format!("{pid}/net/{file}"))).unwrap_or_default();
        out.extend(parse(&text, v6, netns));
    }
    out
}

/// Parses the text of `/proc/net/tcp` (`v6 = false`) or `/proc/net/tcp6`.
pub fn parse(text: &str, v6: bool, netns: u32) -> Vec<SnapSocket> {
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
                cookie: 0,
                tcp: TcpInfo::default(),
                owner: None,
            })
        })
        .collect()
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
        let s = parse(TCP, false, 7);
        assert_eq!(s.len(), 2, "header and garbage skipped");
        assert_eq!(&s[0].saddr[..4], &[127, 0, 0, 1]);
        assert_eq!((s[0].sport, s[0].dport, s[0].state, s[0].inode), (8080, 0, 10, 12345));
        assert_eq!((s[1].sport, s[1].dport, s[1].state, s[1].netns), (0xA1B2, 8080, 1, 7));
        assert_eq!(s[1].family, deeptcp_common::AF_INET);
    }

    #[test]
    fn parses_ipv6_and_v4_mapped_lines() {
        let s = parse(TCP6, true, 1);
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
}
