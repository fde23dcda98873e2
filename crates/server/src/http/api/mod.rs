//! Request handlers, one file per area.

pub mod audit;
pub mod auth;
pub mod metrics;
pub mod monitoring;
pub mod monitoring_metrics;
pub mod prometheus;
pub mod system;
pub mod tokens;
pub mod users;
