//! The notification tables: channels, the outbox, delivery attempts and the in-app inbox.
//!
//! The outbox is the contract between producers and the dispatcher (crates/notify): a row is
//! written before any attempt, a dispatcher *claims* due rows with a lease (on PostgreSQL with
//! `FOR UPDATE SKIP LOCKED`, so replicas never claim the same row), and every attempt is recorded
//! together with the row's next state in one transaction. A lease that runs out (the process
//! died mid-attempt) makes the row claimable again. The store keeps rows; the notifier decides
//! what is due, how long to back off and when a row is dead.
//!
//! Channel configs are stored as the caller gives them: the caller seals the secret fields.

use async_trait::async_trait;
use hubmon_model::Timestamp;
use serde::Serialize;

use crate::sql::{Backend, SqlStore, on_backend};
use crate::{Error, Result};

/// A configured notification channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub id: i64,
    pub name: String,
    pub kind: String,
    /// Kind-specific settings as JSON, secret fields sealed.
    pub config: String,
    pub enabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewChannel {
    pub name: String,
    pub kind: String,
    pub config: String,
    pub enabled: bool,
    pub at: Timestamp,
}

/// Where a notification is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (`next_attempt_at`).
    Pending,
    /// Claimed by a dispatcher, an attempt under way.
    Sending,
    Delivered,
    /// Dead letter: every attempt failed, or the failure was permanent.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => DeliveryStatus::Pending,
            "sending" => DeliveryStatus::Sending,
            "delivered" => DeliveryStatus::Delivered,
            "failed" => DeliveryStatus::Failed,
            _ => return None,
        })
    }
}

/// One outbox row: one message owed to one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: i64,
    pub channel_id: i64,
    pub dedup_key: String,
    /// What produced it: `alert`, `test`, …
    pub kind: String,
    /// A one-line description for history lists.
    pub title: String,
    pub severity: String,
    /// The message as JSON (the notifier's `AlertMessage`).
    pub message: String,
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: i64,
    pub max_attempts: i64,
    pub next_attempt_at: Timestamp,
    pub lease_owner: Option<String>,
    pub lease_until: Option<Timestamp>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct NewNotification {
    pub channel_id: i64,
    pub dedup_key: String,
    pub kind: String,
    pub title: String,
    pub severity: String,
    pub message: String,
    pub max_attempts: i64,
    pub at: Timestamp,
}

/// What a dispatcher asks for when it claims work.
#[derive(Debug, Clone)]
pub struct Claim {
    pub now: Timestamp,
    /// Who claims (instance id), recorded on the row and checked when the attempt is recorded.
    pub owner: String,
    pub lease_until: Timestamp,
    pub limit: i64,
    /// Claim only this row (a test send delivered at once), if it is due.
    pub only_id: Option<i64>,
}

/// How an attempt ended, and so what the row becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AttemptOutcome {
    Delivered,
    /// Failed; another attempt is scheduled.
    Retry,
    /// Failed for good (permanent error or the last attempt).
    Failed,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::Retry => "retry",
            AttemptOutcome::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "delivered" => AttemptOutcome::Delivered,
            "retry" => AttemptOutcome::Retry,
            "failed" => AttemptOutcome::Failed,
            _ => return None,
        })
    }
}

/// One recorded delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub id: i64,
    pub notification_id: i64,
    /// 1 for the first attempt.
    pub attempt: i64,
    pub started_at: Timestamp,
    pub duration_ms: i64,
    pub outcome: AttemptOutcome,
    /// HTTP status or SMTP reply code, when the peer answered.
    pub status_code: Option<i64>,
    /// The peer's answer (excerpt) or the error.
    pub detail: String,
    pub worker: String,
}

#[derive(Debug, Clone)]
pub struct NewAttempt {
    pub notification_id: i64,
    pub owner: String,
    pub started_at: Timestamp,
    pub duration_ms: i64,
    pub outcome: AttemptOutcome,
    pub status_code: Option<i64>,
    pub detail: String,
    /// With [`AttemptOutcome::Retry`]: when to try again.
    pub next_attempt_at: Option<Timestamp>,
    pub at: Timestamp,
}

/// Filters for the notification history; newest first.
#[derive(Debug, Clone, Default)]
pub struct NotificationQuery {
    pub channel_id: Option<i64>,
    pub status: Option<DeliveryStatus>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Paging: only rows with a smaller id.
    pub before_id: Option<i64>,
    pub limit: u32,
}

/// An entry of a user's in-app inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxMessage {
    pub id: i64,
    pub user_id: i64,
    pub notification_id: Option<i64>,
    pub severity: String,
    pub title: String,
    pub body: String,
    pub link: Option<String>,
    pub created_at: Timestamp,
    pub read_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct NewInboxMessage {
    pub user_id: i64,
    pub notification_id: Option<i64>,
    pub severity: String,
    pub title: String,
    pub body: String,
    pub link: Option<String>,
    pub at: Timestamp,
}

/// What the notifier may ask of the state store.
#[async_trait]
pub trait NotifyStore: Send + Sync {
    async fn create_channel(&self, channel: NewChannel) -> Result<Channel>;
    async fn channel(&self, id: i64) -> Result<Option<Channel>>;
    async fn list_channels(&self) -> Result<Vec<Channel>>;
    /// Replaces name, config and enabled; `None` if there is no such channel.
    async fn update_channel(&self, id: i64, channel: NewChannel) -> Result<Option<Channel>>;
    /// Removes the channel and its notification history; false if there was none.
    async fn delete_channel(&self, id: i64) -> Result<bool>;

    /// Writes an outbox row unless the channel already has one with this dedup key; returns
    /// the row and whether it is new.
    async fn enqueue_notification(&self, notification: NewNotification) -> Result<(Notification, bool)>;
    /// Leases due rows (pending and due, or sending with an expired lease) of enabled channels.
    async fn claim_notifications(&self, claim: &Claim) -> Result<Vec<Notification>>;
    /// Hands a claimed row back unattempted, due again at `next_attempt_at` (a rate limit).
    async fn release_notification(&self, id: i64, owner: &str, next_attempt_at: Timestamp) -> Result<bool>;
    /// Records the attempt and moves the row on, in one transaction. False when the row was no
    /// longer leased by `attempt.owner` (the attempt is recorded all the same).
    async fn record_attempt(&self, attempt: NewAttempt) -> Result<bool>;
    async fn notification(&self, id: i64) -> Result<Option<Notification>>;
    async fn list_notifications(&self, query: &NotificationQuery) -> Result<Vec<Notification>>;
    /// Oldest first.
    async fn list_attempts(&self, notification_id: i64) -> Result<Vec<Attempt>>;
    /// Makes a failed (dead-letter) row pending again with `extra_attempts` more attempts.
    async fn retry_notification(&self, id: i64, extra_attempts: i64, at: Timestamp) -> Result<Option<Notification>>;
    /// Row counts by status, for metrics.
    async fn count_notifications(&self) -> Result<Vec<(DeliveryStatus, i64)>>;

    /// Adds inbox entries; an entry for a (user, notification) pair already there is skipped.
    async fn add_inbox_messages(&self, messages: &[NewInboxMessage]) -> Result<u64>;
    /// Newest first; `before_id` pages.
    async fn list_inbox(
        &self,
        user_id: i64,
        unread_only: bool,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<InboxMessage>>;
    async fn unread_inbox_count(&self, user_id: i64) -> Result<i64>;
    /// Marks one entry (or, with `None`, all) of the user's inbox read; returns how many changed.
    async fn mark_inbox_read(&self, user_id: i64, id: Option<i64>, at: Timestamp) -> Result<u64>;
}

#[derive(sqlx::FromRow)]
struct ChannelRow {
    id: i64,
    name: String,
    kind: String,
    config: String,
    enabled: bool,
    created_at: i64,
    updated_at: i64,
}

impl From<ChannelRow> for Channel {
    fn from(row: ChannelRow) -> Self {
        Channel {
            id: row.id,
            name: row.name,
            kind: row.kind,
            config: row.config,
            enabled: row.enabled,
            created_at: Timestamp(row.created_at),
            updated_at: Timestamp(row.updated_at),
        }
    }
}

#[derive(sqlx::FromRow)]
struct NotificationRow {
    id: i64,
    channel_id: i64,
    dedup_key: String,
    kind: String,
    title: String,
    severity: String,
    message: String,
    status: String,
    attempts: i64,
    max_attempts: i64,
    next_attempt_at: i64,
    lease_owner: Option<String>,
    lease_until: Option<i64>,
    last_error: Option<String>,
    created_at: i64,
    updated_at: i64,
    delivered_at: Option<i64>,
}

impl TryFrom<NotificationRow> for Notification {
    type Error = Error;

    fn try_from(row: NotificationRow) -> Result<Self> {
        Ok(Notification {
            status: DeliveryStatus::parse(&row.status)
                .ok_or_else(|| Error::Corrupt(format!("notification {}: status {:?}", row.id, row.status)))?,
            id: row.id,
            channel_id: row.channel_id,
            dedup_key: row.dedup_key,
            kind: row.kind,
            title: row.title,
            severity: row.severity,
            message: row.message,
            attempts: row.attempts,
            max_attempts: row.max_attempts,
            next_attempt_at: Timestamp(row.next_attempt_at),
            lease_owner: row.lease_owner,
            lease_until: row.lease_until.map(Timestamp),
            last_error: row.last_error,
            created_at: Timestamp(row.created_at),
            updated_at: Timestamp(row.updated_at),
            delivered_at: row.delivered_at.map(Timestamp),
        })
    }
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    id: i64,
    notification_id: i64,
    attempt: i64,
    started_at: i64,
    duration_ms: i64,
    outcome: String,
    status_code: Option<i64>,
    detail: String,
    worker: String,
}

impl TryFrom<AttemptRow> for Attempt {
    type Error = Error;

    fn try_from(row: AttemptRow) -> Result<Self> {
        Ok(Attempt {
            outcome: AttemptOutcome::parse(&row.outcome)
                .ok_or_else(|| Error::Corrupt(format!("attempt {}: outcome {:?}", row.id, row.outcome)))?,
            id: row.id,
            notification_id: row.notification_id,
            attempt: row.attempt,
            started_at: Timestamp(row.started_at),
            duration_ms: row.duration_ms,
            status_code: row.status_code,
            detail: row.detail,
            worker: row.worker,
        })
    }
}

#[derive(sqlx::FromRow)]
struct InboxRow {
    id: i64,
    user_id: i64,
    notification_id: Option<i64>,
    severity: String,
    title: String,
    body: String,
    link: Option<String>,
    created_at: i64,
    read_at: Option<i64>,
}

impl From<InboxRow> for InboxMessage {
    fn from(row: InboxRow) -> Self {
        InboxMessage {
            id: row.id,
            user_id: row.user_id,
            notification_id: row.notification_id,
            severity: row.severity,
            title: row.title,
            body: row.body,
            link: row.link,
            created_at: Timestamp(row.created_at),
            read_at: row.read_at.map(Timestamp),
        }
    }
}

const CHANNEL_COLUMNS: &str = "id, name, kind, config, enabled, created_at, updated_at";
const NOTIFICATION_COLUMNS: &str = "id, channel_id, dedup_key, kind, title, severity, message, status, attempts, \
     max_attempts, next_attempt_at, lease_owner, lease_until, last_error, created_at, updated_at, delivered_at";
const ATTEMPT_COLUMNS: &str =
    "id, notification_id, attempt, started_at, duration_ms, outcome, status_code, detail, worker";
const INBOX_COLUMNS: &str = "id, user_id, notification_id, severity, title, body, link, created_at, read_at";

#[async_trait]
impl NotifyStore for SqlStore {
    async fn create_channel(&self, channel: NewChannel) -> Result<Channel> {
        let sql = format!(
            "INSERT INTO notify_channels (name, kind, config, enabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING {CHANNEL_COLUMNS}"
        );
        let row: ChannelRow = on_backend!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(&channel.name)
                .bind(&channel.kind)
                .bind(&channel.config)
                .bind(channel.enabled)
                .bind(channel.at.as_millis())
                .fetch_one(pool)
                .await
        })
        .map_err(|e| Error::from_query(e, || format!("channel {:?}", channel.name)))?;
        Ok(row.into())
    }

    async fn channel(&self, id: i64) -> Result<Option<Channel>> {
        let sql = format!("SELECT {CHANNEL_COLUMNS} FROM notify_channels WHERE id = $1");
        let row: Option<ChannelRow> =
            on_backend!(self, |pool| sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?;
        Ok(row.map(Channel::from))
    }

    async fn list_channels(&self) -> Result<Vec<Channel>> {
        let sql = format!("SELECT {CHANNEL_COLUMNS} FROM notify_channels ORDER BY id");
        let rows: Vec<ChannelRow> = on_backend!(self, |pool| sqlx::query_as(&sql).fetch_all(pool).await)?;
        Ok(rows.into_iter().map(Channel::from).collect())
    }

    async fn update_channel(&self, id: i64, channel: NewChannel) -> Result<Option<Channel>> {
        let sql = format!(
            "UPDATE notify_channels SET name = $2, kind = $3, config = $4, enabled = $5, updated_at = $6 \
             WHERE id = $1 RETURNING {CHANNEL_COLUMNS}"
        );
        let row: Option<ChannelRow> = on_backend!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(id)
                .bind(&channel.name)
                .bind(&channel.kind)
                .bind(&channel.config)
                .bind(channel.enabled)
                .bind(channel.at.as_millis())
                .fetch_optional(pool)
                .await
        })
        .map_err(|e| Error::from_query(e, || format!("channel {:?}", channel.name)))?;
        Ok(row.map(Channel::from))
    }

    async fn delete_channel(&self, id: i64) -> Result<bool> {
        let done = on_backend!(self, |pool| {
            sqlx::query("DELETE FROM notify_channels WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(done > 0)
    }

    async fn enqueue_notification(&self, n: NewNotification) -> Result<(Notification, bool)> {
        let insert = format!(
            "INSERT INTO notifications (channel_id, dedup_key, kind, title, severity, message, status, attempts, \
                 max_attempts, next_attempt_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $8, $8, $8) \
             ON CONFLICT (channel_id, dedup_key) DO NOTHING RETURNING {NOTIFICATION_COLUMNS}"
        );
        let select =
            format!("SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE channel_id = $1 AND dedup_key = $2");
        let (row, new): (NotificationRow, bool) = on_backend!(self, |pool| {
            let inserted: Option<NotificationRow> = sqlx::query_as(&insert)
                .bind(n.channel_id)
                .bind(&n.dedup_key)
                .bind(&n.kind)
                .bind(&n.title)
                .bind(&n.severity)
                .bind(&n.message)
                .bind(n.max_attempts)
                .bind(n.at.as_millis())
                .fetch_optional(pool)
                .await?;
            match inserted {
                Some(row) => Ok::<_, sqlx::Error>((row, true)),
                None => {
                    let existing =
                        sqlx::query_as(&select).bind(n.channel_id).bind(&n.dedup_key).fetch_one(pool).await?;
                    Ok((existing, false))
                }
            }
        })?;
        Ok((row.try_into()?, new))
    }

    async fn claim_notifications(&self, claim: &Claim) -> Result<Vec<Notification>> {
        // The inner SELECT picks due rows; on PostgreSQL it locks them and skips rows another
        // replica is claiming right now. SQLite has one writer at a time, so the UPDATE is
        // atomic on its own.
        let lock = match self.backend {
            Backend::Sqlite(_) => "",
            Backend::Postgres(_) => "FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "UPDATE notifications SET status = 'sending', lease_owner = $1, lease_until = $2, updated_at = $3 \
             WHERE id IN ( \
                 SELECT id FROM notifications \
                 WHERE ((status = 'pending' AND next_attempt_at <= $3) OR (status = 'sending' AND lease_until <= $3)) \
                   AND ($5 IS NULL OR id = $5) \
                   AND channel_id IN (SELECT id FROM notify_channels WHERE enabled) \
                 ORDER BY next_attempt_at, id LIMIT $4 {lock}) \
             RETURNING {NOTIFICATION_COLUMNS}"
        );
        let rows: Vec<NotificationRow> = on_backend!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(&claim.owner)
                .bind(claim.lease_until.as_millis())
                .bind(claim.now.as_millis())
                .bind(claim.limit)
                .bind(claim.only_id)
                .fetch_all(pool)
                .await
        })?;
        let mut claimed: Vec<Notification> = rows.into_iter().map(TryInto::try_into).collect::<Result<_>>()?;
        claimed.sort_by_key(|n| (n.next_attempt_at, n.id));
        Ok(claimed)
    }

    async fn release_notification(&self, id: i64, owner: &str, next_attempt_at: Timestamp) -> Result<bool> {
        let done = on_backend!(self, |pool| {
            sqlx::query(
                "UPDATE notifications SET status = 'pending', next_attempt_at = $3, lease_owner = NULL, \
                     lease_until = NULL \
                 WHERE id = $1 AND status = 'sending' AND lease_owner = $2",
            )
            .bind(id)
            .bind(owner)
            .bind(next_attempt_at.as_millis())
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(done > 0)
    }

    async fn record_attempt(&self, a: NewAttempt) -> Result<bool> {
        let status = match a.outcome {
            AttemptOutcome::Delivered => DeliveryStatus::Delivered,
            AttemptOutcome::Retry => DeliveryStatus::Pending,
            AttemptOutcome::Failed => DeliveryStatus::Failed,
        };
        let last_error = (a.outcome != AttemptOutcome::Delivered).then_some(a.detail.as_str());
        let delivered_at = (a.outcome == AttemptOutcome::Delivered).then_some(a.at.as_millis());
        let updated = on_backend!(self, |pool| {
            let mut tx = pool.begin().await?;
            let attempts: Option<i64> = sqlx::query_scalar(
                "UPDATE notifications SET status = $3, attempts = attempts + 1, \
                     next_attempt_at = COALESCE($4, next_attempt_at), last_error = $5, \
                     delivered_at = COALESCE($6, delivered_at), lease_owner = NULL, lease_until = NULL, \
                     updated_at = $7 \
                 WHERE id = $1 AND status = 'sending' AND lease_owner = $2 RETURNING attempts",
            )
            .bind(a.notification_id)
            .bind(&a.owner)
            .bind(status.as_str())
            .bind(a.next_attempt_at.map(Timestamp::as_millis))
            .bind(last_error)
            .bind(delivered_at)
            .bind(a.at.as_millis())
            .fetch_optional(&mut *tx)
            .await?;
            let number = match attempts {
                Some(n) => n,
                None => {
                    // Our lease was lost (it expired and another worker took the row): still
                    // keep the attempt, numbered after the ones already counted.
                    let counted: Option<i64> = sqlx::query_scalar("SELECT attempts FROM notifications WHERE id = $1")
                        .bind(a.notification_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    counted.unwrap_or(0) + 1
                }
            };
            sqlx::query(
                "INSERT INTO notification_attempts (notification_id, attempt, started_at, duration_ms, outcome, \
                     status_code, detail, worker) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE EXISTS (SELECT 1 FROM notifications WHERE id = $1)",
            )
            .bind(a.notification_id)
            .bind(number)
            .bind(a.started_at.as_millis())
            .bind(a.duration_ms)
            .bind(a.outcome.as_str())
            .bind(a.status_code)
            .bind(&a.detail)
            .bind(&a.owner)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(attempts.is_some())
        })?;
        Ok(updated)
    }

    async fn notification(&self, id: i64) -> Result<Option<Notification>> {
        let sql = format!("SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE id = $1");
        let row: Option<NotificationRow> =
            on_backend!(self, |pool| sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn list_notifications(&self, q: &NotificationQuery) -> Result<Vec<Notification>> {
        let sql = format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE \
                 ($1 IS NULL OR channel_id = $1) AND \
                 ($2 IS NULL OR status = $2) AND \
                 ($3 IS NULL OR created_at >= $3) AND \
                 ($4 IS NULL OR created_at <= $4) AND \
                 ($5 IS NULL OR id < $5) \
             ORDER BY id DESC LIMIT $6"
        );
        let rows: Vec<NotificationRow> = on_backend!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(q.channel_id)
                .bind(q.status.map(DeliveryStatus::as_str))
                .bind(q.since.map(Timestamp::as_millis))
                .bind(q.until.map(Timestamp::as_millis))
                .bind(q.before_id)
                .bind(i64::from(q.limit))
                .fetch_all(pool)
                .await
        })?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn list_attempts(&self, notification_id: i64) -> Result<Vec<Attempt>> {
        let sql = format!("SELECT {ATTEMPT_COLUMNS} FROM notification_attempts WHERE notification_id = $1 ORDER BY id");
        let rows: Vec<AttemptRow> =
            on_backend!(self, |pool| sqlx::query_as(&sql).bind(notification_id).fetch_all(pool).await)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn retry_notification(&self, id: i64, extra_attempts: i64, at: Timestamp) -> Result<Option<Notification>> {
        let sql = format!(
            "UPDATE notifications SET status = 'pending', next_attempt_at = $3, max_attempts = attempts + $2, \
                 lease_owner = NULL, lease_until = NULL, updated_at = $3 \
             WHERE id = $1 AND status = 'failed' RETURNING {NOTIFICATION_COLUMNS}"
        );
        let row: Option<NotificationRow> = on_backend!(self, |pool| {
            sqlx::query_as(&sql).bind(id).bind(extra_attempts).bind(at.as_millis()).fetch_optional(pool).await
        })?;
        row.map(TryInto::try_into).transpose()
    }

    async fn count_notifications(&self) -> Result<Vec<(DeliveryStatus, i64)>> {
        let rows: Vec<(String, i64)> = on_backend!(self, |pool| {
            sqlx::query_as("SELECT status, COUNT(*) FROM notifications GROUP BY status").fetch_all(pool).await
        })?;
        Ok(rows.into_iter().filter_map(|(status, n)| DeliveryStatus::parse(&status).map(|s| (s, n))).collect())
    }

    async fn add_inbox_messages(&self, messages: &[NewInboxMessage]) -> Result<u64> {
        let sql = "INSERT INTO inbox_messages (user_id, notification_id, severity, title, body, link, created_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (user_id, notification_id) DO NOTHING";
        let added = on_backend!(self, |pool| {
            let mut tx = pool.begin().await?;
            let mut added = 0;
            for m in messages {
                added += sqlx::query(sql)
                    .bind(m.user_id)
                    .bind(m.notification_id)
                    .bind(&m.severity)
                    .bind(&m.title)
                    .bind(&m.body)
                    .bind(m.link.as_deref())
                    .bind(m.at.as_millis())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(added)
        })?;
        Ok(added)
    }

    async fn list_inbox(
        &self,
        user_id: i64,
        unread_only: bool,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<InboxMessage>> {
        let sql = format!(
            "SELECT {INBOX_COLUMNS} FROM inbox_messages WHERE user_id = $1 \
                 AND (NOT $2 OR read_at IS NULL) AND ($3 IS NULL OR id < $3) \
             ORDER BY id DESC LIMIT $4"
        );
        let rows: Vec<InboxRow> = on_backend!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(user_id)
                .bind(unread_only)
                .bind(before_id)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
        })?;
        Ok(rows.into_iter().map(InboxMessage::from).collect())
    }

    async fn unread_inbox_count(&self, user_id: i64) -> Result<i64> {
        let count: i64 = on_backend!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM inbox_messages WHERE user_id = $1 AND read_at IS NULL")
                .bind(user_id)
                .fetch_one(pool)
                .await
        })?;
        Ok(count)
    }

    async fn mark_inbox_read(&self, user_id: i64, id: Option<i64>, at: Timestamp) -> Result<u64> {
        let done = on_backend!(self, |pool| {
            sqlx::query(
                "UPDATE inbox_messages SET read_at = $3 \
                 WHERE user_id = $1 AND ($2 IS NULL OR id = $2) AND read_at IS NULL",
            )
            .bind(user_id)
            .bind(id)
            .bind(at.as_millis())
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(done)
    }
}
