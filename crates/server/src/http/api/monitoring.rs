//! The dashboard's live endpoints: the overview summary and the server-sent-events stream
//! that pushes it (and, as modules provide them, their events) to open dashboards.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};

use crate::app::AppState;
use crate::http::extract::Json;
use crate::monitor::Summary;

/// The overview now: overall health, firing alerts by severity, this host's CPU, memory and
/// disk, API traffic, log errors and failed notifications. A part whose module is absent or
/// off is `{"state": "unavailable", "reason": …}`; others are `{"state": "available", …}`.
#[utoipa::path(get, path = "/api/v1/monitoring/summary", tag = "monitoring", responses(
    (status = 200, description = "The summary", content_type = "application/json", body = Object),
))]
pub async fn summary(State(app): State<AppState>) -> Json<Arc<Summary>> {
    Json(app.monitor.current(&app).await)
}

/// Server-sent events: `summary` (the same document as `/api/v1/monitoring/summary`) at once
/// and then every couple of seconds, until the client leaves or hubmon stops.
#[utoipa::path(get, path = "/api/v1/monitoring/stream", tag = "monitoring", responses(
    (status = 200, description = "An event stream (text/event-stream) of `summary` events", content_type = "text/event-stream", body = String),
))]
pub async fn stream(State(app): State<AppState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let first = app.monitor.current(&app).await;
    let updates = app.monitor.subscribe();
    let shutdown = app.monitor.shutdown_token();
    let events = stream::unfold((Some(first), updates, shutdown), |(pending, mut updates, shutdown)| async move {
        let summary = match pending {
            Some(summary) => summary,
            None => loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    changed = updates.changed() => {
                        if changed.is_err() {
                            return None;
                        }
                    }
                }
                if let Some(summary) = updates.borrow_and_update().clone() {
                    break summary;
                }
            },
        };
        let event = summary_event(&summary);
        Some((Ok(event), (None, updates, shutdown)))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

fn summary_event(summary: &Summary) -> Event {
    match Event::default().event("summary").json_data(summary) {
        Ok(event) => event,
        // Serialising plain numbers and strings cannot fail; should it, the client sees why.
        Err(error) => Event::default().event("error").data(error.to_string()),
    }
}
