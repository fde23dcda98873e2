//! Extractors whose rejections are [`ApiError`]s, so malformed input gets the API's error shape.

use axum::extract::{FromRequest, FromRequestParts};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// A JSON body. Request types use `deny_unknown_fields`, so a typo is a 422 naming the field.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// The client's address, as the audit log records it (see `http.trust_forwarded_for`).
pub struct ClientAddr(pub String);

impl FromRequestParts<crate::app::AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &crate::app::AppState,
    ) -> Result<Self, Self::Rejection> {
        let trust = app.config.http.trust_forwarded_for;
        Ok(ClientAddr(super::middleware::client_addr(&parts.headers, &parts.extensions, trust)))
    }
}
