//! The probes `record` attaches: which program feeds which event kind, and
//! attaching them one by one so that a probe this kernel lacks is reported
//! (in the file's metadata and on stderr) instead of aborting the recording.

use aya::programs::BtfTracePoint;
use aya::Ebpf;
use deeptcp_format::{EventKind, ProbeStatus};

/// One probe: the program's name in the object and the tp_btf hook.
pub struct Probe {
    pub program: &'static str,
    pub tracepoint: &'static str,
    pub kind: EventKind,
}

pub const PROBES: &[Probe] = &[
    Probe {
        program: "inet_sock_set_state",
        tracepoint: "inet_sock_set_state",
        kind: EventKind::StateChange,
    },
    Probe {
        program: "tcp_retransmit_skb",
        tracepoint: "tcp_retransmit_skb",
        kind: EventKind::Retransmit,
    },
    Probe {
        program: "tcp_receive_reset",
        tracepoint: "tcp_receive_reset",
        kind: EventKind::ResetRecv,
    },
    Probe {
        program: "tcp_send_reset",
        tracepoint: "tcp_send_reset",
        kind: EventKind::ResetSent,
    },
    Probe {
        program: "inet_sk_error_report",
        tracepoint: "inet_sk_error_report",
        kind: EventKind::SockError,
    },
    Probe {
        program: "tcp_destroy_sock",
        tracepoint: "tcp_destroy_sock",
        kind: EventKind::DestroySock,
    },
];

fn attach_one(ebpf: &mut Ebpf, btf: &aya::Btf, p: &Probe) -> anyhow::Result<()> {
    let prog = ebpf
        .program_mut(p.program)
        .ok_or_else(|| anyhow::anyhow!("program {} missing from the eBPF object", p.program))?;
    let prog: &mut BtfTracePoint = prog.try_into()?;
    prog.load(p.tracepoint, btf)?;
    prog.attach()?;
    Ok(())
}

/// Keeps a probe failure readable: the first line of the error and, for a
/// verifier rejection, the verifier's last complaint instead of its whole log.
pub fn summarize_error(full: &str) -> String {
    let mut lines = full.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("unknown error").to_owned();
    if !full.contains("Verifier output") {
        return first;
    }
    let first = first.split(". Verifier output").next().unwrap_or(&first).to_owned();
    let body: Vec<&str> = full.lines().map(str::trim).collect();
    let end = body
        .iter()
        .position(|l| l.starts_with("verification time") || l.starts_with("processed "))
        .unwrap_or(body.len());
    match body[..end].iter().rev().find(|l| !l.is_empty()) {
        Some(complaint) => format!("{first}; verifier: {complaint}"),
        None => first,
    }
}

/// Loads and attaches every probe; returns one status per probe.
pub fn attach_all(ebpf: &mut Ebpf, btf: &aya::Btf) -> Vec<ProbeStatus> {
    PROBES
        .iter()
        .map(|p| {
            let result = attach_one(ebpf, btf, p);
            ProbeStatus {
                kind: p.kind.as_str().to_owned(),
                probe: format!("tp_btf:{}", p.tracepoint),
                attached: result.is_ok(),
                detail: result
                    .err()
                    .map(|e| summarize_error(&format!("{e:#}")))
                    .unwrap_or_default(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::summarize_error;

    #[test]
    fn verifier_logs_shrink_to_the_complaint() {
        let log = "the BPF_PROG_LOAD syscall returned Permission denied (os error 13). Verifier output: 0: R1=ctx()\n1: (79) r2 = *(u64 *)(r1 +8)\n65: (0f) r3 += r9\nR3 pointer arithmetic on trusted_ptr_or_null_ prohibited, null-check it first\nverification time 1747 usec\nstack depth 192+0\n";
        assert_eq!(
            summarize_error(log),
            "the BPF_PROG_LOAD syscall returned Permission denied (os error 13); verifier: R3 pointer arithmetic on trusted_ptr_or_null_ prohibited, null-check it first"
        );
        assert_eq!(summarize_error("tracepoint not found\nmore"), "tracepoint not found");
        assert_eq!(summarize_error(""), "unknown error");
    }
}
