//! The kernel-stack sidecar (`x.stacks.parquet` next to `x.parquet`).
//!
//! A Parquet file has one schema, and stack frames are a list per stack that
//! many events share, so they live in their own small table keyed by
//! `stack_id` instead of bloating every event row or the key-value metadata.
//! Frames are symbolised text (`function+0xoff`), never raw kernel addresses.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{Int64Builder, ListBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::ZstdLevel;
use parquet::file::metadata::KeyValue;

use crate::guard::guarded;
use crate::reader::TextColumn;
use crate::recovery::open_parquet_recovering;
use crate::schema::{self, col, key, SCHEMA_VERSION};
use crate::writer::output::Output;
use crate::writer::{base_properties, WriteSummary};
use crate::FormatError;

/// Stacks buffered before they are encoded.
const STACK_BATCH: usize = 1024;

fn frames_item_field() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Utf8, false))
}

/// Writes the stacks sidecar. Push each distinct stack once; `finish` it.
/// Like [`crate::EventWriter`], it can keep a checkpoint sidecar
/// ([`with_checkpoints`](Self::with_checkpoints), extended at each
/// [`flush`](Self::flush)) and be closed at its last checkpoint after a
/// failed write.
pub struct StackWriter {
    out: Output,
    schema: SchemaRef,
    ids: Int64Builder,
    frames: ListBuilder<StringBuilder>,
    pending: usize,
    rows: u64,
}

impl StackWriter {
    /// Starts a sidecar in `file` (zstd, metadata `deeptcp.schema_version`).
    pub fn new(file: File) -> Result<Self, FormatError> {
        Self::create(file, None)
    }

    /// Like [`new`](Self::new) for the file at `path`, with a checkpoint
    /// sidecar (see [`crate::EventWriter::with_checkpoints`]).
    pub fn with_checkpoints(file: File, path: &Path) -> Result<Self, FormatError> {
        Self::create(file, Some(path))
    }

    fn create(file: File, path: Option<&Path>) -> Result<Self, FormatError> {
        let level = ZstdLevel::try_new(3).map_err(|e| FormatError::parquet(None, e))?;
        let props = base_properties(level, 131_072)
            .set_key_value_metadata(Some(vec![KeyValue::new(
                key::SCHEMA_VERSION.to_owned(),
                SCHEMA_VERSION.to_string(),
            )]))
            .build();
        let schema = schema::stacks_schema();
        let out = Output::new(file, path, Arc::clone(&schema), props, path.is_some())?;
        Ok(StackWriter {
            out,
            schema,
            ids: Int64Builder::new(),
            frames: ListBuilder::new(StringBuilder::new()).with_field(frames_item_field()),
            pending: 0,
            rows: 0,
        })
    }

    /// Adds one stack; `frames` innermost first.
    pub fn push(&mut self, stack_id: i64, frames: &[String]) -> Result<(), FormatError> {
        self.ids.append_value(stack_id);
        for f in frames {
            self.frames.values().append_value(f);
        }
        self.frames.append(true);
        self.pending += 1;
        self.rows += 1;
        if self.pending >= STACK_BATCH {
            self.write_batch()?;
        }
        Ok(())
    }

    fn write_batch(&mut self) -> Result<(), FormatError> {
        if self.pending == 0 {
            return Ok(());
        }
        self.pending = 0;
        let columns: Vec<ArrayRef> = vec![Arc::new(self.ids.finish()), Arc::new(self.frames.finish())];
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns).map_err(|e| FormatError::arrow(None, e))?;
        self.out.write(&batch)
    }

    /// Ends the row group and takes a checkpoint; a no-op when nothing was
    /// pushed since the last flush.
    pub fn flush(&mut self) -> Result<(), FormatError> {
        self.write_batch()?;
        self.out.flush()
    }

    /// Stacks pushed so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes the footer, fsyncs and removes the checkpoint sidecar; on
    /// failure closes the file at its last checkpoint (best effort) and
    /// returns the error.
    pub fn finish(mut self) -> Result<WriteSummary, FormatError> {
        match self.try_finish() {
            Ok(s) => Ok(s),
            Err(e) => {
                let _ = self.close_at_checkpoint();
                Err(e)
            }
        }
    }

    /// [`finish`](Self::finish) without the fallback.
    pub fn try_finish(&mut self) -> Result<WriteSummary, FormatError> {
        self.write_batch()?;
        self.out.finish(Vec::new(), self.rows)
    }

    /// Closes the file at its last checkpoint (see
    /// [`crate::EventWriter::close_at_checkpoint`]).
    pub fn close_at_checkpoint(&mut self) -> Result<WriteSummary, FormatError> {
        self.out.close_at_checkpoint()
    }
}

/// Reads a whole stacks sidecar into `stack_id → frames`. A duplicated id
/// keeps its last row. A stacks file whose recorder was killed is read
/// through its checkpoint (as [`crate::repair`] would keep it), unchanged.
pub fn read_stacks(path: &Path) -> Result<HashMap<i64, Vec<String>>, FormatError> {
    let (opened, _) = open_parquet_recovering(path)?;
    let kv = schema::kv_map(path, opened.metadata.metadata().file_metadata().key_value_metadata())?;
    schema::check_version(path, &kv)?;

    let arrow_schema = opened.metadata.schema();
    let bad = |column: &str, detail: String| FormatError::BadColumn {
        path: path.to_path_buf(),
        column: column.to_owned(),
        detail,
    };
    for (name, ok) in [
        (
            col::stacks::STACK_ID,
            (|t: &DataType| *t == DataType::Int64) as fn(&DataType) -> bool,
        ),
        (col::stacks::FRAMES, |t: &DataType| match t {
            DataType::List(f) | DataType::LargeList(f) => TextColumn::type_ok(f.data_type()),
            _ => false,
        }),
    ] {
        match arrow_schema.field_with_name(name) {
            Ok(f) if ok(f.data_type()) => {}
            Ok(f) => return Err(bad(name, format!("unexpected type {}", f.data_type()))),
            Err(_) => return Err(bad(name, "missing".into())),
        }
    }

    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(opened.file, opened.metadata)
        .with_batch_size(8192)
        .build()
        .map_err(|e| FormatError::parquet(Some(path), e))?;

    guarded(path, "decoding stacks", || {
        let mut out = HashMap::new();
        let mut row0: u64 = 0;
        for batch in reader {
            let batch = batch.map_err(|e| FormatError::arrow(Some(path), e))?;
            decode_stacks_batch(path, &batch, row0, &mut out)?;
            row0 += batch.num_rows() as u64;
        }
        Ok(out)
    })
}

fn decode_stacks_batch(
    path: &Path,
    batch: &RecordBatch,
    row0: u64,
    out: &mut HashMap<i64, Vec<String>>,
) -> Result<(), FormatError> {
    let invalid = |i: usize, column: &str, detail: String| FormatError::InvalidValue {
        path: path.to_path_buf(),
        row: row0 + i as u64,
        column: column.to_owned(),
        detail,
    };
    let bad = |column: &str| FormatError::BadColumn {
        path: path.to_path_buf(),
        column: column.to_owned(),
        detail: "unexpected type in record batch".into(),
    };
    let ids = batch
        .column_by_name(col::stacks::STACK_ID)
        .and_then(|a| a.as_primitive_opt::<Int64Type>())
        .ok_or_else(|| bad(col::stacks::STACK_ID))?;
    let frames_col = batch
        .column_by_name(col::stacks::FRAMES)
        .ok_or_else(|| bad(col::stacks::FRAMES))?;
    // Lists are read as (offsets, flat values); both offset widths accepted.
    let (offsets, values): (Vec<usize>, &ArrayRef) = if let Some(l) = frames_col.as_list_opt::<i32>() {
        (l.value_offsets().iter().map(|o| *o as usize).collect(), l.values())
    } else if let Some(l) = frames_col.as_list_opt::<i64>() {
        (l.value_offsets().iter().map(|o| *o as usize).collect(), l.values())
    } else {
        return Err(bad(col::stacks::FRAMES));
    };
    let values = TextColumn::new(values.as_ref()).ok_or_else(|| bad(col::stacks::FRAMES))?;

    for i in 0..batch.num_rows() {
        if ids.is_null(i) {
            return Err(invalid(i, col::stacks::STACK_ID, "null in a non-null column".into()));
        }
        if frames_col.is_null(i) {
            return Err(invalid(i, col::stacks::FRAMES, "null in a non-null column".into()));
        }
        let (start, end) = match (offsets.get(i), offsets.get(i + 1)) {
            (Some(&s), Some(&e)) if s <= e && e <= values.len() => (s, e),
            _ => return Err(invalid(i, col::stacks::FRAMES, "list offsets out of range".into())),
        };
        let mut frames = Vec::with_capacity(end - start);
        for j in start..end {
            match values.get(j) {
                Ok(Some(s)) => frames.push(s.to_owned()),
                Ok(None) => {
                    return Err(invalid(i, col::stacks::FRAMES, "null frame".into()));
                }
                Err(detail) => return Err(invalid(i, col::stacks::FRAMES, detail)),
            }
        }
        out.insert(ids.value(i), frames);
    }
    Ok(())
}
