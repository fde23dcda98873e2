//! Login, logout, who am I, and changing one's own password.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use hubmon_model::{Role, Timestamp};
use serde::{Deserialize, Serialize};

use super::users::UserView;
use crate::app::AppState;
use crate::auth::Principal;
use crate::http::error::ApiError;
use crate::http::extract::{ClientAddr, Json};
use crate::http::middleware::{AuditNote, CSRF_COOKIE, SESSION_COOKIE};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    username: String,
    password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    user: UserView,
    /// Send this as the X-CSRF-Token header on every mutating call made with the session.
    csrf_token: String,
    expires_at: Timestamp,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Me {
    /// `user` for a person (session), `token` for an API token.
    kind: &'static str,
    id: i64,
    name: String,
    role: Role,
    /// For sessions: the CSRF token to send with mutating calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// Logs in with a username and password; sets an HttpOnly session cookie.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest, responses(
    (status = 200, body = LoginResponse),
    (status = 401, description = "Wrong username or password", body = crate::http::error::ErrorBody),
    (status = 429, description = "Too many attempts", body = crate::http::error::ErrorBody),
))]
pub async fn login(
    State(app): State<AppState>,
    Extension(note): Extension<AuditNote>,
    ClientAddr(client): ClientAddr,
    jar: CookieJar,
    Json(request): Json<LoginRequest>,
) -> Result<(CookieJar, Json<LoginResponse>), ApiError> {
    note.actor(request.username.chars().take(64).collect::<String>());
    let login = app.auth.login(&request.username, &request.password, &client).await?;
    note.target(format!("user:{}", login.user.id));
    let max_age = time_until(login.expires_at);
    let secure = app.config.auth.cookie_secure;
    let session = Cookie::build((SESSION_COOKIE, login.session_secret))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(max_age)
        .build();
    // Readable by the dashboard's script, which echoes it in X-CSRF-Token (double submit).
    let csrf = Cookie::build((CSRF_COOKIE, login.csrf_token.clone()))
        .path("/")
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(max_age)
        .build();
    let body = LoginResponse { user: login.user.into(), csrf_token: login.csrf_token, expires_at: login.expires_at };
    Ok((jar.add(session).add(csrf), Json(body)))
}

fn time_until(at: Timestamp) -> cookie::time::Duration {
    let seconds = (at.as_millis() - Timestamp::now().as_millis()) / 1000;
    cookie::time::Duration::seconds(seconds.max(0))
}

/// Ends the current session and clears its cookies.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses((status = 204)))]
pub async fn logout(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    jar: CookieJar,
) -> Result<Response, ApiError> {
    if let Principal::User { session_hash: Some(hash), .. } = &principal {
        app.auth.logout(hash).await?;
    }
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/")).remove(Cookie::build(CSRF_COOKIE).path("/"));
    Ok((jar, StatusCode::NO_CONTENT).into_response())
}

/// Who the caller is and what role they have.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", responses((status = 200, body = Me)))]
pub async fn me(Extension(principal): Extension<Principal>) -> Json<Me> {
    Json(match principal {
        Principal::User { id, username, role, csrf_token, .. } => {
            Me { kind: "user", id, name: username, role, csrf_token }
        }
        Principal::Token { id, name, role } => Me { kind: "token", id, name, role, csrf_token: None },
    })
}

/// Changes the caller's own password; other sessions of the user end.
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", request_body = PasswordChange, responses(
    (status = 204),
    (status = 401, description = "The current password is wrong", body = crate::http::error::ErrorBody),
    (status = 422, description = "Not a user, or the new password is too short", body = crate::http::error::ErrorBody),
))]
pub async fn change_password(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(note): Extension<AuditNote>,
    Json(change): Json<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    let Principal::User { id, .. } = principal else {
        return Err(ApiError::unprocessable("API tokens have no password; log in as a user to change one"));
    };
    note.target(format!("user:{id}"));
    app.auth.change_own_password(id, &change.current_password, &change.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}
