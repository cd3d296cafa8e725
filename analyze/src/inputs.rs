//! Turning the INPUT arguments into a list of recordings.
//!
//! An input is a file, a directory (its `*.parquet` files, not recursively,
//! without `*.stacks.parquet` sidecars and hidden `.name` files, which are
//! in-progress or editor files), or a glob (`*`, `?`, `[abc]`, `[a-z]`,
//! `[!x]`, `{a,b}` in any path component, `**` across them; quoted so that
//! analyze, not the shell, expands it — also the way past the shell's
//! argument-length limit).
//! A recording rotated into segments (`trace-000001.parquet`, ...) can be
//! named as `trace.parquet`. Sidecars and hidden files found by a directory
//! or a glob are skipped; the same file named twice is read once.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use deeptcp_format::paths;
use globset::GlobBuilder;
use walkdir::WalkDir;

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
    name.ends_with(paths::RECORDING_SUFFIX) && !paths::is_stacks_name(name) && !name.starts_with('.')
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
    s.contains(['*', '?', '[', '{'])
}

/// Paths matching `pattern`: `*` and `?` within a path component, `**`
/// across components (`fleet/**/*.parquet`), classes `[a-z]`, `[!x]`,
/// alternatives `{web1,db1}` (globset's syntax). Like the shell, a name
/// starting with `.` matches only a pattern component that starts with one.
/// The literal directory before the first wildcard is where the walk
/// starts; it goes only as deep as the pattern can match.
fn glob(pattern: &Path) -> Result<Vec<PathBuf>> {
    let mut base = PathBuf::new();
    let mut rest: Vec<String> = Vec::new();
    for comp in pattern.components() {
        let text = comp.as_os_str().to_string_lossy();
        if rest.is_empty() && !(matches!(comp, Component::Normal(_)) && has_glob_chars(&text)) {
            base.push(comp.as_os_str());
        } else {
            rest.push(text.into_owned());
        }
    }
    let matcher = GlobBuilder::new(&rest.join("/"))
        .literal_separator(true)
        .build()
        .with_context(|| format!("{} is not a valid glob", pattern.display()))?
        .compile_matcher();
    let deep = rest.iter().any(|c| c.contains("**"));
    let dotted = rest.iter().any(|c| c.starts_with('.') || c.starts_with("{."));
    let root = if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base.clone()
    };
    let walk = WalkDir::new(&root)
        .min_depth(1)
        .max_depth(if deep { usize::MAX } else { rest.len() })
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| dotted || !e.file_name().to_string_lossy().starts_with('.'));
    let mut out = Vec::new();
    for entry in walk.flatten() {
        let Ok(rel) = entry.path().strip_prefix(&root) else {
            continue;
        };
        if matcher.is_match(rel) {
            out.push(base.join(rel));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            names(&expand(&[d.join("{b,sub/c}.parquet")]).unwrap()),
            ["b.parquet", "c.parquet"]
        );
        assert_eq!(names(&expand(&[d.join("[!a].parquet")]).unwrap()), ["b.parquet"]);
        assert_eq!(
            names(&expand(&[d.join("?.parquet")]).unwrap()),
            ["a.parquet", "b.parquet"]
        );
        // Hidden files are never recordings, even when the pattern names them.
        assert!(expand(&[d.join(".*.parquet")]).is_err());
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

    /// `record --hive`'s tree: `**` and a pattern per partition level.
    #[test]
    fn globs_over_partition_folders() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in [
            "host=web1/date=2026-04-14/web1-1.parquet",
            "host=web1/date=2026-04-15/web1-2.parquet",
            "host=db1/date=2026-04-14/db1-1.parquet",
            "host=db1/date=2026-04-14/db1-1.stacks.parquet",
            "host=db1/.tmp/x.parquet",
            "top.parquet",
        ] {
            std::fs::create_dir_all(d.join(f).parent().unwrap()).unwrap();
            touch(&d.join(f));
        }
        let all = ["db1-1.parquet", "web1-1.parquet", "web1-2.parquet"];
        assert_eq!(names(&expand(&[d.join("host=*/date=*/*.parquet")]).unwrap()), all);
        let mut deep = names(&expand(&[d.join("**/*.parquet")]).unwrap());
        deep.sort();
        assert_eq!(
            deep,
            ["db1-1.parquet", "top.parquet", "web1-1.parquet", "web1-2.parquet"],
            "no hidden folder, no sidecar"
        );
        assert_eq!(
            names(&expand(&[d.join("host=*/date=2026-04-14/*.parquet")]).unwrap()),
            ["db1-1.parquet", "web1-1.parquet"]
        );
        assert_eq!(
            names(&expand(&[d.join("host={web1,db1}/**/*-1.parquet")]).unwrap()),
            ["db1-1.parquet", "web1-1.parquet"]
        );
        let e = expand(&[d.join("host=[/*.parquet")]).unwrap_err();
        assert!(format!("{e:#}").contains("not a valid glob"), "{e:#}");
    }
}
