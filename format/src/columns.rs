//! The recording's columns, declared once.
//!
//! `event_columns!` lists every column of the current schema in file
//! order: its name, the constant that names it in [`crate::schema::col`],
//! and how it is stored (one of the types below). Everything that depends
//! on the list of columns is made from it: the constants and
//! [`crate::schema::COLUMNS`], and from that the Arrow schema
//! ([`crate::schema::event_schema`]), the columns the reader requires and
//! the name lists of `col`; the writer's column buffers ([`crate::RowBatch`])
//! and encoders (`table::RowGroup`); the reader's typed views of a record
//! batch and both its decoders (`reader::decode`). A test holds the column
//! table of `SCHEMA.md` to it.
//!
//! How a column is stored is a type (`Delta<u32>`, `Code<EventKind>`,
//! ...): each module that expands the list implements its own trait for
//! these types (`Stored` here: the Arrow type; `rows::Buffer`,
//! `table::Encode`, `reader::decode::Decode`), so the list itself stays
//! data. Adding a column is a line here, a field of [`crate::Event`] and
//! [`crate::Row`] (the decoders build an `Event` from the names here), a
//! row of `SCHEMA.md`, and for a column added by a new schema version what
//! older files hold (`reader::decode::Absent`).

use std::marker::PhantomData;

use arrow_schema::{DataType, TimeUnit};

use crate::event::{Attribution, EventKind, Family, TcpState};

/// The columns, in file order, in groups: `time` holds `ts`, which the
/// writer derives from `mono_ns` (and the clock anchor) and the reader
/// does not read back, and `mono_ns`; `v1` the rest of the columns of
/// schema version 1; `v2` those version 2 appended, and `tcp` the last of
/// those, held in [`crate::Event::tcp`]. Calls `$then!` with the list.
macro_rules! event_columns {
    ($then:ident) => {
        $then! {
            time {
                /// Wall-clock time, `Timestamp(ns, "UTC")`.
                ts: TS = WallClock,
                /// CLOCK_MONOTONIC nanoseconds, `Int64`.
                mono_ns: MONO_NS = Delta<i64>,
            }
            v1 {
                kind: KIND = Code<EventKind>,
                pid: PID = Delta<u32>,
                tid: TID = Delta<u32>,
                comm: COMM = CommText,
                family: FAMILY = Code<Family>,
                saddr: SADDR = IpText,
                daddr: DADDR = IpText,
                // Ports jump both ways between connections: plain, which
                // zstd squeezes better than deltas.
                sport: SPORT = Plain<u16>,
                dport: DPORT = Plain<u16>,
                oldstate: OLDSTATE = NullableCode<TcpState>,
                newstate: NEWSTATE = NullableCode<TcpState>,
                sk_err: SK_ERR = Delta<i32>,
                netns: NETNS = Delta<u32>,
                stack_id: STACK_ID = Nullable<i64>,
            }
            v2 {
                /// `Dictionary(UInt8, Utf8)`, `type:name` of the probe that produced the row.
                probe: PROBE = ProbeName,
                /// `UInt64`, the kernel's socket cookie (0 = unknown).
                cookie: COOKIE = Delta<u64>,
                /// `UInt64`, cgroup v2 id of the owner (0 = unknown).
                cgroup_id: CGROUP_ID = Delta<u64>,
                /// `Dictionary(UInt8, Utf8)`, [`crate::Attribution::as_str`].
                attribution: ATTRIBUTION = Code<Attribution>,
            }
            tcp {
                /// `UInt32`, nullable.
                snd_wnd: SND_WND = Nullable<u32>,
                /// `UInt32`, nullable.
                rcv_wnd: RCV_WND = Nullable<u32>,
                /// `UInt32`, nullable.
                srtt_us: SRTT_US = Nullable<u32>,
                /// `UInt32`, nullable.
                snd_cwnd: SND_CWND = Nullable<u32>,
                /// `UInt64`, nullable.
                bytes_acked: BYTES_ACKED = Nullable<u64>,
                /// `UInt64`, nullable.
                bytes_received: BYTES_RECEIVED = Nullable<u64>,
                /// `UInt32`, nullable.
                window: WINDOW = Nullable<u32>,
            }
        }
    };
}

pub(crate) use event_columns;

/// What the list names: a module that expands [`event_columns!`] imports
/// these (`use crate::columns::stores::*`).
pub(crate) mod stores {
    pub(crate) use super::{Code, CommText, Delta, IpText, Nullable, NullableCode, Plain, ProbeName, WallClock};
    pub(crate) use crate::event::{Attribution, EventKind, Family, TcpState};
}

/// `Timestamp(ns, "UTC")`, computed from `mono_ns` and the clock anchor.
pub(crate) struct WallClock;
/// An integer column, `DELTA_BINARY_PACKED` (most are constant or nearly so from row to row).
pub(crate) struct Delta<T>(PhantomData<T>);
/// An integer column, `PLAIN`.
pub(crate) struct Plain<T>(PhantomData<T>);
/// A nullable integer column, `DELTA_BINARY_PACKED`.
pub(crate) struct Nullable<T>(PhantomData<T>);
/// An enum as text: `Dictionary(UInt8, Utf8)` of [`Coded::name`]s.
pub(crate) struct Code<E>(PhantomData<E>);
/// A nullable enum as text.
pub(crate) struct NullableCode<E>(PhantomData<E>);
/// The owner's command name, `Dictionary(UInt32, Utf8)`.
pub(crate) struct CommText;
/// An IP address as canonical text, `Utf8` (dictionary-encoded in the file).
pub(crate) struct IpText;
/// A probe name, `Dictionary(UInt8, Utf8)`.
pub(crate) struct ProbeName;

/// Timezone of the `ts` column.
pub const TS_TIMEZONE: &str = "UTC";

/// An Arrow type of a column; [`crate::schema::event_schema`] spells it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// `Timestamp(ns, "UTC")`.
    Timestamp,
    Int32,
    Int64,
    UInt16,
    UInt32,
    UInt64,
    /// `Utf8`.
    Text,
    /// `Dictionary(UInt8, Utf8)`.
    Dict8,
    /// `Dictionary(UInt32, Utf8)`.
    Dict32,
}

impl ColumnType {
    /// The Arrow type.
    pub fn data_type(self) -> DataType {
        let dict = |key: DataType| DataType::Dictionary(Box::new(key), Box::new(DataType::Utf8));
        match self {
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Nanosecond, Some(TS_TIMEZONE.into())),
            ColumnType::Int32 => DataType::Int32,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::UInt16 => DataType::UInt16,
            ColumnType::UInt32 => DataType::UInt32,
            ColumnType::UInt64 => DataType::UInt64,
            ColumnType::Text => DataType::Utf8,
            ColumnType::Dict8 => dict(DataType::UInt8),
            ColumnType::Dict32 => dict(DataType::UInt32),
        }
    }

    /// Text, plain or a dictionary of it.
    pub const fn is_text(self) -> bool {
        matches!(self, ColumnType::Text | ColumnType::Dict8 | ColumnType::Dict32)
    }
}

/// One column of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnDef {
    pub name: &'static str,
    pub ty: ColumnType,
    /// May hold nulls (Parquet `optional`).
    pub nullable: bool,
    /// The schema version that added it.
    pub since: u32,
    /// Computed by the writer from other columns, not read back (`ts`).
    pub derived: bool,
}

/// The Arrow type and nullability of a way of storing a column.
pub(crate) trait Stored {
    const TYPE: ColumnType;
    const NULLABLE: bool;
}

/// An integer type of a column.
pub(crate) trait IntType {
    const TYPE: ColumnType;
}

macro_rules! int_types {
    ($($t:ty => $c:ident),*) => {$(
        impl IntType for $t {
            const TYPE: ColumnType = ColumnType::$c;
        }
    )*};
}
int_types!(i32 => Int32, i64 => Int64, u16 => UInt16, u32 => UInt32, u64 => UInt64);

impl<T: IntType> Stored for Delta<T> {
    const TYPE: ColumnType = T::TYPE;
    const NULLABLE: bool = false;
}
impl<T: IntType> Stored for Plain<T> {
    const TYPE: ColumnType = T::TYPE;
    const NULLABLE: bool = false;
}
impl<T: IntType> Stored for Nullable<T> {
    const TYPE: ColumnType = T::TYPE;
    const NULLABLE: bool = true;
}
impl<E> Stored for Code<E> {
    const TYPE: ColumnType = ColumnType::Dict8;
    const NULLABLE: bool = false;
}
impl<E> Stored for NullableCode<E> {
    const TYPE: ColumnType = ColumnType::Dict8;
    const NULLABLE: bool = true;
}
impl Stored for WallClock {
    const TYPE: ColumnType = ColumnType::Timestamp;
    const NULLABLE: bool = false;
}
impl Stored for CommText {
    const TYPE: ColumnType = ColumnType::Dict32;
    const NULLABLE: bool = false;
}
impl Stored for IpText {
    const TYPE: ColumnType = ColumnType::Text;
    const NULLABLE: bool = false;
}
impl Stored for ProbeName {
    const TYPE: ColumnType = ColumnType::Dict8;
    const NULLABLE: bool = false;
}

/// An enum stored as text: a code (an index into [`ALL`](Self::ALL)) in
/// column buffers, its name in the file. Each row group's dictionary lists
/// the names its rows use, found by code, so pushing a row never hashes a
/// string.
pub(crate) trait Coded: Copy + 'static {
    /// Every value, in code order.
    const ALL: &'static [Self];
    /// What the values are, for an error message ("event kind").
    const WHAT: &'static str;
    fn code(self) -> u8;
    fn name(self) -> &'static str;
    fn parse(s: &str) -> Option<Self>;

    /// The value of `code`, if any.
    fn of_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code)).copied()
    }

    /// The name of `code` (empty for none).
    fn name_of(code: u8) -> &'static str {
        Self::of_code(code).map_or("", Self::name)
    }
}

/// The shared enums (`deeptcp-common`) already carry their codes, names
/// and parser.
macro_rules! coded_shared {
    ($($t:ident: $what:literal, $name:ident;)+) => {$(
        impl Coded for $t {
            const ALL: &'static [Self] = &$t::ALL;
            const WHAT: &'static str = $what;
            fn code(self) -> u8 {
                $t::code(self)
            }
            fn name(self) -> &'static str {
                $t::$name(self)
            }
            fn parse(s: &str) -> Option<Self> {
                $t::parse(s)
            }
        }
    )+};
}

coded_shared! {
    EventKind: "event kind", as_str;
    TcpState: "TCP state", name;
    Attribution: "attribution", as_str;
}

impl Coded for Family {
    const ALL: &'static [Self] = &[Family::Inet, Family::Inet6];
    const WHAT: &'static str = "address family";
    fn code(self) -> u8 {
        match self {
            Family::Inet => 0,
            Family::Inet6 => 1,
        }
    }
    fn name(self) -> &'static str {
        self.as_str()
    }
    fn parse(s: &str) -> Option<Self> {
        Family::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes_are_indices<E: Coded + PartialEq + std::fmt::Debug>() {
        for (i, v) in E::ALL.iter().enumerate() {
            assert_eq!(usize::from(v.code()), i, "{v:?}");
            assert_eq!(E::of_code(v.code()), Some(*v));
            assert_eq!(E::parse(v.name()), Some(*v));
        }
        assert_eq!(E::of_code(u8::MAX), None);
    }

    #[test]
    fn enum_codes_are_indices_into_all() {
        codes_are_indices::<EventKind>();
        codes_are_indices::<Family>();
        codes_are_indices::<TcpState>();
        codes_are_indices::<Attribution>();
        assert_eq!(Family::ALL.len(), 2);
    }
}
