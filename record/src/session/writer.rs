//! The writer thread: turns the drain thread's batches into rows
//! ([`convert::Converter`] filling a `RowBatch`) and the rows into the
//! recording's files, flushing row groups ([`FlushPolicy`]), rotating
//! segments and closing them; at a lower priority than the drain thread
//! while it keeps up ([`Priority`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use deeptcp_cli::signals;
use deeptcp_common::WireEvent;
use deeptcp_format::{stacks_path, LostInterval, RowBatch, WriterOptions};
use deeptcp_record::convert;

use super::output::{rename_noreplace, Plan, Segment};
use super::status::Progress;
use crate::live::{LivePrinter, Printed};
use crate::{bytes, names};

/// How much lower the writer thread's priority is than record's (nice
/// levels) while it keeps up: under CPU contention the drain thread and the
/// traced workload get the CPU first, the writer catches up from its queue
/// (see [`Priority`]).
const WRITER_NICE: i32 = 5;

/// Batch handed from the drain thread to the writer thread.
pub(super) enum Msg {
    Events(Vec<WireEvent>),
    Stack(i64, Vec<String>),
    /// Events lost in an interval (the kernel's counter grew).
    Lost(LostInterval),
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

/// A closed file of the recording.
struct Closed {
    path: PathBuf,
    rows: u64,
    bytes: u64,
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

/// The recording as the writer thread sees it: the open segment, the ones
/// already closed, and the stacks (kept when in segments, so that each
/// segment's stacks file has every stack its events refer to).
pub(super) struct Recording {
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
    /// The recording of `plan` (metadata filled in), with its first
    /// segment `current` open (none without a file) and holding `rows`
    /// already (the snapshot's).
    pub(super) fn new(
        plan: Plan,
        current: Option<Segment>,
        to_file: bool,
        printer: Option<LivePrinter>,
        converter: convert::Converter,
        rows: u64,
        names: Option<names::Resolver>,
    ) -> Recording {
        let progress = Arc::new(Progress::default());
        progress.bytes.store(
            current.as_ref().map_or(0, |s| s.events.bytes_written()),
            Ordering::Relaxed,
        );
        progress.rows.store(rows, Ordering::Relaxed);
        Recording {
            to_file,
            printer,
            current,
            index: plan.first_index(),
            plan,
            closed: Vec::new(),
            converter,
            batch_rows: WriterOptions::default().batch_rows,
            spare: None,
            rejected: 0,
            filtered: 0,
            rows,
            all_stacks: HashMap::new(),
            progress,
            names,
        }
    }

    /// The counters it publishes for the status line.
    pub(super) fn progress(&self) -> Arc<Progress> {
        Arc::clone(&self.progress)
    }

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

    pub(super) fn add_lost(&mut self, interval: LostInterval) {
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

    pub(super) fn close_current(&mut self) -> Result<()> {
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
    pub(super) fn close_at_checkpoint(&mut self) -> String {
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

impl Recording {
    /// The line said at the end: what was written where, what was lost.
    pub(super) fn summary(&self, lost: u64) -> String {
        if !self.to_file {
            return format!("record: {} events, {lost} lost", self.rows);
        }
        let rows: u64 = self.closed.iter().map(|c| c.rows).sum();
        let size = bytes::human(self.done_bytes());
        let into = match self.closed.as_slice() {
            [one] => format!("{} ({size})", one.path.display()),
            [first, .., last] => format!(
                "{} ... {} ({} segments, {size})",
                first.path.display(),
                last.path.display(),
                self.closed.len()
            ),
            [] => format!("no file ({size})"),
        };
        format!(
            "record: {rows} events written to {into}, {lost} lost{}",
            if self.rejected > 0 {
                format!(", {} malformed records dropped", self.rejected)
            } else {
                String::new()
            }
        )
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

/// The writer thread, as the drain thread sees it.
pub(super) struct Writer {
    tx: mpsc::SyncSender<Msg>,
    /// Messages sent and not yet received: the writer's backlog.
    queued: Arc<AtomicUsize>,
    thread: thread::JoinHandle<(Recording, Result<()>)>,
}

impl Writer {
    /// Starts the writer thread on `rec`, flushing about every `flush_every`.
    pub(super) fn spawn(rec: Recording, flush_every: Duration) -> Result<Writer> {
        let (tx, rx) = mpsc::sync_channel::<Msg>(256);
        let queued = Arc::new(AtomicUsize::new(0));
        let backlog = Arc::clone(&queued);
        let policy = FlushPolicy::new(flush_every);
        let thread = thread::Builder::new()
            .name("writer".into())
            .spawn(move || writer_thread(rx, backlog, rec, policy))
            .context("spawning writer thread")?;
        Ok(Writer { tx, queued, thread })
    }

    /// Queues `msg`; false when the writer has ended (after an error).
    pub(super) fn send(&self, msg: Msg) -> bool {
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.tx.send(msg).is_ok()
    }

    /// Ends the queue and waits for the writer to write what is in it: the
    /// recording back, with the writer's result (`Err` if it panicked).
    pub(super) fn finish(self) -> thread::Result<(Recording, Result<()>)> {
        drop(self.tx);
        self.thread.join()
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
