//! record's user-side cost per row, without the kernel: the rows of a real
//! recording are turned back into the wire records the programs sent
//! (`deeptcp_common::WireEvent`; the inferred connect/accept/FIN rows are
//! left out and re-made by the converter from their `state_change` records,
//! whose flags are set as the kernel set them), then replayed through the
//! code `record` runs for them: the drain loop's copy into batches, the
//! converter filling column buffers, the writer encoding them. Only that part is timed (one function, so that
//! instruction counts can be taken of it alone:
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*recordbench::replay*'`).
//! Snapshot rows (written once at start) are not replayed. Used to tune
//! the recorder (`bench/README.md`); not a test.
//!
//! ```text
//! cargo run --release -p deeptcp-record --example recordbench -- --from FILE [--out FILE] [--check]
//! ```
//!
//! Prints one JSON line: records, rows, seconds, ns per row, bytes per row.
//! `--check` reads the output back and compares it with the replayed rows;
//! `--observed-only` infers no rows (the cost of storing only the rows the
//! kernel's records stand for).

use std::fs::File;
use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::Instant;

use deeptcp_common::{flags, probe, WireEvent, AF_INET, AF_INET6, NO_STACK};
use deeptcp_format::{Attribution, Event, EventKind, EventWriter, Family, RecordingMeta, RowBatch, WriterOptions};
use deeptcp_record::convert::{Converter, Inference};

const USAGE: &str = "usage: recordbench --from FILE [--out FILE] [--check] [--observed-only]";

struct Args {
    from: String,
    out: String,
    check: bool,
    /// Infer nothing: only the rows of the records themselves (what storing
    /// observed rows only and deriving the inferred kinds when reading
    /// would leave the recorder to write).
    observed_only: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        from: String::new(),
        out: "/tmp/deeptcp-recordbench.parquet".into(),
        check: false,
        observed_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--from" => a.from = value()?,
            "--out" => a.out = value()?,
            "--check" => a.check = true,
            "--observed-only" => a.observed_only = true,
            _ => return Err(USAGE.into()),
        }
    }
    if a.from.is_empty() {
        return Err(USAGE.into());
    }
    Ok(a)
}

/// The probe names of the replayed recording, by the wire ids given to them.
static NAMES: OnceLock<Vec<Option<String>>> = OnceLock::new();

fn probe_name(id: u8) -> Option<String> {
    NAMES.get()?.get(usize::from(id))?.clone()
}

const INFERRED: &str = "inferred:inet_sock_set_state";

/// Wire probe ids for the recording's probe names (the inference rung keeps its own).
fn assign_probe_ids(events: &[Event]) -> Result<Vec<Option<String>>, String> {
    let mut names: Vec<Option<String>> = vec![None; 256];
    names[usize::from(probe::INFERRED_SET_STATE)] = Some(INFERRED.to_owned());
    for ev in events {
        if names.iter().any(|n| n.as_deref() == Some(&*ev.probe)) {
            continue;
        }
        let free = (1..256)
            .find(|&i| names[i].is_none())
            .ok_or("more than 254 distinct probes")?;
        names[free] = Some(ev.probe.to_string());
    }
    Ok(names)
}

fn wire_kind(k: EventKind) -> Option<u8> {
    k.on_wire().then_some(k as u8)
}

/// The record the programs sent for `ev`; `inferred_next`: the converter
/// made an inferred row from it (so the kernel had set the flags for that).
fn wire_of(ev: &Event, probe_id: u8, inferred_next: bool) -> Option<WireEvent> {
    let mut w = WireEvent::EMPTY;
    w.ts_ns = u64::try_from(ev.mono_ns).ok()?;
    w.kind = wire_kind(ev.kind)?;
    w.probe = probe_id;
    w.attribution = match ev.attribution {
        Attribution::Backfill => Attribution::Unknown,
        a => a,
    } as u8;
    w.pid_tgid = (u64::from(ev.pid) << 32) | u64::from(ev.tid);
    let n = ev.comm.len().min(16);
    w.comm[..n].copy_from_slice(&ev.comm.as_bytes()[..n]);
    w.cgroup_id = ev.cgroup_id;
    w.family = match ev.family {
        Family::Inet => AF_INET,
        Family::Inet6 => AF_INET6,
    };
    let bytes = |a: IpAddr| -> [u8; 16] {
        match (ev.family, a) {
            (Family::Inet, IpAddr::V4(v4)) => {
                let mut b = [0; 16];
                b[..4].copy_from_slice(&v4.octets());
                b
            }
            (Family::Inet6, IpAddr::V4(v4)) => v4.to_ipv6_mapped().octets(),
            (_, IpAddr::V6(v6)) => v6.octets(),
        }
    };
    w.saddr = bytes(ev.saddr);
    w.daddr = bytes(ev.daddr);
    w.sport = ev.sport;
    w.dport = ev.dport;
    w.oldstate = ev.oldstate.map_or(0, |s| s as u8);
    w.newstate = ev.newstate.map_or(0, |s| s as u8);
    w.sk_err = ev.sk_err;
    w.netns = ev.netns;
    w.stack_id = match ev.stack_id {
        Some(id) => i32::try_from(id).ok()?,
        None => NO_STACK,
    };
    w.cookie = ev.cookie;
    let t = &ev.tcp;
    if let (Some(snd_wnd), Some(rcv_wnd), Some(srtt_us), Some(snd_cwnd), Some(acked), Some(received)) = (
        t.snd_wnd,
        t.rcv_wnd,
        t.srtt_us,
        t.snd_cwnd,
        t.bytes_acked,
        t.bytes_received,
    ) {
        w.flags |= flags::TCP_INFO;
        (w.snd_wnd, w.rcv_wnd, w.srtt_us, w.snd_cwnd) = (snd_wnd, rcv_wnd, srtt_us, snd_cwnd);
        (w.bytes_acked, w.bytes_received) = (acked, received);
    }
    if let Some(window) = t.window {
        w.flags |= flags::WINDOW;
        w.window = window;
    }
    if inferred_next {
        w.flags |= flags::SOCK_DONE | flags::NO_USER_SOCKET;
    }
    Some(w)
}

/// The replayed records, and the rows the converter makes of them.
fn to_wire(events: &[Event], names: &[Option<String>]) -> Result<(Vec<WireEvent>, Vec<Event>), String> {
    let id_of = |name: &str| {
        names
            .iter()
            .position(|n| n.as_deref() == Some(name))
            .and_then(|i| u8::try_from(i).ok())
    };
    let mut wires = Vec::with_capacity(events.len());
    let mut rows = Vec::with_capacity(events.len());
    for (i, ev) in events.iter().enumerate() {
        if ev.kind == EventKind::Snapshot {
            continue;
        }
        if &*ev.probe == INFERRED {
            // Made by the converter from the record before it.
            rows.push(ev.clone());
            continue;
        }
        let next = events.get(i + 1);
        let inferred_next =
            next.is_some_and(|n| &*n.probe == INFERRED && n.cookie == ev.cookie && n.mono_ns == ev.mono_ns);
        let id = id_of(&ev.probe).ok_or("probe without an id")?;
        let w = wire_of(ev, id, inferred_next).ok_or_else(|| format!("row {i} has no wire record: {ev:?}"))?;
        wires.push(w);
        rows.push(ev.clone());
    }
    Ok((wires, rows))
}

fn run(a: &Args) -> Result<String, String> {
    let reader = deeptcp_format::RecordingReader::open(Path::new(&a.from)).map_err(|e| e.to_string())?;
    let meta = reader.meta().clone();
    let events = reader
        .events()
        .collect::<Result<Vec<Event>, _>>()
        .map_err(|e| e.to_string())?;
    let names = assign_probe_ids(&events)?;
    let (wires, mut expected) = to_wire(&events, &names)?;
    if a.observed_only {
        expected.retain(|e| &*e.probe != INFERRED);
    }
    NAMES.set(names).map_err(|_| "names set twice")?;
    let inference = if a.observed_only {
        Inference::default()
    } else {
        Inference::from_statuses(&meta.probes, INFERRED)
    };

    let file = File::create(&a.out).map_err(|e| format!("cannot create {}: {e}", a.out))?;
    let start = Instant::now();
    let (rows, bytes) = replay(file, &meta, inference, &wires).map_err(|e| e.to_string())?;
    let secs = start.elapsed().as_secs_f64();
    if a.check {
        let back = deeptcp_format::RecordingReader::open(Path::new(&a.out))
            .and_then(|r| r.events().collect::<Result<Vec<Event>, _>>())
            .map_err(|e| e.to_string())?;
        if back.len() != expected.len() {
            return Err(format!("{} rows written, {} expected", back.len(), expected.len()));
        }
        if let Some(i) = (0..back.len()).find(|&i| back[i] != expected[i]) {
            return Err(format!(
                "row {i} differs:\n  written  {:?}\n  expected {:?}",
                back[i], expected[i]
            ));
        }
    }
    Ok(format!(
        "{{\"records\":{},\"rows\":{rows},\"secs\":{secs:.3},\"ns_per_row\":{:.1},\"bytes_per_row\":{:.2}{}}}",
        wires.len(),
        secs * 1e9 / rows as f64,
        bytes as f64 / rows as f64,
        if a.check { ",\"checked\":true" } else { "" }
    ))
}

/// Records per hand-over from the drain loop (its batch limit).
const DRAIN_BATCH: usize = 8192;

/// The timed part: what `record` does with the records from the ring
/// buffer on (1) its drain thread, which copies them into batches, and (2)
/// its writer thread, which converts them into column buffers and encodes
/// those (a batch of `batch_rows` rows at a time, its memory reused).
#[inline(never)]
fn replay(
    file: File,
    meta: &RecordingMeta,
    inference: Inference,
    wires: &[WireEvent],
) -> Result<(u64, u64), deeptcp_format::FormatError> {
    let opts = WriterOptions::default();
    let mut w = EventWriter::new(file, meta, opts)?;
    let mut conv = Converter::new(inference, Vec::new(), probe_name);
    let mut spare: Option<RowBatch> = None;
    for chunk in wires.chunks(DRAIN_BATCH) {
        let batch: Vec<WireEvent> = chunk.to_vec();
        for wire in &batch {
            let _ = conv.push(wire);
            if conv.len() + 1 >= opts.batch_rows {
                let mut rows = conv.take(spare.take());
                w.write_rows(&rows)?;
                rows.clear();
                spare = Some(rows);
            }
        }
    }
    w.write_rows(&conv.take(None))?;
    let s = w.finish(0)?;
    Ok((s.rows, s.bytes))
}

fn main() -> ExitCode {
    match parse_args().and_then(|a| run(&a)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("recordbench: {e}");
            ExitCode::FAILURE
        }
    }
}
