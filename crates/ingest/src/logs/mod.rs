//! Log parsers: everything that turns text arriving over HTTP or syslog into
//! [`hubmon_model::LogEntry`] values. Nothing here stores anything; the server hands the
//! result to a [`hubmon_model::LogSink`].
//!
//! - [`structured`]: one JSON object or logfmt line into the model (shared by every path, so
//!   structured logs stay structured however they arrive);
//! - [`batch`]: the body of `POST /api/v1/logs` (object, array or NDJSON);
//! - [`loki`]: the Loki push API, JSON and protobuf + snappy;
//! - [`syslog`]: RFC 5424 and RFC 3164 messages, and octet-counted / newline framing;
//! - [`access`]: access-log lines into request events for the API metrics.
//!
//! Every path rejects bad lines one by one ([`LineError`]) and keeps the good ones.

pub mod access;
pub mod batch;
pub mod loki;
pub mod structured;
pub mod syslog;

use serde::Serialize;

/// Limits every parser applies to one line.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A line (or its JSON object) larger than this is rejected.
    pub max_line_bytes: usize,
    /// A line with more free-form fields than this is rejected.
    pub max_fields: usize,
    /// Lines with an explicit timestamp outside `[oldest, newest]` are rejected: older ones
    /// would be deleted by retention at once, far-future ones are usually a unit mistake.
    pub oldest: Option<hubmon_model::Timestamp>,
    pub newest: Option<hubmon_model::Timestamp>,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_line_bytes: 256 * 1024, max_fields: 1000, oldest: None, newest: None }
    }
}

/// Why one line of a batch was refused; the rest of the batch is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    /// Position of the line in the batch, from 0 (for Loki: counted over all streams).
    pub index: usize,
    pub reason: String,
}

/// What a batch turned into.
#[derive(Debug, Default)]
pub struct Parsed {
    pub entries: Vec<hubmon_model::LogEntry>,
    pub rejections: Vec<LineError>,
}
