//! Test harness for integration tests that need real services (STYLE: tests run against the
//! real PostgreSQL, Redis, … never a mock).
//!
//! Addresses come from `HUBMON_TEST_*` variables; when unset, the local servers on their
//! standard ports are used. When a service cannot be reached the test fails with a message
//! saying how to get one: a test that needs a service never skips silently.
//!
//! Each PostgreSQL test gets a database of its own ([`PgDatabase`]), created on the server
//! and dropped again when the guard is dropped, so tests run in parallel without seeing each
//! other's rows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use rand::Rng;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

const PG_DEFAULT: &str = "postgres://hubmon:hubmon@127.0.0.1:5432/postgres";
const REDIS_DEFAULT: &str = "redis://127.0.0.1:6379";
const MYSQL_DEFAULT: &str = "mysql://hubmon:hubmon@127.0.0.1:3306/hubmon";
const HOW_TO: &str = "run `source .ci/services.sh` (installs and starts PostgreSQL, Redis and MariaDB on \
                      loopback), or point HUBMON_TEST_PG_URL / HUBMON_TEST_REDIS_URL / HUBMON_TEST_MYSQL_URL \
                      at servers you run";

/// The PostgreSQL server URL for tests: `HUBMON_TEST_PG_URL`, or the local default. The user
/// must be allowed to create databases.
pub fn pg_url() -> String {
    std::env::var("HUBMON_TEST_PG_URL").unwrap_or_else(|_| PG_DEFAULT.to_string())
}

/// The Redis URL for tests: `HUBMON_TEST_REDIS_URL`, or the local default. Panics with a
/// how-to when nothing answers PING there.
pub fn redis_url() -> String {
    let url = std::env::var("HUBMON_TEST_REDIS_URL").unwrap_or_else(|_| REDIS_DEFAULT.to_string());
    if let Err(problem) = redis_ping(&url) {
        panic!("this test needs Redis at {url}, but {problem}; {HOW_TO}");
    }
    url
}

/// The MySQL/MariaDB URL for tests: `HUBMON_TEST_MYSQL_URL`, or the local default (user and
/// database `hubmon`). Panics with a how-to when nothing accepts a login there.
pub async fn mysql_url() -> String {
    use sqlx::mysql::MySqlConnection;
    let url = std::env::var("HUBMON_TEST_MYSQL_URL").unwrap_or_else(|_| MYSQL_DEFAULT.to_string());
    match tokio::time::timeout(Duration::from_secs(10), MySqlConnection::connect(&url)).await {
        Ok(Ok(connection)) => {
            connection.close().await.ok();
            url
        }
        Ok(Err(e)) => panic!("this test needs MySQL or MariaDB at {url}, but connecting failed: {e}; {HOW_TO}"),
        Err(_) => panic!("this test needs MySQL or MariaDB at {url}, but connecting timed out; {HOW_TO}"),
    }
}

fn redis_ping(url: &str) -> Result<(), String> {
    let host_port = url
        .trim_start_matches("redis://")
        .rsplit('@')
        .next()
        .unwrap_or_default()
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let address = host_port
        .to_socket_addrs()
        .map_err(|e| format!("its address does not resolve ({e})"))?
        .next()
        .ok_or("its address does not resolve")?;
    let mut stream =
        TcpStream::connect_timeout(&address, Duration::from_secs(3)).map_err(|e| format!("connecting failed ({e})"))?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok();
    stream.write_all(b"PING\r\n").map_err(|e| format!("sending PING failed ({e})"))?;
    let mut reply = [0u8; 64];
    let read = stream.read(&mut reply).map_err(|e| format!("no reply to PING ({e})"))?;
    let reply = String::from_utf8_lossy(&reply[..read]);
    if reply.starts_with("+PONG") { Ok(()) } else { Err(format!("it answered PING with {reply:?}")) }
}

/// A database of its own on the test PostgreSQL server, dropped with the guard.
pub struct PgDatabase {
    pub url: String,
    name: String,
}

impl PgDatabase {
    /// Creates a fresh, empty database. Panics with a how-to when the server is unreachable.
    pub async fn create() -> Self {
        let server = pg_url();
        let mut admin = connect(&server).await;
        let name = format!("hubmon_test_{:016x}", rand::thread_rng().r#gen::<u64>());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("cannot create a test database on {server}: {e}; the test user needs CREATEDB"));
        admin.close().await.ok();
        let url = with_database(&server, &name);
        PgDatabase { url, name }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // Drop runs outside any runtime we may use, so clean up on a thread of its own.
        let server = pg_url();
        let name = self.name.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async {
                    if let Ok(mut admin) = PgConnection::connect(&server).await {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        sqlx::query(&sql).execute(&mut admin).await.ok();
                    }
                });
            }
        });
        cleanup.join().ok();
    }
}

async fn connect(url: &str) -> PgConnection {
    let attempt = tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(url)).await;
    match attempt {
        Ok(Ok(connection)) => connection,
        Ok(Err(e)) => panic!("this test needs PostgreSQL at {url}, but connecting failed: {e}; {HOW_TO}"),
        Err(_) => panic!("this test needs PostgreSQL at {url}, but connecting timed out; {HOW_TO}"),
    }
}

/// `url` with its database path replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{database}", &base[..host_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_in_a_url() {
        assert_eq!(with_database("postgres://u:p@h:5432/postgres", "x"), "postgres://u:p@h:5432/x");
        assert_eq!(with_database("postgres://u:p@h", "x"), "postgres://u:p@h/x");
        assert_eq!(with_database("postgres://h/db?sslmode=disable", "x"), "postgres://h/x?sslmode=disable");
    }

    #[test]
    fn redis_is_reachable_for_the_tests_that_need_it() {
        let url = redis_url();
        assert!(redis_ping(&url).is_ok());
    }

    #[tokio::test]
    async fn mysql_is_reachable_for_the_tests_that_need_it() {
        use sqlx::mysql::MySqlConnection;
        let url = mysql_url().await;
        let mut connection = MySqlConnection::connect(&url).await.unwrap();
        let one: i64 = sqlx::query_scalar("SELECT 1").fetch_one(&mut connection).await.unwrap();
        assert_eq!(one, 1);
    }

    #[tokio::test]
    async fn a_fresh_postgres_database_is_empty_and_usable() {
        let database = PgDatabase::create().await;
        let mut connection = connect(&database.url).await;
        let tables: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'")
                .fetch_one(&mut connection)
                .await
                .unwrap();
        assert_eq!(tables, 0);
    }
}
