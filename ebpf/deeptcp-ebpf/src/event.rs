//! Making an event and handing it to user space: filtered, time-stamped,
//! with its kernel stack, copied into the `EVENTS` ring buffer (or counted
//! as lost).

use aya_ebpf::{
    bindings::{BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::bpf_ktime_get_ns,
    programs::tracing::StackIdContext,
};
use deeptcp_common::{WireEvent, NO_STACK};

use crate::filter::wanted;
use crate::maps::{EVENTS, LOST, LOST_RING_FULL, STACKS};

/// `BPF_RB_AVAIL_DATA` for `bpf_ringbuf_query`.
const BPF_RB_AVAIL_DATA: u64 = 0;

#[inline(always)]
fn count_lost() {
    count(LOST_RING_FULL);
}

#[inline(always)]
pub(crate) fn count(slot: u32) {
    if let Some(p) = LOST.get_ptr_mut(slot) {
        // SAFETY: this CPU's slot; a lost increment under nesting is tolerable.
        unsafe { *p += 1 };
    }
}

/// Applies the filters, stamps the time and submits a copy of `ev`.
#[inline(always)]
pub(crate) fn submit(ev: &mut WireEvent, stack_id: i32) -> Result<(), i32> {
    if !wanted(ev) {
        return Ok(());
    }
    if ev.ts_ns == 0 {
        // SAFETY: helper without memory arguments.
        ev.ts_ns = unsafe { bpf_ktime_get_ns() };
    }
    ev.stack_id = stack_id;
    let Some(mut entry) = EVENTS.reserve::<WireEvent>(0) else {
        count_lost();
        return Err(-1);
    };
    // Word by word: a plain struct copy of this size becomes a call to a
    // byte-at-a-time `memmove` subprogram.
    let src = (ev as *const WireEvent).cast::<u64>();
    let dst = entry.as_mut_ptr().cast::<u64>();
    for i in 0..core::mem::size_of::<WireEvent>() / 8 {
        // SAFETY: both point at a whole WireEvent (8-byte aligned: ring
        // buffer records are, and so is the stack copy); `i` stays below its
        // size in words. Volatile keeps LLVM from turning the loop back
        // into a memmove call.
        unsafe { core::ptr::write_volatile(dst.add(i), core::ptr::read_volatile(src.add(i))) };
    }
    let wakeup_bytes = cfg!(wakeup_bytes);
    let wake = if wakeup_bytes == 0 {
        0
    } else if EVENTS.query(BPF_RB_AVAIL_DATA) >= wakeup_bytes {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    };
    entry.submit(wake);
    Ok(())
}

#[inline(always)]
pub(crate) fn stack_of<C: StackIdContext>(ctx: &C) -> i32 {
    if cfg!(kstack) != 0 {
        ctx.get_stackid(&STACKS, 0).map(|id| id as i32).unwrap_or(NO_STACK)
    } else {
        NO_STACK
    }
}

#[inline(always)]
pub(crate) fn new_event(kind: u8, probe: u8) -> WireEvent {
    let mut ev = WireEvent::EMPTY;
    ev.kind = kind;
    ev.probe = probe;
    ev
}
