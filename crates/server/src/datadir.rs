//! The data directory and its lock: one hubmon server per data dir.
//!
//! The lock is an OS file lock on `hubmon.lock`, so it is released when the process dies,
//! even by `kill -9`, and a stale file never blocks a restart.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create data dir {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("data dir {path} is not writable: {source}")]
    NotWritable { path: PathBuf, source: std::io::Error },
    #[error(
        "data dir {path} is in use by another hubmon server{holder}; stop it, or start this one with a different --data-dir"
    )]
    Locked { path: PathBuf, holder: String },
}

/// An open, locked data directory. The lock is held until this is dropped.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    _lock: File,
}

impl DataDir {
    pub fn open(path: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(path).map_err(|source| Error::Create { path: path.to_path_buf(), source })?;
        let lock_path = path.join("hubmon.lock");
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|source| Error::NotWritable { path: path.to_path_buf(), source })?;
        if lock.try_lock().is_err() {
            let mut holder = String::new();
            let _ = lock.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => String::new(),
                pid => format!(" (pid {pid})"),
            };
            return Err(Error::Locked { path: path.to_path_buf(), holder });
        }
        let written = lock
            .set_len(0)
            .and_then(|()| lock.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(lock, "{}", std::process::id()))
            .and_then(|()| lock.sync_all());
        written.map_err(|source| Error::NotWritable { path: path.to_path_buf(), source })?;
        Ok(Self { path: path.to_path_buf(), _lock: lock })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDir::open(dir.path()).unwrap();
        let error = DataDir::open(dir.path()).unwrap_err().to_string();
        assert!(error.contains("in use by another hubmon server"), "{error}");
        assert!(error.contains(&format!("pid {}", std::process::id())), "{error}");
        drop(first);
        assert!(DataDir::open(dir.path()).is_ok());
    }

    #[test]
    fn creates_missing_directories() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b/c");
        let data = DataDir::open(&nested).unwrap();
        assert_eq!(data.path(), nested);
        assert!(nested.join("hubmon.lock").exists());
    }
}
