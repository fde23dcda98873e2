//! The machine as a whole: `node_load1/5/15` (/proc/loadavg), `node_filefd_allocated` and
//! `node_filefd_maximum` (/proc/sys/fs/file-nr), `node_time_seconds`, `node_uname_info`, and
//! hubmon's `hubmon_uptime_seconds` (/proc/uptime) and `hubmon_processes` (the number of
//! processes: numeric entries of procfs).
//!
//! `hubmon_processes` is a gauge, so it has no `_total`: in Prometheus that suffix promises a
//! counter, and `rate()` over it would be nonsense.

use std::fs;
use std::path::PathBuf;

use tracing::debug;

use super::proc_file::ProcFile;
use super::{Batch, HostConfig};

/// /proc/loadavg's first three fields.
pub(crate) fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut fields = text.split_ascii_whitespace().map(str::parse::<f64>);
    Some([fields.next()?.ok()?, fields.next()?.ok()?, fields.next()?.ok()?])
}

/// /proc/sys/fs/file-nr: allocated handles, unused (always 0 since 2.6), maximum.
pub(crate) fn parse_file_nr(text: &str) -> Option<(f64, f64)> {
    let mut fields = text.split_ascii_whitespace().map(str::parse::<u64>);
    let allocated = fields.next()?.ok()?;
    let maximum = fields.nth(1)?.ok()?;
    Some((allocated as f64, maximum as f64))
}

/// /proc/uptime's first field: seconds since boot, from a monotonic clock.
pub(crate) fn parse_uptime(text: &str) -> Option<f64> {
    text.split_ascii_whitespace().next()?.parse().ok()
}

pub(crate) struct SystemCollector {
    loadavg: ProcFile,
    file_nr: ProcFile,
    uptime: ProcFile,
    procfs: PathBuf,
    processes_failure_logged: bool,
}

impl SystemCollector {
    pub(crate) fn new(config: &HostConfig) -> Self {
        Self {
            loadavg: ProcFile::new(config.procfs.join("loadavg")),
            file_nr: ProcFile::new(config.procfs.join("sys/fs/file-nr")),
            uptime: ProcFile::new(config.procfs.join("uptime")),
            procfs: config.procfs.clone(),
            processes_failure_logged: false,
        }
    }

    pub(crate) fn collect(&mut self, batch: &mut Batch) {
        if let Some([load1, load5, load15]) = self.loadavg.read().and_then(parse_loadavg) {
            batch.push("node_load1", &[], load1);
            batch.push("node_load5", &[], load5);
            batch.push("node_load15", &[], load15);
        }
        if let Some((allocated, maximum)) = self.file_nr.read().and_then(parse_file_nr) {
            batch.push("node_filefd_allocated", &[], allocated);
            batch.push("node_filefd_maximum", &[], maximum);
        }
        if let Some(uptime) = self.uptime.read().and_then(parse_uptime) {
            batch.push("hubmon_uptime_seconds", &[], uptime);
        }
        if let Some(count) = self.count_processes() {
            batch.push("hubmon_processes", &[], count as f64);
        }
        batch.push("node_time_seconds", &[], batch.timestamp_seconds());
        let uname = rustix::system::uname();
        batch.push(
            "node_uname_info",
            &[
                ("sysname", &uname.sysname().to_string_lossy()),
                ("release", &uname.release().to_string_lossy()),
                ("version", &uname.version().to_string_lossy()),
                ("machine", &uname.machine().to_string_lossy()),
                ("nodename", &uname.nodename().to_string_lossy()),
                ("domainname", &uname.domainname().to_string_lossy()),
            ],
            1.0,
        );
    }

    /// Entries of procfs whose name is a number, one per process. Threads live under
    /// /proc/<pid>/task and are not counted.
    fn count_processes(&mut self) -> Option<usize> {
        match fs::read_dir(&self.procfs) {
            Ok(entries) => Some(
                entries
                    .filter_map(Result::ok)
                    .filter(|entry| {
                        let name = entry.file_name();
                        let name = name.as_encoded_bytes();
                        !name.is_empty() && name.iter().all(u8::is_ascii_digit)
                    })
                    .count(),
            ),
            Err(error) => {
                if !self.processes_failure_logged {
                    self.processes_failure_logged = true;
                    debug!(path = %self.procfs.display(), %error, "procfs unreadable, hubmon_processes skipped");
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_loadavg() {
        assert_eq!(parse_loadavg("0.52 0.58 0.59 1/467 12345\n"), Some([0.52, 0.58, 0.59]));
        assert_eq!(parse_loadavg("0.52 0.58"), None);
    }

    #[test]
    fn parses_file_nr() {
        assert_eq!(parse_file_nr("1056\t0\t9223372036854775807\n"), Some((1056.0, 9_223_372_036_854_775_807.0)));
        assert_eq!(parse_file_nr("1056"), None);
    }

    #[test]
    fn parses_uptime() {
        assert_eq!(parse_uptime("15634.52 30544.08\n"), Some(15634.52));
        assert_eq!(parse_uptime(""), None);
    }
}
