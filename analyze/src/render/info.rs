//! `--info`: what a recording is, before reading its events.
//!
//! A recording travels without its context (host, kernel, which probes
//! attached, whether events were lost), and wrong conclusions follow from a
//! table whose retransmit probe never attached or whose ring buffer
//! overflowed. This renderer prints that context plus a one-pass
//! [`Summary`] of the rows (counts per kind, first/last event), which is
//! accumulated while streaming so memory stays constant.

use std::borrow::Cow;
use std::io::{self, Write};

use chrono::{DateTime, SecondsFormat};
use deeptcp_format::{Event, EventKind, RecordingMeta};

use crate::render::{delta_ns, sanitized, seconds_6};

/// Counts gathered in one streaming pass over the events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub events: u64,
    /// Indexed like [`EventKind::ALL`].
    pub per_kind: [u64; EventKind::ALL.len()],
    /// Smallest and largest `mono_ns` seen (rows need not be sorted).
    pub first_mono_ns: Option<i64>,
    pub last_mono_ns: Option<i64>,
    /// Events that carry a kernel stack id.
    pub with_stack: u64,
}

impl Summary {
    pub fn add(&mut self, ev: &Event) {
        self.events += 1;
        if let Some(n) = EventKind::ALL
            .iter()
            .position(|k| *k == ev.kind)
            .and_then(|i| self.per_kind.get_mut(i))
        {
            *n += 1;
        }
        self.first_mono_ns = Some(self.first_mono_ns.map_or(ev.mono_ns, |m| m.min(ev.mono_ns)));
        self.last_mono_ns = Some(self.last_mono_ns.map_or(ev.mono_ns, |m| m.max(ev.mono_ns)));
        if ev.stack_id.is_some() {
            self.with_stack += 1;
        }
    }

    pub fn count(&self, kind: EventKind) -> u64 {
        EventKind::ALL
            .iter()
            .position(|k| *k == kind)
            .and_then(|i| self.per_kind.get(i).copied())
            .unwrap_or(0)
    }
}

/// Width of the label column.
const LABEL: usize = 18;

/// Schema v1 has the first six of [`EventKind::ALL`].
const V1_KINDS: usize = 6;

/// Writes the `--info` report. `finished` is false for a recording whose
/// writer did not close it cleanly (recovered after a crash): its lost-event
/// total is unknown.
pub fn render(out: &mut impl Write, meta: &RecordingMeta, finished: bool, summary: &Summary) -> io::Result<()> {
    // Text from the file is escaped ([`sanitized`]): a recording is data.
    let text = |s: &str| {
        if s.is_empty() {
            "unknown".to_string()
        } else {
            sanitized(s).into_owned()
        }
    };
    let anchor_known = meta.clock != Default::default();

    field(out, "schema version", &meta.schema_version.to_string())?;
    field(out, "host", &text(&meta.host))?;
    field(out, "kernel", &text(&meta.kernel_release))?;
    field(out, "boot id", &text(&meta.boot_id))?;
    let start = if anchor_known {
        rfc3339(meta.clock.realtime_ns)
    } else {
        "unknown (no clock anchor)".to_string()
    };
    field(out, "start time", &start)?;
    field(out, "recorder version", &text(&meta.recorder_version))?;
    let kstack = if meta.kstack {
        format!("recorded (-K), {} events with a stack", summary.with_stack)
    } else {
        "not recorded".to_string()
    };
    field(out, "kernel stacks", &kstack)?;

    match (summary.first_mono_ns, summary.last_mono_ns) {
        (Some(first), Some(last)) => {
            let at = |mono: i64| {
                let d = delta_ns(meta.clock.monotonic_ns, mono);
                let sign = if d < 0 { "" } else { "+" }; // seconds_6 writes the minus
                let rel = format!("{sign}{} s after start", seconds_6(d));
                if anchor_known {
                    format!("{} ({rel})", rfc3339(meta.clock.wall_ns(mono)))
                } else {
                    rel
                }
            };
            field(out, "first event", &at(first))?;
            field(out, "last event", &at(last))?;
            field(
                out,
                "duration",
                &format!("{} s (first to last event)", seconds_6(delta_ns(first, last))),
            )?;
        }
        _ => field(out, "duration", "n/a (no events)")?,
    }

    field(out, "events", &summary.events.to_string())?;
    let lost = if !finished {
        "unknown (the recording was not finished cleanly)".to_string()
    } else if meta.lost_events == 0 {
        "0".to_string()
    } else {
        format!(
            "{} (the ring buffer overflowed: the recording is incomplete)",
            meta.lost_events
        )
    };
    field(out, "lost events", &lost)?;
    for interval in &meta.lost_intervals {
        writeln!(out, "{:<LABEL$}{}", "", interval.describe(&meta.clock))?;
    }
    if let Some(segment) = meta.segment {
        field(out, "segment", &segment.to_string())?;
    }

    if meta.schema_version >= 2 {
        field(out, "snapshot sockets", &meta.snapshot_sockets.to_string())?;
    }

    // A v1 recording cannot hold the kinds v2 added: listing them as 0
    // would read as "none happened".
    let kinds = if meta.schema_version >= 2 {
        &EventKind::ALL[..]
    } else {
        &EventKind::ALL[..V1_KINDS]
    };
    writeln!(out, "events by kind:")?;
    let count_width = kinds
        .iter()
        .map(|k| summary.count(*k).to_string().len())
        .max()
        .unwrap_or(1);
    let kind_width = kinds.iter().map(|k| k.as_str().len() + 1).max().unwrap_or(0).max(16);
    for &kind in kinds {
        writeln!(
            out,
            "  {:<kind_width$}{:>count_width$}",
            kind.as_str(),
            summary.count(kind)
        )?;
    }

    let attached = meta.probes.iter().filter(|p| p.attached).count();
    let failed = meta.probes.len() - attached;
    if meta.probes.is_empty() {
        field(out, "probes", "none listed")?;
    } else {
        field(out, "probes", &format!("{attached} attached, {failed} failed"))?;
    }
    let probes: Vec<(Cow<str>, Cow<str>)> = meta
        .probes
        .iter()
        .map(|p| (sanitized(&p.kind), sanitized(&p.probe)))
        .collect();
    let kind_width = probes.iter().map(|p| p.0.chars().count()).max().unwrap_or(0).max(15);
    let probe_width = probes.iter().map(|p| p.1.chars().count()).max().unwrap_or(0);
    for (p, (kind, probe)) in meta.probes.iter().zip(&probes) {
        let status = match (p.attached, p.detail.is_empty()) {
            (true, _) => "attached".to_string(),
            (false, true) => "FAILED".to_string(),
            (false, false) => format!("FAILED: {}", sanitized(&p.detail)),
        };
        let l = format!("  {kind:<kind_width$} {probe:<probe_width$} {status}");
        writeln!(out, "{}", l.trim_end())?;
    }
    Ok(())
}

fn field(out: &mut impl Write, label: &str, value: &str) -> io::Result<()> {
    let l = format!("{:<LABEL$}{value}", format!("{label}:"));
    writeln!(out, "{}", l.trim_end())
}

/// RFC 3339 in UTC with nanoseconds, e.g. `2026-04-14T10:00:00.123456789Z`.
fn rfc3339(unix_ns: i64) -> String {
    DateTime::from_timestamp_nanos(unix_ns).to_rfc3339_opts(SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use deeptcp_format::testing;
    use deeptcp_format::{ClockAnchor, ProbeStatus, TcpState};

    fn meta() -> RecordingMeta {
        RecordingMeta {
            schema_version: 1,
            host: "box1".into(),
            kernel_release: "6.8.0-45-generic".into(),
            boot_id: "0f0e0d0c-0b0a-0908-0706-050403020100".into(),
            clock: ClockAnchor {
                realtime_ns: 1_776_160_800_000_000_000, // 2026-04-14T10:00:00Z
                monotonic_ns: 1_000_000_000,
            },
            recorder_version: "0.1.0".into(),
            probes: vec![
                ProbeStatus {
                    kind: "state_change".into(),
                    probe: "tp_btf:inet_sock_set_state".into(),
                    attached: true,
                    detail: String::new(),
                    ..Default::default()
                },
                ProbeStatus {
                    kind: "sock_error".into(),
                    probe: "kprobe:sock_def_error_report".into(),
                    attached: false,
                    detail: "kprobes unavailable".into(),
                    ..Default::default()
                },
            ],
            kstack: false,
            ..Default::default()
        }
    }

    fn ev(kind: EventKind, mono_ns: i64) -> Event {
        Event {
            mono_ns,
            pid: 1,
            tid: 1,
            comm: "x".into(),
            sport: 1,
            dport: 2,
            newstate: Some(TcpState::Established),
            ..testing::event(kind)
        }
    }

    fn render_str(meta: &RecordingMeta, s: &Summary) -> String {
        let mut out = Vec::new();
        render(&mut out, meta, true, s).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn summary_counts_and_bounds_unsorted_rows() {
        let mut s = Summary::default();
        s.add(&ev(EventKind::Retransmit, 3_000_000_000));
        s.add(&ev(EventKind::StateChange, 1_500_000_000));
        let mut with_stack = ev(EventKind::StateChange, 2_000_000_000);
        with_stack.stack_id = Some(4);
        s.add(&with_stack);
        assert_eq!(s.events, 3);
        assert_eq!(s.count(EventKind::StateChange), 2);
        assert_eq!(s.count(EventKind::Retransmit), 1);
        assert_eq!(s.count(EventKind::DestroySock), 0);
        assert_eq!(s.first_mono_ns, Some(1_500_000_000));
        assert_eq!(s.last_mono_ns, Some(3_000_000_000));
        assert_eq!(s.with_stack, 1);
    }

    #[test]
    fn full_report() {
        let mut s = Summary::default();
        s.add(&ev(EventKind::StateChange, 1_500_000_000));
        s.add(&ev(EventKind::Retransmit, 13_845_678_901));
        let out = render_str(&meta(), &s);
        let want = "\
schema version:   1
host:             box1
kernel:           6.8.0-45-generic
boot id:          0f0e0d0c-0b0a-0908-0706-050403020100
start time:       2026-04-14T10:00:00.000000000Z
recorder version: 0.1.0
kernel stacks:    not recorded
first event:      2026-04-14T10:00:00.500000000Z (+0.500000 s after start)
last event:       2026-04-14T10:00:12.845678901Z (+12.845679 s after start)
duration:         12.345679 s (first to last event)
events:           2
lost events:      0
events by kind:
  state_change    1
  retransmit      1
  reset_recv      0
  reset_sent      0
  sock_error      0
  destroy_sock    0
probes:           1 attached, 1 failed
  state_change    tp_btf:inet_sock_set_state   attached
  sock_error      kprobe:sock_def_error_report FAILED: kprobes unavailable
";
        assert_eq!(out, want);
    }

    #[test]
    fn empty_recording_lost_events_and_unknowns() {
        let mut m = meta();
        m.host.clear();
        m.clock = ClockAnchor::default();
        m.lost_events = 42;
        m.kstack = true;
        m.probes.clear();
        let out = render_str(&m, &Summary::default());
        assert!(out.contains("host:             unknown\n"), "{out}");
        assert!(out.contains("start time:       unknown (no clock anchor)\n"));
        assert!(out.contains("duration:         n/a (no events)\n"));
        assert!(out.contains("events:           0\n"));
        assert!(out.contains("lost events:      42 (the ring buffer overflowed"));
        assert!(out.contains("kernel stacks:    recorded (-K), 0 events with a stack\n"));
        assert!(out.contains("probes:           none listed\n"));
        for l in out.lines() {
            assert_eq!(l, l.trim_end());
        }
    }

    #[test]
    fn unfinished_recording_has_unknown_losses() {
        let mut out = Vec::new();
        render(&mut out, &meta(), false, &Summary::default()).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("lost events:      unknown (the recording was not finished cleanly)\n"),
            "{out}"
        );
    }

    #[test]
    fn events_before_the_anchor_are_negative() {
        let mut s = Summary::default();
        s.add(&ev(EventKind::StateChange, 999_000_000));
        let out = render_str(&meta(), &s);
        assert!(out.contains("(-0.001000 s after start)"), "{out}");
        assert!(out.contains("2026-04-14T09:59:59.999000000Z"), "{out}");
    }

    #[test]
    fn v2_lists_every_kind_and_the_snapshot() {
        let mut m = meta();
        m.schema_version = 2;
        m.snapshot_sockets = 3;
        let mut s = Summary::default();
        s.add(&ev(EventKind::RetransmitSynack, 1));
        let out = render_str(&m, &s);
        assert!(out.contains("snapshot sockets: 3\n"), "{out}");
        assert!(out.contains("  retransmit_synack 1\n"), "{out}");
        assert!(out.contains("  state_change      0\n"), "{out}");
        assert_eq!(
            out.lines().filter(|l| l.starts_with("  ") && !l.contains(':')).count(),
            15
        );
        // v1: six kinds, no snapshot line.
        let out = render_str(&meta(), &s);
        assert!(!out.contains("snapshot"), "{out}");
    }

    #[test]
    fn control_characters_from_the_file_are_escaped() {
        let nasty = "\x1b[2J\x1b]0;title\x07\r\u{9b}1m";
        let mut m = meta();
        m.host = format!("box{nasty}");
        m.kernel_release = format!("6.8{nasty}");
        m.boot_id = format!("b{nasty}");
        m.recorder_version = format!("v{nasty}");
        m.probes[0].kind = format!("k{nasty}");
        m.probes[0].probe = format!("p{nasty}");
        m.probes[1].detail = format!("d{nasty}");
        let out = render_str(&m, &Summary::default());
        assert!(
            !out.chars().any(|c| c.is_control() && c != '\n'),
            "{}",
            out.escape_debug()
        );
        let esc = r"\u{1b}[2J\u{1b}]0;title\u{7}\r\u{9b}1m";
        for want in [
            format!("host:             box{esc}\n"),
            format!("kernel:           6.8{esc}\n"),
            format!("boot id:          b{esc}\n"),
            format!("recorder version: v{esc}\n"),
            format!("  k{esc} p{esc} attached\n"),
            format!("FAILED: d{esc}\n"),
        ] {
            assert!(out.contains(&want), "{want}\n{out}");
        }
    }

    #[test]
    fn counts_are_right_aligned() {
        let mut s = Summary::default();
        for _ in 0..10 {
            s.add(&ev(EventKind::StateChange, 1));
        }
        let out = render_str(&meta(), &s);
        assert!(out.contains("  state_change    10\n  retransmit       0\n"), "{out}");
    }
}
