//! What producers (the alert engine, the health checker, a test send) hand to the notifier.
//!
//! An [`AlertMessage`] is one group of alerts sent together, the shape of Alertmanager's
//! webhook payload, so the generic webhook channel can pass it on unchanged in meaning.

use std::collections::BTreeMap;

use hubmon_model::{Alert, AlertStatus, Severity, Timestamp};
use serde::{Deserialize, Serialize};

/// What produced a message; shown in history and selectable in templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    /// From an alerting rule.
    Alert,
    /// A health check changed state.
    Health,
    /// A test message sent by hand.
    Test,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Alert => "alert",
            MessageKind::Health => "health",
            MessageKind::Test => "test",
        }
    }
}

/// A group of alerts to deliver together.
///
/// ```
/// use std::collections::BTreeMap;
/// use hubmon_model::{Alert, AlertStatus, Timestamp};
/// use hubmon_notify::{AlertMessage, MessageKind};
///
/// let alert = Alert {
///     status: AlertStatus::Firing,
///     labels: BTreeMap::from([("alertname".into(), "HighCPU".into()), ("severity".into(), "critical".into())]),
///     annotations: BTreeMap::from([("summary".into(), "CPU above 90% on web-1".into())]),
///     starts_at: Timestamp::now(),
///     ends_at: None,
///     generator_url: None,
///     fingerprint: "c0ffee".into(),
///     value: Some("93.5%".into()),
/// };
/// let message = AlertMessage::new(MessageKind::Alert, "rule-group/HighCPU", vec![alert]);
/// assert_eq!(message.title_severity(), hubmon_model::Severity::Critical);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlertMessage {
    pub kind: MessageKind,
    /// Identifies the group (Alertmanager's `groupKey`): the rule or check and its grouping labels.
    pub group_key: String,
    /// The labels the alerts were grouped by.
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    pub alerts: Vec<Alert>,
}

impl AlertMessage {
    pub fn new(kind: MessageKind, group_key: impl Into<String>, alerts: Vec<Alert>) -> Self {
        Self { kind, group_key: group_key.into(), group_labels: BTreeMap::new(), alerts }
    }

    /// A message that says nothing is wrong: for trying a channel out.
    pub fn test(channel_name: &str) -> Self {
        let alert = Alert {
            status: AlertStatus::Firing,
            labels: BTreeMap::from([
                ("alertname".to_string(), "HubmonTestNotification".to_string()),
                ("severity".to_string(), "info".to_string()),
                ("channel".to_string(), channel_name.to_string()),
            ]),
            annotations: BTreeMap::from([
                ("summary".to_string(), format!("Test notification for channel {channel_name}")),
                (
                    "description".to_string(),
                    "hubmon sent this message to check that the channel works. No action is needed.".to_string(),
                ),
            ]),
            starts_at: Timestamp::now(),
            ends_at: None,
            generator_url: None,
            fingerprint: "test".to_string(),
            value: None,
        };
        Self::new(MessageKind::Test, format!("test/{channel_name}"), vec![alert])
    }

    /// Firing while any alert fires.
    pub fn status(&self) -> AlertStatus {
        if self.alerts.iter().any(|a| a.status == AlertStatus::Firing) {
            AlertStatus::Firing
        } else {
            AlertStatus::Resolved
        }
    }

    /// The highest severity among the alerts that decide the status.
    pub fn title_severity(&self) -> Severity {
        let status = self.status();
        self.alerts.iter().filter(|a| a.status == status).map(Alert::severity).max().unwrap_or(Severity::Info)
    }

    /// Labels every alert shares.
    pub fn common_labels(&self) -> BTreeMap<String, String> {
        common(self.alerts.iter().map(|a| &a.labels))
    }

    pub fn common_annotations(&self) -> BTreeMap<String, String> {
        common(self.alerts.iter().map(|a| &a.annotations))
    }

    /// The alert name shared by all alerts, or the group key.
    pub fn name(&self) -> String {
        self.common_labels().get("alertname").cloned().unwrap_or_else(|| self.group_key.clone())
    }
}

fn common<'a>(mut maps: impl Iterator<Item = &'a BTreeMap<String, String>>) -> BTreeMap<String, String> {
    let Some(first) = maps.next() else {
        return BTreeMap::new();
    };
    let mut shared = first.clone();
    for map in maps {
        shared.retain(|key, value| map.get(key) == Some(value));
    }
    shared
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(name: &str, severity: &str, status: AlertStatus, instance: &str) -> Alert {
        Alert {
            status,
            labels: BTreeMap::from([
                ("alertname".into(), name.into()),
                ("severity".into(), severity.into()),
                ("instance".into(), instance.into()),
            ]),
            annotations: BTreeMap::new(),
            starts_at: Timestamp(0),
            ends_at: None,
            generator_url: None,
            fingerprint: instance.into(),
            value: None,
        }
    }

    #[test]
    fn status_and_severity_follow_the_firing_alerts() {
        let message = AlertMessage::new(
            MessageKind::Alert,
            "g",
            vec![
                alert("Down", "warning", AlertStatus::Firing, "a"),
                alert("Down", "critical", AlertStatus::Resolved, "b"),
            ],
        );
        assert_eq!(message.status(), AlertStatus::Firing);
        assert_eq!(message.title_severity(), Severity::Warning);
        assert_eq!(message.common_labels(), BTreeMap::from([("alertname".to_string(), "Down".to_string())]));
        assert_eq!(message.name(), "Down");
    }
}
