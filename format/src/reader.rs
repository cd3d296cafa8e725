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
//! The parts: `open` (the footer and the columns checked), `io` (positional
//! reads, page checks), `groups` ([`RowGroups`], the [`Events`] iterator),
//! `decode` (record batches into events, schema versions 1 and 2), `text`
//! (text columns, shared strings). Reading an unfinished file through its
//! checkpoint is [`crate::recovery`]'s
//! ([`RecordingReader::open_recovering`]).

mod decode;
mod groups;
mod io;
mod open;
mod text;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;

use crate::guard::guarded;
use crate::meta::RecordingMeta;
use crate::schema;
use crate::FormatError;
pub use groups::{Events, RowGroups};
pub(crate) use io::check_chunk;
use io::SharedFile;
pub(crate) use open::{check_layout, open_parquet, OpenedParquet};
pub(crate) use text::TextColumn;

/// Rows decoded per step of [`Events`].
const READ_BATCH: usize = 8192;

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
        let roots = open::check_columns(path, &arrow_schema, version)?;

        let decoded = schema::decode_metadata(path, &kv, version)?;
        let names = crate::Names::decode(path, &kv)?;
        let num_rows = u64::try_from(pq.file_metadata().num_rows()).unwrap_or(0);

        let metadata = guarded(path, "reading the schema", || {
            let wide = open::read_schema(&arrow_schema);
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
