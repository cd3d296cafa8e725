//! Says exactly which privilege is missing before anything is loaded.

/// CAP_PERFMON and CAP_BPF bit numbers (linux/capability.h).
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;
const CAP_SYS_ADMIN: u32 = 21;

/// Parses `CapEff:` from /proc/self/status text.
fn effective_caps(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
}

/// The capabilities needed to load tracing programs that are missing, by name.
pub fn missing(status: &str) -> Vec<&'static str> {
    let caps = effective_caps(status).unwrap_or(0);
    let has = |c: u32| caps & (1u64 << c) != 0;
    if has(CAP_SYS_ADMIN) {
        return Vec::new();
    }
    let mut out = Vec::new();
    if !has(CAP_BPF) {
        out.push("CAP_BPF");
    }
    if !has(CAP_PERFMON) {
        out.push("CAP_PERFMON");
    }
    out
}

pub fn check() -> anyhow::Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let missing = missing(&status);
    if !missing.is_empty() {
        anyhow::bail!(
            "recording needs root or the capabilities CAP_BPF and CAP_PERFMON; missing: {} (try sudo)",
            missing.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_missing_capabilities() {
        assert_eq!(missing("CapEff:\t000001ffffffffff\n"), Vec::<&str>::new());
        assert_eq!(missing("CapEff:\t0000000000000000\n"), vec!["CAP_BPF", "CAP_PERFMON"]);
        assert_eq!(
            missing(&format!("CapEff:\t{:016x}\n", 1u64 << CAP_BPF)),
            vec!["CAP_PERFMON"]
        );
        assert_eq!(
            missing(&format!("CapEff:\t{:016x}\n", 1u64 << CAP_SYS_ADMIN)),
            Vec::<&str>::new()
        );
        assert_eq!(missing("garbage"), vec!["CAP_BPF", "CAP_PERFMON"]);
    }
}
