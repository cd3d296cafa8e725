//! kprobe/kretprobe programs: third rungs (the seed's hooks), reading
//! every field with `bpf_probe_read_kernel`.

use aya_ebpf::{
    macros::{kprobe, kretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use deeptcp_common::{probe, EventKind};

use super::{reset_without_full_sock, sock_event, zero_window_recv};
use crate::mem::ProbeRead;
use crate::owner::refresh_owner;

#[kprobe(function = "tcp_fin")]
pub fn kprobe_tcp_fin(ctx: ProbeContext) -> u32 {
    let _ = sock_event::<ProbeRead, _>(
        &ctx,
        ctx.arg(0).unwrap_or(core::ptr::null()),
        EventKind::FinRecv as u8,
        probe::KPROBE_TCP_FIN,
        false,
    );
    0
}

#[kprobe(function = "tcp_send_fin")]
pub fn kprobe_tcp_send_fin(ctx: ProbeContext) -> u32 {
    let sk = ctx.arg(0).unwrap_or(core::ptr::null());
    let _ = sock_event::<ProbeRead, _>(&ctx, sk, EventKind::FinSent as u8, probe::KPROBE_TCP_SEND_FIN, false);
    0
}

#[kprobe(function = "tcp_ack")]
pub fn kprobe_tcp_ack(ctx: ProbeContext) -> u32 {
    let sk = ctx.arg(0).unwrap_or(core::ptr::null());
    let skb = ctx.arg(1).unwrap_or(core::ptr::null());
    let _ = zero_window_recv::<ProbeRead, _>(&ctx, sk, skb, probe::KPROBE_TCP_ACK);
    0
}

#[kprobe(function = "tcp_send_loss_probe")]
pub fn kprobe_tcp_send_loss_probe(ctx: ProbeContext) -> u32 {
    let sk = ctx.arg(0).unwrap_or(core::ptr::null());
    let _ = sock_event::<ProbeRead, _>(
        &ctx,
        sk,
        EventKind::LossProbe as u8,
        probe::KPROBE_TCP_SEND_LOSS_PROBE,
        false,
    );
    0
}

#[kprobe(function = "tcp_sendmsg")]
pub fn kprobe_tcp_sendmsg(ctx: ProbeContext) -> u32 {
    let _ = refresh_owner::<ProbeRead>(ctx.arg(0).unwrap_or(core::ptr::null()));
    0
}

#[kprobe(function = "tcp_recvmsg")]
pub fn kprobe_tcp_recvmsg(ctx: ProbeContext) -> u32 {
    let _ = refresh_owner::<ProbeRead>(ctx.arg(0).unwrap_or(core::ptr::null()));
    0
}

#[kprobe(function = "tcp_v4_send_reset")]
pub fn kprobe_tcp_v4_send_reset(ctx: ProbeContext) -> u32 {
    let sk = ctx.arg(0).unwrap_or(core::ptr::null());
    let skb = ctx.arg(1).unwrap_or(core::ptr::null());
    let _ = reset_without_full_sock::<ProbeRead, _>(&ctx, sk, skb, probe::KPROBE_TCP_V4_SEND_RESET);
    0
}

#[kprobe(function = "tcp_v6_send_reset")]
pub fn kprobe_tcp_v6_send_reset(ctx: ProbeContext) -> u32 {
    let sk = ctx.arg(0).unwrap_or(core::ptr::null());
    let skb = ctx.arg(1).unwrap_or(core::ptr::null());
    let _ = reset_without_full_sock::<ProbeRead, _>(&ctx, sk, skb, probe::KPROBE_TCP_V6_SEND_RESET);
    0
}

/// accept() returning: the new socket, in the acceptor's process context.
#[kretprobe(function = "inet_csk_accept")]
pub fn kretprobe_inet_csk_accept(ctx: RetProbeContext) -> u32 {
    let sk: *const u8 = ctx.ret();
    let _ = sock_event::<ProbeRead, _>(
        &ctx,
        sk,
        EventKind::Accept as u8,
        probe::KRETPROBE_INET_CSK_ACCEPT,
        true,
    );
    0
}
