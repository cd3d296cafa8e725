//! A minimal reader of the kernel's BTF (`/sys/kernel/btf/vmlinux`) that
//! answers what `record` must know of *this* kernel: at which byte offset
//! `struct X`'s field `a.b.c` lives, what enumerator `E` of `enum X` is,
//! whether a struct exists, and how many arguments a tracepoint or a
//! function takes.
//!
//! Rust eBPF has no CO-RE relocations, so `record` resolves every field the
//! programs read here at start-up and passes the offsets as a read-only
//! global. Anonymous structs/unions (as in `struct sock_common`) are searched
//! transparently. Only what that needs is parsed: types are kept as raw
//! records and walked on demand.
//!
//! It is hand-written because the BTF crates do not fit. `btf-rs` (2.0) is
//! LGPL-2.1-or-later (this workspace is MIT OR Apache-2.0) and only decodes
//! records: the walk through anonymous members, sizes through typedef and
//! qualifier chains and lookups by name and kind would all stay here.
//! `btfparse` (1.3) keeps one type id per name across all kinds (the last
//! one wins; a vmlinux has a couple of hundred names shared by several
//! kinds). Both decode every type up front: 60-90 ms for a 5.5 MB vmlinux
//! where this reader takes about 6 ms (release builds).

use std::collections::HashMap;
use std::path::Path;

use thiserror::Error;

const BTF_MAGIC: u16 = 0xeb9f;

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FWD: u32 = 7;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

#[derive(Debug, Error)]
pub enum BtfError {
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("malformed BTF: {0}")]
    Malformed(&'static str),
    #[error("BTF type kind {0} is not known to this build")]
    UnknownKind(u32),
    #[error("struct {0} not found in kernel BTF")]
    NoStruct(String),
    #[error("field {field} not found in struct {strukt}")]
    NoField { strukt: String, field: String },
    #[error("enum {enum_name} has no enumerator {name} in kernel BTF")]
    NoEnumerator { enum_name: String, name: String },
    #[error("field {field} of struct {strukt} is a bitfield, not byte-addressable")]
    Bitfield { strukt: String, field: String },
    #[error("{strukt}.{field}: expected {expected} bytes, kernel has {actual}")]
    Size {
        strukt: String,
        field: String,
        expected: u32,
        actual: u32,
    },
}

/// One member of a struct or union.
#[derive(Debug, Clone, Copy)]
struct Member {
    name_off: u32,
    type_id: u32,
    /// Offset in bits from the start of the aggregate.
    bit_offset: u32,
    /// Bitfield size in bits (0 = not a bitfield).
    bitfield_size: u32,
}

#[derive(Debug, Clone)]
enum Type {
    /// A type whose contents we never need (functions, enums, ...); `size` if it has one.
    Other {
        size: Option<u32>,
    },
    /// Typedef and qualifiers: look through to `to`.
    Alias {
        to: u32,
    },
    Ptr {
        to: u32,
    },
    /// A function prototype with `params` parameters.
    FuncProto {
        params: u32,
    },
    Array {
        elem: u32,
        nelems: u32,
    },
    Aggregate {
        name_off: u32,
        size: u32,
        members: Vec<Member>,
    },
}

/// The kernel's BTF as `record` reads it: struct field offsets, enumerator
/// values, tracepoint and function argument counts. (aya parses the same
/// bytes into its own `aya::Btf` to load BTF programs; it answers none of
/// these questions.)
pub struct KernelBtf {
    strings: Vec<u8>,
    /// Index = type id - 1.
    types: Vec<Type>,
    structs_by_name: HashMap<String, u32>,
    typedefs_by_name: HashMap<String, u32>,
    /// (name offset, [(enumerator name offset, value)]) of every named enum.
    enums: Vec<(u32, Vec<(u32, i64)>)>,
    /// (name offset, prototype type id) of every function.
    funcs: Vec<(u32, u32)>,
}

fn u32_at(data: &[u8], off: usize) -> Result<u32, BtfError> {
    let b = data.get(off..off + 4).ok_or(BtfError::Malformed("truncated"))?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Where the running kernel shows its BTF.
pub const SYS_FS: &str = "/sys/kernel/btf/vmlinux";

/// The raw BTF in `path` (for both [`KernelBtf::parse`] and aya's parser).
pub fn read(path: &Path) -> Result<Vec<u8>, BtfError> {
    std::fs::read(path).map_err(|source| BtfError::Read {
        path: path.display().to_string(),
        source,
    })
}

impl KernelBtf {
    /// Parses little-endian BTF (the only kind a little-endian host exposes).
    pub fn parse(data: &[u8]) -> Result<Self, BtfError> {
        if data.len() < 24 {
            return Err(BtfError::Malformed("shorter than a header"));
        }
        let magic = u16::from_le_bytes([data[0], data[1]]);
        if magic != BTF_MAGIC {
            return Err(BtfError::Malformed("bad magic (not little-endian BTF)"));
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let type_off = u32_at(data, 8)? as usize;
        let type_len = u32_at(data, 12)? as usize;
        let str_off = u32_at(data, 16)? as usize;
        let str_len = u32_at(data, 20)? as usize;
        let type_start = hdr_len
            .checked_add(type_off)
            .ok_or(BtfError::Malformed("type offset"))?;
        let type_end = type_start
            .checked_add(type_len)
            .ok_or(BtfError::Malformed("type length"))?;
        let str_start = hdr_len
            .checked_add(str_off)
            .ok_or(BtfError::Malformed("string offset"))?;
        let str_end = str_start
            .checked_add(str_len)
            .ok_or(BtfError::Malformed("string length"))?;
        let type_data = data
            .get(type_start..type_end)
            .ok_or(BtfError::Malformed("type section out of bounds"))?;
        let strings = data
            .get(str_start..str_end)
            .ok_or(BtfError::Malformed("string section out of bounds"))?
            .to_vec();

        let mut types = Vec::new();
        // (name offset, type id) of every named typedef.
        let mut typedefs = Vec::new();
        let mut enums = Vec::new();
        let mut funcs = Vec::new();
        let mut pos = 0usize;
        while pos < type_data.len() {
            let name_off = u32_at(type_data, pos)?;
            let info = u32_at(type_data, pos + 4)?;
            let size_or_type = u32_at(type_data, pos + 8)?;
            pos += 12;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            let ty = match kind {
                KIND_INT => {
                    pos += 4;
                    Type::Other {
                        size: Some(size_or_type),
                    }
                }
                KIND_PTR => Type::Ptr { to: size_or_type },
                KIND_ARRAY => {
                    let elem = u32_at(type_data, pos)?;
                    let nelems = u32_at(type_data, pos + 8)?;
                    pos += 12;
                    Type::Array { elem, nelems }
                }
                KIND_STRUCT | KIND_UNION => {
                    let mut members = Vec::with_capacity(vlen);
                    for _ in 0..vlen {
                        let m_name = u32_at(type_data, pos)?;
                        let m_type = u32_at(type_data, pos + 4)?;
                        let m_off = u32_at(type_data, pos + 8)?;
                        pos += 12;
                        let (bit_offset, bitfield_size) = if kind_flag {
                            (m_off & 0x00ff_ffff, m_off >> 24)
                        } else {
                            (m_off, 0)
                        };
                        members.push(Member {
                            name_off: m_name,
                            type_id: m_type,
                            bit_offset,
                            bitfield_size,
                        });
                    }
                    Type::Aggregate {
                        name_off,
                        size: size_or_type,
                        members,
                    }
                }
                KIND_ENUM | KIND_ENUM64 => {
                    let wide = kind == KIND_ENUM64;
                    let mut values = Vec::with_capacity(if name_off != 0 { vlen } else { 0 });
                    for _ in 0..vlen {
                        let e_name = u32_at(type_data, pos)?;
                        let lo = u32_at(type_data, pos + 4)?;
                        let value = if wide {
                            let hi = u32_at(type_data, pos + 8)?;
                            ((u64::from(hi) << 32) | u64::from(lo)) as i64
                        } else if kind_flag {
                            i64::from(lo as i32)
                        } else {
                            i64::from(lo)
                        };
                        pos += if wide { 12 } else { 8 };
                        if name_off != 0 {
                            values.push((e_name, value));
                        }
                    }
                    if name_off != 0 {
                        enums.push((name_off, values));
                    }
                    Type::Other {
                        size: Some(size_or_type),
                    }
                }
                KIND_FUNC => {
                    funcs.push((name_off, size_or_type));
                    Type::Other { size: None }
                }
                KIND_FWD => Type::Other { size: None },
                KIND_FLOAT => Type::Other {
                    size: Some(size_or_type),
                },
                KIND_TYPEDEF => {
                    if name_off != 0 {
                        typedefs.push((name_off, types.len() as u32 + 1));
                    }
                    Type::Alias { to: size_or_type }
                }
                KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => Type::Alias { to: size_or_type },
                KIND_FUNC_PROTO => {
                    pos += 8 * vlen;
                    Type::FuncProto { params: vlen as u32 }
                }
                KIND_VAR => {
                    pos += 4;
                    Type::Other { size: None }
                }
                KIND_DATASEC => {
                    pos += 12 * vlen;
                    Type::Other { size: None }
                }
                KIND_DECL_TAG => {
                    pos += 4;
                    Type::Other { size: None }
                }
                other => return Err(BtfError::UnknownKind(other)),
            };
            types.push(ty);
        }
        if pos != type_data.len() {
            return Err(BtfError::Malformed("type section ends inside a type"));
        }

        let mut btf = KernelBtf {
            strings,
            types,
            structs_by_name: HashMap::new(),
            typedefs_by_name: HashMap::new(),
            enums,
            funcs,
        };
        let typedefs_by_name = typedefs
            .into_iter()
            .map(|(name_off, id)| (btf.string(name_off).to_owned(), id))
            .collect();
        btf.typedefs_by_name = typedefs_by_name;
        let mut by_name = HashMap::new();
        for (i, ty) in btf.types.iter().enumerate() {
            if let Type::Aggregate { name_off, members, .. } = ty {
                // Prefer the complete definition when a name appears twice.
                if *name_off != 0 && !members.is_empty() {
                    by_name.entry(btf.string(*name_off).to_owned()).or_insert(i as u32 + 1);
                }
            }
        }
        btf.structs_by_name = by_name;
        Ok(btf)
    }

    fn string(&self, off: u32) -> &str {
        let start = off as usize;
        let Some(rest) = self.strings.get(start..) else {
            return "";
        };
        let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or("")
    }

    fn ty(&self, id: u32) -> Option<&Type> {
        id.checked_sub(1).and_then(|i| self.types.get(i as usize))
    }

    /// Follows typedefs and qualifiers.
    fn resolve(&self, mut id: u32) -> Option<&Type> {
        for _ in 0..32 {
            match self.ty(id)? {
                Type::Alias { to } => id = *to,
                t => return Some(t),
            }
        }
        None
    }

    fn size_of(&self, id: u32) -> Option<u32> {
        match self.resolve(id)? {
            Type::Other { size } => *size,
            Type::Ptr { .. } => Some(8),
            Type::FuncProto { .. } => None,
            Type::Array { elem, nelems } => self.size_of(*elem)?.checked_mul(*nelems),
            Type::Aggregate { size, .. } => Some(*size),
            Type::Alias { .. } => None,
        }
    }

    /// Finds `name` among the members of aggregate `id`, descending into
    /// anonymous members. Returns (bit offset, member).
    fn find_member(&self, id: u32, name: &str, depth: u32) -> Option<(u32, Member)> {
        if depth > 8 {
            return None;
        }
        let Type::Aggregate { members, .. } = self.resolve(id)? else {
            return None;
        };
        for m in members {
            if m.name_off != 0 && self.string(m.name_off) == name {
                return Some((m.bit_offset, *m));
            }
        }
        for m in members.iter().filter(|m| m.name_off == 0) {
            if let Some((off, found)) = self.find_member(m.type_id, name, depth + 1) {
                return Some((m.bit_offset + off, found));
            }
        }
        None
    }

    /// Whether the kernel defines `struct name` (or a union of that name).
    pub fn has_struct(&self, name: &str) -> bool {
        self.structs_by_name.contains_key(name)
    }

    /// How many arguments tracepoint `name` passes to a tp_btf program on
    /// this kernel: from `btf_trace_<name>`, a pointer to a prototype whose
    /// first parameter is the tracepoint's private data. `None` when the
    /// kernel has no such tracepoint.
    pub fn tracepoint_args(&self, name: &str) -> Option<u32> {
        let id = *self.typedefs_by_name.get(&format!("btf_trace_{name}"))?;
        let Type::Ptr { to } = self.resolve(id)? else {
            return None;
        };
        match self.resolve(*to)? {
            Type::FuncProto { params } => params.checked_sub(1),
            _ => None,
        }
    }

    /// How many parameters kernel function `name` takes on this kernel (an
    /// fexit program finds the return value in the context slot after
    /// them). `None` when the kernel has no such function in its BTF.
    pub fn function_args(&self, name: &str) -> Option<u32> {
        let (_, proto) = self.funcs.iter().find(|(n, _)| self.string(*n) == name)?;
        match self.resolve(*proto)? {
            Type::FuncProto { params } => Some(*params),
            _ => None,
        }
    }

    /// The value of enumerator `name` of `enum enum_name`.
    pub fn enum_value(&self, enum_name: &str, name: &str) -> Result<i64, BtfError> {
        self.enums
            .iter()
            .filter(|(n, _)| self.string(*n) == enum_name)
            .flat_map(|(_, values)| values.iter())
            .find(|(n, _)| self.string(*n) == name)
            .map(|(_, v)| *v)
            .ok_or_else(|| BtfError::NoEnumerator {
                enum_name: enum_name.to_owned(),
                name: name.to_owned(),
            })
    }

    /// Byte offset of `path` (dot separated, e.g. `__sk_common.skc_daddr`)
    /// inside `struct strukt`, checking the field is `size` bytes when given.
    pub fn field_offset(&self, strukt: &str, path: &str, size: Option<u32>) -> Result<u32, BtfError> {
        let mut id = *self
            .structs_by_name
            .get(strukt)
            .ok_or_else(|| BtfError::NoStruct(strukt.to_owned()))?;
        let no_field = || BtfError::NoField {
            strukt: strukt.to_owned(),
            field: path.to_owned(),
        };
        let mut bits = 0u32;
        let mut last = None;
        for part in path.split('.') {
            let (off, m) = self.find_member(id, part, 0).ok_or_else(no_field)?;
            if m.bitfield_size != 0 {
                return Err(BtfError::Bitfield {
                    strukt: strukt.to_owned(),
                    field: path.to_owned(),
                });
            }
            bits = bits.checked_add(off).ok_or_else(no_field)?;
            id = m.type_id;
            last = Some(m);
        }
        if !bits.is_multiple_of(8) {
            return Err(BtfError::Bitfield {
                strukt: strukt.to_owned(),
                field: path.to_owned(),
            });
        }
        if let (Some(expected), Some(m)) = (size, last) {
            let actual = self.size_of(m.type_id).unwrap_or(0);
            if actual != expected {
                return Err(BtfError::Size {
                    strukt: strukt.to_owned(),
                    field: path.to_owned(),
                    expected,
                    actual,
                });
            }
        }
        Ok(bits / 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracepoint_arguments_come_from_the_btf_trace_typedef() {
        let btf = KernelBtf::parse(&sample()).unwrap();
        assert_eq!(btf.tracepoint_args("demo"), Some(2));
        assert_eq!(btf.tracepoint_args("missing"), None);
        assert!(btf.has_struct("outer") && !btf.has_struct("btf_trace_demo"));
    }

    #[test]
    fn function_arguments_come_from_the_func_prototype() {
        let btf = KernelBtf::parse(&sample()).unwrap();
        assert_eq!(btf.function_args("demo_fn"), Some(3));
        assert_eq!(btf.function_args("missing"), None);
    }

    /// Builds a little BTF blob by hand:
    /// struct inner { u16 a; u16 b; };
    /// struct outer { u32 x; union { u32 y; struct inner in; }; u8 bf:3; u8 arr[6]; void *p; };
    fn sample() -> Vec<u8> {
        let mut strings = vec![0u8];
        let mut name = |s: &str| {
            let off = strings.len() as u32;
            strings.extend_from_slice(s.as_bytes());
            strings.push(0);
            off
        };
        let (n_u32, n_u16, n_u8, n_inner, n_outer) =
            (name("u32"), name("u16"), name("u8"), name("inner"), name("outer"));
        let (n_a, n_b, n_x, n_y, n_in, n_bf, n_arr, n_p, n_t) = (
            name("a"),
            name("b"),
            name("x"),
            name("y"),
            name("in"),
            name("bf"),
            name("arr"),
            name("p"),
            name("u16_t"),
        );
        let n_tp = name("btf_trace_demo");
        let n_fn = name("demo_fn");
        let (n_flags, n_dead, n_done) = (name("demo_flags"), name("DEMO_DEAD"), name("DEMO_DONE"));
        let mut t = Vec::new();
        let mut push = |words: &[u32]| {
            for w in words {
                t.extend_from_slice(&w.to_le_bytes());
            }
        };
        let info = |kind: u32, vlen: u32, kflag: bool| (kind << 24) | vlen | ((kflag as u32) << 31);
        push(&[n_u32, info(KIND_INT, 0, false), 4, 32]); // 1
        push(&[n_u16, info(KIND_INT, 0, false), 2, 16]); // 2
        push(&[n_u8, info(KIND_INT, 0, false), 1, 8]); // 3
        push(&[n_t, info(KIND_TYPEDEF, 0, false), 2]); // 4 u16_t
        push(&[n_inner, info(KIND_STRUCT, 2, false), 4, n_a, 4, 0, n_b, 2, 16]); // 5
        push(&[0, info(KIND_UNION, 2, false), 4, n_y, 1, 0, n_in, 5, 0]); // 6 anon union
        push(&[0, info(KIND_INT, 0, false), 0, 0]); // 7 void-ish filler
        push(&[0, info(KIND_ARRAY, 0, false), 0, 3, 1, 6]); // 8 u8[6]
        push(&[0, info(KIND_PTR, 0, false), 7]); // 9
        push(&[
            n_outer,
            info(KIND_STRUCT, 5, true),
            24,
            n_x,
            1,
            0,
            0,
            6,
            32,
            n_bf,
            3,
            (3 << 24) | 64,
            n_arr,
            8,
            72,
            n_p,
            9,
            128,
        ]); // 10
            // typedef void (*btf_trace_demo)(void *__data, u32 a, u16 b);
        push(&[0, info(KIND_FUNC_PROTO, 3, false), 0, 0, 9, 0, 1, 0, 2]); // 11
        push(&[0, info(KIND_PTR, 0, false), 11]); // 12
        push(&[n_tp, info(KIND_TYPEDEF, 0, false), 12]); // 13
        push(&[n_flags, info(KIND_ENUM, 2, false), 4, n_dead, 0, n_done, 1]); // 14 enum demo_flags
        push(&[0, info(KIND_ENUM64, 1, false), 8, n_dead, 5, 1]); // 15 anonymous, 64-bit
        push(&[n_fn, info(KIND_FUNC, 0, false), 11]); // 16 demo_fn(void *, u32, u16)
        let mut out = Vec::new();
        out.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        out.push(1);
        out.push(0);
        for w in [24u32, 0, t.len() as u32, t.len() as u32, strings.len() as u32] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&t);
        out.extend_from_slice(&strings);
        out
    }

    #[test]
    fn resolves_direct_anonymous_and_nested_fields() {
        let btf = KernelBtf::parse(&sample()).unwrap();
        assert_eq!(btf.field_offset("outer", "x", Some(4)).unwrap(), 0);
        assert_eq!(btf.field_offset("outer", "y", Some(4)).unwrap(), 4);
        assert_eq!(btf.field_offset("outer", "in.b", Some(2)).unwrap(), 6);
        assert_eq!(btf.field_offset("outer", "arr", Some(6)).unwrap(), 9);
        assert_eq!(btf.field_offset("outer", "p", Some(8)).unwrap(), 16);
        assert_eq!(btf.field_offset("inner", "b", None).unwrap(), 2);
    }

    #[test]
    fn enumerators_by_enum_and_name() {
        let btf = KernelBtf::parse(&sample()).unwrap();
        assert_eq!(btf.enum_value("demo_flags", "DEMO_DONE").unwrap(), 1);
        assert_eq!(btf.enum_value("demo_flags", "DEMO_DEAD").unwrap(), 0);
        assert!(matches!(
            btf.enum_value("demo_flags", "DEMO_GONE"),
            Err(BtfError::NoEnumerator { .. })
        ));
        assert!(btf.enum_value("other", "DEMO_DONE").is_err());
    }

    #[test]
    fn reports_missing_bitfield_and_size_errors() {
        let btf = KernelBtf::parse(&sample()).unwrap();
        assert!(matches!(
            btf.field_offset("nope", "x", None),
            Err(BtfError::NoStruct(_))
        ));
        assert!(matches!(
            btf.field_offset("outer", "zz", None),
            Err(BtfError::NoField { .. })
        ));
        assert!(matches!(
            btf.field_offset("outer", "bf", None),
            Err(BtfError::Bitfield { .. })
        ));
        let e = btf.field_offset("outer", "x", Some(2)).unwrap_err();
        assert!(
            matches!(
                e,
                BtfError::Size {
                    expected: 2,
                    actual: 4,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(KernelBtf::parse(b"").is_err());
        assert!(KernelBtf::parse(&[0u8; 64]).is_err());
        let mut s = sample();
        s.truncate(s.len() - 20);
        assert!(KernelBtf::parse(&s).is_err());
    }

    #[test]
    fn running_kernel_has_every_field_we_read() {
        let path = Path::new(SYS_FS);
        if !path.exists() {
            eprintln!("skipping: {} not present on this machine", path.display());
            return;
        }
        let btf = KernelBtf::parse(&read(path).unwrap()).unwrap();
        let o = crate::offsets::resolve(&btf).unwrap();
        // struct sock starts with sock_common, whose address pair comes first.
        assert_eq!(o.skc_daddr, 0);
        assert_eq!(o.skc_rcv_saddr, 4);
        assert!(o.inet_sport > o.sk_protocol);
        assert_eq!(o.sock_done_bit, 1, "enum sock_flags: SOCK_DEAD, SOCK_DONE, ...");
        // inet_csk_accept(sk, arg) since 6.10, (sk, flags, err, kern) before.
        assert!(matches!(btf.function_args("inet_csk_accept"), Some(2 | 4)));
    }
}
