//! Field access: how a program reads kernel structs at the offsets `record`
//! resolved ([`Mem`]), with plain loads through BTF-typed pointers
//! ([`BtfLoad`]) or a `bpf_probe_read_kernel` call per field ([`ProbeRead`]),
//! and where each kind of program keeps socket owners.

use aya_ebpf::helpers::bpf_probe_read_kernel;
use deeptcp_common::Owner;

use crate::owner::{hash_owner, in_sk_storage, keep_hash_owner, overwrite, sk_storage};

/// Reads a `T` at `base + off` from kernel memory.
#[inline(always)]
pub(crate) fn read<T>(base: *const u8, off: u32) -> Result<T, i32> {
    // SAFETY: bpf_probe_read_kernel copies through the kernel's fault-tolerant
    // path; a bad address yields an error, never a fault.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(off as usize) as *const T) }
}

/// Reads a `T` at `base + off`, or zeroes when the read fails (the helper
/// zero-fills on error). No branch: keeps the verifier's work per program
/// small, which is most of `record`'s start-up time.
#[inline(always)]
pub(crate) fn rd<T: Default>(base: *const u8, off: u32) -> T {
    let mut v = T::default();
    // SAFETY: `v` is a valid destination of exactly size_of::<T>() bytes; the
    // helper reads kernel memory fault-tolerantly and zero-fills `v` on error.
    unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_kernel(
            (&mut v as *mut T).cast(),
            core::mem::size_of::<T>() as u32,
            base.wrapping_add(off as usize).cast(),
        )
    };
    v
}

/// A kernel pointer field, read like [`rd`].
#[inline(always)]
pub(crate) fn rd_ptr(base: *const u8, off: u32) -> *const u8 {
    rd::<usize>(base, off) as *const u8
}

/// How a program reads kernel structs.
pub(crate) trait Mem {
    /// The `T` at `base + off`, zero when it cannot be read.
    fn get<T: Default + Copy>(base: *const u8, off: u32) -> T;
    /// `sk` as a `tcp_sock` (for `inet_sock` and `tcp_sock` fields), null
    /// when it is not a full TCP socket.
    fn tcp_sock(sk: *const u8) -> *const u8;
    /// The owner kept for socket `sk` (cookie `cookie`), in place.
    fn owner(sk: *const u8, cookie: u64) -> Option<*mut Owner>;
    /// Keeps `owner` for the socket: over what is kept when `replace`,
    /// else only if nothing is.
    fn keep_owner(sk: *const u8, cookie: u64, owner: &Owner, replace: bool);
}

/// Plain loads through the BTF-typed pointers that tp_btf, fentry and
/// fexit programs receive: the verifier checks every offset (a `.rodata`
/// constant) against the kernel's BTF and makes the load fault-tolerant (a
/// bad pointer reads 0). A load instead of a helper call per field: this is
/// what keeps the per-transition cost low.
pub(crate) struct BtfLoad;

impl Mem for BtfLoad {
    #[inline(always)]
    fn get<T: Default + Copy>(base: *const u8, off: u32) -> T {
        // SAFETY: `base` is a BTF pointer of the program's context (or a
        // pointer loaded through one) and `off` a field of its type, both
        // checked by the verifier, which turns the load into an
        // exception-handled one: it cannot fault. Volatile keeps LLVM from
        // merging or widening the load beyond the field.
        unsafe { core::ptr::read_volatile(base.wrapping_add(off as usize).cast::<T>()) }
    }

    #[inline(always)]
    fn tcp_sock(sk: *const u8) -> *const u8 {
        // SAFETY: `sk` is a BTF socket pointer, which the helper takes; it
        // returns null for anything but a full TCP socket.
        unsafe { aya_ebpf::helpers::generated::bpf_skc_to_tcp_sock(sk as *mut _) as *const u8 }
    }

    #[inline(always)]
    fn owner(sk: *const u8, cookie: u64) -> Option<*mut Owner> {
        if in_sk_storage() {
            sk_storage(sk, None)
        } else {
            hash_owner(cookie)
        }
    }

    #[inline(always)]
    fn keep_owner(sk: *const u8, cookie: u64, owner: &Owner, replace: bool) {
        if !in_sk_storage() {
            return keep_hash_owner(cookie, owner, replace);
        }
        if let Some(p) = sk_storage(sk, Some(owner)) {
            overwrite(p, owner, replace);
        }
    }
}

/// `bpf_probe_read_kernel` per field, for kprobes, whose pointers are plain
/// integers to the verifier.
pub(crate) struct ProbeRead;

impl Mem for ProbeRead {
    #[inline(always)]
    fn get<T: Default + Copy>(base: *const u8, off: u32) -> T {
        rd(base, off)
    }

    #[inline(always)]
    fn tcp_sock(sk: *const u8) -> *const u8 {
        sk
    }

    /// Always the hash: kprobes cannot use socket storage (`record` loads
    /// the programs with `HASH` when a kprobe rung is in use).
    #[inline(always)]
    fn owner(_sk: *const u8, cookie: u64) -> Option<*mut Owner> {
        hash_owner(cookie)
    }

    #[inline(always)]
    fn keep_owner(_sk: *const u8, cookie: u64, owner: &Owner, replace: bool) {
        keep_hash_owner(cookie, owner, replace)
    }
}
