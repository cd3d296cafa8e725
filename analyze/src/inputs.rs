//! Turning the INPUT arguments into a list of recordings.
//!
//! An input is a file, a directory (its `*.parquet` files, not recursively,
//! without `*.stacks.parquet` sidecars and hidden `.name` files, which are
//! in-progress or editor files), or a glob (`*`, `?`, `[abc]`, `[a-z]`,
//! `[!x]` in any path component; quoted so that analyze, not the shell,
//! expands it — also the way past the shell's argument-length limit).
//! A recording rotated into segments (`trace-000001.parquet`, ...) can be
//! named as `trace.parquet`. Sidecars and hidden files found by a directory
//! or a glob are skipped; the same file named twice is read once.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Expands `inputs` into recording paths, in argument order; within one
/// directory or glob, sorted by name.
pub fn expand(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for input in inputs {
        let found = expand_one(input)?;
        for p in found {
            let id = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
            if seen.insert(id) {
                out.push(p);
            }
        }
    }
    Ok(out)
}

fn expand_one(input: &Path) -> Result<Vec<PathBuf>> {
    let text = input.to_string_lossy();
    if !input.exists() && has_glob_chars(&text) {
        let mut found: Vec<PathBuf> = glob(input)?
            .into_iter()
            .filter(|p| p.is_dir() || is_recording_name(p))
            .collect();
        if found.is_empty() {
            bail!("no recording matches {}", input.display());
        }
        found.sort();
        let mut out = Vec::new();
        for p in found {
            if p.is_dir() {
                out.extend(dir_recordings(&p)?);
            } else {
                out.push(p);
            }
        }
        return Ok(out);
    }
    if !input.exists() {
        // A recording rotated by `record --rotate-*`: trace.parquet is
        // trace-000001.parquet, trace-000002.parquet, ...
        let segments = deeptcp_format::segments(input);
        if !segments.is_empty() {
            return Ok(segments);
        }
    }
    let md = std::fs::metadata(input).with_context(|| format!("cannot open {}", input.display()))?;
    if md.is_dir() {
        let found = dir_recordings(input)?;
        if found.is_empty() {
            bail!(
                "{} is a directory without recordings (no *.parquet files other than *.stacks.parquet)",
                input.display()
            );
        }
        return Ok(found);
    }
    Ok(vec![input.to_path_buf()])
}

/// `*.parquet`, not `*.stacks.parquet`, not hidden.
fn is_recording_name(p: &Path) -> bool {
    let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    name.ends_with(".parquet") && !name.ends_with(".stacks.parquet") && !name.starts_with('.')
}

/// The recordings directly in `dir`, sorted by name.
fn dir_recordings(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    let mut out = Vec::new();
    for e in entries {
        let e = e.with_context(|| format!("cannot list {}", dir.display()))?;
        let p = e.path();
        if is_recording_name(&p) && p.is_file() {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

fn has_glob_chars(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Paths matching `pattern`, component by component (no `**`).
fn glob(pattern: &Path) -> Result<Vec<PathBuf>> {
    let mut current: Vec<PathBuf> = vec![PathBuf::new()];
    for comp in pattern.components() {
        let next_is_pattern = matches!(comp, Component::Normal(c) if has_glob_chars(&c.to_string_lossy()));
        let mut next = Vec::new();
        for base in &current {
            match comp {
                Component::Normal(c) if next_is_pattern => {
                    let pat: Vec<char> = c.to_string_lossy().chars().collect();
                    let dir = if base.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        base.as_path()
                    };
                    let Ok(entries) = std::fs::read_dir(dir) else {
                        continue;
                    };
                    for e in entries.flatten() {
                        let name = e.file_name();
                        let name = name.to_string_lossy();
                        // Like the shell: `*` does not match a leading dot.
                        if name.starts_with('.') && pat.first() != Some(&'.') {
                            continue;
                        }
                        let chars: Vec<char> = name.chars().collect();
                        if glob_match(&pat, &chars) {
                            next.push(base.join(e.file_name()));
                        }
                    }
                }
                other => {
                    let p = base.join(other.as_os_str());
                    if base.as_os_str().is_empty() || p.exists() {
                        next.push(p);
                    }
                }
            }
        }
        current = next;
        if current.is_empty() {
            break;
        }
    }
    Ok(current.into_iter().filter(|p| p.exists()).collect())
}

/// Shell-style match of one path component.
fn glob_match(pat: &[char], name: &[char]) -> bool {
    // Iterative matcher with backtracking to the last `*`.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pat.len() {
            match pat[p] {
                '*' => {
                    star = Some((p, n));
                    p += 1;
                    continue;
                }
                '?' => {
                    p += 1;
                    n += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, len)) = class_match(&pat[p..], name[n]) {
                        if matched {
                            p += len;
                            n += 1;
                            continue;
                        }
                    } else if name[n] == '[' {
                        // An unclosed `[` is literal.
                        p += 1;
                        n += 1;
                        continue;
                    }
                }
                c if c == name[n] => {
                    p += 1;
                    n += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sn)) => {
                p = sp + 1;
                n = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    pat[p..].iter().all(|&c| c == '*')
}

/// Matches `c` against the class at the start of `pat` (`[...]`); returns
/// (matched, length of the class in `pat`), or `None` when unclosed.
fn class_match(pat: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(pat.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < pat.len() {
        let a = pat[i];
        if a == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if pat.get(i + 1) == Some(&'-') && pat.get(i + 2).is_some_and(|&b| b != ']') {
            let b = pat[i + 2];
            if a <= c && c <= b {
                matched = true;
            }
            i += 3;
        } else {
            if a == c {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, n: &str) -> bool {
        glob_match(&p.chars().collect::<Vec<_>>(), &n.chars().collect::<Vec<_>>())
    }

    #[test]
    fn matcher() {
        assert!(m("*.parquet", "a.parquet"));
        assert!(m("*.parquet", ".parquet"));
        assert!(!m("*.parquet", "a.parquetx"));
        assert!(m("web?.parquet", "web1.parquet"));
        assert!(!m("web?.parquet", "web10.parquet"));
        assert!(m("web[0-9]*", "web7-x"));
        assert!(!m("web[!0-9]*", "web7-x"));
        assert!(m("web[!0-9]*", "weba"));
        assert!(m("[]a]", "]"));
        assert!(m("a[b", "a[b"));
        assert!(m("*a*b*c", "xxaxxbxxc"));
        assert!(!m("*a*b*c", "xxaxxbxx"));
        assert!(m("**", ""));
        assert!(m("é*", "été"));
    }

    fn touch(p: &Path) {
        std::fs::write(p, b"").unwrap();
    }

    fn names(v: &[PathBuf]) -> Vec<String> {
        v.iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn directories_globs_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for n in [
            "b.parquet",
            "a.parquet",
            "a.stacks.parquet",
            ".hidden.parquet",
            "notes.txt",
        ] {
            touch(&d.join(n));
        }
        std::fs::create_dir(d.join("sub")).unwrap();
        touch(&d.join("sub/c.parquet"));

        assert_eq!(names(&expand(&[d.to_path_buf()]).unwrap()), ["a.parquet", "b.parquet"]);
        assert_eq!(
            names(&expand(&[d.join("*.parquet")]).unwrap()),
            ["a.parquet", "b.parquet"]
        );
        assert_eq!(names(&expand(&[d.join("*/*.parquet")]).unwrap()), ["c.parquet"]);
        assert_eq!(names(&expand(&[d.join("s*")]).unwrap()), ["c.parquet"]);
        // Explicit files are taken as given, once.
        let v = expand(&[d.join("b.parquet"), d.to_path_buf(), d.join("notes.txt")]).unwrap();
        assert_eq!(names(&v), ["b.parquet", "a.parquet", "notes.txt"]);

        let e = expand(&[d.join("z*.parquet")]).unwrap_err();
        assert!(e.to_string().contains("no recording matches"), "{e}");
        let empty = d.join("sub2");
        std::fs::create_dir(&empty).unwrap();
        let e = expand(&[empty]).unwrap_err();
        assert!(e.to_string().contains("is a directory without recordings"), "{e}");
        // Rotated segments, by the recording's name.
        touch(&d.join("sub/rot-000002.parquet"));
        touch(&d.join("sub/rot-000001.parquet"));
        assert_eq!(
            names(&expand(&[d.join("sub/rot.parquet")]).unwrap()),
            ["rot-000001.parquet", "rot-000002.parquet"]
        );
        let e = expand(&[d.join("missing.parquet")]).unwrap_err();
        assert!(format!("{e:#}").contains("missing.parquet"), "{e:#}");
    }
}
