//! `--json`: JSON lines, one object per event or (with `--conn`) per
//! connection. The shapes are documented in `analyze/JSON.md`; event field
//! names are the Parquet column names, so a script can move between the
//! file and this output without a mapping.
//!
//! The views borrow from the event or connection, so writing an object
//! allocates nothing but its `ts` text.

use std::net::IpAddr;

use deeptcp_format::TcpState;
use serde::Serialize;

pub use deeptcp_view::json::{line, EventJson, Rfc3339};

use crate::conn::{owner_attribution, Conn, PATH_MAX};

/// One connection (`--conn --json`).
#[derive(Debug, Serialize)]
pub struct ConnJson<'a> {
    pub host: &'a str,
    pub start_ts: Rfc3339,
    pub start_mono_ns: i64,
    pub end_ts: Option<Rfc3339>,
    pub end_mono_ns: Option<i64>,
    pub duration_ns: i64,
    pub still_open: bool,
    pub opened_before_recording: bool,
    pub close_reason: String,
    pub pid: u32,
    pub tid: u32,
    pub comm: &'a str,
    pub attribution: &'static str,
    pub cookie: u64,
    pub cgroup_id: u64,
    pub netns: u32,
    pub family: &'static str,
    pub saddr: IpAddr,
    pub sport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
    pub state_path: Vec<&'static str>,
    pub state_path_elided: u32,
    pub events: u64,
    pub retransmits: u32,
    pub resets: u32,
    pub zero_windows: u32,
    pub errors: u32,
    pub zero_window_stalls: u32,
    pub zero_window_stall_ns: i64,
    pub bytes_acked: Option<u64>,
    pub bytes_received: Option<u64>,
    pub srtt_us: Option<u32>,
    pub srtt_min_us: Option<u32>,
    pub srtt_max_us: Option<u32>,
    pub cwnd: Option<u32>,
    pub handshake_ns: Option<i64>,
    /// ns spent in each `state_path` entry (null where not recorded).
    pub state_path_ns: Vec<Option<i64>>,
    /// ns spent in each state, summed, in the order first entered.
    pub time_in_state_ns: StateTimes,
}

/// `{"SYN_SENT": 71000, "ESTABLISHED": 5200000}`, in path order.
#[derive(Debug)]
pub struct StateTimes(pub Vec<(TcpState, i64)>);

impl Serialize for StateTimes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (state, ns) in &self.0 {
            m.serialize_entry(state.name(), ns)?;
        }
        m.end()
    }
}

impl<'a> ConnJson<'a> {
    pub fn new(c: &'a Conn, host: &'a str) -> Self {
        let mut state_path = Vec::with_capacity(PATH_MAX);
        let mut state_path_ns = Vec::with_capacity(PATH_MAX);
        for (s, ns) in c.path.timed(c.open_until()) {
            state_path.push(s.name());
            state_path_ns.push(ns);
        }
        let (pid, tid, comm) = match &c.owner {
            Some(o) => (o.pid, o.tid, &*o.comm),
            None => (0, 0, ""),
        };
        ConnJson {
            host,
            start_ts: Rfc3339(c.first_ts),
            start_mono_ns: c.first_mono,
            end_ts: c.end.map(|e| Rfc3339(e.0)),
            end_mono_ns: c.end.map(|e| e.1),
            duration_ns: c.duration_ns,
            still_open: c.still_open(),
            opened_before_recording: c.opened_before,
            close_reason: c.reason.to_string(),
            pid,
            tid,
            comm,
            attribution: owner_attribution(c).as_str(),
            cookie: c.cookie,
            cgroup_id: c.cgroup_id,
            netns: c.netns,
            family: c.family.as_str(),
            saddr: c.saddr,
            sport: c.sport,
            daddr: c.daddr,
            dport: c.dport,
            state_path,
            state_path_elided: c.path.elided(),
            events: c.events,
            retransmits: c.retransmits,
            resets: c.resets,
            zero_windows: c.zero_windows,
            errors: c.errors,
            zero_window_stalls: c.zero_window_stalls,
            zero_window_stall_ns: c.zero_window_stall_ns(),
            bytes_acked: c.bytes_acked,
            bytes_received: c.bytes_received,
            srtt_us: c.srtt_us,
            srtt_min_us: c.srtt_min_us,
            srtt_max_us: c.srtt_max_us,
            cwnd: c.cwnd,
            handshake_ns: c.handshake_ns,
            state_path_ns,
            time_in_state_ns: StateTimes(c.time_in_state()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::owner::tests::ev;
    use deeptcp_format::{schema::col, Attribution, EventKind, TcpInfo};
    use deeptcp_view::json::rfc3339;
    use serde::Deserialize;

    /// What a consumer would deserialize an event line into.
    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Row {
        host: String,
        ts: String,
        mono_ns: i64,
        kind: String,
        pid: u32,
        tid: u32,
        comm: String,
        family: String,
        saddr: IpAddr,
        daddr: IpAddr,
        sport: u16,
        dport: u16,
        oldstate: Option<String>,
        newstate: Option<String>,
        sk_err: i32,
        netns: u32,
        stack_id: Option<i64>,
        probe: String,
        cookie: u64,
        cgroup_id: u64,
        attribution: String,
        snd_wnd: Option<u32>,
        rcv_wnd: Option<u32>,
        srtt_us: Option<u32>,
        snd_cwnd: Option<u32>,
        bytes_acked: Option<u64>,
        bytes_received: Option<u64>,
        window: Option<u32>,
    }

    #[test]
    fn event_round_trip() {
        let mut e = ev(EventKind::StateChange, 42, Attribution::Owner, u64::MAX);
        e.oldstate = Some(TcpState::SynSent);
        e.saddr = "2001:db8::1".parse().unwrap();
        e.comm = "a \"q\"\n".into();
        e.stack_id = Some(-3);
        e.tcp = TcpInfo {
            srtt_us: Some(17),
            bytes_acked: Some(u64::MAX),
            ..Default::default()
        };
        let mut out = Vec::new();
        line(&mut out, &EventJson::new(&e, 1_776_160_800_123_456_789, "web1")).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with("}\n") && text.lines().count() == 1, "{text}");
        let r: Row = serde_json::from_str(&text).unwrap();
        assert_eq!(r.ts, "2026-04-14T10:00:00.123456789Z");
        assert_eq!(r.host, "web1");
        assert_eq!(
            (r.kind.as_str(), r.pid, r.comm.as_str()),
            ("state_change", 42, "a \"q\"\n")
        );
        assert_eq!(r.saddr, e.saddr);
        assert_eq!(r.oldstate.as_deref(), Some("SYN_SENT"));
        assert_eq!(r.newstate.as_deref(), Some("ESTABLISHED"));
        assert_eq!(r.cookie, u64::MAX);
        assert_eq!(r.stack_id, Some(-3));
        assert_eq!(r.attribution, "owner");
        assert_eq!((r.srtt_us, r.bytes_acked, r.window), (Some(17), Some(u64::MAX), None));
        // Absent values are null, not missing.
        assert!(text.contains("\"window\":null"), "{text}");
        assert!(text.contains("\"saddr\":\"2001:db8::1\""), "{text}");
    }

    #[test]
    fn event_fields_are_the_parquet_columns() {
        let e = ev(EventKind::Retransmit, 1, Attribution::Task, 1);
        let v = serde_json::to_value(EventJson::new(&e, 0, "h")).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        let mut want: Vec<&str> = vec!["host"];
        want.extend(col::ALL);
        let (mut a, mut b) = (keys.clone(), want.clone());
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b);
    }

    #[test]
    fn del_and_c1_controls_are_escaped_too() {
        let mut e = ev(EventKind::Retransmit, 1, Attribution::Task, 1);
        e.comm = "a\x1b[2J\u{9b}1m\x7f\u{85}é\"\\".into();
        let mut out = Vec::new();
        line(&mut out, &EventJson::new(&e, 0, "h\u{9b}")).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text.trim_end_matches('\n').chars().any(char::is_control),
            "{}",
            text.escape_debug()
        );
        assert!(
            text.contains(r#""comm":"a\u001b[2J\u009b1m\u007f\u0085é\"\\""#),
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["comm"], *e.comm);
        assert_eq!(v["host"], "h\u{9b}");
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999999999Z");
    }
}
