//! Event filters shared by `analyze` (which applies them to recorded rows)
//! and `record` (which parses the same options and turns them into its BPF
//! programs' in-kernel filters).
//!
//! Each command-line option has a parser here (`parse_*`, usable directly as
//! a clap `value_parser`: it returns a one-line message on bad input) and a
//! field in [`Filter`]. The rule for combining them is the same everywhere:
//!
//! - **OR within one option**: `-p 1 -p 2` keeps events of pid 1 or pid 2;
//!   `--kind retransmit,reset_recv` keeps either kind.
//! - **AND across options**: `-p 1 --dport 443` keeps events of pid 1 whose
//!   destination port is 443.
//! - An option not given does not filter.
//!
//! Addresses in events are canonical (IPv4-mapped IPv6 is already IPv4), so
//! an IPv4 CIDR matches IPv4 addresses only and an IPv6 CIDR IPv6 addresses
//! only; `::ffff:10.0.0.0/104` is accepted and means `10.0.0.0/8`.
//!
//! Time bounds ([`TimeBound`]) are resolved per recording against its clock
//! anchor ([`Filter::mono_window`]). Offsets from the start are parsed here
//! ([`parse_offset`], with [`crate::timearg`]); dates and times of day are
//! left to the caller (this crate has no calendar dependency), which passes
//! the resolved nanoseconds as [`TimeBound::Wall`] or [`TimeBound::TimeOfDay`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::event::{canonical_ip, Event, EventKind};
use crate::meta::ClockAnchor;
use crate::names::{CgroupPattern, Names};

/// Largest pid Linux can hand out (`PID_MAX_LIMIT` on 64-bit).
pub const PID_MAX: u32 = 4_194_304;
/// `TASK_COMM_LEN - 1`: the kernel keeps at most 15 bytes of a task name.
pub const COMM_MAX: usize = 15;

/// An IPv4 or IPv6 network, e.g. `10.0.0.0/8`, `2001:db8::/32`; a bare
/// address is a host (`/32`, `/128`). Host bits are cleared on parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `addr/prefix` with the host bits of `addr` cleared; `None` when the
    /// prefix is too long for the family. IPv4-mapped IPv6 becomes IPv4.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => {
                if prefix < 96 {
                    return None;
                }
                (canonical_ip(addr), prefix - 96)
            }
            a => (a, prefix),
        };
        match addr {
            IpAddr::V4(v4) if prefix <= 32 => Some(Cidr {
                addr: IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask32(prefix))),
                prefix,
            }),
            IpAddr::V6(v6) if prefix <= 128 => Some(Cidr {
                addr: IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask128(prefix))),
                prefix,
            }),
            _ => None,
        }
    }

    /// The network address (host bits zero).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// Prefix length in bits.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` (canonical: v4-mapped already IPv4) is in this network.
    /// Never true across families.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => u32::from(a) & mask32(self.prefix) == u32::from(net),
            (IpAddr::V6(net), IpAddr::V6(a)) => u128::from(a) & mask128(self.prefix) == u128::from(net),
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    }
}

fn mask128(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix.min(128)))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        parse_cidr(s)
    }
}

/// Parses `ADDR`, `ADDR/PREFIX`, `[V6]` or `[V6]/PREFIX`.
pub fn parse_cidr(s: &str) -> Result<Cidr, String> {
    let t = s.trim();
    let (addr_s, prefix_s) = match t.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (t, None),
    };
    let addr_s = addr_s
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(addr_s);
    let addr: IpAddr = addr_s
        .parse()
        .map_err(|_| format!("{s:?} is not an IP address or network (e.g. 10.0.0.0/8, 2001:db8::/32)"))?;
    let mapped = matches!(addr, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some());
    let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix_s {
        None => max,
        Some(p) => {
            if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("{s:?}: the prefix length must be a number from 0 to {max}"));
            }
            let n: u16 = p.parse().map_err(|_| format!("{s:?}: bad prefix length"))?;
            if n > u16::from(max) {
                let fam = if addr.is_ipv4() { "IPv4" } else { "IPv6" };
                return Err(format!(
                    "{s:?}: prefix length {n} is longer than {max}, the maximum for {fam}"
                ));
            }
            n as u8
        }
    };
    Cidr::new(addr, prefix).ok_or_else(|| {
        debug_assert!(mapped);
        format!("{s:?}: an IPv4-mapped prefix must be at least /96 (it covers IPv4 addresses only)")
    })
}

/// Parses a pid, 1 to [`PID_MAX`].
pub fn parse_pid(s: &str) -> Result<u32, String> {
    let n: u64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a process id (a number from 1 to {PID_MAX})"))?;
    if n == 0 || n > u64::from(PID_MAX) {
        return Err(format!(
            "{n} is not a process id (1 to {PID_MAX}; events without a process show N/A)"
        ));
    }
    Ok(n as u32)
}

/// Parses a TCP port, 0 to 65535 (0 is the port of a socket not yet bound or connected).
pub fn parse_port(s: &str) -> Result<u16, String> {
    let t = s.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} is not a port (a number from 0 to 65535)"));
    }
    t.parse::<u16>()
        .map_err(|_| format!("{t} is not a port: ports range from 0 to 65535"))
}

/// Parses a network namespace: its inode number (`4026531840`) or the form
/// `readlink /proc/PID/ns/net` prints (`net:[4026531840]`). 0 (unknown) is refused.
pub fn parse_netns(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let inner = t.strip_prefix("net:[").and_then(|r| r.strip_suffix(']')).unwrap_or(t);
    let n: u32 = inner.parse().map_err(|_| {
        format!("{s:?} is not a network namespace (its inode number, e.g. 4026531840, or net:[4026531840])")
    })?;
    if n == 0 {
        return Err("0 is not a network namespace (0 means unknown in recordings)".to_owned());
    }
    Ok(n)
}

/// Parses a task name: exact match, 1 to [`COMM_MAX`] bytes.
pub fn parse_comm(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("the command name must not be empty".to_owned());
    }
    if s.contains('\0') {
        return Err("the command name must not contain NUL".to_owned());
    }
    if s.len() > COMM_MAX {
        let mut end = COMM_MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        return Err(format!(
            "{s:?} is longer than {COMM_MAX} bytes; the kernel keeps only the first {COMM_MAX}: use {:?}",
            &s[..end]
        ));
    }
    Ok(s.to_owned())
}

/// Parses a `--cgroup` pattern ([`CgroupPattern`]).
pub fn parse_cgroup(s: &str) -> Result<CgroupPattern, String> {
    CgroupPattern::parse(s)
}

/// Parses one event kind name (`state_change`, `retransmit`, ...).
pub fn parse_kind(s: &str) -> Result<EventKind, String> {
    EventKind::parse(s.trim()).ok_or_else(|| {
        let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        format!("unknown event kind {s:?}; kinds are: {}", names.join(", "))
    })
}

/// Parses a comma-separated list of event kinds.
pub fn parse_kinds(s: &str) -> Result<Vec<EventKind>, String> {
    s.split(',').map(parse_kind).collect()
}

/// Parses a duration from the recording start: `+` and a duration in the
/// syntax of [`crate::timearg`] (`+30` is 30 seconds, `+2s`, `+1.5m`,
/// `+250ms`, `+1h30m`; the `+` may be left out). Returns nanoseconds;
/// fractions below a nanosecond are dropped.
pub fn parse_offset(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let body = t.strip_prefix('+').unwrap_or(t);
    let too_large = || format!("{s:?}: offset too large (at most 292 years)");
    let parsed = if body.starts_with(char::is_whitespace) {
        // `+ 2s`: the sign belongs to the number.
        Err(crate::timearg::DurationError::Syntax)
    } else {
        crate::timearg::parse_duration_nanos(body)
    };
    let nanos = parsed.map_err(|e| match e {
        crate::timearg::DurationError::TooLarge => too_large(),
        e => format!("{s:?}: {e} (with a + in front: +30, +2s, ...)"),
    })?;
    i64::try_from(nanos).map_err(|_| too_large())
}

/// Nanoseconds in a second.
const NANOS_PER_SEC: i64 = 1_000_000_000;
/// Nanoseconds in a (UTC, leap-second-free) day.
pub const NANOS_PER_DAY: i64 = 86_400 * NANOS_PER_SEC;

/// One end of a time window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeBound {
    /// Nanoseconds after the recording started (its clock anchor), e.g. `+2s`.
    SinceStart(i64),
    /// Wall-clock nanoseconds since the Unix epoch (UTC), e.g. from an RFC 3339 time.
    Wall(i64),
    /// A time of day without a date, e.g. `10:00`: `nanos` after midnight
    /// (0 to [`NANOS_PER_DAY`]) in the zone `utc_offset_s` seconds east of
    /// UTC (0: UTC). It stands for that time on the day, in that zone, on
    /// which the recording started ([`TimeBound::on_day_of`]).
    TimeOfDay { nanos: i64, utc_offset_s: i32 },
}

impl TimeBound {
    /// A [`TimeBound::TimeOfDay`] as the [`TimeBound::Wall`] time on the day
    /// (in its zone) that contains the wall-clock instant `start_wall_ns`,
    /// even when that is earlier than `start_wall_ns`; other bounds as they are.
    pub fn on_day_of(self, start_wall_ns: i64) -> TimeBound {
        match self {
            TimeBound::TimeOfDay { nanos, utc_offset_s } => {
                let offset = i64::from(utc_offset_s) * NANOS_PER_SEC;
                let local_start = start_wall_ns.saturating_add(offset);
                let midnight = local_start.saturating_sub(local_start.rem_euclid(NANOS_PER_DAY));
                TimeBound::Wall(midnight.saturating_add(nanos).saturating_sub(offset))
            }
            b => b,
        }
    }

    /// The `mono_ns` this bound stands for in a recording with `clock`
    /// (a time of day: on the day this recording started).
    pub fn to_mono(self, clock: &ClockAnchor) -> i64 {
        // on_day_of leaves no TimeOfDay; the arm only keeps the match total.
        match self.on_day_of(clock.realtime_ns) {
            TimeBound::SinceStart(d) => clock.monotonic_ns.saturating_add(d),
            TimeBound::Wall(w) | TimeBound::TimeOfDay { nanos: w, .. } => {
                clock.monotonic_ns.saturating_add(w.saturating_sub(clock.realtime_ns))
            }
        }
    }
}

/// `since <= mono_ns < until` for one recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonoWindow {
    pub since: i64,
    pub until: i64,
}

impl MonoWindow {
    pub const ALL: MonoWindow = MonoWindow {
        since: i64::MIN,
        until: i64::MAX,
    };

    pub fn contains(&self, mono_ns: i64) -> bool {
        self.since <= mono_ns && (mono_ns < self.until || self.until == i64::MAX)
    }
}

/// What to keep. Every field empty / `None` = keep everything. See the
/// module documentation for how fields combine.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filter {
    /// `-p`: owner pid.
    pub pids: Vec<u32>,
    /// `-N`: network namespace inode.
    pub netns: Vec<u32>,
    /// `-S`: source (local) port.
    pub sports: Vec<u16>,
    /// `-D`: destination (remote) port.
    pub dports: Vec<u16>,
    /// `--port`: either port.
    pub ports: Vec<u16>,
    /// `-s`: source (local) address.
    pub saddrs: Vec<Cidr>,
    /// `-d`: destination (remote) address.
    pub daddrs: Vec<Cidr>,
    /// `--comm`: exact task name.
    pub comms: Vec<String>,
    /// `--kind`.
    pub kinds: Vec<EventKind>,
    /// `--since` (inclusive).
    pub since: Option<TimeBound>,
    /// `--until` (exclusive).
    pub until: Option<TimeBound>,
    /// `--cgroup`: patterns on the owner's cgroup path ([`CgroupPattern`]).
    /// Rows carry cgroup ids: a recording's name table turns the patterns
    /// into [`cgroup_ids`](Self::cgroup_ids) ([`Filter::with_names`]).
    pub cgroups: Vec<CgroupPattern>,
    /// The cgroup ids whose path matches [`cgroups`](Self::cgroups) in the
    /// recording being read, sorted; set by [`Filter::with_names`]. With
    /// patterns, a row whose cgroup is not among them (no name known, or
    /// a recording without names) does not match.
    pub cgroup_ids: Vec<u64>,
}

impl Filter {
    /// True when nothing is filtered.
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// Checks what parsing each option alone cannot: `--until` must be
    /// later than `--since` when both are of the same form (times of day:
    /// in the same zone).
    pub fn validate(&self) -> Result<(), String> {
        match (self.since, self.until) {
            (Some(TimeBound::SinceStart(a)), Some(TimeBound::SinceStart(b)))
            | (Some(TimeBound::Wall(a)), Some(TimeBound::Wall(b)))
                if b <= a =>
            {
                Err("--until must be later than --since".to_owned())
            }
            (
                Some(TimeBound::TimeOfDay {
                    nanos: a,
                    utc_offset_s: za,
                }),
                Some(TimeBound::TimeOfDay {
                    nanos: b,
                    utc_offset_s: zb,
                }),
            ) if za == zb && b <= a => Err(
                "--until must be later than --since (times of day are on the recording's first day: \
                 for a window across midnight give dates)"
                    .to_owned(),
            ),
            _ => Ok(()),
        }
    }

    /// This filter with its times of day made wall-clock times on the day
    /// (in their zones) that contains `start_wall_ns`: with several
    /// recordings, pass the earliest start so that `10:00` is the same
    /// instant in all of them (see [`TimeBound::on_day_of`]).
    pub fn with_days_of(&self, start_wall_ns: i64) -> Filter {
        Filter {
            since: self.since.map(|b| b.on_day_of(start_wall_ns)),
            until: self.until.map(|b| b.on_day_of(start_wall_ns)),
            ..self.clone()
        }
    }

    /// This filter for a recording with name tables `names`: its
    /// `--cgroup` patterns resolved to that recording's cgroup ids.
    pub fn with_names(&self, names: &Names) -> Filter {
        Filter {
            cgroup_ids: names.matching_cgroups(&self.cgroups),
            ..self.clone()
        }
    }

    /// Whether a row of cgroup `id` passes `--cgroup` (see [`Filter::with_names`]).
    pub fn matches_cgroup(&self, id: u64) -> bool {
        self.cgroups.is_empty() || (id != 0 && self.cgroup_ids.binary_search(&id).is_ok())
    }

    /// Bitmask of the kinds to keep (bit `i` = `EventKind::ALL[i]`); all
    /// bits set when `--kind` was not given.
    pub fn kind_mask(&self) -> u32 {
        if self.kinds.is_empty() {
            return u32::MAX;
        }
        self.kinds.iter().fold(0, |m, k| m | kind_bit(*k))
    }

    /// Whether the filter says anything about the owner (pid or comm).
    pub fn has_owner_criteria(&self) -> bool {
        !self.pids.is_empty() || !self.comms.is_empty()
    }

    /// Whether the filter has time bounds.
    pub fn has_time_bounds(&self) -> bool {
        self.since.is_some() || self.until.is_some()
    }

    /// The `mono_ns` window of `--since`/`--until` in a recording with `clock`.
    pub fn mono_window(&self, clock: &ClockAnchor) -> MonoWindow {
        MonoWindow {
            since: self.since.map_or(i64::MIN, |b| b.to_mono(clock)),
            until: self.until.map_or(i64::MAX, |b| b.to_mono(clock)),
        }
    }

    /// Pid and comm criteria only.
    pub fn matches_owner(&self, pid: u32, comm: &str) -> bool {
        (self.pids.is_empty() || self.pids.contains(&pid))
            && (self.comms.is_empty() || self.comms.iter().any(|c| c == comm))
    }

    /// Every criterion except owner (pid, comm) and time: kind, netns,
    /// ports, addresses, cgroup (the row's own: a row without one does not
    /// match `--cgroup`).
    pub fn matches_socket(&self, ev: &Event) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&ev.kind))
            && self.matches_cgroup(ev.cgroup_id)
            && (self.netns.is_empty() || self.netns.contains(&ev.netns))
            && (self.sports.is_empty() || self.sports.contains(&ev.sport))
            && (self.dports.is_empty() || self.dports.contains(&ev.dport))
            && (self.ports.is_empty() || self.ports.contains(&ev.sport) || self.ports.contains(&ev.dport))
            && (self.saddrs.is_empty() || self.saddrs.iter().any(|c| c.contains(ev.saddr)))
            && (self.daddrs.is_empty() || self.daddrs.iter().any(|c| c.contains(ev.daddr)))
    }

    /// Every criterion except time (see [`Filter::mono_window`]).
    pub fn matches(&self, ev: &Event) -> bool {
        self.matches_socket(ev) && self.matches_owner(ev.pid, &ev.comm)
    }
}

/// Bit of `kind` in [`Filter::kind_mask`].
pub fn kind_bit(kind: EventKind) -> u32 {
    1u32 << kind.code()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Attribution, TcpState};
    use crate::testing::event;

    fn ev() -> Event {
        Event {
            mono_ns: 1_000,
            pid: 42,
            tid: 43,
            comm: "curl".into(),
            saddr: "10.1.2.3".parse().unwrap(),
            daddr: "192.168.0.9".parse().unwrap(),
            sport: 40000,
            dport: 443,
            newstate: Some(TcpState::Established),
            netns: 4026531840,
            cookie: 7,
            attribution: Attribution::Task,
            ..event(EventKind::Retransmit)
        }
    }

    #[test]
    fn kind_bits_follow_all() {
        for (i, k) in EventKind::ALL.iter().enumerate() {
            assert_eq!(kind_bit(*k), 1 << i);
        }
        let f = Filter {
            kinds: vec![EventKind::Retransmit, EventKind::Snapshot],
            ..Default::default()
        };
        assert_eq!(f.kind_mask(), 0b100_0000_0000_0010);
        assert_eq!(Filter::default().kind_mask(), u32::MAX);
    }

    #[test]
    fn cidr_parsing() {
        let c = parse_cidr("10.0.0.0/8").unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        // Host bits are cleared.
        assert_eq!(parse_cidr("10.9.8.7/8").unwrap(), c);
        assert_eq!(parse_cidr("10.1.2.3").unwrap().to_string(), "10.1.2.3/32");
        assert_eq!(parse_cidr("0.0.0.0/0").unwrap().prefix(), 0);
        assert_eq!(parse_cidr("2001:db8::1/32").unwrap().to_string(), "2001:db8::/32");
        assert_eq!(parse_cidr("[::1]").unwrap().to_string(), "::1/128");
        assert_eq!(parse_cidr("[2001:db8::]/48").unwrap().to_string(), "2001:db8::/48");
        assert_eq!(parse_cidr("::/0").unwrap().prefix(), 0);
        // v4-mapped becomes IPv4.
        assert_eq!(parse_cidr("::ffff:10.0.0.0/104").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_cidr("::ffff:10.1.2.3").unwrap().to_string(), "10.1.2.3/32");
        assert!(parse_cidr("::ffff:10.0.0.0/95").unwrap_err().contains("/96"));
    }

    #[test]
    fn cidr_errors() {
        let e = parse_cidr("10.0.0.0/33").unwrap_err();
        assert!(e.contains("longer than 32"), "{e}");
        let e = parse_cidr("::/129").unwrap_err();
        assert!(e.contains("longer than 128"), "{e}");
        for bad in [
            "",
            "10.0.0",
            "10.0.0.0/",
            "10.0.0.0/x",
            "10.0.0.0/-1",
            "10.0.0.0/8/8",
            "host",
            "10.0.0.0/0008",
        ] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
        assert!(parse_cidr("10.0.0.0/ 8").is_err());
    }

    #[test]
    fn cidr_matching() {
        let net = parse_cidr("10.0.0.0/8").unwrap();
        assert!(net.contains("10.0.0.0".parse().unwrap()));
        assert!(net.contains("10.255.255.255".parse().unwrap()));
        assert!(!net.contains("11.0.0.0".parse().unwrap()));
        assert!(!net.contains("9.255.255.255".parse().unwrap()));
        // Never across families: not even a v4-mapped address (events hold canonical ones).
        assert!(!net.contains("::ffff:10.0.0.1".parse().unwrap()));
        let all4 = parse_cidr("0.0.0.0/0").unwrap();
        assert!(all4.contains("255.255.255.255".parse().unwrap()));
        assert!(!all4.contains("::1".parse().unwrap()));
        let all6 = parse_cidr("::/0").unwrap();
        assert!(all6.contains("::1".parse().unwrap()));
        assert!(!all6.contains("127.0.0.1".parse().unwrap()));
        let host = parse_cidr("192.168.0.9/32").unwrap();
        assert!(host.contains("192.168.0.9".parse().unwrap()));
        assert!(!host.contains("192.168.0.8".parse().unwrap()));
        let v6 = parse_cidr("2001:db8:abcd::/48").unwrap();
        assert!(v6.contains("2001:db8:abcd:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db8:abce::1".parse().unwrap()));
        let odd = parse_cidr("2001:db8::/33").unwrap();
        assert!(odd.contains("2001:db8:7fff::1".parse().unwrap()));
        assert!(!odd.contains("2001:db8:8000::1".parse().unwrap()));
        let one = parse_cidr("::1/128").unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("::2".parse().unwrap()));
        let p31 = parse_cidr("10.0.0.2/31").unwrap();
        assert!(p31.contains("10.0.0.3".parse().unwrap()));
        assert!(!p31.contains("10.0.0.4".parse().unwrap()));
    }

    #[test]
    fn scalar_parsers() {
        assert_eq!(parse_pid("1"), Ok(1));
        assert_eq!(parse_pid("4194304"), Ok(PID_MAX));
        assert!(parse_pid("0").unwrap_err().contains("N/A"));
        assert!(parse_pid("4194305").is_err());
        assert!(parse_pid("-1").is_err());
        assert!(parse_pid("abc").is_err());
        assert_eq!(parse_port("0"), Ok(0));
        assert_eq!(parse_port("65535"), Ok(65535));
        assert!(parse_port("65536").unwrap_err().contains("0 to 65535"));
        assert!(parse_port("+80").is_err());
        assert!(parse_port("").is_err());
        assert_eq!(parse_netns("4026531840"), Ok(4026531840));
        assert_eq!(parse_netns("net:[4026531840]"), Ok(4026531840));
        assert!(parse_netns("0").is_err());
        assert!(parse_netns("net:[x]").is_err());
        assert_eq!(parse_comm("nginx").unwrap(), "nginx");
        assert_eq!(parse_comm("Web Content").unwrap(), "Web Content");
        let e = parse_comm("a-very-long-command").unwrap_err();
        assert!(e.contains("\"a-very-long-com\""), "{e}");
        assert!(parse_comm("").is_err());
        assert_eq!(
            parse_kinds("retransmit,reset_recv"),
            Ok(vec![EventKind::Retransmit, EventKind::ResetRecv])
        );
        let e = parse_kinds("retransmit,bogus").unwrap_err();
        assert!(e.contains("\"bogus\"") && e.contains("zero_window_recv"), "{e}");
    }

    #[test]
    fn offsets() {
        assert_eq!(parse_offset("+2s"), Ok(2_000_000_000));
        assert_eq!(parse_offset("2s"), Ok(2_000_000_000));
        assert_eq!(parse_offset("+1.5m"), Ok(90_000_000_000));
        assert_eq!(parse_offset("+250ms"), Ok(250_000_000));
        assert_eq!(parse_offset("+100us"), Ok(100_000));
        assert_eq!(parse_offset("+7ns"), Ok(7));
        assert_eq!(parse_offset("+1h"), Ok(3_600_000_000_000));
        assert_eq!(parse_offset("+.5s"), Ok(500_000_000));
        assert_eq!(parse_offset("+0s"), Ok(0));
        assert_eq!(parse_offset("+0.0000000019s"), Ok(1));
        assert_eq!(parse_offset("+1.000000000000000000000001h"), Ok(3_600_000_000_000));
        // Same syntax as every other duration: a bare number is seconds (it
        // used to be refused for want of a unit), compound forms work.
        assert_eq!(parse_offset("+2"), Ok(2_000_000_000));
        assert_eq!(parse_offset("2.5"), Ok(2_500_000_000));
        assert_eq!(parse_offset("+1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_offset("+9223372036.854775807"), Ok(i64::MAX));
        for bad in ["+s", "+2x", "+1.2.3s", "-2s", "+ 2s", "", "+", "++2s", "+1h30"] {
            let e = parse_offset(bad).unwrap_err();
            assert!(e.contains("expected a duration") || e.contains("units"), "{bad}: {e}");
        }
        for big in ["+9223372036.854775808", "+99999999999h", "+18446744073709551616ns"] {
            assert!(parse_offset(big).unwrap_err().contains("too large"), "{big}");
        }
        assert!(parse_offset("+2x").unwrap_err().contains("unknown unit \"x\""));
    }

    #[test]
    fn times_of_day() {
        const H: i64 = 3_600 * NANOS_PER_SEC;
        // 2026-04-14T10:00:00Z
        let start = 1_776_160_800_000_000_000;
        let midnight = start - 10 * H;
        let tod = |h: i64, z: i32| TimeBound::TimeOfDay {
            nanos: h * H,
            utc_offset_s: z,
        };
        // On the recording's UTC day, also before its start.
        assert_eq!(tod(11, 0).on_day_of(start), TimeBound::Wall(midnight + 11 * H));
        assert_eq!(tod(9, 0).on_day_of(start), TimeBound::Wall(midnight + 9 * H));
        assert_eq!(tod(0, 0).on_day_of(start), TimeBound::Wall(midnight));
        assert_eq!(tod(0, 0).on_day_of(midnight), TimeBound::Wall(midnight));
        assert_eq!(tod(23, 0).on_day_of(midnight - 1), TimeBound::Wall(midnight - H));
        // With a zone: the day in that zone. 10:00Z is 12:00 at +02:00, the same day...
        assert_eq!(tod(12, 7_200).on_day_of(start), TimeBound::Wall(start));
        // ...but 2026-04-15 00:00 at +14:00, the next day there.
        assert_eq!(
            tod(1, 14 * 3_600).on_day_of(start),
            TimeBound::Wall(midnight + 24 * H + H - 14 * H)
        );
        // At -10:00 it is midnight of the 14th.
        assert_eq!(tod(0, -36_000).on_day_of(start), TimeBound::Wall(start));
        // Before 1970.
        assert_eq!(tod(1, 0).on_day_of(-1), TimeBound::Wall(-NANOS_PER_DAY + H));
        // Never overflows.
        for t in [i64::MIN, i64::MAX] {
            let _ = tod(23, 50_400).on_day_of(t);
            let _ = tod(0, -50_400).on_day_of(t);
        }
        // Others are left alone.
        assert_eq!(TimeBound::Wall(5).on_day_of(start), TimeBound::Wall(5));
        assert_eq!(TimeBound::SinceStart(5).on_day_of(start), TimeBound::SinceStart(5));

        // to_mono: on the day of that recording's own start.
        let clock = ClockAnchor {
            realtime_ns: start,
            monotonic_ns: 1_000,
        };
        assert_eq!(tod(10, 0).to_mono(&clock), 1_000);
        assert_eq!(tod(11, 0).to_mono(&clock), 1_000 + H);
        let f = Filter {
            since: Some(tod(10, 0)),
            until: Some(tod(11, 0)),
            ..Default::default()
        };
        assert!(f.validate().is_ok());
        assert_eq!(
            f.mono_window(&clock),
            MonoWindow {
                since: 1_000,
                until: 1_000 + H
            }
        );
        // with_days_of pins the day: a recording that started the next day
        // still sees the first day's 10:00.
        let pinned = f.with_days_of(start);
        assert_eq!(pinned.since, Some(TimeBound::Wall(start)));
        assert_eq!(pinned.until, Some(TimeBound::Wall(start + H)));
        let next_day = ClockAnchor {
            realtime_ns: start + 24 * H,
            monotonic_ns: 1_000,
        };
        assert_eq!(pinned.mono_window(&next_day).since, 1_000 - 24 * H);
        assert_eq!(f.mono_window(&next_day).since, 1_000);

        let backwards = Filter {
            since: Some(tod(23, 0)),
            until: Some(tod(1, 0)),
            ..Default::default()
        };
        assert!(backwards.validate().unwrap_err().contains("give dates"));
        let equal = Filter {
            since: Some(tod(1, 0)),
            until: Some(tod(1, 0)),
            ..Default::default()
        };
        assert!(equal.validate().is_err());
        // Different zones (or forms) are not compared.
        let zones = Filter {
            since: Some(tod(23, 0)),
            until: Some(tod(1, 3_600)),
            ..Default::default()
        };
        assert!(zones.validate().is_ok());
    }

    #[test]
    fn time_windows() {
        let clock = ClockAnchor {
            realtime_ns: 1_000_000_000_000,
            monotonic_ns: 5_000,
        };
        let f = Filter {
            since: Some(TimeBound::SinceStart(100)),
            until: Some(TimeBound::Wall(1_000_000_000_000 + 200)),
            ..Default::default()
        };
        let w = f.mono_window(&clock);
        assert_eq!(
            w,
            MonoWindow {
                since: 5_100,
                until: 5_200
            }
        );
        assert!(!w.contains(5_099));
        assert!(w.contains(5_100));
        assert!(w.contains(5_199));
        assert!(!w.contains(5_200));
        assert!(MonoWindow::ALL.contains(i64::MIN));
        assert!(MonoWindow::ALL.contains(i64::MAX));
        assert_eq!(Filter::default().mono_window(&clock), MonoWindow::ALL);

        assert!(f.validate().is_ok());
        let bad = Filter {
            since: Some(TimeBound::SinceStart(100)),
            until: Some(TimeBound::SinceStart(100)),
            ..Default::default()
        };
        assert!(bad.validate().is_err());
        let bad = Filter {
            since: Some(TimeBound::Wall(100)),
            until: Some(TimeBound::Wall(99)),
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn or_within_and_across() {
        let e = ev();
        assert!(Filter::default().matches(&e));
        assert!(Filter::default().is_empty());
        let f = Filter {
            pids: vec![1, 42],
            ..Default::default()
        };
        assert!(f.matches(&e));
        assert!(!f.is_empty());
        let f = Filter {
            pids: vec![1, 42],
            dports: vec![80],
            ..Default::default()
        };
        assert!(!f.matches(&e), "AND across options");
        let f = Filter {
            pids: vec![42],
            dports: vec![80, 443],
            ..Default::default()
        };
        assert!(f.matches(&e));
    }

    #[test]
    fn cgroup_patterns_through_the_recordings_names() {
        use crate::names::CgroupName;
        let mut names = Names::recorded_empty();
        names.insert_cgroup(CgroupName::new(7005, "/deeptcp-test-1/client"));
        names.insert_cgroup(CgroupName::new(7006, "/system.slice/sshd.service"));
        let f = Filter {
            cgroups: vec![parse_cgroup("deeptcp-test-*").unwrap()],
            ..Default::default()
        };
        assert!(!f.is_empty());
        let mut e = ev();
        e.cgroup_id = 7005;
        // Not resolved against a recording: nothing matches.
        assert!(!f.matches(&e));
        let r = f.with_names(&names);
        assert_eq!(r.cgroup_ids, [7005]);
        assert!(r.matches(&e) && r.matches_socket(&e));
        e.cgroup_id = 7006;
        assert!(!r.matches(&e), "another cgroup");
        e.cgroup_id = 0;
        assert!(!r.matches(&e), "a row without a cgroup");
        e.cgroup_id = 9999;
        assert!(!r.matches(&e), "a cgroup without a name");
        // A recording without names: nothing matches the pattern.
        assert!(!f.with_names(&Names::default()).matches(&ev()));
        // OR within the option, AND with the others.
        let both = Filter {
            cgroups: vec![parse_cgroup("nothing").unwrap(), parse_cgroup("/system.slice").unwrap()],
            dports: vec![443],
            ..Default::default()
        }
        .with_names(&names);
        e.cgroup_id = 7006;
        assert!(both.matches(&e));
        e.dport = 80;
        assert!(!both.matches(&e));
        // Without --cgroup every row passes, cgroup or not.
        assert!(Filter::default().with_names(&names).matches(&ev()));
        assert!(parse_cgroup("").is_err());
    }

    #[test]
    fn each_criterion() {
        let e = ev();
        let yes_no = |f: Filter, g: Filter| {
            assert!(f.matches(&e), "{f:?}");
            assert!(!g.matches(&e), "{g:?}");
        };
        let d = Filter::default;
        yes_no(
            Filter {
                netns: vec![4026531840],
                ..d()
            },
            Filter { netns: vec![1], ..d() },
        );
        yes_no(
            Filter {
                sports: vec![40000],
                ..d()
            },
            Filter {
                sports: vec![443],
                ..d()
            },
        );
        yes_no(
            Filter {
                dports: vec![443],
                ..d()
            },
            Filter {
                dports: vec![40000],
                ..d()
            },
        );
        yes_no(
            Filter {
                ports: vec![40000],
                ..d()
            },
            Filter { ports: vec![80], ..d() },
        );
        yes_no(
            Filter {
                ports: vec![443],
                ..d()
            },
            Filter {
                ports: vec![1, 2],
                ..d()
            },
        );
        yes_no(
            Filter {
                saddrs: vec![parse_cidr("10.0.0.0/8").unwrap()],
                ..d()
            },
            Filter {
                saddrs: vec![parse_cidr("192.168.0.0/16").unwrap()],
                ..d()
            },
        );
        yes_no(
            Filter {
                daddrs: vec![parse_cidr("192.168.0.0/16").unwrap()],
                ..d()
            },
            Filter {
                daddrs: vec![parse_cidr("10.0.0.0/8").unwrap(), parse_cidr("::/0").unwrap()],
                ..d()
            },
        );
        yes_no(
            Filter {
                comms: vec!["curl".into()],
                ..d()
            },
            Filter {
                comms: vec!["cur".into()],
                ..d()
            },
        );
        yes_no(
            Filter {
                kinds: vec![EventKind::Retransmit],
                ..d()
            },
            Filter {
                kinds: vec![EventKind::StateChange],
                ..d()
            },
        );
        // Owner and socket parts separately.
        let f = Filter {
            pids: vec![42],
            dports: vec![443],
            ..d()
        };
        assert!(f.matches_owner(42, "x"));
        assert!(!f.matches_owner(0, "curl"));
        assert!(f.has_owner_criteria());
        let mut anon = ev();
        anon.pid = 0;
        assert!(f.matches_socket(&anon));
        assert!(!f.matches(&anon));
    }
}
