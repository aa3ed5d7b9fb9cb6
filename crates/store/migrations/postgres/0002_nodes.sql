-- The cluster's nodes (docs/http-contract.md, v3 "One library for many
-- nodes"): each --node-url is held by one running node at a time, which
-- renews its lease while it runs. Same text for both engines.

CREATE TABLE nodes (
    url            TEXT PRIMARY KEY,   -- --node-url
    node_id        TEXT NOT NULL,      -- random per process start
    lease_until_ms BIGINT NOT NULL,    -- Unix ms, by the holder's clock
    started_at     TEXT NOT NULL       -- RFC 3339 UTC
);
