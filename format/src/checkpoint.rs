//! Crash safety: checkpoints, and the checkpoint sidecar's layout.
//!
//! This module owns the sidecar file: creating and locking it, appending a
//! record, parsing and checking its records. The writers take checkpoints
//! through their output (`writer::output`, shared by [`crate::EventWriter`]
//! and [`crate::StackWriter`]); [`crate::recovery`] reads them back
//! ([`crate::repair`], [`crate::RecordingReader::open_recovering`]). Both
//! depend on this module, never on each other.
//!
//! A Parquet file is readable only once its footer is written, at close. So
//! that a killed recorder, a power loss or a full disk cost at most the last
//! flush interval, the writers keep a **checkpoint** of the footer:
//!
//! - In memory, always: how many row groups were flushed so far (their
//!   metadata is the parquet writer's, which keeps it for the footer
//!   anyway: no second copy, as that doubled the ~25 KiB a row group costs
//!   until the file is closed) and the file length at the last flush. When
//!   a write fails (disk full, I/O error), `EventWriter::close_at_checkpoint`
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
//!   [`crate::repair`] truncates the file to the last record's length and appends
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
//! [`crate::repair`] also checks every page of the row groups it keeps before it
//! writes anything.
//!
//! Each record also stores hashes of the first and last 4 KiB of the data
//! it covers: a sidecar is only ever applied to the file it was written
//! for. While the recorder runs it holds an exclusive `flock` on the
//! sidecar; [`crate::repair`] refuses a file whose sidecar is locked (still being
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

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use parquet::errors::ParquetError;
use parquet::file::metadata::{
    FileMetaData, KeyValue, ParquetMetaData, ParquetMetaDataReader, ParquetMetaDataWriter, RowGroupMetaData,
};
use parquet::schema::types::SchemaDescPtr;

use crate::guard::guarded;
use crate::paths::checkpoint_path;
use crate::FormatError;

const MAGIC: &[u8; 16] = b"deeptcp ckpt v1\n";

/// Bytes at each end of the checkpointed data whose hashes tie a sidecar to its file.
pub(crate) const WINDOW: usize = 4096;

/// Largest record accepted when reading (a footer of ~100k row groups).
const MAX_RECORD: usize = 256 << 20;

/// Fixed part of a record body before the footer.
const BODY_HEAD: usize = 32;

/// Parquet's magic.
const PAR1: &[u8; 4] = b"PAR1";

/// 64-bit FNV-1a: a stable, dependency-free checksum (not a defence against
/// forgery: sidecars are written by the recorder, mode 0600).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

pub(crate) fn io_err<'a>(path: Option<&'a Path>, op: &'static str) -> impl FnOnce(io::Error) -> FormatError + 'a {
    move |e| FormatError::io(path, op, e)
}

/// A Parquet footer (FileMetaData, its length, the magic) for `groups`: what a
/// checkpoint record holds, and what closing a file at a checkpoint appends.
pub(crate) fn footer_bytes(
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
pub(crate) struct Log {
    file: File,
    path: PathBuf,
    /// Bytes of complete records (a failed append is cut back to this).
    len: u64,
    records: u64,
}

impl Log {
    /// Creates `FILE.checkpoint`: never over an existing file or through a
    /// symlink (O_CREAT|O_EXCL), mode 0600, locked while the recorder lives.
    pub(crate) fn create(recording: &Path) -> Result<Log, FormatError> {
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

    /// Records appended so far.
    pub(crate) fn records(&self) -> u64 {
        self.records
    }

    /// Appends the record of a checkpoint that covers `data_len` bytes of
    /// data and `rows` rows (all records so far), whose first and last
    /// [`WINDOW`] bytes hash to `hashes`, with `footer` (of the row groups
    /// new since the last record); then fsyncs. On failure cuts the log back
    /// to its last complete record, so it stays usable.
    pub(crate) fn append(
        &mut self,
        data_len: u64,
        rows: u64,
        hashes: (u64, u64),
        footer: &[u8],
    ) -> Result<(), FormatError> {
        let mut body = Vec::with_capacity(BODY_HEAD + footer.len());
        for v in [data_len, rows, hashes.0, hashes.1] {
            body.extend_from_slice(&v.to_le_bytes());
        }
        body.extend_from_slice(footer);
        let len = u32::try_from(body.len()).map_err(|_| FormatError::Checkpoint {
            path: self.path.clone(),
            detail: "checkpoint record too large".into(),
        })?;
        let mut rec = Vec::with_capacity(12 + body.len());
        rec.extend_from_slice(&len.to_le_bytes());
        rec.extend_from_slice(&fnv1a(&body).to_le_bytes());
        rec.extend_from_slice(&body);
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

    /// Removes the sidecar (its file is closed, and its lock released, on drop).
    pub(crate) fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `flock` on `file`: exclusive and held (`try_only` = false, recorder), or
/// a non-blocking probe that says whether another process holds it.
#[cfg(unix)]
pub(crate) fn lock(file: &File, try_only: bool) -> bool {
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
pub(crate) fn lock(_file: &File, _try_only: bool) -> bool {
    true
}

/// Opens `path` without following a symlink in its last component.
pub(crate) fn open_nofollow(path: &Path, write: bool) -> io::Result<File> {
    let mut o = File::options();
    o.read(true).write(write);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NOFOLLOW);
    }
    o.open(path)
}

/// Reads `recording`'s sidecar, if there is one (`None` when absent).
pub(crate) fn read_sidecar(recording: &Path) -> Result<Option<(File, Vec<u8>)>, FormatError> {
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

/// Whether a running recorder holds `path`'s checkpoint sidecar (its
/// `flock`); false when there is no sidecar. Where locks are not
/// available (not Unix), any sidecar counts as held.
pub(crate) fn recorder_holds(path: &Path) -> bool {
    match open_nofollow(&checkpoint_path(path), false) {
        Ok(f) => !lock(&f, true),
        Err(_) => false,
    }
}

/// One record of a sidecar.
pub(crate) struct Record {
    pub(crate) data_len: u64,
    pub(crate) rows: u64,
    pub(crate) head: u64,
    pub(crate) tail: u64,
    pub(crate) md: ParquetMetaData,
}

/// Parses a sidecar: the complete, checksummed records in order (a torn or
/// corrupt record ends the list).
pub(crate) fn parse_log(recording: &Path, bytes: &[u8]) -> Result<Vec<Record>, FormatError> {
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
}
