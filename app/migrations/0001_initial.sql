-- Photos: one row per stored image; the blob name is chosen by the server.
CREATE TABLE photos (
    id            uuid PRIMARY KEY,
    owner_oid     text        NOT NULL,
    owner_email   text,
    blob_name     text        NOT NULL UNIQUE,
    thumb_blob_name text,
    filename      text        NOT NULL,
    content_type  text        NOT NULL,
    size          bigint      NOT NULL CHECK (size > 0),
    width         integer     NOT NULL CHECK (width > 0),
    height        integer     NOT NULL CHECK (height > 0),
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- The gallery query: one user's photos, newest first, keyset-paginated.
CREATE INDEX photos_owner_created ON photos (owner_oid, created_at DESC, id DESC);

-- Emails resolved through Graph, shared by every app instance, refreshed after a TTL.
CREATE TABLE user_emails (
    oid         text        PRIMARY KEY,
    email       text,
    source      text        NOT NULL,
    resolved_at timestamptz NOT NULL DEFAULT now()
);
