//! Streaming writer: events in, zstd Parquet out.
//!
//! The recorder's drain thread calls [`EventWriter::push`] for every event,
//! so push only appends to typed Arrow builders (no per-event record batch,
//! no per-event allocation; enum columns are dictionary keys into fixed value
//! lists). Every `batch_rows` events the builders become one `RecordBatch`
//! for the Parquet writer (parquet's Arrow column writers, with a CRC32 in
//! every page header: see `pagecrc`), which cuts row groups of
//! `row_group_rows`.
//! [`EventWriter::flush`] ends the current row group so a live file's data
//! sits in complete row groups, and takes a checkpoint (see
//! [`crate::checkpoint`]); only [`EventWriter::finish`] writes the footer
//! that makes the file readable — or, after a failed write,
//! [`EventWriter::close_at_checkpoint`] closes it at the last checkpoint.
//!
//! A recording may also be rotated into numbered segments
//! ([`segment_path`], [`segments`]), each a complete recording.

use std::collections::HashMap;
use std::fs::File;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::types::{
    ArrowPrimitiveType, Int32Type, Int64Type, TimestampNanosecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{ArrayRef, DictionaryArray, PrimitiveArray, RecordBatch, StringArray};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
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
    /// Rows buffered before they are encoded as one record batch (default
    /// 32768: fewer, larger batches spread parquet's per-batch work).
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
            batch_rows: 32_768,
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
/// columns; delta-packed integers except the ports (plain); parquet's
/// mini-batches as large as our record batches (`write_batch_size`: it
/// checks page sizes once per mini-batch, 1024 rows by default).
fn event_properties(meta: &RecordingMeta, opts: &WriterOptions) -> Result<WriterProperties, FormatError> {
    let level = opts.validate()?;
    let mut b = base_properties(level, opts.row_group_rows).set_write_batch_size(8192);
    // Text columns: no min/max statistics. Computing them compares every
    // value's bytes (a third of the encoding time of a row), and min/max of
    // addresses, names or enum strings prune no row group (every group
    // holds a mix); readers filter these columns through the dictionary.
    for c in col::TEXT {
        b = b.set_column_statistics_enabled(ColumnPath::from(c), EnabledStatistics::None);
    }
    // Integer columns: no dictionary (a hash-table lookup per value and
    // column). DELTA_BINARY_PACKED for all but the ports: the time columns
    // increase monotonically, and most others are constant or nearly so
    // over long runs (pid, netns, cgroup_id, sk_err, windows, counters), so
    // delta packing shrinks them to bits per value before zstd sees them.
    // zstd's time grows with its input, so on recorded churn this costs 8%
    // fewer instructions per row than plain values, and the file is 9%
    // smaller. Ports jump both ways between connections: plain, zstd
    // squeezes those better (delta doubles their size).
    let plain = [col::SPORT, col::DPORT];
    for c in col::ALL.iter().filter(|c| !col::TEXT.contains(c)) {
        b = b.set_column_dictionary_enabled(ColumnPath::from(*c), false);
        if !plain.contains(c) {
            b = b.set_column_encoding(ColumnPath::from(*c), Encoding::DELTA_BINARY_PACKED);
        }
    }
    let kvs = schema::metadata_key_values(meta)?;
    Ok(b.set_key_value_metadata(Some(to_key_values(kvs))).build())
}

/// The validity of one nullable column of a pending batch: a bitmap that
/// becomes the array's null buffer, or none at all when every row is set.
#[derive(Default)]
struct Validity {
    words: Vec<u64>,
    nulls: usize,
}

impl Validity {
    fn with_capacity(cap: usize) -> Self {
        Validity {
            words: Vec::with_capacity(cap.div_ceil(64)),
            nulls: 0,
        }
    }

    /// Records row `row` (rows come in order, from 0).
    #[inline]
    fn push(&mut self, row: usize, valid: bool) {
        if row.is_multiple_of(64) {
            self.words.push(0);
        }
        if valid {
            if let Some(w) = self.words.last_mut() {
                *w |= 1 << (row % 64);
            }
        } else {
            self.nulls += 1;
        }
    }

    fn finish(&mut self, len: usize, cap: usize) -> Option<NullBuffer> {
        let words = take(&mut self.words, cap.div_ceil(64));
        let nulls = std::mem::take(&mut self.nulls);
        (nulls > 0).then(|| NullBuffer::new(BooleanBuffer::new(Buffer::from_vec(words), 0, len)))
    }
}

/// A nullable primitive column of a pending batch.
#[derive(Default)]
struct NullCol<T> {
    values: Vec<T>,
    valid: Validity,
}

impl<T: Default + Copy> NullCol<T> {
    fn with_capacity(cap: usize) -> Self {
        NullCol {
            values: Vec::with_capacity(cap),
            valid: Validity::with_capacity(cap),
        }
    }

    #[inline]
    fn push(&mut self, v: Option<T>) {
        self.valid.push(self.values.len(), v.is_some());
        self.values.push(v.unwrap_or_default());
    }

    fn finish(&mut self, cap: usize) -> (Vec<T>, Option<NullBuffer>) {
        let len = self.values.len();
        let nulls = self.valid.finish(len, cap);
        (take(&mut self.values, cap), nulls)
    }
}

/// The pending rows, column by column: plain vectors that become Arrow
/// arrays without a copy (`Buffer::from_vec`). Arrow's builders cost a
/// validity-bitmap update per value even on columns that cannot be null;
/// here only the nullable columns keep one, and a batch without nulls gets
/// no null buffer at all (which also spares parquet the level scan).
struct Builders {
    ts: Vec<i64>,
    mono_ns: Vec<i64>,
    kind: Vec<u8>,
    pid: Vec<u32>,
    tid: Vec<u32>,
    comm: Vec<u32>,
    family: Vec<u8>,
    /// Text of `saddr`/`daddr`: offsets into `*_bytes`.
    saddr: Vec<i32>,
    saddr_bytes: Vec<u8>,
    daddr: Vec<i32>,
    daddr_bytes: Vec<u8>,
    sport: Vec<u16>,
    dport: Vec<u16>,
    oldstate: NullCol<u8>,
    newstate: NullCol<u8>,
    sk_err: Vec<i32>,
    netns: Vec<u32>,
    stack_id: NullCol<i64>,
    // v2
    probe: Vec<u8>,
    cookie: Vec<u64>,
    cgroup_id: Vec<u64>,
    attribution: Vec<u8>,
    snd_wnd: NullCol<u32>,
    rcv_wnd: NullCol<u32>,
    srtt_us: NullCol<u32>,
    snd_cwnd: NullCol<u32>,
    bytes_acked: NullCol<u64>,
    bytes_received: NullCol<u64>,
    window: NullCol<u32>,
}

/// `v` as a vector of `cap` capacity, taking its contents.
fn take<T>(v: &mut Vec<T>, cap: usize) -> Vec<T> {
    std::mem::replace(v, Vec::with_capacity(cap))
}

fn offsets_with_capacity(cap: usize) -> Vec<i32> {
    let mut v = Vec::with_capacity(cap + 1);
    v.push(0);
    v
}

impl Builders {
    fn new(cap: usize) -> Self {
        // Addresses are mostly IPv4 text, ~12 bytes.
        Builders {
            ts: Vec::with_capacity(cap),
            mono_ns: Vec::with_capacity(cap),
            kind: Vec::with_capacity(cap),
            pid: Vec::with_capacity(cap),
            tid: Vec::with_capacity(cap),
            comm: Vec::with_capacity(cap),
            family: Vec::with_capacity(cap),
            saddr: offsets_with_capacity(cap),
            saddr_bytes: Vec::with_capacity(cap * 12),
            daddr: offsets_with_capacity(cap),
            daddr_bytes: Vec::with_capacity(cap * 12),
            sport: Vec::with_capacity(cap),
            dport: Vec::with_capacity(cap),
            oldstate: NullCol::with_capacity(cap),
            newstate: NullCol::with_capacity(cap),
            sk_err: Vec::with_capacity(cap),
            netns: Vec::with_capacity(cap),
            stack_id: NullCol::with_capacity(cap),
            probe: Vec::with_capacity(cap),
            cookie: Vec::with_capacity(cap),
            cgroup_id: Vec::with_capacity(cap),
            attribution: Vec::with_capacity(cap),
            snd_wnd: NullCol::with_capacity(cap),
            rcv_wnd: NullCol::with_capacity(cap),
            srtt_us: NullCol::with_capacity(cap),
            snd_cwnd: NullCol::with_capacity(cap),
            bytes_acked: NullCol::with_capacity(cap),
            bytes_received: NullCol::with_capacity(cap),
            window: NullCol::with_capacity(cap),
        }
    }
}

fn prim<T: ArrowPrimitiveType>(values: Vec<T::Native>, nulls: Option<NullBuffer>) -> PrimitiveArray<T> {
    PrimitiveArray::<T>::new(ScalarBuffer::from(values), nulls)
}

/// A `Utf8` array of the text appended to `offsets`/`bytes` (see [`push_text`]).
fn text_array(offsets: &mut Vec<i32>, bytes: &mut Vec<u8>, cap: usize) -> Result<ArrayRef, FormatError> {
    let offsets = std::mem::replace(offsets, offsets_with_capacity(cap));
    let bytes = take(bytes, cap * 12);
    let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
    let arr = StringArray::try_new(offsets, Buffer::from_vec(bytes), None).map_err(|e| FormatError::arrow(None, e))?;
    Ok(Arc::new(arr))
}

/// Appends `text` to a column of offsets into `bytes`. A batch holds far
/// less than 2 GiB of text, so an offset beyond `i32` cannot happen; it
/// would be caught by [`text_array`]'s validation, not wrap silently.
#[inline]
fn push_text(offsets: &mut Vec<i32>, bytes: &mut Vec<u8>, text: &str) {
    bytes.extend_from_slice(text.as_bytes());
    offsets.push(i32::try_from(bytes.len()).unwrap_or(i32::MAX));
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
        values_array(&self.values, &mut self.array)
    }

    fn clear(&mut self) {
        self.values.clear();
        self.array = None;
    }
}

/// The distinct values of the `comm` column (a `Dictionary(UInt32, Utf8)`).
/// The recorder shares one `Arc<str>` per distinct comm, so the key of a
/// row is found by the address of its text in a small direct-mapped cache,
/// without hashing the string (Arrow's dictionary builder hashed it per
/// row); a miss falls back to a map by text.
///
/// Values persist across batches (each batch's dictionary array is the
/// whole list, rebuilt only when it grew; parquet writes only the values a
/// row group uses). The list is started over at a batch boundary once it
/// holds [`CommDict::MAX_VALUES`], so it stays small however many
/// programs a long recording sees.
struct CommDict {
    values: Vec<Arc<str>>,
    by_text: HashMap<Arc<str>, u32>,
    /// (address of the text, key); only addresses of `values`' entries,
    /// which `values` keeps alive, so a match is always the same text.
    slots: Vec<(usize, u32)>,
    array: Option<ArrayRef>,
}

impl CommDict {
    const SLOTS: usize = 64;
    const MAX_VALUES: usize = 1 << 16;

    fn new() -> Self {
        CommDict {
            values: Vec::new(),
            by_text: HashMap::new(),
            slots: vec![(0, 0); Self::SLOTS],
            array: None,
        }
    }

    #[inline]
    fn key(&mut self, comm: &Arc<str>) -> u32 {
        let addr = Arc::as_ptr(comm).cast::<u8>() as usize;
        // Allocations are at least 8-byte aligned: drop the low bits.
        let slot = (addr >> 4) % Self::SLOTS;
        if let Some((a, k)) = self.slots.get(slot) {
            if *a == addr {
                return *k;
            }
        }
        let key = match self.by_text.get(comm) {
            Some(k) => *k,
            None => {
                let k = u32::try_from(self.values.len()).unwrap_or(u32::MAX);
                self.values.push(Arc::clone(comm));
                self.by_text.insert(Arc::clone(comm), k);
                self.array = None;
                k
            }
        };
        // Only an Arc held by `values` may enter the cache (another one
        // with the same text could be freed and its address reused).
        if let Some(v) = self.values.get(key as usize) {
            if Arc::ptr_eq(v, comm) {
                self.slots[slot] = (addr, key);
            }
        }
        key
    }

    fn values(&mut self) -> ArrayRef {
        values_array(&self.values, &mut self.array)
    }

    /// Starts over when the list grew large (call between batches).
    fn trim(&mut self) {
        if self.values.len() >= Self::MAX_VALUES {
            self.values.clear();
            self.by_text.clear();
            self.slots.fill((0, 0));
            self.array = None;
        }
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

/// `values` as an Arrow array (the dictionary of one batch), built only when
/// `cache` was emptied because `values` changed.
fn values_array(values: &[Arc<str>], cache: &mut Option<ArrayRef>) -> ArrayRef {
    Arc::clone(cache.get_or_insert_with(|| Arc::new(StringArray::from_iter_values(values.iter().map(|v| &**v)))))
}

fn dict(keys: Vec<u8>, nulls: Option<NullBuffer>, values: &ArrayRef) -> Result<ArrayRef, FormatError> {
    let arr = DictionaryArray::<UInt8Type>::try_new(prim(keys, nulls), Arc::clone(values))
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
    comms: CommDict,
    addrs: AddrText,
    /// Rows in the builders, not yet handed to `writer`.
    pending: usize,
    rows: u64,
    lost: Vec<LostInterval>,
    /// `deeptcp.segment` to write at finish (see [`set_segment`](Self::set_segment)).
    segment: Option<u32>,
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
            comms: CommDict::new(),
            addrs: AddrText::new(),
            pending: 0,
            rows: 0,
            lost: Vec::new(),
            segment: None,
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
        let comm = self.comms.key(&ev.comm);
        let b = &mut self.b;
        b.comm.push(comm);
        b.ts.push(self.clock.wall_ns(ev.mono_ns));
        b.mono_ns.push(ev.mono_ns);
        b.kind.push(schema::kind_index(ev.kind));
        b.pid.push(ev.pid);
        b.tid.push(ev.tid);
        b.family.push(schema::family_index(ev.family));
        push_text(&mut b.saddr, &mut b.saddr_bytes, self.addrs.text(ev.saddr));
        push_text(&mut b.daddr, &mut b.daddr_bytes, self.addrs.text(ev.daddr));
        b.sport.push(ev.sport);
        b.dport.push(ev.dport);
        b.oldstate.push(ev.oldstate.map(schema::state_index));
        b.newstate.push(ev.newstate.map(schema::state_index));
        b.sk_err.push(ev.sk_err);
        b.netns.push(ev.netns);
        b.stack_id.push(ev.stack_id);
        b.probe.push(probe);
        b.cookie.push(ev.cookie);
        b.cgroup_id.push(ev.cgroup_id);
        b.attribution.push(schema::attribution_index(ev.attribution));
        let t = &ev.tcp;
        b.snd_wnd.push(t.snd_wnd);
        b.rcv_wnd.push(t.rcv_wnd);
        b.srtt_us.push(t.srtt_us);
        b.snd_cwnd.push(t.snd_cwnd);
        b.bytes_acked.push(t.bytes_acked);
        b.bytes_received.push(t.bytes_received);
        b.window.push(t.window);
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
        let comm_values = self.comms.values();
        let cap = self.batch_rows;
        let b = &mut self.b;
        let v = &self.values;
        let (oldstate, oldstate_nulls) = b.oldstate.finish(cap);
        let (newstate, newstate_nulls) = b.newstate.finish(cap);
        let (stack_id, stack_id_nulls) = b.stack_id.finish(cap);
        let (snd_wnd, snd_wnd_nulls) = b.snd_wnd.finish(cap);
        let (rcv_wnd, rcv_wnd_nulls) = b.rcv_wnd.finish(cap);
        let (srtt_us, srtt_us_nulls) = b.srtt_us.finish(cap);
        let (snd_cwnd, snd_cwnd_nulls) = b.snd_cwnd.finish(cap);
        let (bytes_acked, bytes_acked_nulls) = b.bytes_acked.finish(cap);
        let (bytes_received, bytes_received_nulls) = b.bytes_received.finish(cap);
        let (window, window_nulls) = b.window.finish(cap);
        let comm = DictionaryArray::<UInt32Type>::try_new(prim(take(&mut b.comm, cap), None), comm_values)
            .map_err(|e| FormatError::arrow(None, e))?;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(prim::<TimestampNanosecondType>(take(&mut b.ts, cap), None).with_timezone(TS_TIMEZONE)),
            Arc::new(prim::<Int64Type>(take(&mut b.mono_ns, cap), None)),
            dict(take(&mut b.kind, cap), None, &v.kind)?,
            Arc::new(prim::<UInt32Type>(take(&mut b.pid, cap), None)),
            Arc::new(prim::<UInt32Type>(take(&mut b.tid, cap), None)),
            Arc::new(comm),
            dict(take(&mut b.family, cap), None, &v.family)?,
            text_array(&mut b.saddr, &mut b.saddr_bytes, cap)?,
            text_array(&mut b.daddr, &mut b.daddr_bytes, cap)?,
            Arc::new(prim::<UInt16Type>(take(&mut b.sport, cap), None)),
            Arc::new(prim::<UInt16Type>(take(&mut b.dport, cap), None)),
            dict(oldstate, oldstate_nulls, &v.state)?,
            dict(newstate, newstate_nulls, &v.state)?,
            Arc::new(prim::<Int32Type>(take(&mut b.sk_err, cap), None)),
            Arc::new(prim::<UInt32Type>(take(&mut b.netns, cap), None)),
            Arc::new(prim::<Int64Type>(stack_id, stack_id_nulls)),
            dict(take(&mut b.probe, cap), None, &probe_values)?,
            Arc::new(prim::<UInt64Type>(take(&mut b.cookie, cap), None)),
            Arc::new(prim::<UInt64Type>(take(&mut b.cgroup_id, cap), None)),
            dict(take(&mut b.attribution, cap), None, &v.attribution)?,
            Arc::new(prim::<UInt32Type>(snd_wnd, snd_wnd_nulls)),
            Arc::new(prim::<UInt32Type>(rcv_wnd, rcv_wnd_nulls)),
            Arc::new(prim::<UInt32Type>(srtt_us, srtt_us_nulls)),
            Arc::new(prim::<UInt32Type>(snd_cwnd, snd_cwnd_nulls)),
            Arc::new(prim::<UInt64Type>(bytes_acked, bytes_acked_nulls)),
            Arc::new(prim::<UInt64Type>(bytes_received, bytes_received_nulls)),
            Arc::new(prim::<UInt32Type>(window, window_nulls)),
        ];
        self.comms.trim();
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

    /// Row groups written so far. The writer keeps the metadata of each
    /// (tens of KiB) in memory until the footer is written, so a recorder
    /// that runs for days bounds this and starts a new file past it.
    pub fn row_groups(&self) -> usize {
        self.out.row_groups()
    }

    /// Makes the file segment `index` of a rotated recording at finish
    /// (`deeptcp.segment`), for a file opened without
    /// [`RecordingMeta::segment`] that became the first segment of one.
    pub fn set_segment(&mut self, index: u32) {
        self.segment = Some(index);
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
        if let Some(index) = self.segment {
            extra.push(KeyValue::new(key::SEGMENT.to_owned(), index.to_string()));
        }
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
