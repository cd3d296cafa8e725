//! `sql/deeptcp.sql` gives the numbers `analyze` gives: the same
//! connections (`--conn --json`) and statistics (`--stats --json`, without
//! and with every `--by`) on the committed fixtures, read one by one, as a
//! glob over several hosts and from a hive-partitioned tree
//! (testdata/check_sql.py compares them field by field, and checks the SQL
//! bucket function against the integer definition).
//!
//! Needs python3 with duckdb (scripts/bootstrap installs it into .venv).
//! Without it the test skips with a printed reason, unless
//! `DEEPTCP_REQUIRE_INTEROP=1` (set by CI), where that is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    let analyze = Path::new(env!("CARGO_MANIFEST_DIR"));
    analyze.parent().unwrap_or(analyze).to_path_buf()
}

fn python() -> PathBuf {
    let venv = repo_root().join(".venv/bin/python3");
    if venv.is_file() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// Runs the checker on `inputs` (relative to testdata/ or absolute);
/// false when it could not run (skipped).
fn check(inputs: &[&str]) -> bool {
    let out = Command::new(python())
        .current_dir(repo_root().join("testdata"))
        .arg("check_sql.py")
        .arg(env!("CARGO_BIN_EXE_analyze"))
        .args(inputs)
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => return skip(&format!("{} not runnable: {e}", python().display())),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(3) {
        return skip(stderr.trim());
    }
    assert!(
        out.status.success(),
        "SQL and analyze differ on {inputs:?}:\n{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.contains("same connections and statistics"), "{stderr}");
    eprintln!("{}", stderr.trim());
    true
}

fn skip(why: &str) -> bool {
    if std::env::var_os("DEEPTCP_REQUIRE_INTEROP").is_some_and(|v| v == "1") {
        panic!("SQL test cannot run ({why}) but DEEPTCP_REQUIRE_INTEROP=1");
    }
    eprintln!("SKIPPED interop test: {why} (run scripts/bootstrap)");
    false
}

#[test]
fn sql_gives_the_same_connections_and_statistics_as_analyze() {
    // Real recordings (loopback; snapshot rows joining their sockets) and
    // the synthetic hosts (every close reason, zero windows, IPv6).
    for inputs in [
        &["loopback.parquet"][..],
        &["longlived.parquet"],
        &["synthetic/web1.parquet"],
        &["synthetic/*.parquet"],
    ] {
        if !check(inputs) {
            return;
        }
    }
}

#[test]
fn sql_reads_a_hive_partitioned_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for host in ["web1", "db1"] {
        let part = dir.path().join(format!("host={host}/date=2026-04-14"));
        std::fs::create_dir_all(&part).unwrap();
        let to = part.join(format!("{host}.parquet"));
        std::fs::copy(repo_root().join(format!("testdata/synthetic/{host}.parquet")), &to).unwrap();
        files.push(to.to_string_lossy().into_owned());
    }
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    if !check(&files) {
        return;
    }
    // The tree through a glob: the partition columns are there to prune by.
    let glob = format!("{}/**/*.parquet", dir.path().display());
    let script = format!(
        "import duckdb\n\
         c = duckdb.connect()\n\
         c.execute(open('{sql}').read())\n\
         print(c.execute(\"select host, rec_host, cast(date as varchar), count(*) from deeptcp_events(?) \
         where date = '2026-04-14' group by all order by all\", ['{glob}']).fetchall())\n\
         print(c.execute(\"select \\\"group\\\", connections from deeptcp_stats(?, 'host') order by all\", ['{glob}']).fetchall())\n",
        sql = repo_root().join("sql/deeptcp.sql").display(),
    );
    let out = Command::new(python()).arg("-c").arg(&script).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text,
        "[('db1', 'db1', '2026-04-14', 120), ('web1', 'web1', '2026-04-14', 160)]\n\
         [('db1', 15), ('web1', 21)]\n"
    );
}
