//! One structured line into the model: a JSON object, or a logfmt line, with the field names
//! loggers actually use (`msg`, `lvl`, `@timestamp`, `requestId`, Python's `levelname`, …)
//! mapped onto [`LogEntry`]'s fields and everything else kept as free-form fields.

use chrono::{DateTime, Datelike, NaiveDateTime, TimeZone, Utc};
use hubmon_model::{Level, LogEntry, Timestamp, normalize_category};
use serde_json::{Map, Value};

use super::Limits;

const TIMESTAMP_KEYS: [&str; 7] = ["timestamp", "ts", "time", "@timestamp", "t", "datetime", "asctime"];
const LEVEL_KEYS: [&str; 7] = ["level", "lvl", "severity", "loglevel", "log_level", "levelname", "log.level"];
pub(super) const MESSAGE_KEYS: [&str; 7] = ["message", "msg", "@message", "text", "event", "body", "log"];
const MODULE_KEYS: [&str; 5] = ["module", "logger", "logger_name", "target", "component"];
const FUNCTION_KEYS: [&str; 4] = ["function", "func", "funcName", "fn"];
const LINE_KEYS: [&str; 3] = ["line", "lineno", "lineNumber"];
const REQUEST_ID_KEYS: [&str; 5] = ["request_id", "requestId", "requestID", "req_id", "x_request_id"];
const USER_ID_KEYS: [&str; 4] = ["user_id", "userId", "uid", "user"];
const SERVICE_KEYS: [&str; 4] = ["service", "service_name", "app", "application"];
const HOST_KEYS: [&str; 2] = ["host", "hostname"];
const CATEGORY_KEYS: [&str; 2] = ["category", "cat"];

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

impl Slot {
    /// The slot a key fills and the key's rank among that slot's names.
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

    /// Timestamps, levels and line numbers take any non-null value; text fields take strings,
    /// numbers and booleans (an object under `message` stays a free-form field).
    fn accepts(self, value: &Value) -> bool {
        match self {
            Slot::Timestamp | Slot::Level | Slot::Line => !value.is_null(),
            _ => matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)),
        }
    }
}

/// Builds an entry from a JSON object. `received` is used when the line has no timestamp.
/// The message may come back empty; callers decide whether that is acceptable.
pub fn from_object(mut object: Map<String, Value>, received: Timestamp, limits: &Limits) -> Result<LogEntry, String> {
    // One pass over the keys finds, per slot, its most preferred key that is present.
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

/// The text of a value a text slot accepted.
fn text((_, value): (String, Value)) -> String {
    match value {
        Value::String(s) => s,
        other => other.to_string(),
    }
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
}
