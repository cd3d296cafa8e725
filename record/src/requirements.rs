//! The minimum kernel, checked at start-up so that an old or BTF-less
//! kernel gets one line naming what it lacks instead of a verifier log.
//!
//! deeptcp needs Linux 5.12 or later: BTF (`/sys/kernel/btf/vmlinux`,
//! `CONFIG_DEBUG_INFO_BTF`), the BPF ring buffer (5.8), tp_btf programs
//! (5.5) on `inet_sock_set_state`, and `bpf_get_socket_cookie` in tracing
//! programs (5.12). Everything else is a rung that may be missing.

use anyhow::{bail, Result};

/// The oldest kernel release `record` supports.
pub const MIN_KERNEL: &str = "5.12";

/// What the running kernel offers of the hard requirements (BTF itself is
/// checked by reading it).
#[derive(Debug, Clone, Copy)]
pub struct Features {
    /// `btf_trace_inet_sock_set_state` in the kernel's BTF.
    pub set_state_tracepoint: bool,
    /// `struct bpf_ringbuf` in the kernel's BTF.
    pub ring_buffer: bool,
}

impl Features {
    pub fn of(btf: &crate::btf::KernelBtf) -> Self {
        Features {
            set_state_tracepoint: btf.tracepoint_args("inet_sock_set_state").is_some(),
            ring_buffer: btf.has_struct("bpf_ringbuf"),
        }
    }

    /// An error naming everything missing, with the running release.
    pub fn check(&self, release: &str) -> Result<()> {
        let mut missing = Vec::new();
        if !self.ring_buffer {
            missing.push("the BPF ring buffer (5.8)");
        }
        if !self.set_state_tracepoint {
            missing.push("the inet_sock_set_state tracepoint for tp_btf programs (5.5)");
        }
        if !missing.is_empty() {
            bail!(
                "kernel {release} is too old: it lacks {}; record needs Linux {MIN_KERNEL} or later",
                missing.join(" and ")
            );
        }
        Ok(())
    }
}

/// The error when `state_change`, the program every other kind's inference
/// and attribution builds on, did not load (not disabled by the user).
pub fn state_change_failed(release: &str, detail: &str) -> anyhow::Error {
    let hint = if detail.contains("bpf_get_socket_cookie") || detail.contains("unknown func") {
        format!("; record needs Linux {MIN_KERNEL} or later (bpf_get_socket_cookie in tracing programs)")
    } else {
        String::new()
    };
    anyhow::anyhow!("tp_btf:inet_sock_set_state did not load on kernel {release}: {detail}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_missing_feature_and_the_minimum() {
        let all = Features {
            set_state_tracepoint: true,
            ring_buffer: true,
        };
        assert!(all.check("6.1.0").is_ok());
        let old = Features {
            set_state_tracepoint: false,
            ring_buffer: false,
        };
        let msg = format!("{:#}", old.check("5.4.0-200").unwrap_err());
        assert_eq!(
            msg,
            "kernel 5.4.0-200 is too old: it lacks the BPF ring buffer (5.8) and the inet_sock_set_state tracepoint for tp_btf programs (5.5); record needs Linux 5.12 or later"
        );
        let msg = format!(
            "{:#}",
            Features {
                ring_buffer: true,
                ..old
            }
            .check("5.4")
            .unwrap_err()
        );
        assert!(
            msg.contains("lacks the inet_sock_set_state") && !msg.contains("ring buffer"),
            "{msg}"
        );
    }

    #[test]
    fn a_missing_helper_gets_the_minimum_kernel_hint() {
        let e = state_change_failed("5.10.0", "verifier: unknown func bpf_get_socket_cookie#46");
        assert!(
            format!("{e}").ends_with("record needs Linux 5.12 or later (bpf_get_socket_cookie in tracing programs)")
        );
        let e = state_change_failed("6.1.0", "disabled elsewhere");
        assert_eq!(
            format!("{e}"),
            "tp_btf:inet_sock_set_state did not load on kernel 6.1.0: disabled elsewhere"
        );
    }
}
