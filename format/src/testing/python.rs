//! Running the Python checkers (testdata/check_interop.py, check_sql.py,
//! inline pyarrow scripts) from tests: which Python, and the skip rule
//! when its packages are missing — a printed reason, or a failure under
//! `DEEPTCP_REQUIRE_INTEROP=1` (set by CI and scripts/fresh-check).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's top folder (the parent of `format/`).
pub fn repo_root() -> PathBuf {
    let format = Path::new(env!("CARGO_MANIFEST_DIR"));
    format.parent().unwrap_or(format).to_path_buf()
}

/// The Python that has the interop packages: the venv scripts/bootstrap
/// makes where the system Python is externally managed (Debian 12), else
/// `python3` from PATH.
pub fn python() -> PathBuf {
    let venv = repo_root().join(".venv/bin/python3");
    if venv.is_file() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// Whether `DEEPTCP_REQUIRE_INTEROP=1` turns skips into failures.
pub fn required() -> bool {
    std::env::var_os("DEEPTCP_REQUIRE_INTEROP").is_some_and(|v| v == "1")
}

/// Skips the check `what` (e.g. "interop test") saying `why`, or fails it
/// when interop checks are [`required`].
pub fn skip(what: &str, why: &str) {
    if required() {
        panic!("{what} cannot run ({why}) but DEEPTCP_REQUIRE_INTEROP=1");
    }
    eprintln!("SKIPPED {what}: {why} (run scripts/bootstrap)");
}

/// Runs `cmd`, a checker that exits with 3 when a Python package it needs
/// is missing. `None` when it could not run (then [`skip`]ped as `what`);
/// otherwise its output, whose status the caller checks.
pub fn run(what: &str, cmd: &mut Command) -> Option<Output> {
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => {
            skip(
                what,
                &format!("{} not runnable: {e}", cmd.get_program().to_string_lossy()),
            );
            return None;
        }
    };
    if out.status.code() == Some(3) {
        skip(what, String::from_utf8_lossy(&out.stderr).trim());
        return None;
    }
    Some(out)
}

/// Runs testdata/check_interop.py (pyarrow, DuckDB, pandas, polars read
/// `path` with the documented column types, and `rows` rows when given).
/// Its report, or `None` when skipped; a failed check fails the test.
pub fn check_interop(path: &Path, rows: Option<u64>) -> Option<String> {
    let mut cmd = Command::new(python());
    cmd.arg(repo_root().join("testdata/check_interop.py")).arg(path);
    if let Some(n) = rows {
        cmd.args(["--expect-rows", &n.to_string()]);
    }
    let out = run("interop test", &mut cmd)?;
    assert!(
        out.status.success(),
        "interop check failed for {}:\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}
