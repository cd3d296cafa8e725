//! The part of `record` that needs no kernel: turning the programs' wire
//! records into rows ([`convert`]). It is a library so that the binary and
//! the user-side benchmark (`examples/recordbench.rs`, which replays a
//! recording's rows as wire records) run the same code.

pub mod convert;
