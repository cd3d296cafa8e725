//! Live test (root): record stores the names of the cgroups and network
//! namespaces its rows carry, and `analyze` shows and filters on them. A
//! real cgroup v2 subtree and a named netns are created for the test (and
//! removed again, also when it fails); the traffic is loopback inside that
//! namespace only.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{can_run, scaled, skip, traffic_script, Helper, NamedNetns, Recorder};
use serde_json::Value;

/// A cgroup v2 directory this test made (with its parents up to the
/// mount), removed on drop: processes still in it are moved to the root
/// cgroup first.
struct TestCgroup {
    root: PathBuf,
    /// Created directories, outermost first.
    dirs: Vec<PathBuf>,
}

impl TestCgroup {
    fn create(root: &Path, rel: &str) -> TestCgroup {
        let mut cg = TestCgroup {
            root: root.to_path_buf(),
            dirs: Vec::new(),
        };
        let mut dir = root.to_path_buf();
        for part in rel.split('/') {
            dir.push(part);
            std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
            cg.dirs.push(dir.clone());
        }
        cg
    }

    fn leaf(&self) -> &Path {
        self.dirs.last().expect("at least one directory")
    }

    /// The cgroup id: its directory's inode.
    fn id(&self) -> u64 {
        std::fs::metadata(self.leaf()).expect("cgroup dir").ino()
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for dir in self.dirs.iter().rev() {
            if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                for pid in procs.lines() {
                    let _ = std::fs::write(self.root.join("cgroup.procs"), pid);
                }
            }
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// The cgroup2 mount (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on hybrid hosts).
fn cgroup2_mount() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
    })
}

/// The `analyze` binary of this build (next to `record`), built when missing.
fn analyze_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_record")).with_file_name("analyze");
    if !bin.exists() {
        let cargo = option_env!("CARGO").unwrap_or("cargo");
        let ok = Command::new(cargo)
            .args(["build", "-p", "deeptcp-analyze", "--bin", "analyze"])
            .current_dir(common::repo_root())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok && bin.exists(), "{} missing and could not be built", bin.display());
    }
    bin
}

fn analyze_json(args: &[&str], path: &Path) -> Vec<Value> {
    let out = Command::new(analyze_bin()).args(args).arg(path).output().unwrap();
    assert!(
        out.status.success(),
        "analyze {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn cgroup_paths_and_netns_names_are_recorded_and_filtered() {
    let test = "cgroup_paths_and_netns_names_are_recorded_and_filtered";
    if !can_run(test) {
        return;
    }
    let Some(mount) = cgroup2_mount() else {
        skip(test, "no cgroup v2 hierarchy is mounted");
        return;
    };
    let me = std::process::id();
    let top = format!("deeptcp-test-{me}");
    let cg = TestCgroup::create(&mount, &format!("{top}/client"));
    let ns = NamedNetns::add(format!("deeptcp-t{me}"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("names.parquet");
    let Some(rec) = Recorder::start(test, &path, &["-N", &ns.inode().to_string()]) else {
        return;
    };

    // Made after record started: its names are found while recording.
    let server = Helper::start(Some(&ns.name), &["hold-server", "127.0.0.1"]);
    let port = server.port();
    // The client joins the test's cgroup (then execs into the namespace):
    // its socket's rows carry that cgroup, the server's do not.
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec ip netns exec {} python3 {} hold-client 127.0.0.1 {port} 0",
        cg.leaf().display(),
        ns.name,
        traffic_script().display()
    );
    let mut client = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the client");
    let mut line = String::new();
    BufReader::new(client.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("client's first line");
    let client_port: u16 = line
        .strip_prefix("connected ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("client said {line:?}"));
    assert!(client.wait().unwrap().success(), "client failed");
    let mut server = server;
    server.wait_ok();
    std::thread::sleep(scaled(Duration::from_millis(200)));

    let (_meta, events, stderr) = rec.stop(libc::SIGINT);
    let cg_id = cg.id();
    let cg_path = format!("/{top}/client");
    let client_rows: Vec<_> = events.iter().filter(|e| e.cgroup_id == cg_id).collect();
    assert!(
        client_rows.iter().any(|e| e.sport == client_port && e.dport == port),
        "no row of the client's socket carries the test cgroup {cg_id}:\n{}\n{stderr}",
        common::dump(&events)
    );

    // analyze --json: the client socket's rows name the cgroup and the namespace.
    let all = analyze_json(&["--json"], &path);
    assert_eq!(all.len(), events.len());
    let mine: Vec<&Value> = all
        .iter()
        .filter(|v| v["sport"] == client_port && v["dport"] == port)
        .collect();
    assert!(!mine.is_empty(), "no row of the client's connection");
    for v in &all {
        assert_eq!(
            v["netns_name"],
            ns.name.as_str(),
            "every row is in the test namespace: {v}"
        );
        if v["cgroup_id"] == cg_id {
            assert_eq!(v["cgroup"], cg_path.as_str(), "{v}");
            assert_eq!(v["container_id"], Value::Null, "{v}");
        } else {
            assert_ne!(v["cgroup"], cg_path.as_str(), "{v}");
        }
    }
    assert!(
        mine.iter().any(|v| v["cgroup"] == cg_path.as_str()),
        "the client connection's rows name its cgroup: {mine:?}"
    );
    // The server's socket is in another cgroup (this test's).
    assert!(
        all.iter()
            .any(|v| v["sport"] == port && v["cgroup_id"] != 0 && v["cgroup_id"] != cg_id),
        "no server row outside the test cgroup"
    );

    // analyze --cgroup: exactly the rows of that cgroup.
    let picked = analyze_json(&["--json", "--cgroup", "deeptcp-test-*"], &path);
    let want: Vec<&Value> = all.iter().filter(|v| v["cgroup_id"] == cg_id).collect();
    assert_eq!(picked.iter().collect::<Vec<_>>(), want);
    let anchored = analyze_json(&["--json", "--cgroup", &format!("/{top}/client")], &path);
    assert_eq!(anchored, picked);
    assert!(analyze_json(&["--json", "--cgroup", "/deeptcp-test-0-none"], &path).is_empty());

    // --conn --json: the client's connection, named.
    let conns = analyze_json(&["--conn", "--json", "--cgroup", "deeptcp-test-*"], &path);
    assert!(
        conns.iter().any(|c| c["sport"] == client_port
            && c["cgroup"] == cg_path.as_str()
            && c["netns_name"] == ns.name.as_str()),
        "{conns:?}"
    );

    // --info counts them.
    let out = Command::new(analyze_bin()).arg("--info").arg(&path).output().unwrap();
    let info = String::from_utf8_lossy(&out.stdout);
    assert!(
        info.contains("\nnames:            ") && info.contains("1 network namespace"),
        "{info}"
    );
    eprintln!(
        "names: cgroup {cg_id} = {cg_path}, netns {} = {}, {} of {} rows in the cgroup",
        ns.inode(),
        ns.name,
        picked.len(),
        all.len()
    );
}
