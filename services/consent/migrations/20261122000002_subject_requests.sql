-- Data-subject requests and, for those sent to the services, each registered service's answer.

CREATE TABLE subject_requests (
    id                  uuid        PRIMARY KEY,
    type                text        NOT NULL CHECK (type IN ('access', 'portability', 'erasure', 'rectification', 'restriction', 'objection')),
    subject_kind        text        NOT NULL CHECK (subject_kind IN ('party', 'person')),
    subject_id          uuid        NOT NULL,
    status              text        NOT NULL DEFAULT 'received'
                        CHECK (status IN ('received', 'verified', 'in_progress', 'completed', 'rejected', 'cancelled')),
    verification        text        NOT NULL DEFAULT 'pending' CHECK (verification IN ('pending', 'verified', 'failed')),
    verification_method text        NOT NULL DEFAULT '',
    details             text        NOT NULL DEFAULT '',
    purposes            text[]      NOT NULL DEFAULT '{}',
    channel             text        NOT NULL,
    received_at         timestamptz NOT NULL,
    due_at              timestamptz NOT NULL,
    extension_days      integer     NOT NULL DEFAULT 0 CHECK (extension_days BETWEEN 0 AND 60),
    extension_reason    text        NOT NULL DEFAULT '',
    completed_at        timestamptz,
    resolution          text        NOT NULL DEFAULT '',
    opened_by           text        NOT NULL
);
CREATE INDEX subject_requests_subject ON subject_requests (subject_id, id DESC);
CREATE INDEX subject_requests_status ON subject_requests (status, id DESC);
-- Overdue: open and past due.
CREATE INDEX subject_requests_open_due ON subject_requests (due_at)
    WHERE status IN ('received', 'verified', 'in_progress');

CREATE TABLE subject_request_services (
    request_id    uuid        NOT NULL REFERENCES subject_requests (id),
    service       text        NOT NULL,
    attempts      integer     NOT NULL DEFAULT 1,
    sent_at       timestamptz NOT NULL DEFAULT now(),
    answered_at   timestamptz,
    subject_found boolean     NOT NULL DEFAULT false,
    erased        text[]      NOT NULL DEFAULT '{}',
    retained      jsonb       NOT NULL DEFAULT '[]',
    -- The service's export part, kept for the bundle until the subject is erased.
    export_json   bytea,
    PRIMARY KEY (request_id, service)
);
CREATE INDEX subject_request_services_pending ON subject_request_services (sent_at)
    WHERE answered_at IS NULL;

-- Slices of a large export part, until the last one arrives and they are joined into export_json.
CREATE TABLE subject_request_export_slices (
    request_id uuid    NOT NULL,
    service    text    NOT NULL,
    export_id  text    NOT NULL,
    part       integer NOT NULL,
    parts      integer NOT NULL,
    data       bytea   NOT NULL,
    PRIMARY KEY (request_id, service, export_id, part),
    FOREIGN KEY (request_id, service) REFERENCES subject_request_services (request_id, service)
);
