//! Format 1 segments (`HMLOGSG1`: JSON rows, string term dictionary), written by hubmon
//! before format 2 and still read so that an upgrade keeps the logs it had. Nothing writes
//! this format any more except the tests that prove it is still read.
//!
//! Opening a segment reads only its footer (block table, term directory, columns); row
//! blocks and term blocks are read with positional reads when a search needs them, and a
//! few decompressed row blocks are cached.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::Origin;
use crate::codec::get_varint;
use crate::partition::{Columns, Partition};
use crate::{Error, StoredEntry};

pub(super) const MAGIC: &[u8; 8] = b"HMLOGSG1";
/// Rows per compressed block: small enough that fetching one line decodes little, large
/// enough for zstd to find the repetition between lines.
const ROWS_PER_BLOCK: usize = 128;
/// Index keys per term block.
#[cfg(test)]
const KEYS_PER_BLOCK: usize = 128;
#[cfg(test)]
const ZSTD_LEVEL: i32 = 3;
const CACHED_BLOCKS: usize = 32;

#[derive(Debug, Serialize, Deserialize)]
struct Footer {
    origin: Origin,
    partition: i64,
    rows: u32,
    min_ts: i64,
    max_ts: i64,
    min_id: u64,
    max_id: u64,
    /// (offset, length) of each row block.
    blocks: Vec<(u64, u32)>,
    /// (first key, offset, length) of each term block.
    terms: Vec<(String, u64, u32)>,
    /// Columns with ids and timestamps stored as deltas (they compress to almost nothing).
    columns: Columns,
}

pub(crate) struct Segment {
    path: PathBuf,
    file: File,
    footer: Footer,
    size: u64,
    cache: Mutex<Vec<(usize, Arc<Block>)>>,
}

/// One decompressed row block: JSON lines and where each starts.
struct Block {
    data: Vec<u8>,
    starts: Vec<usize>,
}

impl Segment {
    /// Writes `entries` (sorted by timestamp, id) as a format 1 segment, the way hubmon did
    /// before format 2, so the tests can prove old files are still read.
    #[cfg(test)]
    pub fn write(dir: &Path, partition: i64, origin: Origin, entries: &[Arc<StoredEntry>]) -> Result<PathBuf, Error> {
        use crate::codec::put_varint;
        use std::io::Write;
        let name = format!("{partition:015}-{:010}-{:03}.seg", origin.wal_to, origin.part);
        let path = dir.join(&name);
        let temporary = dir.join(format!("{name}.tmp"));
        let mut out = Vec::with_capacity(entries.len() * 64);
        out.extend_from_slice(MAGIC);

        let mut blocks = Vec::new();
        for chunk in entries.chunks(ROWS_PER_BLOCK) {
            let mut raw = Vec::with_capacity(chunk.len() * 300);
            for stored in chunk {
                serde_json::to_writer(&mut raw, stored.as_ref()).map_err(|e| Error::Encode(e.to_string()))?;
                raw.push(b'\n');
            }
            let compressed = zstd::bulk::compress(&raw, ZSTD_LEVEL).map_err(|e| Error::Encode(e.to_string()))?;
            blocks.push((out.len() as u64, u32::try_from(compressed.len()).unwrap_or(u32::MAX)));
            out.extend_from_slice(&compressed);
        }

        let mut keys: std::collections::BTreeMap<String, Vec<u32>> = Default::default();
        let mut columns = crate::partition::ColumnsBuilder::default();
        for (row, stored) in entries.iter().enumerate() {
            for key in crate::partition::index_keys(&stored.entry) {
                keys.entry(key).or_default().push(row as u32);
            }
            columns.push(stored);
        }
        let keys: Vec<(String, Vec<u32>)> = keys.into_iter().collect();
        let columns = columns.columns;
        let mut terms = Vec::new();
        for chunk in keys.chunks(KEYS_PER_BLOCK) {
            let mut raw = Vec::new();
            for (key, rows) in chunk {
                put_varint(&mut raw, key.len() as u64);
                raw.extend_from_slice(key.as_bytes());
                put_varint(&mut raw, rows.len() as u64);
                let mut previous = 0u32;
                for &row in rows {
                    put_varint(&mut raw, u64::from(row - previous));
                    previous = row;
                }
            }
            let compressed = zstd::bulk::compress(&raw, ZSTD_LEVEL).map_err(|e| Error::Encode(e.to_string()))?;
            let first = chunk.first().map(|(k, _)| k.clone()).unwrap_or_default();
            terms.push((first, out.len() as u64, u32::try_from(compressed.len()).unwrap_or(u32::MAX)));
            out.extend_from_slice(&compressed);
        }

        let mut columns = columns;
        let min_ts = columns.timestamps.iter().copied().min().unwrap_or(0);
        let max_ts = columns.timestamps.iter().copied().max().unwrap_or(0);
        let min_id = columns.ids.iter().copied().min().unwrap_or(0);
        let max_id = columns.ids.iter().copied().max().unwrap_or(0);
        to_deltas(&mut columns);
        let footer = Footer {
            origin,
            partition,
            rows: u32::try_from(entries.len()).unwrap_or(u32::MAX),
            min_ts,
            max_ts,
            min_id,
            max_id,
            blocks,
            terms,
            columns,
        };
        let json = serde_json::to_vec(&footer).map_err(|e| Error::Encode(e.to_string()))?;
        let footer_bytes = zstd::bulk::compress(&json, ZSTD_LEVEL).map_err(|e| Error::Encode(e.to_string()))?;
        out.extend_from_slice(&footer_bytes);
        out.extend_from_slice(&(footer_bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&footer_bytes).to_le_bytes());
        out.extend_from_slice(MAGIC);

        let mut file = File::create(&temporary).map_err(|e| Error::io("create", &temporary, e))?;
        file.write_all(&out).map_err(|e| Error::io("write", &temporary, e))?;
        file.sync_all().map_err(|e| Error::io("sync", &temporary, e))?;
        std::fs::rename(&temporary, &path).map_err(|e| Error::io("rename", &temporary, e))?;
        Ok(path)
    }

    pub fn open(path: &Path) -> Result<Segment, Error> {
        let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
        let size = file.metadata().map_err(|e| Error::io("stat", path, e))?.len();
        let corrupt = |what: &str| Error::Corrupt(format!("{}: {what}", path.display()));
        if size < (MAGIC.len() * 2 + 12) as u64 {
            return Err(corrupt("too short"));
        }
        let mut tail = [0u8; 20];
        file.read_exact_at(&mut tail, size - 20).map_err(|e| Error::io("read", path, e))?;
        if &tail[12..] != MAGIC {
            return Err(corrupt("bad trailer"));
        }
        let footer_len = u64::from_le_bytes(tail[0..8].try_into().map_err(|_| corrupt("bad trailer"))?);
        let crc = u32::from_le_bytes(tail[8..12].try_into().map_err(|_| corrupt("bad trailer"))?);
        if footer_len > size - 20 - MAGIC.len() as u64 {
            return Err(corrupt("footer length out of range"));
        }
        let mut compressed = vec![0u8; footer_len as usize];
        file.read_exact_at(&mut compressed, size - 20 - footer_len).map_err(|e| Error::io("read", path, e))?;
        if crc32fast::hash(&compressed) != crc {
            return Err(corrupt("footer checksum mismatch"));
        }
        let json = zstd::stream::decode_all(compressed.as_slice()).map_err(|e| corrupt(&e.to_string()))?;
        let mut footer: Footer = serde_json::from_slice(&json).map_err(|e| corrupt(&e.to_string()))?;
        from_deltas(&mut footer.columns);
        if footer.columns.ids.len() != footer.rows as usize {
            return Err(corrupt("column length mismatch"));
        }
        Ok(Segment { path: path.to_path_buf(), file, footer, size, cache: Mutex::new(Vec::new()) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn origin(&self) -> &Origin {
        &self.footer.origin
    }

    pub fn max_id(&self) -> u64 {
        self.footer.max_id
    }

    fn block(&self, index: usize) -> Result<Arc<Block>, Error> {
        if let Some((_, block)) = self.cache.lock().iter().find(|(i, _)| *i == index) {
            return Ok(block.clone());
        }
        let &(offset, len) =
            self.footer.blocks.get(index).ok_or_else(|| Error::Corrupt(format!("no block {index}")))?;
        let mut compressed = vec![0u8; len as usize];
        self.file.read_exact_at(&mut compressed, offset).map_err(|e| Error::io("read", &self.path, e))?;
        let data = zstd::stream::decode_all(compressed.as_slice())
            .map_err(|e| Error::Corrupt(format!("{}: block {index}: {e}", self.path.display())))?;
        let mut starts = vec![0];
        for (i, byte) in data.iter().enumerate() {
            if *byte == b'\n' && i + 1 < data.len() {
                starts.push(i + 1);
            }
        }
        let block = Arc::new(Block { data, starts });
        let mut cache = self.cache.lock();
        if cache.len() >= CACHED_BLOCKS {
            cache.remove(0);
        }
        cache.push((index, block.clone()));
        Ok(block)
    }

    fn read_term_block(&self, index: usize) -> Result<Vec<u8>, Error> {
        let (_, offset, len) = &self.footer.terms[index];
        let mut compressed = vec![0u8; *len as usize];
        self.file.read_exact_at(&mut compressed, *offset).map_err(|e| Error::io("read", &self.path, e))?;
        zstd::stream::decode_all(compressed.as_slice())
            .map_err(|e| Error::Corrupt(format!("{}: term block {index}: {e}", self.path.display())))
    }
}

/// Iterates the (key, rows) of a decoded term block.
fn decode_terms(raw: &[u8], mut visit: impl FnMut(&str, &mut dyn FnMut() -> Vec<u32>) -> bool) -> Result<(), Error> {
    let corrupt = || Error::Corrupt("term block".into());
    let mut at = 0;
    while at < raw.len() {
        let key_len = get_varint(raw, &mut at).ok_or_else(corrupt)? as usize;
        let key = raw.get(at..at + key_len).ok_or_else(corrupt)?;
        let key = std::str::from_utf8(key).map_err(|_| corrupt())?;
        at += key_len;
        let count = get_varint(raw, &mut at).ok_or_else(corrupt)? as usize;
        let start = at;
        // Skip the postings unless the visitor asks for them.
        let mut rows_end = start;
        for _ in 0..count {
            get_varint(raw, &mut rows_end).ok_or_else(corrupt)?;
        }
        let mut read_rows = || {
            let mut rows = Vec::with_capacity(count);
            let mut cursor = start;
            let mut previous = 0u64;
            for _ in 0..count {
                previous += get_varint(raw, &mut cursor).unwrap_or(0);
                rows.push(previous as u32);
            }
            rows
        };
        at = rows_end;
        if !visit(key, &mut read_rows) {
            break;
        }
    }
    Ok(())
}

impl Partition for Segment {
    fn rows(&self) -> usize {
        self.footer.rows as usize
    }

    fn postings(&self, key: &str) -> Result<Vec<u32>, Error> {
        let terms = &self.footer.terms;
        let index = terms.partition_point(|(first, _, _)| first.as_str() <= key);
        if index == 0 {
            return Ok(Vec::new());
        }
        let raw = self.read_term_block(index - 1)?;
        let mut found = Vec::new();
        decode_terms(&raw, |candidate, rows| {
            if candidate == key {
                found = rows();
                return false;
            }
            candidate < key
        })?;
        // Term blocks carry no checksum of their own; a damaged one must not index past the rows.
        let rows = self.footer.rows;
        if found.iter().any(|r| *r >= rows) {
            return Err(Error::Corrupt(format!(
                "{}: postings of {key:?} point past the last row",
                self.path.display()
            )));
        }
        Ok(found)
    }

    fn columns(&self) -> &Columns {
        &self.footer.columns
    }

    fn entry(&self, row: u32) -> Result<Arc<StoredEntry>, Error> {
        let row = row as usize;
        let block = self.block(row / ROWS_PER_BLOCK)?;
        let within = row % ROWS_PER_BLOCK;
        let start = *block.starts.get(within).ok_or_else(|| Error::Corrupt(format!("no row {row}")))?;
        let end = block.data[start..].iter().position(|b| *b == b'\n').map_or(block.data.len(), |p| start + p);
        let stored: StoredEntry = serde_json::from_slice(&block.data[start..end])
            .map_err(|e| Error::Corrupt(format!("{}: row {row}: {e}", self.path.display())))?;
        Ok(Arc::new(stored))
    }

    fn min_ts(&self) -> i64 {
        self.footer.min_ts
    }

    fn max_ts(&self) -> i64 {
        self.footer.max_ts
    }

    fn time_ordered(&self) -> bool {
        true
    }

    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let terms = &self.footer.terms;
        let mut index = terms.partition_point(|(first, _, _)| first.as_str() < prefix).saturating_sub(1);
        let mut out = crate::partition::model_keys_with_prefix(self.columns(), prefix);
        while index < terms.len() {
            if index > 0 && terms[index].0.as_str() > prefix && !terms[index].0.starts_with(prefix) {
                break;
            }
            let raw = self.read_term_block(index)?;
            let mut past = false;
            decode_terms(&raw, |key, _| {
                if key.starts_with(prefix) {
                    out.push(key.to_string());
                } else if key > prefix {
                    past = true;
                    return false;
                }
                true
            })?;
            if past {
                break;
            }
            index += 1;
        }
        Ok(out)
    }
}

#[cfg(test)]
fn to_deltas(columns: &mut Columns) {
    let mut previous = 0u64;
    for id in columns.ids.iter_mut() {
        let value = *id;
        *id = value.wrapping_sub(previous);
        previous = value;
    }
    let mut previous = 0i64;
    for ts in columns.timestamps.iter_mut() {
        let value = *ts;
        *ts = value.wrapping_sub(previous);
        previous = value;
    }
}

fn from_deltas(columns: &mut Columns) {
    let mut previous = 0u64;
    for id in columns.ids.iter_mut() {
        previous = previous.wrapping_add(*id);
        *id = previous;
    }
    let mut previous = 0i64;
    for ts in columns.timestamps.iter_mut() {
        previous = previous.wrapping_add(*ts);
        *ts = previous;
    }
}
