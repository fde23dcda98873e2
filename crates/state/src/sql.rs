//! [`SqlStore`]: the [`StateStore`] on SQLite or PostgreSQL.
//!
//! Each method holds one SQL text that both dialects accept and runs it through
//! [`on_backend!`], which compiles the body once per driver. Where the dialects differ the
//! method matches on the backend itself.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use hubmon_model::{Role, Timestamp};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::records::*;
use crate::{Error, Result, StateStore};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Where the state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite database file, created when missing.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (`postgres://user:pass@host/db`).
    Postgres(String),
}

impl StoreLocation {
    /// The location for logs and errors, with any password masked.
    pub fn display(&self) -> String {
        match self {
            StoreLocation::Sqlite(path) => format!("sqlite:{}", path.display()),
            StoreLocation::Postgres(url) => mask_password(url),
        }
    }
}

/// Replaces the password in a `scheme://user:password@host` URL with `***`.
fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The state store on a SQL database.
pub struct SqlStore {
    pub(crate) backend: Backend,
}

/// Runs `$body` with `$pool` bound to whichever pool this store has.
macro_rules! on_backend {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.backend {
            Backend::Sqlite($pool) => $body,
            Backend::Postgres($pool) => $body,
        }
    };
}
/// Domain modules (`checks.rs`, `notify.rs`, …) implement their store traits with it too.
#[allow(unused_imports)] // until the first domain module uses it
pub(crate) use on_backend;

impl SqlStore {
    /// Connects (creating a SQLite file when missing) and applies pending migrations.
    pub async fn open(location: &StoreLocation, connect_timeout: Duration) -> Result<Self> {
        let open_error = |source| Error::Open { location: location.display(), source };
        let backend = match location {
            StoreLocation::Sqlite(path) => {
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // FULL: a committed change survives power loss, not only a killed process.
                    .synchronous(SqliteSynchronous::Full)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(5));
                let pool = SqlitePoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(connect_timeout)
                    .connect_with(options)
                    .await
                    .map_err(open_error)?;
                Backend::Sqlite(pool)
            }
            StoreLocation::Postgres(url) => {
                let options = PgConnectOptions::from_str(url).map_err(open_error)?;
                let pool =
                    PgPoolOptions::new().max_connections(16).acquire_timeout(connect_timeout).connect_with(options);
                let pool = tokio::time::timeout(connect_timeout, pool)
                    .await
                    .map_err(|_| open_error(sqlx::Error::PoolTimedOut))?
                    .map_err(open_error)?;
                Backend::Postgres(pool)
            }
        };
        let store = Self { backend };
        let migrated = match &store.backend {
            Backend::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await,
            Backend::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
        };
        migrated.map_err(|source| Error::Migrate { location: location.display(), source })?;
        Ok(store)
    }
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: i64,
    username: String,
    password_hash: String,
    role: String,
    disabled: bool,
    created_at: i64,
    updated_at: i64,
    last_login_at: Option<i64>,
}

impl TryFrom<UserRow> for User {
    type Error = Error;

    fn try_from(row: UserRow) -> Result<Self> {
        Ok(User {
            id: row.id,
            username: row.username,
            password_hash: row.password_hash,
            role: parse_role(&row.role)?,
            disabled: row.disabled,
            created_at: Timestamp(row.created_at),
            updated_at: Timestamp(row.updated_at),
            last_login_at: row.last_login_at.map(Timestamp),
        })
    }
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    name: String,
    prefix: String,
    secret_hash: String,
    role: String,
    created_by: String,
    created_at: i64,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl TryFrom<TokenRow> for Token {
    type Error = Error;

    fn try_from(row: TokenRow) -> Result<Self> {
        Ok(Token {
            id: row.id,
            name: row.name,
            prefix: row.prefix,
            secret_hash: row.secret_hash,
            role: parse_role(&row.role)?,
            created_by: row.created_by,
            created_at: Timestamp(row.created_at),
            expires_at: row.expires_at.map(Timestamp),
            last_used_at: row.last_used_at.map(Timestamp),
            revoked_at: row.revoked_at.map(Timestamp),
        })
    }
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id_hash: String,
    user_id: i64,
    csrf_token: String,
    client_addr: String,
    created_at: i64,
    expires_at: i64,
}

impl From<SessionRow> for Session {
    fn from(row: SessionRow) -> Self {
        Session {
            id_hash: row.id_hash,
            user_id: row.user_id,
            csrf_token: row.csrf_token,
            client_addr: row.client_addr,
            created_at: Timestamp(row.created_at),
            expires_at: Timestamp(row.expires_at),
        }
    }
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: i64,
    at: i64,
    actor: String,
    actor_role: Option<String>,
    action: String,
    target: Option<String>,
    summary: String,
    client_addr: String,
    request_id: Option<String>,
    outcome: String,
    status: i32,
}

impl TryFrom<AuditRow> for AuditEntry {
    type Error = Error;

    fn try_from(row: AuditRow) -> Result<Self> {
        Ok(AuditEntry {
            id: row.id,
            at: Timestamp(row.at),
            actor: row.actor,
            actor_role: row.actor_role.as_deref().map(parse_role).transpose()?,
            action: row.action,
            target: row.target,
            summary: serde_json::from_str(&row.summary)
                .map_err(|e| Error::Corrupt(format!("audit entry {}: summary: {e}", row.id)))?,
            client_addr: row.client_addr,
            request_id: row.request_id,
            outcome: Outcome::parse(&row.outcome)
                .ok_or_else(|| Error::Corrupt(format!("audit entry {}: outcome {:?}", row.id, row.outcome)))?,
            status: u16::try_from(row.status).unwrap_or(0),
        })
    }
}

fn parse_role(text: &str) -> Result<Role> {
    text.parse().map_err(|e| Error::Corrupt(format!("{e}")))
}

const USER_COLUMNS: &str = "id, username, password_hash, role, disabled, created_at, updated_at, last_login_at";
const TOKEN_COLUMNS: &str = "id, name, prefix, secret_hash, role, created_by, created_at, \
     expires_at, last_used_at, revoked_at";
const AUDIT_COLUMNS: &str = "id, at, actor, actor_role, action, target, summary, client_addr, \
     request_id, outcome, status";

#[async_trait]
impl StateStore for SqlStore {
    fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    async fn ping(&self) -> Result<()> {
        on_backend!(self, |pool| sqlx::query("SELECT 1").execute(pool).await.map(|done| done.rows_affected()))?;
        Ok(())
    }

    async fn close(&self) {
        on_backend!(self, |pool| pool.close().await)
    }

    async fn create_user(&self, user: NewUser) -> Result<User> {
        let sql = format!(
            "INSERT INTO users (username, password_hash, role, disabled, created_at, updated_at) \
             VALUES ($1, $2, $3, FALSE, $4, $4) RETURNING {USER_COLUMNS}"
        );
        let row: UserRow = on_backend!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(&user.username)
                .bind(&user.password_hash)
                .bind(user.role.as_str())
                .bind(user.at.as_millis())
                .fetch_one(pool)
                .await
        })
        .map_err(|e| Error::from_query(e, || format!("user {:?}", user.username)))?;
        row.try_into()
    }

    async fn user(&self, id: i64) -> Result<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let row: Option<UserRow> = on_backend!(self, |pool| sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1");
        let row: Option<UserRow> =
            on_backend!(self, |pool| { sqlx::query_as(&sql).bind(username).fetch_optional(pool).await })?;
        row.map(TryInto::try_into).transpose()
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY id");
        let rows: Vec<UserRow> = on_backend!(self, |pool| sqlx::query_as(&sql).fetch_all(pool).await)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn count_users(&self) -> Result<i64> {
        let count: i64 =
            on_backend!(self, |pool| { sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(pool).await })?;
        Ok(count)
    }

    async fn update_user(&self, id: i64, update: UserUpdate) -> Result<Option<User>> {
        let sql = format!(
            "UPDATE users SET \
                 password_hash = COALESCE($2, password_hash), \
                 role = COALESCE($3, role), \
                 disabled = COALESCE($4, disabled), \
                 updated_at = COALESCE($5, updated_at) \
             WHERE id = $1 RETURNING {USER_COLUMNS}"
        );
        let row: Option<UserRow> = on_backend!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(id)
                .bind(update.password_hash.as_deref())
                .bind(update.role.map(Role::as_str))
                .bind(update.disabled)
                .bind(update.at.map(Timestamp::as_millis))
                .fetch_optional(pool)
                .await
        })?;
        row.map(TryInto::try_into).transpose()
    }

    async fn delete_user(&self, id: i64) -> Result<bool> {
        let done = on_backend!(self, |pool| {
            sqlx::query("DELETE FROM users WHERE id = $1").bind(id).execute(pool).await.map(|done| done.rows_affected())
        })?;
        Ok(done > 0)
    }

    async fn record_login(&self, id: i64, at: Timestamp) -> Result<()> {
        on_backend!(self, |pool| {
            sqlx::query("UPDATE users SET last_login_at = $2 WHERE id = $1")
                .bind(id)
                .bind(at.as_millis())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    async fn create_token(&self, token: NewToken) -> Result<Token> {
        let sql = format!(
            "INSERT INTO api_tokens (name, prefix, secret_hash, role, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {TOKEN_COLUMNS}"
        );
        let row: TokenRow = on_backend!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(&token.name)
                .bind(&token.prefix)
                .bind(&token.secret_hash)
                .bind(token.role.as_str())
                .bind(&token.created_by)
                .bind(token.created_at.as_millis())
                .bind(token.expires_at.map(Timestamp::as_millis))
                .fetch_one(pool)
                .await
        })
        .map_err(|e| Error::from_query(e, || format!("token prefix {:?}", token.prefix)))?;
        row.try_into()
    }

    async fn token_by_prefix(&self, prefix: &str) -> Result<Option<Token>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE prefix = $1");
        let row: Option<TokenRow> =
            on_backend!(self, |pool| { sqlx::query_as(&sql).bind(prefix).fetch_optional(pool).await })?;
        row.map(TryInto::try_into).transpose()
    }

    async fn list_tokens(&self) -> Result<Vec<Token>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY id");
        let rows: Vec<TokenRow> = on_backend!(self, |pool| sqlx::query_as(&sql).fetch_all(pool).await)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn revoke_token(&self, id: i64, at: Timestamp) -> Result<bool> {
        let done = on_backend!(self, |pool| {
            sqlx::query("UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(id)
                .bind(at.as_millis())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(done > 0)
    }

    async fn touch_token(&self, id: i64, at: Timestamp) -> Result<()> {
        on_backend!(self, |pool| {
            sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1")
                .bind(id)
                .bind(at.as_millis())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    async fn create_session(&self, session: Session) -> Result<()> {
        on_backend!(self, |pool| {
            sqlx::query(
                "INSERT INTO sessions (id_hash, user_id, csrf_token, client_addr, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&session.id_hash)
            .bind(session.user_id)
            .bind(&session.csrf_token)
            .bind(&session.client_addr)
            .bind(session.created_at.as_millis())
            .bind(session.expires_at.as_millis())
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    async fn session(&self, id_hash: &str) -> Result<Option<Session>> {
        let row: Option<SessionRow> = on_backend!(self, |pool| {
            sqlx::query_as(
                "SELECT id_hash, user_id, csrf_token, client_addr, created_at, expires_at \
                 FROM sessions WHERE id_hash = $1",
            )
            .bind(id_hash)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(Session::from))
    }

    async fn delete_session(&self, id_hash: &str) -> Result<()> {
        on_backend!(self, |pool| {
            sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
                .bind(id_hash)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    async fn delete_expired_sessions(&self, now: Timestamp) -> Result<u64> {
        let done = on_backend!(self, |pool| {
            sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
                .bind(now.as_millis())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(done)
    }

    async fn delete_user_sessions(&self, user_id: i64) -> Result<()> {
        on_backend!(self, |pool| {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(user_id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    async fn append_audit(&self, entry: NewAuditEntry) -> Result<i64> {
        let summary = entry.summary.to_string();
        let id: i64 = on_backend!(self, |pool| {
            sqlx::query_scalar(
                "INSERT INTO audit_log (at, actor, actor_role, action, target, summary, client_addr, \
                     request_id, outcome, status) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
            )
            .bind(entry.at.as_millis())
            .bind(&entry.actor)
            .bind(entry.actor_role.map(Role::as_str))
            .bind(&entry.action)
            .bind(entry.target.as_deref())
            .bind(&summary)
            .bind(&entry.client_addr)
            .bind(entry.request_id.as_deref())
            .bind(entry.outcome.as_str())
            .bind(i32::from(entry.status))
            .fetch_one(pool)
            .await
        })?;
        Ok(id)
    }

    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        // Each filter is "unset or equal", so one statement serves every combination.
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE \
                 ($1 IS NULL OR actor = $1) AND \
                 ($2 IS NULL OR action = $2) AND \
                 ($3 IS NULL OR target = $3) AND \
                 ($4 IS NULL OR outcome = $4) AND \
                 ($5 IS NULL OR at >= $5) AND \
                 ($6 IS NULL OR at <= $6) AND \
                 ($7 IS NULL OR id < $7) \
             ORDER BY id DESC LIMIT $8"
        );
        let rows: Vec<AuditRow> = on_backend!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(query.actor.as_deref())
                .bind(query.action.as_deref())
                .bind(query.target.as_deref())
                .bind(query.outcome.map(Outcome::as_str))
                .bind(query.since.map(Timestamp::as_millis))
                .bind(query.until.map(Timestamp::as_millis))
                .bind(query.before_id)
                .bind(i64::from(query.limit))
                .fetch_all(pool)
                .await
        })?;
        rows.into_iter().map(TryInto::try_into).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_passwords_in_urls() {
        assert_eq!(mask_password("postgres://hubmon:s3cret@db:5432/hubmon"), "postgres://hubmon:***@db:5432/hubmon");
        assert_eq!(mask_password("postgres://db/hubmon"), "postgres://db/hubmon");
        assert_eq!(mask_password("postgres://u:p@ss@db/x"), "postgres://u:***@db/x");
    }
}
