//! Alerts as they leave the alert engine (and the health checker) for the notifier: the
//! vocabulary of Alertmanager's webhook payload, so a receiver written for Alertmanager reads
//! hubmon's alerts without change.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// How urgent an alert is. Read from the `severity` label; unknown or missing is `warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown severity {0:?}; use critical, warning or info")]
pub struct SeverityError(pub String);

impl FromStr for Severity {
    type Err = SeverityError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "critical" | "page" | "error" => Ok(Severity::Critical),
            "warning" | "warn" => Ok(Severity::Warning),
            "info" | "none" => Ok(Severity::Info),
            _ => Err(SeverityError(text.to_string())),
        }
    }
}

/// Whether an alert is active or has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// One alert instance: a rule's labels for one series, with its lifecycle times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Alert {
    pub status: AlertStatus,
    /// Identifying labels, `alertname` included; `severity` sets [`Alert::severity`].
    pub labels: BTreeMap<String, String>,
    /// Descriptive text: `summary`, `description`, `runbook_url`, …
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub starts_at: Timestamp,
    /// When the alert resolved; `None` while it fires.
    #[serde(default)]
    pub ends_at: Option<Timestamp>,
    /// A link to the expression or check that produced the alert.
    #[serde(default)]
    pub generator_url: Option<String>,
    /// A stable identifier of the label set (the alert engine computes it).
    pub fingerprint: String,
    /// The value that crossed the threshold, already formatted, when there is one.
    #[serde(default)]
    pub value: Option<String>,
}

impl Alert {
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }

    pub fn severity(&self) -> Severity {
        self.labels.get("severity").and_then(|s| s.parse().ok()).unwrap_or(Severity::Warning)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_comes_from_the_label_and_defaults_to_warning() {
        let mut alert = Alert {
            status: AlertStatus::Firing,
            labels: BTreeMap::from([("alertname".into(), "Down".into()), ("severity".into(), "Critical".into())]),
            annotations: BTreeMap::new(),
            starts_at: Timestamp(0),
            ends_at: None,
            generator_url: None,
            fingerprint: "f".into(),
            value: None,
        };
        assert_eq!(alert.severity(), Severity::Critical);
        alert.labels.remove("severity");
        assert_eq!(alert.severity(), Severity::Warning);
        assert_eq!(alert.name(), "Down");
        assert!("loud".parse::<Severity>().is_err());
    }
}
