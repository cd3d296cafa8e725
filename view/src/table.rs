//! The classic table: deeptcptracer's one-line-per-event layout.
//!
//! ```text
//! EVENT_SOURCE            PID    COMM             SOURCE                DESTINATION           TCP_STATE                SOCK_ERR
//! tcp_set_state()         16065  wget             10.0.2.15:0           87.250.250.242:443    CLOSE -> SYN_SENT
//! ```
//!
//! It exists so that users of the seed tool (and of bcc's tcptracer) read
//! replayed recordings exactly as they read the live tool. Column widths are
//! the seed's; a value wider than its column is never truncated but keeps
//! one space before the next column; lines carry no trailing whitespace.
//!
//! **Wide addresses.** The seed's 22-character SOURCE and DESTINATION fit
//! every IPv4 endpoint (`255.255.255.255:65535`) but not a long IPv6 one,
//! which then pushes the rest of its row right. [`TableOptions::wide`]
//! sizes both columns for the longest endpoint there is
//! (`[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535`, 47 characters), so
//! that no row shifts; [`needs_wide`] tells, address by address, whether
//! the seed's width would overflow, so that a caller who knows the
//! addresses to come (a recording) uses the seed's layout whenever it
//! fits. A time column is either the
//! seed's `TIME` (`-t`: local wall-clock `HH:MM:SS.mmm`) or bcc's `TIME(s)`
//! (seconds since the recording started); `-N` adds the seed's netns column
//! after `SOCK_ERR`; `-K` prints stack frames under their event,
//! tab-indented, as the seed does. With recordings from several hosts, a
//! first `HOST` column says where each event happened.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};

use deeptcp_format::{Event, EventKind};

use crate::errno;
use crate::text::{delta_ns, push_sanitized, push_seconds_6, push_u64};

/// Width of the optional `TIME(s)` column.
pub const TIME_WIDTH: usize = 12;
/// Width of the seed's wall-clock `TIME` column (`%-14s`).
pub const WALL_TIME_WIDTH: usize = 14;
/// Width of `SOCK_ERR` when the netns column follows it: the longest errno
/// name and a space, so that NETNS starts at the same column on every line
/// (the seed's `%-6s ` let longer names push it right, under no heading).
pub const SOCK_ERR_WIDTH: usize = errno::LONGEST + 1;
/// Widths of the fixed columns, as in the seed tool. The last column
/// (`SK_ERR`) has no width: nothing follows it.
pub const EVENT_SOURCE_WIDTH: usize = 24;
pub const PID_WIDTH: usize = 7;
pub const COMM_WIDTH: usize = 17;
pub const SOURCE_WIDTH: usize = 22;
pub const DESTINATION_WIDTH: usize = 22;
/// Width of SOURCE and DESTINATION in the wide layout: the longest
/// endpoint (an IPv6 address of eight 4-digit groups, in brackets, and a
/// 5-digit port: 47 characters) and a space.
pub const WIDE_ADDRESS_WIDTH: usize = 48;
pub const TCP_STATE_WIDTH: usize = 25;

/// Kernel stacks by id, as read from the `.stacks.parquet` sidecar.
pub type Stacks = HashMap<i64, Vec<String>>;

/// The kernel function the seed tool attached to for this kind of event.
/// deeptcp records most kinds from tracepoints, but the table keeps the
/// seed's names so that its output reads the same.
pub fn event_source(kind: EventKind) -> &'static str {
    match kind {
        EventKind::StateChange => "tcp_set_state()",
        EventKind::Retransmit => "tcp_retransmit_skb()",
        EventKind::ResetRecv => "tcp_reset()",
        EventKind::ResetSent => "tcp_send_reset()",
        EventKind::SockError => "sock_def_error_report()",
        EventKind::DestroySock => "tcp_destroy_sock()",
        // Kinds the seed tool did not have: the kernel function where that
        // is what it is, else the kind's own name.
        EventKind::FinRecv => "tcp_fin()",
        EventKind::FinSent => "tcp_send_fin()",
        EventKind::ZeroWindowRecv => "tcp_ack()/win==0",
        EventKind::ZeroWindowSent => "zero_window_sent",
        EventKind::Connect => "tcp_connect()",
        EventKind::Accept => "tcp_accept()/return",
        EventKind::LossProbe => "tcp_send_loss_probe()",
        EventKind::RetransmitSynack => "tcp_retransmit_synack()",
        EventKind::Snapshot => "snapshot",
    }
}

/// The optional time column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeColumn {
    None,
    /// The seed's `TIME`: local wall-clock time of day, `HH:MM:SS.mmm`.
    Wall,
    /// bcc's `TIME(s)`: seconds since `origin_ns` (wall-clock ns).
    Seconds {
        origin_ns: i64,
    },
}

/// What the table shows besides the seed's fixed columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableOptions {
    pub time: TimeColumn,
    /// Width of a leading `HOST` column; `None`: no such column.
    pub host_width: Option<usize>,
    /// The seed's `-N` column: the network namespace inode, last.
    pub netns: bool,
    /// SOURCE and DESTINATION [`WIDE_ADDRESS_WIDTH`] wide instead of the
    /// seed's 22: no endpoint overflows its column.
    pub wide: bool,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            time: TimeColumn::None,
            host_width: None,
            netns: false,
            wide: false,
        }
    }
}

/// Whether an endpoint of `addr` (with any port) would overflow the seed's
/// SOURCE/DESTINATION column, which a [`TableOptions::wide`] table avoids.
/// Never for IPv4.
pub fn needs_wide(addr: IpAddr) -> bool {
    endpoint_len(addr, u16::MAX) >= SOURCE_WIDTH.min(DESTINATION_WIDTH)
}

/// Characters [`push_endpoint`] writes for `addr` and `port`.
pub fn endpoint_len(addr: IpAddr, port: u16) -> usize {
    let mut s = String::with_capacity(48);
    push_endpoint(&mut s, addr, port);
    s.len()
}

impl TableOptions {
    /// Widths of SOURCE and DESTINATION.
    pub fn address_widths(&self) -> (usize, usize) {
        if self.wide {
            (WIDE_ADDRESS_WIDTH, WIDE_ADDRESS_WIDTH)
        } else {
            (SOURCE_WIDTH, DESTINATION_WIDTH)
        }
    }
}

/// Streams events as table lines to `out`.
pub struct TableRenderer<W: Write> {
    out: W,
    opts: TableOptions,
    /// Reused line buffer: no allocation per event once it has grown.
    line: String,
}

impl<W: Write> TableRenderer<W> {
    pub fn new(out: W, opts: TableOptions) -> Self {
        TableRenderer {
            out,
            opts,
            line: String::with_capacity(192),
        }
    }

    /// Writes the column headings.
    pub fn header(&mut self) -> io::Result<()> {
        self.line.clear();
        if let Some(w) = self.opts.host_width {
            push_cell(&mut self.line, "HOST", w);
        }
        match self.opts.time {
            TimeColumn::None => {}
            TimeColumn::Wall => push_cell(&mut self.line, "TIME", WALL_TIME_WIDTH),
            TimeColumn::Seconds { .. } => push_cell(&mut self.line, "TIME(s)", TIME_WIDTH),
        }
        push_cell(&mut self.line, "EVENT_SOURCE", EVENT_SOURCE_WIDTH);
        push_cell(&mut self.line, "PID", PID_WIDTH);
        push_cell(&mut self.line, "COMM", COMM_WIDTH);
        let (src_w, dst_w) = self.opts.address_widths();
        push_cell(&mut self.line, "SOURCE", src_w);
        push_cell(&mut self.line, "DESTINATION", dst_w);
        push_cell(&mut self.line, "TCP_STATE", TCP_STATE_WIDTH);
        if self.opts.netns {
            push_cell(&mut self.line, "SOCK_ERR", SOCK_ERR_WIDTH);
            self.line.push_str("NETNS");
        } else {
            self.line.push_str("SOCK_ERR");
        }
        self.emit_line()
    }

    /// Writes one event recorded at wall-clock `ts` on `host` (and, with
    /// `stacks`, its frames).
    pub fn event(&mut self, ev: &Event, ts: i64, host: &str, stacks: Option<&Stacks>) -> io::Result<()> {
        self.line.clear();
        let line = &mut self.line;
        if let Some(w) = self.opts.host_width {
            push_cell_with(line, w, |l| push_sanitized(l, host));
        }
        match self.opts.time {
            TimeColumn::None => {}
            TimeColumn::Wall => push_cell_with(line, WALL_TIME_WIDTH, |l| push_wall_time(l, ts)),
            TimeColumn::Seconds { origin_ns } => {
                push_cell_with(line, TIME_WIDTH, |l| push_seconds_6(l, delta_ns(origin_ns, ts)))
            }
        }
        push_cell(line, event_source(ev.kind), EVENT_SOURCE_WIDTH);
        if ev.pid == 0 {
            push_cell(line, "N/A", PID_WIDTH);
            push_cell(line, "N/A", COMM_WIDTH);
        } else {
            push_cell_with(line, PID_WIDTH, |l| push_u64(l, u64::from(ev.pid)));
            push_cell_with(line, COMM_WIDTH, |l| push_comm(l, &ev.comm));
        }
        let (src_w, dst_w) = self.opts.address_widths();
        push_cell_with(line, src_w, |l| push_endpoint(l, ev.saddr, ev.sport));
        push_cell_with(line, dst_w, |l| push_endpoint(l, ev.daddr, ev.dport));
        push_cell_with(line, TCP_STATE_WIDTH, |l| push_tcp_state(l, ev));
        if self.opts.netns {
            push_cell_with(line, SOCK_ERR_WIDTH, |l| push_sk_err(l, ev.sk_err));
            push_u64(line, u64::from(ev.netns));
        } else {
            push_sk_err(line, ev.sk_err);
        }
        self.emit_line()?;

        if let (Some(stacks), Some(id)) = (stacks, ev.stack_id) {
            match stacks.get(&id) {
                Some(frames) => {
                    for frame in frames {
                        self.line.clear();
                        self.line.push('\t');
                        push_sanitized(&mut self.line, frame);
                        self.emit_line()?;
                    }
                }
                None => writeln!(self.out, "\t[stack {id} not in the sidecar]")?,
            }
        }
        Ok(())
    }

    /// Flushes the writer (a live view: what was written reaches its reader now).
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes and hands the writer back.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }

    fn emit_line(&mut self) -> io::Result<()> {
        self.out.write_all(self.line.trim_end_matches(' ').as_bytes())?;
        self.out.write_all(b"\n")
    }
}

/// Appends `value` left-aligned in a column of `width` characters; a value
/// that fills or overflows the column is followed by exactly one space.
pub fn push_cell(line: &mut String, value: &str, width: usize) {
    push_cell_with(line, width, |l| l.push_str(value));
}

/// Like [`push_cell`], with the value written by `f` straight into the line.
pub fn push_cell_with(line: &mut String, width: usize, f: impl FnOnce(&mut String)) {
    let start = line.len();
    f(line);
    let value = &line[start..];
    let len = if value.is_ascii() {
        value.len()
    } else {
        value.chars().count()
    };
    let mut pad = width.saturating_sub(len).max(1);
    const SPACES: &str = "                                ";
    while pad > 0 {
        let n = pad.min(SPACES.len());
        line.push_str(&SPACES[..n]);
        pad -= n;
    }
}

/// Local time of day of wall-clock `unix_ns`, `HH:MM:SS.mmm` (the seed's
/// `-t`; milliseconds truncated, as the seed's `int(us / 1000)`).
pub fn push_wall_time(line: &mut String, unix_ns: i64) {
    use chrono::{Local, TimeZone, Timelike};
    let t = Local.timestamp_nanos(unix_ns);
    for (i, v) in [t.hour(), t.minute(), t.second()].into_iter().enumerate() {
        if i > 0 {
            line.push(':');
        }
        if v < 10 {
            line.push('0');
        }
        push_u64(line, u64::from(v));
    }
    let ms = t.nanosecond() / 1_000_000 % 1000;
    line.push('.');
    line.push(char::from(b'0' + (ms / 100) as u8));
    line.push(char::from(b'0' + (ms / 10 % 10) as u8));
    line.push(char::from(b'0' + (ms % 10) as u8));
}

/// `addr:port`, IPv6 as `[addr]:port`.
pub fn push_endpoint(line: &mut String, addr: IpAddr, port: u16) {
    match addr {
        // The common case, without `core::fmt` (same text as `Display`).
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    line.push('.');
                }
                push_u64(line, u64::from(octet));
            }
            line.push(':');
            push_u64(line, u64::from(port));
        }
        IpAddr::V6(_) => {
            let _ = write!(line, "{}", SocketAddr::new(addr, port)); // writing to a String cannot fail
        }
    }
}

/// `OLD -> NEW` for transitions, else the socket's current state (or nothing).
fn push_tcp_state(line: &mut String, ev: &Event) {
    let name = |s: Option<deeptcp_format::TcpState>| s.map_or("?", |s| s.name());
    if ev.kind == EventKind::StateChange {
        line.push_str(name(ev.oldstate));
        line.push_str(" -> ");
        line.push_str(name(ev.newstate));
    } else if let Some(s) = ev.newstate {
        line.push_str(s.name());
    }
}

/// Empty for 0, the errno name when known, else the number.
pub fn push_sk_err(line: &mut String, sk_err: i32) {
    if sk_err == 0 {
        return;
    }
    match errno::name(sk_err) {
        Some(name) => line.push_str(name),
        None => {
            let _ = write!(line, "{sk_err}"); // writing to a String cannot fail
        }
    }
}

/// Task names may hold any byte but NUL; spaces stay (`Web Content`),
/// control characters are escaped so a line stays a line.
fn push_comm(line: &mut String, comm: &str) {
    push_sanitized(line, comm);
}

#[cfg(test)]
mod tests {
    use super::*;
    use deeptcp_format::testing;
    use deeptcp_format::{Family, TcpState};
    use std::net::{Ipv4Addr, Ipv6Addr};

    const HEADER: &str = "EVENT_SOURCE            PID    COMM             SOURCE                DESTINATION           TCP_STATE                SOCK_ERR";

    fn ev(kind: EventKind) -> Event {
        Event {
            mono_ns: 1_000_000_000,
            pid: 16065,
            tid: 16065,
            comm: "wget".into(),
            saddr: IpAddr::V4(Ipv4Addr::new(10, 0, 2, 15)),
            daddr: IpAddr::V4(Ipv4Addr::new(87, 250, 250, 242)),
            sport: 60590,
            dport: 443,
            newstate: Some(TcpState::Established),
            netns: 4026531840,
            ..testing::event(kind)
        }
    }

    fn transition(old: TcpState, new: TcpState) -> Event {
        Event {
            oldstate: Some(old),
            newstate: Some(new),
            ..ev(EventKind::StateChange)
        }
    }

    /// Renders with `ts` = `mono_ns` (a clock anchor of 0/0).
    fn render_with(events: &[Event], timestamps: bool, start: i64, stacks: Option<&Stacks>) -> String {
        let time = if timestamps {
            TimeColumn::Seconds { origin_ns: start }
        } else {
            TimeColumn::None
        };
        let opts = TableOptions {
            time,
            ..TableOptions::default()
        };
        let mut r = TableRenderer::new(Vec::new(), opts);
        r.header().unwrap();
        for e in events {
            r.event(e, e.mono_ns, "h", stacks).unwrap();
        }
        String::from_utf8(r.finish().unwrap()).unwrap()
    }

    fn render(events: &[Event]) -> String {
        render_with(events, false, 0, None)
    }

    /// The body line of a single rendered event.
    fn line(e: Event) -> String {
        render(&[e]).lines().nth(1).unwrap().to_string()
    }

    #[test]
    fn matches_the_seed_example() {
        let mut connect = transition(TcpState::Close, TcpState::SynSent);
        connect.sport = 0;
        let out = render(&[
            connect,
            transition(TcpState::SynSent, TcpState::Established),
            transition(TcpState::FinWait2, TcpState::Close),
        ]);
        let want = format!(
            "{HEADER}\n\
tcp_set_state()         16065  wget             10.0.2.15:0           87.250.250.242:443    CLOSE -> SYN_SENT\n\
tcp_set_state()         16065  wget             10.0.2.15:60590       87.250.250.242:443    SYN_SENT -> ESTABLISHED\n\
tcp_set_state()         16065  wget             10.0.2.15:60590       87.250.250.242:443    FIN_WAIT2 -> CLOSE\n"
        );
        assert_eq!(out, want);
    }

    #[test]
    fn header_widths() {
        let mut l = String::new();
        push_cell(&mut l, "EVENT_SOURCE", EVENT_SOURCE_WIDTH);
        assert_eq!(l.len(), 24);
        assert_eq!(render(&[]), format!("{HEADER}\n"));
    }

    #[test]
    fn no_trailing_whitespace() {
        let out = render(&[ev(EventKind::Retransmit), ev(EventKind::DestroySock)]);
        for l in out.lines() {
            assert_eq!(l, l.trim_end(), "{l:?}");
        }
        let mut e = ev(EventKind::DestroySock);
        e.newstate = None;
        assert!(line(e).ends_with("87.250.250.242:443"));
    }

    #[test]
    fn every_kind_has_its_source_name() {
        let want = [
            (EventKind::StateChange, "tcp_set_state()"),
            (EventKind::Retransmit, "tcp_retransmit_skb()"),
            (EventKind::ResetRecv, "tcp_reset()"),
            (EventKind::ResetSent, "tcp_send_reset()"),
            (EventKind::SockError, "sock_def_error_report()"),
            (EventKind::DestroySock, "tcp_destroy_sock()"),
            (EventKind::FinRecv, "tcp_fin()"),
            (EventKind::FinSent, "tcp_send_fin()"),
            (EventKind::ZeroWindowRecv, "tcp_ack()/win==0"),
            (EventKind::ZeroWindowSent, "zero_window_sent"),
            (EventKind::Connect, "tcp_connect()"),
            (EventKind::Accept, "tcp_accept()/return"),
            (EventKind::LossProbe, "tcp_send_loss_probe()"),
            (EventKind::RetransmitSynack, "tcp_retransmit_synack()"),
            (EventKind::Snapshot, "snapshot"),
        ];
        assert_eq!(want.len(), EventKind::ALL.len());
        for (kind, name) in want {
            assert_eq!(event_source(kind), name);
            assert!(name.len() < EVENT_SOURCE_WIDTH, "{name}");
            assert!(line(ev(kind)).starts_with(&format!("{name} ")), "{kind:?}");
        }
    }

    #[test]
    fn host_column() {
        let opts = TableOptions {
            time: TimeColumn::Seconds { origin_ns: 0 },
            host_width: Some(7),
            netns: false,
            wide: false,
        };
        let mut r = TableRenderer::new(Vec::new(), opts);
        r.header().unwrap();
        r.event(&ev(EventKind::Retransmit), 2_000_000_000, "web1", None)
            .unwrap();
        r.event(&ev(EventKind::Retransmit), 2_500_000_000, "longhostname", None)
            .unwrap();
        let out = String::from_utf8(r.finish().unwrap()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], format!("HOST   TIME(s)     {HEADER}"));
        assert!(
            lines[1].starts_with("web1   2.000000    tcp_retransmit_skb()"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].starts_with("longhostname 2.500000    tcp_retransmit_skb()"),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn overlong_event_source_keeps_one_space() {
        // "sock_def_error_report()" is 23 characters: still fits with padding.
        let l = line(ev(EventKind::SockError));
        assert!(l.starts_with("sock_def_error_report() 16065  wget"), "{l}");
    }

    #[test]
    fn tcp_state_column() {
        let l = line(transition(TcpState::Established, TcpState::FinWait1));
        assert!(l.ends_with("ESTABLISHED -> FIN_WAIT1"), "{l}");
        // Non-transitions show the current state.
        let l = line(ev(EventKind::Retransmit));
        assert!(l.ends_with("87.250.250.242:443    ESTABLISHED"), "{l}");
        // A transition with an unknown side still shows the arrow.
        let mut e = transition(TcpState::Close, TcpState::Listen);
        e.oldstate = None;
        assert!(line(e).ends_with("? -> LISTEN"));
    }

    #[test]
    fn ipv6_in_brackets_and_never_truncated() {
        let mut e = ev(EventKind::StateChange);
        e.family = Family::Inet6;
        e.saddr = "2001:db8:1234:5678:9abc:def0:1234:5678".parse().unwrap();
        e.daddr = IpAddr::V6(Ipv6Addr::LOCALHOST);
        e.sport = 65535;
        e.dport = 8080;
        e.oldstate = Some(TcpState::SynSent);
        let l = line(e);
        assert_eq!(
            l,
            "tcp_set_state()         16065  wget             [2001:db8:1234:5678:9abc:def0:1234:5678]:65535 [::1]:8080            SYN_SENT -> ESTABLISHED"
        );
    }

    #[test]
    fn wide_layout_keeps_long_ipv6_rows_aligned() {
        let longest: IpAddr = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap();
        assert_eq!(endpoint_len(longest, 65535), WIDE_ADDRESS_WIDTH - 1);
        let mut v6 = ev(EventKind::Retransmit);
        v6.family = Family::Inet6;
        v6.saddr = "2001:db8::1".parse().unwrap();
        v6.daddr = "2001:db8:ffff:ffff:ffff:ffff:ffff:1".parse().unwrap();
        v6.sport = 40000;
        v6.dport = 8443;
        let mut max = v6.clone();
        max.saddr = longest;
        max.daddr = longest;
        max.sport = 65535;
        max.dport = 65535;
        let opts = TableOptions {
            wide: true,
            ..TableOptions::default()
        };
        let mut r = TableRenderer::new(Vec::new(), opts);
        r.header().unwrap();
        for e in [ev(EventKind::Retransmit), v6, max] {
            r.event(&e, 0, "h", None).unwrap();
        }
        let out = String::from_utf8(r.finish().unwrap()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        // TCP_STATE starts at the same column on every line.
        let at = 24 + 7 + 17 + 2 * WIDE_ADDRESS_WIDTH;
        assert_eq!(&lines[0][at..], "TCP_STATE                SOCK_ERR");
        for l in &lines[1..] {
            assert_eq!(&l[at..], "ESTABLISHED", "{l}");
        }
        assert!(lines[2].contains(" [2001:db8::1]:40000 "), "{}", lines[2]);
        // Which addresses need it: no IPv4, short IPv6 neither.
        assert!(!needs_wide("255.255.255.255".parse().unwrap()));
        assert!(!needs_wide("2001:db8::1".parse().unwrap()));
        assert!(!needs_wide("2001:db8:1::1".parse().unwrap())); // [..]:65535 is 21
        assert!(needs_wide("2001:db8:1::10".parse().unwrap()));
        assert!(needs_wide(longest));
    }

    #[test]
    fn v4_mapped_addresses_print_as_ipv4() {
        // The format normalises v4-mapped addresses to IPv4; an inet6 socket
        // then prints like an IPv4 one.
        let mut e = ev(EventKind::StateChange);
        e.family = Family::Inet6;
        e.saddr = deeptcp_format::event::canonical_ip("::ffff:10.0.2.15".parse().unwrap());
        e.oldstate = Some(TcpState::SynSent);
        assert!(line(e).contains(" 10.0.2.15:60590 "));
    }

    #[test]
    fn value_exactly_column_wide_keeps_one_space() {
        let mut e = ev(EventKind::Retransmit);
        e.comm = "abcdefghijklmnopq".into(); // 17 = COMM_WIDTH
        e.pid = 1234567; // 7 = PID_WIDTH
        let l = line(e);
        assert!(l.contains(" 1234567 abcdefghijklmnopq 10.0.2.15:60590 "), "{l}");
        let mut e = ev(EventKind::Retransmit);
        e.comm = "abcdefghijklmnop".into(); // 16: normal padding, one space
        assert!(line(e).contains(" abcdefghijklmnop 10.0.2.15"));
    }

    #[test]
    fn pid_zero_is_not_applicable() {
        let mut e = ev(EventKind::Retransmit);
        e.pid = 0;
        e.comm = "swapper/1".into();
        let l = line(e);
        assert!(
            l.starts_with("tcp_retransmit_skb()    N/A    N/A              10.0.2.15:60590"),
            "{l}"
        );
    }

    #[test]
    fn comm_control_characters_are_escaped() {
        let mut e = ev(EventKind::Retransmit);
        e.comm = "a\nb\tc".into();
        let out = render(&[e.clone()]);
        assert_eq!(out.lines().count(), 2);
        assert!(out.contains(r"a\nb\tc"));
        e.comm = "Web Content".into();
        assert!(line(e).contains(" Web Content      10.0.2.15"));
    }

    #[test]
    fn sk_err_names_and_numbers() {
        let with = |err| {
            let mut e = ev(EventKind::SockError);
            e.sk_err = err;
            line(e)
        };
        assert!(with(111).ends_with("ESTABLISHED              ECONNREFUSED"));
        assert!(with(104).ends_with(" ECONNRESET"));
        assert!(with(110).ends_with(" ETIMEDOUT"));
        assert!(with(32).ends_with(" EPIPE"));
        assert!(with(113).ends_with(" EHOSTUNREACH"));
        assert!(with(500).ends_with(" 500"));
        assert!(with(41).ends_with(" 41"));
        assert!(with(-5).ends_with(" -5"));
        assert!(with(0).ends_with("ESTABLISHED"));
    }

    #[test]
    fn timestamps_column() {
        let start = 5_000_000_000;
        let mut early = ev(EventKind::Retransmit);
        early.mono_ns = start - 1_500_000;
        let mut late = ev(EventKind::Retransmit);
        late.mono_ns = start + 12_345_678_901;
        let mut at = ev(EventKind::Retransmit);
        at.mono_ns = start;
        let out = render_with(&[at, late, early], true, start, None);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], format!("TIME(s)     {HEADER}"));
        assert!(
            lines[1].starts_with("0.000000    tcp_retransmit_skb()    16065"),
            "{}",
            lines[1]
        );
        assert!(lines[2].starts_with("12.345679   tcp_retransmit_skb()"), "{}", lines[2]);
        assert!(lines[3].starts_with("-0.001500   tcp_retransmit_skb()"), "{}", lines[3]);
    }

    #[test]
    fn huge_timestamps_keep_one_space() {
        let mut e = ev(EventKind::Retransmit);
        e.mono_ns = i64::MAX;
        let out = render_with(&[e], true, i64::MIN, None);
        let l = out.lines().nth(1).unwrap();
        assert!(l.starts_with("18446744073.709552 tcp_retransmit_skb()"), "{l}");
    }

    #[test]
    fn seed_time_and_netns_columns() {
        let opts = TableOptions {
            time: TimeColumn::Wall,
            host_width: None,
            netns: true,
            wide: false,
        };
        let mut r = TableRenderer::new(Vec::new(), opts);
        r.header().unwrap();
        let mut e = ev(EventKind::SockError);
        e.sk_err = 111;
        // 12:34:56.007 past some midnight UTC, in whatever zone the test runs.
        let ts = 1_700_000_000_000_000_000 + 7_999_999;
        r.event(&e, ts, "h", None).unwrap();
        r.event(&ev(EventKind::Retransmit), ts, "h", None).unwrap();
        let out = String::from_utf8(r.finish().unwrap()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "TIME          EVENT_SOURCE            PID    COMM             SOURCE                DESTINATION           TCP_STATE                SOCK_ERR        NETNS"
        );
        // HH:MM:SS.mmm (milliseconds truncated), padded to the seed's 14.
        let time = &lines[1][..14];
        let b = time.as_bytes();
        assert!(
            b[..12].iter().enumerate().all(|(i, c)| match i {
                2 | 5 => *c == b':',
                8 => *c == b'.',
                _ => c.is_ascii_digit(),
            }) && time.ends_with("  "),
            "{time:?}"
        );
        assert_eq!(&time[6..12], "20.007", "{time:?}");
        assert!(
            lines[1].ends_with("ESTABLISHED              ECONNREFUSED    4026531840"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].ends_with("ESTABLISHED                              4026531840"),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn stacks_under_their_event() {
        let mut stacks = Stacks::new();
        stacks.insert(7, vec!["tcp_set_state+0x5".into(), "tcp_connect+0x10".into()]);
        stacks.insert(8, vec![]);
        let mut a = ev(EventKind::Retransmit);
        a.stack_id = Some(7);
        let mut b = ev(EventKind::Retransmit);
        b.stack_id = Some(8);
        let mut c = ev(EventKind::Retransmit);
        c.stack_id = Some(9);
        let d = ev(EventKind::DestroySock);
        let out = render_with(&[a.clone(), b, c, d], false, 0, Some(&stacks));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1 + 1 + 2 + 1 + 1 + 1 + 1);
        assert!(lines[1].starts_with("tcp_retransmit_skb()"));
        assert_eq!(lines[2], "\ttcp_set_state+0x5");
        assert_eq!(lines[3], "\ttcp_connect+0x10");
        assert!(lines[4].starts_with("tcp_retransmit_skb()"));
        assert!(lines[5].starts_with("tcp_retransmit_skb()"));
        assert_eq!(lines[6], "\t[stack 9 not in the sidecar]");
        assert!(lines[7].starts_with("tcp_destroy_sock()"));

        // Without stacks the ids are ignored.
        let out = render_with(&[a], false, 0, None);
        assert_eq!(out.lines().count(), 2);
    }
}
