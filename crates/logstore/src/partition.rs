//! What the head and a segment have in common for searching: rows numbered from 0, an
//! inverted index from keys to rows, per-row columns for statistics, and the full entry.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use hubmon_model::LogEntry;

use crate::{Error, StoredEntry, text};

/// Per-row values that statistics read without decoding entries.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Columns {
    pub ids: Vec<u64>,
    pub timestamps: Vec<i64>,
    pub levels: Vec<u8>,
    /// Index into `categories`.
    pub categories: Vec<u32>,
    /// Index into `templates`.
    pub templates: Vec<u32>,
    pub message_bytes: Vec<u32>,
    pub category_names: Vec<String>,
    pub template_texts: Vec<String>,
}

/// Builds [`Columns`] one row at a time, interning categories and templates.
#[derive(Default)]
pub(crate) struct ColumnsBuilder {
    pub columns: Columns,
    category_ids: HashMap<String, u32>,
    template_ids: HashMap<String, u32>,
}

impl ColumnsBuilder {
    pub fn push(&mut self, stored: &StoredEntry) {
        let entry = &stored.entry;
        let c = &mut self.columns;
        c.ids.push(stored.id);
        c.timestamps.push(entry.timestamp.as_millis());
        c.levels.push(entry.level.code());
        let category = intern(&mut self.category_ids, &mut c.category_names, &entry.category);
        c.categories.push(category);
        let template = intern(&mut self.template_ids, &mut c.template_texts, &text::template(&entry.message));
        c.templates.push(template);
        c.message_bytes.push(u32::try_from(entry.message.len()).unwrap_or(u32::MAX));
    }
}

fn intern(ids: &mut HashMap<String, u32>, names: &mut Vec<String>, value: &str) -> u32 {
    if let Some(&id) = ids.get(value) {
        return id;
    }
    let id = u32::try_from(names.len()).unwrap_or(u32::MAX);
    names.push(value.to_string());
    ids.insert(value.to_string(), id);
    id
}

pub(crate) trait Partition: Send + Sync {
    fn rows(&self) -> usize;
    /// Rows holding `key`, ascending.
    fn postings(&self, key: &str) -> Result<Vec<u32>, Error>;
    fn columns(&self) -> &Columns;
    fn entry(&self, row: u32) -> Result<Arc<StoredEntry>, Error>;
    fn min_ts(&self) -> i64;
    fn max_ts(&self) -> i64;
    /// Whether rows are in (timestamp, id) order, so the last rows are the newest.
    fn time_ordered(&self) -> bool;
    /// Index keys of a kind (`"p"` presence, `"f\0field"` values), for label listings.
    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, Error>;
}

/// Fields that are a line's stream labels in the Loki API.
pub const STREAM_LABELS: [&str; 5] = ["level", "category", "service", "host", "module"];

/// Every index key of a line: its message tokens, each field's value (when short enough)
/// and each field's presence. Sorted and unique.
pub(crate) fn index_keys(entry: &LogEntry) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for token in text::tokens(&entry.message) {
        if token.chars().count() <= text::MAX_TOKEN_CHARS {
            keys.insert(text::token_key(&token));
        }
    }
    // Stream labels keep their case for label-value listings (Grafana's label browser).
    for name in STREAM_LABELS {
        if let Some(value) = entry.field_text(name).filter(|v| v.len() <= text::MAX_INDEXED_VALUE_BYTES) {
            keys.insert(format!("v\u{0}{name}\u{0}{value}"));
        }
    }
    let mut field = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            keys.insert(text::field_presence_key(name));
            let lowered = text::lower(&value);
            if lowered.len() <= text::MAX_INDEXED_VALUE_BYTES {
                keys.insert(text::field_key(name, &lowered));
            }
        }
    };
    for name in ["level", "category", "module", "function", "line", "request_id", "user_id", "service", "host"] {
        field(name, entry.field_text(name));
    }
    for (name, value) in &entry.fields {
        field(name, hubmon_model::json_text(value));
    }
    keys
}
