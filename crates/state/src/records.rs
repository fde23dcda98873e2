//! The values the store takes and gives back.

use hubmon_model::{Role, Timestamp};
use serde::Serialize;

/// A person who can log in to the dashboard and API.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: i64,
    pub username: String,
    /// An argon2id PHC string; never leaves the server.
    pub password_hash: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_login_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub at: Timestamp,
}

/// A change to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub password_hash: Option<String>,
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub at: Option<Timestamp>,
}

/// An API token as stored: the secret itself is never kept, only its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub id: i64,
    pub name: String,
    /// The visible, unique start of the token, used to find it and to recognise it in lists.
    pub prefix: String,
    pub secret_hash: String,
    pub role: Role,
    /// Who created it (a username, or `cli` for `hubmon token create`).
    pub created_by: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub prefix: String,
    pub secret_hash: String,
    pub role: Role,
    pub created_by: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
}

/// A logged-in browser session. The cookie carries the secret; the store keeps its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id_hash: String,
    pub user_id: i64,
    /// Must accompany every mutating request made with this session (double-submit).
    pub csrf_token: String,
    pub client_addr: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// How a mutating call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// 2xx/3xx.
    Success,
    /// 401/403: the caller was not allowed.
    Denied,
    /// Any other 4xx: the request was refused as invalid.
    Rejected,
    /// 5xx: hubmon failed.
    Failed,
}

impl Outcome {
    pub fn from_status(status: u16) -> Self {
        match status {
            401 | 403 => Outcome::Denied,
            400..=499 => Outcome::Rejected,
            500.. => Outcome::Failed,
            _ => Outcome::Success,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Rejected => "rejected",
            Outcome::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Outcome::Success, Outcome::Denied, Outcome::Rejected, Outcome::Failed]
            .into_iter()
            .find(|outcome| outcome.as_str() == text)
    }
}

#[derive(Debug, Clone)]
pub struct NewAuditEntry {
    pub at: Timestamp,
    /// Username, `token:<name>`, or `anonymous`.
    pub actor: String,
    pub actor_role: Option<Role>,
    /// What was done, e.g. `token.create`.
    pub action: String,
    /// What it was done to, e.g. `token:12`.
    pub target: Option<String>,
    /// The change, secrets already masked (JSON).
    pub summary: serde_json::Value,
    pub client_addr: String,
    pub request_id: Option<String>,
    pub outcome: Outcome,
    pub status: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: Timestamp,
    pub actor: String,
    pub actor_role: Option<Role>,
    pub action: String,
    pub target: Option<String>,
    pub summary: serde_json::Value,
    pub client_addr: String,
    pub request_id: Option<String>,
    pub outcome: Outcome,
    pub status: u16,
}

/// Filters and paging for the audit log. Unset fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub outcome: Option<Outcome>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Only entries older than this id (the cursor of the previous page).
    pub before_id: Option<i64>,
    pub limit: u32,
}
