//! Aggregation operators (`sum avg min max count group stddev stdvar topk bottomk quantile
//! count_values`) with `by`/`without`, following Prometheus 2.42's arithmetic (incremental
//! mean for `avg`, Welford for `stddev`/`stdvar`, NaN replaced by any number in `min`/`max`).
//!
//! Labels: `by (l…)` keeps only the listed labels (`__name__` too if listed); `without (l…)`
//! drops the listed labels and `__name__`. `topk`/`bottomk` return the original series,
//! metric name included.

use foldhash::{HashMap, HashMapExt};

use hubmon_model::{Labels, METRIC_NAME, is_valid_label_name};
use promql_parser::parser::{AggregateExpr, LabelModifier};

use crate::Error;
use crate::engine::{Evaluator, Steps, Val, Vector};
use crate::functions::quantile;

enum Param {
    None,
    Scalar(Vec<f64>),
    Label(String),
}

pub(crate) fn eval(ev: &mut Evaluator<'_>, expr: &AggregateExpr, steps: Steps) -> Result<Val, Error> {
    let op = expr.op.to_string();
    let param = match expr.param.as_deref() {
        None => Param::None,
        Some(p) => match ev.eval(p, steps)? {
            Val::Scalar(v) => Param::Scalar(v),
            Val::String(s) => Param::Label(s),
            _ => return Err(Error::BadData(format!("invalid parameter of {op}: {p}"))),
        },
    };
    let input = ev.eval_vector(&expr.expr, steps)?;
    let (without, names): (bool, &[String]) = match &expr.modifier {
        Some(LabelModifier::Include(l)) => (false, &l.labels),
        Some(LabelModifier::Exclude(l)) => (true, &l.labels),
        None => (false, &[]),
    };
    let mut grouper = Grouper::new(without, names);
    let mut out = Vec::with_capacity(input.len());
    for (i, vector) in input.into_iter().enumerate() {
        ev.check_deadline("aggregation")?;
        let scalar = match &param {
            Param::Scalar(v) => v.get(i).copied().unwrap_or(f64::NAN),
            _ => f64::NAN,
        };
        let result = match (op.as_str(), &param) {
            ("topk", _) | ("bottomk", _) => top_k(vector, scalar, op == "topk", &mut grouper),
            ("count_values", Param::Label(label)) => count_values(vector, label, &mut grouper)?,
            (op, _) => simple(op, vector, scalar, &mut grouper)?,
        };
        out.push(result);
    }
    Ok(Val::Vector(out))
}

/// The groups of input series. The same series comes back at every step as the same label
/// set allocation, so its group is computed once and found again by identity; groups are
/// numbered, so a step's elements are gathered without hashing label sets.
struct Grouper<'a> {
    without: bool,
    names: &'a [String],
    /// Input label set identity → (that label set, kept alive so the identity stays unique;
    /// its group number).
    by_input: HashMap<usize, (Labels, usize)>,
    by_key: HashMap<Labels, usize>,
    keys: Vec<Labels>,
    /// Per group number, its position in the step being gathered (`usize::MAX`: not yet).
    positions: Vec<usize>,
}

impl<'a> Grouper<'a> {
    fn new(without: bool, names: &'a [String]) -> Self {
        Self {
            without,
            names,
            by_input: HashMap::new(),
            by_key: HashMap::new(),
            keys: Vec::new(),
            positions: Vec::new(),
        }
    }

    fn group(&mut self, labels: &Labels) -> usize {
        if let Some((_, group)) = self.by_input.get(&labels.identity()) {
            return *group;
        }
        let key = self.key_of(labels);
        let next = self.keys.len();
        let group = *self.by_key.entry(key.clone()).or_insert(next);
        if group == next {
            self.keys.push(key);
            self.positions.push(usize::MAX);
        }
        self.by_input.insert(labels.identity(), (labels.clone(), group));
        group
    }

    /// `by (l…)` keeps the listed labels; `without (l…)` drops them and the metric name.
    fn key_of(&self, labels: &Labels) -> Labels {
        let pairs = labels
            .iter()
            .filter(|(n, _)| {
                let listed = self.names.iter().any(|x| x == n);
                if self.without { !listed && *n != METRIC_NAME } else { listed }
            })
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        Labels::from_trusted(pairs)
    }

    /// Groups one step's elements, in order of first appearance (as Prometheus).
    fn gather(&mut self, vector: Vector) -> Vec<(Labels, Vector)> {
        let mut out: Vec<(Labels, Vector)> = Vec::new();
        let mut used = Vec::new();
        for (labels, value) in vector {
            let group = self.group(&labels);
            let mut at = self.positions[group];
            if at == usize::MAX {
                at = out.len();
                self.positions[group] = at;
                used.push(group);
                out.push((self.keys[group].clone(), Vec::new()));
            }
            out[at].1.push((labels, value));
        }
        for group in used {
            self.positions[group] = usize::MAX;
        }
        out
    }
}

fn simple(op: &str, vector: Vector, param: f64, grouper: &mut Grouper<'_>) -> Result<Vector, Error> {
    let mut out = Vec::new();
    for (key, members) in grouper.gather(vector) {
        let values: Vec<f64> = members.iter().map(|(_, v)| *v).collect();
        let value = match op {
            "sum" => values.iter().sum(),
            "count" => values.len() as f64,
            "group" => 1.0,
            "avg" => avg(&values),
            "min" => values.iter().skip(1).fold(values[0], |m, &v| if m > v || m.is_nan() { v } else { m }),
            "max" => values.iter().skip(1).fold(values[0], |m, &v| if m < v || m.is_nan() { v } else { m }),
            "stdvar" => welford_variance(&values),
            "stddev" => welford_variance(&values).sqrt(),
            "quantile" => quantile(param, values),
            other => return Err(Error::BadData(format!("aggregation {other} is not supported"))),
        };
        out.push((key, value));
    }
    Ok(out)
}

/// Prometheus 2.42's incremental mean, which keeps an infinite mean instead of turning it
/// into NaN.
pub(crate) fn avg(values: &[f64]) -> f64 {
    let mut mean = values[0];
    for (i, &v) in values.iter().enumerate().skip(1) {
        let count = (i + 1) as f64;
        if mean.is_infinite() {
            if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        mean += v / count - mean / count;
    }
    mean
}

/// Population variance, Welford's method as Prometheus uses.
pub(crate) fn welford_variance(values: &[f64]) -> f64 {
    let (mut count, mut mean, mut m2) = (0.0, 0.0, 0.0);
    for &v in values {
        count += 1.0;
        let delta = v - mean;
        mean += delta / count;
        m2 += delta * (v - mean);
    }
    m2 / count
}

fn top_k(vector: Vector, k: f64, top: bool, grouper: &mut Grouper<'_>) -> Vector {
    if k.is_nan() || k < 1.0 {
        return Vec::new();
    }
    let k = if k >= usize::MAX as f64 { usize::MAX } else { k as usize };
    let mut out = Vec::new();
    for (_, members) in grouper.gather(vector) {
        let mut kept = KeptHeap { items: Vec::with_capacity(k.min(members.len())), top };
        for member in members {
            kept.offer(member, k);
        }
        // Output order: best first; NaN last.
        kept.items.sort_by(|(_, a), (_, b)| match (a.is_nan(), b.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ if top => b.total_cmp(a),
            _ => a.total_cmp(b),
        });
        out.extend(kept.items);
    }
    out
}

/// The k kept elements of `topk`/`bottomk`, as the binary heap Prometheus keeps them: the
/// least wanted element (NaN first) on top, replaced only by a strictly better one. Which of
/// several equal values survives depends on the heap's layout, so to answer what Prometheus
/// answers on ties this reproduces its heap operations (Go's `container/heap`) step by step.
struct KeptHeap {
    items: Vector,
    top: bool,
}

impl KeptHeap {
    /// Whether element `i` belongs above element `j` (is less wanted).
    fn less(&self, i: usize, j: usize) -> bool {
        let (a, b) = (self.items[i].1, self.items[j].1);
        if a.is_nan() {
            return true;
        }
        if self.top { a < b } else { a > b }
    }

    fn offer(&mut self, member: (Labels, f64), k: usize) {
        if self.items.len() < k {
            self.items.push(member);
            self.up(self.items.len() - 1);
            return;
        }
        let (worst, value) = (self.items[0].1, member.1);
        let better = if self.top { worst < value } else { worst > value };
        if better || (worst.is_nan() && !value.is_nan()) {
            self.items[0] = member;
            if k > 1 && !self.down(0) {
                self.up(0);
            }
        }
    }

    fn up(&mut self, mut j: usize) {
        while j > 0 {
            let i = (j - 1) / 2;
            if !self.less(j, i) {
                break;
            }
            self.items.swap(i, j);
            j = i;
        }
    }

    fn down(&mut self, start: usize) -> bool {
        let n = self.items.len();
        let mut i = start;
        loop {
            let left = 2 * i + 1;
            if left >= n {
                break;
            }
            let mut j = left;
            if left + 1 < n && self.less(left + 1, left) {
                j = left + 1;
            }
            if !self.less(j, i) {
                break;
            }
            self.items.swap(i, j);
            i = j;
        }
        i > start
    }
}

fn count_values(vector: Vector, label: &str, grouper: &mut Grouper<'_>) -> Result<Vector, Error> {
    if !is_valid_label_name(label) {
        return Err(Error::BadData(format!("invalid label name {label:?}")));
    }
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vector = Vec::new();
    for (labels, value) in vector {
        let group = grouper.group(&labels);
        let key = grouper.keys[group].with(label, &format_value(value));
        let at = *index.entry(key.clone()).or_insert_with(|| {
            out.push((key, 0.0));
            out.len() - 1
        });
        out[at].1 += 1.0;
    }
    Ok(out)
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`: shortest decimal that round-trips, no exponent.
fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{v}")
    }
}
