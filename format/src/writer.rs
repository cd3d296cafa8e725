//! Streaming writer: events in, zstd Parquet out.
//!
//! The recorder's drain thread calls [`EventWriter::push`] for every event,
//! so push only appends to typed Arrow builders (no per-event record batch,
//! no per-event allocation; enum columns are dictionary keys into fixed value
//! lists). Every `batch_rows` events the builders become one `RecordBatch`
//! for parquet's `ArrowWriter`, which cuts row groups of `row_group_rows`.
//! [`EventWriter::flush`] ends the current row group so a live file's data
//! sits in complete row groups, and takes a checkpoint (see
//! [`crate::checkpoint`]); only [`EventWriter::finish`] writes the footer
//! that makes the file readable — or, after a failed write,
//! [`EventWriter::close_at_checkpoint`] closes it at the last checkpoint.
//!
//! A recording may also be rotated into numbered segments
//! ([`segment_path`], [`segments`]), each a complete recording.

use std::fs::File;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{
    Int32Builder, Int64Builder, StringBuilder, StringDictionaryBuilder, TimestampNanosecondBuilder, UInt16Builder,
    UInt32Builder, UInt64Builder, UInt8Builder,
};
use arrow_array::types::{UInt32Type, UInt8Type};
use arrow_array::{ArrayRef, DictionaryArray, RecordBatch, StringArray};
use arrow_schema::SchemaRef;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::checkpoint::Output;
use crate::event::{canonical_ip, Event};
use crate::meta::{ClockAnchor, LostInterval, RecordingMeta};
use crate::schema::{self, col, key, TS_TIMEZONE};
use crate::FormatError;

/// Tuning knobs of [`EventWriter`]. The defaults are what the recorder uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterOptions {
    /// Maximum rows per Parquet row group (default 131072). Smaller groups
    /// let DuckDB scan in parallel; much smaller ones cost compression.
    pub row_group_rows: usize,
    /// Rows buffered in Arrow builders before they are encoded (default 8192).
    pub batch_rows: usize,
    /// zstd level (default 1: on recorded churn it encodes 10-15% faster than
    /// 3 for 5% more bytes, and the recorder's CPU time is taken from the
    /// traced workload).
    pub zstd_level: i32,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            row_group_rows: 131_072,
            batch_rows: 8192,
            zstd_level: 1,
        }
    }
}

impl WriterOptions {
    fn validate(&self) -> Result<ZstdLevel, FormatError> {
        if self.row_group_rows == 0 {
            return Err(FormatError::InvalidOptions {
                detail: "row_group_rows must be at least 1".into(),
            });
        }
        if self.batch_rows == 0 {
            return Err(FormatError::InvalidOptions {
                detail: "batch_rows must be at least 1".into(),
            });
        }
        ZstdLevel::try_new(self.zstd_level).map_err(|e| FormatError::InvalidOptions {
            detail: format!("zstd_level {}: {e}", self.zstd_level),
        })
    }
}

/// What a finished file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteSummary {
    /// Rows written.
    pub rows: u64,
    /// File size in bytes, footer included.
    pub bytes: u64,
}

/// Parquet writer properties shared by the event file and the stacks sidecar.
pub(crate) fn base_properties(
    level: ZstdLevel,
    row_group_rows: usize,
) -> parquet::file::properties::WriterPropertiesBuilder {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(row_group_rows))
}

pub(crate) fn to_key_values(kvs: Vec<(String, String)>) -> Vec<KeyValue> {
    kvs.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect()
}

/// Writer properties of a recording: zstd; dictionaries for the text
/// columns; plain integers; and the two time columns, which are
/// monotonically increasing and compress far
/// better as DELTA_BINARY_PACKED.
fn event_properties(meta: &RecordingMeta, opts: &WriterOptions) -> Result<WriterProperties, FormatError> {
    let level = opts.validate()?;
    let mut b = base_properties(level, opts.row_group_rows);
    // Text columns: no min/max statistics. Computing them compares every
    // value's bytes (a third of the encoding time of a row), and min/max of
    // addresses, names or enum strings prune no row group (every group
    // holds a mix); readers filter these columns through the dictionary.
    for c in col::TEXT {
        b = b.set_column_statistics_enabled(ColumnPath::from(c), EnabledStatistics::None);
    }
    // Integer columns: plain, no dictionary. zstd already squeezes their
    // repeats (the files come out smaller than with dictionaries), and a
    // dictionary costs a hash-table lookup per value and column.
    let times = [col::TS, col::MONO_NS];
    for c in col::ALL.iter().filter(|c| !col::TEXT.contains(c) && !times.contains(c)) {
        b = b.set_column_dictionary_enabled(ColumnPath::from(*c), false);
    }
    for c in times {
        b = b
            .set_column_dictionary_enabled(ColumnPath::from(c), false)
            .set_column_encoding(ColumnPath::from(c), Encoding::DELTA_BINARY_PACKED);
    }
    let kvs = schema::metadata_key_values(meta)?;
    Ok(b.set_key_value_metadata(Some(to_key_values(kvs))).build())
}

/// Column builders for one pending batch.
struct Builders {
    ts: TimestampNanosecondBuilder,
    mono_ns: Int64Builder,
    kind: UInt8Builder,
    pid: UInt32Builder,
    tid: UInt32Builder,
    comm: StringDictionaryBuilder<UInt32Type>,
    family: UInt8Builder,
    saddr: StringBuilder,
    daddr: StringBuilder,
    sport: UInt16Builder,
    dport: UInt16Builder,
    oldstate: UInt8Builder,
    newstate: UInt8Builder,
    sk_err: Int32Builder,
    netns: UInt32Builder,
    stack_id: Int64Builder,
    // v2
    probe: UInt8Builder,
    cookie: UInt64Builder,
    cgroup_id: UInt64Builder,
    attribution: UInt8Builder,
    snd_wnd: UInt32Builder,
    rcv_wnd: UInt32Builder,
    srtt_us: UInt32Builder,
    snd_cwnd: UInt32Builder,
    bytes_acked: UInt64Builder,
    bytes_received: UInt64Builder,
    window: UInt32Builder,
}

impl Builders {
    fn new(cap: usize) -> Self {
        // Addresses are mostly IPv4 text, ~12 bytes.
        Builders {
            ts: TimestampNanosecondBuilder::with_capacity(cap).with_timezone(TS_TIMEZONE),
            mono_ns: Int64Builder::with_capacity(cap),
            kind: UInt8Builder::with_capacity(cap),
            pid: UInt32Builder::with_capacity(cap),
            tid: UInt32Builder::with_capacity(cap),
            comm: StringDictionaryBuilder::new(),
            family: UInt8Builder::with_capacity(cap),
            saddr: StringBuilder::with_capacity(cap, cap * 12),
            daddr: StringBuilder::with_capacity(cap, cap * 12),
            sport: UInt16Builder::with_capacity(cap),
            dport: UInt16Builder::with_capacity(cap),
            oldstate: UInt8Builder::with_capacity(cap),
            newstate: UInt8Builder::with_capacity(cap),
            sk_err: Int32Builder::with_capacity(cap),
            netns: UInt32Builder::with_capacity(cap),
            stack_id: Int64Builder::with_capacity(cap),
            probe: UInt8Builder::with_capacity(cap),
            cookie: UInt64Builder::with_capacity(cap),
            cgroup_id: UInt64Builder::with_capacity(cap),
            attribution: UInt8Builder::with_capacity(cap),
            snd_wnd: UInt32Builder::with_capacity(cap),
            rcv_wnd: UInt32Builder::with_capacity(cap),
            srtt_us: UInt32Builder::with_capacity(cap),
            snd_cwnd: UInt32Builder::with_capacity(cap),
            bytes_acked: UInt64Builder::with_capacity(cap),
            bytes_received: UInt64Builder::with_capacity(cap),
            window: UInt32Builder::with_capacity(cap),
        }
    }
}

/// Fixed dictionary values of the enum columns, shared by every batch.
struct EnumValues {
    kind: ArrayRef,
    family: ArrayRef,
    state: ArrayRef,
    attribution: ArrayRef,
}

/// The distinct values of the `probe` column (a `Dictionary(UInt8, Utf8)`):
/// a probe is a small, fixed set of strings per recording, and the recorder
/// hands the same `Arc<str>` for every row of one probe, so finding the key
/// is a pointer comparison over a few entries, no hashing.
///
/// Values persist across batches (each batch's dictionary is the whole
/// list); only when it is full does the writer end the row group and start
/// over, so no row group holds more than [`ProbeDict::CAPACITY`] distinct
/// probes.
#[derive(Default)]
struct ProbeDict {
    values: Vec<Arc<str>>,
    /// `values` as an Arrow array, rebuilt only when `values` changed.
    array: Option<ArrayRef>,
}

impl ProbeDict {
    /// 255, not 256: the parquet crate's reader refuses a column chunk whose
    /// dictionary holds as many values as the key type has codes (it checks
    /// the count, not the largest key), so 255 keeps every row group
    /// readable with the documented `UInt8` keys.
    const CAPACITY: usize = u8::MAX as usize;

    /// The key of `probe`, adding it if new; `None` when the dictionary is full.
    fn key(&mut self, probe: &Arc<str>) -> Option<u8> {
        // Same Arc (the common case) first, then equal text.
        let found = self
            .values
            .iter()
            .position(|v| Arc::ptr_eq(v, probe))
            .or_else(|| self.values.iter().position(|v| **v == **probe));
        let i = match found {
            Some(i) => i,
            None if self.values.len() < Self::CAPACITY => {
                self.values.push(Arc::clone(probe));
                self.array = None;
                self.values.len() - 1
            }
            None => return None,
        };
        u8::try_from(i).ok()
    }

    fn values(&mut self) -> ArrayRef {
        let values = &self.values;
        Arc::clone(
            self.array
                .get_or_insert_with(|| Arc::new(StringArray::from_iter_values(values.iter().map(|v| &**v)))),
        )
    }

    fn clear(&mut self) {
        self.values.clear();
        self.array = None;
    }
}

/// The text of recently written addresses: a direct-mapped cache, so the
/// few addresses a host talks to are formatted once, not once per row
/// (formatting was the costliest step of a push).
struct AddrText {
    slots: Vec<Option<(IpAddr, String)>>,
}

impl AddrText {
    const SLOTS: usize = 256;

    fn new() -> Self {
        AddrText {
            slots: vec![None; Self::SLOTS],
        }
    }

    fn slot(a: &IpAddr) -> usize {
        let folded = match a {
            IpAddr::V4(v4) => u32::from(*v4),
            IpAddr::V6(v6) => {
                let x = u128::from(*v6);
                (x as u32) ^ ((x >> 32) as u32) ^ ((x >> 64) as u32) ^ ((x >> 96) as u32)
            }
        };
        // Fibonacci hashing: the top 8 bits of the product.
        (folded.wrapping_mul(0x9E37_79B9) >> 24) as usize % Self::SLOTS
    }

    /// The canonical text of `addr` (IPv4-mapped IPv6 as IPv4).
    fn text(&mut self, addr: IpAddr) -> &str {
        let addr = canonical_ip(addr);
        let slot = &mut self.slots[Self::slot(&addr)];
        if !matches!(slot, Some((a, _)) if *a == addr) {
            *slot = Some((addr, addr.to_string()));
        }
        slot.as_ref().map_or("", |(_, s)| s.as_str())
    }
}

fn dict(keys: &mut UInt8Builder, values: &ArrayRef) -> Result<ArrayRef, FormatError> {
    let arr = DictionaryArray::<UInt8Type>::try_new(keys.finish(), Arc::clone(values))
        .map_err(|e| FormatError::arrow(None, e))?;
    Ok(Arc::new(arr))
}

/// Most lost intervals a file keeps: beyond that, neighbours are merged
/// pairwise (coarser times, same total), so the metadata stays small.
pub const MAX_LOST_INTERVALS: usize = 1024;

/// Writes one recording. Create with [`EventWriter::new`] (or
/// [`EventWriter::with_checkpoints`]), [`push`](Self::push) events,
/// [`flush`](Self::flush) periodically, and always [`finish`](Self::finish):
/// there is no footer (and so no readable file) without it — dropping the
/// writer leaves an unfinished file (repairable from its checkpoint sidecar
/// when it has one).
///
/// After an error (disk full, I/O error) the writer accepts nothing more;
/// [`close_at_checkpoint`](Self::close_at_checkpoint) then leaves a
/// readable file holding every row up to the last flush.
pub struct EventWriter {
    out: Output,
    schema: SchemaRef,
    clock: ClockAnchor,
    batch_rows: usize,
    b: Builders,
    values: EnumValues,
    probes: ProbeDict,
    addrs: AddrText,
    /// Rows in the builders, not yet handed to `writer`.
    pending: usize,
    rows: u64,
    lost: Vec<LostInterval>,
}

impl EventWriter {
    /// Starts a recording in `file` (which should be empty and opened for
    /// writing). Writes the Parquet header and fixes the metadata known at
    /// start. Checkpoints are kept in memory only (for
    /// [`close_at_checkpoint`](Self::close_at_checkpoint)).
    pub fn new(file: File, meta: &RecordingMeta, opts: WriterOptions) -> Result<Self, FormatError> {
        Self::create(file, None, meta, opts)
    }

    /// Like [`new`](Self::new) for the file at `path`, which errors then
    /// name, and with a checkpoint sidecar ([`crate::checkpoint_path`]) that
    /// every [`flush`](Self::flush) extends, so that a killed recorder's
    /// file can be [`crate::repair`]ed up to its last flush. The sidecar is
    /// created here (mode 0600, never over an existing file or through a
    /// symlink) and removed when the file is closed.
    pub fn with_checkpoints(
        file: File,
        path: &Path,
        meta: &RecordingMeta,
        opts: WriterOptions,
    ) -> Result<Self, FormatError> {
        Self::create(file, Some(path), meta, opts)
    }

    fn create(file: File, path: Option<&Path>, meta: &RecordingMeta, opts: WriterOptions) -> Result<Self, FormatError> {
        let props = event_properties(meta, &opts)?;
        let schema = schema::event_schema();
        let out = Output::new(file, path, Arc::clone(&schema), props, path.is_some())?;
        Ok(EventWriter {
            out,
            schema,
            clock: meta.clock,
            batch_rows: opts.batch_rows,
            b: Builders::new(opts.batch_rows),
            values: EnumValues {
                kind: schema::kind_values(),
                family: schema::family_values(),
                state: schema::state_values(),
                attribution: schema::attribution_values(),
            },
            probes: ProbeDict::default(),
            addrs: AddrText::new(),
            pending: 0,
            rows: 0,
            lost: Vec::new(),
        })
    }

    /// Appends one event. Cheap: values go into column builders; every
    /// `batch_rows` events they are encoded (zstd happens at row-group end).
    pub fn push(&mut self, ev: &Event) -> Result<(), FormatError> {
        // Fallible steps first, so an error leaves all builders at the same length.
        let probe = match self.probes.key(&ev.probe) {
            Some(k) => k,
            None => {
                // 255 distinct probes: end the row group (a reader decodes a
                // column chunk's whole Parquet dictionary into UInt8 keys, so
                // a row group must not hold more), start a new dictionary.
                self.write_batch()?;
                self.out.end_row_group()?;
                self.probes.clear();
                self.probes.key(&ev.probe).unwrap_or(0)
            }
        };
        let b = &mut self.b;
        b.comm.append(&ev.comm).map_err(|e| FormatError::arrow(None, e))?;
        b.ts.append_value(self.clock.wall_ns(ev.mono_ns));
        b.mono_ns.append_value(ev.mono_ns);
        b.kind.append_value(schema::kind_index(ev.kind));
        b.pid.append_value(ev.pid);
        b.tid.append_value(ev.tid);
        b.family.append_value(schema::family_index(ev.family));
        // Writing into a StringBuilder cannot fail (its `write_str` always
        // returns Ok), so the fmt::Result carries no information.
        b.saddr.append_value(self.addrs.text(ev.saddr));
        b.daddr.append_value(self.addrs.text(ev.daddr));
        b.sport.append_value(ev.sport);
        b.dport.append_value(ev.dport);
        b.oldstate.append_option(ev.oldstate.map(schema::state_index));
        b.newstate.append_option(ev.newstate.map(schema::state_index));
        b.sk_err.append_value(ev.sk_err);
        b.netns.append_value(ev.netns);
        b.stack_id.append_option(ev.stack_id);
        b.probe.append_value(probe);
        b.cookie.append_value(ev.cookie);
        b.cgroup_id.append_value(ev.cgroup_id);
        b.attribution.append_value(schema::attribution_index(ev.attribution));
        let t = &ev.tcp;
        b.snd_wnd.append_option(t.snd_wnd);
        b.rcv_wnd.append_option(t.rcv_wnd);
        b.srtt_us.append_option(t.srtt_us);
        b.snd_cwnd.append_option(t.snd_cwnd);
        b.bytes_acked.append_option(t.bytes_acked);
        b.bytes_received.append_option(t.bytes_received);
        b.window.append_option(t.window);
        self.pending += 1;
        self.rows += 1;
        if self.pending >= self.batch_rows {
            self.write_batch()?;
        }
        Ok(())
    }

    /// Encodes the pending builder rows as one record batch.
    fn write_batch(&mut self) -> Result<(), FormatError> {
        if self.pending == 0 {
            return Ok(());
        }
        self.pending = 0;
        let probe_values = self.probes.values();
        // Fresh builders at full capacity: a finished builder starts over
        // empty and would grow by reallocation through the next batch.
        let mut b = std::mem::replace(&mut self.b, Builders::new(self.batch_rows));
        let b = &mut b;
        let v = &self.values;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(b.ts.finish()),
            Arc::new(b.mono_ns.finish()),
            dict(&mut b.kind, &v.kind)?,
            Arc::new(b.pid.finish()),
            Arc::new(b.tid.finish()),
            Arc::new(b.comm.finish()),
            dict(&mut b.family, &v.family)?,
            Arc::new(b.saddr.finish()),
            Arc::new(b.daddr.finish()),
            Arc::new(b.sport.finish()),
            Arc::new(b.dport.finish()),
            dict(&mut b.oldstate, &v.state)?,
            dict(&mut b.newstate, &v.state)?,
            Arc::new(b.sk_err.finish()),
            Arc::new(b.netns.finish()),
            Arc::new(b.stack_id.finish()),
            dict(&mut b.probe, &probe_values)?,
            Arc::new(b.cookie.finish()),
            Arc::new(b.cgroup_id.finish()),
            dict(&mut b.attribution, &v.attribution)?,
            Arc::new(b.snd_wnd.finish()),
            Arc::new(b.rcv_wnd.finish()),
            Arc::new(b.srtt_us.finish()),
            Arc::new(b.snd_cwnd.finish()),
            Arc::new(b.bytes_acked.finish()),
            Arc::new(b.bytes_received.finish()),
            Arc::new(b.window.finish()),
        ];
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns).map_err(|e| FormatError::arrow(None, e))?;
        self.out.write(&batch)
    }

    /// Writes pending rows and ends the current row group, hands the bytes
    /// to the OS and takes a checkpoint (with a sidecar: fsyncs the data,
    /// then appends the checkpoint and fsyncs it). A no-op when nothing was
    /// pushed (and no lost interval added) since the last flush.
    pub fn flush(&mut self) -> Result<(), FormatError> {
        self.write_batch()?;
        self.out.flush()
    }

    /// [`flush`](Self::flush), then fsync the data so flushed row groups
    /// survive a power loss (a writer with a sidecar already does at every
    /// flush that wrote something).
    pub fn sync(&mut self) -> Result<(), FormatError> {
        self.flush()?;
        self.out.sync_data()
    }

    /// Rows pushed so far (including rows not yet encoded).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Rows up to the last checkpoint (the last [`flush`](Self::flush)):
    /// what [`close_at_checkpoint`](Self::close_at_checkpoint) or a repair keeps.
    pub fn checkpointed_rows(&self) -> u64 {
        self.out.checkpointed_rows()
    }

    /// Bytes handed to the writer's output so far (excluding pending rows and
    /// the unflushed row group).
    pub fn bytes_written(&self) -> u64 {
        self.out.bytes_written()
    }

    /// Records that `interval.lost` events were lost in that interval. The
    /// intervals are written at finish (`deeptcp.lost_intervals`) and carried
    /// by the next checkpoint. Beyond [`MAX_LOST_INTERVALS`] neighbours merge.
    pub fn add_lost_interval(&mut self, interval: LostInterval) {
        if interval.lost == 0 {
            return;
        }
        self.lost.push(interval);
        if self.lost.len() > MAX_LOST_INTERVALS {
            self.lost = self
                .lost
                .chunks(2)
                .map(|c| LostInterval {
                    from_mono_ns: c[0].from_mono_ns,
                    to_mono_ns: c[c.len() - 1].to_mono_ns,
                    lost: c.iter().map(|i| i.lost).sum(),
                })
                .collect();
        }
        // Serializing plain integers cannot fail.
        if let Ok(json) = schema::lost_intervals_json(&self.lost) {
            self.out.set_update(key::LOST_INTERVALS, json);
        }
    }

    /// The lost intervals added so far (possibly merged).
    pub fn lost_intervals(&self) -> &[LostInterval] {
        &self.lost
    }

    /// Events in the lost intervals added so far.
    pub fn lost_in_intervals(&self) -> u64 {
        self.lost.iter().map(|i| i.lost).sum()
    }

    /// Flushes, appends `deeptcp.lost_events`, `deeptcp.events` and
    /// `deeptcp.lost_intervals`, writes the footer, fsyncs the file and
    /// removes its checkpoint sidecar. When that fails, the file is closed
    /// at its last checkpoint (best effort, see
    /// [`close_at_checkpoint`](Self::close_at_checkpoint)) and the error
    /// returned; use [`try_finish`](Self::try_finish) to handle that yourself.
    pub fn finish(mut self, lost_events: u64) -> Result<WriteSummary, FormatError> {
        match self.try_finish(lost_events) {
            Ok(s) => Ok(s),
            Err(e) => {
                let _ = self.close_at_checkpoint();
                Err(e)
            }
        }
    }

    /// [`finish`](Self::finish) without the fallback: on error the writer is
    /// left for [`close_at_checkpoint`](Self::close_at_checkpoint).
    pub fn try_finish(&mut self, lost_events: u64) -> Result<WriteSummary, FormatError> {
        self.write_batch()?;
        let mut extra = vec![
            KeyValue::new(key::LOST_EVENTS.to_owned(), lost_events.to_string()),
            KeyValue::new(key::EVENTS.to_owned(), self.rows.to_string()),
        ];
        extra.push(KeyValue::new(
            key::LOST_INTERVALS.to_owned(),
            schema::lost_intervals_json(&self.lost)?,
        ));
        self.out.finish(extra, self.rows)
    }

    /// Closes the file at its last checkpoint (the last successful
    /// [`flush`](Self::flush)): truncates it there and appends the footer of
    /// the rows flushed until then, so it stays a readable recording, and
    /// removes the sidecar. For a writer whose writes failed (disk full, I/O
    /// error). The file then lacks `deeptcp.events`/`deeptcp.lost_events`,
    /// like a repaired one (its lost intervals up to the checkpoint are
    /// kept). Returns what the file holds.
    pub fn close_at_checkpoint(&mut self) -> Result<WriteSummary, FormatError> {
        self.out.close_at_checkpoint()
    }

    /// The path given to [`with_checkpoints`](Self::with_checkpoints).
    pub fn path(&self) -> Option<&Path> {
        self.out.path()
    }
}

/// The file of segment `index` (1-based) of a rotated recording named
/// `recording`: `trace.parquet`, 3 → `trace-000003.parquet`; a name without
/// `.parquet` gets `-000003` appended.
pub fn segment_path(recording: &Path, index: u32) -> PathBuf {
    let name = recording.file_name().and_then(|n| n.to_str()).unwrap_or("");
    match name.strip_suffix(".parquet").filter(|s| !s.is_empty()) {
        Some(stem) => recording.with_file_name(format!("{stem}-{index:06}.parquet")),
        None => {
            let mut s = recording.as_os_str().to_owned();
            s.push(format!("-{index:06}"));
            PathBuf::from(s)
        }
    }
}

/// The files of the recording named `path`, in order: `[path]` when that
/// file exists, otherwise its rotated segments (`record --rotate-size` /
/// `--rotate-secs`: `trace-000001.parquet`, `trace-000002.parquet`, ...)
/// sorted by index; empty when there are neither. Read together, in this
/// order, the segments are the whole recording (each is a complete
/// recording with the same start metadata and its `deeptcp.segment`).
pub fn segments(path: &Path) -> Vec<PathBuf> {
    if std::fs::symlink_metadata(path).is_ok() {
        return vec![path.to_path_buf()];
    }
    segment_files(path)
}

/// The rotated segments of the recording named `path` that exist, sorted by
/// index (whether or not a file named `path` exists too).
pub fn segment_files(path: &Path) -> Vec<PathBuf> {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    let (stem, suffix) = match name.strip_suffix(".parquet").filter(|s| !s.is_empty()) {
        Some(stem) => (stem, ".parquet"),
        None => (name, ""),
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut found: Vec<(u64, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let n = e.file_name();
            let n = n.to_str()?;
            let digits = n.strip_prefix(stem)?.strip_prefix('-')?.strip_suffix(suffix)?;
            if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let index: u64 = digits.parse().ok()?;
            Some((index, path.with_file_name(n)))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}
