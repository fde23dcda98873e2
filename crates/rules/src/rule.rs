//! Rule definitions: what the API and rule files accept, validated into [`AlertRule`] and
//! [`RecordingRule`] that the engine evaluates.

use std::collections::BTreeMap;
use std::time::Duration;

use hubmon_model::PromDuration;
use serde::{Deserialize, Serialize};

use crate::template::Template;

/// The severities a rule may carry in its `severity` label.
pub const SEVERITIES: [&str; 4] = ["info", "warning", "error", "critical"];
/// Repeat interval while an alert fires and nobody acknowledged it.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(4 * 3600);

/// A rule that is not valid, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RuleError {
    pub field: String,
    pub message: String,
}

impl RuleError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// An alerting rule as the API takes it (JSON). Either `expr` or the simple form (`metric`,
/// `op`, `threshold`, optional `severity`) says when it fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleSpec {
    pub name: String,
    /// PromQL; every series it returns is an alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expr: Option<String>,
    /// Simple form: a metric (or any PromQL expression) ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// ... compared with `op` (`>`, `>=`, `<`, `<=`, `==`, `!=`) ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// ... against this threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Shorthand for the `severity` label: info, warning, error or critical.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// How long the condition must hold before the alert fires (default 0: at once).
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub for_: Option<PromDuration>,
    /// Keep firing this long after the condition stops holding (damps flapping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub keep_firing_for: Option<PromDuration>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `summary`, `description`, `runbook_url`, …; templated with `{{ $labels.x }}`, `{{ $value }}`.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Repeat the notification this often while firing and not acknowledged (default 4h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub cooldown: Option<PromDuration>,
    /// Send a recovery notification when the alert resolves (default true).
    #[serde(default = "yes")]
    pub notify_on_resolve: bool,
    /// Channel ids to notify, besides those the routes choose.
    #[serde(default)]
    pub channels: Vec<i64>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// A validated alerting rule.
#[derive(Debug, Clone)]
pub struct AlertRule {
    pub name: String,
    pub expr: String,
    pub hold: Duration,
    pub keep_firing_for: Duration,
    /// Labels added to every alert; `severity` always present.
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, Template>,
    pub cooldown: Duration,
    pub notify_on_resolve: bool,
    pub channels: Vec<i64>,
    pub enabled: bool,
}

/// A validated recording rule: `expr` evaluated and written as `record`.
#[derive(Debug, Clone)]
pub struct RecordingRule {
    pub record: String,
    pub expr: String,
    pub labels: BTreeMap<String, String>,
}

impl AlertRuleSpec {
    /// The expression the rule evaluates: `expr`, or the simple form compiled.
    pub fn expression(&self) -> Result<String, RuleError> {
        match (&self.expr, &self.metric) {
            (Some(_), Some(_)) => {
                Err(RuleError::new("expr", "give either expr or the simple form (metric, op, threshold)"))
            }
            (Some(expr), None) => Ok(expr.trim().to_string()),
            (None, Some(metric)) => {
                let op = self.op.as_deref().ok_or_else(|| RuleError::new("op", "missing (>, >=, <, <=, == or !=)"))?;
                if !matches!(op, ">" | ">=" | "<" | "<=" | "==" | "!=") {
                    return Err(RuleError::new("op", format!("{op:?} is not one of >, >=, <, <=, ==, !=")));
                }
                let threshold = self.threshold.ok_or_else(|| RuleError::new("threshold", "missing"))?;
                if !threshold.is_finite() {
                    return Err(RuleError::new("threshold", "must be a finite number"));
                }
                let metric = metric.trim();
                let needs_parens = metric.contains(' ') && !(metric.starts_with('(') && metric.ends_with(')'));
                let left = if needs_parens { format!("({metric})") } else { metric.to_string() };
                Ok(format!("{left} {op} {threshold}"))
            }
            (None, None) => Err(RuleError::new("expr", "missing (or give the simple form: metric, op, threshold)")),
        }
    }

    /// Checks every field and compiles the rule.
    pub fn validate(&self) -> Result<AlertRule, RuleError> {
        validate_name(&self.name)?;
        let expr = self.expression()?;
        validate_expr(&expr)?;
        let mut labels = self.labels.clone();
        if let Some(severity) = &self.severity {
            labels.insert("severity".into(), severity.clone());
        }
        let severity = labels.entry("severity".into()).or_insert_with(|| "warning".into());
        if !SEVERITIES.contains(&severity.as_str()) {
            return Err(RuleError::new(
                "severity",
                format!("{severity:?} is not one of info, warning, error, critical"),
            ));
        }
        for name in labels.keys() {
            if !is_label_name(name) {
                return Err(RuleError::new(format!("labels.{name}"), "not a valid label name"));
            }
        }
        let mut annotations = BTreeMap::new();
        for (name, text) in &self.annotations {
            let template =
                Template::parse(text).map_err(|e| RuleError::new(format!("annotations.{name}"), e.reason))?;
            annotations.insert(name.clone(), template);
        }
        Ok(AlertRule {
            name: self.name.clone(),
            expr,
            hold: self.for_.map_or(Duration::ZERO, PromDuration::as_duration),
            keep_firing_for: self.keep_firing_for.map_or(Duration::ZERO, PromDuration::as_duration),
            labels,
            annotations,
            cooldown: self.cooldown.map_or(DEFAULT_COOLDOWN, PromDuration::as_duration),
            notify_on_resolve: self.notify_on_resolve,
            channels: self.channels.clone(),
            enabled: self.enabled,
        })
    }
}

fn validate_name(name: &str) -> Result<(), RuleError> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(RuleError::new("name", "must be 1 to 200 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(RuleError::new("name", "must not contain control characters"));
    }
    Ok(())
}

/// Parses `expr` and requires an instant vector, as Prometheus does for rules.
pub fn validate_expr(expr: &str) -> Result<(), RuleError> {
    let parsed = promql_parser::parser::parse(expr).map_err(|e| RuleError::new("expr", e))?;
    match parsed.value_type() {
        promql_parser::parser::value::ValueType::Vector => Ok(()),
        other => Err(RuleError::new("expr", format!("must return an instant vector, not a {other}"))),
    }
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

// ---- Prometheus rule files -------------------------------------------------------------------

/// A Prometheus rule file: `groups: [{name, interval, rules: [...]}]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    pub groups: Vec<FileGroup>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileGroup {
    pub name: String,
    #[serde(default)]
    pub interval: Option<PromDuration>,
    #[serde(default)]
    pub limit: Option<u64>,
    pub rules: Vec<FileRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRule {
    #[serde(default)]
    pub alert: Option<String>,
    #[serde(default)]
    pub record: Option<String>,
    pub expr: String,
    #[serde(default, rename = "for")]
    pub for_: Option<PromDuration>,
    #[serde(default)]
    pub keep_firing_for: Option<PromDuration>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// A validated group of rules from a file (or hubmon's own group of API rules).
#[derive(Debug, Clone)]
pub struct RuleGroup {
    pub name: String,
    /// Where it came from: a file path, or `api`.
    pub source: String,
    pub interval: Duration,
    pub alerting: Vec<AlertRule>,
    pub recording: Vec<RecordingRule>,
}

/// Parses and validates a rule file; errors name the group, the rule and the field.
pub fn parse_rule_file(text: &str, source: &str, default_interval: Duration) -> Result<Vec<RuleGroup>, RuleError> {
    let file: RuleFile = serde_yaml_ng::from_str(text).map_err(|e| RuleError::new(source, e.to_string()))?;
    let mut names = std::collections::HashSet::new();
    let mut groups = Vec::new();
    for group in file.groups {
        if !names.insert(group.name.clone()) {
            return Err(RuleError::new(format!("{source}: groups"), format!("group {:?} appears twice", group.name)));
        }
        let mut alerting = Vec::new();
        let mut recording = Vec::new();
        for (i, rule) in group.rules.into_iter().enumerate() {
            let at = |field: &str| format!("{source}: group {:?} rule {}: {field}", group.name, i + 1);
            match (rule.alert, rule.record) {
                (Some(alert), None) => {
                    let spec = AlertRuleSpec {
                        name: alert,
                        expr: Some(rule.expr),
                        metric: None,
                        op: None,
                        threshold: None,
                        severity: None,
                        for_: rule.for_,
                        keep_firing_for: rule.keep_firing_for,
                        labels: rule.labels,
                        annotations: rule.annotations,
                        cooldown: None,
                        notify_on_resolve: true,
                        channels: Vec::new(),
                        enabled: true,
                    };
                    alerting.push(spec.validate().map_err(|e| RuleError::new(at(&e.field), e.message))?);
                }
                (None, Some(record)) => {
                    if !is_metric_name(&record) {
                        return Err(RuleError::new(at("record"), format!("{record:?} is not a valid metric name")));
                    }
                    validate_expr(&rule.expr).map_err(|e| RuleError::new(at("expr"), e.message))?;
                    if rule.for_.is_some() || !rule.annotations.is_empty() {
                        return Err(RuleError::new(at("record"), "recording rules take no for or annotations"));
                    }
                    recording.push(RecordingRule { record, expr: rule.expr, labels: rule.labels });
                }
                _ => return Err(RuleError::new(at("alert"), "a rule has exactly one of alert and record")),
            }
        }
        groups.push(RuleGroup {
            name: group.name,
            source: source.to_string(),
            interval: group.interval.map_or(default_interval, PromDuration::as_duration),
            alerting,
            recording,
        });
    }
    Ok(groups)
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

// ---- defaults --------------------------------------------------------------------------------

/// The rules a fresh install starts with (DESIGN §7): editable and disable-able like any other.
pub fn default_rules() -> Vec<AlertRuleSpec> {
    let rule = |name: &str, expr: &str, hold: u64, severity: &str, summary: &str, description: &str| AlertRuleSpec {
        name: name.into(),
        expr: Some(expr.into()),
        metric: None,
        op: None,
        threshold: None,
        severity: Some(severity.into()),
        for_: Some(PromDuration::from_secs(hold)),
        keep_firing_for: None,
        labels: BTreeMap::new(),
        annotations: BTreeMap::from([
            ("summary".to_string(), summary.to_string()),
            ("description".to_string(), description.to_string()),
        ]),
        cooldown: None,
        notify_on_resolve: true,
        channels: Vec::new(),
        enabled: true,
    };
    vec![
        rule(
            "high_cpu_usage",
            r#"100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[2m]))) > 80"#,
            300,
            "warning",
            "CPU usage above 80% on {{ $labels.instance }}",
            "CPU usage on {{ $labels.instance }} has been {{ printf \"%.1f\" $value }}% for 5 minutes.",
        ),
        rule(
            "high_memory_usage",
            "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes) > 85",
            300,
            "warning",
            "Memory usage above 85% on {{ $labels.instance }}",
            "Memory usage on {{ $labels.instance }} is {{ printf \"%.1f\" $value }}%.",
        ),
        rule(
            "disk_space_low",
            r#"100 * (1 - node_filesystem_avail_bytes{fstype!~"tmpfs|ramfs|devtmpfs|overlay|squashfs"} / node_filesystem_size_bytes{fstype!~"tmpfs|ramfs|devtmpfs|overlay|squashfs"}) > 90"#,
            300,
            "critical",
            "Disk {{ $labels.mountpoint }} on {{ $labels.instance }} above 90% full",
            "{{ $labels.mountpoint }} on {{ $labels.instance }} is {{ printf \"%.1f\" $value }}% full.",
        ),
        rule(
            "api_error_rate",
            r#"100 * sum by (service) (rate(http_requests_total{status=~"5.."}[5m])) / sum by (service) (rate(http_requests_total[5m])) > 5"#,
            300,
            "error",
            "API error rate above 5% for {{ $labels.service }}",
            "{{ printf \"%.2f\" $value }}% of {{ $labels.service }}'s requests failed with a 5xx over the last 5 minutes.",
        ),
        rule(
            "slow_response_time",
            "1000 * histogram_quantile(0.95, sum by (service, le) (rate(http_request_duration_seconds_bucket[5m]))) > 2000",
            300,
            "warning",
            "p95 latency above 2 s for {{ $labels.service }}",
            "The 95th percentile response time of {{ $labels.service }} is {{ printf \"%.0f\" $value }} ms.",
        ),
        rule(
            "database_connection_fail",
            r#"hubmon_check_up{kind=~"postgres|mysql"} == 0"#,
            60,
            "critical",
            "Database check {{ $labels.check }} failing",
            "hubmon cannot reach the {{ $labels.kind }} database of check {{ $labels.check }}.",
        ),
        rule(
            "redis_connection_fail",
            r#"hubmon_check_up{kind="redis"} == 0"#,
            60,
            "critical",
            "Redis check {{ $labels.check }} failing",
            "hubmon cannot reach the Redis of check {{ $labels.check }}.",
        ),
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn spec(json: serde_json::Value) -> AlertRuleSpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn simple_form_compiles_to_promql() {
        let s = spec(
            serde_json::json!({"name": "load", "metric": "node_load1", "op": ">", "threshold": 4, "severity": "critical", "for": "5m"}),
        );
        let rule = s.validate().unwrap();
        assert_eq!(rule.expr, "node_load1 > 4");
        assert_eq!(rule.labels["severity"], "critical");
        assert_eq!(rule.hold, Duration::from_secs(300));
        let s =
            spec(serde_json::json!({"name": "x", "metric": "up and on () vector(1)", "op": "<=", "threshold": 0.5}));
        assert_eq!(s.expression().unwrap(), "(up and on () vector(1)) <= 0.5");
    }

    #[test]
    fn bad_rules_name_the_field() {
        let cases = [
            (serde_json::json!({"name": "a", "expr": "sum("}), "expr"),
            (serde_json::json!({"name": "a", "expr": "1 > 0"}), "expr"),
            (serde_json::json!({"name": "a", "expr": "up == 0", "severity": "loud"}), "severity"),
            (
                serde_json::json!({"name": "a", "expr": "up == 0", "annotations": {"summary": "{{ $labels.x"}}),
                "annotations.summary",
            ),
            (serde_json::json!({"name": "", "expr": "up == 0"}), "name"),
            (serde_json::json!({"name": "a", "metric": "up", "op": "~", "threshold": 1}), "op"),
            (serde_json::json!({"name": "a"}), "expr"),
        ];
        for (json, field) in cases {
            let error = spec(json.clone()).validate().unwrap_err();
            assert_eq!(error.field, field, "{json}: {error}");
        }
        assert!(
            serde_json::from_value::<AlertRuleSpec>(serde_json::json!({"name": "a", "expr": "up", "for": "5 minutes"}))
                .is_err()
        );
    }

    #[test]
    fn default_rules_are_valid() {
        for rule in default_rules() {
            rule.validate().unwrap();
        }
    }

    #[test]
    fn rule_files_parse_like_prometheus_and_errors_say_where() {
        let text = "groups:\n- name: node\n  interval: 30s\n  rules:\n  - alert: Down\n    expr: up == 0\n    for: 1m\n    labels: {severity: critical}\n    annotations: {summary: '{{ $labels.instance }} down'}\n  - record: job:up:sum\n    expr: sum by (job) (up)\n";
        let groups = parse_rule_file(text, "node.yml", Duration::from_secs(15)).unwrap();
        assert_eq!(groups[0].interval, Duration::from_secs(30));
        assert_eq!(groups[0].alerting[0].hold, Duration::from_secs(60));
        assert_eq!(groups[0].recording[0].record, "job:up:sum");
        let bad = "groups:\n- name: node\n  rules:\n  - alert: Down\n    expr: up ==\n";
        let error = parse_rule_file(bad, "node.yml", Duration::from_secs(15)).unwrap_err();
        assert!(error.field.contains("group \"node\" rule 1: expr"), "{error}");
        assert!(parse_rule_file("groups:\n- name: a\n  rules: []\n  extra: 1\n", "x", Duration::from_secs(1)).is_err());
    }
}
