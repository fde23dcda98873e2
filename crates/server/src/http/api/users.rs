//! User administration (admin only).

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use hubmon_model::{Role, Timestamp};
use hubmon_state::User;
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::UserChange;
use crate::http::error::ApiError;
use crate::http::extract::{Json, Path};
use crate::http::middleware::AuditNote;

/// A user as the API shows it (never with its password hash).
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserView {
    id: i64,
    username: String,
    role: Role,
    disabled: bool,
    created_at: Timestamp,
    updated_at: Timestamp,
    last_login_at: Option<Timestamp>,
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        Self {
            id: user.id,
            username: user.username,
            role: user.role,
            disabled: user.disabled,
            created_at: user.created_at,
            updated_at: user.updated_at,
            last_login_at: user.last_login_at,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserRequest {
    username: String,
    /// At least 8 characters.
    password: String,
    role: Role,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChangeRequest {
    password: Option<String>,
    role: Option<Role>,
    disabled: Option<bool>,
}

/// Lists all users.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", responses((status = 200, body = Vec<UserView>)))]
pub async fn list_users(State(app): State<AppState>) -> Result<Json<Vec<UserView>>, ApiError> {
    Ok(Json(app.auth.list_users().await?.into_iter().map(UserView::from).collect()))
}

/// Creates a user.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUserRequest, responses(
    (status = 201, body = UserView),
    (status = 409, description = "The username is taken", body = crate::http::error::ErrorBody),
    (status = 422, description = "Invalid username, password or role", body = crate::http::error::ErrorBody),
))]
pub async fn create_user(
    State(app): State<AppState>,
    Extension(note): Extension<AuditNote>,
    Json(request): Json<NewUserRequest>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let user = app.auth.create_user(&request.username, &request.password, request.role).await?;
    note.target(format!("user:{}", user.id));
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// Shows one user.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = i64, Path)), responses(
    (status = 200, body = UserView),
    (status = 404, body = crate::http::error::ErrorBody),
))]
pub async fn get_user(State(app): State<AppState>, Path(id): Path<i64>) -> Result<Json<UserView>, ApiError> {
    Ok(Json(app.auth.user(id).await?.into()))
}

/// Changes a user's role, password or disabled flag; their sessions end.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", params(("id" = i64, Path)), request_body = UserChangeRequest, responses(
    (status = 200, body = UserView),
    (status = 404, body = crate::http::error::ErrorBody),
    (status = 409, description = "Would leave no enabled admin", body = crate::http::error::ErrorBody),
))]
pub async fn update_user(
    State(app): State<AppState>,
    Extension(note): Extension<AuditNote>,
    Path(id): Path<i64>,
    Json(request): Json<UserChangeRequest>,
) -> Result<Json<UserView>, ApiError> {
    note.target(format!("user:{id}"));
    let change = UserChange { password: request.password, role: request.role, disabled: request.disabled };
    Ok(Json(app.auth.update_user(id, change).await?.into()))
}

/// Deletes a user and ends their sessions.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", params(("id" = i64, Path)), responses(
    (status = 204),
    (status = 404, body = crate::http::error::ErrorBody),
    (status = 409, description = "Would leave no enabled admin", body = crate::http::error::ErrorBody),
))]
pub async fn delete_user(
    State(app): State<AppState>,
    Extension(note): Extension<AuditNote>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    note.target(format!("user:{id}"));
    app.auth.delete_user(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
