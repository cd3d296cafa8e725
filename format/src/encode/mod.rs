//! Column chunks written by deeptcp itself, page by page, with the same
//! layout, encodings and metadata parquet's Arrow writer gave them.
//!
//! parquet's column writers take Arrow arrays and spend most of a row's
//! encoding time in generic machinery: its dictionary encoder hashes every
//! text value of every row (the enum and address columns, whose keys the
//! recorder already has), level computation, per-value bit writers. Here a
//! [`NumChunk`] encodes integer pages straight from column slices
//! (DELTA_BINARY_PACKED, PLAIN for the ports) with the page statistics,
//! column index and definition-level histograms parquet writes, and a
//! [`DictChunk`] writes RLE_DICTIONARY pages of dictionary indices that the
//! caller assigns (a dictionary page of PLAIN values first), without
//! statistics, like parquet's text columns with statistics off. Every page
//! header carries the CRC32 of its page (see `pagecrc`).
//!
//! The result of a chunk is what parquet's own column writer returns
//! (`ColumnCloseResult`: bytes, metadata, column and offset index), which
//! the file writer splices into the row group unchanged: the footer,
//! checkpoints and repair see no difference.

pub(crate) mod bits;

use bytes::Bytes;
use parquet::basic::{BoundaryOrder, Compression, Encoding, PageType, SortOrder, Type, ZstdLevel};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::ParquetError;
use parquet::file::metadata::{
    ColumnChunkMetaData, ColumnIndexBuilder, LevelHistogram, OffsetIndexBuilder, PageEncodingStats,
};
use parquet::file::statistics::{Statistics, ValueStatistics};
use parquet::schema::types::ColumnDescPtr;

fn general(msg: String) -> ParquetError {
    ParquetError::General(msg)
}

/// Thrift compact field header for an i32 field that follows the previous one.
const I32_NEXT: u8 = 0x15;

/// A page header (Thrift compact `PageHeader`): type, sizes, CRC32 of the
/// stored (compressed) page, and the data or dictionary page header.
fn page_header(out: &mut Vec<u8>, kind: &PageKind, uncompressed: usize, page: &[u8]) -> Result<(), ParquetError> {
    let size = |n: usize| i32::try_from(n).map_err(|_| general(format!("page of {n} bytes is too large")));
    let (page_type, uncompressed, compressed) = (
        match kind {
            PageKind::Data { .. } => PageType::DATA_PAGE,
            PageKind::Dictionary { .. } => PageType::DICTIONARY_PAGE,
        },
        size(uncompressed)?,
        size(page.len())?,
    );
    for v in [page_type as i32, uncompressed, compressed, crc32fast::hash(page) as i32] {
        out.push(I32_NEXT);
        bits::put_zigzag(out, i64::from(v));
    }
    match kind {
        PageKind::Data { values, encoding } => {
            // Field 5, data_page_header: num_values, encoding, and RLE for
            // both level encodings.
            out.push(0x1c);
            for v in [*values, *encoding as i32, Encoding::RLE as i32, Encoding::RLE as i32] {
                out.push(I32_NEXT);
                bits::put_zigzag(out, i64::from(v));
            }
        }
        PageKind::Dictionary { values } => {
            // Field 7, dictionary_page_header: num_values, PLAIN, is_sorted = false.
            out.push(0x3c);
            for v in [*values, Encoding::PLAIN as i32] {
                out.push(I32_NEXT);
                bits::put_zigzag(out, i64::from(v));
            }
            out.push(0x12);
        }
    }
    out.extend_from_slice(&[0, 0]);
    Ok(())
}

enum PageKind {
    Data { values: i32, encoding: Encoding },
    Dictionary { values: i32 },
}

/// zstd for pages, one context for a whole file.
pub(crate) struct Codec {
    zstd: zstd::bulk::Compressor<'static>,
    level: ZstdLevel,
    out: Vec<u8>,
}

impl Codec {
    pub(crate) fn new(level: ZstdLevel) -> Result<Self, ParquetError> {
        let zstd = zstd::bulk::Compressor::new(level.compression_level())
            .map_err(|e| general(format!("zstd level {}: {e}", level.compression_level())))?;
        Ok(Codec {
            zstd,
            level,
            out: Vec::new(),
        })
    }

    /// Compresses `body` and appends header and page to `to`; returns the
    /// bytes appended and the page's uncompressed size with its header.
    fn put_page(&mut self, to: &mut Vec<u8>, kind: &PageKind, body: &[u8]) -> Result<(usize, usize), ParquetError> {
        self.out.clear();
        self.out.reserve(zstd::zstd_safe::compress_bound(body.len()));
        self.zstd
            .compress_to_buffer(body, &mut self.out)
            .map_err(|e| general(format!("zstd: {e}")))?;
        let at = to.len();
        page_header(to, kind, body.len(), &self.out)?;
        let header = to.len() - at;
        to.extend_from_slice(&self.out);
        Ok((to.len() - at, header + body.len()))
    }
}

/// What every chunk keeps about its pages.
struct Pages {
    descr: ColumnDescPtr,
    /// Data pages as stored (headers and compressed pages), in order.
    data: Vec<u8>,
    offsets: OffsetIndexBuilder,
    /// Values (nulls included) in the data pages.
    values: i64,
    rows: i64,
    uncompressed: i64,
    data_pages: i32,
}

impl Pages {
    fn new(descr: ColumnDescPtr) -> Self {
        Pages {
            descr,
            data: Vec::new(),
            offsets: OffsetIndexBuilder::new(),
            values: 0,
            rows: 0,
            uncompressed: 0,
            data_pages: 0,
        }
    }

    fn add(&mut self, codec: &mut Codec, body: &[u8], rows: usize, encoding: Encoding) -> Result<(), ParquetError> {
        let values = i32::try_from(rows).map_err(|_| general(format!("page of {rows} rows")))?;
        let at = self.data.len();
        let (stored, uncompressed) = codec.put_page(&mut self.data, &PageKind::Data { values, encoding }, body)?;
        self.offsets.append_offset_and_size(at as i64, stored as i32);
        self.offsets.append_row_count(rows as i64);
        self.values += rows as i64;
        self.rows += rows as i64;
        self.uncompressed += uncompressed as i64;
        self.data_pages += 1;
        Ok(())
    }

    /// The chunk: `dictionary` (a stored dictionary page, if any) then the
    /// data pages, and its metadata as parquet's column writer makes it.
    fn finish(
        self,
        dictionary: Option<(Vec<u8>, i64)>,
        encodings: &[Encoding],
        data_encoding: Encoding,
        codec: &Codec,
        meta: impl FnOnce(
            parquet::file::metadata::ColumnChunkMetaDataBuilder,
        ) -> parquet::file::metadata::ColumnChunkMetaDataBuilder,
        column_index: Option<ColumnIndexBuilder>,
    ) -> Result<(Bytes, ColumnCloseResult), ParquetError> {
        let (dict_len, dict_uncompressed) = dictionary.as_ref().map_or((0, 0), |(d, u)| (d.len(), *u));
        let mut bytes = Vec::with_capacity(dict_len + self.data.len());
        let mut stats = Vec::new();
        if let Some((d, _)) = &dictionary {
            bytes.extend_from_slice(d);
            stats.push(PageEncodingStats {
                page_type: PageType::DICTIONARY_PAGE,
                encoding: Encoding::PLAIN,
                count: 1,
            });
        }
        bytes.extend_from_slice(&self.data);
        if self.data_pages > 0 {
            stats.push(PageEncodingStats {
                page_type: PageType::DATA_PAGE,
                encoding: data_encoding,
                count: self.data_pages,
            });
        }
        let total = bytes.len() as i64;
        let builder = ColumnChunkMetaData::builder(self.descr)
            .set_compression(Compression::ZSTD(codec.level))
            .set_encodings(encodings.to_vec())
            .set_page_encoding_stats(stats)
            .set_total_compressed_size(total)
            .set_total_uncompressed_size(self.uncompressed + dict_uncompressed)
            .set_num_values(self.values)
            .set_data_page_offset(dict_len as i64)
            .set_dictionary_page_offset(dictionary.is_some().then_some(0));
        let metadata = meta(builder).build()?;
        let mut offsets = self.offsets.build();
        for loc in &mut offsets.page_locations {
            loc.offset += dict_len as i64;
        }
        let column_index = match column_index {
            Some(b) if b.valid() => Some(b.build()?),
            _ => None,
        };
        Ok((
            Bytes::from(bytes),
            ColumnCloseResult {
                bytes_written: total as u64,
                rows_written: self.rows as u64,
                metadata,
                bloom_filter: None,
                column_index,
                offset_index: Some(offsets),
            },
        ))
    }
}

/// How an integer column is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntEncoding {
    Delta,
    Plain,
}

/// A column value type of an integer column: its physical value (INT32
/// columns sign-extended) and its order for statistics (the logical
/// type's: unsigned for `UInt*`).
pub(crate) trait IntValue: Copy + Ord {
    const PHYSICAL: Type;
    fn physical(self) -> i64;
    /// The value's place in the column's order, comparable across pages.
    fn order_key(self) -> i128;
}

/// `IntValue` for a type stored as `$physical`; `$phys` turns a value
/// into its physical value (INT32 ones sign-extended).
macro_rules! int_value {
    ($($t:ty => $physical:ident, $phys:expr;)*) => {$(
        impl IntValue for $t {
            const PHYSICAL: Type = Type::$physical;
            #[inline]
            fn physical(self) -> i64 {
                $phys(self)
            }
            #[inline]
            fn order_key(self) -> i128 {
                i128::from(self)
            }
        }
    )*};
}

int_value! {
    u16 => INT32, i64::from;
    u32 => INT32, |v: u32| i64::from(v as i32);
    i32 => INT32, i64::from;
    i64 => INT64, |v: i64| v;
    u64 => INT64, |v: u64| v as i64;
}

/// Minimum and maximum in the column's order, as physical values, and
/// the order key they were compared by.
#[derive(Debug, Clone, Copy)]
struct MinMax {
    min: (i128, i64),
    max: (i128, i64),
}

/// One integer column chunk in the making.
pub(crate) struct NumChunk {
    pages: Pages,
    physical: Type,
    encoding: IntEncoding,
    nullable: bool,
    /// Chunk statistics so far.
    minmax: Option<MinMax>,
    nulls: i64,
    /// Definition level histogram of the chunk (nullable columns).
    def_hist: [i64; 2],
    index: ColumnIndexBuilder,
    /// The last non-null page's bounds, and whether they only grew / shrank.
    last_page: Option<MinMax>,
    /// The bounds of the page written last (`None`: it held only nulls).
    latest: Option<MinMax>,
    ascending: bool,
    descending: bool,
}

/// The smallest and largest of `values` (in their own order).
#[inline]
fn min_max<T: Ord + Copy>(values: &[T]) -> Option<(T, T)> {
    let first = *values.first()?;
    let (mut lo, mut hi) = (first, first);
    for v in values {
        lo = lo.min(*v);
        hi = hi.max(*v);
    }
    Some((lo, hi))
}

/// Definition levels of the last nullable page encoded: the columns filled
/// from one record (the TCP fields) share their validity, so their levels
/// are encoded once per page and copied.
#[derive(Default)]
pub(crate) struct Levels {
    valid: Vec<bool>,
    nulls: usize,
    encoded: Vec<u8>,
}

impl Levels {
    /// Appends the levels of `valid` to `body`; returns the nulls.
    pub(crate) fn put(&mut self, body: &mut Vec<u8>, valid: &[bool]) -> usize {
        if self.valid != valid {
            self.valid.clear();
            self.valid.extend_from_slice(valid);
            self.nulls = valid.iter().filter(|v| !**v).count();
            self.encoded.clear();
            bits::put_def_levels(&mut self.encoded, valid, self.nulls);
        }
        body.extend_from_slice(&self.encoded);
        self.nulls
    }
}

/// Scratch space shared by every page a writer encodes.
#[derive(Default)]
pub(crate) struct Scratch {
    /// The page being encoded.
    pub(crate) body: Vec<u8>,
    /// Physical values of the page's non-null rows.
    pub(crate) values: Vec<i64>,
    /// Dictionary indices of the page's non-null rows.
    pub(crate) indices: Vec<u32>,
    /// Which rows of the page hold a value.
    pub(crate) valid: Vec<bool>,
    pub(crate) levels: Levels,
    /// A page rewritten from `body` ([`NumChunk::page_shifted`]).
    pub(crate) shifted: Vec<u8>,
}

impl NumChunk {
    pub(crate) fn new(descr: ColumnDescPtr, encoding: IntEncoding) -> Self {
        let physical = descr.physical_type();
        let nullable = descr.max_def_level() > 0;
        NumChunk {
            pages: Pages::new(descr),
            physical,
            encoding,
            nullable,
            minmax: None,
            nulls: 0,
            def_hist: [0, 0],
            index: ColumnIndexBuilder::new(physical),
            last_page: None,
            latest: None,
            ascending: true,
            descending: true,
        }
    }

    /// Encodes one data page of `values`; `valid` (nullable columns): which
    /// rows hold a value (the others' values are ignored).
    pub(crate) fn page<T: IntValue>(
        &mut self,
        codec: &mut Codec,
        scratch: &mut Scratch,
        values: &[T],
        valid: Option<&[bool]>,
    ) -> Result<(), ParquetError> {
        if T::PHYSICAL != self.physical {
            return Err(general(format!(
                "{:?} values for a {:?} column",
                T::PHYSICAL,
                self.physical
            )));
        }
        let rows = values.len();
        let Scratch { body, values: phys, .. } = scratch;
        body.clear();
        let nulls = match (valid, self.nullable) {
            (Some(valid), true) => {
                if valid.len() != rows {
                    return Err(general("validity and values differ in length".into()));
                }
                scratch.levels.put(body, valid)
            }
            (None, true) => return Err(general("a nullable column without validity".into())),
            (_, false) => 0,
        };
        let bounds;
        if nulls == 0 {
            // Every row holds a value: encoded straight from the column.
            bounds = min_max(values);
            match bounds {
                Some((lo, hi)) if lo == hi && self.encoding == IntEncoding::Delta => {
                    // A constant page (pid, netns, sk_err, ...): no deltas to pack.
                    if self.physical == Type::INT32 {
                        bits::put_delta_constant::<true>(body, lo.physical(), rows);
                    } else {
                        bits::put_delta_constant::<false>(body, lo.physical(), rows);
                    }
                }
                _ => self.put_values(body, values, T::physical),
            }
        } else {
            // The rows that hold one, gathered.
            let valid = valid.unwrap_or_default();
            phys.clear();
            phys.reserve(rows - nulls);
            let mut held = values.iter().zip(valid).filter(|(_, ok)| **ok).map(|(v, _)| *v);
            bounds = held.next().map(|first| {
                let (mut lo, mut hi) = (first, first);
                phys.push(first.physical());
                for v in held {
                    lo = lo.min(v);
                    hi = hi.max(v);
                    phys.push(v.physical());
                }
                (lo, hi)
            });
            self.put_values(body, phys, |v| v);
        }
        let encoding = match self.encoding {
            IntEncoding::Delta => Encoding::DELTA_BINARY_PACKED,
            IntEncoding::Plain => Encoding::PLAIN,
        };
        self.pages.add(codec, body, rows, encoding)?;
        self.note_page(bounds.map(|(lo, hi)| key_minmax(lo, hi)), nulls, rows);
        Ok(())
    }

    /// The physical minimum and maximum of the last page written, if it held values.
    pub(crate) fn last_bounds(&self) -> Option<(i64, i64)> {
        self.latest.map(|p| (p.min.1, p.max.1))
    }

    /// A page of a required INT64 delta column whose values are those of
    /// the page `scratch.body` holds (just written for another column, of
    /// `rows` values from `first`), each plus `shift`: the deltas are the
    /// same, so only the header's first value differs (`ts` from
    /// `mono_ns`). `bounds`: the shifted minimum and maximum.
    pub(crate) fn page_shifted(
        &mut self,
        codec: &mut Codec,
        scratch: &mut Scratch,
        rows: usize,
        first: i64,
        shift: i64,
        bounds: (i64, i64),
    ) -> Result<(), ParquetError> {
        if self.physical != Type::INT64 || self.nullable || self.encoding != IntEncoding::Delta {
            return Err(general(
                "a shifted page of a column that is not required INT64 deltas".into(),
            ));
        }
        let Scratch {
            body,
            values: _,
            shifted,
            ..
        } = scratch;
        let blocks = body
            .get(bits::delta_header_len::<false>(rows, first)..)
            .ok_or_else(|| general("the page to shift is shorter than its header".into()))?;
        shifted.clear();
        bits::put_delta_header::<false>(shifted, rows, first.wrapping_add(shift));
        shifted.extend_from_slice(blocks);
        self.pages.add(codec, shifted, rows, Encoding::DELTA_BINARY_PACKED)?;
        let (lo, hi) = bounds;
        self.note_page(Some(key_minmax(lo, hi)), 0, rows);
        Ok(())
    }

    /// Appends the page's values (after its levels) in the column's encoding.
    #[inline]
    fn put_values<V: Copy>(&self, body: &mut Vec<u8>, values: &[V], phys: impl Fn(V) -> i64) {
        match (self.encoding, self.physical == Type::INT32) {
            (IntEncoding::Delta, true) => bits::put_delta::<V, true>(body, values, phys),
            (IntEncoding::Delta, false) => bits::put_delta::<V, false>(body, values, phys),
            (IntEncoding::Plain, true) => {
                body.reserve(values.len() * 4);
                for v in values {
                    body.extend_from_slice(&(phys(*v) as i32).to_le_bytes());
                }
            }
            (IntEncoding::Plain, false) => {
                body.reserve(values.len() * 8);
                for v in values {
                    body.extend_from_slice(&phys(*v).to_le_bytes());
                }
            }
        }
    }

    fn note_page(&mut self, page: Option<MinMax>, nulls: usize, rows: usize) {
        self.latest = page;
        self.nulls += nulls as i64;
        let hist = [nulls as i64, (rows - nulls) as i64];
        self.def_hist[0] += hist[0];
        self.def_hist[1] += hist[1];
        let bytes = |v: i64| -> Vec<u8> {
            if self.physical == Type::INT32 {
                (v as i32).to_le_bytes().to_vec()
            } else {
                v.to_le_bytes().to_vec()
            }
        };
        match page {
            None => self.index.append(true, Vec::new(), Vec::new(), nulls as i64, None),
            Some(p) => {
                if let Some(last) = self.last_page {
                    if last.min.0 > p.min.0 || last.max.0 > p.max.0 {
                        self.ascending = false;
                    }
                    if p.min.0 > last.min.0 || p.max.0 > last.max.0 {
                        self.descending = false;
                    }
                }
                self.last_page = Some(p);
                self.index
                    .append(false, bytes(p.min.1), bytes(p.max.1), nulls as i64, None);
                self.minmax = Some(match self.minmax {
                    None => p,
                    Some(c) => MinMax {
                        min: if p.min.0 < c.min.0 { p.min } else { c.min },
                        max: if p.max.0 > c.max.0 { p.max } else { c.max },
                    },
                });
            }
        }
        let def = self.nullable.then(|| LevelHistogram::from(hist.to_vec()));
        self.index.append_histograms(&None, &def);
    }

    /// The finished chunk and its metadata.
    pub(crate) fn finish(mut self, codec: &Codec) -> Result<(Bytes, ColumnCloseResult), ParquetError> {
        let signed = self.pages.descr.sort_order() == SortOrder::SIGNED;
        let nulls = Some(self.nulls as u64);
        let (min, max) = (self.minmax.map(|m| m.min.1), self.minmax.map(|m| m.max.1));
        let statistics: Statistics = if self.physical == Type::INT32 {
            ValueStatistics::<i32>::new(min.map(|v| v as i32), max.map(|v| v as i32), None, nulls, false)
                .with_backwards_compatible_min_max(signed)
                .into()
        } else {
            ValueStatistics::<i64>::new(min, max, None, nulls, false)
                .with_backwards_compatible_min_max(signed)
                .into()
        };
        self.index.set_boundary_order(match (self.ascending, self.descending) {
            (true, _) => BoundaryOrder::ASCENDING,
            (false, true) => BoundaryOrder::DESCENDING,
            (false, false) => BoundaryOrder::UNORDERED,
        });
        let def_hist = self.nullable.then(|| LevelHistogram::from(self.def_hist.to_vec()));
        let (encodings, data_encoding) = match self.encoding {
            IntEncoding::Delta => (
                vec![Encoding::RLE, Encoding::DELTA_BINARY_PACKED],
                Encoding::DELTA_BINARY_PACKED,
            ),
            IntEncoding::Plain => (vec![Encoding::PLAIN, Encoding::RLE], Encoding::PLAIN),
        };
        self.pages.finish(
            None,
            &encodings,
            data_encoding,
            codec,
            |b| b.set_statistics(statistics).set_definition_level_histogram(def_hist),
            Some(self.index),
        )
    }
}

/// `lo`/`hi` with their order keys.
fn key_minmax<T: IntValue>(lo: T, hi: T) -> MinMax {
    MinMax {
        min: (lo.order_key(), lo.physical()),
        max: (hi.order_key(), hi.physical()),
    }
}

/// The values of one dictionary column's row group: PLAIN-encoded (a
/// 4-byte length, then the bytes), as its dictionary page holds them.
#[derive(Default)]
pub(crate) struct Dictionary {
    plain: Vec<u8>,
    /// Byte length of each value.
    lens: Vec<u32>,
}

impl Dictionary {
    /// Appends `text`; returns its index.
    pub(crate) fn push(&mut self, text: &[u8]) -> u32 {
        bits::put_plain_bytes(&mut self.plain, text);
        self.lens.push(text.len() as u32);
        (self.lens.len() - 1) as u32
    }

    pub(crate) fn len(&self) -> usize {
        self.lens.len()
    }

    /// Bytes of value `index`.
    #[inline]
    pub(crate) fn len_of(&self, index: u32) -> i64 {
        self.lens.get(index as usize).map_or(0, |l| i64::from(*l))
    }

    /// Bytes of the dictionary page's values.
    pub(crate) fn page_bytes(&self) -> usize {
        self.plain.len()
    }
}

/// One dictionary-encoded text column chunk in the making.
pub(crate) struct DictChunk {
    pages: Pages,
    nullable: bool,
    pub(crate) dict: Dictionary,
    /// Value bytes of each page (the offset index's unencoded sizes).
    unencoded: Vec<i64>,
}

impl DictChunk {
    pub(crate) fn new(descr: ColumnDescPtr) -> Self {
        let nullable = descr.max_def_level() > 0;
        DictChunk {
            pages: Pages::new(descr),
            nullable,
            dict: Dictionary::default(),
            unencoded: Vec::new(),
        }
    }

    /// Encodes one data page of `rows` rows whose non-null values have the
    /// dictionary indices `indices` (in row order), `unencoded` bytes of
    /// text in all; `valid` (nullable columns): which rows hold a value.
    pub(crate) fn page(
        &mut self,
        codec: &mut Codec,
        body: &mut Vec<u8>,
        (indices, unencoded): (&[u32], i64),
        rows: usize,
        valid: Option<&[bool]>,
    ) -> Result<(), ParquetError> {
        body.clear();
        match (valid, self.nullable) {
            (Some(valid), true) if valid.len() == rows => {
                let nulls = bits::def_levels(body, valid);
                if nulls + indices.len() != rows {
                    return Err(general("validity and indices disagree".into()));
                }
            }
            (None, false) if indices.len() == rows => {}
            _ => return Err(general("indices and rows disagree".into())),
        }
        let width = bits::bit_width(self.dict.len().saturating_sub(1) as u64);
        body.push(width);
        bits::put_hybrid(body, indices, width);
        self.unencoded.push(unencoded);
        self.pages.add(codec, body, rows, Encoding::RLE_DICTIONARY)
    }

    /// The finished chunk: dictionary page, data pages, metadata.
    pub(crate) fn finish(self, codec: &mut Codec) -> Result<(Bytes, ColumnCloseResult), ParquetError> {
        let values = i32::try_from(self.dict.len()).map_err(|_| general("dictionary too large".into()))?;
        let mut dict = Vec::new();
        let (_, uncompressed) = codec.put_page(&mut dict, &PageKind::Dictionary { values }, &self.dict.plain)?;
        let mut pages = self.pages;
        for u in self.unencoded {
            pages.offsets.append_unencoded_byte_array_data_bytes(Some(u));
        }
        pages.finish(
            Some((dict, uncompressed as i64)),
            &[Encoding::PLAIN, Encoding::RLE, Encoding::RLE_DICTIONARY],
            Encoding::RLE_DICTIONARY,
            codec,
            |b| b,
            None,
        )
    }
}
