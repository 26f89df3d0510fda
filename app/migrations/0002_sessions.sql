-- Sign-in sessions: the cookie carries a random id, this table the session's truth, shared by
-- every app instance. Only the id's SHA-256 is stored, so a copy of the table signs nobody in.
CREATE TABLE sessions (
    id_hash      bytea       PRIMARY KEY,
    oid          text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);

-- The bounded purge of ended sessions (absolute and idle expiry).
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX sessions_last_seen_at ON sessions (last_seen_at);
