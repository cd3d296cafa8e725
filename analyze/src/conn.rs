//! Connection lifecycles (`--conn`): folds the event stream into one
//! [`Conn`] per socket.
//!
//! **Identity.** A socket is its kernel cookie when the row has one
//! (schema v2), scoped to the boot it was recorded in (cookies are unique per
//! boot). Rows without a cookie (schema v1, or a cookie the probe could not
//! read) are grouped by (netns, saddr, sport, daddr, dport), and a new
//! lifetime starts when a start event (see [`is_start`]) comes after the
//! socket reached CLOSE. Two v1 details are bridged so that a v1 connection
//! is still one entry: a `connect()` reports `CLOSE -> SYN_SENT` before the
//! source port is chosen (sport 0), so the next `SYN_SENT` event towards the
//! same destination adopts it; and after an abortive close the kernel clears
//! the peer (dport 0, sometimes saddr), so a CLOSE-state event with dport 0
//! joins the recently closed socket with the same local port.
//!
//! **End.** A lifetime ends at `destroy_sock`; when the socket reached
//! CLOSE but no `destroy_sock` follows (probe missing, or the application
//! keeps the descriptor open), it ends [`CLOSE_LINGER_NS`] of recording time
//! later. Finished connections are handed out as they finish; what is still
//! open at the end of the input is handed out by [`Tracker::finish`].
//! Memory is bounded by the number of concurrently open sockets (plus those
//! closed within the linger time).
//!
//! **Not connections.** Rows with neither a cookie nor a socket state (an
//! RST sent in reply to a packet that matched no socket) are skipped, and
//! so are sockets that never left CLOSE (created or bound, then freed).

use deeptcp_format::{Attribution, Event, EventKind, Family, TcpState};
use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;

use crate::owner::{rank, FastMap, Owner};
use deeptcp_view::errno;

/// How long a socket that reached CLOSE waits for its `destroy_sock` (ns of
/// recording time) before it is considered finished anyway.
pub const CLOSE_LINGER_NS: i64 = 1_000_000_000;

const ECONNRESET: i32 = 104;
const ETIMEDOUT: i32 = 110;
const ECONNREFUSED: i32 = 111;

/// States kept in full in a path; longer paths keep the first
/// `PATH_MAX - 1` and the last one.
pub const PATH_MAX: usize = 16;

/// The sequence of TCP states a socket went through, with when each was
/// entered where the recording shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatePath {
    states: [u8; PATH_MAX],
    /// Wall-clock ns at which `states[i]` was entered; [`UNKNOWN_AT`] when
    /// the socket was already in it at its first row, or the state was
    /// only implied by a later row.
    at: [i64; PATH_MAX],
    len: u8,
    /// States dropped from the middle of an overlong path.
    elided: u32,
}

/// An entry time the recording does not show.
const UNKNOWN_AT: i64 = i64::MIN;

impl Default for StatePath {
    fn default() -> Self {
        StatePath {
            states: [0; PATH_MAX],
            at: [UNKNOWN_AT; PATH_MAX],
            len: 0,
            elided: 0,
        }
    }
}

impl StatePath {
    /// Appends `s`, entered at wall-clock `at` (`None`: not shown by the recording).
    pub fn push(&mut self, s: TcpState, at: Option<i64>) {
        let i = if (self.len as usize) < PATH_MAX {
            self.len += 1;
            self.len as usize - 1
        } else {
            self.elided += 1;
            PATH_MAX - 1
        };
        self.states[i] = s as u8;
        self.at[i] = at.unwrap_or(UNKNOWN_AT);
    }

    pub fn last(&self) -> Option<TcpState> {
        self.len
            .checked_sub(1)
            .and_then(|i| TcpState::from_kernel(self.states[i as usize]))
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// States dropped from the middle (0 for paths of up to [`PATH_MAX`] states).
    pub fn elided(&self) -> u32 {
        self.elided
    }

    /// The kept states, in order.
    pub fn states(&self) -> impl Iterator<Item = TcpState> + '_ {
        self.timed(None).map(|(s, _)| s)
    }

    /// The kept states with the time spent in each, ns: from its entry to
    /// the next state's, both recorded. The last state's time runs to
    /// `open_until` (the end of the recording, for a socket still open);
    /// `None` for a closed socket's last state. A state whose successors
    /// were elided has no time either.
    pub fn timed(&self, open_until: Option<i64>) -> impl Iterator<Item = (TcpState, Option<i64>)> + '_ {
        self.spans(open_until).map(|(s, start, end)| {
            let ns = match (start, end) {
                (Some(start), Some(end)) => Some(end.saturating_sub(start).max(0)),
                _ => None,
            };
            (s, ns)
        })
    }

    /// The kept states with when each was entered and left (wall-clock
    /// ns), as [`StatePath::timed`] counts them: `None` where the
    /// recording does not show it (entered before the first row, left for
    /// an elided state, or the last state of a closed socket when
    /// `open_until` is `None`).
    pub fn spans(&self, open_until: Option<i64>) -> impl Iterator<Item = (TcpState, Option<i64>, Option<i64>)> + '_ {
        let n = self.len as usize;
        let known = |at: i64| (at != UNKNOWN_AT).then_some(at);
        (0..n).filter_map(move |i| {
            let s = TcpState::from_kernel(self.states[i])?;
            let next = if i + 1 < n {
                let gap = i + 2 == PATH_MAX && self.elided > 0;
                if gap {
                    None
                } else {
                    known(self.at[i + 1])
                }
            } else {
                open_until
            };
            Some((s, known(self.at[i]), next))
        })
    }
}

impl fmt::Display for StatePath {
    /// `CLOSE -> SYN_SENT -> ESTABLISHED`; an elided middle shows as `... (N more) ->`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.states().enumerate() {
            if i > 0 {
                f.write_str(" -> ")?;
            }
            if i == PATH_MAX - 1 && self.elided > 0 {
                write!(f, "... ({} more) -> ", self.elided)?;
            }
            f.write_str(s.name())?;
        }
        Ok(())
    }
}

/// Which side did something first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Local,
    Remote,
}

/// Why a connection ended, in plain words ([`fmt::Display`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Our FIN came first (ESTABLISHED -> FIN_WAIT1).
    LocalClose,
    /// The peer's FIN came first (ESTABLISHED -> CLOSE_WAIT).
    RemoteClose,
    /// An RST was received (first, before any RST we sent).
    ResetByPeer,
    /// We sent an RST on this socket (abortive close).
    ResetSent,
    /// SYN_SENT ended by an RST or ECONNREFUSED.
    Refused,
    /// ETIMEDOUT (SYN or data retransmissions gave up).
    Timeout,
    /// A listening socket was closed.
    ListenerClosed,
    /// SYN_SENT -> CLOSE without a recorded cause.
    ConnectFailed,
    /// SYN_RECV -> CLOSE without a recorded cause.
    HandshakeFailed,
    /// Another error was reported on the socket.
    Error(i32),
    /// Closed, but no FIN, RST or error was recorded.
    Unknown,
    /// No CLOSE seen before the recording ended.
    StillOpen,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::LocalClose => f.write_str("local close"),
            CloseReason::RemoteClose => f.write_str("remote close"),
            CloseReason::ResetByPeer => f.write_str("reset by peer"),
            CloseReason::ResetSent => f.write_str("reset sent"),
            CloseReason::Refused => f.write_str("connection refused"),
            CloseReason::Timeout => f.write_str("timeout (ETIMEDOUT)"),
            CloseReason::ListenerClosed => f.write_str("listener closed"),
            CloseReason::ConnectFailed => f.write_str("connect failed"),
            CloseReason::HandshakeFailed => f.write_str("handshake failed"),
            CloseReason::Error(e) => match errno::name(*e) {
                Some(n) => write!(f, "error ({n})"),
                None => write!(f, "error ({e})"),
            },
            CloseReason::Unknown => f.write_str("closed (cause not recorded)"),
            CloseReason::StillOpen => f.write_str("still open at end of recording"),
        }
    }
}

/// How an event relates to the active filters (computed by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// Matches every filter.
    Yes,
    /// Matches every filter but pid/comm, and has no owner of its own: it
    /// matches if the socket's owner does.
    IfOwnerMatches,
    No,
}

/// Identity of a socket in the tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Cookie { boot: u32, cookie: u64 },
    Tuple(Tuple),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Tuple {
    boot: u32,
    netns: u32,
    saddr: IpAddr,
    sport: u16,
    daddr: IpAddr,
    dport: u16,
}

impl Tuple {
    /// The addresses of `ev` in recording `boot`.
    fn of(boot: u32, ev: &Event) -> Tuple {
        Tuple {
            boot,
            netns: ev.netns,
            saddr: ev.saddr,
            sport: ev.sport,
            daddr: ev.daddr,
            dport: ev.dport,
        }
    }
}

/// (boot, netns, daddr, dport) of a v1 connect waiting for its source port.
type PendingKey = (u32, u32, IpAddr, u16);

/// An event shown as a mark on a connection's timeline (`--report`,
/// `--trace-json`): retransmits, tail loss probes, RSTs, zero windows and
/// socket errors, kept only when the [`Tracker`] was made
/// [`Tracker::with_marks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// Wall-clock ns.
    pub ts: i64,
    pub kind: EventKind,
    /// The errno of a `sock_error`, else 0.
    pub sk_err: i32,
}

impl Mark {
    /// Whether `ev` is a mark (see [`Mark`]).
    pub fn of(ts: i64, ev: &Event) -> Option<Mark> {
        use EventKind::*;
        let mark = match ev.kind {
            Retransmit | RetransmitSynack | LossProbe | ResetRecv | ResetSent | ZeroWindowRecv | ZeroWindowSent => true,
            SockError => ev.sk_err != 0,
            _ => false,
        };
        mark.then_some(Mark {
            ts,
            kind: ev.kind,
            sk_err: ev.sk_err,
        })
    }
}

/// One socket's lifetime.
#[derive(Debug, Clone)]
pub struct Conn {
    /// Input (file) index of the first event: its host.
    pub src: u32,
    /// Order of creation (tie-breaker for sorting).
    pub seq: u64,
    pub cookie: u64,
    pub netns: u32,
    pub family: Family,
    pub cgroup_id: u64,
    /// Local end.
    pub saddr: IpAddr,
    pub sport: u16,
    /// Remote end.
    pub daddr: IpAddr,
    pub dport: u16,
    /// Best-ranked owner seen (see [`crate::owner`]); `None`: never attributed.
    pub owner: Option<Owner>,
    /// Wall-clock and monotonic ns of the first event.
    pub first_ts: i64,
    pub first_mono: i64,
    /// Of the last event.
    pub last_ts: i64,
    pub last_mono: i64,
    /// When the socket reached CLOSE (else when it was destroyed); `None`: still open.
    pub end: Option<(i64, i64)>,
    /// End minus start; for a still-open connection, up to the end of its recording.
    pub duration_ns: i64,
    pub path: StatePath,
    pub events: u64,
    /// `retransmit` + `retransmit_synack` (tail loss probes are not counted).
    pub retransmits: u32,
    /// RSTs received plus sent.
    pub resets: u32,
    /// Zero windows received plus sent.
    pub zero_windows: u32,
    /// `sock_error` rows with a non-zero sk_err.
    pub errors: u32,
    /// Last `bytes_acked` seen (bytes we sent that the peer acknowledged).
    pub bytes_acked: Option<u64>,
    /// Last `bytes_received` seen.
    pub bytes_received: Option<u64>,
    /// Last smoothed RTT seen, µs (rows with 0, no RTT sample yet, are not samples).
    pub srtt_us: Option<u32>,
    /// Smallest and largest smoothed RTT seen, µs.
    pub srtt_min_us: Option<u32>,
    pub srtt_max_us: Option<u32>,
    /// Congestion window (segments) of the last row up to the close.
    pub cwnd: Option<u32>,
    /// Zero-window stalls (see [`Conn::zero_window_stall_ns`]).
    pub zero_window_stalls: u32,
    /// Handshake time, ns: SYN_SENT -> ESTABLISHED for a connect,
    /// SYN_RECV -> ESTABLISHED for an accepted child; `None` unless both
    /// transitions were recorded.
    pub handshake_ns: Option<i64>,
    /// Began before the recording (first event not a start, or a snapshot row).
    pub opened_before: bool,
    /// Set by [`Tracker`] when the connection is handed out.
    pub reason: CloseReason,
    /// Some event matched every filter.
    pub matched: bool,
    /// Some owner-less event matched every filter but pid/comm.
    pub matched_if_owner: bool,
    /// The first marks, in time order (empty unless the tracker keeps them).
    pub marks: Vec<Mark>,
    /// Marks beyond the tracker's limit, not kept.
    pub marks_dropped: u32,
    mark_limit: u32,

    state: Option<TcpState>,
    established: bool,
    listener: bool,
    syn_sent: bool,
    syn_recv: bool,
    refused: bool,
    timed_out: bool,
    first_fin: Option<Side>,
    first_reset: Option<Side>,
    first_err: i32,
    /// When the handshake's first state (SYN_SENT or SYN_RECV) was entered.
    handshake_from: Option<i64>,
    /// The current zero-window stall of each direction (received, sent):
    /// its first and last zero-window row.
    stall: [Option<(i64, i64)>; 2],
    /// Time of the stalls that ended.
    stalled_ns: i64,
    /// v1 connect waiting for its source port.
    pending: bool,
    key: Key,
    aliases: Vec<Key>,
}

impl Conn {
    /// Whether the connection is listed, given the filter's owner test.
    pub fn selected(&self, owner_matches: impl Fn(u32, &str) -> bool) -> bool {
        self.matched || (self.matched_if_owner && self.owner.as_ref().is_some_and(|o| owner_matches(o.pid, &o.comm)))
    }

    /// Whether the socket was still open when the recording ended.
    pub fn still_open(&self) -> bool {
        self.end.is_none()
    }

    /// Owner pid, 0 when unknown.
    #[cfg(test)]
    pub fn pid(&self) -> u32 {
        self.owner.as_ref().map_or(0, |o| o.pid)
    }

    fn new(src: u32, seq: u64, ts: i64, ev: &Event, key: Key) -> Conn {
        Conn {
            src,
            seq,
            cookie: ev.cookie,
            netns: ev.netns,
            family: ev.family,
            cgroup_id: ev.cgroup_id,
            saddr: ev.saddr,
            sport: ev.sport,
            daddr: ev.daddr,
            dport: ev.dport,
            owner: None,
            first_ts: ts,
            first_mono: ev.mono_ns,
            last_ts: ts,
            last_mono: ev.mono_ns,
            end: None,
            duration_ns: 0,
            path: StatePath::default(),
            events: 0,
            retransmits: 0,
            resets: 0,
            zero_windows: 0,
            errors: 0,
            bytes_acked: None,
            bytes_received: None,
            srtt_us: None,
            srtt_min_us: None,
            srtt_max_us: None,
            cwnd: None,
            zero_window_stalls: 0,
            handshake_ns: None,
            opened_before: !is_start(ev),
            reason: CloseReason::StillOpen,
            matched: false,
            matched_if_owner: false,
            marks: Vec::new(),
            marks_dropped: 0,
            mark_limit: 0,
            state: None,
            established: false,
            listener: false,
            syn_sent: false,
            syn_recv: false,
            refused: false,
            timed_out: false,
            first_fin: None,
            first_reset: None,
            first_err: 0,
            handshake_from: None,
            stall: [None; 2],
            stalled_ns: 0,
            pending: false,
            key,
            aliases: Vec::new(),
        }
    }

    fn closed(&self) -> bool {
        self.state == Some(TcpState::Close) && !self.path.is_empty()
    }

    /// Applies one event. Returns true when the socket just reached CLOSE.
    fn apply(&mut self, ts: i64, ev: &Event, m: Match) -> bool {
        use TcpState::*;
        self.events += 1;
        self.last_ts = self.last_ts.max(ts);
        self.last_mono = self.last_mono.max(ev.mono_ns);
        match m {
            Match::Yes => self.matched = true,
            Match::IfOwnerMatches => self.matched_if_owner = true,
            Match::No => {}
        }
        // Ranked before an Owner is built: most rows do not change the owner.
        if let Some(r) = rank(ev) {
            if self.owner.as_ref().is_none_or(|cur| (r, ts) < (cur.rank, cur.ts)) {
                self.owner = Owner::of(ev, ts);
            }
        }
        // Endpoints: fill what earlier rows did not know (a connect's port 0,
        // an unbound address), never overwrite with a cleared value.
        if self.sport == 0 && ev.sport != 0 {
            self.sport = ev.sport;
        }
        if self.saddr.is_unspecified() && !ev.saddr.is_unspecified() {
            self.saddr = ev.saddr;
        }
        if self.dport == 0 && ev.dport != 0 && !self.listener {
            self.dport = ev.dport;
        }
        if self.daddr.is_unspecified() && !ev.daddr.is_unspecified() && !self.listener {
            self.daddr = ev.daddr;
        }
        if self.netns == 0 {
            self.netns = ev.netns;
        }
        if self.cgroup_id == 0 {
            self.cgroup_id = ev.cgroup_id;
        }
        if let Some(v) = ev.tcp.bytes_acked {
            self.bytes_acked = Some(v);
        }
        if let Some(v) = ev.tcp.bytes_received {
            self.bytes_received = Some(v);
        }
        if let Some(v) = ev.tcp.srtt_us.filter(|&v| v > 0) {
            self.srtt_us = Some(v);
            self.srtt_min_us = Some(self.srtt_min_us.map_or(v, |m| m.min(v)));
            self.srtt_max_us = Some(self.srtt_max_us.map_or(v, |m| m.max(v)));
        }
        if let Some(v) = ev.tcp.snd_cwnd.filter(|&v| v > 0) {
            if self.end.is_none() {
                self.cwnd = Some(v);
            }
        }

        // A row showing an open window in a stalled direction ends the stall.
        if !matches!(ev.kind, EventKind::ZeroWindowRecv | EventKind::ZeroWindowSent) {
            for (dir, wnd) in [ev.tcp.snd_wnd, ev.tcp.rcv_wnd].into_iter().enumerate() {
                if wnd.is_some_and(|w| w > 0) {
                    if let Some((first, last)) = self.stall[dir].take() {
                        self.stalled_ns = self.stalled_ns.saturating_add(last - first);
                    }
                }
            }
        }
        if self.mark_limit > 0 {
            if let Some(mark) = Mark::of(ts, ev) {
                if self.marks.len() < self.mark_limit as usize {
                    self.marks.push(mark);
                } else {
                    self.marks_dropped = self.marks_dropped.saturating_add(1);
                }
            }
        }
        let was_closed = self.closed();
        match ev.kind {
            EventKind::StateChange => {
                if let Some(old) = ev.oldstate {
                    if self.path.last() != Some(old) {
                        self.path.push(old, None);
                    }
                }
                if let Some(new) = ev.newstate {
                    self.path.push(new, Some(ts));
                    self.enter(new, Some(ts));
                    match (ev.oldstate, new) {
                        (Some(Established) | Some(SynRecv), FinWait1) => self.fin(Side::Local),
                        (Some(Established), CloseWait) => self.fin(Side::Remote),
                        _ => {}
                    }
                }
            }
            EventKind::Connect => {
                if self.path.is_empty() {
                    self.path.push(Close, None);
                    self.path.push(SynSent, Some(ts));
                    self.enter(SynSent, Some(ts));
                }
                self.syn_sent = true;
            }
            other => {
                if self.path.is_empty() {
                    if let Some(s) = ev.newstate {
                        self.path.push(s, None);
                        self.enter(s, None);
                    }
                }
                match other {
                    EventKind::Snapshot => self.opened_before = true,
                    EventKind::Accept => self.established = true,
                    EventKind::Retransmit | EventKind::RetransmitSynack => self.retransmits += 1,
                    EventKind::ResetRecv => {
                        self.resets += 1;
                        self.first_reset.get_or_insert(Side::Remote);
                        let in_syn_sent = ev.newstate == Some(SynSent) || self.state == Some(SynSent);
                        if in_syn_sent && !self.established {
                            self.refused = true;
                        }
                    }
                    EventKind::ResetSent => {
                        self.resets += 1;
                        self.first_reset.get_or_insert(Side::Local);
                    }
                    EventKind::ZeroWindowRecv => self.zero_window(0, ts),
                    EventKind::ZeroWindowSent => self.zero_window(1, ts),
                    EventKind::FinSent => self.fin(Side::Local),
                    EventKind::FinRecv => self.fin(Side::Remote),
                    EventKind::SockError if ev.sk_err != 0 => {
                        self.errors += 1;
                        if self.first_err == 0 {
                            self.first_err = ev.sk_err;
                        }
                        match ev.sk_err {
                            ETIMEDOUT => self.timed_out = true,
                            ECONNREFUSED if !self.established => self.refused = true,
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
        }
        let now_closed = self.closed();
        if now_closed && !was_closed {
            self.end = Some((ts, ev.mono_ns));
        }
        now_closed && !was_closed
    }

    /// The socket is in state `s` from `at` (`None`: since before its first row).
    fn enter(&mut self, s: TcpState, at: Option<i64>) {
        self.state = Some(s);
        match s {
            TcpState::Established => {
                if let (Some(from), Some(at), None) = (self.handshake_from, at, self.handshake_ns) {
                    self.handshake_ns = Some(at.saturating_sub(from).max(0));
                }
                self.established = true;
            }
            TcpState::Listen => self.listener = true,
            TcpState::SynSent | TcpState::SynRecv => {
                if s == TcpState::SynSent {
                    self.syn_sent = true;
                } else {
                    self.syn_recv = true;
                }
                if !self.established && self.handshake_from.is_none() {
                    self.handshake_from = at;
                }
            }
            _ => {}
        }
    }

    /// A zero-window row of direction `dir` (0: received, 1: sent) at `ts`.
    fn zero_window(&mut self, dir: usize, ts: i64) {
        self.zero_windows += 1;
        match &mut self.stall[dir] {
            Some((_, last)) => *last = ts.max(*last),
            None => {
                self.stall[dir] = Some((ts, ts));
                self.zero_window_stalls += 1;
            }
        }
    }

    /// Time stalled on zero windows, ns: each stall from its first to its
    /// last zero-window row. A stall is the zero-window rows of one
    /// direction until a row of the connection shows that direction's
    /// window open again (`snd_wnd` for a received zero window, `rcv_wnd`
    /// for a sent one); the rows are the segments that carried the zero
    /// (the peer's window probes and their answers), so this is a lower
    /// bound: the window opened some time after the last of them.
    pub fn zero_window_stall_ns(&self) -> i64 {
        self.stall
            .iter()
            .flatten()
            .fold(self.stalled_ns, |sum, (first, last)| sum.saturating_add(last - first))
    }

    /// Whether this is a listening socket (not a connection).
    pub fn is_listener(&self) -> bool {
        self.listener && !self.established
    }

    /// Where the time of a still-open socket's last state runs to: the
    /// end of its recording (`first_ts + duration_ns` once handed out).
    pub fn open_until(&self) -> Option<i64> {
        self.still_open()
            .then(|| self.first_ts.saturating_add(self.duration_ns))
    }

    /// Time spent in each state, ns, summed over the path (a state entered
    /// twice counts twice), in the order first entered; states without a
    /// recorded time are left out.
    pub fn time_in_state(&self) -> Vec<(TcpState, i64)> {
        let mut out: Vec<(TcpState, i64)> = Vec::new();
        for (s, ns) in self.path.timed(self.open_until()) {
            let Some(ns) = ns else { continue };
            match out.iter_mut().find(|(t, _)| *t == s) {
                Some((_, sum)) => *sum = sum.saturating_add(ns),
                None => out.push((s, ns)),
            }
        }
        out
    }

    fn fin(&mut self, side: Side) {
        self.first_fin.get_or_insert(side);
    }

    /// The close reason, from what was recorded (see [`CloseReason`]).
    fn infer_reason(&self) -> CloseReason {
        if self.end.is_none() {
            return CloseReason::StillOpen;
        }
        if self.listener && !self.established {
            return CloseReason::ListenerClosed;
        }
        if self.refused && !self.established {
            return CloseReason::Refused;
        }
        if self.timed_out {
            return CloseReason::Timeout;
        }
        match self.first_reset {
            Some(Side::Remote) => return CloseReason::ResetByPeer,
            Some(Side::Local) => return CloseReason::ResetSent,
            None => {}
        }
        match self.first_fin {
            Some(Side::Local) => return CloseReason::LocalClose,
            Some(Side::Remote) => return CloseReason::RemoteClose,
            None => {}
        }
        match self.first_err {
            0 => {}
            ECONNRESET => return CloseReason::ResetByPeer,
            e => return CloseReason::Error(e),
        }
        if !self.established && self.syn_sent {
            CloseReason::ConnectFailed
        } else if !self.established && self.syn_recv {
            CloseReason::HandshakeFailed
        } else {
            CloseReason::Unknown
        }
    }

    /// A socket that was never anything but CLOSE, with nothing happening on it.
    fn is_noise(&self) -> bool {
        self.path.states().all(|s| s == TcpState::Close)
            && self.retransmits == 0
            && self.resets == 0
            && self.errors == 0
            && self.zero_windows == 0
            && !self.syn_sent
            && !self.established
    }
}

/// Whether `ev` begins a socket's life: an active or passive open, a listen.
pub fn is_start(ev: &Event) -> bool {
    use TcpState::*;
    match ev.kind {
        EventKind::Connect | EventKind::Accept => true,
        EventKind::StateChange => matches!(
            (ev.oldstate, ev.newstate),
            (Some(Close), Some(SynSent))
                | (Some(Close), Some(Listen))
                | (Some(Listen), Some(SynRecv))
                | (Some(NewSynRecv), Some(SynRecv))
        ),
        _ => false,
    }
}

fn is_connect_start(ev: &Event) -> bool {
    ev.kind == EventKind::Connect
        || (ev.kind == EventKind::StateChange
            && ev.oldstate == Some(TcpState::Close)
            && ev.newstate == Some(TcpState::SynSent))
}

struct Slot {
    conn: Option<Conn>,
    gen: u32,
}

/// Folds events into connections. Feed events in time order with
/// [`Tracker::push`]; finished connections are appended to the `out` vector.
#[derive(Default)]
pub struct Tracker {
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_key: FastMap<Key, u32>,
    /// v1 connects without a source port, oldest first: (slot, gen).
    pending: FastMap<PendingKey, VecDeque<(u32, u32)>>,
    /// Sockets that reached CLOSE, by time: (close ts, slot, gen).
    closing: VecDeque<(i64, u32, u32)>,
    next_seq: u64,
    /// Connections currently tracked.
    open: usize,
    /// Marks kept per connection (0: none).
    mark_limit: u32,
}

impl Tracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// A tracker whose connections keep their first `limit` [`Mark`]s
    /// (memory: up to `limit` marks per open connection).
    pub fn with_marks(limit: u32) -> Self {
        Tracker {
            mark_limit: limit,
            ..Self::default()
        }
    }

    /// Connections currently tracked (open or waiting for their destroy).
    #[cfg(test)]
    pub fn open_count(&self) -> usize {
        self.open
    }

    /// Applies one event of input `src` (recorded in boot group `boot`) at
    /// wall-clock `ts`.
    pub fn push(&mut self, src: u32, boot: u32, ts: i64, ev: &Event, m: Match, out: &mut Vec<Conn>) {
        self.expire(ts, out);
        if ev.cookie == 0 && ev.newstate.is_none() {
            return; // no socket (e.g. an RST answering a packet for a closed port)
        }
        let slot = self.slot_for(src, boot, ts, ev, out);
        let Some(conn) = self.slots[slot as usize].conn.as_mut() else {
            return;
        };
        let just_closed = conn.apply(ts, ev, m);
        let gen = self.slots[slot as usize].gen;
        if ev.kind == EventKind::DestroySock {
            self.finalize(slot, Some((ts, ev.mono_ns)), out);
        } else if just_closed {
            self.closing.push_back((ts, slot, gen));
        }
    }

    /// Hands out every connection still tracked, as still open (or, for
    /// those that reached CLOSE, as closed), sorted by start.
    /// `end_of_recording(src)` is the wall-clock end of input `src`.
    pub fn finish(mut self, end_of_recording: impl Fn(u32) -> i64, out: &mut Vec<Conn>) {
        let mut rest: Vec<u32> = (0..self.slots.len() as u32)
            .filter(|&i| self.slots[i as usize].conn.is_some())
            .collect();
        rest.sort_by_key(|&i| {
            let c = self.slots[i as usize].conn.as_ref().map(|c| (c.first_ts, c.seq));
            c.unwrap_or((i64::MAX, u64::MAX))
        });
        for i in rest {
            if let Some(mut c) = self.slots[i as usize].conn.take() {
                let end = match c.end {
                    Some((ts, _)) => ts,
                    None => end_of_recording(c.src).max(c.last_ts),
                };
                c.duration_ns = end.saturating_sub(c.first_ts);
                c.reason = c.infer_reason();
                if !c.is_noise() {
                    out.push(c);
                }
            }
        }
        self.open = 0;
    }

    /// Finishes sockets that reached CLOSE more than [`CLOSE_LINGER_NS`] before `now`.
    fn expire(&mut self, now: i64, out: &mut Vec<Conn>) {
        while let Some(&(t, slot, gen)) = self.closing.front() {
            if t.saturating_add(CLOSE_LINGER_NS) >= now {
                break;
            }
            self.closing.pop_front();
            let s = &self.slots[slot as usize];
            if s.gen == gen && s.conn.as_ref().is_some_and(|c| c.closed()) {
                self.finalize(slot, None, out);
            }
        }
    }

    /// The slot of the connection `ev` belongs to, creating (or, after a
    /// CLOSE, renewing) it as needed.
    fn slot_for(&mut self, src: u32, boot: u32, ts: i64, ev: &Event, out: &mut Vec<Conn>) -> u32 {
        let start = is_start(ev);
        if ev.cookie != 0 {
            let key = Key::Cookie {
                boot,
                cookie: ev.cookie,
            };
            if let Some(&slot) = self.by_key.get(&key) {
                let renew = start && self.conn(slot).is_some_and(|c| c.closed());
                if !renew {
                    return slot;
                }
                self.finalize(slot, Some((ts, ev.mono_ns)), out);
            } else if let Some(slot) = self.cookieless_twin(boot, ev) {
                // A start-up snapshot read from /proc (older recordings,
                // or no sock_diag) has no cookie: its socket's first cookie
                // row takes it over.
                self.by_key.insert(key, slot);
                if let Some(c) = self.slots[slot as usize].conn.as_mut() {
                    c.cookie = ev.cookie;
                    c.aliases.push(key);
                }
                return slot;
            }
            return self.create(src, ts, ev, key);
        }

        let tuple = Tuple::of(boot, ev);
        let key = Key::Tuple(tuple);
        if let Some(&slot) = self.by_key.get(&key) {
            let (closed, pending) = self.conn(slot).map_or((false, false), |c| (c.closed(), c.pending));
            if start && closed {
                self.finalize(slot, Some((ts, ev.mono_ns)), out);
            } else if pending && is_connect_start(ev) {
                // A second connect from the same unbound address before the
                // first got its port: the first stays reachable as pending.
                self.by_key.remove(&key);
            } else {
                return slot;
            }
        } else if let Some(slot) = self.adopt(tuple, ev) {
            self.by_key.insert(key, slot);
            if let Some(c) = self.slots[slot as usize].conn.as_mut() {
                c.aliases.push(key);
            }
            return slot;
        }
        let slot = self.create(src, ts, ev, key);
        if ev.sport == 0 && is_connect_start(ev) {
            let gen = self.slots[slot as usize].gen;
            if let Some(c) = self.slots[slot as usize].conn.as_mut() {
                c.pending = true;
            }
            self.pending
                .entry((boot, ev.netns, ev.daddr, ev.dport))
                .or_default()
                .push_back((slot, gen));
        }
        slot
    }

    /// For a cookie-less event on an unknown tuple: the v1 connection it
    /// continues, if any (see the module documentation).
    fn adopt(&mut self, t: Tuple, ev: &Event) -> Option<u32> {
        let in_syn_sent = match ev.kind {
            EventKind::StateChange => ev.oldstate == Some(TcpState::SynSent),
            _ => ev.newstate == Some(TcpState::SynSent),
        };
        if t.sport != 0 && in_syn_sent {
            let pk = (t.boot, t.netns, t.daddr, t.dport);
            if let Some(q) = self.pending.get_mut(&pk) {
                let mut found = None;
                while let Some((slot, gen)) = q.pop_front() {
                    let s = &self.slots[slot as usize];
                    let ok = s.gen == gen
                        && s.conn
                            .as_ref()
                            .is_some_and(|c| c.pending && (c.saddr.is_unspecified() || c.saddr == t.saddr));
                    if ok {
                        found = Some(slot);
                        break;
                    }
                }
                if q.is_empty() {
                    self.pending.remove(&pk);
                }
                if let Some(slot) = found {
                    if let Some(c) = self.slots[slot as usize].conn.as_mut() {
                        c.pending = false;
                    }
                    return Some(slot);
                }
            }
        }
        if t.dport == 0 && ev.newstate == Some(TcpState::Close) {
            // After an abortive close the kernel clears the peer (and an
            // unbound local address): join the socket just closed on this port.
            return self.closing.iter().rev().find_map(|&(_, slot, gen)| {
                let s = &self.slots[slot as usize];
                let c = s.conn.as_ref()?;
                let same = s.gen == gen
                    && c.cookie == 0
                    && c.closed()
                    && c.dport != 0
                    && c.netns == t.netns
                    && c.sport == t.sport
                    && (t.saddr.is_unspecified() || c.saddr == t.saddr)
                    && matches!(c.key, Key::Tuple(k) if k.boot == t.boot);
                same.then_some(slot)
            });
        }
        None
    }

    /// A live cookie-less connection (a snapshot row) with `ev`'s addresses.
    fn cookieless_twin(&self, boot: u32, ev: &Event) -> Option<u32> {
        let key = Key::Tuple(Tuple::of(boot, ev));
        let slot = *self.by_key.get(&key)?;
        self.conn(slot)
            .is_some_and(|c| c.cookie == 0 && !c.closed())
            .then_some(slot)
    }

    fn conn(&self, slot: u32) -> Option<&Conn> {
        self.slots.get(slot as usize).and_then(|s| s.conn.as_ref())
    }

    fn create(&mut self, src: u32, ts: i64, ev: &Event, key: Key) -> u32 {
        let mut conn = Conn::new(src, self.next_seq, ts, ev, key);
        conn.mark_limit = self.mark_limit;
        self.next_seq += 1;
        self.open += 1;
        let slot = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize].conn = Some(conn);
                i
            }
            None => {
                self.slots.push(Slot {
                    conn: Some(conn),
                    gen: 0,
                });
                (self.slots.len() - 1) as u32
            }
        };
        self.by_key.insert(key, slot);
        slot
    }

    /// Ends the connection in `slot` (destroyed, renewed or lingered out);
    /// `at` is the (wall, mono) time of the event that ended it, if any.
    fn finalize(&mut self, slot: u32, at: Option<(i64, i64)>, out: &mut Vec<Conn>) {
        let s = &mut self.slots[slot as usize];
        let Some(mut c) = s.conn.take() else {
            return;
        };
        s.gen = s.gen.wrapping_add(1);
        self.free.push(slot);
        self.open -= 1;
        for k in std::iter::once(c.key).chain(c.aliases.drain(..)) {
            if self.by_key.get(&k) == Some(&slot) {
                self.by_key.remove(&k);
            }
        }
        if c.end.is_none() {
            // Destroyed (or renewed) without a CLOSE transition on record.
            c.end = Some(at.unwrap_or((c.last_ts, c.last_mono)));
        }
        let end = c.end.map_or(c.last_ts, |e| e.0);
        c.duration_ns = end.saturating_sub(c.first_ts);
        c.reason = c.infer_reason();
        if !c.is_noise() {
            out.push(c);
        }
    }
}

/// The attribution shown for a connection's owner.
pub fn owner_attribution(c: &Conn) -> Attribution {
    c.owner.as_ref().map_or(Attribution::Unknown, |o| o.attribution)
}

#[cfg(test)]
mod tests {
    use super::*;
    use deeptcp_format::testing;
    use deeptcp_format::TcpInfo;
    use std::sync::Arc;
    use TcpState::*;

    /// Builds the events of one socket.
    struct S {
        cookie: u64,
        local: (&'static str, u16),
        remote: (&'static str, u16),
        pid: u32,
        t: i64,
        events: Vec<(i64, Event)>,
    }

    impl S {
        fn new(cookie: u64) -> S {
            S {
                cookie,
                local: ("10.0.0.1", 40000),
                remote: ("10.0.0.2", 443),
                pid: 100,
                t: 1_000_000,
                events: Vec::new(),
            }
        }

        fn ev(&mut self, kind: EventKind, old: Option<TcpState>, new: Option<TcpState>) -> &mut Event {
            self.t += 1_000;
            let e = Event {
                mono_ns: self.t,
                pid: self.pid,
                tid: self.pid,
                comm: Arc::from("app"),
                saddr: self.local.0.parse().unwrap(),
                daddr: self.remote.0.parse().unwrap(),
                sport: self.local.1,
                dport: self.remote.1,
                oldstate: old,
                newstate: new,
                netns: 4026531840,
                cookie: self.cookie,
                attribution: if self.pid == 0 {
                    Attribution::Unknown
                } else {
                    Attribution::Task
                },
                ..testing::event(kind)
            };
            self.events.push((self.t, e));
            &mut self.events.last_mut().unwrap().1
        }

        fn tr(&mut self, old: TcpState, new: TcpState) -> &mut S {
            self.ev(EventKind::StateChange, Some(old), Some(new));
            self
        }

        fn k(&mut self, kind: EventKind, state: TcpState) -> &mut S {
            self.ev(kind, None, Some(state));
            self
        }

        fn err(&mut self, e: i32) -> &mut S {
            self.ev(EventKind::SockError, None, Some(Close)).sk_err = e;
            self
        }

        fn connect(&mut self) -> &mut S {
            let port = self.local.1;
            self.local.1 = 0;
            self.tr(Close, SynSent);
            self.local.1 = port;
            self.tr(SynSent, Established)
        }

        fn destroy(&mut self) -> &mut S {
            self.k(EventKind::DestroySock, Close)
        }
    }

    fn run(events: &[(i64, Event)]) -> Vec<Conn> {
        let mut t = Tracker::new();
        let mut out = Vec::new();
        let mut sorted: Vec<&(i64, Event)> = events.iter().collect();
        sorted.sort_by_key(|(ts, _)| *ts);
        let end = sorted.last().map_or(0, |(ts, _)| *ts);
        for (ts, e) in sorted {
            t.push(0, 0, *ts, e, Match::Yes, &mut out);
        }
        t.finish(|_| end, &mut out);
        out
    }

    fn one(s: &S) -> Conn {
        let v = run(&s.events);
        assert_eq!(v.len(), 1, "{v:#?}");
        v.into_iter().next().unwrap()
    }

    fn reason(s: &S) -> String {
        one(s).reason.to_string()
    }

    #[test]
    fn local_close() {
        let mut s = S::new(1);
        s.connect()
            .tr(Established, FinWait1)
            .tr(FinWait1, FinWait2)
            .tr(FinWait2, Close)
            .destroy();
        let c = one(&s);
        assert_eq!(c.reason, CloseReason::LocalClose);
        assert_eq!(
            c.path.to_string(),
            "CLOSE -> SYN_SENT -> ESTABLISHED -> FIN_WAIT1 -> FIN_WAIT2 -> CLOSE"
        );
        assert!(!c.opened_before);
        assert_eq!(c.sport, 40000, "the connect's port 0 is filled in");
        assert_eq!(c.events, 6);
        assert_eq!(c.duration_ns, 4_000, "from connect to CLOSE");
        assert_eq!(c.pid(), 100);
    }

    #[test]
    fn remote_close() {
        let mut s = S::new(1);
        s.connect()
            .tr(Established, CloseWait)
            .tr(CloseWait, LastAck)
            .tr(LastAck, Close)
            .destroy();
        assert_eq!(reason(&s), "remote close");
        // FIN events (v2) tell the same without the transitions.
        let mut s = S::new(1);
        s.connect().k(EventKind::FinRecv, Established).tr(Established, Close);
        assert_eq!(reason(&s), "remote close");
    }

    #[test]
    fn resets() {
        let mut s = S::new(1);
        s.connect()
            .k(EventKind::ResetRecv, Established)
            .tr(Established, Close)
            .err(ECONNRESET)
            .destroy();
        let c = one(&s);
        assert_eq!(c.reason.to_string(), "reset by peer");
        assert_eq!((c.resets, c.errors), (1, 1));

        let mut s = S::new(1);
        s.connect()
            .tr(Established, Close)
            .k(EventKind::ResetSent, Close)
            .err(ECONNRESET)
            .destroy();
        assert_eq!(reason(&s), "reset sent");

        // A reset after our FIN still makes it an abortive close.
        let mut s = S::new(1);
        s.connect()
            .tr(Established, FinWait1)
            .k(EventKind::ResetRecv, FinWait1)
            .tr(FinWait1, Close);
        assert_eq!(reason(&s), "reset by peer");

        // ECONNRESET without the RST probe.
        let mut s = S::new(1);
        s.connect().tr(Established, Close).err(ECONNRESET);
        assert_eq!(reason(&s), "reset by peer");
    }

    #[test]
    fn refused_timeout_and_errors() {
        let mut s = S::new(1);
        s.local.1 = 0;
        s.tr(Close, SynSent);
        s.local.1 = 40000;
        s.k(EventKind::ResetRecv, SynSent)
            .tr(SynSent, Close)
            .err(ECONNREFUSED)
            .destroy();
        assert_eq!(reason(&s), "connection refused");

        let mut s = S::new(1);
        s.tr(Close, SynSent).tr(SynSent, Close).err(ECONNREFUSED);
        assert_eq!(reason(&s), "connection refused");

        let mut s = S::new(1);
        s.tr(Close, SynSent)
            .k(EventKind::RetransmitSynack, SynSent)
            .k(EventKind::Retransmit, SynSent)
            .err(ETIMEDOUT)
            .tr(SynSent, Close);
        let c = one(&s);
        assert_eq!(c.reason.to_string(), "timeout (ETIMEDOUT)");
        assert_eq!(c.retransmits, 2);

        let mut s = S::new(1);
        s.connect()
            .k(EventKind::Retransmit, Established)
            .k(EventKind::LossProbe, Established)
            .err(ETIMEDOUT)
            .tr(Established, Close);
        let c = one(&s);
        assert_eq!(c.reason, CloseReason::Timeout);
        assert_eq!(c.retransmits, 1, "loss probes are not retransmits");

        let mut s = S::new(1);
        s.tr(Close, SynSent).err(113).tr(SynSent, Close);
        assert_eq!(reason(&s), "error (EHOSTUNREACH)");
        let mut s = S::new(1);
        s.tr(Close, SynSent).tr(SynSent, Close);
        assert_eq!(reason(&s), "connect failed");
        let mut s = S::new(1);
        s.tr(Listen, SynRecv).tr(SynRecv, Close);
        assert_eq!(reason(&s), "handshake failed");
        let mut s = S::new(1);
        s.connect().tr(Established, Close);
        assert_eq!(reason(&s), "closed (cause not recorded)");
    }

    #[test]
    fn listener() {
        let mut s = S::new(9);
        s.remote = ("0.0.0.0", 0);
        s.tr(Close, Listen).tr(Listen, Close).destroy();
        let c = one(&s);
        assert_eq!(c.reason.to_string(), "listener closed");
        assert_eq!(c.path.to_string(), "CLOSE -> LISTEN -> CLOSE");
        assert!(!c.opened_before);
    }

    #[test]
    fn still_open_and_opened_before() {
        let mut s = S::new(1);
        s.connect().k(EventKind::Retransmit, Established);
        let c = one(&s);
        assert_eq!(c.reason.to_string(), "still open at end of recording");
        assert!(c.still_open() && !c.opened_before);

        let mut s = S::new(1);
        s.k(EventKind::Retransmit, Established)
            .tr(Established, FinWait1)
            .tr(FinWait1, Close);
        let c = one(&s);
        assert!(c.opened_before);
        assert_eq!(c.reason, CloseReason::LocalClose);
        assert_eq!(c.path.to_string(), "ESTABLISHED -> FIN_WAIT1 -> CLOSE");

        let mut s = S::new(1);
        s.k(EventKind::Snapshot, Established)
            .k(EventKind::ZeroWindowRecv, Established);
        let c = one(&s);
        assert!(c.opened_before && c.still_open());
        assert_eq!(c.zero_windows, 1);
        assert_eq!(c.path.to_string(), "ESTABLISHED");
        assert_eq!(c.duration_ns, 1_000);

        // The snapshot row has no cookie; the socket's later rows do.
        let mut s = S::new(0);
        s.k(EventKind::Snapshot, Established);
        s.cookie = 77;
        s.tr(Established, FinWait1).tr(FinWait1, Close).destroy();
        let c = one(&s);
        assert!(c.opened_before);
        assert_eq!((c.cookie, c.events, c.reason), (77, 4, CloseReason::LocalClose));

        // A snapshot that is not the first row still marks it.
        let mut s = S::new(1);
        s.tr(Close, Listen).k(EventKind::Snapshot, Listen);
        assert!(one(&s).opened_before);
    }

    #[test]
    fn tcp_info_last_values() {
        let mut s = S::new(1);
        s.connect();
        s.ev(EventKind::Retransmit, None, Some(Established)).tcp = TcpInfo {
            srtt_us: Some(900),
            bytes_acked: Some(10),
            bytes_received: Some(20),
            ..Default::default()
        };
        s.ev(EventKind::ZeroWindowSent, None, Some(Established)).tcp = TcpInfo {
            srtt_us: Some(1200),
            bytes_acked: Some(15),
            ..Default::default()
        };
        s.k(EventKind::Retransmit, Established);
        let c = one(&s);
        assert_eq!(
            (c.srtt_us, c.bytes_acked, c.bytes_received),
            (Some(1200), Some(15), Some(20))
        );
    }

    #[test]
    fn owner_is_the_best_ranked_row() {
        let mut s = S::new(1);
        s.pid = 0;
        s.k(EventKind::Snapshot, Established);
        s.pid = 55;
        s.ev(EventKind::Retransmit, None, Some(Established)).attribution = Attribution::Owner;
        s.pid = 66;
        s.k(EventKind::Retransmit, Established);
        let c = one(&s);
        assert_eq!(c.pid(), 66, "task beats owner");
        assert_eq!(owner_attribution(&c), Attribution::Task);
    }

    #[test]
    fn identity_by_cookie_and_renewal_after_close() {
        let mut a = S::new(1);
        a.connect().tr(Established, FinWait1).tr(FinWait1, Close);
        // Same cookie connects again after CLOSE: a new lifetime.
        a.connect().tr(Established, Close);
        let mut b = S::new(2); // same 4-tuple, other cookie
        b.t = 1_500;
        b.connect();
        let mut all = a.events.clone();
        all.extend(b.events.clone());
        let v = run(&all);
        assert_eq!(v.len(), 3, "{v:#?}");
        let cookies: Vec<u64> = v.iter().map(|c| c.cookie).collect();
        // Renewal hands the first lifetime out; the rest come at the end, by start.
        assert_eq!(cookies, [1, 2, 1]);
        assert_eq!(v[0].reason, CloseReason::LocalClose);
        assert_eq!(v[1].reason, CloseReason::StillOpen);
        assert_eq!(v[2].reason, CloseReason::Unknown);
        assert!(!v[2].opened_before);
    }

    #[test]
    fn destroy_and_linger_end_a_lifetime() {
        let mut out = Vec::new();
        let mut t = Tracker::new();
        let mut s = S::new(1);
        s.connect().tr(Established, Close);
        for (ts, e) in &s.events {
            t.push(0, 0, *ts, e, Match::Yes, &mut out);
        }
        assert!(out.is_empty());
        assert_eq!(t.open_count(), 1);
        // An unrelated event more than the linger time later ends it.
        let mut other = S::new(2);
        other.t = s.t + CLOSE_LINGER_NS + 10;
        other.connect();
        let (ts, e) = &other.events[0];
        t.push(0, 0, *ts, e, Match::Yes, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].cookie, 1);
        assert_eq!(t.open_count(), 1);
        // A destroy ends it at once.
        let mut s3 = S::new(3);
        s3.t = other.t;
        s3.connect().tr(Established, Close).destroy();
        for (ts, e) in &s3.events {
            t.push(0, 0, *ts, e, Match::Yes, &mut out);
        }
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].cookie, 3);
        assert_eq!(t.open_count(), 1);
    }

    #[test]
    fn not_connections() {
        // Bound then freed, never connected.
        let mut s = S::new(1);
        s.remote = ("0.0.0.0", 0);
        s.destroy();
        assert!(run(&s.events).is_empty());
        // An RST without a socket.
        let mut s = S::new(0);
        s.ev(EventKind::ResetSent, None, None);
        assert!(run(&s.events).is_empty());
    }

    #[test]
    fn boots_keep_cookies_apart() {
        let mut s = S::new(1);
        s.connect();
        let mut out = Vec::new();
        let mut t = Tracker::new();
        for (ts, e) in &s.events {
            t.push(0, 0, *ts, e, Match::Yes, &mut out);
            t.push(1, 1, *ts, e, Match::Yes, &mut out);
        }
        t.finish(|_| 0, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].src, out[1].src), (0, 1));
    }

    /// The v1 loopback recording's shapes, without cookies.
    #[test]
    fn v1_connect_port_and_abort_tail() {
        // Client: connect with port 0, then the real port; server child; abort tail.
        let mut c = S::new(0);
        c.connect();
        c.k(EventKind::ResetRecv, Established)
            .tr(Established, Close)
            .err(ECONNRESET)
            .destroy();
        let mut srv = S::new(0);
        srv.local = ("10.0.0.2", 443);
        srv.remote = ("10.0.0.1", 40000);
        srv.t = c.events[1].0 + 10;
        srv.pid = 200;
        srv.tr(Listen, SynRecv).tr(SynRecv, Established).tr(Established, Close);
        srv.k(EventKind::ResetSent, Close);
        srv.remote = ("10.0.0.1", 0); // the kernel cleared the peer
        srv.err(ECONNRESET).destroy();
        // An RST without a socket, as the peer of a refused connect sends.
        let mut stray = S::new(0);
        stray.t = srv.t;
        stray.ev(EventKind::ResetSent, None, None);

        let mut all = c.events.clone();
        all.extend(srv.events.clone());
        all.extend(stray.events.clone());
        let v = run(&all);
        assert_eq!(v.len(), 2, "{v:#?}");
        let (client, server) = if v[0].sport == 40000 {
            (&v[0], &v[1])
        } else {
            (&v[1], &v[0])
        };
        assert_eq!(client.path.to_string(), "CLOSE -> SYN_SENT -> ESTABLISHED -> CLOSE");
        assert_eq!(client.reason, CloseReason::ResetByPeer);
        assert!(!client.opened_before);
        assert_eq!(client.events, 6);
        assert_eq!(server.path.to_string(), "LISTEN -> SYN_RECV -> ESTABLISHED -> CLOSE");
        assert_eq!(server.reason, CloseReason::ResetSent);
        assert_eq!(server.events, 6, "the tail after the peer was cleared belongs to it");
        assert_eq!(server.dport, 40000);
        assert!(!server.opened_before);
    }

    #[test]
    fn v1_concurrent_connects_from_port_zero() {
        let mut a = S::new(0);
        a.local = ("10.0.0.1", 0);
        a.tr(Close, SynSent).tr(Close, SynSent);
        a.local.1 = 40001;
        a.tr(SynSent, Established);
        a.local.1 = 40002;
        a.tr(SynSent, Established);
        let v = run(&a.events);
        assert_eq!(v.len(), 2, "{v:#?}");
        let ports: Vec<u16> = v.iter().map(|c| c.sport).collect();
        assert_eq!(ports, [40001, 40002]);
        assert!(v.iter().all(|c| !c.opened_before && c.events == 2));
    }

    #[test]
    fn filter_matches_on_any_event_or_owner() {
        let mut s = S::new(1);
        s.connect();
        let mut out = Vec::new();
        let mut t = Tracker::new();
        for (i, (ts, e)) in s.events.iter().enumerate() {
            let m = if i == 1 { Match::IfOwnerMatches } else { Match::No };
            t.push(0, 0, *ts, e, m, &mut out);
        }
        t.finish(|_| 0, &mut out);
        let c = &out[0];
        assert!(!c.matched && c.matched_if_owner);
        assert!(c.selected(|pid, _| pid == 100));
        assert!(!c.selected(|pid, _| pid == 7));
    }

    #[test]
    fn handshake_and_time_in_state() {
        // Client: CLOSE -> SYN_SENT (t+1000) -> ESTABLISHED (t+2000) -> ... each row 1000 ns apart.
        let mut s = S::new(1);
        s.t = 0;
        s.connect();
        s.t += 4_000; // 5 µs in ESTABLISHED
        s.tr(Established, FinWait1)
            .tr(FinWait1, FinWait2)
            .tr(FinWait2, Close)
            .destroy();
        let c = one(&s);
        assert_eq!(c.handshake_ns, Some(1_000));
        let times: Vec<(&str, i64)> = c.time_in_state().iter().map(|(s, ns)| (s.name(), *ns)).collect();
        assert_eq!(
            times,
            [
                ("SYN_SENT", 1_000),
                ("ESTABLISHED", 5_000),
                ("FIN_WAIT1", 1_000),
                ("FIN_WAIT2", 1_000)
            ],
            "CLOSE before the connect and after the close has no time"
        );

        // Accepted child: LISTEN (implied) -> SYN_RECV -> ESTABLISHED, accept row between.
        let mut srv = S::new(2);
        srv.tr(Listen, SynRecv)
            .k(EventKind::Accept, Established)
            .tr(SynRecv, Established);
        srv.tr(Established, Close);
        let c = one(&srv);
        assert_eq!(
            c.handshake_ns,
            Some(2_000),
            "SYN_RECV -> ESTABLISHED, the accept row does not cut it short"
        );
        assert_eq!(
            c.time_in_state()[0],
            (SynRecv, 2_000),
            "LISTEN was the listener's, not timed"
        );

        // Opened before recording: no handshake, no time for the state it was found in.
        let mut old = S::new(3);
        old.k(EventKind::Snapshot, Established)
            .tr(Established, CloseWait)
            .tr(CloseWait, LastAck);
        old.tr(LastAck, Close);
        let c = one(&old);
        assert_eq!(c.handshake_ns, None);
        assert_eq!(c.time_in_state(), [(CloseWait, 1_000), (LastAck, 1_000)]);

        // A connect that failed has a SYN_SENT time but no handshake.
        let mut refused = S::new(4);
        refused
            .tr(Close, SynSent)
            .k(EventKind::ResetRecv, SynSent)
            .tr(SynSent, Close);
        let c = one(&refused);
        assert_eq!(c.handshake_ns, None);
        assert_eq!(c.time_in_state(), [(SynSent, 2_000)]);
    }

    #[test]
    fn still_open_state_runs_to_the_end_of_the_recording() {
        let mut s = S::new(1);
        s.t = 0;
        s.connect(); // ESTABLISHED at 2000
        let mut t = Tracker::new();
        let mut out = Vec::new();
        for (ts, e) in &s.events {
            t.push(0, 0, *ts, e, Match::Yes, &mut out);
        }
        t.finish(|_| 10_000, &mut out);
        let c = &out[0];
        assert!(c.still_open());
        assert_eq!(c.time_in_state(), [(SynSent, 1_000), (Established, 8_000)]);
    }

    #[test]
    fn rtt_ignores_rows_without_a_sample_and_cwnd_stops_at_close() {
        let mut s = S::new(1);
        s.ev(EventKind::StateChange, Some(Close), Some(SynSent)).tcp.srtt_us = Some(0); // no sample yet: not 0 ms
        s.ev(EventKind::StateChange, Some(SynSent), Some(Established)).tcp = TcpInfo {
            srtt_us: Some(0),
            snd_cwnd: Some(10),
            ..TcpInfo::default()
        };
        let c = one(&s);
        assert_eq!((c.srtt_us, c.srtt_min_us, c.srtt_max_us), (None, None, None));
        assert_eq!(c.cwnd, Some(10));

        for (srtt, cwnd) in [(300, 10), (120, 14), (900, 20)] {
            s.ev(EventKind::Retransmit, None, Some(Established)).tcp = TcpInfo {
                srtt_us: Some(srtt),
                snd_cwnd: Some(cwnd),
                ..TcpInfo::default()
            };
        }
        s.ev(EventKind::StateChange, Some(Established), Some(Close)).tcp = TcpInfo {
            srtt_us: Some(0),
            snd_cwnd: Some(7),
            ..TcpInfo::default()
        };
        s.ev(EventKind::DestroySock, None, Some(Close)).tcp.snd_cwnd = Some(99);
        let c = one(&s);
        assert_eq!(
            (c.srtt_us, c.srtt_min_us, c.srtt_max_us),
            (Some(900), Some(120), Some(900))
        );
        assert_eq!(c.cwnd, Some(7), "the close's row, not the destroy's after it");
    }

    #[test]
    fn zero_window_stalls_end_when_a_row_shows_the_window_open() {
        let mut s = S::new(1);
        s.t = 0;
        s.connect(); // rows at 1000, 2000
        for _ in 0..3 {
            s.k(EventKind::ZeroWindowRecv, Established); // 3000, 4000, 5000: one stall
        }
        s.k(EventKind::ZeroWindowSent, Established); // 6000: a stall of the other direction
        s.ev(EventKind::LossProbe, None, Some(Established)).tcp.snd_wnd = Some(0); // 7000: still closed
        s.k(EventKind::ZeroWindowRecv, Established); // 8000: same stall
        s.ev(EventKind::Retransmit, None, Some(Established)).tcp.snd_wnd = Some(4096); // 9000: open again
        s.k(EventKind::ZeroWindowRecv, Established); // 10000: a new stall
        s.k(EventKind::ZeroWindowRecv, Established); // 11000
        let c = one(&s);
        assert_eq!(c.zero_windows, 7);
        assert_eq!(
            c.zero_window_stalls, 3,
            "received 3000-8000, sent 6000, received 10000-11000"
        );
        assert_eq!(
            c.zero_window_stall_ns(),
            5_000 + 1_000,
            "the single sent row stalls 0 ns"
        );
    }

    #[test]
    fn elided_paths_time_only_what_they_keep() {
        let mut p = StatePath::default();
        for i in 0..20i64 {
            p.push(if i % 2 == 0 { Established } else { CloseWait }, Some(i * 10));
        }
        let t: Vec<Option<i64>> = p.timed(None).map(|(_, ns)| ns).collect();
        assert_eq!(t.len(), PATH_MAX);
        assert!(t[..PATH_MAX - 2].iter().all(|&ns| ns == Some(10)), "{t:?}");
        assert_eq!(t[PATH_MAX - 2], None, "its successors were elided");
        assert_eq!(t[PATH_MAX - 1], None, "the last state of a closed path");
        assert_eq!(p.timed(Some(200)).last(), Some((CloseWait, Some(10))));
    }

    #[test]
    fn long_paths_are_elided() {
        let mut p = StatePath::default();
        for i in 0..20 {
            p.push(if i % 2 == 0 { Established } else { CloseWait }, None);
        }
        assert_eq!(p.states().count(), PATH_MAX);
        assert_eq!(p.elided(), 4);
        let s = p.to_string();
        assert!(s.ends_with("ESTABLISHED -> ... (4 more) -> CLOSE_WAIT"), "{s}");
        assert_eq!(s.matches(" -> ").count(), PATH_MAX);
    }
}
