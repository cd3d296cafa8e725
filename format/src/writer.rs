//! Streaming writer: rows in, zstd Parquet out.
//!
//! Rows come as [`RowBatch`]es ([`EventWriter::write_rows`]: the recorder
//! fills them on its writer thread straight from the kernel's records) or
//! one [`Event`] at a time ([`EventWriter::push`], buffered in a batch of
//! `batch_rows`). Every batch (or `batch_rows` of one) becomes a data page
//! per column of the current row group, encoded here (see `encode` and
//! `table`: dictionary columns keyed by the batches' ids, integers
//! delta-packed, zstd, a CRC32 in every page header); row groups end at
//! `row_group_rows` rows, when a dictionary grows past its bound, or at
//! [`EventWriter::flush`], which also takes a checkpoint (see
//! [`crate::checkpoint`]); only [`EventWriter::finish`] writes the footer
//! that makes the file readable — or, after a failed write,
//! [`EventWriter::close_at_checkpoint`] closes it at the last checkpoint.
//!
//! A recording may also be rotated into numbered segments
//! ([`segment_path`](crate::paths::segment_path), [`segments`](crate::paths::segments)), each a complete recording.

pub(crate) mod output;

use std::fs::File;
use std::path::Path;

use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::SchemaDescPtr;

use crate::encode::{Codec, Scratch};
use crate::event::Event;
use crate::meta::{ClockAnchor, LostInterval, RecordingMeta};
use crate::rows::RowBatch;
use crate::schema::{self, key};
use crate::table::{AddrText, RowGroup};
use crate::FormatError;
use output::Output;

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

/// Writer properties of a recording. The columns' encodings are not
/// parquet's business here (`table` encodes every chunk itself); these give
/// the file its metadata (`created_by`, the key-value metadata set at open,
/// the embedded Arrow schema) and its row group bound.
fn event_properties(meta: &RecordingMeta, opts: &WriterOptions) -> Result<(WriterProperties, ZstdLevel), FormatError> {
    let level = opts.validate()?;
    let kvs = schema::metadata_key_values(meta)?;
    let props = base_properties(level, opts.row_group_rows)
        .set_key_value_metadata(Some(to_key_values(kvs)))
        .build();
    Ok((props, level))
}

pub use crate::schema::MAX_LOST_INTERVALS;

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
    schema: SchemaDescPtr,
    clock: ClockAnchor,
    batch_rows: usize,
    row_group_rows: usize,
    /// Rows pushed as events, not yet encoded.
    pending: RowBatch,
    /// The row group being written, if any rows are in it.
    group: Option<RowGroup>,
    codec: Codec,
    scratch: Scratch,
    addr_text: AddrText,
    rows: u64,
    lost: Vec<LostInterval>,
    /// `deeptcp.segment` to write at finish (see [`set_segment`](Self::set_segment)).
    segment: Option<u32>,
    /// `deeptcp.cgroups` and `deeptcp.netns_names` to write at finish (see
    /// [`set_names`](Self::set_names)); none: the file gets no name tables.
    names: Option<[(&'static str, String); 2]>,
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
        let (props, level) = event_properties(meta, &opts)?;
        let out = Output::new(file, path, schema::event_schema(), props, path.is_some())?;
        let codec = Codec::new(level).map_err(|e| FormatError::parquet(path, e))?;
        Ok(EventWriter {
            schema: out.schema_descr(),
            out,
            clock: meta.clock,
            batch_rows: opts.batch_rows,
            row_group_rows: opts.row_group_rows,
            // Grows as events come (record writes batches, and events only at start).
            pending: RowBatch::default(),
            group: None,
            codec,
            scratch: Scratch::default(),
            addr_text: AddrText::new(),
            rows: 0,
            lost: Vec::new(),
            segment: None,
            names: None,
        })
    }

    /// Appends one event. Cheap: it goes into a batch of column buffers;
    /// every `batch_rows` events the batch is encoded (a page per column).
    pub fn push(&mut self, ev: &Event) -> Result<(), FormatError> {
        self.pending.push_event(ev);
        self.rows += 1;
        if self.pending.len() >= self.batch_rows {
            self.write_pending()?;
        }
        Ok(())
    }

    /// Appends the rows of `batch` (after any pushed events), encoding them
    /// at once: a page per column for each `batch_rows` of them.
    pub fn write_rows(&mut self, batch: &RowBatch) -> Result<(), FormatError> {
        self.write_pending()?;
        self.rows += batch.len() as u64;
        self.encode(batch)
    }

    /// Encodes the pushed events.
    fn write_pending(&mut self) -> Result<(), FormatError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        let r = self.encode(&batch);
        self.pending = batch;
        self.pending.clear();
        r
    }

    /// Writes `b` into the row group (and those after it, as it fills them).
    fn encode(&mut self, b: &RowBatch) -> Result<(), FormatError> {
        let mut start = 0;
        // Whether the current row group has seen this batch (its comm ids).
        let mut begun = false;
        while start < b.len() {
            let group = match self.group.as_mut() {
                Some(g) => g,
                None => {
                    begun = false;
                    let g = RowGroup::new(&self.schema).map_err(|e| self.out.encode_error(e))?;
                    self.group.insert(g)
                }
            };
            if !begun {
                group.begin_batch(b);
                begun = true;
            }
            let room = self.row_group_rows.saturating_sub(group.rows()).max(1);
            let want = b.len().min(start + room).min(start + self.batch_rows);
            let end = group.cut(b, start..want);
            if end == start {
                if group.rows() == 0 {
                    return Err(self.out.encode_error(ParquetError::General(
                        "a row that does not fit an empty row group".into(),
                    )));
                }
                self.end_row_group()?;
                continue;
            }
            let r = group.page(
                &mut self.codec,
                &mut self.scratch,
                &mut self.addr_text,
                self.clock,
                b,
                start..end,
            );
            r.map_err(|e| self.out.encode_error(e))?;
            start = end;
            if group.rows() >= self.row_group_rows || group.full() || end < want {
                self.end_row_group()?;
            }
        }
        Ok(())
    }

    /// Ends the row group being written (if any): its chunks go to the file.
    fn end_row_group(&mut self) -> Result<(), FormatError> {
        let Some(group) = self.group.take() else {
            return Ok(());
        };
        if group.rows() == 0 {
            return Ok(());
        }
        let chunks = group.finish(&mut self.codec).map_err(|e| self.out.encode_error(e))?;
        self.out.append_row_group(chunks)
    }

    /// Writes pending rows and ends the current row group, hands the bytes
    /// to the OS and takes a checkpoint (with a sidecar: fsyncs the data,
    /// then appends the checkpoint and fsyncs it). A no-op when nothing was
    /// pushed (and no lost interval added) since the last flush.
    pub fn flush(&mut self) -> Result<(), FormatError> {
        self.write_pending()?;
        self.end_row_group()?;
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

    /// Sets the name tables of the recording (`deeptcp.cgroups`,
    /// `deeptcp.netns_names`, see [`crate::names`]): carried by the next
    /// checkpoint (so a recovered file has the names known at its last
    /// checkpoint) and written at finish. Call it again when names were
    /// added; each call replaces the tables. A writer never given names
    /// writes neither key (readers then show no names, as for older files).
    pub fn set_names(&mut self, names: &crate::Names) {
        let kvs = names.key_values();
        for (k, v) in &kvs {
            self.out.set_update(k, v.clone());
        }
        self.names = Some(kvs);
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

    /// Flushes, appends `deeptcp.lost_events`, `deeptcp.events`,
    /// `deeptcp.lost_intervals` (and the name tables, if set), writes the footer, fsyncs the file and
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
        self.write_pending()?;
        self.end_row_group()?;
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
        for (k, v) in self.names.iter().flatten() {
            extra.push(KeyValue::new((*k).to_owned(), v.clone()));
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
