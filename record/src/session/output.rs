//! The files of a recording: creating them safely (never through a
//! symlink, never into an existing file or anything but a regular file,
//! mode 0600, `--force` as a new inode), refusing or clearing what an
//! earlier recording left, and which files each segment has ([`Plan`]) when
//! the recording rotates or reaches the row-group bound.

use std::collections::HashSet;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use deeptcp_format::paths::segment_files;
use deeptcp_format::{
    checkpoint_path, segment_path, stacks_path, EventWriter, RecordingMeta, StackWriter, WriterOptions,
};

use crate::cli::{Config, Rotation};
use crate::hive::Hive;
use crate::host;

/// What is at an output path before record writes there: `Ok(false)`
/// when nothing, `Ok(true)` for a regular file that `--force` replaces;
/// an error for a symlink (never followed), anything that is not a regular
/// file (a FIFO would block the open until a reader came, a device is not
/// a recording), or an existing file without `force`.
fn check_output(path: &Path, force: bool) -> Result<bool> {
    let m = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("checking {}", path.display()))),
        Ok(m) => m,
    };
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    let what = if t.is_symlink() {
        bail!("{} is a symbolic link; refusing to write through it", path.display());
    } else if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else {
        Some("of an unknown type")
    };
    if let Some(what) = what {
        bail!(
            "{} is not a regular file ({what}); refusing to write to it",
            path.display()
        );
    }
    if !force {
        bail!("{} already exists (use --force to replace it)", path.display());
    }
    Ok(true)
}

/// Creates a new file at `path` (never an existing one, never through a
/// symlink), mode 0600. Opened non-blocking so that nothing at the path can
/// make the open wait; the flag is cleared again for the writes.
fn create_new(path: &Path) -> std::io::Result<File> {
    let f = File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let fd = f.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own; F_GETFL/F_SETFL take and return plain ints.
    let rc = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 {
            flags
        } else {
            libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK)
        }
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(f)
}

/// `--force` onto an existing file: a new private file is created beside it
/// and renamed over it, so the recording never lands in the old inode
/// (whose owner, mode and other links would otherwise stay).
fn replace_output(path: &Path) -> Result<File> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    for attempt in 0..100 {
        let tmp = dir.join(format!(".record-{}-{attempt}.tmp", std::process::id()));
        match create_new(&tmp) {
            Ok(f) => {
                if let Err(e) = std::fs::rename(&tmp, path) {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(anyhow::Error::new(e).context(format!("replacing {}", path.display())));
                }
                return Ok(f);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "creating a new file in {} to replace {}",
                    dir.display(),
                    path.display()
                )))
            }
        }
    }
    bail!(
        "could not create a temporary file in {} to replace {}",
        dir.display(),
        path.display()
    )
}

/// Creates an output file, mode 0600: a new file, or with `force` a new
/// file replacing a regular one (see [`check_output`], [`replace_output`]).
fn create_output(path: &Path, force: bool) -> Result<File> {
    if check_output(path, force)? {
        return replace_output(path);
    }
    match create_new(path) {
        Ok(f) => Ok(f),
        // Something appeared since the check: judge it the same way.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists || e.raw_os_error() == Some(libc::ELOOP) => {
            check_output(path, force)?;
            replace_output(path)
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("creating {}", path.display()))),
    }
}

/// A checkpoint sidecar left by an earlier recording of the same name
/// belongs to a file that may still be repaired: refused, or removed with
/// `--force` (never followed: a symlink is removed, not its target).
fn clear_stale_checkpoint(path: &Path, force: bool) -> Result<()> {
    let ck = checkpoint_path(path);
    match std::fs::symlink_metadata(&ck) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(anyhow::Error::new(e).context(format!("checking {}", ck.display()))),
        Ok(m) if force && !m.is_dir() => {
            std::fs::remove_file(&ck).with_context(|| format!("removing the stale {}", ck.display()))
        }
        Ok(_) => bail!(
            "{} exists: an earlier recording into {} was not closed cleanly (run `analyze --repair {}`); \
             use --force to replace both",
            ck.display(),
            path.display(),
            path.display()
        ),
    }
}

/// Removes what a failed start created, unless [`keep`](Self::keep) was called.
pub(super) struct Cleanup {
    paths: Vec<PathBuf>,
}

impl Cleanup {
    pub(super) fn keep(&mut self) {
        self.paths.clear();
    }

    /// The files it would remove.
    pub(super) fn paths(&self) -> &[PathBuf] {
        &self.paths
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.paths {
            let _ = std::fs::remove_file(p);
            let _ = std::fs::remove_file(checkpoint_path(p));
        }
    }
}

/// Renames `from` to `to` unless `to` exists (link, then unlink: never
/// replaces a file at `to`).
pub(super) fn rename_noreplace(from: &Path, to: &Path) -> Result<()> {
    std::fs::hard_link(from, to).with_context(|| format!("renaming {} to {}", from.display(), to.display()))?;
    std::fs::remove_file(from)
        .with_context(|| format!("removing {} after linking it as {}", from.display(), to.display()))
}

/// The files of one segment (the whole recording when not rotating).
pub(super) struct Segment {
    pub(super) path: PathBuf,
    pub(super) events: EventWriter,
    pub(super) stacks: Option<(PathBuf, StackWriter)>,
    /// Stack ids already in this segment's stacks file.
    pub(super) stacks_written: HashSet<i64>,
    pub(super) started: Instant,
}

/// What is fixed for every segment of a recording.
pub(super) struct Plan {
    pub(super) output: PathBuf,
    pub(super) kstack: bool,
    pub(super) force: bool,
    pub(super) rotate: Option<Rotation>,
    /// A file that reaches this many row groups is closed and the recording
    /// continues in the next segment (`--max-row-groups`): the writer keeps
    /// every row group's metadata in memory for the footer, so this bounds
    /// record's memory however long it runs.
    pub(super) max_row_groups: usize,
    pub(super) quiet: bool,
    pub(super) meta: RecordingMeta,
    /// `--hive`: segments go to partition folders (`output` is then their glob).
    pub(super) hive: Option<Hive>,
}

impl Plan {
    /// The plan of `cfg`'s recording; its metadata is filled in once the
    /// programs are attached.
    pub(super) fn new(cfg: &Config, to_file: bool) -> Plan {
        let hive = cfg
            .hive
            .as_deref()
            .map(|root| Hive::new(root, &host::hostname(), host::unix_secs()));
        Plan {
            // Never used without a file.
            output: match &hive {
                Some(h) => h.glob(),
                None => cfg.output.clone().unwrap_or_default(),
            },
            hive,
            kstack: cfg.kstack && to_file,
            force: cfg.force,
            rotate: cfg.rotate,
            max_row_groups: cfg.max_row_groups,
            quiet: cfg.quiet,
            meta: RecordingMeta::default(),
        }
    }

    /// The index of the first file: 1 when rotating, else 0 (the file named
    /// `-o`, until the row-group bound turns the recording into segments).
    pub(super) fn first_index(&self) -> u32 {
        u32::from(self.rotate.is_some())
    }

    /// The data file of segment `index` (0 = the file named `-o`).
    pub(super) fn data_path(&self, index: u32) -> PathBuf {
        if let Some(h) = &self.hive {
            h.segment_path(index)
        } else if index > 0 {
            segment_path(&self.output, index)
        } else {
            self.output.clone()
        }
    }

    fn paths(&self, index: u32) -> Vec<PathBuf> {
        let data = self.data_path(index);
        let mut v = vec![data.clone()];
        if self.kstack {
            v.push(stacks_path(&data));
        }
        v
    }

    /// Checks the name of the recording before anything is created:
    /// existing segments of that name (and, with rotation, a file of that
    /// name) are refused, or removed with `--force`. Segments are checked
    /// without rotation too: a recording that reaches the row-group bound
    /// continues in them, and `analyze FILE` must not mix in older ones.
    pub(super) fn prepare(&self) -> Result<()> {
        if self.hive.is_some() {
            // Names carry the start time: each file is checked as it is created.
            return Ok(());
        }
        let mut existing = segment_files(&self.output);
        if self.rotate.is_some() && std::fs::symlink_metadata(&self.output).is_ok() {
            existing.insert(0, self.output.clone());
        }
        if let Some(first) = existing.first() {
            if !self.force {
                bail!(
                    "{} already exists (use --force to replace the recording {})",
                    first.display(),
                    self.output.display()
                );
            }
            for p in existing {
                for q in [stacks_path(&p), p.clone()] {
                    for f in [checkpoint_path(&q), q] {
                        match std::fs::remove_file(&f) {
                            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                                return Err(anyhow::Error::new(e).context(format!("removing {}", f.display())))
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Creates the files of segment `index` (data, then stacks), refusing
    /// what is in the way (see [`check_output`]) before creating any, and
    /// stale checkpoints; they are removed again when the returned
    /// [`Cleanup`] is dropped without [`Cleanup::keep`].
    pub(super) fn create(&self, index: u32) -> Result<(Vec<File>, Cleanup)> {
        let paths = self.paths(index);
        if self.hive.is_some() {
            if let Some(dir) = paths[0].parent() {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
        }
        for p in &paths {
            check_output(p, self.force)?;
        }
        for p in &paths {
            clear_stale_checkpoint(p, self.force)?;
        }
        let mut created = Cleanup { paths: Vec::new() };
        let mut files = Vec::new();
        for p in paths {
            files.push(create_output(&p, self.force)?);
            created.paths.push(p);
        }
        Ok((files, created))
    }

    /// Starts the writers of segment `index` in `files` (from [`create`](Self::create)).
    pub(super) fn start(&self, index: u32, files: Vec<File>) -> Result<Segment> {
        let data = self.data_path(index);
        let mut meta = self.meta.clone();
        if index > 0 {
            meta.segment = Some(index);
            if index > 1 {
                // Snapshot rows are in the first segment only.
                meta.snapshot_sockets = 0;
            }
        }
        let mut files = files.into_iter();
        let file = files.next().context("no output file")?;
        let events = EventWriter::with_checkpoints(file, &data, &meta, WriterOptions::default())?;
        let stacks = match files.next() {
            Some(f) => {
                let p = stacks_path(&data);
                let w = StackWriter::with_checkpoints(f, &p)?;
                Some((p, w))
            }
            None => None,
        };
        Ok(Segment {
            path: data,
            events,
            stacks,
            stacks_written: HashSet::new(),
            started: Instant::now(),
        })
    }

    /// [`create`](Self::create) and [`start`](Self::start).
    pub(super) fn open(&self, index: u32) -> Result<Segment> {
        let (files, mut created) = self.create(index)?;
        let seg = self.start(index, files)?;
        created.keep();
        Ok(seg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_checkpoints_are_refused_or_removed_with_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.parquet");
        clear_stale_checkpoint(&path, false).unwrap();
        std::fs::write(checkpoint_path(&path), b"old").unwrap();
        let e = clear_stale_checkpoint(&path, false).unwrap_err().to_string();
        assert!(
            e.contains("r.parquet.checkpoint exists") && e.contains("analyze --repair"),
            "{e}"
        );
        assert!(checkpoint_path(&path).exists());
        clear_stale_checkpoint(&path, true).unwrap();
        assert!(!checkpoint_path(&path).exists());
    }

    #[test]
    fn output_is_never_clobbered_or_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.parquet");
        std::fs::write(&path, b"keep").unwrap();
        let e = create_output(&path, false).unwrap_err();
        assert!(e.to_string().contains("already exists (use --force"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"keep");
        let link = dir.path().join("link.parquet");
        std::os::unix::fs::symlink(dir.path().join("target"), &link).unwrap();
        let e = create_output(&link, true).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(!dir.path().join("target").exists());
        let f = create_output(&dir.path().join("new.parquet"), false).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(f.metadata().unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn only_regular_files_are_replaced_and_never_reopened() {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.parquet");
        let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        for force in [false, true] {
            // Would block in open(2) until a reader came, were it opened.
            let e = create_output(&fifo, force).unwrap_err().to_string();
            assert!(
                e.ends_with("fifo.parquet is not a regular file (a FIFO); refusing to write to it"),
                "{e}"
            );
            let e = create_output(dir.path(), force).unwrap_err().to_string();
            assert!(e.contains("is not a regular file (a directory)"), "{e}");
            let e = create_output(Path::new("/dev/null"), force).unwrap_err().to_string();
            assert!(
                e.contains("/dev/null is not a regular file (a character device)"),
                "{e}"
            );
        }

        // --force: a new inode, private, the old one untouched.
        let path = dir.path().join("old.parquet");
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let link = dir.path().join("hardlink");
        std::fs::hard_link(&path, &link).unwrap();
        let old_ino = std::fs::metadata(&path).unwrap().ino();
        let f = create_output(&path, true).unwrap();
        let m = std::fs::metadata(&path).unwrap();
        assert_ne!(m.ino(), old_ino);
        assert_eq!(
            f.metadata().unwrap().ino(),
            m.ino(),
            "the file returned is the one at the path"
        );
        assert_eq!(m.mode() & 0o7777, 0o600);
        assert_eq!(m.len(), 0);
        assert_eq!(
            std::fs::read(&link).unwrap(),
            b"old",
            "another link to the old file keeps it"
        );
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["fifo.parquet", "hardlink", "old.parquet"],
            "no temporary file left"
        );
    }
}
