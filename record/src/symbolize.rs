//! Kernel stack symbolization against `/proc/kallsyms`, done at record time
//! so that no raw kernel address is ever written to a file.

use std::collections::BTreeMap;

/// Prefixes of the functions that run a BPF program on an event: the
/// program itself, tracepoint glue (tp_btf), fentry/fexit trampolines and
/// the kprobe/kretprobe/ftrace handlers. They are the top of every captured
/// stack and say nothing about the event.
const TRACING_FRAMES: &[&str] = &[
    "bpf_prog_",
    "bpf_trace_run",
    "__bpf_trace_",
    "__traceiter_",
    "bpf_trampoline_",
    "trace_call_bpf",
    "kprobe_perf_func",
    "kretprobe_perf_func",
    "kprobe_dispatcher",
    "kretprobe_dispatcher",
    "kprobe_ftrace_handler",
    "aggr_pre_handler",
    "pre_handler_kretprobe",
    "opt_pre_handler",
    "optimized_callback",
    "kprobe_int3_handler",
    "exc_int3",
    "asm_exc_int3",
    "__kretprobe_trampoline",
    "kretprobe_trampoline",
    "trampoline_handler",
    "arch_rethook_trampoline",
    "rethook_trampoline_handler",
    "ftrace_trampoline",
    "ftrace_regs_call",
    "ftrace_call",
    "fprobe_handler",
];

/// The function name of a `symbol+0xoff` frame.
fn symbol_of(frame: &str) -> &str {
    frame.split_once("+0x").map_or(frame, |(sym, _)| sym)
}

fn is_tracing_frame(f: &str) -> bool {
    TRACING_FRAMES.iter().any(|p| f.starts_with(p))
}

pub struct Symbolizer {
    /// start address → name; empty when the kernel hides addresses.
    syms: BTreeMap<u64, String>,
}

impl Symbolizer {
    pub fn load() -> Self {
        let text = std::fs::read_to_string("/proc/kallsyms").unwrap_or_default();
        Self::from_kallsyms(&text)
    }

    pub fn from_kallsyms(text: &str) -> Self {
        let mut syms = BTreeMap::new();
        for line in text.lines() {
            let mut it = line.split_whitespace();
            let (Some(addr), Some(ty), Some(name)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            if !matches!(ty, "t" | "T" | "w" | "W") {
                continue;
            }
            if let Ok(a) = u64::from_str_radix(addr, 16) {
                if a != 0 {
                    syms.insert(a, name.to_owned());
                }
            }
        }
        Symbolizer { syms }
    }

    /// `symbol+0xoff`, or `[unknown]` when no symbol covers `ip`.
    pub fn symbolize(&self, ip: u64) -> String {
        match self.syms.range(..=ip).next_back() {
            Some((start, name)) => format!("{name}+0x{:x}", ip - start),
            None => "[unknown]".to_owned(),
        }
    }

    /// Symbolizes a captured stack, dropping the leading frames that belong to
    /// the tracing machinery itself (the BPF program, `bpf_trace_run*`), which
    /// say nothing about the event and carry a per-build program tag.
    ///
    /// An unnamed frame right below them is dropped too: a dynamically
    /// allocated ftrace or BPF trampoline that some kernels leave out of
    /// kallsyms.
    ///
    /// Deeper in the stack, a function wrapped by an fentry/fexit program
    /// shows as `f+0x..`, `bpf_trampoline_N+0x..`, `f+0x5` (the trampoline
    /// runs the body on its own frame, called from `f`'s patched entry):
    /// that is one call of `f`, kept as its first frame only.
    pub fn stack(&self, ips: impl IntoIterator<Item = u64>) -> Vec<String> {
        let mut after_tracing = false;
        let frames = ips.into_iter().map(|ip| self.symbolize(ip)).skip_while(|f| {
            let skip = is_tracing_frame(f) || (after_tracing && f == "[unknown]");
            after_tracing = is_tracing_frame(f);
            skip
        });
        let mut out: Vec<String> = Vec::new();
        let mut drop_entry_of: Option<String> = None;
        for f in frames {
            if f.starts_with("bpf_trampoline_") {
                drop_entry_of = out.last().map(|prev| symbol_of(prev).to_owned());
                continue;
            }
            if drop_entry_of.take().is_some_and(|wrapped| symbol_of(&f) == wrapped) {
                continue;
            }
            out.push(f);
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.syms.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbolizes_text_symbols_only() {
        let s = Symbolizer::from_kallsyms(
            "ffffffff81000000 T _stext\nffffffff81000100 t tcp_set_state\nffffffff81000200 D some_data\n0000000000000000 T hidden\n",
        );
        assert_eq!(s.symbolize(0xffffffff81000104), "tcp_set_state+0x4");
        assert_eq!(s.symbolize(0xffffffff81000250), "tcp_set_state+0x150");
        assert_eq!(s.symbolize(0xffffffff81000000), "_stext+0x0");
        assert_eq!(s.symbolize(0x10), "[unknown]");
        assert!(Symbolizer::from_kallsyms("0000000000000000 T x\n").is_empty());
    }

    #[test]
    fn drops_tracing_frames_at_the_top_only() {
        let s = Symbolizer::from_kallsyms(
            "ffffffff81000000 t bpf_prog_0123456789abcdef_inet_sock_set_state\nffffffff81001000 T bpf_trace_run3\nffffffff81001800 T __traceiter_inet_sock_set_state\nffffffff81002000 T tcp_set_state\nffffffff81003000 T bpf_trace_run1\n",
        );
        let frames = s.stack([
            0xffffffff81000010,
            0xffffffff81001008,
            0xffffffff81001810,
            0xffffffff81002004,
            0xffffffff81003000,
        ]);
        assert_eq!(frames, vec!["tcp_set_state+0x4", "bpf_trace_run1+0x0"]);
    }

    #[test]
    fn drops_fentry_and_kprobe_machinery() {
        let s = Symbolizer::from_kallsyms(
            "ffffffff80000000 T _stext\nffffffff81000000 t bpf_prog_0123456789abcdef_fentry_tcp_fin\nffffffff81001000 t bpf_trampoline_6442512345\nffffffff81002000 T tcp_fin\nffffffff81003000 T trace_call_bpf\nffffffff81003800 T kprobe_perf_func\nffffffff81004000 T kprobe_ftrace_handler\nffffffff81005000 T tcp_data_queue\n",
        );
        // fentry: program, trampoline, then the traced function.
        assert_eq!(
            s.stack([
                0xffffffff81000010,
                0xffffffff81001040,
                0xffffffff81002005,
                0xffffffff81005010
            ]),
            vec!["tcp_fin+0x5", "tcp_data_queue+0x10"]
        );
        // kprobe through ftrace: handlers, an unnamed ftrace trampoline
        // (below the first symbol: unknown), then the probed function.
        assert_eq!(
            s.stack([
                0xffffffff81000010,
                0xffffffff81003004,
                0xffffffff81003810,
                0xffffffff81004020,
                0x10,
                0xffffffff81002001,
            ]),
            vec!["tcp_fin+0x1"]
        );
        // Deeper, a function wrapped by a trampoline is one frame.
        assert_eq!(
            s.stack([
                0xffffffff81000010,
                0xffffffff81001040,
                0xffffffff81002005,
                0xffffffff81005ac1,
                0xffffffff8100104e,
                0xffffffff81005005,
                0xffffffff81002100,
            ]),
            vec!["tcp_fin+0x5", "tcp_data_queue+0xac1", "tcp_fin+0x100"]
        );
        // An unknown frame that does not follow tracing frames stays.
        assert_eq!(s.stack([0x10, 0xffffffff81002001]), vec!["[unknown]", "tcp_fin+0x1"]);
    }
}
