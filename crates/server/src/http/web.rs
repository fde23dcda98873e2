//! The dashboard: `web/dist` (built from `web/`) embedded in the binary and served under `/`.
//!
//! Serving rules:
//! - Paths under `/api`, `/loki`, `/metrics`, `/healthz`, `/readyz`, and any method other
//!   than GET and HEAD, never reach the dashboard: they get the API's JSON 404.
//! - A file that exists is served with a precompressed variant (`.br`, `.gz`, made by
//!   `web/scripts/compress.mjs`) when the client accepts one, an ETag, and
//!   `Cache-Control: immutable` under `/assets/` (their names carry a content hash) or
//!   `no-cache` elsewhere (so a new `index.html` is picked up at once).
//! - Any other path without a file extension is a page of the single-page app: `index.html`,
//!   so deep links (`/system?range=6h`) work. Missing files (`/assets/x.js`) are a 404.
//!
//! `build.rs` refuses to build when `web/dist/index.html` is missing, so a binary never
//! serves a blank page.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use super::error::ApiError;

#[derive(RustEmbed)]
#[folder = "../../web/dist"]
struct Dist;

/// Paths that belong to the API and protocol endpoints, never to the dashboard.
const NOT_DASHBOARD: &[&str] = &["/api", "/loki", "/metrics", "/healthz", "/readyz"];

fn is_reserved(path: &str) -> bool {
    NOT_DASHBOARD
        .iter()
        .any(|prefix| path == *prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/')))
}

/// Marks a response as the dashboard's (not API traffic), for the request metrics.
#[derive(Clone, Copy)]
pub struct DashboardFile;

/// The router's fallback: a dashboard file or page, or the API's 404.
pub async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if !(method == Method::GET || method == Method::HEAD) || is_reserved(path) {
        return ApiError::not_found(format!("no route for {method} {path}; see /api/openapi.json")).into_response();
    }
    let file = path.trim_start_matches('/');
    let last = file.rsplit('/').next().unwrap_or_default();
    let mut response = if !file.is_empty() && Dist::get(file).is_some() {
        asset(file, &headers)
    } else if file.starts_with("assets/") || last.contains('.') {
        ApiError::not_found(format!("no dashboard file {path}")).into_response()
    } else {
        asset("index.html", &headers)
    };
    response.extensions_mut().insert(DashboardFile);
    response
}

fn content_type(file: &str) -> &'static str {
    match file.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" | "map" => "application/json",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Which encodings the client takes, by the `Accept-Encoding` tokens (q=0 means no).
fn accepts(headers: &HeaderMap, encoding: &str) -> bool {
    headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).any(|value| {
        value.split(',').any(|part| {
            let mut pieces = part.split(';').map(str::trim);
            let name = pieces.next().unwrap_or_default();
            let refused = pieces.any(|p| p.replace(' ', "") == "q=0" || p.replace(' ', "") == "q=0.0");
            name.eq_ignore_ascii_case(encoding) && !refused
        })
    })
}

fn asset(file: &str, headers: &HeaderMap) -> Response {
    let Some(original) = Dist::get(file) else {
        return ApiError::internal(
            "the dashboard is missing from this build (web/dist has no index.html); rebuild with `npm run build` in web/",
        )
        .into_response();
    };
    let hash = hex::encode(&original.metadata.sha256_hash()[..12]);
    let (body, encoding) = [("br", ".br"), ("gzip", ".gz")]
        .into_iter()
        .filter(|(name, _)| accepts(headers, name))
        .find_map(|(name, suffix)| Dist::get(&format!("{file}{suffix}")).map(|f| (f.data, Some(name))))
        .unwrap_or((original.data, None));
    let etag = format!("\"{hash}{}\"", encoding.map(|e| format!("-{e}")).unwrap_or_default());
    let cache = if file.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"));
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Response::new(Body::from(body.into_owned()))
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(file)));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, value);
    }
    if let Some(encoding) = encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_and_protocol_paths_are_reserved_but_lookalike_pages_are_not() {
        for path in ["/api", "/api/v1/nothing", "/loki/api/v1/push", "/metrics", "/healthz"] {
            assert!(is_reserved(path), "{path}");
        }
        for path in ["/", "/system", "/apis", "/metricsboard", "/logs"] {
            assert!(!is_reserved(path), "{path}");
        }
    }

    #[test]
    fn accept_encoding_is_read_by_token_with_refusals() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip, deflate, br;q=0"));
        assert!(accepts(&headers, "gzip"));
        assert!(!accepts(&headers, "br"));
        assert!(!accepts(&HeaderMap::new(), "gzip"));
    }
}
