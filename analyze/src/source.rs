//! Reading several recordings at once, as one stream in time order.
//!
//! Each recording is decoded on its own thread ([`spawn`]), which also
//! back-fills owners and applies the event filters when asked ([`Prep`]),
//! restores time order within the file ([`Reorder`]) and hands events over
//! in chunks through a bounded channel, so memory stays constant however
//! large the files are. [`merge`] then interleaves the files by wall-clock
//! time (`ts`) on the calling thread.
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

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread;

use anyhow::{anyhow, Context, Result};
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
    End,
}

/// Decodes `reader` on a new thread; events come out in chunks, in time order.
pub fn spawn(reader: RecordingReader, clock: ClockAnchor, prep: Prep) -> Stream {
    let (tx, rx) = sync_channel(CHANNEL_CHUNKS);
    let path = reader.path().to_path_buf();
    let spawned = thread::Builder::new()
        .name("decode".into())
        .spawn(move || decode(reader, clock, prep, tx));
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

fn decode(reader: RecordingReader, clock: ClockAnchor, prep: Prep, tx: SyncSender<Msg>) {
    let mut reorder = Reorder::new(REORDER_WINDOW_NS, REORDER_MAX_EVENTS);
    for ev in reader.events() {
        let mut ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                let _ = tx.send(Msg::Events(reorder.finish()));
                let _ = tx.send(Msg::Error(e));
                return;
            }
        };
        if !prep.apply(&mut ev) {
            continue;
        }
        let ts = clock.wall_ns(ev.mono_ns);
        if let Some(chunk) = reorder.push(ts, ev) {
            if tx.send(Msg::Events(chunk)).is_err() {
                return; // the reader went away (e.g. broken pipe)
            }
        }
    }
    let rest = reorder.finish();
    if !rest.is_empty() && tx.send(Msg::Events(rest)).is_err() {
        return;
    }
    let _ = tx.send(Msg::End);
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
/// as there are CPUs. Memory: one 40-byte entry (with its key) per socket.
pub fn scan_owners(sources: &[Source]) -> Result<OwnerMap> {
    let todo: Vec<usize> = (0..sources.len())
        .filter(|&i| sources[i].meta.schema_version >= 2)
        .collect();
    if todo.is_empty() {
        return Ok(OwnerMap::default());
    }
    let workers = thread::available_parallelism().map_or(1, |n| n.get()).min(todo.len());
    let queue = Arc::new(Mutex::new(todo));
    let results: Vec<Result<OwnerMap>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let queue = Arc::clone(&queue);
                scope.spawn(move || -> Result<OwnerMap> {
                    let mut map = OwnerMap::default();
                    loop {
                        let next = queue.lock().map_err(|_| anyhow!("owner scan failed"))?.pop();
                        let Some(i) = next else { break };
                        let src = &sources[i];
                        let clock = src.meta.clock;
                        for ev in open(&src.path)?.events() {
                            // A bad row ends the scan of this file; the
                            // second pass prints the rows before it and
                            // then reports it.
                            let Ok(ev) = ev else { break };
                            map.observe(src.boot, clock.wall_ns(ev.mono_ns), &ev);
                        }
                    }
                    Ok(map)
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
    for r in results {
        let m = r?;
        match &mut all {
            None => all = Some(m),
            Some(a) => a.merge(m),
        }
    }
    Ok(all.unwrap_or_default())
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
