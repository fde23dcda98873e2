//! `redis`: `PING`, then the essentials of `INFO` (version, role, used memory, connected
//! clients). A fresh connection every run; `rediss://` speaks TLS (rustls).

use std::time::Instant;

use crate::definition::RedisTarget;
use crate::guard;
use crate::kinds::{Failure, chain, millis};
use crate::status::Observation;

pub struct RedisProbe {
    client: redis::Client,
    host: String,
    port: u16,
}

impl RedisProbe {
    pub fn new(target: &RedisTarget) -> Result<Self, Failure> {
        let invalid = |e: redis::RedisError| Failure::new(format!("invalid Redis url: {e}"));
        let client = match &target.ca_file {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| Failure::new(format!("cannot read ca_file {}: {e}", path.display())))?;
                let certificates = redis::TlsCertificates { client_tls: None, root_cert: Some(pem) };
                redis::Client::build_with_tls(target.url.as_str(), certificates).map_err(invalid)?
            }
            None => redis::Client::open(target.url.as_str()).map_err(invalid)?,
        };
        let (host, port) = match &client.get_connection_info().addr {
            redis::ConnectionAddr::Tcp(host, port) | redis::ConnectionAddr::TcpTls { host, port, .. } => {
                (host.clone(), *port)
            }
            other => (other.to_string(), 0),
        };
        Ok(Self { client, host, port })
    }

    pub async fn run(&self, allow_link_local: bool) -> Result<Observation, Failure> {
        if self.port != 0 {
            guard::resolve(&self.host, self.port, allow_link_local).await?;
        }
        let started = Instant::now();
        let mut connection = self
            .client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| Failure::new(format!("cannot connect: {}", chain(&e))))?;
        let pong: String = redis::cmd("PING")
            .query_async(&mut connection)
            .await
            .map_err(|e| Failure::new(format!("PING failed: {}", chain(&e))))?;
        let latency = started.elapsed();
        if pong != "PONG" {
            return Err(Failure::new(format!("PING answered {pong:?} instead of PONG")));
        }
        let info: String = redis::cmd("INFO").query_async(&mut connection).await.unwrap_or_default();
        let field = |name: &str| {
            info.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(':')).map(|v| v.trim().to_string())
        };
        let version = field("redis_version");
        let mut observation = Observation::healthy(format!(
            "Redis {} answered PING in {:.1} ms",
            version.as_deref().unwrap_or("(version unknown)"),
            millis(latency)
        ))
        .with_latency(latency);
        if let Some(version) = version {
            observation = observation.detail("server_version", version);
        }
        if let Some(role) = field("role") {
            observation = observation.detail("role", role);
        }
        for (name, key) in [("used_memory_bytes", "used_memory"), ("maxmemory_bytes", "maxmemory")] {
            if let Some(value) = field(key).and_then(|v| v.parse::<u64>().ok()) {
                observation = observation.detail(name, value);
            }
        }
        if let Some(clients) = field("connected_clients").and_then(|v| v.parse::<u64>().ok()) {
            observation = observation.detail("connected_clients", clients);
        }
        Ok(observation)
    }
}
