//! The Loki JSON decoder and `from_object` as they were before they were made faster (a
//! `Vec<Vec<Value>>` envelope, a `Map` per line), kept only for tests to compare the fast
//! versions against, entry by entry and error by error.

use std::collections::BTreeMap;

use hubmon_model::{Level, LogEntry, Timestamp, normalize_category};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::loki::PushError;
// The key names are the specification both decoders share, not the mechanics under test.
use super::structured::{
    CATEGORY_KEYS, FUNCTION_KEYS, HOST_KEYS, LEVEL_KEYS, LINE_KEYS, MESSAGE_KEYS, MODULE_KEYS, REQUEST_ID_KEYS,
    SERVICE_KEYS, TIMESTAMP_KEYS, USER_ID_KEYS, logfmt, parse_timestamp,
};
use super::{Limits, LineError, Parsed};

#[derive(Clone, Copy)]
enum Slot {
    Timestamp,
    Level,
    Message,
    Category,
    Module,
    Function,
    Line,
    RequestId,
    UserId,
    Service,
    Host,
}

const SLOTS: usize = 11;

impl Slot {
    fn of(key: &str) -> Option<(Slot, usize)> {
        let lists: [(Slot, &[&str]); SLOTS] = [
            (Slot::Timestamp, &TIMESTAMP_KEYS),
            (Slot::Level, &LEVEL_KEYS),
            (Slot::Message, &MESSAGE_KEYS),
            (Slot::Category, &CATEGORY_KEYS),
            (Slot::Module, &MODULE_KEYS),
            (Slot::Function, &FUNCTION_KEYS),
            (Slot::Line, &LINE_KEYS),
            (Slot::RequestId, &REQUEST_ID_KEYS),
            (Slot::UserId, &USER_ID_KEYS),
            (Slot::Service, &SERVICE_KEYS),
            (Slot::Host, &HOST_KEYS),
        ];
        lists.iter().find_map(|(slot, names)| names.iter().position(|n| *n == key).map(|rank| (*slot, rank)))
    }

    fn accepts(self, value: &Value) -> bool {
        match self {
            Slot::Timestamp | Slot::Level | Slot::Line => !value.is_null(),
            _ => matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)),
        }
    }
}

pub fn from_object(mut object: Map<String, Value>, received: Timestamp, limits: &Limits) -> Result<LogEntry, String> {
    let mut chosen: [Option<(usize, &str)>; SLOTS] = [None; SLOTS];
    for (key, value) in &object {
        if let Some((slot, rank)) = Slot::of(key)
            && slot.accepts(value)
            && chosen[slot as usize].is_none_or(|(best, _)| rank < best)
        {
            chosen[slot as usize] = Some((rank, key.as_str()));
        }
    }
    let keys: [Option<String>; SLOTS] = chosen.map(|c| c.map(|(_, key)| key.to_string()));
    let mut take = |slot: Slot| keys[slot as usize].as_ref().and_then(|key| object.remove_entry(key.as_str()));
    let timestamp_field = take(Slot::Timestamp);
    let level_field = take(Slot::Level);
    let message = take(Slot::Message);
    let category = take(Slot::Category);
    let module = take(Slot::Module);
    let function = take(Slot::Function);
    let line = take(Slot::Line);
    let request_id = take(Slot::RequestId);
    let user_id = take(Slot::UserId);
    let service = take(Slot::Service);
    let host = take(Slot::Host);

    let timestamp = match timestamp_field {
        Some((key, value)) => {
            let timestamp = parse_timestamp(&value, received).map_err(|e| format!("field {key:?}: {e}"))?;
            if limits.oldest.is_some_and(|oldest| timestamp < oldest) {
                return Err(format!("timestamp {timestamp} is older than the log retention allows"));
            }
            if limits.newest.is_some_and(|newest| timestamp > newest) {
                return Err(format!("timestamp {timestamp} is too far in the future (check its unit)"));
            }
            timestamp
        }
        None => received,
    };
    let mut entry = LogEntry::new(timestamp, Level::Info, String::new());
    if let Some((_, value)) = level_field {
        entry.level = level_of(&value).unwrap_or_else(|| {
            object.insert("level_original".into(), value);
            Level::Info
        });
    }
    if let Some(value) = message.map(text) {
        entry.message = value;
    }
    if let Some(value) = category.map(text) {
        entry.category = normalize_category(&value);
    }
    entry.module = module.map(text);
    entry.function = function.map(text);
    if let Some((key, value)) = line {
        match value.as_u64().or_else(|| value.as_str().and_then(|s| s.trim().parse().ok())) {
            Some(line) => entry.line = u32::try_from(line).ok(),
            None => {
                object.insert(key, value);
            }
        }
    }
    entry.request_id = request_id.map(text);
    entry.user_id = user_id.map(text);
    entry.service = service.map(text);
    entry.host = host.map(text);
    if object.len() > limits.max_fields {
        return Err(format!("{} fields, more than the limit of {}", object.len(), limits.max_fields));
    }
    entry.fields = object;
    Ok(entry)
}

fn text((_, value): (String, Value)) -> String {
    match value {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

fn level_of(value: &Value) -> Option<Level> {
    match value {
        Value::String(text) => Level::parse(text),
        Value::Number(n) => match n.as_u64()? {
            0..=10 => Some(Level::Debug),
            11..=20 => Some(Level::Info),
            21..=30 => Some(Level::Warning),
            31..=40 => Some(Level::Error),
            _ => Some(Level::Critical),
        },
        _ => None,
    }
}

pub fn parse_line(line: &str, received: Timestamp, limits: &Limits) -> Result<LogEntry, String> {
    if line.len() > limits.max_line_bytes {
        return Err(format!("line is {} bytes, more than the limit of {}", line.len(), limits.max_line_bytes));
    }
    let trimmed = line.trim();
    if trimmed.starts_with('{')
        && let Ok(Value::Object(object)) = serde_json::from_str::<Value>(trimmed)
    {
        let mut entry = from_object(object, received, limits)?;
        if entry.message.is_empty() {
            entry.message = trimmed.to_string();
        }
        return Ok(entry);
    }
    if let Some(object) = logfmt(trimmed) {
        let mut entry = from_object(object, received, limits)?;
        if entry.message.is_empty() {
            entry.message = trimmed.to_string();
        }
        return Ok(entry);
    }
    Ok(LogEntry::new(received, Level::Info, line.trim_end_matches(['\r', '\n'])))
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

pub fn entry(
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
    let (mut object, has_message) = match structured {
        Some(fields) => {
            let has_message = fields.keys().any(|k| MESSAGE_KEYS.contains(&k.as_str()));
            (fields, has_message)
        }
        None => (Map::new(), false),
    };
    if !object.contains_key("timestamp") {
        object.insert("timestamp".into(), if ns == 0 { Value::from(received.as_millis()) } else { Value::from(ns) });
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
        let also = (key == "job" && !labels.contains_key("service")).then_some("service");
        for key in std::iter::once(key).chain(also) {
            if !object.contains_key(key) {
                object.insert(key.to_string(), Value::String(v.clone()));
            }
        }
    }
    if !has_message {
        object.insert("message".into(), Value::String(line.trim_end_matches(['\r', '\n']).to_string()));
    }
    from_object(object, received, limits)
}
