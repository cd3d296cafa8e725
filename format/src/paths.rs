//! The names of a recording's files, in one place: the recording
//! (`trace.parquet`), its kernel-stack sidecar (`trace.stacks.parquet`),
//! its checkpoint sidecar while it is written (`trace.parquet.checkpoint`)
//! and the segments of a rotated recording (`trace-000001.parquet`, ...).
//! `record` creates them, `analyze` and the reader find them by these
//! rules.

use std::path::{Path, PathBuf};

/// Appended to a recording's file name to name its checkpoint sidecar.
pub const CHECKPOINT_SUFFIX: &str = ".checkpoint";
/// Ends the name of a kernel-stack sidecar (in place of `.parquet`).
pub const STACKS_SUFFIX: &str = ".stacks.parquet";
/// Ends the name of a recording.
pub const RECORDING_SUFFIX: &str = ".parquet";

/// The checkpoint sidecar of a recording: `FILE` + `.checkpoint`
/// (`trace.parquet` → `trace.parquet.checkpoint`).
pub fn checkpoint_path(recording: &Path) -> PathBuf {
    let mut s = recording.as_os_str().to_owned();
    s.push(CHECKPOINT_SUFFIX);
    PathBuf::from(s)
}

/// Whether `path` has a checkpoint sidecar.
pub(crate) fn has_checkpoint(path: &Path) -> bool {
    std::fs::symlink_metadata(checkpoint_path(path)).is_ok_and(|m| m.is_file())
}

/// Path of the stacks sidecar of a recording: `x.parquet` → `x.stacks.parquet`;
/// any other name gets `.stacks.parquet` appended.
pub fn stacks_path(recording: &Path) -> PathBuf {
    let stem = recording
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".parquet"))
        .filter(|stem| !stem.is_empty());
    match stem {
        Some(stem) => recording.with_file_name(format!("{stem}{STACKS_SUFFIX}")),
        None => {
            let mut s = recording.as_os_str().to_owned();
            s.push(STACKS_SUFFIX);
            PathBuf::from(s)
        }
    }
}

/// Whether `name` is a stack sidecar's (`x.stacks.parquet`), not a recording's.
pub fn is_stacks_name(name: &str) -> bool {
    name.ends_with(STACKS_SUFFIX)
}

/// `x.stacks.parquet` → `Some(x.parquet)`: the recording a sidecar belongs to.
pub fn recording_of_stacks(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(STACKS_SUFFIX)?;
    if stem.is_empty() {
        return None;
    }
    Some(path.with_file_name(format!("{stem}{RECORDING_SUFFIX}")))
}

/// The file of segment `index` (1-based) of a rotated recording named
/// `recording`: `trace.parquet`, 3 → `trace-000003.parquet`; a name without
/// `.parquet` gets `-000003` appended.
pub fn segment_path(recording: &Path, index: u32) -> PathBuf {
    let name = recording.file_name().and_then(|n| n.to_str()).unwrap_or("");
    match name.strip_suffix(".parquet").filter(|s| !s.is_empty()) {
        Some(stem) => recording.with_file_name(format!("{stem}-{index:06}.parquet")),
        None => {
            let mut s = recording.as_os_str().to_owned();
            s.push(format!("-{index:06}"));
            PathBuf::from(s)
        }
    }
}

/// The files of the recording named `path`, in order: `[path]` when that
/// file exists, otherwise its rotated segments (`record --rotate-size` /
/// `--rotate-secs`: `trace-000001.parquet`, `trace-000002.parquet`, ...)
/// sorted by index; empty when there are neither. Read together, in this
/// order, the segments are the whole recording (each is a complete
/// recording with the same start metadata and its `deeptcp.segment`).
pub fn segments(path: &Path) -> Vec<PathBuf> {
    if std::fs::symlink_metadata(path).is_ok() {
        return vec![path.to_path_buf()];
    }
    segment_files(path)
}

/// The rotated segments of the recording named `path` that exist, sorted by
/// index (whether or not a file named `path` exists too).
pub fn segment_files(path: &Path) -> Vec<PathBuf> {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    let (stem, suffix) = match name.strip_suffix(".parquet").filter(|s| !s.is_empty()) {
        Some(stem) => (stem, ".parquet"),
        None => (name, ""),
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut found: Vec<(u64, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let n = e.file_name();
            let n = n.to_str()?;
            let digits = n.strip_prefix(stem)?.strip_prefix('-')?.strip_suffix(suffix)?;
            if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let index: u64 = digits.parse().ok()?;
            Some((index, path.with_file_name(n)))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}
