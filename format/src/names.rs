//! Names for the numbers rows carry: cgroup v2 id → cgroup path (and the
//! container or systemd unit the path names), network namespace inode →
//! name (`ip netns`, `/run/netns`).
//!
//! `record` resolves them on the host (that part is Linux-only and lives in
//! `record`); this module only holds the tables, parses cgroup paths
//! ([`CgroupInfo::parse`], plain string work) and matches `--cgroup`
//! patterns ([`CgroupPattern`]). The tables are stored in the file's
//! key-value metadata as JSON (`deeptcp.cgroups`, `deeptcp.netns_names`,
//! see `SCHEMA.md`), so the row schema is unchanged and files without them
//! (older recorders, other writers) read as before: no names.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::schema::{key, shown};
use crate::FormatError;

pub use crate::schema::{MAX_CGROUPS_BYTES, MAX_NETNS_NAMES_BYTES};

/// One cgroup: its id (the inode of its directory under the cgroup2 mount,
/// the rows' `cgroup_id`), its path from the cgroup2 root as
/// `/proc/PID/cgroup` prints it (`/system.slice/docker-<id>.scope`), and
/// what the path names ([`CgroupInfo`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupName {
    pub id: u64,
    pub path: String,
    #[serde(flatten)]
    pub info: CgroupInfo,
}

impl CgroupName {
    /// The entry for cgroup `id` at `path`, with what the path names.
    pub fn new(id: u64, path: &str) -> CgroupName {
        CgroupName {
            id,
            path: path.to_owned(),
            info: CgroupInfo::parse(path),
        }
    }
}

/// What a cgroup path tells about its processes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupInfo {
    /// Container id (hex, as the runtime prints it) when the path is a
    /// container's: docker (`docker-<id>.scope`, `/docker/<id>`),
    /// containerd (`cri-containerd-<id>.scope`, `…:cri-containerd:<id>`),
    /// cri-o (`crio-<id>.scope`), podman (`libpod-<id>.scope`), Kubernetes
    /// with the cgroupfs driver (`/kubepods/…/pod<uid>/<id>`).
    #[serde(default)]
    pub container_id: Option<String>,
    /// Which runtime's naming the id was found in: `docker`, `containerd`,
    /// `cri-o`, `podman`, `kubepods` (cgroupfs driver: runtime not named).
    #[serde(default)]
    pub runtime: Option<String>,
    /// Kubernetes pod UID (`kubepods…pod<uid>`), dashes restored.
    #[serde(default)]
    pub pod_uid: Option<String>,
    /// The innermost systemd unit on the path: a `*.scope` or `*.service`
    /// component (`sshd.service`, `docker-<id>.scope`, `session-3.scope`).
    #[serde(default)]
    pub unit: Option<String>,
}

/// Runtimes whose systemd scopes are `<prefix><hex>.scope`, and the `:<tag>:`
/// form containerd uses under its own service.
const SCOPE_PREFIXES: [(&str, &str); 4] = [
    ("docker-", "docker"),
    ("cri-containerd-", "containerd"),
    ("crio-", "cri-o"),
    ("libpod-", "podman"),
];

fn is_hex_id(s: &str, min: usize) -> bool {
    s.len() >= min && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A container id from one path component, with its runtime.
fn container_in(component: &str, parent: Option<&str>) -> Option<(String, &'static str)> {
    if let Some(stem) = component.strip_suffix(".scope") {
        for (prefix, runtime) in SCOPE_PREFIXES {
            // `crio-conmon-<id>.scope` / `libpod-conmon-<id>.scope` are the
            // monitors, not the containers: their ids are not hex-only.
            if let Some(id) = stem.strip_prefix(prefix).filter(|id| is_hex_id(id, 12)) {
                return Some((id.to_owned(), runtime));
            }
        }
    }
    // containerd with the systemd driver, running outside systemd's view
    // (kind, some k3s): `kubepods-…-pod<uid>.slice:cri-containerd:<id>`.
    for (tag, runtime) in [
        (":cri-containerd:", "containerd"),
        (":crio:", "cri-o"),
        (":docker:", "docker"),
    ] {
        if let Some((_, id)) = component.split_once(tag) {
            if is_hex_id(id, 12) {
                return Some((id.to_owned(), runtime));
            }
        }
    }
    // cgroupfs drivers: `/docker/<64 hex>`, `/kubepods/<qos>/pod<uid>/<64 hex>`.
    if is_hex_id(component, 64) {
        match parent {
            Some("docker") => return Some((component.to_owned(), "docker")),
            Some(p) if pod_in(p).is_some() => return Some((component.to_owned(), "kubepods")),
            _ => {}
        }
    }
    None
}

/// A pod UID from a kubepods path component: `pod<uid>` (cgroupfs driver)
/// or `kubepods-<qos>-pod<uid_with_underscores>.slice` (systemd driver).
fn pod_in(component: &str) -> Option<String> {
    let uid = if let Some(stem) = component.strip_suffix(".slice") {
        let at = stem.rfind("-pod")?;
        if !stem.starts_with("kubepods") {
            return None;
        }
        stem[at + 4..].replace('_', "-")
    } else {
        component.strip_prefix("pod")?.to_owned()
    };
    let ok = uid.len() >= 32 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    ok.then_some(uid)
}

impl CgroupInfo {
    /// What `path` (a cgroup v2 path, `/`-separated) names. The innermost
    /// match wins for each field.
    pub fn parse(path: &str) -> CgroupInfo {
        let mut info = CgroupInfo::default();
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let mut in_kubepods = false;
        for (i, part) in parts.iter().enumerate() {
            let parent = i.checked_sub(1).map(|j| parts[j]);
            if part.starts_with("kubepods") {
                in_kubepods = true;
            }
            if let Some((id, runtime)) = container_in(part, parent) {
                info.container_id = Some(id);
                info.runtime = Some(runtime.to_owned());
            }
            if in_kubepods {
                // The `:cri-containerd:` form carries the pod slice before its colon.
                if let Some(uid) = pod_in(part.split(':').next().unwrap_or(part)) {
                    info.pod_uid = Some(uid);
                }
            }
            let unit = part.split(':').next().unwrap_or(part);
            if unit.len() > ".scope".len() && (unit.ends_with(".scope") || unit.ends_with(".service")) {
                info.unit = Some(unit.to_owned());
            }
        }
        info
    }
}

/// One named network namespace: its inode (the rows' `netns`) and its name
/// (the file under `/run/netns`, as `ip netns` lists it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetnsName {
    pub inode: u32,
    pub name: String,
}

/// The name tables of a recording. Lookups are by id; the entries keep the
/// order in which they were added (the order of the file's JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    cgroups: Vec<CgroupName>,
    netns: Vec<NetnsName>,
    by_cgroup: HashMap<u64, usize>,
    by_netns: HashMap<u32, usize>,
    recorded: bool,
}

impl Names {
    /// Empty tables that count as recorded: what a recorder that resolves
    /// names starts from (see [`recorded`](Self::recorded)).
    pub fn recorded_empty() -> Names {
        Names {
            recorded: true,
            ..Names::default()
        }
    }

    /// Whether the recording carries name tables at all (the keys are
    /// present, possibly empty): written by a recorder that resolves names.
    /// Files without them show no names, as before.
    pub fn recorded(&self) -> bool {
        self.recorded
    }

    /// Adds or replaces the entry of `c.id`; whether anything changed.
    pub fn insert_cgroup(&mut self, c: CgroupName) -> bool {
        self.recorded = true;
        match self.by_cgroup.get(&c.id) {
            Some(&i) if self.cgroups[i] == c => false,
            Some(&i) => {
                self.cgroups[i] = c;
                true
            }
            None => {
                self.by_cgroup.insert(c.id, self.cgroups.len());
                self.cgroups.push(c);
                true
            }
        }
    }

    /// Adds or renames netns `inode`; whether anything changed.
    pub fn insert_netns(&mut self, inode: u32, name: &str) -> bool {
        self.recorded = true;
        match self.by_netns.get(&inode) {
            Some(&i) if self.netns[i].name == name => false,
            Some(&i) => {
                self.netns[i].name = name.to_owned();
                true
            }
            None => {
                self.by_netns.insert(inode, self.netns.len());
                self.netns.push(NetnsName {
                    inode,
                    name: name.to_owned(),
                });
                true
            }
        }
    }

    /// The cgroup with id `id`, if named (0, unknown, never is).
    pub fn cgroup(&self, id: u64) -> Option<&CgroupName> {
        self.by_cgroup.get(&id).map(|&i| &self.cgroups[i])
    }

    /// The name of network namespace `inode`, if it has one.
    pub fn netns_name(&self, inode: u32) -> Option<&str> {
        self.by_netns.get(&inode).map(|&i| self.netns[i].name.as_str())
    }

    pub fn cgroups(&self) -> &[CgroupName] {
        &self.cgroups
    }

    pub fn netns(&self) -> &[NetnsName] {
        &self.netns
    }

    /// Cgroups that name a container.
    pub fn containers(&self) -> usize {
        self.cgroups.iter().filter(|c| c.info.container_id.is_some()).count()
    }

    /// The ids of the cgroups whose path matches any of `patterns`, sorted.
    pub fn matching_cgroups(&self, patterns: &[CgroupPattern]) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .cgroups
            .iter()
            .filter(|c| patterns.iter().any(|p| p.matches(&c.path)))
            .map(|c| c.id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The two metadata values: JSON arrays, each cut to its limit (the
    /// entries that come first stay).
    pub(crate) fn key_values(&self) -> [(&'static str, String); 2] {
        [
            (key::CGROUPS, json_within(&self.cgroups, MAX_CGROUPS_BYTES)),
            (key::NETNS_NAMES, json_within(&self.netns, MAX_NETNS_NAMES_BYTES)),
        ]
    }

    /// The tables of a file's metadata (`kv`, last value of each key); no
    /// keys: empty, not [`recorded`](Self::recorded).
    pub(crate) fn decode(path: &Path, kv: &HashMap<String, String>) -> Result<Names, FormatError> {
        let bad = |k: &str, e: serde_json::Error, raw: &str| FormatError::BadMetadata {
            path: Some(path.to_path_buf()),
            key: k.to_owned(),
            detail: format!("invalid JSON ({e}): {}", shown(raw)),
        };
        let mut names = Names::default();
        if let Some(raw) = kv.get(key::CGROUPS) {
            let list: Vec<CgroupName> = serde_json::from_str(raw).map_err(|e| bad(key::CGROUPS, e, raw))?;
            names.recorded = true;
            for c in list {
                names.insert_cgroup(c);
            }
        }
        if let Some(raw) = kv.get(key::NETNS_NAMES) {
            let list: Vec<NetnsName> = serde_json::from_str(raw).map_err(|e| bad(key::NETNS_NAMES, e, raw))?;
            names.recorded = true;
            for n in list {
                names.insert_netns(n.inode, &n.name);
            }
        }
        Ok(names)
    }
}

/// `items` as a JSON array of at most `max` bytes: the first items that fit.
fn json_within<T: Serialize>(items: &[T], max: usize) -> String {
    let mut out = String::from("[");
    for item in items {
        // Serializing strings and integers cannot fail.
        let Ok(one) = serde_json::to_string(item) else { continue };
        let sep = usize::from(out.len() > 1);
        if out.len() + sep + one.len() + 1 > max {
            break;
        }
        if sep == 1 {
            out.push(',');
        }
        out.push_str(&one);
    }
    out.push(']');
    out
}

/// A `--cgroup` pattern: a glob on cgroup paths (`/system.slice/docker-*.scope`).
///
/// `*` matches any characters but `/`, `**` any characters including `/`,
/// `?` one character but `/`; everything else matches itself. A pattern
/// matches a cgroup when it matches the cgroup's path **or that of one of
/// its ancestors**, so a pattern selects whole subtrees:
///
/// - with a `/` in it, the pattern is anchored at the cgroup2 root (a
///   leading `/` may be left out): `/system.slice` selects everything under
///   `system.slice`, `/kubepods.slice/**/cri-containerd-*.scope` every
///   containerd container of a pod;
/// - without one, it matches one path component at any depth:
///   `docker-*.scope` selects every docker container, `deeptcp-test-*` the
///   cgroups of that name and everything under them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CgroupPattern {
    text: String,
    pattern: Vec<char>,
    anchored: bool,
}

impl CgroupPattern {
    /// Parses a pattern (not empty, no NUL).
    pub fn parse(s: &str) -> Result<CgroupPattern, String> {
        if s.is_empty() {
            return Err("the cgroup pattern must not be empty (e.g. 'docker-*.scope', '/system.slice')".into());
        }
        if s.contains('\0') {
            return Err("the cgroup pattern must not contain NUL".into());
        }
        let anchored = s.contains('/');
        let body = if anchored {
            let t = s.trim_end_matches('/');
            if t.starts_with('/') {
                t.to_owned()
            } else {
                format!("/{t}")
            }
        } else {
            s.to_owned()
        };
        Ok(CgroupPattern {
            text: s.to_owned(),
            pattern: body.chars().collect(),
            anchored,
        })
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the cgroup at `path` (from the cgroup2 root, `/` for the
    /// root) or one of its ancestors matches.
    pub fn matches(&self, path: &str) -> bool {
        let parts = path.split('/').filter(|p| !p.is_empty());
        if self.anchored {
            if self.pattern == ['/'] {
                return true;
            }
            let mut prefix: Vec<char> = Vec::with_capacity(path.len());
            for part in parts {
                prefix.push('/');
                prefix.extend(part.chars());
                if glob(&self.pattern, &prefix) {
                    return true;
                }
            }
            false
        } else {
            parts.into_iter().any(|part| {
                let text: Vec<char> = part.chars().collect();
                glob(&self.pattern, &text)
            })
        }
    }
}

impl std::fmt::Display for CgroupPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Glob match of the whole `text` (see [`CgroupPattern`]): dynamic
/// programming over pattern × text, O(len × len).
fn glob(pat: &[char], text: &[char]) -> bool {
    // ok[j]: pattern[..i] matches text[..j].
    let mut ok = vec![false; text.len() + 1];
    ok[0] = true;
    let mut i = 0;
    while i < pat.len() {
        let mut next = vec![false; text.len() + 1];
        match pat[i] {
            '*' => {
                let any = pat.get(i + 1) == Some(&'*');
                let mut run = false;
                for j in 0..=text.len() {
                    // `*` extends a match over characters (not `/` unless `**`).
                    run = ok[j] || (run && j > 0 && (any || text[j - 1] != '/'));
                    next[j] = run;
                }
                if any {
                    i += 1;
                }
            }
            c => {
                for j in 1..=text.len() {
                    let t = text[j - 1];
                    next[j] = ok[j - 1] && (if c == '?' { t != '/' } else { t == c });
                }
            }
        }
        ok = next;
        i += 1;
    }
    ok[text.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX64: &str = "4f2a0c9d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a10";

    fn parsed(path: &str) -> (Option<String>, Option<String>, Option<String>, Option<String>) {
        let i = CgroupInfo::parse(path);
        (i.container_id, i.runtime, i.pod_uid, i.unit)
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    #[test]
    fn container_ids_from_realistic_paths() {
        // docker, systemd driver and cgroupfs driver
        assert_eq!(
            parsed(&format!("/system.slice/docker-{HEX64}.scope")),
            (s(HEX64), s("docker"), None, s(&format!("docker-{HEX64}.scope")))
        );
        assert_eq!(parsed(&format!("/docker/{HEX64}")), (s(HEX64), s("docker"), None, None));
        // containerd under kubelet, systemd driver
        let uid = "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9";
        let slice_uid = uid.replace('-', "_");
        let p = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{slice_uid}.slice/cri-containerd-{HEX64}.scope"
        );
        assert_eq!(
            parsed(&p),
            (
                s(HEX64),
                s("containerd"),
                s(uid),
                s(&format!("cri-containerd-{HEX64}.scope"))
            )
        );
        // guaranteed QoS has no QoS slice
        let p = format!("/kubepods.slice/kubepods-pod{slice_uid}.slice/crio-{HEX64}.scope");
        assert_eq!(parsed(&p).0, s(HEX64));
        assert_eq!(parsed(&p).1, s("cri-o"));
        assert_eq!(parsed(&p).2, s(uid));
        // the pod's own cgroup: a pod, no container
        let p = format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{slice_uid}.slice");
        assert_eq!(parsed(&p), (None, None, s(uid), None));
        // cgroupfs driver
        let p = format!("/kubepods/burstable/pod{uid}/{HEX64}");
        assert_eq!(parsed(&p), (s(HEX64), s("kubepods"), s(uid), None));
        // containerd's own form (kind nodes)
        let p =
            format!("/system.slice/containerd.service/kubepods-burstable-pod{slice_uid}.slice:cri-containerd:{HEX64}");
        assert_eq!(parsed(&p), (s(HEX64), s("containerd"), s(uid), s("containerd.service")));
        // podman, rootless under the user's manager; its conmon is no container
        let p = format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{HEX64}.scope/container");
        assert_eq!(
            parsed(&p),
            (s(HEX64), s("podman"), None, s(&format!("libpod-{HEX64}.scope")))
        );
        let p = format!("/machine.slice/libpod-conmon-{HEX64}.scope");
        assert_eq!(
            parsed(&p),
            (None, None, None, s(&format!("libpod-conmon-{HEX64}.scope")))
        );
    }

    #[test]
    fn units_and_plain_paths() {
        for (path, unit) in [
            ("/system.slice/sshd.service", "sshd.service"),
            ("/user.slice/user-1000.slice/session-3.scope", "session-3.scope"),
            (
                "/user.slice/user-1000.slice/user@1000.service/app.slice/app-firefox-1234.scope",
                "app-firefox-1234.scope",
            ),
            // a cgroup inside a service keeps the service as its unit
            ("/system.slice/nginx.service/worker", "nginx.service"),
        ] {
            assert_eq!(parsed(path), (None, None, None, s(unit)), "{path}");
        }
        assert_eq!(parsed("/"), (None, None, None, None));
        assert_eq!(parsed("/deeptcp-test-1/client"), (None, None, None, None));
        // ids that are too short or not hex are no container ids
        assert_eq!(parsed("/docker/abc").0, None);
        assert_eq!(parsed("/system.slice/docker-notanid.scope").0, None);
        assert_eq!(parsed(&format!("/other/{HEX64}")).0, None);
    }

    #[test]
    fn patterns() {
        let m = |p: &str, path: &str| CgroupPattern::parse(p).unwrap().matches(path);
        // a component anywhere, and everything under it
        assert!(m("deeptcp-test-*", "/deeptcp-test-42"));
        assert!(m("deeptcp-test-*", "/deeptcp-test-42/client"));
        assert!(!m("deeptcp-test-*", "/other/deeptcp-tes"));
        assert!(m("docker-*.scope", &format!("/system.slice/docker-{HEX64}.scope")));
        assert!(!m("docker-*", "/system.slice/containerd.service"));
        assert!(m("session-?.scope", "/user.slice/user-1000.slice/session-3.scope"));
        assert!(!m("session-?.scope", "/user.slice/user-1000.slice/session-31.scope"));
        // anchored at the root
        assert!(m("/system.slice", "/system.slice/sshd.service"));
        assert!(m("system.slice/", "/system.slice/sshd.service"));
        assert!(!m("/system.slice", "/user.slice/system.slice"));
        assert!(!m("/system", "/system.slice"));
        assert!(m("/*/sshd.service", "/system.slice/sshd.service"));
        assert!(!m("/*", "/"));
        assert!(m("/", "/"));
        assert!(m("/", "/a/b"));
        // `*` stays in its component, `**` crosses them
        assert!(!m("/kubepods.slice/*.scope", "/kubepods.slice/a.slice/b.scope"));
        assert!(m("/kubepods.slice/**.scope", "/kubepods.slice/a.slice/b.scope"));
        assert!(m(
            "/kubepods.slice/**/cri-containerd-*.scope",
            "/kubepods.slice/a.slice/p.slice/cri-containerd-ab.scope"
        ));
        assert!(m("*", "/x"));
        assert!(!m("*", "/"));
        assert!(m("é?", "/éé"));
        assert!(CgroupPattern::parse("").is_err());
        assert!(CgroupPattern::parse("a\0b").is_err());
    }

    #[test]
    fn tables_and_json() {
        let mut n = Names::default();
        assert!(!n.recorded());
        assert!(n.insert_cgroup(CgroupName::new(7, &format!("/system.slice/docker-{HEX64}.scope"))));
        assert!(!n.insert_cgroup(CgroupName::new(7, &format!("/system.slice/docker-{HEX64}.scope"))));
        assert!(n.insert_cgroup(CgroupName::new(9, "/deeptcp-test-1/client")));
        assert!(n.insert_netns(4026532000, "blue"));
        assert!(!n.insert_netns(4026532000, "blue"));
        assert!(n.recorded());
        assert_eq!(n.cgroup(9).unwrap().path, "/deeptcp-test-1/client");
        assert_eq!(n.netns_name(4026532000), Some("blue"));
        assert_eq!(n.netns_name(1), None);
        assert_eq!(n.containers(), 1);
        let pats = [
            CgroupPattern::parse("deeptcp-*").unwrap(),
            CgroupPattern::parse("/system.slice").unwrap(),
        ];
        assert_eq!(n.matching_cgroups(&pats), [7, 9]);
        assert_eq!(n.matching_cgroups(&pats[..1]), [9]);
        let [(k1, cg), (k2, ns)] = n.key_values();
        assert_eq!((k1, k2), (key::CGROUPS, key::NETNS_NAMES));
        assert_eq!(
            cg,
            format!(
                r#"[{{"id":7,"path":"/system.slice/docker-{HEX64}.scope","container_id":"{HEX64}","runtime":"docker","pod_uid":null,"unit":"docker-{HEX64}.scope"}},{{"id":9,"path":"/deeptcp-test-1/client","container_id":null,"runtime":null,"pod_uid":null,"unit":null}}]"#
            )
        );
        assert_eq!(ns, r#"[{"inode":4026532000,"name":"blue"}]"#);
        let kv: HashMap<String, String> = [(k1.to_owned(), cg), (k2.to_owned(), ns)].into();
        assert_eq!(Names::decode(Path::new("x"), &kv).unwrap(), n);
        // minimal entries (other writers) read too
        let kv: HashMap<String, String> = [(key::CGROUPS.to_owned(), r#"[{"id":3,"path":"/a"}]"#.to_owned())].into();
        let d = Names::decode(Path::new("x"), &kv).unwrap();
        assert!(d.recorded() && d.cgroup(3).unwrap().info == CgroupInfo::default());
        // no keys: not recorded; a bad value is an error naming the key
        assert!(!Names::decode(Path::new("x"), &HashMap::new()).unwrap().recorded());
        let kv: HashMap<String, String> = [(key::NETNS_NAMES.to_owned(), "{".to_owned())].into();
        let e = Names::decode(Path::new("x"), &kv).unwrap_err().to_string();
        assert!(e.contains(key::NETNS_NAMES), "{e}");
    }

    #[test]
    fn tables_are_cut_to_their_limits() {
        let mut n = Names::recorded_empty();
        for i in 0..5000u64 {
            n.insert_cgroup(CgroupName::new(i, &format!("/{}/{i}", "x".repeat(100))));
        }
        let [(_, cg), _] = n.key_values();
        assert!(cg.len() <= MAX_CGROUPS_BYTES, "{}", cg.len());
        let back: Vec<CgroupName> = serde_json::from_str(&cg).unwrap();
        assert!(back.len() > 1000 && back.len() < 5000);
        assert_eq!(back[0], n.cgroups()[0]);
        assert_eq!(Names::recorded_empty().key_values()[0].1, "[]");
    }
}
