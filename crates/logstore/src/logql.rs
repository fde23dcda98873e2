//! A LogQL subset, so Grafana's Loki data source works against hubmon:
//!
//! - stream selectors `{service="api", level=~"error|critical", host!="db1"}`, where any field
//!   of a line can be a label (not only the low-cardinality ones Loki would index);
//! - line filters `|= "x"`, `!= "x"`, `|~ "re"`, `!~ "re"` (case-sensitive, like Loki);
//! - `| json` and `| logfmt`: expose the line's fields as labels (hubmon parsed them at
//!   ingest) and parse the message itself when it is JSON or logfmt;
//! - label filters `| status >= 500`, `| level="error", duration_ms > 2000`, `=~`, `!~`;
//! - `| regexp "(?P<name>…)"` and `| pattern "<ip> - <_> \"<method> <path>\""`: labels from
//!   the line's text;
//! - `| line_format "{{.service}}: {{.message}}"`, `| decolorize` (drops ANSI colour codes);
//! - `| drop a, b="x"` and `| keep a, b` (hubmon never sets `__error__`, so Grafana's
//!   `| drop __error__` changes nothing);
//! - `count_over_time`, `rate`, `bytes_over_time`, `bytes_rate` over `[range]`;
//! - `| unwrap duration_ms` (also `duration(…)`, `duration_seconds(…)`, `bytes(…)`) with
//!   `sum/avg/min/max/first/last/stddev/stdvar_over_time`, `quantile_over_time(φ, …)` and
//!   `rate`, optionally `by|without (…)`: latency and size statistics from log lines;
//! - `sum/avg/max/min/count by|without (…)`, `topk/bottomk(k, …)` around them.
//!
//! A line's stream labels are its level, category, service, host and module. Regular
//! expressions use the `regex` crate (linear time) with a compile-size limit, so a
//! pathological pattern is refused or bounded instead of hanging a query.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use hubmon_model::{LogEntry, MODEL_FIELDS, PromDuration};
use regex::{Regex, RegexBuilder};

use crate::codec::hash64;
use crate::head::KeyMap;
use crate::query::{Expr, Predicate};
use crate::{LineFields, LogStore, text};

/// Lines one query may decode; beyond it the query fails instead of taking minutes.
pub const MAX_SCANNED_LINES: usize = 2_000_000;
/// Messages one metric query may read from their blocks for line filters and parsers,
/// without decoding the rest of the line (about 0.5 µs each: a few seconds' work).
pub const MAX_MESSAGE_LINES: usize = 10_000_000;
/// Lines one metric query may read from in-memory columns without decoding them (a few
/// seconds' work).
pub const MAX_COLUMN_LINES: usize = 50_000_000;
/// Samples the window-reading range functions (quantile, min, max, stddev, …) may visit over
/// all steps of one query: each step reads its whole window, so a long range at a small step
/// multiplies the work.
pub const MAX_WINDOW_SAMPLES: usize = 50_000_000;
const REGEX_SIZE_LIMIT: usize = 1 << 20;
use crate::partition::STREAM_LABELS;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LogqlError {
    #[error("parse error at position {position}: {message}")]
    Parse { position: usize, message: String },
    #[error("{0}")]
    Limit(String),
    #[error("{0}")]
    Store(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MatchOp {
    Eq,
    Ne,
    Re,
    Nre,
}

#[derive(Debug, Clone)]
struct LabelMatcher {
    name: String,
    op: MatchOp,
    value: String,
    regex: Option<Regex>,
}

impl LabelMatcher {
    fn matches(&self, actual: &str) -> bool {
        match self.op {
            MatchOp::Eq => actual == self.value,
            MatchOp::Ne => actual != self.value,
            MatchOp::Re => self.regex.as_ref().is_some_and(|r| r.is_match(actual)),
            MatchOp::Nre => !self.regex.as_ref().is_some_and(|r| r.is_match(actual)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone)]
enum Condition {
    Match(LabelMatcher),
    Number { name: String, op: CmpOp, value: f64 },
}

#[derive(Debug, Clone)]
enum Stage {
    Contains(String),
    NotContains(String),
    Matches(Regex),
    NotMatches(Regex),
    Json,
    Logfmt,
    Filter(Vec<Condition>),
    LineFormat(String),
    Regexp(Regex),
    Pattern(Vec<PatternPart>),
    Unwrap {
        label: String,
        conversion: Conversion,
    },
    /// `| drop a, b="x"`: removes the labels named (those whose value matches, for a matcher).
    Drop(Vec<LabelRef>),
    /// `| keep a, b="x"`: removes every label but those named.
    Keep(Vec<LabelRef>),
    /// `| decolorize`: removes ANSI colour codes from the line.
    Decolorize,
}

/// A label that `drop` or `keep` names, with a matcher its value must pass when given.
#[derive(Debug, Clone)]
struct LabelRef {
    name: String,
    matcher: Option<LabelMatcher>,
}

impl LabelRef {
    fn names(refs: &[LabelRef], name: &str, value: &str) -> bool {
        refs.iter().any(|r| r.name == name && r.matcher.as_ref().is_none_or(|m| m.matches(value)))
    }
}

impl Stage {
    /// Whether a line filter keeps `line`; `None` for the stages that are not line filters.
    fn keeps(&self, line: &str) -> Option<bool> {
        Some(match self {
            Stage::Contains(needle) => line.contains(needle.as_str()),
            Stage::NotContains(needle) => !line.contains(needle.as_str()),
            Stage::Matches(regex) => regex.is_match(line),
            Stage::NotMatches(regex) => !regex.is_match(line),
            _ => return None,
        })
    }
}

/// A piece of a `| pattern` expression.
#[derive(Debug, Clone, PartialEq)]
enum PatternPart {
    Literal(String),
    /// `<name>`, or `<_>` (`None`): the text up to the next literal.
    Capture(Option<String>),
}

/// How `| unwrap` turns a label's text into a sample value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conversion {
    /// A plain number (or a duration like `250ms`, as seconds).
    Number,
    /// A Go-style duration (`1.5s`, `2m3s`, `250ms`), as seconds.
    Duration,
    /// A size such as `10KB` or `1.5MiB`, as bytes.
    Bytes,
}

/// A log query: a selector and a pipeline.
#[derive(Debug, Clone)]
pub struct LogQuery {
    matchers: Vec<LabelMatcher>,
    stages: Vec<Stage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeFn {
    CountOverTime,
    Rate,
    BytesOverTime,
    BytesRate,
    SumOverTime,
    AvgOverTime,
    MinOverTime,
    MaxOverTime,
    FirstOverTime,
    LastOverTime,
    StddevOverTime,
    StdvarOverTime,
    QuantileOverTime,
}

impl RangeFn {
    /// Whether the function of a set of lines is the sum of its values over any split of
    /// them (so a sum of per-stream series equals it over their lines together).
    fn adds_up(self) -> bool {
        matches!(
            self,
            RangeFn::CountOverTime | RangeFn::Rate | RangeFn::BytesOverTime | RangeFn::BytesRate | RangeFn::SumOverTime
        )
    }

    fn named(name: &str) -> Option<RangeFn> {
        Some(match name {
            "count_over_time" => RangeFn::CountOverTime,
            "rate" => RangeFn::Rate,
            "bytes_over_time" => RangeFn::BytesOverTime,
            "bytes_rate" => RangeFn::BytesRate,
            "sum_over_time" => RangeFn::SumOverTime,
            "avg_over_time" => RangeFn::AvgOverTime,
            "min_over_time" => RangeFn::MinOverTime,
            "max_over_time" => RangeFn::MaxOverTime,
            "first_over_time" => RangeFn::FirstOverTime,
            "last_over_time" => RangeFn::LastOverTime,
            "stddev_over_time" => RangeFn::StddevOverTime,
            "stdvar_over_time" => RangeFn::StdvarOverTime,
            "quantile_over_time" => RangeFn::QuantileOverTime,
            _ => return None,
        })
    }

    /// Whether the function reads unwrapped values (`rate` may, or may count lines).
    fn needs_unwrap(self) -> Option<bool> {
        match self {
            RangeFn::CountOverTime | RangeFn::BytesOverTime | RangeFn::BytesRate => Some(false),
            RangeFn::Rate => None,
            _ => Some(true),
        }
    }

    /// The value of a function that reads its whole window (the samples, oldest first);
    /// counts and sums are taken from prefix sums instead (`evaluate_metric`).
    fn over(self, values: &[f64], quantile: f64) -> f64 {
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let variance = || values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / values.len() as f64;
        match self {
            RangeFn::MinOverTime => values.iter().copied().fold(f64::INFINITY, f64::min),
            RangeFn::MaxOverTime => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            RangeFn::FirstOverTime => values.first().copied().unwrap_or(f64::NAN),
            RangeFn::LastOverTime => values.last().copied().unwrap_or(f64::NAN),
            RangeFn::StdvarOverTime => variance(),
            RangeFn::StddevOverTime => variance().sqrt(),
            RangeFn::QuantileOverTime => quantile_of(values, quantile),
            RangeFn::CountOverTime
            | RangeFn::Rate
            | RangeFn::BytesOverTime
            | RangeFn::BytesRate
            | RangeFn::SumOverTime
            | RangeFn::AvgOverTime => f64::NAN,
        }
    }
}

/// The φ-quantile of `values` with linear interpolation between the closest ranks, as
/// Prometheus's `quantile_over_time` computes it (φ outside [0, 1] gives ±Inf).
fn quantile_of(values: &[f64], phi: f64) -> f64 {
    if values.is_empty() || phi.is_nan() {
        return f64::NAN;
    }
    if phi < 0.0 {
        return f64::NEG_INFINITY;
    }
    if phi > 1.0 {
        return f64::INFINITY;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = phi * (sorted.len() - 1) as f64;
    let (lower, upper) = (rank.floor() as usize, rank.ceil() as usize);
    let weight = rank - rank.floor();
    sorted[lower] * (1.0 - weight) + sorted[upper] * weight
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Topk,
    Bottomk,
}

#[derive(Debug, Clone)]
pub enum MetricQuery {
    Range {
        function: RangeFn,
        query: LogQuery,
        range_ms: i64,
        /// φ of `quantile_over_time`.
        quantile: f64,
        /// `by`/`without` on an unwrapped range function: samples of the lines whose kept
        /// labels agree are one series.
        grouping: Option<(Vec<String>, bool)>,
    },
    Aggregate {
        op: AggOp,
        by: Vec<String>,
        without: bool,
        k: usize,
        inner: Box<MetricQuery>,
    },
}

#[derive(Debug, Clone)]
pub enum LogqlQuery {
    Log(LogQuery),
    Metric(MetricQuery),
}

pub type Labels = BTreeMap<String, String>;

/// Lines of one stream (one label set), in the order asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    pub labels: Labels,
    /// (timestamp ms, line)
    pub entries: Vec<(i64, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    /// (timestamp ms, value)
    pub points: Vec<(i64, f64)>,
}

/// Time range and shape of an evaluation.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub start: i64,
    pub end: i64,
    pub step: i64,
    /// Most lines a log query returns.
    pub limit: usize,
    /// Newest first (Loki's default `backward`).
    pub backward: bool,
}

impl LogqlQuery {
    pub fn parse(input: &str) -> Result<LogqlQuery, LogqlError> {
        let mut parser = Parser { chars: input.chars().collect(), at: 0 };
        parser.skip_space();
        let query = if parser.peek() == Some('{') {
            let query = parser.log_query()?;
            if query.unwraps() {
                return parser.fail("`unwrap` belongs in a metric query, such as avg_over_time({…} | unwrap x [5m])");
            }
            LogqlQuery::Log(query)
        } else {
            LogqlQuery::Metric(parser.metric()?)
        };
        parser.skip_space();
        if parser.at < parser.chars.len() {
            return parser.fail("unexpected text after the query");
        }
        Ok(query)
    }

    pub fn is_metric(&self) -> bool {
        matches!(self, LogqlQuery::Metric(_))
    }
}

impl LogQuery {
    /// What the store's index can answer for this query: exact-match labels, and the whole
    /// words inside each `|=` line filter that runs on the original message.
    fn prefilter(&self) -> Expr {
        let mut parts: Vec<Expr> = self
            .matchers
            .iter()
            .filter(|m| m.op == MatchOp::Eq && !m.value.is_empty())
            .map(|m| Expr::Is(Predicate::FieldIs { field: m.name.clone(), values: vec![text::lower(&m.value)] }))
            .collect();
        for stage in &self.stages {
            match stage {
                Stage::LineFormat(_) | Stage::Decolorize => break,
                Stage::Contains(needle) => parts.extend(inner_words(needle).map(|w| Expr::Is(Predicate::Text(w)))),
                _ => {}
            }
        }
        match parts.len() {
            0 => Expr::All,
            1 => parts.into_iter().next().unwrap_or(Expr::All),
            _ => Expr::And(parts),
        }
    }

    /// Runs the selector and pipeline on one line: its output labels and line, or `None`.
    pub fn process(&self, entry: &LogEntry) -> Option<(Labels, String)> {
        self.run(entry).map(|(labels, line, _)| (labels, line))
    }

    fn unwraps(&self) -> bool {
        self.stages.iter().any(|s| matches!(s, Stage::Unwrap { .. }))
    }

    /// `process`, plus the value `| unwrap` took from the line. A line whose label is
    /// missing or does not convert is dropped from the sample (Loki marks it with an
    /// `__error__` label instead).
    fn run(&self, entry: &LogEntry) -> Option<(Labels, String, Option<f64>)> {
        let mut value = None;
        for matcher in &self.matchers {
            let actual = entry.field_text(&matcher.name).unwrap_or_default();
            if !matcher.matches(&actual) {
                return None;
            }
        }
        let mut labels: Labels =
            STREAM_LABELS.iter().filter_map(|name| entry.field_text(name).map(|v| (name.to_string(), v))).collect();
        let mut line = entry.message.clone();
        for stage in &self.stages {
            if let Some(keeps) = stage.keeps(&line) {
                if !keeps {
                    return None;
                }
                continue;
            }
            match stage {
                Stage::Contains(_) | Stage::NotContains(_) | Stage::Matches(_) | Stage::NotMatches(_) => {}
                Stage::Json | Stage::Logfmt => {
                    extract_fields(entry, &line, &mut labels, matches!(stage, Stage::Json));
                }
                Stage::Filter(conditions) => {
                    for condition in conditions {
                        if !condition_holds(condition, &labels, entry) {
                            return None;
                        }
                    }
                }
                Stage::LineFormat(template) => line = render(template, &labels, entry, &line),
                Stage::Regexp(regex) => {
                    if let Some(captures) = regex.captures(&line) {
                        for name in regex.capture_names().flatten() {
                            if let Some(m) = captures.name(name) {
                                insert_parsed(entry, &mut labels, name, m.as_str().to_string());
                            }
                        }
                    }
                }
                Stage::Pattern(parts) => {
                    for (name, text) in match_pattern(parts, &line).unwrap_or_default() {
                        insert_parsed(entry, &mut labels, &name, text);
                    }
                }
                Stage::Unwrap { label, conversion } => {
                    let text = label_value(label, &labels, entry)?;
                    value = Some(convert(&text, *conversion)?);
                    labels.remove(label);
                }
                Stage::Drop(refs) => labels.retain(|name, value| !LabelRef::names(refs, name, value)),
                Stage::Keep(refs) => labels.retain(|name, value| LabelRef::names(refs, name, value)),
                Stage::Decolorize => line = decolorize(&line),
            }
        }
        Some((labels, line, value))
    }
}

/// The part of a `|=` needle between its first and last non-word characters, lower-cased,
/// when it holds a word: a line containing the needle contains that part with non-word
/// characters on both sides, so it matches it as a search term and the index can find it.
/// The first and last runs of word characters are left out because in the line they may
/// continue into longer words. ASCII only, where lower-casing cannot change which
/// characters are word characters.
fn inner_words(needle: &str) -> Option<String> {
    if !needle.is_ascii() {
        return None;
    }
    let first = needle.find(|c: char| !text::is_word_char(c))?;
    let last = needle.rfind(|c: char| !text::is_word_char(c))?;
    let inner = &needle[first..=last];
    inner.chars().any(text::is_word_char).then(|| text::lower(inner))
}

/// Adds the entry's fields (nested objects flattened with `_`, like Loki's json parser) and
/// the fields of a JSON or logfmt message as labels. A value the model refused for one of its
/// own fields (an array under `service`, say) is kept with the line but not extracted again:
/// the model field is that label.
fn extract_fields(entry: &LogEntry, line: &str, labels: &mut Labels, json: bool) {
    for name in ["request_id", "user_id", "function", "line"] {
        if let Some(value) = entry.field_text(name) {
            labels.insert(name.to_string(), value);
        }
    }
    for (k, v) in &entry.fields {
        if v.is_object() || !MODEL_FIELDS.contains(&k.as_str()) {
            flatten(&sanitize(k), v, &mut |name, value| insert_parsed(entry, labels, &name, value));
        }
    }
    for (name, value) in parsed_labels(line, json) {
        insert_parsed(entry, labels, &name, value);
    }
}

/// Gives `value`'s labels to `add`: a scalar is one label named `prefix`, an object's
/// members are flattened with `_`, like Loki's json parser.
fn flatten(prefix: &str, value: &serde_json::Value, add: &mut dyn FnMut(String, String)) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() { sanitize(k) } else { format!("{prefix}_{}", sanitize(k)) };
                flatten(&key, v, add);
            }
        }
        other => {
            if let Some(text) = hubmon_model::json_text(other) {
                add(prefix.to_string(), text);
            }
        }
    }
}

/// Adds a label a parser found. One named like a stream label the line has is added as
/// `<name>_extracted`, as Loki does: parsing never changes which stream a line is in.
fn insert_parsed(entry: &LogEntry, labels: &mut Labels, name: &str, value: String) {
    if STREAM_LABELS.contains(&name) && entry.field_text(name).is_some() {
        labels.insert(format!("{name}_extracted"), value);
    } else {
        labels.insert(name.to_string(), value);
    }
}

/// `line` without ANSI escape sequences (`ESC [ … letter`), such as the colour codes of
/// a terminal logger.
fn decolorize(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find('\u{1b}') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(sequence) = rest.strip_prefix('[') {
            let end = sequence.find(|c: char| c.is_ascii_alphabetic()).map_or(sequence.len(), |e| e + 1);
            rest = &sequence[end..];
        }
    }
    out.push_str(rest);
    out
}

fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

fn label_value(name: &str, labels: &Labels, entry: &LogEntry) -> Option<String> {
    labels.get(name).cloned().or_else(|| entry.field_text(name))
}

fn condition_holds(condition: &Condition, labels: &Labels, entry: &LogEntry) -> bool {
    condition.holds(label_value(condition.name(), labels, entry).as_deref())
}

impl Condition {
    fn name(&self) -> &str {
        match self {
            Condition::Match(matcher) => &matcher.name,
            Condition::Number { name, .. } => name,
        }
    }

    /// Whether the condition holds where its label has `actual` (`None`: the line lacks it).
    fn holds(&self, actual: Option<&str>) -> bool {
        match self {
            Condition::Match(matcher) => matcher.matches(actual.unwrap_or_default()),
            Condition::Number { op, value, .. } => {
                let Some(actual) = actual.and_then(parse_number) else {
                    return false;
                };
                match op {
                    CmpOp::Eq => actual == *value,
                    CmpOp::Ne => actual != *value,
                    CmpOp::Gt => actual > *value,
                    CmpOp::Ge => actual >= *value,
                    CmpOp::Lt => actual < *value,
                    CmpOp::Le => actual <= *value,
                }
            }
        }
    }
}

/// A number, or a duration such as `250ms` / `2s` (as seconds, like Loki).
fn parse_number(text: &str) -> Option<f64> {
    let text = text.trim();
    text.parse::<f64>().ok().or_else(|| {
        let (digits, factor) = if let Some(d) = text.strip_suffix("ms") {
            (d, 0.001)
        } else if let Some(d) = text.strip_suffix('s') {
            (d, 1.0)
        } else if let Some(d) = text.strip_suffix('m') {
            (d, 60.0)
        } else {
            return None;
        };
        digits.parse::<f64>().ok().map(|v| v * factor)
    })
}

/// The captures of a `| pattern` on `line`: a leading literal must start the line, each
/// capture runs to the next occurrence of the literal after it (a last capture to the end of
/// the line). `None` when a literal is missing; then the line gets no labels, as in Loki.
fn match_pattern(parts: &[PatternPart], line: &str) -> Option<Vec<(String, String)>> {
    let mut rest = line;
    let mut out = Vec::new();
    let mut parts = parts.iter().peekable();
    while let Some(part) = parts.next() {
        match part {
            PatternPart::Literal(literal) => rest = rest.strip_prefix(literal.as_str())?,
            PatternPart::Capture(name) => {
                let end = match parts.peek() {
                    Some(PatternPart::Literal(next)) => rest.find(next.as_str())?,
                    _ => rest.len(),
                };
                if let Some(name) = name {
                    out.push((name.clone(), rest[..end].to_string()));
                }
                rest = &rest[end..];
            }
        }
    }
    Some(out)
}

/// Parses a `| pattern` expression; two captures in a row would have no literal between
/// them to end the first, so they are refused.
fn parse_pattern(text: &str) -> Result<Vec<PatternPart>, String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let capture = rest.find('<').and_then(|open| {
            let close = open + rest[open..].find('>')?;
            let name = &rest[open + 1..close];
            let valid = name == "_"
                || (!name.is_empty()
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !name.starts_with(|c: char| c.is_ascii_digit()));
            valid.then_some((open, close, name))
        });
        let Some((open, close, name)) = capture else {
            parts.push(PatternPart::Literal(rest.to_string()));
            break;
        };
        if open > 0 {
            parts.push(PatternPart::Literal(rest[..open].to_string()));
        }
        if matches!(parts.last(), Some(PatternPart::Capture(_))) {
            return Err(format!("captures <…> must be separated by text, at <{name}>"));
        }
        parts.push(PatternPart::Capture((name != "_").then(|| name.to_string())));
        rest = &rest[close + 1..];
    }
    if !parts.iter().any(|p| matches!(p, PatternPart::Capture(Some(_)))) {
        return Err("a pattern needs at least one named capture such as <status>".into());
    }
    Ok(parts)
}

/// A label's text as an unwrapped sample value.
fn convert(text: &str, conversion: Conversion) -> Option<f64> {
    let text = text.trim();
    match conversion {
        Conversion::Number => parse_number(text),
        Conversion::Duration => go_duration_seconds(text),
        Conversion::Bytes => bytes_value(text),
    }
}

/// `1.5s`, `2m3s`, `250ms`, `1h`, `-3us`, `0`: a Go duration string, as seconds.
fn go_duration_seconds(text: &str) -> Option<f64> {
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Some(0.0);
    }
    let mut total = 0.0;
    let mut any = false;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * factor;
        any = true;
    }
    any.then_some(if negative { -total } else { total })
}

/// `512`, `10KB`, `1.5 MiB`, `3gb`: a size, as bytes (kB = 1000, KiB = 1024).
fn bytes_value(text: &str) -> Option<f64> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let number: f64 = text[..split].parse().ok()?;
    let unit = text[split..].trim().to_ascii_lowercase();
    let factor = match unit.as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "pb" | "p" => 1e15,
        "kib" | "ki" => 1024.0,
        "mib" | "mi" => 1024.0 * 1024.0,
        "gib" | "gi" => 1024.0 * 1024.0 * 1024.0,
        "tib" | "ti" => 1024.0f64.powi(4),
        "pib" | "pi" => 1024.0f64.powi(5),
        _ => return None,
    };
    Some(number * factor)
}

/// `{{.name}}` and `{{ .name }}` replaced by label values (`.message`/`.line`: the line).
fn render(template: &str, labels: &Labels, entry: &LogEntry, line: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find("}}") else {
            out.push_str(&rest[open..]);
            return out;
        };
        let name = rest[open + 2..open + close].trim().trim_start_matches('.');
        let value = match name {
            "message" | "line" | "__line__" => Some(line.to_string()),
            _ => label_value(name, labels, entry),
        };
        out.push_str(&value.unwrap_or_default());
        rest = &rest[open + close + 2..];
    }
    out.push_str(rest);
    out
}

/// Runs a log query: matching lines grouped into streams, at most `range.limit` lines.
pub fn select_logs(store: &LogStore, query: &LogQuery, range: Range) -> Result<Vec<Stream>, LogqlError> {
    let prefilter = query.prefilter();
    let mut picked: Vec<(i64, u64, Labels, String)> = Vec::new();
    let store_error = |e: crate::Error| LogqlError::Store(e.to_string());
    if range.backward {
        let mut cursor = None;
        'pages: loop {
            let request = crate::SearchRequest {
                query: prefilter.clone(),
                from: range.start,
                to: range.end.saturating_add(1),
                limit: 1000,
                cursor,
            };
            let page = store.search(&request).map_err(store_error)?;
            for hit in &page.hits {
                if let Some((labels, line)) = query.process(&hit.entry) {
                    picked.push((hit.entry.timestamp.as_millis(), hit.id, labels, line));
                    if picked.len() >= range.limit {
                        break 'pages;
                    }
                }
            }
            match page.next_cursor.as_deref().and_then(crate::Cursor::parse) {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    } else {
        let lines =
            store.scan(&prefilter, range.start, range.end.saturating_add(1), MAX_SCANNED_LINES).map_err(store_error)?;
        for stored in lines {
            if let Some((labels, line)) = query.process(&stored.entry) {
                picked.push((stored.entry.timestamp.as_millis(), stored.id, labels, line));
                if picked.len() >= range.limit {
                    break;
                }
            }
        }
    }
    let mut streams: Vec<Stream> = Vec::new();
    let mut positions: HashMap<Labels, usize> = HashMap::new();
    for (ts, _, labels, line) in picked {
        let index = *positions.entry(labels.clone()).or_insert_with(|| {
            streams.push(Stream { labels, entries: Vec::new() });
            streams.len() - 1
        });
        streams[index].entries.push((ts, line));
    }
    Ok(streams)
}

/// Evaluates a metric query at every step of `range` (an instant query is a range with
/// `start == end`).
pub fn evaluate_metric(store: &LogStore, query: &MetricQuery, range: Range) -> Result<Vec<Series>, LogqlError> {
    match query {
        MetricQuery::Range { function, query, range_ms, quantile, grouping } => {
            let grouping = grouping.as_ref().map(|(names, without)| (names.as_slice(), *without));
            // Counts and sums need only each window's total, so lines are binned; the other
            // functions read every window's samples.
            let unwrapped = query.unwraps();
            let from = range.start - range_ms + 1;
            let to = range.end.saturating_add(1);
            let mut sampler = Sampler::new(range, *range_ms, !unwrapped);
            let mut add = |labels: &[(&str, &str)], ts, id, value| sampler.add(labels, ts, id, value);
            if !each_selected(store, query, from, to, grouping, Reading::Columns, &mut add)? {
                sampler = Sampler::new(range, *range_ms, !unwrapped);
                each_selected(store, query, from, to, grouping, Reading::Decoded, |labels, ts, id, value| {
                    sampler.add(labels, ts, id, value)
                })?;
            }
            sampler.series(*function, unwrapped, *quantile)
        }
        MetricQuery::Aggregate { op: AggOp::Sum, by, without, k, inner } => {
            // A sum of a function that adds lines up (a count, a rate, a sum of values) is
            // the function over each group's lines: grouped as they are read, a query whose
            // parser finds a request id per line stays a few series instead of millions, and
            // its labels are known, so segments can answer it from columns.
            let inner = match inner.as_ref() {
                MetricQuery::Range { function, query, range_ms, quantile, grouping: None } if function.adds_up() => {
                    MetricQuery::Range {
                        function: *function,
                        query: query.clone(),
                        range_ms: *range_ms,
                        quantile: *quantile,
                        grouping: Some((by.clone(), *without)),
                    }
                }
                other => other.clone(),
            };
            let inner = evaluate_metric(store, &inner, range)?;
            Ok(aggregate(AggOp::Sum, by, *without, *k, inner))
        }
        MetricQuery::Aggregate { op, by, without, k, inner } => {
            let inner = evaluate_metric(store, inner, range)?;
            Ok(aggregate(*op, by, *without, *k, inner))
        }
    }
}

/// How [`each_selected`] may read lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// From columns where it can, decoding lines elsewhere.
    Columns,
    /// Every line decoded and run through the pipeline.
    Decoded,
}

/// Calls `visit` with the labels, time, id and sample value (the unwrapped value, or the
/// output line's length) of every line `query` keeps in `[from, to)`, labels limited to those
/// `grouping` keeps (`by` or `without` names; all without it), in no particular order.
///
/// A bare selector or one with line filters only reads stream labels, the fields its
/// matchers name, message lengths and the messages the filters test, which format 2
/// segments hold apart from the rest of the line: no line is decoded where they do
/// ([`LogStore::scan_fields`]). With [`Reading::Columns`], a pipeline that [`ParsedPlan`]
/// covers reads the same way; it returns `false` (having visited some lines already) when a
/// line turns out to need decoding after all, and the caller starts again with
/// [`Reading::Decoded`]. Decoded lines count against [`MAX_SCANNED_LINES`], messages read
/// alone against [`MAX_MESSAGE_LINES`], every line against [`MAX_COLUMN_LINES`].
fn each_selected(
    store: &LogStore,
    query: &LogQuery,
    from: i64,
    to: i64,
    grouping: Option<(&[String], bool)>,
    reading: Reading,
    mut visit: impl FnMut(&[(&str, &str)], i64, u64, f64),
) -> Result<bool, LogqlError> {
    let store_error = |e: crate::Error| LogqlError::Store(e.to_string());
    let keep = |name: &str| grouping.is_none_or(|(names, without)| names.iter().any(|n| n == name) != without);
    let (mut decoded, mut messages, mut read) = (0usize, 0usize, 0usize);
    let mut within_budget = |line: &LineFields<'_>| {
        read += 1;
        decoded += usize::from(line.decoded);
        messages += usize::from(!line.decoded && line.message.is_some());
        decoded <= MAX_SCANNED_LINES && messages <= MAX_MESSAGE_LINES && read <= MAX_COLUMN_LINES
    };
    // Line filters need only the message, which a segment reads from its block without
    // building the rest of the line.
    let filters_only = query.stages.iter().all(|stage| stage.keeps("").is_some());
    let plan = match (filters_only, reading, grouping) {
        (false, Reading::Columns, Some((names, false))) => ParsedPlan::new(store, query, names).map_err(store_error)?,
        _ => None,
    };
    let mut complete = true;
    if filters_only {
        // Stream labels first, in name order (a label map's order, which `LabelSets`
        // compares in), then the other fields the matchers name.
        let mut fields: Vec<&str> = STREAM_LABELS.to_vec();
        fields.sort_unstable();
        let labelled = fields.len();
        for matcher in &query.matchers {
            if !fields.contains(&matcher.name.as_str()) {
                fields.push(&matcher.name);
            }
        }
        let at: Vec<usize> =
            query.matchers.iter().map(|m| fields.iter().position(|f| *f == m.name).unwrap_or(0)).collect();
        store
            .scan_fields(&query.prefilter(), from, to, &fields, !query.stages.is_empty(), |line| {
                if !within_budget(line) {
                    return false;
                }
                let selected =
                    query.matchers.iter().zip(&at).all(|(m, at)| m.matches(line.texts[*at].unwrap_or_default()))
                        && query.stages.iter().all(|stage| stage.keeps(line.message.unwrap_or_default()) == Some(true));
                if selected {
                    let mut labels = [("", ""); STREAM_LABELS.len()];
                    let mut count = 0;
                    for (name, text) in fields[..labelled].iter().zip(line.texts) {
                        if let Some(text) = text.filter(|_| keep(name)) {
                            labels[count] = (name, text);
                            count += 1;
                        }
                    }
                    visit(&labels[..count], line.timestamp, line.id, f64::from(line.message_bytes));
                }
                true
            })
            .map_err(store_error)?;
    } else if let Some(plan) = plan {
        store
            .scan_fields(&query.prefilter(), from, to, &plan.fields, true, |line| {
                if !within_budget(line) {
                    return false;
                }
                let message = line.message.unwrap_or_default();
                let mut values = Vec::with_capacity(plan.labelled);
                match plan.run(query, line.texts, message, &mut values) {
                    Err(NeedsDecoding) => {
                        complete = false;
                        return false;
                    }
                    Ok(None) => {}
                    Ok(Some(sample)) => {
                        let mut labels = Vec::with_capacity(plan.labelled);
                        for (i, value) in values.iter().enumerate().take(plan.labelled) {
                            if let Some(value) = value.as_deref().filter(|_| plan.kept[i]) {
                                labels.push((plan.fields[i], value));
                            }
                        }
                        visit(&labels, line.timestamp, line.id, sample.unwrap_or(f64::from(line.message_bytes)));
                    }
                }
                true
            })
            .map_err(store_error)?;
    } else {
        store
            .scan_each(&query.prefilter(), from, to, |stored| {
                decoded += 1;
                if decoded > MAX_SCANNED_LINES {
                    return false;
                }
                if let Some((labels, line, value)) = query.run(&stored.entry) {
                    let labels: Vec<(&str, &str)> =
                        labels.iter().map(|(n, v)| (n.as_str(), v.as_str())).filter(|(n, _)| keep(n)).collect();
                    let sample = value.unwrap_or(line.len() as f64);
                    visit(&labels, stored.entry.timestamp.as_millis(), stored.id, sample);
                }
                true
            })
            .map_err(store_error)?;
    }
    if !complete {
        return Ok(false);
    }
    if decoded > MAX_SCANNED_LINES {
        return Err(LogqlError::Limit(format!(
            "the query would decode more than {MAX_SCANNED_LINES} lines; narrow the selector or the range"
        )));
    }
    if messages > MAX_MESSAGE_LINES {
        return Err(LogqlError::Limit(format!(
            "the query would read more than {MAX_MESSAGE_LINES} messages; narrow the selector or the range"
        )));
    }
    if read > MAX_COLUMN_LINES {
        return Err(LogqlError::Limit(format!(
            "the query would read more than {MAX_COLUMN_LINES} lines; narrow the selector or the range"
        )));
    }
    Ok(true)
}

/// A line [`ParsedPlan::run`] cannot answer from its fields and message.
struct NeedsDecoding;

/// A pipeline of line filters, `json`/`logfmt` parsers, label filters and `unwrap`, grouped
/// `by` named labels, answered from the fields those labels name and the message instead of
/// the decoded line. It gives what [`LogQuery::run`] gives for those labels:
/// - a stream label is the line's (a parser adds its own value as `<name>_extracted`), or,
///   where the line has none, what a parser found in the message;
/// - a parser sets any other label to what it found in the message, else to the line's
///   field of that name (the model's own request_id, user_id, function and line included);
/// - a label filter or `unwrap` reads a label the line lacks from the field of that name.
///
/// A label that a parser could also get by flattening a nested object or by replacing
/// characters in another field's name, or one named `message`, `timestamp` or `*_extracted`,
/// leaves the query to decoding; so does a line whose field may hold an object.
struct ParsedPlan<'q> {
    /// The labels the pipeline reads (sorted, the first `labelled`), then the fields the
    /// selector's matchers name.
    fields: Vec<&'q str>,
    labelled: usize,
    /// Per label: whether the grouping keeps it, whether it is a stream label.
    kept: Vec<bool>,
    stream: Vec<bool>,
    /// Per selector matcher, where its field is in `fields`.
    matcher_at: Vec<usize>,
}

impl<'q> ParsedPlan<'q> {
    fn new(store: &LogStore, query: &'q LogQuery, by: &'q [String]) -> Result<Option<ParsedPlan<'q>>, crate::Error> {
        let mut labels: Vec<&str> = by.iter().map(String::as_str).collect();
        for stage in &query.stages {
            match stage {
                Stage::Contains(_) | Stage::NotContains(_) | Stage::Matches(_) | Stage::NotMatches(_) => {}
                Stage::Json | Stage::Logfmt => {}
                Stage::Filter(conditions) => labels.extend(conditions.iter().map(Condition::name)),
                Stage::Unwrap { label, .. } => labels.push(label),
                Stage::Drop(_) | Stage::Keep(_) => {}
                Stage::LineFormat(_) | Stage::Regexp(_) | Stage::Pattern(_) | Stage::Decolorize => return Ok(None),
            }
        }
        labels.sort_unstable();
        labels.dedup();
        if labels.iter().any(|n| matches!(*n, "message" | "timestamp") || n.ends_with("_extracted")) {
            return Ok(None);
        }
        for field in store.field_names()? {
            let sanitized = sanitize(&field);
            let other_name = |n: &&str| *n == sanitized && field != *n;
            let nested = |n: &&str| n.strip_prefix(sanitized.as_str()).is_some_and(|rest| rest.starts_with('_'));
            if labels.iter().any(|n| other_name(n) || nested(n)) {
                return Ok(None);
            }
        }
        let labelled = labels.len();
        let kept = labels.iter().map(|n| by.iter().any(|b| b == n)).collect();
        let stream = labels.iter().map(|n| STREAM_LABELS.contains(n)).collect();
        let mut fields = labels;
        for matcher in &query.matchers {
            if !fields.contains(&matcher.name.as_str()) {
                fields.push(&matcher.name);
            }
        }
        let matcher_at = query.matchers.iter().map(|m| fields.iter().position(|f| *f == m.name).unwrap_or(0)).collect();
        Ok(Some(ParsedPlan { fields, labelled, kept, stream, matcher_at }))
    }

    /// Runs the pipeline on one line given its `texts` (of `fields`) and message. `values`
    /// ends holding the labels; the answer is `None` for a dropped line, else the value
    /// `unwrap` took, if any.
    fn run<'t>(
        &self,
        query: &LogQuery,
        texts: &[Option<&'t str>],
        message: &'t str,
        values: &mut Vec<Option<Cow<'t, str>>>,
    ) -> Result<Option<Option<f64>>, NeedsDecoding> {
        if !query.matchers.iter().zip(&self.matcher_at).all(|(m, at)| m.matches(texts[*at].unwrap_or_default())) {
            return Ok(None);
        }
        values.clear();
        values.extend((0..self.labelled).map(|i| if self.stream[i] { texts[i].map(Cow::Borrowed) } else { None }));
        let mut sample = None;
        let position = |name: &str| self.fields[..self.labelled].iter().position(|f| *f == name);
        for stage in &query.stages {
            if let Some(keeps) = stage.keeps(message) {
                if !keeps {
                    return Ok(None);
                }
                continue;
            }
            match stage {
                Stage::Json | Stage::Logfmt => {
                    let found = parsed_labels(message, matches!(stage, Stage::Json));
                    for i in 0..self.labelled {
                        let name = self.fields[i];
                        if self.stream[i] && texts[i].is_some() {
                            continue;
                        }
                        if let Some(value) = found.get(name) {
                            values[i] = Some(Cow::Owned(value.clone()));
                        } else if let Some(text) = texts[i].filter(|_| !self.stream[i]) {
                            // An object flattens into other labels; its text cannot tell.
                            if text.starts_with('{') {
                                return Err(NeedsDecoding);
                            }
                            values[i] = Some(Cow::Borrowed(text));
                        }
                    }
                }
                Stage::Filter(conditions) => {
                    for condition in conditions {
                        let at = position(condition.name()).ok_or(NeedsDecoding)?;
                        if !condition.holds(values[at].as_deref().or(texts[at])) {
                            return Ok(None);
                        }
                    }
                }
                Stage::Unwrap { label, conversion } => {
                    let at = position(label).ok_or(NeedsDecoding)?;
                    let Some(value) = values[at].as_deref().or(texts[at]).and_then(|t| convert(t, *conversion)) else {
                        return Ok(None);
                    };
                    sample = Some(value);
                    values[at] = None;
                }
                Stage::Drop(refs) | Stage::Keep(refs) => {
                    let keep = matches!(stage, Stage::Keep(_));
                    for (i, value) in values.iter_mut().enumerate() {
                        if value.as_deref().is_some_and(|v| LabelRef::names(refs, self.fields[i], v) != keep) {
                            *value = None;
                        }
                    }
                }
                _ => return Err(NeedsDecoding),
            }
        }
        Ok(Some(sample))
    }
}

/// The labels a `json` or `logfmt` parser finds in `message` alone, not yet renamed for
/// stream labels.
fn parsed_labels(message: &str, json: bool) -> Labels {
    let mut labels = Labels::new();
    let trimmed = message.trim();
    if json {
        if !trimmed.starts_with('{') {
            return labels;
        }
        if let Ok(value @ serde_json::Value::Object(_)) = serde_json::from_str::<serde_json::Value>(trimmed) {
            flatten("", &value, &mut |name, text| {
                labels.insert(name, text);
            });
        }
    } else {
        for (key, value) in hubmon_model::logfmt::lenient(trimmed) {
            labels.insert(sanitize(&key), value.unwrap_or_default());
        }
    }
    labels
}

/// What a log query selects in a range, without the lines: Loki's `/series` and
/// `/index/stats`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selected {
    /// The distinct label sets, sorted.
    pub streams: Vec<Labels>,
    pub lines: u64,
    /// Bytes of the output lines (the messages, for a bare selector).
    pub bytes: u64,
}

/// Every stream `query` selects in `[start, end]`, with its lines and bytes counted.
pub fn selected(store: &LogStore, query: &LogQuery, start: i64, end: i64) -> Result<Selected, LogqlError> {
    let mut sets = LabelSets::default();
    let (mut lines, mut bytes) = (0u64, 0f64);
    each_selected(store, query, start, end.saturating_add(1), None, Reading::Decoded, |labels, _, _, value| {
        sets.position(labels);
        lines += 1;
        bytes += value;
    })?;
    let mut streams = sets.labels;
    streams.sort();
    Ok(Selected { streams, lines, bytes: bytes as u64 })
}

/// Distinct label sets, each found by its pairs without building a label map per line.
#[derive(Default)]
struct LabelSets {
    labels: Vec<Labels>,
    /// Positions by the hash of their label values (lines of one query mostly share their
    /// label names; sets that differ only in names are told apart by comparing them).
    by_hash: KeyMap<Vec<usize>>,
}

impl LabelSets {
    /// The position of `pairs` (sorted by name), added if new.
    fn position(&mut self, pairs: &[(&str, &str)]) -> usize {
        let hash = pairs.iter().fold(0u64, |h, (_, text)| h.rotate_left(5) ^ hash64(text.as_bytes()));
        let candidates = self.by_hash.entry(hash).or_default();
        let same = |have: &Labels| {
            have.len() == pairs.len() && have.iter().zip(pairs).all(|((n, v), (name, text))| n == name && v == text)
        };
        if let Some(position) = candidates.iter().find(|at| same(&self.labels[**at])) {
            return *position;
        }
        self.labels.push(pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect());
        candidates.push(self.labels.len() - 1);
        self.labels.len() - 1
    }
}

/// Samples of one range-function evaluation, grouped by their labels.
struct Sampler {
    range: Range,
    range_ms: i64,
    /// Every step's window start and end, sorted: lines between two neighbours fall into
    /// exactly the same windows, so counts and sums per such interval give every window's.
    bounds: Vec<i64>,
    groups: LabelSets,
    /// Per group (by its position in `groups`).
    samples: Vec<Samples>,
    binned: bool,
}

enum Samples {
    /// (interval, lines, sum of values); consecutive lines of one interval share an entry.
    Bins(Vec<(u32, u64, f64)>),
    /// (timestamp, id, value) of every line.
    Lines(Vec<(i64, u64, f64)>),
}

impl Sampler {
    fn new(range: Range, range_ms: i64, binned: bool) -> Sampler {
        let mut bounds: Vec<i64> =
            if binned { steps(range).flat_map(|t| [t - range_ms, t]).collect() } else { Vec::new() };
        bounds.sort_unstable();
        bounds.dedup();
        Sampler { range, range_ms, bounds, groups: LabelSets::default(), samples: Vec::new(), binned }
    }

    fn add(&mut self, labels: &[(&str, &str)], ts: i64, id: u64, value: f64) {
        let group = self.groups.position(labels);
        if group == self.samples.len() {
            self.samples.push(if self.binned { Samples::Bins(Vec::new()) } else { Samples::Lines(Vec::new()) });
        }
        match &mut self.samples[group] {
            Samples::Bins(bins) => {
                let interval = u32::try_from(self.bounds.partition_point(|b| *b < ts)).unwrap_or(u32::MAX);
                match bins.last_mut() {
                    Some((last, lines, sum)) if *last == interval => {
                        *lines += 1;
                        *sum += value;
                    }
                    _ => bins.push((interval, 1, value)),
                }
            }
            Samples::Lines(lines) => lines.push((ts, id, value)),
        }
    }

    /// Each group's value at every step where its window holds a line.
    fn series(self, function: RangeFn, unwrapped: bool, quantile: f64) -> Result<Vec<Series>, LogqlError> {
        let seconds = self.range_ms as f64 / 1000.0;
        let value_of = |count: f64, sum: f64| match function {
            RangeFn::CountOverTime => count,
            RangeFn::Rate if !unwrapped => count / seconds,
            RangeFn::Rate | RangeFn::BytesRate => sum / seconds,
            RangeFn::BytesOverTime | RangeFn::SumOverTime => sum,
            _ => sum / count,
        };
        let mut window_samples = 0usize;
        let mut out = Vec::new();
        for (labels, samples) in self.groups.labels.into_iter().zip(self.samples) {
            let mut points = Vec::new();
            match samples {
                Samples::Bins(mut bins) => {
                    // Prefix counts and sums over the intervals: interval `i` holds the lines
                    // after bound `i - 1` up to bound `i`.
                    bins.sort_by_key(|(interval, _, _)| *interval);
                    let mut counts = vec![0u64; self.bounds.len() + 2];
                    let mut sums = vec![0.0f64; self.bounds.len() + 2];
                    for (interval, lines, sum) in bins {
                        counts[interval as usize + 1] += lines;
                        sums[interval as usize + 1] += sum;
                    }
                    for i in 1..counts.len() {
                        counts[i] += counts[i - 1];
                        sums[i] += sums[i - 1];
                    }
                    for t in steps(self.range) {
                        // Lines in (t - range, t]: intervals after the window's start bound up
                        // to and including its end bound.
                        let lo = self.bounds.partition_point(|b| *b <= t - self.range_ms);
                        let hi = self.bounds.partition_point(|b| *b <= t);
                        let count = counts[hi] - counts[lo];
                        if count > 0 {
                            points.push((t, value_of(count as f64, sums[hi] - sums[lo])));
                        }
                    }
                }
                Samples::Lines(mut items) => {
                    // Lines were visited partition by partition: put each group in time order
                    // (ids break ties, as the store orders lines).
                    items.sort_by_key(|(ts, id, _)| (*ts, *id));
                    let times: Vec<i64> = items.iter().map(|(t, _, _)| *t).collect();
                    let values: Vec<f64> = items.iter().map(|(_, _, v)| *v).collect();
                    // Sums come from prefix sums, so each step costs the same however many
                    // lines its window holds; the other functions read the window.
                    let mut prefix = Vec::with_capacity(values.len() + 1);
                    prefix.push(0.0);
                    for value in &values {
                        prefix.push(prefix.last().copied().unwrap_or(0.0) + value);
                    }
                    for t in steps(self.range) {
                        let hi = times.partition_point(|x| *x <= t);
                        let lo = times.partition_point(|x| *x <= t - self.range_ms);
                        if hi == lo {
                            continue;
                        }
                        let value = match function {
                            RangeFn::CountOverTime
                            | RangeFn::Rate
                            | RangeFn::BytesRate
                            | RangeFn::BytesOverTime
                            | RangeFn::SumOverTime
                            | RangeFn::AvgOverTime => value_of((hi - lo) as f64, prefix[hi] - prefix[lo]),
                            _ => {
                                window_samples += hi - lo;
                                if window_samples > MAX_WINDOW_SAMPLES {
                                    return Err(LogqlError::Limit(format!(
                                        "the query would read more than {MAX_WINDOW_SAMPLES} samples across its steps; \
                                         use a shorter range, a larger step or fewer steps"
                                    )));
                                }
                                function.over(&values[lo..hi], quantile)
                            }
                        };
                        points.push((t, value));
                    }
                }
            }
            if !points.is_empty() {
                out.push(Series { labels, points });
            }
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }
}

fn steps(range: Range) -> impl Iterator<Item = i64> {
    let step = range.step.max(1);
    let count = if range.end < range.start { 0 } else { (range.end - range.start) / step + 1 };
    (0..count).map(move |i| range.start + i * step)
}

fn aggregate(op: AggOp, by: &[String], without: bool, k: usize, inner: Vec<Series>) -> Vec<Series> {
    if matches!(op, AggOp::Topk | AggOp::Bottomk) {
        let mut at: BTreeMap<i64, Vec<(usize, f64)>> = BTreeMap::new();
        for (i, series) in inner.iter().enumerate() {
            for (t, v) in &series.points {
                at.entry(*t).or_default().push((i, *v));
            }
        }
        let mut kept: Vec<Vec<(i64, f64)>> = vec![Vec::new(); inner.len()];
        for (t, mut values) in at {
            values.sort_by(|a, b| if op == AggOp::Topk { b.1.total_cmp(&a.1) } else { a.1.total_cmp(&b.1) });
            for (i, v) in values.into_iter().take(k) {
                kept[i].push((t, v));
            }
        }
        return inner
            .into_iter()
            .zip(kept)
            .filter(|(_, points)| !points.is_empty())
            .map(|(series, points)| Series { labels: series.labels, points })
            .collect();
    }
    let mut groups: BTreeMap<Labels, BTreeMap<i64, Vec<f64>>> = BTreeMap::new();
    for series in inner {
        let key: Labels = series
            .labels
            .into_iter()
            .filter(|(name, _)| if without { !by.contains(name) } else { by.contains(name) })
            .collect();
        let group = groups.entry(key).or_default();
        for (t, v) in series.points {
            group.entry(t).or_default().push(v);
        }
    }
    groups
        .into_iter()
        .map(|(labels, points)| Series {
            labels,
            points: points
                .into_iter()
                .map(|(t, values)| {
                    let value = match op {
                        AggOp::Sum => values.iter().sum(),
                        AggOp::Avg => values.iter().sum::<f64>() / values.len() as f64,
                        AggOp::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
                        AggOp::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                        AggOp::Count => values.len() as f64,
                        AggOp::Topk | AggOp::Bottomk => 0.0,
                    };
                    (t, value)
                })
                .collect(),
        })
        .collect()
}

struct Parser {
    chars: Vec<char>,
    at: usize,
}

impl Parser {
    fn fail<T>(&self, message: impl Into<String>) -> Result<T, LogqlError> {
        Err(LogqlError::Parse { position: self.at, message: message.into() })
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_space();
        let chars: Vec<char> = token.chars().collect();
        if self.chars[self.at.min(self.chars.len())..].starts_with(&chars) {
            self.at += chars.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &str) -> Result<(), LogqlError> {
        if self.eat(token) { Ok(()) } else { self.fail(format!("expected {token:?}")) }
    }

    fn ident(&mut self) -> Result<String, LogqlError> {
        self.skip_space();
        let start = self.at;
        while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_' || (c == '.' && self.at > start)) {
            self.at += 1;
        }
        if start == self.at {
            return self.fail("expected a name");
        }
        Ok(self.chars[start..self.at].iter().collect())
    }

    fn string(&mut self) -> Result<String, LogqlError> {
        self.skip_space();
        let quote = match self.peek() {
            Some(q @ ('"' | '`')) => q,
            _ => return self.fail("expected a quoted string"),
        };
        let start = self.at;
        self.at += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    self.at = start;
                    return self.fail("unclosed string");
                }
                Some(c) if c == quote => {
                    self.at += 1;
                    return Ok(out);
                }
                Some('\\') if quote == '"' => {
                    self.at += 1;
                    match self.peek() {
                        Some('n') => out.push('\n'),
                        Some('t') => out.push('\t'),
                        Some(c) => out.push(c),
                        None => return self.fail("unclosed string"),
                    }
                    self.at += 1;
                }
                Some(c) => {
                    out.push(c);
                    self.at += 1;
                }
            }
        }
    }

    fn regex(&self, pattern: &str, anchored: bool) -> Result<Regex, LogqlError> {
        let pattern = if anchored { format!("^(?:{pattern})$") } else { pattern.to_string() };
        RegexBuilder::new(&pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| LogqlError::Parse { position: self.at, message: format!("invalid regular expression: {e}") })
    }

    fn log_query(&mut self) -> Result<LogQuery, LogqlError> {
        self.expect("{")?;
        let mut matchers = Vec::new();
        loop {
            if self.eat("}") {
                break;
            }
            let name = self.ident()?;
            let op = self.match_op()?;
            let value = self.string()?;
            let regex = match op {
                MatchOp::Re | MatchOp::Nre => Some(self.regex(&value, true)?),
                _ => None,
            };
            matchers.push(LabelMatcher { name, op, value, regex });
            if !self.eat(",") {
                self.expect("}")?;
                break;
            }
        }
        if matchers.is_empty() {
            return self.fail("a stream selector needs at least one matcher, like {service=\"api\"}");
        }
        let mut stages = Vec::new();
        loop {
            if self.eat("|=") {
                stages.push(Stage::Contains(self.string()?));
            } else if self.eat("!=") {
                stages.push(Stage::NotContains(self.string()?));
            } else if self.eat("|~") {
                let pattern = self.string()?;
                stages.push(Stage::Matches(self.regex(&pattern, false)?));
            } else if self.eat("!~") {
                let pattern = self.string()?;
                stages.push(Stage::NotMatches(self.regex(&pattern, false)?));
            } else if self.eat("|") {
                let position = self.at;
                let name = self.ident()?;
                match name.as_str() {
                    "json" => stages.push(Stage::Json),
                    "logfmt" => stages.push(Stage::Logfmt),
                    "line_format" => stages.push(Stage::LineFormat(self.string()?)),
                    "regexp" => {
                        let expression = self.string()?;
                        let regex = self.regex(&expression, false)?;
                        if regex.capture_names().flatten().next().is_none() {
                            self.at = position;
                            return self.fail("`regexp` needs at least one named group, such as (?P<status>\\d+)");
                        }
                        stages.push(Stage::Regexp(regex));
                    }
                    "pattern" => {
                        let expression = self.string()?;
                        match parse_pattern(&expression) {
                            Ok(parts) => stages.push(Stage::Pattern(parts)),
                            Err(message) => {
                                self.at = position;
                                return self.fail(message);
                            }
                        }
                    }
                    "unwrap" => {
                        let name = self.ident()?;
                        let conversion = match name.as_str() {
                            "duration" | "duration_seconds" => Some(Conversion::Duration),
                            "bytes" => Some(Conversion::Bytes),
                            _ => None,
                        };
                        let (label, conversion) = match conversion {
                            Some(conversion) if self.eat("(") => {
                                let label = self.ident()?;
                                self.expect(")")?;
                                (label, conversion)
                            }
                            _ => (name, Conversion::Number),
                        };
                        stages.push(Stage::Unwrap { label, conversion });
                    }
                    "drop" => stages.push(Stage::Drop(self.label_refs()?)),
                    "keep" => stages.push(Stage::Keep(self.label_refs()?)),
                    "decolorize" => stages.push(Stage::Decolorize),
                    "unpack" | "label_format" => {
                        self.at = position;
                        return self.fail(format!("`{name}` is not in hubmon's LogQL subset"));
                    }
                    _ => {
                        self.at = position;
                        stages.push(Stage::Filter(self.conditions()?));
                    }
                }
            } else {
                break;
            }
        }
        Ok(LogQuery { matchers, stages })
    }

    fn match_op(&mut self) -> Result<MatchOp, LogqlError> {
        for (token, op) in [("=~", MatchOp::Re), ("!~", MatchOp::Nre), ("!=", MatchOp::Ne), ("=", MatchOp::Eq)] {
            if self.eat(token) {
                return Ok(op);
            }
        }
        self.fail("expected =, !=, =~ or !~")
    }

    fn conditions(&mut self) -> Result<Vec<Condition>, LogqlError> {
        let mut out = Vec::new();
        loop {
            let name = self.ident()?;
            self.skip_space();
            let numeric = [(">=", CmpOp::Ge), ("<=", CmpOp::Le), ("==", CmpOp::Eq), (">", CmpOp::Gt), ("<", CmpOp::Lt)];
            let mut condition = None;
            for (token, op) in numeric {
                if self.eat(token) {
                    condition = Some(Condition::Number { name: name.clone(), op, value: self.number()? });
                    break;
                }
            }
            let condition = match condition {
                Some(c) => c,
                None => {
                    let op = self.match_op()?;
                    self.skip_space();
                    if matches!(op, MatchOp::Eq | MatchOp::Ne) && !matches!(self.peek(), Some('"' | '`')) {
                        let value = self.number()?;
                        let op = if op == MatchOp::Eq { CmpOp::Eq } else { CmpOp::Ne };
                        Condition::Number { name, op, value }
                    } else {
                        let value = self.string()?;
                        let regex = match op {
                            MatchOp::Re | MatchOp::Nre => Some(self.regex(&value, true)?),
                            _ => None,
                        };
                        Condition::Match(LabelMatcher { name, op, value, regex })
                    }
                }
            };
            out.push(condition);
            if !(self.eat(",") || self.eat("and ")) {
                return Ok(out);
            }
        }
    }

    /// The labels of `drop` and `keep`: names, each optionally with a matcher (`a, b="x"`).
    fn label_refs(&mut self) -> Result<Vec<LabelRef>, LogqlError> {
        let mut out = Vec::new();
        loop {
            let name = self.ident()?;
            self.skip_space();
            let matcher = if matches!(self.peek(), Some('=' | '!')) {
                let op = self.match_op()?;
                let value = self.string()?;
                let regex = match op {
                    MatchOp::Re | MatchOp::Nre => Some(self.regex(&value, true)?),
                    _ => None,
                };
                Some(LabelMatcher { name: name.clone(), op, value, regex })
            } else {
                None
            };
            out.push(LabelRef { name, matcher });
            if !self.eat(",") {
                return Ok(out);
            }
        }
    }

    fn number(&mut self) -> Result<f64, LogqlError> {
        self.skip_space();
        let start = self.at;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+')) {
            self.at += 1;
        }
        let text: String = self.chars[start..self.at].iter().collect();
        match parse_number(&text) {
            Some(v) => Ok(v),
            None => {
                self.at = start;
                self.fail(format!("expected a number, got {text:?}"))
            }
        }
    }

    fn metric(&mut self) -> Result<MetricQuery, LogqlError> {
        let position = self.at;
        let name = self.ident()?;
        if let Some(function) = RangeFn::named(&name) {
            self.expect("(")?;
            let mut quantile = f64::NAN;
            if function == RangeFn::QuantileOverTime {
                quantile = self.number()?;
                self.expect(",")?;
            }
            self.skip_space();
            let query_at = self.at;
            let query = self.log_query()?;
            self.expect("[")?;
            self.skip_space();
            let start = self.at;
            while self.peek().is_some_and(|c| c != ']') {
                self.at += 1;
            }
            let text: String = self.chars[start..self.at].iter().collect();
            let range: PromDuration = text
                .trim()
                .parse()
                .map_err(|e| LogqlError::Parse { position: start, message: format!("range: {e}") })?;
            self.expect("]")?;
            self.expect(")")?;
            let range_ms = range.as_duration().as_millis() as i64;
            if range_ms <= 0 {
                return self.fail("the range must be positive");
            }
            match (function.needs_unwrap(), query.unwraps()) {
                (Some(true), false) => {
                    self.at = query_at;
                    return self.fail(format!("{name} needs `| unwrap <label>` in its query"));
                }
                (Some(false), true) => {
                    self.at = query_at;
                    return self.fail(format!("{name} counts lines; it takes no `| unwrap`"));
                }
                _ => {}
            }
            let grouping = if query.unwraps() { self.grouping()? } else { None };
            return Ok(MetricQuery::Range { function, query, range_ms, quantile, grouping });
        }
        let op = match name.as_str() {
            "sum" => AggOp::Sum,
            "avg" => AggOp::Avg,
            "min" => AggOp::Min,
            "max" => AggOp::Max,
            "count" => AggOp::Count,
            "topk" => AggOp::Topk,
            "bottomk" => AggOp::Bottomk,
            _ => {
                self.at = position;
                return self.fail(format!("unknown function `{name}`; start with {{…}}, a range function (count_over_time, rate, bytes_over_time, bytes_rate, sum_over_time, avg_over_time, min_over_time, max_over_time, first_over_time, last_over_time, stddev_over_time, stdvar_over_time, quantile_over_time) or an aggregation (sum, avg, min, max, count, topk, bottomk)"));
            }
        };
        let mut grouping = self.grouping()?;
        self.expect("(")?;
        let mut k = 0;
        if matches!(op, AggOp::Topk | AggOp::Bottomk) {
            k = self.number()? as usize;
            self.expect(",")?;
        }
        let inner = self.metric()?;
        self.expect(")")?;
        if grouping.is_none() {
            grouping = self.grouping()?;
        }
        let (by, without) = grouping.unwrap_or((Vec::new(), false));
        Ok(MetricQuery::Aggregate { op, by, without, k, inner: Box::new(inner) })
    }

    fn grouping(&mut self) -> Result<Option<(Vec<String>, bool)>, LogqlError> {
        let without = if self.eat("by") {
            false
        } else if self.eat("without") {
            true
        } else {
            return Ok(None);
        };
        self.expect("(")?;
        let mut names = Vec::new();
        while !self.eat(")") {
            names.push(self.ident()?);
            if !self.eat(",") {
                self.expect(")")?;
                break;
            }
        }
        Ok(Some((names, without)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubmon_model::{Level, Timestamp};

    fn store() -> (tempfile::TempDir, LogStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path(), crate::Options::default()).unwrap();
        let mut batch = Vec::new();
        for i in 0..60i64 {
            let level = if i % 3 == 0 { Level::Error } else { Level::Info };
            let mut entry = LogEntry::new(
                Timestamp(i * 10_000),
                level,
                format!("GET /items status={} took {}ms", 200 + (i % 2) * 300, i),
            );
            entry.service = Some(if i % 2 == 0 { "api".into() } else { "web".into() });
            entry.fields.insert("status".into(), serde_json::json!(200 + (i % 2) * 300));
            entry.fields.insert("http".into(), serde_json::json!({"method": "GET"}));
            batch.push(entry);
        }
        store.append(batch).unwrap();
        (dir, store)
    }

    fn range(limit: usize) -> Range {
        Range { start: 0, end: 600_000, step: 60_000, limit, backward: true }
    }

    fn logs(store: &LogStore, query: &str) -> Vec<Stream> {
        match LogqlQuery::parse(query).unwrap() {
            LogqlQuery::Log(q) => select_logs(store, &q, range(1000)).unwrap(),
            LogqlQuery::Metric(_) => panic!("not a log query"),
        }
    }

    fn metric(store: &LogStore, query: &str) -> Vec<Series> {
        match LogqlQuery::parse(query).unwrap() {
            LogqlQuery::Metric(q) => evaluate_metric(store, &q, range(0)).unwrap(),
            LogqlQuery::Log(_) => panic!("not a metric query"),
        }
    }

    #[test]
    fn selectors_filters_and_parsers() {
        let (_dir, store) = store();
        let count = |q: &str| logs(&store, q).iter().map(|s| s.entries.len()).sum::<usize>();
        assert_eq!(count(r#"{service="api"}"#), 30);
        assert_eq!(count(r#"{service=~"api|web", level!="error"}"#), 40);
        assert_eq!(count(r#"{service="api"} |= "took 1" != "took 1ms""#), 5);
        assert_eq!(count(r#"{service="web"} |~ "took [0-9]ms""#), 5);
        assert_eq!(count(r#"{service="web"} | json | status >= 500 and http_method="GET""#), 30);
        assert_eq!(count(r#"{service="api"} | logfmt | status == 200"#), 30);
        let formatted = logs(&store, r#"{service="api"} | json | line_format "{{.level}} {{ .http_method }}""#);
        assert_eq!(formatted[0].entries[0].1, "info GET");
        let streams = logs(&store, r#"{service="api"}"#);
        assert_eq!(streams.len(), 2, "one stream per level");
        assert!(streams[0].entries[0].0 > streams[0].entries[1].0, "newest first");
    }

    #[test]
    fn metric_queries() {
        let (_dir, store) = store();
        let series = metric(&store, r#"sum by (service) (count_over_time({service=~".+"}[1m]))"#);
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].labels.get("service").map(String::as_str), Some("api"));
        assert_eq!(series[0].points[1], (60_000, 3.0), "(0, 60s] holds api lines at 20, 40, 60 s");
        let rate = metric(&store, r#"sum(rate({service="web"}[1m]))"#);
        assert_eq!(rate[0].points[0], (60_000, 3.0 / 60.0));
        let top = metric(&store, r#"topk(1, sum by (level) (count_over_time({service=~"api|web"}[10m])))"#);
        let at_end: Vec<&Series> = top.iter().filter(|s| s.points.iter().any(|p| p.0 == 600_000)).collect();
        assert_eq!(at_end.len(), 1, "one series per step");
        assert_eq!(at_end[0].labels.get("level").map(String::as_str), Some("info"));
        let bytes = metric(&store, r#"sum(bytes_over_time({service="api"}[10m]))"#);
        assert!(bytes[0].points.last().unwrap().1 > 30.0 * 20.0);
    }

    /// A bare selector is answered from segment columns (and the head's lines decoded); a
    /// pipeline stage that keeps every line sends the same query through decoding every
    /// line. Both must give the same series, and the counts must be the brute-force ones.
    #[test]
    fn selectors_and_line_filters_read_segment_columns_and_agree_with_decoding_every_line() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path(), crate::Options::default()).unwrap();
        let t0 = 1_700_000_000_000i64;
        let line = |i: i64| {
            let level = [Level::Info, Level::Warning, Level::Error, Level::Debug][(i % 4) as usize];
            let mut entry = LogEntry::new(Timestamp(t0 - 600_000 + i * 1_517), level, format!("step {i} of {}", i % 7));
            entry.category = ["api", "database", "system"][(i % 3) as usize].into();
            entry.service = [Some("Checkout"), Some("checkout"), Some("api"), None][(i % 4 + i / 5 % 2) as usize % 4]
                .map(String::from);
            entry.host = Some(format!("web-{}", i % 5));
            if i % 9 == 0 {
                entry.module = Some("db::pool".into());
            }
            entry.fields.insert("job".into(), serde_json::json!(if i % 2 == 0 { "varlogs" } else { "app" }));
            if i % 300 == 0 {
                entry.fields.insert("shard".into(), serde_json::json!(i % 600 / 300));
            }
            entry
        };
        let all: Vec<LogEntry> = (0..6_000).map(line).collect();
        for batch in all[..5_000].chunks(700) {
            store.append(batch.to_vec()).unwrap();
        }
        store.flush().unwrap();
        store.append(all[5_000..].to_vec()).unwrap();

        let mut decoded = 0;
        store
            .scan_fields(
                &Expr::All,
                i64::MIN,
                i64::MAX,
                &["level", "category", "service", "host", "module", "job"],
                false,
                |l| {
                    decoded += usize::from(l.decoded);
                    true
                },
            )
            .unwrap();
        assert_eq!(decoded, 1_000, "only the head's lines are decoded");

        let range = Range { start: t0, end: t0 + 7_200_000, step: 60_000, limit: 0, backward: true };
        let evaluate = |query: &str| match LogqlQuery::parse(query).unwrap() {
            LogqlQuery::Metric(q) => evaluate_metric(&store, &q, range).unwrap(),
            LogqlQuery::Log(_) => panic!("not a metric query"),
        };
        for (bare, selected) in [
            (r#"count_over_time({service="Checkout"}[5m])"#, None),
            (r#"sum by (level) (count_over_time({job="varlogs"}[1m]))"#, None),
            (r#"bytes_over_time({host=~"web-[12]", service!="api"}[10m])"#, None),
            (r#"rate({category="database"}[2m])"#, None),
            (
                r#"count_over_time({shard="1"}[30m])"#,
                Some(Box::new(|e: &LogEntry| e.field_text("shard").as_deref() == Some("1"))
                    as Box<dyn Fn(&LogEntry) -> bool>),
            ),
            (r#"count_over_time({module=""}[5m])"#, Some(Box::new(|e: &LogEntry| e.module.is_none()))),
            (r#"sum without (host) (bytes_rate({level=~"error|warning"}[3m]))"#, None),
            // Line filters read the message alone.
            (r#"count_over_time({job="varlogs"} |= "of 3" [5m])"#, None),
            (r#"sum by (service) (bytes_over_time({host=~"web-[12]"} != "step 1" |~ "of [0-3]$" [10m]))"#, None),
        ] {
            // A label filter that keeps every line sends the query through decoding it.
            let decoding = bare.replacen('}', r#"} | level != "\u0001never""#, 1);
            assert_ne!(bare, decoding);
            let fast = evaluate(bare);
            assert!(!fast.is_empty(), "{bare}");
            assert_eq!(fast, evaluate(&decoding), "{bare}");
            if let Some(selected) = selected {
                // The last step's window: (end - range, end].
                let window = if bare.contains("[30m]") { 1_800_000 } else { 300_000 };
                let end = range.end;
                let want = all
                    .iter()
                    .filter(|e| selected(e))
                    .filter(|e| (end - window + 1..=end).contains(&e.timestamp.as_millis()))
                    .count();
                let got: f64 = fast.iter().filter_map(|s| s.points.iter().find(|p| p.0 == end)).map(|p| p.1).sum();
                assert_eq!(got, want as f64, "{bare}");
            }
        }
    }

    /// `/series` and `/index/stats` see every stream of the range, however few and old its
    /// lines (they once read only the newest 10,000 lines), with exact line and byte counts.
    #[test]
    fn selected_streams_include_the_oldest_and_count_every_line() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path(), crate::Options::default()).unwrap();
        let lines: Vec<LogEntry> = (0..30_000i64)
            .map(|i| {
                let mut entry = LogEntry::new(Timestamp(1_000_000 + i), Level::Info, format!("line {i}"));
                entry.service = Some(if i < 3 { "rare".into() } else { format!("svc-{}", i % 4) });
                entry.fields.insert("job".into(), serde_json::json!("varlogs"));
                entry
            })
            .collect();
        store.append(lines[..20_000].to_vec()).unwrap();
        store.flush().unwrap();
        store.append(lines[20_000..].to_vec()).unwrap();
        let LogqlQuery::Log(query) = LogqlQuery::parse(r#"{job="varlogs"}"#).unwrap() else { panic!() };
        let all = selected(&store, &query, 0, 2_000_000).unwrap();
        let services: Vec<&str> = all.streams.iter().filter_map(|l| l.get("service").map(String::as_str)).collect();
        assert_eq!(services, ["rare", "svc-0", "svc-1", "svc-2", "svc-3"]);
        assert_eq!(all.lines, 30_000);
        assert_eq!(all.bytes, lines.iter().map(|e| e.message.len() as u64).sum::<u64>());
        let LogqlQuery::Log(rare) = LogqlQuery::parse(r#"{service="rare"} != "line 1""#).unwrap() else { panic!() };
        let rare = selected(&store, &rare, 0, 2_000_000).unwrap();
        assert_eq!((rare.streams.len(), rare.lines, rare.bytes), (1, 2, 12), "a pipeline decodes: lines 0 and 2");
    }

    #[test]
    fn line_filters_narrow_by_their_inner_words_only() {
        assert_eq!(inner_words("pstream reset by pee").as_deref(), Some(" reset by "));
        assert_eq!(inner_words("upstream"), None);
        assert_eq!(inner_words("a-"), None);
        assert_eq!(inner_words("x=Reset;"), Some("=reset;".into()));
        let (_dir, store) = store();
        store.flush().unwrap();
        for query in [
            r#"{service="api"} |= "ET /items st""#,
            r#"{service="web"} |= "tatus=500 too""#,
            r#"{service="web"} |= "tatus=200 too""#,
            r#"{service="web"} |= "ook 1""#,
        ] {
            let LogqlQuery::Log(log) = LogqlQuery::parse(query).unwrap() else { panic!() };
            let all = store.scan(&Expr::All, i64::MIN, i64::MAX, usize::MAX).unwrap();
            let mut want: Vec<String> = all.iter().filter_map(|s| log.process(&s.entry).map(|(_, l)| l)).collect();
            let mut got: Vec<String> =
                logs(&store, query).into_iter().flat_map(|s| s.entries.into_iter().map(|(_, l)| l)).collect();
            want.sort();
            got.sort();
            assert_eq!(got, want, "{query}");
            assert_eq!(want.is_empty(), query.contains("=200"), "{query}: the cases must be able to fail");
        }
    }

    #[test]
    fn unwrapped_values_from_patterns_and_regexps() {
        let (_dir, store) = store();
        let at_end = |query: &str| -> Vec<(Labels, f64)> {
            metric(&store, query)
                .into_iter()
                .filter_map(|s| s.points.iter().find(|p| p.0 == 600_000).map(|p| (s.labels.clone(), p.1)))
                .collect()
        };
        // api lines are the even i, at i·10 s; the window (0, 600 s] holds i = 2, 4, …, 58.
        let took = r#"{service="api"} | pattern "<method> <path> status=<_> took <took>ms" | unwrap took [10m]"#;
        assert_eq!(at_end(&format!("max_over_time({took}) by (method)"))[0].1, 58.0);
        assert_eq!(at_end(&format!("min_over_time({took}) by (method)"))[0].1, 2.0);
        assert_eq!(at_end(&format!("quantile_over_time(0.5, {took}) by (method)"))[0].1, 30.0);
        assert_eq!(at_end(&format!("quantile_over_time(0.25, {took}) by (method)"))[0].1, 16.0);
        assert_eq!(at_end(&format!("first_over_time({took}) by (method)"))[0].1, 2.0);
        assert_eq!(at_end(&format!("last_over_time({took}) by (method)"))[0].1, 58.0);
        let labels = &at_end(&format!("sum_over_time({took})"))[0].0;
        assert_eq!(labels.get("method").map(String::as_str), Some("GET"), "pattern captures are labels");
        assert_eq!(labels.get("level").map(String::as_str), Some("error"), "one series per label set");
        assert!(!labels.contains_key("took"), "the unwrapped label is not a label of the series");
        let by_service = at_end(
            r#"avg_over_time({service=~"api|web"} | regexp `took (?P<took>\d+)ms` | unwrap took [10m]) by (service)"#,
        );
        assert_eq!(by_service.len(), 2, "{by_service:?}");
        assert!(by_service.iter().all(|(labels, v)| labels.len() == 1 && *v == 30.0), "{by_service:?}");
        // web lines are the odd i: 1 + 3 + … + 59 = 900 ms over the window.
        let seconds = r#"{service="web"} | pattern "<_> took <d>" | unwrap duration(d) [10m]"#;
        let sum = at_end(&format!("sum(sum_over_time({seconds}))"))[0].1;
        assert!((sum - 0.9).abs() < 1e-9, "{sum}");
        let rate = at_end(&format!("sum(rate({seconds}))"))[0].1;
        assert!((rate - 0.9 / 600.0).abs() < 1e-12, "{rate}");
        assert_eq!(
            at_end(r#"sum(rate({service="web"}[10m]))"#)[0].1,
            30.0 / 600.0,
            "without unwrap, rate counts lines"
        );
        let spread = at_end(&format!("stddev_over_time({took}) by (method)"))[0].1;
        assert!((spread - (((29 * 29 - 1) as f64 * 4.0) / 12.0).sqrt()).abs() < 1e-9, "{spread}");
    }

    /// Each step of a window-reading function reads its whole window; a tiny step over a long
    /// range would multiply that without end, so the query is refused past a budget.
    #[test]
    fn window_functions_refuse_queries_over_their_sample_budget() {
        let (_dir, store) = store();
        let LogqlQuery::Metric(query) = LogqlQuery::parse(
            r#"max_over_time({service=~".+"} | pattern "<_> took <took>ms" | unwrap took [100m]) by (service)"#,
        )
        .unwrap() else {
            panic!("not a metric query")
        };
        let tiny_step = Range { start: 600_000, end: 6_000_000, step: 1, limit: 0, backward: true };
        assert!(matches!(evaluate_metric(&store, &query, tiny_step), Err(LogqlError::Limit(_))));
        let fine = Range { step: 60_000, ..tiny_step };
        assert_eq!(evaluate_metric(&store, &query, fine).unwrap().len(), 2);
    }

    #[test]
    fn patterns_durations_and_sizes_read_like_loki() {
        let parts = parse_pattern(r#"<ip> - - [<_>] "<method> <path> <_>" <status>"#).unwrap();
        let line = r#"10.0.0.7 - - [29/Nov/2026:10:00:00 +0000] "POST /v1/cart HTTP/1.1" 502"#;
        let got = match_pattern(&parts, line).unwrap();
        let want = [("ip", "10.0.0.7"), ("method", "POST"), ("path", "/v1/cart"), ("status", "502")];
        assert_eq!(got, want.map(|(k, v)| (k.to_string(), v.to_string())));
        assert_eq!(match_pattern(&parts, "no brackets here"), None);
        assert_eq!(match_pattern(&parse_pattern("level=<level> ").unwrap(), "x level=info "), None, "anchored");
        for (text, seconds) in [("2m3.5s", 123.5), ("250ms", 0.25), ("1h", 3600.0), ("-3us", -3e-6), ("0", 0.0)] {
            assert_eq!(go_duration_seconds(text), Some(seconds), "{text}");
        }
        for text in ["", "abc", "5", "1x", "s"] {
            assert_eq!(go_duration_seconds(text), None, "{text}");
        }
        for (text, bytes) in [("1.5KiB", 1536.0), ("10kb", 10_000.0), ("7", 7.0), ("2 MB", 2e6)] {
            assert_eq!(bytes_value(text), Some(bytes), "{text}");
        }
        assert_eq!(bytes_value("3 XB"), None);
    }

    #[test]
    fn logfmt_values_may_be_quoted() {
        let line = r#"a=1 msg="two words" q="say \"hi\"" flag"#;
        let entry = LogEntry::new(Timestamp(0), Level::Info, line.to_string());
        let mut labels = Labels::new();
        extract_fields(&entry, line, &mut labels, false);
        for (key, value) in [("a", "1"), ("msg", "two words"), ("q", "say \"hi\""), ("flag", "")] {
            assert_eq!(labels.get(key).map(String::as_str), Some(value), "{key} in {labels:?}");
        }
    }

    #[test]
    fn bad_queries_say_where_and_regexes_are_bounded() {
        for query in [
            r#"{service="api""#,
            "nonsense(1)",
            r#"{a="b"} | unpack"#,
            r#"count_over_time({a="b"}[zz])"#,
            r#"avg_over_time({a="b"}[5m])"#,
            r#"count_over_time({a="b"} | unwrap x [5m])"#,
            r#"{a="b"} | unwrap x"#,
            r#"{a="b"} | pattern "<a><b>""#,
            r#"{a="b"} | pattern "no captures <_>""#,
            r#"{a="b"} | regexp "(\d+)""#,
            r#"quantile_over_time({a="b"} | unwrap x [5m])"#,
        ] {
            assert!(matches!(LogqlQuery::parse(query), Err(LogqlError::Parse { .. })), "{query}");
        }
        let huge = format!(r#"{{a=~"{}"}}"#, "(a{1,1000}){1,1000}");
        assert!(LogqlQuery::parse(&huge).is_err(), "a regex too large to compile is refused");
    }

    /// Pipelines with parsers, label filters and `unwrap` under a `by` grouping read fields
    /// and messages instead of decoding lines; both ways must give the same samples, over
    /// segments and the head, with JSON and logfmt messages, nested objects, arrays, stream
    /// labels a parser also finds, and fields only some lines have.
    #[test]
    fn parsed_pipelines_read_fields_and_agree_with_decoding_every_line() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path(), crate::Options::default()).unwrap();
        let t0 = 1_700_000_000_000i64;
        let line = |i: i64| {
            let level = [Level::Info, Level::Warning, Level::Error][(i % 3) as usize];
            let message = match i % 11 {
                0 => format!(r#"{{"status": 418, "level": "debug", "service": "inner", "n": {i}}}"#),
                1 | 5 => format!("user=u{} status={} took={}ms", i % 4, 500 + i % 3, i % 90),
                _ => format!("GET /v1/items/{i} took {}ms", i % 70),
            };
            let mut entry = LogEntry::new(Timestamp(t0 - 600_000 + i * 1_213), level, message);
            entry.category = ["api", "database"][(i % 2) as usize].into();
            entry.service = [Some("checkout"), None, Some("api")][(i / 3 % 3) as usize].map(String::from);
            entry.host = Some(format!("web-{}", i % 4));
            entry.fields.insert("job".into(), serde_json::json!(if i % 2 == 0 { "varlogs" } else { "app" }));
            if i % 6 != 0 {
                entry.fields.insert("status".into(), serde_json::json!([200, 404, 500, 503][(i % 4) as usize]));
                entry.fields.insert("method".into(), serde_json::json!(["GET", "POST"][(i % 2) as usize]));
                entry.fields.insert("duration_ms".into(), serde_json::json!(i % 250));
            }
            if i % 13 == 0 {
                entry.fields.insert("tags".into(), serde_json::json!(["a", i % 3]));
            }
            if i % 17 == 0 {
                entry.fields.insert("region".into(), serde_json::json!({"name": "eu", "zone": i % 2}));
            }
            entry
        };
        let all: Vec<LogEntry> = (0..6_000).map(line).collect();
        for batch in all[..5_000].chunks(900) {
            store.append(batch.to_vec()).unwrap();
        }
        store.flush().unwrap();
        store.append(all[5_000..].to_vec()).unwrap();

        let range = Range { start: t0, end: t0 + 7_200_000, step: 60_000, limit: 0, backward: true };
        let samples = |by: &[&str], pipeline: &str, reading: Reading| {
            let LogqlQuery::Metric(MetricQuery::Range { query, .. }) =
                LogqlQuery::parse(&format!("sum_over_time({pipeline} | unwrap duration_ms [5m])")).unwrap()
            else {
                panic!("{pipeline}")
            };
            // The unwrap above only lets the pipeline parse as a metric query.
            let mut query = query;
            query.stages.pop();
            let by: Vec<String> = by.iter().map(|s| s.to_string()).collect();
            let planned = ParsedPlan::new(&store, &query, &by).unwrap().is_some();
            let mut out = Vec::new();
            let complete = each_selected(
                &store,
                &query,
                range.start - 300_000,
                range.end + 1,
                Some((&by, false)),
                reading,
                |labels, ts, id, value| {
                    let labels: Vec<(String, String)> =
                        labels.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
                    out.push((id, ts, labels, value.to_bits()));
                },
            )
            .unwrap();
            out.sort();
            // Read from fields throughout; planned but given up on a line; never planned.
            let how = match (planned, complete) {
                (true, true) => "fields",
                (true, false) => "gave up",
                (false, _) => "decoded",
            };
            (how, out)
        };
        for (by, pipeline, expected) in [
            (&["status"][..], r#"{job="varlogs"} | json"#, "fields"),
            (&["method", "status"], r#"{host=~"web-[12]"} | json | status >= 400"#, "fields"),
            (&["service"], r#"{category="api"} | json"#, "fields"),
            (&["level", "user"], r#"{job="app"} | logfmt | status >= 500"#, "fields"),
            (&["method"], r#"{job="varlogs"} | json | unwrap duration_ms"#, "fields"),
            (&["tags"], r#"{job="varlogs"} |= "took" | json"#, "fields"),
            (&["status"], r#"{job="varlogs"} | status >= 500 | json | method = "GET""#, "fields"),
            (&["method", "status"], r#"{job="varlogs"} | json | drop method, status="500""#, "fields"),
            (&["level", "method", "status"], r#"{job="app"} | logfmt | keep status, level="error""#, "fields"),
            (&["status"], r#"{job="varlogs"} | decolorize | json"#, "decoded"),
            (&["service_extracted"], r#"{job="varlogs"} | json"#, "decoded"),
            (&["region_name"], r#"{job="app"} | json"#, "decoded"),
            (&["status"], r#"{job="varlogs"} | json | line_format "{{.status}}""#, "decoded"),
            (&["region"], r#"{job="varlogs"} | json"#, "gave up"),
        ] {
            let (how, fast) = samples(by, pipeline, Reading::Columns);
            let (_, decoded) = samples(by, pipeline, Reading::Decoded);
            assert!(!decoded.is_empty(), "{pipeline}");
            assert_eq!(how, expected, "{pipeline} by {by:?}");
            let differs = (0..fast.len().max(decoded.len())).find(|&i| fast.get(i) != decoded.get(i));
            if let (Some(at), false) = (differs, how == "gave up") {
                panic!(
                    "{pipeline} by {by:?}: {} samples from fields, {} decoded; first difference: {:?} vs {:?}",
                    fast.len(),
                    decoded.len(),
                    fast.get(at),
                    decoded.get(at)
                );
            }
        }

        // And pipelines drawn at random from the same parts.
        let selectors = [r#"{job="varlogs"}"#, r#"{job="app"}"#, r#"{host=~"web-[0-2]"}"#, r#"{category="api"}"#];
        let stages = [
            "| json",
            "| logfmt",
            r#"|= "took""#,
            r#"!= "u1""#,
            "| status >= 500",
            "| status != 404",
            r#"| method = "GET""#,
            r#"| method =~ "P.*""#,
            r#"| user = "u2""#,
            "| duration_ms > 50",
            r#"| level = "error""#,
            r#"| service = "inner""#,
            "| n > 100",
            "| took >= 30ms",
            "| drop method",
            r#"| drop status="500", __error__"#,
            "| keep status, level, user",
        ];
        let names = ["status", "method", "level", "service", "user", "took", "n", "host", "tags", "duration_ms"];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let mut from_fields = 0;
        for _ in 0..60 {
            let mut pipeline = selectors[next(selectors.len())].to_string();
            let parser = next(3);
            for at in 0..1 + next(4) {
                if at == parser.min(1) {
                    pipeline.push_str([" | json", " | logfmt", " | json"][parser]);
                }
                pipeline.push(' ');
                pipeline.push_str(stages[next(stages.len())]);
            }
            let mut by = vec![names[next(names.len())]];
            if next(2) == 0 {
                by.push(names[next(names.len())]);
            }
            by.sort_unstable();
            by.dedup();
            let (how, fast) = samples(&by, &pipeline, Reading::Columns);
            let (_, decoded) = samples(&by, &pipeline, Reading::Decoded);
            from_fields += usize::from(how == "fields");
            if how != "gave up" {
                assert_eq!(fast.len(), decoded.len(), "{pipeline} by {by:?}");
                assert!(fast == decoded, "{pipeline} by {by:?}: same count, different samples");
            }
        }
        assert!(from_fields > 40, "only {from_fields} of 60 random pipelines read fields");

        // A sum of counts grouped while read equals the sum of the per-stream series.
        let evaluate = |query: &str| match LogqlQuery::parse(query).unwrap() {
            LogqlQuery::Metric(q) => evaluate_metric(&store, &q, range).unwrap(),
            LogqlQuery::Log(_) => panic!("not a metric query"),
        };
        for inner in [
            r#"count_over_time({job="varlogs"} | json | status >= 400 [5m])"#,
            r#"bytes_over_time({host="web-1"} | logfmt [2m])"#,
        ] {
            let LogqlQuery::Metric(per_stream) = LogqlQuery::parse(inner).unwrap() else { panic!() };
            let per_stream = evaluate_metric(&store, &per_stream, range).unwrap();
            let by = vec!["status".to_string()];
            let summed = aggregate(AggOp::Sum, &by, false, 0, per_stream);
            assert!(!summed.is_empty(), "{inner}");
            assert_eq!(evaluate(&format!("sum by (status) ({inner})")), summed, "{inner}");
        }
    }

    #[test]
    fn drop_keep_and_decolorize() {
        let mut entry =
            LogEntry::new(Timestamp(1), Level::Error, "\u{1b}[31mfailed\u{1b}[0m order=7 status=500".to_string());
        entry.service = Some("shop".into());
        let run = |query: &str| match LogqlQuery::parse(query).unwrap() {
            LogqlQuery::Log(query) => query.process(&entry),
            LogqlQuery::Metric(_) => panic!("{query}"),
        };
        let names = |labels: &Labels| labels.keys().cloned().collect::<Vec<_>>().join(",");

        let (labels, _) = run(r#"{service="shop"} | logfmt | drop __error__, __error_details__"#).unwrap();
        assert_eq!(labels.get("status").map(String::as_str), Some("500"), "{labels:?}");
        let (labels, _) = run(r#"{service="shop"} | logfmt | drop status, level="error", order="8""#).unwrap();
        assert!(!labels.contains_key("status") && !labels.contains_key("level"), "{labels:?}");
        assert!(labels.contains_key("order") && labels.contains_key("service"), "{labels:?}");
        let (labels, _) = run(r#"{service="shop"} | logfmt | keep order, status=~"4..", level"#).unwrap();
        assert_eq!(names(&labels), "level,order");

        let (_, line) = run(r#"{service="shop"} | decolorize"#).unwrap();
        assert_eq!(line, "failed order=7 status=500");
        assert!(run(r#"{service="shop"} | decolorize |= "failed order""#).is_some());
        assert!(run(r#"{service="shop"} |= "failed order""#).is_none(), "the codes are in the stored line");

        for bad in [r#"{a="b"} | drop"#, r#"{a="b"} | keep a="#, r#"{a="b"} | drop a=~"(""#] {
            assert!(LogqlQuery::parse(bad).is_err(), "{bad}");
        }
    }
}
