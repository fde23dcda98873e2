//! The dashboard's live endpoints: the overview summary and the server-sent-events stream
//! that pushes it (and, as modules provide them, their events) to open dashboards.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};

use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::app::AppState;
use crate::http::extract::Json;
use crate::monitor::{LiveEvent, Summary};

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
/// and then every couple of seconds; `alert` when an alert appears, changes state or goes
/// (`state: "gone"`); `health` when a check's status changes; `notification` and `inbox` when
/// a recent notification is added or changes state; `lagged` when the client fell behind on
/// events (reload what you show). Ends when the client leaves or hubmon stops.
#[utoipa::path(get, path = "/api/v1/monitoring/stream", tag = "monitoring", responses(
    (status = 200, description = "An event stream (text/event-stream) of `summary`, `alert`, `health`, `notification` and `inbox` events", content_type = "text/event-stream", body = String),
))]
pub async fn stream(State(app): State<AppState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let first = app.monitor.current(&app).await;
    let live = Live {
        pending: Some(first),
        updates: app.monitor.subscribe(),
        events: app.monitor.events(),
        shutdown: app.monitor.shutdown_token(),
    };
    let events = stream::unfold(live, |mut live| async move {
        let event = live.next().await?;
        Some((Ok(event), live))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// One client's view of the monitor's channels.
struct Live {
    pending: Option<Arc<Summary>>,
    updates: watch::Receiver<Option<Arc<Summary>>>,
    events: broadcast::Receiver<LiveEvent>,
    shutdown: CancellationToken,
}

impl Live {
    /// The next event to send, or `None` when the stream should end.
    async fn next(&mut self) -> Option<Event> {
        if let Some(summary) = self.pending.take() {
            return Some(json_event("summary", summary.as_ref()));
        }
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                changed = self.updates.changed() => {
                    changed.ok()?;
                    if let Some(summary) = self.updates.borrow_and_update().clone() {
                        return Some(json_event("summary", summary.as_ref()));
                    }
                }
                received = self.events.recv() => match received {
                    Ok(change) => return Some(json_event(change.kind, &change)),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        return Some(Event::default().event("lagged").data(missed.to_string()));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
    }
}

fn json_event(name: &'static str, data: &impl serde::Serialize) -> Event {
    match Event::default().event(name).json_data(data) {
        Ok(event) => event,
        // Serialising plain numbers and strings cannot fail; should it, the client sees why.
        Err(error) => Event::default().event("error").data(error.to_string()),
    }
}
