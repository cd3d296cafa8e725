//! The recording's columns as the writer encodes them: for each column of
//! the schema (in file order), where its values come from in a
//! [`RowBatch`] and how they are stored. One row group is written at a
//! time ([`RowGroup`]), a data page per column for every piece of a batch.
//!
//! The text columns are dictionary columns whose keys the batches already
//! hold: the enum columns a code into a fixed list of names, `probe` an id
//! registered once per name, `comm` an id into the batch's own values,
//! `saddr`/`daddr` the 16 bytes of the address. Each row group's
//! dictionary lists the values in the order they first appear (as
//! parquet's encoder does), found through tables indexed by those keys, so
//! no row's text is hashed or compared; an address is formatted once per
//! row group.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::ops::Range;

use bytes::Bytes;
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::ParquetError;
use parquet::schema::types::{ColumnDescPtr, SchemaDescriptor};

use crate::encode::{Codec, DictChunk, IntEncoding, IntValue, NumChunk, Scratch};
use crate::event::{canonical_ip, Attribution, EventKind, Family, TcpState};
use crate::meta::ClockAnchor;
use crate::rows::{RowBatch, WordMap, NO_STATE};
use crate::schema::col;

/// No dictionary index yet.
const NONE: u32 = u32::MAX;

/// A row group's dictionary of one text column grows past this many bytes
/// of values: the row group ends after the page (parquet switches to PLAIN
/// pages at its 1 MiB dictionary page limit; ending the row group keeps
/// every page dictionary-encoded and the dictionary bounded).
pub(crate) const DICT_LIMIT: usize = 1 << 20;

/// Most distinct `probe` values in one row group: its Arrow type is
/// `Dictionary(UInt8, Utf8)`, and the parquet crate's reader refuses a
/// column chunk whose dictionary holds as many values as the key type has
/// codes (it checks the count, not the largest key).
pub(crate) const MAX_PROBES: usize = u8::MAX as usize;

/// An enum column: codes into a fixed list of names.
struct EnumCol {
    chunk: DictChunk,
    name: fn(u8) -> &'static str,
    /// Dictionary index of each code.
    index: [u32; 256],
    /// Bytes of each code's name.
    len: [i64; 256],
}

impl EnumCol {
    fn new(descr: ColumnDescPtr, name: fn(u8) -> &'static str) -> Self {
        EnumCol {
            chunk: DictChunk::new(descr),
            name,
            index: [NONE; 256],
            len: std::array::from_fn(|c| name(c as u8).len() as i64),
        }
    }

    /// One page of `codes` ([`NO_STATE`] is null in a nullable column).
    fn page(&mut self, codec: &mut Codec, s: &mut Scratch, codes: &[u8], nullable: bool) -> Result<(), ParquetError> {
        let Scratch {
            body, indices, valid, ..
        } = s;
        indices.clear();
        valid.clear();
        let mut bytes = 0;
        for c in codes {
            if nullable {
                valid.push(*c != NO_STATE);
                if *c == NO_STATE {
                    continue;
                }
            }
            let slot = &mut self.index[usize::from(*c)];
            if *slot == NONE {
                *slot = self.chunk.dict.push((self.name)(*c).as_bytes());
            }
            bytes += self.len[usize::from(*c)];
            indices.push(*slot);
        }
        let valid = nullable.then_some(&valid[..]);
        self.chunk.page(codec, body, (indices, bytes), codes.len(), valid)
    }
}

/// The `comm` column: ids into each batch's values.
struct CommCol {
    chunk: DictChunk,
    by_text: HashMap<Box<str>, u32>,
    /// Dictionary index of each id of the current batch.
    remap: Vec<u32>,
}

impl CommCol {
    fn page(&mut self, codec: &mut Codec, s: &mut Scratch, b: &RowBatch, r: Range<usize>) -> Result<(), ParquetError> {
        let Scratch { body, indices, .. } = s;
        indices.clear();
        let mut bytes = 0;
        for id in &b.comm[r.clone()] {
            let Some(slot) = self.remap.get_mut(*id as usize) else {
                return Err(ParquetError::General(format!("comm id {id} beyond the batch's values")));
            };
            if *slot == NONE {
                let text = b.comms.get(*id);
                *slot = match self.by_text.get(text) {
                    Some(i) => *i,
                    None => {
                        let i = self.chunk.dict.push(text.as_bytes());
                        self.by_text.insert(text.into(), i);
                        i
                    }
                };
            }
            bytes += self.chunk.dict.len_of(*slot);
            indices.push(*slot);
        }
        self.chunk.page(codec, body, (indices, bytes), r.len(), None)
    }
}

/// The `probe` column: ids registered with the batches.
struct ProbeCol {
    chunk: DictChunk,
    /// Dictionary index of each probe id.
    index: Vec<u32>,
}

impl ProbeCol {
    /// Where the rows `r` must end for the row group to hold at most
    /// [`MAX_PROBES`] distinct probes: before the row that would add one more.
    fn cut(&self, b: &RowBatch, r: Range<usize>) -> usize {
        if b.probes.names.len() <= MAX_PROBES {
            return r.end;
        }
        let mut seen = self.chunk.dict.len();
        let mut new: Vec<u16> = Vec::new();
        for (i, id) in b.probe[r.clone()].iter().enumerate() {
            let known = self.index.get(usize::from(*id)).is_some_and(|x| *x != NONE) || new.contains(id);
            if !known {
                if seen == MAX_PROBES {
                    return r.start + i;
                }
                seen += 1;
                new.push(*id);
            }
        }
        r.end
    }

    fn page(&mut self, codec: &mut Codec, s: &mut Scratch, b: &RowBatch, r: Range<usize>) -> Result<(), ParquetError> {
        let Scratch { body, indices, .. } = s;
        indices.clear();
        let names = &b.probes.names;
        let mut bytes = 0;
        if self.index.len() < names.len() {
            self.index.resize(names.len(), NONE);
        }
        for id in &b.probe[r.clone()] {
            let Some(slot) = self.index.get_mut(usize::from(*id)) else {
                return Err(ParquetError::General(format!("probe id {id} was never registered")));
            };
            if *slot == NONE {
                let name = names.get(usize::from(*id)).map_or("", |n| &**n);
                *slot = self.chunk.dict.push(name.as_bytes());
            }
            bytes += self.chunk.dict.len_of(*slot);
            indices.push(*slot);
        }
        self.chunk.page(codec, body, (indices, bytes), r.len(), None)
    }
}

/// The text of recently written addresses, across row groups: a
/// direct-mapped cache, so the few addresses a host talks to are formatted
/// once, not once per row group.
pub(crate) struct AddrText {
    slots: Vec<Option<(u128, String)>>,
}

impl AddrText {
    const SLOTS: usize = 256;

    pub(crate) fn new() -> Self {
        AddrText {
            slots: vec![None; Self::SLOTS],
        }
    }

    fn text(&mut self, key: u128) -> &str {
        let folded = (key as u64) ^ ((key >> 64) as u64);
        // Fibonacci hashing: the top 8 bits of the product.
        let slot = &mut self.slots[(folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize % Self::SLOTS];
        if !matches!(slot, Some((k, _)) if *k == key) {
            let text = canonical_ip(IpAddr::V6(Ipv6Addr::from(key))).to_string();
            *slot = Some((key, text));
        }
        slot.as_ref().map_or("", |(_, t)| t.as_str())
    }
}

/// `saddr` or `daddr`.
struct AddrCol {
    chunk: DictChunk,
    by_key: WordMap<u128, u32>,
    /// The last address, its index and its bytes (most rows repeat one).
    last: (u128, u32, i64),
}

impl AddrCol {
    fn page(
        &mut self,
        codec: &mut Codec,
        s: &mut Scratch,
        text: &mut AddrText,
        keys: &[u128],
    ) -> Result<(), ParquetError> {
        let Scratch { body, indices, .. } = s;
        indices.clear();
        let mut bytes = 0;
        for key in keys {
            if *key != self.last.0 || self.last.1 == NONE {
                let i = match self.by_key.get(key) {
                    Some(i) => *i,
                    None => {
                        let i = self.chunk.dict.push(text.text(*key).as_bytes());
                        self.by_key.insert(*key, i);
                        i
                    }
                };
                self.last = (*key, i, self.chunk.dict.len_of(i));
            }
            bytes += self.last.2;
            indices.push(self.last.1);
        }
        self.chunk.page(codec, body, (indices, bytes), keys.len(), None)
    }
}

/// The name of each enum column's codes (the schema's indices).
fn kind_name(c: u8) -> &'static str {
    EventKind::ALL.get(usize::from(c)).map_or("", |k| k.as_str())
}

fn family_name(c: u8) -> &'static str {
    [Family::Inet, Family::Inet6]
        .get(usize::from(c))
        .map_or("", |f| f.as_str())
}

fn state_name(c: u8) -> &'static str {
    TcpState::ALL.get(usize::from(c)).map_or("", |s| s.name())
}

fn attribution_name(c: u8) -> &'static str {
    Attribution::ALL.get(usize::from(c)).map_or("", |a| a.as_str())
}

/// One row group in the making: a chunk per column, in file order.
pub(crate) struct RowGroup {
    rows: usize,
    ts: NumChunk,
    mono_ns: NumChunk,
    kind: EnumCol,
    pid: NumChunk,
    tid: NumChunk,
    comm: CommCol,
    family: EnumCol,
    saddr: AddrCol,
    daddr: AddrCol,
    sport: NumChunk,
    dport: NumChunk,
    oldstate: EnumCol,
    newstate: EnumCol,
    sk_err: NumChunk,
    netns: NumChunk,
    stack_id: NumChunk,
    probe: ProbeCol,
    cookie: NumChunk,
    cgroup_id: NumChunk,
    attribution: EnumCol,
    snd_wnd: NumChunk,
    rcv_wnd: NumChunk,
    srtt_us: NumChunk,
    snd_cwnd: NumChunk,
    bytes_acked: NumChunk,
    bytes_received: NumChunk,
    window: NumChunk,
    /// Wall-clock times of the page being written.
    ts_values: Vec<i64>,
    /// The row group must end after the current page (a dictionary is full).
    full: bool,
}

impl RowGroup {
    pub(crate) fn new(schema: &SchemaDescriptor) -> Result<Self, ParquetError> {
        let d = |name: &str| -> Result<ColumnDescPtr, ParquetError> {
            schema
                .columns()
                .iter()
                .find(|c| c.name() == name)
                .cloned()
                .ok_or_else(|| ParquetError::General(format!("the schema has no column {name}")))
        };
        let delta = |name: &str| Ok::<_, ParquetError>(NumChunk::new(d(name)?, IntEncoding::Delta));
        let dict = |name: &str| Ok::<_, ParquetError>(DictChunk::new(d(name)?));
        let addr = |name: &str| {
            Ok::<_, ParquetError>(AddrCol {
                chunk: dict(name)?,
                by_key: WordMap::default(),
                last: (0, NONE, 0),
            })
        };
        Ok(RowGroup {
            rows: 0,
            ts: delta(col::TS)?,
            mono_ns: delta(col::MONO_NS)?,
            kind: EnumCol::new(d(col::KIND)?, kind_name),
            pid: delta(col::PID)?,
            tid: delta(col::TID)?,
            comm: CommCol {
                chunk: dict(col::COMM)?,
                by_text: HashMap::new(),
                remap: Vec::new(),
            },
            family: EnumCol::new(d(col::FAMILY)?, family_name),
            saddr: addr(col::SADDR)?,
            daddr: addr(col::DADDR)?,
            // Ports jump both ways between connections: plain, which zstd
            // squeezes better than deltas.
            sport: NumChunk::new(d(col::SPORT)?, IntEncoding::Plain),
            dport: NumChunk::new(d(col::DPORT)?, IntEncoding::Plain),
            oldstate: EnumCol::new(d(col::OLDSTATE)?, state_name),
            newstate: EnumCol::new(d(col::NEWSTATE)?, state_name),
            sk_err: delta(col::SK_ERR)?,
            netns: delta(col::NETNS)?,
            stack_id: delta(col::STACK_ID)?,
            probe: ProbeCol {
                chunk: dict(col::PROBE)?,
                index: Vec::new(),
            },
            cookie: delta(col::COOKIE)?,
            cgroup_id: delta(col::CGROUP_ID)?,
            attribution: EnumCol::new(d(col::ATTRIBUTION)?, attribution_name),
            snd_wnd: delta(col::SND_WND)?,
            rcv_wnd: delta(col::RCV_WND)?,
            srtt_us: delta(col::SRTT_US)?,
            snd_cwnd: delta(col::SND_CWND)?,
            bytes_acked: delta(col::BYTES_ACKED)?,
            bytes_received: delta(col::BYTES_RECEIVED)?,
            window: delta(col::WINDOW)?,
            ts_values: Vec::new(),
            full: false,
        })
    }

    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Whether the row group must end now (a dictionary grew past its bound).
    pub(crate) fn full(&self) -> bool {
        self.full
    }

    /// Starts taking rows of batch `b` (its comm ids are its own).
    pub(crate) fn begin_batch(&mut self, b: &RowBatch) {
        self.comm.remap.clear();
        self.comm.remap.resize(b.comms_len(), NONE);
    }

    /// Where rows `r` of `b` must end so that this row group can take them
    /// (`r.start` when it can take none: it must end first).
    pub(crate) fn cut(&self, b: &RowBatch, r: Range<usize>) -> usize {
        self.probe.cut(b, r)
    }

    /// Writes rows `r` of `b` as one data page per column.
    pub(crate) fn page(
        &mut self,
        codec: &mut Codec,
        s: &mut Scratch,
        text: &mut AddrText,
        clock: ClockAnchor,
        b: &RowBatch,
        r: Range<usize>,
    ) -> Result<(), ParquetError> {
        if r.end > b.len() {
            return Err(ParquetError::General(format!("rows {r:?} of a batch of {}", b.len())));
        }
        let mono = &b.mono_ns[r.clone()];
        self.mono_ns.page(codec, s, mono, None)?;
        // ts is mono_ns shifted by the clock anchor: unless a value
        // saturates, its page is mono_ns's with another first value.
        let shift = clock.realtime_ns.checked_sub(clock.monotonic_ns);
        let shifted = |m: i64| shift.and_then(|d| m.checked_add(d)).filter(|t| *t == clock.wall_ns(m));
        match (self.mono_ns.last_bounds(), shift) {
            (Some((lo, hi)), Some(d)) if shifted(lo).is_some() && shifted(hi).is_some() => {
                let first = mono.first().copied().unwrap_or(0);
                self.ts.page_shifted(codec, s, mono.len(), first, d, (lo + d, hi + d))?;
            }
            _ => {
                self.ts_values.clear();
                self.ts_values.extend(mono.iter().map(|m| clock.wall_ns(*m)));
                self.ts.page(codec, s, &self.ts_values, None)?;
            }
        }
        self.kind.page(codec, s, &b.kind[r.clone()], false)?;
        self.pid.page(codec, s, &b.pid[r.clone()], None)?;
        self.tid.page(codec, s, &b.tid[r.clone()], None)?;
        self.comm.page(codec, s, b, r.clone())?;
        self.family.page(codec, s, &b.family[r.clone()], false)?;
        self.saddr.page(codec, s, text, &b.saddr[r.clone()])?;
        self.daddr.page(codec, s, text, &b.daddr[r.clone()])?;
        self.sport.page(codec, s, &b.sport[r.clone()], None)?;
        self.dport.page(codec, s, &b.dport[r.clone()], None)?;
        self.oldstate.page(codec, s, &b.oldstate[r.clone()], true)?;
        self.newstate.page(codec, s, &b.newstate[r.clone()], true)?;
        self.sk_err.page(codec, s, &b.sk_err[r.clone()], None)?;
        self.netns.page(codec, s, &b.netns[r.clone()], None)?;
        opt_page(&mut self.stack_id, codec, s, &b.stack_id, r.clone())?;
        self.probe.page(codec, s, b, r.clone())?;
        self.cookie.page(codec, s, &b.cookie[r.clone()], None)?;
        self.cgroup_id.page(codec, s, &b.cgroup_id[r.clone()], None)?;
        self.attribution.page(codec, s, &b.attribution[r.clone()], false)?;
        opt_page(&mut self.snd_wnd, codec, s, &b.snd_wnd, r.clone())?;
        opt_page(&mut self.rcv_wnd, codec, s, &b.rcv_wnd, r.clone())?;
        opt_page(&mut self.srtt_us, codec, s, &b.srtt_us, r.clone())?;
        opt_page(&mut self.snd_cwnd, codec, s, &b.snd_cwnd, r.clone())?;
        opt_page(&mut self.bytes_acked, codec, s, &b.bytes_acked, r.clone())?;
        opt_page(&mut self.bytes_received, codec, s, &b.bytes_received, r.clone())?;
        opt_page(&mut self.window, codec, s, &b.window, r.clone())?;
        self.rows += r.len();
        let dicts = [
            &self.comm.chunk,
            &self.saddr.chunk,
            &self.daddr.chunk,
            &self.probe.chunk,
        ];
        self.full = dicts.iter().any(|c| c.dict.page_bytes() >= DICT_LIMIT);
        Ok(())
    }

    /// The column chunks, in file order.
    pub(crate) fn finish(self, codec: &mut Codec) -> Result<Vec<(Bytes, ColumnCloseResult)>, ParquetError> {
        let chunks = vec![
            self.ts.finish(codec)?,
            self.mono_ns.finish(codec)?,
            self.kind.chunk.finish(codec)?,
            self.pid.finish(codec)?,
            self.tid.finish(codec)?,
            self.comm.chunk.finish(codec)?,
            self.family.chunk.finish(codec)?,
            self.saddr.chunk.finish(codec)?,
            self.daddr.chunk.finish(codec)?,
            self.sport.finish(codec)?,
            self.dport.finish(codec)?,
            self.oldstate.chunk.finish(codec)?,
            self.newstate.chunk.finish(codec)?,
            self.sk_err.finish(codec)?,
            self.netns.finish(codec)?,
            self.stack_id.finish(codec)?,
            self.probe.chunk.finish(codec)?,
            self.cookie.finish(codec)?,
            self.cgroup_id.finish(codec)?,
            self.attribution.chunk.finish(codec)?,
            self.snd_wnd.finish(codec)?,
            self.rcv_wnd.finish(codec)?,
            self.srtt_us.finish(codec)?,
            self.snd_cwnd.finish(codec)?,
            self.bytes_acked.finish(codec)?,
            self.bytes_received.finish(codec)?,
            self.window.finish(codec)?,
        ];
        debug_assert_eq!(chunks.len(), col::ALL.len());
        Ok(chunks)
    }
}

/// One page of a nullable integer column.
fn opt_page<T: IntValue>(
    chunk: &mut NumChunk,
    codec: &mut Codec,
    s: &mut Scratch,
    col: &crate::rows::Opt<T>,
    r: Range<usize>,
) -> Result<(), ParquetError> {
    chunk.page(codec, s, &col.values[r.clone()], Some(&col.valid[r]))
}
