//! End-to-end tests of the recording format: write with `EventWriter`, read
//! with `RecordingReader`, and feed the reader every kind of bad file.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::types::UInt8Type;
use arrow_array::{
    ArrayRef, DictionaryArray, Int32Array, Int64Array, LargeStringArray, RecordBatch, StringArray, StringViewArray,
    TimestampNanosecondArray, UInt16Array, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use deeptcp_format::schema::{self, col, key};
use deeptcp_format::testing;
use deeptcp_format::testing::python::repo_root;
use deeptcp_format::{
    read_stacks, stacks_path, Attribution, ClockAnchor, Event, EventKind, EventWriter, Family, FormatError,
    ProbeStatus, RecordingMeta, RecordingReader, StackWriter, TcpInfo, TcpState, WriterOptions, SCHEMA_VERSION,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding};
use parquet::file::metadata::{KeyValue, ParquetMetaDataReader};
use parquet::file::properties::WriterProperties;

fn meta() -> RecordingMeta {
    RecordingMeta {
        schema_version: 0, // ignored by the writer
        host: "testhost".into(),
        kernel_release: "6.8.0-test".into(),
        boot_id: "4d6f6e64-6179-4d6f-726e-696e67000001".into(),
        clock: ClockAnchor {
            realtime_ns: 1_700_000_000_000_000_000,
            monotonic_ns: 5_000_000_000,
        },
        recorder_version: "0.1.0-test".into(),
        probes: vec![
            ProbeStatus {
                kind: "state_change".into(),
                probe: "tp_btf:inet_sock_set_state".into(),
                attached: true,
                detail: String::new(),
                rung: 0,
                used: true,
            },
            ProbeStatus {
                kind: "sock_error".into(),
                probe: "kprobe:sock_def_error_report".into(),
                attached: false,
                detail: "kprobes unavailable: \"quoted\" \u{e9}".into(),
                rung: 1,
                used: false,
            },
        ],
        lost_events: 0,
        kstack: true,
        snapshot_sockets: 17,
        lost_intervals: Vec::new(),
        segment: None,
    }
}

/// TcpInfo with every field set (distinct per `i`).
fn tcp_all(i: usize) -> TcpInfo {
    let i = i as u32;
    TcpInfo {
        snd_wnd: Some(65_535 + i),
        rcv_wnd: Some(131_072 - i),
        srtt_us: Some(50 + i % 1000),
        snd_cwnd: Some(10 + i % 40),
        bytes_acked: Some(u64::from(i) * 1448),
        bytes_received: Some(u64::MAX - u64::from(i)),
        window: Some(i % 3),
    }
}

/// `n` events covering every kind, every attribution, IPv4, IPv6, v4-mapped
/// IPv6, null and non-null states, stack ids and TCP fields, several comms
/// and probes.
fn events(n: usize) -> Vec<Event> {
    let probes: Vec<Arc<str>> = [
        "tp_btf:inet_sock_set_state",
        "inferred:inet_sock_set_state",
        "",
        "snapshot:proc",
    ]
    .into_iter()
    .map(Arc::from)
    .collect();
    events_v1(n)
        .into_iter()
        .enumerate()
        .map(|(i, e)| Event {
            probe: Arc::clone(&probes[i % probes.len()]),
            cookie: if i % 9 == 0 { 0 } else { 1 << 40 | (i as u64 / 3) },
            cgroup_id: [0, 1, u64::MAX][i % 3],
            attribution: Attribution::ALL[i % Attribution::ALL.len()],
            tcp: match i % 4 {
                0 => tcp_all(i),
                1 => TcpInfo::default(),
                2 => TcpInfo {
                    window: Some(0),
                    ..Default::default()
                },
                _ => TcpInfo {
                    srtt_us: Some(0),
                    bytes_received: Some(7),
                    ..tcp_all(i)
                },
            },
            ..e
        })
        .collect()
}

/// `n` events with the v2 fields at their v1 defaults, covering every kind,
/// IPv4, IPv6, v4-mapped IPv6, null and non-null states and stack ids,
/// several comms.
fn events_v1(n: usize) -> Vec<Event> {
    let v6a: IpAddr = "2001:db8::1".parse().unwrap();
    let v6b: IpAddr = "fe80::1:2".parse().unwrap();
    let mapped: IpAddr = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
    (0..n)
        .map(|i| {
            let kind = EventKind::ALL[i % EventKind::ALL.len()];
            let (family, saddr, daddr) = match i % 4 {
                0 => (
                    Family::Inet,
                    IpAddr::V4(Ipv4Addr::new(10, 0, 0, (i % 250) as u8)),
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                ),
                1 => (Family::Inet6, v6a, v6b),
                2 => (Family::Inet6, mapped, IpAddr::V6(Ipv6Addr::LOCALHOST)),
                _ => (Family::Inet6, IpAddr::V6(Ipv6Addr::UNSPECIFIED), mapped),
            };
            let st = |k: usize| TcpState::ALL[k % TcpState::ALL.len()];
            Event {
                mono_ns: 5_000_000_000 + (i as i64) * 1000 + (i as i64 % 7),
                pid: (i % 13) as u32,
                tid: (i % 17) as u32 + 100,
                comm: format!("comm-{}", i % 5).into(),
                family,
                saddr,
                daddr,
                sport: (i % 65536) as u16,
                dport: 443,
                oldstate: (kind == EventKind::StateChange).then(|| st(i)),
                newstate: if i % 11 == 0 { None } else { Some(st(i + 3)) },
                sk_err: if kind == EventKind::SockError { 104 } else { 0 },
                netns: 4026531840,
                stack_id: (i % 3 == 0).then_some(i as i64 / 3),
                ..testing::event(kind)
            }
        })
        .collect()
}

fn canonical(evs: &[Event]) -> Vec<Event> {
    evs.iter()
        .map(|e| Event {
            saddr: deeptcp_format::event::canonical_ip(e.saddr),
            daddr: deeptcp_format::event::canonical_ip(e.daddr),
            ..e.clone()
        })
        .collect()
}

fn write_file(path: &Path, evs: &[Event], opts: WriterOptions, lost: u64) -> u64 {
    let mut w = EventWriter::new(File::create(path).unwrap(), &meta(), opts).unwrap();
    for e in evs {
        w.push(e).unwrap();
    }
    let s = w.finish(lost).unwrap();
    assert_eq!(s.rows, evs.len() as u64);
    assert_eq!(s.bytes, std::fs::metadata(path).unwrap().len());
    s.bytes
}

fn read_all(path: &Path) -> Vec<Event> {
    RecordingReader::open(path)
        .unwrap()
        .events()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn small_opts() -> WriterOptions {
    WriterOptions {
        row_group_rows: 1000,
        batch_rows: 300,
        zstd_level: 3,
    }
}

#[test]
fn round_trip_every_kind_many_batches_and_row_groups() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.parquet");
    let evs = events(2_600);
    write_file(&path, &evs, small_opts(), 0);

    let r = RecordingReader::open(&path).unwrap();
    assert_eq!(r.num_rows(), 2_600);
    assert_eq!(r.num_row_groups(), 3);
    let back: Vec<Event> = r.events().collect::<Result<_, _>>().unwrap();
    assert_eq!(back, canonical(&evs));
    // v4-mapped really was normalised
    assert_eq!(back[2].saddr, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)));
    assert_eq!(back[2].family, Family::Inet6);
}

#[test]
fn empty_recording_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.parquet");
    write_file(&path, &[], WriterOptions::default(), 3);
    let r = RecordingReader::open(&path).unwrap();
    assert_eq!(r.num_rows(), 0);
    assert_eq!(r.meta().lost_events, 3);
    assert_eq!(r.events().count(), 0);
}

#[test]
fn all_null_optional_columns_round_trip() {
    // no state change and no stack: oldstate and stack_id are null throughout
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.parquet");
    let evs: Vec<Event> = events(600)
        .into_iter()
        .map(|e| Event {
            kind: EventKind::Retransmit,
            oldstate: None,
            newstate: None,
            stack_id: None,
            ..e
        })
        .collect();
    write_file(&path, &evs, small_opts(), 0);
    assert_eq!(read_all(&path), canonical(&evs));
}

#[test]
fn metadata_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.parquet");
    write_file(&path, &events(10), WriterOptions::default(), 42);

    let r = RecordingReader::open(&path).unwrap();
    let mut want = meta();
    want.schema_version = SCHEMA_VERSION;
    want.lost_events = 42;
    assert_eq!(r.meta(), &want);
    assert!(r.finished());

    let md = ParquetMetaDataReader::new()
        .parse_and_finish(&File::open(&path).unwrap())
        .unwrap();
    let kv = md.file_metadata().key_value_metadata().unwrap();
    let get = |k: &str| kv.iter().find(|x| x.key == k).and_then(|x| x.value.clone());
    assert_eq!(get(key::EVENTS).as_deref(), Some("10"));
    assert_eq!(get(key::LOST_EVENTS).as_deref(), Some("42"));
    assert_eq!(get(key::SCHEMA_VERSION).as_deref(), Some("2"));
    assert_eq!(get(key::SNAPSHOT_SOCKETS).as_deref(), Some("17"));
    assert!(get(key::PROBES).unwrap().contains("\"rung\":1,\"used\":false"));
    assert_eq!(get(key::KSTACK).as_deref(), Some("true"));
    assert!(get(key::PROBES).unwrap().starts_with("[{\"kind\":\"state_change\""));
    assert!(get("ARROW:schema").is_some(), "arrow schema kept for pandas/DuckDB");
    // each key exactly once
    for k in [
        key::EVENTS,
        key::LOST_EVENTS,
        key::SCHEMA_VERSION,
        key::SNAPSHOT_SOCKETS,
    ] {
        assert_eq!(kv.iter().filter(|x| x.key == k).count(), 1, "{k}");
    }
}

#[test]
fn zstd_delta_encodings_and_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.parquet");
    write_file(&path, &events(2_600), small_opts(), 0);
    let md = ParquetMetaDataReader::new()
        .parse_and_finish(&File::open(&path).unwrap())
        .unwrap();
    assert_eq!(md.num_row_groups(), 3);
    for rg in md.row_groups() {
        for c in rg.columns() {
            let name = c.column_path().string();
            assert!(
                matches!(c.compression(), Compression::ZSTD(_)),
                "{name}: {:?}",
                c.compression()
            );
            let text = col::TEXT.contains(&name.as_str());
            // Min/max of text prunes nothing and costs a comparison per value.
            assert_eq!(c.statistics().is_some(), !text, "{name}: statistics only on numbers");
            let encs: Vec<Encoding> = c.encodings().collect();
            if !text {
                assert!(
                    !encs.contains(&Encoding::RLE_DICTIONARY),
                    "{name}: plain numbers: {encs:?}"
                );
            }
            if name == col::TS || name == col::MONO_NS {
                assert!(encs.contains(&Encoding::DELTA_BINARY_PACKED), "{name}: {encs:?}");
                assert!(!encs.contains(&Encoding::RLE_DICTIONARY), "{name}: {encs:?}");
                assert!(c.dictionary_page_offset().is_none(), "{name}");
            }
            if text {
                assert!(encs.contains(&Encoding::RLE_DICTIONARY), "{name}: {encs:?}");
            }
        }
    }
}

fn ts_column(batch: &arrow_array::RecordBatch) -> &TimestampNanosecondArray {
    batch
        .column_by_name(col::TS)
        .unwrap()
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()
        .unwrap()
}

#[test]
fn arrow_types_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.parquet");
    let evs = events(5);
    write_file(&path, &evs, WriterOptions::default(), 0);
    let b = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap();
    let got = b.schema().clone();
    let want = schema::event_schema();
    assert_eq!(got.fields().len(), want.fields().len());
    for (g, w) in got.fields().iter().zip(want.fields().iter()) {
        assert_eq!(g.name(), w.name());
        assert_eq!(g.data_type(), w.data_type(), "{}", g.name());
        assert_eq!(g.is_nullable(), w.is_nullable(), "{}", g.name());
    }
    let utc = DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
    assert_eq!(got.field_with_name(col::TS).unwrap().data_type(), &utc);
    let u8dict = DataType::Dictionary(Box::new(DataType::UInt8), Box::new(DataType::Utf8));
    for c in [
        col::KIND,
        col::FAMILY,
        col::OLDSTATE,
        col::NEWSTATE,
        col::PROBE,
        col::ATTRIBUTION,
    ] {
        assert_eq!(got.field_with_name(c).unwrap().data_type(), &u8dict, "{c}");
    }
    let names: Vec<&str> = got.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, col::ALL);
    for (c, t, null) in [
        (col::COOKIE, DataType::UInt64, false),
        (col::CGROUP_ID, DataType::UInt64, false),
        (col::SND_WND, DataType::UInt32, true),
        (col::RCV_WND, DataType::UInt32, true),
        (col::SRTT_US, DataType::UInt32, true),
        (col::SND_CWND, DataType::UInt32, true),
        (col::BYTES_ACKED, DataType::UInt64, true),
        (col::BYTES_RECEIVED, DataType::UInt64, true),
        (col::WINDOW, DataType::UInt32, true),
    ] {
        let f = got.field_with_name(c).unwrap();
        assert_eq!((f.data_type(), f.is_nullable()), (&t, null), "{c}");
    }
    for c in [col::PROBE, col::ATTRIBUTION] {
        assert!(!got.field_with_name(c).unwrap().is_nullable(), "{c}");
    }

    // ts = realtime + (mono - monotonic)
    let batch = b.build().unwrap().next().unwrap().unwrap();
    let ts = ts_column(&batch);
    let m = meta();
    for (i, e) in evs.iter().enumerate() {
        assert_eq!(ts.value(i), m.clock.realtime_ns + (e.mono_ns - m.clock.monotonic_ns));
    }
    let saddr = batch
        .column_by_name(col::SADDR)
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert_eq!(saddr.value(0), "10.0.0.0");
    assert_eq!(saddr.value(1), "2001:db8::1");
    assert_eq!(saddr.value(2), "192.0.2.7");
}

/// `ts` is `mono_ns` moved by the clock anchor; where that saturates (a
/// mono_ns near the end of its range, a late anchor) it is still exactly
/// what `ClockAnchor::wall_ns` gives, on every page.
#[test]
fn ts_is_the_anchored_clock_also_where_it_saturates() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ClockAnchor {
        realtime_ns: deeptcp_format::schema::MAX_CLOCK_NS,
        monotonic_ns: 0,
    };
    let m = RecordingMeta { clock, ..meta() };
    let evs = events(300);
    // Page 1 (rows 0..100) ordinary, page 2 saturating at both ends, page 3 mixed.
    let monos: Vec<i64> = (0..300)
        .map(|i| match i / 100 {
            0 => 1_000 + i as i64 * 7,
            1 => i64::MAX - 1_000 + i as i64,
            _ if i % 2 == 0 => i64::MAX - i as i64,
            _ => i as i64,
        })
        .collect();
    let path = dir.path().join("ts.parquet");
    let opts = WriterOptions {
        batch_rows: 100,
        ..WriterOptions::default()
    };
    let mut w = EventWriter::new(File::create(&path).unwrap(), &m, opts).unwrap();
    for (e, mono) in evs.iter().zip(&monos) {
        w.push(&Event {
            mono_ns: *mono,
            ..e.clone()
        })
        .unwrap();
    }
    w.finish(0).unwrap();
    let b = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap();
    let mut got = Vec::new();
    for batch in b.build().unwrap() {
        got.extend(ts_column(&batch.unwrap()).values().iter().copied());
    }
    let want: Vec<i64> = monos.iter().map(|m| clock.wall_ns(*m)).collect();
    assert_eq!(got, want);
    assert!(want.contains(&i64::MAX), "some values saturate");
}

#[test]
fn flush_ends_row_groups_and_is_cheap_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.parquet");
    let evs = events(10);
    let mut w = EventWriter::new(File::create(&path).unwrap(), &meta(), WriterOptions::default()).unwrap();
    w.flush().unwrap(); // nothing pending
    for e in &evs[..5] {
        w.push(e).unwrap();
    }
    w.flush().unwrap();
    let on_disk = std::fs::metadata(&path).unwrap().len();
    assert_eq!(on_disk, w.bytes_written(), "flushed row group reached the file");
    w.flush().unwrap(); // idle: no-op
    assert_eq!(std::fs::metadata(&path).unwrap().len(), on_disk);
    for e in &evs[5..] {
        w.push(e).unwrap();
    }
    w.sync().unwrap();
    assert_eq!(w.rows(), 10);
    let s = w.finish(0).unwrap();
    assert_eq!(s.rows, 10);

    let md = ParquetMetaDataReader::new()
        .parse_and_finish(&File::open(&path).unwrap())
        .unwrap();
    assert_eq!(md.num_row_groups(), 2);
    assert_eq!(md.row_group(0).num_rows(), 5);
    assert_eq!(read_all(&path), canonical(&evs));
}

#[test]
fn invalid_options_rejected() {
    let dir = tempfile::tempdir().unwrap();
    for opts in [
        WriterOptions {
            row_group_rows: 0,
            ..Default::default()
        },
        WriterOptions {
            batch_rows: 0,
            ..Default::default()
        },
        WriterOptions {
            zstd_level: 99,
            ..Default::default()
        },
    ] {
        let f = File::create(dir.path().join("x.parquet")).unwrap();
        let err = EventWriter::new(f, &meta(), opts).err().unwrap();
        assert!(matches!(err, FormatError::InvalidOptions { .. }), "{err}");
        assert!(err.to_string().starts_with("invalid writer options"), "{err}");
    }
}

// ---------------------------------------------------------------------------
// Bad files

fn assert_mentions(err: &FormatError, path: &Path) {
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "message lacks path: {msg}");
}

fn open_err(path: &Path) -> FormatError {
    let err = RecordingReader::open(path).expect_err("open must fail");
    assert_mentions(&err, path);
    err
}

#[test]
fn missing_file_is_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.parquet");
    let err = open_err(&path);
    assert!(matches!(err, FormatError::Io { .. }), "{err}");
    let err = open_err(dir.path());
    assert!(matches!(err, FormatError::Io { .. }), "{err}");
}

#[test]
fn zero_length_random_and_truncated_files_are_not_parquet() {
    let dir = tempfile::tempdir().unwrap();

    let empty = dir.path().join("empty.parquet");
    std::fs::write(&empty, b"").unwrap();

    let random = dir.path().join("random.parquet");
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let bytes: Vec<u8> = (0..10_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&random, &bytes).unwrap();

    let good = dir.path().join("good.parquet");
    write_file(&good, &events(500), WriterOptions::default(), 0);
    let data = std::fs::read(&good).unwrap();
    let truncated = dir.path().join("truncated.parquet");
    std::fs::write(&truncated, &data[..data.len() - 100]).unwrap();
    // a live file: header and row groups, no footer yet
    let live = dir.path().join("live.parquet");
    let mut w = EventWriter::new(File::create(&live).unwrap(), &meta(), WriterOptions::default()).unwrap();
    for e in events(100) {
        w.push(&e).unwrap();
    }
    w.flush().unwrap();

    for p in [&empty, &random, &truncated, &live] {
        let err = open_err(p);
        assert!(matches!(err, FormatError::NotParquet { .. }), "{err}");
        assert!(err.to_string().contains("not a Parquet file"), "{err}");
        assert!(std::error::Error::source(&err).is_some());
    }
    drop(w);
}

/// Writes an arbitrary Parquet file: columns as given (all fields nullable),
/// key-value metadata as given, snappy-compressed like pyarrow/DuckDB output.
fn write_raw(path: &Path, cols: Vec<(&str, ArrayRef)>, kvs: Vec<(String, String)>) {
    let schema = Arc::new(Schema::new(
        cols.iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), cols.into_iter().map(|(_, a)| a).collect()).unwrap();
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_key_value_metadata(Some(kvs.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect()))
        .build();
    let mut w = ArrowWriter::try_new(File::create(path).unwrap(), schema, Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn dict(values: &[&str], keys: Vec<Option<u8>>) -> ArrayRef {
    Arc::new(
        DictionaryArray::<UInt8Type>::try_new(keys.into_iter().collect(), Arc::new(StringArray::from(values.to_vec())))
            .unwrap(),
    )
}

/// Three valid rows, every column of schema v2.
fn good_columns() -> Vec<(&'static str, ArrayRef)> {
    let mut cols = good_columns_v1();
    cols.extend([
        (
            col::PROBE,
            dict(
                &["tp_btf:inet_sock_set_state", "inferred:inet_sock_set_state"],
                vec![Some(0), Some(1), Some(0)],
            ),
        ),
        (col::COOKIE, Arc::new(UInt64Array::from(vec![5, 5, 6])) as ArrayRef),
        (col::CGROUP_ID, Arc::new(UInt64Array::from(vec![0, 9, 9]))),
        (
            col::ATTRIBUTION,
            dict(&["task", "owner"], vec![Some(0), Some(1), Some(1)]),
        ),
        (col::SND_WND, Arc::new(UInt32Array::from(vec![Some(1), None, Some(3)]))),
        (col::RCV_WND, Arc::new(UInt32Array::from(vec![Some(2), None, None]))),
        (col::SRTT_US, Arc::new(UInt32Array::from(vec![Some(3), None, None]))),
        (col::SND_CWND, Arc::new(UInt32Array::from(vec![Some(4), None, None]))),
        (col::BYTES_ACKED, Arc::new(UInt64Array::from(vec![Some(5), None, None]))),
        (
            col::BYTES_RECEIVED,
            Arc::new(UInt64Array::from(vec![Some(6), None, None])),
        ),
        (col::WINDOW, Arc::new(UInt32Array::from(vec![Some(0), None, Some(7)]))),
    ]);
    cols
}

/// Three valid rows, every column of schema v1 (write with [`kvs_v1`]).
fn good_columns_v1() -> Vec<(&'static str, ArrayRef)> {
    vec![
        (
            col::TS,
            Arc::new(TimestampNanosecondArray::from(vec![1, 2, 3]).with_timezone("UTC")),
        ),
        (col::MONO_NS, Arc::new(Int64Array::from(vec![10, 20, 30]))),
        (
            col::KIND,
            dict(&["state_change", "retransmit"], vec![Some(0), Some(1), Some(0)]),
        ),
        (col::PID, Arc::new(UInt32Array::from(vec![1, 2, 3]))),
        (col::TID, Arc::new(UInt32Array::from(vec![1, 2, 3]))),
        (col::COMM, Arc::new(StringArray::from(vec!["a", "b", "c"]))),
        (col::FAMILY, dict(&["inet"], vec![Some(0); 3])),
        (
            col::SADDR,
            Arc::new(StringArray::from(vec!["1.2.3.4", "::ffff:1.2.3.4", "::1"])),
        ),
        (col::DADDR, Arc::new(StringArray::from(vec!["5.6.7.8"; 3]))),
        (col::SPORT, Arc::new(UInt16Array::from(vec![1, 2, 3]))),
        (col::DPORT, Arc::new(UInt16Array::from(vec![80, 80, 80]))),
        (col::OLDSTATE, dict(&["SYN_SENT"], vec![Some(0), None, Some(0)])),
        (
            col::NEWSTATE,
            dict(&["ESTABLISHED", "CLOSE"], vec![Some(0), Some(1), Some(1)]),
        ),
        (col::SK_ERR, Arc::new(Int32Array::from(vec![0, 0, 0]))),
        (col::NETNS, Arc::new(UInt32Array::from(vec![7, 7, 7]))),
        (col::STACK_ID, Arc::new(Int64Array::from(vec![None, Some(4), None]))),
    ]
}

fn kvs_with(overrides: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut kvs = schema::metadata_key_values(&meta()).unwrap();
    for (k, v) in overrides {
        kvs.retain(|(kk, _)| kk != k);
        kvs.push((k.to_string(), v.to_string()));
    }
    kvs
}

/// Metadata of a v1 recording (as the v1 writer wrote it: no
/// `deeptcp.snapshot_sockets`, probes without `rung`/`used`).
fn kvs_v1() -> Vec<(String, String)> {
    let probes = r#"[{"kind":"state_change","probe":"tp_btf:inet_sock_set_state","attached":true,"detail":""}]"#;
    let mut kvs = kvs_with(&[(key::SCHEMA_VERSION, "1"), (key::PROBES, probes)]);
    kvs.retain(|(k, _)| k != key::SNAPSHOT_SOCKETS);
    kvs
}

fn replace(cols: &mut [(&'static str, ArrayRef)], name: &str, a: ArrayRef) {
    for c in cols.iter_mut() {
        if c.0 == name {
            c.1 = a.clone();
        }
    }
}

#[test]
fn hand_written_valid_file_with_plain_strings_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rewritten.parquet");
    let mut cols = good_columns();
    // as if rewritten by another tool: plain / large / view strings
    replace(
        &mut cols,
        col::KIND,
        Arc::new(LargeStringArray::from(vec![
            "state_change",
            "retransmit",
            "destroy_sock",
        ])),
    );
    replace(
        &mut cols,
        col::FAMILY,
        Arc::new(StringViewArray::from(vec!["inet", "inet6", "inet"])),
    );
    // and without `ts`: the reader does not need it
    cols.retain(|(n, _)| *n != col::TS);
    write_raw(&path, cols, kvs_with(&[]));
    let r = RecordingReader::open(&path).unwrap();
    assert!(!r.finished());
    assert_eq!(r.meta().lost_events, 0);
    let evs: Vec<Event> = r.events().collect::<Result<_, _>>().unwrap();
    assert_eq!(evs.len(), 3);
    assert_eq!(evs[0].kind, EventKind::StateChange);
    assert_eq!(evs[2].kind, EventKind::DestroySock);
    assert_eq!(evs[1].family, Family::Inet6);
    assert_eq!(evs[1].saddr, IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)));
    assert_eq!(evs[1].oldstate, None);
    assert_eq!(evs[1].newstate, Some(TcpState::Close));
    assert_eq!(evs[1].stack_id, Some(4));
    assert_eq!(&*evs[1].probe, "inferred:inet_sock_set_state");
    assert_eq!((evs[1].cookie, evs[1].cgroup_id), (5, 9));
    assert_eq!(evs[1].attribution, Attribution::Owner);
    assert_eq!(evs[1].tcp, TcpInfo::default());
    assert_eq!(evs[2].tcp.window, Some(7));
    assert_eq!(evs[0].tcp.bytes_received, Some(6));
    // plain strings (comm here) still decode, allocating per row
    assert_eq!(&*evs[2].comm, "c");
}

#[test]
fn duplicated_metadata_key_takes_last_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dup.parquet");
    let mut kvs = kvs_with(&[]);
    kvs.push((key::LOST_EVENTS.into(), "1".into()));
    kvs.push((key::HOST.into(), "second".into()));
    kvs.push((key::LOST_EVENTS.into(), "2".into()));
    write_raw(&path, good_columns(), kvs);
    let r = RecordingReader::open(&path).unwrap();
    assert_eq!(r.meta().lost_events, 2);
    assert_eq!(r.meta().host, "second");
}

#[test]
fn parquet_without_deeptcp_metadata_is_not_a_recording() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("foreign.parquet");
    write_raw(&path, good_columns(), vec![("other".into(), "x".into())]);
    let err = open_err(&path);
    assert!(matches!(err, FormatError::NotRecording { .. }), "{err}");
    assert!(err.to_string().contains("not a deeptcp recording"), "{err}");
}

#[test]
fn unsupported_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.parquet");
    write_raw(&path, good_columns(), kvs_with(&[(key::SCHEMA_VERSION, "999")]));
    let err = open_err(&path);
    match &err {
        FormatError::UnsupportedVersion { found, supported, .. } => {
            assert_eq!(*found, 999);
            assert_eq!(*supported, SCHEMA_VERSION);
        }
        other => panic!("wrong error {other}"),
    }
    assert!(
        err.to_string().ends_with(
            "trace.parquet: schema version 999 is not supported by this build (supports 1..=2); upgrade deeptcp"
        ),
        "{err}"
    );

    write_raw(&path, good_columns(), kvs_with(&[(key::SCHEMA_VERSION, "0")]));
    let err = open_err(&path);
    assert!(matches!(err, FormatError::UnsupportedVersion { found: 0, .. }), "{err}");
    assert!(
        err.to_string()
            .ends_with("(supports 1..=2); the file is from an unsupported deeptcp version or is corrupt"),
        "{err}"
    );

    write_raw(&path, good_columns(), kvs_with(&[(key::SCHEMA_VERSION, "one")]));
    let err = open_err(&path);
    assert!(matches!(err, FormatError::BadMetadata { .. }), "{err}");
}

#[test]
fn missing_and_bad_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.parquet");
    let mut kvs = kvs_with(&[]);
    kvs.retain(|(k, _)| k != key::CLOCK_MONOTONIC_NS);
    write_raw(&path, good_columns(), kvs);
    let err = open_err(&path);
    assert!(
        matches!(&err, FormatError::MissingMetadata { key: k, .. } if k == key::CLOCK_MONOTONIC_NS),
        "{err}"
    );

    for (k, v) in [
        (key::PROBES, "{not json"),
        (key::KSTACK, "yes"),
        (key::CLOCK_REALTIME_NS, "soon"),
        (key::LOST_EVENTS, "-1"),
    ] {
        write_raw(&path, good_columns(), kvs_with(&[(k, v)]));
        let err = open_err(&path);
        assert!(
            matches!(&err, FormatError::BadMetadata { key: kk, .. } if kk == k),
            "{k}: {err}"
        );
    }
}

#[test]
fn missing_or_mistyped_column_is_bad_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.parquet");
    let mut cols = good_columns();
    cols.retain(|(n, _)| *n != col::DPORT);
    write_raw(&path, cols, kvs_with(&[]));
    let err = open_err(&path);
    assert!(
        matches!(&err, FormatError::BadColumn { column, .. } if column == col::DPORT),
        "{err}"
    );

    let mut cols = good_columns();
    replace(&mut cols, col::PID, Arc::new(Int64Array::from(vec![1, 2, 3])));
    write_raw(&path, cols, kvs_with(&[]));
    let err = open_err(&path);
    assert!(
        matches!(&err, FormatError::BadColumn { column, .. } if column == col::PID),
        "{err}"
    );

    // a v2 file needs every v2 column, typed as documented
    for c in col::ADDED_V2 {
        let mut cols = good_columns();
        cols.retain(|(n, _)| *n != c);
        write_raw(&path, cols, kvs_with(&[]));
        let err = open_err(&path);
        assert!(
            matches!(&err, FormatError::BadColumn { column, detail, .. } if column == c && detail == "missing"),
            "{c}: {err}"
        );
    }
    for (c, a) in [
        (col::COOKIE, Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
        (col::WINDOW, Arc::new(UInt16Array::from(vec![1, 2, 3]))),
        (col::BYTES_ACKED, Arc::new(UInt32Array::from(vec![1, 2, 3]))),
        (col::ATTRIBUTION, Arc::new(UInt32Array::from(vec![1, 2, 3]))),
    ] {
        let mut cols = good_columns();
        replace(&mut cols, c, a);
        write_raw(&path, cols, kvs_with(&[]));
        let err = open_err(&path);
        assert!(
            matches!(&err, FormatError::BadColumn { column, .. } if column == c),
            "{c}: {err}"
        );
    }
}

// ---------------------------------------------------------------------------
// Schema v1 files and v2 specifics

/// The committed v1 recording (testdata/compat/, frozen copy of the v1
/// testdata/loopback.parquet): still reads, with the v2 fields defaulted.
#[test]
fn v1_fixture_reads_with_v2_defaults() {
    let path = repo_root().join("testdata/compat/v1-loopback.parquet");
    let r = RecordingReader::open(&path).unwrap();
    assert_eq!(r.meta().schema_version, 1);
    assert_eq!(r.num_rows(), 61);
    assert!(r.finished());
    assert_eq!(r.meta().snapshot_sockets, 0);
    assert!(r.meta().kstack);
    let probes: Vec<(&str, &str, bool, u32, bool)> = r
        .meta()
        .probes
        .iter()
        .map(|p| (p.kind.as_str(), p.probe.as_str(), p.attached, p.rung, p.used))
        .collect();
    assert_eq!(
        probes,
        [
            ("state_change", "tp_btf:inet_sock_set_state", true, 0, false),
            ("retransmit", "tp_btf:tcp_retransmit_skb", true, 0, false),
            ("reset_recv", "tp_btf:tcp_receive_reset", true, 0, false),
            ("reset_sent", "tp_btf:tcp_send_reset", true, 0, false),
            ("sock_error", "tp_btf:inet_sk_error_report", true, 0, false),
            ("destroy_sock", "tp_btf:tcp_destroy_sock", true, 0, false),
        ]
    );
    let evs: Vec<Event> = r.events().collect::<Result<_, _>>().unwrap();
    assert_eq!(evs.len(), 61);
    let v1_kinds = &EventKind::ALL[..6];
    for e in &evs {
        assert!(v1_kinds.contains(&e.kind), "{:?}", e.kind);
        assert_eq!(&*e.probe, "");
        assert_eq!((e.cookie, e.cgroup_id), (0, 0));
        assert_eq!(e.attribution, Attribution::Unknown);
        assert_eq!(e.tcp, TcpInfo::default());
        assert_eq!(&*e.comm, "python3");
        // one allocation for the whole file
        assert!(Arc::ptr_eq(&e.comm, &evs[0].comm));
        assert!(Arc::ptr_eq(&e.probe, &evs[0].probe));
    }
    assert_eq!(evs.iter().filter(|e| e.kind == EventKind::StateChange).count(), 38);
    assert!(evs.iter().any(|e| e.stack_id.is_some()));
    // its stacks sidecar (schema version 1) still reads too
    let stacks = read_stacks(&stacks_path(&path)).unwrap();
    assert_eq!(stacks.len(), 37);
    for e in &evs {
        if let Some(id) = e.stack_id {
            assert!(stacks.contains_key(&id), "stack {id}");
        }
    }
}

/// A hand-written v1 file: v1 columns only, v1 metadata; a v2 kind in it is accepted.
#[test]
fn hand_written_v1_file_reads_with_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.parquet");
    let mut cols = good_columns_v1();
    replace(
        &mut cols,
        col::KIND,
        dict(&["state_change", "fin_recv"], vec![Some(0), Some(1), Some(0)]),
    );
    write_raw(&path, cols, kvs_v1());
    let r = RecordingReader::open(&path).unwrap();
    assert_eq!(r.meta().schema_version, 1);
    assert_eq!(r.meta().snapshot_sockets, 0);
    assert_eq!(r.meta().probes[0].rung, 0);
    assert!(!r.meta().probes[0].used);
    let evs: Vec<Event> = r.events().collect::<Result<_, _>>().unwrap();
    assert_eq!(evs.len(), 3);
    assert_eq!(evs[1].kind, EventKind::FinRecv);
    for e in &evs {
        assert_eq!(&*e.probe, "");
        assert_eq!((e.cookie, e.cgroup_id, e.attribution), (0, 0, Attribution::Unknown));
        assert_eq!(e.tcp, TcpInfo::default());
    }

    // v2 columns in a file that says v1 are not looked at
    let mut cols = good_columns();
    replace(&mut cols, col::ATTRIBUTION, dict(&["bogus"], vec![None; 3]));
    write_raw(&path, cols, kvs_v1());
    let evs: Vec<Event> = RecordingReader::open(&path)
        .unwrap()
        .events()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(evs
        .iter()
        .all(|e| e.attribution == Attribution::Unknown && e.cookie == 0));

    // a v2 file without the v2 columns is refused up front
    write_raw(&path, good_columns_v1(), kvs_with(&[]));
    let err = open_err(&path);
    assert!(
        matches!(&err, FormatError::BadColumn { column, .. } if column == col::PROBE),
        "{err}"
    );
}

#[test]
fn v2_round_trip_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.parquet");
    let evs = events(900);
    // every kind, every attribution, TcpInfo all-Some and all-None are there
    for k in EventKind::ALL {
        assert!(evs.iter().any(|e| e.kind == k), "{k:?}");
    }
    for a in Attribution::ALL {
        assert!(evs.iter().any(|e| e.attribution == a), "{a:?}");
    }
    assert!(evs.iter().any(|e| e.tcp == TcpInfo::default()));
    assert!(evs.iter().any(|e| e.tcp == tcp_all(0)));
    write_file(&path, &evs, small_opts(), 0);
    let r = RecordingReader::open(&path).unwrap();
    assert_eq!(r.meta().schema_version, 2);
    assert_eq!(r.meta().snapshot_sockets, 17);
    let back: Vec<Event> = r.events().collect::<Result<_, _>>().unwrap();
    assert_eq!(back, canonical(&evs));
    assert_eq!(back[0].tcp, tcp_all(0));
    assert_eq!(back[0].tcp.bytes_received, Some(u64::MAX));
    assert_eq!(back[1].tcp, TcpInfo::default());
    assert_eq!(&*back[3].probe, "snapshot:proc");
    assert_eq!(back[2].cgroup_id, u64::MAX);
}

#[test]
fn decoded_strings_are_shared_not_copied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.parquet");
    // several batches and row groups; comm and probe values recur
    let evs = events(2_600);
    write_file(&path, &evs, small_opts(), 0);
    let back = read_all(&path);
    assert_eq!(back, canonical(&evs));
    // rows 0 and 5 have the same comm; 0 and 4 the same probe (also across batches)
    for (a, b) in [(0, 5), (0, 2_500), (7, 7 + 5 * 400)] {
        assert_eq!(back[a].comm, back[b].comm);
        assert!(Arc::ptr_eq(&back[a].comm, &back[b].comm), "comm of rows {a} and {b}");
    }
    for (a, b) in [(0, 4), (1, 2_001), (3, 1_003)] {
        assert_eq!(back[a].probe, back[b].probe);
        assert!(Arc::ptr_eq(&back[a].probe, &back[b].probe), "probe of rows {a} and {b}");
    }
    assert!(!Arc::ptr_eq(&back[0].comm, &back[1].comm));
}

#[test]
fn many_distinct_probes_overflow_into_new_batches() {
    // `probe` is Dictionary(UInt8, _): 256 keys per batch at most
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("probes.parquet");
    let evs: Vec<Event> = events(1_000)
        .into_iter()
        .enumerate()
        .map(|(i, e)| Event {
            probe: format!("kprobe:p{}", i % 700).into(),
            ..e
        })
        .collect();
    let opts = WriterOptions {
        row_group_rows: 100_000,
        batch_rows: 8192,
        zstd_level: 3,
    };
    write_file(&path, &evs, opts, 0);
    assert!(RecordingReader::open(&path).unwrap().num_row_groups() >= 3);
    assert_eq!(read_all(&path), canonical(&evs));
}

/// A row group ends early where a text column's dictionary passes 1 MiB
/// (here: every row a new IPv6 address), so that no page falls back to
/// plain values and no dictionary grows without bound; every row is kept.
#[test]
fn many_distinct_addresses_end_row_groups_early() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("addrs.parquet");
    let evs: Vec<Event> = events(80_000)
        .into_iter()
        .enumerate()
        .map(|(i, e)| Event {
            family: Family::Inet6,
            saddr: IpAddr::V6(std::net::Ipv6Addr::new(
                0x2001,
                0xdb8,
                0xffff,
                0xffff,
                0xffff,
                0xffff,
                (i >> 16) as u16,
                i as u16,
            )),
            ..e
        })
        .collect();
    let opts = WriterOptions {
        row_group_rows: 1_000_000,
        batch_rows: 4096,
        zstd_level: 1,
    };
    write_file(&path, &evs, opts, 0);
    let groups = RecordingReader::open(&path).unwrap().num_row_groups();
    // ~39 bytes of text and 4 of length per address: 1 MiB is ~26 k of them.
    assert!((3..=4).contains(&groups), "{groups} row groups");
    assert_eq!(read_all(&path), canonical(&evs));
}

/// Rewrites `src` into `dst` with the same rows and `deeptcp.schema_version` replaced.
fn rewrite_with_version(src: &Path, dst: &Path, version: &str) {
    let b = ParquetRecordBatchReaderBuilder::try_new(File::open(src).unwrap()).unwrap();
    let schema = b.schema().clone();
    let kvs: Vec<KeyValue> = b
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .unwrap()
        .iter()
        .filter(|kv| kv.key != "ARROW:schema")
        .map(|kv| {
            if kv.key == key::SCHEMA_VERSION {
                KeyValue::new(kv.key.clone(), version.to_owned())
            } else {
                kv.clone()
            }
        })
        .collect();
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(Default::default()))
        .set_key_value_metadata(Some(kvs))
        .build();
    let mut w = ArrowWriter::try_new(File::create(dst).unwrap(), schema, Some(props)).unwrap();
    for batch in b.build().unwrap() {
        w.write(&batch.unwrap()).unwrap();
    }
    w.close().unwrap();
}

#[test]
fn v2_file_claiming_version_3_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path().join("v2.parquet");
    write_file(&v2, &events(50), WriterOptions::default(), 0);
    // the rewrite itself is faithful
    let same = dir.path().join("same.parquet");
    rewrite_with_version(&v2, &same, "2");
    assert_eq!(read_all(&same), read_all(&v2));

    let v3 = dir.path().join("v3.parquet");
    rewrite_with_version(&v2, &v3, "3");
    let err = open_err(&v3);
    assert!(
        matches!(
            err,
            FormatError::UnsupportedVersion {
                found: 3,
                supported: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .ends_with("v3.parquet: schema version 3 is not supported by this build (supports 1..=2); upgrade deeptcp"),
        "{err}"
    );
}

/// Opens fine, then the event stream yields the good rows and one error.
fn stream_err(path: &Path, good_rows: usize) -> FormatError {
    let mut it = RecordingReader::open(path).unwrap().events();
    for _ in 0..good_rows {
        it.next().unwrap().unwrap();
    }
    let err = it.next().unwrap().err().unwrap();
    assert!(it.next().is_none(), "iteration ends after an error");
    assert_mentions(&err, path);
    err
}

#[test]
fn corrupted_values_are_invalid_value_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corrupt.parquet");
    let cases: Vec<(&str, ArrayRef, u64)> = vec![
        (
            col::KIND,
            dict(&["state_change", "bogus"], vec![Some(0), Some(0), Some(1)]),
            2,
        ),
        (
            col::SADDR,
            Arc::new(StringArray::from(vec!["1.2.3.4", "1.2.3.999", "::1"])),
            1,
        ),
        (
            col::NEWSTATE,
            dict(&["ESTABLISHED", "WHATEVER"], vec![Some(0), Some(1), Some(0)]),
            1,
        ),
        (col::FAMILY, dict(&["inet", "ipx"], vec![Some(1); 3]), 0),
        (col::PID, Arc::new(UInt32Array::from(vec![Some(1), None, Some(3)])), 1),
        (
            col::COMM,
            Arc::new(StringArray::from(vec![Some("a"), Some("b"), None])),
            2,
        ),
        (col::KIND, dict(&["state_change"], vec![Some(0), None, None]), 1),
        (
            col::ATTRIBUTION,
            dict(&["task", "backfil"], vec![Some(0), Some(1), Some(0)]),
            1,
        ),
        (col::ATTRIBUTION, dict(&["task"], vec![Some(0), Some(0), None]), 2),
        (col::PROBE, dict(&["x"], vec![None, Some(0), Some(0)]), 0),
        (
            col::PROBE,
            Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])),
            1,
        ),
        (
            col::COOKIE,
            Arc::new(UInt64Array::from(vec![Some(1), Some(1), None])),
            2,
        ),
        (
            col::CGROUP_ID,
            Arc::new(UInt64Array::from(vec![None, Some(1), None])),
            0,
        ),
    ];
    for (name, arr, bad_row) in cases {
        let mut cols = good_columns();
        replace(&mut cols, name, arr);
        write_raw(&path, cols, kvs_with(&[]));
        let err = stream_err(&path, bad_row as usize);
        match &err {
            FormatError::InvalidValue { row, column, .. } => {
                assert_eq!(*row, bad_row, "{err}");
                assert_eq!(column, name, "{err}");
            }
            other => panic!("{name}: wrong error {other}"),
        }
    }
}

#[test]
fn invalid_value_row_is_absolute() {
    // a bad row in the second batch and second row group
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.parquet");
    let n = 20_000usize;
    let kind_keys: Vec<Option<u8>> = (0..n).map(|i| Some(u8::from(i == 17_000))).collect();
    let cols: Vec<(&str, ArrayRef)> = vec![
        (col::MONO_NS, Arc::new(Int64Array::from_iter_values(0..n as i64))),
        (col::KIND, dict(&["retransmit", "nope"], kind_keys)),
        (col::PID, Arc::new(UInt32Array::from(vec![1; n]))),
        (col::TID, Arc::new(UInt32Array::from(vec![1; n]))),
        (col::COMM, Arc::new(StringArray::from(vec!["x"; n]))),
        (col::FAMILY, dict(&["inet"], vec![Some(0); n])),
        (col::SADDR, Arc::new(StringArray::from(vec!["1.1.1.1"; n]))),
        (col::DADDR, Arc::new(StringArray::from(vec!["1.1.1.1"; n]))),
        (col::SPORT, Arc::new(UInt16Array::from(vec![1; n]))),
        (col::DPORT, Arc::new(UInt16Array::from(vec![1; n]))),
        (col::OLDSTATE, dict(&["CLOSE"], vec![None; n])),
        (col::NEWSTATE, dict(&["CLOSE"], vec![None; n])),
        (col::SK_ERR, Arc::new(Int32Array::from(vec![0; n]))),
        (col::NETNS, Arc::new(UInt32Array::from(vec![0; n]))),
        (col::STACK_ID, Arc::new(Int64Array::from(vec![None; n]))),
    ];
    write_raw(&path, cols, kvs_v1());
    let err = stream_err(&path, 17_000);
    assert!(matches!(&err, FormatError::InvalidValue { row: 17_000, .. }), "{err}");
    assert!(err.to_string().contains("row 17000"), "{err}");
    assert!(err.to_string().contains("\"nope\""), "{err}");
}

// ---------------------------------------------------------------------------
// Stacks sidecar

#[test]
fn stacks_path_cases() {
    let p = |s: &str| stacks_path(Path::new(s));
    assert_eq!(p("x.parquet"), PathBuf::from("x.stacks.parquet"));
    assert_eq!(p("/a/b/trace.parquet"), PathBuf::from("/a/b/trace.stacks.parquet"));
    assert_eq!(p("dir.parquet/x"), PathBuf::from("dir.parquet/x.stacks.parquet"));
    assert_eq!(p("trace"), PathBuf::from("trace.stacks.parquet"));
    assert_eq!(p("trace.pq"), PathBuf::from("trace.pq.stacks.parquet"));
    assert_eq!(p(".parquet"), PathBuf::from(".parquet.stacks.parquet"));
}

#[test]
fn stacks_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("trace.parquet");
    let path = stacks_path(&rec);
    let mut w = StackWriter::new(File::create(&path).unwrap()).unwrap();
    let mut want = std::collections::HashMap::new();
    for id in 0..3000i64 {
        let frames: Vec<String> = (0..(id % 7)).map(|j| format!("func_{}+0x{:x}", j, id)).collect();
        w.push(id * 10, &frames).unwrap();
        want.insert(id * 10, frames);
    }
    let s = w.finish().unwrap();
    assert_eq!(s.rows, 3000);
    assert_eq!(read_stacks(&path).unwrap(), want);

    let md = ParquetMetaDataReader::new()
        .parse_and_finish(&File::open(&path).unwrap())
        .unwrap();
    assert!(md
        .row_groups()
        .iter()
        .flat_map(|rg| rg.columns())
        .all(|c| matches!(c.compression(), Compression::ZSTD(_))));

    // a stacks file is not a recording, and vice versa
    let err = open_err(&path);
    assert!(
        matches!(&err, FormatError::BadColumn { detail, .. } if detail.contains("sidecar")),
        "{err}"
    );
    write_file(&rec, &events(3), WriterOptions::default(), 0);
    let err = read_stacks(&rec).err().unwrap();
    assert!(matches!(err, FormatError::BadColumn { .. }), "{err}");
    std::fs::write(&path, b"junk").unwrap();
    let err = read_stacks(&path).err().unwrap();
    assert!(matches!(err, FormatError::NotParquet { .. }), "{err}");
    assert_mentions(&err, &path);
}

// ---------------------------------------------------------------------------
// Size measurement (run with --ignored --nocapture)

/// 200k events shaped like a busy web host: a few processes, a few dozen
/// peers, connections walking through their states (FIN rows alongside),
/// retransmits, resets and the odd zero window sprinkled in, mono_ns
/// increasing with jitter. v2 fields as the recorder fills them: a handful
/// of probes, owner attribution for softirq events, one cookie per
/// connection (increasing), a few cgroups, TCP fields varying per event.
fn realistic(n: usize) -> Vec<Event> {
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }
    let mut rng = Rng(0x2545F4914F6CDD1D);
    // (comm, pid, cgroup)
    let comms: [(Arc<str>, u32, u64); 4] = [
        ("nginx".into(), 1200, 0x1a2b),
        ("curl".into(), 3400, 0x1a2c),
        ("java".into(), 2100, 0x2f00),
        ("postgres".into(), 900, 0x2f01),
    ];
    let probe = |name: &str| -> Arc<str> { Arc::from(name) };
    let p_state = probe("tp_btf:inet_sock_set_state");
    let p_retrans = probe("tp_btf:tcp_retransmit_skb");
    let p_rst_recv = probe("tp_btf:tcp_receive_reset");
    let p_err = probe("tp_btf:inet_sk_error_report");
    let p_destroy = probe("tp_btf:tcp_destroy_sock");
    let p_fin_recv = probe("fentry:tcp_fin");
    let p_fin_sent = probe("fentry:tcp_send_fin");
    let p_zwin = probe("tp_btf:tcp_probe");
    let no_comm: Arc<str> = Arc::from("");
    let peers: Vec<IpAddr> = (0..24)
        .map(|i| IpAddr::V4(Ipv4Addr::new(10, 1, (i / 8) as u8, (i * 7 % 250) as u8 + 2)))
        .collect();
    let mut mono: i64 = 1_000_000_000_000;
    let mut cookie: u64 = 4096;
    let mut out = Vec::with_capacity(n);
    use TcpState::*;
    let client_path = [
        (Close, SynSent),
        (SynSent, Established),
        (Established, FinWait1),
        (FinWait1, FinWait2),
        (FinWait2, Close),
    ];
    struct Conn {
        comm: Arc<str>,
        pid: u32,
        cgroup: u64,
        cookie: u64,
        peer: IpAddr,
        sport: u16,
        dport: u16,
        srtt: u32,
        acked: u64,
        received: u64,
    }
    #[allow(clippy::too_many_arguments)]
    fn ev(
        rng: &mut Rng,
        c: &mut Conn,
        kind: EventKind,
        probe: &Arc<str>,
        old: Option<TcpState>,
        new: Option<TcpState>,
        mono: i64,
        soft: bool,
    ) -> Event {
        // softirq-driven events carry the remembered owner
        let attribution = if soft { Attribution::Owner } else { Attribution::Task };
        let established = new.is_some_and(|s| s != SynSent && s != Close);
        let tcp = if established {
            c.srtt = (c.srtt + (rng.next() % 64) as u32).saturating_sub(32).max(20);
            c.acked += rng.next() % 20_000;
            c.received += rng.next() % 50_000;
            TcpInfo {
                snd_wnd: Some(64_240 + (rng.next() % 4096) as u32 * 8),
                rcv_wnd: Some(65_483 + (rng.next() % 512) as u32 * 128),
                srtt_us: Some(c.srtt),
                snd_cwnd: Some(10 + (rng.next() % 30) as u32),
                bytes_acked: Some(c.acked),
                bytes_received: Some(c.received),
                window: None,
            }
        } else {
            TcpInfo::default()
        };
        Event {
            mono_ns: mono,
            pid: c.pid,
            tid: c.pid + if soft { 0 } else { (rng.next() % 8) as u32 },
            comm: Arc::clone(&c.comm),
            saddr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)),
            daddr: c.peer,
            sport: c.sport,
            dport: c.dport,
            oldstate: old,
            newstate: new,
            netns: 4026531840,
            probe: Arc::clone(probe),
            cookie: c.cookie,
            cgroup_id: c.cgroup,
            attribution,
            tcp,
            ..testing::event(kind)
        }
    }
    while out.len() < n {
        let (comm, pid, cgroup) = comms[(rng.next() % 4) as usize].clone();
        cookie += 1 + rng.next() % 3;
        let mut c = Conn {
            comm,
            pid,
            cgroup,
            cookie,
            peer: peers[(rng.next() % peers.len() as u64) as usize],
            sport: 32768 + (rng.next() % 28000) as u16,
            dport: [443u16, 80, 5432, 8080][(rng.next() % 4) as usize],
            srtt: 100 + (rng.next() % 5000) as u32,
            acked: 0,
            received: 0,
        };
        for (i, (o, s)) in client_path.iter().enumerate() {
            mono += 20_000 + (rng.next() % 200_000) as i64;
            if i == 2 {
                out.push(ev(
                    &mut rng,
                    &mut c,
                    EventKind::FinSent,
                    &p_fin_sent,
                    None,
                    Some(Established),
                    mono,
                    false,
                ));
                mono += 1_000;
            }
            if i == 3 {
                out.push(ev(
                    &mut rng,
                    &mut c,
                    EventKind::FinRecv,
                    &p_fin_recv,
                    None,
                    Some(FinWait2),
                    mono,
                    true,
                ));
                mono += 1_000;
            }
            let e = ev(
                &mut rng,
                &mut c,
                EventKind::StateChange,
                &p_state,
                Some(*o),
                Some(*s),
                mono,
                i == 1 || i == 3,
            );
            out.push(e);
            if matches!(rng.next() % 20, 0) {
                mono += 200_000 + (rng.next() % 1_000_000) as i64;
                let e = ev(
                    &mut rng,
                    &mut c,
                    EventKind::Retransmit,
                    &p_retrans,
                    None,
                    Some(Established),
                    mono,
                    true,
                );
                out.push(e);
            }
            if i == 1 && matches!(rng.next() % 100, 0) {
                mono += 10_000;
                let mut e = ev(
                    &mut rng,
                    &mut c,
                    EventKind::ZeroWindowRecv,
                    &p_zwin,
                    None,
                    Some(Established),
                    mono,
                    true,
                );
                e.tcp.window = Some(0);
                out.push(e);
            }
        }
        if matches!(rng.next() % 50, 0) {
            mono += (rng.next() % 100_000) as i64;
            let e = ev(
                &mut rng,
                &mut c,
                EventKind::ResetRecv,
                &p_rst_recv,
                None,
                Some(Close),
                mono,
                true,
            );
            out.push(e);
            let mut e = ev(
                &mut rng,
                &mut c,
                EventKind::SockError,
                &p_err,
                None,
                Some(Close),
                mono + 10,
                true,
            );
            e.sk_err = 104;
            out.push(e);
        }
        if matches!(rng.next() % 200, 0) {
            // an RST for a segment that matched no socket: nobody to attribute it to
            let mut e = ev(
                &mut rng,
                &mut c,
                EventKind::ResetRecv,
                &p_rst_recv,
                None,
                None,
                mono + 20,
                true,
            );
            (e.pid, e.tid, e.comm, e.cookie, e.cgroup_id) = (0, 0, Arc::clone(&no_comm), 0, 0);
            e.attribution = Attribution::Unknown;
            out.push(e);
        }
        mono += (rng.next() % 50_000) as i64;
        let e = ev(
            &mut rng,
            &mut c,
            EventKind::DestroySock,
            &p_destroy,
            None,
            Some(Close),
            mono,
            false,
        );
        out.push(e);
    }
    out.truncate(n);
    out
}

#[test]
#[ignore = "measurement; run with --ignored --nocapture"]
fn measure_bytes_per_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.parquet");
    let evs = realistic(200_000);
    let t = std::time::Instant::now();
    let bytes = write_file(&path, &evs, WriterOptions::default(), 0);
    let wt = t.elapsed();
    let t = std::time::Instant::now();
    let back = read_all(&path);
    let rt = t.elapsed();
    assert_eq!(back, evs);
    println!(
        "200000 events: {bytes} bytes, {:.2} bytes/event; write {:?} ({:.0} ns/event), read {:?}",
        bytes as f64 / 200_000.0,
        wt,
        wt.as_nanos() as f64 / 200_000.0,
        rt
    );
    let md = ParquetMetaDataReader::new()
        .parse_and_finish(&File::open(&path).unwrap())
        .unwrap();
    let mut per_col = std::collections::BTreeMap::new();
    for rg in md.row_groups() {
        for c in rg.columns() {
            *per_col.entry(c.column_path().string()).or_insert(0i64) += c.compressed_size();
        }
    }
    for (c, b) in per_col {
        println!("  {c:14} {:6.2} B/event", b as f64 / 200_000.0);
    }
    let per_event = bytes as f64 / 200_000.0;
    assert!(
        per_event <= 20.0,
        "{per_event:.2} B/event is over the 20 B/event budget"
    );
    // Keep the file for poking at it with DuckDB/pandas/polars.
    if let Some(out) = std::env::var_os("DEEPTCP_MEASURE_OUT") {
        std::fs::copy(&path, &out).unwrap();
        let mut w = StackWriter::new(File::create(stacks_path(Path::new(&out))).unwrap()).unwrap();
        w.push(0, &["tcp_reset+0x5a".into(), "tcp_rcv_state_process+0x1f0".into()])
            .unwrap();
        w.finish().unwrap();
    }
}

/// Flips random bytes (half anywhere, half in the footer region) of a good
/// file and opens and streams the result; returns outcome counts, with a
/// panic escaping the reader counted as "PANIC".
fn flip_bytes(trials: usize, mut x: u64) -> std::collections::BTreeMap<String, usize> {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.parquet");
    write_file(&good, &events(3000), small_opts(), 0);
    let data = std::fs::read(&good).unwrap();
    let path = dir.path().join("bad.parquet");
    let mut outcomes = std::collections::BTreeMap::new();
    let variant = |e: &FormatError| format!("{e:?}").split([' ', '(', '{']).next().unwrap().to_owned();
    for trial in 0..trials {
        let mut d = data.clone();
        for _ in 0..1 + trial % 4 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let pos = if trial % 2 == 0 {
                (x as usize) % d.len()
            } else {
                d.len() - 1 - (x as usize) % 3000.min(d.len())
            };
            d[pos] ^= (x >> 32) as u8 | 1;
        }
        std::fs::write(&path, &d).unwrap();
        let outcome = std::panic::catch_unwind(|| match RecordingReader::open(&path) {
            Err(e) => format!("open: {}", variant(&e)),
            Ok(r) => match r.events().find_map(|e| e.err()) {
                None => "ok".into(),
                Some(e) => format!("events: {}", variant(&e)),
            },
        })
        .unwrap_or_else(|_| "PANIC".into());
        *outcomes.entry(outcome).or_insert(0) += 1;
    }
    outcomes
}

#[test]
fn corrupted_bytes_never_panic() {
    let outcomes = flip_bytes(120, 0x9e3779b97f4a7c15);
    assert!(!outcomes.contains_key("PANIC"), "{outcomes:?}");
}

#[test]
#[ignore = "long corruption run; SEED=n to vary"]
fn corrupted_bytes_never_panic_long() {
    let seed = std::env::var("SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(12345);
    let outcomes = flip_bytes(5000, seed);
    for (k, v) in &outcomes {
        println!("{v:5} {k}");
    }
    assert!(!outcomes.contains_key("PANIC"), "{outcomes:?}");
}

#[test]
#[ignore = "measurement; run with --ignored --nocapture"]
fn measure_flush_overhead() {
    // A quiet host: 10 events/s for an hour, flushed every second (3600 row
    // groups) versus the same events in full-size row groups.
    let dir = tempfile::tempdir().unwrap();
    let evs = realistic(36_000);
    let per_second = dir.path().join("flushed.parquet");
    let mut w = EventWriter::new(File::create(&per_second).unwrap(), &meta(), WriterOptions::default()).unwrap();
    for chunk in evs.chunks(10) {
        for e in chunk {
            w.push(e).unwrap();
        }
        w.flush().unwrap();
    }
    let flushed = w.finish(0).unwrap().bytes;
    let once = write_file(&dir.path().join("once.parquet"), &evs, WriterOptions::default(), 0);
    println!(
        "36000 events: flushed every 10 rows {flushed} bytes ({:.1} B/event), one row group {once} bytes ({:.1} B/event)",
        flushed as f64 / 36_000.0,
        once as f64 / 36_000.0
    );
    let t = std::time::Instant::now();
    assert_eq!(read_all(&per_second).len(), 36_000);
    println!("reading the 3600-row-group file: {:?}", t.elapsed());
}

/// `scan_addresses` sees every address of a row group (as the reader
/// decodes it: v4-mapped ones as IPv4), reading only the address columns.
#[test]
fn scan_addresses_sees_every_address_of_each_row_group() {
    use std::collections::HashSet;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.parquet");
    let evs = events(2500);
    write_file(&path, &evs, small_opts(), 0);
    let groups = RecordingReader::open(&path).unwrap().row_groups();
    assert!(groups.len() >= 3);
    let mut first = 0usize;
    for rg in 0..groups.len() {
        let mut seen = HashSet::new();
        groups
            .scan_addresses(rg, |a| {
                seen.insert(a);
            })
            .unwrap();
        let n = groups.rows(rg) as usize;
        let want: HashSet<IpAddr> = read_all(&path)[first..first + n]
            .iter()
            .flat_map(|e| [e.saddr, e.daddr])
            .collect();
        assert!(
            want.is_subset(&seen),
            "row group {rg}: {:?} missing",
            want.difference(&seen)
        );
        assert!(want.iter().any(|a| a.is_ipv6()), "row group {rg} has IPv6");
        first += n;
    }
    assert!(groups.scan_addresses(groups.len(), |_| {}).is_err());
}
