//! Live tests of the events issue, as root against real traffic from
//! separate server and client processes: FIN both ways, connect/accept,
//! owner attribution (never the interrupted task), zero windows both ways,
//! retransmissions forced with nftables, a connection opened before
//! recording, network namespaces over veth, the probe-ladder fallback and
//! `--list-probes`. Skips (or, with `DEEPTCP_REQUIRE_LIVE=1`, fails) without root.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use deeptcp_format::{Attribution, Event, EventKind, TcpState};

fn record_around(
    test: &str,
    args: &[&str],
    traffic: impl FnOnce(),
) -> Option<(deeptcp_format::RecordingMeta, Vec<Event>)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.parquet");
    let rec = Recorder::start(test, &path, args)?;
    traffic();
    let (meta, ev, _) = rec.stop(libc::SIGINT);
    Some((meta, ev))
}

#[test]
fn fin_connect_accept_and_owner_attribution() {
    let test = "fin_connect_accept_and_owner_attribution";
    if !can_run(test) {
        return;
    }
    let mut t = None;
    let Some((_, ev)) = record_around(test, &[], || t = Some(run_traffic())) else {
        return;
    };
    let t = t.unwrap();
    let cp = t.step("normal4");

    let e = find(&ev, "connect", |e| {
        e.kind == EventKind::Connect && e.dport == t.port4 && e.pid == t.client_pid
    });
    assert_eq!(&*e.probe, "inferred:inet_sock_set_state");
    let e = find(&ev, "accept", |e| {
        e.kind == EventKind::Accept && e.sport == t.port4 && e.dport == cp
    });
    // Inferred from the child's SYN_RECV -> ESTABLISHED (softirq): the
    // listener's owner, inherited. kretprobe:inet_csk_accept (kernels with
    // kprobes) runs in accept() itself: the acceptor, as the current task.
    let how = if &*e.probe == "kretprobe:inet_csk_accept" {
        Attribution::Task
    } else {
        Attribution::Listener
    };
    assert_eq!(
        (e.pid, e.attribution),
        (t.server_pid, how),
        "accepted socket belongs to the server (probe {})",
        e.probe
    );
    // The child's first row (LISTEN -> SYN_RECV) is the child's: its tuple
    // and cookie, not the listener's (kernels before 6.15 announce it
    // before copying them; record holds it until they are set).
    let accepted_cookie = e.cookie;
    let child = find(&ev, "the child's LISTEN -> SYN_RECV", |e| {
        transition(e, TcpState::Listen, TcpState::SynRecv) && e.sport == t.port4 && e.dport == cp
    });
    assert_eq!(
        (child.cookie, child.pid),
        (accepted_cookie, t.server_pid),
        "{}",
        dump(std::slice::from_ref(child))
    );
    // FIN both directions, each on the right socket and owner.
    let e = find(&ev, "client sends FIN", |e| {
        e.kind == EventKind::FinSent && e.sport == cp
    });
    assert_eq!(e.pid, t.client_pid);
    let e = find(&ev, "server receives FIN", |e| {
        e.kind == EventKind::FinRecv && e.sport == t.port4 && e.dport == cp
    });
    assert_eq!(
        e.pid, t.server_pid,
        "softirq FIN must not be attributed to the client that sent it"
    );
    let e = find(&ev, "server sends FIN", |e| {
        e.kind == EventKind::FinSent && e.sport == t.port4 && e.dport == cp
    });
    assert_eq!(e.pid, t.server_pid);
    let e = find(&ev, "client receives FIN", |e| {
        e.kind == EventKind::FinRecv && e.sport == cp
    });
    assert_eq!(e.pid, t.client_pid);

    // Attribution invariant: every event of a server socket carries the server's
    // pid, every event of a client socket the client's; never swapped, never 0.
    let servers = [t.port4, t.port6];
    let client_ports: Vec<u16> = t.steps.iter().map(|(_, p)| *p).collect();
    for e in ev.iter().filter(|e| e.cookie != 0 && e.kind != EventKind::Snapshot) {
        if servers.contains(&e.sport) {
            assert_eq!(
                e.pid,
                t.server_pid,
                "server socket event attributed wrongly:\n{}",
                dump(std::slice::from_ref(e))
            );
        } else if client_ports.contains(&e.sport) || (servers.contains(&e.dport) && e.sport == 0) {
            assert_eq!(
                e.pid,
                t.client_pid,
                "client socket event attributed wrongly:\n{}",
                dump(std::slice::from_ref(e))
            );
        }
        assert_eq!(
            e.pid == 0,
            e.attribution == Attribution::Unknown,
            "{}",
            dump(std::slice::from_ref(e))
        );
    }
    // Identity: the two ends are different sockets, each with one cookie for its life.
    let client_cookie = find(&ev, "client established", |e| {
        e.kind == EventKind::StateChange && e.newstate == Some(TcpState::Established) && e.sport == cp
    })
    .cookie;
    let server_cookie = find(&ev, "server child", |e| e.kind == EventKind::Accept && e.dport == cp).cookie;
    assert!(client_cookie != 0 && server_cookie != 0 && client_cookie != server_cookie);
    assert!(ev
        .iter()
        .filter(|e| e.sport == cp && e.dport == t.port4)
        .all(|e| e.cookie == client_cookie));
    // TCP fields on an established socket.
    let e = find(&ev, "established with tcp info", |e| {
        e.kind == EventKind::StateChange && e.newstate == Some(TcpState::Established) && e.sport == cp
    });
    assert!(
        e.tcp.snd_cwnd.is_some_and(|c| c > 0) && e.tcp.srtt_us.is_some(),
        "{:?}",
        e.tcp
    );
}

fn zero_window_traffic() -> (u32, u16, u32, u16) {
    let mut server = Helper::start(None, &["zw-server"]);
    let port = server.port();
    let mut client = Helper::start(None, &["zw-client", "127.0.0.1", &port.to_string()]);
    let client_port = client.port();
    client.wait_ok();
    server.wait_ok();
    (server.pid(), port, client.pid(), client_port)
}

#[test]
fn zero_windows_both_directions() {
    let test = "zero_windows_both_directions";
    if !can_run(test) {
        return;
    }
    let mut r = None;
    let Some((_, ev)) = record_around(test, &[], || r = Some(zero_window_traffic())) else {
        return;
    };
    let (server_pid, port, client_pid, client_port) = r.unwrap();
    let e = find(&ev, "receiver advertises zero window", |e| {
        e.kind == EventKind::ZeroWindowSent && e.sport == port && e.dport == client_port
    });
    assert_eq!(
        (e.pid, &*e.probe, e.tcp.window),
        (server_pid, "cgroup_skb:egress", Some(0))
    );
    let e = find(&ev, "sender sees zero window", |e| {
        e.kind == EventKind::ZeroWindowRecv && e.sport == client_port && e.dport == port
    });
    assert_eq!(
        (e.pid, &*e.probe, e.tcp.window),
        (client_pid, "tp_btf:tcp_probe", Some(0))
    );
}

#[test]
fn disabled_rung_falls_to_the_next_one() {
    let test = "disabled_rung_falls_to_the_next_one";
    if !can_run(test) {
        return;
    }
    let mut r = None;
    let Some((meta, ev)) = record_around(test, &["--disable-probe", "tp_btf:tcp_probe"], || {
        r = Some(zero_window_traffic())
    }) else {
        return;
    };
    let (_, port, client_pid, client_port) = r.unwrap();
    let tried: Vec<_> = meta.probes.iter().filter(|p| p.kind == "zero_window_recv").collect();
    assert!(
        tried
            .iter()
            .any(|p| p.probe == "tp_btf:tcp_probe" && !p.used && p.detail.contains("--disable-probe")),
        "{tried:?}"
    );
    assert!(
        tried
            .iter()
            .any(|p| p.probe == "cgroup_skb:ingress" && p.used && p.rung == 2),
        "{tried:?}"
    );
    let e = find(&ev, "zero window seen by the fallback", |e| {
        e.kind == EventKind::ZeroWindowRecv && e.sport == client_port && e.dport == port
    });
    assert_eq!((&*e.probe, e.pid), ("cgroup_skb:ingress", client_pid));
    assert!(ev.iter().all(|e| &*e.probe != "tp_btf:tcp_probe"));
}

/// An nftables table that drops segments to one port while it exists. It
/// drops on input, after the sender's transmit succeeded, so the sender's
/// retransmissions are real ones (a drop on output fails the transmit, which
/// the kernel does not count as a retransmission).
struct DropRule(String);

impl DropRule {
    fn new(port: u16) -> DropRule {
        let table = format!("deeptcp_live_{}", std::process::id());
        sh("nft", &["add", "table", "inet", &table]);
        let rule = DropRule(table.clone());
        sh(
            "nft",
            &[
                "add",
                "chain",
                "inet",
                &table,
                "in",
                "{ type filter hook input priority 0 ; }",
            ],
        );
        sh(
            "nft",
            &[
                "add",
                "rule",
                "inet",
                &table,
                "in",
                "tcp",
                "dport",
                &port.to_string(),
                "drop",
            ],
        );
        rule
    }
}

impl Drop for DropRule {
    fn drop(&mut self) {
        let _ = Command::new("nft").args(["delete", "table", "inet", &self.0]).status();
    }
}

#[test]
fn retransmissions_forced_with_nftables() {
    let test = "retransmissions_forced_with_nftables";
    if !can_run(test) {
        return;
    }
    let mut r = None;
    let Some((_, ev)) = record_around(test, &[], || {
        let mut server = Helper::start(None, &["hold-server"]);
        let port = server.port();
        let mut client = Helper::start(None, &["hold-client", "127.0.0.1", &port.to_string(), "1.0"]);
        let rule = DropRule::new(port);
        std::thread::sleep(Duration::from_millis(2500));
        drop(rule);
        client.wait_ok();
        server.wait_ok();
        r = Some((port, client.port(), client.pid()));
    }) else {
        return;
    };
    let (port, client_port, client_pid) = r.unwrap();
    let retrans: Vec<&Event> = ev
        .iter()
        .filter(|e| e.kind == EventKind::Retransmit && e.sport == client_port && e.dport == port)
        .collect();
    assert!(!retrans.is_empty(), "no retransmission recorded:\n{}", dump(&ev));
    for e in retrans {
        assert_eq!(
            (e.pid, &*e.probe),
            (client_pid, "tp_btf:tcp_retransmit_skb"),
            "retransmits fire from timers, the owner must come from the map"
        );
        assert_eq!(e.newstate, Some(TcpState::Established));
    }
}

#[test]
fn connection_opened_before_recording_is_attributed() {
    let test = "connection_opened_before_recording_is_attributed";
    if !can_run(test) {
        return;
    }
    let mut server = Helper::start(None, &["hold-server"]);
    let port = server.port();
    // The client sends (and both close) only after recording is well under way.
    let mut client = Helper::start(None, &["hold-client", "127.0.0.1", &port.to_string(), "6"]);
    let client_port = client.port();
    let Some((meta, ev)) = record_around(test, &[], || {
        client.wait_ok();
        server.wait_ok();
    }) else {
        return;
    };
    assert!(meta.snapshot_sockets >= 2);
    let snap = find(&ev, "server socket in the snapshot", |e| {
        e.kind == EventKind::Snapshot && e.sport == port && e.dport == client_port
    });
    assert_eq!(
        (snap.pid, snap.attribution, snap.newstate),
        (server.pid(), Attribution::Snapshot, Some(TcpState::Established))
    );
    find(&ev, "client socket in the snapshot", |e| {
        e.kind == EventKind::Snapshot && e.sport == client_port && e.pid == client.pid()
    });
    let e = find(&ev, "server sees the client's FIN", |e| {
        e.kind == EventKind::StateChange && e.newstate == Some(TcpState::CloseWait) && e.sport == port
    });
    assert_eq!(
        e.pid,
        server.pid(),
        "pre-existing socket attributed to its owner:\n{}",
        dump(&ev)
    );
    assert!(
        matches!(e.attribution, Attribution::Snapshot | Attribution::Owner),
        "{:?}",
        e.attribution
    );
    let e = find(&ev, "client receives the server's FIN", |e| {
        e.kind == EventKind::StateChange && e.oldstate == Some(TcpState::FinWait2) && e.sport == client_port
    });
    assert_eq!(e.pid, client.pid());
}

/// A network namespace with a veth pair to the root namespace.
struct Netns {
    name: String,
}

impl Netns {
    fn new(octet: u8) -> Netns {
        let name = format!("deeptcp{}", std::process::id());
        let (host_if, ns_if) = (
            format!("dt{}h", std::process::id() % 100000),
            format!("dt{}n", std::process::id() % 100000),
        );
        sh("ip", &["netns", "add", &name]);
        let ns = Netns { name: name.clone() };
        sh("ip", &["link", "add", &host_if, "type", "veth", "peer", "name", &ns_if]);
        sh("ip", &["link", "set", &ns_if, "netns", &name]);
        sh("ip", &["addr", "add", &format!("10.231.{octet}.1/24"), "dev", &host_if]);
        sh("ip", &["link", "set", &host_if, "up"]);
        sh(
            "ip",
            &[
                "-n",
                &name,
                "addr",
                "add",
                &format!("10.231.{octet}.2/24"),
                "dev",
                &ns_if,
            ],
        );
        sh("ip", &["-n", &name, "link", "set", &ns_if, "up"]);
        sh("ip", &["-n", &name, "link", "set", "lo", "up"]);
        ns
    }

    fn inode(&self) -> u32 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/run/netns/{}", self.name))
            .expect("netns file")
            .ino() as u32
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the veth pair, and with it the pair.
        let _ = Command::new("ip").args(["netns", "delete", &self.name]).status();
    }
}

#[test]
fn netns_over_veth_records_each_sides_namespace() {
    let test = "netns_over_veth_records_each_sides_namespace";
    if !can_run(test) {
        return;
    }
    let ns = Netns::new(77);
    let root_inode = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self/ns/net").unwrap().ino() as u32
    };
    let mut r = None;
    let Some((_, ev)) = record_around(test, &[], || {
        let mut server = Helper::start(Some(&ns.name), &["hold-server", "10.231.77.2"]);
        let port = server.port();
        let mut client = Helper::start(None, &["hold-client", "10.231.77.2", &port.to_string(), "0.1"]);
        client.wait_ok();
        server.wait_ok();
        r = Some((port, server.pid(), client.port(), client.pid()));
    }) else {
        return;
    };
    let (port, server_pid, client_port, client_pid) = r.unwrap();
    let inside = ns.inode();
    assert_ne!(inside, root_inode);
    let e = find(&ev, "server accept inside the namespace", |e| {
        e.kind == EventKind::Accept && e.sport == port
    });
    assert_eq!(
        (e.netns, e.saddr.to_string().as_str(), e.pid),
        (inside, "10.231.77.2", server_pid)
    );
    let e = find(&ev, "client connect in the root namespace", |e| {
        e.kind == EventKind::StateChange && e.newstate == Some(TcpState::Established) && e.sport == client_port
    });
    assert_eq!((e.netns, e.pid), (root_inode, client_pid));
    // -N filters in the kernel: only the namespace's side.
    let mut r2 = None;
    let Some((_, only)) = record_around(test, &["-N", &inside.to_string()], || {
        let mut server = Helper::start(Some(&ns.name), &["hold-server", "10.231.77.2"]);
        let port = server.port();
        let mut client = Helper::start(None, &["hold-client", "10.231.77.2", &port.to_string(), "0.1"]);
        client.wait_ok();
        server.wait_ok();
        r2 = Some(port);
    }) else {
        return;
    };
    let port = r2.unwrap();
    assert!(only.iter().any(|e| e.sport == port), "namespace events recorded");
    assert!(
        only.iter()
            .filter(|e| e.kind != EventKind::Snapshot)
            .all(|e| e.netns == inside),
        "{}",
        dump(&only)
    );
}

#[test]
fn list_probes_reports_every_kind_on_this_kernel() {
    let test = "list_probes_reports_every_kind_on_this_kernel";
    if !can_run(test) {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_record"))
        .arg("--list-probes")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("built without its eBPF programs") {
        skip(test, "record was built without eBPF programs");
        return;
    }
    assert!(out.status.success(), "{stderr}");
    let used = |kind: &str| -> String {
        stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(kind) && l.ends_with("attached (used)"))
            .unwrap_or_else(|| panic!("{kind} has no attached rung:\n{stdout}"))
            .split_whitespace()
            .nth(2)
            .unwrap_or_default()
            .to_owned()
    };
    // On this kernel (tracepoints and tp_btf; no kprobes; fentry refused) every kind still has a rung.
    for kind in [
        "state_change",
        "retransmit",
        "retransmit_synack",
        "reset_recv",
        "reset_sent",
        "sock_error",
        "destroy_sock",
        "connect",
        "accept",
        "fin_recv",
        "fin_sent",
        "zero_window_recv",
        "zero_window_sent",
    ] {
        let probe = used(kind);
        let kprobes = std::path::Path::new("/sys/bus/event_source/devices/kprobe/type").exists();
        if !kprobes && ["fin_recv", "fin_sent", "accept"].contains(&kind) {
            assert_eq!(probe, "inferred:inet_sock_set_state", "{kind}");
        }
    }
    assert!(
        stdout.contains("kprobe:tcp_fin") && stdout.contains("fentry:tcp_fin"),
        "failed rungs are listed with reasons:\n{stdout}"
    );
}
