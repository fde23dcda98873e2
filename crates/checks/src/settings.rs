//! The `[check]` section: how checks run, and the built-in checks hubmon adds by itself.

use std::time::Duration;

use hubmon_model::PromDuration;
use serde::{Deserialize, Serialize};

use crate::definition::{DatabaseTarget, Definition, RedisTarget, StateStoreTarget, SystemTarget, Target};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Run health checks at all.
    pub enabled: bool,
    /// Most checks running at the same time; the others wait for a free slot.
    pub max_concurrent: u32,
    /// Results kept per check in the state store (the newest).
    pub history_limit: u32,
    /// How long status changes are kept (uptime over 30 days and 90-day bars need them).
    pub change_retention: PromDuration,
    /// Allow checks of link-local addresses (169.254.0.0/16, fe80::/10: cloud metadata).
    pub allow_link_local: bool,
    /// Built-in check `system`: this host's CPU, memory and disk against the default thresholds.
    pub system: bool,
    /// Built-in check `state_store`: hubmon's own state store and its connection pool.
    pub state_store: bool,
    /// Built-in check `postgres` of this URL (the platform's database), when set.
    pub postgres_url: String,
    /// Built-in check `mysql` of this URL (MySQL or MariaDB), when set.
    pub mysql_url: String,
    /// Built-in check `redis` of this URL (the platform's cache), when set.
    pub redis_url: String,
    /// How often the built-in checks run.
    pub interval: PromDuration,
    /// Serve the public status page (`/status`, `/status.json`): every enabled check's name,
    /// status and 90 days of uptime, without authentication and without targets or messages.
    pub status_page: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            enabled: true,
            max_concurrent: 16,
            history_limit: 1000,
            change_retention: PromDuration(Duration::from_secs(90 * 86_400)),
            allow_link_local: false,
            system: true,
            state_store: true,
            postgres_url: String::new(),
            mysql_url: String::new(),
            redis_url: String::new(),
            interval: PromDuration(Duration::from_secs(30)),
            status_page: false,
        }
    }
}

impl Settings {
    /// The built-in checks these settings ask for, by name; a configured check of the same
    /// name replaces one.
    pub fn defaults(&self) -> Vec<Definition> {
        let mut out = Vec::new();
        let mut add = |name: &str, target: Target| {
            let mut definition = Definition::new(name, target);
            definition.interval = self.interval;
            definition.timeout = PromDuration(self.interval.as_duration().min(Duration::from_secs(10)));
            out.push(definition);
        };
        if self.system {
            add("system", Target::System(SystemTarget::default()));
        }
        if self.state_store {
            add("state_store", Target::StateStore(StateStoreTarget::default()));
        }
        let database = |url: &str| DatabaseTarget { url: url.to_string(), query: None };
        if !self.postgres_url.is_empty() {
            add("postgres", Target::Postgres(database(&self.postgres_url)));
        }
        if !self.mysql_url.is_empty() {
            add("mysql", Target::Mysql(database(&self.mysql_url)));
        }
        if !self.redis_url.is_empty() {
            add("redis", Target::Redis(RedisTarget { url: self.redis_url.clone(), ca_file: None }));
        }
        out
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.max_concurrent == 0 {
            return Err("check.max_concurrent must be at least 1".into());
        }
        if self.history_limit == 0 {
            return Err("check.history_limit must be at least 1".into());
        }
        if self.interval.as_duration() < Duration::from_secs(1) {
            return Err("check.interval must be at least 1s".into());
        }
        for definition in self.defaults() {
            definition.validate().map_err(|e| format!("check.{}_url: {e}", definition.kind().as_str()))?;
        }
        Ok(())
    }
}

/// The checks to run from the config: the built-in ones, replaced by name by `configured`.
/// Fails on a name used twice in `configured`.
pub fn config_checks(settings: &Settings, configured: &[Definition]) -> Result<Vec<Definition>, String> {
    let mut names = std::collections::BTreeSet::new();
    for definition in configured {
        if !names.insert(definition.name.as_str()) {
            return Err(format!("[[checks]] name {:?} is used twice", definition.name));
        }
    }
    let mut out: Vec<Definition> =
        settings.defaults().into_iter().filter(|d| !names.contains(d.name.as_str())).collect();
    out.extend(configured.iter().cloned());
    Ok(out)
}
