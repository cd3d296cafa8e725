//! `analyze --version`: the package version, the git commit it was built
//! from (embedded by build.rs) and the file schema versions it reads, all
//! taken from their sources of truth (Cargo.toml, git, the format crate).

use std::sync::LazyLock;

use deeptcp_format::schema::{MIN_SCHEMA_VERSION, SCHEMA_VERSION};

/// What `--version` prints after `analyze ` (`-V` prints the version alone).
pub fn long_version() -> &'static str {
    static TEXT: LazyLock<String> = LazyLock::new(|| {
        // Recordings and their stacks sidecars share the schema version.
        let read: Vec<String> = (MIN_SCHEMA_VERSION..=SCHEMA_VERSION).map(|v| v.to_string()).collect();
        format!(
            "{} (git {})\nfile schema read: {} (recordings and stacks sidecars)",
            env!("CARGO_PKG_VERSION"),
            deeptcp_cli::GIT_COMMIT,
            read.join(", "),
        )
    });
    TEXT.as_str()
}
