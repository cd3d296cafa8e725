//! Putting one recording's rows in time order, exactly, in O(n log n) time
//! and bounded memory, whatever order they are stored in.
//!
//! The recorder stores rows nearly but not strictly in time order (events
//! from different CPUs race for the ring buffer); files rewritten by other
//! tools (DuckDB `COPY`, Spark) or merged from several hosts come in any
//! order: row groups reversed or interleaved, a file appended to itself,
//! rows descending. A sliding window over the rows in file order cannot
//! sort those without holding, and shifting, a large part of the file.
//!
//! So the row group is the unit, and a cheap first look at each one (its
//! `mono_ns` column alone, [`GroupScan`]) tells
//!
//! - the time range of its rows: row groups are read in the order of their
//!   first event and merged k ways ([`crate::source`]), each one only once
//!   the merge has reached its first event, so that row groups that follow
//!   each other in time (in whatever order they are stored) are read one
//!   after the other, and only those that overlap in time are open at once;
//! - its *lag*, how far any row lies before the latest row stored before it
//!   in the row group: a [`Reorder`] window of exactly that much sorts the
//!   row group while streaming it. A row group in order has lag 0 and holds
//!   nothing back; the recorder's (CPU races) hold a few hundred events; a
//!   descending one is held whole and sorted at its end;
//! - how many events that window holds at most ([`GroupPlan::held`]).
//!
//! [`plan`] adds up what the row groups open at the same time must hold and
//! refuses, before anything is printed, a file for which that exceeds
//! [`Limits`]: one so far out of order that sorting it would need to hold
//! a large part of it (millions of rows shuffled at random, say). The
//! default bound is [`REORDER_MAX_EVENTS`] events (about 250 MB) and
//! [`MAX_OPEN_GROUPS`] row groups open at once per file; the message says
//! how to sort such a file first. Files in order, with row groups reversed
//! or interleaved, appended to themselves a few times, or descending in row
//! groups of up to a million rows are within it. Refusing beats the
//! alternatives: spilling to disk would write a copy of the file without
//! being asked, and a window that gives up past a bound (as before) prints
//! events out of order without saying so.
//!
//! Memory, all told, for one file: the windows ([`GroupPlan::cost`] each,
//! at most 1.5 × [`REORDER_MAX_EVENTS`] plus a chunk per open row group),
//! the read-ahead in the row groups' channels (`AHEAD_EVENTS` shared, at
//! least one part each) and each open row group's decoder state.
//!
//! Ties: rows with the same `ts` keep file order (the merge breaks ties by
//! row group index, [`Reorder`] sorts stably), as before, and across files
//! command-line order ([`crate::source::merge`]).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::Path;

use anyhow::{bail, Result};
use deeptcp_format::{ClockAnchor, Event};

/// Events the reorder windows of one file may have to hold at once (an
/// event takes some 250 bytes in memory: about 250 MB; their buffers hold up
/// to half as much again, [`GroupPlan::cost`], while they wait to be sorted).
pub const REORDER_MAX_EVENTS: usize = 1 << 20;
/// Row groups of one file open at once (each has a thread and its column
/// chunks in memory while open).
pub const MAX_OPEN_GROUPS: usize = 64;
/// Events per chunk handed on (at least, when there are that many).
pub const CHUNK: usize = 1024;

/// How far out of order a file may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most events the windows of the row groups open at once must hold.
    pub max_events: usize,
    /// Most row groups open at once.
    pub max_groups: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_events: REORDER_MAX_EVENTS,
            max_groups: MAX_OPEN_GROUPS,
        }
    }
}

/// What the first look at one row group found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupPlan {
    /// Row group index in the file.
    pub rg: usize,
    /// Rows in it.
    pub rows: u64,
    /// Wall-clock `ts` of its earliest and latest row.
    pub first: i64,
    pub last: i64,
    /// The [`Reorder`] window that sorts it exactly (ns; 0: in order).
    pub lag: i64,
    /// Most events that window holds at once.
    pub held: usize,
}

impl GroupPlan {
    /// Events a window of this row group may hold in memory: what it must
    /// hold, plus what [`Reorder`] lets accumulate between sorts.
    pub fn cost(&self) -> usize {
        self.held.saturating_add(self.held / 2).saturating_add(CHUNK)
    }
}

/// The order in which a file's row groups are read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// By first event, then row group index (the order they are opened in).
    pub groups: Vec<GroupPlan>,
    /// Most row groups open at once.
    pub max_open: usize,
    /// Most events their windows must hold at once (an upper bound; their
    /// buffers hold up to [`GroupPlan::cost`] each).
    pub max_held: usize,
}

/// Orders `groups` (each a row group's [`GroupScan`] result, `None` when its
/// `mono_ns` column could not be read) and checks that sorting them stays
/// within `limits`. `path` is for the message.
///
/// A row group whose first look failed is placed after the row groups
/// stored before it (reading it will fail there, or skip it) and counted
/// as held whole.
pub fn plan(path: &Path, groups: Vec<(usize, u64, Option<GroupScan>)>, limits: Limits) -> Result<Plan> {
    let mut out = Vec::with_capacity(groups.len());
    let mut latest = i64::MIN;
    for (rg, rows, scan) in groups {
        if rows == 0 {
            continue;
        }
        let g = match scan.and_then(|s| s.plan(rg, rows)) {
            Some(g) => g,
            None => GroupPlan {
                rg,
                rows,
                first: latest,
                last: latest,
                lag: i64::MAX,
                held: usize::try_from(rows).unwrap_or(usize::MAX),
            },
        };
        latest = latest.max(g.last);
        out.push(g);
    }
    out.sort_by_key(|g| (g.first, g.rg));
    // A row group is open from its first event to its last: sweep those
    // intervals (opening before closing at equal times).
    let mut edges: Vec<(i64, bool, usize)> = Vec::with_capacity(2 * out.len());
    for g in &out {
        edges.push((g.first, false, g.held));
        edges.push((g.last, true, g.held));
    }
    edges.sort_unstable_by_key(|&(t, closes, _)| (t, closes));
    let (mut open, mut held, mut max_open, mut max_held) = (0usize, 0usize, 0usize, 0usize);
    for (_, closes, n) in edges {
        if closes {
            open = open.saturating_sub(1);
            held = held.saturating_sub(n);
        } else {
            open += 1;
            held = held.saturating_add(n);
            max_open = max_open.max(open);
            max_held = max_held.max(held);
        }
    }
    if max_held > limits.max_events || max_open > limits.max_groups {
        bail!(
            "{} is too far out of time order to sort in bounded memory: up to {max_open} of its row groups \
             overlap in time and would hold up to {max_held} events at once (the limit is {} events, {} row \
             groups); sort its rows by mono_ns first (the README shows how, under analyze: \"Order\")",
            path.display(),
            limits.max_events,
            limits.max_groups,
        );
    }
    Ok(Plan {
        groups: out,
        max_open,
        max_held,
    })
}

/// The first look at one row group, fed its `mono_ns` values in row order
/// twice: once to find its range and lag, once more (only when the lag is
/// not 0) to count what a window of that lag holds.
#[derive(Debug, Clone)]
pub struct GroupScan {
    clock: ClockAnchor,
    /// Rows seen in the first pass.
    seen: u64,
    first: i64,
    last: i64,
    /// Latest `ts` so far, in row order.
    max: i64,
    lag: i64,
    /// Second pass: the `ts` held, the latest so far, the most held.
    window: BinaryHeap<Reverse<i64>>,
    max2: i64,
    held: usize,
    /// Past this, counting is pointless (the file is refused anyway).
    cap: usize,
}

impl GroupScan {
    /// `cap`: stop counting the window past this many events.
    pub fn new(clock: ClockAnchor, cap: usize) -> Self {
        GroupScan {
            clock,
            seen: 0,
            first: i64::MAX,
            last: i64::MIN,
            max: i64::MIN,
            lag: 0,
            window: BinaryHeap::new(),
            max2: i64::MIN,
            held: 0,
            cap,
        }
    }

    /// First pass.
    pub fn range(&mut self, mono: &[i64]) {
        for &m in mono {
            let ts = self.clock.wall_ns(m);
            self.seen += 1;
            self.first = self.first.min(ts);
            self.last = self.last.max(ts);
            self.lag = self.lag.max(self.max.saturating_sub(ts));
            self.max = self.max.max(ts);
        }
    }

    /// Whether [`window`](Self::window) must be fed the values again.
    pub fn needs_window(&self) -> bool {
        self.lag > 0
    }

    /// Second pass: the events a window of the lag holds, as [`Reorder`]
    /// holds them (sealed once the latest `ts` is `lag` past them).
    pub fn window(&mut self, mono: &[i64]) {
        for &m in mono {
            if self.held > self.cap {
                return;
            }
            let ts = self.clock.wall_ns(m);
            self.max2 = self.max2.max(ts);
            self.window.push(Reverse(ts));
            let horizon = self.max2.saturating_sub(self.lag);
            while self.window.peek().is_some_and(|t| t.0 <= horizon) {
                self.window.pop();
            }
            self.held = self.held.max(self.window.len());
        }
    }

    /// Frees what the second pass needed (kept until [`plan`] runs: one
    /// result per row group).
    pub fn finish(mut self) -> Self {
        self.window = BinaryHeap::new();
        self
    }

    /// The plan for row group `rg` of `rows` rows; `None` when no row was seen
    /// although there are rows (they cannot be decoded either).
    fn plan(self, rg: usize, rows: u64) -> Option<GroupPlan> {
        if self.seen == 0 || self.seen != rows {
            return None;
        }
        Some(GroupPlan {
            rg,
            rows,
            first: self.first,
            last: self.last,
            lag: self.lag,
            held: if self.lag > 0 { self.held } else { 1 },
        })
    }
}

/// Sorts one row group's events while they stream through, given its lag:
/// an event is handed on once an event `lag` later has been seen (no later
/// row can come before it), so the output is exactly the stable sort of the
/// input by `ts`.
///
/// Events are appended as they come; every so often (after at least
/// [`CHUNK`] events, and at least half as many as are held, so the cost is
/// O(log n) per event however long the window) the buffer is sorted — it
/// is a sorted run followed by what came since, which the standard library's
/// stable sort merges — and its sealed prefix handed on. What is held is
/// never more than [`GroupPlan::cost`].
pub struct Reorder {
    buf: Vec<(i64, Event)>,
    lag: i64,
    max_seen: i64,
    next_check: usize,
    /// Comparisons made by sorting and elements moved by hand-overs: the
    /// work done, for tests of the complexity.
    pub work: u64,
}

impl Reorder {
    pub fn new(lag: i64) -> Self {
        Reorder {
            buf: Vec::new(),
            lag: lag.max(0),
            max_seen: i64::MIN,
            next_check: CHUNK,
            work: 0,
        }
    }

    /// Notes a row that was read but left out (filtered): it still tells
    /// how far the rows have got.
    pub fn see(&mut self, ts: i64) {
        self.max_seen = self.max_seen.max(ts);
    }

    /// Adds an event; returns the events now sealed, in order, if any.
    pub fn push(&mut self, ts: i64, ev: Event) -> Option<Vec<(i64, Event)>> {
        self.see(ts);
        self.buf.push((ts, ev));
        if self.buf.len() < self.next_check {
            return None;
        }
        self.sort();
        let horizon = self.max_seen.saturating_sub(self.lag);
        let sealed = self.buf.partition_point(|x| x.0 <= horizon);
        let out = if sealed == 0 {
            None
        } else if sealed == self.buf.len() {
            Some(std::mem::take(&mut self.buf))
        } else {
            let rest = self.buf.split_off(sealed);
            self.work += rest.len() as u64;
            Some(std::mem::replace(&mut self.buf, rest))
        };
        self.next_check = self.buf.len() + CHUNK.max(self.buf.len() / 2);
        out
    }

    /// Everything still held, in order.
    pub fn finish(&mut self) -> Vec<(i64, Event)> {
        self.sort();
        self.next_check = CHUNK;
        std::mem::take(&mut self.buf)
    }

    /// Events held now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.buf.len()
    }

    fn sort(&mut self) {
        let work = &mut self.work;
        // Stable: equal times keep row order.
        self.buf.sort_by(|a, b| {
            *work += 1;
            a.0.cmp(&b.0)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::owner::tests::ev as mk;
    use deeptcp_format::{Attribution, EventKind};

    fn ev(ts: i64, id: u32) -> Event {
        let mut e = mk(EventKind::Retransmit, 1, Attribution::Task, 0);
        e.mono_ns = ts;
        e.pid = id;
        e
    }

    /// Runs `ts` through a [`Reorder`] of the lag a [`GroupScan`] finds;
    /// returns the output (ts, row), the most held and the work done.
    fn run(ts: &[i64]) -> (Vec<(i64, u32)>, usize, u64, GroupPlan) {
        let mut scan = GroupScan::new(ClockAnchor::default(), usize::MAX);
        scan.range(ts);
        if scan.needs_window() {
            scan.window(ts);
        }
        let Some(g) = scan.plan(0, ts.len() as u64) else {
            assert!(ts.is_empty());
            return (
                Vec::new(),
                0,
                0,
                GroupPlan {
                    rg: 0,
                    rows: 0,
                    first: 0,
                    last: 0,
                    lag: 0,
                    held: 0,
                },
            );
        };
        let mut r = Reorder::new(g.lag);
        let mut out = Vec::new();
        let mut most = 0;
        for (i, &t) in ts.iter().enumerate() {
            if let Some(c) = r.push(t, ev(t, i as u32)) {
                out.extend(c.into_iter().map(|(t, e)| (t, e.pid)));
            }
            most = most.max(r.len());
        }
        out.extend(r.finish().into_iter().map(|(t, e)| (t, e.pid)));
        (out, most, r.work, g)
    }

    fn stable_sort(ts: &[i64]) -> Vec<(i64, u32)> {
        let mut v: Vec<(i64, u32)> = ts.iter().enumerate().map(|(i, &t)| (t, i as u32)).collect();
        v.sort_by_key(|x| x.0);
        v
    }

    /// SplitMix64.
    fn rng(seed: &mut u64) -> u64 {
        *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn shapes(n: i64) -> Vec<(&'static str, Vec<i64>)> {
        let mut seed = 7;
        let ascending: Vec<i64> = (0..n).collect();
        let descending: Vec<i64> = (0..n).rev().collect();
        // The recorder's: every event up to 20 positions late.
        let mut jitter = ascending.clone();
        for i in 0..jitter.len() {
            let j = (i + (rng(&mut seed) % 20) as usize).min(jitter.len() - 1);
            jitter.swap(i, j);
        }
        let blocks_reversed: Vec<i64> = (0..n).map(|i| (n / 64 - 1 - i / 64) * 64 + i % 64).collect();
        let random: Vec<i64> = (0..n).map(|_| (rng(&mut seed) % n as u64) as i64).collect();
        let ties: Vec<i64> = (0..n).map(|i| (i * 7919) % 5).collect();
        let mut one_late = ascending.clone();
        one_late.push(0);
        vec![
            ("ascending", ascending),
            ("descending", descending),
            ("jitter", jitter),
            ("blocks reversed", blocks_reversed),
            ("random", random),
            ("ties", ties),
            ("one late", one_late),
        ]
    }

    #[test]
    fn output_is_the_stable_sort() {
        for n in [
            0,
            1,
            2,
            5,
            CHUNK as i64 - 1,
            CHUNK as i64 + 1,
            3 * CHUNK as i64 + 17,
            20_000,
        ] {
            for (name, ts) in shapes(n) {
                let (out, _, _, _) = run(&ts);
                assert!(out == stable_sort(&ts), "{name}, {n} events");
            }
        }
    }

    #[test]
    fn holds_what_the_plan_says_and_no_more() {
        for (name, ts) in shapes(50_000) {
            let (_, most, _, g) = run(&ts);
            assert!(most <= g.cost(), "{name}: held {most}, planned {}", g.cost());
            match name {
                "ascending" => assert_eq!((g.lag, g.held, most <= CHUNK), (0, 1, true)),
                // A small window: a few hundred events (swaps carry some far).
                "jitter" => assert!(g.held < 1000 && most < 2 * CHUNK, "{name}: {g:?}, {most}"),
                // All but the last (exactly `lag` behind: sealed at once).
                "descending" => assert_eq!(g.held, ts.len() - 1),
                _ => {}
            }
        }
    }

    /// The reorder buffer used to be a sorted Vec with insertions: a file in
    /// descending order cost a shift of the whole window per event. Now the
    /// work (comparisons and moves) is O(n log n) whatever the order.
    #[test]
    fn work_is_n_log_n_whatever_the_order() {
        let n = 1 << 16;
        let log2n = 16;
        for (name, ts) in shapes(n) {
            let (_, _, work, _) = run(&ts);
            let bound = 4 * n as u64 * log2n;
            assert!(work <= bound, "{name}: {work} > {bound}");
            if name == "ascending" || name == "descending" {
                // Runs are found, not sorted: linear.
                assert!(work <= 8 * n as u64, "{name}: {work}");
            }
        }
    }

    /// A row group from `first` to `last` whose window holds `held`.
    fn g(rg: usize, first: i64, last: i64, held: usize) -> (usize, u64, Option<GroupScan>) {
        let mut s = GroupScan::new(ClockAnchor::default(), usize::MAX);
        s.range(&[last, first]); // out of order, so that `held` counts
        s.held = held;
        (rg, 2, Some(s))
    }

    #[test]
    fn row_groups_are_opened_by_first_event_and_overlaps_are_bounded() {
        let p = Path::new("x.parquet");
        // Reversed: opened last first, one at a time.
        let plan1 = plan(
            p,
            vec![g(0, 20, 29, 1), g(1, 10, 19, 1), g(2, 0, 9, 1)],
            Limits::default(),
        )
        .unwrap();
        let order: Vec<usize> = plan1.groups.iter().map(|g| g.rg).collect();
        assert_eq!((order, plan1.max_open), (vec![2, 1, 0], 1));
        // Appended to itself: two at a time; equal first events by index.
        let plan2 = plan(
            p,
            vec![g(0, 0, 9, 1), g(1, 10, 19, 1), g(2, 0, 9, 1), g(3, 10, 19, 1)],
            Limits::default(),
        )
        .unwrap();
        let order: Vec<usize> = plan2.groups.iter().map(|g| g.rg).collect();
        assert_eq!((order, plan2.max_open), (vec![0, 2, 1, 3], 2));
        // Touching ranges count as overlapping (a tie may need both).
        assert_eq!(
            plan(p, vec![g(0, 0, 10, 1), g(1, 10, 20, 1)], Limits::default())
                .unwrap()
                .max_open,
            2
        );
        // Shuffled: everything overlaps; past the limits it is refused.
        let all: Vec<_> = (0..10).map(|i| g(i, 0, 100, 1000)).collect();
        let limits = Limits {
            max_events: 10 * 1000,
            max_groups: 10,
        };
        assert_eq!(plan(p, all.clone(), limits).unwrap().max_open, 10);
        let e = plan(
            p,
            all.clone(),
            Limits {
                max_events: limits.max_events - 1,
                ..limits
            },
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("x.parquet is too far out of time order"), "{msg}");
        assert!(
            msg.contains("10 of its row groups") && msg.contains("sort its rows by mono_ns"),
            "{msg}"
        );
        let e = plan(
            p,
            all,
            Limits {
                max_groups: 9,
                ..limits
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("9 row groups"), "{e}");
    }

    #[test]
    fn unreadable_and_empty_row_groups() {
        let p = Path::new("x.parquet");
        let groups = vec![g(0, 50, 60, 1), (1, 7, None), (2, 0, None), g(3, 0, 9, 1)];
        let plan = plan(p, groups, Limits::default()).unwrap();
        // The empty one is left out; the unreadable one comes after the
        // row groups stored before it, held whole.
        let order: Vec<(usize, i64, usize)> = plan.groups.iter().map(|g| (g.rg, g.first, g.held)).collect();
        assert_eq!(order, [(3, 0, 1), (0, 50, 1), (1, 60, 7)]);
        // Rows that cannot all be read (nulls) count as unreadable.
        let mut s = GroupScan::new(ClockAnchor::default(), usize::MAX);
        s.range(&[1, 2]);
        assert_eq!(s.plan(0, 3), None);
    }
}
