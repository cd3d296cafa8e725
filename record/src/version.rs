//! `record --version`: the package version, the git commit it was built
//! from, the file schema versions it writes (from the format crate) and
//! whether the eBPF object is built in (all three embedded by build.rs or
//! taken from their source of truth, never restated here).

use std::sync::LazyLock;

use deeptcp_format::SCHEMA_VERSION;

/// What `--version` prints after `record ` (`-V` prints the version alone).
pub fn long_version() -> &'static str {
    static TEXT: LazyLock<String> = LazyLock::new(|| {
        format!(
            "{} (git {})\nfile schema written: events {}, stacks {}\neBPF object: {}",
            env!("CARGO_PKG_VERSION"),
            deeptcp_cli::GIT_COMMIT,
            SCHEMA_VERSION,
            // The stacks sidecar (StackWriter) carries the same version.
            SCHEMA_VERSION,
            env!("DEEPTCP_EBPF_STATUS"),
        )
    });
    TEXT.as_str()
}
