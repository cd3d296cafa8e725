//! Runs one validated [`Config`]: opens the recording, picks the renderer and
//! streams events through it.
//!
//! This is the only module that touches the file system; it turns format
//! errors into messages that name the file and what was being done, and it
//! marks failures to write the output ([`OutputError`]) so that `main` can
//! tell "the reader of our stdout went away" (exit quietly) from real errors.
//! Events are streamed one at a time: memory does not grow with the file.

use std::fmt;
use std::io::{self, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use deeptcp_format::{read_stacks, stacks_path, RecordingMeta, RecordingReader};

use crate::cli::{Config, Mode, TableOptions};
use crate::render::info::{self, Summary};
use crate::render::table::{Stacks, TableRenderer};

/// Writing the program's output failed (e.g. `EPIPE` when piped into `head`).
#[derive(Debug)]
pub struct OutputError(pub io::Error);

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("writing output")
    }
}

impl std::error::Error for OutputError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl OutputError {
    /// True when `err`, or anything it wraps, is a broken pipe on our output.
    pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
        err.chain().any(|e| {
            e.downcast_ref::<OutputError>()
                .is_some_and(|o| o.0.kind() == io::ErrorKind::BrokenPipe)
        })
    }
}

fn output(e: io::Error) -> anyhow::Error {
    anyhow::Error::new(OutputError(e))
}

/// Runs `config`, writing results to `out` and warnings to `warn`.
pub fn run(config: &Config, out: &mut impl Write, warn: &mut impl Write) -> Result<()> {
    let reader = open(&config.input)?;
    match config.mode {
        Mode::Table(opts) => table(config, reader, opts, out, warn),
        Mode::Info => info(reader, out),
    }
}

fn open(path: &Path) -> Result<RecordingReader> {
    let md = std::fs::metadata(path).with_context(|| format!("cannot open {}", path.display()))?;
    if md.is_dir() {
        bail!("{} is a directory, not a recording", path.display());
    }
    // Format errors name the file themselves.
    RecordingReader::open(path).context("cannot read the recording")
}

fn table(
    config: &Config,
    reader: RecordingReader,
    opts: TableOptions,
    out: &mut impl Write,
    warn: &mut impl Write,
) -> Result<()> {
    let meta = reader.meta().clone();
    if meta.lost_events > 0 {
        warning(
            warn,
            &format!(
                "the recorder lost {} events (ring buffer full): this table is incomplete",
                meta.lost_events
            ),
        );
    }
    let stacks = if opts.kstack {
        load_stacks(&config.input, &meta, warn)?
    } else {
        None
    };

    let mut r = TableRenderer::new(out, opts.timestamps, meta.clock.monotonic_ns, stacks.as_ref());
    r.header().map_err(output)?;
    for ev in reader.events() {
        r.event(&ev.context(READING)?).map_err(output)?;
    }
    r.finish().map_err(output)?;
    Ok(())
}

fn info(reader: RecordingReader, out: &mut impl Write) -> Result<()> {
    let meta = reader.meta().clone();
    let finished = reader.finished();
    let mut summary = Summary::default();
    for ev in reader.events() {
        summary.add(&ev.context(READING)?);
    }
    info::render(out, &meta, finished, &summary).map_err(output)?;
    out.flush().map_err(output)
}

/// Stacks for `-K`: `None` when the recording has none to show.
///
/// The sidecar is read whole (it holds each distinct stack once). When it
/// cannot be read, that is an error only if some event refers to a stack,
/// which costs a second pass over the recording, in that case only.
fn load_stacks(path: &Path, meta: &RecordingMeta, warn: &mut impl Write) -> Result<Option<Stacks>> {
    if !meta.kstack {
        warning(
            warn,
            &format!(
                "{} was recorded without -K: it has no kernel stacks to show",
                path.display()
            ),
        );
        return Ok(None);
    }
    let sidecar = stacks_path(path);
    let err = match read_stacks(&sidecar) {
        Ok(stacks) => return Ok(Some(stacks)),
        Err(e) => e,
    };
    if !any_event_has_stack(path)? {
        return Ok(None);
    }
    if !sidecar.exists() {
        bail!(
            "-K: the kernel stack sidecar {} is missing (copy it along with the recording, or drop -K)",
            sidecar.display()
        );
    }
    // Format errors name the file themselves.
    Err(anyhow::Error::new(err).context("-K: cannot read the kernel stack sidecar"))
}

fn any_event_has_stack(path: &Path) -> Result<bool> {
    let reader = open(path)?;
    for ev in reader.events() {
        if ev.context(READING)?.stack_id.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Context of event decoding errors (which name the file and row themselves).
const READING: &str = "cannot read the recording's events";

/// One warning line on stderr. A failure to write it must not stop the run.
fn warning(warn: &mut impl Write, msg: &str) {
    let _ = writeln!(warn, "analyze: warning: {msg}");
}

/// The one-line message for `err`: its context chain joined by `": "`, as
/// anyhow's `{:#}` does, except that a cause whose text the line already
/// holds is left out (libraries often repeat their source in their own
/// message, which would print it twice).
pub fn error_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    // A message that spans lines would break "one line on stderr".
    line.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Repeats(io::Error);
    impl fmt::Display for Repeats {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "x.parquet: not a Parquet file ({})", self.0)
        }
    }
    impl std::error::Error for Repeats {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn error_line_is_the_chain_without_repeats() {
        let e = anyhow::Error::new(Repeats(io::Error::other("bad magic"))).context("cannot read the recording");
        assert_eq!(
            error_line(&e),
            "cannot read the recording: x.parquet: not a Parquet file (bad magic)"
        );
        let e = anyhow::Error::new(io::Error::other("two\nlines")).context("ctx");
        assert_eq!(error_line(&e), "ctx: two lines");
        assert_eq!(
            format!("{:#}", anyhow::anyhow!("plain")),
            error_line(&anyhow::anyhow!("plain"))
        );
    }

    #[test]
    fn broken_pipe_only_on_output() {
        let pipe = || io::Error::from(io::ErrorKind::BrokenPipe);
        assert!(OutputError::is_broken_pipe(&output(pipe())));
        assert!(OutputError::is_broken_pipe(&output(pipe()).context("more")));
        assert!(!OutputError::is_broken_pipe(&output(io::Error::other("disk full"))));
        // A broken pipe while reading input is a real error.
        assert!(!OutputError::is_broken_pipe(&anyhow::Error::new(pipe())));
    }
}
