//! `analyze` on recordings with name tables (`deeptcp.cgroups`,
//! `deeptcp.netns_names`): the JSON name fields, `--cgroup`, `--info`; and
//! on recordings without them (unchanged output, `--cgroup` selects nothing).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use deeptcp_format::testing;
use deeptcp_format::{
    Attribution, CgroupName, ClockAnchor, Event, EventKind, EventWriter, Names, RecordingMeta, TcpState, WriterOptions,
};
use serde_json::Value;

const TEST_CG: u64 = 7005;
const SSHD_CG: u64 = 7006;
const BLUE: u32 = 4026532301;
const HOST_NS: u32 = 4026531840;

/// Rows of two connections: cookie 1 in cgroup [`TEST_CG`] and netns
/// [`BLUE`] (plus a row without an owner), cookie 2 in [`SSHD_CG`].
fn events() -> Vec<Event> {
    let row = |i: i64, cookie: u64, cgroup_id: u64, netns: u32, newstate: TcpState| Event {
        mono_ns: 1_000_000 * (i + 1),
        pid: if cgroup_id == 0 { 0 } else { 100 + cookie as u32 },
        comm: "python3".into(),
        sport: 40000 + cookie as u16,
        dport: 8080,
        newstate: Some(newstate),
        netns,
        probe: "tp_btf:inet_sock_set_state".into(),
        cookie,
        cgroup_id,
        attribution: Attribution::Task,
        ..testing::event(EventKind::StateChange)
    };
    vec![
        row(0, 1, TEST_CG, BLUE, TcpState::SynSent),
        row(1, 2, SSHD_CG, HOST_NS, TcpState::SynSent),
        row(2, 1, TEST_CG, BLUE, TcpState::Established),
        row(3, 1, 0, BLUE, TcpState::FinWait1),
        row(4, 2, SSHD_CG, HOST_NS, TcpState::Established),
        row(5, 1, TEST_CG, BLUE, TcpState::Close),
    ]
}

fn write(dir: &Path, name: &str, names: Option<&Names>) -> PathBuf {
    let path = dir.join(name);
    let meta = RecordingMeta {
        host: "h".into(),
        clock: ClockAnchor {
            realtime_ns: 1_776_160_800_000_000_000,
            monotonic_ns: 0,
        },
        ..Default::default()
    };
    let mut w = EventWriter::new(File::create(&path).unwrap(), &meta, WriterOptions::default()).unwrap();
    for e in events() {
        w.push(&e).unwrap();
    }
    if let Some(n) = names {
        w.set_names(n);
    }
    w.finish(0).unwrap();
    path
}

fn analyze(args: &[&str], path: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_analyze"))
        .args(args)
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn json(args: &[&str], path: &Path) -> Vec<Value> {
    analyze(args, path)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn names_in_json_info_and_the_cgroup_filter() {
    let dir = tempfile::tempdir().unwrap();
    let mut names = Names::recorded_empty();
    names.insert_cgroup(CgroupName::new(TEST_CG, "/deeptcp-test-9/client"));
    names.insert_cgroup(CgroupName::new(SSHD_CG, "/system.slice/sshd.service"));
    names.insert_netns(BLUE, "blue");
    let path = write(dir.path(), "named.parquet", Some(&names));

    let all = json(&["--json"], &path);
    assert_eq!(all.len(), 6);
    for v in &all {
        let (cg, ns) = (v["cgroup_id"].as_u64().unwrap(), v["netns"].as_u64().unwrap() as u32);
        let want_cg = match cg {
            TEST_CG => Value::from("/deeptcp-test-9/client"),
            SSHD_CG => Value::from("/system.slice/sshd.service"),
            _ => Value::Null,
        };
        assert_eq!(v["cgroup"], want_cg, "{v}");
        let want_ns = if ns == BLUE { Value::from("blue") } else { Value::Null };
        assert_eq!(v["netns_name"], want_ns, "{v}");
        let unit = if cg == SSHD_CG {
            Value::from("sshd.service")
        } else {
            Value::Null
        };
        assert_eq!(v["unit"], unit, "{v}");
    }

    // --cgroup: exactly the rows of that cgroup (the owner-less row has none).
    let picked = json(&["--json", "--cgroup", "deeptcp-test-*"], &path);
    assert_eq!(picked.len(), 3);
    assert!(picked
        .iter()
        .all(|v| v["cgroup_id"] == TEST_CG && v["cgroup"] == "/deeptcp-test-9/client"));
    let table = analyze(&["--cgroup", "/deeptcp-test-9"], &path);
    assert_eq!(table.lines().count(), 1 + 3, "{table}");
    let either = json(&["--json", "--cgroup", "nothing-*", "--cgroup", "*.service"], &path);
    assert_eq!(either.len(), 2);
    assert!(either.iter().all(|v| v["cgroup_id"] == SSHD_CG));
    assert!(json(&["--json", "--cgroup", "deeptcp-test-*", "--dport", "9"], &path).is_empty());

    // --conn --json: the connection's names; --cgroup selects connections.
    let conns = json(&["--conn", "--json", "--cgroup", "deeptcp-test-*"], &path);
    assert_eq!(conns.len(), 1, "{conns:?}");
    assert_eq!(conns[0]["cookie"], 1);
    assert_eq!(conns[0]["cgroup"], "/deeptcp-test-9/client");
    assert_eq!(conns[0]["netns_name"], "blue");

    let info = analyze(&["--info"], &path);
    assert!(
        info.contains("\nnames:            2 cgroups (0 containers), 1 network namespace\n"),
        "{info}"
    );
}

#[test]
fn recordings_without_names_read_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "plain.parquet", None);
    let all = json(&["--json"], &path);
    assert_eq!(all.len(), 6);
    assert!(all
        .iter()
        .all(|v| v.get("cgroup").is_none() && v.get("netns_name").is_none()));
    let conns = json(&["--conn", "--json"], &path);
    assert!(conns.iter().all(|v| v.get("cgroup").is_none()));
    assert!(!analyze(&["--info"], &path).contains("names:"));
    // No names: a pattern matches nothing (not an error).
    assert!(json(&["--json", "--cgroup", "*"], &path).is_empty());
    assert_eq!(analyze(&["--cgroup", "*"], &path).lines().count(), 1);
    // A bad pattern is a usage error.
    let out = Command::new(env!("CARGO_BIN_EXE_analyze"))
        .args(["--cgroup", ""])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
