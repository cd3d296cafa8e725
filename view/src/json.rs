//! JSON lines of events (`analyze --json`, `record --json`): one object
//! per event whose field names are the Parquet column names, so a script
//! can move between the file and this output without a mapping. Every
//! control character is escaped, also DEL and C1, which JSON allows raw.

use std::io::{self, Write};
use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat};
use deeptcp_format::{Event, TcpState};
use serde::{Serialize, Serializer};

/// Wall-clock ns written as RFC 3339 UTC with nanoseconds (`...T10:00:00.000000000Z`).
#[derive(Debug, Clone, Copy)]
pub struct Rfc3339(pub i64);

impl Serialize for Rfc3339 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339(self.0))
    }
}

/// RFC 3339 in UTC with nanoseconds, e.g. `2026-04-14T10:00:00.123456789Z`.
pub fn rfc3339(unix_ns: i64) -> String {
    DateTime::from_timestamp_nanos(unix_ns).to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// One event: `host`, then every column of the recording, in file order.
#[derive(Debug, Serialize)]
pub struct EventJson<'a> {
    pub host: &'a str,
    pub ts: Rfc3339,
    pub mono_ns: i64,
    pub kind: &'static str,
    pub pid: u32,
    pub tid: u32,
    pub comm: &'a str,
    pub family: &'static str,
    pub saddr: IpAddr,
    pub daddr: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub oldstate: Option<&'static str>,
    pub newstate: Option<&'static str>,
    pub sk_err: i32,
    pub netns: u32,
    pub stack_id: Option<i64>,
    pub probe: &'a str,
    pub cookie: u64,
    pub cgroup_id: u64,
    pub attribution: &'static str,
    pub snd_wnd: Option<u32>,
    pub rcv_wnd: Option<u32>,
    pub srtt_us: Option<u32>,
    pub snd_cwnd: Option<u32>,
    pub bytes_acked: Option<u64>,
    pub bytes_received: Option<u64>,
    pub window: Option<u32>,
}

impl<'a> EventJson<'a> {
    pub fn new(ev: &'a Event, ts: i64, host: &'a str) -> Self {
        EventJson {
            host,
            ts: Rfc3339(ts),
            mono_ns: ev.mono_ns,
            kind: ev.kind.as_str(),
            pid: ev.pid,
            tid: ev.tid,
            comm: &ev.comm,
            family: ev.family.as_str(),
            saddr: ev.saddr,
            daddr: ev.daddr,
            sport: ev.sport,
            dport: ev.dport,
            oldstate: ev.oldstate.map(TcpState::name),
            newstate: ev.newstate.map(TcpState::name),
            sk_err: ev.sk_err,
            netns: ev.netns,
            stack_id: ev.stack_id,
            probe: &ev.probe,
            cookie: ev.cookie,
            cgroup_id: ev.cgroup_id,
            attribution: ev.attribution.as_str(),
            snd_wnd: ev.tcp.snd_wnd,
            rcv_wnd: ev.tcp.rcv_wnd,
            srtt_us: ev.tcp.srtt_us,
            snd_cwnd: ev.tcp.snd_cwnd,
            bytes_acked: ev.tcp.bytes_acked,
            bytes_received: ev.tcp.bytes_received,
            window: ev.tcp.window,
        }
    }
}

/// Writes `value` as one line.
pub fn line(out: &mut impl Write, value: &impl Serialize) -> io::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(&mut *out, NoControls);
    value.serialize(&mut ser).map_err(io::Error::from)?;
    out.write_all(b"\n")
}

/// serde_json's compact output, with every control character escaped.
///
/// JSON requires escaping only C0 (`\u001b`); DEL and the C1 controls
/// (U+0080..U+009F, which some terminals take as ESC sequences: U+009B is
/// CSI) would go out as they are, and JSON lines are read on terminals too.
/// They are written as `\u007f`, `\u009b`: the same string to a parser.
struct NoControls;

impl serde_json::ser::Formatter for NoControls {
    fn write_string_fragment<W: ?Sized + Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        let mut rest = fragment;
        while let Some(i) = rest.find(|c: char| c.is_control()) {
            w.write_all(&rest.as_bytes()[..i])?;
            let c = rest[i..].chars().next().unwrap_or_default();
            write!(w, "\\u{:04x}", u32::from(c))?;
            rest = &rest[i + c.len_utf8()..];
        }
        w.write_all(rest.as_bytes())
    }
}
