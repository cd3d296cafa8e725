//! `--trace-json`: connections as Chrome trace-event JSON, the format
//! ui.perfetto.dev and chrome://tracing open, so that a recording can be
//! browsed on a zoomable timeline. The mapping is documented in
//! `analyze/TRACE.md`.
//!
//! It streams: [`TraceWriter::conn`] writes one socket's events when the
//! socket finishes. Each socket is a thread (track) of its owner's process:
//! a `process_name`/`thread_name`/`thread_sort_index` metadata event, one
//! complete (`X`) slice for its whole life, one nested `X` slice per state
//! ([`crate::report::spans`]: in order, never overlapping) and one
//! thread-scoped instant (`i`, `s: "t"`) per mark. Times are µs (with ns
//! as decimals) since the earliest recording started, which keeps them
//! exact in a double. The writer remembers the processes it has named:
//! memory grows with the number of distinct owners, not connections.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::Arc;

use serde::Serialize;

use crate::conn::{Conn, Mark};
use crate::render::json::Rfc3339;
use crate::render::sanitized;
use crate::report::{label, lifetime_end, spans};
use deeptcp_format::EventKind;
use deeptcp_view::errno;

/// Synthetic process ids (owner unknown, or several hosts) start above
/// Linux's largest pid (`PID_MAX_LIMIT`, 2^22), so they never collide with
/// a real one.
pub const SYNTHETIC_PID: u32 = 1 << 22;

/// One trace event; absent fields are left out, as the format allows.
#[derive(Debug, Serialize)]
struct TraceEvent<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    cat: &'static str,
    ph: &'static str,
    ts: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    dur: Option<f64>,
    pid: u32,
    tid: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    s: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    args: Option<Args<'a>>,
}

/// `args` of the events.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Args<'a> {
    /// Of a metadata event.
    Name {
        name: &'a str,
    },
    Sort {
        sort_index: u64,
    },
    /// Of a connection's slice.
    Conn(Box<ConnArgs<'a>>),
    /// Of a socket-error instant.
    Error {
        sk_err: i32,
        errno: &'a str,
    },
}

#[derive(Debug, Serialize)]
struct ConnArgs<'a> {
    host: &'a str,
    close_reason: String,
    start_ts: Rfc3339,
    cookie: u64,
    pid: u32,
    comm: &'a str,
    state_path: String,
    retransmits: u32,
    resets: u32,
    zero_windows: u32,
    errors: u32,
    handshake_ns: Option<i64>,
    srtt_us: Option<u32>,
    srtt_min_us: Option<u32>,
    srtt_max_us: Option<u32>,
    cwnd: Option<u32>,
    bytes_acked: Option<u64>,
    bytes_received: Option<u64>,
    /// Marks beyond the per-socket limit, not written as instants.
    instants_dropped: u32,
}

/// Writes trace-event JSON to `out` (see the module docs).
pub struct TraceWriter<W: Write> {
    out: W,
    origin_ns: i64,
    /// Inputs from several hosts: processes get synthetic ids.
    multi_host: bool,
    /// (host, owner pid) → trace pid, for the processes already named.
    pids: HashMap<(Arc<str>, u32), u32>,
    next_synthetic: u32,
    written: u64,
}

impl<W: Write> TraceWriter<W> {
    /// `origin_ns`: wall-clock ns of trace time 0.
    pub fn new(out: W, origin_ns: i64, multi_host: bool) -> Self {
        TraceWriter {
            out,
            origin_ns,
            multi_host,
            pids: HashMap::new(),
            next_synthetic: SYNTHETIC_PID,
            written: 0,
        }
    }

    /// The opening: everything but the events.
    pub fn begin(&mut self) -> io::Result<()> {
        write!(
            self.out,
            "{{\"displayTimeUnit\":\"ns\",\"otherData\":{{\"generator\":\"deeptcp analyze --trace-json\",\"origin_ts\":{}}},\"traceEvents\":[",
            serde_json::to_string(&Rfc3339(self.origin_ns)).map_err(io::Error::other)?
        )
    }

    /// One socket, `c`, recorded on `host`.
    pub fn conn(&mut self, c: &Conn, host: &Arc<str>) -> io::Result<()> {
        let (pid, comm) = match &c.owner {
            Some(o) => (o.pid, &*o.comm),
            None => (0, ""),
        };
        let tpid = self.process(host, pid, comm)?;
        let tid = c.seq + 1;
        let thread = label(c);
        self.meta("thread_name", tpid, tid, Args::Name { name: &thread })?;
        self.meta("thread_sort_index", tpid, tid, Args::Sort { sort_index: tid })?;

        let start = c.first_ts;
        let end = lifetime_end(c);
        let reason = c.reason.to_string();
        let comm = sanitized(comm);
        let args = ConnArgs {
            host,
            close_reason: reason.clone(),
            start_ts: Rfc3339(c.first_ts),
            cookie: c.cookie,
            pid,
            comm: &comm,
            state_path: c.path.to_string(),
            retransmits: c.retransmits,
            resets: c.resets,
            zero_windows: c.zero_windows,
            errors: c.errors,
            handshake_ns: c.handshake_ns,
            srtt_us: c.srtt_us,
            srtt_min_us: c.srtt_min_us,
            srtt_max_us: c.srtt_max_us,
            cwnd: c.cwnd,
            bytes_acked: c.bytes_acked,
            bytes_received: c.bytes_received,
            instants_dropped: c.marks_dropped,
        };
        let name = format!("connection ({reason})");
        self.event(&TraceEvent {
            name: &name,
            cat: "conn",
            ph: "X",
            ts: self.micros(start),
            dur: Some(micros_between(start, end)),
            pid: tpid,
            tid,
            s: None,
            args: Some(Args::Conn(Box::new(args))),
        })?;
        for span in spans(c) {
            self.event(&TraceEvent {
                name: span.state.name(),
                cat: "state",
                ph: "X",
                ts: self.micros(span.start),
                dur: Some(micros_between(span.start, span.end)),
                pid: tpid,
                tid,
                s: None,
                args: None,
            })?;
        }
        for m in &c.marks {
            self.mark(m, tpid, tid)?;
        }
        Ok(())
    }

    /// The closing; returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(b"\n]}\n")?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn mark(&mut self, m: &Mark, pid: u32, tid: u64) -> io::Result<()> {
        let args = (m.kind == EventKind::SockError).then(|| Args::Error {
            sk_err: m.sk_err,
            errno: errno::name(m.sk_err).unwrap_or("?"),
        });
        self.event(&TraceEvent {
            name: m.kind.as_str(),
            cat: "event",
            ph: "i",
            ts: self.micros(m.ts),
            dur: None,
            pid,
            tid,
            s: Some("t"),
            args,
        })
    }

    /// The trace pid of `host`'s process `pid`, named when first seen.
    fn process(&mut self, host: &Arc<str>, pid: u32, comm: &str) -> io::Result<u32> {
        let key = (Arc::clone(host), pid);
        if let Some(&p) = self.pids.get(&key) {
            return Ok(p);
        }
        let tpid = if pid != 0 && !self.multi_host {
            pid
        } else {
            self.next_synthetic = self.next_synthetic.saturating_add(1);
            self.next_synthetic
        };
        self.pids.insert(key, tpid);
        let mut name = if pid == 0 {
            "unknown owner".to_string()
        } else {
            format!("{} (pid {pid})", sanitized(comm))
        };
        if self.multi_host {
            name.push_str(" @ ");
            name.push_str(&sanitized(host));
        }
        self.meta("process_name", tpid, 0, Args::Name { name: &name })?;
        Ok(tpid)
    }

    fn meta(&mut self, name: &str, pid: u32, tid: u64, args: Args<'_>) -> io::Result<()> {
        self.event(&TraceEvent {
            name,
            cat: "",
            ph: "M",
            ts: 0.0,
            dur: None,
            pid,
            tid,
            s: None,
            args: Some(args),
        })
    }

    fn event(&mut self, ev: &TraceEvent<'_>) -> io::Result<()> {
        let sep: &[u8] = if self.written == 0 { b"\n" } else { b",\n" };
        self.out.write_all(sep)?;
        serde_json::to_writer(&mut self.out, ev).map_err(io::Error::other)?;
        self.written += 1;
        Ok(())
    }

    /// Wall-clock ns → trace µs.
    fn micros(&self, ts: i64) -> f64 {
        micros_between(self.origin_ns, ts)
    }
}

/// `to - from` in µs (ns as decimals; exact up to about 100 days).
fn micros_between(from: i64, to: i64) -> f64 {
    let ns = i128::from(to) - i128::from(from);
    ns as f64 / 1_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_are_exact_ns() {
        assert_eq!(micros_between(0, 1_234_567), 1_234.567);
        assert_eq!(micros_between(10, 0), -0.01);
        assert_eq!(
            serde_json::to_string(&micros_between(0, 86_400_000_000_001)).unwrap(),
            "86400000000.001"
        );
    }

    #[test]
    fn empty_trace_is_valid_json() {
        let mut w = TraceWriter::new(Vec::new(), 0, false);
        w.begin().unwrap();
        let out = w.finish().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["traceEvents"].as_array().map(Vec::len), Some(0));
        assert_eq!(v["displayTimeUnit"], "ns");
    }
}
