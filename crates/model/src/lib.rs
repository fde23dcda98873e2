//! hubmon's shared vocabulary (DESIGN §4): the names every module uses and the small value
//! types that cross module boundaries.
//!
//! This crate imports nothing internal; every other hubmon crate may import it. It owns no
//! data and does no I/O. Values are parsed at the edge (config files, HTTP) into these types
//! and trusted inside.

mod alert;
mod duration;
mod health;
mod log;
pub mod logfmt;
mod role;
mod series;
mod time;

pub use alert::{Alert, AlertStatus, Severity, SeverityError};
pub use duration::{DurationError, PromDuration};
pub use health::{HealthStatus, HealthStatusError};
pub use log::{DEFAULT_CATEGORY, Level, LogEntry, LogSink, LogSinkError, MODEL_FIELDS, json_text, normalize_category};
pub use role::{Access, Role, RoleError};
pub use series::*;
pub use time::{Timestamp, TimestampError};
