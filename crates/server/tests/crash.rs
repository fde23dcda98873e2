//! `kill -9` in the middle of sustained ingest: after restart, every acknowledged sample is
//! there. The count is read straight from the metrics store's files once the server is dead.

#![allow(clippy::unwrap_used, clippy::zombie_processes)]

mod common;

use std::time::Duration;

use common::process::{create_token, serve};

use hubmon_model::{Matcher, Querier};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_sample_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let (mut server, address) = serve(&data, &[], &[]);
    let token = create_token(&data, &[], "ingest");

    let client = reqwest::Client::new();
    let base =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64 - 3_600_000;
    let mut acknowledged = 0u64;
    let mut batch_index = 0i64;
    let killer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        server.kill().unwrap(); // SIGKILL
        server.wait().unwrap();
    });
    loop {
        let metrics: Vec<serde_json::Value> = (0..100)
            .map(|i| {
                serde_json::json!({
                    "name": "crash_test_samples",
                    "labels": {"worker": format!("w{}", i % 10)},
                    "value": batch_index as f64,
                    "timestamp": ((base + batch_index * 10 + (i / 10)) as f64) / 1000.0,
                })
            })
            .collect();
        let sent =
            client.post(format!("{address}/api/v1/monitoring/metrics")).bearer_auth(&token).json(&metrics).send().await;
        match sent {
            Ok(response) if response.status() == 200 => {
                let result: serde_json::Value = response.json().await.unwrap_or_default();
                acknowledged += result["accepted"].as_u64().unwrap_or(0);
            }
            Ok(response) => panic!("unexpected answer {}", response.status()),
            Err(_) => break, // the server is gone
        }
        batch_index += 1;
    }
    killer.await.unwrap();
    assert!(acknowledged > 1000, "too little ingest before the kill to mean anything: {acknowledged}");

    // Read the store directly, as the restarted server would.
    let store = hubmon_tsdb::Tsdb::open(&dir.path().join("metrics"), hubmon_tsdb::Config::default()).unwrap();
    let stored: u64 = store
        .select(&[Matcher::equal("__name__", "crash_test_samples")], i64::MIN, i64::MAX)
        .unwrap()
        .iter()
        .map(|s| s.samples.len() as u64)
        .sum();
    drop(store);
    assert!(stored >= acknowledged, "lost acknowledged samples: stored {stored}, acknowledged {acknowledged}");
    assert!(stored <= acknowledged + 100, "more than the one in-flight batch extra: {stored} vs {acknowledged}");

    // And the server itself comes back with them.
    let (mut again, address) = serve(&data, &[], &[]);
    let admin = reqwest::Client::new().get(format!("{address}/healthz")).send().await.unwrap();
    assert_eq!(admin.status(), 200);
    again.kill().unwrap();
    again.wait().unwrap();
    println!("acknowledged {acknowledged} samples, {stored} stored after kill -9");
}
