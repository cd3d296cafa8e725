//! What an event says about its connection: addresses, ports, namespace,
//! state and TCP fields read from the socket, or, for an RST sent without
//! one, from the segment it answers.

use deeptcp_common::{flags, TcpState, WireEvent, AF_INET, AF_INET6};

use crate::mem::{rd, rd_ptr, read, Mem};

pub(crate) const IPPROTO_TCP: u16 = 6;

#[inline(always)]
pub(crate) fn is_tcp<M: Mem>(sk: *const u8) -> bool {
    M::get::<u16>(sk, off!(sk_protocol)) == IPPROTO_TCP
}

/// Socket fields common to every event (`sk_err` too, as the seed showed
/// it on every row).
#[inline(always)]
pub(crate) fn fill_from_sock<M: Mem>(ev: &mut WireEvent, sk: *const u8) {
    let family: u16 = M::get(sk, off!(skc_family));
    ev.family = family;
    if family == AF_INET {
        ev.saddr[..4].copy_from_slice(&M::get::<u32>(sk, off!(skc_rcv_saddr)).to_ne_bytes());
        ev.daddr[..4].copy_from_slice(&M::get::<u32>(sk, off!(skc_daddr)).to_ne_bytes());
    } else if family == AF_INET6 {
        ev.saddr = v6(M::get(sk, off!(skc_v6_rcv_saddr)));
        ev.daddr = v6(M::get(sk, off!(skc_v6_daddr)));
    }
    let state: u8 = M::get(sk, off!(skc_state));
    ev.dport = u16::from_be(M::get(sk, off!(skc_dport)));
    if ev.newstate == 0 {
        ev.newstate = state;
    }
    if ev.cookie == 0 {
        ev.cookie = M::get(sk, off!(skc_cookie));
    }
    ev.netns = netns_of::<M>(sk);
    // Time-wait and request sockets are only a sock_common: the local port
    // is skc_num there. Full sockets have inet_sport, which, unlike
    // skc_num, is still set when the port is released on the way to CLOSE.
    let tp = if state == TcpState::TimeWait as u8 || state == TcpState::NewSynRecv as u8 {
        core::ptr::null()
    } else {
        M::tcp_sock(sk)
    };
    if tp.is_null() {
        ev.sport = M::get(sk, off!(skc_num));
        return;
    }
    ev.sport = u16::from_be(M::get(tp, off!(inet_sport)));
    // sk_err lies past sock_common: full sockets only. Read through `tp`,
    // the typed pointer the verifier knows to be a whole tcp_sock.
    ev.sk_err = M::get(tp, off!(sk_err));
    if state == TcpState::Listen as u8 {
        return;
    }
    ev.snd_wnd = M::get(tp, off!(tcp_snd_wnd));
    ev.rcv_wnd = M::get(tp, off!(tcp_rcv_wnd));
    ev.srtt_us = M::get::<u32>(tp, off!(tcp_srtt_us)) >> 3;
    ev.snd_cwnd = M::get(tp, off!(tcp_snd_cwnd));
    ev.bytes_acked = M::get(tp, off!(tcp_bytes_acked));
    ev.bytes_received = M::get(tp, off!(tcp_bytes_received));
    ev.flags |= flags::TCP_INFO;
}

/// The inode of the socket's network namespace (`sk->sk_net->ns.inum`).
#[inline(always)]
pub(crate) fn netns_of<M: Mem>(sk: *const u8) -> u32 {
    M::get(M::get::<usize>(sk, off!(skc_net)) as *const u8, off!(net_ns_inum))
}

/// An IPv6 address read as two words (a 16-byte field in one load each half).
#[inline(always)]
fn v6(words: [u64; 2]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..8].copy_from_slice(&words[0].to_ne_bytes());
    a[8..].copy_from_slice(&words[1].to_ne_bytes());
    a
}

/// Addresses of an RST sent without a socket: the reply to `skb`, so the
/// segment's destination is the RST's source.
#[inline(always)]
pub(crate) fn fill_from_skb(ev: &mut WireEvent, skb: *const u8) -> Result<(), i32> {
    if skb.is_null() {
        return Err(-1);
    }
    let head: *const u8 = read(skb, off!(skb_head))?;
    let data: *const u8 = read(skb, off!(skb_data))?;
    let nh: u16 = read(skb, off!(skb_network_header))?;
    let ip = head.wrapping_add(nh as usize);
    let version: u8 = read::<u8>(ip, 0)? >> 4;
    if version == 4 {
        ev.family = AF_INET;
        let s: [u8; 4] = read(ip, 12)?;
        let d: [u8; 4] = read(ip, 16)?;
        ev.daddr[..4].copy_from_slice(&s);
        ev.saddr[..4].copy_from_slice(&d);
    } else if version == 6 {
        ev.family = AF_INET6;
        ev.daddr = read(ip, 8)?;
        ev.saddr = read(ip, 24)?;
    } else {
        return Err(-1);
    }
    // skb->data points at the TCP header here (as in the tracepoint itself).
    ev.dport = u16::from_be(read(data, 0)?);
    ev.sport = u16::from_be(read(data, 2)?);
    // No socket: the namespace is the receiving device's.
    ev.netns = rd(rd_ptr(rd_ptr(skb, off!(skb_dev)), off!(dev_nd_net)), off!(net_ns_inum));
    Ok(())
}
