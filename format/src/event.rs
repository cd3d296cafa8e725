//! The logical event: one row of a recording, independent of how the kernel
//! delivered it (that is `deeptcp-common`'s wire record) and of how Parquet
//! stores it (that is `schema`).

use std::net::IpAddr;
use std::sync::Arc;

/// What happened. Stored in the `kind` column as the string of [`EventKind::as_str`].
///
/// Schema v1 files hold only the first six kinds; v2 added the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// TCP state transition (`sock:inet_sock_set_state`).
    StateChange,
    /// Segment retransmitted (`tcp:tcp_retransmit_skb`).
    Retransmit,
    /// RST received (`tcp:tcp_receive_reset`).
    ResetRecv,
    /// RST sent (`tcp:tcp_send_reset`).
    ResetSent,
    /// Error reported on the socket (`sock:inet_sk_error_report`); see `sk_err`.
    SockError,
    /// Socket freed (`tcp:tcp_destroy_sock`).
    DestroySock,
    /// FIN received (`tcp_fin()`, or inferred from the state transition).
    FinRecv,
    /// FIN sent (`tcp_send_fin()`, or inferred from the state transition).
    FinSent,
    /// Segment received advertising a zero window (the peer's buffer is full).
    ZeroWindowRecv,
    /// Segment sent advertising a zero window (our receive buffer is full).
    ZeroWindowSent,
    /// Active open: `connect()` started (CLOSE -> SYN_SENT).
    Connect,
    /// Passive open: a connection to a listener was established (SYN_RECV -> ESTABLISHED).
    Accept,
    /// Tail loss probe sent (not a real retransmission).
    LossProbe,
    /// SYN-ACK retransmitted (`tcp:tcp_retransmit_synack`).
    RetransmitSynack,
    /// A socket that existed when recording started (start-up snapshot, like `ss -tanp`).
    Snapshot,
}

impl EventKind {
    pub const ALL: [EventKind; 15] = [
        EventKind::StateChange,
        EventKind::Retransmit,
        EventKind::ResetRecv,
        EventKind::ResetSent,
        EventKind::SockError,
        EventKind::DestroySock,
        EventKind::FinRecv,
        EventKind::FinSent,
        EventKind::ZeroWindowRecv,
        EventKind::ZeroWindowSent,
        EventKind::Connect,
        EventKind::Accept,
        EventKind::LossProbe,
        EventKind::RetransmitSynack,
        EventKind::Snapshot,
    ];

    /// The string stored in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::StateChange => "state_change",
            EventKind::Retransmit => "retransmit",
            EventKind::ResetRecv => "reset_recv",
            EventKind::ResetSent => "reset_sent",
            EventKind::SockError => "sock_error",
            EventKind::DestroySock => "destroy_sock",
            EventKind::FinRecv => "fin_recv",
            EventKind::FinSent => "fin_sent",
            EventKind::ZeroWindowRecv => "zero_window_recv",
            EventKind::ZeroWindowSent => "zero_window_sent",
            EventKind::Connect => "connect",
            EventKind::Accept => "accept",
            EventKind::LossProbe => "loss_probe",
            EventKind::RetransmitSynack => "retransmit_synack",
            EventKind::Snapshot => "snapshot",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Kernel TCP states (`include/net/tcp_states.h`), named as the kernel and
/// the seed tool name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum TcpState {
    Established = 1,
    SynSent = 2,
    SynRecv = 3,
    FinWait1 = 4,
    FinWait2 = 5,
    TimeWait = 6,
    Close = 7,
    CloseWait = 8,
    LastAck = 9,
    Listen = 10,
    Closing = 11,
    NewSynRecv = 12,
    BoundInactive = 13,
}

impl TcpState {
    pub const ALL: [TcpState; 13] = [
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait1,
        TcpState::FinWait2,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::Closing,
        TcpState::NewSynRecv,
        TcpState::BoundInactive,
    ];

    /// From the kernel's numeric state; `None` for values the kernel does not define.
    #[inline]
    pub fn from_kernel(v: u8) -> Option<Self> {
        // ALL is in kernel order, from 1.
        Self::ALL.get(usize::from(v).wrapping_sub(1)).copied()
    }

    /// Kernel name, e.g. `ESTABLISHED`, `SYN_SENT`, `FIN_WAIT1`.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait1 => "FIN_WAIT1",
            TcpState::FinWait2 => "FIN_WAIT2",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::Closing => "CLOSING",
            TcpState::NewSynRecv => "NEW_SYN_RECV",
            TcpState::BoundInactive => "BOUND_INACTIVE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// Socket address family, stored as `inet` / `inet6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Inet,
    Inet6,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Inet6 => "inet6",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "inet" => Some(Family::Inet),
            "inet6" => Some(Family::Inet6),
            _ => None,
        }
    }
}

/// How the row's pid/tid/comm were attributed. Stored in the `attribution`
/// column as [`Attribution::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Attribution {
    /// The event fired in process context of the socket's owner (connect, listen, close, send).
    Task,
    /// The socket's owner, remembered in the kernel from an earlier process-context event.
    Owner,
    /// An accepted socket: owner inherited from its listener.
    Listener,
    /// The start-up snapshot of sockets (owners from `/proc/*/fd`).
    Snapshot,
    /// Filled in by `analyze` from other rows of the same connection (never stored).
    Backfill,
    /// Nobody known: pid is 0 and shown as N/A. Also every v1 row.
    #[default]
    Unknown,
}

impl Attribution {
    pub const ALL: [Attribution; 6] = [
        Attribution::Task,
        Attribution::Owner,
        Attribution::Listener,
        Attribution::Snapshot,
        Attribution::Backfill,
        Attribution::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Attribution::Task => "task",
            Attribution::Owner => "owner",
            Attribution::Listener => "listener",
            Attribution::Snapshot => "snapshot",
            Attribution::Backfill => "backfill",
            Attribution::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// TCP fields read from the socket (`struct tcp_sock`) or segment when the
/// hook provides them; all `None` where it does not (and in v1 files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpInfo {
    /// Peer's advertised send window, bytes (`snd_wnd`).
    pub snd_wnd: Option<u32>,
    /// Our current receive window, bytes (`rcv_wnd`).
    pub rcv_wnd: Option<u32>,
    /// Smoothed RTT, microseconds (`srtt_us >> 3`).
    pub srtt_us: Option<u32>,
    /// Congestion window, segments (`snd_cwnd`).
    pub snd_cwnd: Option<u32>,
    /// Bytes acknowledged by the peer so far (`bytes_acked`).
    pub bytes_acked: Option<u64>,
    /// Bytes received so far (`bytes_received`).
    pub bytes_received: Option<u64>,
    /// Raw window field of the TCP header of the segment (zero-window events).
    pub window: Option<u32>,
}

/// One recorded event. `ts` is not stored here: it is derived from `mono_ns`
/// and the recording's [`crate::ClockAnchor`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns) when the event fired.
    pub mono_ns: i64,
    pub kind: EventKind,
    /// Thread-group id ("pid") of the socket's owner, per `attribution`; 0 = unknown (shown N/A).
    pub pid: u32,
    /// Thread id of that task.
    pub tid: u32,
    /// Dictionary-coded in the file; shared so decoding does not allocate per row.
    pub comm: Arc<str>,
    /// The socket's family (an inet6 socket may carry IPv4 addresses when v4-mapped).
    pub family: Family,
    /// Canonical addresses: IPv4-mapped IPv6 is normalised to IPv4.
    pub saddr: IpAddr,
    pub daddr: IpAddr,
    pub sport: u16,
    pub dport: u16,
    /// Previous state, for [`EventKind::StateChange`] only.
    pub oldstate: Option<TcpState>,
    /// New state for transitions, the socket's current state for other kinds.
    pub newstate: Option<TcpState>,
    /// Positive errno reported on the socket (0 = none).
    pub sk_err: i32,
    /// Network namespace inode number (0 = unknown).
    pub netns: u32,
    /// Key into the `.stacks.parquet` sidecar; `None` without `-K` or when the stack was not captured.
    pub stack_id: Option<i64>,
    // ---- schema v2 ----
    /// Probe that produced the row, e.g. `tp_btf:inet_sock_set_state` or
    /// `inferred:inet_sock_set_state`; empty for v1 files.
    pub probe: Arc<str>,
    /// Connection identity: the kernel's socket cookie, unique per socket per
    /// boot (survives port reuse); 0 = unknown (v1 files, RSTs without a socket).
    pub cookie: u64,
    /// cgroup v2 id of the owner (0 = unknown): groups events by container.
    pub cgroup_id: u64,
    /// How pid/tid/comm were attributed.
    pub attribution: Attribution,
    pub tcp: TcpInfo,
}

/// Normalises IPv4-mapped IPv6 (`::ffff:a.b.c.d`) to IPv4; other addresses unchanged.
pub fn canonical_ip(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}
