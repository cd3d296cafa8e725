//! End-to-end tests of the `analyze` binary on recordings written with the
//! format crate's own writer into a temporary directory.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use deeptcp_format::testing;
use deeptcp_format::{
    stacks_path, Attribution, ClockAnchor, Event, EventKind, EventWriter, Family, ProbeStatus, RecordingMeta,
    StackWriter, TcpInfo, TcpState, WriterOptions,
};

const HEADER: &str = "EVENT_SOURCE            PID    COMM             SOURCE                DESTINATION           TCP_STATE                SOCK_ERR";
/// [`HEADER`] with SOURCE and DESTINATION 48 wide, for any IPv6 endpoint.
const WIDE_HEADER: &str = "EVENT_SOURCE            PID    COMM             SOURCE                                          DESTINATION                                     TCP_STATE                SOCK_ERR";
const START_MONO: i64 = 10_000_000_000;

fn meta(kstack: bool) -> RecordingMeta {
    RecordingMeta {
        schema_version: deeptcp_format::SCHEMA_VERSION,
        host: "testhost".into(),
        kernel_release: "6.8.0-test".into(),
        boot_id: "11111111-2222-3333-4444-555555555555".into(),
        clock: ClockAnchor {
            realtime_ns: 1_776_160_800_000_000_000, // 2026-04-14T10:00:00Z
            monotonic_ns: START_MONO,
        },
        recorder_version: "0.1.0-test".into(),
        probes: vec![
            ProbeStatus {
                kind: "state_change".into(),
                probe: "tp_btf:inet_sock_set_state".into(),
                attached: true,
                detail: String::new(),
                ..Default::default()
            },
            ProbeStatus {
                kind: "retransmit".into(),
                probe: "kprobe:tcp_retransmit_skb".into(),
                attached: false,
                detail: "kprobes not supported by this kernel".into(),
                ..Default::default()
            },
        ],
        kstack,
        ..Default::default()
    }
}

fn ev(kind: EventKind, after_start_ns: i64) -> Event {
    Event {
        mono_ns: START_MONO + after_start_ns,
        pid: 16065,
        tid: 16065,
        comm: "wget".into(),
        saddr: IpAddr::V4(Ipv4Addr::new(10, 0, 2, 15)),
        daddr: IpAddr::V4(Ipv4Addr::new(87, 250, 250, 242)),
        sport: 60590,
        dport: 443,
        newstate: Some(TcpState::Established),
        netns: 4026531840,
        ..testing::event(kind)
    }
}

fn transition(after_start_ns: i64, old: TcpState, new: TcpState) -> Event {
    Event {
        oldstate: Some(old),
        newstate: Some(new),
        ..ev(EventKind::StateChange, after_start_ns)
    }
}

/// A small recording covering every column's interesting cases.
fn sample_events() -> Vec<Event> {
    let mut connect = transition(500_000_000, TcpState::Close, TcpState::SynSent);
    connect.sport = 0;
    connect.stack_id = Some(1);
    let mut established = transition(750_000_000, TcpState::SynSent, TcpState::Established);
    established.pid = 0;
    established.comm = "swapper/0".into();
    established.stack_id = Some(2);
    let mut v6 = transition(1_000_000_000, TcpState::Close, TcpState::SynSent);
    v6.family = Family::Inet6;
    v6.saddr = "2001:db8::1".parse().unwrap();
    v6.daddr = "2001:db8:ffff:ffff:ffff:ffff:ffff:1".parse().unwrap();
    v6.sport = 40000;
    v6.dport = 8443;
    let mut refused = ev(EventKind::SockError, 1_250_000_000);
    refused.sk_err = 111;
    refused.newstate = Some(TcpState::SynSent);
    let mut early = ev(EventKind::Retransmit, -2_000_000);
    early.stack_id = Some(1);
    vec![connect, established, v6, refused, early]
}

fn write_recording(dir: &Path, name: &str, meta: &RecordingMeta, events: &[Event], lost: u64) -> PathBuf {
    let path = dir.join(name);
    let file = File::create(&path).unwrap();
    let mut w = EventWriter::new(file, meta, WriterOptions::default()).unwrap();
    for e in events {
        w.push(e).unwrap();
    }
    w.finish(lost).unwrap();
    path
}

fn write_stacks(recording: &Path, stacks: &[(i64, &[&str])]) {
    let file = File::create(stacks_path(recording)).unwrap();
    let mut w = StackWriter::new(file).unwrap();
    for (id, frames) in stacks {
        let frames: Vec<String> = frames.iter().map(|s| s.to_string()).collect();
        w.push(*id, &frames).unwrap();
    }
    w.finish().unwrap();
}

fn analyze(args: &[&str], file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_analyze"))
        .args(args)
        .arg(file)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[track_caller]
fn assert_ok(o: &Output) {
    assert!(o.status.success(), "status {:?}\nstderr: {}", o.status, stderr(o));
}

/// One `analyze: ` line on stderr, exit status 1, nothing on stdout, no panic.
#[track_caller]
fn assert_clean_error(o: &Output, needle: &str) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(err.starts_with("analyze: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(needle), "wanted {needle:?} in {err}");
    assert!(o.stdout.is_empty(), "stdout: {}", stdout(o));
    err
}

fn sample(dir: &Path, kstack: bool) -> PathBuf {
    write_recording(dir, "cap.parquet", &meta(kstack), &sample_events(), 0)
}

/// The sample in time order: the retransmit stored last happened first (a
/// recording this small fits in the reorder buffer whole). Its long IPv6
/// endpoint makes the address columns wide ([`WIDE_HEADER`]).
const TABLE_BODY: &str = "\
tcp_retransmit_skb()    16065  wget             10.0.2.15:60590                                 87.250.250.242:443                              ESTABLISHED
tcp_set_state()         16065  wget             10.0.2.15:0                                     87.250.250.242:443                              CLOSE -> SYN_SENT
tcp_set_state()         N/A    N/A              10.0.2.15:60590                                 87.250.250.242:443                              SYN_SENT -> ESTABLISHED
tcp_set_state()         16065  wget             [2001:db8::1]:40000                             [2001:db8:ffff:ffff:ffff:ffff:ffff:1]:8443      CLOSE -> SYN_SENT
sock_def_error_report() 16065  wget             10.0.2.15:60590                                 87.250.250.242:443                              SYN_SENT                 ECONNREFUSED
";

#[test]
fn table() {
    let dir = tempfile::tempdir().unwrap();
    let o = analyze(&[], &sample(dir.path(), false));
    assert_ok(&o);
    assert_eq!(stdout(&o), format!("{WIDE_HEADER}\n{TABLE_BODY}"));
    assert_eq!(stderr(&o), "");
}

#[test]
fn seconds_since_start() {
    let dir = tempfile::tempdir().unwrap();
    let o = analyze(&["--seconds"], &sample(dir.path(), false));
    assert_ok(&o);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("TIME(s)     {WIDE_HEADER}"));
    let times: Vec<&str> = lines[1..].iter().map(|l| &l[..12]).collect();
    assert_eq!(
        times,
        [
            "-0.002000   ",
            "0.500000    ",
            "0.750000    ",
            "1.000000    ",
            "1.250000    "
        ]
    );
    // The rest of each line is the plain table.
    let rest: String = lines[1..].iter().map(|l| format!("{}\n", &l[12..])).collect();
    assert_eq!(rest, TABLE_BODY);
}

/// `-t` is the seed's wall-clock `TIME`: local time of day, in the zone TZ names.
#[test]
fn timestamps_are_local_wall_clock_time() {
    let dir = tempfile::tempdir().unwrap();
    let rec = sample(dir.path(), false);
    let run = |tz: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_analyze"))
            .env("TZ", tz)
            .arg("-t")
            .arg(&rec)
            .output()
            .unwrap();
        assert_ok(&o);
        stdout(&o)
    };
    // The recording starts at 2026-04-14T10:00:00Z.
    let out = run("UTC");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("TIME          {WIDE_HEADER}"));
    let times: Vec<&str> = lines[1..].iter().map(|l| &l[..14]).collect();
    assert_eq!(
        times,
        [
            "09:59:59.998  ",
            "10:00:00.500  ",
            "10:00:00.750  ",
            "10:00:01.000  ",
            "10:00:01.250  "
        ]
    );
    let rest: String = lines[1..].iter().map(|l| format!("{}\n", &l[14..])).collect();
    assert_eq!(rest, TABLE_BODY);
    // Another zone: the same instants, its local times.
    let out = run("Asia/Kolkata");
    assert!(
        out.lines().nth(2).unwrap().starts_with("15:30:00.500  tcp_set_state()"),
        "{out}"
    );
}

/// `-N` filters and, as in the seed, adds the NETNS column after SOCK_ERR.
#[test]
fn netns_filter_adds_the_netns_column() {
    let dir = tempfile::tempdir().unwrap();
    let o = analyze(&["-N", "4026531840"], &sample(dir.path(), false));
    assert_ok(&o);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("{WIDE_HEADER}        NETNS"));
    assert_eq!(lines.len(), 6);
    assert!(
        lines[5].ends_with("SYN_SENT                 ECONNREFUSED    4026531840"),
        "{}",
        lines[5]
    );
    assert!(
        lines[1].ends_with(&format!("ESTABLISHED{}4026531840", " ".repeat(25 - 11 + 16))),
        "{}",
        lines[1]
    );
    // NETNS under its heading on every line, whatever SOCK_ERR holds.
    let netns = lines[0].find("NETNS").unwrap();
    for l in &lines[1..] {
        assert_eq!(l.find("4026531840"), Some(netns), "{l}");
    }
    let o = analyze(&["-N", "4026531841"], &sample(dir.path(), false));
    assert_ok(&o);
    assert_eq!(stdout(&o), format!("{WIDE_HEADER}        NETNS\n"));
}

#[test]
fn kstack_prints_frames_from_the_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let rec = sample(dir.path(), true);
    write_stacks(
        &rec,
        &[
            (1, &["tcp_set_state+0x5", "tcp_v4_connect+0x3f2", "__sys_connect+0xd3"]),
            (2, &["tcp_rcv_state_process+0x1b0"]),
        ],
    );
    let o = analyze(&["-K"], &rec);
    assert_ok(&o);
    assert_eq!(stderr(&o), "");
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], WIDE_HEADER);
    assert!(lines[1].starts_with("tcp_retransmit_skb()"));
    assert_eq!(lines[2], "\ttcp_set_state+0x5");
    assert!(lines[5].starts_with("tcp_set_state()         16065"));
    assert_eq!(
        lines[6..9],
        ["\ttcp_set_state+0x5", "\ttcp_v4_connect+0x3f2", "\t__sys_connect+0xd3"]
    );
    assert!(lines[9].starts_with("tcp_set_state()         N/A"));
    assert_eq!(lines[10], "\ttcp_rcv_state_process+0x1b0");
    assert!(lines[11].starts_with("tcp_set_state()         16065  wget             [2001"));
    assert!(lines[12].starts_with("sock_def_error_report()"));
    assert_eq!(lines.len(), 13);

    // --seconds and -K together.
    let o = analyze(&["--seconds", "-K"], &rec);
    assert_ok(&o);
    let out = stdout(&o);
    assert!(out.starts_with(&format!("TIME(s)     {WIDE_HEADER}\n-0.002000   tcp_retransmit_skb()")));
    assert!(out.contains("CLOSE -> SYN_SENT\n\ttcp_set_state+0x5\n"));
}

#[test]
fn kstack_on_a_recording_without_stacks_warns_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut events = sample_events();
    for e in &mut events {
        e.stack_id = None;
    }
    let rec = write_recording(dir.path(), "plain.parquet", &meta(false), &events, 0);
    let o = analyze(&["-K"], &rec);
    assert_ok(&o);
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("analyze: warning: "), "{err}");
    assert!(err.contains("without -K"), "{err}");
    assert_eq!(stdout(&o), stdout(&analyze(&[], &rec)));
}

#[test]
fn kstack_with_a_missing_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let rec = sample(dir.path(), true);
    let o = analyze(&["-K"], &rec);
    let err = assert_clean_error(&o, "cap.stacks.parquet");
    assert!(err.contains("missing"), "{err}");

    // Not an error when no event refers to a stack.
    let mut events = sample_events();
    for e in &mut events {
        e.stack_id = None;
    }
    let rec = write_recording(dir.path(), "nostacks.parquet", &meta(true), &events, 0);
    let o = analyze(&["-K"], &rec);
    assert_ok(&o);
    assert_eq!(stdout(&o), stdout(&analyze(&[], &rec)));
}

#[test]
fn kstack_with_a_corrupt_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let rec = sample(dir.path(), true);
    std::fs::write(stacks_path(&rec), b"not parquet at all").unwrap();
    let o = analyze(&["-K"], &rec);
    assert_clean_error(&o, "cap.stacks.parquet");
    // Without -K the sidecar is not looked at.
    assert_ok(&analyze(&[], &rec));
}

#[test]
fn info() {
    let dir = tempfile::tempdir().unwrap();
    let rec = write_recording(dir.path(), "cap.parquet", &meta(true), &sample_events(), 7);
    let o = analyze(&["--info"], &rec);
    assert_ok(&o);
    let want = format!(
        "\
schema version:   {}
host:             testhost
kernel:           6.8.0-test
boot id:          11111111-2222-3333-4444-555555555555
start time:       2026-04-14T10:00:00.000000000Z
recorder version: 0.1.0-test
kernel stacks:    recorded (-K), 3 events with a stack
first event:      2026-04-14T09:59:59.998000000Z (-0.002000 s after start)
last event:       2026-04-14T10:00:01.250000000Z (+1.250000 s after start)
duration:         1.252000 s (first to last event)
events:           5
lost events:      7 (the ring buffer overflowed: the recording is incomplete)
snapshot sockets: 0
events by kind:
  state_change      3
  retransmit        1
  reset_recv        0
  reset_sent        0
  sock_error        1
  destroy_sock      0
  fin_recv          0
  fin_sent          0
  zero_window_recv  0
  zero_window_sent  0
  connect           0
  accept            0
  loss_probe        0
  retransmit_synack 0
  snapshot          0
probes:           1 attached, 1 failed
  state_change    tp_btf:inet_sock_set_state attached
  retransmit      kprobe:tcp_retransmit_skb  FAILED: kprobes not supported by this kernel
",
        deeptcp_format::SCHEMA_VERSION
    );
    assert_eq!(stdout(&o), want);
}

#[test]
fn empty_recording() {
    let dir = tempfile::tempdir().unwrap();
    let rec = write_recording(dir.path(), "empty.parquet", &meta(false), &[], 0);
    let o = analyze(&[], &rec);
    assert_ok(&o);
    assert_eq!(stdout(&o), format!("{HEADER}\n"));
    let o = analyze(&["--info"], &rec);
    assert_ok(&o);
    assert!(stdout(&o).contains("duration:         n/a (no events)\nevents:           0\n"));
}

#[test]
fn lost_events_are_reported_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let rec = write_recording(dir.path(), "lossy.parquet", &meta(false), &sample_events(), 3);
    let o = analyze(&[], &rec);
    assert_ok(&o);
    assert_eq!(stdout(&o), format!("{WIDE_HEADER}\n{TABLE_BODY}"));
    let err = stderr(&o);
    assert!(err.starts_with("analyze: warning: the recorder lost 3 events"), "{err}");
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let o = analyze(&[], &dir.path().join("nope.parquet"));
    assert_clean_error(&o, "nope.parquet");
}

#[test]
fn not_a_parquet_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.parquet");
    std::fs::write(&path, b"this is not a parquet file, just some text\n").unwrap();
    assert_clean_error(&analyze(&[], &path), "junk.parquet");
    let empty = dir.path().join("empty.parquet");
    std::fs::write(&empty, b"").unwrap();
    assert_clean_error(&analyze(&["--info"], &empty), "empty.parquet");
}

#[test]
fn directory_without_recordings() {
    let dir = tempfile::tempdir().unwrap();
    let o = analyze(&[], dir.path());
    assert_clean_error(&o, "is a directory without recordings");
    let o = analyze(&[], &dir.path().join("*.parquet"));
    assert_clean_error(&o, "no recording matches");
}

#[test]
fn usage_errors_exit_2() {
    let bin = env!("CARGO_BIN_EXE_analyze");
    let o = Command::new(bin).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = Command::new(bin).args(["--info", "-t", "x.parquet"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--info"));
    let o = Command::new(bin).arg("x.stacks.parquet").output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("x.parquet"));
}

#[test]
fn help() {
    let o = Command::new(env!("CARGO_BIN_EXE_analyze"))
        .arg("--help")
        .output()
        .unwrap();
    assert_ok(&o);
    let out = stdout(&o);
    for needle in [
        "Usage: analyze [OPTIONS] <INPUT>...",
        "--conn",
        "--json",
        "--sort",
        "--top",
        "--since",
        "--timestamp",
        "--kstack",
        "--info",
        "--stats",
        "--by <KEY>",
        "Examples:",
    ] {
        assert!(out.contains(needle), "{needle} in {out}");
    }
}

/// `analyze big.parquet | head -1`: the reader goes away early; analyze must
/// stop quietly with status 0.
#[test]
fn broken_pipe_exits_quietly() {
    let dir = tempfile::tempdir().unwrap();
    // Enough output (~12 MB) to fill any pipe buffer many times over.
    let events: Vec<Event> = (0..100_000)
        .map(|i| transition(i * 1_000, TcpState::SynSent, TcpState::Established))
        .collect();
    let rec = write_recording(dir.path(), "big.parquet", &meta(false), &events, 0);

    let mut child = Command::new(env!("CARGO_BIN_EXE_analyze"))
        .arg(&rec)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    {
        let mut out = BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut first).unwrap();
        // `out` is dropped here: the read end of the pipe closes.
    }
    assert_eq!(first.trim_end(), HEADER);
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "status {status:?}, stderr: {err}");
    assert_eq!(err, "");
}

// ---- schema v2: JSON, connections, several inputs, filters, back-fill ----

use serde::Deserialize;

/// An event line of `--json`, as a consumer would declare it.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct JsonEvent {
    host: String,
    ts: String,
    mono_ns: i64,
    kind: String,
    pid: u32,
    tid: u32,
    comm: String,
    family: String,
    saddr: IpAddr,
    daddr: IpAddr,
    sport: u16,
    dport: u16,
    oldstate: Option<String>,
    newstate: Option<String>,
    sk_err: i32,
    netns: u32,
    stack_id: Option<i64>,
    probe: String,
    cookie: u64,
    cgroup_id: u64,
    attribution: String,
    snd_wnd: Option<u32>,
    rcv_wnd: Option<u32>,
    srtt_us: Option<u32>,
    snd_cwnd: Option<u32>,
    bytes_acked: Option<u64>,
    bytes_received: Option<u64>,
    window: Option<u32>,
}

/// A connection line of `--conn --json`.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct JsonConn {
    host: String,
    start_ts: String,
    start_mono_ns: i64,
    end_ts: Option<String>,
    end_mono_ns: Option<i64>,
    duration_ns: i64,
    still_open: bool,
    opened_before_recording: bool,
    close_reason: String,
    pid: u32,
    tid: u32,
    comm: String,
    attribution: String,
    cookie: u64,
    cgroup_id: u64,
    netns: u32,
    family: String,
    saddr: IpAddr,
    sport: u16,
    daddr: IpAddr,
    dport: u16,
    state_path: Vec<String>,
    state_path_elided: u32,
    events: u64,
    retransmits: u32,
    resets: u32,
    zero_windows: u32,
    errors: u32,
    zero_window_stalls: u32,
    zero_window_stall_ns: i64,
    bytes_acked: Option<u64>,
    bytes_received: Option<u64>,
    srtt_us: Option<u32>,
    srtt_min_us: Option<u32>,
    srtt_max_us: Option<u32>,
    cwnd: Option<u32>,
    handshake_ns: Option<i64>,
    state_path_ns: Vec<Option<i64>>,
    time_in_state_ns: serde_json::Map<String, serde_json::Value>,
}

fn lines<T: for<'de> Deserialize<'de>>(o: &Output) -> Vec<T> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn meta_for(host: &str, realtime_ns: i64) -> RecordingMeta {
    let mut m = meta(false);
    m.host = host.into();
    m.boot_id = format!("boot-{host}");
    m.clock.realtime_ns = realtime_ns;
    m
}

/// One v2 socket: connect at port 0, established, a retransmit by a timer
/// (pid 0), our FIN, close, destroy. `t` is ms after the recording start.
fn v2_conn(cookie: u64, t: i64, pid: u32, comm: &str, dport: u16) -> Vec<Event> {
    let ms = 1_000_000;
    let mut v = Vec::new();
    let mut push = |dt: i64, kind: EventKind, old: Option<TcpState>, new: TcpState, by: Attribution| {
        let mut e = ev(kind, (t + dt) * ms);
        e.cookie = cookie;
        e.oldstate = old;
        e.newstate = Some(new);
        e.dport = dport;
        e.comm = comm.into();
        e.pid = if by == Attribution::Unknown { 0 } else { pid };
        e.tid = e.pid;
        e.attribution = by;
        e.probe = "tp_btf:inet_sock_set_state".into();
        v.push(e);
    };
    use Attribution::{Owner, Task, Unknown};
    use TcpState::*;
    push(0, EventKind::StateChange, Some(Close), SynSent, Task);
    push(1, EventKind::StateChange, Some(SynSent), Established, Owner);
    push(2, EventKind::Retransmit, None, Established, Unknown);
    push(3, EventKind::StateChange, Some(Established), FinWait1, Task);
    push(4, EventKind::StateChange, Some(FinWait1), FinWait2, Owner);
    push(5, EventKind::StateChange, Some(FinWait2), Close, Unknown);
    push(6, EventKind::DestroySock, None, Close, Unknown);
    v[0].sport = 0;
    v[2].tcp = TcpInfo {
        srtt_us: Some(1500),
        bytes_acked: Some(100),
        bytes_received: Some(2000),
        ..Default::default()
    };
    v
}

const T0: i64 = 1_776_160_800_000_000_000; // 2026-04-14T10:00:00Z

/// Two hosts whose recordings overlap in time.
fn two_hosts(dir: &Path) -> (PathBuf, PathBuf) {
    let mut a = v2_conn(1, 100, 500, "curl", 443);
    a.extend(v2_conn(2, 300, 501, "wget", 80));
    let a = write_recording(dir, "a.parquet", &meta_for("alpha", T0), &a, 0);
    // beta started 150 ms after alpha.
    let b = write_recording(
        dir,
        "b.parquet",
        &meta_for("beta", T0 + 150_000_000),
        &v2_conn(1, 0, 600, "java", 8080),
        0,
    );
    (a, b)
}

fn analyze_many(args: &[&str], files: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_analyze"))
        .args(args)
        .args(files)
        .output()
        .unwrap()
}

#[test]
fn json_events_round_trip_with_backfill() {
    let dir = tempfile::tempdir().unwrap();
    let rec = write_recording(
        dir.path(),
        "v2.parquet",
        &meta_for("alpha", T0),
        &v2_conn(7, 10, 42, "curl", 443),
        0,
    );
    let o = analyze(&["--json"], &rec);
    assert_ok(&o);
    let rows: Vec<JsonEvent> = lines(&o);
    assert_eq!(rows.len(), 7);
    let r = &rows[0];
    assert_eq!(r.ts, "2026-04-14T10:00:00.010000000Z");
    assert_eq!(r.mono_ns, START_MONO + 10_000_000);
    assert_eq!((r.host.as_str(), r.kind.as_str()), ("alpha", "state_change"));
    assert_eq!(
        (r.oldstate.as_deref(), r.newstate.as_deref()),
        (Some("CLOSE"), Some("SYN_SENT"))
    );
    assert_eq!((r.sport, r.dport, r.cookie), (0, 443, 7));
    assert_eq!(r.saddr, "10.0.2.15".parse::<IpAddr>().unwrap());
    assert_eq!(r.attribution, "task");
    assert_eq!(r.probe, "tp_btf:inet_sock_set_state");
    assert_eq!(r.stack_id, None);
    // The timer's retransmit had no owner: back-filled from the connect.
    let r = &rows[2];
    assert_eq!(
        (r.kind.as_str(), r.pid, r.comm.as_str(), r.attribution.as_str()),
        ("retransmit", 42, "curl", "backfill")
    );
    assert_eq!((r.srtt_us, r.bytes_acked, r.window), (Some(1500), Some(100), None));
    assert!(rows[5..].iter().all(|r| r.pid == 42 && r.attribution == "backfill"));
    // The table back-fills too: no N/A left.
    let o = analyze(&[], &rec);
    assert!(!stdout(&o).contains("N/A"), "{}", stdout(&o));
}

#[test]
fn conn_table_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut events = v2_conn(7, 10, 42, "curl", 443);
    // A second socket still open at the end.
    events.extend(v2_conn(8, 20, 43, "wget", 80).into_iter().take(3));
    let rec = write_recording(dir.path(), "v2.parquet", &meta_for("alpha", T0), &events, 0);
    let o = analyze(&["--conn"], &rec);
    assert_ok(&o);
    let out = stdout(&o);
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l.len(), 3, "{out}");
    assert!(
        l[0].starts_with("START(s)    END(s)      DURATION(s) PID    COMM"),
        "{}",
        l[0]
    );
    assert!(
        l[0].ends_with(&format!("REASON{}STATE_PATH", " ".repeat(50))),
        "{}",
        l[0]
    );
    assert!(
        l[1].starts_with("0.010000    0.015000    0.005000    42     curl             10.0.2.15:60590       87.250.250.242:443    4026531840  1       0   0    0   100        2000       1.000    1.500    1.500    1.500    -     local close"),
        "{}",
        l[1]
    );
    assert!(
        l[1].ends_with(
            "CLOSE -> SYN_SENT (1.0ms) -> ESTABLISHED (2.0ms) -> FIN_WAIT1 (1.0ms) -> FIN_WAIT2 (1.0ms) -> CLOSE"
        ),
        "{}",
        l[1]
    );
    assert!(
        l[2].starts_with("0.020000    -           0.002000    43     wget"),
        "{}",
        l[2]
    );
    assert!(l[2].contains("still open at end of recording"), "{}", l[2]);

    let o = analyze(&["--conn", "--json"], &rec);
    assert_ok(&o);
    let c: Vec<JsonConn> = lines(&o);
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].close_reason, "local close");
    assert_eq!(
        c[0].state_path,
        ["CLOSE", "SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "CLOSE"]
    );
    assert_eq!(
        (c[0].pid, c[0].comm.as_str(), c[0].attribution.as_str()),
        (42, "curl", "task")
    );
    assert_eq!(c[0].start_ts, "2026-04-14T10:00:00.010000000Z");
    assert_eq!(c[0].end_ts.as_deref(), Some("2026-04-14T10:00:00.015000000Z"));
    assert_eq!((c[0].duration_ns, c[0].events, c[0].retransmits), (5_000_000, 7, 1));
    assert_eq!((c[0].sport, c[0].cookie, c[0].srtt_us), (60590, 7, Some(1500)));
    assert!(!c[0].still_open && !c[0].opened_before_recording);
    assert!(c[1].still_open && c[1].end_ts.is_none() && c[1].end_mono_ns.is_none());
    assert_eq!(c[1].close_reason, "still open at end of recording");
    assert_eq!(c[1].duration_ns, 2_000_000, "up to the end of the recording");
    assert_eq!((c[0].handshake_ns, c[0].cwnd), (Some(1_000_000), None));
    assert_eq!((c[0].srtt_min_us, c[0].srtt_max_us), (Some(1500), Some(1500)));
    let ms = Some(1_000_000);
    assert_eq!(c[0].state_path_ns, [None, ms, Some(2_000_000), ms, ms, None]);
    assert_eq!(c[0].time_in_state_ns.len(), 4);
    // In the order first entered (the map above sorts its keys).
    assert!(
        stdout(&o).contains(
            r#""time_in_state_ns":{"SYN_SENT":1000000,"ESTABLISHED":2000000,"FIN_WAIT1":1000000,"FIN_WAIT2":1000000}"#
        ),
        "{}",
        stdout(&o)
    );
    // Still open: ESTABLISHED (entered at +1 ms) runs to the end of the recording (+2 ms).
    assert_eq!(c[1].state_path_ns, [None, ms, ms]);
}

/// A `--stats --json` group line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonGroup {
    by: Option<String>,
    group: serde_json::Value,
    connections: u64,
    still_open: u64,
    failed: u64,
    failures: serde_json::Map<String, serde_json::Value>,
    retransmits: u64,
    retransmits_per_conn: f64,
    zero_window_stalls: u64,
    zero_window_stall_ns: i64,
    handshake_ns: Option<JsonSummary>,
    srtt_us: Option<JsonSummary>,
    duration_ns: Option<JsonSummary>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct JsonSummary {
    count: u64,
    p50: u64,
    p90: u64,
    p99: u64,
    max: u64,
}

#[test]
fn stats_count_connections_failures_and_latencies_per_group() {
    let dir = tempfile::tempdir().unwrap();
    // Port 443: three closed connections (handshakes 1 ms; durations 5 ms;
    // one retransmit each), one refused; port 80: one still open.
    let mut events = Vec::new();
    for (i, cookie) in [7u64, 8, 9].into_iter().enumerate() {
        events.extend(v2_conn(cookie, 10 * i as i64, 42, "curl", 443));
    }
    let mut refused = v2_conn(10, 40, 42, "curl", 443);
    refused.truncate(1); // CLOSE -> SYN_SENT
    let mut rst = refused[0].clone();
    rst.kind = EventKind::ResetRecv;
    rst.oldstate = None;
    rst.mono_ns += 1_000_000;
    let mut close = refused[0].clone();
    (close.oldstate, close.newstate) = (Some(TcpState::SynSent), Some(TcpState::Close));
    close.mono_ns += 2_000_000;
    refused.extend([rst, close]);
    events.extend(refused);
    events.extend(v2_conn(11, 50, 43, "wget", 80).into_iter().take(2));
    let rec = write_recording(dir.path(), "s.parquet", &meta_for("h", T0), &events, 0);

    let o = analyze(&["--stats", "--by", "dport", "--json"], &rec);
    assert_ok(&o);
    let g: Vec<JsonGroup> = lines(&o);
    assert_eq!(g.len(), 2, "{}", stdout(&o));
    let (a, b) = (&g[0], &g[1]);
    assert_eq!(
        (a.by.as_deref(), a.group.as_u64()),
        (Some("dport"), Some(443)),
        "most connections first"
    );
    assert_eq!((a.connections, a.still_open, a.failed), (4, 0, 1));
    assert_eq!(a.failures["refused"], 1);
    assert_eq!(
        (
            a.failures["timeout"].as_u64(),
            a.failures["reset"].as_u64(),
            a.failures["error"].as_u64()
        ),
        (Some(0), Some(0), Some(0))
    );
    assert_eq!((a.retransmits, a.retransmits_per_conn), (3, 0.75));
    assert_eq!((a.zero_window_stalls, a.zero_window_stall_ns), (0, 0));
    let ms = 1_000_000;
    let same = |count, v| JsonSummary {
        count,
        p50: v,
        p90: v,
        p99: v,
        max: v,
    };
    assert_eq!(
        a.handshake_ns,
        Some(same(3, ms)),
        "the refused connect has no handshake"
    );
    assert_eq!(a.srtt_us, Some(same(3, 1500)));
    assert_eq!(
        a.duration_ns.as_ref().map(|d| (d.count, d.p50, d.max)),
        Some((4, 5 * ms, 5 * ms))
    );
    assert_eq!(
        (b.group.as_u64(), b.connections, b.still_open, b.failed),
        (Some(80), 1, 1, 0)
    );
    assert!(b.duration_ns.is_none(), "a still-open connection has no duration yet");

    // The table: the same numbers; filters select connections.
    let o = analyze(&["--stats", "-D", "80"], &rec);
    assert_ok(&o);
    let out = stdout(&o);
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l.len(), 2, "{out}");
    assert!(l[0].starts_with("CONNS   OPEN    FAILED"), "{out}");
    assert!(l[1].starts_with("1       1       0 "), "{out}");
}

#[test]
fn conn_sort_and_top() {
    let dir = tempfile::tempdir().unwrap();
    let mut events = Vec::new();
    for (i, n_retrans) in [0usize, 3, 1].iter().enumerate() {
        let mut c = v2_conn(10 + i as u64, 10 * i as i64, 100 + i as u32, "x", 443);
        let r = c[2].clone();
        for _ in 1..*n_retrans {
            c.insert(2, r.clone());
        }
        if *n_retrans == 0 {
            c.remove(2);
        }
        events.extend(c);
    }
    let rec = write_recording(dir.path(), "s.parquet", &meta_for("h", T0), &events, 0);
    let cookies = |args: &[&str]| -> Vec<u64> {
        let mut a = vec!["--conn", "--json"];
        a.extend(args);
        let o = analyze(&a, &rec);
        assert_ok(&o);
        lines::<JsonConn>(&o).iter().map(|c| c.cookie).collect()
    };
    assert_eq!(cookies(&["--sort", "retrans"]), [11, 12, 10]);
    assert_eq!(cookies(&["--sort", "retrans", "--top", "2"]), [11, 12]);
    assert_eq!(cookies(&["--sort", "start"]), [10, 11, 12]);
    // --top alone sorts by duration; equal durations go by start.
    assert_eq!(cookies(&["--top", "1"]), [10]);
    assert_eq!(cookies(&["--sort", "duration"]), [10, 11, 12]);
}

#[test]
fn several_hosts_merge_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_hosts(dir.path());
    let o = analyze_many(&["--json"], &[&a, &b]);
    assert_ok(&o);
    let rows: Vec<JsonEvent> = lines(&o);
    assert_eq!(rows.len(), 21);
    let ts: Vec<&str> = rows.iter().map(|r| r.ts.as_str()).collect();
    let mut sorted = ts.clone();
    sorted.sort();
    assert_eq!(ts, sorted, "merged by wall-clock time");
    // beta's connection (150 ms after alpha's start) comes between alpha's two.
    let hosts: String = rows.iter().map(|r| if r.host == "alpha" { 'a' } else { 'b' }).collect();
    assert_eq!(hosts, "aaaaaaabbbbbbbaaaaaaa");
    // Cookies are per host: beta's cookie 1 is not alpha's.
    let o = analyze_many(&["--conn", "--json"], &[&a, &b]);
    let c: Vec<JsonConn> = lines(&o);
    assert_eq!(c.len(), 3);
    let who: Vec<(&str, u64, &str)> = c.iter().map(|c| (c.host.as_str(), c.cookie, c.comm.as_str())).collect();
    assert_eq!(who, [("alpha", 1, "curl"), ("beta", 1, "java"), ("alpha", 2, "wget")]);

    // The table gets a HOST column and times from the earliest start.
    let o = analyze_many(&["--seconds"], &[&b, &a]);
    assert_ok(&o);
    let out = stdout(&o);
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], format!("HOST   TIME(s)     {HEADER}"));
    assert!(
        l[1].starts_with("alpha  0.100000    tcp_set_state()         500    curl"),
        "{}",
        l[1]
    );
    assert!(
        l[8].starts_with("beta   0.150000    tcp_set_state()         600    java"),
        "{}",
        l[8]
    );
    let o = analyze_many(&["--conn"], &[&a, &b]);
    assert!(stdout(&o).starts_with("HOST   START(s)"), "{}", stdout(&o));

    // A directory and a glob read the same files.
    let o = analyze(&["--json"], dir.path());
    assert_eq!(lines::<JsonEvent>(&o).len(), 21);
    let o = analyze(&["--json"], &dir.path().join("[ab].parquet"));
    assert_eq!(lines::<JsonEvent>(&o).len(), 21);
}

#[test]
fn filters_select_events_and_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_hosts(dir.path());
    let count = |args: &[&str]| -> usize {
        let mut v = vec!["--json"];
        v.extend(args);
        let o = analyze_many(&v, &[&a, &b]);
        assert_ok(&o);
        lines::<JsonEvent>(&o).len()
    };
    assert_eq!(count(&[]), 21);
    // -p matches back-filled rows too.
    assert_eq!(count(&["-p", "500"]), 7);
    assert_eq!(count(&["-p", "500", "-p", "600"]), 14);
    assert_eq!(count(&["--comm", "wget"]), 7);
    assert_eq!(count(&["-D", "443", "--comm", "wget"]), 0, "AND across options");
    assert_eq!(count(&["--port", "8080"]), 7);
    assert_eq!(count(&["-S", "0"]), 3, "the connects, before their port");
    assert_eq!(count(&["-d", "87.250.250.0/24"]), 21);
    assert_eq!(count(&["-d", "::/0"]), 0, "an IPv6 network never matches IPv4");
    assert_eq!(count(&["-s", "10.0.2.15"]), 21);
    assert_eq!(count(&["--kind", "retransmit,destroy_sock"]), 6);
    assert_eq!(count(&["-N", "4026531840"]), 21);
    assert_eq!(count(&["-N", "net:[1]"]), 0);
    // Relative times are per recording; beta started 150 ms after alpha.
    assert_eq!(count(&["--since", "+300ms"]), 7);
    assert_eq!(
        count(&["--until", "+2ms"]),
        2,
        "alpha has nothing before 100 ms; beta's rows at 0 and 1 ms"
    );
    assert_eq!(count(&["--since", "2026-04-14T10:00:00.300Z"]), 7);
    assert_eq!(
        count(&[
            "--since",
            "2026-04-14T10:00:00.150Z",
            "--until",
            "2026-04-14T10:00:00.153Z"
        ]),
        3
    );

    let conns = |args: &[&str]| -> Vec<String> {
        let mut v = vec!["--conn", "--json"];
        v.extend(args);
        let o = analyze_many(&v, &[&a, &b]);
        assert_ok(&o);
        lines::<JsonConn>(&o).iter().map(|c| c.comm.clone()).collect()
    };
    assert_eq!(conns(&[]), ["curl", "java", "wget"]);
    // A connection is listed when one of its events matches...
    assert_eq!(conns(&["--since", "+305ms"]), ["wget"]);
    assert_eq!(
        conns(&["--kind", "retransmit", "-p", "600"]),
        ["java"],
        "the owner-less retransmit, by its owner"
    );
    assert_eq!(conns(&["-S", "0", "--comm", "curl"]), ["curl"]);
    assert_eq!(conns(&["-D", "80"]), ["wget"]);
}

/// `--since`/`--until` as DuckDB prints timestamps, and as times of day.
#[test]
fn dates_and_times_of_day_as_people_type_them() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_hosts(dir.path());
    let count = |args: &[&str]| -> usize {
        let mut v = vec!["--json"];
        v.extend(args);
        let o = analyze_many(&v, &[&a, &b]);
        assert_ok(&o);
        lines::<JsonEvent>(&o).len()
    };
    // The same windows as the RFC 3339 ones of filters_select_events_and_connections.
    assert_eq!(count(&["--since", "2026-04-14 10:00:00.300"]), 7);
    assert_eq!(count(&["--since", "2026-04-14 10:00:00.300000"]), 7);
    assert_eq!(count(&["--since", "2026-04-14 12:00:00.3+02"]), 7);
    assert_eq!(
        count(&[
            "--since",
            "2026-04-14 10:00:00.150",
            "--until",
            "2026-04-14 10:00:00.153"
        ]),
        3
    );
    // Times of day: on the date the recordings started (UTC).
    assert_eq!(count(&["--since", "10:00:00.3"]), 7);
    assert_eq!(count(&["--since", "10:00:00.150", "--until", "10:00:00.153"]), 3);
    assert_eq!(
        count(&["--since", "12:00:00.150+02:00", "--until", "12:00:00.153+02:00"]),
        3
    );
    assert_eq!(count(&["--since", "09:00"]), 21);
    assert_eq!(count(&["--until", "10:00"]), 0);
    // A bare relative number is seconds.
    assert_eq!(count(&["--since", "+0.3"]), 7);
    assert_eq!(count(&["--since", "+0.3s"]), 7);
}

/// A time of day is on the UTC date on which the earliest recording started,
/// even when that is before the start and the recordings go on past midnight.
#[test]
fn a_time_of_day_is_on_the_first_recordings_date() {
    let dir = tempfile::tempdir().unwrap();
    let ms = 1_000_000;
    // alpha starts at 2026-04-14 23:59:59.900: one connection before
    // midnight, one 200 ms after its start (after midnight).
    let alpha_start = T0 + 14 * 3_600_000 * ms - 100 * ms;
    let mut events = v2_conn(1, 0, 500, "curl", 443);
    events.extend(v2_conn(2, 200, 501, "wget", 80));
    let a = write_recording(dir.path(), "a.parquet", &meta_for("alpha", alpha_start), &events, 0);
    // beta starts on the next date, 2026-04-15 00:00:00.150.
    let b = write_recording(
        dir.path(),
        "b.parquet",
        &meta_for("beta", alpha_start + 250 * ms),
        &v2_conn(1, 0, 600, "java", 8080),
        0,
    );
    let count = |args: &[&str], files: &[&Path]| -> usize {
        let mut v = vec!["--json"];
        v.extend(args);
        let o = analyze_many(&v, files);
        assert_ok(&o);
        lines::<JsonEvent>(&o).len()
    };
    let both: &[&Path] = &[&a, &b];
    assert_eq!(count(&[], both), 21);
    assert_eq!(count(&["--since", "23:59:59.95"], both), 14);
    assert_eq!(count(&["--since", "2026-04-14 23:59:59.95"], both), 14);
    assert_eq!(
        count(&["--since", "01:59:59.95+02:00"], both),
        14,
        "the date at +02:00 is the 15th"
    );
    // 00:00:00.120 is on the 14th, alpha's date, for beta too: everything.
    assert_eq!(count(&["--since", "00:00:00.120"], both), 21);
    assert_eq!(count(&["--since", "2026-04-15 00:00:00.120"], both), 7);
    assert_eq!(count(&["--until", "00:00:00.120"], both), 0);
    // Alone, beta's date is the 15th.
    assert_eq!(count(&["--since", "00:00:00.120"], &[&b]), 7);
    assert_eq!(count(&["--since", "00:00:00.153"], &[&b]), 4);
    // A window across midnight needs dates.
    let o = analyze_many(&["--since", "23:59", "--until", "00:01"], both);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("give dates"), "{}", stderr(&o));
    assert_eq!(
        count(
            &["--since", "2026-04-14 23:59", "--until", "2026-04-15 00:00:00.152"],
            both
        ),
        14 + 2
    );
}

#[test]
fn bad_filters_are_usage_errors() {
    let bin = env!("CARGO_BIN_EXE_analyze");
    for (args, needle) in [
        (&["-d", "10.0.0.0/33"][..], "longer than 32"),
        (&["--port", "70000"], "65535"),
        (&["--kind", "nope"], "unknown event kind"),
        (&["--since", "soon"], "not a time"),
        (&["--since", "2026-02-30 10:00"], "2026-02-30 is not a date"),
        (&["--until", "24:00"], "hour 24"),
        (
            &["--since", "+5x"],
            "expected a duration: 30 (seconds), 30s, 1.5m, 2h, 250ms or 1h30m",
        ),
        (&["--since", "+9999999999h"], "too large"),
        (&["--sort", "duration"], "--conn"),
        (&["--by", "dport"], "--stats"),
        (
            &["--stats", "--by", "port"],
            "possible values: daddr, dport, sport, comm, pid, cgroup, netns, host",
        ),
        (&["--stats", "--conn"], "cannot be used with"),
        (&["--stats", "-t"], "cannot be used with"),
    ] {
        let o = Command::new(bin).args(args).arg("x.parquet").output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = stderr(&o);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"));
    }
}

#[test]
fn conn_output_stops_quietly_on_a_closed_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let events: Vec<Event> = (0..20_000)
        .flat_map(|i| v2_conn(i + 1, i as i64, 7, "x", 443))
        .collect();
    let rec = write_recording(dir.path(), "many.parquet", &meta_for("h", T0), &events, 0);
    for args in [&["--conn"][..], &["--json"], &["--conn", "--json"]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_analyze"))
            .args(args)
            .arg(&rec)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        {
            let mut out = BufReader::new(child.stdout.take().unwrap());
            let mut first = String::new();
            out.read_line(&mut first).unwrap();
        }
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "{args:?}: status {status:?}, stderr: {err}");
        assert_eq!(err, "");
    }
}

/// A recording whose recorder "died" after a checkpoint: copies of the data
/// file and its checkpoint sidecar taken while the writer still had rows
/// pending (the writer itself is then finished normally, elsewhere).
fn killed_recording(dir: &Path) -> (PathBuf, usize) {
    killed_recording_named(dir, "killed.parquet")
}

/// [`killed_recording`] as `dir/name`.
fn killed_recording_named(dir: &Path, name: &str) -> (PathBuf, usize) {
    let live_dir = dir.join("live");
    std::fs::create_dir_all(&live_dir).unwrap();
    let live = live_dir.join(name);
    let file = File::create(&live).unwrap();
    let mut w =
        deeptcp_format::EventWriter::with_checkpoints(file, &live, &meta(false), WriterOptions::default()).unwrap();
    let events = sample_events();
    let flushed = events.len() - 1;
    for e in &events[..flushed] {
        w.push(e).unwrap();
    }
    w.flush().unwrap();
    w.push(&events[flushed]).unwrap();
    let crashed = dir.join(name);
    std::fs::copy(&live, &crashed).unwrap();
    std::fs::copy(
        deeptcp_format::checkpoint_path(&live),
        deeptcp_format::checkpoint_path(&crashed),
    )
    .unwrap();
    w.finish(0).unwrap();
    (crashed, flushed)
}

#[test]
fn killed_recordings_are_read_to_their_checkpoint_and_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let (rec, flushed) = killed_recording(dir.path());

    // Read transparently up to the checkpoint, with a warning naming the fix.
    let o = analyze(&[], &rec);
    assert_ok(&o);
    assert_eq!(
        stdout(&o).lines().count(),
        1 + flushed,
        "header + the checkpointed rows:\n{}",
        stdout(&o)
    );
    let err = stderr(&o);
    assert!(
        err.contains("was not closed cleanly") && err.contains("analyze --repair"),
        "{err}"
    );

    // --repair makes it a complete recording; afterwards no warning.
    let o = analyze(&["--repair"], &rec);
    assert_ok(&o);
    assert!(
        !deeptcp_format::checkpoint_path(&rec).exists(),
        "sidecar removed after repair"
    );
    let o = analyze(&[], &rec);
    assert_ok(&o);
    assert_eq!(stderr(&o), "");
    assert_eq!(stdout(&o).lines().count(), 1 + flushed);

    // Repairing again is a no-op that says so; a file without a checkpoint is a clear error.
    let o = analyze(&["--repair"], &rec);
    assert_ok(&o);
    let plain = write_recording(dir.path(), "plain.parquet", &meta(false), &sample_events(), 0);
    let o = analyze(&["--repair"], &plain);
    assert_ok(&o);
    let o = analyze(&["--repair"], &dir.path().join("missing.parquet"));
    assert_clean_error(&o, "cannot repair");
}

/// Fails when `bytes` hold a control character other than newline and tab
/// (which the table's stack lines start with).
#[track_caller]
fn assert_no_control_chars(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    if let Some(c) = text.chars().find(|&c| c.is_control() && c != '\n' && c != '\t') {
        panic!(
            "{what}: control character {c:?} reached the output:\n{}",
            text.escape_debug()
        );
    }
}

/// Control characters (C0, DEL, C1) in a recording's metadata, rows,
/// stacks sidecar or file name are escaped in every mode and in warnings
/// and errors, never written to the terminal as they are (issue 13, item 3).
#[test]
fn control_characters_from_the_file_never_reach_the_terminal() {
    const NASTY: &str = "\x1b[2J\x1b]0;pwned\x07\r\u{9b}31m\x7f\x00";
    let dir = tempfile::tempdir().unwrap();
    let mut m = meta_for(&format!("evil{NASTY}"), T0);
    m.kernel_release = format!("6.8{NASTY}");
    m.boot_id = format!("boot{NASTY}");
    m.recorder_version = format!("rec{NASTY}");
    m.kstack = true;
    m.probes[0].kind = format!("kind{NASTY}");
    m.probes[0].probe = format!("tp_btf:x{NASTY}");
    m.probes[1].detail = format!("failed{NASTY}");
    let mut events = v2_conn(1, 10, 42, &format!("comm{NASTY}"), 443);
    for e in &mut events {
        e.probe = format!("probe{NASTY}").into();
        e.stack_id = Some(1);
    }
    let file_name = format!("x{}.parquet", NASTY.trim_end_matches('\x00'));
    let rec = write_recording(dir.path(), &file_name, &m, &events, 3);
    write_stacks(&rec, &[(1, &[&format!("sym{NASTY}+0x1")])]);
    // A second host (a HOST column) whose file has no stacks (a warning naming the first).
    write_recording(
        dir.path(),
        "b.parquet",
        &meta_for("beta", T0 + 1),
        &v2_conn(2, 0, 7, "java", 80),
        0,
    );
    for args in [
        &[][..],
        &["-t"],
        &["-K"],
        &["--json"],
        &["--conn"],
        &["--conn", "--json"],
        &["--info"],
        &["--repair"],
    ] {
        let o = analyze(args, dir.path());
        assert_ok(&o);
        assert_no_control_chars(&format!("{args:?} stdout"), &o.stdout);
        assert_no_control_chars(&format!("{args:?} stderr"), &o.stderr);
    }
    // Escaped, not dropped: what was there can still be seen.
    let o = analyze(&["--info"], &rec);
    assert!(
        stdout(&o).contains(r"host:             evil\u{1b}[2J\u{1b}]0;pwned\u{7}\r\u{9b}31m\u{7f}\u{0}"),
        "{}",
        stdout(&o)
    );
    // JSON escapes them its own way, and they round-trip.
    let o = analyze(&["--json"], &rec);
    let rows: Vec<serde_json::Value> = lines(&o);
    assert_eq!(rows[0]["comm"], format!("comm{NASTY}"));
    assert_eq!(rows[0]["host"], format!("evil{NASTY}"));
    assert!(stdout(&o).contains(r"\u009b31m\u007f"), "{}", stdout(&o));
    // Errors that echo a file name.
    let junk = dir
        .path()
        .join(format!("junk{}.parquet", NASTY.trim_end_matches('\x00')));
    std::fs::write(&junk, b"not parquet").unwrap();
    let o = analyze(&[], &junk);
    assert_eq!(o.status.code(), Some(1));
    assert_no_control_chars("error", &o.stderr);
    assert!(stderr(&o).contains(r"junk\u{1b}[2J"), "{}", stderr(&o));
}

/// Files rewritten by other tools or merged come in any order: their events
/// come out in time order (the stable sort: equal times keep file order),
/// however far apart (issue 13, item 5; the old reorder window reached back
/// 100 ms).
#[test]
fn recordings_in_any_row_order_come_out_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    // 4000 events 1 ms apart (4 s), stored in row groups of 500.
    let n = 4000i64;
    let base: Vec<i64> = (0..n).map(|i| i * 1_000_000).collect();
    let mut reversed = Vec::new();
    for c in base.chunks(500).rev() {
        reversed.extend_from_slice(c);
    }
    let doubled = [base.clone(), base.clone()].concat();
    let descending: Vec<i64> = base.iter().rev().copied().collect();
    for (name, times) in [("reversed", reversed), ("doubled", doubled), ("descending", descending)] {
        let events: Vec<Event> = times
            .iter()
            .enumerate()
            .map(|(row, &t)| {
                let mut e = ev(EventKind::Retransmit, t);
                e.sport = row as u16;
                e
            })
            .collect();
        let path = dir.path().join(format!("{name}.parquet"));
        let opts = WriterOptions {
            row_group_rows: 500,
            ..WriterOptions::default()
        };
        let mut w = EventWriter::new(File::create(&path).unwrap(), &meta(false), opts).unwrap();
        for e in &events {
            w.push(e).unwrap();
        }
        w.finish(0).unwrap();
        let o = analyze(&["--json"], &path);
        assert_ok(&o);
        let got: Vec<(i64, u16)> = lines::<serde_json::Value>(&o)
            .iter()
            .map(|v| (v["mono_ns"].as_i64().unwrap(), v["sport"].as_u64().unwrap() as u16))
            .collect();
        let mut want: Vec<(i64, u16)> = events.iter().map(|e| (e.mono_ns, e.sport)).collect();
        want.sort_by_key(|x| x.0);
        assert!(got == want, "{name}: not in time order (ties in file order)");
    }
}

/// `--repair` takes the names the other modes take: a rotated recording
/// by its name, a directory, a glob (issue 13, item 10).
#[test]
fn repair_takes_rotated_recordings_directories_and_globs() {
    for how in ["rotated", "directory", "glob"] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("rec");
        std::fs::create_dir(&d).unwrap();
        write_recording(&d, "r-000001.parquet", &meta(false), &sample_events(), 0);
        let (killed, flushed) = killed_recording_named(&d, "r-000002.parquet");
        let _ = std::fs::remove_dir_all(d.join("live"));
        let name = match how {
            "rotated" => d.join("r.parquet"),
            "directory" => d.clone(),
            _ => d.join("r-*.parquet"),
        };
        // Read as one recording, with the warning about the unfinished segment.
        let o = analyze(&[], &name);
        assert_ok(&o);
        assert_eq!(stdout(&o).lines().count(), 1 + sample_events().len() + flushed, "{how}");
        assert!(stderr(&o).contains("was not closed cleanly"), "{how}: {}", stderr(&o));

        let o = analyze(&["--repair"], &name);
        assert_ok(&o);
        let out = stdout(&o);
        assert_eq!(out.lines().count(), 2, "{how}: one report per segment:\n{out}");
        assert!(
            out.contains("r-000001.parquet") && out.contains("r-000002.parquet"),
            "{how}: {out}"
        );
        assert!(!deeptcp_format::checkpoint_path(&killed).exists(), "{how}: repaired");
        let o = analyze(&[], &name);
        assert_ok(&o);
        assert_eq!(stderr(&o), "", "{how}");
        assert_eq!(stdout(&o).lines().count(), 1 + sample_events().len() + flushed, "{how}");
    }
    // One recording that cannot be repaired does not stop the others.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a-broken.parquet"), b"not parquet").unwrap();
    let (killed, _) = killed_recording_named(dir.path(), "b-killed.parquet");
    let _ = std::fs::remove_dir_all(dir.path().join("live"));
    let o = analyze(&["--repair"], dir.path());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        !deeptcp_format::checkpoint_path(&killed).exists(),
        "the other one is repaired"
    );
    assert!(stdout(&o).contains("b-killed.parquet: repaired"), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.contains("cannot repair") && err.contains("a-broken.parquet"),
        "{err}"
    );
    assert!(err.contains("1 of 2 recordings could not be repaired"), "{err}");
    // A name that matches nothing is still a clean error that says what failed.
    let o = analyze(&["--repair"], &dir.path().join("none-*.parquet"));
    assert_clean_error(&o, "cannot repair");
}

#[test]
fn lost_intervals_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let m = meta(false);
    let rec = dir.path().join("intervals.parquet");
    let mut w = EventWriter::new(File::create(&rec).unwrap(), &m, WriterOptions::default()).unwrap();
    for e in &sample_events() {
        w.push(e).unwrap();
    }
    w.add_lost_interval(deeptcp_format::LostInterval {
        from_mono_ns: m.clock.monotonic_ns + 1_000_000_000,
        to_mono_ns: m.clock.monotonic_ns + 2_000_000_000,
        lost: 1234,
    });
    w.finish(1234).unwrap();
    let o = analyze(&[], &rec);
    assert_ok(&o);
    let err = stderr(&o);
    assert!(
        err.contains("1234 events lost between +1.000000 s and +2.000000 s"),
        "{err}"
    );
    let o = analyze(&["--info"], &rec);
    assert!(stdout(&o).contains("1234 events lost between"), "{}", stdout(&o));
}

/// An input found by `scripts/fuzz` that makes parquet 60.1 panic inside its
/// decoder: the panic must come out as one error line, no backtrace.
#[test]
fn decoder_panics_in_the_parquet_library_are_one_clean_error_line() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz-dict-decoder-panic.parquet");
    let o = Command::new(env!("CARGO_BIN_EXE_analyze"))
        .arg(&file)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    // (The table header may already be out: the corruption is met while streaming.)
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("analyze: ") && err.contains("corrupt data"), "{err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
}

/// A recording of 1,500 rows in three row groups whose second row group has
/// one flipped bit in its `mono_ns` pages.
fn recording_with_a_damaged_row_group(dir: &Path, kstack: bool) -> PathBuf {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let events: Vec<Event> = (0..1500)
        .map(|i| {
            let mut e = ev(EventKind::Retransmit, i * 1_000);
            e.sport = (i % 60_000) as u16;
            e
        })
        .collect();
    let path = dir.join("damaged.parquet");
    let opts = WriterOptions {
        row_group_rows: 500,
        ..WriterOptions::default()
    };
    let mut w = EventWriter::new(File::create(&path).unwrap(), &meta(kstack), opts).unwrap();
    for e in &events {
        w.push(e).unwrap();
    }
    w.finish(0).unwrap();
    let footer = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
    let rg = footer.metadata().row_group(1);
    let chunk = rg
        .columns()
        .iter()
        .find(|c| c.column_path().string() == "mono_ns")
        .unwrap();
    let start = chunk
        .dictionary_page_offset()
        .unwrap_or_else(|| chunk.data_page_offset()) as usize;
    let end = start + chunk.compressed_size() as usize;
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[end - 3] ^= 0x10;
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_damaged_row_group_is_an_error_unless_skip_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = recording_with_a_damaged_row_group(dir.path(), false);

    // Streaming: the rows before the damage, then one error line.
    let o = analyze(&["--json"], &path);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("row group 1") && err.contains("checksum"), "{err}");
    assert_eq!(stdout(&o).lines().count(), 500, "row group 0 only");

    let o = analyze(&["--json", "--skip-corrupt"], &path);
    assert_ok(&o);
    let rows = stdout(&o).lines().count();
    assert_eq!(rows, 1000, "the two good row groups, whole");
    let warn = stderr(&o);
    assert!(
        warn.contains("warning") && warn.contains("skipped row group 1 (500 rows)"),
        "{warn}"
    );
    // --conn reads through the owner scan too.
    let o = analyze(&["--conn", "--skip-corrupt"], &path);
    assert_ok(&o);
}

/// -K without a sidecar looks for events that refer to a stack: that pass
/// reads with --skip-corrupt too, so the damaged row group is no error.
#[test]
fn skip_corrupt_also_covers_the_kstack_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = recording_with_a_damaged_row_group(dir.path(), true);
    let o = analyze(&["-K", "--skip-corrupt"], &path);
    assert_ok(&o);
    assert_eq!(stdout(&o).lines().count(), 1 + 1000, "header and the good rows");
    assert!(stderr(&o).contains("skipped row group 1 (500 rows)"), "{}", stderr(&o));
}

/// Where `needle` starts in `line`, in characters.
fn column_of(line: &str, needle: &str) -> usize {
    let at = line
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in {line:?}"));
    line[..at].chars().count()
}

/// Issue 14, item 6: a long IPv6 endpoint does not shift the rest of its
/// row. A recording holding one gets wide address columns before the first
/// line; one whose endpoints all fit keeps the seed's layout (`-w` widens
/// it anyway); `--conn` keeps LOCAL/REMOTE and REASON aligned too.
#[test]
fn long_ipv6_endpoints_and_close_reasons_keep_rows_aligned() {
    let dir = tempfile::tempdir().unwrap();
    // The sample's [2001:db8:ffff:ffff:ffff:ffff:ffff:1]:8443: TCP_STATE,
    // SOCK_ERR at the same column on every line.
    let o = analyze(&[], &sample(dir.path(), false));
    assert_ok(&o);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    let state = column_of(lines[0], "TCP_STATE");
    assert_eq!(state, 24 + 7 + 17 + 48 + 48);
    for (l, s) in lines[1..].iter().zip([
        "ESTABLISHED",
        "CLOSE -> SYN_SENT",
        "SYN_SENT -> ESTABLISHED",
        "CLOSE -> SYN_SENT",
        "SYN_SENT",
    ]) {
        assert_eq!(column_of(l, s), state, "{l}");
    }
    assert_eq!(column_of(lines[5], "ECONNREFUSED"), column_of(lines[0], "SOCK_ERR"));

    // Only endpoints that fit 22 columns: the seed's layout, unless -w.
    let mut short = sample_events();
    short[2].daddr = "2001:db8::2".parse().unwrap();
    let rec = write_recording(dir.path(), "short.parquet", &meta(false), &short, 0);
    let o = analyze(&[], &rec);
    assert_ok(&o);
    assert!(stdout(&o).starts_with(&format!("{HEADER}\n")), "{}", stdout(&o));
    assert!(stdout(&o).contains(" [2001:db8::1]:40000   [2001:db8::2]:8443    CLOSE -> SYN_SENT\n"));
    let o = analyze(&["-w"], &rec);
    assert_ok(&o);
    assert!(stdout(&o).starts_with(&format!("{WIDE_HEADER}\n")), "{}", stdout(&o));

    // --conn: the longest endpoints and the longest reason.
    let mut events = v2_conn(7, 10, 42, "curl", 443);
    let mut open = v2_conn(8, 20, 43, "wget", 8443);
    for e in &mut open {
        e.family = deeptcp_format::Family::Inet6;
        e.saddr = "2001:db8:ffff:ffff:ffff:ffff:ffff:1".parse().unwrap();
        e.daddr = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap();
        e.sport = 65535;
        e.dport = 65535;
    }
    // Known from the start-up snapshot, still open at the end.
    open.truncate(3);
    open[0].kind = EventKind::Snapshot;
    open[0].oldstate = None;
    open[0].newstate = Some(TcpState::Established);
    open.remove(1);
    events.extend(open);
    let rec = write_recording(dir.path(), "conn.parquet", &meta_for("alpha", T0), &events, 0);
    let o = analyze(&["--conn"], &rec);
    assert_ok(&o);
    let out = stdout(&o);
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l.len(), 3, "{out}");
    assert!(
        l[2].contains(&format!(
            "{:<48}{:<48}4026531840",
            "[2001:db8:ffff:ffff:ffff:ffff:ffff:1]:65535", "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"
        )),
        "{}",
        l[2]
    );
    assert!(
        l[2].ends_with("still open at end of recording, opened before recording ESTABLISHED"),
        "{}",
        l[2]
    );
    let netns = column_of(l[0], "NETNS");
    let path = column_of(l[0], "STATE_PATH");
    assert_eq!(column_of(l[1], "4026531840"), netns, "{}", l[1]);
    assert_eq!(column_of(l[2], "4026531840"), netns, "{}", l[2]);
    assert_eq!(column_of(l[1], "CLOSE -> SYN_SENT"), path, "{}", l[1]);
    assert_eq!(column_of(l[2], "ESTABLISHED"), path, "{}", l[2]);
}

/// Lines of a child's stdout, read on a thread so that the test can wait
/// for them with a deadline.
fn line_reader(stdout: std::process::ChildStdout) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The next `n` lines, or a failure naming what did come.
#[track_caller]
fn next_lines(rx: &std::sync::mpsc::Receiver<String>, n: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut got = Vec::new();
    while got.len() < n {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => got.push(l),
            Err(e) => panic!("waited for {n} lines ({e}), got {got:?}"),
        }
    }
    got
}

/// `analyze --follow` (issue 14, item 2) on a recording written here as
/// `record` writes it: a row group flushed and checkpointed at a time. The
/// events checkpointed before it starts come first, each new row group's
/// events as soon as it is checkpointed, and it exits 0 with everything
/// printed once the writer closes the file.
#[test]
fn follow_prints_a_recording_as_it_is_written_until_it_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.parquet");
    let opts = WriterOptions {
        row_group_rows: 1000,
        batch_rows: 10,
        zstd_level: 1,
    };
    let mut w = EventWriter::with_checkpoints(File::create(&path).unwrap(), &path, &meta(false), opts).unwrap();
    let conn = |cookie: u64, t: i64, port: u16| v2_conn(cookie, t, 42, "curl", port);
    for e in conn(1, 10, 443) {
        w.push(&e).unwrap();
    }
    w.flush().unwrap();
    assert!(deeptcp_format::checkpoint_path(&path).exists());

    let mut child = Command::new(env!("CARGO_BIN_EXE_analyze"))
        .env("TZ", "UTC")
        .args(["--follow", "-t"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = line_reader(child.stdout.take().unwrap());
    // The header and the first connection (7 events), back-filled.
    let first = next_lines(&rx, 8);
    assert!(first[0].starts_with("TIME          EVENT_SOURCE"), "{first:?}");
    assert!(
        first[1].starts_with("10:00:00.010  tcp_set_state()         42     curl"),
        "{first:?}"
    );
    assert!(first[1..].iter().all(|l| !l.contains("N/A")), "{first:?}");

    // Pushed but not flushed: nothing; flushed: printed.
    for e in conn(2, 100, 8443) {
        w.push(&e).unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert!(rx.try_recv().is_err(), "printed before its checkpoint");
    w.flush().unwrap();
    let second = next_lines(&rx, 7);
    assert!(second.iter().all(|l| l.contains(":8443")), "{second:?}");
    assert!(second[0].starts_with("10:00:00.100  tcp_set_state()"), "{second:?}");

    // Closing adds the rows not yet flushed, and ends the run.
    for e in conn(3, 200, 9000) {
        w.push(&e).unwrap();
    }
    w.finish(0).unwrap();
    let third = next_lines(&rx, 7);
    assert!(third.iter().all(|l| l.contains(":9000")), "{third:?}");
    let status = child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(status.success(), "{status:?}: {err}");
    assert!(rx.recv().is_err(), "nothing after the end");
    assert!(err.contains("while it is recorded"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // A complete recording: everything, then exit (as without --follow).
    let o = analyze(&["--follow", "-t"], &path);
    assert_ok(&o);
    assert_eq!(stdout(&o), stdout(&analyze(&["-t"], &path)));
    assert_eq!(stderr(&o), "");
    let o = analyze(&["--follow", "--json"], &path);
    assert_ok(&o);
    assert_eq!(stdout(&o), stdout(&analyze(&["--json"], &path)));
}

/// Ctrl-C ends `--follow` with status 0; a recorder that died without
/// closing the file is an error after what it checkpointed; two files are
/// a usage error.
#[test]
fn follow_stops_on_ctrl_c_and_reports_a_dead_recorder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.parquet");
    let mut w = EventWriter::with_checkpoints(
        File::create(&path).unwrap(),
        &path,
        &meta(false),
        WriterOptions::default(),
    )
    .unwrap();
    for e in v2_conn(1, 10, 42, "curl", 443) {
        w.push(&e).unwrap();
    }
    w.flush().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_analyze"))
        .args(["--follow", "--json"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = line_reader(child.stdout.take().unwrap());
    assert_eq!(next_lines(&rx, 7).len(), 7);
    // SAFETY: a signal to our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");

    // The writer goes away without closing the file (its lock with it).
    std::mem::forget(w);
    // Forgetting keeps the descriptor (and the lock) open: drop the lock by
    // copying the files as a killed recorder leaves them.
    let dead = dir.path().join("dead.parquet");
    std::fs::copy(&path, &dead).unwrap();
    std::fs::copy(
        deeptcp_format::checkpoint_path(&path),
        deeptcp_format::checkpoint_path(&dead),
    )
    .unwrap();
    let o = analyze(&["--follow"], &dead);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 8, "{}", stdout(&o));
    assert!(stderr(&o).contains("analyze --repair"), "{}", stderr(&o));

    let o = Command::new(env!("CARGO_BIN_EXE_analyze"))
        .args(["--follow", "a.parquet", "b.parquet"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("one recording"), "{}", stderr(&o));
}
