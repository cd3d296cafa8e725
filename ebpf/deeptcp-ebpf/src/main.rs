//! deeptcp's eBPF programs: one thin `tp_btf` program per kernel hook, each
//! calling a `try_*` function that reads the socket through BTF-resolved
//! offsets (the `OFFSETS` read-only global) and submits a
//! [`deeptcp_common::WireEvent`] to the `EVENTS` ring buffer.
//!
//! Rust eBPF has no CO-RE, so no struct layout is compiled in: every field
//! offset comes from `record`, which resolves it from the running kernel's
//! BTF. Wakeups are batched (`Config::wakeup_bytes`) because waking the
//! consumer on every event halves connection throughput.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel},
    macros::{btf_tracepoint, map},
    maps::{PerCpuArray, RingBuf, StackTrace},
    programs::{tracing::StackIdContext, BtfTracePointContext},
    Global,
};
use deeptcp_common::{kind, tcp_state, Config, Offsets, WireEvent, AF_INET, AF_INET6, NO_STACK};

/// `BPF_RB_AVAIL_DATA` for `bpf_ringbuf_query`.
const BPF_RB_AVAIL_DATA: u64 = 0;
const IPPROTO_TCP: u16 = 6;

#[no_mangle]
static OFFSETS: Global<Offsets> = Global::new(Offsets::UNSET);
#[no_mangle]
static CONFIG: Global<Config> = Global::new(Config::UNSET);

/// Events to user space; the loader sets the size (`--ring-size`).
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(4 << 20, 0);
/// Per-CPU count of events dropped because `EVENTS` was full.
#[map]
static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);
/// Kernel stacks for `-K`.
#[map]
static STACKS: StackTrace = StackTrace::with_max_entries(16384, 0);

/// Reads a `T` at `base + off` from kernel memory.
#[inline(always)]
fn read<T>(base: *const u8, off: u32) -> Result<T, i32> {
    // SAFETY: bpf_probe_read_kernel copies through the kernel's fault-tolerant
    // path; a bad address yields an error, never a fault.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(off as usize) as *const T) }
}

#[inline(always)]
fn count_lost() {
    if let Some(p) = LOST.get_ptr_mut(0) {
        // SAFETY: per-CPU slot of this CPU; programs do not nest on one CPU
        // for these hooks, and the count is advisory if they ever do.
        unsafe { *p += 1 };
    }
}

/// Socket fields common to every event.
#[inline(always)]
fn fill_from_sock(ev: &mut WireEvent, sk: *const u8, o: &Offsets) {
    let family: u16 = read(sk, o.skc_family).unwrap_or(0);
    ev.family = family;
    if family == AF_INET {
        if let Ok(a) = read::<[u8; 4]>(sk, o.skc_rcv_saddr) {
            ev.saddr[..4].copy_from_slice(&a);
        }
        if let Ok(a) = read::<[u8; 4]>(sk, o.skc_daddr) {
            ev.daddr[..4].copy_from_slice(&a);
        }
    } else if family == AF_INET6 {
        ev.saddr = read(sk, o.skc_v6_rcv_saddr).unwrap_or([0; 16]);
        ev.daddr = read(sk, o.skc_v6_daddr).unwrap_or([0; 16]);
    }
    let state: u8 = read(sk, o.skc_state).unwrap_or(0);
    // Time-wait and request sockets are only a sock_common: no inet_sport.
    ev.sport = if state == tcp_state::TIME_WAIT || state == tcp_state::NEW_SYN_RECV {
        read(sk, o.skc_num).unwrap_or(0)
    } else {
        u16::from_be(read(sk, o.inet_sport).unwrap_or(0))
    };
    ev.dport = u16::from_be(read(sk, o.skc_dport).unwrap_or(0));
    if ev.newstate == 0 {
        ev.newstate = state;
    }
    if let Ok(net) = read::<*const u8>(sk, o.skc_net) {
        ev.netns = read(net, o.net_ns_inum).unwrap_or(0);
    }
}

/// Addresses of an RST sent without a socket: the reply to `skb`, so the
/// segment's destination is the RST's source.
#[inline(always)]
fn fill_from_skb(ev: &mut WireEvent, skb: *const u8, o: &Offsets) -> Result<(), i32> {
    if skb.is_null() {
        return Err(-1);
    }
    let head: *const u8 = read(skb, o.skb_head)?;
    let data: *const u8 = read(skb, o.skb_data)?;
    let nh: u16 = read(skb, o.skb_network_header)?;
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
    Ok(())
}

/// Fills the task/time fields, applies the pid filter and submits.
#[inline(always)]
fn submit(ctx: &BtfTracePointContext, ev: &mut WireEvent) -> Result<(), i32> {
    let cfg = CONFIG.load();
    let pid_tgid = bpf_get_current_pid_tgid();
    if cfg.filter_pid != 0 && (pid_tgid >> 32) as u32 != cfg.filter_pid {
        return Ok(());
    }
    ev.pid_tgid = pid_tgid;
    // SAFETY: helper without memory arguments.
    ev.ts_ns = unsafe { bpf_ktime_get_ns() };
    ev.comm = bpf_get_current_comm().unwrap_or([0; 16]);
    ev.stack_id = if cfg.kstack != 0 {
        ctx.get_stackid(&STACKS, 0).map(|id| id as i32).unwrap_or(NO_STACK)
    } else {
        NO_STACK
    };
    let Some(mut entry) = EVENTS.reserve::<WireEvent>(0) else {
        count_lost();
        return Err(-1);
    };
    entry.write(*ev);
    let flags = if cfg.wakeup_bytes == 0 {
        0
    } else if EVENTS.query(BPF_RB_AVAIL_DATA) >= cfg.wakeup_bytes {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    };
    entry.submit(flags);
    Ok(())
}

#[inline(always)]
fn new_event(kind: u8) -> WireEvent {
    WireEvent {
        ts_ns: 0,
        pid_tgid: 0,
        saddr: [0; 16],
        daddr: [0; 16],
        comm: [0; 16],
        netns: 0,
        sk_err: 0,
        stack_id: NO_STACK,
        sport: 0,
        dport: 0,
        family: 0,
        kind,
        oldstate: 0,
        newstate: 0,
        _pad: [0; 3],
    }
}

/// An event about a full socket: fill from `sk`, then submit.
#[inline(always)]
fn sock_event(ctx: &BtfTracePointContext, kind: u8, sk: *const u8) -> Result<(), i32> {
    if sk.is_null() {
        return Err(-1);
    }
    let o = OFFSETS.load();
    let mut ev = new_event(kind);
    fill_from_sock(&mut ev, sk, &o);
    submit(ctx, &mut ev)
}

fn try_set_state(ctx: &BtfTracePointContext) -> Result<(), i32> {
    let sk: *const u8 = ctx.arg(0);
    let oldstate: i32 = ctx.arg(1);
    let newstate: i32 = ctx.arg(2);
    let o = OFFSETS.load();
    let protocol: u16 = read(sk, o.sk_protocol)?;
    if protocol != IPPROTO_TCP {
        return Ok(());
    }
    let mut ev = new_event(kind::STATE_CHANGE);
    ev.oldstate = oldstate as u8;
    ev.newstate = newstate as u8;
    fill_from_sock(&mut ev, sk, &o);
    submit(ctx, &mut ev)
}

fn try_error_report(ctx: &BtfTracePointContext) -> Result<(), i32> {
    let sk: *const u8 = ctx.arg(0);
    let o = OFFSETS.load();
    let protocol: u16 = read(sk, o.sk_protocol)?;
    if protocol != IPPROTO_TCP {
        return Ok(());
    }
    let mut ev = new_event(kind::SOCK_ERROR);
    ev.sk_err = read(sk, o.sk_err)?;
    fill_from_sock(&mut ev, sk, &o);
    submit(ctx, &mut ev)
}

fn try_send_reset(ctx: &BtfTracePointContext) -> Result<(), i32> {
    let sk: *const u8 = ctx.arg(0);
    let skb: *const u8 = ctx.arg(1);
    let o = OFFSETS.load();
    let mut ev = new_event(kind::RESET_SENT);
    if sk.is_null() {
        fill_from_skb(&mut ev, skb, &o)?;
    } else {
        fill_from_sock(&mut ev, sk, &o);
    }
    submit(ctx, &mut ev)
}

#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn inet_sock_set_state(ctx: BtfTracePointContext) -> i32 {
    let _ = try_set_state(&ctx);
    0
}

#[btf_tracepoint(function = "tcp_retransmit_skb")]
pub fn tcp_retransmit_skb(ctx: BtfTracePointContext) -> i32 {
    let _ = sock_event(&ctx, kind::RETRANSMIT, ctx.arg(0));
    0
}

#[btf_tracepoint(function = "tcp_receive_reset")]
pub fn tcp_receive_reset(ctx: BtfTracePointContext) -> i32 {
    let _ = sock_event(&ctx, kind::RESET_RECV, ctx.arg(0));
    0
}

#[btf_tracepoint(function = "tcp_send_reset")]
pub fn tcp_send_reset(ctx: BtfTracePointContext) -> i32 {
    let _ = try_send_reset(&ctx);
    0
}

#[btf_tracepoint(function = "inet_sk_error_report")]
pub fn inet_sk_error_report(ctx: BtfTracePointContext) -> i32 {
    let _ = try_error_report(&ctx);
    0
}

#[btf_tracepoint(function = "tcp_destroy_sock")]
pub fn tcp_destroy_sock(ctx: BtfTracePointContext) -> i32 {
    let _ = sock_event(&ctx, kind::DESTROY_SOCK, ctx.arg(0));
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 4] = *b"GPL\0";
