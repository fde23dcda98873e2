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
#[cfg(test)]
mod reference;
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

    /// Random test input for the parsers: log lines of every kind and Loki push bodies.
    pub(super) struct Random(u64);

    impl Random {
        pub(super) fn new(seed: u64) -> Self {
            Self(seed)
        }

        pub(super) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }

        /// A JSON object's text with keys that fill model fields, others, repeats and escapes.
        pub(super) fn object_text(&mut self) -> String {
            const KEYS: [&str; 40] = [
                "timestamp",
                "ts",
                "time",
                "t",
                "@timestamp",
                "level",
                "lvl",
                "severity",
                "levelname",
                "message",
                "msg",
                "log",
                "text",
                "body",
                "category",
                "cat",
                "module",
                "logger",
                "function",
                "fn",
                "line",
                "lineno",
                "request_id",
                "requestId",
                "user_id",
                "uid",
                "user",
                "service",
                "service_name",
                "app",
                "host",
                "hostname",
                "level_original",
                "status",
                "route",
                "a",
                "k\\u0065y",
                "m\\u0073g",
                "é",
                "$serde_json::private::RawValue",
            ];
            const VALUES: [&str; 26] = [
                "\"warn\"",
                "\"LOUD\"",
                "\" ERROR \"",
                "\"2024-05-01T12:00:00Z\"",
                "\"1714564800\"",
                "1714564800123",
                "30",
                "17.5",
                "-3",
                "null",
                "true",
                "false",
                "{\"a\":1}",
                "[1,\"x\"]",
                "\"\"",
                "\"42\"",
                "\" 7 \"",
                "\"caf\\u00e9 \\\"q\\\" \\n\"",
                "\"\\ud83d\\ude00\"",
                "99999999999",
                "\"DB\"",
                "4294967296",
                "\"yesterday\"",
                "1e3",
                "\"[1]\"",
                "\"{\\\"a\\\":2}\"",
            ];
            let pairs: Vec<String> =
                (0..self.below(9)).map(|_| format!("\"{}\":{}", self.pick(&KEYS), self.pick(&VALUES))).collect();
            format!("{{{}}}", pairs.join(","))
        }

        /// One log line: JSON, logfmt, prose, or something that only looks like them.
        pub(super) fn line(&mut self) -> String {
            match self.below(9) {
                0..=3 => self.object_text(),
                4 => format!(" {} \r\n", self.object_text()),
                5 => self
                    .pick(&["level=warn msg=\"x y\" a=1", "ts=2024-05-01T12:00:00Z lvl=debug msg=hi", "a=1 b"])
                    .into(),
                6 => {
                    self.pick(&["plain text line", "", "  padded\r\n", "{not json", "{\"a\":1} trailing", "é ü"]).into()
                }
                7 => format!("{{\"msg\":\"{}\",\"n\":{}}}", "x".repeat(self.below(150)), self.below(5)),
                _ => "[1,2]".into(),
            }
        }

        /// A Loki JSON push body, mostly of the shape clients send, sometimes of others.
        pub(super) fn push_body(&mut self) -> String {
            let streams: Vec<String> = (0..1 + self.below(3)).map(|_| self.stream()).collect();
            let streams = streams.join(",");
            match self.below(12) {
                0 => format!("[[{streams}]]"),
                1 => format!("{{\"x\":{{\"y\":[1]}},\"streams\":[{streams}]}}"),
                2 => format!("{{\"streams\":[{streams}],\"streams\":[]}}"),
                3 => "{\"other\":1}".into(),
                _ => format!("{{\"streams\":[{streams}]}}"),
            }
        }

        fn stream(&mut self) -> String {
            const LABELS: [&str; 11] = [
                "\"service_name\":\"shop\"",
                "\"job\":\"j\"",
                "\"service\":\"s\"",
                "\"detected_level\":\"warn\"",
                "\"filename\":\"/f\"",
                "\"message\":\"lm\"",
                "\"msg\":\"lmsg\"",
                "\"host\":\"h\"",
                "\"level\":\"info\"",
                "\"x\":\"y\"",
                "\"timestamp\":\"2024-05-01T12:00:00Z\"",
            ];
            let labels: Vec<&str> = (0..self.below(5)).map(|_| self.pick(&LABELS)).collect();
            let labels = format!("{{{}}}", labels.join(","));
            let entries: Vec<String> = (0..self.below(6)).map(|_| self.entry()).collect();
            let values = format!("[{}]", entries.join(","));
            match self.below(10) {
                0 => format!("{{\"values\":{values},\"stream\":{labels}}}"),
                1 => format!("[{labels},{values}]"),
                2 => format!("{{\"values\":{values}}}"),
                3 => format!("{{\"stream\":{labels},\"extra\":[1,{{\"a\":null}}],\"values\":{values}}}"),
                _ => format!("{{\"stream\":{labels},\"values\":{values}}}"),
            }
        }

        fn entry(&mut self) -> String {
            const TIMESTAMPS: [&str; 10] = [
                "\"1714564800123000000\"",
                "\"1714564800123000000\"",
                "\"0\"",
                "\" 1714564800000000000 \"",
                "\"x\"",
                "1714564800",
                "null",
                "\"171456480012300000\\u0030\"",
                "\"1\"",
                "\"99999999999999999999\"",
            ];
            const METADATA: [&str; 6] = [
                "{\"trace_id\":\"t1\",\"n\":1,\"nul\":null,\"o\":{\"x\":1}}",
                "{\"service_name\":\"m\",\"message\":\"meta msg\",\"detected_level\":\"debug\"}",
                "\"not an object\"",
                "[]",
                "null",
                "{\"level\":\"error\",\"user\":\"u\\u0031\"}",
            ];
            let ts = self.pick(&TIMESTAMPS);
            let line = self.line();
            let line = serde_json::to_string(&line).unwrap_or_default();
            match self.below(12) {
                0 => "[]".into(),
                1 => format!("[{ts}]"),
                2 => format!("[{ts},{line},{},{{\"extra\":1}}]", self.pick(&METADATA)),
                3 | 4 => format!("[{ts},{line},{}]", self.pick(&METADATA)),
                5 => format!("[{ts},{}]", self.pick(&["1", "{}", "[\"x\"]", "null"])),
                _ => format!("[{ts},{line}]"),
            }
        }

        /// A few random byte changes.
        pub(super) fn mutate(&mut self, input: &mut Vec<u8>) {
            for _ in 0..1 + self.below(4) {
                let at = self.below(input.len() + 1);
                match self.below(3) {
                    0 if at < input.len() => input[at] = self.next() as u8,
                    1 => input.insert(at, b"{}[]\"\\,: 0123456789\n\xff"[self.below(21)]),
                    _ if at < input.len() => {
                        input.remove(at);
                    }
                    _ => {}
                }
            }
        }
    }
}
