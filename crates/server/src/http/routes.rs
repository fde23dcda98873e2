//! The route table: every route is registered together with the [`Access`] it requires, and
//! that one declaration drives authorization, the OpenAPI document and the audit action name.
//!
//! There is no way to add an API route without choosing its access, and the authorization
//! middleware refuses any route missing from the table (fail closed).

use std::collections::HashMap;

use axum::http::Method;
use hubmon_model::Access;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::SecurityRequirement;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

use crate::app::AppState;

/// What a route requires and how it is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub access: Access,
    /// The OpenAPI operation id, also the `action` of audit entries.
    pub operation: String,
}

/// Route template (`/api/v1/users/{id}`) and method to what the route requires.
#[derive(Debug, Clone, Default)]
pub struct RouteTable(HashMap<(Method, String), RouteInfo>);

impl RouteTable {
    pub fn get(&self, method: &Method, template: &str) -> Option<&RouteInfo> {
        self.0.get(&(method.clone(), template.to_string()))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&(Method, String), &RouteInfo)> {
        self.0.iter()
    }
}

/// Collects routes, their OpenAPI operations and their access rules.
pub struct ApiRouter {
    router: OpenApiRouter<AppState>,
    table: RouteTable,
}

impl ApiRouter {
    pub fn new(openapi: utoipa::openapi::OpenApi) -> Self {
        Self { router: OpenApiRouter::with_openapi(openapi), table: RouteTable::default() }
    }

    /// Adds the handlers of one path (from `utoipa_axum::routes!`), all requiring `access`.
    pub fn add(mut self, access: Access, (schemas, mut paths, handlers): UtoipaMethodRouter<AppState>) -> Self {
        for (path, item) in paths.paths.iter_mut() {
            for (method, operation) in operations_mut(item) {
                let name = operation.operation_id.clone().unwrap_or_else(|| format!("{method} {path}"));
                document_access(operation, access);
                let info = RouteInfo { access, operation: name };
                if self.table.0.insert((method.clone(), path.clone()), info).is_some() {
                    // Two registrations of one route would make access ambiguous.
                    panic!("route {method} {path} registered twice");
                }
            }
        }
        self.router = self.router.routes((schemas, paths, handlers));
        self
    }

    pub fn finish(self) -> (axum::Router<AppState>, utoipa::openapi::OpenApi, RouteTable) {
        let (router, openapi) = self.router.split_for_parts();
        (router, openapi, self.table)
    }
}

fn operations_mut(item: &mut PathItem) -> Vec<(Method, &mut Operation)> {
    [
        (Method::GET, item.get.as_mut()),
        (Method::POST, item.post.as_mut()),
        (Method::PUT, item.put.as_mut()),
        (Method::PATCH, item.patch.as_mut()),
        (Method::DELETE, item.delete.as_mut()),
        (Method::HEAD, item.head.as_mut()),
        (Method::OPTIONS, item.options.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.map(|op| (method, op)))
    .collect()
}

/// Writes the access rule into the operation: security schemes and a line in its description.
fn document_access(operation: &mut Operation, access: Access) {
    let note = match access {
        Access::Public => "Open to everyone; no authentication.".to_string(),
        Access::Authenticated => "Requires authentication (any role).".to_string(),
        Access::Ingest => "Requires role `ingest`, `editor` or `admin`.".to_string(),
        role => format!("Requires role `{}` or higher.", role.as_str()),
    };
    operation.description = Some(match operation.description.take() {
        Some(text) if !text.is_empty() => format!("{text}\n\n{note}"),
        _ => note,
    });
    operation.security = Some(match access {
        Access::Public => vec![SecurityRequirement::default()],
        _ => {
            let scope = [access.as_str()];
            vec![SecurityRequirement::new("bearer", scope), SecurityRequirement::new("session", scope)]
        }
    });
    operation
        .extensions
        .get_or_insert_with(Default::default)
        .insert("x-hubmon-access".to_string(), serde_json::Value::String(access.as_str().to_string()));
}
