//! The notification tables on both backends: channels, the outbox's claim/lease/record cycle,
//! history and the in-app inbox.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use hubmon_model::{Role, Timestamp};
use hubmon_state::*;

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let location = hubmon_state::StoreLocation::Sqlite(dir.path().join("state.db"));
                    let store = hubmon_state::SqlStore::open(&location, std::time::Duration::from_secs(5)).await.unwrap();
                    super::$name(&store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let database = hubmon_testkit::PgDatabase::create().await;
                    let location = hubmon_state::StoreLocation::Postgres(database.url.clone());
                    let store = hubmon_state::SqlStore::open(&location, std::time::Duration::from_secs(5)).await.unwrap();
                    super::$name(&store).await;
                    hubmon_state::StateStore::close(&store).await;
                }
            )*
        }
    };
}

on_both_backends!(
    channels_round_trip_and_names_are_unique,
    enqueue_is_idempotent_per_channel_and_dedup_key,
    claims_lease_due_rows_once_and_expired_leases_come_back,
    attempts_move_the_row_on_and_are_kept_in_order,
    a_lost_lease_still_records_the_attempt,
    released_rows_wait_without_counting_an_attempt,
    only_dead_letters_can_be_retried,
    history_filters_and_pages_newest_first,
    inbox_entries_are_per_user_and_marked_read,
    deleting_a_channel_removes_its_history,
);

fn channel(name: &str) -> NewChannel {
    NewChannel {
        name: name.to_string(),
        kind: "webhook".to_string(),
        config: r#"{"webhook_url":"v1:sealed"}"#.to_string(),
        enabled: true,
        at: Timestamp(1_000),
    }
}

fn notification(channel_id: i64, key: &str, at: i64) -> NewNotification {
    NewNotification {
        channel_id,
        dedup_key: key.to_string(),
        kind: "alert".to_string(),
        title: format!("[FIRING] {key}"),
        severity: "critical".to_string(),
        message: "{}".to_string(),
        max_attempts: 3,
        at: Timestamp(at),
    }
}

fn claim(owner: &str, now: i64, limit: i64) -> Claim {
    Claim { now: Timestamp(now), owner: owner.to_string(), lease_until: Timestamp(now + 60_000), limit, only_id: None }
}

fn attempt(id: i64, owner: &str, outcome: AttemptOutcome, next: Option<i64>, at: i64) -> NewAttempt {
    NewAttempt {
        notification_id: id,
        owner: owner.to_string(),
        started_at: Timestamp(at),
        duration_ms: 12,
        outcome,
        status_code: Some(if outcome == AttemptOutcome::Delivered { 200 } else { 503 }),
        detail: format!("{} at {at}", outcome.as_str()),
        next_attempt_at: next.map(Timestamp),
        at: Timestamp(at),
    }
}

async fn channels_round_trip_and_names_are_unique(store: &dyn StateStore) {
    let created = store.create_channel(channel("ops")).await.unwrap();
    assert_eq!(created.name, "ops");
    assert!(created.enabled);
    assert_eq!(store.channel(created.id).await.unwrap(), Some(created.clone()));
    assert!(matches!(store.create_channel(channel("ops")).await, Err(Error::Conflict { .. })));

    let mut update = channel("ops-renamed");
    update.enabled = false;
    update.at = Timestamp(2_000);
    let updated = store.update_channel(created.id, update).await.unwrap().unwrap();
    assert_eq!(updated.name, "ops-renamed");
    assert!(!updated.enabled);
    assert_eq!(updated.created_at, Timestamp(1_000));
    assert_eq!(updated.updated_at, Timestamp(2_000));
    assert!(store.update_channel(999, channel("x")).await.unwrap().is_none());
    store.create_channel(channel("second")).await.unwrap();
    let names: Vec<String> = store.list_channels().await.unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["ops-renamed", "second"]);
    assert!(store.delete_channel(created.id).await.unwrap());
    assert!(!store.delete_channel(created.id).await.unwrap());
}

async fn enqueue_is_idempotent_per_channel_and_dedup_key(store: &dyn StateStore) {
    let a = store.create_channel(channel("a")).await.unwrap();
    let b = store.create_channel(channel("b")).await.unwrap();
    let (first, new) = store.enqueue_notification(notification(a.id, "k1", 5_000)).await.unwrap();
    assert!(new);
    assert_eq!(first.status, DeliveryStatus::Pending);
    assert_eq!(first.attempts, 0);
    assert_eq!(first.next_attempt_at, Timestamp(5_000));
    let (again, new) = store.enqueue_notification(notification(a.id, "k1", 9_000)).await.unwrap();
    assert!(!new);
    assert_eq!(again.id, first.id);
    assert_eq!(again.created_at, Timestamp(5_000));
    let (other, new) = store.enqueue_notification(notification(b.id, "k1", 5_000)).await.unwrap();
    assert!(new, "the same key on another channel is another notification");
    assert_ne!(other.id, first.id);
}

async fn claims_lease_due_rows_once_and_expired_leases_come_back(store: &dyn StateStore) {
    let ch = store.create_channel(channel("c")).await.unwrap();
    let mut off = channel("off");
    off.enabled = false;
    let off = store.create_channel(off).await.unwrap();
    for (key, at) in [("due-1", 1_000), ("due-2", 2_000), ("later", 50_000)] {
        store.enqueue_notification(notification(ch.id, key, at)).await.unwrap();
    }
    store.enqueue_notification(notification(off.id, "disabled", 1_000)).await.unwrap();

    let claimed = store.claim_notifications(&claim("worker-a", 10_000, 10)).await.unwrap();
    let keys: Vec<&str> = claimed.iter().map(|n| n.dedup_key.as_str()).collect();
    assert_eq!(keys, ["due-1", "due-2"], "due rows of enabled channels, oldest first");
    assert!(claimed.iter().all(|n| n.status == DeliveryStatus::Sending));
    assert_eq!(claimed[0].lease_owner.as_deref(), Some("worker-a"));
    assert_eq!(claimed[0].lease_until, Some(Timestamp(70_000)));

    assert!(store.claim_notifications(&claim("worker-b", 20_000, 10)).await.unwrap().is_empty());
    let later = store.claim_notifications(&claim("worker-b", 60_000, 10)).await.unwrap();
    assert_eq!(later.iter().map(|n| n.dedup_key.as_str()).collect::<Vec<_>>(), ["later"]);
    // worker-a died: its leases run out at 70 s and the rows come back to whoever asks.
    let reclaimed = store.claim_notifications(&claim("worker-b", 70_000, 1)).await.unwrap();
    assert_eq!(reclaimed.len(), 1, "the limit holds");
    assert_eq!(reclaimed[0].dedup_key, "due-1");
    assert_eq!(reclaimed[0].lease_owner.as_deref(), Some("worker-b"));

    let (one, _) = store.enqueue_notification(notification(ch.id, "only", 1_000)).await.unwrap();
    let mut only = claim("worker-c", 80_000, 10);
    only.only_id = Some(one.id);
    let got = store.claim_notifications(&only).await.unwrap();
    assert_eq!(got.iter().map(|n| n.id).collect::<Vec<_>>(), [one.id]);
}

async fn attempts_move_the_row_on_and_are_kept_in_order(store: &dyn StateStore) {
    let ch = store.create_channel(channel("c")).await.unwrap();
    let (n, _) = store.enqueue_notification(notification(ch.id, "k", 1_000)).await.unwrap();

    store.claim_notifications(&claim("w", 2_000, 10)).await.unwrap();
    assert!(store.record_attempt(attempt(n.id, "w", AttemptOutcome::Retry, Some(12_000), 2_100)).await.unwrap());
    let row = store.notification(n.id).await.unwrap().unwrap();
    assert_eq!((row.status, row.attempts), (DeliveryStatus::Pending, 1));
    assert_eq!(row.next_attempt_at, Timestamp(12_000));
    assert_eq!(row.last_error.as_deref(), Some("retry at 2100"));
    assert_eq!(row.lease_owner, None);
    assert!(store.claim_notifications(&claim("w", 11_999, 10)).await.unwrap().is_empty(), "backing off");

    store.claim_notifications(&claim("w", 12_000, 10)).await.unwrap();
    assert!(store.record_attempt(attempt(n.id, "w", AttemptOutcome::Delivered, None, 12_500)).await.unwrap());
    let row = store.notification(n.id).await.unwrap().unwrap();
    assert_eq!((row.status, row.attempts), (DeliveryStatus::Delivered, 2));
    assert_eq!(row.delivered_at, Some(Timestamp(12_500)));
    assert_eq!(row.last_error, None);
    assert!(store.claim_notifications(&claim("w", 99_000, 10)).await.unwrap().is_empty(), "delivered is final");

    let attempts = store.list_attempts(n.id).await.unwrap();
    assert_eq!(
        attempts.iter().map(|a| (a.attempt, a.outcome)).collect::<Vec<_>>(),
        [(1, AttemptOutcome::Retry), (2, AttemptOutcome::Delivered)]
    );
    assert_eq!(attempts[0].status_code, Some(503));
    assert_eq!(attempts[1].worker, "w");
    assert_eq!(attempts[1].duration_ms, 12);

    let (dead, _) = store.enqueue_notification(notification(ch.id, "dead", 1_000)).await.unwrap();
    store.claim_notifications(&claim("w", 100_000, 10)).await.unwrap();
    store.record_attempt(attempt(dead.id, "w", AttemptOutcome::Failed, None, 100_100)).await.unwrap();
    let row = store.notification(dead.id).await.unwrap().unwrap();
    assert_eq!((row.status, row.attempts), (DeliveryStatus::Failed, 1));
    let counts: HashSet<(DeliveryStatus, i64)> = store.count_notifications().await.unwrap().into_iter().collect();
    assert_eq!(counts, HashSet::from([(DeliveryStatus::Delivered, 1), (DeliveryStatus::Failed, 1)]));
}

async fn a_lost_lease_still_records_the_attempt(store: &dyn StateStore) {
    let ch = store.create_channel(channel("c")).await.unwrap();
    let (n, _) = store.enqueue_notification(notification(ch.id, "k", 1_000)).await.unwrap();
    store.claim_notifications(&claim("slow", 2_000, 10)).await.unwrap();
    store.claim_notifications(&claim("fast", 70_000, 10)).await.unwrap();
    assert!(!store.record_attempt(attempt(n.id, "slow", AttemptOutcome::Delivered, None, 71_000)).await.unwrap());
    let row = store.notification(n.id).await.unwrap().unwrap();
    assert_eq!(row.status, DeliveryStatus::Sending, "the new owner's lease stands");
    assert_eq!(row.lease_owner.as_deref(), Some("fast"));
    assert!(store.record_attempt(attempt(n.id, "fast", AttemptOutcome::Delivered, None, 71_500)).await.unwrap());
    let attempts = store.list_attempts(n.id).await.unwrap();
    assert_eq!(attempts.iter().map(|a| a.worker.as_str()).collect::<Vec<_>>(), ["slow", "fast"]);
}

async fn released_rows_wait_without_counting_an_attempt(store: &dyn StateStore) {
    let ch = store.create_channel(channel("c")).await.unwrap();
    let (n, _) = store.enqueue_notification(notification(ch.id, "k", 1_000)).await.unwrap();
    store.claim_notifications(&claim("w", 2_000, 10)).await.unwrap();
    assert!(!store.release_notification(n.id, "someone-else", Timestamp(30_000)).await.unwrap());
    assert!(store.release_notification(n.id, "w", Timestamp(30_000)).await.unwrap());
    let row = store.notification(n.id).await.unwrap().unwrap();
    assert_eq!((row.status, row.attempts, row.next_attempt_at), (DeliveryStatus::Pending, 0, Timestamp(30_000)));
    assert!(store.claim_notifications(&claim("w", 29_999, 10)).await.unwrap().is_empty());
    assert_eq!(store.claim_notifications(&claim("w", 30_000, 10)).await.unwrap().len(), 1);
}

async fn only_dead_letters_can_be_retried(store: &dyn StateStore) {
    let ch = store.create_channel(channel("c")).await.unwrap();
    let (n, _) = store.enqueue_notification(notification(ch.id, "k", 1_000)).await.unwrap();
    assert!(store.retry_notification(n.id, 3, Timestamp(5_000)).await.unwrap().is_none(), "pending");
    store.claim_notifications(&claim("w", 2_000, 10)).await.unwrap();
    store.record_attempt(attempt(n.id, "w", AttemptOutcome::Failed, None, 2_100)).await.unwrap();
    let row = store.retry_notification(n.id, 3, Timestamp(5_000)).await.unwrap().unwrap();
    assert_eq!((row.status, row.attempts, row.max_attempts), (DeliveryStatus::Pending, 1, 4));
    assert_eq!(row.next_attempt_at, Timestamp(5_000));
    assert!(store.retry_notification(999, 3, Timestamp(5_000)).await.unwrap().is_none());
}

async fn history_filters_and_pages_newest_first(store: &dyn StateStore) {
    let a = store.create_channel(channel("a")).await.unwrap();
    let b = store.create_channel(channel("b")).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let target = if i % 2 == 0 { a.id } else { b.id };
        ids.push(
            store.enqueue_notification(notification(target, &format!("k{i}"), 1_000 * (i + 1))).await.unwrap().0.id,
        );
    }
    let query = |q: NotificationQuery| async move {
        store.list_notifications(&q).await.unwrap().into_iter().map(|n| n.dedup_key).collect::<Vec<_>>()
    };
    assert_eq!(query(NotificationQuery { limit: 10, ..Default::default() }).await, ["k4", "k3", "k2", "k1", "k0"]);
    assert_eq!(
        query(NotificationQuery { channel_id: Some(a.id), limit: 10, ..Default::default() }).await,
        ["k4", "k2", "k0"]
    );
    assert_eq!(
        query(NotificationQuery {
            since: Some(Timestamp(2_000)),
            until: Some(Timestamp(3_000)),
            limit: 10,
            ..Default::default()
        })
        .await,
        ["k2", "k1"]
    );
    assert_eq!(
        query(NotificationQuery { before_id: Some(ids[3]), limit: 2, ..Default::default() }).await,
        ["k2", "k1"]
    );
    assert_eq!(
        query(NotificationQuery { status: Some(DeliveryStatus::Failed), limit: 10, ..Default::default() }).await,
        Vec::<String>::new()
    );
}

async fn inbox_entries_are_per_user_and_marked_read(store: &dyn StateStore) {
    let new_user = |name: &str| NewUser {
        username: name.to_string(),
        password_hash: "x".to_string(),
        role: Role::Viewer,
        at: Timestamp(1),
    };
    let alice = store.create_user(new_user("alice")).await.unwrap();
    let bob = store.create_user(new_user("bob")).await.unwrap();
    let ch = store.create_channel(channel("inbox")).await.unwrap();
    let (n, _) = store.enqueue_notification(notification(ch.id, "k", 1_000)).await.unwrap();
    let entry = |user_id: i64, notification_id: Option<i64>, title: &str| NewInboxMessage {
        user_id,
        notification_id,
        severity: "warning".to_string(),
        title: title.to_string(),
        body: "body".to_string(),
        link: None,
        at: Timestamp(2_000),
    };
    let added = store
        .add_inbox_messages(&[entry(alice.id, Some(n.id), "one"), entry(bob.id, Some(n.id), "one")])
        .await
        .unwrap();
    assert_eq!(added, 2);
    // Redelivery of the same notification adds nothing.
    assert_eq!(store.add_inbox_messages(&[entry(alice.id, Some(n.id), "one")]).await.unwrap(), 0);
    store.add_inbox_messages(&[entry(alice.id, None, "two")]).await.unwrap();

    assert_eq!(store.unread_inbox_count(alice.id).await.unwrap(), 2);
    let listed = store.list_inbox(alice.id, false, None, 10).await.unwrap();
    assert_eq!(listed.iter().map(|m| m.title.as_str()).collect::<Vec<_>>(), ["two", "one"]);
    assert_eq!(store.mark_inbox_read(bob.id, Some(listed[0].id), Timestamp(3_000)).await.unwrap(), 0, "not bob's");
    assert_eq!(store.mark_inbox_read(alice.id, Some(listed[0].id), Timestamp(3_000)).await.unwrap(), 1);
    assert_eq!(store.unread_inbox_count(alice.id).await.unwrap(), 1);
    let unread = store.list_inbox(alice.id, true, None, 10).await.unwrap();
    assert_eq!(unread.iter().map(|m| m.title.as_str()).collect::<Vec<_>>(), ["one"]);
    assert_eq!(store.mark_inbox_read(alice.id, None, Timestamp(4_000)).await.unwrap(), 1);
    assert_eq!(store.unread_inbox_count(alice.id).await.unwrap(), 0);
    assert_eq!(store.unread_inbox_count(bob.id).await.unwrap(), 1);
    let paged = store.list_inbox(alice.id, false, Some(listed[0].id), 10).await.unwrap();
    assert_eq!(paged.len(), 1);
    assert_eq!(paged[0].read_at, Some(Timestamp(4_000)));
}

async fn deleting_a_channel_removes_its_history(store: &dyn StateStore) {
    let ch = store.create_channel(channel("c")).await.unwrap();
    let (n, _) = store.enqueue_notification(notification(ch.id, "k", 1_000)).await.unwrap();
    store.claim_notifications(&claim("w", 2_000, 10)).await.unwrap();
    store.record_attempt(attempt(n.id, "w", AttemptOutcome::Delivered, None, 2_100)).await.unwrap();
    assert!(store.delete_channel(ch.id).await.unwrap());
    assert!(store.notification(n.id).await.unwrap().is_none());
    assert!(store.list_attempts(n.id).await.unwrap().is_empty());
}
