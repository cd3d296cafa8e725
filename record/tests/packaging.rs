//! What packagers and `scripts/install` rely on, through the built binary
//! (no root needed): `record --version` and the hidden `--generate KIND`.

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

/// The `--long` options `--help` lists: lines `  -x, --long ...` and
/// `      --long ...` (descriptions and possible values are indented deeper).
fn long_options() -> Vec<String> {
    let help = stdout_of_success(&["--help"]);
    let longs: Vec<String> = help
        .lines()
        .filter(|l| {
            let body = l.trim_start();
            body.starts_with('-') && l.len() - body.len() <= 6
        })
        .filter_map(|l| l.split_whitespace().find(|t| t.starts_with("--")))
        .map(|t| {
            t[2..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect()
        })
        .collect();
    assert!(longs.len() > 10, "{longs:?} from {help}");
    assert!(!longs.iter().any(|l| l == "generate"), "--generate is hidden: {help}");
    longs
}

/// How each generated output spells `--long`.
fn spelled(kind: &str, long: &str) -> String {
    match kind {
        "man" => format!("\\-\\-{}", long.replace('-', "\\-")),
        "complete-fish" => format!("-l {long}"),
        _ => format!("--{long}"),
    }
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

#[test]
fn generate_needs_nothing_else_and_covers_every_option() {
    let longs = long_options();
    for kind in KINDS {
        let text = stdout_of_success(&["--generate", kind]);
        assert!(!text.trim().is_empty(), "{kind}");
        for long in &longs {
            let want = spelled(kind, long);
            assert!(text.contains(&want), "--generate {kind} lacks {want}");
        }
    }
    let man = stdout_of_success(&["--generate", "man"]);
    assert!(man.contains(".TH record 1 "), "{man}");
}

#[test]
fn generate_rejects_unknown_kinds_and_other_options() {
    for args in [&["--generate", "pdf"][..], &["--generate", "man", "-o", "t.parquet"]] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(o.stdout.is_empty(), "{args:?}");
    }
}
