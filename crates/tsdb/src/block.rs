//! Blocks: immutable, compressed files holding every series of one time range, cut from the
//! head once that range is complete. See docs/format.md for the layout.
//!
//! A block is written to a temporary directory and renamed into place, so a crash leaves
//! either the whole block or none. Only its index (labels and chunk positions) is kept in
//! memory; chunk bytes are read from disk when a query needs them.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use hubmon_model::{Labels, Matcher, Sample, Series};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::chunk;
use crate::head::{Postings, select_ids};
use crate::wal::{Cursor, put_labels};

const MAGIC: &[u8; 4] = b"HMB1";
/// Block chunks are longer than head chunks: a block is read whole-range far more often than
/// by the sample, and each chunk costs 28 bytes of index.
const SAMPLES_PER_BLOCK_CHUNK: usize = 960;
const DATA_FILE: &str = "data";
const META_FILE: &str = "meta.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BlockMeta {
    /// First millisecond covered (inclusive).
    pub min_time: i64,
    /// Last millisecond covered (exclusive).
    pub max_time: i64,
    pub series: u64,
    pub samples: u64,
    /// 1 for a block cut from the head; higher for compacted ones.
    pub level: u32,
    /// CRC-32 of the data file, checked when the block is opened.
    pub crc32: u32,
}

struct ChunkRef {
    min_time: i64,
    max_time: i64,
    offset: u64,
    len: u32,
}

struct BlockSeries {
    labels: Labels,
    chunks: Vec<ChunkRef>,
}

pub struct Block {
    pub dir: PathBuf,
    pub meta: BlockMeta,
    file: File,
    series: Vec<BlockSeries>,
    postings: Postings,
    pub size: u64,
}

impl Block {
    /// Writes a block of `series` (samples sorted, all within `[min_time, max_time)`).
    pub fn write(
        root: &Path,
        series: Vec<(Labels, Vec<Sample>)>,
        min_time: i64,
        max_time: i64,
        level: u32,
    ) -> Result<Block, Error> {
        let mut series = series;
        series.sort_by(|a, b| a.0.cmp(&b.0));
        let mut writer = BlockWriter::new(root, min_time, max_time, level)?;
        for (labels, samples) in &series {
            writer.add(labels, samples)?;
        }
        writer.finish()
    }

    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    pub fn labels_at(&self, index: usize) -> Option<&Labels> {
        self.series.get(index).map(|s| &s.labels)
    }

    /// Every sample of the series at `index` (for compaction).
    pub fn samples_at(&self, index: usize) -> Result<Vec<Sample>, Error> {
        let mut samples = Vec::new();
        let mut buffer = Vec::new();
        if let Some(series) = self.series.get(index) {
            for chunk in &series.chunks {
                buffer.resize(chunk.len as usize, 0);
                self.file.read_exact_at(&mut buffer, chunk.offset).map_err(|e| Error::io(&self.dir, e))?;
                chunk::decode_into(&buffer, &mut samples)
                    .map_err(|e| Error::Corrupt(format!("{}: {e}", self.dir.display())))?;
            }
        }
        Ok(samples)
    }

    /// Opens a block directory, checking its checksum and reading its index.
    pub fn open(dir: &Path) -> Result<Block, Error> {
        let meta_path = dir.join(META_FILE);
        let meta_bytes = std::fs::read(&meta_path).map_err(|e| Error::io(&meta_path, e))?;
        let meta: BlockMeta =
            serde_json::from_slice(&meta_bytes).map_err(|e| Error::Corrupt(format!("{}: {e}", meta_path.display())))?;
        let data_path = dir.join(DATA_FILE);
        let data = std::fs::read(&data_path).map_err(|e| Error::io(&data_path, e))?;
        let corrupt = |what: &str| Error::Corrupt(format!("{}: {what}", data_path.display()));
        if crc32fast::hash(&data) != meta.crc32 {
            return Err(corrupt("checksum mismatch"));
        }
        if data.len() < 16 || &data[..4] != MAGIC || &data[data.len() - 4..] != MAGIC {
            return Err(corrupt("bad magic"));
        }
        let footer = data.len() - 12;
        let index_offset =
            u64::from_le_bytes(data[footer..footer + 8].try_into().map_err(|_| corrupt("footer"))?) as usize;
        let mut cursor =
            Cursor { bytes: data.get(index_offset..footer).ok_or_else(|| corrupt("index offset"))?, position: 0 };
        let count = cursor.u64().ok_or_else(|| corrupt("index"))?;
        let mut series = Vec::with_capacity(count as usize);
        let mut postings = Postings::default();
        for id in 0..count {
            let labels = cursor.labels().ok_or_else(|| corrupt("series labels"))?;
            let chunk_count = cursor.u32().ok_or_else(|| corrupt("chunk count"))?;
            let mut chunks = Vec::with_capacity(chunk_count as usize);
            for _ in 0..chunk_count {
                let min_time = cursor.u64().ok_or_else(|| corrupt("chunk"))? as i64;
                let max_time = cursor.u64().ok_or_else(|| corrupt("chunk"))? as i64;
                let offset = cursor.u64().ok_or_else(|| corrupt("chunk"))?;
                let len = cursor.u32().ok_or_else(|| corrupt("chunk"))?;
                chunks.push(ChunkRef { min_time, max_time, offset, len });
            }
            for (name, value) in labels.iter() {
                postings.entry(name.to_string()).or_default().entry(value.to_string()).or_default().push(id);
            }
            series.push(BlockSeries { labels, chunks });
        }
        let file = File::open(&data_path).map_err(|e| Error::io(&data_path, e))?;
        Ok(Block {
            dir: dir.to_path_buf(),
            meta,
            file,
            series,
            postings,
            size: data.len() as u64 + meta_bytes.len() as u64,
        })
    }

    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.meta.min_time <= end && self.meta.max_time > start
    }

    fn matching(&self, matchers: &[Matcher]) -> Vec<u64> {
        select_ids(&self.postings, 0..self.series.len() as u64, matchers, |id| {
            self.series.get(id as usize).map(|s| &s.labels)
        })
    }

    pub fn select(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<Series>, Error> {
        let mut out = Vec::new();
        let mut buffer = Vec::new();
        for id in self.matching(matchers) {
            let Some(series) = self.series.get(id as usize) else { continue };
            let mut samples = Vec::new();
            for chunk in series.chunks.iter().filter(|c| c.max_time >= start && c.min_time <= end) {
                buffer.resize(chunk.len as usize, 0);
                self.file.read_exact_at(&mut buffer, chunk.offset).map_err(|e| Error::io(&self.dir, e))?;
                chunk::decode_into(&buffer, &mut samples)
                    .map_err(|e| Error::Corrupt(format!("{}: {e}", self.dir.display())))?;
            }
            samples.retain(|s| s.timestamp >= start && s.timestamp <= end);
            if !samples.is_empty() {
                out.push(Series { labels: series.labels.clone(), samples });
            }
        }
        Ok(out)
    }

    pub fn label_sets(&self, matchers: &[Matcher]) -> Vec<Labels> {
        self.matching(matchers)
            .into_iter()
            .filter_map(|id| self.series.get(id as usize).map(|s| s.labels.clone()))
            .collect()
    }

    /// Every series with all its samples (for compaction into a larger block).
    pub fn read_all(&self) -> Result<Vec<(Labels, Vec<Sample>)>, Error> {
        Ok(self.select(&[], i64::MIN, i64::MAX)?.into_iter().map(|s| (s.labels, s.samples)).collect())
    }
}

/// Writes a block series by series, in label order, without holding its samples in memory.
pub struct BlockWriter {
    root: PathBuf,
    name: String,
    temp_dir: PathBuf,
    data: std::io::BufWriter<File>,
    data_path: PathBuf,
    written: u64,
    crc: crc32fast::Hasher,
    index: Vec<u8>,
    series: u64,
    samples: u64,
    min_time: i64,
    max_time: i64,
    level: u32,
    last: Option<Labels>,
}

impl BlockWriter {
    pub fn new(root: &Path, min_time: i64, max_time: i64, level: u32) -> Result<Self, Error> {
        let name = format!("{min_time:016x}-{max_time:016x}-{level}");
        let temp_dir = root.join(format!(".tmp-{name}"));
        let _ = std::fs::remove_dir_all(&temp_dir);
        std::fs::create_dir_all(&temp_dir).map_err(|e| Error::io(&temp_dir, e))?;
        let data_path = temp_dir.join(DATA_FILE);
        let file = File::create(&data_path).map_err(|e| Error::io(&data_path, e))?;
        let mut writer = Self {
            root: root.to_path_buf(),
            name,
            temp_dir,
            data: std::io::BufWriter::with_capacity(1 << 20, file),
            data_path,
            written: 0,
            crc: crc32fast::Hasher::new(),
            index: Vec::new(),
            series: 0,
            samples: 0,
            min_time,
            max_time,
            level,
            last: None,
        };
        writer.put(MAGIC)?;
        Ok(writer)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.crc.update(bytes);
        self.written += bytes.len() as u64;
        self.data.write_all(bytes).map_err(|e| Error::io(&self.data_path, e))
    }

    /// Adds one series; series must come in label order, samples in time order.
    pub fn add(&mut self, labels: &Labels, samples: &[Sample]) -> Result<(), Error> {
        if samples.is_empty() {
            return Ok(());
        }
        if self.last.as_ref().is_some_and(|last| last >= labels) {
            return Err(Error::Corrupt(format!("block series out of order at {labels}")));
        }
        self.last = Some(labels.clone());
        self.series += 1;
        self.samples += samples.len() as u64;
        put_labels(&mut self.index, labels);
        let chunks: Vec<&[Sample]> = samples.chunks(SAMPLES_PER_BLOCK_CHUNK).collect();
        self.index.extend_from_slice(&(chunks.len() as u32).to_le_bytes());
        for chunk in chunks {
            let bytes = chunk::encode_best(chunk);
            let (first, last) = (chunk[0].timestamp, chunk[chunk.len() - 1].timestamp);
            self.index.extend_from_slice(&first.to_le_bytes());
            self.index.extend_from_slice(&last.to_le_bytes());
            self.index.extend_from_slice(&self.written.to_le_bytes());
            self.index.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            self.put(&bytes)?;
        }
        Ok(())
    }

    /// Writes the index, syncs, and moves the block into place.
    pub fn finish(mut self) -> Result<Block, Error> {
        let index_offset = self.written;
        let index = std::mem::take(&mut self.index);
        self.put(&self.series.to_le_bytes())?;
        self.put(&index)?;
        self.put(&index_offset.to_le_bytes())?;
        self.put(MAGIC)?;
        let file = self.data.into_inner().map_err(|e| Error::io(&self.data_path, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&self.data_path, e))?;
        let meta = BlockMeta {
            min_time: self.min_time,
            max_time: self.max_time,
            series: self.series,
            samples: self.samples,
            level: self.level,
            crc32: self.crc.finalize(),
        };
        let meta_json = serde_json::to_vec_pretty(&meta).map_err(|e| Error::Corrupt(e.to_string()))?;
        write_synced(&self.temp_dir.join(META_FILE), &meta_json)?;
        let final_dir = self.root.join(&self.name);
        let _ = std::fs::remove_dir_all(&final_dir);
        std::fs::rename(&self.temp_dir, &final_dir).map_err(|e| Error::io(&final_dir, e))?;
        File::open(&self.root).and_then(|dir| dir.sync_all()).map_err(|e| Error::io(&self.root, e))?;
        Block::open(&final_dir)
    }
}

/// Merges blocks into one at `level`, series by series in label order; samples of a series
/// that appear in more than one block are merged by timestamp.
pub fn compact(root: &Path, blocks: &[&Block], level: u32) -> Result<Block, Error> {
    let min_time = blocks.iter().map(|b| b.meta.min_time).min().unwrap_or(0);
    let max_time = blocks.iter().map(|b| b.meta.max_time).max().unwrap_or(0);
    let mut writer = BlockWriter::new(root, min_time, max_time, level)?;
    let mut cursors = vec![0usize; blocks.len()];
    loop {
        let smallest =
            blocks.iter().zip(&cursors).filter_map(|(block, cursor)| block.labels_at(*cursor)).min().cloned();
        let Some(labels) = smallest else { break };
        let mut samples = Vec::new();
        for (block, cursor) in blocks.iter().zip(cursors.iter_mut()) {
            if block.labels_at(*cursor) == Some(&labels) {
                samples = crate::head::merge(samples, block.samples_at(*cursor)?);
                *cursor += 1;
            }
        }
        writer.add(&labels, &samples)?;
    }
    writer.finish()
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut file = File::create(path).map_err(|e| Error::io(path, e))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|e| Error::io(path, e))
}
