//! Schema v2: the column layout and key-value metadata of a recording (and
//! what the reader needs to know about v1).
//!
//! This module is the single source of truth for names and types that users'
//! notebooks and SQL depend on (documented in `SCHEMA.md`); the writer and the
//! reader both take them from here, so they cannot drift apart. Changing
//! anything here is a format change: bump [`SCHEMA_VERSION`].

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::columns::{ColumnDef, Stored};
use crate::meta::{ClockAnchor, ProbeStatus, RecordingMeta};
use crate::FormatError;

/// Version of the layout written by this build, stored as `deeptcp.schema_version`.
pub const SCHEMA_VERSION: u32 = 2;

/// Oldest version the reader still reads ([`SCHEMA_VERSION`] is the newest).
/// v1 files lack the v2 columns; the reader fills their defaults.
pub const MIN_SCHEMA_VERSION: u32 = 1;

/// Column names, in file order (the list is [`crate::columns`]'s).
pub mod col {
    use super::{Pick, COLUMNS};

    /// The constants, from the column list.
    macro_rules! names {
        ($( $group:ident { $( $(#[$doc:meta])* $field:ident : $c:ident = $s:ty ),* $(,)? } )*) => {
            $( $( $(#[$doc])* pub const $c: &str = stringify!($field); )* )*
        };
    }
    crate::columns::event_columns!(names);

    /// All columns of schema v1, in file order.
    pub const V1: [&str; Pick::Since(1).count()] = Pick::Since(1).names();

    /// Columns schema v2 appended after [`V1`], in file order.
    pub const ADDED_V2: [&str; Pick::Since(2).count()] = Pick::Since(2).names();

    /// All columns of the current schema (v2), in file order: [`V1`] then [`ADDED_V2`].
    pub const ALL: [&str; COLUMNS.len()] = Pick::All.names();

    /// The text columns (`Utf8` or dictionaries of it), in file order: the
    /// writer dictionary-encodes them and keeps no min/max statistics.
    pub const TEXT: [&str; Pick::Text.count()] = Pick::Text.names();

    /// Columns of the stacks sidecar (`*.stacks.parquet`).
    pub mod stacks {
        /// `Int64`, the key referenced by the recording's `stack_id`.
        pub const STACK_ID: &str = "stack_id";
        /// `List<Utf8>`, innermost frame first.
        pub const FRAMES: &str = "frames";
    }
}

/// Every column of the current schema, in file order.
pub const COLUMNS: &[ColumnDef] = {
    use crate::columns::stores::*;
    macro_rules! defs {
        (
        time {
            $(#[$wm:meta])* $w:ident : $wc:ident = $ws:ty,
            $(#[$mm:meta])* $m:ident : $mc:ident = $ms:ty $(,)?
        }
            v1 { $( $(#[$am:meta])* $a:ident : $ac:ident = $as:ty ),* $(,)? }
            v2 { $( $(#[$bm:meta])* $b:ident : $bc:ident = $bs:ty ),* $(,)? }
            tcp { $( $(#[$tm:meta])* $t:ident : $tc:ident = $ts:ty ),* $(,)? }
        ) => {
            &[
                def::<$ws>(col::$wc, 1, true),
                def::<$ms>(col::$mc, 1, false),
                $( def::<$as>(col::$ac, 1, false), )*
                $( def::<$bs>(col::$bc, 2, false), )*
                $( def::<$ts>(col::$tc, 2, false), )*
            ]
        };
    }
    const fn def<S: Stored>(name: &'static str, since: u32, derived: bool) -> ColumnDef {
        ColumnDef {
            name,
            ty: S::TYPE,
            nullable: S::NULLABLE,
            since,
            derived,
        }
    }
    crate::columns::event_columns!(defs)
};

/// A selection of [`COLUMNS`], for the name lists of [`col`].
#[derive(Clone, Copy)]
enum Pick {
    All,
    Since(u32),
    Text,
}

impl Pick {
    const fn has(self, c: &ColumnDef) -> bool {
        match self {
            Pick::All => true,
            Pick::Since(v) => c.since == v,
            Pick::Text => c.ty.is_text(),
        }
    }

    const fn count(self) -> usize {
        let mut n = 0;
        let mut i = 0;
        while i < COLUMNS.len() {
            if self.has(&COLUMNS[i]) {
                n += 1;
            }
            i += 1;
        }
        n
    }

    /// The names of the columns picked, in file order (`N` = [`count`](Self::count)).
    const fn names<const N: usize>(self) -> [&'static str; N] {
        let mut out = [""; N];
        let (mut i, mut j) = (0, 0);
        while i < COLUMNS.len() {
            if self.has(&COLUMNS[i]) {
                out[j] = COLUMNS[i].name;
                j += 1;
            }
            i += 1;
        }
        out
    }
}

/// Key-value metadata keys. All values are strings.
pub mod key {
    pub const SCHEMA_VERSION: &str = "deeptcp.schema_version";
    pub const HOST: &str = "deeptcp.host";
    pub const KERNEL_RELEASE: &str = "deeptcp.kernel_release";
    pub const BOOT_ID: &str = "deeptcp.boot_id";
    pub const CLOCK_REALTIME_NS: &str = "deeptcp.clock.realtime_ns";
    pub const CLOCK_MONOTONIC_NS: &str = "deeptcp.clock.monotonic_ns";
    pub const RECORDER_VERSION: &str = "deeptcp.recorder_version";
    /// `"true"` / `"false"`.
    pub const KSTACK: &str = "deeptcp.kstack";
    /// JSON array of [`crate::ProbeStatus`].
    pub const PROBES: &str = "deeptcp.probes";
    /// Appended when the recording is finished; absent in a recovered file.
    pub const LOST_EVENTS: &str = "deeptcp.lost_events";
    /// Row count, appended when the recording is finished.
    pub const EVENTS: &str = "deeptcp.events";
    /// Sockets that existed at start, recorded as `snapshot` rows (v2; set at
    /// open; absent = 0).
    pub const SNAPSHOT_SOCKETS: &str = "deeptcp.snapshot_sockets";
    /// JSON array of [`crate::LostInterval`]; appended at finish and carried
    /// in checkpoints (optional; absent = none known).
    pub const LOST_INTERVALS: &str = "deeptcp.lost_intervals";
    /// 1-based index of the file in a rotated recording, decimal (optional;
    /// set at open; absent = the recording is one file).
    pub const SEGMENT: &str = "deeptcp.segment";
    /// JSON array of [`crate::CgroupName`]: cgroup id → path, container,
    /// unit (optional; set by a recorder that resolves names, carried in
    /// checkpoints, appended at finish; absent = no names known).
    pub const CGROUPS: &str = "deeptcp.cgroups";
    /// JSON array of [`crate::NetnsName`]: netns inode → name (optional,
    /// like [`CGROUPS`]).
    pub const NETNS_NAMES: &str = "deeptcp.netns_names";
}

pub use crate::columns::TS_TIMEZONE;

/// The Arrow schema of a recording (schema v2, the one the writer writes), without metadata.
pub fn event_schema() -> SchemaRef {
    let fields: Vec<Field> = COLUMNS
        .iter()
        .map(|c| Field::new(c.name, c.ty.data_type(), c.nullable))
        .collect();
    Arc::new(Schema::new(fields))
}

/// The Arrow schema of the stacks sidecar, without metadata.
pub fn stacks_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(col::stacks::STACK_ID, DataType::Int64, false),
        Field::new(
            col::stacks::FRAMES,
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, false))),
            false,
        ),
    ]))
}

/// The key-value metadata written when a recording is opened (everything but
/// [`key::LOST_EVENTS`], [`key::EVENTS`] and [`key::LOST_INTERVALS`], which
/// are appended at finish). `meta.schema_version`, `meta.lost_events` and
/// `meta.lost_intervals` are ignored.
///
/// Refuses what the reader would refuse: a value longer than its
/// [`value_limit`] or a clock anchor outside `0..=`[`MAX_CLOCK_NS`]. Probe
/// details longer than [`MAX_PROBE_DETAIL_BYTES`] are cut.
pub fn metadata_key_values(meta: &RecordingMeta) -> Result<Vec<(String, String)>, FormatError> {
    let bad = |k: &str, detail: String| FormatError::BadMetadata {
        path: None,
        key: k.to_owned(),
        detail,
    };
    let probes: Vec<ProbeStatus> = meta
        .probes
        .iter()
        .map(|p| ProbeStatus {
            detail: cut(&p.detail, MAX_PROBE_DETAIL_BYTES),
            ..p.clone()
        })
        .collect();
    let probes = serde_json::to_string(&probes).map_err(|e| bad(key::PROBES, e.to_string()))?;
    for (k, v) in [
        (key::CLOCK_REALTIME_NS, meta.clock.realtime_ns),
        (key::CLOCK_MONOTONIC_NS, meta.clock.monotonic_ns),
    ] {
        check_clock(v).map_err(|detail| bad(k, detail))?;
    }
    let mut kvs = vec![
        (key::SCHEMA_VERSION.to_owned(), SCHEMA_VERSION.to_string()),
        (key::HOST.to_owned(), meta.host.clone()),
        (key::KERNEL_RELEASE.to_owned(), meta.kernel_release.clone()),
        (key::BOOT_ID.to_owned(), meta.boot_id.clone()),
        (key::CLOCK_REALTIME_NS.to_owned(), meta.clock.realtime_ns.to_string()),
        (key::CLOCK_MONOTONIC_NS.to_owned(), meta.clock.monotonic_ns.to_string()),
        (key::RECORDER_VERSION.to_owned(), meta.recorder_version.clone()),
        (key::KSTACK.to_owned(), meta.kstack.to_string()),
        (key::PROBES.to_owned(), probes),
        (key::SNAPSHOT_SOCKETS.to_owned(), meta.snapshot_sockets.to_string()),
    ];
    if let Some(segment) = meta.segment {
        kvs.push((key::SEGMENT.to_owned(), segment.to_string()));
    }
    for (k, v) in &kvs {
        let limit = value_limit(k);
        if v.len() > limit {
            return Err(bad(
                k,
                format!("the value is {} bytes, at most {limit} are allowed", v.len()),
            ));
        }
    }
    Ok(kvs)
}

/// `s`, cut to at most `max` bytes (at a character boundary, then `...`).
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// A clock anchor's range check (see [`MAX_CLOCK_NS`]).
fn check_clock(v: i64) -> Result<i64, String> {
    if (0..=MAX_CLOCK_NS).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is out of range (0 to {MAX_CLOCK_NS} ns)"))
    }
}

/// `deeptcp.lost_intervals` as stored.
pub(crate) fn lost_intervals_json(intervals: &[crate::LostInterval]) -> Result<String, FormatError> {
    serde_json::to_string(intervals).map_err(|e| FormatError::BadMetadata {
        path: None,
        key: key::LOST_INTERVALS.to_owned(),
        detail: e.to_string(),
    })
}

/// Longest value of a `deeptcp.*` metadata key the reader accepts (and the
/// writer writes), in bytes, except for the two keys below: host names,
/// kernel releases, boot ids, versions and numbers are far shorter.
pub const MAX_VALUE_BYTES: usize = 1 << 10;
/// Longest `deeptcp.probes` value (JSON of some 40 probes, each detail cut
/// to [`MAX_PROBE_DETAIL_BYTES`] when writing).
pub const MAX_PROBES_BYTES: usize = 64 << 10;
/// Longest `deeptcp.cgroups` value (JSON); the writer leaves out the
/// cgroups that would not fit (the first ones known stay).
pub const MAX_CGROUPS_BYTES: usize = 256 << 10;
/// Longest `deeptcp.netns_names` value (JSON), likewise.
pub const MAX_NETNS_NAMES_BYTES: usize = 64 << 10;
/// Most lost intervals a file keeps: beyond that, neighbours are merged
/// pairwise (coarser times, same total), so the metadata stays small.
pub const MAX_LOST_INTERVALS: usize = 1024;
/// Longest `deeptcp.lost_intervals` value (JSON of at most
/// [`MAX_LOST_INTERVALS`] intervals).
pub const MAX_LOST_INTERVALS_BYTES: usize = 256 << 10;
/// Most bytes of `deeptcp.*` keys and values in one file, all together.
pub const MAX_METADATA_BYTES: usize = 1 << 20;
/// Longest probe `detail` the writer stores; longer ones are cut (at a
/// character boundary, marked with `...`).
pub const MAX_PROBE_DETAIL_BYTES: usize = 1 << 10;

/// Largest clock anchor accepted, in nanoseconds (2^62: 146 years of
/// uptime for `monotonic_ns`, the year 2116 for `realtime_ns`); anchors are
/// never negative. Real clocks are far inside this range, and a crafted
/// anchor outside it (`monotonic_ns` = `i64::MIN`) would push every `ts`
/// to the limit of the type.
pub const MAX_CLOCK_NS: i64 = 1 << 62;

/// The longest value accepted for metadata key `key` (see [`MAX_VALUE_BYTES`]).
pub fn value_limit(key: &str) -> usize {
    match key {
        key::PROBES => MAX_PROBES_BYTES,
        key::LOST_INTERVALS => MAX_LOST_INTERVALS_BYTES,
        key::CGROUPS => MAX_CGROUPS_BYTES,
        key::NETNS_NAMES => MAX_NETNS_NAMES_BYTES,
        _ => MAX_VALUE_BYTES,
    }
}

/// The `deeptcp.*` key-value metadata as a map; a duplicated key keeps its
/// LAST value (values appended at finish override those set at open). Keys
/// without a value are dropped; other tools' keys are ignored. A value
/// longer than its [`value_limit`], or more than [`MAX_METADATA_BYTES`] in
/// all, is an error: such values would be printed on every line of
/// `analyze --json`, and no recorder writes them.
pub(crate) fn kv_map(
    path: &Path,
    kvs: Option<&Vec<parquet::file::metadata::KeyValue>>,
) -> Result<HashMap<String, String>, FormatError> {
    let mut map = HashMap::new();
    let mut total = 0usize;
    for kv in kvs.into_iter().flatten() {
        if !kv.key.starts_with("deeptcp.") {
            continue;
        }
        let len = kv.value.as_ref().map_or(0, String::len);
        let limit = value_limit(&kv.key);
        if len > limit {
            return Err(FormatError::BadMetadata {
                path: Some(path.to_path_buf()),
                key: key_name(&kv.key),
                detail: format!(
                    "the value is {len} bytes, at most {limit} are allowed (see SCHEMA.md); the file is damaged or was crafted"
                ),
            });
        }
        total = total.saturating_add(kv.key.len()).saturating_add(len);
        if total > MAX_METADATA_BYTES {
            return Err(FormatError::BadMetadata {
                path: Some(path.to_path_buf()),
                key: key_name(&kv.key),
                detail: format!(
                    "more than {MAX_METADATA_BYTES} bytes of deeptcp metadata in all (see SCHEMA.md); the file is damaged or was crafted"
                ),
            });
        }
        match &kv.value {
            Some(v) => {
                map.insert(kv.key.clone(), v.clone());
            }
            None => {
                map.remove(&kv.key);
            }
        }
    }
    Ok(map)
}

/// A metadata key from a file as an error message names it: as it is, or
/// quoted and cut short when it is long or holds control characters.
fn key_name(k: &str) -> String {
    if k.len() <= 64 && !k.chars().any(char::is_control) {
        k.to_owned()
    } else {
        shown(k)
    }
}

/// A value from a file, quoted and cut short for an error message.
pub(crate) fn shown(s: &str) -> String {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return format!("{s:?}");
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}...", &s[..end])
}

/// Checks `deeptcp.schema_version`: absent → not a recording; outside
/// [`MIN_SCHEMA_VERSION`]`..=`[`SCHEMA_VERSION`] → unsupported.
pub(crate) fn check_version(path: &Path, kv: &HashMap<String, String>) -> Result<u32, FormatError> {
    let Some(raw) = kv.get(key::SCHEMA_VERSION) else {
        return Err(FormatError::NotRecording {
            path: path.to_path_buf(),
        });
    };
    let found: u32 = raw.trim().parse().map_err(|_| FormatError::BadMetadata {
        path: Some(path.to_path_buf()),
        key: key::SCHEMA_VERSION.to_owned(),
        detail: format!("expected an unsigned integer, found {}", shown(raw)),
    })?;
    if !(MIN_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&found) {
        return Err(FormatError::UnsupportedVersion {
            path: path.to_path_buf(),
            found,
            oldest: MIN_SCHEMA_VERSION,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(found)
}

/// Decoded recording metadata plus whether the finish-time keys were present.
pub(crate) struct DecodedMeta {
    pub meta: RecordingMeta,
    /// `deeptcp.events`, present only in a cleanly finished file.
    pub events: Option<u64>,
}

/// Parses the recording metadata (after [`check_version`] succeeded).
pub(crate) fn decode_metadata(
    path: &Path,
    kv: &HashMap<String, String>,
    schema_version: u32,
) -> Result<DecodedMeta, FormatError> {
    let required = |k: &str| -> Result<&String, FormatError> {
        kv.get(k).ok_or_else(|| FormatError::MissingMetadata {
            path: path.to_path_buf(),
            key: k.to_owned(),
        })
    };
    let bad = |k: &str, detail: String| FormatError::BadMetadata {
        path: Some(path.to_path_buf()),
        key: k.to_owned(),
        detail,
    };
    let clock = |k: &str| -> Result<i64, FormatError> {
        let raw = required(k)?;
        let v = raw
            .trim()
            .parse::<i64>()
            .map_err(|_| bad(k, format!("expected an integer, found {}", shown(raw))))?;
        check_clock(v).map_err(|detail| bad(k, detail))
    };
    let opt_u64 = |k: &str| -> Result<Option<u64>, FormatError> {
        kv.get(k)
            .map(|raw| {
                raw.trim()
                    .parse::<u64>()
                    .map_err(|_| bad(k, format!("expected an unsigned integer, found {}", shown(raw))))
            })
            .transpose()
    };

    let kstack_raw = required(key::KSTACK)?;
    let kstack = match kstack_raw.trim() {
        "true" => true,
        "false" => false,
        other => {
            return Err(bad(
                key::KSTACK,
                format!("expected \"true\" or \"false\", found {}", shown(other)),
            ))
        }
    };
    let probes: Vec<ProbeStatus> = serde_json::from_str(required(key::PROBES)?)
        .map_err(|e| bad(key::PROBES, format!("invalid probes JSON: {e}")))?;
    let lost_intervals: Vec<crate::LostInterval> = match kv.get(key::LOST_INTERVALS) {
        Some(raw) => serde_json::from_str(raw)
            .map_err(|e| bad(key::LOST_INTERVALS, format!("invalid lost intervals JSON: {e}")))?,
        None => Vec::new(),
    };
    let segment = match kv.get(key::SEGMENT) {
        Some(raw) => Some(raw.trim().parse::<u32>().map_err(|_| {
            bad(
                key::SEGMENT,
                format!("expected an unsigned integer, found {}", shown(raw)),
            )
        })?),
        None => None,
    };

    let meta = RecordingMeta {
        schema_version,
        host: required(key::HOST)?.clone(),
        kernel_release: required(key::KERNEL_RELEASE)?.clone(),
        boot_id: required(key::BOOT_ID)?.clone(),
        clock: ClockAnchor {
            realtime_ns: clock(key::CLOCK_REALTIME_NS)?,
            monotonic_ns: clock(key::CLOCK_MONOTONIC_NS)?,
        },
        recorder_version: required(key::RECORDER_VERSION)?.clone(),
        probes,
        lost_events: opt_u64(key::LOST_EVENTS)?.unwrap_or(0),
        kstack,
        snapshot_sockets: opt_u64(key::SNAPSHOT_SOCKETS)?.unwrap_or(0),
        lost_intervals,
        segment,
    };
    Ok(DecodedMeta {
        meta,
        events: opt_u64(key::EVENTS)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_writer_writes_fits_the_limits() {
        // The most lost intervals a writer keeps, with the longest numbers.
        let worst = crate::LostInterval {
            from_mono_ns: i64::MIN,
            to_mono_ns: i64::MIN,
            lost: u64::MAX,
        };
        let json = lost_intervals_json(&vec![worst; MAX_LOST_INTERVALS]).unwrap();
        assert!(json.len() <= MAX_LOST_INTERVALS_BYTES, "{}", json.len());
        // Long probe details are cut, on a character boundary.
        let meta = RecordingMeta {
            probes: vec![
                ProbeStatus {
                    detail: "é".repeat(5000),
                    ..Default::default()
                };
                40
            ],
            ..Default::default()
        };
        let kvs = metadata_key_values(&meta).unwrap();
        let (_, probes) = kvs.iter().find(|(k, _)| k == key::PROBES).unwrap();
        assert!(probes.len() <= MAX_PROBES_BYTES, "{}", probes.len());
        let back: Vec<ProbeStatus> = serde_json::from_str(probes).unwrap();
        assert!(back[0].detail.len() <= MAX_PROBE_DETAIL_BYTES && back[0].detail.ends_with("é..."));
        // Everything at its limit stays under the total.
        let total = MAX_PROBES_BYTES
            + MAX_LOST_INTERVALS_BYTES
            + MAX_CGROUPS_BYTES
            + MAX_NETNS_NAMES_BYTES
            + 16 * (MAX_VALUE_BYTES + 64);
        assert!(total <= MAX_METADATA_BYTES);
    }

    #[test]
    fn schema_columns_in_documented_order() {
        let s = event_schema();
        let names: Vec<&str> = s.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, col::ALL);
        let v1_then_v2: Vec<&str> = col::V1.iter().chain(col::ADDED_V2.iter()).copied().collect();
        assert_eq!(v1_then_v2, col::ALL);
    }

    #[test]
    fn shown_truncates_on_char_boundary() {
        let s = "é".repeat(100);
        let out = shown(&s);
        assert!(out.ends_with("..."));
        assert!(out.len() < 80);
        assert_eq!(shown("ok"), "\"ok\"");
    }

    /// The backticked words of `s`.
    fn quoted(s: &str) -> Vec<&str> {
        s.split('`').skip(1).step_by(2).collect()
    }

    #[test]
    fn schema_md_documents_the_columns() {
        let doc = include_str!("../SCHEMA.md");
        let table = doc
            .split("\n## Columns\n")
            .nth(1)
            .and_then(|rest| rest.split("| column | Arrow type |").nth(1))
            .expect("SCHEMA.md has a Columns table");
        let documented: Vec<(String, String, bool, u32)> = table
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                assert_eq!(cells.len(), 10, "{l}");
                let null = match cells[7] {
                    "yes" => true,
                    "no" => false,
                    other => panic!("null is {other:?} in {l}"),
                };
                let since = cells[8].parse().unwrap_or_else(|_| panic!("since in {l}"));
                (quoted(cells[1]).concat(), quoted(cells[2]).concat(), null, since)
            })
            .collect();
        let declared: Vec<(String, String, bool, u32)> = COLUMNS
            .iter()
            .map(|c| (c.name.to_owned(), c.ty.data_type().to_string(), c.nullable, c.since))
            .collect();
        assert_eq!(documented, declared, "SCHEMA.md's column table and columns.rs disagree");
        // The list of dictionary-encoded text columns in its encoding notes.
        let text = doc
            .split("the text columns (")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .expect("SCHEMA.md lists the text columns");
        assert_eq!(quoted(text), col::TEXT);
    }
}
