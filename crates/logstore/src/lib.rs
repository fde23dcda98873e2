//! hubmon's built-in log store.
//!
//! Layout (`docs/format.md` has the bytes, `docs/engine.md` why it is built this way):
//!
//! - [`wal`]: every accepted line is written to the write-ahead log before `append` returns;
//! - [`head`]: the lines since the last flush, in memory with an inverted index, searchable
//!   as soon as `append` returns (near-real-time is immediate);
//! - [`segment`]: a flush freezes the head, writes its lines into one compressed segment file
//!   per hour of timestamps, then deletes the WAL files it came from (format 2 is written,
//!   format 1 files from earlier releases are still read);
//! - [`codec`]: the binary row encoding (WAL records, segment blocks) and the key hash the
//!   head and the segments' term index share;
//! - [`search`]: the query language ([`query`]) answered by intersecting postings and testing
//!   each candidate line, newest first with a cursor; statistics from per-row columns;
//! - live tail: a broadcast of every accepted line.
//!
//! Invariants: ids increase in WAL order; a line is in exactly one of head, a frozen head or
//! a segment at any moment a search can see; the index only narrows, [`query::Expr::matches`]
//! decides.

mod codec;
mod head;
pub mod logql;
mod partition;
pub mod query;
mod search;
mod segment;
pub mod text;
mod wal;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hubmon_model::{LogEntry, LogSink, LogSinkError, Timestamp};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use head::Head;
use partition::Partition;
pub use query::{Expr, QueryError};
pub use search::{Bucket, Cursor, Hit, SearchRequest, SearchResult, Stats, StatsRequest, TopMessage, highlights};
use segment::{Origin, Segment};

const PARTITION_MS: i64 = 3_600_000;
/// Lines a slow tail subscriber may fall behind before it is dropped.
const TAIL_CAPACITY: usize = 8192;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("corrupt log data: {0}")]
    Corrupt(String),
    #[error("cannot encode a log line: {0}")]
    Encode(String),
}

impl Error {
    fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Error::Io { action, path: path.to_path_buf(), source }
    }
}

/// A line as stored: the model entry plus its store-wide id (increasing in arrival order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEntry {
    pub id: u64,
    #[serde(flatten)]
    pub entry: LogEntry,
}

/// The rows of `part` in `[from, to)` that `narrow` may match (from its index), ascending.
fn rows_in_range(part: &dyn Partition, narrow: &Expr, from: i64, to: i64) -> Result<Vec<u32>, Error> {
    if part.rows() == 0 || part.max_ts() < from || part.min_ts() >= to {
        return Ok(Vec::new());
    }
    let timestamps = &part.columns().timestamps;
    let rows = search::candidates(narrow, part)?.unwrap_or_else(|| (0..part.rows() as u32).collect());
    Ok(rows.into_iter().filter(|row| (from..to).contains(&timestamps[*row as usize])).collect())
}

/// One line as [`LogStore::scan_fields`] gives it.
#[derive(Debug)]
pub struct LineFields<'a> {
    pub timestamp: i64,
    pub id: u64,
    pub message_bytes: u32,
    /// The texts of the fields asked for, in their order.
    pub texts: &'a [Option<&'a str>],
    /// The message, when asked for (read from its block alone where the fields came from
    /// columns).
    pub message: Option<&'a str>,
    /// Whether the line had to be decoded to give them.
    pub decoded: bool,
}

/// Past this many times `head_max_lines`, or [`HEAD_HARD_LIMIT_BYTES`] of lines, an append
/// flushes the head before it adds to it (see `LogStore::make_room`).
const HEAD_HARD_LIMIT_FACTOR: usize = 4;
const HEAD_HARD_LIMIT_BYTES: usize = 1 << 30;

/// How the store behaves; the server maps its `[logs]` section onto this.
#[derive(Debug, Clone)]
pub struct Options {
    /// Segments whose newest line is older than this are deleted.
    pub retention: Duration,
    /// Oldest segments are deleted while the segments take more than this many bytes.
    pub max_bytes: u64,
    /// The head is flushed into segments at this many lines …
    pub head_max_lines: usize,
    /// … or when its oldest line has waited this long.
    pub head_max_age: Duration,
    /// `fsync` the WAL on every append (otherwise [`LogStore::sync`] is called on an interval).
    pub sync_every_append: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(7 * 86_400),
            max_bytes: 10 << 30,
            head_max_lines: 100_000,
            head_max_age: Duration::from_secs(300),
            sync_every_append: false,
        }
    }
}

struct Writer {
    wal: wal::Wal,
    next_id: u64,
}

/// A head waiting to be written into segments, still searchable meanwhile.
struct Frozen {
    head: Head,
    wal_to: u64,
}

#[derive(Default, Clone)]
struct Parts {
    frozen: Vec<Arc<Frozen>>,
    segments: Vec<Arc<Segment>>,
}

/// Disk and memory figures for `/metrics` and the docs.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct StoreStats {
    pub segments: usize,
    pub segment_bytes: u64,
    pub head_lines: usize,
    pub lines_in_segments: u64,
}

pub struct LogStore {
    dir: PathBuf,
    options: Options,
    writer: Mutex<Writer>,
    head: RwLock<Head>,
    head_started: Mutex<Option<Instant>>,
    parts: RwLock<Parts>,
    flushing: Mutex<()>,
    tail: broadcast::Sender<Arc<StoredEntry>>,
}

impl LogStore {
    /// Opens (or creates) the store in `dir`, recovering from any crash: half-written
    /// segments are removed and their WAL replayed; WAL files already in segments are dropped.
    pub fn open(dir: &Path, options: Options) -> Result<LogStore, Error> {
        let segment_dir = dir.join("segments");
        let wal_dir = dir.join("wal");
        fs::create_dir_all(&segment_dir).map_err(|e| Error::io("create", &segment_dir, e))?;
        fs::create_dir_all(&wal_dir).map_err(|e| Error::io("create", &wal_dir, e))?;

        let mut groups: BTreeMap<(u64, u64), Vec<Segment>> = BTreeMap::new();
        for item in fs::read_dir(&segment_dir).map_err(|e| Error::io("list", &segment_dir, e))? {
            let path = item.map_err(|e| Error::io("list", &segment_dir, e))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.ends_with(".tmp") {
                fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
                continue;
            }
            if !name.ends_with(".seg") {
                continue;
            }
            match Segment::open(&path) {
                Ok(segment) => {
                    let origin = segment.origin();
                    groups.entry((origin.wal_from, origin.wal_to)).or_default().push(segment);
                }
                Err(error) => {
                    // A complete segment is renamed into place only after its sync, so this
                    // is damage from outside; keep the file for inspection, skip its lines.
                    tracing::error!(path = %path.display(), %error, "skipping an unreadable log segment");
                }
            }
        }
        let mut segments = Vec::new();
        for ((from, to), group) in groups {
            let wal_present = (from..=to).any(|seq| wal::exists(&wal_dir, seq));
            let complete = group.first().is_some_and(|s| s.origin().parts as usize == group.len());
            if wal_present && !complete {
                // A flush died part-way: its WAL files are intact, so replay them instead.
                for segment in group {
                    fs::remove_file(segment.path()).map_err(|e| Error::io("remove", segment.path(), e))?;
                }
                continue;
            }
            if wal_present {
                wal::remove_range(&wal_dir, from, to)?;
            }
            segments.extend(group.into_iter().map(Arc::new));
        }

        let (wal, replayed) = wal::Wal::open(&wal_dir)?;
        let mut next_id = segments.iter().map(|s| s.max_id() + 1).max().unwrap_or(1);
        let mut head = Head::new(replayed.first().map_or(wal.seq(), |r| r.seq));
        let replayed_lines: usize = replayed.iter().map(|r| r.entries.len()).sum();
        for file in replayed {
            next_id = file.entries.iter().map(|s| s.id + 1).fold(next_id, u64::max);
            head.push(wal::encode(file.entries.iter())?, &file.entries);
        }
        if replayed_lines > 0 {
            tracing::info!(lines = replayed_lines, "log WAL replayed");
        }
        let started = (!head.is_empty()).then(Instant::now);
        let (tail, _) = broadcast::channel(TAIL_CAPACITY);
        Ok(LogStore {
            dir: dir.to_path_buf(),
            options,
            writer: Mutex::new(Writer { wal, next_id }),
            head: RwLock::new(head),
            head_started: Mutex::new(started),
            parts: RwLock::new(Parts { frozen: Vec::new(), segments }),
            flushing: Mutex::new(()),
            tail,
        })
    }

    /// Stores lines durably (WAL first), makes them searchable and tells tail subscribers.
    /// Returns the ids given to them.
    pub fn append(&self, entries: Vec<LogEntry>) -> Result<Vec<u64>, Error> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        self.make_room()?;
        let mut writer = self.writer.lock();
        let first = writer.next_id;
        let stored: Vec<StoredEntry> =
            entries.into_iter().zip(first..).map(|(entry, id)| StoredEntry { id, entry }).collect();
        let records = wal::encode(stored.iter())?;
        writer.wal.append(&records)?;
        if self.options.sync_every_append {
            writer.wal.sync()?;
        }
        writer.next_id = first + stored.len() as u64;
        let ids: Vec<u64> = stored.iter().map(|s| s.id).collect();
        self.head.write().push(records, &stored);
        if self.tail.receiver_count() > 0 {
            for line in stored {
                // A receiver may have gone since: not an error.
                let _ = self.tail.send(Arc::new(line));
            }
        }
        self.head_started.lock().get_or_insert_with(Instant::now);
        Ok(ids)
    }

    /// Flushes the WAL to stable storage.
    pub fn sync(&self) -> Result<(), Error> {
        self.writer.lock().wal.sync()
    }

    /// Live lines as they are accepted. A receiver that falls more than a few thousand lines
    /// behind gets `Lagged` and should be dropped; ingest never waits for it.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StoredEntry>> {
        self.tail.subscribe()
    }

    pub fn search(&self, request: &SearchRequest) -> Result<SearchResult, Error> {
        let mut search = search::Search::new(request);
        self.head_then_rest(|parts| search.add(parts))?;
        Ok(search.finish())
    }

    pub fn stats(&self, request: &StatsRequest) -> Result<Stats, Error> {
        let mut counting = search::Counting::new(request);
        self.head_then_rest(|parts| counting.add(parts))?;
        Ok(counting.finish())
    }

    /// Every line matching `query` in `[from, to)`, oldest first (for exports and log
    /// queries read forward), at most `max` of them.
    pub fn scan(&self, query: &Expr, from: i64, to: i64, max: usize) -> Result<Vec<Arc<StoredEntry>>, Error> {
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        self.scan_each(query, from, to, |stored| {
            out.push(stored);
            out.len() < max
        })?;
        out.sort_by_key(|s| (s.entry.timestamp, s.id));
        Ok(out)
    }

    /// Calls `visit` with every line matching `query` in `[from, to)`, in no particular
    /// order, until it returns `false`. Nothing is collected here, so a metric query over
    /// millions of lines holds its samples, not the lines.
    pub fn scan_each(
        &self,
        query: &Expr,
        from: i64,
        to: i64,
        mut visit: impl FnMut(Arc<StoredEntry>) -> bool,
    ) -> Result<(), Error> {
        self.each_part(|part| {
            for row in rows_in_range(part, query, from, to)? {
                let stored = part.entry(row)?;
                if query.matches(&stored.entry) && !visit(stored) {
                    return Ok(false);
                }
            }
            Ok(true)
        })
    }

    /// Calls `visit` with the time, id, message length, the texts of `fields` (as
    /// [`LogEntry::field_text`] gives them) and, `with_message`, the message of every line in `[from, to)` that `narrow` may
    /// match, in no particular order, until it returns `false`. `narrow` only narrows (from
    /// the index): the caller decides each line from its fields.
    ///
    /// Where a partition holds all of `fields` in memory (level and category always; a
    /// segment's dictionary-coded fields), no line is decoded; elsewhere each line is, and
    /// [`LineFields::decoded`] says so, for the caller's budget.
    pub fn scan_fields(
        &self,
        narrow: &Expr,
        from: i64,
        to: i64,
        fields: &[&str],
        with_message: bool,
        mut visit: impl FnMut(&LineFields<'_>) -> bool,
    ) -> Result<(), Error> {
        self.each_part(|part| {
            let rows = rows_in_range(part, narrow, from, to)?;
            if rows.is_empty() {
                return Ok(true);
            }
            let columns = part.columns();
            let in_memory: Vec<Option<partition::FieldColumn>> =
                fields.iter().map(|f| part.field_column(f)).collect::<Result<_, _>>()?;
            let in_memory: Option<Vec<partition::FieldColumn>> = in_memory.into_iter().collect();
            let mut texts: Vec<Option<&str>> = Vec::with_capacity(fields.len());
            for row in rows {
                let r = row as usize;
                let timestamp = columns.timestamps[r];
                let keep_going = match &in_memory {
                    Some(in_memory) => {
                        texts.clear();
                        texts.extend(in_memory.iter().map(|column| column.text(row)));
                        let message = if with_message { Some(part.message(row)?) } else { None };
                        let line = LineFields {
                            timestamp,
                            id: columns.ids[r],
                            message_bytes: columns.message_bytes[r],
                            texts: &texts,
                            message: message.as_deref(),
                            decoded: false,
                        };
                        visit(&line)
                    }
                    None => {
                        let stored = part.entry(row)?;
                        let owned: Vec<Option<String>> = fields.iter().map(|f| stored.entry.field_text(f)).collect();
                        let borrowed: Vec<Option<&str>> = owned.iter().map(Option::as_deref).collect();
                        let line = LineFields {
                            timestamp,
                            id: stored.id,
                            message_bytes: columns.message_bytes[r],
                            texts: &borrowed,
                            message: with_message.then_some(stored.entry.message.as_str()),
                            decoded: true,
                        };
                        visit(&line)
                    }
                };
                if !keep_going {
                    return Ok(false);
                }
            }
            Ok(true)
        })
    }

    /// Field names present on lines (model fields and free-form ones), sorted.
    pub fn field_names(&self) -> Result<Vec<String>, Error> {
        let prefix = "p\u{0}";
        let names = self.keys(prefix)?;
        Ok(names.into_iter().map(|k| k[prefix.len()..].to_string()).collect())
    }

    /// Distinct values of a field, sorted: as sent for the stream labels (level, category,
    /// service, host, module), lower-cased (as indexed) for other fields.
    pub fn field_values(&self, field: &str) -> Result<Vec<String>, Error> {
        let prefix = if partition::STREAM_LABELS.contains(&field) {
            format!("v\u{0}{field}\u{0}")
        } else {
            format!("f\u{0}{field}\u{0}")
        };
        let keys = self.keys(&prefix)?;
        Ok(keys.into_iter().map(|k| k[prefix.len()..].to_string()).collect())
    }

    fn keys(&self, prefix: &str) -> Result<BTreeSet<String>, Error> {
        let mut out = BTreeSet::new();
        self.each_part(|part| {
            out.extend(part.keys_with_prefix(prefix)?);
            Ok(true)
        })?;
        Ok(out)
    }

    /// Calls `f` with the head, under its read lock, then with the frozen heads and segments
    /// of the moment the head was read after the lock is released. Taking them under the
    /// head's lock means a concurrent flush cannot move lines out of the head between the two
    /// looks (no line is seen twice or missed); releasing it before the rest means appends
    /// wait for the head's part of a long read only.
    fn head_then_rest(&self, mut f: impl FnMut(&[&dyn Partition]) -> Result<(), Error>) -> Result<(), Error> {
        let parts = {
            let head = self.head.read();
            let parts = self.parts.read().clone();
            f(&[&*head])?;
            parts
        };
        let mut rest: Vec<&dyn Partition> = parts.frozen.iter().map(|f| &f.head as &dyn Partition).collect();
        rest.extend(parts.segments.iter().map(|s| s.as_ref() as &dyn Partition));
        f(&rest)
    }

    /// [`Self::head_then_rest`] one partition at a time, until `f` returns `false`.
    fn each_part(&self, mut f: impl FnMut(&dyn Partition) -> Result<bool, Error>) -> Result<(), Error> {
        let mut going = true;
        self.head_then_rest(|parts| {
            for part in parts {
                going = going && f(*part)?;
            }
            Ok(())
        })
    }

    /// The id of the newest line accepted so far (0 before the first).
    pub fn last_id(&self) -> u64 {
        self.writer.lock().next_id.saturating_sub(1)
    }

    pub fn store_stats(&self) -> StoreStats {
        let parts = self.parts.read();
        StoreStats {
            segments: parts.segments.len(),
            segment_bytes: parts.segments.iter().map(|s| s.size()).sum(),
            head_lines: self.head.read().len() + parts.frozen.iter().map(|f| f.head.len()).sum::<usize>(),
            lines_in_segments: parts.segments.iter().map(|s| s.rows() as u64).sum(),
        }
    }

    /// Whether the head has reached a flush threshold.
    pub fn needs_flush(&self) -> bool {
        let head = self.head.read();
        if head.is_empty() {
            return false;
        }
        head.len() >= self.options.head_max_lines
            || head.bytes() >= 256 << 20
            || self.head_started.lock().is_some_and(|t| t.elapsed() >= self.options.head_max_age)
    }

    /// Flushes the head if due, then applies retention. Blocking; call off the async runtime.
    pub fn maintain(&self, now: Timestamp) -> Result<(), Error> {
        if self.needs_flush() {
            self.flush()?;
        }
        self.apply_retention(now)
    }

    /// Writes the head (and any frozen head a failed flush left) into segments.
    pub fn flush(&self) -> Result<(), Error> {
        let _one_at_a_time = self.flushing.lock();
        self.flush_holding_the_lock()
    }

    /// Backpressure. The maintenance task flushes the head when it reaches its limits, but
    /// while one flush runs, a faster ingest grows the next head, which then takes longer to
    /// flush: memory would grow without bound. Past a hard limit an appender flushes the head
    /// itself (or waits for the running flush and then flushes), so the callers slow down to
    /// what the flusher sustains instead of the process running out of memory.
    fn make_room(&self) -> Result<(), Error> {
        let over = || {
            let head = self.head.read();
            head.len() >= self.options.head_max_lines.saturating_mul(HEAD_HARD_LIMIT_FACTOR)
                || head.bytes() >= HEAD_HARD_LIMIT_BYTES
        };
        if !over() {
            return Ok(());
        }
        let _one_at_a_time = self.flushing.lock();
        if over() { self.flush_holding_the_lock() } else { Ok(()) }
    }

    fn flush_holding_the_lock(&self) -> Result<(), Error> {
        {
            let mut writer = self.writer.lock();
            let mut head = self.head.write();
            if !head.is_empty() {
                let closed = writer.wal.rotate()?;
                let fresh = Head::new(closed + 1);
                let old = std::mem::replace(&mut *head, fresh);
                self.parts.write().frozen.push(Arc::new(Frozen { head: old, wal_to: closed }));
                *self.head_started.lock() = None;
            }
        }
        let frozen: Vec<Arc<Frozen>> = self.parts.read().frozen.clone();
        for item in frozen {
            let written = self.write_segments(&item)?;
            let mut parts = self.parts.write();
            parts.frozen.retain(|f| !Arc::ptr_eq(f, &item));
            parts.segments.extend(written);
            drop(parts);
            self.writer.lock().wal.remove(item.head.first_wal, item.wal_to)?;
        }
        Ok(())
    }

    fn write_segments(&self, frozen: &Frozen) -> Result<Vec<Arc<Segment>>, Error> {
        let head = &frozen.head;
        let columns = head.columns();
        // Counted first, so each partition's list is allocated once at its size.
        let partition_of = |ts: &i64| ts.div_euclid(PARTITION_MS) * PARTITION_MS;
        let mut sizes: BTreeMap<i64, usize> = BTreeMap::new();
        for ts in &columns.timestamps {
            *sizes.entry(partition_of(ts)).or_default() += 1;
        }
        let mut by_partition: BTreeMap<i64, Vec<u32>> =
            sizes.into_iter().map(|(partition, size)| (partition, Vec::with_capacity(size))).collect();
        for (row, ts) in columns.timestamps.iter().enumerate() {
            if let Some(rows) = by_partition.get_mut(&partition_of(ts)) {
                rows.push(u32::try_from(row).unwrap_or(u32::MAX));
            }
        }
        let parts = u32::try_from(by_partition.len()).unwrap_or(u32::MAX);
        let segment_dir = self.dir.join("segments");
        let mut written = Vec::new();
        let mut partitions = Vec::with_capacity(by_partition.len());
        let mut row_sets = Vec::with_capacity(by_partition.len());
        for (partition, mut rows) in by_partition {
            rows.sort_by_key(|r| (columns.timestamps[*r as usize], columns.ids[*r as usize]));
            partitions.push(partition);
            row_sets.push(rows);
        }
        // The head already indexed these lines; carry its postings and columns over.
        let indexes = frozen.head.segment_indexes(&row_sets);
        for (part, ((partition, rows), index)) in partitions.into_iter().zip(&row_sets).zip(indexes).enumerate() {
            let mut payloads: Vec<&[u8]> = Vec::with_capacity(rows.len());
            for row in rows {
                payloads.push(head.payload(*row)?);
            }
            let origin = Origin {
                wal_from: frozen.head.first_wal,
                wal_to: frozen.wal_to,
                part: u32::try_from(part).unwrap_or(u32::MAX),
                parts,
            };
            let path = Segment::write(&segment_dir, partition, origin, &payloads, index)?;
            written.push(Arc::new(Segment::open(&path)?));
        }
        // The renames must be durable before the WAL files go.
        if let Ok(dir) = fs::File::open(&segment_dir) {
            dir.sync_all().map_err(|e| Error::io("sync", &segment_dir, e))?;
        }
        Ok(written)
    }

    fn apply_retention(&self, now: Timestamp) -> Result<(), Error> {
        let oldest_kept = now.as_millis() - i64::try_from(self.options.retention.as_millis()).unwrap_or(i64::MAX);
        let mut parts = self.parts.write();
        parts.segments.sort_by_key(|s| (s.max_ts(), s.max_id()));
        let mut total: u64 = parts.segments.iter().map(|s| s.size()).sum();
        let mut removed = Vec::new();
        parts.segments.retain(|segment| {
            let expired = segment.max_ts() < oldest_kept;
            let over = total > self.options.max_bytes;
            if expired || over {
                total -= segment.size();
                removed.push(segment.path().to_path_buf());
                return false;
            }
            true
        });
        drop(parts);
        for path in removed {
            tracing::info!(path = %path.display(), "log segment removed by retention");
            fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
        }
        Ok(())
    }
}

impl LogSink for LogStore {
    fn append_logs(&self, entries: Vec<LogEntry>) -> Result<(), LogSinkError> {
        self.append(entries).map(|_| ()).map_err(|e| LogSinkError(e.to_string()))
    }
}

#[cfg(test)]
mod tests;
