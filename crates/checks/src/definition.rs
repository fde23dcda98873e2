//! What a check is: [`Definition`] (name, timing, damping, criticality) and its [`Target`]
//! (what to probe, per kind).
//!
//! One shape everywhere: the config file's `[[checks]]` tables, the API's JSON and the stored
//! JSON are the same flat object, `{"name": "db", "kind": "postgres", "url": "…", "interval":
//! "30s", …}`. The common fields are read first, the rest must be exactly the kind's fields,
//! so a misspelt option is an error naming it.
//!
//! Secrets (DSNs, which carry passwords; HTTP URLs and header values, which often carry
//! tokens) are sealed before they are stored ([`Definition::sealed`]) and masked before they
//! are shown ([`Definition::masked`]); an update that sends a masked value back keeps the
//! stored secret ([`Definition::keep_masked_secrets`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use hubmon_model::PromDuration;
use hubmon_state::{SecretError, Secrets};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::Error;

/// The kinds of check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Postgres,
    Mysql,
    Redis,
    Http,
    Tcp,
    System,
    /// hubmon's own state store (SQLite or PostgreSQL), through its connection pool.
    StateStore,
}

impl Kind {
    pub const ALL: [Kind; 7] =
        [Kind::Postgres, Kind::Mysql, Kind::Redis, Kind::Http, Kind::Tcp, Kind::System, Kind::StateStore];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Postgres => "postgres",
            Kind::Mysql => "mysql",
            Kind::Redis => "redis",
            Kind::Http => "http",
            Kind::Tcp => "tcp",
            Kind::System => "system",
            Kind::StateStore => "state_store",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// A health check definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    /// Unique; the `check` label of the check's metrics.
    pub name: String,
    pub target: Target,
    /// Time between two runs (each run starts at a slightly jittered time).
    pub interval: PromDuration,
    /// A run that takes longer is cut off and counts as a failure.
    pub timeout: PromDuration,
    /// Consecutive failures before a healthy check is reported unhealthy (flap damping).
    pub failures_before_unhealthy: u32,
    /// Consecutive successes before an unhealthy check is reported healthy again.
    pub successes_before_healthy: u32,
    /// A successful run slower than this is reported degraded.
    pub degraded_latency: Option<PromDuration>,
    /// Whether this check being unhealthy makes the overall status unhealthy (otherwise degraded).
    pub critical: bool,
    /// A disabled check is kept but not run.
    pub enabled: bool,
}

/// What to probe, per kind.
#[derive(Debug, Clone, PartialEq)]
// Definitions are few and long-lived; boxing the HTTP variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Target {
    Postgres(DatabaseTarget),
    Mysql(DatabaseTarget),
    Redis(RedisTarget),
    Http(HttpTarget),
    Tcp(TcpTarget),
    System(SystemTarget),
    StateStore(StateStoreTarget),
}

/// A PostgreSQL or MySQL/MariaDB server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseTarget {
    /// `postgres://user:password@host:5432/db` or `mysql://user:password@host:3306/db`. Secret.
    pub url: String,
    /// A read-only query run instead of `SELECT 1`; it must succeed, its rows are ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisTarget {
    /// `redis://[:password@]host:6379[/db]`, or `rediss://` for TLS (verified against the
    /// public roots or `ca_file`; a `#insecure` ending skips verification). Secret.
    pub url: String,
    /// A PEM file of the CA that signed the server's certificate (a private CA), for `rediss://`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTarget {
    /// `http://` or `https://`. Secret (URLs often carry tokens).
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
    /// Request headers. Their values are secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// A request body (with POST, PUT, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Statuses that count as success; empty means any 2xx.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected_status: Vec<u16>,
    /// The response body must contain this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
    /// The response body must match this regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_regex: Option<String>,
    /// A dotted path into a JSON body (`status`, `checks.0.state`); with `json_equals`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_path: Option<String>,
    /// The value the JSON path must hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_equals: Option<Value>,
    /// Follow redirects (up to 10); otherwise a redirect is the response.
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    /// Verify the server's TLS certificate (on by default).
    #[serde(default = "yes")]
    pub tls_verify: bool,
    /// A PEM file of extra CA certificates to trust (a private CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// A certificate that expires within this many days makes the check degraded.
    #[serde(default = "default_cert_days")]
    pub cert_expiry_days: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpTarget {
    /// `host:port`.
    pub address: String,
}

/// Thresholds in percent: at or above `*_degraded` the check is degraded, at or above
/// `*_unhealthy` unhealthy. Defaults from the product summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SystemTarget {
    pub cpu_degraded: f64,
    pub cpu_unhealthy: f64,
    pub memory_degraded: f64,
    pub memory_unhealthy: f64,
    pub disk_degraded: f64,
    pub disk_unhealthy: f64,
}

impl Default for SystemTarget {
    fn default() -> Self {
        Self {
            cpu_degraded: 80.0,
            cpu_unhealthy: 90.0,
            memory_degraded: 85.0,
            memory_unhealthy: 95.0,
            disk_degraded: 90.0,
            disk_unhealthy: 95.0,
        }
    }
}

/// hubmon's own state store; nothing to configure.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateStoreTarget {}

fn default_method() -> String {
    "GET".to_string()
}
fn yes() -> bool {
    true
}
fn default_cert_days() -> u32 {
    14
}

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

impl Target {
    pub fn kind(&self) -> Kind {
        match self {
            Target::Postgres(_) => Kind::Postgres,
            Target::Mysql(_) => Kind::Mysql,
            Target::Redis(_) => Kind::Redis,
            Target::Http(_) => Kind::Http,
            Target::Tcp(_) => Kind::Tcp,
            Target::System(_) => Kind::System,
            Target::StateStore(_) => Kind::StateStore,
        }
    }

    fn from_fields(kind: Kind, fields: Map<String, Value>) -> Result<Self, serde_json::Error> {
        let value = Value::Object(fields);
        Ok(match kind {
            Kind::Postgres => Target::Postgres(serde_json::from_value(value)?),
            Kind::Mysql => Target::Mysql(serde_json::from_value(value)?),
            Kind::Redis => Target::Redis(serde_json::from_value(value)?),
            Kind::Http => Target::Http(serde_json::from_value(value)?),
            Kind::Tcp => Target::Tcp(serde_json::from_value(value)?),
            Kind::System => Target::System(serde_json::from_value(value)?),
            Kind::StateStore => Target::StateStore(serde_json::from_value(value)?),
        })
    }

    fn fields(&self) -> Map<String, Value> {
        let value = match self {
            Target::Postgres(t) | Target::Mysql(t) => serde_json::to_value(t),
            Target::Redis(t) => serde_json::to_value(t),
            Target::Http(t) => serde_json::to_value(t),
            Target::Tcp(t) => serde_json::to_value(t),
            Target::System(t) => serde_json::to_value(t),
            Target::StateStore(t) => serde_json::to_value(t),
        };
        match value {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }

    /// The host (and port) probed, for the link-local guard; `None` for local kinds.
    pub fn host(&self) -> Option<String> {
        match self {
            Target::Postgres(t) | Target::Mysql(t) => url_host(&t.url),
            Target::Redis(t) => url_host(&t.url),
            Target::Http(t) => url_host(&t.url),
            Target::Tcp(t) => t.address.rsplit_once(':').map(|(host, _)| host.trim_matches(['[', ']']).to_string()),
            Target::System(_) | Target::StateStore(_) => None,
        }
    }

    /// Applies `f` to every secret field.
    fn map_secrets(&mut self, f: &mut dyn FnMut(&mut String) -> Result<(), SecretError>) -> Result<(), SecretError> {
        match self {
            Target::Postgres(t) | Target::Mysql(t) => f(&mut t.url),
            Target::Redis(t) => f(&mut t.url),
            Target::Http(t) => {
                f(&mut t.url)?;
                t.headers.values_mut().try_for_each(f)
            }
            Target::Tcp(_) | Target::System(_) | Target::StateStore(_) => Ok(()),
        }
    }
}

fn url_host(url: &str) -> Option<String> {
    reqwest::Url::parse(url).ok()?.host_str().map(|h| h.trim_matches(['[', ']']).to_string())
}

/// The text form of the common fields, as read from a file or a request body.
#[derive(Deserialize)]
struct RawDefinition {
    name: String,
    kind: String,
    interval: Option<PromDuration>,
    timeout: Option<PromDuration>,
    failures_before_unhealthy: Option<u32>,
    successes_before_healthy: Option<u32>,
    degraded_latency: Option<PromDuration>,
    critical: Option<bool>,
    enabled: Option<bool>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

impl<'de> Deserialize<'de> for Definition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawDefinition::deserialize(deserializer)?;
        let definition = Definition::from_raw(raw).map_err(serde::de::Error::custom)?;
        definition.validate().map_err(serde::de::Error::custom)?;
        Ok(definition)
    }
}

impl Serialize for Definition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl Definition {
    /// A definition with the default timing for `target`.
    pub fn new(name: impl Into<String>, target: Target) -> Self {
        Self {
            name: name.into(),
            target,
            interval: PromDuration(DEFAULT_INTERVAL),
            timeout: PromDuration(DEFAULT_TIMEOUT),
            failures_before_unhealthy: 3,
            successes_before_healthy: 2,
            degraded_latency: None,
            critical: true,
            enabled: true,
        }
    }

    pub fn kind(&self) -> Kind {
        self.target.kind()
    }

    fn from_raw(raw: RawDefinition) -> Result<Self, String> {
        let kind = Kind::parse(&raw.kind).ok_or_else(|| {
            let known: Vec<_> = Kind::ALL.iter().map(|k| k.as_str()).collect();
            format!("check {:?}: unknown kind {:?}; use one of {}", raw.name, raw.kind, known.join(", "))
        })?;
        let target = Target::from_fields(kind, raw.rest)
            .map_err(|e| format!("check {:?} ({}): {e}", raw.name, kind.as_str()))?;
        let mut definition = Definition::new(raw.name, target);
        if let Some(interval) = raw.interval {
            definition.interval = interval;
            // A short interval implies a short default timeout, so runs do not overlap.
            definition.timeout = PromDuration(DEFAULT_TIMEOUT.min(interval.as_duration()));
        }
        if let Some(timeout) = raw.timeout {
            definition.timeout = timeout;
        }
        if let Some(n) = raw.failures_before_unhealthy {
            definition.failures_before_unhealthy = n;
        }
        if let Some(n) = raw.successes_before_healthy {
            definition.successes_before_healthy = n;
        }
        definition.degraded_latency = raw.degraded_latency;
        if let Some(critical) = raw.critical {
            definition.critical = critical;
        }
        if let Some(enabled) = raw.enabled {
            definition.enabled = enabled;
        }
        Ok(definition)
    }

    /// Parses a stored row (secret fields sealed, so not validated) and opens its secrets;
    /// the result is validated.
    pub fn from_stored(text: &str, secrets: &Secrets) -> Result<Self, String> {
        let raw: RawDefinition = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let definition = Definition::from_raw(raw)?.opened(secrets).map_err(|e| e.to_string())?;
        definition.validate()?;
        Ok(definition)
    }

    /// The stored row as it is, secrets still sealed, for listing a check whose secrets
    /// cannot be opened.
    pub fn from_stored_sealed(text: &str) -> Option<Self> {
        Definition::from_raw(serde_json::from_str(text).ok()?).ok()
    }

    /// Parses the JSON form (a request body).
    pub fn from_json(value: Value) -> Result<Self, Error> {
        serde_json::from_value(value).map_err(|e| Error::Invalid(e.to_string()))
    }

    /// The flat JSON form.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("name".into(), Value::String(self.name.clone()));
        map.insert("kind".into(), Value::String(self.kind().as_str().into()));
        map.insert("interval".into(), Value::String(self.interval.to_string()));
        map.insert("timeout".into(), Value::String(self.timeout.to_string()));
        map.insert("failures_before_unhealthy".into(), self.failures_before_unhealthy.into());
        map.insert("successes_before_healthy".into(), self.successes_before_healthy.into());
        if let Some(latency) = self.degraded_latency {
            map.insert("degraded_latency".into(), Value::String(latency.to_string()));
        }
        map.insert("critical".into(), self.critical.into());
        map.insert("enabled".into(), self.enabled.into());
        map.extend(self.target.fields());
        Value::Object(map)
    }

    /// Checks what the types alone cannot; the message names the check and the field.
    pub fn validate(&self) -> Result<(), String> {
        let name = &self.name;
        let bad = |message: String| Err(format!("check {name:?}: {message}"));
        if name.is_empty() || name.len() > 100 || name.chars().any(|c| c.is_control()) {
            return bad("name must be 1 to 100 characters without control characters".into());
        }
        let interval = self.interval.as_duration();
        let timeout = self.timeout.as_duration();
        if interval < Duration::from_secs(1) {
            return bad("interval must be at least 1s".into());
        }
        if timeout.is_zero() || timeout > interval {
            return bad(format!("timeout must be more than 0 and at most the interval ({})", self.interval));
        }
        if self.failures_before_unhealthy == 0 || self.successes_before_healthy == 0 {
            return bad("failures_before_unhealthy and successes_before_healthy must be at least 1".into());
        }
        match &self.target {
            Target::Postgres(t) => {
                if !(t.url.starts_with("postgres://") || t.url.starts_with("postgresql://")) {
                    return bad("url must start with postgres:// or postgresql://".into());
                }
            }
            Target::Mysql(t) => {
                if !(t.url.starts_with("mysql://") || t.url.starts_with("mariadb://")) {
                    return bad("url must start with mysql:// or mariadb://".into());
                }
            }
            Target::Redis(t) => {
                if !(t.url.starts_with("redis://") || t.url.starts_with("rediss://")) {
                    return bad("url must start with redis:// or rediss:// (TLS)".into());
                }
            }
            Target::Http(t) => {
                match reqwest::Url::parse(&t.url) {
                    Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {}
                    _ => return bad("url must be an absolute http:// or https:// URL".into()),
                }
                if reqwest::Method::from_bytes(t.method.as_bytes()).is_err() {
                    return bad(format!("method {:?} is not an HTTP method", t.method));
                }
                for (header, value) in &t.headers {
                    if reqwest::header::HeaderName::from_bytes(header.as_bytes()).is_err()
                        || reqwest::header::HeaderValue::from_str(value).is_err()
                    {
                        return bad(format!("header {header:?} is not a valid HTTP header"));
                    }
                }
                if let Some(status) = t.expected_status.iter().find(|s| !(100..=599).contains(*s)) {
                    return bad(format!("expected_status {status} is not an HTTP status"));
                }
                if let Some(pattern) = &t.body_regex
                    && let Err(e) = regex::Regex::new(pattern)
                {
                    return bad(format!("body_regex: {e}"));
                }
                if t.json_path.is_some() != t.json_equals.is_some() {
                    return bad("json_path and json_equals go together".into());
                }
            }
            Target::Tcp(t) => match t.address.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {}
                _ => return bad(format!("address {:?} must be host:port", t.address)),
            },
            Target::System(t) => {
                let pairs = [
                    ("cpu", t.cpu_degraded, t.cpu_unhealthy),
                    ("memory", t.memory_degraded, t.memory_unhealthy),
                    ("disk", t.disk_degraded, t.disk_unhealthy),
                ];
                for (what, degraded, unhealthy) in pairs {
                    if !(0.0..=100.0).contains(&degraded) || !(0.0..=100.0).contains(&unhealthy) || degraded > unhealthy
                    {
                        return bad(format!(
                            "{what}_degraded and {what}_unhealthy must be percentages with degraded <= unhealthy"
                        ));
                    }
                }
            }
            Target::StateStore(_) => {}
        }
        Ok(())
    }

    /// A copy with every secret field sealed (already sealed ones are left alone).
    pub fn sealed(&self, secrets: &Secrets) -> Definition {
        let mut copy = self.clone();
        let _ = copy.target.map_secrets(&mut |value| {
            if !Secrets::is_sealed(value) {
                *value = secrets.seal(value);
            }
            Ok(())
        });
        copy
    }

    /// A copy with every sealed field opened.
    pub fn opened(&self, secrets: &Secrets) -> Result<Definition, SecretError> {
        let mut copy = self.clone();
        copy.target.map_secrets(&mut |value| {
            if Secrets::is_sealed(value) {
                *value = secrets.open(value)?;
            }
            Ok(())
        })?;
        Ok(copy)
    }

    /// A copy fit to show: passwords in URLs replaced by `***`, header values masked.
    pub fn masked(&self) -> Definition {
        let mut copy = self.clone();
        match &mut copy.target {
            Target::Postgres(t) | Target::Mysql(t) => t.url = mask_url(&t.url),
            Target::Redis(t) => t.url = mask_url(&t.url),
            Target::Http(t) => {
                t.url = mask_url(&t.url);
                for value in t.headers.values_mut() {
                    *value = hubmon_state::mask_secret(value);
                }
            }
            Target::Tcp(_) | Target::System(_) | Target::StateStore(_) => {}
        }
        copy
    }

    /// Where this (new) definition holds exactly the masked form of `stored`'s secret, takes
    /// the stored secret: a client that edits a check it read back need not know the password.
    pub fn keep_masked_secrets(&mut self, stored: &Definition) {
        let masked = stored.masked();
        match (&mut self.target, &stored.target, &masked.target) {
            (Target::Postgres(new), Target::Postgres(old), Target::Postgres(shown))
            | (Target::Mysql(new), Target::Mysql(old), Target::Mysql(shown))
                if new.url == shown.url =>
            {
                new.url = old.url.clone();
            }
            (Target::Redis(new), Target::Redis(old), Target::Redis(shown)) if new.url == shown.url => {
                new.url = old.url.clone();
            }
            (Target::Http(new), Target::Http(old), Target::Http(shown)) => {
                if new.url == shown.url {
                    new.url = old.url.clone();
                }
                for (header, value) in new.headers.iter_mut() {
                    if shown.headers.get(header) == Some(value)
                        && let Some(secret) = old.headers.get(header)
                    {
                        *value = secret.clone();
                    }
                }
            }
            _ => {}
        }
    }
}

/// `scheme://user:***@host/path?***`: the password and the query (which often holds tokens)
/// hidden, the rest kept so the operator recognises the target.
pub fn mask_url(url: &str) -> String {
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        return if url.is_empty() { String::new() } else { "***".to_string() };
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    if parsed.query().is_some() {
        parsed.set_query(Some("***"));
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    #[test]
    fn flat_json_round_trips_with_defaults_filled_in() {
        let definition = Definition::from_json(json!({
            "name": "api", "kind": "http", "url": "https://example.test/health",
            "headers": {"Authorization": "Bearer abc"}, "expected_status": [200, 204],
            "interval": "15s", "critical": false
        }))
        .unwrap();
        assert_eq!(definition.interval, PromDuration::from_secs(15));
        assert_eq!(definition.timeout, PromDuration::from_secs(10));
        assert_eq!(definition.failures_before_unhealthy, 3);
        assert!(!definition.critical);
        let Target::Http(http) = &definition.target else { panic!("not http") };
        assert_eq!(http.method, "GET");
        assert!(http.tls_verify && http.follow_redirects);
        assert_eq!(http.cert_expiry_days, 14);
        assert_eq!(Definition::from_json(definition.to_json()).unwrap(), definition);
    }

    #[test]
    fn unknown_fields_and_kinds_are_named() {
        let error =
            Definition::from_json(json!({"name": "db", "kind": "postgres", "url": "postgres://h/db", "qurey": "x"}))
                .unwrap_err()
                .to_string();
        assert!(error.contains("qurey") && error.contains("\"db\""), "{error}");
        let error = Definition::from_json(json!({"name": "x", "kind": "ftp"})).unwrap_err().to_string();
        assert!(error.contains("unknown kind \"ftp\"") && error.contains("postgres"), "{error}");
        let error = Definition::from_json(json!({"name": "x", "kind": "tcp", "address": "nohost"})).unwrap_err();
        assert!(error.to_string().contains("host:port"), "{error}");
        let error = Definition::from_json(
            json!({"name": "x", "kind": "tcp", "address": "h:1", "interval": "5s", "timeout": "10s"}),
        )
        .unwrap_err();
        assert!(error.to_string().contains("at most the interval"), "{error}");
    }

    #[test]
    fn the_toml_form_is_the_same_object() {
        let text = r#"
            name = "cache"
            kind = "redis"
            url = "redis://127.0.0.1:6379"
            interval = "10s"
            failures_before_unhealthy = 2
        "#;
        let definition: Definition = toml::from_str(text).unwrap();
        assert_eq!(definition.kind(), Kind::Redis);
        assert_eq!(definition.timeout, PromDuration::from_secs(10));
        assert_eq!(definition.failures_before_unhealthy, 2);
    }

    #[test]
    fn secrets_are_sealed_masked_and_kept_when_sent_back_masked() {
        let secrets = Secrets::generate();
        let definition = Definition::from_json(json!({
            "name": "api", "kind": "http", "url": "https://u:pw@example.test/x?token=abc",
            "headers": {"X-Api-Key": "key-1234567890"}
        }))
        .unwrap();
        let sealed = definition.sealed(&secrets);
        let text = sealed.to_json().to_string();
        assert!(!text.contains("pw@") && !text.contains("abc") && !text.contains("key-1234567890"), "{text}");
        assert_eq!(sealed.opened(&secrets).unwrap(), definition);
        assert_eq!(sealed.sealed(&secrets), sealed, "sealing twice is sealing once");

        let masked = definition.masked();
        let Target::Http(shown) = &masked.target else { panic!() };
        assert_eq!(shown.url, "https://u:***@example.test/x?***");
        assert_eq!(shown.headers["X-Api-Key"], "key-••••••");

        let mut edited = masked.clone();
        edited.interval = PromDuration::from_secs(60);
        edited.keep_masked_secrets(&definition);
        let Target::Http(kept) = &edited.target else { panic!() };
        assert_eq!(kept.url, "https://u:pw@example.test/x?token=abc");
        assert_eq!(kept.headers["X-Api-Key"], "key-1234567890");
    }
}
