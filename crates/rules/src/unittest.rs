//! Rule unit tests in promtool's format (`promtool test rules`): input series written in the
//! expanding notation (`1+2x10`, `_`, `stale`), rules evaluated from time 0 every
//! `evaluation_interval`, and expected alerts or PromQL results at given times.
//!
//! Recording rules' results are written back into the series set as they are produced, so
//! alerting rules built on them see them as they would in a running server.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hubmon_model::{Labels, Matcher, PromDuration, Querier, STALE_NAN_BITS, Sample, Series, StoreError};
use hubmon_promql::testing::MemoryQuerier;
use hubmon_promql::{Engine, EngineOptions, Value};
use serde::Deserialize;

use crate::group::{GroupRuntime, evaluate};
use crate::lifecycle::{Alerts, State};
use crate::rule::{RuleGroup, parse_rule_file};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    rule_files: Vec<String>,
    #[serde(default)]
    evaluation_interval: Option<PromDuration>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    tests: Vec<TestCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestCase {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    interval: Option<PromDuration>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<ExprTest>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    series: String,
    values: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    eval_time: PromDuration,
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpectedAlert>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExprTest {
    expr: String,
    eval_time: PromDuration,
    #[serde(default)]
    exp_samples: Vec<ExpectedSample>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedSample {
    labels: String,
    value: f64,
}

/// The outcome of one test file: what failed, in words; empty when everything passed.
#[derive(Debug, Default)]
pub struct Report {
    pub failures: Vec<String>,
    pub cases: usize,
}

/// A series set that recording rules can append to while the engine reads it.
#[derive(Default)]
struct Shared(RwLock<MemoryQuerier>);

impl Querier for Shared {
    fn select(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<Series>, StoreError> {
        self.0.read().map_err(|_| StoreError::Read("poisoned lock".into()))?.select(matchers, start, end)
    }
    fn label_names(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<String>, StoreError> {
        self.0.read().map_err(|_| StoreError::Read("poisoned lock".into()))?.label_names(matchers, start, end)
    }
    fn label_values(&self, name: &str, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<String>, StoreError> {
        self.0.read().map_err(|_| StoreError::Read("poisoned lock".into()))?.label_values(name, matchers, start, end)
    }
}

fn ms(d: PromDuration) -> i64 {
    i64::try_from(d.as_duration().as_millis()).unwrap_or(i64::MAX)
}

/// Runs a promtool test file. `Err` means the file itself is unusable (unreadable, bad YAML,
/// a rule file that does not load).
pub fn run_file(path: &Path) -> Result<Report, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: TestFile = serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let interval = file.evaluation_interval.map_or(60_000, ms);
    let mut groups = Vec::new();
    for rule_file in &file.rule_files {
        let full = base.join(rule_file);
        let text = std::fs::read_to_string(&full).map_err(|e| format!("cannot read {}: {e}", full.display()))?;
        let source = full.display().to_string();
        groups.extend(
            parse_rule_file(&text, &source, Duration::from_millis(interval as u64)).map_err(|e| e.to_string())?,
        );
    }
    if !file.group_eval_order.is_empty() {
        groups.sort_by_key(|g| file.group_eval_order.iter().position(|n| *n == g.name).unwrap_or(usize::MAX));
    }
    let mut report = Report::default();
    for (i, case) in file.tests.iter().enumerate() {
        report.cases += 1;
        let name = case.name.clone().unwrap_or_else(|| format!("test {}", i + 1));
        if !case.external_labels.is_empty() {
            report.failures.push(format!("{name}: external_labels are not supported"));
            continue;
        }
        match run_case(case, &groups, interval) {
            Ok(failures) => report.failures.extend(failures.into_iter().map(|f| format!("{name}: {f}"))),
            Err(e) => report.failures.push(format!("{name}: {e}")),
        }
    }
    Ok(report)
}

fn run_case(case: &TestCase, groups: &[RuleGroup], interval: i64) -> Result<Vec<String>, String> {
    let step = case.interval.map_or(60_000, ms);
    let mut set = MemoryQuerier::new();
    for input in &case.input_series {
        let labels = series_labels(&input.series)?;
        let values = expand(&input.values).map_err(|e| format!("series {}: {e}", input.series))?;
        let samples = values
            .into_iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| Sample::new(i as i64 * step, v)))
            .collect::<Vec<_>>();
        set.add(labels, samples);
    }
    let shared = Arc::new(Shared(RwLock::new(set)));
    let engine = Engine::new(shared.clone(), EngineOptions::default());

    // Every time anything is asked about, in order; rules run up to the latest.
    let mut checkpoints: BTreeSet<i64> = case.alert_rule_test.iter().map(|t| ms(t.eval_time)).collect();
    checkpoints.extend(case.promql_expr_test.iter().map(|t| ms(t.eval_time)));
    let mut alerts = Alerts::default();
    let mut runtimes: Vec<GroupRuntime> = groups.iter().map(|_| GroupRuntime::default()).collect();
    let mut failures = Vec::new();
    let mut t = 0;
    for checkpoint in checkpoints {
        while t <= checkpoint {
            for (group, runtime) in groups.iter().zip(&mut runtimes) {
                let outcome = evaluate(&engine, group, &mut alerts, runtime, t);
                let mut set = shared.0.write().map_err(|_| "poisoned".to_string())?;
                for written in outcome.samples {
                    if written.labels.get("__name__").is_some_and(|n| n.starts_with("ALERTS")) {
                        continue;
                    }
                    set.add(written.labels, written.samples);
                }
            }
            t += interval;
        }
        for test in case.alert_rule_test.iter().filter(|a| ms(a.eval_time) == checkpoint) {
            let mut got: Vec<(BTreeMap<String, String>, BTreeMap<String, String>)> = alerts
                .open()
                .filter(|a| a.rule == test.alertname && a.state == State::Firing)
                .map(|a| (a.labels.clone(), a.annotations.clone()))
                .collect();
            let mut want: Vec<(BTreeMap<String, String>, BTreeMap<String, String>)> = test
                .exp_alerts
                .iter()
                .map(|e| {
                    let mut labels = e.exp_labels.clone();
                    labels.insert("alertname".into(), test.alertname.clone());
                    (labels, e.exp_annotations.clone())
                })
                .collect();
            got.sort();
            want.sort();
            if got != want {
                failures.push(format!(
                    "alertname: {}, time: {}\n    exp: {want:?}\n    got: {got:?}",
                    test.alertname, test.eval_time
                ));
            }
        }
        for test in case.promql_expr_test.iter().filter(|e| ms(e.eval_time) == checkpoint) {
            let value = engine.instant(&test.expr, checkpoint).map_err(|e| format!("expr {:?}: {e}", test.expr))?;
            let mut got: Vec<(String, f64)> = match value {
                Value::Vector(v) => v.into_iter().map(|(l, v)| (labels_text(&l), v)).collect(),
                Value::Scalar(_, v) => vec![("{}".into(), v)],
                other => return Err(format!("expr {:?} returned a {}", test.expr, other.result_type())),
            };
            let mut want: Vec<(String, f64)> = test
                .exp_samples
                .iter()
                .map(|s| Ok((labels_text(&series_labels(&s.labels)?), s.value)))
                .collect::<Result<_, String>>()?;
            got.sort_by(|a, b| a.0.cmp(&b.0));
            want.sort_by(|a, b| a.0.cmp(&b.0));
            let same = got.len() == want.len()
                && got
                    .iter()
                    .zip(&want)
                    .all(|(g, w)| g.0 == w.0 && (g.1 == w.1 || (g.1 - w.1).abs() <= 1e-9 * w.1.abs()));
            if !same {
                failures.push(format!(
                    "expr: {:?}, time: {}\n    exp: {want:?}\n    got: {got:?}",
                    test.expr, test.eval_time
                ));
            }
        }
    }
    Ok(failures)
}

fn labels_text(labels: &Labels) -> String {
    let pairs: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    format!("{{{}}}", pairs.join(","))
}

/// `name{a="b"}` (or `{__name__="x"}`) as labels; only `=` matchers make sense here.
fn series_labels(text: &str) -> Result<Labels, String> {
    if text.trim() == "{}" {
        return Ok(Labels::default());
    }
    let matchers = hubmon_promql::parse_selector(text).map_err(|e| format!("series {text:?}: {e}"))?;
    let mut pairs = Vec::new();
    for m in matchers {
        if m.op != hubmon_model::MatchOp::Equal {
            return Err(format!("series {text:?}: only = matchers describe a series"));
        }
        pairs.push((m.name, m.value));
    }
    Labels::new(pairs).map_err(|e| format!("series {text:?}: {e}"))
}

/// Expands promtool's notation: `a+bxn` and `a-bxn` give n+1 values from a, `axn` repeats a,
/// `_` is a missing sample (`_xn` n of them), `stale` a staleness marker.
pub fn expand(values: &str) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for item in values.split_whitespace() {
        if item == "_" {
            out.push(None);
            continue;
        }
        if item == "stale" {
            out.push(Some(f64::from_bits(STALE_NAN_BITS)));
            continue;
        }
        if let Some(count) = item.strip_prefix("_x") {
            let n: usize = count.parse().map_err(|_| format!("bad repetition {item:?}"))?;
            out.extend(std::iter::repeat_n(None, n));
            continue;
        }
        let Some((head, count)) = item.rsplit_once('x') else {
            out.push(Some(number(item)?));
            continue;
        };
        let n: i64 = count.parse().map_err(|_| format!("bad repetition {item:?}"))?;
        // The sign that separates start and increment is the last + or - not at the start and
        // not inside an exponent (1e-3).
        let bytes = head.as_bytes();
        let split = (1..bytes.len())
            .rev()
            .find(|&i| (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E'));
        let (start, delta) = match split {
            Some(i) => (number(&head[..i])?, number(&head[i..])?),
            None => (number(head)?, 0.0),
        };
        for k in 0..=n {
            out.push(Some(start + delta * k as f64));
        }
    }
    Ok(out)
}

fn number(text: &str) -> Result<f64, String> {
    match text {
        "Inf" | "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text.parse().map_err(|_| format!("{text:?} is not a number")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn expands_promtools_notation() {
        let v = |s: &str| expand(s).unwrap();
        assert_eq!(v("1+1x3"), vec![Some(1.0), Some(2.0), Some(3.0), Some(4.0)]);
        assert_eq!(v("10-2x2 _ 7"), vec![Some(10.0), Some(8.0), Some(6.0), None, Some(7.0)]);
        assert_eq!(v("-1+1x1"), vec![Some(-1.0), Some(0.0)]);
        assert_eq!(v("5x2 _x2"), vec![Some(5.0), Some(5.0), Some(5.0), None, None]);
        assert!(hubmon_model::is_stale_marker(v("stale")[0].unwrap()));
        assert!(expand("1+x").is_err());
    }
}
