//! Command line of `record` and its validated form, [`Config`].

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Parser;

const EXAMPLES: &str = "\
Examples:
  sudo record -o trace.parquet                 record until Ctrl-C
  sudo record -o trace.parquet --duration 30   record for 30 seconds
  sudo record -o trace.parquet -p 1234 -K      one process, with kernel stacks
  analyze trace.parquet -t                     replay it (no root needed)

Exit status: 0 when the recording was written and closed, 1 on any error.";

/// Record TCP events from the Linux kernel (eBPF) into a zstd-compressed Parquet file.
///
/// Attaches to the kernel's TCP tracepoints (state changes, retransmissions,
/// resets sent and received, socket errors, socket destruction), and writes
/// one row per event until Ctrl-C/SIGTERM or --duration. Needs root (or
/// CAP_BPF + CAP_PERFMON). Replay the file with `analyze`.
#[derive(Debug, Parser)]
#[command(name = "record", version, after_help = EXAMPLES)]
pub struct Cli {
    /// Output file; kernel stacks (-K) go to FILE with `.stacks.parquet` in place of `.parquet`.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,

    /// Only record events that fire in process PID (thread-group id).
    #[arg(short = 'p', long = "pid", value_name = "PID", value_parser = clap::value_parser!(u32).range(1..))]
    pub pid: Option<u32>,

    /// Capture kernel stacks, symbolized at record time (see `analyze -K`).
    #[arg(short = 'K', long = "kstack")]
    pub kstack: bool,

    /// Stop after SECS seconds (fractions allowed); default: until SIGINT/SIGTERM.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub duration: Option<Duration>,

    /// Size of the kernel→user ring buffer: a power of two, with optional K/M suffix.
    #[arg(long, value_name = "BYTES", default_value = "8M", value_parser = parse_ring_size)]
    pub ring_size: u32,

    /// Replace FILE if it already exists.
    #[arg(long)]
    pub force: bool,

    /// Do not print the summary line on stderr.
    #[arg(short, long)]
    pub quiet: bool,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(v > 0.0 && v <= 366.0 * 86400.0) {
        return Err(format!("`{s}` must be more than 0 and at most a year"));
    }
    Ok(Duration::from_secs_f64(v))
}

fn parse_ring_size(s: &str) -> Result<u32, String> {
    let (num, mult) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 1u64 << 10),
        Some(b'm' | b'M') => (&s[..s.len() - 1], 1u64 << 20),
        _ => (s, 1u64),
    };
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a size"))?;
    let bytes = n.checked_mul(mult).ok_or_else(|| format!("`{s}` is too large"))?;
    if !(4096..=(1 << 30)).contains(&bytes) || !bytes.is_power_of_two() {
        return Err(format!("`{s}` must be a power of two between 4K and 1024M"));
    }
    Ok(bytes as u32)
}

/// What a recording session does, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub output: PathBuf,
    pub stacks_output: Option<PathBuf>,
    pub pid: Option<u32>,
    pub duration: Option<Duration>,
    pub ring_size: u32,
    pub force: bool,
    pub quiet: bool,
    /// Under load, row groups are closed this often (5× this when quiet), so a
    /// live file is readable up to a recent point.
    pub flush_interval: Duration,
}

impl Config {
    pub fn from_cli(cli: Cli) -> Result<Self> {
        if cli.output.as_os_str().is_empty() {
            bail!("output file name is empty");
        }
        if cli.output.is_dir() {
            bail!("{} is a directory; -o takes a file name", cli.output.display());
        }
        let stacks_output = cli.kstack.then(|| deeptcp_format::stacks_path(&cli.output));
        Ok(Config {
            output: cli.output,
            stacks_output,
            pid: cli.pid,
            duration: cli.duration,
            ring_size: cli.ring_size,
            force: cli.force,
            quiet: cli.quiet,
            flush_interval: Duration::from_secs(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config> {
        let cli = Cli::try_parse_from(std::iter::once("record").chain(args.iter().copied()))?;
        Config::from_cli(cli)
    }

    #[test]
    fn defaults_and_options() {
        let c = parse(&["-o", "t.parquet"]).unwrap();
        assert_eq!(c.ring_size, 8 << 20);
        assert_eq!(c.duration, None);
        assert_eq!(c.stacks_output, None);
        let c = parse(&[
            "-o",
            "t.parquet",
            "-K",
            "-p",
            "42",
            "--duration",
            "1.5",
            "--ring-size",
            "64K",
        ])
        .unwrap();
        assert_eq!(c.pid, Some(42));
        assert_eq!(c.duration, Some(Duration::from_millis(1500)));
        assert_eq!(c.ring_size, 65536);
        assert_eq!(
            c.stacks_output.as_deref(),
            Some(std::path::Path::new("t.stacks.parquet"))
        );
    }

    #[test]
    fn rejects_bad_values() {
        assert!(parse(&[]).is_err(), "-o is required");
        assert!(parse(&["-o", "t", "-p", "0"]).is_err());
        assert!(parse(&["-o", "t", "-p", "x"]).is_err());
        assert!(parse(&["-o", "t", "--duration", "0"]).is_err());
        assert!(parse(&["-o", "t", "--duration", "-3"]).is_err());
        assert!(parse(&["-o", "t", "--duration", "nan"]).is_err());
        assert!(parse(&["-o", "t", "--ring-size", "3000"]).is_err());
        assert!(parse(&["-o", "t", "--ring-size", "2G"]).is_err());
        assert!(parse(&["-o", "t", "--ring-size", "99999999999999999999M"]).is_err());
        let dir = tempfile::tempdir().unwrap();
        let e = parse(&["-o", dir.path().to_str().unwrap()]).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
    }
}
