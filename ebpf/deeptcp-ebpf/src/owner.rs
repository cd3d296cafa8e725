//! Owner tracking: which process a socket belongs to. Kept per socket in
//! `OWNERS` (by cookie) or in socket storage (`OWNER_STORE`), set from the
//! current task where a hook runs in the owner's process context, inherited
//! from listeners, seeded from the start-up snapshot; applied to events.

use aya_ebpf::{
    btf_maps::SkStorage,
    helpers::{bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid},
};
use deeptcp_common::{owner_store, Attribution, Owner, TcpState, TupleKey, WireEvent};

use crate::maps::{OWNERS, OWNER_STORE, TUPLE_OWNERS};
use crate::mem::Mem;
use crate::sock::{is_tcp, netns_of};

/// `BPF_NOEXIST` for map updates: insert only.
const BPF_NOEXIST: u64 = 1;

/// `BPF_SK_STORAGE_GET_F_CREATE`: create the socket's value when it has none.
const SK_STORAGE_CREATE: u64 = 1;

/// Whether owners live in socket storage (a `.rodata` constant: the
/// verifier drops the other branch).
#[inline(always)]
pub(crate) fn in_sk_storage() -> bool {
    cfg!(owner_store) == owner_store::SK_STORAGE
}

/// `sk`'s value in `OWNER_STORE`, created from `init` when given.
#[inline(always)]
pub(crate) fn sk_storage(sk: *const u8, init: Option<&Owner>) -> Option<*mut Owner> {
    if sk.is_null() {
        return None;
    }
    let (value, flags) = match init {
        Some(o) => ((o as *const Owner).cast_mut(), SK_STORAGE_CREATE),
        None => (core::ptr::null_mut(), 0),
    };
    // SAFETY: `sk` is a non-null BTF socket pointer (or a socket pointer of
    // a cgroup_skb context), which the helper takes and checks to be a full
    // socket; `value` is null or a whole `Owner` on the stack, which it
    // only reads. It returns null or this socket's value.
    let p = unsafe {
        aya_ebpf::helpers::generated::bpf_sk_storage_get(
            (&OWNER_STORE as *const SkStorage<Owner>).cast_mut().cast(),
            sk.cast_mut().cast(),
            value.cast(),
            flags,
        )
    }
    .cast::<Owner>();
    (!p.is_null()).then_some(p)
}

/// The owner kept for `cookie` in `OWNERS`.
#[inline(always)]
pub(crate) fn hash_owner(cookie: u64) -> Option<*mut Owner> {
    if cookie == 0 {
        return None;
    }
    OWNERS.get_ptr_mut(&cookie)
}

/// Puts `owner` in the kept value `p` when `replace` and it is another
/// task's: in place, no map update.
#[inline(always)]
pub(crate) fn overwrite(p: *mut Owner, owner: &Owner, replace: bool) {
    // SAFETY: `p` is a socket's value in `OWNERS` or `OWNER_STORE`, valid for
    // the program's run; a concurrent writer of the same socket can at worst
    // interleave fields of two owners of that socket.
    unsafe {
        if replace && (*p).pid_tgid != owner.pid_tgid {
            *p = *owner;
        }
    }
}

/// Keeps `owner` for `cookie` in `OWNERS`: in place when the socket has an
/// entry (no allocation, unlike an update of an LRU map), else inserted.
#[inline(always)]
pub(crate) fn keep_hash_owner(cookie: u64, owner: &Owner, replace: bool) {
    if cookie == 0 {
        return;
    }
    match OWNERS.get_ptr_mut(&cookie) {
        Some(p) => overwrite(p, owner, replace),
        None => {
            let _ = OWNERS.insert(&cookie, owner, BPF_NOEXIST);
        }
    }
}

/// The current task as the owner of a socket in `netns`.
#[inline(always)]
pub(crate) fn current_owner(netns: u32) -> Owner {
    Owner {
        netns,
        pid_tgid: bpf_get_current_pid_tgid(),
        // SAFETY: helper without arguments.
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
        attribution: Attribution::Task as u8,
        _pad: [0; 3],
    }
}

#[inline(always)]
pub(crate) fn apply_owner(ev: &mut WireEvent, o: &Owner, how: u8) {
    if ev.netns == 0 {
        ev.netns = o.netns;
    }
    ev.pid_tgid = o.pid_tgid;
    ev.cgroup_id = o.cgroup_id;
    ev.comm = o.comm;
    ev.attribution = how;
}

/// Fills pid/tid/comm/cgroup: the current task when `in_task` (and keeps
/// it as the owner of `sk`), else the kept owner, else the snapshot owner
/// by address, else nobody.
#[inline(always)]
pub(crate) fn attribute<M: Mem>(ev: &mut WireEvent, sk: *const u8, in_task: bool) {
    let kept = M::owner(sk, ev.cookie);
    if in_task {
        let me = bpf_get_current_pid_tgid();
        if let Some(p) = kept {
            // SAFETY: the kept value, copied out at once.
            let o = unsafe { *p };
            if o.pid_tgid == me {
                // This task is the kept owner already: no comm/cgroup helpers.
                apply_owner(ev, &o, Attribution::Task as u8);
                return;
            }
        }
        let me = current_owner(ev.netns);
        M::keep_owner(sk, ev.cookie, &me, true);
        apply_owner(ev, &me, Attribution::Task as u8);
        return;
    }
    if let Some(p) = kept {
        // SAFETY: the kept value, copied out at once.
        let o = unsafe { *p };
        apply_owner(ev, &o, kept_attribution(o.attribution));
        return;
    }
    if let Some(o) = snapshot_owner(ev) {
        M::keep_owner(sk, ev.cookie, &o, false);
        apply_owner(ev, &o, Attribution::Snapshot as u8);
    }
}

/// How a row is attributed to an owner kept as `how`: a task that was
/// current when it was kept is the socket's owner now.
#[inline(always)]
fn kept_attribution(how: u8) -> u8 {
    if how == Attribution::Task as u8 {
        Attribution::Owner as u8
    } else {
        how
    }
}

/// The owner the start-up snapshot found for the event's connection.
#[inline(always)]
fn snapshot_owner(ev: &WireEvent) -> Option<Owner> {
    let key = TupleKey {
        saddr: ev.saddr,
        daddr: ev.daddr,
        netns: ev.netns,
        sport: ev.sport,
        dport: ev.dport,
    };
    // SAFETY: the map value is copied out at once.
    unsafe { TUPLE_OWNERS.get(&key) }.copied()
}

/// Owner refresh from hooks that run in the owner's process context (every
/// send and receive): only a socket whose remembered owner is another
/// thread costs more than a lookup.
#[inline(always)]
pub(crate) fn refresh_owner<M: Mem>(sk: *const u8) -> Result<(), i32> {
    if sk.is_null() {
        return Err(-1);
    }
    if !is_tcp::<M>(sk) {
        return Ok(());
    }
    // Socket storage needs no cookie; the hash needs one the socket has.
    let cookie: u64 = if in_sk_storage() {
        0
    } else {
        M::get(sk, off!(skc_cookie))
    };
    let me = bpf_get_current_pid_tgid();
    match M::owner(sk, cookie) {
        // SAFETY: the kept value, read in place for this run.
        Some(p) if unsafe { (*p).pid_tgid } == me => return Ok(()),
        // Nothing kept for a socket without a cookie yet: a hash entry
        // needs one (its first state change will make it).
        None if cookie == 0 && !in_sk_storage() => return Ok(()),
        _ => {}
    }
    M::keep_owner(sk, cookie, &current_owner(netns_of::<M>(sk)), true);
    Ok(())
}

/// Transitions that only happen inside a syscall of the socket's owner.
#[inline(always)]
pub(crate) fn in_owner_context(old: u8, new: u8) -> bool {
    use TcpState::*;
    let (Some(old), Some(new)) = (TcpState::from_kernel(old), TcpState::from_kernel(new)) else {
        return false;
    };
    matches!(
        (old, new),
        (Close, SynSent) | (Close, Listen) | (Listen, Close) | (Established, FinWait1) | (CloseWait, LastAck)
    )
}
