//! `--conn`: one line per connection.
//!
//! ```text
//! START(s)    END(s)      DURATION(s) PID    COMM             LOCAL                 REMOTE                NETNS       RETRANS RST ZWIN ERR TX_BYTES   RX_BYTES   HS_MS    SRTT_MS  SRTT_MIN SRTT_MAX CWND  REASON        STATE_PATH
//! 0.644950    0.645329    0.000379    20320  python3          127.0.0.1:43792       127.0.0.1:46823       4026532177  0       0   0    0   3          1          0.070    0.038    0.034    0.038    12    local close   CLOSE -> SYN_SENT (70us) -> ESTABLISHED (234us) -> ...
//! ```
//!
//! Times are seconds since the (earliest) recording started; `END(s)` is `-`
//! for a connection still open when the recording ended, whose duration then
//! runs to the end of its recording. `TX_BYTES`/`RX_BYTES` are the last
//! `bytes_acked`/`bytes_received` seen, `HS_MS` the handshake, `SRTT_MS`,
//! `SRTT_MIN`, `SRTT_MAX` the last, smallest and largest smoothed RTT,
//! `CWND` the congestion window at close; `-` when not recorded. Each state
//! of STATE_PATH is followed by the time spent in it, where recorded. Like the event table, values wider than their column
//! are never cut and lines carry no trailing whitespace; so that no row
//! shifts, REASON is as wide as the longest reason there is
//! ([`REASON_WIDTH`]), and LOCAL/REMOTE are the event table's wide address
//! columns when asked (`wide`: `-w`, or a recording with a long IPv6
//! endpoint).

use std::fmt::Write as _;
use std::io::{self, Write};

use crate::conn::{Conn, PATH_MAX};
use crate::render::table::{push_cell, push_cell_with, push_endpoint, WIDE_ADDRESS_WIDTH};
use crate::render::{delta_ns, push_sanitized, push_seconds_6, push_u64};

const TIME_WIDTH: usize = 12;
const PID_WIDTH: usize = 7;
const COMM_WIDTH: usize = 17;
const ADDR_WIDTH: usize = 22;
/// The longest close reason ("still open at end of recording, opened
/// before recording", 55 characters) and a space: every REASON fits, so
/// STATE_PATH, last, starts at the same column on every line.
pub const REASON_WIDTH: usize = 56;
/// Appended to the reason of a connection that was open when recording started.
const OPENED_BEFORE: &str = ", opened before recording";
const NETNS_WIDTH: usize = 12;
const BYTES_WIDTH: usize = 11;
const SRTT_WIDTH: usize = 9;
const CWND_WIDTH: usize = 6;

/// Streams connections as table lines.
pub struct ConnTable<W: Write> {
    out: W,
    origin_ns: i64,
    host_width: Option<usize>,
    addr_width: usize,
    line: String,
}

impl<W: Write> ConnTable<W> {
    /// `origin_ns`: wall-clock start of the (earliest) recording;
    /// `host_width` adds a `HOST` column; `wide`: LOCAL and REMOTE fit any
    /// endpoint.
    pub fn new(out: W, origin_ns: i64, host_width: Option<usize>, wide: bool) -> Self {
        ConnTable {
            out,
            origin_ns,
            host_width,
            addr_width: if wide { WIDE_ADDRESS_WIDTH } else { ADDR_WIDTH },
            line: String::with_capacity(256),
        }
    }

    pub fn header(&mut self) -> io::Result<()> {
        self.line.clear();
        let l = &mut self.line;
        if let Some(w) = self.host_width {
            push_cell(l, "HOST", w);
        }
        push_cell(l, "START(s)", TIME_WIDTH);
        push_cell(l, "END(s)", TIME_WIDTH);
        push_cell(l, "DURATION(s)", TIME_WIDTH);
        push_cell(l, "PID", PID_WIDTH);
        push_cell(l, "COMM", COMM_WIDTH);
        push_cell(l, "LOCAL", self.addr_width);
        push_cell(l, "REMOTE", self.addr_width);
        push_cell(l, "NETNS", NETNS_WIDTH);
        push_cell(l, "RETRANS", 8);
        push_cell(l, "RST", 4);
        push_cell(l, "ZWIN", 5);
        push_cell(l, "ERR", 4);
        push_cell(l, "TX_BYTES", BYTES_WIDTH);
        push_cell(l, "RX_BYTES", BYTES_WIDTH);
        push_cell(l, "HS_MS", SRTT_WIDTH);
        push_cell(l, "SRTT_MS", SRTT_WIDTH);
        push_cell(l, "SRTT_MIN", SRTT_WIDTH);
        push_cell(l, "SRTT_MAX", SRTT_WIDTH);
        push_cell(l, "CWND", CWND_WIDTH);
        push_cell(l, "REASON", REASON_WIDTH);
        l.push_str("STATE_PATH");
        self.emit()
    }

    pub fn conn(&mut self, c: &Conn, host: &str) -> io::Result<()> {
        self.line.clear();
        let l = &mut self.line;
        if let Some(w) = self.host_width {
            push_cell_with(l, w, |l| push_sanitized(l, host));
        }
        let origin = self.origin_ns;
        push_cell_with(l, TIME_WIDTH, |l| push_seconds_6(l, delta_ns(origin, c.first_ts)));
        match c.end {
            Some((ts, _)) => push_cell_with(l, TIME_WIDTH, |l| push_seconds_6(l, delta_ns(origin, ts))),
            None => push_cell(l, "-", TIME_WIDTH),
        }
        push_cell_with(l, TIME_WIDTH, |l| push_seconds_6(l, i128::from(c.duration_ns)));
        match &c.owner {
            Some(o) => {
                push_cell_with(l, PID_WIDTH, |l| push_u64(l, u64::from(o.pid)));
                push_cell_with(l, COMM_WIDTH, |l| push_sanitized(l, &o.comm));
            }
            None => {
                push_cell(l, "N/A", PID_WIDTH);
                push_cell(l, "N/A", COMM_WIDTH);
            }
        }
        push_cell_with(l, self.addr_width, |l| push_endpoint(l, c.saddr, c.sport));
        push_cell_with(l, self.addr_width, |l| push_endpoint(l, c.daddr, c.dport));
        push_cell_with(l, NETNS_WIDTH, |l| push_opt(l, (c.netns != 0).then_some(c.netns)));
        push_cell_with(l, 8, |l| push_u64(l, u64::from(c.retransmits)));
        push_cell_with(l, 4, |l| push_u64(l, u64::from(c.resets)));
        push_cell_with(l, 5, |l| push_u64(l, u64::from(c.zero_windows)));
        push_cell_with(l, 4, |l| push_u64(l, u64::from(c.errors)));
        push_cell_with(l, BYTES_WIDTH, |l| push_opt(l, c.bytes_acked));
        push_cell_with(l, BYTES_WIDTH, |l| push_opt(l, c.bytes_received));
        let handshake_us = c.handshake_ns.map(|ns| u64::try_from(ns / 1000).unwrap_or(0));
        push_cell_with(l, SRTT_WIDTH, |l| push_ms(l, handshake_us));
        push_cell_with(l, SRTT_WIDTH, |l| push_ms(l, c.srtt_us.map(u64::from)));
        push_cell_with(l, SRTT_WIDTH, |l| push_ms(l, c.srtt_min_us.map(u64::from)));
        push_cell_with(l, SRTT_WIDTH, |l| push_ms(l, c.srtt_max_us.map(u64::from)));
        push_cell_with(l, CWND_WIDTH, |l| push_opt(l, c.cwnd));
        push_cell_with(l, REASON_WIDTH, |l| {
            let _ = write!(l, "{}", c.reason);
            if c.opened_before {
                l.push_str(OPENED_BEFORE);
            }
        });
        push_timed_path(l, c);
        self.emit()
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }

    fn emit(&mut self) -> io::Result<()> {
        self.out.write_all(self.line.trim_end_matches(' ').as_bytes())?;
        self.out.write_all(b"\n")
    }
}

/// Microseconds as milliseconds with three decimals; `-` when absent.
fn push_ms(l: &mut String, us: Option<u64>) {
    match us {
        Some(us) => {
            push_u64(l, us / 1000);
            let ms = us % 1000;
            l.push('.');
            l.push(char::from(b'0' + (ms / 100) as u8));
            l.push(char::from(b'0' + (ms / 10 % 10) as u8));
            l.push(char::from(b'0' + (ms % 10) as u8));
        }
        None => l.push('-'),
    }
}

/// `CLOSE -> SYN_SENT (71us) -> ESTABLISHED (5.2ms) -> CLOSE`: each state
/// with the time spent in it where the recording shows it.
fn push_timed_path(l: &mut String, c: &Conn) {
    let elided = c.path.elided();
    for (i, (s, ns)) in c.path.timed(c.open_until()).enumerate() {
        if i > 0 {
            l.push_str(" -> ");
        }
        if i == PATH_MAX - 1 && elided > 0 {
            let _ = write!(l, "... ({elided} more) -> ");
        }
        l.push_str(s.name());
        if let Some(ns) = ns {
            l.push_str(" (");
            push_span(l, ns);
            l.push(')');
        }
    }
}

/// A duration in the unit that keeps it short: `850ns`, `71us`, `5.2ms`, `3.25s`.
fn push_span(l: &mut String, ns: i64) {
    let ns = ns.max(0);
    let _ = if ns < 1_000 {
        write!(l, "{ns}ns")
    } else if ns < 1_000_000 {
        write!(l, "{}us", ns / 1_000)
    } else if ns < 1_000_000_000 {
        write!(l, "{}.{}ms", ns / 1_000_000, ns / 100_000 % 10)
    } else {
        write!(l, "{}.{:02}s", ns / 1_000_000_000, ns / 10_000_000 % 100)
    };
}

fn push_opt(l: &mut String, n: Option<impl Into<u64>>) {
    match n {
        Some(n) => push_u64(l, n.into()),
        None => l.push('-'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::CloseReason;

    /// Every reason the table can print fits REASON, so STATE_PATH never moves.
    #[test]
    fn every_reason_fits_its_column() {
        let mut reasons = vec![
            CloseReason::LocalClose,
            CloseReason::RemoteClose,
            CloseReason::ResetByPeer,
            CloseReason::ResetSent,
            CloseReason::Refused,
            CloseReason::Timeout,
            CloseReason::ListenerClosed,
            CloseReason::ConnectFailed,
            CloseReason::HandshakeFailed,
            CloseReason::Unknown,
            CloseReason::StillOpen,
            CloseReason::Error(i32::MIN),
            CloseReason::Error(i32::MAX),
        ];
        reasons.extend((-200..=200).map(CloseReason::Error));
        let longest = reasons
            .iter()
            .map(|r| format!("{r}{OPENED_BEFORE}").chars().count())
            .max()
            .unwrap_or(0);
        assert_eq!(longest + 1, REASON_WIDTH, "REASON is exactly as wide as it must be");
    }
}
