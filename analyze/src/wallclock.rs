//! Dates and times people type after `--since`/`--until`.
//!
//! RFC 3339 (`2026-04-14T10:00:00Z`) alone made users retype what their
//! other tools print: DuckDB shows a recording's timestamps as
//! `2026-04-14 10:00:00.123456` (UTC, or `+02` for a TIMESTAMPTZ), and a
//! clock on the wall shows `10:00`. This module reads those forms into a
//! [`TimeBound`]. It is analyze's because it needs a calendar (chrono), which
//! the format crate does not have; the format crate resolves the bound per
//! recording.
//!
//! Forms ([`parse`]):
//!
//! - `DATE[( |T)TIME[ZONE]]`: `2026-04-14 10:00:00`, `2026-04-14T10:00:00Z`,
//!   `2026-04-14 12:00:00.5+02:00`; a date alone is its midnight, UTC. UTC
//!   unless a zone is given. → [`TimeBound::Wall`].
//! - `TIME[ZONE]`: a time of day, `10:00`, `9:30:15.25`, `12:00+02:00`. →
//!   [`TimeBound::TimeOfDay`]: that time on the day (UTC, or in the zone
//!   given) on which the recording started, even if that is before the start
//!   (see [`TimeBound::on_day_of`]); for a time after midnight in a recording
//!   that spans midnight, give the date.
//!
//! where `DATE` is `YYYY-MM-DD`, `TIME` is `H[H]:MM[:SS[.FRACTION]]` (24-hour
//! clock; fractions beyond nanoseconds are dropped; no leap second `:60`),
//! and `ZONE` is `Z` or `±HH`, `±HHMM`, `±HH:MM`, optionally after a space.
//! `T` and `Z` may be lowercase.

use chrono::{NaiveDate, NaiveTime};
use deeptcp_format::filter::TimeBound;

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Parses a date and time or a time of day (see the module documentation).
/// The error is a short reason, for the caller to put in context.
pub fn parse(s: &str) -> Result<TimeBound, String> {
    let mut c = Cursor {
        s: s.as_bytes(),
        pos: 0,
    };
    if c.at_end() {
        return Err("empty".to_owned());
    }
    // A date starts with digits and a '-'; a time of day with digits and a ':'.
    let date = if s.bytes().find(|b| !b.is_ascii_digit()) == Some(b'-') {
        let date = c.date()?;
        if c.at_end() {
            return wall(date, 0, None);
        }
        if !(c.eat(b' ') || c.eat(b'T') || c.eat(b't')) {
            return Err(c.unexpected("a space or T between the date and the time"));
        }
        Some(date)
    } else {
        None
    };
    let nanos = c.time()?;
    let utc_offset_s = c.zone()?;
    if !c.at_end() {
        return Err(c.unexpected("the end"));
    }
    match date {
        Some(date) => wall(date, nanos, utc_offset_s),
        None => Ok(TimeBound::TimeOfDay {
            nanos,
            utc_offset_s: utc_offset_s.unwrap_or(0),
        }),
    }
}

/// `nanos` after midnight of `date` in the zone `utc_offset_s` seconds east
/// of UTC (UTC when `None`), as nanoseconds since the epoch.
fn wall(date: NaiveDate, nanos: i64, utc_offset_s: Option<i32>) -> Result<TimeBound, String> {
    // In i128: a day whose midnight is out of range can hold times that are
    // not (1677-09-21 starts before i64::MIN nanoseconds).
    let midnight_s = date.and_time(NaiveTime::MIN).and_utc().timestamp();
    let t = i128::from(midnight_s) * i128::from(NANOS_PER_SEC) + i128::from(nanos)
        - i128::from(utc_offset_s.unwrap_or(0)) * i128::from(NANOS_PER_SEC);
    i64::try_from(t)
        .map(TimeBound::Wall)
        .map_err(|_| "out of range: years 1678 to 2261".to_owned())
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn at_end(&self) -> bool {
        self.pos == self.s.len()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.s.get(self.pos) == Some(&b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// "expected WHAT, found ..." at the current position.
    fn unexpected(&self, what: &str) -> String {
        let rest = String::from_utf8_lossy(&self.s[self.pos..]);
        if rest.is_empty() {
            format!("expected {what}, found the end")
        } else {
            format!("expected {what}, found {rest:?}")
        }
    }

    /// `min..=max` ASCII digits: their value and how many there were.
    fn digits(&mut self, min: usize, max: usize, what: &str) -> Result<(u64, usize), String> {
        let start = self.pos;
        let mut value: u64 = 0;
        while self.pos - start < max {
            match self.s.get(self.pos) {
                Some(b) if b.is_ascii_digit() => {
                    // At most 4 digits are asked for: cannot overflow.
                    value = value.saturating_mul(10).saturating_add(u64::from(b - b'0'));
                    self.pos += 1;
                }
                _ => break,
            }
        }
        let n = self.pos - start;
        if n < min || self.s.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos = start;
            return Err(self.unexpected(what));
        }
        Ok((value, n))
    }

    fn expect(&mut self, b: u8, what: &str) -> Result<(), String> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(self.unexpected(what))
        }
    }

    /// `YYYY-MM-DD`, a real date.
    fn date(&mut self) -> Result<NaiveDate, String> {
        let what = "a date YYYY-MM-DD";
        let (y, _) = self.digits(4, 4, what)?;
        self.expect(b'-', what)?;
        let (m, _) = self.digits(2, 2, what)?;
        self.expect(b'-', what)?;
        let (d, _) = self.digits(2, 2, what)?;
        if !(1..=12).contains(&m) {
            return Err(format!("month {m:02} does not exist"));
        }
        // y < 10000, m and d < 100: the casts are exact.
        NaiveDate::from_ymd_opt(y as i32, m as u32, d as u32)
            .ok_or_else(|| format!("{y:04}-{m:02}-{d:02} is not a date"))
    }

    /// `H[H]:MM[:SS[.FRACTION]]`: nanoseconds after midnight.
    fn time(&mut self) -> Result<i64, String> {
        let what = "a time HH:MM[:SS[.FRACTION]]";
        let (h, _) = self.digits(1, 2, what)?;
        self.expect(b':', what)?;
        let (m, _) = self.digits(2, 2, what)?;
        let mut sec = 0;
        let mut frac_ns = 0;
        if self.eat(b':') {
            sec = self.digits(2, 2, what)?.0;
            if self.eat(b'.') {
                let start = self.pos;
                while self.s.get(self.pos).is_some_and(u8::is_ascii_digit) {
                    self.pos += 1;
                }
                let digits = &self.s[start..self.pos];
                if digits.is_empty() {
                    return Err(self.unexpected("digits after the decimal point"));
                }
                // Nanosecond resolution: the first 9 digits, zero-padded.
                for i in 0..9 {
                    let d = digits.get(i).map_or(0, |b| i64::from(b - b'0'));
                    frac_ns = frac_ns * 10 + d;
                }
            }
        }
        if h > 23 {
            return Err(format!("hour {h} does not exist (00 to 23)"));
        }
        if m > 59 {
            return Err(format!("minute {m} does not exist (00 to 59)"));
        }
        if sec > 59 {
            return Err(format!("second {sec} does not exist (00 to 59; no leap seconds)"));
        }
        // Each below its limit: the sum is below a day.
        let secs = (h * 3600 + m * 60 + sec) as i64;
        Ok(secs * NANOS_PER_SEC + frac_ns)
    }

    /// Optional `[ ](Z|±HH[[:]MM])`: seconds east of UTC.
    fn zone(&mut self) -> Result<Option<i32>, String> {
        let what = "a zone: Z, +HH, +HHMM or +HH:MM";
        let start = self.pos;
        let spaced = self.eat(b' ');
        if self.eat(b'Z') || self.eat(b'z') {
            return Ok(Some(0));
        }
        let sign = if self.eat(b'+') {
            1
        } else if self.eat(b'-') {
            -1
        } else if spaced {
            return Err(self.unexpected(what));
        } else {
            self.pos = start;
            return Ok(None);
        };
        let (hm, n) = self.digits(2, 4, what)?;
        let (h, m) = match n {
            // ±HHMM
            4 => (hm / 100, hm % 100),
            // ±HH or ±HH:MM
            2 if self.eat(b':') => (hm, self.digits(2, 2, what)?.0),
            2 => (hm, 0),
            _ => return Err(self.unexpected(what)),
        };
        if h > 23 || m > 59 {
            return Err(format!("zone offset {h:02}:{m:02} does not exist (up to 23:59)"));
        }
        // h ≤ 23, m ≤ 59: fits easily.
        Ok(Some(sign * (h as i32 * 3600 + m as i32 * 60)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = NANOS_PER_SEC;
    const H: i64 = 3_600 * S;
    /// 2026-04-14T10:00:00Z
    const T0: i64 = 1_776_160_800_000_000_000;

    fn tod(nanos: i64, utc_offset_s: i32) -> TimeBound {
        TimeBound::TimeOfDay { nanos, utc_offset_s }
    }

    #[test]
    fn accepted() {
        use TimeBound::Wall;
        for (input, want) in [
            // as DuckDB prints TIMESTAMP (UTC)
            ("2026-04-14 10:00:00", Wall(T0)),
            ("2026-04-14 10:00:00.123456", Wall(T0 + 123_456_000)),
            ("2026-04-14 10:00:00.1", Wall(T0 + S / 10)),
            ("2026-04-14 10:00:00.000000001", Wall(T0 + 1)),
            ("2026-04-14 10:00:00.0000000019", Wall(T0 + 1)),
            ("2026-04-14 10:00", Wall(T0)),
            ("2026-04-14 9:00", Wall(T0 - H)),
            ("2026-04-14", Wall(T0 - 10 * H)),
            // as DuckDB prints TIMESTAMPTZ
            ("2026-04-14 12:00:00+02", Wall(T0)),
            ("2026-04-14 12:00:00.5+02", Wall(T0 + S / 2)),
            // RFC 3339 and near it
            ("2026-04-14T10:00:00Z", Wall(T0)),
            ("2026-04-14t10:00:00z", Wall(T0)),
            ("2026-04-14T10:00:00", Wall(T0)),
            ("2026-04-14 10:00:00Z", Wall(T0)),
            ("2026-04-14T12:00:00+02:00", Wall(T0)),
            ("2026-04-14T12:00:00.000000001+02:00", Wall(T0 + 1)),
            ("2026-04-14 12:00:00+0200", Wall(T0)),
            ("2026-04-14 12:00:00 +02:00", Wall(T0)),
            ("2026-04-14 10:00:00 Z", Wall(T0)),
            ("2026-04-14 05:30:00-04:30", Wall(T0)),
            ("2026-04-14 00:00-10", Wall(T0)),
            ("2026-04-15 09:59:59.999999999+23:59", Wall(T0 + 60 * S - 1)),
            // calendar
            ("2024-02-29 00:00:00", Wall(1_709_164_800 * S)),
            ("2000-02-29", Wall(951_782_400 * S)),
            ("1970-01-01 00:00:00", Wall(0)),
            ("1969-12-31 23:59:59.999999999", Wall(-1)),
            // the ends of the range
            ("1677-09-21 00:12:43.145224192", Wall(i64::MIN)),
            ("2262-04-11 23:47:16.854775807", Wall(i64::MAX)),
            ("2262-04-11 23:47:16.854775807Z", Wall(i64::MAX)),
            ("1677-09-21 01:12:43.145224192+01:00", Wall(i64::MIN)),
            // times of day
            ("10:00", tod(10 * H, 0)),
            ("9:30", tod(9 * H + 30 * 60 * S, 0)),
            ("09:30:15", tod(9 * H + (30 * 60 + 15) * S, 0)),
            ("10:00:00.25", tod(10 * H + S / 4, 0)),
            ("00:00", tod(0, 0)),
            ("23:59:59.999999999", tod(24 * H - 1, 0)),
            ("10:00Z", tod(10 * H, 0)),
            ("12:00+02:00", tod(12 * H, 7_200)),
            ("12:00:00+02", tod(12 * H, 7_200)),
            ("05:30 -0430", tod(5 * H + 30 * 60 * S, -16_200)),
        ] {
            assert_eq!(parse(input), Ok(want), "{input:?}");
        }
    }

    #[test]
    fn rejected() {
        for (input, needle) in [
            ("", "empty"),
            ("yesterday", "expected a time"),
            ("10", "expected a time"),
            ("123:00", "expected a time"),
            ("10:0", "expected a time"),
            ("10:000", "expected a time"),
            ("10.5:00", "expected a time"),
            ("10:00:0", "expected a time"),
            ("10:00:00.", "digits after the decimal point"),
            ("10:00:00.5.5", "expected the end"),
            ("10:00 junk", "expected a zone"),
            ("10:00:00Z junk", "expected the end"),
            ("24:00", "hour 24"),
            ("10:60", "minute 60"),
            ("23:59:60", "second 60"),
            ("10:00+24:00", "zone offset 24:00"),
            ("10:00+02:60", "zone offset 02:60"),
            ("10:00+2", "expected a zone"),
            ("10:00+02:", "expected a zone"),
            ("10:00+02:0", "expected a zone"),
            ("10:00+020", "expected a zone"),
            ("10:00 UTC", "expected a zone"),
            ("2026-13-01 00:00:00", "month 13"),
            ("2026-00-10 10:00", "month 00"),
            ("2026-02-29 00:00:00", "2026-02-29 is not a date"),
            ("2026-04-31 10:00", "2026-04-31 is not a date"),
            ("2026-04-00", "2026-04-00 is not a date"),
            ("2026-4-14 10:00", "expected a date"),
            ("2026-04-4 10:00", "expected a date"),
            ("20260-04-14", "expected a date"),
            ("2026-04-14  10:00", "expected a time"),
            ("2026-04-14T", "expected a time"),
            ("2026-04-14 10", "expected a time"),
            ("2026-04-14_10:00", "a space or T"),
            ("2026-04-14 24:00:00", "hour 24"),
            ("2026-04-14 10:00:60", "second 60"),
            ("1677-09-21 00:12:43.145224191", "out of range"),
            ("2262-04-11 23:47:16.854775808", "out of range"),
            ("2262-04-11 23:47:16.854775807-00:01", "out of range"),
            ("3000-01-01T00:00:00Z", "out of range"),
            ("0000-01-01", "out of range"),
            ("9999-12-31 23:59", "out of range"),
        ] {
            let e = parse(input).expect_err(input);
            assert!(e.contains(needle), "{input:?}: {e}");
            assert!(!e.contains('\n'), "{input:?}: {e}");
        }
    }
}
