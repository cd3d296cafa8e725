//! The writer's memory (issue 13: record grew by ~47 KB per row group
//! until it was closed): what it keeps per row group is parquet's footer
//! metadata only, and it is all given back when a file is closed, so a
//! recorder that bounds the row groups per file (`--max-row-groups`) runs
//! with flat memory. Measured with a counting global allocator, so its own
//! test binary.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fs::File;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use deeptcp_format::testing;
use deeptcp_format::{ClockAnchor, Event, EventKind, EventWriter, RecordingMeta, WriterOptions};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout, as the caller guarantees.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: p was allocated by System with l.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: as for alloc/dealloc.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn event(i: u64, probe: &Arc<str>, comms: &[Arc<str>]) -> Event {
    Event {
        mono_ns: 1_000_000_000 + i as i64 * 5000,
        pid: 1000 + (i % 97) as u32,
        tid: 1000 + (i % 97) as u32,
        comm: Arc::clone(&comms[i as usize % comms.len()]),
        saddr: format!("127.0.{}.{}", (i / 256) % 4, i % 256).parse().unwrap(),
        sport: (i % 60000) as u16,
        dport: 8080,
        netns: 4026531840,
        probe: Arc::clone(probe),
        cookie: 1 << 40 | i,
        cgroup_id: 1,
        attribution: deeptcp_format::Attribution::Task,
        ..testing::event(EventKind::ALL[i as usize % EventKind::ALL.len()])
    }
}

fn meta() -> RecordingMeta {
    RecordingMeta {
        host: "h".into(),
        clock: ClockAnchor::default(),
        ..Default::default()
    }
}

/// Writes `groups` flushed row groups of `per_group` rows into `w`, from row `*i` on.
fn write_groups(w: &mut EventWriter, groups: u64, per_group: u64, i: &mut u64) {
    let probe: Arc<str> = Arc::from("tp_btf:inet_sock_set_state");
    let comms: Vec<Arc<str>> = ["curl", "nginx", "python3"].into_iter().map(Arc::from).collect();
    for _ in 0..groups {
        for _ in 0..per_group {
            w.push(&event(*i, &probe, &comms)).unwrap();
            *i += 1;
        }
        w.flush().unwrap();
    }
}

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// The count is process-wide: one measuring test at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the writer keeps per row group: parquet's own metadata for the
/// footer (column chunks, page index), about 25 KiB for our 27 columns, and
/// nothing more. The checkpoint used to keep a second copy of every row
/// group's metadata (about 40 KiB per row group in all).
#[test]
fn retained_memory_per_row_group_is_parquets_footer_metadata_only() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.parquet");
    let file = File::options().write(true).create_new(true).open(&path).unwrap();
    let mut w = EventWriter::with_checkpoints(file, &path, &meta(), WriterOptions::default()).unwrap();
    let per_group: u64 = std::env::var("ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40_000);
    let mut i = 0u64;
    write_groups(&mut w, 10, per_group, &mut i);
    assert_eq!(w.row_groups(), 10);
    let before = live();
    let n = 40;
    write_groups(&mut w, n, per_group, &mut i);
    let per = (live() - before) / n as isize;
    eprintln!("retained per row group: {per} bytes ({per_group} rows per group)");
    assert_eq!(w.row_groups(), 50);
    w.finish(0).unwrap();
    assert!(per < 30 << 10, "the writer keeps {per} bytes per row group");
}

/// A recorder that starts a new file every `bound` row groups (record's
/// `--max-row-groups`) holds flat memory: each closed file gives back what
/// it kept, so the peak does not grow with the number of files.
#[test]
fn memory_is_flat_across_files_of_bounded_row_groups() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let bound = 24;
    let mut i = 0u64;
    let mut after_file = Vec::new();
    let base = live();
    for f in 0..5 {
        let path = dir.path().join(format!("m{f}.parquet"));
        let file = File::options().write(true).create_new(true).open(&path).unwrap();
        let mut w = EventWriter::with_checkpoints(file, &path, &meta(), WriterOptions::default()).unwrap();
        write_groups(&mut w, bound, 5_000, &mut i);
        assert_eq!(w.row_groups(), bound as usize);
        w.finish(0).unwrap();
        after_file.push(live() - base);
    }
    eprintln!("live bytes after each file: {after_file:?}");
    let first = after_file[0];
    for (f, held) in after_file.iter().enumerate() {
        assert!(
            (held - first).abs() < 64 << 10,
            "file {f}: {held} bytes held after closing it, {first} after the first: memory grows with files"
        );
    }
}
