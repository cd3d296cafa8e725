//! Command line of `record` and its validated form, [`Config`].
//!
//! What clap cannot check (option combinations, names and paths) is
//! checked in [`Command::from_cli`]; those problems are usage errors like
//! clap's own: reported through clap (usage line, `--help` hint) with exit
//! status 2, while failures once recording starts exit 1.

use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use deeptcp_format::filter::Cidr;
use deeptcp_format::timearg;
use deeptcp_format::{Event, EventKind};
use deeptcp_view::table::{TableOptions, TimeColumn};

use crate::live::LiveFormat;

const EXAMPLES: &str = "\
Examples:
  sudo record                                  print events as they happen (the seed's live view)
  sudo record -t -K                            ... with wall-clock times and kernel stacks
  sudo record --json | jq .                    ... as JSON lines (analyze --json's objects)
  sudo record -o trace.parquet                 record until Ctrl-C
  sudo record -o trace.parquet --print         record, and print the events too
  sudo record -o trace.parquet --duration 30   record for 30 seconds (also 30s, 1.5m, 2h, 1h30m)
  sudo record -o trace.parquet -p 1234 -K      one process, with kernel stacks
  sudo record -o trace.parquet --port 443      one port, either side (filtered in the kernel)
  sudo record -o trace.parquet --rotate-size 1G --rotate-secs 3600
                                               trace-000001.parquet, trace-000002.parquet, ...
  sudo record --hive /data/tcp --rotate-secs 1h
                                               /data/tcp/host=web1/date=2026-04-14/web1-...-000001.parquet:
                                               a fleet's tree for DuckDB/Spark/Trino (sql/deeptcp.sql)
  sudo record --list-probes                    which probe records each event kind here
  analyze trace.parquet -t                     replay it (no root needed)

Crash safety: after every flush a checkpoint goes to FILE.checkpoint (removed
when FILE is closed); the first one with traced rows 100 ms after start. If
record is killed, `analyze --repair FILE` makes FILE readable up to the last
flush. On a full disk or an I/O error record stops, closes FILE at its last
flush (readable) and exits 1.

Files: FILE must be absent, or with --force a regular file, which is replaced
by a new one (mode 0600, owned by the recording user). Long runs continue in
segments past --max-row-groups, which keeps memory flat.

Live output: a line is printed within 250 ms of its event; stdout is
line-buffered; when its reader goes away (`record | head`) record stops as on
Ctrl-C, the file (if any) closed complete.

Exit status: 0 when the recording was written and closed (or, without -o,
tracing ended on a signal, --duration or a closed output), 1 on any error.";

/// Record TCP events from the Linux kernel (eBPF) into a zstd-compressed Parquet file, or print them live.
///
/// Attaches to the kernel's TCP tracepoints (state changes, retransmissions,
/// resets sent and received, socket errors, socket destruction), and writes
/// one row per event until Ctrl-C/SIGTERM or --duration. Without -o it
/// prints the classic deeptcptracer table as events happen instead. Needs
/// root (or CAP_BPF + CAP_PERFMON). Replay a file with `analyze`.
#[derive(Debug, Parser)]
#[command(name = "record", version, long_version = crate::version::long_version(), after_help = EXAMPLES)]
pub struct Cli {
    /// Print the man page or a shell completion script to stdout and exit
    /// (for packagers; scripts/install uses it). Needs no root.
    #[arg(long, value_name = "KIND", value_enum, hide = true, exclusive = true)]
    pub generate: Option<deeptcp_cli::generate::Generate>,

    /// Output file; kernel stacks (-K) go to FILE with `.stacks.parquet` in place of `.parquet`;
    /// a checkpoint to FILE.checkpoint while recording.
    /// Without -o nothing is written: the events are printed (see --json).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Instead of -o: write the recording hive-partitioned under DIR, for a fleet's
    /// recordings in one tree: DIR/host=HOST/date=YYYY-MM-DD/HOST-START-NNNNNN.parquet
    /// (UTC), segments as with --rotate-*, and a new one at each UTC midnight. DuckDB,
    /// Spark and Trino read the tree as one table and skip hosts and dates a query does
    /// not want (sql/deeptcp.sql); analyze reads it as 'DIR/host=*/date=*/*.parquet'.
    #[arg(long, value_name = "DIR", conflicts_with = "output")]
    pub hive: Option<PathBuf>,

    /// With -o, also print the events as they are recorded (the table, or
    /// JSON lines with --json). Without -o printing is what record does.
    #[arg(long)]
    pub print: bool,

    /// Print JSON lines (the objects of `analyze --json`) instead of the table.
    #[arg(long, conflicts_with = "timestamp")]
    pub json: bool,

    /// Live table: a first column TIME, the local wall-clock time of each
    /// event (HH:MM:SS.mmm), as deeptcptracer -t.
    #[arg(short = 't', long = "timestamp")]
    pub timestamp: bool,

    /// Live table: SOURCE/DESTINATION 48 characters wide, room for the
    /// longest IPv6 endpoint (the seed's 22 otherwise: a longer endpoint
    /// pushes the rest of its line right).
    #[arg(short = 'w', long = "wide", conflicts_with = "json")]
    pub wide: bool,

    /// Print, for this kernel, which probe of each event kind's ladder attaches (or why none does), then exit.
    #[arg(long, conflicts_with_all = ["output", "hive", "duration", "kstack", "rotate_size", "rotate_secs", "print", "json", "timestamp", "wide"])]
    pub list_probes: bool,

    /// Do not use this probe (e.g. `tp_btf:tcp_probe`); the kind falls to the next rung of its ladder.
    #[arg(long, value_name = "PROBE")]
    pub disable_probe: Vec<String>,

    /// Where the eBPF programs keep each socket's owner: `hash`, a map keyed by socket cookie
    /// (65,536 sockets, least recently used evicted first; cheapest under heavy connection
    /// churn), or `socket`, the socket's own storage (no limit: for hosts with more live
    /// sockets; falls back to the hash when a kprobe rung is in use, which cannot reach it).
    #[arg(long, value_enum, value_name = "STORE", default_value_t = OwnerStore::Hash)]
    pub owner_store: OwnerStore,

    /// Also make the events the kernel skips: a tracing program is not run again on a CPU where
    /// it is already running, so a hook hit from an interrupt of it (a softirq's TCP processing
    /// during a connect or close) loses that event (a few per million under heavy churn; always
    /// counted as lost). This attaches a second, small program to each event-making tracepoint
    /// that makes those events instead, at about 40 ns more per hook run.
    #[arg(long)]
    pub recover_nested: bool,

    /// Only events of sockets owned by process PID (thread-group id).
    #[arg(short = 'p', long = "pid", value_name = "PID", value_parser = clap::value_parser!(u32).range(1..))]
    pub pid: Option<u32>,

    /// Only events in the network namespace with this inode number (`ls -Li /proc/PID/ns/net`);
    /// the live table then shows a NETNS column, as deeptcptracer -N did.
    #[arg(short = 'N', long = "netns", value_name = "NETNS", value_parser = clap::value_parser!(u32).range(1..))]
    pub netns: Option<u32>,

    /// Only events whose local port is SPORT.
    #[arg(short = 'S', long = "sport", value_parser = clap::value_parser!(u16).range(1..))]
    pub sport: Option<u16>,

    /// Only events whose remote port is DPORT.
    #[arg(short = 'D', long = "dport", value_parser = clap::value_parser!(u16).range(1..))]
    pub dport: Option<u16>,

    /// Only events with PORT on either side.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,

    /// Only events whose local address is in CIDR (e.g. 10.0.0.0/8, 2001:db8::/32, 127.0.0.1).
    #[arg(short = 's', long = "saddr", value_name = "CIDR", value_parser = deeptcp_format::filter::parse_cidr)]
    pub saddr: Option<Cidr>,

    /// Only events whose remote address is in CIDR.
    #[arg(short = 'd', long = "daddr", value_name = "CIDR", value_parser = deeptcp_format::filter::parse_cidr)]
    pub daddr: Option<Cidr>,

    /// Only events of sockets whose owner's command name is COMM (as in /proc/PID/comm).
    #[arg(long, value_name = "COMM", value_parser = deeptcp_format::filter::parse_comm)]
    pub comm: Option<String>,

    /// Only these event kinds (comma separated, e.g. state_change,reset_sent).
    #[arg(long = "kind", value_name = "KINDS", value_delimiter = ',', value_parser = deeptcp_format::filter::parse_kind)]
    pub kinds: Vec<EventKind>,

    /// Capture kernel stacks, symbolized at record time (see `analyze -K`); the live
    /// table prints them under each event.
    #[arg(short = 'K', long = "kstack")]
    pub kstack: bool,

    /// Stop after DURATION: 30 (seconds), 30s, 1.5m, 2h, 250ms, 1h30m (units h, m, s, ms, us,
    /// ns, largest first); more than 0, at most a year. Default: until SIGINT/SIGTERM.
    #[arg(long, value_name = "DURATION", value_parser = parse_secs)]
    pub duration: Option<Duration>,

    /// Size of the kernel→user ring buffer: a power of two, with optional K/M suffix.
    #[arg(long, value_name = "BYTES", default_value = "8M", value_parser = parse_ring_size)]
    pub ring_size: u32,

    /// Replace FILE if it already exists.
    #[arg(long)]
    pub force: bool,

    /// Only errors, warnings and lost-event reports on stderr (no start, status or summary lines).
    #[arg(short, long)]
    pub quiet: bool,

    /// Time between status lines on stderr when it is not a terminal (events/s, lost, size);
    /// a duration like --duration's.
    #[arg(long, value_name = "DURATION", default_value = "10", value_parser = parse_secs)]
    pub status_interval: Duration,

    /// Under load, end a row group and write a checkpoint every DURATION (5× that when
    /// quiet): at most this much is lost if record is killed. 10ms to 1h (1, 0.25, 250ms, 2m).
    #[arg(long, value_name = "DURATION", default_value = "1", value_parser = parse_flush_secs)]
    pub flush_interval: Duration,

    /// Rotate: write FILE as numbered segments (trace-000001.parquet, ...), each a complete
    /// recording, starting a new one when this one reaches BYTES (K/M/G suffix; checked at each flush).
    #[arg(long, value_name = "BYTES", value_parser = parse_rotate_size)]
    pub rotate_size: Option<u64>,

    /// Rotate (see --rotate-size) every DURATION (3600, 1h, 30m; a duration like --duration's).
    #[arg(long, value_name = "DURATION", value_parser = parse_secs)]
    pub rotate_secs: Option<Duration>,

    /// Start a new file when one reaches N row groups. The writer keeps every row group's
    /// metadata (about 30 KiB) in memory until the file is closed, so this bounds record's
    /// memory however long it runs. Without --rotate-*, the recording then continues as
    /// segments: FILE is renamed trace-000001.parquet and record goes on in
    /// trace-000002.parquet, ... (record says so; `analyze FILE` reads them together).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_ROW_GROUPS,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_row_groups: u32,
}

/// `--max-row-groups` by default: about 30 MiB of row-group metadata. A row
/// group is cut at each flush under load (every second by default) or at
/// 131072 rows, so a file lasts from minutes (heavy churn) to hours.
pub const DEFAULT_MAX_ROW_GROUPS: u32 = 1024;

/// The longest `--duration`, `--status-interval` or `--rotate-secs`: a (leap) year.
const MAX_SECS: Duration = Duration::from_secs(366 * 86_400);

/// A duration in the syntax both tools share ([`timearg`]): more than 0, at
/// most [`MAX_SECS`].
fn parse_secs(s: &str) -> Result<Duration, String> {
    let d = timearg::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() || d > MAX_SECS {
        return Err("must be more than 0 and at most a year (8784h)".to_owned());
    }
    Ok(d)
}

fn parse_flush_secs(s: &str) -> Result<Duration, String> {
    let d = timearg::parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_millis(10) || d > Duration::from_secs(3600) {
        return Err("must be between 10ms and 1h (0.01 to 3600 seconds)".to_owned());
    }
    Ok(d)
}

fn parse_rotate_size(s: &str) -> Result<u64, String> {
    let bytes = crate::bytes::parse(s, true)?;
    if bytes < 64 << 10 {
        return Err(format!("`{s}` is too small (at least 64K)"));
    }
    Ok(bytes)
}

fn parse_ring_size(s: &str) -> Result<u32, String> {
    let bytes = crate::bytes::parse(s, false)?;
    if !(4096..=(1 << 30)).contains(&bytes) || !bytes.is_power_of_two() {
        return Err(format!("`{s}` must be a power of two between 4K and 1024M"));
    }
    Ok(bytes as u32)
}

/// Where the eBPF programs keep socket → owner (`--owner-store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OwnerStore {
    /// The cookie-keyed LRU hash.
    Hash,
    /// Socket-local storage, unless a kprobe rung is in use (kprobes cannot
    /// reach it): then the hash.
    Socket,
}

impl OwnerStore {
    /// The eBPF programs' `Config::owner_store` value.
    pub fn wire(self) -> u16 {
        match self {
            OwnerStore::Hash => deeptcp_common::owner_store::HASH,
            OwnerStore::Socket => deeptcp_common::owner_store::SK_STORAGE,
        }
    }

    /// How the probe report and the start line name it.
    pub fn describe(self) -> &'static str {
        match self {
            OwnerStore::Hash => "cookie hash",
            OwnerStore::Socket => "socket storage",
        }
    }
}

/// What `record` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Record(Box<Config>),
    /// Attach everything, print the probe report, exit.
    ListProbes {
        disabled: Vec<String>,
        owner_store: OwnerStore,
    },
}

/// When to start a new segment (`--rotate-size`, `--rotate-secs`; whichever comes first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    pub size: Option<u64>,
    pub secs: Option<Duration>,
    /// At each UTC midnight (`--hive`).
    pub daily: bool,
}

impl Rotation {
    /// `rotating at 1 GiB or every 3600 s`.
    pub fn describe(&self) -> String {
        let size = self.size.map(|b| format!("at {}", crate::bytes::exact(b)));
        let secs = self.secs.map(|d| format!("every {} s", d.as_secs_f64()));
        let daily = self.daily.then(|| "at each UTC midnight".to_string());
        let when: Vec<String> = [size, secs, daily].into_iter().flatten().collect();
        if when.is_empty() {
            "not rotating".into()
        } else {
            format!("rotating {}", when.join(" or "))
        }
    }
}

/// In-kernel event filters (0 / None / empty = any), ANDed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub pid: u32,
    pub netns: u32,
    pub sport: u16,
    pub dport: u16,
    pub port: u16,
    pub saddr: Option<Cidr>,
    pub daddr: Option<Cidr>,
    pub comm: Option<String>,
    pub kinds: Vec<EventKind>,
}

impl Filters {
    /// The same test as the programs' `wanted()`, for rows made in user space (the snapshot).
    pub fn matches(&self, ev: &Event) -> bool {
        (self.pid == 0 || ev.pid == self.pid)
            && (self.netns == 0 || ev.netns == self.netns)
            && (self.sport == 0 || ev.sport == self.sport)
            && (self.dport == 0 || ev.dport == self.dport)
            && (self.port == 0 || ev.sport == self.port || ev.dport == self.port)
            && self.saddr.is_none_or(|c| c.contains(ev.saddr))
            && self.daddr.is_none_or(|c| c.contains(ev.daddr))
            && self.comm.as_deref().is_none_or(|c| *ev.comm == *c)
            && (self.kinds.is_empty() || self.kinds.contains(&ev.kind))
    }

    /// Whether any filter beyond the `Config` ones is set.
    pub fn has_extra(&self) -> bool {
        self.saddr.is_some() || self.daddr.is_some() || self.comm.is_some() || !self.kinds.is_empty()
    }
}

/// What a recording session does, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `None`: print only, no file (unless `hive`).
    pub output: Option<PathBuf>,
    /// `--hive DIR`: the recording goes to DIR's partitions (see [`crate::hive`]).
    pub hive: Option<PathBuf>,
    pub stacks_output: Option<PathBuf>,
    /// Whether events are captured with kernel stacks (`-K`).
    pub kstack: bool,
    /// Live output on stdout (always without a file).
    pub live: Option<LiveFormat>,
    pub filters: Filters,
    pub disabled: Vec<String>,
    pub owner_store: OwnerStore,
    /// `--recover-nested`: attach the nested twins.
    pub recover_nested: bool,
    pub duration: Option<Duration>,
    pub ring_size: u32,
    pub force: bool,
    pub quiet: bool,
    pub status_interval: Duration,
    /// Under load, row groups are closed (and a checkpoint written) this
    /// often (5× this when quiet), so a live file is readable, and a killed
    /// recorder's file repairable, up to a recent point.
    pub flush_interval: Duration,
    /// `None`: one file (until it reaches `max_row_groups`).
    pub rotate: Option<Rotation>,
    /// A file that reaches this many row groups is closed and the recording
    /// continues in the next segment.
    pub max_row_groups: usize,
}

impl Command {
    /// The validated command; a usage error (exit status 2) when the
    /// options do not go together or name what does not exist.
    pub fn from_cli(cli: Cli) -> Result<Self, clap::Error> {
        let known = crate::probes::all_rung_names();
        for p in &cli.disable_probe {
            if !known.contains(p) {
                return Err(usage(
                    ErrorKind::InvalidValue,
                    format!("--disable-probe {p}: no such probe (known: {})", known.join(", ")),
                ));
            }
        }
        if cli.list_probes {
            return Ok(Command::ListProbes {
                disabled: cli.disable_probe,
                owner_store: cli.owner_store,
            });
        }
        if let Some(output) = &cli.output {
            if output.as_os_str().is_empty() {
                return Err(usage(ErrorKind::InvalidValue, "output file name is empty"));
            }
            if output.is_dir() {
                return Err(usage(
                    ErrorKind::InvalidValue,
                    format!("{} is a directory; -o takes a file name", output.display()),
                ));
            }
        } else if let Some(dir) = &cli.hive {
            if dir.as_os_str().is_empty() {
                return Err(usage(ErrorKind::InvalidValue, "--hive directory name is empty"));
            }
            if dir.exists() && !dir.is_dir() {
                return Err(usage(
                    ErrorKind::InvalidValue,
                    format!(
                        "{} is not a directory; --hive takes the directory of the partitions",
                        dir.display()
                    ),
                ));
            }
        } else {
            let file_only = [
                (cli.force, "--force"),
                (cli.rotate_size.is_some(), "--rotate-size"),
                (cli.rotate_secs.is_some(), "--rotate-secs"),
            ];
            if let Some((_, flag)) = file_only.iter().find(|(set, _)| *set) {
                return Err(usage(
                    ErrorKind::MissingRequiredArgument,
                    format!("{flag} needs -o FILE or --hive DIR (without them record only prints)"),
                ));
            }
        }
        let printing = (cli.output.is_none() && cli.hive.is_none()) || cli.print;
        if cli.timestamp && !printing {
            return Err(usage(
                ErrorKind::MissingRequiredArgument,
                "-t formats the printed table: add --print (or replay the file with `analyze -t`)",
            ));
        }
        if cli.wide && !printing {
            return Err(usage(
                ErrorKind::MissingRequiredArgument,
                "-w formats the printed table: add --print (or replay the file with `analyze -w`)",
            ));
        }
        let live = printing.then(|| {
            if cli.json {
                LiveFormat::Json
            } else {
                let view = TableOptions {
                    time: if cli.timestamp {
                        TimeColumn::Wall
                    } else {
                        TimeColumn::None
                    },
                    host_width: None,
                    netns: cli.netns.is_some(),
                    wide: cli.wide,
                };
                LiveFormat::Table {
                    view,
                    kstack: cli.kstack,
                }
            }
        });
        if cli.json && !printing {
            return Err(usage(
                ErrorKind::MissingRequiredArgument,
                "--json prints JSON lines: add --print to print them while recording to -o FILE",
            ));
        }
        let hive = cli.hive.is_some();
        let stacks_output = cli
            .output
            .as_deref()
            .filter(|_| cli.kstack)
            .map(deeptcp_format::stacks_path);
        Ok(Command::Record(Box::new(Config {
            output: cli.output,
            hive: cli.hive,
            stacks_output,
            kstack: cli.kstack,
            live,
            filters: Filters {
                pid: cli.pid.unwrap_or(0),
                netns: cli.netns.unwrap_or(0),
                sport: cli.sport.unwrap_or(0),
                dport: cli.dport.unwrap_or(0),
                port: cli.port.unwrap_or(0),
                saddr: cli.saddr,
                daddr: cli.daddr,
                comm: cli.comm,
                kinds: cli.kinds,
            },
            disabled: cli.disable_probe,
            owner_store: cli.owner_store,
            recover_nested: cli.recover_nested,
            duration: cli.duration,
            ring_size: cli.ring_size,
            force: cli.force,
            quiet: cli.quiet,
            status_interval: cli.status_interval,
            flush_interval: cli.flush_interval,
            rotate: (cli.rotate_size.is_some() || cli.rotate_secs.is_some() || hive).then_some(Rotation {
                size: cli.rotate_size,
                secs: cli.rotate_secs,
                daily: hive,
            }),
            max_row_groups: cli.max_row_groups as usize,
        })))
    }
}

/// A usage error in clap's form: `error: MSG`, the usage line, exit status 2.
fn usage(kind: ErrorKind, msg: impl std::fmt::Display) -> clap::Error {
    Cli::command().error(kind, msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Result;
    use deeptcp_format::testing;

    #[test]
    fn man_page_and_completions_mention_every_option() {
        use clap::CommandFactory;
        assert_eq!(deeptcp_cli::generate::incomplete_outputs(&Cli::command()), vec![]);
    }

    fn command(args: &[&str]) -> Result<Command> {
        let cli = Cli::try_parse_from(std::iter::once("record").chain(args.iter().copied()))?;
        Ok(Command::from_cli(cli)?)
    }

    fn parse(args: &[&str]) -> Result<Config> {
        match command(args)? {
            Command::Record(c) => Ok(*c),
            other => anyhow::bail!("not a recording: {other:?}"),
        }
    }

    #[test]
    fn defaults_and_options() {
        let c = parse(&["-o", "t.parquet"]).unwrap();
        assert_eq!(c.ring_size, 8 << 20);
        assert_eq!(c.duration, None);
        assert_eq!(c.stacks_output, None);
        assert_eq!(c.flush_interval, Duration::from_secs(1));
        assert_eq!(c.rotate, None);
        assert_eq!(c.max_row_groups, 1024);
        assert!(!c.recover_nested, "the nested twins are opt-in");
        assert!(parse(&["-o", "t", "--recover-nested"]).unwrap().recover_nested);
        assert_eq!(parse(&["-o", "t", "--max-row-groups", "8"]).unwrap().max_row_groups, 8);
        assert!(parse(&["-o", "t", "--max-row-groups", "0"]).is_err());
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
        assert_eq!(c.filters.pid, 42);
        assert_eq!(c.duration, Some(Duration::from_millis(1500)));
        assert_eq!(c.ring_size, 65536);
        assert_eq!(
            c.stacks_output.as_deref(),
            Some(std::path::Path::new("t.stacks.parquet"))
        );
    }

    #[test]
    fn without_a_file_it_prints_the_seed_table() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.output, None);
        assert_eq!(
            c.live,
            Some(LiveFormat::Table {
                view: TableOptions::default(),
                kstack: false
            })
        );
        let c = parse(&["-t", "-K", "-N", "4026531840"]).unwrap();
        assert_eq!(c.stacks_output, None, "no sidecar without a file");
        assert!(c.kstack);
        let Some(LiveFormat::Table { view, kstack: true }) = c.live else {
            panic!("{:?}", c.live)
        };
        assert_eq!((view.time, view.netns), (TimeColumn::Wall, true));
        assert_eq!(parse(&["--json"]).unwrap().live, Some(LiveFormat::Json));
        let c = parse(&["-o", "t.parquet", "--print", "--json", "-K"]).unwrap();
        assert_eq!(c.live, Some(LiveFormat::Json));
        assert!(c.stacks_output.is_some());
        assert_eq!(parse(&["-o", "t.parquet"]).unwrap().live, None);
    }

    #[test]
    fn rejects_bad_values() {
        assert!(parse(&["--force"]).is_err(), "--force needs -o");
        assert!(parse(&["--rotate-secs", "10"]).is_err(), "rotation needs -o");
        assert!(parse(&["-o", "t", "-t"]).is_err(), "-t formats printed output");
        assert!(parse(&["-o", "t", "--json"]).is_err(), "--json without --print");
        assert!(parse(&["-t", "--json"]).is_err());
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
        assert!(parse(&["-o", "t", "--port", "70000"]).is_err());
        assert!(parse(&["-o", "t", "-N", "0"]).is_err());
        let e = parse(&["-o", "t", "--disable-probe", "kprobe:nope"]).unwrap_err();
        assert!(e.to_string().contains("no such probe"), "{e}");
        assert!(
            command(&["--list-probes", "-o", "t"]).is_err(),
            "--list-probes writes no file"
        );
    }

    /// What `from_cli` refuses is bad usage, like what clap refuses: status
    /// 2 (README: "2 for bad usage"), the message in clap's form.
    #[test]
    fn refused_combinations_are_usage_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"").unwrap();
        let (dir_arg, file_arg) = (dir.path().to_str().unwrap(), file.to_str().unwrap());
        for (args, needle) in [
            (&["--disable-probe", "kprobe:nope"][..], "no such probe"),
            (&["-o", dir_arg], "is a directory; -o takes a file name"),
            (&["--hive", file_arg], "is not a directory; --hive takes"),
            (&["--force"], "--force needs -o FILE or --hive DIR"),
            (&["--rotate-size", "1M"], "--rotate-size needs -o FILE"),
            (&["--rotate-secs", "60"], "--rotate-secs needs -o FILE"),
            (&["-o", "t", "-t"], "-t formats the printed table"),
            (&["-o", "t", "-w"], "-w formats the printed table"),
            (&["-o", "t", "--json"], "--json prints JSON lines"),
        ] {
            let cli = Cli::try_parse_from(std::iter::once("record").chain(args.iter().copied()))
                .unwrap_or_else(|e| panic!("{args:?}: clap refused it already: {e}"));
            let Err(e) = Command::from_cli(cli) else {
                panic!("{args:?} accepted")
            };
            assert_eq!(e.exit_code(), 2, "{args:?}");
            let text = e.to_string();
            assert!(text.starts_with("error: ") && text.contains(needle), "{args:?}: {text}");
            assert!(text.contains("Usage: record"), "{args:?}: {text}");
        }
    }

    #[test]
    fn flush_interval_and_rotation() {
        let c = parse(&["-o", "t.parquet", "--flush-interval", "0.25", "--rotate-size", "64M"]).unwrap();
        assert_eq!(c.flush_interval, Duration::from_millis(250));
        assert_eq!(
            c.rotate,
            Some(Rotation {
                size: Some(64 << 20),
                secs: None,
                daily: false,
            })
        );
        assert_eq!(c.rotate.unwrap().describe(), "rotating at 64 MiB");
        let c = parse(&["-o", "t", "--rotate-secs", "60", "--rotate-size", "1G"]).unwrap();
        assert_eq!(
            c.rotate,
            Some(Rotation {
                size: Some(1 << 30),
                secs: Some(Duration::from_secs(60)),
                daily: false,
            })
        );
        assert_eq!(c.rotate.unwrap().describe(), "rotating at 1 GiB or every 60 s");
        assert!(parse(&["-o", "t", "--flush-interval", "0"]).is_err());
        assert!(parse(&["-o", "t", "--flush-interval", "0.001"]).is_err());
        assert!(parse(&["-o", "t", "--flush-interval", "7200"]).is_err());
        assert!(parse(&["-o", "t", "--rotate-size", "1K"]).is_err());
        assert!(parse(&["-o", "t", "--rotate-size", "lots"]).is_err());
        assert!(parse(&["-o", "t", "--rotate-size", "99999999999G"]).is_err());
        assert!(parse(&["-o", "t", "--rotate-secs", "0"]).is_err());
        assert!(command(&["--list-probes", "--rotate-secs", "5"]).is_err());
    }

    #[test]
    fn hive_writes_segments_rotated_daily() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("fleet");
        let c = parse(&["--hive", root.to_str().unwrap(), "--rotate-size", "64M"]).unwrap();
        assert_eq!((c.output.as_deref(), c.hive.as_deref()), (None, Some(root.as_path())));
        let r = c.rotate.unwrap();
        assert!(r.daily);
        assert_eq!(r.describe(), "rotating at 64 MiB or at each UTC midnight");
        assert!(c.live.is_none(), "a file is written, nothing printed");
        let c = parse(&["--hive", root.to_str().unwrap()]).unwrap();
        assert_eq!(c.rotate.unwrap().describe(), "rotating at each UTC midnight");
        // Bad input: a file, an empty name, both outputs; rotation without an output.
        let file = dir.path().join("f");
        std::fs::write(&file, b"").unwrap();
        let err = parse(&["--hive", file.to_str().unwrap()]).unwrap_err().to_string();
        assert!(err.contains("is not a directory"), "{err}");
        let err = parse(&["--hive", ""]).unwrap_err().to_string();
        assert!(err.contains("empty") || err.contains("a value is required"), "{err}");
        assert!(parse(&["--hive", "d", "-o", "t.parquet"]).is_err());
        let err = parse(&["--rotate-secs", "60"]).unwrap_err().to_string();
        assert!(err.contains("--hive DIR"), "{err}");
    }

    /// `--duration`, `--status-interval`, `--flush-interval` and
    /// `--rotate-secs` take the duration syntax `analyze` takes too.
    #[test]
    fn durations() {
        let ms = Duration::from_millis;
        let secs = Duration::from_secs;
        for (value, want) in [
            ("30", secs(30)),
            ("1.5", ms(1500)),
            ("30s", secs(30)),
            ("1.5m", secs(90)),
            ("2h", secs(7200)),
            ("250ms", ms(250)),
            ("1h30m", secs(5400)),
            ("1ns", Duration::from_nanos(1)),
            ("8784h", secs(366 * 86_400)),
            ("31622400", secs(366 * 86_400)),
        ] {
            for opt in ["--duration", "--status-interval", "--rotate-secs"] {
                let c = parse(&["-o", "t", opt, value]).unwrap_or_else(|e| panic!("{opt} {value}: {e}"));
                let got = match opt {
                    "--duration" => c.duration,
                    "--status-interval" => Some(c.status_interval),
                    _ => c.rotate.and_then(|r| r.secs),
                };
                assert_eq!(got, Some(want), "{opt} {value}");
            }
        }
        for (value, want) in [
            ("0.01", ms(10)),
            ("10ms", ms(10)),
            ("250ms", ms(250)),
            ("2m", secs(120)),
            ("1h", secs(3600)),
            ("3600", secs(3600)),
        ] {
            assert_eq!(
                parse(&["-o", "t", "--flush-interval", value]).unwrap().flush_interval,
                want,
                "{value}"
            );
        }
        let err = |args: &[&str]| -> String {
            match Cli::try_parse_from(std::iter::once("record").chain(args.iter().copied())) {
                Ok(cli) => panic!("{args:?} accepted: {cli:?}"),
                Err(e) => e.to_string(),
            }
        };
        for (value, needle) in [
            ("5x", "expected a duration: 30 (seconds), 30s, 1.5m, 2h, 250ms or 1h30m"),
            ("", "expected a duration"),
            ("nan", "expected a duration"),
            ("inf", "expected a duration"),
            ("1e3", "unknown unit"),
            ("-3", "negative"),
            ("-0.5s", "negative"),
            ("1h30", "missing unit"),
            ("30m1h", "largest to smallest"),
            ("0", "more than 0"),
            ("0s", "more than 0"),
            ("0.1ns", "more than 0"),
            ("8784h1ns", "at most a year"),
            ("31622401", "at most a year"),
            ("18446744073709551616", "too large"),
            ("99999999999999999999999999999999999999999999h", "too large"),
        ] {
            for opt in ["--duration", "--status-interval", "--rotate-secs"] {
                // --opt=VALUE: clap would take a separate `-3` for an option.
                let e = err(&["-o", "t", &format!("{opt}={value}")]);
                assert!(e.contains(needle), "{opt} {value:?}: {e}");
                assert!(e.contains("invalid value"), "{opt} {value:?}: {e}");
            }
        }
        assert_eq!(
            err(&["-o", "t", "--duration", "5x"]).lines().next(),
            Some(
                "error: invalid value '5x' for '--duration <DURATION>': unknown unit \"x\" \
                 (units: h, m, s, ms, us, ns); expected a duration: 30 (seconds), 30s, 1.5m, 2h, 250ms or 1h30m"
            )
        );
        for (value, needle) in [
            ("9ms", "between 10ms and 1h"),
            ("0", "between 10ms and 1h"),
            ("1h1ns", "between 10ms and 1h"),
            ("3601", "between 10ms and 1h"),
            ("soon", "expected a duration"),
        ] {
            let e = err(&["-o", "t", &format!("--flush-interval={value}")]);
            assert!(e.contains(needle), "--flush-interval {value:?}: {e}");
        }
    }

    fn ev(pid: u32, netns: u32, sport: u16, dport: u16) -> Event {
        Event {
            pid,
            tid: pid,
            comm: "curl".into(),
            saddr: "10.1.2.3".parse().unwrap(),
            daddr: "192.0.2.9".parse().unwrap(),
            sport,
            dport,
            netns,
            probe: "snapshot:proc".into(),
            attribution: deeptcp_format::Attribution::Snapshot,
            ..testing::event(EventKind::Snapshot)
        }
    }

    #[test]
    fn user_space_filter_matches_like_the_kernel() {
        let any = Filters::default();
        assert!(any.matches(&ev(0, 0, 0, 0)) && !any.has_extra());
        let f = Filters {
            pid: 7,
            netns: 9,
            port: 443,
            ..any.clone()
        };
        assert!(f.matches(&ev(7, 9, 443, 1)));
        assert!(f.matches(&ev(7, 9, 1, 443)));
        assert!(!f.matches(&ev(8, 9, 443, 1)));
        assert!(!f.matches(&ev(7, 10, 443, 1)));
        assert!(!f.matches(&ev(7, 9, 1, 2)));
        assert!(Filters {
            sport: 80,
            ..any.clone()
        }
        .matches(&ev(0, 0, 80, 5)));
        assert!(!Filters {
            sport: 80,
            ..any.clone()
        }
        .matches(&ev(0, 0, 5, 80)));
        let cidr = |s: &str| deeptcp_format::filter::parse_cidr(s).unwrap();
        assert!(Filters {
            saddr: Some(cidr("10.0.0.0/8")),
            ..any.clone()
        }
        .matches(&ev(0, 0, 1, 2)));
        assert!(!Filters {
            daddr: Some(cidr("10.0.0.0/8")),
            ..any.clone()
        }
        .matches(&ev(0, 0, 1, 2)));
        assert!(Filters {
            comm: Some("curl".into()),
            ..any.clone()
        }
        .matches(&ev(0, 0, 1, 2)));
        assert!(!Filters {
            comm: Some("wget".into()),
            ..any.clone()
        }
        .matches(&ev(0, 0, 1, 2)));
        let kinds = Filters {
            kinds: vec![EventKind::StateChange],
            ..any
        };
        assert!(kinds.has_extra() && !kinds.matches(&ev(0, 0, 1, 2)));
    }

    #[test]
    fn filters_and_probe_listing() {
        let c = parse(&["-o", "t", "-N", "4026531840", "-S", "80", "-D", "5000", "--port", "443"]).unwrap();
        assert_eq!(
            c.filters,
            Filters {
                pid: 0,
                netns: 4026531840,
                sport: 80,
                dport: 5000,
                port: 443,
                ..Filters::default()
            }
        );
        let c = parse(&[
            "-o",
            "t",
            "-s",
            "10.0.0.0/8",
            "-d",
            "::1",
            "--comm",
            "curl",
            "--kind",
            "connect,accept",
        ])
        .unwrap();
        assert_eq!(c.filters.saddr.map(|c| c.prefix()), Some(8));
        assert_eq!(c.filters.daddr.map(|c| c.prefix()), Some(128));
        assert_eq!(c.filters.kinds, vec![EventKind::Connect, EventKind::Accept]);
        assert!(parse(&["-o", "t", "-d", "10.0.0.0/33"]).is_err());
        assert!(parse(&["-o", "t", "--kind", "bogus"]).is_err());
        assert_eq!(
            command(&["--list-probes", "--disable-probe", "tp_btf:tcp_probe"]).unwrap(),
            Command::ListProbes {
                disabled: vec!["tp_btf:tcp_probe".into()],
                owner_store: OwnerStore::Hash,
            }
        );
        assert!(matches!(
            command(&["--list-probes", "--owner-store", "socket"]).unwrap(),
            Command::ListProbes {
                owner_store: OwnerStore::Socket,
                ..
            }
        ));
        assert!(parse(&["--list-probes", "--owner-store", "bogus"]).is_err());
    }
}
