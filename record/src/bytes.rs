//! Byte sizes as record's command line reads them (`--ring-size`,
//! `--rotate-size`) and as its messages print them, in one place.
//!
//! The suffixes are binary (K = 1024) and whole numbers only, as the
//! options' help says. Not the `bytesize` crate: it reads `1K`/`1KB` as
//! 1000, takes fractions and spaces, saturates where this says "too
//! large", and prints GiB where the status line prints MiB; adapting it
//! would change what record accepts and prints.

/// `N`, `NK`, `NM`, and with `giga` `NG` (suffixes in either case): bytes.
pub fn parse(s: &str, giga: bool) -> Result<u64, String> {
    let unit = |c: u8| match c.to_ascii_uppercase() {
        b'K' => Some(1u64 << 10),
        b'M' => Some(1 << 20),
        b'G' if giga => Some(1 << 30),
        _ => None,
    };
    // The suffix is one ASCII letter, so slicing it off stays on a char boundary.
    let (num, mult) = match s.as_bytes().last().and_then(|&c| unit(c)) {
        Some(m) => (&s[..s.len() - 1], m),
        None => (s, 1),
    };
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a size"))?;
    n.checked_mul(mult).ok_or_else(|| format!("`{s}` is too large"))
}

/// `64 MiB`, `1 GiB`, `3 KiB`, `100 bytes`: the largest binary unit that
/// divides `b` exactly (how record repeats a size it was given).
pub fn exact(b: u64) -> String {
    let (n, unit) = match b {
        b if b % (1 << 30) == 0 && b > 0 => (b >> 30, "GiB"),
        b if b % (1 << 20) == 0 && b > 0 => (b >> 20, "MiB"),
        b if b % (1 << 10) == 0 && b > 0 => (b >> 10, "KiB"),
        b => (b, "bytes"),
    };
    format!("{n} {unit}")
}

/// `12.3 MiB`, `4.0 KiB`, `100 B`: a size to one decimal in KiB or MiB
/// (status and summary lines).
pub fn human(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_are_binary_and_whole() {
        assert_eq!(parse("4096", false), Ok(4096));
        assert_eq!(parse("64k", false), Ok(64 << 10));
        assert_eq!(parse("8M", false), Ok(8 << 20));
        assert_eq!(parse("1g", true), Ok(1 << 30));
        assert_eq!(
            parse("1G", false),
            Err("`1G` is not a size".into()),
            "G only where asked for"
        );
        for s in ["", "K", "1.5M", "8MB", "8KiB", "8 M", " 8M", "-1K", "lots"] {
            assert_eq!(parse(s, true), Err(format!("`{s}` is not a size")), "{s:?}");
        }
        assert_eq!(parse("99999999999G", true), Err("`99999999999G` is too large".into()));
        assert!(parse("99999999999999999999", true)
            .unwrap_err()
            .contains("is not a size"));
    }

    #[test]
    fn exact_takes_the_largest_unit_that_divides() {
        assert_eq!(exact(1 << 30), "1 GiB");
        assert_eq!(exact(3 << 30), "3 GiB");
        assert_eq!(exact(64 << 20), "64 MiB");
        assert_eq!(exact(1536 << 10), "1536 KiB");
        assert_eq!(exact(100), "100 bytes");
        assert_eq!(exact(0), "0 bytes");
    }

    #[test]
    fn human_is_kib_or_mib_to_one_decimal() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1024), "1.0 KiB");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(5 << 20), "5.0 MiB");
        assert_eq!(human(1 << 30), "1024.0 MiB");
    }
}
