//! Parquet page checksums: writing them, and checking a column chunk page
//! by page.
//!
//! A bit flipped on disk or in a copy must not silently change a recording
//! (an address, a timestamp, a socket cookie). Parquet has the place for it:
//! the `crc` field of every page header, a CRC32 of the page's bytes as
//! stored, which Arrow C++ (pyarrow), parquet-java (Spark) and DuckDB can
//! verify. parquet 60.1 verifies it when reading (its `crc` feature, which
//! this crate enables) but never writes it (`crc: None` in its page header
//! serializer). So [`ChecksummedWriter`] encodes each column chunk with
//! parquet's own Arrow column writers, keeping the serialized pages through
//! a [`PageStoreFactory`], inserts the checksum into every page header,
//! fixes the chunk's metadata for the longer headers (sizes, offsets, the
//! offset index) and only then splices the chunk into the file.
//!
//! [`verify_chunk`] walks a stored column chunk without decompressing it:
//! every page header must parse, every page must fit, the pages must fill
//! the chunk exactly, their value counts must add up to the chunk's, and a
//! page that carries a checksum must match it. The reader runs it before it
//! decodes a row group (so a damaged row group is found before any of its
//! rows is handed out, and the error names the column and the page), and
//! [`crate::repair`] runs it over every row group it keeps.
//!
//! Page headers are Thrift compact-protocol structs; the few fields needed
//! here are read with a small bounded parser that skips everything else.

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use bytes::Bytes;
use parquet::arrow::arrow_writer::{
    compute_leaves, ArrowColumnWriter, ArrowRowGroupWriterFactory, ArrowWriterOptions, PageKey, PageStore,
    PageStoreArgs, PageStoreFactory,
};
use parquet::arrow::ArrowWriter;
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::ParquetError;
use parquet::file::metadata::{KeyValue, ParquetMetaData, RowGroupMetaData};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;

/// Thrift compact type ids.
mod ty {
    pub const STOP: u8 = 0;
    pub const TRUE: u8 = 1;
    pub const FALSE: u8 = 2;
    pub const BYTE: u8 = 3;
    pub const I16: u8 = 4;
    pub const I32: u8 = 5;
    pub const I64: u8 = 6;
    pub const DOUBLE: u8 = 7;
    pub const BINARY: u8 = 8;
    pub const LIST: u8 = 9;
    pub const SET: u8 = 10;
    pub const MAP: u8 = 11;
    pub const STRUCT: u8 = 12;
}

/// Parquet page types (`PageType` in parquet.thrift).
pub(crate) const DATA_PAGE: i32 = 0;
pub(crate) const DICTIONARY_PAGE: i32 = 2;
pub(crate) const DATA_PAGE_V2: i32 = 3;

fn general(msg: String) -> ParquetError {
    ParquetError::General(msg)
}

// ---------------------------------------------------------------------------
// Thrift compact protocol, just enough for page headers
// ---------------------------------------------------------------------------

/// Deepest nesting of structs/lists skipped (page headers nest 3 deep).
const MAX_DEPTH: u32 = 16;

/// The parse error of a header cut short (more bytes may make it parse).
const TRUNCATED: &str = "page header runs past the end";

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let v = *self.b.get(self.at).ok_or(TRUNCATED)?;
        self.at += 1;
        Ok(v)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("page header holds an overlong integer".into())
    }

    fn zigzag(&mut self) -> Result<i64, String> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn i32(&mut self) -> Result<i32, String> {
        i32::try_from(self.zigzag()?).map_err(|_| "page header holds an out-of-range i32".to_owned())
    }

    fn skip_bytes(&mut self, n: u64) -> Result<(), String> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.at.checked_add(n))
            .filter(|&e| e <= self.b.len())
            .ok_or(TRUNCATED)?;
        self.at = end;
        Ok(())
    }

    /// A field header: `(type, id)`, or `(STOP, 0)`.
    fn field(&mut self, last: i16) -> Result<(u8, i16), String> {
        let b = self.byte()?;
        let t = b & 0x0f;
        if t == ty::STOP {
            return Ok((ty::STOP, 0));
        }
        let delta = i16::from(b >> 4);
        let id = if delta == 0 {
            i16::try_from(self.zigzag()?).map_err(|_| "page header holds a bad field id".to_owned())?
        } else {
            last.checked_add(delta).ok_or("page header holds a bad field id")?
        };
        Ok((t, id))
    }

    /// Skips one element of a list, set or map (where a boolean is a byte).
    fn element(&mut self, t: u8, depth: u32) -> Result<(), String> {
        if t == ty::TRUE || t == ty::FALSE {
            self.byte().map(drop)
        } else {
            self.skip(t, depth)
        }
    }

    fn skip(&mut self, t: u8, depth: u32) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("page header nests too deep".into());
        }
        match t {
            ty::TRUE | ty::FALSE => Ok(()),
            ty::BYTE => self.byte().map(drop),
            ty::I16 | ty::I32 | ty::I64 => self.varint().map(drop),
            ty::DOUBLE => self.skip_bytes(8),
            ty::BINARY => {
                let n = self.varint()?;
                self.skip_bytes(n)
            }
            ty::LIST | ty::SET => {
                let h = self.byte()?;
                let n = match h >> 4 {
                    15 => self.varint()?,
                    n => u64::from(n),
                };
                // Every element takes at least a byte: `n` is bounded by the input.
                for _ in 0..n {
                    self.element(h & 0x0f, depth + 1)?;
                }
                Ok(())
            }
            ty::MAP => {
                let n = self.varint()?;
                if n == 0 {
                    return Ok(());
                }
                let kv = self.byte()?;
                for _ in 0..n {
                    self.element(kv >> 4, depth + 1)?;
                    self.element(kv & 0x0f, depth + 1)?;
                }
                Ok(())
            }
            ty::STRUCT => {
                let mut last = 0;
                loop {
                    let (t, id) = self.field(last)?;
                    if t == ty::STOP {
                        return Ok(());
                    }
                    self.skip(t, depth + 1)?;
                    last = id;
                }
            }
            other => Err(format!("page header holds unknown Thrift type {other}")),
        }
    }
}

/// What the checks need from a page header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageHeader {
    pub page_type: i32,
    pub compressed_size: usize,
    pub crc: Option<u32>,
    /// Values in a data page (v1 or v2); `None` for other pages.
    pub num_values: Option<i64>,
    /// Bytes of the header itself.
    pub len: usize,
}

/// Parses the page header at the start of `b`.
pub(crate) fn parse_header(b: &[u8]) -> Result<PageHeader, String> {
    let mut c = Cursor { b, at: 0 };
    let (mut page_type, mut compressed, mut crc, mut num_values) = (None, None, None, None);
    let mut last = 0;
    loop {
        let (t, id) = c.field(last)?;
        if t == ty::STOP {
            break;
        }
        match (id, t) {
            (1, ty::I32) => page_type = Some(c.i32()?),
            (3, ty::I32) => compressed = Some(c.i32()?),
            (4, ty::I32) => crc = Some(c.i32()? as u32),
            // data_page_header / data_page_header_v2: field 1 is num_values.
            (5 | 8, ty::STRUCT) => {
                let mut last = 0;
                loop {
                    let (t, id) = c.field(last)?;
                    if t == ty::STOP {
                        break;
                    }
                    if (id, t) == (1, ty::I32) {
                        num_values = Some(i64::from(c.i32()?));
                    } else {
                        c.skip(t, 1)?;
                    }
                    last = id;
                }
            }
            _ => c.skip(t, 0)?,
        }
        last = id;
    }
    let page_type = page_type.ok_or("page header lacks the page type")?;
    let compressed = compressed.ok_or("page header lacks the page size")?;
    let compressed_size =
        usize::try_from(compressed).map_err(|_| format!("page header gives a negative page size ({compressed})"))?;
    Ok(PageHeader {
        page_type,
        compressed_size,
        crc,
        num_values,
        len: c.at,
    })
}

/// Appends `v` as a zigzag varint (Thrift compact i32).
fn put_i32(out: &mut Vec<u8>, v: i32) {
    let mut z = ((v << 1) ^ (v >> 31)) as u32;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// The page header `header` (as parquet 60.1 serializes it: fields 1, 2, 3
/// in short form, no field 4) with field 4, the CRC32 of `page`, inserted;
/// and the page's type.
pub(crate) fn with_crc(header: &[u8], page: &[u8]) -> Result<(Vec<u8>, i32), ParquetError> {
    let unexpected = || general("unexpected page header layout; cannot add its checksum".into());
    let mut c = Cursor { b: header, at: 0 };
    let mut page_type = 0;
    let mut size = 0;
    for id in 1..=3 {
        let (t, got) = c.field(id - 1).map_err(|_| unexpected())?;
        if (t, got) != (ty::I32, id) || header.get(c.at - 1) != Some(&0x15) {
            return Err(unexpected());
        }
        let v = c.i32().map_err(|_| unexpected())?;
        match id {
            1 => page_type = v,
            3 => size = v,
            _ => {}
        }
    }
    if usize::try_from(size).ok() != Some(page.len()) {
        return Err(general(format!(
            "page header gives {size} bytes for a page of {}",
            page.len()
        )));
    }
    let split = c.at;
    let next = *header.get(split).ok_or_else(unexpected)?;
    let delta = next >> 4;
    // The next field, relative to field 4 instead of 3 (or the struct's stop).
    let next = match (next & 0x0f, delta) {
        (ty::STOP, _) => next,
        (_, 2..=15) => ((delta - 1) << 4) | (next & 0x0f),
        _ => return Err(unexpected()),
    };
    let mut out = Vec::with_capacity(header.len() + 6);
    out.extend_from_slice(&header[..split]);
    out.push((1 << 4) | ty::I32);
    put_i32(&mut out, crc32fast::hash(page) as i32);
    out.push(next);
    out.extend_from_slice(&header[split + 1..]);
    Ok((out, page_type))
}

// ---------------------------------------------------------------------------
// Checking a stored column chunk
// ---------------------------------------------------------------------------

/// What is wrong with a column chunk ([`verify_chunk`]).
#[derive(Debug)]
pub(crate) enum ChunkFault {
    /// The bytes do not hold what the footer says. `page`: the offset of
    /// the bad page within the chunk, when one page is at fault; `detail`
    /// then says what is wrong with it ("does not match its checksum ...").
    Corrupt { page: Option<u64>, detail: String },
    /// The chunk could not be read.
    Io(std::io::Error),
}

/// What [`verify_chunk`] found in a good chunk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ChunkCheck {
    pub pages: usize,
    /// Pages that carry a checksum (all of them in a file written by this
    /// crate; none in older files or most other tools' files).
    pub checksummed: usize,
}

/// Bytes read at a time while checking a page.
const READ_PIECE: usize = 64 << 10;
/// Largest page header read (page headers with statistics of long strings
/// can be large; none is near this).
const MAX_HEADER: usize = 16 << 20;

/// Checks the stored bytes of one column chunk — `len` bytes, all its
/// pages with their headers — whose metadata says it holds `num_values`
/// values. `read(offset, buf)` fills `buf` with the chunk's bytes from
/// `offset` on. Memory is bounded whatever the chunk and its headers claim:
/// pages are checked as they are read, a piece at a time.
pub(crate) fn verify_chunk(
    read: &mut dyn FnMut(u64, &mut [u8]) -> std::io::Result<()>,
    len: u64,
    num_values: i64,
) -> Result<ChunkCheck, ChunkFault> {
    let mut at = 0u64;
    let mut check = ChunkCheck::default();
    let mut values: i64 = 0;
    let mut buf = Vec::new();
    while at < len {
        let fault = |detail: String| ChunkFault::Corrupt { page: Some(at), detail };
        let left = len - at;
        // The header, read in growing pieces until it parses.
        let mut want = 256usize;
        let h = loop {
            let n = usize::try_from(left).map_or(want, |l| l.min(want));
            buf.resize(n, 0);
            read(at, &mut buf).map_err(ChunkFault::Io)?;
            match parse_header(&buf) {
                Ok(h) => break h,
                Err(e) if e == TRUNCATED && n == want && want < MAX_HEADER => want *= 4,
                Err(e) => return Err(fault(format!("has an unreadable header ({e})"))),
            }
        };
        let start = at + h.len as u64;
        let end = start
            .checked_add(h.compressed_size as u64)
            .filter(|&e| e <= len)
            .ok_or_else(|| {
                fault(format!(
                    "runs past the end of its column chunk ({} bytes)",
                    h.compressed_size
                ))
            })?;
        if let Some(want) = h.crc {
            let mut crc = crc32fast::Hasher::new();
            let mut pos = start;
            buf.resize(READ_PIECE, 0);
            while pos < end {
                let n = usize::try_from(end - pos).map_or(READ_PIECE, |l| l.min(READ_PIECE));
                read(pos, &mut buf[..n]).map_err(ChunkFault::Io)?;
                crc.update(&buf[..n]);
                pos += n as u64;
            }
            let got = crc.finalize();
            if got != want {
                return Err(fault(format!(
                    "does not match its checksum (CRC32 {got:08x}, stored {want:08x})"
                )));
            }
            check.checksummed += 1;
        }
        if matches!(h.page_type, DATA_PAGE | DATA_PAGE_V2) {
            let n = h
                .num_values
                .ok_or_else(|| fault("has no value count in its header".into()))?;
            if n < 0 {
                return Err(fault(format!("has {n} values in its header")));
            }
            values = values.saturating_add(n);
        }
        check.pages += 1;
        at = end;
    }
    if values != num_values {
        return Err(ChunkFault::Corrupt {
            page: None,
            detail: format!("its pages hold {values} values, the footer says {num_values}"),
        });
    }
    Ok(check)
}

/// [`verify_chunk`] over a chunk in memory.
#[cfg(test)]
fn verify_slice(chunk: &[u8], num_values: i64) -> Result<ChunkCheck, String> {
    let mut read = |at: u64, buf: &mut [u8]| -> std::io::Result<()> {
        let at = at as usize;
        let src = chunk
            .get(at..at + buf.len())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    };
    verify_chunk(&mut read, chunk.len() as u64, num_values).map_err(|f| match f {
        ChunkFault::Corrupt { detail, .. } => detail,
        ChunkFault::Io(e) => e.to_string(),
    })
}

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

/// The serialized pages of the column chunks being encoded, per column.
type Captured = Arc<Mutex<Vec<Bytes>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Hands parquet's Arrow column writers page stores whose pages
/// [`ChecksummedWriter`] takes back at the end of the row group.
#[derive(Debug, Default)]
struct Capture {
    /// (column index, its store's pages) for the row group in progress.
    stores: Mutex<Vec<(usize, Captured)>>,
}

impl Capture {
    /// The pages of every column of the row group in progress, by column
    /// index, leaving nothing behind.
    fn take(&self) -> Vec<(usize, Vec<Bytes>)> {
        let mut stores = std::mem::take(&mut *lock(&self.stores));
        stores.sort_by_key(|(i, _)| *i);
        stores
            .into_iter()
            .map(|(i, pages)| (i, std::mem::take(&mut *lock(&pages))))
            .collect()
    }
}

impl PageStoreFactory for Capture {
    fn create(&self, args: &PageStoreArgs<'_>) -> parquet::errors::Result<Box<dyn PageStore>> {
        let pages = Captured::default();
        lock(&self.stores).push((args.column_index(), Arc::clone(&pages)));
        Ok(Box::new(CaptureStore { pages, resident: 0 }))
    }
}

/// One column chunk's pages, in the order the column writer produced them
/// (each page as two blobs: header, then data).
struct CaptureStore {
    pages: Captured,
    resident: usize,
}

impl PageStore for CaptureStore {
    fn put(&mut self, value: Bytes) -> parquet::errors::Result<PageKey> {
        let mut pages = lock(&self.pages);
        self.resident += value.len();
        pages.push(value);
        Ok(PageKey::new(pages.len() as u64 - 1))
    }

    fn take(&mut self, _key: PageKey) -> parquet::errors::Result<Bytes> {
        // Chunks are spliced by `ChecksummedWriter`, never by parquet.
        Err(general("checksummed pages are spliced by deeptcp's writer".into()))
    }

    fn memory_size(&self) -> usize {
        self.resident
    }
}

/// One column chunk with checksummed page headers, and its metadata
/// adjusted to match.
fn checksum_chunk(mut close: ColumnCloseResult, blobs: Vec<Bytes>) -> Result<(Bytes, ColumnCloseResult), ParquetError> {
    if !blobs.len().is_multiple_of(2) {
        return Err(general("a page without its header".into()));
    }
    let before: usize = blobs.iter().map(Bytes::len).sum();
    if i64::try_from(before).ok() != Some(close.metadata.compressed_size()) {
        return Err(general(format!(
            "column chunk of {before} bytes, its metadata says {}",
            close.metadata.compressed_size()
        )));
    }
    let mut dictionary = Vec::new();
    let mut data = Vec::with_capacity(blobs.len() / 2);
    let mut total = 0;
    for pair in blobs.chunks_exact(2) {
        let (header, page_type) = with_crc(&pair[0], &pair[1])?;
        total += header.len() + pair[1].len();
        if page_type == DICTIONARY_PAGE {
            dictionary.push((header, &pair[1]));
        } else {
            data.push((header, &pair[1]));
        }
    }
    let mut out = Vec::with_capacity(total);
    for (h, p) in &dictionary {
        out.extend_from_slice(h);
        out.extend_from_slice(p);
    }
    let dictionary_len = out.len();
    let mut locations = Vec::with_capacity(data.len());
    for (h, p) in &data {
        locations.push((out.len(), h.len() + p.len()));
        out.extend_from_slice(h);
        out.extend_from_slice(p);
    }
    let to_i64 = |v: usize| i64::try_from(v).map_err(|_| general("column chunk too large".into()));
    let growth = to_i64(out.len())? - to_i64(before)?;
    let md = close.metadata;
    let uncompressed = md.uncompressed_size() + growth;
    close.metadata = md
        .into_builder()
        .set_total_compressed_size(to_i64(out.len())?)
        .set_total_uncompressed_size(uncompressed)
        .set_dictionary_page_offset((!dictionary.is_empty()).then_some(0))
        .set_data_page_offset(to_i64(dictionary_len)?)
        .build()?;
    if let Some(index) = close.offset_index.as_mut() {
        if index.page_locations.len() != locations.len() {
            return Err(general(format!(
                "{} data pages, {} in the offset index",
                locations.len(),
                index.page_locations.len()
            )));
        }
        for (loc, (offset, len)) in index.page_locations.iter_mut().zip(locations) {
            loc.offset = to_i64(offset)?;
            loc.compressed_page_size = i32::try_from(len).map_err(|_| general("page too large".into()))?;
        }
    }
    close.bytes_written = close.bytes_written.saturating_add(growth.unsigned_abs());
    Ok((Bytes::from(out), close))
}

/// Writes record batches as a Parquet file whose every page carries its
/// CRC32 (see the module docs). The subset of `ArrowWriter`'s interface that
/// the writers here use; row groups end at
/// `WriterProperties::max_row_group_row_count` rows or at [`flush`](Self::flush).
pub(crate) struct ChecksummedWriter<W: Write + Send> {
    writer: SerializedFileWriter<W>,
    factory: ArrowRowGroupWriterFactory,
    capture: Arc<Capture>,
    schema: SchemaRef,
    /// The row group in progress: its column writers and rows.
    in_progress: Option<(Vec<ArrowColumnWriter>, usize)>,
    max_rows: usize,
}

impl<W: Write + Send> ChecksummedWriter<W> {
    /// Starts a file in `out` (writes the magic) with the Arrow schema
    /// embedded, as `ArrowWriter::try_new` does.
    pub(crate) fn try_new(out: W, schema: SchemaRef, props: WriterProperties) -> Result<Self, ParquetError> {
        let max_rows = props.max_row_group_row_count().unwrap_or(usize::MAX).max(1);
        let capture = Arc::new(Capture::default());
        let factory: Arc<dyn PageStoreFactory> = capture.clone();
        let options = ArrowWriterOptions::new()
            .with_properties(props)
            .with_page_store_factory(factory);
        let (writer, factory) =
            ArrowWriter::try_new_with_options(out, Arc::clone(&schema), options)?.into_serialized_writer()?;
        Ok(ChecksummedWriter {
            writer,
            factory,
            capture,
            schema,
            in_progress: None,
            max_rows,
        })
    }

    /// Encodes `batch`, ending row groups at the row limit.
    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<(), ParquetError> {
        let mut remaining = batch.clone();
        while remaining.num_rows() > 0 {
            let (writers, buffered) = match &mut self.in_progress {
                Some(p) => p,
                slot => {
                    // A new row group: nothing of the last one may linger.
                    self.capture.take();
                    let writers = self
                        .factory
                        .create_column_writers(self.writer.flushed_row_groups().len())?;
                    slot.insert((writers, 0))
                }
            };
            let room = self.max_rows - *buffered;
            let now = if remaining.num_rows() > room {
                let now = remaining.slice(0, room);
                remaining = remaining.slice(room, remaining.num_rows() - room);
                now
            } else {
                std::mem::replace(&mut remaining, batch.slice(0, 0))
            };
            let mut leaves = writers.iter_mut();
            for (field, column) in self.schema.fields().iter().zip(now.columns()) {
                for leaf in compute_leaves(field, column)? {
                    leaves
                        .next()
                        .ok_or_else(|| general("more leaf columns than column writers".into()))?
                        .write(&leaf)?;
                }
            }
            *buffered += now.num_rows();
            if *buffered >= self.max_rows {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Rows in the row group in progress.
    pub(crate) fn in_progress_rows(&self) -> usize {
        self.in_progress.as_ref().map_or(0, |(_, n)| *n)
    }

    /// Ends the row group in progress (if any): checksums its pages and
    /// writes it to the (buffered) output.
    pub(crate) fn flush(&mut self) -> Result<(), ParquetError> {
        let Some((writers, _)) = self.in_progress.take() else {
            return Ok(());
        };
        let mut closes = Vec::with_capacity(writers.len());
        for w in writers {
            // The chunk's pages are in `capture`; only its metadata is needed.
            closes.push(w.close()?.close().clone());
        }
        let pages = self.capture.take();
        if pages.len() != closes.len() || pages.iter().enumerate().any(|(i, (c, _))| i != *c) {
            return Err(general(format!(
                "pages of {} column chunks captured for {} columns",
                pages.len(),
                closes.len()
            )));
        }
        let mut rg = self.writer.next_row_group()?;
        for (close, (_, blobs)) in closes.into_iter().zip(pages) {
            let (bytes, close) = checksum_chunk(close, blobs)?;
            rg.append_column(&bytes, close)?;
        }
        rg.close()?;
        Ok(())
    }

    /// Writes a row group of column chunks encoded elsewhere (in file
    /// order, each page already checksummed). Only between row groups of
    /// [`write`](Self::write).
    pub(crate) fn append_row_group(&mut self, chunks: Vec<(Bytes, ColumnCloseResult)>) -> Result<(), ParquetError> {
        if self.in_progress.is_some() {
            return Err(general("a row group is in progress".into()));
        }
        let mut rg = self.writer.next_row_group()?;
        for (bytes, close) in chunks {
            rg.append_column(&bytes, close)?;
        }
        rg.close()?;
        Ok(())
    }

    pub(crate) fn flushed_row_groups(&self) -> &[RowGroupMetaData] {
        self.writer.flushed_row_groups()
    }

    /// Bytes handed to the output so far (buffered ones included).
    pub(crate) fn bytes_written(&self) -> usize {
        self.writer.bytes_written()
    }

    /// Flushes the output's buffer.
    pub(crate) fn sync(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }

    pub(crate) fn append_key_value_metadata(&mut self, kv: KeyValue) {
        self.writer.append_key_value_metadata(kv);
    }

    pub(crate) fn inner(&self) -> &W {
        self.writer.inner()
    }

    /// The output. Writing to it directly corrupts the file.
    pub(crate) fn inner_mut(&mut self) -> &mut W {
        self.writer.inner_mut()
    }

    /// Ends the row group in progress and writes the footer.
    pub(crate) fn finish(&mut self) -> Result<ParquetMetaData, ParquetError> {
        self.flush()?;
        self.writer.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_is_inserted_as_field_4_and_reads_back() {
        // type DATA_PAGE, sizes 10 / 3, data_page_header {num_values 7}
        let header = [0x15, 0x00, 0x15, 0x14, 0x15, 0x06, 0x2c, 0x15, 0x0e, 0x00, 0x00];
        let page = b"abc";
        let parsed = parse_header(&header).unwrap();
        assert_eq!(
            parsed,
            PageHeader {
                page_type: DATA_PAGE,
                compressed_size: 3,
                crc: None,
                num_values: Some(7),
                len: header.len()
            }
        );
        let (with, t) = with_crc(&header, page).unwrap();
        assert_eq!(t, DATA_PAGE);
        let parsed = parse_header(&with).unwrap();
        assert_eq!(parsed.crc, Some(crc32fast::hash(page)));
        assert_eq!((parsed.num_values, parsed.len), (Some(7), with.len()));
        // A chunk of that page checks; a changed byte does not.
        let mut chunk = with.clone();
        chunk.extend_from_slice(page);
        assert_eq!(
            verify_slice(&chunk, 7),
            Ok(ChunkCheck {
                pages: 1,
                checksummed: 1
            })
        );
        assert!(verify_slice(&chunk, 8).unwrap_err().contains("7 values"));
        let n = chunk.len();
        chunk[n - 1] ^= 1;
        assert!(verify_slice(&chunk, 7).unwrap_err().contains("checksum"));
        assert!(verify_slice(&chunk[..n - 1], 7).unwrap_err().contains("past the end"));
        // Sizes that disagree with the page are refused.
        assert!(with_crc(&header, b"ab").is_err());
    }

    #[test]
    fn long_headers_and_pages_are_read_in_pieces() {
        // A header with a 100 KB binary field (statistics of a long string),
        // then a page of 300 KB: both longer than one read.
        let page = vec![7u8; 300_000];
        let mut header = vec![0x15, 0x00, 0x15];
        put_i32(&mut header, 300_000);
        header.push(0x15);
        put_i32(&mut header, 300_000);
        header.push(0x2c); // field 5: data_page_header
        header.push(0x15);
        put_i32(&mut header, 3);
        header.push(0x18); // field 2: binary (unknown to the check, skipped)
        let mut n = 100_000u32;
        while n >= 0x80 {
            header.push(n as u8 | 0x80);
            n >>= 7;
        }
        header.push(n as u8);
        header.extend(std::iter::repeat_n(b'x', 100_000));
        header.extend([0x00, 0x00]);
        let (mut chunk, _) = with_crc(&header, &page).unwrap();
        chunk.extend_from_slice(&page);
        assert_eq!(verify_slice(&chunk, 3).unwrap().checksummed, 1);
        let n = chunk.len();
        chunk[n - 100_000] ^= 0x40;
        assert!(verify_slice(&chunk, 3).unwrap_err().contains("checksum"));
    }

    #[test]
    fn hostile_headers_are_errors() {
        for bad in [
            &[][..],
            &[0x15],
            &[0x15, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            &[0x1c; 64],
            &[0x19, 0xf8, 0xff, 0xff, 0xff, 0x0f],
            &[0x18, 0xff, 0xff, 0xff, 0xff, 0x0f],
            &[0x1f],
        ] {
            assert!(parse_header(bad).is_err(), "{bad:?}");
        }
        // Nesting is bounded.
        let deep = [0x1c; 4096];
        assert!(parse_header(&deep).is_err());
        // A negative size.
        assert!(parse_header(&[0x15, 0x00, 0x15, 0x00, 0x15, 0x01, 0x00]).is_err());
    }
}
