//! Live tests of the live view (issue 14): `record` without `-o` prints the
//! seed's table as events happen, within 250 ms even when they are rare;
//! `--print` prints what the file gets, the same lines `analyze` replays;
//! `--json` prints `analyze --json`'s objects; a reader that goes away
//! (`| head`) ends the recorder cleanly with the file complete.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use deeptcp_format::checkpoint_path;
use deeptcp_view::table::{TableOptions, TableRenderer, TimeColumn};

/// `record ARGS` with stdout and stderr piped; each stdout line arrives on
/// the channel with the instant it was read.
struct Live {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Live {
    fn start(args: &[&str]) -> Live {
        let mut child = Command::new(env!("CARGO_BIN_EXE_record"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn record");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let err = child.stderr.take().expect("stderr");
        let sink = std::sync::Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut r = BufReader::new(err);
            let mut buf = String::new();
            while r.read_line(&mut buf).is_ok_and(|n| n > 0) {
                sink.lock().unwrap().push_str(&buf);
                buf.clear();
            }
        });
        let live = Live { child, lines, stderr };
        live.wait_stderr("Ctrl-C to end", scaled(Duration::from_secs(60)));
        live
    }

    fn wait_stderr(&self, what: &str, limit: Duration) {
        let start = Instant::now();
        while !self.stderr.lock().unwrap().contains(what) {
            assert!(
                start.elapsed() < limit,
                "record did not say {what:?}: {}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The next line matching `pred`, within `limit`.
    fn next_matching(&self, limit: Duration, pred: impl Fn(&str) -> bool) -> (Instant, String) {
        let end = Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, line)) if pred(&line) => return (at, line),
                Ok(_) => {}
                Err(_) => panic!(
                    "no matching line within {limit:?}; stderr: {}",
                    self.stderr.lock().unwrap()
                ),
            }
        }
    }

    fn stop(mut self) -> (std::process::ExitStatus, Vec<String>, String) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let status = self.child.wait().expect("wait record");
        std::thread::sleep(Duration::from_millis(100));
        let rest: Vec<String> = self.lines.try_iter().map(|(_, l)| l).collect();
        let err = self.stderr.lock().unwrap().clone();
        (status, rest, err)
    }
}

#[test]
fn without_a_file_record_prints_the_seed_table_as_events_happen() {
    let test = "without_a_file_record_prints_the_seed_table_as_events_happen";
    if !can_run(test) {
        return;
    }
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let port_s = port.to_string();
    let live = Live::start(&["-t", "--port", &port_s]);
    let (_, first) = live.next_matching(Duration::from_secs(5), |_| true);
    assert_eq!(first, "Tracing TCP events. Ctrl-C to end.");
    let (_, header) = live.next_matching(Duration::from_secs(5), |_| true);
    assert!(
        header.starts_with("TIME          EVENT_SOURCE            PID    COMM") && header.ends_with("SOCK_ERR"),
        "{header}"
    );
    // Rare events: one connection after a quiet second.
    std::thread::sleep(Duration::from_secs(1));
    let before = Instant::now();
    let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let cport = client.local_addr().unwrap().port();
    let (at, line) = live.next_matching(Duration::from_secs(10), |l| l.contains("tcp_connect()"));
    let limit = scaled(Duration::from_millis(250));
    assert!(
        at - before < limit,
        "printed {:?} after the connect: {line}",
        at - before
    );
    // The seed's columns: TIME HH:MM:SS.mmm, source, pid/comm of this process.
    let me = std::process::id().to_string();
    let b = line.as_bytes();
    assert!(
        b[2] == b':' && b[5] == b':' && b[8] == b'.' && &line[12..14] == "  ",
        "{line}"
    );
    assert!(line[14..].starts_with("tcp_connect()"), "{line}");
    assert!(
        line.contains(&format!(" {me} ")) && line.contains(&format!("127.0.0.1:{port}")),
        "{line}"
    );
    let (_, acc) = live.next_matching(Duration::from_secs(10), |l| {
        l.contains("tcp_set_state()") && l.contains("LISTEN -> SYN_RECV") && l.contains(&format!(":{cport} "))
    });
    assert!(acc.contains(&me), "{acc}");
    drop(client);
    drop(server);
    let (status, _, err) = live.stop();
    assert!(status.success(), "{status}: {err}");
    assert!(err.contains(" events, 0 lost"), "{err}");
}

#[test]
fn printed_lines_are_what_analyze_replays_and_a_closed_pipe_ends_cleanly() {
    let test = "printed_lines_are_what_analyze_replays_and_a_closed_pipe_ends_cleanly";
    if !can_run(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.parquet");
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let port_s = port.to_string();
    let mut live = Live::start(&["-o", path.to_str().unwrap(), "--print", "-t", "--port", &port_s]);
    for _ in 0..3 {
        let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (a, _) = server.accept().unwrap();
        drop(c);
        drop(a);
    }
    // Every event of the three connections, printed before the pipe closes.
    let mut printed = Vec::new();
    let end = Instant::now() + scaled(Duration::from_secs(10));
    while printed
        .iter()
        .filter(|l: &&String| l.contains("LAST_ACK -> CLOSE"))
        .count()
        < 3
    {
        let left = end.saturating_duration_since(Instant::now());
        let (_, l) = live.lines.recv_timeout(left).expect("three connections printed");
        printed.push(l);
    }
    // The reader goes away (like `| head`): dropping the receiver ends the
    // reading thread at its next line, which closes the pipe.
    let pipe_reader = std::mem::replace(&mut live.lines, mpsc::channel().1);
    drop(pipe_reader);
    // More events: the next printed line hits the closed pipe.
    let start = Instant::now();
    loop {
        let _ = TcpStream::connect(("127.0.0.1", port));
        if let Ok(Some(status)) = live.child.try_wait() {
            assert!(status.success(), "{status}: {}", live.stderr.lock().unwrap());
            break;
        }
        assert!(
            start.elapsed() < scaled(Duration::from_secs(20)),
            "record kept running after its reader left: {}",
            live.stderr.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!checkpoint_path(&path).exists(), "the file was closed complete");
    // The file replays to the same lines: rendered by the view analyze
    // uses (the file also has the snapshot rows, which are not printed).
    let (meta, events) = read_all(&path);
    assert_eq!(meta.lost_events, 0);
    let view = TableOptions {
        time: TimeColumn::Wall,
        ..TableOptions::default()
    };
    let mut r = TableRenderer::new(Vec::new(), view);
    for e in &events {
        r.event(e, meta.clock.wall_ns(e.mono_ns), &meta.host, None).unwrap();
    }
    let replay = String::from_utf8(r.finish().unwrap()).unwrap();
    let replayed: std::collections::HashSet<&str> = replay.lines().collect();
    for line in printed.iter().skip(2) {
        assert!(
            replayed.contains(line.as_str()),
            "printed but not in the file:\n{line}\n{replay}"
        );
    }
    assert!(printed.len() > 2 + 3 * 6, "{printed:#?}");
}

#[test]
fn json_lines_carry_analyze_json_fields() {
    let test = "json_lines_carry_analyze_json_fields";
    if !can_run(test) {
        return;
    }
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let port_s = port.to_string();
    let live = Live::start(&["--json", "--port", &port_s]);
    let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (_, line) = live.next_matching(Duration::from_secs(10), |l| l.contains("\"kind\":\"connect\""));
    let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON object per line");
    for key in [
        "host", "ts", "mono_ns", "kind", "pid", "comm", "saddr", "daddr", "sport", "dport", "probe", "cookie",
    ] {
        assert!(v.get(key).is_some(), "{key} missing: {line}");
    }
    assert_eq!(v["dport"], u64::from(port));
    assert_eq!(v["pid"], u64::from(std::process::id()));
    drop(c);
    let (status, rest, err) = live.stop();
    assert!(status.success(), "{err}");
    assert!(
        rest.iter()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "{rest:?}"
    );
}

#[test]
fn a_closed_stderr_does_not_end_a_recording() {
    let test = "a_closed_stderr_does_not_end_a_recording";
    if !can_run(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quietly.parquet");
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let port_s = port.to_string();
    // Status lines every 100 ms into a pipe nobody reads any more.
    let mut child = Command::new(env!("CARGO_BIN_EXE_record"))
        .args([
            "-o",
            path.to_str().unwrap(),
            "--status-interval",
            "100ms",
            "--port",
            &port_s,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn record");
    drop(child.stderr.take());
    let limit = scaled(Duration::from_secs(60));
    let start = Instant::now();
    // Ready once the first checkpoint (snapshot rows) exists.
    while !checkpoint_path(&path).exists() {
        assert!(start.elapsed() < limit, "record did not start");
        assert!(child.try_wait().unwrap().is_none(), "record died at start-up");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(scaled(Duration::from_millis(500)));
    let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let cport = c.local_addr().unwrap().port();
    drop(c);
    std::thread::sleep(scaled(Duration::from_millis(500)));
    assert!(
        child.try_wait().unwrap().is_none(),
        "record died writing to a closed stderr"
    );
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(!checkpoint_path(&path).exists(), "closed complete");
    let (_, events) = read_all(&path);
    assert!(
        events.iter().any(|e| e.sport == cport || e.dport == cport),
        "the connection is in the file"
    );
}
