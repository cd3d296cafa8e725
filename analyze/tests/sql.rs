//! `sql/deeptcp.sql` gives the numbers `analyze` gives: the same
//! connections (`--conn --json`) and statistics (`--stats --json`, without
//! and with every `--by`) on the committed fixtures, read one by one, as a
//! glob over several hosts and from a hive-partitioned tree
//! and with the name tables `record` stores (cgroup paths, containers,
//! netns names) (testdata/check_sql.py compares them field by field, and
//! checks the SQL bucket function against the integer definition).
//!
//! Needs python3 with duckdb (scripts/bootstrap installs it into .venv).
//! Without it the test skips with a printed reason, unless
//! `DEEPTCP_REQUIRE_INTEROP=1` (set by CI), where that is a failure.

use std::process::Command;

use deeptcp_format::testing::python::{python, repo_root, run};

/// Runs the checker on `inputs` (relative to testdata/ or absolute);
/// false when it could not run (skipped).
fn check(inputs: &[&str]) -> bool {
    let mut cmd = Command::new(python());
    cmd.current_dir(repo_root().join("testdata"))
        .arg("check_sql.py")
        .arg(env!("CARGO_BIN_EXE_analyze"))
        .args(inputs);
    let Some(out) = run("SQL test", &mut cmd) else {
        return false;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "SQL and analyze differ on {inputs:?}:\n{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.contains("same connections and statistics"), "{stderr}");
    eprintln!("{}", stderr.trim());
    true
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

/// web1's rows again, in a recording that names its cgroups (a docker
/// container, a kubepods pod, systemd services) and one netns.
#[test]
fn sql_names_cgroups_and_namespaces_as_analyze_does() {
    use deeptcp_format::{CgroupName, EventWriter, Names, RecordingReader, WriterOptions};
    let dir = tempfile::tempdir().unwrap();
    let from = RecordingReader::open(&repo_root().join("testdata/synthetic/web1.parquet")).unwrap();
    let mut names = Names::default();
    for (id, path) in [
        (7001, "/system.slice/nginx.service"),
        (7002, "/system.slice/postgresql.service"),
        (7003, "/user.slice/user-1000.slice/session-2.scope"),
        (7004, "/system.slice/docker-4f2a9c0d1e3b5a7f9c0d1e3b5a7f9c0d1e3b5a7f9c0d1e3b5a7f9c0d1e3b5a7f.scope"),
        (
            7005,
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c3d4e_5f60_7182_93a4_b5c6d7e8f901.slice/cri-containerd-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope",
        ),
    ] {
        names.insert_cgroup(CgroupName::new(id, path));
    }
    names.insert_netns(4026532300, "blue");
    let path = dir.path().join("web1-named.parquet");
    let file = std::fs::File::create(&path).unwrap();
    let mut w = EventWriter::new(file, from.meta(), WriterOptions::default()).unwrap();
    for e in from.events() {
        w.push(&e.unwrap()).unwrap();
    }
    w.set_names(&names);
    w.finish(0).unwrap();
    check(&[path.to_str().unwrap()]);
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
