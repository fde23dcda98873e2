//! hubmon's built-in time-series store (DESIGN §3): a write-ahead log written before any
//! append is acknowledged, an in-memory head of compressed chunks with an inverted label
//! index, immutable blocks cut from the head on a fixed span, and retention by age and size.
//!
//! It implements the two seams of `hubmon-model`: [`Appender`] for everything that produces
//! samples and [`Querier`] for everything that reads them. Nothing else may touch its files.
//! The on-disk formats are described in `crates/tsdb/docs/format.md`.
//!
//! Invariants:
//! - An append returns `Ok` only after its samples are in the log (written to the OS).
//! - The head refuses samples older than its `min_valid_time`: that range is in blocks.
//! - Blocks never overlap; each covers `[min_time, max_time)` aligned to the block span.

pub mod block;
pub mod chunk;
mod head;
mod wal;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hubmon_model::{
    AppendReport, Appender, Labels, Matcher, PromDuration, Querier, Rejection, Sample, Series, SeriesSamples,
    StoreError,
};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use block::Block;
use head::Head;
use wal::{Record, Wal};

/// The store's settings (`[metrics]` in hubmon's config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Samples older than this are deleted.
    pub retention: PromDuration,
    /// Blocks are deleted, oldest first, while the store is larger than this many bytes
    /// (0: no size limit).
    pub retention_size_bytes: u64,
    /// Time range of one block cut from the head.
    pub block_span: PromDuration,
    /// How far behind the newest sample of its series a sample may arrive and still be kept.
    pub out_of_order_window: PromDuration,
    /// Samples further than this in the future (by the server's clock) are refused.
    pub max_future: PromDuration,
    /// How often the write-ahead log is flushed to disk with fsync (protects against power
    /// loss; a killed process loses nothing either way). 0s: on every append.
    pub wal_sync_interval: PromDuration,
    /// Refuse new series beyond this many in memory.
    pub max_series: u64,
    /// Refuse series with more labels than this (the metric name included).
    pub max_labels_per_series: usize,
    /// Refuse label names or values longer than this many bytes.
    pub max_label_length: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            retention: PromDuration::from_secs(15 * 86_400),
            retention_size_bytes: 0,
            block_span: PromDuration::from_secs(2 * 3600),
            out_of_order_window: PromDuration::from_secs(600),
            max_future: PromDuration::from_secs(600),
            wal_sync_interval: PromDuration::from_secs(1),
            max_series: 2_000_000,
            max_labels_per_series: 40,
            max_label_length: 2048,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("corrupt data: {0}")]
    Corrupt(String),
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io { path: path.to_path_buf(), source }
    }
}

/// Figures about the store, for `/metrics` and the benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub head_series: usize,
    pub head_samples: u64,
    pub head_chunk_bytes: usize,
    pub blocks: usize,
    pub block_samples: u64,
    pub block_bytes: u64,
    pub wal_bytes: u64,
}

pub struct Tsdb {
    config: Config,
    blocks_dir: PathBuf,
    head: RwLock<Head>,
    wal: Mutex<Wal>,
    blocks: RwLock<Vec<Arc<Block>>>,
    /// Serialises maintenance (cutting, compaction, retention) with itself.
    maintenance: Mutex<()>,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn ms(duration: PromDuration) -> i64 {
    i64::try_from(duration.as_duration().as_millis()).unwrap_or(i64::MAX)
}

impl Tsdb {
    /// Opens (or creates) the store in `dir`: loads blocks and replays the log into the head.
    pub fn open(dir: &Path, config: Config) -> Result<Tsdb, Error> {
        let blocks_dir = dir.join("blocks");
        std::fs::create_dir_all(&blocks_dir).map_err(|e| Error::io(&blocks_dir, e))?;
        let mut blocks = Vec::new();
        for entry in std::fs::read_dir(&blocks_dir).map_err(|e| Error::io(&blocks_dir, e))? {
            let path = entry.map_err(|e| Error::io(&blocks_dir, e))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            if name.starts_with(".tmp-") {
                // A block whose writing was interrupted; its data is still in the log.
                let _ = std::fs::remove_dir_all(&path);
                continue;
            }
            match Block::open(&path) {
                Ok(block) => blocks.push(Arc::new(block)),
                Err(error) => tracing::error!(block = %path.display(), %error, "skipping unreadable block"),
            }
        }
        blocks.sort_by_key(|b| b.meta.min_time);
        // A crash between writing a compacted block and deleting its sources leaves both.
        let covered: Vec<Arc<Block>> = blocks
            .iter()
            .filter(|b| {
                blocks.iter().any(|other| {
                    other.meta.level > b.meta.level
                        && other.meta.min_time <= b.meta.min_time
                        && other.meta.max_time >= b.meta.max_time
                })
            })
            .cloned()
            .collect();
        for block in &covered {
            tracing::info!(block = %block.dir.display(), "removing a block already compacted into a larger one");
            let _ = std::fs::remove_dir_all(&block.dir);
        }
        blocks.retain(|b| !covered.iter().any(|c| Arc::ptr_eq(b, c)));
        let persisted_until = blocks.iter().map(|b| b.meta.max_time).max().unwrap_or(i64::MIN);

        let sync = config.wal_sync_interval.as_duration();
        let mut head = Head::new();
        head.min_valid_time = persisted_until;
        let mut replayed = 0u64;
        let mut wal = Wal::replay(&dir.join("wal"), sync, |record| match record {
            Record::Series(series) => series.into_iter().for_each(|(id, labels)| head.insert_with_id(id, labels)),
            Record::Samples(samples) => {
                for (id, sample) in samples {
                    if sample.timestamp >= persisted_until {
                        head.append(id, sample);
                        replayed += 1;
                    }
                }
            }
        })?;
        // Series whose samples are all persisted are dropped; the rest start the new segment.
        head.truncate_before(persisted_until);
        wal.log(&head.all_series(), &[])?;
        tracing::info!(blocks = blocks.len(), series = head.series_count(), samples = replayed, "metrics store opened");
        Ok(Tsdb {
            config,
            blocks_dir,
            head: RwLock::new(head),
            wal: Mutex::new(wal),
            blocks: RwLock::new(blocks),
            maintenance: Mutex::new(()),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn stats(&self) -> Stats {
        let head = self.head.read();
        let blocks = self.blocks.read();
        Stats {
            head_series: head.series_count(),
            head_samples: head.sample_count(),
            head_chunk_bytes: head.chunk_bytes(),
            blocks: blocks.len(),
            block_samples: blocks.iter().map(|b| b.meta.samples).sum(),
            block_bytes: blocks.iter().map(|b| b.size).sum(),
            wal_bytes: self.wal.lock().disk_size(),
        }
    }

    /// Flushes the log to disk (at shutdown).
    pub fn sync(&self) -> Result<(), Error> {
        self.wal.lock().sync()
    }

    fn check_limits(&self, labels: &Labels) -> Result<(), String> {
        if labels.len() > self.config.max_labels_per_series {
            return Err(format!(
                "series has {} labels, more than max_labels_per_series ({})",
                labels.len(),
                self.config.max_labels_per_series
            ));
        }
        let limit = self.config.max_label_length;
        if let Some((name, _)) = labels.iter().find(|(n, v)| n.len() > limit || v.len() > limit) {
            return Err(format!("label {name} is longer than max_label_length ({limit} bytes)"));
        }
        Ok(())
    }

    /// Cuts complete ranges of the head into blocks, applies retention, and rotates the log.
    pub fn maintain(&self) -> Result<(), Error> {
        self.maintain_at(now_ms())
    }

    pub fn maintain_at(&self, now: i64) -> Result<(), Error> {
        let _exclusive = self.maintenance.lock();
        let span = ms(self.config.block_span).max(1);
        loop {
            let (start, end) = {
                let head = self.head.read();
                if head.series_count() == 0 || head.max_time == i64::MIN {
                    break;
                }
                // Like Prometheus: cut once the head spans 1.5 blocks, keeping the newest half.
                if head.max_time - head.min_time < span * 3 / 2 {
                    break;
                }
                let start = head.min_time.div_euclid(span) * span;
                (start, start + span)
            };
            self.cut(start, end)?;
        }
        self.compact()?;
        self.apply_retention(now)?;
        if self.wal.lock().wants_rotation() {
            self.rotate_wal(None)?;
        }
        Ok(())
    }

    /// Starts a new log segment that begins with every live series, then drops segments
    /// older than `persisted_until`.
    ///
    /// Lock order is head, then log, as in `append`: the live series are read under the head
    /// lock and the log is locked before the head is released, so a series created by a
    /// concurrent append is either in `live` or logged after the rotation, in the new
    /// segment. Either way no segment relies on an older one's series definitions.
    fn rotate_wal(&self, persisted_until: Option<i64>) -> Result<(), Error> {
        let head = self.head.read();
        let live = head.all_series();
        let mut wal = self.wal.lock();
        drop(head);
        wal.rotate(&live)?;
        match persisted_until {
            Some(time) => wal.remove_segments_before(time),
            None => Ok(()),
        }
    }

    fn cut(&self, start: i64, end: i64) -> Result<(), Error> {
        // From here on the head refuses samples before `end`, so none can slip in between
        // reading the range and dropping it.
        self.head.write().min_valid_time = end;
        let series: Vec<(Labels, Vec<Sample>)> = {
            let head = self.head.read();
            head.select(&[], start, end - 1).into_iter().map(|s| (s.labels, s.samples)).collect()
        };
        let block = Block::write(&self.blocks_dir, series, start, end, 1)?;
        tracing::info!(
            min_time = start,
            max_time = end,
            series = block.meta.series,
            samples = block.meta.samples,
            "block cut from the head"
        );
        self.blocks.write().push(Arc::new(block));
        self.head.write().truncate_before(end);
        self.rotate_wal(Some(end))
    }

    /// Merges complete windows of adjacent blocks into larger ones (3, 9, 27 block spans, up
    /// to a tenth of the retention, as Prometheus does), so old data costs less index and
    /// fewer files.
    fn compact(&self) -> Result<(), Error> {
        let span = ms(self.config.block_span).max(1);
        let max_range = (ms(self.config.retention) / 10).max(span * 3);
        let mut range = span * 3;
        while range <= max_range {
            loop {
                let blocks = self.blocks.read().clone();
                let newest = blocks.iter().map(|b| b.meta.max_time).max().unwrap_or(i64::MIN);
                let mut windows: BTreeMap<i64, Vec<Arc<Block>>> = BTreeMap::new();
                for block in &blocks {
                    let window = block.meta.min_time.div_euclid(range) * range;
                    if block.meta.max_time <= window + range {
                        windows.entry(window).or_default().push(block.clone());
                    }
                }
                // Only windows that are complete (newer data exists past them) and hold more
                // than one block.
                let candidate = windows.into_iter().find(|(start, group)| *start + range <= newest && group.len() > 1);
                let Some((_, group)) = candidate else { break };
                let level = group.iter().map(|b| b.meta.level).max().unwrap_or(1) + 1;
                let sources: Vec<&Block> = group.iter().map(Arc::as_ref).collect();
                let merged = Arc::new(block::compact(&self.blocks_dir, &sources, level)?);
                tracing::info!(
                    blocks = group.len(),
                    min_time = merged.meta.min_time,
                    max_time = merged.meta.max_time,
                    level,
                    "blocks compacted"
                );
                {
                    let mut current = self.blocks.write();
                    current.retain(|b| !group.iter().any(|g| Arc::ptr_eq(b, g)));
                    current.push(merged);
                    current.sort_by_key(|b| b.meta.min_time);
                }
                for old in &group {
                    std::fs::remove_dir_all(&old.dir).map_err(|e| Error::io(&old.dir, e))?;
                }
            }
            range *= 3;
        }
        Ok(())
    }

    fn apply_retention(&self, now: i64) -> Result<(), Error> {
        let cutoff = now.saturating_sub(ms(self.config.retention));
        let mut blocks = self.blocks.write();
        let mut doomed: Vec<Arc<Block>> = Vec::new();
        blocks.retain(|b| {
            let keep = b.meta.max_time > cutoff;
            if !keep {
                doomed.push(b.clone());
            }
            keep
        });
        if self.config.retention_size_bytes > 0 {
            let mut total: u64 = blocks.iter().map(|b| b.size).sum();
            while total > self.config.retention_size_bytes && !blocks.is_empty() {
                let oldest = blocks.remove(0);
                total -= oldest.size;
                doomed.push(oldest);
            }
        }
        drop(blocks);
        for block in doomed {
            tracing::info!(block = %block.dir.display(), "deleting block past retention");
            std::fs::remove_dir_all(&block.dir).map_err(|e| Error::io(&block.dir, e))?;
        }
        Ok(())
    }
}

impl Appender for Tsdb {
    fn append(&self, batch: Vec<SeriesSamples>) -> Result<AppendReport, StoreError> {
        let now = now_ms();
        let max_time = now.saturating_add(ms(self.config.max_future));
        let min_time = now.saturating_sub(ms(self.config.retention));
        let window = ms(self.config.out_of_order_window);
        let mut report = AppendReport::default();
        let reject = |report: &mut AppendReport, labels: &Labels, count: usize, reason: String| {
            report.rejected += count;
            if report.rejections.len() < 10 {
                report.rejections.push(Rejection { series: labels.to_string(), reason });
            }
        };
        let mut head = self.head.write();
        let mut created: Vec<(u64, Labels)> = Vec::new();
        let mut accepted: Vec<(u64, Sample)> = Vec::new();
        for SeriesSamples { labels, mut samples } in batch {
            if let Err(reason) = self.check_limits(&labels) {
                reject(&mut report, &labels, samples.len(), reason);
                continue;
            }
            samples.sort_by_key(|s| s.timestamp);
            // Bounds that do not depend on the series' own samples.
            let mut in_bounds = Vec::with_capacity(samples.len());
            for sample in samples {
                if sample.timestamp > max_time {
                    reject(&mut report, &labels, 1, "sample timestamp is too far in the future (max_future)".into());
                } else if sample.timestamp < min_time {
                    reject(&mut report, &labels, 1, "sample timestamp is older than the retention period".into());
                } else {
                    in_bounds.push(sample);
                }
            }
            if in_bounds.is_empty() {
                continue;
            }
            // A series is created by its first acceptable sample, never by refused ones.
            let id = match head.id(&labels) {
                Some(id) => id,
                None if in_bounds.iter().all(|s| s.timestamp < head.min_valid_time) => {
                    let reason = head::SampleRejection::TooOld.reason().to_string();
                    reject(&mut report, &labels, in_bounds.len(), reason);
                    continue;
                }
                None if head.series_count() as u64 >= self.config.max_series => {
                    let reason = format!("the store holds max_series ({}) series already", self.config.max_series);
                    reject(&mut report, &labels, in_bounds.len(), reason);
                    continue;
                }
                None => {
                    let (id, _) = head.get_or_create(&labels);
                    created.push((id, labels.clone()));
                    id
                }
            };
            head.append_checked(id, &in_bounds, window, |sample, verdict| match verdict {
                Ok(()) => accepted.push((id, sample)),
                Err(rejection) => reject(&mut report, &labels, 1, rejection.reason().to_string()),
            });
        }
        report.accepted = accepted.len();
        // The log is locked before the head is released, so the log's order is the head's
        // order; the write itself then no longer holds up other appends.
        let mut wal = self.wal.lock();
        drop(head);
        wal.log(&created, &accepted).map_err(|e| StoreError::Write(e.to_string()))?;
        Ok(report)
    }
}

impl Tsdb {
    fn blocks_overlapping(&self, start: i64, end: i64) -> Vec<Arc<Block>> {
        self.blocks.read().iter().filter(|b| b.overlaps(start, end)).cloned().collect()
    }

    fn label_sets(&self, matchers: &[Matcher], start: i64, end: i64) -> Vec<Labels> {
        let mut sets: BTreeSet<Labels> = BTreeSet::new();
        {
            let head = self.head.read();
            for id in head.select_ids(matchers) {
                if let Some(labels) = head.labels_of(id) {
                    sets.insert(labels.clone());
                }
            }
        }
        for block in self.blocks_overlapping(start, end) {
            sets.extend(block.label_sets(matchers));
        }
        sets.into_iter().collect()
    }
}

impl Querier for Tsdb {
    fn select(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<Series>, StoreError> {
        let mut merged: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
        for block in self.blocks_overlapping(start, end) {
            for series in block.select(matchers, start, end).map_err(|e| StoreError::Read(e.to_string()))? {
                let entry = merged.entry(series.labels).or_default();
                let previous = std::mem::take(entry);
                *entry = head::merge(previous, series.samples);
            }
        }
        for series in self.head.read().select(matchers, start, end) {
            let entry = merged.entry(series.labels).or_default();
            let previous = std::mem::take(entry);
            *entry = head::merge(previous, series.samples);
        }
        Ok(merged.into_iter().map(|(labels, samples)| Series { labels, samples }).collect())
    }

    fn label_names(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<String>, StoreError> {
        if matchers.is_empty() {
            let mut names = self.head.read().label_names();
            for block in self.blocks_overlapping(start, end) {
                names.extend(block.label_sets(&[]).iter().flat_map(|l| l.iter().map(|(n, _)| n.to_string())));
            }
            return Ok(names.into_iter().collect());
        }
        let names: BTreeSet<String> = self
            .label_sets(matchers, start, end)
            .iter()
            .flat_map(|labels| labels.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>())
            .collect();
        Ok(names.into_iter().collect())
    }

    fn label_values(&self, name: &str, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<String>, StoreError> {
        let values: BTreeSet<String> =
            self.label_sets(matchers, start, end).iter().filter_map(|l| l.get(name).map(str::to_string)).collect();
        Ok(values.into_iter().collect())
    }
}

/// How long to wait between maintenance runs.
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests;
