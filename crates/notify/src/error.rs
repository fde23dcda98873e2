use thiserror::Error;

/// What went wrong in the notifier (delivery failures are [`crate::channel::SendError`]).
#[derive(Debug, Error)]
pub enum Error {
    /// A channel's settings do not hold; `field` names the offending field (`config.webhook_url`).
    #[error("{field}: {message}")]
    InvalidSettings { field: String, message: String },
    #[error("no channel with id {0}")]
    NoSuchChannel(i64),
    #[error("no notification with id {0}")]
    NoSuchNotification(i64),
    #[error("notification {0} is still pending or being sent; only failed or delivered ones can be retried")]
    NotRetryable(i64),
    #[error("channel {0:?} is disabled")]
    ChannelDisabled(String),
    #[error("a stored channel cannot be read: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Secret(#[from] hubmon_state::SecretError),
    #[error(transparent)]
    Store(#[from] hubmon_state::Error),
}

impl Error {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidSettings { field: field.into(), message: message.into() }
    }
}
