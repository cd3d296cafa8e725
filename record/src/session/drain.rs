//! The drain thread's loop: waits on the `EVENTS` ring buffer, copies each
//! record out (which frees the ring's space at once), names new kernel
//! stacks, samples the lost-event count, and hands it all to the writer
//! thread; at a stop request or `--duration`'s end it detaches the programs
//! and drains the ring once more.

use std::collections::HashSet;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aya::maps::{MapData, PerCpuArray, RingBuf, StackTraceMap};
use aya::Ebpf;
use deeptcp_cli::signals;
use deeptcp_common::WireEvent;
use deeptcp_format::LostInterval;

use super::status::{Progress, Status};
use super::writer::{Msg, Writer};
use crate::misses::Misses;
use crate::symbolize::Symbolizer;
use crate::{host, probes};

/// Records taken from the ring per batch handed to the writer (the loop
/// goes on without waiting while the ring yields full batches).
const BATCH: usize = 8192;

/// What the drain thread reads: the ring buffer, the lost-event counts,
/// and with `-K` the kernel's stacks.
pub(super) struct Drain {
    ring: RingBuf<MapData>,
    lost: PerCpuArray<MapData, u64>,
    misses: Misses,
    /// `-K`: the kernel's stack map, and the symbols to name its frames.
    stacks: Option<(StackTraceMap<MapData>, Symbolizer)>,
    /// Stack ids already handed to the writer.
    seen_stacks: HashSet<i32>,
    lost_tracker: LostTracker,
}

impl Drain {
    /// Takes the maps it reads out of `ebpf` (the programs stay attached
    /// until [`run`](Self::run) drops it). `lost_tracker` started when the
    /// programs were attached.
    pub(super) fn new(ebpf: &mut Ebpf, kstack: bool, lost_tracker: LostTracker) -> Result<Drain> {
        let ring = RingBuf::try_from(ebpf.take_map("EVENTS").context("map EVENTS missing")?)?;
        let lost = PerCpuArray::try_from(ebpf.take_map("LOST").context("map LOST missing")?)?;
        let misses = Misses::of(ebpf, &probes::programs_without_rows());
        let stack_map: Option<StackTraceMap<MapData>> = if kstack {
            Some(StackTraceMap::try_from(
                ebpf.take_map("STACKS").context("map STACKS missing")?,
            )?)
        } else {
            None
        };
        let stacks = stack_map.map(|map| {
            let symbolizer = Symbolizer::load();
            if symbolizer.is_empty() {
                say!("record: warning: /proc/kallsyms shows no addresses; stacks will read [unknown]");
            }
            (map, symbolizer)
        });
        Ok(Drain {
            ring,
            lost,
            misses,
            stacks,
            seen_stacks: HashSet::new(),
            lost_tracker,
        })
    }

    /// Whether it reads kernel stacks (`-K`).
    pub(super) fn has_stacks(&self) -> bool {
        self.stacks.is_some()
    }

    /// Drains the ring into `writer` until a stop request, `deadline` or
    /// the writer's end (after an error), then detaches the programs
    /// (drops `ebpf`) and drains what is left. The events lost in all, and
    /// the last interval in which some were.
    pub(super) fn run(
        mut self,
        ebpf: Ebpf,
        writer: &Writer,
        mut status: Status,
        progress: &Progress,
        deadline: Option<Instant>,
    ) -> (u64, Option<LostInterval>) {
        let fd = self.ring.as_raw_fd();
        let mut stopping = false;
        let mut ebpf = Some(ebpf);
        let mut writer_gone = false;
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
            while let Some(item) = self.ring.next() {
                if item.len() < std::mem::size_of::<WireEvent>() {
                    continue;
                }
                // SAFETY: the item holds at least size_of::<WireEvent>() bytes written by
                // the program as a WireEvent; read_unaligned copes with any alignment
                // and every bit pattern is a valid WireEvent (integers and byte arrays).
                let wire: WireEvent = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
                if wire.stack_id >= 0 && self.seen_stacks.insert(wire.stack_id) {
                    if let Some((map, sym)) = self.stacks.as_ref() {
                        let frames = map
                            .get(&(wire.stack_id as u32), 0)
                            .map(|st| sym.stack(st.frames().iter().map(|f| f.ip)))
                            .unwrap_or_default();
                        msgs.push(Msg::Stack(i64::from(wire.stack_id), frames));
                    }
                }
                batch.push(wire);
                if batch.len() >= BATCH {
                    break;
                }
            }
            let more = batch.len() >= BATCH;
            status.received += batch.len() as u64;
            status.maybe_print(|| lost_events(&self.lost, &self.misses), progress);
            if !batch.is_empty() {
                msgs.push(Msg::Events(batch));
            }
            if self.lost_tracker.due() {
                if let Some(i) = self
                    .lost_tracker
                    .sample(lost_events(&self.lost, &self.misses), host::monotonic_ns())
                {
                    msgs.push(Msg::Lost(i));
                }
            }
            for m in msgs {
                if !writer.send(m) {
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
        let lost = lost_events(&self.lost, &self.misses);
        let last_lost = self.lost_tracker.sample(lost, host::monotonic_ns());
        status.finish();
        (lost, last_lost)
    }
}

/// Samples the kernel's lost-event counter and turns its growth into
/// intervals for the file (`deeptcp.lost_intervals`).
pub(super) struct LostTracker {
    last_mono: i64,
    last_total: u64,
    last_sample: Instant,
}

impl LostTracker {
    const EVERY: Duration = Duration::from_secs(1);

    pub(super) fn new() -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
