//! File access for the reader: positional reads of the recording's one
//! open file (shared by the threads that decode its row groups), and the
//! page-by-page check of a column chunk's bytes before it is decoded.

use std::fs::File;
use std::sync::Arc;

use parquet::errors::ParquetError;

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
pub(super) struct SharedFile(pub(super) Arc<File>);

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
pub(super) struct PositionalRead {
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
