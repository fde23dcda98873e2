//! What the head and a segment have in common for searching: rows numbered from 0, an
//! inverted index from keys to rows, per-row columns for statistics, and the full entry.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;
use std::sync::Arc;

use hubmon_model::{Level, LogEntry};

use crate::query::Predicate;
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
/// Interned names by their text; hashed with the store's own key hash (every line looks up
/// its category and template).
type Interned = HashMap<String, u32, std::hash::BuildHasherDefault<crate::head::KeyHasher>>;

#[derive(Default)]
pub(crate) struct ColumnsBuilder {
    pub columns: Columns,
    category_ids: Interned,
    template_ids: Interned,
    /// The line's message template, built here for every line.
    template: String,
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
        text::template_into(&entry.message, &mut self.template);
        let template = intern(&mut self.template_ids, &mut c.template_texts, &self.template);
        c.templates.push(template);
        c.message_bytes.push(u32::try_from(entry.message.len()).unwrap_or(u32::MAX));
    }
}

fn intern(ids: &mut Interned, names: &mut Vec<String>, value: &str) -> u32 {
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
    /// Whether [`Partition::postings`] of `key` are exactly its rows; `false` where the index
    /// stores a hash that another key of the partition shares (the rows of both are given).
    fn key_is_exact(&self, _key: &str) -> bool {
        true
    }
    /// The rows matching `predicate`, exactly, from columns held in memory; `None` where the
    /// partition keeps no such column (its index answers instead). Level and category are
    /// always answered here: they have no index keys.
    fn column_rows(&self, predicate: &Predicate) -> Option<Vec<u32>> {
        model_column_rows(self.columns(), predicate)
    }
    fn columns(&self) -> &Columns;
    fn entry(&self, row: u32) -> Result<Arc<StoredEntry>, Error>;
    /// Row `row`'s message, without the rest of the line where the partition can.
    fn message(&self, row: u32) -> Result<String, Error> {
        Ok(self.entry(row)?.entry.message.clone())
    }
    fn min_ts(&self) -> i64;
    fn max_ts(&self) -> i64;
    /// Whether rows are in (timestamp, id) order, so the last rows are the newest.
    fn time_ordered(&self) -> bool;
    /// Listing keys of a kind (`"p"` presence, `"v\0field"` labels, `"f\0field"` values),
    /// those of level and category included (see [`model_keys_with_prefix`]).
    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, Error>;
    /// `field`'s text on every row, as [`LogEntry::field_text`] gives it, from what the
    /// partition holds in memory; `None` where only decoding the rows can tell. Level and
    /// category are always columns; a field no row has needs no column.
    fn field_column(&self, field: &str) -> Result<Option<FieldColumn<'_>>, Error> {
        Ok(model_field_column(self.columns(), field).or(self.lacks_field(field)?.then_some(FieldColumn::Absent)))
    }
    /// Whether no row has `field` (its presence key has no postings). Only the fields that
    /// every line has (message, timestamp, level, category) have no presence key.
    fn lacks_field(&self, field: &str) -> Result<bool, Error> {
        if matches!(field, "message" | "timestamp" | "level" | "category") {
            return Ok(false);
        }
        Ok(self.postings(&format!("p\u{0}{field}"))?.is_empty())
    }
}

/// A field's text per row, read from memory (see [`Partition::field_column`]).
pub(crate) enum FieldColumn<'a> {
    /// No row has the field.
    Absent,
    Levels(&'a [u8]),
    /// Every row has one of `names`.
    Named {
        codes: &'a [u32],
        names: &'a [String],
    },
    /// `code + 1` per row into `texts` (0: the row lacks the field).
    Coded {
        codes: &'a [u16],
        texts: Vec<Option<String>>,
    },
}

impl FieldColumn<'_> {
    pub fn text(&self, row: u32) -> Option<&str> {
        let row = row as usize;
        match self {
            FieldColumn::Absent => None,
            FieldColumn::Levels(levels) => levels.get(row).and_then(|l| Level::from_code(*l)).map(Level::as_str),
            FieldColumn::Named { codes, names } => {
                codes.get(row).and_then(|c| names.get(*c as usize)).map(String::as_str)
            }
            FieldColumn::Coded { codes, texts } => match codes.get(row).copied().unwrap_or(0) {
                0 => None,
                code => texts.get(usize::from(code) - 1).and_then(Option::as_deref),
            },
        }
    }
}

/// Level and category from the columns every partition has.
pub(crate) fn model_field_column<'a>(columns: &'a Columns, field: &str) -> Option<FieldColumn<'a>> {
    match field {
        "level" => Some(FieldColumn::Levels(&columns.levels)),
        "category" => Some(FieldColumn::Named { codes: &columns.categories, names: &columns.category_names }),
        _ => None,
    }
}

/// Fields that are a line's stream labels in the Loki API.
pub const STREAM_LABELS: [&str; 5] = ["level", "category", "service", "host", "module"];

/// What an index key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// A message token or a field value (`m\0…`, `f\0…`): has postings.
    Value,
    /// The line has a field (`p\0…`): has postings and is listed by `field_names`.
    Presence,
    /// A stream label's value as sent (`v\0…`): only listed, never looked up.
    Label,
}

/// Calls `visit` with every index key of a line, built in `buffer` (reused, so indexing a
/// line allocates nothing once the buffer has grown): its message tokens, then what
/// [`visit_field_keys`] visits. A key may be visited twice (a free-form field named like a
/// model field); callers dedup.
pub(crate) fn visit_keys(entry: &LogEntry, buffer: &mut Vec<u8>, mut visit: impl FnMut(&[u8], KeyKind)) {
    let message = entry.message.as_str();
    for token in message.split(|c: char| !text::is_word_char(c)).filter(|t| !t.is_empty()) {
        if token.len() > text::MAX_TOKEN_CHARS && token.chars().count() > text::MAX_TOKEN_CHARS {
            continue;
        }
        buffer.clear();
        buffer.extend_from_slice(b"m\0");
        push_lower(buffer, token);
        visit(buffer, KeyKind::Value);
    }
    visit_field_keys(entry, buffer, visit);
}

/// The keys of a line's fields: each field's value (lower-cased, when short enough), each
/// field's presence, and the stream labels as sent. Level and category have none: every
/// line has both, and a partition answers them from its columns ([`model_column_rows`],
/// [`model_key_texts`]), so their keys (a fifth of a line's) were work for nothing.
pub(crate) fn visit_field_keys(entry: &LogEntry, buffer: &mut Vec<u8>, mut visit: impl FnMut(&[u8], KeyKind)) {
    let mut number = String::new();
    let mut field = |name: &str, value: &str, buffer: &mut Vec<u8>, label: bool| {
        buffer.clear();
        buffer.extend_from_slice(b"p\0");
        buffer.extend_from_slice(name.as_bytes());
        visit(buffer, KeyKind::Presence);
        if label && value.len() <= text::MAX_INDEXED_VALUE_BYTES {
            buffer[0] = b'v';
            buffer.push(0);
            buffer.extend_from_slice(value.as_bytes());
            visit(buffer, KeyKind::Label);
            buffer.truncate(2 + name.len());
        }
        buffer[0] = b'f';
        buffer.push(0);
        let at = buffer.len();
        push_lower(buffer, value);
        if buffer.len() - at <= text::MAX_INDEXED_VALUE_BYTES {
            visit(buffer, KeyKind::Value);
        }
    };
    let optional = [
        ("module", entry.module.as_deref()),
        ("function", entry.function.as_deref()),
        ("request_id", entry.request_id.as_deref()),
        ("user_id", entry.user_id.as_deref()),
        ("service", entry.service.as_deref()),
        ("host", entry.host.as_deref()),
    ];
    if let Some(line) = entry.line {
        number.clear();
        let _ = write!(number, "{line}");
        field("line", &number, buffer, false);
    }
    for (name, value) in optional {
        if let Some(value) = value {
            field(name, value, buffer, STREAM_LABELS.contains(&name));
        }
    }
    for (name, value) in &entry.fields {
        if let Some(text) = value_key_text(value, &mut number) {
            field(name, text, buffer, false);
        }
    }
}

/// A field value's text as its key holds it (before lower-casing), numbers written into
/// `number` (reused, so a line's keys allocate nothing); `None` for null.
pub(crate) fn value_key_text<'v>(value: &'v serde_json::Value, number: &'v mut String) -> Option<&'v str> {
    match value {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => {
            number.clear();
            let _ = write!(number, "{n}");
            Some(number)
        }
        serde_json::Value::Bool(b) => Some(if *b { "true" } else { "false" }),
        other => {
            *number = other.to_string();
            Some(number)
        }
    }
}

/// The value key of `field` with `text`, built in `buffer`, when the value is short enough
/// to be indexed (what [`visit_field_keys`] visits).
pub(crate) fn value_key<'b>(buffer: &'b mut Vec<u8>, field: &str, text: &str) -> Option<&'b [u8]> {
    buffer.clear();
    buffer.extend_from_slice(b"f\0");
    buffer.extend_from_slice(field.as_bytes());
    buffer.push(0);
    let at = buffer.len();
    push_lower(buffer, text);
    (buffer.len() - at <= text::MAX_INDEXED_VALUE_BYTES).then_some(buffer.as_slice())
}

/// The rows matching a predicate on level or category, from the columns every partition
/// has: every line has both fields, so the columns answer exactly (`None` for other
/// predicates).
pub(crate) fn model_column_rows(columns: &Columns, predicate: &Predicate) -> Option<Vec<u32>> {
    let levels = |wanted: &dyn Fn(Level) -> bool| {
        let wanted: Vec<bool> = Level::ALL.iter().map(|l| wanted(*l)).collect();
        rows_with_codes(columns.levels.iter().map(|l| usize::from(*l)), &wanted)
    };
    match predicate {
        Predicate::FieldIs { field, values } => {
            let matches = |text: &str| values.contains(&text::lower(text));
            match field.as_str() {
                "level" => Some(levels(&|l| matches(l.as_str()))),
                "category" => {
                    let wanted: Vec<bool> = columns.category_names.iter().map(|c| matches(c)).collect();
                    Some(rows_with_codes(columns.categories.iter().map(|c| *c as usize), &wanted))
                }
                _ => None,
            }
        }
        Predicate::FieldCmp { field, op, value } if field == "level" => {
            Some(levels(&|l| op.holds(f64::from(l.code()), *value)))
        }
        Predicate::FieldExists(field) if field == "level" || field == "category" => {
            Some((0..columns.levels.len() as u32).collect())
        }
        _ => None,
    }
}

/// The rows (positions in `codes`) whose code is `wanted`.
pub(crate) fn rows_with_codes(codes: impl Iterator<Item = usize>, wanted: &[bool]) -> Vec<u32> {
    codes.enumerate().filter(|(_, c)| wanted.get(*c).copied().unwrap_or(false)).map(|(r, _)| r as u32).collect()
}

/// The listing keys (presence, label as sent, value) of the levels and categories that
/// `columns` hold: what [`visit_field_keys`] would give for them.
pub(crate) fn model_key_texts(columns: &Columns, texts: &mut BTreeSet<String>) {
    let mut levels = [false; 256];
    for level in &columns.levels {
        levels[usize::from(*level)] = true;
    }
    for level in Level::ALL.into_iter().filter(|l| levels[usize::from(l.code())]) {
        add_field_key_texts(texts, "level", level.as_str(), true);
    }
    let mut categories = vec![false; columns.category_names.len()];
    for category in &columns.categories {
        if let Some(seen) = categories.get_mut(*category as usize) {
            *seen = true;
        }
    }
    for (name, _) in columns.category_names.iter().zip(&categories).filter(|(_, seen)| **seen) {
        add_field_key_texts(texts, "category", name, true);
    }
}

/// [`model_key_texts`] that start with `prefix`: level and category have no index keys, so a
/// partition whose listing comes from its index adds these.
pub(crate) fn model_keys_with_prefix(columns: &Columns, prefix: &str) -> Vec<String> {
    let mut texts = BTreeSet::new();
    model_key_texts(columns, &mut texts);
    texts.into_iter().filter(|text| text.starts_with(prefix)).collect()
}

/// The listing keys of one field value, as text.
pub(crate) fn add_field_key_texts(texts: &mut BTreeSet<String>, name: &str, value: &str, label: bool) {
    texts.insert(format!("p\u{0}{name}"));
    if label && value.len() <= text::MAX_INDEXED_VALUE_BYTES {
        texts.insert(format!("v\u{0}{name}\u{0}{value}"));
    }
    let lower = text::lower(value);
    if lower.len() <= text::MAX_INDEXED_VALUE_BYTES {
        texts.insert(format!("f\u{0}{name}\u{0}{lower}"));
    }
}

/// Appends `text` lower-cased the way [`text::lower`] does.
fn push_lower(buffer: &mut Vec<u8>, value: &str) {
    if value.is_ascii() {
        buffer.extend(value.bytes().map(|b| b.to_ascii_lowercase()));
    } else {
        let mut utf8 = [0u8; 4];
        for c in value.chars().flat_map(char::to_lowercase) {
            buffer.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
        }
    }
}

/// Every index key of a line as strings, sorted and unique (for tests and the v1 format).
#[cfg(test)]
pub(crate) fn index_keys(entry: &LogEntry) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut buffer = Vec::new();
    visit_keys(entry, &mut buffer, |key, _| {
        keys.insert(String::from_utf8_lossy(key).into_owned());
    });
    keys
}
