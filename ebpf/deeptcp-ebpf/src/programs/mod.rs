//! The programs, one thin function per kernel hook, by hook type: each
//! ladder's first rung is a tracepoint where one exists ([`tp_btf`]), then
//! fentry/fexit ([`fentry`]), then a kprobe ([`kprobe`]); zero windows fall
//! back to parsing headers ([`cgroup_skb`]). Here: the events several hook
//! types make, generic over how they read kernel memory ([`Mem`]).

mod cgroup_skb;
mod fentry;
mod kprobe;
mod tp_btf;

use aya_ebpf::programs::tracing::StackIdContext;
use deeptcp_common::{flags, EventKind, TcpState};

use crate::event::{new_event, stack_of, submit};
use crate::mem::{read, Mem};
use crate::owner::attribute;
use crate::sock::{fill_from_skb, fill_from_sock};

pub(crate) const TCP_FLAG_SYN: u8 = 0x02;

pub(crate) const TCP_FLAG_RST: u8 = 0x04;

/// An event about `sk` attributed to its owner; used by most hooks.
#[inline(always)]
pub(crate) fn sock_event<M: Mem, C: StackIdContext>(
    ctx: &C,
    sk: *const u8,
    kind: u8,
    probe: u8,
    in_task: bool,
) -> Result<(), i32> {
    if sk.is_null() {
        return Err(-1);
    }
    let mut ev = new_event(kind, probe);
    fill_from_sock::<M>(&mut ev, sk);
    attribute::<M>(&mut ev, sk, in_task);
    submit(&mut ev, stack_of(ctx))
}

/// Zero window received: a segment whose TCP header window is 0. `skb->data`
/// points at the TCP header in `tcp_rcv_established` (tcp_probe) and `tcp_ack`.
#[inline(always)]
pub(crate) fn zero_window_recv<M: Mem, C: StackIdContext>(
    ctx: &C,
    sk: *const u8,
    skb: *const u8,
    probe: u8,
) -> Result<(), i32> {
    if sk.is_null() || skb.is_null() {
        return Err(-1);
    }
    let data = M::get::<usize>(skb, off!(skb_data)) as *const u8;
    // Bytes 12..16 of the TCP header: data offset, flags, window.
    let hdr: [u8; 4] = read(data, 12)?;
    let flags_byte = hdr[1];
    let window = u16::from_be_bytes([hdr[2], hdr[3]]);
    if window != 0 || flags_byte & (TCP_FLAG_SYN | TCP_FLAG_RST) != 0 {
        return Ok(());
    }
    let mut ev = new_event(EventKind::ZeroWindowRecv as u8, probe);
    ev.flags |= flags::WINDOW;
    fill_from_sock::<M>(&mut ev, sk);
    attribute::<M>(&mut ev, sk, false);
    submit(&mut ev, stack_of(ctx))
}

/// An RST sent by `tcp_v4_send_reset`/`tcp_v6_send_reset` for a segment
/// without a full socket (none, time-wait or request socket): kernels
/// before 6.10 fire `tcp_send_reset` only for full sockets, which this
/// leaves to the tracepoint.
#[inline(always)]
pub(crate) fn reset_without_full_sock<M: Mem, C: StackIdContext>(
    ctx: &C,
    sk: *const u8,
    skb: *const u8,
    probe: u8,
) -> Result<(), i32> {
    let mut ev = new_event(EventKind::ResetSent as u8, probe);
    if sk.is_null() {
        fill_from_skb(&mut ev, skb)?;
    } else {
        let state: u8 = M::get(sk, off!(skc_state));
        if state != TcpState::TimeWait as u8 && state != TcpState::NewSynRecv as u8 {
            return Ok(());
        }
        fill_from_sock::<M>(&mut ev, sk);
    }
    attribute::<M>(&mut ev, sk, false);
    submit(&mut ev, stack_of(ctx))
}
