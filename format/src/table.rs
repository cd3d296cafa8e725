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
use std::sync::Arc;

use bytes::Bytes;
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::ParquetError;
use parquet::schema::types::{ColumnDescPtr, SchemaDescriptor};

use crate::columns::stores::*;
use crate::columns::{event_columns, Coded};
use crate::encode::{Codec, DictChunk, IntEncoding, IntValue, NumChunk, Scratch};
use crate::event::canonical_ip;
use crate::meta::ClockAnchor;
use crate::rows::{Buffer, CommDict, RowBatch, WordMap, NO_STATE};
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
    fn page(&mut self, codec: &mut Codec, s: &mut Scratch, ids: &[u32], comms: &CommDict) -> Result<(), ParquetError> {
        let Scratch { body, indices, .. } = s;
        indices.clear();
        let mut bytes = 0;
        for id in ids {
            let Some(slot) = self.remap.get_mut(*id as usize) else {
                return Err(ParquetError::General(format!("comm id {id} beyond the batch's values")));
            };
            if *slot == NONE {
                let text = comms.get(*id);
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
        self.chunk.page(codec, body, (indices, bytes), ids.len(), None)
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

    fn page(
        &mut self,
        codec: &mut Codec,
        s: &mut Scratch,
        ids: &[u16],
        names: &[Arc<str>],
    ) -> Result<(), ParquetError> {
        let Scratch { body, indices, .. } = s;
        indices.clear();
        let mut bytes = 0;
        if self.index.len() < names.len() {
            self.index.resize(names.len(), NONE);
        }
        for id in ids {
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
        self.chunk.page(codec, body, (indices, bytes), ids.len(), None)
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

/// What a page is encoded with besides its column's values.
struct Env<'a> {
    codec: &'a mut Codec,
    s: &'a mut Scratch,
    text: &'a mut AddrText,
}

/// The writer's encoder of each way of storing a column
/// ([`crate::columns`]): the chunk it builds, and what it is written as.
trait Encode {
    type Encoder;
    fn encoder(descr: ColumnDescPtr) -> Self::Encoder;
    fn finish(e: Self::Encoder, codec: &mut Codec) -> Result<(Bytes, ColumnCloseResult), ParquetError>;
    /// Bytes of its dictionary page so far (0 without a dictionary).
    fn dict_bytes(_e: &Self::Encoder) -> usize {
        0
    }
}

/// A page of a column a [`RowBatch`] holds (every one but `ts`), from its
/// buffer.
trait EncodePage: Encode + Buffer {
    fn page(
        e: &mut Self::Encoder,
        env: &mut Env<'_>,
        col: &Self::Buf,
        b: &RowBatch,
        r: Range<usize>,
    ) -> Result<(), ParquetError>;
}

/// [`Encode`] and [`EncodePage`] for the stores written as integer chunks
/// with `$encoding`: a page's values and validity are `$values` and
/// `$valid` of the rows `r` of buffer `col`.
macro_rules! num_encode {
    ($($store:ident => $encoding:ident, |$col:ident, $r:ident| $values:expr, $valid:expr;)*) => {$(
        impl<T: IntValue> Encode for $store<T> {
            type Encoder = NumChunk;
            fn encoder(descr: ColumnDescPtr) -> NumChunk {
                NumChunk::new(descr, IntEncoding::$encoding)
            }
            fn finish(e: NumChunk, codec: &mut Codec) -> Result<(Bytes, ColumnCloseResult), ParquetError> {
                e.finish(codec)
            }
        }

        impl<T: IntValue + Default> EncodePage for $store<T> {
            fn page(
                e: &mut NumChunk,
                env: &mut Env<'_>,
                $col: &Self::Buf,
                _: &RowBatch,
                $r: Range<usize>,
            ) -> Result<(), ParquetError> {
                e.page(env.codec, env.s, $values, $valid)
            }
        }
    )*};
}
num_encode! {
    Delta => Delta, |col, r| &col[r], None;
    Plain => Plain, |col, r| &col[r], None;
    Nullable => Delta, |col, r| &col.values[r.clone()], Some(&col.valid[r]);
}

impl Encode for WallClock {
    type Encoder = NumChunk;
    fn encoder(descr: ColumnDescPtr) -> NumChunk {
        NumChunk::new(descr, IntEncoding::Delta)
    }
    fn finish(e: NumChunk, codec: &mut Codec) -> Result<(Bytes, ColumnCloseResult), ParquetError> {
        e.finish(codec)
    }
}

/// [`Encode`] for the stores written as dictionary chunks by `$encoder`,
/// made by `$new`.
macro_rules! dict_encode {
    ($([$($generic:tt)*] $store:ty => $encoder:ty, $new:expr;)*) => {$(
        impl<$($generic)*> Encode for $store {
            type Encoder = $encoder;
            fn encoder(descr: ColumnDescPtr) -> $encoder {
                $new(descr)
            }
            fn finish(e: $encoder, codec: &mut Codec) -> Result<(Bytes, ColumnCloseResult), ParquetError> {
                e.chunk.finish(codec)
            }
            fn dict_bytes(e: &$encoder) -> usize {
                e.chunk.dict.page_bytes()
            }
        }
    )*};
}
dict_encode! {
    [E: Coded] Code<E> => EnumCol, |d| EnumCol::new(d, E::name_of);
    [E: Coded] NullableCode<E> => EnumCol, |d| EnumCol::new(d, E::name_of);
    [] CommText => CommCol, |d| CommCol { chunk: DictChunk::new(d), by_text: HashMap::new(), remap: Vec::new() };
    [] IpText => AddrCol, |d| AddrCol { chunk: DictChunk::new(d), by_key: WordMap::default(), last: (0, NONE, 0) };
    [] ProbeName => ProbeCol, |d| ProbeCol { chunk: DictChunk::new(d), index: Vec::new() };
}

/// [`EncodePage`] for the enum stores (`$nullable`: [`NO_STATE`] is null).
macro_rules! enum_page {
    ($($store:ident => $nullable:expr),*) => {$(
        impl<E: Coded> EncodePage for $store<E> {
            fn page(
                e: &mut EnumCol,
                env: &mut Env<'_>,
                col: &Vec<u8>,
                _: &RowBatch,
                r: Range<usize>,
            ) -> Result<(), ParquetError> {
                e.page(env.codec, env.s, &col[r], $nullable)
            }
        }
    )*};
}
enum_page!(Code => false, NullableCode => true);

impl EncodePage for CommText {
    fn page(
        e: &mut CommCol,
        env: &mut Env<'_>,
        col: &Vec<u32>,
        b: &RowBatch,
        r: Range<usize>,
    ) -> Result<(), ParquetError> {
        e.page(env.codec, env.s, &col[r], &b.comms)
    }
}

impl EncodePage for IpText {
    fn page(
        e: &mut AddrCol,
        env: &mut Env<'_>,
        col: &Vec<u128>,
        _: &RowBatch,
        r: Range<usize>,
    ) -> Result<(), ParquetError> {
        e.page(env.codec, env.s, env.text, &col[r])
    }
}

impl EncodePage for ProbeName {
    fn page(
        e: &mut ProbeCol,
        env: &mut Env<'_>,
        col: &Vec<u16>,
        b: &RowBatch,
        r: Range<usize>,
    ) -> Result<(), ParquetError> {
        e.page(env.codec, env.s, &col[r], &b.probes.names)
    }
}

/// [`RowGroup`] and its per-column code, from [`event_columns!`]: an
/// encoder per column, in file order.
macro_rules! row_group {
    (
        time {
            $(#[$wm:meta])* $w:ident : $wc:ident = $ws:ty,
            $(#[$mm:meta])* $m:ident : $mc:ident = $ms:ty $(,)?
        }
        v1 { $( $(#[$am:meta])* $a:ident : $ac:ident = $as:ty ),* $(,)? }
        v2 { $( $(#[$bm:meta])* $b:ident : $bc:ident = $bs:ty ),* $(,)? }
        tcp { $( $(#[$tm:meta])* $t:ident : $tc:ident = $ts:ty ),* $(,)? }
    ) => {
        /// One row group in the making: a chunk per column, in file order.
        pub(crate) struct RowGroup {
            rows: usize,
            $w: <$ws as Encode>::Encoder,
            $m: <$ms as Encode>::Encoder,
            $( $a: <$as as Encode>::Encoder, )*
            $( $b: <$bs as Encode>::Encoder, )*
            $( $t: <$ts as Encode>::Encoder, )*
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
                Ok(RowGroup {
                    rows: 0,
                    $w: <$ws as Encode>::encoder(d(col::$wc)?),
                    $m: <$ms as Encode>::encoder(d(col::$mc)?),
                    $( $a: <$as as Encode>::encoder(d(col::$ac)?), )*
                    $( $b: <$bs as Encode>::encoder(d(col::$bc)?), )*
                    $( $t: <$ts as Encode>::encoder(d(col::$tc)?), )*
                    ts_values: Vec::new(),
                    full: false,
                })
            }

            /// A page of rows `r` of `b` for every column but the time
            /// columns (see [`RowGroup::page`]).
            fn other_pages(&mut self, env: &mut Env<'_>, b: &RowBatch, r: Range<usize>) -> Result<(), ParquetError> {
                $( <$as as EncodePage>::page(&mut self.$a, env, &b.$a, b, r.clone())?; )*
                $( <$bs as EncodePage>::page(&mut self.$b, env, &b.$b, b, r.clone())?; )*
                $( <$ts as EncodePage>::page(&mut self.$t, env, &b.$t, b, r.clone())?; )*
                Ok(())
            }

            /// The largest dictionary page of the row group so far, in bytes.
            fn dict_bytes(&self) -> usize {
                [
                    $( <$as as Encode>::dict_bytes(&self.$a), )*
                    $( <$bs as Encode>::dict_bytes(&self.$b), )*
                    $( <$ts as Encode>::dict_bytes(&self.$t), )*
                ]
                .into_iter()
                .max()
                .unwrap_or(0)
            }

            /// The column chunks, in file order.
            pub(crate) fn finish(self, codec: &mut Codec) -> Result<Vec<(Bytes, ColumnCloseResult)>, ParquetError> {
                Ok(vec![
                    <$ws as Encode>::finish(self.$w, codec)?,
                    <$ms as Encode>::finish(self.$m, codec)?,
                    $( <$as as Encode>::finish(self.$a, codec)?, )*
                    $( <$bs as Encode>::finish(self.$b, codec)?, )*
                    $( <$ts as Encode>::finish(self.$t, codec)?, )*
                ])
            }
        }
    };
}

event_columns!(row_group);

impl RowGroup {
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
        // saturates, its page is mono_ns's with another first value (taken
        // from `s`, so it is written right after mono_ns's).
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
        self.other_pages(&mut Env { codec, s, text }, b, r.clone())?;
        self.rows += r.len();
        self.full = self.dict_bytes() >= DICT_LIMIT;
        Ok(())
    }
}
