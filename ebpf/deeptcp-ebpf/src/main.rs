//! deeptcp's eBPF programs: one thin program per kernel hook, each calling a
//! `try_*` function that reads the socket through BTF-resolved offsets (the
//! `OFFSETS` read-only global), attributes it to the socket's owner and
//! submits a [`deeptcp_common::WireEvent`] to the `EVENTS` ring buffer.
//!
//! Rust eBPF has no CO-RE, so no struct layout is compiled in: every field
//! offset comes from `record`, which resolves it from the running kernel's
//! BTF. Wakeups are batched (`Config::wakeup_bytes`) because waking the
//! consumer on every event halves connection throughput.
//!
//! Attribution: events that fire in softirq context run on behalf of
//! whatever task was interrupted, so the current task is used only where the
//! hook runs in the owner's process context (connect, listen, close, send,
//! receive). Otherwise the owner comes from what was kept for the socket in
//! process context, inherited by accepted sockets from their listener
//! (`LISTENERS`) or seeded from the start-up snapshot (`TUPLE_OWNERS`).
//! Owners are kept in `OWNERS`, an LRU hash keyed by socket cookie, or
//! with `record --owner-store socket` in socket-local storage (`OWNER_STORE`:
//! no capacity limit, freed with the socket, but an allocation per socket,
//! which makes it the dearer of the two under connection churn); kprobes
//! cannot reach socket storage (`Config::owner_store`).
//!
//! Each event kind has a ladder of probes (see `record`'s probe table).
//! Rungs that infer a kind from state transitions (FIN sent/received,
//! connect, accept) are not code here: `record` derives those rows from the
//! `state_change` record, so a transition costs one ring-buffer record.
//!
//! Cost matters (these programs run inside the TCP stack of every
//! connection): tp_btf and fentry programs read socket fields with plain
//! loads through their BTF-typed pointers ([`mem::BtfLoad`]: the verifier checks the
//! `.rodata` offsets against the kernel's types), only kprobes pay a
//! `bpf_probe_read_kernel` call per field ([`mem::ProbeRead`]); records are copied
//! into the ring buffer a word at a time.
//!
//! Modules: [`globals`] (what `record` sets at load time: offsets, config,
//! filters) and [`maps`]; [`mem`] (field access), [`sock`] (an event's
//! socket fields), [`owner`] (owner tracking and attribution), [`filter`],
//! [`event`] (submitting); [`programs`], by hook type.
#![no_std]
#![no_main]

// First: the macros that read `.rodata` fields (`off!`, `cfg!`) are used by
// every module declared after it.
#[macro_use]
mod globals;
mod event;
mod filter;
mod maps;
mod mem;
mod owner;
mod programs;
mod sock;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 4] = *b"GPL\0";
