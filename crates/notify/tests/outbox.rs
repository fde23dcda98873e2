//! The outbox under faults, with exact counts of what the receiver got: a receiver that is
//! down and comes back, 500s, 429 with Retry-After, hangs past the timeout, a dead letter and
//! its manual retry, the rate limit, producer retries, a process dying between claim and send
//! and between send and record, and two dispatchers sharing one PostgreSQL.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hubmon_model::Timestamp;
use hubmon_notify::Notifier;
use hubmon_state::{AttemptOutcome, Claim, DeliveryStatus};
use serde_json::json;
use support::*;

const WAIT: Duration = Duration::from_secs(20);

async fn webhook_channel(notifier: &Notifier, name: &str, url: &str, extra: serde_json::Value) -> i64 {
    let mut config = json!({"webhook_url": url});
    if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        config.extend(extra.clone());
    }
    notifier.create_channel(channel(name, "webhook", config)).await.unwrap().id
}

async fn wait_status(notifier: &Notifier, id: i64, status: DeliveryStatus) -> Vec<hubmon_state::Attempt> {
    eventually(WAIT, &format!("notification {id} to become {status:?}"), || {
        let notifier = notifier.clone();
        async move {
            let (row, attempts) = notifier.notification(id).await.unwrap();
            (row.status == status).then_some(attempts)
        }
    })
    .await
}

/// Requests per notification id (the header every webhook request carries).
fn per_notification(receiver: &Receiver) -> HashMap<i64, usize> {
    let mut counts = HashMap::new();
    for request in receiver.requests() {
        let id = request.header("x-hubmon-notification-id").unwrap().parse().unwrap();
        *counts.entry(id).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_the_message_once_when_it_is_back() {
    let store = TestStore::sqlite().await;
    let notifier = notifier(store.store.clone(), fast_config());
    // Reserve a port, then leave it closed: connections are refused until the receiver starts.
    let addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let channel = webhook_channel(&notifier, "down", &format!("http://{addr}/"), json!({"max_attempts": 10})).await;
    let id = notifier.enqueue(&[channel], &alert_message("Down", "critical"), "k").await.unwrap()[0].notification_id;
    let running = run(&notifier);
    let failures = eventually(WAIT, "two refused attempts", || {
        let notifier = notifier.clone();
        async move {
            let (_, attempts) = notifier.notification(id).await.unwrap();
            (attempts.len() >= 2).then_some(attempts)
        }
    })
    .await;
    assert!(failures.iter().all(|a| a.outcome == AttemptOutcome::Retry && a.detail.contains("cannot connect")));
    let receiver = Receiver::start_on(addr, "ok").await;
    let attempts = wait_status(&notifier, id, DeliveryStatus::Delivered).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.stop().await;
    assert_eq!(receiver.count(), 1, "delivered exactly once after recovery");
    assert_eq!(attempts.last().unwrap().outcome, AttemptOutcome::Delivered);
    let numbers: Vec<i64> = attempts.iter().map(|a| a.attempt).collect();
    assert_eq!(numbers, (1..=attempts.len() as i64).collect::<Vec<_>>());
}

#[tokio::test]
async fn server_errors_are_retried_with_growing_waits_then_dead_lettered_and_retried_by_hand() {
    let store = TestStore::sqlite().await;
    let notifier = notifier(store.store.clone(), fast_config());
    let receiver = Receiver::start("").await;
    receiver.set_default(Reply::status(500));
    let channel = webhook_channel(&notifier, "flaky", &receiver.url("/"), json!({"max_attempts": 3})).await;
    let id = notifier.enqueue(&[channel], &alert_message("Flaky", "warning"), "k").await.unwrap()[0].notification_id;
    let running = run(&notifier);
    let attempts = wait_status(&notifier, id, DeliveryStatus::Failed).await;
    assert_eq!(
        attempts.iter().map(|a| a.outcome).collect::<Vec<_>>(),
        [AttemptOutcome::Retry, AttemptOutcome::Retry, AttemptOutcome::Failed]
    );
    assert!(attempts.iter().all(|a| a.status_code == Some(500)));
    assert_eq!(receiver.count(), 3, "max_attempts, then it stops");
    // Backoff: 200 ms × 2^(n-1), jittered into its upper half.
    let times: Vec<Instant> = receiver.requests().iter().map(|r| r.at).collect();
    assert!(times[1] - times[0] >= Duration::from_millis(100), "{:?}", times[1] - times[0]);
    assert!(times[2] - times[1] >= Duration::from_millis(200), "{:?}", times[2] - times[1]);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(receiver.count(), 3, "a dead letter stays dead");

    receiver.set_default(Reply::ok("ok"));
    let retried = notifier.retry(id).await.unwrap();
    assert_eq!((retried.status, retried.max_attempts), (DeliveryStatus::Pending, 6));
    let attempts = wait_status(&notifier, id, DeliveryStatus::Delivered).await;
    running.stop().await;
    assert_eq!(attempts.len(), 4);
    assert_eq!(receiver.count(), 4);
    assert!(matches!(notifier.retry(id).await, Err(hubmon_notify::Error::NotRetryable(_))));
}

#[tokio::test]
async fn retry_after_is_honoured_and_client_errors_are_not_retried() {
    let store = TestStore::sqlite().await;
    let notifier = notifier(store.store.clone(), fast_config());
    let receiver = Receiver::start("ok").await;
    receiver.script([Reply::status(429).header("Retry-After", "2")]);
    let channel = webhook_channel(&notifier, "limited", &receiver.url("/"), json!({})).await;
    let id = notifier.enqueue(&[channel], &alert_message("A", "info"), "k").await.unwrap()[0].notification_id;
    let running = run(&notifier);
    wait_status(&notifier, id, DeliveryStatus::Delivered).await;
    let times: Vec<Instant> = receiver.requests().iter().map(|r| r.at).collect();
    assert_eq!(times.len(), 2);
    assert!(times[1] - times[0] >= Duration::from_millis(1900), "waited only {:?}", times[1] - times[0]);

    receiver.script([Reply::status(404)]);
    let id = notifier.enqueue(&[channel], &alert_message("B", "info"), "k2").await.unwrap()[0].notification_id;
    let attempts = wait_status(&notifier, id, DeliveryStatus::Failed).await;
    running.stop().await;
    assert_eq!(attempts.len(), 1, "a 404 is permanent");
    assert_eq!(attempts[0].status_code, Some(404));
    assert_eq!(receiver.count(), 3);
}

#[tokio::test]
async fn a_hanging_receiver_times_out_and_the_retry_goes_through() {
    let store = TestStore::sqlite().await;
    let notifier = notifier(store.store.clone(), fast_config());
    let receiver = Receiver::start("ok").await;
    receiver.script([Reply::ok("too late").delayed(Duration::from_secs(10))]);
    let channel = webhook_channel(&notifier, "slow", &receiver.url("/"), json!({"timeout": "500ms"})).await;
    let id = notifier.enqueue(&[channel], &alert_message("A", "info"), "k").await.unwrap()[0].notification_id;
    let running = run(&notifier);
    let attempts = wait_status(&notifier, id, DeliveryStatus::Delivered).await;
    running.stop().await;
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].outcome, AttemptOutcome::Retry);
    assert!(attempts[0].detail.contains("timed out after 0.5s"), "{}", attempts[0].detail);
    assert!((400..5_000).contains(&attempts[0].duration_ms), "{}", attempts[0].duration_ms);
}

#[tokio::test]
async fn a_producer_retry_with_the_same_dedup_key_sends_once() {
    let store = TestStore::sqlite().await;
    let notifier = notifier(store.store.clone(), fast_config());
    let receiver = Receiver::start("ok").await;
    let channel = webhook_channel(&notifier, "c", &receiver.url("/"), json!({})).await;
    let message = alert_message("A", "critical");
    let first = notifier.enqueue(&[channel], &message, "rule:A:firing:1").await.unwrap();
    let running = run(&notifier);
    wait_status(&notifier, first[0].notification_id, DeliveryStatus::Delivered).await;
    let again = notifier.enqueue(&[channel], &message, "rule:A:firing:1").await.unwrap();
    assert!(!again[0].new);
    assert_eq!(again[0].notification_id, first[0].notification_id);
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.stop().await;
    assert_eq!(receiver.count(), 1);
}

#[tokio::test]
async fn dingtalk_rate_limit_queues_what_is_over_twenty_a_minute() {
    let store = TestStore::sqlite().await;
    let notifier = notifier(store.store.clone(), fast_config());
    let dingtalk = Receiver::start(r#"{"errcode":0,"errmsg":"ok"}"#).await;
    let channel = notifier
        .create_channel(channel("ding", "dingtalk", json!({"webhook_url": dingtalk.url("/robot/send?access_token=t")})))
        .await
        .unwrap()
        .id;
    let mut ids = Vec::new();
    for i in 0..25 {
        ids.push(
            notifier.enqueue(&[channel], &alert_message("A", "warning"), &format!("k{i}")).await.unwrap()[0]
                .notification_id,
        );
    }
    let running = run(&notifier);
    dingtalk.wait_for(20, WAIT).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    running.stop().await;
    assert_eq!(dingtalk.count(), 20, "DingTalk allows 20 a minute");
    let mut waiting = 0;
    for id in ids {
        let (row, attempts) = notifier.notification(id).await.unwrap();
        match row.status {
            DeliveryStatus::Delivered => assert_eq!(attempts.len(), 1),
            DeliveryStatus::Pending => {
                waiting += 1;
                assert!(attempts.is_empty(), "queued, not failed");
                assert!(row.next_attempt_at.as_millis() > Timestamp::now().as_millis() + 50_000);
            }
            other => panic!("notification {id} is {other:?}"),
        }
    }
    assert_eq!(waiting, 5);
    assert_eq!(notifier.stats().rate_limited.load(std::sync::atomic::Ordering::Relaxed), 5);
}

#[tokio::test]
async fn a_process_that_died_between_claim_and_send_loses_nothing() {
    let store = TestStore::sqlite().await;
    let notifier = notifier(store.store.clone(), fast_config());
    let receiver = Receiver::start("ok").await;
    let channel = webhook_channel(&notifier, "c", &receiver.url("/"), json!({})).await;
    for i in 0..5 {
        notifier.enqueue(&[channel], &alert_message("A", "info"), &format!("k{i}")).await.unwrap();
    }
    // The dead process claimed everything and never sent: its lease runs 1.5 s.
    let now = Timestamp::now();
    let claim = Claim {
        now,
        owner: "dead-process".to_string(),
        lease_until: now.plus(Duration::from_millis(1500)),
        limit: 100,
        only_id: None,
    };
    assert_eq!(store.store.claim_notifications(&claim).await.unwrap().len(), 5);
    let running = run(&notifier);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(receiver.count(), 0, "leased rows are left alone while the lease runs");
    receiver.wait_for(5, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.stop().await;
    let counts = per_notification(&receiver);
    assert_eq!(counts.len(), 5);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
}

/// Runs a dispatcher on a runtime of its own, as another process would; dropping the returned
/// sender kills that runtime at once, every task dropped where it stands (like `kill -9`: no
/// attempt is recorded, no lease released).
fn dispatcher_process(
    location: hubmon_state::StoreLocation,
    config: hubmon_notify::Config,
) -> std::sync::mpsc::Sender<()> {
    let (kill, killed) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.spawn(async move {
            let store = hubmon_state::SqlStore::open(&location, Duration::from_secs(5)).await.unwrap();
            let notifier = notifier(std::sync::Arc::new(store), config);
            notifier.run(tokio_util::sync::CancellationToken::new()).await;
        });
        let _ = killed.recv();
        runtime.shutdown_background();
    });
    kill
}

#[tokio::test]
async fn a_process_that_died_between_send_and_record_sends_at_most_one_duplicate() {
    let store = TestStore::sqlite().await;
    let receiver = Receiver::start("ok").await;
    // The first request is received, then the sender dies before the answer comes back.
    receiver.script([Reply::ok("late").delayed(Duration::from_secs(30))]);
    let mut config = fast_config();
    config.lease = "2s".parse().unwrap();
    let producer = notifier(store.store.clone(), config.clone());
    let channel = webhook_channel(&producer, "c", &receiver.url("/"), json!({})).await;
    let id = producer.enqueue(&[channel], &alert_message("A", "info"), "k").await.unwrap()[0].notification_id;

    let kill = dispatcher_process(store.location.clone(), config.clone());
    receiver.wait_for(1, WAIT).await;
    drop(kill);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (row, attempts) = producer.notification(id).await.unwrap();
    assert_eq!(row.status, DeliveryStatus::Sending, "claimed by the dead process");
    assert!(attempts.is_empty(), "the dead process recorded nothing");

    let restarted = notifier(store.store.clone(), config);
    let running = run(&restarted);
    let attempts = wait_status(&restarted, id, DeliveryStatus::Delivered).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.stop().await;
    assert_eq!(per_notification(&receiver)[&id], 2, "the one in-flight attempt is repeated, nothing more");
    assert_eq!(attempts.len(), 1);
}

#[tokio::test]
async fn a_process_killed_mid_batch_loses_nothing_and_repeats_only_what_was_in_flight() {
    let store = TestStore::sqlite().await;
    let receiver = Receiver::start("ok").await;
    // Every answer takes 300 ms, so a kill catches several attempts in flight.
    receiver.set_default(Reply::ok("ok").delayed(Duration::from_millis(300)));
    let mut config = fast_config();
    config.lease = "2s".parse().unwrap();
    config.concurrency = 4;
    let producer = notifier(store.store.clone(), config.clone());
    let channel = webhook_channel(&producer, "c", &receiver.url("/"), json!({})).await;
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(
            producer.enqueue(&[channel], &alert_message("A", "info"), &format!("k{i}")).await.unwrap()[0]
                .notification_id,
        );
    }
    let kill = dispatcher_process(store.location.clone(), config.clone());
    receiver.wait_for(10, WAIT).await;
    drop(kill);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Sends in flight when the process died: received, never answered. The dispatcher runs at
    // most `concurrency` (4) at once, so at most 4 can be repeated.
    let sending = {
        let mut n = 0;
        for &id in &ids {
            if producer.notification(id).await.unwrap().0.status == DeliveryStatus::Sending {
                n += 1;
            }
        }
        n
    };
    let restarted = notifier(store.store.clone(), config);
    let running = run(&restarted);
    for &id in &ids {
        wait_status(&restarted, id, DeliveryStatus::Delivered).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.stop().await;
    let counts = per_notification(&receiver);
    assert_eq!(counts.len(), 40, "nothing lost");
    let repeated = counts.values().filter(|&&n| n == 2).count();
    assert!(counts.values().all(|&n| n <= 2), "{counts:?}");
    assert!(repeated <= 4, "{repeated} repeated; at most the 4 in flight may be");
    println!("killed with {sending} rows leased; {repeated} delivered twice, the rest once");
}

#[tokio::test]
async fn two_dispatchers_on_one_postgres_deliver_a_thousand_notifications_exactly_once() {
    let store = TestStore::postgres().await;
    let receiver = Receiver::start("ok").await;
    let producer = notifier(store.store.clone(), fast_config());
    let channel = webhook_channel(&producer, "bulk", &receiver.url("/"), json!({})).await;
    let message = alert_message("Bulk", "info");
    for i in 0..1000 {
        producer.enqueue(&[channel], &message, &format!("bulk-{i}")).await.unwrap();
    }
    let a = notifier(store.reopen().await, fast_config());
    let b = notifier(store.reopen().await, fast_config());
    let started = Instant::now();
    let (run_a, run_b) = (run(&a), run(&b));
    receiver.wait_for(1000, Duration::from_secs(60)).await;
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    run_a.stop().await;
    run_b.stop().await;
    let counts = per_notification(&receiver);
    assert_eq!(counts.len(), 1000);
    let duplicates: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(duplicates.is_empty(), "sent more than once: {duplicates:?}");
    let by_a = a.stats().delivered.load(std::sync::atomic::Ordering::Relaxed);
    let by_b = b.stats().delivered.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(by_a + by_b, 1000);
    println!("1000 notifications in {elapsed:?}: {by_a} by one dispatcher, {by_b} by the other");
}

#[tokio::test]
async fn the_notifier_reports_its_attempts_and_outbox_as_series() {
    let store = TestStore::sqlite().await;
    let notifier = notifier(store.store.clone(), fast_config());
    let receiver = Receiver::start("ok").await;
    receiver.script([Reply::status(503)]);
    let channel = webhook_channel(&notifier, "c", &receiver.url("/"), json!({})).await;
    let id = notifier.enqueue(&[channel], &alert_message("A", "info"), "k").await.unwrap()[0].notification_id;
    let other = notifier.enqueue(&[channel], &alert_message("B", "info"), "later").await.unwrap()[0].notification_id;
    let running = run(&notifier);
    wait_status(&notifier, id, DeliveryStatus::Delivered).await;
    wait_status(&notifier, other, DeliveryStatus::Delivered).await;
    running.stop().await;
    let series = notifier.metric_series(1_000).await;
    let value = |name: &str, label: Option<(&str, &str)>| {
        series
            .iter()
            .find(|s| s.labels.metric_name() == Some(name) && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| s.samples[0].value)
    };
    assert_eq!(value("hubmon_notifications_attempts_total", Some(("outcome", "retry"))), Some(1.0));
    assert_eq!(value("hubmon_notifications_attempts_total", Some(("outcome", "delivered"))), Some(2.0));
    assert_eq!(value("hubmon_notifications_attempts_total", Some(("outcome", "failed"))), Some(0.0));
    assert_eq!(value("hubmon_notifications_outbox", Some(("status", "delivered"))), Some(2.0));
    assert_eq!(value("hubmon_notifications_outbox", Some(("status", "pending"))), Some(0.0));
    assert_eq!(value("hubmon_notifications_rate_limited_total", None), Some(0.0));
}
