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

#[cfg(test)]
mod tests {
    use super::*;
    use hubmon_model::Timestamp;

    /// Random and mutated inputs never panic any parser (they may only be refused).
    #[test]
    fn parsers_never_panic_on_garbage() {
        let seeds: [&[u8]; 6] = [
            br#"{"msg":"a","ts":"2024-05-01T12:00:00Z","level":"warn","fields":{"x":[1,2]}}"#,
            b"<165>1 2024-05-01T11:59:00Z web1 shop 42 ID [a b=\"1\"] hi",
            b"<13>May  1 11:58:00 host sshd[1]: ok",
            br#"{"streams":[{"stream":{"a":"b"},"values":[["1","l"]]}]}"#,
            b"level=info msg=\"x y\" a=1",
            b"12 <13>1 - - - - - -",
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let limits = Limits::default();
        let now = Timestamp(1_714_564_800_000);
        for round in 0..4000 {
            let mut input = seeds[round % seeds.len()].to_vec();
            for _ in 0..(next() % 8) {
                let at = (next() as usize) % (input.len() + 1);
                match next() % 3 {
                    0 if at < input.len() => input[at] = next() as u8,
                    1 => input.insert(at, b"{}[]\"\\<>:=- 0123456789\n\xff"[(next() % 24) as usize]),
                    _ if at < input.len() => {
                        input.remove(at);
                    }
                    _ => {}
                }
            }
            let _ = syslog::parse(&input, now, &limits);
            let _ = batch::parse(&input, round % 2 == 0, now, &limits);
            let _ = loki::decode_json(&input, now, &limits);
            let _ = loki::decode_protobuf(&input, 1 << 20, now, &limits);
            let _ = structured::parse_line(&String::from_utf8_lossy(&input), now, &limits);
            let _ = syslog::Framer::default().push(&input, 1024);
        }
    }
}
