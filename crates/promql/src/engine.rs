//! The evaluator: walks the parsed expression once for the whole query range, producing one
//! value per step, and talks to the store only through [`Querier`].
//!
//! Invariants:
//! - every selector node fetches its series once per evaluation of that node, covering all
//!   steps (a subquery's inner expression is evaluated once over all of its inner steps);
//! - step results are computed from slices of the fetched samples (cursors that move on
//!   from the previous step, binary search otherwise), never by re-querying the store;
//! - windows follow Prometheus 2.42: the lookback window of an instant selector and the
//!   window of a range selector are closed, `[t - d, t]`, unless
//!   [`EngineOptions::left_open_ranges`] asks for Prometheus 3's `(t - d, t]`.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hubmon_model::{Labels, METRIC_NAME, Matcher, Querier, Sample, Series, is_stale_marker};
use lru::LruCache;
use parking_lot::Mutex;
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{AtModifier, Expr, MatrixSelector, Offset, SubqueryExpr, VectorSelector};

use crate::selector::matchers_of;
use crate::{Error, Matrix, Value, aggregate, binary, functions};

/// Limits and defaults of query evaluation.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (Prometheus: 5 m).
    pub lookback_delta: Duration,
    /// Most samples one query may load from the store and produce, counted roughly as
    /// Prometheus does (samples fetched plus points of the result).
    pub max_samples: usize,
    /// Most points per series of a range query (Prometheus: 11,000).
    pub max_points_per_series: usize,
    /// Wall-clock limit of one query.
    pub timeout: Duration,
    /// Step of a subquery written without one, `x[1h:]` (Prometheus: the global evaluation
    /// interval, 1 m by default).
    pub default_subquery_step: Duration,
    /// `false` (default): windows are `[t - d, t]`, as in Prometheus 2.x. `true`: `(t - d, t]`,
    /// as in Prometheus 3.
    pub left_open_ranges: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            lookback_delta: Duration::from_secs(300),
            max_samples: 50_000_000,
            max_points_per_series: 11_000,
            timeout: Duration::from_secs(120),
            default_subquery_step: Duration::from_secs(60),
            left_open_ranges: false,
        }
    }
}

/// Evaluates PromQL over a [`Querier`].
pub struct Engine {
    querier: Arc<dyn Querier>,
    options: EngineOptions,
    parsed: Mutex<LruCache<Box<str>, Arc<Expr>>>,
}

/// Dashboards, rules and Grafana send the same few queries over and over, and promql-parser
/// rebuilds its grammar tables on every parse (a third of the time of a small query), so
/// parsed expressions are kept by query text.
const PARSE_CACHE_ENTRIES: usize = 512;
/// Longer queries are parsed each time rather than held in the cache.
const PARSE_CACHE_MAX_QUERY_BYTES: usize = 4096;

impl Engine {
    pub fn new(querier: Arc<dyn Querier>, options: EngineOptions) -> Self {
        let entries = NonZeroUsize::new(PARSE_CACHE_ENTRIES).unwrap_or(NonZeroUsize::MIN);
        Self { querier, options, parsed: Mutex::new(LruCache::new(entries)) }
    }

    /// Parses `query`, or returns the expression parsed from the same text before.
    pub fn parse(&self, query: &str) -> Result<Arc<Expr>, Error> {
        if let Some(expr) = self.parsed.lock().get(query) {
            return Ok(expr.clone());
        }
        let expr = Arc::new(promql_parser::parser::parse(query).map_err(Error::Parse)?);
        if query.len() <= PARSE_CACHE_MAX_QUERY_BYTES {
            self.parsed.lock().put(query.into(), expr.clone());
        }
        Ok(expr)
    }

    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Evaluates `query` at `time_ms`.
    pub fn instant(&self, query: &str, time_ms: i64) -> Result<Value, Error> {
        let expr = self.parse(query)?;
        let mut ev = Evaluator::new(self, time_ms, time_ms);
        let steps = Steps { start: time_ms, end: time_ms, step: 1 };
        Ok(match ev.eval(&expr, steps)? {
            Val::Scalar(mut v) => Value::Scalar(time_ms, v.pop().unwrap_or(f64::NAN)),
            Val::Vector(mut v) => Value::Vector(v.pop().unwrap_or_default()),
            Val::String(s) => Value::String(time_ms, s),
            Val::Matrix(m) => {
                let end = m.ends.first().copied().unwrap_or(time_ms);
                let series = m
                    .series
                    .iter()
                    .filter_map(|s| {
                        let window = m.window(s, end, self.options.left_open_ranges);
                        (!window.is_empty()).then(|| Series { labels: s.labels.clone(), samples: window.to_vec() })
                    })
                    .collect();
                Value::Matrix(series)
            }
        })
    }

    /// Evaluates `query` at every step from `start_ms` to `end_ms` (inclusive). The result has
    /// one series per label set, sorted by labels; a scalar result is one series without labels.
    pub fn range(&self, query: &str, start_ms: i64, end_ms: i64, step_ms: i64) -> Result<Matrix, Error> {
        if step_ms <= 0 {
            return Err(Error::BadData(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        if end_ms < start_ms {
            return Err(Error::BadData("end timestamp must not be before start time".into()));
        }
        let points = (end_ms - start_ms) / step_ms + 1;
        if points > self.options.max_points_per_series as i64 {
            return Err(Error::TooManyPoints { limit: self.options.max_points_per_series });
        }
        let expr = self.parse(query)?;
        match expr.value_type() {
            ValueType::Scalar | ValueType::Vector => {}
            other => {
                let name = match other {
                    ValueType::Matrix => "range vector",
                    ValueType::String => "string",
                    _ => "unknown",
                };
                return Err(Error::BadData(format!(
                    "invalid expression type \"{name}\" for range query, must be Scalar or instant Vector"
                )));
            }
        }
        let mut ev = Evaluator::new(self, start_ms, end_ms);
        let steps = Steps { start: start_ms, end: end_ms, step: step_ms };
        let mut out: Vec<Series> = Vec::new();
        match ev.eval(&expr, steps)? {
            Val::Scalar(values) => {
                ev.count_samples(values.len())?;
                let samples = values.iter().enumerate().map(|(i, v)| Sample::new(steps.time(i), *v)).collect();
                out.push(Series { labels: Labels::default(), samples });
            }
            Val::Vector(per_step) => {
                // Series are found by label set with a fast hash; a series usually sits at the
                // same position step after step, so that position is tried first.
                let mut index: foldhash::HashMap<Labels, usize> = foldhash::HashMap::default();
                let mut last_position: Vec<usize> = Vec::new();
                for (i, vector) in per_step.into_iter().enumerate() {
                    ev.count_samples(vector.len())?;
                    for (position, (labels, value)) in vector.into_iter().enumerate() {
                        let hinted = last_position.get(position).copied().filter(|&at| out[at].labels == labels);
                        let at = match hinted {
                            Some(at) => at,
                            None => *index.entry(labels.clone()).or_insert_with(|| {
                                out.push(Series { labels, samples: Vec::new() });
                                out.len() - 1
                            }),
                        };
                        if position < last_position.len() {
                            last_position[position] = at;
                        } else {
                            last_position.push(at);
                        }
                        out[at].samples.push(Sample::new(steps.time(i), value));
                    }
                }
                out.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
            }
            Val::Matrix(_) | Val::String(_) => {
                return Err(Error::BadData("range queries must evaluate to a scalar or an instant vector".into()));
            }
        }
        Ok(out)
    }
}

/// An instant vector: label sets and values, at one step.
pub(crate) type Vector = Vec<(Labels, f64)>;

/// The evaluation steps of one node: `start, start + step, …, end`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Steps {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

impl Steps {
    pub fn len(&self) -> usize {
        if self.end < self.start { 0 } else { ((self.end - self.start) / self.step + 1) as usize }
    }

    pub fn time(&self, index: usize) -> i64 {
        self.start + index as i64 * self.step
    }
}

/// An evaluated node, one entry per step (a matrix keeps its samples and the window end of
/// each step instead).
pub(crate) enum Val {
    Scalar(Vec<f64>),
    Vector(Vec<Vector>),
    Matrix(MatrixData),
    String(String),
}

/// A range vector over all steps: each series' samples (stale markers removed) and, per step,
/// where its window ends; windows are `range` long.
pub(crate) struct MatrixData {
    pub series: Vec<Series>,
    pub range: i64,
    pub ends: Vec<i64>,
}

impl MatrixData {
    /// The samples of `series` in the window ending at `end`.
    pub fn window<'s>(&self, series: &'s Series, end: i64, left_open: bool) -> &'s [Sample] {
        let start = end - self.range;
        let lo = if left_open {
            series.samples.partition_point(|s| s.timestamp <= start)
        } else {
            series.samples.partition_point(|s| s.timestamp < start)
        };
        let hi = series.samples.partition_point(|s| s.timestamp <= end);
        if lo >= hi { &[] } else { &series.samples[lo..hi] }
    }

    /// The same as [`MatrixData::window`] for windows that only move forward: `cursor` keeps
    /// where the previous window of this series began and ended, so consecutive steps cost a
    /// few comparisons instead of two binary searches.
    pub fn window_after<'s>(
        &self,
        series: &'s Series,
        end: i64,
        left_open: bool,
        cursor: &mut (usize, usize),
    ) -> &'s [Sample] {
        let samples = &series.samples;
        let start = end - self.range;
        let before_start = |s: &Sample| if left_open { s.timestamp <= start } else { s.timestamp < start };
        cursor.0 = advance(samples, cursor.0, before_start);
        cursor.1 = advance(samples, cursor.1.max(cursor.0), |s| s.timestamp <= end);
        if cursor.0 >= cursor.1 { &[] } else { &samples[cursor.0..cursor.1] }
    }
}

/// The first index at or after `from` whose sample fails `past` (samples are in time order):
/// a short linear probe, then a binary search of the rest.
fn advance(samples: &[Sample], from: usize, past: impl Fn(&Sample) -> bool) -> usize {
    let mut i = from;
    for _ in 0..8 {
        if i >= samples.len() || !past(&samples[i]) {
            return i;
        }
        i += 1;
    }
    i + samples[i.min(samples.len())..].partition_point(&past)
}

pub(crate) struct Evaluator<'e> {
    querier: &'e dyn Querier,
    pub options: &'e EngineOptions,
    query_start: i64,
    query_end: i64,
    deadline: Instant,
    samples: usize,
}

impl<'e> Evaluator<'e> {
    fn new(engine: &'e Engine, query_start: i64, query_end: i64) -> Self {
        Self {
            querier: engine.querier.as_ref(),
            options: &engine.options,
            query_start,
            query_end,
            deadline: Instant::now() + engine.options.timeout,
            samples: 0,
        }
    }

    pub fn check_deadline(&self, stage: &'static str) -> Result<(), Error> {
        if Instant::now() > self.deadline { Err(Error::Timeout { stage }) } else { Ok(()) }
    }

    pub fn count_samples(&mut self, n: usize) -> Result<(), Error> {
        self.samples = self.samples.saturating_add(n);
        if self.samples > self.options.max_samples {
            return Err(Error::TooManySamples { limit: self.options.max_samples });
        }
        Ok(())
    }

    pub fn eval(&mut self, expr: &Expr, steps: Steps) -> Result<Val, Error> {
        self.check_deadline("query evaluation")?;
        match expr {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(vec![n.val; steps.len()])),
            Expr::StringLiteral(s) => Ok(Val::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, steps),
            Expr::Unary(u) => match self.eval(&u.expr, steps)? {
                Val::Scalar(values) => Ok(Val::Scalar(values.into_iter().map(|v| -v).collect())),
                // Prometheus drops the metric name on unary minus, as on any arithmetic.
                Val::Vector(per_step) => Ok(Val::Vector(
                    per_step.into_iter().map(|v| v.into_iter().map(|(l, x)| (drop_name(&l), -x)).collect()).collect(),
                )),
                _ => Err(Error::BadData("unary minus applies to scalars and instant vectors only".into())),
            },
            Expr::VectorSelector(vs) => {
                let per_step = self.select_instant(vs, steps)?;
                Ok(Val::Vector(
                    per_step.into_iter().map(|v| v.into_iter().map(|(l, s)| (l, s.value)).collect()).collect(),
                ))
            }
            Expr::MatrixSelector(ms) => Ok(Val::Matrix(self.select_range(ms, steps)?)),
            Expr::Subquery(sq) => Ok(Val::Matrix(self.subquery(sq, steps)?)),
            Expr::Binary(b) => binary::eval(self, b, steps),
            Expr::Aggregate(a) => aggregate::eval(self, a, steps),
            Expr::Call(c) => functions::eval(self, c, steps),
            Expr::Extension(_) => Err(Error::BadData("extension expressions are not supported".into())),
        }
    }

    pub fn eval_scalar(&mut self, expr: &Expr, steps: Steps) -> Result<Vec<f64>, Error> {
        match self.eval(expr, steps)? {
            Val::Scalar(v) => Ok(v),
            _ => Err(Error::BadData(format!("expected a scalar, got {expr}"))),
        }
    }

    pub fn eval_vector(&mut self, expr: &Expr, steps: Steps) -> Result<Vec<Vector>, Error> {
        match self.eval(expr, steps)? {
            Val::Vector(v) => Ok(v),
            _ => Err(Error::BadData(format!("expected an instant vector, got {expr}"))),
        }
    }

    pub fn eval_matrix(&mut self, expr: &Expr, steps: Steps) -> Result<MatrixData, Error> {
        match self.eval(expr, steps)? {
            Val::Matrix(m) => Ok(m),
            _ => Err(Error::BadData(format!("expected a range vector, got {expr}"))),
        }
    }

    /// The time each step reads at, after `@` and `offset`.
    fn read_times(&self, steps: Steps, at: &Option<AtModifier>, offset: &Option<Offset>) -> Vec<i64> {
        let offset = match offset {
            Some(Offset::Pos(d)) => d.as_millis() as i64,
            Some(Offset::Neg(d)) => -(d.as_millis() as i64),
            None => 0,
        };
        let at = at.as_ref().map(|at| match at {
            AtModifier::Start => self.query_start,
            AtModifier::End => self.query_end,
            AtModifier::At(time) => system_time_ms(*time),
        });
        (0..steps.len()).map(|i| at.unwrap_or(steps.time(i)) - offset).collect()
    }

    fn select(&mut self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<Series>, Error> {
        let series = self.querier.select(matchers, start, end)?;
        self.count_samples(series.iter().map(|s| s.samples.len()).sum())?;
        self.check_deadline("query preparation")?;
        Ok(series)
    }

    /// Evaluates an instant selector, keeping each sample's own timestamp (for `timestamp()`).
    pub fn select_instant(&mut self, vs: &VectorSelector, steps: Steps) -> Result<Vec<Vec<(Labels, Sample)>>, Error> {
        let times = self.read_times(steps, &vs.at, &vs.offset);
        let (Some(&lo), Some(&hi)) = (times.iter().min(), times.iter().max()) else {
            return Ok(vec![Vec::new(); times.len()]);
        };
        let lookback = self.options.lookback_delta.as_millis() as i64;
        let left_open = self.options.left_open_ranges;
        let series = self.select(&matchers_of(vs)?, lo - lookback, hi)?;
        let mut out: Vec<Vec<(Labels, Sample)>> = times.iter().map(|_| Vec::with_capacity(series.len())).collect();
        for s in &series {
            // Steps move forward, so the newest sample at or before each one is found by
            // moving on from the previous step's (a binary search only if a step goes back).
            let mut next = 0;
            let mut previous = i64::MIN;
            for (i, &t) in times.iter().enumerate() {
                if t < previous {
                    next = s.samples.partition_point(|p| p.timestamp <= t);
                } else {
                    next = advance(&s.samples, next, |p| p.timestamp <= t);
                }
                previous = t;
                let Some(sample) = next.checked_sub(1).map(|i| s.samples[i]) else { continue };
                let too_old =
                    if left_open { sample.timestamp <= t - lookback } else { sample.timestamp < t - lookback };
                // A stale marker as the newest sample ends the series: nothing is returned.
                if !too_old && !is_stale_marker(sample.value) {
                    out[i].push((s.labels.clone(), sample));
                }
            }
        }
        Ok(out)
    }

    fn select_range(&mut self, ms: &MatrixSelector, steps: Steps) -> Result<MatrixData, Error> {
        let vs = &ms.vs;
        let ends = self.read_times(steps, &vs.at, &vs.offset);
        let range = ms.range.as_millis() as i64;
        let (Some(&lo), Some(&hi)) = (ends.iter().min(), ends.iter().max()) else {
            return Ok(MatrixData { series: Vec::new(), range, ends });
        };
        let mut series = self.select(&matchers_of(vs)?, lo - range, hi)?;
        // Range selectors never return stale markers.
        for s in &mut series {
            s.samples.retain(|p| !is_stale_marker(p.value));
        }
        Ok(MatrixData { series, range, ends })
    }

    /// Evaluates the inner expression once at every inner step any outer step needs (steps
    /// aligned to multiples of the subquery step, as in Prometheus), then windows it per
    /// outer step like a range selector.
    fn subquery(&mut self, sq: &SubqueryExpr, steps: Steps) -> Result<MatrixData, Error> {
        let ends = self.read_times(steps, &sq.at, &sq.offset);
        let range = sq.range.as_millis() as i64;
        let step = sq.step.unwrap_or(self.options.default_subquery_step).as_millis() as i64;
        if step <= 0 {
            return Err(Error::BadData("subquery step must be positive".into()));
        }
        let (Some(&lo), Some(&hi)) = (ends.iter().min(), ends.iter().max()) else {
            return Ok(MatrixData { series: Vec::new(), range, ends });
        };
        let first = lo - range;
        let mut start = step * first.div_euclid(step);
        if start < first {
            start += step;
        }
        let inner = Steps { start, end: hi, step };
        // Every inner step yields at least one point: charge them before allocating any.
        self.count_samples(inner.len())?;
        let per_step = self.eval_vector(&sq.expr, inner)?;
        let mut by_labels: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
        for (i, vector) in per_step.into_iter().enumerate() {
            for (labels, value) in vector {
                by_labels.entry(labels).or_default().push(Sample::new(inner.time(i), value));
            }
        }
        let series = by_labels.into_iter().map(|(labels, samples)| Series { labels, samples }).collect();
        Ok(MatrixData { series, range, ends })
    }
}

fn system_time_ms(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// The label set without its metric name.
pub(crate) fn drop_name(labels: &Labels) -> Labels {
    if labels.metric_name().is_some() { labels.without(&[METRIC_NAME]) } else { labels.clone() }
}

/// Prometheus refuses a step result with two elements of one label set (typically after a
/// function or operator dropped the metric name).
pub(crate) fn check_unique(vector: &Vector) -> Result<(), Error> {
    if vector.len() < 2 {
        return Ok(());
    }
    let mut seen = <foldhash::HashSet<&Labels> as foldhash::HashSetExt>::with_capacity(vector.len());
    for (labels, _) in vector {
        if !seen.insert(labels) {
            return Err(Error::Execution("vector cannot contain metrics with the same labelset".into()));
        }
    }
    Ok(())
}
