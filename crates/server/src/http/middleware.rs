//! The layers every request passes through: authorization (per the route table), the audit
//! log for mutating calls, request metrics and access logging, and the JSON error shape for
//! errors produced outside handlers.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use hubmon_model::{Access, Timestamp};
use hubmon_state::{NewAuditEntry, Outcome};

use super::error::{ApiError, code_for};
use crate::app::AppState;
use crate::audit;
use crate::auth::Principal;

pub const SESSION_COOKIE: &str = "hubmon_session";
pub const CSRF_COOKIE: &str = "hubmon_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// What the audit layer learns while a request is handled: filled by the authorization layer
/// (who) and by handlers (what exactly was changed), read once the response is ready.
#[derive(Clone, Default)]
pub struct AuditNote(Arc<Mutex<AuditDetails>>);

#[derive(Default)]
struct AuditDetails {
    actor: Option<String>,
    actor_role: Option<hubmon_model::Role>,
    target: Option<String>,
}

impl AuditNote {
    fn with<R>(&self, f: impl FnOnce(&mut AuditDetails) -> R) -> R {
        let mut guard = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }

    /// Names what the call changed, e.g. `user:7`.
    pub fn target(&self, target: impl Into<String>) {
        let target = target.into();
        self.with(|details| details.target = Some(target));
    }

    /// Names who acted, for calls made before anyone is authenticated (login).
    pub fn actor(&self, actor: impl Into<String>) {
        let actor = actor.into();
        self.with(|details| details.actor = Some(actor));
    }
}

fn is_mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The client's address: the peer, or the first `X-Forwarded-For` hop when configured.
pub fn client_addr(headers: &HeaderMap, extensions: &axum::http::Extensions, trust_forwarded_for: bool) -> String {
    if trust_forwarded_for {
        let forwarded = headers
            .get("x-forwarded-for")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(',').next())
            .map(str::trim)
            .filter(|hop| !hop.is_empty());
        if let Some(hop) = forwarded {
            return hop.chars().take(64).collect();
        }
    }
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |ConnectInfo(peer)| peer.ip().to_string())
}

/// Authenticates the caller and checks the route's [`Access`]; runs after routing.
pub async fn authorize(State(app): State<AppState>, mut request: Request, next: Next) -> Response {
    let template = request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string());
    let info = template.as_deref().and_then(|t| app.routes.get(request.method(), t)).cloned();
    let Some(info) = info else {
        // Not in the route table: refuse rather than guess what it requires.
        return ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("{} is not allowed here", request.method()))
            .into_response();
    };
    if info.access == Access::Public {
        return next.run(request).await;
    }
    let principal = match authenticate(&app, request.headers()).await {
        Ok(Some(principal)) => principal,
        Ok(None) => return unauthenticated(crate::auth::Error::Unauthenticated.into()),
        Err(error) => return unauthenticated(error),
    };
    if let Some(note) = request.extensions().get::<AuditNote>() {
        note.with(|details| {
            details.actor = Some(principal.actor());
            details.actor_role = Some(principal.role());
        });
    }
    if !principal.role().permits(info.access) {
        let message = format!(
            "{} {} requires role {}; you have role {}",
            request.method(),
            template.unwrap_or_default(),
            required_roles(info.access),
            principal.role()
        );
        return ApiError::forbidden(message).into_response();
    }
    if let Principal::User { csrf_token: Some(expected), .. } = &principal
        && is_mutating(request.method())
    {
        let presented = request.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !crate::auth::constant_time_eq(presented, expected) {
            return ApiError::forbidden(format!(
                "missing or wrong CSRF token: send the `csrf_token` from login (also in the {CSRF_COOKIE} cookie) as the X-CSRF-Token header"
            ))
            .into_response();
        }
    }
    let caller = CallerKey(match &principal {
        Principal::User { id, .. } => format!("user:{id}"),
        Principal::Token { id, .. } => format!("token:{id}"),
    });
    request.extensions_mut().insert(principal);
    let mut response = next.run(request).await;
    response.extensions_mut().insert(caller);
    response
}

/// Who made a request, for counting active API keys; set on the response by `authorize`.
#[derive(Clone)]
pub struct CallerKey(pub String);

fn required_roles(access: Access) -> &'static str {
    match access {
        Access::Ingest => "ingest, editor or admin",
        Access::Viewer => "viewer, editor or admin",
        Access::Editor => "editor or admin",
        Access::Admin => "admin",
        Access::Public | Access::Authenticated => "any",
    }
}

fn unauthenticated(error: ApiError) -> Response {
    let mut response = error.into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"hubmon\""));
    response
}

/// A bearer token wins over a session cookie; no credentials at all is `Ok(None)`.
async fn authenticate(app: &AppState, headers: &HeaderMap) -> Result<Option<Principal>, ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let text = value.to_str().unwrap_or_default();
        let Some(token) = bearer_or_basic_token(text) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unsupported Authorization header; send `Authorization: Bearer <token>` (or Basic auth with the token as password)",
            ));
        };
        return Ok(Some(app.auth.authenticate_token(&token).await?));
    }
    let jar = CookieJar::from_headers(headers);
    match jar.get(SESSION_COOKIE) {
        Some(cookie) => Ok(Some(app.auth.authenticate_session(cookie.value()).await?)),
        None => Ok(None),
    }
}

/// The API token in an `Authorization` header: `Bearer <token>`, or HTTP Basic with the token
/// as the password (the user name is ignored) for clients that only speak Basic auth, such as
/// promtool (`http://user:TOKEN@host/`) and some Grafana setups.
fn bearer_or_basic_token(header: &str) -> Option<String> {
    use base64::Engine;
    let (scheme, rest) = header.split_once(' ')?;
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" => Some(rest.trim().to_string()),
        "basic" => {
            let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
            let text = String::from_utf8(decoded).ok()?;
            text.split_once(':').map(|(_, password)| password.to_string())
        }
        _ => None,
    }
}

/// Records every mutating call (except metric and log ingest, which is data, not change)
/// in the audit log, whatever its outcome, before the response leaves.
pub async fn audit(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let template = request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string());
    let info = template.as_deref().and_then(|t| app.routes.get(request.method(), t)).cloned();
    let Some(info) = info.filter(|info| is_mutating(request.method()) && info.access != Access::Ingest) else {
        return next.run(request).await;
    };
    let client = client_addr(request.headers(), request.extensions(), app.config.http.trust_forwarded_for);
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(128).collect::<String>());
    let path = request.uri().path().to_string();
    let (mut parts, body) = request.into_parts();
    let limit = usize::try_from(app.config.http.max_body_bytes).unwrap_or(usize::MAX);
    let note = AuditNote::default();
    let (response, summary) = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => {
            let summary = audit::summarize_body(&bytes);
            parts.extensions.insert(note.clone());
            (next.run(Request::from_parts(parts, Body::from(bytes))).await, summary)
        }
        Err(_) => {
            let error = ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body is larger than http.max_body_bytes");
            (error.into_response(), serde_json::json!({ "body": "larger than http.max_body_bytes" }))
        }
    };
    let (actor, actor_role, target) = note.with(|d| (d.actor.clone(), d.actor_role, d.target.clone()));
    let status = response.status().as_u16();
    let entry = NewAuditEntry {
        at: Timestamp::now(),
        actor: actor.unwrap_or_else(|| "anonymous".to_string()),
        actor_role,
        action: info.operation,
        target: target.or(Some(path)),
        summary,
        client_addr: client,
        request_id,
        outcome: Outcome::from_status(status),
        status,
    };
    if let Err(error) = app.store.append_audit(entry).await {
        app.telemetry.audit_write_failed();
        tracing::error!(%error, "audit entry could not be written");
    }
    response
}

/// Counts and logs every request by route template.
pub async fn observe(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let response = next.run(request).await;
    // Dashboard files are not API traffic: they stay out of the request metrics and logs.
    if response.extensions().get::<super::web::DashboardFile>().is_some() {
        return response;
    }
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    app.telemetry.observe_request(method.as_str(), &route, status, elapsed);
    app.requests.record([hubmon_ingest::requests::RequestEvent {
        service: "hubmon".to_string(),
        route: route.clone(),
        method: method.to_string(),
        status,
        duration: elapsed,
        api_key: response.extensions().get::<CallerKey>().map(|c| c.0.clone()),
        at: Timestamp::now().as_millis(),
    }]);
    let ms = elapsed.as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::warn!(%method, %route, status, ms, request_id, "request failed");
    } else {
        tracing::debug!(%method, %route, status, ms, request_id, "request served");
    }
    response
}

/// Gives errors produced outside handlers (unknown route, wrong method, body limits) the
/// API's JSON error shape.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    // Errors made by axum's own extractors and by tower layers are empty or plain text.
    let plain = content_type.is_empty() || content_type.starts_with("text/plain");
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = match status {
        StatusCode::NOT_FOUND => format!("no route for {method} {path}; see /api/openapi.json"),
        StatusCode::METHOD_NOT_ALLOWED => format!("{method} is not allowed on {path}"),
        StatusCode::PAYLOAD_TOO_LARGE => "request body is larger than http.max_body_bytes".to_string(),
        _ if !text.is_empty() => text,
        other => other.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let mut error = ApiError::new(status, message);
    error.code = code_for(status);
    let mut rebuilt = error.into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_LENGTH && name != header::CONTENT_TYPE {
            rebuilt.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rebuilt
}
