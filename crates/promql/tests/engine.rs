//! Engine behaviour outside the golden scripts: the store is asked once per selector, limits
//! and request validation, result ordering, and the Prometheus 3 window option.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hubmon_model::{Labels, Matcher, Querier, Sample, Series, StoreError};
use hubmon_promql::testing::MemoryQuerier;
use hubmon_promql::{Engine, EngineOptions, Error, Value, parse_selector};

struct CountingQuerier {
    inner: MemoryQuerier,
    selects: AtomicUsize,
}

impl Querier for CountingQuerier {
    fn select(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<Series>, StoreError> {
        self.selects.fetch_add(1, Ordering::SeqCst);
        self.inner.select(matchers, start, end)
    }
    fn label_names(&self, m: &[Matcher], s: i64, e: i64) -> Result<Vec<String>, StoreError> {
        self.inner.label_names(m, s, e)
    }
    fn label_values(&self, n: &str, m: &[Matcher], s: i64, e: i64) -> Result<Vec<String>, StoreError> {
        self.inner.label_values(n, m, s, e)
    }
}

fn store() -> MemoryQuerier {
    let mut q = MemoryQuerier::new();
    for (job, factor) in [("b", 2.0), ("a", 1.0)] {
        let labels = Labels::from_static(&[("__name__", "up"), ("job", job)]);
        q.add(labels, (0..=60).map(|i| Sample::new(i * 60_000, i as f64 * factor)));
    }
    q
}

#[test]
fn range_query_selects_each_selector_once_and_sorts_series() {
    let querier = Arc::new(CountingQuerier { inner: store(), selects: AtomicUsize::new(0) });
    let engine = Engine::new(querier.clone(), EngineOptions::default());
    let result = engine.range("rate(up[5m]) + up", 600_000, 3_600_000, 60_000).expect("range query");
    assert_eq!(querier.selects.load(Ordering::SeqCst), 2, "one select per selector, not per step");
    let jobs: Vec<_> = result.iter().map(|s| s.labels.get("job").unwrap_or_default().to_string()).collect();
    assert_eq!(jobs, ["a", "b"]);
    assert_eq!(result[0].samples.len(), 51);
}

#[test]
fn range_query_rejects_bad_steps_and_too_many_points() {
    let engine = Engine::new(Arc::new(store()), EngineOptions::default());
    let err = engine.range("up", 0, 10, 0).expect_err("zero step");
    assert_eq!(err.error_type(), "bad_data");
    let err = engine.range("up", 10, 0, 1).expect_err("end before start");
    assert_eq!(err.error_type(), "bad_data");
    let err = engine.range("up", 0, 11_000, 1).expect_err("11,001 points");
    assert!(matches!(err, Error::TooManyPoints { limit: 11_000 }), "{err:?}");
    assert!(err.is_limit());
    let err = engine.range("up[5m]", 0, 10, 1).expect_err("range vector");
    assert_eq!(err.error_type(), "bad_data");
}

#[test]
fn queries_over_the_sample_limit_fail_cleanly() {
    let options = EngineOptions { max_samples: 10, ..EngineOptions::default() };
    let engine = Engine::new(Arc::new(store()), options);
    let err = engine.instant("sum_over_time(up[1h])", 3_600_000).expect_err("too many samples");
    assert!(matches!(err, Error::TooManySamples { limit: 10 }), "{err:?}");
    assert_eq!(err.error_type(), "execution");
}

#[test]
fn timeout_is_reported_as_timeout() {
    let options = EngineOptions { timeout: std::time::Duration::ZERO, ..EngineOptions::default() };
    let engine = Engine::new(Arc::new(store()), options);
    std::thread::sleep(std::time::Duration::from_millis(2));
    let err = engine.instant("up", 0).expect_err("timeout");
    assert_eq!(err.error_type(), "timeout");
}

#[test]
fn left_open_option_excludes_the_window_start_like_prometheus_3() {
    let closed = Engine::new(Arc::new(store()), EngineOptions::default());
    let open = Engine::new(Arc::new(store()), EngineOptions { left_open_ranges: true, ..EngineOptions::default() });
    let count = |e: &Engine| match e.instant(r#"count_over_time(up{job="a"}[5m])"#, 600_000) {
        Ok(Value::Vector(v)) => v[0].1,
        other => panic!("{other:?}"),
    };
    assert_eq!(count(&closed), 6.0);
    assert_eq!(count(&open), 5.0);
}

#[test]
fn parse_selector_returns_store_matchers() {
    let matchers = parse_selector(r#"up{job=~"a|b", env!="dev"}"#).expect("selector");
    assert_eq!(matchers.len(), 3);
    assert!(matchers.iter().any(|m| m.name == "__name__" && m.value == "up"));
    assert!(matchers.iter().any(|m| m.name == "job" && m.matches("b") && !m.matches("ab")));
    assert_eq!(parse_selector("sum(up)").expect_err("not a selector").error_type(), "bad_data");
    assert_eq!(parse_selector("up{").expect_err("syntax").error_type(), "bad_data");
}

#[test]
fn string_and_scalar_results_carry_the_evaluation_time() {
    let engine = Engine::new(Arc::new(store()), EngineOptions::default());
    assert_eq!(engine.instant(r#""hello""#, 5_000).expect("string"), Value::String(5_000, "hello".into()));
    assert_eq!(engine.instant("1 + 1", 5_000).expect("scalar"), Value::Scalar(5_000, 2.0));
}

#[test]
fn parsed_queries_are_reused_and_errors_are_not_kept() {
    let engine = Engine::new(Arc::new(store()), EngineOptions::default());
    let first = engine.parse("sum by (job) (rate(up[5m]))").expect("parses");
    let again = engine.parse("sum by (job) (rate(up[5m]))").expect("parses");
    assert!(Arc::ptr_eq(&first, &again), "the second parse comes from the cache");
    assert!(engine.parse("sum by (job) (rate(up[5m])").is_err());
    assert!(engine.parse("sum by (job) (rate(up[5m])").is_err(), "a bad query stays bad");
    let long = format!("up{}", " + up".repeat(2000));
    let (a, b) = (engine.parse(&long).expect("parses"), engine.parse(&long).expect("parses"));
    assert!(!Arc::ptr_eq(&a, &b), "very long queries are not held");
}

#[test]
fn dropping_the_name_collides_only_where_both_series_have_samples() {
    let mut q = MemoryQuerier::new();
    // Two counters that differ only by name: one in the first half hour, one in the second.
    let early = Labels::from_static(&[("__name__", "early_total"), ("job", "a")]);
    let late = Labels::from_static(&[("__name__", "late_total"), ("job", "a")]);
    q.add(early, (0..=30).map(|i| Sample::new(i * 60_000, i as f64)));
    q.add(late, (40..=70).map(|i| Sample::new(i * 60_000, i as f64)));
    let engine = Engine::new(Arc::new(q), EngineOptions::default());
    let query = r#"rate({__name__=~"early_total|late_total"}[5m])"#;
    let result = engine.range(query, 600_000, 1_500_000, 60_000).expect("only the early series here");
    assert_eq!(result.len(), 1);
    let result = engine.range(query, 2_700_000, 4_000_000, 60_000).expect("only the late series here");
    assert_eq!(result.len(), 1);
    // With a 15 m window both counters have samples at 40 m: the same label set twice.
    let err = engine
        .range(r#"rate({__name__=~"early_total|late_total"}[15m])"#, 2_400_000, 2_460_000, 60_000)
        .expect_err("both series at one step");
    assert_eq!(err.error_type(), "execution");
}
