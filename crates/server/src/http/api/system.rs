//! Liveness, readiness, hubmon's own metrics and the OpenAPI document.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::extract::Json;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` when the answer is yes.
    status: &'static str,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    status: &'static str,
    /// The state store backend: `sqlite` or `postgres`.
    state_store: &'static str,
}

/// Liveness: the process is up and serving HTTP.
#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the server can do its work (the state store answers).
#[utoipa::path(get, path = "/readyz", tag = "system", responses(
    (status = 200, body = Readiness),
    (status = 503, description = "The state store does not answer", body = crate::http::error::ErrorBody),
))]
pub async fn readyz(State(app): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    match app.store.ping().await {
        Ok(()) => Ok(Json(Readiness { status: "ok", state_store: app.store.backend() })),
        Err(error) => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("state store unavailable: {error}"))),
    }
}

/// hubmon's own metrics in the Prometheus/OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", tag = "system", responses((status = 200, content_type = "application/openmetrics-text", body = String)))]
pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], app.telemetry.render())
}

/// This API described as OpenAPI 3, generated from the code.
#[utoipa::path(get, path = "/api/openapi.json", tag = "system", responses((status = 200, content_type = "application/json", body = Object)))]
pub async fn openapi(State(app): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], app.openapi_json.clone())
}
