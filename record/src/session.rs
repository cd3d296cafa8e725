//! One recording session: resolve offsets, load and attach the programs,
//! drain the ring buffer on this thread and hand batches to a writer thread
//! that builds Arrow rows and encodes Parquet, then close both files cleanly
//! on SIGINT/SIGTERM or at `--duration`.
//!
//! Per-event work on the drain thread is a copy out of the ring buffer;
//! conversion, compression and I/O happen on the writer thread.

use std::collections::HashSet;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use aya::maps::HashMap as AyaHashMap;
use aya::maps::{MapData, PerCpuArray, RingBuf, StackTraceMap};
use aya::{Ebpf, EbpfLoader};
use deeptcp_common::{Config as BpfConfig, ListenKey, Owner, TupleKey, WireEvent};
use deeptcp_format::{EventWriter, ProbeStatus, RecordingMeta, StackWriter, WriterOptions, SCHEMA_VERSION};

use crate::cli::Config;
use crate::symbolize::Symbolizer;
use crate::{btf, convert, host, offsets, probes, signals, snapshot};

#[cfg(not(deeptcp_no_ebpf))]
static EBPF_OBJECT: Option<&[u8]> = Some(aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/deeptcp")));
#[cfg(deeptcp_no_ebpf)]
static EBPF_OBJECT: Option<&[u8]> = None;

/// Batch handed from the drain thread to the writer thread.
enum Msg {
    Events(Vec<WireEvent>),
    Stack(i64, Vec<String>),
}

/// What the writer thread hands back for closing.
struct Writers {
    converter: convert::Converter,
    events: EventWriter,
    stacks: Option<StackWriter>,
    rejected: u64,
}

/// Opens an output file: never follows a symlink, never clobbers unless `force`, mode 0600.
fn create_output(path: &Path, force: bool) -> Result<File> {
    let mut opts = File::options();
    opts.write(true).mode(0o600).custom_flags(libc::O_NOFOLLOW);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    opts.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => anyhow!("{} already exists (use --force to replace it)", path.display()),
        _ if e.raw_os_error() == Some(libc::ELOOP) => {
            anyhow!("{} is a symbolic link; refusing to write through it", path.display())
        }
        _ => anyhow::Error::new(e).context(format!("creating {}", path.display())),
    })
}

/// When the writer closes a row group. Each row group costs a few KiB of
/// footer metadata, so a quiet recorder must not close one every second;
/// a busy one must, so that a live file is readable up to a recent point.
#[derive(Debug, Clone, Copy)]
struct FlushPolicy {
    /// Under load (at least `busy_rows` pending): close a row group this often.
    every: Duration,
    busy_rows: u64,
    /// Otherwise, with anything pending: this often.
    idle_every: Duration,
}

impl FlushPolicy {
    fn due(&self, since_flush: Duration, pending_rows: u64) -> bool {
        (pending_rows >= self.busy_rows && since_flush >= self.every)
            || (pending_rows > 0 && since_flush >= self.idle_every)
    }
}

fn writer_thread(rx: mpsc::Receiver<Msg>, mut w: Writers, policy: FlushPolicy) -> Result<Writers> {
    let mut last_flush = Instant::now();
    let mut rows_at_flush = 0u64;
    loop {
        match rx.recv_timeout(policy.every) {
            Ok(Msg::Events(batch)) => {
                for wire in &batch {
                    match w.converter.convert(wire) {
                        Ok(ev) => w.events.push(&ev)?,
                        Err(_) => w.rejected += 1,
                    }
                }
            }
            Ok(Msg::Stack(id, frames)) => {
                if let Some(s) = w.stacks.as_mut() {
                    s.push(id, &frames)?;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Ok(w),
        }
        if policy.due(last_flush.elapsed(), w.events.rows() - rows_at_flush) {
            w.events.flush()?;
            last_flush = Instant::now();
            rows_at_flush = w.events.rows();
        }
    }
}

/// The periodic status line on stderr (events/s, lost, file size): one
/// line every `every` (10 s by default), or an in-place line each second on
/// a terminal. Lost events are never silent: a change in the lost count is
/// printed at the next status tick even with `--quiet`.
struct Status {
    quiet: bool,
    tty: bool,
    every: Duration,
    last: Instant,
    drained: u64,
    drained_at_last: u64,
    lost_at_last: u64,
    printed_inline: bool,
}

impl Status {
    fn new(quiet: bool, every: Duration) -> Self {
        // SAFETY: isatty on a constant, always-valid descriptor number.
        let tty = unsafe { libc::isatty(libc::STDERR_FILENO) } == 1;
        Status {
            quiet,
            tty,
            every: if tty { Duration::from_secs(1) } else { every },
            last: Instant::now(),
            drained: 0,
            drained_at_last: 0,
            lost_at_last: 0,
            printed_inline: false,
        }
    }

    fn maybe_print(&mut self, lost: impl FnOnce() -> u64, output: &Path) {
        let elapsed = self.last.elapsed();
        if elapsed < self.every {
            return;
        }
        let lost = lost();
        let new_lost = lost.saturating_sub(self.lost_at_last);
        if !self.quiet || new_lost > 0 {
            let rate = (self.drained - self.drained_at_last) as f64 / elapsed.as_secs_f64();
            let size = std::fs::metadata(output).map(|m| m.len()).unwrap_or(0);
            let line = format!(
                "record: {} events ({rate:.0}/s), {lost} lost{}, {} on disk",
                self.drained,
                if new_lost > 0 {
                    format!(
                        " (+{new_lost} in the last {:.0} s: ring buffer full, try a larger --ring-size)",
                        elapsed.as_secs_f64()
                    )
                } else {
                    String::new()
                },
                human_bytes(size)
            );
            if self.tty && new_lost == 0 {
                eprint!("\r{line}\x1b[K");
                self.printed_inline = true;
            } else {
                self.finish();
                eprintln!("{line}");
            }
        }
        self.last = Instant::now();
        self.drained_at_last = self.drained;
        self.lost_at_last = lost;
    }

    /// Ends an in-place line so that what follows starts on its own line.
    fn finish(&mut self) {
        if self.printed_inline {
            eprintln!();
            self.printed_inline = false;
        }
    }
}

fn lost_events(lost: &PerCpuArray<MapData, u64>) -> u64 {
    lost.get(&0, 0).map(|v| v.iter().sum()).unwrap_or(0)
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn no_object() -> anyhow::Error {
    anyhow!("this record binary was built without its eBPF programs; run scripts/bootstrap, then rebuild")
}

/// Loads the object with this kernel's offsets and `bpf_cfg`, then walks the
/// probe ladders. Shared by recording and `--list-probes`.
fn load_and_attach(bpf_cfg: &BpfConfig, ring_size: u32, disabled: &[String]) -> Result<(Ebpf, Vec<ProbeStatus>)> {
    let object = EBPF_OBJECT.ok_or_else(no_object)?;
    crate::privileges::check()?;
    let kbtf = btf::Btf::from_sys_fs().context("reading kernel BTF (needs CONFIG_DEBUG_INFO_BTF)")?;
    let offsets = offsets::resolve(&kbtf)?;
    let aya_btf = aya::Btf::from_sys_fs().context("reading kernel BTF")?;
    let mut ebpf = EbpfLoader::new()
        .override_global("OFFSETS", &offsets, true)
        .override_global("CONFIG", bpf_cfg, true)
        .map_max_entries("EVENTS", ring_size)
        .load(object)
        .context("loading the eBPF object")?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let cgroup = probes::cgroup2_mount(&mounts);
    let env = probes::AttachEnv {
        btf: &aya_btf,
        cgroup: cgroup.as_deref(),
        disabled,
    };
    let statuses = probes::attach_all(&mut ebpf, &env);
    Ok((ebpf, statuses))
}

/// `record --list-probes`: the ladder report for this kernel on stdout.
pub fn list_probes(disabled: &[String]) -> Result<()> {
    let (_ebpf, statuses) = load_and_attach(&BpfConfig::UNSET, 4096, disabled)?;
    let mut out = std::io::stdout().lock();
    match probes::render_report(&statuses, &mut out) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing the report"),
    }
}

/// Seeds the kernel's owner maps from the start-up snapshot.
fn seed_owners(ebpf: &mut Ebpf, sockets: &[snapshot::SnapSocket]) -> Result<()> {
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
                attribution: deeptcp_common::attribution::SNAPSHOT,
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
    for s in sockets.iter().filter(|s| s.state == deeptcp_common::tcp_state::LISTEN) {
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

pub fn run(cfg: Config) -> Result<()> {
    if EBPF_OBJECT.is_none() {
        return Err(no_object());
    }
    let out = create_output(&cfg.output, cfg.force)?;
    let stacks_out = match &cfg.stacks_output {
        Some(p) => Some(create_output(p, cfg.force)?),
        None => None,
    };
    let remove_outputs = || {
        let _ = std::fs::remove_file(&cfg.output);
        if let Some(p) = &cfg.stacks_output {
            let _ = std::fs::remove_file(p);
        }
    };
    let f = cfg.filters;
    let bpf_cfg = BpfConfig {
        filter_pid: f.pid,
        filter_netns: f.netns,
        kstack: u32::from(cfg.stacks_output.is_some()),
        filter_sport: f.sport,
        filter_dport: f.dport,
        filter_port: f.port,
        _pad: [0; 3],
        // Wake the reader only when a quarter of the ring is full; it also polls every 100 ms.
        wakeup_bytes: u64::from(cfg.ring_size / 4),
    };
    let (mut ebpf, statuses) = match load_and_attach(&bpf_cfg, cfg.ring_size, &cfg.disabled) {
        Ok(x) => x,
        Err(e) => {
            remove_outputs();
            return Err(e);
        }
    };
    let attached = statuses.iter().filter(|s| s.used).count();
    let missing = probes::missing_kinds(&statuses);
    if !missing.is_empty() {
        eprintln!(
            "record: warning: not recorded on this kernel: {} (see record --list-probes)",
            missing.join(", ")
        );
    }
    if attached == 0 {
        remove_outputs();
        bail!("no probe could be attached; nothing to record");
    }
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let sockets = snapshot::take(Path::new("/proc"), probes::cgroup2_mount(&mounts).as_deref());
    // Seed owners for every socket (filters apply to events, not attribution), keep rows that pass.
    seed_owners(&mut ebpf, &sockets).context("seeding the owner maps from the snapshot")?;
    let sockets: Vec<_> = sockets
        .into_iter()
        .filter(|s| f.matches(s.owner.as_ref().map_or(0, |o| o.pid), s.netns, s.sport, s.dport))
        .collect();

    let mut ring = RingBuf::try_from(ebpf.take_map("EVENTS").context("map EVENTS missing")?)?;
    let lost_map: PerCpuArray<MapData, u64> =
        PerCpuArray::try_from(ebpf.take_map("LOST").context("map LOST missing")?)?;
    let stack_map: Option<StackTraceMap<MapData>> = match cfg.stacks_output {
        Some(_) => Some(StackTraceMap::try_from(
            ebpf.take_map("STACKS").context("map STACKS missing")?,
        )?),
        None => None,
    };
    let symbolizer = stack_map.as_ref().map(|_| Symbolizer::load());
    if symbolizer.as_ref().is_some_and(Symbolizer::is_empty) {
        eprintln!("record: warning: /proc/kallsyms shows no addresses; stacks will read [unknown]");
    }

    let meta = RecordingMeta {
        schema_version: SCHEMA_VERSION,
        host: host::hostname(),
        kernel_release: host::kernel_release(),
        boot_id: host::boot_id(),
        clock: host::clock_anchor(),
        recorder_version: format!("record {}", env!("CARGO_PKG_VERSION")),
        probes: statuses,
        lost_events: 0,
        kstack: stack_map.is_some(),
        snapshot_sockets: sockets.len() as u64,
    };
    let mut events = EventWriter::new(out, &meta, WriterOptions::default())?;
    let now = host::monotonic_ns();
    for s in &sockets {
        events.push(&convert::snapshot_event(s, now))?;
    }
    let writers = Writers {
        converter: convert::Converter::default(),
        events,
        stacks: stacks_out.map(StackWriter::new).transpose()?,
        rejected: 0,
    };
    let (tx, rx) = mpsc::sync_channel::<Msg>(256);
    let policy = FlushPolicy {
        every: cfg.flush_interval,
        busy_rows: 4096,
        idle_every: cfg.flush_interval * 5,
    };
    let writer = thread::Builder::new()
        .name("writer".into())
        .spawn(move || writer_thread(rx, writers, policy))
        .context("spawning writer thread")?;

    signals::install()?;
    if !cfg.quiet {
        eprintln!(
            "record: tracing TCP events into {} ({attached} probes attached, {} existing sockets). Ctrl-C to end.",
            cfg.output.display(),
            sockets.len()
        );
    }
    let deadline = cfg.duration.map(|d| Instant::now() + d);
    let fd = ring.as_raw_fd();
    let mut seen_stacks: HashSet<i32> = HashSet::new();
    let mut stopping = false;
    let mut ebpf = Some(ebpf);
    let mut writer_gone = false;
    let mut status = Status::new(cfg.quiet, cfg.status_interval);
    loop {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, count 1; EINTR (signal) is fine, we re-check the flag.
        unsafe { libc::poll(&mut pfd, 1, 100) };
        let mut batch: Vec<WireEvent> = Vec::with_capacity(1024);
        let mut stacks: Vec<Msg> = Vec::new();
        while let Some(item) = ring.next() {
            if item.len() < std::mem::size_of::<WireEvent>() {
                continue;
            }
            // SAFETY: the item holds at least size_of::<WireEvent>() bytes written by
            // the program as a WireEvent; read_unaligned copes with any alignment
            // and every bit pattern is a valid WireEvent (integers and byte arrays).
            let wire: WireEvent = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
            if wire.stack_id >= 0 && seen_stacks.insert(wire.stack_id) {
                if let (Some(map), Some(sym)) = (stack_map.as_ref(), symbolizer.as_ref()) {
                    let frames = map
                        .get(&(wire.stack_id as u32), 0)
                        .map(|st| sym.stack(st.frames().iter().map(|f| f.ip)))
                        .unwrap_or_default();
                    stacks.push(Msg::Stack(i64::from(wire.stack_id), frames));
                }
            }
            batch.push(wire);
            if batch.len() >= 8192 {
                break;
            }
        }
        let more = batch.len() >= 8192;
        status.drained += batch.len() as u64;
        status.maybe_print(|| lost_events(&lost_map), &cfg.output);
        for m in stacks
            .into_iter()
            .chain((!batch.is_empty()).then_some(Msg::Events(batch)))
        {
            if tx.send(m).is_err() {
                writer_gone = true;
            }
        }
        if writer_gone {
            break;
        }
        if more {
            continue;
        }
        if stopping {
            break;
        }
        if signals::stop_requested() || deadline.is_some_and(|d| Instant::now() >= d) {
            // Detach first, then drain what is left in the ring once more.
            drop(ebpf.take());
            stopping = true;
        }
    }
    drop(ebpf.take());
    let lost = lost_events(&lost_map);
    status.finish();
    drop(tx);
    let writers = writer
        .join()
        .map_err(|_| anyhow!("writer thread panicked"))?
        .with_context(|| format!("writing {}", cfg.output.display()))?;
    let summary = writers
        .events
        .finish(lost)
        .with_context(|| format!("closing {}", cfg.output.display()))?;
    if let Some(s) = writers.stacks {
        s.finish().context("closing the stacks file")?;
    }
    if !cfg.quiet {
        eprintln!(
            "record: {} events written to {} ({}), {} lost{}",
            summary.rows,
            cfg.output.display(),
            human_bytes(summary.bytes),
            lost,
            if writers.rejected > 0 {
                format!(", {} malformed records dropped", writers.rejected)
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_policy_is_frequent_under_load_and_sparse_when_quiet() {
        let p = FlushPolicy {
            every: Duration::from_secs(1),
            busy_rows: 4096,
            idle_every: Duration::from_secs(5),
        };
        assert!(p.due(Duration::from_millis(1000), 4096));
        assert!(!p.due(Duration::from_millis(900), 100_000));
        assert!(
            !p.due(Duration::from_secs(2), 10),
            "few rows wait for the idle interval"
        );
        assert!(p.due(Duration::from_secs(5), 1));
        assert!(!p.due(Duration::from_secs(60), 0), "nothing pending, nothing to flush");
    }

    #[test]
    fn output_is_never_clobbered_or_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.parquet");
        std::fs::write(&path, b"keep").unwrap();
        let e = create_output(&path, false).unwrap_err();
        assert!(e.to_string().contains("already exists (use --force"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"keep");
        let link = dir.path().join("link.parquet");
        std::os::unix::fs::symlink(dir.path().join("target"), &link).unwrap();
        let e = create_output(&link, true).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(!dir.path().join("target").exists());
        let f = create_output(&dir.path().join("new.parquet"), false).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(f.metadata().unwrap().permissions().mode() & 0o777, 0o600);
    }
}
