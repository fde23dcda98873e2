//! The body of `POST /api/v1/logs`: one JSON object, an array of them, `{"logs": [...]}`, or
//! NDJSON (one object per line). Each object becomes an entry or a rejection with its index
//! (the array position, or the 0-based line number for NDJSON).

use hubmon_model::Timestamp;
use serde_json::Value;

use super::structured::from_object;
use super::{Limits, LineError, Parsed};

/// Why a body could not be read at all (nothing in it is stored).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("body is empty; send a JSON object, an array of objects, or NDJSON")]
    Empty,
    #[error("body is not valid JSON: {0}")]
    Json(String),
    #[error("body must be a JSON object, an array of objects, or NDJSON; got {0}")]
    Shape(&'static str),
}

/// Parses a body. `ndjson` forces line-by-line reading (Content-Type `application/x-ndjson`);
/// otherwise a body that is not one JSON document is read as NDJSON when it has several lines.
pub fn parse(body: &[u8], ndjson: bool, received: Timestamp, limits: &Limits) -> Result<Parsed, BodyError> {
    let first = body.iter().position(|b| !b.is_ascii_whitespace()).ok_or(BodyError::Empty)?;
    if !ndjson {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Array(items)) => return Ok(objects(items, received, limits)),
            Ok(Value::Object(mut object)) => {
                if object.len() == 1
                    && let Some(Value::Array(items)) = object.remove("logs")
                {
                    return Ok(objects(items, received, limits));
                }
                return Ok(objects(vec![Value::Object(object)], received, limits));
            }
            Ok(other) => return Err(BodyError::Shape(kind(&other))),
            Err(error) => {
                let multi_line = body[first..].iter().filter(|b| **b == b'\n').count() > 0;
                if !(multi_line && body[first] == b'{') {
                    return Err(BodyError::Json(error.to_string()));
                }
            }
        }
    }
    Ok(lines(body, received, limits))
}

fn objects(items: Vec<Value>, received: Timestamp, limits: &Limits) -> Parsed {
    let mut parsed = Parsed::default();
    for (index, item) in items.into_iter().enumerate() {
        match entry(item, None, received, limits) {
            Ok(entry) => parsed.entries.push(entry),
            Err(reason) => parsed.rejections.push(LineError { index, reason }),
        }
    }
    parsed
}

fn lines(body: &[u8], received: Timestamp, limits: &Limits) -> Parsed {
    let mut parsed = Parsed::default();
    for (index, raw) in body.split(|b| *b == b'\n').enumerate() {
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let result = match std::str::from_utf8(raw) {
            Err(error) => Err(format!("line is not valid UTF-8 (at byte {})", error.valid_up_to())),
            Ok(_) if raw.len() > limits.max_line_bytes => {
                Err(format!("line is {} bytes, more than the limit of {}", raw.len(), limits.max_line_bytes))
            }
            Ok(text) => match serde_json::from_str::<Value>(text) {
                Ok(value) => entry(value, Some(raw.len()), received, limits),
                Err(error) => Err(format!("not valid JSON: {error}")),
            },
        };
        match result {
            Ok(entry) => parsed.entries.push(entry),
            Err(reason) => parsed.rejections.push(LineError { index, reason }),
        }
    }
    parsed
}

fn entry(
    value: Value,
    size: Option<usize>,
    received: Timestamp,
    limits: &Limits,
) -> Result<hubmon_model::LogEntry, String> {
    let Value::Object(object) = value else {
        return Err(format!("expected a JSON object, got {}", kind(&value)));
    };
    let size = size.unwrap_or_else(|| serde_json::to_string(&object).map_or(0, |s| s.len()));
    if size > limits.max_line_bytes {
        return Err(format!("line is {size} bytes, more than the limit of {}", limits.max_line_bytes));
    }
    let entry = from_object(object, received, limits)?;
    if entry.message.trim().is_empty() {
        return Err("no message: set \"message\" (or \"msg\")".into());
    }
    Ok(entry)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_714_564_800_000);

    fn parse_ok(body: &str, ndjson: bool) -> Parsed {
        parse(body.as_bytes(), ndjson, NOW, &Limits::default()).unwrap()
    }

    #[test]
    fn object_array_wrapper_and_ndjson() {
        assert_eq!(parse_ok(r#"{"message":"a"}"#, false).entries.len(), 1);
        assert_eq!(parse_ok(r#"[{"message":"a"},{"msg":"b"}]"#, false).entries.len(), 2);
        assert_eq!(parse_ok(r#"{"logs":[{"message":"a"}]}"#, false).entries.len(), 1);
        let parsed = parse_ok("{\"message\":\"a\"}\n\n{\"msg\":\"b\"}\n", false);
        assert_eq!(parsed.entries.len(), 2);
        assert!(parsed.rejections.is_empty());
        assert_eq!(parsed.entries[0].timestamp, NOW, "no timestamp means receive time");
    }

    #[test]
    fn bad_lines_are_refused_one_by_one() {
        let mut body = b"{\"message\":\"good\"}\n{not json}\n\"text\"\n{\"level\":\"info\"}\n".to_vec();
        body.extend_from_slice(b"{\"message\":\"\xff\xfe\"}\n");
        let deep = format!("{}1{}", "{\"a\":".repeat(200), "}".repeat(200));
        body.extend_from_slice(format!("{deep}\n{{\"message\":\"also good\"}}\n").as_bytes());
        let parsed = parse(&body, true, NOW, &Limits::default()).unwrap();
        assert_eq!(parsed.entries.len(), 2);
        let reasons: Vec<(usize, &str)> = parsed.rejections.iter().map(|r| (r.index, r.reason.as_str())).collect();
        assert_eq!(reasons.len(), 5, "{reasons:?}");
        assert!(reasons[0].0 == 1 && reasons[0].1.starts_with("not valid JSON"));
        assert!(reasons[1].1.contains("a string"));
        assert!(reasons[2].1.contains("no message"));
        assert!(reasons[3].1.contains("UTF-8"));
        assert!(reasons[4].1.contains("recursion limit"), "{:?}", reasons[4]);
    }

    #[test]
    fn unreadable_bodies_are_errors() {
        assert_eq!(parse(b"  ", false, NOW, &Limits::default()).unwrap_err(), BodyError::Empty);
        assert!(matches!(parse(b"[1,", false, NOW, &Limits::default()), Err(BodyError::Json(_))));
        assert_eq!(parse(b"42", false, NOW, &Limits::default()).unwrap_err(), BodyError::Shape("a number"));
    }
}
