//! Metric ingest: Prometheus remote_write and the JSON push for scripts. Both write through
//! the metrics store's `Appender`; a refused series never costs the rest of the batch.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hubmon_ingest::{push, remote_write};
use hubmon_model::{AppendReport, Rejection, SeriesSamples, Timestamp};
use serde::Serialize;

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::extract::Json;

/// What an ingest call stored and refused.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IngestResult {
    accepted: usize,
    rejected: usize,
    /// Up to ten examples: `{"index"?, "series", "reason"}`.
    #[schema(value_type = Vec<Object>)]
    rejections: Vec<serde_json::Value>,
}

/// Most remote_write bodies inflate about 5×; this bounds what one request may cost in memory.
const MAX_DECOMPRESSED_FACTOR: usize = 16;

/// Prometheus remote_write receiver (protobuf + snappy, protocol 1.0).
#[utoipa::path(post, path = "/api/v1/write", tag = "metrics", request_body(content = Vec<u8>, content_type = "application/x-protobuf"), responses(
    (status = 204, description = "Every sample stored"),
    (status = 400, description = "Undecodable body, or some series or samples refused (the rest are stored)", body = crate::http::error::ErrorBody),
    (status = 413, description = "Body too large", body = crate::http::error::ErrorBody),
    (status = 415, description = "Wrong content type or encoding", body = crate::http::error::ErrorBody),
))]
pub async fn remote_write(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.starts_with("application/x-protobuf") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("remote_write needs Content-Type: application/x-protobuf, got {content_type:?}"),
        ));
    }
    let encoding = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("snappy");
    if encoding != "snappy" {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("remote_write needs Content-Encoding: snappy, got {encoding:?}"),
        ));
    }
    let limit =
        usize::try_from(app.config.http.max_body_bytes).unwrap_or(usize::MAX).saturating_mul(MAX_DECOMPRESSED_FACTOR);
    let decoded = remote_write::decode(&body, limit).map_err(|e| match e {
        remote_write::DecodeError::TooLarge { .. } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
        other => ApiError::bad_request(other.to_string()),
    })?;
    let mut report = append(&app, decoded.series).await?;
    report.rejected += decoded.rejected_samples;
    let mut rejections = decoded.rejections;
    rejections.extend(report.rejections);
    if report.rejected == 0 {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    // Prometheus does not retry a 400, which is right: the refused samples would be refused
    // again, and the accepted ones are stored.
    let examples: Vec<String> = rejections.iter().take(3).map(|r| format!("{}: {}", r.series, r.reason)).collect();
    Err(ApiError::bad_request(format!(
        "stored {} samples, refused {}: {}",
        report.accepted,
        report.rejected,
        examples.join("; ")
    )))
}

/// Pushes metrics as JSON: one `{"name","labels","value","timestamp"}`, an array, or `{"metrics":[…]}`.
#[utoipa::path(post, path = "/api/v1/monitoring/metrics", tag = "metrics", request_body(content = Object, description = "A metric, an array of metrics, or {\"metrics\": [...]}"), responses(
    (status = 200, description = "What was stored and refused", body = IngestResult),
    (status = 422, description = "Nothing could be stored", body = IngestResult),
))]
pub async fn push(State(app): State<AppState>, Json(body): Json<push::PushBody>) -> Result<Response, ApiError> {
    let converted = push::convert(body, Timestamp::now());
    let refused_early = converted.rejections.len();
    let report = append(&app, converted.series).await?;
    let mut rejections: Vec<serde_json::Value> = converted
        .rejections
        .into_iter()
        .map(|(index, r)| serde_json::json!({"index": index, "series": r.series, "reason": r.reason}))
        .collect();
    rejections.extend(report.rejections.iter().map(rejection_json));
    let result = IngestResult { accepted: report.accepted, rejected: report.rejected + refused_early, rejections };
    let status =
        if result.accepted == 0 && result.rejected > 0 { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok((status, Json(result)).into_response())
}

fn rejection_json(rejection: &Rejection) -> serde_json::Value {
    serde_json::json!({"series": rejection.series, "reason": rejection.reason})
}

/// Appends off the async runtime: the write-ahead log write is disk I/O.
async fn append(app: &AppState, series: Vec<SeriesSamples>) -> Result<AppendReport, ApiError> {
    if series.is_empty() {
        return Ok(AppendReport::default());
    }
    let store = app.metrics.clone();
    let result = tokio::task::spawn_blocking(move || hubmon_model::Appender::append(store.as_ref(), series))
        .await
        .map_err(|e| ApiError::internal(format!("append task failed: {e}")))?;
    result.map_err(|error| {
        tracing::error!(%error, "metrics append failed");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("{error}; retry later"))
    })
}
