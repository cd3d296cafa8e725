//! The file contract from the outside: files written by `EventWriter` (and
//! the committed fixture) load into DuckDB, pandas and polars with the
//! documented column types (testdata/check_interop.py does the checking).
//!
//! Needs python3 with duckdb, pandas, polars (scripts/bootstrap installs
//! them). Without them the test skips with a printed reason, unless
//! `DEEPTCP_REQUIRE_INTEROP=1` (set by CI), where that is a failure.

use std::net::IpAddr;

use deeptcp_format::testing;
use deeptcp_format::testing::python::{check_interop, repo_root};
use deeptcp_format::{
    Attribution, ClockAnchor, Event, EventKind, EventWriter, Family, RecordingMeta, TcpInfo, TcpState, WriterOptions,
};

fn event(i: i64, kind: EventKind, v6: bool) -> Event {
    let (family, s, d): (Family, IpAddr, IpAddr) = if v6 {
        (Family::Inet6, "2001:db8::1".parse().unwrap(), "::1".parse().unwrap())
    } else {
        (Family::Inet, "10.0.0.1".parse().unwrap(), "192.0.2.7".parse().unwrap())
    };
    Event {
        mono_ns: 1_000_000_000 + i * 1_000,
        pid: if i % 5 == 0 { 0 } else { 1000 + i as u32 % 3 },
        tid: 2000,
        comm: ["curl", "nginx", "python3"][i as usize % 3].into(),
        family,
        saddr: s,
        daddr: d,
        sport: 40000 + (i % 100) as u16,
        dport: 443,
        oldstate: (kind == EventKind::StateChange).then_some(TcpState::SynSent),
        newstate: Some(TcpState::Established),
        sk_err: if kind == EventKind::SockError { 111 } else { 0 },
        netns: 4026531840,
        stack_id: (i % 2 == 0).then_some(i),
        probe: [
            "tp_btf:inet_sock_set_state",
            "inferred:inet_sock_set_state",
            "cgroup_skb:egress",
        ][i as usize % 3]
            .into(),
        cookie: 1 << 33 | (i as u64 / 4),
        cgroup_id: if i % 7 == 0 { 0 } else { 0x1234 },
        attribution: Attribution::ALL[i as usize % Attribution::ALL.len()],
        // every TCP field null in some rows and set in others
        tcp: if i % 3 == 0 {
            TcpInfo::default()
        } else {
            TcpInfo {
                snd_wnd: Some(65_535),
                rcv_wnd: Some(131_072 + i as u32),
                srtt_us: Some(250),
                snd_cwnd: Some(10),
                bytes_acked: Some(i as u64 * 1000),
                bytes_received: Some(i as u64 * 2000),
                window: (i % 3 == 1).then_some(0),
            }
        },
        ..testing::event(kind)
    }
}

#[test]
fn written_files_load_with_documented_types() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("interop.parquet");
    let meta = RecordingMeta {
        host: "h".into(),
        clock: ClockAnchor {
            realtime_ns: 1_700_000_000_000_000_000,
            monotonic_ns: 1_000_000_000,
        },
        ..Default::default()
    };
    let mut w = EventWriter::new(std::fs::File::create(&path).unwrap(), &meta, WriterOptions::default()).unwrap();
    let n = 3000i64;
    for i in 0..n {
        let kind = EventKind::ALL[i as usize % EventKind::ALL.len()];
        w.push(&event(i, kind, i % 4 == 0)).unwrap();
        if i == 1500 {
            w.flush().unwrap();
        }
    }
    w.finish(0).unwrap();
    if let Some(out) = check_interop(&path, Some(n as u64)) {
        assert!(out.contains("interop ok: 3000 rows"), "{out}");
        for k in EventKind::ALL {
            assert!(out.contains(&format!("'{}': 200", k.as_str())), "{out}");
        }
        assert!(out.contains("schema v2"), "{out}");
    }
}

/// The frozen v1 recording still loads with the v1 column types (and
/// without the v2 columns).
#[test]
fn v1_compat_fixture_loads_with_documented_v1_types() {
    let path = repo_root().join("testdata/compat/v1-loopback.parquet");
    if let Some(out) = check_interop(&path, Some(61)) {
        assert!(out.contains("interop ok: 61 rows (schema v1)"), "{out}");
    }
}

#[test]
fn committed_fixture_loads_with_documented_types() {
    let path = repo_root().join("testdata/loopback.parquet");
    if !path.exists() {
        eprintln!("SKIPPED: {} not recorded yet", path.display());
        return;
    }
    let rows = deeptcp_format::RecordingReader::open(&path).unwrap().num_rows();
    check_interop(&path, Some(rows));
}
