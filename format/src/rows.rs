//! Column buffers: rows on their way into a recording, stored column by
//! column the way the writer encodes them, not as [`Event`]s.
//!
//! The recorder fills a [`RowBatch`] straight from the kernel's records: a
//! [`Row`] holds ids and raw values (the enums, a [`ProbeId`] registered
//! once per name, the comm as the kernel's 16 bytes, addresses as 16 bytes),
//! so a row costs no allocation, no shared strings and no text formatting.
//! A batch is self-contained (its comm values travel with it, probe names
//! are shared), so it can be filled on one thread and encoded on another:
//! [`crate::EventWriter::write_rows`] turns the ids into each row group's
//! dictionaries. [`RowBatch::push_event`] takes an [`Event`] through the
//! same columns, and [`RowBatch::event`] gives one back (for printing).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::columns::stores::*;
use crate::columns::{event_columns, Coded};
use crate::event::{canonical_ip, Attribution, Event, EventKind, Family, TcpInfo, TcpState};

/// An address as the writer keys it: IPv6 form, IPv4 as IPv4-mapped. The
/// file holds its canonical text (IPv4-mapped IPv6 as IPv4), as for
/// [`Event`]'s addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Addr(pub(crate) u128);

impl Addr {
    /// An IPv4 address (network byte order).
    #[inline]
    pub fn v4(octets: [u8; 4]) -> Addr {
        Addr((0xffff << 32) | u128::from(u32::from_be_bytes(octets)))
    }

    /// An IPv6 address (network byte order); IPv4-mapped ones are IPv4.
    #[inline]
    pub fn v6(octets: [u8; 16]) -> Addr {
        Addr(u128::from_be_bytes(octets))
    }

    /// The canonical address.
    pub fn ip(self) -> IpAddr {
        canonical_ip(IpAddr::V6(Ipv6Addr::from(self.0)))
    }
}

impl From<IpAddr> for Addr {
    fn from(a: IpAddr) -> Addr {
        match a {
            IpAddr::V4(v4) => Addr::v4(v4.octets()),
            IpAddr::V6(v6) => Addr::v6(v6.octets()),
        }
    }
}

impl From<Ipv4Addr> for Addr {
    fn from(a: Ipv4Addr) -> Addr {
        Addr::v4(a.octets())
    }
}

/// The owner's command name.
#[derive(Debug, Clone, Copy)]
pub enum Comm<'a> {
    /// As the kernel stores a task's comm: NUL-padded, the text ends at the
    /// first NUL (or after 16 bytes); not UTF-8 is replaced (U+FFFD).
    Raw(&'a [u8; 16]),
    Text(&'a str),
}

/// A `probe` column value: a name registered with [`RowBatch::probe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProbeId(u16);

/// One row, as [`RowBatch::push`] takes it: [`Event`]'s fields with ids
/// and raw values where `Event` holds shared strings and `IpAddr`s.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub mono_ns: i64,
    pub kind: EventKind,
    pub pid: u32,
    pub tid: u32,
    pub comm: Comm<'a>,
    pub family: Family,
    pub saddr: Addr,
    pub daddr: Addr,
    pub sport: u16,
    pub dport: u16,
    pub oldstate: Option<TcpState>,
    pub newstate: Option<TcpState>,
    pub sk_err: i32,
    pub netns: u32,
    pub stack_id: Option<i64>,
    pub probe: ProbeId,
    pub cookie: u64,
    pub cgroup_id: u64,
    pub attribution: Attribution,
    pub tcp: TcpInfo,
}

/// Code of a null state in the `oldstate`/`newstate` columns.
pub(crate) const NO_STATE: u8 = u8::MAX;

/// A nullable column: values (0 where null) and which rows hold one.
#[derive(Debug, Default, Clone)]
pub(crate) struct Opt<T> {
    pub(crate) values: Vec<T>,
    pub(crate) valid: Vec<bool>,
}

impl<T: Default + Copy> Opt<T> {
    fn get(&self, i: usize) -> Option<T> {
        self.valid.get(i).copied().unwrap_or(false).then(|| self.values[i])
    }

    fn resize(&mut self, n: usize) {
        self.values.resize(n, T::default());
        self.valid.resize(n, false);
    }
}

/// A fast hash for the comm keys (two words): they come from the kernel,
/// and a bad case costs one slow batch, nothing more.
pub(crate) type WordMap<K, V> = rustc_hash::FxHashMap<K, V>;

/// The distinct comms of one batch: the text of each, by the id the
/// batch's `comm` column holds.
#[derive(Default, Clone)]
pub(crate) struct CommDict {
    /// Comms that fit the kernel's 16 bytes, by those bytes (two words).
    short: WordMap<(u64, u64), u32>,
    /// Longer ones (or with a NUL), by text: only from [`Event`]s.
    long: HashMap<Box<str>, u32>,
    text: String,
    /// `text[ends[i - 1]..ends[i]]` is value `i`.
    ends: Vec<u32>,
}

impl CommDict {
    fn key(raw: &[u8; 16]) -> (u64, u64) {
        let (a, b) = raw.split_at(8);
        let word = |s: &[u8]| {
            let mut w = [0u8; 8];
            w.copy_from_slice(s);
            u64::from_le_bytes(w)
        };
        (word(a), word(b))
    }

    fn add(&mut self, text: &str) -> u32 {
        self.text.push_str(text);
        self.ends.push(self.text.len() as u32);
        (self.ends.len() - 1) as u32
    }

    #[inline]
    fn raw(&mut self, raw: &[u8; 16]) -> u32 {
        let key = Self::key(raw);
        if let Some(id) = self.short.get(&key) {
            return *id;
        }
        let end = raw.iter().position(|b| *b == 0).unwrap_or(16);
        let id = self.add(&String::from_utf8_lossy(&raw[..end]));
        self.short.insert(key, id);
        id
    }

    fn text_id(&mut self, text: &str) -> u32 {
        if text.len() <= 16 && !text.as_bytes().contains(&0) {
            let mut raw = [0u8; 16];
            raw[..text.len()].copy_from_slice(text.as_bytes());
            return self.raw(&raw);
        }
        if let Some(id) = self.long.get(text) {
            return *id;
        }
        let id = self.add(text);
        self.long.insert(text.into(), id);
        id
    }

    /// The text of value `id`.
    pub(crate) fn get(&self, id: u32) -> &str {
        let i = id as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.text
            .get(start..self.ends.get(i).map_or(start, |e| *e as usize))
            .unwrap_or("")
    }

    fn clear(&mut self) {
        self.short.clear();
        self.long.clear();
        self.text.clear();
        self.ends.clear();
    }
}

/// The probe names registered so far, by [`ProbeId`] (shared by every batch
/// of one producer), and the lookups of the producer's side.
#[derive(Default, Clone)]
pub(crate) struct Probes {
    pub(crate) names: Arc<Vec<Arc<str>>>,
    by_name: HashMap<Arc<str>, u16>,
    /// Names looked up by [`RowBatch::probe_of`] lately, by the address of
    /// their text: each slot holds the `Arc` itself, so the address cannot
    /// be reused by another text while it is cached.
    recent: Vec<Option<(Arc<str>, u16)>>,
}

impl Probes {
    const RECENT: usize = 16;

    fn id(&mut self, name: &Arc<str>) -> ProbeId {
        let slot = (Arc::as_ptr(name).cast::<u8>() as usize >> 4) % Self::RECENT;
        if let Some(Some((n, id))) = self.recent.get(slot) {
            if Arc::ptr_eq(n, name) {
                return ProbeId(*id);
            }
        }
        let id = match self.by_name.get(name) {
            Some(id) => *id,
            None => {
                let names = Arc::make_mut(&mut self.names);
                // Beyond u16 ids (never from the recorder, which has a few
                // dozen probes) the last id is reused: wrong names rather
                // than a failed recording.
                let id = u16::try_from(names.len()).unwrap_or(u16::MAX);
                if names.len() <= usize::from(u16::MAX) {
                    names.push(Arc::clone(name));
                }
                self.by_name.insert(Arc::clone(name), id);
                id
            }
        };
        if self.recent.is_empty() {
            self.recent = vec![None; Self::RECENT];
        }
        self.recent[slot] = Some((Arc::clone(name), id));
        ProbeId(id)
    }
}

/// How a [`RowBatch`] holds a column of each kind of [`crate::columns`],
/// and how a [`Row`]'s value goes in.
pub(crate) trait Buffer {
    /// The column's buffer: as long as the batch's capacity.
    type Buf: Default + Clone;
    /// The value a [`Row`] holds.
    type Value<'a>;
    fn resize(buf: &mut Self::Buf, n: usize);
    /// Stores `v` at row `i` without a bounds check.
    ///
    /// # Safety
    /// `i` is below the buffer's length.
    unsafe fn put(buf: &mut Self::Buf, comms: &mut CommDict, i: usize, v: Self::Value<'_>);
}

/// Stores `x` at `v[i]` without a bounds check.
///
/// # Safety
/// `i < v.len()`.
#[inline(always)]
unsafe fn store<T>(v: &mut [T], i: usize, x: T) {
    // SAFETY: the caller's contract.
    unsafe { *v.get_unchecked_mut(i) = x }
}

macro_rules! int_buffers {
    ($($store:ident),*) => {$(
        impl<T: Copy + Default> Buffer for $store<T> {
            type Buf = Vec<T>;
            type Value<'a> = T;
            fn resize(buf: &mut Vec<T>, n: usize) {
                buf.resize(n, T::default());
            }
            #[inline(always)]
            unsafe fn put(buf: &mut Vec<T>, _: &mut CommDict, i: usize, v: T) {
                // SAFETY: the caller's contract.
                unsafe { store(buf, i, v) }
            }
        }
    )*};
}
int_buffers!(Delta, Plain);

impl<T: Copy + Default> Buffer for Nullable<T> {
    type Buf = Opt<T>;
    type Value<'a> = Option<T>;
    fn resize(buf: &mut Opt<T>, n: usize) {
        buf.resize(n);
    }
    #[inline(always)]
    unsafe fn put(buf: &mut Opt<T>, _: &mut CommDict, i: usize, v: Option<T>) {
        // SAFETY: the caller's contract (both vectors are resized together).
        unsafe {
            store(&mut buf.values, i, v.unwrap_or_default());
            store(&mut buf.valid, i, v.is_some());
        }
    }
}

impl<E: Coded> Buffer for Code<E> {
    /// [`Coded::code`]s.
    type Buf = Vec<u8>;
    type Value<'a> = E;
    fn resize(buf: &mut Vec<u8>, n: usize) {
        buf.resize(n, 0);
    }
    #[inline(always)]
    unsafe fn put(buf: &mut Vec<u8>, _: &mut CommDict, i: usize, v: E) {
        // SAFETY: the caller's contract.
        unsafe { store(buf, i, v.code()) }
    }
}

impl<E: Coded> Buffer for NullableCode<E> {
    /// [`Coded::code`]s, [`NO_STATE`] for null.
    type Buf = Vec<u8>;
    type Value<'a> = Option<E>;
    fn resize(buf: &mut Vec<u8>, n: usize) {
        buf.resize(n, NO_STATE);
    }
    #[inline(always)]
    unsafe fn put(buf: &mut Vec<u8>, _: &mut CommDict, i: usize, v: Option<E>) {
        // SAFETY: the caller's contract.
        unsafe { store(buf, i, v.map_or(NO_STATE, E::code)) }
    }
}

impl Buffer for CommText {
    /// Ids into the batch's `comms`.
    type Buf = Vec<u32>;
    type Value<'a> = Comm<'a>;
    fn resize(buf: &mut Vec<u32>, n: usize) {
        buf.resize(n, 0);
    }
    #[inline(always)]
    unsafe fn put(buf: &mut Vec<u32>, comms: &mut CommDict, i: usize, v: Comm<'_>) {
        let id = match v {
            Comm::Raw(raw) => comms.raw(raw),
            Comm::Text(text) => comms.text_id(text),
        };
        // SAFETY: the caller's contract.
        unsafe { store(buf, i, id) }
    }
}

impl Buffer for IpText {
    /// The 16 bytes of [`Addr`].
    type Buf = Vec<u128>;
    type Value<'a> = Addr;
    fn resize(buf: &mut Vec<u128>, n: usize) {
        buf.resize(n, 0);
    }
    #[inline(always)]
    unsafe fn put(buf: &mut Vec<u128>, _: &mut CommDict, i: usize, v: Addr) {
        // SAFETY: the caller's contract.
        unsafe { store(buf, i, v.0) }
    }
}

impl Buffer for ProbeName {
    /// [`ProbeId`]s.
    type Buf = Vec<u16>;
    type Value<'a> = ProbeId;
    fn resize(buf: &mut Vec<u16>, n: usize) {
        buf.resize(n, 0);
    }
    #[inline(always)]
    unsafe fn put(buf: &mut Vec<u16>, _: &mut CommDict, i: usize, v: ProbeId) {
        // SAFETY: the caller's contract.
        unsafe { store(buf, i, v.0) }
    }
}

/// [`RowBatch`] and its per-column code, from [`event_columns!`]: a
/// buffer per column but `ts` (computed when encoding), in file order.
macro_rules! row_batch {
    (
        time {
            $(#[$wm:meta])* $w:ident : $wc:ident = $ws:ty,
            $(#[$mm:meta])* $m:ident : $mc:ident = $ms:ty $(,)?
        }
        v1 { $( $(#[$am:meta])* $a:ident : $AC:ident = $AS:ty ),* $(,)? }
        v2 { $( $(#[$bm:meta])* $b:ident : $BC:ident = $BS:ty ),* $(,)? }
        tcp { $( $(#[$tm:meta])* $t:ident : $TC:ident = $TS:ty ),* $(,)? }
    ) => {
        /// Rows of a recording, column by column (see the module docs). Columns
        /// are the file's, in its order; `ts` is computed from `mono_ns` when
        /// encoding.
        ///
        /// Every column vector is as long as the batch's capacity and rows are
        /// written in place (`len` of them are filled), so appending a row costs a
        /// store per column, not a vector push.
        #[derive(Default, Clone)]
        pub struct RowBatch {
            len: usize,
            pub(crate) $m: <$ms as Buffer>::Buf,
            $( pub(crate) $a: <$AS as Buffer>::Buf, )*
            $( pub(crate) $b: <$BS as Buffer>::Buf, )*
            $( pub(crate) $t: <$TS as Buffer>::Buf, )*
            pub(crate) comms: CommDict,
            pub(crate) probes: Probes,
        }

        impl RowBatch {
            /// Makes every column `n` rows long.
            fn resize(&mut self, n: usize) {
                <$ms as Buffer>::resize(&mut self.$m, n);
                $( <$AS as Buffer>::resize(&mut self.$a, n); )*
                $( <$BS as Buffer>::resize(&mut self.$b, n); )*
                $( <$TS as Buffer>::resize(&mut self.$t, n); )*
            }

            /// Stores `row` at row `i` of every column, without bounds checks.
            ///
            /// # Safety
            /// `i < self.capacity()`.
            #[inline(always)]
            unsafe fn put(&mut self, i: usize, row: &Row<'_>) {
                // SAFETY: every column vector is exactly `capacity()` long
                // (`resize` is the only code that changes their lengths, and
                // it sets them all), and `i < capacity()`: the caller's contract.
                unsafe {
                    <$ms as Buffer>::put(&mut self.$m, &mut self.comms, i, row.$m);
                    $( <$AS as Buffer>::put(&mut self.$a, &mut self.comms, i, row.$a); )*
                    $( <$BS as Buffer>::put(&mut self.$b, &mut self.comms, i, row.$b); )*
                    $( <$TS as Buffer>::put(&mut self.$t, &mut self.comms, i, row.tcp.$t); )*
                }
            }
        }
    };
}
event_columns!(row_batch);

impl RowBatch {
    /// An empty batch with room for `rows` rows.
    pub fn with_capacity(rows: usize) -> Self {
        let mut b = RowBatch::default();
        b.resize(rows);
        b
    }

    /// Rows the batch holds before it has to grow.
    pub fn capacity(&self) -> usize {
        self.mono_ns.len()
    }

    #[cold]
    fn grow(&mut self) {
        self.resize((self.capacity() * 2).max(1024));
    }

    /// Distinct comms in the batch (their ids are below this).
    pub(crate) fn comms_len(&self) -> usize {
        self.comms.ends.len()
    }

    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The id of probe name `name`, registered if new (the names are shared
    /// with the batches [`take`](Self::take) hands out).
    pub fn probe(&mut self, name: &str) -> ProbeId {
        self.probes.id(&Arc::from(name))
    }

    /// [`probe`](Self::probe) for a shared name: an `Arc` seen lately is
    /// found by its address, without hashing the text.
    pub fn probe_of(&mut self, name: &Arc<str>) -> ProbeId {
        self.probes.id(name)
    }

    /// Appends one row: a store per column, no bounds check (the hot path).
    #[inline]
    pub fn push(&mut self, row: &Row<'_>) {
        let i = self.len;
        if i >= self.capacity() {
            self.grow();
        }
        // SAFETY: `i < capacity()`: grown above when it was not.
        unsafe { self.put(i, row) };
        self.len = i + 1;
    }

    /// Appends an [`Event`] (through [`push`](Self::push)).
    pub fn push_event(&mut self, ev: &Event) {
        let probe = self.probe_of(&ev.probe);
        self.push(&Row {
            mono_ns: ev.mono_ns,
            kind: ev.kind,
            pid: ev.pid,
            tid: ev.tid,
            comm: Comm::Text(&ev.comm),
            family: ev.family,
            saddr: Addr::from(ev.saddr),
            daddr: Addr::from(ev.daddr),
            sport: ev.sport,
            dport: ev.dport,
            oldstate: ev.oldstate,
            newstate: ev.newstate,
            sk_err: ev.sk_err,
            netns: ev.netns,
            stack_id: ev.stack_id,
            probe,
            cookie: ev.cookie,
            cgroup_id: ev.cgroup_id,
            attribution: ev.attribution,
            tcp: ev.tcp,
        });
    }

    /// Row `i` as an [`Event`] (its comm a new string), `None` past the end.
    pub fn event(&self, i: usize) -> Option<Event> {
        if i >= self.len {
            return None;
        }
        let state = |code: u8| TcpState::ALL.get(usize::from(code)).copied();
        Some(Event {
            mono_ns: self.mono_ns[i],
            kind: *EventKind::ALL.get(usize::from(self.kind[i]))?,
            pid: self.pid[i],
            tid: self.tid[i],
            comm: Arc::from(self.comms.get(self.comm[i])),
            family: if self.family[i] == Family::Inet6.code() {
                Family::Inet6
            } else {
                Family::Inet
            },
            saddr: Addr(self.saddr[i]).ip(),
            daddr: Addr(self.daddr[i]).ip(),
            sport: self.sport[i],
            dport: self.dport[i],
            oldstate: state(self.oldstate[i]),
            newstate: state(self.newstate[i]),
            sk_err: self.sk_err[i],
            netns: self.netns[i],
            stack_id: self.stack_id.get(i),
            probe: self
                .probes
                .names
                .get(usize::from(self.probe[i]))
                .map_or_else(|| Arc::from(""), Arc::clone),
            cookie: self.cookie[i],
            cgroup_id: self.cgroup_id[i],
            attribution: *Attribution::ALL.get(usize::from(self.attribution[i]))?,
            tcp: TcpInfo {
                snd_wnd: self.snd_wnd.get(i),
                rcv_wnd: self.rcv_wnd.get(i),
                srtt_us: self.srtt_us.get(i),
                snd_cwnd: self.snd_cwnd.get(i),
                bytes_acked: self.bytes_acked.get(i),
                bytes_received: self.bytes_received.get(i),
                window: self.window.get(i),
            },
        })
    }

    /// The rows' owner pids, cgroup ids and network namespace inodes (0 =
    /// unknown), in row order: what the recorder looks names up for.
    pub fn owner_ids(&self) -> impl Iterator<Item = (u32, u64, u32)> + '_ {
        let n = self.len();
        self.pid[..n]
            .iter()
            .zip(&self.cgroup_id[..n])
            .zip(&self.netns[..n])
            .map(|((&p, &c), &ns)| (p, c, ns))
    }

    /// The stack ids of the rows that have one, in row order.
    pub fn stack_ids(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.len()).filter_map(|i| self.stack_id.get(i))
    }

    /// Empties the batch (keeping its memory and the probe names).
    pub fn clear(&mut self) {
        self.len = 0;
        self.comms.clear();
    }

    /// Hands out the rows pushed so far and leaves this batch empty, with
    /// the probe names and the memory of `spare` (an emptied batch to
    /// reuse, e.g. one the writer is done with) or new memory.
    pub fn take(&mut self, spare: Option<RowBatch>) -> RowBatch {
        let mut next = spare.unwrap_or_else(|| RowBatch::with_capacity(self.capacity()));
        next.clear();
        let probes = std::mem::take(&mut self.probes);
        let mut full = std::mem::replace(self, next);
        // The probe lookups stay with the producer, the names go along.
        full.probes = Probes {
            names: Arc::clone(&probes.names),
            ..Probes::default()
        };
        self.probes = probes;
        full
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_keyed_in_ipv6_form_and_read_back_canonical() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(Addr::from(v4), Addr::from(mapped));
        assert_eq!(Addr::from(mapped).ip(), v4);
        assert_eq!(Addr::v4([192, 0, 2, 1]), Addr::from(v4));
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(Addr::from(v6).ip(), v6);
        assert_ne!(
            Addr::from("0.0.0.0".parse::<IpAddr>().unwrap()),
            Addr::from("::".parse::<IpAddr>().unwrap())
        );
    }

    #[test]
    fn comms_raw_and_text_share_ids() {
        let mut d = CommDict::default();
        let mut raw = [0u8; 16];
        raw[..4].copy_from_slice(b"curl");
        let a = d.raw(&raw);
        assert_eq!(d.text_id("curl"), a);
        let full = *b"sixteen-bytes-ab";
        let b = d.raw(&full);
        assert_eq!(d.get(b), "sixteen-bytes-ab");
        assert_eq!(d.text_id("sixteen-bytes-ab"), b);
        let long = d.text_id("a-name-longer-than-sixteen-bytes");
        assert_eq!(d.get(long), "a-name-longer-than-sixteen-bytes");
        let nul = d.text_id("a\0b");
        assert_eq!(d.get(nul), "a\0b");
        assert_eq!(d.get(a), "curl");
        let bad = d.raw(&[0xff; 16]);
        assert!(d.get(bad).starts_with('\u{fffd}'));
    }

    #[test]
    fn take_keeps_probe_names_and_hands_out_the_rows() {
        let mut b = RowBatch::default();
        let p = b.probe("tp_btf:inet_sock_set_state");
        let comm = [0u8; 16];
        let row = Row {
            mono_ns: 1,
            kind: EventKind::StateChange,
            pid: 2,
            tid: 3,
            comm: Comm::Raw(&comm),
            family: Family::Inet,
            saddr: Addr::v4([127, 0, 0, 1]),
            daddr: Addr::v4([127, 0, 0, 1]),
            sport: 1,
            dport: 2,
            oldstate: None,
            newstate: Some(TcpState::Close),
            sk_err: 0,
            netns: 0,
            stack_id: None,
            probe: p,
            cookie: 0,
            cgroup_id: 0,
            attribution: Attribution::Task,
            tcp: TcpInfo::default(),
        };
        b.push(&row);
        let full = b.take(None);
        assert!(b.is_empty());
        assert_eq!(full.len(), 1);
        assert_eq!(&*full.event(0).unwrap().probe, "tp_btf:inet_sock_set_state");
        assert_eq!(b.probe("tp_btf:inet_sock_set_state"), p, "the producer keeps its ids");
        assert_eq!(full.event(0).unwrap().newstate, Some(TcpState::Close));
        assert_eq!(full.event(0).unwrap().oldstate, None);
    }
}
