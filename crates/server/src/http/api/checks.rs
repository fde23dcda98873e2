//! Health checks (issue 6): definitions (editors change them), run now, history with uptime,
//! and the product summary's health report. The checks module (crates/checks) does the work;
//! these handlers parse, call one method and render.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use hubmon_checks::{CheckView, Definition, HealthReport, HistoryView, RunView, StatusPage};
use serde::Deserialize;
use serde_json::Value;

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{Json, Path, Query};
use crate::http::middleware::AuditNote;

impl From<hubmon_checks::Error> for ApiError {
    fn from(error: hubmon_checks::Error) -> Self {
        let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(%error, "health check request failed");
        }
        ApiError::new(status, error.to_string())
    }
}

const DEFINITION_DOC: &str = "A check definition, one flat JSON object. Common fields: `name` (unique), `kind` \
(`postgres`, `mysql`, `redis`, `http`, `tcp`, `system`, `state_store`), `interval` (default `30s`), `timeout` \
(default `10s`, at most the interval), `failures_before_unhealthy` (3), `successes_before_healthy` (2), \
`degraded_latency` (none), `critical` (true), `enabled` (true). Per kind: postgres/mysql `url`, `query`; redis `url` (`redis://` or `rediss://`), `ca_file`; \
http `url`, `method`, `headers`, `body`, `expected_status` (default any 2xx), `body_contains`, `body_regex`, \
`json_path` + `json_equals`, `follow_redirects` (true), `tls_verify` (true), `ca_file`, `cert_expiry_days` (14); tcp \
`address` (host:port); system `cpu_degraded`/`cpu_unhealthy` (80/90), `memory_*` (85/95), `disk_*` (90/95). URLs and \
header values are stored encrypted and shown masked; sending a masked value back keeps the stored one.";

fn parse_definition(body: Value) -> Result<Definition, ApiError> {
    if !body.is_object() {
        return Err(ApiError::unprocessable(format!("expected a JSON object; {DEFINITION_DOC}")));
    }
    Ok(Definition::from_json(body)?)
}

/// Lists every check with its current status.
#[utoipa::path(get, path = "/api/v1/checks", tag = "checks", responses((status = 200, body = Vec<CheckView>)))]
pub async fn list_checks(State(app): State<AppState>) -> Json<Vec<CheckView>> {
    Json(app.checks.list())
}

/// Defines a check; it starts running at once.
#[utoipa::path(post, path = "/api/v1/checks", tag = "checks",
    request_body(content = Object, description = DEFINITION_DOC),
    responses(
        (status = 201, body = CheckView),
        (status = 409, description = "The name is taken", body = crate::http::error::ErrorBody),
        (status = 422, description = "The definition is invalid (the message names the field)", body = crate::http::error::ErrorBody),
    ))]
pub async fn create_check(
    State(app): State<AppState>,
    Extension(note): Extension<AuditNote>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<CheckView>), ApiError> {
    let created = app.checks.create(parse_definition(body)?).await?;
    note.target(format!("check:{}", created.id));
    Ok((StatusCode::CREATED, Json(created)))
}

/// One check with its current status and last result.
#[utoipa::path(get, path = "/api/v1/checks/{id}", tag = "checks", params(("id" = i64, Path)), responses(
    (status = 200, body = CheckView),
    (status = 404, body = crate::http::error::ErrorBody),
))]
pub async fn get_check(State(app): State<AppState>, Path(id): Path<i64>) -> Result<Json<CheckView>, ApiError> {
    Ok(Json(app.checks.get(id)?))
}

/// Replaces a check's definition (checks from the config file are read-only: 409).
#[utoipa::path(put, path = "/api/v1/checks/{id}", tag = "checks", params(("id" = i64, Path)),
    request_body(content = Object, description = DEFINITION_DOC),
    responses(
        (status = 200, body = CheckView),
        (status = 404, body = crate::http::error::ErrorBody),
        (status = 409, body = crate::http::error::ErrorBody),
        (status = 422, body = crate::http::error::ErrorBody),
    ))]
pub async fn update_check(
    State(app): State<AppState>,
    Extension(note): Extension<AuditNote>,
    Path(id): Path<i64>,
    Json(body): Json<Value>,
) -> Result<Json<CheckView>, ApiError> {
    note.target(format!("check:{id}"));
    Ok(Json(app.checks.update(id, parse_definition(body)?).await?))
}

/// Removes a check and its history (checks from the config file are read-only: 409).
#[utoipa::path(delete, path = "/api/v1/checks/{id}", tag = "checks", params(("id" = i64, Path)), responses(
    (status = 204),
    (status = 404, body = crate::http::error::ErrorBody),
    (status = 409, body = crate::http::error::ErrorBody),
))]
pub async fn delete_check(
    State(app): State<AppState>,
    Extension(note): Extension<AuditNote>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    note.target(format!("check:{id}"));
    app.checks.delete(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Runs a check now and returns the result (it counts like a scheduled run: history,
/// metrics, status).
#[utoipa::path(post, path = "/api/v1/checks/{id}/run", tag = "checks", params(("id" = i64, Path)), responses(
    (status = 200, body = RunView),
    (status = 404, body = crate::http::error::ErrorBody),
))]
pub async fn run_check(
    State(app): State<AppState>,
    Extension(note): Extension<AuditNote>,
    Path(id): Path<i64>,
) -> Result<Json<RunView>, ApiError> {
    note.target(format!("check:{id}"));
    Ok(Json(app.checks.run_now(id).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// How many of the newest results to include (1 to 1000, default 50).
    limit: Option<u32>,
}

/// Uptime over 24 h, 7 d and 30 d (time-weighted, degraded counts as up), daily uptime for
/// 90 days, the status changes of the last 30 days with their durations (newest first) and
/// the newest results.
#[utoipa::path(get, path = "/api/v1/checks/{id}/history", tag = "checks", params(("id" = i64, Path), HistoryParams),
    responses(
        (status = 200, body = HistoryView),
        (status = 404, body = crate::http::error::ErrorBody),
    ))]
pub async fn check_history(
    State(app): State<AppState>,
    Path(id): Path<i64>,
    Query(params): Query<HistoryParams>,
) -> Result<Json<HistoryView>, ApiError> {
    Ok(Json(app.checks.history(id, params.limit.unwrap_or(50)).await?))
}

/// The health report: the overall status (unhealthy if a critical check is unhealthy;
/// degraded if any check is degraded or a non-critical one unhealthy; unknown before the first
/// results) and every enabled check with its status, latency, last change, message and
/// details.
#[utoipa::path(get, path = "/api/v1/monitoring/health", tag = "monitoring", responses((status = 200, body = HealthReport)))]
pub async fn health(State(app): State<AppState>) -> Json<HealthReport> {
    Json(app.checks.report())
}

async fn public_status(app: &AppState) -> Result<StatusPage, ApiError> {
    app.checks.status_page().await?.ok_or_else(|| {
        ApiError::not_found("the public status page is off; set check.status_page = true (HUBMON_CHECK_STATUS_PAGE)")
    })
}

/// The public status page's data: every enabled check's name, status and 90 days of daily
/// uptime. No targets, messages or details. 404 unless `check.status_page` is on.
#[utoipa::path(get, path = "/status.json", tag = "checks", responses(
    (status = 200, body = StatusPage),
    (status = 404, description = "The status page is off", body = crate::http::error::ErrorBody),
))]
pub async fn status_page_json(State(app): State<AppState>) -> Result<Json<StatusPage>, ApiError> {
    Ok(Json(public_status(&app).await?))
}

/// The public status page as HTML (no scripts, no inline styles: it passes the app's CSP).
/// 404 unless `check.status_page` is on.
#[utoipa::path(get, path = "/status", tag = "checks", responses(
    (status = 200, description = "The status page", content_type = "text/html", body = String),
    (status = 404, description = "The status page is off", body = crate::http::error::ErrorBody),
))]
pub async fn status_page_html(State(app): State<AppState>) -> Result<axum::response::Html<String>, ApiError> {
    Ok(axum::response::Html(render_status_page(&public_status(&app).await?)))
}

/// Uptime bars as SVG presentation attributes (colours are attributes, not styles).
fn render_status_page(page: &StatusPage) -> String {
    fn escape(text: &str) -> String {
        text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
    }
    fn colour(uptime: Option<f64>) -> &'static str {
        match uptime {
            None => "#d0d7de",
            Some(u) if u >= 99.9 => "#2da44e",
            Some(u) if u >= 99.0 => "#8ddb8c",
            Some(u) if u >= 95.0 => "#d4a72c",
            Some(_) => "#cf222e",
        }
    }
    let now_day = page.generated_at.as_millis() / 86_400_000;
    let mut rows = String::new();
    for component in &page.components {
        let days = component.daily_uptime.len() as i64;
        let bars: String = component
            .daily_uptime
            .iter()
            .enumerate()
            .map(|(i, uptime)| {
                let day = hubmon_model::Timestamp((now_day - days + 1 + i as i64) * 86_400_000);
                let date = day.to_rfc3339().get(..10).unwrap_or_default().to_string();
                let label = uptime.map_or_else(|| "no data".to_string(), |u| format!("{u:.2} %"));
                format!(
                    r#"<rect x="{}" y="0" width="3" height="24" fill="{}"><title>{date}: {label}</title></rect>"#,
                    i * 4,
                    colour(*uptime)
                )
            })
            .collect();
        let uptime = component.uptime_90d.map_or_else(|| "–".to_string(), |u| format!("{u:.2} %"));
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{uptime}</td><td><svg width=\"{}\" height=\"24\" role=\"img\" \
             aria-label=\"90 days of uptime\">{bars}</svg></td></tr>\n",
            escape(&component.name),
            component.status,
            days * 4,
        ));
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\"><title>Status</title></head>\n<body><h1>Status: {}</h1>\n\
         <p>Updated {}</p>\n<table><thead><tr><th>Component</th><th>Status</th><th>Uptime (90 days)</th>\
         <th>Daily uptime</th></tr></thead>\n<tbody>\n{rows}</tbody></table>\n</body></html>\n",
        page.status, page.generated_at
    )
}
