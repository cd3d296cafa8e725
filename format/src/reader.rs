//! Reading recordings back, defensively.
//!
//! `analyze` opens files that may be truncated, foreign, from a newer
//! deeptcp, or rewritten by pyarrow/DuckDB/polars (which may turn dictionary
//! columns into plain strings). [`RecordingReader::open`] checks all of that
//! up front and turns each case into a specific [`FormatError`];
//! [`RecordingReader::events`] then streams rows batch by batch and reports a
//! bad value as [`FormatError::InvalidValue`] with its absolute row index
//! instead of panicking.
//!
//! Bytes change after they are written (disks, copies) and files get
//! crafted, so nothing from the file is trusted blindly: metadata values are
//! bounded ([`crate::schema::value_limit`]), row counts must agree, and rows
//! are read row group by row group, each one's column chunks checked page
//! by page (structure, value counts, CRC32 checksums; a piece at a time, so
//! memory stays bounded) before any of its rows is decoded. A
//! damaged row group is a [`FormatError::CorruptRowGroup`] naming it (and
//! the column and byte), or with [`ReadOptions::skip_corrupt`] a
//! [`FormatError::SkippedRowGroup`] warning after which reading goes on.
//!
//! Schema versions 1 and 2 are read: a v1 file lacks the v2 columns, and its
//! events get their defaults (empty `probe`, `cookie`/`cgroup_id` 0,
//! [`Attribution::Unknown`], all-`None` [`TcpInfo`]).
//!
//! Dictionary-coded strings (`comm`, `probe`) are decoded without a per-row
//! allocation: each dictionary value used in a batch becomes one `Arc<str>`,
//! shared by every row that uses it (and, through a bounded interner, by
//! later batches too).

use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::iter::FusedIterator;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    ArrowPrimitiveType, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, LargeStringArray, PrimitiveArray, RecordBatch, StringArray, StringViewArray};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use crate::event::{canonical_ip, Attribution, Event, EventKind, Family, TcpInfo, TcpState};
use crate::guard::guarded;
use crate::meta::RecordingMeta;
use crate::schema::{self, col, shown};
use crate::FormatError;

/// Rows decoded per step of [`Events`].
const READ_BATCH: usize = 8192;

/// A Parquet file whose footer parsed.
pub(crate) struct OpenedParquet {
    pub file: File,
    pub metadata: ArrowReaderMetadata,
}

/// Opens `path` and parses its Parquet footer and Arrow schema.
pub(crate) fn open_parquet(path: &Path) -> Result<OpenedParquet, FormatError> {
    let file = File::open(path).map_err(|e| FormatError::io(Some(path), "open", e))?;
    let fs_meta = file.metadata().map_err(|e| FormatError::io(Some(path), "stat", e))?;
    if fs_meta.is_dir() {
        return Err(FormatError::io(
            Some(path),
            "open",
            std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a directory"),
        ));
    }
    guarded(path, "reading the footer", || {
        let md = ParquetMetaDataReader::new()
            .parse_and_finish(&file)
            .map_err(|source| FormatError::NotParquet {
                path: path.to_path_buf(),
                source,
            })?;
        check_layout(path, &md, fs_meta.len())?;
        let metadata = ArrowReaderMetadata::try_new(Arc::new(md), ArrowReaderOptions::new())
            .map_err(|e| FormatError::parquet(Some(path), e))?;
        Ok(OpenedParquet { file, metadata })
    })
}

/// Checks the footer's column chunks before anything reads them: each must
/// lie inside the file (the parquet crate panics on negative offsets from a
/// corrupt footer), and use a codec this build can decompress (deeptcp
/// writes zstd; pyarrow, DuckDB and Spark default to snappy), so that
/// neither surfaces in the middle of the event stream.
pub(crate) fn check_layout(path: &Path, md: &ParquetMetaData, file_len: u64) -> Result<(), FormatError> {
    // Row counts are not covered by page checksums: they must agree, or
    // rows would go missing (or be invented) without a word.
    let corrupt =
        |detail: String| FormatError::parquet(Some(path), ParquetError::General(format!("corrupt footer: {detail}")));
    let mut rows: i64 = 0;
    for (rg_idx, rg) in md.row_groups().iter().enumerate() {
        if rg.num_rows() < 0 {
            return Err(corrupt(format!("row group {rg_idx} holds {} rows", rg.num_rows())));
        }
        rows = rows.saturating_add(rg.num_rows());
        for c in rg.columns() {
            // A flat column (no lists) has one value per row.
            if c.column_descr().max_rep_level() == 0 && c.num_values() != rg.num_rows() {
                return Err(corrupt(format!(
                    "row group {rg_idx} holds {} rows but its column chunk `{}` {} values",
                    rg.num_rows(),
                    c.column_path().string(),
                    c.num_values()
                )));
            }
        }
    }
    if rows != md.file_metadata().num_rows() {
        return Err(corrupt(format!(
            "its row groups hold {rows} rows, it says {}",
            md.file_metadata().num_rows()
        )));
    }
    for (rg_idx, rg) in md.row_groups().iter().enumerate() {
        for c in rg.columns() {
            let start = c.dictionary_page_offset().unwrap_or_else(|| c.data_page_offset());
            let inside = u64::try_from(start)
                .ok()
                .zip(u64::try_from(c.compressed_size()).ok())
                .and_then(|(s, l)| s.checked_add(l))
                .is_some_and(|end| end <= file_len);
            if !inside {
                return Err(FormatError::parquet(
                    Some(path),
                    ParquetError::General(format!(
                        "corrupt footer: column chunk `{}` of row group {rg_idx} lies outside the file",
                        c.column_path().string()
                    )),
                ));
            }
            match c.compression() {
                Compression::UNCOMPRESSED | Compression::SNAPPY | Compression::ZSTD(_) => {}
                other => {
                    let codec = match other {
                        Compression::GZIP(_) => "gzip",
                        Compression::BROTLI(_) => "brotli",
                        Compression::LZ4 | Compression::LZ4_RAW => "lz4",
                        Compression::LZO => "lzo",
                        _ => "an unknown codec",
                    };
                    return Err(FormatError::BadColumn {
                        path: path.to_path_buf(),
                        column: c.column_path().string(),
                        detail: format!(
                            "compressed with {codec}, which this build cannot read \
                             (supported: zstd, snappy, uncompressed); rewrite the file with zstd"
                        ),
                    });
                }
            }
        }
    }
    Ok(())
}

/// A string column as stored: plain (Utf8, LargeUtf8, Utf8View) or a
/// dictionary of those with any integer key type.
pub(crate) struct TextColumn<'a> {
    /// Dictionary keys as indices into `values` (`usize::MAX` = key not
    /// representable), with the key array for its null mask.
    keys: Option<(Vec<usize>, &'a dyn Array)>,
    values: Strings<'a>,
    /// The dictionary's values array (identifies the dictionary across batches).
    dict: Option<&'a arrow_array::ArrayRef>,
}

enum Strings<'a> {
    Utf8(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
}

impl<'a> Strings<'a> {
    fn new(a: &'a dyn Array) -> Option<Self> {
        if let Some(s) = a.as_string_opt::<i32>() {
            Some(Strings::Utf8(s))
        } else if let Some(s) = a.as_string_opt::<i64>() {
            Some(Strings::Large(s))
        } else {
            a.as_string_view_opt().map(Strings::View)
        }
    }

    fn len(&self) -> usize {
        match self {
            Strings::Utf8(a) => a.len(),
            Strings::Large(a) => a.len(),
            Strings::View(a) => a.len(),
        }
    }

    /// `None` for null; `i` must be `< len()`.
    fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            Strings::Utf8(a) => (!a.is_null(i)).then(|| a.value(i)),
            Strings::Large(a) => (!a.is_null(i)).then(|| a.value(i)),
            Strings::View(a) => (!a.is_null(i)).then(|| a.value(i)),
        }
    }
}

fn is_plain_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// Dictionary keys as `usize`; `None` for a non-integer key type.
fn keys_to_usize(keys: &dyn Array) -> Option<Vec<usize>> {
    fn conv<T: ArrowPrimitiveType>(keys: &dyn Array) -> Option<Vec<usize>>
    where
        usize: TryFrom<T::Native>,
    {
        keys.as_primitive_opt::<T>().map(|a| {
            a.values()
                .iter()
                .map(|&k| usize::try_from(k).unwrap_or(usize::MAX))
                .collect()
        })
    }
    match keys.data_type() {
        DataType::Int8 => conv::<Int8Type>(keys),
        DataType::Int16 => conv::<Int16Type>(keys),
        DataType::Int32 => conv::<Int32Type>(keys),
        DataType::Int64 => conv::<Int64Type>(keys),
        DataType::UInt8 => conv::<UInt8Type>(keys),
        DataType::UInt16 => conv::<UInt16Type>(keys),
        DataType::UInt32 => conv::<UInt32Type>(keys),
        DataType::UInt64 => conv::<UInt64Type>(keys),
        _ => None,
    }
}

impl<'a> TextColumn<'a> {
    /// Whether a column of this type can be read as text.
    pub(crate) fn type_ok(t: &DataType) -> bool {
        match t {
            DataType::Dictionary(k, v) => k.is_dictionary_key_type() && is_plain_text(v),
            t => is_plain_text(t),
        }
    }

    pub(crate) fn new(a: &'a dyn Array) -> Option<Self> {
        if let Some(d) = a.as_any_dictionary_opt() {
            let keys = d.keys();
            Some(TextColumn {
                keys: Some((keys_to_usize(keys)?, keys)),
                values: Strings::new(d.values().as_ref())?,
                dict: Some(d.values()),
            })
        } else {
            Some(TextColumn {
                keys: None,
                values: Strings::new(a)?,
                dict: None,
            })
        }
    }

    pub(crate) fn len(&self) -> usize {
        match &self.keys {
            Some((k, _)) => k.len(),
            None => self.values.len(),
        }
    }

    /// Where row `i`'s string is in the values array (`None` = null key);
    /// `Err` for a dictionary key out of range or a row past the end.
    fn value_index(&self, i: usize) -> Result<Option<usize>, String> {
        match &self.keys {
            Some((keys, key_arr)) => match keys.get(i) {
                None => Err("row past the end of the column".into()),
                Some(_) if key_arr.is_null(i) => Ok(None),
                Some(&k) if k < self.values.len() => Ok(Some(k)),
                Some(_) => Err("dictionary key out of range".into()),
            },
            None if i < self.values.len() => Ok(Some(i)),
            None => Err("row past the end of the column".into()),
        }
    }

    /// The string at row `i` (`None` = null); `Err` for a dictionary key
    /// out of range or a row past the end.
    pub(crate) fn get(&self, i: usize) -> Result<Option<&'a str>, String> {
        Ok(self.value_index(i)?.and_then(|vi| self.values.get(vi)))
    }
}

/// Most distinct strings [`SharedText`] remembers across batches; beyond
/// that it forgets them all and starts over (bounds memory on hostile files).
const MAX_INTERNED: usize = 1 << 16;

/// The shared `Arc` of `s` in `set` (at most [`MAX_INTERNED`] strings;
/// beyond that it forgets them all and starts over).
fn intern(set: &mut HashSet<Arc<str>>, s: &str) -> Arc<str> {
    if let Some(a) = set.get(s) {
        return Arc::clone(a);
    }
    if set.len() >= MAX_INTERNED {
        set.clear();
    }
    let a: Arc<str> = Arc::from(s);
    set.insert(Arc::clone(&a));
    a
}

/// Turns one text column's strings into shared `Arc<str>`s.
///
/// For a dictionary column each dictionary value is turned into an `Arc`
/// at most once per batch (on first use) and cloned for every row that
/// uses it; across batches, equal strings get the same `Arc` through the
/// interner. A plain string column (a file rewritten by another tool)
/// allocates per row, except that a run of equal values shares one `Arc`.
#[derive(Default)]
struct SharedText {
    /// Distinct dictionary strings seen so far (at most [`MAX_INTERNED`]).
    interned: HashSet<Arc<str>>,
    /// This batch's dictionary: value index → its `Arc`, filled on first use.
    slots: Vec<Option<Arc<str>>>,
    /// Plain columns: the previous row's value.
    last: Option<Arc<str>>,
}

impl SharedText {
    /// Prepares for a new batch whose column is `c`.
    fn start_batch(&mut self, c: &TextColumn<'_>) {
        self.slots.clear();
        if c.keys.is_some() {
            self.slots.resize(c.values.len(), None);
        }
    }

    fn intern(&mut self, s: &str) -> Arc<str> {
        intern(&mut self.interned, s)
    }

    /// Row `i` of `c` (the column passed to the last [`start_batch`](Self::start_batch)).
    fn get(&mut self, c: &TextColumn<'_>, i: usize) -> Result<Option<Arc<str>>, String> {
        if c.keys.is_none() {
            let Some(s) = c.get(i)? else { return Ok(None) };
            if let Some(last) = &self.last {
                if **last == *s {
                    return Ok(Some(Arc::clone(last)));
                }
            }
            let a: Arc<str> = Arc::from(s);
            self.last = Some(Arc::clone(&a));
            return Ok(Some(a));
        }
        let Some(vi) = c.value_index(i)? else { return Ok(None) };
        if let Some(Some(a)) = self.slots.get(vi) {
            return Ok(Some(Arc::clone(a)));
        }
        let Some(s) = c.values.get(vi) else { return Ok(None) };
        let a = self.intern(s);
        if let Some(slot) = self.slots.get_mut(vi) {
            *slot = Some(Arc::clone(&a));
        }
        Ok(Some(a))
    }
}

/// The file's Arrow schema with every top-level dictionary column keyed by
/// `Int32`. The parquet reader decodes a column chunk's dictionary, and
/// re-deduplicates a batch that spans row groups, into the requested key
/// type; with the stored `UInt8` keys (the enum and `probe` columns) a
/// chunk or batch with more than 255 distinct values would fail to decode.
fn widen_dictionary_keys(schema: &arrow_schema::Schema) -> arrow_schema::SchemaRef {
    let fields: Vec<arrow_schema::FieldRef> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Dictionary(k, v)
                if matches!(
                    **k,
                    DataType::Int8 | DataType::UInt8 | DataType::Int16 | DataType::UInt16
                ) =>
            {
                Arc::new(
                    f.as_ref()
                        .clone()
                        .with_data_type(DataType::Dictionary(Box::new(DataType::Int32), v.clone())),
                )
            }
            _ => Arc::clone(f),
        })
        .collect();
    Arc::new(arrow_schema::Schema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    ))
}

/// The schema with the address columns (`saddr`, `daddr`), when plain
/// `Utf8`, read as `Dictionary(Int32, Utf8)`: the parquet reader then hands
/// over each column chunk's dictionary as it is stored (the writer
/// dictionary-encodes them), and each distinct address is parsed once
/// instead of once per row. Values are unchanged; a chunk stored without a
/// dictionary is dictionary-encoded by the reader.
fn dictionary_addresses(schema: &arrow_schema::Schema) -> arrow_schema::SchemaRef {
    let fields: Vec<arrow_schema::FieldRef> = schema
        .fields()
        .iter()
        .map(|f| {
            if (f.name() == col::SADDR || f.name() == col::DADDR) && *f.data_type() == DataType::Utf8 {
                Arc::new(f.as_ref().clone().with_data_type(DataType::Dictionary(
                    Box::new(DataType::Int32),
                    Box::new(DataType::Utf8),
                )))
            } else {
                Arc::clone(f)
            }
        })
        .collect();
    Arc::new(arrow_schema::Schema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    ))
}

/// How each column the reader decodes may be typed.
enum Want {
    Text,
    Exactly(DataType),
}

/// The columns the reader decodes from a file of `version` (1 or 2).
fn required_columns(version: u32) -> Vec<(&'static str, Want)> {
    use Want::{Exactly, Text};
    let mut cols = vec![
        (col::MONO_NS, Exactly(DataType::Int64)),
        (col::KIND, Text),
        (col::PID, Exactly(DataType::UInt32)),
        (col::TID, Exactly(DataType::UInt32)),
        (col::COMM, Text),
        (col::FAMILY, Text),
        (col::SADDR, Text),
        (col::DADDR, Text),
        (col::SPORT, Exactly(DataType::UInt16)),
        (col::DPORT, Exactly(DataType::UInt16)),
        (col::OLDSTATE, Text),
        (col::NEWSTATE, Text),
        (col::SK_ERR, Exactly(DataType::Int32)),
        (col::NETNS, Exactly(DataType::UInt32)),
        (col::STACK_ID, Exactly(DataType::Int64)),
    ];
    if version >= 2 {
        cols.extend([
            (col::PROBE, Text),
            (col::COOKIE, Exactly(DataType::UInt64)),
            (col::CGROUP_ID, Exactly(DataType::UInt64)),
            (col::ATTRIBUTION, Text),
            (col::SND_WND, Exactly(DataType::UInt32)),
            (col::RCV_WND, Exactly(DataType::UInt32)),
            (col::SRTT_US, Exactly(DataType::UInt32)),
            (col::SND_CWND, Exactly(DataType::UInt32)),
            (col::BYTES_ACKED, Exactly(DataType::UInt64)),
            (col::BYTES_RECEIVED, Exactly(DataType::UInt64)),
            (col::WINDOW, Exactly(DataType::UInt32)),
        ]);
    }
    cols
}

/// How a [`RecordingReader`] reads rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Read on past a row group that cannot be read (a page that does not
    /// match its checksum, or data that does not decode) instead of ending
    /// there. Each such row group is reported once, as a
    /// [`FormatError::SkippedRowGroup`] item in the event stream, and
    /// reading goes on with the next row group: the caller prints it as a
    /// warning and carries on. A row group is checked before any of its
    /// rows is handed out, so a damaged one is left out whole; only damage
    /// that shows while decoding (in a file without page checksums) can
    /// leave out just the rest of a row group. Default: off (the first
    /// damaged row group ends the stream with an error).
    pub skip_corrupt: bool,
}

/// An open recording: metadata checked, rows not yet read.
pub struct RecordingReader {
    path: PathBuf,
    meta: RecordingMeta,
    names: crate::Names,
    num_rows: u64,
    num_row_groups: usize,
    finished: bool,
    recovered: bool,
    /// What [`row_groups`](Self::row_groups) hands out.
    groups: RowGroups,
}

impl std::fmt::Debug for RecordingReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingReader")
            .field("path", &self.path)
            .field("meta", &self.meta)
            .field("num_rows", &self.num_rows)
            .finish_non_exhaustive()
    }
}

impl RecordingReader {
    /// Opens a recording: checks that it is Parquet, carries deeptcp
    /// metadata of a supported schema version, and has every column the
    /// reader decodes with a usable type. Reads no rows.
    ///
    /// A file without its footer next to a checkpoint sidecar (a recording
    /// whose recorder was killed, or that is still being recorded) is
    /// [`FormatError::Unfinished`]: [`crate::repair`] it, or read it with
    /// [`open_recovering`](Self::open_recovering).
    pub fn open(path: &Path) -> Result<Self, FormatError> {
        Self::open_with(path, ReadOptions::default())
    }

    /// [`open`](Self::open) with `options`.
    pub fn open_with(path: &Path, options: ReadOptions) -> Result<Self, FormatError> {
        let opened = match open_parquet(path) {
            Err(FormatError::NotParquet { .. }) if crate::paths::has_checkpoint(path) => {
                return Err(FormatError::Unfinished {
                    path: path.to_path_buf(),
                })
            }
            r => r?,
        };
        Self::from_opened(path, opened, false, options)
    }

    pub(crate) fn from_opened(
        path: &Path,
        opened: OpenedParquet,
        recovered: bool,
        options: ReadOptions,
    ) -> Result<Self, FormatError> {
        let pq = Arc::clone(opened.metadata.metadata());
        let kv = schema::kv_map(path, pq.file_metadata().key_value_metadata())?;
        let version = schema::check_version(path, &kv)?;

        // Columns before the remaining metadata, so handing over a stacks
        // sidecar gets a message about columns rather than about keys.
        let arrow_schema = Arc::clone(opened.metadata.schema());
        let mut roots = Vec::new();
        for (name, want) in required_columns(version) {
            let Some((idx, field)) = arrow_schema.column_with_name(name) else {
                let hint = if arrow_schema.column_with_name(col::stacks::FRAMES).is_some() {
                    " (this looks like a .stacks.parquet sidecar; open the recording itself)"
                } else {
                    ""
                };
                return Err(FormatError::BadColumn {
                    path: path.to_path_buf(),
                    column: name.to_owned(),
                    detail: format!("missing{hint}"),
                });
            };
            let ok = match &want {
                Want::Text => TextColumn::type_ok(field.data_type()),
                Want::Exactly(t) => field.data_type() == t,
            };
            if !ok {
                let expected = match want {
                    Want::Text => "a string or dictionary-of-string type".to_owned(),
                    Want::Exactly(t) => t.to_string(),
                };
                return Err(FormatError::BadColumn {
                    path: path.to_path_buf(),
                    column: name.to_owned(),
                    detail: format!("has type {}, expected {expected}", field.data_type()),
                });
            }
            roots.push(idx);
        }

        let decoded = schema::decode_metadata(path, &kv, version)?;
        let names = crate::Names::decode(path, &kv)?;
        let num_rows = u64::try_from(pq.file_metadata().num_rows()).unwrap_or(0);

        let metadata = guarded(path, "reading the schema", || {
            let wide = dictionary_addresses(&widen_dictionary_keys(&arrow_schema));
            ArrowReaderMetadata::try_new(Arc::clone(&pq), ArrowReaderOptions::new().with_schema(wide))
                .map_err(|e| FormatError::parquet(Some(path), e))
        })?;
        let mask = ProjectionMask::roots(metadata.parquet_schema(), roots);
        let file = SharedFile(Arc::new(opened.file));
        // Builds a reader once, so that what would make every row group
        // fail (the projection, the schema) is an error at open.
        ParquetRecordBatchReaderBuilder::new_with_metadata(file.clone(), metadata.clone())
            .with_batch_size(READ_BATCH)
            .with_projection(mask.clone())
            .with_row_groups(Vec::new())
            .build()
            .map_err(|e| FormatError::parquet(Some(path), e))?;
        let mut first_rows = Vec::with_capacity(pq.num_row_groups() + 1);
        let mut row = 0u64;
        for rg in pq.row_groups() {
            first_rows.push(row);
            row = row.saturating_add(u64::try_from(rg.num_rows()).unwrap_or(0));
        }
        first_rows.push(row);
        let groups = RowGroups {
            path: Arc::from(path),
            file,
            metadata,
            mask,
            first_rows: Arc::from(first_rows),
            v2: version >= 2,
            options,
        };

        Ok(RecordingReader {
            path: path.to_path_buf(),
            meta: decoded.meta,
            names,
            num_rows,
            num_row_groups: pq.num_row_groups(),
            finished: decoded.events.is_some() && !recovered,
            recovered,
            groups,
        })
    }

    /// A handle that decodes row groups independently of each other and of
    /// this reader, for decoding one file on several threads. It reads with
    /// this reader's [`ReadOptions`].
    pub fn row_groups(&self) -> RowGroups {
        self.groups.clone()
    }

    /// The options this reader was opened with.
    pub fn options(&self) -> ReadOptions {
        self.groups.options
    }

    /// Recording metadata; `schema_version` is the file's, `lost_events` is 0
    /// when the file was not finished cleanly.
    pub fn meta(&self) -> &RecordingMeta {
        &self.meta
    }

    /// The recording's name tables (cgroup paths, netns names); empty and
    /// not [`recorded`](crate::Names::recorded) for files without them.
    pub fn names(&self) -> &crate::Names {
        &self.names
    }

    /// Rows in the file, from the footer.
    pub fn num_rows(&self) -> u64 {
        self.num_rows
    }

    /// Row groups in the file.
    pub fn num_row_groups(&self) -> usize {
        self.num_row_groups
    }

    /// Whether the writer finished the file (`deeptcp.events` present). A
    /// recovered file is readable but has no `lost_events` total.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Whether this reader reads an unfinished file through its checkpoint
    /// ([`open_recovering`](Self::open_recovering)): the file itself is not
    /// readable Parquet until repaired (or until its recorder closes it).
    pub fn recovered(&self) -> bool {
        self.recovered
    }

    /// The path this reader was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Streams the rows in file order, row group by row group. After the
    /// first error the iterator ends, except that with
    /// [`ReadOptions::skip_corrupt`] a [`FormatError::SkippedRowGroup`] is a
    /// warning and the rows of the next row group follow it.
    pub fn events(self) -> Events {
        let n = self.groups.len();
        Events::new(self.groups, 0..n)
    }
}

/// A recording's row groups, each decodable on its own
/// ([`RecordingReader::row_groups`]). Cheap to clone and shareable across
/// threads: every clone reads the same open file with positional reads.
#[derive(Clone)]
pub struct RowGroups {
    path: Arc<Path>,
    file: SharedFile,
    metadata: ArrowReaderMetadata,
    mask: ProjectionMask,
    /// Absolute index of the first row of each row group, then the row count.
    first_rows: Arc<[u64]>,
    v2: bool,
    options: ReadOptions,
}

impl std::fmt::Debug for RowGroups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowGroups")
            .field("path", &self.path)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl RowGroups {
    /// Number of row groups.
    pub fn len(&self) -> usize {
        self.first_rows.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Absolute index of the first row of row group `rg` (0 past the end).
    pub fn first_row(&self, rg: usize) -> u64 {
        if rg < self.len() {
            self.first_rows.get(rg).copied().unwrap_or(0)
        } else {
            0
        }
    }

    /// Rows in row group `rg` (0 past the end).
    pub fn rows(&self, rg: usize) -> u64 {
        match (self.first_rows.get(rg), self.first_rows.get(rg + 1)) {
            (Some(a), Some(b)) => b.saturating_sub(*a),
            _ => 0,
        }
    }

    /// The rows of row group `rg` (`< len()`), in file order. Errors name
    /// rows by their absolute index in the file, as [`RecordingReader::events`]
    /// does; a row group that cannot be read is a
    /// [`FormatError::CorruptRowGroup`], or with
    /// [`ReadOptions::skip_corrupt`] a [`FormatError::SkippedRowGroup`]
    /// (then the stream's last item).
    pub fn events(&self, rg: usize) -> Result<Events, FormatError> {
        if rg >= self.len() {
            return Err(FormatError::parquet(
                Some(&self.path),
                ParquetError::General(format!("no row group {rg}")),
            ));
        }
        Ok(Events::new(self.clone(), rg..rg + 1))
    }

    /// Checks row group `rg`'s pages (of the columns the reader decodes:
    /// [`check_chunk`]) and returns a reader of its batches.
    fn start(&self, rg: usize) -> Result<ParquetRecordBatchReader, FormatError> {
        let path: &Path = &self.path;
        let md = self.metadata.metadata().row_group(rg);
        for (i, c) in md.columns().iter().enumerate() {
            if !self.mask.leaf_included(i) {
                continue;
            }
            check_chunk(&self.file.0, c).map_err(|(detail, source)| FormatError::CorruptRowGroup {
                path: path.to_path_buf(),
                row_group: rg,
                column: Some(c.column_path().string()),
                detail,
                source,
            })?;
        }
        guarded(path, "opening a row group", || {
            ParquetRecordBatchReaderBuilder::new_with_metadata(self.file.clone(), self.metadata.clone())
                .with_batch_size(READ_BATCH)
                .with_projection(self.mask.clone())
                .with_row_groups(vec![rg])
                .build()
                .map_err(|e| FormatError::parquet(Some(path), e))
        })
        .map_err(|e| self.corrupt(rg, e))
    }

    /// Calls `f` with the `mono_ns` values of row group `rg` (`< len()`),
    /// batch by batch in row order, reading and checking that column alone:
    /// a cheap look at a row group's time range and order before decoding
    /// it (`analyze` plans its time-ordered read with it). Nulls, which
    /// [`events`](Self::events) reports as bad values, are left out.
    pub fn scan_mono_ns(&self, rg: usize, mut f: impl FnMut(&[i64])) -> Result<(), FormatError> {
        let path: &Path = &self.path;
        let mut values = Vec::new();
        self.scan_columns(rg, &[col::MONO_NS], |batch| {
            let Some(mono) = batch.column(0).as_primitive_opt::<Int64Type>() else {
                return Err(FormatError::BadColumn {
                    path: path.to_path_buf(),
                    column: col::MONO_NS.to_owned(),
                    detail: format!("has type {}, expected Int64", batch.column(0).data_type()),
                });
            };
            if mono.null_count() == 0 {
                f(mono.values());
            } else {
                values.clear();
                values.extend(mono.iter().flatten());
                f(&values);
            }
            Ok(())
        })
    }

    /// Calls `f` with the addresses of row group `rg` (`< len()`), source
    /// and destination, reading those two columns alone: a cheap look at
    /// what a recording holds before decoding it (`analyze` sizes its
    /// address columns with it). Each distinct address comes at least once;
    /// repeats may be left out (a dictionary's values are passed once per
    /// batch, and may include values no row uses). Nulls and text that is
    /// no address, which [`events`](Self::events) reports, are left out.
    pub fn scan_addresses(&self, rg: usize, mut f: impl FnMut(IpAddr)) -> Result<(), FormatError> {
        let path: &Path = &self.path;
        let mut last = String::new();
        self.scan_columns(rg, &[col::SADDR, col::DADDR], |batch| {
            for (column, field) in batch.columns().iter().zip(batch.schema_ref().fields()) {
                let text = TextColumn::new(column.as_ref()).ok_or_else(|| FormatError::BadColumn {
                    path: path.to_path_buf(),
                    column: field.name().clone(),
                    detail: format!("has type {}, expected text", column.data_type()),
                })?;
                let mut visit = |s: &str| {
                    // Rows of one socket repeat their address: parse it once.
                    if s != last {
                        last.clear();
                        last.push_str(s);
                        if let Some(a) = parse_addr(s) {
                            f(a);
                        }
                    }
                };
                if text.keys.is_some() {
                    (0..text.values.len())
                        .filter_map(|i| text.values.get(i))
                        .for_each(&mut visit);
                } else {
                    (0..text.len())
                        .filter_map(|i| text.get(i).ok().flatten())
                        .for_each(&mut visit);
                }
            }
            Ok(())
        })
    }

    /// Calls `f` with each record batch of row group `rg` (`< len()`),
    /// reading and checking the columns `names` alone (in the file's order
    /// of columns, which may not be that of `names`).
    fn scan_columns(
        &self,
        rg: usize,
        names: &[&str],
        mut f: impl FnMut(&RecordBatch) -> Result<(), FormatError>,
    ) -> Result<(), FormatError> {
        let path: &Path = &self.path;
        if rg >= self.len() {
            return Err(FormatError::parquet(
                Some(path),
                ParquetError::General(format!("no row group {rg}")),
            ));
        }
        let schema = self.metadata.schema();
        let mut idx = Vec::with_capacity(names.len());
        for name in names {
            idx.push(schema.index_of(name).map_err(|e| FormatError::arrow(Some(path), e))?);
        }
        let only = RowGroups {
            mask: ProjectionMask::roots(self.metadata.parquet_schema(), idx),
            ..self.clone()
        };
        let mut batches = only.start(rg)?;
        loop {
            let next = guarded(path, "decoding a record batch", || {
                batches
                    .next()
                    .transpose()
                    .map_err(|e| FormatError::arrow(Some(path), e))
            })
            .map_err(|e| self.corrupt(rg, e))?;
            let Some(batch) = next else { return Ok(()) };
            f(&batch)?;
        }
    }

    /// `e`, met while decoding row group `rg`, as an error that names it.
    fn corrupt(&self, rg: usize, e: FormatError) -> FormatError {
        let source: Box<dyn std::error::Error + Send + Sync> = match e {
            FormatError::Parquet { source, .. } => Box::new(source),
            FormatError::Arrow { source, .. } => Box::new(source),
            other => return other,
        };
        FormatError::CorruptRowGroup {
            path: self.path.to_path_buf(),
            row_group: rg,
            column: None,
            detail: "decoding failed".into(),
            source: Some(source),
        }
    }
}

/// What is wrong with a column chunk, for [`FormatError::CorruptRowGroup`].
pub(crate) type ChunkError = (String, Option<Box<dyn std::error::Error + Send + Sync>>);

/// Checks the pages of column chunk `c` as stored in `file`
/// ([`crate::pagecrc::verify_chunk`]).
pub(crate) fn check_chunk(file: &File, c: &parquet::file::metadata::ColumnChunkMetaData) -> Result<(), ChunkError> {
    let start = c.dictionary_page_offset().unwrap_or_else(|| c.data_page_offset());
    let (Ok(start), Ok(len)) = (u64::try_from(start), u64::try_from(c.compressed_size())) else {
        return Err(("corrupt data: the footer places it outside the file".into(), None));
    };
    let mut read = |at: u64, buf: &mut [u8]| read_exact_at(file, buf, start.saturating_add(at));
    match crate::pagecrc::verify_chunk(&mut read, len, c.num_values()) {
        Ok(_) => Ok(()),
        Err(crate::pagecrc::ChunkFault::Corrupt { page: Some(at), detail }) => Err((
            format!("corrupt data: the page at byte {} {detail}", start.saturating_add(at)),
            None,
        )),
        Err(crate::pagecrc::ChunkFault::Corrupt { page: None, detail }) => {
            Err((format!("corrupt data: {detail}"), None))
        }
        Err(crate::pagecrc::ChunkFault::Io(e)) => Err(("cannot read it".into(), Some(Box::new(e)))),
    }
}

/// Fills `buf` from `file` at `pos`.
fn read_exact_at(file: &File, mut buf: &mut [u8], mut pos: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match read_at(file, buf, pos)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                pos = pos.saturating_add(n as u64);
            }
        }
    }
    Ok(())
}

/// The recording's open file, shared by every reader of it. Reads are
/// positional (`pread`), so readers on different threads do not disturb
/// each other (a [`File`] clone shares one file offset, and parquet's
/// reader for `File` seeks it).
#[derive(Clone)]
struct SharedFile(Arc<File>);

impl parquet::file::reader::Length for SharedFile {
    fn len(&self) -> u64 {
        // As parquet's implementation for `File`: the current length.
        self.0.metadata().map_or(0, |m| m.len())
    }
}

impl parquet::file::reader::ChunkReader for SharedFile {
    type T = std::io::BufReader<PositionalRead>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(std::io::BufReader::new(PositionalRead {
            file: Arc::clone(&self.0),
            pos: start,
        }))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        let mut buf = vec![0u8; length];
        let mut done = 0;
        while done < length {
            let n = read_at(&self.0, &mut buf[done..], start.saturating_add(done as u64))?;
            if n == 0 {
                return Err(ParquetError::EOF(format!(
                    "Expected to read {length} bytes, read only {done}"
                )));
            }
            done += n;
        }
        Ok(buf.into())
    }
}

/// A [`std::io::Read`] at a position of a shared file.
struct PositionalRead {
    file: Arc<File>,
    pos: u64,
}

impl std::io::Read for PositionalRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = read_at(&self.file, buf, self.pos)?;
        self.pos = self.pos.saturating_add(n as u64);
        Ok(n)
    }
}

/// One positional read, retried on `EINTR`.
fn read_at(file: &File, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
    loop {
        #[cfg(unix)]
        let r = std::os::unix::fs::FileExt::read_at(file, buf, pos);
        #[cfg(windows)]
        let r = std::os::windows::fs::FileExt::seek_read(file, buf, pos);
        #[cfg(not(any(unix, windows)))]
        let r = {
            use std::io::{Read, Seek};
            // No positional reads here: seek and read under one lock.
            static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
            let _held = LOCK.lock().unwrap_or_else(|p| p.into_inner());
            let mut f = file;
            f.seek(std::io::SeekFrom::Start(pos)).and_then(|_| f.read(buf))
        };
        match r {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// Iterator over the events of a recording, decoding one row group at a
/// time, one record batch at a time.
pub struct Events {
    groups: RowGroups,
    /// Row groups not started yet.
    todo: std::ops::Range<usize>,
    /// The row group being read and its batches.
    current: Option<(usize, ParquetRecordBatchReader)>,
    /// Absolute index of the first row of the next batch.
    next_row: u64,
    buf: VecDeque<Event>,
    /// An error found part-way through a batch, yielded after the rows before it.
    pending_err: Option<FormatError>,
    /// No more items after `buf` and `pending_err`.
    done: bool,
    text: TextState,
}

/// Decoding state carried from batch to batch.
#[derive(Default)]
struct TextState {
    comm: SharedText,
    probe: SharedText,
    /// The `probe` of v1 rows.
    empty: Arc<str>,
    /// The column-at-a-time decoder's state.
    fast: FastState,
    /// Its distinct `comm`/`probe` strings (at most [`MAX_INTERNED`]).
    interned: HashSet<Arc<str>>,
}

impl Events {
    fn new(groups: RowGroups, todo: std::ops::Range<usize>) -> Events {
        Events {
            next_row: groups.first_row(todo.start),
            groups,
            todo,
            current: None,
            buf: VecDeque::with_capacity(READ_BATCH),
            pending_err: None,
            done: false,
            text: TextState::default(),
        }
    }

    /// Row group `rg` failed with `e`, its rows from `first_lost` on not
    /// handed out: the stream ends with `e`, or with `skip_corrupt` goes on
    /// after a [`FormatError::SkippedRowGroup`].
    fn fail(&mut self, rg: usize, first_lost: u64, e: FormatError) {
        self.current = None;
        if !self.groups.options.skip_corrupt {
            self.pending_err = Some(e);
            self.done = true;
            return;
        }
        let end = self.groups.first_row(rg).saturating_add(self.groups.rows(rg));
        self.pending_err = Some(FormatError::SkippedRowGroup {
            path: self.groups.path.to_path_buf(),
            row_group: rg,
            rows: self.groups.rows(rg),
            skipped: end.saturating_sub(first_lost),
            source: Box::new(e),
        });
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("path", &self.groups.path)
            .field("next_row", &self.next_row)
            .finish_non_exhaustive()
    }
}

impl Iterator for Events {
    type Item = Result<Event, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(ev) = self.buf.pop_front() {
                return Some(Ok(ev));
            }
            if let Some(e) = self.pending_err.take() {
                return Some(Err(e));
            }
            if self.done {
                return None;
            }
            let Some((rg, batches)) = self.current.as_mut() else {
                let Some(rg) = self.todo.next() else {
                    self.done = true;
                    return None;
                };
                let first = self.groups.first_row(rg);
                self.next_row = first;
                match self.groups.start(rg) {
                    Ok(batches) => self.current = Some((rg, batches)),
                    Err(e) => self.fail(rg, first, e),
                }
                continue;
            };
            let rg = *rg;
            let path: &Path = &self.groups.path;
            let next = guarded(path, "decoding a record batch", || {
                batches
                    .next()
                    .transpose()
                    .map_err(|e| FormatError::arrow(Some(path), e))
            });
            match next {
                Ok(None) => self.current = None,
                Err(e) => {
                    let e = self.groups.corrupt(rg, e);
                    self.fail(rg, self.next_row, e);
                }
                Ok(Some(batch)) => {
                    let row0 = self.next_row;
                    self.next_row += batch.num_rows() as u64;
                    let before = self.buf.len();
                    let v2 = self.groups.v2;
                    if let Err(e) = decode_batch(path, &batch, row0, v2, &mut self.text, &mut self.buf) {
                        let first_lost = row0 + (self.buf.len() - before) as u64;
                        self.fail(rg, first_lost, e);
                    }
                }
            }
        }
    }
}

impl FusedIterator for Events {}

/// Typed views of one record batch's columns.
struct Columns<'a> {
    mono_ns: &'a PrimitiveArray<Int64Type>,
    kind: TextColumn<'a>,
    pid: &'a PrimitiveArray<UInt32Type>,
    tid: &'a PrimitiveArray<UInt32Type>,
    comm: TextColumn<'a>,
    family: TextColumn<'a>,
    saddr: TextColumn<'a>,
    daddr: TextColumn<'a>,
    sport: &'a PrimitiveArray<UInt16Type>,
    dport: &'a PrimitiveArray<UInt16Type>,
    oldstate: TextColumn<'a>,
    newstate: TextColumn<'a>,
    sk_err: &'a PrimitiveArray<Int32Type>,
    netns: &'a PrimitiveArray<UInt32Type>,
    stack_id: &'a PrimitiveArray<Int64Type>,
    /// `None` for a v1 file.
    v2: Option<ColumnsV2<'a>>,
}

/// Typed views of the columns schema v2 added.
struct ColumnsV2<'a> {
    probe: TextColumn<'a>,
    cookie: &'a PrimitiveArray<UInt64Type>,
    cgroup_id: &'a PrimitiveArray<UInt64Type>,
    attribution: TextColumn<'a>,
    snd_wnd: &'a PrimitiveArray<UInt32Type>,
    rcv_wnd: &'a PrimitiveArray<UInt32Type>,
    srtt_us: &'a PrimitiveArray<UInt32Type>,
    snd_cwnd: &'a PrimitiveArray<UInt32Type>,
    bytes_acked: &'a PrimitiveArray<UInt64Type>,
    bytes_received: &'a PrimitiveArray<UInt64Type>,
    window: &'a PrimitiveArray<UInt32Type>,
}

impl<'a> Columns<'a> {
    fn new(path: &Path, batch: &'a RecordBatch, v2: bool) -> Result<Self, FormatError> {
        let n = batch.num_rows();
        let bad = |name: &str, detail: &str| FormatError::BadColumn {
            path: path.to_path_buf(),
            column: name.to_owned(),
            detail: detail.to_owned(),
        };
        let column = |name: &str| -> Result<&'a dyn Array, FormatError> {
            let a = batch
                .column_by_name(name)
                .ok_or_else(|| bad(name, "missing from record batch"))?;
            if a.len() != n {
                return Err(bad(name, "length differs from the record batch"));
            }
            Ok(a.as_ref())
        };
        fn prim<'b, T: ArrowPrimitiveType>(
            a: &'b dyn Array,
            name: &str,
            bad: &dyn Fn(&str, &str) -> FormatError,
        ) -> Result<&'b PrimitiveArray<T>, FormatError> {
            a.as_primitive_opt::<T>()
                .ok_or_else(|| bad(name, "unexpected type in record batch"))
        }
        let text = |name: &str| -> Result<TextColumn<'a>, FormatError> {
            TextColumn::new(column(name)?).ok_or_else(|| bad(name, "unexpected type in record batch"))
        };
        let v2 = if v2 {
            Some(ColumnsV2 {
                probe: text(col::PROBE)?,
                cookie: prim(column(col::COOKIE)?, col::COOKIE, &bad)?,
                cgroup_id: prim(column(col::CGROUP_ID)?, col::CGROUP_ID, &bad)?,
                attribution: text(col::ATTRIBUTION)?,
                snd_wnd: prim(column(col::SND_WND)?, col::SND_WND, &bad)?,
                rcv_wnd: prim(column(col::RCV_WND)?, col::RCV_WND, &bad)?,
                srtt_us: prim(column(col::SRTT_US)?, col::SRTT_US, &bad)?,
                snd_cwnd: prim(column(col::SND_CWND)?, col::SND_CWND, &bad)?,
                bytes_acked: prim(column(col::BYTES_ACKED)?, col::BYTES_ACKED, &bad)?,
                bytes_received: prim(column(col::BYTES_RECEIVED)?, col::BYTES_RECEIVED, &bad)?,
                window: prim(column(col::WINDOW)?, col::WINDOW, &bad)?,
            })
        } else {
            None
        };
        Ok(Columns {
            v2,
            mono_ns: prim(column(col::MONO_NS)?, col::MONO_NS, &bad)?,
            kind: text(col::KIND)?,
            pid: prim(column(col::PID)?, col::PID, &bad)?,
            tid: prim(column(col::TID)?, col::TID, &bad)?,
            comm: text(col::COMM)?,
            family: text(col::FAMILY)?,
            saddr: text(col::SADDR)?,
            daddr: text(col::DADDR)?,
            sport: prim(column(col::SPORT)?, col::SPORT, &bad)?,
            dport: prim(column(col::DPORT)?, col::DPORT, &bad)?,
            oldstate: text(col::OLDSTATE)?,
            newstate: text(col::NEWSTATE)?,
            sk_err: prim(column(col::SK_ERR)?, col::SK_ERR, &bad)?,
            netns: prim(column(col::NETNS)?, col::NETNS, &bad)?,
            stack_id: prim(column(col::STACK_ID)?, col::STACK_ID, &bad)?,
        })
    }
}

/// A bad value: (column, detail).
type Bad = (&'static str, String);

const NULL_IN_NON_NULL: &str = "null in a non-null column";

fn req<T: ArrowPrimitiveType>(a: &PrimitiveArray<T>, i: usize, name: &'static str) -> Result<T::Native, Bad> {
    if a.is_null(i) {
        Err((name, NULL_IN_NON_NULL.into()))
    } else {
        Ok(a.value(i))
    }
}

fn opt<T: ArrowPrimitiveType>(a: &PrimitiveArray<T>, i: usize) -> Option<T::Native> {
    (!a.is_null(i)).then(|| a.value(i))
}

fn text_opt<'a>(c: &TextColumn<'a>, i: usize, name: &'static str) -> Result<Option<&'a str>, Bad> {
    c.get(i).map_err(|d| (name, d))
}

fn text_req<'a>(c: &TextColumn<'a>, i: usize, name: &'static str) -> Result<&'a str, Bad> {
    text_opt(c, i, name)?.ok_or_else(|| (name, NULL_IN_NON_NULL.into()))
}

fn addr(c: &TextColumn<'_>, i: usize, name: &'static str) -> Result<IpAddr, Bad> {
    let s = text_req(c, i, name)?;
    s.parse::<IpAddr>()
        .map(canonical_ip)
        .map_err(|_| (name, format!("not an IP address: {}", shown(s))))
}

fn state(c: &TextColumn<'_>, i: usize, name: &'static str) -> Result<Option<TcpState>, Bad> {
    match text_opt(c, i, name)? {
        None => Ok(None),
        Some(s) => TcpState::parse(s)
            .map(Some)
            .ok_or_else(|| (name, format!("unknown TCP state {}", shown(s)))),
    }
}

fn shared_req(t: &mut SharedText, c: &TextColumn<'_>, i: usize, name: &'static str) -> Result<Arc<str>, Bad> {
    t.get(c, i)
        .map_err(|d| (name, d))?
        .ok_or_else(|| (name, NULL_IN_NON_NULL.into()))
}

fn decode_row(c: &Columns<'_>, i: usize, text: &mut TextState) -> Result<Event, Bad> {
    let kind_s = text_req(&c.kind, i, col::KIND)?;
    let kind = EventKind::parse(kind_s).ok_or_else(|| (col::KIND, format!("unknown event kind {}", shown(kind_s))))?;
    let family_s = text_req(&c.family, i, col::FAMILY)?;
    let family =
        Family::parse(family_s).ok_or_else(|| (col::FAMILY, format!("unknown address family {}", shown(family_s))))?;
    let (probe, cookie, cgroup_id, attribution, tcp) = match &c.v2 {
        None => (Arc::clone(&text.empty), 0, 0, Attribution::Unknown, TcpInfo::default()),
        Some(v) => {
            let attr_s = text_req(&v.attribution, i, col::ATTRIBUTION)?;
            let attribution = Attribution::parse(attr_s)
                .ok_or_else(|| (col::ATTRIBUTION, format!("unknown attribution {}", shown(attr_s))))?;
            let tcp = TcpInfo {
                snd_wnd: opt(v.snd_wnd, i),
                rcv_wnd: opt(v.rcv_wnd, i),
                srtt_us: opt(v.srtt_us, i),
                snd_cwnd: opt(v.snd_cwnd, i),
                bytes_acked: opt(v.bytes_acked, i),
                bytes_received: opt(v.bytes_received, i),
                window: opt(v.window, i),
            };
            (
                shared_req(&mut text.probe, &v.probe, i, col::PROBE)?,
                req(v.cookie, i, col::COOKIE)?,
                req(v.cgroup_id, i, col::CGROUP_ID)?,
                attribution,
                tcp,
            )
        }
    };
    Ok(Event {
        mono_ns: req(c.mono_ns, i, col::MONO_NS)?,
        kind,
        pid: req(c.pid, i, col::PID)?,
        tid: req(c.tid, i, col::TID)?,
        comm: shared_req(&mut text.comm, &c.comm, i, col::COMM)?,
        family,
        saddr: addr(&c.saddr, i, col::SADDR)?,
        daddr: addr(&c.daddr, i, col::DADDR)?,
        sport: req(c.sport, i, col::SPORT)?,
        dport: req(c.dport, i, col::DPORT)?,
        oldstate: state(&c.oldstate, i, col::OLDSTATE)?,
        newstate: state(&c.newstate, i, col::NEWSTATE)?,
        sk_err: req(c.sk_err, i, col::SK_ERR)?,
        netns: req(c.netns, i, col::NETNS)?,
        stack_id: opt(c.stack_id, i),
        probe,
        cookie,
        cgroup_id,
        attribution,
        tcp,
    })
}

/// A parsed dictionary value of one column ([`Memo`]).
#[derive(Clone)]
enum Parsed<T> {
    Unseen,
    Null,
    Bad,
    Value(T),
}

/// One text column's dictionary values, each parsed on first use. Kept
/// from batch to batch while the column's dictionary stays the same (the
/// parquet reader hands every batch of a column chunk the same dictionary
/// array); the held clone keeps that array alive, so identity by pointer is
/// sound.
struct Memo<T> {
    dict: Option<arrow_array::ArrayRef>,
    slots: Vec<Parsed<T>>,
}

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Memo {
            dict: None,
            slots: Vec::new(),
        }
    }
}

impl<T: Clone> Memo<T> {
    /// Calls `emit` with each row's parsed value (`None` = null) of `c`, in
    /// order, parsing each distinct dictionary value once; `false` as soon
    /// as a row is invalid (a key out of range, a value `parse` rejects) or
    /// `emit` says so. Plain columns are parsed row by row.
    fn each(
        &mut self,
        c: &TextColumn<'_>,
        mut parse: impl FnMut(&str) -> Option<T>,
        mut emit: impl FnMut(Option<T>) -> bool,
    ) -> bool {
        let Some((keys, key_arr)) = &c.keys else {
            for i in 0..c.values.len() {
                let v = match c.values.get(i) {
                    None => None,
                    Some(s) => match parse(s) {
                        Some(v) => Some(v),
                        None => return false,
                    },
                };
                if !emit(v) {
                    return false;
                }
            }
            return true;
        };
        let same = matches!((&self.dict, c.dict), (Some(a), Some(b)) if Arc::ptr_eq(a, b));
        if !same {
            self.dict = c.dict.cloned();
            self.slots.clear();
            self.slots.resize(c.values.len(), Parsed::Unseen);
        }
        let nulls = key_arr.nulls();
        for (i, &k) in keys.iter().enumerate() {
            if nulls.is_some_and(|n| n.is_null(i)) {
                if !emit(None) {
                    return false;
                }
                continue;
            }
            let Some(slot) = self.slots.get_mut(k) else {
                return false; // key out of range
            };
            if let Parsed::Unseen = slot {
                *slot = match c.values.get(k) {
                    None => Parsed::Null,
                    Some(s) => parse(s).map_or(Parsed::Bad, Parsed::Value),
                };
            }
            let v = match slot {
                Parsed::Value(v) => Some(v.clone()),
                Parsed::Null => None,
                Parsed::Bad | Parsed::Unseen => return false,
            };
            if !emit(v) {
                return false;
            }
        }
        true
    }

    /// The rows of `c` into `out` (cleared first); `false` if a row is
    /// invalid or null where `required`.
    fn column(
        &mut self,
        c: &TextColumn<'_>,
        required: bool,
        parse: impl FnMut(&str) -> Option<T>,
        out: &mut Vec<Option<T>>,
    ) -> bool {
        out.clear();
        out.reserve(c.len());
        self.each(c, parse, |v| {
            if required && v.is_none() {
                return false;
            }
            out.push(v);
            true
        })
    }
}

/// State of the column-at-a-time decoder ([`decode_fast`]), kept from batch
/// to batch: parsed dictionaries and per-column scratch vectors.
#[derive(Default)]
struct FastState {
    kind: (Memo<EventKind>, Vec<Option<EventKind>>),
    family: (Memo<Family>, Vec<Option<Family>>),
    saddr: (Memo<IpAddr>, Vec<Option<IpAddr>>),
    daddr: (Memo<IpAddr>, Vec<Option<IpAddr>>),
    oldstate: (Memo<TcpState>, Vec<Option<TcpState>>),
    newstate: (Memo<TcpState>, Vec<Option<TcpState>>),
    attribution: (Memo<Attribution>, Vec<Option<Attribution>>),
    comm: (Memo<Arc<str>>, Vec<Option<Arc<str>>>),
    probe: (Memo<Arc<str>>, Vec<Option<Arc<str>>>),
}

fn parse_addr(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>().ok().map(canonical_ip)
}

/// A non-null primitive column's values; `None` if it holds a null.
fn required<T: ArrowPrimitiveType>(a: &PrimitiveArray<T>) -> Option<&[T::Native]> {
    (a.null_count() == 0).then(|| a.values().as_ref())
}

/// Row `i` of a nullable primitive column.
#[inline]
fn nullable<T: ArrowPrimitiveType>(a: &PrimitiveArray<T>, i: usize) -> Option<T::Native> {
    match a.nulls() {
        Some(n) if n.is_null(i) => None,
        _ => a.values().get(i).copied(),
    }
}

/// Decodes a whole batch a column at a time, each distinct dictionary value
/// (event kinds, states, addresses, comms) parsed once. Returns `false`,
/// having appended nothing, when any row is invalid: [`decode_batch`] then
/// decodes row by row to report the first bad value exactly as it always
/// did, after the rows before it.
fn decode_fast(c: &Columns<'_>, text: &mut TextState, out: &mut VecDeque<Event>) -> bool {
    let n = c.kind.len();
    let f = &mut text.fast;
    let ok = f.kind.0.column(&c.kind, true, EventKind::parse, &mut f.kind.1)
        && f.family.0.column(&c.family, true, Family::parse, &mut f.family.1)
        && f.saddr.0.column(&c.saddr, true, parse_addr, &mut f.saddr.1)
        && f.daddr.0.column(&c.daddr, true, parse_addr, &mut f.daddr.1)
        && f.oldstate
            .0
            .column(&c.oldstate, false, TcpState::parse, &mut f.oldstate.1)
        && f.newstate
            .0
            .column(&c.newstate, false, TcpState::parse, &mut f.newstate.1);
    if !ok {
        return false;
    }
    let interned = &mut text.interned;
    let ok = f
        .comm
        .0
        .column(&c.comm, true, |s| Some(intern(interned, s)), &mut f.comm.1);
    if !ok {
        return false;
    }
    let (Some(mono_ns), Some(pid), Some(tid), Some(sport), Some(dport), Some(sk_err), Some(netns)) = (
        required(c.mono_ns),
        required(c.pid),
        required(c.tid),
        required(c.sport),
        required(c.dport),
        required(c.sk_err),
        required(c.netns),
    ) else {
        return false;
    };
    let v2 = match &c.v2 {
        None => None,
        Some(v) => {
            let ok = f
                .attribution
                .0
                .column(&v.attribution, true, Attribution::parse, &mut f.attribution.1)
                && f.probe
                    .0
                    .column(&v.probe, true, |s| Some(intern(interned, s)), &mut f.probe.1);
            let (true, Some(cookie), Some(cgroup_id)) = (ok, required(v.cookie), required(v.cgroup_id)) else {
                return false;
            };
            Some((v, cookie, cgroup_id))
        }
    };
    let lens = [
        f.kind.1.len(),
        f.family.1.len(),
        f.saddr.1.len(),
        f.daddr.1.len(),
        f.oldstate.1.len(),
        f.newstate.1.len(),
        f.comm.1.len(),
        mono_ns.len(),
        pid.len(),
        tid.len(),
        sport.len(),
        dport.len(),
        sk_err.len(),
        netns.len(),
    ];
    if lens.iter().any(|&l| l != n) {
        return false;
    }
    if let Some((_, cookie, cgroup_id)) = &v2 {
        if f.attribution.1.len() != n || f.probe.1.len() != n || cookie.len() != n || cgroup_id.len() != n {
            return false;
        }
    }
    let rows = f
        .kind
        .1
        .iter()
        .zip(&f.family.1)
        .zip(f.saddr.1.iter().zip(&f.daddr.1))
        .zip(f.oldstate.1.iter().zip(&f.newstate.1))
        .zip(&f.comm.1)
        .enumerate();
    for (i, ((((kind, family), (saddr, daddr)), (oldstate, newstate)), comm)) in rows {
        // Required columns were checked above: every `?` here holds a value.
        let (Some(kind), Some(family), Some(saddr), Some(daddr), Some(comm)) = (*kind, *family, *saddr, *daddr, comm)
        else {
            return false;
        };
        let (probe, cookie, cgroup_id, attribution, tcp) = match &v2 {
            None => (Arc::clone(&text.empty), 0, 0, Attribution::Unknown, TcpInfo::default()),
            Some((v, cookie, cgroup_id)) => {
                let (Some(Some(probe)), Some(Some(attribution))) = (f.probe.1.get(i), f.attribution.1.get(i)) else {
                    return false;
                };
                let tcp = TcpInfo {
                    snd_wnd: nullable(v.snd_wnd, i),
                    rcv_wnd: nullable(v.rcv_wnd, i),
                    srtt_us: nullable(v.srtt_us, i),
                    snd_cwnd: nullable(v.snd_cwnd, i),
                    bytes_acked: nullable(v.bytes_acked, i),
                    bytes_received: nullable(v.bytes_received, i),
                    window: nullable(v.window, i),
                };
                (Arc::clone(probe), cookie[i], cgroup_id[i], *attribution, tcp)
            }
        };
        out.push_back(Event {
            mono_ns: mono_ns[i],
            kind,
            pid: pid[i],
            tid: tid[i],
            comm: Arc::clone(comm),
            family,
            saddr,
            daddr,
            sport: sport[i],
            dport: dport[i],
            oldstate: *oldstate,
            newstate: *newstate,
            sk_err: sk_err[i],
            netns: netns[i],
            stack_id: nullable(c.stack_id, i),
            probe,
            cookie,
            cgroup_id,
            attribution,
            tcp,
        });
    }
    true
}

/// Decodes `batch` (with the v2 columns when `v2`) into `out` up to the first bad row.
fn decode_batch(
    path: &Path,
    batch: &RecordBatch,
    row0: u64,
    v2: bool,
    text: &mut TextState,
    out: &mut VecDeque<Event>,
) -> Result<(), FormatError> {
    let cols = Columns::new(path, batch, v2)?;
    debug_assert_eq!(cols.kind.len(), batch.num_rows());
    let before = out.len();
    if decode_fast(&cols, text, out) {
        return Ok(());
    }
    // Some row is bad: decode row by row to find and report the first one.
    out.truncate(before);
    text.comm.start_batch(&cols.comm);
    if let Some(v) = &cols.v2 {
        text.probe.start_batch(&v.probe);
    }
    for i in 0..batch.num_rows() {
        match decode_row(&cols, i, text) {
            Ok(ev) => out.push_back(ev),
            Err((column, detail)) => {
                return Err(FormatError::InvalidValue {
                    path: path.to_path_buf(),
                    row: row0 + i as u64,
                    column: column.to_owned(),
                    detail,
                })
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{DictionaryArray, Int32Array, UInt16Array};

    #[test]
    fn text_column_dictionary_key_types_and_empty_values() {
        // all-null keys over an empty dictionary (an all-null enum column)
        let d = DictionaryArray::<Int32Type>::try_new(
            Int32Array::from(vec![None, None]),
            Arc::new(StringArray::from(Vec::<&str>::new())),
        )
        .unwrap();
        let c = TextColumn::new(&d).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(0), Ok(None));
        assert_eq!(c.get(1), Ok(None));
        assert!(c.get(2).is_err(), "past the end is an error, not a panic");

        let d = DictionaryArray::<UInt16Type>::try_new(
            UInt16Array::from(vec![Some(1), None, Some(0)]),
            Arc::new(LargeStringArray::from(vec!["a", "b"])),
        )
        .unwrap();
        let c = TextColumn::new(&d).unwrap();
        assert_eq!(c.get(0), Ok(Some("b")));
        assert_eq!(c.get(1), Ok(None));
        assert_eq!(c.get(2), Ok(Some("a")));

        let plain = StringViewArray::from(vec![Some("x"), None]);
        let c = TextColumn::new(&plain).unwrap();
        assert_eq!(c.get(0), Ok(Some("x")));
        assert_eq!(c.get(1), Ok(None));
        assert!(c.get(5).is_err());

        assert!(TextColumn::new(&Int32Array::from(vec![1])).is_none());
        assert!(TextColumn::type_ok(&DataType::Dictionary(
            Box::new(DataType::Int8),
            Box::new(DataType::Utf8View)
        )));
        assert!(!TextColumn::type_ok(&DataType::Dictionary(
            Box::new(DataType::Int8),
            Box::new(DataType::Binary)
        )));
    }

    #[test]
    fn shared_text_interns_dictionary_values_and_reuses_plain_runs() {
        let mut t = SharedText::default();
        let d = DictionaryArray::<UInt8Type>::try_new(
            vec![Some(1), Some(0), None, Some(1), Some(3)].into(),
            Arc::new(StringArray::from(vec![Some("a"), Some("b"), Some("unused"), None])),
        )
        .unwrap();
        let c = TextColumn::new(&d).unwrap();
        t.start_batch(&c);
        let r: Vec<_> = (0..5).map(|i| t.get(&c, i).unwrap()).collect();
        assert_eq!(r[0].as_deref(), Some("b"));
        assert_eq!(r[1].as_deref(), Some("a"));
        assert_eq!(r[2], None);
        assert!(Arc::ptr_eq(r[0].as_ref().unwrap(), r[3].as_ref().unwrap()));
        assert_eq!(r[4], None, "a null dictionary value reads as null");
        assert!(t.get(&c, 5).is_err());
        assert_eq!(t.interned.len(), 2, "only used values are interned");

        // next batch, another dictionary with the same string: same Arc
        let d2 = DictionaryArray::<UInt8Type>::try_new(vec![Some(0)].into(), Arc::new(StringArray::from(vec!["b"])))
            .unwrap();
        let c2 = TextColumn::new(&d2).unwrap();
        t.start_batch(&c2);
        assert!(Arc::ptr_eq(&t.get(&c2, 0).unwrap().unwrap(), r[0].as_ref().unwrap()));

        // plain strings: a run of equal values shares one Arc
        let plain = StringArray::from(vec![Some("x"), Some("x"), None, Some("y")]);
        let c3 = TextColumn::new(&plain).unwrap();
        t.start_batch(&c3);
        let x0 = t.get(&c3, 0).unwrap().unwrap();
        let x1 = t.get(&c3, 1).unwrap().unwrap();
        assert!(Arc::ptr_eq(&x0, &x1));
        assert_eq!(t.get(&c3, 2).unwrap(), None);
        assert_eq!(t.get(&c3, 3).unwrap().as_deref(), Some("y"));
    }

    #[test]
    fn memo_parses_each_dictionary_value_once_and_rejects_bad_rows() {
        let values: arrow_array::ArrayRef = Arc::new(StringArray::from(vec![Some("1"), Some("x"), None, Some("2")]));
        let d = DictionaryArray::<Int32Type>::try_new(
            vec![Some(0), Some(3), None, Some(0), Some(2)].into(),
            Arc::clone(&values),
        )
        .unwrap();
        let c = TextColumn::new(&d).unwrap();
        let mut memo = Memo::<u32>::default();
        let mut calls = 0;
        let mut out = Vec::new();
        let parse = |s: &str| s.parse().ok();
        assert!(memo.column(
            &c,
            false,
            |s| {
                calls += 1;
                parse(s)
            },
            &mut out
        ));
        assert_eq!(out, [Some(1), Some(2), None, Some(1), None]);
        assert_eq!(calls, 2, "each used value parsed once");
        // Null where required.
        assert!(!memo.column(&c, true, parse, &mut out));
        // The next batch over the same dictionary reuses what was parsed.
        let d2 = DictionaryArray::<Int32Type>::try_new(vec![Some(3), Some(0)].into(), Arc::clone(&values)).unwrap();
        let c2 = TextColumn::new(&d2).unwrap();
        let mut again = 0;
        assert!(memo.column(
            &c2,
            true,
            |s| {
                again += 1;
                parse(s)
            },
            &mut out
        ));
        assert_eq!((out.as_slice(), again), ([Some(2), Some(1)].as_slice(), 0));
        // A value that does not parse, and a key out of range, are bad rows.
        let d3 = DictionaryArray::<Int32Type>::try_new(vec![Some(0), Some(1)].into(), Arc::clone(&values)).unwrap();
        assert!(!memo.column(&TextColumn::new(&d3).unwrap(), false, parse, &mut out));
        let short: arrow_array::ArrayRef = Arc::new(StringArray::from(vec!["5"]));
        let keys = Int32Array::from(vec![0, 1]);
        let c4 = TextColumn {
            keys: Some((vec![0, 1], &keys)),
            values: Strings::new(short.as_ref()).unwrap(),
            dict: Some(&short),
        };
        assert!(!memo.column(&c4, false, parse, &mut out));
        // Plain columns: row by row.
        let plain = StringArray::from(vec![Some("7"), None]);
        assert!(memo.column(&TextColumn::new(&plain).unwrap(), false, parse, &mut out));
        assert_eq!(out, [Some(7), None]);
    }

    #[test]
    fn widened_schema_keeps_names_and_widens_only_narrow_dictionary_keys() {
        let s = crate::schema::event_schema();
        let w = widen_dictionary_keys(&s);
        assert_eq!(s.fields().len(), w.fields().len());
        for (a, b) in s.fields().iter().zip(w.fields().iter()) {
            assert_eq!(a.name(), b.name());
            assert_eq!(a.is_nullable(), b.is_nullable());
            match (a.data_type(), b.data_type()) {
                (DataType::Dictionary(k, v), DataType::Dictionary(wk, wv)) => {
                    assert_eq!(v, wv);
                    let want = if **k == DataType::UInt32 {
                        DataType::UInt32
                    } else {
                        DataType::Int32
                    };
                    assert_eq!(**wk, want, "{}", a.name());
                }
                (x, y) => assert_eq!(x, y),
            }
        }
    }

    #[test]
    fn shown_truncates_on_char_boundary() {
        let s = "é".repeat(100);
        let out = shown(&s);
        assert!(out.ends_with("..."));
        assert!(out.len() < 80);
        assert_eq!(shown("ok"), "\"ok\"");
    }
}
