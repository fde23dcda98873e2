//! The alerting tables: rules created through the API (and the default rules), alert
//! instances with their lifecycle, and silences.
//!
//! Like the other domain stores this one keeps what the rules module hands it: a rule and an
//! alert's details are JSON the caller owns; the columns beside them exist to find rows.

use async_trait::async_trait;
use hubmon_model::Timestamp;

use crate::sql::{Backend, SqlStore, on_backend};
use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRule {
    pub id: i64,
    pub name: String,
    /// `default` or `api`.
    pub source: String,
    pub definition: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewRule {
    pub name: String,
    pub source: String,
    pub definition: String,
    pub at: Timestamp,
}

/// One alert instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAlert {
    pub id: i64,
    pub fingerprint: String,
    pub rule: String,
    pub state: String,
    pub body: String,
    pub active_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

/// An alert to write: `id` `None` inserts, `Some` updates that row.
#[derive(Debug, Clone)]
pub struct AlertWrite {
    pub id: Option<i64>,
    pub fingerprint: String,
    pub rule: String,
    pub state: String,
    pub body: String,
    pub active_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSilence {
    pub id: i64,
    pub matchers: String,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub created_by: String,
    pub comment: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewSilence {
    pub matchers: String,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub created_by: String,
    pub comment: String,
    pub at: Timestamp,
}

#[async_trait]
pub trait RuleStore: Send + Sync {
    async fn create_rule(&self, rule: NewRule) -> Result<StoredRule>;
    /// `None` if there is no such rule.
    async fn update_rule(&self, id: i64, rule: NewRule) -> Result<Option<StoredRule>>;
    async fn delete_rule(&self, id: i64) -> Result<bool>;
    async fn rule(&self, id: i64) -> Result<Option<StoredRule>>;
    async fn list_rules(&self) -> Result<Vec<StoredRule>>;

    /// Inserts or updates an alert; returns its id.
    async fn save_alert(&self, alert: AlertWrite) -> Result<i64>;
    /// Alerts not yet resolved, oldest first.
    async fn open_alerts(&self) -> Result<Vec<StoredAlert>>;
    /// Alerts that became active in `[since, until]`, newest first, at most `limit`.
    async fn alert_history(&self, since: Timestamp, until: Timestamp, limit: u32) -> Result<Vec<StoredAlert>>;

    async fn create_silence(&self, silence: NewSilence) -> Result<StoredSilence>;
    async fn update_silence(&self, id: i64, silence: NewSilence) -> Result<Option<StoredSilence>>;
    async fn silence(&self, id: i64) -> Result<Option<StoredSilence>>;
    /// Every silence that ends after `since`, newest first.
    async fn list_silences(&self, since: Timestamp) -> Result<Vec<StoredSilence>>;
}

#[derive(sqlx::FromRow)]
struct RuleRow {
    id: i64,
    name: String,
    source: String,
    definition: String,
    created_at: i64,
    updated_at: i64,
}

impl From<RuleRow> for StoredRule {
    fn from(r: RuleRow) -> Self {
        StoredRule {
            id: r.id,
            name: r.name,
            source: r.source,
            definition: r.definition,
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
        }
    }
}

#[derive(sqlx::FromRow)]
struct AlertRow {
    id: i64,
    fingerprint: String,
    rule: String,
    state: String,
    body: String,
    active_at: i64,
    resolved_at: Option<i64>,
    updated_at: i64,
}

impl From<AlertRow> for StoredAlert {
    fn from(r: AlertRow) -> Self {
        StoredAlert {
            id: r.id,
            fingerprint: r.fingerprint,
            rule: r.rule,
            state: r.state,
            body: r.body,
            active_at: Timestamp(r.active_at),
            resolved_at: r.resolved_at.map(Timestamp),
            updated_at: Timestamp(r.updated_at),
        }
    }
}

#[derive(sqlx::FromRow)]
struct SilenceRow {
    id: i64,
    matchers: String,
    starts_at: i64,
    ends_at: i64,
    created_by: String,
    comment: String,
    created_at: i64,
    updated_at: i64,
}

impl From<SilenceRow> for StoredSilence {
    fn from(r: SilenceRow) -> Self {
        StoredSilence {
            id: r.id,
            matchers: r.matchers,
            starts_at: Timestamp(r.starts_at),
            ends_at: Timestamp(r.ends_at),
            created_by: r.created_by,
            comment: r.comment,
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
        }
    }
}

const RULE_COLUMNS: &str = "id, name, source, definition, created_at, updated_at";
const ALERT_COLUMNS: &str = "id, fingerprint, rule, state, body, active_at, resolved_at, updated_at";
const SILENCE_COLUMNS: &str = "id, matchers, starts_at, ends_at, created_by, comment, created_at, updated_at";

#[async_trait]
impl RuleStore for SqlStore {
    async fn create_rule(&self, rule: NewRule) -> Result<StoredRule> {
        let sql = format!(
            "INSERT INTO alert_rules (name, source, definition, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) RETURNING {RULE_COLUMNS}"
        );
        let row: RuleRow = on_backend!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(&rule.name)
                .bind(&rule.source)
                .bind(&rule.definition)
                .bind(rule.at.as_millis())
                .fetch_one(pool)
                .await
        })
        .map_err(|e| Error::from_query(e, || format!("rule {:?}", rule.name)))?;
        Ok(row.into())
    }

    async fn update_rule(&self, id: i64, rule: NewRule) -> Result<Option<StoredRule>> {
        let sql = format!(
            "UPDATE alert_rules SET name = $2, source = $3, definition = $4, updated_at = $5 \
             WHERE id = $1 RETURNING {RULE_COLUMNS}"
        );
        let row: Option<RuleRow> = on_backend!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(id)
                .bind(&rule.name)
                .bind(&rule.source)
                .bind(&rule.definition)
                .bind(rule.at.as_millis())
                .fetch_optional(pool)
                .await
        })
        .map_err(|e| Error::from_query(e, || format!("rule {:?}", rule.name)))?;
        Ok(row.map(Into::into))
    }

    async fn delete_rule(&self, id: i64) -> Result<bool> {
        let done = on_backend!(self, |pool| {
            sqlx::query("DELETE FROM alert_rules WHERE id = $1").bind(id).execute(pool).await.map(|d| d.rows_affected())
        })?;
        Ok(done > 0)
    }

    async fn rule(&self, id: i64) -> Result<Option<StoredRule>> {
        let sql = format!("SELECT {RULE_COLUMNS} FROM alert_rules WHERE id = $1");
        let row: Option<RuleRow> = on_backend!(self, |pool| sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?;
        Ok(row.map(Into::into))
    }

    async fn list_rules(&self) -> Result<Vec<StoredRule>> {
        let sql = format!("SELECT {RULE_COLUMNS} FROM alert_rules ORDER BY id");
        let rows: Vec<RuleRow> = on_backend!(self, |pool| sqlx::query_as(&sql).fetch_all(pool).await)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn save_alert(&self, alert: AlertWrite) -> Result<i64> {
        let resolved_at = alert.resolved_at.map(|t| t.as_millis());
        let id: i64 = match alert.id {
            None => on_backend!(self, |pool| {
                sqlx::query_scalar(
                    "INSERT INTO alerts (fingerprint, rule, state, body, active_at, resolved_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                )
                .bind(&alert.fingerprint)
                .bind(&alert.rule)
                .bind(&alert.state)
                .bind(&alert.body)
                .bind(alert.active_at.as_millis())
                .bind(resolved_at)
                .bind(alert.at.as_millis())
                .fetch_one(pool)
                .await
            })
            .map_err(|e| Error::from_query(e, || format!("open alert {}", alert.fingerprint)))?,
            Some(id) => {
                on_backend!(self, |pool| {
                    sqlx::query(
                        "UPDATE alerts SET state = $2, body = $3, active_at = $4, resolved_at = $5, updated_at = $6 \
                         WHERE id = $1",
                    )
                    .bind(id)
                    .bind(&alert.state)
                    .bind(&alert.body)
                    .bind(alert.active_at.as_millis())
                    .bind(resolved_at)
                    .bind(alert.at.as_millis())
                    .execute(pool)
                    .await
                    .map(|_| ())
                })?;
                id
            }
        };
        Ok(id)
    }

    async fn open_alerts(&self) -> Result<Vec<StoredAlert>> {
        let sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE resolved_at IS NULL ORDER BY id");
        let rows: Vec<AlertRow> = on_backend!(self, |pool| sqlx::query_as(&sql).fetch_all(pool).await)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn alert_history(&self, since: Timestamp, until: Timestamp, limit: u32) -> Result<Vec<StoredAlert>> {
        let sql = format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE active_at >= $1 AND active_at <= $2 \
             ORDER BY active_at DESC, id DESC LIMIT $3"
        );
        let rows: Vec<AlertRow> = on_backend!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(since.as_millis())
                .bind(until.as_millis())
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
        })?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn create_silence(&self, silence: NewSilence) -> Result<StoredSilence> {
        let sql = format!(
            "INSERT INTO silences (matchers, starts_at, ends_at, created_by, comment, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {SILENCE_COLUMNS}"
        );
        let row: SilenceRow = on_backend!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(&silence.matchers)
                .bind(silence.starts_at.as_millis())
                .bind(silence.ends_at.as_millis())
                .bind(&silence.created_by)
                .bind(&silence.comment)
                .bind(silence.at.as_millis())
                .fetch_one(pool)
                .await
        })?;
        Ok(row.into())
    }

    async fn update_silence(&self, id: i64, silence: NewSilence) -> Result<Option<StoredSilence>> {
        let sql = format!(
            "UPDATE silences SET matchers = $2, starts_at = $3, ends_at = $4, comment = $5, updated_at = $6 \
             WHERE id = $1 RETURNING {SILENCE_COLUMNS}"
        );
        let row: Option<SilenceRow> = on_backend!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(id)
                .bind(&silence.matchers)
                .bind(silence.starts_at.as_millis())
                .bind(silence.ends_at.as_millis())
                .bind(&silence.comment)
                .bind(silence.at.as_millis())
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(Into::into))
    }

    async fn silence(&self, id: i64) -> Result<Option<StoredSilence>> {
        let sql = format!("SELECT {SILENCE_COLUMNS} FROM silences WHERE id = $1");
        let row: Option<SilenceRow> =
            on_backend!(self, |pool| sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?;
        Ok(row.map(Into::into))
    }

    async fn list_silences(&self, since: Timestamp) -> Result<Vec<StoredSilence>> {
        let sql = format!("SELECT {SILENCE_COLUMNS} FROM silences WHERE ends_at > $1 ORDER BY id DESC");
        let rows: Vec<SilenceRow> =
            on_backend!(self, |pool| sqlx::query_as(&sql).bind(since.as_millis()).fetch_all(pool).await)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}
