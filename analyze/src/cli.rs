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
use clap::{CommandFactory, Parser, ValueEnum};
use deeptcp_format::filter::{self, Cidr, Filter, TimeBound};
use deeptcp_format::CgroupPattern;
use deeptcp_format::EventKind;

const AFTER_HELP: &str = "\
Examples:
  analyze capture.parquet              classic table, one line per event
  analyze -t capture.parquet           add TIME: local wall-clock time HH:MM:SS.mmm, as the
                                       seed printed it (TZ=UTC analyze -t ... for UTC)
  analyze --seconds capture.parquet    add TIME(s): seconds since the recording started
  analyze -K capture.parquet           print each event's kernel stack under it
                                       (recorded with `record -K`; frames come from
                                       capture.stacks.parquet next to the recording)
  analyze -w capture.parquet           SOURCE/DESTINATION wide enough for any IPv6 endpoint
                                       (automatic when the recording holds a long one)
  analyze --follow capture.parquet     print a recording as `record` writes it (like tail -f),
                                       until the recorder closes it or Ctrl-C
  analyze --info capture.parquet       what, where and how the recording was made
  analyze --json capture.parquet       one JSON object per event (see analyze/JSON.md)
  analyze --conn capture.parquet       one line per connection: owner, duration, state
                                       path, retransmits, resets, bytes, close reason
  analyze --conn --sort retrans --top 10 capture.parquet
                                       the 10 connections with the most retransmits
  analyze --conn --json capture.parquet | jq 'select(.close_reason == \"reset by peer\")'
  analyze --stats capture.parquet      connections, failures (refused, timeout, reset,
                                       error), retransmits, zero-window stalls, handshake,
                                       RTT and duration percentiles
  analyze --stats --by daddr 'fleet/*.parquet'
                                       the same per peer (also dport, sport, comm, pid,
                                       cgroup, netns, host); --json for one object per group
  analyze --report report.html capture.parquet
                                       one self-contained HTML page (open it in any browser,
                                       offline): connections and failures over time, handshake
                                       and RTT histograms, a timeline of the 50 most
                                       interesting connections
  analyze --trace-json trace.json -D 443 capture.parquet
                                       Chrome/Perfetto trace events (open in ui.perfetto.dev or
                                       chrome://tracing): a track per socket, states as slices,
                                       retransmits/RSTs/zero windows/errors as instants
  analyze capture.parquet | less -S    output stops cleanly when the pager quits

Inputs:
  analyze a.parquet b.parquet          several recordings, merged in time order
  analyze recordings/                  every *.parquet in a directory (not *.stacks.parquet)
  analyze 'recordings/web*.parquet'    a glob (quoted: expanded by analyze, not the shell)
  analyze --stats 'fleet/**/*.parquet' ** crosses folders (record --hive's host=/date= tree);
                                       also ?, [a-z], [!x], {web1,db1}
  Recordings from several hosts get a HOST column (JSON always has \"host\").

Filters (repeat an option to allow several values: OR; different options: AND):
  analyze -p 1234 capture.parquet               events of process 1234
  analyze -p 1234 -p 5678 capture.parquet       process 1234 or 5678
  analyze --comm nginx -D 443 capture.parquet   nginx AND destination port 443
  analyze --port 5432 capture.parquet           port 5432 on either side
  analyze -S 8080 capture.parquet               source (local) port 8080
  analyze -s 10.0.0.0/8 capture.parquet         source address in 10.0.0.0/8
  analyze -d 2001:db8::/32 capture.parquet      destination in an IPv6 network
  analyze -d 192.0.2.7 capture.parquet          one destination host
  analyze -N 4026531840 capture.parquet         one network namespace (also net:[4026531840])
  analyze --kind retransmit,reset_recv capture.parquet
  analyze --cgroup 'docker-*.scope' capture.parquet   owners in docker containers
  analyze --cgroup /system.slice/nginx.service capture.parquet
                                       owners in that cgroup or below it (paths: --json)
  analyze --since +2s --until +1.5m capture.parquet     relative to the recording start
  analyze --since 2026-04-14T10:00:00Z capture.parquet  RFC 3339 wall-clock time
  analyze --since '2026-04-14 10:00:00.25' capture.parquet
                                       as DuckDB prints timestamps (UTC unless +HH:MM given)
  analyze --since 10:00 --until 10:05 capture.parquet   times of day, on the (UTC) date
                                       the recording started
  analyze --conn -d 10.0.0.0/8 --kind retransmit capture.parquet
                                       connections to 10/8 that retransmitted

With --conn and --stats, filters select connections: a connection is listed
(counted) when at least one of its events matches all the filters. --since is inclusive, --until
exclusive. An IPv4 network matches IPv4 addresses only (IPv4-mapped IPv6
addresses are stored as IPv4).

Reading a recording needs no root and no eBPF: copy the .parquet (and its
.stacks.parquet sidecar, for -K) to any machine.";

/// Replays deeptcp recordings offline: prints the TCP events they hold.
///
/// The default output is the classic deeptcptracer table (EVENT_SOURCE, PID,
/// COMM, SOURCE, DESTINATION, TCP_STATE, SOCK_ERR); --conn lists connections,
/// --json writes JSON lines, --info describes the recordings.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(name = "analyze", version, long_version = crate::version::long_version(), after_help = AFTER_HELP)]
pub struct Args {
    /// Print the man page or a shell completion script to stdout and exit
    /// (for packagers; scripts/install uses it).
    #[arg(long, value_name = "KIND", value_enum, hide = true, exclusive = true)]
    pub generate: Option<deeptcp_cli::generate::Generate>,

    /// Recordings to read: .parquet files written by `record`, directories
    /// (their *.parquet files) or quoted globs. Events are merged in time order.
    #[arg(value_name = "INPUT", required = true)]
    pub inputs: Vec<PathBuf>,

    /// Print a first column TIME: the local wall-clock time of each event,
    /// HH:MM:SS.mmm, as deeptcptracer -t did (TZ selects the zone).
    #[arg(short = 't', long = "timestamp", conflicts_with = "seconds")]
    pub timestamp: bool,

    /// Print a first column TIME(s): seconds since the recording started
    /// (the earliest start, with several recordings), as bcc's tools -t.
    #[arg(long = "seconds")]
    pub seconds: bool,

    /// SOURCE/DESTINATION (--conn: LOCAL/REMOTE) 48 characters wide, room
    /// for the longest IPv6 endpoint. Without it they are the seed's 22,
    /// unless the recordings hold an IPv6 endpoint too long for that.
    #[arg(short = 'w', long = "wide")]
    pub wide: bool,

    /// Print a recording that `record` is still writing as it grows, like
    /// `tail -f`: the events checkpointed so far (record flushes and
    /// checkpoints at least every second), then new ones as they are
    /// checkpointed, until the recorder closes the file or Ctrl-C (exit 0).
    /// One recording; the table (-t, --seconds, -N, -w, filters) or --json.
    #[arg(short = 'f', long = "follow", conflicts_with_all = ["conn", "info", "repair", "kstack"])]
    pub follow: bool,

    /// Print the kernel stack of each event under it (needs a recording made with `record -K`).
    #[arg(short = 'K', long = "kstack")]
    pub kstack: bool,

    /// Print the recordings' metadata and per-kind event counts instead of the events.
    #[arg(long = "info", conflicts_with_all = ["timestamp", "seconds", "kstack", "conn", "json", "wide"])]
    pub info: bool,

    /// Make recordings whose recorder was killed (or ran out of disk) complete
    /// again: cut them at their last checkpoint (FILE.checkpoint) and write the
    /// footer, losing at most the last flush interval. Stacks sidecars too.
    /// Takes the same INPUTs as the other modes (a rotated recording by its
    /// name, directories, globs).
    #[arg(long = "repair", conflicts_with_all = ["timestamp", "seconds", "kstack", "conn", "json", "info", "wide"])]
    pub repair: bool,

    /// Leave out a row group whose pages fail their checksums (or do not
    /// decode), with a warning on stderr that names it and its row count,
    /// and go on with the rest. Without it a damaged row group is an error.
    #[arg(long = "skip-corrupt", conflicts_with = "repair")]
    pub skip_corrupt: bool,

    /// One entry per connection (socket): owner, addresses, start, end,
    /// duration, state path, retransmits/RSTs/zero windows/errors, bytes,
    /// smoothed RTT and why it closed.
    #[arg(long = "conn", conflicts_with_all = ["timestamp", "seconds", "kstack"])]
    pub conn: bool,

    /// Statistics over connections, in one table (or, with --json, one
    /// object per group): connections, failures by reason (refused,
    /// timeout, reset, error), retransmits per connection, zero-window
    /// stalls and their time, and p50/p90/p99/max of handshake latency,
    /// smoothed RTT and duration. Streams: memory grows with the number
    /// of groups, not of connections. Percentiles are nearest-rank, within
    /// 0.8 % (values are kept to 7 significant bits); see analyze/JSON.md.
    #[arg(long = "stats", conflicts_with_all = ["timestamp", "seconds", "kstack", "conn", "follow", "info", "repair"])]
    pub stats: bool,

    /// Group --stats by this key (default: one group for everything).
    #[arg(long = "by", value_name = "KEY", value_enum, requires = "stats")]
    pub by: Option<StatsBy>,

    /// JSON lines: one object per event, or per connection with --conn
    /// (field names are the Parquet column names; see analyze/JSON.md).
    #[arg(long = "json", conflicts_with_all = ["timestamp", "seconds", "kstack"])]
    pub json: bool,

    /// Write a self-contained HTML report to PATH ('-': stdout), viewable
    /// offline: connections and failures over time, handshake-latency and
    /// RTT histograms (log-scaled bins), and a timeline lane for each of the
    /// 50 most interesting connections (failed first, then by retransmits,
    /// resets, zero-window stalls, errors, handshake time), its states as
    /// spans and retransmits, RSTs, zero windows, errors as marks. Streams:
    /// memory holds the histograms, at most 240 time buckets, the 50 lanes
    /// and, per open connection, at most 256 marks.
    #[arg(long = "report", value_name = "PATH", conflicts_with_all = ["timestamp", "seconds", "kstack", "conn", "json", "stats", "info", "repair", "follow", "wide"])]
    pub report: Option<PathBuf>,

    /// Write Chrome/Perfetto trace-event JSON to PATH ('-': stdout), for
    /// ui.perfetto.dev or chrome://tracing: a process per owner, a track
    /// per socket, its states as slices, retransmits, loss probes, RSTs,
    /// zero windows and errors as instants (times in µs from the start of
    /// the earliest recording). Streams: a socket is written when it
    /// finishes; memory holds the open sockets and, per socket, at most
    /// 10,000 instants (the rest are counted in its slice's args).
    #[arg(long = "trace-json", value_name = "PATH", conflicts_with_all = ["timestamp", "seconds", "kstack", "conn", "json", "stats", "info", "repair", "follow", "wide", "report"])]
    pub trace_json: Option<PathBuf>,

    /// Order connections (--conn): longest first, most retransmits first, or by start.
    /// Without --top, every finished connection is held in memory until the end.
    #[arg(long = "sort", value_name = "KEY", value_enum, requires = "conn")]
    pub sort: Option<SortKey>,

    /// Only the first N connections in --sort order (--sort duration when not given).
    #[arg(long = "top", value_name = "N", requires = "conn",
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub top: Option<u64>,

    /// Only events whose owner has this pid.
    #[arg(short = 'p', long = "pid", value_name = "PID", value_parser = filter::parse_pid,
          help_heading = "Filters (repeat an option: OR; combine options: AND)")]
    pub pids: Vec<u32>,

    /// Only events in this network namespace (inode number, or net:[N] as readlink prints it).
    #[arg(short = 'N', long = "netns", value_name = "NETNS", value_parser = filter::parse_netns,
          help_heading = "Filters (repeat an option: OR; combine options: AND)")]
    pub netns: Vec<u32>,

    /// Only events with this source (local) port.
    #[arg(short = 'S', long = "sport", value_name = "PORT", value_parser = filter::parse_port,
          help_heading = "Filters (repeat an option: OR; combine options: AND)")]
    pub sports: Vec<u16>,

    /// Only events with this destination (remote) port.
    #[arg(short = 'D', long = "dport", value_name = "PORT", value_parser = filter::parse_port,
          help_heading = "Filters (repeat an option: OR; combine options: AND)")]
    pub dports: Vec<u16>,

    /// Only events with this port on either side.
    #[arg(long = "port", value_name = "PORT", value_parser = filter::parse_port,
          help_heading = "Filters (repeat an option: OR; combine options: AND)")]
    pub ports: Vec<u16>,

    /// Only events whose source address is in this network (10.0.0.0/8, 2001:db8::/32, or one address).
    #[arg(short = 's', long = "saddr", value_name = "CIDR", value_parser = filter::parse_cidr,
          help_heading = "Filters (repeat an option: OR; combine options: AND)")]
    pub saddrs: Vec<Cidr>,

    /// Only events whose destination address is in this network.
    #[arg(short = 'd', long = "daddr", value_name = "CIDR", value_parser = filter::parse_cidr,
          help_heading = "Filters (repeat an option: OR; combine options: AND)")]
    pub daddrs: Vec<Cidr>,

    /// Only events of tasks with this exact name (at most 15 bytes, as the kernel keeps).
    #[arg(long = "comm", value_name = "COMM", value_parser = filter::parse_comm,
          help_heading = "Filters (repeat an option: OR; combine options: AND)")]
    pub comms: Vec<String>,

    /// Only events whose owner's cgroup path matches PATTERN, a glob: * (not
    /// across /), ** (across /), ?. With a / it is anchored at the cgroup2
    /// root (/system.slice), without one it matches a path component at any
    /// depth (docker-*.scope); a cgroup matches when it or an ancestor does.
    /// Paths come from the recording's name table (record resolves them):
    /// rows whose cgroup has no known path never match.
    #[arg(long = "cgroup", value_name = "PATTERN", value_parser = filter::parse_cgroup,
          help_heading = "Filters (repeat an option: OR; combine options: AND)")]
    pub cgroups: Vec<CgroupPattern>,

    /// Only events of these kinds, comma-separated (state_change, retransmit, reset_recv, ...).
    #[arg(long = "kind", value_name = "KIND[,KIND]", value_parser = filter::parse_kind, value_delimiter = ',',
          help_heading = "Filters (repeat an option: OR; combine options: AND)")]
    pub kinds: Vec<EventKind>,

    /// Only events at or after TIME: +DURATION from the recording start, a date
    /// and time (UTC unless a zone is given) or a time of day.
    ///
    /// +DURATION: +30 (seconds), +2s, +1.5m, +2h, +250ms, +1h30m (units h, m,
    /// s, ms, us, ns, largest first; the + may be left out), from the start of
    /// each recording.
    ///
    /// Date and time: as DuckDB prints timestamps or as RFC 3339:
    /// 2026-04-14 10:00:00, 2026-04-14 10:00:00.123456 (up to nanoseconds),
    /// 2026-04-14T10:00:00Z, 2026-04-14 12:00:00+02:00 (zones: Z, +02, +0200,
    /// +02:00); seconds may be left out, and a date alone is its midnight.
    ///
    /// Time of day: HH:MM[:SS[.FRACTION]][ZONE], e.g. 10:00, 10:00:00.25,
    /// 12:00+02:00: that time on the date (UTC, or in the zone given) on which
    /// the recording started, the earliest one with several, even if that is
    /// before the start. A recording that spans midnight: give a date for
    /// times on the following days.
    #[arg(long = "since", value_name = "TIME", value_parser = parse_time,
          help_heading = "Filters (repeat an option: OR; combine options: AND)")]
    pub since: Option<TimeBound>,

    /// Only events before TIME (same forms as --since).
    #[arg(long = "until", value_name = "TIME", value_parser = parse_time,
          help_heading = "Filters (repeat an option: OR; combine options: AND)")]
    pub until: Option<TimeBound>,
}

/// `--stats --by` keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum StatsBy {
    /// Remote address.
    Daddr,
    /// Remote port.
    Dport,
    /// Local port.
    Sport,
    /// The connection owner's command name.
    Comm,
    /// The connection owner's process id.
    Pid,
    /// The owner's cgroup: its path where the recording names it (record stores the
    /// names), else its v2 id.
    Cgroup,
    /// Network namespace: its name under /run/netns where the recording has it, else its inode.
    Netns,
    /// The recording's host.
    Host,
}

impl StatsBy {
    /// The group column's heading.
    pub fn heading(self) -> &'static str {
        match self {
            StatsBy::Daddr => "DADDR",
            StatsBy::Dport => "DPORT",
            StatsBy::Sport => "SPORT",
            StatsBy::Comm => "COMM",
            StatsBy::Pid => "PID",
            StatsBy::Cgroup => "CGROUP",
            StatsBy::Netns => "NETNS",
            StatsBy::Host => "HOST",
        }
    }

    /// The name `--by` takes (and JSON's `by`).
    pub fn name(self) -> &'static str {
        match self {
            StatsBy::Daddr => "daddr",
            StatsBy::Dport => "dport",
            StatsBy::Sport => "sport",
            StatsBy::Comm => "comm",
            StatsBy::Pid => "pid",
            StatsBy::Cgroup => "cgroup",
            StatsBy::Netns => "netns",
            StatsBy::Host => "host",
        }
    }
}

/// `--sort` keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortKey {
    /// Longest first (open connections count up to the end of the recording).
    Duration,
    /// Most retransmissions first.
    Retrans,
    /// Earliest first.
    Start,
}

/// `--since`/`--until`: `+DURATION` from the recording start (the `+` may be
/// left out: a value with no `-`, `:` or space is one), a date and time, or a
/// time of day (see [`crate::wallclock`]).
pub fn parse_time(s: &str) -> Result<TimeBound, String> {
    let t = s.trim();
    let relative = t.starts_with('+')
        || (t.starts_with(|c: char| c.is_ascii_digit() || c == '.') && !t.contains(['-', ':', ' ', 'T', 't']));
    if relative {
        return filter::parse_offset(t).map(TimeBound::SinceStart);
    }
    crate::wallclock::parse(t).map_err(|why| {
        format!(
            "{s:?} is not a time: {why}; expected +DURATION from the recording start (+30, +2s, +1.5m, +250ms), \
             a date and time, UTC unless a zone is given (2026-04-14 10:00:00.5, RFC 3339 \
             2026-04-14T12:00:00+02:00) or a time of day on the recording's first day (10:00, 10:00:00.25)"
        )
    })
}

/// What to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One line per event.
    Table(TableOptions),
    /// One JSON object per event.
    Json,
    /// One entry per connection.
    Conn(ConnOptions),
    /// Statistics per group of connections.
    Stats(StatsOptions),
    /// Recording metadata and summary.
    Info,
    /// Complete unfinished recordings in place.
    Repair,
    /// `--report`: an HTML page, written to [`Config::output`].
    Report,
    /// `--trace-json`: trace-event JSON, written to [`Config::output`].
    TraceJson,
}

/// The table's optional time column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeMode {
    #[default]
    None,
    /// `-t`: local wall-clock `TIME`, as the seed.
    Wall,
    /// `--seconds`: `TIME(s)` since the recording started.
    Seconds,
}

/// Options of the classic table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableOptions {
    pub time: TimeMode,
    /// Kernel stacks under each event.
    pub kstack: bool,
    /// The seed's NETNS column (shown with `-N`, as the seed did).
    pub netns: bool,
    /// `-w`: wide address columns whatever the recordings hold.
    pub wide: bool,
}

/// Options of `--conn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnOptions {
    /// JSON lines instead of the table.
    pub json: bool,
    /// `None`: in the order connections finish (still-open ones last, by start).
    pub sort: Option<SortKey>,
    /// Keep only the first N in `sort` order.
    pub top: Option<usize>,
    /// `-w`: wide address columns whatever the recordings hold.
    pub wide: bool,
}

/// Options of `--stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsOptions {
    /// `None`: one group.
    pub by: Option<StatsBy>,
    /// One JSON object per group instead of the table.
    pub json: bool,
}

/// A validated run configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// As given: files, directories or globs (expanded when the run starts).
    pub inputs: Vec<PathBuf>,
    pub mode: Mode,
    pub filter: Filter,
    /// `--skip-corrupt`: damaged row groups are warnings, not errors.
    pub skip_corrupt: bool,
    /// `--follow`: one recording, printed as it grows (table or JSON).
    pub follow: bool,
    /// Where `--report`/`--trace-json` write (`-`: stdout); `None` otherwise.
    pub output: Option<PathBuf>,
}

impl Config {
    /// Checks option combinations clap cannot express and builds the config.
    pub fn from_args(args: Args) -> Result<Config, clap::Error> {
        for input in &args.inputs {
            if input.as_os_str().is_empty() {
                return Err(usage_error(
                    ErrorKind::InvalidValue,
                    "INPUT must not be empty".to_string(),
                ));
            }
            if let Some(recording) = recording_of_sidecar(input) {
                return Err(usage_error(
                    ErrorKind::InvalidValue,
                    format!(
                        "{} is a kernel stack sidecar, not a recording; pass {} (with -K to show its stacks)",
                        input.display(),
                        recording.display()
                    ),
                ));
            }
        }
        // clap's conflicts_with already rejects these; kept so the rules do not
        // depend on the attributes staying in place.
        if args.info && (args.timestamp || args.seconds || args.kstack || args.conn || args.json) {
            return Err(usage_error(
                ErrorKind::ArgumentConflict,
                "--info prints metadata only and cannot be combined with -t, --seconds, -K, --conn or --json"
                    .to_string(),
            ));
        }
        if (args.conn || args.json) && (args.timestamp || args.seconds || args.kstack) {
            return Err(usage_error(
                ErrorKind::ArgumentConflict,
                "-t, --seconds and -K belong to the event table; --conn and --json have their own time fields"
                    .to_string(),
            ));
        }
        if args.stats
            && (args.conn || args.info || args.repair || args.follow || args.kstack || args.timestamp || args.seconds)
        {
            return Err(usage_error(
                ErrorKind::ArgumentConflict,
                "--stats prints statistics over whole recordings: without --conn, --info, --repair, --follow, -K, -t or --seconds"
                    .to_string(),
            ));
        }
        if args.by.is_some() && !args.stats {
            return Err(usage_error(
                ErrorKind::MissingRequiredArgument,
                "--by groups statistics: add --stats".to_string(),
            ));
        }
        if args.follow && (args.conn || args.info || args.repair || args.kstack) {
            return Err(usage_error(
                ErrorKind::ArgumentConflict,
                "--follow prints events as they are recorded: the table or --json, without --conn, --info, --repair or -K"
                    .to_string(),
            ));
        }
        if args.follow && args.inputs.len() != 1 {
            return Err(usage_error(
                ErrorKind::TooManyValues,
                format!(
                    "--follow follows one recording, not {} (run one analyze --follow per file)",
                    args.inputs.len()
                ),
            ));
        }
        if !args.conn && (args.sort.is_some() || args.top.is_some()) {
            return Err(usage_error(
                ErrorKind::MissingRequiredArgument,
                "--sort and --top order connections: add --conn".to_string(),
            ));
        }
        let output = args.report.clone().or_else(|| args.trace_json.clone());
        if let Some(path) = &output {
            let flag = if args.report.is_some() {
                "--report"
            } else {
                "--trace-json"
            };
            if path.as_os_str().is_empty() {
                return Err(usage_error(
                    ErrorKind::InvalidValue,
                    format!("{flag} needs a file name (or - for stdout)"),
                ));
            }
            let other = args.conn
                || args.json
                || args.stats
                || args.info
                || args.repair
                || args.follow
                || args.kstack
                || args.timestamp
                || args.seconds
                || args.wide
                || (args.report.is_some() && args.trace_json.is_some());
            if other {
                return Err(usage_error(
                    ErrorKind::ArgumentConflict,
                    format!("{flag} is an output of its own: without --conn, --json, --stats, --info, --repair, --follow, -K, -t, --seconds, -w or the other of --report/--trace-json"),
                ));
            }
        }
        let filter = Filter {
            pids: args.pids,
            netns: args.netns.clone(),
            sports: args.sports,
            dports: args.dports,
            ports: args.ports,
            saddrs: args.saddrs,
            daddrs: args.daddrs,
            comms: args.comms,
            kinds: args.kinds,
            since: args.since,
            until: args.until,
            cgroups: args.cgroups,
            cgroup_ids: Vec::new(),
        };
        if args.info && !filter.is_empty() {
            return Err(usage_error(
                ErrorKind::ArgumentConflict,
                "--info describes whole recordings and takes no filters".to_string(),
            ));
        }
        filter
            .validate()
            .map_err(|msg| usage_error(ErrorKind::ValueValidation, msg))?;
        if args.repair && !filter.is_empty() {
            return Err(usage_error(
                ErrorKind::ArgumentConflict,
                "--repair rewrites whole files and takes no filters".to_string(),
            ));
        }
        let mode = if args.report.is_some() {
            Mode::Report
        } else if args.trace_json.is_some() {
            Mode::TraceJson
        } else if args.repair {
            Mode::Repair
        } else if args.info {
            Mode::Info
        } else if args.stats {
            Mode::Stats(StatsOptions {
                by: args.by,
                json: args.json,
            })
        } else if args.conn {
            let top = args.top.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
            Mode::Conn(ConnOptions {
                json: args.json,
                sort: args.sort.or(top.map(|_| SortKey::Duration)),
                top,
                wide: args.wide,
            })
        } else if args.json {
            Mode::Json
        } else {
            let time = if args.timestamp {
                TimeMode::Wall
            } else if args.seconds {
                TimeMode::Seconds
            } else {
                TimeMode::None
            };
            Mode::Table(TableOptions {
                time,
                kstack: args.kstack,
                netns: !args.netns.is_empty(),
                wide: args.wide,
            })
        };
        Ok(Config {
            inputs: args.inputs,
            mode,
            filter,
            skip_corrupt: args.skip_corrupt,
            follow: args.follow,
            output,
        })
    }
}

fn usage_error(kind: ErrorKind, msg: String) -> clap::Error {
    Args::command().error(kind, msg)
}

/// `x.stacks.parquet` → `Some(x.parquet)`; anything else → `None`.
pub fn recording_of_sidecar(path: &Path) -> Option<PathBuf> {
    deeptcp_format::paths::recording_of_stacks(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_page_and_completions_mention_every_option() {
        use clap::CommandFactory;
        assert_eq!(deeptcp_cli::generate::incomplete_outputs(&Args::command()), vec![]);
    }

    fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("analyze").chain(argv.iter().copied()))
    }

    fn config(argv: &[&str]) -> Result<Config, clap::Error> {
        Config::from_args(parse(argv)?)
    }

    fn filter(argv: &[&str]) -> Filter {
        let mut v = argv.to_vec();
        v.push("x.parquet");
        config(&v).unwrap().filter
    }

    fn err(argv: &[&str]) -> clap::Error {
        let mut v = argv.to_vec();
        v.push("x.parquet");
        config(&v).unwrap_err()
    }

    #[test]
    fn plain_table() {
        let c = config(&["x.parquet"]).unwrap();
        assert_eq!(c.inputs, [PathBuf::from("x.parquet")]);
        assert_eq!(c.mode, Mode::Table(TableOptions::default()));
        assert!(c.filter.is_empty());
    }

    #[test]
    fn short_and_long_flags() {
        let want = Mode::Table(TableOptions {
            time: TimeMode::Wall,
            kstack: true,
            netns: false,
            wide: false,
        });
        assert_eq!(config(&["-t", "-K", "x.parquet"]).unwrap().mode, want);
        assert_eq!(config(&["-tK", "x.parquet"]).unwrap().mode, want);
        assert_eq!(config(&["x.parquet", "--timestamp", "--kstack"]).unwrap().mode, want);
    }

    #[test]
    fn time_columns_and_netns() {
        let table = |argv: &[&str]| match config(argv).unwrap().mode {
            Mode::Table(o) => o,
            m => panic!("{m:?}"),
        };
        assert_eq!(table(&["--seconds", "x.parquet"]).time, TimeMode::Seconds);
        assert_eq!(table(&["-t", "x.parquet"]).time, TimeMode::Wall);
        assert_eq!(table(&["x.parquet"]).time, TimeMode::None);
        // -N filters and, as in the seed, adds the NETNS column.
        assert!(table(&["-N", "4026531840", "x.parquet"]).netns);
        assert!(!table(&["-p", "1", "x.parquet"]).netns);
        assert!(table(&["-w", "x.parquet"]).wide);
        assert!(table(&["--wide", "x.parquet"]).wide);
        assert_eq!(err(&["-t", "--seconds"]).kind(), ErrorKind::ArgumentConflict);
        assert_eq!(err(&["--conn", "--seconds"]).kind(), ErrorKind::ArgumentConflict);
    }

    #[test]
    fn follow_takes_one_recording_and_events() {
        let c = config(&["--follow", "-t", "x.parquet"]).unwrap();
        assert!(c.follow);
        assert!(matches!(
            c.mode,
            Mode::Table(TableOptions {
                time: TimeMode::Wall,
                ..
            })
        ));
        assert_eq!(config(&["-f", "--json", "x.parquet"]).unwrap().mode, Mode::Json);
        let e = config(&["--follow", "a.parquet", "b.parquet"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("one recording"), "{e}");
        for argv in [
            &["--follow", "--conn"][..],
            &["--follow", "--info"],
            &["--follow", "-K"],
        ] {
            assert_eq!(err(argv).kind(), ErrorKind::ArgumentConflict, "{argv:?}");
        }
    }

    #[test]
    fn modes() {
        assert_eq!(config(&["--info", "x.parquet"]).unwrap().mode, Mode::Info);
        assert_eq!(config(&["--json", "x.parquet"]).unwrap().mode, Mode::Json);
        assert_eq!(
            config(&["--conn", "x.parquet"]).unwrap().mode,
            Mode::Conn(ConnOptions::default())
        );
        assert_eq!(
            config(&["--conn", "--json", "--sort", "retrans", "x.parquet"])
                .unwrap()
                .mode,
            Mode::Conn(ConnOptions {
                json: true,
                sort: Some(SortKey::Retrans),
                top: None,
                wide: false
            })
        );
        // --top alone sorts by duration.
        assert_eq!(
            config(&["--conn", "--top", "3", "x.parquet"]).unwrap().mode,
            Mode::Conn(ConnOptions {
                json: false,
                sort: Some(SortKey::Duration),
                top: Some(3),
                wide: false
            })
        );
        assert_eq!(
            config(&["--conn", "--top", "3", "--sort", "start", "x.parquet"])
                .unwrap()
                .mode,
            Mode::Conn(ConnOptions {
                json: false,
                sort: Some(SortKey::Start),
                top: Some(3),
                wide: false
            })
        );
    }

    #[test]
    fn report_and_trace_write_to_a_file() {
        let c = config(&["--report", "out.html", "-D", "443", "x.parquet"]).unwrap();
        assert_eq!(c.mode, Mode::Report);
        assert_eq!(c.output, Some(PathBuf::from("out.html")));
        assert_eq!(c.filter.dports, [443]);
        let c = config(&["--trace-json", "-", "--since", "+1s", "x.parquet"]).unwrap();
        assert_eq!(c.mode, Mode::TraceJson);
        assert_eq!(c.output, Some(PathBuf::from("-")));
        assert_eq!(config(&["x.parquet"]).unwrap().output, None);
        for argv in [
            &["--report", "r.html", "--conn"][..],
            &["--report", "r.html", "--json"],
            &["--report", "r.html", "--stats"],
            &["--report", "r.html", "-t"],
            &["--trace-json", "t.json", "--info"],
            &["--trace-json", "t.json", "--follow"],
            &["--trace-json", "t.json", "--report", "r.html"],
        ] {
            let e = err(argv);
            assert_eq!(e.kind(), ErrorKind::ArgumentConflict, "{argv:?}");
            assert_eq!(e.exit_code(), 2);
        }
        assert_eq!(err(&["--report", ""]).kind(), ErrorKind::InvalidValue);
        assert_eq!(err(&["--report"]).exit_code(), 2);
        // Also when clap's attributes are bypassed.
        let mut args = parse(&["--report", "r.html", "x.parquet"]).unwrap();
        args.conn = true;
        assert_eq!(Config::from_args(args).unwrap_err().kind(), ErrorKind::ArgumentConflict);
    }

    #[test]
    fn conflicts() {
        for argv in [
            &["--info", "-t"][..],
            &["--info", "-K"],
            &["--info", "--conn"],
            &["--info", "--json"],
            &["--conn", "-t"],
            &["--json", "-K"],
        ] {
            let e = err(argv);
            assert_eq!(e.kind(), ErrorKind::ArgumentConflict, "{argv:?}");
            assert_eq!(e.exit_code(), 2);
        }
        for argv in [&["--sort", "duration"][..], &["--top", "5"]] {
            let e = err(argv);
            assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument, "{argv:?}: {e}");
        }
        assert_eq!(err(&["--conn", "--top", "0"]).kind(), ErrorKind::ValueValidation);
        assert_eq!(err(&["--conn", "--sort", "bytes"]).kind(), ErrorKind::InvalidValue);
        let e = err(&["--info", "-p", "1"]);
        assert!(e.to_string().contains("no filters"), "{e}");
        // Also when clap's attribute is bypassed.
        let mut args = parse(&["--info", "x.parquet"]).unwrap();
        args.timestamp = true;
        let e = Config::from_args(args).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ArgumentConflict);
        assert!(e.to_string().contains("--info"), "{e}");
    }

    #[test]
    fn inputs() {
        assert_eq!(config(&[]).unwrap_err().kind(), ErrorKind::MissingRequiredArgument);
        let c = config(&["a.parquet", "dir", "g/*.parquet"]).unwrap();
        assert_eq!(c.inputs.len(), 3);
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
    fn filters_or_within_and_across() {
        let f = filter(&["-p", "1", "--pid", "2", "-D", "443", "--port", "80", "--port", "8080"]);
        assert_eq!(f.pids, [1, 2]);
        assert_eq!(f.dports, [443]);
        assert_eq!(f.ports, [80, 8080]);
        let f = filter(&[
            "-s",
            "10.0.0.0/8",
            "-d",
            "2001:db8::/32",
            "-d",
            "192.0.2.7",
            "-N",
            "net:[4026531840]",
        ]);
        assert_eq!(f.saddrs[0].to_string(), "10.0.0.0/8");
        assert_eq!(f.daddrs.len(), 2);
        assert_eq!(f.daddrs[1].to_string(), "192.0.2.7/32");
        assert_eq!(f.netns, [4026531840]);
        let f = filter(&[
            "--kind",
            "retransmit,reset_recv",
            "--kind",
            "snapshot",
            "--comm",
            "nginx",
            "-S",
            "0",
        ]);
        assert_eq!(
            f.kinds,
            [EventKind::Retransmit, EventKind::ResetRecv, EventKind::Snapshot]
        );
        assert_eq!(f.comms, ["nginx"]);
        assert_eq!(f.sports, [0]);
    }

    #[test]
    fn bad_filter_values_are_usage_errors() {
        for (argv, needle) in [
            (&["-p", "0"][..], "process id"),
            (&["-p", "x"], "process id"),
            (&["-D", "65536"], "65535"),
            (&["--port", "-1"], ""),
            (&["-d", "10.0.0.0/33"], "longer than 32"),
            (&["-s", "::/129"], "longer than 128"),
            (&["-s", "example.com"], "not an IP address"),
            (&["--kind", "retransmit,nope"], "unknown event kind"),
            (&["--comm", "0123456789abcdefg"], "15 bytes"),
            (&["-N", "0"], "network namespace"),
            // `+2` used to be refused for want of a unit; it is 2 seconds now,
            // like every other duration (issue 11).
            (&["--since", "+2x"], "unknown unit \"x\""),
            (&["--since", "+1h30"], "missing unit"),
            (&["--since", "2026-13-01T00:00:00Z"], "RFC 3339"),
            (&["--since", "2026-13-01 00:00:00"], "month 13"),
            (&["--since", "25:00"], "hour 25"),
            (&["--since", "10:00", "--until", "09:00"], "give dates"),
            (&["--since", "+2s", "--until", "+1s"], "--until must be later"),
        ] {
            let e = err(argv);
            assert_eq!(e.exit_code(), 2, "{argv:?}");
            assert!(e.to_string().contains(needle), "{argv:?}: {e}");
        }
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("+2s"), Ok(TimeBound::SinceStart(2_000_000_000)));
        assert_eq!(parse_time("1.5m"), Ok(TimeBound::SinceStart(90_000_000_000)));
        assert_eq!(
            parse_time("2026-04-14T10:00:00Z"),
            Ok(TimeBound::Wall(1_776_160_800_000_000_000))
        );
        assert_eq!(
            parse_time("2026-04-14T12:00:00.000000001+02:00"),
            Ok(TimeBound::Wall(1_776_160_800_000_000_001))
        );
        assert!(parse_time("yesterday").unwrap_err().contains("not a time"));
        assert!(parse_time("3000-01-01T00:00:00Z").unwrap_err().contains("out of range"));
        // Durations have one syntax in both tools: a bare number is seconds.
        for (input, nanos) in [
            ("2", 2_000_000_000),
            ("+2", 2_000_000_000),
            ("+30", 30_000_000_000),
            ("+0.5", 500_000_000),
            ("+2h", 7_200_000_000_000),
            ("+1h30m", 5_400_000_000_000),
            (" +250ms ", 250_000_000),
        ] {
            assert_eq!(parse_time(input), Ok(TimeBound::SinceStart(nanos)), "{input:?}");
        }
        // DuckDB's form of the same instants as above.
        for input in [
            "2026-04-14 10:00:00",
            "2026-04-14 10:00",
            "2026-04-14 12:00:00+02",
            "2026-04-14 12:00:00+02:00",
            "2026-04-14T10:00:00",
            " 2026-04-14 10:00:00Z ",
        ] {
            assert_eq!(
                parse_time(input),
                Ok(TimeBound::Wall(1_776_160_800_000_000_000)),
                "{input:?}"
            );
        }
        assert_eq!(
            parse_time("2026-04-14 10:00:00.123456"),
            Ok(TimeBound::Wall(1_776_160_800_123_456_000))
        );
        // Times of day.
        assert_eq!(
            parse_time("10:00"),
            Ok(TimeBound::TimeOfDay {
                nanos: 36_000_000_000_000,
                utc_offset_s: 0
            })
        );
        assert_eq!(
            parse_time("12:00:00.5+02:00"),
            Ok(TimeBound::TimeOfDay {
                nanos: 43_200_500_000_000,
                utc_offset_s: 7_200
            })
        );
        // Errors are one line naming every form.
        for bad in ["yesterday", "-2s", "2026-02-30", "10:00 UTC", "10:61", "+5x", "1 s"] {
            let e = parse_time(bad).unwrap_err();
            assert!(!e.contains('\n'), "{bad:?}: {e}");
            assert!(e.contains("30s") || e.contains("+30"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn help_has_examples() {
        let help = Args::command().render_long_help().to_string();
        for needle in [
            "Examples:",
            "--timestamp",
            "--seconds",
            "--kstack",
            "--info",
            "--follow",
            "--conn",
            "--json",
            "--sort",
            "--top",
            "-p 1234",
            "-N 4026531840",
            "-S 8080",
            "-D 443",
            "--port 5432",
            "--report report.html",
            "--trace-json trace.json",
            "-s 10.0.0.0/8",
            "-d 2001:db8::/32",
            "--comm nginx",
            "--kind retransmit",
            "--since +2s",
            "--until",
            "OR",
            "AND",
            "recordings/",
        ] {
            assert!(help.contains(needle), "{needle} missing from help");
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        Args::command().debug_assert();
    }
}
