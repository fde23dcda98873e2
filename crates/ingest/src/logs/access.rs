//! Access-log lines into request events: a line of category `api` that carries a method, a
//! route (or path), a status and a duration becomes a [`RequestEvent`], so an application
//! that only ships access logs still gets `http_requests_total`, latency histograms and
//! active API keys.

use std::time::Duration;

use hubmon_model::LogEntry;

use crate::requests::RequestEvent;

/// The request event a line describes, if it is a complete access-log line.
pub fn request_event(entry: &LogEntry) -> Option<RequestEvent> {
    if entry.category != "api" {
        return None;
    }
    let text = |names: &[&str]| names.iter().find_map(|n| entry.field_text(n)).filter(|v| !v.is_empty());
    let method = text(&["method", "http_method", "verb"])?.to_uppercase();
    let route = text(&["route", "path", "url", "uri", "endpoint"])?;
    let status: u16 = text(&["status", "status_code", "http_status"])?.trim().parse().ok()?;
    let duration = if let Some(ms) = text(&["duration_ms", "latency_ms", "elapsed_ms", "response_time_ms"]) {
        ms.trim().parse::<f64>().ok()? / 1000.0
    } else {
        text(&["duration", "duration_s", "latency"])?.trim().parse::<f64>().ok()?
    };
    if !duration.is_finite() || duration < 0.0 {
        return None;
    }
    // A raw path would make a label value per id; drop the query string at least.
    let route = route.split('?').next().unwrap_or_default().to_string();
    Some(RequestEvent {
        service: entry.service.clone().unwrap_or_else(|| "unknown".into()),
        route,
        method,
        status,
        duration: Duration::from_secs_f64(duration.min(1e9)),
        api_key: text(&["api_key", "apikey", "key_id"]).or_else(|| entry.user_id.clone()),
        at: entry.timestamp.as_millis(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubmon_model::{Level, Timestamp};

    #[test]
    fn complete_api_lines_become_events_and_others_do_not() {
        let mut entry = LogEntry::new(Timestamp(5), Level::Info, "GET /v1/models 200");
        entry.category = "api".into();
        entry.service = Some("gateway".into());
        entry.user_id = Some("u1".into());
        for (k, v) in [("method", "get"), ("route", "/v1/models?x=1"), ("status", "200"), ("duration_ms", "250")] {
            entry.fields.insert(k.into(), serde_json::json!(v));
        }
        let event = request_event(&entry).unwrap();
        assert_eq!((event.method.as_str(), event.route.as_str(), event.status), ("GET", "/v1/models", 200));
        assert_eq!(event.duration, Duration::from_millis(250));
        assert_eq!(event.api_key.as_deref(), Some("u1"));
        entry.fields.remove("status");
        assert!(request_event(&entry).is_none());
    }
}
