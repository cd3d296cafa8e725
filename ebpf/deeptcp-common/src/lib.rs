//! The kernel→user wire format of deeptcp, shared by the eBPF programs and
//! `record`.
//!
//! These `#[repr(C)]` records cross the BPF ring buffer and the `.rodata`
//! globals, so both sides must agree on them byte for byte: sizes are asserted
//! at compile time and nothing here depends on `std`. This is deliberately
//! not the file schema (that is `deeptcp-format`): the wire record may change
//! with any build, the file schema is versioned.
#![no_std]

/// Event kinds as sent by the programs ([`WireEvent::kind`]).
pub mod kind {
    pub const STATE_CHANGE: u8 = 1;
    pub const RETRANSMIT: u8 = 2;
    pub const RESET_RECV: u8 = 3;
    pub const RESET_SENT: u8 = 4;
    pub const SOCK_ERROR: u8 = 5;
    pub const DESTROY_SOCK: u8 = 6;
}

/// `AF_INET` / `AF_INET6` as the kernel numbers them.
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

/// [`WireEvent::stack_id`] when no stack was captured.
pub const NO_STACK: i32 = -1;

/// One event, as reserved in and submitted to the ring buffer.
///
/// Addresses are in network byte order as the kernel stores them (IPv4 in the
/// first four bytes), ports in host byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireEvent {
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC).
    pub ts_ns: u64,
    /// `bpf_get_current_pid_tgid()`: tgid in the upper 32 bits, tid in the lower.
    pub pid_tgid: u64,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    /// `bpf_get_current_comm()`, NUL padded.
    pub comm: [u8; 16],
    /// Network namespace inode (`sk->sk_net->ns.inum`), 0 if unknown.
    pub netns: u32,
    /// `sk->sk_err` (positive errno) for socket errors, else 0.
    pub sk_err: i32,
    /// Id in the `STACKS` map, or [`NO_STACK`].
    pub stack_id: i32,
    pub sport: u16,
    pub dport: u16,
    /// [`AF_INET`] or [`AF_INET6`].
    pub family: u16,
    /// One of [`kind`].
    pub kind: u8,
    /// Previous state (state changes only), else 0.
    pub oldstate: u8,
    /// New state for state changes, current state for other kinds, 0 if unknown.
    pub newstate: u8,
    pub _pad: [u8; 3],
}

const _: () = assert!(core::mem::size_of::<WireEvent>() == 88);
const _: () = assert!(core::mem::align_of::<WireEvent>() == 8);

/// Field offsets inside kernel structs, resolved by `record` from
/// `/sys/kernel/btf/vmlinux` at start-up and handed to the programs as one
/// read-only global (`.rodata`, so the verifier sees constants).
///
/// Every offset is in bytes from the start of the named struct.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offsets {
    /// `struct sock` → `__sk_common.skc_daddr` (be32).
    pub skc_daddr: u32,
    /// `struct sock` → `__sk_common.skc_rcv_saddr` (be32).
    pub skc_rcv_saddr: u32,
    /// `struct sock` → `__sk_common.skc_dport` (be16).
    pub skc_dport: u32,
    /// `struct sock` → `__sk_common.skc_num` (host-order u16).
    pub skc_num: u32,
    /// `struct sock` → `__sk_common.skc_family` (u16).
    pub skc_family: u32,
    /// `struct sock` → `__sk_common.skc_state` (u8).
    pub skc_state: u32,
    /// `struct sock` → `__sk_common.skc_net` (`possible_net_t`, a `struct net *`).
    pub skc_net: u32,
    /// `struct sock` → `__sk_common.skc_v6_daddr` (16 bytes).
    pub skc_v6_daddr: u32,
    /// `struct sock` → `__sk_common.skc_v6_rcv_saddr` (16 bytes).
    pub skc_v6_rcv_saddr: u32,
    /// `struct sock` → `sk_protocol` (u16).
    pub sk_protocol: u32,
    /// `struct sock` → `sk_err` (int).
    pub sk_err: u32,
    /// `struct inet_sock` → `inet_sport` (be16).
    pub inet_sport: u32,
    /// `struct net` → `ns.inum` (u32).
    pub net_ns_inum: u32,
    /// `struct sk_buff` → `head` (pointer).
    pub skb_head: u32,
    /// `struct sk_buff` → `data` (pointer).
    pub skb_data: u32,
    /// `struct sk_buff` → `network_header` (u16 offset from head).
    pub skb_network_header: u32,
}

const _: () = assert!(core::mem::size_of::<Offsets>() == 64);

impl Offsets {
    /// All zero: what the object carries before the loader overrides it.
    pub const UNSET: Offsets = Offsets {
        skc_daddr: 0,
        skc_rcv_saddr: 0,
        skc_dport: 0,
        skc_num: 0,
        skc_family: 0,
        skc_state: 0,
        skc_net: 0,
        skc_v6_daddr: 0,
        skc_v6_rcv_saddr: 0,
        sk_protocol: 0,
        sk_err: 0,
        inet_sport: 0,
        net_ns_inum: 0,
        skb_head: 0,
        skb_data: 0,
        skb_network_header: 0,
    };
}

/// Run-time settings for the programs, also a read-only global.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Only events whose current tgid equals this (0 = all).
    pub filter_pid: u32,
    /// Non-zero: capture kernel stacks into `STACKS`.
    pub kstack: u32,
    /// Wake the consumer only when this many bytes are waiting (0 = every event).
    pub wakeup_bytes: u64,
}

const _: () = assert!(core::mem::size_of::<Config>() == 16);

impl Config {
    /// Defaults compiled into the object (overridden by the loader).
    pub const UNSET: Config = Config {
        filter_pid: 0,
        kstack: 0,
        wakeup_bytes: 0,
    };
}

/// Kernel TCP states the programs need to tell apart.
pub mod tcp_state {
    pub const TIME_WAIT: u8 = 6;
    pub const NEW_SYN_RECV: u8 = 12;
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: all three are #[repr(C)], Copy, contain only integers and byte
    // arrays with explicit padding fields, so every bit pattern is valid.
    unsafe impl aya::Pod for super::WireEvent {}
    // SAFETY: as above; only u32 fields, no padding.
    unsafe impl aya::Pod for super::Offsets {}
    // SAFETY: as above; u32, u32, u64 with no implicit padding (asserted size 16).
    unsafe impl aya::Pod for super::Config {}
}
