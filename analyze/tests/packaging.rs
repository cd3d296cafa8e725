//! What packagers and `scripts/install` rely on, through the built binary
//! (no root needed): `analyze --version` and the hidden `--generate KIND`.

use std::process::{Command, Output};

use deeptcp_format::schema::{MIN_SCHEMA_VERSION, SCHEMA_VERSION};

const BIN: &str = env!("CARGO_BIN_EXE_analyze");
const KINDS: [&str; 4] = ["man", "complete-bash", "complete-zsh", "complete-fish"];

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn stdout_of_success(args: &[&str]) -> String {
    let o = run(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "analyze {args:?}: {:?} {err}", o.status);
    assert!(err.is_empty(), "analyze {args:?}: {err}");
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn version_names_commit_and_schemas_read() {
    let out = stdout_of_success(&["--version"]);
    let first = out.lines().next().unwrap_or_default();
    let head = format!("analyze {} (git ", env!("CARGO_PKG_VERSION"));
    assert!(first.starts_with(&head) && first.ends_with(')'), "{out}");
    // Every version from the oldest still read (v1 compat) to the newest.
    let read: Vec<String> = (MIN_SCHEMA_VERSION..=SCHEMA_VERSION).map(|v| v.to_string()).collect();
    assert!(read.len() >= 2 && read[0] == "1", "{read:?}");
    let schema = format!("file schema read: {} (", read.join(", "));
    assert!(out.contains(&schema), "{out}");
    // -V stays short.
    assert_eq!(
        stdout_of_success(&["-V"]),
        format!("analyze {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// Every kind prints through the built binary with no other argument (no
/// `-o`, no root); that each covers every option is a unit test of the
/// command definition (cli.rs).
#[test]
fn generate_needs_nothing_else() {
    for kind in KINDS {
        let text = stdout_of_success(&["--generate", kind]);
        assert!(text.contains("analyze"), "--generate {kind}: {text}");
    }
    let man = stdout_of_success(&["--generate", "man"]);
    assert!(man.contains(".TH analyze 1 "), "{man}");
    let help = stdout_of_success(&["--help"]);
    assert!(!help.contains("--generate"), "--generate is hidden: {help}");
}

#[test]
fn generate_rejects_unknown_kinds_and_other_options() {
    for args in [&["--generate", "pdf"][..], &["--generate", "man", "x.parquet"]] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(o.stdout.is_empty(), "{args:?}");
    }
}
