use thiserror::Error;

/// What went wrong managing or running checks.
#[derive(Debug, Error)]
pub enum Error {
    #[error("no check with id {0}")]
    NotFound(i64),
    /// A definition that cannot be accepted; the message names the check and the field.
    #[error("{0}")]
    Invalid(String),
    #[error("check {name:?} is defined in the config file (or is a built-in default); change it there")]
    ReadOnly { name: String },
    #[error("a check named {0:?} already exists")]
    Conflict(String),
    #[error("a sealed secret of check {name:?} cannot be opened: {source}")]
    Secret {
        name: String,
        #[source]
        source: hubmon_state::SecretError,
    },
    #[error(transparent)]
    Store(hubmon_state::Error),
}

impl Error {
    /// The HTTP status an API answers this error with.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::NotFound(_) => 404,
            Error::Invalid(_) => 422,
            Error::ReadOnly { .. } | Error::Conflict(_) => 409,
            Error::Store(e) if e.is_retryable() => 503,
            Error::Secret { .. } | Error::Store(_) => 500,
        }
    }
}

impl From<hubmon_state::Error> for Error {
    fn from(error: hubmon_state::Error) -> Self {
        match error {
            hubmon_state::Error::Conflict { what } => {
                Error::Conflict(what.trim_start_matches("check ").trim_matches('"').to_string())
            }
            other => Error::Store(other),
        }
    }
}
