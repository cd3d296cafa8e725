//! A static check of the eBPF object, run by `cargo test`: the stack of
//! every program's deepest chain of BPF-to-BPF calls stays within the 512
//! bytes that kernels before 6.13 allow (6.13+ give x86-64 tracing programs a
//! private stack per subprogram, so this machine's verifier would not catch
//! an overflow that fails every program on Debian's 6.1 and 6.12).
//!
//! The depth of a function is the deepest `r10 - off` it touches; a frame
//! counts rounded up to 32 bytes, as the verifier counts it.
#![cfg(test)]

use std::collections::HashMap;

use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget, SectionIndex, SectionKind, SymbolKind};

/// The verifier's `MAX_BPF_STACK`.
const MAX_STACK: u32 = 512;
const BPF_PSEUDO_CALL: u8 = 1;

/// One function of the object: where it is and what it needs.
#[derive(Debug)]
struct Func {
    name: String,
    section: SectionIndex,
    /// Offset in its section.
    start: u64,
    depth: u32,
    /// Callees as (section, offset).
    calls: Vec<(SectionIndex, u64)>,
}

fn funcs(elf: &[u8]) -> Vec<Func> {
    let obj = object::File::parse(elf).expect("the eBPF object is an ELF file");
    let mut out = Vec::new();
    for sym in obj.symbols() {
        if sym.kind() != SymbolKind::Text || sym.size() == 0 {
            continue;
        }
        let Some(idx) = sym.section_index() else { continue };
        let section = obj.section_by_index(idx).expect("symbol's section");
        if section.kind() != SectionKind::Text {
            continue;
        }
        let data = section.data().expect("section data");
        let relocs: HashMap<u64, object::Relocation> = section.relocations().collect();
        let code = &data[sym.address() as usize..(sym.address() + sym.size()) as usize];
        let mut depth = 0u32;
        let mut calls = Vec::new();
        // Registers holding r10 (a frame address being computed).
        let mut frame_regs = 0u16;
        let mut pc = 0usize;
        while pc + 8 <= code.len() {
            let insn = &code[pc..pc + 8];
            let (op, dst, src) = (insn[0], insn[1] & 0x0f, insn[1] >> 4);
            let off = i16::from_le_bytes([insn[2], insn[3]]);
            let imm = i32::from_le_bytes([insn[4], insn[5], insn[6], insn[7]]);
            let class = op & 0x07;
            let is_mem = matches!(class, 0x01..=0x03); // LDX, ST, STX
            if is_mem && ((class == 0x01 && src == 10) || (class != 0x01 && dst == 10)) && off < 0 {
                depth = depth.max(u32::from(off.unsigned_abs()));
            }
            if op == 0xbf && src == 10 {
                frame_regs |= 1 << dst; // rX = r10
            } else if op == 0x07 && frame_regs & (1 << dst) != 0 && imm < 0 {
                depth = depth.max(imm.unsigned_abs()); // rX += -N
            } else if class == 0x07 || class == 0x04 || class == 0x01 {
                frame_regs &= !(1 << dst); // any other write to rX
            }
            if op == 0x85 && src == BPF_PSEUDO_CALL {
                let at = sym.address() + pc as u64;
                let target = match relocs.get(&at).map(|r| r.target()) {
                    Some(RelocationTarget::Symbol(s)) => {
                        let s = obj.symbol_by_index(s).expect("relocation symbol");
                        let base = if s.kind() == SymbolKind::Section {
                            0
                        } else {
                            s.address()
                        };
                        let sec = s.section_index().expect("callee section");
                        let rel = if s.kind() == SymbolKind::Section {
                            (i64::from(imm) + 1) * 8
                        } else {
                            0
                        };
                        (sec, (base as i64 + rel) as u64)
                    }
                    _ => (idx, (at as i64 + (i64::from(imm) + 1) * 8) as u64),
                };
                calls.push(target);
            }
            pc += if op == 0x18 { 16 } else { 8 }; // lddw is two slots
        }
        out.push(Func {
            name: sym.name().unwrap_or("?").to_owned(),
            section: idx,
            start: sym.address(),
            depth,
            calls,
        });
    }
    out
}

/// The deepest stack of any call chain from `f`, frames rounded as the verifier does.
fn chain(all: &[Func], f: &Func, seen: &mut Vec<String>) -> (u32, Vec<String>) {
    assert!(!seen.contains(&f.name), "recursion through {}", f.name);
    seen.push(f.name.clone());
    let own = f.depth.max(1).div_ceil(32) * 32;
    let mut best = (0, Vec::new());
    for &(sec, off) in &f.calls {
        let callee = all
            .iter()
            .find(|g| g.section == sec && g.start == off)
            .unwrap_or_else(|| panic!("{} calls an unknown function at {sec:?}+{off}", f.name));
        let c = chain(all, callee, seen);
        if c.0 > best.0 {
            best = c;
        }
    }
    seen.pop();
    let mut path = vec![format!("{} ({})", f.name, f.depth)];
    path.extend(best.1);
    (own + best.0, path)
}

/// Every program's worst chain, as (program, bytes, path).
pub(crate) fn budgets(elf: &[u8]) -> Vec<(String, u32, Vec<String>)> {
    let all = funcs(elf);
    let obj = object::File::parse(elf).expect("ELF");
    all.iter()
        .filter(|f| {
            // Programs live in their own sections; `.text` holds subprograms.
            obj.section_by_index(f.section)
                .ok()
                .and_then(|s| s.name().ok().map(|n| n != ".text"))
                == Some(true)
        })
        .map(|f| {
            let (bytes, path) = chain(&all, f, &mut Vec::new());
            (f.name.clone(), bytes, path)
        })
        .collect()
}

#[test]
fn every_program_fits_the_pre_6_13_stack_limit() {
    let Some(elf) = crate::session::ebpf_object() else {
        eprintln!("skipped: record was built without the eBPF object (no BPF toolchain)");
        return;
    };
    let b = budgets(elf);
    assert!(b.len() >= 20, "expected every program, found {}", b.len());
    let over: Vec<_> = b.iter().filter(|(_, bytes, _)| *bytes > MAX_STACK).collect();
    assert!(over.is_empty(), "over {MAX_STACK} bytes of stack: {over:#?}");
    // The check sees calls: inet_sock_set_state calls subprograms (the
    // filters), so its chain is deeper than its own frame.
    let set_state = b
        .iter()
        .find(|(n, ..)| n == "inet_sock_set_state")
        .expect("inet_sock_set_state");
    assert!(set_state.2.len() > 1, "no call seen: {set_state:?}");
}

#[test]
fn frames_are_rounded_and_summed_along_the_deepest_chain() {
    let sec = SectionIndex(3);
    let f = |name: &str, start: u64, depth: u32, calls: Vec<(SectionIndex, u64)>| Func {
        name: name.into(),
        section: sec,
        start,
        depth,
        calls,
    };
    // The old layout that 6.1 rejected: 312 + 296 bytes.
    let all = vec![
        f("prog", 0, 312, vec![(sec, 80), (sec, 160)]),
        f("small", 80, 8, vec![]),
        f("filter", 160, 296, vec![]),
    ];
    let (bytes, path) = chain(&all, &all[0], &mut Vec::new());
    assert_eq!(bytes, 320 + 320);
    assert_eq!(path, ["prog (312)", "filter (296)"]);
    assert_eq!(chain(&all, &all[1], &mut Vec::new()).0, 32);
}
