//! The one error type of the format crate.
//!
//! Recordings travel between machines and get rewritten by other tools, so
//! the reader meets truncated, foreign and newer files. Each failure mode has
//! its own variant so callers can react (e.g. "upgrade deeptcp" versus "this
//! file is corrupt"), and every message names the file when it is known.
//! Errors from parquet/arrow/io are kept as `#[source]` for error chains and
//! not repeated in the message: print with `{:#}` (anyhow) to see the cause.

use std::fmt;
use std::path::{Path, PathBuf};

use arrow_schema::ArrowError;
use parquet::errors::ParquetError;

/// Everything that can go wrong writing or reading a recording.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// An I/O operation on the file failed.
    #[error("{}{op} failed", at(path))]
    Io {
        path: Option<PathBuf>,
        /// What was being done, e.g. `open`, `fsync`.
        op: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// The file is not Parquet at all: empty, truncated (no footer) or foreign bytes.
    #[error("{}: not a Parquet file", path.display())]
    NotParquet {
        path: PathBuf,
        #[source]
        source: ParquetError,
    },

    /// A valid Parquet file that carries no `deeptcp.schema_version` metadata.
    #[error(
        "{}: not a deeptcp recording (no `deeptcp.schema_version` metadata; was it rewritten by another tool?)",
        path.display()
    )]
    NotRecording { path: PathBuf },

    /// A deeptcp file of a schema version this build cannot read: it reads
    /// every version from `oldest` to `supported`.
    #[error(
        "{}: schema version {found} is not supported by this build (supports {oldest}..={supported}); {}",
        path.display(),
        version_hint(*found, *supported)
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        oldest: u32,
        supported: u32,
    },

    /// A metadata key that every recording of this version carries is absent.
    #[error("{}: deeptcp recording lacks metadata key `{key}`", path.display())]
    MissingMetadata { path: PathBuf, key: String },

    /// A metadata value that does not parse (or, when writing, cannot be encoded).
    #[error("{}bad value for metadata key `{key}`: {detail}", at(path))]
    BadMetadata {
        path: Option<PathBuf>,
        key: String,
        detail: String,
    },

    /// A required column is missing or has a type the reader cannot decode.
    #[error("{}: column `{column}`: {detail}", path.display())]
    BadColumn {
        path: PathBuf,
        column: String,
        detail: String,
    },

    /// A value in a row cannot be decoded (unknown enum string, bad address,
    /// null in a non-null column, ...). `row` is the absolute row index in the file.
    #[error("{}: row {row}, column `{column}`: {detail}", path.display())]
    InvalidValue {
        path: PathBuf,
        row: u64,
        column: String,
        detail: String,
    },

    /// A row group that cannot be read: a page that does not match its
    /// checksum (the file changed after it was written: a bad disk, a bad
    /// copy), pages that do not add up, or data that does not decode.
    /// `column` names the damaged column chunk when it is known; `detail`
    /// says what is wrong (for a damaged page, where it is in the file).
    #[error("{}: row group {row_group}{}: {detail}", path.display(), in_column(column))]
    CorruptRowGroup {
        path: PathBuf,
        row_group: usize,
        column: Option<String>,
        detail: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// Not an error but a warning, only with
    /// [`crate::reader::ReadOptions::skip_corrupt`]: row group `row_group`
    /// (of `rows` rows) could not be read (`source` says why) and its last
    /// `skipped` rows were left out (all of them, unless the damage showed
    /// only part-way through); reading goes on with the next row group.
    #[error("{}: skipped row group {row_group} ({skipped} rows{})", path.display(), of_rows(*skipped, *rows))]
    SkippedRowGroup {
        path: PathBuf,
        row_group: usize,
        rows: u64,
        skipped: u64,
        #[source]
        source: Box<FormatError>,
    },

    /// A recording without its footer (the recorder was killed, or is still
    /// recording) next to a checkpoint sidecar that can recover it:
    /// [`crate::repair`] it, or read it through
    /// [`crate::RecordingReader::open_recovering`].
    #[error(
        "{}: recording was not closed cleanly (recorder killed?); run `analyze --repair {}`",
        path.display(),
        path.display()
    )]
    Unfinished { path: PathBuf },

    /// A checkpoint sidecar that cannot recover the recording: missing,
    /// corrupt, from another file, or held by a running recorder. `path` is
    /// the recording.
    #[error("{}: {detail}", path.display())]
    Checkpoint { path: PathBuf, detail: String },

    /// Writer options that cannot work (zero sizes, out-of-range zstd level).
    #[error("invalid writer options: {detail}")]
    InvalidOptions { detail: String },

    /// The parquet library failed (encoding, decoding, footer).
    #[error("{}Parquet encoding/decoding failed", at(path))]
    Parquet {
        path: Option<PathBuf>,
        #[source]
        source: ParquetError,
    },

    /// The arrow library failed (building or reading a record batch).
    #[error("{}Arrow record batch failed", at(path))]
    Arrow {
        path: Option<PathBuf>,
        #[source]
        source: ArrowError,
    },
}

/// `"path: "` when a path is known, nothing otherwise.
fn at(path: &Option<PathBuf>) -> PathPrefix<'_> {
    PathPrefix(path.as_deref())
}

struct PathPrefix<'a>(Option<&'a Path>);

impl fmt::Display for PathPrefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(p) => write!(f, "{}: ", p.display()),
            None => Ok(()),
        }
    }
}

/// `", column `c`"` when the column is known.
fn in_column(column: &Option<String>) -> String {
    column.as_deref().map(|c| format!(", column `{c}`")).unwrap_or_default()
}

/// `" of 4096"` when only part of a row group was skipped.
fn of_rows(skipped: u64, rows: u64) -> String {
    if skipped == rows {
        String::new()
    } else {
        format!(" of {rows}")
    }
}

fn version_hint(found: u32, supported: u32) -> &'static str {
    if found > supported {
        "upgrade deeptcp"
    } else {
        "the file is from an unsupported deeptcp version or is corrupt"
    }
}

impl FormatError {
    pub(crate) fn io(path: Option<&Path>, op: &'static str, source: std::io::Error) -> Self {
        FormatError::Io {
            path: path.map(Path::to_path_buf),
            op,
            source,
        }
    }

    pub(crate) fn parquet(path: Option<&Path>, source: ParquetError) -> Self {
        FormatError::Parquet {
            path: path.map(Path::to_path_buf),
            source,
        }
    }

    pub(crate) fn arrow(path: Option<&Path>, source: ArrowError) -> Self {
        FormatError::Arrow {
            path: path.map(Path::to_path_buf),
            source,
        }
    }
}
