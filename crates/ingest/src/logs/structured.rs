//! One structured line into the model: a JSON object, or a logfmt line, with the field names
//! loggers actually use (`msg`, `lvl`, `@timestamp`, `requestId`, Python's `levelname`, …)
//! mapped onto [`LogEntry`]'s fields and everything else kept as free-form fields.

use std::borrow::Cow;

use chrono::{DateTime, Datelike, NaiveDateTime, TimeZone, Utc};
use hubmon_model::{DEFAULT_CATEGORY, Level, LogEntry, Timestamp, normalize_category};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::Limits;

pub(super) const TIMESTAMP_KEYS: [&str; 7] = ["timestamp", "ts", "time", "@timestamp", "t", "datetime", "asctime"];
pub(super) const LEVEL_KEYS: [&str; 7] =
    ["level", "lvl", "severity", "loglevel", "log_level", "levelname", "log.level"];
pub(super) const MESSAGE_KEYS: [&str; 7] = ["message", "msg", "@message", "text", "event", "body", "log"];
pub(super) const MODULE_KEYS: [&str; 5] = ["module", "logger", "logger_name", "target", "component"];
pub(super) const FUNCTION_KEYS: [&str; 4] = ["function", "func", "funcName", "fn"];
pub(super) const LINE_KEYS: [&str; 3] = ["line", "lineno", "lineNumber"];
pub(super) const REQUEST_ID_KEYS: [&str; 5] = ["request_id", "requestId", "requestID", "req_id", "x_request_id"];
pub(super) const USER_ID_KEYS: [&str; 4] = ["user_id", "userId", "uid", "user"];
pub(super) const SERVICE_KEYS: [&str; 4] = ["service", "service_name", "app", "application"];
pub(super) const HOST_KEYS: [&str; 2] = ["host", "hostname"];
pub(super) const CATEGORY_KEYS: [&str; 2] = ["category", "cat"];

/// The model's fields that a line's keys may fill, each with the key names loggers use for
/// it, most preferred first.
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

/// Each slot's key names, in [`Slot`] order.
const SLOT_KEYS: [(Slot, &[&str]); SLOTS] = [
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

/// Where each slot's keys start in [`KEY_NAMES`] (the last item is the total).
const SLOT_START: [usize; SLOTS + 1] = {
    let mut start = [0; SLOTS + 1];
    let mut slot = 0;
    while slot < SLOTS {
        start[slot + 1] = start[slot] + SLOT_KEYS[slot].1.len();
        slot += 1;
    }
    start
};

const KEY_COUNT: usize = SLOT_START[SLOTS];

/// Every slot key, numbered slot by slot and most preferred first within a slot, so that a
/// line's slot values fit in a fixed array instead of a map with allocated keys.
const KEY_NAMES: [&str; KEY_COUNT] = {
    let mut names = [""; KEY_COUNT];
    let mut slot = 0;
    while slot < SLOTS {
        let mut rank = 0;
        while rank < SLOT_KEYS[slot].1.len() {
            names[SLOT_START[slot] + rank] = SLOT_KEYS[slot].1[rank];
            rank += 1;
        }
        slot += 1;
    }
    names
};

/// The number of a slot key in [`KEY_NAMES`]. Every key of every line goes through here, so
/// it is a `match` (dispatched on length, then bytes) rather than a scan of eleven lists; a
/// test checks that it agrees with them.
fn key_id(key: &str) -> Option<usize> {
    let id = match key {
        "timestamp" => 0,
        "ts" => 1,
        "time" => 2,
        "@timestamp" => 3,
        "t" => 4,
        "datetime" => 5,
        "asctime" => 6,
        "level" => 7,
        "lvl" => 8,
        "severity" => 9,
        "loglevel" => 10,
        "log_level" => 11,
        "levelname" => 12,
        "log.level" => 13,
        "message" => 14,
        "msg" => 15,
        "@message" => 16,
        "text" => 17,
        "event" => 18,
        "body" => 19,
        "log" => 20,
        "category" => 21,
        "cat" => 22,
        "module" => 23,
        "logger" => 24,
        "logger_name" => 25,
        "target" => 26,
        "component" => 27,
        "function" => 28,
        "func" => 29,
        "funcName" => 30,
        "fn" => 31,
        "line" => 32,
        "lineno" => 33,
        "lineNumber" => 34,
        "request_id" => 35,
        "requestId" => 36,
        "requestID" => 37,
        "req_id" => 38,
        "x_request_id" => 39,
        "user_id" => 40,
        "userId" => 41,
        "uid" => 42,
        "user" => 43,
        "service" => 44,
        "service_name" => 45,
        "app" => 46,
        "application" => 47,
        "host" => 48,
        "hostname" => 49,
        _ => return None,
    };
    Some(id)
}

/// A value under a slot key. Strings stay borrowed from the line where they can: a timestamp,
/// level or category is only read, and a text slot takes ownership once, at the end.
enum SlotValue<'a> {
    Text(Cow<'a, str>),
    Other(Value),
}

impl SlotValue<'_> {
    /// Timestamps, levels and line numbers take any non-null value; text fields take strings,
    /// numbers and booleans (an object under `message` stays a free-form field).
    fn accepted_by(&self, slot: Slot) -> bool {
        match (self, slot) {
            (SlotValue::Text(_), _) => true,
            (SlotValue::Other(value), Slot::Timestamp | Slot::Level | Slot::Line) => !value.is_null(),
            (SlotValue::Other(value), _) => matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)),
        }
    }

    fn into_value(self) -> Value {
        match self {
            SlotValue::Text(text) => Value::String(text.into_owned()),
            SlotValue::Other(value) => value,
        }
    }

    /// The text of a value a text slot accepted.
    fn into_text(self) -> String {
        match self {
            SlotValue::Text(text) => text.into_owned(),
            SlotValue::Other(Value::String(text)) => text,
            SlotValue::Other(other) => other.to_string(),
        }
    }
}

impl From<Value> for SlotValue<'_> {
    fn from(value: Value) -> Self {
        match value {
            Value::String(text) => SlotValue::Text(Cow::Owned(text)),
            other => SlotValue::Other(other),
        }
    }
}

/// A line's fields, split the way [`from_object`] uses them: the values under slot keys in a
/// fixed array (no allocated key, no map node), every other key in the map that becomes
/// [`LogEntry::fields`]. Filling this straight from the JSON text skips the map of the whole
/// line that `from_object` would otherwise build and then take most keys out of again. It is
/// filled and emptied in place (it is large to move). Slot keys a slot did not take return
/// to the free-form map last, which only shows with serde_json's `preserve_order` (off).
pub struct Fields<'a> {
    slotted: [Option<SlotValue<'a>>; KEY_COUNT],
    rest: Map<String, Value>,
}

impl Default for Fields<'_> {
    fn default() -> Self {
        Self { slotted: [const { None }; KEY_COUNT], rest: Map::new() }
    }
}

impl<'a> Fields<'a> {
    pub fn extend_from_map(&mut self, object: Map<String, Value>) {
        for (key, value) in object {
            match key_id(&key) {
                Some(id) => self.slotted[id] = Some(value.into()),
                None => {
                    self.rest.insert(key, value);
                }
            }
        }
    }

    /// Adds the fields of `text` when it is one JSON object, the same ones as
    /// `serde_json::from_str::<Value>` would give; `false` (and nothing added) otherwise.
    pub fn extend_from_json(&mut self, text: &'a str) -> bool {
        let mut de = serde_json::Deserializer::from_str(text);
        if serde::de::DeserializeSeed::deserialize(FieldsSeed(self), &mut de).and_then(|()| de.end()).is_ok() {
            return true;
        }
        // Rare (the line is not JSON after all, or uses serde_json's private keys): the plain
        // parse decides, so the result stays exactly its.
        *self = Fields::default();
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => {
                self.extend_from_map(object);
                true
            }
            _ => false,
        }
    }

    pub fn contains_key(&self, key: &str) -> bool {
        match key_id(key) {
            Some(id) => self.slotted[id].is_some(),
            None => self.rest.contains_key(key),
        }
    }

    /// Adds `key` with `value` unless the key is there already; nothing is allocated for a
    /// key that is there or a slot key.
    pub fn insert_absent(&mut self, key: &str, value: &'a str) {
        match key_id(key) {
            Some(id) => {
                if self.slotted[id].is_none() {
                    self.slotted[id] = Some(SlotValue::Text(Cow::Borrowed(value)));
                }
            }
            None => {
                if !self.rest.contains_key(key) {
                    self.rest.insert(key.to_string(), Value::String(value.to_string()));
                }
            }
        }
    }

    pub fn insert(&mut self, key: &str, value: Value) {
        match key_id(key) {
            Some(id) => self.slotted[id] = Some(value.into()),
            None => {
                self.rest.insert(key.to_string(), value);
            }
        }
    }

    /// [`Fields::insert`] of a string, which a slot key keeps borrowed.
    pub fn insert_str(&mut self, key: &str, value: &'a str) {
        match key_id(key) {
            Some(id) => self.slotted[id] = Some(SlotValue::Text(Cow::Borrowed(value))),
            None => {
                self.rest.insert(key.to_string(), Value::String(value.to_string()));
            }
        }
    }

    /// Whether any of the keys a message is read from is present (with any value).
    pub fn has_message_key(&self) -> bool {
        let slot = Slot::Message as usize;
        self.slotted[SLOT_START[slot]..SLOT_START[slot + 1]].iter().any(Option::is_some)
    }

    /// Builds the entry and leaves the fields empty. `received` is used when the line has no
    /// timestamp. The message may come back empty; callers decide whether that is acceptable.
    pub fn take_entry(&mut self, received: Timestamp, limits: &Limits) -> Result<LogEntry, String> {
        // Per slot, its most preferred key whose value it accepts; the other slot keys stay
        // free-form fields.
        let mut chosen: [Option<(&'static str, SlotValue<'a>)>; SLOTS] = [const { None }; SLOTS];
        for (slot, (kind, _)) in SLOT_KEYS.iter().enumerate() {
            let accepted = |id: &usize| self.slotted[*id].as_ref().is_some_and(|value| value.accepted_by(*kind));
            if let Some(id) = (SLOT_START[slot]..SLOT_START[slot + 1]).find(accepted) {
                chosen[slot] = self.slotted[id].take().map(|value| (KEY_NAMES[id], value));
            }
        }
        let mut object = std::mem::take(&mut self.rest);
        for (id, value) in self.slotted.iter_mut().enumerate() {
            if let Some(value) = value.take() {
                object.insert(KEY_NAMES[id].to_string(), value.into_value());
            }
        }
        let mut take = |slot: Slot| chosen[slot as usize].take();
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
                let parsed = match &value {
                    SlotValue::Text(text) => parse_timestamp_text(text, received),
                    SlotValue::Other(value) => parse_timestamp(value, received),
                };
                let timestamp = parsed.map_err(|e| format!("field {key:?}: {e}"))?;
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
        let level = match level_field {
            Some((_, value)) => {
                let level = match &value {
                    SlotValue::Text(text) => Level::parse(text),
                    SlotValue::Other(value) => level_of(value),
                };
                level.unwrap_or_else(|| {
                    object.insert("level_original".into(), value.into_value());
                    Level::Info
                })
            }
            None => Level::Info,
        };
        // The entry is built whole rather than from `LogEntry::new`, whose default category
        // would be allocated only to be replaced.
        let category = match category {
            Some((_, SlotValue::Text(text))) => normalize_category(&text),
            Some((_, other)) => normalize_category(&other.into_text()),
            None => DEFAULT_CATEGORY.to_string(),
        };
        let line = line.and_then(|(key, value)| {
            let number = match &value {
                SlotValue::Text(text) => text.trim().parse().ok(),
                SlotValue::Other(value) => value.as_u64(),
            };
            match number {
                Some(line) => u32::try_from(line).ok(),
                None => {
                    object.insert(key.to_string(), value.into_value());
                    None
                }
            }
        });
        if object.len() > limits.max_fields {
            return Err(format!("{} fields, more than the limit of {}", object.len(), limits.max_fields));
        }
        Ok(LogEntry {
            timestamp,
            level,
            category,
            message: message.map(text).unwrap_or_default(),
            module: module.map(text),
            function: function.map(text),
            line,
            request_id: request_id.map(text),
            user_id: user_id.map(text),
            service: service.map(text),
            host: host.map(text),
            fields: object,
        })
    }
}

/// Fills [`Fields`] from a JSON object as it is read.
struct FieldsSeed<'f, 'a>(&'f mut Fields<'a>);

impl<'a> serde::de::DeserializeSeed<'a> for FieldsSeed<'_, 'a> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'a>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'a> serde::de::Visitor<'a> for FieldsSeed<'_, 'a> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'a>>(self, mut map: A) -> Result<(), A::Error> {
        let mut first = true;
        while let Some(Key(key)) = map.next_key()? {
            // serde_json's own Value reads a first key like "$serde_json::private::RawValue"
            // as something other than an object (with its raw_value feature, which the
            // server's build has); refusing it here hands such lines to that parser.
            if first && key.starts_with("$serde_json::private::") {
                return Err(serde::de::Error::custom("serde_json private key"));
            }
            first = false;
            // A repeated key keeps its last value, as in a map.
            match key_id(&key) {
                Some(id) => self.0.slotted[id] = Some(map.next_value_seed(SlotValueSeed)?),
                None => {
                    let value: Value = map.next_value()?;
                    self.0.rest.insert(key.into_owned(), value);
                }
            }
        }
        Ok(())
    }
}

/// Reads a slot key's value: a string borrowed where it has no escapes, anything else as
/// the `Value` serde_json's own visitor would make.
struct SlotValueSeed;

impl<'a> serde::de::DeserializeSeed<'a> for SlotValueSeed {
    type Value = SlotValue<'a>;

    fn deserialize<D: serde::Deserializer<'a>>(self, deserializer: D) -> Result<SlotValue<'a>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'a> serde::de::Visitor<'a> for SlotValueSeed {
    type Value = SlotValue<'a>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("any valid JSON value")
    }

    fn visit_borrowed_str<E>(self, text: &'a str) -> Result<SlotValue<'a>, E> {
        Ok(SlotValue::Text(Cow::Borrowed(text)))
    }

    fn visit_str<E>(self, text: &str) -> Result<SlotValue<'a>, E> {
        Ok(SlotValue::Text(Cow::Owned(text.to_owned())))
    }

    fn visit_string<E>(self, text: String) -> Result<SlotValue<'a>, E> {
        Ok(SlotValue::Text(Cow::Owned(text)))
    }

    fn visit_bool<E>(self, value: bool) -> Result<SlotValue<'a>, E> {
        Ok(SlotValue::Other(Value::Bool(value)))
    }

    fn visit_i64<E>(self, value: i64) -> Result<SlotValue<'a>, E> {
        Ok(SlotValue::Other(Value::from(value)))
    }

    fn visit_u64<E>(self, value: u64) -> Result<SlotValue<'a>, E> {
        Ok(SlotValue::Other(Value::from(value)))
    }

    fn visit_f64<E>(self, value: f64) -> Result<SlotValue<'a>, E> {
        // NaN and infinities become null, as in serde_json's own visitor.
        Ok(SlotValue::Other(Value::from(value)))
    }

    fn visit_unit<E>(self) -> Result<SlotValue<'a>, E> {
        Ok(SlotValue::Other(Value::Null))
    }

    fn visit_seq<A: serde::de::SeqAccess<'a>>(self, seq: A) -> Result<SlotValue<'a>, A::Error> {
        Value::deserialize(serde::de::value::SeqAccessDeserializer::new(seq)).map(SlotValue::Other)
    }

    fn visit_map<A: serde::de::MapAccess<'a>>(self, map: A) -> Result<SlotValue<'a>, A::Error> {
        Value::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(SlotValue::Other)
    }
}

/// An object key, borrowed from the line when it has no escapes (most keys are only
/// looked up, never stored).
struct Key<'a>(Cow<'a, str>);

impl<'a> Deserialize<'a> for Key<'a> {
    fn deserialize<D: serde::Deserializer<'a>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'a> serde::de::Visitor<'a> for KeyVisitor {
            type Value = Key<'a>;

            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, key: &'a str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }

            fn visit_str<E>(self, key: &str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }

            fn visit_string<E>(self, key: String) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Owned(key)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Builds an entry from a JSON object. `received` is used when the line has no timestamp.
/// The message may come back empty; callers decide whether that is acceptable.
pub fn from_object(object: Map<String, Value>, received: Timestamp, limits: &Limits) -> Result<LogEntry, String> {
    let mut fields = Fields::default();
    fields.extend_from_map(object);
    fields.take_entry(received, limits)
}

/// The text of a value a text slot accepted.
fn text((_, value): (&str, SlotValue<'_>)) -> String {
    value.into_text()
}

/// The level named by a JSON value: a name or alias, or a number (Python's 10…50,
/// syslog-like 0…7 is not guessed).
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

/// A timestamp in any format people send: RFC 3339, epoch seconds / ms / µs / ns (number or
/// text, told apart by size), `2024-05-01 12:00:00[.123]` (UTC), RFC 2822, syslog's
/// `May  1 12:00:00` (the year of `received`).
pub fn parse_timestamp(value: &Value, received: Timestamp) -> Result<Timestamp, String> {
    match value {
        Value::Number(n) => {
            if let Some(int) = n.as_i64() {
                return Ok(Timestamp(epoch_to_ms(int as f64, Some(int))));
            }
            let float = n.as_f64().ok_or("not a number")?;
            Ok(Timestamp(epoch_to_ms(float, None)))
        }
        Value::String(text) => parse_timestamp_text(text, received),
        other => Err(format!("{other} is not a timestamp")),
    }
}

pub fn parse_timestamp_text(text: &str, received: Timestamp) -> Result<Timestamp, String> {
    let text = text.trim();
    let bad = || format!("{text:?} is not a timestamp (use RFC 3339 or epoch seconds/ms/ns)");
    if let Ok(int) = text.parse::<i64>() {
        return Ok(Timestamp(epoch_to_ms(int as f64, Some(int))));
    }
    if let Ok(float) = text.parse::<f64>() {
        if !float.is_finite() {
            return Err(bad());
        }
        return Ok(Timestamp(epoch_to_ms(float, None)));
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(Timestamp(time.timestamp_millis()));
    }
    if let Ok(time) = DateTime::parse_from_rfc2822(text) {
        return Ok(Timestamp(time.timestamp_millis()));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S,%3f", "%Y/%m/%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(Timestamp(naive.and_utc().timestamp_millis()));
        }
    }
    syslog_date(text, received).ok_or_else(bad)
}

/// `Mmm dd hh:mm:ss` (RFC 3164), in the year of `received`, or the year before when that
/// would put it more than a day in the future (a December line read in January).
pub fn syslog_date(text: &str, received: Timestamp) -> Option<Timestamp> {
    let now = received.to_datetime();
    let collapsed: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for year in [now.year(), now.year() - 1] {
        let with_year = format!("{year} {collapsed}");
        if let Ok(naive) = NaiveDateTime::parse_from_str(&with_year, "%Y %b %d %H:%M:%S%.f") {
            let time = Utc.from_utc_datetime(&naive);
            if time.timestamp_millis() <= received.as_millis() + 86_400_000 {
                return Some(Timestamp(time.timestamp_millis()));
            }
        }
    }
    None
}

/// Epoch value to ms, guessing the unit by magnitude (seconds until year 5138, then ms,
/// µs, ns). `exact` keeps integer precision for ns values.
fn epoch_to_ms(value: f64, exact: Option<i64>) -> i64 {
    let magnitude = value.abs();
    match exact {
        Some(int) if magnitude >= 1e17 => int / 1_000_000,
        Some(int) if magnitude >= 1e14 => int / 1_000,
        Some(int) if magnitude >= 1e11 => int,
        _ if magnitude >= 1e17 => (value / 1e6) as i64,
        _ if magnitude >= 1e14 => (value / 1e3) as i64,
        _ if magnitude >= 1e11 => value as i64,
        _ => (value * 1000.0).round() as i64,
    }
}

/// Parses `key=value key2="quoted value" flag` pairs. `None` unless the whole line is logfmt
/// with at least two pairs (so prose with one `=` in it stays prose).
pub fn logfmt(line: &str) -> Option<Map<String, Value>> {
    let object: Map<String, Value> = hubmon_model::logfmt::strict(line)?
        .into_iter()
        .map(|(key, value)| (key, value.map_or(Value::Bool(true), Value::String)))
        .collect();
    let pairs = object.values().filter(|v| v.is_string()).count();
    (pairs >= 2).then_some(object)
}

/// A line of text into an entry: a JSON object or logfmt line is parsed into fields; any
/// other text becomes the message. An empty structured message falls back to the raw line.
pub fn parse_line(line: &str, received: Timestamp, limits: &Limits) -> Result<LogEntry, String> {
    if line.len() > limits.max_line_bytes {
        return Err(format!("line is {} bytes, more than the limit of {}", line.len(), limits.max_line_bytes));
    }
    let trimmed = line.trim();
    let mut fields = Fields::default();
    if trimmed.starts_with('{') && fields.extend_from_json(trimmed) {
        let mut entry = fields.take_entry(received, limits)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: Timestamp = Timestamp(1_714_564_800_000);

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn common_field_names_map_onto_the_model() {
        let entry = from_object(
            object(json!({"@timestamp": "2024-05-01T12:00:01Z", "lvl": "WARN", "msg": "slow", "logger": "db.pool",
                "funcName": "acquire", "lineno": 42, "requestId": "r-1", "userId": 7, "app": "shop",
                "hostname": "h1", "category": "DB", "status": 503})),
            NOW,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(entry.timestamp, Timestamp(1_714_564_801_000));
        assert_eq!(entry.level, Level::Warning);
        assert_eq!(entry.message, "slow");
        assert_eq!(entry.module.as_deref(), Some("db.pool"));
        assert_eq!(entry.function.as_deref(), Some("acquire"));
        assert_eq!(entry.line, Some(42));
        assert_eq!(entry.request_id.as_deref(), Some("r-1"));
        assert_eq!(entry.user_id.as_deref(), Some("7"));
        assert_eq!(entry.service.as_deref(), Some("shop"));
        assert_eq!(entry.host.as_deref(), Some("h1"));
        assert_eq!(entry.category, "database");
        assert_eq!(entry.fields.get("status"), Some(&json!(503)));
    }

    #[test]
    fn timestamps_in_every_format() {
        let expected = Timestamp(1_714_564_800_000);
        for value in [
            json!("2024-05-01T12:00:00Z"),
            json!("2024-05-01T14:00:00+02:00"),
            json!(1_714_564_800),
            json!(1_714_564_800.0),
            json!(1_714_564_800_000i64),
            json!(1_714_564_800_000_000i64),
            json!(1_714_564_800_000_000_000i64),
            json!("1714564800000000000"),
            json!("2024-05-01 12:00:00"),
            json!("2024-05-01 12:00:00,000"),
            json!("Wed, 01 May 2024 12:00:00 +0000"),
            json!("May  1 12:00:00"),
        ] {
            assert_eq!(parse_timestamp(&value, NOW), Ok(expected), "{value}");
        }
        assert!(parse_timestamp(&json!("yesterday"), NOW).is_err());
        assert!(parse_timestamp(&json!({"a": 1}), NOW).is_err());
    }

    #[test]
    fn logfmt_lines_are_structured_and_prose_is_not() {
        let entry = parse_line(
            r#"ts=2024-05-01T12:00:00Z level=error msg="upstream failed" status=502 retry"#,
            NOW,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(entry.level, Level::Error);
        assert_eq!(entry.message, "upstream failed");
        assert_eq!(entry.fields.get("status"), Some(&json!("502")));
        assert_eq!(entry.fields.get("retry"), Some(&json!(true)));
        let prose = parse_line("set x=1 before starting", NOW, &Limits::default()).unwrap();
        assert_eq!(prose.message, "set x=1 before starting");
        assert!(prose.fields.is_empty());
    }

    #[test]
    fn too_many_fields_and_oversized_lines_are_refused() {
        let mut many = Map::new();
        for i in 0..10_000 {
            many.insert(format!("f{i}"), json!(i));
        }
        let error = from_object(many, NOW, &Limits::default()).unwrap_err();
        assert!(error.contains("10000 fields"), "{error}");
        let long = "x".repeat(300 * 1024);
        assert!(parse_line(&long, NOW, &Limits::default()).unwrap_err().contains("limit"));
    }

    #[test]
    fn timestamps_outside_the_accepted_window_are_refused() {
        let limits = Limits {
            oldest: Some(Timestamp(NOW.0 - 1000)),
            newest: Some(Timestamp(NOW.0 + 1000)),
            ..Limits::default()
        };
        let at = |ts: i64| from_object(object(json!({"msg": "x", "ts": ts})), NOW, &limits);
        assert!(at(NOW.0).is_ok());
        assert!(at(NOW.0 - 5000).unwrap_err().contains("older than the log retention"));
        assert!(at(NOW.0 + 5000).unwrap_err().contains("future"));
        let no_time = from_object(object(json!({"msg": "x"})), NOW, &limits).unwrap();
        assert_eq!(no_time.timestamp, NOW);
    }

    #[test]
    fn unknown_levels_are_kept_as_info_with_the_original() {
        let entry = from_object(object(json!({"level": "LOUD", "msg": "x"})), NOW, &Limits::default()).unwrap();
        assert_eq!(entry.level, Level::Info);
        assert_eq!(entry.fields.get("level_original"), Some(&json!("LOUD")));
    }

    #[test]
    fn key_ids_follow_the_slot_lists() {
        for (slot, (_, names)) in SLOT_KEYS.iter().enumerate() {
            for (rank, name) in names.iter().enumerate() {
                let id = SLOT_START[slot] + rank;
                assert_eq!((key_id(name), KEY_NAMES[id]), (Some(id), *name));
            }
        }
        for other in ["", "Level", "messages", "msg ", "status", "@time"] {
            assert_eq!(key_id(other), None, "{other}");
        }
    }

    /// Random objects and lines give what the former `from_object` and `parse_line` (kept in
    /// `reference`) gave.
    #[test]
    fn entries_match_the_former_conversion() {
        let mut random = crate::logs::tests::Random::new(0x2545_f491_4f6c_dd1d);
        let tight =
            Limits { max_line_bytes: 120, max_fields: 3, oldest: Some(NOW), newest: Some(Timestamp(NOW.0 + 1)) };
        for _ in 0..3000 {
            let line = random.line();
            for limits in [Limits::default(), tight] {
                assert_eq!(
                    parse_line(&line, NOW, &limits),
                    crate::logs::reference::parse_line(&line, NOW, &limits),
                    "{line}"
                );
                if let Ok(Value::Object(object)) = serde_json::from_str::<Value>(&random.object_text()) {
                    assert_eq!(
                        from_object(object.clone(), NOW, &limits),
                        crate::logs::reference::from_object(object, NOW, &limits)
                    );
                }
            }
        }
    }

    #[test]
    fn json_lines_with_escapes_and_private_keys_read_like_values() {
        let mut fields = Fields::default();
        assert!(fields.extend_from_json(r#"{"m\u0073g":"caf\u00e9","level":"WARN","level":"error","n":1}"#));
        let entry = fields.take_entry(NOW, &Limits::default()).unwrap();
        assert_eq!((entry.message.as_str(), entry.level), ("café", Level::Error), "the last of a repeated key wins");
        assert_eq!(entry.fields.get("n"), Some(&json!(1)));
        // With serde_json's raw_value feature this is not an object; without it, it is one.
        let raw = r#"{"$serde_json::private::RawValue":"{\"msg\":\"inner\"}"}"#;
        let mut fields = Fields::default();
        assert_eq!(fields.extend_from_json(raw), serde_json::from_str::<Value>(raw).is_ok_and(|v| v.is_object()));
        for not_an_object in ["{", "{\"a\":1} x", "{\"a\":1e400}", "{\"a\":\"\u{1}\"}"] {
            let mut fields = Fields::default();
            assert!(!fields.extend_from_json(not_an_object), "{not_an_object}");
            assert!(fields.take_entry(NOW, &Limits::default()).unwrap().fields.is_empty());
        }
    }
}
