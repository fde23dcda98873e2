-- Notifications: channels, the durable outbox, every delivery attempt, and the in-app inbox.
-- Timestamps are milliseconds since the Unix epoch (UTC).

CREATE TABLE notify_channels (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL UNIQUE,
    kind       TEXT    NOT NULL,
    -- Kind-specific settings as JSON; secret fields hold sealed values (v1:...).
    config     TEXT    NOT NULL,
    enabled    BOOLEAN NOT NULL DEFAULT TRUE,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- The outbox: a row is written before any attempt and is the only record of what is owed.
CREATE TABLE notifications (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    channel_id      INTEGER NOT NULL REFERENCES notify_channels (id) ON DELETE CASCADE,
    dedup_key       TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    title           TEXT    NOT NULL,
    severity        TEXT    NOT NULL,
    message         TEXT    NOT NULL,
    -- pending | sending | delivered | failed
    status          TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    max_attempts    INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    -- Who holds the row while it is `sending`, and until when; an expired lease is reclaimed.
    lease_owner     TEXT,
    lease_until     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    delivered_at    INTEGER,
    UNIQUE (channel_id, dedup_key)
);
CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
CREATE INDEX notifications_created ON notifications (created_at);

CREATE TABLE notification_attempts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    notification_id INTEGER NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    attempt         INTEGER NOT NULL,
    started_at      INTEGER NOT NULL,
    duration_ms     INTEGER NOT NULL,
    -- delivered | retry | failed
    outcome         TEXT    NOT NULL,
    -- The HTTP status or SMTP reply code, when the peer answered.
    status_code     INTEGER,
    -- The peer's answer (excerpt), or what went wrong.
    detail          TEXT    NOT NULL,
    worker          TEXT    NOT NULL
);
CREATE INDEX notification_attempts_by_notification ON notification_attempts (notification_id);

CREATE TABLE inbox_messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    notification_id INTEGER REFERENCES notifications (id) ON DELETE SET NULL,
    severity        TEXT    NOT NULL,
    title           TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    link            TEXT,
    created_at      INTEGER NOT NULL,
    read_at         INTEGER,
    -- A redelivered notification lands once per user.
    UNIQUE (user_id, notification_id)
);
CREATE INDEX inbox_messages_by_user ON inbox_messages (user_id, read_at);
