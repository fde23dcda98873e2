//! Reading the audit log (admin only). There is no route that changes it.

use axum::extract::State;
use hubmon_model::Timestamp;
use hubmon_state::{AuditEntry, AuditQuery, Outcome};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{Json, Query};

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Username or `token:<name>#<id>`.
    actor: Option<String>,
    /// Operation name, such as `create_token`.
    action: Option<String>,
    /// Such as `user:3`.
    target: Option<String>,
    /// `success`, `denied`, `rejected` or `failed`.
    outcome: Option<String>,
    /// RFC 3339 or epoch seconds.
    #[param(value_type = Option<String>)]
    since: Option<Timestamp>,
    #[param(value_type = Option<String>)]
    until: Option<Timestamp>,
    /// `next_cursor` of the previous page.
    cursor: Option<i64>,
    /// 1 to 1000, default 100.
    limit: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// Newest first.
    entries: Vec<AuditEntry>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    next_cursor: Option<i64>,
}

const MAX_PAGE: u32 = 1000;

/// Audit entries, newest first, filtered and paged.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditParams), responses(
    (status = 200, body = AuditPage),
    (status = 400, body = crate::http::error::ErrorBody),
))]
pub async fn list_audit(
    State(app): State<AppState>,
    Query(params): Query<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be between 1 and {MAX_PAGE}")));
    }
    let outcome = match params.outcome.as_deref() {
        None => None,
        Some(text) => Some(Outcome::parse(text).ok_or_else(|| {
            ApiError::bad_request(format!("unknown outcome {text:?}; use success, denied, rejected or failed"))
        })?),
    };
    let query = AuditQuery {
        actor: params.actor,
        action: params.action,
        target: params.target,
        outcome,
        since: params.since,
        until: params.until,
        before_id: params.cursor,
        limit,
    };
    let entries = app.store.list_audit(&query).await?;
    let next_cursor = (entries.len() == limit as usize).then(|| entries.last().map(|e| e.id)).flatten();
    Ok(Json(AuditPage { entries, next_cursor }))
}
