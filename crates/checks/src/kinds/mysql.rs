//! `mysql` (MySQL and MariaDB): connect, run `SELECT 1` (or the configured read-only query),
//! read the server version and how many of its connections are in use. A fresh connection
//! every run, for the same reason as the PostgreSQL check.

use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{ConnectOptions, Connection};

use crate::definition::DatabaseTarget;
use crate::guard;
use crate::kinds::{Failure, chain, millis};
use crate::status::Observation;

pub struct MysqlProbe {
    options: MySqlConnectOptions,
    host: String,
    port: u16,
    query: Option<String>,
}

impl MysqlProbe {
    pub fn new(target: &DatabaseTarget) -> Result<Self, Failure> {
        // sqlx knows the mysql:// scheme; mariadb:// is the same protocol.
        let url = match target.url.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None => target.url.clone(),
        };
        let invalid = |e: &dyn std::error::Error| Failure::new(format!("invalid MySQL url: {e}"));
        let options = MySqlConnectOptions::from_str(&url).map_err(|e| invalid(&e))?.disable_statement_logging();
        let parsed = reqwest::Url::parse(&url).map_err(|e| invalid(&e))?;
        let host = parsed.host_str().unwrap_or("localhost").trim_matches(['[', ']']).to_string();
        let port = parsed.port().unwrap_or(3306);
        Ok(Self { options, host, port, query: target.query.clone() })
    }

    pub async fn run(&self, allow_link_local: bool, _timeout: Duration) -> Result<Observation, Failure> {
        guard::resolve(&self.host, self.port, allow_link_local).await?;
        let started = Instant::now();
        let mut connection = MySqlConnection::connect_with(&self.options)
            .await
            .map_err(|e| Failure::new(format!("cannot connect: {}", chain(&e))))?;
        let query = self.query.as_deref().unwrap_or("SELECT 1");
        // A plain text query (not prepared): a configured one may hold several statements.
        sqlx::Executor::execute(&mut connection, query)
            .await
            .map_err(|e| Failure::new(format!("query failed: {}", chain(&e))))?;
        let latency = started.elapsed();
        let version: Option<String> = sqlx::query_scalar("SELECT VERSION()").fetch_one(&mut connection).await.ok();
        let max: Option<i64> =
            sqlx::query_scalar("SELECT CAST(@@max_connections AS SIGNED)").fetch_one(&mut connection).await.ok();
        let connected: Option<(String, String)> =
            sqlx::query_as("SHOW GLOBAL STATUS LIKE 'Threads_connected'").fetch_one(&mut connection).await.ok();
        connection.close().await.ok();

        let version_text = version.clone().unwrap_or_else(|| "(version unknown)".to_string());
        let mut observation =
            Observation::healthy(format!("MySQL {version_text} answered in {:.1} ms", millis(latency)))
                .with_latency(latency);
        if let Some(version) = version {
            let flavour = if version.to_ascii_lowercase().contains("mariadb") { "mariadb" } else { "mysql" };
            observation = observation.detail("server_version", version).detail("flavour", flavour);
        }
        if let Some(connections) = connected.and_then(|(_, value)| value.parse::<i64>().ok()) {
            observation = observation.detail("connections", connections);
        }
        if let Some(max) = max {
            observation = observation.detail("max_connections", max);
        }
        Ok(observation)
    }
}
