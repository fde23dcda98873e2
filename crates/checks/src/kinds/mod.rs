//! The probes, one file per kind. A probe is built once from its definition (parsing URLs,
//! building the HTTP client, priming the host collector) and then run on every tick; a run
//! returns an [`Observation`] and never fails in any other way: whatever went wrong is the
//! observation's message.
//!
//! Runs do not time themselves out; the scheduler wraps each one in the check's timeout and
//! drops it when that passes, which closes whatever connection it held.

mod http;
mod mysql;
mod postgres;
mod redis;
mod state_store;
mod system;
mod tcp;

use std::sync::Arc;
use std::time::Duration;

use hubmon_state::StateStore;

use crate::definition::{Definition, Target};
use crate::status::Observation;

/// What probes share: the state store (for its own check) and the address policy.
#[derive(Clone)]
pub struct Context {
    pub store: Arc<dyn StateStore>,
    pub allow_link_local: bool,
    /// Where the system check reads the host's figures.
    pub host: hubmon_ingest::host::HostConfig,
}

/// Why a run failed, as one line for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
}

impl Failure {
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into() }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl From<Failure> for Observation {
    fn from(failure: Failure) -> Self {
        Observation::unhealthy(failure.message)
    }
}

type Run<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Observation, Failure>> + Send + 'a>>;

/// A probe ready to run.
pub enum Probe {
    Postgres(postgres::PostgresProbe),
    Mysql(mysql::MysqlProbe),
    Redis(redis::RedisProbe),
    Http(http::HttpProbe),
    Tcp(tcp::TcpProbe),
    System(system::SystemProbe),
    StateStore,
    /// The definition cannot be probed (a CA file that cannot be read, …): every run says why.
    Broken(String),
}

impl Probe {
    pub fn build(definition: &Definition, context: &Context) -> Probe {
        let built = match &definition.target {
            Target::Postgres(t) => postgres::PostgresProbe::new(t).map(Probe::Postgres),
            Target::Mysql(t) => mysql::MysqlProbe::new(t).map(Probe::Mysql),
            Target::Redis(t) => redis::RedisProbe::new(t).map(Probe::Redis),
            Target::Http(t) => http::HttpProbe::new(t, context.allow_link_local).map(Probe::Http),
            Target::Tcp(t) => Ok(Probe::Tcp(tcp::TcpProbe::new(t))),
            Target::System(t) => Ok(Probe::System(system::SystemProbe::new(t, &context.host))),
            Target::StateStore(_) => Ok(Probe::StateStore),
        };
        built.unwrap_or_else(|failure| Probe::Broken(failure.message))
    }

    /// One run. `timeout` is for kinds that pass it on (a connect timeout); the caller enforces it.
    pub async fn run(&self, context: &Context, timeout: Duration) -> Observation {
        let allow = context.allow_link_local;
        // Boxed as `Send` here, where the lifetimes are concrete: the database drivers'
        // futures are otherwise not provably `Send` inside the scheduler's spawned task.
        let run: Run<'_> = match self {
            Probe::Postgres(probe) => Box::pin(probe.run(allow, timeout)),
            Probe::Mysql(probe) => Box::pin(probe.run(allow, timeout)),
            Probe::Redis(probe) => Box::pin(probe.run(allow)),
            Probe::Http(probe) => Box::pin(probe.run()),
            Probe::Tcp(probe) => Box::pin(probe.run(allow)),
            Probe::System(probe) => Box::pin(probe.run()),
            Probe::StateStore => Box::pin(state_store::run(context.store.as_ref())),
            Probe::Broken(message) => Box::pin(std::future::ready(Err(Failure::new(message.clone())))),
        };
        run.await.unwrap_or_else(Observation::from)
    }
}

/// The error and its causes on one line (`a: b: c`), without repeating a cause that the
/// message before it already contains.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

/// A short, printable excerpt of a response body: at most `max` characters, control
/// characters replaced, so a body never floods a message or breaks a log line.
pub(crate) fn excerpt(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(max).map(|c| if c.is_control() && c != ' ' { ' ' } else { c }).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

/// Milliseconds as a float, for details.
pub(crate) fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_short_and_printable() {
        assert_eq!(excerpt(b"ok", 10), "ok");
        assert_eq!(excerpt(b"line1\nline2\x1b[31m", 100), "line1 line2 [31m");
        assert_eq!(excerpt("é".repeat(300).as_bytes(), 3), "ééé…");
    }
}
