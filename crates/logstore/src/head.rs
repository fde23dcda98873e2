//! The head: lines written since the last flush, in memory with their index, searchable the
//! moment the append returns. Rows are in arrival order.

use std::collections::HashMap;
use std::sync::Arc;

use crate::partition::{Columns, ColumnsBuilder, Partition, index_keys};
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
