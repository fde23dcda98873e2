//! The API's error shape, `{"error":{"code","message"}}`, and how every failure maps onto it.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::auth;

/// An error answered to an API client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds the client should wait before retrying (429, 503).
    pub retry_after: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable name such as `not_found` or `validation_failed`.
    pub code: String,
    /// What went wrong and, where possible, how to fix it.
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, code: code_for(status), message: message.into(), retry_after: None }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

/// The default `code` for a status.
pub fn code_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "timeout",
        409 => "conflict",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "validation_failed",
        429 => "rate_limited",
        503 => "unavailable",
        500..=599 => "internal",
        _ => "error",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code.to_string(), message: self.message } };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<auth::Error> for ApiError {
    fn from(error: auth::Error) -> Self {
        use auth::Error::*;
        let status = match &error {
            Unauthenticated | InvalidToken | TokenExpired(_) | TokenRevoked | SessionExpired | BadCredentials => {
                StatusCode::UNAUTHORIZED
            }
            RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            InvalidInput(_) => StatusCode::UNPROCESSABLE_ENTITY,
            UserExists(_) | LastAdmin => StatusCode::CONFLICT,
            NoSuchUser(_) | NoSuchToken(_) => StatusCode::NOT_FOUND,
            Store(e) if e.is_retryable() => StatusCode::SERVICE_UNAVAILABLE,
            Store(_) | Hashing(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::error!(error = %error, "request failed");
        }
        let mut api = ApiError::new(status, error.to_string());
        if let RateLimited { retry_after } = error {
            api.retry_after = Some(retry_after.as_secs().max(1));
        }
        api
    }
}

impl From<hubmon_state::Error> for ApiError {
    fn from(error: hubmon_state::Error) -> Self {
        auth::Error::Store(error).into()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        // axum picks the right status (400 syntax, 413 too large, 415 content type, 422 shape);
        // its text already names the field and position.
        let status = rejection.status();
        let message = match &rejection {
            JsonRejection::MissingJsonContentType(_) => {
                "expected a JSON body with `Content-Type: application/json`".to_string()
            }
            _ if status == StatusCode::PAYLOAD_TOO_LARGE => "request body is larger than http.max_body_bytes".into(),
            _ => rejection.body_text(),
        };
        ApiError::new(status, message)
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad_request(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_request(rejection.body_text())
    }
}
