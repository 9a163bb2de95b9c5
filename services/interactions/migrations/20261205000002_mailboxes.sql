-- Mailboxes read over IMAP, and where reading resumes.

CREATE TABLE mailboxes (
    id              uuid        PRIMARY KEY,
    host            text        NOT NULL,
    port            integer     NOT NULL CHECK (port BETWEEN 1 AND 65535),
    security        text        NOT NULL CHECK (security IN ('tls', 'starttls', 'none')),
    username        text        NOT NULL,
    password_ref    text        NOT NULL,
    folder          text        NOT NULL,
    own_addresses   text[]      NOT NULL,
    status          text        NOT NULL CHECK (status IN ('active', 'failing', 'disconnected')),
    -- The cursor: the folder's UIDVALIDITY and the last UID read under it.
    uid_validity    bigint,
    last_uid        bigint      NOT NULL DEFAULT 0,
    last_sync_at    timestamptz,
    last_error      text        NOT NULL DEFAULT '',
    last_error_at   timestamptz,
    failures        integer     NOT NULL DEFAULT 0,
    imported_count  bigint      NOT NULL DEFAULT 0,
    duplicate_count bigint      NOT NULL DEFAULT 0,
    skipped_count   bigint      NOT NULL DEFAULT 0,
    -- When it is next read, and until when a reader holds it (one reader at a time, whatever the
    -- number of replicas).
    next_sync_at    timestamptz NOT NULL DEFAULT now(),
    leased_until    timestamptz,
    leased_by       uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    created_by      text        NOT NULL,
    updated_by      text        NOT NULL,
    version         bigint      NOT NULL DEFAULT 1
);
-- One connection per folder of an account.
CREATE UNIQUE INDEX mailboxes_connected ON mailboxes (lower(host), port, username, folder)
    WHERE status <> 'disconnected';
CREATE INDEX mailboxes_due ON mailboxes (next_sync_at) WHERE status <> 'disconnected';
