//! The in-app inbox: one entry per recipient user, read in the dashboard.
//!
//! Redelivery after a crash adds nothing: the store keeps one entry per (user, notification).

use hubmon_model::Timestamp;
use hubmon_state::NewInboxMessage;

use super::{Delivery, Receipt, SendError, Transports};
use crate::settings::InAppSettings;

pub async fn send(
    transports: &Transports,
    settings: &InAppSettings,
    delivery: &Delivery<'_>,
) -> Result<Receipt, SendError> {
    let store = transports.store.as_ref();
    let store_error = |e: hubmon_state::Error| {
        if e.is_retryable() { SendError::transient(e.to_string()) } else { SendError::permanent(e.to_string()) }
    };
    let users = store.list_users().await.map_err(store_error)?;
    let recipients: Vec<_> = users
        .into_iter()
        .filter(|u| !u.disabled && (settings.users.is_empty() || settings.users.contains(&u.username)))
        .collect();
    if recipients.is_empty() {
        return Err(SendError::permanent("no enabled user matches config.users"));
    }
    let rendered = delivery.rendered;
    let now = Timestamp::now();
    let entries: Vec<NewInboxMessage> = recipients
        .iter()
        .map(|user| NewInboxMessage {
            user_id: user.id,
            notification_id: delivery.notification_id,
            severity: rendered.severity.as_str().to_string(),
            title: rendered.title.clone(),
            body: rendered.body.clone(),
            link: delivery.message.alerts.iter().find_map(|a| a.generator_url.clone()),
            at: now,
        })
        .collect();
    let added = store.add_inbox_messages(&entries).await.map_err(store_error)?;
    for user in &recipients {
        // No open dashboard is no error.
        let _ = transports.inbox.send(user.id);
    }
    Ok(Receipt { status_code: None, detail: format!("stored for {} user(s), {added} new", recipients.len()) })
}
