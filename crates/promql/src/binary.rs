//! Binary operators: arithmetic, comparison (filtering or `bool`), set operators, and vector
//! matching (`on`/`ignoring`, `group_left`/`group_right`) with Prometheus 2.42's rules and
//! error messages.
//!
//! Metric names: arithmetic (`+ - * / % ^`) drops `__name__`, and so does any comparison
//! with `bool`; filtering comparisons and set operators keep it. `atan2` keeps it, as in
//! Prometheus 2.42 (its `shouldDropMetricName` does not list it).

use foldhash::{HashMap, HashMapExt, HashSet};

use hubmon_model::{Labels, METRIC_NAME};
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use crate::Error;
use crate::engine::{Evaluator, Steps, Val, Vector, check_unique, drop_name};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl Op {
    fn parse(token: &str) -> Result<Self, Error> {
        Ok(match token {
            "+" => Op::Add,
            "-" => Op::Sub,
            "*" => Op::Mul,
            "/" => Op::Div,
            "%" => Op::Mod,
            "^" => Op::Pow,
            "atan2" => Op::Atan2,
            "==" => Op::Eq,
            "!=" => Op::Ne,
            ">" => Op::Gt,
            "<" => Op::Lt,
            ">=" => Op::Ge,
            "<=" => Op::Le,
            "and" => Op::And,
            "or" => Op::Or,
            "unless" => Op::Unless,
            other => return Err(Error::BadData(format!("unknown binary operator {other:?}"))),
        })
    }

    fn is_comparison(self) -> bool {
        matches!(self, Op::Eq | Op::Ne | Op::Gt | Op::Lt | Op::Ge | Op::Le)
    }

    fn drops_name(self) -> bool {
        matches!(self, Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Mod | Op::Pow)
    }

    /// The value and whether the element is kept (comparisons keep the left value).
    fn apply(self, l: f64, r: f64) -> (f64, bool) {
        match self {
            Op::Add => (l + r, true),
            Op::Sub => (l - r, true),
            Op::Mul => (l * r, true),
            Op::Div => (l / r, true),
            // Rust's `%` on floats is C's fmod, like Go's math.Mod: the sign of the dividend.
            Op::Mod => (l % r, true),
            Op::Pow => (l.powf(r), true),
            Op::Atan2 => (l.atan2(r), true),
            Op::Eq => (l, l == r),
            Op::Ne => (l, l != r),
            Op::Gt => (l, l > r),
            Op::Lt => (l, l < r),
            Op::Ge => (l, l >= r),
            Op::Le => (l, l <= r),
            Op::And | Op::Or | Op::Unless => (l, true),
        }
    }
}

pub(crate) fn eval(ev: &mut Evaluator<'_>, expr: &BinaryExpr, steps: Steps) -> Result<Val, Error> {
    let op = Op::parse(&expr.op.to_string())?;
    let return_bool = expr.return_bool();
    let lhs = ev.eval(&expr.lhs, steps)?;
    let rhs = ev.eval(&expr.rhs, steps)?;
    match (lhs, rhs) {
        (Val::Scalar(l), Val::Scalar(r)) => Ok(Val::Scalar(
            l.iter()
                .zip(&r)
                .map(|(&a, &b)| {
                    let (value, keep) = op.apply(a, b);
                    if op.is_comparison() { if keep { 1.0 } else { 0.0 } } else { value }
                })
                .collect(),
        )),
        (Val::Vector(l), Val::Scalar(r)) => {
            let out = l.into_iter().zip(r).map(|(v, s)| vector_scalar(op, v, s, false, return_bool)).collect();
            Ok(Val::Vector(collect_checked(out)?))
        }
        (Val::Scalar(l), Val::Vector(r)) => {
            let out = r.into_iter().zip(l).map(|(v, s)| vector_scalar(op, v, s, true, return_bool)).collect();
            Ok(Val::Vector(collect_checked(out)?))
        }
        (Val::Vector(l), Val::Vector(r)) => {
            let matching = Matching::of(expr);
            let mut out = Vec::with_capacity(l.len());
            for (lv, rv) in l.into_iter().zip(r) {
                ev.check_deadline("binary operation")?;
                out.push(vector_vector(op, lv, rv, &matching, return_bool)?);
            }
            Ok(Val::Vector(out))
        }
        _ => Err(Error::BadData(format!("binary operator {op:?} needs scalar or instant vector operands"))),
    }
}

fn collect_checked(out: Vec<Vector>) -> Result<Vec<Vector>, Error> {
    for v in &out {
        check_unique(v)?;
    }
    Ok(out)
}

fn vector_scalar(op: Op, vector: Vector, scalar: f64, swap: bool, return_bool: bool) -> Vector {
    let mut out = Vec::with_capacity(vector.len());
    for (labels, v) in vector {
        let (l, r) = if swap { (scalar, v) } else { (v, scalar) };
        let (mut value, mut keep) = op.apply(l, r);
        // `2 < x` keeps x's value, not the scalar's.
        if op.is_comparison() && swap {
            value = r;
        }
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        if keep {
            let labels = if op.drops_name() || return_bool { drop_name(&labels) } else { labels };
            out.push((labels, value));
        }
    }
    out
}

struct Matching {
    card: Card,
    /// `on(...)` when true, `ignoring(...)` (possibly empty) when false.
    on: bool,
    names: Vec<String>,
    /// `group_left(...)`/`group_right(...)` labels copied from the "one" side.
    include: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Card {
    OneToOne,
    ManyToOne,
    OneToMany,
    ManyToMany,
}

impl Matching {
    fn of(expr: &BinaryExpr) -> Self {
        let Some(modifier) = &expr.modifier else {
            return Self { card: Card::OneToOne, on: false, names: Vec::new(), include: Vec::new() };
        };
        let (card, include) = match &modifier.card {
            VectorMatchCardinality::OneToOne => (Card::OneToOne, Vec::new()),
            VectorMatchCardinality::ManyToOne(l) => (Card::ManyToOne, l.labels.clone()),
            VectorMatchCardinality::OneToMany(l) => (Card::OneToMany, l.labels.clone()),
            VectorMatchCardinality::ManyToMany => (Card::ManyToMany, Vec::new()),
        };
        let (on, names) = match &modifier.matching {
            Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
            Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
            None => (false, Vec::new()),
        };
        Self { card, on, names, include }
    }

    /// The labels two elements must share to match.
    fn signature(&self, labels: &Labels) -> Labels {
        let pairs = labels
            .iter()
            .filter(|(n, _)| {
                if self.on {
                    self.names.iter().any(|x| x == n)
                } else {
                    *n != METRIC_NAME && !self.names.iter().any(|x| x == n)
                }
            })
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        Labels::from_trusted(pairs)
    }
}

fn vector_vector(op: Op, lhs: Vector, rhs: Vector, m: &Matching, return_bool: bool) -> Result<Vector, Error> {
    match op {
        Op::And => {
            let right: HashSet<Labels> = rhs.iter().map(|(l, _)| m.signature(l)).collect();
            return Ok(lhs.into_iter().filter(|(l, _)| right.contains(&m.signature(l))).collect());
        }
        Op::Unless => {
            let right: HashSet<Labels> = rhs.iter().map(|(l, _)| m.signature(l)).collect();
            return Ok(lhs.into_iter().filter(|(l, _)| !right.contains(&m.signature(l))).collect());
        }
        Op::Or => {
            let left: HashSet<Labels> = lhs.iter().map(|(l, _)| m.signature(l)).collect();
            let mut out = lhs;
            out.extend(rhs.into_iter().filter(|(l, _)| !left.contains(&m.signature(l))));
            return Ok(out);
        }
        _ => {}
    }
    // The "one" side goes right.
    let (lhs, rhs) = if m.card == Card::OneToMany { (rhs, lhs) } else { (lhs, rhs) };
    let mut right: HashMap<Labels, (Labels, f64)> = HashMap::with_capacity(rhs.len());
    for (labels, value) in rhs {
        let sig = m.signature(&labels);
        if let Some((dup, _)) = right.get(&sig) {
            let side = if m.card == Card::OneToMany { "left" } else { "right" };
            return Err(Error::Execution(format!(
                "found duplicate series for the match group {sig} on the {side} hand-side of the operation: [{labels}, {dup}];many-to-many matching not allowed: matching labels must be unique on one side"
            )));
        }
        right.insert(sig, (labels, value));
    }
    let mut matched: HashMap<Labels, HashSet<Labels>> = HashMap::new();
    let mut out = Vec::new();
    for (labels, value) in lhs {
        let sig = m.signature(&labels);
        let Some((r_labels, r_value)) = right.get(&sig) else { continue };
        let (vl, vr) = if m.card == Card::OneToMany { (*r_value, value) } else { (value, *r_value) };
        let (mut result, mut keep) = op.apply(vl, vr);
        if return_bool {
            result = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        if !keep {
            continue;
        }
        let mut metric = result_metric(&labels, r_labels, op, m);
        if return_bool {
            metric = drop_name(&metric);
        }
        let seen = matched.entry(sig).or_default();
        if m.card == Card::OneToOne {
            if !seen.is_empty() {
                return Err(Error::Execution(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                        .into(),
                ));
            }
            seen.insert(Labels::default());
        } else if !seen.insert(metric.clone()) {
            return Err(Error::Execution(
                "multiple matches for labels: grouping labels must ensure unique matches".into(),
            ));
        }
        out.push((metric, result));
    }
    Ok(out)
}

fn result_metric(lhs: &Labels, rhs: &Labels, op: Op, m: &Matching) -> Labels {
    let mut pairs: Vec<(String, String)> = lhs
        .iter()
        .filter(|(n, _)| {
            if op.drops_name() && *n == METRIC_NAME {
                return false;
            }
            if m.card == Card::OneToOne {
                let listed = m.names.iter().any(|x| x == n);
                return if m.on { listed } else { !listed };
            }
            true
        })
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    for name in &m.include {
        pairs.retain(|(n, _)| n != name);
        if let Some(v) = rhs.get(name) {
            pairs.push((name.clone(), v.to_string()));
        }
    }
    Labels::from_trusted(pairs)
}
