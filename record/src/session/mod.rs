//! One recording session: resolve offsets, load and attach the programs,
//! drain the ring buffer on this thread and hand batches to a writer thread
//! that turns them into rows and encodes Parquet, then close both files
//! cleanly on SIGINT/SIGTERM or at `--duration`.
//!
//! Per-record work on the drain thread is a copy out of the ring buffer,
//! which frees the ring's space at once; everything else happens on the
//! writer thread, at a lower scheduling priority ([`writer::WRITER_NICE`]) so that
//! under CPU contention the drain thread and the traced workload go first
//! (the writer catches up from its queue; when that backs up, it gets
//! record's priority back: [`writer::Priority`]): one pass from the copied records
//! into column buffers ([`convert::Converter`] filling a `RowBatch`; the
//! live view builds events from those rows only when it prints), then
//! encoding, compression and I/O. Converting on the drain thread instead
//! measured no cheaper in all and made that thread 3-4 times busier:
//! scattering a row over ~40 column vectors costs it cache misses that a
//! sequential copy does not (bench/README.md).
//!
//! [`run`] puts the parts together, in the order start-up needs:
//! [`output`] (the files, created first so that a bad output fails fast),
//! [`loader`] (programs, BTF, attaching, owner seeding), [`drain`] (the
//! ring buffer), [`writer`] (rows into files, rotation), [`status`] (what
//! the user sees meanwhile).

mod drain;
mod loader;
mod output;
mod status;
mod writer;

use std::fs::File;
use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use deeptcp_format::{Event, RecordingMeta, SCHEMA_VERSION};

use crate::cli::Config;
use crate::live::LivePrinter;
use crate::startup::Startup;
use crate::{host, names, probes, snapshot};
use deeptcp_cli::signals;
use deeptcp_record::convert;
use drain::{Drain, LostTracker};
#[cfg(test)]
pub(crate) use loader::ebpf_object;
pub use loader::list_probes;
use output::{Cleanup, Plan, Segment};
use status::Status;
use writer::{Recording, Writer};

pub fn run(cfg: Config) -> Result<()> {
    loader::object()?;
    // First: a signal during start-up then ends it (see `startup`).
    signals::install()?;
    let startup = Startup::begin(cfg.duration)?;
    let to_file = cfg.output.is_some() || cfg.hive.is_some();
    let mut plan = Plan::new(&cfg, to_file);
    // Create the first files before loading anything: a bad output fails
    // fast. Removed again if the start fails.
    let (files, mut created) = if to_file {
        let (files, created) = create_first_files(&startup, &plan)?;
        (Some(files), Some(created))
    } else {
        (None, None)
    };

    let f = &cfg.filters;
    // From here on every early return drops `ebpf`, which detaches every
    // program (aya links are closed with it); `main` exits only after `run`
    // returned, so nothing stays attached on an error path.
    // Anchor the clocks before anything can fire: every event, snapshot row
    // and lost interval then lies at or after the recording's start.
    let clock = host::clock_anchor();
    startup.stage("loading the eBPF programs")?;
    // Read once: the cgroup_skb rungs, the snapshot and the names need it.
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let cgroup2 = probes::cgroup2_mount(&mounts);
    let how = loader::Attach::recording(&cfg, cgroup2.as_deref());
    let (mut ebpf, statuses, store) =
        loader::load_and_attach(&loader::bpf_config(&cfg), &loader::extra_filters(f), &how)?;
    // Events can be lost from now on: the first interval starts here.
    let lost_tracker = LostTracker::new();
    let attached = loader::check_attached(&statuses, &cfg.disabled)?;
    let inferred = probes::probe_name(deeptcp_common::probe::INFERRED_SET_STATE).unwrap_or_default();
    let inference = convert::Inference::from_statuses(&statuses, &inferred);
    startup.stage("taking the socket snapshot")?;
    let sockets = snapshot::take(Path::new("/proc"), cgroup2.as_deref());
    startup.stage("seeding the owner maps")?;
    // Seed owners for every socket (filters apply to events, not attribution), keep rows that pass.
    loader::seed_owners(&mut ebpf, &sockets).context("seeding the owner maps from the snapshot")?;
    let snapshot_probe: std::sync::Arc<str> = std::sync::Arc::from("snapshot:proc");
    let snapshot_rows: Vec<_> = sockets
        .iter()
        .map(|s| snapshot::row(s, host::monotonic_ns(), &snapshot_probe))
        .filter(|ev| f.matches(ev))
        .collect();
    let drain = Drain::new(&mut ebpf, cfg.kstack, lost_tracker)?;

    plan.meta = RecordingMeta {
        schema_version: SCHEMA_VERSION,
        host: host::hostname(),
        kernel_release: host::kernel_release(),
        boot_id: host::boot_id(),
        clock,
        recorder_version: format!("record {}", env!("CARGO_PKG_VERSION")),
        probes: statuses,
        lost_events: 0,
        kstack: drain.has_stacks(),
        snapshot_sockets: sockets.len() as u64,
        lost_intervals: Vec::new(),
        segment: None, // set per segment by Plan::start
    };
    let mut resolver = None;
    if to_file {
        startup.stage("looking up cgroup and network namespace names")?;
        let mut r = names::Resolver::new(names::Sources::host(cgroup2.clone()));
        for row in &snapshot_rows {
            r.observe(row.pid, row.cgroup_id, row.netns);
        }
        resolver = Some(r);
    }
    let seg = match files {
        Some(files) => Some(write_snapshot(
            &startup,
            &plan,
            files,
            &snapshot_rows,
            resolver.as_mut(),
        )?),
        None => None,
    };
    startup.check()?;
    let data_path = seg.as_ref().map(|s| s.path.clone()).unwrap_or_default();
    let printer = match cfg.live {
        Some(format) => {
            Some(LivePrinter::stdout(format, clock, plan.meta.host.clone()).context("printing the table heading")?)
        }
        None => None,
    };
    // The snapshot rows (sockets that existed at start) go to the file
    // only: the live view shows events, like the seed (a busy host has
    // thousands of such sockets).
    let converter = convert::Converter::new(inference, f.kinds.clone(), probes::probe_name);
    let rec = Recording::new(
        plan,
        seg,
        to_file,
        printer,
        converter,
        snapshot_rows.len() as u64,
        resolver,
    );
    let progress = rec.progress();
    let writer = Writer::spawn(rec, cfg.flush_interval)?;
    // The files are the recording now (closed cleanly, at a checkpoint, or repairable).
    if let Some(c) = created.as_mut() {
        c.keep();
    }
    startup.finish();

    if !cfg.quiet {
        let into = to_file.then_some(data_path.as_path());
        say!("{}", status::started(&cfg, into, attached, store, sockets.len()));
    }
    let deadline = cfg.duration.map(|d| Instant::now() + d);
    let status = Status::new(cfg.quiet, cfg.status_interval);
    let (lost, last_lost) = drain.run(ebpf, &writer, status, &progress, deadline);
    let (mut rec, result) = writer.finish().map_err(|_| {
        anyhow!(
            "the writer thread panicked; `analyze --repair {}` recovers the file up to its last checkpoint",
            data_path.display()
        )
    })?;
    if let Err(e) = result {
        return Err(closed_after_error(e, &mut rec));
    }
    if let Some(i) = last_lost {
        rec.add_lost(i);
    }
    if let Err(e) = rec.close_current() {
        return Err(closed_after_error(e, &mut rec));
    }
    if !cfg.quiet {
        say!("{}", rec.summary(lost));
    }
    Ok(())
}

/// Creates the files of the first segment (see [`Plan::create`]), under
/// the start-up watchdog, after checking the recording's name.
fn create_first_files(startup: &Startup, plan: &Plan) -> Result<(Vec<File>, Cleanup)> {
    startup.stage("creating the output files")?;
    startup.creating(|| {
        plan.prepare()?;
        let (files, created) = plan.create(plan.first_index())?;
        let paths = created.paths().to_vec();
        Ok(((files, created), paths))
    })
}

/// Starts the first segment in `files` with the snapshot rows and the
/// names known so far, and writes its first checkpoint.
fn write_snapshot(
    startup: &Startup,
    plan: &Plan,
    files: Vec<File>,
    rows: &[Event],
    resolver: Option<&mut names::Resolver>,
) -> Result<Segment> {
    startup.stage("writing the snapshot rows")?;
    // Under the watchdog's lock: the writers create the checkpoint sidecars.
    startup.creating(|| {
        let mut seg = plan.start(plan.first_index(), files)?;
        for row in rows {
            seg.events.push(row)?;
        }
        if let Some(table) = resolver.and_then(names::Resolver::changes) {
            seg.events.set_names(table);
        }
        // A first checkpoint with the snapshot rows: from now on a killed
        // recorder leaves a file that repairs to at least these.
        seg.events.flush()?;
        Ok((seg, Vec::new()))
    })
}

/// The one-line error after a failed write: the error (naming the file
/// and errno), then what was kept.
fn closed_after_error(e: anyhow::Error, rec: &mut Recording) -> anyhow::Error {
    let kept = rec.close_at_checkpoint();
    if kept.is_empty() {
        e
    } else {
        anyhow!("{e:#}; {kept}")
    }
}
