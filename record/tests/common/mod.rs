//! Helpers shared by the live test binaries: running `record` as a child,
//! the traffic generator (testdata/traffic.py) as separate processes, and
//! reading the recording back.
#![allow(dead_code)] // each test binary uses a different subset

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deeptcp_format::{checkpoint_path, Event, EventKind, ProbeStatus, RecordingMeta, RecordingReader, TcpState};

pub const ECONNREFUSED: i32 = 111;
pub const ECONNRESET: i32 = 104;

pub use deeptcp_format::testing::python::repo_root;

pub fn traffic_script() -> PathBuf {
    repo_root().join("testdata/traffic.py")
}

/// How many times slower than native this machine runs the tests:
/// `DEEPTCP_TEST_SLOWNESS` (a whole number, default 1). scripts/kernels sets
/// it for kernels emulated under qemu TCG, where exec, python and record's
/// start-up take 10-40 times longer than natively. Every time bound of the
/// live tests is multiplied by it ([`scaled`]); the order of events is made
/// explicit (ready lines, held connections) instead of being left to timing.
pub fn slowness() -> u32 {
    match std::env::var("DEEPTCP_TEST_SLOWNESS") {
        Err(_) => 1,
        Ok(v) => v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|&n| n >= 1)
            .unwrap_or_else(|| panic!("DEEPTCP_TEST_SLOWNESS={v:?}: want a whole number >= 1")),
    }
}

/// `d` on this machine: times [`slowness`].
pub fn scaled(d: Duration) -> Duration {
    d * slowness()
}

/// Polls `done` every 20 ms until it holds; panics naming `what` after
/// `bound` (scaled here).
pub fn wait_until(what: &str, bound: Duration, mut done: impl FnMut() -> bool) {
    let bound = scaled(bound);
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < bound, "{what}: not within {bound:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether this kernel has kprobes (6.1 and 6.12 do; this machine's 6.18
/// has them compiled out).
pub fn kprobes_available() -> bool {
    std::path::Path::new("/sys/bus/event_source/devices/kprobe/type").exists()
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
        Recorder::spawn(test, path, &[OsStr::new("-o"), path.as_os_str()], extra)
    }

    /// Starts `record --hive root`.
    pub fn start_hive(test: &str, root: &Path, extra: &[&str]) -> Option<Recorder> {
        Recorder::spawn(test, root, &[OsStr::new("--hive"), root.as_os_str()], extra)
    }

    fn spawn(test: &str, path: &Path, output: &[&OsStr], extra: &[&str]) -> Option<Recorder> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_record"))
            .args(output)
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
                start.elapsed() < scaled(Duration::from_secs(30)),
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
        self.wait_exit(scaled(Duration::from_secs(30)))
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Stops with `sig`, checks a clean exit, returns (meta, events, stderr).
    pub fn stop(mut self, sig: libc::c_int) -> (RecordingMeta, Vec<Event>, String) {
        // The last events reach the ring buffer after the traffic that made them.
        std::thread::sleep(scaled(Duration::from_millis(300)));
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
    run_traffic_in(None)
}

/// A `python3` command, run inside `netns` when given (`ip netns exec`
/// execs it: the pid is python's).
fn python_in(netns: Option<&NamedNetns>) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &ns.name, "python3"]);
            c
        }
        None => Command::new("python3"),
    }
}

/// [`run_traffic`] inside `netns` (only its own loopback traffic there).
pub fn run_traffic_in(netns: Option<&NamedNetns>) -> Traffic {
    let mut server = python_in(netns)
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
    let client = python_in(netns)
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

/// A network namespace this test created (`ip netns add`), with its
/// loopback up; deleted on drop, with everything in it (sockets, veth
/// ends, sysctls, nftables tables), also when the test fails.
pub struct NamedNetns {
    pub name: String,
}

impl NamedNetns {
    pub fn add(name: String) -> NamedNetns {
        sh("ip", &["netns", "add", &name]);
        let ns = NamedNetns { name };
        sh("ip", &["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    /// The namespace's inode number (the `netns` column).
    pub fn inode(&self) -> u32 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/run/netns/{}", self.name))
            .expect("netns file")
            .ino() as u32
    }
}

impl Drop for NamedNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.name]).status();
    }
}

/// A helper process of testdata/traffic.py whose first stdout line is read.
pub struct Helper {
    pub child: Child,
    pub first_line: Vec<String>,
    /// Its stdin: `hold-client ... -` waits for a line there ([`Helper::go`]).
    stdin: Option<ChildStdin>,
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
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn traffic.py");
        let stdin = child.stdin.take();
        let mut out = BufReader::new(child.stdout.take().expect("stdout piped"));
        let mut line = String::new();
        out.read_line(&mut line).expect("first line");
        // Keep draining so the helper never blocks on a full pipe.
        std::thread::spawn(move || for _ in out.lines() {});
        Helper {
            child,
            first_line: line.split_whitespace().map(str::to_owned).collect(),
            stdin,
        }
    }

    /// Releases a helper that waits for a line on stdin (`hold-client ... -`).
    pub fn go(&mut self) {
        let mut stdin = self.stdin.take().expect("go() once per helper");
        stdin.write_all(b"go\n").expect("write to the helper's stdin");
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
            start.elapsed() < scaled(Duration::from_secs(15)),
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

/// One line of `record --list-probes`: KIND RUNG PROBE STATUS.
#[derive(Debug, Clone)]
pub struct ProbeLine {
    pub kind: String,
    /// 1-based; `None` for a kind with no rung attached (`-`).
    pub rung: Option<u32>,
    pub probe: String,
    pub status: String,
}

impl ProbeLine {
    pub fn used(&self) -> bool {
        self.status == "attached (used)"
    }
}

/// `record --list-probes` on this kernel, parsed.
#[derive(Debug)]
pub struct ProbeReport {
    pub text: String,
    pub lines: Vec<ProbeLine>,
}

impl ProbeReport {
    pub fn parse(text: &str) -> ProbeReport {
        let mut lines = Vec::new();
        // The table ends at the first blank line (the owner store follows).
        for l in text
            .lines()
            .skip_while(|l| !l.starts_with("KIND "))
            .skip(1)
            .take_while(|l| !l.is_empty())
        {
            let mut rest = l.trim_start();
            let mut col = || {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                let (word, tail) = rest.split_at(end);
                rest = tail.trim_start();
                word.to_owned()
            };
            let (kind, rung, probe) = (col(), col(), col());
            assert!(
                !kind.is_empty() && !rest.is_empty(),
                "unexpected --list-probes line {l:?}:\n{text}"
            );
            lines.push(ProbeLine {
                kind,
                rung: rung.parse().ok(),
                probe,
                status: rest.to_owned(),
            });
        }
        assert!(!lines.is_empty(), "no rung in the --list-probes report:\n{text}");
        ProbeReport {
            text: text.to_owned(),
            lines,
        }
    }

    /// The rung recording `kind` ("attached (used)"); `None` when the kernel
    /// offers none (then the report says NOT RECORDED). Kinds with one
    /// ladder only (not `owner`).
    pub fn used(&self, kind: &str) -> Option<&ProbeLine> {
        let used: Vec<&ProbeLine> = self.lines.iter().filter(|l| l.kind == kind && l.used()).collect();
        assert!(used.len() <= 1, "{kind}: more than one rung used:\n{}", self.text);
        if used.is_empty() {
            assert!(
                self.lines
                    .iter()
                    .any(|l| l.kind == kind && l.status.starts_with("NOT RECORDED")),
                "{kind}: neither used nor NOT RECORDED:\n{}",
                self.text
            );
        }
        used.first().copied()
    }
}

/// Runs `record --list-probes ARGS`; `None` (after skip) when record has no
/// eBPF programs.
pub fn list_probes(test: &str, args: &[&str]) -> Option<ProbeReport> {
    let out = Command::new(env!("CARGO_BIN_EXE_record"))
        .arg("--list-probes")
        .args(args)
        .output()
        .expect("run record --list-probes");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("built without its eBPF programs") {
        skip(test, "record was built without eBPF programs (run scripts/bootstrap)");
        return None;
    }
    assert!(out.status.success(), "record --list-probes {args:?}: {stderr}");
    Some(ProbeReport::parse(&String::from_utf8_lossy(&out.stdout)))
}

/// The rung a recording used for `kind`, from its metadata, checked to be
/// the first of the ladder that attached: every rung tried before it failed
/// with a reason, none was tried after it, rung numbers count up from 0.
/// `None` when no rung attached (every rung then failed with a reason).
///
/// A kind's main ladder is its first; `reset_sent` is followed by
/// supplements on older kernels (see probes.rs), `owner` has several.
pub fn used_rung<'m>(meta: &'m RecordingMeta, kind: &str) -> Option<&'m ProbeStatus> {
    let tried: Vec<&ProbeStatus> = meta
        .probes
        .iter()
        .filter(|p| p.kind == kind)
        .enumerate()
        .take_while(|(i, p)| *i == 0 || p.rung != 0)
        .map(|(_, p)| p)
        .collect();
    assert!(!tried.is_empty(), "{kind}: no rung tried: {:?}", meta.probes);
    for (i, p) in tried.iter().enumerate() {
        assert_eq!(p.rung, i as u32, "{kind}: rungs tried in ladder order: {tried:?}");
        let last = i + 1 == tried.len();
        if last && p.used {
            assert!(p.attached, "{kind}: used but not attached: {tried:?}");
        } else {
            assert!(
                !p.used && !p.attached && !p.detail.is_empty(),
                "{kind}: a rung before the used one must have failed with a reason: {tried:?}"
            );
        }
    }
    tried.last().copied().filter(|p| p.used)
}

/// [`used_rung`] for a kind every kernel this project supports records.
pub fn expect_rung<'m>(meta: &'m RecordingMeta, kind: &str) -> &'m str {
    &used_rung(meta, kind)
        .unwrap_or_else(|| panic!("{kind}: no rung attached on this kernel: {:?}", meta.probes))
        .probe
}

/// Runs `nft -f -` with `script`; panics with nft's complaint on failure.
pub fn nft(script: &str) {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("nft not runnable: {e}"));
    child
        .stdin
        .take()
        .expect("nft stdin")
        .write_all(script.as_bytes())
        .expect("write the nft script");
    let out = child.wait_with_output().expect("wait nft");
    assert!(
        out.status.success(),
        "nft -f - <<{script}\n: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An nftables table with one input-hook rule, deleted when dropped. It
/// drops on input, after the sender's transmit succeeded, so the sender's
/// retransmissions are real ones (a drop on output fails the transmit, which
/// the kernel does not count as a retransmission). One `nft` process per
/// change: each costs up to seconds on an emulated kernel.
pub struct DropRule(String);

impl DropRule {
    /// `tag` keeps tables of tests running in parallel apart; `rule` is nft
    /// rule syntax, e.g. `iif lo tcp dport 1234 drop`.
    pub fn new(tag: &str, rule: &str) -> DropRule {
        let table = format!("deeptcp_live_{}_{tag}", std::process::id());
        // Delete a stale table of the same name in the same transaction.
        nft(&format!(
            "add table inet {table}\ndelete table inet {table}\nadd table inet {table}\n\
             add chain inet {table} in {{ type filter hook input priority 0 ; }}\n\
             add rule inet {table} in {rule}\n"
        ));
        DropRule(table)
    }
}

impl Drop for DropRule {
    fn drop(&mut self) {
        let _ = Command::new("nft").args(["delete", "table", "inet", &self.0]).status();
    }
}

/// The retransmission count /proc/net/tcp shows for the IPv4 socket (or
/// request socket) with local port `local` and remote port `remote`:
/// `icsk_retransmits`, or the SYN-ACK timeouts of a request socket.
pub fn tcp4_retransmits(local: u16, remote: u16) -> Option<u32> {
    let text = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    let port = |addr: &str| addr.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
    text.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() > 6 && port(f[1]) == Some(local) && port(f[2]) == Some(remote) {
            f[6].parse().ok()
        } else {
            None
        }
    })
}

/// A counter of /proc/net/netstat or /proc/net/snmp, e.g. ("TcpExt", "TCPLossProbes").
pub fn net_counter(group: &str, name: &str) -> u64 {
    for file in ["/proc/net/netstat", "/proc/net/snmp"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.chunks(2) {
            let [names, values] = pair else { continue };
            let prefix = format!("{group}:");
            let (Some(n), Some(v)) = (names.strip_prefix(&prefix), values.strip_prefix(&prefix)) else {
                continue;
            };
            if let Some(i) = n.split_whitespace().position(|x| x == name) {
                if let Some(v) = v.split_whitespace().nth(i).and_then(|v| v.parse().ok()) {
                    return v;
                }
            }
        }
    }
    panic!("no counter {group}:{name} in /proc/net/netstat or /proc/net/snmp");
}

/// Whether process `pid` has handlers for SIGINT and SIGTERM (SigCgt in
/// /proc/PID/status): record installs them first thing, so from then on a
/// signal ends it through its own code, not the default action.
pub fn catches_stop_signals(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let Some(mask) = status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
    else {
        return false;
    };
    let bit = |sig: libc::c_int| 1u64 << (sig - 1);
    mask & bit(libc::SIGINT) != 0 && mask & bit(libc::SIGTERM) != 0
}
