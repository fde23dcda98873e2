//! Sends an encoded workload to a remote_write URL with `concurrency` requests in flight.
//!
//! Workers take requests from one shared, step-major list, so the fleet advances through time
//! together; a request waits until the previous step of its group is acknowledged, so each
//! series' samples arrive in time order (Prometheus 2.42 refuses older samples, and so does
//! hubmon beyond its out-of-order window). 5xx, 429 and connection errors are retried with
//! backoff, like a Prometheus shard; other 4xx are counted as refused and not retried.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde::Serialize;
use tokio::sync::Notify;

use crate::workload::Encoded;

/// Where to send and how hard.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub bearer_token: Option<String>,
    pub concurrency: usize,
}

/// What a run achieved.
#[derive(Debug, Default, Serialize)]
pub struct Outcome {
    pub wall_seconds: f64,
    pub requests: u64,
    pub accepted_samples: u64,
    pub refused_samples: u64,
    /// Accepted samples per second of wall time.
    pub samples_per_second: f64,
    pub retries: u64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
    /// CPU the generator itself spent while sending (it shares the machine with the server).
    pub generator_cpu_seconds: f64,
    /// The first few refusals, as the receiver worded them.
    pub errors: Vec<String>,
}

struct Shared {
    encoded: Encoded,
    next: AtomicUsize,
    /// Per group: the next step allowed to be sent.
    sent_steps: Vec<AtomicUsize>,
    step_done: Vec<Notify>,
    accepted: AtomicU64,
    refused: AtomicU64,
    retries: AtomicU64,
    errors: std::sync::Mutex<Vec<String>>,
}

/// Sends every request of `encoded` to `target`; returns once all are answered.
pub async fn send(encoded: Encoded, target: &Target) -> anyhow::Result<Outcome> {
    let client = reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(target.concurrency)
        .timeout(Duration::from_secs(120))
        .build()?;
    let groups = encoded.groups;
    let shared = Arc::new(Shared {
        encoded,
        next: AtomicUsize::new(0),
        sent_steps: (0..groups).map(|_| AtomicUsize::new(0)).collect(),
        step_done: (0..groups).map(|_| Notify::new()).collect(),
        accepted: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        retries: AtomicU64::new(0),
        errors: std::sync::Mutex::new(Vec::new()),
    });
    let cpu_before = crate::process_cpu_time();
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..target.concurrency.max(1) {
        let (shared, client, target) = (shared.clone(), client.clone(), target.clone());
        workers.spawn(async move { worker(&shared, &client, &target).await });
    }
    let mut latencies: Vec<Duration> = Vec::with_capacity(shared.encoded.requests.len());
    while let Some(result) = workers.join_next().await {
        latencies.extend(result?);
    }
    let wall = started.elapsed();
    let generator_cpu = crate::process_cpu_time().saturating_sub(cpu_before);
    latencies.sort();
    let percentile = |p: f64| {
        latencies.get(((latencies.len() as f64 - 1.0) * p).round() as usize).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    let accepted = shared.accepted.load(Ordering::Relaxed);
    let errors = shared.errors.lock().map(|e| e.clone()).unwrap_or_default();
    Ok(Outcome {
        wall_seconds: wall.as_secs_f64(),
        requests: latencies.len() as u64,
        accepted_samples: accepted,
        refused_samples: shared.refused.load(Ordering::Relaxed),
        samples_per_second: accepted as f64 / wall.as_secs_f64().max(1e-9),
        retries: shared.retries.load(Ordering::Relaxed),
        latency_ms_p50: percentile(0.5),
        latency_ms_p99: percentile(0.99),
        latency_ms_max: percentile(1.0),
        generator_cpu_seconds: generator_cpu.as_secs_f64(),
        errors,
    })
}

async fn worker(shared: &Shared, client: &reqwest::Client, target: &Target) -> Vec<Duration> {
    let mut latencies = Vec::new();
    loop {
        let index = shared.next.fetch_add(1, Ordering::Relaxed);
        let Some(request) = shared.encoded.requests.get(index) else { break };
        // Wait for the previous step of this group (almost never blocks: the list is step-major).
        loop {
            let notified = shared.step_done[request.group].notified();
            if shared.sent_steps[request.group].load(Ordering::Acquire) == request.step {
                break;
            }
            notified.await;
        }
        let started = Instant::now();
        let (accepted, refused) = post_until_answered(shared, client, target, request).await;
        latencies.push(started.elapsed());
        shared.accepted.fetch_add(accepted, Ordering::Relaxed);
        shared.refused.fetch_add(refused, Ordering::Relaxed);
        shared.sent_steps[request.group].store(request.step + 1, Ordering::Release);
        shared.step_done[request.group].notify_waiters();
    }
    latencies
}

/// Posts one request, retrying what is retryable; returns (accepted, refused) samples.
async fn post_until_answered(
    shared: &Shared,
    client: &reqwest::Client,
    target: &Target,
    request: &crate::workload::Request,
) -> (u64, u64) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let mut builder = client
            .post(&target.url)
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .header("User-Agent", "hubmon-bench/0.1")
            .body(request.body.clone());
        if let Some(token) = &target.bearer_token {
            builder = builder.bearer_auth(token);
        }
        let failure = match builder.send().await {
            Ok(response) if response.status().is_success() => {
                // Drain the body so the connection goes back to the pool.
                let _ = response.bytes().await;
                return (request.samples, 0);
            }
            Ok(response) if is_retryable(response.status()) => {
                format!("{}: {}", response.status(), response.text().await.unwrap_or_default())
            }
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                let accepted = stored_count(&text).unwrap_or(0).min(request.samples);
                record_error(shared, format!("{status}: {}", text.trim()));
                return (accepted, request.samples - accepted);
            }
            Err(error) => format!("request failed: {error}"),
        };
        shared.retries.fetch_add(1, Ordering::Relaxed);
        record_error(shared, format!("retrying: {failure}"));
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

fn is_retryable(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

fn record_error(shared: &Shared, message: String) {
    if let Ok(mut errors) = shared.errors.lock()
        && errors.len() < 10
    {
        errors.push(message.chars().take(500).collect());
    }
}

/// hubmon answers a partly refused request with "stored N samples, refused M: …".
fn stored_count(text: &str) -> Option<u64> {
    let rest = &text[text.find("stored ")? + "stored ".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_stored_count_from_a_partial_refusal() {
        let body = r#"{"error":"stored 4990 samples, refused 10: {__name__=\"x\"}: too old"}"#;
        assert_eq!(stored_count(body), Some(4990));
        assert_eq!(stored_count("out of order sample"), None);
    }
}
