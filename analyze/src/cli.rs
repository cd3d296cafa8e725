//! Command line: what the user typed ([`Args`], parsed by clap) and what the
//! program will do ([`Config`], validated).
//!
//! The two are kept apart so that every rule about option combinations lives
//! in one unit-tested function ([`Config::from_args`]) and the rest of the
//! program only ever sees a consistent configuration. Validation problems are
//! usage errors: they are reported through clap, like its own parse errors,
//! and exit with status 2.

use std::path::{Path, PathBuf};

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};

const AFTER_HELP: &str = "\
Examples:
  analyze capture.parquet              classic table, one line per event
  analyze -t capture.parquet           add TIME(s): seconds since the recording started
  analyze -K capture.parquet           print each event's kernel stack under it
                                       (recorded with `record -K`; frames come from
                                       capture.stacks.parquet next to the recording)
  analyze --info capture.parquet       what, where and how the recording was made
  analyze capture.parquet | less -S    output stops cleanly when the pager quits

Reading a recording needs no root and no eBPF: copy the .parquet (and its
.stacks.parquet sidecar, for -K) to any machine.";

/// Replays a deeptcp recording offline: prints the TCP events it holds.
///
/// The default output is the classic deeptcptracer table (EVENT_SOURCE, PID,
/// COMM, SOURCE, DESTINATION, TCP_STATE, SK_ERR).
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(name = "analyze", version, after_help = AFTER_HELP)]
pub struct Args {
    /// Recording to read (a .parquet file written by `record`).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Print a first column TIME(s): seconds since the recording started.
    #[arg(short = 't', long = "timestamp")]
    pub timestamp: bool,

    /// Print the kernel stack of each event under it (needs a recording made with `record -K`).
    #[arg(short = 'K', long = "kstack")]
    pub kstack: bool,

    /// Print the recording's metadata and per-kind event counts instead of the events.
    #[arg(long = "info", conflicts_with_all = ["timestamp", "kstack"])]
    pub info: bool,
}

/// What to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One line per event.
    Table(TableOptions),
    /// Recording metadata and summary.
    Info,
}

/// Options of the classic table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableOptions {
    /// Leading `TIME(s)` column.
    pub timestamps: bool,
    /// Kernel stacks under each event.
    pub kstack: bool,
}

/// A validated run configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub input: PathBuf,
    pub mode: Mode,
}

/// Suffix of the stack sidecar that sits next to a recording.
const SIDECAR_SUFFIX: &str = ".stacks.parquet";

impl Config {
    /// Parses the process arguments, exiting with clap's usage message and
    /// status 2 (or 0 for `--help`/`--version`) when they are not usable.
    pub fn from_env() -> Config {
        Config::from_args(Args::parse()).unwrap_or_else(|e| e.exit())
    }

    /// Checks option combinations clap cannot express and builds the config.
    pub fn from_args(args: Args) -> Result<Config, clap::Error> {
        if args.file.as_os_str().is_empty() {
            return Err(usage_error(
                ErrorKind::InvalidValue,
                "FILE must not be empty".to_string(),
            ));
        }
        if let Some(recording) = recording_of_sidecar(&args.file) {
            return Err(usage_error(
                ErrorKind::InvalidValue,
                format!(
                    "{} is a kernel stack sidecar, not a recording; pass {} (with -K to show its stacks)",
                    args.file.display(),
                    recording.display()
                ),
            ));
        }
        // clap's conflicts_with already rejects these; kept so the rule does not
        // depend on the attribute staying in place.
        if args.info && (args.timestamp || args.kstack) {
            return Err(usage_error(
                ErrorKind::ArgumentConflict,
                "--info prints metadata only and cannot be combined with -t or -K".to_string(),
            ));
        }
        let mode = if args.info {
            Mode::Info
        } else {
            Mode::Table(TableOptions {
                timestamps: args.timestamp,
                kstack: args.kstack,
            })
        };
        Ok(Config { input: args.file, mode })
    }
}

fn usage_error(kind: ErrorKind, msg: String) -> clap::Error {
    Args::command().error(kind, msg)
}

/// `x.stacks.parquet` → `Some(x.parquet)`; anything else → `None`.
fn recording_of_sidecar(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(SIDECAR_SUFFIX)?;
    if stem.is_empty() {
        return None;
    }
    Some(path.with_file_name(format!("{stem}.parquet")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("analyze").chain(argv.iter().copied()))
    }

    fn config(argv: &[&str]) -> Result<Config, clap::Error> {
        Config::from_args(parse(argv)?)
    }

    #[test]
    fn plain_table() {
        let c = config(&["x.parquet"]).unwrap();
        assert_eq!(c.input, PathBuf::from("x.parquet"));
        assert_eq!(c.mode, Mode::Table(TableOptions::default()));
    }

    #[test]
    fn short_and_long_flags() {
        let want = Mode::Table(TableOptions {
            timestamps: true,
            kstack: true,
        });
        assert_eq!(config(&["-t", "-K", "x.parquet"]).unwrap().mode, want);
        assert_eq!(config(&["-tK", "x.parquet"]).unwrap().mode, want);
        assert_eq!(config(&["x.parquet", "--timestamp", "--kstack"]).unwrap().mode, want);
    }

    #[test]
    fn info() {
        assert_eq!(config(&["--info", "x.parquet"]).unwrap().mode, Mode::Info);
    }

    #[test]
    fn info_conflicts_with_table_flags() {
        for flag in ["-t", "-K"] {
            let e = config(&["--info", flag, "x.parquet"]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ArgumentConflict, "{flag}");
            assert_eq!(e.exit_code(), 2);
        }
        // Also when clap's attribute is bypassed.
        let args = Args {
            file: "x.parquet".into(),
            timestamp: true,
            kstack: false,
            info: true,
        };
        let e = Config::from_args(args).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ArgumentConflict);
        assert!(e.to_string().contains("--info"), "{e}");
    }

    #[test]
    fn file_is_required_and_single() {
        assert_eq!(config(&[]).unwrap_err().kind(), ErrorKind::MissingRequiredArgument);
        assert_eq!(
            config(&["a.parquet", "b.parquet"]).unwrap_err().kind(),
            ErrorKind::UnknownArgument
        );
        assert_eq!(config(&[""]).unwrap_err().kind(), ErrorKind::InvalidValue);
    }

    #[test]
    fn sidecar_is_rejected_with_the_recording_named() {
        let e = config(&["-K", "dir/cap.stacks.parquet"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidValue);
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(msg.contains("dir/cap.parquet"), "{msg}");
        // A recording merely named like one is fine.
        assert!(config(&[".stacks.parquet"]).is_ok());
        assert!(config(&["stacks.parquet"]).is_ok());
    }

    #[test]
    fn help_has_examples() {
        let help = Args::command().render_long_help().to_string();
        assert!(help.contains("Examples:"));
        assert!(help.contains("--timestamp"));
        assert!(help.contains("--kstack"));
        assert!(help.contains("--info"));
    }

    #[test]
    fn clap_definition_is_consistent() {
        Args::command().debug_assert();
    }
}
