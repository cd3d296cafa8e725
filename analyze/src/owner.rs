//! Who owns a socket: ranking the pid/comm of its rows, and back-filling
//! rows without an owner.
//!
//! In schema v2 every row says how its pid was attributed; rows from
//! softirq context without a remembered owner have pid 0 (`unknown`). Such a
//! row whose socket cookie is known gets the owner of another row of the same
//! socket ([`OwnerMap`], built in a first pass over the recordings), marked
//! [`Attribution::Backfill`]. The best owner of a socket is the row with the
//! lowest [`rank`], the earliest one among equals.
//!
//! Schema v1 rows carry the pid of whatever task was current and no
//! attribution; for them the rank prefers transitions only a process makes
//! itself (connect, listen, close) and then socket destruction, which is
//! usually the owner's last close.

use std::collections::HashMap;
use std::sync::Arc;

use deeptcp_format::{Attribution, Event, EventKind, TcpState};

/// A `HashMap` with rustc's Fx hash: connection keys are hashed once per
/// event, and SipHash would cost more than the rest of the per-event work.
pub type FastMap<K, V> = rustc_hash::FxHashMap<K, V>;

/// A socket's owner as one row tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    pub tid: u32,
    pub comm: Arc<str>,
    pub attribution: Attribution,
    /// [`rank`] of the row it came from: lower is more trustworthy.
    pub rank: u8,
    /// Wall-clock ns of that row (ties: earliest wins).
    pub ts: i64,
}

impl Owner {
    /// The owner `ev` states, `None` for pid 0.
    pub fn of(ev: &Event, ts: i64) -> Option<Owner> {
        Some(Owner {
            pid: ev.pid,
            tid: ev.tid,
            comm: Arc::clone(&ev.comm),
            attribution: ev.attribution,
            rank: rank(ev)?,
            ts,
        })
    }
}

/// How trustworthy `ev`'s pid is as the socket's owner; `None` for pid 0.
pub fn rank(ev: &Event) -> Option<u8> {
    if ev.pid == 0 {
        return None;
    }
    Some(match ev.attribution {
        Attribution::Task => 0,
        Attribution::Owner => 1,
        Attribution::Listener => 2,
        Attribution::Snapshot => 3,
        Attribution::Backfill => 7,
        Attribution::Unknown if user_initiated(ev) => 4,
        Attribution::Unknown if ev.kind == EventKind::DestroySock => 5,
        Attribution::Unknown => 6,
    })
}

/// Transitions that only happen in a system call of the owner.
fn user_initiated(ev: &Event) -> bool {
    use TcpState::*;
    match ev.kind {
        EventKind::Connect => true,
        EventKind::StateChange => matches!(
            (ev.oldstate, ev.newstate),
            (Some(Close), Some(SynSent))
                | (Some(Close), Some(Listen))
                | (Some(Listen), Some(Close))
                | (Some(Established), Some(FinWait1))
                | (Some(CloseWait), Some(LastAck))
        ),
        _ => false,
    }
}

/// One remembered owner: what [`Owner`] holds, with the comm interned, so
/// that an entry is 32 bytes (the map holds one per socket).
#[derive(Debug, Clone, Copy)]
struct Entry {
    pid: u32,
    tid: u32,
    comm: u32,
    rank: u8,
    ts: i64,
    /// The row's place in the input: among equal `(rank, ts)` the first
    /// row wins, whatever order rows are observed and maps merged in.
    order: u64,
}

impl Entry {
    fn key(&self) -> (u8, i64, u64) {
        (self.rank, self.ts, self.order)
    }
}

/// Best owner per (boot group, socket cookie).
#[derive(Debug, Default)]
pub struct OwnerMap {
    map: FastMap<(u32, u64), Entry>,
    comms: Vec<Arc<str>>,
    comm_ids: HashMap<Arc<str>, u32>,
}

impl OwnerMap {
    fn intern(&mut self, comm: &Arc<str>) -> u32 {
        if let Some(&id) = self.comm_ids.get(comm) {
            return id;
        }
        let id = self.comms.len() as u32;
        self.comms.push(Arc::clone(comm));
        self.comm_ids.insert(Arc::clone(comm), id);
        id
    }

    /// Takes `ev`'s owner into account (rows without a cookie or pid are
    /// ignored); `order` is the row's place in the input (ties: lowest wins).
    pub fn observe(&mut self, boot: u32, ts: i64, order: u64, ev: &Event) {
        if ev.cookie == 0 {
            return;
        }
        let Some(r) = rank(ev) else { return };
        let key = (boot, ev.cookie);
        if self.map.get(&key).is_some_and(|cur| cur.key() <= (r, ts, order)) {
            return;
        }
        let comm = self.intern(&ev.comm);
        self.map.insert(
            key,
            Entry {
                pid: ev.pid,
                tid: ev.tid,
                comm,
                rank: r,
                ts,
                order,
            },
        );
    }

    /// Merges another map (e.g. from another file's thread) into this one.
    pub fn merge(&mut self, other: OwnerMap) {
        for (k, mut e) in other.map {
            if self.map.get(&k).is_some_and(|cur| cur.key() <= e.key()) {
                continue;
            }
            e.comm = self.intern(&other.comms[e.comm as usize]);
            self.map.insert(k, e);
        }
    }

    /// Keeps only the sockets of the boot groups `keep` accepts.
    pub fn retain_boots(&mut self, keep: impl Fn(u32) -> bool) {
        self.map.retain(|&(boot, _), _| keep(boot));
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    #[cfg(test)]
    pub fn get(&self, boot: u32, cookie: u64) -> Option<Owner> {
        self.map.get(&(boot, cookie)).map(|e| Owner {
            pid: e.pid,
            tid: e.tid,
            comm: Arc::clone(&self.comms[e.comm as usize]),
            attribution: Attribution::Backfill,
            rank: e.rank,
            ts: e.ts,
        })
    }

    /// Fills in pid/tid/comm of a pid-0 row with a known cookie; returns
    /// whether it did.
    pub fn backfill(&self, boot: u32, ev: &mut Event) -> bool {
        if ev.pid != 0 || ev.cookie == 0 {
            return false;
        }
        match self.map.get(&(boot, ev.cookie)) {
            Some(e) => {
                ev.pid = e.pid;
                ev.tid = e.tid;
                ev.comm = Arc::clone(&self.comms[e.comm as usize]);
                ev.attribution = Attribution::Backfill;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use deeptcp_format::testing;

    pub(crate) fn ev(kind: EventKind, pid: u32, attribution: Attribution, cookie: u64) -> Event {
        Event {
            pid,
            tid: pid + 1,
            comm: Arc::from(format!("c{pid}")),
            saddr: "10.0.0.1".parse().unwrap(),
            daddr: "10.0.0.2".parse().unwrap(),
            sport: 1000,
            dport: 80,
            newstate: Some(TcpState::Established),
            netns: 1,
            cookie,
            attribution,
            ..testing::event(kind)
        }
    }

    #[test]
    fn ranks() {
        use Attribution::*;
        assert_eq!(rank(&ev(EventKind::Retransmit, 0, Task, 1)), None);
        assert_eq!(rank(&ev(EventKind::Retransmit, 5, Task, 1)), Some(0));
        assert_eq!(rank(&ev(EventKind::Retransmit, 5, Listener, 1)), Some(2));
        let mut connect = ev(EventKind::StateChange, 5, Unknown, 0);
        connect.oldstate = Some(TcpState::Close);
        connect.newstate = Some(TcpState::SynSent);
        assert_eq!(rank(&connect), Some(4));
        let mut softirq = connect.clone();
        softirq.oldstate = Some(TcpState::SynSent);
        softirq.newstate = Some(TcpState::Established);
        assert_eq!(rank(&softirq), Some(6));
        assert_eq!(rank(&ev(EventKind::DestroySock, 5, Unknown, 0)), Some(5));
    }

    #[test]
    fn best_owner_wins_and_backfills() {
        use Attribution::*;
        let mut m = OwnerMap::default();
        m.observe(0, 10, 10, &ev(EventKind::Retransmit, 0, Unknown, 7)); // no owner
        m.observe(0, 20, 20, &ev(EventKind::Retransmit, 300, Owner, 7));
        m.observe(0, 30, 30, &ev(EventKind::StateChange, 100, Task, 7));
        m.observe(0, 40, 40, &ev(EventKind::StateChange, 200, Task, 7)); // same rank, later
        m.observe(0, 50, 50, &ev(EventKind::StateChange, 999, Task, 0)); // no cookie
        m.observe(1, 60, 60, &ev(EventKind::StateChange, 400, Task, 7)); // other boot
        assert_eq!(m.len(), 2);
        assert_eq!(m.get(0, 7).unwrap().pid, 100);
        assert_eq!(m.get(1, 7).unwrap().pid, 400);

        let mut row = ev(EventKind::Retransmit, 0, Unknown, 7);
        assert!(m.backfill(0, &mut row));
        assert_eq!(
            (row.pid, row.tid, &*row.comm, row.attribution),
            (100, 101, "c100", Backfill)
        );
        // Rows with an owner, without a cookie, or of an unknown socket stay as they are.
        let mut owned = ev(EventKind::Retransmit, 300, Owner, 7);
        assert!(!m.backfill(0, &mut owned));
        assert_eq!(owned.pid, 300);
        let mut anon = ev(EventKind::Retransmit, 0, Unknown, 0);
        assert!(!m.backfill(0, &mut anon));
        let mut other = ev(EventKind::Retransmit, 0, Unknown, 8);
        assert!(!m.backfill(0, &mut other));
        assert_eq!(other.attribution, Unknown);

        // Merging keeps the better of two.
        let mut a = OwnerMap::default();
        a.observe(0, 5, 5, &ev(EventKind::Retransmit, 555, Owner, 7));
        a.observe(0, 5, 5, &ev(EventKind::Retransmit, 556, Owner, 9));
        m.merge(a);
        assert_eq!(m.get(0, 7).unwrap().pid, 100);
        assert_eq!(m.get(0, 9).unwrap().pid, 556);
        let mut b = OwnerMap::default();
        b.observe(0, 1, 1, &ev(EventKind::Retransmit, 777, Task, 7));
        m.merge(b);
        assert_eq!(m.get(0, 7).unwrap().pid, 777, "same rank, earlier");
    }
}
