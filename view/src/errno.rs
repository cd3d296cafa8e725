//! Linux errno names for the `SOCK_ERR` column.
//!
//! Recordings store `sk_err` as the kernel's positive errno number, which is
//! portable data but unreadable in a table; this module turns it into the
//! symbolic name (`ECONNREFUSED`) users know from `errno(3)`. It is a fixed
//! table of the Linux generic ABI (x86, arm64, riscv, …: `asm-generic/errno*.h`)
//! rather than a libc lookup, because `analyze` may replay a recording on a
//! machine (or OS) other than the one that made it.

/// `NAMES[n]` is the name of errno `n`; `None` for numbers Linux leaves unused
/// (0, 41 and 58, whose old names are aliases of other errnos).
const NAMES: [Option<&str>; 134] = [
    None,                    // 0 (no error)
    Some("EPERM"),           // 1
    Some("ENOENT"),          // 2
    Some("ESRCH"),           // 3
    Some("EINTR"),           // 4
    Some("EIO"),             // 5
    Some("ENXIO"),           // 6
    Some("E2BIG"),           // 7
    Some("ENOEXEC"),         // 8
    Some("EBADF"),           // 9
    Some("ECHILD"),          // 10
    Some("EAGAIN"),          // 11
    Some("ENOMEM"),          // 12
    Some("EACCES"),          // 13
    Some("EFAULT"),          // 14
    Some("ENOTBLK"),         // 15
    Some("EBUSY"),           // 16
    Some("EEXIST"),          // 17
    Some("EXDEV"),           // 18
    Some("ENODEV"),          // 19
    Some("ENOTDIR"),         // 20
    Some("EISDIR"),          // 21
    Some("EINVAL"),          // 22
    Some("ENFILE"),          // 23
    Some("EMFILE"),          // 24
    Some("ENOTTY"),          // 25
    Some("ETXTBSY"),         // 26
    Some("EFBIG"),           // 27
    Some("ENOSPC"),          // 28
    Some("ESPIPE"),          // 29
    Some("EROFS"),           // 30
    Some("EMLINK"),          // 31
    Some("EPIPE"),           // 32
    Some("EDOM"),            // 33
    Some("ERANGE"),          // 34
    Some("EDEADLK"),         // 35
    Some("ENAMETOOLONG"),    // 36
    Some("ENOLCK"),          // 37
    Some("ENOSYS"),          // 38
    Some("ENOTEMPTY"),       // 39
    Some("ELOOP"),           // 40
    None,                    // 41 (unused by Linux)
    Some("ENOMSG"),          // 42
    Some("EIDRM"),           // 43
    Some("ECHRNG"),          // 44
    Some("EL2NSYNC"),        // 45
    Some("EL3HLT"),          // 46
    Some("EL3RST"),          // 47
    Some("ELNRNG"),          // 48
    Some("EUNATCH"),         // 49
    Some("ENOCSI"),          // 50
    Some("EL2HLT"),          // 51
    Some("EBADE"),           // 52
    Some("EBADR"),           // 53
    Some("EXFULL"),          // 54
    Some("ENOANO"),          // 55
    Some("EBADRQC"),         // 56
    Some("EBADSLT"),         // 57
    None,                    // 58 (unused by Linux)
    Some("EBFONT"),          // 59
    Some("ENOSTR"),          // 60
    Some("ENODATA"),         // 61
    Some("ETIME"),           // 62
    Some("ENOSR"),           // 63
    Some("ENONET"),          // 64
    Some("ENOPKG"),          // 65
    Some("EREMOTE"),         // 66
    Some("ENOLINK"),         // 67
    Some("EADV"),            // 68
    Some("ESRMNT"),          // 69
    Some("ECOMM"),           // 70
    Some("EPROTO"),          // 71
    Some("EMULTIHOP"),       // 72
    Some("EDOTDOT"),         // 73
    Some("EBADMSG"),         // 74
    Some("EOVERFLOW"),       // 75
    Some("ENOTUNIQ"),        // 76
    Some("EBADFD"),          // 77
    Some("EREMCHG"),         // 78
    Some("ELIBACC"),         // 79
    Some("ELIBBAD"),         // 80
    Some("ELIBSCN"),         // 81
    Some("ELIBMAX"),         // 82
    Some("ELIBEXEC"),        // 83
    Some("EILSEQ"),          // 84
    Some("ERESTART"),        // 85
    Some("ESTRPIPE"),        // 86
    Some("EUSERS"),          // 87
    Some("ENOTSOCK"),        // 88
    Some("EDESTADDRREQ"),    // 89
    Some("EMSGSIZE"),        // 90
    Some("EPROTOTYPE"),      // 91
    Some("ENOPROTOOPT"),     // 92
    Some("EPROTONOSUPPORT"), // 93
    Some("ESOCKTNOSUPPORT"), // 94
    Some("EOPNOTSUPP"),      // 95
    Some("EPFNOSUPPORT"),    // 96
    Some("EAFNOSUPPORT"),    // 97
    Some("EADDRINUSE"),      // 98
    Some("EADDRNOTAVAIL"),   // 99
    Some("ENETDOWN"),        // 100
    Some("ENETUNREACH"),     // 101
    Some("ENETRESET"),       // 102
    Some("ECONNABORTED"),    // 103
    Some("ECONNRESET"),      // 104
    Some("ENOBUFS"),         // 105
    Some("EISCONN"),         // 106
    Some("ENOTCONN"),        // 107
    Some("ESHUTDOWN"),       // 108
    Some("ETOOMANYREFS"),    // 109
    Some("ETIMEDOUT"),       // 110
    Some("ECONNREFUSED"),    // 111
    Some("EHOSTDOWN"),       // 112
    Some("EHOSTUNREACH"),    // 113
    Some("EALREADY"),        // 114
    Some("EINPROGRESS"),     // 115
    Some("ESTALE"),          // 116
    Some("EUCLEAN"),         // 117
    Some("ENOTNAM"),         // 118
    Some("ENAVAIL"),         // 119
    Some("EISNAM"),          // 120
    Some("EREMOTEIO"),       // 121
    Some("EDQUOT"),          // 122
    Some("ENOMEDIUM"),       // 123
    Some("EMEDIUMTYPE"),     // 124
    Some("ECANCELED"),       // 125
    Some("ENOKEY"),          // 126
    Some("EKEYEXPIRED"),     // 127
    Some("EKEYREVOKED"),     // 128
    Some("EKEYREJECTED"),    // 129
    Some("EOWNERDEAD"),      // 130
    Some("ENOTRECOVERABLE"), // 131
    Some("ERFKILL"),         // 132
    Some("EHWPOISON"),       // 133
];

/// Largest errno number in the table.
const MAX_ERRNO: i32 = 133;
/// Characters of the longest name (`ENOTRECOVERABLE`), and of the longest
/// number printed for an errno without one (`-2147483648` is shorter).
pub const LONGEST: usize = 15;
const _: () = assert!(NAMES.len() == MAX_ERRNO as usize + 1);

/// Symbolic name of a Linux errno, e.g. `111` → `ECONNREFUSED`.
/// `None` for 0, negative numbers, gaps and numbers above [`MAX_ERRNO`].
pub fn name(errno: i32) -> Option<&'static str> {
    usize::try_from(errno)
        .ok()
        .and_then(|i| NAMES.get(i).copied().flatten())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_errors_used_by_tcp() {
        assert_eq!(name(111), Some("ECONNREFUSED"));
        assert_eq!(name(104), Some("ECONNRESET"));
        assert_eq!(name(110), Some("ETIMEDOUT"));
        assert_eq!(name(32), Some("EPIPE"));
        assert_eq!(name(113), Some("EHOSTUNREACH"));
        assert_eq!(name(101), Some("ENETUNREACH"));
        assert_eq!(name(103), Some("ECONNABORTED"));
        assert_eq!(name(112), Some("EHOSTDOWN"));
        assert_eq!(name(105), Some("ENOBUFS"));
        assert_eq!(name(71), Some("EPROTO"));
    }

    #[test]
    fn ends_and_gaps() {
        assert_eq!(name(1), Some("EPERM"));
        assert_eq!(name(MAX_ERRNO), Some("EHWPOISON"));
        assert_eq!(name(0), None);
        assert_eq!(name(41), None);
        assert_eq!(name(58), None);
        assert_eq!(name(MAX_ERRNO + 1), None);
        assert_eq!(name(-111), None);
        assert_eq!(name(i32::MAX), None);
        assert_eq!(name(i32::MIN), None);
    }

    #[test]
    fn every_name_is_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for n in 1..=MAX_ERRNO {
            if let Some(s) = name(n) {
                assert!(
                    s.starts_with('E') && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
                    "{s}"
                );
                assert!(seen.insert(s), "duplicate {s}");
            }
        }
        assert_eq!(seen.len(), 131);
        assert_eq!(seen.iter().map(|s| s.len()).max(), Some(LONGEST));
        assert!(i32::MIN.to_string().len() <= LONGEST);
    }

    /// Cross-checks the table against the kernel headers when they are
    /// installed (Linux with linux-libc-dev); silently passes elsewhere.
    #[test]
    fn matches_installed_kernel_headers() {
        let mut checked = 0;
        for file in [
            "/usr/include/asm-generic/errno-base.h",
            "/usr/include/asm-generic/errno.h",
        ] {
            let Ok(text) = std::fs::read_to_string(file) else {
                continue;
            };
            for line in text.lines() {
                let mut words = line.split_whitespace();
                if words.next() != Some("#define") {
                    continue;
                }
                let (Some(sym), Some(num)) = (words.next(), words.next()) else {
                    continue;
                };
                let Ok(num) = num.parse::<i32>() else {
                    continue;
                }; // aliases
                assert_eq!(name(num), Some(sym), "errno {num}");
                checked += 1;
            }
        }
        assert!(checked == 0 || checked == 131, "checked {checked}");
    }
}
