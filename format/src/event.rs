//! The logical event: one row of a recording, independent of how the kernel
//! delivered it (that is `deeptcp-common`'s wire record) and of how Parquet
//! stores it (that is `schema`).

use std::net::IpAddr;

/// What happened. Stored in the `kind` column as the string of [`EventKind::as_str`].
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
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::StateChange,
        EventKind::Retransmit,
        EventKind::ResetRecv,
        EventKind::ResetSent,
        EventKind::SockError,
        EventKind::DestroySock,
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
    pub fn from_kernel(v: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|s| *s as u8 == v)
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

/// One recorded event. `ts` is not stored here: it is derived from `mono_ns`
/// and the recording's [`crate::ClockAnchor`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns) when the event fired.
    pub mono_ns: i64,
    pub kind: EventKind,
    /// Thread-group id (user-space "pid") of the task the event fired in; 0 when none.
    pub pid: u32,
    /// Thread id of that task.
    pub tid: u32,
    pub comm: String,
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
