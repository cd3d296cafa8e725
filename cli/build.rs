//! Embeds the git commit `record --version` and `analyze --version` print,
//! as `DEEPTCP_GIT_COMMIT`: the short hash, `-dirty` when tracked files had
//! changes, `unknown` outside a git checkout (e.g. a source tarball) or
//! without git.

use std::path::Path;
use std::process::Command;

/// `git -C dir ARGS`'s trimmed stdout, when it succeeds. `--no-optional-locks`:
/// `git status` must not rewrite the index, which this script watches (cargo
/// would then rerun it on every build).
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("--no-optional-locks")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    out.status.success().then(|| text.trim().to_owned())
}

/// Short hash of HEAD, `-dirty` when tracked files changed, `unknown` when
/// `dir` is not tracked in a git checkout.
fn git_commit(dir: &Path) -> String {
    // Only our own checkout: an unpacked crate may sit inside some other
    // repository (a home directory kept in git) that does not track it.
    let tracked = git(dir, &["ls-files", "--error-unmatch", "Cargo.toml"]).is_some();
    let Some(hash) = git(dir, &["rev-parse", "--short", "HEAD"]).filter(|h| tracked && !h.is_empty()) else {
        return "unknown".to_owned();
    };
    // Rerun when HEAD moves (commit, checkout) or the index changes (add, reset).
    let head_ref = git(dir, &["symbolic-ref", "-q", "HEAD"]);
    for name in ["HEAD", "index", "packed-refs"].into_iter().chain(head_ref.as_deref()) {
        if let Some(path) = git(dir, &["rev-parse", "--git-path", name]) {
            let path = dir.join(path);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    let status = git(dir, &["status", "--porcelain", "--untracked-files=no"]);
    let dirty = status.is_some_and(|s| !s.is_empty());
    format!("{hash}{}", if dirty { "-dirty" } else { "" })
}

fn main() {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default();
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-env=DEEPTCP_GIT_COMMIT={}", git_commit(Path::new(&dir)));
}
