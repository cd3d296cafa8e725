//! Writes a synthetic, realistic schema-v2 recording, for tests and benchmarks.
//!
//! ```text
//! cargo run --release -p deeptcp-format --example synth -- --events N --out FILE [--host H] [--seed S]
//! ```
//!
//! The host runs a few processes (nginx and postgres serving, curl, python3
//! and java connecting out, sshd) whose sockets go through full lifecycles:
//! connects with their `CLOSE -> SYN_SENT` at port 0, accepted children of
//! listeners, local and remote closes, refused connects, resets both ways,
//! SYN timeouts, retransmits and tail loss probes, zero windows, IPv6, and
//! the inferred `connect`/`accept`/`fin_*` rows the recorder adds. Sockets
//! that existed before the recording appear as `snapshot` rows (without a
//! cookie, as the recorder writes them); whatever is still going on when N
//! rows are written stays open. Rows carry socket cookies, attribution as
//! the recorder assigns it (task / owner / listener / snapshot, and some
//! softirq rows with pid 0 to exercise back-fill) and TCP fields.
//!
//! Scenarios start in a fixed cycle, so any N of about 150 or more contains
//! every kind of lifecycle; `--seed` varies ports, timings and counts, and
//! `--host` names the host and picks its addresses. The same arguments give
//! the same rows. Memory stays flat: at most a few dozen sockets are in
//! flight and rows go straight to the writer.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::ExitCode;
use std::sync::Arc;

use deeptcp_format::testing;
use deeptcp_format::{
    Attribution, ClockAnchor, Event, EventKind, EventWriter, Family, ProbeStatus, RecordingMeta, TcpInfo, TcpState,
    WriterOptions,
};

const USAGE: &str = "usage: synth --events N --out FILE [--host H] [--seed S]";

/// 2026-04-14T10:00:00Z.
const BASE_REALTIME_NS: i64 = 1_776_160_800_000_000_000;
const INIT_NETNS: u32 = 4026531840;
const DB_NETNS: u32 = 4026532300;

/// SplitMix64: small, fast, and good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// True with probability `pct` percent.
    fn chance(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

#[derive(Clone, Copy)]
struct Proc {
    pid: u32,
    comm: &'static str,
    cgroup_id: u64,
}

/// One socket and the rows it will produce.
/// Rows marked `true` follow the previous one within microseconds (the
/// kernel reports them from the same code path).
struct Script {
    rows: std::collections::VecDeque<(bool, Event)>,
}

/// Builds the rows of one socket.
struct Sock<'a> {
    rows: Vec<(bool, Event)>,
    /// The next row follows the previous one at once.
    glue: bool,
    proc_: Proc,
    cookie: u64,
    family: Family,
    saddr: IpAddr,
    sport: u16,
    daddr: IpAddr,
    dport: u16,
    netns: u32,
    srtt_us: u32,
    /// Has been ESTABLISHED (the kernel has an RTT estimate).
    est: bool,
    acked: u64,
    received: u64,
    comm: &'a Comms,
}

/// Shared `Arc<str>`s, as the reader hands them out.
struct Comms {
    names: Vec<(&'static str, Arc<str>)>,
    probes: Vec<(&'static str, Arc<str>)>,
    empty: Arc<str>,
}

impl Comms {
    fn comm(&self, name: &str) -> Arc<str> {
        self.names
            .iter()
            .find(|(n, _)| *n == name)
            .map_or_else(|| Arc::clone(&self.empty), |(_, a)| Arc::clone(a))
    }

    fn probe(&self, kind: EventKind) -> Arc<str> {
        let name = probe_of(kind);
        self.probes
            .iter()
            .find(|(n, _)| *n == name)
            .map_or_else(|| Arc::clone(&self.empty), |(_, a)| Arc::clone(a))
    }
}

fn probe_of(kind: EventKind) -> &'static str {
    match kind {
        EventKind::StateChange => "tp_btf:inet_sock_set_state",
        EventKind::Retransmit => "tp_btf:tcp_retransmit_skb",
        EventKind::ResetRecv => "tp_btf:tcp_receive_reset",
        EventKind::ResetSent => "tp_btf:tcp_send_reset",
        EventKind::SockError => "tp_btf:inet_sk_error_report",
        EventKind::DestroySock => "tp_btf:tcp_destroy_sock",
        EventKind::FinRecv | EventKind::FinSent | EventKind::Connect | EventKind::Accept => {
            "inferred:inet_sock_set_state"
        }
        EventKind::ZeroWindowRecv => "tp_btf:tcp_probe",
        EventKind::ZeroWindowSent => "cgroup_skb:egress",
        EventKind::LossProbe => "fentry:tcp_send_loss_probe",
        EventKind::RetransmitSynack => "tp_btf:tcp_retransmit_synack",
        EventKind::Snapshot => "snapshot:proc",
    }
}

/// Who a row is attributed to.
#[derive(Clone, Copy, PartialEq)]
enum By {
    /// The owner, in its own system call.
    Task,
    /// Softirq, owner remembered by the kernel.
    Owner,
    /// Softirq, owner inherited from the listener.
    Listener,
    /// Softirq, owner unknown (pid 0).
    Nobody,
}

impl Sock<'_> {
    fn row(&mut self, kind: EventKind, old: Option<TcpState>, new: Option<TcpState>, by: By) -> &mut Event {
        let (pid, attribution) = match by {
            By::Task => (self.proc_.pid, Attribution::Task),
            By::Owner => (self.proc_.pid, Attribution::Owner),
            By::Listener => (self.proc_.pid, Attribution::Listener),
            By::Nobody => (0, Attribution::Unknown),
        };
        let known = pid != 0;
        let glued = std::mem::take(&mut self.glue);
        self.rows.push((
            glued,
            Event {
                pid,
                tid: if by == By::Task { pid + 1 } else { pid },
                comm: if known {
                    self.comm.comm(self.proc_.comm)
                } else {
                    self.comm.comm("swapper/1")
                },
                family: self.family,
                saddr: self.saddr,
                daddr: self.daddr,
                sport: self.sport,
                dport: self.dport,
                oldstate: old,
                newstate: new,
                netns: self.netns,
                probe: self.comm.probe(kind),
                cookie: self.cookie,
                cgroup_id: if known { self.proc_.cgroup_id } else { 0 },
                attribution,
                ..testing::event(kind)
            },
        ));
        &mut self.rows.last_mut().expect("just pushed").1
    }

    /// Makes the next row follow the previous one at once.
    fn then(&mut self) -> &mut Self {
        self.glue = true;
        self
    }

    /// A transition plus the kind the recorder infers from it.
    fn to(&mut self, old: TcpState, new: TcpState, by: By) {
        use TcpState::*;
        if new == Established {
            self.est = true;
        }
        let info = self.info();
        let e = self.row(EventKind::StateChange, Some(old), Some(new), by);
        if new == Close || new == FinWait1 || new == CloseWait {
            e.tcp = info;
        }
        let inferred = match (old, new) {
            (Close, SynSent) => Some((EventKind::Connect, new)),
            (SynRecv, Established) => Some((EventKind::Accept, new)),
            (Established, FinWait1) | (CloseWait, LastAck) | (SynRecv, FinWait1) => Some((EventKind::FinSent, old)),
            (Established, CloseWait) | (FinWait1, Closing) | (FinWait2, Close) => Some((EventKind::FinRecv, old)),
            _ => None,
        };
        if let Some((kind, state)) = inferred {
            self.glue = true;
            self.row(kind, None, Some(state), by);
        }
    }

    fn info(&self) -> TcpInfo {
        TcpInfo {
            srtt_us: self.est.then_some(self.srtt_us),
            bytes_acked: Some(self.acked),
            bytes_received: Some(self.received),
            snd_cwnd: Some(10),
            ..Default::default()
        }
    }

    fn transfer(&mut self, rng: &mut Rng) {
        self.acked += rng.range(200, 200_000);
        self.received += rng.range(100, 2_000_000);
        self.srtt_us = (self.srtt_us as u64 * rng.range(90, 115) / 100).max(20) as u32;
    }

    fn on(&mut self, kind: EventKind, state: TcpState, by: By) -> &mut Event {
        let info = self.info();
        let e = self.row(kind, None, Some(state), by);
        e.tcp = info;
        e
    }

    fn error(&mut self, errno: i32, state: TcpState, by: By) {
        self.row(EventKind::SockError, None, Some(state), by).sk_err = errno;
    }

    fn destroy(&mut self, by: By) {
        self.row(EventKind::DestroySock, None, Some(TcpState::Close), by);
    }

    fn zero_window(&mut self, kind: EventKind, rng: &mut Rng) {
        let info = self.info();
        let e = self.row(kind, None, Some(TcpState::Established), By::Owner);
        e.tcp = TcpInfo {
            window: Some(0),
            snd_wnd: Some(if kind == EventKind::ZeroWindowRecv { 0 } else { 65_535 }),
            rcv_wnd: Some(if kind == EventKind::ZeroWindowSent { 0 } else { 65_535 }),
            ..info
        };
        self.transfer(rng);
    }

    /// connect(): CLOSE -> SYN_SENT at port 0, then the handshake.
    fn connect(&mut self, rng: &mut Rng) {
        let port = self.sport;
        self.sport = 0;
        self.to(TcpState::Close, TcpState::SynSent, By::Task);
        self.sport = port;
        if rng.chance(20) {
            self.on(EventKind::Retransmit, TcpState::SynSent, By::Owner);
        }
    }

    fn established(&mut self) {
        self.to(TcpState::SynSent, TcpState::Established, By::Owner);
    }

    /// Data phase: transfers, some retransmits (a few from timers with pid 0).
    fn data(&mut self, rng: &mut Rng, lossy: bool) {
        for _ in 0..rng.range(0, 2) {
            self.transfer(rng);
            if lossy || rng.chance(15) {
                let by = if rng.chance(40) { By::Nobody } else { By::Owner };
                self.on(EventKind::Retransmit, TcpState::Established, by);
                if rng.chance(30) {
                    self.on(EventKind::LossProbe, TcpState::Established, By::Owner);
                }
            }
        }
        self.transfer(rng);
    }

    fn local_close(&mut self) {
        use TcpState::*;
        self.to(Established, FinWait1, By::Task);
        self.to(FinWait1, FinWait2, By::Owner);
        self.to(FinWait2, Close, By::Owner);
        self.destroy(By::Owner);
    }

    fn remote_close(&mut self, by: By) {
        use TcpState::*;
        self.to(Established, CloseWait, by);
        self.to(CloseWait, LastAck, By::Task);
        self.to(LastAck, Close, By::Owner);
        self.destroy(By::Owner);
    }
}

#[derive(Clone, Copy, Debug)]
enum Scenario {
    ClientLocalClose,
    ServerRemoteClose,
    ClientRefused,
    ClientResetByPeer,
    ClientResetSent,
    SynTimeout,
    V6ZeroWindows,
    ServerResetByClient,
    ClientRemoteClose,
    ListenerLifecycle,
}

const CYCLE: [Scenario; 10] = [
    Scenario::ClientLocalClose,
    Scenario::ServerRemoteClose,
    Scenario::ClientRefused,
    Scenario::ClientResetByPeer,
    Scenario::ClientResetSent,
    Scenario::SynTimeout,
    Scenario::V6ZeroWindows,
    Scenario::ServerResetByClient,
    Scenario::ClientRemoteClose,
    Scenario::ListenerLifecycle,
];

struct World {
    rng: Rng,
    comms: Comms,
    next_cookie: u64,
    local4: Ipv4Addr,
    local6: Ipv6Addr,
    nginx: Proc,
    postgres: Proc,
    curl: Proc,
    python: Proc,
    java: Proc,
    sshd: Proc,
}

impl World {
    fn sock(&mut self, proc_: Proc, family: Family, local: IpAddr, sport: u16, remote: IpAddr, dport: u16) -> Sock<'_> {
        let cookie = self.next_cookie;
        self.next_cookie += 1;
        let srtt_us = if remote.is_ipv4() && remote.to_string().starts_with("10.") {
            self.rng.range(150, 900) as u32
        } else {
            self.rng.range(8_000, 90_000) as u32
        };
        Sock {
            rows: Vec::new(),
            glue: false,
            proc_,
            cookie,
            family,
            saddr: local,
            sport,
            daddr: remote,
            dport,
            netns: if proc_.comm == "postgres" { DB_NETNS } else { INIT_NETNS },
            srtt_us,
            est: false,
            acked: 0,
            received: 0,
            comm: &self.comms,
        }
    }

    fn ephemeral(&mut self) -> u16 {
        self.rng.range(32_768, 60_999) as u16
    }

    fn lan_peer(&mut self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 1, self.rng.range(2, 250) as u8))
    }

    fn script(&mut self, s: Scenario) -> Script {
        use TcpState::*;
        let l4 = IpAddr::V4(self.local4);
        let port = self.ephemeral();
        let peer_port = self.ephemeral();
        let lan = self.lan_peer();
        let wan = IpAddr::V4(Ipv4Addr::new(192, 0, 2, self.rng.range(1, 254) as u8));
        let mut rng = Rng(self.rng.next());
        let (curl, python, java, nginx, postgres) = (self.curl, self.python, self.java, self.nginx, self.postgres);
        let local6 = self.local6;
        let rows = match s {
            Scenario::ClientLocalClose => {
                let mut k = self.sock(curl, Family::Inet, l4, port, wan, 443);
                k.connect(&mut rng);
                k.established();
                k.data(&mut rng, false);
                k.local_close();
                k.rows
            }
            Scenario::ClientRemoteClose => {
                let mut k = self.sock(python, Family::Inet, l4, port, lan, 8080);
                k.connect(&mut rng);
                k.established();
                k.data(&mut rng, false);
                k.remote_close(By::Owner);
                k.rows
            }
            Scenario::ServerRemoteClose => {
                let mut k = self.sock(nginx, Family::Inet, l4, 80, lan, peer_port);
                k.to(Listen, SynRecv, By::Listener);
                k.to(SynRecv, Established, By::Listener);
                k.data(&mut rng, false);
                // Some FINs arrive before the kernel knows the owner.
                let by = if rng.chance(50) { By::Nobody } else { By::Owner };
                k.remote_close(by);
                k.rows
            }
            Scenario::ClientRefused => {
                let mut k = self.sock(java, Family::Inet, l4, port, lan, 9999);
                k.connect(&mut rng);
                k.on(EventKind::ResetRecv, SynSent, By::Owner);
                k.then().to(SynSent, Close, By::Owner);
                k.then().error(111, Close, By::Owner);
                k.destroy(By::Task);
                k.rows
            }
            Scenario::ClientResetByPeer => {
                let peer = IpAddr::V4(Ipv4Addr::new(198, 51, 100, rng.range(1, 254) as u8));
                let mut k = self.sock(python, Family::Inet, l4, port, peer, 443);
                k.connect(&mut rng);
                k.established();
                k.data(&mut rng, true);
                k.on(EventKind::ResetRecv, Established, By::Owner);
                k.then().to(Established, Close, By::Owner);
                k.then().error(104, Close, By::Owner);
                k.destroy(By::Task);
                k.rows
            }
            Scenario::ClientResetSent => {
                let mut k = self.sock(curl, Family::Inet, l4, port, wan, 443);
                k.connect(&mut rng);
                k.established();
                k.data(&mut rng, false);
                k.to(Established, Close, By::Task);
                k.then().on(EventKind::ResetSent, Close, By::Task);
                k.destroy(By::Task);
                k.rows
            }
            Scenario::SynTimeout => {
                let peer = IpAddr::V4(Ipv4Addr::new(203, 0, 113, rng.range(1, 254) as u8));
                let mut k = self.sock(java, Family::Inet, l4, port, peer, 443);
                let p = k.sport;
                k.sport = 0;
                k.to(Close, SynSent, By::Task);
                k.sport = p;
                for _ in 0..rng.range(2, 4) {
                    let by = if rng.chance(50) { By::Nobody } else { By::Owner };
                    k.on(EventKind::Retransmit, SynSent, by);
                }
                k.error(110, SynSent, By::Owner);
                k.then().to(SynSent, Close, By::Owner);
                k.destroy(By::Task);
                k.rows
            }
            Scenario::V6ZeroWindows => {
                let peer = IpAddr::V6(Ipv6Addr::new(
                    0x2001,
                    0xdb8,
                    0,
                    0x2,
                    0,
                    0,
                    0,
                    rng.range(1, 0xfff) as u16,
                ));
                let mut k = self.sock(python, Family::Inet6, IpAddr::V6(local6), port, peer, 5432);
                k.connect(&mut rng);
                k.established();
                k.data(&mut rng, false);
                for _ in 0..rng.range(1, 3) {
                    k.zero_window(EventKind::ZeroWindowRecv, &mut rng);
                }
                k.zero_window(EventKind::ZeroWindowSent, &mut rng);
                k.local_close();
                k.rows
            }
            Scenario::ServerResetByClient => {
                let mut k = self.sock(postgres, Family::Inet, l4, 5432, lan, peer_port);
                k.to(Listen, SynRecv, By::Listener);
                if rng.chance(50) {
                    k.on(EventKind::RetransmitSynack, SynRecv, By::Listener);
                }
                k.to(SynRecv, Established, By::Listener);
                k.data(&mut rng, false);
                k.on(EventKind::ResetRecv, Established, By::Owner);
                k.then().to(Established, Close, By::Owner);
                k.then().error(104, Close, By::Owner);
                k.destroy(By::Task);
                k.rows
            }
            Scenario::ListenerLifecycle => {
                let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
                let lport = 8000 + rng.range(0, 99) as u16;
                let mut k = self.sock(java, Family::Inet, any, lport, any, 0);
                k.to(Close, Listen, By::Task);
                k.to(Listen, Close, By::Task);
                k.destroy(By::Task);
                k.rows
            }
        };
        Script { rows: rows.into() }
    }

    /// Sockets that exist when the recording starts: one `snapshot` row each
    /// (no cookie, as the recorder writes them), then, for the connections,
    /// what happens to them later (with their cookie).
    fn before(&mut self) -> (Vec<Event>, Vec<Script>) {
        use TcpState::*;
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let l4 = IpAddr::V4(self.local4);
        let mut snaps = Vec::new();
        let mut scripts = Vec::new();
        let (nginx, postgres, sshd, python) = (self.nginx, self.postgres, self.sshd, self.python);
        let snapshot = |k: &mut Sock<'_>, state: TcpState| {
            let e = k.row(EventKind::Snapshot, None, Some(state), By::Task);
            e.attribution = Attribution::Snapshot;
            e.tid = e.pid;
            e.cookie = 0;
            e.clone()
        };
        for (p, port) in [(nginx, 80), (postgres, 5432)] {
            let mut k = self.sock(p, Family::Inet, any, port, any, 0);
            snaps.push(snapshot(&mut k, Listen));
        }
        // An ssh session that outlives the recording.
        let peer = self.lan_peer();
        let mut rng = Rng(self.rng.next());
        let mut k = self.sock(sshd, Family::Inet, l4, 22, peer, 51_022);
        k.acked = 1_000_000;
        k.est = true;
        k.received = 250_000;
        snaps.push(snapshot(&mut k, Established));
        k.rows.clear();
        k.data(&mut rng, true);
        k.zero_window(EventKind::ZeroWindowSent, &mut rng);
        k.data(&mut rng, true);
        scripts.push(Script { rows: k.rows.into() });
        // A client connection that the recording sees close.
        let peer = self.lan_peer();
        let mut k = self.sock(python, Family::Inet, l4, 45_678, peer, 6379);
        k.acked = 5_000;
        k.est = true;
        k.received = 7_000;
        snaps.push(snapshot(&mut k, Established));
        k.rows.clear();
        k.data(&mut rng, false);
        k.local_close();
        scripts.push(Script { rows: k.rows.into() });
        (snaps, scripts)
    }
}

struct Args {
    events: u64,
    out: String,
    host: String,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut events = None;
    let mut out = None;
    let mut host = "synth".to_owned();
    let mut seed = 1u64;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value\n{USAGE}"));
        match a.as_str() {
            "--events" => {
                let v = value("--events")?;
                events = Some(v.parse().map_err(|_| format!("--events: {v:?} is not a number"))?);
            }
            "--out" => out = Some(value("--out")?),
            "--host" => host = value("--host")?,
            "--seed" => {
                let v = value("--seed")?;
                seed = v.parse().map_err(|_| format!("--seed: {v:?} is not a number"))?;
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(Args {
        events: events.ok_or_else(|| format!("--events is required\n{USAGE}"))?,
        out: out.ok_or_else(|| format!("--out is required\n{USAGE}"))?,
        host,
        seed,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("synth: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("synth: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let h = fnv(&args.host);
    let mono0 = 5_000_000_000_000 + (args.seed % 1000) as i64 * 1_000_000_000;
    let pid = |i: u32| 1000 + i * 111 + (h % 50) as u32 * 7;
    let comm_names = ["nginx", "postgres", "curl", "python3", "java", "sshd", "swapper/1"];
    let empty: Arc<str> = Arc::from("");
    let comms = Comms {
        names: comm_names.iter().map(|n| (*n, Arc::from(*n))).collect(),
        probes: EventKind::ALL
            .iter()
            .map(|k| (probe_of(*k), Arc::from(probe_of(*k))))
            .collect(),
        empty,
    };
    let proc_ = |i: u32, comm: &'static str| Proc {
        pid: pid(i),
        comm,
        cgroup_id: 7000 + u64::from(i),
    };
    let mut world = World {
        rng: Rng(args.seed ^ h),
        comms,
        next_cookie: 4096 + (args.seed % 1000) * 1_000_000,
        local4: Ipv4Addr::new(10, 0, 0, 10 + (h % 200) as u8),
        local6: Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 10 + (h % 200) as u16),
        nginx: proc_(1, "nginx"),
        postgres: proc_(2, "postgres"),
        curl: proc_(3, "curl"),
        python: proc_(4, "python3"),
        java: proc_(5, "java"),
        sshd: proc_(6, "sshd"),
    };

    let probes = EventKind::ALL
        .iter()
        .map(|k| ProbeStatus {
            kind: k.as_str().to_owned(),
            probe: probe_of(*k).to_owned(),
            attached: true,
            detail: String::new(),
            rung: 0,
            used: true,
        })
        .collect();
    let boot = h ^ args.seed.rotate_left(17);
    let (snaps, long_lived) = world.before();
    let meta = RecordingMeta {
        schema_version: deeptcp_format::SCHEMA_VERSION,
        host: args.host.clone(),
        kernel_release: "6.8.0-synthetic".into(),
        boot_id: format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            boot >> 32,
            (boot >> 16) & 0xffff,
            boot & 0xffff,
            args.seed & 0xffff,
            h & 0xffff_ffff_ffff
        ),
        clock: ClockAnchor {
            realtime_ns: BASE_REALTIME_NS + (args.seed % 8) as i64 * 10_000_000,
            monotonic_ns: mono0,
        },
        recorder_version: "synth".into(),
        probes,
        kstack: false,
        snapshot_sockets: snaps.len() as u64,
        ..Default::default()
    };
    let file = File::create(&args.out).map_err(|e| format!("cannot create {}: {e}", args.out))?;
    let mut w = EventWriter::new(file, &meta, WriterOptions::default()).map_err(|e| e.to_string())?;

    let mut written = 0u64;
    let mut mono = mono0 + 100_000;
    let mut emit = |w: &mut EventWriter, mut e: Event, mono: i64| -> Result<bool, String> {
        if written >= args.events {
            return Ok(false);
        }
        e.mono_ns = mono;
        w.push(&e).map_err(|e| e.to_string())?;
        written += 1;
        Ok(true)
    };
    for e in snaps {
        mono += 1_000;
        emit(&mut w, e, mono)?;
    }

    // At most this many sockets in flight.
    let concurrency = 6 + (args.events / 2_000).min(58) as usize;
    let mut active: Vec<Script> = long_lived;
    let mut next = 0usize;
    loop {
        while active.len() < concurrency {
            let s = CYCLE[next % CYCLE.len()];
            next += 1;
            active.push(world.script(s));
        }
        let i = (world.rng.next() % active.len() as u64) as usize;
        let Some((_, e)) = active[i].rows.pop_front() else {
            active.swap_remove(i);
            continue;
        };
        mono += world.rng.range(20_000, 2_000_000) as i64;
        let mut more = emit(&mut w, e, mono)?;
        while more && active[i].rows.front().is_some_and(|(glued, _)| *glued) {
            if let Some((_, e)) = active[i].rows.pop_front() {
                mono += world.rng.range(1_000, 8_000) as i64;
                more = emit(&mut w, e, mono)?;
            }
        }
        if !more {
            break;
        }
    }
    let summary = w.finish(0).map_err(|e| e.to_string())?;
    eprintln!(
        "synth: wrote {} events ({} bytes) to {}",
        summary.rows, summary.bytes, args.out
    );
    Ok(())
}
