//! The head: lines written since the last flush, in memory with their index, searchable the
//! moment the append returns. Rows are in arrival order.

use std::collections::HashMap;
use std::sync::Arc;

use crate::partition::{Columns, ColumnsBuilder, Partition, index_keys};
use crate::segment::SegmentIndex;
use crate::{Error, StoredEntry};

#[derive(Default)]
pub(crate) struct Head {
    entries: Vec<Arc<StoredEntry>>,
    index: HashMap<String, Vec<u32>>,
    columns: ColumnsBuilder,
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
        for key in index_keys(&stored.entry) {
            self.index.entry(key).or_default().push(row);
        }
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
    pub fn segment_index(&self, rows: &[u32]) -> SegmentIndex {
        let mut position = vec![u32::MAX; self.entries.len()];
        for (segment_row, head_row) in rows.iter().enumerate() {
            position[*head_row as usize] = u32::try_from(segment_row).unwrap_or(u32::MAX);
        }
        let mut postings: Vec<(String, Vec<u32>)> = self
            .index
            .iter()
            .filter_map(|(key, head_rows)| {
                let mut mapped: Vec<u32> =
                    head_rows.iter().map(|r| position[*r as usize]).filter(|p| *p != u32::MAX).collect();
                if mapped.is_empty() {
                    return None;
                }
                mapped.sort_unstable();
                Some((key.clone(), mapped))
            })
            .collect();
        postings.sort_unstable_by(|a, b| a.0.cmp(&b.0));
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
        self.entries.len()
    }

    fn postings(&self, key: &str) -> Result<Vec<u32>, Error> {
        Ok(self.index.get(key).cloned().unwrap_or_default())
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
        Ok(self.index.keys().filter(|k| k.starts_with(prefix)).cloned().collect())
    }
}
