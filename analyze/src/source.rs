//! Reading several recordings at once, as one stream in time order.
//!
//! Each recording is read by its own thread ([`spawn`]) as its [`Plan`]
//! says ([`crate::order`]: row groups in the order of their first event,
//! each sorted while it streams, merged k ways), and handed over in chunks
//! through a bounded channel, so memory stays bounded however large the
//! files are and whatever order their rows are stored in. [`merge`] then
//! interleaves the files by wall-clock time (`ts`) on the calling thread.
//! [`plan_all`] makes the plans first, before anything is printed, so that
//! a file too far out of order to sort in bounded memory is refused up
//! front rather than after part of the output.
//!
//! **Threads within a file.** Turning rows into events is most of the work,
//! so each row group being merged is decoded by a thread of its own, which
//! also back-fills owners and applies the event filters when asked
//! ([`Prep`]) and sorts the row group ([`Reorder`]); as many more as there
//! are CPUs to spare ([`workers_per_file`]) decode the next row groups
//! ahead. Each has a bounded channel ([`AHEAD_EVENTS`] events shared by all
//! of a file's): a thread that runs ahead waits. The file's thread merges
//! their output. The row group the merge waits for is always being decoded
//! (its thread waits only for room in its own channel), so the merge cannot
//! deadlock.
//!
//! **Order.** The output is the stable sort of each file's rows by `ts`:
//! rows with equal `ts` keep file order, and across files, command-line
//! order. An error in a row group ends the file where the merge reaches it:
//! after the events before it in time order (for a file in order, exactly
//! the rows before the bad one), then the error.
//!
//! Events are moved as little as possible (an event is some 250 bytes): the
//! sorted runs are the chunks that are handed over, and the merge lends
//! events to its callback instead of moving them out.
//!
//! The owner scan ([`scan_owners`]) decodes row groups of all files in
//! parallel; its result does not depend on the order in which they finish.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread;

use anyhow::{anyhow, Context, Result};
use deeptcp_format::reader::RowGroups;
use deeptcp_format::{
    ClockAnchor, Event, Filter, FormatError, MonoWindow, Names, ReadOptions, RecordingMeta, RecordingReader,
};

use crate::order::{self, GroupPlan, GroupScan, Limits, Plan, Reorder, CHUNK};
use crate::owner::OwnerMap;

/// Chunks in flight per file.
const CHANNEL_CHUNKS: usize = 8;
/// Decoded events the row groups of one file being decoded at once may hold
/// in their channels, ahead of their file's thread (some 60 MB).
pub const AHEAD_EVENTS: usize = 1 << 18;
/// Most row groups decoded ahead per file, plus one.
const MAX_WORKERS: usize = 8;

/// Row groups decoding at once per file when `files` files are read at
/// once: the CPUs shared out among the files, at least one.
pub fn workers_per_file(files: usize) -> usize {
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    (cpus / files.max(1)).clamp(1, MAX_WORKERS)
}

/// Context of event decoding errors (which name the file and row themselves).
pub const READING: &str = "cannot read the recording's events";

/// One input recording.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    /// How its readers are opened (`--skip-corrupt`), each time.
    pub read: ReadOptions,
    pub meta: RecordingMeta,
    /// Its name tables (cgroup paths, netns names; empty for older files).
    pub names: Names,
    /// `meta.host`, or `unknown`.
    pub host: Arc<str>,
    /// Recordings of the same host and boot share socket cookies; this
    /// numbers the distinct (host, boot id) pairs.
    pub boot: u32,
}

/// Opens a recording with a message that names it.
pub fn open(path: &Path, read: ReadOptions) -> Result<RecordingReader> {
    let md = std::fs::metadata(path).with_context(|| format!("cannot open {}", path.display()))?;
    if md.is_dir() {
        anyhow::bail!("{} is a directory, not a recording", path.display());
    }
    // Format errors name the file themselves. An unfinished recording (its
    // recorder killed, or still running) is read up to its last checkpoint.
    RecordingReader::open_recovering_with(path, read).context("cannot read the recording")
}

/// Opens every recording (checking all of them before any event is read).
pub fn open_all(paths: &[PathBuf], read: ReadOptions) -> Result<(Vec<Source>, Vec<RecordingReader>)> {
    let mut sources = Vec::with_capacity(paths.len());
    let mut readers = Vec::with_capacity(paths.len());
    let mut boots: HashMap<(String, String), u32> = HashMap::new();
    for (i, path) in paths.iter().enumerate() {
        let reader = open(path, read)?;
        let meta = reader.meta().clone();
        let host: Arc<str> = if meta.host.is_empty() {
            Arc::from("unknown")
        } else {
            Arc::from(meta.host.as_str())
        };
        let boot = if meta.boot_id.is_empty() {
            // Unknown boot: cookies are only comparable within the file.
            let n = boots.len() as u32;
            boots.insert((format!("\0file{i}"), String::new()), n);
            n
        } else {
            let n = boots.len() as u32;
            *boots.entry((meta.host.clone(), meta.boot_id.clone())).or_insert(n)
        };
        sources.push(Source {
            path: path.clone(),
            read,
            meta,
            names: reader.names().clone(),
            host,
            boot,
        });
        readers.push(reader);
    }
    Ok((sources, readers))
}

/// Per-event work done on the decoder thread before ordering.
#[derive(Clone, Default)]
pub struct Prep {
    /// Back-fill pid-0 rows from this map.
    pub owners: Option<Arc<OwnerMap>>,
    pub boot: u32,
    /// Drop events that do not match.
    pub filter: Option<Arc<Filter>>,
    pub window: Option<MonoWindow>,
}

impl Prep {
    /// Back-fills `ev` and says whether to keep it.
    fn apply(&self, ev: &mut Event) -> bool {
        if let Some(w) = &self.window {
            if !w.contains(ev.mono_ns) {
                return false;
            }
        }
        if let Some(owners) = &self.owners {
            owners.backfill(self.boot, ev);
        }
        self.filter.as_ref().is_none_or(|f| f.matches(ev))
    }
}

/// Plans the time-ordered read of every recording (see [`crate::order`]),
/// before anything is printed: a file too far out of order to sort within
/// `limits` is an error here.
pub fn plan_all(readers: &[RecordingReader], limits: Limits) -> Result<Vec<Plan>> {
    readers.iter().map(|r| plan(r, limits)).collect()
}

/// Plans the time-ordered read of one recording: a first look at each row
/// group's `mono_ns` column ([`GroupScan`]), on as many threads as there
/// are CPUs.
pub fn plan(reader: &RecordingReader, limits: Limits) -> Result<Plan> {
    let groups = reader.row_groups();
    let clock = reader.meta().clock;
    let n = groups.len();
    let next = AtomicUsize::new(0);
    let scan_some = || {
        let mut found = Vec::new();
        loop {
            let rg = next.fetch_add(1, Ordering::Relaxed);
            if rg >= n {
                return found;
            }
            found.push((rg, scan_group(&groups, rg, clock, limits.max_events)));
        }
    };
    let mut scans: Vec<Option<GroupScan>> = vec![None; n];
    let helpers = thread::available_parallelism()
        .map_or(1, |c| c.get())
        .min(n)
        .saturating_sub(1);
    thread::scope(|scope| {
        // The calling thread scans too, so whatever helpers fail to start
        // (or fail), every row group is scanned or left unknown, never lost.
        let handles: Vec<_> = (0..helpers)
            .filter_map(|_| {
                thread::Builder::new()
                    .name("plan-rg".into())
                    .spawn_scoped(scope, scan_some)
                    .ok()
            })
            .collect();
        let mine = scan_some();
        for (rg, scan) in handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .chain(mine)
        {
            if let Some(slot) = scans.get_mut(rg) {
                *slot = scan;
            }
        }
    });
    let groups: Vec<(usize, u64, Option<GroupScan>)> = scans
        .into_iter()
        .enumerate()
        .map(|(rg, scan)| (rg, groups.rows(rg), scan))
        .collect();
    order::plan(reader.path(), groups, limits)
}

/// The first look at row group `rg`; `None` when its `mono_ns` column
/// cannot be read (reading its rows will say why, when it gets there).
fn scan_group(groups: &RowGroups, rg: usize, clock: ClockAnchor, cap: usize) -> Option<GroupScan> {
    let mut scan = GroupScan::new(clock, cap);
    groups.scan_mono_ns(rg, |v| scan.range(v)).ok()?;
    if scan.needs_window() {
        groups.scan_mono_ns(rg, |v| scan.window(v)).ok()?;
    }
    Some(scan.finish())
}

enum Msg {
    Events(Vec<(i64, Event)>),
    /// Not an error: a row group left out ([`FormatError::SkippedRowGroup`]).
    Warning(FormatError),
    Error(FormatError),
    /// A worker thread failed (the message says which file).
    Failed(String),
    End,
}

/// Decodes `reader` on a new thread, as `plan` says (with up to `workers`
/// row groups decoding at once ahead of those being merged); events come
/// out in chunks, in time order.
pub fn spawn(reader: RecordingReader, plan: Plan, clock: ClockAnchor, prep: Prep, workers: usize) -> Stream {
    let (tx, rx) = sync_channel(CHANNEL_CHUNKS);
    let path = reader.path().to_path_buf();
    let spawned = thread::Builder::new()
        .name("decode".into())
        .spawn(move || decode(reader, plan, clock, prep, workers, tx));
    if let Err(e) = spawned {
        return Stream::failed(anyhow!(e).context(format!("cannot start a thread to read {}", path.display())));
    }
    Stream {
        rx: Some(rx),
        buf: Vec::new(),
        pos: 0,
        path,
        failed: None,
    }
}

/// Why a file's events ended early.
#[derive(Debug)]
enum Stop {
    /// The receiver went away (e.g. broken pipe): nothing to report.
    Receiver,
    /// A bad row or row group, after the events before it.
    Format(FormatError),
    /// A worker thread could not start or died.
    Failed(String),
}

fn decode(reader: RecordingReader, plan: Plan, clock: ClockAnchor, prep: Prep, workers: usize, tx: SyncSender<Msg>) {
    let groups = reader.row_groups();
    let path = reader.path().to_path_buf();
    drop(reader);
    let stop = AtomicBool::new(false);
    let mut merge = GroupMerge {
        groups: &groups,
        stop: &stop,
        plan: &plan,
        clock,
        prep: &prep,
        path: &path,
        tx: &tx,
        out: Vec::with_capacity(CHUNK),
        ahead: workers.saturating_sub(1),
        // Read-ahead shared by the row groups decoding at once.
        share: AHEAD_EVENTS / workers.saturating_add(plan.max_open).max(1),
    };
    // Returning drops the receivers and sets `stop`, which ends the
    // row-group threads still running; the scope joins them.
    let result = thread::scope(|scope| {
        let result = merge.run(scope);
        stop.store(true, Ordering::Relaxed);
        result
    });
    let _ = tx.send(match result {
        Ok(()) => Msg::End,
        Err(Stop::Receiver) => return,
        Err(Stop::Format(e)) => Msg::Error(e),
        Err(Stop::Failed(m)) => Msg::Failed(m),
    });
}

/// What a row-group thread hands over.
enum Part {
    /// The next events of the row group, in order.
    Events(Vec<(i64, Event)>),
    /// The row group was left out ([`FormatError::SkippedRowGroup`]).
    Skipped(FormatError),
    /// After the row group's events before the bad row, sorted.
    Error(FormatError),
    /// The row group is done.
    End,
}

/// One row group being merged.
struct OpenGroup {
    rx: Receiver<Part>,
    part: std::vec::IntoIter<(i64, Event)>,
}

/// The k-way merge of a file's row groups (see [`crate::order`]).
struct GroupMerge<'a> {
    groups: &'a RowGroups,
    /// Set when the merge is over: row-group threads stop decoding.
    stop: &'a AtomicBool,
    plan: &'a Plan,
    clock: ClockAnchor,
    prep: &'a Prep,
    path: &'a Path,
    tx: &'a SyncSender<Msg>,
    /// The chunk being filled.
    out: Vec<(i64, Event)>,
    /// Row groups decoding ahead of the open ones.
    ahead: usize,
    /// Events each row group's channel holds.
    share: usize,
}

impl<'a> GroupMerge<'a> {
    fn run<'s>(&mut self, scope: &'s thread::Scope<'s, 'a>) -> Result<(), Stop> {
        let plan = self.plan;
        // Spawned, not yet opened, in plan order.
        let mut pending: VecDeque<Receiver<Part>> = VecDeque::new();
        let (mut spawned, mut opened) = (0usize, 0usize);
        let mut open: Vec<Option<OpenGroup>> = Vec::new();
        let mut free: Vec<usize> = Vec::new();
        // (next event's ts, row group, slot in `open`): ties in row group
        // order, which is file order.
        let mut heap: BinaryHeap<Reverse<(i64, usize, usize)>> = BinaryHeap::new();
        loop {
            // Open every row group whose events may come before the next
            // event: its first event is earlier (or as early, and it is
            // stored before).
            while let Some(g) = plan.groups.get(opened) {
                let due = heap
                    .peek()
                    .is_none_or(|Reverse((ts, rg, _))| (g.first, g.rg) < (*ts, *rg));
                if !due {
                    break;
                }
                while spawned <= opened {
                    pending.push_back(self.start(scope, spawned)?);
                    spawned += 1;
                }
                let Some(rx) = pending.pop_front() else {
                    return Err(self.died());
                };
                opened += 1;
                let mut group = OpenGroup {
                    rx,
                    part: Vec::new().into_iter(),
                };
                if let Some(ts) = self.head(&mut group)? {
                    let slot = free.pop().unwrap_or(open.len());
                    heap.push(Reverse((ts, g.rg, slot)));
                    match open.get_mut(slot) {
                        Some(s) => *s = Some(group),
                        None => open.push(Some(group)),
                    }
                }
            }
            // Keep row groups decoding ahead.
            while spawned < plan.groups.len() && spawned < opened + self.ahead {
                pending.push_back(self.start(scope, spawned)?);
                spawned += 1;
            }
            let Some(Reverse((_, rg, slot))) = heap.pop() else {
                break;
            };
            let Some(Some(group)) = open.get_mut(slot) else {
                return Err(self.died());
            };
            // This row group's events go out up to the next one's turn: the
            // next event of another open row group, or the first of the
            // next row group to open (all at once, without the heap, for
            // the common case of row groups that follow each other).
            let bound = [
                heap.peek().map(|Reverse((ts, rg, _))| (*ts, *rg)),
                plan.groups.get(opened).map(|g| (g.first, g.rg)),
            ]
            .into_iter()
            .flatten()
            .min();
            loop {
                let part = group.part.as_slice();
                let n = match bound {
                    None => part.len(),
                    // At least the event popped, which comes before both.
                    Some(b) => part.partition_point(|(ts, _)| (*ts, rg) < b).max(1),
                };
                self.out.extend(group.part.by_ref().take(n));
                if self.out.len() >= CHUNK {
                    self.flush()?;
                }
                match self.head(group)? {
                    Some(ts) if bound.is_none_or(|b| (ts, rg) < b) => continue,
                    Some(ts) => heap.push(Reverse((ts, rg, slot))),
                    None => {
                        open[slot] = None;
                        free.push(slot);
                    }
                }
                break;
            }
        }
        self.flush()
    }

    /// Starts the thread of the `i`th row group of the plan.
    fn start<'s>(&self, scope: &'s thread::Scope<'s, 'a>, i: usize) -> Result<Receiver<Part>, Stop> {
        let Some(&g) = self.plan.groups.get(i) else {
            return Err(self.died());
        };
        // Parts are at most what the window holds (usually a chunk).
        let parts = (self.share / g.cost()).max(1);
        let (tx, rx) = sync_channel(parts);
        let (groups, prep, clock, stop) = (self.groups, self.prep, self.clock, self.stop);
        thread::Builder::new()
            .name("decode-rg".into())
            .spawn_scoped(scope, move || read_group(groups, g, clock, prep, stop, &tx))
            .map_err(|e| Stop::Failed(format!("cannot start a thread to read {}: {e}", self.path.display())))?;
        Ok(rx)
    }

    /// The `ts` of `group`'s next event, receiving its next part when the
    /// current one is used up; `None` at its end.
    fn head(&mut self, group: &mut OpenGroup) -> Result<Option<i64>, Stop> {
        loop {
            if let Some((ts, _)) = group.part.as_slice().first() {
                return Ok(Some(*ts));
            }
            match group.rx.recv() {
                Ok(Part::Events(v)) => group.part = v.into_iter(),
                Ok(Part::Skipped(e)) => self.tx.send(Msg::Warning(e)).map_err(|_| Stop::Receiver)?,
                Ok(Part::End) => return Ok(None),
                Ok(Part::Error(e)) => {
                    // What came before it goes out first.
                    self.flush()?;
                    return Err(Stop::Format(e));
                }
                Err(_) => return Err(self.died()),
            }
        }
    }

    fn flush(&mut self) -> Result<(), Stop> {
        if self.out.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.out, Vec::with_capacity(CHUNK));
        self.tx.send(Msg::Events(chunk)).map_err(|_| Stop::Receiver)
    }

    fn died(&self) -> Stop {
        Stop::Failed(format!(
            "reading {} stopped unexpectedly (decoder thread failed)",
            self.path.display()
        ))
    }
}

/// Decodes row group `g`, keeps what `prep` keeps and sends it on in time
/// order ([`Reorder`] with the row group's lag), until `stop`.
fn read_group(
    groups: &RowGroups,
    g: GroupPlan,
    clock: ClockAnchor,
    prep: &Prep,
    stop: &AtomicBool,
    tx: &SyncSender<Part>,
) {
    let mut reorder = Reorder::new(g.lag);
    let send_rest = |reorder: &mut Reorder| {
        let rest = reorder.finish();
        rest.is_empty() || tx.send(Part::Events(rest)).is_ok()
    };
    let events = match groups.events(g.rg) {
        Ok(events) => events,
        Err(e) => {
            let _ = tx.send(Part::Error(e));
            return;
        }
    };
    for item in events {
        // A row group held whole sends nothing until its end: without
        // this, it would be decoded to the end after the output is closed.
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match item {
            Ok(mut ev) => {
                let ts = clock.wall_ns(ev.mono_ns);
                if !prep.apply(&mut ev) {
                    reorder.see(ts);
                    continue;
                }
                if let Some(sealed) = reorder.push(ts, ev) {
                    if tx.send(Part::Events(sealed)).is_err() {
                        return;
                    }
                }
            }
            Err(e @ FormatError::SkippedRowGroup { .. }) => {
                if tx.send(Part::Skipped(e)).is_err() {
                    return;
                }
            }
            Err(e) => {
                if send_rest(&mut reorder) {
                    let _ = tx.send(Part::Error(e));
                }
                return;
            }
        }
    }
    if send_rest(&mut reorder) {
        let _ = tx.send(Part::End);
    }
}

/// The receiving end of one decoder thread.
pub struct Stream {
    rx: Option<Receiver<Msg>>,
    buf: Vec<(i64, Event)>,
    pos: usize,
    path: PathBuf,
    failed: Option<anyhow::Error>,
}

impl Stream {
    fn failed(e: anyhow::Error) -> Stream {
        Stream {
            rx: None,
            buf: Vec::new(),
            pos: 0,
            path: PathBuf::new(),
            failed: Some(e),
        }
    }

    /// The current event, `None` at the end (receiving the next chunk when
    /// the current one is used up; warnings received on the way go to `warn`).
    fn peek(&mut self, warn: &mut dyn FnMut(FormatError)) -> Result<Option<&(i64, Event)>> {
        while self.pos >= self.buf.len() {
            if let Some(e) = self.failed.take() {
                return Err(e);
            }
            let Some(rx) = &self.rx else {
                return Ok(None);
            };
            match rx.recv() {
                Ok(Msg::Events(v)) => {
                    self.buf = v;
                    self.pos = 0;
                }
                Ok(Msg::Warning(e)) => warn(e),
                Ok(Msg::Error(e)) => {
                    self.rx = None;
                    return Err(anyhow::Error::new(e).context(READING));
                }
                Ok(Msg::Failed(m)) => {
                    self.rx = None;
                    return Err(anyhow!(m));
                }
                Ok(Msg::End) => {
                    self.rx = None;
                    return Ok(None);
                }
                Err(_) => {
                    self.rx = None;
                    return Err(anyhow!(
                        "reading {} stopped unexpectedly (decoder thread failed)",
                        self.path.display()
                    ));
                }
            }
        }
        Ok(self.buf.get(self.pos))
    }

    fn advance(&mut self) {
        self.pos += 1;
    }
}

/// Calls `f(source index, ts, event)` for every event of `streams`, in `ts`
/// order across streams (ties: lower index first), and `warn` with each
/// warning a stream reports (a row group left out, with `--skip-corrupt`).
pub fn merge(
    mut streams: Vec<Stream>,
    mut warn: impl FnMut(FormatError),
    mut f: impl FnMut(u32, i64, &Event) -> Result<()>,
) -> Result<()> {
    let warn: &mut dyn FnMut(FormatError) = &mut warn;
    if streams.len() == 1 {
        let s = &mut streams[0];
        while let Some((ts, ev)) = s.peek(warn)? {
            f(0, *ts, ev)?;
            s.advance();
        }
        return Ok(());
    }
    let mut heap = BinaryHeap::with_capacity(streams.len());
    for (i, s) in streams.iter_mut().enumerate() {
        if let Some((ts, _)) = s.peek(warn)? {
            heap.push(Reverse((*ts, i as u32)));
        }
    }
    while let Some(Reverse((_, i))) = heap.pop() {
        let s = &mut streams[i as usize];
        if let Some((ts, ev)) = s.peek(warn)? {
            f(i, *ts, ev)?;
        }
        s.advance();
        if let Some((ts, _)) = s.peek(warn)? {
            heap.push(Reverse((*ts, i)));
        }
    }
    Ok(())
}

/// Whether any recording holds an address whose endpoint would overflow
/// the table's seed-width address columns ([`deeptcp_view::table::needs_wide`]),
/// decided before the first line from the address columns alone, so that
/// the table streams with columns that fit every row. Stops at the first
/// such address. A row group that cannot be read counts as holding none:
/// reading its rows reports it (or skips it, with `--skip-corrupt`).
pub fn any_wide_address(readers: &[RecordingReader]) -> bool {
    readers.iter().any(|r| {
        let groups = r.row_groups();
        (0..groups.len()).any(|rg| {
            let mut wide = false;
            // Results are only ever "found one": an error leaves `wide` as it was.
            let _ = groups.scan_addresses(rg, |a| wide |= deeptcp_view::table::needs_wide(a));
            wide
        })
    })
}

/// First pass for back-fill: the best owner of every socket cookie in the
/// schema-v2 recordings among `sources`, decoded on up to as many threads
/// as there are CPUs, row group by row group. Memory: one 48-byte entry
/// (with its key) per socket and thread.
///
/// Each row's place in the input ([`row_order`]) breaks ties between equal
/// owners, so the result is what one pass in file order would find, however
/// the work is shared out. A bad row ends the scan of its file (the second
/// pass prints the rows before it and then reports it): when one is met,
/// that file is scanned again on its own, up to the bad row.
pub fn scan_owners(sources: &[Source]) -> Result<OwnerMap> {
    let mut units: Vec<(usize, usize)> = Vec::new();
    let mut groups: Vec<Option<RowGroups>> = Vec::with_capacity(sources.len());
    for (i, src) in sources.iter().enumerate() {
        if src.meta.schema_version < 2 {
            groups.push(None);
            continue;
        }
        let g = open(&src.path, src.read)?.row_groups();
        units.extend((0..g.len()).map(|rg| (i, rg)));
        groups.push(Some(g));
    }
    if units.is_empty() {
        return Ok(OwnerMap::default());
    }
    let workers = thread::available_parallelism().map_or(1, |n| n.get()).min(units.len());
    let next = AtomicUsize::new(0);
    let (units, groups, next) = (&units, &groups, &next);
    // Per worker: its map and the files in which it met a bad row.
    let results: Vec<Result<(OwnerMap, Vec<usize>)>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(move || -> Result<(OwnerMap, Vec<usize>)> {
                    let mut map = OwnerMap::default();
                    let mut bad = Vec::new();
                    loop {
                        let u = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&(i, rg)) = units.get(u) else { break };
                        let Some(Some(g)) = groups.get(i) else { continue };
                        let src = &sources[i];
                        let Ok(events) = g.events(rg) else {
                            bad.push(i);
                            continue;
                        };
                        let first = g.first_row(rg);
                        for (n, ev) in events.enumerate() {
                            let Ok(ev) = ev else {
                                bad.push(i);
                                break;
                            };
                            let order = row_order(i, first + n as u64);
                            map.observe(src.boot, src.meta.clock.wall_ns(ev.mono_ns), order, &ev);
                        }
                    }
                    Ok((map, bad))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow!("owner scan thread failed"))))
            .collect()
    });
    // The first map is kept as it is: merging it into an empty one would
    // briefly hold both.
    let mut all: Option<OwnerMap> = None;
    let mut bad: Vec<usize> = Vec::new();
    for r in results {
        let (m, b) = r?;
        bad.extend(b);
        match &mut all {
            None => all = Some(m),
            Some(a) => a.merge(m),
        }
    }
    if bad.is_empty() {
        return Ok(all.unwrap_or_default());
    }
    // Rows after a bad one must not count: scan those files again on their
    // own, in order, up to the bad row; keep the other files' owners.
    bad.sort_unstable();
    bad.dedup();
    let mut map = all.unwrap_or_default();
    map.retain_boots(|boot| !bad.iter().any(|&i| sources[i].boot == boot));
    let rescan: Vec<usize> = (0..sources.len())
        .filter(|&i| groups[i].is_some() && bad.iter().any(|&b| sources[b].boot == sources[i].boot))
        .collect();
    for i in rescan {
        let src = &sources[i];
        for (n, ev) in open(&src.path, src.read)?.events().enumerate() {
            let ev = match ev {
                Ok(ev) => ev,
                // --skip-corrupt: a left-out row group; the main pass warns.
                Err(FormatError::SkippedRowGroup { .. }) => continue,
                Err(_) => break,
            };
            map.observe(
                src.boot,
                src.meta.clock.wall_ns(ev.mono_ns),
                row_order(i, n as u64),
                &ev,
            );
        }
    }
    Ok(map)
}

/// Position of row `row` of input `file` in the whole input, for ties.
fn row_order(file: usize, row: u64) -> u64 {
    ((file as u64) << 40) | row.min((1 << 40) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::owner::tests::ev as mk;
    use deeptcp_format::{Attribution, EventKind};

    fn ev_at(mono: i64) -> Event {
        let mut e = mk(EventKind::Retransmit, 1, Attribution::Task, 0);
        e.mono_ns = mono;
        e
    }

    fn stream(ts: &[i64]) -> Stream {
        let (tx, rx) = sync_channel(100);
        let chunk: Vec<(i64, Event)> = ts.iter().map(|&t| (t, ev_at(t))).collect();
        for c in chunk.chunks(2) {
            tx.send(Msg::Events(c.to_vec())).unwrap();
        }
        tx.send(Msg::End).unwrap();
        Stream {
            rx: Some(rx),
            buf: Vec::new(),
            pos: 0,
            path: PathBuf::from("x"),
            failed: None,
        }
    }

    fn no_warnings(e: FormatError) {
        panic!("unexpected warning: {e}");
    }

    #[test]
    fn merge_by_time_then_input_order() {
        let mut got = Vec::new();
        merge(
            vec![stream(&[1, 5, 9]), stream(&[2, 5, 6, 10]), stream(&[])],
            no_warnings,
            |i, ts, _| {
                got.push((ts, i));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(got, [(1, 0), (2, 1), (5, 0), (5, 1), (6, 1), (9, 0), (10, 1)]);
        let mut n = 0;
        merge(vec![stream(&[3, 1])], no_warnings, |_, _, _| {
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 2);
    }

    use deeptcp_format::{EventWriter, WriterOptions};

    fn test_meta() -> RecordingMeta {
        RecordingMeta {
            schema_version: 0,
            host: "h".into(),
            kernel_release: "k".into(),
            boot_id: "b".into(),
            clock: ClockAnchor {
                realtime_ns: 1_700_000_000_000_000_000,
                monotonic_ns: 0,
            },
            recorder_version: "t".into(),
            probes: Vec::new(),
            lost_events: 0,
            kstack: false,
            snapshot_sockets: 0,
            lost_intervals: Vec::new(),
            segment: None,
        }
    }

    /// A recording of events at `mono` times, in that order, in row groups of
    /// `rg` rows; each event's `cookie` is its row number.
    fn recording_of(dir: &Path, name: &str, mono: &[i64], rg: usize) -> PathBuf {
        let path = dir.join(name);
        let file = std::fs::File::create(&path).unwrap();
        let opts = WriterOptions {
            row_group_rows: rg,
            batch_rows: 50,
            zstd_level: 1,
        };
        let mut w = EventWriter::new(file, &test_meta(), opts).unwrap();
        for (i, &m) in mono.iter().enumerate() {
            let mut e = mk(EventKind::Retransmit, (i % 7) as u32, Attribution::Task, i as u64);
            e.mono_ns = m;
            e.sport = i as u16;
            w.push(&e).unwrap();
        }
        w.finish(0).unwrap();
        path
    }

    /// `n` events, slightly out of time order, in row groups of `rg` rows.
    fn recording(dir: &Path, n: u64, rg: usize) -> PathBuf {
        let mono: Vec<i64> = (0..n as i64)
            .map(|i| i * 10 - if i % 5 == 0 { 25 } else { 0 })
            .collect();
        recording_of(dir, "r.parquet", &mono, rg)
    }

    /// The file's rows in file order.
    fn sequential(path: &Path) -> Vec<(i64, Event)> {
        let r = open(path, ReadOptions::default()).unwrap();
        let clock = r.meta().clock;
        r.events()
            .map(|e| e.unwrap())
            .map(|e| (clock.wall_ns(e.mono_ns), e))
            .collect()
    }

    /// (ts, row) of the file's rows sorted stably by `ts`: what must come out.
    fn sorted(path: &Path, keep: impl Fn(&Event) -> bool) -> Vec<(i64, u64)> {
        let mut v: Vec<(i64, u64)> = sequential(path)
            .into_iter()
            .filter(|(_, e)| keep(e))
            .map(|(ts, e)| (ts, e.cookie))
            .collect();
        v.sort_by_key(|x| x.0);
        v
    }

    /// (ts, row) as the renderers get them, and the error that ended the file.
    fn read(path: &Path, workers: usize, prep: Prep, limits: Limits) -> (Vec<(i64, u64)>, Result<()>) {
        let r = open(path, ReadOptions::default()).unwrap();
        let clock = r.meta().clock;
        let plan = match plan(&r, limits) {
            Ok(p) => p,
            Err(e) => return (Vec::new(), Err(e)),
        };
        let mut got = Vec::new();
        let res = merge(vec![spawn(r, plan, clock, prep, workers)], no_warnings, |_, ts, ev| {
            got.push((ts, ev.cookie));
            Ok(())
        });
        (got, res)
    }

    /// SplitMix64.
    fn rng(seed: &mut u64) -> u64 {
        *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Files in every order the issue met (issue 13, item 5), as other tools
    /// write them: each comes out as the stable sort of its rows by time,
    /// with any number of threads.
    #[test]
    fn files_in_any_order_come_out_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let n = 3000i64;
        let mut seed = 1;
        // In order but for CPU races: each event up to 30 rows late. One
        // every 100 µs: the file spans 300 ms, more than the 100 ms the
        // old reorder window reached back.
        let mut recorder: Vec<i64> = (0..n).map(|i| 1_000_000 + i * 100_000).collect();
        for i in 0..recorder.len() {
            let j = (i + (rng(&mut seed) % 30) as usize).min(recorder.len() - 1);
            recorder.swap(i, j);
        }
        let rg = 250;
        let mut reversed = Vec::new();
        for c in recorder.chunks(rg).rev() {
            reversed.extend_from_slice(c);
        }
        let doubled = [recorder.clone(), recorder.clone()].concat();
        let mut descending = recorder.clone();
        descending.sort_unstable_by(|a, b| b.cmp(a));
        let mut shuffled = recorder.clone();
        for i in (1..shuffled.len()).rev() {
            shuffled.swap(i, (rng(&mut seed) % (i as u64 + 1)) as usize);
        }
        // Few distinct times: ties everywhere, across row groups too.
        let ties: Vec<i64> = (0..n).map(|i| 1_000_000 + (i * 7919) % 13 % 5 * 100_000_000).collect();
        // One event far later than its neighbours, then far earlier ones.
        let mut strays = recorder.clone();
        strays[100] += 2_000_000_000;
        strays[2900] = 0;
        for (name, mono) in [
            ("recorder", recorder),
            ("row groups reversed", reversed),
            ("appended to itself", doubled),
            ("descending", descending),
            ("shuffled", shuffled),
            ("ties", ties),
            ("strays", strays),
        ] {
            let path = recording_of(dir.path(), &format!("{name}.parquet"), &mono, rg);
            let want = sorted(&path, |_| true);
            assert_eq!(want.len(), mono.len());
            for workers in [1, 3] {
                let (got, res) = read(&path, workers, Prep::default(), Limits::default());
                res.unwrap();
                assert!(got == want, "{name}, {workers} workers: not the stable sort");
            }
            // Filtered: the sort of what is kept (left-out rows still move
            // the windows along).
            let filter = Filter {
                pids: vec![2, 5],
                ..Filter::default()
            };
            let prep = Prep {
                window: Some(MonoWindow {
                    since: 50_000_000,
                    until: 250_000_000,
                }),
                filter: Some(Arc::new(filter)),
                ..Prep::default()
            };
            let (got, res) = read(&path, 2, prep, Limits::default());
            res.unwrap();
            let want = sorted(&path, |e| {
                (50_000_000..250_000_000).contains(&e.mono_ns) && (e.pid == 2 || e.pid == 5)
            });
            assert!(!want.is_empty(), "{name}");
            assert!(got == want, "{name}, filtered");
        }
    }

    #[test]
    fn too_far_out_of_order_is_refused_before_any_output() {
        let dir = tempfile::tempdir().unwrap();
        let mut seed = 3;
        let mono: Vec<i64> = (0..2000).map(|_| (rng(&mut seed) % 1_000_000) as i64).collect();
        let path = recording_of(dir.path(), "shuffled.parquet", &mono, 200);
        let limits = Limits {
            max_events: 1000,
            max_groups: 64,
        };
        let (got, res) = read(&path, 2, Prep::default(), limits);
        let e = res.unwrap_err();
        assert!(got.is_empty());
        assert!(
            e.to_string().contains("shuffled.parquet is too far out of time order"),
            "{e}"
        );
        // The same file in order is fine within the same limits.
        let mut mono = mono;
        mono.sort_unstable();
        let path = recording_of(dir.path(), "sorted.parquet", &mono, 200);
        let (got, res) = read(&path, 2, Prep::default(), limits);
        res.unwrap();
        assert_eq!(got.len(), 2000);
    }

    #[test]
    fn stopping_early_stops_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = recording(dir.path(), 5000, 170);
        let r = open(&path, ReadOptions::default()).unwrap();
        let clock = r.meta().clock;
        let plan = plan(&r, Limits::default()).unwrap();
        let mut n = 0;
        let e = merge(
            vec![spawn(r, plan, clock, Prep::default(), 3)],
            no_warnings,
            |_, _, _| {
                n += 1;
                if n == 500 {
                    anyhow::bail!("enough");
                }
                Ok(())
            },
        )
        .unwrap_err();
        assert_eq!((n, e.to_string().as_str()), (500, "enough"));
    }

    /// `path` rewritten with row `bad`'s `saddr` replaced by text that is no address.
    fn corrupt(path: &Path, bad: usize) -> PathBuf {
        use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        use parquet::arrow::ArrowWriter;
        use parquet::file::properties::WriterProperties;
        let out = path.with_file_name("bad.parquet");
        let b = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap();
        let schema = Arc::clone(b.schema());
        let kv = b.metadata().file_metadata().key_value_metadata().cloned();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(100))
            .set_key_value_metadata(kv)
            .build();
        let mut w =
            ArrowWriter::try_new(std::fs::File::create(&out).unwrap(), Arc::clone(&schema), Some(props)).unwrap();
        let mut row = 0;
        for batch in b.build().unwrap() {
            let batch = batch.unwrap();
            let idx = schema.index_of("saddr").unwrap();
            let cols: Vec<ArrayRef> = (0..batch.num_columns())
                .map(|c| {
                    let a = batch.column(c);
                    if c != idx {
                        return Arc::clone(a);
                    }
                    let s = a.as_any().downcast_ref::<StringArray>().unwrap();
                    let v: Vec<String> = (0..s.len())
                        .map(|i| {
                            if row + i == bad {
                                "nope".into()
                            } else {
                                s.value(i).to_owned()
                            }
                        })
                        .collect();
                    Arc::new(StringArray::from(v)) as ArrayRef
                })
                .collect();
            row += batch.num_rows();
            w.write(&RecordBatch::try_new(Arc::clone(&schema), cols).unwrap())
                .unwrap();
        }
        w.close().unwrap();
        out
    }

    #[test]
    fn an_error_in_a_row_group_ends_the_file_after_the_rows_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let good = recording(dir.path(), 1000, 1000);
        let bad = corrupt(&good, 537);
        assert!(open(&bad, ReadOptions::default()).unwrap().row_groups().len() >= 10);
        let mut want: Vec<(i64, u64)> = sequential(&good)[..537].iter().map(|(t, e)| (*t, e.cookie)).collect();
        want.sort_by_key(|x| x.0);
        for workers in [1, 2, 3] {
            let (got, res) = read(&bad, workers, Prep::default(), Limits::default());
            assert!(got == want, "{workers} workers: the rows before the bad one, in order");
            let e = res.unwrap_err();
            assert!(format!("{e:#}").contains("row 537"), "{e:#}");
        }
        // The owner scan stops at the bad row too: same owners as the rows before it.
        let src = |p: &Path| {
            let (s, _) = open_all(&[p.to_path_buf()], ReadOptions::default()).unwrap();
            s
        };
        let owners = scan_owners(&src(&bad)).unwrap();
        let mut prefix = OwnerMap::default();
        for (i, (ts, ev)) in sequential(&good)[..537].iter().enumerate() {
            prefix.observe(0, *ts, row_order(0, i as u64), ev);
        }
        assert_eq!(owners.len(), prefix.len());
        for c in 0..1000 {
            assert_eq!(owners.get(0, c), prefix.get(0, c), "cookie {c}");
        }
    }

    #[test]
    fn a_vanished_decoder_is_an_error() {
        let (tx, rx) = sync_channel(1);
        drop(tx);
        let s = Stream {
            rx: Some(rx),
            buf: Vec::new(),
            pos: 0,
            path: PathBuf::from("x.parquet"),
            failed: None,
        };
        let e = merge(vec![s], no_warnings, |_, _, _| Ok(())).unwrap_err();
        assert!(e.to_string().contains("stopped unexpectedly"), "{e}");
    }
}
