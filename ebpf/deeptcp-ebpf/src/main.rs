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
//! loads through their BTF-typed pointers ([`Btf`]: the verifier checks the
//! `.rodata` offsets against the kernel's types), only kprobes pay a
//! `bpf_probe_read_kernel` call per field ([`Probe`]); records are copied
//! into the ring buffer a word at a time.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    btf_maps::SkStorage,
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_socket_cookie,
        bpf_ktime_get_ns, bpf_probe_read_kernel,
    },
    macros::{btf_map, btf_tracepoint, cgroup_skb, fentry, fexit, kprobe, kretprobe, map},
    maps::{LruHashMap, PerCpuArray, RingBuf, StackTrace},
    programs::{
        tracing::StackIdContext, BtfTracePointContext, FEntryContext, FExitContext, ProbeContext, RetProbeContext,
        SkBuffContext,
    },
    EbpfContext, Global,
};
use deeptcp_common::{
    flags, owner_store, probe, AddrMatch, Attribution, Config, EventKind, ExtraFilters, ListenKey, Offsets, Owner,
    TcpState, TupleKey, WireEvent, AF_INET, AF_INET6, NO_STACK,
};

/// `BPF_RB_AVAIL_DATA` for `bpf_ringbuf_query`.
const BPF_RB_AVAIL_DATA: u64 = 0;
/// `BPF_NOEXIST` for map updates: insert only.
const BPF_NOEXIST: u64 = 1;
/// `BPF_SK_STORAGE_GET_F_CREATE`: create the socket's value when it has none.
const SK_STORAGE_CREATE: u64 = 1;
const IPPROTO_TCP: u16 = 6;
const TCP_FLAG_SYN: u8 = 0x02;
const TCP_FLAG_RST: u8 = 0x04;
/// cgroup_skb programs return 1 to let the packet through.
const SKB_PASS: i32 = 1;

#[no_mangle]
static OFFSETS: Global<Offsets> = Global::new(Offsets::UNSET);

/// One field of `OFFSETS`, loaded on its own: copying the whole struct
/// would take 104 of the programs' 512 stack bytes.
macro_rules! off {
    ($field:ident) => {
        // SAFETY: `Global` is `repr(transparent)` over an initialized
        // `Offsets` in `.rodata`; the field is read in place, volatile like
        // `Global::load`, so the verifier sees a load of a frozen constant.
        unsafe {
            core::ptr::read_volatile(core::ptr::addr_of!(
                (*(&OFFSETS as *const Global<Offsets>).cast::<Offsets>()).$field
            ))
        }
    };
}
#[no_mangle]
static CONFIG: Global<Config> = Global::new(Config::UNSET);

/// One field of `CONFIG`, read in place (see `off!`).
macro_rules! cfg {
    ($field:ident) => {
        // SAFETY: as in `off!`: a field of an initialized `.rodata` global.
        unsafe {
            core::ptr::read_volatile(core::ptr::addr_of!(
                (*(&CONFIG as *const Global<Config>).cast::<Config>()).$field
            ))
        }
    };
}
/// `ExtraFilters`, one global per field so that a check copies only what it
/// reads onto the (512-byte) BPF stack.
#[no_mangle]
static FILTER_SADDR: Global<AddrMatch> = Global::new(ExtraFilters::ANY.saddr);
#[no_mangle]
static FILTER_DADDR: Global<AddrMatch> = Global::new(ExtraFilters::ANY.daddr);
#[no_mangle]
static FILTER_COMM: Global<[u64; 2]> = Global::new([0; 2]);
#[no_mangle]
static FILTER_HAS_COMM: Global<u32> = Global::new(0);
#[no_mangle]
static FILTER_KINDS: Global<u32> = Global::new(0);

/// Events to user space; the loader sets the size (`--ring-size`).
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(4 << 20, 0);
/// Per-CPU counts: slot [`LOST_RING_FULL`], events dropped because `EVENTS`
/// was full; slot [`LOST_RECOVERED`], runs the kernel skipped that a
/// nested twin made instead (see [`tp_with_twin`]).
#[map]
static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(2, 0);
const LOST_RING_FULL: u32 = 0;
const LOST_RECOVERED: u32 = 1;
/// Per-CPU, per twinned hook ([`twin`]): whether its first program is
/// running on this CPU (interrupted, when another run of the hook sees it).
#[map]
static BUSY: PerCpuArray<u32> = PerCpuArray::with_max_entries(twin::HOOKS, 0);
/// Kernel stacks for `-K`.
#[map]
static STACKS: StackTrace = StackTrace::with_max_entries(16384, 0);
/// Socket cookie → owner, when `CONFIG.owner_store` is `HASH`.
#[map]
static OWNERS: LruHashMap<u64, Owner> = LruHashMap::with_max_entries(65536, 0);
/// Socket → owner in the socket's own storage, when `CONFIG.owner_store` is
/// `SK_STORAGE`: no hashing, no delete (it goes with the socket).
#[btf_map]
static OWNER_STORE: SkStorage<Owner> = SkStorage::new();
/// (netns, port) of a listening socket → its owner, inherited by accepted sockets.
#[map]
static LISTENERS: LruHashMap<ListenKey, Owner> = LruHashMap::with_max_entries(8192, 0);
/// Kernels before 6.15 announce a listener's child (LISTEN -> SYN_RECV)
/// before giving it its cookie and addresses; that row waits here, keyed by
/// the child's `sk` pointer, until its next transition fills them in.
#[map]
static PENDING_CHILDREN: LruHashMap<u64, WireEvent> = LruHashMap::with_max_entries(8192, 0);
/// Connections that existed before recording started → owner (start-up snapshot).
#[map]
static TUPLE_OWNERS: LruHashMap<TupleKey, Owner> = LruHashMap::with_max_entries(65536, 0);

/// Reads a `T` at `base + off` from kernel memory.
#[inline(always)]
fn read<T>(base: *const u8, off: u32) -> Result<T, i32> {
    // SAFETY: bpf_probe_read_kernel copies through the kernel's fault-tolerant
    // path; a bad address yields an error, never a fault.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(off as usize) as *const T) }
}

/// Reads a `T` at `base + off`, or zeroes when the read fails (the helper
/// zero-fills on error). No branch: keeps the verifier's work per program
/// small, which is most of `record`'s start-up time.
#[inline(always)]
fn rd<T: Default>(base: *const u8, off: u32) -> T {
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
fn rd_ptr(base: *const u8, off: u32) -> *const u8 {
    rd::<usize>(base, off) as *const u8
}

/// How a program reads kernel structs.
trait Mem {
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

/// Whether owners live in socket storage (a `.rodata` constant: the
/// verifier drops the other branch).
#[inline(always)]
fn in_sk_storage() -> bool {
    cfg!(owner_store) == owner_store::SK_STORAGE
}

/// `sk`'s value in `OWNER_STORE`, created from `init` when given.
#[inline(always)]
fn sk_storage(sk: *const u8, init: Option<&Owner>) -> Option<*mut Owner> {
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
fn hash_owner(cookie: u64) -> Option<*mut Owner> {
    if cookie == 0 {
        return None;
    }
    OWNERS.get_ptr_mut(&cookie)
}

/// Puts `owner` in the kept value `p` when `replace` and it is another
/// task's: in place, no map update.
#[inline(always)]
fn overwrite(p: *mut Owner, owner: &Owner, replace: bool) {
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
fn keep_hash_owner(cookie: u64, owner: &Owner, replace: bool) {
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

/// Plain loads through the BTF-typed pointers that tp_btf, fentry and
/// fexit programs receive: the verifier checks every offset (a `.rodata`
/// constant) against the kernel's BTF and makes the load fault-tolerant (a
/// bad pointer reads 0). A load instead of a helper call per field: this is
/// what keeps the per-transition cost low.
struct Btf;

impl Mem for Btf {
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
struct Probe;

impl Mem for Probe {
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

#[inline(always)]
fn count_lost() {
    count(LOST_RING_FULL);
}

#[inline(always)]
fn count(slot: u32) {
    if let Some(p) = LOST.get_ptr_mut(slot) {
        // SAFETY: this CPU's slot; a lost increment under nesting is tolerable.
        unsafe { *p += 1 };
    }
}

/// The current task as the owner of a socket in `netns`.
#[inline(always)]
fn current_owner(netns: u32) -> Owner {
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
fn apply_owner(ev: &mut WireEvent, o: &Owner, how: u8) {
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
fn attribute<M: Mem>(ev: &mut WireEvent, sk: *const u8, in_task: bool) {
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

/// Socket fields common to every event (`sk_err` too, as the seed showed
/// it on every row).
#[inline(always)]
fn fill_from_sock<M: Mem>(ev: &mut WireEvent, sk: *const u8) {
    let family: u16 = M::get(sk, off!(skc_family));
    ev.family = family;
    if family == AF_INET {
        ev.saddr[..4].copy_from_slice(&M::get::<u32>(sk, off!(skc_rcv_saddr)).to_ne_bytes());
        ev.daddr[..4].copy_from_slice(&M::get::<u32>(sk, off!(skc_daddr)).to_ne_bytes());
    } else if family == AF_INET6 {
        ev.saddr = v6(M::get(sk, off!(skc_v6_rcv_saddr)));
        ev.daddr = v6(M::get(sk, off!(skc_v6_daddr)));
    }
    let state: u8 = M::get(sk, off!(skc_state));
    ev.dport = u16::from_be(M::get(sk, off!(skc_dport)));
    if ev.newstate == 0 {
        ev.newstate = state;
    }
    if ev.cookie == 0 {
        ev.cookie = M::get(sk, off!(skc_cookie));
    }
    ev.netns = netns_of::<M>(sk);
    // Time-wait and request sockets are only a sock_common: the local port
    // is skc_num there. Full sockets have inet_sport, which, unlike
    // skc_num, is still set when the port is released on the way to CLOSE.
    let tp = if state == TcpState::TimeWait as u8 || state == TcpState::NewSynRecv as u8 {
        core::ptr::null()
    } else {
        M::tcp_sock(sk)
    };
    if tp.is_null() {
        ev.sport = M::get(sk, off!(skc_num));
        return;
    }
    ev.sport = u16::from_be(M::get(tp, off!(inet_sport)));
    // sk_err lies past sock_common: full sockets only. Read through `tp`,
    // the typed pointer the verifier knows to be a whole tcp_sock.
    ev.sk_err = M::get(tp, off!(sk_err));
    if state == TcpState::Listen as u8 {
        return;
    }
    ev.snd_wnd = M::get(tp, off!(tcp_snd_wnd));
    ev.rcv_wnd = M::get(tp, off!(tcp_rcv_wnd));
    ev.srtt_us = M::get::<u32>(tp, off!(tcp_srtt_us)) >> 3;
    ev.snd_cwnd = M::get(tp, off!(tcp_snd_cwnd));
    ev.bytes_acked = M::get(tp, off!(tcp_bytes_acked));
    ev.bytes_received = M::get(tp, off!(tcp_bytes_received));
    ev.flags |= flags::TCP_INFO;
}

/// The inode of the socket's network namespace (`sk->sk_net->ns.inum`).
#[inline(always)]
fn netns_of<M: Mem>(sk: *const u8) -> u32 {
    M::get(M::get::<usize>(sk, off!(skc_net)) as *const u8, off!(net_ns_inum))
}

/// An IPv6 address read as two words (a 16-byte field in one load each half).
#[inline(always)]
fn v6(words: [u64; 2]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..8].copy_from_slice(&words[0].to_ne_bytes());
    a[8..].copy_from_slice(&words[1].to_ne_bytes());
    a
}

/// Addresses of an RST sent without a socket: the reply to `skb`, so the
/// segment's destination is the RST's source.
#[inline(always)]
fn fill_from_skb(ev: &mut WireEvent, skb: *const u8) -> Result<(), i32> {
    if skb.is_null() {
        return Err(-1);
    }
    let head: *const u8 = read(skb, off!(skb_head))?;
    let data: *const u8 = read(skb, off!(skb_data))?;
    let nh: u16 = read(skb, off!(skb_network_header))?;
    let ip = head.wrapping_add(nh as usize);
    let version: u8 = read::<u8>(ip, 0)? >> 4;
    if version == 4 {
        ev.family = AF_INET;
        let s: [u8; 4] = read(ip, 12)?;
        let d: [u8; 4] = read(ip, 16)?;
        ev.daddr[..4].copy_from_slice(&s);
        ev.saddr[..4].copy_from_slice(&d);
    } else if version == 6 {
        ev.family = AF_INET6;
        ev.daddr = read(ip, 8)?;
        ev.saddr = read(ip, 24)?;
    } else {
        return Err(-1);
    }
    // skb->data points at the TCP header here (as in the tracepoint itself).
    ev.dport = u16::from_be(read(data, 0)?);
    ev.sport = u16::from_be(read(data, 2)?);
    // No socket: the namespace is the receiving device's.
    ev.netns = rd(rd_ptr(rd_ptr(skb, off!(skb_dev)), off!(dev_nd_net)), off!(net_ns_inum));
    Ok(())
}

/// The in-kernel filters (`Config`), on the attributed event.
#[inline(always)]
fn wanted(ev: &WireEvent) -> bool {
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
fn words(p: *const [u8; 16]) -> (u64, u64) {
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

/// A `.rodata` filter global as a pointer to its value, for in-place reads.
macro_rules! global_ptr {
    ($g:ident, $ty:ty) => {
        (&$g as *const Global<$ty>).cast::<$ty>()
    };
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

/// Applies the filters, stamps the time and submits a copy of `ev`.
#[inline(always)]
fn submit(ev: &mut WireEvent, stack_id: i32) -> Result<(), i32> {
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
fn stack_of<C: StackIdContext>(ctx: &C) -> i32 {
    if cfg!(kstack) != 0 {
        ctx.get_stackid(&STACKS, 0).map(|id| id as i32).unwrap_or(NO_STACK)
    } else {
        NO_STACK
    }
}

#[inline(always)]
fn new_event(kind: u8, probe: u8) -> WireEvent {
    let mut ev = WireEvent::EMPTY;
    ev.kind = kind;
    ev.probe = probe;
    ev
}

/// An event about `sk` attributed to its owner; used by most hooks.
#[inline(always)]
fn sock_event<M: Mem, C: StackIdContext>(
    ctx: &C,
    sk: *const u8,
    kind: u8,
    probe: u8,
    in_task: bool,
) -> Result<(), i32> {
    if sk.is_null() {
        return Err(-1);
    }
    let mut ev = new_event(kind, probe);
    fill_from_sock::<M>(&mut ev, sk);
    attribute::<M>(&mut ev, sk, in_task);
    submit(&mut ev, stack_of(ctx))
}

#[inline(always)]
fn is_tcp<M: Mem>(sk: *const u8) -> bool {
    M::get::<u16>(sk, off!(sk_protocol)) == IPPROTO_TCP
}

/// Transitions that only happen inside a syscall of the socket's owner.
#[inline(always)]
fn in_owner_context(old: u8, new: u8) -> bool {
    use TcpState::*;
    let (Some(old), Some(new)) = (TcpState::from_kernel(old), TcpState::from_kernel(new)) else {
        return false;
    };
    matches!(
        (old, new),
        (Close, SynSent) | (Close, Listen) | (Listen, Close) | (Established, FinWait1) | (CloseWait, LastAck)
    )
}

fn try_set_state(ctx: &BtfTracePointContext) -> Result<(), i32> {
    use TcpState::*;
    let sk: *const u8 = ctx.arg(0);
    if sk.is_null() {
        return Err(-1);
    }
    let old = ctx.arg::<i32>(1) as u8;
    let new = ctx.arg::<i32>(2) as u8;
    if !is_tcp::<Btf>(sk) {
        return Ok(());
    }
    let mut ev = new_event(EventKind::StateChange as u8, probe::TP_SET_STATE);
    ev.oldstate = old;
    ev.newstate = new;
    ev.cookie = Btf::get(sk, off!(skc_cookie));
    if ev.cookie == 0 {
        // SAFETY: `sk` is the tracepoint's non-null BTF socket pointer, as
        // the helper requires; it generates the socket's first cookie.
        ev.cookie = unsafe { bpf_get_socket_cookie(sk as *mut _) };
    }
    fill_from_sock::<Btf>(&mut ev, sk);
    if new == Listen as u8 {
        // The fields were read in the state before (CLOSE): a listener has
        // no connection, so no TCP fields, as on its LISTEN -> CLOSE row.
        ev.flags &= !flags::TCP_INFO;
    }

    let listen_key = ListenKey {
        netns: ev.netns,
        port: ev.sport,
        _pad: 0,
    };
    if old == Listen as u8 && new == SynRecv as u8 {
        // A child of a listener: inherit the listener's owner.
        // SAFETY: the map value is copied out at once.
        let listener = unsafe { LISTENERS.get(&listen_key) }.copied();
        if ev.dport == 0 {
            // No peer port: before 6.15 inet_csk_clone_lock() sets SYN_RECV
            // before it copies the cookie and the 4-tuple into the child, so
            // the fields read are still the listener's. Hold the row until
            // the child's next transition (see `flush_pending_child`).
            if let Some(l) = listener {
                apply_owner(&mut ev, &l, Attribution::Listener as u8);
            }
            // SAFETY: helper without memory arguments.
            ev.ts_ns = unsafe { bpf_ktime_get_ns() };
            ev.stack_id = stack_of(ctx);
            let _ = PENDING_CHILDREN.insert(&(sk as u64), &ev, 0);
            return Ok(());
        }
        if let Some(mut inherited) = listener {
            inherited.attribution = Attribution::Listener as u8;
            // Never replaces an owner the socket already has.
            Btf::keep_owner(sk, ev.cookie, &inherited, false);
        }
    } else if old == SynRecv as u8 {
        flush_pending_child(sk, &ev);
    }
    attribute::<Btf>(&mut ev, sk, in_owner_context(old, new));
    if new == Listen as u8 {
        let owner = current_owner(ev.netns);
        let _ = LISTENERS.insert(&listen_key, &owner, 0);
    } else if old == Listen as u8 && new == Close as u8 {
        let _ = LISTENERS.remove(&listen_key);
    }
    // What `record` infers rows from besides the states (see `flags`): did
    // tcp_fin() run (SOCK_DONE), does a process hold the socket (sk_socket)?
    if (Btf::get::<u64>(sk, off!(skc_flags)) >> (off!(sock_done_bit) & 63)) & 1 != 0 {
        ev.flags |= flags::SOCK_DONE;
    }
    if Btf::get::<usize>(sk, off!(sk_socket)) == 0 {
        ev.flags |= flags::NO_USER_SOCKET;
    }
    submit(&mut ev, stack_of(ctx))
}

/// Submits the held LISTEN -> SYN_RECV row of the child socket `sk`, if
/// any, with the cookie and addresses it has now (`cur`, its next
/// transition), and makes the listener's owner the child's.
#[inline(always)]
fn flush_pending_child(sk: *const u8, cur: &WireEvent) {
    let key = sk as u64;
    let Some(p) = PENDING_CHILDREN.get_ptr_mut(&key) else {
        return;
    };
    // SAFETY: `p` points at the map's value for `sk`, valid for this run
    // of the program; it is removed right after use.
    let held = unsafe { &mut *p };
    held.cookie = cur.cookie;
    held.family = cur.family;
    held.saddr = cur.saddr;
    held.daddr = cur.daddr;
    held.sport = cur.sport;
    held.dport = cur.dport;
    held.netns = cur.netns;
    if held.attribution != Attribution::Unknown as u8 && cur.cookie != 0 {
        let owner = Owner {
            netns: held.netns,
            pid_tgid: held.pid_tgid,
            cgroup_id: held.cgroup_id,
            comm: held.comm,
            attribution: held.attribution,
            _pad: [0; 3],
        };
        Btf::keep_owner(sk, cur.cookie, &owner, false);
    }
    let stack_id = held.stack_id;
    let _ = submit(held, stack_id);
    let _ = PENDING_CHILDREN.remove(&key);
}

fn try_error_report(ctx: &BtfTracePointContext) -> Result<(), i32> {
    let sk: *const u8 = ctx.arg(0);
    if sk.is_null() {
        return Err(-1);
    }
    if !is_tcp::<Btf>(sk) {
        return Ok(());
    }
    let mut ev = new_event(EventKind::SockError as u8, probe::TP_ERROR_REPORT);
    fill_from_sock::<Btf>(&mut ev, sk);
    attribute::<Btf>(&mut ev, sk, false);
    submit(&mut ev, stack_of(ctx))
}

fn try_send_reset(ctx: &BtfTracePointContext) -> Result<(), i32> {
    let sk: *const u8 = ctx.arg(0);
    let skb: *const u8 = ctx.arg(1);
    let mut ev = new_event(EventKind::ResetSent as u8, probe::TP_SEND_RESET);
    if sk.is_null() {
        fill_from_skb(&mut ev, skb)?;
    } else {
        fill_from_sock::<Btf>(&mut ev, sk);
    }
    attribute::<Btf>(&mut ev, sk, false);
    submit(&mut ev, stack_of(ctx))
}

fn try_destroy(ctx: &BtfTracePointContext) -> Result<(), i32> {
    let sk: *const u8 = ctx.arg(0);
    if sk.is_null() {
        return Err(-1);
    }
    let mut ev = new_event(EventKind::DestroySock as u8, probe::TP_DESTROY_SOCK);
    fill_from_sock::<Btf>(&mut ev, sk);
    attribute::<Btf>(&mut ev, sk, false);
    let result = submit(&mut ev, stack_of(ctx));
    // Socket storage goes with the socket; a hash entry must be removed.
    if !in_sk_storage() && ev.cookie != 0 {
        let _ = OWNERS.remove(&ev.cookie);
    }
    result
}

/// Zero window received: a segment whose TCP header window is 0. `skb->data`
/// points at the TCP header in `tcp_rcv_established` (tcp_probe) and `tcp_ack`.
#[inline(always)]
fn zero_window_recv<M: Mem, C: StackIdContext>(ctx: &C, sk: *const u8, skb: *const u8, probe: u8) -> Result<(), i32> {
    if sk.is_null() || skb.is_null() {
        return Err(-1);
    }
    let data = M::get::<usize>(skb, off!(skb_data)) as *const u8;
    // Bytes 12..16 of the TCP header: data offset, flags, window.
    let hdr: [u8; 4] = read(data, 12)?;
    let flags_byte = hdr[1];
    let window = u16::from_be_bytes([hdr[2], hdr[3]]);
    if window != 0 || flags_byte & (TCP_FLAG_SYN | TCP_FLAG_RST) != 0 {
        return Ok(());
    }
    let mut ev = new_event(EventKind::ZeroWindowRecv as u8, probe);
    ev.flags |= flags::WINDOW;
    fill_from_sock::<M>(&mut ev, sk);
    attribute::<M>(&mut ev, sk, false);
    submit(&mut ev, stack_of(ctx))
}

/// Owner refresh from hooks that run in the owner's process context (every
/// send and receive): only a socket whose remembered owner is another
/// thread costs more than a lookup.
#[inline(always)]
fn refresh_owner<M: Mem>(sk: *const u8) -> Result<(), i32> {
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

/// An RST sent by `tcp_v4_send_reset`/`tcp_v6_send_reset` for a segment
/// without a full socket (none, time-wait or request socket): kernels
/// before 6.10 fire `tcp_send_reset` only for full sockets, which this
/// leaves to the tracepoint.
#[inline(always)]
fn reset_without_full_sock<M: Mem, C: StackIdContext>(
    ctx: &C,
    sk: *const u8,
    skb: *const u8,
    probe: u8,
) -> Result<(), i32> {
    let mut ev = new_event(EventKind::ResetSent as u8, probe);
    if sk.is_null() {
        fill_from_skb(&mut ev, skb)?;
    } else {
        let state: u8 = M::get(sk, off!(skc_state));
        if state != TcpState::TimeWait as u8 && state != TcpState::NewSynRecv as u8 {
            return Ok(());
        }
        fill_from_sock::<M>(&mut ev, sk);
    }
    attribute::<M>(&mut ev, sk, false);
    submit(&mut ev, stack_of(ctx))
}

// ---- tracepoints (tp_btf): the first rung of every ladder that has one ----

/// The hooks whose programs have a nested twin, by [`BUSY`] slot.
mod twin {
    pub const SET_STATE: u32 = 0;
    pub const RETRANSMIT: u32 = 1;
    pub const RECEIVE_RESET: u32 = 2;
    pub const SEND_RESET: u32 = 3;
    pub const ERROR_REPORT: u32 = 4;
    pub const DESTROY: u32 = 5;
    pub const HOOKS: u32 = 6;
}

/// A tp_btf program and its nested twin on the same hook. The kernel runs a
/// tracing program at most once per CPU at a time: when the hook fires in a
/// softirq that interrupted the program (TCP's receive path interrupting a
/// `close()` or `connect()` on the same CPU), that run is skipped and only
/// counted in the program's `recursion_misses`, and its event is lost. The
/// twin makes exactly those events: it runs on every firing, returns at
/// once unless the first program is running on this CPU ([`BUSY`]), and
/// otherwise makes the event the kernel skipped the first program for,
/// counting it in [`LOST_RECOVERED`] so that `record` can tell the skipped
/// runs that were made up for from those that were not. (Softirqs do not
/// nest, and tp_btf programs run with preemption off: the twin itself is
/// never skipped while it makes an event.) `record --recover-nested`
/// attaches the twins: each costs a program run (~40 ns) per firing, to
/// make up for a few events per million under heavy churn, most of them
/// (the kernel's own bookkeeping around a run, outside [`BUSY`]'s window,
/// leaves some skipped runs that no twin sees; those stay counted as lost).
macro_rules! tp_with_twin {
    ($hook:literal, $name:ident, $twin:ident, $slot:expr, |$ctx:ident| $body:expr) => {
        #[btf_tracepoint(function = $hook)]
        pub fn $name($ctx: BtfTracePointContext) -> i32 {
            let busy = BUSY.get_ptr_mut($slot);
            if let Some(b) = busy {
                // SAFETY: this CPU's slot; this program does not nest on it.
                unsafe { *b = 1 };
            }
            let _ = $body;
            if let Some(b) = busy {
                // SAFETY: as above.
                unsafe { *b = 0 };
            }
            0
        }

        #[btf_tracepoint(function = $hook)]
        pub fn $twin($ctx: BtfTracePointContext) -> i32 {
            match BUSY.get_ptr($slot) {
                // SAFETY: this CPU's slot, read once.
                Some(b) if unsafe { *b } != 0 => {}
                _ => return 0,
            }
            count(LOST_RECOVERED);
            let _ = $body;
            0
        }
    };
}

tp_with_twin!(
    "inet_sock_set_state",
    inet_sock_set_state,
    inet_sock_set_state_nested,
    twin::SET_STATE,
    |ctx| try_set_state(&ctx)
);

tp_with_twin!(
    "tcp_retransmit_skb",
    tcp_retransmit_skb,
    tcp_retransmit_skb_nested,
    twin::RETRANSMIT,
    |ctx| sock_event::<Btf, _>(
        &ctx,
        ctx.arg(0),
        EventKind::Retransmit as u8,
        probe::TP_RETRANSMIT_SKB,
        false
    )
);

#[btf_tracepoint(function = "tcp_retransmit_synack")]
pub fn tcp_retransmit_synack(ctx: BtfTracePointContext) -> i32 {
    // arg 1 is the request socket: a sock_common with the connection's addresses.
    let _ = sock_event::<Btf, _>(
        &ctx,
        ctx.arg(1),
        EventKind::RetransmitSynack as u8,
        probe::TP_RETRANSMIT_SYNACK,
        false,
    );
    0
}

tp_with_twin!(
    "tcp_receive_reset",
    tcp_receive_reset,
    tcp_receive_reset_nested,
    twin::RECEIVE_RESET,
    |ctx| sock_event::<Btf, _>(
        &ctx,
        ctx.arg(0),
        EventKind::ResetRecv as u8,
        probe::TP_RECEIVE_RESET,
        false
    )
);

tp_with_twin!(
    "tcp_send_reset",
    tcp_send_reset,
    tcp_send_reset_nested,
    twin::SEND_RESET,
    |ctx| try_send_reset(&ctx)
);

tp_with_twin!(
    "inet_sk_error_report",
    inet_sk_error_report,
    inet_sk_error_report_nested,
    twin::ERROR_REPORT,
    |ctx| try_error_report(&ctx)
);

tp_with_twin!(
    "tcp_destroy_sock",
    tcp_destroy_sock,
    tcp_destroy_sock_nested,
    twin::DESTROY,
    |ctx| try_destroy(&ctx)
);

#[btf_tracepoint(function = "tcp_probe")]
pub fn tcp_probe(ctx: BtfTracePointContext) -> i32 {
    let _ = zero_window_recv::<Btf, _>(&ctx, ctx.arg(0), ctx.arg(1), probe::TP_TCP_PROBE);
    0
}

#[btf_tracepoint(function = "sock_send_length")]
pub fn sock_send_length(ctx: BtfTracePointContext) -> i32 {
    let _ = refresh_owner::<Btf>(ctx.arg(0));
    0
}

#[btf_tracepoint(function = "sock_recv_length")]
pub fn sock_recv_length(ctx: BtfTracePointContext) -> i32 {
    let _ = refresh_owner::<Btf>(ctx.arg(0));
    0
}

// ---- fentry/fexit: second rungs where no tracepoint exists ----

#[fentry(function = "tcp_fin")]
pub fn fentry_tcp_fin(ctx: FEntryContext) -> i32 {
    let _ = sock_event::<Btf, _>(&ctx, ctx.arg(0), EventKind::FinRecv as u8, probe::FENTRY_TCP_FIN, false);
    0
}

#[fentry(function = "tcp_send_fin")]
pub fn fentry_tcp_send_fin(ctx: FEntryContext) -> i32 {
    let _ = sock_event::<Btf, _>(
        &ctx,
        ctx.arg(0),
        EventKind::FinSent as u8,
        probe::FENTRY_TCP_SEND_FIN,
        false,
    );
    0
}

#[fentry(function = "tcp_send_loss_probe")]
pub fn fentry_tcp_send_loss_probe(ctx: FEntryContext) -> i32 {
    let _ = sock_event::<Btf, _>(
        &ctx,
        ctx.arg(0),
        EventKind::LossProbe as u8,
        probe::FENTRY_TCP_SEND_LOSS_PROBE,
        false,
    );
    0
}

#[fentry(function = "tcp_sendmsg")]
pub fn fentry_tcp_sendmsg(ctx: FEntryContext) -> i32 {
    let _ = refresh_owner::<Btf>(ctx.arg(0));
    0
}

#[fentry(function = "tcp_recvmsg")]
pub fn fentry_tcp_recvmsg(ctx: FEntryContext) -> i32 {
    let _ = refresh_owner::<Btf>(ctx.arg(0));
    0
}

#[fentry(function = "tcp_v4_send_reset")]
pub fn fentry_tcp_v4_send_reset(ctx: FEntryContext) -> i32 {
    let _ = reset_without_full_sock::<Btf, _>(&ctx, ctx.arg(0), ctx.arg(1), probe::FENTRY_TCP_V4_SEND_RESET);
    0
}

#[fentry(function = "tcp_v6_send_reset")]
pub fn fentry_tcp_v6_send_reset(ctx: FEntryContext) -> i32 {
    let _ = reset_without_full_sock::<Btf, _>(&ctx, ctx.arg(0), ctx.arg(1), probe::FENTRY_TCP_V6_SEND_RESET);
    0
}

fn try_fexit_transmit(ctx: &FExitContext) -> Result<(), i32> {
    let sk: *const u8 = ctx.arg(0);
    if sk.is_null() {
        return Err(-1);
    }
    let state: u8 = read(sk, off!(skc_state))?;
    // After transmit, tp->rcv_wnd is the window just advertised.
    if state != TcpState::Established as u8 || read::<u32>(sk, off!(tcp_rcv_wnd))? != 0 {
        return Ok(());
    }
    let mut ev = new_event(EventKind::ZeroWindowSent as u8, probe::FEXIT_TCP_TRANSMIT_SKB);
    ev.flags |= flags::WINDOW;
    fill_from_sock::<Btf>(&mut ev, sk);
    attribute::<Btf>(&mut ev, sk, false);
    submit(&mut ev, stack_of(ctx))
}

#[fexit(function = "__tcp_transmit_skb")]
pub fn fexit_tcp_transmit_skb(ctx: FExitContext) -> i32 {
    let _ = try_fexit_transmit(&ctx);
    0
}

/// accept() returning: the new socket, in the acceptor's process context.
/// The return value sits in the context slot after the arguments: one
/// program per signature (`record` loads the one of this kernel), as the
/// verifier only takes constant context offsets.
#[inline(always)]
fn accept_returned(ctx: &FExitContext, sk: *const u8) -> i32 {
    let _ = sock_event::<Btf, _>(ctx, sk, EventKind::Accept as u8, probe::FEXIT_INET_CSK_ACCEPT, true);
    0
}

/// `inet_csk_accept(sk, arg)`, since 6.10.
#[fexit(function = "inet_csk_accept")]
pub fn fexit_inet_csk_accept(ctx: FExitContext) -> i32 {
    accept_returned(&ctx, ctx.arg(2))
}

/// `inet_csk_accept(sk, flags, err, kern)`, before 6.10.
#[fexit(function = "inet_csk_accept")]
pub fn fexit_inet_csk_accept4(ctx: FExitContext) -> i32 {
    accept_returned(&ctx, ctx.arg(4))
}

// ---- kprobes: third rungs (the seed's hooks) ----

#[kprobe(function = "tcp_fin")]
pub fn kprobe_tcp_fin(ctx: ProbeContext) -> u32 {
    let _ = sock_event::<Probe, _>(
        &ctx,
        ctx.arg(0).unwrap_or(core::ptr::null()),
        EventKind::FinRecv as u8,
        probe::KPROBE_TCP_FIN,
        false,
    );
    0
}

#[kprobe(function = "tcp_send_fin")]
pub fn kprobe_tcp_send_fin(ctx: ProbeContext) -> u32 {
    let sk = ctx.arg(0).unwrap_or(core::ptr::null());
    let _ = sock_event::<Probe, _>(&ctx, sk, EventKind::FinSent as u8, probe::KPROBE_TCP_SEND_FIN, false);
    0
}

#[kprobe(function = "tcp_ack")]
pub fn kprobe_tcp_ack(ctx: ProbeContext) -> u32 {
    let sk = ctx.arg(0).unwrap_or(core::ptr::null());
    let skb = ctx.arg(1).unwrap_or(core::ptr::null());
    let _ = zero_window_recv::<Probe, _>(&ctx, sk, skb, probe::KPROBE_TCP_ACK);
    0
}

#[kprobe(function = "tcp_send_loss_probe")]
pub fn kprobe_tcp_send_loss_probe(ctx: ProbeContext) -> u32 {
    let sk = ctx.arg(0).unwrap_or(core::ptr::null());
    let _ = sock_event::<Probe, _>(
        &ctx,
        sk,
        EventKind::LossProbe as u8,
        probe::KPROBE_TCP_SEND_LOSS_PROBE,
        false,
    );
    0
}

#[kprobe(function = "tcp_sendmsg")]
pub fn kprobe_tcp_sendmsg(ctx: ProbeContext) -> u32 {
    let _ = refresh_owner::<Probe>(ctx.arg(0).unwrap_or(core::ptr::null()));
    0
}

#[kprobe(function = "tcp_recvmsg")]
pub fn kprobe_tcp_recvmsg(ctx: ProbeContext) -> u32 {
    let _ = refresh_owner::<Probe>(ctx.arg(0).unwrap_or(core::ptr::null()));
    0
}

#[kprobe(function = "tcp_v4_send_reset")]
pub fn kprobe_tcp_v4_send_reset(ctx: ProbeContext) -> u32 {
    let sk = ctx.arg(0).unwrap_or(core::ptr::null());
    let skb = ctx.arg(1).unwrap_or(core::ptr::null());
    let _ = reset_without_full_sock::<Probe, _>(&ctx, sk, skb, probe::KPROBE_TCP_V4_SEND_RESET);
    0
}

#[kprobe(function = "tcp_v6_send_reset")]
pub fn kprobe_tcp_v6_send_reset(ctx: ProbeContext) -> u32 {
    let sk = ctx.arg(0).unwrap_or(core::ptr::null());
    let skb = ctx.arg(1).unwrap_or(core::ptr::null());
    let _ = reset_without_full_sock::<Probe, _>(&ctx, sk, skb, probe::KPROBE_TCP_V6_SEND_RESET);
    0
}

/// accept() returning: the new socket, in the acceptor's process context.
#[kretprobe(function = "inet_csk_accept")]
pub fn kretprobe_inet_csk_accept(ctx: RetProbeContext) -> u32 {
    let sk: *const u8 = ctx.ret();
    let _ = sock_event::<Probe, _>(
        &ctx,
        sk,
        EventKind::Accept as u8,
        probe::KRETPROBE_INET_CSK_ACCEPT,
        true,
    );
    0
}

// ---- cgroup_skb: header-parsing fallbacks for zero windows ----

/// Parses the IP and TCP headers of `skb`; submits a zero-window event when
/// the segment advertises window 0. `local_is_src`: egress (we sent it).
fn try_zero_window_skb(ctx: &SkBuffContext, kind: u8, probe: u8, local_is_src: bool) -> Result<(), i32> {
    if nonzero_window(ctx) {
        return Ok(());
    }
    let first: u8 = ctx.load(0).map_err(|_| -1)?;
    let mut ev = new_event(kind, probe);
    // Source into saddr, destination into daddr; swapped below for ingress.
    let th: usize = match first >> 4 {
        4 => {
            if ctx.load::<u8>(9).map_err(|_| -1)? != IPPROTO_TCP as u8 {
                return Ok(());
            }
            ev.family = AF_INET;
            ev.saddr[..4].copy_from_slice(&ctx.load::<[u8; 4]>(12).map_err(|_| -1)?);
            ev.daddr[..4].copy_from_slice(&ctx.load::<[u8; 4]>(16).map_err(|_| -1)?);
            ((first & 0x0f) as usize) * 4
        }
        6 => {
            // Next header TCP without extension headers (the common case).
            if ctx.load::<u8>(6).map_err(|_| -1)? != IPPROTO_TCP as u8 {
                return Ok(());
            }
            ev.family = AF_INET6;
            ev.saddr = ctx.load(8).map_err(|_| -1)?;
            ev.daddr = ctx.load(24).map_err(|_| -1)?;
            40
        }
        _ => return Ok(()),
    };
    if th < 20 || th > 60 {
        return Ok(());
    }
    let window = u16::from_be(ctx.load(th + 14).map_err(|_| -1)?);
    let tcp_flags: u8 = ctx.load(th + 13).map_err(|_| -1)?;
    if window != 0 || tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_RST) != 0 {
        return Ok(());
    }
    let sp = u16::from_be(ctx.load(th).map_err(|_| -1)?);
    let dp = u16::from_be(ctx.load(th + 2).map_err(|_| -1)?);
    if local_is_src {
        (ev.sport, ev.dport) = (sp, dp);
    } else {
        core::mem::swap(&mut ev.saddr, &mut ev.daddr);
        (ev.sport, ev.dport) = (dp, sp);
    }
    ev.flags |= flags::WINDOW;
    // SAFETY: the skb context is what this helper takes in cgroup_skb programs.
    ev.cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    attribute::<Btf>(&mut ev, skb_full_sock(ctx), false);
    submit(&mut ev, NO_STACK)
}

/// The full socket of a cgroup_skb packet, for socket storage; null with
/// the hash store (which goes by cookie) or when the packet has none.
#[inline(always)]
fn skb_full_sock(ctx: &SkBuffContext) -> *const u8 {
    if !in_sk_storage() {
        return core::ptr::null();
    }
    let skb = ctx.as_ptr() as *const aya_ebpf::bindings::__sk_buff;
    // SAFETY: the context of a cgroup_skb program is a `__sk_buff`, whose
    // `sk` the verifier rewrites into the packet's socket (or null).
    let sk = unsafe { (*skb).__bindgen_anon_2.sk };
    if sk.is_null() {
        return core::ptr::null();
    }
    // SAFETY: a non-null socket of the context, as the helper takes; it
    // returns the full socket or null.
    unsafe { aya_ebpf::helpers::generated::bpf_sk_fullsock(sk) as *const u8 }
}

/// Whether the segment in `ctx` is surely not a zero-window one, decided
/// with direct packet reads (no helper call) for the common header layouts:
/// the pre-filter that keeps the per-packet cost of the cgroup_skb rungs
/// small. `false` means "look closer" (zero window, or a layout it skips).
#[inline(always)]
fn nonzero_window(ctx: &SkBuffContext) -> bool {
    let skb = ctx.as_ptr() as *const aya_ebpf::bindings::__sk_buff;
    // SAFETY: the context of a cgroup_skb program is a `__sk_buff`; the
    // verifier rewrites these two loads into packet pointers.
    let (start, end) = unsafe { ((*skb).data as usize, (*skb).data_end as usize) };
    // IPv4 without options or IPv6 without extension headers: the TCP
    // header at 20 or 40 bytes; its flags at +13, window at +14.
    // (A TCP segment over IPv4 is at least 40 bytes; a shorter packet goes
    // the slow way.)
    if start + 36 > end {
        return false;
    }
    // SAFETY (all packet reads below): each offset lies before `end`,
    // checked just before, in the packet's linear data the program may read.
    let first = unsafe { *(start as *const u8) };
    let (proto, flags, window) = if first == 0x45 {
        unsafe {
            (
                *((start + 9) as *const u8),
                *((start + 33) as *const u8),
                *((start + 34) as *const u16),
            )
        }
    } else if first >> 4 == 6 {
        if start + 56 > end {
            return false;
        }
        unsafe {
            (
                *((start + 6) as *const u8),
                *((start + 53) as *const u8),
                *((start + 54) as *const u16),
            )
        }
    } else {
        return false;
    };
    proto != IPPROTO_TCP as u8 || window != 0 || flags & (TCP_FLAG_SYN | TCP_FLAG_RST) != 0
}

#[cgroup_skb(egress)]
pub fn cgroup_skb_egress(ctx: SkBuffContext) -> i32 {
    let _ = try_zero_window_skb(&ctx, EventKind::ZeroWindowSent as u8, probe::CGROUP_SKB_EGRESS, true);
    SKB_PASS
}

#[cgroup_skb(ingress)]
pub fn cgroup_skb_ingress(ctx: SkBuffContext) -> i32 {
    let _ = try_zero_window_skb(&ctx, EventKind::ZeroWindowRecv as u8, probe::CGROUP_SKB_INGRESS, false);
    SKB_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 4] = *b"GPL\0";
