//! [`HealthStatus`]: how a dependency (a database, a cache, an HTTP service, the host) is doing,
//! in the product summary's four words. Health checks produce it; the health report, the
//! dashboard and alert rules consume it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Answering within its limits.
    Healthy,
    /// Answering, but slow, close to a limit (CPU, disk, certificate expiry) or otherwise impaired.
    Degraded,
    /// Not answering, or answering wrongly.
    Unhealthy,
    /// Not checked yet.
    Unknown,
}

impl HealthStatus {
    pub const ALL: [HealthStatus; 4] =
        [HealthStatus::Healthy, HealthStatus::Degraded, HealthStatus::Unhealthy, HealthStatus::Unknown];

    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
            HealthStatus::Unknown => "unknown",
        }
    }

    /// Healthy or degraded: the dependency answers.
    pub fn is_up(self) -> bool {
        matches!(self, HealthStatus::Healthy | HealthStatus::Degraded)
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown health status {0:?}; use healthy, degraded, unhealthy or unknown")]
pub struct HealthStatusError(pub String);

impl FromStr for HealthStatus {
    type Err = HealthStatusError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        HealthStatus::ALL.into_iter().find(|s| s.as_str() == text).ok_or_else(|| HealthStatusError(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for status in HealthStatus::ALL {
            assert_eq!(status.as_str().parse::<HealthStatus>(), Ok(status));
        }
        assert!("fine".parse::<HealthStatus>().is_err());
        assert!(HealthStatus::Degraded.is_up() && !HealthStatus::Unknown.is_up());
    }
}
