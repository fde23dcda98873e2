//! Notifications: alerts, recoveries, health changes and test messages reach people reliably,
//! once, on the channels they use (DESIGN §7).
//!
//! # Layout
//! - [`message`]: what producers hand over ([`AlertMessage`]), in Alertmanager's vocabulary.
//! - [`settings`]: channel settings per kind, validated on save; secret fields sealed at rest
//!   and masked in every view.
//! - [`template`]: minijinja templates with English and Chinese defaults per channel format.
//! - [`channel`]: one file per kind, each turning a rendered message into that product's API
//!   call and classifying failures as retryable or permanent.
//! - [`outbox`]: the dispatcher that claims due outbox rows, sends, backs off and records.
//! - `metrics`: the notifier's own series (`hubmon_notifications_*`), written to the metrics store.
//! - [`Notifier`]: the public face: producers call [`Notifier::enqueue`]; the API calls the rest.
//!
//! # Invariants
//! - Every notification is an outbox row before any attempt; nothing is sent from memory alone.
//! - A (channel, dedup key) pair is enqueued at most once, so a producer that retries never
//!   causes a second message.
//! - A row is sent only under a lease; a process that dies mid-attempt loses its lease and the
//!   row is sent again after it runs out: at most the one in-flight attempt is duplicated.
//! - Every attempt is recorded with its row's next state in one transaction.
//!
//! This crate knows alerts, not rules or PromQL.

pub mod channel;
mod error;
pub mod message;
mod metrics;
mod notifier;
pub mod outbox;
mod ratelimit;
pub mod settings;
pub mod template;

pub use error::Error;
pub use message::{AlertMessage, MessageKind, TemplateOverride};
pub use notifier::{ChannelInput, ChannelView, Config, Enqueued, Notifier, SendReport, Stats};
pub use settings::{ChannelKind, ChannelSettings};

pub type Result<T, E = Error> = std::result::Result<T, E>;
