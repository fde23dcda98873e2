//! One suite, both backends: every test here runs against SQLite in a temp dir and against a
//! fresh database on the real PostgreSQL server (see hubmon-testkit).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

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
                    super::$name(&store, &location).await;
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
                    super::$name(&store, &location).await;
                    hubmon_state::StateStore::close(&store).await;
                }
            )*
        }
    };
}

on_both_backends!(
    users_round_trip_and_update,
    duplicate_username_is_a_conflict,
    deleting_a_user_removes_its_sessions,
    tokens_are_found_by_prefix_and_revoked_once,
    duplicate_token_prefix_is_a_conflict,
    expired_sessions_are_purged,
    audit_log_filters_and_pages_newest_first,
    audit_log_cannot_be_changed_in_sql,
    reopening_keeps_everything,
);

fn new_user(name: &str, role: Role) -> NewUser {
    NewUser { username: name.to_string(), password_hash: format!("hash-of-{name}"), role, at: Timestamp(1_000) }
}

async fn users_round_trip_and_update(store: &dyn StateStore, _location: &StoreLocation) {
    assert_eq!(store.count_users().await.unwrap(), 0);
    let alice = store.create_user(new_user("alice", Role::Viewer)).await.unwrap();
    assert_eq!(alice.username, "alice");
    assert_eq!(alice.role, Role::Viewer);
    assert!(!alice.disabled);
    assert_eq!(store.user(alice.id).await.unwrap(), Some(alice.clone()));
    assert_eq!(store.user_by_name("alice").await.unwrap(), Some(alice.clone()));
    assert_eq!(store.user_by_name("nobody").await.unwrap(), None);

    let update =
        UserUpdate { role: Some(Role::Editor), disabled: Some(true), at: Some(Timestamp(2_000)), ..Default::default() };
    let updated = store.update_user(alice.id, update).await.unwrap().unwrap();
    assert_eq!(updated.role, Role::Editor);
    assert!(updated.disabled);
    assert_eq!(updated.password_hash, alice.password_hash, "unset fields stay as they were");
    assert_eq!(updated.updated_at, Timestamp(2_000));
    assert_eq!(store.update_user(999, UserUpdate::default()).await.unwrap(), None);

    store.record_login(alice.id, Timestamp(3_000)).await.unwrap();
    assert_eq!(store.user(alice.id).await.unwrap().unwrap().last_login_at, Some(Timestamp(3_000)));
    store.create_user(new_user("bob", Role::Admin)).await.unwrap();
    let names: Vec<_> = store.list_users().await.unwrap().into_iter().map(|u| u.username).collect();
    assert_eq!(names, ["alice", "bob"]);
}

async fn duplicate_username_is_a_conflict(store: &dyn StateStore, _location: &StoreLocation) {
    store.create_user(new_user("alice", Role::Viewer)).await.unwrap();
    let error = store.create_user(new_user("alice", Role::Admin)).await.unwrap_err();
    assert!(matches!(error, Error::Conflict { .. }), "{error}");
    assert_eq!(store.count_users().await.unwrap(), 1);
}

fn session(id: &str, user_id: i64, expires_at: i64) -> Session {
    Session {
        id_hash: id.to_string(),
        user_id,
        csrf_token: format!("csrf-{id}"),
        client_addr: "127.0.0.1".to_string(),
        created_at: Timestamp(0),
        expires_at: Timestamp(expires_at),
    }
}

async fn deleting_a_user_removes_its_sessions(store: &dyn StateStore, _location: &StoreLocation) {
    let alice = store.create_user(new_user("alice", Role::Viewer)).await.unwrap();
    store.create_session(session("s1", alice.id, 10_000)).await.unwrap();
    assert_eq!(store.session("s1").await.unwrap(), Some(session("s1", alice.id, 10_000)));
    assert!(store.delete_user(alice.id).await.unwrap());
    assert!(!store.delete_user(alice.id).await.unwrap());
    assert_eq!(store.session("s1").await.unwrap(), None);
}

fn new_token(prefix: &str, role: Role) -> NewToken {
    NewToken {
        name: format!("token {prefix}"),
        prefix: prefix.to_string(),
        secret_hash: format!("hash-{prefix}"),
        role,
        created_by: "admin".to_string(),
        created_at: Timestamp(5),
        expires_at: Some(Timestamp(50)),
    }
}

async fn tokens_are_found_by_prefix_and_revoked_once(store: &dyn StateStore, _location: &StoreLocation) {
    let token = store.create_token(new_token("hm_abc", Role::Ingest)).await.unwrap();
    assert_eq!(token.role, Role::Ingest);
    assert_eq!(token.expires_at, Some(Timestamp(50)));
    assert_eq!(store.token_by_prefix("hm_abc").await.unwrap(), Some(token.clone()));
    assert_eq!(store.token_by_prefix("hm_zzz").await.unwrap(), None);
    store.touch_token(token.id, Timestamp(7)).await.unwrap();
    assert!(store.revoke_token(token.id, Timestamp(8)).await.unwrap());
    assert!(!store.revoke_token(token.id, Timestamp(9)).await.unwrap(), "already revoked");
    let listed = store.list_tokens().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].last_used_at, Some(Timestamp(7)));
    assert_eq!(listed[0].revoked_at, Some(Timestamp(8)));
}

async fn duplicate_token_prefix_is_a_conflict(store: &dyn StateStore, _location: &StoreLocation) {
    store.create_token(new_token("hm_abc", Role::Viewer)).await.unwrap();
    let error = store.create_token(new_token("hm_abc", Role::Admin)).await.unwrap_err();
    assert!(matches!(error, Error::Conflict { .. }), "{error}");
}

async fn expired_sessions_are_purged(store: &dyn StateStore, _location: &StoreLocation) {
    let alice = store.create_user(new_user("alice", Role::Viewer)).await.unwrap();
    store.create_session(session("old", alice.id, 100)).await.unwrap();
    store.create_session(session("new", alice.id, 10_000)).await.unwrap();
    assert_eq!(store.delete_expired_sessions(Timestamp(5_000)).await.unwrap(), 1);
    assert_eq!(store.session("old").await.unwrap(), None);
    assert!(store.session("new").await.unwrap().is_some());
    store.delete_user_sessions(alice.id).await.unwrap();
    assert_eq!(store.session("new").await.unwrap(), None);
}

fn audit(at: i64, actor: &str, action: &str, outcome: Outcome) -> NewAuditEntry {
    NewAuditEntry {
        at: Timestamp(at),
        actor: actor.to_string(),
        actor_role: Some(Role::Admin),
        action: action.to_string(),
        target: Some(format!("thing:{at}")),
        summary: serde_json::json!({"name": "x", "password": "***"}),
        client_addr: "10.0.0.1".to_string(),
        request_id: Some(format!("req-{at}")),
        outcome,
        status: if outcome == Outcome::Success { 200 } else { 403 },
    }
}

async fn audit_log_filters_and_pages_newest_first(store: &dyn StateStore, _location: &StoreLocation) {
    for at in 1..=10 {
        let actor = if at % 2 == 0 { "alice" } else { "bob" };
        let outcome = if at == 3 { Outcome::Denied } else { Outcome::Success };
        store.append_audit(audit(at, actor, "user.create", outcome)).await.unwrap();
    }
    let page = |query: AuditQuery| async move { store.list_audit(&query).await.unwrap() };
    let all = page(AuditQuery { limit: 100, ..Default::default() }).await;
    assert_eq!(all.iter().map(|e| e.at.0).collect::<Vec<_>>(), (1..=10).rev().collect::<Vec<_>>());
    assert_eq!(all[0].summary, serde_json::json!({"name": "x", "password": "***"}));
    assert_eq!(all[0].request_id.as_deref(), Some("req-10"));

    let first = page(AuditQuery { limit: 4, ..Default::default() }).await;
    let second = page(AuditQuery { limit: 4, before_id: Some(first[3].id), ..Default::default() }).await;
    assert_eq!(second.iter().map(|e| e.at.0).collect::<Vec<_>>(), [6, 5, 4, 3]);

    let alice = page(AuditQuery { actor: Some("alice".into()), limit: 100, ..Default::default() }).await;
    assert_eq!(alice.len(), 5);
    let denied = page(AuditQuery { outcome: Some(Outcome::Denied), limit: 100, ..Default::default() }).await;
    assert_eq!(denied.iter().map(|e| e.at.0).collect::<Vec<_>>(), [3]);
    let window =
        page(AuditQuery { since: Some(Timestamp(4)), until: Some(Timestamp(6)), limit: 100, ..Default::default() })
            .await;
    assert_eq!(window.len(), 3);
    let none = page(AuditQuery { action: Some("user.delete".into()), limit: 100, ..Default::default() }).await;
    assert!(none.is_empty());
    let target = page(AuditQuery { target: Some("thing:7".into()), limit: 100, ..Default::default() }).await;
    assert_eq!(target.len(), 1);
}

/// The API has no way to change the audit log; the schema refuses it too, so a bug in a future
/// query cannot either.
async fn audit_log_cannot_be_changed_in_sql(store: &dyn StateStore, location: &StoreLocation) {
    store.append_audit(audit(1, "alice", "user.create", Outcome::Success)).await.unwrap();
    // Reach the database beside the store, as an operator with the app's credentials would.
    let update = raw_sql(location, "UPDATE audit_log SET actor = 'mallory'").await;
    let delete = raw_sql(location, "DELETE FROM audit_log").await;
    assert!(update.is_err(), "UPDATE must be refused");
    assert!(delete.is_err(), "DELETE must be refused");
    let entries = store.list_audit(&AuditQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].actor, "alice");
}

async fn raw_sql(location: &StoreLocation, sql: &str) -> Result<u64, sqlx::Error> {
    use sqlx::{Connection, Executor};
    match location {
        StoreLocation::Sqlite(path) => {
            let url = format!("sqlite:{}", path.display());
            let mut connection = sqlx::SqliteConnection::connect(&url).await?;
            connection.execute(sql).await.map(|done| done.rows_affected())
        }
        StoreLocation::Postgres(url) => {
            let mut connection = sqlx::PgConnection::connect(url).await?;
            connection.execute(sql).await.map(|done| done.rows_affected())
        }
    }
}

async fn reopening_keeps_everything(store: &dyn StateStore, location: &StoreLocation) {
    // A restart is a new pool over the same data: the store must hold no state of its own.
    let alice = store.create_user(new_user("alice", Role::Admin)).await.unwrap();
    store.append_audit(audit(1, "alice", "user.create", Outcome::Success)).await.unwrap();
    store.close().await;
    let reopened = SqlStore::open(location, Duration::from_secs(5)).await.unwrap();
    assert_eq!(reopened.user(alice.id).await.unwrap(), Some(alice));
    assert_eq!(reopened.list_audit(&AuditQuery { limit: 10, ..Default::default() }).await.unwrap().len(), 1);
}
