//! Turning the parser's label matchers into the store's [`Matcher`]s.

use hubmon_model::{METRIC_NAME, MatchOp, Matcher};
use promql_parser::label::MatchOp as ParsedOp;
use promql_parser::parser::{Expr, VectorSelector};

use crate::Error;

/// Parses a series selector (`up{job="api"}`, as in `/api/v1/series?match[]=`) into matchers.
pub fn parse_selector(text: &str) -> Result<Vec<Matcher>, Error> {
    match promql_parser::parser::parse(text).map_err(Error::Parse)? {
        Expr::VectorSelector(vs) if vs.offset.is_none() && vs.at.is_none() => matchers_of(&vs),
        _ => Err(Error::BadData(format!(
            "invalid series selector {text:?}: expected a vector selector such as up{{job=\"api\"}}"
        ))),
    }
}

/// The store matchers for a vector selector, the metric name included.
pub(crate) fn matchers_of(vs: &VectorSelector) -> Result<Vec<Matcher>, Error> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(Error::BadData("selectors with `or` between matchers are not supported".into()));
    }
    let mut out = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(name) = &vs.name {
        out.push(Matcher::equal(METRIC_NAME, name.clone()));
    }
    for m in &vs.matchers.matchers {
        let op = match m.op {
            ParsedOp::Equal => MatchOp::Equal,
            ParsedOp::NotEqual => MatchOp::NotEqual,
            ParsedOp::Re(_) => MatchOp::Regex,
            ParsedOp::NotRe(_) => MatchOp::NotRegex,
        };
        out.push(Matcher::new(m.name.clone(), op, m.value.clone()).map_err(|e| Error::BadData(e.to_string()))?);
    }
    Ok(out)
}
