//! Fuzzes the recording reader with arbitrary bytes: opening, metadata and
//! decoding every row (whole file, and row group by row group) must return
//! errors, never panic or allocate without bound. Run with `scripts/fuzz [SECONDS]`. (Panics inside parquet that the
//! reader's guard turns into errors are not crashes: the guard keeps the
//! panic hook, libFuzzer's included, quiet for them.)
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut file) = tempfile_in_shm() else { return };
    if file.1.write_all(data).is_err() {
        return;
    }
    if let Ok(reader) = deeptcp_format::RecordingReader::open(&file.0) {
        let _ = reader.meta();
        // The per-row-group path `analyze` decodes in parallel.
        let groups = reader.row_groups();
        for rg in 0..groups.len() {
            if let Ok(events) = groups.events(rg) {
                for ev in events {
                    if ev.is_err() {
                        break;
                    }
                }
            }
        }
        for ev in reader.events() {
            if ev.is_err() {
                break;
            }
        }
    }
    let _ = std::fs::remove_file(&file.0);
    let _ = file.1.flush();
});

/// A per-process scratch file in /dev/shm (fast, no disk wear).
fn tempfile_in_shm() -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    let dir = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
    let path = std::path::PathBuf::from(format!("{dir}/deeptcp-fuzz-{}.parquet", std::process::id()));
    let f = std::fs::File::create(&path)?;
    Ok((path, f))
}
