//! The logical event: one row of a recording, independent of how the kernel
//! delivered it (that is `deeptcp-common`'s wire record) and of how Parquet
//! stores it (that is `schema`).

use std::net::IpAddr;
use std::sync::Arc;

pub use deeptcp_common::{EventKind, TcpState};

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

/// Stored in the `attribution` column as [`Attribution::as_str`].
pub use deeptcp_common::Attribution;

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
