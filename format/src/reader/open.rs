//! Opening a recording's Parquet file: the footer parsed and checked
//! (row counts, where each column chunk lies, codecs), the columns the
//! reader decodes found with usable types, and the Arrow schema they are
//! read as.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_schema::DataType;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use super::text::TextColumn;
use crate::guard::guarded;
use crate::schema::{col, COLUMNS};
use crate::FormatError;

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

/// How each column the reader decodes may be typed.
enum Want {
    Text,
    Exactly(DataType),
}

/// The columns the reader decodes from a file of `version` (1 or 2): all
/// of that version's but the derived `ts`, with the types the reader
/// takes (text of any kind, other columns as written).
fn required_columns(version: u32) -> impl Iterator<Item = (&'static str, Want)> {
    COLUMNS
        .iter()
        .filter(move |c| !c.derived && c.since <= version)
        .map(|c| {
            let want = if c.ty.is_text() {
                Want::Text
            } else {
                Want::Exactly(c.ty.data_type())
            };
            (c.name, want)
        })
}

/// Finds the columns the reader decodes from a file of schema `version`
/// in `schema` and checks their types; their indices, in the file's order.
pub(super) fn check_columns(
    path: &Path,
    schema: &arrow_schema::Schema,
    version: u32,
) -> Result<Vec<usize>, FormatError> {
    let mut roots = Vec::new();
    for (name, want) in required_columns(version) {
        let Some((idx, field)) = schema.column_with_name(name) else {
            let hint = if schema.column_with_name(col::stacks::FRAMES).is_some() {
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
    Ok(roots)
}

/// The Arrow schema the reader reads a file of `schema` as: narrow
/// dictionary keys widened, addresses as dictionaries (see below).
pub(super) fn read_schema(schema: &arrow_schema::Schema) -> arrow_schema::SchemaRef {
    dictionary_addresses(&widen_dictionary_keys(schema))
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
