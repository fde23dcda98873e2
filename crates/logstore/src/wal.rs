//! The write-ahead log: every accepted line is written here before the append returns, so
//! an acknowledged line survives `kill -9` (the OS has the bytes) and, after the next sync,
//! a power cut.
//!
//! Files `wal/<seq>.wal`, each a sequence of records `[len: u32 LE][crc32: u32 LE][payload]`
//! where the payload is one [`StoredEntry`] in the binary form of [`crate::codec`] (format 2)
//! or as JSON (format 1, still replayed after an upgrade: its first byte is `{`). A new file is started whenever the head
//! is frozen for a flush; a file is deleted once every segment made from it is on disk.
//! A torn record at the end of the newest file (a crash mid-write) is cut off at open.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use crate::{Error, StoredEntry, codec};

/// A record larger than this is corruption, not a line (lines are bounded far below it).
const MAX_RECORD_BYTES: u32 = 64 << 20;

pub(crate) struct Wal {
    dir: PathBuf,
    seq: u64,
    file: File,
    dirty: bool,
}

/// One WAL file's worth of replayed lines.
pub(crate) struct Replayed {
    pub seq: u64,
    pub entries: Vec<StoredEntry>,
}

/// Lines framed as WAL records, and where each line's payload (its [`codec`] form) lies in
/// them: the head keeps these bytes as its copy of the lines.
pub(crate) struct Records {
    pub bytes: Vec<u8>,
    /// (start, length) of each payload in `bytes`.
    pub payloads: Vec<(u32, u32)>,
}

/// Frames `entries` as WAL records.
pub(crate) fn encode<'a>(entries: impl ExactSizeIterator<Item = &'a StoredEntry>) -> Result<Records, Error> {
    let mut records =
        Records { bytes: Vec::with_capacity(entries.len() * 256), payloads: Vec::with_capacity(entries.len()) };
    for entry in entries {
        let buffer = &mut records.bytes;
        let start = buffer.len();
        buffer.extend_from_slice(&[0u8; 8]);
        codec::put_entry(buffer, entry);
        let payload = &buffer[start + 8..];
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|len| *len <= MAX_RECORD_BYTES)
            .ok_or_else(|| Error::Encode("log line too large".into()))?;
        let crc = crc32fast::hash(payload);
        buffer[start..start + 4].copy_from_slice(&len.to_le_bytes());
        buffer[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        let at = u32::try_from(start + 8).map_err(|_| Error::Encode("log batch too large".into()))?;
        records.payloads.push((at, len));
    }
    Ok(records)
}

impl Wal {
    /// Reads every WAL file (oldest first), cutting a torn tail, and opens a new file after
    /// them for appends.
    pub fn open(dir: &Path) -> Result<(Wal, Vec<Replayed>), Error> {
        fs::create_dir_all(dir).map_err(|e| Error::io("create the log WAL directory", dir, e))?;
        let mut seqs = list(dir)?;
        seqs.sort_unstable();
        let mut replayed = Vec::new();
        for &seq in &seqs {
            let path = file_path(dir, seq);
            let (entries, good_len, torn) = read_file(&path)?;
            if torn {
                tracing::warn!(path = %path.display(), good_len, "log WAL ends in a torn record; cutting it off");
                let file = OpenOptions::new().write(true).open(&path).map_err(|e| Error::io("open", &path, e))?;
                file.set_len(good_len).map_err(|e| Error::io("truncate", &path, e))?;
                file.sync_all().map_err(|e| Error::io("sync", &path, e))?;
            }
            replayed.push(Replayed { seq, entries });
        }
        let seq = seqs.last().map_or(1, |s| s + 1);
        let file = create(dir, seq)?;
        Ok((Wal { dir: dir.to_path_buf(), seq, file, dirty: false }, replayed))
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Writes records made by [`encode`] in one write: the batch reaches the OS before the
    /// caller acknowledges.
    pub fn append(&mut self, records: &Records) -> Result<(), Error> {
        self.file.write_all(&records.bytes).map_err(|e| Error::io("write", &file_path(&self.dir, self.seq), e))?;
        self.dirty = true;
        Ok(())
    }

    pub fn sync(&mut self) -> Result<(), Error> {
        if self.dirty {
            self.file.sync_data().map_err(|e| Error::io("sync", &file_path(&self.dir, self.seq), e))?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Syncs the current file and starts the next; returns the sequence number of the file
    /// just closed (every record up to it belongs to the head being frozen).
    pub fn rotate(&mut self) -> Result<u64, Error> {
        self.sync()?;
        let closed = self.seq;
        let next = closed + 1;
        self.file = create(&self.dir, next)?;
        self.seq = next;
        Ok(closed)
    }

    /// Deletes WAL files `from..=to`, once their lines are safely in segments.
    pub fn remove(&self, from: u64, to: u64) -> Result<(), Error> {
        remove_range(&self.dir, from, to)
    }
}

pub(crate) fn remove_range(dir: &Path, from: u64, to: u64) -> Result<(), Error> {
    for seq in list(dir)? {
        if (from..=to).contains(&seq) {
            let path = file_path(dir, seq);
            fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
        }
    }
    Ok(())
}

pub(crate) fn exists(dir: &Path, seq: u64) -> bool {
    file_path(dir, seq).exists()
}

fn file_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016}.wal"))
}

fn list(dir: &Path) -> Result<Vec<u64>, Error> {
    let mut out = Vec::new();
    for item in fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))? {
        let item = item.map_err(|e| Error::io("list", dir, e))?;
        let name = item.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".wal")) else { continue };
        if let Ok(seq) = stem.parse::<u64>() {
            out.push(seq);
        }
    }
    Ok(out)
}

fn create(dir: &Path, seq: u64) -> Result<File, Error> {
    let path = file_path(dir, seq);
    let file = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| Error::io("create", &path, e))?;
    // The new name must survive a crash too, or the records in it would be lost with it.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(file)
}

/// The records of one file, the length of its intact prefix, and whether a tail was torn.
fn read_file(path: &Path) -> Result<(Vec<StoredEntry>, u64, bool), Error> {
    let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut reader = BufReader::new(file);
    let mut entries = Vec::new();
    let mut good = 0u64;
    let mut header = [0u8; 8];
    loop {
        match read_full(&mut reader, &mut header) {
            Ok(0) => return Ok((entries, good, false)),
            Ok(n) if n < header.len() => return Ok((entries, good, true)),
            Ok(_) => {}
            Err(e) => return Err(Error::io("read", path, e)),
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len > MAX_RECORD_BYTES {
            return Ok((entries, good, true));
        }
        let mut payload = vec![0u8; len as usize];
        match read_full(&mut reader, &mut payload) {
            Ok(n) if n == payload.len() => {}
            Ok(_) => return Ok((entries, good, true)),
            Err(e) => return Err(Error::io("read", path, e)),
        }
        if crc32fast::hash(&payload) != crc {
            return Ok((entries, good, true));
        }
        let entry = if payload.first() == Some(&b'{') {
            serde_json::from_slice::<StoredEntry>(&payload).ok()
        } else {
            codec::get_entry(&payload)
        };
        match entry {
            Some(entry) => entries.push(entry),
            None => return Ok((entries, good, true)),
        }
        good += 8 + u64::from(len);
    }
}

fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
