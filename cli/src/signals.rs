//! Stop signals as a flag instead of death: SIGINT/SIGTERM/SIGHUP set it and
//! the program ends its work cleanly — `record` drains the ring buffer and
//! writes the Parquet footer (start-up polls the flag between its stages),
//! `analyze --follow` flushes what it printed and exits 0.

use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::{bail, Result};

/// The first stop signal received (0: none yet).
static STOP: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    // Only an atomic compare-exchange: async-signal-safe. The first signal wins.
    let _ = STOP.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
}

/// Installs the handlers (no SA_RESTART: a blocking poll() or sleep
/// returns EINTR and the caller sees the flag at once).
pub fn install() -> Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value;
        // the handler only touches an atomic. No SA_RESTART, so a blocking
        // poll() returns EINTR and the loop sees the flag at once.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            bail!("installing signal handler: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Asks the recording to stop as SIGTERM would (the live output's reader
/// went away); recorded as SIGPIPE.
pub fn request_stop() {
    let _ = STOP.compare_exchange(0, libc::SIGPIPE, Ordering::SeqCst, Ordering::SeqCst);
}

pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst) != 0
}

/// The name of the signal that asked to stop, if one did.
pub fn stop_signal() -> Option<&'static str> {
    match STOP.load(Ordering::SeqCst) {
        0 => None,
        libc::SIGINT => Some("SIGINT"),
        libc::SIGTERM => Some("SIGTERM"),
        libc::SIGHUP => Some("SIGHUP"),
        libc::SIGPIPE => Some("a closed output (SIGPIPE)"),
        _ => Some("a signal"),
    }
}
