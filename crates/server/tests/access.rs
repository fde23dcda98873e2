//! The role matrix: every route, called by every role and by nobody, is allowed or denied
//! exactly as this table says. A route that is not in the table fails the test, so a new route
//! cannot ship without someone deciding who may call it.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use common::{Backend, TestServer};
use reqwest::Method;
use serde_json::Value;

/// (method, route template, required access) for every route hubmon serves.
const EXPECTED: &[(&str, &str, &str)] = &[
    ("GET", "/healthz", "public"),
    ("GET", "/readyz", "public"),
    ("GET", "/metrics", "viewer"),
    ("GET", "/api/openapi.json", "viewer"),
    ("POST", "/api/v1/auth/login", "public"),
    ("POST", "/api/v1/auth/logout", "authenticated"),
    ("GET", "/api/v1/auth/me", "authenticated"),
    ("POST", "/api/v1/auth/password", "authenticated"),
    ("GET", "/api/v1/users", "admin"),
    ("POST", "/api/v1/users", "admin"),
    ("GET", "/api/v1/users/{id}", "admin"),
    ("PATCH", "/api/v1/users/{id}", "admin"),
    ("DELETE", "/api/v1/users/{id}", "admin"),
    ("GET", "/api/v1/tokens", "admin"),
    ("POST", "/api/v1/tokens", "admin"),
    ("DELETE", "/api/v1/tokens/{id}", "admin"),
    ("GET", "/api/v1/audit", "admin"),
    ("POST", "/api/v1/write", "ingest"),
    ("POST", "/api/v1/monitoring/metrics", "ingest"),
    ("GET", "/api/v1/series", "viewer"),
    ("GET", "/api/v1/labels", "viewer"),
    ("GET", "/api/v1/label/{name}/values", "viewer"),
    ("GET", "/api/v1/metadata", "viewer"),
    ("GET", "/api/v1/query", "viewer"),
    ("POST", "/api/v1/query", "viewer"),
    ("GET", "/api/v1/query_range", "viewer"),
    ("POST", "/api/v1/query_range", "viewer"),
    ("GET", "/api/v1/status/buildinfo", "viewer"),
    ("GET", "/api/v1/monitoring/alerts", "viewer"),
    ("POST", "/api/v1/monitoring/alerts/rules", "editor"),
    ("GET", "/api/v1/alerts/rules", "viewer"),
    ("GET", "/api/v1/alerts/rules/export", "viewer"),
    ("GET", "/api/v1/rules/{id}", "viewer"),
    ("PUT", "/api/v1/rules/{id}", "editor"),
    ("DELETE", "/api/v1/rules/{id}", "editor"),
    ("POST", "/api/v1/alerts/{fingerprint}/ack", "editor"),
    ("GET", "/api/v1/silences", "viewer"),
    ("POST", "/api/v1/silences", "editor"),
    ("DELETE", "/api/v1/silences/{id}", "editor"),
    ("GET", "/api/v1/rules", "viewer"),
    ("GET", "/api/v1/alerts", "viewer"),
    ("POST", "/api/v2/alerts", "ingest"),
    ("GET", "/api/v2/alerts", "viewer"),
    ("GET", "/api/v1/format_query", "viewer"),
    ("POST", "/api/v1/format_query", "viewer"),
    ("GET", "/api/v1/monitoring/metrics", "viewer"),
    ("GET", "/api/v1/monitoring/summary", "viewer"),
    ("GET", "/api/v1/monitoring/stream", "viewer"),
    // Logs (issue 5).
    ("POST", "/api/v1/logs", "ingest"),
    ("GET", "/api/v1/logs/search", "viewer"),
    ("GET", "/api/v1/monitoring/logs", "viewer"),
    ("GET", "/api/v1/logs/stats", "viewer"),
    ("GET", "/api/v1/logs/tail", "viewer"),
    ("POST", "/loki/api/v1/push", "ingest"),
    ("GET", "/loki/api/v1/query", "viewer"),
    ("GET", "/loki/api/v1/query_range", "viewer"),
    ("GET", "/loki/api/v1/labels", "viewer"),
    ("GET", "/loki/api/v1/label/{name}/values", "viewer"),
    ("GET", "/loki/api/v1/series", "viewer"),
    ("GET", "/loki/api/v1/index/stats", "viewer"),
    ("GET", "/loki/api/v1/tail", "viewer"),
    // Notifications (issue 7).
    ("GET", "/api/v1/channels", "admin"),
    ("POST", "/api/v1/channels", "admin"),
    ("GET", "/api/v1/channels/{id}", "admin"),
    ("PUT", "/api/v1/channels/{id}", "admin"),
    ("DELETE", "/api/v1/channels/{id}", "admin"),
    ("POST", "/api/v1/channels/{id}/test", "admin"),
    ("POST", "/api/v1/monitoring/test-notification", "admin"),
    ("GET", "/api/v1/notifications", "viewer"),
    ("GET", "/api/v1/notifications/{id}", "viewer"),
    ("POST", "/api/v1/notifications/{id}/retry", "editor"),
    ("GET", "/api/v1/inbox", "authenticated"),
    ("GET", "/api/v1/inbox/unread-count", "authenticated"),
    ("POST", "/api/v1/inbox/{id}/read", "authenticated"),
    ("POST", "/api/v1/inbox/read-all", "authenticated"),
    ("GET", "/api/v1/inbox/stream", "authenticated"),
    ("GET", "/api/v1/checks", "viewer"),
    ("POST", "/api/v1/checks", "editor"),
    ("GET", "/api/v1/checks/{id}", "viewer"),
    ("PUT", "/api/v1/checks/{id}", "editor"),
    ("DELETE", "/api/v1/checks/{id}", "editor"),
    ("POST", "/api/v1/checks/{id}/run", "editor"),
    ("GET", "/api/v1/checks/{id}/history", "viewer"),
    ("GET", "/api/v1/monitoring/health", "viewer"),
    ("GET", "/status.json", "public"),
    ("GET", "/status", "public"),
];

const ROLES: [&str; 4] = ["viewer", "editor", "admin", "ingest"];

fn permits(role: &str, access: &str) -> bool {
    match access {
        "public" | "authenticated" => true,
        "viewer" => matches!(role, "viewer" | "editor" | "admin"),
        "editor" => matches!(role, "editor" | "admin"),
        "admin" => role == "admin",
        "ingest" => matches!(role, "ingest" | "editor" | "admin"),
        other => panic!("unknown access {other}"),
    }
}

on_both_backends!(every_route_allows_and_denies_each_role_as_declared);

async fn every_route_allows_and_denies_each_role_as_declared(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.auth.login_attempts_per_minute = 1000).await;
    let mut tokens = Vec::new();
    for role in ROLES {
        tokens.push((role, server.token_for_role(role).await));
    }
    let admin = &tokens[2].1;

    // The served routes, from the OpenAPI document generated from the code.
    let openapi: Value =
        server.with_token(Method::GET, "/api/openapi.json", admin).send().await.unwrap().json().await.unwrap();
    let mut served = BTreeSet::new();
    for (path, item) in openapi["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            let documented = operation["x-hubmon-access"].as_str().unwrap_or("(none)").to_string();
            served.insert((method, path.clone(), documented));
        }
    }
    let expected: BTreeSet<_> =
        EXPECTED.iter().map(|(m, p, a)| (m.to_string(), p.to_string(), a.to_string())).collect();
    let unexpected: Vec<_> = served.difference(&expected).collect();
    let missing: Vec<_> = expected.difference(&served).collect();
    assert!(
        unexpected.is_empty(),
        "routes served but not in this test's matrix (add them to EXPECTED): {unexpected:?}"
    );
    assert!(missing.is_empty(), "routes in the matrix but not served: {missing:?}");

    let mut failures = Vec::new();
    for (method, template, access) in EXPECTED {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let path = template.replace("{id}", "999999").replace("{name}", "job");
        let send = |token: Option<&str>| {
            let client = reqwest::Client::new();
            let mut request = client.request(method.clone(), server.url(&path));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if matches!(method, Method::POST | Method::PATCH | Method::PUT) {
                request = request.header("content-type", "application/json").body("{}");
            }
            request.send()
        };
        let status = send(None).await.unwrap().status().as_u16();
        let anonymous_ok = *access == "public";
        if anonymous_ok != !matches!(status, 401 | 403) || (!anonymous_ok && status != 401) {
            failures.push(format!("{method} {template} as nobody: got {status}"));
        }
        for (role, token) in &tokens {
            let status = send(Some(token)).await.unwrap().status().as_u16();
            let allowed = permits(role, access);
            let denied_as_expected = !allowed && status == 403;
            let allowed_as_expected = allowed && !matches!(status, 401 | 403);
            if !(denied_as_expected || allowed_as_expected) {
                failures.push(format!(
                    "{method} {template} as {role}: got {status}, expected {}",
                    if allowed { "allowed" } else { "403" }
                ));
            }
        }
    }
    assert!(failures.is_empty(), "role matrix violations:\n{}", failures.join("\n"));
    server.stop().await;
}
