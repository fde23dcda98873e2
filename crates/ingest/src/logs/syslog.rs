//! Syslog: RFC 5424 and RFC 3164 (BSD) messages into the model, and the two TCP framings of
//! RFC 6587 (octet counting `LEN SP MSG`, and newline-terminated).
//!
//! Severity becomes the level, the facility a field (and category `auth` for the auth
//! facilities, `system` otherwise), APP-NAME/TAG the service, HOSTNAME the host, structured
//! data `[id k="v"]` fields named `id.k`. A message that is JSON or logfmt is parsed into
//! fields like any other structured line.

use hubmon_model::{Level, LogEntry, Timestamp};
use serde_json::{Map, Value};

use super::Limits;
use super::structured::{from_object, logfmt, parse_timestamp_text, syslog_date};

const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

/// Parses one syslog message (either RFC), using `received` where it has no usable time.
pub fn parse(raw: &[u8], received: Timestamp, limits: &Limits) -> Result<LogEntry, String> {
    if raw.len() > limits.max_line_bytes {
        return Err(format!("message is {} bytes, more than the limit of {}", raw.len(), limits.max_line_bytes));
    }
    let text = String::from_utf8_lossy(raw);
    let text = text.trim_end_matches(['\n', '\r', '\0']);
    let rest = text.strip_prefix('<').ok_or("syslog message must start with <PRI>")?;
    let close = rest.find('>').filter(|i| (1..=3).contains(i)).ok_or("bad <PRI>")?;
    let pri: u16 = rest[..close].parse().map_err(|_| "bad <PRI>")?;
    if pri > 191 {
        return Err(format!("<PRI> {pri} out of range"));
    }
    let (facility, severity) = ((pri / 8) as usize, (pri % 8) as u8);
    let body = &rest[close + 1..];
    let mut object = Map::new();
    let message = if let Some(after) = body.strip_prefix("1 ") {
        rfc5424(after, received, &mut object)?
    } else {
        rfc3164(body, received, &mut object)
    };
    object.insert("facility".into(), Value::from(FACILITIES[facility]));
    object.insert("level".into(), Value::from(Level::from_syslog_severity(severity).as_str()));
    let category = if matches!(facility, 4 | 10 | 13) { "auth" } else { "system" };
    object.insert("category".into(), Value::from(category));
    let message = message.trim_start_matches('\u{feff}').trim();
    let structured = if message.starts_with('{') {
        serde_json::from_str::<Value>(message).ok().and_then(|v| v.as_object().cloned())
    } else {
        logfmt(message)
    };
    let mut has_message = false;
    if let Some(fields) = structured {
        for (k, v) in fields {
            has_message |= matches!(k.as_str(), "message" | "msg" | "@message" | "text" | "event" | "body" | "log");
            object.insert(k, v);
        }
    }
    if !has_message {
        object.insert("message".into(), Value::from(message));
    }
    from_object(object, received, limits)
}

fn nil(field: &str) -> Option<&str> {
    (field != "-").then_some(field)
}

/// `TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG]`
fn rfc5424(text: &str, received: Timestamp, object: &mut Map<String, Value>) -> Result<String, String> {
    let mut parts = text.splitn(6, ' ');
    let mut next = |what: &str| parts.next().ok_or_else(|| format!("RFC 5424 message ends before {what}"));
    let timestamp = next("TIMESTAMP")?;
    let host = next("HOSTNAME")?;
    let app = next("APP-NAME")?;
    let procid = next("PROCID")?;
    let msgid = next("MSGID")?;
    let rest = parts.next().unwrap_or("");
    if let Some(ts) = nil(timestamp) {
        let ts = parse_timestamp_text(ts, received).map_err(|e| format!("TIMESTAMP: {e}"))?;
        object.insert("timestamp".into(), Value::from(ts.as_millis()));
    }
    if let Some(host) = nil(host) {
        object.insert("host".into(), Value::from(host));
    }
    if let Some(app) = nil(app) {
        object.insert("service".into(), Value::from(app));
    }
    if let Some(pid) = nil(procid) {
        object.insert("pid".into(), Value::from(pid));
    }
    if let Some(msgid) = nil(msgid) {
        object.insert("msgid".into(), Value::from(msgid));
    }
    let message = if let Some(after) = rest.strip_prefix('-') {
        after
    } else if rest.starts_with('[') {
        structured_data(rest, object)?
    } else if rest.is_empty() {
        ""
    } else {
        return Err("RFC 5424 STRUCTURED-DATA must be \"-\" or [id ...]".into());
    };
    Ok(message.strip_prefix(' ').unwrap_or(message).to_string())
}

/// Reads `[id k="v" …]…` into `id.k` fields; returns what follows.
fn structured_data<'a>(mut text: &'a str, object: &mut Map<String, Value>) -> Result<&'a str, String> {
    let bad = || "malformed STRUCTURED-DATA".to_string();
    while let Some(inner) = text.strip_prefix('[') {
        let id_end = inner.find([' ', ']']).ok_or_else(bad)?;
        let id = &inner[..id_end];
        let mut rest = &inner[id_end..];
        loop {
            rest = rest.trim_start_matches(' ');
            if let Some(after) = rest.strip_prefix(']') {
                text = after;
                break;
            }
            let eq = rest.find('=').ok_or_else(bad)?;
            let name = &rest[..eq];
            let mut chars = rest[eq + 1..].char_indices();
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(bad());
            }
            let mut value = String::new();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    other => value.push(other),
                }
            }
            let end = end.ok_or_else(bad)?;
            object.insert(format!("{id}.{name}"), Value::from(value));
            rest = &rest[eq + 1 + end + 1..];
        }
    }
    Ok(text)
}

/// `Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG`, tolerating the missing pieces real senders omit.
fn rfc3164(text: &str, received: Timestamp, object: &mut Map<String, Value>) -> String {
    let mut rest = text;
    if rest.len() >= 15
        && let Some(date) = rest.get(..15)
        && let Some(ts) = syslog_date(date, received)
    {
        object.insert("timestamp".into(), Value::from(ts.as_millis()));
        rest = rest[15..].trim_start();
        // HOSTNAME, unless the next word is already the tag.
        if let Some((word, after)) = rest.split_once(' ')
            && !word.ends_with(':')
            && !word.contains('[')
        {
            object.insert("host".into(), Value::from(word));
            rest = after;
        }
    }
    if let Some((tag, after)) = rest.split_once(": ")
        && !tag.contains(' ')
        && !tag.is_empty()
    {
        let (name, pid) = match tag.split_once('[') {
            Some((name, pid)) => (name, pid.strip_suffix(']')),
            None => (tag, None),
        };
        object.insert("service".into(), Value::from(name));
        if let Some(pid) = pid {
            object.insert("pid".into(), Value::from(pid));
        }
        rest = after;
    }
    rest.to_string()
}

/// Splits a TCP byte stream into syslog frames: octet-counted (`123 <...>`) when a frame
/// starts with a digit, newline-terminated otherwise (RFC 6587).
#[derive(Debug, Default)]
pub struct Framer {
    buffer: Vec<u8>,
}

impl Framer {
    /// Adds bytes, returning every complete frame. A frame longer than `limit` is an error
    /// (the stream cannot be resynchronised then, so the connection should be closed).
    pub fn push(&mut self, bytes: &[u8], limit: usize) -> Result<Vec<Vec<u8>>, String> {
        self.buffer.extend_from_slice(bytes);
        let mut frames = Vec::new();
        loop {
            let start = self.buffer.iter().position(|b| !matches!(b, b'\n' | b'\r' | b'\0' | b' '));
            let Some(start) = start else {
                self.buffer.clear();
                break;
            };
            self.buffer.drain(..start);
            if self.buffer[0].is_ascii_digit() {
                let Some(space) = self.buffer.iter().position(|b| *b == b' ') else {
                    if self.buffer.len() > 10 {
                        return Err("bad octet count".into());
                    }
                    break;
                };
                let len: usize = std::str::from_utf8(&self.buffer[..space])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or("bad octet count")?;
                if len > limit {
                    return Err(format!("frame of {len} bytes, more than the limit of {limit}"));
                }
                if self.buffer.len() < space + 1 + len {
                    break;
                }
                frames.push(self.buffer[space + 1..space + 1 + len].to_vec());
                self.buffer.drain(..space + 1 + len);
            } else {
                match self.buffer.iter().position(|b| matches!(b, b'\n' | b'\0')) {
                    Some(end) => {
                        frames.push(self.buffer[..end].to_vec());
                        self.buffer.drain(..=end);
                    }
                    None if self.buffer.len() > limit => {
                        return Err(format!("line longer than the limit of {limit} bytes"));
                    }
                    None => break,
                }
            }
        }
        Ok(frames)
    }

    /// What is left at the end of the stream (a last line without a newline).
    pub fn finish(self) -> Option<Vec<u8>> {
        let rest: Vec<u8> = self.buffer;
        (!rest.iter().all(|b| b.is_ascii_whitespace())).then_some(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_714_564_800_000);

    #[test]
    fn rfc5424_with_structured_data() {
        let raw = br#"<165>1 2024-05-01T11:59:00.003Z web1 shop 4242 ID47 [exampleSDID@32473 iut="3" eventSource="App"] order failed"#;
        let entry = parse(raw, NOW, &Limits::default()).unwrap();
        assert_eq!(entry.timestamp, Timestamp(1_714_564_740_003));
        assert_eq!(entry.level, Level::Info, "severity 5 (notice)");
        assert_eq!(entry.host.as_deref(), Some("web1"));
        assert_eq!(entry.service.as_deref(), Some("shop"));
        assert_eq!(entry.message, "order failed");
        assert_eq!(entry.fields.get("exampleSDID@32473.iut"), Some(&Value::from("3")));
        assert_eq!(entry.fields.get("facility"), Some(&Value::from("local4")));
        assert_eq!(entry.fields.get("msgid"), Some(&Value::from("ID47")));
    }

    #[test]
    fn rfc5424_nil_values_and_json_messages() {
        let raw = br#"<11>1 - - - - - - {"msg":"disk full","request_id":"r1"}"#;
        let entry = parse(raw, NOW, &Limits::default()).unwrap();
        assert_eq!((entry.level, entry.message.as_str()), (Level::Error, "disk full"));
        assert_eq!(entry.request_id.as_deref(), Some("r1"));
        assert_eq!(entry.timestamp, NOW);
    }

    #[test]
    fn rfc3164_as_sent_by_logger_and_rsyslog() {
        let entry =
            parse(b"<38>May  1 11:58:00 host7 sshd[812]: Accepted publickey for bob", NOW, &Limits::default()).unwrap();
        assert_eq!(entry.timestamp, Timestamp(1_714_564_680_000));
        assert_eq!((entry.host.as_deref(), entry.service.as_deref()), (Some("host7"), Some("sshd")));
        assert_eq!(entry.category, "auth");
        assert_eq!(entry.message, "Accepted publickey for bob");
        let entry = parse(b"<13>May  1 11:58:00 bob: hi there", NOW, &Limits::default()).unwrap();
        assert_eq!((entry.service.as_deref(), entry.message.as_str()), (Some("bob"), "hi there"));
        assert!(parse(b"no pri", NOW, &Limits::default()).is_err());
        assert!(parse(b"<999>x", NOW, &Limits::default()).is_err());
    }

    #[test]
    fn framing_octet_counted_and_newline() {
        let mut framer = Framer::default();
        let frames = framer.push(b"11 <13>1 - - -5 <13>a\n<13>b\n<13>", 1024).unwrap();
        assert_eq!(frames, vec![b"<13>1 - - -".to_vec(), b"<13>a".to_vec(), b"<13>b".to_vec()]);
        let frames = framer.push(b"c\n", 1024).unwrap();
        assert_eq!(frames, vec![b"<13>c".to_vec()]);
        assert!(Framer::default().push(b"99999 x", 1024).is_err());
    }
}
