//! The JSON push format for scripts: `POST /api/v1/monitoring/metrics` with one metric, an
//! array of them, or `{"metrics": [...]}`; each `{"name", "labels", "value", "timestamp"}`.
//! `timestamp` (RFC 3339 or epoch seconds) defaults to the time of receipt.

use std::collections::BTreeMap;

use hubmon_model::{Labels, Rejection, Sample, SeriesSamples, Timestamp};
use serde::Deserialize;

/// One pushed measurement.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushedMetric {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    pub timestamp: Option<Timestamp>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PushBody {
    One(PushedMetric),
    Many(Vec<PushedMetric>),
    Wrapped { metrics: Vec<PushedMetric> },
}

#[derive(Debug, Default, PartialEq)]
pub struct Converted {
    pub series: Vec<SeriesSamples>,
    pub rejections: Vec<(usize, Rejection)>,
}

/// Validates pushed metrics into series; invalid ones are refused with their index.
pub fn convert(body: PushBody, now: Timestamp) -> Converted {
    let metrics = match body {
        PushBody::One(metric) => vec![metric],
        PushBody::Many(metrics) | PushBody::Wrapped { metrics } => metrics,
    };
    let mut converted = Converted::default();
    for (index, metric) in metrics.into_iter().enumerate() {
        let shown = format!("{}{:?}", metric.name, metric.labels);
        if !metric.value.is_finite() {
            converted
                .rejections
                .push((index, Rejection { series: shown, reason: "value must be a finite number".into() }));
            continue;
        }
        if metric.labels.contains_key(hubmon_model::METRIC_NAME) {
            let reason = "put the metric name in `name`, not in labels.__name__".to_string();
            converted.rejections.push((index, Rejection { series: shown, reason }));
            continue;
        }
        let mut pairs: Vec<(String, String)> = metric.labels.into_iter().collect();
        pairs.push((hubmon_model::METRIC_NAME.to_string(), metric.name));
        match Labels::new_series(pairs) {
            Ok(labels) => {
                let at = metric.timestamp.unwrap_or(now);
                converted
                    .series
                    .push(SeriesSamples { labels, samples: vec![Sample::new(at.as_millis(), metric.value)] });
            }
            Err(error) => converted.rejections.push((index, Rejection { series: shown, reason: error.to_string() })),
        }
    }
    converted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Converted {
        convert(serde_json::from_str(json).unwrap(), Timestamp(5_000))
    }

    #[test]
    fn accepts_one_many_and_wrapped() {
        let one = parse(r#"{"name":"backup_size_bytes","labels":{"db":"main"},"value":123}"#);
        assert_eq!(one.series[0].labels, Labels::from_static(&[("__name__", "backup_size_bytes"), ("db", "main")]));
        assert_eq!(one.series[0].samples, vec![Sample::new(5_000, 123.0)]);
        let many = parse(
            r#"[{"name":"a","value":1,"timestamp":"1970-01-01T00:00:01Z"},{"name":"b","value":2,"timestamp":2}]"#,
        );
        assert_eq!(many.series.len(), 2);
        assert_eq!(many.series[0].samples[0].timestamp, 1_000);
        assert_eq!(many.series[1].samples[0].timestamp, 2_000);
        assert_eq!(parse(r#"{"metrics":[{"name":"c","value":3}]}"#).series.len(), 1);
    }

    #[test]
    fn invalid_metrics_are_refused_with_their_index() {
        let converted = parse(
            r#"[{"name":"ok","value":1},{"name":"bad name","value":1},{"name":"x","labels":{"1bad":"v"},"value":1},{"name":"","value":1}]"#,
        );
        assert_eq!(converted.series.len(), 1);
        let indexes: Vec<usize> = converted.rejections.iter().map(|(i, _)| *i).collect();
        assert_eq!(indexes, [1, 2, 3]);
    }

    #[test]
    fn unknown_fields_and_non_numbers_do_not_parse() {
        assert!(serde_json::from_str::<PushBody>(r#"{"name":"a","value":"NaN"}"#).is_err());
        assert!(serde_json::from_str::<PushBody>(r#"{"name":"a","value":1,"colour":"red"}"#).is_err());
    }
}
