//! Alerting (DESIGN §7): rules evaluated on a schedule, the alert lifecycle, and the policy
//! that turns alerts into notifications.
//!
//! # Layout
//! - [`rule`]: definitions from the API (JSON, with the simple form) and Prometheus rule files
//!   (YAML), validated with errors that name the field; the default rules.
//! - [`template`]: the `{{ $labels.x }}` / `{{ $value }}` subset of Prometheus's templates.
//! - [`lifecycle`]: inactive → pending → firing → resolved per fingerprint, `for` and
//!   `keep_firing_for`; alerts received from an external Prometheus live here too.
//! - [`group`]: one evaluation of a rule group: expressions, lifecycle, recording rules,
//!   `ALERTS`/`ALERTS_FOR_STATE`, rule health.
//! - [`dispatch`]: grouping, cooldown repeats, acknowledgement, recovery, silences and
//!   inhibition; it decides which messages are due, the notifier delivers them.
//!
//! Everything here takes time as an argument (ms), so the tests drive it with a fake clock;
//! the server owns the schedule, the state store and the notifier.

pub mod dispatch;
pub mod group;
pub mod lifecycle;
pub mod rule;
pub mod template;
pub mod unittest;

pub use dispatch::{Dispatcher, Inhibition, Muted, Muter, Outgoing, Policy, RuleSettings, Silence};
pub use group::{GroupRuntime, Outcome, RuleHealth};
pub use lifecycle::{AlertRecord, Alerts, State, fingerprint};
pub use rule::{AlertRule, AlertRuleSpec, RecordingRule, RuleError, RuleGroup, default_rules, parse_rule_file};
