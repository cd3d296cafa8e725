//! tp_btf programs: the first rung of every ladder that has a tracepoint,
//! and the nested twins of `record --recover-nested`.

use aya_ebpf::{
    helpers::{bpf_get_socket_cookie, bpf_ktime_get_ns},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use deeptcp_common::{flags, probe, Attribution, EventKind, ListenKey, Owner, TcpState, WireEvent};

use super::{sock_event, zero_window_recv};
use crate::event::{count, new_event, stack_of, submit};
use crate::maps::{twin, BUSY, LISTENERS, LOST_RECOVERED, OWNERS, PENDING_CHILDREN};
use crate::mem::{BtfLoad, Mem};
use crate::owner::{apply_owner, attribute, current_owner, in_owner_context, in_sk_storage, refresh_owner};
use crate::sock::{fill_from_skb, fill_from_sock, is_tcp};

fn try_set_state(ctx: &BtfTracePointContext) -> Result<(), i32> {
    use TcpState::*;
    let sk: *const u8 = ctx.arg(0);
    if sk.is_null() {
        return Err(-1);
    }
    let old = ctx.arg::<i32>(1) as u8;
    let new = ctx.arg::<i32>(2) as u8;
    if !is_tcp::<BtfLoad>(sk) {
        return Ok(());
    }
    let mut ev = new_event(EventKind::StateChange as u8, probe::TP_SET_STATE);
    ev.oldstate = old;
    ev.newstate = new;
    ev.cookie = BtfLoad::get(sk, off!(skc_cookie));
    if ev.cookie == 0 {
        // SAFETY: `sk` is the tracepoint's non-null BTF socket pointer, as
        // the helper requires; it generates the socket's first cookie.
        ev.cookie = unsafe { bpf_get_socket_cookie(sk as *mut _) };
    }
    fill_from_sock::<BtfLoad>(&mut ev, sk);
    if new == Listen as u8 {
        // The fields were read in the state before (CLOSE): a listener has
        // no connection, so no TCP fields, as on its LISTEN -> CLOSE row.
        ev.flags &= !flags::TCP_INFO;
    }

    let listen_key = ListenKey {
        netns: ev.netns,
        port: ev.sport,
        _pad: 0,
    };
    if old == Listen as u8 && new == SynRecv as u8 {
        // A child of a listener: inherit the listener's owner.
        // SAFETY: the map value is copied out at once.
        let listener = unsafe { LISTENERS.get(&listen_key) }.copied();
        if ev.dport == 0 {
            // No peer port: before 6.15 inet_csk_clone_lock() sets SYN_RECV
            // before it copies the cookie and the 4-tuple into the child, so
            // the fields read are still the listener's. Hold the row until
            // the child's next transition (see `flush_pending_child`).
            if let Some(l) = listener {
                apply_owner(&mut ev, &l, Attribution::Listener as u8);
            }
            // SAFETY: helper without memory arguments.
            ev.ts_ns = unsafe { bpf_ktime_get_ns() };
            ev.stack_id = stack_of(ctx);
            let _ = PENDING_CHILDREN.insert(&(sk as u64), &ev, 0);
            return Ok(());
        }
        if let Some(mut inherited) = listener {
            inherited.attribution = Attribution::Listener as u8;
            // Never replaces an owner the socket already has.
            BtfLoad::keep_owner(sk, ev.cookie, &inherited, false);
        }
    } else if old == SynRecv as u8 {
        flush_pending_child(sk, &ev);
    }
    attribute::<BtfLoad>(&mut ev, sk, in_owner_context(old, new));
    if new == Listen as u8 {
        let owner = current_owner(ev.netns);
        let _ = LISTENERS.insert(&listen_key, &owner, 0);
    } else if old == Listen as u8 && new == Close as u8 {
        let _ = LISTENERS.remove(&listen_key);
    }
    // What `record` infers rows from besides the states (see `flags`): did
    // tcp_fin() run (SOCK_DONE), does a process hold the socket (sk_socket)?
    if (BtfLoad::get::<u64>(sk, off!(skc_flags)) >> (off!(sock_done_bit) & 63)) & 1 != 0 {
        ev.flags |= flags::SOCK_DONE;
    }
    if BtfLoad::get::<usize>(sk, off!(sk_socket)) == 0 {
        ev.flags |= flags::NO_USER_SOCKET;
    }
    submit(&mut ev, stack_of(ctx))
}

/// Submits the held LISTEN -> SYN_RECV row of the child socket `sk`, if
/// any, with the cookie and addresses it has now (`cur`, its next
/// transition), and makes the listener's owner the child's.
#[inline(always)]
fn flush_pending_child(sk: *const u8, cur: &WireEvent) {
    let key = sk as u64;
    let Some(p) = PENDING_CHILDREN.get_ptr_mut(&key) else {
        return;
    };
    // SAFETY: `p` points at the map's value for `sk`, valid for this run
    // of the program; it is removed right after use.
    let held = unsafe { &mut *p };
    held.cookie = cur.cookie;
    held.family = cur.family;
    held.saddr = cur.saddr;
    held.daddr = cur.daddr;
    held.sport = cur.sport;
    held.dport = cur.dport;
    held.netns = cur.netns;
    if held.attribution != Attribution::Unknown as u8 && cur.cookie != 0 {
        let owner = Owner {
            netns: held.netns,
            pid_tgid: held.pid_tgid,
            cgroup_id: held.cgroup_id,
            comm: held.comm,
            attribution: held.attribution,
            _pad: [0; 3],
        };
        BtfLoad::keep_owner(sk, cur.cookie, &owner, false);
    }
    let stack_id = held.stack_id;
    let _ = submit(held, stack_id);
    let _ = PENDING_CHILDREN.remove(&key);
}

fn try_error_report(ctx: &BtfTracePointContext) -> Result<(), i32> {
    let sk: *const u8 = ctx.arg(0);
    if sk.is_null() {
        return Err(-1);
    }
    if !is_tcp::<BtfLoad>(sk) {
        return Ok(());
    }
    let mut ev = new_event(EventKind::SockError as u8, probe::TP_ERROR_REPORT);
    fill_from_sock::<BtfLoad>(&mut ev, sk);
    attribute::<BtfLoad>(&mut ev, sk, false);
    submit(&mut ev, stack_of(ctx))
}

fn try_send_reset(ctx: &BtfTracePointContext) -> Result<(), i32> {
    let sk: *const u8 = ctx.arg(0);
    let skb: *const u8 = ctx.arg(1);
    let mut ev = new_event(EventKind::ResetSent as u8, probe::TP_SEND_RESET);
    if sk.is_null() {
        fill_from_skb(&mut ev, skb)?;
    } else {
        fill_from_sock::<BtfLoad>(&mut ev, sk);
    }
    attribute::<BtfLoad>(&mut ev, sk, false);
    submit(&mut ev, stack_of(ctx))
}

fn try_destroy(ctx: &BtfTracePointContext) -> Result<(), i32> {
    let sk: *const u8 = ctx.arg(0);
    if sk.is_null() {
        return Err(-1);
    }
    let mut ev = new_event(EventKind::DestroySock as u8, probe::TP_DESTROY_SOCK);
    fill_from_sock::<BtfLoad>(&mut ev, sk);
    attribute::<BtfLoad>(&mut ev, sk, false);
    let result = submit(&mut ev, stack_of(ctx));
    // Socket storage goes with the socket; a hash entry must be removed.
    if !in_sk_storage() && ev.cookie != 0 {
        let _ = OWNERS.remove(&ev.cookie);
    }
    result
}

/// A tp_btf program and its nested twin on the same hook. The kernel runs a
/// tracing program at most once per CPU at a time: when the hook fires in a
/// softirq that interrupted the program (TCP's receive path interrupting a
/// `close()` or `connect()` on the same CPU), that run is skipped and only
/// counted in the program's `recursion_misses`, and its event is lost. The
/// twin makes exactly those events: it runs on every firing, returns at
/// once unless the first program is running on this CPU ([`BUSY`]), and
/// otherwise makes the event the kernel skipped the first program for,
/// counting it in [`LOST_RECOVERED`] so that `record` can tell the skipped
/// runs that were made up for from those that were not. (Softirqs do not
/// nest, and tp_btf programs run with preemption off: the twin itself is
/// never skipped while it makes an event.) `record --recover-nested`
/// attaches the twins: each costs a program run (~40 ns) per firing, to
/// make up for a few events per million under heavy churn, most of them
/// (the kernel's own bookkeeping around a run, outside [`BUSY`]'s window,
/// leaves some skipped runs that no twin sees; those stay counted as lost).
macro_rules! tp_with_twin {
    ($hook:literal, $name:ident, $twin:ident, $slot:expr, |$ctx:ident| $body:expr) => {
        #[btf_tracepoint(function = $hook)]
        pub fn $name($ctx: BtfTracePointContext) -> i32 {
            let busy = BUSY.get_ptr_mut($slot);
            if let Some(b) = busy {
                // SAFETY: this CPU's slot; this program does not nest on it.
                unsafe { *b = 1 };
            }
            let _ = $body;
            if let Some(b) = busy {
                // SAFETY: as above.
                unsafe { *b = 0 };
            }
            0
        }

        #[btf_tracepoint(function = $hook)]
        pub fn $twin($ctx: BtfTracePointContext) -> i32 {
            match BUSY.get_ptr($slot) {
                // SAFETY: this CPU's slot, read once.
                Some(b) if unsafe { *b } != 0 => {}
                _ => return 0,
            }
            count(LOST_RECOVERED);
            let _ = $body;
            0
        }
    };
}

tp_with_twin!(
    "inet_sock_set_state",
    inet_sock_set_state,
    inet_sock_set_state_nested,
    twin::SET_STATE,
    |ctx| try_set_state(&ctx)
);

tp_with_twin!(
    "tcp_retransmit_skb",
    tcp_retransmit_skb,
    tcp_retransmit_skb_nested,
    twin::RETRANSMIT,
    |ctx| sock_event::<BtfLoad, _>(
        &ctx,
        ctx.arg(0),
        EventKind::Retransmit as u8,
        probe::TP_RETRANSMIT_SKB,
        false
    )
);

#[btf_tracepoint(function = "tcp_retransmit_synack")]
pub fn tcp_retransmit_synack(ctx: BtfTracePointContext) -> i32 {
    // arg 1 is the request socket: a sock_common with the connection's addresses.
    let _ = sock_event::<BtfLoad, _>(
        &ctx,
        ctx.arg(1),
        EventKind::RetransmitSynack as u8,
        probe::TP_RETRANSMIT_SYNACK,
        false,
    );
    0
}

tp_with_twin!(
    "tcp_receive_reset",
    tcp_receive_reset,
    tcp_receive_reset_nested,
    twin::RECEIVE_RESET,
    |ctx| sock_event::<BtfLoad, _>(
        &ctx,
        ctx.arg(0),
        EventKind::ResetRecv as u8,
        probe::TP_RECEIVE_RESET,
        false
    )
);

tp_with_twin!(
    "tcp_send_reset",
    tcp_send_reset,
    tcp_send_reset_nested,
    twin::SEND_RESET,
    |ctx| try_send_reset(&ctx)
);

tp_with_twin!(
    "inet_sk_error_report",
    inet_sk_error_report,
    inet_sk_error_report_nested,
    twin::ERROR_REPORT,
    |ctx| try_error_report(&ctx)
);

tp_with_twin!(
    "tcp_destroy_sock",
    tcp_destroy_sock,
    tcp_destroy_sock_nested,
    twin::DESTROY,
    |ctx| try_destroy(&ctx)
);

#[btf_tracepoint(function = "tcp_probe")]
pub fn tcp_probe(ctx: BtfTracePointContext) -> i32 {
    let _ = zero_window_recv::<BtfLoad, _>(&ctx, ctx.arg(0), ctx.arg(1), probe::TP_TCP_PROBE);
    0
}

#[btf_tracepoint(function = "sock_send_length")]
pub fn sock_send_length(ctx: BtfTracePointContext) -> i32 {
    let _ = refresh_owner::<BtfLoad>(ctx.arg(0));
    0
}

#[btf_tracepoint(function = "sock_recv_length")]
pub fn sock_recv_length(ctx: BtfTracePointContext) -> i32 {
    let _ = refresh_owner::<BtfLoad>(ctx.arg(0));
    0
}
