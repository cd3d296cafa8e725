//! The Parquet value encodings the writer uses, on plain slices: varints,
//! the RLE/bit-packed hybrid (definition levels and dictionary indices),
//! DELTA_BINARY_PACKED (integers) and PLAIN (ports, dictionary pages).
//!
//! parquet's encoders take values one call at a time through generic
//! traits and a bit writer that stores each value separately; these pack
//! whole groups of values into machine words. DELTA_BINARY_PACKED lays out
//! its blocks exactly as parquet 60.1 does (blocks of four miniblocks of 32
//! values for INT32 columns, 64 for INT64, the last miniblock padded with
//! zeros, absent miniblocks given bit width 0), so a page holds the same
//! bytes and compresses the same.

/// Appends `v` as an unsigned LEB128 varint.
#[inline]
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` zigzag-encoded as a varint.
#[inline]
pub(crate) fn put_zigzag(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// Bits needed for `v` (0 for 0).
#[inline]
pub(crate) fn bit_width(v: u64) -> u8 {
    (64 - v.leading_zeros()) as u8
}

/// Appends `values` (each below `1 << width`, `width` at most 64) bit-packed,
/// least significant bit first, as whole bytes (`values.len() * width`
/// must be a multiple of 8).
#[inline]
fn pack<T: Copy + Into<u64>>(out: &mut Vec<u8>, values: &[T], width: u8) {
    pack_iter(out, values.iter().map(|v| (*v).into()), values.len(), width);
}

/// Appends the `count` values of `values` bit-packed (see [`pack`]): a
/// 64-bit accumulator written 8 bytes at a time.
#[inline]
fn pack_iter(out: &mut Vec<u8>, values: impl Iterator<Item = u64>, count: usize, width: u8) {
    let w = u32::from(width);
    if w == 0 {
        return;
    }
    let start = out.len();
    out.resize(start + count * w as usize / 8, 0);
    let buf = &mut out[start..];
    let (mut acc, mut bits, mut at) = (0u64, 0u32, 0usize);
    for v in values {
        acc |= v << bits;
        let used = bits + w;
        if used >= 64 {
            if let Some(dst) = buf.get_mut(at..at + 8) {
                dst.copy_from_slice(&acc.to_le_bytes());
            }
            at += 8;
            // The bits of `v` that did not fit (none when it ended the word).
            acc = if bits == 0 { 0 } else { v >> (64 - bits) };
            bits = used - 64;
        } else {
            bits = used;
        }
    }
    // Values not given are zeros: the buffer is zeroed past the bits gathered.
    let rest = bits.div_ceil(8) as usize;
    if let Some(dst) = buf.get_mut(at..at + rest) {
        dst.copy_from_slice(&acc.to_le_bytes()[..rest]);
    }
}

/// Longest bit-packed run under one header (63 groups of 8, the most a
/// one-byte header holds, as parquet and parquet-mr write them).
const MAX_GROUPS: usize = 63;

/// Appends `values` (each below `1 << width`) in the RLE/bit-packed hybrid
/// encoding, without a length prefix. Like parquet's encoder it works in
/// groups of 8: a group of 8 equal values starts an RLE run as long as the
/// value repeats, the other groups are bit-packed (the last one padded with
/// zeros; the page's value count tells the reader where it ends).
pub(crate) fn put_hybrid<T: Copy + Eq + Into<u64> + Default>(out: &mut Vec<u8>, values: &[T], width: u8) {
    let n = values.len();
    // Start of the values not yet written: a bit-packed run in the making.
    let mut lit = 0;
    let mut i = 0;
    while i + 8 <= n {
        let v = values[i];
        if values[i + 1..i + 8].iter().all(|x| *x == v) {
            let mut j = i + 8;
            while j < n && values[j] == v {
                j += 1;
            }
            put_literals(out, &values[lit..i], width);
            put_rle(out, v.into(), j - i, width);
            i = j;
            lit = j;
        } else {
            i += 8;
        }
    }
    if lit < n {
        put_literals(out, &values[lit..n], width);
    }
}

/// Bit-packed runs of `values` (none when empty), the last group zero-padded.
fn put_literals<T: Copy + Into<u64> + Default>(out: &mut Vec<u8>, values: &[T], width: u8) {
    for run in values.chunks(MAX_GROUPS * 8) {
        let groups = run.len().div_ceil(8);
        put_varint(out, ((groups as u64) << 1) | 1);
        let whole = run.len() / 8 * 8;
        if width <= 8 {
            // Dictionary indices and levels: 8 values make one word.
            for g in run[..whole].chunks_exact(8) {
                put_group8(out, g, width);
            }
        } else {
            pack(out, &run[..whole], width);
        }
        if whole < run.len() {
            let mut last = [T::default(); 8];
            last[..run.len() - whole].copy_from_slice(&run[whole..]);
            pack(out, &last, width);
        }
    }
}

/// 8 values of `width` (at most 8) bits each: `width` bytes.
#[inline]
fn put_group8<T: Copy + Into<u64>>(out: &mut Vec<u8>, group: &[T], width: u8) {
    let w = u32::from(width);
    let mut acc = 0u64;
    for (k, v) in group.iter().enumerate() {
        acc |= (*v).into() << (k as u32 * w);
    }
    let at = out.len();
    out.extend_from_slice(&acc.to_le_bytes());
    out.truncate(at + usize::from(width));
}

/// One RLE run: `count` times `value`, the value in `ceil(width / 8)` bytes.
fn put_rle(out: &mut Vec<u8>, value: u64, count: usize, width: u8) {
    put_varint(out, (count as u64) << 1);
    let bytes = usize::from(width).div_ceil(8);
    out.extend_from_slice(&value.to_le_bytes()[..bytes]);
}

/// [`put_def_levels`] of `valid`, counting its nulls (returned).
pub(crate) fn def_levels(out: &mut Vec<u8>, valid: &[bool]) -> usize {
    let nulls = valid.iter().filter(|v| !**v).count();
    put_def_levels(out, valid, nulls);
    nulls
}

/// Appends definition levels (0 = null, 1 = value) of a data page v1: a
/// 4-byte length, then the hybrid encoding with bit width 1.
pub(crate) fn put_def_levels(out: &mut Vec<u8>, valid: &[bool], nulls: usize) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    if nulls == 0 || nulls == valid.len() {
        if !valid.is_empty() {
            put_rle(out, u64::from(nulls == 0), valid.len(), 1);
        }
    } else {
        put_hybrid(out, valid, 1);
    }
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

/// Appends the DELTA_BINARY_PACKED encoding of `values`, whose physical
/// values `phys` gives: INT32 columns (`INT32`) compute their deltas in
/// 32-bit wrapping arithmetic (as parquet does, miniblocks of 32 values),
/// INT64 columns in 64-bit (miniblocks of 64).
#[inline]
pub(crate) fn put_delta<V: Copy, const INT32: bool>(out: &mut Vec<u8>, values: &[V], phys: impl Fn(V) -> i64) {
    let delta = |a: i64, b: i64| -> i64 {
        if INT32 {
            i64::from((a as i32).wrapping_sub(b as i32))
        } else {
            a.wrapping_sub(b)
        }
    };
    // `a - b` for `a >= b`, as the unsigned number a miniblock stores.
    let offset = |a: i64, b: i64| -> u64 {
        if INT32 {
            u64::from((a as i32).wrapping_sub(b as i32) as u32)
        } else {
            a.wrapping_sub(b) as u64
        }
    };
    let mini = if INT32 { 32 } else { 64 };
    let block = mini * 4;
    put_delta_header::<INT32>(out, values.len(), values.first().map_or(0, |v| phys(*v)));
    let mut deltas = [0i64; 256];
    let mut prev = values.first().map_or(0, |v| phys(*v));
    for chunk in values.get(1..).unwrap_or_default().chunks(block) {
        let n = chunk.len();
        // One pass: the deltas, the block's smallest, each miniblock's largest.
        let mut min = i64::MAX;
        let mut max = [i64::MIN; 4];
        for (m, (ds, vs)) in deltas.chunks_mut(mini).zip(chunk.chunks(mini)).enumerate() {
            let mut hi = i64::MIN;
            for (d, v) in ds.iter_mut().zip(vs) {
                let v = phys(*v);
                *d = delta(v, prev);
                prev = v;
                min = min.min(*d);
                hi = hi.max(*d);
            }
            max[m] = hi;
        }
        put_zigzag(out, min);
        let widths_at = out.len();
        out.extend_from_slice(&[0; 4]);
        for (m, hi) in max.iter().enumerate() {
            let start = m * mini;
            if start >= n {
                break;
            }
            let w = bit_width(offset(*hi, min));
            if w == 0 {
                continue;
            }
            out[widths_at + m] = w;
            let end = (start + mini).min(n);
            // The last miniblock is padded with zeros.
            pack_iter(out, deltas[start..end].iter().map(|d| offset(*d, min)), mini, w);
        }
    }
}

/// Appends the DELTA_BINARY_PACKED header of a page of `n` values whose
/// first is `first` (the blocks follow it): block size, four miniblocks,
/// the value count, the first value.
pub(crate) fn put_delta_header<const INT32: bool>(out: &mut Vec<u8>, n: usize, first: i64) {
    put_varint(out, if INT32 { 128 } else { 256 });
    put_varint(out, 4);
    put_varint(out, n as u64);
    put_zigzag(out, first);
}

/// Bytes of [`put_delta_header`]'s header.
pub(crate) fn delta_header_len<const INT32: bool>(n: usize, first: i64) -> usize {
    let mut h = Vec::with_capacity(24);
    put_delta_header::<INT32>(&mut h, n, first);
    h.len()
}

/// [`put_delta`] of `n` values that all equal `value`: every delta is 0,
/// so every miniblock has bit width 0 and no data.
pub(crate) fn put_delta_constant<const INT32: bool>(out: &mut Vec<u8>, value: i64, n: usize) {
    let block = if INT32 { 128 } else { 256 };
    put_delta_header::<INT32>(out, n, value);
    // Blocks of deltas: min delta 0, four widths 0.
    out.extend(std::iter::repeat_n([0u8; 5], n.saturating_sub(1).div_ceil(block)).flatten());
}

/// Appends `text` as a PLAIN byte array (4-byte length, then the bytes).
#[inline]
pub(crate) fn put_plain_bytes(out: &mut Vec<u8>, text: &[u8]) {
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_varint(b: &[u8], i: &mut usize) -> u64 {
        let mut v = 0u64;
        let mut s = 0;
        loop {
            let x = b[*i];
            *i += 1;
            v |= u64::from(x & 0x7f) << s;
            s += 7;
            if x & 0x80 == 0 {
                return v;
            }
        }
    }

    /// A reader of the hybrid encoding, independent of the writer's logic.
    fn read_hybrid(b: &[u8], width: u8, n: usize) -> Vec<u64> {
        let mut out = Vec::new();
        let mut i = 0;
        let varint = |i: &mut usize| read_varint(b, i);
        while out.len() < n {
            let h = varint(&mut i);
            if h & 1 == 0 {
                let bytes = usize::from(width).div_ceil(8);
                let mut v = [0u8; 8];
                v[..bytes].copy_from_slice(&b[i..i + bytes]);
                i += bytes;
                out.extend(std::iter::repeat_n(u64::from_le_bytes(v), (h >> 1) as usize));
            } else {
                let count = (h >> 1) as usize * 8;
                let mut bit = 0usize;
                for _ in 0..count {
                    let mut v = 0u64;
                    for k in 0..usize::from(width) {
                        let pos = bit + k;
                        v |= u64::from((b[i + pos / 8] >> (pos % 8)) & 1) << k;
                    }
                    bit += usize::from(width);
                    out.push(v);
                }
                i += count * usize::from(width) / 8;
            }
        }
        assert_eq!(i, b.len(), "nothing after the last run");
        out.truncate(n);
        out
    }

    #[test]
    fn hybrid_round_trips_runs_literals_and_their_boundaries() {
        let mut rng = 0x1234_5678_u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for width in [0u8, 1, 3, 7, 8, 9, 16, 17, 31, 32] {
            for len in [0usize, 1, 7, 8, 9, 15, 16, 17, 100, 1000, 5000] {
                let max = if width == 0 { 1 } else { 1u64 << width };
                let mut v = Vec::with_capacity(len);
                while v.len() < len {
                    let x = next() % max;
                    // Runs of every length, short and long.
                    let run = (next() % 20) as usize;
                    v.extend(std::iter::repeat_n(x as u32, run.max(1)));
                }
                v.truncate(len);
                let mut out = Vec::new();
                put_hybrid(&mut out, &v, width);
                let back = read_hybrid(&out, width, len);
                assert_eq!(
                    back,
                    v.iter().map(|x| u64::from(*x)).collect::<Vec<_>>(),
                    "{width} {len}"
                );
            }
        }
    }

    #[test]
    fn long_runs_are_rle_and_short_ones_packed() {
        let v = [5u32; 1000];
        let mut out = Vec::new();
        put_hybrid(&mut out, &v, 3);
        assert_eq!(out, [0xd0, 0x0f, 5], "one RLE run of 1000");
        let mut out = Vec::new();
        put_def_levels(&mut out, &[true; 20], 0);
        assert_eq!(out, [2, 0, 0, 0, 40, 1]);
        let mut out = Vec::new();
        put_def_levels(&mut out, &[true, false, true], 1);
        assert_eq!(out, [2, 0, 0, 0, 3, 0b101]);
        // A run inside a group stays packed; 8 equal values from a group's
        // start and on are one RLE run.
        let mut v = vec![1u32, 2, 3];
        v.extend([7; 20]);
        let mut out = Vec::new();
        put_hybrid(&mut out, &v, 3);
        assert_eq!(
            read_hybrid(&out, 3, v.len()),
            v.iter().map(|x| u64::from(*x)).collect::<Vec<_>>()
        );
        assert_eq!(out[0], 3, "one packed group of 1, 2, 3, 7, 7, 7, 7, 7");
        assert_eq!(out[4], 15 << 1, "then an RLE run of the other 15");
    }

    /// A reader of DELTA_BINARY_PACKED, independent of the writer's logic.
    fn read_delta(b: &[u8], int32: bool) -> Vec<i64> {
        let mut i = 0;
        let varint = |i: &mut usize| read_varint(b, i);
        let zz = |v: u64| (v >> 1) as i64 ^ -((v & 1) as i64);
        let block = varint(&mut i) as usize;
        let minis = varint(&mut i) as usize;
        let n = varint(&mut i) as usize;
        let mut cur = zz(varint(&mut i));
        let mut out = Vec::new();
        if n > 0 {
            out.push(cur);
        }
        let mini = block / minis;
        while out.len() < n {
            let min = zz(varint(&mut i));
            let widths: Vec<usize> = b[i..i + minis].iter().map(|w| usize::from(*w)).collect();
            i += minis;
            for w in widths {
                if out.len() >= n {
                    break;
                }
                let mut bit = 0;
                for _ in 0..mini {
                    let mut v = 0u64;
                    for k in 0..w {
                        let pos = bit + k;
                        v |= u64::from((b[i + pos / 8] >> (pos % 8)) & 1) << k;
                    }
                    bit += w;
                    if out.len() < n {
                        cur = if int32 {
                            i64::from((cur as i32).wrapping_add(min as i32).wrapping_add(v as i32))
                        } else {
                            cur.wrapping_add(min).wrapping_add(v as i64)
                        };
                        out.push(cur);
                    }
                }
                i += mini * w / 8;
            }
        }
        assert_eq!(i, b.len());
        out
    }

    #[test]
    fn delta_round_trips_including_extremes() {
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for len in [0usize, 1, 2, 31, 32, 33, 128, 129, 255, 256, 257, 1000, 4097] {
            let i32s: Vec<i64> = (0..len)
                .map(|k| match k % 5 {
                    0 => i64::from(i32::MIN),
                    1 => i64::from(i32::MAX),
                    _ => i64::from(next() as i32 >> (next() % 31)),
                })
                .collect();
            let mut out = Vec::new();
            put_delta::<_, true>(&mut out, &i32s, |v| v);
            assert_eq!(read_delta(&out, true), i32s, "int32 {len}");
            let i64s: Vec<i64> = (0..len)
                .map(|k| match k % 7 {
                    0 => i64::MIN,
                    1 => i64::MAX,
                    2 => 1_000_000 + k as i64 * 1700,
                    _ => next() as i64 >> (next() % 63),
                })
                .collect();
            let mut out = Vec::new();
            put_delta::<_, false>(&mut out, &i64s, |v| v);
            assert_eq!(read_delta(&out, false), i64s, "int64 {len}");
            // Constant pages: the same bytes as the general encoder's.
            for v in [0i64, -5, i64::from(i32::MAX)].into_iter().filter(|_| len > 0) {
                let same = vec![v; len];
                let (mut a, mut b) = (Vec::new(), Vec::new());
                put_delta::<_, true>(&mut a, &same, |v| v);
                put_delta_constant::<true>(&mut b, v, len);
                assert_eq!(a, b, "int32 constant {len}");
                let (mut a, mut b) = (Vec::new(), Vec::new());
                put_delta::<_, false>(&mut a, &same, |v| v);
                put_delta_constant::<false>(&mut b, v, len);
                assert_eq!(a, b, "int64 constant {len}");
            }
        }
    }
}
