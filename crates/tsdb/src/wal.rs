//! The write-ahead log: every series and sample is written here before an append is
//! acknowledged, and replayed into the head at start.
//!
//! Files: `wal/NNNNNNNN`, numbered segments written in order. Each record is
//! `[u32 LE payload length][u32 LE CRC-32 of payload][payload]`, the payload starting with a
//! type byte: 1 = series definitions `(u64 id, labels)`, 2 = samples `(u64 id, i64 ms, f64)`.
//! A write() reaches the OS before the append returns, so a killed process loses nothing;
//! fsync (against power loss) runs at most every `sync_interval`.
//!
//! A new segment starts with the definitions of every live series, so an old segment can be
//! deleted once all its samples are persisted in blocks. A torn record at the end of the last
//! segment (a crash mid-write) is cut off at replay; nothing before it is lost.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hubmon_model::{Labels, Sample};

use crate::Error;

const SERIES: u8 = 1;
/// Samples as fixed 24-byte entries (the first format; still read).
const SAMPLES: u8 = 2;
/// Samples packed: ids and timestamps as zig-zag varint deltas from the previous entry,
/// values as the varint of (bits XOR previous value's bits) with its bytes reversed, so the
/// high bytes that differ become the low bytes a varint keeps short. About a third of the
/// fixed format on exporter data.
const PACKED_SAMPLES: u8 = 3;
const HEADER: usize = 8;
/// Start a new segment past this size, so old data can be dropped in pieces.
const SEGMENT_BYTES: u64 = 128 << 20;

/// One replayed record.
#[derive(Debug, PartialEq)]
pub enum Record {
    Series(Vec<(u64, Labels)>),
    Samples(Vec<(u64, Sample)>),
}

struct Segment {
    index: u64,
    /// Newest sample timestamp in the segment (i64::MIN when it has none).
    max_time: i64,
}

pub struct Wal {
    dir: PathBuf,
    file: File,
    current: Segment,
    size: u64,
    /// Closed segments, oldest first.
    closed: Vec<Segment>,
    sync_interval: Duration,
    last_sync: Instant,
    buffer: Vec<u8>,
}

impl Wal {
    /// Opens the log in `dir`, returning it and every record it holds, oldest first.
    /// Opens the log, collecting every record (for tests; the store streams them).
    #[cfg(test)]
    pub fn open(dir: &Path, sync_interval: Duration) -> Result<(Wal, Vec<Record>), Error> {
        let mut records = Vec::new();
        let wal = Wal::replay(dir, sync_interval, |record| records.push(record))?;
        Ok((wal, records))
    }

    /// Opens the log in `dir`, handing every record it holds to `on_record`, oldest first,
    /// one at a time: replay holds one segment's bytes, never the whole log's samples.
    pub fn replay(dir: &Path, sync_interval: Duration, mut on_record: impl FnMut(Record)) -> Result<Wal, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut indexes: Vec<u64> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        indexes.sort_unstable();
        let mut closed = Vec::new();
        let last = indexes.last().copied();
        for index in &indexes {
            let path = segment_path(dir, *index);
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            let (valid_len, max_time) = parse_segment(&bytes, &mut on_record);
            if valid_len < bytes.len() {
                tracing::warn!(
                    segment = %path.display(),
                    offset = valid_len,
                    dropped_bytes = bytes.len() - valid_len,
                    "write-ahead log ends in a torn or corrupt record; truncating it"
                );
                let file = OpenOptions::new().write(true).open(&path).map_err(|e| Error::io(&path, e))?;
                file.set_len(valid_len as u64).map_err(|e| Error::io(&path, e))?;
                file.sync_all().map_err(|e| Error::io(&path, e))?;
            }
            closed.push(Segment { index: *index, max_time });
        }
        // Always append to a fresh segment: the last one may end where a crash cut it. The
        // caller starts it with the live series (see `log`), as `rotate` does.
        let next = last.map_or(1, |i| i + 1);
        let path = segment_path(dir, next);
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| Error::io(&path, e))?;
        let wal = Wal {
            dir: dir.to_path_buf(),
            file,
            current: Segment { index: next, max_time: i64::MIN },
            size: 0,
            closed,
            sync_interval,
            last_sync: Instant::now(),
            buffer: Vec::new(),
        };
        Ok(wal)
    }

    /// Logs new series and samples as one write. Returns once the OS has the bytes.
    pub fn log(&mut self, series: &[(u64, Labels)], samples: &[(u64, Sample)]) -> Result<(), Error> {
        self.buffer.clear();
        if !series.is_empty() {
            encode_series(&mut self.buffer, series);
        }
        if !samples.is_empty() {
            encode_samples(&mut self.buffer, samples);
            let newest = samples.iter().map(|(_, s)| s.timestamp).max().unwrap_or(i64::MIN);
            self.current.max_time = self.current.max_time.max(newest);
        }
        if self.buffer.is_empty() {
            return Ok(());
        }
        let path = segment_path(&self.dir, self.current.index);
        if let Err(error) = self.file.write_all(&self.buffer) {
            // A partial record (disk full) would end replay early and hide every later
            // record; cut it off so the log stays a clean sequence.
            if let Err(truncate) = self.file.set_len(self.size) {
                tracing::error!(segment = %path.display(), %truncate, "could not cut a failed write from the log");
            }
            return Err(Error::io(&path, error));
        }
        self.size += self.buffer.len() as u64;
        if self.last_sync.elapsed() >= self.sync_interval {
            self.file.sync_data().map_err(|e| Error::io(&path, e))?;
            self.last_sync = Instant::now();
        }
        Ok(())
    }

    /// Whether the current segment is big enough to start another.
    pub fn wants_rotation(&self) -> bool {
        self.size >= SEGMENT_BYTES
    }

    /// Starts a new segment that begins with the definitions of `live` series.
    pub fn rotate(&mut self, live: &[(u64, Labels)]) -> Result<(), Error> {
        let old_path = segment_path(&self.dir, self.current.index);
        self.file.sync_all().map_err(|e| Error::io(&old_path, e))?;
        let next = self.current.index + 1;
        let path = segment_path(&self.dir, next);
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| Error::io(&path, e))?;
        let finished = std::mem::replace(&mut self.current, Segment { index: next, max_time: i64::MIN });
        self.closed.push(finished);
        self.file = file;
        self.size = 0;
        for chunk in live.chunks(10_000) {
            self.log(chunk, &[])?;
        }
        self.sync()
    }

    /// Deletes closed segments whose samples are all older than `time` (persisted elsewhere).
    pub fn remove_segments_before(&mut self, time: i64) -> Result<(), Error> {
        let mut kept = Vec::new();
        for segment in std::mem::take(&mut self.closed) {
            if segment.max_time < time {
                let path = segment_path(&self.dir, segment.index);
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            } else {
                kept.push(segment);
            }
        }
        self.closed = kept;
        Ok(())
    }

    pub fn sync(&mut self) -> Result<(), Error> {
        let path = segment_path(&self.dir, self.current.index);
        self.file.sync_all().map_err(|e| Error::io(&path, e))?;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Total bytes of the log on disk.
    pub fn disk_size(&self) -> u64 {
        std::fs::read_dir(&self.dir)
            .map(|entries| entries.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum())
            .unwrap_or(0)
    }
}

fn segment_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("{index:08}"))
}

fn frame(out: &mut [u8], payload_start: usize) {
    let payload_len = (out.len() - payload_start - HEADER) as u32;
    let crc = crc32fast::hash(&out[payload_start + HEADER..]);
    out[payload_start..payload_start + 4].copy_from_slice(&payload_len.to_le_bytes());
    out[payload_start + 4..payload_start + 8].copy_from_slice(&crc.to_le_bytes());
}

pub(crate) fn put_str(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

pub(crate) fn put_labels(out: &mut Vec<u8>, labels: &Labels) {
    out.extend_from_slice(&(labels.len() as u16).to_le_bytes());
    for (name, value) in labels.iter() {
        put_str(out, name);
        put_str(out, value);
    }
}

fn encode_series(out: &mut Vec<u8>, series: &[(u64, Labels)]) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    out.push(SERIES);
    for (id, labels) in series {
        out.extend_from_slice(&id.to_le_bytes());
        put_labels(out, labels);
    }
    frame(out, start);
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

fn encode_samples(out: &mut Vec<u8>, samples: &[(u64, Sample)]) {
    let start = out.len();
    out.reserve(HEADER + 1 + samples.len() * 10);
    out.extend_from_slice(&[0; HEADER]);
    out.push(PACKED_SAMPLES);
    let (mut id, mut time, mut bits) = (0u64, 0i64, 0u64);
    for (next_id, sample) in samples {
        put_varint(out, zigzag(next_id.wrapping_sub(id) as i64));
        put_varint(out, zigzag(sample.timestamp.wrapping_sub(time)));
        let value_bits = sample.value.to_bits();
        put_varint(out, (value_bits ^ bits).swap_bytes());
        (id, time, bits) = (*next_id, sample.timestamp, value_bits);
    }
    frame(out, start);
}

/// A cursor over little-endian fields; every read is bounds-checked.
pub(crate) struct Cursor<'a> {
    pub bytes: &'a [u8],
    pub position: usize,
}

impl<'a> Cursor<'a> {
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let slice = self.bytes.get(self.position..self.position.checked_add(n)?)?;
        self.position += n;
        Some(slice)
    }

    pub fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }

    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    pub fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    pub fn string(&mut self) -> Option<String> {
        let len = self.u32()? as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }

    pub fn labels(&mut self) -> Option<Labels> {
        let count = self.u16()?;
        let mut pairs = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            pairs.push((self.string()?, self.string()?));
        }
        Some(Labels::from_trusted(pairs))
    }

    pub fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.bytes.get(self.position)?;
            self.position += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    pub fn is_done(&self) -> bool {
        self.position >= self.bytes.len()
    }
}

/// Records of a segment, the length of its valid prefix, and its newest sample time.
/// Hands each valid record to `on_record`; returns the valid prefix's length and the newest
/// sample time.
fn parse_segment(bytes: &[u8], on_record: &mut impl FnMut(Record)) -> (usize, i64) {
    let mut position = 0;
    let mut max_time = i64::MIN;
    while position + HEADER <= bytes.len() {
        let len = u32::from_le_bytes([bytes[position], bytes[position + 1], bytes[position + 2], bytes[position + 3]])
            as usize;
        let crc =
            u32::from_le_bytes([bytes[position + 4], bytes[position + 5], bytes[position + 6], bytes[position + 7]]);
        let Some(payload) = bytes.get(position + HEADER..position + HEADER + len) else { break };
        if len == 0 || crc32fast::hash(payload) != crc {
            break;
        }
        let Some(record) = parse_record(payload) else { break };
        if let Record::Samples(samples) = &record {
            max_time = samples.iter().map(|(_, s)| s.timestamp).fold(max_time, i64::max);
        }
        on_record(record);
        position += HEADER + len;
    }
    (position, max_time)
}

fn parse_record(payload: &[u8]) -> Option<Record> {
    let mut cursor = Cursor { bytes: payload, position: 1 };
    match *payload.first()? {
        SERIES => {
            let mut series = Vec::new();
            while !cursor.is_done() {
                series.push((cursor.u64()?, cursor.labels()?));
            }
            Some(Record::Series(series))
        }
        SAMPLES => {
            let mut samples = Vec::with_capacity(payload.len() / 24);
            while !cursor.is_done() {
                let id = cursor.u64()?;
                let timestamp = cursor.u64()? as i64;
                let value = f64::from_bits(cursor.u64()?);
                samples.push((id, Sample { timestamp, value }));
            }
            Some(Record::Samples(samples))
        }
        PACKED_SAMPLES => {
            let mut samples = Vec::with_capacity(payload.len() / 8);
            let (mut id, mut time, mut bits) = (0u64, 0i64, 0u64);
            while !cursor.is_done() {
                id = id.wrapping_add(unzigzag(cursor.varint()?) as u64);
                time = time.wrapping_add(unzigzag(cursor.varint()?));
                bits ^= cursor.varint()?.swap_bytes();
                samples.push((id, Sample { timestamp: time, value: f64::from_bits(bits) }));
            }
            Some(Record::Samples(samples))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(name: &str) -> Labels {
        Labels::from_static(&[("__name__", name), ("job", "test")])
    }

    #[test]
    fn records_replay_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, records) = Wal::open(dir.path(), Duration::ZERO).unwrap();
        assert!(records.is_empty());
        wal.log(&[(1, labels("a"))], &[(1, Sample::new(10, 1.5))]).unwrap();
        wal.log(&[], &[(1, Sample::new(20, 2.5))]).unwrap();
        drop(wal);
        let (_, records) = Wal::open(dir.path(), Duration::ZERO).unwrap();
        assert_eq!(
            records,
            vec![
                Record::Series(vec![(1, labels("a"))]),
                Record::Samples(vec![(1, Sample::new(10, 1.5))]),
                Record::Samples(vec![(1, Sample::new(20, 2.5))]),
            ]
        );
    }

    #[test]
    fn a_torn_last_record_is_cut_off_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), Duration::ZERO).unwrap();
        wal.log(&[(1, labels("a"))], &[(1, Sample::new(10, 1.0))]).unwrap();
        wal.log(&[], &[(1, Sample::new(20, 2.0))]).unwrap();
        drop(wal);
        let segment = segment_path(dir.path(), 1);
        let length = std::fs::metadata(&segment).unwrap().len();
        let file = OpenOptions::new().write(true).open(&segment).unwrap();
        file.set_len(length - 5).unwrap();
        let (_, records) = Wal::open(dir.path(), Duration::ZERO).unwrap();
        assert_eq!(records.len(), 2, "series and the first samples survive");
        // The torn bytes are gone, so later appends follow a clean record.
        let (_, again) = Wal::open(dir.path(), Duration::ZERO).unwrap();
        assert_eq!(again.len(), 2);
    }

    #[test]
    fn a_failed_write_leaves_no_partial_record_behind() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), Duration::ZERO).unwrap();
        wal.log(&[(1, labels("a"))], &[(1, Sample::new(10, 1.0))]).unwrap();
        let good = wal.size;
        // Simulate a write cut short by a full disk: garbage past the good length.
        wal.file.write_all(&[1, 2, 3]).unwrap();
        wal.file.set_len(good).unwrap();
        wal.log(&[], &[(1, Sample::new(20, 2.0))]).unwrap();
        drop(wal);
        let (_, records) = Wal::open(dir.path(), Duration::ZERO).unwrap();
        assert_eq!(records.len(), 3);
    }

    #[test]
    fn packed_samples_round_trip_every_value() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), Duration::ZERO).unwrap();
        let samples: Vec<(u64, Sample)> = [
            (5, Sample::new(1_700_000_000_000, 1.0)),
            (5, Sample::new(1_700_000_010_000, 2.5)),
            (3, Sample::new(-5, f64::NAN)),
            (u64::MAX, Sample::new(i64::MAX, f64::NEG_INFINITY)),
            (0, Sample::new(i64::MIN, -0.0)),
            (7, Sample::new(0, f64::from_bits(hubmon_model::STALE_NAN_BITS))),
        ]
        .into();
        wal.log(&[], &samples).unwrap();
        drop(wal);
        let (_, records) = Wal::open(dir.path(), Duration::ZERO).unwrap();
        let Record::Samples(read) = &records[0] else { panic!("{records:?}") };
        assert_eq!(read.len(), samples.len());
        for ((id_a, a), (id_b, b)) in read.iter().zip(&samples) {
            assert_eq!((id_a, a.timestamp, a.value.to_bits()), (id_b, b.timestamp, b.value.to_bits()));
        }
    }

    #[test]
    fn garbage_in_a_segment_is_never_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path()).unwrap();
        std::fs::write(segment_path(dir.path(), 1), [0xff; 100]).unwrap();
        let (_, records) = Wal::open(dir.path(), Duration::ZERO).unwrap();
        assert!(records.is_empty());
    }

    #[test]
    fn old_segments_go_once_their_samples_are_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), Duration::ZERO).unwrap();
        wal.log(&[(1, labels("a"))], &[(1, Sample::new(100, 1.0))]).unwrap();
        wal.rotate(&[(1, labels("a"))]).unwrap();
        wal.log(&[], &[(1, Sample::new(200, 1.0))]).unwrap();
        wal.remove_segments_before(150).unwrap();
        drop(wal);
        let (_, records) = Wal::open(dir.path(), Duration::ZERO).unwrap();
        assert_eq!(
            records,
            vec![Record::Series(vec![(1, labels("a"))]), Record::Samples(vec![(1, Sample::new(200, 1.0))])],
            "the series definition was carried into the new segment"
        );
    }
}
