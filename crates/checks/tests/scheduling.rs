//! The scheduler over real time: damping and recovery within interval + timeout, a hung
//! target that does not hold up the others, results in metrics and history, config checks,
//! secrets at rest, and the status timeline across a restart.

#![allow(clippy::unwrap_used)]

mod harness;

use std::time::{Duration, Instant};

use harness::{Harness, SlowServer, bare_settings};
use hubmon_checks::{Definition, Settings};
use hubmon_model::HealthStatus;
use serde_json::json;

/// Polls `condition` every 50 ms until it holds or `limit` passes.
async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    condition()
}

fn running() -> Settings {
    Settings { max_concurrent: 1, ..bare_settings() }
}

#[tokio::test]
async fn a_port_that_goes_away_turns_unhealthy_after_damping_and_recovers() {
    let h = Harness::with(running(), Vec::new()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let created = h
        .create(
            json!({"name": "svc", "kind": "tcp", "address": address.to_string(), "interval": "1s", "timeout": "500ms",
                      "failures_before_unhealthy": 2, "successes_before_healthy": 2}),
        )
        .await
        .unwrap();
    let status = |h: &Harness| h.checks.get(created.id).unwrap().status;
    assert!(eventually(Duration::from_secs(6), || status(&h) == HealthStatus::Healthy).await, "healthy at first");

    drop(listener);
    let went_down = Instant::now();
    // Two failures one interval apart: within 2 intervals + timeout (+ jitter).
    assert!(
        eventually(Duration::from_secs(6), || status(&h) == HealthStatus::Unhealthy).await,
        "unhealthy after 2 failures"
    );
    assert!(
        went_down.elapsed() >= Duration::from_millis(900),
        "one failure alone is damped: {:?}",
        went_down.elapsed()
    );

    let _back = tokio::net::TcpListener::bind(address).await.unwrap();
    let came_back = Instant::now();
    assert!(eventually(Duration::from_secs(6), || status(&h) == HealthStatus::Healthy).await, "recovers");
    assert!(
        came_back.elapsed() >= Duration::from_millis(900),
        "one success alone is damped: {:?}",
        came_back.elapsed()
    );

    let up = h.appender.values(r#"hubmon_check_up{check="svc", kind="tcp"}"#);
    let first_down = up.iter().position(|v| *v == 0.0).unwrap();
    assert!(up[..first_down].iter().all(|v| *v == 1.0) && up.last() == Some(&1.0), "{up:?}");
    let unhealthy = h.appender.values(r#"hubmon_check_status{check="svc", kind="tcp", status="unhealthy"}"#);
    assert!(unhealthy.contains(&1.0) && unhealthy.last() == Some(&0.0), "{unhealthy:?}");
    assert!(!h.appender.values(r#"hubmon_check_latency_seconds{check="svc", kind="tcp"}"#).is_empty());

    let history = h.checks.history(created.id, 100).await.unwrap();
    let path: Vec<_> = history.changes.iter().rev().map(|c| (c.from, c.to)).collect();
    use HealthStatus::*;
    assert_eq!(path, [(Unknown, Healthy), (Healthy, Unhealthy), (Unhealthy, Healthy)]);
    assert!(history.changes[0].ongoing && !history.changes[1].ongoing);
    assert!(history.changes[1].duration_seconds >= 0.9, "{:?}", history.changes[1]);
    let uptime = history.uptime.last_24h.unwrap();
    assert!(uptime > 10.0 && uptime < 95.0, "down for a while: {uptime}");
    assert_eq!(history.daily_uptime.len(), 90);
    assert!(history.daily_uptime[..89].iter().all(Option::is_none));
    assert!(history.results.len() >= 5 && history.results[0].at >= history.results[1].at);
    assert!(history.results.iter().any(|r| r.observed == Unhealthy && r.status == Healthy), "a damped failure is kept");
    h.stop().await;
}

#[tokio::test]
async fn a_hung_target_never_holds_up_the_others() {
    let h = Harness::with(running(), Vec::new()).await;
    let silent = SlowServer::start().await;
    h.create(json!({"name": "hung", "kind": "postgres", "url": format!("postgres://u:p@{}/db", silent.address),
                    "interval": "1s", "timeout": "800ms"}))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fine = h
        .create(json!({"name": "fine", "kind": "tcp", "address": listener.local_addr().unwrap().to_string(), "interval": "1s"}))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let results = h.checks.history(fine.id, 100).await.unwrap().results;
    assert!(results.len() >= 2, "the healthy check kept its schedule with one slot shared: {} runs", results.len());
    let report = h.checks.report();
    let hung = report.components.iter().find(|c| c.name == "hung").unwrap();
    assert_eq!(hung.status, HealthStatus::Unhealthy);
    assert_eq!(hung.message.as_deref(), Some("no answer within 800ms (timeout)"));
    assert_eq!(report.status, HealthStatus::Unhealthy, "a critical check is unhealthy");
    assert_eq!(report.counts.unhealthy, 1);
    assert_eq!(report.counts.healthy, 1);
    h.stop().await;
}

#[tokio::test]
async fn config_checks_are_read_only_replaced_at_start_and_removed_when_gone() {
    let defaults_and_one = |interval: &str| {
        let configured: Definition = Definition::from_json(
            json!({"name": "cfg", "kind": "tcp", "address": "127.0.0.1:9", "interval": interval}),
        )
        .unwrap();
        hubmon_checks::config_checks(&Settings { enabled: false, ..Settings::default() }, &[configured]).unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let secrets = hubmon_state::Secrets::generate();
    let settings = Settings { enabled: false, ..Settings::default() };
    let h = Harness::in_dir(dir, settings.clone(), defaults_and_one("10s"), secrets.clone()).await;
    let names: Vec<_> = h.checks.list().into_iter().map(|c| (c.name, c.source)).collect();
    assert_eq!(names, [("system".into(), "config"), ("state_store".into(), "config"), ("cfg".into(), "config")]);
    let id = h.id_of("cfg");
    let edit = Definition::from_json(json!({"name": "cfg", "kind": "tcp", "address": "127.0.0.1:10"})).unwrap();
    assert_eq!(h.checks.update(id, edit).await.unwrap_err().http_status(), 409);
    assert_eq!(h.checks.delete(id).await.unwrap_err().http_status(), 409);
    let ran = h.checks.run_now(id).await.unwrap();
    assert_eq!(ran.result.observed, HealthStatus::Unhealthy, "config checks can still be run by hand");
    let api = h.create(json!({"name": "mine", "kind": "tcp", "address": "127.0.0.1:9"})).await.unwrap();
    assert_eq!(
        h.create(json!({"name": "cfg", "kind": "tcp", "address": "127.0.0.1:9"})).await.unwrap_err().http_status(),
        409
    );
    let dir = h.stop().await;

    // Next start: cfg changed, and without it the second time.
    let h = Harness::in_dir(dir, settings.clone(), defaults_and_one("20s"), secrets.clone()).await;
    let cfg = h.checks.get(id).unwrap();
    assert_eq!(cfg.definition["interval"], "20s", "same id, new definition");
    assert_eq!(h.checks.get(api.id).unwrap().name, "mine", "API checks stay");
    let changes = h.checks.history(id, 10).await.unwrap().changes;
    let last = &changes[0];
    assert_eq!(
        (last.from, last.to),
        (HealthStatus::Unhealthy, HealthStatus::Unknown),
        "stopping marks the status unknown"
    );
    let dir = h.stop().await;
    let h = Harness::in_dir(dir, settings, Vec::new(), secrets).await;
    let names: Vec<_> = h.checks.list().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["mine"]);
    h.stop().await;
}

#[tokio::test]
async fn secrets_are_sealed_at_rest_masked_when_shown_and_kept_on_edit() {
    let h = Harness::new().await;
    let url = hubmon_testkit::pg_url();
    let created = h.create(json!({"name": "db", "kind": "postgres", "url": url})).await.unwrap();
    let shown = created.definition["url"].as_str().unwrap().to_string();
    assert!(shown.contains(":***@") && !shown.contains(":hubmon@"), "{shown}");
    let stored = h.store.check(created.id).await.unwrap().unwrap().definition;
    assert!(!stored.contains("hubmon@") && stored.contains("v1:"), "sealed in the store: {stored}");

    // Sending the masked form back keeps the password.
    let mut edited = created.definition.clone();
    edited["interval"] = json!("1m");
    let updated = h.checks.update(created.id, Definition::from_json(edited).unwrap()).await.unwrap();
    assert_eq!(updated.definition["interval"], "1m");
    let ran = h.checks.run_now(created.id).await.unwrap();
    assert_eq!(ran.result.observed, HealthStatus::Healthy, "{}", ran.result.message);

    // A key that cannot open it: listed, and every run says why.
    let dir = h.stop().await;
    let h = Harness::in_dir(
        dir,
        Settings { enabled: false, ..bare_settings() },
        Vec::new(),
        hubmon_state::Secrets::generate(),
    )
    .await;
    let ran = h.checks.run_now(created.id).await.unwrap();
    assert_eq!(ran.result.observed, HealthStatus::Unhealthy);
    assert!(ran.result.message.contains("cannot be opened"), "{}", ran.result.message);
    h.stop().await;
}

#[tokio::test]
async fn deleting_a_check_ends_its_series_and_renaming_starts_new_ones() {
    let h = Harness::new().await;
    let created = h.create(json!({"name": "a", "kind": "tcp", "address": "127.0.0.1:9"})).await.unwrap();
    h.checks.run_now(created.id).await.unwrap();
    let renamed = Definition::from_json(json!({"name": "b", "kind": "tcp", "address": "127.0.0.1:9"})).unwrap();
    h.checks.update(created.id, renamed).await.unwrap();
    let up_a = h.appender.values(r#"hubmon_check_up{check="a", kind="tcp"}"#);
    assert_eq!(up_a.len(), 2);
    assert!(hubmon_model::is_stale_marker(up_a[1]), "the old name's series ends");
    h.checks.run_now(created.id).await.unwrap();
    h.checks.delete(created.id).await.unwrap();
    let up_b = h.appender.values(r#"hubmon_check_up{check="b", kind="tcp"}"#);
    assert!(hubmon_model::is_stale_marker(*up_b.last().unwrap()));
    assert_eq!(h.checks.get(created.id).unwrap_err().http_status(), 404);
    assert!(h.store.check_results(created.id, 10).await.unwrap().is_empty());
    h.stop().await;
}

/// Each real server behind a proxy: healthy, then hung (a timeout) and dropping connections,
/// each noticed within one interval + timeout, then healthy again once it comes back.
#[tokio::test]
async fn databases_and_cache_that_hang_or_drop_are_noticed_and_recover() {
    use harness::{Proxy, ProxyMode, socket_of, via};
    let h = Harness::with(running(), Vec::new()).await;
    let servers = [
        ("pg", "postgres", hubmon_testkit::pg_url()),
        ("maria", "mysql", hubmon_testkit::mysql_url().await),
        ("cache", "redis", hubmon_testkit::redis_url()),
    ];
    let mut proxies = Vec::new();
    for (name, kind, url) in &servers {
        let proxy = Proxy::start(socket_of(url)).await;
        let created = h
            .create(
                json!({"name": name, "kind": kind, "url": via(url, proxy.address), "interval": "1s", "timeout": "1s",
                          "failures_before_unhealthy": 1, "successes_before_healthy": 1}),
            )
            .await
            .unwrap();
        proxies.push((created.id, *name, proxy));
    }
    // One interval (1 s, +5 % jitter) + timeout (1 s) + a margin for this shared machine.
    let within = Duration::from_secs(4);
    let status = |h: &Harness, id: i64| h.checks.get(id).unwrap();
    for (id, name, _) in &proxies {
        assert!(
            eventually(within, || status(&h, *id).status == HealthStatus::Healthy).await,
            "{name} healthy at first"
        );
    }
    for (mode, expected) in [(ProxyMode::Hang, "no answer within 1s (timeout)"), (ProxyMode::Drop, "cannot connect")] {
        for (_, _, proxy) in &proxies {
            proxy.set(mode);
        }
        for (id, name, _) in &proxies {
            let noticed = eventually(within, || status(&h, *id).status == HealthStatus::Unhealthy).await;
            let view = status(&h, *id);
            let message = view.last_result.map(|r| r.message).unwrap_or_default();
            assert!(noticed, "{name} unhealthy when {mode:?}: {message}");
            assert!(message.contains(expected), "{name} {mode:?}: {message}");
        }
        for (_, _, proxy) in &proxies {
            proxy.set(ProxyMode::Forward);
        }
        for (id, name, _) in &proxies {
            assert!(eventually(within, || status(&h, *id).status == HealthStatus::Healthy).await, "{name} recovers");
        }
    }
    h.stop().await;
}
