//! fentry/fexit programs: second rungs where no tracepoint exists.

use aya_ebpf::{
    macros::{fentry, fexit},
    programs::{FEntryContext, FExitContext},
};
use deeptcp_common::{flags, probe, EventKind, TcpState};

use super::{reset_without_full_sock, sock_event};
use crate::event::{new_event, stack_of, submit};
use crate::mem::{read, BtfLoad};
use crate::owner::{attribute, refresh_owner};
use crate::sock::fill_from_sock;

#[fentry(function = "tcp_fin")]
pub fn fentry_tcp_fin(ctx: FEntryContext) -> i32 {
    let _ = sock_event::<BtfLoad, _>(&ctx, ctx.arg(0), EventKind::FinRecv as u8, probe::FENTRY_TCP_FIN, false);
    0
}

#[fentry(function = "tcp_send_fin")]
pub fn fentry_tcp_send_fin(ctx: FEntryContext) -> i32 {
    let _ = sock_event::<BtfLoad, _>(
        &ctx,
        ctx.arg(0),
        EventKind::FinSent as u8,
        probe::FENTRY_TCP_SEND_FIN,
        false,
    );
    0
}

#[fentry(function = "tcp_send_loss_probe")]
pub fn fentry_tcp_send_loss_probe(ctx: FEntryContext) -> i32 {
    let _ = sock_event::<BtfLoad, _>(
        &ctx,
        ctx.arg(0),
        EventKind::LossProbe as u8,
        probe::FENTRY_TCP_SEND_LOSS_PROBE,
        false,
    );
    0
}

#[fentry(function = "tcp_sendmsg")]
pub fn fentry_tcp_sendmsg(ctx: FEntryContext) -> i32 {
    let _ = refresh_owner::<BtfLoad>(ctx.arg(0));
    0
}

#[fentry(function = "tcp_recvmsg")]
pub fn fentry_tcp_recvmsg(ctx: FEntryContext) -> i32 {
    let _ = refresh_owner::<BtfLoad>(ctx.arg(0));
    0
}

#[fentry(function = "tcp_v4_send_reset")]
pub fn fentry_tcp_v4_send_reset(ctx: FEntryContext) -> i32 {
    let _ = reset_without_full_sock::<BtfLoad, _>(&ctx, ctx.arg(0), ctx.arg(1), probe::FENTRY_TCP_V4_SEND_RESET);
    0
}

#[fentry(function = "tcp_v6_send_reset")]
pub fn fentry_tcp_v6_send_reset(ctx: FEntryContext) -> i32 {
    let _ = reset_without_full_sock::<BtfLoad, _>(&ctx, ctx.arg(0), ctx.arg(1), probe::FENTRY_TCP_V6_SEND_RESET);
    0
}

fn try_fexit_transmit(ctx: &FExitContext) -> Result<(), i32> {
    let sk: *const u8 = ctx.arg(0);
    if sk.is_null() {
        return Err(-1);
    }
    let state: u8 = read(sk, off!(skc_state))?;
    // After transmit, tp->rcv_wnd is the window just advertised.
    if state != TcpState::Established as u8 || read::<u32>(sk, off!(tcp_rcv_wnd))? != 0 {
        return Ok(());
    }
    let mut ev = new_event(EventKind::ZeroWindowSent as u8, probe::FEXIT_TCP_TRANSMIT_SKB);
    ev.flags |= flags::WINDOW;
    fill_from_sock::<BtfLoad>(&mut ev, sk);
    attribute::<BtfLoad>(&mut ev, sk, false);
    submit(&mut ev, stack_of(ctx))
}

#[fexit(function = "__tcp_transmit_skb")]
pub fn fexit_tcp_transmit_skb(ctx: FExitContext) -> i32 {
    let _ = try_fexit_transmit(&ctx);
    0
}

/// accept() returning: the new socket, in the acceptor's process context.
/// The return value sits in the context slot after the arguments: one
/// program per signature (`record` loads the one of this kernel), as the
/// verifier only takes constant context offsets.
#[inline(always)]
fn accept_returned(ctx: &FExitContext, sk: *const u8) -> i32 {
    let _ = sock_event::<BtfLoad, _>(ctx, sk, EventKind::Accept as u8, probe::FEXIT_INET_CSK_ACCEPT, true);
    0
}

/// `inet_csk_accept(sk, arg)`, since 6.10.
#[fexit(function = "inet_csk_accept")]
pub fn fexit_inet_csk_accept(ctx: FExitContext) -> i32 {
    accept_returned(&ctx, ctx.arg(2))
}

/// `inet_csk_accept(sk, flags, err, kern)`, before 6.10.
#[fexit(function = "inet_csk_accept")]
pub fn fexit_inet_csk_accept4(ctx: FExitContext) -> i32 {
    accept_returned(&ctx, ctx.arg(4))
}
