//! The Loki push API (`POST /loki/api/v1/push`), so promtail, Grafana Alloy, Vector, Fluent
//! Bit and the Loki client libraries ship to hubmon unchanged.
//!
//! Two encodings: JSON (`{"streams":[{"stream":{labels},"values":[["<ns>","line",{meta}]]}]}`)
//! and protobuf + snappy (`logproto.PushRequest`). Stream labels and structured metadata map
//! onto the model like a JSON line's fields (`level`, `service_name`, `host`, …); a line that
//! is itself JSON or logfmt is parsed too, and its own fields win over the labels.

use std::collections::BTreeMap;
use std::fmt;

use hubmon_model::{LogEntry, Timestamp};
use prost::Message;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::structured::{Fields, logfmt};
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

/// Bytes of a pushed JSON line with its timestamp and quoting, on the small side.
const ROUGH_PUSHED_LINE_BYTES: usize = 256;
/// A bound on the entries reserved for one body, whatever its size claims.
const MAX_RESERVED_LINES: usize = 65_536;

/// Decodes a JSON push body. Entries are numbered across streams for rejections.
pub fn decode_json(body: &[u8], received: Timestamp, limits: &Limits) -> Result<Parsed, PushError> {
    // Room for the lines of a typical body up front: growing a vector of entries this size
    // copied each one about once more.
    let expected_lines = (body.len() / ROUGH_PUSHED_LINE_BYTES).min(MAX_RESERVED_LINES);
    let parsed = Parsed { entries: Vec::with_capacity(expected_lines), rejections: Vec::new() };
    let mut decoder = JsonDecoder { parsed, index: 0, received, limits, ts: String::new(), line: String::new() };
    let mut de = serde_json::Deserializer::from_slice(body);
    PushSeed(&mut decoder).deserialize(&mut de).and_then(|()| de.end()).map_err(|e| PushError::Json(e.to_string()))?;
    Ok(decoder.parsed)
}

// The body is read with hand-written seeds in the shape `#[derive(Deserialize)]` gave
// `struct JsonPush { streams: Vec<JsonStream> }` and `struct JsonStream { #[serde(default)]
// stream, #[serde(default)] values }`, with the same error texts (tests compare them with the
// former decoder's, kept in `logs::reference`), so that each entry becomes a log entry as
// soon as it is read: the line is still in cache, a line with escapes (every JSON line) is
// copied into one reused buffer instead of its own allocation, and no `Vec<Vec<Value>>` of
// the whole body is built first.

/// What decoding one body carries from entry to entry.
struct JsonDecoder<'l> {
    parsed: Parsed,
    index: usize,
    received: Timestamp,
    limits: &'l Limits,
    /// Where a timestamp and a line with escapes are unescaped, reused for every entry.
    ts: String,
    line: String,
}

impl JsonDecoder<'_> {
    fn add(&mut self, labels: &BTreeMap<String, String>, entry: JsonEntry<'_>) {
        match json_entry(labels, entry, &self.ts, &self.line, self.received, self.limits) {
            Ok(entry) => self.parsed.entries.push(entry),
            Err(reason) => self.parsed.rejections.push(LineError { index: self.index, reason }),
        }
        self.index += 1;
    }
}

/// A struct field name among `names`, as its position (`None` for a field to ignore).
struct FieldSeed(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for FieldSeed {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed {
    type Value = Option<usize>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("field identifier")
    }

    fn visit_str<E>(self, name: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|field| *field == name))
    }
}

const PUSH_FIELDS: &[&str] = &["streams"];
const STREAM_FIELDS: &[&str] = &["stream", "values"];

/// `{"streams": [...]}` (or `[[...]]`, which serde accepts for a struct too).
struct PushSeed<'d, 'l>(&'d mut JsonDecoder<'l>);

impl<'de> DeserializeSeed<'de> for PushSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_struct("JsonPush", PUSH_FIELDS, self)
    }
}

impl<'de> Visitor<'de> for PushSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("struct JsonPush")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        match seq.next_element_seed(StreamsSeed(self.0))? {
            Some(()) => Ok(()),
            None => Err(de::Error::invalid_length(0, &"struct JsonPush with 1 element")),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = false;
        while let Some(field) = map.next_key_seed(FieldSeed(PUSH_FIELDS))? {
            if field.is_some() {
                if seen {
                    return Err(de::Error::duplicate_field("streams"));
                }
                map.next_value_seed(StreamsSeed(&mut *self.0))?;
                seen = true;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        if !seen {
            return Err(de::Error::missing_field("streams"));
        }
        Ok(())
    }
}

/// The array of streams.
struct StreamsSeed<'d, 'l>(&'d mut JsonDecoder<'l>);

impl<'de> DeserializeSeed<'de> for StreamsSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for StreamsSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(StreamSeed(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

/// `{"stream": {labels}, "values": [entries]}` (or `[{labels}, [entries]]`).
struct StreamSeed<'d, 'l>(&'d mut JsonDecoder<'l>);

impl<'de> DeserializeSeed<'de> for StreamSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_struct("JsonStream", STREAM_FIELDS, self)
    }
}

impl<'de> Visitor<'de> for StreamSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("struct JsonStream")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let labels: BTreeMap<String, String> = seq.next_element()?.unwrap_or_default();
        seq.next_element_seed(EntriesSeed { decoder: self.0, labels: &labels })?;
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut labels: Option<BTreeMap<String, String>> = None;
        let mut values_seen = false;
        // Entries sent before the stream's labels wait for them.
        let mut waiting: Vec<JsonEntry<'de>> = Vec::new();
        while let Some(field) = map.next_key_seed(FieldSeed(STREAM_FIELDS))? {
            match field {
                Some(0) => {
                    if labels.is_some() {
                        return Err(de::Error::duplicate_field("stream"));
                    }
                    labels = Some(map.next_value()?);
                }
                Some(_) => {
                    if values_seen {
                        return Err(de::Error::duplicate_field("values"));
                    }
                    values_seen = true;
                    match &labels {
                        Some(labels) => map.next_value_seed(EntriesSeed { decoder: &mut *self.0, labels })?,
                        None => waiting = map.next_value()?,
                    }
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let labels = labels.unwrap_or_default();
        for entry in waiting {
            self.0.add(&labels, entry);
        }
        Ok(())
    }
}

/// A stream's array of entries, each decoded as soon as it is read.
struct EntriesSeed<'d, 'l, 's> {
    decoder: &'d mut JsonDecoder<'l>,
    labels: &'s BTreeMap<String, String>,
}

impl<'de> DeserializeSeed<'de> for EntriesSeed<'_, '_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EntriesSeed<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            let JsonDecoder { ts, line, .. } = &mut *self.decoder;
            let Some(entry) = seq.next_element_seed(EntrySeed { ts: Some(ts), line: Some(line) })? else {
                return Ok(());
            };
            self.decoder.add(self.labels, entry);
        }
    }
}

/// One `["<ns>", "<line>", {metadata}]` entry. An entry of the wrong shape is still read in
/// full (as JSON values, so the body's syntax errors are those of a `Vec<Value>`) and becomes
/// that entry's rejection, not an error for the body.
struct JsonEntry<'de> {
    /// The timestamp and the line, when both are strings.
    text: Option<(Text<'de>, Text<'de>)>,
    metadata: Option<Map<String, Value>>,
}

/// Where an entry's string is: in the body (no escapes), in the decoder's buffer, or owned
/// (an entry that waits for its stream's labels).
enum Text<'de> {
    Borrowed(&'de str),
    Buffered,
    Owned(String),
}

impl Text<'_> {
    fn resolve<'a>(&'a self, buffer: &'a str) -> &'a str {
        match self {
            Text::Borrowed(text) => text,
            Text::Buffered => buffer,
            Text::Owned(text) => text,
        }
    }
}

impl<'de> Deserialize<'de> for JsonEntry<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        EntrySeed { ts: None, line: None }.deserialize(deserializer)
    }
}

/// Reads an entry, unescaping its timestamp and line into the buffers when given.
struct EntrySeed<'b> {
    ts: Option<&'b mut String>,
    line: Option<&'b mut String>,
}

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = JsonEntry<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<JsonEntry<'de>, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = JsonEntry<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        // What `Vec<Value>` says, so a body with a non-array entry fails with the same text.
        formatter.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonEntry<'de>, A::Error> {
        let mut buffers = [self.ts, self.line];
        let mut items: [Option<Element<'de>>; 3] = [None, None, None];
        let mut count = 0;
        loop {
            let buffer = buffers.get_mut(count).and_then(Option::take);
            let Some(element) = seq.next_element_seed(ElementSeed(buffer))? else {
                break;
            };
            if let Some(item) = items.get_mut(count) {
                *item = Some(element);
            }
            count += 1;
        }
        let [ts, line, metadata] = items;
        let text = match (ts, line) {
            (Some(Element::Text(ts)), Some(Element::Text(line))) => Some((ts, line)),
            _ => None,
        };
        let metadata = match metadata {
            Some(Element::Object(object)) => Some(object),
            _ => None,
        };
        Ok(JsonEntry { text, metadata })
    }
}

/// One element of an entry: only strings and objects matter; anything else is read as a
/// `Value` would be (same errors) and dropped.
enum Element<'de> {
    Text(Text<'de>),
    Object(Map<String, Value>),
    Other,
}

/// Reads an element, unescaping a string into the buffer when given.
struct ElementSeed<'b>(Option<&'b mut String>);

impl<'de> DeserializeSeed<'de> for ElementSeed<'_> {
    type Value = Element<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Element<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ElementSeed<'_> {
    type Value = Element<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any valid JSON value")
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Element<'de>, E> {
        Ok(Element::Text(Text::Borrowed(text)))
    }

    fn visit_str<E>(self, text: &str) -> Result<Element<'de>, E> {
        Ok(Element::Text(match self.0 {
            Some(buffer) => {
                buffer.clear();
                buffer.push_str(text);
                Text::Buffered
            }
            None => Text::Owned(text.to_owned()),
        }))
    }

    fn visit_string<E>(self, text: String) -> Result<Element<'de>, E> {
        Ok(Element::Text(Text::Owned(text)))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Element<'de>, E> {
        Ok(Element::Other)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Element<'de>, E> {
        Ok(Element::Other)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Element<'de>, E> {
        Ok(Element::Other)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Element<'de>, E> {
        Ok(Element::Other)
    }

    fn visit_unit<E>(self) -> Result<Element<'de>, E> {
        Ok(Element::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Element<'de>, A::Error> {
        Value::deserialize(SeqAccessDeserializer::new(seq))?;
        Ok(Element::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Element<'de>, A::Error> {
        match Value::deserialize(MapAccessDeserializer::new(map))? {
            Value::Object(object) => Ok(Element::Object(object)),
            _ => Ok(Element::Other),
        }
    }
}

fn json_entry(
    labels: &BTreeMap<String, String>,
    value: JsonEntry<'_>,
    ts_buffer: &str,
    line_buffer: &str,
    received: Timestamp,
    limits: &Limits,
) -> Result<LogEntry, String> {
    let Some((ts, line)) = &value.text else {
        return Err("expected [\"<unix ns>\", \"<line>\"] with both as strings".into());
    };
    let (ts, line) = (ts.resolve(ts_buffer), line.resolve(line_buffer));
    let ns: i64 = ts.trim().parse().map_err(|_| format!("timestamp {ts:?} is not unix nanoseconds"))?;
    let mut metadata = BTreeMap::new();
    if let Some(meta) = value.metadata {
        for (k, v) in meta {
            if let Some(text) = hubmon_model::json_text(&v) {
                metadata.insert(k, text);
            }
        }
    }
    entry(labels, &metadata, ns, line, received, limits)
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
    let lines = push.streams.iter().map(|s| s.entries.len()).sum();
    let mut parsed = Parsed { entries: Vec::with_capacity(lines), rejections: Vec::new() };
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
    // The line's own fields win over the stream's labels and metadata, so the object starts
    // from them and the labels fill in what the line does not say.
    let mut object = Fields::default();
    if trimmed.starts_with('{') {
        object.extend_from_json(trimmed);
    } else if let Some(fields) = logfmt(trimmed) {
        object.extend_from_map(fields);
    }
    let has_message = object.has_message_key();
    // 0 means "now" to some clients; Loki itself would refuse it, hubmon uses receive time.
    if !object.contains_key("timestamp") {
        object.insert("timestamp", if ns == 0 { Value::from(received.as_millis()) } else { Value::from(ns) });
    }
    for (k, v) in labels.iter().chain(metadata) {
        let key = match k.as_str() {
            "detected_level" => "level",
            "service_name" if !labels.contains_key("service") => "service",
            other => other,
        };
        if !has_message && matches!(key, "message" | "msg") {
            continue;
        }
        object.insert_absent(key, v);
        // promtail's `job` stays a field of its own, so `{job="varlogs"}` finds the lines, and
        // also names the service when nothing else does.
        if key == "job" && !labels.contains_key("service") {
            object.insert_absent("service", v);
        }
    }
    if !has_message {
        object.insert_str("message", line.trim_end_matches(['\r', '\n']));
    }
    object.take_entry(received, limits)
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

    fn outcome(result: Result<Parsed, PushError>) -> Result<(Vec<LogEntry>, Vec<LineError>), PushError> {
        result.map(|parsed| (parsed.entries, parsed.rejections))
    }

    /// The decoder gives what the former `Vec<Vec<Value>>` one (kept in `reference`) gave.
    fn same_as_reference(body: &[u8], limits: &Limits) {
        assert_eq!(
            outcome(decode_json(body, NOW, limits)),
            outcome(crate::logs::reference::decode_json(body, NOW, limits)),
            "{}",
            String::from_utf8_lossy(body)
        );
    }

    #[test]
    fn odd_entries_are_rejected_one_by_one() {
        let body = r#"{"streams":[{"stream":{"job":"j"},"values":[
            ["1714564800123000000"],
            ["1714564800123000000","four","not meta",{"x":1}],
            [1714564800123000000,"number ts"],
            ["1714564800123000000","meta is a string","trace"],
            ["1714564800123000000","meta is an array",[1,2]],
            ["17145648001230000\u0030\u0030","escaped \"line\" \u00e9 \ud83d\ude00\n"],
            [],
            ["1714564800123000000","{\"msg\":\"caf\\u00e9\",\"lvl\":\"WARN\",\"k\\u0065y\":\"v\"}"],
            ["1714564800123000000",null],
            [" 1714564800123000000 ","padded ts"]]}]}"#;
        let parsed = decode_json(body.as_bytes(), NOW, &Limits::default()).unwrap();
        let shape = "expected [\"<unix ns>\", \"<line>\"] with both as strings";
        assert_eq!(
            parsed.rejections,
            [0, 2, 6, 8].map(|index| LineError { index, reason: shape.into() }),
            "an entry of the wrong shape is that entry's rejection, not the body's"
        );
        let messages: Vec<&str> = parsed.entries.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages,
            ["four", "meta is a string", "meta is an array", "escaped \"line\" \u{e9} \u{1f600}", "café", "padded ts"]
        );
        let fields: Vec<&String> = parsed.entries[0].fields.keys().collect();
        assert_eq!(fields, ["job"], "a fourth element is not metadata; the stream's job label is a field");
        assert_eq!(parsed.entries[0].service.as_deref(), Some("j"));
        assert_eq!(parsed.entries[3].timestamp, Timestamp(1_714_564_800_123));
        assert_eq!(
            (parsed.entries[4].level, parsed.entries[4].fields.get("key")),
            (Level::Warning, Some(&Value::from("v")))
        );
        same_as_reference(body.as_bytes(), &Limits::default());
    }

    #[test]
    fn bad_timestamps_and_bad_bodies_give_the_same_reasons() {
        let parsed =
            decode_json(br#"{"streams":[{"values":[["x","a"],["12\u0061","b"],["",""]]}]}"#, NOW, &Limits::default())
                .unwrap();
        let reasons: Vec<&str> = parsed.rejections.iter().map(|r| r.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "timestamp \"x\" is not unix nanoseconds",
                "timestamp \"12a\" is not unix nanoseconds",
                "timestamp \"\" is not unix nanoseconds"
            ]
        );
        for body in [
            "",
            "[]",
            "{}",
            "null",
            r#"{"streams":{}}"#,
            r#"{"streams":[],"streams":[]}"#,
            r#"{"streams":[{"stream":{},"stream":{}}]}"#,
            r#"{"streams":[{"values":[],"values":[]}]}"#,
            r#"{"streams":[{"stream":{"a":1},"values":[]}]}"#,
            r#"{"streams":[{"values":["x"]}]}"#,
            r#"{"streams":[{"values":[{"a":1}]}]}"#,
            r#"{"streams":[{"values":[["1","a",{"n":1e400}]]}]}"#,
            r#"{"streams":[{"values":[["1","a"],]}]}"#,
            r#"{"streams":[{"values":[["1","a" "b"]]}]}"#,
            r#"{"streams":[["not labels"]]}"#,
            r#"{"streams":[[{},[],3]]}"#,
            r#"{"streams":[]} x"#,
            "{\"streams\":[{\"values\":[[\"1\",\"\u{1}\"]]}]}",
        ] {
            let error = decode_json(body.as_bytes(), NOW, &Limits::default()).unwrap_err();
            assert!(matches!(error, PushError::Json(_)), "{body}: {error}");
            same_as_reference(body.as_bytes(), &Limits::default());
        }
    }

    #[test]
    fn envelope_shapes_serde_accepts_still_decode() {
        for body in [
            r#"{"streams":[{"values":[["1714564800123000000","a"]],"stream":{"service_name":"late"}}]}"#,
            r#"{"streams":[[{"service_name":"s"},[["1714564800123000000","a"]]]]}"#,
            r#"[[{"stream":{"job":"j"},"values":[["1714564800123000000","a"]]}]]"#,
            r#"{"x":[1,{"y":null}],"streams":[{"extra":true,"values":[["1714564800123000000","a"]]}],"z":"w"}"#,
            r#"{"streams":[{"stream":{"job":"j"}},{"values":[]},[],[{}]]}"#,
            r#"{"stre\u0061ms":[{"v\u0061lues":[["1714564800123000000","a"]]}]}"#,
        ] {
            let parsed = decode_json(body.as_bytes(), NOW, &Limits::default()).unwrap();
            assert!(parsed.rejections.is_empty(), "{body}");
            same_as_reference(body.as_bytes(), &Limits::default());
        }
        let late = decode_json(
            br#"{"streams":[{"values":[["1714564800123000000","a"]],"stream":{"service_name":"late"}}]}"#,
            NOW,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(late.entries[0].service.as_deref(), Some("late"), "labels after the values still apply");
    }

    /// Random bodies, valid and mutated, decode exactly as the former decoder decoded them.
    #[test]
    fn decoding_matches_the_former_decoder() {
        let mut random = crate::logs::tests::Random::new(0x9e37_79b9_7f4a_7c15);
        let tight = Limits {
            max_line_bytes: 120,
            max_fields: 3,
            oldest: Some(Timestamp(NOW.0 - 86_400_000)),
            newest: Some(Timestamp(NOW.0 + 60_000)),
        };
        for round in 0..3000 {
            let mut body = random.push_body().into_bytes();
            if round % 3 == 0 {
                random.mutate(&mut body);
            }
            same_as_reference(&body, &Limits::default());
            same_as_reference(&body, &tight);
        }
    }
}
