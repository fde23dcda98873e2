use thiserror::Error;

/// What went wrong in the state store.
#[derive(Debug, Error)]
pub enum Error {
    #[error("cannot open the state store at {location}: {source}")]
    Open {
        location: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot migrate the state store at {location}: {source}")]
    Migrate {
        location: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("{what} already exists")]
    Conflict { what: String },
    #[error("the state store holds a value it cannot read: {0}")]
    Corrupt(String),
    #[error("state store query failed: {0}")]
    Query(#[source] sqlx::Error),
}

impl Error {
    /// Whether trying again later may succeed (the database was unreachable or busy).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Open { .. } | Error::Query(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed)
        )
    }

    /// Maps a driver error, naming `what` when it is a uniqueness conflict.
    pub(crate) fn from_query(source: sqlx::Error, what: impl FnOnce() -> String) -> Self {
        match &source {
            sqlx::Error::Database(db) if db.is_unique_violation() => Error::Conflict { what: what() },
            _ => Error::Query(source),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(source: sqlx::Error) -> Self {
        Error::Query(source)
    }
}
