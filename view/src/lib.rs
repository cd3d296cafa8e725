//! How events look: the classic deeptcptracer table and JSON lines, as
//! renderers onto any `impl Write`. Shared by `record` (live output while
//! recording) and `analyze` (replaying files), so a live line and its
//! replay are the same text by construction.

pub mod errno;
pub mod json;
pub mod table;
pub mod text;
