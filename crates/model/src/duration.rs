//! Durations written the way Prometheus writes them: `15s`, `5m`, `1h30m`, `2d`, `500ms`.
//!
//! Used everywhere a person types a duration (config files, API bodies, query strings), so
//! that hubmon and Prometheus rule files read the same.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration that parses from and prints to Prometheus's duration syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PromDuration(pub Duration);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration; write it like 15s, 5m or 1h30m")]
    Empty,
    #[error("invalid duration {input:?}: {reason}; write it like 15s, 5m or 1h30m")]
    Invalid { input: String, reason: &'static str },
}

/// Units in the order Prometheus requires them, largest first, with their length in ms.
const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3_600_000),
    ("w", 7 * 24 * 3_600_000),
    ("d", 24 * 3_600_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

impl PromDuration {
    pub fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    pub fn as_duration(self) -> Duration {
        self.0
    }
}

impl FromStr for PromDuration {
    type Err = DurationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| DurationError::Invalid { input: input.to_string(), reason };
        if input.is_empty() {
            return Err(DurationError::Empty);
        }
        if input == "0" {
            return Ok(Self(Duration::ZERO));
        }
        let mut rest = input;
        let mut total_ms: u64 = 0;
        // Index into UNITS of the last unit seen: each unit may appear once, largest first.
        let mut last_unit: Option<usize> = None;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(invalid("expected a number"));
            }
            let number: u64 = rest[..digits].parse().map_err(|_| invalid("number too large"))?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
                return Err(invalid(if unit.is_empty() {
                    "missing unit (ms, s, m, h, d, w or y)"
                } else {
                    "unknown unit (use ms, s, m, h, d, w or y)"
                }));
            };
            if last_unit.is_some_and(|last| index <= last) {
                return Err(invalid("units must go from largest to smallest, each once"));
            }
            last_unit = Some(index);
            let part = number.checked_mul(UNITS[index].1).ok_or_else(|| invalid("too long"))?;
            total_ms = total_ms.checked_add(part).ok_or_else(|| invalid("too long"))?;
        }
        Ok(Self(Duration::from_millis(total_ms)))
    }
}

impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX);
        if ms == 0 {
            return f.write_str("0s");
        }
        for (name, unit_ms) in UNITS {
            if ms >= unit_ms {
                write!(f, "{}{}", ms / unit_ms, name)?;
                ms %= unit_ms;
            }
        }
        Ok(())
    }
}

impl Serialize for PromDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for PromDuration {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("A duration in Prometheus syntax, such as 15s, 5m or 1h30m"))
            .examples(["1h30m"])
            .into()
    }
}

impl utoipa::ToSchema for PromDuration {}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Duration, DurationError> {
        text.parse::<PromDuration>().map(PromDuration::as_duration)
    }

    #[test]
    fn parses_prometheus_durations() {
        assert_eq!(parse("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1d2h3m4s5ms"), Ok(Duration::from_millis(93_784_005)));
        assert_eq!(parse("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_what_prometheus_rejects() {
        for bad in ["", "15", "s", "1h1h", "30m1h", "1.5h", "5 m", "-5m", "5x", "99999999999999999999y"] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn prints_what_it_parses() {
        for text in ["15s", "5m", "1h30m", "500ms", "1d2h3m4s5ms", "2w", "0s"] {
            let parsed: PromDuration = text.parse().unwrap_or_default();
            assert_eq!(parsed.to_string(), text);
        }
    }

    #[test]
    fn error_says_how_to_write_it() {
        let message = parse("5 minutes").map(|_| ()).unwrap_err().to_string();
        assert!(message.contains("15s, 5m or 1h30m"), "{message}");
    }
}
