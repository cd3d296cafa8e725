//! Record batches into [`Event`]s: a whole batch a column at a time
//! ([`decode_fast`], each distinct dictionary value parsed once), or, when
//! some row is bad, row by row up to it so that the error names its row and
//! column ([`decode_row`]). Both are made from the column list
//! ([`crate::columns`]); how each kind of column is decoded is [`Decode`].
//!
//! Schema versions 1 and 2 are read: a v1 file lacks the v2 columns, and its
//! events get their defaults (empty `probe`, `cookie`/`cgroup_id` 0,
//! [`Attribution::Unknown`], all-`None` [`TcpInfo`]).

use std::collections::{HashSet, VecDeque};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{ArrowPrimitiveType, Int32Type, Int64Type, UInt16Type, UInt32Type, UInt64Type};
use arrow_array::{Array, PrimitiveArray, RecordBatch};

use super::text::{intern, Memo, SharedText, TextColumn};
use crate::columns::stores::*;
use crate::columns::{event_columns, Coded};
use crate::event::{canonical_ip, Event, TcpInfo};
use crate::schema::{col, shown};
use crate::FormatError;

/// A bad value: (column, detail).
type Bad = (&'static str, String);

const NULL_IN_NON_NULL: &str = "null in a non-null column";

/// What decoding keeps from batch to batch besides each column's state.
#[derive(Default)]
pub(super) struct Shared {
    /// The `probe` of v1 rows.
    empty: Arc<str>,
    /// The distinct `comm`/`probe` strings of the column-at-a-time decoder
    /// (at most [`super::text::MAX_INTERNED`]).
    interned: HashSet<Arc<str>>,
}

/// How the reader decodes each way of storing a column
/// ([`crate::columns`]) into the value an [`Event`] holds.
trait Decode {
    /// A typed view of the column in a record batch.
    type View<'a>;
    /// What an [`Event`] holds.
    type Value;
    /// State kept from batch to batch (parsed dictionaries, scratch).
    type State: Default;
    /// The batch's values, checked, from [`ready`](Self::ready).
    type Ready<'a>;

    fn view(a: &dyn Array) -> Option<Self::View<'_>>;

    /// Row `i`, or what is wrong with it.
    fn row(v: &Self::View<'_>, i: usize, name: &'static str, state: &mut Self::State) -> Result<Self::Value, Bad>;

    /// Prepares [`row`](Self::row) for a new batch.
    fn start_batch(_state: &mut Self::State, _v: &Self::View<'_>) {}

    /// The batch's `n` values at once; `None` when some row is bad.
    fn ready<'a>(
        v: &Self::View<'a>,
        state: &'a mut Self::State,
        shared: &mut Shared,
        n: usize,
    ) -> Option<Self::Ready<'a>>;

    /// Row `i` of what [`ready`](Self::ready) made; `i` is below its `n`.
    fn get(r: &Self::Ready<'_>, i: usize) -> Self::Value;
}

/// What a row of a file whose schema lacks the column holds (a v1 file's
/// rows: the columns schema v2 added).
trait Absent: Decode {
    fn absent(shared: &Shared) -> Self::Value;
}

impl<T: ArrowInt + Default> Absent for Delta<T> {
    fn absent(_: &Shared) -> T {
        T::default()
    }
}

impl<T: ArrowInt> Absent for Nullable<T> {
    fn absent(_: &Shared) -> Option<T> {
        None
    }
}

impl<E: Coded + Default> Absent for Code<E> {
    fn absent(_: &Shared) -> E {
        E::default()
    }
}

impl Absent for ProbeName {
    fn absent(shared: &Shared) -> Arc<str> {
        Arc::clone(&shared.empty)
    }
}

/// The Arrow type of an integer column's values.
trait ArrowInt: arrow_buffer::ArrowNativeType {
    type Arrow: ArrowPrimitiveType<Native = Self>;
}

macro_rules! arrow_ints {
    ($($t:ty => $a:ty),*) => {$(
        impl ArrowInt for $t {
            type Arrow = $a;
        }
    )*};
}
arrow_ints!(i32 => Int32Type, i64 => Int64Type, u16 => UInt16Type, u32 => UInt32Type, u64 => UInt64Type);

/// [`Decode`] for the required integer stores.
macro_rules! required_ints {
    ($($store:ident),*) => {$(
        impl<T: ArrowInt + Default> Decode for $store<T> {
            type View<'a> = &'a PrimitiveArray<T::Arrow>;
            type Value = T;
            type State = ();
            type Ready<'a> = &'a [T];

            fn view(a: &dyn Array) -> Option<Self::View<'_>> {
                a.as_primitive_opt::<T::Arrow>()
            }

            fn row(v: &Self::View<'_>, i: usize, name: &'static str, _: &mut ()) -> Result<T, Bad> {
                if v.is_null(i) {
                    Err((name, NULL_IN_NON_NULL.into()))
                } else {
                    Ok(v.value(i))
                }
            }


            fn ready<'a>(v: &Self::View<'a>, _: &'a mut (), _: &mut Shared, n: usize) -> Option<&'a [T]> {
                let values: &'a [T] = v.values().as_ref();
                (v.null_count() == 0 && values.len() == n).then_some(values)
            }

            #[inline]
            fn get(r: &&[T], i: usize) -> T {
                r[i]
            }
        }
    )*};
}
required_ints!(Delta, Plain);

impl<T: ArrowInt> Decode for Nullable<T> {
    type View<'a> = &'a PrimitiveArray<T::Arrow>;
    type Value = Option<T>;
    type State = ();
    type Ready<'a> = &'a PrimitiveArray<T::Arrow>;

    fn view(a: &dyn Array) -> Option<Self::View<'_>> {
        a.as_primitive_opt::<T::Arrow>()
    }

    fn row(v: &Self::View<'_>, i: usize, _: &'static str, _: &mut ()) -> Result<Option<T>, Bad> {
        Ok((!v.is_null(i)).then(|| v.value(i)))
    }

    fn ready<'a>(v: &Self::View<'a>, _: &'a mut (), _: &mut Shared, n: usize) -> Option<Self::Ready<'a>> {
        (v.len() == n).then_some(*v)
    }

    #[inline]
    fn get(r: &Self::Ready<'_>, i: usize) -> Option<T> {
        match r.nulls() {
            Some(n) if n.is_null(i) => None,
            _ => Some(r.values()[i]),
        }
    }
}

/// A text column's dictionary, parsed, and the batch's values.
type Parsed<V, T = V> = (Memo<T>, Vec<V>);

/// The rows of a text column without nulls, the fast way: into `state`'s
/// vector, each distinct dictionary value parsed once; `None` if a row is
/// bad or null.
fn parsed<'a, T: Clone>(
    v: &TextColumn<'_>,
    state: &'a mut Parsed<T>,
    n: usize,
    parse: impl FnMut(&str) -> Option<T>,
) -> Option<&'a [T]> {
    let (memo, out) = state;
    (memo.column_required(v, parse, out) && out.len() == n).then_some(out.as_slice())
}

fn text_opt<'a>(c: &TextColumn<'a>, i: usize, name: &'static str) -> Result<Option<&'a str>, Bad> {
    c.get(i).map_err(|d| (name, d))
}

fn text_req<'a>(c: &TextColumn<'a>, i: usize, name: &'static str) -> Result<&'a str, Bad> {
    text_opt(c, i, name)?.ok_or_else(|| (name, NULL_IN_NON_NULL.into()))
}

fn unknown<E: Coded>(name: &'static str, s: &str) -> Bad {
    (name, format!("unknown {} {}", E::WHAT, shown(s)))
}

impl<E: Coded> Decode for Code<E> {
    type View<'a> = TextColumn<'a>;
    type Value = E;
    type State = Parsed<E>;
    type Ready<'a> = &'a [E];

    fn view(a: &dyn Array) -> Option<TextColumn<'_>> {
        TextColumn::new(a)
    }

    fn row(v: &TextColumn<'_>, i: usize, name: &'static str, _: &mut Self::State) -> Result<E, Bad> {
        let s = text_req(v, i, name)?;
        E::parse(s).ok_or_else(|| unknown::<E>(name, s))
    }

    fn ready<'a>(v: &TextColumn<'a>, state: &'a mut Self::State, _: &mut Shared, n: usize) -> Option<&'a [E]> {
        parsed(v, state, n, E::parse)
    }

    #[inline]
    fn get(r: &&[E], i: usize) -> E {
        r[i]
    }
}

impl<E: Coded> Decode for NullableCode<E> {
    type View<'a> = TextColumn<'a>;
    type Value = Option<E>;
    type State = Parsed<Option<E>, E>;
    type Ready<'a> = &'a [Option<E>];

    fn view(a: &dyn Array) -> Option<TextColumn<'_>> {
        TextColumn::new(a)
    }

    fn row(v: &TextColumn<'_>, i: usize, name: &'static str, _: &mut Self::State) -> Result<Option<E>, Bad> {
        match text_opt(v, i, name)? {
            None => Ok(None),
            Some(s) => E::parse(s).map(Some).ok_or_else(|| unknown::<E>(name, s)),
        }
    }

    fn ready<'a>(v: &TextColumn<'a>, state: &'a mut Self::State, _: &mut Shared, n: usize) -> Option<&'a [Option<E>]> {
        let (memo, out) = state;
        (memo.column(v, E::parse, out) && out.len() == n).then_some(out.as_slice())
    }

    #[inline]
    fn get(r: &&[Option<E>], i: usize) -> Option<E> {
        r[i]
    }
}

/// A canonical address from its text.
pub(super) fn parse_addr(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>().ok().map(canonical_ip)
}

impl Decode for IpText {
    type View<'a> = TextColumn<'a>;
    type Value = IpAddr;
    type State = Parsed<IpAddr>;
    type Ready<'a> = &'a [IpAddr];

    fn view(a: &dyn Array) -> Option<TextColumn<'_>> {
        TextColumn::new(a)
    }

    fn row(v: &TextColumn<'_>, i: usize, name: &'static str, _: &mut Self::State) -> Result<IpAddr, Bad> {
        let s = text_req(v, i, name)?;
        parse_addr(s).ok_or_else(|| (name, format!("not an IP address: {}", shown(s))))
    }

    fn ready<'a>(v: &TextColumn<'a>, state: &'a mut Self::State, _: &mut Shared, n: usize) -> Option<&'a [IpAddr]> {
        parsed(v, state, n, parse_addr)
    }

    #[inline]
    fn get(r: &&[IpAddr], i: usize) -> IpAddr {
        r[i]
    }
}

/// The state of a text column decoded into shared strings: per batch for
/// [`Decode::row`], across batches for [`Decode::ready`].
#[derive(Default)]
pub(super) struct SharedState {
    rows: SharedText,
    fast: Parsed<Arc<str>>,
}

/// [`Decode`] for the text columns decoded into shared strings.
macro_rules! shared_text {
    ($($store:ty),*) => {$(
        impl Decode for $store {
            type View<'a> = TextColumn<'a>;
            type Value = Arc<str>;
            type State = SharedState;
            type Ready<'a> = &'a [Arc<str>];

            fn view(a: &dyn Array) -> Option<TextColumn<'_>> {
                TextColumn::new(a)
            }

            fn row(v: &TextColumn<'_>, i: usize, name: &'static str, state: &mut SharedState) -> Result<Arc<str>, Bad> {
                state
                    .rows
                    .get(v, i)
                    .map_err(|d| (name, d))?
                    .ok_or_else(|| (name, NULL_IN_NON_NULL.into()))
            }

            fn start_batch(state: &mut SharedState, v: &TextColumn<'_>) {
                state.rows.start_batch(v);
            }


            fn ready<'a>(
                v: &TextColumn<'a>,
                state: &'a mut SharedState,
                shared: &mut Shared,
                n: usize,
            ) -> Option<&'a [Arc<str>]> {
                let interned = &mut shared.interned;
                parsed(v, &mut state.fast, n, |s| Some(intern(interned, s)))
            }

            #[inline]
            fn get(r: &&[Arc<str>], i: usize) -> Arc<str> {
                Arc::clone(&r[i])
            }
        }
    )*};
}
shared_text!(CommText, ProbeName);

/// The views, the state and the two decoders, from [`event_columns!`].
macro_rules! decoders {
    (
        time {
            $(#[$wm:meta])* $w:ident : $wc:ident = $ws:ty,
            $(#[$mm:meta])* $m:ident : $mc:ident = $ms:ty $(,)?
        }
        v1 { $( $(#[$am:meta])* $a:ident : $ac:ident = $as:ty ),* $(,)? }
        v2 { $( $(#[$bm:meta])* $b:ident : $bc:ident = $bs:ty ),* $(,)? }
        tcp { $( $(#[$tm:meta])* $t:ident : $tc:ident = $ts:ty ),* $(,)? }
    ) => {
        /// Typed views of one record batch's columns (all but `ts`, which
        /// the reader computes from `mono_ns`).
        struct Columns<'a> {
            $m: <$ms as Decode>::View<'a>,
            $( $a: <$as as Decode>::View<'a>, )*
            /// `None` for a v1 file.
            v2: Option<ColumnsV2<'a>>,
        }

        /// Typed views of the columns schema v2 added.
        struct ColumnsV2<'a> {
            $( $b: <$bs as Decode>::View<'a>, )*
            $( $t: <$ts as Decode>::View<'a>, )*
        }

        impl<'a> Columns<'a> {
            fn new(path: &Path, batch: &'a RecordBatch, v2: bool) -> Result<Self, FormatError> {
                let n = batch.num_rows();
                let bad = |name: &str, detail: &str| FormatError::BadColumn {
                    path: path.to_path_buf(),
                    column: name.to_owned(),
                    detail: detail.to_owned(),
                };
                let column = |name: &str| -> Result<&'a dyn Array, FormatError> {
                    let a = batch
                        .column_by_name(name)
                        .ok_or_else(|| bad(name, "missing from record batch"))?;
                    if a.len() != n {
                        return Err(bad(name, "length differs from the record batch"));
                    }
                    Ok(a.as_ref())
                };
                fn view<'b, S: Decode>(
                    a: &'b dyn Array,
                    name: &str,
                    bad: &dyn Fn(&str, &str) -> FormatError,
                ) -> Result<S::View<'b>, FormatError> {
                    S::view(a).ok_or_else(|| bad(name, "unexpected type in record batch"))
                }
                let v2 = if v2 {
                    Some(ColumnsV2 {
                        $( $b: view::<$bs>(column(col::$bc)?, col::$bc, &bad)?, )*
                        $( $t: view::<$ts>(column(col::$tc)?, col::$tc, &bad)?, )*
                    })
                } else {
                    None
                };
                Ok(Columns {
                    $m: view::<$ms>(column(col::$mc)?, col::$mc, &bad)?,
                    $( $a: view::<$as>(column(col::$ac)?, col::$ac, &bad)?, )*
                    v2,
                })
            }
        }

        /// Decoding state carried from batch to batch: each column's, and
        /// what they share.
        #[derive(Default)]
        pub(super) struct TextState {
            $m: <$ms as Decode>::State,
            $( $a: <$as as Decode>::State, )*
            $( $b: <$bs as Decode>::State, )*
            $( $t: <$ts as Decode>::State, )*
            shared: Shared,
        }

        /// Row `i` of `c`, or its first bad value (in file order).
        fn decode_row(c: &Columns<'_>, i: usize, st: &mut TextState) -> Result<Event, Bad> {
            let $m = <$ms as Decode>::row(&c.$m, i, col::$mc, &mut st.$m)?;
            $( let $a = <$as as Decode>::row(&c.$a, i, col::$ac, &mut st.$a)?; )*
            $(
                let $b = match &c.v2 {
                    None => <$bs as Absent>::absent(&st.shared),
                    Some(v) => <$bs as Decode>::row(&v.$b, i, col::$bc, &mut st.$b)?,
                };
            )*
            $(
                let $t = match &c.v2 {
                    None => <$ts as Absent>::absent(&st.shared),
                    Some(v) => <$ts as Decode>::row(&v.$t, i, col::$tc, &mut st.$t)?,
                };
            )*
            Ok(Event { $m, $( $a, )* $( $b, )* tcp: TcpInfo { $( $t ),* } })
        }

        /// Prepares [`decode_row`] for the batch of `c`.
        fn start_batch(c: &Columns<'_>, st: &mut TextState) {
            <$ms as Decode>::start_batch(&mut st.$m, &c.$m);
            $( <$as as Decode>::start_batch(&mut st.$a, &c.$a); )*
            if let Some(v) = &c.v2 {
                $( <$bs as Decode>::start_batch(&mut st.$b, &v.$b); )*
                $( <$ts as Decode>::start_batch(&mut st.$t, &v.$t); )*
            }
        }

        /// Decodes a whole batch of `n` rows a column at a time, each
        /// distinct dictionary value (event kinds, states, addresses,
        /// comms) parsed once. Returns `false`, having appended nothing,
        /// when any row is invalid: [`decode_batch`] then decodes row by
        /// row to report the first bad value exactly, after the rows
        /// before it.
        fn decode_fast(c: &Columns<'_>, n: usize, st: &mut TextState, out: &mut VecDeque<Event>) -> bool {
            let shared = &mut st.shared;
            let Some($m) = <$ms as Decode>::ready(&c.$m, &mut st.$m, shared, n) else {
                return false;
            };
            $(
                let Some($a) = <$as as Decode>::ready(&c.$a, &mut st.$a, shared, n) else {
                    return false;
                };
            )*
            let v2 = match &c.v2 {
                None => None,
                Some(v) => {
                    $(
                        let Some($b) = <$bs as Decode>::ready(&v.$b, &mut st.$b, shared, n) else {
                            return false;
                        };
                    )*
                    $(
                        let Some($t) = <$ts as Decode>::ready(&v.$t, &mut st.$t, shared, n) else {
                            return false;
                        };
                    )*
                    Some(($( $b, )* $( $t, )*))
                }
            };
            let shared = &st.shared;
            for i in 0..n {
                let $m = <$ms as Decode>::get(&$m, i);
                $( let $a = <$as as Decode>::get(&$a, i); )*
                let ($( $b, )* $( $t, )*) = match &v2 {
                    None => ($( <$bs as Absent>::absent(shared), )* $( <$ts as Absent>::absent(shared), )*),
                    Some(($( $b, )* $( $t, )*)) => {
                        ($( <$bs as Decode>::get($b, i), )* $( <$ts as Decode>::get($t, i), )*)
                    }
                };
                out.push_back(Event { $m, $( $a, )* $( $b, )* tcp: TcpInfo { $( $t ),* } });
            }
            true
        }
    };
}
event_columns!(decoders);

/// Decodes `batch` (with the v2 columns when `v2`) into `out` up to the first bad row.
pub(super) fn decode_batch(
    path: &Path,
    batch: &RecordBatch,
    row0: u64,
    v2: bool,
    text: &mut TextState,
    out: &mut VecDeque<Event>,
) -> Result<(), FormatError> {
    let cols = Columns::new(path, batch, v2)?;
    let before = out.len();
    if decode_fast(&cols, batch.num_rows(), text, out) {
        return Ok(());
    }
    // Some row is bad: decode row by row to find and report the first one.
    out.truncate(before);
    start_batch(&cols, text);
    for i in 0..batch.num_rows() {
        match decode_row(&cols, i, text) {
            Ok(ev) => out.push_back(ev),
            Err((column, detail)) => {
                return Err(FormatError::InvalidValue {
                    path: path.to_path_buf(),
                    row: row0 + i as u64,
                    column: column.to_owned(),
                    detail,
                })
            }
        }
    }
    Ok(())
}
