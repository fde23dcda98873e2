//! Ingest: everything that turns measurements into samples and hands them to an
//! [`hubmon_model::Appender`]. It never reads or writes the store's files itself.
//!
//! - [`host`]: node_exporter-compatible host metrics from /proc and /sys, plus hubmon's
//!   convenience gauges; NVIDIA GPUs through NVML when present.
//! - [`remote_write`]: the Prometheus remote_write receiver's decoding.
//! - [`push`]: the JSON push format for scripts.
//! - [`logs`]: log parsers (JSON/NDJSON/logfmt, Loki push, syslog) into `LogEntry` values.
//! - [`requests`]: HTTP request events into request-rate, latency and active-key metrics.
//! - [`exposition`] and [`scrape`]: scraping Prometheus text/OpenMetrics targets.

pub mod exposition;
pub mod host;
pub mod logs;
pub mod push;
pub mod remote_write;
pub mod requests;
pub mod scrape;
