//! One recording session: resolve offsets, load and attach the programs,
//! drain the ring buffer on this thread and hand batches to a writer thread
//! that turns them into rows and encodes Parquet, then close both files
//! cleanly on SIGINT/SIGTERM or at `--duration`.
//!
//! Per-record work on the drain thread is a copy out of the ring buffer,
//! which frees the ring's space at once; everything else happens on the
//! writer thread, at a lower scheduling priority ([`WRITER_NICE`]) so that
//! under CPU contention the drain thread and the traced workload go first
//! (the writer catches up from its queue; when that backs up, it gets
//! record's priority back: [`Priority`]): one pass from the copied records
//! into column buffers ([`convert::Converter`] filling a `RowBatch`; the
//! live view builds events from those rows only when it prints), then
//! encoding, compression and I/O. Converting on the drain thread instead
//! measured no cheaper in all and made that thread 3-4 times busier:
//! scattering a row over ~40 column vectors costs it cache misses that a
//! sequential copy does not (bench/README.md).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use aya::maps::HashMap as AyaHashMap;
use aya::maps::{MapData, PerCpuArray, RingBuf, StackTraceMap};
use aya::{Ebpf, EbpfLoader};
use deeptcp_common::{Config as BpfConfig, ExtraFilters, ListenKey, Owner, TupleKey, WireEvent};
use deeptcp_format::paths::segment_files;
use deeptcp_format::{
    checkpoint_path, segment_path, stacks_path, Attribution, EventKind, EventWriter, LostInterval, ProbeStatus,
    RecordingMeta, RowBatch, StackWriter, TcpState, WriterOptions, SCHEMA_VERSION,
};

use crate::cli::{Config, OwnerStore, Rotation};
use crate::hive::Hive;
use crate::live::{LivePrinter, Printed};
use crate::misses::Misses;
use crate::startup::Startup;
use crate::symbolize::Symbolizer;
use crate::{btf, bytes, host, names, offsets, probes, requirements, snapshot};
use deeptcp_cli::signals;
use deeptcp_record::convert;

#[cfg(not(deeptcp_no_ebpf))]
static EBPF_OBJECT: Option<&[u8]> = Some(aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/deeptcp")));
#[cfg(deeptcp_no_ebpf)]
static EBPF_OBJECT: Option<&[u8]> = None;

/// The eBPF object built into this binary, if any.
#[cfg(test)]
pub(crate) fn ebpf_object() -> Option<&'static [u8]> {
    EBPF_OBJECT
}

/// How much lower the writer thread's priority is than record's (nice
/// levels) while it keeps up: under CPU contention the drain thread and the
/// traced workload get the CPU first, the writer catches up from its queue
/// (see [`Priority`]).
const WRITER_NICE: i32 = 5;

/// Batch handed from the drain thread to the writer thread.
enum Msg {
    Events(Vec<WireEvent>),
    Stack(i64, Vec<String>),
    /// Events lost in an interval (the kernel's counter grew).
    Lost(LostInterval),
}

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
struct Cleanup {
    paths: Vec<PathBuf>,
}

impl Cleanup {
    fn keep(&mut self) {
        self.paths.clear();
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

/// When the writer closes a row group. Each row group costs a few KiB of
/// footer metadata, so a quiet recorder must not close one every second;
/// a busy one must, so that a live file is readable up to a recent point.
/// Until the first rows after the snapshot are checkpointed, it flushes as
/// soon as `first_every` has passed with anything pending: a recorder
/// killed (or a disk filled) in its first second keeps what it traced
/// after `first_every`, not only the snapshot.
#[derive(Debug, Clone, Copy)]
struct FlushPolicy {
    /// Under load (at least `busy_rows` pending): close a row group this often.
    every: Duration,
    busy_rows: u64,
    /// Otherwise, with anything pending: this often.
    idle_every: Duration,
    /// Before the first flush of traced rows, with anything pending: this often.
    first_every: Duration,
}

impl FlushPolicy {
    /// The first flush of traced rows: after 100 ms (or the flush interval, if shorter).
    const FIRST: Duration = Duration::from_millis(100);

    fn new(every: Duration) -> Self {
        FlushPolicy {
            every,
            busy_rows: 4096,
            idle_every: every * 5,
            first_every: every.min(Self::FIRST),
        }
    }

    /// `first`: no traced rows have been flushed yet.
    fn due(&self, since_flush: Duration, pending_rows: u64, first: bool) -> bool {
        (pending_rows >= self.busy_rows && since_flush >= self.every)
            || (pending_rows > 0 && since_flush >= self.idle_every)
            || (first && pending_rows > 0 && since_flush >= self.first_every)
    }

    /// How long the writer may wait for the next batch before checking again.
    fn wait(&self, first: bool) -> Duration {
        if first {
            self.first_every
        } else {
            self.every
        }
    }
}

/// The files of one segment (the whole recording when not rotating).
struct Segment {
    path: PathBuf,
    events: EventWriter,
    stacks: Option<(PathBuf, StackWriter)>,
    /// Stack ids already in this segment's stacks file.
    stacks_written: HashSet<i64>,
    started: Instant,
}

/// What is fixed for every segment of a recording.
struct Plan {
    output: PathBuf,
    kstack: bool,
    force: bool,
    rotate: Option<Rotation>,
    /// A file that reaches this many row groups is closed and the recording
    /// continues in the next segment (`--max-row-groups`): the writer keeps
    /// every row group's metadata in memory for the footer, so this bounds
    /// record's memory however long it runs.
    max_row_groups: usize,
    quiet: bool,
    meta: RecordingMeta,
    /// `--hive`: segments go to partition folders (`output` is then their glob).
    hive: Option<Hive>,
}

impl Plan {
    /// The index of the first file: 1 when rotating, else 0 (the file named
    /// `-o`, until the row-group bound turns the recording into segments).
    fn first_index(&self) -> u32 {
        u32::from(self.rotate.is_some())
    }

    /// The data file of segment `index` (0 = the file named `-o`).
    fn data_path(&self, index: u32) -> PathBuf {
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
    fn prepare(&self) -> Result<()> {
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
    fn create(&self, index: u32) -> Result<(Vec<File>, Cleanup)> {
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
    fn start(&self, index: u32, files: Vec<File>) -> Result<Segment> {
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
    fn open(&self, index: u32) -> Result<Segment> {
        let (files, mut created) = self.create(index)?;
        let seg = self.start(index, files)?;
        created.keep();
        Ok(seg)
    }
}

/// A closed file of the recording.
struct Closed {
    path: PathBuf,
    rows: u64,
    bytes: u64,
}

/// Counters the writer thread publishes for the status line.
#[derive(Default)]
struct Progress {
    /// Bytes written (closed segments + the open one).
    bytes: AtomicU64,
    /// Rows handed to the writer (snapshot rows included).
    rows: AtomicU64,
    /// Records received that gave no row (`--kind` left them out).
    filtered: AtomicU64,
    /// Records received that could not be converted (dropped).
    rejected: AtomicU64,
}

/// Hands the heap's free pages back to the system after a file was closed:
/// the metadata its writer kept for the footer (tens of KiB per row group)
/// is freed then, but lies between long-lived allocations, so without this
/// glibc keeps it and record's RSS stays at its highest point.
fn give_back_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions; it only releases free heap pages.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Renames `from` to `to` unless `to` exists (link, then unlink: never
/// replaces a file at `to`).
fn rename_noreplace(from: &Path, to: &Path) -> Result<()> {
    std::fs::hard_link(from, to).with_context(|| format!("renaming {} to {}", from.display(), to.display()))?;
    std::fs::remove_file(from)
        .with_context(|| format!("removing {} after linking it as {}", from.display(), to.display()))
}

/// The recording as the writer thread sees it: the open segment, the ones
/// already closed, and the stacks (kept when in segments, so that each
/// segment's stacks file has every stack its events refer to).
struct Recording {
    plan: Plan,
    /// False without -o: nothing is written, rows are only printed.
    to_file: bool,
    /// Live output (`record` without -o, `--print`, `--json`).
    printer: Option<LivePrinter>,
    index: u32,
    current: Option<Segment>,
    closed: Vec<Closed>,
    /// Fills the column buffers that `flush_rows` hands to the file.
    converter: convert::Converter,
    /// Rows per batch handed to the file (a data page per column each).
    batch_rows: usize,
    /// An emptied batch for the converter to fill next.
    spare: Option<RowBatch>,
    rejected: u64,
    filtered: u64,
    rows: u64,
    all_stacks: HashMap<i64, Vec<String>>,
    progress: Arc<Progress>,
    /// Names of the rows' cgroups and namespaces (with a file only).
    names: Option<names::Resolver>,
}

impl Recording {
    fn segment(&mut self) -> Result<&mut Segment> {
        self.current
            .as_mut()
            .ok_or_else(|| anyhow!("no file is open (an earlier error closed it)"))
    }

    /// Whether the recording is written as segments (rotating, or since it reached the row-group bound).
    fn in_segments(&self) -> bool {
        self.index > 0
    }

    fn push_events(&mut self, batch: &[WireEvent]) -> Result<()> {
        for wire in batch {
            let before = self.converter.len();
            match self.converter.push(wire) {
                Err(_) => self.rejected += 1,
                Ok(0) => self.filtered += 1,
                Ok(n) => {
                    self.rows += n as u64;
                    if let Some(p) = self.printer.as_mut() {
                        for ev in (before..before + n).filter_map(|i| self.converter.batch().event(i)) {
                            if p.event(&ev).context("printing an event")? == Printed::ReaderGone {
                                // As a signal would: the file is then closed complete.
                                signals::request_stop();
                            }
                        }
                    }
                }
            }
            // A record makes at most two rows: the batch never grows past its size.
            if self.converter.len() + 1 >= self.batch_rows {
                self.flush_rows()?;
            }
        }
        self.publish();
        Ok(())
    }

    /// Hands the converted rows to the file (a batch, encoded at once).
    fn flush_rows(&mut self) -> Result<()> {
        if self.converter.is_empty() {
            return Ok(());
        }
        let mut batch = self.converter.take(self.spare.take());
        if self.to_file {
            let segmented = self.in_segments();
            let seg = self.current.as_mut().ok_or_else(|| anyhow!("no file is open"))?;
            if let (true, Some((_, s))) = (segmented, seg.stacks.as_mut()) {
                // Each segment's stacks file has every stack its rows name.
                for id in batch.stack_ids() {
                    if seg.stacks_written.insert(id) {
                        if let Some(frames) = self.all_stacks.get(&id) {
                            s.push(id, frames)?;
                        }
                    }
                }
            }
            if let Some(r) = self.names.as_mut() {
                r.observe_batch(&batch);
                r.maybe_rescan();
                if let Some(table) = r.changes() {
                    seg.events.set_names(table);
                }
            }
            seg.events.write_rows(&batch)?;
        }
        batch.clear();
        self.spare = Some(batch);
        Ok(())
    }

    fn publish(&self) {
        let p = &self.progress;
        p.rows.store(self.rows, Ordering::Relaxed);
        p.filtered.store(self.filtered, Ordering::Relaxed);
        p.rejected.store(self.rejected, Ordering::Relaxed);
    }

    fn add_stack(&mut self, id: i64, frames: Vec<String>) -> Result<()> {
        if let Some(p) = self.printer.as_mut() {
            p.add_stack(id, &frames);
        }
        if !self.to_file {
            return Ok(());
        }
        if self.in_segments() {
            self.all_stacks.insert(id, frames);
        } else if let Some((_, s)) = self.segment()?.stacks.as_mut() {
            s.push(id, &frames)?;
        }
        Ok(())
    }

    fn add_lost(&mut self, interval: LostInterval) {
        if let Some(seg) = self.current.as_mut() {
            seg.events.add_lost_interval(interval);
        }
    }

    fn done_bytes(&self) -> u64 {
        self.closed.iter().map(|c| c.bytes).sum()
    }

    /// Ends the row groups and checkpoints both files.
    fn flush(&mut self) -> Result<()> {
        self.flush_rows()?;
        if !self.to_file {
            return Ok(());
        }
        let seg = self.segment()?;
        seg.events.flush()?;
        if let Some((_, s)) = seg.stacks.as_mut() {
            s.flush()?;
        }
        let now = seg.events.bytes_written();
        self.progress.bytes.store(self.done_bytes() + now, Ordering::Relaxed);
        Ok(())
    }

    /// Whether the open file reached the row-group bound.
    fn bound_reached(&self) -> bool {
        self.current
            .as_ref()
            .is_some_and(|seg| seg.events.row_groups() >= self.plan.max_row_groups)
    }

    fn rotation_due(&self) -> bool {
        if self.bound_reached() {
            return true;
        }
        let (Some(r), Some(seg)) = (&self.plan.rotate, &self.current) else {
            return false;
        };
        if self.plan.hive.as_ref().is_some_and(|h| h.day_ended(self.index)) {
            return true;
        }
        r.secs.is_some_and(|s| seg.started.elapsed() >= s) || r.size.is_some_and(|b| seg.events.bytes_written() >= b)
    }

    /// Closes the open segment cleanly and opens the next. A recording
    /// that is not rotating reaches this only at the row-group bound: its
    /// file becomes segment 1 and the recording continues in segments.
    fn rotate(&mut self) -> Result<()> {
        let bound = self.bound_reached().then_some(self.plan.max_row_groups);
        let before = self.current.as_ref().map(|s| s.path.clone());
        if let (0, Some(seg)) = (self.index, self.current.as_mut()) {
            seg.events.set_segment(1);
        }
        self.close_current()?;
        give_back_memory();
        if self.index == 0 {
            self.become_segments()?;
            self.index = 1;
        }
        self.index += 1;
        let mut seg = self.plan.open(self.index)?;
        if let Some(r) = &self.names {
            seg.events.set_names(r.table());
        }
        self.current = Some(seg);
        if let (Some(n), Some(before)) = (bound, before) {
            let next = self.plan.data_path(self.index);
            if self.index == 2 && self.plan.rotate.is_none() {
                // Always said, even with --quiet: the file named -o is gone.
                say!(
                    "record: {} reached {n} row groups (--max-row-groups, which bounds record's memory); \
                     the recording continues in segments: {} is now {}, then {} ... \
                     (read them together as {})",
                    self.plan.output.display(),
                    self.plan.output.display(),
                    self.plan.data_path(1).display(),
                    next.display(),
                    self.plan.output.display()
                );
            } else if !self.plan.quiet {
                say!(
                    "record: {} reached {n} row groups (--max-row-groups); continuing in {}",
                    before.display(),
                    next.display()
                );
            }
        }
        Ok(())
    }

    /// The single file (index 0, closed) becomes segment 1: renamed, with
    /// its stacks file; the stacks it holds are kept for the segments to come.
    fn become_segments(&mut self) -> Result<()> {
        let to = self.plan.data_path(1);
        rename_noreplace(&self.plan.output, &to)?;
        if self.plan.kstack {
            let (from_s, to_s) = (stacks_path(&self.plan.output), stacks_path(&to));
            rename_noreplace(&from_s, &to_s)?;
            self.all_stacks = deeptcp_format::read_stacks(&to_s)
                .with_context(|| format!("reading back the stacks of {}", to_s.display()))?;
        }
        if let Some(c) = self.closed.last_mut() {
            c.path = to;
        }
        Ok(())
    }

    fn close_current(&mut self) -> Result<()> {
        self.flush_rows()?;
        let Some(mut seg) = self.current.take() else {
            return Ok(());
        };
        if let Some(r) = self.names.as_mut() {
            // Ids still without a name: one more look before the file is closed.
            r.rescan_if_unnamed();
            r.changes();
            seg.events.set_names(r.table());
        }
        let lost = seg.events.lost_in_intervals();
        let r = seg.events.try_finish(lost);
        let summary = match r {
            Ok(s) => s,
            Err(e) => {
                self.current = Some(seg);
                return Err(e.into());
            }
        };
        if let Some((_, s)) = seg.stacks.as_mut() {
            if let Err(e) = s.try_finish() {
                // The event file is closed; only the stacks file is left to save.
                let kept = s.close_at_checkpoint();
                return Err(anyhow::Error::new(e).context(match kept {
                    Ok(k) => format!("{} stacks kept", k.rows),
                    Err(_) => "the stacks file could not be closed".into(),
                }));
            }
        }
        self.closed.push(Closed {
            path: seg.path,
            rows: summary.rows,
            bytes: summary.bytes,
        });
        self.progress.bytes.store(self.done_bytes(), Ordering::Relaxed);
        Ok(())
    }

    /// After a failed write: closes the open files at their last checkpoint
    /// (readable, holding what was flushed until then) and says what is kept.
    fn close_at_checkpoint(&mut self) -> String {
        let Some(mut seg) = self.current.take() else {
            return String::new();
        };
        let mut out = match seg.events.close_at_checkpoint() {
            Ok(s) => format!(
                "{} was closed at its last checkpoint with {} events and is readable",
                seg.path.display(),
                s.rows
            ),
            Err(e) => format!(
                "{} could not be closed: {e:#}; try `analyze --repair {}`",
                seg.path.display(),
                seg.path.display()
            ),
        };
        if let Some((p, s)) = seg.stacks.as_mut() {
            if let Err(e) = s.close_at_checkpoint() {
                out.push_str(&format!("; {} could not be closed: {e:#}", p.display()));
            }
        }
        out
    }
}

/// The writer thread's scheduling priority: [`WRITER_NICE`] levels below
/// record's while its queue is short, record's own while the queue backs up
/// (at [`Priority::HIGH`] messages), so that a writer starved by a busy
/// machine catches up before the queue fills and the drain thread has to
/// wait (and the ring buffer overflows). Only where the priority can be
/// raised again (root, CAP_SYS_NICE): otherwise it stays as it is.
struct Priority {
    tid: libc::id_t,
    base: i32,
    lowered: bool,
    /// Whether it can go back to `base` (checked at start).
    adaptive: bool,
}

impl Priority {
    /// Backlog (messages queued) that brings the priority back to record's.
    const HIGH: usize = 32;
    /// Backlog at or below which it is lowered again.
    const LOW: usize = 2;

    /// The calling thread's priority, lowered if it can be raised again.
    fn lowered() -> Self {
        // SAFETY: gettid and getpriority take and return plain integers.
        // getpriority's -1 is also a valid nice level: a failure is not told
        // apart, and the probe below then fails or is harmless.
        let (tid, base) = unsafe {
            let tid = libc::gettid() as libc::id_t;
            (tid, libc::getpriority(libc::PRIO_PROCESS, tid))
        };
        let mut p = Priority {
            tid,
            base,
            lowered: false,
            adaptive: false,
        };
        // Probe: down and back up.
        p.adaptive = p.set(base + WRITER_NICE) && p.set(base);
        p.adjust(0);
        p
    }

    /// Sets the thread's nice level; whether that worked.
    fn set(&self, nice: i32) -> bool {
        // SAFETY: setpriority takes plain integers and touches no memory of
        // ours; PRIO_PROCESS with a thread id acts on that thread alone.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, self.tid, nice.clamp(-20, 19)) == 0 }
    }

    /// Follows the writer's backlog (messages queued).
    fn adjust(&mut self, backlog: usize) {
        if !self.adaptive {
            return;
        }
        if !self.lowered && backlog <= Self::LOW {
            self.lowered = self.set(self.base + WRITER_NICE);
        } else if self.lowered && backlog >= Self::HIGH && self.set(self.base) {
            self.lowered = false;
        }
    }
}

fn writer_thread(
    rx: mpsc::Receiver<Msg>,
    queued: Arc<AtomicUsize>,
    mut rec: Recording,
    policy: FlushPolicy,
) -> (Recording, Result<()>) {
    let mut priority = Priority::lowered();
    let r = drive(&rx, &queued, &mut priority, &mut rec, policy);
    (rec, r)
}

fn drive(
    rx: &mpsc::Receiver<Msg>,
    queued: &AtomicUsize,
    priority: &mut Priority,
    rec: &mut Recording,
    policy: FlushPolicy,
) -> Result<()> {
    let mut last_flush = Instant::now();
    let mut rows_at_flush = rec.rows;
    // No traced row flushed yet (the snapshot rows were, at start).
    let mut first = true;
    loop {
        let msg = rx.recv_timeout(policy.wait(first));
        if msg.is_ok() {
            priority.adjust(queued.fetch_sub(1, Ordering::Relaxed).saturating_sub(1));
        }
        match msg {
            Ok(Msg::Events(batch)) => rec.push_events(&batch)?,
            Ok(Msg::Stack(id, frames)) => rec.add_stack(id, frames)?,
            Ok(Msg::Lost(interval)) => rec.add_lost(interval),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
        let pending = rec.rows - rows_at_flush;
        if policy.due(last_flush.elapsed(), pending, first) {
            rec.flush()?;
            last_flush = Instant::now();
            rows_at_flush = rec.rows;
            first = false;
        }
        if rec.rotation_due() {
            rec.rotate()?;
            last_flush = Instant::now();
            rows_at_flush = rec.rows;
        }
    }
}

/// Samples the kernel's lost-event counter and turns its growth into
/// intervals for the file (`deeptcp.lost_intervals`).
struct LostTracker {
    last_mono: i64,
    last_total: u64,
    last_sample: Instant,
}

impl LostTracker {
    const EVERY: Duration = Duration::from_secs(1);

    fn new() -> Self {
        LostTracker {
            last_mono: host::monotonic_ns(),
            last_total: 0,
            last_sample: Instant::now(),
        }
    }

    fn due(&self) -> bool {
        self.last_sample.elapsed() >= Self::EVERY
    }

    /// The interval since the last sample if the counter grew.
    fn sample(&mut self, total: u64, now_mono: i64) -> Option<LostInterval> {
        let lost = total.saturating_sub(self.last_total);
        let interval = LostInterval {
            from_mono_ns: self.last_mono,
            to_mono_ns: now_mono,
            lost,
        };
        self.last_mono = now_mono;
        self.last_total = self.last_total.max(total);
        self.last_sample = Instant::now();
        (lost > 0).then_some(interval)
    }
}

/// The periodic status line on stderr: rows written (and their rate),
/// then records received from the kernel, those `--kind` filtered out,
/// those lost, and the size on disk — one line every `every` (10 s by
/// default), or an in-place line each second on a terminal. Rows and
/// records differ: a record may give two rows (an inferred kind) or none
/// (filtered). Lost events are never silent: a change in the lost count is
/// printed at the next status tick even with `--quiet`.
struct Status {
    quiet: bool,
    tty: bool,
    every: Duration,
    last: Instant,
    /// Records taken from the ring buffer.
    received: u64,
    rows_at_last: u64,
    lost_at_last: u64,
    printed_inline: bool,
}

impl Status {
    fn new(quiet: bool, every: Duration) -> Self {
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        Status {
            quiet,
            tty,
            every: if tty { Duration::from_secs(1) } else { every },
            last: Instant::now(),
            received: 0,
            rows_at_last: 0,
            lost_at_last: 0,
            printed_inline: false,
        }
    }

    fn maybe_print(&mut self, lost: impl FnOnce() -> u64, progress: &Progress) {
        let elapsed = self.last.elapsed();
        if elapsed < self.every {
            return;
        }
        let lost = lost();
        let rows = progress.rows.load(Ordering::Relaxed);
        let new_lost = lost.saturating_sub(self.lost_at_last);
        if !self.quiet || new_lost > 0 {
            let line = self.line(rows, elapsed, lost, new_lost, progress);
            if self.tty && new_lost == 0 {
                let _ = std::io::Write::write_fmt(&mut std::io::stderr(), format_args!("\r{line}\x1b[K"));
                self.printed_inline = true;
            } else {
                self.finish();
                say!("{line}");
            }
        }
        self.last = Instant::now();
        self.rows_at_last = rows;
        self.lost_at_last = lost;
    }

    fn line(&self, rows: u64, elapsed: Duration, lost: u64, new_lost: u64, progress: &Progress) -> String {
        let rate = rows.saturating_sub(self.rows_at_last) as f64 / elapsed.as_secs_f64();
        let rejected = progress.rejected.load(Ordering::Relaxed);
        format!(
            "record: {rows} rows written ({rate:.0}/s), {} records received, {} filtered, {lost} lost{}{}, {} on disk",
            self.received,
            progress.filtered.load(Ordering::Relaxed),
            if new_lost > 0 {
                format!(
                    " (+{new_lost} in the last {:.0} s: ring buffer full, try a larger --ring-size)",
                    elapsed.as_secs_f64()
                )
            } else {
                String::new()
            },
            if rejected > 0 {
                format!(", {rejected} malformed")
            } else {
                String::new()
            },
            bytes::human(progress.bytes.load(Ordering::Relaxed))
        )
    }

    /// Ends an in-place line so that what follows starts on its own line.
    fn finish(&mut self) {
        if self.printed_inline {
            say!();
            self.printed_inline = false;
        }
    }
}

/// Events lost so far: records the full ring refused, plus runs the kernel
/// skipped (see `misses`) less those a nested twin made up for. The skipped
/// runs are read first: a twin counts its run after the kernel counted the
/// skip, so the sum is never more than what was lost (and exact once the
/// programs are detached).
fn lost_events(lost: &PerCpuArray<MapData, u64>, misses: &Misses) -> u64 {
    let skipped = misses.total();
    let slot = |i: u32| -> u64 { lost.get(&i, 0).map(|v| v.iter().sum()).unwrap_or(0) };
    let recovered = slot(LOST_RECOVERED);
    lost_total(slot(LOST_RING_FULL), skipped, recovered)
}

/// Lost events from the counts (see [`lost_events`]).
fn lost_total(ring_full: u64, skipped: u64, recovered: u64) -> u64 {
    ring_full + skipped.saturating_sub(recovered)
}

/// Slots of the `LOST` map (the eBPF programs' per-CPU counts).
const LOST_RING_FULL: u32 = 0;
const LOST_RECOVERED: u32 = 1;

fn no_object() -> anyhow::Error {
    anyhow!("this record binary was built without its eBPF programs; run scripts/bootstrap, then rebuild")
}

/// Loads the object with this kernel's offsets and `bpf_cfg`, then walks the
/// probe ladders. Shared by recording and `--list-probes`.
/// The filters beyond `Config`, in the programs' layout.
fn extra_filters(f: &crate::cli::Filters) -> ExtraFilters {
    let addr = |c: Option<deeptcp_format::filter::Cidr>| {
        let mut m = ExtraFilters::ANY.saddr;
        if let Some(c) = c {
            let (bytes, bits, family): (Vec<u8>, usize, u16) = match c.addr() {
                std::net::IpAddr::V4(a) => (a.octets().to_vec(), 32, deeptcp_common::AF_INET),
                std::net::IpAddr::V6(a) => (a.octets().to_vec(), 128, deeptcp_common::AF_INET6),
            };
            m.family = family;
            m.net[..bytes.len()].copy_from_slice(&bytes);
            for bit in 0..usize::from(c.prefix()).min(bits) {
                m.mask[bit / 8] |= 0x80 >> (bit % 8);
            }
        }
        m
    };
    let mut comm = [0u8; 16];
    if let Some(c) = &f.comm {
        let n = c.len().min(15);
        comm[..n].copy_from_slice(&c.as_bytes()[..n]);
    }
    ExtraFilters {
        saddr: addr(f.saddr),
        daddr: addr(f.daddr),
        comm,
        has_comm: u32::from(f.comm.is_some()),
        kinds: kernel_kinds(&f.kinds),
    }
}

/// The `FILTER_KINDS` mask for `--kind`: the wire kinds wanted, plus
/// `state_change` when a kind `record` may infer from it is (the converter
/// then drops the `state_change` rows themselves). 0 = every kind.
fn kernel_kinds(kinds: &[EventKind]) -> u32 {
    let wants = |e: EventKind| {
        kinds.contains(&e)
            || (e == EventKind::StateChange && convert::Inference::KINDS.iter().any(|k| kinds.contains(k)))
    };
    EventKind::ALL
        .into_iter()
        .filter(|k| *k != EventKind::Snapshot && wants(*k))
        .fold(0, |m, k| m | (1u32 << k as u8))
}

/// What [`load_and_attach`] attaches, besides the filters.
struct Attach<'a> {
    ring_size: u32,
    disabled: &'a [String],
    /// `--kind` (empty: every kind); other kinds' ladders are not attached.
    kinds: &'a [EventKind],
    owner_store: OwnerStore,
    /// `--recover-nested`.
    twins: bool,
}

/// Loads the object and walks the ladders. With `--owner-store socket`,
/// owners go to socket storage unless a kprobe rung ends up in use
/// (kprobes cannot reach it): then the object is loaded again, with the
/// hash, before anything is recorded.
fn load_and_attach(
    bpf_cfg: &BpfConfig,
    extra: &ExtraFilters,
    how: &Attach<'_>,
) -> Result<(Ebpf, Vec<ProbeStatus>, OwnerStore)> {
    let object = EBPF_OBJECT.ok_or_else(no_object)?;
    crate::privileges::check()?;
    let kbtf = btf::Btf::from_sys_fs().with_context(|| {
        format!(
            "reading kernel BTF: record needs Linux {} or later built with CONFIG_DEBUG_INFO_BTF",
            requirements::MIN_KERNEL
        )
    })?;
    requirements::Features::of(&kbtf).check(&host::kernel_release())?;
    let offsets = offsets::resolve(&kbtf)?;
    let aya_btf = aya::Btf::from_sys_fs().context("reading kernel BTF")?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let cgroup = probes::cgroup2_mount(&mounts);
    let mut store = how.owner_store;
    loop {
        let cfg = BpfConfig {
            owner_store: store.wire(),
            ..*bpf_cfg
        };
        let mut ebpf = EbpfLoader::new()
            .override_global("OFFSETS", &offsets, true)
            .override_global("CONFIG", &cfg, true)
            .override_global("FILTER_SADDR", &extra.saddr, true)
            .override_global("FILTER_DADDR", &extra.daddr, true)
            .override_global("FILTER_COMM", &extra.comm, true)
            .override_global("FILTER_HAS_COMM", &extra.has_comm, true)
            .override_global("FILTER_KINDS", &extra.kinds, true)
            .map_max_entries("EVENTS", how.ring_size)
            .load(object)
            .context("loading the eBPF object")?;
        let env = probes::AttachEnv {
            btf: &aya_btf,
            kbtf: &kbtf,
            cgroup: cgroup.as_deref(),
            disabled: how.disabled,
            kinds: how.kinds,
            twins: how.twins,
        };
        let statuses = probes::attach_all(&mut ebpf, &env);
        if store == OwnerStore::Socket && probes::uses_kprobes(&statuses) {
            // Detaches everything (nothing was read from the ring yet).
            drop(ebpf);
            store = OwnerStore::Hash;
            continue;
        }
        return Ok((ebpf, statuses, store));
    }
}

/// `record --list-probes`: the ladder report for this kernel on stdout.
pub fn list_probes(disabled: &[String], owner_store: OwnerStore) -> Result<()> {
    let how = Attach {
        ring_size: 4096,
        disabled,
        kinds: &[],
        owner_store,
        twins: false,
    };
    let (_ebpf, statuses, store) = load_and_attach(&BpfConfig::UNSET, &ExtraFilters::ANY, &how)?;
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let report = probes::render_report(&statuses, &mut out)
        .and_then(|()| writeln!(out, "\nsocket owners kept in: {}", store.describe()));
    match report {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing the report"),
    }
}

/// Seeds the kernel's owner maps from the start-up snapshot.
fn seed_owners(ebpf: &mut Ebpf, sockets: &[snapshot::SnapSocket]) -> Result<()> {
    let mut tuples: AyaHashMap<_, TupleKey, Owner> =
        AyaHashMap::try_from(ebpf.map_mut("TUPLE_OWNERS").context("map TUPLE_OWNERS missing")?)?;
    let owner_of = |s: &snapshot::SnapSocket| {
        s.owner.as_ref().map(|o| {
            let mut comm = [0u8; 16];
            let n = o.comm.len().min(15);
            comm[..n].copy_from_slice(&o.comm.as_bytes()[..n]);
            Owner {
                pid_tgid: (u64::from(o.pid) << 32) | u64::from(o.pid),
                cgroup_id: o.cgroup_id,
                comm,
                netns: s.netns,
                attribution: Attribution::Snapshot as u8,
                _pad: [0; 3],
            }
        })
    };
    for s in sockets {
        let Some(owner) = owner_of(s) else { continue };
        let key = TupleKey {
            saddr: s.saddr,
            daddr: s.daddr,
            netns: s.netns,
            sport: s.sport,
            dport: s.dport,
        };
        tuples.insert(key, owner, 0)?;
    }
    let mut listeners: AyaHashMap<_, ListenKey, Owner> =
        AyaHashMap::try_from(ebpf.map_mut("LISTENERS").context("map LISTENERS missing")?)?;
    for s in sockets.iter().filter(|s| s.state == TcpState::Listen as u8) {
        let Some(owner) = owner_of(s) else { continue };
        listeners.insert(
            ListenKey {
                netns: s.netns,
                port: s.sport,
                _pad: 0,
            },
            owner,
            0,
        )?;
    }
    Ok(())
}

pub fn run(cfg: Config) -> Result<()> {
    if EBPF_OBJECT.is_none() {
        return Err(no_object());
    }
    // First: a signal during start-up then ends it (see `startup`).
    signals::install()?;
    let startup = Startup::begin(cfg.duration)?;
    let to_file = cfg.output.is_some() || cfg.hive.is_some();
    let hive = cfg
        .hive
        .as_deref()
        .map(|root| Hive::new(root, &host::hostname(), host::unix_secs()));
    let plan = Plan {
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
    };
    let first = plan.first_index();
    // Create the first files before loading anything: a bad output fails
    // fast. Removed again if the start fails.
    let mut created = None;
    let mut files = None;
    if to_file {
        startup.stage("creating the output files")?;
        let (f, c) = startup.creating(|| {
            plan.prepare()?;
            let (files, created) = plan.create(first)?;
            let paths = created.paths.clone();
            Ok(((files, created), paths))
        })?;
        files = Some(f);
        created = Some(c);
    }

    let f = &cfg.filters;
    let bpf_cfg = BpfConfig {
        filter_pid: f.pid,
        filter_netns: f.netns,
        kstack: u32::from(cfg.kstack),
        filter_sport: f.sport,
        filter_dport: f.dport,
        filter_port: f.port,
        extra_filters: u32::from(f.has_extra()),
        // Wake the reader only when a quarter of the ring is full; it also polls every 100 ms.
        wakeup_bytes: u64::from(cfg.ring_size / 4),
        ..BpfConfig::UNSET
    };
    // From here on every early return drops `ebpf`, which detaches every
    // program (aya links are closed with it); `main` exits only after `run`
    // returned, so nothing stays attached on an error path.
    // Anchor the clocks before anything can fire: every event, snapshot row
    // and lost interval then lies at or after the recording's start.
    let clock = host::clock_anchor();
    startup.stage("loading the eBPF programs")?;
    let how = Attach {
        ring_size: cfg.ring_size,
        disabled: &cfg.disabled,
        kinds: &f.kinds,
        owner_store: cfg.owner_store,
        twins: cfg.recover_nested,
    };
    let (mut ebpf, statuses, store) = load_and_attach(&bpf_cfg, &extra_filters(f), &how)?;
    // Every inference and most attribution build on state_change: without
    // it (unless the user turned it off) the kernel is below the minimum.
    if let Some(s) = statuses.iter().find(|s| s.kind == "state_change" && !s.used) {
        if !cfg.disabled.contains(&s.probe) {
            return Err(requirements::state_change_failed(&host::kernel_release(), &s.detail));
        }
    }
    // Events can be lost from now on: the first interval starts here.
    let mut lost_tracker = LostTracker::new();
    let attached = statuses.iter().filter(|s| s.used).count();
    let missing = probes::missing_kinds(&statuses);
    let inferred = probes::probe_name(deeptcp_common::probe::INFERRED_SET_STATE).unwrap_or_default();
    let inference = convert::Inference::from_statuses(&statuses, &inferred);
    if !missing.is_empty() {
        say!(
            "record: warning: not recorded on this kernel: {} (see record --list-probes)",
            missing.join(", ")
        );
    }
    if attached == 0 {
        bail!("no probe could be attached; nothing to record");
    }
    startup.stage("taking the socket snapshot")?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let sockets = snapshot::take(Path::new("/proc"), probes::cgroup2_mount(&mounts).as_deref());
    startup.stage("seeding the owner maps")?;
    // Seed owners for every socket (filters apply to events, not attribution), keep rows that pass.
    seed_owners(&mut ebpf, &sockets).context("seeding the owner maps from the snapshot")?;
    let snapshot_probe: std::sync::Arc<str> = std::sync::Arc::from("snapshot:proc");
    let snapshot_rows: Vec<_> = sockets
        .iter()
        .map(|s| snapshot::row(s, host::monotonic_ns(), &snapshot_probe))
        .filter(|ev| f.matches(ev))
        .collect();

    let mut ring = RingBuf::try_from(ebpf.take_map("EVENTS").context("map EVENTS missing")?)?;
    let lost_map: PerCpuArray<MapData, u64> =
        PerCpuArray::try_from(ebpf.take_map("LOST").context("map LOST missing")?)?;
    let misses = Misses::of(&ebpf, &probes::programs_without_rows());
    let lost_events = || lost_events(&lost_map, &misses);
    let stack_map: Option<StackTraceMap<MapData>> = if cfg.kstack {
        Some(StackTraceMap::try_from(
            ebpf.take_map("STACKS").context("map STACKS missing")?,
        )?)
    } else {
        None
    };
    let symbolizer = stack_map.as_ref().map(|_| Symbolizer::load());
    if symbolizer.as_ref().is_some_and(Symbolizer::is_empty) {
        say!("record: warning: /proc/kallsyms shows no addresses; stacks will read [unknown]");
    }

    let plan = Plan {
        meta: RecordingMeta {
            schema_version: SCHEMA_VERSION,
            host: host::hostname(),
            kernel_release: host::kernel_release(),
            boot_id: host::boot_id(),
            clock,
            recorder_version: format!("record {}", env!("CARGO_PKG_VERSION")),
            probes: statuses,
            lost_events: 0,
            kstack: stack_map.is_some(),
            snapshot_sockets: sockets.len() as u64,
            lost_intervals: Vec::new(),
            segment: None, // set per segment by Plan::start
        },
        ..plan
    };
    let mut resolver = None;
    if to_file {
        startup.stage("looking up cgroup and network namespace names")?;
        let mut r = names::Resolver::new(names::Sources::host(&mounts));
        for row in &snapshot_rows {
            r.observe(row.pid, row.cgroup_id, row.netns);
        }
        resolver = Some(r);
    }
    let mut seg = None;
    if let Some(files) = files {
        startup.stage("writing the snapshot rows")?;
        // Under the watchdog's lock: the writers create the checkpoint sidecars.
        seg = Some(startup.creating(|| {
            let mut seg = plan.start(first, files)?;
            for row in &snapshot_rows {
                seg.events.push(row)?;
            }
            if let Some(table) = resolver.as_mut().and_then(names::Resolver::changes) {
                seg.events.set_names(table);
            }
            // A first checkpoint with the snapshot rows: from now on a killed
            // recorder leaves a file that repairs to at least these.
            seg.events.flush()?;
            Ok((seg, Vec::new()))
        })?);
    }
    startup.check()?;
    let data_path = seg.as_ref().map(|s| s.path.clone()).unwrap_or_default();
    let progress = Arc::new(Progress::default());
    progress
        .bytes
        .store(seg.as_ref().map_or(0, |s| s.events.bytes_written()), Ordering::Relaxed);
    progress.rows.store(snapshot_rows.len() as u64, Ordering::Relaxed);
    let printer = match cfg.live {
        Some(format) => {
            Some(LivePrinter::stdout(format, clock, plan.meta.host.clone()).context("printing the table heading")?)
        }
        None => None,
    };
    // The snapshot rows (sockets that existed at start) go to the file
    // only: the live view shows events, like the seed (a busy host has
    // thousands of such sockets).
    let rec = Recording {
        to_file,
        printer,
        current: seg,
        plan,
        index: first,
        closed: Vec::new(),
        converter: convert::Converter::new(inference, f.kinds.clone(), probes::probe_name),
        batch_rows: WriterOptions::default().batch_rows,
        spare: None,
        rejected: 0,
        filtered: 0,
        rows: snapshot_rows.len() as u64,
        all_stacks: HashMap::new(),
        progress: Arc::clone(&progress),
        names: resolver,
    };
    let (tx, rx) = mpsc::sync_channel::<Msg>(256);
    // Messages sent and not yet received: the writer's backlog.
    let queued = Arc::new(AtomicUsize::new(0));
    let backlog = Arc::clone(&queued);
    let policy = FlushPolicy::new(cfg.flush_interval);
    let writer = thread::Builder::new()
        .name("writer".into())
        .spawn(move || writer_thread(rx, backlog, rec, policy))
        .context("spawning writer thread")?;
    // The files are the recording now (closed cleanly, at a checkpoint, or repairable).
    if let Some(c) = created.as_mut() {
        c.keep();
    }
    startup.finish();

    if !cfg.quiet {
        let into = match (to_file, cfg.rotate) {
            (true, Some(r)) => format!(" into {}, ... ({})", data_path.display(), r.describe()),
            (true, None) => format!(" into {}", data_path.display()),
            (false, _) => String::new(),
        };
        let nested = if cfg.recover_nested {
            ", nested runs recovered"
        } else {
            ""
        };
        say!(
            "record: tracing TCP events{into} ({attached} probes attached, owners in {}{nested}, {} existing sockets). Ctrl-C to end.",
            store.describe(),
            sockets.len()
        );
    }
    let deadline = cfg.duration.map(|d| Instant::now() + d);
    let fd = ring.as_raw_fd();
    let mut seen_stacks: HashSet<i32> = HashSet::new();
    let mut stopping = false;
    let mut ebpf = Some(ebpf);
    let mut writer_gone = false;
    let mut status = Status::new(cfg.quiet, cfg.status_interval);
    loop {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, count 1; EINTR (signal) is fine, we re-check the flag.
        unsafe { libc::poll(&mut pfd, 1, 100) };
        let mut batch: Vec<WireEvent> = Vec::with_capacity(1024);
        let mut msgs: Vec<Msg> = Vec::new();
        while let Some(item) = ring.next() {
            if item.len() < std::mem::size_of::<WireEvent>() {
                continue;
            }
            // SAFETY: the item holds at least size_of::<WireEvent>() bytes written by
            // the program as a WireEvent; read_unaligned copes with any alignment
            // and every bit pattern is a valid WireEvent (integers and byte arrays).
            let wire: WireEvent = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
            if wire.stack_id >= 0 && seen_stacks.insert(wire.stack_id) {
                if let (Some(map), Some(sym)) = (stack_map.as_ref(), symbolizer.as_ref()) {
                    let frames = map
                        .get(&(wire.stack_id as u32), 0)
                        .map(|st| sym.stack(st.frames().iter().map(|f| f.ip)))
                        .unwrap_or_default();
                    msgs.push(Msg::Stack(i64::from(wire.stack_id), frames));
                }
            }
            batch.push(wire);
            if batch.len() >= 8192 {
                break;
            }
        }
        let more = batch.len() >= 8192;
        status.received += batch.len() as u64;
        status.maybe_print(lost_events, &progress);
        if !batch.is_empty() {
            msgs.push(Msg::Events(batch));
        }
        if lost_tracker.due() {
            if let Some(i) = lost_tracker.sample(lost_events(), host::monotonic_ns()) {
                msgs.push(Msg::Lost(i));
            }
        }
        for m in msgs {
            queued.fetch_add(1, Ordering::Relaxed);
            if tx.send(m).is_err() {
                writer_gone = true;
            }
        }
        if writer_gone {
            break;
        }
        if more {
            continue;
        }
        if stopping {
            break;
        }
        if signals::stop_requested() || deadline.is_some_and(|d| Instant::now() >= d) {
            // Detach first, then drain what is left in the ring once more.
            drop(ebpf.take());
            stopping = true;
        }
    }
    drop(ebpf.take());
    let lost = lost_events();
    let last_lost = lost_tracker.sample(lost, host::monotonic_ns());
    status.finish();
    drop(tx);
    let (mut rec, result) = writer.join().map_err(|_| {
        anyhow!(
            "the writer thread panicked; `analyze --repair {}` recovers the file up to its last checkpoint",
            data_path.display()
        )
    })?;
    if let Err(e) = result {
        return Err(closed_after_error(e, &mut rec));
    }
    if let Some(i) = last_lost {
        rec.add_lost(i);
    }
    if let Err(e) = rec.close_current() {
        return Err(closed_after_error(e, &mut rec));
    }
    if !cfg.quiet && !to_file {
        say!("record: {} events, {lost} lost", rec.rows);
    } else if !cfg.quiet {
        let rows: u64 = rec.closed.iter().map(|c| c.rows).sum();
        let size = bytes::human(rec.done_bytes());
        let into = match rec.closed.as_slice() {
            [one] => format!("{} ({size})", one.path.display()),
            [first, .., last] => format!(
                "{} ... {} ({} segments, {size})",
                first.path.display(),
                last.path.display(),
                rec.closed.len()
            ),
            [] => format!("no file ({size})"),
        };
        say!(
            "record: {rows} events written to {into}, {lost} lost{}",
            if rec.rejected > 0 {
                format!(", {} malformed records dropped", rec.rejected)
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

/// The one-line error after a failed write: the error (naming the file
/// and errno), then what was kept.
fn closed_after_error(e: anyhow::Error, rec: &mut Recording) -> anyhow::Error {
    let kept = rec.close_at_checkpoint();
    if kept.is_empty() {
        e
    } else {
        anyhow!("{e:#}; {kept}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_kind_mask_keeps_state_changes_for_inferred_kinds() {
        assert_eq!(kernel_kinds(&[]), 0, "no --kind: everything");
        assert_eq!(kernel_kinds(&[EventKind::ResetSent]), 1 << EventKind::ResetSent as u8);
        assert_eq!(
            kernel_kinds(&[EventKind::FinRecv]),
            (1 << EventKind::FinRecv as u8) | (1 << EventKind::StateChange as u8)
        );
        assert_eq!(
            kernel_kinds(&[EventKind::Connect, EventKind::Retransmit]),
            (1 << EventKind::Connect as u8) | (1 << EventKind::Retransmit as u8) | (1 << EventKind::StateChange as u8)
        );
    }

    #[test]
    fn flush_policy_is_frequent_under_load_and_sparse_when_quiet() {
        let p = FlushPolicy::new(Duration::from_secs(1));
        assert_eq!((p.busy_rows, p.idle_every), (4096, Duration::from_secs(5)));
        assert!(p.due(Duration::from_millis(1000), 4096, false));
        assert!(!p.due(Duration::from_millis(900), 100_000, false));
        assert!(
            !p.due(Duration::from_secs(2), 10, false),
            "few rows wait for the idle interval"
        );
        assert!(p.due(Duration::from_secs(5), 1, false));
        assert!(
            !p.due(Duration::from_secs(60), 0, false),
            "nothing pending, nothing to flush"
        );
    }

    #[test]
    fn the_first_traced_rows_are_checkpointed_within_100_ms() {
        let p = FlushPolicy::new(Duration::from_secs(1));
        assert!(p.due(Duration::from_millis(100), 1, true), "one row, 100 ms in");
        assert!(p.due(Duration::from_millis(100), 100_000, true));
        assert!(!p.due(Duration::from_millis(99), 100_000, true));
        assert!(!p.due(Duration::from_secs(2), 0, true), "nothing pending");
        assert_eq!(p.wait(true), Duration::from_millis(100), "the writer wakes up to check");
        assert_eq!(p.wait(false), Duration::from_secs(1));
        let fast = FlushPolicy::new(Duration::from_millis(20));
        assert!(
            fast.due(Duration::from_millis(20), 1, true),
            "never later than --flush-interval"
        );
    }

    #[test]
    fn writer_priority_drops_while_it_keeps_up_and_returns_when_it_falls_behind() {
        // A thread of its own: the priority is per thread.
        std::thread::spawn(|| {
            let mut p = Priority::lowered();
            let nice = || {
                // SAFETY: gettid and getpriority take and return plain integers.
                unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
            };
            if !p.adaptive {
                // Without the right to raise it again it is left alone.
                assert_eq!(nice(), p.base);
                return;
            }
            // Nice levels end at 19 (a test run under `nice` starts near it).
            let low = (p.base + WRITER_NICE).min(19);
            assert_eq!(nice(), low, "lowered at start");
            p.adjust(Priority::HIGH - 1);
            assert_eq!(nice(), low);
            p.adjust(Priority::HIGH);
            assert_eq!(nice(), p.base, "a backlog brings record's priority back");
            p.adjust(Priority::LOW + 1);
            assert_eq!(nice(), p.base, "until the backlog is nearly gone");
            p.adjust(Priority::LOW);
            assert_eq!(nice(), low);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn skipped_runs_made_up_for_are_not_lost() {
        assert_eq!(lost_total(0, 0, 0), 0);
        assert_eq!(lost_total(3, 5, 5), 3, "every skipped run made up for");
        assert_eq!(lost_total(3, 5, 2), 6, "three skipped runs not made up for");
        // Read while a twin counted a run whose skip was read before it.
        assert_eq!(lost_total(0, 4, 5), 0);
    }

    #[test]
    fn lost_tracker_turns_growth_into_intervals() {
        let mut t = LostTracker {
            last_mono: 100,
            last_total: 0,
            last_sample: Instant::now(),
        };
        assert_eq!(t.sample(0, 200), None);
        let i = |from, to, lost| LostInterval {
            from_mono_ns: from,
            to_mono_ns: to,
            lost,
        };
        assert_eq!(t.sample(5, 300), Some(i(200, 300, 5)));
        assert_eq!(t.sample(5, 400), None);
        assert_eq!(t.sample(12, 500), Some(i(400, 500, 7)));
        assert!(!t.due(), "just sampled");
    }

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
