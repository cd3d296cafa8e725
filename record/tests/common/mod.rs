//! Helpers shared by the live test binaries: running `record` as a child,
//! the traffic generator (testdata/traffic.py) as separate processes, and
//! reading the recording back.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deeptcp_format::{checkpoint_path, Event, EventKind, RecordingMeta, RecordingReader, TcpState};

pub const ECONNREFUSED: i32 = 111;
pub const ECONNRESET: i32 = 104;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("record/ has a parent")
        .to_path_buf()
}

pub fn traffic_script() -> PathBuf {
    repo_root().join("testdata/traffic.py")
}

pub fn required() -> bool {
    std::env::var_os("DEEPTCP_REQUIRE_LIVE").is_some_and(|v| v == "1")
}

pub fn skip(test: &str, why: &str) -> bool {
    if required() {
        panic!("{test}: live test cannot run ({why}) but DEEPTCP_REQUIRE_LIVE=1");
    }
    eprintln!("SKIPPED live test {test}: {why}");
    false
}

/// True when this process may run live tests (root).
pub fn can_run(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return skip(test, "needs root");
    }
    eprintln!("RUNNING live test {test}");
    true
}

/// A running `record` whose stderr is collected.
pub struct Recorder {
    child: Child,
    stderr: Arc<Mutex<String>>,
    path: PathBuf,
}

impl Recorder {
    /// Starts record; `None` (after skip) when this build has no eBPF object.
    pub fn start(test: &str, path: &Path, extra: &[&str]) -> Option<Recorder> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_record"))
            .arg("-o")
            .arg(path)
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn record");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("stderr piped");
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let start = Instant::now();
        loop {
            let text = stderr.lock().unwrap().clone();
            if text.contains("Ctrl-C to end") {
                break;
            }
            if text.contains("built without its eBPF programs") {
                let _ = child.wait();
                skip(test, "record was built without eBPF programs (run scripts/bootstrap)");
                return None;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("record exited early ({status}): {text}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "record did not start: {text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Recorder {
            child,
            stderr,
            path: path.to_path_buf(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What record printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (at most `timeout`) for record to exit on its own; returns its
    /// status and stderr.
    pub fn wait_exit(&mut self, timeout: Duration) -> (std::process::ExitStatus, String) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait record") {
                std::thread::sleep(Duration::from_millis(100)); // the stderr reader catches up
                return (status, self.stderr());
            }
            assert!(
                start.elapsed() < timeout,
                "record did not exit within {timeout:?}: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `sig` and waits for the exit; returns status and stderr.
    pub fn stop_raw(&mut self, sig: libc::c_int) -> (std::process::ExitStatus, String) {
        self.signal(sig);
        self.wait_exit(Duration::from_secs(60))
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Stops with `sig`, checks a clean exit, returns (meta, events, stderr).
    pub fn stop(mut self, sig: libc::c_int) -> (RecordingMeta, Vec<Event>, String) {
        std::thread::sleep(Duration::from_millis(300));
        self.signal(sig);
        let status = self.child.wait().expect("wait record");
        std::thread::sleep(Duration::from_millis(50));
        let stderr = self.stderr.lock().unwrap().clone();
        assert!(status.success(), "record failed ({status}): {stderr}");
        assert!(
            !checkpoint_path(&self.path).exists(),
            "a cleanly closed recording leaves no checkpoint sidecar behind"
        );
        let (meta, events) = read_all(&self.path);
        (meta, events, stderr)
    }
}

impl Drop for Recorder {
    /// A failed test must not leave a recorder (and its programs) attached.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(libc::SIGINT);
            let _ = self.child.wait();
        }
    }
}

pub fn read_all(path: &Path) -> (RecordingMeta, Vec<Event>) {
    let reader = RecordingReader::open(path).expect("recording opens");
    let meta = reader.meta().clone();
    let events: Vec<Event> = reader.events().collect::<Result<_, _>>().expect("events decode");
    (meta, events)
}

/// Server + client traffic; returns (server pid, client pid, ports, client lines).
pub struct Traffic {
    pub server_pid: u32,
    pub client_pid: u32,
    pub port4: u16,
    pub port6: u16,
    /// step name → port printed by the client.
    pub steps: Vec<(String, u16)>,
}

impl Traffic {
    pub fn step(&self, name: &str) -> u16 {
        self.steps
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("client step {name} missing"))
            .1
    }
}

pub fn run_traffic() -> Traffic {
    let mut server = Command::new("python3")
        .arg(traffic_script())
        .arg("server")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn server (python3)");
    let mut out = BufReader::new(server.stdout.take().expect("server stdout"));
    let mut ready = String::new();
    out.read_line(&mut ready).expect("server READY line");
    let parts: Vec<&str> = ready.split_whitespace().collect();
    assert_eq!(parts.first(), Some(&"READY"), "server said {ready:?}");
    let port4: u16 = parts[1].parse().unwrap();
    let port6: u16 = parts[2].parse().unwrap();
    let client = Command::new("python3")
        .arg(traffic_script())
        .args(["client", &port4.to_string(), &port6.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn client");
    let client_pid = client.id();
    let output = client.wait_with_output().expect("client runs");
    assert!(output.status.success(), "client failed");
    let status = server.wait().expect("server exits");
    assert!(status.success(), "server failed");
    let steps = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_owned(), it.next()?.parse().ok()?))
        })
        .collect();
    Traffic {
        server_pid: server.id(),
        client_pid,
        port4,
        port6,
        steps,
    }
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn find<'a>(events: &'a [Event], what: &str, pred: impl Fn(&Event) -> bool) -> &'a Event {
    events
        .iter()
        .find(|e| pred(e))
        .unwrap_or_else(|| panic!("no event: {what}\nrecorded:\n{}", dump(events)))
}

pub fn transition(e: &Event, from: TcpState, to: TcpState) -> bool {
    e.kind == EventKind::StateChange && e.oldstate == Some(from) && e.newstate == Some(to)
}

/// A helper process of testdata/traffic.py whose first stdout line is read.
pub struct Helper {
    pub child: Child,
    pub first_line: Vec<String>,
}

impl Helper {
    /// Runs `traffic.py ARGS` (optionally under `ip netns exec NS`) and waits for its first line.
    pub fn start(netns: Option<&str>, args: &[&str]) -> Helper {
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "python3"]);
                c
            }
            None => Command::new("python3"),
        };
        let mut child = cmd
            .arg(traffic_script())
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn traffic.py");
        let mut out = BufReader::new(child.stdout.take().expect("stdout piped"));
        let mut line = String::new();
        out.read_line(&mut line).expect("first line");
        // Keep draining so the helper never blocks on a full pipe.
        std::thread::spawn(move || for _ in out.lines() {});
        Helper {
            child,
            first_line: line.split_whitespace().map(str::to_owned).collect(),
        }
    }

    /// The number in the first line (`READY <port>`, `connected <port>`).
    pub fn port(&self) -> u16 {
        self.first_line
            .get(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {:?}", self.first_line))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn wait_ok(&mut self) {
        let status = self.child.wait().expect("wait helper");
        assert!(
            status.success(),
            "traffic helper {:?} failed: {status}",
            self.first_line
        );
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs a command that must succeed (ip, nft).
pub fn sh(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} not runnable: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Ids of the BPF programs process `pid` holds (through program and link
/// descriptors), from /proc/PID/fdinfo.
pub fn bpf_prog_ids(pid: u32) -> Vec<u32> {
    let mut ids = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return ids;
    };
    for e in dir.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("prog_id:") {
                if let Ok(id) = v.trim().parse::<u32>() {
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
            }
        }
    }
    ids
}

/// Whether the kernel still has BPF program `id` (bpf(BPF_PROG_GET_FD_BY_ID)).
pub fn bpf_prog_exists(id: u32) -> bool {
    const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
    // union bpf_attr for this command: prog_id, next_id, open_flags.
    let attr: [u32; 4] = [id, 0, 0, 0];
    // SAFETY: the bpf syscall reads `size` bytes of `attr`, which we own.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_GET_FD_BY_ID,
            attr.as_ptr(),
            std::mem::size_of_val(&attr) as libc::c_uint,
        )
    };
    if fd >= 0 {
        // SAFETY: closing the descriptor the kernel just gave us.
        unsafe { libc::close(fd as libc::c_int) };
        return true;
    }
    std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOENT)
}

/// Waits until none of `ids` exists any more (programs are freed shortly
/// after the last descriptor closes); panics naming the survivors.
pub fn assert_detached(ids: &[u32], what: &str) {
    assert!(!ids.is_empty(), "{what}: the recorder held no BPF program to check");
    let start = Instant::now();
    loop {
        let left: Vec<u32> = ids.iter().copied().filter(|&id| bpf_prog_exists(id)).collect();
        if left.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{what}: BPF programs {left:?} still loaded after the recorder exited"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Dumps events for a failing assertion.
pub fn dump(events: &[Event]) -> String {
    events
        .iter()
        .map(|e| {
            format!(
                "{:?} {}:{} -> {}:{} {:?}->{:?} pid={} {:?} probe={} cookie={} netns={}",
                e.kind,
                e.saddr,
                e.sport,
                e.daddr,
                e.dport,
                e.oldstate,
                e.newstate,
                e.pid,
                e.attribution,
                e.probe,
                e.cookie,
                e.netns
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
