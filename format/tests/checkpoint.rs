//! Crash safety of the format: checkpoints written at every flush, repair of
//! a file whose writer died, reading an unfinished file through its
//! checkpoint, closing a file at its last checkpoint, lost intervals and
//! segment names. The repaired files are also checked with pyarrow, DuckDB,
//! pandas and polars (testdata/check_interop.py; skipped without them
//! unless `DEEPTCP_REQUIRE_INTEROP=1`).

use std::fs::File;
use std::net::IpAddr;
use std::path::Path;

use std::sync::Arc;

use deeptcp_format::testing;
use deeptcp_format::testing::python::check_interop;
use deeptcp_format::{
    checkpoint_path, repair, segment_path, segments, Attribution, ClockAnchor, Event, EventKind, EventWriter, Family,
    FormatError, LostInterval, ProbeStatus, RecordingMeta, RecordingReader, RepairOutcome, StackWriter, TcpInfo,
    TcpState, WriterOptions,
};

fn meta() -> RecordingMeta {
    RecordingMeta {
        host: "testhost".into(),
        kernel_release: "6.8.0-test".into(),
        boot_id: "4d6f6e64-6179-4d6f-726e-696e67000001".into(),
        clock: ClockAnchor {
            realtime_ns: 1_700_000_000_000_000_000,
            monotonic_ns: 5_000_000_000,
        },
        recorder_version: "checkpoint-test".into(),
        probes: vec![ProbeStatus {
            kind: "state_change".into(),
            probe: "tp_btf:inet_sock_set_state".into(),
            attached: true,
            detail: String::new(),
            rung: 0,
            used: true,
        }],
        kstack: false,
        snapshot_sockets: 3,
        ..Default::default()
    }
}

/// Distinct events (`mono_ns` identifies each) with varied columns.
fn event(i: u64, probes: &[Arc<str>]) -> Event {
    let v6 = i.is_multiple_of(4);
    let (family, saddr, daddr): (Family, IpAddr, IpAddr) = if v6 {
        (Family::Inet6, "2001:db8::1".parse().unwrap(), "::1".parse().unwrap())
    } else {
        (
            Family::Inet,
            format!("10.0.{}.{}", i % 7, i % 251).parse().unwrap(),
            "192.0.2.7".parse().unwrap(),
        )
    };
    let kind = EventKind::ALL[i as usize % EventKind::ALL.len()];
    Event {
        mono_ns: 5_000_000_000 + i as i64 * 1000,
        pid: 1000 + (i % 13) as u32,
        tid: 2000 + (i % 5) as u32,
        comm: ["curl", "nginx", "python3", "sshd"][i as usize % 4].into(),
        family,
        saddr,
        daddr,
        sport: 40000 + (i % 1000) as u16,
        dport: 443,
        oldstate: (kind == EventKind::StateChange).then_some(TcpState::SynSent),
        newstate: (kind == EventKind::StateChange).then_some(TcpState::Established),
        netns: 4026531840,
        stack_id: i.is_multiple_of(3).then_some(i as i64),
        probe: Arc::clone(&probes[i as usize % probes.len()]),
        cookie: 1 << 33 | i,
        cgroup_id: 77,
        attribution: Attribution::ALL[i as usize % Attribution::ALL.len()],
        tcp: if i.is_multiple_of(2) {
            TcpInfo::default()
        } else {
            TcpInfo {
                snd_wnd: Some(65535),
                rcv_wnd: Some(i as u32),
                srtt_us: Some(250),
                snd_cwnd: Some(10),
                bytes_acked: Some(i * 1000),
                bytes_received: Some(i),
                window: None,
            }
        },
        ..testing::event(kind)
    }
}

fn probes() -> Vec<Arc<str>> {
    [
        "tp_btf:inet_sock_set_state",
        "inferred:inet_sock_set_state",
        "snapshot:proc",
    ]
    .into_iter()
    .map(Arc::from)
    .collect()
}

fn create(path: &Path) -> File {
    File::options().write(true).create_new(true).open(path).unwrap()
}

fn read_monos(path: &Path) -> Vec<i64> {
    let r = RecordingReader::open(path).unwrap_or_else(|e| panic!("{} opens: {e}", path.display()));
    r.events().map(|e| e.unwrap().mono_ns).collect()
}

fn monos(range: std::ops::Range<u64>) -> Vec<i64> {
    range.map(|i| 5_000_000_000 + i as i64 * 1000).collect()
}

/// An error with its sources, as `{:#}` in anyhow prints it.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

fn copy_pair(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
    std::fs::copy(checkpoint_path(from), checkpoint_path(to)).unwrap();
}

/// Writes `groups` flushed row groups of `per` rows, then `pending` rows
/// that are pushed but not flushed; returns the live writer.
fn write_flushed(path: &Path, groups: u64, per: u64, pending: u64, opts: WriterOptions) -> EventWriter {
    let p = probes();
    let mut w = EventWriter::with_checkpoints(create(path), path, &meta(), opts).unwrap();
    assert!(checkpoint_path(path).exists(), "sidecar created at open");
    let mut i = 0;
    for _ in 0..groups {
        for _ in 0..per {
            w.push(&event(i, &p)).unwrap();
            i += 1;
        }
        w.flush().unwrap();
        assert_eq!(w.checkpointed_rows(), i);
    }
    for _ in 0..pending {
        w.push(&event(i, &p)).unwrap();
        i += 1;
    }
    w
}

#[test]
fn repair_keeps_every_flushed_row_and_drops_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.parquet");
    let mut w = write_flushed(&live, 4, 2500, 1234, WriterOptions::default());
    w.add_lost_interval(LostInterval {
        from_mono_ns: 6_000_000_000,
        to_mono_ns: 7_000_000_000,
        lost: 42,
    });
    w.flush().unwrap(); // writes the 1234 pending rows as a 5th row group
    for i in 0..777 {
        w.push(&event(100_000 + i, &probes())).unwrap();
    }

    // "Crash": the files as they are on disk right now, with a torn row group
    // (garbage) after the last checkpoint.
    let crashed = dir.path().join("crashed.parquet");
    copy_pair(&live, &crashed);
    {
        use std::io::Write;
        let mut f = File::options().append(true).open(&crashed).unwrap();
        f.write_all(&[0xAB; 5000]).unwrap();
    }
    let before = std::fs::read(&crashed).unwrap();

    // Unreadable as it is, with a message saying what to do.
    let e = RecordingReader::open(&crashed).unwrap_err();
    assert!(matches!(e, FormatError::Unfinished { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("recording was not closed cleanly (recorder killed?); run `analyze --repair")
            && msg.contains("crashed.parquet"),
        "{msg}"
    );

    // Readable through the checkpoint without touching anything.
    let r = RecordingReader::open_recovering(&crashed).unwrap();
    assert!(r.recovered() && !r.finished());
    assert_eq!(r.num_rows(), 11_234);
    assert_eq!(r.meta().host, "testhost");
    assert_eq!(r.meta().snapshot_sockets, 3);
    assert_eq!(r.meta().lost_intervals.len(), 1, "lost intervals up to the checkpoint");
    let got: Vec<i64> = r.events().map(|e| e.unwrap().mono_ns).collect();
    assert_eq!(got, monos(0..11_234));
    assert_eq!(
        std::fs::read(&crashed).unwrap(),
        before,
        "open_recovering changes nothing"
    );
    assert!(checkpoint_path(&crashed).exists());

    // Repair: exactly the flushed rows, a plain Parquet file, no sidecar.
    let report = repair(&crashed).unwrap();
    match report.outcome {
        RepairOutcome::Repaired {
            rows,
            row_groups,
            dropped_bytes,
            bytes,
        } => {
            assert_eq!((rows, row_groups), (11_234, 5));
            assert!(dropped_bytes >= 5000, "{dropped_bytes}");
            assert_eq!(bytes, std::fs::metadata(&crashed).unwrap().len());
        }
        other => panic!("{other:?}"),
    }
    let text = report.to_string();
    assert!(text.contains("repaired: 11234 events in 5 row groups"), "{text}");
    assert!(!checkpoint_path(&crashed).exists(), "sidecar removed after repair");
    let r = RecordingReader::open(&crashed).unwrap();
    assert!(
        !r.finished() && !r.recovered(),
        "a repaired file has no finish-time totals"
    );
    assert_eq!(
        r.meta().lost_intervals,
        [LostInterval {
            from_mono_ns: 6_000_000_000,
            to_mono_ns: 7_000_000_000,
            lost: 42
        }]
    );
    assert_eq!(r.meta().probes, meta().probes);
    let events: Vec<Event> = r.events().collect::<Result<_, _>>().unwrap();
    let p = probes();
    assert_eq!(events.len(), 11_234);
    for (i, e) in events.iter().enumerate().take(10_000) {
        assert_eq!(*e, event(i as u64, &p), "row {i}");
    }

    // Repairing again: a no-op that says so.
    let again = repair(&crashed).unwrap();
    assert_eq!(
        again.outcome,
        RepairOutcome::AlreadyComplete {
            removed_stale_checkpoint: false
        }
    );
    assert!(
        again.to_string().contains("already complete, nothing to repair"),
        "{again}"
    );

    // The original still finishes normally and leaves no sidecar behind;
    // closing it at a checkpoint afterwards never truncates it.
    let s = w.try_finish(42).unwrap();
    let bytes = std::fs::read(&live).unwrap();
    assert_eq!(w.close_at_checkpoint().unwrap(), s);
    assert_eq!(std::fs::read(&live).unwrap(), bytes);
    assert_eq!(s.rows, 11_234 + 777);
    assert!(!checkpoint_path(&live).exists(), "clean finish removes the sidecar");
    let r = RecordingReader::open(&live).unwrap();
    assert!(r.finished());
    assert_eq!(r.meta().lost_events, 42);
    assert_eq!(r.meta().lost_intervals.len(), 1);

    interop(&crashed, 11_234);
}

#[test]
fn a_crash_before_the_first_flush_repairs_to_an_empty_recording() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("early.parquet");
    let w = write_flushed(&live, 0, 0, 100, WriterOptions::default());
    let crashed = dir.path().join("early-crash.parquet");
    copy_pair(&live, &crashed);
    assert_eq!(std::fs::metadata(&crashed).unwrap().len(), 4, "only the magic so far");
    let report = repair(&crashed).unwrap();
    assert!(
        matches!(report.outcome, RepairOutcome::Repaired { rows: 0, .. }),
        "{report:?}"
    );
    let r = RecordingReader::open(&crashed).unwrap();
    assert_eq!((r.num_rows(), r.meta().host.as_str()), (0, "testhost"));
    drop(w);
}

#[test]
fn row_groups_cut_between_checkpoints_are_dropped_cleanly() {
    // Small row groups: the writer ends some on its own between flushes, so
    // the file holds complete row groups that no checkpoint knows yet.
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("cut.parquet");
    let opts = WriterOptions {
        row_group_rows: 1000,
        batch_rows: 500,
        ..WriterOptions::default()
    };
    let w = write_flushed(&live, 3, 1500, 4200, opts);
    let crashed = dir.path().join("cut-crash.parquet");
    copy_pair(&live, &crashed);
    let report = repair(&crashed).unwrap();
    assert!(
        matches!(report.outcome, RepairOutcome::Repaired { rows: 4500, .. }),
        "{report:?}"
    );
    assert_eq!(read_monos(&crashed), monos(0..4500));
    drop(w);
}

#[test]
fn repair_refusals_change_nothing() {
    let dir = tempfile::tempdir().unwrap();

    // No sidecar.
    let bare = dir.path().join("bare.parquet");
    std::fs::write(&bare, b"PAR1 not finished").unwrap();
    let e = repair(&bare).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, FormatError::Checkpoint { .. }), "{e:?}");
    assert!(
        msg.contains("bare.parquet: not a complete Parquet file, and there is no checkpoint"),
        "{msg}"
    );
    assert_eq!(std::fs::read(&bare).unwrap(), b"PAR1 not finished");
    let e = RecordingReader::open(&bare).unwrap_err();
    assert!(
        matches!(e, FormatError::NotParquet { .. }),
        "no sidecar: plain error {e:?}"
    );

    // A sidecar of another recording.
    let a = dir.path().join("a.parquet");
    let b = dir.path().join("b.parquet");
    let wa = write_flushed(&a, 2, 1000, 10, WriterOptions::default());
    let wb = write_flushed(&b, 2, 1500, 10, WriterOptions::default());
    let b_crashed = dir.path().join("b-crash.parquet");
    std::fs::copy(&b, &b_crashed).unwrap();
    std::fs::copy(checkpoint_path(&a), checkpoint_path(&b_crashed)).unwrap();
    let before = std::fs::read(&b_crashed).unwrap();
    let e = repair(&b_crashed).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("b-crash.parquet.checkpoint does not belong to this file") && msg.contains("refusing"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read(&b_crashed).unwrap(),
        before,
        "refused repair changes nothing"
    );
    assert!(RecordingReader::open_recovering(&b_crashed).is_err());

    // Same length, other data: also refused.
    let a2 = dir.path().join("a2.parquet");
    let p = probes();
    let mut w = EventWriter::with_checkpoints(create(&a2), &a2, &meta(), WriterOptions::default()).unwrap();
    for i in 0..2000 {
        w.push(&event(i + 1, &p)).unwrap();
        if i == 999 {
            w.flush().unwrap();
        }
    }
    w.flush().unwrap();
    let a_crashed = dir.path().join("a-crash.parquet");
    std::fs::copy(&a, &a_crashed).unwrap();
    std::fs::copy(checkpoint_path(&a2), checkpoint_path(&a_crashed)).unwrap();
    assert!(repair(&a_crashed).is_err());

    // A recording in progress: its sidecar is locked by the writer.
    let e = repair(&a).unwrap_err();
    assert!(e.to_string().contains("still being recorded"), "{e}");
    let r = RecordingReader::open_recovering(&a).expect("a live recording reads up to its last flush");
    assert_eq!(r.num_rows(), 2000);

    // A symlink at the path is not followed.
    let link = dir.path().join("link.parquet");
    std::os::unix::fs::symlink(&b_crashed, &link).unwrap();
    let e = chain(&repair(&link).unwrap_err());
    assert!(e.contains("link.parquet: open failed: is a symbolic link"), "{e}");

    // A complete file with a stale sidecar: left alone, sidecar removed.
    drop((wa, wb));
    let done = dir.path().join("done.parquet");
    let mut w = EventWriter::new(create(&done), &meta(), WriterOptions::default()).unwrap();
    w.push(&event(1, &p)).unwrap();
    w.finish(0).unwrap();
    let bytes = std::fs::read(&done).unwrap();
    std::fs::copy(checkpoint_path(&b), checkpoint_path(&done)).unwrap();
    assert!(
        RecordingReader::open(&done).is_ok(),
        "a complete file opens despite a sidecar"
    );
    let r = repair(&done).unwrap();
    assert_eq!(
        r.outcome,
        RepairOutcome::AlreadyComplete {
            removed_stale_checkpoint: true
        }
    );
    assert_eq!(std::fs::read(&done).unwrap(), bytes);
    assert!(!checkpoint_path(&done).exists());

    // A torn last record (crash while appending) is ignored: the previous
    // checkpoint is used.
    let torn = dir.path().join("torn.parquet");
    let wt = write_flushed(&torn, 3, 1000, 0, WriterOptions::default());
    let t2 = dir.path().join("torn2.parquet");
    copy_pair(&torn, &t2);
    drop(wt);
    let ck = std::fs::read(checkpoint_path(&t2)).unwrap();
    std::fs::write(checkpoint_path(&t2), &ck[..ck.len() - 10]).unwrap();
    let r = repair(&t2).unwrap();
    assert!(matches!(r.outcome, RepairOutcome::Repaired { rows: 2000, .. }), "{r:?}");
    assert_eq!(read_monos(&t2), monos(0..2000));

    // Not a checkpoint at all.
    let junk = dir.path().join("junk.parquet");
    std::fs::write(&junk, b"PAR1xxxx").unwrap();
    std::fs::write(checkpoint_path(&junk), b"hello").unwrap();
    let e = repair(&junk).unwrap_err();
    assert!(e.to_string().contains("is not a deeptcp checkpoint"), "{e}");
}

#[test]
fn an_existing_sidecar_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.parquet");
    std::fs::write(checkpoint_path(&path), b"someone else's").unwrap();
    let Err(e) = EventWriter::with_checkpoints(create(&path), &path, &meta(), WriterOptions::default()) else {
        panic!("an existing sidecar must be refused");
    };
    assert!(e.to_string().contains("already exists"), "{e}");
    assert_eq!(std::fs::read(checkpoint_path(&path)).unwrap(), b"someone else's");
    // Nor followed when it is a symlink.
    let other = dir.path().join("y.parquet");
    let target = dir.path().join("target");
    std::os::unix::fs::symlink(&target, checkpoint_path(&other)).unwrap();
    assert!(EventWriter::with_checkpoints(create(&other), &other, &meta(), WriterOptions::default()).is_err());
    assert!(!target.exists());
}

#[test]
fn sidecar_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.parquet");
    let w = EventWriter::with_checkpoints(create(&path), &path, &meta(), WriterOptions::default()).unwrap();
    let mode = std::fs::metadata(checkpoint_path(&path)).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    drop(w);
}

#[test]
fn close_at_checkpoint_keeps_the_flushed_rows_readable() {
    for sidecar in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("salvage.parquet");
        let p = probes();
        let mut w = if sidecar {
            EventWriter::with_checkpoints(create(&path), &path, &meta(), WriterOptions::default()).unwrap()
        } else {
            EventWriter::new(create(&path), &meta(), WriterOptions::default()).unwrap()
        };
        for i in 0..3000 {
            w.push(&event(i, &p)).unwrap();
        }
        w.flush().unwrap();
        w.add_lost_interval(LostInterval {
            from_mono_ns: 1,
            to_mono_ns: 2,
            lost: 5,
        });
        for i in 3000..9000 {
            w.push(&event(i, &p)).unwrap();
        }
        // Some of the unflushed rows reach the file (a row group ends) and
        // must go again.
        let s = w.close_at_checkpoint().unwrap();
        assert_eq!(s.rows, 3000);
        assert_eq!(s.bytes, std::fs::metadata(&path).unwrap().len());
        assert!(!checkpoint_path(&path).exists());
        let r = RecordingReader::open(&path).unwrap();
        assert!(!r.finished());
        assert!(
            r.meta().lost_intervals.is_empty(),
            "the interval came after the checkpoint"
        );
        drop(r);
        assert_eq!(read_monos(&path), monos(0..3000));
        // The writer accepts nothing more; closing again changes nothing.
        assert!(w.push(&event(1, &p)).and_then(|()| w.flush()).is_err());
        assert_eq!(w.close_at_checkpoint().unwrap(), s);
        assert_eq!(read_monos(&path), monos(0..3000));
    }
}

#[test]
fn stacks_writer_checkpoints_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.stacks.parquet");
    let mut w = StackWriter::with_checkpoints(create(&path), &path).unwrap();
    for id in 0..100 {
        w.push(id, &[format!("f{id}+0x1"), "tcp_connect+0x2".into()]).unwrap();
    }
    w.flush().unwrap();
    w.push(1000, &["late+0x1".into()]).unwrap();
    let crashed = dir.path().join("c.stacks.parquet");
    copy_pair(&path, &crashed);
    // Read through the checkpoint, unchanged...
    let before = std::fs::read(&crashed).unwrap();
    assert_eq!(deeptcp_format::read_stacks(&crashed).unwrap().len(), 100);
    assert_eq!(std::fs::read(&crashed).unwrap(), before);
    // ... or repaired.
    repair(&crashed).unwrap();
    let stacks = deeptcp_format::read_stacks(&crashed).unwrap();
    assert_eq!(stacks.len(), 100);
    assert_eq!(stacks[&7], ["f7+0x1", "tcp_connect+0x2"]);
    w.finish().unwrap();
    assert!(!checkpoint_path(&path).exists());
    assert_eq!(deeptcp_format::read_stacks(&path).unwrap().len(), 101);
}

#[test]
fn lost_intervals_round_trip_and_merge() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lost.parquet");
    let mut w = EventWriter::new(create(&path), &meta(), WriterOptions::default()).unwrap();
    let mut total = 0;
    for k in 0..3000i64 {
        w.add_lost_interval(LostInterval {
            from_mono_ns: k * 1_000_000_000,
            to_mono_ns: (k + 1) * 1_000_000_000,
            lost: k as u64 % 7,
        });
        total += k as u64 % 7;
    }
    assert!(w.lost_intervals().len() <= deeptcp_format::writer::MAX_LOST_INTERVALS);
    assert_eq!(w.lost_in_intervals(), total);
    w.finish(total).unwrap();
    let r = RecordingReader::open(&path).unwrap();
    let m = r.meta();
    assert_eq!(m.lost_events, total);
    assert_eq!(m.lost_intervals.iter().map(|i| i.lost).sum::<u64>(), total);
    assert!(m
        .lost_intervals
        .windows(2)
        .all(|w| w[0].to_mono_ns <= w[1].from_mono_ns));
    assert_eq!(
        m.lost_intervals[0].from_mono_ns, 1_000_000_000,
        "zero-loss intervals are not kept"
    );
    assert_eq!(m.segment, None);

    // A file without the key (older recorders): no intervals.
    let old = dir.path().join("old.parquet");
    let w = EventWriter::new(create(&old), &meta(), WriterOptions::default()).unwrap();
    w.finish(0).unwrap();
    assert!(RecordingReader::open(&old).unwrap().meta().lost_intervals.is_empty());
}

#[test]
fn segments_are_named_found_and_ordered() {
    assert_eq!(
        segment_path(Path::new("/d/trace.parquet"), 3),
        Path::new("/d/trace-000003.parquet")
    );
    assert_eq!(segment_path(Path::new("trace"), 12), Path::new("trace-000012"));
    assert_eq!(
        segment_path(Path::new("t.parquet"), 1_234_567),
        Path::new("t-1234567.parquet")
    );

    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("trace.parquet");
    assert!(segments(&rec).is_empty());
    for i in [2, 1, 10, 1_000_000] {
        let p = segment_path(&rec, i);
        let mut m = meta();
        m.segment = Some(i);
        EventWriter::new(create(&p), &m, WriterOptions::default())
            .unwrap()
            .finish(0)
            .unwrap();
        assert_eq!(RecordingReader::open(&p).unwrap().meta().segment, Some(i));
    }
    // Not segments: the stacks sidecars, checkpoints, other names.
    for other in [
        "trace-000001.stacks.parquet",
        "trace-000001.parquet.checkpoint",
        "trace-01.parquet",
        "trace-00000x.parquet",
        "trace2-000001.parquet",
        "trace-000003.parquet.tmp",
    ] {
        std::fs::write(dir.path().join(other), b"x").unwrap();
    }
    let names: Vec<String> = segments(&rec)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "trace-000001.parquet",
            "trace-000002.parquet",
            "trace-000010.parquet",
            "trace-1000000.parquet"
        ]
    );
    // An existing file is the recording itself.
    std::fs::write(&rec, b"x").unwrap();
    assert_eq!(segments(&rec), std::slice::from_ref(&rec));
    // Relative names work in the current directory too.
    assert!(segments(Path::new("no-such-recording-here.parquet")).is_empty());
}

// ---- interop: other readers read a repaired file ----

fn interop(path: &Path, rows: u64) {
    if let Some(stdout) = check_interop(path, Some(rows)) {
        assert!(stdout.contains(&format!("interop ok: {rows} rows")), "{stdout}");
    }
}

/// `Follower` hands out each checkpointed row group once, waits while
/// nothing new is checkpointed, hands out the rest at close; a sidecar no
/// recorder holds is `Abandoned`.
#[test]
fn follower_hands_out_new_row_groups_until_the_file_is_closed() {
    use deeptcp_format::{Follower, ReadOptions, Step};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.parquet");
    let opts = WriterOptions {
        row_group_rows: 1000,
        batch_rows: 10,
        zstd_level: 1,
    };
    let mut w = write_flushed(&path, 2, 30, 5, opts);
    let mut f = Follower::new(&path, ReadOptions::default());
    let new = |f: &mut Follower| match f.poll().unwrap() {
        Step::New { reader, from, complete } => (from, reader.num_row_groups(), complete, reader.recovered()),
        other => panic!("{other:?}"),
    };
    assert_eq!(new(&mut f), (0, 2, false, true));
    assert!(matches!(f.poll().unwrap(), Step::Waiting));
    // A copy as a killed recorder leaves it: nobody holds its sidecar.
    let dead = dir.path().join("dead.parquet");
    copy_pair(&path, &dead);
    w.flush().unwrap();
    assert_eq!(new(&mut f), (2, 3, false, true));
    assert!(matches!(f.poll().unwrap(), Step::Waiting));
    w.push(&event(1000, &probes())).unwrap();
    w.finish(0).unwrap();
    assert_eq!(new(&mut f), (3, 4, true, false));
    assert_eq!(f.seen(), 4);

    let mut d = Follower::new(&dead, ReadOptions::default());
    assert_eq!(new(&mut d), (0, 2, false, true));
    assert!(matches!(d.poll().unwrap(), Step::Abandoned));
}

#[test]
fn name_tables_survive_finish_crash_repair_and_close_at_checkpoint() {
    use deeptcp_format::{CgroupName, Names};
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("names.parquet");
    let mut w = write_flushed(&live, 1, 100, 0, WriterOptions::default());
    let mut names = Names::recorded_empty();
    names.insert_cgroup(CgroupName::new(77, "/system.slice/docker-0123456789ab.scope"));
    w.set_names(&names);
    w.flush().unwrap(); // a checkpoint record with the names and no row group
    for i in 0..50 {
        w.push(&event(1000 + i, &probes())).unwrap();
    }
    names.insert_netns(4026531840, "blue");
    w.set_names(&names);
    w.flush().unwrap();
    w.push(&event(5000, &probes())).unwrap(); // not checkpointed

    // A crash now: the names of the last checkpoint, through recovery and repair.
    let crashed = dir.path().join("crashed.parquet");
    copy_pair(&live, &crashed);
    let r = RecordingReader::open_recovering(&crashed).unwrap();
    assert_eq!(r.num_rows(), 150);
    assert_eq!(r.names(), &names);
    let c = r.names().cgroup(77).unwrap();
    assert_eq!(
        (c.info.container_id.as_deref(), c.info.runtime.as_deref()),
        (Some("0123456789ab"), Some("docker"))
    );
    assert_eq!(r.names().netns_name(4026531840), Some("blue"));
    repair(&crashed).unwrap();
    assert_eq!(RecordingReader::open(&crashed).unwrap().names(), &names);

    // Closed at the checkpoint (disk full): the same.
    let salvaged = dir.path().join("salvaged.parquet");
    let mut w2 = write_flushed(&salvaged, 1, 10, 0, WriterOptions::default());
    w2.set_names(&names);
    w2.flush().unwrap();
    w2.push(&event(10, &probes())).unwrap();
    w2.close_at_checkpoint().unwrap();
    let r = RecordingReader::open(&salvaged).unwrap();
    assert_eq!((r.num_rows(), r.names()), (10, &names));

    // Finished: the names set last.
    names.insert_cgroup(CgroupName::new(78, "/user.slice/user-1000.slice/session-3.scope"));
    w.set_names(&names);
    w.finish(0).unwrap();
    let r = RecordingReader::open(&live).unwrap();
    assert!(r.names().recorded());
    assert_eq!(r.names(), &names);
    assert_eq!(
        r.names().cgroup(78).unwrap().info.unit.as_deref(),
        Some("session-3.scope")
    );

    // A writer never given names writes no tables: read as before.
    let plain = dir.path().join("plain.parquet");
    write_flushed(&plain, 1, 10, 0, WriterOptions::default())
        .finish(0)
        .unwrap();
    let r = RecordingReader::open(&plain).unwrap();
    assert!(!r.names().recorded() && r.names().cgroups().is_empty());
}
