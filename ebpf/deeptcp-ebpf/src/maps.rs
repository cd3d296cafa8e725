//! The maps: what the programs share with `record` (which finds them by
//! name) and what they keep between runs.

use aya_ebpf::{
    btf_maps::SkStorage,
    macros::{btf_map, map},
    maps::{LruHashMap, PerCpuArray, RingBuf, StackTrace},
};
use deeptcp_common::{ListenKey, Owner, TupleKey, WireEvent};

/// Events to user space; the loader sets the size (`--ring-size`).
#[map]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(4 << 20, 0);

/// Per-CPU counts: slot [`LOST_RING_FULL`], events dropped because `EVENTS`
/// was full; slot [`LOST_RECOVERED`], runs the kernel skipped that a
/// nested twin made instead (see `programs::tp_btf`).
#[map]
pub(crate) static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(2, 0);

pub(crate) const LOST_RING_FULL: u32 = 0;
pub(crate) const LOST_RECOVERED: u32 = 1;

/// Per-CPU, per twinned hook ([`twin`]): whether its first program is
/// running on this CPU (interrupted, when another run of the hook sees it).
#[map]
pub(crate) static BUSY: PerCpuArray<u32> = PerCpuArray::with_max_entries(twin::HOOKS, 0);

/// The hooks whose programs have a nested twin, by [`BUSY`] slot.
pub(crate) mod twin {
    pub const SET_STATE: u32 = 0;
    pub const RETRANSMIT: u32 = 1;
    pub const RECEIVE_RESET: u32 = 2;
    pub const SEND_RESET: u32 = 3;
    pub const ERROR_REPORT: u32 = 4;
    pub const DESTROY: u32 = 5;
    pub const HOOKS: u32 = 6;
}

/// Kernel stacks for `-K`.
#[map]
pub(crate) static STACKS: StackTrace = StackTrace::with_max_entries(16384, 0);

/// Socket cookie → owner, when `CONFIG.owner_store` is `HASH`.
#[map]
pub(crate) static OWNERS: LruHashMap<u64, Owner> = LruHashMap::with_max_entries(65536, 0);

/// Socket → owner in the socket's own storage, when `CONFIG.owner_store` is
/// `SK_STORAGE`: no hashing, no delete (it goes with the socket).
#[btf_map]
pub(crate) static OWNER_STORE: SkStorage<Owner> = SkStorage::new();

/// (netns, port) of a listening socket → its owner, inherited by accepted sockets.
#[map]
pub(crate) static LISTENERS: LruHashMap<ListenKey, Owner> = LruHashMap::with_max_entries(8192, 0);

/// Kernels before 6.15 announce a listener's child (LISTEN -> SYN_RECV)
/// before giving it its cookie and addresses; that row waits here, keyed by
/// the child's `sk` pointer, until its next transition fills them in.
#[map]
pub(crate) static PENDING_CHILDREN: LruHashMap<u64, WireEvent> = LruHashMap::with_max_entries(8192, 0);

/// Connections that existed before recording started → owner (start-up snapshot).
#[map]
pub(crate) static TUPLE_OWNERS: LruHashMap<TupleKey, Owner> = LruHashMap::with_max_entries(65536, 0);
