//! Live tests: run the real `record` as root against real loopback traffic
//! made by a server and a client in separate processes, then read the file
//! back through `deeptcp-format` and check the events.
//!
//! Without root, or with a `record` built without its eBPF programs, these
//! skip with a printed reason, unless `DEEPTCP_REQUIRE_LIVE=1` (set by CI),
//! where skipping is a failure.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use deeptcp_format::{
    checkpoint_path, repair, segments, stacks_path, Event, EventKind, Family, FormatError, RecordingReader,
    RepairOutcome, TcpInfo, TcpState,
};

#[test]
fn records_loopback_lifecycles_resets_and_errors() {
    let test = "records_loopback_lifecycles_resets_and_errors";
    if !can_run(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.parquet");
    let Some(rec) = Recorder::start(test, &path, &[]) else {
        return;
    };
    let t = run_traffic();
    let (meta, ev, stderr) = rec.stop(libc::SIGINT);
    assert!(stderr.contains("events written"), "summary line missing: {stderr}");

    // Metadata: every tracepoint attached on this kernel, nothing lost.
    for tp in [
        "tp_btf:inet_sock_set_state",
        "tp_btf:tcp_retransmit_skb",
        "tp_btf:tcp_receive_reset",
        "tp_btf:tcp_send_reset",
        "tp_btf:inet_sk_error_report",
        "tp_btf:tcp_destroy_sock",
    ] {
        assert!(
            meta.probes.iter().any(|p| p.probe == tp && p.used),
            "{tp} not attached: {:?}",
            meta.probes
        );
    }
    assert_eq!(meta.lost_events, 0);
    assert!(!meta.host.is_empty() && !meta.boot_id.is_empty());
    assert_eq!(
        meta.kernel_release,
        std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap().trim()
    );

    let lo4 = ip("127.0.0.1");
    let lo6 = ip("::1");

    // 1. Normal IPv4 connection, client closes first.
    let cp = t.step("normal4");
    let e = find(&ev, "client connect", |e| {
        transition(e, TcpState::Close, TcpState::SynSent) && e.dport == t.port4 && e.pid == t.client_pid
    });
    assert_eq!((e.family, e.daddr, &*e.comm), (Family::Inet, lo4, "python3"));
    assert_ne!(e.netns, 0);
    find(&ev, "client established", |e| {
        transition(e, TcpState::SynSent, TcpState::Established)
            && e.sport == cp
            && e.dport == t.port4
            && e.saddr == lo4
            && e.daddr == lo4
    });
    let e = find(&ev, "server listen", |e| {
        transition(e, TcpState::Close, TcpState::Listen) && e.sport == t.port4 && e.pid == t.server_pid
    });
    assert_eq!(e.tcp, TcpInfo::default(), "a listener has no TCP fields");
    let e = find(&ev, "client established", |e| {
        transition(e, TcpState::SynSent, TcpState::Established) && e.sport == cp && e.dport == t.port4
    });
    assert!(
        e.tcp.snd_cwnd.is_some_and(|c| c > 0) && e.tcp.srtt_us.is_some() && e.tcp.rcv_wnd.is_some_and(|w| w > 0),
        "connections carry TCP fields: {:?}",
        e.tcp
    );
    find(&ev, "server child established", |e| {
        transition(e, TcpState::SynRecv, TcpState::Established) && e.sport == t.port4 && e.dport == cp
    });
    let e = find(&ev, "client close", |e| {
        transition(e, TcpState::Established, TcpState::FinWait1) && e.sport == cp
    });
    assert_eq!(e.pid, t.client_pid, "close() runs in the client's context");
    find(&ev, "server sees FIN", |e| {
        transition(e, TcpState::Established, TcpState::CloseWait) && e.sport == t.port4 && e.dport == cp
    });
    let e = find(&ev, "server close", |e| {
        transition(e, TcpState::CloseWait, TcpState::LastAck) && e.dport == cp
    });
    assert_eq!(e.pid, t.server_pid);
    find(&ev, "client done", |e| {
        transition(e, TcpState::FinWait2, TcpState::Close) && e.sport == cp
    });
    find(&ev, "server done", |e| {
        transition(e, TcpState::LastAck, TcpState::Close) && e.dport == cp
    });
    find(&ev, "client socket destroyed", |e| {
        e.kind == EventKind::DestroySock && e.sport == cp && e.dport == t.port4
    });

    // 2. Refused connect: RST sent with no socket, RST received, ECONNREFUSED.
    let rp = t.step("refused");
    let syn = find(&ev, "refused connect gives up", |e| {
        transition(e, TcpState::SynSent, TcpState::Close) && e.dport == rp
    });
    let client_port = syn.sport;
    assert_ne!(client_port, 0);
    let e = find(&ev, "RST for the closed port", |e| {
        e.kind == EventKind::ResetSent && e.sport == rp && e.dport == client_port
    });
    assert_eq!((e.saddr, e.daddr, e.family), (lo4, lo4, Family::Inet));
    assert_eq!(
        e.netns, syn.netns,
        "an RST without a socket takes the device's namespace"
    );
    find(&ev, "client receives RST", |e| {
        e.kind == EventKind::ResetRecv && e.sport == client_port && e.dport == rp
    });
    // (Other processes may get ECONNREFUSED meanwhile: match the port.)
    let e = find(&ev, "ECONNREFUSED", |e| {
        e.kind == EventKind::SockError && e.sk_err == ECONNREFUSED && e.dport == rp
    });
    assert_eq!(e.sport, client_port);

    // 3. Server aborts with SO_LINGER 0.
    let cp3 = t.step("reset_by_server");
    let e = find(&ev, "server sends RST", |e| {
        e.kind == EventKind::ResetSent && e.sport == t.port4 && e.dport == cp3
    });
    assert_eq!(
        e.pid, t.server_pid,
        "close() with linger 0 runs in the server's context"
    );
    find(&ev, "client receives RST", |e| {
        e.kind == EventKind::ResetRecv && e.sport == cp3 && e.dport == t.port4
    });
    find(&ev, "client gets ECONNRESET", |e| {
        e.kind == EventKind::SockError && e.sk_err == ECONNRESET && e.sport == cp3
    });

    // 4. IPv6 normal connection.
    let cp4 = t.step("normal6");
    let e = find(&ev, "IPv6 established", |e| {
        transition(e, TcpState::SynSent, TcpState::Established) && e.sport == cp4 && e.dport == t.port6
    });
    assert_eq!((e.family, e.saddr, e.daddr), (Family::Inet6, lo6, lo6));
    find(&ev, "IPv6 server listen", |e| {
        transition(e, TcpState::Close, TcpState::Listen) && e.sport == t.port6 && e.saddr == lo6
    });

    // 5. IPv6 client aborts.
    let cp5 = t.step("reset_by_client6");
    let e = find(&ev, "client sends RST over IPv6", |e| {
        e.kind == EventKind::ResetSent && e.sport == cp5 && e.dport == t.port6
    });
    assert_eq!((e.pid, e.family, e.saddr), (t.client_pid, Family::Inet6, lo6));
    find(&ev, "server receives RST over IPv6", |e| {
        e.kind == EventKind::ResetRecv && e.sport == t.port6 && e.dport == cp5
    });

    // Timestamps: monotonic order is not guaranteed across CPUs, but all lie in the session.
    let first = ev.iter().map(|e| e.mono_ns).min().unwrap();
    let last = ev.iter().map(|e| e.mono_ns).max().unwrap();
    assert!(first >= meta.clock.monotonic_ns && last - first < 60_000_000_000);
}

#[test]
fn sigterm_and_duration_close_the_file_cleanly() {
    let test = "sigterm_and_duration_close_the_file_cleanly";
    if !can_run(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("term.parquet");
    let Some(rec) = Recorder::start(test, &path, &[]) else {
        return;
    };
    let t = run_traffic();
    let (_, ev, _) = rec.stop(libc::SIGTERM);
    find(&ev, "traffic seen before SIGTERM", |e| {
        e.kind == EventKind::StateChange && e.dport == t.port4
    });

    // --duration: stops on its own with a complete file, counting from the
    // ready line (start-up is not recording time: 5-10 s under emulation).
    let path = dir.path().join("duration.parquet");
    let Some(mut rec) = Recorder::start(test, &path, &["--duration", "1"]) else {
        return;
    };
    let ready = Instant::now();
    let (status, stderr) = rec.wait_exit(Duration::from_secs(1) + scaled(Duration::from_secs(5)));
    assert!(status.success(), "{stderr}");
    // Not ended at once: start-up does not count against --duration. (The
    // ready line is seen a little after it was printed, never before.)
    assert!(
        ready.elapsed() >= Duration::from_millis(500),
        "--duration 1 ended {:?} after the ready line: {stderr}",
        ready.elapsed()
    );
    read_all(&path);
    assert!(!checkpoint_path(&path).exists(), "no checkpoint left after --duration");
}

#[test]
fn pid_filter_keeps_only_that_process() {
    let test = "pid_filter_keeps_only_that_process";
    if !can_run(test) {
        return;
    }
    // A server that is already running, so its pid is known before record starts.
    let mut server = Command::new("python3")
        .arg(traffic_script())
        .arg("server")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn server");
    let mut out = BufReader::new(server.stdout.take().unwrap());
    let mut ready = String::new();
    out.read_line(&mut ready).unwrap();
    let parts: Vec<&str> = ready.split_whitespace().collect();
    let (port4, port6) = (parts[1].to_owned(), parts[2].to_owned());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pid.parquet");
    let pid = server.id().to_string();
    let Some(rec) = Recorder::start(test, &path, &["-p", &pid]) else {
        let _ = server.kill();
        let _ = server.wait();
        return;
    };
    let client = Command::new("python3")
        .arg(traffic_script())
        .args(["client", &port4, &port6])
        .output()
        .unwrap();
    assert!(client.status.success());
    server.wait().unwrap();
    let (_, ev, _) = rec.stop(libc::SIGINT);
    assert!(!ev.is_empty(), "the server's own events must be recorded");
    assert!(ev.iter().all(|e| e.pid == server.id()), "only pid {pid} expected");
    find(&ev, "server close in its own context", |e| {
        transition(e, TcpState::CloseWait, TcpState::LastAck)
    });
}

#[test]
fn kernel_stacks_are_symbolized_into_the_sidecar() {
    let test = "kernel_stacks_are_symbolized_into_the_sidecar";
    if !can_run(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stacks.parquet");
    let Some(rec) = Recorder::start(test, &path, &["-K"]) else {
        return;
    };
    run_traffic();
    let (meta, ev, _) = rec.stop(libc::SIGINT);
    assert!(meta.kstack);
    let stacks = deeptcp_format::read_stacks(&deeptcp_format::stacks_path(&path)).expect("sidecar readable");
    let with_stack: Vec<&Event> = ev.iter().filter(|e| e.stack_id.is_some()).collect();
    assert!(!with_stack.is_empty());
    for e in &with_stack {
        let frames = stacks
            .get(&e.stack_id.unwrap())
            .expect("every stack id is in the sidecar");
        assert!(!frames.is_empty());
        for f in frames {
            // symbol+0xoff, never a bare address, never the tracing machinery on top.
            let (sym, off) = f.split_once("+0x").unwrap_or_else(|| panic!("frame {f:?}"));
            assert!(
                !sym.is_empty() && !sym.chars().all(|c| c.is_ascii_hexdigit()),
                "frame {f:?}"
            );
            assert!(u64::from_str_radix(off, 16).is_ok(), "frame {f:?}");
        }
        let machinery = [
            "bpf_",
            "trace_call_bpf",
            "kprobe_",
            "kretprobe_",
            "__traceiter_",
            "ftrace_",
            "[unknown]",
        ];
        assert!(
            !frames.iter().any(|f| machinery.iter().any(|m| f.starts_with(m))),
            "tracing frames stripped ({}): {frames:?}",
            e.probe
        );
        // A function-entry rung's stack starts in the function it hooks
        // (the trampoline or kprobe handler above it is gone).
        if let Some(func) = e
            .probe
            .strip_prefix("fentry:")
            .or_else(|| e.probe.strip_prefix("kprobe:"))
        {
            assert!(frames[0].starts_with(&format!("{func}+")), "{}: {frames:?}", e.probe);
        }
    }
    let connect = find(&ev, "connect", |e| transition(e, TcpState::Close, TcpState::SynSent));
    let frames = &stacks[&connect.stack_id.unwrap()];
    assert!(
        frames
            .iter()
            .any(|f| f.starts_with("tcp_v4_connect") || f.starts_with("tcp_v6_connect")),
        "{frames:?}"
    );
}

#[test]
fn a_full_ring_buffer_loses_events_and_says_so() {
    let test = "a_full_ring_buffer_loses_events_and_says_so";
    if !can_run(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lossy.parquet");
    // 4 KiB holds about 27 records; 500 connections make thousands of events at once.
    let Some(rec) = Recorder::start(test, &path, &["--ring-size", "4K", "--status-interval", "0.2"]) else {
        return;
    };
    let out = Command::new("python3")
        .arg(traffic_script())
        .args(["churn", "500"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let (meta, ev, stderr) = rec.stop(libc::SIGINT);
    assert!(meta.lost_events > 0, "no loss recorded with a 4 KiB ring: {stderr}");
    assert!(!ev.is_empty());
    let summary = stderr
        .lines()
        .find(|l| l.contains("events written"))
        .expect("summary line");
    assert!(
        summary.contains(&format!("{} lost", meta.lost_events)),
        "summary must state the loss: {summary}"
    );
    assert!(
        stderr.contains("ring buffer full, try a larger --ring-size"),
        "live loss report missing: {stderr}"
    );
    // When: intervals adding up to the total, inside the recording.
    let iv = &meta.lost_intervals;
    assert!(!iv.is_empty(), "no lost intervals stored");
    assert_eq!(iv.iter().map(|i| i.lost).sum::<u64>(), meta.lost_events);
    let now = ev.iter().map(|e| e.mono_ns).max().unwrap() + 60_000_000_000;
    for w in iv.windows(2) {
        assert!(w[0].to_mono_ns <= w[1].from_mono_ns, "{iv:?}");
    }
    for i in iv {
        assert!(
            i.from_mono_ns >= meta.clock.monotonic_ns && i.from_mono_ns < i.to_mono_ns && i.to_mono_ns < now,
            "{i:?}"
        );
        let line = i.describe(&meta.clock);
        assert!(
            line.contains(" events lost between +") || line.contains(" event lost between +"),
            "{line}"
        );
    }
}

/// `traffic.py churn N` in the background: load until it ends or is dropped.
struct Churn(Child);

impl Churn {
    /// Returns once the churn is about to connect (its first line): python
    /// takes seconds to start on an emulated kernel.
    fn start(n: u32) -> Churn {
        let mut child = Command::new("python3")
            .arg(traffic_script())
            .args(["churn", &n.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn churn");
        let mut out = BufReader::new(child.stdout.take().expect("churn stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("churn's first line");
        assert!(line.starts_with("churning "), "churn said {line:?}");
        // Keep draining so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in out.lines() {});
        Churn(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits for the end; false if it failed (e.g. the machine ran out of ports).
    fn wait(mut self) -> bool {
        self.0.wait().is_ok_and(|s| s.success())
    }
}

impl Drop for Churn {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The BPF programs of a running recorder (waits until it holds some).
fn recorder_progs(rec: &Recorder) -> Vec<u32> {
    let start = Instant::now();
    loop {
        let ids = bpf_prog_ids(rec.pid());
        if !ids.is_empty() || start.elapsed() > scaled(Duration::from_secs(10)) {
            return ids;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigkill_mid_load_leaves_a_file_that_repairs_to_its_last_checkpoint() {
    let test = "sigkill_mid_load_leaves_a_file_that_repairs_to_its_last_checkpoint";
    if !can_run(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("killed.parquet");
    let Some(mut rec) = Recorder::start(test, &path, &["-K"]) else {
        return;
    };
    let progs = recorder_progs(&rec);
    let churn = Churn::start(200_000);
    // Several flush intervals (1 s) under load, from the churn's first connection.
    std::thread::sleep(scaled(Duration::from_millis(2600)));
    let (status, stderr) = rec.stop_raw(libc::SIGKILL);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL),
        "{stderr}"
    );
    let churn_pid = churn.pid();
    drop(churn);
    assert_detached(&progs, "after SIGKILL");

    // As it was left: not Parquet yet, and the reader says what to do.
    assert!(
        checkpoint_path(&path).exists(),
        "the checkpoint sidecar survives the recorder"
    );
    let e = RecordingReader::open(&path).unwrap_err();
    assert!(matches!(e, FormatError::Unfinished { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("recording was not closed cleanly (recorder killed?); run `analyze --repair"),
        "{e}"
    );

    // Readable through the checkpoint, unchanged.
    let len_before = std::fs::metadata(&path).unwrap().len();
    let r = RecordingReader::open_recovering(&path).expect("reads through the checkpoint");
    assert!(r.recovered() && !r.finished());
    let checkpointed = r.num_rows();
    let meta = r.meta().clone();
    let recovered: Vec<Event> = r.events().collect::<Result<_, _>>().expect("recovered rows decode");
    assert_eq!(recovered.len() as u64, checkpointed);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len_before);
    assert!(meta.kstack && !meta.host.is_empty());
    let churned = recovered
        .iter()
        .filter(|e| e.kind == EventKind::Connect && e.pid == churn_pid)
        .count();
    assert!(
        churned > 0,
        "the checkpoints of 2.6 s under load hold some churn connections ({checkpointed} rows)"
    );

    // Repair: exactly the checkpointed rows, a complete file, no sidecar.
    let report = repair(&path).expect("repair");
    match report.outcome {
        RepairOutcome::Repaired { rows, .. } => assert_eq!(rows, checkpointed, "{report}"),
        other => panic!("{other:?}"),
    }
    assert!(!checkpoint_path(&path).exists());
    let (meta2, events) = read_all(&path);
    assert_eq!(events.len() as u64, checkpointed, "the repaired file decodes fully");
    assert_eq!(events, recovered);
    assert_eq!(meta2.clock, meta.clock);
    // The stacks sidecar repairs too, and holds the stacks of the kept rows
    // that were flushed with them.
    let sp = stacks_path(&path);
    if checkpoint_path(&sp).exists() {
        repair(&sp).expect("repair the stacks file");
    }
    let stacks = deeptcp_format::read_stacks(&sp).expect("stacks file readable");
    assert!(!stacks.is_empty());
    // Repairing a complete file changes nothing.
    let again = repair(&path).unwrap();
    assert!(
        matches!(again.outcome, RepairOutcome::AlreadyComplete { .. }),
        "{again}"
    );
}

#[test]
fn sigint_and_sigterm_leave_no_checkpoint() {
    let test = "sigint_and_sigterm_leave_no_checkpoint";
    if !can_run(test) {
        return;
    }
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clean.parquet");
        let Some(rec) = Recorder::start(test, &path, &["-K", "--flush-interval", "0.2"]) else {
            return;
        };
        let progs = recorder_progs(&rec);
        assert!(checkpoint_path(&path).exists(), "checkpoint while recording");
        let churn = Churn::start(300);
        churn.wait();
        // stop() checks the exit status and that no sidecar is left.
        let (meta, ev, _) = rec.stop(sig);
        assert!(!ev.is_empty());
        assert_eq!(meta.lost_events, 0);
        assert!(meta.lost_intervals.is_empty());
        assert!(!checkpoint_path(&stacks_path(&path)).exists());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let mut names = names;
        names.sort();
        assert_eq!(names, ["clean.parquet", "clean.stacks.parquet"], "only the recording");
        assert_detached(&progs, "after a clean stop");
    }
}

/// A 1 MiB tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path) -> Option<Tmpfs> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.0).status().is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

#[test]
fn a_full_disk_ends_the_recording_with_one_error_line_and_a_readable_file() {
    let test = "a_full_disk_ends_the_recording_with_one_error_line_and_a_readable_file";
    if !can_run(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(dir.path()) else {
        skip(test, "cannot mount a tmpfs");
        return;
    };
    let path = fs.0.join("full.parquet");
    let Some(mut rec) = Recorder::start(test, &path, &["-K"]) else {
        return;
    };
    let progs = recorder_progs(&rec);
    // Heavy churn until the recorder gives up (1 MiB holds ~50k events).
    let start = Instant::now();
    let (status, stderr) = loop {
        let churn = Churn::start(5000);
        while rec_alive(rec.pid()) && start.elapsed() < Duration::from_secs(120) {
            if churn_done(&churn) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(churn);
        if !rec_alive(rec.pid()) {
            break rec.wait_exit(Duration::from_secs(5));
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "record did not fail on a full disk: {}",
            rec.stderr()
        );
    };
    assert_eq!(status.code(), Some(1), "exit status 1 on a full disk: {stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("record: ") && !l.starts_with("record: warning:"))
        .filter(|l| !l.contains("Ctrl-C to end") && !l.contains(" rows written ("))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    let line = errors[0];
    // The write that fails names its file: the data or its checkpoint
    // sidecar, whichever hit the full disk first.
    let failed = |p: &std::path::Path| {
        line.contains(&format!(
            "{}: write failed: No space left on device (os error 28)",
            p.display()
        ))
    };
    assert!(
        (failed(&path) || failed(&checkpoint_path(&path)))
            && line.contains("closed at its last checkpoint")
            && line.contains("readable"),
        "{line}"
    );
    assert_detached(&progs, "after a write error");

    // Readable, as it says, with the rows up to the last checkpoint.
    assert!(!checkpoint_path(&path).exists());
    let r = RecordingReader::open(&path).expect("the file is readable");
    assert!(!r.finished(), "closed at a checkpoint: no finish-time totals");
    let n = r.num_rows();
    let events: Vec<Event> = r.events().collect::<Result<_, _>>().expect("every row decodes");
    assert_eq!(events.len() as u64, n);
    assert!(n > 0);
    assert!(line.contains(&format!("with {n} events")), "{line}");
    // The stacks file too (closed cleanly or at its checkpoint).
    deeptcp_format::read_stacks(&stacks_path(&path)).expect("stacks file readable");
}

fn rec_alive(pid: u32) -> bool {
    // A zombie (exited, not yet waited for) counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
        .unwrap_or(false)
}

fn churn_done(c: &Churn) -> bool {
    !rec_alive(c.pid())
}

#[test]
fn a_symlink_at_the_output_path_is_refused() {
    let test = "a_symlink_at_the_output_path_is_refused";
    if !can_run(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("precious");
    std::fs::write(&target, b"keep me").unwrap();
    let link = dir.path().join("link.parquet");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    for extra in [&[][..], &["--force"][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_record"))
            .arg("-o")
            .arg(&link)
            .args(["--duration", "1"])
            .args(extra)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("built without its eBPF programs") {
            skip(test, "record was built without eBPF programs");
            return;
        }
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {stderr}");
        assert_eq!(
            stderr.trim(),
            format!(
                "record: {} is a symbolic link; refusing to write through it",
                link.display()
            ),
            "{extra:?}"
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert!(!checkpoint_path(&link).exists());
    }

    // A stale checkpoint of an earlier recording: refused, and with --force
    // removed without following it.
    let out_path = dir.path().join("out.parquet");
    std::os::unix::fs::symlink(&target, checkpoint_path(&out_path)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_record"))
        .arg("-o")
        .arg(&out_path)
        .args(["--duration", "0.5"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("out.parquet.checkpoint exists: an earlier recording") && stderr.contains("analyze --repair"),
        "{stderr}"
    );
    assert!(!out_path.exists(), "nothing created");
    assert!(
        std::fs::symlink_metadata(checkpoint_path(&out_path)).is_ok(),
        "nothing removed without --force"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_record"))
        .arg("-o")
        .arg(&out_path)
        .args(["--duration", "0.5", "--force"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
    assert!(!checkpoint_path(&out_path).exists());
    read_all(&out_path);
}

/// `record --hive DIR`: segments in host=/date= folders, named by host and
/// start, that `analyze` (a glob over the partitions) reads as one recording.
#[test]
fn hive_writes_partitions_that_read_as_one_recording() {
    let test = "hive_writes_partitions_that_read_as_one_recording";
    if !can_run(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("fleet");
    let utc_date = || {
        let out = Command::new("date").args(["-u", "+%F"]).output().expect("date");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let day_before = utc_date();
    let Some(mut rec) = Recorder::start_hive(test, &root, &["-K", "--rotate-secs", "0.5"]) else {
        return;
    };
    let n = 300;
    let churn = Churn::start(n);
    let churn_pid = churn.pid();
    assert!(churn.wait(), "churn failed");
    std::thread::sleep(Duration::from_millis(1200));
    let (status, stderr) = rec.stop_raw(libc::SIGINT);
    assert!(status.success(), "{stderr}");
    let day_after = utc_date();

    // One host folder, one date folder (two across a midnight), files named HOST-START-NNNNNN.
    let hosts: Vec<PathBuf> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    let host_dir = hosts[0].file_name().unwrap().to_string_lossy().into_owned();
    let host = host_dir.strip_prefix("host=").expect("a host= folder").to_string();
    let mut files = Vec::new();
    for d in std::fs::read_dir(&hosts[0]).unwrap() {
        let d = d.unwrap().path();
        let date = d.file_name().unwrap().to_string_lossy().into_owned();
        let date = date.strip_prefix("date=").expect("a date= folder").to_string();
        assert!(date == day_before || date == day_after, "{date} is today's UTC date");
        for f in std::fs::read_dir(&d).unwrap() {
            let f = f.unwrap().path();
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            if !name.ends_with(".stacks.parquet") {
                files.push(f);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 2, "rotated every 0.5 s: {files:?}\n{stderr}");
    let summary = stderr.lines().find(|l| l.contains("events written")).unwrap();
    assert!(summary.contains(&format!("({} segments, ", files.len())), "{summary}");
    for (i, f) in files.iter().enumerate() {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let (stem, index) = name.strip_suffix(".parquet").unwrap().rsplit_once('-').unwrap();
        assert_eq!(index, format!("{:06}", i + 1), "{name}");
        let start = stem.strip_prefix(&format!("{host}-")).expect("named after the host");
        assert!(
            start.len() == 16 && start.ends_with('Z') && start.as_bytes()[8] == b'T',
            "{name}"
        );
        assert!(stacks_path(f).exists(), "-K: each segment has its stacks file");
        let r = RecordingReader::open(f).unwrap();
        assert!(r.finished(), "{} closed cleanly", f.display());
        assert_eq!(r.meta().segment, Some(i as u32 + 1));
        assert_eq!(r.meta().host, host.as_str());
    }

    // Together the partitions hold every churn connection, once.
    let mut connects = HashSet::new();
    let mut rows = 0;
    for f in &files {
        for e in RecordingReader::open(f).unwrap().events() {
            let e = e.unwrap();
            rows += 1;
            if e.kind == EventKind::Connect && e.pid == churn_pid {
                assert!(connects.insert(e.cookie), "connect {} twice", e.cookie);
            }
        }
    }
    assert!(summary.contains(&format!("{rows} events written")), "{summary}");
    assert!(summary.contains(", 0 lost"), "{summary}");
    assert_eq!(connects.len(), n as usize, "{summary}");
}

#[test]
fn rotation_writes_segments_that_together_hold_every_event() {
    let test = "rotation_writes_segments_that_together_hold_every_event";
    if !can_run(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let by_time = dir.path().join("bytime.parquet");
    let by_size = dir.path().join("bysize.parquet");
    let Some(mut rt) = Recorder::start(test, &by_time, &["-K", "--rotate-secs", "0.5"]) else {
        return;
    };
    let Some(mut rs) = Recorder::start(test, &by_size, &["--rotate-size", "64K", "--flush-interval", "0.2"]) else {
        return;
    };
    assert!(!by_time.exists() && deeptcp_format::segment_path(&by_time, 1).exists());
    let n = 3000;
    let churn = Churn::start(n);
    let churn_pid = churn.pid();
    assert!(churn.wait(), "churn failed");
    std::thread::sleep(Duration::from_millis(700));
    for (rec, path, kstack) in [(&mut rt, &by_time, true), (&mut rs, &by_size, false)] {
        std::thread::sleep(Duration::from_millis(300));
        let (status, stderr) = rec.stop_raw(libc::SIGINT);
        assert!(status.success(), "{stderr}");
        let files = segments(path);
        assert!(files.len() >= 2, "{}: {files:?}\n{stderr}", path.display());
        let summary = stderr.lines().find(|l| l.contains("events written")).unwrap();
        assert!(summary.contains(&format!("({} segments, ", files.len())), "{summary}");

        let mut connects = Vec::new();
        let mut lost = 0;
        let mut total = 0;
        let mut first_meta = None;
        for (i, f) in files.iter().enumerate() {
            assert!(!checkpoint_path(f).exists());
            let r = RecordingReader::open(f).unwrap();
            assert!(r.finished(), "{} closed cleanly", f.display());
            let meta = r.meta().clone();
            assert_eq!(meta.segment, Some(i as u32 + 1));
            let first = first_meta.get_or_insert_with(|| meta.clone());
            assert_eq!(
                (&meta.host, &meta.boot_id, meta.clock),
                (&first.host, &first.boot_id, first.clock)
            );
            if i > 0 {
                assert_eq!(meta.snapshot_sockets, 0, "snapshot rows are in the first segment");
            }
            lost += meta.lost_events;
            let events: Vec<Event> = r.events().collect::<Result<_, _>>().unwrap();
            total += events.len();
            if kstack {
                // Each segment's stacks file has every stack its events use.
                let stacks = deeptcp_format::read_stacks(&stacks_path(f)).unwrap();
                for e in &events {
                    if let Some(id) = e.stack_id {
                        assert!(stacks.contains_key(&id), "{}: stack {id} missing", f.display());
                    }
                }
            }
            connects.extend(
                events
                    .iter()
                    .filter(|e| e.kind == EventKind::Connect && e.pid == churn_pid)
                    .map(|e| e.cookie),
            );
        }
        assert!(summary.contains(&format!("{total} events written")), "{summary}");
        let distinct: HashSet<u64> = connects.iter().copied().collect();
        assert_eq!(distinct.len(), connects.len(), "no event twice");
        if lost == 0 {
            assert_eq!(connects.len(), n as usize, "{}: every churn connection", path.display());
        } else {
            eprintln!("{test}: {lost} events lost under load; checking a lower bound");
            assert!(connects.len() as u64 + lost >= u64::from(n));
        }
    }
}

#[test]
fn address_comm_and_kind_filters_run_in_the_kernel() {
    let test = "address_comm_and_kind_filters_run_in_the_kernel";
    if !can_run(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("filtered.parquet");
    let args = [
        "-d",
        "127.0.0.1/32",
        "--kind",
        "state_change,connect",
        "--comm",
        "python3",
    ];
    let Some(rec) = Recorder::start(test, &path, &args) else {
        return;
    };
    let t = run_traffic();
    let (meta, ev, stderr) = rec.stop(libc::SIGINT);
    assert!(
        ev.iter().any(|e| e.dport == t.port4),
        "the IPv4 traffic passes the filters"
    );
    // Kinds --kind leaves out get no programs at all (the per-packet
    // zero-window rungs included), and no "not recorded" warning.
    for kind in [
        "zero_window_recv",
        "zero_window_sent",
        "retransmit",
        "destroy_sock",
        "reset_sent",
    ] {
        let statuses: Vec<_> = meta.probes.iter().filter(|p| p.kind == kind).collect();
        assert!(
            statuses.len() == 1 && !statuses[0].attached && statuses[0].detail.contains("--kind"),
            "{kind}: {statuses:?}"
        );
    }
    assert!(!stderr.contains("not recorded on this kernel: zero"), "{stderr}");
    assert!(meta.probes.iter().any(|p| p.kind == "state_change" && p.used));
    assert!(meta.probes.iter().any(|p| p.kind == "owner" && p.used));
    for e in &ev {
        assert!(
            matches!(e.kind, EventKind::StateChange | EventKind::Connect),
            "{:?}",
            e.kind
        );
        assert_eq!(
            e.daddr.to_string(),
            "127.0.0.1",
            "IPv6 and other destinations are filtered out"
        );
        assert_eq!(&*e.comm, "python3");
    }
    // A network nothing talks to: nothing but the start-up lines.
    let path = dir.path().join("nothing.parquet");
    let Some(rec) = Recorder::start(test, &path, &["-d", "10.254.0.0/16"]) else {
        return;
    };
    run_traffic();
    let (_, ev, _) = rec.stop(libc::SIGINT);
    assert!(ev.is_empty(), "{} events passed a filter nothing matches", ev.len());
}

/// `--recover-nested` attaches a second program to each event-making
/// tracepoint; it must make only the events the first one was skipped for,
/// never a second copy. Two recorders see the same traffic at once, one
/// with the twins: the same rows, and exactly the twins' programs more.
/// The traffic runs in a namespace of its own, which both record (`-N`):
/// other tests' connections on the host cannot blur the comparison.
#[test]
fn recover_nested_adds_the_twins_and_no_duplicate_rows() {
    let test = "recover_nested_adds_the_twins_and_no_duplicate_rows";
    if !can_run(test) {
        return;
    }
    let ns = NamedNetns::add(format!("dttwin{}", std::process::id()));
    let inode = ns.inode().to_string();
    let dir = tempfile::tempdir().unwrap();
    let plain_path = dir.path().join("plain.parquet");
    let twins_path = dir.path().join("twins.parquet");
    let Some(plain) = Recorder::start(test, &plain_path, &["-N", &inode]) else {
        return;
    };
    let Some(twins) = Recorder::start(test, &twins_path, &["-N", &inode, "--recover-nested"]) else {
        return;
    };
    assert!(
        twins.stderr().contains("nested runs recovered") && !plain.stderr().contains("nested runs"),
        "start lines: {}\n{}",
        plain.stderr(),
        twins.stderr()
    );
    // Every row-making tracepoint attaches here (6.1+), so each has its twin.
    let extra = recorder_progs(&twins).len() as i64 - recorder_progs(&plain).len() as i64;
    assert_eq!(extra, 6, "programs with --recover-nested beyond the plain recorder's");
    run_traffic_in(Some(&ns));
    let (pm, pe, _) = plain.stop(libc::SIGINT);
    let (tm, te, _) = twins.stop(libc::SIGINT);
    assert_eq!((pm.lost_events, tm.lost_events), (0, 0));
    let rows = |ev: &[Event]| {
        let mut v: Vec<_> = ev
            .iter()
            .filter(|e| e.kind != EventKind::Snapshot)
            // Only a transition's states are the event's own: other rows
            // carry the socket's state when their program ran, and the two
            // recorders' programs run one after the other (a FIN may land
            // between an accept's two fexit runs in an emulated guest).
            .map(|e| {
                let states = (e.kind == EventKind::StateChange).then_some((e.oldstate, e.newstate));
                (e.kind.as_str(), states, e.sport, e.dport, e.cookie, e.probe.to_string())
            })
            .collect();
        v.sort();
        v
    };
    let (a, b) = (rows(&pe), rows(&te));
    assert!(a.len() > 40, "the traffic's rows: {}", dump(&pe));
    assert_eq!(a, b, "rows differ with --recover-nested");
}
