//! Reading one procfs or sysfs file per collection into a buffer that lives as long as the
//! collector, so a steady collection does not allocate for it.
//!
//! A file that cannot be read is logged once at debug level and then only skipped: a missing
//! /proc/diskstats in a container is a fact of that host, not news on every tick.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use tracing::debug;

/// One file, re-read on every [`ProcFile::read`].
pub(crate) struct ProcFile {
    path: PathBuf,
    buf: String,
    failure_logged: bool,
}

impl ProcFile {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self { path, buf: String::new(), failure_logged: false }
    }

    /// The file's current contents, or `None` when it cannot be read.
    pub(crate) fn read(&mut self) -> Option<&str> {
        match read_into(&self.path, &mut self.buf) {
            Ok(()) => Some(&self.buf),
            Err(error) => {
                if !self.failure_logged {
                    self.failure_logged = true;
                    debug!(path = %self.path.display(), %error, "host metrics source unreadable, its series are skipped");
                }
                None
            }
        }
    }
}

/// Replaces `buf`'s contents with the file at `path`, keeping its allocation.
pub(crate) fn read_into(path: &Path, buf: &mut String) -> io::Result<()> {
    buf.clear();
    File::open(path)?.read_to_string(buf).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_reads_as_none_every_time() {
        let mut file = ProcFile::new(PathBuf::from("/nonexistent/hubmon/diskstats"));
        assert!(file.read().is_none());
        assert!(file.read().is_none());
        assert!(file.failure_logged);
    }
}
