//! The in-kernel filters (`record`'s `-p`, `-N`, ports, `--kind`, `--comm`,
//! addresses), applied to an attributed event before it is submitted.

use deeptcp_common::{AddrMatch, WireEvent, AF_INET, AF_INET6};

use crate::globals::{FILTER_COMM, FILTER_DADDR, FILTER_HAS_COMM, FILTER_KINDS, FILTER_SADDR};

/// The in-kernel filters (`Config`), on the attributed event.
#[inline(always)]
pub(crate) fn wanted(ev: &WireEvent) -> bool {
    let (pid, netns, sport, dport, port) = (
        cfg!(filter_pid),
        cfg!(filter_netns),
        cfg!(filter_sport),
        cfg!(filter_dport),
        cfg!(filter_port),
    );
    (pid == 0 || (ev.pid_tgid >> 32) as u32 == pid)
        && (netns == 0 || ev.netns == netns)
        && (sport == 0 || ev.sport == sport)
        && (dport == 0 || ev.dport == dport)
        && (port == 0 || ev.sport == port || ev.dport == port)
        && (cfg!(extra_filters) == 0 || extra_wanted(ev))
}

/// The two words of a 16-byte, 8-aligned field at `p`.
///
/// Word loads, not byte loads: comparing `[u8; 16]`s bytewise makes LLVM
/// spill the bytes, and that stack (296 bytes once) added to a caller's
/// exceeded the 512 bytes kernels before 6.13 allow for a call chain.
#[inline(always)]
pub(crate) fn words(p: *const [u8; 16]) -> (u64, u64) {
    let w = p.cast::<u64>();
    // SAFETY: callers pass 16-byte fields at 8-aligned offsets of 8-aligned
    // structs (`AddrMatch`, `WireEvent`) or of `.rodata` globals declared as
    // `[u64; 2]`; both words lie inside the field.
    unsafe { (core::ptr::read_volatile(w), core::ptr::read_volatile(w.add(1))) }
}

/// Bytes 8..12 of an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the
/// low half of the second word.
const V4_MAPPED_MARK: u32 = u32::from_ne_bytes([0, 0, 0xff, 0xff]);

/// `a` (of a socket of `family`) is in the network `*m` (a `.rodata`
/// global, read in place); IPv4 networks also match IPv4-mapped addresses
/// of IPv6 sockets, as in the file.
#[inline(always)]
fn addr_ok(m: *const AddrMatch, family: u16, a: &[u8; 16]) -> bool {
    // SAFETY: `m` points at an `AddrMatch` global; its fields are read in
    // place, volatile like `Global::load`.
    let (want, (n0, n1), (k0, k1)) = unsafe {
        (
            core::ptr::read_volatile(core::ptr::addr_of!((*m).family)),
            words(core::ptr::addr_of!((*m).net)),
            words(core::ptr::addr_of!((*m).mask)),
        )
    };
    if want == 0 {
        return true;
    }
    let (a0, a1) = words(a);
    let mapped = a0 == 0 && a1 as u32 == V4_MAPPED_MARK;
    if want == AF_INET {
        let v4 = if family == AF_INET {
            a0 as u32
        } else if family == AF_INET6 && mapped {
            (a1 >> 32) as u32
        } else {
            return false;
        };
        v4 & k0 as u32 == n0 as u32
    } else {
        family == AF_INET6 && !mapped && a0 & k0 == n0 && a1 & k1 == n1
    }
}

/// `--kind`, `--comm` and address filters. Reads every global in place,
/// so this function needs (almost) no stack of its own.
#[inline(never)]
fn extra_wanted(ev: &WireEvent) -> bool {
    let kinds = FILTER_KINDS.load();
    if kinds != 0 && kinds & (1u32 << (ev.kind & 31)) == 0 {
        return false;
    }
    if FILTER_HAS_COMM.load() != 0 && words(global_ptr!(FILTER_COMM, [u64; 2]).cast()) != words(&ev.comm) {
        return false;
    }
    addr_ok(global_ptr!(FILTER_SADDR, AddrMatch), ev.family, &ev.saddr)
        && addr_ok(global_ptr!(FILTER_DADDR, AddrMatch), ev.family, &ev.daddr)
}
