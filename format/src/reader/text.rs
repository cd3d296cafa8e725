//! Text columns as the reader finds them: plain or dictionary-coded, with
//! any key type (a file rewritten by pyarrow, DuckDB or polars may have
//! changed either), and the shared strings and parsed values decoding
//! makes of them, each distinct value once.
//!
//! Dictionary-coded strings (`comm`, `probe`) are decoded without a per-row
//! allocation: each dictionary value used in a batch becomes one `Arc<str>`,
//! shared by every row that uses it (and, through a bounded interner, by
//! later batches too).

use std::collections::HashSet;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    ArrowPrimitiveType, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, LargeStringArray, StringArray, StringViewArray};
use arrow_schema::DataType;

/// A string column as stored: plain (Utf8, LargeUtf8, Utf8View) or a
/// dictionary of those with any integer key type.
pub(crate) struct TextColumn<'a> {
    /// Dictionary keys as indices into `values` (`usize::MAX` = key not
    /// representable), with the key array for its null mask.
    keys: Option<(Vec<usize>, &'a dyn Array)>,
    values: Strings<'a>,
    /// The dictionary's values array (identifies the dictionary across batches).
    dict: Option<&'a arrow_array::ArrayRef>,
}

enum Strings<'a> {
    Utf8(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
}

impl<'a> Strings<'a> {
    fn new(a: &'a dyn Array) -> Option<Self> {
        if let Some(s) = a.as_string_opt::<i32>() {
            Some(Strings::Utf8(s))
        } else if let Some(s) = a.as_string_opt::<i64>() {
            Some(Strings::Large(s))
        } else {
            a.as_string_view_opt().map(Strings::View)
        }
    }

    fn len(&self) -> usize {
        match self {
            Strings::Utf8(a) => a.len(),
            Strings::Large(a) => a.len(),
            Strings::View(a) => a.len(),
        }
    }

    /// `None` for null; `i` must be `< len()`.
    pub(super) fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            Strings::Utf8(a) => (!a.is_null(i)).then(|| a.value(i)),
            Strings::Large(a) => (!a.is_null(i)).then(|| a.value(i)),
            Strings::View(a) => (!a.is_null(i)).then(|| a.value(i)),
        }
    }
}

fn is_plain_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// Dictionary keys as `usize`; `None` for a non-integer key type.
fn keys_to_usize(keys: &dyn Array) -> Option<Vec<usize>> {
    fn conv<T: ArrowPrimitiveType>(keys: &dyn Array) -> Option<Vec<usize>>
    where
        usize: TryFrom<T::Native>,
    {
        keys.as_primitive_opt::<T>().map(|a| {
            a.values()
                .iter()
                .map(|&k| usize::try_from(k).unwrap_or(usize::MAX))
                .collect()
        })
    }
    match keys.data_type() {
        DataType::Int8 => conv::<Int8Type>(keys),
        DataType::Int16 => conv::<Int16Type>(keys),
        DataType::Int32 => conv::<Int32Type>(keys),
        DataType::Int64 => conv::<Int64Type>(keys),
        DataType::UInt8 => conv::<UInt8Type>(keys),
        DataType::UInt16 => conv::<UInt16Type>(keys),
        DataType::UInt32 => conv::<UInt32Type>(keys),
        DataType::UInt64 => conv::<UInt64Type>(keys),
        _ => None,
    }
}

impl<'a> TextColumn<'a> {
    /// Whether a column of this type can be read as text.
    pub(crate) fn type_ok(t: &DataType) -> bool {
        match t {
            DataType::Dictionary(k, v) => k.is_dictionary_key_type() && is_plain_text(v),
            t => is_plain_text(t),
        }
    }

    pub(crate) fn new(a: &'a dyn Array) -> Option<Self> {
        if let Some(d) = a.as_any_dictionary_opt() {
            let keys = d.keys();
            Some(TextColumn {
                keys: Some((keys_to_usize(keys)?, keys)),
                values: Strings::new(d.values().as_ref())?,
                dict: Some(d.values()),
            })
        } else {
            Some(TextColumn {
                keys: None,
                values: Strings::new(a)?,
                dict: None,
            })
        }
    }

    pub(crate) fn len(&self) -> usize {
        match &self.keys {
            Some((k, _)) => k.len(),
            None => self.values.len(),
        }
    }

    /// Calls `f` with each string the column stores: a dictionary's values
    /// (used by a row or not), or each row's; nulls left out.
    pub(crate) fn each_stored(&self, mut f: impl FnMut(&str)) {
        if self.keys.is_some() {
            (0..self.values.len())
                .filter_map(|i| self.values.get(i))
                .for_each(&mut f);
        } else {
            (0..self.len())
                .filter_map(|i| self.get(i).ok().flatten())
                .for_each(&mut f);
        }
    }

    /// Where row `i`'s string is in the values array (`None` = null key);
    /// `Err` for a dictionary key out of range or a row past the end.
    fn value_index(&self, i: usize) -> Result<Option<usize>, String> {
        match &self.keys {
            Some((keys, key_arr)) => match keys.get(i) {
                None => Err("row past the end of the column".into()),
                Some(_) if key_arr.is_null(i) => Ok(None),
                Some(&k) if k < self.values.len() => Ok(Some(k)),
                Some(_) => Err("dictionary key out of range".into()),
            },
            None if i < self.values.len() => Ok(Some(i)),
            None => Err("row past the end of the column".into()),
        }
    }

    /// The string at row `i` (`None` = null); `Err` for a dictionary key
    /// out of range or a row past the end.
    pub(crate) fn get(&self, i: usize) -> Result<Option<&'a str>, String> {
        Ok(self.value_index(i)?.and_then(|vi| self.values.get(vi)))
    }
}

/// Most distinct strings [`SharedText`] remembers across batches; beyond
/// that it forgets them all and starts over (bounds memory on hostile files).
pub(super) const MAX_INTERNED: usize = 1 << 16;

/// The shared `Arc` of `s` in `set` (at most [`MAX_INTERNED`] strings;
/// beyond that it forgets them all and starts over).
pub(super) fn intern(set: &mut HashSet<Arc<str>>, s: &str) -> Arc<str> {
    if let Some(a) = set.get(s) {
        return Arc::clone(a);
    }
    if set.len() >= MAX_INTERNED {
        set.clear();
    }
    let a: Arc<str> = Arc::from(s);
    set.insert(Arc::clone(&a));
    a
}

/// Turns one text column's strings into shared `Arc<str>`s.
///
/// For a dictionary column each dictionary value is turned into an `Arc`
/// at most once per batch (on first use) and cloned for every row that
/// uses it; across batches, equal strings get the same `Arc` through the
/// interner. A plain string column (a file rewritten by another tool)
/// allocates per row, except that a run of equal values shares one `Arc`.
#[derive(Default)]
pub(super) struct SharedText {
    /// Distinct dictionary strings seen so far (at most [`MAX_INTERNED`]).
    pub(super) interned: HashSet<Arc<str>>,
    /// This batch's dictionary: value index → its `Arc`, filled on first use.
    slots: Vec<Option<Arc<str>>>,
    /// Plain columns: the previous row's value.
    last: Option<Arc<str>>,
}

impl SharedText {
    /// Prepares for a new batch whose column is `c`.
    pub(super) fn start_batch(&mut self, c: &TextColumn<'_>) {
        self.slots.clear();
        if c.keys.is_some() {
            self.slots.resize(c.values.len(), None);
        }
    }

    pub(super) fn intern(&mut self, s: &str) -> Arc<str> {
        intern(&mut self.interned, s)
    }

    /// Row `i` of `c` (the column passed to the last [`start_batch`](Self::start_batch)).
    pub(super) fn get(&mut self, c: &TextColumn<'_>, i: usize) -> Result<Option<Arc<str>>, String> {
        if c.keys.is_none() {
            let Some(s) = c.get(i)? else { return Ok(None) };
            if let Some(last) = &self.last {
                if **last == *s {
                    return Ok(Some(Arc::clone(last)));
                }
            }
            let a: Arc<str> = Arc::from(s);
            self.last = Some(Arc::clone(&a));
            return Ok(Some(a));
        }
        let Some(vi) = c.value_index(i)? else { return Ok(None) };
        if let Some(Some(a)) = self.slots.get(vi) {
            return Ok(Some(Arc::clone(a)));
        }
        let Some(s) = c.values.get(vi) else { return Ok(None) };
        let a = self.intern(s);
        if let Some(slot) = self.slots.get_mut(vi) {
            *slot = Some(Arc::clone(&a));
        }
        Ok(Some(a))
    }
}

/// A parsed dictionary value of one column ([`Memo`]).
#[derive(Clone)]
enum Parsed<T> {
    Unseen,
    Null,
    Bad,
    Value(T),
}

/// One text column's dictionary values, each parsed on first use. Kept
/// from batch to batch while the column's dictionary stays the same (the
/// parquet reader hands every batch of a column chunk the same dictionary
/// array); the held clone keeps that array alive, so identity by pointer is
/// sound.
pub(super) struct Memo<T> {
    dict: Option<arrow_array::ArrayRef>,
    slots: Vec<Parsed<T>>,
}

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Memo {
            dict: None,
            slots: Vec::new(),
        }
    }
}

impl<T: Clone> Memo<T> {
    /// Calls `emit` with each row's parsed value (`None` = null) of `c`, in
    /// order, parsing each distinct dictionary value once; `false` as soon
    /// as a row is invalid (a key out of range, a value `parse` rejects) or
    /// `emit` says so. Plain columns are parsed row by row.
    pub(super) fn each(
        &mut self,
        c: &TextColumn<'_>,
        mut parse: impl FnMut(&str) -> Option<T>,
        mut emit: impl FnMut(Option<T>) -> bool,
    ) -> bool {
        let Some((keys, key_arr)) = &c.keys else {
            for i in 0..c.values.len() {
                let v = match c.values.get(i) {
                    None => None,
                    Some(s) => match parse(s) {
                        Some(v) => Some(v),
                        None => return false,
                    },
                };
                if !emit(v) {
                    return false;
                }
            }
            return true;
        };
        let same = matches!((&self.dict, c.dict), (Some(a), Some(b)) if Arc::ptr_eq(a, b));
        if !same {
            self.dict = c.dict.cloned();
            self.slots.clear();
            self.slots.resize(c.values.len(), Parsed::Unseen);
        }
        let nulls = key_arr.nulls();
        for (i, &k) in keys.iter().enumerate() {
            if nulls.is_some_and(|n| n.is_null(i)) {
                if !emit(None) {
                    return false;
                }
                continue;
            }
            let Some(slot) = self.slots.get_mut(k) else {
                return false; // key out of range
            };
            if let Parsed::Unseen = slot {
                *slot = match c.values.get(k) {
                    None => Parsed::Null,
                    Some(s) => parse(s).map_or(Parsed::Bad, Parsed::Value),
                };
            }
            let v = match slot {
                Parsed::Value(v) => Some(v.clone()),
                Parsed::Null => None,
                Parsed::Bad | Parsed::Unseen => return false,
            };
            if !emit(v) {
                return false;
            }
        }
        true
    }

    /// The rows of `c` into `out` (cleared first); `false` if a row is
    /// invalid.
    pub(super) fn column(
        &mut self,
        c: &TextColumn<'_>,
        parse: impl FnMut(&str) -> Option<T>,
        out: &mut Vec<Option<T>>,
    ) -> bool {
        out.clear();
        out.reserve(c.len());
        self.each(c, parse, |v| {
            out.push(v);
            true
        })
    }

    /// [`column`](Self::column) of a column without nulls: a null is an
    /// invalid row too.
    pub(super) fn column_required(
        &mut self,
        c: &TextColumn<'_>,
        parse: impl FnMut(&str) -> Option<T>,
        out: &mut Vec<T>,
    ) -> bool {
        out.clear();
        out.reserve(c.len());
        self.each(c, parse, |v| match v {
            Some(v) => {
                out.push(v);
                true
            }
            None => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{DictionaryArray, Int32Array, UInt16Array};

    #[test]
    fn text_column_dictionary_key_types_and_empty_values() {
        // all-null keys over an empty dictionary (an all-null enum column)
        let d = DictionaryArray::<Int32Type>::try_new(
            Int32Array::from(vec![None, None]),
            Arc::new(StringArray::from(Vec::<&str>::new())),
        )
        .unwrap();
        let c = TextColumn::new(&d).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(0), Ok(None));
        assert_eq!(c.get(1), Ok(None));
        assert!(c.get(2).is_err(), "past the end is an error, not a panic");

        let d = DictionaryArray::<UInt16Type>::try_new(
            UInt16Array::from(vec![Some(1), None, Some(0)]),
            Arc::new(LargeStringArray::from(vec!["a", "b"])),
        )
        .unwrap();
        let c = TextColumn::new(&d).unwrap();
        assert_eq!(c.get(0), Ok(Some("b")));
        assert_eq!(c.get(1), Ok(None));
        assert_eq!(c.get(2), Ok(Some("a")));

        let plain = StringViewArray::from(vec![Some("x"), None]);
        let c = TextColumn::new(&plain).unwrap();
        assert_eq!(c.get(0), Ok(Some("x")));
        assert_eq!(c.get(1), Ok(None));
        assert!(c.get(5).is_err());

        assert!(TextColumn::new(&Int32Array::from(vec![1])).is_none());
        assert!(TextColumn::type_ok(&DataType::Dictionary(
            Box::new(DataType::Int8),
            Box::new(DataType::Utf8View)
        )));
        assert!(!TextColumn::type_ok(&DataType::Dictionary(
            Box::new(DataType::Int8),
            Box::new(DataType::Binary)
        )));
    }

    #[test]
    fn shared_text_interns_dictionary_values_and_reuses_plain_runs() {
        let mut t = SharedText::default();
        let d = DictionaryArray::<UInt8Type>::try_new(
            vec![Some(1), Some(0), None, Some(1), Some(3)].into(),
            Arc::new(StringArray::from(vec![Some("a"), Some("b"), Some("unused"), None])),
        )
        .unwrap();
        let c = TextColumn::new(&d).unwrap();
        t.start_batch(&c);
        let r: Vec<_> = (0..5).map(|i| t.get(&c, i).unwrap()).collect();
        assert_eq!(r[0].as_deref(), Some("b"));
        assert_eq!(r[1].as_deref(), Some("a"));
        assert_eq!(r[2], None);
        assert!(Arc::ptr_eq(r[0].as_ref().unwrap(), r[3].as_ref().unwrap()));
        assert_eq!(r[4], None, "a null dictionary value reads as null");
        assert!(t.get(&c, 5).is_err());
        assert_eq!(t.interned.len(), 2, "only used values are interned");

        // next batch, another dictionary with the same string: same Arc
        let d2 = DictionaryArray::<UInt8Type>::try_new(vec![Some(0)].into(), Arc::new(StringArray::from(vec!["b"])))
            .unwrap();
        let c2 = TextColumn::new(&d2).unwrap();
        t.start_batch(&c2);
        assert!(Arc::ptr_eq(&t.get(&c2, 0).unwrap().unwrap(), r[0].as_ref().unwrap()));

        // plain strings: a run of equal values shares one Arc
        let plain = StringArray::from(vec![Some("x"), Some("x"), None, Some("y")]);
        let c3 = TextColumn::new(&plain).unwrap();
        t.start_batch(&c3);
        let x0 = t.get(&c3, 0).unwrap().unwrap();
        let x1 = t.get(&c3, 1).unwrap().unwrap();
        assert!(Arc::ptr_eq(&x0, &x1));
        assert_eq!(t.get(&c3, 2).unwrap(), None);
        assert_eq!(t.get(&c3, 3).unwrap().as_deref(), Some("y"));
    }

    #[test]
    fn memo_parses_each_dictionary_value_once_and_rejects_bad_rows() {
        let values: arrow_array::ArrayRef = Arc::new(StringArray::from(vec![Some("1"), Some("x"), None, Some("2")]));
        let d = DictionaryArray::<Int32Type>::try_new(
            vec![Some(0), Some(3), None, Some(0), Some(2)].into(),
            Arc::clone(&values),
        )
        .unwrap();
        let c = TextColumn::new(&d).unwrap();
        let mut memo = Memo::<u32>::default();
        let mut calls = 0;
        let mut out = Vec::new();
        let parse = |s: &str| s.parse().ok();
        assert!(memo.column(
            &c,
            |s| {
                calls += 1;
                parse(s)
            },
            &mut out
        ));
        assert_eq!(out, [Some(1), Some(2), None, Some(1), None]);
        assert_eq!(calls, 2, "each used value parsed once");
        // Null where required.
        let mut required = Vec::new();
        assert!(!memo.column_required(&c, parse, &mut required));
        // The next batch over the same dictionary reuses what was parsed.
        let d2 = DictionaryArray::<Int32Type>::try_new(vec![Some(3), Some(0)].into(), Arc::clone(&values)).unwrap();
        let c2 = TextColumn::new(&d2).unwrap();
        let mut again = 0;
        assert!(memo.column_required(
            &c2,
            |s| {
                again += 1;
                parse(s)
            },
            &mut required
        ));
        assert_eq!((required.as_slice(), again), ([2, 1].as_slice(), 0));
        // A value that does not parse, and a key out of range, are bad rows.
        let d3 = DictionaryArray::<Int32Type>::try_new(vec![Some(0), Some(1)].into(), Arc::clone(&values)).unwrap();
        assert!(!memo.column(&TextColumn::new(&d3).unwrap(), parse, &mut out));
        let short: arrow_array::ArrayRef = Arc::new(StringArray::from(vec!["5"]));
        let keys = Int32Array::from(vec![0, 1]);
        let c4 = TextColumn {
            keys: Some((vec![0, 1], &keys)),
            values: Strings::new(short.as_ref()).unwrap(),
            dict: Some(&short),
        };
        assert!(!memo.column(&c4, parse, &mut out));
        // Plain columns: row by row.
        let plain = StringArray::from(vec![Some("7"), None]);
        assert!(memo.column(&TextColumn::new(&plain).unwrap(), parse, &mut out));
        assert_eq!(out, [Some(7), None]);
    }
}
