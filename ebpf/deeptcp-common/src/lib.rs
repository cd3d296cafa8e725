//! The kernel→user wire format of deeptcp, shared by the eBPF programs and
//! `record`.
//!
//! These `#[repr(C)]` records cross the BPF ring buffer, maps and the
//! `.rodata` globals, so both sides must agree on them byte for byte: sizes
//! are asserted at compile time and nothing here depends on `std`. This is
//! deliberately not the file schema (that is `deeptcp-format`): the wire
//! record may change with any build, the file schema is versioned.
#![no_std]

mod enums;
pub use enums::{Attribution, EventKind, TcpState};

/// Which program produced a record ([`WireEvent::probe`]); `record` maps
/// these to the `probe` column's text.
pub mod probe {
    pub const TP_SET_STATE: u8 = 1;
    pub const TP_RETRANSMIT_SKB: u8 = 2;
    pub const TP_RECEIVE_RESET: u8 = 3;
    pub const TP_SEND_RESET: u8 = 4;
    pub const TP_ERROR_REPORT: u8 = 5;
    pub const TP_DESTROY_SOCK: u8 = 6;
    pub const TP_RETRANSMIT_SYNACK: u8 = 7;
    pub const TP_TCP_PROBE: u8 = 8;
    /// Rows `record` derives from `TP_SET_STATE` records (connect, accept,
    /// FIN sent/received); never sent by the programs.
    pub const INFERRED_SET_STATE: u8 = 9;
    pub const CGROUP_SKB_EGRESS: u8 = 10;
    pub const CGROUP_SKB_INGRESS: u8 = 11;
    pub const KPROBE_TCP_FIN: u8 = 12;
    pub const FENTRY_TCP_FIN: u8 = 13;
    pub const KPROBE_TCP_SEND_FIN: u8 = 14;
    pub const FENTRY_TCP_SEND_FIN: u8 = 15;
    pub const KPROBE_TCP_ACK: u8 = 16;
    pub const FEXIT_TCP_TRANSMIT_SKB: u8 = 17;
    pub const KRETPROBE_INET_CSK_ACCEPT: u8 = 18;
    pub const KPROBE_TCP_SEND_LOSS_PROBE: u8 = 19;
    pub const FENTRY_TCP_SEND_LOSS_PROBE: u8 = 20;
    pub const FENTRY_TCP_V4_SEND_RESET: u8 = 21;
    pub const FENTRY_TCP_V6_SEND_RESET: u8 = 22;
    pub const KPROBE_TCP_V4_SEND_RESET: u8 = 23;
    pub const KPROBE_TCP_V6_SEND_RESET: u8 = 24;
    pub const FEXIT_INET_CSK_ACCEPT: u8 = 25;
}

/// [`WireEvent::flags`] bits.
pub mod flags {
    /// `snd_wnd`, `rcv_wnd`, `srtt_us`, `snd_cwnd`, `bytes_*` were read.
    pub const TCP_INFO: u8 = 1;
    /// `window` holds the segment's TCP header window.
    pub const WINDOW: u8 = 2;
    /// `state_change` only: the socket's `sk_flags` had `SOCK_DONE`, which
    /// `tcp_fin()` sets before it changes the state: the peer's FIN was
    /// processed. `record` infers `fin_recv` only from transitions with it
    /// (a `FIN_WAIT2 -> CLOSE` without it is a hand-over to a FIN_WAIT2
    /// time-wait socket, `tcp_fin_timeout`, `TCP_LINGER2` or a reset).
    pub const SOCK_DONE: u8 = 8;
    /// `state_change` only: `sk->sk_socket` was NULL, so no process holds
    /// the socket (a listener's child not yet accepted; a socket that
    /// `connect()`ed, e.g. in a simultaneous open, has one). `record`
    /// infers `accept` from `SYN_RECV -> ESTABLISHED` only with it.
    pub const NO_USER_SOCKET: u8 = 16;
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
    /// Owner's tgid (upper 32 bits) and tid (lower); 0 when unknown.
    pub pid_tgid: u64,
    /// Socket cookie (0 = unknown).
    pub cookie: u64,
    /// Owner's cgroup v2 id (0 = unknown).
    pub cgroup_id: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    /// Owner's comm, NUL padded.
    pub comm: [u8; 16],
    /// Network namespace inode (`sk->sk_net->ns.inum`), 0 if unknown.
    pub netns: u32,
    /// `sk->sk_err` (positive errno) at the event for full sockets, 0 when
    /// none or for time-wait and request sockets (which have no `sk_err`).
    pub sk_err: i32,
    /// Id in the `STACKS` map, or [`NO_STACK`].
    pub stack_id: i32,
    pub snd_wnd: u32,
    pub rcv_wnd: u32,
    /// `srtt_us >> 3` (microseconds).
    pub srtt_us: u32,
    pub snd_cwnd: u32,
    /// TCP header window of the segment (zero-window kinds).
    pub window: u32,
    pub sport: u16,
    pub dport: u16,
    /// [`AF_INET`] or [`AF_INET6`].
    pub family: u16,
    /// An [`EventKind`] (`as u8`).
    pub kind: u8,
    /// Previous state (state changes only), else 0.
    pub oldstate: u8,
    /// New state for state changes, current state for other kinds, 0 if unknown.
    pub newstate: u8,
    /// One of [`probe`].
    pub probe: u8,
    /// An [`Attribution`] (`as u8`).
    pub attribution: u8,
    /// Bits of [`flags`].
    pub flags: u8,
    pub _pad: [u8; 4],
}

const _: () = assert!(core::mem::size_of::<WireEvent>() == 144);
const _: () = assert!(core::mem::align_of::<WireEvent>() == 8);

impl WireEvent {
    /// A record with nothing known yet.
    pub const EMPTY: WireEvent = WireEvent {
        ts_ns: 0,
        pid_tgid: 0,
        cookie: 0,
        cgroup_id: 0,
        bytes_acked: 0,
        bytes_received: 0,
        saddr: [0; 16],
        daddr: [0; 16],
        comm: [0; 16],
        netns: 0,
        sk_err: 0,
        stack_id: NO_STACK,
        snd_wnd: 0,
        rcv_wnd: 0,
        srtt_us: 0,
        snd_cwnd: 0,
        window: 0,
        sport: 0,
        dport: 0,
        family: 0,
        kind: 0,
        oldstate: 0,
        newstate: 0,
        probe: 0,
        attribution: Attribution::Unknown as u8,
        flags: 0,
        _pad: [0; 4],
    };
}

/// Who owns a socket: kept in the kernel (`OWNERS`, keyed by socket cookie)
/// so that events firing in softirq context are attributed to the owner,
/// not to whatever task was interrupted.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub pid_tgid: u64,
    pub cgroup_id: u64,
    pub comm: [u8; 16],
    /// The socket's network namespace (hooks without socket access use it).
    pub netns: u32,
    /// An [`Attribution`] (`as u8`): how this owner was learned.
    pub attribution: u8,
    pub _pad: [u8; 3],
}

const _: () = assert!(core::mem::size_of::<Owner>() == 40);

/// Listener identity for inheriting owners: (netns, local port).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenKey {
    pub netns: u32,
    pub port: u16,
    pub _pad: u16,
}

const _: () = assert!(core::mem::size_of::<ListenKey>() == 8);

/// A connection by address, for sockets that existed before recording
/// started (`TUPLE_OWNERS`, filled from the start-up snapshot).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TupleKey {
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub netns: u32,
    pub sport: u16,
    pub dport: u16,
}

const _: () = assert!(core::mem::size_of::<TupleKey>() == 40);

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
    /// `struct sock` → `__sk_common.skc_cookie` (atomic64).
    pub skc_cookie: u32,
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
    /// `struct tcp_sock` → `snd_wnd` (u32).
    pub tcp_snd_wnd: u32,
    /// `struct tcp_sock` → `rcv_wnd` (u32).
    pub tcp_rcv_wnd: u32,
    /// `struct tcp_sock` → `srtt_us` (u32, <<3).
    pub tcp_srtt_us: u32,
    /// `struct tcp_sock` → `snd_cwnd` (u32).
    pub tcp_snd_cwnd: u32,
    /// `struct tcp_sock` → `bytes_acked` (u64).
    pub tcp_bytes_acked: u32,
    /// `struct tcp_sock` → `bytes_received` (u64).
    pub tcp_bytes_received: u32,
    /// `struct sk_buff` → `dev` (`struct net_device *`).
    pub skb_dev: u32,
    /// `struct net_device` → `nd_net` (`possible_net_t`, a `struct net *`).
    pub dev_nd_net: u32,
    /// `struct sock` → `__sk_common.skc_flags` (unsigned long, the `sk_flags` bits).
    pub skc_flags: u32,
    /// `struct sock` → `sk_socket` (`struct socket *`).
    pub sk_socket: u32,
    /// Bit number of `SOCK_DONE` in `enum sock_flags`.
    pub sock_done_bit: u32,
}

const _: () = assert!(core::mem::size_of::<Offsets>() == 112);

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
        skc_cookie: 0,
        sk_protocol: 0,
        sk_err: 0,
        inet_sport: 0,
        net_ns_inum: 0,
        skb_head: 0,
        skb_data: 0,
        skb_network_header: 0,
        tcp_snd_wnd: 0,
        tcp_rcv_wnd: 0,
        tcp_srtt_us: 0,
        tcp_snd_cwnd: 0,
        tcp_bytes_acked: 0,
        tcp_bytes_received: 0,
        skb_dev: 0,
        dev_nd_net: 0,
        skc_flags: 0,
        sk_socket: 0,
        sock_done_bit: 0,
    };
}

/// Run-time settings for the programs, also a read-only global.
///
/// Filters are ANDed; 0 means "any". They run in the kernel so that
/// filtered-out events cost no ring-buffer space.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Only events whose owner's tgid equals this.
    pub filter_pid: u32,
    /// Only events in this network namespace (inode).
    pub filter_netns: u32,
    /// Non-zero: capture kernel stacks into `STACKS`.
    pub kstack: u32,
    /// Only events with this local port.
    pub filter_sport: u16,
    /// Only events with this remote port.
    pub filter_dport: u16,
    /// Only events with this port on either side.
    pub filter_port: u16,
    /// Where socket owners are kept: [`owner_store::HASH`] (cookie-keyed
    /// `OWNERS`, every program type) or [`owner_store::SK_STORAGE`]
    /// (socket-local storage, which kprobes cannot use).
    pub owner_store: u16,
    /// Non-zero: also apply [`ExtraFilters`] (the `FILTERS` global).
    pub extra_filters: u32,
    /// Wake the consumer only when this many bytes are waiting (0 = every event).
    pub wakeup_bytes: u64,
}

const _: () = assert!(core::mem::size_of::<Config>() == 32);

/// Values of [`Config::owner_store`].
pub mod owner_store {
    /// `OWNERS`, an LRU hash keyed by socket cookie: works in every program
    /// type, costs a hash lookup per event and a delete per socket.
    pub const HASH: u16 = 0;
    /// `OWNER_STORE`, socket-local storage (`BPF_MAP_TYPE_SK_STORAGE`): a
    /// pointer walk per event, freed with the socket; tp_btf, fentry/fexit
    /// and cgroup_skb programs only.
    pub const SK_STORAGE: u16 = 1;
}

impl Config {
    /// Defaults compiled into the object (overridden by the loader).
    pub const UNSET: Config = Config {
        filter_pid: 0,
        filter_netns: 0,
        kstack: 0,
        filter_sport: 0,
        filter_dport: 0,
        filter_port: 0,
        owner_store: owner_store::HASH,
        extra_filters: 0,
        wakeup_bytes: 0,
    };
}

/// An address filter: `addr & mask == net` within one family. 8-aligned:
/// the eBPF side compares `net` and `mask` a word at a time.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddrMatch {
    /// Network address, IPv4 in the first four bytes (host bits zero).
    pub net: [u8; 16],
    pub mask: [u8; 16],
    /// [`AF_INET`], [`AF_INET6`], or 0 for "any address".
    pub family: u16,
    pub _pad: [u8; 6],
}

const _: () = assert!(core::mem::size_of::<AddrMatch>() == 40 && core::mem::align_of::<AddrMatch>() == 8);

/// Filters beyond [`Config`]'s, in their own read-only global so that the
/// common case (none) costs one flag test.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtraFilters {
    pub saddr: AddrMatch,
    pub daddr: AddrMatch,
    /// Owner comm, NUL padded (when `has_comm`).
    pub comm: [u8; 16],
    pub has_comm: u32,
    /// Bit `1 << (kind as u8)` for each wanted [`EventKind`]; 0 = every kind.
    pub kinds: u32,
}

const _: () = assert!(core::mem::size_of::<ExtraFilters>() == 104);

impl ExtraFilters {
    pub const ANY: ExtraFilters = ExtraFilters {
        saddr: AddrMatch {
            net: [0; 16],
            mask: [0; 16],
            family: 0,
            _pad: [0; 6],
        },
        daddr: AddrMatch {
            net: [0; 16],
            mask: [0; 16],
            family: 0,
            _pad: [0; 6],
        },
        comm: [0; 16],
        has_comm: 0,
        kinds: 0,
    };
}

#[cfg(feature = "user")]
mod user {
    // SAFETY (all impls): #[repr(C)], Copy, only integers and byte arrays,
    // padding spelled out as fields and sizes asserted above, so every bit
    // pattern is a valid value and there are no uninitialised bytes.
    unsafe impl aya::Pod for super::WireEvent {}
    unsafe impl aya::Pod for super::Offsets {}
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::Owner {}
    unsafe impl aya::Pod for super::ListenKey {}
    unsafe impl aya::Pod for super::TupleKey {}
    unsafe impl aya::Pod for super::ExtraFilters {}
    unsafe impl aya::Pod for super::AddrMatch {}
}
