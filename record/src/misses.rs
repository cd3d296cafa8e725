//! Events lost without a trace in the ring buffer: a tracing program that
//! is already running on a CPU is not run again when its hook fires in an
//! interrupt on that CPU (a softirq's TCP processing, say, while the program
//! runs in a syscall); the kernel only counts the skipped run in the
//! program's `recursion_misses` (5.12+, shown in its fdinfo). For a program
//! that makes rows a skipped run is a lost event, so `record` adds these
//! counts to its lost count, less the runs that the hook's nested twin made
//! up for (the programs count those). The owner refreshers make no rows and
//! a twin's skipped runs lose nothing: their misses are not lost events.

use std::os::fd::{AsFd, OwnedFd};

use aya::Ebpf;

/// The loaded row-making programs, by a descriptor of their own (reading
/// the counts still works after the programs are detached and `Ebpf` is
/// dropped, which is when the final count is taken).
pub struct Misses {
    programs: Vec<OwnedFd>,
}

impl Misses {
    /// Every loaded program of `ebpf` except those named in `skip`.
    pub fn of(ebpf: &Ebpf, skip: &[String]) -> Misses {
        let programs = ebpf
            .programs()
            .filter(|(name, _)| !skip.iter().any(|s| s == name))
            .filter_map(|(_, p)| p.fd().ok())
            .filter_map(|fd| fd.as_fd().try_clone_to_owned().ok())
            .collect();
        Misses { programs }
    }

    /// The programs' skipped runs so far (0 where the kernel shows none).
    pub fn total(&self) -> u64 {
        self.programs
            .iter()
            .map(|fd| {
                let path = format!("/proc/self/fdinfo/{}", std::os::fd::AsRawFd::as_raw_fd(fd));
                std::fs::read_to_string(path)
                    .ok()
                    .and_then(|t| recursion_misses(&t))
                    .unwrap_or(0)
            })
            .sum()
    }
}

/// `recursion_misses` of a BPF program's fdinfo text.
fn recursion_misses(fdinfo: &str) -> Option<u64> {
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("recursion_misses:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_count_from_fdinfo() {
        let text = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nprog_type:\t26\nprog_jited:\t1\nprog_tag:\tb1c1d35c3c6b5a58\nmemlock:\t4096\nprog_id:\t84\nrun_time_ns:\t0\nrun_cnt:\t0\nrecursion_misses:\t17\nverified_insns:\t335\n";
        assert_eq!(recursion_misses(text), Some(17));
        assert_eq!(recursion_misses("pos:\t0\nrun_cnt:\t3\n"), None);
        assert_eq!(recursion_misses("recursion_misses:\tmany\n"), None);
    }
}
