-- Health checks (issue 6): definitions, their recent results and their status changes.
-- Timestamps are milliseconds since the Unix epoch (UTC), latencies microseconds.

CREATE TABLE checks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE,
    kind        TEXT    NOT NULL,
    -- `config` (the config file and built-in defaults, replaced at each start) or `api`.
    source      TEXT    NOT NULL,
    -- The whole definition as JSON, with its secret fields sealed.
    definition  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- Bounded: the store keeps the newest results per check, as many as the caller asks.
CREATE TABLE check_results (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    check_id    INTEGER NOT NULL REFERENCES checks (id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    -- After flap damping: what the health report said.
    status      TEXT    NOT NULL,
    -- What this probe alone saw.
    observed    TEXT    NOT NULL,
    latency_us  INTEGER,
    message     TEXT    NOT NULL,
    details     TEXT    NOT NULL
);
CREATE INDEX check_results_by_check ON check_results (check_id, id);

-- The timeline uptime is computed from; kept for the configured retention.
CREATE TABLE check_status_changes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    check_id    INTEGER NOT NULL REFERENCES checks (id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    from_status TEXT    NOT NULL,
    to_status   TEXT    NOT NULL,
    message     TEXT    NOT NULL
);
CREATE INDEX check_status_changes_by_check ON check_status_changes (check_id, at);
