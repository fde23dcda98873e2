//! The health check tables: definitions, recent results and the status timeline.
//!
//! The store keeps what the checks module (crates/checks) hands it and decides nothing: the
//! definition is opaque JSON whose secret fields the caller has already sealed, statuses are
//! plain words. Results are bounded per check (the caller says how many to keep on every
//! insert); status changes are kept until [`CheckStore::prune_status_changes`] removes the old
//! ones, since uptime over 30 days and the status page's 90-day bars are computed from them.

use async_trait::async_trait;
use hubmon_model::Timestamp;

use crate::sql::{Backend, SqlStore, on_backend};
use crate::{Error, Result};

/// Where a check definition came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckSource {
    /// The config file or the built-in defaults; replaced at every start, read-only in the API.
    Config,
    /// Created through the API.
    Api,
}

impl CheckSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckSource::Config => "config",
            CheckSource::Api => "api",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "config" => Some(CheckSource::Config),
            "api" => Some(CheckSource::Api),
            _ => None,
        }
    }
}

/// A stored check definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheck {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub source: CheckSource,
    /// The definition as JSON, secret fields sealed.
    pub definition: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewCheck {
    pub name: String,
    pub kind: String,
    pub source: CheckSource,
    pub definition: String,
    pub at: Timestamp,
}

/// One result of one check, as kept in its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckResult {
    pub id: i64,
    pub check_id: i64,
    pub at: Timestamp,
    /// The reported status, after flap damping.
    pub status: String,
    /// What this probe alone saw.
    pub observed: String,
    pub latency_us: Option<i64>,
    pub message: String,
    /// Kind-specific details as JSON.
    pub details: String,
}

#[derive(Debug, Clone)]
pub struct NewCheckResult {
    pub check_id: i64,
    pub at: Timestamp,
    pub status: String,
    pub observed: String,
    pub latency_us: Option<i64>,
    pub message: String,
    pub details: String,
}

/// A change of a check's reported status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub id: i64,
    pub check_id: i64,
    pub at: Timestamp,
    pub from_status: String,
    pub to_status: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct NewStatusChange {
    pub check_id: i64,
    pub at: Timestamp,
    pub from_status: String,
    pub to_status: String,
    pub message: String,
}

/// How the state store's own connection pool is doing (the `state_store` health check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// Connections open now.
    pub size: u32,
    /// Of those, idle.
    pub idle: u32,
    /// The most the pool will open.
    pub max: u32,
}

#[async_trait]
pub trait CheckStore: Send + Sync {
    /// The state store's connection pool, for the check of hubmon's own store.
    fn pool_usage(&self) -> PoolUsage;

    /// Fails with [`Error::Conflict`] when the name is taken.
    async fn create_check(&self, check: NewCheck) -> Result<StoredCheck>;
    /// Replaces name, kind, source and definition; `None` if there is no such check.
    async fn update_check(&self, id: i64, check: NewCheck) -> Result<Option<StoredCheck>>;
    /// Removes the check with its results and status changes; false if there was none.
    async fn delete_check(&self, id: i64) -> Result<bool>;
    async fn check(&self, id: i64) -> Result<Option<StoredCheck>>;
    async fn check_by_name(&self, name: &str) -> Result<Option<StoredCheck>>;
    /// Every check, by id.
    async fn list_checks(&self) -> Result<Vec<StoredCheck>>;

    /// Adds a result and drops the check's oldest beyond the newest `keep`.
    async fn record_check_result(&self, result: NewCheckResult, keep: u32) -> Result<i64>;
    /// The newest results first, at most `limit`.
    async fn check_results(&self, check_id: i64, limit: u32) -> Result<Vec<StoredCheckResult>>;

    async fn record_status_change(&self, change: NewStatusChange) -> Result<i64>;
    /// Several changes in one transaction (all checks marked unknown at shutdown).
    async fn record_status_changes(&self, changes: &[NewStatusChange]) -> Result<()>;
    /// Changes at or after `since`, oldest first, preceded by the last change before `since`
    /// (if any) so the status at `since` is known.
    async fn status_changes(&self, check_id: i64, since: Timestamp) -> Result<Vec<StatusChange>>;
    /// Removes status changes older than `before`, keeping each check's newest one (its
    /// current status). Returns how many went.
    async fn prune_status_changes(&self, before: Timestamp) -> Result<u64>;
}

#[derive(sqlx::FromRow)]
struct CheckRow {
    id: i64,
    name: String,
    kind: String,
    source: String,
    definition: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<CheckRow> for StoredCheck {
    type Error = Error;

    fn try_from(row: CheckRow) -> Result<Self> {
        Ok(StoredCheck {
            source: CheckSource::parse(&row.source)
                .ok_or_else(|| Error::Corrupt(format!("check {}: source {:?}", row.id, row.source)))?,
            id: row.id,
            name: row.name,
            kind: row.kind,
            definition: row.definition,
            created_at: Timestamp(row.created_at),
            updated_at: Timestamp(row.updated_at),
        })
    }
}

#[derive(sqlx::FromRow)]
struct ResultRow {
    id: i64,
    check_id: i64,
    at: i64,
    status: String,
    observed: String,
    latency_us: Option<i64>,
    message: String,
    details: String,
}

impl From<ResultRow> for StoredCheckResult {
    fn from(row: ResultRow) -> Self {
        StoredCheckResult {
            id: row.id,
            check_id: row.check_id,
            at: Timestamp(row.at),
            status: row.status,
            observed: row.observed,
            latency_us: row.latency_us,
            message: row.message,
            details: row.details,
        }
    }
}

#[derive(sqlx::FromRow)]
struct ChangeRow {
    id: i64,
    check_id: i64,
    at: i64,
    from_status: String,
    to_status: String,
    message: String,
}

impl From<ChangeRow> for StatusChange {
    fn from(row: ChangeRow) -> Self {
        StatusChange {
            id: row.id,
            check_id: row.check_id,
            at: Timestamp(row.at),
            from_status: row.from_status,
            to_status: row.to_status,
            message: row.message,
        }
    }
}

const CHECK_COLUMNS: &str = "id, name, kind, source, definition, created_at, updated_at";
const RESULT_COLUMNS: &str = "id, check_id, at, status, observed, latency_us, message, details";
const CHANGE_COLUMNS: &str = "id, check_id, at, from_status, to_status, message";

#[async_trait]
impl CheckStore for SqlStore {
    fn pool_usage(&self) -> PoolUsage {
        on_backend!(self, |pool| PoolUsage {
            size: pool.size(),
            idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
            max: pool.options().get_max_connections(),
        })
    }

    async fn create_check(&self, check: NewCheck) -> Result<StoredCheck> {
        let sql = format!(
            "INSERT INTO checks (name, kind, source, definition, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING {CHECK_COLUMNS}"
        );
        let row: CheckRow = on_backend!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(&check.name)
                .bind(&check.kind)
                .bind(check.source.as_str())
                .bind(&check.definition)
                .bind(check.at.as_millis())
                .fetch_one(pool)
                .await
        })
        .map_err(|e| Error::from_query(e, || format!("check {:?}", check.name)))?;
        row.try_into()
    }

    async fn update_check(&self, id: i64, check: NewCheck) -> Result<Option<StoredCheck>> {
        let sql = format!(
            "UPDATE checks SET name = $2, kind = $3, source = $4, definition = $5, updated_at = $6 \
             WHERE id = $1 RETURNING {CHECK_COLUMNS}"
        );
        let row: Option<CheckRow> = on_backend!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(id)
                .bind(&check.name)
                .bind(&check.kind)
                .bind(check.source.as_str())
                .bind(&check.definition)
                .bind(check.at.as_millis())
                .fetch_optional(pool)
                .await
        })
        .map_err(|e| Error::from_query(e, || format!("check {:?}", check.name)))?;
        row.map(TryInto::try_into).transpose()
    }

    async fn delete_check(&self, id: i64) -> Result<bool> {
        let done = on_backend!(self, |pool| {
            sqlx::query("DELETE FROM checks WHERE id = $1").bind(id).execute(pool).await.map(|d| d.rows_affected())
        })?;
        Ok(done > 0)
    }

    async fn check(&self, id: i64) -> Result<Option<StoredCheck>> {
        let sql = format!("SELECT {CHECK_COLUMNS} FROM checks WHERE id = $1");
        let row: Option<CheckRow> = on_backend!(self, |pool| sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn check_by_name(&self, name: &str) -> Result<Option<StoredCheck>> {
        let sql = format!("SELECT {CHECK_COLUMNS} FROM checks WHERE name = $1");
        let row: Option<CheckRow> =
            on_backend!(self, |pool| sqlx::query_as(&sql).bind(name).fetch_optional(pool).await)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn list_checks(&self) -> Result<Vec<StoredCheck>> {
        let sql = format!("SELECT {CHECK_COLUMNS} FROM checks ORDER BY id");
        let rows: Vec<CheckRow> = on_backend!(self, |pool| sqlx::query_as(&sql).fetch_all(pool).await)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn record_check_result(&self, result: NewCheckResult, keep: u32) -> Result<i64> {
        let id: i64 = on_backend!(self, |pool| {
            sqlx::query_scalar(
                "INSERT INTO check_results (check_id, at, status, observed, latency_us, message, details) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(result.check_id)
            .bind(result.at.as_millis())
            .bind(&result.status)
            .bind(&result.observed)
            .bind(result.latency_us)
            .bind(&result.message)
            .bind(&result.details)
            .fetch_one(pool)
            .await
        })?;
        // Ids grow with time, so "older than the keep-th newest id" is the excess.
        on_backend!(self, |pool| {
            sqlx::query(
                "DELETE FROM check_results WHERE check_id = $1 AND id < \
                 (SELECT MIN(id) FROM (SELECT id FROM check_results WHERE check_id = $1 \
                  ORDER BY id DESC LIMIT $2) AS newest)",
            )
            .bind(result.check_id)
            .bind(i64::from(keep.max(1)))
            .execute(pool)
            .await
            .map(|d| d.rows_affected())
        })?;
        Ok(id)
    }

    async fn check_results(&self, check_id: i64, limit: u32) -> Result<Vec<StoredCheckResult>> {
        let sql = format!("SELECT {RESULT_COLUMNS} FROM check_results WHERE check_id = $1 ORDER BY id DESC LIMIT $2");
        let rows: Vec<ResultRow> = on_backend!(self, |pool| {
            sqlx::query_as(&sql).bind(check_id).bind(i64::from(limit)).fetch_all(pool).await
        })?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn record_status_change(&self, change: NewStatusChange) -> Result<i64> {
        let id: i64 = on_backend!(self, |pool| {
            sqlx::query_scalar(
                "INSERT INTO check_status_changes (check_id, at, from_status, to_status, message) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(change.check_id)
            .bind(change.at.as_millis())
            .bind(&change.from_status)
            .bind(&change.to_status)
            .bind(&change.message)
            .fetch_one(pool)
            .await
        })?;
        Ok(id)
    }

    async fn record_status_changes(&self, changes: &[NewStatusChange]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        on_backend!(self, |pool| {
            let mut tx = pool.begin().await?;
            for change in changes {
                sqlx::query(
                    "INSERT INTO check_status_changes (check_id, at, from_status, to_status, message) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(change.check_id)
                .bind(change.at.as_millis())
                .bind(&change.from_status)
                .bind(&change.to_status)
                .bind(&change.message)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        })?;
        Ok(())
    }

    async fn status_changes(&self, check_id: i64, since: Timestamp) -> Result<Vec<StatusChange>> {
        let before = format!(
            "SELECT {CHANGE_COLUMNS} FROM check_status_changes WHERE check_id = $1 AND at < $2 \
             ORDER BY at DESC, id DESC LIMIT 1"
        );
        let after = format!(
            "SELECT {CHANGE_COLUMNS} FROM check_status_changes WHERE check_id = $1 AND at >= $2 ORDER BY at, id"
        );
        let (first, rest): (Option<ChangeRow>, Vec<ChangeRow>) = on_backend!(self, |pool| {
            let first = sqlx::query_as(&before).bind(check_id).bind(since.as_millis()).fetch_optional(pool).await?;
            let rest = sqlx::query_as(&after).bind(check_id).bind(since.as_millis()).fetch_all(pool).await?;
            Ok::<_, sqlx::Error>((first, rest))
        })?;
        Ok(first.into_iter().chain(rest).map(Into::into).collect())
    }

    async fn prune_status_changes(&self, before: Timestamp) -> Result<u64> {
        let done = on_backend!(self, |pool| {
            sqlx::query(
                "DELETE FROM check_status_changes WHERE at < $1 AND id NOT IN \
                 (SELECT MAX(id) FROM check_status_changes GROUP BY check_id)",
            )
            .bind(before.as_millis())
            .execute(pool)
            .await
            .map(|d| d.rows_affected())
        })?;
        Ok(done)
    }
}
