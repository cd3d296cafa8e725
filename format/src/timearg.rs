//! Durations as people type them on the command line: `30` (seconds), `30s`,
//! `1.5m`, `2h`, `250ms`, `1h30m`.
//!
//! Both tools take durations (`record --duration`, `--flush-interval`,
//! `--rotate-secs`, `--status-interval`; `analyze --since/--until +OFFSET`).
//! This module is their one parser, so that the two accept exactly the same
//! forms and reject a bad value with the same one-line message naming them.
//! It lives in the format crate because that is the crate both binaries
//! share; it is plain `std`.
//!
//! The grammar ([`parse_duration`]):
//!
//! - a bare number is seconds: `30`, `1.5`, `.25`;
//! - otherwise one or more `NUMBER UNIT` parts with no space between them,
//!   units from largest to smallest, each at most once: `2h`, `250ms`,
//!   `1h30m`, `1m0.5s`. Units: `h`, `m` (or `min`), `s`, `ms`, `us` (or
//!   `µs`), `ns` (lowercase only: `1M` is not a minute or a month);
//! - a `NUMBER` is decimal digits with at most one `.` (`1.5`, `.5`, `2.`);
//!   no sign, no exponent, no `inf`/`nan`.
//!
//! Arithmetic is exact decimal to the nanosecond (no floating point);
//! fractions of a nanosecond are dropped. Zero is a valid duration here:
//! callers that need a positive one check. Nothing panics: a value larger
//! than [`MAX_NANOS`] is [`DurationError::TooLarge`].

use std::time::Duration;

/// The forms named in every error message.
pub const DURATION_FORMS: &str = "30 (seconds), 30s, 1.5m, 2h, 250ms or 1h30m";

/// Largest duration accepted: `u64::MAX` nanoseconds (about 584 years), so
/// that every accepted value also fits a `u64` count of nanoseconds.
pub const MAX_NANOS: u64 = u64::MAX;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Why a string is not a duration. The messages are one line and name the
/// accepted forms, to be shown after clap's `invalid value '…' for '--…'`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not of the grammar at all (empty, stray characters, a sign, `inf`).
    #[error("expected a duration: {forms}", forms = DURATION_FORMS)]
    Syntax,
    /// A number followed by something that is not a unit.
    #[error("unknown unit {0:?} (units: h, m, s, ms, us, ns); expected a duration: {forms}", forms = DURATION_FORMS)]
    UnknownUnit(String),
    /// A number without a unit after a part with one (`1h30`).
    #[error("missing unit after {0:?} (only a lone number means seconds); expected a duration: {forms}", forms = DURATION_FORMS)]
    MissingUnit(String),
    /// `30m1h`, `1s1s`.
    #[error("units must go from largest to smallest, each at most once (1h30m, not 30m1h)")]
    UnitOrder,
    /// `-5s`.
    #[error("a duration cannot be negative; expected a duration: {forms}", forms = DURATION_FORMS)]
    Negative,
    /// More than [`MAX_NANOS`].
    #[error("duration too large (at most 584 years)")]
    TooLarge,
}

/// One unit: how it is written and its length in nanoseconds, largest first.
const UNITS: &[(&[&str], u128)] = &[
    (&["h"], 3_600 * NANOS_PER_SEC),
    (&["m", "min"], 60 * NANOS_PER_SEC),
    (&["s"], NANOS_PER_SEC),
    (&["ms"], 1_000_000),
    // MICRO SIGN and GREEK SMALL LETTER MU look the same; accept both.
    (&["us", "\u{b5}s", "\u{3bc}s"], 1_000),
    (&["ns"], 1),
];

/// Index of seconds in [`UNITS`]: the unit of a lone number.
const SECONDS: usize = 2;

/// Parses a duration (see the [module documentation](self) for the forms).
/// Leading and trailing whitespace is ignored.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let nanos = parse_nanos(s)?;
    // Below 2^64 ns, so the seconds fit a u64 and the rest is < 1e9.
    let secs = u64::try_from(nanos / NANOS_PER_SEC).map_err(|_| DurationError::TooLarge)?;
    let sub = u32::try_from(nanos % NANOS_PER_SEC).map_err(|_| DurationError::TooLarge)?;
    Ok(Duration::new(secs, sub))
}

/// [`parse_duration`] as nanoseconds.
pub fn parse_duration_nanos(s: &str) -> Result<u64, DurationError> {
    u64::try_from(parse_nanos(s)?).map_err(|_| DurationError::TooLarge)
}

fn parse_nanos(s: &str) -> Result<u128, DurationError> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(DurationError::Negative);
    }
    if t.is_empty() {
        return Err(DurationError::Syntax);
    }
    let mut rest = t;
    let mut total: u128 = 0;
    // Index in UNITS of the previous part's unit: the next must be smaller.
    let mut previous: Option<usize> = None;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        if num.is_empty() {
            return Err(DurationError::Syntax);
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let index = if unit.is_empty() {
            if previous.is_some() {
                return Err(DurationError::MissingUnit(num.to_owned()));
            }
            // A lone number: seconds.
            SECONDS
        } else {
            UNITS
                .iter()
                .position(|(names, _)| names.contains(&unit))
                .ok_or_else(|| unknown_unit(unit))?
        };
        if previous.is_some_and(|p| index <= p) {
            return Err(DurationError::UnitOrder);
        }
        previous = Some(index);
        let part = scaled(num, UNITS[index].1)?;
        total = total.checked_add(part).ok_or(DurationError::TooLarge)?;
        rest = next;
    }
    if total > u128::from(MAX_NANOS) {
        return Err(DurationError::TooLarge);
    }
    Ok(total)
}

/// Whatever follows a number and is not a unit. Letters make an unknown
/// unit (`5x`, `5sec`); anything else (`5 s`, `5s+`, `+5`) is not the grammar.
fn unknown_unit(unit: &str) -> DurationError {
    if unit.chars().all(|c| c.is_alphabetic()) {
        DurationError::UnknownUnit(unit.to_owned())
    } else {
        DurationError::Syntax
    }
}

/// `num` (digits, at most one `.`, at least one digit) times `factor`
/// nanoseconds, fractions of a nanosecond dropped.
fn scaled(num: &str, factor: u128) -> Result<u128, DurationError> {
    let (int_s, frac_s) = num.split_once('.').unwrap_or((num, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if (int_s.is_empty() && frac_s.is_empty()) || !digits(int_s) || !digits(frac_s) {
        return Err(DurationError::Syntax);
    }
    let int_s = int_s.trim_start_matches('0');
    // 39 digits overflow a u128; anything with 21 or more is too large anyway.
    if int_s.len() > 30 {
        return Err(DurationError::TooLarge);
    }
    let int: u128 = if int_s.is_empty() {
        0
    } else {
        int_s.parse().map_err(|_| DurationError::TooLarge)?
    };
    let mut total = int.checked_mul(factor).ok_or(DurationError::TooLarge)?;
    // Keep 21 digits: more cannot change the truncated result (the largest
    // factor is 3.6e12 ns) and 10^21 × 3.6e12 still fits a u128.
    let frac_s = &frac_s[..frac_s.len().min(21)];
    if !frac_s.is_empty() {
        let frac: u128 = frac_s.parse().map_err(|_| DurationError::Syntax)?;
        let scale = 10u128.pow(frac_s.len() as u32);
        total = total
            .checked_add(frac * factor / scale)
            .ok_or(DurationError::TooLarge)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: u64 = 1;
    const US: u64 = 1_000;
    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;
    const M: u64 = 60 * S;
    const H: u64 = 60 * M;

    #[test]
    fn accepted_forms() {
        for (input, nanos) in [
            // bare numbers are seconds
            ("30", 30 * S),
            ("0", 0),
            ("1.5", 1_500 * MS),
            (".25", 250 * MS),
            ("2.", 2 * S),
            ("007", 7 * S),
            ("  30  ", 30 * S),
            // one unit
            ("30s", 30 * S),
            ("1.5m", 90 * S),
            ("1.5min", 90 * S),
            ("2h", 2 * H),
            ("250ms", 250 * MS),
            ("100us", 100 * US),
            ("100\u{b5}s", 100 * US),
            ("100\u{3bc}s", 100 * US),
            ("7ns", 7 * NS),
            ("0s", 0),
            ("0.0000000019s", 1),
            ("0.5ns", 0),
            ("1.000000000000000000000001h", H),
            (".5h", 30 * M),
            // compound, largest unit first
            ("1h30m", H + 30 * M),
            ("1h30m15s", H + 30 * M + 15 * S),
            ("1m0.5s", M + 500 * MS),
            ("2s500ms", 2 * S + 500 * MS),
            ("1h1ns", H + 1),
            ("1h2min3s4ms5us6ns", H + 2 * M + 3 * S + 4 * MS + 5 * US + 6),
            // boundaries
            ("18446744073.709551615", u64::MAX),
            ("18446744073709551615ns", u64::MAX),
            ("5124095h34m33.709551615s", u64::MAX),
        ] {
            assert_eq!(parse_duration_nanos(input), Ok(nanos), "{input:?}");
            assert_eq!(
                parse_duration(input),
                Ok(Duration::new(nanos / S, (nanos % S) as u32)),
                "{input:?}"
            );
        }
    }

    #[test]
    fn rejected_forms() {
        use DurationError::*;
        for (input, want) in [
            ("", Syntax),
            ("   ", Syntax),
            ("s", Syntax),
            (".", Syntax),
            (".s", Syntax),
            ("1.2.3s", Syntax),
            ("+5", Syntax),
            ("+5s", Syntax),
            ("5 s", Syntax),
            ("1h 30m", Syntax),
            ("5s+", Syntax),
            ("1e3", UnknownUnit("e".into())),
            ("inf", Syntax),
            ("nan", Syntax),
            ("NaN", Syntax),
            ("5x", UnknownUnit("x".into())),
            ("5sec", UnknownUnit("sec".into())),
            ("5S", UnknownUnit("S".into())),
            ("2d", UnknownUnit("d".into())),
            ("1h30", MissingUnit("30".into())),
            ("30m1h", UnitOrder),
            ("1s1s", UnitOrder),
            ("1m1min", UnitOrder),
            ("-5", Negative),
            ("-5s", Negative),
            (" -0", Negative),
            // boundaries: one nanosecond more than the largest
            ("18446744073.709551616", TooLarge),
            ("18446744073709551616ns", TooLarge),
            ("5124095h34m33.709551616s", TooLarge),
            ("99999999999999999999999999999999999999999h", TooLarge),
            ("340282366920938463463374607431768211456", TooLarge),
        ] {
            assert_eq!(parse_duration(input), Err(want.clone()), "{input:?}");
            assert_eq!(parse_duration_nanos(input), Err(want), "{input:?}");
        }
    }

    #[test]
    fn messages_are_one_line_and_name_the_forms() {
        for input in ["5x", "", "1h30", "-1", "inf"] {
            let msg = parse_duration(input).unwrap_err().to_string();
            assert!(!msg.contains('\n'), "{msg}");
            assert!(msg.contains("30s, 1.5m, 2h, 250ms"), "{input:?}: {msg}");
            assert!(msg.starts_with(|c: char| c.is_lowercase()), "{msg}");
        }
        assert_eq!(
            parse_duration("5x").unwrap_err().to_string(),
            "unknown unit \"x\" (units: h, m, s, ms, us, ns); expected a duration: \
             30 (seconds), 30s, 1.5m, 2h, 250ms or 1h30m"
        );
        assert_eq!(
            parse_duration("bogus").unwrap_err().to_string(),
            "expected a duration: 30 (seconds), 30s, 1.5m, 2h, 250ms or 1h30m"
        );
        assert!(parse_duration("30m1h").unwrap_err().to_string().contains("1h30m"));
        assert!(parse_duration("9999999999999h")
            .unwrap_err()
            .to_string()
            .contains("too large"));
    }
}
