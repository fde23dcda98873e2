//! hubmon, the server: wires the modules together and serves the HTTP API.
//!
//! Layout:
//! - [`app`]: starts everything from a [`config::Config`] and stops it in order.
//! - [`config`]: defaults, TOML file, `HUBMON_*` variables and flags, validated.
//! - [`auth`]: users, passwords, API tokens, sessions, login rate limiting.
//! - [`audit`]: what an audit entry records of a change (secrets masked).
//! - [`http`]: routes with their required roles, middleware, handlers.
//! - [`monitor`]: the dashboard's live summary and the stream that pushes it.
//! - [`logs`]: the log store's wiring, background work and syslog listeners.
//! - [`telemetry`]: hubmon's own logs and `/metrics`.
//! - [`datadir`]: the data directory and its lock.
//!
//! This is the only crate that knows about HTTP, configuration files and `anyhow`.

pub mod alerting;
pub mod app;
pub mod audit;
pub mod auth;
pub mod blocking;
pub mod cli;
pub mod config;
pub mod datadir;
pub mod http;
pub mod logs;
pub mod monitor;
pub mod telemetry;
