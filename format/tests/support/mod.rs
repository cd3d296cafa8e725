//! Helpers shared by the format crate's integration tests: the interop
//! checker's Python (testdata/check_interop.py) and a file size limit that
//! makes writes fail as a full disk would. Each test binary uses a part.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("format/ has a parent")
        .to_path_buf()
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

/// Makes this process's writes past `bytes` fail with EFBIG (RLIMIT_FSIZE,
/// SIGXFSZ ignored), as a full disk would. Per process: a test binary of
/// its own.
pub fn set_fsize_limit(bytes: u64) {
    let lim = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain setrlimit/signal calls with valid arguments.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
    }
}
