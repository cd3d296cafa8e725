//! Recording-level metadata, stored as Parquet key-value metadata.

use serde::{Deserialize, Serialize};

/// CLOCK_REALTIME and CLOCK_MONOTONIC sampled back to back at recording start:
/// `ts = realtime_ns + (mono_ns - monotonic_ns)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClockAnchor {
    pub realtime_ns: i64,
    pub monotonic_ns: i64,
}

impl ClockAnchor {
    /// Wall-clock nanoseconds since the Unix epoch for a monotonic timestamp.
    pub fn wall_ns(&self, mono_ns: i64) -> i64 {
        self.realtime_ns
            .saturating_add(mono_ns.saturating_sub(self.monotonic_ns))
    }
}

/// One probe the recorder tried to attach.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProbeStatus {
    /// Event kind the probe feeds (`EventKind::as_str`).
    pub kind: String,
    /// Probe, as `type:category/name`, e.g. `tp_btf:inet_sock_set_state`.
    pub probe: String,
    pub attached: bool,
    /// Why it did not attach (empty when attached).
    pub detail: String,
    /// Position of this probe in its event kind's fallback ladder: 0 = first
    /// choice, 1 = first fallback, ... (v2; 0 when absent from the JSON).
    #[serde(default)]
    pub rung: u32,
    /// Whether this rung is the one producing the kind's rows (v2; `false`
    /// when absent from the JSON, as in every v1 file).
    #[serde(default)]
    pub used: bool,
}

/// Everything about a recording that is not a row.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordingMeta {
    /// Schema version of the file (the reader fills it; the writer always writes [`crate::SCHEMA_VERSION`]).
    pub schema_version: u32,
    pub host: String,
    pub kernel_release: String,
    /// `/proc/sys/kernel/random/boot_id`: monotonic timestamps compare only within one boot.
    pub boot_id: String,
    pub clock: ClockAnchor,
    /// `record` version that wrote the file.
    pub recorder_version: String,
    pub probes: Vec<ProbeStatus>,
    /// Events the kernel could not hand over (ring buffer full), known at close.
    pub lost_events: u64,
    /// Whether kernel stacks were requested (`-K`).
    pub kstack: bool,
    /// Sockets that already existed when recording started, each recorded as
    /// one `snapshot` row (`deeptcp.snapshot_sockets`, written at open; 0 in
    /// v1 files and when the key is absent).
    pub snapshot_sockets: u64,
    /// When events were lost (`deeptcp.lost_intervals`): the recorder samples
    /// the kernel's lost counter about once a second and keeps each interval
    /// in which it grew. Written at close (and into checkpoints, so a
    /// repaired file keeps the losses up to its last checkpoint); empty when
    /// the key is absent (files of older recorders) or nothing was lost. The
    /// writer ignores this field: add intervals with
    /// [`crate::EventWriter::add_lost_interval`].
    pub lost_intervals: Vec<LostInterval>,
    /// Position of this file in a rotated recording (`deeptcp.segment`,
    /// 1-based; `record --rotate-size/--rotate-secs`), `None` for a
    /// recording in one file. See [`crate::segments`].
    pub segment: Option<u32>,
}

/// Events the kernel could not hand over between two samples of the lost
/// counter, CLOCK_MONOTONIC nanoseconds like `mono_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LostInterval {
    pub from_mono_ns: i64,
    pub to_mono_ns: i64,
    pub lost: u64,
}

impl LostInterval {
    /// Seconds from the recording start (`clock.monotonic_ns`, the origin
    /// of `analyze -t`) to the start and the end of the interval.
    pub fn offsets_s(&self, clock: &ClockAnchor) -> (f64, f64) {
        let s = |mono: i64| mono.saturating_sub(clock.monotonic_ns) as f64 / 1e9;
        (s(self.from_mono_ns), s(self.to_mono_ns))
    }

    /// One line for users, times relative to the recording start:
    /// `1234 events lost between +3.200000 s and +4.200000 s (ring buffer full)`.
    /// Wall-clock times are `clock.wall_ns(from_mono_ns)` / `clock.wall_ns(to_mono_ns)`.
    pub fn describe(&self, clock: &ClockAnchor) -> String {
        let (a, b) = self.offsets_s(clock);
        let what = if self.lost == 1 { "event" } else { "events" };
        format!(
            "{} {what} lost between {a:+.6} s and {b:+.6} s (ring buffer full)",
            self.lost
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_status_json_old_and_new() {
        // as schema v1 files carry it: no rung/used
        let old = r#"[{"kind":"state_change","probe":"tp_btf:inet_sock_set_state","attached":true,"detail":""}]"#;
        let p: Vec<ProbeStatus> = serde_json::from_str(old).unwrap();
        assert_eq!(
            p,
            [ProbeStatus {
                kind: "state_change".into(),
                probe: "tp_btf:inet_sock_set_state".into(),
                attached: true,
                detail: String::new(),
                rung: 0,
                used: false,
            }]
        );
        let new = ProbeStatus {
            kind: "fin_recv".into(),
            probe: "kprobe:tcp_fin".into(),
            attached: true,
            detail: String::new(),
            rung: 1,
            used: true,
        };
        let json = serde_json::to_string(&new).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"fin_recv","probe":"kprobe:tcp_fin","attached":true,"detail":"","rung":1,"used":true}"#
        );
        assert_eq!(serde_json::from_str::<ProbeStatus>(&json).unwrap(), new);
    }

    #[test]
    fn lost_interval_json_and_description() {
        let i = LostInterval {
            from_mono_ns: 8_200_000_000,
            to_mono_ns: 9_200_000_000,
            lost: 1234,
        };
        let json = serde_json::to_string(&[i]).unwrap();
        assert_eq!(
            json,
            r#"[{"from_mono_ns":8200000000,"to_mono_ns":9200000000,"lost":1234}]"#
        );
        assert_eq!(serde_json::from_str::<Vec<LostInterval>>(&json).unwrap(), [i]);
        let clock = ClockAnchor {
            realtime_ns: 1_700_000_000_000_000_000,
            monotonic_ns: 5_000_000_000,
        };
        assert_eq!(
            i.describe(&clock),
            "1234 events lost between +3.200000 s and +4.200000 s (ring buffer full)"
        );
        let one = LostInterval { lost: 1, ..i };
        assert!(one.describe(&clock).starts_with("1 event lost between"));
    }
}
