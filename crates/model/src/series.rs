//! Series, samples and label matchers: the metrics vocabulary, and the two seams of the
//! metrics store. Producers (scrape, remote_write, collectors, checks) write through
//! [`Appender`]; consumers (PromQL, rules, dashboard) read through [`Querier`]. Neither sees
//! how or where samples are stored.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The label that holds a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// Prometheus's staleness marker: a NaN with this exact bit pattern ends a series.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether `value` is the staleness marker (not just any NaN).
pub fn is_stale_marker(value: f64) -> bool {
    value.to_bits() == STALE_NAN_BITS
}

pub fn stale_marker() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// One measurement: milliseconds since the epoch and a value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub timestamp: i64,
    pub value: f64,
}

impl Sample {
    pub fn new(timestamp: i64, value: f64) -> Self {
        Self { timestamp, value }
    }
}

/// A label set, sorted by name with no name twice. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Labels(Arc<[(String, String)]>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelsError {
    #[error("invalid label name {0:?}: use letters, digits and underscores, not starting with a digit")]
    InvalidName(String),
    #[error("invalid metric name {0:?}: use letters, digits, underscores and colons, not starting with a digit")]
    InvalidMetricName(String),
    #[error("label {0:?} appears more than once")]
    Duplicate(String),
    #[error("the metric name (label __name__) is missing or empty")]
    MissingName,
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_' | b':'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

impl Labels {
    /// Validates names, sorts, and refuses duplicates. Labels with empty values are dropped,
    /// as Prometheus treats them as absent.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Result<Self, LabelsError> {
        let mut pairs: Vec<(String, String)> = pairs.into_iter().filter(|(_, value)| !value.is_empty()).collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        for window in pairs.windows(2) {
            if window[0].0 == window[1].0 {
                return Err(LabelsError::Duplicate(window[0].0.clone()));
            }
        }
        for (name, value) in &pairs {
            if name == METRIC_NAME {
                if !is_valid_metric_name(value) {
                    return Err(LabelsError::InvalidMetricName(value.clone()));
                }
            } else if !is_valid_label_name(name) {
                return Err(LabelsError::InvalidName(name.clone()));
            }
        }
        Ok(Self(pairs.into()))
    }

    /// Like [`Labels::new`], and the metric name must be present.
    pub fn new_series(pairs: impl IntoIterator<Item = (String, String)>) -> Result<Self, LabelsError> {
        let labels = Self::new(pairs)?;
        match labels.metric_name() {
            Some(_) => Ok(labels),
            None => Err(LabelsError::MissingName),
        }
    }

    /// Builds from pairs already known to be valid, sorted and unique (decoded from our own
    /// storage). Still sorts, so a mistake cannot break lookups.
    pub fn from_trusted(mut pairs: Vec<(String, String)>) -> Self {
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        Self(pairs.into())
    }

    /// Convenience for tests and code with literal labels: `Labels::from_static(&[("job", "x")])`.
    pub fn from_static(pairs: &[(&str, &str)]) -> Self {
        Self::from_trusted(pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.binary_search_by(|(n, _)| n.as_str().cmp(name)).ok().map(|i| self.0[i].1.as_str())
    }

    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Identifies this label set's allocation: two clones of one `Labels` share it. Callers
    /// may cache per label set by it as long as they keep a clone alive (so the address
    /// cannot be reused); equal label sets built separately have different identities.
    pub fn identity(&self) -> usize {
        Arc::as_ptr(&self.0) as *const () as usize
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A copy with `name` set to `value` (removed when `value` is empty).
    pub fn with(&self, name: &str, value: &str) -> Self {
        let mut pairs: Vec<(String, String)> = self.0.iter().filter(|(n, _)| n != name).cloned().collect();
        if !value.is_empty() {
            pairs.push((name.to_string(), value.to_string()));
        }
        Self::from_trusted(pairs)
    }

    /// A copy without the named labels.
    pub fn without(&self, names: &[&str]) -> Self {
        Self(self.0.iter().filter(|(n, _)| !names.contains(&n.as_str())).cloned().collect::<Vec<_>>().into())
    }

    pub fn to_vec(&self) -> Vec<(String, String)> {
        self.0.to_vec()
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Prometheus notation: `name{a="b", c="d"}`.
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.metric_name() {
            f.write_str(name)?;
        }
        f.write_str("{")?;
        let mut first = true;
        for (name, value) in self.iter().filter(|(n, _)| *n != METRIC_NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{name}={value:?}")?;
        }
        f.write_str("}")
    }
}

impl Serialize for Labels {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (name, value) in self.iter() {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// How a matcher compares a label's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

/// A label matcher, `name op "value"`. A missing label matches as the empty string, as in
/// Prometheus.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<regex::Regex>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid regular expression {pattern:?} for label {name}: {reason}")]
pub struct MatcherError {
    pub name: String,
    pub pattern: String,
    pub reason: String,
}

impl Matcher {
    pub fn new(name: impl Into<String>, op: MatchOp, value: impl Into<String>) -> Result<Self, MatcherError> {
        let name = name.into();
        let value = value.into();
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => {
                // Prometheus anchors regexes at both ends.
                let anchored = format!("^(?s:{value})$");
                Some(regex::Regex::new(&anchored).map_err(|e| MatcherError {
                    name: name.clone(),
                    pattern: value.clone(),
                    reason: e.to_string(),
                })?)
            }
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Self { name, op, value, regex })
    }

    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self { name: name.into(), op: MatchOp::Equal, value: value.into(), regex: None }
    }

    /// Whether a label value (empty when the label is absent) satisfies this matcher.
    pub fn matches(&self, value: &str) -> bool {
        match (&self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Regex, Some(regex)) => regex.is_match(value),
            (MatchOp::NotRegex, Some(regex)) => !regex.is_match(value),
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }

    /// Whether this matcher accepts a series that lacks the label.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    pub fn matches_labels(&self, labels: &Labels) -> bool {
        self.matches(labels.get(&self.name).unwrap_or(""))
    }
}

/// A series and its samples in a time range, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// Samples for one series, as handed to an [`Appender`].
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSamples {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// Why some samples of an append were not stored. The rest of the batch is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// The series, in Prometheus notation.
    pub series: String,
    pub reason: String,
}

/// What an append stored and refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AppendReport {
    pub accepted: usize,
    pub rejected: usize,
    /// Up to a handful of examples of what was refused and why.
    pub rejections: Vec<Rejection>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the metrics store cannot write: {0}")]
    Write(String),
    #[error("the metrics store cannot read: {0}")]
    Read(String),
    #[error("query limit exceeded: {0}")]
    Limit(String),
}

/// Where samples go. Durable when it returns `Ok`: acknowledged samples survive a crash.
pub trait Appender: Send + Sync {
    fn append(&self, batch: Vec<SeriesSamples>) -> Result<AppendReport, StoreError>;
}

/// Where samples come from.
pub trait Querier: Send + Sync {
    /// Series matching every matcher, with their samples in `[start, end]` (ms, inclusive).
    fn select(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<Series>, StoreError>;

    /// Label names of series matching `matchers` (all series when empty), sorted.
    fn label_names(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<String>, StoreError>;

    /// Values of `name` among series matching `matchers`, sorted.
    fn label_values(&self, name: &str, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<String>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn labels_are_sorted_validated_and_unique() {
        let labels = Labels::new_series(pairs(&[("job", "api"), ("__name__", "up"), ("instance", "a:1")])).unwrap();
        assert_eq!(labels.to_string(), r#"up{instance="a:1", job="api"}"#);
        assert_eq!(labels.get("job"), Some("api"));
        assert_eq!(labels.metric_name(), Some("up"));
        assert_eq!(Labels::new(pairs(&[("a", "1"), ("a", "2")])), Err(LabelsError::Duplicate("a".into())));
        assert_eq!(Labels::new(pairs(&[("1a", "x")])), Err(LabelsError::InvalidName("1a".into())));
        assert_eq!(
            Labels::new(pairs(&[("__name__", "bad-name")])),
            Err(LabelsError::InvalidMetricName("bad-name".into()))
        );
        assert_eq!(Labels::new_series(pairs(&[("job", "x")])), Err(LabelsError::MissingName));
        assert_eq!(Labels::new_series(pairs(&[("__name__", ""), ("job", "x")])), Err(LabelsError::MissingName));
        assert_eq!(Labels::new(pairs(&[("a", "")])).unwrap().len(), 0, "empty values mean absent");
    }

    #[test]
    fn matchers_follow_prometheus_semantics() {
        let regex = Matcher::new("instance", MatchOp::Regex, "web-.*").unwrap();
        assert!(regex.matches("web-1"));
        assert!(!regex.matches("xweb-1"), "anchored");
        assert!(!regex.matches_empty());
        let not_equal = Matcher::new("env", MatchOp::NotEqual, "prod").unwrap();
        assert!(not_equal.matches_empty(), "absent label is the empty string");
        assert!(Matcher::new("x", MatchOp::Regex, "(").is_err());
    }

    #[test]
    fn only_the_exact_stale_nan_is_a_stale_marker() {
        assert!(is_stale_marker(stale_marker()));
        assert!(!is_stale_marker(f64::NAN));
    }
}
