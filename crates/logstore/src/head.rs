//! The head: lines written since the last flush, in memory with their index, searchable the
//! moment the append returns. Rows are in arrival order.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use crate::codec::{self, hash64};
use crate::partition::{
    Columns, ColumnsBuilder, KeyKind, Partition, value_key, value_key_text, visit_field_keys, visit_keys,
};
use crate::segment::SegmentIndex;
use crate::wal::Records;
use crate::{Error, StoredEntry};

/// Keys of the head's maps are already [`hash64`] values; hashing them again is waste.
/// Byte keys (the segment writer's value dictionaries) get [`hash64`], faster than SipHash
/// and safe here: the keys are the store's own data, not chosen to collide by a client who
/// could not see the result anyway.
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = self.0.rotate_left(5) ^ hash64(bytes);
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

pub(crate) type KeyMap<V> = HashMap<u64, V, BuildHasherDefault<KeyHasher>>;

/// Runs of one level are merged into one run of the next level once there are this many, so
/// a lookup reads at most this many runs per level (a few levels for a million lines) and a
/// line's keys are rewritten once per level.
const RUNS_PER_LEVEL: usize = 8;

/// Postings of many keys in three flat arrays: one allocation each instead of one per key
/// (most keys, request ids and numbers, have a single row).
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Postings {
    /// 64-bit key hashes, ascending.
    keys: Vec<u64>,
    /// `rows[starts[i]..starts[i + 1]]` are the rows of `keys[i]`; one more than `keys`.
    starts: Vec<u32>,
    rows: Vec<u32>,
}

impl Postings {
    pub fn with_capacity(keys: usize, rows: usize) -> Postings {
        let mut starts = Vec::with_capacity(keys + 1);
        starts.push(0);
        Postings { keys: Vec::with_capacity(keys), starts, rows: Vec::with_capacity(rows) }
    }

    /// Adds `key` (greater than every key so far) with its rows, ascending.
    pub fn push(&mut self, key: u64, rows: &[u32]) {
        self.push_key(key);
        self.push_rows(rows);
    }

    /// Adds `key` with no rows yet.
    fn push_key(&mut self, key: u64) {
        if self.starts.is_empty() {
            self.starts.push(0);
        }
        self.keys.push(key);
        self.starts.push(self.rows.len() as u32);
    }

    /// Adds rows to the last key's list.
    fn push_rows(&mut self, rows: &[u32]) {
        self.rows.extend_from_slice(rows);
        if let Some(end) = self.starts.last_mut() {
            *end = self.rows.len() as u32;
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn keys(&self) -> &[u64] {
        &self.keys
    }

    /// The rows of the `at`-th key.
    pub fn rows_at(&self, at: usize) -> &[u32] {
        &self.rows[self.starts[at] as usize..self.starts[at + 1] as usize]
    }

    pub fn get(&self, key: u64) -> &[u32] {
        match self.keys.binary_search(&key) {
            Ok(at) => self.rows_at(at),
            Err(_) => &[],
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, &[u32])> {
        self.keys.iter().enumerate().map(|(at, key)| (*key, self.rows_at(at)))
    }
}

/// A sorted piece of the head's inverted index: the postings of a contiguous range of rows.
///
/// Indexing a batch sorts its (key hash, row) pairs into one new run instead of inserting
/// every key into one hash table: the table's cost was a cache miss per unique key (request
/// ids, user ids, numbers in messages) and an allocation per posting list, about a third of
/// a line's ingest cost, while sorting a batch's pairs runs in cache.
#[derive(Default)]
struct Run {
    level: u8,
    postings: Postings,
}

impl Run {
    fn from_pairs(pairs: &mut Vec<(u64, u32)>, scratch: &mut Vec<(u64, u32)>) -> Run {
        // Pairs arrive in row order, so a stable sort by hash alone leaves each key's rows
        // ascending.
        sort_by_hash(pairs, scratch);
        pairs.dedup();
        let mut postings = Postings::with_capacity(pairs.len() / 2, pairs.len());
        for &(key, row) in pairs.iter() {
            if postings.keys.last() != Some(&key) {
                postings.push_key(key);
            }
            postings.push_rows(&[row]);
        }
        Run { level: 0, postings }
    }

    /// Merges runs of consecutive row ranges (oldest first), so each key's rows stay ascending.
    fn merge(runs: &[&Run], level: u8) -> Run {
        let size = runs.iter().map(|r| r.postings.rows.len()).sum();
        let keys = runs.iter().map(|r| r.postings.len()).max().unwrap_or(0);
        let mut merged = Postings::with_capacity(keys, size);
        let mut heads: std::collections::BinaryHeap<std::cmp::Reverse<(u64, usize, usize)>> = runs
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.postings.keys.is_empty())
            .map(|(i, r)| std::cmp::Reverse((r.postings.keys[0], i, 0)))
            .collect();
        while let Some(std::cmp::Reverse((key, run, at))) = heads.pop() {
            let source = &runs[run].postings;
            if merged.keys.last() != Some(&key) {
                merged.push_key(key);
            }
            merged.push_rows(source.rows_at(at));
            if let Some(next) = source.keys.get(at + 1) {
                heads.push(std::cmp::Reverse((*next, run, at + 1)));
            }
        }
        Run { level, postings: merged }
    }
}

/// Sorts `pairs` by hash, stably, with a least-significant-digit radix sort through
/// `scratch` (kept between calls, so its pages stay mapped). The comparison sort it replaces
/// was a twentieth of a line's ingest cost; the hashes are uniform, so every pass is a
/// straight scatter.
fn sort_by_hash(pairs: &mut Vec<(u64, u32)>, scratch: &mut Vec<(u64, u32)>) {
    const BITS: u32 = 11;
    const BUCKETS: usize = 1 << BITS;
    const PASSES: usize = 64usize.div_ceil(BITS as usize);
    let digit = |hash: u64, pass: usize| ((hash >> (pass as u32 * BITS)) as usize) & (BUCKETS - 1);
    if pairs.len() < 256 {
        pairs.sort_by_key(|(hash, _)| *hash);
        return;
    }
    let mut counts = vec![[0u32; BUCKETS]; PASSES];
    for (hash, _) in pairs.iter() {
        for (pass, count) in counts.iter_mut().enumerate() {
            count[digit(*hash, pass)] += 1;
        }
    }
    scratch.clear();
    scratch.resize(pairs.len(), (0, 0));
    for (pass, count) in counts.iter().enumerate() {
        if count.iter().any(|c| *c as usize == pairs.len()) {
            continue;
        }
        let mut next = [0u32; BUCKETS];
        let mut total = 0;
        for (bucket, c) in count.iter().enumerate() {
            next[bucket] = total;
            total += c;
        }
        for pair in pairs.iter() {
            let bucket = digit(pair.0, pass);
            scratch[next[bucket] as usize] = *pair;
            next[bucket] += 1;
        }
        std::mem::swap(pairs, scratch);
    }
}

/// A presence key's text and rows.
type Present = (Box<str>, Vec<u32>);

/// The head's index is keyed by the 64-bit [`hash64`] of each key, so indexing a line
/// allocates nothing. Two keys of one head sharing a hash (odds about n²/2⁶⁵, 3·10⁻⁸ for a
/// million distinct keys) would make the index answer for both; a search still verifies
/// every line, only a statistics count could include the other key's lines.
#[derive(Default)]
pub(crate) struct Head {
    /// The lines in their WAL record form, one buffer per append: about a fifth of the
    /// memory of decoded entries (whose field maps alone take ~600 bytes), so the head costs
    /// less memory and fresh pages, and a line is decoded only when a search reads it.
    chunks: Vec<Vec<u8>>,
    /// (chunk, start, length) of each row's record payload.
    rows: Vec<(u32, u32, u32)>,
    /// Oldest rows first; see [`Run`].
    runs: Vec<Run>,
    /// The text of stream-label keys, for listings; recorded the first time a key is seen.
    /// Field-value keys are listed from the rows (most are unique ids).
    texts: KeyMap<Box<str>>,
    /// Each presence key's text and rows. Most lines have the same few fields, so their
    /// presence keys were a third of the pairs sorted into runs and merged; appended here
    /// in row order, they are sorted already.
    presence: KeyMap<Present>,
    columns: ColumnsBuilder,
    buffer: Vec<u8>,
    pairs: Vec<(u64, u32)>,
    scratch: Vec<(u64, u32)>,
    min_ts: i64,
    max_ts: i64,
    bytes: usize,
    /// The first WAL file whose records are in this head.
    pub first_wal: u64,
}

impl Head {
    pub fn new(first_wal: u64) -> Self {
        Self { min_ts: i64::MAX, max_ts: i64::MIN, first_wal, ..Default::default() }
    }

    /// Adds an append's lines as the next rows, indexed as one run: `records` is their WAL
    /// form (kept as the head's copy), `lines` the same lines decoded (read for indexing).
    pub fn push(&mut self, records: Records, lines: &[StoredEntry]) {
        let chunk = u32::try_from(self.chunks.len()).unwrap_or(u32::MAX);
        let mut buffer = std::mem::take(&mut self.buffer);
        let mut pairs = std::mem::take(&mut self.pairs);
        pairs.clear();
        let mut presence_rows = 0;
        for (stored, (start, len)) in lines.iter().zip(&records.payloads) {
            let row = u32::try_from(self.rows.len()).unwrap_or(u32::MAX);
            let (texts, presence) = (&mut self.texts, &mut self.presence);
            visit_keys(&stored.entry, &mut buffer, |key, kind| {
                let hash = hash64(key);
                match kind {
                    KeyKind::Value => pairs.push((hash, row)),
                    KeyKind::Presence => {
                        let (_, rows) =
                            presence.entry(hash).or_insert_with(|| (String::from_utf8_lossy(key).into(), Vec::new()));
                        // A free-form field named like a model field visits its key twice.
                        if rows.last() != Some(&row) {
                            rows.push(row);
                            presence_rows += 1;
                        }
                    }
                    KeyKind::Label => {
                        texts.entry(hash).or_insert_with(|| String::from_utf8_lossy(key).into());
                    }
                }
            });
            self.columns.push(stored);
            let ts = stored.entry.timestamp.as_millis();
            self.min_ts = self.min_ts.min(ts);
            self.max_ts = self.max_ts.max(ts);
            self.rows.push((chunk, *start, *len));
        }
        self.bytes += records.bytes.len() + (pairs.len() + presence_rows) * 4;
        self.chunks.push(records.bytes);
        if !pairs.is_empty() {
            self.runs.push(Run::from_pairs(&mut pairs, &mut self.scratch));
            self.compact();
        }
        self.buffer = buffer;
        self.pairs = pairs;
    }

    /// Merges the newest runs while [`RUNS_PER_LEVEL`] of them share a level.
    fn compact(&mut self) {
        loop {
            let Some(level) = self.runs.last().map(|r| r.level) else { return };
            let same = self.runs.iter().rev().take_while(|r| r.level == level).count();
            if same < RUNS_PER_LEVEL {
                return;
            }
            let from = self.runs.len() - same;
            let runs: Vec<&Run> = self.runs[from..].iter().collect();
            let merged = Run::merge(&runs, level.saturating_add(1));
            self.runs.truncate(from);
            self.runs.push(merged);
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Rough memory held, for the flush threshold.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Row `row` in its WAL record form.
    pub fn payload(&self, row: u32) -> Result<&[u8], Error> {
        let (chunk, start, len) =
            *self.rows.get(row as usize).ok_or(Error::Corrupt(format!("head has no row {row}")))?;
        let bytes = self.chunks.get(chunk as usize).and_then(|c| c.get(start as usize..(start + len) as usize));
        bytes.ok_or(Error::Corrupt(format!("head row {row} lies outside its buffer")))
    }

    /// Row `row` decoded.
    fn decode(&self, row: u32) -> Result<StoredEntry, Error> {
        codec::get_entry(self.payload(row)?).ok_or(Error::Corrupt(format!("head row {row} does not decode")))
    }

    /// The index and columns of the head rows `rows` (in that order), so a flush need not
    /// index its lines a second time.
    #[cfg(test)]
    pub fn segment_index(&self, rows: &[u32]) -> SegmentIndex {
        self.segment_indexes(&[rows.to_vec()]).remove(0)
    }

    /// `segment_index` for each of several disjoint row sets (a flush's hourly
    /// segments), walking the head's postings once for all of them: walking them once per
    /// segment made a flush's cost grow with the number of hours it spans.
    pub fn segment_indexes(&self, parts: &[Vec<u32>]) -> Vec<SegmentIndex> {
        let mut position = vec![(u32::MAX, u32::MAX); self.rows.len()];
        for (part, rows) in parts.iter().enumerate() {
            for (segment_row, head_row) in rows.iter().enumerate() {
                position[*head_row as usize] =
                    (u32::try_from(part).unwrap_or(u32::MAX), u32::try_from(segment_row).unwrap_or(u32::MAX));
            }
        }
        let mut presence: Vec<(&u64, &Present)> = self.presence.iter().collect();
        presence.sort_unstable_by_key(|(key, _)| **key);
        let presence_rows = presence.iter().map(|(_, (_, rows))| rows.len()).sum();
        let mut presence_run = Run { level: 0, postings: Postings::with_capacity(presence.len(), presence_rows) };
        for (key, (_, rows)) in presence {
            presence_run.postings.push(*key, rows);
        }
        let runs: Vec<&Run> = self.runs.iter().chain([&presence_run]).collect();
        let all = &Run::merge(&runs, 0);
        let mut postings: Vec<Postings> = parts
            .iter()
            .map(|rows| {
                let share = |n: usize| n * rows.len() / self.rows.len().max(1);
                Postings::with_capacity(share(all.postings.len()), share(all.postings.rows.len()))
            })
            .collect();
        let mut scratch: Vec<Vec<u32>> = parts.iter().map(|_| Vec::new()).collect();
        for (key, head_rows) in all.postings.iter() {
            for row in head_rows {
                let (part, at) = position[*row as usize];
                if let Some(list) = scratch.get_mut(part as usize) {
                    list.push(at);
                }
            }
            for (part, list) in scratch.iter_mut().enumerate() {
                if list.is_empty() {
                    continue;
                }
                // Mostly ascending already (lines arrive roughly in time order): the stable
                // sort finds those runs.
                list.sort();
                postings[part].push(key, list);
                list.clear();
            }
        }
        parts.iter().zip(postings).map(|(rows, postings)| self.part_index(rows, postings)).collect()
    }

    fn part_index(&self, rows: &[u32], postings: Postings) -> SegmentIndex {
        let all = &self.columns.columns;
        let pick = |column: &Vec<u32>| rows.iter().map(|r| column[*r as usize]).collect::<Vec<u32>>();
        let columns = Columns {
            ids: rows.iter().map(|r| all.ids[*r as usize]).collect(),
            timestamps: rows.iter().map(|r| all.timestamps[*r as usize]).collect(),
            levels: rows.iter().map(|r| all.levels[*r as usize]).collect(),
            categories: pick(&all.categories),
            templates: pick(&all.templates),
            message_bytes: pick(&all.message_bytes),
            category_names: all.category_names.clone(),
            template_texts: all.template_texts.clone(),
        };
        SegmentIndex { postings, columns }
    }
}

impl Partition for Head {
    fn rows(&self) -> usize {
        self.rows.len()
    }

    fn postings(&self, key: &str) -> Result<Vec<u32>, Error> {
        let hash = hash64(key.as_bytes());
        let mut rows = Vec::new();
        for run in &self.runs {
            rows.extend_from_slice(run.postings.get(hash));
        }
        if let Some((_, present)) = self.presence.get(&hash) {
            rows.extend_from_slice(present);
            if rows.len() > present.len() {
                // Another key shares the hash: keep the rows ascending.
                rows.sort_unstable();
                rows.dedup();
            }
        }
        Ok(rows)
    }

    fn columns(&self) -> &Columns {
        &self.columns.columns
    }

    fn entry(&self, row: u32) -> Result<Arc<StoredEntry>, Error> {
        self.decode(row).map(Arc::new)
    }

    fn message(&self, row: u32) -> Result<String, Error> {
        let view = codec::RowView::parse(self.payload(row)?);
        let message = view.and_then(|view| std::str::from_utf8(view.message).ok().map(str::to_string));
        message.ok_or(Error::Corrupt(format!("head row {row} does not decode")))
    }

    fn min_ts(&self) -> i64 {
        self.min_ts
    }

    fn max_ts(&self) -> i64 {
        self.max_ts
    }

    fn time_ordered(&self) -> bool {
        false
    }

    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let model = crate::partition::model_keys_with_prefix(&self.columns.columns, prefix);
        if !prefix.starts_with("f\u{0}") {
            let labels = self.texts.values();
            let present = self.presence.values().map(|(text, _)| text);
            let texts = labels.chain(present).filter(|t| t.starts_with(prefix)).map(|t| t.to_string());
            let keys: BTreeSet<String> = texts.chain(model).collect();
            return Ok(keys.into_iter().collect());
        }
        let mut keys: BTreeSet<Vec<u8>> = model.into_iter().map(String::into_bytes).collect();
        let mut buffer = Vec::new();
        if let Some(field) = prefix.strip_prefix("f\u{0}").and_then(|rest| rest.split_once('\u{0}')).map(|(f, _)| f) {
            // One field's values (a label-values request): read that field from each row's
            // record instead of decoding the whole line.
            let model = codec::OPTIONAL_FIELDS.iter().position(|f| *f == field);
            let mut number = String::new();
            // Most rows repeat a value: each distinct encoding is converted once.
            let mut seen: HashSet<&[u8]> = HashSet::new();
            for row in 0..self.rows.len() as u32 {
                let view = codec::RowView::parse(self.payload(row)?)
                    .ok_or(Error::Corrupt(format!("head row {row} does not decode")))?;
                // A free-form field named like a model field has keys of its own too.
                let free_form = view.fields().filter(|(name, _)| *name == field).map(|(_, value)| value);
                for tagged in model.map(|i| view.optional[i]).into_iter().chain(free_form) {
                    if !seen.insert(tagged) {
                        continue;
                    }
                    let Some(Some(value)) = codec::get_value(tagged, &mut 0) else { continue };
                    let Some(text) = value_key_text(&value, &mut number) else { continue };
                    match value_key(&mut buffer, field, text) {
                        Some(key) if key.starts_with(prefix.as_bytes()) && !keys.contains(key) => {
                            keys.insert(key.to_vec());
                        }
                        _ => {}
                    }
                }
            }
            return Ok(keys.into_iter().map(|k| String::from_utf8_lossy(&k).into_owned()).collect());
        }
        for row in 0..self.rows.len() as u32 {
            let stored = self.decode(row)?;
            visit_field_keys(&stored.entry, &mut buffer, |key, kind| {
                if kind == KeyKind::Value && key.starts_with(prefix.as_bytes()) && !keys.contains(key) {
                    keys.insert(key.to_vec());
                }
            });
        }
        Ok(keys.into_iter().map(|k| String::from_utf8_lossy(&k).into_owned()).collect())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hubmon_model::{Level, LogEntry, Timestamp};

    use super::*;
    use crate::partition::index_keys;

    #[test]
    fn the_radix_sort_orders_like_a_stable_sort_by_hash() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut scratch = Vec::new();
        for size in [0, 1, 255, 256, 257, 5_000, 70_000] {
            // Hot keys (a few hashes repeated), hashes differing only in their top or bottom
            // bits, and random ones, in row order as the head makes them.
            let hot: Vec<u64> = (0..5).map(|_| next()).collect();
            let pairs: Vec<(u64, u32)> = (0..size as u32)
                .map(|row| {
                    let hash = match next() % 4 {
                        0 => hot[(next() % 5) as usize],
                        1 => next() & 0xff,
                        2 => next() << 56,
                        _ => next(),
                    };
                    (hash, row)
                })
                .collect();
            let mut want = pairs.clone();
            want.sort_by_key(|(hash, _)| *hash);
            let mut got = pairs;
            sort_by_hash(&mut got, &mut scratch);
            assert_eq!(got, want, "{size} pairs");
        }
    }

    /// Batches of 1 to 37 lines make runs of every level (8 level-0 runs merge into one of
    /// level 1, and so on); every key's postings must still be every row that has it, in order.
    #[test]
    fn postings_stay_exact_and_ordered_across_run_merges() {
        let mut head = Head::new(1);
        let mut expected: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        let mut row = 0u32;
        for batch in 0..150u32 {
            let size = 1 + (batch * 7) % 37;
            let lines: Vec<StoredEntry> = (0..size)
                .map(|i| {
                    let n = row + i;
                    let mut entry = LogEntry::new(
                        Timestamp(1_700_000_000_000 + i64::from(n)),
                        Level::Info,
                        format!("job {} step {}", n % 13, n),
                    );
                    entry.request_id = Some(format!("req-{n}"));
                    StoredEntry { id: u64::from(n) + 1, entry }
                })
                .collect();
            for (i, line) in lines.iter().enumerate() {
                for key in index_keys(&line.entry).into_iter().filter(|k| !k.starts_with('v')) {
                    expected.entry(key).or_default().push(row + i as u32);
                }
            }
            row += size;
            head.push(crate::wal::encode(lines.iter()).unwrap(), &lines);
        }
        assert!(
            head.runs.iter().any(|r| r.level >= 2),
            "levels: {:?}",
            head.runs.iter().map(|r| r.level).collect::<Vec<_>>()
        );
        assert!(head.runs.len() < 3 * RUNS_PER_LEVEL);
        for (key, rows) in &expected {
            assert_eq!(&head.postings(key).unwrap(), rows, "{key:?}");
        }
        assert!(head.postings("m\u{0}absent").unwrap().is_empty());
        let index = head.segment_index(&(0..row).collect::<Vec<_>>());
        assert_eq!(index.postings.len(), expected.len());
        for (key, rows) in &expected {
            assert_eq!(index.postings.get(hash64(key.as_bytes())), rows.as_slice(), "{key:?}");
        }
    }
}
