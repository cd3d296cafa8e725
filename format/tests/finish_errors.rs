//! A footer that fails to write at finish (here: the file size limit,
//! RLIMIT_FSIZE, as a full disk would) still leaves the file closable at
//! its last checkpoint with every flushed row: the writer no longer keeps
//! its own copy of the row groups' metadata (issue 13, memory), so it must
//! save them before parquet moves them into the footer it writes.
//!
//! Its own test binary: the size limit is per process.

use std::fs::File;
use std::sync::Arc;

mod support;
use support::set_fsize_limit;

use deeptcp_format::testing;
use deeptcp_format::{
    checkpoint_path, ClockAnchor, Event, EventKind, EventWriter, RecordingMeta, RecordingReader, WriterOptions,
};

fn event(i: u64, probe: &Arc<str>) -> Event {
    Event {
        mono_ns: i as i64,
        pid: i as u32,
        tid: i as u32,
        comm: "c".into(),
        saddr: "10.0.0.1".parse().unwrap(),
        daddr: "192.0.2.1".parse().unwrap(),
        sport: i as u16,
        dport: 443,
        netns: 1,
        probe: Arc::clone(probe),
        cookie: i,
        attribution: deeptcp_format::Attribution::Task,
        ..testing::event(EventKind::ALL[i as usize % EventKind::ALL.len()])
    }
}

#[test]
fn a_footer_that_fails_to_write_leaves_the_checkpoint_closable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.parquet");
    let meta = RecordingMeta {
        host: "h".into(),
        clock: ClockAnchor::default(),
        ..Default::default()
    };
    let file = File::options().write(true).create_new(true).open(&path).unwrap();
    let mut w = EventWriter::with_checkpoints(file, &path, &meta, WriterOptions::default()).unwrap();
    let probe: Arc<str> = Arc::from("tp_btf:inet_sock_set_state");
    let mut i = 0u64;
    for _ in 0..6 {
        for _ in 0..1000 {
            w.push(&event(i, &probe)).unwrap();
            i += 1;
        }
        w.flush().unwrap();
    }
    assert_eq!((w.checkpointed_rows(), w.row_groups()), (6000, 6));
    // Room for a few bytes more: the page index and footer do not fit.
    set_fsize_limit(w.bytes_written() + 16);
    let e = w.try_finish(0).unwrap_err();
    set_fsize_limit(libc::RLIM_INFINITY);
    assert!(e.to_string().contains("f.parquet"), "{e}");
    let s = w.close_at_checkpoint().expect("closes at the checkpoint");
    assert_eq!(s.rows, 6000);
    assert!(!checkpoint_path(&path).exists());
    let r = RecordingReader::open(&path).unwrap();
    assert_eq!((r.num_rows(), r.num_row_groups()), (6000, 6));
    let monos: Vec<i64> = r.events().map(|e| e.unwrap().mono_ns).collect();
    assert_eq!(monos, (0..6000).collect::<Vec<i64>>());
}
