//! `--follow`: prints a recording while another `record` is still writing
//! it, like `tail -f`, until that recorder closes the file or Ctrl-C.
//!
//! It exists because a recording can only be replayed whole once its
//! recorder has written the footer; the format crate's [`Follower`] hands
//! out the row groups the recorder has checkpointed so far (it flushes and
//! checkpoints at least every second while events come), and then those
//! added at close. This module polls it every [`POLL`], and prints each
//! new row group's events sorted by time (the recorder writes them nearly
//! in order; across row groups they come in the order they were flushed),
//! owners back-filled from what was seen so far and filtered as in the
//! other modes. SIGINT/SIGTERM end the run cleanly (status 0) once the
//! lines printed so far are flushed; a recorder that died without closing
//! the file is an error after everything it checkpointed.

use deeptcp_cli::signals;
use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use deeptcp_format::{Event, Follower, FormatError, ReadOptions, RecordingReader, Step};

use crate::app::{output, warning};
use crate::cli::{Config, Mode, TimeMode};
use crate::names;
use crate::owner::OwnerMap;
use crate::render::table::{TableOptions as ViewOptions, TableRenderer, TimeColumn};
use crate::source;

/// How often the checkpoint sidecar is looked at: a checkpointed event is
/// printed within this much of its checkpoint.
pub const POLL: Duration = Duration::from_millis(100);

/// Where events go: the table or JSON lines.
enum Sink<'w, W: Write> {
    Table(TableRenderer<&'w mut W>),
    Json(&'w mut W),
}

/// Follows `config`'s one input (a file, not a directory or glob).
pub fn run(config: &Config, out: &mut impl Write, warn: &mut impl Write) -> Result<()> {
    let [path] = config.inputs.as_slice() else {
        bail!("--follow reads one recording");
    };
    if path.is_dir() {
        bail!("{} is a directory: --follow reads one recording", path.display());
    }
    // Ctrl-C (and `kill`) stop following instead of killing the process,
    // so that what was printed is flushed and the exit status is 0.
    signals::install()?;
    let read = ReadOptions {
        skip_corrupt: config.skip_corrupt,
    };
    let mut follower = Follower::new(path, read);
    let mut state: Option<State<'_, _>> = None;
    loop {
        if signals::stop_requested() {
            break;
        }
        let step = follower
            .poll()
            .with_context(|| format!("cannot follow {}", path.display()))?;
        match step {
            Step::New { reader, from, complete } => {
                if state.is_none() {
                    if reader.recovered() {
                        warning(
                            warn,
                            &format!("following {} while it is recorded (Ctrl-C to stop)", path.display()),
                        );
                    }
                    state = Some(State::start(config, &reader, &mut *out)?);
                }
                if let Some(s) = &mut state {
                    s.print(&reader, from, warn)?;
                }
                if complete {
                    break;
                }
            }
            Step::Waiting => std::thread::sleep(POLL),
            Step::Abandoned => bail!(
                "{} stopped being recorded without being closed (its recorder died?): everything it checkpointed \
                 was printed; `analyze --repair {}` completes it",
                path.display(),
                path.display()
            ),
        }
    }
    match state {
        Some(State {
            sink: Sink::Table(r), ..
        }) => {
            r.finish().map_err(output)?;
        }
        _ => out.flush().map_err(output)?,
    }
    Ok(())
}

/// What stays the same from one batch of row groups to the next.
struct State<'w, W: Write> {
    sink: Sink<'w, W>,
    filter: deeptcp_format::Filter,
    window: Option<deeptcp_format::MonoWindow>,
    /// Owners of the sockets seen so far (schema v2), for back-fill.
    owners: Option<OwnerMap>,
    clock: deeptcp_format::ClockAnchor,
    host: String,
    /// Buffer of one batch of row groups, sorted before printing.
    batch: Vec<(i64, Event)>,
}

impl<'w, W: Write> State<'w, W> {
    /// Prints the header; the layout is decided from the rows there are now
    /// (or `-w`).
    fn start(config: &Config, reader: &RecordingReader, out: &'w mut W) -> Result<Self> {
        let meta = reader.meta();
        let host = if meta.host.is_empty() {
            "unknown".to_owned()
        } else {
            meta.host.clone()
        };
        let sink = match config.mode {
            Mode::Table(opts) => {
                let time = match opts.time {
                    TimeMode::None => TimeColumn::None,
                    TimeMode::Wall => TimeColumn::Wall,
                    TimeMode::Seconds => TimeColumn::Seconds {
                        origin_ns: meta.clock.realtime_ns,
                    },
                };
                let view = ViewOptions {
                    time,
                    host_width: None,
                    netns: opts.netns,
                    wide: opts.wide || source::any_wide_address(std::slice::from_ref(reader)),
                };
                let mut r = TableRenderer::new(out, view);
                r.header().map_err(output)?;
                r.flush().map_err(output)?;
                Sink::Table(r)
            }
            _ => Sink::Json(out),
        };
        let filter = config.filter.with_days_of(meta.clock.realtime_ns);
        let window = filter.has_time_bounds().then(|| filter.mono_window(&meta.clock));
        Ok(State {
            sink,
            filter,
            window,
            owners: (meta.schema_version >= 2).then(OwnerMap::default),
            clock: meta.clock,
            host,
            batch: Vec::new(),
        })
    }

    /// Prints row groups `from..` of `reader`.
    fn print(&mut self, reader: &RecordingReader, from: usize, warn: &mut impl Write) -> Result<()> {
        let groups = reader.row_groups();
        if !self.filter.cgroups.is_empty() {
            // The names known by this checkpoint (they only grow).
            self.filter = self.filter.with_names(reader.names());
        }
        for rg in from..groups.len() {
            let first = groups.first_row(rg);
            for (i, item) in groups.events(rg).context(source::READING)?.enumerate() {
                let ev = match item {
                    Ok(ev) => ev,
                    Err(e @ FormatError::SkippedRowGroup { .. }) => {
                        warning(warn, &crate::app::error_line(&anyhow::Error::new(e)));
                        continue;
                    }
                    Err(e) => return Err(anyhow::Error::new(e).context(source::READING)),
                };
                let ts = self.clock.wall_ns(ev.mono_ns);
                if let Some(o) = &mut self.owners {
                    o.observe(0, ts, first + i as u64, &ev);
                }
                self.batch.push((ts, ev));
            }
        }
        self.batch.sort_by_key(|(ts, _)| *ts);
        let filtering = !self.filter.is_empty();
        for (ts, mut ev) in self.batch.drain(..) {
            if self.window.is_some_and(|w| !w.contains(ev.mono_ns)) {
                continue;
            }
            if let Some(o) = &self.owners {
                o.backfill(0, &mut ev);
            }
            if filtering && !self.filter.matches(&ev) {
                continue;
            }
            match &mut self.sink {
                Sink::Table(r) => r.event(&ev, ts, &self.host, None).map_err(output)?,
                Sink::Json(out) => names::event_line(out, &ev, ts, &self.host, reader.names()).map_err(output)?,
            }
        }
        // Each batch reaches a pipe at once (stdout is block-buffered).
        match &mut self.sink {
            Sink::Table(r) => r.flush().map_err(output)?,
            Sink::Json(out) => out.flush().map_err(output)?,
        }
        Ok(())
    }
}
