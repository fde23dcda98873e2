//! PromQL functions, with Prometheus 2.42's arithmetic.
//!
//! Metric names: every function drops `__name__` from its results except those that only
//! select or relabel series: `last_over_time`, `sort`, `sort_desc`, `label_replace`,
//! `label_join` (and `vector`/`absent*`, whose labels are built afresh). `clamp*`,
//! `timestamp` and the date functions drop it, as in Prometheus 2.42.

use foldhash::{HashMap, HashMapExt};

use chrono::{DateTime, Datelike, Timelike};
use hubmon_model::{Labels, METRIC_NAME, MatchOp, Sample, is_valid_label_name};
use promql_parser::parser::{Call, Expr};

use crate::Error;
use crate::aggregate::{avg, welford_variance};
use crate::engine::{Evaluator, MatrixData, Steps, Val, Vector, check_unique, drop_name};
use crate::selector::matchers_of;

pub(crate) fn eval(ev: &mut Evaluator<'_>, call: &Call, steps: Steps) -> Result<Val, Error> {
    let name = call.func.name;
    let args: Vec<&Expr> = call.args.args.iter().map(|a| a.as_ref()).collect();
    let arg = |i: usize| -> Result<&Expr, Error> {
        args.get(i).copied().ok_or_else(|| Error::BadData(format!("missing argument {} of {name}()", i + 1)))
    };
    let out: Vec<Vector> = match name {
        "time" => return Ok(Val::Scalar((0..steps.len()).map(|i| steps.time(i) as f64 / 1000.0).collect())),
        "pi" => return Ok(Val::Scalar(vec![std::f64::consts::PI; steps.len()])),
        "vector" => {
            let values = ev.eval_scalar(arg(0)?, steps)?;
            values.into_iter().map(|v| vec![(Labels::default(), v)]).collect()
        }
        "scalar" => {
            let input = ev.eval_vector(arg(0)?, steps)?;
            return Ok(Val::Scalar(input.iter().map(|v| if v.len() == 1 { v[0].1 } else { f64::NAN }).collect()));
        }
        "abs" | "ceil" | "floor" | "exp" | "ln" | "log2" | "log10" | "sqrt" | "sgn" | "sin" | "cos" | "tan"
        | "asin" | "acos" | "atan" | "sinh" | "cosh" | "tanh" | "asinh" | "acosh" | "atanh" | "deg" | "rad" => {
            let f: fn(f64) -> f64 = match name {
                "abs" => f64::abs,
                "ceil" => f64::ceil,
                "floor" => f64::floor,
                "exp" => f64::exp,
                "ln" => f64::ln,
                "log2" => f64::log2,
                "log10" => f64::log10,
                "sqrt" => f64::sqrt,
                "sin" => f64::sin,
                "cos" => f64::cos,
                "tan" => f64::tan,
                "asin" => f64::asin,
                "acos" => f64::acos,
                "atan" => f64::atan,
                "sinh" => f64::sinh,
                "cosh" => f64::cosh,
                "tanh" => f64::tanh,
                "asinh" => f64::asinh,
                "acosh" => f64::acosh,
                "atanh" => f64::atanh,
                "deg" => f64::to_degrees,
                "rad" => f64::to_radians,
                // Go's sgn keeps NaN and signed zero as they are.
                _ => |v: f64| {
                    if v < 0.0 {
                        -1.0
                    } else if v > 0.0 {
                        1.0
                    } else {
                        v
                    }
                },
            };
            map_values(ev.eval_vector(arg(0)?, steps)?, |v, _| Some(f(v)))
        }
        "round" => {
            let input = ev.eval_vector(arg(0)?, steps)?;
            let nearest = match args.get(1) {
                Some(e) => ev.eval_scalar(e, steps)?,
                None => vec![1.0; steps.len()],
            };
            map_values(input, |v, i| {
                let inverse = 1.0 / nearest[i];
                Some((v * inverse + 0.5).floor() / inverse)
            })
        }
        "clamp" => {
            let input = ev.eval_vector(arg(0)?, steps)?;
            let (lo, hi) = (ev.eval_scalar(arg(1)?, steps)?, ev.eval_scalar(arg(2)?, steps)?);
            // An empty result when max < min, as Prometheus.
            map_values(input, |v, i| {
                (hi[i] >= lo[i] || lo[i].is_nan() || hi[i].is_nan()).then(|| go_max(lo[i], go_min(hi[i], v)))
            })
        }
        "clamp_min" => {
            let input = ev.eval_vector(arg(0)?, steps)?;
            let lo = ev.eval_scalar(arg(1)?, steps)?;
            map_values(input, |v, i| Some(go_max(lo[i], v)))
        }
        "clamp_max" => {
            let input = ev.eval_vector(arg(0)?, steps)?;
            let hi = ev.eval_scalar(arg(1)?, steps)?;
            map_values(input, |v, i| Some(go_min(hi[i], v)))
        }
        "timestamp" => timestamp(ev, arg(0)?, steps)?,
        "day_of_month" | "day_of_week" | "day_of_year" | "hour" | "minute" | "month" | "year" | "days_in_month" => {
            let input = match args.first() {
                Some(e) => ev.eval_vector(e, steps)?,
                None => (0..steps.len()).map(|i| vec![(Labels::default(), steps.time(i) as f64 / 1000.0)]).collect(),
            };
            map_values(input, |v, _| date_part(name, v))
        }
        "sort" | "sort_desc" => {
            let mut input = ev.eval_vector(arg(0)?, steps)?;
            for v in &mut input {
                // NaN goes last in both directions, as in Prometheus.
                v.sort_by(|(_, a), (_, b)| match (a.is_nan(), b.is_nan()) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) => std::cmp::Ordering::Greater,
                    (false, true) => std::cmp::Ordering::Less,
                    _ if name == "sort" => a.total_cmp(b),
                    _ => b.total_cmp(a),
                });
            }
            return Ok(Val::Vector(input));
        }
        "label_replace" => label_replace(ev, &args, steps)?,
        "label_join" => label_join(ev, &args, steps)?,
        "absent" => {
            let input = ev.eval_vector(arg(0)?, steps)?;
            let labels = absent_labels(arg(0)?)?;
            input.iter().map(|v| if v.is_empty() { vec![(labels.clone(), 1.0)] } else { Vec::new() }).collect()
        }
        "absent_over_time" => {
            let m = ev.eval_matrix(arg(0)?, steps)?;
            let labels = absent_labels(arg(0)?)?;
            let left_open = ev.options.left_open_ranges;
            m.ends
                .iter()
                .map(|&end| {
                    let present = m.series.iter().any(|s| !m.window(s, end, left_open).is_empty());
                    if present { Vec::new() } else { vec![(labels.clone(), 1.0)] }
                })
                .collect()
        }
        "histogram_quantile" => {
            let q = ev.eval_scalar(arg(0)?, steps)?;
            let input = ev.eval_vector(arg(1)?, steps)?;
            input.into_iter().enumerate().map(|(i, v)| histogram_quantile(q[i], v)).collect()
        }
        "quantile_over_time" => {
            let q = ev.eval_scalar(arg(0)?, steps)?;
            let m = ev.eval_matrix(arg(1)?, steps)?;
            return Ok(Val::Vector(over_windows(ev, &m, steps, false, |w, ctx| {
                Some(quantile(q[ctx.index], w.iter().map(|s| s.value).collect()))
            })?));
        }
        "predict_linear" => {
            let m = ev.eval_matrix(arg(0)?, steps)?;
            let horizon = ev.eval_scalar(arg(1)?, steps)?;
            return Ok(Val::Vector(over_windows(ev, &m, steps, false, |w, ctx| {
                (w.len() >= 2).then(|| {
                    let (slope, intercept) = linear_regression(w, ctx.step_time);
                    slope * horizon[ctx.index] + intercept
                })
            })?));
        }
        _ => {
            let f: fn(&[Sample], Window) -> Option<f64> = match name {
                "rate" => |w, c| extrapolated_rate(w, c, true, true),
                "increase" => |w, c| extrapolated_rate(w, c, true, false),
                "delta" => |w, c| extrapolated_rate(w, c, false, false),
                "irate" => |w, _| instant_delta(w, true),
                "idelta" => |w, _| instant_delta(w, false),
                "deriv" => |w, _| (w.len() >= 2).then(|| linear_regression(w, w[0].timestamp).0),
                "resets" => |w, _| Some(w.windows(2).filter(|p| p[1].value < p[0].value).count() as f64),
                "changes" => |w, _| {
                    Some(
                        w.windows(2)
                            .filter(|p| p[1].value != p[0].value && !(p[0].value.is_nan() && p[1].value.is_nan()))
                            .count() as f64,
                    )
                },
                "avg_over_time" => |w, _| Some(avg(&values(w))),
                "sum_over_time" => |w, _| Some(w.iter().map(|s| s.value).sum()),
                "count_over_time" => |w, _| Some(w.len() as f64),
                "min_over_time" => {
                    |w, _| Some(w.iter().fold(w[0].value, |m, s| if s.value < m || m.is_nan() { s.value } else { m }))
                }
                "max_over_time" => {
                    |w, _| Some(w.iter().fold(w[0].value, |m, s| if s.value > m || m.is_nan() { s.value } else { m }))
                }
                "stddev_over_time" => |w, _| Some(welford_variance(&values(w)).sqrt()),
                "stdvar_over_time" => |w, _| Some(welford_variance(&values(w))),
                "last_over_time" => |w, _| w.last().map(|s| s.value),
                "present_over_time" => |_, _| Some(1.0),
                other => return Err(Error::BadData(format!("function {other}() is not supported by hubmon yet"))),
            };
            let m = ev.eval_matrix(arg(0)?, steps)?;
            return Ok(Val::Vector(over_windows(ev, &m, steps, name == "last_over_time", f)?));
        }
    };
    for v in &out {
        check_unique(v)?;
    }
    Ok(Val::Vector(out))
}

fn values(w: &[Sample]) -> Vec<f64> {
    w.iter().map(|s| s.value).collect()
}

/// Applies `f` to every element, dropping the metric name; `None` drops the element.
fn map_values(input: Vec<Vector>, f: impl Fn(f64, usize) -> Option<f64>) -> Vec<Vector> {
    input
        .into_iter()
        .enumerate()
        .map(|(i, v)| v.into_iter().filter_map(|(l, x)| f(x, i).map(|y| (drop_name(&l), y))).collect())
        .collect()
}

/// Go's math.Max/Min: NaN wins (Rust's f64::max ignores it).
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) }
}

fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) }
}

/// Where one window sits: its bounds (ms) and the step it belongs to.
#[derive(Clone, Copy)]
pub(crate) struct Window {
    start: i64,
    end: i64,
    index: usize,
    step_time: i64,
}

fn over_windows(
    ev: &mut Evaluator<'_>,
    m: &MatrixData,
    steps: Steps,
    keep_name: bool,
    f: impl Fn(&[Sample], Window) -> Option<f64>,
) -> Result<Vec<Vector>, Error> {
    let left_open = ev.options.left_open_ranges;
    let names: Vec<Labels> =
        m.series.iter().map(|s| if keep_name { s.labels.clone() } else { drop_name(&s.labels) }).collect();
    // Each series yields at most one element per step under its fixed output label set, so
    // distinct label sets across the series make every step's vector distinct: checked once
    // here instead of at every step.
    let distinct = {
        let mut seen = <foldhash::HashSet<&Labels> as foldhash::HashSetExt>::with_capacity(names.len());
        names.iter().all(|labels| seen.insert(labels))
    };
    let mut out = Vec::with_capacity(m.ends.len());
    let mut cursors = vec![(0, 0); m.series.len()];
    let mut previous_end = i64::MIN;
    for (index, &end) in m.ends.iter().enumerate() {
        ev.check_deadline("range function")?;
        let ctx = Window { start: end - m.range, end, index, step_time: steps.time(index) };
        // Windows move forward step by step; should one ever move back, start the cursors over.
        if end < previous_end {
            cursors.fill((0, 0));
        }
        previous_end = end;
        let mut vector = Vec::with_capacity(m.series.len());
        for ((s, labels), cursor) in m.series.iter().zip(&names).zip(&mut cursors) {
            let window = m.window_after(s, end, left_open, cursor);
            if window.is_empty() {
                continue;
            }
            if let Some(v) = f(window, ctx) {
                vector.push((labels.clone(), v));
            }
        }
        if !distinct {
            check_unique(&vector)?;
        }
        out.push(vector);
    }
    Ok(out)
}

/// `rate`, `increase` and `delta`: Prometheus's extrapolation. Each side extends to the window
/// bound when that is within 1.1 average sample intervals, else by half an interval; a counter
/// is never extrapolated below zero.
fn extrapolated_rate(w: &[Sample], ctx: Window, is_counter: bool, is_rate: bool) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (first, last) = (w[0], w[w.len() - 1]);
    let mut result = last.value - first.value;
    if is_counter {
        let mut prev = first.value;
        for s in &w[1..] {
            if s.value < prev {
                result += prev;
            }
            prev = s.value;
        }
    }
    let mut to_start = (first.timestamp - ctx.start) as f64 / 1000.0;
    let to_end = (ctx.end - last.timestamp) as f64 / 1000.0;
    let sampled = (last.timestamp - first.timestamp) as f64 / 1000.0;
    let average = sampled / (w.len() - 1) as f64;
    if is_counter && result > 0.0 && first.value >= 0.0 {
        let to_zero = sampled * (first.value / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = average * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold { to_start } else { average / 2.0 };
    interval += if to_end < threshold { to_end } else { average / 2.0 };
    let mut factor = interval / sampled;
    if is_rate {
        factor /= (ctx.end - ctx.start) as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate` and `idelta`: the last two samples.
fn instant_delta(w: &[Sample], is_rate: bool) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (prev, last) = (w[w.len() - 2], w[w.len() - 1]);
    let mut result = if is_rate && last.value < prev.value { last.value } else { last.value - prev.value };
    let interval = last.timestamp - prev.timestamp;
    if interval == 0 {
        return None;
    }
    if is_rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// Least-squares slope (per second) and intercept at `intercept_time` (ms).
fn linear_regression(w: &[Sample], intercept_time: i64) -> (f64, f64) {
    let first = w[0].value;
    if w.iter().all(|s| s.value == first) {
        return if first.is_infinite() { (f64::NAN, f64::NAN) } else { (0.0, first) };
    }
    let (mut n, mut sum_x, mut sum_y, mut sum_xy, mut sum_x2) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for s in w {
        let x = (s.timestamp - intercept_time) as f64 / 1000.0;
        n += 1.0;
        sum_x += x;
        sum_y += s.value;
        sum_xy += x * s.value;
        sum_x2 += x * x;
    }
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    (slope, sum_y / n - slope * sum_x / n)
}

/// Prometheus's quantile: linear interpolation between the closest ranks.
pub(crate) fn quantile(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0) as usize;
    let upper = (lower + 1).min(values.len() - 1);
    let weight = rank - rank.floor();
    values[lower] * (1.0 - weight) + values[upper] * weight
}

fn timestamp(ev: &mut Evaluator<'_>, arg: &Expr, steps: Steps) -> Result<Vec<Vector>, Error> {
    // On a bare selector Prometheus reports each sample's own time, not the step's.
    if let Expr::VectorSelector(vs) = unwrap_parens(arg) {
        let per_step = ev.select_instant(vs, steps)?;
        return Ok(per_step
            .into_iter()
            .map(|v| v.into_iter().map(|(l, s)| (drop_name(&l), s.timestamp as f64 / 1000.0)).collect())
            .collect());
    }
    let input = ev.eval_vector(arg, steps)?;
    Ok(map_values(input, |_, i| Some(steps.time(i) as f64 / 1000.0)))
}

fn unwrap_parens(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

fn date_part(name: &str, seconds: f64) -> Option<f64> {
    if !seconds.is_finite() {
        return Some(f64::NAN);
    }
    let t = DateTime::from_timestamp(seconds as i64, 0)?;
    Some(match name {
        "day_of_month" => t.day() as f64,
        "day_of_week" => t.weekday().num_days_from_sunday() as f64,
        "day_of_year" => t.ordinal() as f64,
        "hour" => t.hour() as f64,
        "minute" => t.minute() as f64,
        "month" => t.month() as f64,
        "year" => t.year() as f64,
        _ => {
            let (y, m) = if t.month() == 12 { (t.year() + 1, 1) } else { (t.year(), t.month() + 1) };
            let next = chrono::NaiveDate::from_ymd_opt(y, m, 1)?;
            let this = chrono::NaiveDate::from_ymd_opt(t.year(), t.month(), 1)?;
            (next - this).num_days() as f64
        }
    })
}

fn string_arg(e: &Expr) -> Result<String, Error> {
    match unwrap_parens(e) {
        Expr::StringLiteral(s) => Ok(s.val.clone()),
        other => Err(Error::BadData(format!("expected a string literal, got {other}"))),
    }
}

fn label_replace(ev: &mut Evaluator<'_>, args: &[&Expr], steps: Steps) -> Result<Vec<Vector>, Error> {
    let [input, dst, replacement, src, regex] = args else {
        return Err(Error::BadData("label_replace() takes 5 arguments".into()));
    };
    let (dst, replacement, src, regex) =
        (string_arg(dst)?, string_arg(replacement)?, string_arg(src)?, string_arg(regex)?);
    let re = regex::Regex::new(&format!("^(?:{regex})$"))
        .map_err(|e| Error::Execution(format!("invalid regular expression in label_replace(): {regex}: {e}")))?;
    if !is_valid_label_name(&dst) {
        return Err(Error::Execution(format!("invalid destination label name in label_replace(): {dst}")));
    }
    let input = ev.eval_vector(input, steps)?;
    Ok(input
        .into_iter()
        .map(|v| {
            v.into_iter()
                .map(|(labels, value)| {
                    let source = labels.get(&src).unwrap_or("");
                    let Some(caps) = re.captures(source) else { return (labels, value) };
                    let mut result = String::new();
                    caps.expand(&replacement, &mut result);
                    (labels.with(&dst, &result), value)
                })
                .collect()
        })
        .collect())
}

fn label_join(ev: &mut Evaluator<'_>, args: &[&Expr], steps: Steps) -> Result<Vec<Vector>, Error> {
    let [input, dst, separator, sources @ ..] = args else {
        return Err(Error::BadData("label_join() takes at least 3 arguments".into()));
    };
    let (dst, separator) = (string_arg(dst)?, string_arg(separator)?);
    let sources = sources.iter().map(|s| string_arg(s)).collect::<Result<Vec<_>, _>>()?;
    if let Some(bad) = sources.iter().find(|s| !is_valid_label_name(s)) {
        return Err(Error::Execution(format!("invalid source label name in label_join(): {bad}")));
    }
    if !is_valid_label_name(&dst) {
        return Err(Error::Execution(format!("invalid destination label name in label_join(): {dst}")));
    }
    let input = ev.eval_vector(input, steps)?;
    Ok(input
        .into_iter()
        .map(|v| {
            v.into_iter()
                .map(|(labels, value)| {
                    let joined: Vec<&str> = sources.iter().map(|s| labels.get(s).unwrap_or("")).collect();
                    (labels.with(&dst, &joined.join(&separator)), value)
                })
                .collect()
        })
        .collect())
}

/// The labels `absent()` reports: the selector's equality matchers, except the metric name
/// and labels matched more than once.
fn absent_labels(arg: &Expr) -> Result<Labels, Error> {
    let vs = match unwrap_parens(arg) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Ok(Labels::default()),
    };
    let matchers = matchers_of(vs)?;
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for m in &matchers {
        *counts.entry(m.name.as_str()).or_default() += 1;
    }
    let pairs = matchers
        .iter()
        .filter(|m| m.op == MatchOp::Equal && m.name != METRIC_NAME && counts.get(m.name.as_str()) == Some(&1))
        .map(|m| (m.name.clone(), m.value.clone()))
        .collect::<Vec<_>>();
    Labels::new(pairs).map_err(|e| Error::BadData(e.to_string()))
}

/// `histogram_quantile` over classic buckets: group by labels other than `le`, then
/// interpolate linearly within the bucket holding the rank (Prometheus's bucketQuantile).
fn histogram_quantile(q: f64, vector: Vector) -> Vector {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<(Labels, Vec<(f64, f64)>)> = Vec::new();
    for (labels, value) in vector {
        // Series without a parseable `le` are ignored, as in Prometheus.
        let Some(upper) = labels.get("le").and_then(parse_le) else { continue };
        let key = labels.without(&["le", METRIC_NAME]);
        let at = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[at].1.push((upper, value));
    }
    groups.into_iter().map(|(labels, buckets)| (labels, bucket_quantile(q, buckets))).collect()
}

fn parse_le(s: &str) -> Option<f64> {
    match s.trim() {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

fn bucket_quantile(q: f64, mut buckets: Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if !matches!(buckets.last(), Some((upper, _)) if *upper == f64::INFINITY) {
        return f64::NAN;
    }
    // Coalesce buckets with the same bound, then force counts to be monotonic.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for (upper, count) in buckets {
        match merged.last_mut() {
            Some(last) if last.0 == upper => last.1 += count,
            _ => merged.push((upper, count)),
        }
    }
    let mut max = f64::NEG_INFINITY;
    for b in &mut merged {
        if b.1 > max { max = b.1 } else { b.1 = max }
    }
    if merged.len() < 2 {
        return f64::NAN;
    }
    let observations = merged[merged.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = merged[..merged.len() - 1].partition_point(|b| b.1 < rank);
    if b == merged.len() - 1 {
        return merged[merged.len() - 2].0;
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let (mut start, end, mut count) = (0.0, merged[b].0, merged[b].1);
    if b > 0 {
        start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    start + (end - start) * (rank / count)
}
