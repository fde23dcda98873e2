//! Local stand-ins for the services notifications go to: an HTTP receiver that records every
//! request and answers as scripted (failures, Retry-After, hangs), and a real SMTP server
//! (Python's aiosmtpd) that writes each message it accepts to disk.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hubmon_notify::{ChannelInput, Config, Notifier};
use hubmon_state::{Secrets, SqlStore, StateStore, StoreLocation};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// One request the receiver saw.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.to_str().unwrap().to_string())
    }
}

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
    /// Wait this long before answering (after recording the request).
    pub delay: Duration,
}

impl Reply {
    pub fn ok(body: &str) -> Self {
        Self { status: 200, body: body.to_string(), headers: Vec::new(), delay: Duration::ZERO }
    }

    pub fn status(status: u16) -> Self {
        Self { status, body: format!("status {status}"), headers: Vec::new(), delay: Duration::ZERO }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct ReceiverState {
    requests: Mutex<Vec<Recorded>>,
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Option<Reply>>,
}

/// An HTTP server on loopback standing in for Slack, DingTalk, a webhook receiver, …
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<ReceiverState>,
    stop: CancellationToken,
}

impl Receiver {
    /// Answers 200 with `default_body` unless scripted otherwise.
    pub async fn start(default_body: &str) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), default_body).await
    }

    pub async fn start_on(addr: SocketAddr, default_body: &str) -> Self {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ReceiverState::default());
        *state.default.lock().unwrap() = Some(Reply::ok(default_body));
        let app = axum::Router::new().fallback(record).with_state(state.clone());
        let stop = CancellationToken::new();
        let until = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app).with_graceful_shutdown(until.cancelled_owned()).await.unwrap();
        });
        Self { addr, state, stop }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next requests get these replies, in order; then the default again.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().unwrap().extend(replies);
    }

    pub fn set_default(&self, reply: Reply) {
        *self.state.default.lock().unwrap() = Some(reply);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.state.requests.lock().unwrap().len()
    }

    /// Waits until `n` requests arrived; panics after `within`.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + within;
        loop {
            let requests = self.requests();
            if requests.len() >= n {
                return requests;
            }
            assert!(Instant::now() < deadline, "expected {n} requests within {within:?}, got {}", requests.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn record(State(state): State<Arc<ReceiverState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 10 << 20).await.unwrap_or_default();
    state.requests.lock().unwrap().push(Recorded {
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        headers: parts.headers,
        body,
        at: Instant::now(),
    });
    let reply = {
        let scripted = state.script.lock().unwrap().pop_front();
        scripted.or_else(|| state.default.lock().unwrap().clone()).unwrap()
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (name, value) in reply.headers {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            axum::http::HeaderValue::from_str(&value).unwrap(),
        );
    }
    response
}

/// The Python interpreter with aiosmtpd: `HUBMON_TEST_PYTHON`, else the system one.
fn python_with_aiosmtpd() -> String {
    let candidates: Vec<String> = std::env::var("HUBMON_TEST_PYTHON")
        .into_iter()
        .chain(["/usr/bin/python3".to_string(), "python3".to_string()])
        .collect();
    for python in &candidates {
        let ok = Command::new(python)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return python.clone();
        }
    }
    panic!(
        "the email tests need a real SMTP server: Python 3 with aiosmtpd, tried {candidates:?}. \
         Run `source .ci/services.sh` (installs python3-aiosmtpd), or `apt-get install python3-aiosmtpd`, \
         or point HUBMON_TEST_PYTHON at an interpreter that has it"
    );
}

/// A real SMTP server (aiosmtpd) on loopback, writing accepted messages to a temp dir.
pub struct SmtpSink {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl SmtpSink {
    pub fn start() -> Self {
        Self::start_with_auth(None)
    }

    pub fn start_with_auth(auth: Option<(&str, &str)>) -> Self {
        Self::start_with(auth, None)
    }

    /// With TLS: `mode` is `starttls` or `implicit`; `identity` the PEM certificate and key files.
    pub fn start_with(auth: Option<(&str, &str)>, tls: Option<(&str, &Path, &Path)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py");
        let mut command = Command::new(python_with_aiosmtpd());
        command.arg(&script).arg(dir.path()).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        if let Some((user, password)) = auth {
            command.env("SMTP_SINK_USER", user).env("SMTP_SINK_PASSWORD", password);
        }
        if let Some((mode, certificate, key)) = tls {
            command.env("SMTP_SINK_TLS", mode).env("SMTP_SINK_CERT", certificate).env("SMTP_SINK_KEY", key);
        }
        let mut child = command.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port =
            line.trim().strip_prefix("PORT ").unwrap_or_else(|| panic!("smtp_sink.py said {line:?}")).parse().unwrap();
        Self { port, dir, child }
    }

    /// The parsed messages received so far (envelope, headers, MIME parts), oldest first.
    pub fn messages(&self) -> Vec<Value> {
        let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter_map(|p| Some((p.file_stem()?.to_str()?.parse().ok()?, p)))
            .collect();
        found.sort();
        found.into_iter().map(|(_, p)| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()).collect()
    }

    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            assert!(Instant::now() < deadline, "expected {n} emails within {within:?}, got {}", messages.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        // Closing stdin ends the server; kill in case it is stuck.
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A state store for a test, on SQLite in a temp dir or a fresh PostgreSQL database.
pub struct TestStore {
    pub store: Arc<dyn StateStore>,
    pub location: StoreLocation,
    _dir: Option<tempfile::TempDir>,
    _database: Option<hubmon_testkit::PgDatabase>,
}

impl TestStore {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let location = StoreLocation::Sqlite(dir.path().join("state.db"));
        let store = SqlStore::open(&location, Duration::from_secs(5)).await.unwrap();
        Self { store: Arc::new(store), location, _dir: Some(dir), _database: None }
    }

    pub async fn postgres() -> Self {
        let database = hubmon_testkit::PgDatabase::create().await;
        let location = StoreLocation::Postgres(database.url.clone());
        let store = SqlStore::open(&location, Duration::from_secs(5)).await.unwrap();
        Self { store: Arc::new(store), location, _dir: None, _database: Some(database) }
    }

    /// Another connection pool on the same database: what a second process would have.
    pub async fn reopen(&self) -> Arc<dyn StateStore> {
        Arc::new(SqlStore::open(&self.location, Duration::from_secs(5)).await.unwrap())
    }
}

/// Dispatcher settings that make retries and leases take milliseconds, not minutes.
pub fn fast_config() -> Config {
    Config {
        poll_interval: "50ms".parse().unwrap(),
        retry_initial: "200ms".parse().unwrap(),
        retry_max: "1s".parse().unwrap(),
        lease: "3s".parse().unwrap(),
        external_url: "http://hubmon.test/".to_string(),
        ..Config::default()
    }
}

pub fn secrets() -> Secrets {
    Secrets::from_key([7; 32])
}

pub fn notifier(store: Arc<dyn StateStore>, config: Config) -> Notifier {
    Notifier::new(store, secrets(), config).unwrap()
}

/// A running dispatcher, stopped (and awaited) on drop of the guard via [`Running::stop`].
pub struct Running {
    pub stop: CancellationToken,
    pub task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }
}

pub fn run(notifier: &Notifier) -> Running {
    let stop = CancellationToken::new();
    let task = tokio::spawn(notifier.clone().run(stop.clone()));
    Running { stop, task }
}

pub fn channel(name: &str, kind: &str, config: Value) -> ChannelInput {
    serde_json::from_value(serde_json::json!({"name": name, "kind": kind, "config": config})).unwrap()
}

pub fn alert_message(name: &str, severity: &str) -> hubmon_notify::AlertMessage {
    use std::collections::BTreeMap;
    let alert = hubmon_model::Alert {
        status: hubmon_model::AlertStatus::Firing,
        labels: BTreeMap::from([
            ("alertname".to_string(), name.to_string()),
            ("severity".to_string(), severity.to_string()),
            ("instance".to_string(), "web-1:9100".to_string()),
        ]),
        annotations: BTreeMap::from([
            ("summary".to_string(), format!("{name} on web-1")),
            ("description".to_string(), "CPU usage has been above 90% for 5 minutes.".to_string()),
        ]),
        starts_at: hubmon_model::Timestamp(1_764_400_000_000),
        ends_at: None,
        generator_url: Some("http://hubmon.test/graph?expr=cpu".to_string()),
        fingerprint: "4f1c2a9e".to_string(),
        value: Some("93.5%".to_string()),
    };
    hubmon_notify::AlertMessage::new(
        hubmon_notify::MessageKind::Alert,
        format!("{{}}:{{alertname=\"{name}\"}}"),
        vec![alert],
    )
}

/// Polls `check` until it returns `Some`, failing after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
