//! Names for the numbers rows carry, looked up on this host: cgroup id →
//! cgroup path (the id is the inode of the cgroup's directory under the
//! cgroup2 mount) and netns inode → name (the bind-mounted nsfs files in
//! `/run/netns`, which `ip netns` names).
//!
//! The tables go into the file ([`deeptcp_format::Names`],
//! `deeptcp.cgroups` / `deeptcp.netns_names`) for the ids rows carry only.
//! They are looked up at start (a scan of the cgroup2 tree and
//! `/run/netns`); an id rows bring later is looked up at once through its
//! owner (`/proc/PID/cgroup`, checked against the id) and otherwise by a
//! new scan, at most one per [`RESCAN_EVERY`], so cgroups and namespaces
//! created while recording get names; before a file is closed, ids still
//! without a name get one more scan. A cgroup or namespace gone by then
//! stays unnamed: never an error.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use deeptcp_format::{CgroupName, Names, RowBatch};

/// Least time between two scans for ids that have no name yet.
pub const RESCAN_EVERY: Duration = Duration::from_secs(1);
/// Deepest cgroup directory a scan descends into.
const MAX_DEPTH: usize = 64;
/// Most cgroups a scan keeps (a host has hundreds to a few thousand).
const MAX_CGROUPS: usize = 200_000;

/// Where the names come from (the real paths, or test directories).
#[derive(Debug, Clone)]
pub struct Sources {
    /// The cgroup2 mount (`/sys/fs/cgroup`, `/sys/fs/cgroup/unified`).
    pub cgroup2: Option<PathBuf>,
    /// Directories of named network namespaces (`/run/netns`).
    pub netns_dirs: Vec<PathBuf>,
    /// `/proc`, for `PID/cgroup` and `self/ns/net`.
    pub proc: PathBuf,
}

impl Sources {
    /// This host's, with its cgroup2 mount (found in `/proc/self/mounts`).
    pub fn host(cgroup2: Option<PathBuf>) -> Sources {
        Sources {
            cgroup2,
            netns_dirs: vec![PathBuf::from("/run/netns")],
            proc: PathBuf::from("/proc"),
        }
    }
}

/// The recorder's name tables and what rows have asked for.
pub struct Resolver {
    src: Sources,
    /// Device of nsfs: files in `netns_dirs` on another device are not
    /// mounted namespaces (a name left behind without its mount).
    nsfs_dev: Option<u64>,
    /// Every cgroup of the last scan: id → path.
    cgroups: HashMap<u64, String>,
    /// Every named namespace of the last scan.
    netns: HashMap<u32, String>,
    seen_cgroups: HashSet<u64>,
    seen_netns: HashSet<u32>,
    /// The last ids looked at (consecutive rows mostly share them).
    last: (u64, u32),
    /// An id first seen since the last scan has no name.
    want_scan: bool,
    /// Some seen id has no name.
    unnamed: bool,
    last_scan: Instant,
    /// What the file gets: the seen ids that have names.
    table: Names,
    changed: bool,
}

impl Resolver {
    /// Scans `src` once.
    pub fn new(src: Sources) -> Resolver {
        let nsfs_dev = fs::metadata(src.proc.join("self/ns/net")).ok().map(|m| m.dev());
        let mut r = Resolver {
            src,
            nsfs_dev,
            cgroups: HashMap::new(),
            netns: HashMap::new(),
            seen_cgroups: HashSet::new(),
            seen_netns: HashSet::new(),
            last: (0, 0),
            want_scan: false,
            unnamed: false,
            last_scan: Instant::now(),
            table: Names::recorded_empty(),
            changed: true,
        };
        r.scan();
        r
    }

    /// Notes the ids of `batch`'s rows.
    pub fn observe_batch(&mut self, batch: &RowBatch) {
        for (pid, cgroup_id, netns) in batch.owner_ids() {
            self.observe(pid, cgroup_id, netns);
        }
    }

    /// Notes the ids of one row (owner `pid`, 0 when unknown).
    pub fn observe(&mut self, pid: u32, cgroup_id: u64, netns: u32) {
        if (cgroup_id, netns) == self.last {
            return;
        }
        self.last = (cgroup_id, netns);
        if cgroup_id != 0 && self.seen_cgroups.insert(cgroup_id) {
            if !self.cgroups.contains_key(&cgroup_id) && pid != 0 {
                self.lookup_owner(pid, cgroup_id);
            }
            if !self.name_cgroup(cgroup_id) {
                self.want_scan = true;
                self.unnamed = true;
            }
        }
        if netns != 0 && self.seen_netns.insert(netns) && !self.name_netns(netns) {
            self.want_scan = true;
            self.unnamed = true;
        }
    }

    /// The cgroup of process `pid` when it is still `cgroup_id` (its path's
    /// directory has that inode).
    fn lookup_owner(&mut self, pid: u32, cgroup_id: u64) {
        let Some(root) = &self.src.cgroup2 else { return };
        let Ok(text) = fs::read_to_string(self.src.proc.join(format!("{pid}/cgroup"))) else {
            return;
        };
        let Some(path) = text.lines().find_map(|l| l.strip_prefix("0::")) else {
            return;
        };
        let dir = root.join(path.trim_start_matches('/'));
        if fs::metadata(dir).is_ok_and(|m| m.ino() == cgroup_id) {
            self.cgroups.insert(cgroup_id, path.to_owned());
        }
    }

    fn name_cgroup(&mut self, id: u64) -> bool {
        let Some(path) = self.cgroups.get(&id) else {
            return false;
        };
        self.changed |= self.table.insert_cgroup(CgroupName::new(id, path));
        true
    }

    fn name_netns(&mut self, inode: u32) -> bool {
        let Some(name) = self.netns.get(&inode) else {
            return false;
        };
        self.changed |= self.table.insert_netns(inode, name);
        true
    }

    /// Scans again when an id seen since the last scan has no name and the
    /// last scan is [`RESCAN_EVERY`] old.
    pub fn maybe_rescan(&mut self) {
        if self.want_scan && self.last_scan.elapsed() >= RESCAN_EVERY {
            self.rescan();
        }
    }

    /// Before a file is closed: one more scan when some seen id has no name.
    pub fn rescan_if_unnamed(&mut self) {
        if self.unnamed {
            self.rescan();
        }
    }

    fn rescan(&mut self) {
        self.scan();
        self.want_scan = false;
        let mut unnamed = false;
        let cgroups: Vec<u64> = self.seen_cgroups.iter().copied().collect();
        for id in cgroups {
            unnamed |= !self.name_cgroup(id);
        }
        let netns: Vec<u32> = self.seen_netns.iter().copied().collect();
        for inode in netns {
            unnamed |= !self.name_netns(inode);
        }
        self.unnamed = unnamed;
    }

    /// Reads the cgroup2 tree and the netns directories. A cgroup or
    /// namespace that is already gone keeps the name it had.
    fn scan(&mut self) {
        self.last_scan = Instant::now();
        if let Some(root) = self.src.cgroup2.clone() {
            if let Ok(m) = fs::metadata(&root) {
                self.cgroups.insert(m.ino(), "/".to_owned());
            }
            walk(&root, "", 0, &mut self.cgroups);
        }
        for dir in &self.src.netns_dirs {
            let Ok(entries) = fs::read_dir(dir) else { continue };
            for e in entries.flatten() {
                let Some(name) = e.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                // stat follows the bind mount to the namespace's nsfs inode.
                let Ok(m) = fs::metadata(e.path()) else { continue };
                if self.nsfs_dev.is_some_and(|d| d != m.dev()) {
                    continue;
                }
                if let Ok(inode) = u32::try_from(m.ino()) {
                    self.netns.insert(inode, name);
                }
            }
        }
    }

    /// The tables when they changed since the last call.
    pub fn changes(&mut self) -> Option<&Names> {
        std::mem::take(&mut self.changed).then_some(&self.table)
    }

    /// The tables as they are.
    pub fn table(&self) -> &Names {
        &self.table
    }
}

/// Adds the cgroups below `dir` (at cgroup path `path`) to `out`.
fn walk(dir: &Path, path: &str, depth: usize, out: &mut HashMap<u64, String>) {
    if depth >= MAX_DEPTH {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        if out.len() >= MAX_CGROUPS {
            return;
        }
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Some(name) = e.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let child = format!("{path}/{name}");
        // The directory entry's inode is the cgroup id: no stat needed.
        out.insert(e.ino(), child.clone());
        walk(&e.path(), &child, depth + 1, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ino(p: &Path) -> u64 {
        fs::metadata(p).unwrap().ino()
    }

    /// A fake host: a cgroup tree of plain directories, a netns directory
    /// of plain files (no nsfs: `nsfs_dev` is taken from a fake /proc), a
    /// /proc with one process.
    struct Fake {
        dir: tempfile::TempDir,
    }

    impl Fake {
        fn new() -> Fake {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            fs::create_dir_all(d.join("cg/system.slice/sshd.service")).unwrap();
            fs::create_dir_all(d.join("netns")).unwrap();
            fs::write(d.join("netns/blue"), "").unwrap();
            fs::create_dir_all(d.join("proc/self/ns")).unwrap();
            // Same device as the fake netns files.
            fs::write(d.join("proc/self/ns/net"), "").unwrap();
            fs::create_dir_all(d.join("proc/42")).unwrap();
            Fake { dir }
        }

        fn p(&self, rel: &str) -> PathBuf {
            self.dir.path().join(rel)
        }

        fn sources(&self) -> Sources {
            Sources {
                cgroup2: Some(self.p("cg")),
                netns_dirs: vec![self.p("netns")],
                proc: self.p("proc"),
            }
        }
    }

    #[test]
    fn names_come_from_the_start_scan_the_owner_and_later_scans() {
        let f = Fake::new();
        let mut r = Resolver::new(f.sources());
        assert!(r.changes().is_some(), "the empty tables are news at start");
        assert!(r.changes().is_none());
        let sshd = ino(&f.p("cg/system.slice/sshd.service"));
        let blue = ino(&f.p("netns/blue")) as u32;
        r.observe(0, sshd, blue);
        assert_eq!(r.table().cgroup(sshd).unwrap().path, "/system.slice/sshd.service");
        assert_eq!(r.table().netns_name(blue), Some("blue"));
        assert!(r.changes().is_some());

        // A cgroup made after the start scan, found through its process.
        fs::create_dir_all(f.p("cg/deeptcp-test-1/client")).unwrap();
        let client = ino(&f.p("cg/deeptcp-test-1/client"));
        fs::write(f.p("proc/42/cgroup"), "0::/deeptcp-test-1/client\n").unwrap();
        r.observe(42, client, blue);
        assert_eq!(r.table().cgroup(client).unwrap().path, "/deeptcp-test-1/client");
        assert!(!r.want_scan);

        // One without a process: the next scan, not before RESCAN_EVERY.
        fs::create_dir_all(f.p("cg/later")).unwrap();
        fs::write(f.p("netns/green"), "").unwrap();
        let later = ino(&f.p("cg/later"));
        let green = ino(&f.p("netns/green")) as u32;
        r.observe(0, later, green);
        assert!(r.table().cgroup(later).is_none() && r.want_scan);
        r.maybe_rescan();
        assert!(r.table().cgroup(later).is_none(), "rate-limited");
        r.last_scan -= RESCAN_EVERY;
        r.maybe_rescan();
        assert_eq!(r.table().cgroup(later).unwrap().path, "/later");
        assert_eq!(r.table().netns_name(green), Some("green"));
        assert!(!r.want_scan && !r.unnamed);

        // Gone before anyone looked: no name, and no rescan on every row.
        r.observe(0, 999_999_999, 0);
        assert!(r.unnamed);
        r.rescan_if_unnamed();
        assert!(r.table().cgroup(999_999_999).is_none() && r.unnamed && !r.want_scan);
        // Only seen ids go into the file.
        assert!(r.table().cgroups().iter().all(|c| c.path != "/"));
        let ids: Vec<u64> = r.table().cgroups().iter().map(|c| c.id).collect();
        assert_eq!(ids, [sshd, client, later]);
    }

    #[test]
    fn a_process_that_moved_is_not_trusted_and_no_cgroup2_is_fine() {
        let f = Fake::new();
        let mut r = Resolver::new(f.sources());
        fs::create_dir_all(f.p("cg/a")).unwrap();
        fs::write(f.p("proc/42/cgroup"), "0::/a\n").unwrap();
        // The row's id is not /a's: the process moved since.
        r.observe(42, 123_456_789, 0);
        assert!(r.table().cgroup(123_456_789).is_none());
        let none = Sources {
            cgroup2: None,
            netns_dirs: vec![f.p("missing")],
            proc: f.p("proc"),
        };
        let mut r = Resolver::new(none);
        r.observe(42, 5, 6);
        r.rescan_if_unnamed();
        assert!(r.table().cgroups().is_empty() && r.table().netns().is_empty());
        assert!(r.table().recorded());
    }

    #[test]
    fn host_sources_are_this_hosts_paths() {
        let mount = crate::probes::cgroup2_mount("cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n");
        let s = Sources::host(mount);
        assert_eq!(s.cgroup2.as_deref(), Some(Path::new("/sys/fs/cgroup/unified")));
        assert_eq!(s.netns_dirs, [PathBuf::from("/run/netns")]);
        assert_eq!(s.proc, Path::new("/proc"));
    }
}
