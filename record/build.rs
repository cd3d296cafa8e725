//! Builds the eBPF programs (ebpf/deeptcp-ebpf) with aya-build and embeds
//! them in `record`.
//!
//! That needs the nightly named in `ebpf/nightly-toolchain` (pinned: its LLVM
//! must be one bpf-linker reads) with rust-src, and bpf-linker
//! (`scripts/bootstrap` installs both). Without them, `record` still compiles (so plain `cargo build`/`cargo test` work on
//! any machine) but carries no eBPF object and says so at run time; the
//! `deeptcp_no_ebpf` cfg marks that build.
//!
//! For `record --version` it also sets `DEEPTCP_EBPF_STATUS` (whether the
//! eBPF object is built in, and if not why).

use std::path::{Path, PathBuf};

fn has_bpf_linker() -> bool {
    let in_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("bpf-linker").is_file()))
        .unwrap_or(false);
    let in_cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .map(|h| h.join("bin/bpf-linker").is_file())
        .unwrap_or(false);
    in_path || in_cargo_home
}

/// Whether rustup knows the toolchain (`rustup run` fails later otherwise,
/// with a message that does not say what to do).
fn has_toolchain(name: &str) -> bool {
    std::process::Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.starts_with(name)))
        .unwrap_or(false)
}

fn main() -> anyhow::Result<()> {
    println!("cargo::rustc-check-cfg=cfg(deeptcp_no_ebpf)");
    println!("cargo:rerun-if-env-changed=DEEPTCP_NO_EBPF");
    println!("cargo:rerun-if-env-changed=PATH");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest
        .parent()
        .ok_or_else(|| anyhow::anyhow!("record/ has no parent"))?;
    let ebpf_dir = root.join("ebpf/deeptcp-ebpf");
    let common_dir = root.join("ebpf/deeptcp-common");
    println!("cargo:rerun-if-changed={}", common_dir.join("src").display());
    println!("cargo:rerun-if-changed={}", ebpf_dir.join("src").display());
    let pin_file = root.join("ebpf/nightly-toolchain");
    println!("cargo:rerun-if-changed={}", pin_file.display());
    let nightly = std::fs::read_to_string(&pin_file)?.trim().to_owned();

    let forced_off = std::env::var_os("DEEPTCP_NO_EBPF").is_some_and(|v| v == "1");
    let why = if forced_off {
        Some("DEEPTCP_NO_EBPF=1".to_owned())
    } else if !has_bpf_linker() {
        Some("bpf-linker not found (run scripts/bootstrap)".to_owned())
    } else if !has_toolchain(&nightly) {
        Some(format!("toolchain {nightly} not installed (run scripts/bootstrap)"))
    } else {
        None
    };
    if let Some(why) = why {
        println!("cargo:warning=building record without eBPF programs: {why}");
        println!("cargo:rustc-cfg=deeptcp_no_ebpf");
        println!("cargo:rustc-env=DEEPTCP_EBPF_STATUS=not built in: {why}");
        return Ok(());
    }
    // With cargo home on PATH, the nested cargo finds bpf-linker too.
    if let Some(home) = std::env::var_os("HOME") {
        let cargo_bin = Path::new(&home).join(".cargo/bin");
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
        if !dirs.contains(&cargo_bin) {
            dirs.push(cargo_bin);
            std::env::set_var("PATH", std::env::join_paths(dirs)?);
        }
    }
    println!("cargo:rustc-env=DEEPTCP_EBPF_STATUS=built in ({nightly})");
    let ebpf_root = ebpf_dir
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("non UTF-8 path {}", ebpf_dir.display()))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "deeptcp-ebpf",
            root_dir: ebpf_root,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(&nightly),
    )
}
