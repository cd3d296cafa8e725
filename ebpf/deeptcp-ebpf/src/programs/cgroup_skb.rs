//! cgroup_skb programs: header-parsing fallbacks for zero windows, on every
//! packet of the cgroup hierarchy (hence the direct-read pre-filter).

use aya_ebpf::{helpers::bpf_get_socket_cookie, macros::cgroup_skb, programs::SkBuffContext, EbpfContext};
use deeptcp_common::{flags, probe, EventKind, AF_INET, AF_INET6, NO_STACK};

use super::{TCP_FLAG_RST, TCP_FLAG_SYN};
use crate::event::{new_event, submit};
use crate::mem::BtfLoad;
use crate::owner::{attribute, in_sk_storage};
use crate::sock::IPPROTO_TCP;

/// cgroup_skb programs return 1 to let the packet through.
const SKB_PASS: i32 = 1;

/// Parses the IP and TCP headers of `skb`; submits a zero-window event when
/// the segment advertises window 0. `local_is_src`: egress (we sent it).
fn try_zero_window_skb(ctx: &SkBuffContext, kind: u8, probe: u8, local_is_src: bool) -> Result<(), i32> {
    if nonzero_window(ctx) {
        return Ok(());
    }
    let first: u8 = ctx.load(0).map_err(|_| -1)?;
    let mut ev = new_event(kind, probe);
    // Source into saddr, destination into daddr; swapped below for ingress.
    let th: usize = match first >> 4 {
        4 => {
            if ctx.load::<u8>(9).map_err(|_| -1)? != IPPROTO_TCP as u8 {
                return Ok(());
            }
            ev.family = AF_INET;
            ev.saddr[..4].copy_from_slice(&ctx.load::<[u8; 4]>(12).map_err(|_| -1)?);
            ev.daddr[..4].copy_from_slice(&ctx.load::<[u8; 4]>(16).map_err(|_| -1)?);
            ((first & 0x0f) as usize) * 4
        }
        6 => {
            // Next header TCP without extension headers (the common case).
            if ctx.load::<u8>(6).map_err(|_| -1)? != IPPROTO_TCP as u8 {
                return Ok(());
            }
            ev.family = AF_INET6;
            ev.saddr = ctx.load(8).map_err(|_| -1)?;
            ev.daddr = ctx.load(24).map_err(|_| -1)?;
            40
        }
        _ => return Ok(()),
    };
    if th < 20 || th > 60 {
        return Ok(());
    }
    let window = u16::from_be(ctx.load(th + 14).map_err(|_| -1)?);
    let tcp_flags: u8 = ctx.load(th + 13).map_err(|_| -1)?;
    if window != 0 || tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_RST) != 0 {
        return Ok(());
    }
    let sp = u16::from_be(ctx.load(th).map_err(|_| -1)?);
    let dp = u16::from_be(ctx.load(th + 2).map_err(|_| -1)?);
    if local_is_src {
        (ev.sport, ev.dport) = (sp, dp);
    } else {
        core::mem::swap(&mut ev.saddr, &mut ev.daddr);
        (ev.sport, ev.dport) = (dp, sp);
    }
    ev.flags |= flags::WINDOW;
    // SAFETY: the skb context is what this helper takes in cgroup_skb programs.
    ev.cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    attribute::<BtfLoad>(&mut ev, skb_full_sock(ctx), false);
    submit(&mut ev, NO_STACK)
}

/// The full socket of a cgroup_skb packet, for socket storage; null with
/// the hash store (which goes by cookie) or when the packet has none.
#[inline(always)]
fn skb_full_sock(ctx: &SkBuffContext) -> *const u8 {
    if !in_sk_storage() {
        return core::ptr::null();
    }
    let skb = ctx.as_ptr() as *const aya_ebpf::bindings::__sk_buff;
    // SAFETY: the context of a cgroup_skb program is a `__sk_buff`, whose
    // `sk` the verifier rewrites into the packet's socket (or null).
    let sk = unsafe { (*skb).__bindgen_anon_2.sk };
    if sk.is_null() {
        return core::ptr::null();
    }
    // SAFETY: a non-null socket of the context, as the helper takes; it
    // returns the full socket or null.
    unsafe { aya_ebpf::helpers::generated::bpf_sk_fullsock(sk) as *const u8 }
}

/// Whether the segment in `ctx` is surely not a zero-window one, decided
/// with direct packet reads (no helper call) for the common header layouts:
/// the pre-filter that keeps the per-packet cost of the cgroup_skb rungs
/// small. `false` means "look closer" (zero window, or a layout it skips).
#[inline(always)]
fn nonzero_window(ctx: &SkBuffContext) -> bool {
    let skb = ctx.as_ptr() as *const aya_ebpf::bindings::__sk_buff;
    // SAFETY: the context of a cgroup_skb program is a `__sk_buff`; the
    // verifier rewrites these two loads into packet pointers.
    let (start, end) = unsafe { ((*skb).data as usize, (*skb).data_end as usize) };
    // IPv4 without options or IPv6 without extension headers: the TCP
    // header at 20 or 40 bytes; its flags at +13, window at +14.
    // (A TCP segment over IPv4 is at least 40 bytes; a shorter packet goes
    // the slow way.)
    if start + 36 > end {
        return false;
    }
    // SAFETY (all packet reads below): each offset lies before `end`,
    // checked just before, in the packet's linear data the program may read.
    let first = unsafe { *(start as *const u8) };
    let (proto, flags, window) = if first == 0x45 {
        unsafe {
            (
                *((start + 9) as *const u8),
                *((start + 33) as *const u8),
                *((start + 34) as *const u16),
            )
        }
    } else if first >> 4 == 6 {
        if start + 56 > end {
            return false;
        }
        unsafe {
            (
                *((start + 6) as *const u8),
                *((start + 53) as *const u8),
                *((start + 54) as *const u16),
            )
        }
    } else {
        return false;
    };
    proto != IPPROTO_TCP as u8 || window != 0 || flags & (TCP_FLAG_SYN | TCP_FLAG_RST) != 0
}

#[cgroup_skb(egress)]
pub fn cgroup_skb_egress(ctx: SkBuffContext) -> i32 {
    let _ = try_zero_window_skb(&ctx, EventKind::ZeroWindowSent as u8, probe::CGROUP_SKB_EGRESS, true);
    SKB_PASS
}

#[cgroup_skb(ingress)]
pub fn cgroup_skb_ingress(ctx: SkBuffContext) -> i32 {
    let _ = try_zero_window_skb(&ctx, EventKind::ZeroWindowRecv as u8, probe::CGROUP_SKB_INGRESS, false);
    SKB_PASS
}
