//! Query results, as the Prometheus API distinguishes them.

use hubmon_model::{Labels, Series};

/// The result of an instant query.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar at the evaluation time (ms).
    Scalar(i64, f64),
    /// An instant vector at the evaluation time. Order is the evaluator's (Prometheus does not
    /// sort instant vectors either, except through `sort`/`sort_desc`/`topk`/`bottomk`).
    Vector(Vec<(Labels, f64)>),
    /// A range vector: the raw samples of each series in the selected window.
    Matrix(Vec<Series>),
    /// A string literal, at the evaluation time (ms).
    String(i64, String),
}

impl Value {
    /// The Prometheus API's `resultType`.
    pub fn result_type(&self) -> &'static str {
        match self {
            Value::Scalar(..) => "scalar",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
            Value::String(..) => "string",
        }
    }
}

/// The result of a range query: one series per label set, sorted by labels, each with one
/// sample per step at which it had a value.
pub type Matrix = Vec<Series>;
