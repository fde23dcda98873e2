//! The log vocabulary (DESIGN §4): one [`LogEntry`], its [`Level`], and the normalisation of
//! levels and categories that every ingest path applies, so `WARN`, `warning` and `Warn`
//! are one level and `db` and `Database` one category, however a line arrives.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// Severity of a log line, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

impl Level {
    pub const ALL: [Level; 5] = [Level::Debug, Level::Info, Level::Warning, Level::Error, Level::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
            Level::Critical => "critical",
        }
    }

    /// Reads the names and aliases loggers use (`WARN`, `err`, `fatal`, `trace`, syslog's
    /// `notice`/`emerg`, Python's numeric levels). `None` for anything else.
    pub fn parse(text: &str) -> Option<Level> {
        // Lower-cased on the stack: this runs for every ingested line, and no level name is
        // longer than the buffer.
        let text = text.trim();
        let mut buffer = [0u8; 16];
        let lower = buffer.get_mut(..text.len())?;
        for (to, from) in lower.iter_mut().zip(text.bytes()) {
            *to = from.to_ascii_lowercase();
        }
        let level = match std::str::from_utf8(lower).ok()? {
            "trace" | "debug" | "dbg" | "verbose" | "finest" | "finer" | "fine" | "10" | "5" => Level::Debug,
            "info" | "information" | "informational" | "notice" | "log" | "default" | "20" => Level::Info,
            "warn" | "warning" | "wrn" | "30" => Level::Warning,
            "err" | "error" | "eror" | "fail" | "failure" | "40" => Level::Error,
            "crit" | "critical" | "fatal" | "panic" | "emerg" | "emergency" | "alert" | "severe" | "50" => {
                Level::Critical
            }
            _ => return None,
        };
        Some(level)
    }

    /// The level of a syslog severity (0 emergency … 7 debug).
    pub fn from_syslog_severity(severity: u8) -> Level {
        match severity {
            0..=2 => Level::Critical,
            3 => Level::Error,
            4 => Level::Warning,
            5 | 6 => Level::Info,
            _ => Level::Debug,
        }
    }

    /// Stable one-byte code, used by the store's columns.
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Level> {
        Level::ALL.get(usize::from(code)).copied()
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The category given when a line names none.
pub const DEFAULT_CATEGORY: &str = "general";

/// Lower-cases a category and folds common aliases onto DESIGN §4's names; the set stays
/// open, so an unknown category is kept (lower-cased).
pub fn normalize_category(text: &str) -> String {
    let text = text.trim();
    // Most lines send a lower-case category already: no copy needed to compare it.
    let lower = if text.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()) {
        std::borrow::Cow::Owned(text.to_lowercase())
    } else {
        std::borrow::Cow::Borrowed(text)
    };
    let folded = match lower.as_ref() {
        "" => DEFAULT_CATEGORY,
        "http" | "access" | "request" | "requests" | "api_access" | "web" => "api",
        "authentication" | "authn" | "authz" | "authorization" | "login" => "auth",
        "db" | "sql" | "postgres" | "postgresql" | "mysql" | "sqlite" => "database",
        "sys" | "os" | "kernel" => "system",
        "sec" | "audit" => "security",
        "notify" | "notifications" | "alerting" => "notification",
        other => other,
    };
    folded.to_string()
}

/// One log line in hubmon's model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogEntry {
    pub timestamp: Timestamp,
    pub level: Level,
    /// Normalised with [`normalize_category`].
    pub category: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Every other field the line carried, as sent.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schema(value_type = Object)]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// The model's own field names, in the order they are documented.
pub const MODEL_FIELDS: [&str; 11] = [
    "timestamp",
    "level",
    "category",
    "message",
    "module",
    "function",
    "line",
    "request_id",
    "user_id",
    "service",
    "host",
];

impl LogEntry {
    /// A line with only a message; everything else defaulted.
    pub fn new(timestamp: Timestamp, level: Level, message: impl Into<String>) -> Self {
        Self {
            timestamp,
            level,
            category: DEFAULT_CATEGORY.to_string(),
            message: message.into(),
            module: None,
            function: None,
            line: None,
            request_id: None,
            user_id: None,
            service: None,
            host: None,
            fields: serde_json::Map::new(),
        }
    }

    /// The value of a model field or a top-level free-form field, as text (numbers and
    /// booleans rendered; objects and arrays as JSON). `None` when absent or null.
    pub fn field_text(&self, name: &str) -> Option<String> {
        match name {
            "level" => Some(self.level.as_str().to_string()),
            "category" => Some(self.category.clone()),
            "message" => Some(self.message.clone()),
            "module" => self.module.clone(),
            "function" => self.function.clone(),
            "line" => self.line.map(|l| l.to_string()),
            "request_id" => self.request_id.clone(),
            "user_id" => self.user_id.clone(),
            "service" => self.service.clone(),
            "host" => self.host.clone(),
            "timestamp" => Some(self.timestamp.to_rfc3339()),
            _ => self.fields.get(name).and_then(json_text),
        }
    }

    /// Approximate size in bytes, for limits and `bytes_over_time`.
    pub fn message_bytes(&self) -> usize {
        self.message.len()
    }
}

/// A scalar JSON value as text; `None` for null.
pub fn json_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

/// Why a log sink could not store a batch.
#[derive(Debug, thiserror::Error)]
#[error("the log store cannot write: {0}")]
pub struct LogSinkError(pub String);

/// Where log lines go. Durable when it returns `Ok`: acknowledged lines survive a crash.
pub trait LogSink: Send + Sync {
    fn append_logs(&self, entries: Vec<LogEntry>) -> Result<(), LogSinkError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_fold_aliases_and_case() {
        for (text, level) in [
            ("WARN", Level::Warning),
            ("Warning", Level::Warning),
            ("err", Level::Error),
            ("ERROR", Level::Error),
            ("fatal", Level::Critical),
            ("trace", Level::Debug),
            ("notice", Level::Info),
            ("40", Level::Error),
            (" Informational\n", Level::Info),
        ] {
            assert_eq!(Level::parse(text), Some(level), "{text}");
        }
        for text in ["loud", "", "ERRÖR", "information-and-more-than-sixteen-bytes"] {
            assert_eq!(Level::parse(text), None, "{text}");
        }
        assert_eq!(normalize_category(" DB "), "database");
        assert_eq!(normalize_category("Ünïcode"), "ünïcode");
        assert_eq!(normalize_category("billing"), "billing");
        assert!(Level::Error > Level::Warning);
        for level in Level::ALL {
            assert_eq!(Level::from_code(level.code()), Some(level));
        }
    }

    #[test]
    fn categories_fold_aliases_and_stay_open() {
        assert_eq!(normalize_category("DB"), "database");
        assert_eq!(normalize_category(" HTTP "), "api");
        assert_eq!(normalize_category("Billing"), "billing");
        assert_eq!(normalize_category(""), DEFAULT_CATEGORY);
    }

    #[test]
    fn entry_round_trips_through_json() {
        let mut entry = LogEntry::new(Timestamp(1_714_564_800_123), Level::Error, "boom");
        entry.request_id = Some("r-1".into());
        entry.fields.insert("status".into(), serde_json::json!(502));
        let json = serde_json::to_string(&entry).unwrap();
        let back: LogEntry = serde_json::from_str(&json).unwrap();
        assert_eq!(back, entry);
        assert_eq!(back.field_text("status").as_deref(), Some("502"));
        assert_eq!(back.field_text("level").as_deref(), Some("error"));
    }
}
