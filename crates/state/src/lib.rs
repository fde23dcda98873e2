//! The state store: everything hubmon must remember that is not a metric sample or a log line
//! (DESIGN §3). Today that is users, API tokens, browser sessions and the audit log; rules,
//! alert state, silences, the notification outbox, checks and channels join as their modules
//! arrive, each in its own migration.
//!
//! Two backends sit behind the [`StateStore`] trait: SQLite (the default, one file in the data
//! dir, WAL mode) and PostgreSQL (for several replicas). Both run the same SQL text where the
//! dialects agree (`$n` placeholders, `RETURNING`, `ON CONFLICT`), and every method is compiled
//! once per backend, so a query that one dialect rejects fails the shared test suite.
//! Each backend has its own versioned migrations under `migrations/{sqlite,postgres}`.
//!
//! The store stores; it does not decide. Password and token hashing, role checks and "the last
//! admin cannot be removed" live with the callers. The audit log is append-only: there is no
//! method that changes or removes an entry, and a trigger refuses it in SQL too.

mod checks;
mod error;
mod notify;
mod records;
mod rules;
mod secrets;
mod sql;

use async_trait::async_trait;
use hubmon_model::Timestamp;

pub use checks::{
    CheckSource, CheckStore, NewCheck, NewCheckResult, NewStatusChange, PoolUsage, StatusChange, StoredCheck,
    StoredCheckResult,
};
pub use error::Error;
pub use notify::{
    Attempt, AttemptOutcome, Channel, Claim, DeliveryStatus, InboxMessage, NewAttempt, NewChannel, NewInboxMessage,
    NewNotification, Notification, NotificationQuery, NotifyStore,
};
pub use records::*;
pub use rules::{AlertWrite, NewRule, NewSilence, RuleStore, StoredAlert, StoredRule, StoredSilence};
pub use secrets::{SecretError, Secrets, mask as mask_secret};
pub use sql::{SqlStore, StoreLocation};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the rest of hubmon may ask of the state store.
#[async_trait]
pub trait StateStore: CheckStore + NotifyStore + RuleStore + Send + Sync + 'static {
    /// Which backend this is, for logs and the readiness report.
    fn backend(&self) -> &'static str;

    /// Succeeds when the store answers a trivial query.
    async fn ping(&self) -> Result<()>;

    /// Closes connections; pending writes are already committed.
    async fn close(&self);

    async fn create_user(&self, user: NewUser) -> Result<User>;
    async fn user(&self, id: i64) -> Result<Option<User>>;
    async fn user_by_name(&self, username: &str) -> Result<Option<User>>;
    async fn list_users(&self) -> Result<Vec<User>>;
    async fn count_users(&self) -> Result<i64>;
    /// Applies the fields that are set; returns the updated user, or `None` if there is none.
    async fn update_user(&self, id: i64, update: UserUpdate) -> Result<Option<User>>;
    /// Removes the user and its sessions; false if there was none.
    async fn delete_user(&self, id: i64) -> Result<bool>;
    async fn record_login(&self, id: i64, at: Timestamp) -> Result<()>;

    async fn create_token(&self, token: NewToken) -> Result<Token>;
    async fn token_by_prefix(&self, prefix: &str) -> Result<Option<Token>>;
    async fn list_tokens(&self) -> Result<Vec<Token>>;
    /// Marks the token revoked; false if there was no such token or it was already revoked.
    async fn revoke_token(&self, id: i64, at: Timestamp) -> Result<bool>;
    async fn touch_token(&self, id: i64, at: Timestamp) -> Result<()>;

    async fn create_session(&self, session: Session) -> Result<()>;
    async fn session(&self, id_hash: &str) -> Result<Option<Session>>;
    async fn delete_session(&self, id_hash: &str) -> Result<()>;
    /// Removes sessions that expired before `now`; returns how many.
    async fn delete_expired_sessions(&self, now: Timestamp) -> Result<u64>;
    async fn delete_user_sessions(&self, user_id: i64) -> Result<()>;

    async fn append_audit(&self, entry: NewAuditEntry) -> Result<i64>;
    /// Newest first, filtered and paged by [`AuditQuery`].
    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>>;
}
