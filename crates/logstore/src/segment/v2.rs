//! Format 2 segments (`HMLOGSG2`): small column-within-block row groups compressed against
//! a per-segment dictionary, a term index of 32-bit key hashes, binary per-row columns.
//! `docs/format.md` has the bytes, `docs/engine.md` the measurements behind the constants.
//!
//! Reading one line decodes one block of [`ROWS_PER_BLOCK`] rows (a few kilobytes), which is
//! what keeps verifying scattered candidates cheap. The term index stores hashes, not key
//! text: a key whose hash another key of the segment shares is listed in `ambiguous`, so the
//! search verifies its rows instead of trusting them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::{self, File};
use std::hash::BuildHasherDefault;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use hubmon_model::{Level, LogEntry, Timestamp};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Origin, SegmentIndex};
use crate::codec::{
    self, ABSENT, OPTIONAL_FIELDS, RowView, get_bytes, get_str, get_varint, hash32, hash64, put_bytes, put_varint,
    unzigzag, zigzag,
};
use crate::head::{KeyHasher, Postings};
use crate::partition::{Columns, FieldColumn, Partition, model_field_column};
use crate::query::Predicate;
use crate::{Error, StoredEntry};

pub(super) const MAGIC: &[u8; 8] = b"HMLOGSG2";
/// Rows per block: a candidate line costs the decompression of its block, so blocks are
/// small; the segment dictionary keeps them compressing like large ones.
const ROWS_PER_BLOCK: usize = 64;
/// Terms per term block.
const TERMS_PER_BLOCK: usize = 512;
/// zstd level of everything in a segment (see engine.md for the levels measured).
const ZSTD_LEVEL: i32 = 3;
/// Bytes of sample blocks that make the segment's compression dictionary.
const DICTIONARY_BYTES: usize = 48 << 10;
/// A column with more distinct values than this in a segment stores its values inline.
const MAX_DICTIONARY_VALUES: usize = 4096;
/// A field with more distinct values than this in a segment is not in the key list;
/// `field_values` reads its rows instead (request ids would otherwise cost more than the
/// lines themselves).
const MAX_LISTED_VALUES: usize = 1000;
/// A free-form field gets a value column of its own when at least one row in this many of
/// the segment's rows has it; rarer fields go into each row's "other fields" record. A column
/// costs every row of the segment (a code, or an absent marker), so one line with 10,000
/// fields would otherwise have cost 10,000 columns as long as the segment.
const COLUMN_MIN_SHARE: usize = 64;
/// The most free-form fields that get columns in one segment (the most frequent win).
const MAX_FREE_FORM_COLUMNS: usize = 256;
/// Decompressed row blocks kept for all open segments together (see [`BLOCK_CACHE`]).
const BLOCK_CACHE_BYTES: usize = 64 << 20;
/// Term blocks are cached under these numbers and up, after the row blocks.
const TERM_BLOCK_KEYS: usize = usize::MAX / 2;
/// Decompression contexts kept per segment (one per thread a search uses, see `search`).
const KEPT_DECOMPRESSORS: usize = 4;

#[derive(Debug, Serialize, Deserialize)]
struct Footer {
    origin: Origin,
    partition: i64,
    rows: u32,
    min_ts: i64,
    max_ts: i64,
    min_id: u64,
    max_id: u64,
    /// Where the compression dictionary is: (offset, length).
    dictionary: (u64, u32),
    /// Where the binary columns are: (offset, length, decompressed length).
    columns: (u64, u32, u32),
    /// The value columns of the row blocks, in block order after the fixed ones.
    value_columns: Vec<ValueColumn>,
    /// Whether the row blocks hold each row's other fields (those without a column) after the
    /// value columns. Absent in segments written before it existed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    other_fields: bool,
    /// (first hash, offset, length, decompressed length) of each term block.
    terms: Vec<(u32, u64, u32, u32)>,
    /// Hashes shared by two or more keys in this segment, sorted.
    ambiguous: Vec<u32>,
    /// Presence, label and field-value keys of the rows, sorted, for listings.
    keys: Vec<String>,
    /// Fields with too many distinct values to list in `keys`.
    unlisted: Vec<String>,
    category_names: Vec<String>,
    template_texts: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ValueColumn {
    /// An optional model field (`request_id`, …) or a free-form field name.
    name: String,
    /// Distinct values; a block then stores `code + 1` per row (0 = absent) instead of values.
    dictionary: Option<Vec<Value>>,
}

pub(crate) struct Segment {
    path: PathBuf,
    file: File,
    footer: Footer,
    columns: Columns,
    /// (offset, length, decompressed length) of each row block.
    blocks: Vec<(u64, u32, u32)>,
    /// Per value column, its codes when it is dictionary-coded.
    coded: Vec<Option<CodedColumn>>,
    /// Decompression contexts with the segment's dictionary loaded, reused: creating one per
    /// block cost more than decompressing the block. A search reads candidates on several
    /// threads, so another context is made only when every kept one is in use.
    decompressors: Mutex<Vec<zstd::bulk::Decompressor<'static>>>,
    dictionary: Vec<u8>,
    size: u64,
    /// This segment's number in the block cache.
    uid: u64,
}

/// A dictionary-coded column in memory: `code + 1` per row (0 = absent), and each dictionary
/// value's text as queries compare it (lower-cased `field_text`).
struct CodedColumn {
    codes: Vec<u16>,
    texts: Vec<Option<String>>,
}

/// One decompressed row block and where each row's value of each column starts.
struct Block {
    data: Vec<u8>,
    /// `starts[column][row]`; the message column is last.
    starts: Vec<Vec<u32>>,
}

impl Block {
    fn bytes(&self) -> usize {
        self.data.len() + self.starts.iter().map(|s| s.len() * 4 + 24).sum::<usize>()
    }
}

/// Decompressed row blocks of every open segment, by (segment, block), the least recently
/// used dropped past [`BLOCK_CACHE_BYTES`]. Reading a candidate line is mostly its block's
/// read and decompression, so a search that reads the same lines again (a refreshed dashboard,
/// the next page, a count after a search) skips both, as a database's buffer cache would.
struct BlockCache {
    blocks: lru::LruCache<(u64, usize), Arc<Block>>,
    bytes: usize,
}

static BLOCK_CACHE: LazyLock<Mutex<BlockCache>> =
    LazyLock::new(|| Mutex::new(BlockCache { blocks: lru::LruCache::unbounded(), bytes: 0 }));

/// Numbers open segments for the block cache: a segment opened again (or a new one at the
/// same path) never finds another's blocks.
static NEXT_SEGMENT: AtomicU64 = AtomicU64::new(0);

impl BlockCache {
    fn get(&mut self, key: (u64, usize)) -> Option<Arc<Block>> {
        self.blocks.get(&key).cloned()
    }

    fn put(&mut self, key: (u64, usize), block: Arc<Block>) {
        self.bytes += block.bytes();
        if let Some(replaced) = self.blocks.put(key, block) {
            self.bytes -= replaced.bytes();
        }
        while self.bytes > BLOCK_CACHE_BYTES {
            let Some((_, evicted)) = self.blocks.pop_lru() else { break };
            self.bytes -= evicted.bytes();
        }
    }
}

/// A column's encoder during a write: a dictionary while the column has few values.
struct ColumnBuilder {
    name: String,
    codes: HashMap<Vec<u8>, u16, BuildHasherDefault<KeyHasher>>,
    /// `code + 1` per row so far (0 = absent), while the column is dictionary-coded.
    rows: Vec<u16>,
    values: Vec<Vec<u8>>,
    plain: bool,
}

impl ColumnBuilder {
    fn new(name: String, rows: usize) -> ColumnBuilder {
        ColumnBuilder {
            name,
            codes: HashMap::default(),
            rows: Vec::with_capacity(rows),
            values: Vec::new(),
            plain: false,
        }
    }

    /// Codes row `row`'s tagged value; rows skipped since the last call lack the column.
    fn add(&mut self, row: usize, value: &[u8]) {
        if self.plain {
            return;
        }
        self.rows.resize(row, 0);
        if value == [ABSENT] {
            self.rows.push(0);
            return;
        }
        if let Some(code) = self.codes.get(value) {
            self.rows.push(*code + 1);
            return;
        }
        if self.values.len() >= MAX_DICTIONARY_VALUES {
            self.plain = true;
            self.codes = HashMap::default();
            self.values = Vec::new();
            self.rows = Vec::new();
            return;
        }
        let code = u16::try_from(self.values.len()).unwrap_or(u16::MAX);
        self.codes.insert(value.to_vec(), code);
        self.values.push(value.to_vec());
        self.rows.push(code + 1);
    }

    /// Marks the rows after the last one that had the column as lacking it.
    fn finish(&mut self, rows: usize) {
        if !self.plain {
            self.rows.resize(rows, 0);
        }
    }
}

pub(super) fn write(
    dir: &Path,
    partition: i64,
    origin: Origin,
    rows: &[&[u8]],
    index: SegmentIndex,
) -> Result<PathBuf, Error> {
    // Rows arrive in their WAL record form and are read as views, never decoded: a flush
    // copies their tagged values into columns and blocks as they are.
    let name = format!("{partition:015}-{:010}-{:03}.seg", origin.wal_to, origin.part);
    let path = dir.join(&name);
    let temporary = dir.join(format!("{name}.tmp"));
    let encode = |e: std::io::Error| Error::Encode(format!("{}: {e}", temporary.display()));

    // Value columns: the optional model fields, then the free-form fields that enough rows
    // have (see COLUMN_MIN_SHARE), sorted by name; a row's other fields are kept together.
    // Sized first: collecting through `Result` would grow the vector a doubling at a time.
    let mut views: Vec<RowView> = Vec::with_capacity(rows.len());
    for row in rows {
        views.push(view(row)?);
    }
    let columned = free_form_columns(&views);
    let mut by_column: Vec<(&str, usize)> = columned.iter().map(|(name, column)| (*name, *column)).collect();
    by_column.sort_unstable_by_key(|(_, column)| *column);
    let mut builders: Vec<ColumnBuilder> = OPTIONAL_FIELDS
        .iter()
        .copied()
        .chain(by_column.into_iter().map(|(name, _)| name))
        .map(|name| ColumnBuilder::new(name.to_string(), rows.len()))
        .collect();
    let mut other_names: std::collections::BTreeSet<&str> = Default::default();
    for (at, row) in views.iter().enumerate() {
        for (builder, value) in builders.iter_mut().zip(row.optional) {
            builder.add(at, value);
        }
        for (name, value) in row.fields() {
            match columned.get(name) {
                Some(column) => builders[*column].add(at, value),
                None => {
                    other_names.insert(name);
                }
            }
        }
    }
    for builder in &mut builders {
        builder.finish(rows.len());
    }
    let other_fields = !other_names.is_empty();

    let mut raw_blocks = Vec::with_capacity(rows.len().div_ceil(ROWS_PER_BLOCK));
    for chunk in views.chunks(ROWS_PER_BLOCK) {
        let mut raw = Vec::with_capacity(chunk.len() * 128);
        for (column, builder) in builders.iter().enumerate().filter(|(_, b)| b.plain) {
            for row in chunk {
                value_of(row, column, &builder.name, &mut raw);
            }
        }
        if other_fields {
            for row in chunk {
                let others = || row.fields().filter(|(name, _)| !columned.contains_key(name));
                put_varint(&mut raw, others().count() as u64);
                for (name, value) in others() {
                    put_bytes(&mut raw, name.as_bytes());
                    raw.extend_from_slice(value);
                }
            }
        }
        for row in chunk {
            put_bytes(&mut raw, row.message);
        }
        raw_blocks.push(raw);
    }

    // The dictionary is whole sample blocks from across the segment: zstd then finds each
    // block's repetition (message templates, field values) in it, as it would in one big
    // frame, while every block stays decodable on its own.
    let mut dictionary = Vec::with_capacity(DICTIONARY_BYTES);
    let step = (raw_blocks.len() / 16).max(1);
    for raw in raw_blocks.iter().step_by(step) {
        if dictionary.len() >= DICTIONARY_BYTES {
            break;
        }
        dictionary.extend_from_slice(&raw[..raw.len().min(DICTIONARY_BYTES - dictionary.len())]);
    }

    let mut out = Vec::with_capacity(rows.len() * 48);
    out.extend_from_slice(MAGIC);
    let dictionary_at = (out.len() as u64, u32::try_from(dictionary.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(&dictionary);
    let mut block_lens = Vec::with_capacity(raw_blocks.len());
    {
        let mut compressor = zstd::bulk::Compressor::with_dictionary(ZSTD_LEVEL, &dictionary).map_err(encode)?;
        for raw in &raw_blocks {
            let compressed = compressor.compress(raw).map_err(encode)?;
            block_lens.push((compressed.len(), raw.len()));
            out.extend_from_slice(&compressed);
        }
    }

    let SegmentIndex { postings, columns } = index;
    let (texts, mut plain) = key_texts(&builders, &columns);
    // Other fields are listed like plain columns: by name, their values read from rows.
    plain.extend(other_names.iter().map(|name| name.to_string()));
    // Dictionary-coded fields are answered from the in-memory columns (exactly, comparisons
    // included), so their value postings would only take space. (Level and category have
    // no keys at all: see `visit_field_keys`.)
    let mut answered: std::collections::HashSet<u64, BuildHasherDefault<KeyHasher>> = Default::default();
    let mut codes: Vec<Vec<u16>> = Vec::new();
    for builder in builders.iter_mut().filter(|b| !b.plain) {
        for value in &builder.values {
            if let Some(text) = codec::get_value(value, &mut 0).flatten().as_ref().and_then(hubmon_model::json_text) {
                answered.insert(hash64(crate::text::field_key(&builder.name, &text).as_bytes()));
            }
        }
        codes.push(std::mem::take(&mut builder.rows));
    }
    let rows_end = out.len();
    let (terms, ambiguous) = write_terms(&mut out, &postings, |hash| !answered.contains(&hash)).map_err(encode)?;
    let terms_end = out.len();

    let mut binary = Vec::with_capacity(rows.len() * 8);
    put_columns(&mut binary, &columns, &block_lens, &codes);
    let compressed = zstd::bulk::compress(&binary, ZSTD_LEVEL).map_err(encode)?;
    let columns_at = (
        out.len() as u64,
        u32::try_from(compressed.len()).unwrap_or(u32::MAX),
        u32::try_from(binary.len()).unwrap_or(u32::MAX),
    );
    out.extend_from_slice(&compressed);

    let columns_end = out.len();
    let (mut keys, mut unlisted) = listed_keys(texts);
    keys.extend(other_names.iter().map(|name| format!("p\u{0}{name}")));
    keys.sort_unstable();
    keys.dedup();
    unlisted.extend(plain);
    unlisted.sort_unstable();
    let footer = Footer {
        origin,
        partition,
        rows: u32::try_from(rows.len()).unwrap_or(u32::MAX),
        min_ts: columns.timestamps.iter().copied().min().unwrap_or(0),
        max_ts: columns.timestamps.iter().copied().max().unwrap_or(0),
        min_id: columns.ids.iter().copied().min().unwrap_or(0),
        max_id: columns.ids.iter().copied().max().unwrap_or(0),
        dictionary: dictionary_at,
        columns: columns_at,
        value_columns: builders
            .into_iter()
            .map(|b| ValueColumn {
                name: b.name,
                dictionary: (!b.plain).then(|| {
                    b.values.iter().map(|v| codec::get_value(v, &mut 0).flatten().unwrap_or(Value::Null)).collect()
                }),
            })
            .collect(),
        other_fields,
        terms,
        ambiguous,
        keys,
        unlisted,
        category_names: columns.category_names,
        template_texts: columns.template_texts,
    };
    let json = serde_json::to_vec(&footer).map_err(|e| Error::Encode(e.to_string()))?;
    let footer_bytes = zstd::bulk::compress(&json, ZSTD_LEVEL).map_err(encode)?;
    out.extend_from_slice(&footer_bytes);
    tracing::debug!(
        path = %path.display(),
        rows = rows.len(),
        dictionary_bytes = dictionary.len(),
        block_bytes = rows_end - dictionary.len() - MAGIC.len(),
        term_bytes = terms_end - rows_end,
        column_bytes = columns_end - terms_end,
        footer_bytes = footer_bytes.len(),
        "log segment written"
    );
    out.extend_from_slice(&(footer_bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&footer_bytes).to_le_bytes());
    out.extend_from_slice(MAGIC);

    let mut file = File::create(&temporary).map_err(|e| Error::io("create", &temporary, e))?;
    file.write_all(&out).map_err(|e| Error::io("write", &temporary, e))?;
    file.sync_all().map_err(|e| Error::io("sync", &temporary, e))?;
    fs::rename(&temporary, &path).map_err(|e| Error::io("rename", &temporary, e))?;
    Ok(path)
}

/// The free-form fields that get value columns, with their column index (after the optional
/// model fields, in name order): those that at least one row in [`COLUMN_MIN_SHARE`] has,
/// the [`MAX_FREE_FORM_COLUMNS`] most frequent of them.
fn free_form_columns<'a>(rows: &[RowView<'a>]) -> HashMap<&'a str, usize, BuildHasherDefault<KeyHasher>> {
    let mut counts: HashMap<&str, usize, BuildHasherDefault<KeyHasher>> = HashMap::default();
    for row in rows {
        for (name, _) in row.fields() {
            *counts.entry(name).or_default() += 1;
        }
    }
    let needed = rows.len().div_ceil(COLUMN_MIN_SHARE).max(1);
    let mut frequent: Vec<(&str, usize)> = counts.into_iter().filter(|(_, n)| *n >= needed).collect();
    frequent.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    frequent.truncate(MAX_FREE_FORM_COLUMNS);
    let mut names: Vec<&str> = frequent.into_iter().map(|(name, _)| name).collect();
    names.sort_unstable();
    names.into_iter().enumerate().map(|(i, name)| (name, OPTIONAL_FIELDS.len() + i)).collect()
}

fn view(row: &[u8]) -> Result<RowView<'_>, Error> {
    RowView::parse(row).ok_or_else(|| Error::Corrupt("a head row does not parse".into()))
}

/// The tagged value of value column `column` (named `name`) on `row`.
fn value_of(row: &RowView, column: usize, name: &str, out: &mut Vec<u8>) {
    match row.optional.get(column) {
        Some(value) => out.extend_from_slice(value),
        None => match row.field(name) {
            Some(value) => out.extend_from_slice(value),
            None => out.push(ABSENT),
        },
    }
}

/// The text of the presence, stream-label and field-value keys the segment's rows have, for
/// listings, and the fields with too many values to list. Value texts come from the value
/// dictionaries: a column with too many values to code has too many to list.
fn key_texts(builders: &[ColumnBuilder], columns: &Columns) -> (Vec<String>, Vec<String>) {
    let mut texts = std::collections::BTreeSet::new();
    crate::partition::model_key_texts(columns, &mut texts);
    let mut plain = Vec::new();
    for builder in builders {
        if builder.plain {
            texts.insert(format!("p\u{0}{}", builder.name));
            plain.push(builder.name.clone());
            continue;
        }
        let label = crate::partition::STREAM_LABELS.contains(&builder.name.as_str());
        for raw in &builder.values {
            if let Some(text) = codec::get_value(raw, &mut 0).flatten().as_ref().and_then(hubmon_model::json_text) {
                crate::partition::add_field_key_texts(&mut texts, &builder.name, &text, label);
            }
        }
    }
    (texts.into_iter().collect(), plain)
}

/// Splits the key texts into the listed ones and the fields with too many values to list.
fn listed_keys(texts: Vec<String>) -> (Vec<String>, Vec<String>) {
    let mut per_field: HashMap<&str, usize> = HashMap::new();
    for text in &texts {
        if let Some(field) = value_key_field(text) {
            *per_field.entry(field).or_default() += 1;
        }
    }
    let mut unlisted: Vec<String> =
        per_field.into_iter().filter(|(_, n)| *n > MAX_LISTED_VALUES).map(|(f, _)| f.to_string()).collect();
    unlisted.sort_unstable();
    let keys = texts
        .iter()
        .filter(|t| value_key_field(t).is_none_or(|f| unlisted.binary_search_by(|u| u.as_str().cmp(f)).is_err()))
        .cloned()
        .collect();
    (keys, unlisted)
}

/// The field of an `f\0field\0value` key.
fn value_key_field(key: &str) -> Option<&str> {
    key.strip_prefix("f\u{0}")?.split('\u{0}').next()
}

/// Writes the term blocks: per block `[n][hash deltas…][counts…][posting byte lengths…]
/// [postings as row deltas…]`, all varints. Keys whose 32-bit hashes meet are merged.
#[allow(clippy::type_complexity)]
fn write_terms(
    out: &mut Vec<u8>,
    postings: &Postings,
    keep: impl Fn(u64) -> bool,
) -> std::io::Result<(Vec<(u32, u64, u32, u32)>, Vec<u32>)> {
    // (32-bit hash, position in `postings`), by hash: the position breaks ties, so rows of
    // keys sharing a hash come in key order before they are merged.
    let mut order: Vec<(u32, u32)> = postings
        .keys()
        .iter()
        .enumerate()
        .filter(|(_, key)| keep(**key))
        .map(|(at, key)| (hash32(*key), at as u32))
        .collect();
    order.sort_unstable();
    let mut terms: Vec<(u32, std::borrow::Cow<[u32]>)> = Vec::with_capacity(order.len());
    let mut ambiguous = Vec::new();
    for (hash, at) in order {
        let rows = postings.rows_at(at as usize);
        match terms.last_mut() {
            Some((last, existing)) if *last == hash => {
                let existing = existing.to_mut();
                existing.extend_from_slice(rows);
                existing.sort_unstable();
                existing.dedup();
                if ambiguous.last() != Some(&hash) {
                    ambiguous.push(hash);
                }
            }
            _ => terms.push((hash, std::borrow::Cow::Borrowed(rows))),
        }
    }
    let mut directory = Vec::new();
    let mut compressor = zstd::bulk::Compressor::new(ZSTD_LEVEL)?;
    let (mut raw, mut lists, mut list_lens) = (Vec::new(), Vec::new(), Vec::new());
    for chunk in terms.chunks(TERMS_PER_BLOCK) {
        raw.clear();
        lists.clear();
        list_lens.clear();
        put_varint(&mut raw, chunk.len() as u64);
        let mut previous = 0u32;
        for (hash, _) in chunk {
            put_varint(&mut raw, u64::from(hash - previous));
            previous = *hash;
        }
        for (_, rows) in chunk {
            let start = lists.len();
            let mut previous = 0u32;
            for &row in rows.iter() {
                put_varint(&mut lists, u64::from(row - previous));
                previous = row;
            }
            put_varint(&mut raw, rows.len() as u64);
            list_lens.push(lists.len() - start);
        }
        for len in &list_lens {
            put_varint(&mut raw, *len as u64);
        }
        raw.extend_from_slice(&lists);
        let compressed = compressor.compress(&raw)?;
        let first = chunk.first().map_or(0, |(h, _)| *h);
        directory.push((
            first,
            out.len() as u64,
            u32::try_from(compressed.len()).unwrap_or(u32::MAX),
            u32::try_from(raw.len()).unwrap_or(u32::MAX),
        ));
        out.extend_from_slice(&compressed);
    }
    Ok((directory, ambiguous))
}

/// The per-row columns and the block lengths, as varint arrays: ids and timestamps as
/// deltas from the previous row (zigzag), the others as they are.
fn put_columns(out: &mut Vec<u8>, columns: &Columns, block_lens: &[(usize, usize)], codes: &[Vec<u16>]) {
    put_varint(out, columns.ids.len() as u64);
    let mut previous = 0u64;
    for id in &columns.ids {
        put_varint(out, zigzag(id.wrapping_sub(previous) as i64));
        previous = *id;
    }
    let mut previous = 0i64;
    for ts in &columns.timestamps {
        put_varint(out, zigzag(ts.wrapping_sub(previous)));
        previous = *ts;
    }
    out.extend_from_slice(&columns.levels);
    for list in [&columns.categories, &columns.templates, &columns.message_bytes] {
        for value in list {
            put_varint(out, u64::from(*value));
        }
    }
    put_varint(out, block_lens.len() as u64);
    for (compressed, raw) in block_lens {
        put_varint(out, *compressed as u64);
        put_varint(out, *raw as u64);
    }
    for column in codes {
        for code in column {
            put_varint(out, u64::from(*code));
        }
    }
}

#[allow(clippy::type_complexity)]
fn get_columns(data: &[u8], rows: usize, dictionaries: &[usize]) -> Option<(Columns, Vec<(u32, u32)>, Vec<Vec<u16>>)> {
    let mut at = 0;
    let n = usize::try_from(get_varint(data, &mut at)?).ok()?;
    if n != rows {
        return None;
    }
    let mut columns = Columns { ids: Vec::with_capacity(n), timestamps: Vec::with_capacity(n), ..Default::default() };
    let mut previous = 0u64;
    for _ in 0..n {
        previous = previous.wrapping_add(unzigzag(get_varint(data, &mut at)?) as u64);
        columns.ids.push(previous);
    }
    let mut previous = 0i64;
    for _ in 0..n {
        previous = previous.wrapping_add(unzigzag(get_varint(data, &mut at)?));
        columns.timestamps.push(previous);
    }
    columns.levels = data.get(at..at.checked_add(n)?)?.to_vec();
    at += n;
    for list in [&mut columns.categories, &mut columns.templates, &mut columns.message_bytes] {
        list.reserve(n);
        for _ in 0..n {
            list.push(u32::try_from(get_varint(data, &mut at)?).ok()?);
        }
    }
    let blocks = usize::try_from(get_varint(data, &mut at)?).ok()?;
    let mut lens = Vec::with_capacity(blocks.min(n + 1));
    for _ in 0..blocks {
        let compressed = u32::try_from(get_varint(data, &mut at)?).ok()?;
        let raw = u32::try_from(get_varint(data, &mut at)?).ok()?;
        lens.push((compressed, raw));
    }
    let mut codes = Vec::with_capacity(dictionaries.len());
    for size in dictionaries {
        let mut column = Vec::with_capacity(n);
        for _ in 0..n {
            let code = u16::try_from(get_varint(data, &mut at)?).ok()?;
            if usize::from(code) > *size {
                return None;
            }
            column.push(code);
        }
        codes.push(column);
    }
    (at == data.len()).then_some((columns, lens, codes))
}

impl Segment {
    pub fn open(path: &Path, file: File, size: u64) -> Result<Segment, Error> {
        let corrupt = |what: &str| Error::Corrupt(format!("{}: {what}", path.display()));
        let read = |offset: u64, len: usize| -> Result<Vec<u8>, Error> {
            let end = offset.checked_add(len as u64).filter(|end| *end <= size);
            if end.is_none() {
                return Err(corrupt("a section points past the end of the file"));
            }
            let mut buffer = vec![0u8; len];
            file.read_exact_at(&mut buffer, offset).map_err(|e| Error::io("read", path, e))?;
            Ok(buffer)
        };
        if size < (MAGIC.len() * 2 + 12) as u64 {
            return Err(corrupt("too short"));
        }
        let tail = read(size - 20, 20)?;
        let footer_len = u64::from_le_bytes(tail[0..8].try_into().map_err(|_| corrupt("bad trailer"))?);
        let crc = u32::from_le_bytes(tail[8..12].try_into().map_err(|_| corrupt("bad trailer"))?);
        if footer_len > size - 20 - MAGIC.len() as u64 {
            return Err(corrupt("footer length out of range"));
        }
        let compressed = read(size - 20 - footer_len, footer_len as usize)?;
        if crc32fast::hash(&compressed) != crc {
            return Err(corrupt("footer checksum mismatch"));
        }
        let json = zstd::stream::decode_all(compressed.as_slice()).map_err(|e| corrupt(&e.to_string()))?;
        let footer: Footer = serde_json::from_slice(&json).map_err(|e| corrupt(&e.to_string()))?;

        let (offset, len, raw_len) = footer.columns;
        let binary = zstd::bulk::decompress(&read(offset, len as usize)?, raw_len as usize)
            .map_err(|e| corrupt(&format!("columns: {e}")))?;
        let sizes: Vec<usize> =
            footer.value_columns.iter().filter_map(|c| c.dictionary.as_ref().map(Vec::len)).collect();
        let (mut columns, lens, codes) =
            get_columns(&binary, footer.rows as usize, &sizes).ok_or_else(|| corrupt("columns do not decode"))?;
        let mut codes = codes.into_iter();
        let coded: Vec<Option<CodedColumn>> = footer
            .value_columns
            .iter()
            .map(|column| {
                let values = column.dictionary.as_ref()?;
                let texts = values.iter().map(|v| hubmon_model::json_text(v).map(|t| crate::text::lower(&t))).collect();
                Some(CodedColumn { codes: codes.next().unwrap_or_default(), texts })
            })
            .collect();
        if lens.len() != (footer.rows as usize).div_ceil(ROWS_PER_BLOCK) {
            return Err(corrupt("block table does not match the row count"));
        }
        let levels_ok = columns.levels.iter().all(|l| Level::from_code(*l).is_some());
        let categories_ok = columns.categories.iter().all(|c| (*c as usize) < footer.category_names.len());
        let templates_ok = columns.templates.iter().all(|t| (*t as usize) < footer.template_texts.len());
        if !levels_ok || !categories_ok || !templates_ok {
            return Err(corrupt("a column value is out of range"));
        }
        let (dictionary_at, dictionary_len) = footer.dictionary;
        let dictionary = read(dictionary_at, dictionary_len as usize)?;
        let mut blocks = Vec::with_capacity(lens.len());
        let mut at = dictionary_at + u64::from(dictionary_len);
        for (compressed, raw) in lens {
            blocks.push((at, compressed, raw));
            at += u64::from(compressed);
        }
        if at > size {
            return Err(corrupt("row blocks run past the end of the file"));
        }
        columns.category_names = footer.category_names.clone();
        columns.template_texts = footer.template_texts.clone();
        Ok(Segment {
            path: path.to_path_buf(),
            file,
            columns,
            blocks,
            coded,
            decompressors: Mutex::new(vec![
                zstd::bulk::Decompressor::with_dictionary(&dictionary)
                    .map_err(|e| corrupt(&format!("dictionary: {e}")))?,
            ]),
            dictionary,
            footer,
            size,
            uid: NEXT_SEGMENT.fetch_add(1, Ordering::Relaxed),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn origin(&self) -> &Origin {
        &self.footer.origin
    }

    pub fn max_id(&self) -> u64 {
        self.footer.max_id
    }

    fn corrupt(&self, what: impl std::fmt::Display) -> Error {
        Error::Corrupt(format!("{}: {what}", self.path.display()))
    }

    fn read(&self, offset: u64, len: u32) -> Result<Vec<u8>, Error> {
        let mut buffer = vec![0u8; len as usize];
        self.file.read_exact_at(&mut buffer, offset).map_err(|e| Error::io("read", &self.path, e))?;
        Ok(buffer)
    }

    fn block(&self, index: usize) -> Result<Arc<Block>, Error> {
        if let Some(block) = BLOCK_CACHE.lock().get((self.uid, index)) {
            return Ok(block);
        }
        let &(offset, len, raw_len) =
            self.blocks.get(index).ok_or_else(|| self.corrupt(format!("no block {index}")))?;
        let compressed = self.read(offset, len)?;
        let kept = self.decompressors.lock().pop();
        let mut decompressor = match kept {
            Some(decompressor) => decompressor,
            None => zstd::bulk::Decompressor::with_dictionary(&self.dictionary)
                .map_err(|e| self.corrupt(format!("dictionary: {e}")))?,
        };
        let data = decompressor.decompress(&compressed, raw_len as usize);
        {
            let mut kept = self.decompressors.lock();
            if kept.len() < KEPT_DECOMPRESSORS {
                kept.push(decompressor);
            }
        }
        let data = data.map_err(|e| self.corrupt(format!("block {index}: {e}")))?;
        let rows = ROWS_PER_BLOCK.min(self.footer.rows as usize - index * ROWS_PER_BLOCK);
        let block = Arc::new(
            self.index_block(data, rows).ok_or_else(|| self.corrupt(format!("block {index} does not decode")))?,
        );
        BLOCK_CACHE.lock().put((self.uid, index), block.clone());
        Ok(block)
    }

    /// Finds where each row's value of each column starts (the block is not parsed further
    /// until a row is asked for).
    fn index_block(&self, data: Vec<u8>, rows: usize) -> Option<Block> {
        let mut starts = Vec::with_capacity(self.footer.value_columns.len() + 1);
        let mut at = 0usize;
        for column in &self.footer.value_columns {
            let mut column_starts = Vec::new();
            if column.dictionary.is_none() {
                column_starts.reserve(rows);
                for _ in 0..rows {
                    column_starts.push(u32::try_from(at).ok()?);
                    codec::skip_value(&data, &mut at)?;
                }
            }
            starts.push(column_starts);
        }
        if self.footer.other_fields {
            let mut others = Vec::with_capacity(rows);
            for _ in 0..rows {
                others.push(u32::try_from(at).ok()?);
                for _ in 0..get_varint(&data, &mut at)? {
                    get_bytes(&data, &mut at)?;
                    codec::skip_value(&data, &mut at)?;
                }
            }
            starts.push(others);
        }
        let mut messages = Vec::with_capacity(rows);
        for _ in 0..rows {
            messages.push(u32::try_from(at).ok()?);
            get_bytes(&data, &mut at)?;
        }
        starts.push(messages);
        (at == data.len()).then_some(Block { data, starts })
    }

    fn decode_row(&self, block: &Block, within: usize, row: usize) -> Option<StoredEntry> {
        let columns = &self.columns;
        let level = Level::from_code(*columns.levels.get(row)?)?;
        let message_at = *block.starts.last()?.get(within)?;
        let message = get_str(&block.data, &mut (message_at as usize))?.to_string();
        let mut entry = LogEntry::new(Timestamp(*columns.timestamps.get(row)?), level, message);
        entry.category = columns.category_names.get(*columns.categories.get(row)? as usize)?.clone();
        for (index, column) in self.footer.value_columns.iter().enumerate() {
            let value = match (&column.dictionary, self.coded.get(index)?) {
                (Some(values), Some(coded)) => match *coded.codes.get(row)? {
                    0 => None,
                    code => Some(values.get(usize::from(code - 1))?.clone()),
                },
                _ => {
                    let mut at = *block.starts.get(index)?.get(within)? as usize;
                    codec::get_value(&block.data, &mut at)?
                }
            };
            let Some(value) = value else { continue };
            if index < OPTIONAL_FIELDS.len() {
                codec::set_optional(&mut entry, index, value)?;
            } else {
                entry.fields.insert(column.name.clone(), value);
            }
        }
        if self.footer.other_fields {
            let mut at = *block.starts.get(self.footer.value_columns.len())?.get(within)? as usize;
            for _ in 0..get_varint(&block.data, &mut at)? {
                let name = get_str(&block.data, &mut at)?.to_string();
                if let Some(value) = codec::get_value(&block.data, &mut at)? {
                    entry.fields.insert(name, value);
                }
            }
        }
        Some(StoredEntry { id: *columns.ids.get(row)?, entry })
    }

    #[cfg(test)]
    pub(crate) fn value_column_names(&self) -> Vec<&str> {
        self.footer.value_columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// The in-memory column `field_text(field)` reads, when it is dictionary-coded.
    fn coded_column(&self, field: &str) -> Option<&CodedColumn> {
        if matches!(field, "timestamp" | "message" | "level" | "category") {
            return None;
        }
        let index = self.footer.value_columns.iter().position(|c| c.name == field)?;
        self.coded.get(index)?.as_ref()
    }

    /// Term block `index`, decompressed; kept in the block cache with the row blocks, since
    /// every search reads the term blocks of its words again.
    fn read_term_block(&self, index: usize) -> Result<Arc<Block>, Error> {
        let key = (self.uid, TERM_BLOCK_KEYS + index);
        if let Some(block) = BLOCK_CACHE.lock().get(key) {
            return Ok(block);
        }
        let &(_, offset, len, raw_len) =
            self.footer.terms.get(index).ok_or_else(|| self.corrupt(format!("no term block {index}")))?;
        let compressed = self.read(offset, len)?;
        // One decompression context per thread: creating one per block cost more than
        // decompressing the block.
        thread_local! {
            static TERMS: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
        }
        let data = TERMS.with(|kept| {
            let mut kept = kept.borrow_mut();
            let decompressor = match kept.as_mut() {
                Some(decompressor) => decompressor,
                None => kept.insert(zstd::bulk::Decompressor::new()?),
            };
            decompressor.decompress(&compressed, raw_len as usize)
        });
        let data = data.map_err(|e| self.corrupt(format!("term block {index}: {e}")))?;
        let block = Arc::new(Block { data, starts: Vec::new() });
        BLOCK_CACHE.lock().put(key, block.clone());
        Ok(block)
    }
}

/// The rows of `hash` in a decoded term block, or `None` when the block is malformed.
fn find_postings(raw: &[u8], hash: u32) -> Option<Vec<u32>> {
    let mut at = 0;
    let n = usize::try_from(get_varint(raw, &mut at)?).ok()?;
    let mut found = None;
    let mut current = 0u64;
    for i in 0..n {
        current += get_varint(raw, &mut at)?;
        if current == u64::from(hash) {
            found = Some(i);
        }
    }
    let mut counts = Vec::with_capacity(n.min(raw.len()));
    for _ in 0..n {
        counts.push(usize::try_from(get_varint(raw, &mut at)?).ok()?);
    }
    let mut skip = 0usize;
    let mut list_len = 0usize;
    for i in 0..n {
        let len = usize::try_from(get_varint(raw, &mut at)?).ok()?;
        match found {
            Some(f) if i < f => skip = skip.checked_add(len)?,
            Some(f) if i == f => list_len = len,
            _ => {}
        }
    }
    let Some(found) = found else { return Some(Vec::new()) };
    let start = at.checked_add(skip)?;
    let list = raw.get(start..start.checked_add(list_len)?)?;
    let mut rows = Vec::with_capacity(counts[found].min(list.len()));
    let (mut cursor, mut previous) = (0, 0u64);
    for _ in 0..counts[found] {
        previous += get_varint(list, &mut cursor)?;
        rows.push(u32::try_from(previous).ok()?);
    }
    Some(rows)
}

impl Partition for Segment {
    fn rows(&self) -> usize {
        self.footer.rows as usize
    }

    fn postings(&self, key: &str) -> Result<Vec<u32>, Error> {
        let hash = hash32(hash64(key.as_bytes()));
        let index = self.footer.terms.partition_point(|(first, ..)| *first <= hash);
        if index == 0 {
            return Ok(Vec::new());
        }
        let terms = self.read_term_block(index - 1)?;
        let rows = find_postings(&terms.data, hash).ok_or_else(|| self.corrupt(format!("term block {}", index - 1)))?;
        if rows.last().is_some_and(|r| *r >= self.footer.rows) {
            return Err(self.corrupt(format!("postings of {key:?} point past the last row")));
        }
        Ok(rows)
    }

    fn column_rows(&self, predicate: &Predicate) -> Option<Vec<u32>> {
        use crate::partition::rows_with_codes;
        if let Some(rows) = crate::partition::model_column_rows(&self.columns, predicate) {
            return Some(rows);
        }
        match predicate {
            Predicate::FieldIs { field, values } => {
                let coded = self.coded_column(field)?;
                let mut wanted = vec![false];
                wanted.extend(coded.texts.iter().map(|t| t.as_ref().is_some_and(|t| values.contains(t))));
                Some(rows_with_codes(coded.codes.iter().map(|c| usize::from(*c)), &wanted))
            }
            Predicate::FieldCmp { field, op, value } => {
                // `matches` reads a free-form field of the same name first; only a column
                // that is the field's one source answers.
                if self.footer.value_columns.iter().filter(|c| &c.name == field).count() != 1 {
                    return None;
                }
                let index = self.footer.value_columns.iter().position(|c| &c.name == field)?;
                let values = self.footer.value_columns[index].dictionary.as_ref()?;
                let coded = self.coded.get(index)?.as_ref()?;
                let mut wanted = vec![false];
                wanted.extend(values.iter().map(|v| {
                    let number = match v {
                        Value::Number(n) => n.as_f64(),
                        other => hubmon_model::json_text(other).and_then(|t| t.trim().parse::<f64>().ok()),
                    };
                    number.is_some_and(|n| op.holds(n, *value))
                }));
                Some(rows_with_codes(coded.codes.iter().map(|c| usize::from(*c)), &wanted))
            }
            _ => None,
        }
    }

    fn key_is_exact(&self, key: &str) -> bool {
        self.footer.ambiguous.binary_search(&hash32(hash64(key.as_bytes()))).is_err()
    }

    fn columns(&self) -> &Columns {
        &self.columns
    }

    fn entry(&self, row: u32) -> Result<Arc<StoredEntry>, Error> {
        let row = row as usize;
        let block = self.block(row / ROWS_PER_BLOCK)?;
        let stored =
            self.decode_row(&block, row % ROWS_PER_BLOCK, row).ok_or_else(|| self.corrupt(format!("row {row}")))?;
        Ok(Arc::new(stored))
    }

    fn message(&self, row: u32) -> Result<String, Error> {
        let row = row as usize;
        let block = self.block(row / ROWS_PER_BLOCK)?;
        let at = block.starts.last().and_then(|starts| starts.get(row % ROWS_PER_BLOCK));
        let message = at.and_then(|at| get_str(&block.data, &mut (*at as usize)));
        message.map(str::to_string).ok_or_else(|| self.corrupt(format!("message of row {row}")))
    }

    fn min_ts(&self) -> i64 {
        self.footer.min_ts
    }

    fn max_ts(&self) -> i64 {
        self.footer.max_ts
    }

    fn time_ordered(&self) -> bool {
        true
    }

    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let unlisted = prefix
            .strip_prefix("f\u{0}")
            .and_then(|rest| rest.strip_suffix('\u{0}'))
            .filter(|field| self.footer.unlisted.iter().any(|u| u == field));
        if let Some(field) = unlisted {
            let mut values = std::collections::BTreeSet::new();
            for row in 0..self.footer.rows {
                if let Some(value) = self.entry(row)?.entry.field_text(field) {
                    let value = crate::text::lower(&value);
                    if value.len() <= crate::text::MAX_INDEXED_VALUE_BYTES {
                        values.insert(format!("{prefix}{value}"));
                    }
                }
            }
            return Ok(values.into_iter().collect());
        }
        let keys = &self.footer.keys;
        let start = keys.partition_point(|k| k.as_str() < prefix);
        Ok(keys[start..].iter().take_while(|k| k.starts_with(prefix)).cloned().collect())
    }

    fn field_column(&self, field: &str) -> Result<Option<FieldColumn<'_>>, Error> {
        if let Some(column) = model_field_column(&self.columns, field) {
            return Ok(Some(column));
        }
        if matches!(field, "message" | "timestamp") {
            return Ok(None);
        }
        // The first column of a name is the one `field_text` reads (a model field before a
        // free-form field of the same name), as in `decode_row`.
        let Some(index) = self.footer.value_columns.iter().position(|c| c.name == field) else {
            // Not a column: no row has it, or some rows keep it among their other fields.
            let absent = !self.footer.other_fields || self.lacks_field(field)?;
            return Ok(absent.then_some(FieldColumn::Absent));
        };
        let values = self.footer.value_columns[index].dictionary.as_ref();
        let coded = self.coded.get(index).and_then(Option::as_ref);
        Ok(values.zip(coded).map(|(values, coded)| FieldColumn::Coded {
            codes: &coded.codes,
            texts: values.iter().map(hubmon_model::json_text).collect(),
        }))
    }
}

#[cfg(test)]
mod block_cache_tests {
    use super::*;

    #[test]
    fn the_block_cache_keeps_to_its_budget_dropping_the_least_recently_used() {
        let mut cache = BlockCache { blocks: lru::LruCache::unbounded(), bytes: 0 };
        let block = || Arc::new(Block { data: vec![0; 10 << 20], starts: vec![vec![0; 64]] });
        for index in 0..6 {
            cache.put((1, index), block());
        }
        assert!(cache.get((1, 0)).is_some(), "60 MiB fit in the 64 MiB budget");
        cache.put((1, 6), block());
        assert!(cache.bytes <= BLOCK_CACHE_BYTES, "{} bytes kept", cache.bytes);
        assert!(cache.get((1, 1)).is_none(), "the least recently used block went");
        assert!(cache.get((1, 0)).is_some(), "a block just read stays");
        assert!(cache.get((2, 0)).is_none(), "another segment's block 0 is not this one's");
        cache.put((1, 0), block());
        assert_eq!(
            cache.bytes,
            cache.blocks.iter().map(|(_, b)| b.bytes()).sum::<usize>(),
            "replacing keeps the count"
        );
    }
}
