//! What `record` tells the user while it runs: the line at the start, then
//! the periodic status line (rows, records, lost events, size), from the
//! counters the writer thread publishes ([`Progress`]).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::bytes;
use crate::cli::{Config, OwnerStore};

/// The line said once tracing starts: into what (`into`: the first data
/// file, none without one), how many probes, where owners are kept, how
/// many sockets the snapshot found.
pub(super) fn started(cfg: &Config, into: Option<&Path>, attached: usize, store: OwnerStore, sockets: usize) -> String {
    let into = match (into, cfg.rotate) {
        (Some(p), Some(r)) => format!(" into {}, ... ({})", p.display(), r.describe()),
        (Some(p), None) => format!(" into {}", p.display()),
        (None, _) => String::new(),
    };
    let nested = if cfg.recover_nested {
        ", nested runs recovered"
    } else {
        ""
    };
    format!(
        "record: tracing TCP events{into} ({attached} probes attached, owners in {}{nested}, {sockets} existing sockets). Ctrl-C to end.",
        store.describe(),
    )
}

/// The periodic status line on stderr: rows written (and their rate),
/// then records received from the kernel, those `--kind` filtered out,
/// those lost, and the size on disk — one line every `every` (10 s by
/// default), or an in-place line each second on a terminal. Rows and
/// records differ: a record may give two rows (an inferred kind) or none
/// (filtered). Lost events are never silent: a change in the lost count is
/// printed at the next status tick even with `--quiet`.
pub(super) struct Status {
    quiet: bool,
    tty: bool,
    every: Duration,
    last: Instant,
    /// Records taken from the ring buffer.
    pub(super) received: u64,
    rows_at_last: u64,
    lost_at_last: u64,
    printed_inline: bool,
}

impl Status {
    pub(super) fn new(quiet: bool, every: Duration) -> Self {
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

    pub(super) fn maybe_print(&mut self, lost: impl FnOnce() -> u64, progress: &Progress) {
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
    pub(super) fn finish(&mut self) {
        if self.printed_inline {
            say!();
            self.printed_inline = false;
        }
    }
}

/// Counters the writer thread publishes for the status line.
#[derive(Default)]
pub(super) struct Progress {
    /// Bytes written (closed segments + the open one).
    pub(super) bytes: AtomicU64,
    /// Rows handed to the writer (snapshot rows included).
    pub(super) rows: AtomicU64,
    /// Records received that gave no row (`--kind` left them out).
    pub(super) filtered: AtomicU64,
    /// Records received that could not be converted (dropped).
    pub(super) rejected: AtomicU64,
}
