//! Command-line plumbing that `record` and `analyze` share, so the two
//! binaries cannot drift apart in how they are packaged (as ripgrep keeps
//! its in `grep-cli`): the hidden `--generate` for man pages and shell
//! completions, the git commit a build came from (for `--version`), and
//! stop signals as a flag (both end their work cleanly on Ctrl-C).
//! Nothing here knows about TCP, eBPF or the file format.

pub mod generate;
pub mod signals;

/// The git commit this build came from: the short hash, `-dirty` when
/// tracked files had changes, `unknown` outside a git checkout (build.rs).
pub const GIT_COMMIT: &str = env!("DEEPTCP_GIT_COMMIT");
