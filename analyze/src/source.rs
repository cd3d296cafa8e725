//! Reading several recordings at once, as one stream in time order.
//!
//! Each recording is decoded by its own thread ([`spawn`]), which also
//! back-fills owners and applies the event filters when asked ([`Prep`]),
//! restores time order within the file ([`Reorder`]) and hands events over
//! in chunks through a bounded channel, so memory stays constant however
//! large the files are. [`merge`] then interleaves the files by wall-clock
//! time (`ts`) on the calling thread.
//!
//! **Threads within a file.** Turning rows into events is most of the work,
//! so a file with several row groups is decoded by several workers (as many
//! as there are CPUs to spare, see [`workers_per_file`]): worker `w` decodes
//! row groups `w`, `w + N`, `w + 2N`, ... and does the [`Prep`] work, and
//! the file's thread takes their output back in row-group order
//! ([`sequence`]), so what enters the reorder window is exactly the file's
//! row order, as with one decoder. Each worker's channel is bounded
//! ([`AHEAD_EVENTS`] events in all): a worker that runs ahead waits.
//! An error in a row group ends the file there, after the rows before it;
//! the workers still running stop at their next hand-over.
//!
//! **Order.** Rows are stored in the order the recorder received them,
//! which is nearly but not strictly time order (events from different CPUs
//! race for the ring buffer). Each file is sorted through a window of
//! [`REORDER_WINDOW_NS`] (at most [`REORDER_MAX_EVENTS`] events held): an
//! event recorded up to that much later than one that follows it is always
//! put back in place; one later than that may be printed after events
//! that happened after it. Events with equal `ts` keep file order, and
//! across files, command-line order.
//!
//! Events are moved as little as possible (an event is some 250 bytes): the
//! reorder buffer is the chunk that is handed over, and the merge lends
//! events to its callback instead of moving them out.
//!
//! The owner scan ([`scan_owners`]) decodes row groups of all files in
//! parallel; its result does not depend on the order in which they finish.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread;

use anyhow::{anyhow, Context, Result};
use deeptcp_format::reader::{Events, RowGroups};
use deeptcp_format::{ClockAnchor, Event, Filter, FormatError, MonoWindow, RecordingMeta, RecordingReader};

use crate::owner::OwnerMap;

/// How far back in time the per-file reorder window reaches.
pub const REORDER_WINDOW_NS: i64 = 100_000_000;
/// The most events the reorder window holds per file.
pub const REORDER_MAX_EVENTS: usize = 32_768;
/// Events per chunk handed from a decoder thread to the merge (at least).
const CHUNK: usize = 1024;
/// Chunks in flight per file.
const CHANNEL_CHUNKS: usize = 8;
/// Events per part handed from a row-group worker to its file's thread.
const PART: usize = 4096;
/// Decoded events all row-group workers of one file may hold ahead of
/// their file's thread (with 2 workers: one 131 072-row row group each,
/// some 60 MB).
pub const AHEAD_EVENTS: usize = 1 << 18;
/// Most row-group workers per file.
const MAX_WORKERS: usize = 8;

/// Row-group workers per file when `files` files are read at once: the
/// CPUs shared out among the files, at least one.
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
    pub meta: RecordingMeta,
    /// `meta.host`, or `unknown`.
    pub host: Arc<str>,
    /// Recordings of the same host and boot share socket cookies; this
    /// numbers the distinct (host, boot id) pairs.
    pub boot: u32,
}

/// Opens a recording with a message that names it.
pub fn open(path: &Path) -> Result<RecordingReader> {
    let md = std::fs::metadata(path).with_context(|| format!("cannot open {}", path.display()))?;
    if md.is_dir() {
        anyhow::bail!("{} is a directory, not a recording", path.display());
    }
    // Format errors name the file themselves. An unfinished recording (its
    // recorder killed, or still running) is read up to its last checkpoint.
    RecordingReader::open_recovering(path).context("cannot read the recording")
}

/// Opens every recording (checking all of them before any event is read).
pub fn open_all(paths: &[PathBuf]) -> Result<(Vec<Source>, Vec<RecordingReader>)> {
    let mut sources = Vec::with_capacity(paths.len());
    let mut readers = Vec::with_capacity(paths.len());
    let mut boots: HashMap<(String, String), u32> = HashMap::new();
    for (i, path) in paths.iter().enumerate() {
        let reader = open(path)?;
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
            meta,
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

/// Restores time order within a bounded window (see the module docs).
///
/// The buffer is kept sorted; its prefix older than the window is *sealed*
/// (nothing can overtake it any more) and handed out in chunks of at least
/// [`CHUNK`] events, each time at least as large as what stays behind, so
/// an event is moved about once on its way through.
pub struct Reorder {
    buf: Vec<(i64, Event)>,
    max_seen: i64,
    window: i64,
    cap: usize,
    next_check: usize,
}

impl Reorder {
    pub fn new(window: i64, cap: usize) -> Self {
        Reorder {
            buf: Vec::with_capacity(2 * CHUNK),
            max_seen: i64::MIN,
            window,
            cap: cap.max(1),
            next_check: 2 * CHUNK,
        }
    }

    /// Adds an event; returns a chunk of sealed events when one is ready.
    pub fn push(&mut self, ts: i64, ev: Event) -> Option<Vec<(i64, Event)>> {
        if self.buf.last().is_none_or(|b| b.0 <= ts) {
            self.buf.push((ts, ev));
        } else {
            let i = self.buf.partition_point(|x| x.0 <= ts);
            self.buf.insert(i, (ts, ev));
        }
        self.max_seen = self.max_seen.max(ts);
        if self.buf.len() < self.next_check {
            return None;
        }
        let horizon = self.max_seen.saturating_sub(self.window);
        let mut sealed = self.buf.partition_point(|x| x.0 <= horizon);
        // What is held is bounded: beyond `cap`, the oldest are sealed anyway.
        sealed = sealed.max(self.buf.len().saturating_sub(self.cap));
        if sealed >= CHUNK && 2 * sealed >= self.buf.len() {
            let rest = self.buf.split_off(sealed);
            self.next_check = rest.len() + 2 * CHUNK;
            Some(std::mem::replace(&mut self.buf, rest))
        } else {
            self.next_check = self.buf.len() + CHUNK;
            None
        }
    }

    /// Everything still held, in order.
    pub fn finish(&mut self) -> Vec<(i64, Event)> {
        self.next_check = 2 * CHUNK;
        std::mem::take(&mut self.buf)
    }
}

enum Msg {
    Events(Vec<(i64, Event)>),
    Error(FormatError),
    /// A worker thread failed (the message says which file).
    Failed(String),
    End,
}

/// Decodes `reader` on a new thread (with up to `workers` row-group
/// workers); events come out in chunks, in time order.
pub fn spawn(reader: RecordingReader, clock: ClockAnchor, prep: Prep, workers: usize) -> Stream {
    let (tx, rx) = sync_channel(CHANNEL_CHUNKS);
    let path = reader.path().to_path_buf();
    let spawned = thread::Builder::new()
        .name("decode".into())
        .spawn(move || decode(reader, clock, prep, workers, tx));
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

fn decode(reader: RecordingReader, clock: ClockAnchor, prep: Prep, workers: usize, tx: SyncSender<Msg>) {
    let mut reorder = Reorder::new(REORDER_WINDOW_NS, REORDER_MAX_EVENTS);
    let groups = reader.row_groups();
    let workers = workers.min(groups.len());
    let result = if workers > 1 {
        let path = reader.path().to_path_buf();
        let parallel = sequence(
            &groups,
            workers,
            &prep,
            clock,
            AHEAD_EVENTS,
            &path,
            |ts, ev| match reorder.push(ts, ev) {
                Some(chunk) => tx.send(Msg::Events(chunk)).is_ok(),
                None => true,
            },
        );
        match parallel {
            // A bad row group: the rows before it are out; what comes next,
            // and the error, are what one decoder reading the whole file
            // finds (its batches span row groups, so on a corrupt file it
            // may fail elsewhere, or with another message).
            Err(Failure::Format(_, done)) => sequential(reader, &prep, clock, done, &mut reorder, &tx),
            r => r,
        }
    } else {
        sequential(reader, &prep, clock, 0, &mut reorder, &tx)
    };
    match result {
        Ok(false) => {} // the reader went away (e.g. broken pipe)
        Ok(true) => {
            let rest = reorder.finish();
            if !rest.is_empty() && tx.send(Msg::Events(rest)).is_err() {
                return;
            }
            let _ = tx.send(Msg::End);
        }
        Err(e) => {
            let _ = tx.send(Msg::Events(reorder.finish()));
            let _ = tx.send(match e {
                Failure::Format(e, _) => Msg::Error(e),
                Failure::Worker(m) => Msg::Failed(m),
            });
        }
    }
}

/// Decodes `reader` on this thread into `reorder`, after skipping its first
/// `skip` rows (already handed over).
fn sequential(
    reader: RecordingReader,
    prep: &Prep,
    clock: ClockAnchor,
    skip: u64,
    reorder: &mut Reorder,
    tx: &SyncSender<Msg>,
) -> Result<bool, Failure> {
    {
        let mut result = Ok(true);
        let mut row = 0u64;
        for ev in reader.events() {
            row += 1;
            if row <= skip && ev.is_ok() {
                continue;
            }
            let mut ev = match ev {
                Ok(ev) => ev,
                Err(e) => {
                    result = Err(Failure::Format(e, row - 1));
                    break;
                }
            };
            if !prep.apply(&mut ev) {
                continue;
            }
            let ts = clock.wall_ns(ev.mono_ns);
            if let Some(chunk) = reorder.push(ts, ev) {
                if tx.send(Msg::Events(chunk)).is_err() {
                    result = Ok(false);
                    break;
                }
            }
        }
        result
    }
}

/// Why a file's events ended early.
#[derive(Debug)]
enum Failure {
    /// A bad row or row group (reported after the rows before it, which
    /// are counted).
    Format(FormatError, u64),
    /// A worker thread could not start or died.
    Worker(String),
}

/// What a row-group worker hands over.
enum Part {
    Events(Vec<(i64, Event)>),
    /// The row group is done.
    End,
    /// After the row group's rows before it (counted).
    Error(FormatError, u64),
}

/// Decodes the row groups of `groups` on `workers` threads and calls
/// `f(ts, event)` for every event that `prep` keeps, in file order (see the
/// module docs). Workers hold at most about `ahead` events not yet passed to
/// `f`. Returns `Ok(false)` when `f` asked to stop, an error after the
/// events before it.
fn sequence(
    groups: &RowGroups,
    workers: usize,
    prep: &Prep,
    clock: ClockAnchor,
    ahead: usize,
    path: &Path,
    mut f: impl FnMut(i64, Event) -> bool,
) -> Result<bool, Failure> {
    let workers = workers.max(1);
    let part = PART.min(ahead.div_ceil(2 * workers)).max(1);
    let parts_each = (ahead / (part * workers)).max(1);
    thread::scope(|scope| {
        let mut rxs = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = sync_channel::<Part>(parts_each);
            let spawned = thread::Builder::new()
                .name("decode-rg".into())
                .spawn_scoped(scope, move || {
                    for rg in (w..groups.len()).step_by(workers) {
                        let ok = match groups.events(rg) {
                            Ok(events) => decode_part(events, prep, clock, part, &tx),
                            Err(e) => {
                                let _ = tx.send(Part::Error(e, 0));
                                false
                            }
                        };
                        if !ok || tx.send(Part::End).is_err() {
                            return;
                        }
                    }
                });
            if let Err(e) = spawned {
                return Err(Failure::Worker(format!(
                    "cannot start a thread to read {}: {e}",
                    path.display()
                )));
            }
            rxs.push(rx);
        }
        // Dropping `rxs` on any return unblocks the workers, which then
        // stop; the scope joins them.
        for rg in 0..groups.len() {
            let Some(rx) = rxs.get(rg % workers) else {
                break;
            };
            loop {
                match rx.recv() {
                    Ok(Part::Events(v)) => {
                        for (ts, ev) in v {
                            if !f(ts, ev) {
                                return Ok(false);
                            }
                        }
                    }
                    Ok(Part::End) => break,
                    Ok(Part::Error(e, n)) => return Err(Failure::Format(e, groups.first_row(rg).saturating_add(n))),
                    Err(_) => {
                        return Err(Failure::Worker(format!(
                            "reading {} stopped unexpectedly (decoder thread failed)",
                            path.display()
                        )))
                    }
                }
            }
        }
        Ok(true)
    })
}

/// Sends the events of one row group that `prep` keeps, in parts of `part`;
/// `false` after an error (sent) or when the receiver went away.
fn decode_part(events: Events, prep: &Prep, clock: ClockAnchor, part: usize, tx: &SyncSender<Part>) -> bool {
    let mut buf = Vec::with_capacity(part);
    for (n, ev) in events.enumerate() {
        let mut ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                if !buf.is_empty() && tx.send(Part::Events(buf)).is_err() {
                    return false;
                }
                let _ = tx.send(Part::Error(e, n as u64));
                return false;
            }
        };
        if !prep.apply(&mut ev) {
            continue;
        }
        buf.push((clock.wall_ns(ev.mono_ns), ev));
        if buf.len() >= part {
            let full = std::mem::replace(&mut buf, Vec::with_capacity(part));
            if tx.send(Part::Events(full)).is_err() {
                return false;
            }
        }
    }
    buf.is_empty() || tx.send(Part::Events(buf)).is_ok()
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
    /// the current one is used up).
    fn peek(&mut self) -> Result<Option<&(i64, Event)>> {
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
/// order across streams (ties: lower index first).
pub fn merge(mut streams: Vec<Stream>, mut f: impl FnMut(u32, i64, &Event) -> Result<()>) -> Result<()> {
    if streams.len() == 1 {
        let s = &mut streams[0];
        while let Some((ts, ev)) = s.peek()? {
            f(0, *ts, ev)?;
            s.advance();
        }
        return Ok(());
    }
    let mut heap = BinaryHeap::with_capacity(streams.len());
    for (i, s) in streams.iter_mut().enumerate() {
        if let Some((ts, _)) = s.peek()? {
            heap.push(Reverse((*ts, i as u32)));
        }
    }
    while let Some(Reverse((_, i))) = heap.pop() {
        let s = &mut streams[i as usize];
        if let Some((ts, ev)) = s.peek()? {
            f(i, *ts, ev)?;
        }
        s.advance();
        if let Some((ts, _)) = s.peek()? {
            heap.push(Reverse((*ts, i)));
        }
    }
    Ok(())
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
        let g = open(&src.path)?.row_groups();
        units.extend((0..g.len()).map(|rg| (i, rg)));
        groups.push(Some(g));
    }
    if units.is_empty() {
        return Ok(OwnerMap::default());
    }
    let workers = thread::available_parallelism().map_or(1, |n| n.get()).min(units.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (units, groups, next) = (&units, &groups, &next);
    // Per worker: its map and the files in which it met a bad row.
    let results: Vec<Result<(OwnerMap, Vec<usize>)>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(move || -> Result<(OwnerMap, Vec<usize>)> {
                    let mut map = OwnerMap::default();
                    let mut bad = Vec::new();
                    loop {
                        let u = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
        for (n, ev) in open(&src.path)?.events().enumerate() {
            let Ok(ev) = ev else { break };
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

    fn reorder(ts: &[i64], window: i64, cap: usize) -> Vec<i64> {
        let mut r = Reorder::new(window, cap);
        let mut out = Vec::new();
        for &t in ts {
            if let Some(c) = r.push(t, ev_at(t)) {
                out.extend(c);
            }
        }
        out.extend(r.finish());
        out.iter().map(|x| x.0).collect()
    }

    #[test]
    fn reorder_window() {
        assert_eq!(reorder(&[1, 2, 3], 10, 100), [1, 2, 3]);
        assert_eq!(reorder(&[3, 1, 2], 10, 100), [1, 2, 3]);
        // Small inputs are sorted whole.
        assert_eq!(reorder(&[10, 20, 30, 5, 31], 10, 100), [5, 10, 20, 30, 31]);
        // Equal times keep their order.
        let mut r = Reorder::new(10, 100);
        for (i, t) in [5, 3, 5, 3].into_iter().enumerate() {
            let mut e = ev_at(t);
            e.pid = i as u32;
            assert!(r.push(t, e).is_none());
        }
        let pids: Vec<u32> = r.finish().iter().map(|x| x.1.pid).collect();
        assert_eq!(pids, [1, 3, 0, 2]);
    }

    #[test]
    fn reorder_window_on_long_inputs() {
        // Every event 1 late by one position, window 2: fully repaired.
        let n = 10 * CHUNK as i64;
        let mut ts: Vec<i64> = (0..n).collect();
        for i in (0..ts.len() - 1).step_by(2) {
            ts.swap(i, i + 1);
        }
        let out = reorder(&ts, 2, REORDER_MAX_EVENTS);
        assert_eq!(out, (0..n).collect::<Vec<_>>());
        // An event far beyond the window comes out early, not sorted.
        let mut ts: Vec<i64> = (0..n).collect();
        ts.push(5);
        let out = reorder(&ts, 10, REORDER_MAX_EVENTS);
        assert_eq!(out.len(), ts.len());
        assert_eq!(*out.last().unwrap(), n - 1);
        // The cap bounds what is held, whatever the window.
        let mut r = Reorder::new(i64::MAX, 100);
        let mut most = 0;
        for t in 0..n {
            r.push(t, ev_at(t));
            most = most.max(r.buf.len());
        }
        assert!(most <= 2 * CHUNK + 100, "{most}");
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

    #[test]
    fn merge_by_time_then_input_order() {
        let mut got = Vec::new();
        merge(
            vec![stream(&[1, 5, 9]), stream(&[2, 5, 6, 10]), stream(&[])],
            |i, ts, _| {
                got.push((ts, i));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(got, [(1, 0), (2, 1), (5, 0), (5, 1), (6, 1), (9, 0), (10, 1)]);
        let mut n = 0;
        merge(vec![stream(&[3, 1])], |_, _, _| {
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

    /// `n` events, slightly out of time order, in row groups of `rg` rows.
    fn recording(dir: &Path, n: u64, rg: usize) -> PathBuf {
        let path = dir.join("r.parquet");
        let file = std::fs::File::create(&path).unwrap();
        let opts = WriterOptions {
            row_group_rows: rg,
            batch_rows: 50,
            zstd_level: 1,
        };
        let mut w = EventWriter::new(file, &test_meta(), opts).unwrap();
        for i in 0..n {
            let mut e = mk(EventKind::Retransmit, (i % 7) as u32, Attribution::Task, i % 13 + 1);
            e.mono_ns = (i as i64) * 10 - if i % 5 == 0 { 25 } else { 0 };
            e.sport = i as u16;
            w.push(&e).unwrap();
        }
        w.finish(0).unwrap();
        path
    }

    fn sequential(path: &Path) -> Vec<(i64, Event)> {
        let r = open(path).unwrap();
        let clock = r.meta().clock;
        r.events()
            .map(|e| e.unwrap())
            .map(|e| (clock.wall_ns(e.mono_ns), e))
            .collect()
    }

    fn parallel(path: &Path, workers: usize, ahead: usize) -> (Vec<(i64, Event)>, Result<bool, Failure>) {
        let r = open(path).unwrap();
        let clock = r.meta().clock;
        let mut got = Vec::new();
        let res = sequence(
            &r.row_groups(),
            workers,
            &Prep::default(),
            clock,
            ahead,
            path,
            |ts, ev| {
                got.push((ts, ev));
                true
            },
        );
        (got, res)
    }

    #[test]
    fn parallel_row_groups_come_back_in_file_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = recording(dir.path(), 2000, 170);
        let want = sequential(&path);
        assert_eq!(want.len(), 2000);
        assert!(open(&path).unwrap().row_groups().len() >= 10);
        for (workers, ahead) in [(1, 1000), (2, 1), (3, 64), (4, AHEAD_EVENTS), (16, 10)] {
            let (got, res) = parallel(&path, workers, ahead);
            assert!(matches!(res, Ok(true)), "{workers} workers: {res:?}");
            assert!(got == want, "{workers} workers, ahead {ahead}: order differs");
        }
        // Stopping early stops cleanly (the workers are joined).
        let r = open(&path).unwrap();
        let mut n = 0;
        let res = sequence(
            &r.row_groups(),
            3,
            &Prep::default(),
            r.meta().clock,
            64,
            &path,
            |_, _| {
                n += 1;
                n < 500
            },
        );
        assert!(matches!(res, Ok(false)));
        assert_eq!(n, 500);
        // Through spawn and the reorder window, as the renderers see it.
        let mut via_spawn = Vec::new();
        let s = spawn(open(&path).unwrap(), r.meta().clock, Prep::default(), 3);
        merge(vec![s], |_, ts, ev| {
            via_spawn.push((ts, ev.sport));
            Ok(())
        })
        .unwrap();
        let mut one = Vec::new();
        let s = spawn(open(&path).unwrap(), r.meta().clock, Prep::default(), 1);
        merge(vec![s], |_, ts, ev| {
            one.push((ts, ev.sport));
            Ok(())
        })
        .unwrap();
        assert_eq!(via_spawn, one);
        assert!(via_spawn.windows(2).all(|w| w[0].0 <= w[1].0), "time order restored");
    }

    #[test]
    fn part_sizes_bound_what_workers_hold() {
        // What `sequence` lets workers hold: channel capacity times part size.
        for (workers, ahead) in [(1, 1), (2, AHEAD_EVENTS), (3, 1000), (8, 100)] {
            let part = PART.min(ahead.div_ceil(2 * workers)).max(1);
            let parts_each = (ahead / (part * workers)).max(1);
            assert!(workers * parts_each * part <= ahead.max(workers), "{workers} {ahead}");
        }
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
        assert!(open(&bad).unwrap().row_groups().len() >= 10);
        let want = sequential(&good);
        for workers in [1, 2, 3] {
            let (got, res) = parallel(&bad, workers, 64);
            assert!(got[..] == want[..537], "{workers} workers: rows before the bad one");
            match res {
                Err(Failure::Format(FormatError::InvalidValue { row, column, .. }, done)) => {
                    assert_eq!(done, 537);
                    assert_eq!((row, column.as_str()), (537, "saddr"));
                }
                other => panic!("{workers} workers: {other:?}"),
            }
        }
        // The same through spawn and merge: the rows, then the error.
        let r = open(&bad).unwrap();
        let clock = r.meta().clock;
        let mut n = 0;
        let e = merge(vec![spawn(r, clock, Prep::default(), 2)], |_, _, _| {
            n += 1;
            Ok(())
        })
        .unwrap_err();
        assert_eq!(n, 537);
        assert!(format!("{e:#}").contains("row 537"), "{e:#}");
        // The owner scan stops at the bad row too: same owners as the rows before it.
        let src = |p: &Path| {
            let (s, _) = open_all(&[p.to_path_buf()]).unwrap();
            s
        };
        let owners = scan_owners(&src(&bad)).unwrap();
        let mut prefix = OwnerMap::default();
        for (i, (ts, ev)) in want[..537].iter().enumerate() {
            prefix.observe(0, *ts, row_order(0, i as u64), ev);
        }
        assert_eq!(owners.len(), prefix.len());
        for c in 1..=13 {
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
        let e = merge(vec![s], |_, _, _| Ok(())).unwrap_err();
        assert!(e.to_string().contains("stopped unexpectedly"), "{e}");
    }
}
