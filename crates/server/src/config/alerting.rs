//! The `[alerting]` section: rule evaluation, grouping of notifications, routes and
//! inhibition. Rules themselves come from rule files (config as code) and the API.

use hubmon_model::PromDuration;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingConfig {
    /// How often rules without their own group interval are evaluated.
    pub evaluation_interval: PromDuration,
    /// Prometheus rule files (YAML) to load; reloaded on SIGHUP and when they change.
    pub rule_files: Vec<String>,
    /// Create the default rules (high_cpu_usage, disk_space_low, …) on a fresh install.
    pub default_rules: bool,
    /// How long a new alert group waits for more alerts before its first notification.
    pub group_wait: PromDuration,
    /// How long a group that has notified waits before notifying about new alerts.
    pub group_interval: PromDuration,
    /// Labels that, with alertname, decide which alerts share a notification.
    pub group_by: Vec<String>,
    /// An alert received on /api/v2/alerts without an end time resolves when not re-sent
    /// for this long (Alertmanager's resolve_timeout).
    pub resolve_timeout: PromDuration,
    /// `[[alerting.routes]]`: alerts matching every matcher go to these channels (by name).
    pub routes: Vec<Route>,
    /// `[[alerting.inhibit]]`: while a source alert fires, matching target alerts with equal
    /// values of the `equal` labels are muted.
    pub inhibit: Vec<InhibitRule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// PromQL-style matchers, e.g. `severity=~"critical|error"`; empty matches every alert.
    #[serde(default)]
    pub matchers: Vec<String>,
    /// Channel names.
    pub channels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitRule {
    pub source_matchers: Vec<String>,
    pub target_matchers: Vec<String>,
    #[serde(default)]
    pub equal: Vec<String>,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        Self {
            evaluation_interval: PromDuration::from_secs(15),
            rule_files: Vec::new(),
            default_rules: true,
            group_wait: PromDuration::from_secs(10),
            group_interval: PromDuration::from_secs(300),
            group_by: Vec::new(),
            resolve_timeout: PromDuration::from_secs(300),
            routes: Vec::new(),
            inhibit: Vec::new(),
        }
    }
}

/// Parses matchers written as PromQL label matchers (`name="v"`, `name=~"re"`, …).
pub fn parse_matchers(field: &str, texts: &[String]) -> Result<Vec<hubmon_model::Matcher>, String> {
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    let selector = format!("{{{}}}", texts.join(","));
    hubmon_promql::parse_selector(&selector).map_err(|e| format!("{field}: {e}"))
}

impl AlertingConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.evaluation_interval.as_duration() < std::time::Duration::from_secs(1) {
            return Err("alerting.evaluation_interval must be at least 1s".into());
        }
        for (i, route) in self.routes.iter().enumerate() {
            parse_matchers(&format!("alerting.routes[{i}].matchers"), &route.matchers)?;
            if route.channels.is_empty() {
                return Err(format!("alerting.routes[{i}].channels: name at least one channel"));
            }
        }
        for (i, rule) in self.inhibit.iter().enumerate() {
            parse_matchers(&format!("alerting.inhibit[{i}].source_matchers"), &rule.source_matchers)?;
            parse_matchers(&format!("alerting.inhibit[{i}].target_matchers"), &rule.target_matchers)?;
        }
        Ok(())
    }
}
