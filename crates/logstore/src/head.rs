//! The head: lines written since the last flush, in memory with their index, searchable the
//! moment the append returns. Rows are in arrival order.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use crate::codec::hash64;
use crate::partition::{Columns, ColumnsBuilder, KeyKind, Partition, visit_keys};
use crate::segment::SegmentIndex;
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

/// The head's index is keyed by the 64-bit [`hash64`] of each key, so indexing a line
/// allocates nothing. Two keys of one head sharing a hash (odds about n²/2⁶⁵, 3·10⁻⁸ for a
/// million distinct keys) would make the index answer for both; a search still verifies
/// every line, only a statistics count could include the other key's lines.
#[derive(Default)]
pub(crate) struct Head {
    entries: Vec<Arc<StoredEntry>>,
    index: KeyMap<Vec<u32>>,
    /// The text of presence, label and field-value keys (not message tokens), for listings
    /// and for the segments' key lists; recorded the first time a key is seen.
    texts: KeyMap<Box<str>>,
    columns: ColumnsBuilder,
    buffer: Vec<u8>,
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

    pub fn push(&mut self, stored: Arc<StoredEntry>) {
        let row = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        let mut buffer = std::mem::take(&mut self.buffer);
        let (index, texts) = (&mut self.index, &mut self.texts);
        visit_keys(&stored.entry, &mut buffer, |key, kind| {
            let hash = hash64(key);
            if kind != KeyKind::Label {
                let rows = index.entry(hash).or_default();
                if rows.last() == Some(&row) {
                    return;
                }
                rows.push(row);
                if rows.len() > 1 || key.first() == Some(&b'm') {
                    return;
                }
            } else if texts.contains_key(&hash) {
                return;
            }
            texts.insert(hash, String::from_utf8_lossy(key).into());
        });
        self.buffer = buffer;
        self.columns.push(&stored);
        let ts = stored.entry.timestamp.as_millis();
        self.min_ts = self.min_ts.min(ts);
        self.max_ts = self.max_ts.max(ts);
        self.bytes += stored.entry.message.len() + 200;
        self.entries.push(stored);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Rough memory held, for the flush threshold.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn entries(&self) -> &[Arc<StoredEntry>] {
        &self.entries
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
        let mut position = vec![(u32::MAX, u32::MAX); self.entries.len()];
        for (part, rows) in parts.iter().enumerate() {
            for (segment_row, head_row) in rows.iter().enumerate() {
                position[*head_row as usize] =
                    (u32::try_from(part).unwrap_or(u32::MAX), u32::try_from(segment_row).unwrap_or(u32::MAX));
            }
        }
        let mut postings: Vec<Vec<(u64, Vec<u32>)>> = parts.iter().map(|_| Vec::new()).collect();
        let mut scratch: Vec<Vec<u32>> = parts.iter().map(|_| Vec::new()).collect();
        for (key, head_rows) in &self.index {
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
                list.sort_unstable();
                postings[part].push((*key, std::mem::take(list)));
            }
        }
        parts.iter().zip(postings).map(|(rows, postings)| self.part_index(rows, postings)).collect()
    }

    fn part_index(&self, rows: &[u32], mut postings: Vec<(u64, Vec<u32>)>) -> SegmentIndex {
        postings.sort_unstable_by_key(|(key, _)| *key);
        let mut texts: Vec<String> = self
            .texts
            .iter()
            .filter(|(hash, text)| !text.starts_with('v') && postings.binary_search_by_key(*hash, |(k, _)| *k).is_ok())
            .map(|(_, text)| text.to_string())
            .collect();
        // Label keys have no postings: they belong to the segment if one of its rows has them.
        let mut labels: HashSet<(&str, &str)> = HashSet::new();
        for row in rows {
            let entry = &self.entries[*row as usize].entry;
            labels.insert(("level", entry.level.as_str()));
            labels.insert(("category", &entry.category));
            for (name, value) in [("service", &entry.service), ("host", &entry.host), ("module", &entry.module)] {
                if let Some(value) = value {
                    labels.insert((name, value));
                }
            }
        }
        texts.extend(
            labels
                .into_iter()
                .filter(|(_, value)| value.len() <= crate::text::MAX_INDEXED_VALUE_BYTES)
                .map(|(name, value)| format!("v\u{0}{name}\u{0}{value}")),
        );
        texts.sort_unstable();
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
        SegmentIndex { postings, texts, columns }
    }
}

impl Partition for Head {
    fn rows(&self) -> usize {
        self.entries.len()
    }

    fn postings(&self, key: &str) -> Result<Vec<u32>, Error> {
        Ok(self.index.get(&hash64(key.as_bytes())).cloned().unwrap_or_default())
    }

    fn columns(&self) -> &Columns {
        &self.columns.columns
    }

    fn entry(&self, row: u32) -> Result<Arc<StoredEntry>, Error> {
        self.entries.get(row as usize).cloned().ok_or(Error::Corrupt(format!("head has no row {row}")))
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
        let keys: BTreeSet<&str> = self.texts.values().map(|t| &**t).filter(|t| t.starts_with(prefix)).collect();
        Ok(keys.into_iter().map(str::to_string).collect())
    }
}
