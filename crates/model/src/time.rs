//! The one timestamp type: milliseconds since the Unix epoch, UTC.
//!
//! Input accepts RFC 3339 or epoch seconds (with a fraction), as the Prometheus API does;
//! output is RFC 3339 in JSON.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp {0:?}; use RFC 3339 (2024-05-01T12:00:00Z) or epoch seconds")]
pub struct TimestampError(pub String);

impl Timestamp {
    pub fn now() -> Self {
        Self(Utc::now().timestamp_millis())
    }

    pub fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    pub fn as_millis(self) -> i64 {
        self.0
    }

    pub fn to_datetime(self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.0).single().unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    pub fn to_rfc3339(self) -> String {
        self.to_datetime().to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// This timestamp moved forward by `duration`, saturating at the far future.
    pub fn plus(self, duration: std::time::Duration) -> Self {
        let ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(ms))
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || TimestampError(text.to_string());
        if let Ok(seconds) = text.parse::<f64>() {
            // Beyond ±year 200,000 chrono cannot represent it; reject rather than wrap.
            if !seconds.is_finite() || seconds.abs() > 6.0e12 {
                return Err(error());
            }
            return Ok(Self((seconds * 1000.0).round() as i64));
        }
        DateTime::parse_from_rfc3339(text).map(|time| Self(time.timestamp_millis())).map_err(|_| error())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(f64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Seconds(seconds) => seconds.to_string().parse(),
            Raw::Text(text) => text.parse(),
        }
        .map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::DateTime)))
            .description(Some("RFC 3339 time; inputs also accept epoch seconds"))
            .into()
    }
}

impl utoipa::ToSchema for Timestamp {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_rfc3339_and_epoch_seconds() {
        let expected = Timestamp(1_714_564_800_000);
        assert_eq!("2024-05-01T12:00:00Z".parse(), Ok(expected));
        assert_eq!("2024-05-01T14:00:00+02:00".parse(), Ok(expected));
        assert_eq!("1714564800".parse(), Ok(expected));
        assert_eq!("1714564800.5".parse(), Ok(Timestamp(1_714_564_800_500)));
    }

    #[test]
    fn rejects_garbage_and_absurd_values() {
        for bad in ["yesterday", "2024-13-01T00:00:00Z", "NaN", "inf", "1e300", ""] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn json_round_trip_is_rfc3339() {
        let ts = Timestamp(1_714_564_800_123);
        let json = serde_json::to_string(&ts).unwrap_or_default();
        assert_eq!(json, "\"2024-05-01T12:00:00.123Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).ok(), Some(ts));
        assert_eq!(serde_json::from_str::<Timestamp>("1714564800.123").ok(), Some(ts));
    }
}
