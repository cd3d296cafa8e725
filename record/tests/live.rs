//! Live tests: run the real `record` as root against real loopback traffic
//! made by a server and a client in separate processes, then read the file
//! back through `deeptcp-format` and check the events.
//!
//! Without root, or with a `record` built without its eBPF programs, these
//! skip with a printed reason, unless `DEEPTCP_REQUIRE_LIVE=1` (set by CI),
//! where skipping is a failure.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use deeptcp_format::{Event, EventKind, Family, TcpState};

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
    find(&ev, "server listen", |e| {
        transition(e, TcpState::Close, TcpState::Listen) && e.sport == t.port4 && e.pid == t.server_pid
    });
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
    find(&ev, "client receives RST", |e| {
        e.kind == EventKind::ResetRecv && e.sport == client_port && e.dport == rp
    });
    let e = find(&ev, "ECONNREFUSED", |e| {
        e.kind == EventKind::SockError && e.sk_err == ECONNREFUSED
    });
    assert_eq!(e.dport, rp);

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

    // --duration: stops on its own with a complete file.
    let path = dir.path().join("duration.parquet");
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_record"))
        .arg("-o")
        .arg(&path)
        .args(["--duration", "1"])
        .output()
        .expect("run record");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(started.elapsed() < Duration::from_secs(20));
    read_all(&path);
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
        assert!(!frames[0].starts_with("bpf_"), "tracing frames stripped: {frames:?}");
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
}
