//! Writer throughput on the recorder's hottest workload: rows shaped like
//! the benchmark's loopback connection churn (`record/examples/churn.rs`),
//! or the rows of a real recording (`--from`), loaded in memory first so
//! that only `EventWriter::push` and `finish` are timed. Used to tune the
//! writer (`bench/README.md`); not a test.
//!
//! ```text
//! cargo run --release -p deeptcp-format --example writebench -- [--events N | --from FILE] [--out FILE] [--zstd-level L]
//! ```
//!
//! Prints one JSON line: events, seconds, ns per event, bytes per event.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use deeptcp_format::testing;
use deeptcp_format::{
    Attribution, ClockAnchor, Event, EventKind, EventWriter, RecordingMeta, TcpInfo, TcpState, WriterOptions,
};

const USAGE: &str = "usage: writebench [--events N | --from FILE] [--out FILE] [--zstd-level L]";

struct Args {
    events: usize,
    from: Option<String>,
    out: String,
    level: i32,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        events: 2_000_000,
        from: None,
        out: "/tmp/deeptcp-writebench.parquet".into(),
        level: WriterOptions::default().zstd_level,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--events" => a.events = value()?.parse().map_err(|e| format!("--events: {e}"))?,
            "--out" => a.out = value()?,
            "--from" => a.from = Some(value()?),
            "--zstd-level" => a.level = value()?.parse().map_err(|e| format!("--zstd-level: {e}"))?,
            _ => return Err(USAGE.into()),
        }
    }
    Ok(a)
}

/// The rows of one churn connection, in the order the recorder sees them.
fn connection(i: u64, mono: &mut i64, comms: &[Arc<str>; 4], probes: &[Arc<str>; 3], out: &mut Vec<Event>) {
    use TcpState::*;
    let client_port = 32768 + (i % 28000) as u16;
    let (cookie_c, cookie_s) = (100_000 + 2 * i, 100_001 + 2 * i);
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let (client, acceptor) = (&comms[(i % 2) as usize], &comms[2 + (i % 2) as usize]);
    let pid = 5000;
    let mut row = |kind: EventKind, client_side: bool, old: Option<TcpState>, new: TcpState, probe: usize| {
        *mono += 1_700;
        let (sport, dport) = if client_side {
            (client_port, 40000)
        } else {
            (40000, client_port)
        };
        let open = !matches!(new, Close | SynSent | Listen);
        let n = i as u32;
        out.push(Event {
            mono_ns: *mono,
            pid,
            tid: pid + 1 + (i % 4) as u32,
            comm: Arc::clone(if client_side { client } else { acceptor }),
            saddr: lo,
            daddr: lo,
            sport,
            dport,
            oldstate: old,
            newstate: Some(new),
            netns: 4026531840,
            probe: Arc::clone(&probes[probe]),
            cookie: if client_side { cookie_c } else { cookie_s },
            cgroup_id: 7000,
            attribution: if client_side {
                Attribution::Task
            } else {
                Attribution::Listener
            },
            tcp: if open {
                TcpInfo {
                    snd_wnd: Some(65483),
                    rcv_wnd: Some(65483),
                    srtt_us: Some(20 + n % 13),
                    snd_cwnd: Some(10),
                    bytes_acked: Some(1 + u64::from(n % 3)),
                    bytes_received: Some(1 + u64::from(n % 2)),
                    window: None,
                }
            } else {
                TcpInfo::default()
            },
            ..testing::event(kind)
        });
    };
    let sc = EventKind::StateChange;
    row(sc, true, Some(Close), SynSent, 0);
    row(EventKind::Connect, true, None, SynSent, 1);
    row(sc, false, Some(Listen), SynRecv, 0);
    row(sc, true, Some(SynSent), Established, 0);
    row(sc, false, Some(SynRecv), Established, 0);
    row(EventKind::Accept, false, None, Established, 1);
    row(sc, true, Some(Established), FinWait1, 0);
    row(EventKind::FinSent, true, None, Established, 1);
    row(sc, false, Some(Established), CloseWait, 0);
    row(EventKind::FinRecv, false, None, Established, 1);
    row(sc, true, Some(FinWait1), FinWait2, 0);
    row(sc, false, Some(CloseWait), LastAck, 0);
    row(EventKind::FinSent, false, None, CloseWait, 1);
    row(sc, true, Some(FinWait2), Close, 0);
    row(EventKind::FinRecv, true, None, FinWait2, 1);
    row(EventKind::DestroySock, true, None, Close, 2);
    row(sc, false, Some(LastAck), Close, 0);
    row(EventKind::DestroySock, false, None, Close, 2);
}

fn run(a: &Args) -> Result<String, String> {
    let comms = ["client0", "client1", "acceptor0", "acceptor1"].map(Arc::<str>::from);
    let probes = [
        "tp_btf:inet_sock_set_state",
        "inferred:inet_sock_set_state",
        "tp_btf:tcp_destroy_sock",
    ]
    .map(Arc::<str>::from);
    let bench_meta = RecordingMeta {
        host: "bench".into(),
        clock: ClockAnchor {
            realtime_ns: 1_776_160_800_000_000_000,
            monotonic_ns: 1_000_000_000_000,
        },
        ..RecordingMeta::default()
    };
    // A re-encoded recording keeps its metadata, so that it reads back
    // (e.g. `analyze --json`) exactly like the original.
    let (events, meta) = match &a.from {
        Some(path) => {
            let reader =
                deeptcp_format::RecordingReader::open(std::path::Path::new(path)).map_err(|e| e.to_string())?;
            let meta = reader.meta().clone();
            let events = reader
                .events()
                .collect::<Result<Vec<Event>, _>>()
                .map_err(|e| e.to_string())?;
            (events, meta)
        }
        None => {
            let mut events = Vec::with_capacity(a.events + 20);
            let mut mono = 1_000_000_000_000;
            let mut i = 0;
            while events.len() < a.events {
                connection(i, &mut mono, &comms, &probes, &mut events);
                i += 1;
            }
            events.truncate(a.events);
            (events, bench_meta)
        }
    };

    let opts = WriterOptions {
        zstd_level: a.level,
        ..WriterOptions::default()
    };
    let file = File::create(&a.out).map_err(|e| format!("cannot create {}: {e}", a.out))?;
    let start = Instant::now();
    let summary = encode(file, &meta, opts, &events).map_err(|e| e.to_string())?;
    let secs = start.elapsed().as_secs_f64();
    Ok(format!(
        "{{\"events\":{},\"secs\":{:.3},\"ns_per_event\":{:.1},\"bytes_per_event\":{:.2},\"zstd_level\":{}}}",
        summary.rows,
        secs,
        secs * 1e9 / summary.rows as f64,
        summary.bytes as f64 / summary.rows as f64,
        a.level
    ))
}

/// The timed part: one function, so that instruction counts can be taken
/// of it alone (`valgrind --tool=callgrind --collect-atstart=no
/// --toggle-collect='*writebench::encode*'`).
#[inline(never)]
fn encode(
    file: File,
    meta: &RecordingMeta,
    opts: WriterOptions,
    events: &[Event],
) -> Result<deeptcp_format::WriteSummary, deeptcp_format::FormatError> {
    let mut w = EventWriter::new(file, meta, opts)?;
    for ev in events {
        w.push(ev)?;
    }
    w.finish(0)
}

fn main() -> ExitCode {
    let result = parse_args().and_then(|a| run(&a));
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("writebench: {e}");
            ExitCode::FAILURE
        }
    }
}
