//! Crash safety: checkpoints, closing a failed file at its last good row
//! group, and repair.
//!
//! A Parquet file is readable only once its footer is written, at close. So
//! that a killed recorder, a power loss or a full disk cost at most the last
//! flush interval, the writers keep a **checkpoint** of the footer:
//!
//! - In memory, always: how many row groups were flushed so far (their
//!   metadata is the parquet writer's, which keeps it for the footer
//!   anyway: no second copy, as that doubled the ~25 KiB a row group costs
//!   until the file is closed) and the file length at the last flush. When
//!   a write fails (disk full, I/O error), [`Output::close_at_checkpoint`]
//!   truncates the file to that length and appends the footer, so the file
//!   stays a readable recording.
//! - On disk, for recordings that ask for it (`EventWriter::with_checkpoints`,
//!   `StackWriter::with_checkpoints`): a sidecar `FILE.checkpoint`
//!   ([`checkpoint_path`]) that survives the recorder. After every flush the
//!   data is fsynced, then one record is appended to the sidecar (and
//!   fsynced): the data length and the Parquet footer of the row groups
//!   flushed since the previous record, serialized by parquet's
//!   `ParquetMetaDataWriter`; the first record also carries the schema's key
//!   value metadata (`ARROW:schema`, every `deeptcp.*` key set at open).
//!   [`repair`] truncates the file to the last record's length and appends
//!   the footer of all recorded row groups; [`crate::RecordingReader::open_recovering`]
//!   reads through the checkpoint without changing the file. The sidecar is
//!   removed when the file is closed cleanly.
//!
//! The sidecar is an append-only log, not one footer rewritten after every
//! flush, because a footer grows by a few KiB per row group: rewriting it
//! every second would cost O(row groups) per flush, hours into a busy
//! recording megabytes per second. Each record is length-prefixed and
//! checksummed, so a record torn by a crash is detected and ignored; and the
//! records must add up (row counts, data lengths, where their row groups
//! lie: see `check_records`), so that a whole record appended twice or a
//! changed count is refused rather than read as rows that are not there.
//! [`repair`] also checks every page of the row groups it keeps before it
//! writes anything.
//!
//! Each record also stores hashes of the first and last 4 KiB of the data
//! it covers: a sidecar is only ever applied to the file it was written
//! for. While the recorder runs it holds an exclusive `flock` on the
//! sidecar; [`repair`] refuses a file whose sidecar is locked (still being
//! recorded).
//!
//! Sidecar layout (integers little-endian):
//!
//! ```text
//! "deeptcp ckpt v1\n"                           16-byte magic
//! repeated:
//!   u32 body length, u64 FNV-1a-64 of the body
//!   body: u64 data length, u64 rows (all records so far),
//!         u64 hash of data[..min(4096, len)], u64 hash of the last min(4096, len) bytes,
//!         Parquet footer (FileMetaData, u32 length, "PAR1") of the new row groups
//! ```

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_schema::SchemaRef;
use bytes::Bytes;
use parquet::arrow::{add_encoded_arrow_schema_to_metadata, ArrowSchemaConverter};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::ParquetError;
use parquet::file::metadata::{
    FileMetaData, KeyValue, ParquetMetaData, ParquetMetaDataReader, ParquetMetaDataWriter, RowGroupMetaData,
};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::SchemaDescPtr;

use crate::pagecrc::ChecksummedWriter;
use crate::paths::checkpoint_path;
use crate::reader::{check_layout, guarded};
use crate::writer::WriteSummary;
use crate::FormatError;

const MAGIC: &[u8; 16] = b"deeptcp ckpt v1\n";
/// Bytes at each end of the checkpointed data whose hashes tie a sidecar to its file.
const WINDOW: usize = 4096;
/// Largest record accepted when reading (a footer of ~100k row groups).
const MAX_RECORD: usize = 256 << 20;
/// Fixed part of a record body before the footer.
const BODY_HEAD: usize = 32;
/// Parquet's magic.
const PAR1: &[u8; 4] = b"PAR1";

/// 64-bit FNV-1a: a stable, dependency-free checksum (not a defence against
/// forgery: sidecars are written by the recorder, mode 0600).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn io_err<'a>(path: Option<&'a Path>, op: &'static str) -> impl FnOnce(io::Error) -> FormatError + 'a {
    move |e| FormatError::io(path, op, e)
}

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

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

fn footer_bytes(
    version: i32,
    created_by: Option<String>,
    schema: SchemaDescPtr,
    groups: &[RowGroupMetaData],
    kv: Vec<KeyValue>,
) -> Result<Vec<u8>, ParquetError> {
    let rows = groups.iter().map(RowGroupMetaData::num_rows).sum();
    let kv = (!kv.is_empty()).then_some(kv);
    let md = ParquetMetaData::new(
        FileMetaData::new(version, rows, created_by, kv, schema, None),
        groups.to_vec(),
    );
    let mut buf = Vec::new();
    // No page index is on disk until close: drop its locations, if any.
    ParquetMetaDataWriter::new(&mut buf, &md)
        .with_preserve_page_index_locations(false)
        .finish()?;
    Ok(buf)
}

/// The on-disk checkpoint log of one file.
struct Log {
    file: File,
    path: PathBuf,
    /// Bytes of complete records (a failed append is cut back to this).
    len: u64,
    records: u64,
}

impl Log {
    /// Creates `FILE.checkpoint`: never over an existing file or through a
    /// symlink (O_CREAT|O_EXCL), mode 0600, locked while the recorder lives.
    fn create(recording: &Path) -> Result<Log, FormatError> {
        let path = checkpoint_path(recording);
        let mut opts = File::options();
        opts.read(true).write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts.open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                FormatError::Checkpoint {
                    path: recording.to_path_buf(),
                    detail: format!(
                        "{} already exists (left by an earlier recording that was not closed cleanly: \
                         repair that recording first, or remove it)",
                        path.display()
                    ),
                }
            } else {
                FormatError::io(Some(&path), "create", e)
            }
        })?;
        lock(&file, false);
        let op = io_err(Some(&path), "write");
        file.write_all(MAGIC).map_err(op)?;
        Ok(Log {
            file,
            len: MAGIC.len() as u64,
            path,
            records: 0,
        })
    }

    /// Appends one record and fsyncs; on failure cuts the log back to its
    /// last complete record, so it stays usable.
    fn append(&mut self, body: &[u8]) -> Result<(), FormatError> {
        let len = u32::try_from(body.len()).map_err(|_| FormatError::Checkpoint {
            path: self.path.clone(),
            detail: "checkpoint record too large".into(),
        })?;
        let mut rec = Vec::with_capacity(12 + body.len());
        rec.extend_from_slice(&len.to_le_bytes());
        rec.extend_from_slice(&fnv1a(body).to_le_bytes());
        rec.extend_from_slice(body);
        let r = self.file.write_all(&rec).and_then(|()| self.file.sync_data());
        if let Err(e) = r {
            // Best effort: a torn record would also be ignored by readers.
            let _ = self.file.set_len(self.len);
            let _ = self.file.seek(SeekFrom::Start(self.len));
            return Err(FormatError::io(Some(&self.path), "write", e));
        }
        self.len += rec.len() as u64;
        self.records += 1;
        Ok(())
    }
}

/// `flock` on `file`: exclusive and held (`try_only` = false, recorder), or
/// a non-blocking probe that says whether another process holds it.
#[cfg(unix)]
fn lock(file: &File, try_only: bool) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own; no memory is passed.
    let ok = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if ok && try_only {
        // SAFETY: as above.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
    }
    ok
}

#[cfg(not(unix))]
fn lock(_file: &File, _try_only: bool) -> bool {
    true
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
            let (head, tail) = w.inner().hashes();
            let kv = if log.records == 0 {
                self.base.kv.iter().chain(&self.updates).cloned().collect()
            } else {
                self.updates.clone()
            };
            let footer = self
                .base
                .bytes(&new_groups, kv)
                .map_err(|e| FormatError::parquet(self.path.as_deref(), e))?;
            let mut body = Vec::with_capacity(BODY_HEAD + footer.len());
            for v in [data_len, rows, head, tail] {
                body.extend_from_slice(&v.to_le_bytes());
            }
            body.extend_from_slice(&footer);
            if let Err(e) = log.append(&body) {
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
            let _ = std::fs::remove_file(&log.path);
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

// ---------------------------------------------------------------------------
// Reading, repair
// ---------------------------------------------------------------------------

/// One record of a sidecar.
struct Record {
    data_len: u64,
    rows: u64,
    head: u64,
    tail: u64,
    md: ParquetMetaData,
}

/// Parses a sidecar: the complete, checksummed records in order (a torn or
/// corrupt record ends the list).
fn parse_log(recording: &Path, bytes: &[u8]) -> Result<Vec<Record>, FormatError> {
    let bad = |detail: String| FormatError::Checkpoint {
        path: recording.to_path_buf(),
        detail,
    };
    let ck = checkpoint_path(recording);
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(bad(format!("{} is not a deeptcp checkpoint", ck.display())));
    }
    let mut at = MAGIC.len();
    let mut out = Vec::new();
    while bytes.len() - at >= 12 {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let sum = u64::from_le_bytes(bytes[at + 4..at + 12].try_into().expect("8 bytes"));
        let Some(body) = bytes.get(at + 12..at + 12 + len) else {
            break;
        };
        if !(BODY_HEAD + 8..=MAX_RECORD).contains(&len) || fnv1a(body) != sum {
            break;
        }
        let u = |i: usize| u64::from_le_bytes(body[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        let footer = &body[BODY_HEAD..];
        let n = footer.len();
        let meta_len = u32::from_le_bytes(footer[n - 8..n - 4].try_into().expect("4 bytes")) as usize;
        if &footer[n - 4..] != PAR1 || meta_len != n - 8 {
            break;
        }
        let md = guarded(recording, "reading the checkpoint", || {
            ParquetMetaDataReader::decode_metadata(&footer[..meta_len]).map_err(|e| FormatError::Checkpoint {
                path: recording.to_path_buf(),
                detail: format!("{}: unreadable footer in record {}: {e}", ck.display(), out.len()),
            })
        })?;
        out.push(Record {
            data_len: u(0),
            rows: u(1),
            head: u(2),
            tail: u(3),
            md,
        });
        at += 12 + len;
    }
    if out.is_empty() {
        return Err(bad(format!("{} holds no complete checkpoint", ck.display())));
    }
    check_records(recording, &out)?;
    Ok(out)
}

/// Checks that the records of a sidecar follow each other as a recorder
/// writes them, so that no row group is counted twice or read from bytes
/// another one holds: each record's row count is the previous one's plus
/// its row groups' rows; a record with row groups covers more data than
/// the previous one, and its column chunks lie in the data it adds, apart
/// from each other; a record without row groups (one that only carries
/// metadata updates) covers the same data. Record checksums only catch
/// torn records; this catches records that are whole but do not add up (a
/// record appended twice, a count changed).
fn check_records(recording: &Path, records: &[Record]) -> Result<(), FormatError> {
    let ck = checkpoint_path(recording);
    let refuse = |i: usize, why: String| {
        let what = match i {
            0 => "checkpoint record 0 is inconsistent".to_owned(),
            i => format!("checkpoint record {i} does not follow record {}", i - 1),
        };
        FormatError::Checkpoint {
            path: recording.to_path_buf(),
            detail: format!("{}: {what}: {why}; refusing to use it", ck.display()),
        }
    };
    // Before the first record: the 4-byte magic, no rows.
    let (mut prev_len, mut prev_rows) = (PAR1.len() as u64, 0u64);
    for (i, r) in records.iter().enumerate() {
        let groups = r.md.row_groups();
        let mut added = 0u64;
        let mut chunks = Vec::new();
        for (g, group) in groups.iter().enumerate() {
            let n = u64::try_from(group.num_rows())
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| refuse(i, format!("its row group {g} holds {} rows", group.num_rows())))?;
            added = added.saturating_add(n);
            for c in group.columns() {
                let start = c.dictionary_page_offset().unwrap_or_else(|| c.data_page_offset());
                let range = u64::try_from(start)
                    .ok()
                    .zip(u64::try_from(c.compressed_size()).ok())
                    .and_then(|(s, l)| Some((s, s.checked_add(l)?)))
                    .ok_or_else(|| refuse(i, format!("its row group {g} has a column chunk at a bad place")))?;
                chunks.push(range);
            }
        }
        let expected = prev_rows.saturating_add(added);
        if r.rows != expected {
            return Err(refuse(
                i,
                format!(
                    "it counts {} rows, but the rows before it and its {} row groups make {expected}",
                    r.rows,
                    groups.len()
                ),
            ));
        }
        if groups.is_empty() {
            if i > 0 && r.data_len != prev_len {
                return Err(refuse(
                    i,
                    format!(
                        "it adds no row group but covers {} bytes instead of {prev_len}",
                        r.data_len
                    ),
                ));
            }
        } else {
            if r.data_len <= prev_len {
                return Err(refuse(
                    i,
                    format!(
                        "it adds row groups but covers {} bytes, not more than the {prev_len} before it",
                        r.data_len
                    ),
                ));
            }
            chunks.sort_unstable();
            let mut end = prev_len;
            for (s, e) in chunks {
                if s < end || e > r.data_len {
                    return Err(refuse(
                        i,
                        format!(
                            "its row groups do not lie apart in the bytes it adds ({prev_len}..{})",
                            r.data_len
                        ),
                    ));
                }
                end = e;
            }
        }
        if i == 0 && r.data_len < prev_len {
            return Err(refuse(
                i,
                format!("it covers {} bytes, less than the magic", r.data_len),
            ));
        }
        (prev_len, prev_rows) = (r.data_len, r.rows);
    }
    Ok(())
}

/// A recording's state as its checkpoint describes it.
pub(crate) struct Recovered {
    /// Bytes of the data file the checkpoint covers.
    pub data_len: u64,
    pub rows: u64,
    /// The footer to append at `data_len`.
    pub footer: Vec<u8>,
    pub metadata: ParquetMetaData,
}

fn read_window(file: &mut File, at: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    file.seek(SeekFrom::Start(at))?;
    file.read_exact(&mut buf)?;
    Ok(buf)
}

/// Reads `recording`'s sidecar and checks it against `file` (whose length
/// is `file_len`): the footer of every checkpointed row group.
fn recover(recording: &Path, file: &mut File, file_len: u64, sidecar: &[u8]) -> Result<Recovered, FormatError> {
    let ck = checkpoint_path(recording);
    let records = parse_log(recording, sidecar)?;
    let refuse = |why: String| FormatError::Checkpoint {
        path: recording.to_path_buf(),
        detail: format!(
            "{} does not belong to this file ({why}); refusing to use it",
            ck.display()
        ),
    };
    let last = records.last().expect("parse_log returns at least one");
    let groups: Vec<RowGroupMetaData> = records.iter().flat_map(|r| r.md.row_groups().iter().cloned()).collect();
    let data_len = last.data_len;
    if data_len > file_len {
        return Err(refuse(format!(
            "the checkpoint covers {data_len} bytes, the file has {file_len}"
        )));
    }
    if groups.is_empty() && file_len > data_len {
        return Err(FormatError::Checkpoint {
            path: recording.to_path_buf(),
            detail: format!(
                "{} holds no row group, so it cannot be matched to this file of {file_len} bytes; refusing to use it",
                ck.display()
            ),
        });
    }
    let dl = usize::try_from(data_len).unwrap_or(usize::MAX);
    let op = io_err(Some(recording), "read");
    let head = read_window(file, 0, dl.min(WINDOW)).map_err(op)?;
    let n = dl.min(WINDOW);
    let op = io_err(Some(recording), "read");
    let tail = read_window(file, data_len - n as u64, n).map_err(op)?;
    if fnv1a(&head) != last.head || fnv1a(&tail) != last.tail {
        return Err(refuse("its data differs".into()));
    }
    let first = records[0].md.file_metadata();
    let mut kv: Vec<KeyValue> = first.key_value_metadata().cloned().unwrap_or_default();
    if records.len() > 1 {
        kv.extend(
            last.md
                .file_metadata()
                .key_value_metadata()
                .cloned()
                .unwrap_or_default(),
        );
    }
    let footer = footer_bytes(
        first.version(),
        first.created_by().map(str::to_owned),
        first.schema_descr_ptr(),
        &groups,
        kv,
    )
    .map_err(|e| FormatError::parquet(Some(recording), e))?;
    let n = footer.len();
    let metadata = guarded(recording, "reading the checkpoint", || {
        let md = ParquetMetaDataReader::decode_metadata(&footer[..n - 8])
            .map_err(|e| FormatError::parquet(Some(recording), e))?;
        check_layout(recording, &md, data_len)?;
        Ok(md)
    })?;
    let rows = groups.iter().map(|g| g.num_rows() as u64).sum::<u64>();
    debug_assert_eq!(rows, last.rows);
    Ok(Recovered {
        data_len,
        rows,
        footer,
        metadata,
    })
}

/// Whether `path` ends in a Parquet footer that parses.
fn has_footer(file: &File) -> bool {
    ParquetMetaDataReader::new().parse_and_finish(file).is_ok()
}

/// Reads `recording`'s sidecar, if there is one (`None` when absent).
fn read_sidecar(recording: &Path) -> Result<Option<(File, Vec<u8>)>, FormatError> {
    let ck = checkpoint_path(recording);
    let mut f = match open_nofollow(&ck, false) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FormatError::io(Some(&ck), "open", e)),
    };
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(io_err(Some(&ck), "read"))?;
    Ok(Some((f, bytes)))
}

#[cfg(unix)]
fn is_symlink_error(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

#[cfg(not(unix))]
fn is_symlink_error(_e: &io::Error) -> bool {
    false
}

fn open_nofollow(path: &Path, write: bool) -> io::Result<File> {
    let mut o = File::options();
    o.read(true).write(write);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NOFOLLOW);
    }
    o.open(path)
}

/// The unfinished recording at `path` as of its checkpoint, read-only (for
/// [`crate::RecordingReader::open_recovering`]). `Ok(None)` when there is
/// no sidecar.
pub(crate) fn recover_readonly(path: &Path) -> Result<Option<(File, Recovered)>, FormatError> {
    let Some((_, sidecar)) = read_sidecar(path)? else {
        return Ok(None);
    };
    let mut file = File::open(path).map_err(io_err(Some(path), "open"))?;
    let len = file.metadata().map_err(io_err(Some(path), "stat"))?.len();
    let rec = recover(path, &mut file, len, &sidecar)?;
    Ok(Some((file, rec)))
}

/// Whether a running recorder holds `path`'s checkpoint sidecar (its
/// `flock`); false when there is no sidecar. Where locks are not
/// available (not Unix), any sidecar counts as held.
pub(crate) fn recorder_holds(path: &Path) -> bool {
    match open_nofollow(&checkpoint_path(path), false) {
        Ok(f) => !lock(&f, true),
        Err(_) => false,
    }
}

/// Whether `path` has a checkpoint sidecar.
pub(crate) fn has_checkpoint(path: &Path) -> bool {
    std::fs::symlink_metadata(checkpoint_path(path)).is_ok_and(|m| m.is_file())
}

/// What [`repair`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairReport {
    pub path: PathBuf,
    /// What the file's rows are (the report counts them by name).
    pub content: Content,
    pub outcome: RepairOutcome,
}

/// What the rows of a repaired file are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// A recording: one event per row.
    Events,
    /// A kernel-stack sidecar (`*.stacks.parquet`): one stack per row.
    Stacks,
}

impl Content {
    /// Stacks when the file has the stacks sidecar's `frames` column.
    fn of(md: &ParquetMetaData) -> Content {
        let schema = md.file_metadata().schema_descr();
        let frames = schema
            .columns()
            .iter()
            .any(|c| c.path().parts().first().map(String::as_str) == Some(crate::schema::col::stacks::FRAMES));
        if frames {
            Content::Stacks
        } else {
            Content::Events
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Content::Events => "events",
            Content::Stacks => "stacks",
        }
    }
}

/// Checks the pages of every column chunk of every row group in `md`
/// against the file ([`crate::pagecrc::verify_chunk`]), so that a repair
/// never makes damaged data permanent: the first damaged row group is an
/// error that names it.
fn verify_row_groups(path: &Path, file: &File, md: &ParquetMetaData) -> Result<(), FormatError> {
    for (rg, group) in md.row_groups().iter().enumerate() {
        for c in group.columns() {
            crate::reader::check_chunk(file, c).map_err(|(detail, source)| FormatError::CorruptRowGroup {
                path: path.to_path_buf(),
                row_group: rg,
                column: Some(c.column_path().string()),
                detail: format!("{detail}; not repaired"),
                source,
            })?;
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepairOutcome {
    /// The file already ends in a valid footer: nothing was changed, except
    /// that a stale checkpoint sidecar next to it was removed (`removed_stale_checkpoint`).
    AlreadyComplete { removed_stale_checkpoint: bool },
    /// The file was truncated to its last checkpoint and given the footer.
    Repaired {
        /// Rows and row groups the repaired file holds.
        rows: u64,
        row_groups: usize,
        /// File size after the repair, footer included.
        bytes: u64,
        /// Bytes written after the last checkpoint, cut off (a row group in
        /// progress when the recorder died).
        dropped_bytes: u64,
    },
}

impl fmt::Display for RepairReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.path.display();
        match &self.outcome {
            RepairOutcome::AlreadyComplete {
                removed_stale_checkpoint,
            } => {
                write!(f, "{p}: already complete, nothing to repair")?;
                if *removed_stale_checkpoint {
                    write!(f, " (removed the stale {})", checkpoint_path(&self.path).display())?;
                }
                Ok(())
            }
            RepairOutcome::Repaired {
                rows,
                row_groups,
                bytes,
                dropped_bytes,
            } => {
                let what = self.content.plural();
                write!(
                    f,
                    "{p}: repaired: {rows} {what} in {row_groups} row groups up to the last checkpoint \
                     ({bytes} bytes); {dropped_bytes} bytes written after it were dropped"
                )?;
                match self.content {
                    Content::Events => {
                        write!(
                            f,
                            ". Events after the last checkpoint are lost and the loss count is unknown"
                        )
                    }
                    Content::Stacks => write!(f, ". Stacks written after the last checkpoint are lost"),
                }
            }
        }
    }
}

/// Repairs a recording whose writer died: truncates it to the length of
/// its last checkpoint and appends the footer saved there, making it a
/// normal Parquet file (readable by pyarrow, DuckDB, ...) that holds every
/// row group flushed before the end, then removes the sidecar. A file that
/// is already complete is left as it is ([`RepairOutcome::AlreadyComplete`]).
///
/// Refuses, changing nothing: a file without a sidecar, a sidecar that does
/// not belong to the file (other data), a sidecar still locked by a running
/// recorder. The file is opened without following symlinks.
pub fn repair(path: &Path) -> Result<RepairReport, FormatError> {
    let mut file = open_nofollow(path, true).map_err(|e| {
        if is_symlink_error(&e) {
            FormatError::io(
                Some(path),
                "open",
                io::Error::new(e.kind(), "is a symbolic link; refusing to repair through it"),
            )
        } else {
            FormatError::io(Some(path), "open", e)
        }
    })?;
    let md = file.metadata().map_err(io_err(Some(path), "stat"))?;
    if !md.is_file() {
        return Err(FormatError::io(
            Some(path),
            "open",
            io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    let sidecar = read_sidecar(path)?;
    if let Some((f, _)) = &sidecar {
        if !lock(f, true) {
            return Err(FormatError::Checkpoint {
                path: path.to_path_buf(),
                detail: "is still being recorded (a running recorder holds its checkpoint); stop it first".into(),
            });
        }
    }
    if has_footer(&file) {
        let removed = sidecar.is_some() && std::fs::remove_file(checkpoint_path(path)).is_ok();
        return Ok(RepairReport {
            path: path.to_path_buf(),
            content: Content::Events,
            outcome: RepairOutcome::AlreadyComplete {
                removed_stale_checkpoint: removed,
            },
        });
    }
    let Some((_, bytes)) = sidecar else {
        return Err(FormatError::Checkpoint {
            path: path.to_path_buf(),
            detail: format!(
                "not a complete Parquet file, and there is no checkpoint ({}) to repair it from",
                checkpoint_path(path).display()
            ),
        });
    };
    let len = md.len();
    let rec = recover(path, &mut file, len, &bytes)?;
    verify_row_groups(path, &file, &rec.metadata)?;
    let write = |f: &mut File| -> io::Result<()> {
        f.set_len(rec.data_len)?;
        f.seek(SeekFrom::Start(rec.data_len))?;
        f.write_all(&rec.footer)?;
        f.sync_all()
    };
    write(&mut file).map_err(io_err(Some(path), "write"))?;
    let _ = std::fs::remove_file(checkpoint_path(path));
    Ok(RepairReport {
        path: path.to_path_buf(),
        content: Content::of(&rec.metadata),
        outcome: RepairOutcome::Repaired {
            rows: rec.rows,
            row_groups: rec.metadata.num_row_groups(),
            bytes: rec.data_len + rec.footer.len() as u64,
            dropped_bytes: len - rec.data_len,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_hash() {
        assert_eq!(
            checkpoint_path(Path::new("/d/t.parquet")),
            Path::new("/d/t.parquet.checkpoint")
        );
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

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
