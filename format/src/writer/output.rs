//! The Parquet file a writer writes, with its checkpoints: the part
//! [`crate::EventWriter`] and [`crate::StackWriter`] share.
//!
//! [`Output`] wraps the parquet crate's file writer (row groups arrive
//! encoded, or as Arrow batches for the stacks sidecar), counts what reached
//! the file, takes a checkpoint at every flush (in memory, and in the
//! sidecar when the recording has one: [`crate::checkpoint`]) and, after a
//! failed write, closes the file at its last checkpoint.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_schema::SchemaRef;
use bytes::Bytes;
use parquet::arrow::{add_encoded_arrow_schema_to_metadata, ArrowSchemaConverter};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::ParquetError;
use parquet::file::metadata::{KeyValue, RowGroupMetaData};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::SchemaDescPtr;

use super::WriteSummary;
use crate::checkpoint::{fnv1a, footer_bytes, io_err, Log, WINDOW};
use crate::pagecrc::ChecksummedWriter;
use crate::FormatError;

/// The data file under parquet's buffered writer: counts what reached the
/// file, remembers its first and last [`WINDOW`] bytes (for the checkpoint
/// hashes) and the first I/O error with its errno (parquet turns I/O errors
/// into strings). In `discard` mode it swallows writes, so that dropping a
/// failed writer cannot append stray bytes after the file was closed at its
/// checkpoint.
pub(crate) struct Sink {
    file: File,
    written: u64,
    head: Vec<u8>,
    /// The last bytes written: its final `min(WINDOW, written)` bytes are valid.
    tail: Vec<u8>,
    error: Option<io::Error>,
    discard: bool,
}

impl Sink {
    fn new(file: File) -> Self {
        Sink {
            file,
            written: 0,
            head: Vec::with_capacity(WINDOW),
            tail: Vec::with_capacity(2 * WINDOW),
            error: None,
            discard: false,
        }
    }

    fn note(&mut self, buf: &[u8]) {
        self.written += buf.len() as u64;
        if self.head.len() < WINDOW {
            let n = (WINDOW - self.head.len()).min(buf.len());
            self.head.extend_from_slice(&buf[..n]);
        }
        if buf.len() >= WINDOW {
            self.tail.clear();
            self.tail.extend_from_slice(&buf[buf.len() - WINDOW..]);
        } else {
            self.tail.extend_from_slice(buf);
            if self.tail.len() > 2 * WINDOW {
                self.tail.drain(..self.tail.len() - WINDOW);
            }
        }
    }

    fn hashes(&self) -> (u64, u64) {
        let n = self.tail.len().min(WINDOW);
        (fnv1a(&self.head), fnv1a(&self.tail[self.tail.len() - n..]))
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.discard {
            return Ok(buf.len());
        }
        if let Some(e) = &self.error {
            return Err(io::Error::new(e.kind(), "an earlier write failed"));
        }
        match self.file.write(buf) {
            Ok(n) => {
                self.note(&buf[..n]);
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let copy = io::Error::new(e.kind(), e.to_string());
                self.error = Some(e);
                Err(copy)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.discard {
            return Ok(());
        }
        self.file.flush()
    }
}

/// What every footer of one file shares.
struct FooterBase {
    schema: SchemaDescPtr,
    /// Key-value metadata set at open, `ARROW:schema` included.
    kv: Vec<KeyValue>,
    created_by: String,
    version: i32,
}

impl FooterBase {
    /// A Parquet footer (FileMetaData, length, magic) for `groups`.
    fn bytes(&self, groups: &[RowGroupMetaData], kv: Vec<KeyValue>) -> Result<Vec<u8>, ParquetError> {
        footer_bytes(
            self.version,
            Some(self.created_by.clone()),
            Arc::clone(&self.schema),
            groups,
            kv,
        )
    }
}

/// The last checkpoint, in memory.
#[derive(Default)]
struct Checkpoint {
    /// Row groups it covers: the first `groups` of the writer's flushed row
    /// groups. A count, not a copy: the metadata of a row group is tens of
    /// KiB in memory, and the writer keeps it anyway for the footer.
    groups: usize,
    data_len: u64,
    rows: u64,
    /// The metadata updates it carries.
    updates: Vec<KeyValue>,
    taken: bool,
}

/// What a file closed at its last checkpoint holds.
pub(crate) type Salvaged = WriteSummary;

/// A Parquet file being written, with checkpoints: the part the event
/// writer and the stacks writer share.
pub(crate) struct Output {
    /// `None` once closed or after closing at the checkpoint.
    writer: Option<ChecksummedWriter<Sink>>,
    path: Option<PathBuf>,
    /// A second handle on the data file, to close it at the checkpoint
    /// after the writer failed.
    salvage: File,
    base: FooterBase,
    last: Checkpoint,
    /// The checkpointed row groups, copied out of the writer when it is
    /// about to give them up (it moves them into the footer it writes at
    /// finish, and a dropped writer takes them along), so that closing at
    /// the checkpoint still has them.
    saved_groups: Option<Vec<RowGroupMetaData>>,
    log: Option<Log>,
    /// Metadata that changes while recording (lost intervals), carried by
    /// the next checkpoint; the last value of a key wins.
    updates: Vec<KeyValue>,
    updates_dirty: bool,
    /// A write failed: nothing but closing at the checkpoint is allowed.
    failed: bool,
    /// Set once the file is closed (cleanly or at the checkpoint): what it holds.
    done: Option<WriteSummary>,
}

impl Output {
    /// Starts a Parquet file in `file` and takes a first checkpoint (no row
    /// groups), written to `checkpoint_path(path)` when `log` is set.
    pub(crate) fn new(
        file: File,
        path: Option<&Path>,
        schema: SchemaRef,
        props: WriterProperties,
        log: bool,
    ) -> Result<Self, FormatError> {
        let salvage = file.try_clone().map_err(io_err(path, "dup"))?;
        let mut full = props.clone();
        add_encoded_arrow_schema_to_metadata(&schema, &mut full);
        let descr = ArrowSchemaConverter::new()
            .with_coerce_types(props.coerce_types())
            .convert(&schema)
            .map_err(|e| FormatError::parquet(path, e))?;
        let base = FooterBase {
            schema: Arc::new(descr),
            kv: full.key_value_metadata().cloned().unwrap_or_default(),
            created_by: props.created_by().to_owned(),
            version: props.writer_version().as_num(),
        };
        let writer =
            ChecksummedWriter::try_new(Sink::new(file), schema, props).map_err(|e| FormatError::parquet(path, e))?;
        let log = match (log, path) {
            (true, Some(p)) => Some(Log::create(p)?),
            _ => None,
        };
        let mut out = Output {
            writer: Some(writer),
            path: path.map(Path::to_path_buf),
            salvage,
            base,
            last: Checkpoint::default(),
            saved_groups: None,
            log,
            updates: Vec::new(),
            updates_dirty: false,
            failed: false,
            done: None,
        };
        out.checkpoint()?;
        Ok(out)
    }

    pub(crate) fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The file's Parquet schema (its column descriptors).
    pub(crate) fn schema_descr(&self) -> SchemaDescPtr {
        Arc::clone(&self.base.schema)
    }

    /// An error encoding rows for this file: it accepts nothing more.
    pub(crate) fn encode_error(&mut self, e: ParquetError) -> FormatError {
        self.failed = true;
        FormatError::parquet(self.path.as_deref(), e)
    }

    /// Appends a row group of column chunks encoded by the caller (in file
    /// order, pages checksummed); no checkpoint yet.
    pub(crate) fn append_row_group(&mut self, chunks: Vec<(Bytes, ColumnCloseResult)>) -> Result<(), FormatError> {
        let r = self.live()?.append_row_group(chunks);
        r.map_err(|e| self.fail("write", e))
    }

    /// fsyncs the data written so far.
    pub(crate) fn sync_data(&mut self) -> Result<(), FormatError> {
        let r = self.live()?.inner().file.sync_data();
        r.map_err(|e| self.fail_io("fsync", e))
    }

    /// The writer, unless closed or failed.
    fn live(&mut self) -> Result<&mut ChecksummedWriter<Sink>, FormatError> {
        let path = self.path.as_deref();
        match self.writer.as_mut() {
            Some(w) if !self.failed => Ok(w),
            _ => Err(FormatError::parquet(
                path,
                ParquetError::General("the file is closed, or an earlier write failed".into()),
            )),
        }
    }

    /// Turns a parquet error into a [`FormatError`], preferring the I/O
    /// error (with its errno) that caused it; marks the output failed.
    fn fail(&mut self, op: &'static str, e: ParquetError) -> FormatError {
        self.failed = true;
        let io = self.writer.as_mut().and_then(|w| w.inner_mut().error.take());
        match io {
            Some(io) => FormatError::io(self.path.as_deref(), op, io),
            None => FormatError::parquet(self.path.as_deref(), e),
        }
    }

    fn fail_io(&mut self, op: &'static str, e: io::Error) -> FormatError {
        self.failed = true;
        let io = self.writer.as_mut().and_then(|w| w.inner_mut().error.take());
        FormatError::io(self.path.as_deref(), op, io.unwrap_or(e))
    }

    pub(crate) fn write(&mut self, batch: &arrow_array::RecordBatch) -> Result<(), FormatError> {
        let r = self.live()?.write(batch);
        r.map_err(|e| self.fail("write", e))
    }

    /// Ends the current row group (no checkpoint yet).
    pub(crate) fn end_row_group(&mut self) -> Result<(), FormatError> {
        let w = self.live()?;
        if w.in_progress_rows() == 0 {
            return Ok(());
        }
        let r = w.flush();
        r.map_err(|e| self.fail("write", e))
    }

    pub(crate) fn bytes_written(&self) -> u64 {
        self.writer
            .as_ref()
            .map_or(self.last.data_len, |w| w.bytes_written() as u64)
    }

    /// Row groups written so far (the footer will list them all).
    pub(crate) fn row_groups(&self) -> usize {
        self.writer
            .as_ref()
            .map_or(self.last.groups, |w| w.flushed_row_groups().len())
    }

    /// Rows in the last checkpoint.
    pub(crate) fn checkpointed_rows(&self) -> u64 {
        self.last.rows
    }

    /// Sets a metadata key that the next checkpoint carries (and a file
    /// closed at a checkpoint keeps).
    pub(crate) fn set_update(&mut self, key: &str, value: String) {
        self.updates.retain(|kv| kv.key != key);
        self.updates.push(KeyValue::new(key.to_owned(), value));
        self.updates_dirty = true;
    }

    /// Ends the row group, hands the bytes to the OS and, if anything is
    /// new since the last checkpoint, takes one (fsyncing the data first
    /// when there is a sidecar).
    pub(crate) fn flush(&mut self) -> Result<(), FormatError> {
        self.end_row_group()?;
        self.checkpoint()
    }

    fn checkpoint(&mut self) -> Result<(), FormatError> {
        let w = self.live()?;
        let r = w.sync();
        r.map_err(|e| self.fail_io("write", e))?;
        let w = self.writer.as_mut().expect("live above");
        let new_groups: Vec<RowGroupMetaData> = w
            .flushed_row_groups()
            .get(self.last.groups..)
            .unwrap_or_default()
            .to_vec();
        if self.last.taken && new_groups.is_empty() && !self.updates_dirty {
            return Ok(());
        }
        let data_len = w.bytes_written() as u64;
        if w.inner().written != data_len {
            self.failed = true;
            return Err(FormatError::parquet(
                self.path.as_deref(),
                ParquetError::General(format!(
                    "{} bytes reached the file, {data_len} expected",
                    w.inner().written
                )),
            ));
        }
        let rows = self.last.rows + new_groups.iter().map(|g| g.num_rows() as u64).sum::<u64>();
        if let Some(log) = self.log.as_mut() {
            // Data before the record that points into it, for a power loss.
            if let Err(e) = w.inner().file.sync_data() {
                return Err(self.fail_io("fsync", e));
            }
            let kv = if log.records() == 0 {
                self.base.kv.iter().chain(&self.updates).cloned().collect()
            } else {
                self.updates.clone()
            };
            let footer = self
                .base
                .bytes(&new_groups, kv)
                .map_err(|e| FormatError::parquet(self.path.as_deref(), e))?;
            if let Err(e) = log.append(data_len, rows, w.inner().hashes(), &footer) {
                self.failed = true;
                return Err(e);
            }
        }
        self.last.groups += new_groups.len();
        self.last.data_len = data_len;
        self.last.rows = rows;
        self.last.updates.clone_from(&self.updates);
        self.last.taken = true;
        self.updates_dirty = false;
        Ok(())
    }

    /// Writes the footer with `extra` metadata appended, fsyncs, removes the
    /// sidecar. On error the output is left for [`close_at_checkpoint`](Self::close_at_checkpoint).
    pub(crate) fn finish(&mut self, extra: Vec<KeyValue>, rows: u64) -> Result<WriteSummary, FormatError> {
        let n = self.last.groups;
        let w = self.live()?;
        // Transient: the writer moves its row groups into the footer, and a
        // footer that fails to write must not take the checkpoint along.
        let saved = w.flushed_row_groups().get(..n).unwrap_or_default().to_vec();
        self.saved_groups = Some(saved);
        let w = self.writer.as_mut().expect("live above");
        for kv in extra {
            w.append_key_value_metadata(kv);
        }
        let r = w.finish();
        r.map_err(|e| self.fail("write", e))?;
        let w = self.writer.as_mut().expect("live above");
        let r = w.sync();
        r.map_err(|e| self.fail_io("write", e))?;
        let w = self.writer.as_mut().expect("live above");
        let bytes = w.bytes_written() as u64;
        let r = w.inner().file.sync_all();
        r.map_err(|e| self.fail_io("fsync", e))?;
        if let Some(mut w) = self.writer.take() {
            w.inner_mut().discard = true;
        }
        self.remove_log();
        self.saved_groups = None;
        let summary = WriteSummary { rows, bytes };
        self.done = Some(summary);
        Ok(summary)
    }

    fn remove_log(&mut self) {
        if let Some(log) = self.log.take() {
            log.remove();
        }
    }

    /// Closes the file at its last checkpoint: truncates it to the
    /// checkpointed length and appends the footer of the checkpointed row
    /// groups, so it is a readable recording without what came after. For
    /// a writer that failed (or was abandoned). Without the finish-time
    /// metadata (`deeptcp.events`, `deeptcp.lost_events`), like a repaired
    /// file: readers see a recording that was not closed cleanly.
    pub(crate) fn close_at_checkpoint(&mut self) -> Result<Salvaged, FormatError> {
        if let Some(done) = self.done {
            // Already closed: never truncate a finished file.
            return Ok(done);
        }
        if let Some(mut w) = self.writer.take() {
            if self.saved_groups.is_none() {
                let n = self.last.groups;
                self.saved_groups = Some(w.flushed_row_groups().get(..n).unwrap_or_default().to_vec());
            }
            w.inner_mut().discard = true;
            drop(w);
        }
        let path = self.path.clone();
        let path = path.as_deref();
        let kv = self.base.kv.iter().chain(&self.last.updates).cloned().collect();
        let groups = self.saved_groups.as_deref().unwrap_or_default();
        if groups.len() != self.last.groups {
            return Err(FormatError::parquet(
                path,
                ParquetError::General(format!(
                    "the metadata of {} checkpointed row groups is gone (the writer has {})",
                    self.last.groups,
                    groups.len()
                )),
            ));
        }
        let footer = self.base.bytes(groups, kv).map_err(|e| FormatError::parquet(path, e))?;
        let len = self.last.data_len;
        let put = |f: &mut File| -> io::Result<()> {
            f.set_len(len)?;
            f.seek(SeekFrom::Start(len))?;
            f.write_all(&footer)?;
            f.sync_all()
        };
        let mut r = put(&mut self.salvage);
        if r.is_err() && self.log.is_some() {
            // Disk full, most likely: the sidecar holds about as many bytes
            // as the footer needs. Free them and try once more.
            self.remove_log();
            r = put(&mut self.salvage);
        }
        if let Err(e) = r {
            let _ = self.salvage.set_len(len);
            return Err(FormatError::io(path, "closing at the last checkpoint", e));
        }
        self.remove_log();
        let summary = WriteSummary {
            rows: self.last.rows,
            bytes: len + footer.len() as u64,
        };
        self.saved_groups = None;
        self.done = Some(summary);
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_keeps_the_first_and_last_window() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Sink::new(File::create(dir.path().join("x")).unwrap());
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        for chunk in data.chunks(777) {
            s.write_all(chunk).unwrap();
        }
        assert_eq!(s.written, data.len() as u64);
        assert_eq!(s.head, data[..WINDOW]);
        let (h, t) = s.hashes();
        assert_eq!(h, fnv1a(&data[..WINDOW]));
        assert_eq!(t, fnv1a(&data[data.len() - WINDOW..]));
        s.discard = true;
        s.write_all(b"more").unwrap();
        assert_eq!(s.written, data.len() as u64);
    }
}
