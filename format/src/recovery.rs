//! Reading a recording back through its checkpoint sidecar: [`repair`]
//! (truncate the file to its last checkpoint and append the footer saved
//! there) and [`RecordingReader::open_recovering`] (read the same rows
//! without changing the file).
//!
//! It sits above the reader and the writer: it parses the sidecar the
//! writer appends to ([`crate::checkpoint`], which describes it and why it
//! is a log) and checks what the sidecar describes with the reader's checks
//! (the footer's layout, every page's checksum); neither the reader nor the
//! writer depends on it.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::file::metadata::{KeyValue, ParquetMetaData, ParquetMetaDataReader, RowGroupMetaData};

use crate::checkpoint::{fnv1a, footer_bytes, io_err, lock, open_nofollow, parse_log, read_sidecar, WINDOW};
use crate::guard::guarded;
use crate::paths::{checkpoint_path, has_checkpoint};
use crate::reader::{check_chunk, check_layout, open_parquet, OpenedParquet, ReadOptions, RecordingReader};
use crate::FormatError;

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

#[cfg(unix)]
fn is_symlink_error(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

#[cfg(not(unix))]
fn is_symlink_error(_e: &io::Error) -> bool {
    false
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

/// [`open_parquet`], or for a file without its footer that has a checkpoint
/// sidecar, the file as of its last checkpoint (read-only); the flag says
/// which.
pub(crate) fn open_parquet_recovering(path: &Path) -> Result<(OpenedParquet, bool), FormatError> {
    for _ in 0..2 {
        match open_parquet(path) {
            Err(FormatError::NotParquet { .. }) if has_checkpoint(path) => {}
            r => return r.map(|o| (o, false)),
        }
        // `None`: the sidecar went meanwhile (the recorder closed the file); again.
        if let Some((file, rec)) = recover_readonly(path)? {
            let metadata = guarded(path, "reading the checkpoint", || {
                ArrowReaderMetadata::try_new(Arc::new(rec.metadata), ArrowReaderOptions::new())
                    .map_err(|e| FormatError::parquet(Some(path), e))
            })?;
            return Ok((OpenedParquet { file, metadata }, true));
        }
    }
    open_parquet(path).map(|o| (o, false))
}

impl RecordingReader {
    /// Like [`open`](Self::open), but reads an unfinished recording through
    /// its checkpoint sidecar, without changing either file: the rows up to
    /// the last checkpoint (the recorder's last flush), as [`crate::repair`]
    /// would keep them. Also reads a recording that is still being recorded,
    /// up to its last flush. [`recovered`](Self::recovered) tells which;
    /// such a reader is never [`finished`](Self::finished).
    pub fn open_recovering(path: &Path) -> Result<Self, FormatError> {
        Self::open_recovering_with(path, ReadOptions::default())
    }

    /// [`open_recovering`](Self::open_recovering) with `options`.
    pub fn open_recovering_with(path: &Path, options: ReadOptions) -> Result<Self, FormatError> {
        let (opened, recovered) = open_parquet_recovering(path)?;
        Self::from_opened(path, opened, recovered, options)
    }
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
            check_chunk(file, c).map_err(|(detail, source)| FormatError::CorruptRowGroup {
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
