//! Notification channels (admin), test sends, the notification history with its attempts,
//! manual retry of dead letters, and each user's in-app inbox. The work is in hubmon-notify;
//! these handlers extract, call one `Notifier` method and render.

use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use hubmon_model::Timestamp;
use hubmon_notify::{ChannelInput, ChannelView, SendReport};
use hubmon_state::{Attempt, AttemptOutcome, DeliveryStatus, InboxMessage, Notification, NotificationQuery};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::app::AppState;
use crate::auth::Principal;
use crate::http::error::ApiError;
use crate::http::extract::{Json, Path, Query};
use crate::http::middleware::AuditNote;

impl From<hubmon_notify::Error> for ApiError {
    fn from(error: hubmon_notify::Error) -> Self {
        use hubmon_notify::Error::*;
        match error {
            InvalidSettings { .. } => ApiError::unprocessable(error.to_string()),
            NoSuchChannel(_) | NoSuchNotification(_) => ApiError::not_found(error.to_string()),
            NotRetryable(_) | ChannelDisabled(_) => ApiError::new(StatusCode::CONFLICT, error.to_string()),
            Store(store) => match store {
                hubmon_state::Error::Conflict { what } => {
                    ApiError::new(StatusCode::CONFLICT, format!("{what} already exists; choose another name"))
                }
                other => other.into(),
            },
            Secret(_) | Corrupt(_) => {
                tracing::error!(%error, "notification request failed");
                ApiError::internal(error.to_string())
            }
        }
    }
}

// ---- channels -------------------------------------------------------------------------------

/// Lists notification channels, secrets masked.
#[utoipa::path(get, path = "/api/v1/channels", tag = "notifications", responses((status = 200, body = Vec<ChannelView>)))]
pub async fn list_channels(State(app): State<AppState>) -> Result<Json<Vec<ChannelView>>, ApiError> {
    Ok(Json(app.notifier.list_channels().await?))
}

/// Creates a channel. Its settings are validated (URLs, addresses, templates) and its secrets
/// sealed; a problem is a 422 naming the field.
#[utoipa::path(post, path = "/api/v1/channels", tag = "notifications", request_body = ChannelInput, responses(
    (status = 201, body = ChannelView),
    (status = 409, body = crate::http::error::ErrorBody),
    (status = 422, body = crate::http::error::ErrorBody),
))]
pub async fn create_channel(
    State(app): State<AppState>,
    Extension(note): Extension<AuditNote>,
    Json(input): Json<ChannelInput>,
) -> Result<(StatusCode, Json<ChannelView>), ApiError> {
    let channel = app.notifier.create_channel(input).await?;
    note.target(format!("channel:{}", channel.id));
    Ok((StatusCode::CREATED, Json(channel)))
}

#[utoipa::path(get, path = "/api/v1/channels/{id}", tag = "notifications", params(("id" = i64, Path)), responses(
    (status = 200, body = ChannelView),
    (status = 404, body = crate::http::error::ErrorBody),
))]
pub async fn get_channel(State(app): State<AppState>, Path(id): Path<i64>) -> Result<Json<ChannelView>, ApiError> {
    Ok(Json(app.notifier.channel(id).await?))
}

/// Replaces a channel. A secret left out, or sent back masked as shown, keeps its value.
#[utoipa::path(put, path = "/api/v1/channels/{id}", tag = "notifications", params(("id" = i64, Path)),
    request_body = ChannelInput, responses(
    (status = 200, body = ChannelView),
    (status = 404, body = crate::http::error::ErrorBody),
    (status = 422, body = crate::http::error::ErrorBody),
))]
pub async fn update_channel(
    State(app): State<AppState>,
    Extension(note): Extension<AuditNote>,
    Path(id): Path<i64>,
    Json(input): Json<ChannelInput>,
) -> Result<Json<ChannelView>, ApiError> {
    note.target(format!("channel:{id}"));
    Ok(Json(app.notifier.update_channel(id, input).await?))
}

/// Deletes a channel and its notification history.
#[utoipa::path(delete, path = "/api/v1/channels/{id}", tag = "notifications", params(("id" = i64, Path)), responses(
    (status = 204),
    (status = 404, body = crate::http::error::ErrorBody),
))]
pub async fn delete_channel(
    State(app): State<AppState>,
    Extension(note): Extension<AuditNote>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    note.target(format!("channel:{id}"));
    app.notifier.delete_channel(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends a test message on the channel now, through the outbox (one attempt, kept in the
/// history), and returns the attempt: delivered or the error the service gave.
#[utoipa::path(post, path = "/api/v1/channels/{id}/test", tag = "notifications", params(("id" = i64, Path)), responses(
    (status = 200, body = SendReport),
    (status = 404, body = crate::http::error::ErrorBody),
    (status = 409, body = crate::http::error::ErrorBody),
))]
pub async fn test_channel(
    State(app): State<AppState>,
    Extension(note): Extension<AuditNote>,
    Path(id): Path<i64>,
) -> Result<Json<SendReport>, ApiError> {
    note.target(format!("channel:{id}"));
    Ok(Json(app.notifier.test_channel(id).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestNotificationRequest {
    /// A stored channel to test.
    channel_id: Option<i64>,
    /// Or a channel that is not stored yet (`{"name", "kind", "config"}`): tried, not kept.
    channel: Option<ChannelInput>,
}

/// Sends a test notification now and returns the attempt result: to a stored channel
/// (`{"channel_id": 3}`) or to one given inline (`{"channel": {"name", "kind", "config"}}`).
#[utoipa::path(post, path = "/api/v1/monitoring/test-notification", tag = "notifications",
    request_body = TestNotificationRequest, responses(
    (status = 200, body = SendReport),
    (status = 404, body = crate::http::error::ErrorBody),
    (status = 422, body = crate::http::error::ErrorBody),
))]
pub async fn test_notification(
    State(app): State<AppState>,
    Extension(note): Extension<AuditNote>,
    Json(request): Json<TestNotificationRequest>,
) -> Result<Json<SendReport>, ApiError> {
    let report = match (request.channel_id, request.channel) {
        (Some(id), None) => {
            note.target(format!("channel:{id}"));
            app.notifier.test_channel(id).await?
        }
        (None, Some(channel)) => app.notifier.test_inline(channel).await?,
        _ => return Err(ApiError::unprocessable("give either `channel_id` or an inline `channel`, not both")),
    };
    Ok(Json(report))
}

// ---- history --------------------------------------------------------------------------------

#[derive(Serialize, utoipa::ToSchema)]
pub struct NotificationView {
    id: i64,
    channel_id: i64,
    dedup_key: String,
    /// `alert`, `health` or `test`.
    kind: String,
    title: String,
    severity: String,
    status: DeliveryStatus,
    attempts: i64,
    max_attempts: i64,
    /// When a pending notification is next tried.
    next_attempt_at: Timestamp,
    last_error: Option<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
    delivered_at: Option<Timestamp>,
}

impl From<Notification> for NotificationView {
    fn from(n: Notification) -> Self {
        Self {
            id: n.id,
            channel_id: n.channel_id,
            dedup_key: n.dedup_key,
            kind: n.kind,
            title: n.title,
            severity: n.severity,
            status: n.status,
            attempts: n.attempts,
            max_attempts: n.max_attempts,
            next_attempt_at: n.next_attempt_at,
            last_error: n.last_error,
            created_at: n.created_at,
            updated_at: n.updated_at,
            delivered_at: n.delivered_at,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AttemptView {
    /// 1 for the first attempt.
    attempt: i64,
    started_at: Timestamp,
    duration_ms: i64,
    outcome: AttemptOutcome,
    /// HTTP status or SMTP reply code.
    status_code: Option<i64>,
    /// The service's answer or the error.
    detail: String,
    /// The hubmon process that made the attempt.
    worker: String,
}

impl From<Attempt> for AttemptView {
    fn from(a: Attempt) -> Self {
        Self {
            attempt: a.attempt,
            started_at: a.started_at,
            duration_ms: a.duration_ms,
            outcome: a.outcome,
            status_code: a.status_code,
            detail: a.detail,
            worker: a.worker,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct NotificationDetail {
    #[serde(flatten)]
    notification: NotificationView,
    /// The message as enqueued (alerts with labels, annotations, times).
    #[schema(value_type = Object)]
    message: serde_json::Value,
    /// Oldest first.
    attempt_log: Vec<AttemptView>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NotificationParams {
    channel_id: Option<i64>,
    /// `pending`, `sending`, `delivered` or `failed`.
    status: Option<String>,
    /// Created at or after (RFC 3339 or epoch seconds).
    #[param(value_type = Option<String>)]
    since: Option<Timestamp>,
    #[param(value_type = Option<String>)]
    until: Option<Timestamp>,
    /// `next_cursor` of the previous page.
    cursor: Option<i64>,
    /// 1 to 1000, default 100.
    limit: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct NotificationPage {
    /// Newest first.
    notifications: Vec<NotificationView>,
    next_cursor: Option<i64>,
}

const MAX_PAGE: u32 = 1000;

fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(100);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::bad_request(format!("limit must be between 1 and {MAX_PAGE}")))
    }
}

/// The notification history, newest first, filtered and paged.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications", params(NotificationParams), responses(
    (status = 200, body = NotificationPage),
    (status = 400, body = crate::http::error::ErrorBody),
))]
pub async fn list_notifications(
    State(app): State<AppState>,
    Query(params): Query<NotificationParams>,
) -> Result<Json<NotificationPage>, ApiError> {
    let limit = page_limit(params.limit)?;
    let status = match params.status.as_deref() {
        None => None,
        Some(text) => Some(DeliveryStatus::parse(text).ok_or_else(|| {
            ApiError::bad_request(format!("unknown status {text:?}; use pending, sending, delivered or failed"))
        })?),
    };
    let query = NotificationQuery {
        channel_id: params.channel_id,
        status,
        since: params.since,
        until: params.until,
        before_id: params.cursor,
        limit,
    };
    let rows = app.notifier.history(&query).await?;
    let next_cursor = (rows.len() == limit as usize).then(|| rows.last().map(|n| n.id)).flatten();
    Ok(Json(NotificationPage { notifications: rows.into_iter().map(NotificationView::from).collect(), next_cursor }))
}

/// One notification with its message and every delivery attempt.
#[utoipa::path(get, path = "/api/v1/notifications/{id}", tag = "notifications", params(("id" = i64, Path)), responses(
    (status = 200, body = NotificationDetail),
    (status = 404, body = crate::http::error::ErrorBody),
))]
pub async fn get_notification(
    State(app): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<NotificationDetail>, ApiError> {
    let (row, attempts) = app.notifier.notification(id).await?;
    let message = serde_json::from_str(&row.message).unwrap_or(serde_json::Value::Null);
    Ok(Json(NotificationDetail {
        notification: row.into(),
        message,
        attempt_log: attempts.into_iter().map(AttemptView::from).collect(),
    }))
}

/// Sends a dead-lettered (`failed`) notification again, with the channel's attempts anew.
#[utoipa::path(post, path = "/api/v1/notifications/{id}/retry", tag = "notifications", params(("id" = i64, Path)),
    responses(
    (status = 202, body = NotificationView),
    (status = 404, body = crate::http::error::ErrorBody),
    (status = 409, body = crate::http::error::ErrorBody),
))]
pub async fn retry_notification(
    State(app): State<AppState>,
    Extension(note): Extension<AuditNote>,
    Path(id): Path<i64>,
) -> Result<(StatusCode, Json<NotificationView>), ApiError> {
    note.target(format!("notification:{id}"));
    Ok((StatusCode::ACCEPTED, Json(app.notifier.retry(id).await?.into())))
}

// ---- inbox ----------------------------------------------------------------------------------

#[derive(Serialize, utoipa::ToSchema)]
pub struct InboxView {
    id: i64,
    notification_id: Option<i64>,
    severity: String,
    title: String,
    body: String,
    link: Option<String>,
    created_at: Timestamp,
    read_at: Option<Timestamp>,
}

impl From<InboxMessage> for InboxView {
    fn from(m: InboxMessage) -> Self {
        Self {
            id: m.id,
            notification_id: m.notification_id,
            severity: m.severity,
            title: m.title,
            body: m.body,
            link: m.link,
            created_at: m.created_at,
            read_at: m.read_at,
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InboxParams {
    /// Only unread entries.
    #[serde(default)]
    unread: bool,
    cursor: Option<i64>,
    /// 1 to 1000, default 100.
    limit: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct InboxPage {
    /// Newest first.
    messages: Vec<InboxView>,
    unread: i64,
    next_cursor: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UnreadCount {
    unread: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Marked {
    /// Entries that changed from unread to read.
    marked: u64,
}

/// The inbox owner: the user, or for an API token the user who created it.
async fn inbox_user(app: &AppState, principal: &Principal) -> Result<i64, ApiError> {
    match principal {
        Principal::User { id, .. } => Ok(*id),
        Principal::Token { id, name, .. } => {
            let creator = app.store.list_tokens().await?.into_iter().find(|t| t.id == *id).map(|t| t.created_by);
            let user = match creator {
                Some(creator) => app.store.user_by_name(&creator).await?,
                None => None,
            };
            user.map(|u| u.id).ok_or_else(|| {
                ApiError::unprocessable(format!(
                    "API token {name:?} was not created by a user, and the inbox belongs to users; log in instead"
                ))
            })
        }
    }
}

/// The caller's in-app notifications, newest first.
#[utoipa::path(get, path = "/api/v1/inbox", tag = "notifications", params(InboxParams), responses(
    (status = 200, body = InboxPage),
))]
pub async fn list_inbox(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(params): Query<InboxParams>,
) -> Result<Json<InboxPage>, ApiError> {
    let user = inbox_user(&app, &principal).await?;
    let limit = page_limit(params.limit)?;
    let messages = app.notifier.inbox(user, params.unread, params.cursor, limit).await?;
    let unread = app.notifier.unread_count(user).await?;
    let next_cursor = (messages.len() == limit as usize).then(|| messages.last().map(|m| m.id)).flatten();
    Ok(Json(InboxPage { messages: messages.into_iter().map(InboxView::from).collect(), unread, next_cursor }))
}

/// How many of the caller's in-app notifications are unread (for the badge).
#[utoipa::path(get, path = "/api/v1/inbox/unread-count", tag = "notifications", responses(
    (status = 200, body = UnreadCount),
))]
pub async fn unread_count(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<UnreadCount>, ApiError> {
    let user = inbox_user(&app, &principal).await?;
    Ok(Json(UnreadCount { unread: app.notifier.unread_count(user).await? }))
}

/// Marks one of the caller's in-app notifications read.
#[utoipa::path(post, path = "/api/v1/inbox/{id}/read", tag = "notifications", params(("id" = i64, Path)), responses(
    (status = 200, body = Marked),
))]
pub async fn mark_read(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<i64>,
) -> Result<Json<Marked>, ApiError> {
    let user = inbox_user(&app, &principal).await?;
    Ok(Json(Marked { marked: app.notifier.mark_read(user, Some(id)).await? }))
}

/// Marks all of the caller's in-app notifications read.
#[utoipa::path(post, path = "/api/v1/inbox/read-all", tag = "notifications", responses((status = 200, body = Marked)))]
pub async fn mark_all_read(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Marked>, ApiError> {
    let user = inbox_user(&app, &principal).await?;
    Ok(Json(Marked { marked: app.notifier.mark_read(user, None).await? }))
}

/// Server-sent events for the caller's inbox: `unread` (`{"unread": n}`) at once, whenever an
/// entry arrives for the caller, and every 30 s (to see entries another replica delivered).
/// Ends when the client leaves or hubmon stops.
#[utoipa::path(get, path = "/api/v1/inbox/stream", tag = "notifications", responses(
    (status = 200, description = "An event stream (text/event-stream) of `unread` events", content_type = "text/event-stream", body = String),
))]
pub async fn inbox_stream(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let user = inbox_user(&app, &principal).await?;
    let live = InboxLive {
        events: app.notifier.subscribe_inbox(),
        shutdown: app.monitor.shutdown_token(),
        app,
        user,
        shown: None,
    };
    let events = stream::unfold(live, |mut live| async move {
        let event = live.next().await?;
        Some((Ok(event), live))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// One client's inbox stream.
struct InboxLive {
    app: AppState,
    user: i64,
    events: broadcast::Receiver<i64>,
    shutdown: CancellationToken,
    /// The count last sent; a new one is sent only when it differs.
    shown: Option<i64>,
}

const INBOX_RECHECK: Duration = Duration::from_secs(30);

impl InboxLive {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if self.shown.is_some() {
                tokio::select! {
                    _ = self.shutdown.cancelled() => return None,
                    received = self.events.recv() => match received {
                        Ok(user) if user != self.user => continue,
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                    _ = tokio::time::sleep(INBOX_RECHECK) => {}
                }
            }
            let unread = match self.app.notifier.unread_count(self.user).await {
                Ok(unread) => unread,
                Err(error) => {
                    tracing::warn!(%error, "cannot count unread inbox entries");
                    continue;
                }
            };
            if self.shown != Some(unread) {
                self.shown = Some(unread);
                let data = serde_json::json!({ "unread": unread }).to_string();
                return Some(Event::default().event("unread").data(data));
            }
        }
    }
}
