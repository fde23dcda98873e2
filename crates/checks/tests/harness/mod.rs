//! What the check tests share: a [`Checks`] on a SQLite state store with an in-memory
//! appender, and the local servers the HTTP, TLS and timeout cases run against.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use hubmon_checks::{CheckView, Checks, Definition, Error, ResultView, Settings, Setup};
use hubmon_model::{AppendReport, Appender, SeriesSamples, StoreError};
use hubmon_state::{SqlStore, StateStore, StoreLocation};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// Keeps what is appended, in memory: the metrics store's seam, not a stand-in for a service.
#[derive(Default)]
pub struct MemoryAppender {
    pub batches: Mutex<Vec<SeriesSamples>>,
}

impl Appender for MemoryAppender {
    fn append(&self, batch: Vec<SeriesSamples>) -> Result<AppendReport, StoreError> {
        let accepted = batch.len();
        self.batches.lock().extend(batch);
        Ok(AppendReport { accepted, ..Default::default() })
    }
}

impl MemoryAppender {
    /// Values written to the series printed as `text`, in order.
    pub fn values(&self, text: &str) -> Vec<f64> {
        self.batches
            .lock()
            .iter()
            .filter(|s| s.labels.to_string() == text)
            .flat_map(|s| s.samples.iter().map(|x| x.value))
            .collect()
    }
}

pub struct Harness {
    pub checks: Arc<Checks>,
    pub appender: Arc<MemoryAppender>,
    pub store: Arc<dyn StateStore>,
    pub secrets: hubmon_state::Secrets,
    pub shutdown: CancellationToken,
    pub dir: tempfile::TempDir,
}

impl Harness {
    /// Checks that run only when asked (`run_now`).
    pub async fn new() -> Self {
        Self::with(Settings { enabled: false, ..bare_settings() }, Vec::new()).await
    }

    pub async fn with(settings: Settings, config_checks: Vec<Definition>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::in_dir(dir, settings, config_checks, hubmon_state::Secrets::generate()).await
    }

    pub async fn in_dir(
        dir: tempfile::TempDir,
        settings: Settings,
        config_checks: Vec<Definition>,
        secrets: hubmon_state::Secrets,
    ) -> Self {
        let location = StoreLocation::Sqlite(dir.path().join("state.db"));
        let store: Arc<dyn StateStore> = Arc::new(SqlStore::open(&location, Duration::from_secs(5)).await.unwrap());
        let appender = Arc::new(MemoryAppender::default());
        let shutdown = CancellationToken::new();
        let setup = Setup {
            settings,
            config_checks,
            store: store.clone(),
            secrets: secrets.clone(),
            appender: appender.clone(),
            host: Default::default(),
        };
        let checks = Checks::start(setup, shutdown.clone()).await.unwrap();
        Self { checks, appender, store, secrets, shutdown, dir }
    }

    pub async fn create(&self, definition: Value) -> Result<CheckView, Error> {
        self.checks.create(Definition::from_json(definition)?).await
    }

    /// Creates the check and runs it once.
    pub async fn run(&self, definition: Value) -> ResultView {
        let created = self.create(definition).await.unwrap();
        self.checks.run_now(created.id).await.unwrap().result
    }

    pub fn id_of(&self, name: &str) -> i64 {
        self.checks.list().into_iter().find(|c| c.name == name).unwrap().id
    }

    pub async fn stop(self) -> tempfile::TempDir {
        self.checks.stop().await;
        self.store.close().await;
        self.dir
    }
}

/// Settings without the built-in checks.
pub fn bare_settings() -> Settings {
    Settings { system: false, state_store: false, ..Settings::default() }
}

/// A port on loopback where nothing listens (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `url` with its password replaced.
pub fn with_password(url: &str, password: &str) -> String {
    let mut parsed = reqwest::Url::parse(url).unwrap();
    parsed.set_password(Some(password)).unwrap();
    parsed.to_string()
}

/// A server that accepts connections and never says a word.
pub struct SlowServer {
    pub address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl SlowServer {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        Self { address, task }
    }
}

impl Drop for SlowServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(serde::Deserialize)]
struct Delay {
    ms: u64,
}

/// The HTTP server the `http` kind is tried against; returns its address.
pub async fn http_server() -> SocketAddr {
    let app = axum::Router::new()
        .route("/ok", get(|| async { "all good" }))
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, format!("boom\u{1b}[31m\n{}", "x".repeat(500))) }),
        )
        .route("/json", get(|| async { axum::Json(json!({"status": "up", "items": [{"name": "a"}]})) }))
        .route(
            "/slow",
            get(|Query(delay): Query<Delay>| async move {
                tokio::time::sleep(Duration::from_millis(delay.ms)).await;
                "done"
            }),
        )
        .route(
            "/echo",
            post(|headers: HeaderMap, body: String| async move {
                let token = headers.get("x-token").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                format!("{body} {token}")
            }),
        )
        .route("/redirect", get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/ok")]).into_response() }))
        .route(
            "/redirect-metadata",
            get(|| async {
                (StatusCode::FOUND, [(header::LOCATION, "http://169.254.169.254/latest/meta-data/")]).into_response()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

/// HTTPS servers with generated certificates: self-signed and expiring in 5 days; signed by a
/// private CA (written to `ca_file`) and valid 60 days; self-signed and expired yesterday.
pub struct TlsServers {
    pub self_signed_url: String,
    pub ca_signed_url: String,
    pub expired_url: String,
    pub ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl TlsServers {
    pub async fn start() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose};
        let now = time::OffsetDateTime::now_utc();
        let leaf_params = |from_days: i64, to_days: i64| {
            let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
            params.not_before = now + time::Duration::days(from_days);
            params.not_after = now + time::Duration::days(to_days);
            params
        };

        let self_signed_key = KeyPair::generate().unwrap();
        let self_signed = leaf_params(-1, 5).self_signed(&self_signed_key).unwrap();

        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params.not_before = now - time::Duration::days(1);
        ca_params.not_after = now + time::Duration::days(365);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = leaf_params(-1, 60).signed_by(&leaf_key, &ca, &ca_key).unwrap();

        let expired_key = KeyPair::generate().unwrap();
        let expired = leaf_params(-10, -1).self_signed(&expired_key).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        Self {
            self_signed_url: serve_tls(self_signed.der().to_vec(), self_signed_key.serialize_der()).await,
            ca_signed_url: serve_tls(leaf.der().to_vec(), leaf_key.serialize_der()).await,
            expired_url: serve_tls(expired.der().to_vec(), expired_key.serialize_der()).await,
            ca_file,
            _dir: dir,
        }
    }
}

/// A TLS server on loopback that answers every request `200 ok`; returns its URL.
async fn serve_tls(certificate: Vec<u8>, key: Vec<u8>) -> String {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(certificate)], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)))
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut stream) = acceptor.accept(socket).await else { return };
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let response =
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
                stream.write_all(response).await.ok();
                stream.shutdown().await.ok();
            });
        }
    });
    format!("https://{address}/")
}

/// What a [`Proxy`] does with new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Pass bytes both ways to the real server.
    Forward,
    /// Accept and never answer (a hung server).
    Hang,
    /// Accept and close at once (a server that went away mid-handshake).
    Drop,
}

/// A TCP proxy in front of a real server, so a test can block it and let it come back without
/// touching the shared service.
pub struct Proxy {
    pub address: SocketAddr,
    mode: Arc<Mutex<ProxyMode>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mode = Arc::new(Mutex::new(ProxyMode::Forward));
        let current = mode.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mode = *current.lock();
                tokio::spawn(async move {
                    match mode {
                        ProxyMode::Forward => {
                            if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await.ok();
                            }
                        }
                        ProxyMode::Hang => tokio::time::sleep(Duration::from_secs(3600)).await,
                        ProxyMode::Drop => drop(inbound),
                    }
                });
            }
        });
        Self { address, mode, task }
    }

    pub fn set(&self, mode: ProxyMode) {
        *self.mode.lock() = mode;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The `host:port` of a URL, resolved.
pub fn socket_of(url: &str) -> SocketAddr {
    let parsed = reqwest::Url::parse(url).unwrap();
    let host = parsed.host_str().unwrap().trim_matches(['[', ']']).to_string();
    let port = parsed.port_or_known_default().unwrap_or(match parsed.scheme() {
        "postgres" | "postgresql" => 5432,
        "mysql" => 3306,
        _ => 6379,
    });
    std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port)).unwrap().next().unwrap()
}

/// `url` pointing at `address` instead of its own host and port.
pub fn via(url: &str, address: SocketAddr) -> String {
    let mut parsed = reqwest::Url::parse(url).unwrap();
    parsed.set_host(Some(&address.ip().to_string())).unwrap();
    parsed.set_port(Some(address.port())).unwrap();
    parsed.to_string()
}

/// A Redis server of its own speaking only TLS, with a certificate from a generated CA.
pub struct TlsRedis {
    pub port: u16,
    pub ca_file: PathBuf,
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl TlsRedis {
    pub async fn start() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose};
        let now = time::OffsetDateTime::now_utc();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params.not_before = now - time::Duration::days(1);
        ca_params.not_after = now + time::Duration::days(30);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(30);
        let certificate = params.signed_by(&key, &ca, &ca_key).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let ca_file = write("ca.pem", ca.pem());
        let cert_file = write("redis.pem", certificate.pem());
        let key_file = write("redis.key", key.serialize_pem());
        let port = closed_port();
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", "0", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--tls-auth-clients", "no"])
            .arg("--tls-port")
            .arg(port.to_string())
            .arg("--tls-cert-file")
            .arg(&cert_file)
            .arg("--tls-key-file")
            .arg(&key_file)
            .arg("--tls-ca-cert-file")
            .arg(&ca_file)
            .arg("--dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("this test starts redis-server with TLS, but it cannot run ({e}); `source .ci/services.sh` installs it")
            });
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(std::time::Instant::now() < deadline, "redis-server with TLS did not listen on {port} within 10 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { port, ca_file, _child: child, _dir: dir }
    }
}
