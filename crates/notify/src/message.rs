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
    /// Templates of the rule that fired, replacing the channel's: check them when the rule is
    /// saved with [`crate::template::validate_override`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates: Option<TemplateOverride>,
}

/// A rule's own title and body templates (minijinja, the context `template` documents).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateOverride {
    pub title: Option<String>,
    pub body: Option<String>,
}

impl AlertMessage {
    pub fn new(kind: MessageKind, group_key: impl Into<String>, alerts: Vec<Alert>) -> Self {
        Self { kind, group_key: group_key.into(), group_labels: BTreeMap::new(), alerts, templates: None }
    }

    /// A message that says nothing is wrong: for trying a channel out.
    pub fn test(channel_name: &str) -> Self {
        Self::test_in(channel_name, crate::template::Language::En)
    }

    /// [`AlertMessage::test`] worded in `language`.
    pub fn test_in(channel_name: &str, language: crate::template::Language) -> Self {
        let (summary, description) = match language {
            crate::template::Language::En => (
                format!("Test notification for channel {channel_name}"),
                "hubmon sent this message to check that the channel works. No action is needed.".to_string(),
            ),
            crate::template::Language::Zh => (
                format!("通知渠道 {channel_name} 的测试消息"),
                "这是 hubmon 发送的测试消息，用于确认该渠道可用，无需处理。".to_string(),
            ),
        };
        let alert = Alert {
            status: AlertStatus::Firing,
            labels: BTreeMap::from([
                ("alertname".to_string(), "HubmonTestNotification".to_string()),
                ("severity".to_string(), "info".to_string()),
                ("channel".to_string(), channel_name.to_string()),
            ]),
            annotations: BTreeMap::from([("summary".to_string(), summary), ("description".to_string(), description)]),
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

    #[test]
    fn test_messages_speak_the_channels_language() {
        let zh = AlertMessage::test_in("值班", crate::template::Language::Zh);
        assert_eq!(zh.alerts[0].annotations["summary"], "通知渠道 值班 的测试消息");
        assert_eq!(zh.kind, MessageKind::Test);
        assert_eq!(zh.title_severity(), Severity::Info);
        assert!(AlertMessage::test("ops").alerts[0].annotations["summary"].contains("Test notification"));
    }
}
