//! PromQL evaluation with Prometheus's semantics over the store seam.
//!
//! Layout:
//! - [`engine`]: [`Engine`], its options, and the evaluator that walks the expression once
//!   for all steps of a query (selectors, `offset`, `@`, subqueries, lookback, staleness);
//! - `binary`, `aggregate`, `functions`: operators, aggregations and functions, each written
//!   against Prometheus 2.42's behaviour (quirks are commented where they are matched);
//! - [`parse_selector`]: series selectors for the metadata API;
//! - [`testing`]: an in-memory [`hubmon_model::Querier`] for this crate's and callers' tests.
//!
//! Parsing is the `promql-parser` crate's; evaluation is ours. The engine reads samples only
//! through `dyn Querier`, never from a particular store, and holds no state between queries.

mod aggregate;
mod binary;
pub mod engine;
mod error;
mod functions;
mod selector;
pub mod testing;
mod value;

pub use engine::{Engine, EngineOptions};
pub use error::Error;
pub use selector::parse_selector;
pub use value::{Matrix, Value};
