//! The read-only globals `record` sets at load time (`.rodata`, frozen: the
//! verifier treats every field as a constant and drops the branches it
//! decides), and the macros that read one field of them in place: copying
//! a whole struct onto the 512-byte BPF stack would cost more than a
//! program can spare.

use aya_ebpf::Global;
use deeptcp_common::{AddrMatch, Config, ExtraFilters, Offsets};

#[no_mangle]
pub(crate) static OFFSETS: Global<Offsets> = Global::new(Offsets::UNSET);

/// One field of `OFFSETS`, loaded on its own: copying the whole struct
/// would take 104 of the programs' 512 stack bytes.
macro_rules! off {
    ($field:ident) => {
        // SAFETY: `Global` is `repr(transparent)` over an initialized
        // `Offsets` in `.rodata`; the field is read in place, volatile like
        // `Global::load`, so the verifier sees a load of a frozen constant.
        unsafe {
            core::ptr::read_volatile(core::ptr::addr_of!(
                (*(&$crate::globals::OFFSETS as *const aya_ebpf::Global<deeptcp_common::Offsets>)
                    .cast::<deeptcp_common::Offsets>())
                .$field
            ))
        }
    };
}

#[no_mangle]
pub(crate) static CONFIG: Global<Config> = Global::new(Config::UNSET);

/// One field of `CONFIG`, read in place (see `off!`).
macro_rules! cfg {
    ($field:ident) => {
        // SAFETY: as in `off!`: a field of an initialized `.rodata` global.
        unsafe {
            core::ptr::read_volatile(core::ptr::addr_of!(
                (*(&$crate::globals::CONFIG as *const aya_ebpf::Global<deeptcp_common::Config>)
                    .cast::<deeptcp_common::Config>())
                .$field
            ))
        }
    };
}

/// `ExtraFilters`, one global per field so that a check copies only what it
/// reads onto the (512-byte) BPF stack.
#[no_mangle]
pub(crate) static FILTER_SADDR: Global<AddrMatch> = Global::new(ExtraFilters::ANY.saddr);
#[no_mangle]
pub(crate) static FILTER_DADDR: Global<AddrMatch> = Global::new(ExtraFilters::ANY.daddr);
#[no_mangle]
pub(crate) static FILTER_COMM: Global<[u64; 2]> = Global::new([0; 2]);
#[no_mangle]
pub(crate) static FILTER_HAS_COMM: Global<u32> = Global::new(0);
#[no_mangle]
pub(crate) static FILTER_KINDS: Global<u32> = Global::new(0);

/// A `.rodata` filter global as a pointer to its value, for in-place reads.
macro_rules! global_ptr {
    ($g:ident, $ty:ty) => {
        (&$g as *const aya_ebpf::Global<$ty>).cast::<$ty>()
    };
}
