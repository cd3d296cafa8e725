//! Golden tests: `analyze`'s output on recorded and synthetic fixtures must
//! not change by accident.
//!
//! Two kinds of checks:
//!
//! - **Per fixture.** For every recording in a fixture directory
//!   ([`FIXTURE_DIRS`]: `testdata/` with the real recordings and
//!   `testdata/synthetic/` with the generator's; stack sidecars
//!   `*.stacks.parquet` and hidden in-progress files excluded) and every mode
//!   in [`MODES`], the binary's stdout must equal
//!   `testdata/expected/[<subdir>/]<stem>.<mode>.txt`. A new recording is
//!   picked up by dropping it in one of the directories and blessing it.
//! - **Cases** ([`CASES`]): a name and a command line run inside
//!   `testdata/` (several inputs, sorting, each filter), compared with
//!   `testdata/expected/<name>.txt`.
//!
//! Every run of `analyze` gets `TZ=UTC`: `-t` prints local wall-clock
//! times, which must not depend on the machine's zone.
//!
//! `DEEPTCP_BLESS=1 cargo test -p deeptcp-analyze --test golden` (re)writes
//! the expected files from the current output instead of comparing; review
//! the diff before committing it. Without it, a per-fixture mode whose
//! expected file is absent is skipped (and named), but a fixture without any
//! expected file fails (it was added without being blessed), and so does a
//! case without one.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Mode name (the `<mode>` in the expected file name) and the flags it runs with.
const MODES: &[(&str, &[&str])] = &[
    ("table", &[]),
    ("t", &["-t"]),
    ("seconds", &["--seconds"]),
    ("K", &["-K"]),
    ("info", &["--info"]),
    ("conn", &["--conn"]),
    ("json", &["--json"]),
    ("conn-json", &["--conn", "--json"]),
];

/// Directories (under `testdata/`) whose recordings get every mode, and
/// where under `testdata/expected/` their outputs live.
const FIXTURE_DIRS: &[(&str, &str)] = &[("", ""), ("synthetic", "synthetic")];

/// Named command lines run in `testdata/` (see `testdata/make-synthetic`
/// for what the synthetic recordings hold: web1's processes are nginx 1251,
/// postgres 1362 in netns 4026532300, curl 1473, python3 1584, java 1695,
/// sshd 1806).
const CASES: &[(&str, &[&str])] = &[
    // several inputs: a directory, two hosts, merged by time
    ("two-hosts.table", &["-t", "synthetic"]),
    ("two-hosts.seconds", &["--seconds", "synthetic"]),
    ("two-hosts.conn", &["--conn", "synthetic"]),
    (
        "two-hosts.json",
        &[
            "--json",
            "--kind",
            "snapshot,sock_error",
            "synthetic/db1.parquet",
            "synthetic/web1.parquet",
        ],
    ),
    ("two-hosts.conn-json", &["--conn", "--json", "synthetic"]),
    ("glob.conn", &["--conn", "synthetic/w*.parquet"]),
    // --conn ordering
    (
        "web1.conn-sort-duration",
        &["--conn", "--sort", "duration", "synthetic/web1.parquet"],
    ),
    (
        "web1.conn-sort-retrans-top5",
        &["--conn", "--sort", "retrans", "--top", "5", "synthetic/web1.parquet"],
    ),
    (
        "web1.conn-sort-start",
        &["--conn", "--sort", "start", "synthetic/web1.parquet"],
    ),
    ("web1.conn-top3", &["--conn", "--top", "3", "synthetic/web1.parquet"]),
    // each filter, on events
    ("web1.filter-pid", &["-p", "1584", "synthetic/web1.parquet"]),
    (
        "web1.filter-pid-or-dport",
        &["-p", "1473", "-p", "1695", "-D", "443", "synthetic/web1.parquet"],
    ),
    (
        "web1.filter-netns",
        &["-N", "net:[4026532300]", "synthetic/web1.parquet"],
    ),
    ("web1.filter-sport", &["-S", "80", "synthetic/web1.parquet"]),
    ("web1.filter-dport", &["-D", "9999", "synthetic/web1.parquet"]),
    ("web1.filter-port", &["--port", "5432", "synthetic/web1.parquet"]),
    (
        "web1.filter-saddr-v6",
        &["-s", "2001:db8::/32", "synthetic/web1.parquet"],
    ),
    (
        "web1.filter-daddr-cidr",
        &["-d", "192.0.2.0/24", "-d", "203.0.113.0/24", "synthetic/web1.parquet"],
    ),
    ("web1.filter-comm", &["--comm", "java", "synthetic/web1.parquet"]),
    (
        "web1.filter-kind",
        &[
            "--kind",
            "retransmit,reset_recv",
            "--kind",
            "reset_sent",
            "synthetic/web1.parquet",
        ],
    ),
    (
        "web1.filter-since-until",
        &["-t", "--since", "+20ms", "--until", "+40ms", "synthetic/web1.parquet"],
    ),
    (
        "two-hosts.filter-since-rfc3339",
        &["-t", "--since", "2026-04-14T10:00:00.100Z", "synthetic"],
    ),
    // filters select connections
    (
        "web1.conn-filter-dport",
        &["--conn", "-D", "443", "synthetic/web1.parquet"],
    ),
    (
        "web1.conn-filter-kind",
        &[
            "--conn",
            "--kind",
            "zero_window_recv,zero_window_sent",
            "synthetic/web1.parquet",
        ],
    ),
    (
        "web1.json-filter-comm",
        &["--json", "--comm", "postgres", "synthetic/web1.parquet"],
    ),
    // the real v1 recording kept for compatibility
    ("compat-v1-loopback.conn", &["--conn", "compat/v1-loopback.parquet"]),
    // statistics
    ("web1.stats", &["--stats", "synthetic/web1.parquet"]),
    (
        "web1.stats-by-dport",
        &["--stats", "--by", "dport", "synthetic/web1.parquet"],
    ),
    (
        "web1.stats-by-comm-json",
        &["--stats", "--by", "comm", "--json", "synthetic/web1.parquet"],
    ),
    ("two-hosts.stats-by-host", &["--stats", "--by", "host", "synthetic"]),
    (
        "web1.stats-by-daddr-filter",
        &[
            "--stats",
            "--by",
            "daddr",
            "-d",
            "192.0.2.0/24",
            "synthetic/web1.parquet",
        ],
    ),
    (
        "loopback.stats-by-sport",
        &["--stats", "--by", "sport", "loopback.parquet"],
    ),
    ("compat-v1-loopback.stats", &["--stats", "compat/v1-loopback.parquet"]),
    // trace-event JSON (--report's HTML is checked structurally in tests/report.rs)
    ("loopback.trace-json", &["--trace-json", "-", "loopback.parquet"]),
    (
        "web1.trace-json-filter",
        &["--trace-json", "-", "-D", "9999", "synthetic/web1.parquet"],
    ),
    ("two-hosts.trace-json", &["--trace-json", "-", "synthetic"]),
];

/// Differing lines shown per mismatch.
const MAX_DIFF_LINES: usize = 8;

fn testdata() -> PathBuf {
    let analyze = Path::new(env!("CARGO_MANIFEST_DIR"));
    analyze.parent().unwrap_or(analyze).join("testdata")
}

fn blessing() -> bool {
    std::env::var_os("DEEPTCP_BLESS").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Recordings in `dir`, sorted by name.
fn fixtures(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .map(|e| e.expect("listing testdata").path())
        .filter(|p| {
            let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
                return false;
            };
            p.is_file() && name.ends_with(".parquet") && !name.ends_with(".stacks.parquet") && !name.starts_with('.')
        })
        .collect();
    out.sort();
    out
}

/// Stdout of `analyze <args>` run in `dir`, so that nothing machine-specific
/// (absolute paths, the local time zone of `-t`'s wall-clock `TIME`) can
/// reach the output: the child runs with `TZ=UTC`.
fn run_in(dir: &Path, args: &[&str]) -> Result<String, String> {
    let o = Command::new(env!("CARGO_BIN_EXE_analyze"))
        .current_dir(dir)
        .env("TZ", "UTC")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run analyze: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "analyze {} exited with {}: {}",
            args.join(" "),
            o.status,
            String::from_utf8_lossy(&o.stderr).trim_end()
        ));
    }
    String::from_utf8(o.stdout).map_err(|e| format!("output is not UTF-8: {e}"))
}

/// Stdout of `analyze <flags> <name>`, run inside the fixture's directory.
fn run(fixture: &Path, flags: &[&str]) -> Result<String, String> {
    let dir = fixture.parent().expect("fixture has a directory");
    let name = fixture
        .file_name()
        .and_then(|n| n.to_str())
        .expect("fixture has a UTF-8 name");
    let mut args = flags.to_vec();
    args.push(name);
    run_in(dir, &args)
}

/// A readable report of where `actual` departs from `expected`: the first
/// [`MAX_DIFF_LINES`] differing lines, numbered, `-` expected / `+` actual.
fn diff(expected: &str, actual: &str) -> String {
    let exp: Vec<&str> = expected.lines().collect();
    let act: Vec<&str> = actual.lines().collect();
    let mut out = String::new();
    let mut shown = 0;
    for i in 0..exp.len().max(act.len()) {
        let (e, a) = (exp.get(i), act.get(i));
        if e == a {
            continue;
        }
        if shown == MAX_DIFF_LINES {
            let _ = writeln!(out, "    … (more differences not shown)");
            break;
        }
        shown += 1;
        let _ = writeln!(out, "    line {}:", i + 1);
        match e {
            Some(e) => {
                let _ = writeln!(out, "    - {e}");
            }
            None => {
                let _ = writeln!(out, "    - <no line>");
            }
        }
        match a {
            Some(a) => {
                let _ = writeln!(out, "    + {a}");
            }
            None => {
                let _ = writeln!(out, "    + <no line>");
            }
        }
    }
    if shown == 0 {
        // Same lines: the difference is in line endings or the final newline.
        let _ = writeln!(
            out,
            "    same lines, different line endings or final newline ({} vs {} bytes)",
            expected.len(),
            actual.len()
        );
    }
    let _ = writeln!(out, "    ({} expected lines, {} actual)", exp.len(), act.len());
    out
}

/// Compares `actual` with the file at `expected_path`, or writes it when
/// blessing. `Ok(false)`: no expected file.
fn compare(what: &str, expected_path: &Path, actual: &str, bless: bool, failures: &mut Vec<String>) -> bool {
    if bless {
        if let Some(dir) = expected_path.parent() {
            std::fs::create_dir_all(dir).expect("creating the expected directory");
        }
        std::fs::write(expected_path, actual).unwrap_or_else(|e| panic!("writing {}: {e}", expected_path.display()));
        println!("blessed {}", expected_path.display());
        return true;
    }
    let expected = match std::fs::read_to_string(expected_path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
        Err(e) => {
            failures.push(format!("{what}: reading {}: {e}", expected_path.display()));
            return true;
        }
    };
    if expected != actual {
        failures.push(format!(
            "{what}: output differs from {}\n{}",
            expected_path.display(),
            diff(&expected, actual)
        ));
    }
    true
}

/// Checks (or blesses) every fixture in `data` against `expected_dir`;
/// returns the failures, and prints what was skipped or written.
fn check_fixtures(data: &Path, expected_dir: &Path, bless: bool) -> Vec<String> {
    let fixtures = fixtures(data);
    if fixtures.is_empty() {
        println!("no fixtures in {}", data.display());
        return Vec::new();
    }
    let mut failures = Vec::new();
    for fixture in &fixtures {
        let stem = fixture
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("fixture names are UTF-8");
        let mut present = 0;
        for (mode, flags) in MODES {
            let expected_path = expected_dir.join(format!("{stem}.{mode}.txt"));
            let what = format!("{stem} [{mode}]");
            let actual = match run(fixture, flags) {
                Ok(out) => out,
                Err(e) => {
                    failures.push(format!("{what}: {e}"));
                    continue;
                }
            };
            if compare(&what, &expected_path, &actual, bless, &mut failures) {
                present += 1;
            } else {
                println!("skipped {what}: no {}", expected_path.display());
            }
        }
        if present == 0 {
            failures.push(format!(
                "{}: no expected output in {} (run with DEEPTCP_BLESS=1 to create it)",
                fixture.display(),
                expected_dir.display()
            ));
        }
    }
    failures
}

/// Checks (or blesses) `cases`, run in `data`, against `data/expected/<name>.txt`.
fn check_cases(data: &Path, cases: &[(&str, &[&str])], bless: bool) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, args) in cases {
        let expected_path = data.join("expected").join(format!("{name}.txt"));
        let what = format!("case {name} (analyze {})", args.join(" "));
        match run_in(data, args) {
            Ok(actual) => {
                if !compare(&what, &expected_path, &actual, bless, &mut failures) {
                    failures.push(format!(
                        "{what}: no {} (run with DEEPTCP_BLESS=1 to create it)",
                        expected_path.display()
                    ));
                }
            }
            Err(e) => failures.push(format!("{what}: {e}")),
        }
    }
    failures
}

/// Every fixture directory and every case under `data`.
fn check_all(data: &Path, bless: bool) -> Vec<String> {
    let mut failures = Vec::new();
    for (dir, expected) in FIXTURE_DIRS {
        failures.extend(check_fixtures(
            &data.join(dir),
            &data.join("expected").join(expected),
            bless,
        ));
    }
    failures
}

#[test]
fn golden() {
    let data = testdata();
    let mut failures = check_all(&data, blessing());
    failures.extend(check_cases(&data, CASES, blessing()));
    assert!(
        failures.is_empty(),
        "{} golden failure(s); if the change is intended, rerun with DEEPTCP_BLESS=1 and review the diff:\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every way of writing the instant of the `two-hosts.filter-since-rfc3339`
/// case (2026-04-14T10:00:00.100Z) selects the same events: DuckDB's
/// TIMESTAMP and TIMESTAMPTZ forms, and times of day, which fall on the date
/// (UTC, or in the zone given) on which the earliest recording started.
#[test]
fn other_time_forms_match_the_rfc3339_case() {
    let data = testdata();
    let path = data.join("expected").join("two-hosts.filter-since-rfc3339.txt");
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for since in [
        "2026-04-14 10:00:00.100",
        "2026-04-14 10:00:00.1",
        "2026-04-14 10:00:00.100000",
        "2026-04-14T10:00:00.100",
        "2026-04-14 10:00:00.100Z",
        "2026-04-14 12:00:00.100+02",
        "2026-04-14 12:00:00.100+02:00",
        "2026-04-14 05:30:00.100-0430",
        "10:00:00.100",
        "10:00:00.1Z",
        "12:00:00.1+02:00",
        // the recordings start at 10:00:00.010 and .020: still that date
        "10:00:00.100000000",
    ] {
        let actual = run_in(&data, &["-t", "--since", since, "synthetic"]).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            actual == expected,
            "--since {since:?} differs from {}:\n{}",
            path.display(),
            diff(&expected, &actual)
        );
    }
    // A window given as times of day is the window given as dates.
    let dates = run_in(
        &data,
        &[
            "-t",
            "--since",
            "2026-04-14T10:00:00.050Z",
            "--until",
            "2026-04-14T10:00:00.090Z",
            "synthetic",
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(dates.lines().count() > 2, "{dates}");
    for (since, until) in [("10:00:00.05", "10:00:00.09"), ("11:00:00.05+01", "11:00:00.09+01")] {
        let times =
            run_in(&data, &["-t", "--since", since, "--until", until, "synthetic"]).unwrap_or_else(|e| panic!("{e}"));
        assert!(times == dates, "{since}..{until}:\n{}", diff(&dates, &times));
    }
    // Relative offsets: a bare number is seconds, like every duration.
    let ms = run_in(
        &data,
        &["-t", "--since", "+20ms", "--until", "+40ms", "synthetic/web1.parquet"],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let secs = run_in(
        &data,
        &["-t", "--since", "+0.02", "--until", "0.04", "synthetic/web1.parquet"],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(ms == secs, "{}", diff(&ms, &secs));
}

mod harness {
    use super::*;

    #[test]
    fn diff_names_first_differing_lines() {
        let d = diff("a\nb\nc\n", "a\nB\nc\nd\n");
        assert!(d.contains("line 2:\n    - b\n    + B\n"), "{d}");
        assert!(d.contains("line 4:\n    - <no line>\n    + d\n"), "{d}");
        assert!(!d.contains("line 1:"), "{d}");
        assert!(d.contains("(3 expected lines, 4 actual)"), "{d}");
        let d = diff("a\n", "a");
        assert!(d.contains("final newline"), "{d}");
        let many: String = (0..20).map(|i| format!("{i}\n")).collect();
        let d = diff(&many, "");
        assert_eq!(d.matches("line ").count(), MAX_DIFF_LINES, "{d}");
        assert!(d.contains("more differences not shown"));
    }

    #[test]
    fn fixture_selection() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.parquet", "a.parquet", "a.stacks.parquet", ".c.parquet", "notes.txt"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        std::fs::create_dir(dir.path().join("d.parquet")).unwrap();
        let names: Vec<String> = fixtures(dir.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.parquet", "b.parquet"]);
        assert!(fixtures(&dir.path().join("absent")).is_empty());
    }

    #[test]
    fn cases_need_their_expected_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        tiny_recording(data);
        let cases: &[(&str, &[&str])] = &[("tiny-conn", &["--conn", "tiny.parquet"]), ("bad", &["nope.parquet"])];
        let f = check_cases(data, cases, false);
        assert_eq!(f.len(), 2, "{f:#?}");
        assert!(f[0].contains("no ") && f[0].contains("tiny-conn.txt"), "{}", f[0]);
        assert!(f[1].contains("exited with"), "{}", f[1]);
        assert_eq!(check_cases(data, &cases[..1], true), Vec::<String>::new());
        assert!(check_cases(data, &cases[..1], false).is_empty());
        std::fs::write(data.join("expected/tiny-conn.txt"), "x\n").unwrap();
        let f = check_cases(data, &cases[..1], false);
        assert!(f[0].contains("output differs"), "{f:#?}");
    }

    #[test]
    fn zero_fixtures_pass() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_all(dir.path(), false).is_empty());
        assert!(check_all(&dir.path().join("absent"), false).is_empty());
    }

    #[test]
    fn unreadable_fixture_fails_in_every_mode() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("junk.parquet"), b"junk").unwrap();
        let failures = check_fixtures(dir.path(), &dir.path().join("expected"), false);
        assert_eq!(failures.len(), MODES.len() + 1, "{failures:#?}");
        assert!(failures[0].contains("exited with"), "{failures:#?}");
        assert!(failures.last().unwrap().contains("no expected output"));
    }

    fn tiny_recording(dir: &Path) {
        use deeptcp_format::{testing, Event, EventKind, EventWriter, RecordingMeta, WriterOptions};
        let file = std::fs::File::create(dir.join("tiny.parquet")).unwrap();
        let meta = RecordingMeta {
            host: "h".into(),
            ..Default::default()
        };
        let mut w = EventWriter::new(file, &meta, WriterOptions::default()).unwrap();
        w.push(&Event {
            mono_ns: 5,
            pid: 7,
            tid: 7,
            comm: "curl".into(),
            sport: 1,
            dport: 2,
            ..testing::event(EventKind::ResetRecv)
        })
        .unwrap();
        w.finish(0).unwrap();
    }

    #[test]
    fn bless_then_check_then_detect_changes() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        tiny_recording(data);
        let none = check_fixtures(data, &data.join("expected"), false);
        assert_eq!(none.len(), 1, "{none:#?}");
        assert!(none[0].contains("no expected output"));

        assert!(check_fixtures(data, &data.join("expected"), true).is_empty());
        let expected = data.join("expected");
        for (mode, _) in MODES {
            assert!(expected.join(format!("tiny.{mode}.txt")).is_file(), "{mode}");
        }
        assert!(check_fixtures(data, &data.join("expected"), false).is_empty());

        // A missing mode is skipped, a changed one fails with a diff.
        std::fs::remove_file(expected.join("tiny.t.txt")).unwrap();
        let table = expected.join("tiny.table.txt");
        let text = std::fs::read_to_string(&table).unwrap();
        std::fs::write(&table, text.replace("curl", "wget")).unwrap();
        let failures = check_fixtures(data, &data.join("expected"), false);
        assert_eq!(failures.len(), 1, "{failures:#?}");
        assert!(
            failures[0].starts_with("tiny [table]: output differs"),
            "{}",
            failures[0]
        );
        assert!(failures[0].contains("line 2:\n    - tcp_reset()"), "{}", failures[0]);
    }
}
