//! Record batches into [`Event`]s: a whole batch a column at a time
//! ([`decode_fast`], each distinct dictionary value parsed once), or, when
//! some row is bad, row by row up to it so that the error names its row and
//! column ([`decode_row`]).
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
use crate::event::{canonical_ip, Attribution, Event, EventKind, Family, TcpInfo, TcpState};
use crate::schema::{col, shown};
use crate::FormatError;

/// Decoding state carried from batch to batch.
#[derive(Default)]
pub(super) struct TextState {
    comm: SharedText,
    probe: SharedText,
    /// The `probe` of v1 rows.
    empty: Arc<str>,
    /// The column-at-a-time decoder's state.
    fast: FastState,
    /// Its distinct `comm`/`probe` strings (at most [`MAX_INTERNED`]).
    interned: HashSet<Arc<str>>,
}

/// Typed views of one record batch's columns.
struct Columns<'a> {
    mono_ns: &'a PrimitiveArray<Int64Type>,
    kind: TextColumn<'a>,
    pid: &'a PrimitiveArray<UInt32Type>,
    tid: &'a PrimitiveArray<UInt32Type>,
    comm: TextColumn<'a>,
    family: TextColumn<'a>,
    saddr: TextColumn<'a>,
    daddr: TextColumn<'a>,
    sport: &'a PrimitiveArray<UInt16Type>,
    dport: &'a PrimitiveArray<UInt16Type>,
    oldstate: TextColumn<'a>,
    newstate: TextColumn<'a>,
    sk_err: &'a PrimitiveArray<Int32Type>,
    netns: &'a PrimitiveArray<UInt32Type>,
    stack_id: &'a PrimitiveArray<Int64Type>,
    /// `None` for a v1 file.
    v2: Option<ColumnsV2<'a>>,
}

/// Typed views of the columns schema v2 added.
struct ColumnsV2<'a> {
    probe: TextColumn<'a>,
    cookie: &'a PrimitiveArray<UInt64Type>,
    cgroup_id: &'a PrimitiveArray<UInt64Type>,
    attribution: TextColumn<'a>,
    snd_wnd: &'a PrimitiveArray<UInt32Type>,
    rcv_wnd: &'a PrimitiveArray<UInt32Type>,
    srtt_us: &'a PrimitiveArray<UInt32Type>,
    snd_cwnd: &'a PrimitiveArray<UInt32Type>,
    bytes_acked: &'a PrimitiveArray<UInt64Type>,
    bytes_received: &'a PrimitiveArray<UInt64Type>,
    window: &'a PrimitiveArray<UInt32Type>,
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
        fn prim<'b, T: ArrowPrimitiveType>(
            a: &'b dyn Array,
            name: &str,
            bad: &dyn Fn(&str, &str) -> FormatError,
        ) -> Result<&'b PrimitiveArray<T>, FormatError> {
            a.as_primitive_opt::<T>()
                .ok_or_else(|| bad(name, "unexpected type in record batch"))
        }
        let text = |name: &str| -> Result<TextColumn<'a>, FormatError> {
            TextColumn::new(column(name)?).ok_or_else(|| bad(name, "unexpected type in record batch"))
        };
        let v2 = if v2 {
            Some(ColumnsV2 {
                probe: text(col::PROBE)?,
                cookie: prim(column(col::COOKIE)?, col::COOKIE, &bad)?,
                cgroup_id: prim(column(col::CGROUP_ID)?, col::CGROUP_ID, &bad)?,
                attribution: text(col::ATTRIBUTION)?,
                snd_wnd: prim(column(col::SND_WND)?, col::SND_WND, &bad)?,
                rcv_wnd: prim(column(col::RCV_WND)?, col::RCV_WND, &bad)?,
                srtt_us: prim(column(col::SRTT_US)?, col::SRTT_US, &bad)?,
                snd_cwnd: prim(column(col::SND_CWND)?, col::SND_CWND, &bad)?,
                bytes_acked: prim(column(col::BYTES_ACKED)?, col::BYTES_ACKED, &bad)?,
                bytes_received: prim(column(col::BYTES_RECEIVED)?, col::BYTES_RECEIVED, &bad)?,
                window: prim(column(col::WINDOW)?, col::WINDOW, &bad)?,
            })
        } else {
            None
        };
        Ok(Columns {
            v2,
            mono_ns: prim(column(col::MONO_NS)?, col::MONO_NS, &bad)?,
            kind: text(col::KIND)?,
            pid: prim(column(col::PID)?, col::PID, &bad)?,
            tid: prim(column(col::TID)?, col::TID, &bad)?,
            comm: text(col::COMM)?,
            family: text(col::FAMILY)?,
            saddr: text(col::SADDR)?,
            daddr: text(col::DADDR)?,
            sport: prim(column(col::SPORT)?, col::SPORT, &bad)?,
            dport: prim(column(col::DPORT)?, col::DPORT, &bad)?,
            oldstate: text(col::OLDSTATE)?,
            newstate: text(col::NEWSTATE)?,
            sk_err: prim(column(col::SK_ERR)?, col::SK_ERR, &bad)?,
            netns: prim(column(col::NETNS)?, col::NETNS, &bad)?,
            stack_id: prim(column(col::STACK_ID)?, col::STACK_ID, &bad)?,
        })
    }
}

/// A bad value: (column, detail).
type Bad = (&'static str, String);

const NULL_IN_NON_NULL: &str = "null in a non-null column";

fn req<T: ArrowPrimitiveType>(a: &PrimitiveArray<T>, i: usize, name: &'static str) -> Result<T::Native, Bad> {
    if a.is_null(i) {
        Err((name, NULL_IN_NON_NULL.into()))
    } else {
        Ok(a.value(i))
    }
}

fn opt<T: ArrowPrimitiveType>(a: &PrimitiveArray<T>, i: usize) -> Option<T::Native> {
    (!a.is_null(i)).then(|| a.value(i))
}

fn text_opt<'a>(c: &TextColumn<'a>, i: usize, name: &'static str) -> Result<Option<&'a str>, Bad> {
    c.get(i).map_err(|d| (name, d))
}

fn text_req<'a>(c: &TextColumn<'a>, i: usize, name: &'static str) -> Result<&'a str, Bad> {
    text_opt(c, i, name)?.ok_or_else(|| (name, NULL_IN_NON_NULL.into()))
}

fn addr(c: &TextColumn<'_>, i: usize, name: &'static str) -> Result<IpAddr, Bad> {
    let s = text_req(c, i, name)?;
    s.parse::<IpAddr>()
        .map(canonical_ip)
        .map_err(|_| (name, format!("not an IP address: {}", shown(s))))
}

fn state(c: &TextColumn<'_>, i: usize, name: &'static str) -> Result<Option<TcpState>, Bad> {
    match text_opt(c, i, name)? {
        None => Ok(None),
        Some(s) => TcpState::parse(s)
            .map(Some)
            .ok_or_else(|| (name, format!("unknown TCP state {}", shown(s)))),
    }
}

fn shared_req(t: &mut SharedText, c: &TextColumn<'_>, i: usize, name: &'static str) -> Result<Arc<str>, Bad> {
    t.get(c, i)
        .map_err(|d| (name, d))?
        .ok_or_else(|| (name, NULL_IN_NON_NULL.into()))
}

fn decode_row(c: &Columns<'_>, i: usize, text: &mut TextState) -> Result<Event, Bad> {
    let kind_s = text_req(&c.kind, i, col::KIND)?;
    let kind = EventKind::parse(kind_s).ok_or_else(|| (col::KIND, format!("unknown event kind {}", shown(kind_s))))?;
    let family_s = text_req(&c.family, i, col::FAMILY)?;
    let family =
        Family::parse(family_s).ok_or_else(|| (col::FAMILY, format!("unknown address family {}", shown(family_s))))?;
    let (probe, cookie, cgroup_id, attribution, tcp) = match &c.v2 {
        None => (Arc::clone(&text.empty), 0, 0, Attribution::Unknown, TcpInfo::default()),
        Some(v) => {
            let attr_s = text_req(&v.attribution, i, col::ATTRIBUTION)?;
            let attribution = Attribution::parse(attr_s)
                .ok_or_else(|| (col::ATTRIBUTION, format!("unknown attribution {}", shown(attr_s))))?;
            let tcp = TcpInfo {
                snd_wnd: opt(v.snd_wnd, i),
                rcv_wnd: opt(v.rcv_wnd, i),
                srtt_us: opt(v.srtt_us, i),
                snd_cwnd: opt(v.snd_cwnd, i),
                bytes_acked: opt(v.bytes_acked, i),
                bytes_received: opt(v.bytes_received, i),
                window: opt(v.window, i),
            };
            (
                shared_req(&mut text.probe, &v.probe, i, col::PROBE)?,
                req(v.cookie, i, col::COOKIE)?,
                req(v.cgroup_id, i, col::CGROUP_ID)?,
                attribution,
                tcp,
            )
        }
    };
    Ok(Event {
        mono_ns: req(c.mono_ns, i, col::MONO_NS)?,
        kind,
        pid: req(c.pid, i, col::PID)?,
        tid: req(c.tid, i, col::TID)?,
        comm: shared_req(&mut text.comm, &c.comm, i, col::COMM)?,
        family,
        saddr: addr(&c.saddr, i, col::SADDR)?,
        daddr: addr(&c.daddr, i, col::DADDR)?,
        sport: req(c.sport, i, col::SPORT)?,
        dport: req(c.dport, i, col::DPORT)?,
        oldstate: state(&c.oldstate, i, col::OLDSTATE)?,
        newstate: state(&c.newstate, i, col::NEWSTATE)?,
        sk_err: req(c.sk_err, i, col::SK_ERR)?,
        netns: req(c.netns, i, col::NETNS)?,
        stack_id: opt(c.stack_id, i),
        probe,
        cookie,
        cgroup_id,
        attribution,
        tcp,
    })
}

/// State of the column-at-a-time decoder ([`decode_fast`]), kept from batch
/// to batch: parsed dictionaries and per-column scratch vectors.
#[derive(Default)]
struct FastState {
    kind: (Memo<EventKind>, Vec<Option<EventKind>>),
    family: (Memo<Family>, Vec<Option<Family>>),
    saddr: (Memo<IpAddr>, Vec<Option<IpAddr>>),
    daddr: (Memo<IpAddr>, Vec<Option<IpAddr>>),
    oldstate: (Memo<TcpState>, Vec<Option<TcpState>>),
    newstate: (Memo<TcpState>, Vec<Option<TcpState>>),
    attribution: (Memo<Attribution>, Vec<Option<Attribution>>),
    comm: (Memo<Arc<str>>, Vec<Option<Arc<str>>>),
    probe: (Memo<Arc<str>>, Vec<Option<Arc<str>>>),
}

pub(super) fn parse_addr(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>().ok().map(canonical_ip)
}

/// A non-null primitive column's values; `None` if it holds a null.
fn required<T: ArrowPrimitiveType>(a: &PrimitiveArray<T>) -> Option<&[T::Native]> {
    (a.null_count() == 0).then(|| a.values().as_ref())
}

/// Row `i` of a nullable primitive column.
#[inline]
fn nullable<T: ArrowPrimitiveType>(a: &PrimitiveArray<T>, i: usize) -> Option<T::Native> {
    match a.nulls() {
        Some(n) if n.is_null(i) => None,
        _ => a.values().get(i).copied(),
    }
}

/// Decodes a whole batch a column at a time, each distinct dictionary value
/// (event kinds, states, addresses, comms) parsed once. Returns `false`,
/// having appended nothing, when any row is invalid: [`decode_batch`] then
/// decodes row by row to report the first bad value exactly as it always
/// did, after the rows before it.
fn decode_fast(c: &Columns<'_>, text: &mut TextState, out: &mut VecDeque<Event>) -> bool {
    let n = c.kind.len();
    let f = &mut text.fast;
    let ok = f.kind.0.column(&c.kind, true, EventKind::parse, &mut f.kind.1)
        && f.family.0.column(&c.family, true, Family::parse, &mut f.family.1)
        && f.saddr.0.column(&c.saddr, true, parse_addr, &mut f.saddr.1)
        && f.daddr.0.column(&c.daddr, true, parse_addr, &mut f.daddr.1)
        && f.oldstate
            .0
            .column(&c.oldstate, false, TcpState::parse, &mut f.oldstate.1)
        && f.newstate
            .0
            .column(&c.newstate, false, TcpState::parse, &mut f.newstate.1);
    if !ok {
        return false;
    }
    let interned = &mut text.interned;
    let ok = f
        .comm
        .0
        .column(&c.comm, true, |s| Some(intern(interned, s)), &mut f.comm.1);
    if !ok {
        return false;
    }
    let (Some(mono_ns), Some(pid), Some(tid), Some(sport), Some(dport), Some(sk_err), Some(netns)) = (
        required(c.mono_ns),
        required(c.pid),
        required(c.tid),
        required(c.sport),
        required(c.dport),
        required(c.sk_err),
        required(c.netns),
    ) else {
        return false;
    };
    let v2 = match &c.v2 {
        None => None,
        Some(v) => {
            let ok = f
                .attribution
                .0
                .column(&v.attribution, true, Attribution::parse, &mut f.attribution.1)
                && f.probe
                    .0
                    .column(&v.probe, true, |s| Some(intern(interned, s)), &mut f.probe.1);
            let (true, Some(cookie), Some(cgroup_id)) = (ok, required(v.cookie), required(v.cgroup_id)) else {
                return false;
            };
            Some((v, cookie, cgroup_id))
        }
    };
    let lens = [
        f.kind.1.len(),
        f.family.1.len(),
        f.saddr.1.len(),
        f.daddr.1.len(),
        f.oldstate.1.len(),
        f.newstate.1.len(),
        f.comm.1.len(),
        mono_ns.len(),
        pid.len(),
        tid.len(),
        sport.len(),
        dport.len(),
        sk_err.len(),
        netns.len(),
    ];
    if lens.iter().any(|&l| l != n) {
        return false;
    }
    if let Some((_, cookie, cgroup_id)) = &v2 {
        if f.attribution.1.len() != n || f.probe.1.len() != n || cookie.len() != n || cgroup_id.len() != n {
            return false;
        }
    }
    let rows = f
        .kind
        .1
        .iter()
        .zip(&f.family.1)
        .zip(f.saddr.1.iter().zip(&f.daddr.1))
        .zip(f.oldstate.1.iter().zip(&f.newstate.1))
        .zip(&f.comm.1)
        .enumerate();
    for (i, ((((kind, family), (saddr, daddr)), (oldstate, newstate)), comm)) in rows {
        // Required columns were checked above: every `?` here holds a value.
        let (Some(kind), Some(family), Some(saddr), Some(daddr), Some(comm)) = (*kind, *family, *saddr, *daddr, comm)
        else {
            return false;
        };
        let (probe, cookie, cgroup_id, attribution, tcp) = match &v2 {
            None => (Arc::clone(&text.empty), 0, 0, Attribution::Unknown, TcpInfo::default()),
            Some((v, cookie, cgroup_id)) => {
                let (Some(Some(probe)), Some(Some(attribution))) = (f.probe.1.get(i), f.attribution.1.get(i)) else {
                    return false;
                };
                let tcp = TcpInfo {
                    snd_wnd: nullable(v.snd_wnd, i),
                    rcv_wnd: nullable(v.rcv_wnd, i),
                    srtt_us: nullable(v.srtt_us, i),
                    snd_cwnd: nullable(v.snd_cwnd, i),
                    bytes_acked: nullable(v.bytes_acked, i),
                    bytes_received: nullable(v.bytes_received, i),
                    window: nullable(v.window, i),
                };
                (Arc::clone(probe), cookie[i], cgroup_id[i], *attribution, tcp)
            }
        };
        out.push_back(Event {
            mono_ns: mono_ns[i],
            kind,
            pid: pid[i],
            tid: tid[i],
            comm: Arc::clone(comm),
            family,
            saddr,
            daddr,
            sport: sport[i],
            dport: dport[i],
            oldstate: *oldstate,
            newstate: *newstate,
            sk_err: sk_err[i],
            netns: netns[i],
            stack_id: nullable(c.stack_id, i),
            probe,
            cookie,
            cgroup_id,
            attribution,
            tcp,
        });
    }
    true
}

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
    debug_assert_eq!(cols.kind.len(), batch.num_rows());
    let before = out.len();
    if decode_fast(&cols, text, out) {
        return Ok(());
    }
    // Some row is bad: decode row by row to find and report the first one.
    out.truncate(before);
    text.comm.start_batch(&cols.comm);
    if let Some(v) = &cols.v2 {
        text.probe.start_batch(&v.probe);
    }
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
