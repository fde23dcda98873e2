//! API token administration (admin only). A token's secret is shown once, at creation.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use hubmon_model::{PromDuration, Role, Timestamp};
use hubmon_state::Token;
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::Principal;
use crate::http::error::ApiError;
use crate::http::extract::{Json, Path};
use crate::http::middleware::AuditNote;

#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenView {
    id: i64,
    name: String,
    /// The visible start of the token, to recognise it.
    prefix: String,
    role: Role,
    created_by: String,
    created_at: Timestamp,
    expires_at: Option<Timestamp>,
    last_used_at: Option<Timestamp>,
    revoked_at: Option<Timestamp>,
    /// `active`, `expired` or `revoked`.
    status: &'static str,
}

impl From<Token> for TokenView {
    fn from(token: Token) -> Self {
        let status = match (token.revoked_at, token.expires_at) {
            (Some(_), _) => "revoked",
            (None, Some(at)) if at <= Timestamp::now() => "expired",
            _ => "active",
        };
        Self {
            id: token.id,
            name: token.name,
            prefix: token.prefix,
            role: token.role,
            created_by: token.created_by,
            created_at: token.created_at,
            expires_at: token.expires_at,
            last_used_at: token.last_used_at,
            revoked_at: token.revoked_at,
            status,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenRequest {
    name: String,
    role: Role,
    /// Lifetime such as `30d`; without it the token does not expire.
    expires_in: Option<PromDuration>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    /// The token itself. It is not stored and cannot be shown again.
    token: String,
    #[serde(flatten)]
    info: TokenView,
}

/// Lists tokens (without their secrets).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", responses((status = 200, body = Vec<TokenView>)))]
pub async fn list_tokens(State(app): State<AppState>) -> Result<Json<Vec<TokenView>>, ApiError> {
    Ok(Json(app.auth.list_tokens().await?.into_iter().map(TokenView::from).collect()))
}

/// Creates a token; the response holds its secret, shown this once.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = NewTokenRequest, responses(
    (status = 201, body = CreatedToken),
    (status = 422, body = crate::http::error::ErrorBody),
))]
pub async fn create_token(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(note): Extension<AuditNote>,
    Json(request): Json<NewTokenRequest>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let issued = app.auth.create_token(&request.name, request.role, request.expires_in, &principal.actor()).await?;
    note.target(format!("token:{}", issued.token.id));
    Ok((StatusCode::CREATED, Json(CreatedToken { token: issued.secret, info: issued.token.into() })))
}

/// Revokes a token; it stops working at once.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = i64, Path)), responses(
    (status = 204),
    (status = 404, body = crate::http::error::ErrorBody),
))]
pub async fn revoke_token(
    State(app): State<AppState>,
    Extension(note): Extension<AuditNote>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    note.target(format!("token:{id}"));
    app.auth.revoke_token(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
