//! Every channel kind delivers to its local stand-in through the outbox, and the stand-in
//! checks what the real service would: the body's shape and the signature, recomputed here
//! from the vendor's documented recipe. Email goes to a real SMTP server (aiosmtpd).

#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use hubmon_notify::Notifier;
use hubmon_state::{AttemptOutcome, DeliveryStatus};
use serde_json::{Value, json};
use sha2::Sha256;
use support::*;

const WAIT: Duration = Duration::from_secs(15);

/// Creates the channel, enqueues one critical alert for it, runs the dispatcher until the
/// first attempt is recorded, and returns the notifier and the notification id.
async fn deliver_one(store: &TestStore, kind: &str, config: Value) -> (Notifier, i64) {
    let notifier = notifier(store.store.clone(), fast_config());
    let taken = notifier.list_channels().await.unwrap().len();
    let name = if taken == 0 { format!("{kind}-test") } else { format!("{kind}-test-{taken}") };
    let created = notifier.create_channel(channel(&name, kind, config)).await.unwrap();
    let message = alert_message("HighCPU", "critical");
    let enqueued = notifier.enqueue(&[created.id], &message, "HighCPU:4f1c2a9e:firing").await.unwrap();
    let id = enqueued[0].notification_id;
    let running = run(&notifier);
    eventually(WAIT, "the first attempt", || {
        let notifier = notifier.clone();
        async move {
            let (row, attempts) = notifier.notification(id).await.unwrap();
            (!attempts.is_empty() && row.status != DeliveryStatus::Sending).then_some(())
        }
    })
    .await;
    running.stop().await;
    (notifier, id)
}

async fn assert_delivered(notifier: &Notifier, id: i64) {
    let (row, attempts) = notifier.notification(id).await.unwrap();
    assert_eq!(row.status, DeliveryStatus::Delivered, "attempts: {attempts:?}");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome, AttemptOutcome::Delivered);
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

#[tokio::test]
async fn slack_gets_block_kit_with_the_severity_colour() {
    let store = TestStore::sqlite().await;
    let slack = Receiver::start("ok").await;
    let (notifier, id) =
        deliver_one(&store, "slack", json!({"webhook_url": slack.url("/services/T000/B000/XXXX"), "channel": "#ops"}))
            .await;
    assert_delivered(&notifier, id).await;
    let request = &slack.requests()[0];
    assert_eq!(request.path, "/services/T000/B000/XXXX");
    assert_eq!(request.header("content-type").as_deref(), Some("application/json"));
    let body = request.json();
    assert_eq!(body["text"], "[FIRING] HighCPU (critical)");
    assert_eq!(body["channel"], "#ops");
    let attachment = &body["attachments"][0];
    assert_eq!(attachment["color"], "#e01e5a");
    assert_eq!(attachment["blocks"][0]["type"], "header");
    assert_eq!(attachment["blocks"][1]["text"]["type"], "mrkdwn");
    let text = attachment["blocks"][1]["text"]["text"].as_str().unwrap();
    assert!(text.contains("*🔴 HighCPU on web-1*"), "{text}");
    assert!(text.contains("Value: 93.5%"), "{text}");
    assert!(text.contains("<http://hubmon.test/|Open in hubmon>"), "{text}");
}

#[tokio::test]
async fn dingtalk_gets_signed_markdown_with_mentions() {
    let store = TestStore::sqlite().await;
    let dingtalk = Receiver::start(r#"{"errcode":0,"errmsg":"ok"}"#).await;
    let secret = "SEC0123456789abcdef";
    let config = json!({
        "webhook_url": dingtalk.url("/robot/send?access_token=tok123"),
        "secret": secret,
        "at_mobiles": ["13800000000"],
        "language": "zh",
    });
    let (notifier, id) = deliver_one(&store, "dingtalk", config).await;
    assert_delivered(&notifier, id).await;

    let request = &dingtalk.requests()[0];
    assert_eq!(request.path, "/robot/send");
    // What DingTalk checks: the timestamp is recent, and sign = base64(HMAC-SHA256(secret,
    // timestamp + "\n" + secret)), URL-encoded.
    let query: std::collections::HashMap<String, String> =
        form_urlencoded::parse(request.query.as_bytes()).into_owned().collect();
    assert_eq!(query["access_token"], "tok123");
    let timestamp: i64 = query["timestamp"].parse().unwrap();
    assert!((chrono::Utc::now().timestamp_millis() - timestamp).abs() < 3_600_000);
    let expected = BASE64.encode(hmac_sha256(secret.as_bytes(), format!("{timestamp}\n{secret}").as_bytes()));
    assert_eq!(query["sign"], expected);
    assert!(request.query.contains("sign=") && !request.query.contains('+'), "sign is URL-encoded: {}", request.query);

    let body = request.json();
    assert_eq!(body["msgtype"], "markdown");
    assert_eq!(body["markdown"]["title"], "【告警】HighCPU（严重）");
    let text = body["markdown"]["text"].as_str().unwrap();
    assert!(text.starts_with("### 【告警】HighCPU（严重）"), "{text}");
    assert!(text.contains("当前值: 93.5%"), "{text}");
    assert!(text.ends_with("@13800000000"), "{text}");
    assert_eq!(body["at"], json!({"atMobiles": ["13800000000"], "isAtAll": false}));
}

#[tokio::test]
async fn dingtalk_refusal_is_permanent_and_its_rate_limit_code_is_not() {
    let store = TestStore::sqlite().await;
    let dingtalk = Receiver::start(r#"{"errcode":310000,"errmsg":"sign not match"}"#).await;
    let (notifier, id) =
        deliver_one(&store, "dingtalk", json!({"webhook_url": dingtalk.url("/robot/send?access_token=t")})).await;
    let (row, attempts) = notifier.notification(id).await.unwrap();
    assert_eq!(row.status, DeliveryStatus::Failed);
    assert_eq!(attempts.len(), 1, "a refused message is not retried");
    assert!(attempts[0].detail.contains("310000"), "{}", attempts[0].detail);

    let busy = Receiver::start(r#"{"errcode":130101,"errmsg":"send too fast"}"#).await;
    let (notifier, id) =
        deliver_one(&store, "dingtalk", json!({"webhook_url": busy.url("/robot/send?access_token=t")})).await;
    let (row, attempts) = notifier.notification(id).await.unwrap();
    assert_eq!(row.status, DeliveryStatus::Pending, "rate limited: retried after a minute");
    assert_eq!(attempts[0].outcome, AttemptOutcome::Retry);
    let wait = row.next_attempt_at.as_millis() - attempts[0].started_at.as_millis();
    assert!(wait >= 59_000, "waits a minute, waited {wait} ms");
}

#[tokio::test]
async fn feishu_gets_a_signed_interactive_card() {
    let store = TestStore::sqlite().await;
    let feishu = Receiver::start(r#"{"code":0,"msg":"success","data":{}}"#).await;
    let secret = "feishu-secret-abc";
    let (notifier, id) = deliver_one(
        &store,
        "feishu",
        json!({"webhook_url": feishu.url("/open-apis/bot/v2/hook/abc"), "secret": secret}),
    )
    .await;
    assert_delivered(&notifier, id).await;
    let body = feishu.requests()[0].json();
    // What Feishu checks: sign = base64(HMAC-SHA256(key = timestamp + "\n" + secret, empty)).
    let timestamp: i64 = body["timestamp"].as_str().unwrap().parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 3600);
    let expected = BASE64.encode(hmac_sha256(format!("{timestamp}\n{secret}").as_bytes(), b""));
    assert_eq!(body["sign"], expected);
    assert_eq!(body["msg_type"], "interactive");
    assert_eq!(body["card"]["header"]["title"]["content"], "[FIRING] HighCPU (critical)");
    assert_eq!(body["card"]["header"]["template"], "red");
    assert_eq!(body["card"]["elements"][0]["tag"], "markdown");
    assert!(body["card"]["elements"][0]["content"].as_str().unwrap().contains("**🔴 HighCPU on web-1**"));
}

#[tokio::test]
async fn wecom_gets_markdown() {
    let store = TestStore::sqlite().await;
    let wecom = Receiver::start(r#"{"errcode":0,"errmsg":"ok"}"#).await;
    let (notifier, id) =
        deliver_one(&store, "wecom", json!({"webhook_url": wecom.url("/cgi-bin/webhook/send?key=k-123")})).await;
    assert_delivered(&notifier, id).await;
    let request = &wecom.requests()[0];
    assert_eq!(request.query, "key=k-123");
    let body = request.json();
    assert_eq!(body["msgtype"], "markdown");
    let content = body["markdown"]["content"].as_str().unwrap();
    assert!(content.starts_with("### [FIRING] HighCPU (critical)\n"), "{content}");
    assert!(content.contains("- Labels: instance=web-1:9100, severity=critical"), "{content}");
}

#[tokio::test]
async fn telegram_gets_send_message_in_html() {
    let store = TestStore::sqlite().await;
    let telegram = Receiver::start(r#"{"ok":true,"result":{"message_id":42}}"#).await;
    let config = json!({"bot_token": "123456:ABC-def_ghi", "chat_id": "-1001234567890", "api_url": telegram.url("")});
    let (notifier, id) = deliver_one(&store, "telegram", config).await;
    assert_delivered(&notifier, id).await;
    let (_, attempts) = notifier.notification(id).await.unwrap();
    assert_eq!(attempts[0].detail, "ok, message_id 42");
    let request = &telegram.requests()[0];
    assert_eq!(request.path, "/bot123456:ABC-def_ghi/sendMessage");
    let body = request.json();
    assert_eq!(body["chat_id"], "-1001234567890");
    assert_eq!(body["parse_mode"], "HTML");
    let text = body["text"].as_str().unwrap();
    assert!(text.starts_with("<b>[FIRING] HighCPU (critical)</b>"), "{text}");
    assert!(text.contains("<code>instance=web-1:9100, severity=critical</code>"), "{text}");
}

#[tokio::test]
async fn telegram_429_waits_as_long_as_the_body_says() {
    let store = TestStore::sqlite().await;
    let telegram = Receiver::start("").await;
    telegram.set_default(Reply {
        status: 429,
        body: r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}}"#
            .into(),
        headers: Vec::new(),
        delay: Duration::ZERO,
    });
    let config = json!({"bot_token": "1:x", "chat_id": "@ops", "api_url": telegram.url("/")});
    let (notifier, id) = deliver_one(&store, "telegram", config).await;
    let (row, attempts) = notifier.notification(id).await.unwrap();
    assert_eq!(row.status, DeliveryStatus::Pending);
    assert_eq!(attempts[0].status_code, Some(429));
    let wait = row.next_attempt_at.as_millis() - attempts[0].started_at.as_millis();
    assert!((7_000..12_000).contains(&wait), "waited {wait} ms");
}

#[tokio::test]
async fn webhook_gets_alertmanager_json_signed() {
    let store = TestStore::sqlite().await;
    let receiver = Receiver::start("").await;
    let secret = "whsec-0123456789";
    let config = json!({
        "webhook_url": receiver.url("/hooks/alerts"),
        "secret": secret,
        "headers": {"Authorization": "Bearer receiver-token", "X-Team": "ops"},
    });
    let (notifier, id) = deliver_one(&store, "webhook", config).await;
    assert_delivered(&notifier, id).await;
    let request = &receiver.requests()[0];
    assert_eq!(request.header("authorization").as_deref(), Some("Bearer receiver-token"));
    assert_eq!(request.header("x-team").as_deref(), Some("ops"));
    assert_eq!(request.header("x-hubmon-notification-id"), Some(id.to_string()));

    // How a receiver verifies: split t and v1, recompute HMAC-SHA256(secret, t + "." + raw body).
    let signature = request.header("x-hubmon-signature").unwrap();
    let (t, v1) = signature.split_once(',').unwrap();
    let t = t.strip_prefix("t=").unwrap();
    let v1 = v1.strip_prefix("v1=").unwrap();
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(&request.body);
    assert_eq!(v1, hex::encode(hmac_sha256(secret.as_bytes(), &signed)));
    assert!((chrono::Utc::now().timestamp() - t.parse::<i64>().unwrap()).abs() < 300);

    let body = request.json();
    assert_eq!(body["version"], "4");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["receiver"], "webhook-test");
    assert_eq!(body["groupKey"], "{}:{alertname=\"HighCPU\"}");
    assert_eq!(body["truncatedAlerts"], 0);
    assert_eq!(body["externalURL"], "http://hubmon.test/");
    assert_eq!(body["commonLabels"]["alertname"], "HighCPU");
    assert_eq!(body["commonAnnotations"]["summary"], "HighCPU on web-1");
    let alert = &body["alerts"][0];
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["labels"], json!({"alertname": "HighCPU", "severity": "critical", "instance": "web-1:9100"}));
    assert_eq!(alert["startsAt"], "2025-11-29T07:06:40.000Z");
    assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(alert["generatorURL"], "http://hubmon.test/graph?expr=cpu");
    assert_eq!(alert["fingerprint"], "4f1c2a9e");
}

#[tokio::test]
async fn email_reaches_a_real_smtp_server_as_text_and_html() {
    let store = TestStore::sqlite().await;
    let smtp = SmtpSink::start();
    let config = json!({
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp.port,
        "security": "none",
        "from": "hubmon <alerts@hubmon.test>",
        "to": ["oncall@example.test", "Team Lead <lead@example.test>"],
    });
    let (notifier, id) = deliver_one(&store, "email", config).await;
    assert_delivered(&notifier, id).await;
    let (_, attempts) = notifier.notification(id).await.unwrap();
    assert_eq!(attempts[0].status_code, Some(250));

    let mail = &smtp.wait_for(1, WAIT).await[0];
    assert_eq!(mail["subject"], "[FIRING] HighCPU (critical)");
    assert_eq!(mail["mail_from"], "alerts@hubmon.test");
    assert_eq!(mail["rcpt_tos"], json!(["oncall@example.test", "lead@example.test"]));
    assert_eq!(mail["content_type"], "multipart/alternative");
    let parts = mail["parts"].as_array().unwrap();
    let part = |kind: &str| parts.iter().find(|p| p["content_type"] == kind).unwrap()["content"].as_str().unwrap();
    let text = part("text/plain");
    assert!(text.contains("FIRING: HighCPU on web-1"), "{text}");
    assert!(text.contains("Value: 93.5%"), "{text}");
    assert!(text.contains("Open in hubmon: http://hubmon.test/"), "{text}");
    let html = part("text/html");
    assert!(html.contains("<table"), "{html}");
    assert!(html.contains("93.5%"), "{html}");
}

#[tokio::test]
async fn email_authenticates_and_a_refused_recipient_is_not_retried() {
    let store = TestStore::sqlite().await;
    let smtp = SmtpSink::start_with_auth(Some(("hubmon", "smtp-pass")));
    let base = json!({
        "smtp_host": "127.0.0.1", "smtp_port": smtp.port, "security": "none",
        "username": "hubmon", "password": "smtp-pass", "from": "alerts@hubmon.test", "to": ["ops@example.test"],
    });
    let (notifier, id) = deliver_one(&store, "email", base.clone()).await;
    assert_delivered(&notifier, id).await;
    assert_eq!(smtp.wait_for(1, WAIT).await[0]["authenticated"], true);

    let mut refused = base;
    refused["to"] = json!(["reject-me@example.test"]);
    let (notifier, id) = deliver_one(&store, "email", refused).await;
    let (row, attempts) = notifier.notification(id).await.unwrap();
    assert_eq!(row.status, DeliveryStatus::Failed);
    assert_eq!(attempts.len(), 1, "a 5xx reply is permanent: {attempts:?}");
    assert_eq!(attempts[0].status_code, Some(550));
    assert_eq!(smtp.messages().len(), 1);
}

#[tokio::test]
async fn in_app_fills_each_users_inbox_once() {
    let store = TestStore::sqlite().await;
    for name in ["alice", "bob"] {
        store
            .store
            .create_user(hubmon_state::NewUser {
                username: name.to_string(),
                password_hash: "x".to_string(),
                role: hubmon_model::Role::Viewer,
                at: hubmon_model::Timestamp::now(),
            })
            .await
            .unwrap();
    }
    let (notifier, id) = deliver_one(&store, "in_app", json!({})).await;
    assert_delivered(&notifier, id).await;
    for name in ["alice", "bob"] {
        let user = store.store.user_by_name(name).await.unwrap().unwrap();
        assert_eq!(notifier.unread_count(user.id).await.unwrap(), 1);
        let inbox = notifier.inbox(user.id, false, None, 10).await.unwrap();
        assert_eq!(inbox[0].title, "[FIRING] HighCPU (critical)");
        assert_eq!(inbox[0].severity, "critical");
        assert_eq!(inbox[0].notification_id, Some(id));
        assert!(inbox[0].body.contains("HighCPU on web-1"));
    }
}

#[tokio::test]
async fn a_test_send_reports_the_attempt_and_an_unreachable_host_fails_fast() {
    let store = TestStore::sqlite().await;
    let notifier = notifier(store.store.clone(), fast_config());
    let receiver = Receiver::start("ok").await;
    let created =
        notifier.create_channel(channel("hook", "webhook", json!({"webhook_url": receiver.url("/")}))).await.unwrap();
    let report = notifier.test_channel(created.id).await.unwrap();
    assert!(report.delivered, "{report:?}");
    assert_eq!(report.status_code, Some(200));
    assert_eq!(report.title, "[FIRING] HubmonTestNotification (info)");
    assert_eq!(receiver.requests()[0].json()["alerts"][0]["labels"]["alertname"], "HubmonTestNotification");

    // Port 9 on loopback: nothing listens, the connection is refused at once.
    let closed = notifier
        .create_channel(channel("closed", "webhook", json!({"webhook_url": "http://127.0.0.1:9/"})))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let report = notifier.test_channel(closed.id).await.unwrap();
    assert!(!report.delivered);
    assert_eq!(report.outcome, AttemptOutcome::Failed, "a test send is tried once");
    assert!(report.detail.contains("cannot connect"), "{}", report.detail);
    assert!(started.elapsed() < Duration::from_secs(5));
    let (row, _) = notifier.notification(report.notification_id.unwrap()).await.unwrap();
    assert_eq!(row.status, DeliveryStatus::Failed);
}

#[tokio::test]
async fn email_over_starttls_and_implicit_tls_verifies_the_relay_certificate() {
    let store = TestStore::sqlite().await;
    let pki = TestPki::generate();
    for (mode, security) in [("starttls", "starttls"), ("implicit", "tls")] {
        let smtp = SmtpSink::start_with(None, Some((mode, &pki.certificate_file, &pki.key_file)));
        let config = json!({
            "smtp_host": "127.0.0.1", "smtp_port": smtp.port, "security": security,
            "ca_file": pki.ca_file, "from": "alerts@hubmon.test", "to": ["ops@example.test"],
        });
        let (notifier, id) = deliver_one(&store, "email", config.clone()).await;
        assert_delivered(&notifier, id).await;
        let mail = &smtp.wait_for(1, WAIT).await[0];
        assert_eq!(mail["subject"], "[FIRING] HighCPU (critical)", "{mode}");

        // Without the relay's CA the certificate is refused: nothing is sent in the clear.
        let mut untrusted = config;
        untrusted.as_object_mut().unwrap().remove("ca_file");
        let notifier = notifier_for_test(&store);
        let created = notifier.create_channel(channel(&format!("untrusted-{mode}"), "email", untrusted)).await.unwrap();
        let report = notifier.test_channel(created.id).await.unwrap();
        assert!(!report.delivered, "{mode}: {report:?}");
        assert!(report.detail.to_lowercase().contains("certificate"), "{mode}: {}", report.detail);
        assert_eq!(smtp.messages().len(), 1);
    }
}

#[tokio::test]
async fn starttls_is_required_not_optional() {
    let store = TestStore::sqlite().await;
    let plain = SmtpSink::start();
    let notifier = notifier_for_test(&store);
    let config = json!({
        "smtp_host": "127.0.0.1", "smtp_port": plain.port, "security": "starttls",
        "from": "alerts@hubmon.test", "to": ["ops@example.test"],
    });
    let created = notifier.create_channel(channel("no-starttls", "email", config)).await.unwrap();
    let report = notifier.test_channel(created.id).await.unwrap();
    assert!(!report.delivered, "{report:?}");
    assert!(plain.messages().is_empty(), "nothing is sent when the server cannot STARTTLS");
}

fn notifier_for_test(store: &TestStore) -> Notifier {
    notifier(store.store.clone(), fast_config())
}

/// A private CA and a certificate it signed for 127.0.0.1, as PEM files in a temp dir.
struct TestPki {
    ca_file: PathBuf,
    certificate_file: PathBuf,
    key_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestPki {
    fn generate() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf =
            CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&leaf_key, &ca, &ca_key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        Self {
            ca_file: write("ca.pem", ca.pem()),
            certificate_file: write("smtp.pem", leaf.pem()),
            key_file: write("smtp.key", leaf_key.serialize_pem()),
            _dir: dir,
        }
    }
}
