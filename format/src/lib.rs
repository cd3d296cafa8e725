//! deeptcp's on-disk recording format.
//!
//! A recording is a zstd-compressed Parquet file whose columns are the
//! contract with pandas/polars/DuckDB users (see `SCHEMA.md`) and whose
//! key-value metadata says how it was made (schema version, host, clock
//! anchors, probes). This crate is the only place that knows that layout:
//! `record` writes through [`EventWriter`], `analyze` reads through
//! [`RecordingReader`]. It has no aya and no Linux-only code, so it builds and
//! tests anywhere. Every page it writes carries a CRC32 checksum, and the
//! reader checks each row group's pages before it hands out any of its rows
//! (`pagecrc`; [`ReadOptions::skip_corrupt`] skips a damaged row group with
//! a warning instead of ending there). Crash safety: checkpoint sidecars in
//! [`checkpoint`], reading them back ([`repair`],
//! [`RecordingReader::open_recovering`]) in [`recovery`], following a
//! recording still being written in [`follow`]; rotated
//! recordings are listed by [`segments`]. Durations typed on either tool's
//! command line are parsed by [`timearg`].

pub mod checkpoint;
pub mod columns;
mod encode;
pub mod error;
pub mod event;
pub mod filter;
pub mod follow;
mod guard;
pub mod meta;
pub mod names;
mod pagecrc;
pub mod paths;
pub mod reader;
pub mod recovery;
pub mod rows;
pub mod schema;
pub mod stacks;
mod table;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod timearg;
pub mod writer;

pub use error::FormatError;
pub use event::{Attribution, Event, EventKind, Family, TcpInfo, TcpState};
pub use filter::{Cidr, Filter, MonoWindow, TimeBound};
pub use follow::{Follower, Step};
pub use meta::{ClockAnchor, LostInterval, ProbeStatus, RecordingMeta};
pub use names::{CgroupInfo, CgroupName, CgroupPattern, Names, NetnsName};
pub use paths::{checkpoint_path, segment_path, segments, stacks_path};
pub use reader::{ReadOptions, RecordingReader};
pub use recovery::{repair, RepairOutcome, RepairReport};
pub use rows::{Addr, Comm, ProbeId, Row, RowBatch};
pub use schema::SCHEMA_VERSION;
pub use stacks::{read_stacks, StackWriter};
pub use writer::{EventWriter, WriteSummary, WriterOptions};
