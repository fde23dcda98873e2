//! Query execution over partitions (the head, frozen heads, segments).
//!
//! The index only narrows: [`candidates`] returns a superset of the matching rows (or `None`
//! for "every row"), and every candidate line is tested with [`Expr::matches`] before it is
//! returned. Statistics skip that test where [`exact_rows`] proves the index answer exact,
//! which lets them read only the columns.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use hubmon_model::{Level, LogEntry};
use serde::{Deserialize, Serialize};

use crate::partition::Partition;
use crate::query::{CmpOp, Expr, Predicate};
use crate::{Error, StoredEntry, text};

/// Position after the last line of a page: lines strictly older (by timestamp, then id)
/// come next. Rendered as `<timestamp ms>-<id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub timestamp: i64,
    pub id: u64,
}

impl Cursor {
    pub fn parse(text: &str) -> Option<Cursor> {
        let (ts, id) = text.rsplit_once('-')?;
        Some(Cursor { timestamp: ts.parse().ok()?, id: id.parse().ok()? })
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.timestamp, self.id)
    }
}

/// A search: lines matching `query` with `from <= timestamp < to`, newest first.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub query: Expr,
    pub from: i64,
    pub to: i64,
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

/// One matching line.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Hit {
    pub id: u64,
    #[serde(flatten)]
    pub entry: LogEntry,
    /// Matched words and phrases in `message`, as `[start, end)` character offsets.
    pub highlights: Vec<[usize; 2]>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SearchResult {
    pub hits: Vec<Hit>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
    /// Lines the search tested against the query (a measure of its cost).
    pub examined: usize,
}

/// Rows of `part` that may match `expr`, ascending; `None` when the index cannot narrow.
pub(crate) fn candidates(expr: &Expr, part: &dyn Partition) -> Result<Option<Vec<u32>>, Error> {
    Ok(match expr {
        Expr::All | Expr::Not(_) => None,
        Expr::And(parts) => {
            let mut result: Option<Vec<u32>> = None;
            for sub in parts {
                if let Some(rows) = candidates(sub, part)? {
                    result = Some(match result {
                        None => rows,
                        Some(current) => intersect(&current, &rows),
                    });
                    if result.as_ref().is_some_and(Vec::is_empty) {
                        break;
                    }
                }
            }
            result
        }
        Expr::Or(parts) => {
            let mut lists = Vec::new();
            for sub in parts {
                match candidates(sub, part)? {
                    Some(rows) => lists.push(rows),
                    None => return Ok(None),
                }
            }
            Some(union(lists))
        }
        Expr::Is(predicate) => predicate_rows(predicate, part)?.map(|(rows, _)| rows),
    })
}

/// Rows matching `expr` exactly, when the index alone can say so.
pub(crate) fn exact_rows(expr: &Expr, part: &dyn Partition) -> Result<Option<Vec<u32>>, Error> {
    Ok(match expr {
        Expr::All => Some(all_rows(part)),
        Expr::And(parts) => {
            let mut result = all_rows(part);
            for sub in parts {
                match exact_rows(sub, part)? {
                    Some(rows) => result = intersect(&result, &rows),
                    None => return Ok(None),
                }
            }
            Some(result)
        }
        Expr::Or(parts) => {
            let mut lists = Vec::new();
            for sub in parts {
                match exact_rows(sub, part)? {
                    Some(rows) => lists.push(rows),
                    None => return Ok(None),
                }
            }
            Some(union(lists))
        }
        Expr::Not(inner) => exact_rows(inner, part)?.map(|rows| complement(&rows, part.rows())),
        Expr::Is(predicate) => match predicate_rows(predicate, part)? {
            Some((rows, true)) => Some(rows),
            _ => None,
        },
    })
}

/// Index rows for one predicate and whether they are exact.
fn predicate_rows(predicate: &Predicate, part: &dyn Partition) -> Result<Option<(Vec<u32>, bool)>, Error> {
    if let Some(rows) = part.column_rows(predicate) {
        return Ok(Some((rows, true)));
    }
    match predicate {
        Predicate::Text(term) => {
            let tokens: Vec<String> = text::tokens(term).collect();
            let indexable: Vec<&String> =
                tokens.iter().filter(|t| t.chars().count() <= text::MAX_TOKEN_CHARS).collect();
            if indexable.is_empty() {
                return Ok(None);
            }
            // One word made only of word characters is exactly its token.
            let exact = tokens.len() == 1 && indexable.len() == 1 && term.chars().all(text::is_word_char);
            let mut result: Option<Vec<u32>> = None;
            let mut exact = exact;
            for token in indexable {
                let key = text::token_key(token);
                exact &= part.key_is_exact(&key);
                let rows = part.postings(&key)?;
                result = Some(match result {
                    None => rows,
                    Some(current) => intersect(&current, &rows),
                });
            }
            Ok(result.map(|rows| (rows, exact)))
        }
        Predicate::FieldIs { field, values } => {
            if field == "timestamp" || values.iter().any(|v| v.len() > text::MAX_INDEXED_VALUE_BYTES) {
                return Ok(None);
            }
            let mut lists = Vec::new();
            let mut exact = true;
            for value in values {
                let key = text::field_key(field, value);
                exact &= part.key_is_exact(&key);
                lists.push(part.postings(&key)?);
            }
            Ok(Some((union(lists), exact)))
        }
        Predicate::FieldExists(field) => {
            if field == "timestamp" || field == "message" {
                return Ok(None);
            }
            let key = text::field_presence_key(field);
            Ok(Some((part.postings(&key)?, part.key_is_exact(&key))))
        }
        Predicate::FieldCmp { field, op, value } if field == "level" => {
            let mut lists = Vec::new();
            let mut exact = true;
            for level in Level::ALL {
                let code = f64::from(level.code());
                let holds = match op {
                    CmpOp::Gt => code > *value,
                    CmpOp::Ge => code >= *value,
                    CmpOp::Lt => code < *value,
                    CmpOp::Le => code <= *value,
                };
                if holds {
                    let key = text::field_key("level", level.as_str());
                    exact &= part.key_is_exact(&key);
                    lists.push(part.postings(&key)?);
                }
            }
            Ok(Some((union(lists), exact)))
        }
        Predicate::FieldCmp { .. } => Ok(None),
    }
}

fn all_rows(part: &dyn Partition) -> Vec<u32> {
    (0..part.rows() as u32).collect()
}

fn complement(rows: &[u32], total: usize) -> Vec<u32> {
    let mut out = Vec::with_capacity(total.saturating_sub(rows.len()));
    let mut next = rows.iter().peekable();
    for row in 0..total as u32 {
        if next.peek() == Some(&&row) {
            next.next();
        } else {
            out.push(row);
        }
    }
    out
}

pub(crate) fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn union(lists: Vec<Vec<u32>>) -> Vec<u32> {
    let mut all: Vec<u32> = lists.into_iter().flatten().collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// Fewer candidates than this are read on the calling thread alone.
const PARALLEL_MIN_ROWS: usize = 64;

/// `read` of each row, in the order of `rows`. Reading a candidate line (a block read and
/// its decompression) is most of a selective search, so with many candidates the rows are
/// split over the machine's cores (at most 4).
fn check_rows<T: Send>(
    rows: &[u32],
    read: impl Fn(u32) -> Result<Option<T>, Error> + Sync,
) -> Result<Vec<Option<T>>, Error> {
    let check = |rows: &[u32]| rows.iter().map(|&row| read(row)).collect::<Result<Vec<_>, Error>>();
    // Asked once: the standard library reads the cgroup files on every call, which cost a
    // selective statistics request more than its candidates.
    static THREADS: LazyLock<usize> =
        LazyLock::new(|| std::thread::available_parallelism().map_or(1, |n| n.get()).min(4));
    let threads = *THREADS;
    if threads < 2 || rows.len() < PARALLEL_MIN_ROWS {
        return check(rows);
    }
    std::thread::scope(|scope| {
        let check = &check;
        let workers: Vec<_> =
            rows.chunks(rows.len().div_ceil(threads)).map(|chunk| scope.spawn(move || check(chunk))).collect();
        let mut out = Vec::with_capacity(rows.len());
        for worker in workers {
            out.extend(worker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))?);
        }
        Ok(out)
    })
}

/// A search fed partitions a group at a time (in any order) that returns the newest `limit`
/// matches of them all. Taking them in groups lets the store read the head under its lock
/// and the rest after releasing it, so a long search does not hold back appends.
pub(crate) struct Search<'r> {
    request: &'r SearchRequest,
    limit: usize,
    /// Newest first once a group is done; one more than the limit tells whether there is a
    /// next page.
    kept: Vec<(Cursor, Arc<StoredEntry>)>,
    examined: usize,
}

impl<'r> Search<'r> {
    pub(crate) fn new(request: &'r SearchRequest) -> Self {
        Self { request, limit: request.limit.max(1), kept: Vec::new(), examined: 0 }
    }

    pub(crate) fn add(&mut self, parts: &[&dyn Partition]) -> Result<(), Error> {
        let (request, limit) = (self.request, self.limit);
        let mut order: Vec<&&dyn Partition> =
            parts.iter().filter(|p| p.rows() > 0 && p.max_ts() >= request.from && p.min_ts() < request.to).collect();
        order.sort_by_key(|p| Reverse(p.max_ts()));
        for part in order {
            let kept = &mut self.kept;
            if kept.len() > limit && kept.last().is_some_and(|(c, _)| c.timestamp > part.max_ts()) {
                continue;
            }
            let columns = part.columns();
            let rows = match candidates(&request.query, *part)? {
                Some(rows) => rows,
                None => all_rows(*part),
            };
            let in_range = |row: &u32| {
                let ts = columns.timestamps[*row as usize];
                let position = Cursor { timestamp: ts, id: columns.ids[*row as usize] };
                ts >= request.from && ts < request.to && request.cursor.is_none_or(|c| position < c)
            };
            let mut rows: Vec<u32> = rows.into_iter().filter(in_range).collect();
            if part.time_ordered() {
                rows.reverse();
            } else {
                rows.sort_unstable_by_key(|r| Reverse((columns.timestamps[*r as usize], columns.ids[*r as usize])));
            }
            // `kept` is sorted here: nothing older than its last line can make the page.
            let worst = if kept.len() > limit { kept.last().map(|(c, _)| *c) } else { None };
            let position =
                |row: u32| Cursor { timestamp: columns.timestamps[row as usize], id: columns.ids[row as usize] };
            let useful = rows.iter().position(|&row| worst.is_some_and(|w| position(row) < w)).unwrap_or(rows.len());
            let mut rows = &rows[..useful];
            let mut found = 0;
            // Candidates are read a window at a time, as many as could still make the page, the
            // window's lines on several threads.
            'page: while !rows.is_empty() {
                let (window, rest) = rows.split_at((limit + 1 - found).max(PARALLEL_MIN_ROWS).min(rows.len()));
                rows = rest;
                let checked = check_rows(window, |row| {
                    part.entry(row).map(|stored| request.query.matches(&stored.entry).then_some(stored))
                })?;
                for (&row, stored) in window.iter().zip(checked) {
                    self.examined += 1;
                    if let Some(stored) = stored {
                        kept.push((position(row), stored));
                        found += 1;
                        if found > limit {
                            break 'page;
                        }
                    }
                }
            }
            kept.sort_by_key(|(c, _)| Reverse(*c));
            kept.truncate(limit + 1);
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> SearchResult {
        let Search { request, limit, mut kept, examined } = self;
        let terms = request.query.highlight_terms();
        let more = kept.len() > limit;
        kept.truncate(limit);
        let next_cursor = if more { kept.last().map(|(c, _)| c.to_string()) } else { None };
        let hits = kept
            .into_iter()
            .map(|(_, stored)| {
                // Segment lines are decoded for this search alone: take them rather than copy.
                let stored = Arc::try_unwrap(stored).unwrap_or_else(|shared| shared.as_ref().clone());
                Hit { id: stored.id, highlights: highlights(&stored.entry.message, &terms), entry: stored.entry }
            })
            .collect();
        SearchResult { hits, next_cursor, examined }
    }
}

/// Character ranges of the terms in `message`, sorted and merged.
pub fn highlights(message: &str, terms: &[String]) -> Vec<[usize; 2]> {
    let mut ranges: Vec<(usize, usize)> = terms.iter().flat_map(|t| text::find_term(message, t)).collect();
    ranges.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    let char_at = |byte: usize| message[..byte].chars().count();
    merged.into_iter().map(|(s, e)| [char_at(s), char_at(e)]).collect()
}

/// A statistics request: counts per `step` bucket over `[from, to)`.
#[derive(Debug, Clone)]
pub struct StatsRequest {
    pub query: Expr,
    pub from: i64,
    pub to: i64,
    pub step: i64,
    pub top: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Bucket {
    /// Start of the bucket (ms since the epoch).
    pub start: i64,
    pub total: u64,
    /// Lines per level name.
    pub levels: HashMap<String, u64>,
    /// Lines per category.
    pub categories: HashMap<String, u64>,
    /// Lines of level error or critical.
    pub errors: u64,
    /// `errors / total`, 0 for an empty bucket.
    pub error_rate: f64,
    /// Bytes of message text.
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TopMessage {
    /// The message with numbers and ids folded into `<*>`.
    pub template: String,
    pub count: u64,
    /// The most severe level seen with it.
    pub level: Level,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Stats {
    pub from: i64,
    pub to: i64,
    pub step: i64,
    pub total: u64,
    pub levels: HashMap<String, u64>,
    pub categories: HashMap<String, u64>,
    pub buckets: Vec<Bucket>,
    pub top_messages: Vec<TopMessage>,
}

/// Statistics fed partitions a group at a time, like [`Search`].
pub(crate) struct Counting<'r> {
    request: &'r StatsRequest,
    step: i64,
    buckets: Vec<Bucket>,
    templates: HashMap<String, (u64, u8)>,
    level_counts: Vec<[u64; 8]>,
}

impl<'r> Counting<'r> {
    pub(crate) fn new(request: &'r StatsRequest) -> Self {
        let step = request.step.max(1);
        let count = usize::try_from((request.to - request.from).max(0).div_euclid(step) + 1).unwrap_or(1).min(100_000);
        let buckets: Vec<Bucket> =
            (0..count).map(|i| Bucket { start: request.from + i as i64 * step, ..Default::default() }).collect();
        let level_counts = vec![[0; 8]; buckets.len()];
        Self { request, step, buckets, templates: HashMap::new(), level_counts }
    }

    pub(crate) fn add(&mut self, parts: &[&dyn Partition]) -> Result<(), Error> {
        let Counting { request, step, buckets, templates, level_counts } = self;
        let (request, step) = (*request, *step);
        for part in parts {
            if part.rows() == 0 || part.max_ts() < request.from || part.min_ts() >= request.to {
                continue;
            }
            let columns = part.columns();
            let (rows, exact) = match exact_rows(&request.query, *part)? {
                Some(rows) => (rows, true),
                None => (candidates(&request.query, *part)?.unwrap_or_else(|| all_rows(*part)), false),
            };
            // Counted by code in arrays, named once per partition: a map entry with a fresh
            // `String` per row was most of the cost of counting a million rows.
            let mut template_counts: Vec<(u64, u8)> = vec![(0, 0); columns.template_texts.len()];
            let mut category_counts: Vec<u64> = vec![0; columns.category_names.len()];
            let mut current: Option<usize> = None;
            let flush_categories = |bucket: Option<usize>, counts: &mut Vec<u64>, buckets: &mut Vec<Bucket>| {
                let Some(bucket) = bucket.and_then(|b| buckets.get_mut(b)) else { return };
                for (id, count) in counts.iter_mut().enumerate().filter(|(_, c)| **c > 0) {
                    let name = columns.category_names.get(id).cloned().unwrap_or_default();
                    *bucket.categories.entry(name).or_default() += *count;
                    *count = 0;
                }
            };
            let mut rows: Vec<u32> = rows
                .into_iter()
                .filter(|&row| (request.from..request.to).contains(&columns.timestamps[row as usize]))
                .collect();
            if !exact {
                // A count needs only whether each candidate matches: words and phrases are
                // decided by the message alone, without building the whole line.
                let query = &request.query;
                let checked = if query.reads_only_message() {
                    check_rows(&rows, |row| part.message(row).map(|m| query.matches_message(&m).then_some(())))?
                } else {
                    check_rows(&rows, |row| part.entry(row).map(|stored| query.matches(&stored.entry).then_some(())))?
                };
                let mut matched = checked.into_iter();
                rows.retain(|_| matched.next().flatten().is_some());
            }
            for row in rows {
                let r = row as usize;
                let ts = columns.timestamps[r];
                let index = ((ts - request.from) / step) as usize;
                if index >= buckets.len() {
                    continue;
                }
                if current != Some(index) {
                    flush_categories(current, &mut category_counts, buckets);
                    current = Some(index);
                }
                let code = columns.levels[r];
                let bucket = &mut buckets[index];
                bucket.total += 1;
                bucket.bytes += u64::from(columns.message_bytes[r]);
                if let Some(count) = level_counts[index].get_mut(usize::from(code)) {
                    *count += 1;
                }
                if let Some(count) = category_counts.get_mut(columns.categories[r] as usize) {
                    *count += 1;
                }
                if Level::from_code(code).unwrap_or(Level::Info) >= Level::Error {
                    bucket.errors += 1;
                }
                if let Some(slot) = template_counts.get_mut(columns.templates[r] as usize) {
                    slot.0 += 1;
                    slot.1 = slot.1.max(code);
                }
            }
            flush_categories(current, &mut category_counts, buckets);
            for (id, (count, level)) in template_counts.into_iter().enumerate().filter(|(_, (c, _))| *c > 0) {
                if let Some(template) = columns.template_texts.get(id) {
                    let slot = templates.entry(template.clone()).or_default();
                    slot.0 += count;
                    slot.1 = slot.1.max(level);
                }
            }
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> Stats {
        let Counting { request, step, mut buckets, templates, level_counts } = self;
        for (bucket, counts) in buckets.iter_mut().zip(&level_counts) {
            for (code, count) in counts.iter().enumerate().filter(|(_, c)| **c > 0) {
                let level = Level::from_code(code as u8).unwrap_or(Level::Info);
                *bucket.levels.entry(level.as_str().to_string()).or_default() += count;
            }
        }
        let mut levels: HashMap<String, u64> = HashMap::new();
        let mut categories: HashMap<String, u64> = HashMap::new();
        let mut total = 0;
        for bucket in &mut buckets {
            bucket.error_rate = if bucket.total == 0 { 0.0 } else { bucket.errors as f64 / bucket.total as f64 };
            total += bucket.total;
            for (k, v) in &bucket.levels {
                *levels.entry(k.clone()).or_default() += v;
            }
            for (k, v) in &bucket.categories {
                *categories.entry(k.clone()).or_default() += v;
            }
        }
        let mut top: Vec<TopMessage> = templates
            .into_iter()
            .map(|(template, (count, level))| TopMessage {
                template,
                count,
                level: Level::from_code(level).unwrap_or(Level::Info),
            })
            .collect();
        top.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.template.cmp(&b.template)));
        top.truncate(request.top);
        Stats { from: request.from, to: request.to, step, total, levels, categories, buckets, top_messages: top }
    }
}
