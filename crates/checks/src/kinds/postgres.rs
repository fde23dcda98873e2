//! `postgres`: connect, run `SELECT 1` (or the configured read-only query), read the server
//! version and how many of its connections are in use.
//!
//! A fresh connection every run, not a pool: the check is about whether a client can get in
//! now (authentication, `max_connections`), and a kept connection would hide exactly that.

use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

use crate::definition::DatabaseTarget;
use crate::guard;
use crate::kinds::{Failure, chain, millis};
use crate::status::Observation;

pub struct PostgresProbe {
    options: PgConnectOptions,
    query: Option<String>,
}

impl PostgresProbe {
    pub fn new(target: &DatabaseTarget) -> Result<Self, Failure> {
        let options = PgConnectOptions::from_str(&target.url)
            .map_err(|e| Failure::new(format!("invalid PostgreSQL url: {}", chain(&e))))?
            .application_name("hubmon-healthcheck")
            .disable_statement_logging();
        Ok(Self { options, query: target.query.clone() })
    }

    pub async fn run(&self, allow_link_local: bool, _timeout: Duration) -> Result<Observation, Failure> {
        let host = self.options.get_host().to_string();
        if !host.starts_with('/') {
            guard::resolve(&host, self.options.get_port(), allow_link_local).await?;
        }
        let started = Instant::now();
        let mut connection = PgConnection::connect_with(&self.options)
            .await
            .map_err(|e| Failure::new(format!("cannot connect: {}", chain(&e))))?;
        let query = self.query.as_deref().unwrap_or("SELECT 1");
        // A plain text query (not prepared): a configured one may hold several statements.
        sqlx::Executor::execute(&mut connection, query)
            .await
            .map_err(|e| Failure::new(format!("query failed: {}", chain(&e))))?;
        let latency = started.elapsed();
        let version: Option<String> = sqlx::query_scalar("SHOW server_version").fetch_one(&mut connection).await.ok();
        let usage: Option<(i64, i64)> = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM pg_stat_activity WHERE backend_type = 'client backend'), \
                    current_setting('max_connections')::BIGINT",
        )
        .fetch_one(&mut connection)
        .await
        .ok();
        connection.close().await.ok();

        let mut observation = Observation::healthy(format!(
            "PostgreSQL {} answered in {:.1} ms",
            version.as_deref().unwrap_or("(version unknown)"),
            millis(latency)
        ))
        .with_latency(latency);
        if let Some(version) = version {
            observation = observation.detail("server_version", version);
        }
        if let Some((connections, max)) = usage {
            observation = observation.detail("connections", connections).detail("max_connections", max);
        }
        Ok(observation)
    }
}
