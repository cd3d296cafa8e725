//! A file size limit that makes writes fail as a full disk would, for the
//! format crate's write-failure test binaries (the limit is per process).
//! Helpers every crate's tests share are in `deeptcp_format::testing`.

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
