//! Start-up that a stop request always ends (issue 13: `record -o FIFO
//! --force` blocked in open(2) and obeyed only SIGKILL).
//!
//! The signal handlers only set a flag, so a stop during start-up has to be
//! looked for: [`Startup::stage`] checks it between the stages (creating
//! the files, loading the programs, the socket snapshot, ...) and ends
//! start-up with an error (the created files are removed by their owner,
//! nothing stays attached). A stage that does not return at all — blocked
//! in the kernel, where a flag cannot reach it — is ended by a watchdog
//! thread: [`GRACE`] after a stop signal, or [`STUCK_AFTER_DURATION`] after
//! `--duration` would have ended had start-up been instant, it removes the
//! files start-up created and exits the process (the kernel detaches the
//! programs with the process's descriptors). `--duration` counts recording
//! time, from the end of start-up: a slow start-up (seconds on an emulated
//! or loaded machine) still records for the whole duration; only one that
//! is stuck is ended by it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use deeptcp_format::checkpoint_path;

use deeptcp_cli::signals;

/// How long a stage may keep running after a stop request before the watchdog ends the process.
pub const GRACE: Duration = Duration::from_secs(1);

/// How long start-up may run past `--duration` before the watchdog takes it
/// for stuck: far beyond a slow start-up (about 9 s measured under qemu
/// emulation), far below forever.
pub const STUCK_AFTER_DURATION: Duration = Duration::from_secs(30);

/// [`STUCK_AFTER_DURATION`], or in debug builds the test override
/// `DEEPTCP_TEST_STUCK_AFTER_DURATION_MS` (the live test of a stuck stage
/// must not wait half a minute).
fn stuck_after_duration() -> Duration {
    if cfg!(debug_assertions) {
        if let Some(ms) = std::env::var("DEEPTCP_TEST_STUCK_AFTER_DURATION_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            return Duration::from_millis(ms);
        }
    }
    STUCK_AFTER_DURATION
}

struct Shared {
    /// Start-up finished: the files are the recording now.
    done: AtomicBool,
    stage: Mutex<&'static str>,
    /// Files created so far (each with its checkpoint sidecar). Held while
    /// files are created, and by the watchdog from its decision to exit on,
    /// so that neither sees the other half done.
    files: Mutex<Vec<PathBuf>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere cannot leave these values inconsistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The start-up of one recording; [`finish`](Self::finish) it once tracing runs.
pub struct Startup {
    shared: Arc<Shared>,
    watchdog: Option<JoinHandle<()>>,
}

impl Startup {
    /// Starts the watchdog. `duration` is `--duration`: start-up still
    /// running [`STUCK_AFTER_DURATION`] after it would have ended an
    /// instantly started recording is taken for stuck and ended.
    pub fn begin(duration: Option<Duration>) -> Result<Self> {
        let shared = Arc::new(Shared {
            done: AtomicBool::new(false),
            stage: Mutex::new("starting"),
            files: Mutex::new(Vec::new()),
        });
        let deadline = duration.and_then(|d| Instant::now().checked_add(d)?.checked_add(stuck_after_duration()));
        let s = Arc::clone(&shared);
        let watchdog = std::thread::Builder::new()
            .name("start-up watchdog".into())
            .spawn(move || watch(&s, deadline))
            .context("spawning the start-up watchdog")?;
        Ok(Startup {
            shared,
            watchdog: Some(watchdog),
        })
    }

    /// Enters stage `name` ("loading the eBPF programs"): an error if a stop
    /// was requested.
    pub fn stage(&self, name: &'static str) -> Result<()> {
        *lock(&self.shared.stage) = name;
        stall_hook(name);
        self.check()
    }

    /// An error if a stop signal arrived.
    pub fn check(&self) -> Result<()> {
        if let Some(sig) = signals::stop_signal() {
            let stage = *lock(&self.shared.stage);
            bail!("stopped by {sig} during start-up ({stage}); nothing was recorded");
        }
        Ok(())
    }

    /// Runs `create`, which creates files and returns (with its result)
    /// their paths, so that the watchdog removes them if it has to end
    /// start-up. The watchdog waits while `create` runs.
    pub fn creating<T>(&self, create: impl FnOnce() -> Result<(T, Vec<PathBuf>)>) -> Result<T> {
        let mut files = lock(&self.shared.files);
        let (value, paths) = create()?;
        files.extend(paths);
        Ok(value)
    }

    /// Start-up is over: the files are the recording, the watchdog stops.
    pub fn finish(mut self) {
        {
            let mut files = lock(&self.shared.files);
            self.shared.done.store(true, Ordering::SeqCst);
            files.clear();
        }
        if let Some(w) = self.watchdog.take() {
            let _ = w.join();
        }
    }
}

impl Drop for Startup {
    /// Start-up failed: its owner removes the files; the watchdog stops.
    fn drop(&mut self) {
        self.shared.done.store(true, Ordering::SeqCst);
        if let Some(w) = self.watchdog.take() {
            let _ = w.join();
        }
    }
}

fn watch(shared: &Shared, deadline: Option<Instant>) {
    // When the stop came, why, and how long start-up had been given past it.
    let mut stop: Option<(Instant, &'static str, Duration)> = None;
    loop {
        if shared.done.load(Ordering::SeqCst) {
            return;
        }
        if stop.is_none() {
            if let Some(sig) = signals::stop_signal() {
                stop = Some((Instant::now(), sig, GRACE));
            } else if deadline.is_some_and(|d| Instant::now() >= d) {
                // Already stuck for longer than the grace: end it now.
                stop = Some((Instant::now() - GRACE, "the end of --duration", stuck_after_duration()));
            }
        }
        if let Some((at, why, given)) = stop {
            if at.elapsed() >= GRACE {
                let files = lock(&shared.files);
                if shared.done.load(Ordering::SeqCst) {
                    return;
                }
                for p in files.iter() {
                    let _ = std::fs::remove_file(p);
                    let _ = std::fs::remove_file(checkpoint_path(p));
                }
                let stage = *lock(&shared.stage);
                say!(
                    "record: start-up did not finish within {} s of {why} (stuck {stage}); \
                     exiting: nothing was recorded",
                    given.as_secs_f64()
                );
                std::process::exit(1);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Test hook (debug builds only): `DEEPTCP_TEST_STALL_START_UP=WORDS` makes
/// the stage whose name starts with WORDS block like a system call that
/// signals do not interrupt (`sleep` resumes after EINTR), so that the live
/// tests can check the watchdog.
fn stall_hook(stage: &str) {
    if !cfg!(debug_assertions) {
        return;
    }
    let Some(want) = std::env::var_os("DEEPTCP_TEST_STALL_START_UP") else {
        return;
    };
    if want.to_str().is_some_and(|w| !w.is_empty() && stage.starts_with(w)) {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}
