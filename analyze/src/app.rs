//! Runs one validated [`Config`]: finds and opens the recordings, picks the
//! renderer and streams events through it.
//!
//! This is the only module that touches the file system; it turns format
//! errors into messages that name the file and what was being done, and it
//! marks failures to write the output ([`OutputError`]) so that `main` can
//! tell "the reader of our stdout went away" (exit quietly) from real errors.
//! Events are streamed ([`crate::source`]) in time order, whatever order
//! the files store them in ([`crate::order`]): memory does not grow with the
//! files. That order is planned before any output, so a file too far out
//! of order to sort in bounded memory is refused before its first line.
//! The event table and JSON first make one pass to learn socket owners for
//! back-fill (schema v2 only, memory bounded by the number of sockets);
//! `--conn` needs no such pass (a connection's owner is known when it ends)
//! and holds only open connections, unless `--sort` without `--top` asks
//! for all of them.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use deeptcp_format::{read_stacks, stacks_path, Event, Filter, MonoWindow, ReadOptions, RecordingReader};

use crate::cli::{Config, ConnOptions, Mode, SortKey, StatsOptions, TableOptions, TimeMode};
use crate::conn::{Conn, Match, Tracker};
use crate::inputs;
use crate::names;
use crate::order::{Limits, Plan};
use crate::render::conn::ConnTable;
use crate::render::info::{self, Summary};
use crate::render::json::{self, ConnJson};
use crate::render::sanitized;
use crate::render::table::{Stacks, TableOptions as ViewOptions, TableRenderer, TimeColumn};
use crate::render::{self};
use crate::source::{self, Prep, Source, READING};
use crate::stats::Stats;

/// Writing the program's output failed (e.g. `EPIPE` when piped into `head`).
#[derive(Debug)]
pub struct OutputError(pub io::Error);

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("writing output")
    }
}

impl std::error::Error for OutputError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl OutputError {
    /// True when `err`, or anything it wraps, is a broken pipe on our output.
    pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
        err.chain().any(|e| {
            e.downcast_ref::<OutputError>()
                .is_some_and(|o| o.0.kind() == io::ErrorKind::BrokenPipe)
        })
    }
}

pub(crate) fn output(e: io::Error) -> anyhow::Error {
    anyhow::Error::new(OutputError(e))
}

/// Runs `config`, writing results to `out` and warnings to `warn`.
pub fn run(config: &Config, out: &mut impl Write, warn: &mut impl Write) -> Result<()> {
    if config.follow {
        return crate::follow::run(config, out, warn);
    }
    if config.mode == Mode::Repair {
        return repair(&config.inputs, out, warn);
    }
    let paths = inputs::expand(&config.inputs)?;
    if config.mode == Mode::Info {
        return info(&paths, out, warn);
    }
    let read = ReadOptions {
        skip_corrupt: config.skip_corrupt,
    };
    let (sources, readers) = source::open_all(&paths, read)?;
    for (s, r) in sources.iter().zip(&readers) {
        if r.recovered() {
            warn_recovered(warn, &s.path);
        }
    }
    let what = match config.mode {
        Mode::Table(_) => "this table is",
        _ => "this output is",
    };
    for s in &sources {
        if s.meta.lost_events > 0 {
            let which = if sources.len() > 1 {
                format!(" in {}", s.path.display())
            } else {
                String::new()
            };
            warning(
                warn,
                &format!(
                    "the recorder lost {} events (ring buffer full){which}: {what} incomplete",
                    s.meta.lost_events
                ),
            );
        }
        for (i, interval) in s.meta.lost_intervals.iter().enumerate() {
            if i == MAX_LOST_LINES {
                let more = s.meta.lost_intervals.len() - MAX_LOST_LINES;
                warning(
                    warn,
                    &format!("... and {more} more intervals with lost events (see --info)"),
                );
                break;
            }
            warning(warn, &interval.describe(&s.meta.clock));
        }
    }
    // Before any output: a file too far out of time order is refused here.
    let plans = source::plan_all(&readers, Limits::default())?;
    let mut layout = Layout::of(&sources);
    layout.wide = match config.mode {
        Mode::Table(o) => o.wide || source::any_wide_address(&readers),
        Mode::Conn(o) if !o.json => o.wide || source::any_wide_address(&readers),
        _ => false,
    };
    let readers: Vec<(RecordingReader, Plan)> = readers.into_iter().zip(plans).collect();
    match config.mode {
        Mode::Table(opts) => events(config, &sources, readers, &layout, Some(opts), out, warn),
        Mode::Json => events(config, &sources, readers, &layout, None, out, warn),
        Mode::Conn(opts) => conns(config, &sources, readers, &layout, opts, out, warn),
        Mode::Stats(opts) => stats(config, &sources, readers, opts, out, warn),
        Mode::Report | Mode::TraceJson => crate::report::run(config, &sources, readers, layout.origin_ns, out, warn),
        Mode::Info | Mode::Repair => Ok(()),
    }
}

/// Lost-event intervals listed on stderr before the output; the rest are in `--info`.
const MAX_LOST_LINES: usize = 10;

fn warn_recovered(warn: &mut impl Write, path: &Path) {
    warning(
        warn,
        &format!(
            "{} was not closed cleanly (or is still being recorded): reading it up to its last checkpoint; \
             `analyze --repair {}` makes that permanent",
            path.display(),
            path.display()
        ),
    );
}

/// `--repair`: completes each recording (and its stacks sidecar) at its last
/// checkpoint. It takes the names the other modes take ([`inputs::expand`]:
/// a rotated recording by its name, directories, globs), so that what
/// `analyze NAME` reads as one recording is what `analyze --repair NAME`
/// repairs. With several recordings, one that cannot be repaired is reported
/// on `warn` and the others are still repaired; the run then fails.
fn repair(inputs: &[PathBuf], out: &mut impl Write, warn: &mut impl Write) -> Result<()> {
    let paths = inputs::expand(inputs).context("cannot repair")?;
    let mut failed = 0usize;
    for path in &paths {
        match repair_one(path, out) {
            Ok(()) => {}
            Err(e) if paths.len() == 1 || e.chain().any(|c| c.is::<OutputError>()) => return Err(e),
            Err(e) => {
                failed += 1;
                let _ = writeln!(warn, "analyze: {}", error_line(&e));
            }
        }
    }
    out.flush().map_err(output)?;
    if failed > 0 {
        bail!(
            "{failed} of {} recordings could not be repaired (see above)",
            paths.len()
        );
    }
    Ok(())
}

/// Repairs `path` and, when it has a checkpoint, its stacks sidecar.
fn repair_one(path: &Path, out: &mut impl Write) -> Result<()> {
    // Reports name the file: escaped like everything else printed.
    let report = deeptcp_format::repair(path).with_context(|| format!("cannot repair {}", path.display()))?;
    writeln!(out, "{}", sanitized(&report.to_string())).map_err(output)?;
    let stacks = deeptcp_format::stacks_path(path);
    if deeptcp_format::checkpoint_path(&stacks).exists() {
        let report = deeptcp_format::repair(&stacks).with_context(|| format!("cannot repair {}", stacks.display()))?;
        writeln!(out, "{}", sanitized(&report.to_string())).map_err(output)?;
    }
    Ok(())
}

/// What the renderers need to know about the set of inputs.
struct Layout {
    /// Width of the HOST column: `Some` when the inputs come from more than one host.
    host_width: Option<usize>,
    /// Wall-clock start of the earliest recording: origin of relative times.
    origin_ns: i64,
    /// Address columns wide enough for any endpoint (`-w`, or an endpoint
    /// in the recordings that the seed's width would not fit).
    wide: bool,
}

impl Layout {
    fn of(sources: &[Source]) -> Layout {
        let hosts: HashSet<&str> = sources.iter().map(|s| &*s.host).collect();
        let host_width = (hosts.len() > 1).then(|| {
            // As printed: with control characters escaped.
            let longest = hosts.iter().map(|h| sanitized(h).chars().count()).max().unwrap_or(0);
            longest.max("HOST".len()) + 2
        });
        let origin_ns = sources.iter().map(|s| s.meta.clock.realtime_ns).min().unwrap_or(0);
        Layout {
            host_width,
            origin_ns,
            wide: false,
        }
    }
}

/// The `mono_ns` window of the time filters in each source. A time of day
/// is on the date the earliest recording started (the origin of `-t`), so
/// that it is the same instant in every recording, rotated segments included.
fn windows(filter: &Filter, sources: &[Source]) -> Vec<MonoWindow> {
    let origin_ns = sources.iter().map(|s| s.meta.clock.realtime_ns).min().unwrap_or(0);
    let filter = filter.with_days_of(origin_ns);
    sources.iter().map(|s| filter.mono_window(&s.meta.clock)).collect()
}

/// The event table (`opts` given) or JSON lines.
fn events(
    config: &Config,
    sources: &[Source],
    readers: Vec<(RecordingReader, Plan)>,
    layout: &Layout,
    table: Option<TableOptions>,
    out: &mut impl Write,
    warn: &mut impl Write,
) -> Result<()> {
    let mut stacks: Vec<Option<Stacks>> = Vec::with_capacity(sources.len());
    for s in sources {
        stacks.push(match table {
            Some(o) if o.kstack => load_stacks(s, warn)?,
            _ => None,
        });
    }
    // First pass: socket owners for back-fill.
    let owners = source::scan_owners(sources)?;
    let owners = (owners.len() > 0).then(|| Arc::new(owners));
    let filter = (!config.filter.is_empty()).then(|| Arc::new(config.filter.clone()));
    let windows = windows(&config.filter, sources);
    let per_source = |s: &Source| match &filter {
        // --cgroup: the patterns are resolved in each recording's names.
        Some(f) if !f.cgroups.is_empty() => Some(Arc::new(f.with_names(&s.names))),
        f => f.clone(),
    };
    let workers = source::workers_per_file(sources.len());
    let streams: Vec<source::Stream> = readers
        .into_iter()
        .zip(sources)
        .zip(&windows)
        .map(|(((reader, plan), s), w)| {
            let prep = Prep {
                owners: owners.clone(),
                boot: s.boot,
                filter: per_source(s),
                window: config.filter.has_time_bounds().then_some(*w),
            };
            source::spawn(reader, plan, s.meta.clock, prep, workers)
        })
        .collect();

    match table {
        Some(opts) => {
            let time = match opts.time {
                TimeMode::None => TimeColumn::None,
                TimeMode::Wall => TimeColumn::Wall,
                TimeMode::Seconds => TimeColumn::Seconds {
                    origin_ns: layout.origin_ns,
                },
            };
            let view = ViewOptions {
                time,
                host_width: layout.host_width,
                netns: opts.netns,
                wide: layout.wide,
            };
            let mut r = TableRenderer::new(&mut *out, view);
            r.header().map_err(output)?;
            source::merge(streams, skipped(warn), |i, ts, ev| {
                let s = &sources[i as usize];
                r.event(ev, ts, &s.host, stacks[i as usize].as_ref()).map_err(output)
            })?;
            r.finish().map_err(output)?;
        }
        None => {
            source::merge(streams, skipped(warn), |i, ts, ev| {
                let s = &sources[i as usize];
                names::event_line(&mut *out, ev, ts, &s.host, &s.names).map_err(output)
            })?;
            out.flush().map_err(output)?;
        }
    }
    Ok(())
}

/// `--conn`: lifecycles, as a table or JSON lines.
fn conns(
    config: &Config,
    sources: &[Source],
    readers: Vec<(RecordingReader, Plan)>,
    layout: &Layout,
    opts: ConnOptions,
    out: &mut impl Write,
    warn: &mut impl Write,
) -> Result<()> {
    let mut sink = ConnSink::new(&mut *out, opts.json, layout);
    sink.header().map_err(output)?;
    let mut collector = Collector::new(opts.sort, opts.top);
    each_conn(config, sources, readers, warn, |c| {
        collector.add(c, &mut sink, sources).map_err(output)
    })?;
    collector.finish(&mut sink, sources).map_err(output)?;
    sink.finish().map_err(output)
}

/// `--stats`: connections folded into groups, printed at the end.
fn stats(
    config: &Config,
    sources: &[Source],
    readers: Vec<(RecordingReader, Plan)>,
    opts: StatsOptions,
    out: &mut impl Write,
    warn: &mut impl Write,
) -> Result<()> {
    let unknown: Arc<str> = Arc::from("unknown");
    let no_names = deeptcp_format::Names::default();
    let mut stats = Stats::new(opts.by);
    each_conn(config, sources, readers, warn, |c| {
        let (host, names) = sources
            .get(c.src as usize)
            .map_or((&unknown, &no_names), |s| (&s.host, &s.names));
        stats.add(&c, host, names);
        Ok(())
    })?;
    let groups = stats.into_sorted();
    if opts.json {
        render::stats::json(&mut *out, opts.by, &groups).map_err(output)?;
    } else {
        render::stats::table(&mut *out, opts.by, &groups).map_err(output)?;
    }
    out.flush().map_err(output)
}

/// Folds the inputs' events into connections and hands each connection
/// the filters select to `f` as it finishes (the still-open ones at the end).
fn each_conn(
    config: &Config,
    sources: &[Source],
    readers: Vec<(RecordingReader, Plan)>,
    warn: &mut impl Write,
    f: impl FnMut(Conn) -> Result<()>,
) -> Result<()> {
    each_conn_in(Tracker::new(), config, sources, readers, warn, f)
}

/// [`each_conn`] with a tracker of the caller's (e.g. one that keeps marks).
pub(crate) fn each_conn_in(
    mut tracker: Tracker,
    config: &Config,
    sources: &[Source],
    readers: Vec<(RecordingReader, Plan)>,
    warn: &mut impl Write,
    mut f: impl FnMut(Conn) -> Result<()>,
) -> Result<()> {
    let filter = &config.filter;
    let filtering = !filter.is_empty();
    let windows = windows(filter, sources);
    // --cgroup: the patterns are resolved in each recording's names.
    let filters: Vec<Filter> = sources.iter().map(|s| filter.with_names(&s.names)).collect();
    let workers = source::workers_per_file(sources.len());
    let streams: Vec<source::Stream> = readers
        .into_iter()
        .zip(sources)
        .map(|((reader, plan), s)| source::spawn(reader, plan, s.meta.clock, Prep::default(), workers))
        .collect();

    let mut done: Vec<Conn> = Vec::new();
    let mut last_ts: Vec<Option<i64>> = vec![None; sources.len()];
    let selected = |c: &Conn| !filtering || c.selected(|pid, comm| filter.matches_owner(pid, comm));

    source::merge(streams, skipped(warn), |i, ts, ev| {
        let idx = i as usize;
        last_ts[idx] = Some(last_ts[idx].map_or(ts, |t: i64| t.max(ts)));
        let m = if filtering {
            match_event(&filters[idx], &windows[idx], ev)
        } else {
            Match::Yes
        };
        tracker.push(i, sources[idx].boot, ts, ev, m, &mut done);
        for c in done.drain(..) {
            if selected(&c) {
                f(c)?;
            }
        }
        Ok(())
    })?;
    tracker.finish(|src| last_ts[src as usize].unwrap_or(i64::MIN), &mut done);
    for c in done.drain(..) {
        if selected(&c) {
            f(c)?;
        }
    }
    Ok(())
}

/// How one event relates to the filters (`--conn`: a connection is listed
/// when one of its events matches).
fn match_event(filter: &Filter, window: &MonoWindow, ev: &Event) -> Match {
    if !window.contains(ev.mono_ns) || !filter.matches_socket(ev) {
        Match::No
    } else if filter.matches_owner(ev.pid, &ev.comm) {
        Match::Yes
    } else if ev.pid == 0 && ev.cookie != 0 {
        // The row has no owner of its own: the connection's owner decides.
        Match::IfOwnerMatches
    } else {
        Match::No
    }
}

/// Where finished connections go: the table or JSON lines.
enum ConnSink<'w, W: Write> {
    Table(ConnTable<&'w mut W>),
    Json(&'w mut W),
}

impl<'w, W: Write> ConnSink<'w, W> {
    fn new(out: &'w mut W, json: bool, layout: &Layout) -> Self {
        if json {
            ConnSink::Json(out)
        } else {
            ConnSink::Table(ConnTable::new(out, layout.origin_ns, layout.host_width, layout.wide))
        }
    }

    fn header(&mut self) -> io::Result<()> {
        match self {
            ConnSink::Table(t) => t.header(),
            ConnSink::Json(_) => Ok(()),
        }
    }

    fn write(&mut self, c: &Conn, sources: &[Source]) -> io::Result<()> {
        let host = sources.get(c.src as usize).map_or("unknown", |s| &*s.host);
        match self {
            ConnSink::Table(t) => t.conn(c, host),
            ConnSink::Json(out) => match sources.get(c.src as usize) {
                Some(s) => names::conn_line(out, c, host, &s.names),
                None => json::line(out, &ConnJson::new(c, host)),
            },
        }
    }

    fn finish(self) -> io::Result<()> {
        match self {
            ConnSink::Table(t) => t.finish().map(|_| ()),
            ConnSink::Json(out) => out.flush(),
        }
    }
}

/// A connection in `--sort` order: `Less` comes first in the output.
fn order(key: SortKey, a: &Conn, b: &Conn) -> Ordering {
    let primary = match key {
        SortKey::Duration => b.duration_ns.cmp(&a.duration_ns),
        SortKey::Retrans => b.retransmits.cmp(&a.retransmits),
        SortKey::Start => Ordering::Equal,
    };
    primary.then(a.first_ts.cmp(&b.first_ts)).then(a.seq.cmp(&b.seq))
}

/// A connection ranked by a sort key, for the top-N heap (the greatest is
/// the one that would be printed last).
struct Ranked(SortKey, Conn);

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        order(self.0, &self.1, &other.1)
    }
}

/// Streams connections as they finish, or holds them for `--sort`
/// (all of them, or only the best N in a bounded heap for `--top N`).
enum Collector {
    Stream,
    All(SortKey, Vec<Conn>),
    Top(usize, BinaryHeap<Ranked>, SortKey),
}

impl Collector {
    fn new(sort: Option<SortKey>, top: Option<usize>) -> Collector {
        match (sort, top) {
            (Some(k), Some(n)) => Collector::Top(n, BinaryHeap::new(), k),
            (Some(k), None) => Collector::All(k, Vec::new()),
            (None, _) => Collector::Stream,
        }
    }

    fn add<W: Write>(&mut self, c: Conn, sink: &mut ConnSink<'_, W>, sources: &[Source]) -> io::Result<()> {
        match self {
            Collector::Stream => sink.write(&c, sources),
            Collector::All(_, v) => {
                v.push(c);
                Ok(())
            }
            Collector::Top(n, heap, key) => {
                heap.push(Ranked(*key, c));
                if heap.len() > *n {
                    heap.pop();
                }
                Ok(())
            }
        }
    }

    fn finish<W: Write>(self, sink: &mut ConnSink<'_, W>, sources: &[Source]) -> io::Result<()> {
        match self {
            Collector::Stream => Ok(()),
            Collector::All(key, mut v) => {
                v.sort_by(|a, b| order(key, a, b));
                v.iter().try_for_each(|c| sink.write(c, sources))
            }
            Collector::Top(_, heap, _) => heap
                .into_sorted_vec()
                .iter()
                .try_for_each(|r| sink.write(&r.1, sources)),
        }
    }
}

/// `--info`: one report per recording (headed by its path when there are several).
fn info(paths: &[PathBuf], out: &mut impl Write, warn: &mut impl Write) -> Result<()> {
    for (i, path) in paths.iter().enumerate() {
        let reader = source::open(path, ReadOptions::default())?;
        if reader.recovered() {
            warn_recovered(warn, path);
        }
        let meta = reader.meta().clone();
        let names = reader.names().clone();
        let finished = reader.finished();
        let mut summary = Summary::default();
        for ev in reader.events() {
            summary.add(&ev.context(READING)?);
        }
        if paths.len() > 1 {
            if i > 0 {
                writeln!(out).map_err(output)?;
            }
            let name = path.display().to_string();
            writeln!(out, "file:             {}", sanitized(&name)).map_err(output)?;
        }
        info::render(out, &meta, finished, &summary).map_err(output)?;
        names::info_line(out, &names).map_err(output)?;
    }
    out.flush().map_err(output)
}

/// Stacks for `-K`: `None` when the recording has none to show.
///
/// The sidecar is read whole (it holds each distinct stack once). When it
/// cannot be read, that is an error only if some event refers to a stack,
/// which costs a second pass over the recording, in that case only.
fn load_stacks(src: &Source, warn: &mut impl Write) -> Result<Option<Stacks>> {
    let path = src.path.as_path();
    if !src.meta.kstack {
        warning(
            warn,
            &format!(
                "{} was recorded without -K: it has no kernel stacks to show",
                path.display()
            ),
        );
        return Ok(None);
    }
    let sidecar = stacks_path(path);
    let err = match read_stacks(&sidecar) {
        Ok(stacks) => return Ok(Some(stacks)),
        Err(e) => e,
    };
    if !any_event_has_stack(src)? {
        return Ok(None);
    }
    if !sidecar.exists() {
        bail!(
            "-K: the kernel stack sidecar {} is missing (copy it along with the recording, or drop -K)",
            sidecar.display()
        );
    }
    // Format errors name the file themselves.
    Err(anyhow::Error::new(err).context("-K: cannot read the kernel stack sidecar"))
}

/// Read as the main pass reads it (`--skip-corrupt` included, whose left-out
/// row groups that pass reports).
fn any_event_has_stack(src: &Source) -> Result<bool> {
    let reader = source::open(&src.path, src.read)?;
    for ev in reader.events() {
        let ev = match ev {
            Err(deeptcp_format::FormatError::SkippedRowGroup { .. }) => continue,
            ev => ev.context(READING)?,
        };
        if ev.stack_id.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// What to do with a warning from the event streams: print it.
fn skipped(warn: &mut impl Write) -> impl FnMut(deeptcp_format::FormatError) + '_ {
    |e| warning(warn, &error_line(&anyhow::Error::new(e)))
}

/// One warning line on stderr (control characters escaped: warnings name
/// files and quote them). A failure to write it must not stop the run.
pub(crate) fn warning(warn: &mut impl Write, msg: &str) {
    let _ = writeln!(warn, "analyze: warning: {}", sanitized(msg));
}

/// The one-line message for `err`: its context chain joined by `": "`, as
/// anyhow's `{:#}` does, except that a cause whose text the line already
/// holds is left out (libraries often repeat their source in their own
/// message, which would print it twice).
pub fn error_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    // A message that spans lines would break "one line on stderr"; one
    // that echoes a file name or a value from the file may hold control
    // characters, which must not reach the terminal.
    sanitized(&line.replace('\n', " ")).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Repeats(io::Error);
    impl fmt::Display for Repeats {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "x.parquet: not a Parquet file ({})", self.0)
        }
    }
    impl std::error::Error for Repeats {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn error_line_is_the_chain_without_repeats() {
        let e = anyhow::Error::new(Repeats(io::Error::other("bad magic"))).context("cannot read the recording");
        assert_eq!(
            error_line(&e),
            "cannot read the recording: x.parquet: not a Parquet file (bad magic)"
        );
        let e = anyhow::Error::new(io::Error::other("two\nlines")).context("ctx");
        assert_eq!(error_line(&e), "ctx: two lines");
        // Text from a file (names, values) cannot move the cursor.
        let e = anyhow::anyhow!("x\x1b[2J.parquet: bad value \"\r\u{9b}\"").context("cannot read");
        assert_eq!(
            error_line(&e),
            r#"cannot read: x\u{1b}[2J.parquet: bad value "\r\u{9b}""#
        );
        assert_eq!(
            format!("{:#}", anyhow::anyhow!("plain")),
            error_line(&anyhow::anyhow!("plain"))
        );
    }

    #[test]
    fn broken_pipe_only_on_output() {
        let pipe = || io::Error::from(io::ErrorKind::BrokenPipe);
        assert!(OutputError::is_broken_pipe(&output(pipe())));
        assert!(OutputError::is_broken_pipe(&output(pipe()).context("more")));
        assert!(!OutputError::is_broken_pipe(&output(io::Error::other("disk full"))));
        // A broken pipe while reading input is a real error.
        assert!(!OutputError::is_broken_pipe(&anyhow::Error::new(pipe())));
    }
}
