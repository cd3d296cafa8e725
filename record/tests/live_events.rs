//! Live tests of the events issue, as root against real traffic from
//! separate server and client processes: FIN both ways, connect/accept,
//! owner attribution (never the interrupted task), zero windows both ways,
//! retransmissions, SYN-ACK retransmissions and tail loss probes forced
//! with nftables, a connection opened before recording, network namespaces
//! over veth, the probe-ladder fallback and `--list-probes`. Skips (or, with
//! `DEEPTCP_REQUIRE_LIVE=1`, fails) without root.
//!
//! Which rung records a kind depends on the kernel (tp_btf, fentry, kprobe,
//! cgroup_skb, inference): the tests take the expected rung from
//! `--list-probes` or the recording's probe report, check that it is the
//! first of its ladder that attaches, and check the rows' semantics.

mod common;

use std::time::Duration;

use common::*;
use deeptcp_format::{Attribution, Event, EventKind, TcpState};

fn record_around(
    test: &str,
    args: &[&str],
    traffic: impl FnOnce(),
) -> Option<(deeptcp_format::RecordingMeta, Vec<Event>)> {
    record_around_with_stderr(test, args, traffic).map(|(meta, ev, _)| (meta, ev))
}

fn record_around_with_stderr(
    test: &str,
    args: &[&str],
    traffic: impl FnOnce(),
) -> Option<(deeptcp_format::RecordingMeta, Vec<Event>, String)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.parquet");
    let rec = Recorder::start(test, &path, args)?;
    traffic();
    Some(rec.stop(libc::SIGINT))
}

/// Owners kept in the cookie-keyed hash (the default).
#[test]
fn fin_connect_accept_and_owner_attribution() {
    owner_attribution("fin_connect_accept_and_owner_attribution", &[], "cookie hash");
}

/// The same with owners in socket storage (`--owner-store socket`). Where
/// kprobes exist, also with a kprobe rung made the one in use: kprobes
/// cannot reach socket storage, so record loads the programs again with the
/// hash.
#[test]
fn owner_attribution_in_socket_storage() {
    let test = "owner_attribution_in_socket_storage";
    owner_attribution(test, &["--owner-store", "socket"], "socket storage");
    if kprobes_available() {
        owner_attribution(
            test,
            &["--owner-store", "socket", "--disable-probe", "fexit:inet_csk_accept"],
            "cookie hash",
        );
    }
}

fn owner_attribution(test: &str, args: &[&str], store: &str) {
    if !can_run(test) {
        return;
    }
    let mut t = None;
    let Some((meta, ev, stderr)) = record_around_with_stderr(test, args, || t = Some(run_traffic())) else {
        return;
    };
    let t = t.unwrap();
    assert!(stderr.contains(&format!("owners in {store},")), "{stderr}");
    if args.contains(&"--disable-probe") {
        assert_eq!(expect_rung(&meta, "accept"), "kretprobe:inet_csk_accept");
    }
    let cp = t.step("normal4");

    let e = find(&ev, "connect", |e| {
        e.kind == EventKind::Connect && e.dport == t.port4 && e.pid == t.client_pid
    });
    assert_eq!(&*e.probe, "inferred:inet_sock_set_state");
    let e = find(&ev, "accept", |e| {
        e.kind == EventKind::Accept && e.sport == t.port4 && e.dport == cp
    });
    // Inferred from the child's SYN_RECV -> ESTABLISHED (softirq): the
    // listener's owner, inherited. fexit/kretprobe:inet_csk_accept (kernels
    // with fentry or kprobes) run in accept() itself: the acceptor, as the
    // current task.
    assert_eq!(&*e.probe, expect_rung(&meta, "accept"));
    let how = if e.probe.ends_with(":inet_csk_accept") {
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
    let conn: Vec<Event> = ev.iter().filter(|e| e.sport == cp || e.dport == cp).cloned().collect();
    assert_eq!(
        e.pid,
        t.client_pid,
        "server {} client {}\n{}",
        t.server_pid,
        t.client_pid,
        dump(&conn)
    );

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
    let Some((meta, ev)) = record_around(test, &[], || r = Some(zero_window_traffic())) else {
        return;
    };
    let (server_pid, port, client_pid, client_port) = r.unwrap();
    // The rungs: the first of each ladder that attaches on this kernel, the
    // same in the file's report as in --list-probes.
    let Some(listed) = list_probes(test, &[]) else {
        return;
    };
    let sent = expect_rung(&meta, "zero_window_sent");
    let recv = expect_rung(&meta, "zero_window_recv");
    for (kind, rung) in [("zero_window_sent", sent), ("zero_window_recv", recv)] {
        let l = listed
            .used(kind)
            .unwrap_or_else(|| panic!("{kind} not recorded per --list-probes:\n{}", listed.text));
        assert_eq!(l.probe, rung, "{kind}: --list-probes and the recording disagree");
    }
    let lo = ip("127.0.0.1");
    let e = find(&ev, "receiver advertises zero window", |e| {
        e.kind == EventKind::ZeroWindowSent && e.sport == port && e.dport == client_port
    });
    assert_eq!(
        (e.pid, &*e.probe, e.tcp.window, e.saddr, e.daddr),
        (server_pid, sent, Some(0), lo, lo)
    );
    // cgroup_skb rungs parse headers and know no socket state; the others do.
    assert!(matches!(e.newstate, None | Some(TcpState::Established)), "{e:?}");
    let e = find(&ev, "sender sees zero window", |e| {
        e.kind == EventKind::ZeroWindowRecv && e.sport == client_port && e.dport == port
    });
    assert_eq!(
        (e.pid, &*e.probe, e.tcp.window, e.saddr, e.daddr),
        (client_pid, recv, Some(0), lo, lo)
    );
    assert!(matches!(e.newstate, None | Some(TcpState::Established)), "{e:?}");
    for e in &ev {
        match e.kind {
            EventKind::ZeroWindowSent => assert_eq!(&*e.probe, sent, "{}", dump(std::slice::from_ref(e))),
            EventKind::ZeroWindowRecv => assert_eq!(&*e.probe, recv, "{}", dump(std::slice::from_ref(e))),
            _ => {}
        }
    }
}

/// Disabling the rung that records `zero_window_recv` here hands the kind
/// to the next rung of its ladder that attaches (per `--list-probes` with
/// the same `--disable-probe`), or leaves it unrecorded when none does.
#[test]
fn disabled_rung_falls_to_the_next_one() {
    let test = "disabled_rung_falls_to_the_next_one";
    if !can_run(test) {
        return;
    }
    let kind = "zero_window_recv";
    let Some(full) = list_probes(test, &[]) else {
        return;
    };
    let best = full
        .used(kind)
        .unwrap_or_else(|| panic!("{kind} has no rung here:\n{}", full.text))
        .clone();
    let Some(without) = list_probes(test, &["--disable-probe", &best.probe]) else {
        return;
    };
    let off = without
        .lines
        .iter()
        .find(|l| l.kind == kind && l.probe == best.probe)
        .unwrap_or_else(|| panic!("{} not listed:\n{}", best.probe, without.text));
    assert!(
        off.status.contains("disabled by --disable-probe") && off.rung == best.rung,
        "{off:?}"
    );
    let next = without.used(kind).cloned();
    if let Some(n) = &next {
        assert!(
            n.rung > best.rung,
            "the next rung is lower in the ladder: {n:?} after {best:?}"
        );
    }

    let mut r = None;
    let Some((meta, ev)) = record_around(test, &["--disable-probe", &best.probe], || {
        r = Some(zero_window_traffic())
    }) else {
        return;
    };
    let (_, port, client_pid, client_port) = r.unwrap();
    assert!(
        meta.probes
            .iter()
            .any(|p| p.kind == kind && p.probe == best.probe && !p.used && p.detail.contains("--disable-probe")),
        "{:?}",
        meta.probes
    );
    assert!(
        ev.iter().all(|e| *e.probe != *best.probe),
        "rows from the disabled rung {}:\n{}",
        best.probe,
        dump(&ev)
    );
    let used = used_rung(&meta, kind).map(|p| p.probe.clone());
    assert_eq!(
        used.as_deref(),
        next.as_ref().map(|n| n.probe.as_str()),
        "the recording and --list-probes pick the same fallback"
    );
    match next {
        Some(n) => {
            let e = find(&ev, "zero window seen by the fallback", |e| {
                e.kind == EventKind::ZeroWindowRecv && e.sport == client_port && e.dport == port
            });
            assert_eq!(
                (&*e.probe, e.pid, e.tcp.window),
                (n.probe.as_str(), client_pid, Some(0))
            );
        }
        None => {
            // Nothing below it attaches here: the kind is then not recorded, and says so.
            eprintln!("{test}: no rung below {} attaches on this kernel", best.probe);
            assert!(ev.iter().all(|e| e.kind != EventKind::ZeroWindowRecv), "{}", dump(&ev));
        }
    }
}

/// A loopback connection from `traffic.py hold-client` to `hold-server`;
/// the client sends (and both then close) only when released.
struct Held {
    server: Helper,
    port: u16,
    client: Helper,
    client_port: u16,
}

impl Held {
    fn open() -> Held {
        Held::open_with(|_| ()).0
    }

    /// Runs `before_connect(port)` between the listen and the connect.
    fn open_with<T>(before_connect: impl FnOnce(u16) -> T) -> (Held, T) {
        let server = Helper::start(None, &["hold-server"]);
        let port = server.port();
        let t = before_connect(port);
        let client = Helper::start(None, &["hold-client", "127.0.0.1", &port.to_string(), "-"]);
        let client_port = client.port();
        let held = Held {
            server,
            port,
            client,
            client_port,
        };
        (held, t)
    }

    /// Lets the client send 100 bytes and get them echoed; waits for both ends.
    fn release(&mut self) {
        self.client.go();
        self.client.wait_ok();
        self.server.wait_ok();
    }
}

#[test]
fn retransmissions_forced_with_nftables() {
    let test = "retransmissions_forced_with_nftables";
    if !can_run(test) {
        return;
    }
    let mut r = None;
    let Some((meta, ev)) = record_around(test, &[], || {
        let mut c = Held::open();
        let (port, client_port) = (c.port, c.client_port);
        // The rule is in place before the client sends anything.
        let rule = DropRule::new("retrans", &format!("iif lo tcp dport {port} drop"));
        c.client.go();
        // Two RTO timeouts (about 0.6 s natively), counted by the kernel.
        wait_until(
            "two retransmission timeouts of the client's data",
            Duration::from_secs(10),
            || tcp4_retransmits(client_port, port).is_some_and(|n| n >= 2),
        );
        drop(rule);
        c.client.wait_ok();
        c.server.wait_ok();
        r = Some((port, client_port, c.client.pid()));
    }) else {
        return;
    };
    let (port, client_port, client_pid) = r.unwrap();
    let rung = expect_rung(&meta, "retransmit");
    let retrans: Vec<&Event> = ev
        .iter()
        .filter(|e| e.kind == EventKind::Retransmit && e.sport == client_port && e.dport == port)
        .collect();
    assert!(retrans.len() >= 2, "two retransmissions recorded:\n{}", dump(&ev));
    let lo = ip("127.0.0.1");
    for e in retrans {
        assert_eq!(
            (e.pid, &*e.probe),
            (client_pid, rung),
            "retransmits fire from timers, the owner must come from the map"
        );
        assert_eq!((e.newstate, e.saddr, e.daddr), (Some(TcpState::Established), lo, lo));
    }
}

/// The client's final handshake ACK is lost (dropped on input, loopback
/// only): the server's request socket retransmits its SYN-ACK from a timer.
#[test]
fn synack_retransmission_when_the_handshake_ack_is_lost() {
    let test = "synack_retransmission_when_the_handshake_ack_is_lost";
    if !can_run(test) {
        return;
    }
    let mut r = None;
    let Some((meta, ev)) = record_around(test, &[], || {
        // Segments to the server with ACK but not SYN: the handshake's last
        // ACK (the client's SYN and the server's SYN-ACK pass). connect()
        // returns on the SYN-ACK: the client is established, the server is not.
        let (mut c, rule) = Held::open_with(|port| {
            DropRule::new(
                "synack",
                &format!("iif lo tcp dport {port} tcp flags & (syn | ack) == ack drop"),
            )
        });
        let (port, client_port) = (c.port, c.client_port);
        // The first SYN-ACK retransmission comes after 1 s natively.
        wait_until("the server's SYN-ACK retransmitted", Duration::from_secs(10), || {
            tcp4_retransmits(port, client_port).is_some_and(|n| n >= 1)
        });
        drop(rule);
        // The client's data carries the ACK that completes the handshake.
        c.release();
        r = Some((port, c.server.pid(), client_port));
    }) else {
        return;
    };
    let (port, server_pid, client_port) = r.unwrap();
    let rung = expect_rung(&meta, "retransmit_synack");
    let lo = ip("127.0.0.1");
    let e = find(&ev, "SYN-ACK retransmitted by the server", |e| {
        e.kind == EventKind::RetransmitSynack && e.sport == port && e.dport == client_port
    });
    assert_eq!((&*e.probe, e.saddr, e.daddr), (rung, lo, lo), "{}", dump(&ev));
    // A timer fires it, on a request socket that has no owner of its own:
    // when attributed at all, then to the listener's owner.
    if e.attribution != Attribution::Unknown {
        assert_eq!(e.pid, server_pid, "{}", dump(std::slice::from_ref(e)));
    }
    assert_eq!(
        e.pid == 0,
        e.attribution == Attribution::Unknown,
        "{}",
        dump(std::slice::from_ref(e))
    );
    // The handshake completed afterwards.
    find(&ev, "server child established", |e| {
        transition(e, TcpState::SynRecv, TcpState::Established) && e.sport == port && e.dport == client_port
    });
}

/// The server's ACKs to the client are lost (dropped on input, loopback
/// only) after the connection is established; the client's data stays
/// unacknowledged and its tail loss probe fires. Applies when the kernel
/// offers a `loss_probe` rung (6.18 without kprobes and with fentry refused
/// offers none: then the test says so and checks that nothing claims one).
#[test]
fn tail_loss_probe_when_acks_are_lost() {
    let test = "tail_loss_probe_when_acks_are_lost";
    if !can_run(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.parquet");
    let Some(rec) = Recorder::start(test, &path, &[]) else {
        return;
    };
    let missing = rec
        .stderr()
        .lines()
        .find_map(|l| l.strip_prefix("record: warning: not recorded on this kernel: "))
        .is_some_and(|l| {
            l.split(" (")
                .next()
                .unwrap_or("")
                .split(", ")
                .any(|k| k == "loss_probe")
        });
    if missing {
        let (meta, ev, _) = rec.stop(libc::SIGINT);
        assert!(used_rung(&meta, "loss_probe").is_none(), "{:?}", meta.probes);
        assert!(ev.iter().all(|e| e.kind != EventKind::LossProbe), "{}", dump(&ev));
        let why: Vec<String> = meta
            .probes
            .iter()
            .filter(|p| p.kind == "loss_probe")
            .map(|p| format!("{}: {}", p.probe, p.detail))
            .collect();
        // Not a skip: what this kernel can show was checked (no rung is
        // claimed, no row recorded); the probe path runs where fentry or
        // kprobes exist (scripts/kernels: 6.1, 6.12).
        eprintln!(
            "live test {test}: this kernel offers no loss_probe rung ({}); checked that none is used and no loss_probe row is recorded",
            why.join("; ")
        );
        return;
    }
    let mut c = Held::open();
    let (port, client_port) = (c.port, c.client_port);
    let probes_before = net_counter("TcpExt", "TCPLossProbes");
    let rule = DropRule::new("tlp", &format!("iif lo tcp sport {port} tcp dport {client_port} drop"));
    c.client.go();
    // The RTO timer runs only after the loss probe (about 0.2 s natively).
    wait_until(
        "an RTO after the client's tail loss probe",
        Duration::from_secs(10),
        || tcp4_retransmits(client_port, port).is_some_and(|n| n >= 1),
    );
    drop(rule);
    assert!(
        net_counter("TcpExt", "TCPLossProbes") > probes_before,
        "the kernel sent no tail loss probe (net.ipv4.tcp_early_retrans, tcp_sack?)"
    );
    c.client.wait_ok();
    c.server.wait_ok();
    let (meta, ev, _) = rec.stop(libc::SIGINT);
    let rung = expect_rung(&meta, "loss_probe");
    let e = find(&ev, "the client's tail loss probe", |e| {
        e.kind == EventKind::LossProbe && e.sport == client_port && e.dport == port
    });
    let lo = ip("127.0.0.1");
    assert_eq!(
        (&*e.probe, e.pid, e.saddr, e.daddr, e.newstate),
        (rung, c.client.pid(), lo, lo, Some(TcpState::Established)),
        "{}",
        dump(std::slice::from_ref(e))
    );
}

#[test]
fn connection_opened_before_recording_is_attributed() {
    let test = "connection_opened_before_recording_is_attributed";
    if !can_run(test) {
        return;
    }
    // The client sends (and both close) only once recording is under way.
    let mut c = Held::open();
    let (port, client_port) = (c.port, c.client_port);
    let Some((meta, ev, stderr)) = record_around_with_stderr(test, &[], || c.release()) else {
        return;
    };
    let (server, client) = (&c.server, &c.client);
    assert!(meta.snapshot_sockets >= 2);
    // Where sock_diag netlink is missing the snapshot reads /proc, which has
    // no cookies (record says so); else each snapshot row carries the cookie
    // of its socket's later rows.
    let sock_diag = !stderr.contains("sock_diag netlink unavailable");
    if !sock_diag {
        eprintln!("live test {test}: no sock_diag on this kernel, snapshot cookies not checked: {stderr}");
    }
    let snap = find(&ev, "server socket in the snapshot", |e| {
        e.kind == EventKind::Snapshot && e.sport == port && e.dport == client_port
    });
    assert_eq!(
        (snap.pid, snap.attribution, snap.newstate),
        (server.pid(), Attribution::Snapshot, Some(TcpState::Established))
    );
    let client_snap = find(&ev, "client socket in the snapshot", |e| {
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
    let server_fin = e;
    let e = find(&ev, "client receives the server's FIN", |e| {
        e.kind == EventKind::StateChange && e.oldstate == Some(TcpState::FinWait2) && e.sport == client_port
    });
    assert_eq!(e.pid, client.pid());
    if sock_diag {
        for (snap, later) in [(snap, server_fin), (client_snap, e)] {
            let rows = dump(&[snap.clone(), later.clone()]);
            assert_ne!(snap.cookie, 0, "{rows}");
            assert_eq!(
                snap.cookie, later.cookie,
                "snapshot row and later row of one socket:\n{rows}"
            );
            // tcp_info of an established socket, its counters no further
            // than the later row's.
            let (t, u) = (snap.tcp, later.tcp);
            assert!(t.srtt_us.is_some() && t.snd_cwnd.is_some_and(|c| c > 0), "{rows}");
            assert!(t.bytes_acked.is_some_and(|b| Some(b) <= u.bytes_acked), "{rows}");
            assert!(t.bytes_received.is_some_and(|b| Some(b) <= u.bytes_received), "{rows}");
        }
    }
}

/// A network namespace with a veth pair to the root namespace.
struct Netns(NamedNetns);

impl Netns {
    fn new(octet: u8) -> Netns {
        let (host_if, ns_if) = (
            format!("dt{}h", std::process::id() % 100000),
            format!("dt{}n", std::process::id() % 100000),
        );
        // Deleting the namespace deletes its end of the veth pair, and with it the pair.
        let ns = NamedNetns::add(format!("deeptcp{}", std::process::id()));
        let name = &ns.name;
        sh("ip", &["link", "add", &host_if, "type", "veth", "peer", "name", &ns_if]);
        sh("ip", &["link", "set", &ns_if, "netns", name]);
        sh("ip", &["addr", "add", &format!("10.231.{octet}.1/24"), "dev", &host_if]);
        sh("ip", &["link", "set", &host_if, "up"]);
        sh(
            "ip",
            &[
                "-n",
                name,
                "addr",
                "add",
                &format!("10.231.{octet}.2/24"),
                "dev",
                &ns_if,
            ],
        );
        sh("ip", &["-n", name, "link", "set", &ns_if, "up"]);
        Netns(ns)
    }
}

impl std::ops::Deref for Netns {
    type Target = NamedNetns;
    fn deref(&self) -> &NamedNetns {
        &self.0
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
    let Some(report) = list_probes(test, &[]) else {
        return;
    };
    let text = &report.text;
    // Kinds in report order; each kind's lines split into ladders (rungs
    // count from 1; `owner` has several one-line ladders).
    let mut kinds: Vec<&str> = Vec::new();
    for l in &report.lines {
        if !kinds.contains(&l.kind.as_str()) {
            kinds.push(&l.kind);
        }
    }
    let mut recorded = Vec::new();
    for kind in &kinds {
        let lines: Vec<&ProbeLine> = report.lines.iter().filter(|l| l.kind == *kind).collect();
        let not_recorded = lines.iter().any(|l| l.rung.is_none());
        let mut ladders: Vec<Vec<&ProbeLine>> = Vec::new();
        for l in lines.iter().filter(|l| l.rung.is_some()) {
            if l.rung == Some(1) {
                ladders.push(Vec::new());
            }
            let ladder = ladders
                .last_mut()
                .unwrap_or_else(|| panic!("{kind}: a ladder that does not start at rung 1:\n{text}"));
            assert_eq!(
                l.rung,
                Some(ladder.len() as u32 + 1),
                "{kind}: rungs in ladder order:\n{text}"
            );
            ladder.push(l);
        }
        assert!(!ladders.is_empty(), "{kind}: no rung listed:\n{text}");
        // owner has a ladder per hook; reset_sent has supplements for kernels
        // whose tcp_send_reset misses RSTs without a socket (before 6.10).
        assert!(
            matches!(*kind, "owner" | "reset_sent") || ladders.len() == 1,
            "{kind}: one ladder:\n{text}"
        );
        let mut used = false;
        for ladder in &ladders {
            // The first rung that attaches is used; every rung before it (all of
            // them, when none attaches) is listed with the reason it failed.
            let (last, before) = ladder.split_last().expect("a ladder has a rung");
            for l in before.iter().chain((!last.used()).then_some(last)) {
                // A supplement that this kernel does not need says why.
                let reason = l
                    .status
                    .strip_prefix("failed: ")
                    .or_else(|| l.status.strip_prefix("not needed: "))
                    .unwrap_or("");
                assert!(
                    !reason.trim().is_empty(),
                    "{kind}: {} failed without a reason:\n{text}",
                    l.probe
                );
            }
            used |= last.used();
        }
        assert_eq!(used, !not_recorded, "{kind}: used xor NOT RECORDED:\n{text}");
        if used {
            recorded.push(*kind);
        }
    }
    // Every kind has a no-kprobe, no-fentry rung, except loss_probe; and
    // attribution needs an owner rung.
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
        "owner",
    ] {
        assert!(recorded.contains(&kind), "{kind} has no attached rung:\n{text}");
    }
    assert!(kinds.contains(&"loss_probe"), "loss_probe listed:\n{text}");
    // The default owner store, named after the table.
    assert!(text.ends_with("\n\nsocket owners kept in: cookie hash\n"), "{text}");
    // Without kprobe support no kprobe rung can be the one used.
    let kprobes = kprobes_available();
    if !kprobes {
        for l in report
            .lines
            .iter()
            .filter(|l| l.probe.starts_with("kprobe:") || l.probe.starts_with("kretprobe:"))
        {
            assert!(!l.used(), "{} used on a kernel without kprobes:\n{text}", l.probe);
        }
    }
}
