//! `--stats`: answers instead of rows. Folds finished connections (from
//! [`crate::conn::Tracker`]) into per-group counters and latency
//! distributions: how many connections, which failed and how, retransmits,
//! zero-window stalls, handshake / smoothed-RTT / duration percentiles.
//!
//! **Memory.** Streaming: a connection is folded in when it finishes and
//! then dropped. Each group holds counters and three [`Histogram`]s, each
//! at most [`Histogram::MAX_BUCKETS`] buckets however many values it gets,
//! so memory grows with the number of groups (distinct `--by` values),
//! never with the number of connections.
//!
//! **Percentiles** are nearest-rank (the smallest value with at least p % of
//! the values at or below it) over log-linear buckets: values below 128 are
//! exact, larger ones share a bucket with values that have the same 7
//! significant bits (buckets under 0.8 % wide). A percentile is reported as
//! the mean of its bucket's values (rounded down): exact when the bucket
//! holds one distinct value, as in small groups, and within the bucket's
//! 0.8 % otherwise; a rank of 1 is the exact minimum, the last rank the
//! exact maximum. `sql/` computes the same buckets, so DuckDB gives
//! the same figures.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use deeptcp_format::Names;

use crate::cli::StatsBy;
use crate::conn::{CloseReason, Conn};

/// Values below this are their own bucket.
const LINEAR: u64 = 128;
/// Significant bits kept above [`LINEAR`].
const SUB_BITS: u32 = 7;

/// The bucket of `v`: `v` itself below 128, else (exponent, 7 top bits).
pub fn bucket(v: u64) -> u16 {
    if v < LINEAR {
        return v as u16;
    }
    let e = 63 - v.leading_zeros(); // >= 7
    let sub = (v >> (e - SUB_BITS)) & (LINEAR - 1);
    ((e - SUB_BITS + 1) as u16) * (LINEAR as u16) + sub as u16
}

/// The smallest and largest value of bucket `b`.
#[cfg(test)]
fn bucket_range(b: u16) -> (u64, u64) {
    let b = u64::from(b);
    if b < LINEAR {
        return (b, b);
    }
    let e = b / LINEAR + u64::from(SUB_BITS) - 1;
    let sub = b % LINEAR;
    let width = 1u64 << (e - u64::from(SUB_BITS));
    let lo = (1u64 << e) | (sub * width);
    (lo, lo + (width - 1))
}

/// A streaming distribution of non-negative integers (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// Bucket → (values, their sum).
    buckets: BTreeMap<u16, (u64, u128)>,
    count: u64,
    min: u64,
    max: u64,
}

/// Percentiles of a [`Histogram`] (also `--stats --json`'s summaries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

impl Histogram {
    /// Buckets a histogram can hold: 128 exact, then 128 per power of two up to 2^64.
    pub const MAX_BUCKETS: usize = (64 - SUB_BITS as usize + 1) * LINEAR as usize;

    pub fn add(&mut self, v: u64) {
        let b = self.buckets.entry(bucket(v)).or_insert((0, 0));
        b.0 += 1;
        b.1 += u128::from(v);
        debug_assert!(self.buckets.len() <= Self::MAX_BUCKETS);
        if self.count == 0 {
            (self.min, self.max) = (v, v);
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.count += 1;
    }

    /// The nearest-rank `p`-th percentile (0 < p <= 100), `None` when empty.
    pub fn percentile(&self, p: u32) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = (self.count * u64::from(p)).div_ceil(100).max(1);
        // The extremes are known exactly.
        if rank >= self.count {
            return Some(self.max);
        }
        if rank == 1 {
            return Some(self.min);
        }
        let mut seen = 0;
        for &(n, sum) in self.buckets.values() {
            seen += n;
            if seen >= rank {
                let mean = u64::try_from(sum / u128::from(n)).unwrap_or(u64::MAX);
                return Some(mean.clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    pub fn summary(&self) -> Option<Summary> {
        Some(Summary {
            count: self.count,
            p50: self.percentile(50)?,
            p90: self.percentile(90)?,
            p99: self.percentile(99)?,
            max: self.max,
        })
    }

    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// The value of a `--by` key for one connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupKey {
    /// No `--by`: one group.
    All,
    Addr(IpAddr),
    Port(u16),
    Text(Arc<str>),
    /// pid, cgroup id, netns inode; `None`: not known.
    Number(Option<u64>),
}

impl GroupKey {
    /// The key of `c` (of input host `host`, whose recording holds `names`)
    /// under `by`: a cgroup or network namespace by its name where the
    /// recording has one (`record` stores them), else by its number.
    pub fn of(by: Option<StatsBy>, c: &Conn, host: &Arc<str>, names: &Names) -> GroupKey {
        let known = |n: u64| GroupKey::Number((n != 0).then_some(n));
        match by {
            None => GroupKey::All,
            Some(StatsBy::Daddr) => GroupKey::Addr(c.daddr),
            Some(StatsBy::Dport) => GroupKey::Port(c.dport),
            Some(StatsBy::Sport) => GroupKey::Port(c.sport),
            Some(StatsBy::Comm) => match &c.owner {
                Some(o) => GroupKey::Text(Arc::clone(&o.comm)),
                None => GroupKey::Number(None),
            },
            Some(StatsBy::Pid) => known(c.owner.as_ref().map_or(0, |o| u64::from(o.pid))),
            Some(StatsBy::Cgroup) => match names.cgroup(c.cgroup_id) {
                Some(n) => GroupKey::Text(Arc::from(n.path.as_str())),
                None => known(c.cgroup_id),
            },
            Some(StatsBy::Netns) => match names.netns_name(c.netns) {
                Some(n) => GroupKey::Text(Arc::from(n)),
                None => known(u64::from(c.netns)),
            },
            Some(StatsBy::Host) => GroupKey::Text(Arc::clone(host)),
        }
    }
}

/// Failures by reason; a connection is counted under one at most.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Failures {
    /// `connection refused`.
    pub refused: u64,
    /// `timeout (ETIMEDOUT)`.
    pub timeout: u64,
    /// `reset by peer` or `reset sent`.
    pub reset: u64,
    /// Another error, or a handshake that ended without a recorded cause.
    pub error: u64,
}

impl Failures {
    pub fn total(&self) -> u64 {
        self.refused + self.timeout + self.reset + self.error
    }
}

/// Everything known about one group.
#[derive(Debug, Clone, Default)]
pub struct GroupStats {
    pub connections: u64,
    /// Still open when the recording ended.
    pub still_open: u64,
    pub failures: Failures,
    pub retransmits: u64,
    pub zero_window_stalls: u64,
    pub zero_window_stall_ns: i64,
    pub handshake_ns: Histogram,
    /// Last smoothed RTT of each connection that had a sample, µs.
    pub srtt_us: Histogram,
    /// Of connections that opened and closed during the recording.
    pub duration_ns: Histogram,
}

impl GroupStats {
    fn add(&mut self, c: &Conn) {
        self.connections += 1;
        match c.reason {
            CloseReason::StillOpen => self.still_open += 1,
            CloseReason::Refused => self.failures.refused += 1,
            CloseReason::Timeout => self.failures.timeout += 1,
            CloseReason::ResetByPeer | CloseReason::ResetSent => self.failures.reset += 1,
            CloseReason::Error(_) | CloseReason::ConnectFailed | CloseReason::HandshakeFailed => {
                self.failures.error += 1
            }
            CloseReason::LocalClose | CloseReason::RemoteClose | CloseReason::ListenerClosed | CloseReason::Unknown => {
            }
        }
        self.retransmits += u64::from(c.retransmits);
        self.zero_window_stalls += u64::from(c.zero_window_stalls);
        self.zero_window_stall_ns = self.zero_window_stall_ns.saturating_add(c.zero_window_stall_ns());
        if let Some(ns) = c.handshake_ns {
            self.handshake_ns.add(u64::try_from(ns).unwrap_or(0));
        }
        if let Some(us) = c.srtt_us {
            self.srtt_us.add(u64::from(us));
        }
        if !c.still_open() && !c.opened_before {
            self.duration_ns.add(u64::try_from(c.duration_ns).unwrap_or(0));
        }
    }

    /// Retransmits per connection.
    pub fn retransmits_per_conn(&self) -> f64 {
        if self.connections == 0 {
            0.0
        } else {
            self.retransmits as f64 / self.connections as f64
        }
    }
}

/// The groups of one `--stats` run.
#[derive(Debug, Default)]
pub struct Stats {
    by: Option<StatsBy>,
    groups: HashMap<GroupKey, GroupStats>,
}

impl Stats {
    pub fn new(by: Option<StatsBy>) -> Stats {
        Stats {
            by,
            groups: HashMap::new(),
        }
    }

    /// Folds in one finished connection; listeners are not connections.
    pub fn add(&mut self, c: &Conn, host: &Arc<str>, names: &Names) {
        if c.is_listener() {
            return;
        }
        self.groups
            .entry(GroupKey::of(self.by, c, host, names))
            .or_default()
            .add(c);
    }

    /// The groups, most connections first (ties by key).
    pub fn into_sorted(self) -> Vec<(GroupKey, GroupStats)> {
        let mut v: Vec<(GroupKey, GroupStats)> = self.groups.into_iter().collect();
        v.sort_by(|a, b| b.1.connections.cmp(&a.1.connections).then_with(|| a.0.cmp(&b.0)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_exact_below_128_and_cover_every_value_once() {
        for v in 0..LINEAR {
            assert_eq!(bucket_range(bucket(v)), (v, v));
        }
        // Consecutive buckets tile the line: each starts where the last ended.
        let mut next = 0u64;
        for b in 0..Histogram::MAX_BUCKETS as u16 {
            let (lo, hi) = bucket_range(b);
            assert_eq!(lo, next, "bucket {b}");
            assert!(hi >= lo);
            assert_eq!(bucket(lo), b);
            assert_eq!(bucket(hi), b);
            if hi == u64::MAX {
                assert_eq!(b as usize, Histogram::MAX_BUCKETS - 1);
                break;
            }
            next = hi + 1;
        }
        for v in [128u64, 129, 255, 256, 1_000_000, 123_456_789_012, u64::MAX] {
            let (lo, hi) = bucket_range(bucket(v));
            assert!(lo <= v && v <= hi, "{v}: {lo}..{hi}");
            assert!((hi - lo) as f64 <= lo as f64 / 127.0, "{v}: width {}", hi - lo);
        }
    }

    #[test]
    fn percentiles_are_nearest_rank_within_a_bucket() {
        let mut h = Histogram::default();
        assert_eq!(h.summary(), None);
        for v in 1..=100 {
            h.add(v);
        }
        let s = h.summary().unwrap();
        assert_eq!((s.count, s.p50, s.p90, s.p99, s.max), (100, 50, 90, 99, 100));

        // One value per bucket: exact.
        let mut h = Histogram::default();
        for v in [1_000_000u64, 2_000_000, 3_000_000, 50_000_000] {
            h.add(v);
        }
        assert_eq!(h.percentile(50), Some(2_000_000));
        // Values sharing a bucket: their mean, inside the bucket.
        let mut h = Histogram::default();
        for v in [1_000_000u64, 1_000_100, 1_000_300, 9_000_000] {
            h.add(v);
        }
        assert_eq!(h.percentile(50), Some(1_000_133));
        assert_eq!(bucket(1_000_000), bucket(1_000_300));
        assert_eq!(h.percentile(100), Some(9_000_000));
        assert_eq!(h.percentile(1), Some(1_000_000), "the first rank is the minimum");
        let mut one = Histogram::default();
        one.add(777_777);
        assert_eq!(one.summary().unwrap().p50, 777_777, "a single value is exact");
    }

    #[test]
    fn memory_is_bounded_by_buckets() {
        let mut h = Histogram::default();
        for v in (0..2_000_000u64).map(|i| i.wrapping_mul(2_654_435_761) % 10_000_000_000) {
            h.add(v);
        }
        assert!(h.buckets.len() <= Histogram::MAX_BUCKETS);
        assert!(h.buckets.len() < 3_000, "{}", h.buckets.len());
        assert_eq!(h.count(), 2_000_000);
    }
}
