//! The HTTP API's behaviour against a real server: sessions and CSRF, tokens, users, the audit
//! log, errors, limits, request ids and metrics. Each test runs on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{ADMIN_PASSWORD, Backend, TestServer, body};
use reqwest::{Client, Method};
use serde_json::{Value, json};

on_both_backends!(
    login_sets_a_strict_httponly_session_and_mutations_need_the_csrf_token,
    wrong_passwords_are_refused_and_logins_are_rate_limited,
    tokens_authenticate_until_revoked_or_expired,
    users_are_managed_and_the_last_admin_is_kept,
    audit_log_records_every_change_with_secrets_masked,
    audit_log_is_filterable_pageable_and_read_only,
    errors_have_one_json_shape_and_the_right_status,
    request_ids_are_echoed_and_metrics_count_routes,
    a_password_change_ends_other_sessions,
);

async fn login(server: &TestServer, client: &Client, password: &str) -> (u16, Value) {
    body(
        client
            .post(server.url("/api/v1/auth/login"))
            .json(&json!({"username": "admin", "password": password}))
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn login_sets_a_strict_httponly_session_and_mutations_need_the_csrf_token(backend: Backend) {
    let server = TestServer::start(backend).await;
    let response = server
        .request(Method::POST, "/api/v1/auth/login")
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cookies: Vec<String> =
        response.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    let session = cookies.iter().find(|c| c.starts_with("hubmon_session=")).unwrap();
    assert!(session.contains("HttpOnly"), "{session}");
    assert!(session.contains("SameSite=Strict"), "{session}");
    let csrf_cookie = cookies.iter().find(|c| c.starts_with("hubmon_csrf=")).unwrap();
    assert!(!csrf_cookie.contains("HttpOnly"), "the dashboard must be able to read it: {csrf_cookie}");
    let (_, login) = body(response).await;
    assert_eq!(login["user"]["username"], "admin");
    assert!(login["user"].get("password_hash").is_none());
    let csrf = login["csrf_token"].as_str().unwrap();

    let (status, me) = body(server.request(Method::GET, "/api/v1/auth/me").send().await.unwrap()).await;
    assert_eq!((status, me["kind"].as_str(), me["role"].as_str()), (200, Some("user"), Some("admin")));

    let new_user = json!({"username": "carol", "password": "carol-password", "role": "viewer"});
    let (status, error) =
        body(server.request(Method::POST, "/api/v1/users").json(&new_user).send().await.unwrap()).await;
    assert_eq!(status, 403, "no CSRF header: {error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("CSRF"));
    let (status, _) = body(
        server
            .request(Method::POST, "/api/v1/users")
            .header("x-csrf-token", "wrong")
            .json(&new_user)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403, "wrong CSRF header");
    let (status, created) = body(
        server
            .request(Method::POST, "/api/v1/users")
            .header("x-csrf-token", csrf)
            .json(&new_user)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{created}");

    let (status, _) =
        body(server.request(Method::POST, "/api/v1/auth/logout").header("x-csrf-token", csrf).send().await.unwrap())
            .await;
    assert_eq!(status, 204);
    let (status, _) = body(server.request(Method::GET, "/api/v1/auth/me").send().await.unwrap()).await;
    assert_eq!(status, 401, "logged out");
    server.stop().await;
}

async fn wrong_passwords_are_refused_and_logins_are_rate_limited(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.auth.login_attempts_per_minute = 3).await;
    let client = Client::new();
    let (status, error) = login(&server, &client, "not the password").await;
    assert_eq!(status, 401);
    assert_eq!(error["error"]["code"], "unauthorized");
    let (status, error) = body(
        client
            .post(server.url("/api/v1/auth/login"))
            .json(&json!({"username": "nobody", "password": "whatever"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(error["error"]["message"], "wrong username or password", "unknown users look the same");
    login(&server, &client, "still wrong").await;
    let response = client
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429, "the fourth attempt within a minute");
    assert!(response.headers().get("retry-after").is_some());
    server.stop().await;
}

async fn tokens_authenticate_until_revoked_or_expired(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_token().await;
    let create = |body: Value| server.with_token(Method::POST, "/api/v1/tokens", &admin).json(&body).send();

    let (status, created) = body(create(json!({"name": "grafana", "role": "viewer"})).await.unwrap()).await;
    assert_eq!(status, 201, "{created}");
    let token = created["token"].as_str().unwrap().to_string();
    let prefix = created["prefix"].as_str().unwrap();
    assert!(token.starts_with(prefix) && prefix.starts_with("hm_"));
    let (status, me) = body(server.with_token(Method::GET, "/api/v1/auth/me", &token).send().await.unwrap()).await;
    assert_eq!((status, me["role"].as_str()), (200, Some("viewer")));

    let (_, listed) = body(server.with_token(Method::GET, "/api/v1/tokens", &admin).send().await.unwrap()).await;
    let listed_text = listed.to_string();
    assert!(!listed_text.contains(&token), "the secret is shown only once");
    assert!(listed_text.contains(prefix));

    let id = created["id"].as_i64().unwrap();
    let (status, _) =
        body(server.with_token(Method::DELETE, &format!("/api/v1/tokens/{id}"), &admin).send().await.unwrap()).await;
    assert_eq!(status, 204);
    let (status, error) = body(server.with_token(Method::GET, "/api/v1/auth/me", &token).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(error["error"]["message"], "this API token was revoked");

    let (_, short) = body(create(json!({"name": "short", "role": "ingest", "expires_in": "1s"})).await.unwrap()).await;
    let short = short["token"].as_str().unwrap().to_string();
    assert_eq!(server.with_token(Method::GET, "/api/v1/auth/me", &short).send().await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, error) = body(server.with_token(Method::GET, "/api/v1/auth/me", &short).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert!(error["error"]["message"].as_str().unwrap().contains("expired"), "{error}");

    let forged = format!("{}x", &token[..token.len() - 1]);
    assert_eq!(server.with_token(Method::GET, "/api/v1/auth/me", &forged).send().await.unwrap().status(), 401);
    assert_eq!(server.with_token(Method::GET, "/api/v1/auth/me", "garbage").send().await.unwrap().status(), 401);
    let (status, error) = body(create(json!({"name": "bad", "role": "root"})).await.unwrap()).await;
    assert_eq!(status, 422, "{error}");
    let (status, error) =
        body(create(json!({"name": "bad", "role": "viewer", "expires_in": "soon"})).await.unwrap()).await;
    assert_eq!(status, 422, "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("expires_in"), "{error}");
    server.stop().await;
}

async fn users_are_managed_and_the_last_admin_is_kept(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_token().await;
    let call = |method: Method, path: &str, payload: Option<Value>| {
        let mut request = server.with_token(method, path, &admin);
        if let Some(payload) = payload {
            request = request.json(&payload);
        }
        async move { body(request.send().await.unwrap()).await }
    };
    let (status, dave) = call(
        Method::POST,
        "/api/v1/users",
        Some(json!({"username": "dave", "password": "dave-password", "role": "editor"})),
    )
    .await;
    assert_eq!(status, 201, "{dave}");
    let id = dave["id"].as_i64().unwrap();
    let (status, _) = call(
        Method::POST,
        "/api/v1/users",
        Some(json!({"username": "dave", "password": "other-password", "role": "viewer"})),
    )
    .await;
    assert_eq!(status, 409, "duplicate username");
    let (status, error) =
        call(Method::POST, "/api/v1/users", Some(json!({"username": "erin", "password": "short", "role": "viewer"})))
            .await;
    assert_eq!(status, 422);
    assert!(error["error"]["message"].as_str().unwrap().contains("at least 8"), "{error}");
    let (status, error) = call(
        Method::POST,
        "/api/v1/users",
        Some(json!({"username": "erin", "password": "long enough", "role": "viewer", "admin": true})),
    )
    .await;
    assert_eq!(status, 422);
    assert!(error["error"]["message"].as_str().unwrap().contains("unknown field `admin`"), "{error}");

    let (status, updated) = call(Method::PATCH, &format!("/api/v1/users/{id}"), Some(json!({"role": "viewer"}))).await;
    assert_eq!((status, updated["role"].as_str()), (200, Some("viewer")));
    let (status, fetched) = call(Method::GET, &format!("/api/v1/users/{id}"), None).await;
    assert_eq!((status, fetched["username"].as_str()), (200, Some("dave")));

    // The bootstrap admin is the only admin: it can be neither demoted, disabled nor deleted.
    let (_, users) = call(Method::GET, "/api/v1/users", None).await;
    let admin_id = users.as_array().unwrap().iter().find(|u| u["username"] == "admin").unwrap()["id"].as_i64().unwrap();
    for (method, payload) in [
        (Method::PATCH, Some(json!({"role": "editor"}))),
        (Method::PATCH, Some(json!({"disabled": true}))),
        (Method::DELETE, None),
    ] {
        let (status, error) = call(method.clone(), &format!("/api/v1/users/{admin_id}"), payload).await;
        assert_eq!(status, 409, "{method}: {error}");
    }
    let (status, _) = call(Method::DELETE, &format!("/api/v1/users/{id}"), None).await;
    assert_eq!(status, 204);
    let (status, _) = call(Method::GET, &format!("/api/v1/users/{id}"), None).await;
    assert_eq!(status, 404);
    let (status, _) = call(Method::GET, "/api/v1/users/not-a-number", None).await;
    assert_eq!(status, 400);
    server.stop().await;
}

async fn audit_log_records_every_change_with_secrets_masked(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_token().await;
    let viewer = server.token_for_role("viewer").await;
    server
        .with_token(Method::POST, "/api/v1/users", &admin)
        .header("x-request-id", "req-audit-1")
        .json(&json!({"username": "frank", "password": "frank-secret-pw", "role": "viewer"}))
        .send()
        .await
        .unwrap();
    // A denied attempt is recorded too.
    let denied = server
        .with_token(Method::POST, "/api/v1/tokens", &viewer)
        .json(&json!({"name": "x", "role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);
    // Reads are not.
    server.with_token(Method::GET, "/api/v1/users", &admin).send().await.unwrap();

    let (status, page) = body(server.with_token(Method::GET, "/api/v1/audit", &admin).send().await.unwrap()).await;
    assert_eq!(status, 200);
    let entries = page["entries"].as_array().unwrap();
    let created = entries.iter().find(|e| e["action"] == "create_user").unwrap();
    assert_eq!(created["actor"].as_str().unwrap(), "token:admin token#1");
    assert_eq!(created["actor_role"], "admin");
    assert_eq!(created["outcome"], "success");
    assert_eq!(created["status"], 201);
    assert_eq!(created["request_id"], "req-audit-1");
    assert_eq!(created["client_addr"], "127.0.0.1");
    assert!(created["target"].as_str().unwrap().starts_with("user:"));
    assert_eq!(created["summary"]["username"], "frank");
    assert_eq!(created["summary"]["password"], "***");
    assert!(!page.to_string().contains("frank-secret-pw"), "no secret reaches the audit log");
    let refused = entries.iter().find(|e| e["action"] == "create_token" && e["outcome"] == "denied").unwrap();
    assert_eq!(refused["status"], 403);
    assert_eq!(refused["actor_role"], "viewer");
    assert!(entries.iter().all(|e| e["action"] != "list_users"));
    // The login that minted the admin token was recorded, without its password.
    let logins: Vec<_> = entries.iter().filter(|e| e["action"] == "login").collect();
    assert!(!logins.is_empty());
    assert_eq!(logins[0]["summary"]["password"], "***");
    assert_eq!(logins[0]["actor"], "admin");
    server.stop().await;
}

async fn audit_log_is_filterable_pageable_and_read_only(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_token().await;
    for i in 0..5 {
        server
            .with_token(Method::POST, "/api/v1/tokens", &admin)
            .json(&json!({"name": format!("t{i}"), "role": "ingest"}))
            .send()
            .await
            .unwrap();
    }
    let get = |query: &str| {
        let request = server.with_token(Method::GET, &format!("/api/v1/audit{query}"), &admin);
        async move { body(request.send().await.unwrap()).await }
    };
    let (_, first) = get("?action=create_token&limit=3").await;
    assert_eq!(first["entries"].as_array().unwrap().len(), 3);
    let cursor = first["next_cursor"].as_i64().unwrap();
    let (_, second) = get(&format!("?action=create_token&limit=3&cursor={cursor}")).await;
    // Five made here, plus the one the admin session made for `admin_token`.
    assert_eq!(second["entries"].as_array().unwrap().len(), 3);
    let (_, third) = get(&format!("?action=create_token&limit=3&cursor={}", second["next_cursor"])).await;
    assert!(third["entries"].as_array().unwrap().is_empty());
    assert!(third["next_cursor"].is_null());

    let (_, window) = get("?since=2000-01-01T00:00:00Z&until=2000-01-02T00:00:00Z").await;
    assert!(window["entries"].as_array().unwrap().is_empty());
    let (_, recent) = get("?since=0&outcome=success").await;
    assert!(!recent["entries"].as_array().unwrap().is_empty());
    for bad in ["?limit=0", "?limit=5000", "?outcome=maybe", "?since=yesterday", "?colour=blue"] {
        let (status, error) = get(bad).await;
        assert_eq!(status, 400, "{bad}: {error}");
    }
    for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        let response = server.with_token(method.clone(), "/api/v1/audit", &admin).send().await.unwrap();
        assert_eq!(response.status(), 405, "{method} /api/v1/audit");
    }
    server.stop().await;
}

async fn errors_have_one_json_shape_and_the_right_status(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.http.max_body_bytes = 64 * 1024).await;
    let admin = server.admin_token().await;
    let post = |path: &str, content_type: &str, payload: Vec<u8>| {
        let request = server.with_token(Method::POST, path, &admin).header("content-type", content_type).body(payload);
        async move { body(request.send().await.unwrap()).await }
    };
    let cases: Vec<(u16, &str, (u16, Value))> = vec![
        (400, "bad_request", post("/api/v1/users", "application/json", b"{\"username\":".to_vec()).await),
        (415, "unsupported_media_type", post("/api/v1/users", "text/plain", b"{}".to_vec()).await),
        (422, "validation_failed", post("/api/v1/users", "application/json", br#"{"username":5}"#.to_vec()).await),
        (413, "payload_too_large", post("/api/v1/users", "application/json", vec![b' '; 100 * 1024]).await),
        (404, "not_found", body(server.with_token(Method::GET, "/api/v1/nothing", &admin).send().await.unwrap()).await),
        (
            405,
            "method_not_allowed",
            body(server.with_token(Method::DELETE, "/api/v1/users", &admin).send().await.unwrap()).await,
        ),
        (401, "unauthorized", body(Client::new().get(server.url("/api/v1/users")).send().await.unwrap()).await),
    ];
    for (expected_status, expected_code, (status, error)) in cases {
        assert_eq!(status, expected_status, "{error}");
        assert_eq!(error["error"]["code"], expected_code, "{error}");
        assert!(!error["error"]["message"].as_str().unwrap_or("").is_empty(), "{error}");
    }
    // The server is still healthy and nothing was created by the bad requests.
    let (_, users) = body(server.with_token(Method::GET, "/api/v1/users", &admin).send().await.unwrap()).await;
    assert_eq!(users.as_array().unwrap().len(), 1);
    server.stop().await;
}

async fn request_ids_are_echoed_and_metrics_count_routes(backend: Backend) {
    let server = TestServer::start(backend).await;
    let response = Client::new().get(server.url("/healthz")).header("x-request-id", "abc-123").send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(response.headers()["referrer-policy"], "no-referrer");
    assert!(response.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'self'"));
    let generated = Client::new().get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(generated.headers()["x-request-id"].len(), 36, "a UUID when none was sent");

    let admin = server.admin_token().await;
    server.with_token(Method::GET, "/api/v1/users/424242", &admin).send().await.unwrap();
    let metrics = server.with_token(Method::GET, "/metrics", &admin).send().await.unwrap().text().await.unwrap();
    for expected in [
        r#"http_requests_total{method="GET",route="/healthz",status="200"} 2"#,
        r#"http_requests_total{method="GET",route="/api/v1/users/{id}",status="404"} 1"#,
        r#"http_request_errors_total{method="GET",route="/api/v1/users/{id}",class="4xx"} 1"#,
        r#"http_request_duration_seconds_count{method="GET",route="/healthz"} 2"#,
        "process_resident_memory_bytes",
    ] {
        assert!(metrics.contains(expected), "missing {expected} in\n{metrics}");
    }
    let (status, ready) = body(Client::new().get(server.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(
        ready["state_store"],
        match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    );
    server.stop().await;
}

async fn a_password_change_ends_other_sessions(backend: Backend) {
    let server = TestServer::start(backend).await;
    let first = Client::builder().cookie_store(true).build().unwrap();
    let second = Client::builder().cookie_store(true).build().unwrap();
    let (_, login1) = login(&server, &first, ADMIN_PASSWORD).await;
    login(&server, &second, ADMIN_PASSWORD).await;
    let change = |current: &str, new: &str| {
        first
            .post(server.url("/api/v1/auth/password"))
            .header("x-csrf-token", login1["csrf_token"].as_str().unwrap())
            .json(&json!({"current_password": current, "new_password": new}))
            .send()
    };
    assert_eq!(change("wrong-current", "new-password-1").await.unwrap().status(), 401);
    assert_eq!(change(ADMIN_PASSWORD, "short").await.unwrap().status(), 422);
    assert_eq!(change(ADMIN_PASSWORD, "new-password-1").await.unwrap().status(), 204);
    assert_eq!(second.get(server.url("/api/v1/auth/me")).send().await.unwrap().status(), 401);
    assert_eq!(login(&server, &Client::new(), ADMIN_PASSWORD).await.0, 401);
    assert_eq!(login(&server, &Client::new(), "new-password-1").await.0, 200);
    server.stop().await;
}
