//! Check results as ordinary series, so rules and dashboards read them like any metric. The
//! names are a contract with the alert rules (`database_connection_fail` is
//! `hubmon_check_up{kind="postgres"} == 0`): keep them.
//!
//! `hubmon_check_up` follows the *reported* status (after flap damping), so a rule on it
//! inherits the check's damping; the raw result of each run is in the history.

use hubmon_model::{HealthStatus, Labels, Sample, SeriesSamples, Timestamp, stale_marker};

use crate::status::Observation;

pub const UP: &str = "hubmon_check_up";
pub const STATUS: &str = "hubmon_check_status";
pub const LATENCY: &str = "hubmon_check_latency_seconds";
pub const CERT_EXPIRY: &str = "hubmon_check_cert_expiry_days";

fn labels(metric: &str, check: &str, kind: &str) -> Labels {
    Labels::from_trusted(vec![
        ("__name__".to_string(), metric.to_string()),
        ("check".to_string(), check.to_string()),
        ("kind".to_string(), kind.to_string()),
    ])
}

fn one(labels: Labels, at: Timestamp, value: f64) -> SeriesSamples {
    SeriesSamples { labels, samples: vec![Sample::new(at.as_millis(), value)] }
}

/// The samples one result writes.
pub fn result_series(
    check: &str,
    kind: &str,
    at: Timestamp,
    reported: HealthStatus,
    observation: &Observation,
) -> Vec<SeriesSamples> {
    let mut out = vec![one(labels(UP, check, kind), at, if reported.is_up() { 1.0 } else { 0.0 })];
    for status in HealthStatus::ALL {
        let value = if status == reported { 1.0 } else { 0.0 };
        out.push(one(labels(STATUS, check, kind).with("status", status.as_str()), at, value));
    }
    if let Some(latency) = observation.latency {
        out.push(one(labels(LATENCY, check, kind), at, latency.as_secs_f64()));
    }
    if let Some(days) = observation.cert_expiry_days {
        out.push(one(labels(CERT_EXPIRY, check, kind), at, days));
    }
    out
}

/// Staleness markers ending every series of a check that was removed or renamed.
pub fn end_series(check: &str, kind: &str, at: Timestamp) -> Vec<SeriesSamples> {
    let mut out: Vec<SeriesSamples> =
        [UP, LATENCY, CERT_EXPIRY].iter().map(|m| one(labels(m, check, kind), at, stale_marker())).collect();
    for status in HealthStatus::ALL {
        out.push(one(labels(STATUS, check, kind).with("status", status.as_str()), at, stale_marker()));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_result_writes_up_status_latency_and_expiry() {
        let mut observation = Observation::healthy("ok").with_latency(Duration::from_millis(250));
        observation.cert_expiry_days = Some(3.5);
        let series = result_series("api", "http", Timestamp(1_000), HealthStatus::Degraded, &observation);
        let find = |text: &str| series.iter().find(|s| s.labels.to_string() == text).map(|s| s.samples[0].value);
        assert_eq!(find(r#"hubmon_check_up{check="api", kind="http"}"#), Some(1.0));
        assert_eq!(find(r#"hubmon_check_status{check="api", kind="http", status="degraded"}"#), Some(1.0));
        assert_eq!(find(r#"hubmon_check_status{check="api", kind="http", status="healthy"}"#), Some(0.0));
        assert_eq!(find(r#"hubmon_check_latency_seconds{check="api", kind="http"}"#), Some(0.25));
        assert_eq!(find(r#"hubmon_check_cert_expiry_days{check="api", kind="http"}"#), Some(3.5));
        let down = result_series("db", "postgres", Timestamp(1), HealthStatus::Unhealthy, &Observation::unhealthy("x"));
        assert_eq!(down[0].samples[0].value, 0.0);
        assert_eq!(down.len(), 5, "no latency or expiry when there is none");
    }
}
