//! A file opened as a whole recording can become the first segment of a
//! rotated one at finish (record does this when a recording reaches
//! `--max-row-groups`): `EventWriter::set_segment` writes `deeptcp.segment`.

use std::fs::File;

use deeptcp_format::{ClockAnchor, EventWriter, RecordingMeta, RecordingReader, WriterOptions};

#[test]
fn set_segment_marks_the_file_at_finish() {
    let dir = tempfile::tempdir().unwrap();
    let meta = RecordingMeta {
        host: "h".into(),
        clock: ClockAnchor::default(),
        ..Default::default()
    };
    for (name, segment) in [("whole.parquet", None), ("first.parquet", Some(1))] {
        let path = dir.path().join(name);
        let file = File::options().write(true).create_new(true).open(&path).unwrap();
        let mut w = EventWriter::with_checkpoints(file, &path, &meta, WriterOptions::default()).unwrap();
        if let Some(i) = segment {
            w.set_segment(i);
        }
        w.finish(0).unwrap();
        let r = RecordingReader::open(&path).unwrap();
        assert_eq!(r.meta().segment, segment, "{name}");
    }
}
