//! `analyze --report` and `--trace-json` end to end, on the committed
//! fixtures and on recordings written here.
//!
//! - The trace JSON is checked for the trace-event format's shape on every
//!   fixture: metadata names every process and track, slices have `dur >= 0`,
//!   a socket's state slices do not overlap and lie inside its connection
//!   slice, instants lie inside it too.
//! - The HTML page is checked structurally: self-contained (no address, no
//!   external reference of any kind), four charts, strings from the
//!   recording escaped.
//! - The page is opened in a real headless browser (Debian's `chromium`):
//!   it must run its script without a console message (its `<body>` then
//!   says `data-rendered="ok"`), and a screenshot must show the charts:
//!   the PNG is decoded and each chart's colour must cover many pixels, in
//!   the page's order. Without chromium the test is skipped with the
//!   reason, unless `DEEPTCP_REQUIRE_INTEROP=1` (set by CI), where that is
//!   a failure (`scripts/bootstrap` installs it).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use deeptcp_format::testing;
use deeptcp_format::{Attribution, ClockAnchor, Event, EventKind, EventWriter, RecordingMeta, TcpState, WriterOptions};
use serde_json::Value;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

fn analyze(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_analyze"))
        .args(args)
        .current_dir(testdata())
        .env("TZ", "UTC")
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "analyze failed: {}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// One socket's events in a trace, times in µs: (connection slice, state
/// slices, instants).
type Track = (Option<(f64, f64)>, Vec<(f64, f64)>, Vec<f64>);

/// The shape of a trace: see the module docs. Returns (tracks, slices, instants).
fn check_trace(json: &str, what: &str) -> (usize, usize, usize) {
    let v: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{what}: not JSON: {e}"));
    assert_eq!(v["displayTimeUnit"], "ns", "{what}");
    let events = v["traceEvents"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no traceEvents"));
    let mut process_names: HashSet<u64> = HashSet::new();
    let mut thread_names: HashMap<u64, u64> = HashMap::new();
    let mut tracks: BTreeMap<u64, Track> = BTreeMap::new();
    let (mut slices, mut instants) = (0, 0);
    for e in events {
        let pid = e["pid"].as_u64().unwrap_or_else(|| panic!("{what}: pid in {e}"));
        let tid = e["tid"].as_u64().unwrap_or_else(|| panic!("{what}: tid in {e}"));
        let name = e["name"].as_str().unwrap_or_else(|| panic!("{what}: name in {e}"));
        assert!(!name.is_empty(), "{what}: {e}");
        let ts = e["ts"].as_f64().unwrap_or_else(|| panic!("{what}: ts in {e}"));
        match e["ph"].as_str() {
            Some("M") => match name {
                "process_name" => {
                    assert!(e["args"]["name"].is_string(), "{e}");
                    assert!(process_names.insert(pid), "{what}: process {pid} named twice");
                }
                "thread_name" => {
                    assert!(e["args"]["name"].is_string(), "{e}");
                    assert!(process_names.contains(&pid), "{what}: thread before its process: {e}");
                    let before = thread_names.insert(tid, pid);
                    assert!(before.is_none(), "{what}: track {tid} named twice");
                }
                "thread_sort_index" => assert!(e["args"]["sort_index"].is_u64(), "{e}"),
                _ => panic!("{what}: unexpected metadata {e}"),
            },
            Some("X") => {
                slices += 1;
                let dur = e["dur"].as_f64().unwrap_or_else(|| panic!("{what}: dur in {e}"));
                assert!(dur >= 0.0 && ts >= 0.0, "{what}: {e}");
                assert_eq!(
                    thread_names.get(&tid),
                    Some(&pid),
                    "{what}: slice on an unnamed track: {e}"
                );
                let t = tracks.entry(tid).or_default();
                match e["cat"].as_str() {
                    Some("conn") => {
                        assert!(t.0.is_none(), "{what}: two connection slices on track {tid}");
                        assert!(e["args"]["close_reason"].is_string(), "{e}");
                        t.0 = Some((ts, ts + dur));
                    }
                    Some("state") => t.1.push((ts, ts + dur)),
                    _ => panic!("{what}: unexpected slice {e}"),
                }
            }
            Some("i") => {
                instants += 1;
                assert_eq!(e["s"], "t", "{what}: {e}");
                assert_eq!(
                    thread_names.get(&tid),
                    Some(&pid),
                    "{what}: instant on an unnamed track: {e}"
                );
                tracks.entry(tid).or_default().2.push(ts);
            }
            _ => panic!("{what}: unexpected phase {e}"),
        }
    }
    // Within ns rounding of the µs decimals.
    let eps = 1e-6;
    for (tid, (conn, states, marks)) in &tracks {
        let (start, end) = conn.unwrap_or_else(|| panic!("{what}: track {tid} has no connection slice"));
        let mut prev_end = start;
        for &(s, e) in states {
            assert!(
                s + eps >= prev_end,
                "{what}: track {tid}: state slices overlap ({s} < {prev_end})"
            );
            assert!(
                e <= end + eps,
                "{what}: track {tid}: state slice ends after its connection"
            );
            prev_end = e;
        }
        for &m in marks {
            assert!(
                m + eps >= start && m <= end + eps,
                "{what}: track {tid}: instant {m} outside [{start}, {end}]"
            );
        }
    }
    (tracks.len(), slices, instants)
}

#[test]
fn trace_json_has_the_trace_event_shape_on_every_fixture() {
    for input in [
        "loopback.parquet",
        "longlived.parquet",
        "synthetic/web1.parquet",
        "synthetic/db1.parquet",
        "compat/v1-loopback.parquet",
        "synthetic",
    ] {
        let json = ok(&analyze(&["--trace-json", "-", input]));
        let conns = ok(&analyze(&["--conn", "--json", input])).lines().count();
        let (tracks, slices, instants) = check_trace(&json, input);
        // A track per connection, and a slice for each at least.
        assert_eq!(tracks, conns, "{input}");
        assert!(slices >= conns, "{input}");
        eprintln!("{input}: {tracks} tracks, {slices} slices, {instants} instants");
    }
    // Marks are there where the recording has them.
    let (_, _, instants) = check_trace(&ok(&analyze(&["--trace-json", "-", "synthetic/web1.parquet"])), "web1");
    assert!(instants >= 20, "{instants}");
}

#[test]
fn trace_json_to_a_file_equals_stdout_and_filters_apply() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.json");
    let p = path.to_str().unwrap();
    let o = analyze(&["--trace-json", p, "-p", "1695", "synthetic/web1.parquet"]);
    assert_eq!(ok(&o), "", "nothing on stdout");
    let file = std::fs::read_to_string(&path).unwrap();
    let stdout = ok(&analyze(&["--trace-json", "-", "-p", "1695", "synthetic/web1.parquet"]));
    assert_eq!(file, stdout);
    let v: Value = serde_json::from_str(&file).unwrap();
    for e in v["traceEvents"].as_array().unwrap() {
        if e["ph"] == "X" && e["cat"] == "conn" {
            assert_eq!(e["args"]["pid"], 1695, "{e}");
        }
    }
}

#[test]
fn bad_output_paths_and_combinations() {
    let o = analyze(&["--report", "/nonexistent-dir/r.html", "loopback.parquet"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cannot create /nonexistent-dir/r.html"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    for argv in [
        &["--report", "r.html", "--conn", "loopback.parquet"][..],
        &["--trace-json", "t.json", "--json", "loopback.parquet"],
        &["--report", "r.html", "--trace-json", "t.json", "loopback.parquet"],
        &["--report", "", "loopback.parquet"],
    ] {
        assert_eq!(analyze(argv).status.code(), Some(2), "{argv:?}");
    }
    // A device is written to, never removed, when writing fails.
    if Path::new("/dev/full").exists() {
        let o = analyze(&["--trace-json", "/dev/full", "loopback.parquet"]);
        assert_eq!(o.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&o.stderr).contains("cannot write /dev/full"));
        assert!(Path::new("/dev/full").exists());
    }
}

/// Every way a page can refer to something outside itself.
const EXTERNAL: &[&str] = &[
    "http:", "https:", "//", "src=", "href=", "url(", "@import", "<link", "<iframe", "<img", "xlink",
];

/// A self-contained page: nothing from anywhere else.
fn check_self_contained(html: &str) {
    // `//` is also a JS comment or part of a string: the script has none.
    for needle in EXTERNAL {
        assert!(!html.contains(needle), "the page holds {needle:?}");
    }
}

#[test]
fn report_html_is_self_contained_with_four_charts() {
    let html = ok(&analyze(&["--report", "-", "synthetic/web1.parquet"]));
    assert!(html.starts_with("<!DOCTYPE html>"));
    check_self_contained(&html);
    assert_eq!(html.matches("<svg class=\"chart\"").count(), 4);
    for id in ["chart-over-time", "chart-handshake", "chart-rtt", "chart-timeline"] {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
    }
    // web1 has 25 connections: all of them get a lane (at most 50).
    assert_eq!(html.matches("<g class=\"lane\">").count(), 25);
    assert!(html.contains("<b>25</b><span>connections</span>"));
    assert!(html.contains("connection refused"));
    // Filters select the connections.
    let html = ok(&analyze(&["--report", "-", "-D", "9999", "synthetic/web1.parquet"]));
    assert_eq!(html.matches("<g class=\"lane\">").count(), 2);
    assert!(html.contains("filtered"));
}

fn event(i: i64, kind: EventKind) -> Event {
    Event {
        mono_ns: 1_000_000_000 + i * 1_000_000,
        pid: 4242,
        tid: 4242,
        comm: "<b>x&\"y'</b>".into(),
        saddr: "10.0.0.1".parse::<IpAddr>().unwrap(),
        daddr: "10.0.0.2".parse::<IpAddr>().unwrap(),
        sport: 40000,
        dport: 443,
        newstate: Some(TcpState::Established),
        netns: 4026531840,
        cookie: 77,
        attribution: Attribution::Task,
        ..testing::event(kind)
    }
}

#[test]
fn strings_from_the_recording_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evil.parquet");
    let meta = RecordingMeta {
        schema_version: deeptcp_format::SCHEMA_VERSION,
        host: "<script>alert(1)</script>\u{1b}[2J".into(),
        boot_id: "b".into(),
        clock: ClockAnchor {
            realtime_ns: 1_776_160_800_000_000_000,
            monotonic_ns: 1_000_000_000,
        },
        ..Default::default()
    };
    let transition = |i, old, new| Event {
        oldstate: Some(old),
        newstate: Some(new),
        ..event(i, EventKind::StateChange)
    };
    let events = [
        transition(0, TcpState::Close, TcpState::SynSent),
        transition(1, TcpState::SynSent, TcpState::Established),
        event(2, EventKind::Retransmit),
        event(3, EventKind::ResetRecv),
        transition(4, TcpState::Established, TcpState::Close),
    ];
    let mut w = EventWriter::new(File::create(&path).unwrap(), &meta, WriterOptions::default()).unwrap();
    for e in &events {
        w.push(e).unwrap();
    }
    w.finish(0).unwrap();
    let p = path.to_str().unwrap();
    let html = ok(&analyze(&["--report", "-", p]));
    assert!(!html.contains("<script>alert"), "host not escaped");
    assert!(!html.contains("<b>x"), "comm not escaped");
    assert!(!html.contains('\u{1b}'), "control character not escaped");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;\\u{1b}[2J"));
    assert!(html.contains("&lt;b&gt;x&amp;&quot;y&#39;&lt;/b&gt; 4242 40000"));
    assert_eq!(html.matches("<script>").count(), 1, "only the page's own script");
    let json = ok(&analyze(&["--trace-json", "-", p]));
    let (tracks, _, instants) = check_trace(&json, "evil");
    assert_eq!((tracks, instants), (1, 2));
    assert!(!json.contains('\u{1b}'));
}

/// Debian's chromium, if installed.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

/// Runs chromium headless on `page` with `args`, killing it after 120 s.
fn run_chromium(bin: &Path, profile: &Path, args: &[&str], page: &Path) -> Output {
    let child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--enable-logging=stderr", "--v=0", "--window-size=1400,2000"])
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting chromium");
    let id = child.id();
    let start = Instant::now();
    let watchdog = std::thread::spawn(move || {
        while start.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_millis(200));
            // SAFETY: kill(2) with signal 0 only checks that the process exists.
            if unsafe { libc::kill(id as i32, 0) } != 0 {
                return;
            }
        }
        // SAFETY: our own child, still running after the deadline.
        unsafe { libc::kill(id as i32, libc::SIGKILL) };
    });
    let out = child.wait_with_output().expect("waiting for chromium");
    let _ = watchdog.join();
    out
}

/// RGB of a `#rrggbb` colour.
fn rgb(hex: &str) -> [u8; 3] {
    let v = u32::from_str_radix(hex.trim_start_matches('#'), 16).unwrap();
    [(v >> 16) as u8, (v >> 8) as u8, v as u8]
}

#[test]
fn report_renders_in_a_headless_browser() {
    let Some(bin) = chromium() else {
        return testing::python::skip("browser test", "chromium is not installed");
    };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    let o = analyze(&["--report", page.to_str().unwrap(), "synthetic/web1.parquet"]);
    ok(&o);

    // The script ran, without a console message (errors included).
    let dom = run_chromium(&bin, &dir.path().join("profile-dom"), &["--dump-dom"], &page);
    let stderr = String::from_utf8_lossy(&dom.stderr);
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    assert!(!stderr.contains("Uncaught"), "{stderr}");
    assert!(
        dom_text.contains("data-rendered=\"ok\"") && dom_text.contains("data-charts=\"4\""),
        "the page's script did not mark it rendered: {}",
        &dom_text[..dom_text.len().min(400)]
    );
    eprintln!("browser: body data-rendered=\"ok\" data-charts=\"4\", no console messages");

    // The screenshot shows the charts.
    let shot = dir.path().join("shot.png");
    let arg = format!("--screenshot={}", shot.display());
    let s = run_chromium(&bin, &dir.path().join("profile-shot"), &[&arg], &page);
    assert!(shot.is_file(), "no screenshot: {}", String::from_utf8_lossy(&s.stderr));
    let decoder = png::Decoder::new(File::open(&shot).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let (w, h) = (info.width as usize, info.height as usize);
    assert_eq!((w, h), (1400, 2000));
    // Pixels of each chart colour: count and mean row.
    let colours = [
        ("connections bars", "#2563eb"),
        ("failure bars", "#dc2626"),
        ("handshake histogram", "#0d9488"),
        ("RTT histogram", "#7c3aed"),
        ("ESTABLISHED spans", "#16a34a"),
        ("SYN_SENT spans", "#f59e0b"),
    ];
    let mut found = vec![(0usize, 0usize); colours.len()];
    let mut background = 0usize;
    for y in 0..h {
        for x in 0..w {
            let i = (y * w + x) * channels;
            let px = [buf[i], buf[i + 1], buf[i + 2]];
            if px == [255, 255, 255] {
                background += 1;
            }
            for (k, (_, hex)) in colours.iter().enumerate() {
                if px == rgb(hex) {
                    found[k].0 += 1;
                    found[k].1 += y;
                }
            }
        }
    }
    let mean_row = |k: usize| found[k].1 / found[k].0.max(1);
    for (k, (what, hex)) in colours.iter().enumerate() {
        eprintln!(
            "screenshot: {what} ({hex}): {} pixels, mean row {}",
            found[k].0,
            mean_row(k)
        );
        assert!(found[k].0 >= 300, "{what} ({hex}): only {} pixels", found[k].0);
    }
    assert!(background < w * h * 95 / 100, "the page is nearly blank");
    // In the page's order: over time, then the histograms, then the timeline.
    assert!(mean_row(0) < mean_row(2) && mean_row(0) < mean_row(3), "{found:?}");
    assert!(mean_row(2) < mean_row(4) && mean_row(3) < mean_row(4), "{found:?}");
}
