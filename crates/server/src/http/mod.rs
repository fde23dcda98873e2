//! The HTTP layer: routes, extractors, errors and middleware. Handlers are thin: extract,
//! authorize (by the route table), call one module function, render.

pub mod api;
pub mod error;
pub mod extract;
pub mod middleware;
pub mod routes;
pub mod web;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use hubmon_model::Access;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::routes;

use crate::app::AppState;
use error::ApiError;
pub use routes::{RouteInfo, RouteTable};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hubmon",
        description = "Self-hosted monitoring in one binary: metrics, logs, health checks, alerts, notifications.",
    ),
    modifiers(&SecuritySchemes),
    components(schemas(error::ErrorBody)),
)]
struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token from `POST /api/v1/tokens` or `hubmon token create`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                middleware::SESSION_COOKIE,
                "The dashboard session from `POST /api/v1/auth/login`; mutating calls also need the X-CSRF-Token header",
            ))),
        );
    }
}

/// Every route, with the access each requires.
pub fn api_routes() -> (Router<AppState>, utoipa::openapi::OpenApi, RouteTable) {
    use api::*;
    routes::ApiRouter::new(ApiDoc::openapi())
        .add(Access::Public, routes!(system::healthz))
        .add(Access::Public, routes!(system::readyz))
        .add(Access::Viewer, routes!(system::metrics))
        .add(Access::Viewer, routes!(system::openapi))
        .add(Access::Public, routes!(auth::login))
        .add(Access::Authenticated, routes!(auth::logout))
        .add(Access::Authenticated, routes!(auth::me))
        .add(Access::Authenticated, routes!(auth::change_password))
        .add(Access::Admin, routes!(users::list_users, users::create_user))
        .add(Access::Admin, routes!(users::get_user, users::update_user, users::delete_user))
        .add(Access::Admin, routes!(tokens::list_tokens, tokens::create_token))
        .add(Access::Admin, routes!(tokens::revoke_token))
        .add(Access::Admin, routes!(audit::list_audit))
        .add(Access::Ingest, routes!(metrics::remote_write))
        .add(Access::Ingest, routes!(metrics::push))
        .add(Access::Viewer, routes!(prometheus::series))
        .add(Access::Viewer, routes!(prometheus::labels))
        .add(Access::Viewer, routes!(prometheus::label_values))
        .add(Access::Viewer, routes!(prometheus::metadata))
        .add(Access::Viewer, routes!(prometheus::query_get, prometheus::query_post))
        .add(Access::Viewer, routes!(prometheus::query_range_get, prometheus::query_range_post))
        .add(Access::Viewer, routes!(prometheus::buildinfo))
        .add(Access::Viewer, routes!(alerts::monitoring_alerts))
        .add(Access::Editor, routes!(alerts::create_rule))
        .add(Access::Viewer, routes!(alerts::list_rules))
        .add(Access::Viewer, routes!(alerts::export_rules))
        .add(Access::Viewer, routes!(alerts::get_rule))
        .add(Access::Editor, routes!(alerts::update_rule, alerts::delete_rule))
        .add(Access::Editor, routes!(alerts::acknowledge))
        .add(Access::Viewer, routes!(alerts::list_silences))
        .add(Access::Editor, routes!(alerts::create_silence))
        .add(Access::Editor, routes!(alerts::expire_silence))
        .add(Access::Viewer, routes!(alerts::prometheus_rules))
        .add(Access::Viewer, routes!(alerts::prometheus_alerts))
        .add(Access::Ingest, routes!(alerts::receive_alerts))
        .add(Access::Viewer, routes!(alerts::alertmanager_alerts))
        .add(Access::Viewer, routes!(prometheus::format_query_get, prometheus::format_query_post))
        .add(Access::Viewer, routes!(monitoring_metrics::monitoring_metrics))
        .add(Access::Viewer, routes!(monitoring::summary))
        .add(Access::Viewer, routes!(monitoring::stream))
        .add(Access::Ingest, routes!(logs::ingest))
        .add(Access::Viewer, routes!(logs::search))
        .add(Access::Viewer, routes!(logs::monitoring_logs))
        .add(Access::Viewer, routes!(logs::stats))
        .add(Access::Viewer, routes!(logs::tail))
        .add(Access::Ingest, routes!(loki::push))
        .add(Access::Viewer, routes!(loki::query))
        .add(Access::Viewer, routes!(loki::query_range))
        .add(Access::Viewer, routes!(loki::labels))
        .add(Access::Viewer, routes!(loki::label_values))
        .add(Access::Viewer, routes!(loki::series))
        .add(Access::Viewer, routes!(loki::index_stats))
        .add(Access::Viewer, routes!(loki::tail))
        // Notifications (crates/notify).
        .add(Access::Admin, routes!(notify::list_channels, notify::create_channel))
        .add(Access::Admin, routes!(notify::get_channel, notify::update_channel, notify::delete_channel))
        .add(Access::Admin, routes!(notify::test_channel))
        .add(Access::Admin, routes!(notify::test_notification))
        .add(Access::Viewer, routes!(notify::list_notifications))
        .add(Access::Viewer, routes!(notify::get_notification))
        .add(Access::Editor, routes!(notify::retry_notification))
        .add(Access::Authenticated, routes!(notify::list_inbox))
        .add(Access::Authenticated, routes!(notify::unread_count))
        .add(Access::Authenticated, routes!(notify::mark_read))
        .add(Access::Authenticated, routes!(notify::mark_all_read))
        .add(Access::Authenticated, routes!(notify::inbox_stream))
        .add(Access::Viewer, routes!(checks::list_checks))
        .add(Access::Editor, routes!(checks::create_check))
        .add(Access::Viewer, routes!(checks::get_check))
        .add(Access::Editor, routes!(checks::update_check, checks::delete_check))
        .add(Access::Editor, routes!(checks::run_check))
        .add(Access::Viewer, routes!(checks::check_history))
        .add(Access::Viewer, routes!(checks::health))
        .add(Access::Public, routes!(checks::status_page_json))
        .add(Access::Public, routes!(checks::status_page_html))
        .finish()
}

/// The complete application: routes plus the layers every request passes through.
pub fn router(state: AppState, routes: Router<AppState>) -> Router {
    let max_body = usize::try_from(state.config.http.max_body_bytes).unwrap_or(usize::MAX);
    let request_id = HeaderName::from_static("x-request-id");
    routes
        .fallback(web::serve)
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), middleware::authorize))
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::audit))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::observe))
        .layer(
            ServiceBuilder::new()
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(axum::middleware::from_fn(middleware::json_errors))
                .layer(security_header(header::CONTENT_SECURITY_POLICY, CSP))
                .layer(security_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                .layer(security_header(header::REFERRER_POLICY, "no-referrer"))
                .layer(security_header(header::X_FRAME_OPTIONS, "DENY"))
                .layer(security_header(header::CACHE_CONTROL, "no-store")),
        )
        .with_state(state)
}

/// Only the app's own assets, no inline scripts, no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
                   frame-ancestors 'none'; form-action 'self'";

fn security_header(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::internal("internal error; the server log has details").into_response()
}
