//! The binary encodings shared by the WAL and the segments: varints, the stable key hash,
//! field values, and one stored line. `docs/format.md` has the bytes.
//!
//! Decoding never panics on bad bytes: every reader returns `None` (the caller turns it into
//! an error naming the file) when the input ends early or holds an unknown tag.

use hubmon_model::{Level, LogEntry, Timestamp};
use serde_json::Value;

use crate::StoredEntry;

/// First byte of a binary WAL record; a JSON record (format 1) starts with `{`.
pub(crate) const ENTRY_TAG: u8 = 1;

pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(crate) fn get_varint(data: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    let mut shift = 0;
    loop {
        let byte = *data.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

pub(crate) fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

pub(crate) fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

pub(crate) fn get_bytes<'a>(data: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    let len = usize::try_from(get_varint(data, at)?).ok()?;
    let end = at.checked_add(len)?;
    let bytes = data.get(*at..end)?;
    *at = end;
    Some(bytes)
}

pub(crate) fn get_str<'a>(data: &'a [u8], at: &mut usize) -> Option<&'a str> {
    std::str::from_utf8(get_bytes(data, at)?).ok()
}

/// The index's key hash. It is part of the segment format (segments store its low 32 bits),
/// so it is defined here rather than borrowed from a hasher whose output may change between
/// releases: 8 bytes at a time, multiply-rotate, then a final avalanche so the low bits
/// depend on every input bit.
pub(crate) fn hash64(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = (bytes.len() as u64).wrapping_mul(K) ^ 0x2545_F491_4F6C_DD1D;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(word)).wrapping_mul(K).rotate_left(31);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(word)).wrapping_mul(K).rotate_left(31);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^ (h >> 33)
}

/// The on-disk (segment) form of a key hash.
pub(crate) fn hash32(hash: u64) -> u32 {
    hash as u32
}

/// Value tags. `ABSENT` marks a column with no value on a row (a missing optional field).
pub(crate) const ABSENT: u8 = 0;
const NULL: u8 = 1;
const FALSE: u8 = 2;
const TRUE: u8 = 3;
const INT: u8 = 4;
const UINT: u8 = 5;
const FLOAT: u8 = 6;
const STRING: u8 = 7;
/// Arrays and objects, as their JSON text.
const JSON: u8 = 8;
/// A string ending in lower-case hex digits (request and trace ids, hashes): the prefix,
/// then the hex digits as bytes, half the length and no longer mixed into the text's
/// entropy coding.
const HEX: u8 = 9;
/// Hex suffixes shorter than this stay text (the tag and length would cost more).
const MIN_HEX_DIGITS: usize = 8;

/// Writes a string value, as [`HEX`] when it ends in enough lower-case hex digits.
fn put_string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let digits = bytes.iter().rev().take_while(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')).count() & !1;
    if digits < MIN_HEX_DIGITS {
        out.push(STRING);
        put_bytes(out, bytes);
        return;
    }
    let (prefix, hex) = bytes.split_at(bytes.len() - digits);
    out.push(HEX);
    put_bytes(out, prefix);
    put_varint(out, (digits / 2) as u64);
    out.extend(hex.chunks_exact(2).map(|pair| (nibble(pair[0]) << 4) | nibble(pair[1])));
}

fn nibble(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        _ => digit - b'a' + 10,
    }
}

fn get_hex(data: &[u8], at: &mut usize) -> Option<String> {
    let prefix = get_str(data, at)?;
    let len = usize::try_from(get_varint(data, at)?).ok()?;
    let bytes = data.get(*at..at.checked_add(len)?)?;
    *at += len;
    let mut text = String::with_capacity(prefix.len() + len * 2);
    text.push_str(prefix);
    for byte in bytes {
        for digit in [byte >> 4, byte & 15] {
            text.push(char::from(if digit < 10 { b'0' + digit } else { b'a' + digit - 10 }));
        }
    }
    Some(text)
}

pub(crate) fn put_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.push(NULL),
        Value::Bool(false) => out.push(FALSE),
        Value::Bool(true) => out.push(TRUE),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push(INT);
                put_varint(out, zigzag(i));
            } else if let Some(u) = n.as_u64() {
                out.push(UINT);
                put_varint(out, u);
            } else {
                out.push(FLOAT);
                out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_bits().to_le_bytes());
            }
        }
        Value::String(s) => put_string(out, s),
        other => {
            out.push(JSON);
            put_bytes(out, other.to_string().as_bytes());
        }
    }
}

pub(crate) fn put_str_value(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(s) => put_string(out, s),
        None => out.push(ABSENT),
    }
}

/// Reads one tagged value; `Some(None)` is [`ABSENT`].
pub(crate) fn get_value(data: &[u8], at: &mut usize) -> Option<Option<Value>> {
    let tag = *data.get(*at)?;
    *at += 1;
    Some(Some(match tag {
        ABSENT => return Some(None),
        NULL => Value::Null,
        FALSE => Value::Bool(false),
        TRUE => Value::Bool(true),
        INT => Value::from(unzigzag(get_varint(data, at)?)),
        UINT => Value::from(get_varint(data, at)?),
        FLOAT => {
            let bytes = data.get(*at..at.checked_add(8)?)?;
            *at += 8;
            let mut word = [0u8; 8];
            word.copy_from_slice(bytes);
            serde_json::Number::from_f64(f64::from_bits(u64::from_le_bytes(word))).map_or(Value::Null, Value::Number)
        }
        STRING => Value::String(get_str(data, at)?.to_string()),
        HEX => Value::String(get_hex(data, at)?),
        JSON => serde_json::from_slice(get_bytes(data, at)?).ok()?,
        _ => return None,
    }))
}

/// Skips one tagged value, returning whether it was well-formed.
pub(crate) fn skip_value(data: &[u8], at: &mut usize) -> Option<()> {
    let tag = *data.get(*at)?;
    *at += 1;
    match tag {
        ABSENT | NULL | FALSE | TRUE => {}
        INT | UINT => {
            get_varint(data, at)?;
        }
        FLOAT => *at = at.checked_add(8).filter(|end| *end <= data.len())?,
        STRING | JSON => {
            get_bytes(data, at)?;
        }
        HEX => {
            get_bytes(data, at)?;
            let len = usize::try_from(get_varint(data, at)?).ok()?;
            *at = at.checked_add(len).filter(|end| *end <= data.len())?;
        }
        _ => return None,
    }
    Some(())
}

/// The model's optional fields, in the order the row encodings store them.
pub(crate) const OPTIONAL_FIELDS: [&str; 7] =
    ["module", "function", "line", "request_id", "user_id", "service", "host"];

/// An optional model field of `entry` as a tagged value (absent when unset).
pub(crate) fn put_optional(out: &mut Vec<u8>, entry: &LogEntry, index: usize) {
    match index {
        0 => put_str_value(out, entry.module.as_deref()),
        1 => put_str_value(out, entry.function.as_deref()),
        2 => match entry.line {
            Some(line) => {
                out.push(INT);
                put_varint(out, zigzag(i64::from(line)));
            }
            None => out.push(ABSENT),
        },
        3 => put_str_value(out, entry.request_id.as_deref()),
        4 => put_str_value(out, entry.user_id.as_deref()),
        5 => put_str_value(out, entry.service.as_deref()),
        _ => put_str_value(out, entry.host.as_deref()),
    }
}

/// Sets optional model field `index` of `entry` from a decoded value.
pub(crate) fn set_optional(entry: &mut LogEntry, index: usize, value: Value) -> Option<()> {
    let text = |value: Value| match value {
        Value::String(s) => Some(s),
        _ => None,
    };
    match index {
        0 => entry.module = Some(text(value)?),
        1 => entry.function = Some(text(value)?),
        2 => entry.line = Some(u32::try_from(value.as_i64()?).ok()?),
        3 => entry.request_id = Some(text(value)?),
        4 => entry.user_id = Some(text(value)?),
        5 => entry.service = Some(text(value)?),
        _ => entry.host = Some(text(value)?),
    }
    Some(())
}

/// One stored line as a WAL record payload:
/// `[1][id][zigzag ts][level][category][message][7 optional values][n fields][(name, value)…]`.
pub(crate) fn put_entry(out: &mut Vec<u8>, stored: &StoredEntry) {
    let entry = &stored.entry;
    out.push(ENTRY_TAG);
    put_varint(out, stored.id);
    put_varint(out, zigzag(entry.timestamp.as_millis()));
    out.push(entry.level.code());
    put_bytes(out, entry.category.as_bytes());
    put_bytes(out, entry.message.as_bytes());
    for index in 0..OPTIONAL_FIELDS.len() {
        put_optional(out, entry, index);
    }
    put_varint(out, entry.fields.len() as u64);
    for (name, value) in &entry.fields {
        put_bytes(out, name.as_bytes());
        put_value(out, value);
    }
}

/// A record payload split into the parts a segment writer copies, without decoding them:
/// the tagged values are the bytes [`put_optional`] and [`put_value`] wrote.
pub(crate) struct RowView<'a> {
    pub message: &'a [u8],
    pub optional: [&'a [u8]; OPTIONAL_FIELDS.len()],
    /// The free-form fields' bytes (name, tagged value; by name), checked by `parse`.
    fields: &'a [u8],
}

impl<'a> RowView<'a> {
    pub fn parse(data: &'a [u8]) -> Option<RowView<'a>> {
        let mut at = 0;
        if *data.first()? != ENTRY_TAG {
            return None;
        }
        at += 1;
        get_varint(data, &mut at)?;
        get_varint(data, &mut at)?;
        at += 1;
        get_bytes(data, &mut at)?;
        let message = get_bytes(data, &mut at)?;
        let mut optional: [&[u8]; OPTIONAL_FIELDS.len()] = [&[]; OPTIONAL_FIELDS.len()];
        for value in &mut optional {
            let start = at;
            skip_value(data, &mut at)?;
            *value = &data[start..at];
        }
        let fields_at = at;
        let count = get_varint(data, &mut at)?;
        for _ in 0..count {
            get_str(data, &mut at)?;
            skip_value(data, &mut at)?;
        }
        (at == data.len()).then_some(RowView { message, optional, fields: &data[fields_at..] })
    }

    /// The free-form fields as (name, tagged value), by name, without allocating.
    pub fn fields(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + use<'a> {
        let data = self.fields;
        let mut at = 0;
        let count = get_varint(data, &mut at).unwrap_or(0);
        (0..count).map_while(move |_| {
            let name = get_str(data, &mut at)?;
            let start = at;
            skip_value(data, &mut at)?;
            Some((name, &data[start..at]))
        })
    }

    /// The tagged value of free-form field `name`, if the line has it.
    pub fn field(&self, name: &str) -> Option<&'a [u8]> {
        self.fields().find(|(n, _)| *n == name).map(|(_, value)| value)
    }
}

pub(crate) fn get_entry(data: &[u8]) -> Option<StoredEntry> {
    let mut at = 0;
    if *data.first()? != ENTRY_TAG {
        return None;
    }
    at += 1;
    let id = get_varint(data, &mut at)?;
    let timestamp = Timestamp(unzigzag(get_varint(data, &mut at)?));
    let level = Level::from_code(*data.get(at)?)?;
    at += 1;
    let category = get_str(data, &mut at)?.to_string();
    let message = get_str(data, &mut at)?.to_string();
    let mut entry = LogEntry::new(timestamp, level, message);
    entry.category = category;
    for index in 0..OPTIONAL_FIELDS.len() {
        if let Some(value) = get_value(data, &mut at)? {
            set_optional(&mut entry, index, value)?;
        }
    }
    let fields = get_varint(data, &mut at)?;
    for _ in 0..fields {
        let name = get_str(data, &mut at)?.to_string();
        let value = get_value(data, &mut at)??;
        entry.fields.insert(name, value);
    }
    (at == data.len()).then_some(StoredEntry { id, entry })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StoredEntry {
        let mut entry = LogEntry::new(Timestamp(-5), Level::Critical, "naïve \u{0} message");
        entry.category = "database".into();
        entry.module = Some("db::pool".into());
        entry.line = Some(4_000_000_000);
        entry.request_id = Some("req-256ce3c415f9cea3".into());
        entry.user_id = Some("abcdef0".into());
        entry.host = Some(String::new());
        for (name, value) in [
            ("status", serde_json::json!(503)),
            ("big", serde_json::json!(u64::MAX)),
            ("ratio", serde_json::json!(0.25)),
            ("nested", serde_json::json!({"a": [1, "x", null]})),
            ("flag", serde_json::json!(true)),
            ("nothing", Value::Null),
            ("text", serde_json::json!("")),
            ("hash", serde_json::json!("0123456789abcdef0")),
            ("upper", serde_json::json!("trace-0123456789ABCDEF")),
        ] {
            entry.fields.insert(name.into(), value);
        }
        StoredEntry { id: u64::MAX, entry }
    }

    #[test]
    fn an_entry_round_trips_through_its_binary_form() {
        let stored = sample();
        let mut bytes = Vec::new();
        put_entry(&mut bytes, &stored);
        assert_eq!(get_entry(&bytes), Some(stored));
    }

    /// A flush copies a row's tagged values from its view: they must be exactly what the
    /// value encoders write for the decoded entry.
    #[test]
    fn a_row_view_holds_the_tagged_values_the_encoders_write() {
        let stored = sample();
        let mut bytes = Vec::new();
        put_entry(&mut bytes, &stored);
        let view = RowView::parse(&bytes).unwrap();
        assert_eq!(view.message, stored.entry.message.as_bytes());
        for (index, value) in view.optional.iter().enumerate() {
            let mut expected = Vec::new();
            put_optional(&mut expected, &stored.entry, index);
            assert_eq!(*value, expected.as_slice(), "{}", OPTIONAL_FIELDS[index]);
        }
        assert_eq!(view.fields().count(), stored.entry.fields.len());
        for (name, value) in &stored.entry.fields {
            let mut expected = Vec::new();
            put_value(&mut expected, value);
            assert_eq!(view.field(name), Some(expected.as_slice()), "{name}");
        }
        assert_eq!(view.field("no such field"), None);
        assert!(RowView::parse(&bytes[..bytes.len() - 1]).is_none());
    }

    #[test]
    fn every_truncation_and_bad_tag_is_refused_without_panic() {
        let mut bytes = Vec::new();
        put_entry(&mut bytes, &sample());
        for len in 0..bytes.len() {
            assert_eq!(get_entry(&bytes[..len]), None, "prefix of {len} bytes");
        }
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] = 0xFF;
            let _ = get_entry(&bad);
        }
    }

    #[test]
    fn varints_and_zigzag_round_trip_at_the_edges() {
        for value in [0, 1, -1, i64::MIN, i64::MAX, 300, -300] {
            let mut out = Vec::new();
            put_varint(&mut out, zigzag(value));
            let mut at = 0;
            assert_eq!(get_varint(&out, &mut at).map(unzigzag), Some(value));
            assert_eq!(at, out.len());
        }
        assert_eq!(get_varint(&[0xFF; 11], &mut 0), None);
    }

    #[test]
    fn the_key_hash_is_stable() {
        // Segments on disk depend on these exact values; a change here is a format change.
        assert_eq!(hash64(b""), hash64(b""));
        assert_ne!(hash64(b"m\0a"), hash64(b"m\0b"));
        assert_eq!(hash64(b"m\0upstream"), 0xb214_6deb_73cf_0ee5);
        assert_eq!(hash32(hash64(b"m\0upstream")), 0x73cf_0ee5);
    }
}
