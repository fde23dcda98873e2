//! hubmon's health checks (DESIGN §8): is each dependency of the platform healthy, and for how
//! long has it been.
//!
//! Layout:
//! - [`definition`]: what a check is ([`Definition`], [`Target`] per [`Kind`]), its one JSON/TOML
//!   shape, validation, and sealing/masking of its secrets;
//! - [`kinds`]: the probes, one file per kind (postgres, mysql, redis, http, tcp, system,
//!   state_store); [`guard`]: the link-local address policy they all apply;
//! - [`status`]: one run's [`Observation`] and flap damping ([`StatusTracker`]);
//! - [`scheduler`]: intervals with jitter, bounded concurrency, hard timeouts, and where results
//!   go (memory, metrics store, state store); [`metrics`]: the series results become;
//! - [`uptime`]: time-weighted uptime over the status timeline;
//! - [`service`]: [`Checks`], the entry point the server calls (CRUD, run now, history, report);
//! - [`settings`]: the `[check]` section and the built-in checks.
//!
//! What it must not touch: the metrics store is reached only through `Appender`, the state
//! store only through `CheckStore` (its own tables). Secrets are open only in memory.

pub mod definition;
mod error;
pub mod guard;
pub mod kinds;
pub mod metrics;
pub mod scheduler;
pub mod service;
pub mod settings;
pub mod status;
pub mod uptime;

pub use definition::{Definition, Kind, Target};
pub use error::Error;
pub use service::{
    ChangeView, CheckView, Checks, Component, HealthReport, HistoryView, PublicComponent, ResultView, RunView, Setup,
    StatusCounts, StatusPage, Uptime,
};
pub use settings::{Settings, config_checks};
pub use status::{Observation, StatusTracker};
