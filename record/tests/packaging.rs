//! What packagers, `scripts/install` and scripts rely on, through the built
//! binary (no root needed): `record --version`, the hidden `--generate
//! KIND`, and the exit status of bad usage.

use std::process::{Command, Output};

use deeptcp_format::SCHEMA_VERSION;

const BIN: &str = env!("CARGO_BIN_EXE_record");
const KINDS: [&str; 4] = ["man", "complete-bash", "complete-zsh", "complete-fish"];

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn stdout_of_success(args: &[&str]) -> String {
    let o = run(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "record {args:?}: {:?} {err}", o.status);
    assert!(err.is_empty(), "record {args:?}: {err}");
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn version_names_commit_schema_and_ebpf_object() {
    let out = stdout_of_success(&["--version"]);
    let first = out.lines().next().unwrap_or_default();
    let head = format!("record {} (git ", env!("CARGO_PKG_VERSION"));
    assert!(first.starts_with(&head) && first.ends_with(')'), "{out}");
    let schema = format!("file schema written: events {SCHEMA_VERSION}, stacks {SCHEMA_VERSION}");
    assert!(out.contains(&schema), "{out}");
    assert!(
        out.contains("eBPF object: built in (") || out.contains("eBPF object: not built in: "),
        "{out}"
    );
    // -V stays short.
    assert_eq!(
        stdout_of_success(&["-V"]),
        format!("record {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// Every kind prints through the built binary with no other argument (no
/// `-o`, no root); that each covers every option is a unit test of the
/// command definition (cli.rs).
#[test]
fn generate_needs_nothing_else() {
    for kind in KINDS {
        let text = stdout_of_success(&["--generate", kind]);
        assert!(text.contains("record"), "--generate {kind}: {text}");
    }
    let man = stdout_of_success(&["--generate", "man"]);
    assert!(man.contains(".TH record 1 "), "{man}");
    let help = stdout_of_success(&["--help"]);
    assert!(!help.contains("--generate"), "--generate is hidden: {help}");
}

#[test]
fn generate_rejects_unknown_kinds_and_other_options() {
    for args in [&["--generate", "pdf"][..], &["--generate", "man", "-o", "t.parquet"]] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(o.stdout.is_empty(), "{args:?}");
    }
}

/// README: "1 on any error (one line on stderr), 2 for bad usage". Options
/// that clap takes but that do not go together are bad usage too; an
/// output that cannot be created is an error of the run.
#[test]
fn bad_usage_exits_2_and_failures_exit_1() {
    for (args, needle) in [
        (&["--force"][..], "error: --force needs -o FILE or --hive DIR"),
        (&["-o", "t.parquet", "--json"], "error: --json prints JSON lines"),
        (
            &["--disable-probe", "kprobe:nope"],
            "error: --disable-probe kprobe:nope: no such probe",
        ),
        (&["--duration", "5x"], "error: invalid value '5x'"),
    ] {
        let o = run(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with(needle), "{args:?}: {err}");
        assert!(err.contains("try '--help'"), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("no-such-dir/t.parquet");
    let o = run(&["-o", out.to_str().unwrap(), "--duration", "1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.starts_with("record: ") && err.lines().count() == 1, "{err}");
    assert!(!out.exists());
}
