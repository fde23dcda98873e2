-- Alerting (issue 8): rules created through the API, alert instances with their lifecycle and
-- notification bookkeeping, and silences. Timestamps are milliseconds since the Unix epoch.

CREATE TABLE alert_rules (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE,
    -- `default` (created on a fresh install; editable) or `api`.
    source      TEXT    NOT NULL,
    -- The rule as JSON (expr, for, labels, annotations, routing, enabled, ...).
    definition  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- One row per alert instance, from the first time its expression matched until it resolved
-- (or, for one that never fired, stopped matching). An open row has resolved_at NULL; at most
-- one open row per fingerprint.
CREATE TABLE alerts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT    NOT NULL,
    rule        TEXT    NOT NULL,
    -- pending, firing, resolved or inactive (matched, but stopped before `for` elapsed).
    state       TEXT    NOT NULL,
    -- Labels, annotations, value, times and what was sent, as JSON.
    body        TEXT    NOT NULL,
    active_at   INTEGER NOT NULL,
    resolved_at INTEGER,
    updated_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX alerts_open_fingerprint ON alerts (fingerprint) WHERE resolved_at IS NULL;
CREATE INDEX alerts_by_active_at ON alerts (active_at);

CREATE TABLE silences (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    -- [{"name","op","value"}] as JSON.
    matchers    TEXT    NOT NULL,
    starts_at   INTEGER NOT NULL,
    ends_at     INTEGER NOT NULL,
    created_by  TEXT    NOT NULL,
    comment     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX silences_by_end ON silences (ends_at);
