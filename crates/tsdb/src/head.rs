//! The head: recent samples in memory, compressed in chunks, with an inverted label index.
//!
//! Series get a numeric id when first seen; the postings map `(label name, value)` to the
//! sorted ids of series carrying it, so a selector only looks at the series it can match.
//! Samples must arrive in time order per series, except within the out-of-order window,
//! where they go to a small sorted side buffer merged on read and when cut into a block.

use std::collections::BTreeSet;

/// Label sets and ids are hashed on every append; SipHash's DoS resistance is not needed for
/// keys that only authenticated writers choose, and a fast hash is a measurable share of ingest.
pub type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Postings: label name → label value → sorted series ids.
pub type Postings = HashMap<String, HashMap<String, Vec<u64>>>;

use hubmon_model::{Labels, Matcher, Sample, Series};

use crate::chunk::{self, ChunkEncoder};

/// A closed chunk of one series.
pub struct ClosedChunk {
    pub min_time: i64,
    pub max_time: i64,
    pub bytes: Vec<u8>,
}

struct MemSeries {
    labels: Labels,
    closed: Vec<ClosedChunk>,
    open: ChunkEncoder,
    /// Samples that arrived late, within the window, sorted by time.
    out_of_order: Vec<Sample>,
    last: Option<Sample>,
}

/// Why one sample was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SampleRejection {
    OutOfOrder,
    TooOld,
    Duplicate,
}

impl SampleRejection {
    pub fn reason(&self) -> &'static str {
        match self {
            SampleRejection::OutOfOrder => {
                "sample older than the newest of its series by more than the out-of-order window"
            }
            SampleRejection::TooOld => "sample older than the data already persisted (or retention)",
            SampleRejection::Duplicate => "a different value for a timestamp already stored",
        }
    }
}

#[derive(Default)]
pub struct Head {
    ids: HashMap<Labels, u64>,
    series: HashMap<u64, MemSeries>,
    postings: Postings,
    next_id: u64,
    /// Samples before this are persisted in blocks; the head refuses them.
    pub min_valid_time: i64,
    pub min_time: i64,
    pub max_time: i64,
    samples: u64,
}

impl Head {
    pub fn new() -> Self {
        Self { next_id: 1, min_valid_time: i64::MIN, min_time: i64::MAX, max_time: i64::MIN, ..Default::default() }
    }

    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    pub fn sample_count(&self) -> u64 {
        self.samples
    }

    pub fn id(&self, labels: &Labels) -> Option<u64> {
        self.ids.get(labels).copied()
    }

    /// Creates the series, or returns the id it already has; `true` when it was created.
    pub fn get_or_create(&mut self, labels: &Labels) -> (u64, bool) {
        if let Some(id) = self.ids.get(labels) {
            return (*id, false);
        }
        let id = self.next_id;
        self.insert_with_id(id, labels.clone());
        (id, true)
    }

    /// Recreates a series under the id the write-ahead log gave it.
    pub fn insert_with_id(&mut self, id: u64, labels: Labels) {
        if self.series.contains_key(&id) {
            return;
        }
        self.next_id = self.next_id.max(id + 1);
        for (name, value) in labels.iter() {
            let list = self.postings.entry(name.to_string()).or_default().entry(value.to_string()).or_default();
            // Ids only grow, except when a replay revisits one; keep the list sorted either way.
            match list.last() {
                Some(last) if *last > id => {
                    if let Err(at) = list.binary_search(&id) {
                        list.insert(at, id);
                    }
                }
                _ => list.push(id),
            }
        }
        self.ids.insert(labels.clone(), id);
        self.series.insert(
            id,
            MemSeries { labels, closed: Vec::new(), open: ChunkEncoder::new(), out_of_order: Vec::new(), last: None },
        );
    }

    /// Checks and stores the time-sorted `samples` of series `id`, calling `on_result` with
    /// each sample's verdict. One lookup per series, not per sample: this is the ingest path.
    pub fn append_checked(
        &mut self,
        id: u64,
        samples: &[Sample],
        out_of_order_window: i64,
        mut on_result: impl FnMut(Sample, Result<(), SampleRejection>),
    ) {
        let min_valid_time = self.min_valid_time;
        let Some(series) = self.series.get_mut(&id) else { return };
        let (mut stored, mut min_time, mut max_time) = (0u64, self.min_time, self.max_time);
        for &sample in samples {
            let verdict = verdict(series, sample, out_of_order_window, min_valid_time);
            if verdict.is_ok() && store(series, sample) {
                stored += 1;
                min_time = min_time.min(sample.timestamp);
                max_time = max_time.max(sample.timestamp);
            }
            on_result(sample, verdict);
        }
        self.samples += stored;
        self.min_time = min_time;
        self.max_time = max_time;
    }

    /// Stores a sample without checks (replaying the write-ahead log).
    pub fn append(&mut self, id: u64, sample: Sample) {
        let Some(series) = self.series.get_mut(&id) else { return };
        if store(series, sample) {
            self.samples += 1;
            self.min_time = self.min_time.min(sample.timestamp);
            self.max_time = self.max_time.max(sample.timestamp);
        }
    }

    /// Ids of series matching every matcher, using the postings where a matcher allows.
    pub fn select_ids(&self, matchers: &[Matcher]) -> Vec<u64> {
        select_ids(&self.postings, self.series.keys().copied(), matchers, |id| self.series.get(&id).map(|s| &s.labels))
    }

    /// Samples of one series in `[start, end]`, merged with its out-of-order samples.
    pub fn samples(&self, id: u64, start: i64, end: i64) -> Vec<Sample> {
        let Some(series) = self.series.get(&id) else { return Vec::new() };
        let mut out = Vec::new();
        for closed in &series.closed {
            if closed.max_time >= start && closed.min_time <= end {
                let _ = chunk::decode_into(&closed.bytes, &mut out);
            }
        }
        if !series.open.is_empty() && series.open.max_time() >= start && series.open.min_time() <= end {
            let _ = chunk::decode_into(&series.open.encode(), &mut out);
        }
        out.retain(|s| s.timestamp >= start && s.timestamp <= end);
        let late: Vec<Sample> =
            series.out_of_order.iter().filter(|s| s.timestamp >= start && s.timestamp <= end).copied().collect();
        if !late.is_empty() {
            out = merge(out, late);
        }
        out
    }

    pub fn select(&self, matchers: &[Matcher], start: i64, end: i64) -> Vec<Series> {
        self.select_ids(matchers)
            .into_iter()
            .filter_map(|id| {
                let samples = self.samples(id, start, end);
                let labels = self.series.get(&id)?.labels.clone();
                (!samples.is_empty()).then_some(Series { labels, samples })
            })
            .collect()
    }

    pub fn labels_of(&self, id: u64) -> Option<&Labels> {
        self.series.get(&id).map(|s| &s.labels)
    }

    /// Every live series with its id, for a write-ahead-log checkpoint.
    pub fn all_series(&self) -> Vec<(u64, Labels)> {
        let mut all: Vec<(u64, Labels)> = self.series.iter().map(|(id, s)| (*id, s.labels.clone())).collect();
        all.sort_unstable_by_key(|(id, _)| *id);
        all
    }

    /// Removes samples before `boundary` (now persisted), and series left with none.
    pub fn truncate_before(&mut self, boundary: i64) {
        self.min_valid_time = self.min_valid_time.max(boundary);
        let mut emptied = Vec::new();
        let mut remaining = 0u64;
        let mut min_time = i64::MAX;
        for (id, series) in self.series.iter_mut() {
            series.closed.retain(|c| c.max_time >= boundary);
            if let Some(first) = series.closed.first_mut()
                && first.min_time < boundary
            {
                let encoder = reencode_from(&first.bytes, boundary);
                *first =
                    ClosedChunk { min_time: encoder.min_time(), max_time: encoder.max_time(), bytes: encoder.encode() };
            }
            if !series.open.is_empty() && series.open.min_time() < boundary {
                series.open = reencode_from(&series.open.encode(), boundary);
            }
            series.out_of_order.retain(|s| s.timestamp >= boundary);
            let count: u64 = series.closed.iter().map(|c| chunk_len(&c.bytes)).sum::<u64>()
                + series.open.len() as u64
                + series.out_of_order.len() as u64;
            if count == 0 {
                emptied.push(*id);
            } else {
                remaining += count;
                let first = series.closed.first().map(|c| c.min_time).unwrap_or(series.open.min_time());
                let first = series.out_of_order.first().map_or(first, |s| s.timestamp.min(first));
                min_time = min_time.min(first);
            }
        }
        for id in emptied {
            self.remove_series(id);
        }
        self.samples = remaining;
        self.min_time = min_time;
        if self.series.is_empty() {
            self.max_time = i64::MIN;
        }
    }

    fn remove_series(&mut self, id: u64) {
        let Some(series) = self.series.remove(&id) else { return };
        self.ids.remove(&series.labels);
        for (name, value) in series.labels.iter() {
            if let Some(values) = self.postings.get_mut(name) {
                if let Some(list) = values.get_mut(value) {
                    list.retain(|x| *x != id);
                    if list.is_empty() {
                        values.remove(value);
                    }
                }
                if values.is_empty() {
                    self.postings.remove(name);
                }
            }
        }
    }

    /// Label names and values present in the head (for the labels API).
    pub fn label_names(&self) -> BTreeSet<String> {
        self.postings.keys().cloned().collect()
    }

    /// Approximate bytes of sample data held (chunks and side buffers).
    pub fn chunk_bytes(&self) -> usize {
        self.series
            .values()
            .map(|s| s.closed.iter().map(|c| c.bytes.len()).sum::<usize>() + s.open.size() + s.out_of_order.len() * 16)
            .sum()
    }
}

/// Whether `sample` may be stored in `series`.
fn verdict(series: &MemSeries, sample: Sample, window: i64, min_valid_time: i64) -> Result<(), SampleRejection> {
    if sample.timestamp < min_valid_time {
        return Err(SampleRejection::TooOld);
    }
    match series.last {
        None => Ok(()),
        Some(last) if sample.timestamp > last.timestamp => Ok(()),
        Some(last) if sample.timestamp == last.timestamp => {
            if last.value.to_bits() == sample.value.to_bits() {
                Ok(())
            } else {
                Err(SampleRejection::Duplicate)
            }
        }
        Some(last) if last.timestamp - sample.timestamp <= window => Ok(()),
        Some(_) => Err(SampleRejection::OutOfOrder),
    }
}

/// Stores an accepted sample; false when it repeats the newest one (nothing to store).
fn store(series: &mut MemSeries, sample: Sample) -> bool {
    match series.last {
        Some(last) if sample.timestamp == last.timestamp => false,
        Some(last) if sample.timestamp < last.timestamp => {
            match series.out_of_order.binary_search_by_key(&sample.timestamp, |s| s.timestamp) {
                Ok(at) => series.out_of_order[at] = sample,
                Err(at) => series.out_of_order.insert(at, sample),
            }
            true
        }
        _ => {
            if series.open.is_full() {
                let full = std::mem::replace(&mut series.open, ChunkEncoder::new());
                series.closed.push(ClosedChunk {
                    min_time: full.min_time(),
                    max_time: full.max_time(),
                    bytes: full.encode(),
                });
            }
            series.open.push(sample);
            series.last = Some(sample);
            true
        }
    }
}

/// A chunk holding only the samples of `bytes` at or after `boundary`.
fn reencode_from(bytes: &[u8], boundary: i64) -> ChunkEncoder {
    let mut encoder = ChunkEncoder::new();
    for sample in chunk::decode(bytes).unwrap_or_default().into_iter().filter(|s| s.timestamp >= boundary) {
        encoder.push(sample);
    }
    encoder
}

fn chunk_len(bytes: &[u8]) -> u64 {
    match bytes {
        [a, b, ..] => u64::from(u16::from_be_bytes([*a, *b])),
        _ => 0,
    }
}

/// Merges two time-sorted sample lists; on equal timestamps the second wins.
pub fn merge(a: Vec<Sample>, b: Vec<Sample>) -> Vec<Sample> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].timestamp.cmp(&b[j].timestamp) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(b[j]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Candidate ids from postings of matchers that cannot match an absent label, intersected;
/// then every matcher checked against each candidate's labels.
pub fn select_ids<'a>(
    postings: &Postings,
    all: impl Iterator<Item = u64>,
    matchers: &[Matcher],
    labels_of: impl Fn(u64) -> Option<&'a Labels>,
) -> Vec<u64> {
    let mut candidates: Option<Vec<u64>> = None;
    for matcher in matchers.iter().filter(|m| !m.matches_empty()) {
        let mut ids: Vec<u64> = match postings.get(&matcher.name) {
            Some(values) => values
                .iter()
                .filter(|(value, _)| matcher.matches(value))
                .flat_map(|(_, ids)| ids.iter().copied())
                .collect(),
            None => Vec::new(),
        };
        ids.sort_unstable();
        ids.dedup();
        candidates = Some(match candidates {
            None => ids,
            Some(previous) => intersect(&previous, &ids),
        });
        if candidates.as_ref().is_some_and(Vec::is_empty) {
            return Vec::new();
        }
    }
    let mut ids = candidates.unwrap_or_else(|| {
        let mut all: Vec<u64> = all.collect();
        all.sort_unstable();
        all
    });
    ids.retain(|id| labels_of(*id).is_some_and(|labels| matchers.iter().all(|m| m.matches_labels(labels))));
    ids
}

fn intersect(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    let (mut i, mut j) = (0, 0);
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
