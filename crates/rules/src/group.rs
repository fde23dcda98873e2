//! One evaluation of a rule group: every rule's expression at the group's evaluation time,
//! the alert lifecycle advanced, recording rules' results and the `ALERTS` /
//! `ALERTS_FOR_STATE` series produced like Prometheus does, and each rule's health.
//!
//! A rule whose expression fails is marked unhealthy and skipped; the others still run.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use hubmon_model::{Labels, STALE_NAN_BITS, Sample, SeriesSamples};
use hubmon_promql::{Engine, Value};
use serde::Serialize;

use crate::lifecycle::{AlertRecord, Alerts, State};
use crate::rule::RuleGroup;

/// How a rule's last evaluation went.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct RuleHealth {
    /// `ok`, `err` or `unknown` (not evaluated yet), as Prometheus reports it.
    pub health: &'static str,
    pub last_error: Option<String>,
    /// Evaluation time (ms).
    pub last_evaluation: Option<i64>,
    pub evaluation_seconds: f64,
    pub failures: u64,
}

/// What one evaluation produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Samples to append: recording rules, ALERTS, ALERTS_FOR_STATE and their stale markers.
    pub samples: Vec<SeriesSamples>,
    /// Alerts that resolved or went inactive.
    pub closed: Vec<AlertRecord>,
    /// Rules that failed this time.
    pub failures: u64,
}

/// Remembers which ALERTS series each group wrote last time, to end the ones that went away.
#[derive(Debug, Default)]
pub struct GroupRuntime {
    written: HashMap<String, (Labels, State)>,
    pub health: BTreeMap<String, RuleHealth>,
    pub last_evaluation: Option<i64>,
    pub evaluation_seconds: f64,
}

fn stale() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

fn alert_series(record: &AlertRecord, name: &str, state: Option<State>) -> Option<Labels> {
    let mut pairs: Vec<(String, String)> = record.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    pairs.push(("__name__".into(), name.into()));
    if let Some(state) = state {
        pairs.push(("alertstate".into(), state.as_str().into()));
    }
    Labels::new(pairs).ok()
}

/// Evaluates `group` at `now` (ms) with `engine`, advancing `alerts`.
pub fn evaluate(
    engine: &Engine,
    group: &RuleGroup,
    alerts: &mut Alerts,
    runtime: &mut GroupRuntime,
    now: i64,
) -> Outcome {
    let started = Instant::now();
    let mut outcome = Outcome::default();
    for rule in &group.recording {
        let began = Instant::now();
        let result = engine.instant(&rule.expr, now).map_err(|e| e.to_string()).and_then(|v| match v {
            Value::Vector(samples) => Ok(samples),
            Value::Scalar(_, v) => Ok(vec![(Labels::default(), v)]),
            other => Err(format!("recording rule returned a {}", other.result_type())),
        });
        let health = runtime.health.entry(rule.record.clone()).or_default();
        record_health(health, &result, now, began);
        match result {
            Ok(samples) => {
                for (labels, value) in samples {
                    let mut pairs: Vec<(String, String)> = labels
                        .iter()
                        .filter(|(n, _)| *n != "__name__")
                        .map(|(n, v)| (n.to_string(), v.to_string()))
                        .collect();
                    pairs.retain(|(n, _)| !rule.labels.contains_key(n));
                    pairs.extend(rule.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
                    pairs.push(("__name__".into(), rule.record.clone()));
                    if let Ok(labels) = Labels::new(pairs) {
                        outcome.samples.push(SeriesSamples { labels, samples: vec![Sample::new(now, value)] });
                    }
                }
            }
            Err(_) => outcome.failures += 1,
        }
    }
    for rule in &group.alerting {
        if !rule.enabled {
            outcome.closed.extend(alerts.drop_rule(&rule.name, now));
            continue;
        }
        let began = Instant::now();
        let result = engine.instant(&rule.expr, now).map_err(|e| e.to_string()).and_then(|v| match v {
            Value::Vector(samples) => Ok(samples),
            other => Err(format!("alerting rule returned a {}, not a vector", other.result_type())),
        });
        let health = runtime.health.entry(rule.name.clone()).or_default();
        record_health(health, &result, now, began);
        match result {
            Ok(samples) => outcome.closed.extend(alerts.apply(rule, &samples, now)),
            // Keep the alerts as they are: a failing query says nothing about the condition.
            Err(_) => outcome.failures += 1,
        }
    }

    // ALERTS and ALERTS_FOR_STATE for the open alerts of this group's rules.
    let names: std::collections::HashSet<&str> = group.alerting.iter().map(|r| r.name.as_str()).collect();
    let mut written = HashMap::new();
    for record in alerts.open().filter(|r| names.contains(r.rule.as_str()) && r.source.is_empty()) {
        if let Some(labels) = alert_series(record, "ALERTS", Some(record.state)) {
            outcome.samples.push(SeriesSamples { labels: labels.clone(), samples: vec![Sample::new(now, 1.0)] });
            written.insert(record.fingerprint.clone(), (labels, record.state));
        }
        if let Some(labels) = alert_series(record, "ALERTS_FOR_STATE", None) {
            let active = record.active_at as f64 / 1000.0;
            outcome.samples.push(SeriesSamples { labels, samples: vec![Sample::new(now, active)] });
        }
    }
    for (fp, (labels, state)) in runtime.written.drain() {
        let still = written.get(&fp).is_some_and(|(_, s)| *s == state);
        if !still {
            outcome.samples.push(SeriesSamples { labels, samples: vec![Sample::new(now, stale())] });
        }
    }
    for record in &outcome.closed {
        if let Some(labels) = alert_series(record, "ALERTS_FOR_STATE", None) {
            outcome.samples.push(SeriesSamples { labels, samples: vec![Sample::new(now, stale())] });
        }
    }
    runtime.written = written;
    runtime.last_evaluation = Some(now);
    runtime.evaluation_seconds = started.elapsed().as_secs_f64();
    outcome
}

fn record_health<T>(health: &mut RuleHealth, result: &Result<T, String>, now: i64, began: Instant) {
    health.last_evaluation = Some(now);
    health.evaluation_seconds = began.elapsed().as_secs_f64();
    match result {
        Ok(_) => {
            health.health = "ok";
            health.last_error = None;
        }
        Err(e) => {
            health.health = "err";
            health.last_error = Some(e.clone());
            health.failures += 1;
        }
    }
}
