//! Every kind against the real thing: PostgreSQL, MariaDB and Redis from `.ci/services.sh`, an
//! HTTP server (axum) and a TLS server with generated certificates started here, TCP ports,
//! this host, the state store. Healthy first, then broken in the ways the issue lists.

#![allow(clippy::unwrap_used)]

mod harness;

use std::time::Duration;

use harness::{Harness, SlowServer, closed_port, with_password};
use hubmon_model::HealthStatus::{Degraded, Healthy, Unhealthy};
use serde_json::json;

#[tokio::test]
async fn postgres_is_healthy_then_fails_on_wrong_password_closed_port_and_silent_server() {
    let h = Harness::new().await;
    let url = hubmon_testkit::pg_url();
    let ok = h.run(json!({"name": "pg", "kind": "postgres", "url": url})).await;
    assert_eq!(ok.observed, Healthy, "{}", ok.message);
    assert!(ok.details["server_version"].as_str().unwrap().starts_with(char::is_numeric), "{:?}", ok.details);
    assert!(ok.details["max_connections"].as_i64().unwrap() > 0);
    assert!(ok.latency_ms.unwrap() > 0.0);

    let custom = h
        .run(json!({"name": "pg-query", "kind": "postgres", "url": url, "query": "SELECT count(*) FROM pg_class"}))
        .await;
    assert_eq!(custom.observed, Healthy, "{}", custom.message);
    let bad_query = h
        .run(json!({"name": "pg-bad-query", "kind": "postgres", "url": url, "query": "SELECT * FROM no_such_table"}))
        .await;
    assert_eq!(bad_query.observed, Unhealthy);
    assert!(bad_query.message.contains("no_such_table"), "{}", bad_query.message);

    let wrong = h.run(json!({"name": "pg-wrong", "kind": "postgres", "url": with_password(&url, "wrong")})).await;
    assert_eq!(wrong.observed, Unhealthy);
    assert!(wrong.message.contains("password authentication failed"), "{}", wrong.message);
    assert!(!wrong.message.contains("wrong"), "the password is not echoed: {}", wrong.message);

    let port = closed_port();
    let closed = h
        .run(json!({"name": "pg-closed", "kind": "postgres", "url": format!("postgres://u:p@127.0.0.1:{port}/db")}))
        .await;
    assert_eq!(closed.observed, Unhealthy);
    assert!(closed.message.contains("cannot connect"), "{}", closed.message);

    let silent = SlowServer::start().await;
    let hung = h
        .run(json!({"name": "pg-hung", "kind": "postgres", "url": format!("postgres://u:p@{}/db", silent.address), "interval": "5s", "timeout": "1s"}))
        .await;
    assert_eq!(hung.observed, Unhealthy);
    assert_eq!(hung.message, "no answer within 1s (timeout)");
    let waited = hung.latency_ms.unwrap();
    assert!((1000.0..5000.0).contains(&waited), "cut off at the timeout, not later: {waited} ms");
}

#[tokio::test]
async fn mysql_is_healthy_then_fails_on_wrong_password_and_closed_port() {
    let h = Harness::new().await;
    let url = hubmon_testkit::mysql_url().await;
    let ok = h.run(json!({"name": "db", "kind": "mysql", "url": url})).await;
    assert_eq!(ok.observed, Healthy, "{}", ok.message);
    assert_eq!(ok.details["flavour"], "mariadb", "{:?}", ok.details);
    assert!(ok.details["connections"].as_i64().unwrap() >= 1);
    assert!(ok.message.starts_with("MySQL "), "{}", ok.message);

    let mariadb_scheme = url.replacen("mysql://", "mariadb://", 1);
    let ok = h.run(json!({"name": "db2", "kind": "mysql", "url": mariadb_scheme, "query": "SELECT 1; SELECT 2"})).await;
    assert_eq!(ok.observed, Healthy, "{}", ok.message);

    let wrong = h.run(json!({"name": "db-wrong", "kind": "mysql", "url": with_password(&url, "wrong")})).await;
    assert_eq!(wrong.observed, Unhealthy);
    assert!(wrong.message.contains("Access denied"), "{}", wrong.message);

    let port = closed_port();
    let closed =
        h.run(json!({"name": "db-closed", "kind": "mysql", "url": format!("mysql://u:p@127.0.0.1:{port}/db")})).await;
    assert_eq!(closed.observed, Unhealthy);
    assert!(closed.message.contains("cannot connect"), "{}", closed.message);
}

#[tokio::test]
async fn redis_is_healthy_times_out_while_it_sleeps_and_recovers() {
    let h = Harness::new().await;
    let url = hubmon_testkit::redis_url();
    let definition = json!({"name": "cache", "kind": "redis", "url": url, "interval": "5s", "timeout": "500ms"});
    let ok = h.run(definition.clone()).await;
    assert_eq!(ok.observed, Healthy, "{}", ok.message);
    assert_eq!(ok.details["role"], "master");
    assert!(ok.details["used_memory_bytes"].as_u64().unwrap() > 0);
    assert!(ok.details["connected_clients"].as_u64().unwrap() >= 1);

    // DEBUG SLEEP blocks the whole server; the check must give up at its timeout.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut other = client.get_multiplexed_async_connection().await.unwrap();
    let sleeper = tokio::spawn(async move {
        let reply: redis::RedisResult<String> =
            redis::cmd("DEBUG").arg("SLEEP").arg("1.5").query_async(&mut other).await;
        reply
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = h.id_of("cache");
    let slow = h.checks.run_now(id).await.unwrap().result;
    let slept = sleeper.await.unwrap();
    assert!(
        slept.is_ok(),
        "DEBUG SLEEP was refused ({slept:?}): start Redis with --enable-debug-command local, as .ci/services.sh does"
    );
    assert_eq!(slow.observed, Unhealthy);
    assert_eq!(slow.message, "no answer within 500ms (timeout) (failure 1 of 3 before unhealthy)");
    assert_eq!(slow.status, Healthy, "one failure is damped");
    let again = h.checks.run_now(id).await.unwrap().result;
    assert_eq!(again.observed, Healthy, "{}", again.message);

    let port = closed_port();
    let closed =
        h.run(json!({"name": "cache-closed", "kind": "redis", "url": format!("redis://127.0.0.1:{port}")})).await;
    assert_eq!(closed.observed, Unhealthy);
    assert!(closed.message.contains("cannot connect"), "{}", closed.message);
    let silent = SlowServer::start().await;
    let hung = h
        .run(json!({"name": "cache-hung", "kind": "redis", "url": format!("redis://{}", silent.address), "interval": "5s", "timeout": "700ms"}))
        .await;
    assert_eq!(hung.message, "no answer within 700ms (timeout)");
}

#[tokio::test]
async fn redis_over_tls_is_verified_against_a_private_ca() {
    let h = Harness::new().await;
    let server = harness::TlsRedis::start().await;
    let url = format!("rediss://127.0.0.1:{}", server.port);
    let ca_file = server.ca_file.to_str().unwrap();
    let ok = h.run(json!({"name": "tls-cache", "kind": "redis", "url": url, "ca_file": ca_file})).await;
    assert_eq!(ok.observed, Healthy, "{}", ok.message);
    assert_eq!(ok.details["role"], "master");
    let unknown_ca = h.run(json!({"name": "tls-cache-unverified", "kind": "redis", "url": url})).await;
    assert_eq!(unknown_ca.observed, Unhealthy);
    assert!(unknown_ca.message.to_lowercase().contains("certificate"), "{}", unknown_ca.message);
    let insecure =
        h.run(json!({"name": "tls-cache-insecure", "kind": "redis", "url": format!("{url}/#insecure")})).await;
    assert_eq!(insecure.observed, Healthy, "{}", insecure.message);
    let plain = h.run(json!({"name": "plain-to-tls", "kind": "redis", "url": format!("redis://127.0.0.1:{}", server.port), "interval": "5s", "timeout": "1s"})).await;
    assert_eq!(plain.observed, Unhealthy, "plain text to a TLS port: {}", plain.message);
}

#[tokio::test]
async fn http_checks_status_body_json_latency_and_redirects() {
    let h = Harness::new().await;
    let server = harness::http_server().await;
    let url = |path: &str| format!("http://{server}{path}");

    let ok = h.run(json!({"name": "ok", "kind": "http", "url": url("/ok"), "body_contains": "all good"})).await;
    assert_eq!(ok.observed, Healthy, "{}", ok.message);
    assert_eq!(ok.details["status_code"], 200);
    assert!(ok.details.get("body_excerpt").is_none(), "bodies are not echoed on success");

    let missing = h.run(json!({"name": "missing", "kind": "http", "url": url("/ok"), "body_regex": "^nope"})).await;
    assert_eq!(missing.observed, Unhealthy);
    assert_eq!(missing.message, "the body does not match /^nope/");

    let failing = h.run(json!({"name": "fail", "kind": "http", "url": url("/fail")})).await;
    assert_eq!(failing.observed, Unhealthy);
    assert_eq!(failing.message, "HTTP 500 (expected 2xx)");
    let excerpt = failing.details["body_excerpt"].as_str().unwrap();
    assert!(
        excerpt.starts_with("boom") && !excerpt.contains('\u{1b}') && excerpt.chars().count() <= 201,
        "{excerpt:?}"
    );
    let accepted =
        h.run(json!({"name": "fail-ok", "kind": "http", "url": url("/fail"), "expected_status": [500]})).await;
    assert_eq!(accepted.observed, Healthy);

    let json_ok = h.run(json!({"name": "json", "kind": "http", "url": url("/json"), "json_path": "items.0.name", "json_equals": "a"})).await;
    assert_eq!(json_ok.observed, Healthy, "{}", json_ok.message);
    let json_bad = h.run(json!({"name": "json-bad", "kind": "http", "url": url("/json"), "json_path": "$.status", "json_equals": "down"})).await;
    assert_eq!(json_bad.message, r#"JSON $.status is "up", expected "down""#);

    let slow =
        h.run(json!({"name": "slow", "kind": "http", "url": url("/slow?ms=400"), "degraded_latency": "100ms"})).await;
    assert_eq!(slow.observed, Degraded);
    assert!(
        slow.message.starts_with("slow: ") && slow.message.contains("over the 100ms threshold"),
        "{}",
        slow.message
    );
    let timed_out = h
        .run(json!({"name": "slower", "kind": "http", "url": url("/slow?ms=3000"), "interval": "5s", "timeout": "300ms"}))
        .await;
    assert_eq!(timed_out.message, "no answer within 300ms (timeout)");

    let post = h
        .run(json!({"name": "post", "kind": "http", "method": "POST", "url": url("/echo"), "body": "ping",
                    "headers": {"X-Token": "secret-value-123"}, "body_contains": "ping secret-value-123"}))
        .await;
    assert_eq!(post.observed, Healthy, "{}", post.message);

    let followed = h.run(json!({"name": "redirect", "kind": "http", "url": url("/redirect")})).await;
    assert_eq!(followed.observed, Healthy);
    assert!(followed.details["url"].as_str().unwrap().ends_with("/ok"));
    let not_followed =
        h.run(json!({"name": "no-follow", "kind": "http", "url": url("/redirect"), "follow_redirects": false})).await;
    assert_eq!(not_followed.message, "HTTP 302 (expected 2xx)");
    let metadata = h.run(json!({"name": "metadata-redirect", "kind": "http", "url": url("/redirect-metadata")})).await;
    assert_eq!(metadata.observed, Unhealthy);
    assert!(
        metadata.message.contains("redirect refused") && metadata.message.contains("allow_link_local"),
        "{}",
        metadata.message
    );

    let port = closed_port();
    let closed = h.run(json!({"name": "closed", "kind": "http", "url": format!("http://127.0.0.1:{port}/")})).await;
    assert_eq!(closed.observed, Unhealthy);
    assert!(closed.message.starts_with("request failed"), "{}", closed.message);

    let refused =
        h.create(json!({"name": "metadata", "kind": "http", "url": "http://169.254.169.254/latest/meta-data/"})).await;
    let error = refused.unwrap_err();
    assert_eq!(error.http_status(), 422);
    assert!(error.to_string().contains("link-local"), "{error}");
}

#[tokio::test]
async fn https_checks_verify_certificates_and_warn_before_they_expire() {
    let h = Harness::new().await;
    let tls = harness::TlsServers::start().await;

    let self_signed = h.run(json!({"name": "self-signed", "kind": "http", "url": tls.self_signed_url})).await;
    assert_eq!(self_signed.observed, Unhealthy);
    assert!(self_signed.message.to_lowercase().contains("certificate"), "{}", self_signed.message);

    let unverified = h
        .run(json!({"name": "self-signed-unverified", "kind": "http", "url": tls.self_signed_url, "tls_verify": false}))
        .await;
    assert_eq!(unverified.observed, Degraded, "it expires in 5 days: {}", unverified.message);
    let days = unverified.details["cert_expiry_days"].as_f64().unwrap();
    assert!((4.8..=5.0).contains(&days), "{days}");
    assert!(
        unverified.message.contains("expires in 4.9 days") || unverified.message.contains("expires in 5.0 days"),
        "{}",
        unverified.message
    );

    let trusted = h
        .run(json!({"name": "private-ca", "kind": "http", "url": tls.ca_signed_url, "ca_file": tls.ca_file.to_str().unwrap()}))
        .await;
    assert_eq!(trusted.observed, Healthy, "{}", trusted.message);
    assert!(trusted.details["cert_expiry_days"].as_f64().unwrap() > 50.0);
    let strict = h
        .run(json!({"name": "private-ca-strict", "kind": "http", "url": tls.ca_signed_url, "ca_file": tls.ca_file.to_str().unwrap(), "cert_expiry_days": 90}))
        .await;
    assert_eq!(strict.observed, Degraded, "{}", strict.message);

    let expired = h.run(json!({"name": "expired", "kind": "http", "url": tls.expired_url, "tls_verify": false})).await;
    assert_eq!(expired.observed, Unhealthy);
    assert!(expired.message.contains("expired"), "{}", expired.message);

    let missing_ca = h
        .run(json!({"name": "missing-ca", "kind": "http", "url": tls.ca_signed_url, "ca_file": "/no/such/ca.pem"}))
        .await;
    assert_eq!(missing_ca.observed, Unhealthy);
    assert!(missing_ca.message.contains("cannot read ca_file /no/such/ca.pem"), "{}", missing_ca.message);
}

#[tokio::test]
async fn tcp_system_and_state_store_checks() {
    let h = Harness::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open =
        h.run(json!({"name": "port", "kind": "tcp", "address": listener.local_addr().unwrap().to_string()})).await;
    assert_eq!(open.observed, Healthy, "{}", open.message);
    let port = closed_port();
    let closed = h.run(json!({"name": "closed", "kind": "tcp", "address": format!("127.0.0.1:{port}")})).await;
    assert_eq!(closed.observed, Unhealthy);
    assert!(closed.message.contains("Connection refused"), "{}", closed.message);
    assert!(h.create(json!({"name": "meta", "kind": "tcp", "address": "169.254.169.254:80"})).await.is_err());

    let system = h.run(json!({"name": "host", "kind": "system"})).await;
    assert_ne!(system.observed, hubmon_model::HealthStatus::Unknown);
    for figure in ["cpu_percent", "memory_percent"] {
        let value = system.details[figure].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&value), "{figure} = {value}");
    }
    let always_busy =
        h.run(json!({"name": "host-strict", "kind": "system", "memory_degraded": 0, "memory_unhealthy": 100})).await;
    // Degraded by memory, or unhealthy when this shared machine's CPU is at 90 % or more.
    assert_ne!(always_busy.observed, Healthy, "{}", always_busy.message);
    assert!(always_busy.message.contains("at or above 0 %"), "{}", always_busy.message);

    let store = h.run(json!({"name": "own-store", "kind": "state_store"})).await;
    assert_eq!(store.observed, Healthy, "{}", store.message);
    assert_eq!(store.details["backend"], "sqlite");
    assert!(store.details["pool_max"].as_u64().unwrap() >= 1);
}
