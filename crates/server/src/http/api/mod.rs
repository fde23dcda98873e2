//! Request handlers, one file per area.

pub mod alerts;
pub mod audit;
pub mod auth;
pub mod checks;
pub mod logs;
pub mod loki;
pub mod metrics;
pub mod monitoring;
pub mod monitoring_metrics;
pub mod notify;
pub mod prometheus;
pub mod system;
pub mod tokens;
pub mod users;
