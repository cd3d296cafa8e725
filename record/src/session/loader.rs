//! Loading the eBPF programs into this kernel and attaching them: the
//! object built into the binary, this kernel's BTF (read once, see
//! [`kernel_btf`]) and the offsets resolved from it, the filters as the
//! programs' read-only globals, the probe ladders; then the owner maps
//! seeded from the start-up snapshot. Shared by recording and
//! `--list-probes`.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use aya::maps::HashMap as AyaHashMap;
use aya::{Ebpf, EbpfLoader};
use deeptcp_common::{Config as BpfConfig, ExtraFilters, ListenKey, Owner, TupleKey};
use deeptcp_format::{Attribution, EventKind, ProbeStatus, TcpState};
use deeptcp_record::convert;

use crate::btf::{self, KernelBtf};
use crate::cli::{Config, OwnerStore};
use crate::{host, offsets, probes, requirements, snapshot};

#[cfg(not(deeptcp_no_ebpf))]
static EBPF_OBJECT: Option<&[u8]> = Some(aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/deeptcp")));

#[cfg(deeptcp_no_ebpf)]
static EBPF_OBJECT: Option<&[u8]> = None;

/// The eBPF object built into this binary, if any.
#[cfg(test)]
pub(crate) fn ebpf_object() -> Option<&'static [u8]> {
    EBPF_OBJECT
}

/// The eBPF object built into this binary, or the error that says how to build it in.
pub(super) fn object() -> Result<&'static [u8]> {
    EBPF_OBJECT.ok_or_else(|| {
        anyhow!("this record binary was built without its eBPF programs; run scripts/bootstrap, then rebuild")
    })
}

/// The filters beyond `Config`, in the programs' layout.
pub(super) fn extra_filters(f: &crate::cli::Filters) -> ExtraFilters {
    let addr = |c: Option<deeptcp_format::filter::Cidr>| {
        let mut m = ExtraFilters::ANY.saddr;
        if let Some(c) = c {
            let (bytes, bits, family): (Vec<u8>, usize, u16) = match c.addr() {
                std::net::IpAddr::V4(a) => (a.octets().to_vec(), 32, deeptcp_common::AF_INET),
                std::net::IpAddr::V6(a) => (a.octets().to_vec(), 128, deeptcp_common::AF_INET6),
            };
            m.family = family;
            m.net[..bytes.len()].copy_from_slice(&bytes);
            for bit in 0..usize::from(c.prefix()).min(bits) {
                m.mask[bit / 8] |= 0x80 >> (bit % 8);
            }
        }
        m
    };
    let mut comm = [0u8; 16];
    if let Some(c) = &f.comm {
        let n = c.len().min(15);
        comm[..n].copy_from_slice(&c.as_bytes()[..n]);
    }
    ExtraFilters {
        saddr: addr(f.saddr),
        daddr: addr(f.daddr),
        comm,
        has_comm: u32::from(f.comm.is_some()),
        kinds: kernel_kinds(&f.kinds),
    }
}

/// The `FILTER_KINDS` mask for `--kind`: the wire kinds wanted, plus
/// `state_change` when a kind `record` may infer from it is (the converter
/// then drops the `state_change` rows themselves). 0 = every kind.
fn kernel_kinds(kinds: &[EventKind]) -> u32 {
    let wants = |e: EventKind| {
        kinds.contains(&e)
            || (e == EventKind::StateChange && convert::Inference::KINDS.iter().any(|k| kinds.contains(k)))
    };
    EventKind::ALL
        .into_iter()
        .filter(|k| k.on_wire() && wants(*k))
        .fold(0, |m, k| m | (1u32 << k as u8))
}

/// What [`load_and_attach`] attaches, besides the filters.
pub(super) struct Attach<'a> {
    ring_size: u32,
    disabled: &'a [String],
    /// `--kind` (empty: every kind); other kinds' ladders are not attached.
    kinds: &'a [EventKind],
    owner_store: OwnerStore,
    /// `--recover-nested`.
    twins: bool,
    /// The cgroup v2 mount, for the cgroup_skb rungs.
    cgroup2: Option<&'a Path>,
}

impl<'a> Attach<'a> {
    /// What a recording with `cfg` attaches.
    pub(super) fn recording(cfg: &'a Config, cgroup2: Option<&'a Path>) -> Self {
        Attach {
            ring_size: cfg.ring_size,
            disabled: &cfg.disabled,
            kinds: &cfg.filters.kinds,
            owner_store: cfg.owner_store,
            twins: cfg.recover_nested,
            cgroup2,
        }
    }
}

/// The programs' `CONFIG` for a recording with `cfg` (the owner store is
/// set by [`load_and_attach`]).
pub(super) fn bpf_config(cfg: &Config) -> BpfConfig {
    let f = &cfg.filters;
    BpfConfig {
        filter_pid: f.pid,
        filter_netns: f.netns,
        kstack: u32::from(cfg.kstack),
        filter_sport: f.sport,
        filter_dport: f.dport,
        filter_port: f.port,
        extra_filters: u32::from(f.has_extra()),
        // Wake the reader only when a quarter of the ring is full; it also polls every 100 ms.
        wakeup_bytes: u64::from(cfg.ring_size / 4),
        ..BpfConfig::UNSET
    }
}

/// The running kernel's BTF, read once and parsed by the two readers that
/// need it: ours ([`KernelBtf`]: the programs' field offsets, the
/// requirements, which rungs this kernel needs) and aya's (loading and
/// attaching the BTF programs), which answers none of our questions.
fn kernel_btf() -> Result<(KernelBtf, aya::Btf)> {
    let needs = || {
        format!(
            "reading kernel BTF: record needs Linux {} or later built with CONFIG_DEBUG_INFO_BTF",
            requirements::MIN_KERNEL
        )
    };
    let data = btf::read(Path::new(btf::SYS_FS)).with_context(needs)?;
    let ours = KernelBtf::parse(&data).with_context(needs)?;
    let aya_btf = aya::Btf::parse(&data, aya::Endianness::default()).context("reading kernel BTF")?;
    Ok((ours, aya_btf))
}

/// Loads the object with this kernel's offsets, `bpf_cfg` and the filters,
/// then walks the probe ladders. Shared by recording and `--list-probes`.
/// With `--owner-store socket`, owners go to socket storage unless a
/// kprobe rung ends up in use (kprobes cannot reach it): then the object
/// is loaded again, with the hash, before anything is recorded.
pub(super) fn load_and_attach(
    bpf_cfg: &BpfConfig,
    extra: &ExtraFilters,
    how: &Attach<'_>,
) -> Result<(Ebpf, Vec<ProbeStatus>, OwnerStore)> {
    let object = object()?;
    crate::privileges::check()?;
    let (kbtf, aya_btf) = kernel_btf()?;
    requirements::Features::of(&kbtf).check(&host::kernel_release())?;
    let offsets = offsets::resolve(&kbtf)?;
    let config = |store: OwnerStore| BpfConfig {
        owner_store: store.wire(),
        ..*bpf_cfg
    };
    // Both possible `CONFIG`s outlive the loader, which borrows them.
    let (wanted, fallback) = (config(how.owner_store), config(OwnerStore::Hash));
    let mut loader = EbpfLoader::new();
    loader
        .btf(Some(&aya_btf))
        .override_global("OFFSETS", &offsets, true)
        .override_global("FILTER_SADDR", &extra.saddr, true)
        .override_global("FILTER_DADDR", &extra.daddr, true)
        .override_global("FILTER_COMM", &extra.comm, true)
        .override_global("FILTER_HAS_COMM", &extra.has_comm, true)
        .override_global("FILTER_KINDS", &extra.kinds, true)
        .map_max_entries("EVENTS", how.ring_size);
    let env = probes::AttachEnv {
        btf: &aya_btf,
        kbtf: &kbtf,
        cgroup: how.cgroup2,
        disabled: how.disabled,
        kinds: how.kinds,
        twins: how.twins,
    };
    let mut store = how.owner_store;
    loop {
        let cfg = if store == how.owner_store { &wanted } else { &fallback };
        let mut ebpf = loader
            .override_global("CONFIG", cfg, true)
            .load(object)
            .context("loading the eBPF object")?;
        let statuses = probes::attach_all(&mut ebpf, &env);
        if store == OwnerStore::Socket && probes::uses_kprobes(&statuses) {
            // Detaches everything (nothing was read from the ring yet).
            drop(ebpf);
            store = OwnerStore::Hash;
            continue;
        }
        return Ok((ebpf, statuses, store));
    }
}

/// Whether what attached can record: `state_change` is there (unless the
/// user turned it off), and anything at all is. Warns about the kinds this
/// kernel does not record. The number of probes attached.
pub(super) fn check_attached(statuses: &[ProbeStatus], disabled: &[String]) -> Result<usize> {
    // Every inference and most attribution build on state_change: without
    // it (unless the user turned it off) the kernel is below the minimum.
    if let Some(s) = statuses.iter().find(|s| s.kind == "state_change" && !s.used) {
        if !disabled.contains(&s.probe) {
            return Err(requirements::state_change_failed(&host::kernel_release(), &s.detail));
        }
    }
    let attached = statuses.iter().filter(|s| s.used).count();
    let missing = probes::missing_kinds(statuses);
    if !missing.is_empty() {
        say!(
            "record: warning: not recorded on this kernel: {} (see record --list-probes)",
            missing.join(", ")
        );
    }
    if attached == 0 {
        bail!("no probe could be attached; nothing to record");
    }
    Ok(attached)
}

/// `record --list-probes`: the ladder report for this kernel on stdout.
pub fn list_probes(disabled: &[String], owner_store: OwnerStore) -> Result<()> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let cgroup2 = probes::cgroup2_mount(&mounts);
    let how = Attach {
        ring_size: 4096,
        disabled,
        kinds: &[],
        owner_store,
        twins: false,
        cgroup2: cgroup2.as_deref(),
    };
    let (_ebpf, statuses, store) = load_and_attach(&BpfConfig::UNSET, &ExtraFilters::ANY, &how)?;
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let report = probes::render_report(&statuses, &mut out)
        .and_then(|()| writeln!(out, "\nsocket owners kept in: {}", store.describe()));
    match report {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing the report"),
    }
}

/// Seeds the kernel's owner maps from the start-up snapshot.
pub(super) fn seed_owners(ebpf: &mut Ebpf, sockets: &[snapshot::SnapSocket]) -> Result<()> {
    let mut tuples: AyaHashMap<_, TupleKey, Owner> =
        AyaHashMap::try_from(ebpf.map_mut("TUPLE_OWNERS").context("map TUPLE_OWNERS missing")?)?;
    let owner_of = |s: &snapshot::SnapSocket| {
        s.owner.as_ref().map(|o| {
            let mut comm = [0u8; 16];
            let n = o.comm.len().min(15);
            comm[..n].copy_from_slice(&o.comm.as_bytes()[..n]);
            Owner {
                pid_tgid: (u64::from(o.pid) << 32) | u64::from(o.pid),
                cgroup_id: o.cgroup_id,
                comm,
                netns: s.netns,
                attribution: Attribution::Snapshot as u8,
                _pad: [0; 3],
            }
        })
    };
    for s in sockets {
        let Some(owner) = owner_of(s) else { continue };
        let key = TupleKey {
            saddr: s.saddr,
            daddr: s.daddr,
            netns: s.netns,
            sport: s.sport,
            dport: s.dport,
        };
        tuples.insert(key, owner, 0)?;
    }
    let mut listeners: AyaHashMap<_, ListenKey, Owner> =
        AyaHashMap::try_from(ebpf.map_mut("LISTENERS").context("map LISTENERS missing")?)?;
    for s in sockets.iter().filter(|s| s.state == TcpState::Listen as u8) {
        let Some(owner) = owner_of(s) else { continue };
        listeners.insert(
            ListenKey {
                netns: s.netns,
                port: s.sport,
                _pad: 0,
            },
            owner,
            0,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_kind_mask_keeps_state_changes_for_inferred_kinds() {
        assert_eq!(kernel_kinds(&[]), 0, "no --kind: everything");
        assert_eq!(kernel_kinds(&[EventKind::ResetSent]), 1 << EventKind::ResetSent as u8);
        assert_eq!(
            kernel_kinds(&[EventKind::FinRecv]),
            (1 << EventKind::FinRecv as u8) | (1 << EventKind::StateChange as u8)
        );
        assert_eq!(
            kernel_kinds(&[EventKind::Connect, EventKind::Retransmit]),
            (1 << EventKind::Connect as u8) | (1 << EventKind::Retransmit as u8) | (1 << EventKind::StateChange as u8)
        );
    }
}
