//! Helpers shared by the integration tests that run the interop checker
//! (testdata/check_interop.py) under Python.

use std::path::{Path, PathBuf};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("format/ has a parent")
        .to_path_buf()
}

/// The Python that has the interop packages: the venv scripts/bootstrap
/// makes where the system Python is externally managed (Debian 12), else
/// `python3` from PATH.
pub fn python() -> PathBuf {
    let venv = repo_root().join(".venv/bin/python3");
    if venv.is_file() {
        venv
    } else {
        PathBuf::from("python3")
    }
}
