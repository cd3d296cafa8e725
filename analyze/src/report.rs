//! `--report` and `--trace-json`: the connections as pictures, for people
//! who would rather look than read.
//!
//! Both fold the event stream into connections with the same
//! [`Tracker`] as `--conn` (so the same filters select the same
//! connections), with a tracker that also keeps each connection's
//! [`Mark`]s (retransmits, loss probes, RSTs, zero windows, socket errors
//! and their times), and write to the file given as the option's value
//! (`-`: stdout).
//!
//! **Memory is bounded.** `--report` streams connections into a
//! [`Report`]: per-time-bucket counts of new connections and failures (at
//! most [`MAX_BUCKETS`] buckets: when the recording outgrows them, pairs of
//! buckets merge and the bucket width doubles), fixed log-scaled histograms
//! of handshake latency and smoothed RTT (plus the streaming percentiles of
//! [`crate::stats::Histogram`]), failure counts by reason, and only the
//! [`LANES`] most interesting connections (a bounded heap, see
//! [`Interest`]) with their marks. Open connections keep at most
//! [`REPORT_MARKS`] marks each. `--trace-json` writes each socket when it
//! finishes ([`crate::render::trace`]); open sockets keep at most
//! [`TRACE_MARKS`] marks each, the rest counted.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use deeptcp_format::{RecordingReader, TcpState};

use crate::app::{each_conn_in, output};
use crate::cli::{Config, Mode};
use crate::conn::{CloseReason, Conn, Tracker};
use crate::order::Plan;
use crate::render::{html, trace};
use crate::source::Source;
use crate::stats::Histogram;

/// Connections drawn as timeline lanes in the report.
pub const LANES: usize = 50;
/// Marks kept per connection for the report.
pub const REPORT_MARKS: u32 = 256;
/// Marks (instants) kept per socket for the trace.
pub const TRACE_MARKS: u32 = 10_000;
/// Time buckets of the connections-over-time chart, at most.
pub const MAX_BUCKETS: usize = 240;
/// Width of a time bucket to begin with; doubled as needed.
const FIRST_BUCKET_NS: i64 = 1_000_000;

/// `--report PATH` or `--trace-json PATH` (as `config.mode` says). The
/// file is created before the inputs are read, so a bad path fails at once.
pub fn run(
    config: &Config,
    sources: &[Source],
    readers: Vec<(RecordingReader, Plan)>,
    origin_ns: i64,
    stdout: &mut impl Write,
    warn: &mut impl Write,
) -> Result<()> {
    let hosts = hosts(sources);
    write_to(config, stdout, |out| {
        if config.mode == Mode::TraceJson {
            let unknown: Arc<str> = Arc::from("unknown");
            let mut w = trace::TraceWriter::new(out, origin_ns, hosts.len() > 1);
            w.begin().map_err(output)?;
            each_conn_in(Tracker::with_marks(TRACE_MARKS), config, sources, readers, warn, |c| {
                let host = sources.get(c.src as usize).map_or(&unknown, |s| &s.host);
                w.conn(&c, host).map_err(output)
            })?;
            return w.finish().map(|_| ()).map_err(output);
        }
        let mut report = Report::new(origin_ns);
        each_conn_in(Tracker::with_marks(REPORT_MARKS), config, sources, readers, warn, |c| {
            report.add(c);
            Ok(())
        })?;
        let inputs: Vec<String> = sources.iter().map(|s| s.path.display().to_string()).collect();
        let page = html::Page {
            report: &report,
            hosts: &hosts,
            inputs: &inputs,
            filtered: !config.filter.is_empty(),
        };
        html::render(out, &page)
    })
}

/// The distinct hosts of the inputs, in input order.
fn hosts(sources: &[Source]) -> Vec<Arc<str>> {
    let mut seen = HashSet::new();
    sources
        .iter()
        .filter(|s| seen.insert(Arc::clone(&s.host)))
        .map(|s| Arc::clone(&s.host))
        .collect()
}

/// Runs `f` on the output file (`-`: `stdout`), creating it first; on an
/// error a file it created is removed. Errors writing a file name it; errors
/// writing stdout are [`output`] errors.
fn write_to<W: Write>(config: &Config, stdout: &mut W, f: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let path = config.output.as_deref().unwrap_or(Path::new("-"));
    if path == Path::new("-") {
        f(stdout)?;
        return stdout.flush().map_err(output);
    }
    // Only a regular file this run created is removed after an error (never
    // a device such as /dev/null, nor a file that was there before).
    let existed = path.symlink_metadata().is_ok();
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = BufWriter::new(file);
    let result = f(&mut out).and_then(|()| out.flush().map_err(output));
    drop(out);
    if let Err(e) = result {
        // No half-written page or trace is left behind.
        if !existed && path.symlink_metadata().is_ok_and(|m| m.is_file()) {
            let _ = std::fs::remove_file(path);
        }
        if e.chain().any(|c| c.is::<crate::app::OutputError>()) {
            return Err(e.context(format!("cannot write {}", path.display())));
        }
        return Err(e);
    }
    Ok(())
}

/// Whether a connection that ended this way failed.
pub fn failed(reason: CloseReason) -> bool {
    matches!(
        reason,
        CloseReason::Refused
            | CloseReason::Timeout
            | CloseReason::ResetByPeer
            | CloseReason::ResetSent
            | CloseReason::Error(_)
            | CloseReason::ConnectFailed
            | CloseReason::HandshakeFailed
    )
}

/// Where a connection's life ends on a timeline: the later of its end
/// (close, destroy, or the end of the recording if still open) and its
/// last event.
pub fn lifetime_end(c: &Conn) -> i64 {
    c.first_ts.saturating_add(c.duration_ns).max(c.last_ts)
}

/// A state drawn as a span: the state and when it was entered and left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub state: TcpState,
    pub start: i64,
    pub end: i64,
}

/// A connection's states as spans, in order, not overlapping, inside
/// `[first_ts, lifetime_end]`. A first state entered before the recording
/// shows it starts at the connection's first event (and is left out when
/// it ended there); states whose entry or
/// exit the recording does not show (an elided middle), and CLOSE, are
/// left out; a last state other than CLOSE runs to the connection's end.
pub fn spans(c: &Conn) -> Vec<Span> {
    let end = lifetime_end(c);
    let mut out = Vec::new();
    let mut prev = c.first_ts;
    for (i, (state, from, to)) in c.path.spans(Some(end)).enumerate() {
        let Some(to) = to else { continue };
        let from = match from {
            Some(t) => t,
            // In it before the recording showed it (a snapshot, or a
            // transition's old state): from the first event, if it lasted.
            None if i == 0 && to > c.first_ts => c.first_ts,
            None => continue,
        };
        let start = from.clamp(prev, end);
        let stop = to.clamp(start, end);
        prev = stop;
        if state != TcpState::Close {
            out.push(Span {
                state,
                start,
                end: stop,
            });
        }
    }
    out
}

/// New connections and failures per time bucket (see the module docs).
#[derive(Debug, Clone)]
pub struct Series {
    pub origin_ns: i64,
    pub width_ns: i64,
    /// (connections started, connections failed) per bucket.
    pub buckets: Vec<(u64, u64)>,
}

impl Series {
    fn new(origin_ns: i64) -> Series {
        Series {
            origin_ns,
            width_ns: FIRST_BUCKET_NS,
            buckets: Vec::new(),
        }
    }

    fn slot(&mut self, ts: i64) -> &mut (u64, u64) {
        let offset = ts.saturating_sub(self.origin_ns).max(0);
        let mut i = (offset / self.width_ns) as usize;
        while i >= MAX_BUCKETS {
            let merged: Vec<(u64, u64)> = self
                .buckets
                .chunks(2)
                .map(|p| p.iter().fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1)))
                .collect();
            self.buckets = merged;
            self.width_ns = self.width_ns.saturating_mul(2);
            i = (offset / self.width_ns) as usize;
        }
        if self.buckets.len() <= i {
            self.buckets.resize(i + 1, (0, 0));
        }
        &mut self.buckets[i]
    }
}

/// Log-scaled bins: 5 per decade from 1 µs to 100 s, one below, one above.
#[derive(Debug, Clone)]
pub struct LogBins {
    pub counts: Vec<u64>,
}

/// Bins per decade of [`LogBins`].
pub const BINS_PER_DECADE: u32 = 5;
/// Lowest bin edge of [`LogBins`], ns (1 µs), and the highest (100 s).
const LOWEST_EDGE_NS: f64 = 1e3;
const DECADES: u32 = 8;

impl LogBins {
    fn new() -> LogBins {
        LogBins {
            counts: vec![0; Self::edges().len() + 1],
        }
    }

    /// The bin edges, ns: bin 0 is below the first, bin i in [edge i-1, edge i).
    pub fn edges() -> Vec<u64> {
        (0..=DECADES * BINS_PER_DECADE)
            .map(|k| (LOWEST_EDGE_NS * 10f64.powf(f64::from(k) / f64::from(BINS_PER_DECADE))).round() as u64)
            .collect()
    }

    fn add(&mut self, ns: u64) {
        let edges = Self::edges();
        let i = edges.partition_point(|&e| e <= ns);
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
    }
}

/// How interesting a connection is for a timeline lane: failed ones
/// first, then by trouble (retransmits, and five times each reset, error
/// and zero-window stall), then by handshake time, then by duration;
/// earlier connections win ties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interest {
    failed: bool,
    trouble: u64,
    handshake_ns: i64,
    duration_ns: i64,
    earlier: Reverse<(i64, u64)>,
}

impl Interest {
    pub fn of(c: &Conn) -> Interest {
        let five = |n: u32| 5 * u64::from(n);
        Interest {
            failed: failed(c.reason),
            trouble: u64::from(c.retransmits) + five(c.resets) + five(c.errors) + five(c.zero_window_stalls),
            handshake_ns: c.handshake_ns.unwrap_or(0),
            duration_ns: c.duration_ns,
            earlier: Reverse((c.first_ts, c.seq)),
        }
    }
}

/// A lane candidate, ordered by [`Interest`] (reversed: the heap's top is
/// the least interesting, the one to drop).
struct Candidate(Interest, Conn);

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.cmp(&self.0)
    }
}

/// Everything the HTML report shows (see the module docs for its bounds).
pub struct Report {
    pub connections: u64,
    pub failures: u64,
    pub still_open: u64,
    pub retransmits: u64,
    pub resets: u64,
    pub zero_window_stalls: u64,
    pub errors: u64,
    /// Close reason (as text) → connections, for the failed ones.
    pub failures_by_reason: BTreeMap<String, u64>,
    pub series: Series,
    pub handshake: LogBins,
    pub handshake_pct: Histogram,
    /// Last smoothed RTT of each connection with a sample, in ns.
    pub rtt: LogBins,
    pub rtt_pct: Histogram,
    /// Wall-clock span of the connections seen.
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
    lanes: BinaryHeap<Candidate>,
}

impl Report {
    pub fn new(origin_ns: i64) -> Report {
        Report {
            connections: 0,
            failures: 0,
            still_open: 0,
            retransmits: 0,
            resets: 0,
            zero_window_stalls: 0,
            errors: 0,
            failures_by_reason: BTreeMap::new(),
            series: Series::new(origin_ns),
            handshake: LogBins::new(),
            handshake_pct: Histogram::default(),
            rtt: LogBins::new(),
            rtt_pct: Histogram::default(),
            first_ts: None,
            last_ts: None,
            lanes: BinaryHeap::new(),
        }
    }

    /// Folds in one finished (or still open) connection.
    pub fn add(&mut self, c: Conn) {
        self.connections += 1;
        self.series.slot(c.first_ts).0 += 1;
        if failed(c.reason) {
            self.failures += 1;
            self.series.slot(lifetime_end(&c)).1 += 1;
            *self.failures_by_reason.entry(c.reason.to_string()).or_insert(0) += 1;
        }
        if c.still_open() {
            self.still_open += 1;
        }
        self.retransmits += u64::from(c.retransmits);
        self.resets += u64::from(c.resets);
        self.zero_window_stalls += u64::from(c.zero_window_stalls);
        self.errors += u64::from(c.errors);
        if let Some(ns) = c.handshake_ns {
            let ns = u64::try_from(ns).unwrap_or(0);
            self.handshake.add(ns);
            self.handshake_pct.add(ns);
        }
        if let Some(us) = c.srtt_us {
            self.rtt.add(u64::from(us) * 1_000);
            self.rtt_pct.add(u64::from(us) * 1_000);
        }
        self.first_ts = Some(self.first_ts.map_or(c.first_ts, |t| t.min(c.first_ts)));
        let end = lifetime_end(&c);
        self.last_ts = Some(self.last_ts.map_or(end, |t| t.max(end)));
        self.lanes.push(Candidate(Interest::of(&c), c));
        if self.lanes.len() > LANES {
            self.lanes.pop();
        }
    }

    /// The lanes' connections, by start.
    pub fn lanes(&self) -> Vec<&Conn> {
        let mut v: Vec<&Conn> = self.lanes.iter().map(|c| &c.1).collect();
        v.sort_by_key(|c| (c.first_ts, c.seq));
        v
    }
}

/// Label of a connection: `comm pid sport→daddr:dport`.
pub fn label(c: &Conn) -> String {
    let owner = match &c.owner {
        Some(o) => format!("{} {}", crate::render::sanitized(&o.comm), o.pid),
        None => "?".to_string(),
    };
    let mut remote = String::new();
    deeptcp_view::table::push_endpoint(&mut remote, c.daddr, c.dport);
    if c.is_listener() {
        return format!("{owner} listen :{}", c.sport);
    }
    format!("{owner} {}\u{2192}{remote}", c.sport)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_stays_bounded() {
        let mut s = Series::new(0);
        for i in 0..10_000i64 {
            s.slot(i * 7_000_000).0 += 1;
        }
        assert!(s.buckets.len() <= MAX_BUCKETS, "{}", s.buckets.len());
        assert_eq!(s.buckets.iter().map(|b| b.0).sum::<u64>(), 10_000);
        // 70 s in at most 240 buckets of a power-of-two multiple of 1 ms.
        assert!(s.width_ns >= 70_000_000_000 / MAX_BUCKETS as i64);
        assert_eq!(s.width_ns % FIRST_BUCKET_NS, 0);
    }

    #[test]
    fn log_bins() {
        let edges = LogBins::edges();
        assert_eq!(edges[0], 1_000);
        assert_eq!(edges[5], 10_000);
        assert_eq!(*edges.last().unwrap(), 100_000_000_000);
        let mut b = LogBins::new();
        for v in [0, 999, 1_000, 1_584, 1_585, 10_000, u64::MAX] {
            b.add(v);
        }
        assert_eq!(b.counts[0], 2);
        assert_eq!(b.counts[1], 2); // [1000, 1585)
        assert_eq!(b.counts[2], 1);
        assert_eq!(b.counts[6], 1); // [10000, ...)
        assert_eq!(b.counts[edges.len()], 1);
    }
}
