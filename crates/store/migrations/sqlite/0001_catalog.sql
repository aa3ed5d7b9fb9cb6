-- The library's metadata (docs/architecture.md, "What lives where").
-- Same tables as ../postgres/0001_catalog.sql; types differ only where the
-- engines do (BLOB/BYTEA, INTEGER PRIMARY KEY/BIGSERIAL).

CREATE TABLE recordings (
    id             TEXT PRIMARY KEY,
    title          TEXT NOT NULL,
    mime           TEXT NOT NULL,
    created_at     TEXT NOT NULL,          -- RFC 3339 UTC, sorts as text
    token_sha256   TEXT NOT NULL,          -- the upload token's hash, hex
    total          BIGINT,
    state          TEXT NOT NULL,
    error          TEXT,
    duration_ms    BIGINT NOT NULL DEFAULT 0,
    segments       BIGINT NOT NULL DEFAULT 0,
    incomplete     BOOLEAN NOT NULL DEFAULT FALSE,
    access         TEXT NOT NULL,
    encrypt        BOOLEAN NOT NULL DEFAULT FALSE,
    import_json    TEXT,                   -- ImportInfo, for imported files
    live_plan_json TEXT,                   -- media::live_plan::LivePlan
    wrapped_key    BLOB,                   -- AES key wrap of the content key
    updated_ms     BIGINT NOT NULL
);
CREATE INDEX recordings_newest ON recordings (created_at DESC, id);

-- Ids deleted, so they answer 410 after a restart too.
CREATE TABLE deleted_recordings (
    id         TEXT PRIMARY KEY,
    deleted_at TEXT NOT NULL
);

CREATE TABLE comments (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,  -- posting order
    recording_id  TEXT NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    id            TEXT NOT NULL,
    author        TEXT NOT NULL,
    body          TEXT NOT NULL,
    media_time_ms BIGINT NOT NULL,
    created_at    TEXT NOT NULL,
    UNIQUE (recording_id, id)
);

-- Server-wide values: the share-token secret, the v2 import marker.
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
