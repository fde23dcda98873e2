//! The `[logs]` section: the built-in log store, ingest limits and the syslog listeners.

use hubmon_model::PromDuration;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// Log lines older than this are deleted (a segment goes when its newest line is older).
    pub retention: PromDuration,
    /// Delete segments, oldest first, while they take more than this many bytes.
    pub retention_size_bytes: u64,
    /// Lines longer than this many bytes are rejected.
    pub max_line_bytes: u64,
    /// Lines with more free-form fields than this are rejected.
    pub max_fields: u64,
    /// How often the log write-ahead log is fsynced; "0s" syncs on every write.
    pub wal_sync_interval: PromDuration,
    /// Lines kept in memory before they are written into a segment …
    pub head_max_lines: u64,
    /// … or the longest a line waits in memory.
    pub head_max_age: PromDuration,
    /// Address for syslog over UDP (RFC 5424 / 3164), e.g. "0.0.0.0:5514"; empty = off.
    pub syslog_udp: String,
    /// Address for syslog over TCP (octet-counted or newline framing); empty = off.
    pub syslog_tcp: String,
    /// Turn access-log lines (category `api` with method, route, status, duration) into
    /// `http_requests_total` and `http_request_duration_seconds`.
    pub api_metrics: bool,
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self {
            retention: PromDuration::from_secs(7 * 86_400),
            retention_size_bytes: 10 << 30,
            max_line_bytes: 256 * 1024,
            max_fields: 1000,
            wal_sync_interval: PromDuration::from_secs(1),
            head_max_lines: 100_000,
            head_max_age: PromDuration::from_secs(300),
            syslog_udp: String::new(),
            syslog_tcp: String::new(),
            api_metrics: true,
        }
    }
}

impl LogsConfig {
    pub fn validate(&self) -> Result<(), String> {
        for (name, address) in [("logs.syslog_udp", &self.syslog_udp), ("logs.syslog_tcp", &self.syslog_tcp)] {
            if !address.is_empty() && address.parse::<std::net::SocketAddr>().is_err() {
                return Err(format!("{name} {address:?} is not an address; write ip:port, like 0.0.0.0:5514"));
            }
        }
        if self.max_line_bytes < 256 {
            return Err("logs.max_line_bytes must be at least 256".into());
        }
        if self.head_max_lines == 0 {
            return Err("logs.head_max_lines must be at least 1".into());
        }
        Ok(())
    }

    pub fn store_options(&self) -> hubmon_logstore::Options {
        hubmon_logstore::Options {
            retention: self.retention.as_duration(),
            max_bytes: self.retention_size_bytes,
            head_max_lines: usize::try_from(self.head_max_lines).unwrap_or(usize::MAX),
            head_max_age: self.head_max_age.as_duration(),
            sync_every_append: self.wal_sync_interval.as_duration().is_zero(),
        }
    }

    pub fn limits(&self) -> hubmon_ingest::logs::Limits {
        let now = hubmon_model::Timestamp::now();
        let retention = i64::try_from(self.retention.as_duration().as_millis()).unwrap_or(i64::MAX / 2);
        hubmon_ingest::logs::Limits {
            max_line_bytes: usize::try_from(self.max_line_bytes).unwrap_or(usize::MAX),
            max_fields: usize::try_from(self.max_fields).unwrap_or(usize::MAX),
            oldest: Some(hubmon_model::Timestamp(now.as_millis().saturating_sub(retention))),
            // A day ahead covers clock skew and time zones written as UTC by mistake.
            newest: Some(now.plus(std::time::Duration::from_secs(86_400))),
        }
    }
}
