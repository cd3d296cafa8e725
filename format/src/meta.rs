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
}
