//! The Loki push API (`POST /loki/api/v1/push`), so promtail, Grafana Alloy, Vector, Fluent
//! Bit and the Loki client libraries ship to hubmon unchanged.
//!
//! Two encodings: JSON (`{"streams":[{"stream":{labels},"values":[["<ns>","line",{meta}]]}]}`)
//! and protobuf + snappy (`logproto.PushRequest`). Stream labels and structured metadata map
//! onto the model like a JSON line's fields (`level`, `service_name`, `host`, …); a line that
//! is itself JSON or logfmt is parsed too, and its own fields win over the labels.

use std::collections::BTreeMap;

use hubmon_model::{LogEntry, Timestamp};
use prost::Message;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::structured::{MESSAGE_KEYS, from_object, logfmt};
use super::{Limits, LineError, Parsed};

#[derive(Clone, PartialEq, Message)]
pub struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

#[derive(Clone, PartialEq, Message)]
pub struct StreamAdapter {
    /// Labels in selector form: `{job="api", level="info"}`.
    #[prost(string, tag = "1")]
    pub labels: String,
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
}

#[derive(Clone, PartialEq, Message)]
pub struct EntryAdapter {
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<ProtoTimestamp>,
    #[prost(string, tag = "2")]
    pub line: String,
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPair>,
}

#[derive(Clone, PartialEq, Message)]
pub struct LabelPair {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, PartialEq, Message)]
pub struct ProtoTimestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PushError {
    #[error("body is not valid snappy (block format): {0}")]
    Snappy(String),
    #[error("decompressed body would be {size} bytes, more than the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("body is not a valid Loki PushRequest protobuf: {0}")]
    Protobuf(String),
    #[error("body is not a valid Loki push JSON document: {0}")]
    Json(String),
}

#[derive(Deserialize)]
struct JsonPush {
    streams: Vec<JsonStream>,
}

#[derive(Deserialize)]
struct JsonStream {
    #[serde(default)]
    stream: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<Vec<Value>>,
}

/// Decodes a JSON push body. Entries are numbered across streams for rejections.
pub fn decode_json(body: &[u8], received: Timestamp, limits: &Limits) -> Result<Parsed, PushError> {
    let push: JsonPush = serde_json::from_slice(body).map_err(|e| PushError::Json(e.to_string()))?;
    let mut parsed = Parsed::default();
    let mut index = 0;
    for stream in push.streams {
        for value in stream.values {
            let result = json_entry(&stream.stream, value, received, limits);
            match result {
                Ok(entry) => parsed.entries.push(entry),
                Err(reason) => parsed.rejections.push(LineError { index, reason }),
            }
            index += 1;
        }
    }
    Ok(parsed)
}

fn json_entry(
    labels: &BTreeMap<String, String>,
    value: Vec<Value>,
    received: Timestamp,
    limits: &Limits,
) -> Result<LogEntry, String> {
    let mut items = value.into_iter();
    let (Some(Value::String(ts)), Some(Value::String(line))) = (items.next(), items.next()) else {
        return Err("expected [\"<unix ns>\", \"<line>\"] with both as strings".into());
    };
    let ns: i64 = ts.trim().parse().map_err(|_| format!("timestamp {ts:?} is not unix nanoseconds"))?;
    let mut metadata = BTreeMap::new();
    if let Some(Value::Object(meta)) = items.next() {
        for (k, v) in meta {
            if let Some(text) = hubmon_model::json_text(&v) {
                metadata.insert(k, text);
            }
        }
    }
    entry(labels, &metadata, ns, &line, received, limits)
}

/// Decodes a snappy-compressed protobuf push body, refusing to inflate past `max_decompressed`.
pub fn decode_protobuf(
    body: &[u8],
    max_decompressed: usize,
    received: Timestamp,
    limits: &Limits,
) -> Result<Parsed, PushError> {
    let size = snap::raw::decompress_len(body).map_err(|e| PushError::Snappy(e.to_string()))?;
    if size > max_decompressed {
        return Err(PushError::TooLarge { size, limit: max_decompressed });
    }
    let raw = snap::raw::Decoder::new().decompress_vec(body).map_err(|e| PushError::Snappy(e.to_string()))?;
    let push = PushRequest::decode(raw.as_slice()).map_err(|e| PushError::Protobuf(e.to_string()))?;
    let mut parsed = Parsed::default();
    let mut index = 0;
    for stream in push.streams {
        let labels = parse_labels(&stream.labels);
        for item in stream.entries {
            let result = match &labels {
                Err(reason) => Err(reason.clone()),
                Ok(labels) => {
                    let ts = item.timestamp.unwrap_or_default();
                    let ns = ts.seconds.saturating_mul(1_000_000_000).saturating_add(i64::from(ts.nanos));
                    let metadata = item.structured_metadata.into_iter().map(|p| (p.name, p.value)).collect();
                    entry(labels, &metadata, ns, &item.line, received, limits)
                }
            };
            match result {
                Ok(entry) => parsed.entries.push(entry),
                Err(reason) => parsed.rejections.push(LineError { index, reason }),
            }
            index += 1;
        }
    }
    Ok(parsed)
}

/// One Loki line with its stream labels and metadata into the model.
fn entry(
    labels: &BTreeMap<String, String>,
    metadata: &BTreeMap<String, String>,
    ns: i64,
    line: &str,
    received: Timestamp,
    limits: &Limits,
) -> Result<LogEntry, String> {
    if line.len() > limits.max_line_bytes {
        return Err(format!("line is {} bytes, more than the limit of {}", line.len(), limits.max_line_bytes));
    }
    let trimmed = line.trim();
    let structured = if trimmed.starts_with('{') {
        match serde_json::from_str::<Value>(trimmed) {
            Ok(Value::Object(fields)) => Some(fields),
            _ => None,
        }
    } else {
        logfmt(trimmed)
    };
    // The line's own fields win over the stream's labels and metadata, so the object starts
    // from them and the labels fill in what the line does not say.
    let (mut object, has_message) = match structured {
        Some(fields) => {
            let has_message = fields.keys().any(|k| MESSAGE_KEYS.contains(&k.as_str()));
            (fields, has_message)
        }
        None => (Map::new(), false),
    };
    // 0 means "now" to some clients; Loki itself would refuse it, hubmon uses receive time.
    if !object.contains_key("timestamp") {
        object.insert("timestamp".into(), if ns == 0 { Value::from(received.as_millis()) } else { Value::from(ns) });
    }
    for (k, v) in labels.iter().chain(metadata) {
        let key = match k.as_str() {
            "detected_level" => "level",
            "service_name" | "job" if !labels.contains_key("service") => "service",
            "filename" => "file",
            other => other,
        };
        if !has_message && matches!(key, "message" | "msg") {
            continue;
        }
        if !object.contains_key(key) {
            object.insert(key.to_string(), Value::String(v.clone()));
        }
    }
    if !has_message {
        object.insert("message".into(), Value::String(line.trim_end_matches(['\r', '\n']).to_string()));
    }
    from_object(object, received, limits)
}

/// Parses `{name="value", other="x"}` (the Prometheus/Loki selector form with only `=`).
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let bad = |why: &str| format!("stream labels {text:?}: {why}");
    let inner = text.trim().strip_prefix('{').and_then(|t| t.strip_suffix('}')).ok_or_else(|| bad("need {…}"))?;
    let mut labels = BTreeMap::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_alphanumeric() || c == '_' || c == '.' {
                name.push(c);
                chars.next();
            } else {
                break;
            }
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if name.is_empty() || chars.next() != Some('=') {
            return Err(bad("expected name=\"value\""));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('"') {
            return Err(bad("label values must be quoted"));
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some('t') => value.push('\t'),
                    Some(c) => value.push(c),
                    None => return Err(bad("unterminated value")),
                },
                Some('"') => break,
                Some(c) => value.push(c),
                None => return Err(bad("unterminated value")),
            }
        }
        labels.insert(name, value);
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubmon_model::Level;

    const NOW: Timestamp = Timestamp(1_714_564_800_000);

    #[test]
    fn json_push_maps_labels_and_structured_lines() {
        let body = r#"{"streams":[{"stream":{"service_name":"shop","level":"warn","host":"h1"},
            "values":[["1714564800123000000","plain text line"],
                      ["1714564800124000000","{\"level\":\"error\",\"msg\":\"boom\",\"request_id\":\"r9\"}", {"trace_id":"t1"}],
                      ["x","bad ts"], [1, 2]]}]}"#;
        let parsed = decode_json(body.as_bytes(), NOW, &Limits::default()).unwrap();
        assert_eq!(parsed.entries.len(), 2);
        let plain = &parsed.entries[0];
        assert_eq!(
            (plain.timestamp, plain.level, plain.message.as_str()),
            (Timestamp(1_714_564_800_123), Level::Warning, "plain text line")
        );
        assert_eq!(plain.service.as_deref(), Some("shop"));
        assert_eq!(plain.host.as_deref(), Some("h1"));
        let structured = &parsed.entries[1];
        assert_eq!((structured.level, structured.message.as_str()), (Level::Error, "boom"));
        assert_eq!(structured.request_id.as_deref(), Some("r9"));
        assert_eq!(structured.fields.get("trace_id"), Some(&Value::from("t1")));
        assert_eq!(parsed.rejections.iter().map(|r| r.index).collect::<Vec<_>>(), [2, 3]);
    }

    #[test]
    fn protobuf_push_round_trips() {
        let request = PushRequest {
            streams: vec![
                StreamAdapter {
                    labels: r#"{job="api", level="error", note="a \"q\""}"#.into(),
                    entries: vec![EntryAdapter {
                        timestamp: Some(ProtoTimestamp { seconds: 1_714_564_800, nanos: 5_000_000 }),
                        line: "level=info msg=\"hello there\" status=200".into(),
                        structured_metadata: vec![],
                    }],
                },
                StreamAdapter { labels: "job=broken".into(), entries: vec![EntryAdapter::default()] },
            ],
        };
        let body = snap::raw::Encoder::new().compress_vec(&request.encode_to_vec()).unwrap();
        let parsed = decode_protobuf(&body, 1 << 20, NOW, &Limits::default()).unwrap();
        assert_eq!(parsed.entries.len(), 1);
        let entry = &parsed.entries[0];
        assert_eq!(entry.timestamp, Timestamp(1_714_564_800_005));
        assert_eq!(entry.level, Level::Info, "the line's own level wins over the stream's");
        assert_eq!(entry.message, "hello there");
        assert_eq!(entry.service.as_deref(), Some("api"));
        assert_eq!(entry.fields.get("note"), Some(&Value::from("a \"q\"")));
        assert_eq!(parsed.rejections.len(), 1);
        assert!(matches!(
            decode_protobuf(b"junk", 1 << 20, NOW, &Limits::default()),
            Err(PushError::Snappy(_)) | Err(PushError::Protobuf(_))
        ));
    }
}
