//! Notifications over HTTP: channel CRUD with secrets sealed at rest and masked in responses
//! and the audit log, validation errors naming the field, test sends, history with attempts,
//! manual retry, the in-app inbox, and `kill -9` of the real binary with sends in flight.

#![allow(clippy::unwrap_used, clippy::zombie_processes)]

mod common;
#[path = "../../notify/tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use common::{Backend, TestServer, body};
use reqwest::Method;
use serde_json::{Value, json};
use support::{Receiver, Reply};

const SECRET: &str = "whsec-do-not-leak-4242";
const URL_TOKEN: &str = "tok-do-not-leak-9191";

async fn call(server: &TestServer, token: &str, method: Method, path: &str, payload: Option<Value>) -> (u16, Value) {
    let mut request = server.with_token(method, path, token);
    if let Some(payload) = payload {
        request = request.json(&payload);
    }
    body(request.send().await.unwrap()).await
}

fn webhook(name: &str, receiver: &Receiver) -> Value {
    json!({
        "name": name,
        "kind": "webhook",
        "config": {"webhook_url": receiver.url(&format!("/hook?token={URL_TOKEN}")), "secret": SECRET},
    })
}

async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

on_both_backends!(channels_keep_secrets_sealed_masked_and_out_of_the_audit_log, test_sends_history_and_retry);

async fn channels_keep_secrets_sealed_masked_and_out_of_the_audit_log(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_token().await;
    let receiver = Receiver::start("ok").await;

    let (status, created) =
        call(&server, &admin, Method::POST, "/api/v1/channels", Some(webhook("ops", &receiver))).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["kind"], "webhook");
    assert_eq!(created["enabled"], true);
    let shown = created.to_string();
    assert!(!shown.contains(SECRET) && !shown.contains(URL_TOKEN), "{shown}");
    assert_eq!(created["config"]["secret"], "whse••••••");

    let (status, listed) = call(&server, &admin, Method::GET, "/api/v1/channels", None).await;
    assert_eq!(status, 200);
    assert!(!listed.to_string().contains(SECRET));

    // An update that sends the masked values back keeps the secrets.
    let mut update = json!({"name": "ops-renamed", "kind": "webhook", "config": created["config"].clone()});
    update["config"]["headers"] = json!({"X-Team": "ops"});
    let (status, updated) = call(&server, &admin, Method::PUT, &format!("/api/v1/channels/{id}"), Some(update)).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["name"], "ops-renamed");
    let (status, report) =
        call(&server, &admin, Method::POST, &format!("/api/v1/channels/{id}/test"), Some(json!({}))).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["delivered"], true, "{report}");
    let request = &receiver.requests()[0];
    assert_eq!(request.query, format!("token={URL_TOKEN}"));
    assert_eq!(request.header("x-team").as_deref(), Some("ops"));
    let signature = request.header("x-hubmon-signature").unwrap();
    let (t, v1) = signature.split_once(',').unwrap();
    let mut signed = format!("{}.", t.trim_start_matches("t=")).into_bytes();
    signed.extend_from_slice(&request.body);
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&signed);
    assert_eq!(v1.trim_start_matches("v1="), hex::encode(mac.finalize().into_bytes()), "signed with the kept secret");

    let (status, audit) = call(&server, &admin, Method::GET, "/api/v1/audit?action=create_channel", None).await;
    assert_eq!(status, 200);
    assert_eq!(audit["entries"].as_array().unwrap().len(), 1, "{audit}");
    assert_eq!(audit["entries"][0]["target"], format!("channel:{id}"));
    let (_, everything) = call(&server, &admin, Method::GET, "/api/v1/audit?limit=1000", None).await;
    let text = everything.to_string();
    assert!(!text.contains(SECRET) && !text.contains(URL_TOKEN), "the audit log leaks a secret: {text}");

    let (status, _) = call(&server, &admin, Method::DELETE, &format!("/api/v1/channels/{id}"), None).await;
    assert_eq!(status, 204);
    let (status, _) = call(&server, &admin, Method::GET, &format!("/api/v1/channels/{id}"), None).await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test]
async fn secrets_are_sealed_in_the_database_files() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_path_buf();
    let server = TestServer::start_with(Backend::Sqlite, |config| config.data_dir = data_dir.clone()).await;
    let admin = server.admin_token().await;
    let receiver = Receiver::start("ok").await;
    let (status, _) = call(&server, &admin, Method::POST, "/api/v1/channels", Some(webhook("ops", &receiver))).await;
    assert_eq!(status, 201);
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&data_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            for needle in [SECRET, URL_TOKEN] {
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    found.push(format!("{needle} in {}", path.display()));
                }
            }
        }
    }
    assert!(found.is_empty(), "plain secrets at rest: {found:?}");
    assert!(data_dir.join("secret.key").exists(), "a key file is generated when HUBMON_SECRET_KEY is unset");
    server.stop().await;
}

#[tokio::test]
async fn bad_channels_are_refused_naming_the_field() {
    let server = TestServer::start(Backend::Sqlite).await;
    let admin = server.admin_token().await;
    let cases = [
        (json!({"name": "x", "kind": "pager", "config": {}}), 422, "unknown channel kind \"pager\""),
        (json!({"name": "x", "kind": "slack", "config": {"webhook_url": "not a url"}}), 422, "config.webhook_url"),
        (json!({"name": "x", "kind": "slack", "config": {}}), 422, "config.webhook_url: missing field"),
        (json!({"name": "x", "kind": "telegram", "config": {"chat_id": "1"}}), 422, "config.bot_token"),
        (
            json!({"name": "x", "kind": "slack", "config": {"webhook_url": "https://h/x", "body_template": "{% if %}"}}),
            422,
            "config.body_template",
        ),
        (
            json!({"name": "x", "kind": "email", "config": {"smtp_host": "m", "from": "a@b.c", "to": ["x@y.z\r\nBcc: e@vil.test"]}}),
            422,
            "config.to",
        ),
        (
            json!({"name": "x", "kind": "webhook", "config": {"webhook_url": "http://h/", "color": "red"}}),
            422,
            "config.color",
        ),
        (json!({"name": "", "kind": "in_app", "config": {}}), 422, "name:"),
        (json!({"kind": "in_app", "config": {}}), 422, "name"),
    ];
    for (payload, expected_status, expected_text) in cases {
        let (status, answer) = call(&server, &admin, Method::POST, "/api/v1/channels", Some(payload.clone())).await;
        assert_eq!(status, expected_status, "{payload} → {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(expected_text), "{payload} → {message:?}, expected {expected_text:?}");
    }
    let ok = json!({"name": "inbox", "kind": "in_app", "config": {}});
    assert_eq!(call(&server, &admin, Method::POST, "/api/v1/channels", Some(ok.clone())).await.0, 201);
    let (status, answer) = call(&server, &admin, Method::POST, "/api/v1/channels", Some(ok)).await;
    assert_eq!(status, 409, "{answer}");
    server.stop().await;
}

async fn test_sends_history_and_retry(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_token().await;
    let receiver = Receiver::start("ok").await;
    let (_, created) = call(&server, &admin, Method::POST, "/api/v1/channels", Some(webhook("ops", &receiver))).await;
    let id = created["id"].as_i64().unwrap();

    // The product summary's endpoint, with a stored channel and with an inline one.
    let (status, report) =
        call(&server, &admin, Method::POST, "/api/v1/monitoring/test-notification", Some(json!({"channel_id": id})))
            .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["delivered"], true);
    assert_eq!(report["status_code"], 200);
    let notification = report["notification_id"].as_i64().unwrap();
    let inline =
        json!({"channel": {"name": "try-me", "kind": "slack", "config": {"webhook_url": receiver.url("/slack")}}});
    let (status, report) =
        call(&server, &admin, Method::POST, "/api/v1/monitoring/test-notification", Some(inline)).await;
    assert_eq!((status, &report["delivered"]), (200, &json!(true)), "{report}");
    assert_eq!(report["notification_id"], Value::Null, "an inline test is not kept");
    let (status, _) =
        call(&server, &admin, Method::POST, "/api/v1/monitoring/test-notification", Some(json!({}))).await;
    assert_eq!(status, 422);

    // An unreachable host answers with the error, not a hang.
    let closed =
        json!({"channel": {"name": "closed", "kind": "webhook", "config": {"webhook_url": "http://127.0.0.1:9/"}}});
    let started = Instant::now();
    let (status, report) =
        call(&server, &admin, Method::POST, "/api/v1/monitoring/test-notification", Some(closed)).await;
    assert_eq!(status, 200);
    assert_eq!(report["delivered"], false);
    assert!(report["detail"].as_str().unwrap().contains("cannot connect"), "{report}");
    assert!(started.elapsed() < Duration::from_secs(5));

    let viewer = server.token_for_role("viewer").await;
    let (status, history) =
        call(&server, &viewer, Method::GET, &format!("/api/v1/notifications?channel_id={id}"), None).await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(history["notifications"][0]["id"], notification);
    assert_eq!(history["notifications"][0]["status"], "delivered");
    assert_eq!(history["notifications"][0]["kind"], "test");
    let (status, detail) =
        call(&server, &viewer, Method::GET, &format!("/api/v1/notifications/{notification}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(detail["attempt_log"][0]["outcome"], "delivered");
    assert_eq!(detail["attempt_log"][0]["status_code"], 200);
    assert_eq!(detail["message"]["alerts"][0]["labels"]["alertname"], "HubmonTestNotification");
    let (status, _) = call(&server, &viewer, Method::GET, "/api/v1/notifications?status=lost", None).await;
    assert_eq!(status, 400);

    // A failed send is a dead letter until someone retries it.
    receiver.set_default(Reply::status(500));
    let (_, report) =
        call(&server, &admin, Method::POST, &format!("/api/v1/channels/{id}/test"), Some(json!({}))).await;
    assert_eq!(report["delivered"], false);
    assert_eq!(report["status_code"], 500);
    let failed = report["notification_id"].as_i64().unwrap();
    let (_, detail) = call(&server, &viewer, Method::GET, &format!("/api/v1/notifications/{failed}"), None).await;
    assert_eq!(detail["status"], "failed");
    receiver.set_default(Reply::ok("ok"));
    let editor = server.token_for_role("editor").await;
    let (status, retried) =
        call(&server, &editor, Method::POST, &format!("/api/v1/notifications/{failed}/retry"), Some(json!({}))).await;
    assert_eq!(status, 202, "{retried}");
    assert_eq!(retried["status"], "pending");
    wait_for("the retried notification to be delivered", || async {
        let (_, detail) = call(&server, &viewer, Method::GET, &format!("/api/v1/notifications/{failed}"), None).await;
        detail["status"] == "delivered"
    })
    .await;
    let (status, _) =
        call(&server, &editor, Method::POST, &format!("/api/v1/notifications/{failed}/retry"), Some(json!({}))).await;
    assert_eq!(status, 409, "a delivered notification is not retried");
    server.stop().await;
}

#[tokio::test]
async fn the_in_app_inbox_counts_and_marks_read() {
    let server = TestServer::start(Backend::Sqlite).await;
    let admin = server.admin_token().await;
    let channel = json!({"name": "inbox", "kind": "in_app", "config": {"users": ["admin"]}});
    let (_, created) = call(&server, &admin, Method::POST, "/api/v1/channels", Some(channel)).await;
    let id = created["id"].as_i64().unwrap();
    for _ in 0..2 {
        let (_, report) =
            call(&server, &admin, Method::POST, &format!("/api/v1/channels/{id}/test"), Some(json!({}))).await;
        assert_eq!(report["delivered"], true, "{report}");
    }
    let (status, count) = call(&server, &admin, Method::GET, "/api/v1/inbox/unread-count", None).await;
    assert_eq!((status, &count["unread"]), (200, &json!(2)));
    let (_, inbox) = call(&server, &admin, Method::GET, "/api/v1/inbox", None).await;
    let messages = inbox["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["title"], "[FIRING] HubmonTestNotification (info)");
    assert_eq!(messages[0]["severity"], "info");
    let first = messages[0]["id"].as_i64().unwrap();
    let (status, marked) =
        call(&server, &admin, Method::POST, &format!("/api/v1/inbox/{first}/read"), Some(json!({}))).await;
    assert_eq!((status, &marked["marked"]), (200, &json!(1)));
    let (_, unread) = call(&server, &admin, Method::GET, "/api/v1/inbox?unread=true", None).await;
    assert_eq!(unread["messages"].as_array().unwrap().len(), 1);
    assert_eq!(unread["unread"], 1);
    let (_, marked) = call(&server, &admin, Method::POST, "/api/v1/inbox/read-all", Some(json!({}))).await;
    assert_eq!(marked["marked"], 1);
    let (_, count) = call(&server, &admin, Method::GET, "/api/v1/inbox/unread-count", None).await;
    assert_eq!(count["unread"], 0);
    // Another user's inbox is their own.
    let viewer = server.token_for_role("viewer").await;
    let (_, theirs) = call(&server, &viewer, Method::GET, "/api/v1/inbox", None).await;
    assert_eq!(theirs["messages"].as_array().unwrap().len(), 2, "the viewer token was created by admin: {theirs}");
    server.stop().await;
}

/// The hubmon process, killed when dropped (a failing test leaves nothing running).
struct Process(std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_binary(data: &str) -> (Process, String) {
    let env =
        [("HUBMON_NOTIFY_LEASE", "3s"), ("HUBMON_NOTIFY_POLL_INTERVAL", "100ms"), ("HUBMON_HOST_ENABLED", "false")];
    let (child, address) = common::process::serve(data, &[], &env);
    (Process(child), address)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_sends_in_flight_loses_nothing_and_repeats_only_those() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let (hubmon, base) = start_binary(&data);
    let token = common::process::create_token(&data, &[], "admin");
    let client = reqwest::Client::new();
    let receiver = Receiver::start("ok").await;
    // Every request is received and then held: the sends are in flight when hubmon dies.
    receiver.set_default(Reply::ok("late").delayed(Duration::from_secs(60)));
    let created: Value = client
        .post(format!("{base}/api/v1/channels"))
        .bearer_auth(&token)
        .json(&json!({"name": "hook", "kind": "webhook", "config": {"webhook_url": receiver.url("/")}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_i64().unwrap();
    for _ in 0..3 {
        let request = client.post(format!("{base}/api/v1/channels/{id}/test")).bearer_auth(&token).json(&json!({}));
        tokio::spawn(async move {
            let _ = request.send().await;
        });
    }
    receiver.wait_for(3, Duration::from_secs(20)).await;
    drop(hubmon); // SIGKILL

    receiver.set_default(Reply::ok("ok"));
    let (hubmon, base) = start_binary(&data);
    let deadline = Instant::now() + Duration::from_secs(30);
    let delivered = loop {
        let page: Value = client
            .get(format!("{base}/api/v1/notifications?channel_id={id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let rows = page["notifications"].as_array().unwrap().clone();
        if rows.len() == 3 && rows.iter().all(|n| n["status"] == "delivered") {
            break rows;
        }
        assert!(Instant::now() < deadline, "not all delivered after restart: {page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(hubmon);
    let mut per_notification = std::collections::HashMap::<String, usize>::new();
    for request in receiver.requests() {
        *per_notification.entry(request.header("x-hubmon-notification-id").unwrap()).or_default() += 1;
    }
    assert_eq!(per_notification.len(), 3);
    assert!(
        per_notification.values().all(|&n| n == 2),
        "each in-flight send repeated once, no more: {per_notification:?}"
    );
    for row in delivered {
        assert_eq!(row["attempts"], 1, "the attempt cut off by the kill was never recorded: {row}");
    }
}

#[tokio::test]
async fn notification_metrics_are_series_in_the_metrics_store() {
    let server = TestServer::start_with(Backend::Sqlite, |config| {
        config.http.record_interval = hubmon_model::PromDuration::from_secs(1);
    })
    .await;
    let admin = server.admin_token().await;
    let receiver = Receiver::start("ok").await;
    let (_, created) = call(&server, &admin, Method::POST, "/api/v1/channels", Some(webhook("ops", &receiver))).await;
    let id = created["id"].as_i64().unwrap();
    let (_, report) =
        call(&server, &admin, Method::POST, &format!("/api/v1/channels/{id}/test"), Some(json!({}))).await;
    assert_eq!(report["delivered"], true);
    wait_for("hubmon_notifications_* series", || async {
        let (_, answer) = call(
            &server,
            &admin,
            Method::GET,
            "/api/v1/query?query=hubmon_notifications_attempts_total%7Boutcome%3D%22delivered%22%7D",
            None,
        )
        .await;
        answer["data"]["result"][0]["value"][1] == "1"
    })
    .await;
    let (_, answer) = call(
        &server,
        &admin,
        Method::GET,
        "/api/v1/query?query=hubmon_notifications_outbox%7Bstatus%3D%22delivered%22%7D",
        None,
    )
    .await;
    assert_eq!(answer["data"]["result"][0]["value"][1], "1", "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn the_inbox_stream_pushes_the_unread_count_as_entries_arrive() {
    let server = TestServer::start(Backend::Sqlite).await;
    let admin = server.admin_token().await;
    let (_, created) = call(
        &server,
        &admin,
        Method::POST,
        "/api/v1/channels",
        Some(json!({"name": "inbox", "kind": "in_app", "config": {}})),
    )
    .await;
    let id = created["id"].as_i64().unwrap();
    let mut stream = server.with_token(Method::GET, "/api/v1/inbox/stream", &admin).send().await.unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut seen = String::new();
    let mut read_until = async |needle: &str, seen: &mut String| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !seen.contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, stream.chunk()).await.expect("no event in time").unwrap().unwrap();
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    read_until("data: {\"unread\":0}", &mut seen).await;
    let (_, report) =
        call(&server, &admin, Method::POST, &format!("/api/v1/channels/{id}/test"), Some(json!({}))).await;
    assert_eq!(report["delivered"], true);
    read_until("data: {\"unread\":1}", &mut seen).await;
    assert!(seen.contains("event: unread"), "{seen}");
    drop(stream);
    server.stop().await;
}
