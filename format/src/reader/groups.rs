//! A recording's row groups, each decodable on its own, and the iterator
//! over their events: each row group's pages are checked before any of its
//! rows is handed out, and a damaged one ends the stream or, with
//! [`ReadOptions::skip_corrupt`], is left out with a warning.

use std::collections::VecDeque;
use std::iter::FusedIterator;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, RecordBatch};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use parquet::errors::ParquetError;

use super::decode::{decode_batch, parse_addr, TextState};
use super::io::{check_chunk, SharedFile};
use super::text::TextColumn;
use super::{ReadOptions, READ_BATCH};
use crate::event::Event;
use crate::guard::guarded;
use crate::schema::col;
use crate::FormatError;

/// A recording's row groups, each decodable on its own
/// ([`RecordingReader::row_groups`](super::RecordingReader::row_groups)). Cheap to clone and shareable across
/// threads: every clone reads the same open file with positional reads.
#[derive(Clone)]
pub struct RowGroups {
    pub(super) path: Arc<Path>,
    pub(super) file: SharedFile,
    pub(super) metadata: ArrowReaderMetadata,
    pub(super) mask: ProjectionMask,
    /// Absolute index of the first row of each row group, then the row count.
    pub(super) first_rows: Arc<[u64]>,
    pub(super) v2: bool,
    pub(super) options: ReadOptions,
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
    /// rows by their absolute index in the file, as [`RecordingReader::events`](super::RecordingReader::events)
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
                text.each_stored(&mut visit);
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

impl Events {
    pub(super) fn new(groups: RowGroups, todo: std::ops::Range<usize>) -> Events {
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
