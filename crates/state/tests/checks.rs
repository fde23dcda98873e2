//! The health check tables on both backends: SQLite in a temp dir and a fresh database on the
//! real PostgreSQL server.

#![allow(clippy::unwrap_used)]

use hubmon_model::Timestamp;
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
    checks_round_trip_and_names_are_unique,
    results_are_bounded_per_check_newest_first,
    status_changes_start_with_the_status_at_since,
    pruning_keeps_each_checks_current_status,
    deleting_a_check_removes_its_history,
    pool_usage_is_reported,
);

fn new_check(name: &str, at: i64) -> NewCheck {
    NewCheck {
        name: name.to_string(),
        kind: "tcp".to_string(),
        source: CheckSource::Api,
        definition: format!(r#"{{"name":"{name}","kind":"tcp","target":"127.0.0.1:1"}}"#),
        at: Timestamp(at),
    }
}

fn result(check_id: i64, at: i64, status: &str) -> NewCheckResult {
    NewCheckResult {
        check_id,
        at: Timestamp(at),
        status: status.to_string(),
        observed: status.to_string(),
        latency_us: Some(1_500),
        message: format!("at {at}"),
        details: "{}".to_string(),
    }
}

fn change(check_id: i64, at: i64, from: &str, to: &str) -> NewStatusChange {
    NewStatusChange {
        check_id,
        at: Timestamp(at),
        from_status: from.to_string(),
        to_status: to.to_string(),
        message: String::new(),
    }
}

async fn checks_round_trip_and_names_are_unique(store: &dyn StateStore) {
    let created = store.create_check(new_check("db", 1_000)).await.unwrap();
    assert_eq!(created.name, "db");
    assert_eq!(created.source, CheckSource::Api);
    assert_eq!(store.check(created.id).await.unwrap(), Some(created.clone()));
    assert_eq!(store.check_by_name("db").await.unwrap(), Some(created.clone()));
    assert!(matches!(store.create_check(new_check("db", 2_000)).await, Err(Error::Conflict { .. })));

    let mut update = new_check("db-main", 3_000);
    update.source = CheckSource::Config;
    let updated = store.update_check(created.id, update).await.unwrap().unwrap();
    assert_eq!(updated.name, "db-main");
    assert_eq!(updated.source, CheckSource::Config);
    assert_eq!(updated.created_at, Timestamp(1_000));
    assert_eq!(updated.updated_at, Timestamp(3_000));
    assert_eq!(store.update_check(9_999, new_check("x", 1)).await.unwrap(), None);

    let other = store.create_check(new_check("cache", 4_000)).await.unwrap();
    assert!(matches!(store.update_check(other.id, new_check("db-main", 5_000)).await, Err(Error::Conflict { .. })));
    let names: Vec<_> = store.list_checks().await.unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["db-main", "cache"]);
}

async fn results_are_bounded_per_check_newest_first(store: &dyn StateStore) {
    let a = store.create_check(new_check("a", 0)).await.unwrap();
    let b = store.create_check(new_check("b", 0)).await.unwrap();
    for at in 1..=10 {
        store.record_check_result(result(a.id, at, "healthy"), 4).await.unwrap();
    }
    store.record_check_result(result(b.id, 100, "unhealthy"), 4).await.unwrap();
    let kept = store.check_results(a.id, 100).await.unwrap();
    let times: Vec<_> = kept.iter().map(|r| r.at.as_millis()).collect();
    assert_eq!(times, [10, 9, 8, 7], "the newest four, newest first");
    assert_eq!(kept[0].latency_us, Some(1_500));
    assert_eq!(store.check_results(a.id, 2).await.unwrap().len(), 2);
    assert_eq!(store.check_results(b.id, 100).await.unwrap().len(), 1, "another check's results are untouched");
}

async fn status_changes_start_with_the_status_at_since(store: &dyn StateStore) {
    let check = store.create_check(new_check("a", 0)).await.unwrap();
    store.record_status_change(change(check.id, 100, "unknown", "healthy")).await.unwrap();
    store.record_status_change(change(check.id, 200, "healthy", "unhealthy")).await.unwrap();
    store
        .record_status_changes(&[
            change(check.id, 300, "unhealthy", "healthy"),
            change(check.id, 400, "healthy", "unknown"),
        ])
        .await
        .unwrap();
    store.record_status_changes(&[]).await.unwrap();
    let changes = store.status_changes(check.id, Timestamp(250)).await.unwrap();
    let times: Vec<_> = changes.iter().map(|c| c.at.as_millis()).collect();
    assert_eq!(times, [200, 300, 400]);
    assert_eq!(changes[0].to_status, "unhealthy");
    assert_eq!(store.status_changes(check.id, Timestamp(0)).await.unwrap().len(), 4);
    assert_eq!(store.status_changes(check.id, Timestamp(1_000)).await.unwrap().len(), 1);
}

async fn pruning_keeps_each_checks_current_status(store: &dyn StateStore) {
    let a = store.create_check(new_check("a", 0)).await.unwrap();
    let b = store.create_check(new_check("b", 0)).await.unwrap();
    store.record_status_change(change(a.id, 100, "unknown", "healthy")).await.unwrap();
    store.record_status_change(change(a.id, 200, "healthy", "degraded")).await.unwrap();
    store.record_status_change(change(b.id, 150, "unknown", "healthy")).await.unwrap();
    assert_eq!(store.prune_status_changes(Timestamp(1_000)).await.unwrap(), 1);
    let a_left = store.status_changes(a.id, Timestamp(0)).await.unwrap();
    assert_eq!(a_left.len(), 1);
    assert_eq!(a_left[0].to_status, "degraded");
    assert_eq!(store.status_changes(b.id, Timestamp(0)).await.unwrap().len(), 1);
}

async fn deleting_a_check_removes_its_history(store: &dyn StateStore) {
    let check = store.create_check(new_check("a", 0)).await.unwrap();
    store.record_check_result(result(check.id, 1, "healthy"), 10).await.unwrap();
    store.record_status_change(change(check.id, 1, "unknown", "healthy")).await.unwrap();
    assert!(store.delete_check(check.id).await.unwrap());
    assert!(!store.delete_check(check.id).await.unwrap());
    assert!(store.check_results(check.id, 10).await.unwrap().is_empty());
    assert!(store.status_changes(check.id, Timestamp(0)).await.unwrap().is_empty());
}

async fn pool_usage_is_reported(store: &dyn StateStore) {
    store.ping().await.unwrap();
    let usage = store.pool_usage();
    assert!(usage.max >= 1);
    assert!(usage.size >= 1, "a pool that just answered has a connection open");
    assert!(usage.idle <= usage.size);
}
