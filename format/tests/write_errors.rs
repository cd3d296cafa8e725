//! A write that fails part-way (here: the file size limit, RLIMIT_FSIZE,
//! which fails writes with EFBIG like a full disk fails them with ENOSPC)
//! gives an error naming the file and the errno, and the file can still be
//! closed at its last checkpoint as a readable recording.
//!
//! Its own test binary: the size limit is per process.

use std::fs::File;
use std::sync::Arc;

mod support;
use support::set_fsize_limit;

use deeptcp_format::testing;
use deeptcp_format::{
    checkpoint_path, ClockAnchor, Event, EventKind, EventWriter, FormatError, RecordingMeta, RecordingReader,
    WriterOptions,
};

fn event(i: u64, probe: &Arc<str>) -> Event {
    Event {
        mono_ns: i as i64,
        pid: i as u32,
        tid: (i * 7) as u32,
        comm: format!("c{}", i % 1000).into(),
        saddr: format!("10.{}.{}.{}", i % 256, (i / 256) % 256, i % 7).parse().unwrap(),
        daddr: "192.0.2.1".parse().unwrap(),
        sport: i as u16,
        dport: (i * 13) as u16,
        netns: 1,
        probe: Arc::clone(probe),
        cookie: i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        attribution: deeptcp_format::Attribution::Task,
        ..testing::event(EventKind::ALL[i as usize % EventKind::ALL.len()])
    }
}

#[test]
fn a_failed_write_names_the_file_and_errno_and_the_file_closes_at_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.parquet");
    let meta = RecordingMeta {
        host: "h".into(),
        clock: ClockAnchor::default(),
        ..Default::default()
    };
    let file = File::options().write(true).create_new(true).open(&path).unwrap();
    let mut w = EventWriter::with_checkpoints(file, &path, &meta, WriterOptions::default()).unwrap();
    let probe: Arc<str> = Arc::from("tp_btf:inet_sock_set_state");
    set_fsize_limit(300_000);
    let mut i = 0u64;
    let err = loop {
        for _ in 0..2000 {
            w.push(&event(i, &probe)).unwrap();
            i += 1;
        }
        if let Err(e) = w.flush() {
            break e;
        }
        assert!(i < 10_000_000, "the size limit never hit");
    };
    set_fsize_limit(libc::RLIM_INFINITY);
    let FormatError::Io {
        path: Some(p), source, ..
    } = &err
    else {
        panic!("expected an I/O error, got {err:?}");
    };
    assert_eq!(p, &path);
    assert_eq!(source.raw_os_error(), Some(libc::EFBIG), "{source}");
    assert!(err.to_string().starts_with(&format!("{}: ", path.display())), "{err}");

    let kept = w.checkpointed_rows();
    // Whole flushes of 2000 rows, not all of them.
    assert!(kept > 0 && kept.is_multiple_of(2000) && kept < i, "{kept} of {i}");
    let s = w.close_at_checkpoint().unwrap();
    assert_eq!(s.rows, kept);
    assert!(!checkpoint_path(&path).exists());
    let r = RecordingReader::open(&path).unwrap();
    assert_eq!(r.num_rows(), kept);
    let n = r.events().collect::<Result<Vec<_>, _>>().unwrap().len() as u64;
    assert_eq!(n, kept);
}
