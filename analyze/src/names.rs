//! Names for the numbers in the output: the recording's name tables
//! (`deeptcp.cgroups`, `deeptcp.netns_names`, see `format/SCHEMA.md`) turn
//! a row's `cgroup_id` into its cgroup path, container id and unit, and its
//! `netns` into the namespace's name.
//!
//! Only recordings that carry the tables get the name fields
//! ([`Names::recorded`]): the JSON of older recordings is exactly what it
//! was. In a recording that has them the fields are always there, `null`
//! where no name is known. The text tables do not show names (their
//! columns are the seed's); `--cgroup` filters on the paths
//! ([`deeptcp_format::Filter::with_names`]).

use std::io::{self, Write};

use deeptcp_format::{Event, Names};
use serde::Serialize;

use crate::conn::Conn;
use crate::render::json::{self, ConnJson, EventJson};

/// An object of the JSON output with the name fields after its own.
#[derive(Serialize)]
struct Named<'a, T: Serialize> {
    #[serde(flatten)]
    inner: T,
    #[serde(flatten)]
    names: NameFields<'a>,
}

/// The name fields of one row or connection.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct NameFields<'a> {
    /// Cgroup path from the cgroup2 root.
    pub cgroup: Option<&'a str>,
    pub container_id: Option<&'a str>,
    pub container_runtime: Option<&'a str>,
    pub pod_uid: Option<&'a str>,
    /// Innermost systemd unit (`*.service`, `*.scope`) on the cgroup path.
    pub unit: Option<&'a str>,
    /// Name under `/run/netns`.
    pub netns_name: Option<&'a str>,
}

impl<'a> NameFields<'a> {
    pub fn of(names: &'a Names, cgroup_id: u64, netns: u32) -> NameFields<'a> {
        let c = names.cgroup(cgroup_id);
        NameFields {
            cgroup: c.map(|c| c.path.as_str()),
            container_id: c.and_then(|c| c.info.container_id.as_deref()),
            container_runtime: c.and_then(|c| c.info.runtime.as_deref()),
            pod_uid: c.and_then(|c| c.info.pod_uid.as_deref()),
            unit: c.and_then(|c| c.info.unit.as_deref()),
            netns_name: names.netns_name(netns),
        }
    }
}

/// One `--json` event line, with the name fields when the recording has names.
pub fn event_line(out: &mut impl Write, ev: &Event, ts: i64, host: &str, names: &Names) -> io::Result<()> {
    let inner = EventJson::new(ev, ts, host);
    if !names.recorded() {
        return json::line(out, &inner);
    }
    let names = NameFields::of(names, ev.cgroup_id, ev.netns);
    json::line(out, &Named { inner, names })
}

/// One `--conn --json` line, likewise.
pub fn conn_line(out: &mut impl Write, c: &Conn, host: &str, names: &Names) -> io::Result<()> {
    let inner = ConnJson::new(c, host);
    if !names.recorded() {
        return json::line(out, &inner);
    }
    let names = NameFields::of(names, c.cgroup_id, c.netns);
    json::line(out, &Named { inner, names })
}

/// `--info`'s line about the name tables (none for recordings without them):
/// `names:            3 cgroups (1 container), 1 network namespace`.
pub fn info_line(out: &mut impl Write, names: &Names) -> io::Result<()> {
    if !names.recorded() {
        return Ok(());
    }
    let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    writeln!(
        out,
        "names:            {} ({}), {}",
        plural(names.cgroups().len(), "cgroup", "cgroups"),
        plural(names.containers(), "container", "containers"),
        plural(names.netns().len(), "network namespace", "network namespaces"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::owner::tests::ev;
    use deeptcp_format::{Attribution, CgroupName, EventKind};

    fn text(names: &Names, e: &Event) -> serde_json::Value {
        let mut out = Vec::new();
        event_line(&mut out, e, 0, "h", names).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn info_counts_the_names() {
        let line = |n: &Names| {
            let mut out = Vec::new();
            info_line(&mut out, n).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(line(&Names::default()), "");
        let mut n = Names::recorded_empty();
        assert_eq!(
            line(&n),
            "names:            0 cgroups (0 containers), 0 network namespaces\n"
        );
        n.insert_cgroup(CgroupName::new(1, &format!("/docker/{}", "0".repeat(64))));
        n.insert_cgroup(CgroupName::new(2, "/system.slice/sshd.service"));
        n.insert_netns(3, "blue");
        assert_eq!(
            line(&n),
            "names:            2 cgroups (1 container), 1 network namespace\n"
        );
    }

    #[test]
    fn event_lines_name_cgroups_and_namespaces() {
        let mut e = ev(EventKind::Connect, 42, Attribution::Task, 7);
        let plain = text(&Names::default(), &e);
        // No tables: the line of every older recording, unchanged.
        let mut out = Vec::new();
        json::line(&mut out, &EventJson::new(&e, 0, "h")).unwrap();
        assert_eq!(plain, serde_json::from_slice::<serde_json::Value>(&out).unwrap());
        assert!(plain.get("cgroup").is_none());

        let mut names = Names::recorded_empty();
        let hex = "ab".repeat(32);
        names.insert_cgroup(CgroupName::new(7005, &format!("/system.slice/docker-{hex}.scope")));
        names.insert_netns(4026532301, "blue");
        e.cgroup_id = 7005;
        e.netns = 4026532301;
        let v = text(&names, &e);
        assert_eq!(v["cgroup"], format!("/system.slice/docker-{hex}.scope"));
        assert_eq!(v["container_id"], hex);
        assert_eq!(v["container_runtime"], "docker");
        assert_eq!(v["unit"], format!("docker-{hex}.scope"));
        assert_eq!(v["pod_uid"], serde_json::Value::Null);
        assert_eq!(v["netns_name"], "blue");
        // Every event field is still there, in order, before the names.
        let raw = |names: &Names| {
            let mut out = Vec::new();
            event_line(&mut out, &e, 0, "h", names).unwrap();
            String::from_utf8(out).unwrap()
        };
        let (named, bare) = (raw(&names), raw(&Names::default()));
        let head = bare.strip_suffix("}\n").unwrap();
        assert!(named.starts_with(head), "{named}");
        assert!(named[head.len()..].starts_with(",\"cgroup\":"), "{named}");
        assert_eq!(v["cgroup_id"], 7005);
        // Unknown ids: the fields are there, null.
        e.cgroup_id = 1;
        e.netns = 2;
        let v = text(&names, &e);
        for k in [
            "cgroup",
            "container_id",
            "container_runtime",
            "pod_uid",
            "unit",
            "netns_name",
        ] {
            assert_eq!(v[k], serde_json::Value::Null, "{k}");
            assert!(v.as_object().unwrap().contains_key(k), "{k}");
        }
    }
}
