//! The request-event recorder: turns HTTP requests (hubmon's own, and applications' access
//! logs shipped to hubmon) into the API metrics the dashboard and alert rules use:
//!
//! - `http_requests_total{service, route, method, status}` (counter)
//! - `http_request_duration_seconds{service, route, method}` (histogram: `_bucket`, `_sum`,
//!   `_count`)
//! - `hubmon_api_active_keys{service}`: distinct API keys seen in the last 5 minutes
//!
//! Recording is an in-memory update; [`RequestRecorder::snapshot`] renders cumulative series
//! at a time, to be appended to the metrics store on an interval. Counters start at zero when
//! the process starts, which `rate()` treats as a counter reset, as with any exporter.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use hubmon_model::{Labels, Sample, SeriesSamples};
use parking_lot::Mutex;

/// Buckets of `http_request_duration_seconds`: Prometheus client defaults, plus 30 s and
/// 60 s so slow model APIs are not all `+Inf`.
pub const DURATION_BUCKETS: [f64; 13] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// How long an API key counts as active after it was last seen.
pub const ACTIVE_KEY_WINDOW: Duration = Duration::from_secs(300);

/// One answered request.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestEvent {
    pub service: String,
    /// The route template (`/v1/models/{id}`), never the raw path: label values stay few.
    pub route: String,
    pub method: String,
    pub status: u16,
    pub duration: Duration,
    /// The API key or user that made the request, if known. Only a hash is kept.
    pub api_key: Option<String>,
    /// When it was answered, in ms since the epoch.
    pub at: i64,
}

#[derive(Default)]
struct Histogram {
    buckets: [u64; DURATION_BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct State {
    requests: HashMap<(String, String, String, u16), u64>,
    durations: HashMap<(String, String, String), Histogram>,
    /// Per service: key hash → last seen (ms).
    keys: HashMap<String, HashMap<u64, i64>>,
}

/// Accumulates request events; cheap to call from a request path.
#[derive(Default)]
pub struct RequestRecorder {
    state: Mutex<State>,
}

fn key_hash(key: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}

impl RequestRecorder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&self, events: impl IntoIterator<Item = RequestEvent>) {
        let mut state = self.state.lock();
        for event in events {
            let seconds = event.duration.as_secs_f64();
            *state
                .requests
                .entry((event.service.clone(), event.route.clone(), event.method.clone(), event.status))
                .or_default() += 1;
            let histogram = state.durations.entry((event.service.clone(), event.route, event.method)).or_default();
            for (bucket, bound) in histogram.buckets.iter_mut().zip(DURATION_BUCKETS) {
                if seconds <= bound {
                    *bucket += 1;
                }
            }
            histogram.count += 1;
            histogram.sum += seconds;
            if let Some(key) = event.api_key.filter(|k| !k.is_empty()) {
                let seen = state.keys.entry(event.service).or_default().entry(key_hash(&key)).or_insert(event.at);
                *seen = (*seen).max(event.at);
            }
        }
    }

    /// Every series at time `now`: cumulative counts, histograms, and active keys.
    pub fn snapshot(&self, now: i64) -> Vec<SeriesSamples> {
        let window = ACTIVE_KEY_WINDOW.as_millis() as i64;
        let mut state = self.state.lock();
        let mut out = Vec::new();
        let point = |pairs: &[(&str, &str)], value: f64| SeriesSamples {
            labels: Labels::from_static(pairs),
            samples: vec![Sample::new(now, value)],
        };
        for ((service, route, method, status), count) in &state.requests {
            let status = status.to_string();
            out.push(point(
                &[
                    ("__name__", "http_requests_total"),
                    ("service", service),
                    ("route", route),
                    ("method", method),
                    ("status", &status),
                ],
                *count as f64,
            ));
        }
        for ((service, route, method), histogram) in &state.durations {
            let base = [("service", service.as_str()), ("route", route.as_str()), ("method", method.as_str())];
            for (bound, count) in DURATION_BUCKETS.iter().zip(histogram.buckets) {
                let le = bound.to_string();
                let mut pairs = vec![("__name__", "http_request_duration_seconds_bucket"), ("le", le.as_str())];
                pairs.extend(base);
                out.push(point(&pairs, count as f64));
            }
            let mut pairs = vec![("__name__", "http_request_duration_seconds_bucket"), ("le", "+Inf")];
            pairs.extend(base);
            out.push(point(&pairs, histogram.count as f64));
            let mut pairs = vec![("__name__", "http_request_duration_seconds_count")];
            pairs.extend(base);
            out.push(point(&pairs, histogram.count as f64));
            let mut pairs = vec![("__name__", "http_request_duration_seconds_sum")];
            pairs.extend(base);
            out.push(point(&pairs, histogram.sum));
        }
        for (service, keys) in state.keys.iter_mut() {
            keys.retain(|_, seen| now - *seen <= window);
            out.push(point(&[("__name__", "hubmon_api_active_keys"), ("service", service)], keys.len() as f64));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(route: &str, status: u16, ms: u64, key: Option<&str>, at: i64) -> RequestEvent {
        RequestEvent {
            service: "api".into(),
            route: route.into(),
            method: "GET".into(),
            status,
            duration: Duration::from_millis(ms),
            api_key: key.map(str::to_string),
            at,
        }
    }

    fn value(series: &[SeriesSamples], name: &str, extra: &[(&str, &str)]) -> f64 {
        series
            .iter()
            .find(|s| s.labels.metric_name() == Some(name) && extra.iter().all(|(n, v)| s.labels.get(n) == Some(v)))
            .map(|s| s.samples[0].value)
            .unwrap_or(f64::NAN)
    }

    #[test]
    fn counts_latency_buckets_and_active_keys() {
        let recorder = RequestRecorder::new();
        recorder.record([
            event("/v1/chat", 200, 30, Some("key-a"), 1_000),
            event("/v1/chat", 200, 700, Some("key-b"), 2_000),
            event("/v1/chat", 500, 3_000, Some("key-a"), 3_000),
        ]);
        let series = recorder.snapshot(10_000);
        assert_eq!(value(&series, "http_requests_total", &[("status", "200")]), 2.0);
        assert_eq!(value(&series, "http_requests_total", &[("status", "500")]), 1.0);
        assert_eq!(value(&series, "http_request_duration_seconds_bucket", &[("le", "0.05")]), 1.0);
        assert_eq!(value(&series, "http_request_duration_seconds_bucket", &[("le", "1")]), 2.0);
        assert_eq!(value(&series, "http_request_duration_seconds_bucket", &[("le", "+Inf")]), 3.0);
        assert_eq!(value(&series, "http_request_duration_seconds_count", &[]), 3.0);
        assert!((value(&series, "http_request_duration_seconds_sum", &[]) - 3.73).abs() < 1e-9);
        assert_eq!(value(&series, "hubmon_api_active_keys", &[("service", "api")]), 2.0);
        // Five minutes after key-b's last request, only key-a (seen later) is active.
        let later = recorder.snapshot(2_000 + 300_001);
        assert_eq!(value(&later, "hubmon_api_active_keys", &[]), 1.0);
        assert_eq!(value(&later, "http_requests_total", &[("status", "200")]), 2.0, "counters are cumulative");
    }
}
