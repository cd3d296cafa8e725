//! Wire record → file row: the one place that turns what the kernel sent
//! (`deeptcp_common::WireEvent`) into a [`deeptcp_format::Event`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use deeptcp_common::{kind, WireEvent, AF_INET, AF_INET6, NO_STACK};
use deeptcp_format::event::canonical_ip;
use deeptcp_format::{Event, EventKind, Family, TcpState};

/// Why a wire record could not become a row (kept, counted, reported).
#[derive(Debug, PartialEq, Eq)]
pub enum Reject {
    UnknownKind(u8),
    UnknownFamily(u16),
}

fn event_kind(k: u8) -> Option<EventKind> {
    Some(match k {
        kind::STATE_CHANGE => EventKind::StateChange,
        kind::RETRANSMIT => EventKind::Retransmit,
        kind::RESET_RECV => EventKind::ResetRecv,
        kind::RESET_SENT => EventKind::ResetSent,
        kind::SOCK_ERROR => EventKind::SockError,
        kind::DESTROY_SOCK => EventKind::DestroySock,
        _ => return None,
    })
}

fn comm(raw: &[u8; 16]) -> String {
    let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

pub fn to_event(w: &WireEvent) -> Result<Event, Reject> {
    let kind = event_kind(w.kind).ok_or(Reject::UnknownKind(w.kind))?;
    let (family, saddr, daddr) = match w.family {
        AF_INET => {
            let s = Ipv4Addr::new(w.saddr[0], w.saddr[1], w.saddr[2], w.saddr[3]);
            let d = Ipv4Addr::new(w.daddr[0], w.daddr[1], w.daddr[2], w.daddr[3]);
            (Family::Inet, IpAddr::V4(s), IpAddr::V4(d))
        }
        AF_INET6 => (
            Family::Inet6,
            canonical_ip(IpAddr::V6(Ipv6Addr::from(w.saddr))),
            canonical_ip(IpAddr::V6(Ipv6Addr::from(w.daddr))),
        ),
        other => return Err(Reject::UnknownFamily(other)),
    };
    let oldstate = if kind == EventKind::StateChange {
        TcpState::from_kernel(w.oldstate)
    } else {
        None
    };
    Ok(Event {
        mono_ns: i64::try_from(w.ts_ns).unwrap_or(i64::MAX),
        kind,
        pid: (w.pid_tgid >> 32) as u32,
        tid: w.pid_tgid as u32,
        comm: comm(&w.comm),
        family,
        saddr,
        daddr,
        sport: w.sport,
        dport: w.dport,
        oldstate,
        newstate: TcpState::from_kernel(w.newstate),
        sk_err: w.sk_err,
        netns: w.netns,
        stack_id: (w.stack_id != NO_STACK && w.stack_id >= 0).then_some(w.stack_id as i64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire() -> WireEvent {
        let mut w = WireEvent {
            ts_ns: 123,
            pid_tgid: (4242u64 << 32) | 4243,
            saddr: [0; 16],
            daddr: [0; 16],
            comm: [0; 16],
            netns: 4026531840,
            sk_err: 0,
            stack_id: NO_STACK,
            sport: 5000,
            dport: 80,
            family: AF_INET,
            kind: kind::STATE_CHANGE,
            oldstate: 7,
            newstate: 2,
            _pad: [0; 3],
        };
        w.saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        w.daddr[..4].copy_from_slice(&[10, 1, 2, 3]);
        w.comm[..4].copy_from_slice(b"curl");
        w
    }

    #[test]
    fn ipv4_state_change() {
        let e = to_event(&wire()).unwrap();
        assert_eq!(e.pid, 4242);
        assert_eq!(e.tid, 4243);
        assert_eq!(e.comm, "curl");
        assert_eq!(e.saddr.to_string(), "127.0.0.1");
        assert_eq!(e.daddr.to_string(), "10.1.2.3");
        assert_eq!(e.oldstate, Some(TcpState::Close));
        assert_eq!(e.newstate, Some(TcpState::SynSent));
        assert_eq!(e.stack_id, None);
        assert_eq!(e.family, Family::Inet);
    }

    #[test]
    fn ipv6_and_mapped() {
        let mut w = wire();
        w.family = AF_INET6;
        w.kind = kind::RETRANSMIT;
        w.stack_id = 17;
        w.saddr = Ipv6Addr::LOCALHOST.octets();
        w.daddr = Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped().octets();
        let e = to_event(&w).unwrap();
        assert_eq!(e.saddr.to_string(), "::1");
        assert_eq!(e.daddr.to_string(), "192.0.2.1");
        assert_eq!(e.family, Family::Inet6);
        assert_eq!(e.oldstate, None, "only transitions have an old state");
        assert_eq!(e.stack_id, Some(17));
    }

    #[test]
    fn rejects_unknown_kind_and_family() {
        let mut w = wire();
        w.kind = 99;
        assert_eq!(to_event(&w), Err(Reject::UnknownKind(99)));
        let mut w = wire();
        w.family = 1;
        assert_eq!(to_event(&w), Err(Reject::UnknownFamily(1)));
        let mut w = wire();
        w.newstate = 200;
        assert_eq!(to_event(&w).unwrap().newstate, None);
    }
}
