//! Fuzzes the recording reader with arbitrary bytes: opening, metadata and
//! decoding every row (whole file, and row group by row group; with and
//! without `skip_corrupt`), the page checks and checksums, the stacks
//! reader, and the checkpoint path (reading through a sidecar, checking its
//! records, repair) must return errors, never panic, hang or allocate
//! without bound. Run with `scripts/fuzz [SECONDS]`. (Panics inside parquet
//! that the reader's guard turns into errors are not crashes: the guard
//! keeps the panic hook, libFuzzer's included, quiet for them.)
//!
//! An input is a file, or — when it starts with [`CHECKPOINT_TAG`] — a
//! recording and its checkpoint sidecar: tag, `u32` (little-endian) length
//! of the recording, the recording's bytes, the sidecar's bytes
//! (`cargo run -p deeptcp-format --example fuzz_seeds DIR` writes seeds of
//! both kinds).
#![no_main]

use std::path::{Path, PathBuf};

use deeptcp_format::{checkpoint_path, repair, read_stacks, ReadOptions, RecordingReader};
use libfuzzer_sys::fuzz_target;

const CHECKPOINT_TAG: &[u8; 4] = b"DTCK";

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = scratch() else { return };
    let path = dir.join("f.parquet");
    let _ = std::fs::remove_file(checkpoint_path(&path));
    match data.strip_prefix(CHECKPOINT_TAG) {
        Some(rest) if rest.len() >= 4 => {
            let n = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let rest = &rest[4..];
            let (file, sidecar) = rest.split_at(n.min(rest.len()));
            if std::fs::write(&path, file).is_err() || std::fs::write(checkpoint_path(&path), sidecar).is_err() {
                return;
            }
            read_all(&path, true);
            let _ = read_stacks(&path);
            // Repair changes the files; whatever it leaves must read cleanly
            // or fail cleanly.
            if repair(&path).is_ok() {
                read_all(&path, false);
            }
        }
        _ => {
            if std::fs::write(&path, data).is_err() {
                return;
            }
            read_all(&path, false);
            let _ = read_stacks(&path);
        }
    }
});

/// Opens `path` (through its checkpoint when `recovering`) with and without
/// `skip_corrupt` and reads every row, whole and row group by row group.
fn read_all(path: &Path, recovering: bool) {
    for skip_corrupt in [false, true] {
        let options = ReadOptions { skip_corrupt };
        let open = if recovering {
            RecordingReader::open_recovering_with(path, options)
        } else {
            RecordingReader::open_with(path, options)
        };
        let Ok(reader) = open else { return };
        let _ = reader.meta();
        // The per-row-group path `analyze` decodes in parallel.
        let groups = reader.row_groups();
        for rg in 0..groups.len() {
            // analyze's first look at a row group, to plan its read in time order.
            let _ = groups.scan_mono_ns(rg, |_| {});
            if let Ok(events) = groups.events(rg) {
                drain(events, skip_corrupt);
            }
        }
        drain(reader.events(), skip_corrupt);
    }
}

/// Reads `events` to its end (past skipped row groups when `skip_corrupt`;
/// the iterator must end on its own), or to its first error.
fn drain(events: deeptcp_format::reader::Events, skip_corrupt: bool) {
    for ev in events {
        if ev.is_err() && !skip_corrupt {
            break;
        }
    }
}

/// A per-process scratch directory in /dev/shm (fast, no disk wear).
fn scratch() -> std::io::Result<PathBuf> {
    let base = if Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
    let dir = PathBuf::from(format!("{base}/deeptcp-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
