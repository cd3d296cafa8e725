//! Output renderers: each turns recording data into text on an
//! `impl Write`, so they are unit-testable against a `Vec<u8>` and know
//! nothing about files, stdout or the command line.
//!
//! `table` is the classic deeptcptracer event table, `conn` the connection
//! table of `--conn`, `json` the JSON lines of `--json`, `info` the recording
//! summary of `--info`, `stats` the groups of `--stats`, `html` the page of `--report`, `trace` the
//! trace-event JSON of `--trace-json`. Helpers shared by several renderers live here.

pub mod conn;
pub mod html;
pub mod info;
pub mod json;
pub mod stats;
pub mod trace;

// The event views are shared with `record`'s live output (crate deeptcp-view).
pub use deeptcp_view::table;
pub use deeptcp_view::text::{delta_ns, push_sanitized, push_seconds_6, push_u64, sanitized, seconds_6};
