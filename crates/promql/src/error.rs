//! The one error type of the PromQL engine, with the `errorType` Prometheus's HTTP API reports
//! for each kind of failure.

use hubmon_model::StoreError;

/// Why a query could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The query text does not parse; the parser's message, unchanged.
    #[error("{0}")]
    Parse(String),
    /// The query parses but its arguments or request parameters are unacceptable
    /// (invalid regex in `label_replace`, step of zero, `end` before `start`, …).
    #[error("{0}")]
    BadData(String),
    /// Evaluation failed on the data (duplicate series in a match group, …).
    #[error("{0}")]
    Execution(String),
    /// The query ran past [`crate::EngineOptions::timeout`].
    #[error("query timed out in {stage}")]
    Timeout { stage: &'static str },
    /// The query would hold more samples than [`crate::EngineOptions::max_samples`].
    #[error("query processing would load too many samples into memory in query execution (limit {limit})")]
    TooManySamples { limit: usize },
    /// A range query asks for more points per series than
    /// [`crate::EngineOptions::max_points_per_series`].
    #[error(
        "exceeded maximum resolution of {limit} points per timeseries. Try decreasing the query resolution (?step=XX)"
    )]
    TooManyPoints { limit: usize },
    /// The store failed to answer a select.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Error {
    /// Prometheus's API `errorType` for this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::Parse(_) | Error::BadData(_) | Error::TooManyPoints { .. } => "bad_data",
            // Prometheus reports ErrTooManySamples as an execution error (HTTP 422).
            Error::Execution(_) | Error::TooManySamples { .. } => "execution",
            Error::Timeout { .. } => "timeout",
            Error::Store(StoreError::Limit(_)) => "execution",
            Error::Store(_) => "internal",
        }
    }

    /// Whether the query failed on a configured resource limit rather than on its text or data.
    pub fn is_limit(&self) -> bool {
        matches!(self, Error::TooManySamples { .. } | Error::TooManyPoints { .. } | Error::Store(StoreError::Limit(_)))
    }
}
