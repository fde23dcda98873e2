//! hubmon's configuration: defaults, then a TOML file, then `HUBMON_*` environment variables,
//! then command-line flags, each overriding the one before.
//!
//! Every option has an environment variable named after its path in the file:
//! `[auth] session_ttl` is `HUBMON_AUTH_SESSION_TTL`, top-level `listen` is `HUBMON_LISTEN`.
//! The list is derived from the defaults, so a new option gets its variable for free.
//! Unknown keys in the file are an error naming the key and its line. Values are validated
//! while they are read (durations, addresses, levels), so a bad value is reported with its line
//! too. `deploy/hubmon.example.toml` documents every option; a test keeps it complete.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use hubmon_model::PromDuration;
use hubmon_state::StoreLocation;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The whole configuration, as read from a file (every field defaulted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP server (API and dashboard) listens on.
    pub listen: ListenAddr,
    /// Directory for everything hubmon stores locally.
    pub data_dir: PathBuf,
    pub log: LogConfig,
    pub state: StateConfig,
    pub http: HttpConfig,
    pub auth: AuthConfig,
    /// The built-in metrics store.
    pub metrics: hubmon_tsdb::Config,
    /// PromQL evaluation limits.
    pub query: QueryConfig,
    /// The host (and GPU) collector.
    pub host: hubmon_ingest::host::HostConfig,
    /// How health checks run, and the built-in ones (`[check]`).
    pub check: hubmon_checks::Settings,
    /// The built-in log store, log ingest limits and the syslog listeners.
    pub logs: logs::LogsConfig,
    /// The notification outbox dispatcher (channels themselves are managed over the API).
    pub notify: hubmon_notify::Config,
    /// Alert rule evaluation, notification grouping, routes and inhibition.
    pub alerting: alerting::AlertingConfig,
    /// Health checks defined in the file (`[[checks]]` tables).
    pub checks: Vec<hubmon_checks::Definition>,
    /// Prometheus-style targets to scrape (`[[scrape]]` tables).
    pub scrape: Vec<hubmon_ingest::scrape::ScrapeConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Minimum level, or a tracing filter such as `info,hubmon=debug`.
    pub level: LogLevel,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// Empty for SQLite in the data dir, or a `postgres://user:password@host/db` URL.
    pub url: StateUrl,
    /// How long to wait for the state store at start before giving up.
    pub connect_timeout: PromDuration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest request body accepted, in bytes; bigger bodies get 413.
    pub max_body_bytes: u64,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// How often hubmon's own request metrics are written into its metrics store.
    pub record_interval: PromDuration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// How far back an instant selector looks for the newest sample (Prometheus: 5m).
    pub lookback_delta: PromDuration,
    /// Longest a query may run before it fails with a timeout.
    pub timeout: PromDuration,
    /// Most samples one query may load and produce; beyond it the query fails cleanly.
    pub max_samples: u64,
    /// Most points per series in a range query (Prometheus: 11000).
    pub max_points_per_series: u64,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            lookback_delta: PromDuration::from_secs(300),
            timeout: PromDuration::from_secs(120),
            max_samples: 50_000_000,
            max_points_per_series: 11_000,
        }
    }
}

impl QueryConfig {
    pub fn engine_options(&self) -> hubmon_promql::EngineOptions {
        hubmon_promql::EngineOptions {
            lookback_delta: self.lookback_delta.as_duration(),
            timeout: self.timeout.as_duration(),
            max_samples: usize::try_from(self.max_samples).unwrap_or(usize::MAX),
            max_points_per_series: usize::try_from(self.max_points_per_series).unwrap_or(usize::MAX),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// How long a dashboard login lasts.
    pub session_ttl: PromDuration,
    /// Mark session cookies `Secure`; set when hubmon is served over HTTPS.
    pub cookie_secure: bool,
    /// Login attempts allowed per minute from one client address, and for one username.
    pub login_attempts_per_minute: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: ListenAddr("127.0.0.1:9550".to_string()),
            data_dir: PathBuf::from("./hubmon-data"),
            log: LogConfig::default(),
            state: StateConfig::default(),
            http: HttpConfig::default(),
            auth: AuthConfig::default(),
            metrics: hubmon_tsdb::Config::default(),
            query: QueryConfig::default(),
            host: hubmon_ingest::host::HostConfig::default(),
            check: hubmon_checks::Settings::default(),
            checks: Vec::new(),
            logs: logs::LogsConfig::default(),
            alerting: alerting::AlertingConfig::default(),
            notify: hubmon_notify::Config::default(),
            scrape: Vec::new(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: LogLevel("info".to_string()), format: LogFormat::Json }
    }
}

impl Default for StateConfig {
    fn default() -> Self {
        Self { url: StateUrl(String::new()), connect_timeout: PromDuration::from_secs(10) }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 8 * 1024 * 1024,
            trust_forwarded_for: false,
            record_interval: PromDuration::from_secs(10),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { session_ttl: PromDuration::from_secs(12 * 3600), cookie_secure: false, login_attempts_per_minute: 10 }
    }
}

impl Config {
    /// Where the state store lives: PostgreSQL when a URL is set, else SQLite in the data dir.
    pub fn state_location(&self) -> StoreLocation {
        match self.state.url.0.as_str() {
            "" => StoreLocation::Sqlite(self.data_dir.join("state.db")),
            url => StoreLocation::Postgres(url.to_string()),
        }
    }
}

/// A `host:port` to listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddr(pub String);

/// A tracing filter directive, checked when read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLevel(pub String);

/// Empty, or a PostgreSQL URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateUrl(pub String);

impl FromStr for ListenAddr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("invalid listen address {text:?}; write host:port, like 127.0.0.1:9550 or [::]:9550");
        let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(bad());
        }
        Ok(Self(text.to_string()))
    }
}

impl FromStr for LogLevel {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        tracing_subscriber::EnvFilter::try_new(text)
            .map(|_| Self(text.to_string()))
            .map_err(|e| format!("invalid log level {text:?} ({e}); use error, warn, info, debug or trace"))
    }
}

impl FromStr for StateUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.is_empty() || text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Ok(Self(text.to_string()))
        } else {
            Err(format!(
                "unsupported state url {:?}; leave it empty for SQLite in the data dir or use postgres://user:password@host/db",
                StoreLocation::Postgres(text.to_string()).display()
            ))
        }
    }
}

/// Strings validated by `FromStr` while deserializing, so errors carry the file position.
macro_rules! string_newtype_serde {
    ($($ty:ty),*) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
string_newtype_serde!(ListenAddr, LogLevel, StateUrl);

/// A configuration that could not be loaded; the message is meant for the operator as is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}, line {line}, column {column}: {message}")]
    Invalid { path: PathBuf, line: usize, column: usize, message: String },
    #[error("config {source_name}: {message}")]
    Semantic { source_name: String, message: String },
    #[error("environment variable {variable}: {message}")]
    Env { variable: String, message: String },
}

/// Values given on the command line; they override everything else.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub state_url: Option<String>,
}

/// Reads the configuration: defaults, `file` if given, `HUBMON_*` from `env`, then `overrides`.
pub fn load(file: Option<&Path>, env: &BTreeMap<String, String>, overrides: &Overrides) -> Result<Config, ConfigError> {
    let mut table = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
            parse_file(path, &text)?;
            toml::from_str::<toml::Table>(&text).map_err(|e| invalid(path, &text, &e))?
        }
        None => toml::Table::new(),
    };
    apply_env(&mut table, env)?;
    apply_overrides(&mut table, overrides);
    let merged = toml::Value::Table(table);
    // Values from the file were checked above; an error now comes from a variable or a flag.
    let config: Config = merged.try_into().map_err(|e: toml::de::Error| ConfigError::Env {
        variable: "(HUBMON_* or a flag)".to_string(),
        message: e.message().to_string(),
    })?;
    config.validate().map_err(|message| ConfigError::Semantic {
        source_name: file
            .map_or_else(|| "(defaults, HUBMON_* and flags)".to_string(), |p| format!("file {}", p.display())),
        message,
    })?;
    Ok(config)
}

/// Parses and validates a config file on its own (`hubmon config check`).
pub fn parse_file(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let config: Config = toml::from_str(text).map_err(|e| invalid(path, text, &e))?;
    config
        .validate()
        .map_err(|message| ConfigError::Semantic { source_name: format!("file {}", path.display()), message })?;
    Ok(config)
}

impl Config {
    /// Checks what the types alone cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.http.record_interval.as_duration() < std::time::Duration::from_secs(1) {
            return Err("http.record_interval must be at least 1s".into());
        }
        if self.host.interval.as_duration() < std::time::Duration::from_secs(1) {
            return Err("host.interval must be at least 1s".into());
        }
        self.check.validate()?;
        hubmon_checks::config_checks(&self.check, &self.checks)?;
        self.logs.validate()?;
        self.alerting.validate()?;
        self.notify.validate()?;
        let mut jobs = std::collections::BTreeSet::new();
        for job in &self.scrape {
            job.validate()?;
            if !jobs.insert(&job.job_name) {
                return Err(format!("scrape job_name {:?} is used twice", job.job_name));
            }
        }
        Ok(())
    }
}

fn invalid(path: &Path, text: &str, error: &toml::de::Error) -> ConfigError {
    let (line, column) = match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            (line, column)
        }
        None => (0, 0),
    };
    ConfigError::Invalid { path: path.to_path_buf(), line, column, message: error.message().trim().to_string() }
}

/// Every option's path in the file, with its environment variable name.
pub fn env_variables() -> Vec<(Vec<String>, String)> {
    fn walk(table: &toml::Table, prefix: &[String], out: &mut Vec<(Vec<String>, String)>) {
        for (key, value) in table {
            let mut path = prefix.to_vec();
            path.push(key.clone());
            match value {
                toml::Value::Table(inner) => walk(inner, &path, out),
                // Lists of tables ([[scrape]]) are written in the file, not in variables.
                toml::Value::Array(_) => {}
                _ => {
                    let name = format!("HUBMON_{}", path.join("_").to_uppercase());
                    out.push((path, name));
                }
            }
        }
    }
    let mut out = Vec::new();
    if let Ok(toml::Value::Table(defaults)) = toml::Value::try_from(Config::default()) {
        walk(&defaults, &[], &mut out);
    }
    out
}

fn apply_env(table: &mut toml::Table, env: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    let defaults = toml::Value::try_from(Config::default()).unwrap_or(toml::Value::Table(toml::Table::new()));
    for (path, variable) in env_variables() {
        let Some(raw) = env.get(&variable) else { continue };
        let default = path.iter().try_fold(&defaults, |value, key| value.get(key));
        // The variable holds text; read it as the type the option has.
        let value = match default {
            Some(toml::Value::Integer(_)) => {
                raw.trim().parse().map(toml::Value::Integer).map_err(|_| "expected a whole number")
            }
            Some(toml::Value::Boolean(_)) => {
                raw.trim().parse().map(toml::Value::Boolean).map_err(|_| "expected true or false")
            }
            Some(toml::Value::Float(_)) => raw.trim().parse().map(toml::Value::Float).map_err(|_| "expected a number"),
            _ => Ok(toml::Value::String(raw.clone())),
        }
        .map_err(|message| ConfigError::Env {
            variable: variable.clone(),
            message: format!("{message}, got {raw:?}"),
        })?;
        // Check the value in isolation so the error names the variable.
        let mut probe = toml::Table::new();
        set_path(&mut probe, &path, value.clone());
        toml::Value::Table(probe)
            .try_into::<Config>()
            .map_err(|e| ConfigError::Env { variable: variable.clone(), message: e.message().to_string() })?;
        set_path(table, &path, value);
    }
    Ok(())
}

fn apply_overrides(table: &mut toml::Table, overrides: &Overrides) {
    if let Some(listen) = &overrides.listen {
        set_path(table, &["listen".to_string()], toml::Value::String(listen.clone()));
    }
    if let Some(dir) = &overrides.data_dir {
        set_path(table, &["data_dir".to_string()], toml::Value::String(dir.display().to_string()));
    }
    if let Some(url) = &overrides.state_url {
        set_path(table, &["state".to_string(), "url".to_string()], toml::Value::String(url.clone()));
    }
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut current = table;
    for key in parents {
        let entry = current.entry(key.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(inner) = entry else { return };
        current = inner;
    }
    current.insert(last.clone(), value);
}

/// `HUBMON_*` variables that are neither an option nor one of the known extras: likely typos.
pub fn unknown_env_variables(env: &BTreeMap<String, String>) -> Vec<String> {
    // HUBMON_TOKEN is read by `hubmon logs export|import`, not by the server.
    const EXTRAS: [&str; 4] = ["HUBMON_CONFIG", "HUBMON_ADMIN_PASSWORD", "HUBMON_SECRET_KEY", "HUBMON_TOKEN"];
    let known: Vec<String> = env_variables().into_iter().map(|(_, name)| name).collect();
    env.keys()
        .filter(|name| name.starts_with("HUBMON_") && !name.starts_with("HUBMON_TEST_"))
        .filter(|name| !known.contains(name) && !EXTRAS.contains(&name.as_str()))
        .cloned()
        .collect()
}

pub mod alerting;
pub mod logs;
#[cfg(test)]
mod tests;
