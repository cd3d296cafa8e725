//! A recording's bytes can change after they were written (a bad disk, a
//! bad copy) and files can be crafted. These tests check that such changes
//! never pass silently: page checksums (CRC32) are written and verified,
//! `ReadOptions::skip_corrupt` leaves out exactly the damaged row groups,
//! metadata values are bounded, clock anchors are range-checked, and a
//! checkpoint sidecar whose records do not add up is refused (also by
//! repair, which re-verifies what it keeps).

use std::fs::File;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use deeptcp_format::schema::key;
use deeptcp_format::testing;
use deeptcp_format::testing::python::{python, repo_root, run};
use deeptcp_format::{
    checkpoint_path, repair, Attribution, ClockAnchor, Event, EventKind, EventWriter, FormatError, ProbeStatus,
    ReadOptions, RecordingMeta, RecordingReader, RepairOutcome, StackWriter, TcpInfo, TcpState, WriterOptions,
};
use parquet::file::metadata::{FileMetaData, KeyValue, ParquetMetaData, ParquetMetaDataReader, ParquetMetaDataWriter};

fn meta() -> RecordingMeta {
    RecordingMeta {
        host: "integrity-host".into(),
        kernel_release: "6.8.0-test".into(),
        boot_id: "4d6f6e64-6179-4d6f-726e-696e67000002".into(),
        clock: ClockAnchor {
            realtime_ns: 1_700_000_000_000_000_000,
            monotonic_ns: 5_000_000_000,
        },
        recorder_version: "integrity-test".into(),
        probes: vec![ProbeStatus {
            kind: "state_change".into(),
            probe: "tp_btf:inet_sock_set_state".into(),
            attached: true,
            detail: String::new(),
            rung: 0,
            used: true,
        }],
        kstack: false,
        snapshot_sockets: 2,
        ..Default::default()
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `n` events with values that vary the way a busy host's do (so pages
/// hold real entropy, not runs that compress to nothing).
fn events(n: usize) -> Vec<Event> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let comms: Vec<Arc<str>> = ["nginx", "curl", "java", "postgres", "sshd"]
        .into_iter()
        .map(Arc::from)
        .collect();
    let probes: Vec<Arc<str>> = [
        "tp_btf:inet_sock_set_state",
        "tp_btf:tcp_retransmit_skb",
        "fentry:tcp_fin",
    ]
    .into_iter()
    .map(Arc::from)
    .collect();
    let mut mono = 5_000_000_000i64;
    (0..n)
        .map(|i| {
            let r = rng.next();
            mono += 1 + (r % 50_000) as i64;
            let kind = EventKind::ALL[(r >> 8) as usize % EventKind::ALL.len()];
            let peer = IpAddr::V4(Ipv4Addr::new(10, (r >> 16) as u8 % 4, (r >> 24) as u8, (r >> 32) as u8));
            Event {
                mono_ns: mono,
                pid: 1000 + (r >> 40) as u32 % 50,
                tid: 1000 + (r >> 44) as u32 % 80,
                comm: Arc::clone(&comms[(r >> 48) as usize % comms.len()]),
                saddr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                daddr: peer,
                sport: (r >> 20) as u16 | 1024,
                dport: [443, 80, 5432, 22][(r >> 52) as usize % 4],
                oldstate: (kind == EventKind::StateChange).then_some(TcpState::SynSent),
                newstate: (kind == EventKind::StateChange).then_some(TcpState::Established),
                netns: 4026531840,
                probe: Arc::clone(&probes[(r >> 56) as usize % probes.len()]),
                cookie: 1 << 32 | (i as u64 / 3) ^ (r & 0xff),
                cgroup_id: 0x1a2b,
                attribution: Attribution::Task,
                tcp: if r.is_multiple_of(3) {
                    TcpInfo::default()
                } else {
                    TcpInfo {
                        snd_wnd: Some(65_535),
                        rcv_wnd: Some((r >> 12) as u32 % 100_000),
                        srtt_us: Some((r >> 30) as u32 % 5000),
                        snd_cwnd: Some(10),
                        bytes_acked: Some(r >> 40),
                        bytes_received: Some(r >> 36),
                        window: None,
                    }
                },
                ..testing::event(kind)
            }
        })
        .collect()
}

/// Several row groups of several pages each.
fn opts() -> WriterOptions {
    WriterOptions {
        row_group_rows: 4096,
        batch_rows: 1024,
        ..WriterOptions::default()
    }
}

const ROWS: usize = 20_000;

fn write(path: &Path, evs: &[Event]) {
    let mut w = EventWriter::new(File::create(path).unwrap(), &meta(), opts()).unwrap();
    for e in evs {
        w.push(e).unwrap();
    }
    w.finish(0).unwrap();
}

fn footer(path: &Path) -> ParquetMetaData {
    ParquetMetaDataReader::new()
        .parse_and_finish(&File::open(path).unwrap())
        .unwrap()
}

/// Byte ranges of every column chunk (its pages: headers and data), with
/// the row group each belongs to and the column's name.
fn chunks(path: &Path) -> Vec<(usize, String, std::ops::Range<usize>)> {
    let md = footer(path);
    let mut out = Vec::new();
    for (rg, g) in md.row_groups().iter().enumerate() {
        for c in g.columns() {
            let start = c.dictionary_page_offset().unwrap_or_else(|| c.data_page_offset()) as usize;
            out.push((
                rg,
                c.column_path().string(),
                start..start + c.compressed_size() as usize,
            ));
        }
    }
    out
}

/// Everything a reader hands out: the metadata and the rows, or the first error.
fn read(path: &Path) -> Result<(RecordingMeta, Vec<Event>), FormatError> {
    let r = RecordingReader::open(path)?;
    let meta = r.meta().clone();
    let rows = r.events().collect::<Result<Vec<_>, _>>()?;
    Ok((meta, rows))
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

/// Flips one seeded bit inside the column chunks (page headers and data)
/// of a good file, `trials` times; returns (errors, identical, silently
/// different) counts and the first silent change found.
fn flip_in_pages(trials: usize, seed: u64) -> (usize, usize, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.parquet");
    let evs = events(ROWS);
    write(&good, &evs);
    let original = read(&good).unwrap();
    assert_eq!(original.1, evs);
    let data = std::fs::read(&good).unwrap();
    let ranges = chunks(&good);
    let total: usize = ranges.iter().map(|(_, _, r)| r.len()).sum();
    let mut rng = Rng(seed | 1);
    let bad = dir.path().join("bad.parquet");
    let (mut errors, mut same, mut silent) = (0, 0, Vec::new());
    for _ in 0..trials {
        // A uniformly chosen byte of the pages, a uniformly chosen bit.
        let mut at = (rng.next() % total as u64) as usize;
        let (rg, column, range) = ranges
            .iter()
            .find(|(_, _, r)| {
                if at < r.len() {
                    true
                } else {
                    at -= r.len();
                    false
                }
            })
            .unwrap();
        let pos = range.start + at;
        let bit = 1u8 << (rng.next() % 8);
        let mut d = data.clone();
        d[pos] ^= bit;
        std::fs::write(&bad, &d).unwrap();
        match read(&bad) {
            Err(e) => {
                let msg = chain(&e);
                assert!(
                    msg.contains("bad.parquet") && msg.contains("row group"),
                    "the error names the file and the row group: {msg}"
                );
                errors += 1;
            }
            Ok(got) if got == original => same += 1,
            Ok(_) => silent.push(format!("byte {pos} bit {bit:#04x} (row group {rg}, column {column})")),
        }
    }
    (errors, same, silent)
}

/// The issue's acceptance: 20 seeded single-bit flips in data pages each
/// give an error or the same output, never silently different rows.
#[test]
fn seeded_bit_flips_in_pages_give_an_error_or_the_same_rows() {
    let (errors, same, silent) = flip_in_pages(20, 0x5eed_0001);
    eprintln!(
        "20 flips: {errors} errors, {same} identical, {} silently different",
        silent.len()
    );
    assert!(silent.is_empty(), "silently different output after: {silent:#?}");
    assert!(errors >= 15, "a flipped page is an error ({errors} of 20)");
}

#[test]
#[ignore = "long run; SEED=n TRIALS=n to vary"]
fn seeded_bit_flips_in_pages_long() {
    let seed = std::env::var("SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(7);
    let trials = std::env::var("TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(500);
    let (errors, same, silent) = flip_in_pages(trials, seed);
    eprintln!(
        "{trials} flips: {errors} errors, {same} identical, {} silently different",
        silent.len()
    );
    assert!(silent.is_empty(), "silently different output after: {silent:#?}");
}

/// The row group, column and page of a flip near the end of `column`'s
/// chunk in row group `rg` (inside the last page's data).
fn flip_late_in_chunk(path: &Path, out: &Path, rg: usize, column: &str) {
    let (_, _, range) = chunks(path)
        .into_iter()
        .find(|(g, c, _)| *g == rg && c == column)
        .unwrap();
    let mut d = std::fs::read(path).unwrap();
    d[range.end - 3] ^= 0x10;
    std::fs::write(out, d).unwrap();
}

#[test]
fn a_corrupt_page_is_an_error_naming_file_row_group_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.parquet");
    let evs = events(ROWS);
    write(&good, &evs);
    let bad = dir.path().join("flipped.parquet");
    flip_late_in_chunk(&good, &bad, 2, "cookie");
    let r = RecordingReader::open(&bad).unwrap();
    let mut rows = 0;
    let mut err = None;
    for ev in r.events() {
        match ev {
            Ok(_) => rows += 1,
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let err = err.expect("a flipped page is an error");
    assert!(
        matches!(err, FormatError::CorruptRowGroup { row_group: 2, .. }),
        "{err:?}"
    );
    let msg = chain(&err);
    assert!(
        msg.contains("flipped.parquet: row group 2, column `cookie`: ") && msg.contains("checksum"),
        "{msg}"
    );
    assert_eq!(rows, 2 * 4096, "the rows before the damaged row group, none of it");

    // Row group by row group (the parallel decoders' path): only group 2 fails.
    let g = RecordingReader::open(&bad).unwrap().row_groups();
    for rg in 0..g.len() {
        let res: Result<Vec<Event>, _> = g.events(rg).unwrap().collect();
        match (rg, res) {
            (2, Err(e)) => assert!(chain(&e).contains("row group 2, column `cookie`"), "{e}"),
            (2, Ok(_)) => panic!("row group 2 read despite a flipped page"),
            (_, r) => assert_eq!(r.unwrap().len(), g.rows(rg) as usize),
        }
    }
}

/// Rows of `evs` without those of the given row groups (4096 rows each).
fn without_groups(evs: &[Event], skipped: &[(usize, u64)]) -> Vec<Event> {
    evs.iter()
        .enumerate()
        .filter(|(i, _)| {
            let rg = i / 4096;
            let end = ((rg + 1) * 4096).min(evs.len());
            !skipped.iter().any(|&(g, n)| g == rg && *i >= end - n as usize)
        })
        .map(|(_, e)| e.clone())
        .collect()
}

/// Reads with `skip_corrupt`: the rows, and (row group, rows skipped) of
/// each warning.
fn read_skipping(path: &Path) -> (Vec<Event>, Vec<(usize, u64)>) {
    let r = RecordingReader::open_with(path, ReadOptions { skip_corrupt: true }).unwrap();
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for ev in r.events() {
        match ev {
            Ok(e) => rows.push(e),
            Err(FormatError::SkippedRowGroup {
                row_group,
                skipped: n,
                rows: all,
                path: ref at,
                ..
            }) => {
                assert!(n <= all && n > 0);
                assert_eq!(at, path);
                skipped.push((row_group, n));
            }
            Err(e) => panic!("with skip_corrupt only skipped row groups are errors: {e:?}"),
        }
    }
    (rows, skipped)
}

#[test]
fn skip_corrupt_leaves_out_the_damaged_row_group_only() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.parquet");
    let evs = events(ROWS);
    write(&good, &evs);
    let bad = dir.path().join("flipped.parquet");
    flip_late_in_chunk(&good, &bad, 1, "mono_ns");

    let (rows, skipped) = read_skipping(&bad);
    assert_eq!(
        skipped,
        [(1, 4096)],
        "the whole damaged row group, before any of its rows"
    );
    assert_eq!(rows, without_groups(&evs, &skipped));

    // The warning says what happened and where.
    let r = RecordingReader::open_with(&bad, ReadOptions { skip_corrupt: true }).unwrap();
    let warning = r.events().find_map(Result::err).unwrap();
    let msg = chain(&warning);
    assert!(
        msg.starts_with(&format!("{}: skipped row group 1 (4096 rows)", bad.display()))
            && msg.contains("column `mono_ns`")
            && msg.contains("checksum"),
        "{msg}"
    );

    // Row group by row group: the damaged one is only the warning.
    let g = RecordingReader::open_with(&bad, ReadOptions { skip_corrupt: true })
        .unwrap()
        .row_groups();
    let mut all = Vec::new();
    for rg in 0..g.len() {
        for ev in g.events(rg).unwrap() {
            match ev {
                Ok(e) => all.push(e),
                Err(FormatError::SkippedRowGroup { row_group: 1, .. }) if rg == 1 => {}
                Err(e) => panic!("row group {rg}: {e}"),
            }
        }
    }
    assert_eq!(all, rows);

    // A good file reads the same with and without the option.
    assert_eq!(read_skipping(&good), (evs, vec![]));
}

/// With `skip_corrupt` every seeded flip leaves exactly the rows of the
/// undamaged row groups (and of a damaged one, those before the damage when
/// it could only be found part-way), each skip with a warning.
#[test]
fn skip_corrupt_keeps_every_good_row_under_seeded_flips() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.parquet");
    let evs = events(ROWS);
    write(&good, &evs);
    let data = std::fs::read(&good).unwrap();
    let ranges = chunks(&good);
    let bad = dir.path().join("bad.parquet");
    let mut rng = Rng(0x5eed_0002);
    let mut warned = 0;
    for _ in 0..20 {
        let (_, _, range) = &ranges[(rng.next() % ranges.len() as u64) as usize];
        let pos = range.start + (rng.next() % range.len() as u64) as usize;
        let mut d = data.clone();
        d[pos] ^= 1 << (rng.next() % 8);
        std::fs::write(&bad, &d).unwrap();
        let (rows, skipped) = read_skipping(&bad);
        assert_eq!(rows, without_groups(&evs, &skipped), "flip at byte {pos}: {skipped:?}");
        warned += usize::from(!skipped.is_empty());
    }
    assert!(warned >= 15, "{warned} of 20 flips found");
}

/// pyarrow (Arrow C++) checks the page checksums deeptcp writes: a good
/// file passes its verification, a flipped page fails it.
#[test]
fn pyarrow_verifies_the_written_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.parquet");
    write(&good, &events(ROWS));
    let bad = dir.path().join("flipped.parquet");
    flip_late_in_chunk(&good, &bad, 3, "sport");
    let script = r#"
import sys
try:
    import pyarrow.parquet as pq
except ImportError as e:
    print(f"missing python package: {e.name}", file=sys.stderr)
    sys.exit(3)
good, bad = sys.argv[1], sys.argv[2]
t = pq.read_table(good, page_checksum_verification=True)
assert t.num_rows == 20000, t.num_rows
try:
    pq.read_table(bad, page_checksum_verification=True)
except OSError as e:
    assert "CRC" in str(e) or "checksum" in str(e).lower(), str(e)
    print("checksums ok")
    sys.exit(0)
print("pyarrow read the flipped file without a checksum error", file=sys.stderr)
sys.exit(1)
"#;
    let mut cmd = Command::new(python());
    cmd.arg("-c").arg(script).arg(&good).arg(&bad);
    let Some(out) = run("interop test", &mut cmd) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pyarrow: {stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("checksums ok"));
}

// ---------------------------------------------------------------------------
// Metadata
// ---------------------------------------------------------------------------

/// `src` with its footer's key-value metadata changed by `f`, written to `dst`.
fn rewrite_metadata(src: &Path, dst: &Path, f: impl FnOnce(&mut Vec<KeyValue>)) {
    let bytes = std::fs::read(src).unwrap();
    let n = bytes.len();
    let footer_len = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().unwrap()) as usize;
    let md = footer(src);
    let fm = md.file_metadata();
    let mut kvs = fm.key_value_metadata().cloned().unwrap_or_default();
    f(&mut kvs);
    let new = ParquetMetaData::new(
        FileMetaData::new(
            fm.version(),
            fm.num_rows(),
            fm.created_by().map(str::to_owned),
            Some(kvs),
            fm.schema_descr_ptr(),
            None,
        ),
        md.row_groups().to_vec(),
    );
    let mut out = bytes[..n - 8 - footer_len].to_vec();
    ParquetMetaDataWriter::new(&mut out, &new)
        .with_preserve_page_index_locations(true)
        .finish()
        .unwrap();
    std::fs::write(dst, out).unwrap();
}

fn set(kvs: &mut Vec<KeyValue>, k: &str, v: String) {
    kvs.retain(|kv| kv.key != k);
    kvs.push(KeyValue::new(k.to_owned(), v));
}

#[test]
fn a_huge_metadata_value_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.parquet");
    write(&good, &events(100));
    let big = dir.path().join("big-host.parquet");
    rewrite_metadata(&good, &big, |kvs| set(kvs, key::HOST, "h".repeat(100 << 20)));
    let e = RecordingReader::open(&big).unwrap_err();
    let msg = chain(&e);
    assert!(
        matches!(&e, FormatError::BadMetadata { key, .. } if key == "deeptcp.host"),
        "{e:?}"
    );
    assert!(
        msg.contains("big-host.parquet: bad value for metadata key `deeptcp.host`: ")
            && msg.contains("104857600 bytes")
            && msg.contains("at most 1024"),
        "{msg}"
    );
    assert!(
        msg.len() < 400,
        "the message does not carry the value: {} bytes",
        msg.len()
    );

    // Every deeptcp key is bounded, not only the host.
    for (k, limit) in [
        (key::PROBES, 64 << 10),
        (key::KERNEL_RELEASE, 1 << 10),
        (key::LOST_INTERVALS, 256 << 10),
        (key::SCHEMA_VERSION, 1 << 10),
    ] {
        let f = dir.path().join("one.parquet");
        rewrite_metadata(&good, &f, |kvs| set(kvs, k, " ".repeat(limit + 1)));
        let e = RecordingReader::open(&f).unwrap_err();
        assert!(
            matches!(&e, FormatError::BadMetadata { key, .. } if key == k),
            "{k}: {e:?}"
        );
        // At the limit a value is not refused for its size.
        rewrite_metadata(&good, &f, |kvs| set(kvs, k, " ".repeat(limit)));
        let e = RecordingReader::open(&f).err().map(|e| chain(&e)).unwrap_or_default();
        assert!(!e.contains("bytes, at most"), "{k}: {e}");
    }

    // So many keys that together they pass the total: refused too.
    let f = dir.path().join("many.parquet");
    rewrite_metadata(&good, &f, |kvs| {
        for i in 0..2000 {
            kvs.push(KeyValue::new(format!("deeptcp.x{i}"), "y".repeat(1000)));
        }
    });
    let e = chain(&RecordingReader::open(&f).unwrap_err());
    assert!(e.contains("metadata") && e.contains("in all"), "{e}");

    // The writer refuses what the reader would refuse.
    let m = RecordingMeta {
        host: "h".repeat(2000),
        ..meta()
    };
    let Err(e) = EventWriter::new(File::create(dir.path().join("w.parquet")).unwrap(), &m, opts()) else {
        panic!("an oversized host must be refused when writing");
    };
    assert!(
        matches!(&e, FormatError::BadMetadata { key, .. } if key == "deeptcp.host"),
        "{e:?}"
    );
}

/// `src` with row group `rg`'s row count (or, for `None`, the file's)
/// lowered by 4 in its footer, written to `dst`.
fn rewrite_row_count(src: &Path, dst: &Path, rg: Option<usize>) {
    let mut bytes = std::fs::read(src).unwrap();
    let n = bytes.len();
    let footer_len = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().unwrap()) as usize;
    if rg.is_none() {
        // parquet's footer writer recomputes the file's count: patch the
        // bytes. FileMetaData field 3 (i64) 20000, zigzag varint, becomes 19996.
        let (from, to) = ([0x16, 0xc0, 0xb8, 0x02], [0x16, 0xb8, 0xb8, 0x02]);
        let start = n - 8 - footer_len;
        let at = bytes[start..].windows(4).position(|w| w == from).unwrap() + start;
        bytes[at..at + 4].copy_from_slice(&to);
        std::fs::write(dst, bytes).unwrap();
        return;
    }
    let md = footer(src);
    let fm = md.file_metadata();
    let groups = md
        .row_groups()
        .iter()
        .enumerate()
        .map(|(i, g)| match rg {
            Some(r) if r == i => g.clone().into_builder().set_num_rows(g.num_rows() - 4).build().unwrap(),
            _ => g.clone(),
        })
        .collect();
    let new = ParquetMetaData::new(
        FileMetaData::new(
            fm.version(),
            fm.num_rows(),
            fm.created_by().map(str::to_owned),
            fm.key_value_metadata().cloned(),
            fm.schema_descr_ptr(),
            None,
        ),
        groups,
    );
    let mut out = bytes[..n - 8 - footer_len].to_vec();
    ParquetMetaDataWriter::new(&mut out, &new)
        .with_preserve_page_index_locations(true)
        .finish()
        .unwrap();
    std::fs::write(dst, out).unwrap();
}

/// Row counts in the footer are not covered by page checksums: they must
/// agree with each other and with the column chunks, or rows would be
/// dropped silently.
#[test]
fn a_footer_whose_row_counts_disagree_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.parquet");
    write(&good, &events(ROWS));
    for rg in [Some(0), Some(3), None] {
        let bad = dir.path().join("counts.parquet");
        rewrite_row_count(&good, &bad, rg);
        let e = match read(&bad) {
            Ok((_, rows)) => panic!("{rg:?}: read {} rows of {ROWS} without an error", rows.len()),
            Err(e) => chain(&e),
        };
        assert!(e.contains("counts.parquet") && e.contains("rows"), "{rg:?}: {e}");
    }
}

#[test]
fn an_implausible_clock_anchor_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.parquet");
    write(&good, &events(100));
    for (k, v) in [
        (key::CLOCK_MONOTONIC_NS, i64::MIN),
        (key::CLOCK_MONOTONIC_NS, -1),
        (key::CLOCK_REALTIME_NS, i64::MAX),
        (key::CLOCK_REALTIME_NS, i64::MIN),
    ] {
        let f = dir.path().join("clock.parquet");
        rewrite_metadata(&good, &f, |kvs| set(kvs, k, v.to_string()));
        let e = RecordingReader::open(&f).unwrap_err();
        assert!(
            matches!(&e, FormatError::BadMetadata { key, .. } if key == k),
            "{k}={v}: {e:?}"
        );
        assert!(e.to_string().contains("out of range"), "{e}");
    }
    let m = RecordingMeta {
        clock: ClockAnchor {
            realtime_ns: 1,
            monotonic_ns: i64::MIN,
        },
        ..meta()
    };
    assert!(EventWriter::new(File::create(dir.path().join("w.parquet")).unwrap(), &m, opts()).is_err());
}

// ---------------------------------------------------------------------------
// Checkpoints
// ---------------------------------------------------------------------------

fn create(path: &Path) -> File {
    File::options().write(true).create_new(true).open(path).unwrap()
}

/// A recording "killed" after `groups` flushes of `per` rows (and some
/// unflushed rows): the file and its sidecar as they were on disk. Returns
/// the path of the copy and its rows.
fn crashed(dir: &Path, name: &str, groups: usize, per: usize) -> (PathBuf, Vec<Event>) {
    let live = dir.join(format!("live-{name}"));
    let evs = events(groups * per + 100);
    let mut w = EventWriter::with_checkpoints(create(&live), &live, &meta(), WriterOptions::default()).unwrap();
    for (i, e) in evs.iter().enumerate() {
        w.push(e).unwrap();
        if (i + 1) % per == 0 && i < groups * per {
            w.flush().unwrap();
        }
    }
    let copy = dir.join(name);
    std::fs::copy(&live, &copy).unwrap();
    std::fs::copy(checkpoint_path(&live), checkpoint_path(&copy)).unwrap();
    drop(w);
    (copy, evs[..groups * per].to_vec())
}

/// The records of a sidecar as (offset, length) of each whole record.
fn records(sidecar: &[u8]) -> Vec<(usize, usize)> {
    let mut at = 16;
    let mut out = Vec::new();
    while at + 12 <= sidecar.len() {
        let len = u32::from_le_bytes(sidecar[at..at + 4].try_into().unwrap()) as usize;
        out.push((at, 12 + len));
        at += 12 + len;
    }
    out
}

/// 64-bit FNV-1a, the sidecar's record checksum.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn assert_refused(path: &Path, what: &str) {
    let before = std::fs::read(path).unwrap();
    let ck_before = std::fs::read(checkpoint_path(path)).unwrap();
    let e = RecordingReader::open_recovering(path).unwrap_err();
    assert!(matches!(e, FormatError::Checkpoint { .. }), "{what}: {e:?}");
    assert!(chain(&e).contains(what), "{what}: {}", chain(&e));
    let e = repair(path).unwrap_err();
    assert!(chain(&e).contains(what), "{what}: {}", chain(&e));
    assert_eq!(std::fs::read(path).unwrap(), before, "a refused repair changes nothing");
    assert_eq!(std::fs::read(checkpoint_path(path)).unwrap(), ck_before);
}

/// The issue's forgery: the last record appended again (its checksum is
/// valid) would read its row groups twice.
#[test]
fn a_checkpoint_record_appended_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, evs) = crashed(dir.path(), "dup.parquet", 3, 2000);
    let r = RecordingReader::open_recovering(&path).unwrap();
    assert_eq!(r.events().collect::<Result<Vec<_>, _>>().unwrap(), evs);

    let ck = checkpoint_path(&path);
    let mut side = std::fs::read(&ck).unwrap();
    let &(at, len) = records(&side).last().unwrap();
    let last = side[at..at + len].to_vec();
    side.extend_from_slice(&last);
    std::fs::write(&ck, &side).unwrap();
    assert_refused(&path, "checkpoint record 4 does not follow record 3");
}

/// A record whose row count does not add up with its row groups, with a
/// valid checksum.
#[test]
fn a_checkpoint_record_with_wrong_counts_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = crashed(dir.path(), "rows.parquet", 2, 1500);
    let ck = checkpoint_path(&path);
    let mut side = std::fs::read(&ck).unwrap();
    let &(at, len) = records(&side).last().unwrap();
    // body: u64 data length, u64 rows, ...; bump rows and re-checksum.
    let rows_at = at + 12 + 8;
    let rows = u64::from_le_bytes(side[rows_at..rows_at + 8].try_into().unwrap());
    side[rows_at..rows_at + 8].copy_from_slice(&(rows + 1000).to_le_bytes());
    let sum = fnv1a(&side[at + 12..at + len]);
    side[at + 4..at + 12].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(&ck, &side).unwrap();
    assert_refused(&path, "rows");
}

/// Repair re-verifies the row groups it keeps: a flipped page in one of
/// them makes it refuse (naming the row group), changing nothing.
#[test]
fn repair_verifies_the_row_groups_it_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = crashed(dir.path(), "flip.parquet", 3, 2000);
    let rec = RecordingReader::open_recovering(&path).unwrap();
    assert_eq!(rec.num_row_groups(), 3);
    drop(rec);
    // A byte late in row group 1's first column chunk.
    let md = {
        let side = std::fs::read(checkpoint_path(&path)).unwrap();
        let recs = records(&side);
        let (at, len) = recs[2];
        let body = &side[at + 12..at + len];
        ParquetMetaDataReader::decode_metadata(&body[32..body.len() - 8]).unwrap()
    };
    let c = &md.row_group(0).columns()[1];
    let end = (c.dictionary_page_offset().unwrap_or_else(|| c.data_page_offset()) + c.compressed_size()) as u64;
    let mut f = File::options().write(true).open(&path).unwrap();
    use std::io::{Read, Seek, SeekFrom};
    let mut b = [0u8; 1];
    let mut rf = File::open(&path).unwrap();
    rf.seek(SeekFrom::Start(end - 2)).unwrap();
    rf.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(end - 2)).unwrap();
    f.write_all(&[b[0] ^ 4]).unwrap();
    drop(f);
    let before = std::fs::read(&path).unwrap();
    let e = repair(&path).unwrap_err();
    let msg = chain(&e);
    assert!(msg.contains("row group 1") && msg.contains("checksum"), "{msg}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert!(checkpoint_path(&path).exists());
}

#[test]
fn repairing_a_stacks_sidecar_counts_stacks() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.stacks.parquet");
    let mut w = StackWriter::with_checkpoints(create(&live), &live).unwrap();
    for id in 0..40 {
        w.push(id, &[format!("f{id}+0x1")]).unwrap();
    }
    w.flush().unwrap();
    let copy = dir.path().join("c.stacks.parquet");
    std::fs::copy(&live, &copy).unwrap();
    std::fs::copy(checkpoint_path(&live), checkpoint_path(&copy)).unwrap();
    drop(w);
    let report = repair(&copy).unwrap();
    assert!(
        matches!(report.outcome, RepairOutcome::Repaired { rows: 40, .. }),
        "{report:?}"
    );
    let text = report.to_string();
    assert!(text.contains("repaired: 40 stacks in 1 row groups"), "{text}");
    assert!(!text.contains("events"), "{text}");
}

#[test]
fn the_committed_fixture_without_checksums_still_reads() {
    let path = repo_root().join("testdata/loopback.parquet");
    if !path.exists() {
        return;
    }
    let n = RecordingReader::open(&path).unwrap().num_rows();
    let (rows, skipped) = read_skipping(&path);
    assert_eq!((rows.len() as u64, skipped.len()), (n, 0));
}
