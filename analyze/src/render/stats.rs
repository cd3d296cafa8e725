//! `--stats`: the groups of [`crate::stats`] as one table, or one JSON
//! object per group (`--json`, shapes in analyze/JSON.md).
//!
//! ```text
//! DPORT  CONNS  OPEN  FAILED REFUSED TIMEOUT RESET ERROR RETRANS RETR/CONN ZWIN ZWIN_MS    HS50_MS  HS90_MS  HS99_MS  HSMAX_MS SRTT50_MS ...
//! 443    12     1     3      0       1       2     0     9       0.75      0    0.000    1.486    10.272   10.272   10.272   54.325    ...
//! ```
//!
//! Handshake, RTT and duration columns are milliseconds, `-` where
//! a group has no value (no connection of it recorded one). Rows: most
//! connections first.

use std::io::{self, Write};

use serde::Serialize;

use crate::cli::StatsBy;
use crate::render::table::push_cell;
use crate::render::{push_sanitized, push_u64};
use crate::stats::{GroupKey, GroupStats, Histogram, Summary};

const NUM: usize = 7;
const MS: usize = 10;

/// The groups as a table (the group column only with `--by`).
pub fn table(out: &mut impl Write, by: Option<StatsBy>, groups: &[(GroupKey, GroupStats)]) -> io::Result<()> {
    let keys: Vec<String> = groups.iter().map(|(k, _)| key_text(k)).collect();
    let key_width = by.map(|b| {
        keys.iter()
            .map(|k| k.chars().count())
            .chain([b.heading().len()])
            .max()
            .unwrap_or(0)
            + 2
    });
    let mut l = String::with_capacity(320);
    if let (Some(w), Some(b)) = (key_width, by) {
        push_cell(&mut l, b.heading(), w);
    }
    for (h, w) in HEADINGS {
        push_cell(&mut l, h, *w);
    }
    emit(out, &mut l)?;
    for ((_, g), key) in groups.iter().zip(&keys) {
        if let Some(w) = key_width {
            push_cell(&mut l, key, w);
        }
        // One value per heading, in its order: the widths are the headings'.
        let f = &g.failures;
        let mut cells: Vec<String> = [
            g.connections,
            g.still_open,
            f.total(),
            f.refused,
            f.timeout,
            f.reset,
            f.error,
            g.retransmits,
        ]
        .iter()
        .map(u64::to_string)
        .collect();
        cells.push(format!("{:.2}", g.retransmits_per_conn()));
        cells.push(g.zero_window_stalls.to_string());
        cells.push(fixed(g.zero_window_stall_ns, 1_000_000));
        for (h, div) in [
            (&g.handshake_ns, 1_000_000),
            (&g.srtt_us, 1_000),
            (&g.duration_ns, 1_000_000),
        ] {
            push_percentiles(&mut cells, h, div);
        }
        debug_assert_eq!(cells.len(), HEADINGS.len());
        for (cell, (_, w)) in cells.iter().zip(HEADINGS) {
            push_cell(&mut l, cell, *w);
        }
        emit(out, &mut l)?;
    }
    out.flush()
}

const HEADINGS: &[(&str, usize)] = &[
    ("CONNS", NUM + 1),
    ("OPEN", NUM + 1),
    ("FAILED", NUM + 1),
    ("REFUSED", NUM + 1),
    ("TIMEOUT", NUM + 1),
    ("RESET", NUM + 1),
    ("ERROR", NUM + 1),
    ("RETRANS", NUM + 1),
    ("RETR/CONN", 10),
    ("ZWIN", 5),
    ("ZWIN_MS", 10),
    ("HS50_MS", MS),
    ("HS90_MS", MS),
    ("HS99_MS", MS),
    ("HSMAX_MS", MS),
    ("SRTT50_MS", MS),
    ("SRTT90_MS", MS),
    ("SRTT99_MS", MS),
    ("SRTTMAX_MS", MS + 1),
    ("DUR50_MS", MS),
    ("DUR90_MS", MS),
    ("DUR99_MS", MS),
    ("DURMAX_MS", MS),
];

/// p50, p90, p99 and max of `h` in units of `div` (`-` each when empty).
fn push_percentiles(cells: &mut Vec<String>, h: &Histogram, div: u64) {
    match h.summary() {
        Some(s) => cells.extend(
            [s.p50, s.p90, s.p99, s.max]
                .into_iter()
                .map(|v| fixed(i64::try_from(v).unwrap_or(i64::MAX), div as i64)),
        ),
        None => cells.extend(std::iter::repeat_n("-".to_string(), 4)),
    }
}

/// `v / div` with three decimals (truncated), from integers.
fn fixed(v: i64, div: i64) -> String {
    let milli = i128::from(v) * 1000 / i128::from(div);
    format!("{}.{:03}", milli / 1000, milli % 1000)
}

fn key_text(k: &GroupKey) -> String {
    let mut s = String::new();
    match k {
        GroupKey::All => s.push_str("all"),
        GroupKey::Addr(a) => s.push_str(&a.to_string()),
        GroupKey::Port(p) => push_u64(&mut s, u64::from(*p)),
        GroupKey::Text(t) => push_sanitized(&mut s, t),
        GroupKey::Number(Some(n)) => push_u64(&mut s, *n),
        GroupKey::Number(None) => s.push_str("N/A"),
    }
    s
}

fn emit(out: &mut impl Write, l: &mut String) -> io::Result<()> {
    out.write_all(l.trim_end_matches(' ').as_bytes())?;
    out.write_all(b"\n")?;
    l.clear();
    Ok(())
}

/// One group (`--stats --json`).
#[derive(Debug, Serialize)]
pub struct GroupJson<'a> {
    /// The `--by` key, null without one.
    pub by: Option<&'static str>,
    /// The group's value: a string (address, comm, host), a number (port,
    /// pid, cgroup id, netns inode), null when unknown or without `--by`.
    pub group: KeyJson<'a>,
    pub connections: u64,
    pub still_open: u64,
    pub failed: u64,
    pub failures: FailuresJson,
    pub retransmits: u64,
    pub retransmits_per_conn: f64,
    pub zero_window_stalls: u64,
    pub zero_window_stall_ns: i64,
    pub handshake_ns: Option<Summary>,
    pub srtt_us: Option<Summary>,
    pub duration_ns: Option<Summary>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum KeyJson<'a> {
    Text(String),
    Str(&'a str),
    Number(u64),
    Null(Option<()>),
}

#[derive(Debug, Serialize)]
pub struct FailuresJson {
    pub refused: u64,
    pub timeout: u64,
    pub reset: u64,
    pub error: u64,
}

impl<'a> GroupJson<'a> {
    pub fn new(by: Option<StatsBy>, k: &'a GroupKey, g: &GroupStats) -> Self {
        let group = match k {
            GroupKey::All | GroupKey::Number(None) => KeyJson::Null(None),
            GroupKey::Addr(a) => KeyJson::Text(a.to_string()),
            GroupKey::Port(p) => KeyJson::Number(u64::from(*p)),
            GroupKey::Text(t) => KeyJson::Str(t),
            GroupKey::Number(Some(n)) => KeyJson::Number(*n),
        };
        let f = &g.failures;
        GroupJson {
            by: by.map(StatsBy::name),
            group,
            connections: g.connections,
            still_open: g.still_open,
            failed: f.total(),
            failures: FailuresJson {
                refused: f.refused,
                timeout: f.timeout,
                reset: f.reset,
                error: f.error,
            },
            retransmits: g.retransmits,
            retransmits_per_conn: g.retransmits_per_conn(),
            zero_window_stalls: g.zero_window_stalls,
            zero_window_stall_ns: g.zero_window_stall_ns,
            handshake_ns: g.handshake_ns.summary(),
            srtt_us: g.srtt_us.summary(),
            duration_ns: g.duration_ns.summary(),
        }
    }
}

/// The groups as JSON lines.
pub fn json(out: &mut impl Write, by: Option<StatsBy>, groups: &[(GroupKey, GroupStats)]) -> io::Result<()> {
    for (k, g) in groups {
        crate::render::json::line(&mut *out, &GroupJson::new(by, k, g))?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_point_is_truncated_not_rounded() {
        assert_eq!(fixed(1_486_999, 1_000_000), "1.486");
        assert_eq!(fixed(0, 1_000), "0.000");
        assert_eq!(fixed(54_325, 1_000), "54.325");
        assert_eq!(fixed(12_345_678_901, 1_000_000_000), "12.345");
    }

    #[test]
    fn headings_and_rows_line_up() {
        let mut g = GroupStats {
            connections: 3,
            ..GroupStats::default()
        };
        g.handshake_ns.add(1_500_000);
        let groups = vec![(GroupKey::Port(443), g)];
        let mut out = Vec::new();
        table(&mut out, Some(StatsBy::Dport), &groups).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        // Where each whitespace-separated field starts.
        let starts = |l: &str| -> Vec<usize> {
            let b = l.as_bytes();
            (0..b.len())
                .filter(|&i| b[i] != b' ' && (i == 0 || b[i - 1] == b' '))
                .collect()
        };
        let (h, r) = (starts(lines[0]), starts(lines[1]));
        assert_eq!(h.len(), HEADINGS.len() + 1, "{text}");
        assert_eq!(h, r, "every value starts under its heading: {text}");
        assert_eq!(&lines[1][r[1]..r[1] + 1], "3");
        assert_eq!(&lines[1][r[12]..r[12] + 5], "1.500", "{text}");
        assert_eq!(&lines[0][h[12]..h[12] + 7], "HS50_MS");
        assert!(lines[1].ends_with('-'), "no RTT, no duration: {text}");
    }
}
