//! The log service's wiring: opening the store, storing parsed lines (and feeding access-log
//! lines to the request-event recorder), the store's background work, and the syslog
//! listeners. Parsing lives in `hubmon_ingest::logs`, storage and search in `hubmon_logstore`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hubmon_ingest::logs::{Limits, syslog};
use hubmon_logstore::LogStore;
use hubmon_model::{LogEntry, Timestamp};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::AppState;
use crate::config::logs::LogsConfig;

/// How often the store checks whether its head is due for a flush.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);
/// Retention is applied this often (it only deletes whole segments).
const RETENTION_INTERVAL: Duration = Duration::from_secs(60);

/// The log store as the server shares it.
pub struct LogService {
    pub store: Arc<LogStore>,
    /// Cancelled when the server stops, so live tails end and let shutdown finish.
    pub stopping: CancellationToken,
    /// Woken by an append that leaves the head due for a flush, so a burst is flushed at
    /// `head_max_lines` instead of growing until the next maintenance tick.
    flush_due: tokio::sync::Notify,
}

impl std::ops::Deref for LogService {
    type Target = LogStore;

    fn deref(&self) -> &LogStore {
        &self.store
    }
}

/// Opens the log store in `<data_dir>/logs`, recovering from any crash.
pub async fn open(data_dir: &std::path::Path, config: &LogsConfig) -> anyhow::Result<LogService> {
    let dir = data_dir.join("logs");
    let options = config.store_options();
    let store = tokio::task::spawn_blocking(move || LogStore::open(&dir, options))
        .await
        .context("log store task failed")?
        .context("cannot open the log store")?;
    Ok(LogService { store: Arc::new(store), stopping: CancellationToken::new(), flush_due: tokio::sync::Notify::new() })
}

/// Why lines could not be stored.
#[derive(Debug, thiserror::Error)]
#[error("the log store cannot write ({0}); retry later")]
pub struct StoreFailed(String);

/// Stores lines durably (the call returns once they are in the write-ahead log) and records
/// access-log lines as request events. Returns how many were stored.
pub async fn store(app: &AppState, entries: Vec<LogEntry>) -> Result<usize, StoreFailed> {
    if entries.is_empty() {
        return Ok(0);
    }
    let events: Vec<_> = if app.config.logs.api_metrics {
        entries.iter().filter_map(hubmon_ingest::logs::access::request_event).collect()
    } else {
        Vec::new()
    };
    let count = entries.len();
    let logs = app.logs.store.clone();
    crate::blocking::cpu_bound(move || logs.append(entries)).await.map_err(|e| StoreFailed(e.to_string()))?.map_err(
        |e| {
            tracing::error!(error = %e, "log append failed");
            StoreFailed(e.to_string())
        },
    )?;
    if app.logs.needs_flush() {
        app.logs.flush_due.notify_one();
    }
    // Only stored lines count as requests, so a retried batch is not counted twice.
    if !events.is_empty() {
        app.requests.record(events);
    }
    Ok(count)
}

/// Starts the store's background tasks and the syslog listeners the config asks for. A
/// listener that cannot bind is an error at start, not a silent gap.
pub async fn spawn(state: &AppState, tasks: &TaskTracker, shutdown: &CancellationToken) -> anyhow::Result<()> {
    let (stopping, shutdown_seen) = (state.logs.stopping.clone(), shutdown.clone());
    tasks.spawn(async move {
        shutdown_seen.cancelled().await;
        stopping.cancel();
    });
    tasks.spawn(maintain(state.clone(), shutdown.clone()));
    tasks.spawn(sync(state.clone(), shutdown.clone()));
    let config = &state.config.logs;
    if !config.syslog_udp.is_empty() {
        let socket = UdpSocket::bind(&config.syslog_udp)
            .await
            .with_context(|| format!("cannot listen for syslog on udp {}", config.syslog_udp))?;
        tracing::info!(addr = %config.syslog_udp, "syslog over UDP");
        tasks.spawn(syslog_udp(state.clone(), socket, shutdown.clone()));
    }
    if !config.syslog_tcp.is_empty() {
        let listener = TcpListener::bind(&config.syslog_tcp)
            .await
            .with_context(|| format!("cannot listen for syslog on tcp {}", config.syslog_tcp))?;
        tracing::info!(addr = %config.syslog_tcp, "syslog over TCP");
        tasks.spawn(syslog_tcp(state.clone(), listener, tasks.clone(), shutdown.clone()));
    }
    Ok(())
}

/// Flushes the head into segments when due, and applies retention.
async fn maintain(state: AppState, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(MAINTENANCE_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_retention: Option<tokio::time::Instant> = None;
    // After a failure (a full disk, say) only the tick retries, not every append.
    let mut failed = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
            _ = state.logs.flush_due.notified(), if !failed => {}
        }
        let retention_due = last_retention.is_none_or(|t| t.elapsed() >= RETENTION_INTERVAL);
        if !retention_due && !state.logs.needs_flush() {
            continue;
        }
        if retention_due {
            last_retention = Some(tokio::time::Instant::now());
        }
        let logs = state.logs.store.clone();
        let outcome = tokio::task::spawn_blocking(move || logs.maintain(Timestamp::now())).await;
        failed = !matches!(outcome, Ok(Ok(())));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "log store maintenance failed"),
            Err(error) => tracing::error!(%error, "log store maintenance task failed"),
        }
    }
}

/// fsyncs the log WAL every `logs.wal_sync_interval` (against power loss).
async fn sync(state: AppState, shutdown: CancellationToken) {
    let interval = state.config.logs.wal_sync_interval.as_duration();
    if interval.is_zero() {
        return;
    }
    let mut every = tokio::time::interval(interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = every.tick() => false,
        };
        let logs = state.logs.store.clone();
        if let Ok(Err(error)) = tokio::task::spawn_blocking(move || logs.sync()).await {
            tracing::error!(%error, "could not sync the log write-ahead log");
        }
        if stopping {
            return;
        }
    }
}

fn limits(state: &AppState) -> Limits {
    state.config.logs.limits()
}

/// Stores a batch of syslog messages; a message that does not parse is counted and logged.
async fn store_syslog(state: &AppState, frames: Vec<Vec<u8>>, peer: &str) {
    let limits = limits(state);
    let now = Timestamp::now();
    let mut entries = Vec::with_capacity(frames.len());
    for frame in frames {
        match syslog::parse(&frame, now, &limits) {
            Ok(entry) => entries.push(entry),
            Err(reason) => tracing::warn!(%peer, %reason, "syslog message refused"),
        }
    }
    if let Err(error) = store(state, entries).await {
        tracing::error!(%peer, %error, "syslog messages lost");
    }
}

async fn syslog_udp(state: AppState, socket: UdpSocket, shutdown: CancellationToken) {
    let mut buffer = vec![0u8; 65_536];
    loop {
        let received = tokio::select! {
            _ = shutdown.cancelled() => return,
            received = socket.recv_from(&mut buffer) => received,
        };
        match received {
            // One datagram is one message (RFC 5426); some senders still end it with a newline.
            Ok((len, peer)) => store_syslog(&state, vec![buffer[..len].to_vec()], &peer.to_string()).await,
            Err(error) => tracing::warn!(%error, "syslog UDP receive failed"),
        }
    }
}

async fn syslog_tcp(state: AppState, listener: TcpListener, tasks: TaskTracker, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                tasks.spawn(syslog_connection(state.clone(), stream, peer.to_string(), shutdown.clone()));
            }
            Err(error) => {
                tracing::warn!(%error, "syslog TCP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn syslog_connection(
    state: AppState,
    mut stream: tokio::net::TcpStream,
    peer: String,
    shutdown: CancellationToken,
) {
    let limit = limits(&state).max_line_bytes;
    let mut framer = syslog::Framer::default();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = tokio::select! {
            _ = shutdown.cancelled() => break,
            read = stream.read(&mut buffer) => read,
        };
        let n = match read {
            Ok(0) => break,
            Ok(n) => n,
            Err(error) => {
                tracing::debug!(%peer, %error, "syslog connection failed");
                break;
            }
        };
        match framer.push(&buffer[..n], limit) {
            Ok(frames) if frames.is_empty() => {}
            Ok(frames) => store_syslog(&state, frames, &peer).await,
            Err(reason) => {
                tracing::warn!(%peer, %reason, "syslog stream cannot be framed; closing it");
                return;
            }
        }
    }
    if let Some(last) = framer.finish() {
        store_syslog(&state, vec![last], &peer).await;
    }
}

/// `hubmon logs export` and `hubmon logs import`: moving lines in and out of a running
/// server over its HTTP API (the data directory is locked while it runs).
pub mod transfer {
    use std::io::{BufRead, Write};

    use anyhow::{Context, bail};
    use serde_json::Value;

    /// Where the server is and how to authenticate.
    #[derive(clap::Args, Debug, Clone)]
    pub struct Target {
        /// The server's base URL.
        #[arg(long, default_value = "http://127.0.0.1:9550")]
        pub url: String,
        /// An API token (`hubmon token create`): viewer for export, ingest for import.
        #[arg(long, env = "HUBMON_TOKEN", hide_env_values = true)]
        pub token: String,
    }

    /// Writes every line matching `query` in `[from, to)` as NDJSON to `out`, newest first.
    /// Returns how many lines were written.
    pub async fn export(
        target: &Target,
        query: &str,
        from: Option<&str>,
        to: Option<&str>,
        out: &mut dyn Write,
    ) -> anyhow::Result<u64> {
        let client = reqwest::Client::new();
        let mut cursor = String::new();
        let mut written = 0u64;
        loop {
            let mut params = vec![("q", query.to_string()), ("limit", "1000".to_string()), ("cursor", cursor.clone())];
            if let Some(from) = from {
                params.push(("from", from.to_string()));
            }
            if let Some(to) = to {
                params.push(("to", to.to_string()));
            }
            let response = client
                .get(format!("{}/api/v1/logs/search", target.url.trim_end_matches('/')))
                .bearer_auth(&target.token)
                .query(&params)
                .send()
                .await
                .with_context(|| format!("cannot reach {}", target.url))?;
            let status = response.status();
            let page: Value = response.json().await.context("the server's answer is not JSON")?;
            if !status.is_success() {
                bail!("search failed ({status}): {}", page["error"]["message"].as_str().unwrap_or("no message"));
            }
            for hit in page["hits"].as_array().into_iter().flatten() {
                let mut line = hit.clone();
                if let Some(object) = line.as_object_mut() {
                    object.remove("highlights");
                    object.remove("id");
                }
                serde_json::to_writer(&mut *out, &line)?;
                out.write_all(b"\n")?;
                written += 1;
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = next.to_string(),
                None => break,
            }
        }
        out.flush()?;
        Ok(written)
    }

    /// Lines sent per request.
    const BATCH: usize = 2000;

    /// Sends a file of NDJSON (each line a JSON object) or plain text (each line a message)
    /// to the server, showing progress on stderr. Returns (accepted, rejected).
    pub async fn import(target: &Target, path: &std::path::Path) -> anyhow::Result<(u64, u64)> {
        let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let total_bytes = file.metadata().map(|m| m.len()).unwrap_or(0).max(1);
        let reader = std::io::BufReader::new(file);
        let client = reqwest::Client::new();
        let (mut accepted, mut rejected, mut read_bytes, mut line_number) = (0u64, 0u64, 0u64, 0u64);
        let mut batch = String::new();
        let mut in_batch = 0;
        let mut lines = reader.split(b'\n');
        loop {
            let next = lines.next().transpose().with_context(|| format!("cannot read {}", path.display()))?;
            let done = next.is_none();
            if let Some(raw) = next {
                line_number += 1;
                read_bytes += raw.len() as u64 + 1;
                let text = String::from_utf8_lossy(&raw);
                let text = text.trim_end_matches('\r');
                if !text.trim().is_empty() {
                    if text.trim_start().starts_with('{') {
                        batch.push_str(text);
                    } else {
                        batch.push_str(&serde_json::json!({"message": text}).to_string());
                    }
                    batch.push('\n');
                    in_batch += 1;
                }
            }
            if in_batch == BATCH || (done && in_batch > 0) {
                let response = client
                    .post(format!("{}/api/v1/logs", target.url.trim_end_matches('/')))
                    .bearer_auth(&target.token)
                    .header("content-type", "application/x-ndjson")
                    .body(std::mem::take(&mut batch))
                    .send()
                    .await
                    .with_context(|| format!("cannot reach {}", target.url))?;
                let status = response.status();
                let result: Value = response.json().await.unwrap_or_default();
                if !(status.is_success() || status.as_u16() == 422) {
                    bail!(
                        "import stopped at line {line_number} ({status}): {}",
                        result["error"]["message"].as_str().unwrap_or("no message")
                    );
                }
                accepted += result["accepted"].as_u64().unwrap_or(0);
                rejected += result["rejected"].as_u64().unwrap_or(0);
                for rejection in result["rejections"].as_array().into_iter().flatten().take(3) {
                    eprintln!("\rline refused: {}", rejection["reason"].as_str().unwrap_or("?"));
                }
                in_batch = 0;
                let percent = (read_bytes.min(total_bytes) * 100) / total_bytes;
                let filled = (percent / 5) as usize;
                eprint!(
                    "\r[{}{}] {percent:>3}%  {accepted} stored, {rejected} refused",
                    "#".repeat(filled),
                    " ".repeat(20 - filled)
                );
            }
            if done {
                break;
            }
        }
        eprintln!();
        Ok((accepted, rejected))
    }
}
