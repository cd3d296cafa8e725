//! Text helpers shared by every view: control-character escaping (text
//! from a recording is data, never terminal commands), seconds with six
//! decimals, and decimal integers without `core::fmt` (the hot path of a
//! table line).

use std::borrow::Cow;

/// Appends `s` with its control characters escaped as Rust writes them
/// (`\u{1b}`, `\r`, `\n`, `\u{9b}`). Text from a recording (metadata,
/// task and probe names, stack symbols) and file names are data: written as
/// they are, an `ESC [2J` would clear the terminal, an OSC sequence set its
/// title, a CR overwrite the line, a newline forge one. Control characters
/// are C0, DEL and C1 (`char::is_control`), everything a terminal acts on;
/// other characters, spaces and non-ASCII text included, stay as they are.
pub fn push_sanitized(line: &mut String, s: &str) {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        line.push_str(s); // printable ASCII: nothing to escape
        return;
    }
    for c in s.chars() {
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
}

/// `s` escaped like [`push_sanitized`] (borrowed when there is nothing to escape).
pub fn sanitized(s: &str) -> Cow<'_, str> {
    if s.chars().any(char::is_control) {
        let mut out = String::with_capacity(s.len() + 8);
        push_sanitized(&mut out, s);
        Cow::Owned(out)
    } else {
        Cow::Borrowed(s)
    }
}

/// Formats `delta_ns` nanoseconds as seconds with 6 decimals, rounded to the
/// nearest microsecond (half away from zero), like printf's `%.6f`.
///
/// Negative values keep their minus sign (also when they round to zero:
/// `-0.000000` still says "before the reference"), they are never clamped.
pub fn seconds_6(delta_ns: i128) -> String {
    let mut s = String::with_capacity(24);
    push_seconds_6(&mut s, delta_ns);
    s
}

/// [`seconds_6`], appended to `line` (no allocation).
pub fn push_seconds_6(line: &mut String, delta_ns: i128) {
    if delta_ns < 0 {
        line.push('-');
    }
    let us = (delta_ns.unsigned_abs() + 500) / 1_000;
    let (whole, frac) = (us / 1_000_000, (us % 1_000_000) as u64);
    match u64::try_from(whole) {
        Ok(w) => push_u64(line, w),
        Err(_) => {
            use std::fmt::Write as _;
            let _ = write!(line, "{whole}"); // writing to a String cannot fail
        }
    }
    line.push('.');
    let mut digits = [b'0'; 6];
    let mut f = frac;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (f % 10) as u8;
        f /= 10;
    }
    push_ascii(line, &digits);
}

/// Appends `n` in decimal, as `{}` formats it (without going through
/// `core::fmt`, which costs more than the rest of a table line).
pub fn push_u64(line: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    push_ascii(line, &buf[i..]);
}

/// Appends ASCII digits.
fn push_ascii(line: &mut String, bytes: &[u8]) {
    // Digits are always UTF-8; nothing else is passed here.
    if let Ok(s) = std::str::from_utf8(bytes) {
        line.push_str(s);
    }
}

/// Nanoseconds from `from` to `to`, exact for every pair of `i64`.
pub fn delta_ns(from: i64, to: i64) -> i128 {
    i128::from(to) - i128::from(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_formatting() {
        assert_eq!(seconds_6(0), "0.000000");
        assert_eq!(seconds_6(1), "0.000000");
        assert_eq!(seconds_6(499), "0.000000");
        assert_eq!(seconds_6(500), "0.000001");
        assert_eq!(seconds_6(1_000), "0.000001");
        assert_eq!(seconds_6(1_234_567_890), "1.234568");
        assert_eq!(seconds_6(999_999_500), "1.000000");
        assert_eq!(seconds_6(3_600_000_000_000), "3600.000000");
    }

    #[test]
    fn negative_seconds_keep_their_sign() {
        assert_eq!(seconds_6(-1_500_000), "-0.001500");
        assert_eq!(seconds_6(-2_000_000_001), "-2.000000");
        assert_eq!(seconds_6(-400), "-0.000000");
    }

    #[test]
    fn decimal_digits_like_display() {
        for n in [0u64, 1, 9, 10, 99, 100, 12345, u64::from(u32::MAX), u64::MAX] {
            let mut s = String::from("x");
            push_u64(&mut s, n);
            assert_eq!(s, format!("x{n}"));
        }
        let mut s = String::new();
        push_seconds_6(&mut s, 1_234_567_890);
        assert_eq!(s, "1.234568");
    }

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(sanitized("Web Content"), "Web Content");
        assert!(matches!(sanitized("été ✓"), Cow::Borrowed(_)));
        assert_eq!(
            sanitized("a\x1b[2J\x1b]0;t\x07\r\n\t\u{9b}\x7f\0z"),
            r"a\u{1b}[2J\u{1b}]0;t\u{7}\r\n\t\u{9b}\u{7f}\u{0}z"
        );
        let mut l = String::from(">");
        push_sanitized(&mut l, "x\u{85}");
        assert_eq!(l, r">x\u{85}");
    }

    #[test]
    fn extreme_deltas_do_not_overflow() {
        let d = delta_ns(i64::MIN, i64::MAX);
        assert_eq!(d, u64::MAX as i128);
        assert_eq!(seconds_6(d), "18446744073.709552");
        assert_eq!(seconds_6(delta_ns(i64::MAX, i64::MIN)), "-18446744073.709552");
    }
}
