//! Segments: immutable files holding the lines of one hour (by timestamp) from one flush,
//! sorted by (timestamp, id). Flushes write format 2 ([`v2`]); format 1 files ([`v1`]) from
//! earlier releases are still read. `docs/format.md` has both layouts.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::partition::{Columns, Partition};
use crate::{Error, StoredEntry};

mod v1;
mod v2;

/// Where a flush group's segment came from, for crash recovery (see `LogStore::open`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Origin {
    pub wal_from: u64,
    pub wal_to: u64,
    /// This segment's number among the `parts` written from those WAL files.
    pub part: u32,
    pub parts: u32,
}

/// A segment's index and columns, carried over from the head by a flush.
pub(crate) struct SegmentIndex {
    pub postings: crate::head::Postings,
    pub columns: Columns,
}

/// Segments live behind an `Arc` each, so the size difference between formats is moot.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Segment {
    V1(v1::Segment),
    V2(v2::Segment),
}

impl Segment {
    /// Writes `rows` (WAL record payloads, sorted by timestamp, id) as a new segment file in
    /// the current format; the file appears under its final name only once complete and synced.
    pub fn write(
        dir: &Path,
        partition: i64,
        origin: Origin,
        rows: &[&[u8]],
        index: SegmentIndex,
    ) -> Result<PathBuf, Error> {
        v2::write(dir, partition, origin, rows, index)
    }

    /// Writes a format 1 segment, for the tests that prove old files are still read.
    #[cfg(test)]
    pub fn write_v1(
        dir: &Path,
        partition: i64,
        origin: Origin,
        entries: &[Arc<StoredEntry>],
    ) -> Result<PathBuf, Error> {
        v1::Segment::write(dir, partition, origin, entries)
    }

    /// Opens a segment of either format, telling them apart by the magic at the file's end.
    pub fn open(path: &Path) -> Result<Segment, Error> {
        let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
        let size = file.metadata().map_err(|e| Error::io("stat", path, e))?.len();
        let mut magic = [0u8; 8];
        if size >= 8 {
            file.read_exact_at(&mut magic, size - 8).map_err(|e| Error::io("read", path, e))?;
        }
        if &magic == v1::MAGIC {
            return Ok(Segment::V1(v1::Segment::open(path)?));
        }
        if &magic == v2::MAGIC {
            return Ok(Segment::V2(v2::Segment::open(path, file, size)?));
        }
        Err(Error::Corrupt(format!(
            "{}: not a log segment of a format this version reads (trailer {:?}; formats 1 and 2 are read)",
            path.display(),
            String::from_utf8_lossy(&magic)
        )))
    }

    fn inner(&self) -> &dyn Partition {
        match self {
            Segment::V1(s) => s,
            Segment::V2(s) => s,
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            Segment::V1(s) => s.path(),
            Segment::V2(s) => s.path(),
        }
    }

    pub fn size(&self) -> u64 {
        match self {
            Segment::V1(s) => s.size(),
            Segment::V2(s) => s.size(),
        }
    }

    pub fn origin(&self) -> &Origin {
        match self {
            Segment::V1(s) => s.origin(),
            Segment::V2(s) => s.origin(),
        }
    }

    pub fn max_id(&self) -> u64 {
        match self {
            Segment::V1(s) => s.max_id(),
            Segment::V2(s) => s.max_id(),
        }
    }
}

impl Partition for Segment {
    fn rows(&self) -> usize {
        self.inner().rows()
    }

    fn postings(&self, key: &str) -> Result<Vec<u32>, Error> {
        self.inner().postings(key)
    }

    fn key_is_exact(&self, key: &str) -> bool {
        self.inner().key_is_exact(key)
    }

    fn column_rows(&self, predicate: &crate::query::Predicate) -> Option<Vec<u32>> {
        self.inner().column_rows(predicate)
    }

    fn field_column(&self, field: &str) -> Result<Option<crate::partition::FieldColumn<'_>>, Error> {
        self.inner().field_column(field)
    }

    fn columns(&self) -> &Columns {
        self.inner().columns()
    }

    fn entry(&self, row: u32) -> Result<Arc<StoredEntry>, Error> {
        self.inner().entry(row)
    }

    fn message(&self, row: u32) -> Result<String, Error> {
        self.inner().message(row)
    }

    fn min_ts(&self) -> i64 {
        self.inner().min_ts()
    }

    fn max_ts(&self) -> i64 {
        self.inner().max_ts()
    }

    fn time_ordered(&self) -> bool {
        true
    }

    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, Error> {
        self.inner().keys_with_prefix(prefix)
    }
}
