//! The probe ladders: for every event kind, the hooks that can produce it,
//! best first. `record` walks each ladder until one rung attaches, so a
//! kernel without kprobes or fentry (or without a tracepoint) still records
//! the kind through a lower rung, and the report says which one — on stderr,
//! in `--list-probes` and in the file's metadata.
//!
//! Rungs are programs (tp_btf, fentry/fexit, kprobe/kretprobe, cgroup_skb)
//! or inferences from the `inet_sock_set_state` records, which `record`
//! makes itself (`deeptcp_record::convert::Inference`) once the tracepoint attached.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use aya::programs::{BtfTracePoint, CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, FEntry, FExit, KProbe};
use aya::Ebpf;
use deeptcp_common::probe as id;
use deeptcp_format::{EventKind, ProbeStatus};

/// How a rung hooks in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// tp_btf program `program` on tracepoint `target`.
    TpBtf,
    FEntry,
    FExit,
    KProbe,
    KRetProbe,
    CgroupSkbIngress,
    CgroupSkbEgress,
    /// Rows `record` derives from `inet_sock_set_state` records.
    Inferred,
}

/// One rung of a ladder.
#[derive(Debug, Clone, Copy)]
pub struct Rung {
    pub hook: Hook,
    /// Program name in the object (unused for `Inferred`).
    pub program: &'static str,
    /// Kernel tracepoint or function.
    pub target: &'static str,
    /// `deeptcp_common::probe` id the rung's records carry.
    pub probe_id: u8,
    /// When the rung is wanted at all.
    pub needs: Needs,
}

/// When a rung is wanted: most always are; a supplement is attached only on
/// kernels whose first rung misses part of the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    Always,
    /// Only when `tracepoint` passes fewer than `args` arguments (an older
    /// version of it, which misses what this rung adds).
    TracepointArgsBelow {
        tracepoint: &'static str,
        args: u32,
    },
    /// Only when kernel function `function` takes `args` arguments (an
    /// fexit program finds the return value after them).
    FunctionArgs {
        function: &'static str,
        args: u32,
    },
}

/// Status detail of a rung that was not needed on this kernel.
pub const NOT_NEEDED: &str = "not needed";
/// Status detail of a ladder left out because `--kind` does not ask for its kind.
pub const NOT_WANTED: &str = "not attached: --kind does not ask for it";

impl Rung {
    /// Stable text name, as in the `probe` column: `type:target`.
    pub fn name(&self) -> String {
        let ty = match self.hook {
            Hook::TpBtf => "tp_btf",
            Hook::FEntry => "fentry",
            Hook::FExit => "fexit",
            Hook::KProbe => "kprobe",
            Hook::KRetProbe => "kretprobe",
            Hook::CgroupSkbIngress | Hook::CgroupSkbEgress => "cgroup_skb",
            Hook::Inferred => "inferred",
        };
        format!("{ty}:{}", self.target)
    }
}

/// What a ladder's rungs give: rows of an event kind, or the owner
/// refreshes that attribute other kinds' rows (no rows of their own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LadderOf {
    Kind(EventKind),
    Owner,
}

impl LadderOf {
    /// The name in `--list-probes` and in the recording's probe statuses.
    pub const fn name(self) -> &'static str {
        match self {
            LadderOf::Kind(k) => k.as_str(),
            LadderOf::Owner => "owner",
        }
    }
}

/// Every rung of one event kind (or the owner refreshers).
pub struct Ladder {
    pub kind: LadderOf,
    pub rungs: &'static [Rung],
}

const fn tp(program: &'static str, probe_id: u8) -> Rung {
    Rung {
        hook: Hook::TpBtf,
        program,
        target: program,
        probe_id,
        needs: Needs::Always,
    }
}

const fn hook(hook: Hook, program: &'static str, target: &'static str, probe_id: u8, needs: Needs) -> Rung {
    Rung {
        hook,
        program,
        target,
        probe_id,
        needs,
    }
}

/// Before 6.10 `tcp_send_reset` had no reason argument and fired only for
/// full sockets: RSTs for segments without one (closed port, time-wait)
/// need the functions that send them.
const OLD_SEND_RESET: Needs = Needs::TracepointArgsBelow {
    tracepoint: "tcp_send_reset",
    args: 3,
};

/// The inference rung: rows `record` derives from `inet_sock_set_state` records.
const INFERRED: Rung = Rung {
    hook: Hook::Inferred,
    program: "",
    target: "inet_sock_set_state",
    probe_id: id::INFERRED_SET_STATE,
    needs: Needs::Always,
};

/// The ladders, in attach order (`state_change` first: inference rungs need it).
pub const LADDERS: &[Ladder] = &[
    Ladder {
        kind: LadderOf::Kind(EventKind::StateChange),
        rungs: &[tp("inet_sock_set_state", id::TP_SET_STATE)],
    },
    Ladder {
        kind: LadderOf::Kind(EventKind::Retransmit),
        rungs: &[tp("tcp_retransmit_skb", id::TP_RETRANSMIT_SKB)],
    },
    Ladder {
        kind: LadderOf::Kind(EventKind::RetransmitSynack),
        rungs: &[tp("tcp_retransmit_synack", id::TP_RETRANSMIT_SYNACK)],
    },
    Ladder {
        kind: LadderOf::Kind(EventKind::ResetRecv),
        rungs: &[tp("tcp_receive_reset", id::TP_RECEIVE_RESET)],
    },
    Ladder {
        kind: LadderOf::Kind(EventKind::ResetSent),
        rungs: &[tp("tcp_send_reset", id::TP_SEND_RESET)],
    },
    Ladder {
        kind: LadderOf::Kind(EventKind::SockError),
        rungs: &[tp("inet_sk_error_report", id::TP_ERROR_REPORT)],
    },
    Ladder {
        kind: LadderOf::Kind(EventKind::DestroySock),
        rungs: &[tp("tcp_destroy_sock", id::TP_DESTROY_SOCK)],
    },
    Ladder {
        kind: LadderOf::Kind(EventKind::FinRecv),
        rungs: &[
            Rung {
                hook: Hook::FEntry,
                program: "fentry_tcp_fin",
                target: "tcp_fin",
                probe_id: id::FENTRY_TCP_FIN,
                needs: Needs::Always,
            },
            Rung {
                hook: Hook::KProbe,
                program: "kprobe_tcp_fin",
                target: "tcp_fin",
                probe_id: id::KPROBE_TCP_FIN,
                needs: Needs::Always,
            },
            INFERRED,
        ],
    },
    Ladder {
        kind: LadderOf::Kind(EventKind::FinSent),
        rungs: &[
            Rung {
                hook: Hook::FEntry,
                program: "fentry_tcp_send_fin",
                target: "tcp_send_fin",
                probe_id: id::FENTRY_TCP_SEND_FIN,
                needs: Needs::Always,
            },
            Rung {
                hook: Hook::KProbe,
                program: "kprobe_tcp_send_fin",
                target: "tcp_send_fin",
                probe_id: id::KPROBE_TCP_SEND_FIN,
                needs: Needs::Always,
            },
            INFERRED,
        ],
    },
    Ladder {
        kind: LadderOf::Kind(EventKind::ZeroWindowRecv),
        rungs: &[
            tp("tcp_probe", id::TP_TCP_PROBE),
            Rung {
                hook: Hook::KProbe,
                program: "kprobe_tcp_ack",
                target: "tcp_ack",
                probe_id: id::KPROBE_TCP_ACK,
                needs: Needs::Always,
            },
            Rung {
                hook: Hook::CgroupSkbIngress,
                program: "cgroup_skb_ingress",
                target: "ingress",
                probe_id: id::CGROUP_SKB_INGRESS,
                needs: Needs::Always,
            },
        ],
    },
    Ladder {
        kind: LadderOf::Kind(EventKind::ZeroWindowSent),
        rungs: &[
            Rung {
                hook: Hook::FExit,
                program: "fexit_tcp_transmit_skb",
                target: "__tcp_transmit_skb",
                probe_id: id::FEXIT_TCP_TRANSMIT_SKB,
                needs: Needs::Always,
            },
            Rung {
                hook: Hook::CgroupSkbEgress,
                program: "cgroup_skb_egress",
                target: "egress",
                probe_id: id::CGROUP_SKB_EGRESS,
                needs: Needs::Always,
            },
        ],
    },
    Ladder {
        kind: LadderOf::Kind(EventKind::Connect),
        rungs: &[INFERRED],
    },
    Ladder {
        kind: LadderOf::Kind(EventKind::Accept),
        rungs: &[
            hook(
                Hook::FExit,
                "fexit_inet_csk_accept",
                "inet_csk_accept",
                id::FEXIT_INET_CSK_ACCEPT,
                Needs::FunctionArgs {
                    function: "inet_csk_accept",
                    args: 2,
                },
            ),
            hook(
                Hook::FExit,
                "fexit_inet_csk_accept4",
                "inet_csk_accept",
                id::FEXIT_INET_CSK_ACCEPT,
                Needs::FunctionArgs {
                    function: "inet_csk_accept",
                    args: 4,
                },
            ),
            Rung {
                hook: Hook::KRetProbe,
                program: "kretprobe_inet_csk_accept",
                target: "inet_csk_accept",
                probe_id: id::KRETPROBE_INET_CSK_ACCEPT,
                needs: Needs::Always,
            },
            INFERRED,
        ],
    },
    Ladder {
        kind: LadderOf::Kind(EventKind::LossProbe),
        rungs: &[
            Rung {
                hook: Hook::FEntry,
                program: "fentry_tcp_send_loss_probe",
                target: "tcp_send_loss_probe",
                probe_id: id::FENTRY_TCP_SEND_LOSS_PROBE,
                needs: Needs::Always,
            },
            Rung {
                hook: Hook::KProbe,
                program: "kprobe_tcp_send_loss_probe",
                target: "tcp_send_loss_probe",
                probe_id: id::KPROBE_TCP_SEND_LOSS_PROBE,
                needs: Needs::Always,
            },
        ],
    },
    // Supplements of reset_sent on kernels before 6.10 (see OLD_SEND_RESET).
    Ladder {
        kind: LadderOf::Kind(EventKind::ResetSent),
        rungs: &[
            hook(
                Hook::FEntry,
                "fentry_tcp_v4_send_reset",
                "tcp_v4_send_reset",
                id::FENTRY_TCP_V4_SEND_RESET,
                OLD_SEND_RESET,
            ),
            hook(
                Hook::KProbe,
                "kprobe_tcp_v4_send_reset",
                "tcp_v4_send_reset",
                id::KPROBE_TCP_V4_SEND_RESET,
                OLD_SEND_RESET,
            ),
        ],
    },
    Ladder {
        kind: LadderOf::Kind(EventKind::ResetSent),
        rungs: &[
            hook(
                Hook::FEntry,
                "fentry_tcp_v6_send_reset",
                "tcp_v6_send_reset",
                id::FENTRY_TCP_V6_SEND_RESET,
                OLD_SEND_RESET,
            ),
            hook(
                Hook::KProbe,
                "kprobe_tcp_v6_send_reset",
                "tcp_v6_send_reset",
                id::KPROBE_TCP_V6_SEND_RESET,
                OLD_SEND_RESET,
            ),
        ],
    },
    // Not event kinds: hooks in the owner's process context (every send and
    // receive) that keep the socket → owner map fresh. The tracepoints
    // exist since 6.5; older kernels hook the functions.
    Ladder {
        kind: LadderOf::Owner,
        rungs: &[
            tp("sock_send_length", 0),
            hook(Hook::FEntry, "fentry_tcp_sendmsg", "tcp_sendmsg", 0, Needs::Always),
            hook(Hook::KProbe, "kprobe_tcp_sendmsg", "tcp_sendmsg", 0, Needs::Always),
        ],
    },
    Ladder {
        kind: LadderOf::Owner,
        rungs: &[
            tp("sock_recv_length", 0),
            hook(Hook::FEntry, "fentry_tcp_recvmsg", "tcp_recvmsg", 0, Needs::Always),
            hook(Hook::KProbe, "kprobe_tcp_recvmsg", "tcp_recvmsg", 0, Needs::Always),
        ],
    },
];

/// Why `rung` is not wanted on this kernel, if it is not.
fn not_needed(kbtf: &crate::btf::KernelBtf, rung: &Rung) -> Option<String> {
    match rung.needs {
        Needs::Always => None,
        Needs::TracepointArgsBelow { tracepoint, args } => {
            let have = kbtf.tracepoint_args(tracepoint)?;
            (have >= args).then(|| format!("{NOT_NEEDED}: tp_btf:{tracepoint} has {have} arguments on this kernel"))
        }
        Needs::FunctionArgs { function, args } => match kbtf.function_args(function) {
            Some(have) if have == args => None,
            Some(have) => Some(format!(
                "{NOT_NEEDED}: {function} takes {have} arguments on this kernel"
            )),
            None => Some(format!("{function} is not in this kernel's BTF")),
        },
    }
}

/// All rung names (for validating `--disable-probe`); the inference rung is
/// one name shared by several ladders (disabling it disables all of them).
pub fn all_rung_names() -> Vec<String> {
    let mut names: Vec<String> = LADDERS.iter().flat_map(|l| l.rungs.iter().map(Rung::name)).collect();
    names.sort();
    names.dedup();
    names
}

/// The `probe` column text for a wire probe id.
pub fn probe_name(probe_id: u8) -> Option<String> {
    LADDERS
        .iter()
        .flat_map(|l| l.rungs.iter())
        .find(|r| r.probe_id == probe_id && probe_id != 0)
        .map(Rung::name)
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
    match body[..end]
        .iter()
        .rev()
        .find(|l| !l.is_empty() && !l.contains("Verifier output"))
    {
        Some(complaint) => format!("{first}; verifier: {complaint}"),
        None => first,
    }
}

/// Finds the cgroup v2 mount (`/sys/fs/cgroup` or, on hybrid hosts, e.g. `/sys/fs/cgroup/unified`).
pub fn cgroup2_mount(mounts: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        let (_dev, dir, fstype) = (it.next()?, it.next()?, it.next()?);
        (fstype == "cgroup2").then(|| PathBuf::from(dir))
    })
}

/// What attaching needs besides the object.
pub struct AttachEnv<'a> {
    pub btf: &'a aya::Btf,
    /// The same BTF, for what aya does not answer (tracepoint arguments).
    pub kbtf: &'a crate::btf::KernelBtf,
    pub cgroup: Option<&'a Path>,
    /// Rung names the user turned off (`--disable-probe`).
    pub disabled: &'a [String],
    /// `--kind` (empty: every kind).
    pub kinds: &'a [EventKind],
    /// `--recover-nested`: attach each tracepoint's nested twin too.
    pub twins: bool,
}

/// Whether a ladder for `kind` runs when the recording wants `kinds`
/// (empty: all). `state_change` always does (owners, inferred rows), and so
/// do the owner refreshers; every other program would only run to have its
/// records dropped by the kind filter — per packet, for the zero-window rungs.
pub fn ladder_wanted(of: LadderOf, kinds: &[EventKind]) -> bool {
    match of {
        LadderOf::Owner => true,
        LadderOf::Kind(k) => kinds.is_empty() || k == EventKind::StateChange || kinds.contains(&k),
    }
}

/// Whether a rung name is a kprobe or kretprobe one.
pub fn is_kprobe(name: &str) -> bool {
    name.starts_with("kprobe:") || name.starts_with("kretprobe:")
}

fn program<'e, T>(ebpf: &'e mut Ebpf, name: &str) -> Result<&'e mut T>
where
    for<'p> &'p mut T: TryFrom<&'p mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let prog = ebpf
        .program_mut(name)
        .ok_or_else(|| anyhow!("program {name} missing from the eBPF object"))?;
    Ok(prog.try_into()?)
}

fn attach_rung(ebpf: &mut Ebpf, env: &AttachEnv<'_>, rung: &Rung, set_state_attached: bool) -> Result<()> {
    match rung.hook {
        Hook::TpBtf => {
            let p: &mut BtfTracePoint = program(ebpf, rung.program)?;
            p.load(rung.target, env.btf)?;
            p.attach()?;
            if let Some(twin) = twin_of(rung.program).filter(|_| env.twins) {
                // Not the rung's failure: the first program is attached and
                // records; without its twin, runs the kernel skips are
                // counted as lost, not made up for.
                let attached = program::<BtfTracePoint>(ebpf, &twin).and_then(|t| {
                    t.load(rung.target, env.btf)?;
                    t.attach()?;
                    Ok(())
                });
                if let Err(e) = attached {
                    say!(
                        "record: warning: {twin} did not attach ({}); runs the kernel skips on {} are counted as lost, not made up for",
                        summarize_error(&format!("{e:#}")),
                        rung.target
                    );
                }
            }
        }
        Hook::FEntry => {
            let p: &mut FEntry = program(ebpf, rung.program)?;
            p.load(rung.target, env.btf)?;
            p.attach()?;
        }
        Hook::FExit => {
            let p: &mut FExit = program(ebpf, rung.program)?;
            p.load(rung.target, env.btf)?;
            p.attach()?;
        }
        Hook::KProbe | Hook::KRetProbe => {
            let p: &mut KProbe = program(ebpf, rung.program)?;
            p.load()?;
            p.attach(rung.target, 0)?;
        }
        Hook::CgroupSkbIngress | Hook::CgroupSkbEgress => {
            let dir = env.cgroup.ok_or_else(|| anyhow!("no cgroup v2 hierarchy mounted"))?;
            let cg = File::open(dir).with_context(|| format!("opening cgroup {}", dir.display()))?;
            let ty = if rung.hook == Hook::CgroupSkbIngress {
                CgroupSkbAttachType::Ingress
            } else {
                CgroupSkbAttachType::Egress
            };
            let p: &mut CgroupSkb = program(ebpf, rung.program)?;
            p.load()?;
            // On 5.7+ aya attaches through a BPF link, which always allows other
            // programs beside it and rejects any explicit mode flag.
            p.attach(&cg, ty, CgroupAttachMode::Single)?;
        }
        Hook::Inferred => {
            if !set_state_attached {
                bail!("needs tp_btf:inet_sock_set_state, which did not attach");
            }
        }
    }
    Ok(())
}

/// Walks every ladder: tries rungs in order until one attaches. Returns one
/// status per rung tried; the attached one has `used`.
pub fn attach_all(ebpf: &mut Ebpf, env: &AttachEnv<'_>) -> Vec<ProbeStatus> {
    let mut out = Vec::new();
    let mut set_state_attached = false;
    for ladder in LADDERS {
        if !ladder_wanted(ladder.kind, env.kinds) {
            if !out.iter().any(|s: &ProbeStatus| s.kind == ladder.kind.name()) {
                out.push(ProbeStatus {
                    kind: ladder.kind.name().to_owned(),
                    probe: "-".to_owned(),
                    attached: false,
                    detail: NOT_WANTED.to_owned(),
                    rung: 0,
                    used: false,
                });
            }
            continue;
        }
        for (i, rung) in ladder.rungs.iter().enumerate() {
            let name = rung.name();
            let result = if env.disabled.contains(&name) {
                Err(anyhow!("disabled by --disable-probe"))
            } else if let Some(why) = not_needed(env.kbtf, rung) {
                Err(anyhow!(why))
            } else {
                attach_rung(ebpf, env, rung, set_state_attached)
            };
            let attached = result.is_ok();
            if attached && rung.probe_id == id::TP_SET_STATE {
                set_state_attached = true;
            }
            out.push(ProbeStatus {
                kind: ladder.kind.name().to_owned(),
                probe: name,
                attached,
                detail: result
                    .err()
                    .map(|e| summarize_error(&format!("{e:#}")))
                    .unwrap_or_default(),
                rung: i as u32,
                used: attached,
            });
            if attached {
                break;
            }
        }
    }
    out
}

/// The programs of the owner refreshers (they make no rows).
pub fn owner_programs() -> Vec<&'static str> {
    LADDERS
        .iter()
        .filter(|l| l.kind == LadderOf::Owner)
        .flat_map(|l| l.rungs.iter().map(|r| r.program))
        .collect()
}

/// The tp_btf programs with a nested twin in the eBPF object: a second
/// program on the same hook that makes the events the kernel skips the
/// first one for when the hook fires in an interrupt of it (the twin's own
/// skipped runs lose nothing: see the eBPF crate's `tp_with_twin`).
pub const TWINNED: &[&str] = &[
    "inet_sock_set_state",
    "tcp_retransmit_skb",
    "tcp_receive_reset",
    "tcp_send_reset",
    "inet_sk_error_report",
    "tcp_destroy_sock",
];

/// The name of `program`'s nested twin, if it has one.
pub fn twin_of(program: &str) -> Option<String> {
    TWINNED.contains(&program).then(|| format!("{program}_nested"))
}

/// Programs whose skipped runs are not lost rows: the owner refreshers
/// (they make no rows) and the nested twins.
pub fn programs_without_rows() -> Vec<String> {
    owner_programs()
        .into_iter()
        .map(str::to_owned)
        .chain(TWINNED.iter().filter_map(|p| twin_of(p)))
        .collect()
}

/// Whether a kprobe or kretprobe rung is in use: those programs cannot
/// reach socket storage, so owners must be kept in the cookie-keyed hash.
pub fn uses_kprobes(statuses: &[ProbeStatus]) -> bool {
    statuses.iter().any(|s| s.used && is_kprobe(&s.probe))
}

/// Kinds whose ladder has no attached rung.
pub fn missing_kinds(statuses: &[ProbeStatus]) -> Vec<String> {
    let mut kinds: Vec<String> = LADDERS.iter().map(|l| l.kind.name().to_owned()).collect();
    kinds.dedup();
    kinds
        .into_iter()
        .filter(|k| {
            !statuses
                .iter()
                .any(|s| &s.kind == k && (s.used || s.detail == NOT_WANTED))
        })
        .collect()
}

/// The `--list-probes` report.
pub fn render_report(statuses: &[ProbeStatus], out: &mut impl std::io::Write) -> std::io::Result<()> {
    writeln!(out, "{:<18} {:<4} {:<34} STATUS", "KIND", "RUNG", "PROBE")?;
    for s in statuses {
        let status = if s.used {
            "attached (used)".to_owned()
        } else if s.detail.starts_with(NOT_NEEDED) || s.detail == NOT_WANTED {
            s.detail.clone()
        } else {
            format!("failed: {}", s.detail)
        };
        writeln!(out, "{:<18} {:<4} {:<34} {status}", s.kind, s.rung + 1, s.probe)?;
    }
    for kind in missing_kinds(statuses) {
        writeln!(out, "{kind:<18} -    {:<34} NOT RECORDED: no rung attached", "-")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_twin_has_its_tracepoint_rung_and_is_in_the_object() {
        for p in TWINNED {
            assert!(
                LADDERS
                    .iter()
                    .flat_map(|l| l.rungs)
                    .any(|r| r.hook == Hook::TpBtf && r.program == *p),
                "{p} is no tp_btf rung"
            );
        }
        assert_eq!(twin_of("tcp_destroy_sock").as_deref(), Some("tcp_destroy_sock_nested"));
        assert_eq!(twin_of("tcp_probe"), None);
        let skip = programs_without_rows();
        assert!(skip.iter().any(|p| p == "sock_recv_length") && skip.iter().any(|p| p == "inet_sock_set_state_nested"));
        assert!(!skip.iter().any(|p| p == "inet_sock_set_state"));
        let Some(elf) = crate::session::ebpf_object() else {
            eprintln!("skipped the object check: record was built without the eBPF object");
            return;
        };
        let names: Vec<String> = crate::stack_budget::budgets(elf).into_iter().map(|(n, ..)| n).collect();
        for p in TWINNED {
            let twin = twin_of(p).unwrap_or_default();
            assert!(names.contains(&twin), "{twin} missing from the eBPF object");
        }
    }

    #[test]
    fn verifier_logs_shrink_to_the_complaint() {
        let log = "the BPF_PROG_LOAD syscall returned Permission denied (os error 13). Verifier output: 0: R1=ctx()\n1: (79) r2 = *(u64 *)(r1 +8)\n65: (0f) r3 += r9\nR3 pointer arithmetic on trusted_ptr_or_null_ prohibited, null-check it first\nverification time 1747 usec\nstack depth 192+0\n";
        assert_eq!(
            summarize_error(log),
            "the BPF_PROG_LOAD syscall returned Permission denied (os error 13); verifier: R3 pointer arithmetic on trusted_ptr_or_null_ prohibited, null-check it first"
        );
        assert_eq!(summarize_error("tracepoint not found\nmore"), "tracepoint not found");
        assert_eq!(
            summarize_error("the BPF_PROG_LOAD syscall returned Operation not permitted (os error 1). Verifier output: : Operation not permitted (os error 1)"),
            "the BPF_PROG_LOAD syscall returned Operation not permitted (os error 1)"
        );
        assert_eq!(summarize_error(""), "unknown error");
        // 6.1's answer to programs whose call chain needs over 512 bytes.
        let log = "the BPF_PROG_LOAD syscall returned Permission denied (os error 13). Verifier output: func#0 @0\nfunc#1 @559\n0: R1=ctx() R10=fp0\ncombined stack size of 2 calls is 640. Too large\nverification time 1771 usec\nstack depth 312+296\nprocessed 2389 insns (limit 1000000)\n";
        assert_eq!(
            summarize_error(log),
            "the BPF_PROG_LOAD syscall returned Permission denied (os error 13); verifier: combined stack size of 2 calls is 640. Too large"
        );
    }

    #[test]
    fn every_probe_id_has_one_name_and_programs_are_used_once() {
        let programs: Vec<&str> = LADDERS
            .iter()
            .flat_map(|l| l.rungs.iter())
            .map(|r| r.program)
            .filter(|p| !p.is_empty())
            .collect();
        let mut unique = programs.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), programs.len(), "a program in two ladders: {programs:?}");
        assert!(all_rung_names().contains(&"inferred:inet_sock_set_state".to_owned()));
        for pid in 1..=id::FEXIT_INET_CSK_ACCEPT {
            assert!(probe_name(pid).is_some(), "probe id {pid} has no rung");
        }
        assert_eq!(
            probe_name(id::INFERRED_SET_STATE).as_deref(),
            Some("inferred:inet_sock_set_state")
        );
        assert_eq!(probe_name(id::CGROUP_SKB_EGRESS).as_deref(), Some("cgroup_skb:egress"));
        assert_eq!(probe_name(0), None);
    }

    #[test]
    fn ladders_put_state_change_first_and_every_kind_has_a_no_kprobe_rung() {
        assert_eq!(LADDERS[0].kind, LadderOf::Kind(EventKind::StateChange));
        let supplement = |l: &&Ladder| l.rungs.iter().all(|r| r.needs != Needs::Always);
        for l in LADDERS
            .iter()
            .filter(|l| l.kind != LadderOf::Kind(EventKind::LossProbe) && !supplement(l))
        {
            assert!(
                l.rungs
                    .iter()
                    .any(|r| !matches!(r.hook, Hook::KProbe | Hook::KRetProbe | Hook::FEntry | Hook::FExit)),
                "{} depends on kprobes/fentry only",
                l.kind.name()
            );
        }
    }

    #[test]
    fn only_wanted_kinds_get_programs_but_state_changes_and_owners_always_do() {
        use EventKind::*;
        let of = LadderOf::Kind;
        assert!(ladder_wanted(of(ZeroWindowSent), &[]), "no --kind: everything");
        let k = [ResetSent];
        assert!(ladder_wanted(of(ResetSent), &k));
        assert!(ladder_wanted(of(StateChange), &k) && ladder_wanted(LadderOf::Owner, &k));
        assert!(!ladder_wanted(of(ZeroWindowSent), &k) && !ladder_wanted(of(ZeroWindowRecv), &k));
        assert!(ladder_wanted(of(ZeroWindowRecv), &[ZeroWindowRecv]));
    }

    #[test]
    fn kprobe_rungs_in_use_mean_the_hash_store() {
        let status = |probe: &str, used: bool| ProbeStatus {
            kind: "accept".into(),
            probe: probe.into(),
            attached: used,
            detail: String::new(),
            rung: 0,
            used,
        };
        assert!(!uses_kprobes(&[
            status("fexit:inet_csk_accept", true),
            status("kprobe:tcp_fin", false)
        ]));
        assert!(uses_kprobes(&[status("kretprobe:inet_csk_accept", true)]));
        assert!(uses_kprobes(&[status("kprobe:tcp_sendmsg", true)]));
        let names = all_rung_names();
        assert!(names.iter().filter(|n| is_kprobe(n)).count() >= 8);
        assert!(owner_programs().contains(&"sock_recv_length") && owner_programs().contains(&"kprobe_tcp_sendmsg"));
        assert!(!owner_programs().contains(&"inet_sock_set_state"));
        assert!(!is_kprobe("fexit:inet_csk_accept") && !is_kprobe("tp_btf:tcp_probe"));
    }

    #[test]
    fn finds_cgroup2_mount() {
        let hybrid = "cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n";
        assert_eq!(cgroup2_mount(hybrid), Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(
            cgroup2_mount("cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n"),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        assert_eq!(cgroup2_mount("proc /proc proc rw 0 0\n"), None);
    }

    #[test]
    fn report_marks_used_failed_and_missing() {
        let st = |kind: &str, probe: &str, rung: u32, used: bool| ProbeStatus {
            kind: kind.into(),
            probe: probe.into(),
            attached: used,
            detail: if used {
                String::new()
            } else {
                "kprobes not supported".into()
            },
            rung,
            used,
        };
        let statuses = vec![
            st("fin_recv", "fentry:tcp_fin", 0, false),
            st("fin_recv", "inferred:inet_sock_set_state", 2, true),
        ];
        let mut out = Vec::new();
        render_report(&statuses, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("fin_recv           1    fentry:tcp_fin                     failed: kprobes not supported")
        );
        assert!(text.contains("fin_recv           3    inferred:inet_sock_set_state       attached (used)"));
        assert!(text.contains("state_change       -    -                                  NOT RECORDED"));
        assert!(!text.contains("fin_recv           -"));
    }
}
