//! End-to-end tests of the `analyze` binary on recordings written with the
//! format crate's own writer into a temporary directory.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use deeptcp_format::{
    stacks_path, ClockAnchor, Event, EventKind, EventWriter, Family, ProbeStatus, RecordingMeta, StackWriter, TcpState,
    WriterOptions,
};

const HEADER: &str = "EVENT_SOURCE            PID    COMM             SOURCE                DESTINATION           TCP_STATE                SK_ERR";
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
            },
            ProbeStatus {
                kind: "retransmit".into(),
                probe: "kprobe:tcp_retransmit_skb".into(),
                attached: false,
                detail: "kprobes not supported by this kernel".into(),
            },
        ],
        lost_events: 0,
        kstack,
    }
}

fn ev(kind: EventKind, after_start_ns: i64) -> Event {
    Event {
        mono_ns: START_MONO + after_start_ns,
        kind,
        pid: 16065,
        tid: 16065,
        comm: "wget".into(),
        family: Family::Inet,
        saddr: IpAddr::V4(Ipv4Addr::new(10, 0, 2, 15)),
        daddr: IpAddr::V4(Ipv4Addr::new(87, 250, 250, 242)),
        sport: 60590,
        dport: 443,
        oldstate: None,
        newstate: Some(TcpState::Established),
        sk_err: 0,
        netns: 4026531840,
        stack_id: None,
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

const TABLE_BODY: &str = "\
tcp_set_state()         16065  wget             10.0.2.15:0           87.250.250.242:443    CLOSE -> SYN_SENT
tcp_set_state()         N/A    N/A              10.0.2.15:60590       87.250.250.242:443    SYN_SENT -> ESTABLISHED
tcp_set_state()         16065  wget             [2001:db8::1]:40000   [2001:db8:ffff:ffff:ffff:ffff:ffff:1]:8443 CLOSE -> SYN_SENT
sock_def_error_report() 16065  wget             10.0.2.15:60590       87.250.250.242:443    SYN_SENT                 ECONNREFUSED
tcp_retransmit_skb()    16065  wget             10.0.2.15:60590       87.250.250.242:443    ESTABLISHED
";

#[test]
fn table() {
    let dir = tempfile::tempdir().unwrap();
    let o = analyze(&[], &sample(dir.path(), false));
    assert_ok(&o);
    assert_eq!(stdout(&o), format!("{HEADER}\n{TABLE_BODY}"));
    assert_eq!(stderr(&o), "");
}

#[test]
fn timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let o = analyze(&["-t"], &sample(dir.path(), false));
    assert_ok(&o);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("TIME(s)     {HEADER}"));
    let times: Vec<&str> = lines[1..].iter().map(|l| &l[..12]).collect();
    assert_eq!(
        times,
        [
            "0.500000    ",
            "0.750000    ",
            "1.000000    ",
            "1.250000    ",
            "-0.002000   "
        ]
    );
    // The rest of each line is the plain table.
    let rest: String = lines[1..].iter().map(|l| format!("{}\n", &l[12..])).collect();
    assert_eq!(rest, TABLE_BODY);
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
    assert_eq!(lines[0], HEADER);
    assert!(lines[1].starts_with("tcp_set_state()         16065"));
    assert_eq!(
        lines[2..5],
        ["\ttcp_set_state+0x5", "\ttcp_v4_connect+0x3f2", "\t__sys_connect+0xd3"]
    );
    assert!(lines[5].starts_with("tcp_set_state()         N/A"));
    assert_eq!(lines[6], "\ttcp_rcv_state_process+0x1b0");
    assert!(lines[7].starts_with("tcp_set_state()         16065  wget             [2001"));
    assert!(lines[8].starts_with("sock_def_error_report()"));
    assert!(lines[9].starts_with("tcp_retransmit_skb()"));
    assert_eq!(lines[10], "\ttcp_set_state+0x5");
    assert_eq!(lines.len(), 13);

    // -t and -K together.
    let o = analyze(&["-t", "-K"], &rec);
    assert_ok(&o);
    let out = stdout(&o);
    assert!(out.starts_with(&format!("TIME(s)     {HEADER}\n0.500000    tcp_set_state()")));
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
events by kind:
  state_change    3
  retransmit      1
  reset_recv      0
  reset_sent      0
  sock_error      1
  destroy_sock    0
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
    assert_eq!(stdout(&o), format!("{HEADER}\n{TABLE_BODY}"));
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
fn directory() {
    let dir = tempfile::tempdir().unwrap();
    let o = analyze(&[], dir.path());
    assert_clean_error(&o, "is a directory");
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
        "Usage: analyze [OPTIONS] <FILE>",
        "--timestamp",
        "--kstack",
        "--info",
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
