//! A guard around the parquet and arrow crates' decoding: a panic inside
//! becomes an error.
//!
//! Recordings come from other machines and get damaged or crafted, and the
//! parquet crate still has `assert!`s that corrupt bytes can reach; reading
//! them must end in an error, not a crash. Everything that hands file bytes
//! to those crates (the reader, checkpoint recovery, the stacks sidecar)
//! goes through [`guarded`].

use std::path::Path;

use parquet::errors::ParquetError;

use crate::FormatError;

/// Runs parquet/arrow decoding, turning a panic into an error.
///
/// parquet 60.1 still has `assert!`s that corrupt bytes can reach (bit
/// readers, buffer bounds); a recording from another machine must not crash
/// `analyze`, so decoding calls go through here. A panic inside is an error
/// like any other: the panic hook stays quiet for it (see [`quiet_hook`]), so
/// the user sees one error line, not a library backtrace. With
/// `panic = "abort"` this cannot help. Callers never touch the decoder again
/// after a panic, which is what makes `AssertUnwindSafe` sound here.
pub(crate) fn guarded<T>(
    path: &Path,
    what: &str,
    f: impl FnOnce() -> Result<T, FormatError>,
) -> Result<T, FormatError> {
    quiet_hook();
    let was = IN_GUARD.with(|g| g.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    IN_GUARD.with(|g| g.set(was));
    match result {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(FormatError::parquet(
                Some(path),
                ParquetError::General(format!("corrupt data: the decoder failed while {what}: {msg}")),
            ))
        }
    }
}

thread_local! {
    /// Whether this thread is inside [`guarded`].
    static IN_GUARD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Wraps the process's panic hook (once) so that panics caught by
/// [`guarded`] print nothing; every other panic reaches the previous hook
/// unchanged.
fn quiet_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_GUARD.with(|g| g.get()) {
                previous(info);
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guarded_turns_panics_into_errors() {
        let p = Path::new("x.parquet");
        let err = guarded::<()>(p, "testing", || panic!("boom {}", 1)).unwrap_err();
        let cause = std::error::Error::source(&err)
            .map(|c| c.to_string())
            .unwrap_or_default();
        let msg = format!("{err}: {cause}");
        assert!(msg.starts_with("x.parquet: "), "{msg}");
        assert!(msg.contains("while testing: boom 1"), "{msg}");
        assert_eq!(guarded(p, "testing", || Ok(7)).unwrap(), 7);
    }
}
