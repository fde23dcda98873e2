//! Blocks: immutable, compressed files holding every series of one time range, cut from the
//! head once that range is complete. See docs/format.md for the layout.
//!
//! A block is written to a temporary directory and renamed into place, so a crash leaves
//! either the whole block or none. Only its index (labels and chunk positions) is kept in
//! memory; chunk bytes are read from disk when a query needs them.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use hubmon_model::{Labels, Matcher, Sample, Series};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::chunk;
use crate::head::select_ids;
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
    postings: HashMap<String, HashMap<String, Vec<u64>>>,
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
        let name = format!("{min_time:016x}-{max_time:016x}-{level}");
        let final_dir = root.join(&name);
        let temp_dir = root.join(format!(".tmp-{name}"));
        let _ = std::fs::remove_dir_all(&temp_dir);
        std::fs::create_dir_all(&temp_dir).map_err(|e| Error::io(&temp_dir, e))?;

        let mut series = series;
        series.sort_by(|a, b| a.0.cmp(&b.0));
        let mut data = Vec::new();
        data.extend_from_slice(MAGIC);
        let mut index = Vec::new();
        let mut samples_total = 0u64;
        index.extend_from_slice(&(series.len() as u64).to_le_bytes());
        for (labels, samples) in &series {
            samples_total += samples.len() as u64;
            put_labels(&mut index, labels);
            let chunks: Vec<&[Sample]> = samples.chunks(SAMPLES_PER_BLOCK_CHUNK).collect();
            index.extend_from_slice(&(chunks.len() as u32).to_le_bytes());
            for chunk in chunks {
                let bytes = chunk::encode_best(chunk);
                let (first, last) = (chunk[0].timestamp, chunk[chunk.len() - 1].timestamp);
                index.extend_from_slice(&first.to_le_bytes());
                index.extend_from_slice(&last.to_le_bytes());
                index.extend_from_slice(&(data.len() as u64).to_le_bytes());
                index.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                data.extend_from_slice(&bytes);
            }
        }
        let index_offset = data.len() as u64;
        data.extend_from_slice(&index);
        data.extend_from_slice(&index_offset.to_le_bytes());
        data.extend_from_slice(MAGIC);

        let meta = BlockMeta {
            min_time,
            max_time,
            series: series.len() as u64,
            samples: samples_total,
            level,
            crc32: crc32fast::hash(&data),
        };
        write_synced(&temp_dir.join(DATA_FILE), &data)?;
        let meta_json = serde_json::to_vec_pretty(&meta).map_err(|e| Error::Corrupt(e.to_string()))?;
        write_synced(&temp_dir.join(META_FILE), &meta_json)?;
        let _ = std::fs::remove_dir_all(&final_dir);
        std::fs::rename(&temp_dir, &final_dir).map_err(|e| Error::io(&final_dir, e))?;
        File::open(root).and_then(|dir| dir.sync_all()).map_err(|e| Error::io(root, e))?;
        Block::open(&final_dir)
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
        let mut postings: HashMap<String, HashMap<String, Vec<u64>>> = HashMap::new();
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

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut file = File::create(path).map_err(|e| Error::io(path, e))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|e| Error::io(path, e))
}
